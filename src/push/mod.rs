//! Push notifications to users without an open stream: Web Push (VAPID, `webpush.rs`) for
//! browsers, FCM (`fcm.rs`) for Android and iOS devices.
//!
//! A durable queue, in two steps, like the hub's reading of the log:
//! 1. **Decide.** One instance at a time holds the push lease (the `push_worker` row, renewed
//!    every second, lapsing 10 s after its holder dies). It reads the event log from its stored
//!    position; for each `message.created` it finds the devices to tell (offline recipients,
//!    not muted, blocked, hidden or held in a chat request) and writes those pushes to the
//!    outbox in the same transaction that moves its position. So a push is decided from
//!    committed data only, every message is decided once, and a crash in between decides it
//!    again from the old position.
//! 2. **Send.** The lease holder sends the outbox's due pushes, a few at a time, and removes each
//!    once the push service took it (or gave up on it); a failure is retried with exponential
//!    backoff and jitter (`Retry-After` honoured) up to `PUSH_MAX_ATTEMPTS`; a 404/410 (FCM's
//!    `UNREGISTERED`) removes the subscription. Each push has a stable id (`pushId` in its
//!    payload), the same on every attempt, so a receiver can tell a retry from a new push.
//!
//! Sending runs on its own task with its own HTTP client: a slow push service delays other
//! pushes at most, never the streams. Counts of sent, retried, failed and pruned pushes and the
//! queue's lag are logged every minute when anything happened.

pub mod fcm;
pub mod webpush;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use uuid::Uuid;

pub use crate::config::PushSettings;
use crate::files::links::FileLinks;
use crate::outbound::{self, OutboundPolicy};
use crate::realtime::payloads::MESSAGE_CREATED;
use crate::store::{DuePush, MessageRecipient, PushSubscription, PushedMessage, QueuedPush, Store, StoreResult};
use webpush::{BrowserKeys, Vapid};

/// How long the lease lasts without renewal: how soon another instance takes over from one
/// that died.
const LEASE: Duration = Duration::from_secs(10);
/// How often the worker reads the log without being told of new events (and renews).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Events read per step of deciding.
const DECIDE_BATCH: u32 = 500;
/// New messages decided per transaction, at most; fewer while steps yield more than
/// [`PUSHES_PER_STEP`] pushes (a message to a large group is one row per device of every
/// offline member): short transactions, which on PostgreSQL hold nobody's reading of the log.
const MESSAGES_PER_STEP: usize = 64;
const PUSHES_PER_STEP: usize = 4000;
/// Pushes claimed from the outbox at a time, and sent at once (push services answer in tens
/// of milliseconds, from far away: throughput needs many in flight).
const SEND_BATCH: u32 = 256;
const SEND_CONCURRENCY: usize = 64;
/// At most this many of the pushes in flight go to one user's devices: a slow endpoint (or a
/// tarpit a user registered) holds up only its own user's pushes, never everyone's. Not per
/// host: most browsers' pushes go to one host (FCM's).
const PER_USER: usize = 2;
/// A push service gets this long to answer (and 3 s to accept the connection).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// A claimed push is not due again for this long (see `Store::claim_due_pushes`).
const CLAIM: Duration = Duration::from_secs(30);
/// The longest wait between two attempts of one push.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// A notification's text is cut to this many characters.
const BODY_CHARS: usize = 200;

/// What one attempt at sending a push came to.
#[derive(Debug)]
pub enum Outcome {
    Sent,
    /// The subscription is gone (404, 410, `UNREGISTERED`): remove it.
    Gone,
    /// Try again later (timeouts, 429, 5xx), not before `after` if the service said so.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Will never succeed (a refused request, a broken subscription).
    Failed(String),
}

/// Counters since start (for the logs, and metrics once they exist).
#[derive(Default, Debug)]
pub struct PushStats {
    pub queued: AtomicU64,
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    pub pruned: AtomicU64,
}

