//! `make bench`, monitor part: one cycle over 1,000 loopback relays with every check enabled
//! (NIP-11, RTT with the write probe, SSL, DNS, Geo, Net, HTTP) and a 30166 published for each.
//!
//! The relays run in a child process so the daemon's CPU time and peak RSS are its own: 1,000
//! TLS fronts (`wss://bench-<i>.example.com`, one wildcard certificate from a test CA) that serve
//! a NIP-11 document on their port and pass WebSocket upgrades to 50 rust-nostr relays, an
//! in-process DNS server with an A record per relay, and generated GeoLite-shaped databases.
//!
//! Reported: relays/s, CPU seconds per relay, peak RSS, and the parallel efficiency: relays/s
//! over the ideal `max_tasks / t_check`, where `t_check` is the time of one relay's checks alone
//! (`Checker::check`: the seven checks of one relay, nothing else; median of nine relays). A
//! cycle does more per relay than its checks (the results stored, a 30166 signed and published),
//! so the efficiency is a lower bound of how well the checks overlap. On loopback the checks
//! are CPU-bound, so the CPU ceiling is reported too: the cores over the monitor's CPU time per
//! relay (what the run could reach if the monitor had every core to itself). The time of a
//! whole cycle over one relay (GeoLite opened, resolver built, queries, a transaction, the
//! publishing session) is reported beside them, not used.

// A benchmark program: any failure must abort the run loudly, and the report goes to stdout.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Child;
use std::time::{Duration, Instant};

use bigbrotr_core::metrics::Metrics;
use bigbrotr_core::runner::Context;
use bigbrotr_models::metadata::MetadataType;
use bigbrotr_models::relay::Relay;
use bigbrotr_monitor::{Monitor, MonitorConfig};
use bigbrotr_nips::nip11::Nip11Options;
use bigbrotr_testkit::TestDb;
use bigbrotr_testkit::dns::{DnsRecords, DnsServer};
use bigbrotr_testkit::front::{FrontOptions, Nip11Reply, RelayFront};
use bigbrotr_testkit::mmdb::{AsnEntry, CityEntry, asn_database, city_database};
use bigbrotr_testkit::relays::{TestCa, TestRelay};
use bigbrotr_utils::network::NetworksConfig;
use bigbrotr_utils::relay::Connector;
use nostr::{EventBuilder, Keys};
use nostr_relay_builder::prelude::RelayBuilder;
use tokio_util::sync::CancellationToken;

use common::{announce_and_serve, cpu_seconds, peak_rss_mib, reset_peak_rss, spawn_child};

const RELAYS: usize = 1000;
const BACKENDS: usize = 50;
const CHILD_ENV: &str = "BIGBROTR_BENCH_MONITOR_RELAYS";
const DOC: &str = r#"{"name":"bench","description":"a benchmark relay","software":"https://github.com/rust-nostr/nostr","version":"0.44","supported_nips":[1,11,40,42,50],"limitation":{"max_limit":500,"auth_required":false},"language_tags":["en"],"tags":["bench"]}"#;
/// What relay names resolve to in the DNS server (never contacted: connections use the fronts).
const DNS_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// The child: relays, fronts and the DNS server; prints the CA, the DNS address and the fronts,
/// then serves until its stdin closes.
fn serve_relays() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ca = TestCa::new();
        let tls = ca.server_config(&["*.example.com"]);
        let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
        let mut backends = Vec::new();
        for _ in 0..BACKENDS {
            let seed = EventBuilder::text_note("stored")
                .sign_with_keys(&Keys::generate())
                .unwrap();
            let relay = TestRelay::seeded(RelayBuilder::default(), &[seed]).await;
            backends.push(relay.address());
            keep.push(Box::new(relay));
        }
        let mut records = DnsRecords::new().ns("example.com", "ns1.example.com");
        let mut lines = vec![format!("CA {}", hex::encode(ca.der()))];
        for i in 0..=RELAYS {
            let host = format!("bench-{i}.example.com");
            let front = RelayFront::start(
                backends[i % BACKENDS],
                FrontOptions {
                    tls: Some(tls.clone()),
                    nip11: Nip11Reply::json(DOC),
                    handshake_headers: vec![("Server".to_owned(), "bench-relay".to_owned())],
                },
            )
            .await;
            records = records.a(&host, DNS_ADDRESS, 300);
            lines.push(format!("RELAY {host} {}", front.address()));
            keep.push(Box::new(front));
        }
        let dns = DnsServer::start(records.ptr(DNS_ADDRESS, "bench.example.com")).await;
        lines.push(format!("DNS {}", dns.address()));
        keep.push(Box::new(dns));
        announce_and_serve(lines).await;
    });
}

