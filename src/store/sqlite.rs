//! SQLite: connection setup and migrations. Queries live with their resource
//! (`users.rs`, `messages.rs`, ...) and are shared with PostgreSQL.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{ConnectOptions, StoreResult};

/// Opens the database: one writer connection (which creates the file) and a pool of
/// read-only connections.
pub(super) async fn connect(url: &str, options: &ConnectOptions) -> StoreResult<(SqlitePool, SqlitePool)> {
    let connect_options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        // WAL: readers never wait for the writer.
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a transaction is on disk when COMMIT returns, so an acknowledged message
        // survives a power cut, not only a crash of this process.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    if let Some(folder) = connect_options.get_filename().parent()
        && !folder.as_os_str().is_empty()
    {
        std::fs::create_dir_all(folder).map_err(|error| sqlx::Error::Configuration(error.into()))?;
    }
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect_options.clone())
        .await?;
    let readers = SqlitePoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        // Read-only: a write that forgot to go through the writer fails loudly.
        .connect_with(connect_options.read_only(true).create_if_missing(false))
        .await?;
    Ok((readers, writer))
}

pub(super) async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::migrate!("./migrations/sqlite")
        .run(pool)
        .await
        .map_err(sqlx::Error::from)?;
    Ok(())
}

/// The file a `sqlite:` URL points at, or `None` for other URLs and in-memory databases.
pub fn sqlite_file_path(url: &str) -> Option<PathBuf> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}
