//! The NIP-66 checks, one module each: round-trip times, TLS certificate, DNS records,
//! geolocation and network (MaxMind databases), and the HTTP headers of the WebSocket handshake.

pub mod dns;
pub mod geo;
pub mod geoip;
pub mod http;
pub mod net;
pub mod rtt;
pub mod ssl;
