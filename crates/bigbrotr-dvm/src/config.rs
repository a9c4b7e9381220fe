//! `dvm.yaml`: the original's keys (top-level `keys_env`, `name`, `about`, `d_tag`, `relays`,
//! `kind`, `default_page_size`, `max_page_size`, `tables`, `announce`, `fetch_timeout`,
//! `allow_insecure`; `interval` 60) and this project's bounds (`limits:`, `query_timeout`,
//! `announce_interval`, `max_result_bytes`, `catch_up`, `networks:`), validated with messages
//! that name the key.

use bigbrotr_catalog::{PageLimits, TablesConfig};
use bigbrotr_core::config::{BaseServiceConfig, ConfigError, KeysConfig, Validate};
use bigbrotr_utils::network::NetworksConfig;
use serde::{Deserialize, Serialize};

/// Seconds between the DVM's cycles (announcement refresh, figures, liveness of the listeners).
pub const DEFAULT_INTERVAL: f64 = 60.0;

/// NIP-90's job request range.
pub const REQUEST_KINDS: std::ops::RangeInclusive<u16> = 5000..=5999;

/// `dvm.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DvmConfig {
    /// The keys every service has (`interval` defaults to 60 s here).
    #[serde(flatten)]
    pub base: BaseServiceConfig,
    /// `keys_env` at the top level, as in the original (the DVM's identity; required).
    #[serde(flatten)]
    pub keys: KeysConfig,
    /// NIP-89 handler name.
    pub name: String,
    /// NIP-89 handler description.
    pub about: String,
    /// The announcement's `d` tag.
    pub d_tag: String,
    /// Relays read for requests and written with results (at least one).
    pub relays: Vec<String>,
    /// The job request kind (5000–5999); results are `kind + 1000`. 5050 by default for
    /// drop-in, although NIP-90's registry gives 5050 to text generation.
    pub kind: u16,
    /// Rows per result without a `limit` param.
    pub default_page_size: u32,
    /// The largest `limit` (larger ones are clamped).
    pub max_page_size: u32,
    /// Tables served: `{name: {enabled, price}}` (price in millisats); closed unless enabled.
    pub tables: TablesConfig,
    /// Publish the NIP-89 announcement (kind 31990).
    pub announce: bool,
    /// Seconds to wait for a relay (connection, stored events, `OK`), 1–300.
    pub fetch_timeout: f64,
    /// Retry relays whose certificate fails verification without verification.
    pub allow_insecure: bool,
    /// Seconds one job's query may take (1–300), enforced on the server too.
    pub query_timeout: f64,
    /// Seconds between announcements (they are re-published so they do not age out), 60–604800.
    pub announce_interval: f64,
    /// The largest result content in bytes (4 KiB–4 MiB): rows past it are left out and the
    /// result says so (`meta.truncated`), so a result fits what relays accept.
    pub max_result_bytes: usize,
    /// At start, requests up to this many seconds old that no result of ours answers are
    /// answered (0–604800).
    pub catch_up: u64,
    /// Rate limits.
    pub limits: LimitsConfig,
    /// `networks:` (clearnet only by default; an overlay relay needs its proxy).
    pub networks: NetworksConfig,
}

/// `limits:` — bounds on what requesters can make the DVM do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Jobs one pubkey may have answered per `window` seconds.
    pub per_requester: u32,
    /// Jobs answered per `window` seconds in total.
    pub total: u32,
    /// The window of both, in seconds (1–86400).
    pub window: f64,
    /// Jobs waiting for a worker; past it, new requests are refused (1–100000).
    pub queue: usize,
    /// Jobs run at once (1–64; keep at or below the pool's `max_size`).
    pub workers: usize,
    /// Requesters remembered for rate limiting (the least recent are forgotten).
    pub tracked_requesters: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            per_requester: 30,
            total: 600,
            window: 60.0,
            queue: 1000,
            workers: 3,
            tracked_requesters: 100_000,
        }
    }
}

