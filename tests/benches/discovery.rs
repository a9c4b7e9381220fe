//! `make bench`, discovery part:
//! - validator: 1,000 candidates on loopback (live TLS relays, dead ports, silent sockets) with
//!   clearnet `max_tasks` 30; candidates/s, CPU seconds, peak RSS, and the cycle time against the
//!   bound (⌈n_silent / max_tasks⌉ + 1) × timeout: only a silent socket can cost a whole
//!   timeout (a refused port and a live relay answer at once), in waves of `max_tasks`, plus
//!   one timeout for everything else;
//! - finder: the event phase over 1,000,000 archived events; events/s, and the ratio to one
//!   plain query reading the same rows (the same columns, in cursor order) into this process
//!   (the floor any scan must pay).

// A benchmark program: any failure must abort the run loudly, and the report goes to stdout.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

mod common;

use std::time::Instant;

use bigbrotr_core::metrics::Metrics;
use bigbrotr_core::runner::Context;
use bigbrotr_finder::{ApiConfig, EventsConfig, Finder, FinderConfig, LiveConfig};
use bigbrotr_models::relay::Relay;
use bigbrotr_testkit::TestDb;
use bigbrotr_testkit::relays::{HostilePeer, Hostility, TestCa, TestRelay, TlsFront};
use bigbrotr_utils::network::NetworksConfig;
use bigbrotr_utils::relay::Connector;
use bigbrotr_validator::{ProcessingConfig, Validator, ValidatorConfig};
use tokio_util::sync::CancellationToken;

use common::{cpu_seconds, peak_rss_mib};

const LIVE_RELAYS: usize = 10;
const NAMES_PER_RELAY: usize = 50;
const DEAD: usize = 400;
const SILENT: usize = 100;
const TIMEOUT: f64 = 2.0;
const MAX_TASKS: u32 = 30;
const ARCHIVE_EVENTS: i64 = 1_000_000;

fn context(db: &TestDb, service: &str) -> Context {
    Context {
        brotr: db.brotr(),
        metrics: Metrics::new(service),
        shutdown: CancellationToken::new(),
    }
}

