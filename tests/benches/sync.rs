//! `make bench`, synchronizer part: archive one relay with a realistic history (years of
//! uneven density, a dense hour, a crowded second) from `since: 0`, then 50,000 and 200,000
//! events from four loopback relays (rust-nostr's in-process relays behind TLS fronts, clamping
//! `limit` to 500, run in a child process so the daemon's CPU time and peak RSS are its own)
//! into the throwaway cluster. Each run is compared with a plain `until` pager over the same
//! relays in the same run (REQ `limit: 500`, next `until` = oldest − 1, events parsed and
//! dropped), and the rate with the stored-function ingest limit measured in the same run.
//!
//! Reported: events/s, REQs per 1,000 events, events received per event stored, the pager's
//! requests and time, CPU seconds, peak RSS (reset between runs), the CPU time spent verifying
//! (summed over the blocking pool's threads), the time spent writing (wall time inside the
//! writer's transactions), and events/s over the ingest limit.

// A benchmark program: any failure must abort the run loudly, and the report goes to stdout.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

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
use nostr::{EventBuilder, Filter, Keys, Kind, Tag, Timestamp};
use nostr_relay_builder::prelude::RelayBuilder;
use tokio_util::sync::CancellationToken;

use common::{announce_and_serve, cpu_seconds, peak_rss_mib, reset_peak_rss, spawn_child};

const RELAYS: usize = 4;
const SIZES: [usize; 2] = [50_000, 200_000];
const RELAY_CLAMP: usize = 500;
const T0: u64 = 1_700_000_000;
const CHILD_ENV: &str = "BIGBROTR_BENCH_SYNC_RELAYS";
const INGEST_EVENTS: usize = 50_000;
/// The single relay's history: this many events over two years.
const HISTORY_EVENTS: usize = 100_000;
const HISTORY_SPAN: u64 = 2 * 365 * 86_400;

/// One signed event shaped like the ingest bench's, at `created_at`.
fn make_event(keys: &[Keys], i: usize, salt: usize, created_at: u64) -> nostr::Event {
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
        .custom_created_at(Timestamp::from(created_at))
        .sign_with_keys(author)
        .unwrap()
}

/// A relay's history: `count` events over [`HISTORY_SPAN`] ending at `T0 + HISTORY_SPAN`,
/// denser towards the end (a year-long sparse tail, recent weeks dense), plus a dense hour
/// (3,000 events) and a crowded second (700 events, more than a page).
fn make_history(count: usize) -> Vec<nostr::Event> {
    let keys: Vec<Keys> = (0..100).map(|_| Keys::generate()).collect();
    let end = T0 + HISTORY_SPAN;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1_u64 << 53) as f64
    };
    let sparse = count - 3_700;
    let mut events = Vec::with_capacity(count);
    for i in 0..sparse {
        let u: f64 = next();
        let back = (HISTORY_SPAN as f64 * u.powi(4)) as u64;
        events.push(make_event(&keys, i, 7, end - back));
    }
    let hour = end - 40 * 86_400;
    for i in 0..3_000 {
        events.push(make_event(
            &keys,
            sparse + i,
            7,
            hour + (i as u64 * 3_600) / 3_000,
        ));
    }
    let crowded = end - 100 * 86_400;
    for i in 0..700 {
        events.push(make_event(&keys, sparse + 3_000 + i, 7, crowded));
    }
    events
}

/// Events shaped like the ingest bench's: kinds 1, 6 and 7, four tags, a few hundred bytes of
/// content, 100 authors, two to a second.
fn make_events(count: usize, salt: usize) -> Vec<nostr::Event> {
    let keys: Vec<Keys> = (0..100).map(|_| Keys::generate()).collect();
    (0..count)
        .map(|i| make_event(&keys, i, salt, T0 + (i / 2) as u64))
        .collect()
}

