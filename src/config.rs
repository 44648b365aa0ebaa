//! Configuration, read once at start-up from the environment (and `.env`).
//!
//! Every variable is listed in `.env.example` and in the README's configuration table.
//! A value that is present but malformed stops the service with a message naming the
//! variable: silently falling back to a default would hide a typo in production.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/chat.db";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("JWT_SECRET is required when APP_ENV=production: set it to a random string of at least 32 characters")]
    MissingJwtSecretInProduction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    /// Connections in the pool; SQLite serialises writers anyway, PostgreSQL profits from more.
    pub database_max_connections: u32,
    pub bind: SocketAddr,
    /// HTTP worker threads; `None`: one per CPU core.
    pub workers: Option<usize>,
    /// `None` means: generate one and keep it beside the database (see `auth::secret`).
    pub jwt_secret: Option<String>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub bcrypt_cost: u32,
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    pub production: bool,
    pub json_body_limit: usize,
    /// Requests per minute per client address on register, login and refresh; 0 turns it off.
    pub auth_rate_limit_per_minute: u32,
    /// The reverse proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`; the older
    /// `TRUST_PROXY=true` means loopback). Empty: the peer address is the client's.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Show every user's email to everyone (company directories); otherwise only to its owner.
    pub user_emails_visible: bool,
    /// The most participants a group may have, owner included, after any change.
    pub group_max_members: u32,
    /// How many messages a requester may send while their chat request is pending.
    pub chat_request_max_messages: u32,
    /// How long a decline keeps the requester from reaching the decliner again, in days.
    pub chat_request_cooldown_days: u32,
    /// The per-user rate limits.
    pub limits: crate::limits::LimitSettings,
    /// Where a generated JWT secret is kept when `JWT_SECRET` is unset.
    pub data_dir: PathBuf,
    /// Comment sent on idle streams so proxies and clients see the connection alive.
    pub sse_keep_alive: Duration,
    /// The `retry:` hint: how long a client waits before reconnecting.
    pub sse_retry: Duration,
    /// Events a stream may have waiting before it is closed as too slow.
    pub sse_buffer: usize,
    /// Open streams per user (per instance); one more closes the oldest.
    pub max_streams_per_user: usize,
    /// How long events are kept for resuming streams.
    pub event_retention: Duration,
    /// Matches above which a message search reads newest first; `None`: the backend's
    /// measured default (2,000).
    pub search_common_word_matches: Option<u32>,
    /// How many of a caller's newest messages a common-word search tests before sorting
    /// older matches; `None`: 2,000 on PostgreSQL, 200 on SQLite.
    pub search_newest_first_window: Option<u32>,
    /// How long a user's last stream may be gone before they are announced offline.
    pub presence_debounce: Duration,
    /// Groups up to this size share presence unasked; beyond, clients subscribe.
    pub presence_group_max_members: usize,
    /// Where uploads go and what they may be.
    pub files: FileSettings,
    /// Push notifications: keys, FCM, the outbound URL rules, retries.
    pub push: PushSettings,
}

/// `PUSH_*`, `VAPID_*`, `FCM_*` and `OUTBOUND_ALLOWED_HOSTS`.
#[derive(Clone, Debug)]
pub struct PushSettings {
    /// `VAPID_PRIVATE_KEY`; `None`: generated once and kept beside the JWT secret.
    pub vapid_private_key: Option<String>,
    pub vapid_subject: String,
    pub fcm_service_account_file: Option<PathBuf>,
    pub fcm_api_base: String,
    pub outbound: crate::outbound::OutboundPolicy,
    /// `PUSH_PREVIEW`: show the message's text (else "New message").
    pub preview: bool,
    pub max_attempts: u32,
    /// How long a push is worth delivering (Web Push `TTL`, FCM `ttl`): older ones are dropped.
    pub ttl: Duration,
}

/// `FILE_STORE_URL` and the S3 variables, `FILE_MAX_BYTES`, `FILE_ALLOWED_TYPES`, `FILE_URL_TTL`.
#[derive(Clone, Debug)]
pub struct FileSettings {
    pub location: crate::files::Location,
    pub rules: crate::files::UploadRules,
    /// How long a signed file link works.
    pub url_ttl: Duration,
    /// Uploads no message carries are removed this long after their upload.
    pub orphan_ttl: Duration,
    /// The most bytes one user's files may take (`None`: unlimited).
    pub quota_bytes: Option<u64>,
    /// How many uploads one user may have running at once (per instance).
    pub max_concurrent_uploads: usize,
}

impl Config {
    /// Reads the process environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any name → value lookup (the tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let production = get("APP_ENV").is_some_and(|env| env.eq_ignore_ascii_case("production"));

