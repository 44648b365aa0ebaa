//! Fake but real peers for the push tests: a Web Push service (RFC 8030) that checks VAPID
//! (RFC 8292) and decrypts every payload (RFC 8291), and FCM HTTP v1 with Google's OAuth2
//! token endpoint. Each is an actix-web server on a random loopback port, started in the test's
//! runtime the way the app is, that records what it receives and answers with scripted statuses.
//!
//! They fail loudly: a request a real peer would refuse is refused here too (400 or 401) and
//! recorded as an error, `assert_clean` lists them, and the wait functions fail at once when
//! there are any (and after their deadline otherwise), instead of letting a test time out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use uuid::Uuid;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint as _;
use web_push_native::p256::{PublicKey, SecretKey};

/// The project of the fake FCM's service account.
const PROJECT_ID: &str = "chat-test";
/// The service account's `client_email`, the `iss` of its token requests.
const CLIENT_EMAIL: &str = "push@chat-test.iam.gserviceaccount.com";
/// The scope an FCM sender asks its access token for.
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// Push services take encrypted bodies of up to 4096 bytes (RFC 8291 section 4) and refuse
/// larger ones.
const MAX_PUSH_BODY: usize = 4096;
/// The longest a VAPID token may be valid for (RFC 8292 section 2).
const MAX_VAPID_LIFETIME: u64 = 24 * 60 * 60;
/// The longest a Google token request may ask for, `exp - iat`.
const MAX_ASSERTION_LIFETIME: u64 = 3600;

// ---- Web Push ----------------------------------------------------------------------------

/// An RFC 8030 push service on loopback, for the subscriptions it hands out.
pub struct WebPushService {
    shared: Arc<WebPushShared>,
    handle: ServerHandle,
}

/// A browser-like push subscription of a [`WebPushService`], as a client would register it
/// with the app. The private key stays inside the service, which decrypts with it.
#[derive(Clone, Debug)]
pub struct WebSubscription {
    pub endpoint: String,
    /// base64url of the uncompressed P-256 public key (65 bytes).
    pub p256dh: String,
    /// base64url of the 16-byte auth secret.
    pub auth: String,
    pub id: String,
}

/// A push the service accepted (answered 2xx), decrypted.
#[derive(Clone, Debug)]
pub struct WebPush {
    pub payload: Value,
    pub ttl: u64,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    pub at: Instant,
}

struct WebPushShared {
    /// `http://127.0.0.1:<port>`: the audience VAPID tokens must name.
    origin: String,
    /// The app's VAPID public key as configured, which `k=` must repeat.
    vapid_key: String,
    decoding_key: DecodingKey,
    state: Mutex<WebPushState>,
    changed: Notify,
}

#[derive(Default)]
struct WebPushState {
    subscribers: HashMap<String, Subscriber>,
    errors: Vec<String>,
}

struct Subscriber {
    secret: SecretKey,
    auth: web_push_native::Auth,
    /// Scripted answers, `(status, Retry-After)`, used up in order; then 201 Created.
    answers: VecDeque<(u16, Option<u32>)>,
    attempts: usize,
    delivered: Vec<WebPush>,
}

impl WebPushState {
    #[track_caller]
    fn subscriber(&self, subscription: &WebSubscription) -> &Subscriber {
        self.subscribers
            .get(&subscription.id)
            .unwrap_or_else(|| panic!("{} is not a subscription of this push service", subscription.endpoint))
    }
}

impl WebPushService {
    /// Starts a push service that accepts pushes signed for `vapid_public_key`: the base64url
    /// (unpadded) uncompressed SEC1 P-256 public key the app publishes.
    pub async fn start(vapid_public_key: &str) -> WebPushService {
        let point = base64url_decode(vapid_public_key).unwrap_or_else(|error| panic!("the VAPID public key: {error}"));
        assert!(
            point.len() == 65 && point[0] == 0x04,
            "the VAPID public key is not an uncompressed P-256 point (65 bytes from 0x04): {} bytes",
            point.len()
        );
        assert!(
            PublicKey::from_sec1_bytes(&point).is_ok(),
            "the VAPID public key is not a point of P-256"
        );
        let decoding_key = DecodingKey::from_ec_components(&base64url(&point[1..33]), &base64url(&point[33..]))
            .expect("a P-256 point makes an ES256 key");
        let (listener, origin) = bind_loopback();
        let shared = Arc::new(WebPushShared {
            origin,
            vapid_key: vapid_public_key.to_string(),
            decoding_key,
            state: Mutex::default(),
            changed: Notify::new(),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .service(web::resource("/push/{id}").route(web::post().to(receive_push)))
                .default_service(web::to(unexpected::<WebPushShared>))
        })
        .workers(1)
        .listen(listener)
        .expect("the fake push service listens")
        .disable_signals()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        WebPushService { shared, handle }
    }

    /// A new subscription, as a browser makes one: a fresh P-256 key pair and auth secret, and
    /// an endpoint of its own on this service.
    pub fn subscribe(&self) -> WebSubscription {
        let secret = random_secret_key();
        let auth = random_bytes::<16>();
        let id = random_hex::<16>();
        let subscription = WebSubscription {
            endpoint: format!("{}/push/{id}", self.shared.origin),
            p256dh: base64url(secret.public_key().to_encoded_point(false).as_bytes()),
            auth: base64url(&auth),
            id: id.clone(),
        };
        let subscriber = Subscriber {
            secret,
            auth: auth.into(),
            answers: VecDeque::new(),
            attempts: 0,
            delivered: Vec::new(),
        };
        lock(&self.shared.state).subscribers.insert(id, subscriber);
        subscription
    }

