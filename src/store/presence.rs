//! Presence rows: which instance holds whose streams, instance heartbeats, last activity;
//! kept in the database so that several instances agree on who is online.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sql::{ACTIVE_CONVERSATION, CONTACTS_OF, blocked_between, push_ids};
use super::tx::commit_with_events;
use super::{Dialect, Invalid, NewEvent, Store, StoreError, StoreResult, User, with_backend, with_writer};

/// `NotFound("stream")` unless `$stream` is an open stream of `$user`, read inside `$tx`.
macro_rules! require_stream_of {
    ($tx:ident, $stream:expr, $user:expr) => {
        super::tx::store_body(async {
            let owned: Option<i32> = sqlx::query_scalar("SELECT 1 FROM streams WHERE id = $1 AND user_id = $2")
                .bind($stream)
                .bind($user)
                .fetch_optional(&mut *$tx)
                .await?;
            owned.map(|_| ()).ok_or(StoreError::NotFound("stream"))
        })
        .await
    };
}

impl Store {
    /// Everyone who shares an active conversation with `user` (not `user`): who may see
    /// their presence. A pending or declined chat request shares none.
    pub async fn contacts_of(&self, user: Uuid) -> StoreResult<Vec<Uuid>> {
        with_backend!(self, |pool| {
            Ok(sqlx::query_scalar::<_, Uuid>(sqlx::AssertSqlSafe(CONTACTS_OF))
                .bind(user)
                .fetch_all(pool)
                .await?)
        })
    }

