//! The test app: the real service on a random port, over a fresh database (a new SQLite
//! file, or a new PostgreSQL database on `TEST_DATABASE_URL`), with one helper per endpoint.
//! Every integration test runs once per backend through `both_backends!`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::str::FromStr;

use actix_web::dev::ServerHandle;
use chat_api::config::Config;
use chat_api::startup::Application;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const PASSWORD: &str = "correct horse battery";
/// A fixed VAPID key, so that no test writes one into `./data` (PostgreSQL apps have no
/// folder of their own); tests/api/push.rs also starts apps that generate theirs.
pub const TEST_VAPID_PRIVATE_KEY: &str = "Ffnqvkyfun9BRYoIAathrl5t9xMjBR8LItOjFFfi3dM";

/// Declares each listed `async fn name(backend: Backend)` as two tests, `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )+
        }
    };
}

/// Declares each listed `async fn name(backend: Backend, files: FileBackend)` as four tests:
/// each database backend with each file store (`sqlite_local::name`, `postgres_s3::name`, ...).
#[macro_export]
macro_rules! every_store {
    ($($name:ident),+ $(,)?) => {
        $crate::every_store!(@one sqlite_local, Sqlite, Local, $($name),+);
        $crate::every_store!(@one sqlite_s3, Sqlite, S3, $($name),+);
        $crate::every_store!(@one postgres_local, Postgres, Local, $($name),+);
        $crate::every_store!(@one postgres_s3, Postgres, S3, $($name),+);
    };
    (@one $module:ident, $backend:ident, $files:ident, $($name:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::$backend, $crate::helpers::FileBackend::$files).await
                }
            )+
        }
    };
}

/// Where a test app keeps uploaded bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileBackend {
    /// A fresh folder.
    Local,
    /// A fresh bucket on the S3-compatible server at `TEST_S3_ENDPOINT` (`scripts/test.sh`
    /// starts one).
    S3,
}

