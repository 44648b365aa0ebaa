//! Presence rows: which instance holds whose streams, instance heartbeats, last activity;
//! kept in the database so that several instances agree on who is online.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sql::{ACTIVE_CONVERSATION, CONTACTS_OF, push_ids};
use super::{Dialect, Store, StoreError, StoreResult, with_backend, with_writer};

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
            sqlx::query("UPDATE users SET last_active_at = $2 WHERE id = $1")
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
                "SELECT u.id, EXISTS (SELECT 1 FROM presence p JOIN instances i ON i.id = p.instance_id
                                      WHERE p.user_id = u.id AND i.heartbeat_at > ",
            );
            builder.push_bind(alive_since);
            builder.push(") AS online, u.last_active_at FROM users u WHERE u.id IN ");
            push_ids(&mut builder, users.iter().copied());
            builder.build_query_as().fetch_all(pool).await.map_err(StoreError::from)
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, online, last_active)| (id, (online, last_active)))
            .collect())
    }
}
