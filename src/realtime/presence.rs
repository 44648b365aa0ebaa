//! Presence: a user is online while at least one of their streams is open, on any instance.
//! Each instance records in the database which users it holds streams of (with a heartbeat,
//! so a crashed instance stops counting). Going offline waits a debounce first, so that a
//! quick reconnect (a page reload, a train tunnel) does not flap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::Hub;
use super::events::{PRESENCE, PresenceData};
use super::fanout::{EphemeralAudience, EphemeralEvent};
use crate::store::{self, Store, StoreResult};

/// Heartbeat period of an instance; an instance silent for `ALIVE_FOR` is taken for dead.
const HEARTBEAT: Duration = Duration::from_secs(10);
const ALIVE_FOR: Duration = Duration::from_secs(30);

pub(super) struct PresenceState {
    instance: Uuid,
    debounce: Duration,
    /// Bumped on every connect and disconnect of a user: a pending "offline" whose generation
    /// is no longer current was overtaken by a reconnect.
    generations: Mutex<HashMap<Uuid, u64>>,
}

impl PresenceState {
    pub(super) async fn start(store: &Store, instance: Uuid, debounce: Duration) -> StoreResult<Self> {
        store.heartbeat_instance(instance, store::now()).await?;
        let heartbeat_store = store.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT);
            loop {
                ticks.tick().await;
                if let Err(error) = heartbeat_store.heartbeat_instance(instance, store::now()).await {
                    tracing::warn!(%error, "instance heartbeat failed");
                }
            }
        });
        Ok(Self {
            instance,
            debounce,
            generations: Mutex::new(HashMap::new()),
        })
    }

    fn bump(&self, user: Uuid) -> u64 {
        let mut generations = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let generation = generations.entry(user).or_insert(0);
        *generation += 1;
        *generation
    }

    fn is_current(&self, user: Uuid, generation: u64) -> bool {
        let generations = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        generations.get(&user) == Some(&generation)
    }

    fn forget(&self, user: Uuid, generation: u64) {
        let mut generations = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if generations.get(&user) == Some(&generation) {
            generations.remove(&user);
        }
    }
}

/// Whether `user` is online anywhere, by the database.
async fn online_anywhere(store: &Store, user: Uuid) -> StoreResult<bool> {
    Ok(last_activity(store, &[user])
        .await?
        .get(&user)
        .is_some_and(|(online, _)| *online))
}

/// Which of `users` are online (a live instance holds a stream of theirs), and when each was
/// last active; users that do not exist are left out.
pub async fn last_activity(
    store: &Store,
    users: &[Uuid],
) -> StoreResult<HashMap<Uuid, (bool, Option<chrono::DateTime<Utc>>)>> {
    let alive_since = store::now() - chrono::Duration::from_std(ALIVE_FOR).unwrap_or_default();
    store.presence_of(users, alive_since).await
}

impl Hub {
    /// The user's first stream on this instance opened.
    pub(super) fn user_connected(self: &Arc<Self>, user: Uuid) {
        let generation = self.presence.bump(user);
        let hub = self.clone();
        tokio::spawn(async move {
            let result = async {
                let was_online = online_anywhere(&hub.store, user).await?;
                hub.store
                    .set_presence(user, hub.presence.instance, true, store::now())
                    .await?;
                if !was_online && hub.presence.is_current(user, generation) {
                    hub.announce_presence(user, "online").await;
                }
                StoreResult::Ok(())
            };
            if let Err(error) = result.await {
                tracing::warn!(%error, "could not record presence");
            }
        });
    }

    /// The user's last stream on this instance closed: after the debounce, unless they came
    /// back, they are offline here, and offline for everyone if no other instance has them.
    pub(super) fn user_disconnected(self: &Arc<Self>, user: Uuid) {
        let generation = self.presence.bump(user);
        let hub = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(hub.presence.debounce).await;
            if !hub.presence.is_current(user, generation) || hub.is_connected_here(user) {
                return;
            }
            hub.presence.forget(user, generation);
            let result = async {
                hub.store
                    .set_presence(user, hub.presence.instance, false, store::now())
                    .await?;
                if !online_anywhere(&hub.store, user).await? {
                    hub.announce_presence(user, "offline").await;
                }
                StoreResult::Ok(())
            };
            if let Err(error) = result.await {
                tracing::warn!(%error, "could not record presence");
            }
        });
    }

    async fn announce_presence(&self, user: Uuid, status: &'static str) {
        let data = PresenceData {
            user_id: user,
            status,
            last_active_at: Utc::now(),
        };
        self.publish_ephemeral(EphemeralEvent {
            kind: PRESENCE.to_string(),
            audience: EphemeralAudience::ContactsOf { user },
            payload: serde_json::to_string(&data).expect("presence serialises"),
        })
        .await;
    }

    /// At shutdown: this instance holds no streams any more.
    pub(super) async fn leave_presence(&self) {
        if let Err(error) = self.store.remove_instance(self.presence.instance).await {
            tracing::warn!(%error, "could not remove this instance's presence");
        }
    }
}
