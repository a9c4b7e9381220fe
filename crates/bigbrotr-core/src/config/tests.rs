//! Tests of configuration layering, validation messages and unknown-key reporting.

use std::path::Path;

use bigbrotr_db::config::BrotrConfig;
use serde_json::json;

use super::*;

fn yaml(text: &str) -> Value {
    parse_yaml(text, Path::new("test.yaml")).unwrap()
}

#[test]
fn an_empty_document_is_an_empty_mapping() {
    assert_eq!(yaml(""), json!({}));
    assert_eq!(yaml("# only a comment\n"), json!({}));
}

#[test]
fn a_document_that_is_not_a_mapping_is_rejected() {
    let err = parse_yaml("- a\n- b\n", Path::new("x.yaml")).unwrap_err();
    assert!(err.0.contains("must be a YAML mapping"), "{err}");
    let err = parse_yaml("a: [unclosed", Path::new("x.yaml")).unwrap_err();
    assert!(err.0.contains("invalid YAML"), "{err}");
}

#[test]
fn yaml_overrides_defaults_and_keeps_the_rest() {
    let loaded: Loaded<BrotrConfig> = load_value(
        yaml("pool:\n  database:\n    host: pgbouncer\n    database: lilbrotr\nbatch:\n  max_size: 500\n"),
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        "brotr.yaml",
    )
    .unwrap();
    assert_eq!(loaded.config.pool.database.host, "pgbouncer");
    assert_eq!(loaded.config.pool.database.database, "lilbrotr");
    assert_eq!(loaded.config.pool.database.port, 5432);
    assert_eq!(loaded.config.batch.max_size, 500);
    assert!(loaded.unknown_keys.is_empty());
}

#[test]
fn yaml_null_clears_an_optional_timeout() {
    let loaded: Loaded<BrotrConfig> = load_value(
        yaml("timeouts:\n  query: null\n"),
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        "brotr.yaml",
    )
    .unwrap();
    assert_eq!(loaded.config.timeouts.query, None);
    assert_eq!(loaded.config.timeouts.batch, Some(120.0));
}

#[test]
fn wrong_types_and_ranges_name_the_key() {
    let err = load_value::<BrotrConfig>(
        yaml("batch:\n  max_size: lots\n"),
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        "brotr.yaml",
    )
    .unwrap_err();
    assert!(err.0.contains("batch.max_size"), "{err}");
    let err = load_value::<BrotrConfig>(
        yaml("pool:\n  limits:\n    max_size: 500\n"),
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        "brotr.yaml",
    )
    .unwrap_err();
    assert!(err.0.contains("pool.limits.max_size"), "{err}");
    let err = load_value::<BaseServiceConfig>(
        yaml("interval: 5\n"),
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        "seeder.yaml",
    )
    .unwrap_err();
    assert!(err.0.contains("interval"), "{err}");
}

#[test]
fn unknown_keys_are_reported_with_their_path() {
    let loaded: Loaded<BrotrConfig> = load_value(
        yaml("pool:\n  database:\n    hots: x\nbogus: 1\n"),
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        "brotr.yaml",
    )
    .unwrap();
    assert_eq!(loaded.unknown_keys, vec!["bogus", "pool.database.hots"]);
}

#[test]
// figment's Jail closure signature fixes the error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
fn environment_variables_override_yaml() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("BIGBROTR_JAIL__POOL__DATABASE__HOST", "db.internal");
        jail.set_env("BIGBROTR_JAIL__BATCH__MAX_SIZE", "250");
        let loaded: Loaded<BrotrConfig> = load_value(
            yaml("pool:\n  database:\n    host: pgbouncer\n"),
            true,
            "BIGBROTR_JAIL__",
            "brotr.yaml",
        )
        .map_err(|e| e.0)?;
        assert_eq!(loaded.config.pool.database.host, "db.internal");
        assert_eq!(loaded.config.batch.max_size, 250);
        Ok(())
    });
}

#[test]
fn a_missing_file_means_defaults() {
    let loaded: Loaded<BaseServiceConfig> = load(
        Path::new("/nonexistent/bigbrotr/seeder.yaml"),
        "BIGBROTR_TEST_UNUSED_PREFIX__",
    )
    .unwrap();
    assert!(!loaded.file_found);
    assert_eq!(loaded.config, BaseServiceConfig::default());
}

#[test]
fn pool_overrides_reach_the_database_config() {
    let overrides = PoolOverrides {
        user: Some("writer".into()),
        password_env: Some("DB_WRITER_PASSWORD".into()),
        min_size: Some(1),
        max_size: Some(2),
        statement_cache_size: None,
        application_name: None,
    };
    let mut brotr = BrotrConfig::default();
    overrides.apply(&mut brotr, "seeder");
    assert_eq!(brotr.pool.database.user, "writer");
    assert_eq!(brotr.pool.database.password_env, "DB_WRITER_PASSWORD");
    assert_eq!(brotr.pool.limits.max_size, 2);
    assert_eq!(brotr.pool.server_settings.application_name, "seeder");
}

#[test]
fn base_defaults_are_the_originals() {
    let base = BaseServiceConfig::default();
    assert_eq!(base.interval, 300.0);
    assert_eq!(base.max_consecutive_failures, 5);
    assert!(!base.metrics.enabled);
    assert_eq!(base.metrics.port, 8000);
    assert_eq!(base.metrics.host, "127.0.0.1");
    assert_eq!(base.metrics.path, "/metrics");
    assert_eq!(BaseServiceConfig::with_interval(60.0).interval, 60.0);
}

