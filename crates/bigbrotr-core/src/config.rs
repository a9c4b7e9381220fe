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
/// The JSON value [`Validate::shapes`] gives its examples in.
pub use serde_json::Value;

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

    /// The types the defaults do not show, as `(dotted path, an example value)`: `"a.b"` for
    /// an optional setting whose default is null (`processing.max_candidates`: an integer),
    /// `"a.b.*"` for every entry of a free-form map or list (`tables.*`: one table's settings;
    /// `overrides.*`: one relay's). Values there are converted by the example's types like any
    /// setting's (see [`coerce_like_pydantic`]), and keys an entry's example lacks are reported
    /// like any unknown key. A list whose default holds an entry needs none: its first entry is
    /// the example. [`base_shapes`] (the `pool:` overrides) apply to every file.
    fn shapes() -> Vec<(&'static str, Value)>
    where
        Self: Sized,
    {
        Vec::new()
    }
}

/// The optional settings every service file has ([`BaseServiceConfig`]'s `pool:` overrides),
/// in the form of [`Validate::shapes`].
pub fn base_shapes() -> Vec<(&'static str, Value)> {
    vec![
        ("pool.min_size", Value::from(1)),
        ("pool.max_size", Value::from(1)),
        ("pool.statement_cache_size", Value::from(0)),
    ]
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
    let mut shapes = T::shapes();
    shapes.extend(base_shapes());
    let mut unknown_keys = Vec::new();
    unknown_paths(&defaults, &yaml, "", &shapes, &mut unknown_keys);
    let mut yaml = yaml;
    coerce(&defaults, &mut yaml, "", &shapes);
    let config: T = Figment::from(Serialized::defaults(T::default()))
        .merge(Serialized::defaults(&yaml))
        .merge(Env::prefixed(env_prefix).split("__"))
        .extract()
        .map_err(|e| {
            let messages: Vec<String> = e
                .into_iter()
                .map(|error| {
                    let mut key = error.path.join(".");
                    if key.is_empty() {
                        // Settings of a flattened section (`interval`, `metrics.port`) come
                        // back without their path: find the key by trying them one by one.
                        key = failing_key::<T>(&yaml).unwrap_or_default();
                    }
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

/// The dotted path of the first setting of `yaml` that `T` cannot take on its own (the deepest
/// such key), found by extracting the defaults with one branch of `yaml` at a time.
fn failing_key<T>(yaml: &Value) -> Option<String>
where
    T: Serialize + DeserializeOwned + Default,
{
    fn branch(path: &[&str], leaf: &Value) -> Value {
        path.iter().rev().fold(leaf.clone(), |inner, key| {
            Value::Object(serde_json::Map::from_iter([((*key).to_owned(), inner)]))
        })
    }
    let fails = |doc: &Value| {
        Figment::from(Serialized::defaults(T::default()))
            .merge(Serialized::defaults(doc))
            .extract::<T>()
            .is_err()
    };
    let mut path: Vec<&str> = Vec::new();
    let mut node = yaml;
    while let Value::Object(map) = node {
        let Some((key, value)) = map.iter().find(|(key, value)| {
            let mut at = path.clone();
            at.push(key.as_str());
            fails(&branch(&at, value))
        }) else {
            break;
        };
        path.push(key.as_str());
        node = value;
    }
    (!path.is_empty()).then(|| path.join("."))
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
/// setting's default: for an integer, a float without a fraction (`100.0`), a boolean, or text
/// pydantic reads as one (`"300"`, `" 300 "`, `"+300"`, `"300.0"`, `"1_000"`); for a number,
/// text in float syntax (`"1.5"`, `"1e3"`, `"1_000.5"`) or a boolean; for a boolean, `0`/`1`,
/// `0.0`/`1.0` or the words `"true"`/`"yes"`/`"on"`/`"t"`/`"y"`/`"1"` and their opposites (any
/// case, no spaces). Anything else is left for the type check, which names the key. Settings
/// whose default is null take their type from [`Validate::shapes`] (else they are not
/// converted).
pub fn coerce_like_pydantic(defaults: &Value, given: &mut Value) {
    coerce(defaults, given, "", &[]);
}

/// The example value [`Validate::shapes`] gives for `path`, if any.
fn shape_at<'a>(shapes: &'a [(&'static str, Value)], path: &str) -> Option<&'a Value> {
    shapes
        .iter()
        .find(|(at, _)| *at == path)
        .map(|(_, shape)| shape)
}

/// The example value of every entry of the map or list at `path`, if any.
fn entry_shape<'a>(shapes: &'a [(&'static str, Value)], path: &str) -> Option<&'a Value> {
    shapes
        .iter()
        .find(|(at, _)| at.strip_suffix(".*") == Some(path))
        .map(|(_, shape)| shape)
}

/// The dotted path of `key` under `prefix`.
fn child(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// [`coerce_like_pydantic`] of the setting at `path`, whose default is `defaults`, with the
/// types `shapes` gives.
fn coerce(defaults: &Value, given: &mut Value, path: &str, shapes: &[(&'static str, Value)]) {
    if let Some(shape) = entry_shape(shapes, path) {
        match given {
            Value::Object(entries) => {
                for (key, entry) in entries.iter_mut() {
                    coerce(shape, entry, &child(path, key), shapes);
                }
            }
            Value::Array(entries) => {
                for (index, entry) in entries.iter_mut().enumerate() {
                    coerce(shape, entry, &format!("{path}[{index}]"), shapes);
                }
            }
            _ => {}
        }
        return;
    }
    let defaults = match (defaults, shape_at(shapes, path)) {
        (Value::Null, Some(shape)) => shape,
        _ => defaults,
    };
    match (defaults, given) {
        (Value::Object(known), Value::Object(given)) => {
            for (key, value) in given.iter_mut() {
                if let Some(default) = known.get(key) {
                    coerce(default, value, &child(path, key), shapes);
                }
            }
        }
        (Value::Array(known), Value::Array(given)) => {
            if let Some(first) = known.first() {
                for (index, value) in given.iter_mut().enumerate() {
                    coerce(first, value, &format!("{path}[{index}]"), shapes);
                }
            }
        }
        (Value::Number(default), given) => {
            let integer = default.is_i64() || default.is_u64();
            let converted = match &*given {
                Value::String(text) if integer => int_from_str(text).map(Value::from),
                Value::String(text) => float_from_str(text)
                    .filter(|f| f.is_finite())
                    .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number)),
                Value::Number(number) if integer && number.is_f64() => number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| Value::from(f as i64)),
                Value::Bool(flag) if integer => Some(Value::from(i64::from(*flag))),
                Value::Bool(flag) => Some(Value::from(if *flag { 1.0 } else { 0.0 })),
                _ => None,
            };
            if let Some(value) = converted {
                *given = value;
            }
        }
        (Value::Bool(_), given) => {
            let converted = match &*given {
                Value::String(text) => bool_from_str(text),
                Value::Number(number) => match number.as_f64() {
                    Some(1.0) => Some(true),
                    Some(0.0) => Some(false),
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

/// An integer read from text as pydantic reads one: surrounding whitespace, one leading `+` or
/// `-`, leading zeros, single `_` between digits and an all-zero fraction (`"300.0"`) are
/// accepted; anything else (`"300.5"`, `"1e3"`, `"300."`, `"_300"`, `"3__00"`) is not.
fn int_from_str(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let whole = match digits.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') => {
            whole
        }
        Some(_) => return None,
        None => digits,
    };
    let well_formed = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && !whole.starts_with('_')
        && !whole.ends_with('_')
        && !whole.contains("__");
    if !well_formed {
        return None;
    }
    let magnitude: i128 = whole.replace('_', "").parse().ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// A number read from text as pydantic reads one: Rust's (and Python's) float syntax after
/// trimming whitespace, or with single `_` between digits.
fn float_from_str(text: &str) -> Option<f64> {
    if let Ok(value) = text.trim().parse() {
        return Some(value);
    }
    let underscores = text.contains('_')
        && !text.starts_with('_')
        && !text.ends_with('_')
        && !text.contains("__");
    underscores
        .then(|| text.replace('_', "").parse().ok())
        .flatten()
}

/// A boolean read from text as pydantic reads one: `0`, `1` and, in any case, `f`, `n`, `no`,
/// `off`, `false`, `t`, `y`, `on`, `yes`, `true`; no surrounding whitespace.
fn bool_from_str(text: &str) -> Option<bool> {
    let is = |word: &str| text.eq_ignore_ascii_case(word);
    if text == "0" || ["f", "n", "no", "off", "false"].into_iter().any(is) {
        Some(false)
    } else if text == "1" || ["t", "y", "on", "yes", "true"].into_iter().any(is) {
        Some(true)
    } else {
        None
    }
}

/// Collects the dotted paths of `given` that do not exist in `defaults`. Maps that are empty or
/// null by default take free-form keys and are not descended into, unless `shapes` gives their
/// entries' shape (per-relay overrides, tables); the entries of a list are checked against the
/// list's first default entry (or its shape).
fn unknown_paths(
    defaults: &Value,
    given: &Value,
    prefix: &str,
    shapes: &[(&'static str, Value)],
    out: &mut Vec<String>,
) {
    let (Value::Object(known), Value::Object(given)) = (defaults, given) else {
        return;
    };
    for (key, value) in given {
        let path = child(prefix, key);
        match known.get(key) {
            None => out.push(path),
            Some(default) => unknown_entries(default, value, &path, shapes, out),
        }
    }
}

/// [`unknown_paths`] of the setting at `path` (a known key).
fn unknown_entries(
    default: &Value,
    given: &Value,
    path: &str,
    shapes: &[(&'static str, Value)],
    out: &mut Vec<String>,
) {
    if let Some(shape) = entry_shape(shapes, path) {
        match given {
            Value::Object(entries) => {
                for (key, entry) in entries {
                    unknown_paths(shape, entry, &child(path, key), shapes, out);
                }
            }
            Value::Array(entries) => {
                for (index, entry) in entries.iter().enumerate() {
                    unknown_paths(shape, entry, &format!("{path}[{index}]"), shapes, out);
                }
            }
            _ => {}
        }
        return;
    }
    let default = match (default, shape_at(shapes, path)) {
        (Value::Null, Some(shape)) => shape,
        _ => default,
    };
    match (default, given) {
        (Value::Object(inner), _) if !inner.is_empty() => {
            unknown_paths(default, given, path, shapes, out);
        }
        (Value::Array(known), Value::Array(entries)) => {
            if let Some(first @ Value::Object(inner)) = known.first()
                && !inner.is_empty()
            {
                for (index, entry) in entries.iter().enumerate() {
                    unknown_paths(first, entry, &format!("{path}[{index}]"), shapes, out);
                }
            }
        }
        _ => {}
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

    fn shapes() -> Vec<(&'static str, Value)> {
        [
            "timeouts.query",
            "timeouts.batch",
            "timeouts.cleanup",
            "timeouts.refresh",
        ]
        .into_iter()
        .map(|path| (path, Value::from(1.0)))
        .collect()
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
