//! Builds the service from its configuration: store, secrets, shared state, HTTP server.
//! The listener is bound here, before anything runs, so that callers (tests, `main`) know
//! the port at once (`BIND=127.0.0.1:0` picks a free one).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{Condition, ErrorHandlers, Next, from_fn};
use actix_web::{App, HttpServer, web};
use utoipa_swagger_ui::SwaggerUi;
use uuid::Uuid;

use crate::auth::rate_limit::RateLimiter;
use crate::auth::tokens::JwtKeys;
use crate::auth::{AuthService, secret};
use crate::config::Config;
use crate::error::{ApiError, envelope_framework_errors, json_config, path_config, query_config};
use crate::limits::RateLimits;
use crate::push::PushService;
use crate::realtime::{Hub, StreamSettings};
use crate::routes;
use crate::state::AppState;
use crate::store::{ConnectOptions, Store, StoreError};

/// How long in-flight requests get to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the database: {0}")]
    Database(#[from] StoreError),
    #[error("cannot load or create the JWT secret in {folder}: {source}")]
    Secret { folder: String, source: std::io::Error },
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
    #[error("cannot start authentication: {0}")]
    Auth(ApiError),
    #[error("cannot open the file store: {0}")]
    Files(#[from] crate::files::FileError),
    #[error("cannot start push notifications: {0}")]
    Push(#[from] crate::push::PushSetupError),
}

pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    hub: Arc<Hub>,
    push: Arc<PushService>,
}

impl Application {
    /// Connects and migrates the store, then binds the listener. Nothing is served until
    /// [`Application::run_until_stopped`].
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let options = ConnectOptions {
            max_connections: config.database_max_connections,
            common_word_matches: config.search_common_word_matches,
            newest_first_window: config.search_newest_first_window,
            group_max_members: config.group_max_members,
            chat_request_max_messages: config.chat_request_max_messages,
            chat_request_cooldown_days: config.chat_request_cooldown_days,
            ..Default::default()
        };
        let store = Store::connect(&config.database_url, &options).await?;
        store.migrate().await?;

        let secret_folder = store.sqlite_folder().unwrap_or_else(|| config.data_dir.clone());
        let secret = secret::load_or_generate(config.jwt_secret.as_deref(), &secret_folder).map_err(|source| {
            StartupError::Secret {
                folder: secret_folder.display().to_string(),
                source,
            }
        })?;
        let files = crate::files::FileStore::open(&config.files.location, config.files.rules.clone())?;
        let file_quota = config.files.quota_bytes;
        let file_links = crate::files::links::FileLinks::new(secret.as_bytes(), config.files.url_ttl);
        let auth = AuthService::new(
            store.clone(),
            JwtKeys::new(secret.as_bytes()),
            config.access_token_ttl,
            config.refresh_token_ttl,
            config.bcrypt_cost,
            RateLimiter::per_minute(config.auth_rate_limit_per_minute),
        )
        .await
        .map_err(StartupError::Auth)?;
        let auth = web::Data::new(auth);

        let settings = StreamSettings {
            buffer: config.sse_buffer,
            max_per_user: config.max_streams_per_user,
            keep_alive: config.sse_keep_alive,
            retry: config.sse_retry,
            presence_debounce: config.presence_debounce,
            presence_group_max: config.presence_group_max_members,
            file_links: file_links.clone(),
        };
        let hub = Hub::start(store.clone(), settings, Uuid::now_v7()).await?;
        let push = PushService::start(
            store.clone(),
            config.push.clone(),
            &secret_folder,
            file_links.clone(),
            hub.instance(),
            hub.log_advanced(),
        )
        .await?;
        tokio::spawn(prune_events(store.clone(), config.event_retention));
        tokio::spawn(sweep_orphan_files(
            store.clone(),
            files.clone(),
            config.files.orphan_ttl,
        ));

        let state = web::Data::new(AppState {
            trusted_proxies: config.trusted_proxies.clone(),
            limits: RateLimits::new(&config.limits),
            emails: crate::views::EmailPolicy {
                visible_to_all: config.user_emails_visible,
            },
            store: store.clone(),
            hub: hub.clone(),
            push: push.clone(),
            auth: auth.clone(),
            production: config.production,
            files: files.clone(),
            file_links,
            file_quota,
            upload_slots: crate::files::UploadSlots::new(config.files.max_concurrent_uploads),
            upload_url_ttl: config
                .files
                .url_ttl
                .min(config.files.orphan_ttl / 2)
                .max(std::time::Duration::from_secs(60)),
        });
        tokio::spawn(forget_idle_rate_limits(state.clone()));
        let listener = TcpListener::bind(config.bind).map_err(|source| StartupError::Bind {
            address: config.bind.to_string(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                address: config.bind.to_string(),
                source,
            })?
            .port();
        let openapi = crate::openapi::document();
        let json_body_limit = config.json_body_limit;
        let cors_origins = config.cors_origins.clone();

        let workers = config
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(auth.clone())
                .app_data(json_config(json_body_limit))
                .app_data(query_config())
                .app_data(path_config())
                .app_data(web::PayloadConfig::new(json_body_limit))
                .wrap(Condition::new(!cors_origins.is_empty(), cors(&cors_origins)))
                .wrap(ErrorHandlers::new().default_handler(envelope_framework_errors))
                .wrap(from_fn(log_request))
                .configure(routes::configure)
                .service(SwaggerUi::new("/swagger-ui/{_:.*}").url("/api-docs/openapi.json", openapi.clone()))
        })
        .workers(workers)
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            address: config.bind.to_string(),
            source,
        })?
        // Signals are handled by `main`, which decides the order of shutdown.
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .run();

        Ok(Self {
            port,
            server,
            store,
            hub,
            push,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server from elsewhere (signal handler, tests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The real-time hub: `shutdown` it before stopping the server, so that open streams end
    /// instead of holding the graceful stop up.
    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// The push worker: `shutdown` it at a graceful stop so that another instance takes its
    /// lease over at once.
    pub fn push(&self) -> Arc<PushService> {
        self.push.clone()
    }

    /// Serves until stopped through [`Application::handle`], then closes the database pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.store.close().await;
        result
    }
}

/// Keeps the limiters' memory to the clients and users active lately.
async fn forget_idle_rate_limits(state: web::Data<AppState>) {
    let mut ticks = tokio::time::interval(crate::auth::rate_limit::FORGET_EVERY);
    loop {
        ticks.tick().await;
        state.limits.forget_idle();
        state.auth.limiter.forget_idle();
    }
}

/// Deletes events older than the retention window, and sessions that ended, hourly.
async fn prune_events(store: Store, retention: Duration) {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(30));
    let mut ticks = tokio::time::interval(Duration::from_secs(3600));
    loop {
        ticks.tick().await;
        let now = crate::store::now();
        match store.prune_events(now - retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "pruned old events"),
            Err(error) => tracing::warn!(%error, "pruning events failed"),
        }
        match store.prune_sessions(now, now - chrono::Duration::days(1)).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "pruned ended sessions"),
            Err(error) => tracing::warn!(%error, "pruning sessions failed"),
        }
    }
}

/// Removes uploads that no message carries once `FILE_ORPHAN_TTL` has passed: their rows,
/// then their bytes. Runs a few times per TTL (at most hourly, at least every second).
async fn sweep_orphan_files(store: Store, files: crate::files::FileStore, ttl: Duration) {
    let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let age = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(1));
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        // A bounded batch per tick: a backlog drains over the following ticks.
        match store.forget_orphan_files(crate::store::now() - age, 500).await {
            Ok(ids) => {
                for id in &ids {
                    if let Err(error) = files.delete(*id).await {
                        tracing::warn!(%error, file = %id, "could not remove an orphan upload's bytes");
                    }
                }
                if !ids.is_empty() {
                    tracing::info!(removed = ids.len(), "removed uploads no message carries");
                }
            }
            Err(error) => tracing::warn!(%error, "sweeping orphan uploads failed"),
        }
    }
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .allowed_header("last-event-id")
        .supports_credentials()
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// One log line per request: method, path, status, duration. The query string is left out
/// on purpose: it may carry a stream ticket.
async fn log_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.path().to_string();
    let response = next.call(request).await?;
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    Ok(response)
}
