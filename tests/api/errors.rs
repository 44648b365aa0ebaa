//! The error envelope for what the framework refuses before a handler runs: bodies that are
//! not JSON, of the wrong shape or too large, and routes that do not exist. Every error, from
//! any route, is `{"status":"error","error":{"code","message"}}` and tells nothing internal.

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app, spawn_app_with};

const REGISTER: &str = "/api/v1/auth/register";
const LOGIN: &str = "/api/v1/auth/login";
const REFRESH: &str = "/api/v1/auth/refreshtoken";
const GETME: &str = "/api/v1/user/getme";
const CONVERSATION: &str = "/api/v1/conversation";
const MESSAGE: &str = "/api/v1/message";
const JSON: &str = "application/json";

/// Words that would betray the internals: the database layer, SQL, panics, source locations.
const LEAKS: [&str; 10] = [
    "sqlx",
    "SELECT",
    "INSERT",
    "UPDATE sessions",
    "duplicate key",
    "panicked",
    "stack backtrace",
    "RUST_BACKTRACE",
    ".rs:",
    "src/",
];

// ---- small tools -----------------------------------------------------------------------

/// A response as it came: status, headers and the body's text.
struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

async fn send(request: RequestBuilder) -> Raw {
    let response = request.send().await.unwrap();
    Raw {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    }
}

/// A registered user sending raw requests. Its token goes with every request: the auth
/// endpoints ignore it, the others need it to get as far as reading the body.
struct Caller<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Caller<'a> {
    async fn register(app: &'a TestApp) -> Self {
        let token = app.register_user("Caller").await.token;
        Self { app, token }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(&self.token)
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// A POST of `body` as it is, declared as `content_type`.
    fn post(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> RequestBuilder {
        self.request(Method::POST, path)
            .header(CONTENT_TYPE, content_type)
            .body(body)
    }

    /// A POST of `body`'s text, declared as JSON.
    fn post_json(&self, path: &str, body: impl ToString) -> RequestBuilder {
        self.post(path, JSON, body.to_string())
    }
}

/// Checks that `raw` is the error envelope with this status and code, and leaks nothing.
#[track_caller]
fn assert_envelope(raw: &Raw, status: StatusCode, code: &str, case: &str) {
    assert_eq!(raw.status, status, "{case}: {}", raw.text);
    let body = assert_clean_envelope(raw, case);
    assert_eq!(body["error"]["code"], code, "{case}: {}", raw.text);
}

/// Checks that `raw` is a JSON error envelope that leaks nothing, whatever its code.
#[track_caller]
fn assert_clean_envelope(raw: &Raw, case: &str) -> Value {
    let content_type = raw.headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok());
    assert!(
        content_type.is_some_and(|value| value.starts_with(JSON)),
        "{case}: content type {content_type:?}"
    );
    let body: Value = serde_json::from_str(&raw.text).unwrap_or_else(|error| panic!("{case}: {error}: {}", raw.text));
    assert_eq!(body["status"], "error", "{case}: {}", raw.text);
    for part in ["code", "message"] {
        let value = body["error"][part].as_str();
        assert!(
            value.is_some_and(|value| !value.is_empty()),
            "{case}: no {part}: {}",
            raw.text
        );
    }
    for leak in LEAKS {
        assert!(!raw.text.contains(leak), "{case}: mentions {leak:?}: {}", raw.text);
    }
    body
}

fn register_body(name: &str) -> Value {
    json!({ "name": name, "email": "ana@example.com", "password": PASSWORD })
}

/// A message body with a text of `bytes` bytes.
fn message_body(bytes: usize) -> Value {
    json!({ "convo_id": Uuid::now_v7(), "message": "x".repeat(bytes) })
}

// ---- bodies ------------------------------------------------------------------------------

