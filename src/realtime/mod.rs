//! Real-time delivery: every instance runs one [`Hub`], which holds this instance's open
//! streams, reads the event log in commit order and hands each event to the streams of its
//! recipients.
//!
//! - `events.rs`: the event names and payloads (the contract with clients).
//! - `fanout.rs`: how instances wake each other (LISTEN/NOTIFY, or in memory for SQLite).
//! - `stream.rs`: one SSE connection: replay from `Last-Event-ID`, then live, exactly once.
//! - `presence.rs`: online/offline from open streams, debounced.
//!
//! Delivery never depends on the in-memory parts being complete: a stream that falls behind
//! (its buffer overflows) is closed and its client resumes from the log with `Last-Event-ID`.

pub mod fanout;
pub mod payloads;
pub mod presence;
pub mod stream;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web_lab::sse;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::store::{EventPosition, Store, StoredEvent};
use fanout::{EphemeralAudience, EphemeralEvent, Fanout, Signal};
use presence::PresenceState;

/// How many events the dispatcher reads from the log at a time.
const DISPATCH_BATCH: u32 = 500;
/// Without any doorbell, the log is read this often anyway (a safety net, not the path).
const IDLE_POLL: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// Events a stream may have queued before it is closed as too slow.
    pub buffer: usize,
    /// Streams one user may hold on one instance; opening one more closes the oldest.
    pub max_per_user: usize,
    pub keep_alive: Duration,
    pub retry: Duration,
    /// How long a user's last stream may be gone before they are announced offline.
    pub presence_debounce: Duration,
    /// Groups up to this size share presence unasked (PRESENCE_GROUP_MAX_MEMBERS); members
    /// of larger ones subscribe to the people they show.
    pub presence_group_max: usize,
    /// Signs the file links of each event for its recipient.
    pub file_links: crate::files::links::FileLinks,
}

/// One event ready to write to streams, encoded once and shared by all its recipients.
#[derive(Clone, Debug)]
pub struct Frame {
    /// `None` for ephemeral events: they carry no `id:`, so they do not move the client's
    /// resume position.
    pub position: Option<EventPosition>,
    pub event: sse::Event,
}

struct Subscriber {
    id: u64,
    /// The stream's id for clients (its `ready` event): what presence subscriptions name.
    stream_id: Uuid,
    /// The login session the stream was opened with: ending the session ends the stream.
    session: Uuid,
    /// `None` once the hub has closed the stream (too slow, session ended): the stream drains
    /// what it has, ends, and its `Subscription` drop removes this entry.
    sender: Option<mpsc::Sender<Frame>>,
}

pub struct Hub {
    store: Store,
    settings: StreamSettings,
    fanout: Box<dyn Fanout>,
    presence: PresenceState,
    subscribers: Mutex<HashMap<Uuid, Vec<Subscriber>>>,
    next_subscriber: AtomicU64,
    shutting_down: AtomicBool,
    /// Rung whenever the dispatcher has read new events: the push worker reads the log then.
    log_advanced: Arc<tokio::sync::Notify>,
}

/// An open stream's registration; dropping it unregisters the stream.
pub struct Subscription {
    hub: Arc<Hub>,
    user: Uuid,
    id: u64,
    pub stream_id: Uuid,
    pub receiver: mpsc::Receiver<Frame>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.user, self.id);
        // Its row (and presence subscriptions) go; a failure leaves a row that nothing
        // delivers to, swept with its instance.
        let (store, stream) = (self.hub.store.clone(), self.stream_id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = store.unregister_stream(stream).await {
                    tracing::warn!(%error, "could not forget a closed stream");
                }
            });
        }
    }
}

impl Hub {
    /// Creates the hub and starts its dispatcher (and, through `fanout::start`, its listeners).
    pub async fn start(store: Store, settings: StreamSettings, instance: Uuid) -> crate::store::StoreResult<Arc<Self>> {
        // Room for a burst (1,000 members coming online): past it, ephemeral events are
        // dropped, never stored ones (a full queue already holds a reason to read the log).
        let (signals_sender, signals) = mpsc::channel(8192);
        let fanout = fanout::start(&store, signals_sender);
        let presence = PresenceState::start(&store, instance, settings.presence_debounce).await?;
        let start_at = store.head_position().await?;
        let hub = Arc::new(Hub {
            store,
            settings,
            fanout,
            presence,
            subscribers: Mutex::new(HashMap::new()),
            next_subscriber: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            log_advanced: Default::default(),
        });
        hub.start_presence();
        tokio::spawn(dispatch(hub.clone(), signals, start_at));
        Ok(hub)
    }

    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Rung each time this instance's dispatcher has read new events from the log (on every
    /// instance, for every event committed anywhere).
    pub fn log_advanced(&self) -> Arc<tokio::sync::Notify> {
        self.log_advanced.clone()
    }

