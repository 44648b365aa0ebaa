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

use actix_web_lab::sse;
use futures_util::Stream;
use uuid::Uuid;

use super::events::{RESET, ResetData};
use super::{Hub, Subscription, stored_frame};
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

struct StreamState {
    store: Store,
    user: Uuid,
    subscription: Subscription,
    /// The position of the last stored event sent (or the resume position).
    last_sent: EventPosition,
    replaying: bool,
    ready: VecDeque<sse::Event>,
}

/// Opens a stream of `user`'s events from `resume`: the SSE events to write, in order. It
/// ends when the hub closes it (too slow, replaced, shutdown) or the log cannot be read; the
/// client then reconnects with `Last-Event-ID` and loses nothing.
pub async fn open(hub: &Arc<Hub>, user: Uuid, resume: Resume) -> StoreResult<impl Stream<Item = sse::Event> + use<>> {
    let subscription = hub.subscribe(user);
    let mut ready = VecDeque::new();
    let last_sent = match start_for(hub.store(), resume).await? {
        Start::After(position) => position,
        Start::Reset { head, reason } => {
            ready.push_back(reset_event(head, reason));
            head
        }
    };
    let state = StreamState {
        store: hub.store().clone(),
        user,
        subscription,
        last_sent,
        replaying: true,
        ready,
    };
    Ok(futures_util::stream::unfold(state, next_event))
}

async fn next_event(mut state: StreamState) -> Option<(sse::Event, StreamState)> {
    loop {
        if let Some(event) = state.ready.pop_front() {
            return Some((event, state));
        }
        if state.replaying {
            match state
                .store
                .user_events_after(state.user, state.last_sent, REPLAY_BATCH)
                .await
            {
                Ok(batch) if batch.is_empty() => state.replaying = false,
                Ok(batch) => {
                    for event in &batch {
                        state.ready.push_back(stored_frame(event).event);
                    }
                    state.last_sent = batch.last().map_or(state.last_sent, |event| event.position());
                }
                Err(error) => {
                    tracing::warn!(%error, "replay failed; closing the stream so the client resumes");
                    return None;
                }
            }
            continue;
        }
        let frame = state.subscription.receiver.recv().await?;
        match frame.position {
            Some(position) if position <= state.last_sent => continue,
            Some(position) => state.last_sent = position,
            None => {}
        }
        return Some((frame.event, state));
    }
}
