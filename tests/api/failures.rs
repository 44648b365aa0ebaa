//! Real faults, caused from outside the app: a database that breaks under it answers 500
//! `internal_error` with nothing internal in the body, and `/ready` tells a load balancer
//! that the database is gone (503) while `/health` still says the process lives.

use std::str::FromStr;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use sqlx::{ConnectOptions, Connection};

use crate::both_backends;
use crate::helpers::{Backend, DEFAULT_ADMIN_URL, TestApp, spawn_app};

/// Words that would tell a client about the database behind the API (in any case).
const LEAKS: [&str; 6] = [
    "messages_broken",
    "sqlx",
    "relation",
    "no such table",
    "SQL",
    "database",
];

/// Words of a driver's or server's own error text: `/ready` may say the database is gone,
/// not how the driver found out.
const DRIVER_WORDS: [&str; 7] = ["sqlx", "sql", "fatal", "terminat", "connection", "pool", "55000"];

/// A response as it came: status, content type and the body's text.
struct Raw {
    status: StatusCode,
    content_type: Option<String>,
    text: String,
}

async fn send(request: RequestBuilder) -> Raw {
    let response = request.send().await.unwrap();
    Raw {
        status: response.status(),
        content_type: response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string),
        text: response.text().await.unwrap(),
    }
}

/// Checks that `raw` is the JSON error envelope with this status and code and that its text,
/// in any case, holds none of `leaks`.
#[track_caller]
fn assert_clean_error(raw: &Raw, status: StatusCode, code: &str, leaks: &[&str], case: &str) {
    assert_eq!(raw.status, status, "{case}: {}", raw.text);
    assert!(
        raw.content_type
            .as_deref()
            .is_some_and(|value| value.starts_with("application/json")),
        "{case}: content type {:?}",
        raw.content_type
    );
    let body: Value = serde_json::from_str(&raw.text).unwrap_or_else(|error| panic!("{case}: {error}: {}", raw.text));
    assert_eq!(body["status"], "error", "{case}: {}", raw.text);
    assert_eq!(body["error"]["code"], code, "{case}: {}", raw.text);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{case}: no message: {}",
        raw.text
    );
    let lowercase = raw.text.to_lowercase();
    for leak in leaks {
        assert!(
            !lowercase.contains(&leak.to_lowercase()),
            "{case}: mentions {leak:?}: {}",
            raw.text
        );
    }
}

/// Runs `statement` on the app's database through a connection of its own, as an operator
/// (or a broken migration) would.
async fn run_outside_the_app(app: &TestApp, statement: &'static str) {
    match app.backend {
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
            sqlx::query("SET lock_timeout = '10s'")
                .execute(&mut connection)
                .await
                .unwrap();
            sqlx::query(statement).execute(&mut connection).await.unwrap();
            connection.close().await.unwrap();
        }
        Backend::Sqlite => {
            // The same file, beside the app's connections (WAL: readers do not block this).
            let mut connection = sqlx::sqlite::SqliteConnectOptions::from_str(&app.database_url)
                .unwrap()
                .busy_timeout(Duration::from_secs(10))
                .connect()
                .await
                .unwrap();
            sqlx::query(statement).execute(&mut connection).await.unwrap();
            connection.close().await.unwrap();
        }
    }
}

async fn a_database_failure_answers_500_internal_error_and_tells_nothing_internal(backend: Backend) {
    // Arrange: a conversation with a message, then its messages table vanishes from under the app
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let conversation = app.direct_conversation(&ana, &bo).await;
    app.send_text(&ana, &conversation, "before the break").await;
    run_outside_the_app(&app, "ALTER TABLE messages RENAME TO messages_broken").await;

    // Act
    let sent = send(
        app.client
            .post(app.url("/api/v1/message"))
            .bearer_auth(&ana.token)
            .json(&json!({"convo_id": conversation, "message": "after the break"})),
    )
    .await;
    let listed = send(
        app.client
            .get(app.url(&format!("/api/v1/message/{conversation}")))
            .bearer_auth(&bo.token),
    )
    .await;

    // Assert
    assert_clean_error(
        &sent,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        &LEAKS,
        "send",
    );
    assert_clean_error(
        &listed,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        &LEAKS,
        "list",
    );
    let me = app.get_me(&ana.token).await;
    assert_eq!(
        me.data(StatusCode::OK)["user"]["_id"],
        ana.id.as_str(),
        "what does not touch messages still works"
    );
}

both_backends!(a_database_failure_answers_500_internal_error_and_tells_nothing_internal);

/// `/ready` with the database gone. PostgreSQL: the database refuses connections and the
/// app's are ended. SQLite: the file is moved away (a pooled connection would still answer
/// `SELECT 1` from a deleted file, so `/ready` also checks the file is where it was).
mod database_gone {
    use super::*;

    /// The database name at the end of a `postgres://` URL.
    fn database_name(url: &str) -> &str {
        let base = url.split('?').next().unwrap();
        base.rsplit('/').next().unwrap()
    }

    async fn admin() -> sqlx::PgConnection {
        let admin_url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string());
        sqlx::PgConnection::connect(&admin_url).await.unwrap()
    }

    fn sqlite_file(app: &TestApp) -> std::path::PathBuf {
        chat_api::store::sqlite_file_path(&app.database_url).unwrap()
    }

    /// Makes the app's database unreachable.
    async fn take_away(app: &TestApp) {
        if app.backend == Backend::Sqlite {
            let file = sqlite_file(app);
            std::fs::rename(&file, file.with_extension("gone")).unwrap();
            return;
        }
        let name = database_name(&app.database_url);
        let mut admin = admin().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(name)
        .execute(&mut admin)
        .await
        .unwrap();
        admin.close().await.unwrap();
    }

    async fn give_back(app: &TestApp) {
        if app.backend == Backend::Sqlite {
            let file = sqlite_file(app);
            std::fs::rename(file.with_extension("gone"), &file).unwrap();
            return;
        }
        let name = database_name(&app.database_url);
        let mut admin = admin().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        admin.close().await.unwrap();
    }

    async fn ready_answers_503_when_the_database_is_gone_and_health_still_200(backend: Backend) {
        // Arrange
        let app = spawn_app(backend).await;
        let before = send(app.client.get(app.url("/ready"))).await;
        assert_eq!(before.status, StatusCode::OK, "ready before: {}", before.text);
        take_away(&app).await;

        // Act
        let ready = send(app.client.get(app.url("/ready"))).await;
        let health = send(app.client.get(app.url("/health"))).await;
        give_back(&app).await;

        // Assert
        assert_clean_error(
            &ready,
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            &DRIVER_WORDS,
            "ready",
        );
        assert_eq!(health.status, StatusCode::OK, "health: {}", health.text);
        let health: Value = serde_json::from_str(&health.text).unwrap();
        assert_eq!(health["data"]["status"], "ok");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let again = send(app.client.get(app.url("/ready"))).await;
            if again.status == StatusCode::OK {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ready did not recover with the database: {} {}",
                again.status,
                again.text
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    both_backends!(ready_answers_503_when_the_database_is_gone_and_health_still_200);

    #[test]
    fn database_name_is_the_last_segment_of_the_url() {
        assert_eq!(
            database_name("postgres://postgres@127.0.0.1:5432/chat_test_1"),
            "chat_test_1"
        );
        assert_eq!(database_name("postgres://u:p@h/db?sslmode=disable"), "db");
    }
}