        let jwt_secret = get("JWT_SECRET");
        if let Some(secret) = &jwt_secret
            && secret.len() < 32
        {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                reason: "must be at least 32 characters long".into(),
            });
        }
        if production && jwt_secret.is_none() {
            return Err(ConfigError::MissingJwtSecretInProduction);
        }

        let bcrypt_cost: u32 = parse(&get, "BCRYPT_COST", 12)?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(ConfigError::Invalid {
                name: "BCRYPT_COST",
                reason: "must be between 4 and 31".into(),
            });
        }

        let log_format = match get("LOG_FORMAT").as_deref().map(str::to_ascii_lowercase) {
            None => LogFormat::Human,
            Some(format) if format == "human" || format == "text" => LogFormat::Human,
            Some(format) if format == "json" => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "LOG_FORMAT",
                    reason: format!("expected human or json, got {other:?}"),
                });
            }
        };

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        let data_dir = get("DATA_DIR").map(PathBuf::from).unwrap_or_else(|| {
            crate::store::sqlite_file_path(&database_url)
                .and_then(|file| file.parent().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("./data"))
        });

        let files = file_settings(&get, &data_dir)?;
        Ok(Self {
            files,
            push: push_settings(&get)?,
            database_url,
            database_max_connections: parse(&get, "DATABASE_MAX_CONNECTIONS", 10)?,
            bind: parse(&get, "BIND", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            workers: get("WORKERS")
                .map(|_| positive(&get, "WORKERS", 1))
                .transpose()?
                .map(|workers| workers as usize),
            jwt_secret,
            access_token_ttl: Duration::from_secs(positive(&get, "ACCESS_TOKEN_TTL", 900)?),
            refresh_token_ttl: Duration::from_secs(positive(&get, "REFRESH_TOKEN_TTL", 30 * 86_400)?),
            bcrypt_cost,
            cors_origins: get("CORS_ORIGINS")
                .map(|list| {
                    list.split(',')
                        .map(|origin| origin.trim().to_string())
                        .filter(|origin| !origin.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            log_format,
            production,
            json_body_limit: positive(&get, "JSON_BODY_LIMIT", 64 * 1024)? as usize,
            auth_rate_limit_per_minute: parse(&get, "AUTH_RATE_LIMIT_PER_MINUTE", 30)?,
            trusted_proxies: trusted_proxies(&get)?,
            limits: limit_settings(&get)?,
            user_emails_visible: parse(&get, "USER_EMAILS_VISIBLE", false)?,
            group_max_members: u32::try_from(positive(&get, "GROUP_MAX_MEMBERS", 1000)?).unwrap_or(u32::MAX),
            chat_request_max_messages: parse(&get, "CHAT_REQUEST_MAX_MESSAGES", 3)?,
            chat_request_cooldown_days: parse(&get, "CHAT_REQUEST_COOLDOWN_DAYS", 30)?,
            data_dir,
            sse_keep_alive: Duration::from_secs(positive(&get, "SSE_KEEP_ALIVE_SECONDS", 15)?),
            sse_retry: Duration::from_millis(positive(&get, "SSE_RETRY_MS", 3000)?),
            sse_buffer: positive(&get, "SSE_BUFFER", 256)? as usize,
            max_streams_per_user: positive(&get, "MAX_STREAMS_PER_USER", 10)? as usize,
            event_retention: Duration::from_secs(positive(&get, "EVENT_RETENTION_DAYS", 30)? * 86_400),
            presence_debounce: Duration::from_millis(parse(&get, "PRESENCE_DEBOUNCE_MS", 5000)?),
            presence_group_max_members: usize::try_from(parse::<u64>(&get, "PRESENCE_GROUP_MAX_MEMBERS", 50)?)
                .unwrap_or(usize::MAX),
            search_common_word_matches: get("SEARCH_COMMON_WORD_MATCHES")
                .map(|_| positive(&get, "SEARCH_COMMON_WORD_MATCHES", 1))
                .transpose()?
                .map(|value| u32::try_from(value).unwrap_or(u32::MAX)),
            search_newest_first_window: get("SEARCH_NEWEST_FIRST_WINDOW")
                .map(|_| positive(&get, "SEARCH_NEWEST_FIRST_WINDOW", 1))
                .transpose()?
                .map(|value| u32::try_from(value).unwrap_or(u32::MAX)),
        })
    }
}

fn parse<T>(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|err: T::Err| ConfigError::Invalid {
            name,
            reason: format!("{err} (got {raw:?})"),
        }),
    }
}

