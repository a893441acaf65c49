//! Live monitoring: `GET /ws`, a read-only WebSocket feed (snapshot, periodic stats, events;
//! format in `docs/ws-schema.json`), and `GET /`, the embedded page that shows it.
//!
//! A client can never slow the relay or another client down. Each connection has two tasks: a
//! producer that puts messages in the connection's own bounded outbox, and a writer that
//! drains it into the socket. A client that reads slowly only fills its outbox; there, the
//! oldest stats go first (newer stats supersede them), events are kept until the outbox is
//! full of events, and the client is told what it missed (`{"type":"missed",...}`) before its
//! next message. A client that takes nothing for `STALL_LIMIT` is disconnected.
//!
//! Stats ticks are aligned on the relay's start time, so clients with the same interval tick
//! together and share one serialised message (`Feed::stats`): 100 clients cost one read of the
//! metrics and one JSON encoding per tick, plus 100 socket writes.

use crate::common::events::{unix_ms, EventKind, FEED_VERSION};
use crate::http::AppState;
use crate::route::{Route, RouteSnapshot};
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;

/// The page, embedded: it must work on a network with no way out (no CDN, no web fonts).
const PAGE: &str = include_str!("monitor/index.html");

pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(1000);
pub const MIN_INTERVAL_MS: u64 = 100;
pub const MAX_INTERVAL_MS: u64 = 60_000;
/// Messages an outbox holds; stats beyond `OUTBOX_STATS` are replaced oldest first.
pub const OUTBOX_MESSAGES: usize = 256;
pub const OUTBOX_STATS: usize = 4;
/// A client whose outbox has not moved for this long is gone (or stuck): close it.
const STALL_LIMIT: Duration = Duration::from_secs(30);

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/", get(page)).route("/ws", get(feed))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // Nothing from elsewhere: scripts and styles are inline, data comes from /ws.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self' data:",
            ),
        ],
        PAGE,
    )
        .into_response()
}

/// What the feed shares between its connections.
#[derive(Default)]
pub struct Feed {
    /// The last stats message and the tick it was made for (ms since start).
    stats: Mutex<Option<(u64, Utf8Bytes)>>,
    clients: AtomicU64,
}

impl Feed {
    pub fn clients(&self) -> u64 {
        self.clients.load(Ordering::Relaxed)
    }

    /// The stats message of one tick, made once for every client on that tick. None while a
    /// reload holds the routes (it may be joining threads): the tick is skipped rather than
    /// blocking an async worker, and the next one reports.
    fn stats(&self, state: &AppState, tick_ms: u64) -> Option<Utf8Bytes> {
        let mut cached = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, msg)) = cached.as_ref() {
            if *t == tick_ms {
                return Some(msg.clone());
            }
        }
        let routes = match state.routes.try_lock() {
            Ok(r) => r,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        let msg: Utf8Bytes = stats_message(state, &routes).into();
        *cached = Some((tick_ms, msg.clone()));
        Some(msg)
    }
}

#[derive(Serialize)]
struct Error<'a> {
    error: &'a str,
}

fn refuse(code: StatusCode, error: &str) -> Response {
    (code, Json(Error { error })).into_response()
}

struct Params {
    interval: Duration,
    token: Option<String>,
}

fn params(query: Option<&str>) -> Result<Params, String> {
    let mut p = Params {
        interval: DEFAULT_INTERVAL,
        token: None,
    };
    for pair in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "interval_ms" => {
                let ms: u64 = value
                    .parse()
                    .ok()
                    .filter(|ms| (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(ms))
                    .ok_or_else(|| {
                        format!(
                            "interval_ms must be an integer from {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS}"
                        )
                    })?;
                p.interval = Duration::from_millis(ms);
            }
            "token" => {
                p.token = Some(
                    crate::common::uri::percent_decode(value)
                        .ok_or("token is not valid percent-encoded text")?,
                );
            }
            // Never echo the key back: it could be anything (a mistyped secret).
            _ => return Err("unknown query parameter (known: interval_ms, token)".into()),
        }
    }
    Ok(p)
}

/// The feed is read-only and shows nothing secret, so like the API's reads it is open. When a
/// token is configured a client may present it (`Authorization: Bearer`, or `?token=` where a
/// browser cannot set headers); a token that is presented and wrong is refused, so a
/// misconfigured back-end learns it at once instead of later at a mutating call.
fn check_token(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(), &'static str> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(given) = header.or_else(|| query.map(str::to_owned)) else {
        return Ok(());
    };
    let configured = state
        .control
        .as_ref()
        .and_then(|c| c.token.lock().unwrap_or_else(|p| p.into_inner()).clone());
    match configured {
        Some(t) if crate::control::api::same(given.as_bytes(), t.expose().as_bytes()) => Ok(()),
        Some(_) => Err("wrong token"),
        None => Ok(()),
    }
}

