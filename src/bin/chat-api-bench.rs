//! chat-api-bench: starts a `chat-api` server (the release binary beside this one) on a fresh
//! SQLite file or PostgreSQL database, loads it over loopback, and prints a table:
//!
//! - throughput: messages per second persisted by N concurrent senders;
//! - latency: POST-to-SSE-receipt percentiles for M receivers at a steady send rate;
//! - memory: the server's resident memory with K idle streams open;
//! - group: the time to deliver one message to every online member of a G-member group;
//! - history: conversation list and search on a large history;
//! - flood: the latency run again while one account floods sends (rate limits at work);
//! - files: upload and download throughput against the disk itself, the server's peak memory
//!   while ten 100 MiB uploads run at once, and what a photo's thumbnail costs.
//!
//! `cargo build --release --features bench && ./target/release/chat-api-bench --help`
//! Every loop is bounded in count and time; the server and its database are removed at the end.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::Client;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::{Semaphore, mpsc};

const USAGE: &str = "usage: chat-api-bench [options]
  --backend sqlite|postgres   database of the server under test (default sqlite)
  --postgres-url URL          admin URL used to create and drop the bench database
                              (default postgres://postgres@127.0.0.1:5432/postgres)
  --only LIST                 comma-separated: throughput,latency,memory,group,history,flood,files,
                              presence,push
                              (default: all but history, which fills a large history first,
                              flood, which measures latency twice, files, which writes
                              about 1.5 GiB to the temporary folder, and presence and push,
                              which start servers of their own: presence counts a large
                              group's presence events, push times Web Push to a local push
                              service that decrypts every push)
  --senders N                 concurrent senders for throughput (default 16)
  --messages N                messages for throughput (default 10000)
  --receivers N               receivers for latency (default 100)
  --rate N                    messages per second for latency (default 1000)
  --seconds N                 duration of the latency run (default 5)
  --idle-streams N            idle streams for memory (default 10000)
  --group N                   group size for the fan-out run (default 1000)
  --history N                 conversations for the list/search run (default 1000), each with
                              1000 messages (so 1,000,000 by default), 100 of them unread
  --keep                      keep the database afterwards and print its URL (to EXPLAIN
                              queries against a filled history); drop it by hand";

#[derive(Clone, Debug)]
struct Options {
    backend: String,
    postgres_url: String,
    only: Vec<String>,
    senders: usize,
    messages: usize,
    receivers: usize,
    rate: usize,
    seconds: u64,
    idle_streams: usize,
    group: usize,
    history: usize,
    keep: bool,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            backend: "sqlite".into(),
            postgres_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            only: ["throughput", "latency", "memory", "group"].map(String::from).to_vec(),
            senders: 16,
            messages: 10_000,
            receivers: 100,
            rate: 1000,
            seconds: 5,
            idle_streams: 10_000,
            group: 1000,
            history: 1000,
            keep: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                return Err(USAGE.into());
            }
            if flag == "--keep" {
                options.keep = true;
                continue;
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let number = || value.parse::<usize>().map_err(|_| format!("{flag} takes a number"));
            match flag.as_str() {
                "--backend" if value == "sqlite" || value == "postgres" => options.backend = value.clone(),
                "--postgres-url" => options.postgres_url = value.clone(),
                "--only" => options.only = value.split(',').map(String::from).collect(),
                "--senders" => options.senders = number()?.max(1),
                "--messages" => options.messages = number()?.max(1),
                "--receivers" => options.receivers = number()?.max(1),
                "--rate" => options.rate = number()?.max(1),
                "--seconds" => options.seconds = number()?.max(1) as u64,
                "--idle-streams" => options.idle_streams = number()?,
                "--group" => options.group = number()?.max(2),
                "--history" => options.history = number()?.max(1),
                _ => return Err(format!("unknown option {flag} {value}\n{USAGE}")),
            }
        }
        options.check()
    }

    /// The flood runs alone: it needs the per-user rate limits the other scenarios turn off.
    fn check(self) -> Result<Self, String> {
        if self.runs("flood") && self.only.len() > 1 {
            return Err("run flood alone (--only flood): the other scenarios turn rate limits off".into());
        }
        Ok(self)
    }

    fn runs(&self, name: &str) -> bool {
        self.only.iter().any(|only| only == name)
    }
}

/// The server under test, in its own process so its memory can be read.
struct Server {
    child: Child,
    database_url: String,
    base: String,
    folder: std::path::PathBuf,
    postgres: Option<(String, String)>,
}

impl Server {
    async fn start(options: &Options) -> Result<Self, String> {
        Self::start_with(options, &[]).await
    }

    /// Starts the server with extra environment variables.
    async fn start_with(options: &Options, settings: &[(&str, String)]) -> Result<Self, String> {
        let binary = std::env::current_exe()
            .map_err(|error| error.to_string())?
            .with_file_name("chat-api");
        if !binary.exists() {
            return Err(format!(
                "{} not found: build it with `cargo build --release --features bench`",
                binary.display()
            ));
        }
        let folder = std::env::temp_dir().join(format!("chat-api-bench-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&folder).map_err(|error| error.to_string())?;
        let (database_url, postgres) = if options.backend == "postgres" {
            let name = format!("chat_bench_{}", uuid::Uuid::now_v7().simple());
            let mut admin = sqlx::PgConnection::connect(&options.postgres_url)
                .await
                .map_err(|error| error.to_string())?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .map_err(|error| error.to_string())?;
            let (base, _) = options
                .postgres_url
                .rsplit_once('/')
                .ok_or("--postgres-url has no database name")?;
            (format!("{base}/{name}"), Some((options.postgres_url.clone(), name)))
        } else {
            (format!("sqlite://{}", folder.join("chat.db").display()), None)
        };
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string())?;
            listener.local_addr().map_err(|error| error.to_string())?.port()
        };
        let child = Command::new(&binary)
            .env("DATABASE_URL", &database_url)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("JWT_SECRET", "bench-secret-bench-secret-bench-secret-00")
            .env("BCRYPT_COST", "4")
            // A long scenario must not outlive its access tokens.
            .env("ACCESS_TOKEN_TTL", "86400")
            .env("AUTH_RATE_LIMIT_PER_MINUTE", "0")
            // The other scenarios measure the server flat out; flood measures the limits.
            .env("RATE_LIMITS", if options.runs("flood") { "on" } else { "off" })
            .env("DATABASE_MAX_CONNECTIONS", "20")
            // Room for the files scenario's 100 MiB uploads, ten at once.
            .env("FILE_MAX_BYTES", (FILE_BENCH_BYTES + 1024 * 1024).to_string())
            .env("FILE_MAX_CONCURRENT_UPLOADS", "10")
            .env("RUST_LOG", "warn")
            .envs(settings.iter().map(|(name, value)| (*name, value.as_str())))
            .current_dir(&folder)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", binary.display()))?;
        let server = Server {
            child,
            database_url,
            base: format!("http://127.0.0.1:{port}"),
            folder,
            postgres,
        };
        let client = Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{}/ready", server.base))
                .send()
                .await
                .is_ok_and(|reply| reply.status().is_success())
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("the server did not become ready within 10 s".into())
    }

