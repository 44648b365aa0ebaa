//! `/api/v1/auth`: register, login, refresh, logout, and what the access token guard answers.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, COOKIE, RETRY_AFTER, SET_COOKIE};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::{Backend, PASSWORD, Reply, TEST_JWT_SECRET, TestApp, spawn_app, spawn_app_with, text};

const REGISTER_PATH: &str = "/api/v1/auth/register";
const REFRESH_PATH: &str = "/api/v1/auth/refreshtoken";

// ---- small tools -----------------------------------------------------------------------

/// A JSON timestamp (RFC 3339) as a UTC time.
#[track_caller]
fn timestamp(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("expected a timestamp, got {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|error| panic!("{text:?} is not RFC 3339: {error}"))
        .with_timezone(&Utc)
}

/// The claims of an access token, read without checking its signature.
fn claims_of(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode_claims(token).expect("an access token is a JWT")
}

fn sign(claims: &Value, secret: &str, algorithm: Algorithm) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Signs like the service does.
fn hs256(claims: &Value) -> String {
    sign(claims, TEST_JWT_SECRET, Algorithm::HS256)
}

/// The value and attributes of the `name` cookie set by a response, if any.
fn set_cookie(reply: &Reply, name: &str) -> Option<(String, Vec<String>)> {
    reply.headers.get_all(SET_COOKIE).iter().find_map(|header| {
        let text = header.to_str().ok()?;
        let mut parts = text.split(';').map(str::trim);
        let value = parts.next()?.strip_prefix(&format!("{name}="))?.to_string();
        Some((value, parts.map(str::to_string).collect()))
    })
}

/// Checks the `data` every session answer (register, login, refresh) carries.
#[track_caller]
fn assert_session_data(data: &Value, name: &str, email: &str) {
    let user = &data["user"];
    assert!(
        Uuid::parse_str(&text(&user["_id"])).is_ok(),
        "user._id is a UUID: {data}"
    );
    assert_eq!(user["name"], name, "{data}");
    assert_eq!(user["email"], email, "{data}");
    timestamp(&user["createdAt"]);
    timestamp(&user["updatedAt"]);
    assert_eq!(
        text(&data["token"]).split('.').count(),
        3,
        "the access token is a JWT: {data}"
    );
    assert!(!text(&data["refreshToken"]).is_empty(), "{data}");
    assert!(
        timestamp(&data["expiresAt"]) > Utc::now(),
        "the access token is not yet expired: {data}"
    );
}

/// POSTs to the refresh endpoint with an optional raw JSON body and an optional cookie.
async fn refresh_with(app: &TestApp, body: Option<&str>, cookie: Option<&str>) -> Reply {
    let mut request = app.client.post(app.url(REFRESH_PATH));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, format!("refreshToken={cookie}"));
    }
    Reply::read(request.send().await.unwrap()).await
}

/// The body of a successful answer, as text.
async fn raw_text(request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.text().await.unwrap()
}

async fn get_with_authorization(app: &TestApp, path: &str, authorization: Option<&str>) -> Reply {
    let mut request = app.client.get(app.url(path));
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    Reply::read(request.send().await.unwrap()).await
}

// ---- register ----------------------------------------------------------------------------

async fn register_creates_the_account_and_opens_a_session(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let before = Utc::now();

    // Act
    let reply = app.register("  Ana Lima ", "Ana.Lima@Example.COM", PASSWORD).await;

    // Assert
    let data = reply.data(StatusCode::CREATED);
    assert_session_data(data, "Ana Lima", "ana.lima@example.com");
    let created_at = timestamp(&data["user"]["createdAt"]);
    assert!(created_at >= before - Duration::seconds(1) && created_at <= Utc::now() + Duration::seconds(1));
    let lifetime = timestamp(&data["expiresAt"]) - created_at;
    assert!(
        (lifetime - Duration::seconds(900)).abs() <= Duration::seconds(2),
        "access tokens live 15 minutes by default, not {lifetime}"
    );
    let me = app.get_me(&text(&data["token"])).await;
    assert_eq!(me.data(StatusCode::OK)["user"]["_id"], data["user"]["_id"]);
}

