//! Push notifications: the devices that receive them, the worker's lease and place in the
//! event log, and the outbox of pushes decided and not yet sent (see `crate::push`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sql::{blocked_between, push_ids, unread_count};
use super::{Dialect, EventPosition, Message, Store, StoreResult, with_backend, with_writer};

/// The most push subscriptions one user keeps: registering one more drops the one updated
/// longest ago (a user cannot grow the table, nor the work of each push, without bound).
pub const PUSH_SUBSCRIPTIONS_MAX: i64 = 20;

const SUBSCRIPTION_COLUMNS: &str = "id, user_id, session_id, platform, web_endpoint, web_key_auth, web_key_p256dh,
    device_token, device_udid, created_at, updated_at";
/// The same, of alias `s`.
const SUBSCRIPTION_COLUMNS_OF_S: &str = "s.id, s.user_id, s.session_id, s.platform, s.web_endpoint, s.web_key_auth,
    s.web_key_p256dh, s.device_token, s.device_udid, s.created_at, s.updated_at";

/// A device or browser of a user's that receives pushes.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PushSubscription {
    pub id: Uuid,
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// `web`, `ios` or `android`.
    pub platform: String,
    pub web_endpoint: Option<String>,
    pub web_key_auth: Option<String>,
    pub web_key_p256dh: Option<String>,
    pub device_token: Option<String>,
    pub device_udid: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A push decided and waiting in the outbox: its stable id, where it goes and what it says.
#[derive(Clone, Debug)]
pub struct QueuedPush {
    /// The same however often it is decided (see `push::message_push_id`): the outbox keeps one.
    pub id: Uuid,
    pub subscription: Uuid,
    /// The new message it announces (`None` for a push event).
    pub message: Option<Uuid>,
    pub payload: String,
    pub topic: Option<String>,
}

/// A push due for (another) attempt, with its subscription.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DuePush {
    pub push_id: Uuid,
    pub payload: String,
    pub topic: Option<String>,
    pub attempts: i32,
    pub queued_at: DateTime<Utc>,
    /// The message it announces was deleted (for everyone) since: it is not sent.
    pub message_gone: bool,
    #[sqlx(flatten)]
    pub subscription: PushSubscription,
}

/// One user to tell about one new message, with their unread total (the app badge); their
/// devices come from [`Store::subscriptions_of_users`].
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageRecipient {
    pub message_id: Uuid,
    pub user_id: Uuid,
    pub unread_total: i64,
}

/// A new message to push, with what its notification shows.
#[derive(Clone, Debug)]
pub struct PushedMessage {
    pub message: Message,
    /// A group's name; `None` for direct conversations.
    pub group_name: Option<String>,
}

