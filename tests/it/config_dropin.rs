//! Drop-in configuration: what 6.6.9 accepts loads here with the same meaning (a literal
//! `pool.database.password`, values pydantic converts, host names for `metrics.host`), what it
//! refuses is refused here (an unset `password_env` variable), and keys of one file that would
//! make every cycle fail against `brotr.yaml` (a chunk larger than `batch.max_size`, more
//! concurrent work than pooled connections) stop the daemon at start, naming both keys. The
//! original's own deployment files (both deployments, all eight daemons, hand-written under
//! `tests/fixtures/original-6.6.9/`) load with every key where 6.6.9 puts it, and values are
//! converted by pydantic v2's lax rules (a table of cases).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bigbrotr_api::ApiConfig;
use bigbrotr_core::cli::Cli;
use bigbrotr_core::config::{self, Loaded};
use bigbrotr_core::runner::Daemon;
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_dvm::{Dvm, DvmConfig};
use bigbrotr_finder::Finder;
use bigbrotr_monitor::Monitor;
use bigbrotr_refresher::{Refresher, RefresherConfig};
use bigbrotr_seeder::Seeder;
use bigbrotr_synchronizer::Synchronizer;
use bigbrotr_testkit::TestDb;
use bigbrotr_validator::{Validator, ValidatorConfig};
use clap::Parser;
use serde_json::{Value, json};

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

/// `tests/fixtures/original-6.6.9/<deployment>`: BigBrotr 6.6.9's configuration as each of its
/// deployments ships it, every key spelt out.
fn original_dir(deployment: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/original-6.6.9")
        .join(deployment)
}

/// Every value of `given` (a YAML document) is at the same path of `loaded` (the configuration
/// serialised back), equal: numbers by value (`300` = `300.0`), text, booleans and nulls as they
/// are, lists entry by entry.
fn assert_same_meaning(given: &Value, loaded: &Value, path: &str) {
    match (given, loaded) {
        (Value::Object(given), Value::Object(loaded)) => {
            for (key, value) in given {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let Some(setting) = loaded.get(key) else {
                    panic!("{at}: not a setting of the loaded configuration");
                };
                assert_same_meaning(value, setting, &at);
            }
        }
        (Value::Array(given), Value::Array(loaded)) => {
            assert_eq!(given.len(), loaded.len(), "{path}: {given:?} vs {loaded:?}");
            for (index, (value, setting)) in given.iter().zip(loaded).enumerate() {
                assert_same_meaning(value, setting, &format!("{path}[{index}]"));
            }
        }
        (Value::Number(given), Value::Number(loaded)) => {
            assert_eq!(given.as_f64(), loaded.as_f64(), "{path}");
        }
        _ => assert_eq!(given, loaded, "{path}"),
    }
}

