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
