//! Password hashing. bcrypt takes tens of milliseconds by design, so it runs on the blocking
//! thread pool, never on the async workers that serve other requests.

use actix_web::web;

use crate::domain::Password;
use crate::error::ApiError;

pub async fn hash_password(password: &Password, cost: u32) -> Result<String, ApiError> {
    let password = password.expose().to_string();
    web::block(move || bcrypt::hash(password, cost))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Checks `password` against `hash`. A malformed stored hash counts as a mismatch.
pub async fn verify_password(password: &str, hash: &str) -> Result<bool, ApiError> {
    let (password, hash) = (password.to_string(), hash.to_string());
    web::block(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .map_err(ApiError::internal)
}
