//! Storage: the only place that speaks SQL.
//!
//! [`Store`] is the one interface the rest of the service uses. Behind it sit two backends,
//! PostgreSQL and SQLite, each owning its connection setup and migrations (`postgres.rs`,
//! `sqlite.rs`, `migrations/<backend>/`). The queries themselves are written once: each
//! method body runs through [`with_backend!`], which compiles that body once per backend
//! with `pool` bound to the backend's own pool type. Where the two dialects differ, the
//! difference belongs on the [`Dialect`] trait, implemented by each pool type; everything else is literally
//! the same SQL (both accept `$1` placeholders, `RETURNING`, `ON CONFLICT` and row values).
//! This keeps the two backends from drifting apart, which is what happens to SQL written twice.

mod access;
mod blocks;
mod chat_requests;
mod contacts;
mod conversations;
mod event_log;
pub(crate) mod files;
mod groups;
mod messages;
pub mod models;
mod postgres;
mod presence;
mod push;
mod search;
mod sessions;
mod sql;
mod sqlite;
mod stream_tickets;
mod tx;
mod users;

pub use access::{Member, RequestState, VisibleMessage};
pub use blocks::{BLOCKS_MAX, BlockedUser};
pub use chat_requests::{ChatRequest, DIRECT_REQUEST, GROUP_INVITATION, InvitationAnswer, RequestFilter};
pub use contacts::{
    Contact, ContactChanges, ContactCursor, ContactDetails, ContactListing, ContactUpdate, ContactValue,
    MatchedContactValue, SavedContact,
};
pub use files::{FileState, StoredFile};
pub use groups::{GroupChanges, GroupCreated, GroupUpdate, Left};
pub use messages::Sent;
pub use push::{DuePush, MessageRecipient, PUSH_SUBSCRIPTIONS_MAX, PushSubscription, PushedMessage, QueuedPush};

use std::path::PathBuf;
use std::time::Duration;

use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;

pub use event_log::{Audience, EventPosition, NewEvent, PayloadRewrite, ShownMessage, StoredEvent};
pub use models::*;
pub use sqlite::sqlite_file_path;

/// What went wrong in the store, in the store's own terms: the HTTP layer (`error.rs`)
/// decides which status, code, field name and words each becomes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing does not exist, or the caller may not see it (which we do not distinguish).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule or a state transition was broken.
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    /// A value that is well-formed but refers to something unusable.
    #[error("invalid: {0:?}")]
    Invalid(Invalid),
    /// The caller may see the thing but not do this to it.
    #[error("forbidden: {0:?}")]
    Forbidden(Forbidden),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflict {
    EmailTaken,
    /// The phone number is another user's.
    PhoneTaken,
    /// A chat request to someone the caller already has a conversation with.
    ChatExists,
    ChatRequestAnswered,
    /// An edit of a message deleted for everyone.
    MessageDeleted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// New members that are not users.
    UnknownUsers(Vec<Uuid>),
    /// Files that do not exist, are not ready, or were not uploaded by the sender.
    UnknownFiles(Vec<Uuid>),
    /// A group change that would remove its owner.
    OwnerRemoved,
    /// A group change asked of a direct conversation.
    NotAGroup,
    /// Messages named for a delete that are not in its conversation.
    ForeignMessages(Vec<Uuid>),
    /// A message named by the request, as `MessageReference`, that is not in the conversation.
    ForeignMessage(MessageReference),
    /// A group would have more participants than the limit (which it carries).
    GroupTooLarge(usize),
    /// The database URL names no backend we have.
    DatabaseUrl,
    /// A user would block more people than the limit (which it carries).
    TooManyBlocks(usize),
    /// A stream would subscribe to more users' presence than the limit (which it carries).
    TooManySubscriptions(usize),
    /// An avatar that is not an image the user uploaded (with its thumbnail).
    UnusableAvatar,
}

/// Which message of a request a [`Invalid::ForeignMessage`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageReference {
    ReplyTo,
    ReadUpTo,
    Before,
    After,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forbidden {
    /// Editing another's message.
    NotTheSender,
    /// Deleting another's message for everyone, not being the group's owner.
    NotTheSenderOrOwner,
    /// Answering a chat request one sent.
    NotTheRecipient,
    /// Sending into a chat request one received and has not accepted.
    ChatRequestPending,
    /// Sending into a declined chat request.
    ChatRequestDeclined,
    OwnerOnlyMembers,
    OwnerOnlyRenamePolicy,
    OwnerOnlyRename,
    /// The password changed (or the session ended) since the caller confirmed it.
    CredentialsChanged,
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Postgres,
    Sqlite,
}

