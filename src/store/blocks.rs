//! Blocking: while A blocks B, B never reaches A and neither sees the other's presence,
//! typing, receipts or profile changes (the SQL fragment `blocked_between!` in `sql.rs` is
//! where the reads ask). B is never told: what B does toward A is accepted and simply goes
//! nowhere (see `Store::create_message` and the chat requests).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sql::{push_ids, user_columns};
use super::tx::{commit_with_events, lock_conversation};
use super::{Dialect, Invalid, NewEvent, Store, StoreError, StoreResult, User, with_backend, with_writer};

/// How many users one user may block: a bound on the rows one account can make.
pub const BLOCKS_MAX: usize = 1_000;

/// A user the caller blocks, and since when.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct BlockedUser {
    #[sqlx(flatten)]
    pub user: User,
    pub blocked_at: DateTime<Utc>,
}

impl Store {
    /// `blocker` blocks those of `ids` that are other, live users; the ones newly blocked,
    /// with the events `events` gives for them. Their presence subscriptions to each other end.
    /// `Invalid(TooManyBlocks)` past [`BLOCKS_MAX`].
    pub async fn block_users(
        &self,
        blocker: Uuid,
        ids: &[Uuid],
        now: DateTime<Utc>,
        events: impl Fn(&[Uuid]) -> Vec<NewEvent>,
    ) -> StoreResult<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // One user's blocks change one at a time: BLOCKS_MAX holds under races.
            lock_conversation!(tx, pool, blocker)?;
            let mut builder =
                sqlx::QueryBuilder::new("INSERT INTO user_blocks (blocker_id, blocked_id, created_at) SELECT ");
            builder.push_bind(blocker);
            builder.push(", id, ");
            builder.push_bind(now);
            builder.push(" FROM users WHERE deleted_at IS NULL AND id <> ");
            builder.push_bind(blocker);
            builder.push(" AND id IN ");
            push_ids(&mut builder, ids.iter().copied());
            builder.push(" ON CONFLICT DO NOTHING RETURNING blocked_id");
            let blocked: Vec<Uuid> = builder.build_query_scalar().fetch_all(&mut *tx).await?;
            if blocked.is_empty() {
                return Ok(blocked);
            }
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_blocks WHERE blocker_id = $1")
                .bind(blocker)
                .fetch_one(&mut *tx)
                .await?;
            if total > BLOCKS_MAX as i64 {
                return Err(StoreError::Invalid(Invalid::TooManyBlocks(BLOCKS_MAX)));
            }
            // Subscriptions obey the same rule as presence pushed unasked: none across a block.
            let mut builder = sqlx::QueryBuilder::new("DELETE FROM presence_subscriptions WHERE (target_id IN ");
            push_ids(&mut builder, blocked.iter().copied());
            builder.push(" AND stream_id IN (SELECT id FROM streams WHERE user_id = ");
            builder.push_bind(blocker);
            builder.push(")) OR (target_id = ");
            builder.push_bind(blocker);
            builder.push(" AND stream_id IN (SELECT id FROM streams WHERE user_id IN ");
            push_ids(&mut builder, blocked.iter().copied());
            builder.push("))");
            builder.build().execute(&mut *tx).await?;
            commit_with_events!(self, tx, events(&blocked), now)?;
            Ok(blocked)
        })
    }

    /// `blocker` unblocks those of `ids` they block; the ones unblocked, with the events
    /// `events` gives for them. What was withheld meanwhile stays withheld.
    pub async fn unblock_users(
        &self,
        blocker: Uuid,
        ids: &[Uuid],
        now: DateTime<Utc>,
        events: impl Fn(&[Uuid]) -> Vec<NewEvent>,
    ) -> StoreResult<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut builder = sqlx::QueryBuilder::new("DELETE FROM user_blocks WHERE blocker_id = ");
            builder.push_bind(blocker);
            builder.push(" AND blocked_id IN ");
            push_ids(&mut builder, ids.iter().copied());
            builder.push(" RETURNING blocked_id");
            let unblocked: Vec<Uuid> = builder.build_query_scalar().fetch_all(&mut *tx).await?;
            if unblocked.is_empty() {
                return Ok(unblocked);
            }
            commit_with_events!(self, tx, events(&unblocked), now)?;
            Ok(unblocked)
        })
    }

    /// Everyone `blocker` blocks, most recently blocked first (at most [`BLOCKS_MAX`]).
    pub async fn blocked_users(&self, blocker: Uuid) -> StoreResult<Vec<BlockedUser>> {
        with_backend!(self, |pool| {
            Ok(sqlx::query_as::<_, BlockedUser>(concat!(
                "SELECT ",
                user_columns!(u),
                ", b.created_at AS blocked_at FROM user_blocks b JOIN users u ON u.id = b.blocked_id
                 WHERE b.blocker_id = $1 ORDER BY b.created_at DESC, u.id LIMIT 1000"
            ))
            .bind(blocker)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Whether `blocker` blocks `blocked`.
    pub async fn blocks(&self, blocker: Uuid, blocked: Uuid) -> StoreResult<bool> {
        with_backend!(self, |pool| {
            let found: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM user_blocks WHERE blocker_id = $1 AND blocked_id = $2")
                    .bind(blocker)
                    .bind(blocked)
                    .fetch_optional(pool)
                    .await?;
            Ok(found.is_some())
        })
    }

    /// Those of `users` with whom `user` has a block, either way.
    pub async fn blocks_with(&self, user: Uuid, users: &[Uuid]) -> StoreResult<Vec<Uuid>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new("SELECT blocked_id FROM user_blocks WHERE blocker_id = ");
            builder.push_bind(user);
            builder.push(" AND blocked_id IN ");
            push_ids(&mut builder, users.iter().copied());
            builder.push(" UNION SELECT blocker_id FROM user_blocks WHERE blocked_id = ");
            builder.push_bind(user);
            builder.push(" AND blocker_id IN ");
            push_ids(&mut builder, users.iter().copied());
            Ok(builder.build_query_scalar().fetch_all(pool).await?)
        })
    }
}
