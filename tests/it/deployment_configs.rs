//! Every configuration file shipped under deployments/ loads with the daemons' own loader: valid
//! values, no unknown keys (a typo there would silently fall back to a default). The compose files
//! and systemd units run every daemon the way its configuration expects (binary, role, key,
//! ports, mounts, dependencies).

use std::path::{Path, PathBuf};

use bigbrotr_api::ApiConfig;
use bigbrotr_core::config::{self, Loaded, Validate};
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_dvm::DvmConfig;
use bigbrotr_finder::FinderConfig;
use bigbrotr_monitor::MonitorConfig;
use bigbrotr_monitor::config::{
    AnnouncementConfig, DiscoveryConfig, ProfileConfig, PublishingConfig, RelayListConfig,
    RetryConfig,
};
use bigbrotr_refresher::RefresherConfig;
use bigbrotr_seeder::SeederConfig;
use bigbrotr_synchronizer::SynchronizerConfig;
use bigbrotr_validator::ValidatorConfig;
use serde_json::{Map, Value};

use crate::fixtures::relay;

/// The continuous daemons that exist, with their metrics host port offset (bigbrotr 8000+n,
/// lilbrotr 9000+n).
const DAEMONS: [(&str, u16); 4] = [
    ("finder", 1),
    ("validator", 2),
    ("monitor", 3),
    ("synchronizer", 4),
];

/// The daemons that reach onion relays through the compose `tor` service.
const TOR_DAEMONS: [&str; 3] = ["validator", "monitor", "synchronizer"];

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
        check_monitor(&dir.join("services/monitor.yaml"));
        check_refresher(&dir.join("services/refresher.yaml"));
        check_api(&dir.join("services/api.yaml"));
        check_dvm(&dir.join("services/dvm.yaml"));
    }
}

/// A DVM file: valid, the `reader` role, metrics for the container, the original's key
/// variable and kind, a pool as large as its workers, and the API's tables.
fn check_dvm(path: &Path) {
    let loaded: Loaded<DvmConfig> = config::load(path, "BIGBROTR_TEST_UNUSED_PREFIX__").unwrap();
    check(&loaded, path);
    let c = &loaded.config;
    let at = path.display();
    assert!(c.base.metrics.enabled, "{at}");
    assert_eq!(c.base.metrics.host, "0.0.0.0", "{at}");
    assert_eq!(c.base.pool.user.as_deref(), Some("reader"), "{at}");
    assert_eq!(
        c.base.pool.password_env.as_deref(),
        Some("DB_READER_PASSWORD"),
        "{at}"
    );
    assert_eq!(c.base.pool.statement_cache_size, Some(100), "{at}");
    assert_eq!(c.keys.keys_env, "NOSTR_PRIVATE_KEY", "{at}");
    assert_eq!(c.kind, 5050, "{at}");
    assert!(
        c.limits.workers <= c.base.pool.max_size.unwrap_or(5) as usize,
        "{at}: more workers than connections"
    );
    let api: Loaded<ApiConfig> = config::load(
        &path.with_file_name("api.yaml"),
        "BIGBROTR_TEST_UNUSED_PREFIX__",
    )
    .unwrap();
    assert_eq!(
        c.tables, api.config.tables,
        "{at}: the same tables as the API"
    );
}

/// An API file: valid, the read-only `reader` role with its password variable, metrics for the
/// container on a port other than the API's, the 6.6.9 deployment's tables (its materialized
/// views, relay, metadata and relay_metadata open; event and event_relay open only in LilBrotr;
/// service_state and the two events_*_latest closed) plus the uptime tables.
fn check_api(path: &Path) {
    let loaded: Loaded<ApiConfig> = config::load(path, "BIGBROTR_TEST_UNUSED_PREFIX__").unwrap();
    check(&loaded, path);
    let c = &loaded.config;
    let at = path.display();
    assert!(c.base.metrics.enabled, "{at}");
    assert_eq!(c.base.metrics.host, "0.0.0.0", "{at}");
    assert_ne!(c.base.metrics.port, c.port, "{at}");
    assert_eq!((c.host.as_str(), c.port), ("0.0.0.0", 8080), "{at}");
    assert_eq!(c.base.interval, 60.0, "{at}");
    assert_eq!(c.base.pool.user.as_deref(), Some("reader"), "{at}");
    assert_eq!(
        c.base.pool.password_env.as_deref(),
        Some("DB_READER_PASSWORD"),
        "{at}"
    );
    // Named statements, within the PgBouncer's max_prepared_statements were it used.
    assert_eq!(c.base.pool.statement_cache_size, Some(100), "{at}");
    let lil = at.to_string().contains("lilbrotr");
    let enabled = |name: &str| c.tables.get(name).is_some_and(|t| t.enabled);
    for view in bigbrotr_db::migrate::STATISTICS_OBJECTS {
        let expected = !view.starts_with("events_");
        assert_eq!(enabled(view), expected, "{at}: {view}");
    }
    for table in ["relay", "metadata", "relay_metadata"] {
        assert!(enabled(table), "{at}: {table}");
    }
    for table in ["event", "event_relay"] {
        assert_eq!(enabled(table), lil, "{at}: {table}");
    }
    assert!(!enabled("service_state"), "{at}");
    assert!(
        c.tables.values().all(|t| t.price == 0),
        "{at}: the API has no prices"
    );
}

/// A refresher file: valid, the `refresher` role with its password variable, a pool of two,
/// metrics for the container, a 10-minute interval and the default views.
fn check_refresher(path: &Path) {
    let loaded: Loaded<RefresherConfig> =
        config::load(path, "BIGBROTR_TEST_UNUSED_PREFIX__").unwrap();
    check(&loaded, path);
    let c = &loaded.config;
    let at = path.display();
    assert!(c.base.metrics.enabled, "{at}");
    assert_eq!(c.base.metrics.host, "0.0.0.0", "{at}");
    assert_eq!(c.base.pool.user.as_deref(), Some("refresher"), "{at}");
    assert_eq!(
        c.base.pool.password_env.as_deref(),
        Some("DB_REFRESHER_PASSWORD"),
        "{at}"
    );
    assert_eq!(c.base.pool.max_size, Some(2), "{at}");
    // Every 10 minutes: a refresh costs what was written since the last one (migration 0004).
    assert_eq!(c.base.interval, 600.0, "{at}");
    assert_eq!(c.refresh, RefresherConfig::default().refresh, "{at}");
    assert!(
        c.refresh.concurrency <= c.base.pool.max_size.unwrap_or(0) as usize,
        "{at}: refresh.concurrency above the pool size"
    );
}