struct Lab {
    child: Child,
    ca: Vec<u8>,
    dns: SocketAddr,
    hosts: Vec<(String, SocketAddr)>,
}

fn start_lab() -> Lab {
    let (child, lines) = spawn_child(CHILD_ENV, "1");
    let mut ca = Vec::new();
    let mut dns = None;
    let mut hosts = Vec::new();
    for parts in &lines {
        match parts.as_slice() {
            [tag, der] if tag == "CA" => ca = hex::decode(der).unwrap(),
            [tag, address] if tag == "DNS" => dns = Some(address.parse().unwrap()),
            [tag, host, address] if tag == "RELAY" => {
                hosts.push((host.clone(), address.parse().unwrap()));
            }
            _ => panic!("unexpected line from the relay process: {parts:?}"),
        }
    }
    Lab {
        child,
        ca,
        dns: dns.unwrap(),
        hosts,
    }
}

struct Figures {
    relays: u64,
    seconds: f64,
    cpu: f64,
    rss: f64,
}

/// The relays `1..=relays` of the lab (the first host is the publishing relay).
fn relays_of(lab: &Lab, relays: usize) -> Vec<Relay> {
    lab.hosts[1..=relays]
        .iter()
        .map(|(host, _)| Relay::new(&format!("wss://{host}"), 1).unwrap())
        .collect()
}

/// The monitor of the benchmark, with `max_tasks` clearnet checks at once, and its context.
fn monitor(lab: &Lab, dir: &std::path::Path, db: &TestDb, max_tasks: u32) -> (Monitor, Context) {
    let mut networks = NetworksConfig::default();
    networks.clearnet.max_tasks = max_tasks;
    // The benchmark's relays are on loopback.
    networks.clearnet.allow_private = true;
    let keys = Keys::generate();
    let mut connector = Connector::new(networks.clone())
        .unwrap()
        .with_keys(Some(keys.clone()))
        .with_root_certificate(lab.ca.clone())
        .unwrap();
    for (host, address) in &lab.hosts {
        connector = connector.resolve(host, *address);
    }
    let nip11 = Nip11Options {
        resolve: lab.hosts.clone(),
        extra_roots: vec![lab.ca.clone()],
        ..Nip11Options::default()
    };
    let mut config = MonitorConfig {
        networks,
        ..MonitorConfig::default()
    };
    config.dns.nameservers = vec![lab.dns.to_string()];
    config.geo.city_database_path = dir.join("city.mmdb").display().to_string();
    config.geo.asn_database_path = dir.join("asn.mmdb").display().to_string();
    config.geo.city_download_url.clear();
    config.geo.asn_download_url.clear();
    config.publishing.relays = vec![format!("wss://{}", lab.hosts[0].0)];
    config.profile.enabled = false;
    config.relay_list.enabled = false;
    config.announcement.enabled = false;
    let ctx = Context {
        brotr: db.brotr(),
        metrics: Metrics::new("monitor"),
        shutdown: CancellationToken::new(),
    };
    (Monitor::new(config, keys, connector, nip11), ctx)
}

