//! The HTTP server: `/health` (JSON summary), `/metrics` (Prometheus text format), the control
//! API (`/api/`), and the monitoring feed and page (`/ws`, `/`).

use crate::common::metrics::Metrics;
use crate::route::{Route, RouteSnapshot};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub routes: Mutex<Vec<Route>>,
    pub started: Instant,
    /// Set first on shutdown, so load balancers stop sending before streams stop.
    pub stopping: AtomicBool,
    /// Present when routes come from a configuration file (`run --config`).
    pub control: Option<Arc<crate::control::Control>>,
    /// The monitoring feed's shared state (`GET /ws`).
    pub feed: crate::monitor::Feed,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    uptime_s: f64,
    routes: Vec<RouteSnapshot>,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/stats", get(crate::sls_stats::stats))
        .merge(crate::control::api::routes())
        .merge(crate::monitor::routes())
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let routes: Vec<RouteSnapshot> = state
        .routes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(Route::snapshot)
        .collect();
    let failed = routes.iter().any(|r| {
        std::iter::once(&r.input)
            .chain(&r.outputs)
            .any(|l| l.state == crate::route::status::LinkState::Failed)
    });
    let (code, status) = if state.stopping.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping")
    } else if failed {
        (StatusCode::SERVICE_UNAVAILABLE, "failed")
    } else {
        (StatusCode::OK, "ok")
    };
    let body = Health {
        status,
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: state.started.elapsed().as_secs_f64(),
        routes,
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if wants_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            state.metrics.encode(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            state.metrics.encode_text(),
        )
            .into_response()
    }
}