#[test]
fn values_pydantic_converts_are_converted() {
    let loaded = load_value::<BaseServiceConfig>(
        yaml(
            "interval: \"300\"\nmax_consecutive_failures: 7.0\nmetrics:\n  enabled: \"yes\"\n  port: \" 9001 \"\n",
        ),
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        "seeder.yaml",
    )
    .unwrap();
    let c = loaded.config;
    assert_eq!(c.interval, 300.0);
    assert_eq!(c.max_consecutive_failures, 7);
    assert!(c.metrics.enabled);
    assert_eq!(c.metrics.port, 9001);
    for (text, flag) in [("True", true), ("off", false), ("0", false), ("on", true)] {
        let loaded = load_value::<BaseServiceConfig>(
            yaml(&format!("metrics:\n  enabled: \"{text}\"\n")),
            true,
            "BIGBROTR_TEST_UNUSED_PREFIX__",
            "seeder.yaml",
        )
        .unwrap();
        assert_eq!(loaded.config.metrics.enabled, flag, "{text}");
    }
    // What pydantic refuses is still refused, naming the key.
    for bad in [
        "max_consecutive_failures: 7.5\n",
        "max_consecutive_failures: \"seven\"\n",
        "metrics:\n  enabled: \"maybe\"\n",
        "interval: \"1e999\"\n",
    ] {
        let err = load_value::<BaseServiceConfig>(
            yaml(bad),
            true,
            "BIGBROTR_TEST_UNUSED_PREFIX__",
            "seeder.yaml",
        )
        .unwrap_err();
        let key = bad.split(':').next().unwrap();
        assert!(err.0.contains(key), "{bad}: {err}");
    }
}

/// A configuration with a free-form map of typed entries and a list of typed entries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Shaped {
    entries: std::collections::BTreeMap<String, Entry>,
    list: Vec<Entry>,
    limit: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Entry {
    enabled: bool,
    price: u64,
}

impl Validate for Shaped {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    fn shapes() -> Vec<(&'static str, Value)> {
        vec![
            ("entries.*", serde_json::to_value(Entry::default()).unwrap()),
            ("list.*", serde_json::to_value(Entry::default()).unwrap()),
            ("limit", json!(0)),
        ]
    }
}

#[test]
fn entries_of_shaped_maps_and_lists_are_checked_and_converted() {
    let loaded: Loaded<Shaped> = load_value(
        yaml(
            "entries:\n  a: {enabled: \"yes\", price: \"1000\", enabeld: true}\n  b: {price: 5.0}\n\
             list:\n  - {enabled: \"on\", colour: red}\nlimit: \"7\"\n",
        ),
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        "shaped.yaml",
    )
    .unwrap();
    assert_eq!(
        loaded.unknown_keys,
        vec!["entries.a.enabeld", "list[0].colour"]
    );
    let c = loaded.config;
    assert_eq!(
        c.entries["a"],
        Entry {
            enabled: true,
            price: 1000
        }
    );
    assert_eq!(c.entries["b"].price, 5);
    assert!(c.list[0].enabled);
    assert_eq!(
        c.limit,
        Some(7),
        "an optional setting is converted by its shape"
    );
    // What the shape's type refuses is refused, naming the entry's key.
    let error = load_value::<Shaped>(
        yaml("entries:\n  a: {price: 1.5}\n"),
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        "shaped.yaml",
    )
    .unwrap_err();
    assert!(error.0.contains("entries.a.price"), "{error}");
}

/// A list whose default holds an entry: the entry is the shape of the given ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Listed {
    sources: Vec<Entry>,
}

impl Default for Listed {
    fn default() -> Self {
        Self {
            sources: vec![Entry::default()],
        }
    }
}

impl Validate for Listed {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

#[test]
fn entries_of_a_list_with_a_default_entry_are_checked() {
    let loaded: Loaded<Listed> = load_value(
        yaml("sources:\n  - {enabled: true, pirce: 3}\n  - {price: \"7\"}\n"),
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        "listed.yaml",
    )
    .unwrap();
    assert_eq!(loaded.unknown_keys, vec!["sources[0].pirce"]);
    assert_eq!(loaded.config.sources[1].price, 7);
}

/// A service file: the base keys flattened in, as every daemon's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Flattened {
    #[serde(flatten)]
    base: BaseServiceConfig,
    own: Entry,
}

impl Validate for Flattened {
    fn validate(&self) -> Result<(), ConfigError> {
        self.base.validate()
    }
}

#[test]
fn a_wrong_type_in_a_flattened_section_names_its_key() {
    for (text, key) in [
        ("interval: abc\n", "key `interval`"),
        (
            "max_consecutive_failures: 7.5\n",
            "key `max_consecutive_failures`",
        ),
        ("metrics:\n  port: lots\n", "key `metrics.port`"),
        ("own:\n  price: lots\n", "key `own.price`"),
    ] {
        let error = load_value::<Flattened>(
            yaml(text),
            true,
            "BIGBROTR_TEST_UNUSED_PREFIX__",
            "service.yaml",
        )
        .unwrap_err();
        assert!(error.0.contains(key), "{text}: {error}");
    }
}
