//! Reads on standbys (issue 17): a primary and a streaming standby started by the test (initdb,
//! the `replicator` role made by the real `bigbrotr-migrate` from `DB_REPLICATION_PASSWORD`,
//! `pg_basebackup -R` over a replication connection that checks that password, a hot standby on
//! a socket of its own). Data written on the primary is replayed; then the real `bigbrotr-api` on
//! the standby answers as it does on the primary (lists, a keyset page, a lookup, statistics
//! objects) and says in `/health` and its gauge that it is a standby and how far behind; the real
//! `bigbrotr-dvm` answers a job there; every writer binary and `bigbrotr-migrate` refuse the
//! standby with an error naming it (the seeder runs on the primary with the same files); with the
//! primary gone the lag grows and `/health` turns degraded past `max_replay_lag`.
//!
//! These clusters are the test's own (not `BIGBROTR_TEST_DATABASE_URL`'s): Unix sockets only,
//! stopped and removed on drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bigbrotr_db::Brotr;
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_models::metadata::MetadataType;
use bigbrotr_models::relay::Relay;
use bigbrotr_testkit::relays::{TestCa, TestRelay, TlsFront};
use bigbrotr_testkit::socks::SocksProxy;
use bigbrotr_utils::network::NetworksConfig;
use bigbrotr_utils::relay::Connector;
use nostr::{EventBuilder, Filter, Keys, Kind, Tag};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};

use crate::api::{enc, get, request, start_with};
use crate::dbkit::{doc, ev, insert_events, insert_relay, link, refresh_all, snapshot};

const REPLICATION_PASSWORD: &str = "standby-test-replication-secret";
const PRIMARY_PORT: u16 = 5432;
const STANDBY_PORT: u16 = 5433;
const DATABASE: &str = "bigbrotr";
const WRITERS: [&str; 6] = [
    "seeder",
    "finder",
    "validator",
    "monitor",
    "synchronizer",
    "refresher",
];

