//! Authentication: accounts, sessions, access and refresh tokens.
//!
//! A login opens a session (one row in `sessions`). The session hands out short-lived JWT
//! access tokens and one current refresh token, which is replaced on every refresh. Presenting
//! a replaced refresh token means it was copied: the whole session is revoked at once.

mod extractor;
mod password;
pub mod rate_limit;
pub mod secret;
pub mod tokens;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use extractor::AuthUser;
use password::{hash_password, verify_password};
use rate_limit::RateLimiter;
use tokens::{JwtKeys, RefreshToken, TokenError};

use crate::domain::{Email, Name, Password};
use crate::error::{ApiError, ErrorCode};
use crate::store::{self, NewSession, NewUser, RefreshOutcome, Store, User};

pub struct AuthService {
    store: Store,
    pub keys: JwtKeys,
    pub access_token_ttl: chrono::Duration,
    pub refresh_token_ttl: chrono::Duration,
    pub bcrypt_cost: u32,
    pub limiter: RateLimiter,
    /// Verified against when the email is unknown, so that a login for a non-existent
    /// account takes as long as one with a wrong password.
    dummy_hash: String,
}

/// A session's fresh pair of tokens, and whose they are.
pub struct IssuedTokens {
    pub user: User,
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
}

impl AuthService {
    pub async fn new(
        store: Store,
        keys: JwtKeys,
        access_token_ttl: std::time::Duration,
        refresh_token_ttl: std::time::Duration,
        bcrypt_cost: u32,
        limiter: RateLimiter,
    ) -> Result<Self, ApiError> {
        let dummy_hash = hash_password(
            &Password::parse("not-a-real-password").map_err(ApiError::internal)?,
            bcrypt_cost,
        )
        .await?;
        Ok(Self {
            store,
            keys,
            access_token_ttl: chrono::Duration::from_std(access_token_ttl).map_err(ApiError::internal)?,
            refresh_token_ttl: chrono::Duration::from_std(refresh_token_ttl).map_err(ApiError::internal)?,
            bcrypt_cost,
            limiter,
            dummy_hash,
        })
    }

    pub async fn register(&self, name: Name, email: Email, password: Password) -> Result<IssuedTokens, ApiError> {
        let password_hash = hash_password(&password, self.bcrypt_cost).await?;
        let user = self
            .store
            .create_user(&NewUser {
                id: Uuid::now_v7(),
                name: name.into_inner(),
                email: email.into_inner(),
                password_hash,
                created_at: store::now(),
            })
            .await?;
        self.open_session(user, None, None).await
    }

