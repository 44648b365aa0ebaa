//! Access tokens (JWT, HS256) and refresh tokens (opaque, random, stored hashed).

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What an access token says: who, in which session, until when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: Uuid,
    /// The session id: revoking the session ends the token before `exp`.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    /// Unique per token, so that two tokens issued in the same second differ.
    #[serde(default)]
    pub jti: Option<Uuid>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
}

/// Signs and checks access tokens with the service's secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is exact: the TTL is configurable, so no hidden extra minute.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(&self, user: Uuid, session: Uuid, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> String {
        let claims = AccessClaims {
            sub: user,
            sid: session,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: Some(Uuid::now_v7()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

/// A refresh token: `<session id>.<64 hex characters of randomness>`. Only its SHA-256 is
/// stored, so a database leak does not hand out sessions.
pub struct RefreshToken {
    pub session_id: Uuid,
    pub token: String,
}

impl RefreshToken {
    pub fn generate(session_id: Uuid) -> Self {
        Self {
            session_id,
            token: format!("{}.{}", session_id.simple(), random_hex(32)),
        }
    }

    /// Splits a presented token; `None` when it cannot be one of ours.
    pub fn parse(token: &str) -> Option<Self> {
        let (session, secret) = token.split_once('.')?;
        if secret.len() != 64 || !secret.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return None;
        }
        Some(Self {
            session_id: Uuid::try_parse(session).ok()?,
            token: token.to_string(),
        })
    }

    pub fn hash(&self) -> Vec<u8> {
        sha256(&self.token)
    }
}

/// The SHA-256 of a secret token: what is stored instead of the token.
pub fn sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// `bytes` random bytes from the operating system, as lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system's random source failed");
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn access_tokens_round_trip_and_expire() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef");
        let (user, session, now) = (Uuid::now_v7(), Uuid::now_v7(), Utc::now());
        let token = keys.issue(user, session, now, now + Duration::seconds(60));
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, session));

        let expired = keys.issue(user, session, now, now - Duration::seconds(1));
        assert_eq!(keys.verify(&expired).unwrap_err(), TokenError::Expired);

        let other_keys = JwtKeys::new(b"another-secret-another-secret-xx");
        assert_eq!(other_keys.verify(&token).unwrap_err(), TokenError::Invalid);
        assert_eq!(keys.verify("not.a.jwt").unwrap_err(), TokenError::Invalid);
    }

    #[test]
    fn refresh_tokens_parse_only_their_own_shape() {
        let token = RefreshToken::generate(Uuid::now_v7());
        let parsed = RefreshToken::parse(&token.token).unwrap();
        assert_eq!(parsed.session_id, token.session_id);
        assert_eq!(parsed.hash(), token.hash());
        assert!(RefreshToken::parse("nonsense").is_none());
        assert!(RefreshToken::parse(&format!("{}.short", Uuid::now_v7().simple())).is_none());
    }
}
