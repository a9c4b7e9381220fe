//! "Is this a Nostr relay?": the validator's probe. A relay is valid when it answers a REQ with
//! an event or EOSE, or asks for NIP-42 AUTH; anything else within the network's timeout (a
//! silent socket, garbage frames, a dropped connection, a flood of unrelated messages) is a
//! failure with a reason. The whole probe, connection included, costs at most that timeout.

use std::time::Duration;

use bigbrotr_models::relay::Relay;
use nostr_sdk::prelude::{
    Filter, Kind, RelayMessage, RelayNotification, RelayStatus, SubscribeOptions, SubscriptionId,
};
use tokio::sync::broadcast::error::RecvError;

use super::{ConnectError, Connector};

/// Why a relay counts as a Nostr relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// It sent an event for the probe's subscription.
    Event,
    /// It ended the stored events (EOSE).
    Eose,
    /// It sent an AUTH challenge or closed the REQ with `auth-required:`.
    AuthRequired,
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// No connection.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Connected, but no answer to the REQ within the budget.
    #[error("no answer to REQ within {0:?}")]
    Silent(Duration),
    /// The relay closed the connection before answering.
    #[error("connection closed before an answer")]
    Dropped,
    /// The relay refused the REQ for a reason other than AUTH.
    #[error("REQ closed: {0}")]
    Closed(String),
}

/// Probes `relay` with `{"kinds":[1],"limit":1}` within the network's timeout.
pub async fn probe(connector: &Connector, relay: &Relay) -> Result<Evidence, ProbeError> {
    let budget = connector.timeout(relay.network())?;
    match tokio::time::timeout(budget, probe_inner(connector, relay, budget)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(ProbeError::Silent(budget)),
    }
}

async fn probe_inner(
    connector: &Connector,
    relay: &Relay,
    budget: Duration,
) -> Result<Evidence, ProbeError> {
    let mut connection = connector.connect_within(relay, budget).await?;
    let outcome = async {
        let Some(mut notifications) = connection.take_notifications() else {
            return Err(ProbeError::Dropped);
        };
        // An AUTH challenge sent right after the handshake already answers the question.
        while let Ok(notification) = notifications.try_recv() {
            if let Some(verdict) = judge(&notification, None) {
                return verdict;
            }
        }
        let id = SubscriptionId::generate();
        let filter = Filter::new().kind(Kind::TextNote).limit(1);
        connection
            .relay()
            .subscribe_with_id(id.clone(), filter, SubscribeOptions::default())
            .await
            .map_err(|_| ProbeError::Dropped)?;
        loop {
            match notifications.recv().await {
                Ok(notification) => {
                    if let Some(verdict) = judge(&notification, Some(&id)) {
                        return verdict;
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return Err(ProbeError::Dropped),
            }
        }
    }
    .await;
    connection.shutdown().await;
    outcome
}

/// The verdict a notification gives, if any.
fn judge(
    notification: &RelayNotification,
    id: Option<&SubscriptionId>,
) -> Option<Result<Evidence, ProbeError>> {
    match notification {
        RelayNotification::Event {
            subscription_id, ..
        } if Some(subscription_id) == id => Some(Ok(Evidence::Event)),
        RelayNotification::Message { message } => match message {
            RelayMessage::EndOfStoredEvents(sub) if Some(sub.as_ref()) == id => {
                Some(Ok(Evidence::Eose))
            }
            RelayMessage::Auth { .. } => Some(Ok(Evidence::AuthRequired)),
            RelayMessage::Closed {
                subscription_id,
                message,
            } if Some(subscription_id.as_ref()) == id => {
                if message.starts_with("auth-required") {
                    Some(Ok(Evidence::AuthRequired))
                } else {
                    Some(Err(ProbeError::Closed(truncate(message, 200))))
                }
            }
            _ => None,
        },
        RelayNotification::RelayStatus {
            status: RelayStatus::Disconnected | RelayStatus::Terminated | RelayStatus::Banned,
        } => Some(Err(ProbeError::Dropped)),
        RelayNotification::Authenticated | RelayNotification::AuthenticationFailed => {
            Some(Ok(Evidence::AuthRequired))
        }
        RelayNotification::Shutdown => Some(Err(ProbeError::Dropped)),
        _ => None,
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
