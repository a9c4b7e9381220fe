//! `synchronizer.yaml`: filters, the time range, page and batch sizes, timeouts, per-relay
//! overrides, with the original's ranges.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bigbrotr_core::config::{BaseServiceConfig, ConfigError, KeysConfig, Validate};
use bigbrotr_models::relay::{Relay, parse_relay};
use bigbrotr_utils::network::NetworksConfig;
use nostr::{Filter, JsonUtil};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The default `processing.max_event_size`: strfry's default `maxEventSize`, so an event a
/// common relay would accept is archived and a hostile one cannot make pages of GiB.
pub const DEFAULT_MAX_EVENT_SIZE: u64 = 65_536;

/// `synchronizer.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynchronizerConfig {
    /// The keys every service has.
    #[serde(flatten)]
    pub base: BaseServiceConfig,
    /// `keys:` — the NIP-42 signer (optional: without it, AUTH relays are recorded as failed).
    pub keys: KeysConfig,
    /// `networks:`.
    pub networks: NetworksConfig,
    /// `processing:`.
    pub processing: ProcessingConfig,
    /// `timeouts:`.
    pub timeouts: TimeoutsConfig,
    /// `overrides:` — per-relay settings keyed by relay URL (beyond the original).
    pub overrides: BTreeMap<String, RelayOverride>,
}

/// `processing:` — what is fetched and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessingConfig {
    /// NIP-01 filters (`{}` = every event); `since`, `until` and `limit` are set per request.
    pub filters: Vec<Value>,
    /// Where a relay without a cursor starts (Unix seconds).
    pub since: i64,
    /// The end of the archive (Unix seconds; `null` = now).
    pub until: Option<i64>,
    /// The REQ `limit` (10–5000); relays may return fewer.
    pub limit: u32,
    /// Seconds the archive trails `until`/now (0–604800).
    pub end_lag: i64,
    /// Events per database write (100–10000).
    pub batch_size: u32,
    /// Retry a clearnet relay whose certificate is rejected without verification.
    pub allow_insecure: bool,
    /// Largest accepted event JSON in bytes (≥ 1024; `null` = no limit beyond the transport's
    /// 8 MiB frame bound). Default 65,536, strfry's `maxEventSize` (the original has none).
    pub max_event_size: Option<u64>,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self {
            filters: vec![Value::Object(serde_json::Map::new())],
            since: 0,
            until: None,
            limit: 500,
            end_lag: 86_400,
            batch_size: 1000,
            allow_insecure: false,
            max_event_size: Some(DEFAULT_MAX_EVENT_SIZE),
        }
    }
}

/// `timeouts:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeoutsConfig {
    /// Seconds one request may take in total before the relay is abandoned (10–3600).
    pub idle: f64,
    /// Seconds the whole phase may take (60–86400).
    pub max_duration: f64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            idle: 300.0,
            max_duration: 14_400.0,
        }
    }
}

/// One entry of `overrides:`; unset fields keep the global value. Unknown keys are warned like
/// any other file's (see [`Validate::shapes`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RelayOverride {
    /// The REQ `limit` for this relay (10–5000).
    pub limit: Option<u32>,
    /// Seconds to wait for each message from this relay (1–120; default: the network's).
    pub timeout: Option<f64>,
    /// `timeouts.idle` for this relay (10–3600).
    pub idle: Option<f64>,
    /// The filters for this relay.
    pub filters: Option<Vec<Value>>,
}

/// The settings one relay is archived with.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Base filters (their since/until/limit are replaced per request).
    pub filters: Vec<Filter>,
    /// The REQ limit.
    pub limit: usize,
    /// Wait for each message (`None`: the network's timeout).
    pub timeout: Option<Duration>,
    /// Bound of one whole request.
    pub idle: Duration,
}

/// Parses filter objects; the error names the key.
pub fn parse_filters(filters: &[Value], key: &str) -> Result<Vec<Filter>, ConfigError> {
    if filters.is_empty() {
        return Err(ConfigError(format!("{key} must hold at least one filter")));
    }
    filters
        .iter()
        .enumerate()
        .map(|(i, value)| {
            if !value.is_object() {
                return Err(ConfigError(format!("{key}[{i}] must be a mapping")));
            }
            Filter::from_json(value.to_string())
                .map_err(|e| ConfigError(format!("{key}[{i}] is not a NIP-01 filter: {e}")))
        })
        .collect()
}

