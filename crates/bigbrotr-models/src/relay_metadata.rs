//! The `relay_metadata` junction: one metadata document recorded for one relay.

use crate::metadata::Metadata;
use crate::relay::Relay;

/// A [`Metadata`] document produced for a [`Relay`] at `generated_at` (Unix seconds).
///
/// The database layer expands it into the seven parameters of `relay_metadata_insert_cascade`
/// (the three relay columns, id, type and canonical data of the metadata, and `generated_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayMetadata {
    /// The relay the document describes.
    pub relay: Relay,
    /// The content-addressed document.
    pub metadata: Metadata,
    /// When the document was produced (Unix seconds).
    pub generated_at: i64,
}
