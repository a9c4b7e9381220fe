//! The deployments' monitoring stack against running daemons: the daemon binaries (finder,
//! validator, monitor, synchronizer, refresher, api, dvm) run on a test database with their metrics on
//! loopback, the Debian `prometheus-postgres-exporter` reads that database as `reader` with the
//! deployments' `queries.yaml`, and the Debian `prometheus` scrapes them all with the
//! deployments' `prometheus.yml` and alert rules (targets and intervals rewritten for loopback).
//! Then every alert expression and every Grafana panel query is evaluated through Prometheus'
//! HTTP API:
//!
//! - every query parses and evaluates;
//! - every panel query returns data;
//! - every series selector of every query (alerts included, whose thresholds are rightly not
//!   reached on a quiet system) returns data, and every metric name it uses is defined: a
//!   daemon metric in `bigbrotr_core::metrics::names::CATALOGUE`, an exporter metric in
//!   `queries.yaml` or exported by the exporter, or one of Prometheus' own (`up`, `ALERTS`).
//!
//! The API and the DVM run too (the API is sent a served page and a client error on every
//! round; the DVM's only relay is unreachable): their selectors must return data, except those
//! no quiet test can feed (5xx responses, DVM jobs), which are checked by name, as `ALERTS`
//! (series only while an alert is pending or firing) is. Nothing leaves 127.0.0.0/8: the relays are onions behind
//! a closed loopback SOCKS5 port, clearnet is disabled, and the Geo and Net checks (GeoLite files)
//! are off.
//!
//! Needs the daemon binaries (`cargo build --bins`, which `tests/run-tests.sh` runs) and the
//! `prometheus` and `prometheus-postgres-exporter` packages (`scripts/ensure-tools.sh` installs
//! them; `tests/run-tests.sh` and `.ci/run` call it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bigbrotr_core::config;
use bigbrotr_core::metrics::names;
use bigbrotr_testkit::TestDb;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixtures::relay;

/// The daemons started, each with its metrics port.
const DAEMONS: [&str; 7] = [
    "finder",
    "validator",
    "monitor",
    "synchronizer",
    "refresher",
    "api",
    "dvm",
];

/// Onion relays (the only enabled network; reached through a closed loopback proxy).
const RELAYS: [&str; 2] = [
    "ws://abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion",
    "ws://bcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwxy.onion",
];
const CANDIDATES: [&str; 2] = [
    "ws://cdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwxyz.onion",
    "ws://defghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwxyz2.onion",
];

/// The deployments' database selector, replaced by the test database's name.
const DATNAME: &str = r#"datname=~"bigbrotr|lilbrotr""#;

struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn start(name: &str, mut command: Command, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("{} exited ({status}):\n{log}", self.name);
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn monitoring() -> PathBuf {
    repo().join("deployments/bigbrotr/monitoring")
}

/// target/<profile>, where cargo puts the workspace's binaries (this test runs from .../deps).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn require_program(names: &[&str]) -> PathBuf {
    find_program(names).unwrap_or_else(|| {
        panic!(
            "{} not found: run scripts/ensure-tools.sh prometheus (tests/run-tests.sh and .ci/run do)",
            names[0]
        )
    })
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A free port whose successor is free too.
fn free_port_pair() -> u16 {
    loop {
        let port = free_port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// One GET to the API (its answer is not needed: the request is what the metrics count).
async fn api_request(port: u16, path: &str) {
    if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        let _ = stream.write_all(request.as_bytes()).await;
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    }
}

fn replace_all(text: &str, from: &str, to: &str, origin: &str) -> String {
    assert!(
        text.contains(from),
        "{origin} no longer contains {from:?}: update this test with it"
    );
    text.replace(from, to)
}

/// Percent-encoding of a query-string value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// Evaluates `query` now; Err with Prometheus' error when it does not parse or evaluate.
async fn query(port: u16, expr: &str) -> Result<Vec<Value>, String> {
    let body = http_get(port, &format!("/api/v1/query?query={}", encode(expr)))
        .await
        .ok_or_else(|| "no answer from prometheus".to_owned())?;
    let answer: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if answer["status"] != "success" {
        return Err(format!("{}: {}", answer["errorType"], answer["error"]));
    }
    Ok(answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// One vector selector of a PromQL expression: the metric name and its matchers' text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Selector {
    metric: String,
    matchers: String,
}

impl Selector {
    fn text(&self) -> String {
        format!("{}{}", self.metric, self.matchers)
    }

    /// The value of an equality or regex matcher on `label`.
    fn matcher(&self, label: &str) -> Option<String> {
        let inner = self.matchers.trim_start_matches('{').trim_end_matches('}');
        inner.split(',').find_map(|part| {
            let part = part.trim();
            let rest = part.strip_prefix(label)?.trim_start();
            let rest = rest
                .strip_prefix("=~")
                .or_else(|| rest.strip_prefix('='))?
                .trim();
            Some(rest.trim_matches('"').to_owned())
        })
    }

    fn api_only(&self) -> bool {
        matches!(
            self.matcher("service").as_deref(),
            Some("api" | "dvm" | "api|dvm")
        )
    }
}

/// The vector selectors of a PromQL expression (function names, keywords, label lists of
/// by/without/on/ignoring/group_left/group_right, durations and numbers skipped).
fn selectors(expr: &str) -> Vec<Selector> {
    // Binary operators and aggregations (an aggregation may be followed by `by (...)`).
    const KEYWORDS: [&str; 18] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "atan2",
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
    ];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    let skip_ws = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    let skip_group = |j: usize, open: char, close: char| {
        let mut depth = 0;
        let mut k = j;
        let mut quoted = false;
        while k < chars.len() {
            let c = chars[k];
            if c == '"' && (k == 0 || chars[k - 1] != '\\') {
                quoted = !quoted;
            } else if !quoted && c == open {
                depth += 1;
            } else if !quoted && c == close {
                depth -= 1;
                if depth == 0 {
                    return k + 1;
                }
            }
            k += 1;
        }
        k
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '[' {
            i = skip_group(i, '[', ']');
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_ws(i);
            let next_char = chars.get(next).copied();
            if LABEL_LISTS.contains(&word.as_str()) {
                if next_char == Some('(') {
                    i = skip_group(next, '(', ')');
                }
            } else if KEYWORDS.contains(&word.as_str()) || next_char == Some('(') {
                // A keyword or a function / aggregation name.
            } else {
                let mut matchers = String::new();
                if next_char == Some('{') {
                    let end = skip_group(next, '{', '}');
                    matchers = chars[next..end].iter().collect();
                    i = end;
                }
                found.push(Selector {
                    metric: word,
                    matchers,
                });
            }
        } else {
            i += 1;
        }
    }
    found
}

/// The metric names `queries.yaml` defines: `<query>_<column>` for every non-label column.
fn exporter_metrics() -> BTreeSet<String> {
    let path = monitoring().join("postgres-exporter/queries.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let queries = config::parse_yaml(&text, &path).unwrap();
    let mut metrics = BTreeSet::new();
    for (query, definition) in queries.as_object().unwrap() {
        for column in definition["metrics"].as_array().unwrap() {
            for (name, spec) in column.as_object().unwrap() {
                if spec["usage"] != "LABEL" {
                    metrics.insert(format!("{query}_{name}"));
                }
            }
        }
    }
    metrics
}

/// What is wrong with the names a selector uses, if anything.
fn name_problem(selector: &Selector, exporter: &BTreeSet<String>) -> Option<String> {
    let metric = selector.metric.as_str();
    let families = [
        names::FAMILY_INFO.to_owned(),
        format!("{}_bucket", names::FAMILY_CYCLE_DURATION),
        format!("{}_count", names::FAMILY_CYCLE_DURATION),
        format!("{}_bucket", names::FAMILY_HTTP_REQUEST_DURATION),
        format!("{}_count", names::FAMILY_HTTP_REQUEST_DURATION),
    ];
    if metric == names::FAMILY_GAUGE || metric == names::FAMILY_COUNTER {
        let Some(name) = selector.matcher("name") else {
            return Some(format!("{} without a name matcher", selector.text()));
        };
        let service = selector.matcher("service");
        for alternative in name.split('|') {
            let known = match alternative.strip_suffix(".*") {
                Some(prefix) => names::CATALOGUE
                    .iter()
                    .any(|e| e.prefix && e.name == prefix),
                None => match service.as_deref() {
                    Some(s) if !s.contains('|') => names::lookup(s, alternative).is_some(),
                    _ => names::CATALOGUE.iter().any(|e| e.name == alternative),
                },
            };
            let kind_ok = names::CATALOGUE.iter().any(|e| {
                let matches = match alternative.strip_suffix(".*") {
                    Some(prefix) => e.prefix && e.name == prefix,
                    None => e.name == alternative || (e.prefix && alternative.starts_with(e.name)),
                };
                matches && (e.kind == names::Kind::Gauge) == (metric == names::FAMILY_GAUGE)
            });
            if !known || !kind_ok {
                return Some(format!(
                    "{}: {alternative:?} is not a {} name in metrics::names::CATALOGUE",
                    selector.text(),
                    metric
                ));
            }
        }
        None
    } else if families.iter().any(|f| f == metric) || metric == "up" || metric == "ALERTS" {
        None
    } else if metric.starts_with("bigbrotr_") {
        (!exporter.contains(metric))
            .then(|| format!("{metric} is not defined by postgres-exporter/queries.yaml"))
    } else if metric.starts_with("pg_") {
        // The exporter's own; its presence is checked by the data check.
        None
    } else {
        Some(format!("{metric}: unknown metric"))
    }
}

fn daemon_config(daemon: &str, port: u16, dead_proxy: u16) -> Value {
    let mut config = json!({
        "interval": 60,
        "metrics": {"enabled": true, "host": "127.0.0.1", "port": port},
        "networks": {
            "clearnet": {"enabled": false},
            "tor": {"enabled": true, "proxy_url": format!("socks5://127.0.0.1:{dead_proxy}"), "timeout": 2},
        },
    });
    let extra = match daemon {
        "finder" => json!({"api": {"enabled": false}, "live": {"enabled": false}}),
        "monitor" => json!({
            // No GeoLite files here (and no download): the Geo and Net checks are off.
            "processing": {
                "compute": {"nip66_geo": false, "nip66_net": false},
                "store": {"nip66_geo": false, "nip66_net": false},
            },
            "discovery": {"enabled": false},
            "announcement": {"enabled": false},
            "profile": {"enabled": false},
            "relay_list": {"enabled": false},
        }),
        "refresher" => json!({"pool": {"max_size": 2}}),
        // The API on the port after its metrics port; the DVM's only relay is an onion behind
        // the dead proxy (it keeps retrying), its announcement off.
        "api" => json!({"host": "127.0.0.1", "port": port + 1, "pool": {"user": "reader"},
                        "tables": {"relay": {"enabled": true}}}),
        "dvm" => json!({"relays": [RELAYS[0]], "announce": false, "pool": {"user": "reader"},
                        "tables": {"relay": {"enabled": true}}}),
        _ => json!({}),
    };
    if daemon == "refresher" || daemon == "api" {
        config.as_object_mut().unwrap().remove("networks");
    }
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_alerts_and_dashboards_query_metrics_the_running_daemons_export() {
    let prometheus_bin = require_program(&["prometheus"]);
    let exporter_bin = require_program(&["prometheus-postgres-exporter", "postgres_exporter"]);
    let bins = bin_dir();
    for daemon in DAEMONS {
        let path = bins.join(format!("bigbrotr-{daemon}"));
        assert!(
            path.is_file(),
            "{} is missing: run `cargo build --bins` first (tests/run-tests.sh does)",
            path.display()
        );
    }

    let db = TestDb::new().await;
    let brotr = db.brotr();
    let now = bigbrotr_core::clock::now();
    let relays: Vec<_> = RELAYS.iter().map(|url| relay(url, now)).collect();
    brotr.insert_relays(&relays).await.unwrap();
    let candidates: Vec<_> = CANDIDATES.iter().map(|url| relay(url, now)).collect();
    brotr.insert_candidates(&candidates, now).await.unwrap();
    // One relay archived up to 25 hours ago (the synchronizer cannot reach any relay here).
    sqlx::query(
        "INSERT INTO service_state VALUES ('synchronizer', 'cursor', $1, \
         jsonb_build_object('timestamp', $2::bigint, 'id', repeat('0', 64)))",
    )
    .bind(RELAYS[0])
    .bind(now - 90_000)
    .execute(db.pool())
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(db.pool()).await.unwrap();

    let dir = std::env::temp_dir().join(format!("bigbrotr-prometheus-{}", free_port()));
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(
        dir.join("brotr.yaml"),
        serde_json::to_string(&db.config()).unwrap(),
    )
    .unwrap();
    let dead_proxy = free_port();
    let dead_target = free_port();
    let mut processes = Vec::new();
    let mut ports = Vec::new();
    for daemon in DAEMONS {
        // Two free ports in a row for the API (metrics, then HTTP).
        let port = if daemon == "api" {
            free_port_pair()
        } else {
            free_port()
        };
        ports.push(port);
        let config = dir.join(format!("{daemon}.yaml"));
        std::fs::write(&config, daemon_config(daemon, port, dead_proxy).to_string()).unwrap();
        let mut command = Command::new(bins.join(format!("bigbrotr-{daemon}")));
        command
            .arg("--config")
            .arg(&config)
            .arg("--brotr-config")
            .arg(dir.join("brotr.yaml"))
            .current_dir(&dir)
            .env("NOSTR_PRIVATE_KEY", "01".repeat(32));
        processes.push(Process::start(daemon, command, &dir));
    }

    // postgres-exporter as reader, with the deployments' queries.
    let exporter_port = free_port();
    let socket = db
        .options()
        .get_socket()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| db.options().get_host().to_owned());
    let mut exporter = Command::new(exporter_bin);
    exporter
        .arg(format!("--web.listen-address=127.0.0.1:{exporter_port}"))
        .arg(format!(
            "--extend.query-path={}",
            monitoring()
                .join("postgres-exporter/queries.yaml")
                .display()
        ))
        .env(
            "DATA_SOURCE_NAME",
            format!(
                "host={socket} port={} dbname={} user=reader sslmode=disable",
                db.options().get_port(),
                db.name()
            ),
        );
    processes.push(Process::start("postgres-exporter", exporter, &dir));

    // The deployments' Prometheus configuration and rules, rewritten for loopback.
    let prometheus_port = free_port();
    let origin = "prometheus/prometheus.yml";
    let mut prometheus_yml =
        std::fs::read_to_string(monitoring().join("prometheus/prometheus.yml")).unwrap();
    for (from, to) in [
        (
            "scrape_interval: 30s".to_owned(),
            "scrape_interval: 1s".to_owned(),
        ),
        (
            "scrape_interval: 15s".to_owned(),
            "scrape_interval: 1s".to_owned(),
        ),
        (
            "evaluation_interval: 15s".to_owned(),
            "evaluation_interval: 1s".to_owned(),
        ),
        (
            "/etc/prometheus/rules/*.yml".to_owned(),
            dir.join("rules/*.yml").display().to_string(),
        ),
        (
            "alertmanager:9093".to_owned(),
            format!("127.0.0.1:{dead_target}"),
        ),
        (
            "postgres-exporter:9187".to_owned(),
            format!("127.0.0.1:{exporter_port}"),
        ),
        (
            "localhost:9090".to_owned(),
            format!("127.0.0.1:{prometheus_port}"),
        ),
    ]
    .into_iter()
    .chain(
        DAEMONS
            .iter()
            .zip(&ports)
            .map(|(d, p)| (format!("\"{d}:8000\""), format!("\"127.0.0.1:{p}\""))),
    ) {
        prometheus_yml = replace_all(&prometheus_yml, &from, &to, origin);
    }
    std::fs::write(dir.join("prometheus.yml"), &prometheus_yml).unwrap();
    let mut alerts = Vec::new();
    for entry in std::fs::read_dir(monitoring().join("prometheus/rules")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(DATNAME, &format!("datname=\"{}\"", db.name()));
        let rules = config::parse_yaml(&text, &path).unwrap();
        for group in rules["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                alerts.push((
                    rule["alert"].as_str().unwrap().to_owned(),
                    rule["expr"].as_str().unwrap().trim().to_owned(),
                ));
            }
        }
        std::fs::write(dir.join("rules").join(path.file_name().unwrap()), text).unwrap();
    }
    let mut panels = Vec::new();
    let mut dashboards: Vec<_> = std::fs::read_dir(monitoring().join("grafana/dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dashboards.sort();
    for path in &dashboards {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap();
                assert!(
                    !expr.contains('$'),
                    "{file}: {expr}: dashboards use no template variables"
                );
                panels.push((
                    format!("{file} / {}", panel["title"].as_str().unwrap()),
                    expr.replace(DATNAME, &format!("datname=\"{}\"", db.name())),
                ));
            }
        }
    }
    let mut prometheus = Command::new(prometheus_bin);
    prometheus
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
        .arg("--log.level=warn");
    processes.push(Process::start("prometheus", prometheus, &dir));

    // Every daemon completed a cycle, the exporter answered, and enough samples for rate().
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut ready_since = None;
    let api_port = ports[DAEMONS.iter().position(|d| *d == "api").unwrap()] + 1;
    loop {
        for process in &mut processes {
            process.assert_running();
        }
        // API traffic: served pages and a client error, for its request and latency series.
        api_request(api_port, "/v1/relay?limit=1").await;
        api_request(api_port, "/v1/nope").await;
        let cycles = query(
            prometheus_port,
            r#"service_gauge{name="last_cycle_timestamp"}"#,
        )
        .await
        .map(|r| r.len())
        .unwrap_or(0);
        let exporter = query(prometheus_port, "bigbrotr_overview_relays")
            .await
            .map(|r| r.len())
            .unwrap_or(0);
        let coverage = query(prometheus_port, "bigbrotr_monitor_coverage_checked > 0")
            .await
            .map(|r| r.len())
            .unwrap_or(0);
        if cycles >= DAEMONS.len() && exporter == 1 && coverage == 1 {
            let since = *ready_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(6) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not ready after 180 s: {cycles} daemons with a cycle, exporter {exporter}, \
             coverage {coverage}; logs in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let exporter = exporter_metrics();
    let mut problems = Vec::new();
    let mut selectors_with_data = BTreeSet::new();
    let mut by_name_only = BTreeSet::new();
    let mut panel_data = 0;
    let all: Vec<(String, String, bool)> = alerts
        .iter()
        .map(|(name, expr)| (format!("alert {name}"), expr.clone(), false))
        .chain(
            panels
                .iter()
                .map(|(title, expr)| (format!("panel {title}"), expr.clone(), true)),
        )
        .collect();
    for (what, expr, needs_data) in &all {
        let result = match query(prometheus_port, expr).await {
            Ok(result) => result,
            Err(error) => {
                problems.push(format!("{what}: {expr}: {error}"));
                continue;
            }
        };
        let found = selectors(expr);
        if found.is_empty() {
            problems.push(format!("{what}: {expr}: no selector found"));
        }
        let api_only = !found.is_empty() && found.iter().all(Selector::api_only);
        for selector in &found {
            if let Some(problem) = name_problem(selector, &exporter) {
                problems.push(format!("{what}: {problem}"));
            }
            // ALERTS has series only while an alert is pending or firing.
            if selector.metric == "ALERTS" {
                by_name_only.insert(selector.text());
                continue;
            }
            match query(prometheus_port, &selector.text()).await {
                Ok(series) if !series.is_empty() => {
                    selectors_with_data.insert(selector.text());
                }
                // The API and DVM serve what clients ask: a quiet test has no 5xx, no DVM job.
                Ok(_) if selector.api_only() => {
                    by_name_only.insert(selector.text());
                }
                Ok(_) => problems.push(format!("{what}: {} has no data", selector.text())),
                Err(error) => problems.push(format!("{what}: {}: {error}", selector.text())),
            }
        }
        if *needs_data {
            if !result.is_empty() {
                panel_data += 1;
            } else if !api_only {
                problems.push(format!("{what}: {expr} returned no data"));
            }
        }
    }
    println!(
        "{} alert expressions and {} panel queries evaluated; {panel_data} panel queries returned \
         data; {} selectors returned data; {} selectors checked by name only: {:?}",
        alerts.len(),
        panels.len(),
        selectors_with_data.len(),
        by_name_only.len(),
        by_name_only
    );
    assert!(
        problems.is_empty(),
        "{} problems (logs in {}):\n{}",
        problems.len(),
        dir.display(),
        problems.join("\n")
    );
    drop(processes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_selector_extractor_skips_functions_keywords_and_label_lists() {
    let found = selectors(
        r#"histogram_quantile(0.99, sum by (service, le) (rate(cycle_duration_seconds_bucket{service="x"}[1h]))) > 3600
           and on (service) time() - service_gauge{name="a", service=~"b|c"} > 6 * 3600 or vector(0) unless up
           or sum by (state) (topk(3, pg_x))"#,
    );
    let texts: Vec<String> = found.iter().map(Selector::text).collect();
    assert_eq!(
        texts,
        [
            r#"cycle_duration_seconds_bucket{service="x"}"#,
            r#"service_gauge{name="a", service=~"b|c"}"#,
            "up",
            "pg_x",
        ]
    );
    assert_eq!(found[1].matcher("service").as_deref(), Some("b|c"));
    assert_eq!(found[1].matcher("name").as_deref(), Some("a"));
}