/// Starts the app on `backend` with its files on `files`, and `settings`.
pub async fn spawn_app_with_files(backend: Backend, files: FileBackend, settings: &[(&str, &str)]) -> TestApp {
    let mut all: Vec<(String, String)> = settings
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    if files == FileBackend::S3 {
        let endpoint = std::env::var("TEST_S3_ENDPOINT").unwrap_or_else(|_| {
            panic!("S3 file tests need an S3-compatible server at TEST_S3_ENDPOINT: run them with ./scripts/test.sh, which starts one")
        });
        let bucket = format!("chat-test-{}", Uuid::now_v7().simple());
        let made = reqwest::Client::new()
            .put(format!("{endpoint}/{bucket}"))
            .send()
            .await
            .expect("the S3 server answers");
        assert!(
            made.status().is_success(),
            "creating bucket {bucket}: {}",
            made.status()
        );
        all.extend([
            ("FILE_STORE_URL".to_string(), format!("s3://{bucket}")),
            ("S3_ENDPOINT".to_string(), endpoint),
            ("AWS_ACCESS_KEY_ID".to_string(), "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "test-secret".to_string()),
        ]);
    }
    let settings: Vec<(&str, &str)> = all
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    spawn_app_with(backend, &settings).await
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database, removed when dropped.
enum TestDatabase {
    Sqlite { folder: PathBuf },
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    async fn create(backend: Backend) -> (Self, String) {
        match backend {
            Backend::Sqlite => {
                let folder = std::env::temp_dir().join(format!("chat-api-test-{}", Uuid::now_v7().simple()));
                std::fs::create_dir_all(&folder).unwrap();
                let url = format!("sqlite://{}", folder.join("chat.db").display());
                (TestDatabase::Sqlite { folder }, url)
            }
            Backend::Postgres => {
                let admin_url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string());
                let name = format!("chat_test_{}", Uuid::now_v7().simple());
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|error| {
                    panic!(
                        "PostgreSQL tests need a server at TEST_DATABASE_URL ({admin_url}): {error}. \
                         Run the tests with ./scripts/test.sh, which starts one when none answers."
                    )
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                let url = database_url(&admin_url, &name);
                (TestDatabase::Postgres { admin_url, name }, url)
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match self {
            TestDatabase::Sqlite { folder } => {
                let _ = std::fs::remove_dir_all(folder);
            }
            TestDatabase::Postgres { admin_url, name } => {
                // Drop cannot await: drop the database from a thread with a runtime of its own.
                let (admin_url, name) = (admin_url.clone(), name.clone());
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )))
                            .execute(&mut admin)
                            .await;
                            let _ = admin.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// `admin_url` with its database name replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let without_database = match base.rsplit_once('/') {
        Some((prefix, _)) if prefix.contains("://") && prefix.len() > prefix.find("://").unwrap() + 2 => prefix,
        _ => base,
    };
    format!("{without_database}/{name}{query}")
}

pub struct TestApp {
    pub address: String,
    pub backend: Backend,
    pub client: reqwest::Client,
    pub database_url: String,
    handle: ServerHandle,
    push: std::sync::Arc<chat_api::push::PushService>,
    /// `None` for a sibling instance: the first instance owns (and drops) the database.
    _database: Option<TestDatabase>,
    _files_folder: Option<FilesFolder>,
    /// `FILE_STORE_URL` and `S3_ENDPOINT` as the app was started with.
    pub file_store_url: String,
    pub s3_endpoint: Option<String>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
        // Tasks of the app outlive its server in the test's runtime: end the push worker,
        // which would otherwise hold the push lease.
        self.push.abort();
    }
}

impl TestApp {
    /// Ends this instance as a crash would: no more requests served, its push worker
    /// stopped where it stands, nothing given back (its push lease lapses by itself). The
    /// database stays, for the instances that go on.
    pub fn crash(&self) {
        drop(self.handle.stop(false));
        self.push.abort();
    }
}

/// A registered user with a live session.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub name: String,
    pub email: String,
    pub token: String,
    pub refresh_token: String,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// Starts the app with extra environment-style settings, e.g. `[("ACCESS_TOKEN_TTL", "1")]`.
pub async fn spawn_app_with(backend: Backend, settings: &[(&str, &str)]) -> TestApp {
    let (database, database_url) = TestDatabase::create(backend).await;
    start_app(backend, database_url, settings, Some(database)).await
}

impl TestApp {
    /// A second instance of the service on this instance's database (several instances
    /// behind one load balancer).
    pub async fn spawn_sibling(&self, settings: &[(&str, &str)]) -> TestApp {
        start_app(self.backend, self.database_url.clone(), settings, None).await
    }
}

async fn start_app(
    backend: Backend,
    database_url: String,
    settings: &[(&str, &str)],
    database: Option<TestDatabase>,
) -> TestApp {
    let mut environment: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), database_url.clone()),
        ("BIND".into(), "127.0.0.1:0".into()),
        ("WORKERS".into(), "2".into()),
        ("DATABASE_MAX_CONNECTIONS".into(), "5".into()),
        ("JWT_SECRET".into(), TEST_JWT_SECRET.into()),
        ("BCRYPT_COST".into(), "4".into()),
        ("AUTH_RATE_LIMIT_PER_MINUTE".into(), "0".into()),
        // Tests send faster than people; tests/api/rate_limits.rs turns the limits on.
        ("RATE_LIMITS".into(), "off".into()),
        ("PRESENCE_DEBOUNCE_MS".into(), "200".into()),
        ("VAPID_PRIVATE_KEY".into(), TEST_VAPID_PRIVATE_KEY.into()),
    ]);
    for (name, value) in settings {
        environment.insert(name.to_string(), value.to_string());
    }
    // Uploads of a local store go to a fresh folder, removed with the app (not ./data/files).
    let files_folder = (!environment.contains_key("FILE_STORE_URL")).then(|| {
        let folder = std::env::temp_dir().join(format!("chat-api-files-{}", Uuid::now_v7().simple()));
        environment.insert("FILE_STORE_URL".into(), folder.display().to_string());
        FilesFolder(folder)
    });
    let config = Config::from_lookup(|name| environment.get(name).cloned()).expect("test configuration is valid");
    let environment = environment;
    let application = Application::build(config).await.expect("the app starts");
    let address = format!("http://127.0.0.1:{}", application.port());
    let handle = application.handle();
    let push = application.push();
    tokio::spawn(application.run_until_stopped());
    TestApp {
        address,
        backend,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        database_url,
        handle,
        push,
        _database: database,
        _files_folder: files_folder,
        file_store_url: environment["FILE_STORE_URL"].clone(),
        s3_endpoint: environment.get("S3_ENDPOINT").cloned(),
    }
}

/// A test app's folder of uploads, removed when dropped.
struct FilesFolder(PathBuf);