    /// This instance's id (its presence and stream rows).
    pub fn instance(&self) -> Uuid {
        self.presence.instance()
    }

    /// Registers a new stream of `user`, opened with login session `session`. Register before
    /// reading the log for a replay: every event the replay cannot see yet is then handed to
    /// this subscription.
    pub fn subscribe(self: &Arc<Self>, user: Uuid, session: Uuid) -> Subscription {
        let (sender, receiver) = mpsc::channel(self.settings.buffer);
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let stream_id = Uuid::now_v7();
        let first = {
            let mut subscribers = self.lock();
            let streams = subscribers.entry(user).or_default();
            if streams.len() >= self.settings.max_per_user {
                // Dropping the oldest stream's sender ends that stream.
                streams.remove(0);
            }
            streams.push(Subscriber {
                id,
                stream_id,
                session,
                sender: Some(sender),
            });
            streams.len() == 1
        };
        if self.shutting_down.load(Ordering::Relaxed) {
            self.lock().remove(&user);
        }
        if first {
            self.user_connected(user);
        }
        Subscription {
            hub: self.clone(),
            user,
            id,
            stream_id,
            receiver,
        }
    }

    fn unsubscribe(&self, user: Uuid, id: u64) {
        let last = {
            let mut subscribers = self.lock();
            let Some(streams) = subscribers.get_mut(&user) else {
                return;
            };
            streams.retain(|subscriber| subscriber.id != id);
            let empty = streams.is_empty();
            if empty {
                subscribers.remove(&user);
            }
            empty
        };
        if last {
            self.user_disconnected(user);
        }
    }

    /// How many streams are open on this instance.
    pub fn open_streams(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    pub fn is_connected_here(&self, user: Uuid) -> bool {
        self.lock().contains_key(&user)
    }

    /// Ends this instance's streams of a login session (logout, refresh-token reuse). Other
    /// instances notice within `SESSION_CHECK` (see `stream.rs`).
    pub fn close_session(&self, session: Uuid) {
        for streams in self.lock().values_mut() {
            for subscriber in streams.iter_mut().filter(|subscriber| subscriber.session == session) {
                subscriber.sender = None;
            }
        }
    }

    /// Sends an ephemeral event (typing, presence) to every instance.
    pub async fn publish_ephemeral(&self, event: EphemeralEvent) {
        self.fanout.publish(event).await;
    }

    /// Ends every stream (at shutdown): open streams must not hold the server up.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.lock().clear();
        self.leave_presence().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<Subscriber>>> {
        self.subscribers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands `frame` to every stream of `users` on this instance. A stream whose buffer is full
    /// is closed (its client will resume from the log), but an ephemeral frame is simply not
    /// sent to it: a typing indicator is not worth a reconnect.
    /// Delivers a stored event to `users`: one frame shared by all, or, when it shows files,
    /// one per user with the links signed for them.
    fn deliver_stored(&self, users: impl IntoIterator<Item = Uuid>, event: &StoredEvent) {
        if shows_files(&event.payload) {
            for user in users {
                self.deliver([user], &stored_frame_for(event, user, &self.settings.file_links));
            }
        } else {
            self.deliver(users, &stored_frame(event, event.payload.clone()));
        }
    }

    fn deliver(&self, users: impl IntoIterator<Item = Uuid>, frame: &Frame) {
        let mut subscribers = self.lock();
        for user in users {
            let Some(streams) = subscribers.get_mut(&user) else {
                continue;
            };
            for subscriber in streams.iter_mut() {
                send_to(subscriber, user, frame);
            }
        }
    }

    /// Hands an ephemeral `frame` to particular streams (`(stream, its user)`) on this instance.
    fn deliver_to_streams(&self, streams: &[(Uuid, Uuid)], frame: &Frame) {
        let mut subscribers = self.lock();
        for (stream, user) in streams {
            let Some(open) = subscribers.get_mut(user) else {
                continue;
            };
            if let Some(subscriber) = open.iter_mut().find(|subscriber| subscriber.stream_id == *stream) {
                send_to(subscriber, *user, frame);
            }
        }
    }

    fn connected_users(&self) -> HashSet<Uuid> {
        self.lock().keys().copied().collect()
    }
}

fn send_to(subscriber: &mut Subscriber, user: Uuid, frame: &Frame) {
    let Some(sender) = &subscriber.sender else { return };
    match sender.try_send(frame.clone()) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) if frame.position.is_none() => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::info!(%user, "stream too slow: closed, the client will resume");
            subscriber.sender = None;
        }
        Err(mpsc::error::TrySendError::Closed(_)) => subscriber.sender = None,
    }
}

