//! Publishing signed events to the configured relays: one session per relay and cycle (a relay
//! that failed to connect is not tried again in the same cycle), every event sent and its `OK`
//! awaited within `publishing.timeout`, relays served concurrently.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bigbrotr_models::relay::{Relay, parse_relay};
use bigbrotr_utils::relay::{Connector, Session};
use futures_util::future::join_all;
use tokio::sync::Mutex;

/// What one publication achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Relays that accepted every event.
    pub accepted: usize,
    /// Relays that refused, failed or could not be reached.
    pub failed: usize,
    /// Events accepted, summed over relays.
    pub events_accepted: usize,
    /// Events accepted by the relay that accepted the most.
    pub most_accepted: usize,
}

enum Slot {
    Open(Box<Session>),
    Failed,
}

/// The per-cycle publisher.
pub struct Publisher {
    connector: Connector,
    timeout: Duration,
    sessions: Mutex<HashMap<String, Arc<Mutex<Slot>>>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Publisher {
    /// A publisher whose connections follow `connector`'s rules, waiting `timeout` per answer.
    pub fn new(connector: Connector, timeout: Duration) -> Self {
        Self {
            connector,
            timeout,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    async fn slot(&self, url: &str) -> Arc<Mutex<Slot>> {
        let existing = self.sessions.lock().await.get(url).cloned();
        if let Some(slot) = existing {
            return slot;
        }
        let opened = match parse_relay(url, 0) {
            Ok(relay) => self.open(&relay).await,
            Err(error) => {
                tracing::warn!(relay = url, error = %error, "publish_relay_invalid");
                Slot::Failed
            }
        };
        let slot = Arc::new(Mutex::new(opened));
        self.sessions
            .lock()
            .await
            .entry(url.to_owned())
            .or_insert(slot)
            .clone()
    }

    async fn open(&self, relay: &Relay) -> Slot {
        match self
            .connector
            .open_session_within(relay, self.timeout)
            .await
        {
            Ok(session) => Slot::Open(Box::new(session)),
            Err(error) => {
                tracing::warn!(relay = relay.url(), error = %error, "publish_connect_failed");
                Slot::Failed
            }
        }
    }

    /// Sends `events` to each of `relays` (concurrently across relays, in order within one). A
    /// relay counts as accepted when it accepted every event. Duplicate URLs are sent to once.
    pub async fn publish(&self, events: &[nostr::Event], relays: &[String]) -> Delivery {
        let mut unique: Vec<&String> = Vec::with_capacity(relays.len());
        for url in relays {
            if !unique.contains(&url) {
                unique.push(url);
            }
        }
        let outcomes = join_all(unique.iter().map(|url| self.publish_to(url, events))).await;
        let mut delivery = Delivery::default();
        for accepted in outcomes {
            delivery.events_accepted += accepted;
            delivery.most_accepted = delivery.most_accepted.max(accepted);
            if accepted == events.len() && !events.is_empty() {
                delivery.accepted += 1;
            } else {
                delivery.failed += 1;
            }
        }
        delivery
    }

    /// Returns how many of `events` the relay accepted. A session that breaks or stops
    /// answering (relays drop idle connections between chunks) is reopened once and the event
    /// sent again; a second failure gives the relay up for the cycle.
    async fn publish_to(&self, url: &str, events: &[nostr::Event]) -> usize {
        let slot = self.slot(url).await;
        let mut slot = slot.lock().await;
        let mut accepted = 0;
        let mut reopened = false;
        let mut next = 0;
        while let Some(event) = events.get(next) {
            let answer = match &mut *slot {
                Slot::Open(session) => session.publish(event, self.timeout).await,
                Slot::Failed => break,
            };
            match answer {
                Ok(answer) => {
                    if answer.accepted {
                        accepted += 1;
                    } else {
                        tracing::info!(
                            relay = url,
                            kind = event.kind.as_u16(),
                            message = answer.message.as_str(),
                            "publish_refused"
                        );
                    }
                    next += 1;
                }
                Err(error) if !reopened => {
                    tracing::debug!(relay = url, error = %error, "publish_reconnect");
                    reopened = true;
                    *slot = match parse_relay(url, 0) {
                        Ok(relay) => self.open(&relay).await,
                        Err(_) => Slot::Failed,
                    };
                }
                Err(error) => {
                    tracing::warn!(relay = url, error = %error, "publish_failed");
                    *slot = Slot::Failed;
                    break;
                }
            }
        }
        accepted
    }

    /// Closes every session.
    pub async fn close(self) {
        let sessions = self.sessions.into_inner();
        for (_, slot) in sessions {
            if let Ok(slot) = Arc::try_unwrap(slot)
                && let Slot::Open(session) = slot.into_inner()
            {
                session.close().await;
            }
        }
    }
}
