//! The HTTP control API under `/api/` (documented in `docs/openapi.json`). Every change goes
//! through the same path as a reload: the whole configuration is checked, then only the
//! difference is applied. Mutating calls need the bearer token when one is configured. No
//! secret is ever returned: URIs come back with secret values masked.

// Handlers answer with axum's Response on every path, errors included; boxing it to please
// `result_large_err` would only add an allocation to a control path.
#![allow(clippy::result_large_err)]

use super::file::{ConfigFile, OutputConfig, RouteConfig, ServerConfig};
use super::supervisor::Changes;
use crate::common::redact::{is_secret_key, MASK};
use crate::http::AppState;
use crate::route::RouteSnapshot;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/routes", get(list))
        .route(
            "/api/routes/{name}",
            get(get_one).put(put_one).delete(delete_one),
        )
        .route("/api/routes/{name}/outputs", post(add_output))
        .route("/api/routes/{name}/outputs/{output}", delete(remove_output))
        .route("/api/servers", get(list_servers))
        .route(
            "/api/servers/{name}",
            get(get_server).put(put_server).delete(delete_server),
        )
        .route("/api/reload", post(reload))
}

#[derive(Serialize)]
struct RouteView {
    config: RouteConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<RouteSnapshot>,
}

fn error(status: StatusCode, message: &str, details: &[String]) -> Response {
    (
        status,
        Json(json!({ "error": message, "details": details })),
    )
        .into_response()
}

/// Masks every secret value (`passphrase=`, `secret=`, `password=`...) in a URI as written.
pub fn redact_uri(uri: &str) -> String {
    let Some((base, query)) = uri.split_once('?') else {
        return uri.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

fn redacted(route: &RouteConfig) -> RouteConfig {
    let mut r = route.clone();
    r.input = redact_uri(&r.input);
    for secret in [
        &mut r.publish_passphrase,
        &mut r.play_passphrase,
        &mut r.publish_password,
        &mut r.play_password,
    ] {
        if secret.is_some() {
            *secret = Some(MASK.to_owned());
        }
    }
    for o in &mut r.outputs {
        *o = match o {
            OutputConfig::Uri(u) => OutputConfig::Uri(redact_uri(u)),
            OutputConfig::Table {
                name,
                uri,
                time_buffer_ms,
            } => OutputConfig::Table {
                name: name.clone(),
                uri: redact_uri(uri),
                time_buffer_ms: *time_buffer_ms,
            },
        };
    }
    r
}

fn control(state: &AppState) -> Result<&Arc<super::Control>, Response> {
    state.control.as_ref().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "no configuration file: the control API needs `stream-relay run --config FILE`",
            &[],
        )
    })
}

/// Constant-time comparison, so the time taken says nothing about the token.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let control = control(state)?;
    let token = control.token.lock().unwrap_or_else(|p| p.into_inner());
    let Some(token) = token.as_ref() else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if same(given.as_bytes(), token.expose().as_bytes()) {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required (Authorization: Bearer ...)",
            &[],
        ))
    }
}

fn snapshot(state: &AppState, name: &str) -> Option<RouteSnapshot> {
    state
        .routes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|r| r.name() == name)
        .map(|r| r.snapshot())
}

fn current_file(control: &super::Control) -> ConfigFile {
    control
        .supervisor
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .file()
        .clone()
}

async fn list(State(state): State<Arc<AppState>>) -> Response {
    let control = match control(&state) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let views: Vec<RouteView> = current_file(control)
        .routes
        .iter()
        .map(|r| RouteView {
            config: redacted(r),
            status: snapshot(&state, &r.name),
        })
        .collect();
    Json(views).into_response()
}

async fn get_one(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let control = match control(&state) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match current_file(control).routes.iter().find(|r| r.name == name) {
        Some(r) => Json(RouteView {
            config: redacted(r),
            status: snapshot(&state, &r.name),
        })
        .into_response(),
        None => error(StatusCode::NOT_FOUND, "no such route", &[]),
    }
}