/// A monitor file: valid, the original deployment's retries, Tor, the writer role, and GeoLite
/// paths inside the `static/` directory the deployments mount read-write.
fn check_monitor(path: &Path) {
    let loaded: Loaded<MonitorConfig> =
        config::load(path, "BIGBROTR_TEST_UNUSED_PREFIX__").unwrap();
    check(&loaded, path);
    let c = &loaded.config;
    c.validate()
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.0));
    assert!(c.base.metrics.enabled, "{}", path.display());
    assert_eq!(c.base.metrics.host, "0.0.0.0", "{}", path.display());
    assert_eq!(c.base.pool.user.as_deref(), Some("writer"));
    assert_eq!(
        c.base.pool.password_env.as_deref(),
        Some("DB_WRITER_PASSWORD")
    );
    assert_eq!(c.keys.keys_env, "NOSTR_PRIVATE_KEY");
    assert!(c.networks.clearnet.enabled);
    assert!(c.networks.tor.enabled);
    assert_eq!(
        c.networks.tor.proxy_url.as_deref(),
        Some("socks5://tor:9050")
    );
    let retries = &c.processing.retries;
    for (policy, attempts) in [
        (&retries.nip11_info, 3),
        (&retries.nip66_rtt, 2),
        (&retries.nip66_ssl, 2),
        (&retries.nip66_dns, 2),
        (&retries.nip66_geo, 1),
        (&retries.nip66_net, 1),
        (&retries.nip66_http, 2),
    ] {
        let expected = RetryConfig {
            max_attempts: attempts,
            ..RetryConfig::default()
        };
        assert_eq!(*policy, expected, "{}", path.display());
    }
    // Everything the original deployment leaves at its defaults.
    let defaults = MonitorConfig::default();
    assert_eq!(c.processing.compute, defaults.processing.compute);
    assert_eq!(c.processing.store, defaults.processing.store);
    assert_eq!(c.geo, defaults.geo);
    assert_eq!(c.publishing, PublishingConfig::default());
    assert_eq!(c.discovery, DiscoveryConfig::default());
    assert_eq!(c.announcement, AnnouncementConfig::default());
    assert_eq!(c.profile, ProfileConfig::default());
    assert_eq!(c.relay_list, RelayListConfig::default());
    for file in [&c.geo.city_database_path, &c.geo.asn_database_path] {
        assert!(
            file.starts_with("static/") && !file.contains(".."),
            "{}: {file} is outside the mounted static/",
            path.display()
        );
    }
}

/// `value` with its YAML merge keys (`<<: *anchor`) applied; keys of the mapping itself win.
fn merged(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut own = Map::new();
            let mut bases = Vec::new();
            for (key, value) in map {
                let value = merged(value);
                if key != "<<" {
                    own.insert(key, value);
                } else if let Value::Array(list) = value {
                    bases.extend(list);
                } else {
                    bases.push(value);
                }
            }
            for base in bases {
                if let Value::Object(base) = base {
                    for (key, value) in base {
                        own.entry(key).or_insert(value);
                    }
                }
            }
            Value::Object(own)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(merged).collect()),
        other => other,
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn condition<'a>(service: &'a Value, dependency: &str) -> Option<&'a str> {
    service["depends_on"][dependency]["condition"].as_str()
}

#[test]
fn compose_files_run_every_daemon_with_its_binary_role_ports_and_mounts() {
    let root = deployments();
    let repository = root.join("..");
    let mut compose_files: Vec<(String, PathBuf)> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.join("docker-compose.yaml").is_file())
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            (name, dir)
        })
        .collect();
    compose_files.sort();
    let names: Vec<&str> = compose_files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["bigbrotr", "lilbrotr"]);
    for (variant, dir) in &compose_files {
        let path = dir.join("docker-compose.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let compose = merged(config::parse_yaml(&text, &path).unwrap());
        let services = compose["services"].as_object().unwrap();
        let base_port = if variant == "lilbrotr" { 9000 } else { 8000 };
        for (name, offset) in DAEMONS {
            let at = format!("{}: {name}", path.display());
            let service = services
                .get(name)
                .unwrap_or_else(|| panic!("{at}: missing"));
            let binary = format!("bigbrotr-{name}");
            assert_eq!(strings(&service["command"]), [binary.as_str()], "{at}");
            assert!(
                repository.join("crates").join(&binary).is_dir(),
                "{at}: no crate {binary}"
            );
            assert!(
                dir.join(format!("config/services/{name}.yaml")).is_file(),
                "{at}: no config/services/{name}.yaml"
            );
            assert_eq!(
                service["container_name"].as_str(),
                Some(format!("{variant}-{name}").as_str()),
                "{at}"
            );
            assert_eq!(service["restart"].as_str(), Some("unless-stopped"), "{at}");
            assert_eq!(service["stop_grace_period"].as_str(), Some("60s"), "{at}");
            let port = format!(
                "127.0.0.1:${{{}_METRICS_PORT:-{}}}:8000",
                name.to_ascii_uppercase(),
                base_port + offset
            );
            assert_eq!(strings(&service["ports"]), [port.as_str()], "{at}");
            let health = strings(&service["healthcheck"]["test"]).join(" ");
            assert!(
                health.contains("/dev/tcp/127.0.0.1/8000") && health.contains("GET /health"),
                "{at}: {health}"
            );
            assert!(
                service["environment"]["DB_WRITER_PASSWORD"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("${DB_WRITER_PASSWORD:?")),
                "{at}: the writer password, required"
            );
            assert_eq!(
                condition(service, "migrate"),
                Some("service_completed_successfully"),
                "{at}"
            );
            assert_eq!(
                condition(service, "pgbouncer"),
                Some("service_healthy"),
                "{at}"
            );
            let tor = TOR_DAEMONS.contains(&name).then_some("service_healthy");
            assert_eq!(condition(service, "tor"), tor, "{at}");
            let volumes = strings(&service["volumes"]);
            assert!(volumes.contains(&"./config:/app/config:ro"), "{at}");
            assert!(volumes.contains(&"./gai.conf:/etc/gai.conf:ro"), "{at}");
        }
        // The monitor: signs with a required key and writes GeoLite files to static/; no other
        // service may write there.
        let monitor = &services["monitor"];
        assert!(
            monitor["environment"]["NOSTR_PRIVATE_KEY"]
                .as_str()
                .is_some_and(|v| v.starts_with("${NOSTR_PRIVATE_KEY:?")),
            "{}: the monitor's key is required",
            path.display()
        );
        for (name, service) in services {
            for volume in strings(&service["volumes"]) {
                if volume.split(':').nth(1) == Some("/app/static") {
                    let expected = if name == "monitor" {
                        "./static:/app/static:rw"
                    } else {
                        "./static:/app/static:ro"
                    };
                    assert_eq!(volume, expected, "{}: {name}", path.display());
                }
            }
        }
        assert!(
            strings(&monitor["volumes"]).contains(&"./static:/app/static:rw"),
            "{}: monitor",
            path.display()
        );
        check_refresher_service(&path, variant, &services["refresher"], base_port + 5);
        let api_port = if variant == "lilbrotr" { 8081 } else { 8080 };
        check_api_service(&path, variant, &services["api"], base_port + 6, api_port);
        check_dvm_service(&path, variant, &services["dvm"], base_port + 7);
    }
}

