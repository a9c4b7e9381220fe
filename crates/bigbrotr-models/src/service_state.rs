//! Rows of the `service_state` table and the typed values services keep in them.
//!
//! | service / type / key | value |
//! |---|---|
//! | validator / checkpoint / relay URL (candidate) | [`CandidateRecord`] `{"network","failures","timestamp"}` |
//! | finder / checkpoint / API source URL | [`Checkpoint`] `{"timestamp"}` |
//! | finder / cursor / relay URL | [`Cursor`] `{"timestamp","id"}` (seen_at, event id) |
//! | synchronizer / cursor / relay URL | [`Cursor`] `{"timestamp","id"}` (created_at, event id) |
//! | monitor / checkpoint / relay URL, `announcement`, `profile`, `relay_list` | [`Checkpoint`] |

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::metadata::{MetadataError, python_type_name, sanitize_named};
use crate::relay::NetworkType;

/// Why a service-state row or record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceStateError {
    /// The state key contains NUL.
    #[error("state_key contains null bytes")]
    NullByteInKey,
    /// The state key is empty.
    #[error("state_key must not be empty")]
    EmptyKey,
    /// The state value is not a JSON object (holds Python's name for what it was).
    #[error("state_value must be a Mapping, got {0}")]
    NotAnObject(&'static str),
    /// The state value failed sanitising (NUL in a string or key).
    #[error(transparent)]
    Value(#[from] MetadataError),
    /// A stored value does not have the shape of the expected record.
    #[error("invalid {record} value: {reason}")]
    InvalidRecord {
        /// The record type that was expected.
        record: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A cursor id that is not 64 hex characters.
    #[error("cursor id must be 64 hex characters, got '{0}'")]
    InvalidCursorId(String),
    /// A service name that is not one of the [`ServiceName`] values.
    #[error("unknown service name: '{0}'")]
    UnknownServiceName(String),
    /// A state type that is not one of the [`ServiceStateType`] values.
    #[error("unknown service state type: '{0}'")]
    UnknownStateType(String),
}

/// The eight services, as stored in `service_state.service_name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    /// One-shot bootstrap from the seed file.
    Seeder,
    /// Relay URL discovery from APIs and stored events.
    Finder,
    /// Candidate validation and promotion.
    Validator,
    /// NIP-11/NIP-66 checks and publishing.
    Monitor,
    /// Event archiving.
    Synchronizer,
    /// Materialized view refresh.
    Refresher,
    /// Read-only REST API.
    Api,
    /// NIP-90 data vending machine.
    Dvm,
}

impl ServiceName {
    /// All eight services, in declaration order.
    pub const ALL: [ServiceName; 8] = [
        ServiceName::Seeder,
        ServiceName::Finder,
        ServiceName::Validator,
        ServiceName::Monitor,
        ServiceName::Synchronizer,
        ServiceName::Refresher,
        ServiceName::Api,
        ServiceName::Dvm,
    ];

    /// The lower-case name (also the metrics `service` label).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Seeder => "seeder",
            ServiceName::Finder => "finder",
            ServiceName::Validator => "validator",
            ServiceName::Monitor => "monitor",
            ServiceName::Synchronizer => "synchronizer",
            ServiceName::Refresher => "refresher",
            ServiceName::Api => "api",
            ServiceName::Dvm => "dvm",
        }
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceName {
    type Err = ServiceStateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ServiceName::ALL
            .into_iter()
            .find(|name| name.as_str() == text)
            .ok_or_else(|| ServiceStateError::UnknownServiceName(text.to_owned()))
    }
}

/// The two kinds of state rows, as stored in `service_state.state_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStateType {
    /// A timestamped marker (also used for validator candidates).
    Checkpoint,
    /// A `(timestamp, id)` position in an ordered stream.
    Cursor,
}

impl ServiceStateType {
    /// Both types, in declaration order.
    pub const ALL: [ServiceStateType; 2] = [ServiceStateType::Checkpoint, ServiceStateType::Cursor];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStateType::Checkpoint => "checkpoint",
            ServiceStateType::Cursor => "cursor",
        }
    }
}

impl fmt::Display for ServiceStateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceStateType {
    type Err = ServiceStateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ServiceStateType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| ServiceStateError::UnknownStateType(text.to_owned()))
    }
}

/// One `service_state` row; `state_value` is sanitised like metadata (sorted keys, no nulls or
/// empty containers, no NUL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    service_name: ServiceName,
    state_type: ServiceStateType,
    state_key: String,
    state_value: Value,
}

impl ServiceState {
    /// Validates a non-empty, NUL-free key and a JSON-object value, and sanitises the value.
    pub fn new(
        service_name: ServiceName,
        state_type: ServiceStateType,
        state_key: impl Into<String>,
        state_value: Value,
    ) -> Result<ServiceState, ServiceStateError> {
        let state_key = state_key.into();
        if state_key.contains('\0') {
            return Err(ServiceStateError::NullByteInKey);
        }
        if state_key.is_empty() {
            return Err(ServiceStateError::EmptyKey);
        }
        if !state_value.is_object() {
            return Err(ServiceStateError::NotAnObject(python_type_name(
                &state_value,
            )));
        }
        let state_value = sanitize_named(&state_value, "state_value")?.unwrap_or_else(|| json!({}));
        Ok(ServiceState {
            service_name,
            state_type,
            state_key,
            state_value,
        })
    }

