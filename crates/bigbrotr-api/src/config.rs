//! `api.yaml`: the original's keys (`title`, `host`, `port`, `route_prefix`, `max_page_size`,
//! `default_page_size`, `tables`, `cors_origins`, `request_timeout`; `interval` 60) and this
//! project's bounds (`max_concurrent_queries`, `queue_timeout`, `exact_total_limit`) and
//! `/health`'s `max_replay_lag`, validated with messages that name the key.

use bigbrotr_catalog::{PageLimits, TablesConfig};
use bigbrotr_core::config::{BaseServiceConfig, ConfigError, Validate};
use serde::{Deserialize, Serialize};

/// Seconds between the API's cycles (a liveness check of the server and a log line).
pub const DEFAULT_INTERVAL: f64 = 60.0;

/// `api.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// The keys every service has (`interval` defaults to 60 s here).
    #[serde(flatten)]
    pub base: BaseServiceConfig,
    /// Title of the OpenAPI description and the `/docs` page.
    pub title: String,
    /// Listen address (an IP address or a host name).
    pub host: String,
    /// Listen port; must differ from `metrics.port`.
    pub port: u16,
    /// Prefix of the table routes (normalised to one leading `/` and no trailing one).
    pub route_prefix: String,
    /// The largest page (1–10000); larger `limit`s are clamped.
    pub max_page_size: u32,
    /// The page size without `limit` (1–`max_page_size`).
    pub default_page_size: u32,
    /// Tables served: `{name: {enabled, price}}`; closed unless enabled.
    pub tables: TablesConfig,
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Seconds a request may take (1–300): the server-side `statement_timeout` of its queries
    /// and the deadline of the whole answer.
    pub request_timeout: f64,
    /// Queries run at once (1–200): requests past it wait for a slot (so a flood of deep
    /// queries cannot take every pooled connection). Default: the pool's `max_size`.
    pub max_concurrent_queries: Option<u32>,
    /// Seconds a request waits for a query slot before a 503 (0.1–60).
    pub queue_timeout: f64,
    /// `total` is counted exactly up to this many rows and estimated past it (0: always
    /// estimated; at most 10,000,000).
    pub exact_total_limit: u64,
    /// Seconds a standby may lag behind its primary before `/health` answers 503
    /// `"status":"degraded"` (0.1–86400); null: never (the lag is reported either way).
    pub max_replay_lag: Option<f64>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            base: BaseServiceConfig::with_interval(DEFAULT_INTERVAL),
            title: "BigBrotr API".into(),
            host: "0.0.0.0".into(),
            port: 8080,
            route_prefix: "/v1".into(),
            max_page_size: 1000,
            default_page_size: 100,
            tables: TablesConfig::new(),
            cors_origins: Vec::new(),
            request_timeout: 30.0,
            max_concurrent_queries: None,
            queue_timeout: 5.0,
            exact_total_limit: 10_000,
            max_replay_lag: None,
        }
    }
}

impl ApiConfig {
    /// `route_prefix` normalised as the original does: one leading `/`, no trailing `/` (an
    /// empty or `/` prefix serves the tables at the root).
    pub fn prefix(&self) -> String {
        let trimmed = self.route_prefix.trim().trim_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        }
    }

    /// Page sizes and counting for the catalog.
    pub fn page_limits(&self) -> PageLimits {
        PageLimits {
            default_page_size: self.default_page_size,
            max_page_size: self.max_page_size,
            exact_total_limit: self.exact_total_limit,
        }
    }
}

