//! Checks `docs/openapi.json` against the running server: every path the code serves is
//! documented, and every documented operation, called in the document's test order with its
//! examples, answers with the status the document expects, a body with the documented
//! required fields, and 401 without the token where the document asks for one.

mod common;

use common::*;
use serde_json::Value;

fn doc() -> Value {
    serde_json::from_str(include_str!("../../docs/openapi.json")).expect("openapi.json is JSON")
}

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let mut cur = doc;
            for part in r.trim_start_matches("#/").split('/') {
                cur = &cur[part];
            }
            cur
        }
        None => v,
    }
}

fn check_required(doc: &Value, schema: &Value, body: &Value, at: &str) {
    let schema = resolve(doc, schema);
    if schema["type"] == "array" {
        if let Some(first) = body.as_array().and_then(|a| a.first()) {
            check_required(doc, &schema["items"], first, at);
        }
        return;
    }
    for key in schema["required"].as_array().into_iter().flatten() {
        let key = key.as_str().expect("required key");
        assert!(
            body.get(key).is_some(),
            "{at}: response lacks documented field '{key}': {body}"
        );
        if let Some(sub) = schema["properties"].get(key) {
            check_required(doc, sub, &body[key], at);
        }
    }
}

#[test]
fn every_served_path_is_documented() {
    let doc = doc();
    let sources = [
        include_str!("../src/http.rs"),
        include_str!("../src/control/api.rs"),
        include_str!("../src/monitor.rs"),
    ];
    let mut served = 0;
    for src in sources {
        for part in src.split(".route(").skip(1) {
            let Some(rest) = part.trim_start().strip_prefix('"') else {
                continue;
            };
            let path = rest.split('"').next().expect("path");
            served += 1;
            assert!(
                doc["paths"].get(path).is_some(),
                "{path} is served but not in docs/openapi.json"
            );
        }
    }
    assert!(served >= 7, "found only {served} served paths");
}

#[test]
fn the_running_server_matches_the_document() {
    let dir = std::env::temp_dir().join(format!("stream-relay-openapi-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("relay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[http]\ntoken = \"${{API_TOKEN}}\"\n[[route]]\nname = \"cam1\"\ninput = \"udp://127.0.0.1:{}\"\noutputs = [\"udp://127.0.0.1:{}\"]\n",
            free_port(),
            free_port()
        ),
    )
    .expect("config");
    let token = "openapi-test-token-1";
    let relay = Relay::start_env(
        &["run", "--config", cfg.to_str().expect("path"), "--persist"],
        &[("API_TOKEN", token)],
    );
    let doc = doc();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if method == "parameters" {
                continue;
            }
            let order = op["x-test-order"].as_i64().expect("x-test-order");
            ops.push((
                order,
                path.clone(),
                method.to_uppercase(),
                item.clone(),
                op.clone(),
            ));
        }
    }
    ops.sort_by_key(|o| o.0);
    assert!(ops.len() >= 9, "{} operations", ops.len());
    for (_, path, method, item, op) in ops {
        let mut url = path.clone();
        for p in item["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().expect("name");
            url = url.replace(
                &format!("{{{name}}}"),
                p["example"].as_str().expect("example"),
            );
        }
        let body = op["requestBody"]["content"]["application/json"]["example"]
            .as_object()
            .map(|_| {
                let mut text =
                    op["requestBody"]["content"]["application/json"]["example"].to_string();
                while text.contains("{free_port}") {
                    text = text.replacen("{free_port}", &free_port().to_string(), 1);
                }
                text
            });
        let secured = op.get("security").is_some();
        if secured {
            let (code, _) =
                http_request(relay.http, &method, &url, body.as_deref(), None).expect("answer");
            assert_eq!(code, 401, "{method} {url} without a token");
            assert!(
                op["responses"].get("401").is_some(),
                "{method} {path}: 401 undocumented"
            );
        }
        let (code, text) = http_request(
            relay.http,
            &method,
            &url,
            body.as_deref(),
            secured.then_some(token),
        )
        .expect("answer");
        let expect = op["x-test-expect"].as_u64().expect("x-test-expect");
        assert_eq!(u64::from(code), expect, "{method} {url}: {text}");
        let documented = &op["responses"][code.to_string()];
        assert!(
            documented.is_object(),
            "{method} {path}: {code} undocumented"
        );
        if let Some(schema) = documented["content"]["application/json"].get("schema") {
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {text}"));
            check_required(&doc, schema, &v, &format!("{method} {path}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
