//! Configuration of the pool and the facade: the `brotr.yaml` keys of BigBrotr 6.6.9, with the
//! original's defaults and ranges.
//!
//! Every struct accepts a partial YAML mapping (missing keys take their default) and is checked by
//! `validate()`, whose error names the offending key.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{DbError, Result};

/// The whole `brotr.yaml` document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BrotrConfig {
    /// Connection pool settings.
    pub pool: PoolConfig,
    /// Bulk-call limits.
    pub batch: BatchConfig,
    /// Per-category operation timeouts.
    pub timeouts: TimeoutsConfig,
}

/// `pool:` — how to reach PostgreSQL and how many connections to keep.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolConfig {
    /// `pool.database`.
    pub database: DatabaseConfig,
    /// `pool.limits`.
    pub limits: LimitsConfig,
    /// `pool.timeouts`.
    pub timeouts: PoolTimeoutsConfig,
    /// `pool.retry`.
    pub retry: RetryConfig,
    /// `pool.server_settings`.
    pub server_settings: ServerSettingsConfig,
}

/// `pool.database` — the server and the credentials' location.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// Host name, IP address, or an absolute directory holding a Unix socket.
    pub host: String,
    /// TCP port (also the socket file suffix for Unix sockets).
    pub port: u16,
    /// Database name.
    pub database: String,
    /// Role to log in as.
    pub user: String,
    /// Name of the environment variable that holds the password. An unset variable is an
    /// error, as in the original, unless `password` is given; `""` means no password at all
    /// (trust or peer authentication on a local socket; the original has no such setting).
    pub password_env: String,
    /// The password itself (6.6.9 accepts it; an environment variable is the better place).
    /// Never logged.
    pub password: Option<String>,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password_env", &self.password_env)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 5432,
            database: "bigbrotr".into(),
            user: "admin".into(),
            password_env: "DB_ADMIN_PASSWORD".into(),
            password: None,
        }
    }
}

impl DatabaseConfig {
    /// The password to log in with: `password` when given, else the variable `password_env`
    /// names (unset: an error naming it), none when `password_env` is empty.
    pub fn resolve_password(&self) -> Result<Option<String>, DbError> {
        if let Some(password) = self.password.as_ref().filter(|p| !p.is_empty()) {
            return Ok(Some(password.clone()));
        }
        let name = self.password_env.trim();
        if name.is_empty() {
            return Ok(None);
        }
        match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(Some(value)),
            _ => Err(DbError::Config(format!(
                "pool.database.password_env: the environment variable {name} is not set (set \
                 it, give pool.database.password, or set password_env to \"\" to log in \
                 without a password)"
            ))),
        }
    }
}

/// `pool.limits` — pool sizing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Connections kept open (1–100).
    pub min_size: u32,
    /// Connections at most (1–200, ≥ min_size).
    pub max_size: u32,
    /// asyncpg recycled a connection after this many queries; sqlx has no such knob, so it is
    /// accepted for compatibility and enforced as a connection lifetime instead (see docs).
    pub max_queries: u64,
    /// Seconds an idle connection is kept before it is closed.
    pub max_inactive_connection_lifetime: f64,
    /// Named (server-side prepared) statements kept per connection, 0–1000. `0`, the default,
    /// is the original's `statement_cache_size=0`: every statement unnamed, safe behind any
    /// PgBouncer in transaction mode. A PgBouncer ≥ 1.21 with `max_prepared_statements` at
    /// least this large (the deployments ship 1.25 with 200) lets the read side cache them,
    /// which saves a round trip and the planning of every repeated statement.
    pub statement_cache_size: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            min_size: 1,
            max_size: 5,
            max_queries: 50_000,
            max_inactive_connection_lifetime: 300.0,
            statement_cache_size: 0,
        }
    }
}

/// `pool.timeouts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolTimeoutsConfig {
    /// Seconds to wait for a free connection.
    pub acquisition: f64,
}

impl Default for PoolTimeoutsConfig {
    fn default() -> Self {
        Self { acquisition: 10.0 }
    }
}

/// `pool.retry` — connection retries with backoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryConfig {
    /// Attempts in all (1–10).
    pub max_attempts: u32,
    /// First delay in seconds.
    pub initial_delay: f64,
    /// Largest delay in seconds (≥ initial_delay).
    pub max_delay: f64,
    /// Double the delay each time (else grow linearly).
    pub exponential_backoff: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: 1.0,
            max_delay: 10.0,
            exponential_backoff: true,
        }
    }
}

impl RetryConfig {
    /// The delay before retry number `attempt` (0-based): `initial·2^n` capped at `max_delay`, or
    /// `initial·(n+1)` when backoff is linear.
    pub fn delay(&self, attempt: u32) -> Duration {
        let secs = if self.exponential_backoff {
            self.initial_delay * 2f64.powi(attempt.min(30) as i32)
        } else {
            self.initial_delay * f64::from(attempt + 1)
        };
        Duration::from_secs_f64(secs.min(self.max_delay).max(0.0))
    }
}

