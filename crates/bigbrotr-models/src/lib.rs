//! BigBrotr domain types: relay URLs, verified events, content-addressed metadata and service
//! state, byte-compatible with BigBrotr 6.6.9. Pure data and validation, no I/O.

pub mod event;
pub mod event_relay;
pub mod kind;
pub mod metadata;
pub mod relay;
pub mod relay_metadata;
pub mod service_state;
