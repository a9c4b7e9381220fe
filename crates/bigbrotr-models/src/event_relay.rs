//! The `event_relay` junction: an event as seen on one relay.

use crate::event::Event;
use crate::relay::Relay;

/// An [`Event`] observed on a [`Relay`] at `seen_at` (Unix seconds).
///
/// The database layer expands it into the eleven parameters of `event_relay_insert_cascade`
/// (the seven event columns, the three relay columns and `seen_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRelay {
    /// The verified event.
    pub event: Event,
    /// The relay it came from.
    pub relay: Relay,
    /// When it was seen there (Unix seconds).
    pub seen_at: i64,
}