/// Applies `file` like a reload and answers with what changed.
async fn apply(state: Arc<AppState>, file: ConfigFile, created: bool) -> Response {
    let control = match control(&state) {
        Ok(c) => c.clone(),
        Err(r) => return r,
    };
    let st = state.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let result = control.apply(&file, &st.routes);
        if let Ok(changes) = &result {
            if control.persist && changes.failed.is_empty() {
                if let Err(e) = control.persist_file(&file) {
                    tracing::error!(error = %e, "cannot persist the configuration");
                }
            }
        }
        result
    })
    .await;
    match outcome {
        Ok(Ok(changes)) => changes_response(changes, created),
        Ok(Err(errors)) if errors.iter().any(|e| e.contains("is already bound by")) => error(
            StatusCode::CONFLICT,
            "conflicts with the running configuration",
            &errors,
        ),
        Ok(Err(errors)) => error(StatusCode::BAD_REQUEST, "invalid configuration", &errors),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the change did not complete",
            &[],
        ),
    }
}

fn changes_response(changes: Changes, created: bool) -> Response {
    if !changes.failed.is_empty() {
        let failed = changes.failed.clone();
        return error(
            StatusCode::CONFLICT,
            "valid, but could not start (a port in use?)",
            &failed,
        );
    }
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (code, Json(json!({ "changes": changes }))).into_response()
}

/// A change through the API: authorised, made to the configuration in force, then applied as
/// a reload would be. `edit` says whether it created something (201), or gives the answer to
/// a request it cannot apply.
async fn change(
    state: Arc<AppState>,
    headers: &HeaderMap,
    edit: impl FnOnce(&mut ConfigFile) -> Result<bool, Response>,
) -> Response {
    if let Err(r) = authorize(&state, headers) {
        return r;
    }
    let control = match control(&state) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut file = current_file(control);
    match edit(&mut file) {
        Ok(created) => apply(state.clone(), file, created).await,
        Err(r) => r,
    }
}

/// Replaces the item `is_it` finds, or appends `item`: true when appended.
fn upsert<T>(items: &mut Vec<T>, item: T, is_it: impl Fn(&T) -> bool) -> bool {
    match items.iter_mut().find(|i| is_it(i)) {
        Some(old) => {
            *old = item;
            false
        }
        None => {
            items.push(item);
            true
        }
    }
}

/// Removes the item `is_it` finds; 404 naming `what` if there is none.
fn remove<T>(items: &mut Vec<T>, is_it: impl Fn(&T) -> bool, what: &str) -> Result<bool, Response> {
    let before = items.len();
    items.retain(|i| !is_it(i));
    if items.len() == before {
        return Err(error(
            StatusCode::NOT_FOUND,
            &format!("no such {what}"),
            &[],
        ));
    }
    Ok(false)
}

/// A `what` (route, server) in JSON; its `name`, if given, must be the one in the path.
fn named_body<T: serde::de::DeserializeOwned>(
    body: &str,
    name: &str,
    what: &str,
) -> Result<T, Response> {
    let mut v: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("the body is not JSON: {e}"),
            &[],
        )
    })?;
    if let Some(obj) = v.as_object_mut() {
        if obj
            .get("name")
            .and_then(|n| n.as_str())
            .is_some_and(|n| n != name)
        {
            return Err(error(
                StatusCode::BAD_REQUEST,
                &format!("the {what}'s name in the body differs from the one in the path"),
                &[],
            ));
        }
        obj.insert("name".into(), json!(name));
    }
    serde_json::from_value(v)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("not a {what}: {e}"), &[]))
}

async fn put_one(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    change(state, &headers, |file| {
        let route: RouteConfig = named_body(&body, &name, "route")?;
        Ok(upsert(&mut file.routes, route, |r| r.name == name))
    })
    .await
}

async fn delete_one(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    change(state, &headers, |file| {
        remove(&mut file.routes, |r| r.name == name, "route")
    })
    .await
}

async fn add_output(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    change(state, &headers, |file| add_output_to(file, &name, &body)).await
}

fn add_output_to(file: &mut ConfigFile, name: &str, body: &str) -> Result<bool, Response> {
    let output: OutputConfig = serde_json::from_str(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!(
                "not an output (a URI string or an object with name, uri, time_buffer_ms): {e}"
            ),
            &[],
        )
    })?;
    let Some(route) = file.routes.iter_mut().find(|r| r.name == name) else {
        return Err(error(StatusCode::NOT_FOUND, "no such route", &[]));
    };
    // An output added by the API gets a name, so later changes can address it.
    let output = match output {
        OutputConfig::Uri(uri) => OutputConfig::Table {
            name: Some(format!("out{}", route.outputs.len() + 1)),
            uri,
            time_buffer_ms: None,
        },
        t => t,
    };
    let wanted = output.name().map(str::to_owned);
    if let Some(n) = &wanted {
        if output_names(route).contains(n) {
            return Err(error(
                StatusCode::CONFLICT,
                "the route already has an output by that name",
                &[],
            ));
        }
    }
    route.outputs.push(output);
    Ok(true)
}

