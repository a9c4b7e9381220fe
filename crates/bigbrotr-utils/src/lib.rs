//! BigBrotr's shared network layer, used by every daemon that talks to relays or HTTP sources:
//! the `networks:` configuration with one concurrency limit per network, SOCKS5 proxies for the
//! overlay networks (an overlay without a proxy is an error, never a direct connection), and the
//! HTTP client factory with bounded bodies and timeouts; every address a daemon resolves itself
//! is checked against the private-address rule (`dial`).

pub mod dial;
pub mod http;
pub mod network;
pub mod relay;
