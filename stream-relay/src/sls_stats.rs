//! `GET /stats`: publisher statistics in the JSON shape of SRT Live Server (irl-srt-server),
//! which the auto-bitrate scene switchers of IRL streaming read (NOALBS `SrtLiveServer` and
//! `Belabox` types). Every field NOALBS deserialises must be present with the JSON number
//! type it expects (integers stay integers), or it silently takes the stream for offline.
//! The figures come from the same metric handles as `/metrics` and the feed.
//!
//! - `GET /stats?publisher=KEY`: one publisher, keyed by KEY exactly as asked. KEY may be the
//!   route's name, its stream name, or any Stream ID a publisher would send for it
//!   (`publish/live/feed1`). Open, as irl-srt-server's: the caller already knows the name.
//! - `GET /stats`: every connected publisher, keyed `publish/STREAM` (SLS's form) or by route
//!   name for routes with their own input. Stream names can be stream keys, so when an API
//!   token is configured this needs it (`Authorization: Bearer TOKEN`, or the bare token as
//!   irl-srt-server takes its API key).

use crate::http::AppState;
use crate::route::status::LinkState;
use crate::route::Route;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The `publisher` parameter, percent-decoded (a Stream ID may be written encoded).
fn publisher_param(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "publisher")
        .map(|(_, v)| crate::common::uri::percent_decode(v).unwrap_or_else(|| v.to_owned()))
}

/// One publisher, as irl-srt-server's `SLSManager` writes it (field names and number types).
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Publisher {
    /// kbps, integer.
    pub bitrate: i64,
    pub bytes_rcv_drop: u64,
    pub bytes_rcv_loss: u64,
    /// SLS reports libsrt's link capacity estimate here; we report the receive rate, a lower
    /// bound of it (switchers only display this field).
    pub mbps_bandwidth: f64,
    pub mbps_recv_rate: f64,
    pub ms_rcv_buf: i64,
    pub pkt_rcv_drop: i64,
    pub pkt_rcv_loss: i64,
    pub rtt: f64,
    /// Seconds since this publisher connected.
    pub uptime: i64,
    /// Negotiated SRT latency, ms.
    pub latency: i64,
    /// BELABOX-style name of `pktRcvDrop`, for NOALBS's `Belabox` type.
    #[serde(rename = "dropped_pkts")]
    pub dropped_pkts: i64,
}

fn publisher(route: &Route, now_ms: u64) -> Option<Publisher> {
    let stats = route.stats();
    let input = &stats.input;
    if !matches!(input.state, LinkState::Connected | LinkState::Idle) {
        return None;
    }
    let avg_packet = input
        .bytes_total
        .checked_div(input.packets_total)
        .unwrap_or(1316);
    let ms = |seconds: f64| (seconds * 1000.0).round() as i64;
    let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let recv_mbps = input.bitrate_kbps / 1000.0;
    Some(Publisher {
        bitrate: input.bitrate_kbps.round() as i64,
        bytes_rcv_drop: input.packets_lost_total.saturating_mul(avg_packet),
        bytes_rcv_loss: input.packets_loss_detected_total.saturating_mul(avg_packet),
        mbps_bandwidth: recv_mbps,
        mbps_recv_rate: recv_mbps,
        ms_rcv_buf: ms(input.buffer_seconds),
        pkt_rcv_drop: count(input.packets_lost_total),
        pkt_rcv_loss: count(input.packets_loss_detected_total),
        rtt: input.rtt_seconds * 1000.0,
        uptime: route
            .input_connected_at_ms()
            .map_or(0, |t| (now_ms.saturating_sub(t) / 1000) as i64),
        latency: ms(input.latency_seconds),
        dropped_pkts: count(input.packets_lost_total),
    })
}

/// Whether `key` names `route` for a switcher: the route's name, its stream, or a Stream ID
/// that publishes to it.
fn names(route: &Route, key: &str) -> bool {
    if key == route.name() {
        return true;
    }
    let Some(stream) = route.stream() else {
        return false;
    };
    key == stream
        || crate::srt::streamid::parse(key)
            .is_ok_and(|r| r.stream == stream && r.mode != crate::srt::streamid::Mode::Play)
}

fn listing_key(route: &Route) -> String {
    match route.stream() {
        Some(s) => format!("publish/{s}"),
        None => route.name().to_owned(),
    }
}

fn allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(control) = &state.control else {
        return true;
    };
    let token = control.token.lock().unwrap_or_else(|p| p.into_inner());
    let Some(token) = token.as_ref() else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v))
        .unwrap_or("");
    crate::control::api::same(given.as_bytes(), token.expose().as_bytes())
}

pub async fn stats(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let asked = publisher_param(query.as_deref());
    if asked.is_none() && !allowed(&state, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({
                "message": "listing every publisher needs the API token; ask for one with ?publisher=NAME",
                "status": "error"
            })),
        )
            .into_response();
    }
    let now = crate::common::events::unix_ms();
    let mut publishers = Map::new();
    {
        let routes = state.routes.lock().unwrap_or_else(|p| p.into_inner());
        for route in routes.iter() {
            let key = match &asked {
                Some(k) if names(route, k) => k.clone(),
                Some(_) => continue,
                None => listing_key(route),
            };
            if let Some(p) = publisher(route, now) {
                publishers.insert(key, serde_json::to_value(p).unwrap_or(Value::Null));
            }
            if asked.is_some() {
                break;
            }
        }
    }
    Json(json!({ "publishers": publishers, "status": "ok" })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publisher_parameter_is_decoded() {
        assert_eq!(
            publisher_param(Some("publisher=publish/live/feed1")).as_deref(),
            Some("publish/live/feed1")
        );
        assert_eq!(
            publisher_param(Some("x=1&publisher=%23%21%3A%3Ar%3Dcam%2Cm%3Dpublish")).as_deref(),
            Some("#!::r=cam,m=publish")
        );
        assert_eq!(
            publisher_param(Some("publisher=a%2")).as_deref(),
            Some("a%2")
        );
        assert_eq!(publisher_param(Some("publisher=%")).as_deref(), Some("%"));
        assert_eq!(publisher_param(None), None);
    }
}