impl Store {
    /// Registers `subscription` for its user, replacing the one with the same `device_udid`
    /// (which keeps its id and creation time). Returns it as stored.
    pub async fn save_push_subscription(&self, subscription: &PushSubscription) -> StoreResult<PushSubscription> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let sql = sqlx::AssertSqlSafe(format!(
                "INSERT INTO push_subscriptions ({SUBSCRIPTION_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
                 ON CONFLICT (user_id, device_udid) DO UPDATE SET
                   session_id = excluded.session_id, platform = excluded.platform,
                   web_endpoint = excluded.web_endpoint, web_key_auth = excluded.web_key_auth,
                   web_key_p256dh = excluded.web_key_p256dh, device_token = excluded.device_token,
                   updated_at = excluded.updated_at
                 RETURNING {SUBSCRIPTION_COLUMNS}"
            ));
            let saved: PushSubscription = sqlx::query_as(sql)
                .bind(subscription.id)
                .bind(subscription.user_id)
                .bind(subscription.session_id)
                .bind(&subscription.platform)
                .bind(&subscription.web_endpoint)
                .bind(&subscription.web_key_auth)
                .bind(&subscription.web_key_p256dh)
                .bind(&subscription.device_token)
                .bind(&subscription.device_udid)
                .bind(subscription.updated_at)
                .fetch_one(&mut *tx)
                .await?;
            // The device now belongs to this user alone.
            sqlx::query(
                "DELETE FROM push_subscriptions WHERE id <> $1
                   AND (device_token = $2 OR web_endpoint = $3)",
            )
            .bind(saved.id)
            .bind(&saved.device_token)
            .bind(&saved.web_endpoint)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM push_subscriptions WHERE user_id = $1 AND id NOT IN (
                     SELECT id FROM push_subscriptions WHERE user_id = $1
                     ORDER BY updated_at DESC, id DESC LIMIT $2)",
            )
            .bind(subscription.user_id)
            .bind(PUSH_SUBSCRIPTIONS_MAX)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(saved)
        })
    }

    /// `user`'s push subscriptions, most recently updated first (at most
    /// [`PUSH_SUBSCRIPTIONS_MAX`]).
    pub async fn push_subscriptions_of(&self, user: Uuid) -> StoreResult<Vec<PushSubscription>> {
        with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM push_subscriptions WHERE user_id = $1
                 ORDER BY updated_at DESC, id DESC"
            ));
            Ok(sqlx::query_as(sql).bind(user).fetch_all(pool).await?)
        })
    }

    /// Removes `user`'s subscription of device `udid`; whether there was one.
    pub async fn delete_push_subscription(&self, user: Uuid, udid: &str) -> StoreResult<bool> {
        with_writer!(self, |pool| {
            let deleted = sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND device_udid = $2")
                .bind(user)
                .bind(udid)
                .execute(pool)
                .await?;
            Ok(deleted.rows_affected() > 0)
        })
    }

    /// Removes a subscription the push service says is gone (404, 410, `UNREGISTERED`).
    pub async fn prune_push_subscription(&self, subscription: Uuid) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
                .bind(subscription)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Takes or renews the push worker's lease for `holder` until `until`, if it is free,
    /// lapsed or already `holder`'s. `None`: another instance holds it. `Some(position)`: the
    /// worker's place in the log (`None` before the first worker ever ran).
    pub async fn acquire_push_lease(
        &self,
        holder: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<Option<EventPosition>>> {
        let row: Option<(Option<i64>, Option<i64>)> = with_writer!(self, |pool| {
            Ok(sqlx::query_as(
                "UPDATE push_worker SET holder = $1, lease_until = $3
                 WHERE id = 1 AND (holder IS NULL OR holder = $1 OR lease_until < $2)
                 RETURNING position_tx, position_id",
            )
            .bind(holder)
            .bind(now)
            .bind(until)
            .fetch_optional(pool)
            .await?)
        })?;
        Ok(row.map(|position| match position {
            (Some(tx), Some(id)) => Some(EventPosition { tx, id }),
            _ => None,
        }))
    }

    /// Sets the worker's position, if no worker ever ran: where pushes begin (at start-up,
    /// before any request is served, so no later message is taken for history).
    pub async fn init_push_position(&self, head: EventPosition) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query(
                "UPDATE push_worker SET position_tx = $1, position_id = $2 WHERE id = 1 AND position_tx IS NULL",
            )
            .bind(head.tx)
            .bind(head.id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Gives the lease up (at shutdown), so that another instance takes over at once.
    pub async fn release_push_lease(&self, holder: Uuid) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query("UPDATE push_worker SET holder = NULL, lease_until = NULL WHERE id = 1 AND holder = $1")
                .bind(holder)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Queues `pushes` and moves the worker's position to `position`, in one transaction, if
    /// `holder` still holds the lease at `now` (renewing it until `until`). `false`: the lease
    /// was lost, nothing was written (the new holder decides these events again).
    pub async fn queue_pushes(
        &self,
        holder: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        position: EventPosition,
        pushes: &[QueuedPush],
    ) -> StoreResult<bool> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let moved = sqlx::query(
                "UPDATE push_worker SET position_tx = $3, position_id = $4, lease_until = $5
                 WHERE id = 1 AND holder = $1 AND lease_until >= $2",
            )
            .bind(holder)
            .bind(now)
            .bind(position.tx)
            .bind(position.id)
            .bind(until)
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() == 0 {
                return Ok(false);
            }
            insert_pushes!(tx, pushes, now)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Queues `pushes` that no event decides (`POST /push/event`): sent by whichever instance
    /// holds the lease.
    pub async fn enqueue_pushes(&self, pushes: &[QueuedPush], now: DateTime<Utc>) -> StoreResult<()> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            insert_pushes!(tx, pushes, now)?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Claims up to `limit` pushes due at `now`, oldest first, if `holder` holds the lease:
    /// they are not due again before `claimed_until` (so an instance that takes the lease
    /// over meanwhile does not send them a second time), unless finished or retried first.
    pub async fn claim_due_pushes(
        &self,
        holder: Uuid,
        now: DateTime<Utc>,
        claimed_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DuePush>> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT o.id FROM push_outbox o
                 WHERE o.due_at <= $2
                   AND EXISTS (SELECT 1 FROM push_worker w WHERE w.id = 1 AND w.holder = $1 AND w.lease_until >= $2)
                 ORDER BY o.due_at, o.id LIMIT $3",
            )
            .bind(holder)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut builder = sqlx::QueryBuilder::new("UPDATE push_outbox SET due_at = ");
            builder.push_bind(claimed_until);
            builder.push(" WHERE id IN ");
            push_ids(&mut builder, ids.iter().copied());
            builder.build().execute(&mut *tx).await?;
            let mut builder = sqlx::QueryBuilder::new(format!(
                "SELECT o.id AS push_id, o.payload, o.topic, o.attempts, o.created_at AS queued_at,
                    (o.message_id IS NOT NULL AND NOT EXISTS (
                         SELECT 1 FROM messages m WHERE m.id = o.message_id AND m.deleted_at IS NULL)) AS message_gone,
                    {SUBSCRIPTION_COLUMNS_OF_S}
                 FROM push_outbox o JOIN push_subscriptions s ON s.id = o.subscription_id
                 WHERE o.id IN "
            ));
            push_ids(&mut builder, ids.iter().copied());
            builder.push(" ORDER BY o.created_at, o.id");
            let due: Vec<DuePush> = builder.build_query_as().fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok(due)
        })
    }

    /// Removes pushes from the outbox: sent, or given up on.
    pub async fn finish_pushes(&self, ids: &[Uuid]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        with_writer!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new("DELETE FROM push_outbox WHERE id IN ");
            push_ids(&mut builder, ids.iter().copied());
            builder.build().execute(pool).await?;
            Ok(())
        })
    }

    /// Schedules another attempt of push `id` at `due`, its `attempts`-th failure recorded.
    pub async fn retry_push(&self, id: Uuid, attempts: i32, due: DateTime<Utc>) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query("UPDATE push_outbox SET attempts = $2, due_at = $3 WHERE id = $1")
                .bind(id)
                .bind(attempts)
                .bind(due)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// How many pushes wait in the outbox, and since when the oldest (for the logs).
    pub async fn push_backlog(&self) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        with_backend!(self, |pool| {
            Ok(sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM push_outbox")
                .fetch_one(pool)
                .await?)
        })
    }

    /// For each of the new messages `messages`, the devices to push it to: every participant
    /// but its sender with a subscription and, at `now`, no live stream anywhere (a presence
    /// row of a live instance, which outlives a closed stream by the presence debounce, or an
    /// open stream), except those who muted the conversation, who have not accepted its chat
    /// request, from whom the message is hidden or withheld, or who are in a block with the
    /// sender; none for a message deleted since. `alive_since`: instances that heartbeat
    /// later are alive.
    pub async fn message_recipients(
        &self,
        messages: &[Uuid],
        now: DateTime<Utc>,
        alive_since: DateTime<Utc>,
    ) -> StoreResult<Vec<MessageRecipient>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(concat!(
                "SELECT m.id AS message_id, rp.user_id,
                    (SELECT CAST(COALESCE(SUM(",
                unread_count!(),
                "), 0) AS BIGINT)
                     FROM participants p JOIN conversations c ON c.id = p.conversation_id
                     WHERE p.user_id = rp.user_id
                       AND NOT (COALESCE(c.request_status, '') IN ('pending', 'declined') AND c.requester_id <> rp.user_id)
                    ) AS unread_total
                 FROM messages m
                 JOIN conversations rc ON rc.id = m.conversation_id
                 JOIN participants rp ON rp.conversation_id = m.conversation_id AND rp.user_id <> m.sender_id
                 JOIN users ru ON ru.id = rp.user_id AND ru.deleted_at IS NULL
                 WHERE m.deleted_at IS NULL AND rp.joined_at <= m.created_at
                   AND NOT (COALESCE(rc.request_status, '') IN ('pending', 'declined') AND rc.requester_id <> rp.user_id)
                   AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = rp.user_id AND h.message_id = m.id)
                   AND NOT ",
                blocked_between!("rp.user_id", "m.sender_id"),
                " AND (rp.muted_at IS NULL OR rp.muted_until <= "
            ));
            builder.push_bind(now);
            builder.push(
                ") AND NOT EXISTS (SELECT 1 FROM presence pr JOIN instances i ON i.id = pr.instance_id
                                WHERE pr.user_id = rp.user_id AND i.heartbeat_at > ",
            );
            builder.push_bind(alive_since);
            builder.push(
                ") AND NOT EXISTS (SELECT 1 FROM streams st JOIN instances i ON i.id = st.instance_id
                                WHERE st.user_id = rp.user_id AND i.heartbeat_at > ",
            );
            builder.push_bind(alive_since);
            builder.push(
                ") AND EXISTS (SELECT 1 FROM push_subscriptions s
                     JOIN sessions ss ON ss.id = s.session_id AND ss.revoked_at IS NULL
                     WHERE s.user_id = rp.user_id AND ss.expires_at > ",
            );
            builder.push_bind(now);
            builder.push(") AND m.id IN ");
            push_ids(&mut builder, messages.iter().copied());
            builder.push(" ORDER BY m.id, rp.user_id");
            Ok(builder.build_query_as().fetch_all(pool).await?)
        })
    }

    /// The messages `ids` as their notifications show them (text, sender, first file), with
    /// their group's name.
    pub async fn pushed_messages(&self, ids: &[Uuid]) -> StoreResult<Vec<PushedMessage>> {
        let messages = self.messages_in_order(ids).await?;
        let conversations: Vec<Uuid> = messages.iter().map(|message| message.conversation_id).collect();
        let names: Vec<(Uuid, Option<String>)> = if conversations.is_empty() {
            Vec::new()
        } else {
            with_backend!(self, |pool| {
                let mut builder =
                    sqlx::QueryBuilder::new("SELECT id, name FROM conversations WHERE kind = 'group' AND id IN ");
                push_ids(&mut builder, conversations.iter().copied());
                Ok(builder.build_query_as().fetch_all(pool).await?)
            })?
        };
        Ok(messages
            .into_iter()
            .map(|message| PushedMessage {
                group_name: names
                    .iter()
                    .find(|(id, _)| *id == message.conversation_id)
                    .map(|(_, name)| name.clone().unwrap_or_default()),
                message,
            })
            .collect())
    }

    /// Those of `candidates` who share an active conversation with `sender`: whom
    /// `POST /push/event` may reach; each with whether either blocks the other (then nothing
    /// is sent, and the sender is not told). Callers bound the list.
    pub async fn push_event_recipients(&self, sender: Uuid, candidates: &[Uuid]) -> StoreResult<Vec<(Uuid, bool)>> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(concat!(
                "SELECT DISTINCT other.user_id, ",
                blocked_between!("other.user_id", "mine.user_id"),
                " AS blocked
                 FROM participants mine
                 JOIN conversations c ON c.id = mine.conversation_id
                 JOIN participants other ON other.conversation_id = mine.conversation_id
                 WHERE (c.request_status IS NULL OR c.request_status = 'accepted') AND mine.user_id = "
            ));
            builder.push_bind(sender);
            builder.push(" AND other.user_id <> mine.user_id AND other.user_id IN ");
            push_ids(&mut builder, candidates.iter().copied());
            Ok(builder.build_query_as().fetch_all(pool).await?)
        })
    }

    /// The subscriptions of `users` (callers bound the list) of live sessions at `now`:
    /// (subscription, user).
    pub async fn subscriptions_of_users(&self, users: &[Uuid], now: DateTime<Utc>) -> StoreResult<Vec<(Uuid, Uuid)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(
                "SELECT s.id, s.user_id FROM push_subscriptions s
                 JOIN sessions ss ON ss.id = s.session_id AND ss.revoked_at IS NULL AND ss.expires_at > ",
            );
            builder.push_bind(now);
            builder.push(" WHERE s.user_id IN ");
            push_ids(&mut builder, users.iter().copied());
            builder.push(" ORDER BY s.user_id, s.id");
            Ok(builder.build_query_as().fetch_all(pool).await?)
        })
    }
}

/// Inserts `pushes` into the outbox inside transaction `tx`, due at `now`.
macro_rules! insert_pushes {
    ($tx:ident, $pushes:expr, $now:expr) => {
        $crate::store::tx::store_body(async {
            // 7 parameters a row: well under either backend's limit per statement.
            for chunk in $pushes.chunks(1000) {
                let mut builder = sqlx::QueryBuilder::new(
                    "INSERT INTO push_outbox (id, subscription_id, message_id, payload, topic, due_at, created_at) ",
                );
                builder.push_values(chunk, |mut row, push| {
                    row.push_bind(push.id)
                        .push_bind(push.subscription)
                        .push_bind(push.message)
                        .push_bind(&push.payload)
                        .push_bind(&push.topic)
                        .push_bind($now)
                        .push_bind($now);
                });
                // Decided again after a commit whose answer was lost: kept once.
                builder.push(" ON CONFLICT (id) DO NOTHING");
                builder.build().execute(&mut *$tx).await?;
            }
            Ok(())
        })
        .await
    };
}
use insert_pushes;
