//! PostgreSQL: connection setup and migrations. Queries live with their resource
//! (`users.rs`, `messages.rs`, ...) and are shared with SQLite.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{ConnectOptions, StoreResult};

pub(super) async fn connect(url: &str, options: &ConnectOptions) -> StoreResult<PgPool> {
    let connect_options = PgConnectOptions::from_str(url)?.application_name("chat-api");
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect_options)
        .await?;
    Ok(pool)
}

pub(super) async fn migrate(pool: &PgPool) -> StoreResult<()> {
    sqlx::migrate!("./migrations/postgres")
        .run(pool)
        .await
        .map_err(sqlx::Error::from)?;
    Ok(())
}