/// The child: seeded relays behind TLS fronts (`RELAYS` of `per_relay` events, or with
/// `per_relay` 0 one relay with [`make_history`]); prints the CA and the ports, then serves
/// until its stdin closes.
fn serve_relays(per_relay: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ca = TestCa::new();
        let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
        let mut lines = vec![format!("CA {}", hex::encode(ca.der()))];
        let relays = if per_relay == 0 { 1 } else { RELAYS };
        for i in 0..relays {
            let events = if per_relay == 0 {
                make_history(HISTORY_EVENTS)
            } else {
                make_events(per_relay, i)
            };
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
    relays: usize,
    events: usize,
    seconds: f64,
    requests: u64,
    received: u64,
    pager: Pager,
    cpu: f64,
    rss: f64,
    verify: f64,
    write: f64,
}

/// A plain `until` pager's cost over the same relays.
#[derive(Default)]
struct Pager {
    requests: u64,
    events: u64,
    seconds: f64,
}

/// Reads every relay with a plain `until` pager (one task per relay, all at once): REQ
/// `limit: 500` from `until`, next `until` = the page's oldest − 1, until an empty page.
async fn pager(connector: &Connector, relays: &[Relay], until: u64) -> Pager {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for relay in relays {
        let connector = connector.clone();
        let relay = relay.clone();
        tasks.spawn(async move {
            let mut session = connector.open_session(&relay).await.unwrap();
            let (mut requests, mut events) = (0_u64, 0_u64);
            let mut upper = until;
            loop {
                let filter = Filter::new().until(Timestamp::from(upper)).limit(500);
                let page = session
                    .query(&filter, Duration::from_secs(10), 2_000)
                    .await
                    .unwrap();
                requests += 1;
                events += page.events.len() as u64;
                let Some(oldest) = page
                    .events
                    .iter()
                    .map(|e| e.event.created_at.as_secs())
                    .min()
                else {
                    break;
                };
                if oldest == 0 {
                    break;
                }
                upper = oldest - 1;
            }
            session.close().await;
            (requests, events)
        });
    }
    let mut figures = Pager::default();
    while let Some(done) = tasks.join_next().await {
        let (requests, events) = done.unwrap();
        figures.requests += requests;
        figures.events += events;
    }
    figures.seconds = started.elapsed().as_secs_f64();
    figures
}

/// Archives the relays of the child started with `per_relay` (0: the one relay with a history)
/// from `since`, after a plain pager over them.
async fn archive(per_relay: usize) -> Figures {
    let history = per_relay == 0;
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
    // The benchmark's relays are on loopback.
    networks.clearnet.allow_private = true;
    let mut connector = Connector::new(networks.clone())
        .unwrap()
        .with_root_certificate(relays.ca.clone())
        .unwrap();
    for (host, address) in &relays.hosts {
        connector = connector.resolve(host, *address);
    }
    let until = if history {
        T0 + HISTORY_SPAN
    } else {
        T0 + per_relay as u64
    };
    let pager = pager(&connector, &urls, until).await;
    let config = SynchronizerConfig {
        processing: ProcessingConfig {
            since: if history { 0 } else { T0 as i64 },
            until: Some(until as i64),
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
    let events = if history {
        HISTORY_EVENTS
    } else {
        per_relay * RELAYS
    };
    assert_eq!(report.failed, 0, "{report:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM event_relay")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(stored as usize, events, "every event archived");
    Figures {
        relays: urls.len(),
        events,
        seconds,
        requests: report.requests,
        received: report.received,
        pager,
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
        let mut runs = vec![archive(0).await];
        for size in SIZES {
            runs.push(archive(size / RELAYS).await);
        }
        let limit = ingest_limit().await;
        println!("\n## Synchronizer: archive from loopback relays (limit 500, clamped to {RELAY_CLAMP})\n");
        println!(
            "| relays | events | s | pager s | s / pager s | REQs per 1,000 events | pager REQs per 1,000 | received / stored | events/s | ingest limit events/s | ratio | CPU s | CPU µs/event | verify CPU s | write s | peak RSS MiB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for f in runs {
            let rate = f.events as f64 / f.seconds;
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.0} |",
                f.relays,
                f.events,
                f.seconds,
                f.pager.seconds,
                f.seconds / f.pager.seconds,
                f.requests as f64 * 1000.0 / f.events as f64,
                f.pager.requests as f64 * 1000.0 / f.pager.events.max(1) as f64,
                f.received as f64 / f.events as f64,
                rate,
                limit,
                rate / limit,
                f.cpu,
                f.cpu * 1e6 / f.events as f64,
                f.verify,
                f.write,
                f.rss,
            );
        }
    });
}
