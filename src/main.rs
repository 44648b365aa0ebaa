//! `chat-api`: serve the API (default), `chat-api migrate`: apply migrations and exit,
//! `chat-api openapi`: print the OpenAPI document.

use std::process::ExitCode;

use chat_api::config::Config;
use chat_api::startup::Application;
use chat_api::store::{ConnectOptions, Store};
use chat_api::{openapi, telemetry};

const USAGE: &str = "usage: chat-api [serve | migrate | openapi]\n\
    \n  serve    serve the API (the default)\
    \n  migrate  apply the database migrations and exit\
    \n  openapi  print the OpenAPI document (JSON)\
    \n\nConfiguration comes from the environment and .env; see .env.example.";

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    if command == "openapi" {
        print!("{}", openapi::openapi_json());
        return ExitCode::SUCCESS;
    }
    if !matches!(command.as_str(), "serve" | "migrate") {
        eprintln!("{USAGE}");
        return if matches!(command.as_str(), "help" | "--help" | "-h") {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        };
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("chat-api: configuration error: {error}");
            return ExitCode::from(78);
        }
    };
    telemetry::init(config.log_format);
    let result = if command == "migrate" {
        migrate(&config).await
    } else {
        serve(config).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::connect(&config.database_url, &ConnectOptions::default()).await?;
    store.migrate().await?;
    store.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let bind = config.bind;
    let application = Application::build(config).await?;
    tracing::info!(address = %bind, port = application.port(), "chat-api listening");
    let handle = application.handle();
    let hub = application.hub();
    let push = application.push();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received: closing streams, finishing in-flight requests");
        // Streams first: an open stream is an in-flight request that would otherwise hold the
        // graceful stop for its whole timeout.
        hub.shutdown().await;
        push.shutdown().await;
        handle.stop(true).await;
    });
    application.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what `docker stop` and orchestrators send).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
