//! Login sessions: one per login, holding the hash of its current refresh token.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::tx::lock_conversation;
use super::{Dialect, NewSession, RefreshOutcome, Store, StoreResult, with_backend, with_writer};

impl Store {
    /// Opens `session`; `false` (nothing stored) if the password it was verified against is
    /// no longer the user's. Serialised with [`Store::set_password`] by a lock on the user, so
    /// a login either opens before a password change (which then ends it) or is refused.
    pub async fn create_session(&self, session: &NewSession) -> StoreResult<bool> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if let Some(verified) = &session.verified_hash {
                lock_conversation!(tx, pool, session.user_id)?;
                let current: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                    .bind(session.user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if current.as_ref() != Some(verified) {
                    return Ok(false);
                }
            }
            sqlx::query(
                "INSERT INTO sessions (id, user_id, device_id, refresh_token_hash, created_at, refreshed_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $5, $6)",
            )
            .bind(session.id)
            .bind(session.user_id)
            .bind(&session.device_id)
            .bind(&session.refresh_token_hash)
            .bind(session.created_at)
            .bind(session.expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Swaps the session's refresh token hash from `presented` to `replacement`, atomically:
    /// of two requests presenting the same token, exactly one rotates. Presenting a token this
    /// session has already rotated away revokes the session (it was copied); any other token is
    /// just refused.
    pub async fn rotate_refresh_token(
        &self,
        session_id: Uuid,
        presented: &[u8],
        replacement: &[u8],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<RefreshOutcome> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let rotated: Option<Uuid> = sqlx::query_scalar(
                "UPDATE sessions SET refresh_token_hash = $3, refreshed_at = $4, expires_at = $5
                 WHERE id = $1 AND refresh_token_hash = $2 AND revoked_at IS NULL AND expires_at > $4
                 RETURNING user_id",
            )
            .bind(session_id)
            .bind(presented)
            .bind(replacement)
            .bind(now)
            .bind(expires_at)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(user_id) = rotated {
                sqlx::query("INSERT INTO used_refresh_tokens (token_hash, session_id, used_at) VALUES ($1, $2, $3)")
                    .bind(presented)
                    .bind(session_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(RefreshOutcome::Rotated { user_id });
            }
            let revoked = sqlx::query(
                "UPDATE sessions SET revoked_at = $3
                 WHERE id = $1 AND revoked_at IS NULL
                   AND EXISTS (SELECT 1 FROM used_refresh_tokens WHERE token_hash = $2 AND session_id = $1)",
            )
            .bind(session_id)
            .bind(presented)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if revoked.rows_affected() > 0 {
                sqlx::query("DELETE FROM push_subscriptions WHERE session_id = $1")
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(if revoked.rows_affected() > 0 {
                RefreshOutcome::ReuseDetected
            } else {
                RefreshOutcome::Invalid
            })
        })
    }

    /// Ends a session: its refresh token and every access token issued to it stop working,
    /// and the push subscriptions it registered go.
    pub async fn revoke_session(&self, session_id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(session_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM push_subscriptions WHERE session_id = $1")
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Deletes the sessions that can no longer be used: past their refresh lifetime, or
    /// revoked before `revoked_before`; their used-token history goes with them (cascade).
    /// Returns how many went. A deleted session reads as ended, like a revoked one.
    pub async fn prune_sessions(&self, now: DateTime<Utc>, revoked_before: DateTime<Utc>) -> StoreResult<u64> {
        with_writer!(self, |pool| {
            let deleted = sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $2")
                .bind(now)
                .bind(revoked_before)
                .execute(pool)
                .await?;
            Ok(deleted.rows_affected())
        })
    }

    /// Is this session of this user still live? Checked on every authenticated request,
    /// by primary key, so that logout and reuse detection take effect at once.
    pub async fn session_is_active(&self, session_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
        let found = with_backend!(self, |pool| {
            Ok(sqlx::query_scalar::<_, i32>(
                "SELECT 1 FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            )
            .bind(session_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?)
        })?;
        Ok(found.is_some())
    }
}