    /// Resident memory of the server process, in KiB (Linux).
    fn rss_kib(&self) -> Option<u64> {
        rss_of(self.child.id())
    }

    async fn stop(mut self, keep: bool) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if keep {
            eprintln!("kept: {}", self.database_url);
            return;
        }
        let _ = std::fs::remove_dir_all(&self.folder);
        if let Some((admin_url, name)) = self.postgres.take()
            && let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
        }
    }
}

#[derive(Clone)]
struct User {
    id: String,
    token: String,
}

struct Api {
    client: Client,
    base: String,
}

impl Api {
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Result<Value, String> {
        let mut request = self.client.post(format!("{}/api/v1{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let reply = request.send().await.map_err(|error| error.to_string())?;
        let status = reply.status();
        let body: Value = reply.json().await.map_err(|error| error.to_string())?;
        if !status.is_success() {
            return Err(format!("{path}: {status} {body}"));
        }
        Ok(body["data"].clone())
    }

    async fn register_many(&self, count: usize, prefix: &str) -> Result<Vec<User>, String> {
        let limit = Arc::new(Semaphore::new(32));
        let tasks = (0..count).map(|index| {
            let limit = limit.clone();
            async move {
                let _permit = limit.acquire().await.map_err(|error| error.to_string())?;
                let email = format!("{prefix}{index}.{}@bench.test", uuid::Uuid::now_v7().simple());
                let body = json!({"name": format!("{prefix} {index}"), "email": email, "password": "bench-password"});
                let data = self.post("/auth/register", None, body).await?;
                Ok::<_, String>(User {
                    id: data["user"]["_id"].as_str().unwrap_or_default().to_string(),
                    token: data["token"].as_str().unwrap_or_default().to_string(),
                })
            }
        });
        join_all(tasks).await.into_iter().collect()
    }

    async fn direct(&self, from: &User, to: &User) -> Result<String, String> {
        let data = self
            .post("/conversation", Some(&from.token), json!({"receiver_id": to.id}))
            .await?;
        Ok(data["conversation"]["_id"].as_str().unwrap_or_default().to_string())
    }

    async fn send(&self, from: &User, conversation: &str, text: &str) -> Result<(), String> {
        self.post(
            "/message",
            Some(&from.token),
            json!({"convo_id": conversation, "message": text}),
        )
        .await
        .map(|_| ())
    }

    /// `user`'s event stream, open.
    async fn open_stream(&self, user: &User) -> Result<reqwest::Response, String> {
        let response = self
            .client
            .get(format!("{}/api/v1/events/stream", self.base))
            .bearer_auth(&user.token)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        if !response.status().is_success() {
            return Err(format!("stream: {}", response.status()));
        }
        Ok(response)
    }

    /// Opens `user`'s stream and forwards the `content` of every `message.created` to `sink`
    /// with the instant it arrived. Resolves once the stream is open.
    async fn listen(&self, user: &User, sink: Option<mpsc::UnboundedSender<(String, Instant)>>) -> Result<(), String> {
        let mut response = self.open_stream(user).await?;
        tokio::spawn(async move {
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                let Some(sink) = &sink else { continue };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if !block.contains("event: message.created") {
                        continue;
                    }
                    let arrived = Instant::now();
                    let data = block
                        .lines()
                        .find_map(|line| line.strip_prefix("data: "))
                        .unwrap_or("{}");
                    let content = serde_json::from_str::<Value>(data)
                        .ok()
                        .and_then(|value| value["content"].as_str().map(String::from));
                    if let Some(content) = content
                        && sink.send((content, arrived)).is_err()
                    {
                        return;
                    }
                }
            }
        });
        Ok(())
    }
}