/// `pool.server_settings` — session settings sent to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSettingsConfig {
    /// `application_name` shown in `pg_stat_activity` (defaults to the service name).
    pub application_name: String,
    /// Session time zone.
    pub timezone: String,
    /// Server-side statement timeout in milliseconds; 0 leaves the server's default.
    pub statement_timeout: u64,
}

impl Default for ServerSettingsConfig {
    fn default() -> Self {
        Self {
            application_name: "bigbrotr".into(),
            timezone: "UTC".into(),
            statement_timeout: 0,
        }
    }
}

/// `batch:` — the bulk-call guard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchConfig {
    /// Rows per stored-function call at most (1–100000).
    pub max_size: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_size: 1000 }
    }
}

/// `timeouts:` — deadlines per operation category, in seconds; `null` means none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeoutsConfig {
    /// Single reads and small writes.
    pub query: Option<f64>,
    /// Bulk inserts.
    pub batch: Option<f64>,
    /// Cleanup deletes.
    pub cleanup: Option<f64>,
    /// Materialized-view refreshes.
    pub refresh: Option<f64>,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            query: Some(60.0),
            batch: Some(120.0),
            cleanup: Some(90.0),
            refresh: None,
        }
    }
}

/// The operation categories that carry their own timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutCategory {
    /// `timeouts.query`.
    Query,
    /// `timeouts.batch`.
    Batch,
    /// `timeouts.cleanup`.
    Cleanup,
    /// `timeouts.refresh`.
    Refresh,
}

impl TimeoutCategory {
    /// The key's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Batch => "batch",
            Self::Cleanup => "cleanup",
            Self::Refresh => "refresh",
        }
    }
}

impl TimeoutsConfig {
    /// The deadline of a category, `None` when unbounded.
    pub fn get(&self, category: TimeoutCategory) -> Option<Duration> {
        let secs = match category {
            TimeoutCategory::Query => self.query,
            TimeoutCategory::Batch => self.batch,
            TimeoutCategory::Cleanup => self.cleanup,
            TimeoutCategory::Refresh => self.refresh,
        };
        secs.map(Duration::from_secs_f64)
    }
}

fn check_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<()> {
    if value < min || value > max {
        return Err(DbError::Config(format!(
            "{key} = {value} is out of range ({min}..={max})"
        )));
    }
    Ok(())
}

fn check_finite(key: &str, value: f64) -> Result<()> {
    if !value.is_finite() {
        return Err(DbError::Config(format!("{key} must be a finite number")));
    }
    Ok(())
}

