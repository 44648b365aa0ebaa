//! `AuthUser`: the extractor that every authenticated handler takes. It checks the Bearer
//! access token and that its session is still live (logout and refresh-token reuse end a
//! session at once, not when its access tokens expire). It reads the [`AuthService`] that
//! startup registers as app data, so that authentication depends on nothing above it.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use uuid::Uuid;

use super::AuthService;
use crate::error::{ApiError, ErrorCode};

#[derive(Clone, Copy, Debug)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let auth = request.app_data::<web::Data<AuthService>>().cloned();
        let token = bearer_token(request);
        Box::pin(async move {
            let auth = auth.ok_or_else(|| ApiError::internal("the auth service is not configured"))?;
            let token = token.ok_or_else(|| {
                ApiError::unauthorized(
                    ErrorCode::MissingToken,
                    "send an access token as 'Authorization: Bearer <token>'",
                )
            })?;
            auth.authenticate(&token).await
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
