//! How an instance learns that something happened elsewhere: the doorbell for committed
//! events and the carrier for ephemeral ones (typing, presence).
//!
//! The event log in the database is the source of truth; the fan-out only says "look now" and
//! carries what is never stored. With PostgreSQL it is LISTEN/NOTIFY, so several instances
//! need no other service; with SQLite (one process) it stays in memory. Another carrier (NATS,
//! Redis) would implement [`Fanout`] and feed the same [`Signal`]s.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::store::{EVENTS_CHANNEL, Store};

/// The NOTIFY channel of ephemeral events.
const EPHEMERAL_CHANNEL: &str = "chat_ephemeral";
/// NOTIFY payloads must stay under 8,000 bytes.
const MAX_NOTIFY_PAYLOAD: usize = 7_900;

/// Who receives an ephemeral event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EphemeralAudience {
    /// The participants of a conversation, but one (typically the one typing).
    Conversation { id: Uuid, except: Option<Uuid> },
    /// Who sees this user's presence: those told unasked (see `Store::presence_audience`) and
    /// the streams subscribed to it.
    PresenceOf { user: Uuid },
}

/// An event delivered live only: never stored, never replayed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EphemeralEvent {
    pub kind: String,
    pub audience: EphemeralAudience,
    /// The JSON `data` of the event, serialised.
    pub payload: String,
}

/// What the dispatcher is told.
#[derive(Debug)]
pub enum Signal {
    /// A transaction that appended events committed (its id, when the carrier knows it).
    Committed {
        tx: Option<i64>,
    },
    Ephemeral(EphemeralEvent),
}

pub type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Sends ephemeral events to every instance (this one included).
pub trait Fanout: Send + Sync {
    fn publish(&self, event: EphemeralEvent) -> BoxFuture<'_>;
}

/// One process: straight to this instance's dispatcher.
pub struct InProcessFanout {
    signals: mpsc::Sender<Signal>,
}

impl Fanout for InProcessFanout {
    fn publish(&self, event: EphemeralEvent) -> BoxFuture<'_> {
        // Ephemeral events may be dropped under overload: a typing indicator is not worth a wait.
        let _ = self.signals.try_send(Signal::Ephemeral(event));
        Box::pin(async {})
    }
}

/// Several processes on one PostgreSQL database: NOTIFY to all of them.
pub struct PostgresFanout {
    store: Store,
}

impl Fanout for PostgresFanout {
    fn publish(&self, event: EphemeralEvent) -> BoxFuture<'_> {
        Box::pin(async move {
            let Some(pool) = self.store.postgres_pool() else { return };
            let payload = serde_json::to_string(&event).expect("ephemeral events serialise");
            if payload.len() > MAX_NOTIFY_PAYLOAD {
                tracing::warn!(kind = %event.kind, bytes = payload.len(), "ephemeral event too large for NOTIFY; dropped");
                return;
            }
            if let Err(error) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(EPHEMERAL_CHANNEL)
                .bind(&payload)
                .execute(pool)
                .await
            {
                tracing::warn!(%error, "could not publish an ephemeral event");
            }
        })
    }
}

/// Starts the listeners that feed `signals` and returns the publisher for this backend.
pub fn start(store: &Store, signals: mpsc::Sender<Signal>) -> Box<dyn Fanout> {
    // Same-process commits ring the store's bell at once: no round trip through the database.
    let bell = store.commit_bell();
    let bell_signals = signals.clone();
    tokio::spawn(async move {
        loop {
            bell.notified().await;
            if let Err(mpsc::error::TrySendError::Closed(_)) = bell_signals.try_send(Signal::Committed { tx: None }) {
                return;
            }
        }
    });
    match store.postgres_pool() {
        Some(_) => {
            tokio::spawn(listen_postgres(store.clone(), signals));
            Box::new(PostgresFanout { store: store.clone() })
        }
        None => Box::new(InProcessFanout { signals }),
    }
}

/// LISTENs for other instances' commits and ephemeral events. A lost connection is
/// re-established, and a re-read is forced since notifications sent meanwhile are gone.
async fn listen_postgres(store: Store, signals: mpsc::Sender<Signal>) {
    let Some(pool) = store.postgres_pool() else { return };
    loop {
        let mut listener = match PgListener::connect_with(pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen_all([EVENTS_CHANNEL, EPHEMERAL_CHANNEL]).await {
            tracing::warn!(%error, "cannot LISTEN; retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            let signal = match listener.try_recv().await {
                Ok(Some(notification)) if notification.channel() == EPHEMERAL_CHANNEL => {
                    match serde_json::from_str(notification.payload()) {
                        Ok(event) => Signal::Ephemeral(event),
                        Err(error) => {
                            tracing::warn!(%error, "unreadable ephemeral notification");
                            continue;
                        }
                    }
                }
                Ok(Some(notification)) => Signal::Committed {
                    tx: notification.payload().parse().ok(),
                },
                // Reconnected: whatever was announced meanwhile is lost, so look anyway.
                Ok(None) => Signal::Committed { tx: None },
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    tracing::warn!(%error, "LISTEN connection failed; reconnecting");
                    let _ = signals.try_send(Signal::Committed { tx: None });
                    break;
                }
            };
            match signals.try_send(signal) {
                Ok(()) => {}
                // A full queue already holds a reason to look; dropping this one loses nothing
                // stored (and only an ephemeral event otherwise).
                Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}