/// What a push says, as its JSON payload (Web Push) or data (FCM).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    title: &'a str,
    body: &'a str,
    /// The message's first file (a signed link for the recipient, relative to the API's
    /// origin), `null` for none.
    first_attachment_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cid: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<Uuid>,
    sender_id: Uuid,
    /// The recipient's unread total (the app badge).
    #[serde(skip_serializing_if = "Option::is_none")]
    unread_count: Option<i64>,
    /// `POST /push/event`'s event.
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<Uuid>,
    /// The same on every attempt at this push.
    push_id: Uuid,
}

pub struct PushService {
    store: Store,
    settings: PushSettings,
    vapid: Vapid,
    fcm: Option<fcm::Fcm>,
    outbound: Arc<OutboundPolicy>,
    /// For push services' URLs, which users supply: see `outbound`.
    web_client: reqwest::Client,
    file_links: FileLinks,
    /// This instance, as the lease's holder.
    instance: Uuid,
    /// Rung when pushes were queued, and to wake the sender at shutdown.
    queued: Notify,
    /// Set at shutdown: the sender takes no more pushes and says when its last one finished.
    stopping: AtomicBool,
    sender_done: Notify,
    pub stats: PushStats,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PushSetupError {
    #[error("cannot load or create the VAPID key in {folder}: {source}")]
    KeyFile { folder: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read the push worker's state: {0}")]
    Database(#[from] crate::store::StoreError),
}

impl PushService {
    /// Loads the keys, fixes where pushes begin (the log's head, on a database no worker ran
    /// on: before any request is served) and starts the worker, which wakes when
    /// `log_advanced` rings.
    pub async fn start(
        store: Store,
        settings: PushSettings,
        secret_folder: &Path,
        file_links: FileLinks,
        instance: Uuid,
        log_advanced: Arc<Notify>,
    ) -> Result<Arc<Self>, PushSetupError> {
        let private_key = crate::auth::secret::load_or_create(
            &webpush::VAPID_KEY,
            settings.vapid_private_key.as_deref(),
            secret_folder,
        )
        .map_err(|source| PushSetupError::KeyFile {
            folder: secret_folder.display().to_string(),
            source,
        })?;
        let vapid = Vapid::from_private_key(&private_key, settings.vapid_subject.clone())
            .map_err(|reason| PushSetupError::Invalid(format!("VAPID_PRIVATE_KEY {reason}")))?;
        if settings.vapid_private_key.is_none() && store.kind() == crate::store::BackendKind::Postgres {
            tracing::warn!(
                "VAPID_PRIVATE_KEY is not set on PostgreSQL: instances that do not share DATA_DIR \
                 each generate their own key, and Web Push fails for browsers that subscribed with another"
            );
        }
        let operator_client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(SEND_TIMEOUT)
            .build()
            .map_err(|error| PushSetupError::Invalid(format!("cannot build the HTTP client: {error}")))?;
        let fcm = settings
            .fcm_service_account_file
            .as_deref()
            .map(|file| fcm::Fcm::load(file, &settings.fcm_api_base, operator_client))
            .transpose()
            .map_err(|reason| PushSetupError::Invalid(format!("FCM_SERVICE_ACCOUNT_FILE: {reason}")))?;
        let outbound = Arc::new(settings.outbound.clone());
        let web_client = outbound
            .client(SEND_TIMEOUT)
            .map_err(|error| PushSetupError::Invalid(format!("cannot build the HTTP client: {error}")))?;
        store.init_push_position(store.head_position().await?).await?;
        let service = Arc::new(Self {
            web_client,
            outbound,
            store,
            settings,
            vapid,
            fcm,
            file_links,
            instance,
            queued: Notify::new(),
            stopping: AtomicBool::new(false),
            sender_done: Notify::new(),
            stats: PushStats::default(),
            tasks: Default::default(),
        });
        let tasks = vec![
            tokio::spawn(decide_continually(service.clone(), log_advanced)),
            tokio::spawn(send_continually(service.clone())),
            tokio::spawn(report_continually(service.clone())),
        ];
        *service.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = tasks;
        Ok(service)
    }

    /// The key browsers subscribe with (`applicationServerKey`).
    pub fn vapid_public_key(&self) -> &str {
        self.vapid.public_key()
    }

    /// Whether users may register this Web Push endpoint.
    pub fn check_endpoint(&self, endpoint: &str) -> Result<(), outbound::Refusal> {
        self.outbound.check(endpoint).map(|_| ())
    }

    /// Queues a push event from `sender` to `recipients` (already narrowed to whom they may
    /// reach) on each of their devices.
    pub async fn push_event(&self, sender: Uuid, recipients: &[Uuid], title: &str, body: &str) -> StoreResult<Uuid> {
        let event = Uuid::now_v7();
        let now = crate::store::now();
        let subscriptions = self.store.subscriptions_of_users(recipients, now).await?;
        let pushes: Vec<QueuedPush> = subscriptions
            .into_iter()
            .map(|(subscription, _)| {
                let push_id = Uuid::now_v7();
                let payload = Payload {
                    title,
                    body,
                    first_attachment_url: None,
                    cid: None,
                    message_id: None,
                    sender_id: sender,
                    unread_count: None,
                    event_id: Some(event),
                    push_id,
                };
                QueuedPush {
                    id: push_id,
                    subscription,
                    message: None,
                    payload: serde_json::to_string(&payload).unwrap_or_default(),
                    topic: None,
                }
            })
            .collect();
        if !pushes.is_empty() {
            self.store.enqueue_pushes(&pushes, now).await?;
            self.stats.queued.fetch_add(pushes.len() as u64, Ordering::Relaxed);
            self.queued.notify_one();
        }
        Ok(event)
    }

    /// Stops the worker and gives the lease up, so that another instance takes over at once:
    /// the pushes in flight finish first (for up to one send timeout), so none is sent again.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.queued.notify_one();
        let _ = tokio::time::timeout(SEND_TIMEOUT + Duration::from_secs(1), self.sender_done.notified()).await;
        self.abort();
        if let Err(error) = self.store.release_push_lease(self.instance).await {
            tracing::warn!(%error, "could not give the push lease up");
        }
    }

    /// Stops the worker where it stands, as a crash would (the lease lapses by itself).
    pub fn abort(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }

    fn lease_until(now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(LEASE).unwrap_or_default()
    }

    /// Decides the pushes of every event after the worker's position, if this instance holds
    /// (or can take) the lease.
    async fn decide(&self) -> StoreResult<()> {
        let now = crate::store::now();
        let Some(stored) = self
            .store
            .acquire_push_lease(self.instance, now, Self::lease_until(now))
            .await?
        else {
            return Ok(());
        };
        self.queued.notify_one();
        // Set at start-up (`init_push_position`); unset only if the row was reset by hand.
        let mut position = stored.unwrap_or(crate::store::EventPosition::START);
        let mut step_size = MESSAGES_PER_STEP;
        loop {
            let batch = self.store.events_after(position, DECIDE_BATCH).await?;
            let Some(last) = batch.last().map(|event| event.position()) else {
                return Ok(());
            };
            let messages: Vec<(Uuid, crate::store::EventPosition)> = batch
                .iter()
                .filter(|event| event.kind == MESSAGE_CREATED && event.conversation_id.is_some())
                .filter_map(|event| Some((event.message_id?, event.position())))
                .collect();
            // A step per few messages, each moving the position to its last message's event;
            // the last step moves it past the batch's other events too. Steps shrink while
            // they yield many pushes (large groups) and grow back after: one transaction
            // writes a bounded number of rows, however large the groups.
            let mut next = 0;
            loop {
                let end = (next + step_size).min(messages.len());
                let step = &messages[next..end];
                let through = if end == messages.len() {
                    last
                } else {
                    step[step.len() - 1].1
                };
                let ids: Vec<Uuid> = step.iter().map(|(id, _)| *id).collect();
                let now = crate::store::now();
                let pushes = self.message_pushes(&ids, now).await?;
                if !self
                    .store
                    .queue_pushes(self.instance, now, Self::lease_until(now), through, &pushes)
                    .await?
                {
                    // The lease went to another instance meanwhile: it decides these.
                    return Ok(());
                }
                if !pushes.is_empty() {
                    self.stats.queued.fetch_add(pushes.len() as u64, Ordering::Relaxed);
                    self.queued.notify_one();
                }
                step_size = match pushes.len() {
                    many if many > PUSHES_PER_STEP => (step_size / 2).max(1),
                    few if few < PUSHES_PER_STEP / 4 => (step_size * 2).min(MESSAGES_PER_STEP),
                    _ => step_size,
                };
                next = end;
                if next >= messages.len() {
                    break;
                }
            }
            position = last;
            if batch.len() < DECIDE_BATCH as usize {
                return Ok(());
            }
        }
    }

    /// The pushes for new messages `messages`: one per device of each recipient to tell (the
    /// recipient's unread total read once, whatever their number of devices).
    async fn message_pushes(&self, messages: &[Uuid], now: DateTime<Utc>) -> StoreResult<Vec<QueuedPush>> {
        let recipients = self
            .store
            .message_recipients(messages, now, crate::realtime::presence::alive_since(now))
            .await?;
        if recipients.is_empty() {
            return Ok(Vec::new());
        }
        let mut shown: Vec<Uuid> = recipients.iter().map(|recipient| recipient.message_id).collect();
        shown.dedup();
        let mut users: Vec<Uuid> = recipients.iter().map(|recipient| recipient.user_id).collect();
        users.sort();
        users.dedup();
        let mut devices: std::collections::HashMap<Uuid, Vec<Uuid>> = std::collections::HashMap::new();
        for (subscription, user) in self.store.subscriptions_of_users(&users, now).await? {
            devices.entry(user).or_default().push(subscription);
        }
        let pushed: std::collections::HashMap<Uuid, PushedMessage> = self
            .store
            .pushed_messages(&shown)
            .await?
            .into_iter()
            .map(|pushed| (pushed.message.id, pushed))
            .collect();
        Ok(recipients
            .iter()
            .filter_map(|recipient| Some((pushed.get(&recipient.message_id)?, recipient)))
            .flat_map(|(message, recipient)| {
                let subscriptions = devices.get(&recipient.user_id).map(Vec::as_slice).unwrap_or_default();
                subscriptions
                    .iter()
                    .map(move |subscription| self.message_push(message, recipient, *subscription, now))
            })
            .collect())
    }

    fn message_push(
        &self,
        pushed: &PushedMessage,
        recipient: &MessageRecipient,
        subscription: Uuid,
        now: DateTime<Utc>,
    ) -> QueuedPush {
        let message = &pushed.message;
        let title = match &pushed.group_name {
            Some(group) => format!("{} in {group}", message.sender.name),
            None => message.sender.name.clone(),
        };
        let (body, first_attachment_url) = if self.settings.preview {
            let link = message
                .attachments
                .first()
                .map(|file| self.file_links.path(file.id, "", recipient.user_id, now));
            (notification_text(message), link)
        } else {
            // Nothing of the content, not even a link to its file.
            ("New message".to_string(), None)
        };
        let push_id = message_push_id(message.id, subscription);
        let payload = Payload {
            title: &title,
            body: &body,
            first_attachment_url,
            cid: Some(message.conversation_id),
            message_id: Some(message.id),
            sender_id: message.sender.id,
            unread_count: Some(recipient.unread_total),
            event_id: None,
            push_id,
        };
        QueuedPush {
            id: push_id,
            subscription,
            message: Some(message.id),
            payload: serde_json::to_string(&payload).unwrap_or_default(),
            topic: Some(message.conversation_id.simple().to_string()),
        }
    }

    /// Records what an attempt at `push` came to; a push that is done (sent, or given up on)
    /// is added to `finished`, for the caller to remove with others in one statement. Errors
    /// are logged, not returned: the other pushes' outcomes must be recorded whatever happens
    /// to one.
    async fn record(&self, push: &DuePush, outcome: Outcome, now: DateTime<Utc>, finished: &mut Vec<Uuid>) {
        let recorded = match outcome {
            Outcome::Sent => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                finished.push(push.push_id);
                Ok(())
            }
            Outcome::Gone => {
                self.stats.pruned.fetch_add(1, Ordering::Relaxed);
                tracing::info!(subscription = %push.subscription.id, "push subscription gone: removed");
                self.store.prune_push_subscription(push.subscription.id).await
            }
            Outcome::Failed(reason) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(push = %push.push_id, %reason, "push failed: dropped");
                finished.push(push.push_id);
                Ok(())
            }
            Outcome::Retry { after, reason } => {
                let attempts = push.attempts.saturating_add(1);
                if u32::try_from(attempts).unwrap_or(u32::MAX) >= self.settings.max_attempts {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(push = %push.push_id, %reason, attempts, "push failed after every attempt: dropped");
                    finished.push(push.push_id);
                    Ok(())
                } else {
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    // A Retry-After may lengthen the wait, never shorten it below the backoff.
                    let wait = after.unwrap_or_default().max(backoff(attempts)).min(MAX_BACKOFF);
                    tracing::info!(push = %push.push_id, %reason, attempts, wait_ms = wait.as_millis() as u64, "push will be retried");
                    let due = now + chrono::Duration::from_std(wait).unwrap_or_default();
                    self.store.retry_push(push.push_id, attempts, due).await
                }
            }
        };
        if let Err(error) = recorded {
            tracing::warn!(%error, push = %push.push_id, "could not record a push's outcome");
        }
    }