    /// The next requests to `subscription`'s endpoint get these `(status, Retry-After seconds)`
    /// answers, in order; after them, 201 Created. A request answered with a non-2xx status
    /// counts as an attempt, not as a delivered push.
    pub fn respond(&self, subscription: &WebSubscription, statuses: &[(u16, Option<u32>)]) {
        for (status, _) in statuses {
            assert!(StatusCode::from_u16(*status).is_ok(), "{status} is not an HTTP status");
        }
        lock(&self.shared.state)
            .subscribers
            .get_mut(&subscription.id)
            .unwrap_or_else(|| panic!("{} is not a subscription of this push service", subscription.endpoint))
            .answers
            .extend(statuses.iter().copied());
    }

    /// Every push delivered to `subscription` so far, once there are at least `count`. Fails
    /// the test after `within`, or as soon as the service has refused a request.
    pub async fn wait_for(&self, subscription: &WebSubscription, count: usize, within: Duration) -> Vec<WebPush> {
        let shared = &self.shared;
        wait_until(&shared.changed, within, || {
            let state = lock(&shared.state);
            if !state.errors.is_empty() {
                return Waiting::Refused(refusals("push service", &state.errors));
            }
            let subscriber = state.subscriber(subscription);
            if subscriber.delivered.len() >= count {
                Waiting::Done(subscriber.delivered.clone())
            } else {
                Waiting::NotYet(format!(
                    "{} of {count} pushes delivered to {} ({} requests reached it)",
                    subscriber.delivered.len(),
                    subscription.endpoint,
                    subscriber.attempts
                ))
            }
        })
        .await
    }

    /// The pushes delivered (answered 2xx) to `subscription` so far.
    pub fn delivered(&self, subscription: &WebSubscription) -> Vec<WebPush> {
        lock(&self.shared.state).subscriber(subscription).delivered.clone()
    }

    /// Every request that reached `subscription`'s endpoint, whatever the answer.
    pub fn attempts(&self, subscription: &WebSubscription) -> usize {
        lock(&self.shared.state).subscriber(subscription).attempts
    }

    /// The refused requests so far, forgotten: for tests that send bad ones on purpose.
    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut lock(&self.shared.state).errors)
    }

    /// Fails the test, listing them, if the service has refused any request.
    #[track_caller]
    pub fn assert_clean(&self) {
        let state = lock(&self.shared.state);
        assert!(state.errors.is_empty(), "{}", refusals("push service", &state.errors));
    }
}

impl Drop for WebPushService {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
    }
}

/// `POST /push/{id}`: checks the request as a push service does, then answers as scripted.
async fn receive_push(
    shared: web::Data<WebPushShared>,
    request: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let keys = {
        let mut state = lock(&shared.state);
        state.subscribers.get_mut(id.as_str()).map(|subscriber| {
            subscriber.attempts += 1;
            (subscriber.secret.clone(), subscriber.auth)
        })
    };
    let verified = match &keys {
        Some((secret, auth)) => verify_push(&shared, &request, &body, secret, auth),
        None => Err("no such subscription".to_string()),
    };
    let push = match verified {
        Ok(push) => push,
        Err(error) => {
            shared.refuse(format!("POST {}: {error}", request.path()));
            return HttpResponse::BadRequest().body(error);
        }
    };
    let mut state = lock(&shared.state);
    let subscriber = state.subscribers.get_mut(id.as_str()).expect("subscriptions stay");
    let (status, retry_after) = subscriber.answers.pop_front().unwrap_or((201, None));
    let status = StatusCode::from_u16(status).expect("scripted statuses are checked");
    if status.is_success() {
        subscriber.delivered.push(push);
    }
    drop(state);
    shared.changed.notify_waiters();
    let mut response = HttpResponse::build(status);
    if let Some(seconds) = retry_after {
        response.insert_header(("Retry-After", seconds.to_string()));
    }
    if status == StatusCode::CREATED {
        // RFC 8030 section 5: the push message resource.
        response.insert_header(("Location", format!("{}/message/{}", shared.origin, random_hex::<8>())));
    }
    response.finish()
}

