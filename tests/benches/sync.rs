//! `make bench`, synchronizer part: archive 50,000 and then 200,000 events from loopback relays
//! (rust-nostr's in-process relays behind TLS fronts, clamping `limit` to 500, run in a child
//! process so the daemon's CPU time and peak RSS are its own) into the throwaway cluster, and
//! compare the rate with the stored-function ingest limit measured in the same run.
//!
//! Reported: events/s, REQs per 1,000 events, CPU seconds, peak RSS (reset between runs), the
//! time spent verifying and writing, and events/s over the ingest limit.

// A benchmark program: any failure must abort the run loudly, and the report goes to stdout.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::time::Instant;

use bigbrotr_core::metrics::Metrics;
use bigbrotr_core::runner::Context;
use bigbrotr_models::event::Event;
use bigbrotr_models::event_relay::EventRelay;
use bigbrotr_models::relay::Relay;
use bigbrotr_synchronizer::config::ProcessingConfig;
use bigbrotr_synchronizer::{Synchronizer, SynchronizerConfig};
use bigbrotr_testkit::TestDb;
use bigbrotr_testkit::relays::{TestCa, TestRelay, TlsFront};
use bigbrotr_utils::network::NetworksConfig;
use bigbrotr_utils::relay::Connector;
use nostr::{EventBuilder, Keys, Kind, Tag, Timestamp};
use nostr_relay_builder::prelude::RelayBuilder;
use tokio_util::sync::CancellationToken;

use common::{announce_and_serve, cpu_seconds, peak_rss_mib, reset_peak_rss, spawn_child};

const RELAYS: usize = 4;
const SIZES: [usize; 2] = [50_000, 200_000];
const RELAY_CLAMP: usize = 500;
const T0: u64 = 1_700_000_000;
const CHILD_ENV: &str = "BIGBROTR_BENCH_SYNC_RELAYS";
const INGEST_EVENTS: usize = 50_000;

/// Events shaped like the ingest bench's: kinds 1, 6 and 7, four tags, a few hundred bytes of
/// content, 100 authors, two to a second.
fn make_events(count: usize, salt: usize) -> Vec<nostr::Event> {
    let keys: Vec<Keys> = (0..100).map(|_| Keys::generate()).collect();
    (0..count)
        .map(|i| {
            let author = &keys[i % keys.len()];
            let other = keys[(i * 7 + 3) % keys.len()].public_key().to_hex();
            let tags = vec![
                Tag::parse(["p", other.as_str()]).unwrap(),
                Tag::parse(["e", &format!("{:064x}", i * 31 + salt)]).unwrap(),
                Tag::parse(["t", "nostr"]).unwrap(),
                Tag::parse(["client", "bench"]).unwrap(),
            ];
            let content = format!(
                "benchmark note {salt}/{i}: {}",
                "the quick brown fox jumps over the lazy dog ".repeat(1 + i % 5)
            );
            // Regular kinds only: a relay keeps one kind 3 per author, the archive must match.
            EventBuilder::new(Kind::from([1_u16, 6, 7][i % 3]), content)
                .tags(tags)
                .custom_created_at(Timestamp::from(T0 + (i / 2) as u64))
                .sign_with_keys(author)
                .unwrap()
        })
        .collect()
}

/// The child: seeded relays behind TLS fronts; prints the CA and the ports, then serves until
/// its stdin closes.
fn serve_relays(per_relay: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ca = TestCa::new();
        let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
        let mut lines = vec![format!("CA {}", hex::encode(ca.der()))];
        for i in 0..RELAYS {
            let events = make_events(per_relay, i);
            let relay = TestRelay::seeded(
                RelayBuilder::default().max_filter_limit(RELAY_CLAMP),
                &events,
            )
            .await;
            let host = format!("bench-{i}.example.com");
            let front = TlsFront::start(ca.server_config(&[&host]), relay.address()).await;
            lines.push(format!("RELAY {host} {}", front.address()));
            keep.push(Box::new(relay));
            keep.push(Box::new(front));
        }
        announce_and_serve(lines).await;
    });
}

struct Relays {
    child: Child,
    ca: Vec<u8>,
    hosts: Vec<(String, SocketAddr)>,
}

