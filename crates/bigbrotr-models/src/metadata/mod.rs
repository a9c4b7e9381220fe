//! Content-addressed relay metadata: sanitising, canonical JSON and SHA-256 ids.

mod canonical;
mod sanitize;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use canonical::canonical_json;
pub use sanitize::{MAX_DEPTH, sanitize};

pub(crate) use sanitize::{python_type_name, sanitize_named};

/// Why metadata (or another sanitised JSON value) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// A string value contains NUL, which PostgreSQL `TEXT`/`JSONB` cannot store.
    #[error("{0} contains null bytes")]
    NullByte(&'static str),
    /// An object key contains NUL.
    #[error("{0} key contains null bytes")]
    NullByteInKey(&'static str),
    /// The top-level value is not a JSON object (holds the Python type name of what it was).
    #[error("{field} must be a Mapping, got {found}")]
    NotAnObject {
        /// The field being validated.
        field: &'static str,
        /// Python's name for the type that was given (`list`, `str`, `int`, ...).
        found: &'static str,
    },
    /// A metadata type name that is not one of the seven [`MetadataType`] values.
    #[error("unknown metadata type: '{0}'")]
    UnknownType(String),
}

/// The seven metadata types stored in `metadata.type` (not enforced by the database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MetadataType {
    /// NIP-11 relay information document.
    #[serde(rename = "nip11_info")]
    Nip11Info,
    /// NIP-66 round-trip times (open, read, write).
    #[serde(rename = "nip66_rtt")]
    Nip66Rtt,
    /// NIP-66 TLS certificate details.
    #[serde(rename = "nip66_ssl")]
    Nip66Ssl,
    /// NIP-66 geolocation.
    #[serde(rename = "nip66_geo")]
    Nip66Geo,
    /// NIP-66 network and ASN details.
    #[serde(rename = "nip66_net")]
    Nip66Net,
    /// NIP-66 DNS records.
    #[serde(rename = "nip66_dns")]
    Nip66Dns,
    /// NIP-66 HTTP headers of the WebSocket handshake.
    #[serde(rename = "nip66_http")]
    Nip66Http,
}

impl MetadataType {
    /// All seven types, in declaration order.
    pub const ALL: [MetadataType; 7] = [
        MetadataType::Nip11Info,
        MetadataType::Nip66Rtt,
        MetadataType::Nip66Ssl,
        MetadataType::Nip66Geo,
        MetadataType::Nip66Net,
        MetadataType::Nip66Dns,
        MetadataType::Nip66Http,
    ];

    /// The name stored in the database (`nip11_info`, `nip66_rtt`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataType::Nip11Info => "nip11_info",
            MetadataType::Nip66Rtt => "nip66_rtt",
            MetadataType::Nip66Ssl => "nip66_ssl",
            MetadataType::Nip66Geo => "nip66_geo",
            MetadataType::Nip66Net => "nip66_net",
            MetadataType::Nip66Dns => "nip66_dns",
            MetadataType::Nip66Http => "nip66_http",
        }
    }
}

impl fmt::Display for MetadataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MetadataType {
    type Err = MetadataError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        MetadataType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| MetadataError::UnknownType(text.to_owned()))
    }
}

/// A sanitised metadata document with its canonical JSON and content id.
///
/// `id = SHA-256(canonical)`; the type is not hashed, so the same document may exist once per
/// type (the table key is `(id, type)`). `canonical` is also the text stored in `metadata.data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    metadata_type: MetadataType,
    data: Value,
    canonical: String,
    id: [u8; 32],
}

impl Metadata {
    /// Sanitises `data` (which must be a JSON object, see [`sanitize`]), serialises it with
    /// [`canonical_json`] and hashes the UTF-8 bytes with SHA-256.
    pub fn new(metadata_type: MetadataType, data: Value) -> Result<Metadata, MetadataError> {
        if !data.is_object() {
            return Err(MetadataError::NotAnObject {
                field: "data",
                found: python_type_name(&data),
            });
        }
        // A top-level object always sanitises to an object (possibly empty), never to null.
        let data = sanitize_named(&data, "data")?.unwrap_or_else(|| Value::Object(Map::new()));
        let canonical = canonical_json(&data);
        let id: [u8; 32] = Sha256::digest(canonical.as_bytes()).into();
        Ok(Metadata {
            metadata_type,
            data,
            canonical,
            id,
        })
    }

    /// Builds the stored envelope `{"data": data, "logs": logs}` and hashes it.
    ///
    /// This is what BigBrotr 6.6.9 stores for every NIP-11/NIP-66 check: the metadata document
    /// is `BaseNipMetadata.to_dict()`, i.e. the whole envelope (not only `data`) goes through
    /// sanitising, so the id is the SHA-256 of the canonical envelope. Empty or null parts
    /// disappear on the way: a failed check with no data is stored as `{"logs":{...}}`.
    pub fn envelope(
        metadata_type: MetadataType,
        data: Value,
        logs: Value,
    ) -> Result<Metadata, MetadataError> {
        let mut envelope = Map::new();
        envelope.insert("data".to_owned(), data);
        envelope.insert("logs".to_owned(), logs);
        Metadata::new(metadata_type, Value::Object(envelope))
    }

    /// The metadata type.
    pub fn metadata_type(&self) -> MetadataType {
        self.metadata_type
    }

    /// The sanitised document (always a JSON object).
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// The canonical JSON text that was hashed and is stored.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The SHA-256 of [`Metadata::canonical`] (the `metadata.id` column).
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    /// The id as 64 lower-case hex characters.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}