/// `TRUSTED_PROXIES`: comma-separated addresses or CIDR blocks. Without it, `TRUST_PROXY=true`
/// (the setting this replaced) trusts loopback only: a proxy on the same host, as the README's
/// nginx setup has it.
fn trusted_proxies(get: &impl Fn(&str) -> Option<String>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let Some(list) = get("TRUSTED_PROXIES") else {
        return Ok(if parse(get, "TRUST_PROXY", false)? {
            vec![
                "127.0.0.0/8".parse().unwrap_or_default(),
                "::1/128".parse().unwrap_or_default(),
            ]
        } else {
            Vec::new()
        });
    };
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::Invalid {
                    name: "TRUSTED_PROXIES",
                    reason: format!("{entry:?} is not an address or CIDR block"),
                })
        })
        .collect()
}

/// Unset `FILE_STORE_URL`: `files` in the data folder. `s3://bucket[/prefix]` with `S3_ENDPOINT`,
/// `S3_REGION`, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`; `file:///path` or a bare path:
/// that folder.
fn file_settings(
    get: &impl Fn(&str) -> Option<String>,
    data_dir: &std::path::Path,
) -> Result<FileSettings, ConfigError> {
    use crate::files::{Location, S3Location, UploadRules, sniff};
    let location = match get("FILE_STORE_URL") {
        None => Location::Local(data_dir.join("files")),
        Some(url) if url.starts_with("s3://") => {
            let rest = url.trim_start_matches("s3://").trim_end_matches('/');
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ConfigError::Invalid {
                    name: "FILE_STORE_URL",
                    reason: "s3:// needs a bucket: s3://bucket or s3://bucket/prefix".into(),
                });
            }
            Location::S3(S3Location {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                endpoint: get("S3_ENDPOINT"),
                region: get("S3_REGION").unwrap_or_else(|| "us-east-1".into()),
                access_key_id: get("AWS_ACCESS_KEY_ID"),
                secret_access_key: get("AWS_SECRET_ACCESS_KEY"),
            })
        }
        Some(url) if url.contains("://") && !url.starts_with("file://") => {
            return Err(ConfigError::Invalid {
                name: "FILE_STORE_URL",
                reason: format!("expected s3://bucket, file:///folder or a folder, got {url:?}"),
            });
        }
        Some(url) => Location::Local(PathBuf::from(url.trim_start_matches("file://"))),
    };
    let allowed_types = match get("FILE_ALLOWED_TYPES") {
        None => sniff::DEFAULT_ALLOWED_TYPES
            .iter()
            .map(|kind| kind.to_string())
            .collect(),
        Some(list) => list
            .split(',')
            .map(|kind| kind.trim().to_ascii_lowercase())
            .filter(|kind| !kind.is_empty())
            .collect(),
    };
    Ok(FileSettings {
        location,
        rules: UploadRules {
            max_bytes: positive(get, "FILE_MAX_BYTES", 25 * 1024 * 1024)?,
            allowed_types,
            images: crate::files::images::ImageLimits {
                max_pixels: positive(
                    get,
                    "IMAGE_MAX_PIXELS",
                    crate::files::images::ImageLimits::default().max_pixels,
                )?,
                ..crate::files::images::ImageLimits::default()
            },
        },
        url_ttl: Duration::from_secs(at_most(get, "FILE_URL_TTL", 3600, 7 * 86_400)?),
        orphan_ttl: Duration::from_secs(positive(get, "FILE_ORPHAN_TTL", 86_400)?),
        max_concurrent_uploads: positive(get, "FILE_MAX_CONCURRENT_UPLOADS", 3)? as usize,
        quota_bytes: get("FILE_QUOTA_BYTES")
            .map(|_| positive(get, "FILE_QUOTA_BYTES", 1))
            .transpose()?,
    })
}

/// `VAPID_*`, `FCM_*`, `PUSH_*` and `OUTBOUND_ALLOWED_HOSTS`.
fn push_settings(get: &impl Fn(&str) -> Option<String>) -> Result<PushSettings, ConfigError> {
    let vapid_subject = get("VAPID_SUBJECT").unwrap_or_else(|| "mailto:chat-api@localhost".into());
    if !(vapid_subject.starts_with("mailto:") || vapid_subject.starts_with("https:")) {
        return Err(ConfigError::Invalid {
            name: "VAPID_SUBJECT",
            reason: "must be a mailto: or https: URL (a contact for the push services)".into(),
        });
    }
    let outbound = crate::outbound::OutboundPolicy::parse(&get("OUTBOUND_ALLOWED_HOSTS").unwrap_or_default()).map_err(
        |reason| ConfigError::Invalid {
            name: "OUTBOUND_ALLOWED_HOSTS",
            reason,
        },
    )?;
    let fcm_api_base = get("FCM_API_BASE").unwrap_or_else(|| "https://fcm.googleapis.com".into());
    if !(fcm_api_base.starts_with("https://") || fcm_api_base.starts_with("http://")) {
        return Err(ConfigError::Invalid {
            name: "FCM_API_BASE",
            reason: "must be an http(s):// URL".into(),
        });
    }
    Ok(PushSettings {
        vapid_private_key: get("VAPID_PRIVATE_KEY"),
        vapid_subject,
        fcm_service_account_file: get("FCM_SERVICE_ACCOUNT_FILE").map(PathBuf::from),
        fcm_api_base,
        outbound,
        preview: parse(get, "PUSH_PREVIEW", true)?,
        max_attempts: u32::try_from(positive(get, "PUSH_MAX_ATTEMPTS", 10)?).unwrap_or(u32::MAX),
        // FCM keeps a message at most 28 days.
        ttl: Duration::from_secs(at_most(get, "PUSH_TTL_SECONDS", 86_400, 28 * 86_400)?),
    })
}