fn start_relays(per_relay: usize) -> Relays {
    let (child, lines) = spawn_child(CHILD_ENV, &per_relay.to_string());
    let mut ca = Vec::new();
    let mut hosts = Vec::new();
    for parts in &lines {
        match parts.as_slice() {
            [tag, der] if tag == "CA" => ca = hex::decode(der).unwrap(),
            [tag, host, address] if tag == "RELAY" => {
                hosts.push((host.clone(), address.parse().unwrap()));
            }
            _ => panic!("unexpected line from the relay process: {parts:?}"),
        }
    }
    Relays { child, ca, hosts }
}

struct Figures {
    events: usize,
    seconds: f64,
    requests: u64,
    cpu: f64,
    rss: f64,
    verify: f64,
    write: f64,
}

async fn archive(per_relay: usize) -> Figures {
    let mut relays = start_relays(per_relay);
    let db = TestDb::new().await;
    let urls: Vec<Relay> = relays
        .hosts
        .iter()
        .map(|(host, _)| Relay::new(&format!("wss://{host}"), 1).unwrap())
        .collect();
    db.brotr().insert_relays(&urls).await.unwrap();
    let mut networks = NetworksConfig::default();
    networks.clearnet.timeout = 10.0;
    let mut connector = Connector::new(networks.clone())
        .unwrap()
        .with_root_certificate(relays.ca.clone())
        .unwrap();
    for (host, address) in &relays.hosts {
        connector = connector.resolve(host, *address);
    }
    let config = SynchronizerConfig {
        processing: ProcessingConfig {
            since: T0 as i64,
            until: Some((T0 + per_relay as u64) as i64),
            end_lag: 0,
            ..ProcessingConfig::default()
        },
        networks,
        ..SynchronizerConfig::default()
    };
    let ctx = Context {
        brotr: db.brotr(),
        metrics: Metrics::new("synchronizer"),
        shutdown: CancellationToken::new(),
    };
    let synchronizer = Synchronizer::new(config, connector);
    reset_peak_rss();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let report = synchronizer.synchronize(&ctx).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let rss = peak_rss_mib();
    drop(relays.child.stdin.take());
    relays.child.wait().unwrap();
    let events = per_relay * RELAYS;
    assert_eq!(report.failed, 0, "{report:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM event_relay")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(stored as usize, events, "every event archived");
    Figures {
        events,
        seconds,
        requests: report.requests,
        cpu,
        rss,
        verify: report.writer.verify_time.as_secs_f64(),
        write: report.writer.write_time.as_secs_f64(),
    }
}

/// The stored-function ingest limit: `INGEST_EVENTS` events through
/// `event_relay_insert_cascade` in batches of 1,000, as the ingest bench measures it.
async fn ingest_limit() -> f64 {
    let db = TestDb::new().await;
    let relays: Vec<Relay> = (0..RELAYS)
        .map(|i| Relay::new(&format!("wss://bench-{i}.example.com"), 1).unwrap())
        .collect();
    let records: Vec<EventRelay> = make_events(INGEST_EVENTS, 99)
        .iter()
        .enumerate()
        .map(|(i, e)| EventRelay {
            event: Event::from_nostr(e).unwrap(),
            relay: relays[i % RELAYS].clone(),
            seen_at: T0 as i64,
        })
        .collect();
    let brotr = db.brotr();
    let started = Instant::now();
    for chunk in records.chunks(1000) {
        brotr.insert_event_relays(chunk, true).await.unwrap();
    }
    INGEST_EVENTS as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    if let Ok(per_relay) = std::env::var(CHILD_ENV) {
        serve_relays(per_relay.parse().unwrap());
        return;
    }
    bigbrotr_core::bootstrap::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut runs = Vec::new();
        for size in SIZES {
            runs.push(archive(size / RELAYS).await);
        }
        let limit = ingest_limit().await;
        println!("\n## Synchronizer: archive from {RELAYS} loopback relays (limit clamped to {RELAY_CLAMP})\n");
        println!(
            "| events | s | events/s | ingest limit events/s | ratio | REQs per 1,000 events | CPU s | CPU µs/event | verify s | write s | peak RSS MiB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for f in runs {
            let rate = f.events as f64 / f.seconds;
            println!(
                "| {} | {:.2} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.0} |",
                f.events,
                f.seconds,
                rate,
                limit,
                rate / limit,
                f.requests as f64 * 1000.0 / f.events as f64,
                f.cpu,
                f.cpu * 1e6 / f.events as f64,
                f.verify,
                f.write,
                f.rss,
            );
        }
    });
}