/// The push in `request`, or why a push service would refuse it.
fn verify_push(
    shared: &WebPushShared,
    request: &HttpRequest,
    body: &[u8],
    secret: &SecretKey,
    auth: &web_push_native::Auth,
) -> Result<WebPush, String> {
    match header(request, "content-encoding")?.as_deref() {
        Some("aes128gcm") => {}
        other => return Err(format!("Content-Encoding is {other:?}, not \"aes128gcm\" (RFC 8291)")),
    }
    let ttl = header(request, "ttl")?.ok_or("no TTL header (RFC 8030 section 5.2)")?;
    let ttl = ttl
        .parse::<u64>()
        .map_err(|_| format!("TTL {ttl:?} is not a non-negative integer (RFC 8030 section 5.2)"))?;
    let urgency = header(request, "urgency")?;
    if let Some(urgency) = &urgency
        && !["very-low", "low", "normal", "high"].contains(&urgency.as_str())
    {
        return Err(format!(
            "Urgency {urgency:?} is not very-low, low, normal or high (RFC 8030 section 5.3)"
        ));
    }
    let topic = header(request, "topic")?;
    if let Some(topic) = &topic
        && (topic.is_empty()
            || topic.len() > 32
            || !topic
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'))
    {
        return Err(format!(
            "Topic {topic:?} is not 1 to 32 characters of the URL-safe base64 alphabet (RFC 8030 section 5.4)"
        ));
    }
    verify_vapid(shared, request)?;
    if body.len() > MAX_PUSH_BODY {
        return Err(format!(
            "the body is {} bytes; push services take at most {MAX_PUSH_BODY}",
            body.len()
        ));
    }
    let plain = web_push_native::decrypt(body.to_vec(), secret, auth)
        .map_err(|error| format!("the body does not decrypt for the subscription (RFC 8291): {error}"))?;
    let payload = serde_json::from_slice(&plain).map_err(|error| {
        format!(
            "the decrypted payload is not JSON ({error}): {:?}",
            String::from_utf8_lossy(&plain)
        )
    })?;
    Ok(WebPush {
        payload,
        ttl,
        urgency,
        topic,
        at: Instant::now(),
    })
}

/// The claims of a VAPID token (RFC 8292 section 2).
#[derive(Deserialize)]
struct VapidClaims {
    aud: String,
    exp: u64,
    sub: String,
}

/// Checks `Authorization: vapid t=<jwt>, k=<key>` (RFC 8292 section 3).
fn verify_vapid(shared: &WebPushShared, request: &HttpRequest) -> Result<(), String> {
    let authorization = header(request, "authorization")?.ok_or("no Authorization header (VAPID, RFC 8292)")?;
    let (token, key) = vapid_parameters(&authorization)?;
    if key != shared.vapid_key {
        return Err(format!(
            "VAPID k= is {key:?}, not the app's public key {:?}",
            shared.vapid_key
        ));
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[&shared.origin]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<VapidClaims>(token, &shared.decoding_key, &validation)
        .map_err(|error| format!("the VAPID JWT does not verify as ES256 for the app's key: {error}"))?
        .claims;
    if claims.aud != shared.origin {
        return Err(format!("VAPID aud is {:?}, not {:?}", claims.aud, shared.origin));
    }
    let now = jsonwebtoken::get_current_timestamp();
    if claims.exp > now + MAX_VAPID_LIFETIME {
        return Err(format!(
            "VAPID exp is {} s from now; at most 24 hours are allowed (RFC 8292 section 2)",
            claims.exp - now
        ));
    }
    if !(claims.sub.starts_with("mailto:") || claims.sub.starts_with("https:")) {
        return Err(format!(
            "VAPID sub {:?} is neither a mailto: nor an https: URI (RFC 8292 section 2.1)",
            claims.sub
        ));
    }
    Ok(())
}

/// `t` and `k` of a `vapid` Authorization header.
fn vapid_parameters(authorization: &str) -> Result<(&str, &str), String> {
    let malformed = || format!("Authorization {authorization:?} is not `vapid t=<jwt>, k=<key>` (RFC 8292)");
    let (scheme, parameters) = authorization.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(format!("the Authorization scheme is {scheme:?}, not vapid (RFC 8292)"));
    }
    let (mut token, mut key) = (None, None);
    for parameter in parameters.split(',') {
        let (name, value) = parameter.trim().split_once('=').ok_or_else(malformed)?;
        let slot = match name.trim() {
            "t" => &mut token,
            "k" => &mut key,
            _ => return Err(malformed()),
        };
        if slot.replace(value.trim()).is_some() {
            return Err(malformed());
        }
    }
    Ok((token.ok_or_else(malformed)?, key.ok_or_else(malformed)?))
}

// ---- FCM ---------------------------------------------------------------------------------

/// FCM HTTP v1 (`messages:send`) and Google's OAuth2 token endpoint on loopback, with a
/// service-account file that points the app at them.
pub struct FcmService {
    shared: Arc<FcmShared>,
    handle: ServerHandle,
    api_base: String,
    folder: PathBuf,
}

/// A scripted FCM failure for one device token.
#[derive(Clone, Debug)]
pub enum FcmAnswer {
    /// 404 NOT_FOUND with errorCode UNREGISTERED: the app must forget the token.
    Unregistered,
    /// 503 UNAVAILABLE, with this Retry-After (seconds) if any: the app may retry later.
    Unavailable(Option<u32>),
}

/// A message FCM accepted (answered 200): the `message` object of the request.
#[derive(Clone, Debug)]
pub struct FcmMessage {
    pub message: Value,
    pub at: Instant,
}

struct FcmShared {
    token_uri: String,
    private_key_id: String,
    decoding_key: DecodingKey,
    state: Mutex<FcmState>,
    changed: Notify,
}

#[derive(Default)]
struct FcmState {
    access_tokens: HashSet<String>,
    answers: HashMap<String, VecDeque<FcmAnswer>>,
    attempts: HashMap<String, usize>,
    delivered: HashMap<String, Vec<FcmMessage>>,
    errors: Vec<String>,
}

impl FcmService {
    /// Starts the fake with a fresh RSA key (made by the `openssl` command) and writes its
    /// service-account file into a fresh folder, removed when the service is dropped.
    pub async fn start() -> FcmService {
        let (private_pem, public_pem) = tokio::task::spawn_blocking(generate_rsa_key)
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        let (listener, api_base) = bind_loopback();
        let token_uri = format!("{api_base}/token");
        let private_key_id = random_hex::<20>();
        let folder = std::env::temp_dir().join(format!("chat-api-fcm-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&folder).expect("a temp folder for the service account");
        let account = json!({
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": private_key_id,
            "private_key": private_pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "1",
            "token_uri": token_uri,
        });
        std::fs::write(
            folder.join("service-account.json"),
            serde_json::to_vec_pretty(&account).expect("JSON"),
        )
        .expect("the service-account file is written");
        let shared = Arc::new(FcmShared {
            token_uri,
            private_key_id,
            decoding_key: DecodingKey::from_rsa_pem(public_pem.as_bytes()).expect("openssl's public key is an RSA PEM"),
            state: Mutex::default(),
            changed: Notify::new(),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .service(web::resource("/token").route(web::post().to(issue_token)))
                .service(web::resource("/v1/projects/{project}/messages:send").route(web::post().to(send_message)))
                .default_service(web::to(unexpected::<FcmShared>))
        })
        .workers(1)
        .listen(listener)
        .expect("the fake FCM listens")
        .disable_signals()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        FcmService {
            shared,
            handle,
            api_base,
            folder,
        }
    }

    /// The Google service-account JSON file for the app (its `token_uri` is this service).
    pub fn service_account_file(&self) -> String {
        self.folder.join("service-account.json").display().to_string()
    }

    /// `http://127.0.0.1:<port>`, in place of `https://fcm.googleapis.com`.
    pub fn api_base(&self) -> String {
        self.api_base.clone()
    }

    /// How many access tokens the token endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.shared.state).access_tokens.len()
    }

    /// The next sends to `device_token` get these failures, in order; after them, 200.
    pub fn respond(&self, device_token: &str, answers: &[FcmAnswer]) {
        lock(&self.shared.state)
            .answers
            .entry(device_token.to_string())
            .or_default()
            .extend(answers.iter().cloned());
    }

    /// Every message delivered to `device_token` so far, once there are at least `count`.
    /// Fails the test after `within`, or as soon as the service has refused a request.
    pub async fn wait_for(&self, device_token: &str, count: usize, within: Duration) -> Vec<FcmMessage> {
        let shared = &self.shared;
        wait_until(&shared.changed, within, || {
            let state = lock(&shared.state);
            if !state.errors.is_empty() {
                return Waiting::Refused(refusals("FCM", &state.errors));
            }
            let delivered = state.delivered.get(device_token).cloned().unwrap_or_default();
            if delivered.len() >= count {
                Waiting::Done(delivered)
            } else {
                Waiting::NotYet(format!(
                    "{} of {count} messages delivered to device {device_token:?} ({} sends reached FCM for it)",
                    delivered.len(),
                    state.attempts.get(device_token).copied().unwrap_or_default()
                ))
            }
        })
        .await
    }

    /// The messages delivered (answered 200) to `device_token` so far.
    pub fn delivered(&self, device_token: &str) -> Vec<FcmMessage> {
        lock(&self.shared.state)
            .delivered
            .get(device_token)
            .cloned()
            .unwrap_or_default()
    }

    /// Every send for `device_token` that reached FCM, whatever the answer.
    pub fn attempts(&self, device_token: &str) -> usize {
        lock(&self.shared.state)
            .attempts
            .get(device_token)
            .copied()
            .unwrap_or_default()
    }

    /// The refused requests so far, forgotten: for tests that send bad ones on purpose.
    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut lock(&self.shared.state).errors)
    }

    /// Fails the test, listing them, if the service has refused any request.
    #[track_caller]
    pub fn assert_clean(&self) {
        let state = lock(&self.shared.state);
        assert!(state.errors.is_empty(), "{}", refusals("FCM", &state.errors));
    }
}