#[derive(Clone)]
enum Backend {
    Postgres(PgPool),
    /// SQLite allows one writer at a time. Waiting for the write lock inside SQLite means its
    /// busy handler's sleeps (up to 100 ms each), so writes queue for the one writer
    /// connection instead, in order; reads use the other connections, which WAL never blocks.
    Sqlite {
        readers: SqlitePool,
        writer: SqlitePool,
    },
}

/// The storage handle: cheap to clone (it holds a connection pool).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Rung after every commit that appended events. PostgreSQL instances hear each other
    /// through NOTIFY instead; this bell serves the in-process listener.
    commit_bell: std::sync::Arc<tokio::sync::Notify>,
    /// See [`Dialect::COMMON_WORD_MATCHES`].
    common_word_matches: i64,
    /// See [`Dialect::NEWEST_FIRST_WINDOW`].
    newest_first_window: i64,
    /// The most participants a group may have, owner included (`GROUP_MAX_MEMBERS`).
    group_max_members: i64,
    /// See [`ConnectOptions::chat_request_max_messages`].
    chat_request_max_messages: i64,
    /// See [`ConnectOptions::chat_request_cooldown_days`].
    chat_request_cooldown: chrono::Duration,
}

/// Options shared by both backends.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Overrides the backend's [`Dialect::COMMON_WORD_MATCHES`] (tuning, and tests that
    /// want both search plans on a small history).
    pub common_word_matches: Option<u32>,
    /// Overrides the backend's [`Dialect::NEWEST_FIRST_WINDOW`] (the same).
    pub newest_first_window: Option<u32>,
    /// The most participants a group may have, owner included, after any change.
    pub group_max_members: u32,
    /// How many messages a requester may send while their chat request is pending.
    pub chat_request_max_messages: u32,
    /// How long a decline holds for the pair: the requester reaches the decliner by no route.
    pub chat_request_cooldown_days: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            common_word_matches: None,
            newest_first_window: None,
            group_max_members: 1000,
            chat_request_max_messages: 3,
            chat_request_cooldown_days: 30,
        }
    }
}

/// Runs `$body` with `$pool` bound to the backend's pool for reading (`&PgPool` or
/// `&SqlitePool`). The body is compiled once per backend, so it may only use what both support.
///
/// The one contract of the store's macros (this one, [`with_writer!`] and the in-transaction
/// helpers of `tx.rs`): the body is run as an `async` block that evaluates to
/// `StoreResult<T>`, and so does the macro. `?` and `return` inside leave the body, never the
/// function around it.
macro_rules! with_backend {
    ($store:expr, |$pool:ident| $body:expr) => {
        $crate::store::on_pool!($store, readers, |$pool| $body)
    };
}
pub(crate) use with_backend;

/// Like [`with_backend!`], for bodies that write: on SQLite, `$pool` is the writer.
macro_rules! with_writer {
    ($store:expr, |$pool:ident| $body:expr) => {
        $crate::store::on_pool!($store, writer, |$pool| $body)
    };
}
pub(crate) use with_writer;

/// What both of the above expand to: `$sqlite` names the SQLite pool to use.
macro_rules! on_pool {
    ($store:expr, $sqlite:ident, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Postgres($pool) => $crate::store::tx::store_body(async { $body }).await,
            $crate::store::Backend::Sqlite { $sqlite: $pool, .. } => {
                $crate::store::tx::store_body(async { $body }).await
            }
        }
    };
}
pub(crate) use on_pool;

/// What differs between the two backends, looked up on the pool type inside [`with_backend!`].
pub(crate) trait Dialect {
    type Db: sqlx::Database;

    /// SQL for "events with a `tx_id` below this are final: no event can still appear there".
    /// PostgreSQL: the oldest transaction still running, cluster-wide, as seen by the statement
    /// itself. SQLite has one writer at a time, so every committed event is final (`tx_id` 0).
    const EVENT_WATERMARK: &'static str;

    /// A condition on conversation `$1` that serialises the transactions writing to it. The
    /// rule: every transaction that appends events for a conversation's members evaluates it
    /// in (or before) its first write; statements before it may only read. PostgreSQL: an
    /// advisory lock, which (unlike a row lock) assigns no transaction id, and since only a
    /// write assigns one, ids are assigned in lock order and a conversation's events, ordered
    /// by transaction id, come in commit order. Sends, edits, reads, deletes, group changes,
    /// leaving and chat-request answers take it; transactions that only append events for one
    /// user (stars, pins) or create a conversation nobody else can write to yet do not need
    /// it. SQLite writers are serialised already.
    const LOCK_CONVERSATION: &'static str;