async fn register_answers_never_contain_the_password_or_its_hash(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let body = json!({ "name": "Ana", "email": "ana@example.com", "password": PASSWORD });

    // Act: read the raw text, not a parsed view of it
    let register = raw_text(app.client.post(app.url(REGISTER_PATH)).json(&body)).await;
    let token = text(&serde_json::from_str::<Value>(&register).unwrap()["data"]["token"]);
    let login = raw_text(app.client.post(app.url("/api/v1/auth/login")).json(&body)).await;
    let me = raw_text(app.client.get(app.url("/api/v1/user/getme")).bearer_auth(&token)).await;

    // Assert
    for (answer, raw) in [("register", &register), ("login", &login), ("getme", &me)] {
        assert!(raw.contains("ana@example.com"), "{answer} is about the user: {raw}");
        assert!(
            !raw.to_lowercase().contains("password"),
            "{answer} mentions a password: {raw}"
        );
        assert!(!raw.contains(PASSWORD), "{answer} echoes the password: {raw}");
        assert!(
            !raw.contains("$2b$") && !raw.contains("$2y$"),
            "{answer} has a bcrypt hash: {raw}"
        );
    }
}

async fn register_with_a_taken_email_gets_409_email_taken_whatever_its_case(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let cases = [
        ("the same spelling", "ana@x.com", "ana@x.com"),
        ("upper case first", "BETO@x.com", "beto@x.com"),
        ("upper case second", "caio@x.com", " CAIO@X.COM "),
    ];
    for (case, first, second) in cases {
        app.register("First", first, PASSWORD).await.data(StatusCode::CREATED);

        // Act
        let reply = app.register("Second", second, "another password").await;

        // Assert
        reply.assert_error(StatusCode::CONFLICT, "email_taken");
        let login = app.login(second, PASSWORD).await;
        assert_eq!(
            login.data(StatusCode::OK)["user"]["name"],
            "First",
            "{case}: the first account is untouched"
        );
        app.login(second, "another password")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
}

async fn register_with_an_invalid_field_gets_422_naming_that_field(backend: Backend) {
    // Arrange: a valid registration, with one field replaced
    let app = spawn_app(backend).await;
    let cases: [(&str, &str, String); 13] = [
        ("an empty name", "name", "".into()),
        ("a blank name", "name", "   ".into()),
        ("a 101-character name", "name", "a".repeat(101)),
        ("a control character", "name", "Ana\u{0}Lima".into()),
        ("an empty email", "email", "".into()),
        ("no @", "email", "ana.example.com".into()),
        ("no domain", "email", "ana@".into()),
        ("no top-level domain", "email", "ana@localhost".into()),
        ("a display name", "email", "Ana <ana@example.com>".into()),
        ("an empty password", "password", "".into()),
        ("a 7-byte password", "password", "1234567".into()),
        ("a 73-byte password", "password", "x".repeat(73)),
        ("37 two-byte characters", "password", "é".repeat(37)),
    ];
    for (case, field, value) in cases {
        let mut body = json!({ "name": "Ana", "email": "ana@example.com", "password": PASSWORD });
        body[field] = json!(value);

        // Act
        let reply = app.post(REGISTER_PATH, None, &body).await;

        // Assert
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let fields = reply.body["error"]["fields"].as_object();
        let fields = fields.unwrap_or_else(|| panic!("{case}: {}", reply.body));
        assert_eq!(fields.keys().collect::<Vec<_>>(), [field], "{case}: {}", reply.body);
        assert!(!text(&fields[field]).is_empty(), "{case}: the problem is explained");
    }
    app.login("ana@example.com", PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

async fn register_accepts_values_at_the_limits(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let cases: Vec<(&str, String, String)> = vec![
        ("a 1-character name", "A".into(), PASSWORD.into()),
        ("a 100-character name", "a".repeat(100), PASSWORD.into()),
        ("100 two-byte characters", "é".repeat(100), PASSWORD.into()),
        ("an 8-byte password", "Ana".into(), "12345678".into()),
        (
            "a 72-byte password of 36 two-byte characters",
            "Ana".into(),
            "é".repeat(36),
        ),
    ];
    for (index, (case, name, password)) in cases.into_iter().enumerate() {
        let email = format!("user{index}@example.com");

        // Act
        let reply = app.register(&name, &email, &password).await;

        // Assert
        assert_eq!(reply.status, StatusCode::CREATED, "{case}: {}", reply.body);
        assert_eq!(reply.body["data"]["user"]["name"], name.as_str(), "{case}");
        app.login(&email, &password).await.data(StatusCode::OK);
    }
}

async fn register_lists_every_failing_field_at_once(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let reply = app.register("", "not-an-email", "short").await;

    // Assert
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields = reply.body["error"]["fields"].as_object().unwrap();
    assert_eq!(
        fields.keys().collect::<Vec<_>>(),
        ["email", "name", "password"],
        "{}",
        reply.body
    );
    let message = text(&reply.body["error"]["message"]);
    for field in ["name", "email", "password"] {
        assert!(message.contains(field), "the message names {field}: {message}");
    }
}

async fn a_72_byte_password_works_and_every_one_of_its_bytes_counts(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let password: String = ('a'..='z').cycle().take(72).collect();

    // Act
    let registered = app.register("Ana", "ana@example.com", &password).await;

    // Assert
    registered.data(StatusCode::CREATED);
    app.login("ana@example.com", &password).await.data(StatusCode::OK);
    app.login("ana@example.com", &password[..71])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

async fn a_73_byte_password_is_refused_never_truncated(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let password: String = ('a'..='z').cycle().take(73).collect();

    // Act
    let reply = app.register("Ana", "ana@example.com", &password).await;

    // Assert
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(reply.body["error"]["fields"]["password"].is_string(), "{}", reply.body);
    app.login("ana@example.com", &password[..72])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.register("Ana", "ana@example.com", &password[..72])
        .await
        .data(StatusCode::CREATED);
}

async fn login_with_a_password_longer_than_72_bytes_is_refused_never_truncated(backend: Backend) {
    // Arrange: bcrypt only reads 72 bytes, so a longer password must not match on its first 72
    let app = spawn_app(backend).await;
    let password: String = ('a'..='z').cycle().take(72).collect();
    app.register("Ana", "ana@example.com", &password)
        .await
        .data(StatusCode::CREATED);

    // Act
    let reply = app.login("ana@example.com", &format!("{password}-and-then-some")).await;

    // Assert
    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

// ---- login -------------------------------------------------------------------------------

async fn login_opens_a_new_session_and_sets_the_refresh_cookie(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;

    // Act
    let reply = app.login(&user.email, PASSWORD).await;

    // Assert
    let data = reply.data(StatusCode::OK);
    assert_session_data(data, "Ana", &user.email);
    assert_eq!(data["user"]["_id"], user.id.as_str());
    assert_ne!(
        data["token"],
        user.token.as_str(),
        "a new session gets its own access token"
    );
    assert_ne!(data["refreshToken"], user.refresh_token.as_str());
    let (cookie, attributes) = set_cookie(&reply, "refreshToken").expect("a refreshToken cookie is set");
    assert_eq!(cookie, text(&data["refreshToken"]));
    for expected in ["HttpOnly", "Path=/api/v1/auth", "SameSite=Strict"] {
        assert!(
            attributes.iter().any(|attribute| attribute == expected),
            "{expected} in {attributes:?}"
        );
    }
}

async fn login_email_is_case_insensitive(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;

    // Act
    let reply = app.login(&format!("  {}  ", user.email.to_uppercase()), PASSWORD).await;

    // Assert
    assert_eq!(reply.data(StatusCode::OK)["user"]["_id"], user.id.as_str());
}

async fn login_with_a_wrong_password_or_an_unknown_email_gets_the_same_401_invalid_credentials(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;
    let wrong_password = app.login(&user.email, "not the password").await;
    wrong_password.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let cases = [
        ("an unknown email", "nobody@example.com", PASSWORD),
        ("something that is not an email", "not an email", PASSWORD),
        ("an empty password", user.email.as_str(), ""),
        (
            "a password differing only in case",
            user.email.as_str(),
            &PASSWORD.to_uppercase(),
        ),
    ];
    for (case, email, password) in cases {
        // Act
        let reply = app.login(email, password).await;

        // Assert
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert_eq!(
            reply.body, wrong_password.body,
            "{case} is indistinguishable from a wrong password"
        );
        assert!(
            set_cookie(&reply, "refreshToken").is_none(),
            "{case}: no cookie on failure"
        );
    }
}

// ---- refresh -----------------------------------------------------------------------------

async fn refresh_with_the_token_in_the_body_rotates_the_refresh_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;
    let old_expiry = DateTime::from_timestamp(claims_of(&user.token)["exp"].as_i64().unwrap(), 0).unwrap();

    // Act
    let reply = app.refresh(&user.refresh_token).await;

    // Assert
    let data = reply.data(StatusCode::OK);
    assert_session_data(data, "Ana", &user.email);
    let (token, refresh_token) = (text(&data["token"]), text(&data["refreshToken"]));
    assert_ne!(refresh_token, user.refresh_token, "the refresh token is replaced");
    assert!(
        timestamp(&data["expiresAt"]) >= old_expiry,
        "the new access token lives at least as long"
    );
    assert_eq!(
        set_cookie(&reply, "refreshToken").map(|(value, _)| value),
        Some(refresh_token.clone())
    );
    assert_eq!(
        app.get_me(&token).await.data(StatusCode::OK)["user"]["_id"],
        user.id.as_str()
    );
    app.refresh(&refresh_token).await.data(StatusCode::OK);
}

async fn refresh_issues_a_new_access_token_not_a_copy_of_the_old_one(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;

    // Act
    let reply = app.refresh(&user.refresh_token).await;

    // Assert
    let token = text(&reply.data(StatusCode::OK)["token"]);
    assert_ne!(
        token, user.token,
        "a refresh within the same second must not hand back the very same token"
    );
}

async fn refresh_with_only_the_cookie_and_an_empty_body_works(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;
    let login = app.login(&user.email, PASSWORD).await;
    let (cookie, _) = set_cookie(&login, "refreshToken").expect("login sets the cookie");

    // Act
    let reply = refresh_with(&app, None, Some(&cookie)).await;

    // Assert
    let data = reply.data(StatusCode::OK);
    assert_ne!(text(&data["refreshToken"]), cookie);
    assert_eq!(
        app.get_me(&text(&data["token"])).await.data(StatusCode::OK)["user"]["_id"],
        user.id.as_str()
    );
}

async fn reusing_a_rotated_refresh_token_ends_that_whole_session_but_no_other(backend: Backend) {
    // Arrange: two sessions of one user; the first one rotates its refresh token
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;
    let other = app.login(&user.email, PASSWORD).await.data(StatusCode::OK).clone();
    let rotated = app.refresh(&user.refresh_token).await.data(StatusCode::OK).clone();

    // Act: the replaced token comes back (a copy was stolen)
    let reply = app.refresh(&user.refresh_token).await;

    // Assert
    reply.assert_error(StatusCode::UNAUTHORIZED, "refresh_token_reused");
    app.refresh(&text(&rotated["refreshToken"]))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    app.get_me(&text(&rotated["token"]))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session_ended");
    app.get_me(&user.token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session_ended");
    app.get_me(&text(&other["token"])).await.data(StatusCode::OK);
    app.refresh(&text(&other["refreshToken"])).await.data(StatusCode::OK);
}

async fn a_forged_refresh_token_naming_a_real_session_does_not_end_that_session(backend: Backend) {
    // Arrange: the session id is no secret: anyone holding an access token can read it
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;
    let session_id = text(&claims_of(&user.token)["sid"]);
    let forged = format!("{}.{}", Uuid::parse_str(&session_id).unwrap().simple(), "0".repeat(64));

    // Act
    let reply = app.refresh(&forged).await;

    // Assert: a token this session never issued is merely invalid
    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    app.get_me(&user.token).await.data(StatusCode::OK);
    app.refresh(&user.refresh_token).await.data(StatusCode::OK);
}

async fn refresh_without_a_usable_token_gets_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;
    let (missing, invalid) = ("missing_refresh_token", "invalid_refresh_token");
    let in_body = |token: &str| json!({ "refreshToken": token }).to_string();
    let unknown = format!("{}.{}", Uuid::now_v7().simple(), "ab".repeat(32));
    let cases: [(&str, Option<String>, Option<&str>, &str); 9] = [
        ("no body and no cookie", None, None, missing),
        ("a blank body", Some("  ".into()), None, missing),
        ("an empty object", Some("{}".into()), None, missing),
        ("a null token", Some(r#"{"refreshToken":null}"#.into()), None, missing),
        ("garbage", Some(in_body("garbage")), None, invalid),
        ("an empty token", Some(in_body("")), None, invalid),
        ("an unknown token", Some(in_body(&unknown)), None, invalid),
        ("an access token", Some(in_body(&user.token)), None, invalid),
        ("a garbage cookie", None, Some("garbage"), invalid),
    ];
    for (case, body, cookie, code) in cases {
        // Act
        let reply = refresh_with(&app, body.as_deref(), cookie).await;

        // Assert
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{case}: {}", reply.body);
    }
    app.refresh(&user.refresh_token).await.data(StatusCode::OK);
}

// ---- logout ------------------------------------------------------------------------------

async fn logout_ends_this_session_and_no_other(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;
    let other = app.login(&user.email, PASSWORD).await.data(StatusCode::OK).clone();

    // Act
    let reply = app.logout(&user.token).await;

    // Assert
    assert!(!text(&reply.data(StatusCode::OK)["message"]).is_empty());
    let (cookie, attributes) = set_cookie(&reply, "refreshToken").expect("the refresh cookie is cleared");
    assert!(
        cookie.is_empty() && attributes.iter().any(|attribute| attribute == "Max-Age=0"),
        "{attributes:?}"
    );
    app.get_me(&user.token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session_ended");
    app.logout(&user.token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session_ended");
    app.refresh(&user.refresh_token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    app.get_me(&text(&other["token"])).await.data(StatusCode::OK);
    app.refresh(&text(&other["refreshToken"])).await.data(StatusCode::OK);
}

// ---- the access token guard --------------------------------------------------------------

async fn an_expired_access_token_gets_401_token_expired(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;
    let real = claims_of(&user.token);
    let now = Utc::now().timestamp();
    let with_expiry = |exp: i64| json!({ "sub": real["sub"], "sid": real["sid"], "iat": now - 120, "exp": exp });
    let still_valid = hs256(&with_expiry(now + 60));
    let expired = hs256(&with_expiry(now - 60));
    app.get_me(&still_valid).await.data(StatusCode::OK);

    // Act
    let reply = app.get_me(&expired).await;

    // Assert
    reply.assert_error(StatusCode::UNAUTHORIZED, "token_expired");
}

async fn a_forged_or_malformed_access_token_gets_401_invalid_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bia = app.register_user("Bia").await;
    let real = claims_of(&ana.token);
    let (sub, sid, iat) = (&real["sub"], &real["sid"], Utc::now().timestamp());
    let exp = iat + 600;
    let valid = json!({ "sub": sub, "sid": sid, "iat": iat, "exp": exp });
    let ana_parts: Vec<&str> = ana.token.split('.').collect();
    let bia_payload = bia.token.split('.').nth(1).unwrap();
    let unsigned_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let cases: [(&str, String); 8] = [
        (
            "signed with another secret",
            sign(&valid, "another-secret-another-secret-98765", Algorithm::HS256),
        ),
        ("signed with HS384", sign(&valid, TEST_JWT_SECRET, Algorithm::HS384)),
        ("unsigned (alg none)", format!("{unsigned_header}.{}.", ana_parts[1])),
        (
            "another user's claims",
            format!("{}.{bia_payload}.{}", ana_parts[0], ana_parts[2]),
        ),
        ("without exp", hs256(&json!({ "sub": sub, "sid": sid, "iat": iat }))),
        (
            "with a sub that is no user id",
            hs256(&json!({ "sub": "ana", "sid": sid, "iat": iat, "exp": exp })),
        ),
        ("garbage", "garbage".into()),
        ("three empty parts", "..".into()),
    ];
    app.get_me(&hs256(&valid)).await.data(StatusCode::OK);
    for (case, token) in cases {
        // Act
        let reply = app.get_me(&token).await;

        // Assert
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], "invalid_token", "{case}: {}", reply.body);
    }
}

async fn a_valid_token_naming_another_users_session_gets_401_session_ended(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bia = app.register_user("Bia").await;
    let now = Utc::now().timestamp();
    let claims = json!({ "sub": bia.id, "sid": claims_of(&ana.token)["sid"], "iat": now, "exp": now + 600 });

    // Act
    let reply = app.get_me(&hs256(&claims)).await;

    // Assert
    reply.assert_error(StatusCode::UNAUTHORIZED, "session_ended");
}

async fn a_request_without_a_bearer_token_gets_401_missing_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;
    let basic = "Basic YW5hOnBhc3N3b3Jk".to_string();
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("another scheme", Some(basic)),
        ("the scheme alone", Some("Bearer".into())),
        ("the scheme and blanks", Some("Bearer    ".into())),
        ("the token without its scheme", Some(user.token.clone())),
    ];
    for (case, authorization) in cases {
        for path in [
            "/api/v1/user/getme",
            "/api/v1/user?keyword=a",
            &format!("/api/v1/user/{}", user.id),
        ] {
            // Act
            let reply = get_with_authorization(&app, path, authorization.as_deref()).await;

            // Assert
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{case} on {path}: {}",
                reply.body
            );
            assert_eq!(
                reply.body["error"]["code"], "missing_token",
                "{case} on {path}: {}",
                reply.body
            );
        }
    }
    let logout = app.post_raw("/api/v1/auth/logout", None, "application/json", "").await;
    logout.assert_error(StatusCode::UNAUTHORIZED, "missing_token");
}

async fn the_bearer_scheme_is_case_insensitive(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user("Ana").await;

    // Act
    let reply = get_with_authorization(&app, "/api/v1/user/getme", Some(&format!("bearer {}", user.token))).await;

    // Assert
    assert_eq!(reply.data(StatusCode::OK)["user"]["_id"], user.id.as_str());
}

// ---- settings ----------------------------------------------------------------------------

async fn access_token_ttl_sets_when_the_access_token_expires(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, &[("ACCESS_TOKEN_TTL", "1")]).await;
    let before = Utc::now();

    // Act
    let reply = app.register("Ana", "ana@example.com", PASSWORD).await;

    // Assert
    let after = Utc::now();
    let data = reply.data(StatusCode::CREATED);
    let expires_at = timestamp(&data["expiresAt"]);
    let second = Duration::seconds(1);
    assert!(
        expires_at >= before + second - Duration::milliseconds(5) && expires_at <= after + second,
        "expiresAt {expires_at} is one second after the request ({before} to {after})"
    );
    assert_eq!(
        claims_of(&text(&data["token"]))["exp"],
        expires_at.timestamp(),
        "the token agrees"
    );
}

async fn an_access_token_stops_working_after_its_ttl_and_a_refresh_brings_a_new_one(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, &[("ACCESS_TOKEN_TTL", "1")]).await;
    let user = app.register_user("Ana").await;
    app.get_me(&user.token).await.data(StatusCode::OK);

    // Act: the TTL must pass (`exp` counts whole seconds)
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let expired = app.get_me(&user.token).await;

    // Assert
    expired.assert_error(StatusCode::UNAUTHORIZED, "token_expired");
    let refreshed = app.refresh(&user.refresh_token).await;
    let token = text(&refreshed.data(StatusCode::OK)["token"]);
    app.get_me(&token).await.data(StatusCode::OK);
}

async fn the_fourth_login_attempt_within_a_minute_gets_429_rate_limited(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, &[("AUTH_RATE_LIMIT_PER_MINUTE", "3")]).await;
    for _ in 0..3 {
        app.login("nobody@example.com", PASSWORD)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }

    // Act
    let reply = app.login("nobody@example.com", PASSWORD).await;

    // Assert
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = reply
        .headers
        .get(RETRY_AFTER)
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is a number of seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
}