impl Drop for FcmService {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// A fresh RSA-2048 key from the `openssl` command: the private key as a PKCS#8 PEM (what
/// Google puts in service-account files) and the public key as an SPKI PEM.
fn generate_rsa_key() -> (String, String) {
    let private = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .expect("the FCM tests need the openssl command");
    assert!(
        private.status.success(),
        "openssl genpkey failed: {}",
        String::from_utf8_lossy(&private.stderr)
    );
    let mut public = Command::new("openssl")
        .args(["pkey", "-pubout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the FCM tests need the openssl command");
    public
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(&private.stdout)
        .expect("openssl pkey reads the key");
    let public = public.wait_with_output().expect("openssl pkey runs");
    assert!(
        public.status.success(),
        "openssl pkey -pubout failed: {}",
        String::from_utf8_lossy(&public.stderr)
    );
    (
        String::from_utf8(private.stdout).expect("a PEM is text"),
        String::from_utf8(public.stdout).expect("a PEM is text"),
    )
}

/// The claims of a service account's token request (Google's JWT bearer grant, RFC 7523).
#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    scope: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// `POST /token`: swaps a signed assertion for an access token, as Google's endpoint does.
async fn issue_token(shared: web::Data<FcmShared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(error) = check_token_request(&shared, &request, &body) {
        shared.refuse(format!("POST /token: {error}"));
        return HttpResponse::BadRequest().json(json!({ "error": "invalid_grant", "error_description": error }));
    }
    let token = format!("ya29.test-{}", random_hex::<24>());
    lock(&shared.state).access_tokens.insert(token.clone());
    shared.changed.notify_waiters();
    HttpResponse::Ok().json(json!({ "access_token": token, "expires_in": 3600, "token_type": "Bearer" }))
}

fn check_token_request(shared: &FcmShared, request: &HttpRequest, body: &[u8]) -> Result<(), String> {
    let content_type = header(request, "content-type")?.unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(format!(
            "Content-Type is {content_type:?}, not application/x-www-form-urlencoded"
        ));
    }
    let form = parse_form(body)?;
    let grant_type = form.get("grant_type").map(String::as_str);
    if grant_type != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return Err(format!(
            "grant_type is {grant_type:?}, not urn:ietf:params:oauth:grant-type:jwt-bearer"
        ));
    }
    let assertion = form.get("assertion").ok_or("no assertion in the form")?;
    let jwt_header =
        jsonwebtoken::decode_header(assertion).map_err(|error| format!("the assertion is not a JWT: {error}"))?;
    if jwt_header.kid.as_deref() != Some(shared.private_key_id.as_str()) {
        return Err(format!(
            "the assertion's kid is {:?}, not the private_key_id {:?}",
            jwt_header.kid, shared.private_key_id
        ));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&shared.token_uri]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    validation.set_required_spec_claims(&["exp", "aud", "iss"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &shared.decoding_key, &validation)
        .map_err(|error| format!("the assertion does not verify as RS256 for the service account's key: {error}"))?
        .claims;
    if claims.iss != CLIENT_EMAIL || claims.aud != shared.token_uri {
        return Err(format!(
            "the assertion is from {:?} to {:?}, not from {CLIENT_EMAIL:?} to {:?}",
            claims.iss, claims.aud, shared.token_uri
        ));
    }
    if !claims.scope.split(' ').any(|scope| scope == FCM_SCOPE) {
        return Err(format!("the assertion's scope {:?} lacks {FCM_SCOPE}", claims.scope));
    }
    if claims.exp <= claims.iat || claims.exp - claims.iat > MAX_ASSERTION_LIFETIME {
        return Err(format!(
            "the assertion runs from iat {} to exp {}: Google takes at most {MAX_ASSERTION_LIFETIME} s",
            claims.iat, claims.exp
        ));
    }
    let now = jsonwebtoken::get_current_timestamp();
    if claims.iat > now + 60 {
        return Err(format!("the assertion's iat is {} s in the future", claims.iat - now));
    }
    Ok(())
}

/// `POST /v1/projects/{project}/messages:send`: checks the message as FCM does, then answers
/// as scripted for its device token.
async fn send_message(
    shared: web::Data<FcmShared>,
    request: HttpRequest,
    project: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let where_ = format!("POST {}", request.path());
    let parsed = serde_json::from_slice::<Value>(&body);
    let device = parsed
        .as_ref()
        .ok()
        .and_then(|body| body["message"]["token"].as_str())
        .map(str::to_string);
    if let Some(device) = &device {
        *lock(&shared.state).attempts.entry(device.clone()).or_default() += 1;
    }
    if project.as_str() != PROJECT_ID {
        let error = format!(
            "project {:?} is not the service account's {PROJECT_ID:?}",
            project.as_str()
        );
        shared.refuse(format!("{where_}: {error}"));
        return fcm_error(404, "NOT_FOUND", &error, None, None);
    }
    if let Err(error) = check_bearer(&shared, &request) {
        shared.refuse(format!("{where_}: {error}"));
        return fcm_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            None,
            None,
        );
    }
    let checked = parsed
        .map_err(|error| format!("the body is not JSON: {error}"))
        .and_then(|body| check_send_body(&request, body));
    let (device, message) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            shared.refuse(format!("{where_}: {error}"));
            return fcm_error(400, "INVALID_ARGUMENT", &error, Some("INVALID_ARGUMENT"), None);
        }
    };
    let mut state = lock(&shared.state);
    let answer = state.answers.get_mut(&device).and_then(VecDeque::pop_front);
    let response = match answer {
        Some(FcmAnswer::Unregistered) => fcm_error(
            404,
            "NOT_FOUND",
            "Requested entity was not found.",
            Some("UNREGISTERED"),
            None,
        ),
        Some(FcmAnswer::Unavailable(retry_after)) => fcm_error(
            503,
            "UNAVAILABLE",
            "The service is currently unavailable.",
            Some("UNAVAILABLE"),
            retry_after,
        ),
        None => {
            state.delivered.entry(device).or_default().push(FcmMessage {
                message,
                at: Instant::now(),
            });
            HttpResponse::Ok().json(json!({ "name": format!("projects/{PROJECT_ID}/messages/{}", random_hex::<8>()) }))
        }
    };
    drop(state);
    shared.changed.notify_waiters();
    response
}