    /// Two SQL values, `tx, id`: the log position a participant joins at, inside the
    /// transaction that adds them, which holds the conversation lock. Every event of the
    /// conversation committed before has a lower position and every later one (this
    /// transaction's included) a higher one. PostgreSQL: this transaction's id (ids come in
    /// lock order, see `LOCK_CONVERSATION`); SQLite: the newest event id (one writer).
    const JOIN_POSITION: &'static str;

    /// The function returning the larger of its arguments.
    const GREATEST: &'static str;

    /// A `FROM` item: the messages `m` matching the full-text query `$2` (see `text_query`),
    /// read through the full-text index, so that a `LIMIT` stops the reading.
    const MATCHING_MESSAGES: &'static str;

    /// A condition on message `m` matching `$2`, tested on one message at a time while
    /// another index (newest first) drives the query. SQLite: a lookup of the row in the FTS5
    /// index (an `IN` over the matches would collect every match first).
    const TEXT_MATCH_EACH: &'static str;

    /// `JOIN` that keeps the left table as the outer loop. SQLite's `CROSS JOIN` forces the
    /// order; PostgreSQL's planner picks the newest-first index by itself.
    const JOIN_IN_ORDER: &'static str;

    /// Above this many matches in a caller's conversations, a search reads the caller's
    /// messages newest first and tests each, rather than collecting and sorting every match.
    /// Measured on 1,000,000 messages (README, "Benchmark"): collecting 2,000 matches costs
    /// a few milliseconds on either backend.
    const COMMON_WORD_MATCHES: i64;

    /// How many of the caller's newest messages a search for a common word tests before it
    /// sorts the older matches instead (a word common overall may be absent lately). Testing
    /// a message costs ~0.5 µs on PostgreSQL, 15 to 90 µs on SQLite (an FTS5 lookup each, the
    /// more the word's matches the dearer): a few milliseconds each (measured).
    const NEWEST_FIRST_WINDOW: i64;

    /// Starts a transaction that will write. SQLite takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes can fail with
    /// SQLITE_BUSY when another writer got in between, whatever the busy timeout.
    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, Self::Db>>;

    fn event_watermark(&self) -> &'static str {
        Self::EVENT_WATERMARK
    }

    fn lock_conversation(&self) -> &'static str {
        Self::LOCK_CONVERSATION
    }

    fn join_position(&self) -> &'static str {
        Self::JOIN_POSITION
    }

    fn matching_messages(&self) -> &'static str {
        Self::MATCHING_MESSAGES
    }

    fn text_match_each(&self) -> &'static str {
        Self::TEXT_MATCH_EACH
    }

    fn join_in_order(&self) -> &'static str {
        Self::JOIN_IN_ORDER
    }

    /// The words of a user's search as the backend's full-text query: every word must occur.
    fn text_query(&self, words: &str) -> String;

    /// The larger of two values: `GREATEST` on PostgreSQL, the two-argument `MAX` on SQLite.
    fn greatest(&self) -> &'static str {
        Self::GREATEST
    }
}

/// The PostgreSQL NOTIFY channel on which committed events are announced (payload: the
/// committing transaction's id), by a trigger on `events` (migration 0004).
pub const EVENTS_CHANNEL: &str = "chat_events";

impl Dialect for PgPool {
    type Db = sqlx::Postgres;
    const EVENT_WATERMARK: &'static str = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint";
    const JOIN_POSITION: &'static str = "pg_current_xact_id()::text::bigint, 0";
    const GREATEST: &'static str = "GREATEST";
    const MATCHING_MESSAGES: &'static str =
        "(SELECT * FROM messages WHERE search_vector @@ plainto_tsquery('simple', $2)) m";
    const TEXT_MATCH_EACH: &'static str = "m.search_vector @@ plainto_tsquery('simple', $2)";
    const JOIN_IN_ORDER: &'static str = "JOIN";
    const COMMON_WORD_MATCHES: i64 = 2_000;
    const NEWEST_FIRST_WINDOW: i64 = 2_000;
    const LOCK_CONVERSATION: &'static str =
        "(SELECT true FROM (SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))) AS conversation_lock)";

    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.begin().await
    }

    /// `plainto_tsquery` takes plain words and ANDs them.
    fn text_query(&self, words: &str) -> String {
        words.to_string()
    }
}

