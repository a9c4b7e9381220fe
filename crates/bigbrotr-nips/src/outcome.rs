//! The outcome of one check: the `data` and `logs` halves of the envelope BigBrotr stores as
//! content-addressed metadata (`{"data": {...}, "logs": {"success": bool, "reason": "..."}}`).

use bigbrotr_models::metadata::{Metadata, MetadataError, MetadataType};
use serde_json::{Map, Value};

/// What one check produced. `data` holds the measured fields (empty on failure), `logs` the
/// success flag and, on failure, the reason (RTT keeps one flag and reason per phase).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckOutcome {
    /// The measured fields.
    pub data: Map<String, Value>,
    /// `success`/`reason` (or the RTT phase flags).
    pub logs: Map<String, Value>,
}

impl CheckOutcome {
    /// A successful check with `data`.
    pub fn success(data: Map<String, Value>) -> Self {
        let mut logs = Map::new();
        logs.insert("success".to_owned(), Value::Bool(true));
        Self { data, logs }
    }

    /// A failed check with its reason and no data.
    pub fn failure(reason: impl Into<String>) -> Self {
        let mut logs = Map::new();
        logs.insert("success".to_owned(), Value::Bool(false));
        logs.insert("reason".to_owned(), Value::String(reason.into()));
        Self {
            data: Map::new(),
            logs,
        }
    }

    /// Whether the check succeeded (`logs.success`; for RTT, `logs.open_success`).
    pub fn succeeded(&self) -> bool {
        let flag = self
            .logs
            .get("success")
            .or_else(|| self.logs.get("open_success"));
        flag.and_then(Value::as_bool).unwrap_or(false)
    }

    /// The failure reason, if any (`logs.reason`; for RTT, `logs.open_reason`).
    pub fn reason(&self) -> Option<&str> {
        self.logs
            .get("reason")
            .or_else(|| self.logs.get("open_reason"))
            .and_then(Value::as_str)
    }

    /// A string field of `data`.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    /// An integer field of `data`.
    pub fn int_field(&self, key: &str) -> Option<i64> {
        self.data.get(key).and_then(Value::as_i64)
    }

    /// The stored envelope, sanitised, canonicalised and hashed.
    pub fn to_metadata(&self, metadata_type: MetadataType) -> Result<Metadata, MetadataError> {
        Metadata::envelope(
            metadata_type,
            Value::Object(self.data.clone()),
            Value::Object(self.logs.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_envelope_has_no_data_and_hashes_like_the_original() {
        let outcome = CheckOutcome::failure("HTTP 404");
        assert!(!outcome.succeeded());
        let metadata = outcome.to_metadata(MetadataType::Nip11Info).expect("valid");
        assert_eq!(
            metadata.canonical(),
            r#"{"logs":{"reason":"HTTP 404","success":false}}"#
        );
    }

    #[test]
    fn success_envelope_keeps_data() {
        let mut data = Map::new();
        data.insert("http_server".to_owned(), Value::from("nginx"));
        let outcome = CheckOutcome::success(data);
        assert!(outcome.succeeded());
        assert_eq!(outcome.str_field("http_server"), Some("nginx"));
        let metadata = outcome.to_metadata(MetadataType::Nip66Http).expect("valid");
        assert_eq!(
            metadata.canonical(),
            r#"{"data":{"http_server":"nginx"},"logs":{"success":true}}"#
        );
    }
}
