//! The HTTP check (`nip66_http`, every network): the `Server` and `X-Powered-By` headers of the
//! relay's WebSocket handshake answer, through the network's proxy for overlays.

use std::time::Duration;

use bigbrotr_models::relay::Relay;
use bigbrotr_utils::relay::Connector;
use serde_json::{Map, Value};

use crate::CheckOutcome;

/// Opens a WebSocket to `relay` within `timeout` and records the identifying headers.
pub async fn check(connector: &Connector, relay: &Relay, timeout: Duration) -> CheckOutcome {
    let session = match connector.open_session_within(relay, timeout).await {
        Ok(session) => session,
        Err(error) => return CheckOutcome::failure(error.to_string()),
    };
    let headers = session.handshake_headers().clone();
    session.close().await;
    let mut data = Map::new();
    if let Some(server) = headers.server {
        data.insert("http_server".to_owned(), Value::String(server));
    }
    if let Some(powered_by) = headers.powered_by {
        data.insert("http_powered_by".to_owned(), Value::String(powered_by));
    }
    if data.is_empty() {
        return CheckOutcome::failure("no HTTP headers captured");
    }
    CheckOutcome::success(data)
}
