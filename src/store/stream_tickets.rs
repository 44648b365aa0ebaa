//! One-time tickets that open an SSE stream (EventSource cannot send an Authorization header).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, StoreResult, with_writer};

impl Store {
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
            Ok(())
        })
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
            .await
            .map_err(StoreError::from)
        })?;
        Ok(redeemed)
    }
}