    /// Who is told of `targets`' presence unasked, as `(target, recipient)`: their direct
    /// partners and the members of their groups of at most `group_max` members, but for blocks.
    /// Larger groups subscribe (`POST /user/last-activity/subscribe`): told everyone, 1,000
    /// members coming online would be 1,000 x 999 events. A group's size is counted only up to
    /// `group_max + 1`. One query for a whole burst of presence changes.
    pub async fn presence_audiences(&self, targets: &[Uuid], group_max: usize) -> StoreResult<Vec<(Uuid, Uuid)>> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(format!(
                "WITH shared AS (
                     SELECT mine.user_id AS target, c.id FROM participants mine
                     JOIN conversations c ON c.id = mine.conversation_id
                     WHERE {ACTIVE_CONVERSATION} AND mine.user_id IN "
            ));
            push_ids(&mut builder, targets.iter().copied());
            builder.push(
                " AND (c.kind = 'direct'
                       OR (SELECT COUNT(*) FROM (SELECT 1 FROM participants n WHERE n.conversation_id = c.id LIMIT ",
            );
            builder.push_bind(i64::try_from(group_max).unwrap_or(i64::MAX - 1) + 1);
            builder.push(") counted) <= ");
            builder.push_bind(i64::try_from(group_max).unwrap_or(i64::MAX));
            builder.push(concat!(
                "))
                 SELECT DISTINCT shared.target, other.user_id FROM shared
                 JOIN participants other ON other.conversation_id = shared.id
                 WHERE other.user_id <> shared.target AND NOT ",
                blocked_between!("other.user_id", "shared.target")
            ));
            Ok(builder.build_query_as().fetch_all(pool).await?)
        })
    }

    /// Records an open stream of `user` on `instance`, so that any instance can subscribe it.
    pub async fn register_stream(&self, stream: Uuid, user: Uuid, instance: Uuid) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query("INSERT INTO streams (id, user_id, instance_id) VALUES ($1, $2, $3)")
                .bind(stream)
                .bind(user)
                .bind(instance)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Forgets a closed stream, and with it its presence subscriptions.
    pub async fn unregister_stream(&self, stream: Uuid) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query("DELETE FROM streams WHERE id = $1")
                .bind(stream)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Subscribes `user`'s open stream `stream` to the presence of `targets` (which the caller
    /// has checked the user may see). `NotFound("stream")` unless the stream is open and the
    /// user's; `Invalid(TooManySubscriptions)` past `max` for the stream.
    pub async fn subscribe_presence(&self, user: Uuid, stream: Uuid, targets: &[Uuid], max: usize) -> StoreResult<()> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // One stream's subscriptions change one at a time: the cap holds under races.
            super::tx::lock_conversation!(tx, pool, stream)?;
            require_stream_of!(tx, stream, user)?;
            if !targets.is_empty() {
                let mut builder =
                    sqlx::QueryBuilder::new("INSERT INTO presence_subscriptions (stream_id, target_id) SELECT ");
                builder.push_bind(stream);
                builder.push(", id FROM users WHERE id IN ");
                push_ids(&mut builder, targets.iter().copied());
                builder.push(" ON CONFLICT DO NOTHING");
                builder.build().execute(&mut *tx).await?;
            }
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM presence_subscriptions WHERE stream_id = $1")
                .bind(stream)
                .fetch_one(&mut *tx)
                .await?;
            if total > max as i64 {
                return Err(StoreError::Invalid(Invalid::TooManySubscriptions(max)));
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Ends `user`'s stream `stream`'s subscriptions to `targets` (all of them: `None`).
    /// `NotFound("stream")` unless the stream is open and the user's.
    pub async fn unsubscribe_presence(&self, user: Uuid, stream: Uuid, targets: Option<&[Uuid]>) -> StoreResult<()> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            require_stream_of!(tx, stream, user)?;
            if targets.is_some_and(<[Uuid]>::is_empty) {
                return Ok(());
            }
            let mut builder = sqlx::QueryBuilder::new("DELETE FROM presence_subscriptions WHERE stream_id = ");
            builder.push_bind(stream);
            if let Some(targets) = targets {
                builder.push(" AND target_id IN ");
                push_ids(&mut builder, targets.iter().copied());
            }
            builder.build().execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The streams on `instance` subscribed to the presence of `targets`, as `(target, stream,
    /// its user)`. The visibility rules again, as of now: a block or a conversation left since
    /// the subscription ends what it shows. The shared-conversation check is a column, not a
    /// condition, so that it runs as a few index lookups per subscription (as a condition,
    /// PostgreSQL joined the whole of a large group with itself to check all at once).
    pub async fn presence_subscribers(&self, targets: &[Uuid], instance: Uuid) -> StoreResult<Vec<(Uuid, Uuid, Uuid)>> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(format!(
                "SELECT ps.target_id, s.id, s.user_id,
                        EXISTS (SELECT 1 FROM participants mine
                                JOIN conversations c ON c.id = mine.conversation_id
                                JOIN participants other ON other.conversation_id = mine.conversation_id
                                                       AND other.user_id = ps.target_id
                                WHERE mine.user_id = s.user_id AND {ACTIVE_CONVERSATION}) AS shared
                 FROM presence_subscriptions ps JOIN streams s ON s.id = ps.stream_id
                 WHERE s.instance_id = "
            ));
            builder.push_bind(instance);
            builder.push(" AND ps.target_id IN ");
            push_ids(&mut builder, targets.iter().copied());
            builder.push(
                " AND NOT EXISTS (SELECT 1 FROM user_blocks ub WHERE ub.blocker_id = s.user_id AND ub.blocked_id = ps.target_id)
                  AND NOT EXISTS (SELECT 1 FROM user_blocks ub WHERE ub.blocker_id = ps.target_id AND ub.blocked_id = s.user_id)",
            );
            let rows: Vec<(Uuid, Uuid, Uuid, bool)> = builder.build_query_as().fetch_all(pool).await?;
            Ok(rows
                .into_iter()
                .filter(|(_, _, _, shared)| *shared)
                .map(|(target, stream, user, _)| (target, stream, user))
                .collect())
        })
    }

    /// Sets what `user` shows of their presence (`auto`, `online`, `offline`) and appends the
    /// events `events` gives for the user as now stored. Going `offline` counts as last seen
    /// now: an invisible user's activity stops moving their last-seen time.
    pub async fn set_presence_status(
        &self,
        user: Uuid,
        status: &str,
        now: DateTime<Utc>,
        events: impl Fn(&User) -> Vec<NewEvent>,
    ) -> StoreResult<User> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let updated: Option<User> = sqlx::query_as(concat!(
                "UPDATE users SET presence_status = $2,
                     last_active_at = CASE WHEN $2 = 'offline' AND presence_status <> 'offline' THEN $3
                                           ELSE last_active_at END
                 WHERE id = $1 AND deleted_at IS NULL RETURNING ",
                super::sql::user_columns!()
            ))
            .bind(user)
            .bind(status)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let updated = updated.ok_or(StoreError::NotFound("user"))?;
            commit_with_events!(self, tx, events(&updated), now)?;
            Ok(updated)
        })
    }

    /// Those of `users` who share an active conversation with `viewer`.
    pub async fn contacts_among(&self, viewer: Uuid, users: &[Uuid]) -> StoreResult<Vec<Uuid>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(format!(
                "SELECT DISTINCT other.user_id FROM participants mine
                 JOIN conversations c ON c.id = mine.conversation_id
                 JOIN participants other ON other.conversation_id = mine.conversation_id
                 WHERE {ACTIVE_CONVERSATION} AND mine.user_id = "
            ));
            builder.push_bind(viewer);
            builder.push(" AND other.user_id IN ");
            push_ids(&mut builder, users.iter().copied());
            super::users::push_no_block_with(&mut builder, "other.user_id", viewer);
            Ok(builder.build_query_scalar::<Uuid>().fetch_all(pool).await?)
        })
    }

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
            // Instances silent for long are gone (crashed): their streams, subscriptions and
            // presence rows go with them.
            sqlx::query("DELETE FROM instances WHERE heartbeat_at < $1")
                .bind(now - chrono::Duration::minutes(5))
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Forgets this instance and its presence rows (at shutdown).
    pub async fn remove_instance(&self, instance: Uuid) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query("DELETE FROM instances WHERE id = $1")
                .bind(instance)
                .execute(pool)
                .await?;
            Ok(())
        })
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
            sqlx::query("UPDATE users SET last_active_at = $2 WHERE id = $1 AND presence_status <> 'offline'")
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
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
                "SELECT u.id, CASE u.presence_status WHEN 'online' THEN TRUE WHEN 'offline' THEN FALSE
                     ELSE EXISTS (SELECT 1 FROM presence p JOIN instances i ON i.id = p.instance_id
                                  WHERE p.user_id = u.id AND i.heartbeat_at > ",
            );
            builder.push_bind(alive_since);
            builder.push(") END AS online, u.last_active_at FROM users u WHERE u.deleted_at IS NULL AND u.id IN ");
            push_ids(&mut builder, users.iter().copied());
            builder.build_query_as().fetch_all(pool).await.map_err(StoreError::from)
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, online, last_active)| (id, (online, last_active)))
            .collect())
    }
}
