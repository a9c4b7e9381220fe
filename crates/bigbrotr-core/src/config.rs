//! Configuration loading: one YAML file per service plus the shared `brotr.yaml`, layered as
//! defaults ← YAML ← environment variables, then validated with messages that name the key.
//!
//! YAML is parsed with `serde_norway` (the maintained fork of the archived `serde_yaml`) and merged
//! with figment. Environment overrides use a prefix and `__` between keys:
//! `BIGBROTR_SERVICE__SEED__TO_VALIDATE=false`, `BIGBROTR_BROTR__POOL__DATABASE__HOST=pgbouncer`.
//! Unknown keys are accepted, as in the original, but each is logged as a warning.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Serialized};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cli::LogFormat;
use crate::metrics::MetricsConfig;

/// Environment prefix for the service YAML's keys.
pub const SERVICE_ENV_PREFIX: &str = "BIGBROTR_SERVICE__";
/// Environment prefix for `brotr.yaml`'s keys.
pub const BROTR_ENV_PREFIX: &str = "BIGBROTR_BROTR__";

/// A configuration problem; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Range and cross-field checks run after loading.
pub trait Validate {
    /// Returns an error naming the first invalid key.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// The outcome of loading one file.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The merged, validated configuration.
    pub config: T,
    /// Whether the file existed (a missing file means defaults, as the original).
    pub file_found: bool,
    /// Keys present in the YAML that no setting reads (dotted paths).
    pub unknown_keys: Vec<String>,
}

/// Loads `path` over `T::default()`, applies `env_prefix` overrides and validates.
pub fn load<T>(path: &Path, env_prefix: &str) -> Result<Loaded<T>, ConfigError>
where
    T: Serialize + DeserializeOwned + Default + Validate,
{
    let (yaml, file_found) = match std::fs::read_to_string(path) {
        Ok(text) => (parse_yaml(&text, path)?, true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (Value::Object(Default::default()), false)
        }
        Err(e) => {
            return Err(ConfigError(format!("cannot read {}: {e}", path.display())));
        }
    };
    load_value(yaml, file_found, env_prefix, &path.display().to_string())
}

/// Like [`load`], from an already parsed YAML document (tests, embedded defaults).
pub fn load_value<T>(
    yaml: Value,
    file_found: bool,
    env_prefix: &str,
    origin: &str,
) -> Result<Loaded<T>, ConfigError>
where
    T: Serialize + DeserializeOwned + Default + Validate,
{
    let defaults = serde_json::to_value(T::default())
        .map_err(|e| ConfigError(format!("cannot serialise defaults: {e}")))?;
    let mut unknown_keys = Vec::new();
    unknown_paths(&defaults, &yaml, "", &mut unknown_keys);
    let mut yaml = yaml;
    coerce_like_pydantic(&defaults, &mut yaml);
    let config: T = Figment::from(Serialized::defaults(T::default()))
        .merge(Serialized::defaults(yaml))
        .merge(Env::prefixed(env_prefix).split("__"))
        .extract()
        .map_err(|e| {
            let messages: Vec<String> = e
                .into_iter()
                .map(|error| {
                    let key = error.path.join(".");
                    let detail = error.kind.to_string();
                    if key.is_empty() {
                        format!("{origin}: {detail}")
                    } else {
                        format!("{origin}: key `{key}`: {detail}")
                    }
                })
                .collect();
            ConfigError(messages.join("; "))
        })?;
    config
        .validate()
        .map_err(|e| ConfigError(format!("{origin}: {}", e.0)))?;
    Ok(Loaded {
        config,
        file_found,
        unknown_keys,
    })
}