impl BrotrConfig {
    /// Checks every range and cross-field rule; the error names the key.
    pub fn validate(&self) -> Result<()> {
        let db = &self.pool.database;
        if db.host.trim().is_empty() {
            return Err(DbError::Config(
                "pool.database.host must not be empty".into(),
            ));
        }
        check_range("pool.database.port", db.port, 1, 65535)?;
        if db.database.trim().is_empty() {
            return Err(DbError::Config(
                "pool.database.database must not be empty".into(),
            ));
        }
        if db.user.trim().is_empty() {
            return Err(DbError::Config(
                "pool.database.user must not be empty".into(),
            ));
        }
        let limits = &self.pool.limits;
        check_range("pool.limits.min_size", limits.min_size, 1, 100)?;
        check_range("pool.limits.max_size", limits.max_size, 1, 200)?;
        if limits.max_size < limits.min_size {
            return Err(DbError::Config(format!(
                "pool.limits.max_size ({}) must be >= pool.limits.min_size ({})",
                limits.max_size, limits.min_size
            )));
        }
        check_range("pool.limits.max_queries", limits.max_queries, 1, u64::MAX)?;
        check_range(
            "pool.limits.statement_cache_size",
            limits.statement_cache_size,
            0,
            1000,
        )?;
        check_finite(
            "pool.limits.max_inactive_connection_lifetime",
            limits.max_inactive_connection_lifetime,
        )?;
        check_range(
            "pool.limits.max_inactive_connection_lifetime",
            limits.max_inactive_connection_lifetime,
            0.0,
            86_400.0,
        )?;
        check_finite("pool.timeouts.acquisition", self.pool.timeouts.acquisition)?;
        check_range(
            "pool.timeouts.acquisition",
            self.pool.timeouts.acquisition,
            0.1,
            3600.0,
        )?;
        let retry = &self.pool.retry;
        check_range("pool.retry.max_attempts", retry.max_attempts, 1, 10)?;
        check_finite("pool.retry.initial_delay", retry.initial_delay)?;
        check_finite("pool.retry.max_delay", retry.max_delay)?;
        check_range("pool.retry.initial_delay", retry.initial_delay, 0.0, 3600.0)?;
        check_range("pool.retry.max_delay", retry.max_delay, 0.0, 3600.0)?;
        if retry.max_delay < retry.initial_delay {
            return Err(DbError::Config(format!(
                "pool.retry.max_delay ({}) must be >= pool.retry.initial_delay ({})",
                retry.max_delay, retry.initial_delay
            )));
        }
        let settings = &self.pool.server_settings;
        if settings.application_name.len() > 63 {
            return Err(DbError::Config(
                "pool.server_settings.application_name is longer than 63 bytes".into(),
            ));
        }
        if settings.timezone.trim().is_empty()
            || !settings
                .timezone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-:".contains(c))
        {
            return Err(DbError::Config(format!(
                "pool.server_settings.timezone {:?} is not a time zone name",
                settings.timezone
            )));
        }
        check_range("batch.max_size", self.batch.max_size, 1, 100_000)?;
        for (key, value) in [
            ("timeouts.query", self.timeouts.query),
            ("timeouts.batch", self.timeouts.batch),
            ("timeouts.cleanup", self.timeouts.cleanup),
            ("timeouts.refresh", self.timeouts.refresh),
        ] {
            if let Some(secs) = value {
                check_finite(key, secs)?;
                check_range(key, secs, 0.1, 3600.0)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_literal_the_variable_or_explicitly_none() {
        let mut db = DatabaseConfig {
            password_env: "BIGBROTR_UNIT_TEST_NEVER_SET".into(),
            ..DatabaseConfig::default()
        };
        // An unset variable is an error naming it, as in the original.
        let error = db.resolve_password().unwrap_err().to_string();
        assert!(error.contains("BIGBROTR_UNIT_TEST_NEVER_SET"), "{error}");
        // 6.6.9's literal `password` is used (and never printed).
        db.password = Some("s3cret".into());
        assert_eq!(db.resolve_password().unwrap().as_deref(), Some("s3cret"));
        assert!(!format!("{db:?}").contains("s3cret"));
        // An empty variable name: no password (trust or peer authentication).
        db.password = None;
        db.password_env = String::new();
        assert_eq!(db.resolve_password().unwrap(), None);
    }

    #[test]
    fn defaults_match_the_original() {
        let config = BrotrConfig::default();
        assert_eq!(config.pool.database.host, "localhost");
        assert_eq!(config.pool.database.port, 5432);
        assert_eq!(config.pool.database.database, "bigbrotr");
        assert_eq!(config.pool.database.user, "admin");
        assert_eq!(config.pool.database.password_env, "DB_ADMIN_PASSWORD");
        assert_eq!(config.pool.limits.min_size, 1);
        assert_eq!(config.pool.limits.max_size, 5);
        assert_eq!(config.pool.limits.max_queries, 50_000);
        assert_eq!(config.pool.timeouts.acquisition, 10.0);
        assert_eq!(config.pool.retry.max_attempts, 3);
        assert_eq!(config.batch.max_size, 1000);
        assert_eq!(config.timeouts.query, Some(60.0));
        assert_eq!(config.timeouts.batch, Some(120.0));
        assert_eq!(config.timeouts.cleanup, Some(90.0));
        assert_eq!(config.timeouts.refresh, None);
        config.validate().unwrap();
    }

    #[test]
    fn backoff_is_exponential_and_capped_or_linear() {
        let mut retry = RetryConfig::default();
        assert_eq!(retry.delay(0), Duration::from_secs(1));
        assert_eq!(retry.delay(1), Duration::from_secs(2));
        assert_eq!(retry.delay(3), Duration::from_secs(8));
        assert_eq!(retry.delay(4), Duration::from_secs(10));
        retry.exponential_backoff = false;
        assert_eq!(retry.delay(2), Duration::from_secs(3));
    }

    #[test]
    fn invalid_values_name_their_key() {
        type Mutation = Box<dyn Fn(&mut BrotrConfig)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|c| c.pool.limits.min_size = 0),
                "pool.limits.min_size",
            ),
            (
                Box::new(|c| c.pool.limits.max_size = 201),
                "pool.limits.max_size",
            ),
            (
                Box::new(|c| {
                    c.pool.limits.min_size = 5;
                    c.pool.limits.max_size = 2;
                }),
                "pool.limits.max_size",
            ),
            (
                Box::new(|c| c.pool.retry.max_attempts = 11),
                "pool.retry.max_attempts",
            ),
            (
                Box::new(|c| c.pool.retry.max_delay = 0.5),
                "pool.retry.max_delay",
            ),
            (Box::new(|c| c.batch.max_size = 0), "batch.max_size"),
            (Box::new(|c| c.batch.max_size = 100_001), "batch.max_size"),
            (Box::new(|c| c.timeouts.query = Some(0.0)), "timeouts.query"),
            (
                Box::new(|c| c.timeouts.refresh = Some(f64::NAN)),
                "timeouts.refresh",
            ),
            (Box::new(|c| c.pool.database.port = 0), "pool.database.port"),
            (
                Box::new(|c| c.pool.server_settings.timezone = "UTC'; DROP".into()),
                "pool.server_settings.timezone",
            ),
        ];
        for (mutate, key) in cases {
            let mut config = BrotrConfig::default();
            mutate(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{err:?} should name {key}");
        }
    }
}