async fn a_body_that_is_not_valid_json_gets_400_invalid_json(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = Caller::register(&app).await;
    let cases = [
        ("register, cut short", REGISTER, r#"{"name": "Ana", "email":"#),
        (
            "login, a missing comma",
            LOGIN,
            r#"{"email": "a@b.co" "password": "x"}"#,
        ),
        ("login, an empty body", LOGIN, ""),
        ("refresh, cut short", REFRESH, r#"{"refreshToken": "#),
        ("conversation, plain words", CONVERSATION, "not json"),
        ("message, a trailing comma", MESSAGE, r#"{"message": "hi",}"#),
    ];
    for (case, path, body) in cases {
        // Act
        let raw = send(caller.post(path, JSON, body)).await;

        // Assert
        assert_envelope(&raw, StatusCode::BAD_REQUEST, "invalid_json", case);
    }
}

async fn json_of_the_wrong_shape_gets_422_validation_failed(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = Caller::register(&app).await;
    let conversation = Uuid::now_v7();
    let cases = [
        ("login without a password", LOGIN, json!({ "email": "a@b.co" })),
        ("register without any field", REGISTER, json!({})),
        (
            "register, a number for a name",
            REGISTER,
            json!({ "name": 5, "email": "a@b.co", "password": "x" }),
        ),
        ("login, a string for a body", LOGIN, json!("a@b.co")),
        ("login, numbers in an array", LOGIN, json!([1, 2])),
        ("login, null for a body", LOGIN, Value::Null),
        ("refresh, a number for a token", REFRESH, json!({ "refreshToken": 5 })),
        (
            "message, a number for a conversation",
            MESSAGE,
            json!({ "convo_id": 5, "message": "hi" }),
        ),
        (
            "message, no uuid for a conversation",
            MESSAGE,
            json!({ "convo_id": "abc", "message": "hi" }),
        ),
        // (A message without its text is no longer a shape error: files may stand in for it.
        // Its 422 comes after the membership check, in messages::invalid_sends_are_refused_with_422.)
        (
            "message, files not a list",
            MESSAGE,
            json!({ "convo_id": conversation, "message": "hi", "files": "photo.jpg" }),
        ),
    ];
    for (case, path, body) in cases {
        // Act
        let raw = send(caller.post_json(path, body)).await;

        // Assert
        assert_envelope(&raw, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", case);
    }
}

async fn a_body_that_is_not_declared_as_json_gets_415_unsupported_media_type(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = Caller::register(&app).await;
    let cases = [
        ("register as text/plain", REGISTER, "text/plain", register_body("Bia")),
        (
            "login as a form",
            LOGIN,
            "application/x-www-form-urlencoded",
            register_body("Bia"),
        ),
        ("message as text/plain", MESSAGE, "text/plain", message_body(10)),
        ("conversation as text/html", CONVERSATION, "text/html", json!({})),
    ];
    for (case, path, content_type, body) in cases {
        // Act
        let raw = send(caller.post(path, content_type, body.to_string())).await;

        // Assert
        assert_envelope(&raw, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", case);
    }
    let untyped = send(caller.request(Method::POST, MESSAGE).body(message_body(10).to_string())).await;
    assert_envelope(
        &untyped,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "no type",
    );
}

async fn a_body_over_64_kib_gets_413_payload_too_large(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = Caller::register(&app).await;
    let seventy_kib = 70 * 1024;
    let cases = [
        ("a 70 KiB message", MESSAGE, message_body(seventy_kib)),
        (
            "a 70 KiB registration",
            REGISTER,
            register_body(&"a".repeat(seventy_kib)),
        ),
        (
            "a 70 KiB refresh",
            REFRESH,
            json!({ "refreshToken": "x".repeat(seventy_kib) }),
        ),
    ];
    for (case, path, body) in cases {
        // Act
        let raw = send(caller.post_json(path, body)).await;

        // Assert
        assert_envelope(&raw, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", case);
    }
}

async fn a_body_over_the_limit_is_refused_even_without_a_content_length(backend: Backend) {
    // Arrange: a chunked body announces no length, so the limit is found while reading it
    let app = spawn_app(backend).await;
    let caller = Caller::register(&app).await;
    let chunks: Vec<Result<String, std::io::Error>> = vec![
        Ok(format!(r#"{{"convo_id":"{}","message":""#, Uuid::now_v7())),
        Ok("x".repeat(70 * 1024)),
        Ok(r#""}"#.to_string()),
    ];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));

    // Act
    let raw = send(caller.post(MESSAGE, JSON, body)).await;

    // Assert
    assert_envelope(&raw, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "chunked");
}

async fn a_large_body_within_the_limit_reaches_validation(backend: Backend) {
    // Arrange: 60 KiB is under the 64 KiB limit, so the answer is about the name, not the size
    let app = spawn_app(backend).await;
    let caller = Caller::register(&app).await;

    // Act
    let raw = send(caller.post_json(REGISTER, register_body(&"a".repeat(60 * 1024)))).await;

    // Assert
    assert_envelope(
        &raw,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        "60 KiB name",
    );
}

async fn json_body_limit_sets_the_largest_body(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, &[("JSON_BODY_LIMIT", "1024")]).await;
    let caller = Caller::register(&app).await;
    let two_kib = 2 * 1024;

    // Act
    let register = send(caller.post_json(REGISTER, register_body(&"a".repeat(two_kib)))).await;
    let refresh = send(caller.post_json(REFRESH, json!({ "refreshToken": "x".repeat(two_kib) }))).await;
    let message = send(caller.post_json(MESSAGE, message_body(two_kib))).await;

    // Assert
    assert_envelope(
        &register,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "register",
    );
    assert_envelope(&refresh, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "refresh");
    assert_envelope(&message, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "message");
    let small = app.register("Ana", "ana@example.com", PASSWORD).await;
    small.data(StatusCode::CREATED);
}

// ---- routes ------------------------------------------------------------------------------

async fn an_unknown_route_gets_404_route_not_found(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = Caller::register(&app).await;
    let cases = [
        (Method::GET, "/nope"),
        (Method::GET, "/api/v1"),
        (Method::GET, "/api/v1/nope"),
        (Method::POST, "/api/v1/auth/nope"),
        (Method::GET, "/api/v2/user/getme"),
        (Method::GET, "/api/v1/user/getme/extra"),
        (Method::DELETE, "/api/v1/nope"),
    ];
    for (method, path) in cases {
        // Act
        let raw = send(caller.request(method.clone(), path)).await;

        // Assert
        assert_envelope(
            &raw,
            StatusCode::NOT_FOUND,
            "route_not_found",
            &format!("{method} {path}"),
        );
    }
}

async fn a_known_path_with_another_method_gets_404_route_not_found(backend: Backend) {
    // Arrange: routes are declared per method, so a path served for POST only is no route for GET
    let app = spawn_app(backend).await;
    let caller = Caller::register(&app).await;
    let cases = [
        (Method::GET, LOGIN),
        (Method::PUT, REGISTER),
        (Method::DELETE, GETME),
        (Method::PATCH, MESSAGE),
    ];
    for (method, path) in cases {
        // Act
        let raw = send(caller.request(method.clone(), path)).await;

        // Assert
        assert_envelope(
            &raw,
            StatusCode::NOT_FOUND,
            "route_not_found",
            &format!("{method} {path}"),
        );
    }
}

async fn every_error_answer_is_a_json_envelope_that_leaks_nothing_internal(backend: Backend) {
    // Arrange: one request for each kind of refusal, on every resource
    let app = spawn_app(backend).await;
    let caller = Caller::register(&app).await;
    let taken = app.register_user("Taken").await.email;
    let unknown = Uuid::now_v7();
    let cases = [
        (
            "email taken",
            caller.post_json(REGISTER, json!({ "name": "A", "email": taken, "password": PASSWORD })),
        ),
        (
            "invalid fields",
            caller.post_json(REGISTER, json!({ "name": "", "email": "x", "password": "y" })),
        ),
        (
            "wrong credentials",
            caller.post_json(LOGIN, json!({ "email": taken, "password": "nope-nope" })),
        ),
        (
            "invalid refresh token",
            caller.post_json(REFRESH, json!({ "refreshToken": "x" })),
        ),
        ("missing token", app.client.get(app.url(GETME))),
        ("invalid token", app.client.get(app.url(GETME)).bearer_auth("a.b.c")),
        ("unknown user", caller.get(&format!("/api/v1/user/{unknown}"))),
        ("invalid path", caller.get("/api/v1/user/xyz")),
        ("invalid query", caller.get("/api/v1/user?limit=abc")),
        ("limit out of range", caller.get("/api/v1/user?limit=1000")),
        ("unknown conversation", caller.get(&format!("{CONVERSATION}/{unknown}"))),
        ("conversation id no uuid", caller.get(&format!("{CONVERSATION}/xyz"))),
        (
            "messages of an unknown conversation",
            caller.get(&format!("{MESSAGE}/{unknown}")),
        ),
        (
            "message to an unknown conversation",
            caller.post_json(MESSAGE, message_body(5)),
        ),
        ("bad JSON", caller.post(MESSAGE, JSON, "{")),
        ("wrong shape", caller.post(CONVERSATION, JSON, "[]")),
        ("wrong content type", caller.post(CONVERSATION, "text/plain", "{}")),
        ("too large", caller.post_json(MESSAGE, message_body(70 * 1024))),
        ("unknown route", caller.get("/api/v1/secret")),
        ("wrong method", caller.request(Method::DELETE, LOGIN)),
    ];
    for (case, request) in cases {
        // Act
        let raw = send(request).await;

        // Assert
        assert!(raw.status.is_client_error(), "{case}: {} {}", raw.status, raw.text);
        assert_clean_envelope(&raw, case);
    }
}

both_backends!(
    a_body_that_is_not_valid_json_gets_400_invalid_json,
    json_of_the_wrong_shape_gets_422_validation_failed,
    a_body_that_is_not_declared_as_json_gets_415_unsupported_media_type,
    a_body_over_64_kib_gets_413_payload_too_large,
    a_body_over_the_limit_is_refused_even_without_a_content_length,
    a_large_body_within_the_limit_reaches_validation,
    json_body_limit_sets_the_largest_body,
    an_unknown_route_gets_404_route_not_found,
    a_known_path_with_another_method_gets_404_route_not_found,
    every_error_answer_is_a_json_envelope_that_leaks_nothing_internal,
);