/// The names outputs get in a route (given, or `outN` by position).
fn output_names(route: &RouteConfig) -> Vec<String> {
    route
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            o.name()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("out{}", i + 1))
        })
        .collect()
}

async fn remove_output(
    State(state): State<Arc<AppState>>,
    Path((name, output)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    change(state, &headers, |file| {
        remove_output_from(file, &name, &output)
    })
    .await
}

fn remove_output_from(file: &mut ConfigFile, name: &str, output: &str) -> Result<bool, Response> {
    let Some(route) = file.routes.iter_mut().find(|r| r.name == name) else {
        return Err(error(StatusCode::NOT_FOUND, "no such route", &[]));
    };
    let names = output_names(route);
    let Some(i) = names.iter().position(|n| *n == output) else {
        return Err(error(StatusCode::NOT_FOUND, "no such output", &[]));
    };
    // Outputs named by position keep their names: the others are written out with theirs.
    let mut kept = Vec::new();
    for (j, o) in route.outputs.drain(..).enumerate() {
        if j == i {
            continue;
        }
        kept.push(match o {
            OutputConfig::Uri(uri) => OutputConfig::Table {
                name: Some(names[j].clone()),
                uri,
                time_buffer_ms: None,
            },
            t => t,
        });
    }
    route.outputs = kept;
    Ok(false)
}

async fn reload(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    let control = match control(&state) {
        Ok(c) => c.clone(),
        Err(r) => return r,
    };
    let st = state.clone();
    match tokio::task::spawn_blocking(move || control.reload(&st.routes)).await {
        Ok(Ok(changes)) => changes_response(changes, false),
        Ok(Err(errors)) => error(
            StatusCode::BAD_REQUEST,
            "invalid configuration: nothing changed",
            &errors,
        ),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the reload did not complete",
            &[],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_uris_as_written() {
        assert_eq!(
            redact_uri("srt://:9000?passphrase=${P}&latency=120"),
            "srt://:9000?passphrase=***&latency=120"
        );
        assert_eq!(
            redact_uri("rist://h:1?secret=abcdefghij&aes-type=128&password=x"),
            "rist://h:1?secret=***&aes-type=128&password=***"
        );
        assert_eq!(redact_uri("udp://h:1"), "udp://h:1");
    }

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}

fn redacted_server(s: &ServerConfig) -> ServerConfig {
    ServerConfig {
        listen: redact_uri(&s.listen),
        ..s.clone()
    }
}

/// A shared SRT listener and the streams its routes serve.
#[derive(Serialize)]
struct ServerView {
    config: ServerConfig,
    streams: Vec<String>,
}

fn server_view(file: &ConfigFile, s: &ServerConfig) -> ServerView {
    let mut streams: Vec<String> = file
        .routes
        .iter()
        .filter(|r| r.server.as_deref() == Some(s.name.as_str()))
        .map(|r| r.stream.clone().unwrap_or_else(|| r.name.clone()))
        .collect();
    streams.sort();
    ServerView {
        config: redacted_server(s),
        streams,
    }
}

async fn list_servers(State(state): State<Arc<AppState>>) -> Response {
    let control = match control(&state) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let file = current_file(control);
    let views: Vec<ServerView> = file.servers.iter().map(|s| server_view(&file, s)).collect();
    Json(views).into_response()
}

async fn get_server(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let control = match control(&state) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let file = current_file(control);
    match file.servers.iter().find(|s| s.name == name) {
        Some(s) => Json(server_view(&file, s)).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such server", &[]),
    }
}

async fn put_server(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    change(state, &headers, |file| {
        let server: ServerConfig = named_body(&body, &name, "server")?;
        Ok(upsert(&mut file.servers, server, |s| s.name == name))
    })
    .await
}

async fn delete_server(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    change(state, &headers, |file| {
        remove(&mut file.servers, |s| s.name == name, "server")
    })
    .await
}