/// A Google API error response: `code` and `status`, with FCM's `errorCode` detail if any
/// and a Retry-After (seconds) if any.
fn fcm_error(
    code: u16,
    status: &str,
    message: &str,
    error_code: Option<&str>,
    retry_after: Option<u32>,
) -> HttpResponse {
    let mut error = json!({ "code": code, "message": message, "status": status });
    if let Some(error_code) = error_code {
        error["details"] = json!([{
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": error_code,
        }]);
    }
    let mut response = HttpResponse::build(StatusCode::from_u16(code).expect("a valid status"));
    if let Some(seconds) = retry_after {
        response.insert_header(("Retry-After", seconds.to_string()));
    }
    response.json(json!({ "error": error }))
}

/// Checks `Authorization: Bearer <token>` against the tokens this service issued.
fn check_bearer(shared: &FcmShared, request: &HttpRequest) -> Result<(), String> {
    let authorization = header(request, "authorization")?.ok_or("no Authorization header")?;
    let token = authorization
        .strip_prefix("Bearer ")
        .ok_or_else(|| format!("Authorization {authorization:?} is not `Bearer <access token>`"))?;
    if lock(&shared.state).access_tokens.contains(token) {
        Ok(())
    } else {
        Err(format!("Bearer {token:?} is not an access token this service issued"))
    }
}