/// The newest installed PostgreSQL's binaries (as `tests/pg-cluster.sh` picks them).
fn bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|bin| bin.join("initdb").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|dir| {
        dir.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = dirs.pop() {
        return dir;
    }
    let output = Command::new("pg_config").arg("--bindir").output().unwrap();
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// initdb and pg_ctl refuse root: as root, clusters belong to `postgres`.
fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// `program args…` as the clusters' owner.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run_ok(mut command: Command, what: &str) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A primary and (once made) its standby under one directory: stopped (standby first) and
/// removed on drop.
struct Clusters {
    root: PathBuf,
    bin: PathBuf,
    running: Vec<PathBuf>,
}

impl Clusters {
    fn new() -> Self {
        let root = std::env::temp_dir().join(format!(
            "bigbrotr-standby-{}-{:08x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        ));
        std::fs::create_dir_all(&root).unwrap();
        if is_root() {
            run_ok(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:").arg(&root);
                    c
                },
                "chown",
            );
        }
        Self {
            root,
            bin: bindir(),
            running: Vec::new(),
        }
    }

    fn data(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn start(&mut self, name: &str, port: u16) {
        let data = self.data(name);
        let mut pg_ctl = as_owner(&self.bin.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(self.root.join(format!("{name}.log")))
            .args(["-w", "-t", "60", "start", "-o"])
            .arg(format!(
                "-c listen_addresses= -c unix_socket_directories={} -c port={port} \
                 -c fsync=off -c synchronous_commit=off -c max_connections=40 \
                 -c shared_buffers=32MB",
                self.root.display()
            ));
        let output = pg_ctl.output().unwrap();
        if !output.status.success() {
            let log = std::fs::read_to_string(self.root.join(format!("{name}.log")));
            panic!("{name} did not start: {output:?}\n{log:?}");
        }
        self.running.push(data);
    }

    fn stop(&mut self, name: &str) {
        let data = self.data(name);
        let mut pg_ctl = as_owner(&self.bin.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(&data)
            .args(["-m", "fast", "-w", "stop"]);
        run_ok(pg_ctl, "pg_ctl stop");
        self.running.retain(|d| *d != data);
    }

    fn options(&self, port: u16, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .socket(&self.root)
            .port(port)
            .username("postgres")
            .database(database)
            .disable_statement_logging()
    }

    /// A `brotr.yaml` for the daemons: the cluster at `port`, as the superuser, no password.
    fn brotr_config(&self, port: u16) -> BrotrConfig {
        let mut config = BrotrConfig::default();
        let db = &mut config.pool.database;
        db.host = self.root.display().to_string();
        db.port = port;
        db.database = DATABASE.into();
        db.user = "postgres".into();
        db.password_env = String::new();
        config
    }

    /// A file under the clusters' directory, readable by every process of the test.
    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.root.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Clusters {
    fn drop(&mut self) {
        for data in self.running.iter().rev() {
            let _ = as_owner(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(data)
                .args(["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The workspace binary `name` (built before the tests, like the API's).
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p {name}` (make test does)",
        path.display()
    );
    path
}

/// Runs a one-shot binary to its end (bounded: every run here stops within seconds).
fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Rows on the primary: relays (one with a path), events with tags and their sightings, NIP-11
/// documents, refreshed statistics.
async fn populate(pool: &PgPool) {
    let relays = [
        "wss://relay.damus.io",
        "wss://nos.lol",
        "wss://relay.example.com/inbox",
    ];
    for (i, url) in relays.iter().enumerate() {
        insert_relay(pool, url, "clearnet", 1_700_000_000 + i as i64).await;
    }
    let events: Vec<_> = (0..12u32)
        .map(|n| {
            ev(
                n,
                (n % 3) as u8 + 1,
                1_700_000_000 + i64::from(n) * 600,
                [1, 7, 0][n as usize % 3],
                json!([["t", format!("topic{}", n % 2)]]),
            )
        })
        .collect();
    insert_events(pool, &events).await;
    let refs: Vec<_> = events.iter().collect();
    link(pool, &refs[..8], relays[0], 1_700_500_000).await;
    link(pool, &refs[4..], relays[2], 1_700_600_000).await;
    let nip11 = doc(
        MetadataType::Nip11Info,
        json!({"name": "Damus", "software": "strfry", "supported_nips": [1, 11]}),
    );
    snapshot(pool, relays[0], "clearnet", &nip11, 1_700_003_600).await;
    refresh_all(&Brotr::from_pool(pool.clone(), BrotrConfig::default())).await;
}

/// The tables both APIs and the DVM serve.
fn tables() -> Value {
    json!({
        "relay": {"enabled": true},
        "event": {"enabled": true},
        "relay_metadata": {"enabled": true},
        "kind_counts": {"enabled": true},
        "relay_stats": {"enabled": true},
    })
}

/// `service_gauge{service,name="database_replay_lag_seconds"}` from a metrics page.
fn lag_gauge(metrics: &str, service: &str) -> f64 {
    let prefix =
        format!(r#"service_gauge{{service="{service}",name="database_replay_lag_seconds"}} "#);
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix}in\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

/// A running `bigbrotr-dvm`, killed on drop.
struct DvmProcess {
    child: Child,
    metrics: u16,
}

impl Drop for DvmProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DVM binary on `brotr` (as `reader`) with `service` as its `dvm.yaml`, once subscribed.
fn start_dvm(clusters: &Clusters, brotr: &Path, service: Value, key: &Keys) -> DvmProcess {
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut service = service;
    service["metrics"] = json!({"enabled": true, "host": "127.0.0.1", "port": metrics});
    let path = clusters.write("dvm.yaml", &service.to_string());
    let mut child = Command::new(binary("bigbrotr-dvm"))
        .arg("--config")
        .arg(&path)
        .arg("--brotr-config")
        .arg(brotr)
        .env(
            "BIGBROTR_STANDBY_TEST_DVM_KEY",
            key.secret_key().to_secret_hex(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the DVM did not subscribe; its output: {seen:#?}");
        };
        if line.contains("relay_subscribed") {
            // Keep draining its output.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return DvmProcess { child, metrics };
        }
        seen.push(line);
    }
}

// Two workers: the relay, its TLS front and the SOCKS proxy serve the DVM while the test waits
// for it synchronously.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_side_runs_on_a_standby_and_writers_refuse_it() {
    let started = Instant::now();
    let mut clusters = Clusters::new();

    // The primary: replication connections of `replicator` must give its password.
    let mut initdb = as_owner(&clusters.bin.join("initdb"));
    initdb.arg("-D").arg(clusters.data("primary")).args([
        "-U",
        "postgres",
        "--auth=trust",
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
    ]);
    run_ok(initdb, "initdb");
    clusters.write(
        "primary/pg_hba.conf",
        "local replication replicator scram-sha-256\n\
         local replication all trust\n\
         local all all trust\n",
    );
    clusters.start("primary", PRIMARY_PORT);
    let mut admin = PgConnection::connect_with(&clusters.options(PRIMARY_PORT, "postgres"))
        .await
        .unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();

    // The schema step, as an operator runs it, also makes the replication role.
    let primary_yaml = clusters.write(
        "primary.yaml",
        &serde_json::to_string(&clusters.brotr_config(PRIMARY_PORT)).unwrap(),
    );
    let output = run(Command::new(binary("bigbrotr-migrate"))
        .arg("--brotr-config")
        .arg(&primary_yaml)
        .env("DB_REPLICATION_PASSWORD", REPLICATION_PASSWORD));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("replication_role_set"), "{stderr}");
    let primary = PgPoolOptions::new()
        .max_connections(3)
        .connect_with(clusters.options(PRIMARY_PORT, DATABASE))
        .await
        .unwrap();
    let (login, replication): (bool, bool) = sqlx::query_as(
        "SELECT rolcanlogin, rolreplication FROM pg_roles WHERE rolname = 'replicator'",
    )
    .fetch_one(&primary)
    .await
    .unwrap();
    assert!(login && replication);
    // Run again (the role exists): its password is set again, not an error.
    bigbrotr_db::replication::ensure_replication_role(&primary, "replicator", REPLICATION_PASSWORD)
        .await
        .unwrap();
    populate(&primary).await;

    // The standby: a base backup with -R (it records how to reach the primary), then hot.
    let mut basebackup = as_owner(Path::new("/usr/bin/env"));
    basebackup
        .arg(format!("PGPASSWORD={REPLICATION_PASSWORD}"))
        .arg(clusters.bin.join("pg_basebackup"))
        .arg("-h")
        .arg(&clusters.root)
        .arg("-p")
        .arg(PRIMARY_PORT.to_string())
        .args(["-U", "replicator", "-R", "-X", "stream", "-c", "fast", "-D"])
        .arg(clusters.data("standby"));
    run_ok(basebackup, "pg_basebackup");
    clusters.start("standby", STANDBY_PORT);
    let standby = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(clusters.options(STANDBY_PORT, DATABASE))
        .await
        .unwrap();

    // A write after the backup reaches the standby by streaming.
    insert_relay(
        &primary,
        "wss://after.example.com",
        "clearnet",
        1_700_900_000,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let replayed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM relay WHERE url = 'wss://after.example.com')",
        )
        .fetch_one(&standby)
        .await
        .unwrap();
        if replayed {
            break;
        }
        assert!(Instant::now() < deadline, "the standby never replayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&standby)
        .await
        .unwrap();
    assert!(in_recovery);
    let replicated_at = Instant::now();

    // The API on each: the same answers.
    let api_primary = start_with(
        &clusters.brotr_config(PRIMARY_PORT),
        json!({"tables": tables()}),
    );
    let api_standby = start_with(
        &clusters.brotr_config(STANDBY_PORT),
        json!({"tables": tables(), "max_replay_lag": 1.0}),
    );
    let (p, s) = (api_primary.address, api_standby.address);
    let first = get(p, "/v1/relay?limit=2&sort=url:asc").await;
    assert_eq!(first.0, 200, "{first:?}");
    let cursor = first.1["meta"]["next_cursor"].as_str().unwrap().to_owned();
    let targets = [
        "/v1/schema".to_owned(),
        "/v1/schema/relay".to_owned(),
        "/v1/relay?sort=url:asc".to_owned(),
        "/v1/relay?limit=2&sort=url:asc".to_owned(),
        format!("/v1/relay?limit=2&sort=url:asc&cursor={cursor}"),
        format!("/v1/relay/{}", enc("wss://relay.example.com/inbox")),
        "/v1/event?sort=created_at:desc&limit=5&kind=1".to_owned(),
        "/v1/relay_metadata?limit=10".to_owned(),
        "/v1/kind_counts?sort=kind:asc".to_owned(),
        "/v1/relay_stats".to_owned(),
        "/v1/relay/wss%3A%2F%2Fnowhere.example.com".to_owned(),
    ];
    let mut standby_relays = None;
    for target in &targets {
        let on_primary = get(p, target).await;
        let on_standby = get(s, target).await;
        assert_eq!(on_standby, on_primary, "{target}");
        if target == "/v1/relay?sort=url:asc" {
            standby_relays = Some(on_standby.clone());
        }
        if !target.contains("nowhere") {
            assert_eq!(on_primary.0, 200, "{target}: {on_primary:?}");
            let data = &on_primary.1["data"];
            assert!(
                data.as_array().is_none_or(|rows| !rows.is_empty()),
                "{target}: rows"
            );
        }
    }

    // /health: 6.6.9's status plus where the database stands; the gauge says it too.
    assert_eq!(
        get(p, "/health").await,
        (
            200,
            json!({"status": "ok", "database": {"standby": false, "replay_lag_seconds": null}})
        )
    );
    let (status, health) = get(s, "/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"]["standby"], true);
    let lag = health["database"]["replay_lag_seconds"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&lag), "{health}");
    let (_, _, metrics) = request(api_primary.metrics, "GET", "/metrics", "").await;
    assert_eq!(lag_gauge(&metrics, "api"), -1.0, "a primary");
    let (_, _, metrics) = request(api_standby.metrics, "GET", "/metrics", "").await;
    let gauge = lag_gauge(&metrics, "api");
    assert!((0.0..1.0).contains(&gauge), "{gauge}");

    // The DVM on the standby answers a job with the primary's rows.
    let relay = TestRelay::start().await;
    let ca = TestCa::new();
    let host = "standby-dvm.example.com";
    let front = TlsFront::start(ca.server_config(&[host]), relay.address()).await;
    let socks = SocksProxy::start(HashMap::from([(host.to_owned(), front.address())])).await;
    let standby_yaml = clusters.write(
        "standby.yaml",
        &serde_json::to_string(&clusters.brotr_config(STANDBY_PORT)).unwrap(),
    );
    let dvm_keys = Keys::generate();
    let dvm = start_dvm(
        &clusters,
        &standby_yaml,
        json!({
            "relays": [format!("wss://{host}")],
            "networks": {"clearnet": {"proxy_url": socks.url()}},
            "allow_insecure": true,
            "announce": false,
            "fetch_timeout": 5,
            "keys_env": "BIGBROTR_STANDBY_TEST_DVM_KEY",
            "pool": {"user": "reader", "min_size": 1, "max_size": 4},
            "tables": tables(),
        }),
        &dvm_keys,
    );
    let mut networks = NetworksConfig::default();
    networks.clearnet.timeout = 5.0;
    networks.clearnet.allow_private = true;
    let customer = Keys::generate();
    let client = Connector::new(networks)
        .unwrap()
        .with_root_certificate(ca.der())
        .unwrap()
        .resolve(host, front.address())
        .with_keys(Some(customer.clone()))
        .connect(&Relay::new(&format!("wss://{host}"), 0).unwrap())
        .await
        .unwrap();
    let tag = |values: &[&str]| Tag::parse(values.iter().map(|v| (*v).to_owned())).unwrap();
    let job = EventBuilder::new(Kind::from(5050), "")
        .tags([
            tag(&["param", "table", "relay"]),
            tag(&["param", "sort", "url:asc"]),
            tag(&["param", "limit", "10"]),
        ])
        .sign_with_keys(&customer)
        .unwrap();
    client.send(&job, Duration::from_secs(5)).await.unwrap();
    let filter = Filter::new()
        .author(dvm_keys.public_key())
        .kind(Kind::from(6050))
        .event(job.id);
    let deadline = Instant::now() + Duration::from_secs(10);
    let result = loop {
        let found = client
            .query(filter.clone(), Duration::from_secs(5))
            .await
            .unwrap();
        if let Some(event) = found.into_iter().next() {
            break event;
        }
        assert!(Instant::now() < deadline, "the DVM on the standby answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let content: Value = serde_json::from_str(&result.content).unwrap();
    let (_, listed) = get(p, "/v1/relay?sort=url:asc&limit=10").await;
    assert_eq!(content["data"], listed["data"], "the primary's rows");
    let (_, _, metrics) = request(
        std::net::SocketAddr::from(([127, 0, 0, 1], dvm.metrics)),
        "GET",
        "/metrics",
        "",
    )
    .await;
    let gauge = lag_gauge(&metrics, "dvm");
    assert!((0.0..1.0).contains(&gauge), "dvm: {gauge}");
    drop(dvm);

    // Every writer refuses the standby, naming it; migrate too (its --check only reads).
    let where_ = format!("at {}:{STANDBY_PORT}", clusters.root.display());
    let seed = clusters.write("seed.txt", "wss://seeded.example.com\n");
    for writer in WRITERS {
        // Nothing they could reach leaves loopback, were they to run (a dead proxy, the
        // overlays off), and the seeder has a file to load.
        let service = match writer {
            "seeder" => json!({"seed": {"file_path": seed}}),
            "refresher" => json!({}),
            _ => json!({"networks": {
                "clearnet": {"proxy_url": "socks5://127.0.0.1:9"},
                "tor": {"enabled": false},
                "i2p": {"enabled": false},
                "loki": {"enabled": false},
            }}),
        };
        let path = clusters.write(&format!("{writer}.yaml"), &service.to_string());
        let output = run(Command::new(binary(&format!("bigbrotr-{writer}")))
            .arg("--once")
            .arg("--config")
            .arg(&path)
            .arg("--brotr-config")
            .arg(&standby_yaml));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{writer}: {stderr}");
        assert!(
            stderr.contains("database_is_standby")
                && stderr.contains("is a read-only standby")
                && stderr.contains(&where_),
            "{writer}: {stderr}"
        );
        if writer == "seeder" {
            let line = stderr.lines().find(|l| l.contains("database_is_standby"));
            eprintln!("{}", line.unwrap_or_default());
        }
    }
    let output = run(Command::new(binary("bigbrotr-migrate"))
        .arg("--brotr-config")
        .arg(&standby_yaml));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "migrate: {stderr}");
    assert!(
        stderr.contains("is a read-only standby") && stderr.contains(&where_),
        "migrate: {stderr}"
    );
    let output = run(Command::new(binary("bigbrotr-migrate"))
        .arg("--check")
        .arg("--brotr-config")
        .arg(&standby_yaml));
    assert!(
        output.status.success(),
        "migrate --check reads only: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The same seeder files on the primary: it runs (the refusal was the standby's).
    let output = run(Command::new(binary("bigbrotr-seeder"))
        .arg("--once")
        .arg("--config")
        .arg(clusters.root.join("seeder.yaml"))
        .arg("--brotr-config")
        .arg(&primary_yaml));
    assert!(
        output.status.success(),
        "seeder on the primary: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The primary gone: the standby serves what it has, its lag grows past max_replay_lag and
    // /health says degraded (503), with the figure.
    primary.close().await;
    clusters.stop("primary");
    let deadline = Instant::now() + Duration::from_secs(15);
    let health = loop {
        let (status, health) = get(s, "/health").await;
        if status == 503 {
            break health;
        }
        assert_eq!(status, 200, "{health}");
        assert!(Instant::now() < deadline, "never degraded: {health}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["database"]["standby"], true, "{health}");
    let lag = health["database"]["replay_lag_seconds"].as_f64().unwrap();
    let since_write = replicated_at.elapsed().as_secs_f64();
    assert!(
        lag > 1.0 && lag < since_write + 5.0,
        "{lag} ({since_write} s since the write)"
    );
    assert_eq!(
        Some(get(s, "/v1/relay?sort=url:asc").await),
        standby_relays,
        "still serving"
    );
    let (_, _, metrics) = request(api_standby.metrics, "GET", "/metrics", "").await;
    assert!(lag_gauge(&metrics, "api") > 1.0);
    standby.close().await;
    drop(api_standby);
    drop(api_primary);
    eprintln!(
        "standby test: {:.1} s, replay lag reported after the primary stopped {lag:.3} s",
        started.elapsed().as_secs_f64()
    );
}