/// Encodes a stored event as an SSE frame (`id:` = its position), with `payload`.
fn stored_frame(event: &StoredEvent, payload: String) -> Frame {
    let position = event.position();
    Frame {
        position: Some(position),
        event: sse::Event::Data(
            sse::Data::new(payload)
                .event(event.kind.clone())
                .id(position.to_string()),
        ),
    }
}

/// Does this stored payload show files (attachments, avatars)? Their links are then signed
/// per recipient.
fn shows_files(payload: &str) -> bool {
    payload.contains("\"attachments\":[{") || payload.contains("\"avatarUrl\":\"")
}

/// A stored event's payload as `user` receives it: the file links it shows signed for them
/// (stored payloads are shared by every recipient and carry unsigned paths).
pub fn payload_for(payload: &str, user: Uuid, links: &crate::files::links::FileLinks) -> String {
    if !shows_files(payload) {
        return payload.to_string();
    }
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(payload) else {
        return payload.to_string();
    };
    let now = crate::store::now();
    crate::views::sign_file_links(&mut value, &|file, variant| links.path(file, variant, user, now));
    value.to_string()
}

/// A stored event as an SSE frame for `user`.
pub fn stored_frame_for(event: &StoredEvent, user: Uuid, links: &crate::files::links::FileLinks) -> Frame {
    stored_frame(event, payload_for(&event.payload, user, links))
}

/// The dispatcher: reads the log in order from `cursor` whenever told (or every second) and
/// delivers each event to its recipients' streams on this instance.
async fn dispatch(hub: Arc<Hub>, mut signals: mpsc::Receiver<Signal>, mut cursor: EventPosition) {
    let (presence_work, mut presence_queue) = mpsc::channel::<EphemeralEvent>(PRESENCE_QUEUE);
    let worker = hub.clone();
    tokio::spawn(async move {
        while let Some(first) = presence_queue.recv().await {
            // Whatever queued meanwhile is resolved together, in order.
            let mut burst = vec![first];
            while burst.len() < PRESENCE_QUEUE
                && let Ok(more) = presence_queue.try_recv()
            {
                burst.push(more);
            }
            deliver_ephemeral(&worker, burst).await;
        }
    });
    // The newest transaction announced as committed: until the log shows it, read again soon.
    let mut announced: i64 = 0;
    let mut retry_delay = Duration::from_millis(1);
    loop {
        let waited = if announced > cursor.tx { retry_delay } else { IDLE_POLL };
        let signal = tokio::time::timeout(waited, signals.recv()).await;
        let mut ephemeral = Vec::new();
        match signal {
            Ok(None) => return,
            Ok(Some(signal)) => {
                let mut next = Some(signal);
                // Take everything queued: one read of the log serves all of it.
                while let Some(signal) = next {
                    match signal {
                        Signal::Committed { tx } => announced = announced.max(tx.unwrap_or(0)),
                        Signal::Ephemeral(event) => ephemeral.push(event),
                    }
                    next = signals.try_recv().ok();
                }
            }
            Err(_elapsed) => {}
        }
        // Typing goes out here, before the stored events read below (a `typing` must not
        // come after the message it announced). Presence goes to a worker of its own:
        // resolving a burst of it must never hold up stored events.
        let (presence, typing): (Vec<EphemeralEvent>, Vec<EphemeralEvent>) = ephemeral
            .into_iter()
            .partition(|event| matches!(event.audience, EphemeralAudience::PresenceOf { .. }));
        deliver_ephemeral(&hub, typing).await;
        for event in presence {
            if presence_work.try_send(event).is_err() {
                tracing::warn!("presence worker far behind: a presence event was dropped");
            }
        }
        if hub.shutting_down.load(Ordering::Relaxed) {
            continue;
        }
        match read_and_deliver(&hub, &mut cursor).await {
            Ok(()) => {}
            Err(error) => tracing::warn!(%error, "reading the event log failed; retrying"),
        }
        retry_delay = if announced > cursor.tx {
            (retry_delay * 2).min(Duration::from_millis(50))
        } else {
            Duration::from_millis(1)
        };
    }
}