    /// Wrong email and wrong password give the same answer, after the same bcrypt work.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        device_id: Option<String>,
    ) -> Result<IssuedTokens, ApiError> {
        let credentials = match Email::parse(email) {
            Ok(email) => self.store.find_credentials_by_email(email.as_str()).await?,
            Err(_) => None,
        };
        let hash = credentials
            .as_ref()
            .map_or(self.dummy_hash.as_str(), |found| found.password_hash.as_str());
        // bcrypt compares only the first 72 bytes: a longer password (registration refuses
        // them) is wrong by definition, after the same work.
        let acceptable = Password::parse(password).is_ok();
        let matches = verify_password(password, hash).await? && acceptable;
        match credentials {
            Some(found) if matches => {
                self.open_session(found.user, device_id, Some(found.password_hash))
                    .await
            }
            _ => Err(ApiError::unauthorized(
                ErrorCode::InvalidCredentials,
                "wrong email or password",
            )),
        }
    }

    pub async fn refresh(&self, presented: &str) -> Result<IssuedTokens, ApiError> {
        let invalid = || {
            ApiError::unauthorized(
                ErrorCode::InvalidRefreshToken,
                "the refresh token is not valid; log in again",
            )
        };
        let presented = RefreshToken::parse(presented).ok_or_else(invalid)?;
        let replacement = RefreshToken::generate(presented.session_id);
        let now = store::now();
        let outcome = self
            .store
            .rotate_refresh_token(
                presented.session_id,
                &presented.hash(),
                &replacement.hash(),
                now,
                now + self.refresh_token_ttl,
            )
            .await?;
        match outcome {
            RefreshOutcome::Rotated { user_id } => {
                let user = self.store.find_user(user_id).await?.ok_or_else(invalid)?;
                Ok(self.tokens_for(user, replacement, now))
            }
            RefreshOutcome::ReuseDetected => {
                tracing::warn!(session = %presented.session_id, "refresh token reused: session revoked");
                Err(ApiError::unauthorized(
                    ErrorCode::RefreshTokenReused,
                    "this refresh token was already used; the session has been ended for safety",
                ))
            }
            RefreshOutcome::Invalid => Err(invalid()),
        }
    }

    /// The caller behind an access token: valid, unexpired, and its session still live.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser, ApiError> {
        let claims = self.keys.verify(token).map_err(|error| match error {
            TokenError::Expired => {
                ApiError::unauthorized(ErrorCode::TokenExpired, "the access token has expired; refresh it")
            }
            TokenError::Invalid => ApiError::unauthorized(ErrorCode::InvalidToken, "the access token is not valid"),
        })?;
        if !self.store.session_is_active(claims.sid, claims.sub).await? {
            return Err(ApiError::unauthorized(
                ErrorCode::SessionEnded,
                "this session has ended; log in again",
            ));
        }
        Ok(AuthUser {
            user_id: claims.sub,
            session_id: claims.sid,
        })
    }

    /// Is `password` the signed-in `user`'s? 403 `invalid_credentials` if not: the caller is
    /// authenticated, so the session stays (a 401 would make clients log out).
    /// The hash it was checked against is returned, for a change that must not race another.
    pub async fn confirm_password(&self, user: Uuid, password: &str) -> Result<String, ApiError> {
        let hash = self.store.password_hash_of(user).await?;
        let matches = verify_password(password, hash.as_deref().unwrap_or(&self.dummy_hash)).await?
            && Password::parse(password).is_ok();
        match hash {
            Some(hash) if matches => Ok(hash),
            _ => Err(ApiError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                ErrorCode::InvalidCredentials,
                "the current password is wrong",
            )),
        }
    }

    /// Sets `caller`'s password to `new` once `current` is confirmed, and ends every other
    /// session of theirs; the ended sessions' ids (their streams are the caller's to close).
    pub async fn change_password(&self, caller: AuthUser, current: &str, new: Password) -> Result<Vec<Uuid>, ApiError> {
        let verified = self.confirm_password(caller.user_id, current).await?;
        let hash = hash_password(&new, self.bcrypt_cost).await?;
        Ok(self
            .store
            .set_password(caller.user_id, &verified, &hash, caller.session_id, store::now())
            .await?)
    }

    pub async fn logout(&self, session_id: Uuid) -> Result<(), ApiError> {
        self.store.revoke_session(session_id, store::now()).await?;
        Ok(())
    }

    /// A new session for `user`; with `verified_hash` (a login), only if that is still their
    /// password (401 as for a wrong password otherwise: it changed meanwhile).
    async fn open_session(
        &self,
        user: User,
        device_id: Option<String>,
        verified_hash: Option<String>,
    ) -> Result<IssuedTokens, ApiError> {
        let refresh = RefreshToken::generate(Uuid::now_v7());
        let now = store::now();
        let opened = self
            .store
            .create_session(&NewSession {
                id: refresh.session_id,
                user_id: user.id,
                device_id,
                refresh_token_hash: refresh.hash(),
                verified_hash,
                created_at: now,
                expires_at: now + self.refresh_token_ttl,
            })
            .await?;
        if !opened {
            return Err(ApiError::unauthorized(
                ErrorCode::InvalidCredentials,
                "wrong email or password",
            ));
        }
        Ok(self.tokens_for(user, refresh, now))
    }

    fn tokens_for(&self, user: User, refresh: RefreshToken, now: DateTime<Utc>) -> IssuedTokens {
        let access_expires_at = now + self.access_token_ttl;
        IssuedTokens {
            access_token: self.keys.issue(user.id, refresh.session_id, now, access_expires_at),
            access_expires_at,
            refresh_token: refresh.token,
            user,
        }
    }
}