async fn validator_bench() {
    let db = TestDb::new().await;
    let ctx = context(&db, "validator");
    let ca = TestCa::new();
    let mut keep_relays = Vec::new();
    let mut keep_fronts = Vec::new();
    let mut keep_peers = Vec::new();
    let mut networks = NetworksConfig::default();
    networks.clearnet.timeout = TIMEOUT;
    // The benchmark's relays are on loopback.
    networks.clearnet.allow_private = true;
    networks.clearnet.max_tasks = MAX_TASKS;
    let mut connector = Connector::new(networks.clone())
        .unwrap()
        .with_root_certificate(ca.der())
        .unwrap();
    let mut urls = Vec::new();
    for r in 0..LIVE_RELAYS {
        let names: Vec<String> = (0..NAMES_PER_RELAY)
            .map(|n| format!("live-{r}-{n}.bench.example"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let relay = TestRelay::start().await;
        let front = TlsFront::start(ca.server_config(&refs), relay.address()).await;
        for name in &names {
            connector = connector.resolve(name, front.address());
            urls.push(format!("wss://{name}"));
        }
        keep_relays.push(relay);
        keep_fronts.push(front);
    }
    for d in 0..DEAD {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let name = format!("dead-{d}.bench.example");
        connector = connector.resolve(&name, closed.local_addr().unwrap());
        urls.push(format!("wss://{name}"));
    }
    for s in 0..SILENT {
        let peer = HostilePeer::start(Hostility::SilentSocket).await;
        let name = format!("silent-{s}.bench.example");
        connector = connector.resolve(&name, peer.address());
        urls.push(format!("wss://{name}"));
        keep_peers.push(peer);
    }
    let relays: Vec<Relay> = urls.iter().map(|u| Relay::new(u, 1).unwrap()).collect();
    for chunk in relays.chunks(500) {
        db.brotr().insert_candidates(chunk, 1).await.unwrap();
    }
    let config = ValidatorConfig {
        processing: ProcessingConfig::default(),
        networks,
        ..Default::default()
    };
    let validator = Validator::new(config, connector);
    let cpu = cpu_seconds();
    let started = Instant::now();
    let report = validator.validate_candidates(&ctx).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    assert_eq!(report.probed as usize, urls.len());
    assert_eq!(report.promoted as usize, LIVE_RELAYS * NAMES_PER_RELAY);
    // Silent sockets hold a task for the whole timeout; refused ports and live relays answer
    // in milliseconds and share one timeout of slack.
    let bound = ((SILENT as f64 / f64::from(MAX_TASKS)).ceil() + 1.0) * TIMEOUT;
    println!("### Validator: {} candidates\n", urls.len());
    println!(
        "| candidates | live / dead / silent | max_tasks | timeout | cycle s | bound s | cycle / bound | candidates/s | CPU s | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} / {DEAD} / {SILENT} | {MAX_TASKS} | {TIMEOUT} s | {seconds:.2} | {bound:.1} | {:.2} | {:.0} | {cpu:.2} | {:.0} |\n",
        urls.len(),
        LIVE_RELAYS * NAMES_PER_RELAY,
        seconds / bound,
        urls.len() as f64 / seconds,
        peak_rss_mib()
    );
    assert!(
        seconds <= bound,
        "cycle {seconds:.1}s exceeds the bound {bound:.1}s"
    );
}

async fn finder_bench() {
    let db = TestDb::new().await;
    let ctx = context(&db, "finder");
    let load = Instant::now();
    // Ten relays; one event in ten names one of 5,000 relays in an `r` tag; every event has a
    // `p` and an `e` tag. Generated server-side: the finder does not check signatures.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO relay SELECT 'wss://archive-' || r || '.bench.example', 'clearnet', 1
           FROM generate_series(0, 9) r;
         INSERT INTO event (id, pubkey, created_at, kind, tags, tagvalues, content, sig)
         SELECT decode(md5(i::text) || md5((-i)::text), 'hex'),
                decode(md5('author' || (i % 1000)) || md5('k'), 'hex'),
                1700000000 + i, 1, t.tags, tags_to_tagvalues(t.tags), 'benchmark note',
                decode(repeat('00', 64), 'hex')
         FROM generate_series(1, {ARCHIVE_EVENTS}) i
         CROSS JOIN LATERAL (SELECT CASE WHEN i % 10 = 0
             THEN jsonb_build_array(jsonb_build_array('p', md5(i::text) || md5('p')),
                                    jsonb_build_array('e', md5((i + 1)::text) || md5('e')),
                                    jsonb_build_array('r', 'wss://found-' || ((i / 10) % 5000) || '.bench.example'))
             ELSE jsonb_build_array(jsonb_build_array('p', md5(i::text) || md5('p')),
                                    jsonb_build_array('e', md5((i + 1)::text) || md5('e')))
             END AS tags) t;
         INSERT INTO event_relay (event_id, relay_url, seen_at)
         SELECT id, 'wss://archive-' || (created_at % 10) || '.bench.example', created_at FROM event;
         ANALYZE;"
    )))
    .execute(db.pool())
    .await
    .unwrap();
    let load_s = load.elapsed().as_secs_f64();
    eprintln!("loaded {ARCHIVE_EVENTS} events in {load_s:.1}s");

    // The floor: the rows the finder reads (seen_at, id, tagvalues, in cursor order per relay)
    // read by one plain query into this process, through a cursor 10,000 rows at a time, each
    // value decoded.
    let floor = Instant::now();
    let (rows, values) = plain_read(&db).await;
    let floor_s = floor.elapsed().as_secs_f64();
    assert_eq!(rows, ARCHIVE_EVENTS);
    assert!(values >= ARCHIVE_EVENTS * 2, "{values} tag values read");

    let config = FinderConfig {
        api: ApiConfig {
            enabled: false,
            ..Default::default()
        },
        live: LiveConfig {
            enabled: false,
            ..Default::default()
        },
        events: EventsConfig::default(),
        ..Default::default()
    };
    let finder = Finder::new(
        config.clone(),
        Connector::new(config.networks.clone()).unwrap(),
    )
    .unwrap();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let report = finder.find(&ctx).await.unwrap().events;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    assert_eq!(report.events as i64, ARCHIVE_EVENTS);
    assert_eq!(report.added, 5_000);
    println!("### Finder event phase: {ARCHIVE_EVENTS} archived events\n");
    println!(
        "| events | relays | scan_size / batch_size | phase s | events/s | plain read s | plain / phase | finder CPU s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {ARCHIVE_EVENTS} | 10 | {} / {} | {seconds:.2} | {:.0} | {floor_s:.2} | {:.2} | {cpu:.2} |\n",
        config.events.scan_size,
        config.events.batch_size,
        ARCHIVE_EVENTS as f64 / seconds,
        floor_s / seconds,
    );
}

/// Reads every `(seen_at, id, tagvalues)` of the archive in the finder's order with one query;
/// returns the rows and the tag values decoded.
async fn plain_read(db: &TestDb) -> (i64, i64) {
    let mut tx = db.pool().begin().await.unwrap();
    sqlx::query(
        "DECLARE plain NO SCROLL CURSOR FOR
         SELECT er.seen_at, e.id, coalesce(e.tagvalues, '{}') AS tagvalues
         FROM event_relay er JOIN event e ON e.id = er.event_id
         ORDER BY er.relay_url, er.seen_at, er.event_id",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let (mut rows, mut values) = (0_i64, 0_i64);
    loop {
        let page: Vec<(i64, Vec<u8>, Vec<String>)> =
            sqlx::query_as("FETCH FORWARD 10000 FROM plain")
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        if page.is_empty() {
            break;
        }
        for (_, id, tagvalues) in &page {
            assert_eq!(id.len(), 32);
            values += tagvalues.len() as i64;
        }
        rows += page.len() as i64;
    }
    tx.rollback().await.unwrap();
    (rows, values)
}

fn main() {
    bigbrotr_core::bootstrap::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        validator_bench().await;
        finder_bench().await;
    });
}