    /// One attempt at `push`.
    async fn attempt(&self, push: &DuePush, now: DateTime<Utc>) -> Outcome {
        if push.message_gone {
            return Outcome::Failed("its message was deleted".into());
        }
        let age = (now - push.queued_at).to_std().unwrap_or_default();
        let Some(ttl) = self.settings.ttl.checked_sub(age).filter(|left| !left.is_zero()) else {
            return Outcome::Failed("expired before it could be delivered".into());
        };
        let subscription = &push.subscription;
        match subscription.platform.as_str() {
            "web" => self.send_web(push, subscription, ttl, now).await,
            _ => match (&self.fcm, subscription.device_token.as_deref()) {
                (Some(fcm), Some(token)) => {
                    let payload: serde_json::Value = serde_json::from_str(&push.payload).unwrap_or_default();
                    fcm.send(token, &payload, push.topic.as_deref(), ttl).await
                }
                (None, _) => Outcome::Failed("FCM is not configured (FCM_SERVICE_ACCOUNT_FILE)".into()),
                (_, None) => Outcome::Failed("the subscription has no device token".into()),
            },
        }
    }

    async fn send_web(
        &self,
        push: &DuePush,
        subscription: &PushSubscription,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Outcome {
        let (Some(endpoint), Some(p256dh), Some(auth)) = (
            subscription.web_endpoint.as_deref(),
            subscription.web_key_p256dh.as_deref(),
            subscription.web_key_auth.as_deref(),
        ) else {
            return Outcome::Failed("the subscription has no endpoint or keys".into());
        };
        // Checked again: OUTBOUND_ALLOWED_HOSTS may have changed since it was registered.
        let url = match self.outbound.check(endpoint) {
            Ok(url) => url,
            Err(refusal) => return Outcome::Failed(format!("the endpoint {refusal}")),
        };
        let keys = match BrowserKeys::parse(p256dh, auth) {
            Ok(keys) => keys,
            Err((_, problem)) => return Outcome::Failed(problem.into()),
        };
        let body = match keys.encrypt(push.payload.as_bytes()) {
            Ok(body) => body,
            Err(reason) => return Outcome::Failed(reason),
        };
        let authorization = match self.vapid.authorization(&url, now) {
            Ok(authorization) => authorization,
            Err(reason) => return Outcome::Failed(reason),
        };
        let mut request = self
            .web_client
            .post(url)
            .header("TTL", ttl.as_secs().to_string())
            .header("Urgency", "high")
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::AUTHORIZATION, authorization)
            .body(body);
        if let Some(topic) = &push.topic {
            request = request.header("Topic", topic.as_str());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Outcome::Retry {
                    after: None,
                    reason: format!("push service: {}", without_url(&error)),
                };
            }
        };
        let status = response.status();
        match status.as_u16() {
            200..=299 => Outcome::Sent,
            404 | 410 => Outcome::Gone,
            429 | 500..=599 => Outcome::Retry {
                after: retry_after(response.headers()),
                reason: format!("push service answered {status}"),
            },
            _ => Outcome::Failed(format!("push service answered {status}")),
        }
    }
}