impl Validate for ApiConfig {
    /// `tables:` is keyed by table name; each entry's keys are checked and converted.
    fn shapes() -> Vec<(&'static str, serde_json::Value)> {
        let table = serde_json::to_value(bigbrotr_catalog::TableAccess::default());
        vec![
            ("tables.*", table.unwrap_or_default()),
            ("max_concurrent_queries", serde_json::Value::from(1)),
            ("max_replay_lag", serde_json::Value::from(1.0)),
        ]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.base.validate()?;
        if !bigbrotr_core::metrics::is_host(&self.host) {
            return Err(ConfigError(format!(
                "host {:?} must be an IP address or a host name",
                self.host
            )));
        }
        if self.port == 0 && self.port == self.base.metrics.port {
            // Port 0 (tests: any free port) may equal an also-0 metrics port.
        } else if self.port == self.base.metrics.port {
            return Err(ConfigError(format!(
                "port = {} must differ from metrics.port",
                self.port
            )));
        }
        let prefix = self.prefix();
        if prefix.len() > 64
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
        {
            return Err(ConfigError(format!(
                "route_prefix {:?} must be a path of letters, digits, '-', '_', '.' and '/'",
                self.route_prefix
            )));
        }
        if ["/health", "/openapi.json", "/docs", "/metrics"].contains(&prefix.as_str()) {
            return Err(ConfigError(format!(
                "route_prefix {:?} collides with a fixed route",
                self.route_prefix
            )));
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
        if !(1.0..=300.0).contains(&self.request_timeout) {
            return Err(ConfigError(format!(
                "request_timeout = {} is out of range (1..=300)",
                self.request_timeout
            )));
        }
        if let Some(n) = self.max_concurrent_queries
            && !(1..=200).contains(&n)
        {
            return Err(ConfigError(format!(
                "max_concurrent_queries = {n} is out of range (1..=200)"
            )));
        }
        if !(0.1..=60.0).contains(&self.queue_timeout) {
            return Err(ConfigError(format!(
                "queue_timeout = {} is out of range (0.1..=60)",
                self.queue_timeout
            )));
        }
        if self.exact_total_limit > 10_000_000 {
            return Err(ConfigError(format!(
                "exact_total_limit = {} is out of range (0..=10000000)",
                self.exact_total_limit
            )));
        }
        if let Some(lag) = self.max_replay_lag
            && !(0.1..=86_400.0).contains(&lag)
        {
            return Err(ConfigError(format!(
                "max_replay_lag = {lag} is out of range (0.1..=86400)"
            )));
        }
        for (index, origin) in self.cors_origins.iter().enumerate() {
            let ok = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && origin.is_ascii()
                    && !origin.contains(char::is_whitespace));
            if !ok {
                return Err(ConfigError(format!(
                    "cors_origins[{index}] = {origin:?} must be \"*\" or an origin like \
                     https://example.org (scheme and host, no trailing slash)"
                )));
            }
        }
        for name in self.tables.keys() {
            let valid = !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(ConfigError(format!(
                    "tables.{name}: a table name is lower-case letters, digits and '_'"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals() {
        let config = ApiConfig::default();
        assert_eq!(config.base.interval, 60.0);
        assert_eq!((config.host.as_str(), config.port), ("0.0.0.0", 8080));
        assert_eq!(config.prefix(), "/v1");
        assert_eq!(
            (config.max_page_size, config.default_page_size),
            (1000, 100)
        );
        assert!(config.tables.is_empty() && config.cors_origins.is_empty());
        assert_eq!(config.request_timeout, 30.0);
        config.validate().unwrap();
    }

    #[test]
    fn table_entries_are_converted_like_pydantic_and_their_typos_warned() {
        let value = bigbrotr_core::config::parse_yaml(
            "tables:\n  relay: {enabled: \"true\", enabeld: true}\n  event: {enabled: \"off\"}\n",
            std::path::Path::new("api.yaml"),
        )
        .unwrap();
        let loaded = bigbrotr_core::config::load_value::<ApiConfig>(
            value,
            true,
            "BIGBROTR_TEST_UNUSED__",
            "api.yaml",
        )
        .unwrap();
        assert_eq!(loaded.unknown_keys, vec!["tables.relay.enabeld"]);
        assert!(loaded.config.tables["relay"].enabled);
        assert!(!loaded.config.tables["event"].enabled);
    }

    #[test]
    fn the_prefix_is_normalised() {
        for (raw, normal) in [("v1/", "/v1"), ("/api/v2", "/api/v2"), ("/", ""), ("", "")] {
            let config = ApiConfig {
                route_prefix: raw.into(),
                ..ApiConfig::default()
            };
            assert_eq!(config.prefix(), normal, "{raw}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(ApiConfig, &str)> = vec![
            (
                ApiConfig {
                    port: 8000,
                    ..ApiConfig::default()
                },
                "metrics.port",
            ),
            (
                ApiConfig {
                    max_page_size: 10_001,
                    ..ApiConfig::default()
                },
                "max_page_size",
            ),
            (
                ApiConfig {
                    default_page_size: 2000,
                    ..ApiConfig::default()
                },
                "default_page_size",
            ),
            (
                ApiConfig {
                    request_timeout: 0.5,
                    ..ApiConfig::default()
                },
                "request_timeout",
            ),
            (
                ApiConfig {
                    route_prefix: "/v1?x".into(),
                    ..ApiConfig::default()
                },
                "route_prefix",
            ),
            (
                ApiConfig {
                    route_prefix: "/docs".into(),
                    ..ApiConfig::default()
                },
                "route_prefix",
            ),
            (
                ApiConfig {
                    cors_origins: vec!["example.org".into()],
                    ..ApiConfig::default()
                },
                "cors_origins[0]",
            ),
            (
                ApiConfig {
                    host: "not a host!".into(),
                    ..ApiConfig::default()
                },
                "host",
            ),
            (
                ApiConfig {
                    max_concurrent_queries: Some(0),
                    ..ApiConfig::default()
                },
                "max_concurrent_queries",
            ),
            (
                ApiConfig {
                    max_replay_lag: Some(0.0),
                    ..ApiConfig::default()
                },
                "max_replay_lag",
            ),
        ];
        for (config, key) in cases {
            let error = config.validate().unwrap_err();
            assert!(error.0.contains(key), "{key}: {error:?}");
        }
    }

    #[test]
    fn the_originals_yaml_loads() {
        let yaml = "
interval: 60
host: 0.0.0.0
port: 8080
route_prefix: /v1
max_page_size: 1000
default_page_size: 100
request_timeout: 30
cors_origins: [\"https://bigbrotr.com\"]
tables:
  relay: {enabled: true}
  event: {enabled: false}
  relay_stats: {enabled: true, price: 0}
pool:
  user: reader
  password_env: DB_READER_PASSWORD
  min_size: 2
metrics: {enabled: true, host: 0.0.0.0}
";
        let config: ApiConfig = serde_norway_like(yaml);
        config.validate().unwrap();
        assert!(config.tables["relay"].enabled && !config.tables["event"].enabled);
        assert_eq!(config.cors_origins, ["https://bigbrotr.com"]);
    }

    fn serde_norway_like(yaml: &str) -> ApiConfig {
        let value =
            bigbrotr_core::config::parse_yaml(yaml, std::path::Path::new("api.yaml")).unwrap();
        let loaded = bigbrotr_core::config::load_value::<ApiConfig>(
            value,
            true,
            "BIGBROTR_TEST_UNUSED__",
            "api.yaml",
        )
        .unwrap();
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        loaded.config
    }
}
