//! Every configuration file shipped under deployments/ loads with the daemons' own loader: valid
//! values, no unknown keys (a typo there would silently fall back to a default).

use std::path::{Path, PathBuf};

use bigbrotr_core::config::{self, Loaded};
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_finder::FinderConfig;
use bigbrotr_seeder::SeederConfig;
use bigbrotr_synchronizer::SynchronizerConfig;
use bigbrotr_validator::ValidatorConfig;

use crate::fixtures::relay;

fn deployments() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deployments")
}

fn config_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(deployments())
        .unwrap()
        .map(|entry| entry.unwrap().path().join("config"))
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn check<T>(loaded: &Loaded<T>, path: &Path) {
    assert!(loaded.file_found, "{}", path.display());
    assert!(
        loaded.unknown_keys.is_empty(),
        "{}: unknown keys {:?}",
        path.display(),
        loaded.unknown_keys
    );
}

/// The commented `overrides:` example at the end of `path` (a synchronizer file), uncommented,
/// loads without unknown keys and applies to its relay only.
fn check_overrides_example(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let start = text
        .find("# overrides:")
        .unwrap_or_else(|| panic!("{}: no overrides example", path.display()));
    let example: Vec<&str> = text[start..]
        .lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| line.strip_prefix("# ").unwrap_or(line))
        .collect();
    let yaml = config::parse_yaml(&example.join("\n"), path).unwrap();
    let loaded: Loaded<SynchronizerConfig> = config::load_value(
        yaml,
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        &path.display().to_string(),
    )
    .unwrap();
    assert!(
        loaded.unknown_keys.is_empty(),
        "{}: unknown keys {:?}",
        path.display(),
        loaded.unknown_keys
    );
    assert_eq!(loaded.config.overrides.len(), 1, "{}", path.display());
    let special = loaded
        .config
        .settings_for(&relay("wss://relay.example.com", 0))
        .unwrap();
    assert_eq!(special.limit, 100);
    assert_eq!(special.filters.len(), 1);
    assert!(special.filters[0].kinds.is_some());
    let other = loaded
        .config
        .settings_for(&relay("wss://other.example.com", 0))
        .unwrap();
    assert_eq!(other.limit, 500);
    assert!(other.filters[0].kinds.is_none());
}

#[test]
fn every_deployment_config_loads_without_unknown_keys() {
    let dirs = config_dirs();
    assert!(dirs.len() >= 2, "bigbrotr and lilbrotr: {dirs:?}");
    for dir in dirs {
        let brotr = dir.join("brotr.yaml");
        let loaded: Loaded<BrotrConfig> =
            config::load(&brotr, "BIGBROTR_TEST_UNUSED_PREFIX__").unwrap();
        check(&loaded, &brotr);
        let seeder = dir.join("services/seeder.yaml");
        let loaded: Loaded<SeederConfig> =
            config::load(&seeder, "BIGBROTR_TEST_UNUSED_PREFIX__").unwrap();
        check(&loaded, &seeder);
        assert_eq!(loaded.config.base.pool.user.as_deref(), Some("writer"));
        let finder = dir.join("services/finder.yaml");
        let loaded: Loaded<FinderConfig> =
            config::load(&finder, "BIGBROTR_TEST_UNUSED_PREFIX__").unwrap();
        check(&loaded, &finder);
        assert!(loaded.config.base.metrics.enabled);
        assert!(loaded.config.networks.tor.enabled);
        let validator = dir.join("services/validator.yaml");
        let loaded: Loaded<ValidatorConfig> =
            config::load(&validator, "BIGBROTR_TEST_UNUSED_PREFIX__").unwrap();
        check(&loaded, &validator);
        assert!(loaded.config.networks.tor.enabled);
        assert_eq!(loaded.config.base.pool.user.as_deref(), Some("writer"));
        let synchronizer = dir.join("services/synchronizer.yaml");
        let loaded: Loaded<SynchronizerConfig> =
            config::load(&synchronizer, "BIGBROTR_TEST_UNUSED_PREFIX__").unwrap();
        check(&loaded, &synchronizer);
        assert!(loaded.config.base.metrics.enabled);
        assert!(loaded.config.networks.tor.enabled);
        assert_eq!(loaded.config.base.pool.user.as_deref(), Some("writer"));
        assert_eq!(loaded.config.keys.keys_env, "NOSTR_PRIVATE_KEY");
        assert!(loaded.config.overrides.is_empty());
        check_overrides_example(&synchronizer);
    }
}