/// A message as its notification shows it: its text cut to [`BODY_CHARS`], else a word for
/// what it carries.
fn notification_text(message: &crate::store::Message) -> String {
    let text = message.content.trim();
    if !text.is_empty() {
        if text.chars().count() <= BODY_CHARS {
            return text.to_string();
        }
        let mut cut: String = text.chars().take(BODY_CHARS - 1).collect();
        cut.push('…');
        return cut;
    }
    match message.attachments.first() {
        Some(file) if file.content_type.starts_with("image/") => "Photo".to_string(),
        Some(file) if file.content_type.starts_with("video/") => "Video".to_string(),
        Some(file) if file.content_type.starts_with("audio/") => "Audio".to_string(),
        Some(file) => format!("File: {}", file.name),
        None if message
            .links
            .iter()
            .any(|link| link.kind == crate::store::MessageLink::IMAGE) =>
        {
            "Photo".to_string()
        }
        None => "New message".to_string(),
    }
}

/// The wait before attempt `attempts + 1`: 2^attempts seconds, less up to half of it at
/// random (so that devices failing together do not retry together).
fn backoff(attempts: i32) -> Duration {
    let full = Duration::from_secs(1u64 << attempts.clamp(0, 20)).min(MAX_BACKOFF);
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    full - full.mul_f64(f64::from(byte[0]) / 512.0)
}