/// `RATE_LIMITS` (on or off), each `RATE_LIMIT_<ACTION>` and `TYPING_MIN_INTERVAL_MS`.
fn limit_settings(get: &impl Fn(&str) -> Option<String>) -> Result<crate::limits::LimitSettings, ConfigError> {
    use crate::limits::{Action, LimitSettings, Rate};
    let enabled = match get("RATE_LIMITS")
        .as_deref()
        .map(|value| value.trim().to_ascii_lowercase())
    {
        None => true,
        Some(value) if value == "on" || value == "true" => true,
        Some(value) if value == "off" || value == "false" => false,
        Some(other) => {
            return Err(ConfigError::Invalid {
                name: "RATE_LIMITS",
                reason: format!("expected on or off, got {other:?}"),
            });
        }
    };
    let rates = Action::ALL
        .iter()
        .map(|&action| {
            let raw = get(action.variable()).unwrap_or_else(|| action.default_rate().to_string());
            raw.parse::<Rate>()
                .map(|rate| (action, rate))
                .map_err(|reason| ConfigError::Invalid {
                    name: action.variable(),
                    reason,
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(LimitSettings {
        enabled,
        rates,
        typing_min_interval: Duration::from_millis(parse(get, "TYPING_MIN_INTERVAL_MS", 1000)?),
    })
}

/// [`positive`], and at most `max`.
fn at_most(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let value = positive(get, name, default)?;
    if value > max {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("must be at most {max}"),
        });
    }
    Ok(value)
}

fn positive(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: u64) -> Result<u64, ConfigError> {
    let value = parse(get, name, default)?;
    if value == 0 {
        return Err(ConfigError::Invalid {
            name,
            reason: "must be greater than 0".into(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_serve_sqlite_on_loopback() {
        let config = config_from(&[]).unwrap();
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert_eq!(config.refresh_token_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(config.bcrypt_cost, 12);
        assert!(config.cors_origins.is_empty());
        assert_eq!(config.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn production_without_jwt_secret_refuses_to_start() {
        let error = config_from(&[("APP_ENV", "production")]).unwrap_err();
        assert!(matches!(error, ConfigError::MissingJwtSecretInProduction));
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for (name, value) in [
            ("BIND", "not-an-address"),
            ("ACCESS_TOKEN_TTL", "-5"),
            ("ACCESS_TOKEN_TTL", "0"),
            ("BCRYPT_COST", "3"),
            ("LOG_FORMAT", "xml"),
            ("JWT_SECRET", "short"),
        ] {
            let error = config_from(&[(name, value)]).unwrap_err().to_string();
            assert!(error.starts_with(name), "{name}={value} gave {error}");
        }
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks_and_trust_proxy_means_loopback() {
        let config = config_from(&[("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7,::1")]).unwrap();
        assert_eq!(config.trusted_proxies.len(), 3);
        assert!(config_from(&[("TRUSTED_PROXIES", "not-an-ip")]).is_err());
        let legacy = config_from(&[("TRUST_PROXY", "true")]).unwrap();
        assert!(
            legacy
                .trusted_proxies
                .iter()
                .any(|net| net.contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()))
        );
        assert!(config_from(&[]).unwrap().trusted_proxies.is_empty());
    }

    #[test]
    fn rate_limits_are_configurable_and_can_be_turned_off() {
        let config = config_from(&[("RATE_LIMIT_SEND", "2/s,5"), ("RATE_LIMITS", "off")]).unwrap();
        assert!(!config.limits.enabled);
        let send = config
            .limits
            .rates
            .iter()
            .find(|(action, _)| *action == crate::limits::Action::Send)
            .unwrap();
        assert_eq!(send.1.burst.get(), 5);
        let error = config_from(&[("RATE_LIMIT_SEARCH", "lots")]).unwrap_err().to_string();
        assert!(error.starts_with("RATE_LIMIT_SEARCH"), "{error}");
    }

    #[test]
    fn cors_origins_are_a_comma_separated_list() {
        let config = config_from(&[("CORS_ORIGINS", "http://a.test, http://b.test,")]).unwrap();
        assert_eq!(config.cors_origins, vec!["http://a.test", "http://b.test"]);
    }
}
