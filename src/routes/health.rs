//! Liveness and readiness, for orchestrators and load balancers.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::{Success, ok};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct HealthData {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Success<HealthData>)))]
#[get("/health")]
pub async fn health() -> HttpResponse {
    ok(HealthData { status: "ok" })
}

/// The database answers.
#[utoipa::path(
    get, path = "/ready", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Success<HealthData>),
        (status = 503, description = "The database does not answer", body = ErrorEnvelope),
    )
)]
#[get("/ready")]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(ok(HealthData { status: "ok" })),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            Err(ApiError::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::DatabaseUnavailable,
                "the database does not answer",
            ))
        }
    }
}