/// Delivers every event after `cursor`, moving `cursor` only past events that were handed
/// out: if a read fails half-way, the same events are read again next time (a stream may see
/// an event twice from the dispatcher, but skips it by position).
async fn read_and_deliver(hub: &Hub, cursor: &mut EventPosition) -> crate::store::StoreResult<()> {
    loop {
        let batch = hub.store.events_after(*cursor, DISPATCH_BATCH).await?;
        let Some(last) = batch.last().map(StoredEvent::position) else {
            return Ok(());
        };
        let full = batch.len() as u32 == DISPATCH_BATCH;
        let connected = hub.connected_users();
        if !connected.is_empty() {
            let conversations: Vec<Uuid> = {
                let set: HashSet<Uuid> = batch.iter().filter_map(|event| event.conversation_id).collect();
                set.into_iter().collect()
            };
            let mut members: HashMap<Uuid, Vec<(Uuid, EventPosition)>> = HashMap::new();
            for (conversation, user, joined) in hub.store.members_of(&conversations).await? {
                if connected.contains(&user) {
                    members.entry(conversation).or_default().push((user, joined));
                }
            }
            for event in &batch {
                match (event.conversation_id, event.user_id) {
                    (Some(conversation), _) => {
                        if let Some(users) = members.get(&conversation) {
                            // A member added after the event does not receive it (as in a replay).
                            let position = event.position();
                            let reached = users.iter().filter(|(_, joined)| position > *joined);
                            hub.deliver_stored(reached.map(|(user, _)| *user), event);
                        }
                    }
                    (None, Some(user)) if connected.contains(&user) => hub.deliver_stored([user], event),
                    _ => {}
                }
            }
        }
        *cursor = last;
        hub.log_advanced.notify_one();
        if !full {
            return Ok(());
        }
    }
}

/// Delivers a burst of ephemeral events, in order. The presence events among them are
/// resolved together (two queries per [`PRESENCE_BATCH`] users, not two per event): 1,000
/// members coming online at once is one burst.
async fn deliver_ephemeral(hub: &Hub, events: Vec<EphemeralEvent>) {
    let connected = hub.connected_users();
    if connected.is_empty() || events.is_empty() {
        return;
    }
    let present: Vec<Uuid> = {
        let mut users: Vec<Uuid> = events
            .iter()
            .filter_map(|event| match event.audience {
                EphemeralAudience::PresenceOf { user } => Some(user),
                EphemeralAudience::Conversation { .. } => None,
            })
            .collect();
        users.sort();
        users.dedup();
        users
    };
    let audiences = match presence_audiences(hub, &present, &connected).await {
        Ok(audiences) => audiences,
        Err(error) => {
            tracing::warn!(%error, "could not resolve presence recipients");
            HashMap::new()
        }
    };
    for event in events {
        let frame = Frame {
            position: None,
            event: sse::Event::Data(sse::Data::new(event.payload).event(event.kind)),
        };
        match event.audience {
            EphemeralAudience::PresenceOf { user } => {
                if let Some((users, streams)) = audiences.get(&user) {
                    let single: Vec<(Uuid, Uuid)> = streams
                        .iter()
                        .filter(|(_, user)| !users.contains(user))
                        .copied()
                        .collect();
                    hub.deliver_to_streams(&single, &frame);
                    hub.deliver(users.iter().copied(), &frame);
                }
            }
            EphemeralAudience::Conversation { id, except } => {
                match conversation_listeners(hub, id, except, &connected).await {
                    Ok(users) => hub.deliver(users, &frame),
                    Err(error) => tracing::warn!(%error, "could not resolve an ephemeral event's recipients"),
                }
            }
        }
    }
}

/// How many users' presence one pair of queries resolves.
const PRESENCE_BATCH: usize = 500;

/// Presence events waiting for the worker: a burst of 1,000 members coming online fits; past
/// it they are dropped (with a warning), as every ephemeral event may be under overload.
const PRESENCE_QUEUE: usize = 8192;

/// Per user whose presence changed: the connected users told unasked, and the subscribed
/// streams on this instance (`(stream, its user)`).
type PresenceAudiences = HashMap<Uuid, (HashSet<Uuid>, Vec<(Uuid, Uuid)>)>;

