//! NIP-11 and NIP-66 for BigBrotr: each relay check in a module of its own (NIP-11 information
//! document, and the NIP-66 RTT, SSL, DNS, Geo, Net and HTTP checks), the outcome envelope every
//! check is stored as, and the monitor's published events (kinds 0, 10002, 10166 and 30166).
//!
//! Every check takes untrusted input (a relay, its documents, its certificates, DNS answers) and
//! returns an [`outcome::CheckOutcome`]: it never panics and never waits longer than its bounds.

pub mod events;
pub mod nip11;
pub mod nip66;
pub mod outcome;

pub use outcome::CheckOutcome;