impl Drop for FilesFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A response, read whole: status, headers and the JSON body (`Value::Null` if not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self { status, headers, body }
    }

    /// `data` of a success envelope, after checking the status.
    #[track_caller]
    pub fn data(&self, expected: StatusCode) -> &Value {
        assert_eq!(self.status, expected, "unexpected status; body: {}", self.body);
        assert_eq!(self.body["status"], "success", "body: {}", self.body);
        &self.body["data"]
    }

    /// Checks an error envelope's status and code.
    #[track_caller]
    pub fn assert_error(&self, expected: StatusCode, code: &str) {
        assert_eq!(self.status, expected, "unexpected status; body: {}", self.body);
        assert_eq!(self.body["status"], "error", "body: {}", self.body);
        assert_eq!(self.body["error"]["code"], code, "body: {}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|message| !message.is_empty())
        );
    }
}

/// A JSON string's text; panics on anything else.
pub fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
        .to_string()
}

/// More pages than any test lists: a cursor walk that gets this far does not end.
const MAX_PAGES: usize = 1000;

impl TestApp {
    /// Every page of a cursor-paged list: GETs `path` with `limit`, then follows each page's
    /// `nextCursor` with `before=<cursor>` until it is `null`. Returns the `list_field` array
    /// of each page, in order.
    pub async fn walk_pages(&self, token: &str, path: &str, list_field: &str, limit: u32) -> Vec<Vec<Value>> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let first = format!("{path}{separator}limit={limit}");
        let mut url = first.clone();
        let mut cursors = HashSet::new();
        let mut pages = Vec::new();
        loop {
            let reply = self.get(&url, Some(token)).await;
            let data = reply.data(StatusCode::OK);
            let page = data[list_field]
                .as_array()
                .unwrap_or_else(|| panic!("`{list_field}` is not a list: {data}"));
            pages.push(page.clone());
            match &data["nextCursor"] {
                Value::Null => return pages,
                Value::String(cursor) => {
                    assert!(
                        cursors.insert(cursor.clone()),
                        "the cursor does not advance: {cursor} again after {} pages of {url}",
                        pages.len()
                    );
                    url = format!("{first}&before={cursor}");
                }
                other => panic!("`nextCursor` is neither a string nor null: {other}"),
            }
            assert!(
                pages.len() < MAX_PAGES,
                "the cursor never ends after {} pages of {url}",
                pages.len()
            );
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Reply::read(request.send().await.unwrap()).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        let mut request = self.client.patch(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Reply::read(request.send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Reply::read(request.send().await.unwrap()).await
    }

    /// `DELETE /message/{message}?scope=` as `user`.
    pub async fn delete_message(&self, user: &TestUser, message: &str, scope: &str) -> Reply {
        let request = self
            .client
            .delete(self.url(&format!("/api/v1/message/{message}?scope={scope}")))
            .bearer_auth(&user.token);
        Reply::read(request.send().await.unwrap()).await
    }

    /// POST with a raw body and content type, for malformed-input tests.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut request = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Reply::read(request.send().await.unwrap()).await
    }

    // ---- auth ------------------------------------------------------------------------

    pub async fn register(&self, name: &str, email: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/register",
            None,
            &json!({ "name": name, "email": email, "password": password }),
        )
        .await
    }

    /// Registers `name` with a unique email and returns the user with its session.
    /// Registers `name` with exactly this `email` (searches and address books match emails,
    /// so tests of those choose them).
    pub async fn register_as(&self, name: &str, email: &str) -> TestUser {
        let reply = self.register(name, email, PASSWORD).await;
        let data = reply.data(StatusCode::CREATED);
        TestUser {
            id: text(&data["user"]["_id"]),
            name: name.to_string(),
            email: email.to_string(),
            token: text(&data["token"]),
            refresh_token: text(&data["refreshToken"]),
        }
    }

    pub async fn register_user(&self, name: &str) -> TestUser {
        let email = format!(
            "{}.{}@example.com",
            name.to_lowercase().replace(' ', "."),
            Uuid::now_v7().simple()
        );
        let reply = self.register(name, &email, PASSWORD).await;
        let data = reply.data(StatusCode::CREATED);
        TestUser {
            id: data["user"]["_id"].as_str().unwrap().to_string(),
            name: name.to_string(),
            email,
            token: data["token"].as_str().unwrap().to_string(),
            refresh_token: data["refreshToken"].as_str().unwrap().to_string(),
        }
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/login",
            None,
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post(
            "/api/v1/auth/refreshtoken",
            None,
            &json!({ "refreshToken": refresh_token }),
        )
        .await
    }

    pub async fn logout(&self, token: &str) -> Reply {
        self.post_raw("/api/v1/auth/logout", Some(token), "application/json", "")
            .await
    }

    // ---- users -----------------------------------------------------------------------

    pub async fn get_me(&self, token: &str) -> Reply {
        self.get("/api/v1/user/getme", Some(token)).await
    }

