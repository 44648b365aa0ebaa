//! One SSE connection: replay what the client missed, then live events, each exactly once
//! and in log order.
//!
//! The seam between the two is where most chat backends lose or repeat events. Here:
//! 1. the stream registers with the hub *first*, so every event the dispatcher reads from
//!    now on is queued for it;
//! 2. it then replays the log after the client's position: everything the dispatcher had
//!    already passed is in the log, visible to the replay;
//! 3. it then forwards the queue, skipping what the replay already sent (positions are
//!    totally ordered, so "already sent" is one comparison).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix_web_lab::sse;
use futures_util::Stream;
use uuid::Uuid;

use super::payloads::{READY, RESET, ReadyData, ResetData};
use super::{Hub, Subscription, stored_frame_for};
use crate::store::{BackendKind, EventPosition, Store, StoreResult};

/// How many stored events a replay reads at a time.
const REPLAY_BATCH: u32 = 500;

/// Where a client asks to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// No `Last-Event-ID`: from now on.
    Now,
    /// After this position.
    After(EventPosition),
    /// A `Last-Event-ID` that is not one of ours.
    Unreadable,
}

impl Resume {
    pub fn parse(raw: Option<&str>) -> Self {
        match raw.map(str::trim).filter(|raw| !raw.is_empty()) {
            None => Resume::Now,
            Some(raw) => EventPosition::parse(raw).map_or(Resume::Unreadable, Resume::After),
        }
    }
}

/// Where to start reading, or why the log cannot serve the client (it must refetch).
pub enum Start {
    After(EventPosition),
    Reset { head: EventPosition, reason: &'static str },
}

/// Decides where a client resuming at `resume` starts. Read `head` before loading anything.
pub async fn start_for(store: &Store, resume: Resume) -> StoreResult<Start> {
    const FOREIGN: &str = "the resume position is not one this server gave out";
    let head = store.head_position().await?;
    // PostgreSQL positions always have a transaction id, SQLite ones never ("0" is the start).
    let foreign = |position: EventPosition| match store.kind() {
        BackendKind::Postgres => position.tx == 0 && position.id != 0,
        BackendKind::Sqlite => position.tx != 0,
    };
    Ok(match resume {
        Resume::Now => Start::After(head),
        Resume::Unreadable => Start::Reset { head, reason: FOREIGN },
        Resume::After(position) if foreign(position) => Start::Reset { head, reason: FOREIGN },
        Resume::After(position) if position > head => Start::Reset {
            head,
            reason: "the resume position is ahead of the event log (another server's?)",
        },
        Resume::After(position) if position < store.pruned_through().await? => Start::Reset {
            head,
            reason: "the resume position is older than the event retention window",
        },
        Resume::After(position) => Start::After(position),
    })
}

pub fn reset_event(head: EventPosition, reason: &str) -> sse::Event {
    let data = sse::Data::new_json(ResetData {
        reason: reason.to_string(),
    })
    .expect("reset serialises");
    sse::Event::Data(data.event(RESET).id(head.to_string()))
}

/// How often an open stream checks that its login session is still live (logout and
/// refresh-token reuse on another instance end it within this time; on this one, at once).
const SESSION_CHECK: Duration = Duration::from_secs(30);

struct StreamState {
    store: Store,
    file_links: crate::files::links::FileLinks,
    user: Uuid,
    session: Uuid,
    subscription: Subscription,
    /// The position of the last stored event sent (or the resume position).
    last_sent: EventPosition,
    replaying: bool,
    ready: VecDeque<sse::Event>,
    session_check: tokio::time::Interval,
}

/// Opens a stream of `user`'s events (login session `session`) from `resume`: the SSE events
/// to write, in order. It ends when the hub closes it (too slow, replaced, session ended,
/// shutdown) or the log cannot be read; the client then reconnects with `Last-Event-ID` and
/// loses nothing.
pub async fn open(
    hub: &Arc<Hub>,
    user: Uuid,
    session: Uuid,
    resume: Resume,
) -> StoreResult<impl Stream<Item = sse::Event> + use<>> {
    let subscription = hub.subscribe(user, session);
    hub.store()
        .register_stream(subscription.stream_id, user, hub.instance())
        .await?;
    // First, always: the stream's id, for presence subscriptions. No `id:`, so it does not
    // move the client's resume position.
    let mut ready = VecDeque::from([sse::Event::Data(
        sse::Data::new_json(ReadyData {
            stream_id: subscription.stream_id,
        })
        .expect("ready serialises")
        .event(READY),
    )]);
    let last_sent = match start_for(hub.store(), resume).await? {
        Start::After(position) => position,
        Start::Reset { head, reason } => {
            ready.push_back(reset_event(head, reason));
            head
        }
    };
    let mut session_check = tokio::time::interval_at(tokio::time::Instant::now() + SESSION_CHECK, SESSION_CHECK);
    session_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = StreamState {
        store: hub.store().clone(),
        file_links: hub.settings.file_links.clone(),
        user,
        session,
        subscription,
        last_sent,
        replaying: true,
        ready,
        session_check,
    };
    Ok(futures_util::stream::unfold(state, next_event))
}

async fn next_event(mut state: StreamState) -> Option<(sse::Event, StreamState)> {
    loop {
        if let Some(event) = state.ready.pop_front() {
            return Some((event, state));
        }
        if state.replaying {
            if let Err(error) = replay_batch(&mut state).await {
                tracing::warn!(%error, "replay failed; closing the stream so the client resumes");
                return None;
            }
            continue;
        }
        let frame = tokio::select! {
            frame = state.subscription.receiver.recv() => frame?,
            _ = state.session_check.tick() => {
                match state.store.session_is_active(state.session, state.user).await {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(error) => {
                        tracing::warn!(%error, "session check failed; closing the stream so the client resumes");
                        return None;
                    }
                }
            }
        };
        match frame.position {
            Some(position) if position <= state.last_sent => continue,
            Some(position) => state.last_sent = position,
            None => {}
        }
        return Some((frame.event, state));
    }
}

/// Reads the next batch of the replay into `ready`; at the end of the log, switches to live.
async fn replay_batch(state: &mut StreamState) -> StoreResult<()> {
    let batch = state
        .store
        .user_events_after(state.user, state.last_sent, REPLAY_BATCH)
        .await?;
    // Retention may have pruned events between the resume check and this read: a batch that
    // starts past the pruned mark could have lost some, so say so instead of skipping them.
    let pruned = state.store.pruned_through().await?;
    if pruned > state.last_sent {
        let head = state.store.head_position().await?;
        state
            .ready
            .push_back(reset_event(head, "events were pruned while resuming"));
        state.last_sent = head;
        return Ok(());
    }
    match batch.last() {
        None => state.replaying = false,
        Some(last) => {
            state.last_sent = last.position();
            let user = state.user;
            state.ready.extend(
                batch
                    .iter()
                    .map(|event| stored_frame_for(event, user, &state.file_links).event),
            );
        }
    }
    Ok(())
}
