//! The committed spec must be what the code generates.

use utoipa::OpenApi;

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
    let spec = chat_api::openapi::ApiDoc::openapi();
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