/// The DVM's compose service: its binary, the reader role and a key of its own (both required,
/// nothing else secret), metrics on loopback, a 30 s stop.
fn check_dvm_service(path: &Path, variant: &str, service: &Value, metrics_port: u16) {
    let at = format!("{}: dvm", path.display());
    assert_eq!(strings(&service["command"]), ["bigbrotr-dvm"], "{at}");
    assert_eq!(
        service["container_name"].as_str(),
        Some(format!("{variant}-dvm").as_str()),
        "{at}"
    );
    assert_eq!(service["stop_grace_period"].as_str(), Some("30s"), "{at}");
    let metrics = format!("127.0.0.1:${{DVM_METRICS_PORT:-{metrics_port}}}:8000");
    assert_eq!(strings(&service["ports"]), [metrics.as_str()], "{at}");
    let env = &service["environment"];
    assert!(
        env["DB_READER_PASSWORD"]
            .as_str()
            .is_some_and(|v| v.starts_with("${DB_READER_PASSWORD:?")),
        "{at}"
    );
    assert!(
        env["NOSTR_PRIVATE_KEY"]
            .as_str()
            .is_some_and(|v| v.starts_with("${DVM_PRIVATE_KEY:?")),
        "{at}: a key of its own, required"
    );
    assert!(env.get("DB_WRITER_PASSWORD").is_none(), "{at}");
    check_direct_reader(&at, service, variant, "DVM");
}

/// The read side (api, dvm) goes straight to postgres, whose pool caches named statements
/// (`pool.statement_cache_size` in its service file): PgBouncer's transaction mode would need
/// `max_prepared_statements` for that, which the PgBouncer the tests have (1.18) lacks. In
/// BigBrotr, `<PREFIX>_DATABASE_HOST` may move it to the optional standby (postgres by default).
fn check_direct_reader(at: &str, service: &Value, variant: &str, prefix: &str) {
    let env = &service["environment"];
    let host = if variant == "bigbrotr" {
        format!("${{{prefix}_DATABASE_HOST:-postgres}}")
    } else {
        "postgres".to_owned()
    };
    assert_eq!(
        env["BIGBROTR_BROTR__POOL__DATABASE__HOST"].as_str(),
        Some(host.as_str()),
        "{at}: direct to postgres, not pgbouncer"
    );
    assert_eq!(
        env["BIGBROTR_BROTR__POOL__DATABASE__PORT"].as_str(),
        Some("5432"),
        "{at}"
    );
    assert_eq!(
        condition(service, "migrate"),
        Some("service_completed_successfully"),
        "{at}"
    );
    assert_eq!(
        condition(service, "postgres"),
        Some("service_healthy"),
        "{at}"
    );
    assert_eq!(
        condition(service, "pgbouncer"),
        None,
        "{at}: does not use it"
    );
}

/// The API's compose service: its binary, the reader role (required password, no other), its
/// HTTP port and metrics on loopback, healthy when `/health` on the API port answers 200, a 30 s
/// stop.
fn check_api_service(
    path: &Path,
    variant: &str,
    service: &Value,
    metrics_port: u16,
    api_port: u16,
) {
    let at = format!("{}: api", path.display());
    assert_eq!(strings(&service["command"]), ["bigbrotr-api"], "{at}");
    assert_eq!(
        service["container_name"].as_str(),
        Some(format!("{variant}-api").as_str()),
        "{at}"
    );
    assert_eq!(service["restart"].as_str(), Some("unless-stopped"), "{at}");
    assert_eq!(service["stop_grace_period"].as_str(), Some("30s"), "{at}");
    let api = format!("127.0.0.1:${{API_PORT:-{api_port}}}:8080");
    let metrics = format!("127.0.0.1:${{API_METRICS_PORT:-{metrics_port}}}:8000");
    assert_eq!(
        strings(&service["ports"]),
        [api.as_str(), metrics.as_str()],
        "{at}"
    );
    let health = strings(&service["healthcheck"]["test"]).join(" ");
    assert!(
        health.contains("/dev/tcp/127.0.0.1/8080") && health.contains("GET /health"),
        "{at}: {health}"
    );
    let env = &service["environment"];
    assert!(
        env["DB_READER_PASSWORD"]
            .as_str()
            .is_some_and(|v| v.starts_with("${DB_READER_PASSWORD:?")),
        "{at}: the reader password, required"
    );
    assert!(
        env.get("DB_WRITER_PASSWORD").is_none(),
        "{at}: no writer password"
    );
    assert!(env.get("NOSTR_PRIVATE_KEY").is_none(), "{at}: no key");
    check_direct_reader(&at, service, variant, "API");
}