/// The fields FCM HTTP v1 knows in a `message` (anything else is a 400 there).
const MESSAGE_FIELDS: &[&str] = &[
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "token",
    "topic",
    "condition",
];
const NOTIFICATION_FIELDS: &[&str] = &["title", "body", "image"];
const ANDROID_FIELDS: &[&str] = &[
    "collapse_key",
    "priority",
    "ttl",
    "restricted_package_name",
    "data",
    "notification",
    "fcm_options",
    "direct_boot_ok",
];
const APNS_FIELDS: &[&str] = &["headers", "payload", "fcm_options", "live_activity_token"];

/// The device token and `message` of a send request, or why FCM would refuse it.
fn check_send_body(request: &HttpRequest, body: Value) -> Result<(String, Value), String> {
    let content_type = header(request, "content-type")?.unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return Err(format!("Content-Type is {content_type:?}, not application/json"));
    }
    let mut body = match body {
        Value::Object(body) => body,
        other => return Err(format!("the body is not a JSON object: {other}")),
    };
    if let Some(unknown) = body.keys().find(|key| key.as_str() != "message") {
        return Err(format!("unknown field {unknown:?} beside \"message\""));
    }
    let message = body.remove("message").ok_or("no \"message\"")?;
    let fields = object(&message, "message")?;
    known_fields(fields, "message", MESSAGE_FIELDS)?;
    if fields.contains_key("topic") || fields.contains_key("condition") {
        return Err("this fake FCM knows only token targets, not topic or condition".to_string());
    }
    let device = match fields.get("token") {
        Some(Value::String(token)) if !token.is_empty() => token.clone(),
        other => return Err(format!("message.token is {other:?}, not a device token")),
    };
    if let Some(notification) = fields.get("notification") {
        let notification = object(notification, "message.notification")?;
        known_fields(notification, "message.notification", NOTIFICATION_FIELDS)?;
        strings(notification, "message.notification")?;
    }
    if let Some(data) = fields.get("data") {
        check_data(data, "message.data")?;
    }
    if let Some(android) = fields.get("android") {
        let android = object(android, "message.android")?;
        known_fields(android, "message.android", ANDROID_FIELDS)?;
        if let Some(priority) = android.get("priority")
            && !priority
                .as_str()
                .is_some_and(|text| text.eq_ignore_ascii_case("normal") || text.eq_ignore_ascii_case("high"))
        {
            return Err(format!(
                "message.android.priority is {priority}, not \"normal\" or \"high\""
            ));
        }
        if let Some(ttl) = android.get("ttl")
            && !ttl.as_str().is_some_and(is_duration)
        {
            return Err(format!(
                "message.android.ttl is {ttl}, not a duration string such as \"3600s\""
            ));
        }
        if let Some(data) = android.get("data") {
            check_data(data, "message.android.data")?;
        }
        if let Some(notification) = android.get("notification") {
            object(notification, "message.android.notification")?;
        }
    }
    if let Some(apns) = fields.get("apns") {
        let apns = object(apns, "message.apns")?;
        known_fields(apns, "message.apns", APNS_FIELDS)?;
        if let Some(headers) = apns.get("headers") {
            strings(object(headers, "message.apns.headers")?, "message.apns.headers")?;
        }
        if let Some(payload) = apns.get("payload") {
            let payload = object(payload, "message.apns.payload")?;
            if let Some(aps) = payload.get("aps") {
                object(aps, "message.apns.payload.aps")?;
            }
        }
    }
    Ok((device, message))
}

/// `data` maps take strings only, and not Google's reserved keys.
fn check_data(data: &Value, path: &str) -> Result<(), String> {
    let data = object(data, path)?;
    strings(data, path)?;
    if let Some(reserved) = data.keys().find(|key| {
        ["from", "message_type"].contains(&key.as_str()) || key.starts_with("google.") || key.starts_with("gcm.")
    }) {
        return Err(format!("{path} uses the reserved key {reserved:?}"));
    }
    Ok(())
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{path} is {value}, not an object"))
}

fn known_fields(fields: &Map<String, Value>, path: &str, known: &[&str]) -> Result<(), String> {
    match fields.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(format!("{path} has the unknown field {unknown:?}")),
        None => Ok(()),
    }
}

fn strings(fields: &Map<String, Value>, path: &str) -> Result<(), String> {
    match fields.iter().find(|(_, value)| !value.is_string()) {
        Some((key, value)) => Err(format!("{path}.{key} is {value}: FCM takes only strings there")),
        None => Ok(()),
    }
}

/// A protobuf `Duration` in JSON: seconds with up to nine decimals, then `s` ("3600s", "1.5s").
fn is_duration(text: &str) -> bool {
    let Some(number) = text.strip_suffix('s') else {
        return false;
    };
    let (seconds, fraction) = number.split_once('.').unwrap_or((number, "0"));
    !seconds.is_empty()
        && seconds.bytes().all(|byte| byte.is_ascii_digit())
        && (1..=9).contains(&fraction.len())
        && fraction.bytes().all(|byte| byte.is_ascii_digit())
}

/// An `application/x-www-form-urlencoded` body as its fields (each name once).
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the form is not UTF-8")?;
    let mut fields = HashMap::new();
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("form field {pair:?} has no '='"))?;
        let name = form_decode(name)?;
        if fields.insert(name.clone(), form_decode(value)?).is_some() {
            return Err(format!("form field {name:?} is given twice"));
        }
    }
    Ok(fields)
}

