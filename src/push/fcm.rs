//! Firebase Cloud Messaging (HTTP v1) for Android and iOS devices (APNs is reached through
//! FCM): an OAuth2 access token from the service account (the JWT-bearer grant, RS256), kept
//! until shortly before it expires, and one `messages:send` request per push.

use std::path::Path;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Outcome, retry_after, without_url};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The fields of the service-account JSON that Google issues which FCM needs.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    private_key: String,
    private_key_id: Option<String>,
    client_email: String,
    token_uri: String,
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

pub struct Fcm {
    account: ServiceAccount,
    signing_key: EncodingKey,
    /// `FCM_API_BASE`.
    api_base: String,
    /// For FCM and the token endpoint: URLs the operator configured, not users.
    client: reqwest::Client,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl Fcm {
    /// Reads the service account at `path` (`FCM_SERVICE_ACCOUNT_FILE`).
    pub fn load(path: &Path, api_base: &str, client: reqwest::Client) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let account: ServiceAccount = serde_json::from_str(&text)
            .map_err(|error| format!("{} is not a service-account JSON file: {error}", path.display()))?;
        let signing_key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|_| format!("the private_key of {} is not an RSA key in PEM", path.display()))?;
        Ok(Self {
            account,
            signing_key,
            api_base: api_base.trim_end_matches('/').to_string(),
            client,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// An access token, fetched again a minute before the last one expires.
    async fn access_token(&self) -> Result<String, Outcome> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && Instant::now() + Duration::from_secs(60) < *expires
        {
            return Ok(token.clone());
        }
        let now = chrono::Utc::now().timestamp();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.account.private_key_id.clone();
        let assertion = Assertion {
            iss: &self.account.client_email,
            scope: SCOPE,
            aud: &self.account.token_uri,
            iat: now,
            exp: now + 3600,
        };
        let assertion = jsonwebtoken::encode(&header, &assertion, &self.signing_key)
            .map_err(|error| Outcome::Failed(format!("signing the FCM token request failed: {error}")))?;
        let form = format!(
            "grant_type={}&assertion={assertion}",
            "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
        );
        let response = self
            .client
            .post(&self.account.token_uri)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|error| Outcome::Retry {
                after: None,
                reason: format!("the FCM token endpoint: {}", without_url(&error)),
            })?;
        let status = response.status();
        if !status.is_success() {
            let reason = format!("the FCM token endpoint answered {status}");
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                Outcome::Retry {
                    after: retry_after(response.headers()),
                    reason,
                }
            } else {
                Outcome::Failed(reason)
            });
        }
        let answer: TokenAnswer = response.json().await.map_err(|_| Outcome::Retry {
            after: None,
            reason: "the FCM token endpoint's answer is not a token".into(),
        })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600).clamp(60, 3600));
        *cached = Some((answer.access_token.clone(), Instant::now() + lifetime));
        Ok(answer.access_token)
    }

    /// Sends `payload` (the push's JSON object) to `device_token`.
    pub async fn send(&self, device_token: &str, payload: &Value, topic: Option<&str>, ttl: Duration) -> Outcome {
        let access_token = match self.access_token().await {
            Ok(token) => token,
            Err(outcome) => return outcome,
        };
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.api_base, self.account.project_id
        );
        let response = self
            .client
            .post(url)
            .bearer_auth(access_token)
            .json(&message(device_token, payload, topic, ttl))
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                return Outcome::Retry {
                    after: None,
                    reason: format!("FCM: {}", without_url(&error)),
                };
            }
        };
        let status = response.status();
        let after = retry_after(response.headers());
        if status.is_success() {
            return Outcome::Sent;
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let code = fcm_error_code(&body);
        match (status.as_u16(), code.as_deref()) {
            // Only FCM's own word removes a device: a bare 404 may be a wrong FCM_API_BASE.
            (_, Some("UNREGISTERED" | "SENDER_ID_MISMATCH")) => Outcome::Gone,
            (401, _) => {
                // The token was refused: the next attempt fetches a new one.
                *self.token.lock().await = None;
                Outcome::Retry {
                    after: None,
                    reason: "FCM refused the access token".into(),
                }
            }
            (429, _) | (500..=599, _) => Outcome::Retry {
                after,
                reason: format!("FCM answered {status}"),
            },
            _ => Outcome::Failed(format!("FCM answered {status} ({})", code.unwrap_or_default())),
        }
    }
}

/// FCM's `errorCode` (`UNREGISTERED`, `INVALID_ARGUMENT`...) from an error answer.
fn fcm_error_code(body: &Value) -> Option<String> {
    let error = body.get("error")?;
    error
        .get("details")
        .and_then(Value::as_array)
        .and_then(|details| details.iter().find_map(|detail| detail.get("errorCode")?.as_str()))
        .or_else(|| error.get("status")?.as_str())
        .map(str::to_string)
}

/// The FCM v1 message: a notification the device shows by itself, the other fields as data
/// (every value a string, as FCM requires; the title and body only once, so that a long one
/// stays within FCM's 4 KB), high priority, and the conversation's collapse key on both
/// platforms.
fn message(device_token: &str, payload: &Value, topic: Option<&str>, ttl: Duration) -> Value {
    let text = |field: &str| {
        payload
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let data: serde_json::Map<String, Value> = payload
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .filter(|(name, _)| !matches!(name.as_str(), "title" | "body"))
                .filter_map(|(name, value)| {
                    let value = match value {
                        Value::Null => return None,
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    Some((name.clone(), Value::String(value)))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut android = json!({ "priority": "high", "ttl": format!("{}s", ttl.as_secs()) });
    let expiration = chrono::Utc::now().timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let mut apns_headers = json!({ "apns-priority": "10", "apns-expiration": expiration.to_string() });
    if let Some(topic) = topic {
        android["collapse_key"] = json!(topic);
        apns_headers["apns-collapse-id"] = json!(topic);
    }
    let mut aps = json!({ "sound": "default" });
    if let Some(badge) = payload.get("unreadCount").and_then(Value::as_i64) {
        aps["badge"] = json!(badge);
    }
    json!({
        "message": {
            "token": device_token,
            "notification": { "title": text("title"), "body": text("body") },
            "data": data,
            "android": android,
            "apns": { "headers": apns_headers, "payload": { "aps": aps } },
        }
    })
}
