//! The committed spec must be what the code generates, and what the server serves.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, spawn_app};

#[test]
fn committed_openapi_json_is_fresh() {
    let generated = chat_api::openapi::openapi_json();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json")).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: regenerate it with `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_route_is_documented_with_its_error_envelope() {
    let spec = chat_api::openapi::document();
    let paths: Vec<&String> = spec.paths.paths.keys().collect();
    for expected in [
        "/health",
        "/ready",
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refreshtoken",
        "/api/v1/auth/logout",
        "/api/v1/user/getme",
        "/api/v1/user",
        "/api/v1/user/{id}",
        "/api/v1/conversation",
        "/api/v1/conversation/{id}",
        "/api/v1/message",
        "/api/v1/message/{conversationId}",
    ] {
        assert!(
            paths.iter().any(|path| path.as_str() == expected),
            "{expected} is missing from the spec"
        );
    }
    let json = serde_json::to_value(&spec).unwrap();
    let components = &json["components"]["schemas"];
    assert!(components["ErrorEnvelope"].is_object());
    assert!(json["components"]["securitySchemes"]["bearer"].is_object());
}

/// One declaration serves and documents every route (`routes::route_table!`); this holds the
/// two to each other from the outside. Every documented operation is served (no
/// `route_not_found`, no 405), and each refusal it gives a stranger, a user with a malformed
/// id and a user with unknown ids and an empty body is one it documents.
async fn every_documented_route_is_served_and_documents_its_refusals(backend: Backend) {
    let app = spawn_app(backend).await;
    let spec = serde_json::to_value(chat_api::openapi::document()).unwrap();
    let mut checked = 0;
    let mut undocumented = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            let documented: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
            let bearer = operation.get("security").is_some();
            let has_params = path.contains('{');
            // A user of their own per operation: some end their session (logout).
            let user = app.register_user("Prober").await;
            let attempts = [
                ("a stranger", None, fill_params(path, &Uuid::now_v7().to_string())),
                (
                    "a malformed id",
                    Some(user.token.as_str()),
                    fill_params(path, "not-an-id"),
                ),
                ("a NUL in the id", Some(user.token.as_str()), fill_params(path, "%00")),
                (
                    "unknown ids",
                    Some(user.token.as_str()),
                    fill_params(path, &Uuid::now_v7().to_string()),
                ),
            ];
            for (who, token, url) in attempts {
                if who != "a stranger" && who != "unknown ids" && !has_params {
                    continue;
                }
                let (status, code) = probe(&app, method.clone(), &url, token).await;
                assert!(
                    code.as_deref() != Some("route_not_found") && status != 405,
                    "{method} {path} is documented but not served ({status} {code:?})"
                );
                if who == "a stranger" && bearer {
                    assert_eq!(status, 401, "{method} {path} answers a stranger {status}");
                }
                if !documented
                    .iter()
                    .any(|documented| documented.as_str() == status.to_string())
                {
                    undocumented.push(format!("{method} {path}: {status} {code:?} for {who}"));
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 38, "only {checked} operations in the spec");
    assert!(
        undocumented.is_empty(),
        "refusals missing from the spec:\n{}",
        undocumented.join("\n")
    );
}

/// `path` with every `{parameter}` replaced by `value`.
fn fill_params(path: &str, value: &str) -> String {
    let mut filled = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').map_or(rest.len(), |end| start + end + 1);
        filled.push_str(&rest[..start]);
        filled.push_str(value);
        rest = &rest[end..];
    }
    filled.push_str(rest);
    filled
}

/// The status and error code of one request with an empty JSON body (for methods that take
/// one); an event stream's body is not read.
async fn probe(app: &TestApp, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, Option<String>) {
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .timeout(Duration::from_secs(20));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if matches!(
        method,
        reqwest::Method::POST | reqwest::Method::PATCH | reqwest::Method::PUT
    ) {
        request = request.json(&json!({}));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_json {
        return (status, None);
    }
    let body: Value = response.json().await.unwrap();
    (status, body["error"]["code"].as_str().map(String::from))
}

both_backends!(every_documented_route_is_served_and_documents_its_refusals);