/// One form-encoded name or value: `+` is a space, `%XX` a byte.
fn form_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let escape = bytes
                    .get(index + 1..index + 3)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .ok_or_else(|| format!("{text:?} has a broken %-escape"))?;
                let hex = std::str::from_utf8(escape).expect("hex digits are ASCII");
                decoded.push(u8::from_str_radix(hex, 16).expect("two hex digits are a byte"));
                index += 2;
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8(decoded).map_err(|_| format!("{text:?} does not decode to UTF-8"))
}

// ---- shared by both peers ----------------------------------------------------------------

/// What the handlers of every peer can do: refuse a request, recording why.
trait Peer: Send + Sync + 'static {
    fn refuse(&self, error: String);
}

impl Peer for WebPushShared {
    fn refuse(&self, error: String) {
        lock(&self.state).errors.push(error);
        self.changed.notify_waiters();
    }
}

impl Peer for FcmShared {
    fn refuse(&self, error: String) {
        lock(&self.state).errors.push(error);
        self.changed.notify_waiters();
    }
}

/// Any request no route takes: the app is calling something the real peer does not have.
async fn unexpected<P: Peer>(peer: web::Data<P>, request: HttpRequest) -> HttpResponse {
    peer.refuse(format!("unexpected request: {} {}", request.method(), request.uri()));
    HttpResponse::NotFound().finish()
}

/// A listener on a free loopback port, and its `http://127.0.0.1:<port>`.
fn bind_loopback() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port is free");
    let port = listener.local_addr().expect("a bound listener has an address").port();
    (listener, format!("http://127.0.0.1:{port}"))
}

/// A peer's state. A test that failed while holding the lock has failed already; the others
/// may still read it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a wait stands: done, not yet (and what has been seen), or failed at once.
enum Waiting<T> {
    Done(T),
    NotYet(String),
    Refused(String),
}

/// Runs `check` each time the peer records something until it is done; fails the test when
/// it is refused, or after `within` with what was seen last.
async fn wait_until<T>(changed: &Notify, within: Duration, mut check: impl FnMut() -> Waiting<T>) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        // Registered before the check, so a change between the check and the wait still wakes it.
        let mut notified = std::pin::pin!(changed.notified());
        notified.as_mut().enable();
        let seen = match check() {
            Waiting::Done(value) => return value,
            Waiting::Refused(why) => panic!("{why}"),
            Waiting::NotYet(seen) => seen,
        };
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            panic!("still waiting after {within:?}: {seen}");
        }
    }
}

/// The panic message listing a peer's refused requests.
fn refusals(peer: &str, errors: &[String]) -> String {
    format!(
        "the fake {peer} refused {} request(s):\n  - {}",
        errors.len(),
        errors.join("\n  - ")
    )
}

/// The one value of header `name`, if any, as text.
fn header(request: &HttpRequest, name: &str) -> Result<Option<String>, String> {
    let mut values = request.headers().get_all(name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("more than one {name} header"));
    }
    value
        .to_str()
        .map(|text| Some(text.to_string()))
        .map_err(|_| format!("the {name} header is not visible ASCII"))
}

/// A fresh P-256 key. Almost any 32 random bytes are one; zero or more than the group order
/// (about 2^-32 of draws) are drawn again.
fn random_secret_key() -> SecretKey {
    loop {
        if let Ok(key) = SecretKey::from_slice(&random_bytes::<32>()) {
            return key;
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).expect("the OS gives random bytes");
    bytes
}

/// `N` random bytes in hex.
fn random_hex<const N: usize>() -> String {
    let mut hex = String::with_capacity(2 * N);
    for byte in random_bytes::<N>() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn base64url_decode(text: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|error| format!("{text:?} is not unpadded base64url: {error}"))
}

/// `scheme://host:port` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |index| index + 3);
    url[after_scheme..]
        .find('/')
        .map_or(url, |index| &url[..after_scheme + index])
}

/// The peers check what a correct sender sends and refuse what a real peer would refuse.
mod self_check {
    use std::time::{Duration, Instant};

    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use reqwest::StatusCode;
    use serde_json::{Value, json};
    use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use web_push_native::p256::pkcs8::EncodePrivateKey as _;
    use web_push_native::p256::{PublicKey, SecretKey};

    use super::{
        FcmAnswer, FcmService, WebPushService, WebSubscription, base64url, base64url_decode, origin_of,
        random_secret_key,
    };

    /// A push as a correct sender makes it (RFC 8291 encryption, RFC 8292 VAPID), signed with
    /// `signer` and naming `vapid_public` as its key.
    fn push_request(
        client: &reqwest::Client,
        subscription: &WebSubscription,
        signer: &SecretKey,
        vapid_public: &str,
        payload: &Value,
    ) -> reqwest::RequestBuilder {
        let user_agent_key = PublicKey::from_sec1_bytes(&base64url_decode(&subscription.p256dh).unwrap()).unwrap();
        let auth: [u8; 16] = base64url_decode(&subscription.auth).unwrap().try_into().unwrap();
        let auth: web_push_native::Auth = auth.into();
        let body = web_push_native::encrypt(serde_json::to_vec(payload).unwrap(), &user_agent_key, &auth).unwrap();
        let claims = json!({
            "aud": origin_of(&subscription.endpoint),
            "exp": jsonwebtoken::get_current_timestamp() + 12 * 3600,
            "sub": "mailto:push@example.com",
        });
        let key = EncodingKey::from_ec_der(signer.to_pkcs8_der().unwrap().as_bytes());
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap();
        client
            .post(&subscription.endpoint)
            .header("TTL", "60")
            .header("Content-Encoding", "aes128gcm")
            .header("Urgency", "high")
            .header("Topic", "conversation-c1")
            .header("Authorization", format!("vapid t={jwt}, k={vapid_public}"))
            .body(body)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_web_push_service_verifies_vapid_and_decrypts() {
        let vapid = random_secret_key();
        let vapid_public = base64url(vapid.public_key().to_encoded_point(false).as_bytes());
        let service = WebPushService::start(&vapid_public).await;
        let subscription = service.subscribe();
        let client = reqwest::Client::new();
        let payload = json!({ "type": "message", "conversation": "c1", "text": "hello" });

        service.respond(&subscription, &[(429, Some(7))]);
        let throttled = push_request(&client, &subscription, &vapid, &vapid_public, &payload)
            .send()
            .await
            .unwrap();
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(throttled.headers()["retry-after"], "7");
        assert_eq!(service.attempts(&subscription), 1);
        assert!(service.delivered(&subscription).is_empty());

        let accepted = push_request(&client, &subscription, &vapid, &vapid_public, &payload)
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), StatusCode::CREATED);
        let pushes = service.wait_for(&subscription, 1, Duration::from_secs(5)).await;
        assert_eq!(pushes.len(), 1);
        assert_eq!(pushes[0].payload, payload);
        assert_eq!(pushes[0].ttl, 60);
        assert_eq!(pushes[0].urgency.as_deref(), Some("high"));
        assert_eq!(pushes[0].topic.as_deref(), Some("conversation-c1"));
        assert!(pushes[0].at <= Instant::now());

