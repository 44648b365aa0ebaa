//! A small Server-Sent Events client for the tests: opens `GET /api/v1/events/stream` and
//! parses the frames (`id:`, `event:`, `data:`, comments) as a browser's EventSource would.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::helpers::TestApp;

/// How long a test waits for an event it expects before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

pub struct EventStream {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    events: mpsc::UnboundedReceiver<Frame>,
    reader: JoinHandle<()>,
    /// The `ready` event's `streamId`, once it came, and whether it came first. The reader
    /// keeps `ready` out of `events`, so tests read the stream's other events as before.
    ready: tokio::sync::watch::Receiver<Option<(String, bool)>>,
}

enum Frame {
    Event(SseEvent),
    Retry(u64),
}

impl Drop for EventStream {
    fn drop(&mut self) {
        // Stop reading: the connection closes, as when a client goes away.
        self.reader.abort();
    }
}

pub enum Auth<'a> {
    Bearer(&'a str),
    Ticket(&'a str),
}

impl TestApp {
    /// Opens the caller's event stream; `last_event_id` goes in the `Last-Event-ID` header.
    pub async fn open_stream(&self, auth: Auth<'_>, last_event_id: Option<&str>) -> EventStream {
        self.open_stream_at("/api/v1/events/stream", auth, last_event_id).await
    }

    pub async fn open_stream_at(&self, path: &str, auth: Auth<'_>, last_event_id: Option<&str>) -> EventStream {
        let mut request = match auth {
            Auth::Bearer(token) => self.client.get(self.url(path)).bearer_auth(token),
            Auth::Ticket(ticket) => {
                let separator = if path.contains('?') { '&' } else { '?' };
                self.client.get(self.url(&format!("{path}{separator}ticket={ticket}")))
            }
        };
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let (sender, events) = mpsc::unbounded_channel();
        let (ready_sender, ready) = tokio::sync::watch::channel(None);
        let reader = tokio::spawn(async move {
            let mut response = response;
            let mut buffer = String::new();
            let mut seen_any = false;
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    match parse_block(&block) {
                        Some(Frame::Event(event)) if event.event == "ready" => {
                            let id = event.data["streamId"].as_str().unwrap_or_default().to_string();
                            let _ = ready_sender.send(Some((id, !seen_any)));
                        }
                        Some(frame) => {
                            seen_any |= matches!(frame, Frame::Event(_));
                            if sender.send(frame).is_err() {
                                return;
                            }
                        }
                        None => {}
                    }
                }
            }
        });
        EventStream {
            status,
            headers,
            events,
            reader,
            ready,
        }
    }

    /// A fresh stream ticket for `token`'s session.
    pub async fn stream_ticket(&self, token: &str) -> String {
        let reply = self
            .post("/api/v1/events/ticket", Some(token), &serde_json::json!({}))
            .await;
        reply.data(StatusCode::OK)["ticket"].as_str().unwrap().to_string()
    }
}

fn parse_block(block: &str) -> Option<Frame> {
    let (mut id, mut event, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_string()),
            "event" => event = Some(value.to_string()),
            "data" => data.push(value.to_string()),
            "retry" => return value.parse().ok().map(Frame::Retry),
            _ => {}
        }
    }
    if data.is_empty() {
        return None;
    }
    let data = serde_json::from_str(&data.join("\n")).unwrap_or(Value::Null);
    Some(Frame::Event(SseEvent {
        id,
        event: event.unwrap_or_else(|| "message".into()),
        data,
    }))
}

impl EventStream {
    /// The stream's id from its `ready` event (for presence subscriptions); fails the test if
    /// none came within [`PATIENCE`] or it was not the stream's first event.
    pub async fn stream_id(&mut self) -> String {
        let ready = tokio::time::timeout(PATIENCE, self.ready.wait_for(Option::is_some))
            .await
            .expect("a ready event")
            .expect("the reader is running")
            .clone()
            .unwrap();
        assert!(ready.1, "ready is the stream's first event");
        ready.0
    }

    /// The next event, or `None` when the stream ended; fails the test after [`PATIENCE`].
    pub async fn next(&mut self) -> Option<SseEvent> {
        self.next_within(PATIENCE)
            .await
            .unwrap_or_else(|| panic!("no event within {PATIENCE:?}"))
    }

    /// `Some(next event or None at the end)`, or `None` if nothing came within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Option<SseEvent>> {
        loop {
            match tokio::time::timeout(wait, self.events.recv()).await {
                Err(_) => return None,
                Ok(Some(Frame::Retry(_))) => continue,
                Ok(Some(Frame::Event(event))) => return Some(Some(event)),
                Ok(None) => return Some(None),
            }
        }
    }

    /// The next event of this type, skipping others (e.g. presence); fails the test if the
    /// stream ends or nothing comes.
    pub async fn next_of(&mut self, kind: &str) -> SseEvent {
        loop {
            let event = self
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream ended before a {kind} event"));
            if event.event == kind {
                return event;
            }
        }
    }

    /// Every event up to and including the first that matches; fails the test if the stream
    /// ends or stalls first.
    pub async fn next_until(&mut self, matches: impl Fn(&SseEvent) -> bool) -> Vec<SseEvent> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await.expect("the stream ended before the expected event");
            let found = matches(&event);
            events.push(event);
            if found {
                return events;
            }
        }
    }

    /// The `retry:` hint sent first.
    pub async fn retry_hint(&mut self) -> Option<u64> {
        match tokio::time::timeout(PATIENCE, self.events.recv()).await {
            Ok(Some(Frame::Retry(milliseconds))) => Some(milliseconds),
            _ => None,
        }
    }

    /// Asserts that no event of this type arrives within `wait`.
    pub async fn assert_no(&mut self, kind: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                None | Some(None) => return,
                Some(Some(event)) => assert_ne!(event.event, kind, "unexpected {kind}: {event:?}"),
            }
        }
    }

    /// Whether the server ended the stream within `wait`.
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                None => return false,
                Some(None) => return true,
                Some(Some(_)) => continue,
            }
        }
    }
}