    /// A validator candidate: `validator / checkpoint / <relay url>`.
    pub fn candidate(
        relay_url: &str,
        record: &CandidateRecord,
    ) -> Result<ServiceState, ServiceStateError> {
        ServiceState::new(
            ServiceName::Validator,
            ServiceStateType::Checkpoint,
            relay_url,
            record.to_value(),
        )
    }

    /// A checkpoint row for `service_name` under `key`.
    pub fn checkpoint(
        service_name: ServiceName,
        key: &str,
        checkpoint: &Checkpoint,
    ) -> Result<ServiceState, ServiceStateError> {
        ServiceState::new(
            service_name,
            ServiceStateType::Checkpoint,
            key,
            checkpoint.to_value(),
        )
    }

    /// A cursor row for `service_name` under `key` (callers skip cursors that
    /// [`Cursor::should_write`] rejects).
    pub fn cursor(
        service_name: ServiceName,
        key: &str,
        cursor: &Cursor,
    ) -> Result<ServiceState, ServiceStateError> {
        ServiceState::new(
            service_name,
            ServiceStateType::Cursor,
            key,
            cursor.to_value(),
        )
    }

    /// The owning service.
    pub fn service_name(&self) -> ServiceName {
        self.service_name
    }

    /// Checkpoint or cursor.
    pub fn state_type(&self) -> ServiceStateType {
        self.state_type
    }

    /// The key (a relay URL, an API source URL or a marker name).
    pub fn state_key(&self) -> &str {
        &self.state_key
    }

    /// The sanitised value (always a JSON object).
    pub fn state_value(&self) -> &Value {
        &self.state_value
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    record: &'static str,
    value: &Value,
) -> Result<T, ServiceStateError> {
    serde_json::from_value(value.clone()).map_err(|error| ServiceStateError::InvalidRecord {
        record,
        reason: error.to_string(),
    })
}

/// A relay URL waiting for validation: `{"network": …, "failures": N, "timestamp": unix}`.
///
/// `timestamp` is when the candidate was inserted or last failed; `failures` counts failed
/// validation attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateRecord {
    /// The relay's network.
    pub network: NetworkType,
    /// Failed validation attempts so far.
    pub failures: i64,
    /// Unix seconds of insertion or of the last failed attempt.
    pub timestamp: i64,
}

impl CandidateRecord {
    /// The JSON object stored as `state_value`.
    pub fn to_value(&self) -> Value {
        json!({ "network": self.network, "failures": self.failures, "timestamp": self.timestamp })
    }

    /// Reads a stored value (extra keys are ignored).
    pub fn from_value(value: &Value) -> Result<CandidateRecord, ServiceStateError> {
        decode("candidate", value)
    }
}

/// A timestamp marker: `{"timestamp": unix}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Unix seconds of the last fetch, check or publication.
    pub timestamp: i64,
}

impl Checkpoint {
    /// The JSON object stored as `state_value`.
    pub fn to_value(&self) -> Value {
        json!({ "timestamp": self.timestamp })
    }

    /// Reads a stored value (extra keys are ignored).
    pub fn from_value(value: &Value) -> Result<Checkpoint, ServiceStateError> {
        decode("checkpoint", value)
    }
}

/// A stream position: `{"timestamp": unix, "id": "<64 hex event id>"}`.
///
/// The default cursor is `(0, 64 zeros)`; cursors at timestamp 0 are never written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawCursor")]
pub struct Cursor {
    /// Unix seconds (`seen_at` for the finder, `created_at` for the synchronizer).
    pub timestamp: i64,
    /// Event id as 64 lower-case hex characters.
    pub id: String,
}

#[derive(Deserialize)]
struct RawCursor {
    timestamp: i64,
    id: String,
}

impl TryFrom<RawCursor> for Cursor {
    type Error = ServiceStateError;

    fn try_from(raw: RawCursor) -> Result<Self, Self::Error> {
        Cursor::new(raw.timestamp, &raw.id)
    }
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            timestamp: 0,
            id: "0".repeat(64),
        }
    }
}

impl Cursor {
    /// A cursor at `timestamp` and event `id` (64 hex characters, stored lower-case).
    pub fn new(timestamp: i64, id: &str) -> Result<Cursor, ServiceStateError> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServiceStateError::InvalidCursorId(id.to_owned()));
        }
        Ok(Cursor {
            timestamp,
            id: id.to_ascii_lowercase(),
        })
    }

    /// A cursor at `timestamp` and the raw 32-byte event id.
    pub fn from_id_bytes(timestamp: i64, id: &[u8; 32]) -> Cursor {
        Cursor {
            timestamp,
            id: hex::encode(id),
        }
    }

    /// Whether the cursor carries a position worth persisting (timestamp above 0).
    pub fn should_write(&self) -> bool {
        self.timestamp > 0
    }

    /// The JSON object stored as `state_value`.
    pub fn to_value(&self) -> Value {
        json!({ "timestamp": self.timestamp, "id": self.id })
    }

    /// Reads a stored value (extra keys are ignored; the id must be 64 hex characters).
    pub fn from_value(value: &Value) -> Result<Cursor, ServiceStateError> {
        let raw: RawCursor = decode("cursor", value)?;
        Cursor::try_from(raw)
    }
}