/// Parses a YAML document into JSON values; an empty document is an empty mapping and anything
/// but a mapping is an error.
pub fn parse_yaml(text: &str, path: &Path) -> Result<Value, ConfigError> {
    let value: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_norway::from_str(text)
            .map_err(|e| ConfigError(format!("{}: invalid YAML: {e}", path.display())))?
    };
    match value {
        Value::Null => Ok(Value::Object(Default::default())),
        Value::Object(_) => Ok(value),
        _ => Err(ConfigError(format!(
            "{}: the configuration must be a YAML mapping",
            path.display()
        ))),
    }
}

/// Converts the values pydantic (the original's validation, lax mode) converts, by the type of the
/// setting's default: a numeric string (`"300"`, `" 1.5 "`) or a float without a fraction
/// (`100.0`) for an integer, a numeric string for a float, `"true"`/`"yes"`/`"on"`/`"1"` and
/// their opposites (any case) or 0/1 for a boolean. Anything else is left for the type check,
/// which names the key. Settings whose default is null (optional ones) are not converted.
pub fn coerce_like_pydantic(defaults: &Value, given: &mut Value) {
    match (defaults, given) {
        (Value::Object(known), Value::Object(given)) => {
            for (key, value) in given.iter_mut() {
                if let Some(default) = known.get(key) {
                    coerce_like_pydantic(default, value);
                }
            }
        }
        (Value::Array(known), Value::Array(given)) => {
            if let Some(first) = known.first() {
                for value in given.iter_mut() {
                    coerce_like_pydantic(first, value);
                }
            }
        }
        (Value::Number(default), given) => {
            let integer = default.is_i64() || default.is_u64();
            let converted = match &*given {
                Value::String(text) => {
                    let text = text.trim();
                    if integer {
                        text.parse::<i64>().ok().map(Value::from)
                    } else {
                        text.parse::<f64>()
                            .ok()
                            .filter(|f| f.is_finite())
                            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                    }
                }
                Value::Number(number) if integer && number.is_f64() => number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| Value::from(f as i64)),
                Value::Bool(flag) if integer => Some(Value::from(i64::from(*flag))),
                _ => None,
            };
            if let Some(value) = converted {
                *given = value;
            }
        }
        (Value::Bool(_), given) => {
            let converted = match &*given {
                Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" | "t" | "y" => Some(true),
                    "false" | "no" | "off" | "0" | "f" | "n" => Some(false),
                    _ => None,
                },
                Value::Number(number) => match number.as_i64() {
                    Some(1) => Some(true),
                    Some(0) => Some(false),
                    _ => None,
                },
                _ => None,
            };
            if let Some(flag) = converted {
                *given = Value::Bool(flag);
            }
        }
        _ => {}
    }
}

/// Collects the dotted paths of `given` that do not exist in `defaults`. Maps that are empty or
/// null by default take free-form keys (e.g. per-relay overrides) and are not descended into.
fn unknown_paths(defaults: &Value, given: &Value, prefix: &str, out: &mut Vec<String>) {
    let (Value::Object(known), Value::Object(given)) = (defaults, given) else {
        return;
    };
    for (key, value) in given {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match known.get(key) {
            None => out.push(path),
            Some(Value::Object(inner)) if !inner.is_empty() => {
                unknown_paths(&Value::Object(inner.clone()), value, &path, out);
            }
            Some(_) => {}
        }
    }
}

/// `pool:` in a service file: overrides merged into `brotr.yaml`'s pool settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolOverrides {
    /// → `pool.database.user`.
    pub user: Option<String>,
    /// → `pool.database.password_env`.
    pub password_env: Option<String>,
    /// → `pool.limits.min_size`.
    pub min_size: Option<u32>,
    /// → `pool.limits.max_size`.
    pub max_size: Option<u32>,
    /// → `pool.limits.statement_cache_size` (not in the original: its pool never caches).
    pub statement_cache_size: Option<usize>,
    /// → `pool.server_settings.application_name` (default: the service name).
    pub application_name: Option<String>,
}