        // Signed by another key, though it names the app's: refused, and recorded.
        let forger = random_secret_key();
        let forged = push_request(&client, &subscription, &forger, &vapid_public, &payload)
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
        let errors = service.take_errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("VAPID JWT does not verify"), "{errors:?}");
        assert_eq!(service.attempts(&subscription), 3);
        assert_eq!(service.delivered(&subscription).len(), 1);
        service.assert_clean();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fcm_service_checks_its_tokens_and_messages() {
        let fcm = FcmService::start().await;
        let account: Value = serde_json::from_slice(&std::fs::read(fcm.service_account_file()).unwrap()).unwrap();
        let token_uri = account["token_uri"].as_str().unwrap();
        let client = reqwest::Client::new();

        let now = jsonwebtoken::get_current_timestamp();
        let header = Header {
            kid: Some(account["private_key_id"].as_str().unwrap().to_string()),
            ..Header::new(Algorithm::RS256)
        };
        let claims = json!({
            "iss": account["client_email"],
            "scope": "https://www.googleapis.com/auth/firebase.messaging",
            "aud": token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let key = EncodingKey::from_rsa_pem(account["private_key"].as_str().unwrap().as_bytes()).unwrap();
        let assertion = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        let granted = client
            .post(token_uri)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(granted.status(), StatusCode::OK);
        let granted: Value = granted.json().await.unwrap();
        let access_token = granted["access_token"].as_str().unwrap().to_string();
        assert_eq!(granted["expires_in"], 3600);
        assert_eq!(fcm.tokens_issued(), 1);

        let send_url = format!("{}/v1/projects/chat-test/messages:send", fcm.api_base());
        let send = |message: Value, bearer: &str| {
            client
                .post(send_url.as_str())
                .bearer_auth(bearer)
                .json(&json!({ "message": message }))
                .send()
        };
        let message = json!({
            "token": "device-1",
            "notification": { "title": "Ann", "body": "hello" },
            "data": { "conversation": "c1" },
            "android": { "priority": "high", "ttl": "3600s" },
            "apns": { "headers": { "apns-priority": "10" }, "payload": { "aps": { "sound": "default" } } },
        });
        fcm.respond("device-1", &[FcmAnswer::Unavailable(Some(3))]);
        let unavailable = send(message.clone(), access_token.as_str()).await.unwrap();
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()["retry-after"], "3");
        let sent = send(message.clone(), access_token.as_str()).await.unwrap();
        assert_eq!(sent.status(), StatusCode::OK);
        let sent: Value = sent.json().await.unwrap();
        assert!(
            sent["name"]
                .as_str()
                .is_some_and(|name| name.starts_with("projects/chat-test/messages/")),
            "{sent}"
        );
        let messages = fcm.wait_for("device-1", 1, Duration::from_secs(5)).await;
        assert_eq!(messages[0].message, message);
        assert!(messages[0].at <= Instant::now());
        assert_eq!(fcm.attempts("device-1"), 2);
        assert_eq!(fcm.delivered("device-1").len(), 1);

        fcm.respond("device-2", &[FcmAnswer::Unregistered]);
        let gone = send(
            json!({ "token": "device-2", "data": { "a": "b" } }),
            access_token.as_str(),
        )
        .await
        .unwrap();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        let gone: Value = gone.json().await.unwrap();
        assert_eq!(gone["error"]["details"][0]["errorCode"], "UNREGISTERED", "{gone}");
        assert!(fcm.delivered("device-2").is_empty());

        // What FCM refuses is refused here, and recorded.
        let numeric = send(
            json!({ "token": "device-3", "data": { "unread": 3 } }),
            access_token.as_str(),
        )
        .await
        .unwrap();
        assert_eq!(numeric.status(), StatusCode::BAD_REQUEST);
        let stranger = send(json!({ "token": "device-3" }), "ya29.someone-else").await.unwrap();
        assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED);
        let errors = fcm.take_errors();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("message.data.unread"), "{errors:?}");
        assert!(
            errors[1].contains("not an access token this service issued"),
            "{errors:?}"
        );
        assert_eq!(fcm.attempts("device-3"), 2);
        fcm.assert_clean();
    }
}