/// The relays the original ships with.
pub fn default_relays() -> Vec<String> {
    [
        "wss://relay.mostr.pub",
        "wss://relay.damus.io",
        "wss://nos.lol",
        "wss://relay.primal.net",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

impl Default for DvmConfig {
    fn default() -> Self {
        Self {
            base: BaseServiceConfig::with_interval(DEFAULT_INTERVAL),
            keys: KeysConfig::default(),
            name: "BigBrotr DVM".into(),
            about: "Read-only access to BigBrotr relay monitoring data".into(),
            d_tag: "bigbrotr-dvm".into(),
            relays: default_relays(),
            kind: 5050,
            default_page_size: 100,
            max_page_size: 1000,
            tables: TablesConfig::new(),
            announce: true,
            fetch_timeout: 30.0,
            allow_insecure: false,
            query_timeout: 30.0,
            announce_interval: 86_400.0,
            max_result_bytes: 60_000,
            catch_up: 86_400,
            limits: LimitsConfig::default(),
            networks: NetworksConfig::default(),
        }
    }
}

impl DvmConfig {
    /// Page sizes for the catalog (totals exact up to 10,000 rows, as the API's default).
    pub fn page_limits(&self) -> PageLimits {
        PageLimits {
            default_page_size: self.default_page_size,
            max_page_size: self.max_page_size,
            exact_total_limit: 10_000,
        }
    }

    /// The result kind: `kind + 1000`.
    pub fn result_kind(&self) -> u16 {
        self.kind + 1000
    }
}

fn range(key: &str, value: f64, min: f64, max: f64) -> Result<(), ConfigError> {
    if !(min..=max).contains(&value) {
        return Err(ConfigError(format!(
            "{key} = {value} is out of range ({min}..={max})"
        )));
    }
    Ok(())
}

impl Validate for DvmConfig {
    /// `tables:` is keyed by table name; each entry's keys are checked and converted.
    fn shapes() -> Vec<(&'static str, serde_json::Value)> {
        let table = serde_json::to_value(bigbrotr_catalog::TableAccess::default());
        vec![("tables.*", table.unwrap_or_default())]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.base.validate()?;
        if !REQUEST_KINDS.contains(&self.kind) {
            return Err(ConfigError(format!(
                "kind = {} must be a NIP-90 job request kind (5000..=5999)",
                self.kind
            )));
        }
        if self.relays.is_empty() {
            return Err(ConfigError("relays must list at least one relay".into()));
        }
        for (index, relay) in self.relays.iter().enumerate() {
            if !(relay.starts_with("wss://") || relay.starts_with("ws://")) {
                return Err(ConfigError(format!(
                    "relays[{index}] = {relay:?} must be a ws:// or wss:// URL"
                )));
            }
        }
        if !(1..=10_000).contains(&self.max_page_size) {
            return Err(ConfigError(format!(
                "max_page_size = {} is out of range (1..=10000)",
                self.max_page_size
            )));
        }
        if self.default_page_size < 1 || self.default_page_size > self.max_page_size {
            return Err(ConfigError(format!(
                "default_page_size = {} must be between 1 and max_page_size ({})",
                self.default_page_size, self.max_page_size
            )));
        }
        range("fetch_timeout", self.fetch_timeout, 1.0, 300.0)?;
        range("query_timeout", self.query_timeout, 1.0, 300.0)?;
        range("announce_interval", self.announce_interval, 60.0, 604_800.0)?;
        range(
            "max_result_bytes",
            self.max_result_bytes as f64,
            4096.0,
            4_194_304.0,
        )?;
        range("catch_up", self.catch_up as f64, 0.0, 604_800.0)?;
        let limits = &self.limits;
        range("limits.window", limits.window, 1.0, 86_400.0)?;
        range(
            "limits.per_requester",
            f64::from(limits.per_requester),
            1.0,
            1e6,
        )?;
        range("limits.total", f64::from(limits.total), 1.0, 1e7)?;
        if limits.per_requester > limits.total {
            return Err(ConfigError(format!(
                "limits.per_requester ({}) is larger than limits.total ({}): one requester \
                 would be allowed more than everyone",
                limits.per_requester, limits.total
            )));
        }
        range("limits.queue", limits.queue as f64, 1.0, 100_000.0)?;
        range("limits.workers", limits.workers as f64, 1.0, 64.0)?;
        range(
            "limits.tracked_requesters",
            limits.tracked_requesters as f64,
            100.0,
            10_000_000.0,
        )?;
        if self.d_tag.is_empty() || self.name.is_empty() {
            return Err(ConfigError("name and d_tag must not be empty".into()));
        }
        self.networks
            .validate()
            .map_err(|e| ConfigError(format!("networks: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<DvmConfig, String> {
        let value =
            bigbrotr_core::config::parse_yaml(yaml, std::path::Path::new("dvm.yaml")).unwrap();
        bigbrotr_core::config::load_value::<DvmConfig>(
            value,
            true,
            "BIGBROTR_TEST_UNUSED__",
            "dvm.yaml",
        )
        .map(|loaded| {
            assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
            loaded.config
        })
        .map_err(|e| e.0)
    }

    #[test]
    fn defaults_are_the_originals() {
        let config = DvmConfig::default();
        assert_eq!(config.kind, 5050);
        assert_eq!(config.result_kind(), 6050);
        assert_eq!(config.d_tag, "bigbrotr-dvm");
        assert_eq!(config.relays.len(), 4);
        assert_eq!(config.keys.keys_env, "NOSTR_PRIVATE_KEY");
        assert_eq!(config.base.interval, 60.0);
        assert!(config.announce && !config.allow_insecure);
        config.validate().unwrap();
    }

    #[test]
    fn the_originals_yaml_loads() {
        let config = load(
            "interval: 60
keys_env: DVM_KEY
name: LilBrotr DVM
about: Read-only access to LilBrotr relay monitoring data
d_tag: lilbrotr-dvm
relays: [wss://relay.damus.io]
kind: 5050
default_page_size: 100
max_page_size: 1000
announce: true
fetch_timeout: 30
allow_insecure: false
tables:
  relay: {enabled: true}
  event: {enabled: true, price: 1000}
pool: {user: reader, password_env: DB_READER_PASSWORD, max_size: 3}
metrics: {enabled: true, host: 0.0.0.0}
",
        )
        .unwrap();
        assert_eq!(config.keys.keys_env, "DVM_KEY");
        assert_eq!(config.tables["event"].price, 1000);
    }

    #[test]
    fn table_entries_are_converted_like_pydantic_and_their_typos_warned() {
        let value = bigbrotr_core::config::parse_yaml(
            "tables:\n  relay: {enabled: \"yes\", price: \"1000\", enbled: true}\n",
            std::path::Path::new("dvm.yaml"),
        )
        .unwrap();
        let loaded = bigbrotr_core::config::load_value::<DvmConfig>(
            value,
            true,
            "BIGBROTR_TEST_UNUSED__",
            "dvm.yaml",
        )
        .unwrap();
        assert_eq!(loaded.unknown_keys, vec!["tables.relay.enbled"]);
        let relay = &loaded.config.tables["relay"];
        assert!(relay.enabled);
        assert_eq!(relay.price, 1000);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (yaml, key) in [
            ("kind: 1", "kind"),
            ("kind: 6050", "kind"),
            ("relays: []", "relays"),
            ("relays: [https://x]", "relays[0]"),
            ("max_page_size: 0", "max_page_size"),
            ("default_page_size: 5000", "default_page_size"),
            ("fetch_timeout: 0", "fetch_timeout"),
            ("limits: {workers: 0}", "limits.workers"),
            ("limits: {window: 0}", "limits.window"),
            ("max_result_bytes: 10", "max_result_bytes"),
            (
                "limits: {per_requester: 700, total: 600}",
                "limits.per_requester (700) is larger than limits.total (600)",
            ),
        ] {
            let error = load(yaml).unwrap_err();
            assert!(error.contains(key), "{yaml}: {error}");
        }
    }
}
