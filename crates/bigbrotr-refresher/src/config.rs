//! `refresher.yaml`: the original's keys (`interval` 86400, at least 60 and, unlike every other
//! service, no upper bound; `refresh.views`) and this project's `refresh.concurrency`, validated
//! with messages that name the key.

use bigbrotr_core::config::{BaseServiceConfig, ConfigError, Validate};
use bigbrotr_db::refresher::MAX_REFRESH_NAME_LEN;
use serde::{Deserialize, Serialize};

/// Seconds between cycle starts by default: one day.
pub const DEFAULT_INTERVAL: f64 = 86_400.0;

/// The shortest interval accepted.
pub const MIN_INTERVAL: f64 = 60.0;

/// The names refreshed by default, in dependency order: the original's 13 materialized views
/// (relay_metadata_latest first, the two that read it last among them), then this project's
/// uptime tables (the daily one before the rollup that reads it).
pub const DEFAULT_VIEWS: [&str; 15] = bigbrotr_db::migrate::STATISTICS_OBJECTS;

/// `refresher.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefresherConfig {
    /// The keys every service has (`interval` defaults to a day here).
    #[serde(flatten)]
    pub base: BaseServiceConfig,
    /// `refresh:`.
    pub refresh: RefreshConfig,
}

impl Default for RefresherConfig {
    fn default() -> Self {
        Self {
            base: BaseServiceConfig::with_interval(DEFAULT_INTERVAL),
            refresh: RefreshConfig::default(),
        }
    }
}

/// Refreshes run at once by default: the deployments' refresher pool has two connections.
pub const DEFAULT_CONCURRENCY: usize = 2;

/// The most refreshes run at once.
pub const MAX_CONCURRENCY: usize = 16;

/// `refresh:` — what is refreshed, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefreshConfig {
    /// Names whose `public.<name>_refresh()` is called, started in this order, each on its own.
    pub views: Vec<String>,
    /// How many refreshes run at once (1 = one after the other, as 6.6.9 does). Since migration
    /// 0004 each refresh brings its own inputs up to date first, so the order no longer decides
    /// what a refresh reads, and refreshes of independent objects can overlap.
    pub concurrency: usize,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            views: DEFAULT_VIEWS.iter().map(|v| (*v).to_owned()).collect(),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// True when `name` matches `^[a-z_][a-z0-9_]*$`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Validate for RefresherConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.base.validate_with_interval(MIN_INTERVAL, None)?;
        if !(1..=MAX_CONCURRENCY).contains(&self.refresh.concurrency) {
            return Err(ConfigError(format!(
                "refresh.concurrency = {} must be between 1 and {MAX_CONCURRENCY}",
                self.refresh.concurrency
            )));
        }
        if self.refresh.views.is_empty() {
            return Err(ConfigError(
                "refresh.views must list at least one name".into(),
            ));
        }
        for (index, name) in self.refresh.views.iter().enumerate() {
            if !is_valid_name(name) {
                return Err(ConfigError(format!(
                    "refresh.views[{index}] = {name:?} must match ^[a-z_][a-z0-9_]*$"
                )));
            }
            if name.len() > MAX_REFRESH_NAME_LEN {
                return Err(ConfigError(format!(
                    "refresh.views[{index}] = {name:?} is longer than {MAX_REFRESH_NAME_LEN} \
                     characters (its function {name}_refresh would not fit PostgreSQL's 63)"
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
    fn defaults_are_the_originals_plus_the_uptime_tables() {
        let config = RefresherConfig::default();
        assert_eq!(config.base.interval, 86_400.0);
        assert_eq!(config.refresh.views.len(), 15);
        assert_eq!(config.refresh.concurrency, 2);
        assert_eq!(config.refresh.views[0], "relay_metadata_latest");
        assert_eq!(config.refresh.views[12], "supported_nip_counts");
        assert_eq!(
            &config.refresh.views[13..],
            ["relay_uptime_daily", "relay_uptime"]
        );
        config.validate().unwrap();
    }

    #[test]
    fn concurrency_is_bounded() {
        for (value, ok) in [(0, false), (1, true), (16, true), (17, false)] {
            let mut config = RefresherConfig::default();
            config.refresh.concurrency = value;
            let result = config.validate();
            assert_eq!(result.is_ok(), ok, "{value}: {result:?}");
            if let Err(e) = result {
                assert!(e.0.contains("refresh.concurrency"), "{e:?}");
            }
        }
    }

    #[test]
    fn the_name_rule() {
        for good in ["a", "_", "event_stats", "v2_x"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "Event", "2x", "a-b", "a b", "é", "a;b"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
