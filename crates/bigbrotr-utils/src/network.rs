//! Per-network settings (`networks:` in the validator, monitor and synchronizer files) and the
//! concurrency limits derived from them: one semaphore per operational network, shared by all the
//! work a daemon does on that network.

use std::sync::Arc;
use std::time::Duration;

use bigbrotr_models::relay::NetworkType;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

/// A configuration or routing error; the message names the key or the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// A setting is out of range or malformed.
    #[error("{0}")]
    Config(String),
    /// The network is disabled (or not an operational network at all).
    #[error("network {0} is not enabled")]
    Disabled(String),
    /// An overlay network has no proxy: it is never reached directly.
    #[error(
        "network {0} requires networks.{0}.proxy_url: overlay relays are never contacted directly"
    )]
    ProxyRequired(String),
}

/// One network's settings. Defaults differ per network, so missing keys are filled by the
/// configuration loader from [`NetworksConfig::default`], not by a per-struct default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// Whether relays of this network are contacted at all.
    pub enabled: bool,
    /// SOCKS5 proxy (`socks5://host:port`); required for tor, i2p and loki.
    pub proxy_url: Option<String>,
    /// Concurrent connections at most (1–200).
    pub max_tasks: u32,
    /// Seconds allowed per connection or request (1–120).
    pub timeout: f64,
    /// Connect to host names that resolve to loopback, private, link-local or other addresses
    /// outside the global Internet. Off by default, so a relay (or its NIP-11 document) cannot
    /// send the daemon to internal services; on for tests and private deployments. Only
    /// `clearnet` reads it: overlay names, and clearnet names behind a proxy, are resolved by the
    /// proxy.
    #[serde(default)]
    pub allow_private: bool,
}

impl NetworkConfig {
    fn new(enabled: bool, proxy_url: Option<&str>, max_tasks: u32, timeout: f64) -> Self {
        Self {
            enabled,
            proxy_url: proxy_url.map(str::to_owned),
            max_tasks,
            timeout,
            allow_private: false,
        }
    }

    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

/// `networks:` — the four operational networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworksConfig {
    /// Clearnet relays (`wss://`).
    pub clearnet: NetworkConfig,
    /// Tor onion services.
    pub tor: NetworkConfig,
    /// I2P eepsites.
    pub i2p: NetworkConfig,
    /// Lokinet SNApps.
    pub loki: NetworkConfig,
}

impl Default for NetworksConfig {
    fn default() -> Self {
        Self {
            clearnet: NetworkConfig::new(true, None, 30, 10.0),
            tor: NetworkConfig::new(false, Some("socks5://tor:9050"), 10, 30.0),
            i2p: NetworkConfig::new(false, Some("socks5://i2p:4447"), 5, 45.0),
            loki: NetworkConfig::new(false, Some("socks5://lokinet:1080"), 5, 30.0),
        }
    }
}

/// The operational networks in the original's order.
pub const OPERATIONAL: [NetworkType; 4] = [
    NetworkType::Clearnet,
    NetworkType::Tor,
    NetworkType::I2p,
    NetworkType::Loki,
];

impl NetworksConfig {
    /// The settings of an operational network; `None` for local/unknown.
    pub fn get(&self, network: NetworkType) -> Option<&NetworkConfig> {
        match network {
            NetworkType::Clearnet => Some(&self.clearnet),
            NetworkType::Tor => Some(&self.tor),
            NetworkType::I2p => Some(&self.i2p),
            NetworkType::Loki => Some(&self.loki),
            NetworkType::Local | NetworkType::Unknown => None,
        }
    }

    /// Whether host names this daemon resolves itself (clearnet without a proxy) may lead to
    /// addresses outside the global Internet (`networks.clearnet.allow_private`).
    pub fn allow_private(&self) -> bool {
        self.clearnet.allow_private
    }

    /// The enabled networks, in the original's order.
    pub fn enabled(&self) -> Vec<NetworkType> {
        OPERATIONAL
            .into_iter()
            .filter(|n| self.get(*n).is_some_and(|c| c.enabled))
            .collect()
    }

    /// The settings of an enabled network, or why it cannot be used.
    pub fn enabled_config(&self, network: NetworkType) -> Result<&NetworkConfig, NetworkError> {
        self.get(network)
            .filter(|c| c.enabled)
            .ok_or_else(|| NetworkError::Disabled(network.as_str().to_owned()))
    }