    pub async fn search_users(&self, token: &str, query: &str) -> Reply {
        self.get(&format!("/api/v1/user?{query}"), Some(token)).await
    }

    pub async fn get_user(&self, token: &str, id: &str) -> Reply {
        self.get(&format!("/api/v1/user/{id}"), Some(token)).await
    }

    // ---- conversations ---------------------------------------------------------------

    pub async fn create_direct(&self, token: &str, receiver_id: &str) -> Reply {
        self.post(
            "/api/v1/conversation",
            Some(token),
            &json!({ "receiver_id": receiver_id }),
        )
        .await
    }

    /// The id of the direct conversation between `a` and `b` (created if needed).
    pub async fn direct_conversation(&self, a: &TestUser, b: &TestUser) -> String {
        let reply = self.create_direct(&a.token, &b.id).await;
        assert!(reply.status.is_success(), "{}", reply.body);
        reply.body["data"]["conversation"]["_id"].as_str().unwrap().to_string()
    }

    pub async fn create_group(&self, token: &str, name: &str, participants: &[&str]) -> Reply {
        self.post(
            "/api/v1/conversation",
            Some(token),
            &json!({ "type": "group", "name": name, "participants": participants }),
        )
        .await
    }

    pub async fn list_conversations(&self, token: &str, query: &str) -> Reply {
        self.get(&format!("/api/v1/conversation?{query}"), Some(token)).await
    }

    pub async fn get_conversation(&self, token: &str, id: &str) -> Reply {
        self.get(&format!("/api/v1/conversation/{id}"), Some(token)).await
    }

    // ---- messages --------------------------------------------------------------------

    pub async fn send_message(&self, token: &str, conversation: &str, text: &str) -> Reply {
        self.post(
            "/api/v1/message",
            Some(token),
            &json!({ "convo_id": conversation, "message": text }),
        )
        .await
    }

    pub async fn send_message_with_client_id(
        &self,
        token: &str,
        conversation: &str,
        text: &str,
        client_id: &str,
    ) -> Reply {
        self.post(
            "/api/v1/message",
            Some(token),
            &json!({ "convo_id": conversation, "message": text, "clientId": client_id }),
        )
        .await
    }

    /// Sends `text` as `user` and returns the stored message's id.
    pub async fn send_text(&self, user: &TestUser, conversation: &str, text: &str) -> String {
        let reply = self.send_message(&user.token, conversation, text).await;
        reply.data(StatusCode::CREATED)["message"]["_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn list_messages(&self, token: &str, conversation: &str, query: &str) -> Reply {
        self.get(&format!("/api/v1/message/{conversation}?{query}"), Some(token))
            .await
    }
}

#[test]
fn database_url_replaces_only_the_database_name() {
    assert_eq!(
        database_url("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        database_url("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(database_url("postgres://h:1", "x"), "postgres://h:1/x");
    let _ = sqlx::postgres::PgConnectOptions::from_str(&database_url(DEFAULT_ADMIN_URL, "x")).unwrap();
}

// ---- added for the authorization, bad-input and failure tests -----------------------------

impl TestApp {
    /// Any method on `path`, with a JSON body or none at all.
    pub async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        Reply::read(request.send().await.unwrap()).await
    }

    /// The group `owner` creates with `members`; returns its id.
    pub async fn group_conversation(&self, owner: &TestUser, name: &str, members: &[&TestUser]) -> String {
        let ids: Vec<&str> = members.iter().map(|member| member.id.as_str()).collect();
        let reply = self.create_group(&owner.token, name, &ids).await;
        text(&reply.data(StatusCode::CREATED)["conversation"]["_id"])
    }

    /// `GET /api/v1/events?after=0&limit=1000` as `token`'s user: the stored events and `nextAfter`.
    pub async fn stored_events(&self, token: &str) -> (Vec<Value>, String) {
        let reply = self.get("/api/v1/events?after=0&limit=1000", Some(token)).await;
        let data = reply.data(StatusCode::OK);
        let events = data["events"]
            .as_array()
            .unwrap_or_else(|| panic!("no events list: {data}"))
            .clone();
        (events, text(&data["nextAfter"]))
    }

    /// [`Self::stored_events`] once `done` holds for them. On PostgreSQL an event is listed
    /// once it is final (no older transaction anywhere is still running), which with other
    /// tests running can take a moment after its commit. Fails the test after 10 s.
    pub async fn stored_events_once(&self, token: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (events, _) = self.stored_events(token).await;
            if done(&events) {
                return events;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the events never matched: {events:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