async fn behind_a_trusted_proxy_the_rate_limit_counts_each_forwarded_client(backend: Backend) {
    // Arrange: a budget of 2, with the client address taken from X-Forwarded-For
    let app = spawn_app_with(backend, &[("AUTH_RATE_LIMIT_PER_MINUTE", "2"), ("TRUST_PROXY", "true")]).await;
    let login_from = |client: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", client)
            .json(&serde_json::json!({"email": "nobody@example.com", "password": PASSWORD}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            login_from("203.0.113.7").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }

    // Act
    let same_client = login_from("203.0.113.7").await.unwrap();
    let other_client = login_from("198.51.100.9").await.unwrap();

    // Assert
    assert_eq!(same_client.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        other_client.status(),
        StatusCode::UNAUTHORIZED,
        "another client has its own budget"
    );
}

async fn the_auth_rate_limit_covers_register_login_and_refresh_but_no_other_route(backend: Backend) {
    // Arrange: one register, one login and one refresh use up a budget of 3
    let app = spawn_app_with(backend, &[("AUTH_RATE_LIMIT_PER_MINUTE", "3")]).await;
    let user = app.register_user("Ana").await;
    let session = app.login(&user.email, PASSWORD).await.data(StatusCode::OK).clone();
    app.refresh(&user.refresh_token).await.data(StatusCode::OK);

    // Act
    let login = app.login(&user.email, PASSWORD).await;
    let refresh = app.refresh(&text(&session["refreshToken"])).await;
    let register = app.register("Bia", "bia@example.com", PASSWORD).await;

    // Assert
    login.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    refresh.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    register.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    app.get_me(&text(&session["token"])).await.data(StatusCode::OK);
}

both_backends!(
    register_creates_the_account_and_opens_a_session,
    register_answers_never_contain_the_password_or_its_hash,
    register_with_a_taken_email_gets_409_email_taken_whatever_its_case,
    register_with_an_invalid_field_gets_422_naming_that_field,
    register_accepts_values_at_the_limits,
    register_lists_every_failing_field_at_once,
    a_72_byte_password_works_and_every_one_of_its_bytes_counts,
    a_73_byte_password_is_refused_never_truncated,
    login_with_a_password_longer_than_72_bytes_is_refused_never_truncated,
    login_opens_a_new_session_and_sets_the_refresh_cookie,
    login_email_is_case_insensitive,
    login_with_a_wrong_password_or_an_unknown_email_gets_the_same_401_invalid_credentials,
    refresh_with_the_token_in_the_body_rotates_the_refresh_token,
    refresh_issues_a_new_access_token_not_a_copy_of_the_old_one,
    refresh_with_only_the_cookie_and_an_empty_body_works,
    reusing_a_rotated_refresh_token_ends_that_whole_session_but_no_other,
    a_forged_refresh_token_naming_a_real_session_does_not_end_that_session,
    refresh_without_a_usable_token_gets_401,
    logout_ends_this_session_and_no_other,
    an_expired_access_token_gets_401_token_expired,
    a_forged_or_malformed_access_token_gets_401_invalid_token,
    a_valid_token_naming_another_users_session_gets_401_session_ended,
    a_request_without_a_bearer_token_gets_401_missing_token,
    the_bearer_scheme_is_case_insensitive,
    access_token_ttl_sets_when_the_access_token_expires,
    an_access_token_stops_working_after_its_ttl_and_a_refresh_brings_a_new_one,
    the_fourth_login_attempt_within_a_minute_gets_429_rate_limited,
    the_auth_rate_limit_covers_register_login_and_refresh_but_no_other_route,
    behind_a_trusted_proxy_the_rate_limit_counts_each_forwarded_client,
);
