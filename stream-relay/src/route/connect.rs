//! One connection attempt step, shared by input and output threads: respect the backoff, try
//! for at most one poll interval, and say what happened.

use super::status::{LinkState, LinkStatus};
use super::POLL;
use crate::common::events::EventKind;
use crate::common::metrics::LinkMetrics;
use crate::relay::backoff::Backoff;
use crate::relay::LinkError;
use std::time::{Duration, Instant};

pub(super) enum Step {
    Connected,
    /// Not yet (listening, dialing, or waiting out the backoff); try again next loop.
    Pending,
    /// The link can never work; the route has to stop.
    Fatal,
}

/// `connect` is the link's own connect call with the poll timeout.
pub(super) fn step(
    backs_off: bool,
    backoff: &mut Backoff,
    status: &LinkStatus,
    metrics: &LinkMetrics,
    side: &'static str,
    connect: impl FnOnce(Duration) -> Result<bool, LinkError>,
) -> Step {
    let now = Instant::now();
    status.set_state(if backs_off {
        LinkState::Connecting
    } else {
        LinkState::Waiting
    });
    if backs_off && !backoff.ready(now) {
        let wait = backoff
            .deadline()
            .map_or(POLL, |d| d.saturating_duration_since(now));
        std::thread::sleep(wait.min(POLL));
        return Step::Pending;
    }
    match connect(POLL) {
        Ok(true) => {
            backoff.reset();
            status.set_state(LinkState::Connected);
            Step::Connected
        }
        Ok(false) => Step::Pending,
        Err(LinkError::Fatal(e)) => {
            tracing::error!(error = %e, side, "link failed");
            metrics.event(EventKind::LinkFailed, |ev| {
                ev.reason = Some(crate::common::redact::scrub(&e).to_string());
            });
            status.fail(e);
            Step::Fatal
        }
        Err(e) => {
            let delay = backoff.fail(now);
            tracing::warn!(error = %e, side, retry_in_ms = delay.as_millis() as u64, attempt = backoff.failures(), "connection attempt failed");
            metrics.event(EventKind::ReconnectAttemptFailed, |ev| {
                ev.reason = Some(crate::common::redact::scrub(&e.to_string()).to_string());
                ev.retry_in_ms = Some(delay.as_millis() as u64);
                ev.attempt = Some(backoff.failures());
            });
            Step::Pending
        }
    }
}