impl Dialect for SqlitePool {
    type Db = sqlx::Sqlite;
    const EVENT_WATERMARK: &'static str = "1";
    const JOIN_POSITION: &'static str = "0, (SELECT COALESCE(MAX(id), 0) FROM events)";
    const GREATEST: &'static str = "MAX";
    const MATCHING_MESSAGES: &'static str =
        "(SELECT m.* FROM messages_fts f JOIN messages m ON m.rowid = f.rowid WHERE f.messages_fts MATCH $2) m";
    const TEXT_MATCH_EACH: &'static str =
        "EXISTS (SELECT 1 FROM messages_fts f WHERE f.messages_fts MATCH $2 AND f.rowid = m.rowid)";
    const JOIN_IN_ORDER: &'static str = "CROSS JOIN";
    const COMMON_WORD_MATCHES: i64 = 2_000;
    const NEWEST_FIRST_WINDOW: i64 = 200;
    const LOCK_CONVERSATION: &'static str = "true";

    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.begin_with("BEGIN IMMEDIATE").await
    }

    /// Each word as an FTS5 string (`"…"`, quotes doubled), so that no user input is read as
    /// FTS5 syntax; listed words must all occur.
    fn text_query(&self, words: &str) -> String {
        words
            .split_whitespace()
            .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Store {
    /// Connects to the database named by `url`: `postgres://` or `postgresql://` for
    /// PostgreSQL, `sqlite:` for SQLite (the file and its folder are created if missing).
    pub async fn connect(url: &str, options: &ConnectOptions) -> StoreResult<Self> {
        let (backend, search_defaults) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (
                Backend::Postgres(postgres::connect(url, options).await?),
                (PgPool::COMMON_WORD_MATCHES, PgPool::NEWEST_FIRST_WINDOW),
            )
        } else if url.starts_with("sqlite:") {
            let (readers, writer) = sqlite::connect(url, options).await?;
            (
                Backend::Sqlite { readers, writer },
                (SqlitePool::COMMON_WORD_MATCHES, SqlitePool::NEWEST_FIRST_WINDOW),
            )
        } else {
            return Err(StoreError::Invalid(Invalid::DatabaseUrl));
        };
        Ok(Self {
            backend,
            commit_bell: Default::default(),
            common_word_matches: options.common_word_matches.map_or(search_defaults.0, i64::from),
            newest_first_window: options.newest_first_window.map_or(search_defaults.1, i64::from),
            group_max_members: i64::from(options.group_max_members),
            chat_request_max_messages: i64::from(options.chat_request_max_messages),
            chat_request_cooldown: chrono::Duration::days(i64::from(options.chat_request_cooldown_days)),
        })
    }

    /// Applies the backend's pending migrations (embedded in the binary).
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::migrate(pool).await,
            Backend::Sqlite { writer, .. } => sqlite::migrate(writer).await,
        }
    }

    /// Declines after this time still hold: the requester cannot reach the decliner.
    pub(crate) fn declines_since(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now - self.chat_request_cooldown
    }

    /// The most participants a group may have, owner included.
    pub fn group_max_members(&self) -> usize {
        usize::try_from(self.group_max_members).unwrap_or(usize::MAX)
    }

    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Postgres(_) => BackendKind::Postgres,
            Backend::Sqlite { .. } => BackendKind::Sqlite,
        }
    }

    /// The folder of the SQLite file, if this store is a SQLite file.
    pub fn sqlite_folder(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Sqlite { writer, .. } => {
                let file = writer.connect_options().get_filename().to_path_buf();
                file.parent().map(PathBuf::from)
            }
            Backend::Postgres(_) => None,
        }
    }

    /// The in-process doorbell rung after each commit that appended events.
    pub fn commit_bell(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.commit_bell.clone()
    }

    /// The database URL's backend connection, for listeners that need their own (LISTEN).
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.backend {
            Backend::Postgres(pool) => Some(pool),
            Backend::Sqlite { .. } => None,
        }
    }

    /// Is the database reachable? (`GET /ready`) On SQLite a pooled connection answers even
    /// after its file was deleted or moved, so the file must also still be where it was.
    pub async fn ping(&self) -> StoreResult<()> {
        if let Backend::Sqlite { writer, .. } = &self.backend {
            let file = writer.connect_options().get_filename().to_path_buf();
            let in_memory = file.as_os_str().is_empty() || file.as_os_str() == ":memory:";
            if !in_memory && !file.exists() {
                return Err(StoreError::Database(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the SQLite file is gone",
                ))));
            }
        }
        with_backend!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
            Ok(())
        })
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres(pool) => pool.close().await,
            Backend::Sqlite { readers, writer } => {
                readers.close().await;
                writer.close().await;
            }
        }
    }
}

/// True when `error` is a unique-constraint violation (any backend).
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The current time at the precision both backends keep (microseconds), so that a value
/// read back equals the value written.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