impl PoolOverrides {
    /// Applies the overrides to the database configuration of `service`.
    pub fn apply(&self, brotr: &mut bigbrotr_db::config::BrotrConfig, service: &str) {
        let pool = &mut brotr.pool;
        if let Some(user) = &self.user {
            pool.database.user = user.clone();
        }
        if let Some(password_env) = &self.password_env {
            pool.database.password_env = password_env.clone();
        }
        if let Some(min_size) = self.min_size {
            pool.limits.min_size = min_size;
        }
        if let Some(max_size) = self.max_size {
            pool.limits.max_size = max_size;
        }
        if let Some(size) = self.statement_cache_size {
            pool.limits.statement_cache_size = size;
        }
        pool.server_settings.application_name = self
            .application_name
            .clone()
            .unwrap_or_else(|| service.to_owned());
    }
}

/// The keys every service file has (BaseServiceConfig of the original).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaseServiceConfig {
    /// Seconds between cycle starts (60–604800).
    pub interval: f64,
    /// Consecutive failed cycles before the daemon gives up and exits non-zero (0–100; 0 =
    /// never).
    pub max_consecutive_failures: u32,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Pool overrides for this service.
    pub pool: PoolOverrides,
    /// Log format when `--log-format` is not given.
    pub log_format: Option<LogFormat>,
}

impl BaseServiceConfig {
    /// The defaults with another interval (api and dvm use 60 s, the refresher a day).
    pub fn with_interval(interval: f64) -> Self {
        Self {
            interval,
            ..Self::default()
        }
    }
}

impl Default for BaseServiceConfig {
    fn default() -> Self {
        Self {
            interval: 300.0,
            max_consecutive_failures: 5,
            metrics: MetricsConfig::default(),
            pool: PoolOverrides::default(),
            log_format: None,
        }
    }
}

impl BaseServiceConfig {
    /// Checks every key, with `interval` in `min..=max` (no upper bound when `max` is `None`:
    /// the refresher's interval is only bounded below). [`Validate::validate`] is this with the
    /// original's 60..=604800.
    pub fn validate_with_interval(&self, min: f64, max: Option<f64>) -> Result<(), ConfigError> {
        let in_range = self.interval.is_finite()
            && self.interval >= min
            && max.is_none_or(|max| self.interval <= max);
        if !in_range {
            let range = match max {
                Some(max) => format!("{min}..={max}"),
                None => format!("at least {min}"),
            };
            return Err(ConfigError(format!(
                "interval = {} is out of range ({range})",
                self.interval
            )));
        }
        if self.max_consecutive_failures > 100 {
            return Err(ConfigError(format!(
                "max_consecutive_failures = {} is out of range (0..=100)",
                self.max_consecutive_failures
            )));
        }
        self.metrics.validate()?;
        if let (Some(min), Some(max)) = (self.pool.min_size, self.pool.max_size)
            && max < min
        {
            return Err(ConfigError(format!(
                "pool.max_size ({max}) must be >= pool.min_size ({min})"
            )));
        }
        Ok(())
    }
}

impl Validate for BaseServiceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with_interval(60.0, Some(604_800.0))
    }
}

impl Validate for bigbrotr_db::config::BrotrConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        bigbrotr_db::config::BrotrConfig::validate(self).map_err(|e| ConfigError(e.to_string()))
    }
}

#[cfg(test)]
mod tests;

/// `keys:` — where a service finds its Nostr secret key (KeysConfig of the original).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeysConfig {
    /// Environment variable holding the key (64 hex characters or `nsec1…`).
    pub keys_env: String,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            keys_env: "NOSTR_PRIVATE_KEY".to_owned(),
        }
    }
}

impl KeysConfig {
    /// The keys when the variable is set (an unparsable key is an error); `None` when unset.
    pub fn load_optional(&self) -> anyhow::Result<Option<nostr::Keys>> {
        match crate::secrets::from_env(&self.keys_env) {
            Some(secret) => crate::secrets::parse_keys(&secret).map(Some),
            None => Ok(None),
        }
    }
}