fn check_range(key: &str, value: f64, low: f64, high: f64) -> Result<(), ConfigError> {
    if !value.is_finite() || value < low || value > high {
        return Err(ConfigError(format!(
            "{key} = {value} is out of range ({low}..={high})"
        )));
    }
    Ok(())
}

impl SynchronizerConfig {
    /// `end_time = (until or now) − end_lag`.
    pub fn end_time(&self, now: i64) -> i64 {
        self.processing.until.unwrap_or(now) - self.processing.end_lag
    }

    /// The settings of `relay`: the globals with its override applied.
    pub fn settings_for(&self, relay: &Relay) -> Result<RelaySettings, ConfigError> {
        Ok(self.relay_settings()?.for_relay(relay).clone())
    }

    /// Every relay's settings, resolved once: filters parsed and override keys normalised.
    pub fn relay_settings(&self) -> Result<RelaySettingsTable, ConfigError> {
        let default = RelaySettings {
            filters: parse_filters(&self.processing.filters, "processing.filters")?,
            limit: self.processing.limit as usize,
            timeout: None,
            idle: Duration::from_secs_f64(self.timeouts.idle),
        };
        let mut overrides = HashMap::new();
        for (key, over) in &self.overrides {
            let url = parse_relay(key, 0)
                .map_err(|e| ConfigError(format!("overrides.{key}: not a relay URL: {e}")))?
                .url()
                .to_owned();
            let filters = match &over.filters {
                Some(filters) => parse_filters(filters, &format!("overrides.{key}.filters"))?,
                None => default.filters.clone(),
            };
            let settings = RelaySettings {
                filters,
                limit: over.limit.map_or(default.limit, |l| l as usize),
                timeout: over.timeout.map(Duration::from_secs_f64),
                idle: over.idle.map_or(default.idle, Duration::from_secs_f64),
            };
            overrides.insert(url, settings);
        }
        Ok(RelaySettingsTable { default, overrides })
    }
}

/// The settings of every relay of a cycle (see [`SynchronizerConfig::relay_settings`]).
#[derive(Debug, Clone)]
pub struct RelaySettingsTable {
    default: RelaySettings,
    overrides: HashMap<String, RelaySettings>,
}

impl RelaySettingsTable {
    /// The settings of `relay`: its override's, or the globals.
    pub fn for_relay(&self, relay: &Relay) -> &RelaySettings {
        self.overrides.get(relay.url()).unwrap_or(&self.default)
    }
}

impl Validate for SynchronizerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_at(bigbrotr_core::clock::now())
    }

    fn shapes() -> Vec<(&'static str, Value)> {
        // Every field set, so each is known and converted by its type.
        let over = RelayOverride {
            limit: Some(500),
            timeout: Some(10.0),
            idle: Some(300.0),
            filters: Some(Vec::new()),
        };
        vec![
            (
                "overrides.*",
                serde_json::to_value(over).unwrap_or(Value::Null),
            ),
            ("processing.until", Value::from(0)),
            ("processing.max_event_size", Value::from(0)),
        ]
    }
}

