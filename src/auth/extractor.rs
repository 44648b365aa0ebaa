//! `AuthUser`: the extractor that every authenticated handler takes. It checks the Bearer
//! access token and that its session is still live (logout and refresh-token reuse end a
//! session at once, not when its access tokens expire).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use uuid::Uuid;

use crate::auth::tokens::TokenError;
use crate::error::ApiError;
use crate::startup::AppState;

#[derive(Clone, Copy, Debug)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(request);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state is not configured"))?;
            let token = token.ok_or_else(|| {
                ApiError::unauthorized(
                    "missing_token",
                    "send an access token as 'Authorization: Bearer <token>'",
                )
            })?;
            let claims = state.auth.keys.verify(&token).map_err(|error| match error {
                TokenError::Expired => {
                    ApiError::unauthorized("token_expired", "the access token has expired; refresh it")
                }
                TokenError::Invalid => ApiError::unauthorized("invalid_token", "the access token is not valid"),
            })?;
            if !state.store.session_is_active(claims.sid, claims.sub).await? {
                return Err(ApiError::unauthorized(
                    "session_ended",
                    "this session has ended; log in again",
                ));
            }
            Ok(AuthUser {
                user_id: claims.sub,
                session_id: claims.sid,
            })
        })
    }
}

fn bearer_token(request: &HttpRequest) -> Option<String> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return None;
    }
    Some(token.trim().to_string())
}