/// Loads `file` of the original `deployment` with the daemons' loader: found, no unknown key, and
/// every key where the original puts it with the value it has there.
fn load_original<T>(deployment: &str, file: &str) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned + Default + config::Validate,
{
    let path = original_dir(deployment).join(file);
    let at = path.display().to_string();
    let loaded: Loaded<T> = config::load(&path, "BIGBROTR_TEST_UNUSED__")
        .unwrap_or_else(|e| panic!("{at}: refused: {e}"));
    assert!(loaded.file_found, "{at}");
    assert!(
        loaded.unknown_keys.is_empty(),
        "{at}: unknown keys {:?}",
        loaded.unknown_keys
    );
    let given = config::parse_yaml(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    let back = serde_json::to_value(&loaded.config).unwrap();
    assert_same_meaning(&given, &back, "");
    loaded.config
}

/// Loads daemon `D`'s file and `brotr.yaml` of the original `deployment` the way the daemon
/// starts: its `pool:` overrides applied to `brotr.yaml`, both valid, no cross-file mismatch.
fn start_original<D: Daemon>(deployment: &str) -> (D::Config, BrotrConfig) {
    let name = D::NAME.as_str();
    let service: D::Config = load_original(deployment, &format!("services/{name}.yaml"));
    let mut brotr: BrotrConfig = load_original(deployment, "brotr.yaml");
    D::base(&service).pool.apply(&mut brotr, name);
    config::Validate::validate(&brotr).unwrap_or_else(|e| panic!("{deployment} {name}: {e}"));
    D::check_with_brotr(&service, &brotr).unwrap_or_else(|e| panic!("{deployment} {name}: {e}"));
    (service, brotr)
}

#[test]
fn the_originals_deployment_files_load_with_the_same_meaning() {
    for deployment in ["bigbrotr", "lilbrotr"] {
        let lil = deployment == "lilbrotr";
        let at = deployment;

        let (seeder, brotr) = start_original::<Seeder>(deployment);
        assert_eq!(brotr.pool.database.host, "pgbouncer", "{at}");
        assert_eq!(brotr.pool.database.database, deployment, "{at}");
        assert_eq!(
            brotr.pool.database.user, "writer",
            "{at}: seeder's pool.user"
        );
        assert_eq!(brotr.pool.database.password_env, "DB_WRITER_PASSWORD");
        assert_eq!(brotr.pool.server_settings.application_name, "seeder");
        assert_eq!(brotr.batch.max_size, 1000);
        assert_eq!(brotr.timeouts.query, Some(60.0));
        assert_eq!(brotr.timeouts.refresh, None, "{at}: null = no timeout");
        assert_eq!(
            seeder.seed.file_path,
            Path::new("static/seed_relays.txt"),
            "{at}"
        );
        assert!(seeder.seed.to_validate);
        assert!(!seeder.base.metrics.enabled, "{at}: the seeder serves none");

        let (finder, _) = start_original::<Finder>(deployment);
        let urls: Vec<&str> = finder.api.sources.iter().map(|s| s.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://api.nostr.watch/v1/online",
                "https://api.nostr.watch/v1/offline"
            ],
            "{at}"
        );
        assert!(finder.api.sources.iter().all(|s| s.expression == "[*]"));
        assert_eq!(finder.events.parallel_relays, 60);
        assert_eq!(finder.base.metrics.host, "0.0.0.0");

        let (validator, _) = start_original::<Validator>(deployment);
        assert_eq!(validator.processing.chunk_size, 100);
        assert_eq!(validator.processing.max_candidates, None);
        assert_eq!(validator.processing.interval, 3600.0);
        assert_eq!(validator.cleanup.max_failures, 720);
        assert!(validator.networks.tor.enabled);
        assert_eq!(
            validator.networks.tor.proxy_url.as_deref(),
            Some("socks5://tor:9050")
        );

        let (monitor, _) = start_original::<Monitor>(deployment);
        let retries = &monitor.processing.retries;
        assert_eq!(
            [
                retries.nip11_info.max_attempts,
                retries.nip66_rtt.max_attempts,
                retries.nip66_ssl.max_attempts,
                retries.nip66_geo.max_attempts,
                retries.nip66_net.max_attempts,
                retries.nip66_dns.max_attempts,
                retries.nip66_http.max_attempts,
            ],
            [3, 2, 2, 1, 1, 2, 2],
            "{at}"
        );
        assert!(
            monitor
                .geo
                .city_download_url
                .ends_with("/GeoLite2-City.mmdb"),
            "{at}: 6.6.9's download URL keeps its meaning"
        );
        assert_eq!(monitor.geo.max_age_days, Some(30));
        let profile = if lil {
            "LilBrotr Monitor"
        } else {
            "BigBrotr Monitor"
        };
        assert_eq!(monitor.profile.name.as_deref(), Some(profile));
        assert_eq!(monitor.keys.keys_env, "NOSTR_PRIVATE_KEY");
        assert_eq!(monitor.discovery.interval, 14_400.0);
        assert_eq!(monitor.publishing.relays.len(), 4);

        let (synchronizer, _) = start_original::<Synchronizer>(deployment);
        let p = &synchronizer.processing;
        assert_eq!((p.since, p.until, p.limit), (0, None, 500), "{at}");
        assert_eq!(p.max_event_size, None, "{at}: null = no limit, as in 6.6.9");
        assert_eq!((p.end_lag, p.batch_size), (86_400, 1000));
        assert_eq!(p.filters, vec![json!({})]);
        assert_eq!(synchronizer.timeouts.idle, 300.0);
        assert_eq!(synchronizer.keys.keys_env, "NOSTR_PRIVATE_KEY");

        let (refresher, brotr) = start_original::<Refresher>(deployment);
        assert_eq!(refresher.base.interval, 86_400.0, "{at}");
        assert_eq!(refresher.refresh.views.len(), 13);
        assert_eq!(refresher.refresh.views[0], "relay_metadata_latest");
        assert_eq!(brotr.pool.database.user, "refresher");
        assert_eq!(brotr.pool.limits.max_size, 2);

        let (api, brotr) = start_original::<bigbrotr_api::Api>(deployment);
        let title = if lil { "LilBrotr API" } else { "BigBrotr API" };
        assert_eq!(api.title, title, "{at}");
        assert_eq!((api.host.as_str(), api.port), ("0.0.0.0", 8080));
        assert_eq!(api.prefix(), "/v1");
        assert_eq!(api.base.interval, 60.0);
        assert_eq!(brotr.pool.database.user, "reader");
        assert_eq!(brotr.pool.limits.min_size, 2);
        for table in ["event", "event_relay"] {
            assert_eq!(api.tables[table].enabled, lil, "{at}: {table}");
        }
        assert!(api.tables["relay_metadata_latest"].enabled);
        assert!(!api.tables.contains_key("service_state"));

        let (dvm, brotr) = start_original::<Dvm>(deployment);
        let (name, d_tag) = if lil {
            ("LilBrotr DVM", "lilbrotr-dvm")
        } else {
            ("BigBrotr DVM", "bigbrotr-dvm")
        };
        assert_eq!((dvm.name.as_str(), dvm.d_tag.as_str()), (name, d_tag));
        assert_eq!(dvm.keys.keys_env, "NOSTR_PRIVATE_KEY", "{at}: top-level");
        assert_eq!((dvm.kind, dvm.fetch_timeout), (5050, 30.0));
        assert_eq!(dvm.relays.len(), 4);
        assert_eq!(dvm.tables["event"].enabled, lil);
        assert_eq!(brotr.pool.limits.max_size, 3);
    }
}