/// A client error without the URL it was for (which may carry a device's push address).
fn without_url(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    }
}

/// A `Retry-After` in seconds (the HTTP-date form is read as no hint).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

async fn decide_continually(service: Arc<PushService>, log_advanced: Arc<Notify>) {
    loop {
        let _ = tokio::time::timeout(IDLE_POLL, log_advanced.notified()).await;
        if let Err(error) = service.decide().await {
            tracing::warn!(%error, "deciding pushes failed; retrying");
        }
    }
}

/// The sender: keeps up to [`SEND_CONCURRENCY`] pushes in flight, at most [`PER_USER`] of
/// them to one user's devices, claiming more from the outbox as slots free; each outcome is
/// recorded as it comes (the finished ones removed together), so a slow push never holds up
/// others.
async fn send_continually(service: Arc<PushService>) {
    type Flight = (DuePush, Outcome);
    let mut claimed: std::collections::VecDeque<DuePush> = Default::default();
    let mut in_flight: tokio::task::JoinSet<Flight> = tokio::task::JoinSet::new();
    let mut per_user: std::collections::HashMap<Uuid, usize> = Default::default();
    loop {
        let stopping = service.stopping.load(Ordering::Relaxed);
        if stopping && in_flight.is_empty() {
            // Claimed and not begun: due again at once, for the next holder.
            for push in claimed.drain(..) {
                let _ = service
                    .store
                    .retry_push(push.push_id, push.attempts, crate::store::now())
                    .await;
            }
            service.sender_done.notify_one();
            return;
        }
        if !stopping && claimed.len() < SEND_BATCH as usize / 2 {
            let now = crate::store::now();
            let until = now + chrono::Duration::from_std(CLAIM).unwrap_or_default();
            match service
                .store
                .claim_due_pushes(service.instance, now, until, SEND_BATCH)
                .await
            {
                Ok(due) => {
                    let known: std::collections::HashSet<Uuid> = claimed.iter().map(|push| push.push_id).collect();
                    claimed.extend(due.into_iter().filter(|push| !known.contains(&push.push_id)));
                }
                Err(error) => tracing::warn!(%error, "claiming pushes failed; retrying"),
            }
        }
        // Start what the slots and the per-user caps allow, oldest first.
        let mut index = 0;
        while !stopping && in_flight.len() < SEND_CONCURRENCY && index < claimed.len() {
            let user = claimed[index].subscription.user_id;
            if per_user.get(&user).copied().unwrap_or(0) >= PER_USER {
                index += 1;
                continue;
            }
            let Some(push) = claimed.remove(index) else { break };
            *per_user.entry(user).or_default() += 1;
            let worker = service.clone();
            in_flight.spawn(async move {
                let outcome = worker.attempt(&push, crate::store::now()).await;
                (push, outcome)
            });
        }
        let idle = in_flight.is_empty() || (in_flight.len() < SEND_CONCURRENCY && claimed.is_empty());
        let mut done: Vec<Flight> = Vec::new();
        tokio::select! {
            Some(Ok(flight)) = in_flight.join_next(), if !in_flight.is_empty() => done.push(flight),
            _ = tokio::time::timeout(IDLE_POLL, service.queued.notified()), if idle => {}
            _ = tokio::time::sleep(Duration::from_millis(20)), if !idle => {}
        }
        while let Some(Ok(flight)) = in_flight.try_join_next() {
            done.push(flight);
        }
        let now = crate::store::now();
        let mut finished = Vec::new();
        for (push, outcome) in done {
            if let Some(count) = per_user.get_mut(&push.subscription.user_id) {
                *count = count.saturating_sub(1);
            }
            service.record(&push, outcome, now, &mut finished).await;
        }
        per_user.retain(|_, count| *count > 0);
        if let Err(error) = service.store.finish_pushes(&finished).await {
            tracing::warn!(%error, "could not remove finished pushes (they are sent again after the claim)");
        }
    }
}