impl SynchronizerConfig {
    /// [`Validate::validate`] at Unix time `now` (the original's rule `(until or now) − end_lag
    /// ≥ since` is checked at load, against the clock).
    pub fn validate_at(&self, now: i64) -> Result<(), ConfigError> {
        self.base.validate()?;
        let p = &self.processing;
        parse_filters(&p.filters, "processing.filters")?;
        if !(10..=5000).contains(&p.limit) {
            return Err(ConfigError(format!(
                "processing.limit = {} is out of range (10..=5000)",
                p.limit
            )));
        }
        if !(0..=604_800).contains(&p.end_lag) {
            return Err(ConfigError(format!(
                "processing.end_lag = {} is out of range (0..=604800)",
                p.end_lag
            )));
        }
        if !(100..=10_000).contains(&p.batch_size) {
            return Err(ConfigError(format!(
                "processing.batch_size = {} is out of range (100..=10000)",
                p.batch_size
            )));
        }
        if p.since < 0 {
            return Err(ConfigError(format!(
                "processing.since = {} must not be negative",
                p.since
            )));
        }
        if let Some(size) = p.max_event_size
            && size < 1024
        {
            return Err(ConfigError(format!(
                "processing.max_event_size = {size} must be at least 1024 (or null)"
            )));
        }
        // The original's rule: the archive's end, `(until or now) − end_lag`, is not before
        // `since` (a `since` in the future would archive nothing, silently).
        let end = self.end_time(now);
        if end < p.since {
            let until = if p.until.is_some() {
                "processing.until"
            } else {
                "now"
            };
            return Err(ConfigError(format!(
                "{until} − processing.end_lag ({end}) is before processing.since ({})",
                p.since
            )));
        }
        check_range("timeouts.idle", self.timeouts.idle, 10.0, 3600.0)?;
        check_range(
            "timeouts.max_duration",
            self.timeouts.max_duration,
            60.0,
            86_400.0,
        )?;
        for (url, over) in &self.overrides {
            let key = format!("overrides.{url}");
            Relay::new(url, 0).map_err(|e| ConfigError(format!("{key}: not a relay URL: {e}")))?;
            if let Some(limit) = over.limit
                && !(10..=5000).contains(&limit)
            {
                return Err(ConfigError(format!(
                    "{key}.limit = {limit} is out of range (10..=5000)"
                )));
            }
            if let Some(timeout) = over.timeout {
                check_range(&format!("{key}.timeout"), timeout, 1.0, 120.0)?;
            }
            if let Some(idle) = over.idle {
                check_range(&format!("{key}.idle"), idle, 10.0, 3600.0)?;
            }
            // A wait per message longer than the bound of the whole request would never be
            // reached: the request is abandoned at `idle` first.
            if let Some(timeout) = over.timeout {
                let (idle_key, idle) = match over.idle {
                    Some(idle) => (format!("{key}.idle"), idle),
                    None => ("timeouts.idle".to_owned(), self.timeouts.idle),
                };
                if timeout > idle {
                    return Err(ConfigError(format!(
                        "{key}.timeout ({timeout}) is longer than {idle_key} ({idle}), the bound \
                         of a whole request"
                    )));
                }
            }
            if let Some(filters) = &over.filters {
                parse_filters(filters, &format!("{key}.filters"))?;
            }
        }
        self.networks
            .validate()
            .map_err(|e| ConfigError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(mutate: impl FnOnce(&mut SynchronizerConfig)) -> String {
        let mut config = SynchronizerConfig::default();
        mutate(&mut config);
        config.validate().unwrap_err().0
    }

    #[test]
    fn defaults_are_the_originals_and_valid() {
        let config = SynchronizerConfig::default();
        config.validate().unwrap();
        assert_eq!(config.processing.limit, 500);
        assert_eq!(config.processing.end_lag, 86_400);
        assert_eq!(config.processing.batch_size, 1000);
        assert_eq!(config.processing.max_event_size, Some(65_536));
        assert_eq!(config.timeouts.idle, 300.0);
        assert_eq!(config.timeouts.max_duration, 14_400.0);
        assert_eq!(config.keys.keys_env, "NOSTR_PRIVATE_KEY");
        assert_eq!(config.end_time(1_000_000), 1_000_000 - 86_400);
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        assert!(invalid(|c| c.processing.limit = 5).contains("processing.limit"));
        assert!(invalid(|c| c.processing.end_lag = -1).contains("processing.end_lag"));
        assert!(invalid(|c| c.processing.batch_size = 99).contains("processing.batch_size"));
        assert!(invalid(|c| c.processing.max_event_size = Some(10)).contains("max_event_size"));
        assert!(invalid(|c| c.timeouts.idle = 5.0).contains("timeouts.idle"));
        assert!(invalid(|c| c.processing.filters = vec![]).contains("processing.filters"));
        assert!(
            invalid(|c| c.processing.filters = vec![serde_json::json!({"kinds": "x"})])
                .contains("processing.filters[0]")
        );
        assert!(
            invalid(|c| {
                c.processing.since = 1000;
                c.processing.until = Some(2000);
                c.processing.end_lag = 1500;
            })
            .contains("before processing.since")
        );
        assert!(
            invalid(|c| {
                c.overrides.insert(
                    "wss://relay.example.com".into(),
                    RelayOverride {
                        limit: Some(1),
                        ..RelayOverride::default()
                    },
                );
            })
            .contains("overrides.wss://relay.example.com.limit")
        );
        assert!(
            invalid(|c| {
                c.overrides
                    .insert("not a url".into(), RelayOverride::default());
            })
            .contains("not a relay URL")
        );
    }

    fn load(yaml: &str) -> Result<bigbrotr_core::config::Loaded<SynchronizerConfig>, String> {
        let value = bigbrotr_core::config::parse_yaml(yaml, std::path::Path::new("s.yaml"))
            .map_err(|e| e.0)?;
        bigbrotr_core::config::load_value(value, true, "BIGBROTR_TEST_UNUSED__", "s.yaml")
            .map_err(|e| e.0)
    }

    #[test]
    fn unknown_keys_of_an_override_are_warnings_and_its_values_converted() {
        let loaded = load(
            "overrides:\n  wss://relay.example.com:\n    limit: \"100\"\n    timeout: 20\n    \
             limt: 5\n    colour: red\n",
        )
        .unwrap();
        assert_eq!(
            loaded.unknown_keys,
            vec![
                "overrides.wss://relay.example.com.colour",
                "overrides.wss://relay.example.com.limt"
            ]
        );
        let over = &loaded.config.overrides["wss://relay.example.com"];
        assert_eq!((over.limit, over.timeout), (Some(100), Some(20.0)));
        // A value its type refuses is still refused, naming the key.
        let error = load("overrides:\n  wss://relay.example.com:\n    limit: 10.5\n").unwrap_err();
        assert!(
            error.contains("overrides.wss://relay.example.com.limit"),
            "{error}"
        );
    }

    #[test]
    fn since_after_the_end_of_the_archive_is_refused_as_in_the_original() {
        let now = 1_700_000_000;
        let at = |mutate: fn(&mut SynchronizerConfig)| {
            let mut config = SynchronizerConfig::default();
            mutate(&mut config);
            config.validate_at(now)
        };
        // `since` later than now − end_lag: refused, naming both keys.
        let error = at(|c| c.processing.since = 1_700_000_000 - 86_400 + 1)
            .unwrap_err()
            .0;
        assert!(
            error.contains("processing.end_lag") && error.contains("processing.since"),
            "{error}"
        );
        at(|c| c.processing.since = 1_700_000_000 - 86_400).unwrap();
        at(|c| {
            c.processing.since = 1_700_000_000 - 10;
            c.processing.end_lag = 0;
        })
        .unwrap();
        // Against the clock at load: a `since` a day in the future is refused today.
        let error = load(&format!(
            "processing:\n  since: {}\n",
            bigbrotr_core::clock::now() + 86_400
        ))
        .unwrap_err();
        assert!(error.contains("now − processing.end_lag"), "{error}");
    }

    #[test]
    fn an_override_wait_longer_than_its_request_bound_is_refused_naming_both() {
        let over = |timeout, idle| {
            let mut config = SynchronizerConfig::default();
            config.timeouts.idle = 60.0;
            config.overrides.insert(
                "wss://relay.example.com".into(),
                RelayOverride {
                    timeout: Some(timeout),
                    idle,
                    ..RelayOverride::default()
                },
            );
            config.validate()
        };
        let error = over(90.0, None).unwrap_err().0;
        assert!(
            error.contains("overrides.wss://relay.example.com.timeout")
                && error.contains("timeouts.idle"),
            "{error}"
        );
        let error = over(30.0, Some(20.0)).unwrap_err().0;
        assert!(
            error.contains("overrides.wss://relay.example.com.timeout")
                && error.contains("overrides.wss://relay.example.com.idle"),
            "{error}"
        );
        over(60.0, None).unwrap();
        over(90.0, Some(120.0)).unwrap();
    }

    #[test]
    fn overrides_apply_to_their_relay_only_after_url_normalisation() {
        let mut config = SynchronizerConfig::default();
        config.overrides.insert(
            "WSS://Relay.Example.com:443/".into(),
            RelayOverride {
                limit: Some(100),
                timeout: Some(20.0),
                filters: Some(vec![serde_json::json!({"kinds": [1]})]),
                ..RelayOverride::default()
            },
        );
        let special = Relay::new("wss://relay.example.com", 0).unwrap();
        let other = Relay::new("wss://other.example.com", 0).unwrap();
        let s = config.settings_for(&special).unwrap();
        assert_eq!(s.limit, 100);
        assert_eq!(s.timeout, Some(Duration::from_secs(20)));
        assert_eq!(s.filters.len(), 1);
        assert!(s.filters[0].kinds.is_some());
        let o = config.settings_for(&other).unwrap();
        assert_eq!(o.limit, 500);
        assert_eq!(o.timeout, None);
        assert!(o.filters[0].kinds.is_none());
    }
}
