//! Every configuration file shipped under deployments/ loads with the daemons' own loader: valid
//! values, no unknown keys (a typo there would silently fall back to a default).

use std::path::{Path, PathBuf};

use bigbrotr_core::config::{self, Loaded};
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_finder::FinderConfig;
use bigbrotr_seeder::SeederConfig;
use bigbrotr_validator::ValidatorConfig;

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
    }
}
