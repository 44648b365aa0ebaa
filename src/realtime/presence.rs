//! Presence: a user is online while at least one of their streams is open, on any instance.
//! Each instance records in the database which users it holds streams of (with a heartbeat,
//! so a crashed instance stops counting). Going offline waits a debounce first, so that a
//! quick reconnect (a page reload, a train tunnel) does not flap.
//!
//! An instance applies its presence changes one at a time, in the order they happened (one
//! task reads them from a queue): a reconnect racing a disconnect's database write can then
//! never leave the rows or the announcements in the wrong order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::Hub;
use super::fanout::{EphemeralAudience, EphemeralEvent};
use super::payloads::{PRESENCE, PresenceData};
use crate::store::{self, Store, StoreResult};

/// Heartbeat period of an instance; an instance silent for `ALIVE_FOR` is taken for dead.
const HEARTBEAT: Duration = Duration::from_secs(10);
const ALIVE_FOR: Duration = Duration::from_secs(30);

/// Instances that heartbeat after this are alive (their presence rows and streams count).
pub fn alive_since(now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    now - chrono::Duration::from_std(ALIVE_FOR).unwrap_or_default()
}

enum Change {
    Connected {
        user: Uuid,
    },
    /// The user's last stream here closed `debounce` ago (as of change `generation`).
    Gone {
        user: Uuid,
        generation: u64,
    },
}

pub(super) struct PresenceState {
    instance: Uuid,
    debounce: Duration,
    changes: mpsc::UnboundedSender<Change>,
    queue: Mutex<Option<mpsc::UnboundedReceiver<Change>>>,
    /// Only ever increases: numbers every connect and disconnect of this instance.
    generation: AtomicU64,
    /// The latest change per user: a pending "gone" that is no longer the latest was
    /// overtaken by a reconnect.
    latest: Mutex<HashMap<Uuid, u64>>,
    stopped: Arc<AtomicBool>,
}

impl PresenceState {
    pub(super) async fn start(store: &Store, instance: Uuid, debounce: Duration) -> StoreResult<Self> {
        store.heartbeat_instance(instance, store::now()).await?;
        let stopped = Arc::new(AtomicBool::new(false));
        let (heartbeat_store, heartbeat_stopped) = (store.clone(), stopped.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT);
            loop {
                ticks.tick().await;
                if heartbeat_stopped.load(Ordering::Relaxed) {
                    return;
                }
                if let Err(error) = heartbeat_store.heartbeat_instance(instance, store::now()).await {
                    tracing::warn!(%error, "instance heartbeat failed");
                }
            }
        });
        let (changes, queue) = mpsc::unbounded_channel();
        Ok(Self {
            instance,
            debounce,
            changes,
            queue: Mutex::new(Some(queue)),
            generation: AtomicU64::new(0),
            latest: Mutex::new(HashMap::new()),
            stopped,
        })
    }

    pub(super) fn instance(&self) -> Uuid {
        self.instance
    }

    fn record(&self, user: Uuid) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.latest().insert(user, generation);
        generation
    }

    fn latest(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, u64>> {
        self.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Which of `users` are online (a live instance holds a stream of theirs), and when each was
/// last active; users that do not exist are left out.
pub async fn last_activity(
    store: &Store,
    users: &[Uuid],
) -> StoreResult<HashMap<Uuid, (bool, Option<chrono::DateTime<Utc>>)>> {
    store.presence_of(users, alive_since(store::now())).await
}

/// Whether `user` shows as online, by the database: a stream open anywhere, unless they
/// chose `offline` (or `online`) with `POST /user/me/status`.
pub async fn online_anywhere(store: &Store, user: Uuid) -> StoreResult<bool> {
    Ok(last_activity(store, &[user])
        .await?
        .get(&user)
        .is_some_and(|(online, _)| *online))
}

impl Hub {
    /// Starts applying this instance's presence changes (once, from `Hub::start`).
    pub(super) fn start_presence(self: &Arc<Self>) {
        let Some(mut queue) = self
            .presence
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        else {
            return;
        };
        let hub = self.clone();
        tokio::spawn(async move {
            while let Some(change) = queue.recv().await {
                if let Err(error) = hub.apply_presence(change).await {
                    tracing::warn!(%error, "could not record presence");
                }
            }
        });
    }

    /// The user's first stream on this instance opened.
    pub(super) fn user_connected(&self, user: Uuid) {
        self.presence.record(user);
        let _ = self.presence.changes.send(Change::Connected { user });
    }

    /// The user's last stream on this instance closed: after the debounce, unless they came
    /// back, they are offline here, and offline for everyone if no other instance has them.
    pub(super) fn user_disconnected(&self, user: Uuid) {
        let generation = self.presence.record(user);
        let (changes, debounce) = (self.presence.changes.clone(), self.presence.debounce);
        tokio::spawn(async move {
            tokio::time::sleep(debounce).await;
            let _ = changes.send(Change::Gone { user, generation });
        });
    }

    async fn apply_presence(&self, change: Change) -> StoreResult<()> {
        match change {
            Change::Connected { user } => {
                let was_online = online_anywhere(&self.store, user).await?;
                self.store
                    .set_presence(user, self.presence.instance, true, store::now())
                    .await?;
                if !was_online && online_anywhere(&self.store, user).await? {
                    self.announce_presence(user, true).await;
                }
            }
            Change::Gone { user, generation } => {
                let latest = self.presence.latest().get(&user).copied();
                if latest != Some(generation) || self.is_connected_here(user) {
                    return Ok(());
                }
                self.presence.latest().remove(&user);
                let was_online = online_anywhere(&self.store, user).await?;
                self.store
                    .set_presence(user, self.presence.instance, false, store::now())
                    .await?;
                if was_online && !online_anywhere(&self.store, user).await? {
                    self.announce_presence(user, false).await;
                }
            }
        }
        Ok(())
    }

    /// Tells whoever sees `user`'s presence that they are now online (or offline).
    pub async fn announce_presence(&self, user: Uuid, online: bool) {
        let data = PresenceData {
            user_id: user,
            status: if online { "online" } else { "offline" },
            last_active_at: Utc::now(),
        };
        self.publish_ephemeral(EphemeralEvent {
            kind: PRESENCE.to_string(),
            audience: EphemeralAudience::PresenceOf { user },
            payload: serde_json::to_string(&data).expect("presence serialises"),
        })
        .await;
    }

    /// At shutdown: this instance holds no streams any more.
    pub(super) async fn leave_presence(&self) {
        self.presence.stopped.store(true, Ordering::Relaxed);
        if let Err(error) = self.store.remove_instance(self.presence.instance).await {
            tracing::warn!(%error, "could not remove this instance's presence");
        }
    }
}
