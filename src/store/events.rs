//! The event log that SSE streams and `GET /events` read: positions, appending inside the
//! writer's transaction, reading in commit order, retention. Also stream tickets and presence,
//! the other state the real-time layer keeps in the database (so that several instances agree).

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Dialect, Store, StoreResult, with_backend, with_writer};

/// Where an event stands in the log. Ordered; the same order for every reader and instance.
/// Written as `<id>` when `tx` is 0 (SQLite), else `<tx>-<id>` (PostgreSQL): opaque to clients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventPosition {
    pub tx: i64,
    pub id: i64,
}

impl EventPosition {
    /// Before every event.
    pub const START: EventPosition = EventPosition { tx: 0, id: 0 };

    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let (tx, id) = match raw.split_once('-') {
            Some((tx, id)) => (tx.parse().ok()?, id.parse().ok()?),
            None => (0, raw.parse().ok()?),
        };
        (tx >= 0 && id >= 0).then_some(Self { tx, id })
    }
}

impl fmt::Display for EventPosition {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tx == 0 {
            write!(formatter, "{}", self.id)
        } else {
            write!(formatter, "{}-{}", self.tx, self.id)
        }
    }
}

/// Who receives an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Every participant of the conversation.
    Conversation(Uuid),
    /// One user (all of their streams).
    User(Uuid),
}

/// An event to append, in the same transaction as the change it reports.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub kind: &'static str,
    pub audience: Audience,
    /// The JSON `data` of the event, serialised.
    pub payload: String,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredEvent {
    #[sqlx(rename = "tx_id")]
    pub tx: i64,
    pub id: i64,
    pub kind: String,
    pub conversation_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub payload: String,
}

impl StoredEvent {
    pub fn position(&self) -> EventPosition {
        EventPosition {
            tx: self.tx,
            id: self.id,
        }
    }
}