/// How a value given for a setting of each type is read, against pydantic v2's lax mode (the
/// original's validation): `Some` is the value it becomes, `None` a refusal naming the key.
#[test]
fn coercion_follows_pydantic_lax_mode() {
    fn load(yaml: &str) -> Result<ValidatorConfig, String> {
        let value = config::parse_yaml(yaml, Path::new("validator.yaml")).map_err(|e| e.0)?;
        config::load_value::<ValidatorConfig>(value, true, "BIGBROTR_TEST_UNUSED__", "v.yaml")
            .map(|loaded| loaded.config)
            .map_err(|e| e.0)
    }
    fn check<T: PartialEq + std::fmt::Debug>(
        key: &str,
        cases: &[(&str, Option<T>)],
        read: impl Fn(&ValidatorConfig) -> T,
    ) {
        let (section, name) = key.rsplit_once('.').unwrap_or(("", key));
        for (given, expected) in cases {
            let yaml = if section.is_empty() {
                format!("{name}: {given}\n")
            } else {
                format!("{section}:\n  {name}: {given}\n")
            };
            match (load(&yaml), expected) {
                (Ok(config), Some(expected)) => {
                    assert_eq!(&read(&config), expected, "{key}: {given}")
                }
                (Err(error), None) => assert!(error.contains(key), "{key}: {given}: {error}"),
                (outcome, expected) => {
                    panic!("{key}: {given}: got {outcome:?}, pydantic gives {expected:?}")
                }
            }
        }
    }
    // An integer setting (processing.chunk_size, 10..=1000).
    check(
        "processing.chunk_size",
        &[
            ("300", Some(300)),
            ("\"300\"", Some(300)),
            ("\" 300 \"", Some(300)),
            ("\"+300\"", Some(300)),
            ("\"0300\"", Some(300)),
            ("\"300.0\"", Some(300)),
            ("\"300.000\"", Some(300)),
            ("\"3_00\"", Some(300)),
            ("300.0", Some(300)),
            ("300.5", None),
            ("\"300.5\"", None),
            ("\"300.\"", None),
            ("\"1e2\"", None),
            ("\"abc\"", None),
            ("\"\"", None),
            ("\"_300\"", None),
            ("\"3__00\"", None),
            ("\"+-300\"", None),
            ("[300]", None),
            ("{n: 300}", None),
            ("null", None),
        ],
        |c| c.processing.chunk_size,
    );
    // Booleans are integers 1 and 0.
    check(
        "max_consecutive_failures",
        &[("true", Some(1)), ("false", Some(0)), ("\"7\"", Some(7))],
        |c| c.base.max_consecutive_failures,
    );
    // A number setting (interval, 60..=604800).
    check(
        "interval",
        &[
            ("300", Some(300.0)),
            ("300.5", Some(300.5)),
            ("\"300\"", Some(300.0)),
            ("\" 300.5 \"", Some(300.5)),
            ("\"3_00.5\"", Some(300.5)),
            ("\"1e3\"", Some(1000.0)),
            ("\"abc\"", None),
            ("\"\"", None),
            ("\"nan\"", None),
            ("\"inf\"", None),
            ("[300]", None),
        ],
        |c| c.base.interval,
    );
    // An optional integer (default null) is read the same way.
    check(
        "processing.max_candidates",
        &[
            ("\"500\"", Some(Some(500))),
            ("500.0", Some(Some(500))),
            ("null", Some(None)),
            ("500.5", None),
            ("\"many\"", None),
        ],
        |c| c.processing.max_candidates,
    );
    // A boolean setting.
    let mut booleans: Vec<(String, Option<bool>)> = Vec::new();
    for word in [
        "true", "True", "TRUE", "yes", "YES", "on", "On", "1", "t", "T", "y", "Y",
    ] {
        booleans.push((format!("\"{word}\""), Some(true)));
    }
    for word in [
        "false", "False", "no", "NO", "off", "Off", "0", "f", "F", "n", "N",
    ] {
        booleans.push((format!("\"{word}\""), Some(false)));
    }
    for (given, expected) in [
        ("true", Some(true)),
        ("yes", Some(true)),
        ("on", Some(true)),
        ("no", Some(false)),
        ("1", Some(true)),
        ("0", Some(false)),
        ("1.0", Some(true)),
        ("0.0", Some(false)),
        ("2", None),
        ("0.5", None),
        ("\"2\"", None),
        ("\"abc\"", None),
        ("\"\"", None),
        ("\" yes \"", None),
        ("\"yess\"", None),
        ("[true]", None),
    ] {
        booleans.push((given.to_owned(), expected));
    }
    let booleans: Vec<(&str, Option<bool>)> =
        booleans.iter().map(|(g, e)| (g.as_str(), *e)).collect();
    check("processing.allow_insecure", &booleans, |c| {
        c.processing.allow_insecure
    });
}

