//! Drop-in configuration: what 6.6.9 accepts loads here with the same meaning (a literal
//! `pool.database.password`, values pydantic converts, host names for `metrics.host`), what it
//! refuses is refused here (an unset `password_env` variable), and keys of one file that would
//! make every cycle fail against `brotr.yaml` (a chunk larger than `batch.max_size`, more
//! concurrent work than pooled connections) stop the daemon at start, naming both keys.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bigbrotr_api::ApiConfig;
use bigbrotr_core::cli::Cli;
use bigbrotr_core::config::{self, Loaded};
use bigbrotr_core::runner::Daemon;
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_dvm::{Dvm, DvmConfig};
use bigbrotr_refresher::{Refresher, RefresherConfig};
use bigbrotr_testkit::TestDb;
use bigbrotr_validator::{Validator, ValidatorConfig};
use clap::Parser;
use serde_json::json;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("bigbrotr-dropin-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn brotr(yaml: &str) -> BrotrConfig {
    let value = config::parse_yaml(yaml, Path::new("brotr.yaml")).unwrap();
    let loaded: Loaded<BrotrConfig> =
        config::load_value(value, true, "BIGBROTR_TEST_UNUSED__", "brotr.yaml").unwrap();
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    loaded.config
}

fn service<T>(yaml: &str) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned + Default + config::Validate,
{
    let value = config::parse_yaml(yaml, Path::new("service.yaml")).unwrap();
    let loaded: Loaded<T> =
        config::load_value(value, true, "BIGBROTR_TEST_UNUSED__", "service.yaml").unwrap();
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    loaded.config
}

#[test]
fn the_originals_literal_password_is_used() {
    let config = brotr("pool:\n  database:\n    host: db\n    password: hunter2\n");
    assert_eq!(
        config.pool.database.resolve_password().unwrap().as_deref(),
        Some("hunter2")
    );
    assert!(!format!("{config:?}").contains("hunter2"), "never printed");
}

#[test]
fn values_the_original_converts_load_with_the_same_meaning() {
    let c: ValidatorConfig = service(
        "interval: \"300\"\nmax_consecutive_failures: 3.0\nprocessing:\n  chunk_size: \"50\"\n  \
         allow_insecure: \"yes\"\nmetrics:\n  enabled: \"true\"\n  host: localhost\n",
    );
    assert_eq!(c.base.interval, 300.0);
    assert_eq!(c.base.max_consecutive_failures, 3);
    assert_eq!(c.processing.chunk_size, 50);
    assert!(c.processing.allow_insecure);
    assert!(c.base.metrics.enabled);
    assert_eq!(c.base.metrics.host, "localhost");
    let b = brotr("batch:\n  max_size: \"500\"\npool:\n  limits:\n    max_size: 10.0\n");
    assert_eq!((b.batch.max_size, b.pool.limits.max_size), (500, 10));
}

#[test]
fn keys_that_would_fail_every_cycle_are_refused_naming_both() {
    let small_batch = brotr("batch:\n  max_size: 100\n");
    let validator: ValidatorConfig = service("processing:\n  chunk_size: 200\n");
    let error = Validator::check_with_brotr(&validator, &small_batch)
        .unwrap_err()
        .0;
    assert!(
        error.contains("processing.chunk_size") && error.contains("batch.max_size"),
        "{error}"
    );
    Validator::check_with_brotr(&service("processing:\n  chunk_size: 100\n"), &small_batch)
        .unwrap();

    let two = brotr("pool:\n  limits:\n    max_size: 2\n");
    let refresher: RefresherConfig = service("refresh:\n  concurrency: 3\n");
    let error = Refresher::check_with_brotr(&refresher, &two).unwrap_err().0;
    assert!(
        error.contains("refresh.concurrency") && error.contains("pool.max_size"),
        "{error}"
    );
    let dvm: DvmConfig = service("limits:\n  workers: 3\n");
    let error = Dvm::check_with_brotr(&dvm, &two).unwrap_err().0;
    assert!(
        error.contains("limits.workers") && error.contains("pool.max_size"),
        "{error}"
    );
    let api: ApiConfig = service("max_concurrent_queries: 3\n");
    let error = bigbrotr_api::Api::check_with_brotr(&api, &two)
        .unwrap_err()
        .0;
    assert!(error.contains("max_concurrent_queries"), "{error}");
    bigbrotr_api::Api::check_with_brotr(&ApiConfig::default(), &two).unwrap();
}

async fn run_once<D: Daemon>(service: &Path, brotr: &Path) -> ExitCode {
    let cli = Cli::parse_from([
        "bigbrotr",
        "--once",
        "--config",
        service.to_str().unwrap(),
        "--brotr-config",
        brotr.to_str().unwrap(),
    ]);
    bigbrotr_core::bootstrap::run_with_cli::<D>(cli).await
}

#[tokio::test]
async fn the_entry_point_refuses_before_connecting() {
    let db = TestDb::new().await;
    let dir = Dir::new("entry");
    // The mismatch stops the daemon at start (exit 1), before any cycle.
    let mut small = db.config();
    small.batch.max_size = 100;
    let brotr_path = dir.write("brotr.yaml", &serde_json::to_string(&small).unwrap());
    let service_path = dir.write(
        "validator.yaml",
        &json!({"processing": {"chunk_size": 200}}).to_string(),
    );
    assert_eq!(
        run_once::<Validator>(&service_path, &brotr_path).await,
        ExitCode::from(1)
    );
    // An unset password variable is an error, as in the original (not a password-less login).
    let mut unset = db.config();
    unset.pool.database.password_env = "BIGBROTR_TEST_NEVER_SET_PASSWORD".into();
    let brotr_path = dir.write("brotr-unset.yaml", &serde_json::to_string(&unset).unwrap());
    let service_path = dir.write("validator-ok.yaml", "{}");
    assert_eq!(
        run_once::<Validator>(&service_path, &brotr_path).await,
        ExitCode::from(1)
    );
    // The same with the variable's name cleared: password-less (trust) login, one cycle.
    let brotr_path = dir.write(
        "brotr-trust.yaml",
        &serde_json::to_string(&db.config()).unwrap(),
    );
    let service_path = dir.write(
        "validator-quiet.yaml",
        &json!({"networks": {"clearnet": {"enabled": false}}}).to_string(),
    );
    assert_eq!(
        run_once::<Validator>(&service_path, &brotr_path).await,
        ExitCode::SUCCESS
    );
}