/// For each of `targets`: the connected users told of their presence unasked, and the
/// subscribed streams on this instance (`(stream, its user)`).
async fn presence_audiences(
    hub: &Hub,
    targets: &[Uuid],
    connected: &HashSet<Uuid>,
) -> crate::store::StoreResult<PresenceAudiences> {
    let mut audiences = PresenceAudiences::new();
    for chunk in targets.chunks(PRESENCE_BATCH) {
        for (target, recipient) in hub
            .store
            .presence_audiences(chunk, hub.settings.presence_group_max)
            .await?
        {
            if connected.contains(&recipient) {
                audiences.entry(target).or_default().0.insert(recipient);
            }
        }
        for (target, stream, user) in hub.store.presence_subscribers(chunk, hub.instance()).await? {
            audiences.entry(target).or_default().1.push((stream, user));
        }
    }
    Ok(audiences)
}

/// The connected members of a conversation but `except` (the one typing), less those who
/// have a block with them either way.
async fn conversation_listeners(
    hub: &Hub,
    conversation: Uuid,
    except: Option<Uuid>,
    connected: &HashSet<Uuid>,
) -> crate::store::StoreResult<HashSet<Uuid>> {
    let mut users: HashSet<Uuid> = hub
        .store
        .members_of(&[conversation])
        .await?
        .into_iter()
        .map(|(_, user, _)| user)
        .filter(|user| Some(*user) != except && connected.contains(user))
        .collect();
    if let Some(actor) = except {
        let listening: Vec<Uuid> = users.iter().copied().collect();
        for blocked in hub.store.blocks_with(actor, &listening).await? {
            users.remove(&blocked);
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ConnectOptions;

    async fn hub_with_buffer(buffer: usize) -> (Arc<Hub>, std::path::PathBuf) {
        let folder = std::env::temp_dir().join(format!("chat-api-hub-{}", Uuid::now_v7().simple()));
        let url = format!("sqlite://{}", folder.join("chat.db").display());
        let store = Store::connect(&url, &ConnectOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let settings = StreamSettings {
            buffer,
            max_per_user: 10,
            keep_alive: Duration::from_secs(15),
            retry: Duration::from_secs(3),
            presence_debounce: Duration::from_millis(10),
            presence_group_max: 50,
            file_links: crate::files::links::FileLinks::new(b"test-key", Duration::from_secs(60)),
        };
        (Hub::start(store, settings, Uuid::now_v7()).await.unwrap(), folder)
    }

    fn frame(id: i64) -> Frame {
        Frame {
            position: Some(EventPosition { tx: 0, id }),
            event: sse::Event::Data(sse::Data::new("{}").event("test").id(id.to_string())),
        }
    }

    #[tokio::test]
    async fn a_stream_that_does_not_read_is_closed_when_its_buffer_overflows() {
        let (hub, folder) = hub_with_buffer(2).await;
        let user = Uuid::now_v7();
        let mut slow = hub.subscribe(user, Uuid::now_v7());
        let mut other = hub.subscribe(Uuid::now_v7(), Uuid::now_v7());

        for id in 1..=3 {
            hub.deliver([user], &frame(id));
        }

        // What was buffered is still delivered, then the stream ends: its client resumes
        // from the log with Last-Event-ID and loses nothing.
        for expected in [1, 2] {
            assert_eq!(
                slow.receiver
                    .recv()
                    .await
                    .and_then(|frame| frame.position)
                    .map(|p| p.id),
                Some(expected)
            );
        }
        assert!(slow.receiver.recv().await.is_none());
        drop(slow);
        assert!(!hub.is_connected_here(user), "the ended stream is forgotten");
        assert!(other.receiver.try_recv().is_err(), "other streams are not affected");
        std::fs::remove_dir_all(folder).unwrap();
    }

    #[tokio::test]
    async fn shutdown_ends_every_stream() {
        let (hub, folder) = hub_with_buffer(8).await;
        let mut streams: Vec<Subscription> = (0..3).map(|_| hub.subscribe(Uuid::now_v7(), Uuid::now_v7())).collect();

        hub.shutdown().await;

        for stream in &mut streams {
            assert!(stream.receiver.recv().await.is_none());
        }
        assert_eq!(hub.open_streams(), 0);
        std::fs::remove_dir_all(folder).unwrap();
    }
}