/// Appends events inside a transaction: `append_events!(tx_connection, events, now)`.
/// A macro because it runs inside `with_backend!` bodies, on either backend's connection.
macro_rules! append_events {
    ($connection:expr, $events:expr, $now:expr) => {
        for event in $events {
            let (conversation_id, user_id) = match event.audience {
                $crate::store::Audience::Conversation(id) => (Some(id), None),
                $crate::store::Audience::User(id) => (None, Some(id)),
            };
            sqlx::query(
                "INSERT INTO events (kind, conversation_id, user_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(event.kind)
            .bind(conversation_id)
            .bind(user_id)
            .bind(&event.payload)
            .bind($now)
            .execute(&mut *$connection)
            .await?;
        }
    };
}
pub(crate) use append_events;

const SELECT_EVENTS: &str = "SELECT e.tx_id, e.id, e.kind, e.conversation_id, e.user_id, e.payload FROM events e";

impl Store {
    /// The position of the newest event every reader can see: a client that loads its state
    /// after reading this and then resumes from it misses nothing.
    pub async fn head_position(&self) -> StoreResult<EventPosition> {
        let head = with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT tx_id, id FROM events WHERE tx_id < {watermark} ORDER BY tx_id DESC, id DESC LIMIT 1",
                watermark = pool.event_watermark()
            ));
            sqlx::query_as::<_, (i64, i64)>(sql).fetch_optional(pool).await?
        });
        let head = head.map_or(EventPosition::START, |(tx, id)| EventPosition { tx, id });
        // An emptied log (everything pruned) still stands where the pruning left it.
        Ok(head.max(self.pruned_through().await?))
    }

    /// Every event after `after`, in order, up to `limit` (what an instance fans out).
    pub async fn events_after(&self, after: EventPosition, limit: u32) -> StoreResult<Vec<StoredEvent>> {
        let events = with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "{SELECT_EVENTS} WHERE e.tx_id < {watermark} AND (e.tx_id, e.id) > ($1, $2)
                 ORDER BY e.tx_id, e.id LIMIT $3",
                watermark = pool.event_watermark()
            ));
            sqlx::query_as::<_, StoredEvent>(sql)
                .bind(after.tx)
                .bind(after.id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(events)
    }

    /// The events of one user after `after`, in order, up to `limit` (what a resuming stream
    /// replays): those of the conversations the user is in, and those addressed to the user.
    pub async fn user_events_after(
        &self,
        user: Uuid,
        after: EventPosition,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        let events = with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "{SELECT_EVENTS} WHERE e.tx_id < {watermark} AND (e.tx_id, e.id) > ($1, $2)
                   AND (e.user_id = $3
                        OR e.conversation_id IN (SELECT conversation_id FROM participants WHERE user_id = $3))
                 ORDER BY e.tx_id, e.id LIMIT $4",
                watermark = pool.event_watermark()
            ));
            sqlx::query_as::<_, StoredEvent>(sql)
                .bind(after.tx)
                .bind(after.id)
                .bind(user)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(events)
    }

    /// Events up to this position have been pruned; resuming from before it needs a reset.
    pub async fn pruned_through(&self) -> StoreResult<EventPosition> {
        let (tx, id) = with_backend!(self, |pool| {
            sqlx::query_as::<_, (i64, i64)>("SELECT pruned_tx, pruned_id FROM event_log_state WHERE id = 1")
                .fetch_one(pool)
                .await?
        });
        Ok(EventPosition { tx, id })
    }

    /// Deletes expired stream tickets and the events created before `cutoff`; returns how many
    /// events went. In batches of short transactions: on PostgreSQL a long one would hold every
    /// instance's reading of the log (see `Dialect::EVENT_WATERMARK`).
    pub async fn prune_events(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        const BATCH: i64 = 1000;
        with_writer!(self, |pool| {
            sqlx::query("DELETE FROM stream_tickets WHERE expires_at < $1")
                .bind(super::now())
                .execute(pool)
                .await?;
        });
        let mut deleted = 0;
        loop {
            let pruned_in_batch = with_writer!(self, |pool| {
                let mut tx = pool.begin_write().await?;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT tx_id, id FROM events WHERE tx_id < {watermark} AND created_at < $1
                     ORDER BY tx_id, id LIMIT $2",
                    watermark = pool.event_watermark()
                ));
                let batch: Vec<(i64, i64)> = sqlx::query_as(sql).bind(cutoff).bind(BATCH).fetch_all(&mut *tx).await?;
                let Some(&(pruned_tx, pruned_id)) = batch.last() else {
                    return Ok(deleted);
                };
                let removed = sqlx::query("DELETE FROM events WHERE (tx_id, id) <= ($1, $2)")
                    .bind(pruned_tx)
                    .bind(pruned_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE event_log_state SET pruned_tx = $1, pruned_id = $2 WHERE id = 1")
                    .bind(pruned_tx)
                    .bind(pruned_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                (removed.rows_affected(), batch.len() < BATCH as usize)
            });
            deleted += pruned_in_batch.0;
            if pruned_in_batch.1 {
                return Ok(deleted);
            }
        }
    }

    /// The participants of these conversations, as (conversation, user) pairs.
    pub async fn members_of(&self, conversations: &[Uuid]) -> StoreResult<Vec<(Uuid, Uuid)>> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        let pairs = with_backend!(self, |pool| {
            let mut builder =
                sqlx::QueryBuilder::new("SELECT conversation_id, user_id FROM participants WHERE conversation_id IN (");
            let mut list = builder.separated(", ");
            for conversation in conversations {
                list.push_bind(*conversation);
            }
            builder.push(")");
            builder.build_query_as::<(Uuid, Uuid)>().fetch_all(pool).await?
        });
        Ok(pairs)
    }

    /// Everyone who shares a conversation with `user` (not `user`).
    pub async fn contacts_of(&self, user: Uuid) -> StoreResult<Vec<Uuid>> {
        let contacts = with_backend!(self, |pool| {
            sqlx::query_scalar::<_, Uuid>(
                "SELECT DISTINCT other.user_id FROM participants mine
                 JOIN participants other ON other.conversation_id = mine.conversation_id
                 WHERE mine.user_id = $1 AND other.user_id <> $1",
            )
            .bind(user)
            .fetch_all(pool)
            .await?
        });
        Ok(contacts)
    }

    // ---- stream tickets ---------------------------------------------------------------

    pub async fn create_stream_ticket(
        &self,
        ticket_hash: &[u8],
        user: Uuid,
        session: Uuid,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO stream_tickets (ticket_hash, user_id, session_id, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(ticket_hash)
            .bind(user)
            .bind(session)
            .bind(expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Uses a ticket up: the (user, session) it was issued to, once, before it expires.
    pub async fn redeem_stream_ticket(
        &self,
        ticket_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Uuid, Uuid)>> {
        let redeemed = with_writer!(self, |pool| {
            sqlx::query_as::<_, (Uuid, Uuid)>(
                "UPDATE stream_tickets SET used_at = $2
                 WHERE ticket_hash = $1 AND used_at IS NULL AND expires_at > $2
                 RETURNING user_id, session_id",
            )
            .bind(ticket_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(redeemed)
    }

    // ---- presence ---------------------------------------------------------------------

    /// Announces this instance (and keeps announcing it: a heartbeat).
    pub async fn heartbeat_instance(&self, instance: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO instances (id, heartbeat_at) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            )
            .bind(instance)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Forgets this instance and its presence rows (at shutdown).
    pub async fn remove_instance(&self, instance: Uuid) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query("DELETE FROM instances WHERE id = $1")
                .bind(instance)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records that `instance` holds streams of `user` (or no longer does), and when the user
    /// was last active.
    pub async fn set_presence(
        &self,
        user: Uuid,
        instance: Uuid,
        connected: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if connected {
                sqlx::query("INSERT INTO presence (user_id, instance_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(user)
                    .bind(instance)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query("DELETE FROM presence WHERE user_id = $1 AND instance_id = $2")
                    .bind(user)
                    .bind(instance)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE users SET last_active_at = $2 WHERE id = $1")
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// For each of `users` that exists: whether a live instance holds a stream of theirs,
    /// and when they were last active.
    pub async fn presence_of(
        &self,
        users: &[Uuid],
        alive_since: DateTime<Utc>,
    ) -> StoreResult<HashMap<Uuid, (bool, Option<DateTime<Utc>>)>> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Uuid, bool, Option<DateTime<Utc>>)> = with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(
                "SELECT u.id, EXISTS (SELECT 1 FROM presence p JOIN instances i ON i.id = p.instance_id
                                      WHERE p.user_id = u.id AND i.heartbeat_at > ",
            );
            builder.push_bind(alive_since);
            builder.push(") AS online, u.last_active_at FROM users u WHERE u.id IN (");
            let mut list = builder.separated(", ");
            for user in users {
                list.push_bind(*user);
            }
            builder.push(")");
            builder.build_query_as().fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, online, last_active)| (id, (online, last_active)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::EventPosition;

    #[test]
    fn positions_print_and_parse_both_forms() {
        let sqlite = EventPosition { tx: 0, id: 42 };
        let postgres = EventPosition { tx: 7_000_123, id: 42 };
        assert_eq!(sqlite.to_string(), "42");
        assert_eq!(postgres.to_string(), "7000123-42");
        assert_eq!(EventPosition::parse("42"), Some(sqlite));
        assert_eq!(EventPosition::parse("7000123-42"), Some(postgres));
        for garbage in ["", "x", "1-", "-1", "1-2-3", "1.5"] {
            assert_eq!(EventPosition::parse(garbage), None, "{garbage:?}");
        }
        assert!(sqlite < postgres);
    }
}
