//! Verified Nostr events in the form stored in the `event` table.

#[cfg(test)]
mod tests;

use nostr::JsonUtil;
use serde_json::Value;

/// Longest accepted tag value in characters (the GIN index row limit behind `tagvalues`).
pub const MAX_TAG_VALUE_LENGTH: usize = 2048;

/// Why an event was rejected. Messages follow BigBrotr 6.6.9 (`Event <first 16 hex>... ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The JSON text is not a well-formed Nostr event.
    #[error("invalid event JSON: {0}")]
    Json(String),
    /// The id is not the SHA-256 of the serialised event.
    #[error("Event {0}... has an invalid id")]
    InvalidId(String),
    /// The Schnorr signature does not verify against the id and pubkey.
    #[error("Event {0}... has an invalid signature")]
    InvalidSignature(String),
    /// `created_at` does not fit the `BIGINT` column.
    #[error("Event {0}... created_at is out of range")]
    CreatedAtOutOfRange(String),
    /// The content contains NUL, which PostgreSQL `TEXT` cannot store.
    #[error("Event {0}... content contains null bytes")]
    NullByteInContent(String),
    /// A tag element contains NUL.
    #[error("Event {0}... tags contain null bytes")]
    NullByteInTags(String),
    /// A tag element is longer than [`MAX_TAG_VALUE_LENGTH`] characters.
    #[error("Event {id_prefix}... tag value exceeds 2048 chars ({length})")]
    TagValueTooLong {
        /// First 16 hex characters of the event id.
        id_prefix: String,
        /// Length of the offending value in characters.
        length: usize,
    },
}

/// A Nostr event whose id and signature were verified, with raw 32/64-byte keys as stored in
/// the `BYTEA` columns. It keeps no reference to the `nostr` event it was built from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Event {
    id: [u8; 32],
    pubkey: [u8; 32],
    created_at: i64,
    kind: u16,
    tags: Vec<Vec<String>>,
    content: String,
    sig: [u8; 64],
}

impl Event {
    /// Verifies the id and Schnorr signature (through rust-nostr) and applies the storage
    /// checks: no NUL in the content or in any tag element (key included), and no tag element
    /// longer than [`MAX_TAG_VALUE_LENGTH`] characters (counted like Python's `len()`).
    pub fn from_nostr(event: &nostr::Event) -> Result<Event, EventError> {
        let id_hex = event.id.to_hex();
        let id_prefix = id_hex[..16].to_owned();
        event.verify().map_err(|error| match error {
            nostr::event::Error::InvalidSignature => {
                EventError::InvalidSignature(id_prefix.clone())
            }
            _ => EventError::InvalidId(id_prefix.clone()),
        })?;
        let created_at = i64::try_from(event.created_at.as_secs())
            .map_err(|_| EventError::CreatedAtOutOfRange(id_prefix.clone()))?;

        if event.content.contains('\0') {
            return Err(EventError::NullByteInContent(id_prefix));
        }
        let mut tags = Vec::with_capacity(event.tags.len());
        for tag in event.tags.iter() {
            let values = tag.as_slice();
            for value in values {
                if value.contains('\0') {
                    return Err(EventError::NullByteInTags(id_prefix));
                }
                let length = value.chars().count();
                if length > MAX_TAG_VALUE_LENGTH {
                    return Err(EventError::TagValueTooLong { id_prefix, length });
                }
            }
            tags.push(values.to_vec());
        }

        Ok(Event {
            id: event.id.to_bytes(),
            pubkey: event.pubkey.to_bytes(),
            created_at,
            kind: event.kind.as_u16(),
            tags,
            content: event.content.clone(),
            sig: event.sig.serialize(),
        })
    }

    /// Parses a NIP-01 event from JSON with rust-nostr, then applies [`Event::from_nostr`].
    pub fn from_json(json: &str) -> Result<Event, EventError> {
        let event =
            nostr::Event::from_json(json).map_err(|error| EventError::Json(error.to_string()))?;
        Event::from_nostr(&event)
    }

    /// The event id (SHA-256 of the NIP-01 serialisation).
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    /// The id as 64 lower-case hex characters.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// The author's x-only public key.
    pub fn pubkey(&self) -> &[u8; 32] {
        &self.pubkey
    }

    /// The public key as 64 lower-case hex characters.
    pub fn pubkey_hex(&self) -> String {
        hex::encode(self.pubkey)
    }

    /// Creation time in Unix seconds.
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// The event kind (0-65535).
    pub fn kind(&self) -> u16 {
        self.kind
    }

    /// The tags, each a non-empty list of strings.
    pub fn tags(&self) -> &[Vec<String>] {
        &self.tags
    }

    /// The content.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// The 64-byte BIP-340 Schnorr signature.
    pub fn sig(&self) -> &[u8; 64] {
        &self.sig
    }

    /// The signature as 128 lower-case hex characters.
    pub fn sig_hex(&self) -> String {
        hex::encode(self.sig)
    }

    /// The tags as a JSON array of arrays of strings (the `event.tags` JSONB value).
    pub fn tags_json(&self) -> Value {
        Value::Array(
            self.tags
                .iter()
                .map(|tag| Value::Array(tag.iter().cloned().map(Value::String).collect()))
                .collect(),
        )
    }

    /// What the SQL function `tags_to_tagvalues(tags)` stores in `event.tagvalues`.
    ///
    /// One element per tag whose key is exactly one character long: `key:first_value`, or
    /// `None` (SQL NULL) for a tag that has a key but no value. Longer keys are skipped;
    /// duplicates are kept in tag order.
    pub fn tagvalues(&self) -> Vec<Option<String>> {
        self.tags
            .iter()
            .filter_map(|tag| {
                let (key, rest) = tag.split_first()?;
                (key.chars().count() == 1)
                    .then(|| rest.first().map(|value| format!("{key}:{value}")))
            })
            .collect()
    }
}