impl Api {
    /// Opens `user`'s stream, counting its `presence` events into `counted`; its `streamId`.
    async fn count_presence(&self, user: &User, counted: Arc<AtomicUsize>) -> Result<String, String> {
        let mut response = self.open_stream(user).await?;
        let (ready_sender, ready) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut ready_sender = Some(ready_sender);
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if block.contains("event: presence") {
                        counted.fetch_add(1, Ordering::Relaxed);
                    } else if block.contains("event: ready")
                        && let Some(sender) = ready_sender.take()
                    {
                        let data = block
                            .lines()
                            .find_map(|line| line.strip_prefix("data: "))
                            .unwrap_or("{}");
                        let id = serde_json::from_str::<Value>(data)
                            .ok()
                            .and_then(|value| value["streamId"].as_str().map(String::from))
                            .unwrap_or_default();
                        let _ = sender.send(id);
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready)
            .await
            .map_err(|_| "no ready event within 10 s".to_string())?
            .map_err(|_| "the stream ended before its ready event".to_string())
    }
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

async fn throughput(api: &Api, options: &Options) -> Result<Vec<(String, String)>, String> {
    let senders = api.register_many(options.senders, "sender").await?;
    let partners = api.register_many(options.senders, "partner").await?;
    let mut conversations = Vec::new();
    for (sender, partner) in senders.iter().zip(&partners) {
        conversations.push(api.direct(sender, partner).await?);
    }
    let remaining = Arc::new(AtomicUsize::new(options.messages));
    let started = Instant::now();
    let tasks = senders.iter().zip(&conversations).map(|(sender, conversation)| {
        let remaining = remaining.clone();
        async move {
            let mut latencies = Vec::new();
            while remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
                .is_ok()
            {
                let sent = Instant::now();
                api.send(sender, conversation, "throughput").await?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, String>(latencies)
        }
    });
    let mut latencies: Vec<f64> = Vec::new();
    for result in join_all(tasks).await {
        latencies.extend(result?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok(vec![
        (
            format!(
                "throughput: {} messages, {} concurrent senders",
                options.messages, options.senders
            ),
            format!("{:.0} messages/s", options.messages as f64 / elapsed),
        ),
        (
            "throughput: POST latency p50 / p99".into(),
            format!(
                "{:.2} ms / {:.2} ms",
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99)
            ),
        ),
    ])
}

async fn latency(api: &Api, options: &Options) -> Result<Vec<(String, String)>, String> {
    let (latencies, total) = delivery_latencies(api, options, "").await?;
    Ok(vec![(
        format!(
            "latency: POST to SSE receipt, {} msg/s, {} receivers ({}/{total} received)",
            options.rate,
            options.receivers,
            latencies.len()
        ),
        percentiles(&latencies),
    )])
}

fn percentiles(sorted: &[f64]) -> String {
    format!(
        "p50 {:.2} ms · p95 {:.2} ms · p99 {:.2} ms",
        percentile(sorted, 0.5),
        percentile(sorted, 0.95),
        percentile(sorted, 0.99)
    )
}

/// Issue 9: one account floods sends while everyone else goes on. Measures the others'
/// delivery latency without and then during the flood, in the same run, and counts what the
/// flooder got through and what was refused (429).
async fn flood(api: &Api, options: &Options) -> Result<Vec<(String, String)>, String> {
    let (calm, _) = delivery_latencies(api, options, "calm").await?;
    let mut pair = api.register_many(2, "flood").await?;
    let (flooder, target) = (pair.remove(0), pair.remove(0));
    let conversation = api.direct(&flooder, &target).await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (accepted, refused, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    const FLOOD_CONNECTIONS: usize = 16;
    let started = Instant::now();
    let floods: Vec<_> = (0..FLOOD_CONNECTIONS)
        .map(|_| {
            let (client, url, token) = (
                api.client.clone(),
                format!("{}/api/v1/message", api.base),
                flooder.token.clone(),
            );
            let body = json!({"convo_id": conversation, "message": "flood"});
            let (stop, accepted, refused, failed) = (stop.clone(), accepted.clone(), refused.clone(), failed.clone());
            tokio::spawn(async move {
                // Bounded: it stops when the measurement ends, or after a minute at most.
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                    let status = match client.post(&url).bearer_auth(&token).json(&body).send().await {
                        // Read the answer through, so that the connection is kept alive (a
                        // dropped body closes it, and a new connection per request runs
                        // loopback out of ports: that would measure the client, not the server).
                        Ok(reply) => {
                            let status = reply.status();
                            reply.bytes().await.map(|_| status)
                        }
                        Err(error) => Err(error),
                    };
                    let counter = match status {
                        Ok(status) if status.is_success() => &accepted,
                        Ok(status) if status.as_u16() == 429 => &refused,
                        _ => &failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let measured = delivery_latencies(api, options, "busy").await;
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    join_all(floods).await;
    let (busy, total) = measured?;
    let ratio = percentile(&busy, 0.99) / percentile(&calm, 0.99);
    Ok(vec![
        (
            format!("flood: one account sending on {FLOOD_CONNECTIONS} connections for {seconds:.1} s"),
            format!(
                "{} accepted ({:.0}/s), {} refused with 429, {} other failures",
                accepted.load(Ordering::Relaxed),
                accepted.load(Ordering::Relaxed) as f64 / seconds,
                refused.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed)
            ),
        ),
        (
            format!(
                "flood: the others' POST to SSE receipt during it, {} msg/s, {} receivers ({}/{total} received)",
                options.rate,
                options.receivers,
                busy.len()
            ),
            format!(
                "{} (without the flood: {}; p99 ratio {ratio:.2})",
                percentiles(&busy),
                percentiles(&calm)
            ),
        ),
    ])
}

/// Sends at `options.rate` messages per second for `options.seconds` from fresh senders (names
/// starting with `prefix`) to as many receivers listening on their streams. Returns the
/// POST-to-SSE-receipt latencies in ms, sorted, and how many messages were sent.
async fn delivery_latencies(api: &Api, options: &Options, prefix: &str) -> Result<(Vec<f64>, usize), String> {
    let receivers = api
        .register_many(options.receivers, &format!("{prefix}receiver"))
        .await?;
    let senders = api.register_many(options.receivers, &format!("{prefix}writer")).await?;
    let mut conversations = Vec::new();
    for (sender, receiver) in senders.iter().zip(&receivers) {
        conversations.push(api.direct(sender, receiver).await?);
    }
    let (sink, mut arrivals) = mpsc::unbounded_channel();
    for receiver in &receivers {
        api.listen(receiver, Some(sink.clone())).await?;
    }
    drop(sink);
    // Let the receivers' "online" presence writes settle: measure delivery, not the login storm.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total = options.rate * options.seconds as usize;
    let origin = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / options.rate as f64);
    let in_flight = Arc::new(Semaphore::new(256));
    let mut sends = Vec::with_capacity(total);
    for index in 0..total {
        tokio::time::sleep_until((origin + interval * index as u32).into()).await;
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|error| error.to_string())?;
        let slot = index % senders.len();
        let (sender, conversation) = (senders[slot].clone(), conversations[slot].clone());
        let api = Api {
            client: api.client.clone(),
            base: api.base.clone(),
        };
        sends.push(tokio::spawn(async move {
            let _permit = permit;
            let text = format!("{}", origin.elapsed().as_nanos());
            api.send(&sender, &conversation, &text).await
        }));
    }
    for send in sends {
        send.await.map_err(|error| error.to_string())??;
    }
    let mut latencies = Vec::with_capacity(total);
    let deadline = Instant::now() + Duration::from_secs(10);
    while latencies.len() < total {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((content, arrived))) = tokio::time::timeout(left, arrivals.recv()).await else {
            break;
        };
        if let Ok(sent_nanos) = content.parse::<u64>() {
            let sent = origin + Duration::from_nanos(sent_nanos);
            latencies.push(arrived.duration_since(sent).as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    Ok((latencies, total))
}

async fn memory(api: &Api, server: &Server, options: &Options) -> Result<Vec<(String, String)>, String> {
    let users = api
        .register_many(options.idle_streams.div_ceil(10).max(1), "idle")
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib().unwrap_or(0);
    let limit = Arc::new(Semaphore::new(64));
    let opens = (0..options.idle_streams).map(|index| {
        let (limit, user) = (limit.clone(), users[index % users.len()].clone());
        async move {
            let _permit = limit.acquire().await.map_err(|error| error.to_string())?;
            api.listen(&user, None).await
        }
    });
    for result in join_all(opens).await {
        result?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_kib().unwrap_or(0);
    let per_stream = (after.saturating_sub(before) as f64 * 1024.0) / options.idle_streams.max(1) as f64;
    Ok(vec![(
        format!("memory: server RSS with {} idle streams", options.idle_streams),
        format!(
            "{:.0} MiB (was {:.0} MiB; ≈{:.1} KiB per stream)",
            after as f64 / 1024.0,
            before as f64 / 1024.0,
            per_stream / 1024.0
        ),
    )])
}

async fn group(api: &Api, options: &Options) -> Result<Vec<(String, String)>, String> {
    let members = api.register_many(options.group, "member").await?;
    let ids: Vec<&str> = members[1..].iter().map(|member| member.id.as_str()).collect();
    let data = api
        .post(
            "/conversation",
            Some(&members[0].token),
            json!({"type": "group", "name": "Bench", "participants": ids}),
        )
        .await?;
    let conversation = data["conversation"]["_id"].as_str().unwrap_or_default().to_string();
    let (sink, mut arrivals) = mpsc::unbounded_channel();
    for member in &members {
        api.listen(member, Some(sink.clone())).await?;
    }
    drop(sink);
    // Let the members' "online" presence writes settle: measure delivery, not the login storm.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut times = Vec::new();
    for round in 0..5 {
        let text = format!("group-{round}");
        let sent = Instant::now();
        api.send(&members[round % members.len()], &conversation, &text).await?;
        let mut arrived: HashMap<usize, Instant> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut count = 0;
        while count < members.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some((content, at))) = tokio::time::timeout(left, arrivals.recv()).await else {
                break;
            };
            if content == text {
                count += 1;
                arrived.insert(count, at);
            }
        }
        if count < members.len() {
            return Err(format!(
                "group round {round}: only {count} of {} members received the message",
                members.len()
            ));
        }
        let last = arrived.values().max().copied().unwrap_or(sent);
        times.push(last.duration_since(sent).as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(vec![(
        format!("group: one message to all {} online members (5 rounds)", options.group),
        format!(
            "median {:.1} ms · worst {:.1} ms (POST to last receipt)",
            percentile(&times, 0.5),
            times[times.len() - 1]
        ),
    )])
}

/// Counts the presence events that the members of one large group cause by coming online,
/// under the old rule (everyone who shares a conversation is told: PRESENCE_GROUP_MAX_MEMBERS
/// above the group's size) and the new one (groups over 50 are not told unasked; each member
/// subscribes to the 10 members after it, as a client showing ten faces would). Each size runs
/// on fresh servers: members register, go invisible (`status: offline`), open a stream,
/// subscribe, and then all come online (`status: auto`) at once; every stream's `presence`
/// events are counted until none has come for two seconds.
async fn presence(options: &Options) -> Result<Vec<(String, String)>, String> {
    let mut rows = Vec::new();
    let sizes: Vec<usize> = [100, 300, 1000]
        .into_iter()
        .filter(|size| *size < options.group)
        .chain([options.group])
        .collect();
    for size in sizes {
        let mut counts = Vec::new();
        for (unasked, subscriptions) in [(size + 1, 0), (50, 10)] {
            let server = Server::start_with(options, &[("PRESENCE_GROUP_MAX_MEMBERS", unasked.to_string())]).await?;
            let api = Api {
                client: Client::builder().pool_max_idle_per_host(512).build().expect("client"),
                base: server.base.clone(),
            };
            let counted = presence_storm(&api, size, subscriptions).await;
            server.stop(false).await;
            counts.push(counted?);
        }
        rows.push((
            format!("presence: {size} group members come online"),
            format!(
                "{} events told to everyone (old rule) · {} with PRESENCE_GROUP_MAX_MEMBERS=50 and 10 subscriptions each ({:.1} per member)",
                counts[0],
                counts[1],
                counts[1] as f64 / size as f64
            ),
        ));
    }
    Ok(rows)
}

/// How many users receive pushes in [`push`] (each in a direct conversation with the sender).
const PUSH_RECIPIENTS: usize = 20;

/// Web Push from commit to a local push service: messages to offline users, each with a
/// browser subscription; the push service decrypts each push (RFC 8291) and notes when it came.
/// Latency: from the send's answer (the commit is before it) to the push's arrival, paced at
/// 50 messages a second; throughput: 2,000 messages held back, then let go (the lease freed),
/// pushes per second until the last arrived. The limit beside it: the same push service taking encrypted pushes straight
/// from 16 concurrent senders, without the chat server.
async fn push(options: &Options) -> Result<Vec<(String, String)>, String> {
    let receiver = PushReceiver::start().await?;
    let server = Server::start_with(options, &[("OUTBOUND_ALLOWED_HOSTS", "127.0.0.1".to_string())]).await?;
    let api = Api {
        client: Client::builder().pool_max_idle_per_host(512).build().expect("client"),
        base: server.base.clone(),
    };
    let result = push_runs(&api, &receiver, &server.database_url).await;
    server.stop(false).await;
    let limit = receiver.direct_rate(&api.client).await;
    receiver.stop().await;
    let (paced, (burst, sends)) = result?;
    let limit = limit?;
    Ok(vec![
        (
            "push: commit to Web Push received, 50 msg/s (p50 / p99)".into(),
            percentiles(&paced),
        ),
        (
            "push: 2,000 held-back messages let go, pushes/s until the last arrived".into(),
            format!(
                "{burst:.0}/s (the messages were sent at {sends:.0}/s) · the local push service alone: {limit:.0}/s ({:.0} %)",
                100.0 * burst / limit
            ),
        ),
    ])
}

/// The paced latencies (ms, sorted), and the burst's pushes and sends per second.
async fn push_runs(api: &Api, receiver: &PushReceiver, database_url: &str) -> Result<(Vec<f64>, (f64, f64)), String> {
    let sender = api.register_many(1, "pusher").await?.remove(0);
    let recipients = api.register_many(PUSH_RECIPIENTS, "pushed").await?;
    let mut chats = Vec::new();
    for recipient in &recipients {
        chats.push(api.direct(&sender, recipient).await?);
        let keys = receiver.subscription();
        api.post(
            "/push/subscription",
            Some(&recipient.token),
            json!({"platform": "web", "webEndpoint": format!("{}/push/{}", receiver.base, keys.0),
                   "webKeyAuth": keys.1, "webKeyP256dh": keys.2, "deviceUdid": "bench"}),
        )
        .await?;
    }
    // Paced: one message every 20 ms, each timed from its answer.
    let mut sent_at = std::collections::HashMap::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for round in 0..200 {
        ticks.tick().await;
        let data = api
            .post(
                "/message",
                Some(&sender.token),
                json!({"convo_id": chats[round % chats.len()], "message": format!("paced {round}")}),
            )
            .await?;
        sent_at.insert(
            data["message"]["_id"].as_str().unwrap_or_default().to_string(),
            Instant::now(),
        );
    }
    let arrived = receiver.wait_for(200, Duration::from_secs(60)).await?;
    let mut latencies: Vec<f64> = arrived
        .iter()
        .filter_map(|(message, at)| Some(at.saturating_duration_since(*sent_at.get(message)?).as_secs_f64() * 1000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    // Burst: 2,000 messages from 8 senders at once while the push lease is held by nobody
    // alive; then it is freed and the worker drains the backlog: its own rate, not the
    // senders' (including up to a second until the idle worker looks at the lease again).
    push_lease(database_url, true).await?;
    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(8));
    let sends = (0..2000).map(|round| {
        let (limit, chat, sender) = (limit.clone(), chats[round % chats.len()].clone(), &sender);
        async move {
            let _permit = limit.acquire().await.map_err(|error| error.to_string())?;
            api.send(sender, &chat, &format!("burst {round}")).await
        }
    });
    for sent in join_all(sends).await {
        sent?;
    }
    let send_rate = 2000.0 / started.elapsed().as_secs_f64().max(0.001);
    let released = push_lease(database_url, false).await?;
    let arrived = receiver.wait_for(2000, Duration::from_secs(300)).await?;
    let last = arrived.iter().map(|(_, at)| *at).max().unwrap_or(released);
    let rate = 2000.0 / last.saturating_duration_since(released).as_secs_f64().max(0.001);
    Ok((latencies, (rate, send_rate)))
}

/// The private keys of [`PushReceiver`]'s subscriptions, by endpoint id.
type BrowserKeys =
    Arc<std::sync::Mutex<std::collections::HashMap<String, (web_push_native::p256::SecretKey, [u8; 16])>>>;

/// Gives the push lease to an instance that does not exist, for an hour (`hold`), or frees it:
/// the bench's way to hold pushes back and then let them all go. Returns when it was done.
async fn push_lease(database_url: &str, hold: bool) -> Result<Instant, String> {
    let statement = if database_url.starts_with("postgres") {
        let mut db = sqlx::PgConnection::connect(database_url)
            .await
            .map_err(|error| error.to_string())?;
        let statement = if hold {
            "UPDATE push_worker SET holder = gen_random_uuid(), lease_until = now() + interval '1 hour' WHERE id = 1"
        } else {
            "UPDATE push_worker SET holder = NULL, lease_until = NULL WHERE id = 1"
        };
        sqlx::query(statement).execute(&mut db).await.map(|_| ())
    } else {
        let mut db = sqlx::SqliteConnection::connect(database_url)
            .await
            .map_err(|error| error.to_string())?;
        // Ids are 16-byte blobs; times text in the form sqlx writes (which compares as text).
        let statement = if hold {
            "UPDATE push_worker SET holder = randomblob(16),
                 lease_until = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 hour') WHERE id = 1"
        } else {
            "UPDATE push_worker SET holder = NULL, lease_until = NULL WHERE id = 1"
        };
        sqlx::query(statement).execute(&mut db).await.map(|_| ())
    };
    statement.map_err(|error| error.to_string())?;
    Ok(Instant::now())
}

/// A push service on loopback: decrypts each push with its subscription's key and notes the
/// message it announces and when it came.
struct PushReceiver {
    base: String,
    handle: actix_web::dev::ServerHandle,
    keys: BrowserKeys,
    arrived: Arc<std::sync::Mutex<Vec<(String, Instant)>>>,
}

impl PushReceiver {
    async fn start() -> Result<Self, String> {
        use actix_web::{App, HttpResponse, HttpServer, web};
        let keys: BrowserKeys = Default::default();
        let arrived: Arc<std::sync::Mutex<Vec<(String, Instant)>>> = Default::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string())?;
        let base = format!("http://{}", listener.local_addr().map_err(|error| error.to_string())?);
        let (server_keys, server_arrived) = (keys.clone(), arrived.clone());
        let server = HttpServer::new(move || {
            let (keys, arrived) = (server_keys.clone(), server_arrived.clone());
            App::new().route(
                "/push/{id}",
                web::post().to(move |id: web::Path<String>, body: web::Bytes| {
                    let (keys, arrived) = (keys.clone(), arrived.clone());
                    async move {
                        let key = keys
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .get(id.as_str())
                            .cloned();
                        let Some((secret, auth)) = key else {
                            return HttpResponse::NotFound().finish();
                        };
                        let Ok(plain) = web_push_native::decrypt(body.to_vec(), &secret, &auth.into()) else {
                            return HttpResponse::BadRequest().finish();
                        };
                        let message = serde_json::from_slice::<Value>(&plain).unwrap_or_default()["messageId"]
                            .as_str()
                            .unwrap_or("direct")
                            .to_string();
                        arrived
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .push((message, Instant::now()));
                        HttpResponse::Created().finish()
                    }
                }),
            )
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .map_err(|error| error.to_string())?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            base,
            handle,
            keys,
            arrived,
        })
    }

    /// A new browser's subscription: (endpoint id, auth, p256dh), base64url.
    fn subscription(&self) -> (String, String, String) {
        use base64::Engine;
        use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
        let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let secret = loop {
            let mut bytes = [0u8; 32];
            let _ = getrandom::fill(&mut bytes);
            if let Ok(secret) = web_push_native::p256::SecretKey::from_slice(&bytes) {
                break secret;
            }
        };
        let mut auth = [0u8; 16];
        let _ = getrandom::fill(&mut auth);
        let id = uuid::Uuid::now_v7().simple().to_string();
        let p256dh = encode(secret.public_key().to_encoded_point(false).as_bytes());
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.clone(), (secret, auth));
        (id, encode(&auth), p256dh)
    }

    /// Waits until `count` pushes in all have arrived; returns them (and forgets them).
    async fn wait_for(&self, count: usize, within: Duration) -> Result<Vec<(String, Instant)>, String> {
        let deadline = Instant::now() + within;
        loop {
            {
                let mut arrived = self.arrived.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if arrived.len() >= count {
                    return Ok(std::mem::take(&mut *arrived));
                }
                if Instant::now() > deadline {
                    return Err(format!("{} of {count} pushes arrived", arrived.len()));
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Pushes per second this service takes straight from 16 concurrent senders: 2,000 pushes
    /// encrypted beforehand, so only the HTTP and the decryption count.
    async fn direct_rate(&self, client: &Client) -> Result<f64, String> {
        let (id, auth, p256dh) = self.subscription();
        let decode = |text: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|error| error.to_string())
        };
        let public =
            web_push_native::p256::PublicKey::from_sec1_bytes(&decode(&p256dh)?).map_err(|error| error.to_string())?;
        let auth: [u8; 16] = decode(&auth)?.try_into().map_err(|_| "auth".to_string())?;
        let body = web_push_native::encrypt(br#"{"messageId":"direct"}"#.to_vec(), &public, &auth.into())
            .map_err(|error| error.to_string())?;
        let url = format!("{}/push/{id}", self.base);
        let started = Instant::now();
        let limit = Arc::new(Semaphore::new(16));
        let posts = (0..2000).map(|_| {
            let (limit, url, body) = (limit.clone(), url.clone(), body.clone());
            async move {
                let _permit = limit.acquire().await.map_err(|error| error.to_string())?;
                client
                    .post(url)
                    .header("TTL", "60")
                    .body(body)
                    .send()
                    .await
                    .map_err(|error| error.to_string())?;
                Ok::<_, String>(())
            }
        });
        for posted in join_all(posts).await {
            posted?;
        }
        let rate = 2000.0 / started.elapsed().as_secs_f64();
        self.wait_for(2000, Duration::from_secs(30)).await?;
        Ok(rate)
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// One run of [`presence`]: the number of `presence` events all members' streams received.
async fn presence_storm(api: &Api, size: usize, subscriptions: usize) -> Result<usize, String> {
    let members = api.register_many(size, "present").await?;
    let ids: Vec<&str> = members[1..].iter().map(|member| member.id.as_str()).collect();
    api.post(
        "/conversation",
        Some(&members[0].token),
        json!({"type": "group", "name": "Presence", "participants": ids}),
    )
    .await?;
    let limit = Arc::new(Semaphore::new(32));
    let status = |member: &User, status: &'static str| {
        let (limit, token) = (limit.clone(), member.token.clone());
        async move {
            let _permit = limit.acquire().await.map_err(|error| error.to_string())?;
            api.post("/user/me/status", Some(&token), json!({ "status": status }))
                .await
        }
    };
    join_all(members.iter().map(|member| status(member, "offline")))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let counted = Arc::new(AtomicUsize::new(0));
    let mut stream_ids = Vec::with_capacity(size);
    for member in &members {
        stream_ids.push(api.count_presence(member, counted.clone()).await?);
    }
    for (index, member) in members.iter().enumerate() {
        if subscriptions == 0 {
            break;
        }
        let followed: Vec<&str> = (1..=subscriptions)
            .map(|step| members[(index + step) % size].id.as_str())
            .collect();
        api.post(
            "/user/last-activity/subscribe",
            Some(&member.token),
            json!({"streamId": stream_ids[index], "ids": followed}),
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counted.store(0, Ordering::Relaxed);
    join_all(members.iter().map(|member| status(member, "auto")))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    // Until quiet for two seconds (at most two minutes).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = usize::MAX;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = counted.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    Ok(counted.load(Ordering::Relaxed))
}

/// Fills the history of one user straight into the database (1,000 messages per conversation,
/// the last 100 unread; one in 1,000 mentions "needle", one in 100 "lunch", one in five
/// "pizza"), then times the
/// conversation list (with unread counts) and message search over HTTP.
async fn history(api: &Api, server: &Server, options: &Options) -> Result<Vec<(String, String)>, String> {
    let owner = api.register_many(1, "owner").await?.remove(0);
    let partners = api.register_many(options.history, "partner").await?;
    let limit = Arc::new(Semaphore::new(16));
    let creations = partners.iter().map(|partner| {
        let (limit, owner) = (limit.clone(), owner.clone());
        async move {
            let _permit = limit.acquire().await.map_err(|error| error.to_string())?;
            api.direct(&owner, partner).await
        }
    });
    for result in join_all(creations).await {
        result?;
    }
    let started = Instant::now();
    fill_history(&server.database_url, &owner.id).await?;
    let filled = started.elapsed().as_secs_f64();
    let messages = options.history * 1000;
    let time = |path: String| {
        let (client, base, token) = (api.client.clone(), api.base.clone(), owner.token.clone());
        async move {
            let mut samples = Vec::new();
            for _ in 0..200 {
                let sent = Instant::now();
                let reply = client
                    .get(format!("{base}{path}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !reply.status().is_success() {
                    return Err(format!("{path}: {}", reply.status()));
                }
                reply.bytes().await.map_err(|error| error.to_string())?;
                samples.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            samples.sort_by(f64::total_cmp);
            Ok::<_, String>(format!(
                "p50 {:.1} ms · p99 {:.1} ms",
                percentile(&samples, 0.5),
                percentile(&samples, 0.99)
            ))
        }
    };
    Ok(vec![
        (
            format!(
                "history: {} conversations, {messages} messages stored (filled in {filled:.0} s)",
                options.history
            ),
            String::new(),
        ),
        (
            "history: GET /conversation (20 per page, unread counts)".into(),
            time("/api/v1/conversation".into()).await?,
        ),
        (
            "history: GET /message/totals".into(),
            time("/api/v1/message/totals".into()).await?,
        ),
        (
            "history: GET /message/search?q=needle (1 in 1,000 messages)".into(),
            time("/api/v1/message/search?q=needle".into()).await?,
        ),
        (
            "history: GET /message/search?q=lunch (1 in 100 messages)".into(),
            time("/api/v1/message/search?q=lunch".into()).await?,
        ),
        (
            "history: GET /message/search?q=pizza (1 in 5 messages)".into(),
            time("/api/v1/message/search?q=pizza".into()).await?,
        ),
    ])
}

/// Inserts 1,000 messages into each of `owner`'s conversations, from the other participant,
/// and leaves the last 100 of each unread.
async fn fill_history(database_url: &str, owner: &str) -> Result<(), String> {
    let owner = uuid::Uuid::parse_str(owner).map_err(|error| error.to_string())?;
    // Message ids are UUIDv7 in the service, so id order is time order: the fill writes the
    // same shape (48-bit milliseconds, version 7, random rest), message `seq` at now - (1000 - seq) s.
    const PG_TIME_ORDERED_ID: &str =
        "(lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint - (1000 - s.seq) * 1000), 12, '0')
        || '7' || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid";
    const SQLITE_TIME_ORDERED_ID: &str = "unhex(printf('%012x', $2 - (1000 - s.seq) * 1000)
        || '7' || substr(hex(randomblob(2)), 1, 3) || '8' || substr(hex(randomblob(8)), 1, 15))";
    const CONTENT: &str = "'message ' || s.seq || ' about ' || CASE s.seq % 5 WHEN 0 THEN 'pizza' WHEN 1 THEN 'sushi' WHEN 2 THEN 'tacos' WHEN 3 THEN 'ramen' ELSE 'curry' END
        || CASE WHEN s.seq % 1000 = 7 THEN ' needle' ELSE '' END || CASE WHEN s.seq % 100 = 3 THEN ' lunch' ELSE '' END";
    if database_url.starts_with("postgres") {
        let mut db = sqlx::PgConnection::connect(database_url)
            .await
            .map_err(|error| error.to_string())?;
        let insert = format!(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, content, created_at)
             SELECT {PG_TIME_ORDERED_ID}, mine.conversation_id, s.seq, other.user_id,
                    {CONTENT},
                    now() - make_interval(secs => 1000 - s.seq)
             FROM participants mine
             JOIN participants other ON other.conversation_id = mine.conversation_id AND other.user_id <> mine.user_id
             CROSS JOIN generate_series(1, 1000) AS s(seq)
             WHERE mine.user_id = $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(owner)
            .execute(&mut db)
            .await
            .map_err(|error| error.to_string())?;
        for statement in [
            "UPDATE conversations c SET last_seq = 1000, updated_at = now() - make_interval(secs => (random() * 86400)::int),
                 last_message_id = (SELECT id FROM messages m WHERE m.conversation_id = c.id AND m.seq = 1000)
             WHERE c.id IN (SELECT conversation_id FROM participants WHERE user_id = $1)",
            "UPDATE participants SET last_read_seq = 900 WHERE user_id = $1",
        ] {
            sqlx::query(statement).bind(owner).execute(&mut db).await.map_err(|error| error.to_string())?;
        }
        sqlx::query("ANALYZE")
            .execute(&mut db)
            .await
            .map_err(|error| error.to_string())?;
    } else {
        let path = database_url.trim_start_matches("sqlite://");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(Duration::from_secs(30));
        let mut db = sqlx::SqliteConnection::connect_with(&options)
            .await
            .map_err(|error| error.to_string())?;
        let insert = format!(
            "WITH RECURSIVE s(seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM s WHERE seq < 1000)
             INSERT INTO messages (id, conversation_id, seq, sender_id, content, created_at)
             SELECT {SQLITE_TIME_ORDERED_ID}, mine.conversation_id, s.seq, other.user_id,
                    {CONTENT},
                    strftime('%Y-%m-%dT%H:%M:%f+00:00', ($2 - (1000 - s.seq) * 1000) / 1000.0, 'unixepoch')
             FROM participants mine
             JOIN participants other ON other.conversation_id = mine.conversation_id AND other.user_id <> mine.user_id
             CROSS JOIN s
             WHERE mine.user_id = $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(owner)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut db)
            .await
            .map_err(|error| error.to_string())?;
        for statement in [
            "UPDATE conversations SET last_seq = 1000,
                 last_message_id = (SELECT id FROM messages m WHERE m.conversation_id = conversations.id AND m.seq = 1000)
             WHERE id IN (SELECT conversation_id FROM participants WHERE user_id = $1)",
            "UPDATE participants SET last_read_seq = 900 WHERE user_id = $1",
        ] {
            sqlx::query(statement).bind(owner).execute(&mut db).await.map_err(|error| error.to_string())?;
        }
        sqlx::query("ANALYZE")
            .execute(&mut db)
            .await
            .map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// The size of the files scenario's uploads.
const FILE_BENCH_BYTES: usize = 100 * 1024 * 1024;
const BOUNDARY: &str = "chat-api-bench-boundary";

/// A multipart body of one `file` part holding `bytes`.
fn multipart_body(name: &str, bytes: &[u8]) -> actix_web::web::Bytes {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let mut body = Vec::with_capacity(head.len() + bytes.len() + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(bytes);
    body.extend_from_slice(tail.as_bytes());
    body.into()
}

impl Api {
    /// Uploads `body` (a [`multipart_body`]); the stored file's id.
    async fn upload(&self, user: &User, body: actix_web::web::Bytes) -> Result<String, String> {
        let reply = self
            .client
            .post(format!("{}/api/v1/file", self.base))
            .bearer_auth(&user.token)
            .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(reqwest::Body::from(body))
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let status = reply.status();
        let data: Value = reply.json().await.map_err(|error| error.to_string())?;
        if status != reqwest::StatusCode::CREATED {
            return Err(format!("upload: {status} {data}"));
        }
        Ok(data["data"]["files"][0]["_id"].as_str().unwrap_or_default().to_string())
    }

    /// Downloads file `id` whole, counting its bytes as they come.
    async fn download(&self, user: &User, id: &str) -> Result<usize, String> {
        let reply = self
            .client
            .get(format!("{}/api/v1/file/{id}", self.base))
            .bearer_auth(&user.token)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        body_length(reply).await
    }
}

fn mib_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / seconds
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

/// Issue 10: uploads and downloads against the disk alone (the same bytes written and read in
/// the same folder, in 5 MiB chunks as the local store writes them), the server's memory while
/// ten 100 MiB uploads run at once (it must not grow with the files), and a photo's cost.
async fn files(api: &Api, server: &Server) -> Result<Vec<(String, String)>, String> {
    const ROUNDS: usize = 3;
    let users = api.register_many(10, "uploader").await?;
    // A zip's signature, then bytes that look like nothing else.
    let mut bytes = b"PK\x03\x04".to_vec();
    bytes.extend((0..FILE_BENCH_BYTES - 4).map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8));
    let body = multipart_body("bench.zip", &bytes);

    let (bare, bare_server) = bare_actix(actix_web::web::Bytes::from(bytes.clone())).await?;
    let (mut disk_writes, mut disk_reads, mut uploads, mut downloads) = (vec![], vec![], vec![], vec![]);
    let (mut bare_uploads, mut bare_downloads) = (vec![], vec![]);
    let mut stored = String::new();
    for round in 0..ROUNDS {
        let path = server.folder.join(format!("disk-baseline-{round}"));
        let (write, read) = disk_baseline(&path, &bytes)?;
        disk_writes.push(write);
        disk_reads.push(read);
        let (sent, received) = bare_transfers(&api.client, &bare, body.clone()).await?;
        bare_uploads.push(sent);
        bare_downloads.push(received);
        let started = Instant::now();
        stored = api.upload(&users[0], body.clone()).await?;
        uploads.push(mib_per_s(FILE_BENCH_BYTES, started.elapsed().as_secs_f64()));
        let started = Instant::now();
        let got = api.download(&users[0], &stored).await?;
        if got != FILE_BENCH_BYTES {
            return Err(format!("downloaded {got} bytes of {FILE_BENCH_BYTES}"));
        }
        downloads.push(mib_per_s(got, started.elapsed().as_secs_f64()));
    }
    let _ = stored;
    bare_server.stop(true).await;
    let (disk_write, disk_read) = (median(disk_writes), median(disk_reads));
    let (bare_upload, bare_download) = (median(bare_uploads), median(bare_downloads));
    let (upload, download) = (median(uploads), median(downloads));

    // Ten at once, one per user, while the server's memory is sampled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib().unwrap_or(0);
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (sampling, pid) = (sampling.clone(), server.child.id());
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(rss_of(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let started = Instant::now();
    let all = join_all(users.iter().map(|user| api.upload(user, body.clone()))).await;
    let together = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.await.map_err(|error| error.to_string())?;
    for result in all {
        result?;
    }

    // A 12-megapixel photo against a file of the same size that gets no thumbnail.
    let photo = tokio::task::spawn_blocking(|| {
        let picture = image::RgbImage::from_fn(4000, 3000, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8])
        });
        let mut jpeg = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85);
        picture.write_with_encoder(encoder).map(|()| jpeg)
    })
    .await
    .map_err(|error| error.to_string())?
    .map_err(|error| error.to_string())?;
    let mut plain = b"PK\x03\x04".to_vec();
    plain.resize(photo.len(), 7);
    let (photo_body, plain_body) = (
        multipart_body("photo.jpg", &photo),
        multipart_body("same-size.zip", &plain),
    );
    let (mut photo_ms, mut plain_ms) = (vec![], vec![]);
    for _ in 0..5 {
        let started = Instant::now();
        api.upload(&users[1], photo_body.clone()).await?;
        photo_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        api.upload(&users[1], plain_body.clone()).await?;
        plain_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let (photo_ms, plain_ms) = (median(photo_ms), median(plain_ms));

    Ok(vec![
        (
            format!("files: upload of 100 MiB, median of {ROUNDS} (a bare actix server that drops it; the disk alone)"),
            format!(
                "{upload:.0} MiB/s ({bare_upload:.0} MiB/s: {:.0}%; disk write {disk_write:.0} MiB/s)",
                100.0 * upload / bare_upload
            ),
        ),
        (
            format!(
                "files: download of 100 MiB, median of {ROUNDS} (a bare actix server sending it from memory; the disk alone)"
            ),
            format!(
                "{download:.0} MiB/s ({bare_download:.0} MiB/s: {:.0}%; disk read {disk_read:.0} MiB/s)",
                100.0 * download / bare_download
            ),
        ),
        (
            "files: server RSS, peak during 10 concurrent 100 MiB uploads (idle before)".into(),
            format!(
                "{:.0} MiB ({:.0} MiB; 1,000 MiB uploaded in {together:.1} s)",
                peak as f64 / 1024.0,
                before as f64 / 1024.0
            ),
        ),
        (
            format!(
                "files: upload of a 12 MP JPEG ({:.1} MiB) with its thumbnail, median of 5 (same size, no thumbnail)",
                photo.len() as f64 / (1024.0 * 1024.0)
            ),
            format!("{photo_ms:.0} ms ({plain_ms:.0} ms)"),
        ),
    ])
}

/// A bare actix-web server on loopback, in this process, as the limit that uploads and
/// downloads through chat-api are measured against (the same HTTP over the same loopback, no
/// multipart, store or database): `POST /sink` reads a body and drops it, `GET /source` sends
/// `payload` in 256 KiB chunks.
async fn bare_actix(payload: actix_web::web::Bytes) -> Result<(String, actix_web::dev::ServerHandle), String> {
    use actix_web::{App, HttpResponse, HttpServer, web};
    use futures_util::StreamExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string())?;
    let base = format!("http://{}", listener.local_addr().map_err(|error| error.to_string())?);
    let server = HttpServer::new(move || {
        let payload = payload.clone();
        App::new()
            .route(
                "/sink",
                web::post().to(|mut body: web::Payload| async move {
                    let mut total = 0;
                    while let Some(chunk) = body.next().await {
                        total += chunk?.len();
                    }
                    Ok::<_, actix_web::Error>(HttpResponse::Created().body(total.to_string()))
                }),
            )
            .route(
                "/source",
                web::get().to(move || {
                    let payload = payload.clone();
                    async move {
                        const CHUNK: usize = 256 * 1024;
                        let chunks = (0..payload.len()).step_by(CHUNK).map(move |at| {
                            Ok::<_, actix_web::Error>(payload.slice(at..(at + CHUNK).min(payload.len())))
                        });
                        HttpResponse::Ok().streaming(futures_util::stream::iter(chunks))
                    }
                }),
            )
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .map_err(|error| error.to_string())?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((base, handle))
}

/// One upload of `body` to the bare server and one download from it: MiB/s of each.
async fn bare_transfers(client: &Client, base: &str, body: actix_web::web::Bytes) -> Result<(f64, f64), String> {
    let size = body.len();
    let started = Instant::now();
    client
        .post(format!("{base}/sink"))
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(reqwest::Body::from(body))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| error.to_string())?;
    let sent = mib_per_s(size, started.elapsed().as_secs_f64());
    let started = Instant::now();
    let reply = client
        .get(format!("{base}/source"))
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let total = body_length(reply).await?;
    Ok((sent, mib_per_s(total, started.elapsed().as_secs_f64())))
}

/// Reads `reply`'s body to its end, keeping nothing: how many bytes it had.
async fn body_length(mut reply: reqwest::Response) -> Result<usize, String> {
    let mut total = 0;
    while let Some(chunk) = reply.chunk().await.map_err(|error| error.to_string())? {
        total += chunk.len();
    }
    Ok(total)
}

/// Resident memory of process `pid`, in KiB (Linux).
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Writes `bytes` to `path` in 5 MiB chunks and reads them back: MiB/s of each. The file is
/// removed after.
fn disk_baseline(path: &std::path::Path, bytes: &[u8]) -> Result<(f64, f64), String> {
    use std::io::{Read, Write};
    let failed = |error: std::io::Error| error.to_string();
    let started = Instant::now();
    let mut file = std::fs::File::create(path).map_err(failed)?;
    for chunk in bytes.chunks(5 * 1024 * 1024) {
        file.write_all(chunk).map_err(failed)?;
    }
    file.flush().map_err(failed)?;
    drop(file);
    let write = mib_per_s(bytes.len(), started.elapsed().as_secs_f64());
    let started = Instant::now();
    let mut file = std::fs::File::open(path).map_err(failed)?;
    let mut buffer = vec![0; 64 * 1024];
    let mut total = 0;
    loop {
        let read = file.read(&mut buffer).map_err(failed)?;
        if read == 0 {
            break;
        }
        total += read;
    }
    let read = mib_per_s(total, started.elapsed().as_secs_f64());
    std::fs::remove_file(path).map_err(failed)?;
    Ok((write, read))
}

#[tokio::main]
async fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let server = match Server::start(&options).await {
        Ok(server) => server,
        Err(message) => {
            eprintln!("chat-api-bench: {message}");
            std::process::exit(1);
        }
    };
    let api = Api {
        client: Client::builder().pool_max_idle_per_host(512).build().expect("client"),
        base: server.base.clone(),
    };
    let mut rows = Vec::new();
    let mut failure = None;
    for name in [
        "throughput",
        "latency",
        "group",
        "memory",
        "history",
        "flood",
        "files",
        "presence",
        "push",
    ] {
        if !options.runs(name) {
            continue;
        }
        eprintln!("running {name}...");
        let result = match name {
            "throughput" => throughput(&api, &options).await,
            "latency" => latency(&api, &options).await,
            "group" => group(&api, &options).await,
            "history" => history(&api, &server, &options).await,
            "flood" => flood(&api, &options).await,
            "files" => files(&api, &server).await,
            "presence" => presence(&options).await,
            "push" => push(&options).await,
            _ => memory(&api, &server, &options).await,
        };
        match result {
            Ok(mut measured) => rows.append(&mut measured),
            Err(message) => {
                failure = Some(format!("{name}: {message}"));
                break;
            }
        }
    }
    server.stop(options.keep).await;
    println!("\n| chat-api-bench ({}) | result |\n| --- | --- |", options.backend);
    for (what, result) in rows {
        println!("| {what} | {result} |");
    }
    if let Some(failure) = failure {
        eprintln!("chat-api-bench: {failure}");
        std::process::exit(1);
    }
}