async fn feed(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let p = match params(query.as_deref()) {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e),
    };
    if let Err(e) = check_token(&state, &headers, p.token.as_deref()) {
        return refuse(StatusCode::UNAUTHORIZED, e);
    }
    let interval = p.interval;
    upgrade
        .max_message_size(64 * 1024)
        // Clients only send control frames, and each message is flushed as it is sent: no need
        // for tungstenite's 128 KiB default buffers per client.
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| serve(socket, state, interval))
}

enum Item {
    Stats(Utf8Bytes),
    /// Snapshots and events: kept while there is room.
    Other(Utf8Bytes),
}

/// One client's bounded queue.
struct Outbox {
    queue: Mutex<VecDeque<Item>>,
    ready: Notify,
    missed_stats: AtomicU64,
    missed_events: AtomicU64,
    /// Milliseconds since `born` at the writer's last completed send.
    progress_ms: AtomicU64,
    born: Instant,
}

impl Outbox {
    fn new() -> Outbox {
        Outbox {
            queue: Mutex::new(VecDeque::with_capacity(16)),
            ready: Notify::new(),
            missed_stats: AtomicU64::new(0),
            missed_events: AtomicU64::new(0),
            progress_ms: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    fn push(&self, item: Item) {
        {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let stats = q.iter().filter(|i| matches!(i, Item::Stats(_))).count();
            let is_stats = matches!(item, Item::Stats(_));
            if (is_stats && stats >= OUTBOX_STATS) || q.len() >= OUTBOX_MESSAGES {
                if let Some(i) = q.iter().position(|i| matches!(i, Item::Stats(_))) {
                    q.remove(i);
                    self.missed_stats.fetch_add(1, Ordering::Relaxed);
                } else if let Some(Item::Other(_)) = q.pop_front() {
                    self.missed_events.fetch_add(1, Ordering::Relaxed);
                }
            }
            q.push_back(item);
        }
        self.ready.notify_one();
    }

    async fn pop(&self) -> Item {
        loop {
            if let Some(item) = self
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            {
                return item;
            }
            self.ready.notified().await;
        }
    }

    /// The `missed` message owed to the client, if it missed anything since the last one.
    fn missed(&self) -> Option<Utf8Bytes> {
        let stats = self.missed_stats.swap(0, Ordering::Relaxed);
        let events = self.missed_events.swap(0, Ordering::Relaxed);
        (stats + events > 0).then(|| {
            serde_json::json!({"type": "missed", "v": FEED_VERSION, "time_ms": unix_ms(), "stats": stats, "events": events})
                .to_string()
                .into()
        })
    }

    fn stalled(&self) -> bool {
        let waiting = !self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        let since = (self.born.elapsed().as_millis() as u64)
            .saturating_sub(self.progress_ms.load(Ordering::Relaxed));
        waiting && since > STALL_LIMIT.as_millis() as u64
    }
}

async fn serve(socket: WebSocket, state: Arc<AppState>, interval: Duration) {
    state.feed.clients.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut incoming) = socket.split();
    // Subscribed before the snapshot is taken, so no event falls between the two.
    let mut events = state.metrics.events.subscribe();
    let outbox = Arc::new(Outbox::new());
    outbox.push(Item::Other(snapshot_message(&state, interval).into()));
    let first = stats_message(
        &state,
        &state.routes.lock().unwrap_or_else(|p| p.into_inner()),
    );
    outbox.push(Item::Stats(first.into()));

    let out = outbox.clone();
    let mut writer = tokio::spawn(async move {
        loop {
            let item = out.pop().await;
            if let Some(missed) = out.missed() {
                sink.send(Message::Text(missed)).await?;
            }
            let (Item::Stats(text) | Item::Other(text)) = item;
            sink.send(Message::Text(text)).await?;
            out.progress_ms
                .store(out.born.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        #[allow(unreachable_code)]
        Ok::<(), axum::Error>(())
    });

    // Ticks fall on multiples of the interval since the relay started (shared by clients).
    let period_ms = interval.as_millis() as u64;
    let since_start = state.started.elapsed().as_millis() as u64;
    let next = (since_start / period_ms + 1) * period_ms;
    let mut ticker = tokio::time::interval_at(
        (state.started + Duration::from_millis(next)).into(),
        interval,
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    loop {
        tokio::select! {
            at = ticker.tick() => {
                if state.stopping.load(Ordering::Acquire) || outbox.stalled() {
                    break;
                }
                let at: Instant = at.into();
                let tick_ms = at.saturating_duration_since(state.started).as_millis() as u64;
                // Rounded to the period, so clients that woke a little apart share the tick.
                let tick_ms = (tick_ms + period_ms / 2) / period_ms * period_ms;
                if let Some(stats) = state.feed.stats(&state, tick_ms) {
                    outbox.push(Item::Stats(stats));
                }
            }
            event = events.recv() => match event {
                Ok((kind, json)) => {
                    outbox.push(Item::Other(json.as_ref().into()));
                    // Routes or outputs may have come or gone: describe them again.
                    if kind == EventKind::ConfigReloaded {
                        outbox.push(Item::Other(snapshot_message(&state, interval).into()));
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    outbox.missed_events.fetch_add(n, Ordering::Relaxed);
                }
                Err(RecvError::Closed) => break,
            },
            msg = incoming.next() => match msg {
                // Pings are answered by the WebSocket layer; anything else is ignored.
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = &mut writer => break,
        }
    }
    writer.abort();
    state.feed.clients.fetch_sub(1, Ordering::Relaxed);
}

fn status(state: &AppState, routes: &[Route]) -> &'static str {
    if state.stopping.load(Ordering::Acquire) {
        "stopping"
    } else if routes.iter().any(|r| r.failure().is_some()) {
        "failed"
    } else {
        "ok"
    }
}

fn snapshot_message(state: &AppState, interval: Duration) -> String {
    #[derive(Serialize)]
    struct Snapshot<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        v: u32,
        time_ms: u64,
        version: &'static str,
        uptime_s: f64,
        status: &'a str,
        interval_ms: u64,
        routes: Vec<RouteSnapshot>,
    }
    let routes = state.routes.lock().unwrap_or_else(|p| p.into_inner());
    let msg = Snapshot {
        kind: "snapshot",
        v: FEED_VERSION,
        time_ms: unix_ms(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: state.started.elapsed().as_secs_f64(),
        status: status(state, &routes),
        interval_ms: interval.as_millis() as u64,
        routes: routes.iter().map(Route::snapshot).collect(),
    };
    serde_json::to_string(&msg).unwrap_or_default()
}

fn stats_message(state: &AppState, routes: &[Route]) -> String {
    #[derive(Serialize)]
    struct Stats<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        v: u32,
        time_ms: u64,
        uptime_s: f64,
        status: &'a str,
        clients: u64,
        routes: Vec<crate::route::stats::RouteStats>,
    }
    let msg = Stats {
        kind: "stats",
        v: FEED_VERSION,
        time_ms: unix_ms(),
        uptime_s: state.started.elapsed().as_secs_f64(),
        status: status(state, routes),
        clients: state.feed.clients(),
        routes: routes.iter().map(Route::stats).collect(),
    };
    serde_json::to_string(&msg).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(o: &Outbox) -> Vec<String> {
        o.queue
            .lock()
            .unwrap()
            .iter()
            .map(|i| match i {
                Item::Stats(t) => format!("s:{}", t.as_str()),
                Item::Other(t) => format!("e:{}", t.as_str()),
            })
            .collect()
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_stats_first_and_keeps_events() {
        let o = Outbox::new();
        for i in 0..10 {
            o.push(Item::Stats(format!("{i}").into()));
            o.push(Item::Other(format!("{i}").into()));
        }
        let q = texts(&o);
        // Only the newest stats are left; every event is still there.
        assert_eq!(
            q.iter().filter(|t| t.starts_with("s:")).collect::<Vec<_>>(),
            ["s:6", "s:7", "s:8", "s:9"]
        );
        assert_eq!(q.iter().filter(|t| t.starts_with("e:")).count(), 10);
        assert_eq!(o.missed_stats.load(Ordering::Relaxed), 6);
        // Events only go when the outbox is full of events.
        for i in 0..OUTBOX_MESSAGES {
            o.push(Item::Other(format!("x{i}").into()));
        }
        assert_eq!(o.queue.lock().unwrap().len(), OUTBOX_MESSAGES);
        assert!(o.missed_events.load(Ordering::Relaxed) > 0);
        let missed: serde_json::Value = serde_json::from_str(o.missed().unwrap().as_str()).unwrap();
        assert_eq!(missed["type"], "missed");
        assert_eq!(missed["stats"], 10);
        assert!(o.missed().is_none(), "reported once");
    }

    #[test]
    fn query_parameters_are_checked() {
        assert_eq!(params(None).unwrap().interval, DEFAULT_INTERVAL);
        assert_eq!(
            params(Some("interval_ms=250")).unwrap().interval,
            Duration::from_millis(250)
        );
        assert!(params(Some("interval_ms=5")).is_err());
        assert!(params(Some("interval_ms=x")).is_err());
        assert!(params(Some("passphrase=abc")).is_err());
        assert_eq!(
            params(Some("token=a%2Bb")).unwrap().token.as_deref(),
            Some("a+b")
        );
    }
}
