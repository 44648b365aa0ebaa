//! Web Push: the VAPID key (RFC 8292) that identifies this server to browsers' push services,
//! and the encrypted request (RFC 8291 `aes128gcm`, RFC 8030 headers) for one subscription.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use reqwest::Url;
use web_push_native::p256;

use crate::auth::secret::KeptSecret;

/// The VAPID private key kept in the data folder when `VAPID_PRIVATE_KEY` is unset.
pub const VAPID_KEY: KeptSecret = KeptSecret {
    variable: "VAPID_PRIVATE_KEY",
    file: "vapid_private_key",
    generate: generate_private_key,
};

/// How long a VAPID token is valid (RFC 8292 allows up to 24 hours).
const TOKEN_LIFETIME: chrono::Duration = chrono::Duration::hours(12);

fn generate_private_key() -> String {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        // Almost every 32 bytes are a valid scalar; the rare other is drawn again.
        if p256::SecretKey::from_slice(&bytes).is_ok() {
            return URL_SAFE_NO_PAD.encode(bytes);
        }
    }
}

/// Base64url, with or without padding (browsers' `toJSON()` leaves it out; some SDKs keep it).
pub fn decode_base64url(raw: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(raw.trim().trim_end_matches('=')).ok()
}

/// This server's VAPID identity.
pub struct Vapid {
    signing_key: EncodingKey,
    /// The uncompressed public key, base64url: what `PushManager.subscribe` takes as
    /// `applicationServerKey`, and the `k=` of every request.
    public_key: String,
    /// `VAPID_SUBJECT`: a `mailto:` or `https:` contact for the push services.
    subject: String,
}

#[derive(serde::Serialize)]
struct VapidClaims<'a> {
    aud: &'a str,
    exp: i64,
    sub: &'a str,
}

impl Vapid {
    /// From `VAPID_PRIVATE_KEY`: the 32-byte P-256 private key, base64url.
    pub fn from_private_key(encoded: &str, subject: String) -> Result<Self, String> {
        let bytes = decode_base64url(encoded).ok_or("is not base64url")?;
        let secret = p256::SecretKey::from_slice(&bytes).map_err(|_| "is not a P-256 private key (32 bytes)")?;
        let der = secret.to_pkcs8_der().map_err(|_| "is not a P-256 private key")?;
        let public_key = URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes());
        Ok(Self {
            signing_key: EncodingKey::from_ec_der(der.as_bytes()),
            public_key,
            subject,
        })
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The `Authorization` header for a request to `endpoint`: a token for its origin.
    pub fn authorization(&self, endpoint: &Url, now: DateTime<Utc>) -> Result<String, String> {
        let audience = endpoint.origin().ascii_serialization();
        let claims = VapidClaims {
            aud: &audience,
            exp: (now + TOKEN_LIFETIME).timestamp(),
            sub: &self.subject,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.signing_key)
            .map_err(|error| format!("signing the VAPID token failed: {error}"))?;
        Ok(format!("vapid t={token}, k={}", self.public_key))
    }
}

/// A browser's subscription keys, checked: `p256dh` (its P-256 public key) and `auth` (16
/// bytes), both base64url.
pub struct BrowserKeys {
    public_key: p256::PublicKey,
    auth: web_push_native::Auth,
}

impl BrowserKeys {
    pub fn parse(p256dh: &str, auth: &str) -> Result<Self, (&'static str, &'static str)> {
        let public_key = decode_base64url(p256dh)
            .and_then(|bytes| p256::PublicKey::from_sec1_bytes(&bytes).ok())
            .ok_or(("webKeyP256dh", "must be the browser's P-256 public key, base64url"))?;
        let auth = decode_base64url(auth)
            .filter(|bytes| bytes.len() == 16)
            .ok_or(("webKeyAuth", "must be the browser's 16-byte auth secret, base64url"))?;
        let mut secret = web_push_native::Auth::default();
        secret.copy_from_slice(&auth);
        Ok(Self {
            public_key,
            auth: secret,
        })
    }

    /// `payload` encrypted for this browser (one `aes128gcm` record).
    pub fn encrypt(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        web_push_native::encrypt(payload.to_vec(), &self.public_key, &self.auth)
            .map_err(|error| format!("encrypting the push failed: {error}"))
    }
}