/// BigBrotr's optional streaming standby (profile `standby`): the primary's image,
/// `postgresql.conf` and `pg_hba.conf`, a data directory of its own, a copy made with
/// `pg_basebackup -R` as role `replicator` whose password is required by its entrypoint (not by
/// compose, which would then require it of every deployment, profile or not) and given to
/// `bigbrotr-migrate` to create the role; the primary's `pg_hba.conf` lets only that role
/// replicate from the network; only the api and the dvm can be moved to it. Validated with
/// `docker-compose config` too when the tool is installed (scripts/check-ops.sh installs it).
#[test]
fn the_compose_standby_is_optional_and_serves_only_the_read_side() {
    let dir = deployments().join("bigbrotr");
    let path = dir.join("docker-compose.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let compose = merged(config::parse_yaml(&text, &path).unwrap());
    let services = compose["services"].as_object().unwrap();
    let primary = &services["postgres"];
    let standby = &services["postgres-standby"];
    assert_eq!(strings(&standby["profiles"]), ["standby"]);
    for (name, service) in services {
        if name != "postgres-standby" {
            assert!(service.get("profiles").is_none(), "{name}: not optional");
        }
    }
    assert_eq!(standby["image"], primary["image"]);
    assert_eq!(standby["restart"].as_str(), Some("unless-stopped"));
    let config_file = "config_file=/etc/postgresql/postgresql.conf";
    let hba_file = "hba_file=/etc/postgresql/pg_hba.conf";
    assert_eq!(
        strings(&primary["command"]),
        ["postgres", "-c", config_file, "-c", hba_file]
    );
    let command = strings(&standby["command"]);
    for arg in [
        config_file,
        hba_file,
        "hot_standby=on",
        "hot_standby_feedback=on",
    ] {
        assert!(
            command.contains(&arg),
            "standby command lacks {arg}: {command:?}"
        );
    }
    let data = |service: &Value| {
        strings(&service["volumes"])
            .into_iter()
            .find(|v| v.ends_with(":/var/lib/postgresql"))
            .map(str::to_owned)
    };
    assert_eq!(
        data(standby).as_deref(),
        Some("${POSTGRES_STANDBY_DATA_DIR:-./data/postgres-standby}:/var/lib/postgresql")
    );
    assert_ne!(data(standby), data(primary), "a data directory of its own");
    for service in [primary, standby] {
        let volumes = strings(&service["volumes"]);
        for mount in [
            "./postgres/postgresql.conf:/etc/postgresql/postgresql.conf:ro",
            "./postgres/pg_hba.conf:/etc/postgresql/pg_hba.conf:ro",
        ] {
            assert!(volumes.contains(&mount), "{mount}: {volumes:?}");
        }
    }
    let script = "/usr/local/bin/bigbrotr-standby-entrypoint.sh";
    assert_eq!(strings(&standby["entrypoint"]), ["/bin/sh", script]);
    assert!(
        strings(&standby["volumes"])
            .contains(&format!("./postgres/standby-entrypoint.sh:{script}:ro").as_str())
    );
    assert_eq!(
        strings(&standby["ports"]),
        ["127.0.0.1:${POSTGRES_STANDBY_PORT:-5433}:5432"]
    );
    assert_eq!(
        condition(standby, "migrate"),
        Some("service_completed_successfully"),
        "the replication role exists first"
    );
    let limit = |service: &Value| service["deploy"]["resources"]["limits"]["memory"].clone();
    assert_eq!(
        limit(standby),
        limit(primary),
        "the same postgresql.conf, the same memory budget"
    );
    assert_eq!(
        standby["environment"]["PRIMARY_HOST"].as_str(),
        Some("postgres")
    );

    // The replication password: optional for compose, required by the standby's entrypoint,
    // given to migrate, which makes role replicator from it.
    for service in [standby, &services["migrate"]] {
        assert_eq!(
            service["environment"]["DB_REPLICATION_PASSWORD"].as_str(),
            Some("${DB_REPLICATION_PASSWORD:-}")
        );
    }
    let entrypoint = std::fs::read_to_string(dir.join("postgres/standby-entrypoint.sh")).unwrap();
    for needle in [
        "DB_REPLICATION_PASSWORD must be set",
        "exit 1",
        "pg_receivewal --create-slot --if-not-exists",
        "pg_basebackup -h \"$primary_host\" -p \"$primary_port\" -U replicator",
        "-R -X stream -S \"$slot\"",
        "exec docker-entrypoint.sh \"$@\"",
    ] {
        assert!(
            entrypoint.contains(needle),
            "standby-entrypoint.sh lacks {needle}"
        );
    }

    // Only replicator replicates from the network, with its password; "all" never matches a
    // replication connection, and everything else keeps SCRAM.
    let hba = std::fs::read_to_string(dir.join("postgres/pg_hba.conf")).unwrap();
    let rules: Vec<Vec<&str>> = hba
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    for rule in &rules {
        let loopback = rule[0] == "local" || ["127.0.0.1/32", "::1/128"].contains(&rule[3]);
        if !loopback {
            assert_eq!(rule.last(), Some(&"scram-sha-256"), "{rule:?}");
            if rule[1] == "replication" {
                assert_eq!(rule[2], "replicator", "{rule:?}");
            }
        }
    }
    assert!(rules.contains(&vec![
        "host",
        "replication",
        "replicator",
        "all",
        "scram-sha-256"
    ]));
    assert_eq!(
        rules.last().unwrap(),
        &vec!["host", "all", "all", "all", "scram-sha-256"],
        "the image's own last rule"
    );
    // A standby that is gone cannot fill the primary's disk through its slot.
    let settings = postgresql_conf(&dir.join("postgres/postgresql.conf"));
    assert!(postgres_mib(&settings, "max_slot_wal_keep_size") > 0);

    // Only the read side may be moved there: every other service points at postgres or pgbouncer.
    for (name, service) in services {
        let host = service["environment"]["BIGBROTR_BROTR__POOL__DATABASE__HOST"].as_str();
        match name.as_str() {
            "api" => assert_eq!(host, Some("${API_DATABASE_HOST:-postgres}")),
            "dvm" => assert_eq!(host, Some("${DVM_DATABASE_HOST:-postgres}")),
            _ => assert!(host.is_none_or(|h| h == "postgres"), "{name}: {host:?}"),
        }
    }
    let env_example = std::fs::read_to_string(dir.join(".env.example")).unwrap();
    for line in [
        "\nDB_REPLICATION_PASSWORD=\n",
        "\n# API_DATABASE_HOST=postgres\n",
        "\n# DVM_DATABASE_HOST=postgres\n",
        "\n# POSTGRES_STANDBY_PORT=5433\n",
    ] {
        assert!(env_example.contains(line), ".env.example lacks {line:?}");
    }

    // docker-compose's own validation, with and without the profile, when it is installed.
    let filled: String = env_example
        .lines()
        .map(|l| match l.strip_suffix('=') {
            Some(name) if name.ends_with("PASSWORD") || name.ends_with("PRIVATE_KEY") => {
                format!("{name}=ci-placeholder\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    let env_file =
        std::env::temp_dir().join(format!("bigbrotr-standby-env-{}", std::process::id()));
    std::fs::write(&env_file, filled).unwrap();
    for profile in [None, Some("standby")] {
        let mut command = std::process::Command::new("docker-compose");
        command.current_dir(&dir).arg("--env-file").arg(&env_file);
        if let Some(profile) = profile {
            command.args(["--profile", profile]);
        }
        match command.args(["config", "-q"]).output() {
            Ok(output) => assert!(
                output.status.success(),
                "docker-compose config ({profile:?}): {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) => {
                eprintln!("docker-compose not run ({error}): scripts/check-ops.sh validates");
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&env_file);
}

/// The refresher's compose service: its binary and role, straight to postgres (a refresh may
/// outlast PgBouncer's query_timeout), metrics on port 8005 / 9005, a 30 s stop.
fn check_refresher_service(path: &Path, variant: &str, service: &Value, port: u16) {
    let at = format!("{}: refresher", path.display());
    assert_eq!(strings(&service["command"]), ["bigbrotr-refresher"], "{at}");
    assert!(
        deployments().join("../crates/bigbrotr-refresher").is_dir(),
        "{at}: no crate"
    );
    assert_eq!(
        service["container_name"].as_str(),
        Some(format!("{variant}-refresher").as_str()),
        "{at}"
    );
    assert_eq!(service["restart"].as_str(), Some("unless-stopped"), "{at}");
    assert_eq!(service["stop_grace_period"].as_str(), Some("30s"), "{at}");
    let published = format!("127.0.0.1:${{REFRESHER_METRICS_PORT:-{port}}}:8000");
    assert_eq!(strings(&service["ports"]), [published.as_str()], "{at}");
    let health = strings(&service["healthcheck"]["test"]).join(" ");
    assert!(health.contains("GET /health"), "{at}: {health}");
    let env = &service["environment"];
    assert_eq!(
        env["BIGBROTR_BROTR__POOL__DATABASE__HOST"].as_str(),
        Some("postgres"),
        "{at}: direct to postgres, not pgbouncer"
    );
    assert_eq!(
        env["BIGBROTR_BROTR__POOL__DATABASE__PORT"].as_str(),
        Some("5432"),
        "{at}"
    );
    assert!(
        env["DB_REFRESHER_PASSWORD"]
            .as_str()
            .is_some_and(|v| v.starts_with("${DB_REFRESHER_PASSWORD:?")),
        "{at}: the refresher password, required"
    );
    assert!(
        env.get("DB_WRITER_PASSWORD").is_none(),
        "{at}: no writer password"
    );
    assert!(env.get("NOSTR_PRIVATE_KEY").is_none(), "{at}: no key");
    assert_eq!(
        condition(service, "migrate"),
        Some("service_completed_successfully"),
        "{at}"
    );
    assert_eq!(
        condition(service, "postgres"),
        Some("service_healthy"),
        "{at}"
    );
    assert_eq!(
        condition(service, "pgbouncer"),
        None,
        "{at}: does not use it"
    );
    assert_eq!(condition(service, "tor"), None, "{at}");
    let volumes = strings(&service["volumes"]);
    assert!(volumes.contains(&"./config:/app/config:ro"), "{at}");
    assert!(!volumes.iter().any(|v| v.contains("/app/static")), "{at}");
}

#[test]
fn systemd_units_run_every_daemon_and_let_only_the_monitor_write_static() {
    let systemd = deployments().join("systemd");
    let template = std::fs::read_to_string(systemd.join("bigbrotr@.service")).unwrap();
    assert!(template.contains("\nExecStart=/usr/local/bin/bigbrotr-%i\n"));
    assert!(template.contains("\nWorkingDirectory=/etc/bigbrotr\n"));
    assert!(template.contains("\nProtectSystem=strict\n"));
    assert!(template.contains("\nTimeoutStopSec=60s\n"));
    assert!(template.contains("\nEnvironmentFile=-/etc/bigbrotr/%i.env\n"));
    assert!(
        !template.contains("ReadWritePaths"),
        "only the monitor's drop-in"
    );
    for (name, _) in DAEMONS {
        assert!(
            template.contains(name),
            "bigbrotr@.service does not list {name}"
        );
    }
    let drop_in =
        std::fs::read_to_string(systemd.join("bigbrotr@monitor.service.d/10-static-rw.conf"))
            .unwrap();
    let lines: Vec<&str> = drop_in
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .collect();
    assert_eq!(lines, ["[Service]", "ReadWritePaths=/etc/bigbrotr/static"]);
    // The refresher: straight to PostgreSQL (port 5432; the host is brotr.yaml's) and the 30 s
    // stop of the compose deployments, nothing writable.
    assert!(template.contains("refresher"));
    let drop_in = std::fs::read_to_string(
        systemd.join("bigbrotr@refresher.service.d/10-direct-postgres.conf"),
    )
    .unwrap();
    let lines: Vec<&str> = drop_in
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .collect();
    assert_eq!(
        lines,
        [
            "[Service]",
            "Environment=BIGBROTR_BROTR__POOL__DATABASE__PORT=5432",
            "TimeoutStopSec=30s"
        ]
    );
    // The monitor's default GeoLite paths resolve there from WorkingDirectory=/etc/bigbrotr.
    let geo = MonitorConfig::default().geo;
    assert!(geo.city_database_path.starts_with("static/"));
    assert!(geo.asn_database_path.starts_with("static/"));
    let readme = std::fs::read_to_string(systemd.join("README.md")).unwrap();
    assert!(readme.contains("bigbrotr@monitor.service.d/10-static-rw.conf"));
    assert!(readme.contains("systemctl enable --now bigbrotr@monitor.service"));
    assert!(readme.contains("bigbrotr@refresher.service.d/10-direct-postgres.conf"));
    assert!(readme.contains("systemctl enable --now bigbrotr@refresher.service"));
}

/// Every continuous daemon the template runs, compose's metrics port order.
const SYSTEMD_DAEMONS: [&str; 7] = [
    "finder",
    "validator",
    "monitor",
    "synchronizer",
    "refresher",
    "api",
    "dvm",
];

/// The lines of a unit file or drop-in that are neither comments nor blank.
fn unit_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The `Environment=NAME=VALUE` settings of unit lines.
fn unit_environment(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|line| line.strip_prefix("Environment="))
        .map(|setting| {
            let (name, value) = setting.split_once('=').unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// `yaml` with the `BIGBROTR_SERVICE__A__B=value` overrides of `environment` applied as the
/// loader applies them (levels split on `__`, lower-cased).
fn with_service_overrides(mut yaml: Value, environment: &[(String, String)]) -> Value {
    for (name, value) in environment {
        let Some(path) = name.strip_prefix("BIGBROTR_SERVICE__") else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        let mut node = &mut yaml;
        for key in &keys[..keys.len() - 1] {
            node = node
                .as_object_mut()
                .unwrap()
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        node.as_object_mut()
            .unwrap()
            .insert(keys[keys.len() - 1].clone(), Value::String(value.clone()));
    }
    yaml
}

#[test]
fn systemd_units_restart_for_ever_listen_on_loopback_and_run_every_daemon() {
    let systemd = deployments().join("systemd");
    let template_lines = unit_lines(&systemd.join("bigbrotr@.service"));
    let has = |lines: &[String], line: &str| lines.iter().any(|l| l == line);
    // No start rate limit: a PostgreSQL outage of any length ends with the daemons running.
    for line in [
        "StartLimitIntervalSec=0",
        "Restart=on-failure",
        "RestartSec=10s",
        "Environment=BIGBROTR_SERVICE__METRICS__HOST=127.0.0.1",
    ] {
        assert!(has(&template_lines, line), "bigbrotr@.service: {line}");
    }
    assert!(
        !template_lines
            .iter()
            .any(|l| l.starts_with("StartLimitBurst=")),
        "bigbrotr@.service: a start limit leaves units failed for good"
    );
    let migrate = unit_lines(&systemd.join("bigbrotr-migrate.service"));
    for line in ["StartLimitIntervalSec=0", "Restart=on-failure"] {
        assert!(has(&migrate, line), "bigbrotr-migrate.service: {line}");
    }
    // Keys of systemd 254 and newer, in a drop-in of their own (the README installs it there).
    assert_eq!(
        unit_lines(&systemd.join("bigbrotr@.service.d/20-restart-backoff.conf")),
        ["[Service]", "RestartSteps=5", "RestartMaxDelaySec=5min"]
    );
    let api = unit_lines(&systemd.join("bigbrotr@api.service.d/10-api.conf"));
    assert_eq!(
        api,
        [
            "[Service]",
            "Environment=BIGBROTR_SERVICE__HOST=127.0.0.1",
            "TimeoutStopSec=30s"
        ]
    );
    assert_eq!(
        unit_lines(&systemd.join("bigbrotr@dvm.service.d/10-dvm.conf")),
        ["[Service]", "TimeoutStopSec=30s"]
    );
    // Every daemon: named by the template, installed and started by the README, verified by
    // check-ops.sh.
    let template = std::fs::read_to_string(systemd.join("bigbrotr@.service")).unwrap();
    let readme = std::fs::read_to_string(systemd.join("README.md")).unwrap();
    let check_ops = std::fs::read_to_string(deployments().join("../scripts/check-ops.sh")).unwrap();
    assert!(readme.contains("for daemon in monitor refresher api dvm; do"));
    assert!(readme.contains("bigbrotr@.service.d/20-restart-backoff.conf"));
    assert!(check_ops.contains(&format!("daemons=({})", SYSTEMD_DAEMONS.join(" "))));
    for (offset, daemon) in (8001..).zip(SYSTEMD_DAEMONS) {
        assert!(template.contains(daemon), "bigbrotr@.service: {daemon}");
        for needed in [format!("bigbrotr@{daemon}"), format!("{daemon} {offset}")] {
            assert!(readme.contains(&needed), "systemd README: {needed}");
        }
    }
    // The service files the README installs (the compose deployment's), as the units run them:
    // metrics on loopback, the API too, as reader with its password variable.
    let mut environment = unit_environment(&template_lines);
    let services = deployments().join("bigbrotr/config/services");
    for name in [
        "finder",
        "validator",
        "synchronizer",
        "refresher",
        "monitor",
    ] {
        let path = services.join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let yaml = with_service_overrides(config::parse_yaml(&text, &path).unwrap(), &environment);
        let origin = path.display().to_string();
        let (unknown, host) = match name {
            "finder" => {
                let l = load::<FinderConfig>(yaml, &origin);
                (l.unknown_keys, l.config.base.metrics.host)
            }
            "validator" => {
                let l = load::<ValidatorConfig>(yaml, &origin);
                (l.unknown_keys, l.config.base.metrics.host)
            }
            "synchronizer" => {
                let l = load::<SynchronizerConfig>(yaml, &origin);
                (l.unknown_keys, l.config.base.metrics.host)
            }
            "refresher" => {
                let l = load::<RefresherConfig>(yaml, &origin);
                (l.unknown_keys, l.config.base.metrics.host)
            }
            _ => {
                let l = load::<MonitorConfig>(yaml, &origin);
                (l.unknown_keys, l.config.base.metrics.host)
            }
        };
        assert!(unknown.is_empty(), "{origin}: {unknown:?}");
        assert_eq!(host, "127.0.0.1", "{origin} under systemd");
    }
    environment.extend(unit_environment(&api));
    let path = services.join("api.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let yaml = with_service_overrides(config::parse_yaml(&text, &path).unwrap(), &environment);
    let loaded = load::<ApiConfig>(yaml, &path.display().to_string());
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    let c = &loaded.config;
    assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8080));
    assert_eq!(c.base.metrics.host, "127.0.0.1");
    assert_eq!(c.base.pool.user.as_deref(), Some("reader"));
    assert_eq!(
        c.base.pool.password_env.as_deref(),
        Some("DB_READER_PASSWORD")
    );
    let env_example = std::fs::read_to_string(systemd.join("bigbrotr.env.example")).unwrap();
    assert!(env_example.contains("\nDB_READER_PASSWORD=\n"));
}

/// The service files `scripts/run-local.sh` writes (`cat >"$config_dir/services/<name>.yaml"
/// <<YAML ... YAML`), with `$root` standing for the repository.
fn run_local_configs() -> Vec<(String, Value)> {
    let repository = deployments().join("..");
    let path = repository.join("scripts/run-local.sh");
    let script = std::fs::read_to_string(&path).unwrap();
    let root = repository.display().to_string();
    let mut configs = Vec::new();
    let mut lines = script.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("cat >\"$config_dir/services/") else {
            continue;
        };
        let name = rest.split_once(".yaml\"").unwrap().0.to_owned();
        let body: Vec<String> = lines
            .by_ref()
            .take_while(|line| *line != "YAML")
            .map(|line| line.replace("$root", &root))
            .collect();
        configs.push((name, config::parse_yaml(&body.join("\n"), &path).unwrap()));
    }
    configs
}

#[test]
fn run_local_configs_load_and_the_local_monitor_publishes_nothing() {
    let script = std::fs::read_to_string(deployments().join("../scripts/run-local.sh")).unwrap();
    for needed in [
        "-p bigbrotr-refresher",
        "-p bigbrotr-api",
        "-p bigbrotr-dvm",
        "for daemon in finder validator monitor synchronizer refresher api dvm; do",
        "key=(\"${reader_user[@]}\" NOSTR_PRIVATE_KEY=\"$dvm_key\")",
        "reader_user=(BIGBROTR_SERVICE__POOL__USER=reader)",
        "refresher_user=(BIGBROTR_SERVICE__POOL__USER=refresher)",
    ] {
        assert!(script.contains(needed), "run-local.sh: {needed}");
    }
    let configs = run_local_configs();
    let names: Vec<&str> = configs.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "seeder",
            "finder",
            "validator",
            "monitor",
            "synchronizer",
            "refresher",
            "api",
            "dvm"
        ]
    );
    for (name, yaml) in configs {
        let origin = format!("run-local.sh: {name}.yaml");
        let unknown = match name.as_str() {
            "seeder" => load::<SeederConfig>(yaml, &origin).unknown_keys,
            "finder" => load::<FinderConfig>(yaml, &origin).unknown_keys,
            "validator" => load::<ValidatorConfig>(yaml, &origin).unknown_keys,
            "synchronizer" => load::<SynchronizerConfig>(yaml, &origin).unknown_keys,
            "refresher" => {
                let loaded = load::<RefresherConfig>(yaml, &origin);
                assert_eq!(loaded.config.base.metrics.port, 8005);
                assert_eq!(loaded.config.base.pool.max_size, Some(2));
                assert_eq!(loaded.config.base.interval, 60.0);
                assert_eq!(loaded.config.refresh, RefresherConfig::default().refresh);
                loaded.unknown_keys
            }
            "monitor" => {
                let loaded = load::<MonitorConfig>(yaml, &origin);
                let c = &loaded.config;
                assert_eq!(c.base.metrics.port, 8003);
                assert!(!c.networks.tor.enabled);
                for enabled in [
                    c.discovery.enabled,
                    c.announcement.enabled,
                    c.profile.enabled,
                    c.relay_list.enabled,
                ] {
                    assert!(!enabled, "{origin}: a throwaway key publishes nothing");
                }
                for file in [&c.geo.city_database_path, &c.geo.asn_database_path] {
                    assert!(file.contains("/.data/geoip/"), "{origin}: {file}");
                }
                loaded.unknown_keys
            }
            "api" => {
                let loaded = load::<ApiConfig>(yaml, &origin);
                let c = &loaded.config;
                assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8080));
                assert_eq!(c.base.metrics.port, 8006);
                // Every statistics object and table of the schema, read-only.
                for table in bigbrotr_db::migrate::STATISTICS_OBJECTS.iter().chain(&[
                    "relay",
                    "metadata",
                    "relay_metadata",
                    "event",
                    "event_relay",
                ]) {
                    assert!(
                        c.tables.get(*table).is_some_and(|t| t.enabled),
                        "{origin}: {table}"
                    );
                }
                loaded.unknown_keys
            }
            "dvm" => {
                let loaded = load::<DvmConfig>(yaml, &origin);
                let c = &loaded.config;
                assert!(!c.announce, "{origin}: a throwaway key announces nothing");
                assert_eq!(c.base.metrics.port, 8007);
                assert!(c.limits.workers <= c.base.pool.max_size.unwrap_or(5) as usize);
                loaded.unknown_keys
            }
            other => panic!("run-local.sh writes an unexpected {other}.yaml"),
        };
        assert!(unknown.is_empty(), "{origin}: unknown keys {unknown:?}");
    }
}

fn load<T>(yaml: Value, origin: &str) -> Loaded<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Default + Validate,
{
    config::load_value(yaml, true, "BIGBROTR_TEST_UNUSED_PREFIX__", origin)
        .unwrap_or_else(|e| panic!("{origin}: {}", e.0))
}

/// Memory a PostgreSQL backend holds besides `work_mem` (catalog, relation and plan caches), MiB.
const BACKEND_MIB: u64 = 10;
/// Shared memory besides the buffers (locks, pg_stat_statements, ...) and the background
/// processes, MiB.
const SERVER_MIB: u64 = 64;

/// The settings of a `postgresql.conf` (`name = value`, comments and quotes removed).
fn postgresql_conf(path: &Path) -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut settings = std::collections::HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{}: {line}", path.display()));
        let value = value.trim();
        let value = match value.strip_prefix('\'') {
            Some(quoted) => quoted.split_once('\'').unwrap().0,
            None => value.split('#').next().unwrap().trim(),
        };
        let previous = settings.insert(name.trim().to_owned(), value.to_owned());
        assert!(previous.is_none(), "{}: {name} set twice", path.display());
    }
    settings
}

/// A PostgreSQL memory setting in MiB; the unit must be written out (`kB`, `MB`, `GB`).
fn postgres_mib(settings: &std::collections::HashMap<String, String>, name: &str) -> u64 {
    let value = settings
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not set"));
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let number: u64 = value[..split].parse().unwrap();
    match &value[split..] {
        "kB" => number.div_ceil(1024),
        "MB" => number,
        "GB" => number * 1024,
        unit => panic!("{name} = {value}: write the unit (kB, MB or GB), not {unit:?}"),
    }
}

/// A compose memory size (`512M`, `4G`, `2gb`) in MiB.
fn compose_mib(value: &str) -> u64 {
    let lower = value.to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let number: u64 = lower[..split].parse().unwrap();
    match &lower[split..] {
        "k" => number.div_ceil(1024),
        "m" => number,
        "g" => number * 1024,
        unit => panic!("compose memory {value}: unit {unit:?}"),
    }
}

/// The most PostgreSQL holds at once by `postgresql.conf`, in MiB, with the terms the README
/// shows: shared memory, one `work_mem` per connection and parallel worker, the autovacuum
/// workers, and one index build or manual VACUUM.
fn postgres_budget(settings: &std::collections::HashMap<String, String>) -> [u64; 5] {
    let count = |name: &str| -> u64 {
        settings
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not set"))
            .parse()
            .unwrap()
    };
    let maintenance = postgres_mib(settings, "maintenance_work_mem");
    let autovacuum = match settings.get("autovacuum_work_mem").map(String::as_str) {
        None | Some("-1") => maintenance,
        Some(_) => postgres_mib(settings, "autovacuum_work_mem"),
    };
    let shared = postgres_mib(settings, "shared_buffers")
        + postgres_mib(settings, "wal_buffers")
        + SERVER_MIB;
    let backends = (count("max_connections") + count("max_parallel_workers"))
        * (postgres_mib(settings, "work_mem") + BACKEND_MIB);
    let vacuum = count("autovacuum_max_workers") * autovacuum;
    [
        shared,
        backends,
        vacuum,
        maintenance,
        shared + backends + vacuum + maintenance,
    ]
}

#[test]
fn postgres_memory_fits_the_container_limit_as_documented() {
    let readme = std::fs::read_to_string(deployments().join("bigbrotr/README.md")).unwrap();
    for (variant, limit) in [("bigbrotr", 4096), ("lilbrotr", 2048)] {
        let dir = deployments().join(variant);
        let conf = dir.join("postgres/postgresql.conf");
        assert!(
            !conf.symlink_metadata().unwrap().is_symlink(),
            "{}: each deployment has its own sizing",
            conf.display()
        );
        let settings = postgresql_conf(&conf);
        let path = dir.join("docker-compose.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let compose = merged(config::parse_yaml(&text, &path).unwrap());
        let memory = compose["services"]["postgres"]["deploy"]["resources"]["limits"]["memory"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: postgres has no memory limit", path.display()));
        assert_eq!(compose_mib(memory), limit, "{}", path.display());
        let [shared, backends, vacuum, maintenance, budget] = postgres_budget(&settings);
        let at = format!("{variant}: {shared} + {backends} + {vacuum} + {maintenance} MiB");
        assert!(
            budget <= limit,
            "{at} = {budget} MiB over the {limit} MiB limit"
        );
        // The planner's cache cannot be larger than what the container may hold.
        assert!(
            postgres_mib(&settings, "effective_cache_size") <= limit,
            "{at}: effective_cache_size above the limit"
        );
        // The README's arithmetic is this file's: every term and the total.
        for figure in [shared, backends, vacuum, maintenance] {
            assert!(readme.contains(&format!("= {figure} |")), "{at}: README");
        }
        let total = format!("**{budget} MiB of {limit} MiB**");
        assert!(readme.contains(&total), "{at}: README lacks {total}");
        // So is the comment above the memory settings.
        let comment = format!("budget {budget} MiB of the container's {limit} MiB");
        assert!(
            std::fs::read_to_string(&conf).unwrap().contains(&comment),
            "{at}: {} lacks {comment:?}",
            conf.display()
        );
    }
    // The refresher and API benchmarks run with BigBrotr's memory settings.
    let makefile = std::fs::read_to_string(deployments().join("../Makefile")).unwrap();
    let settings = postgresql_conf(&deployments().join("bigbrotr/postgres/postgresql.conf"));
    for name in [
        "shared_buffers",
        "effective_cache_size",
        "work_mem",
        "maintenance_work_mem",
    ] {
        let option = format!("-c {name}={}", settings[name]);
        assert!(makefile.contains(&option), "Makefile lacks {option}");
    }
}