/// The seven checks of each of `relays`, one after the other, each timed alone (the checker
/// built once, as a cycle does; the first relay warms it up, untimed). Returns the median.
async fn check_alone(lab: &Lab, dir: &std::path::Path, relays: &[Relay]) -> f64 {
    let db = TestDb::new().await;
    let (monitor, ctx) = monitor(lab, dir, &db, NetworksConfig::default().clearnet.max_tasks);
    let checker = monitor.checker(&ctx).await.unwrap();
    let timeout = Duration::from_secs_f64(monitor.config().networks.clearnet.timeout);
    let mut times = Vec::new();
    for (index, relay) in relays.iter().enumerate() {
        let started = Instant::now();
        let result = checker.check(relay, timeout, 1_700_000_000).await;
        if index > 0 {
            times.push(started.elapsed().as_secs_f64());
        }
        for kind in MetadataType::ALL {
            assert!(
                result.outcome(kind).is_some_and(|o| o.succeeded()),
                "{relay:?}: {kind}: {result:?}"
            );
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// One cycle over `relays`.
async fn cycle(lab: &Lab, dir: &std::path::Path, relays: usize, max_tasks: u32) -> Figures {
    let db = TestDb::new().await;
    db.brotr()
        .insert_relays(&relays_of(lab, relays))
        .await
        .unwrap();
    let (monitor, ctx) = monitor(lab, dir, &db, max_tasks);
    reset_peak_rss();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let report = monitor.cycle(&ctx).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let rss = peak_rss_mib();
    assert_eq!(report.checked as usize, relays, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.discoveries_published as usize, relays, "{report:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM relay_metadata")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(stored as usize, relays * 7, "seven results per relay");
    let write_failures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM relay_metadata rm JOIN metadata m
           ON m.id = rm.metadata_id AND m.type = rm.metadata_type
         WHERE rm.metadata_type = 'nip66_rtt' AND m.data -> 'logs' ->> 'write_success' <> 'true'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(write_failures, 0, "every write probe was read back");
    Figures {
        relays: report.checked,
        seconds,
        cpu,
        rss,
    }
}

fn main() {
    if std::env::var(CHILD_ENV).is_ok() {
        serve_relays();
        return;
    }
    bigbrotr_core::bootstrap::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("bigbrotr-bench-monitor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("city.mmdb"),
            city_database(&[CityEntry {
                network: "192.0.2.0/24".to_owned(),
                country_iso: Some("DE".to_owned()),
                city_name: Some("Berlin".to_owned()),
                latitude: Some(52.52),
                longitude: Some(13.40),
                time_zone: Some("Europe/Berlin".to_owned()),
                ..CityEntry::default()
            }]),
        )
        .unwrap();
        std::fs::write(
            dir.join("asn.mmdb"),
            asn_database(&[AsnEntry {
                network: "192.0.2.0/24".to_owned(),
                asn: 64_500,
                org: "Bench Networks".to_owned(),
            }]),
        )
        .unwrap();
        let mut lab = start_lab();
        let max_tasks = NetworksConfig::default().clearnet.max_tasks;
        // A whole cycle over one relay, three times (reported, not the baseline).
        let mut single = Vec::new();
        for _ in 0..3 {
            single.push(cycle(&lab, &dir, 1, max_tasks).await.seconds);
        }
        single.sort_by(f64::total_cmp);
        let cycle1 = single[1];
        // The baseline: one relay's checks alone, nine relays one after the other.
        let t_check = check_alone(&lab, &dir, &relays_of(&lab, 10)).await;
        let full = cycle(&lab, &dir, RELAYS, max_tasks).await;
        drop(lab.child.stdin.take());
        lab.child.wait().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let rate = full.relays as f64 / full.seconds;
        let ideal = f64::from(max_tasks) / t_check;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let ceiling = cores as f64 * full.relays as f64 / full.cpu;
        println!("\n## Monitor: one cycle over {RELAYS} loopback relays, every check\n");
        println!(
            "| relays | max_tasks | s | relays/s | one relay's checks s | ideal relays/s | efficiency | cores | CPU ceiling relays/s | rate / ceiling | one-relay cycle s | CPU s | CPU ms/relay | peak RSS MiB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {} | {} | {:.2} | {:.1} | {:.3} | {:.1} | {:.2} | {} | {:.0} | {:.2} | {:.3} | {:.2} | {:.2} | {:.0} |",
            full.relays,
            max_tasks,
            full.seconds,
            rate,
            t_check,
            ideal,
            rate / ideal,
            cores,
            ceiling,
            rate / ceiling,
            cycle1,
            full.cpu,
            full.cpu * 1000.0 / full.relays as f64,
            full.rss,
        );
    });
}
