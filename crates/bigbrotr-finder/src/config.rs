//! `finder.yaml`: the API sources, the archive scan and live discovery, with their ranges.

use bigbrotr_core::config::{BaseServiceConfig, ConfigError, Validate};
use bigbrotr_utils::network::NetworksConfig;
use serde::{Deserialize, Serialize};

/// `finder.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FinderConfig {
    /// The keys every service has.
    #[serde(flatten)]
    pub base: BaseServiceConfig,
    /// `api:` — HTTP sources.
    pub api: ApiConfig,
    /// `events:` — relay URLs in archived events.
    pub events: EventsConfig,
    /// `live:` — kind 10002 / 30166 events fetched from relays (beyond the original).
    pub live: LiveConfig,
    /// `networks:` — used by live discovery.
    pub networks: NetworksConfig,
}

/// `api:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// Run the API phase.
    pub enabled: bool,
    /// Seconds between two fetches of one source (1–604800).
    pub cooldown: f64,
    /// Seconds between two sources (0–10).
    pub request_delay: f64,
    /// Largest response body in bytes (1 KiB–50 MiB).
    pub max_response_size: u64,
    /// The sources.
    pub sources: Vec<ApiSource>,
}

/// The v2 API of nostr.watch (the v1 endpoints the original uses are unmaintained).
pub const NOSTR_WATCH_V2: &str =
    "https://api.nostr.watch/v2/relays?limit=200&sortBy=updated&sortOrder=desc&format=simple";

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cooldown: 86_400.0,
            request_delay: 1.0,
            max_response_size: 5 * 1024 * 1024,
            sources: vec![ApiSource::new(
                NOSTR_WATCH_V2,
                "relays[?type(@) == 'string'] || relays[*].url",
            )],
        }
    }
}

/// One HTTP source: a URL and a JMESPath expression selecting relay URLs from its JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiSource {
    /// The URL fetched with GET.
    pub url: String,
    /// JMESPath expression; must yield a list (its strings are relay URLs).
    pub expression: String,
    /// Fetch this source.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds for the whole request (0.1–120).
    #[serde(default = "thirty")]
    pub timeout: f64,
    /// Seconds for the connection (at most `timeout`).
    #[serde(default = "ten")]
    pub connect_timeout: f64,
    /// Accept an invalid certificate.
    #[serde(default)]
    pub allow_insecure: bool,
}

fn yes() -> bool {
    true
}
fn thirty() -> f64 {
    30.0
}
fn ten() -> f64 {
    10.0
}

impl ApiSource {
    /// A source with the default options.
    pub fn new(url: &str, expression: &str) -> Self {
        Self {
            url: url.to_owned(),
            expression: expression.to_owned(),
            enabled: true,
            timeout: 30.0,
            connect_timeout: 10.0,
            allow_insecure: false,
        }
    }
}

/// `events:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventsConfig {
    /// Run the archive scan.
    pub enabled: bool,
    /// Events read per query (10–10000).
    pub scan_size: u32,
    /// Candidates buffered before a flush (10–10000).
    pub batch_size: u32,
    /// Relays scanned concurrently (1–200).
    pub parallel_relays: u32,
    /// Seconds one relay may be scanned per cycle (10–86400).
    pub max_relay_time: f64,
    /// Seconds the whole phase may take (60–86400).
    pub max_duration: f64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            scan_size: 500,
            batch_size: 500,
            parallel_relays: 60,
            max_relay_time: 900.0,
            max_duration: 7200.0,
        }
    }
}

/// `live:` — discovery from the live network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LiveConfig {
    /// Run live discovery.
    pub enabled: bool,
    /// Relays asked for the events (canonical URLs).
    pub relays: Vec<String>,
    /// Kinds fetched: 10002 (NIP-65 `r` tags) and 30166 (NIP-66 `d` tags) by default.
    pub kinds: Vec<u16>,
    /// Events per REQ (10–5000).
    pub page_size: u32,
    /// Events read per relay per cycle at most (10–1000000).
    pub max_events: u32,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            relays: vec![
                "wss://relay.nostr.watch".to_owned(),
                "wss://relaypag.es".to_owned(),
                "wss://monitorlizard.nostr1.com".to_owned(),
                "wss://purplepag.es".to_owned(),
            ],
            kinds: vec![10002, 30166],
            page_size: 500,
            max_events: 20_000,
        }
    }
}

fn range(key: &str, value: f64, min: f64, max: f64) -> Result<(), ConfigError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "{key} = {value} is out of range ({min}..={max})"
        )))
    }
}