    /// The proxy to use for `network`: none for clearnet (unless one is configured), and a
    /// required SOCKS5 proxy for the overlays.
    pub fn proxy_for(&self, network: NetworkType) -> Result<Option<ProxyUrl>, NetworkError> {
        let config = self.enabled_config(network)?;
        match (&config.proxy_url, network) {
            (Some(url), _) => ProxyUrl::parse(url, network).map(Some),
            (None, NetworkType::Clearnet) => Ok(None),
            (None, other) => Err(NetworkError::ProxyRequired(other.as_str().to_owned())),
        }
    }

    /// Checks every range and URL; the error names the key.
    pub fn validate(&self) -> Result<(), NetworkError> {
        for network in OPERATIONAL {
            let Some(config) = self.get(network) else {
                continue;
            };
            let name = network.as_str();
            if !(1..=200).contains(&config.max_tasks) {
                return Err(NetworkError::Config(format!(
                    "networks.{name}.max_tasks = {} is out of range (1..=200)",
                    config.max_tasks
                )));
            }
            if !config.timeout.is_finite() || !(1.0..=120.0).contains(&config.timeout) {
                return Err(NetworkError::Config(format!(
                    "networks.{name}.timeout = {} is out of range (1..=120)",
                    config.timeout
                )));
            }
            if let Some(url) = &config.proxy_url {
                ProxyUrl::parse(url, network)?;
            }
            if config.enabled && network != NetworkType::Clearnet && config.proxy_url.is_none() {
                return Err(NetworkError::ProxyRequired(name.to_owned()));
            }
        }
        Ok(())
    }
}

/// A validated SOCKS5 proxy address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    host: String,
    port: u16,
}

impl ProxyUrl {
    /// Parses `socks5://host:port` (or `socks5h://`); the error names the network's key.
    pub fn parse(raw: &str, network: NetworkType) -> Result<Self, NetworkError> {
        let key = format!("networks.{}.proxy_url", network.as_str());
        let url = Url::parse(raw)
            .map_err(|e| NetworkError::Config(format!("{key} {raw:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "socks5" | "socks5h") {
            return Err(NetworkError::Config(format!(
                "{key} {raw:?} must be a socks5:// URL"
            )));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| NetworkError::Config(format!("{key} {raw:?} has no host")))?;
        let port = url
            .port()
            .ok_or_else(|| NetworkError::Config(format!("{key} {raw:?} has no port")))?;
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }

    /// The proxy host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL for HTTP clients, with host names resolved by the proxy (`socks5h`), which onion,
    /// I2P and Lokinet names require.
    pub fn remote_dns_url(&self) -> String {
        if self.host.contains(':') {
            format!("socks5h://[{}]:{}", self.host, self.port)
        } else {
            format!("socks5h://{}:{}", self.host, self.port)
        }
    }
}

/// One semaphore per operational network, sized by `max_tasks`: the only limit on concurrent
/// connections a daemon opens to a network, whatever part of the daemon opens them.
#[derive(Debug, Clone)]
pub struct NetworkSemaphores {
    semaphores: [Arc<Semaphore>; 4],
}

impl NetworkSemaphores {
    /// Semaphores sized from `config`.
    pub fn new(config: &NetworksConfig) -> Self {
        let make = |c: &NetworkConfig| Arc::new(Semaphore::new(c.max_tasks.max(1) as usize));
        Self {
            semaphores: [
                make(&config.clearnet),
                make(&config.tor),
                make(&config.i2p),
                make(&config.loki),
            ],
        }
    }

    fn index(network: NetworkType) -> Option<usize> {
        OPERATIONAL.iter().position(|n| *n == network)
    }

    /// Waits for a slot on `network`; `None` for a non-operational network.
    pub async fn acquire(&self, network: NetworkType) -> Option<OwnedSemaphorePermit> {
        let semaphore = self.semaphores[Self::index(network)?].clone();
        semaphore.acquire_owned().await.ok()
    }

    /// Free slots on `network` (tests, metrics).
    pub fn available(&self, network: NetworkType) -> usize {
        Self::index(network).map_or(0, |i| self.semaphores[i].available_permits())
    }
}

#[cfg(test)]
mod tests;
