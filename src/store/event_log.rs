//! The event log that SSE streams and `GET /events` read: positions, appending inside the
//! writer's transaction, reading in commit order, retention, and who an event reaches.
//! Stream tickets and presence rows have files of their own.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sql::push_ids;
use super::{Dialect, Store, StoreError, StoreResult, with_backend, with_writer};

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

/// `events` as they go when what `actor` did in a direct conversation is withheld from the
/// other participant, `partner` (a block, or a chat request hidden from them): what would
/// have gone to the conversation goes to `actor`'s own streams only, nothing to `partner`.
pub fn withheld_from(events: Vec<NewEvent>, partner: Uuid, actor: Uuid) -> Vec<NewEvent> {
    events
        .into_iter()
        .filter(|event| event.audience != Audience::User(partner))
        .map(|mut event| {
            if let Audience::Conversation(_) = event.audience {
                event.audience = Audience::User(actor);
            }
            event
        })
        .collect()
}

/// `events` addressed to `user`'s streams only.
pub fn addressed_to(events: Vec<NewEvent>, user: Uuid) -> Vec<NewEvent> {
    events
        .into_iter()
        .map(|mut event| {
            event.audience = Audience::User(user);
            event
        })
        .collect()
}

/// An event to append, in the same transaction as the change it reports.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub kind: &'static str,
    pub audience: Audience,
    /// The JSON `data` of the event, serialised.
    pub payload: String,
    /// The message whose text the payload shows, and the one it quotes: when either is edited
    /// or deleted for everyone, the stored payload is rewritten (see [`PayloadRewrite`]).
    pub shows: Option<ShownMessage>,
    /// Older events of this kind showing the same message are dropped from the log when this
    /// one is appended (an edit supersedes the previous edit).
    pub supersedes: bool,
}

/// The message an event shows, and the message that one quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShownMessage {
    pub id: Uuid,
    pub quoted: Option<Uuid>,
}

impl NewEvent {
    pub fn new(kind: &'static str, audience: Audience, payload: String) -> Self {
        Self {
            kind,
            audience,
            payload,
            shows: None,
            supersedes: false,
        }
    }

    /// The event shows `message` (and whatever it quotes).
    pub fn showing(mut self, message: Option<&super::Message>) -> Self {
        self.shows = message.map(|message| ShownMessage {
            id: message.id,
            quoted: message.reply_to.as_ref().map(|quote| quote.id),
        });
        self
    }

    pub fn superseding(mut self) -> Self {
        self.supersedes = true;
        self
    }
}

/// Rewrites a stored payload so that it shows `messages` as they are now (their current text
/// wherever their id appears); `None` when it shows none of them. The log holds serialised
/// views, whose shape the store does not know: the caller supplies this.
pub type PayloadRewrite = fn(payload: &str, messages: &[super::Message]) -> Option<String>;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredEvent {
    #[sqlx(rename = "tx_id")]
    pub tx: i64,
    pub id: i64,
    pub kind: String,
    pub conversation_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    /// The message the event shows (see [`NewEvent::shows`]).
    pub message_id: Option<Uuid>,
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

const SELECT_EVENTS: &str =
    "SELECT e.tx_id, e.id, e.kind, e.conversation_id, e.user_id, e.message_id, e.payload FROM events e";

impl Store {
    /// The position of the newest event every reader can see: a client that loads its state
    /// after reading this and then resumes from it misses nothing.
    pub async fn head_position(&self) -> StoreResult<EventPosition> {
        let head = with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT tx_id, id FROM events WHERE tx_id < {watermark} ORDER BY tx_id DESC, id DESC LIMIT 1",
                watermark = pool.event_watermark()
            ));
            sqlx::query_as::<_, (i64, i64)>(sql)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::from)
        })?;
        let head = head.map_or(EventPosition::START, |(tx, id)| EventPosition { tx, id });
        // An emptied log (everything pruned) still stands where the pruning left it.
        Ok(head.max(self.pruned_through().await?))
    }

    /// Every event after `after`, in order, up to `limit` (what an instance fans out).
    pub async fn events_after(&self, after: EventPosition, limit: u32) -> StoreResult<Vec<StoredEvent>> {
        self.read_log(None, after, limit).await
    }

    /// The events of one user after `after`, in order, up to `limit` (what a resuming stream
    /// replays): those of the conversations the user is in, and those addressed to the user.
    pub async fn user_events_after(
        &self,
        user: Uuid,
        after: EventPosition,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        self.read_log(Some(user), after, limit).await
    }

    /// The final events after `after` (every one, or `for_user`'s), in order, up to `limit`.
    async fn read_log(
        &self,
        for_user: Option<Uuid>,
        after: EventPosition,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        // Two statements, not one with `$3 IS NULL OR ...`, so each is planned for its case.
        let audience = match for_user {
            None => "$3 IS NULL",
            Some(_) => {
                "(e.user_id = $3 OR EXISTS (SELECT 1 FROM participants p
                    WHERE p.conversation_id = e.conversation_id AND p.user_id = $3
                      AND (e.tx_id, e.id) > (p.joined_tx, p.joined_id)))"
            }
        };
        with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "{SELECT_EVENTS} WHERE e.tx_id < {watermark} AND (e.tx_id, e.id) > ($1, $2) AND {audience}
                 ORDER BY e.tx_id, e.id LIMIT $4",
                watermark = pool.event_watermark()
            ));
            Ok(sqlx::query_as::<_, StoredEvent>(sql)
                .bind(after.tx)
                .bind(after.id)
                .bind(for_user)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?)
        })
    }

    /// Events up to this position have been pruned; resuming from before it needs a reset.
    pub async fn pruned_through(&self) -> StoreResult<EventPosition> {
        let (tx, id) = with_backend!(self, |pool| {
            sqlx::query_as::<_, (i64, i64)>("SELECT pruned_tx, pruned_id FROM event_log_state WHERE id = 1")
                .fetch_one(pool)
                .await
                .map_err(StoreError::from)
        })?;
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
            Ok(())
        })?;
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
                    return Ok((0, true));
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
                Ok((removed.rows_affected(), batch.len() < BATCH as usize))
            })?;
            let (removed, last_batch) = pruned_in_batch;
            deleted += removed;
            if last_batch {
                return Ok(deleted);
            }
        }
    }

    /// The participants of these conversations: (conversation, user, where they joined the
    /// log). A participant receives the conversation's events after their join position only.
    pub async fn members_of(&self, conversations: &[Uuid]) -> StoreResult<Vec<(Uuid, Uuid, EventPosition)>> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        let rows = with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(
                "SELECT conversation_id, user_id, joined_tx, joined_id FROM participants WHERE conversation_id IN ",
            );
            push_ids(&mut builder, conversations.iter().copied());
            builder
                .build_query_as::<(Uuid, Uuid, i64, i64)>()
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)
        })?;
        Ok(rows
            .into_iter()
            .map(|(conversation, user, tx, id)| (conversation, user, EventPosition { tx, id }))
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