/// A message's push to one subscription has this id however often it is decided (a commit
/// whose answer was lost decides it again): the outbox keeps it once.
fn message_push_id(message: Uuid, subscription: Uuid) -> Uuid {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(b"chat-api push:")
        .chain_update(message.as_bytes())
        .chain_update(subscription.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Logs the counters and the queue every minute in which anything happened.
async fn report_continually(service: Arc<PushService>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(60));
    let mut last = [0u64; 5];
    loop {
        ticks.tick().await;
        let stats = &service.stats;
        let now = [
            stats.queued.load(Ordering::Relaxed),
            stats.sent.load(Ordering::Relaxed),
            stats.retried.load(Ordering::Relaxed),
            stats.failed.load(Ordering::Relaxed),
            stats.pruned.load(Ordering::Relaxed),
        ];
        if now == last {
            continue;
        }
        let (waiting, oldest) = service.store.push_backlog().await.unwrap_or((0, None));
        let lag_ms = oldest.map_or(0, |oldest| (crate::store::now() - oldest).num_milliseconds().max(0));
        tracing::info!(
            queued = now[0] - last[0],
            sent = now[1] - last[1],
            retried = now[2] - last[2],
            failed = now[3] - last[3],
            pruned = now[4] - last[4],
            waiting,
            lag_ms,
            "pushes in the last minute"
        );
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_growing() {
        for attempts in 1..30 {
            let wait = backoff(attempts);
            let full = Duration::from_secs(1u64 << attempts.clamp(0, 20)).min(MAX_BACKOFF);
            assert!(wait <= full && wait >= full / 2, "{attempts}: {wait:?}");
        }
    }
}
