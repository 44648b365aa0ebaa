//! `/api/v1/auth`: register, login, refresh, logout.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::envelope::{Success, respond, respond_signed};
use super::extract::{Alias, FieldAliases, Json};
use super::{collect_fields, field};
use crate::auth::tokens::RefreshToken;
use crate::auth::{AuthUser, IssuedTokens};
use crate::domain::{Email, Name, Password};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::state::AppState;
use crate::views::UserView;

pub const REFRESH_COOKIE: &str = "refreshToken";
const REFRESH_COOKIE_PATH: &str = "/api/v1/auth";

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(example = "Ana Lima")]
    pub name: String,
    #[schema(example = "ana@example.com")]
    pub email: String,
    /// 8 to 72 bytes.
    #[schema(example = "correct horse battery")]
    pub password: String,
}

impl FieldAliases for RegisterRequest {}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    #[schema(example = "ana@example.com")]
    pub email: String,
    #[schema(example = "correct horse battery")]
    pub password: String,
    /// Optional label of the device, kept with the session.
    #[serde(default)]
    pub device_id: Option<String>,
}

impl FieldAliases for LoginRequest {
    const ALIASES: &'static [Alias] = &[Alias::new("deviceId", "device_id")];
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    /// The refresh token; may be omitted when the `refreshToken` cookie is sent instead.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl FieldAliases for RefreshRequest {
    const ALIASES: &'static [Alias] = &[Alias::new("refreshToken", "refresh_token")];
}

/// A session's tokens.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthData {
    pub user: UserView,
    /// The access token (JWT), sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// The refresh token; also set as an HttpOnly cookie scoped to `/api/v1/auth`.
    pub refresh_token: String,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct LogoutData {
    #[schema(example = "logged out")]
    pub message: String,
}

/// Create an account and log in.
///
/// Returns the new user with a session's tokens, like a login does.
#[utoipa::path(
    post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created, session opened", body = Success<AuthData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 409, description = "Email already registered (`email_taken`)", body = ErrorEnvelope),
        (status = 413, description = "Body too large", body = ErrorEnvelope),
        (status = 415, description = "Not application/json", body = ErrorEnvelope),
        (status = 422, description = "Invalid name, email or password", body = ErrorEnvelope),
        (status = 429, description = "Too many attempts from this address", body = ErrorEnvelope),
    )
)]
#[post("/register")]
pub async fn register(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_auth_rate_limit(&request)?;
    let body = body.into_inner();
    let (name, email, password) = collect_fields((
        field("name", Name::parse(&body.name)),
        field("email", Email::parse(&body.email)),
        field("password", Password::parse(&body.password)),
    ))?;
    let issued = state.auth.register(name, email, password).await?;
    Ok(session_response(StatusCode::CREATED, issued, &state))
}

/// Log in with email and password.
///
/// A wrong email and a wrong password give the same 401 after the same amount of work.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Session opened; the refresh token is also set as a cookie", body = Success<AuthData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Wrong email or password (`invalid_credentials`)", body = ErrorEnvelope),
        (status = 422, description = "A field is missing or of the wrong type", body = ErrorEnvelope),
        (status = 429, description = "Too many attempts from this address", body = ErrorEnvelope),
    )
)]
#[post("/login")]
pub async fn login(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_auth_rate_limit(&request)?;
    let body = body.into_inner();
    let device_id = body.device_id.map(|device| device.chars().take(200).collect());
    let issued = state.auth.login(&body.email, &body.password, device_id).await?;
    Ok(session_response(StatusCode::OK, issued, &state))
}

/// Exchange a refresh token for new tokens.
///
/// The refresh token comes in the body (`refreshToken`) or in the `refreshToken` cookie.
/// It is rotated: the answer carries a new one and the old one stops working. Presenting an
/// already-rotated token ends the whole session (`refresh_token_reused`): its refresh token and
/// its access tokens. Other sessions of the user are untouched.
#[utoipa::path(
    post, path = "/api/v1/auth/refreshtoken", tag = "auth",
    request_body(content = RefreshRequest, description = "Optional when the cookie is sent"),
    responses(
        (status = 200, description = "New access and refresh tokens", body = Success<AuthData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, unknown, expired, revoked or reused refresh token", body = ErrorEnvelope),
        (status = 429, description = "Too many attempts from this address", body = ErrorEnvelope),
    )
)]
#[post("/refreshtoken")]
pub async fn refresh_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.check_auth_rate_limit(&request)?;
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed: RefreshRequest = super::extract::parse_json(&body)?;
        parsed.refresh_token
    };
    let presented = from_body
        .or_else(|| request.cookie(REFRESH_COOKIE).map(|cookie| cookie.value().to_string()))
        .ok_or_else(|| {
            ApiError::unauthorized(
                ErrorCode::MissingRefreshToken,
                "send refreshToken in the body or the refreshToken cookie",
            )
        })?;
    let issued = match state.auth.refresh(&presented).await {
        Ok(issued) => issued,
        Err(error) => {
            // A reused token ended its session: its open streams end with it.
            if error.code() == ErrorCode::RefreshTokenReused
                && let Some(token) = RefreshToken::parse(&presented)
            {
                state.hub.close_session(token.session_id);
            }
            return Err(error);
        }
    };
    Ok(session_response(StatusCode::OK, issued, &state))
}

/// End this session.
///
/// Its refresh token and every access token issued to it stop working at once.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Session ended; the refresh cookie is cleared", body = Success<LogoutData>),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
    )
)]
#[post("/logout")]
pub async fn logout(state: web::Data<AppState>, caller: AuthUser) -> Result<HttpResponse, ApiError> {
    state.auth.logout(caller.session_id).await?;
    state.hub.close_session(caller.session_id);
    let mut response = respond(
        StatusCode::OK,
        LogoutData {
            message: "logged out".into(),
        },
    );
    let mut cookie = refresh_cookie(String::new(), &state);
    cookie.make_removal();
    response.add_cookie(&cookie).map_err(ApiError::internal)?;
    Ok(response)
}

fn session_response(status: StatusCode, issued: IssuedTokens, state: &AppState) -> HttpResponse {
    let cookie = refresh_cookie(issued.refresh_token.clone(), state);
    let reader = issued.user.id;
    let mut response = respond_signed(
        status,
        AuthData {
            user: UserView::own(issued.user),
            token: issued.access_token,
            refresh_token: issued.refresh_token,
            expires_at: issued.access_expires_at,
        },
        &state.file_signer(reader),
    );
    // Cookie values here are hex, a dot and hex: always valid, so this cannot fail.
    let _ = response.add_cookie(&cookie);
    response
}

fn refresh_cookie(value: String, state: &AppState) -> Cookie<'static> {
    Cookie::build(REFRESH_COOKIE, value)
        .path(REFRESH_COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        // Browsers treat http://localhost as secure, but plain-http deployments would drop a
        // Secure cookie, so it is only required in production.
        .secure(state.production)
        .max_age(time::Duration::seconds(state.auth.refresh_token_ttl.num_seconds()))
        .finish()
}