impl Validate for FinderConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.base.validate()?;
        let api = &self.api;
        range("api.cooldown", api.cooldown, 1.0, 604_800.0)?;
        range("api.request_delay", api.request_delay, 0.0, 10.0)?;
        range(
            "api.max_response_size",
            api.max_response_size as f64,
            1024.0,
            50.0 * 1024.0 * 1024.0,
        )?;
        for (i, source) in api.sources.iter().enumerate() {
            let key = format!("api.sources[{i}]");
            if source.url.trim().is_empty() {
                return Err(ConfigError(format!("{key}.url must not be empty")));
            }
            range(&format!("{key}.timeout"), source.timeout, 0.1, 120.0)?;
            // The original's range (0.1–60) and its rule (at most `timeout`).
            range(
                &format!("{key}.connect_timeout"),
                source.connect_timeout,
                0.1,
                source.timeout.min(60.0),
            )?;
            jmespath::compile(&source.expression).map_err(|e| {
                ConfigError(format!(
                    "{key}.expression {:?} is not valid JMESPath: {e}",
                    source.expression
                ))
            })?;
        }
        let ev = &self.events;
        range("events.scan_size", f64::from(ev.scan_size), 10.0, 10_000.0)?;
        range(
            "events.batch_size",
            f64::from(ev.batch_size),
            10.0,
            10_000.0,
        )?;
        range(
            "events.parallel_relays",
            f64::from(ev.parallel_relays),
            1.0,
            200.0,
        )?;
        range("events.max_relay_time", ev.max_relay_time, 10.0, 86_400.0)?;
        range("events.max_duration", ev.max_duration, 60.0, 86_400.0)?;
        let live = &self.live;
        range("live.page_size", f64::from(live.page_size), 10.0, 5_000.0)?;
        range(
            "live.max_events",
            f64::from(live.max_events),
            10.0,
            1_000_000.0,
        )?;
        if live.page_size > live.max_events {
            return Err(ConfigError(format!(
                "live.page_size ({}) is larger than live.max_events ({}): one page would read \
                 more than a relay's events per cycle",
                live.page_size, live.max_events
            )));
        }
        if live.kinds.is_empty() {
            return Err(ConfigError("live.kinds must not be empty".into()));
        }
        for (i, url) in live.relays.iter().enumerate() {
            bigbrotr_models::relay::Relay::new(url, 0).map_err(|e| {
                ConfigError(format!(
                    "live.relays[{i}] {url:?} is not a canonical relay URL: {e}"
                ))
            })?;
        }
        self.networks
            .validate()
            .map_err(|e| ConfigError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<FinderConfig, ConfigError> {
        let value = bigbrotr_core::config::parse_yaml(yaml, std::path::Path::new("finder.yaml"))?;
        let loaded = bigbrotr_core::config::load_value::<FinderConfig>(
            value,
            true,
            "BIGBROTR_TEST_UNUSED__",
            "finder.yaml",
        )?;
        Ok(loaded.config)
    }

    #[test]
    fn defaults_are_the_reference_values_and_valid() {
        let config = FinderConfig::default();
        config.validate().unwrap();
        assert_eq!(config.api.cooldown, 86_400.0);
        assert_eq!(config.api.max_response_size, 5_242_880);
        assert_eq!(config.events.parallel_relays, 60);
        assert_eq!(
            (config.events.scan_size, config.events.batch_size),
            (500, 500)
        );
        assert_eq!(config.live.kinds, vec![10002, 30166]);
    }

    #[test]
    fn sources_need_a_url_and_a_valid_expression() {
        let missing = parse("api:\n  sources:\n    - url: https://x.example.com\n");
        assert!(missing.is_err());
        let bad =
            parse("api:\n  sources:\n    - url: https://x.example.com\n      expression: '[*'\n")
                .unwrap_err();
        assert!(bad.0.contains("api.sources[0].expression"), "{bad}");
        let ok =
            parse("api:\n  sources:\n    - url: https://x.example.com\n      expression: '[*]'\n")
                .unwrap();
        assert_eq!(ok.api.sources[0].timeout, 30.0);
        let slow = parse(
            "api:\n  sources:\n    - url: https://x.example.com\n      expression: '[*]'\n      timeout: 5\n      connect_timeout: 6\n",
        )
        .unwrap_err();
        assert!(slow.0.contains("connect_timeout"), "{slow}");
        // The original's upper bound of 60 s holds even under a longer timeout.
        let long = parse(
            "api:\n  sources:\n    - url: https://x.example.com\n      expression: '[*]'\n      timeout: 120\n      connect_timeout: 61\n",
        )
        .unwrap_err();
        assert!(long.0.contains("connect_timeout"), "{long}");
        parse(
            "api:\n  sources:\n    - url: https://x.example.com\n      expression: '[*]'\n      timeout: 120\n      connect_timeout: 60\n",
        )
        .unwrap();
    }

    #[test]
    fn ranges_are_enforced() {
        assert!(parse("events:\n  scan_size: 5\n").is_err());
        assert!(parse("events:\n  parallel_relays: 201\n").is_err());
        assert!(parse("api:\n  request_delay: 11\n").is_err());
        assert!(parse("live:\n  relays: ['wss://127.0.0.1']\n").is_err());
        let error = parse("live:\n  page_size: 600\n  max_events: 500\n").unwrap_err();
        assert!(
            error.0.contains("live.page_size") && error.0.contains("live.max_events"),
            "{error}"
        );
        parse("live:\n  page_size: 500\n  max_events: 500\n").unwrap();
    }

    #[test]
    fn unknown_keys_of_a_source_are_warned() {
        let value = bigbrotr_core::config::parse_yaml(
            "api:\n  sources:\n    - url: https://x.example.com\n      expression: '[*]'\n      \
             timout: 5\n      timeout: \"20\"\n",
            std::path::Path::new("finder.yaml"),
        )
        .unwrap();
        let loaded = bigbrotr_core::config::load_value::<FinderConfig>(
            value,
            true,
            "BIGBROTR_TEST_UNUSED__",
            "finder.yaml",
        )
        .unwrap();
        assert_eq!(loaded.unknown_keys, vec!["api.sources[0].timout"]);
        assert_eq!(loaded.config.api.sources[0].timeout, 20.0);
    }
}