/// Text settings: pydantic v2 converts nothing to text, and neither does this loader. The one
/// difference is YAML's: 6.6.9 reads YAML 1.1 (PyYAML), where a bare `yes`, `no`, `on` or `off`
/// is a boolean, refused for a text setting; serde_norway reads YAML 1.2, where it is the text
/// itself. A name spelt `on` is accepted here; nothing 6.6.9 accepts is refused.
#[test]
fn text_settings_take_text_only() {
    fn title(yaml: &str) -> Result<String, String> {
        let value = config::parse_yaml(yaml, Path::new("api.yaml")).map_err(|e| e.0)?;
        config::load_value::<ApiConfig>(value, true, "BIGBROTR_TEST_UNUSED__", "api.yaml")
            .map(|loaded| loaded.config.title)
            .map_err(|e| e.0)
    }
    assert_eq!(title("title: \"123\"\n").unwrap(), "123");
    assert_eq!(title("title: My API\n").unwrap(), "My API");
    for refused in [
        "title: 123\n",
        "title: 1.5\n",
        "title: true\n",
        "title: [a]\n",
    ] {
        let error = title(refused).unwrap_err();
        assert!(error.contains("title"), "{refused}: {error}");
    }
    // The YAML 1.1/1.2 difference, documented in docs/configuration.md.
    assert_eq!(title("title: on\n").unwrap(), "on");
}
