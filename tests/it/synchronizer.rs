//! The synchronizer end to end: rust-nostr's in-process relays seeded with known signed events
//! (behind TLS fronts with a per-test CA, some behind a middlebox that reverses, cuts or refuses
//! NIP-77), a real database, and faults: a dropped relay connection, a silent relay, database
//! connections cut mid-cycle, a stop mid-batch. After each, the archive is compared with the
//! exact set of valid matching events and every cursor is checked never to run ahead of it.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use bigbrotr_core::metrics::Metrics;
use bigbrotr_core::runner::Context;
use bigbrotr_db::Brotr;
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_db::migrate::Variant;
use bigbrotr_models::service_state::{Cursor, ServiceName, ServiceStateType};
use bigbrotr_synchronizer::config::{ProcessingConfig, RelayOverride};
use bigbrotr_synchronizer::walk::WINDOW_DONE_ID;
use bigbrotr_synchronizer::{CycleReport, Synchronizer, SynchronizerConfig};
use bigbrotr_testkit::TestDb;
use bigbrotr_testkit::relays::{
    HostilePeer, Hostility, Middlebox, MiddleboxOptions, TestCa, TestRelay, TlsFront,
    hidden_by_middlebox,
};
use bigbrotr_testkit::tcp::TcpProxy;
use bigbrotr_utils::network::NetworksConfig;
use bigbrotr_utils::relay::Connector;
use nostr::{EventBuilder, EventId, Keys, Kind, Timestamp};
use nostr_relay_builder::prelude::RelayBuilder;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

use crate::fixtures::relay;

/// The archive's time range in these tests: `[T0, T_END]`.
const T0: u64 = 1_700_000_000;
const T_END: i64 = 1_700_100_000;

/// Loopback relays reached as `wss://<name>.example.com` through TLS fronts.
struct Lab {
    ca: TestCa,
    keep: Vec<Box<dyn std::any::Any + Send>>,
    resolve: Vec<(String, SocketAddr)>,
}

impl Lab {
    fn new() -> Self {
        Self {
            ca: TestCa::new(),
            keep: Vec::new(),
            resolve: Vec::new(),
        }
    }

    /// Fronts the WebSocket server at `backend` as `wss://<name>.example.com`.
    async fn front(&mut self, name: &str, backend: SocketAddr) -> String {
        let host = format!("{name}.example.com");
        let front = TlsFront::start(self.ca.server_config(&[&host]), backend).await;
        self.resolve.push((host.clone(), front.address()));
        self.keep.push(Box::new(front));
        format!("wss://{host}")
    }

    /// A seeded relay (built from `builder`) fronted as `name`.
    async fn relay(
        &mut self,
        name: &str,
        builder: RelayBuilder,
        events: &[nostr::Event],
    ) -> String {
        let relay = TestRelay::seeded(builder, events).await;
        let url = self.front(name, relay.address()).await;
        self.keep.push(Box::new(relay));
        url
    }

    /// A seeded relay behind a middlebox, fronted as `name`.
    async fn relay_behind(
        &mut self,
        name: &str,
        builder: RelayBuilder,
        events: &[nostr::Event],
        options: MiddleboxOptions,
    ) -> (String, std::sync::Arc<Middlebox>) {
        let relay = TestRelay::seeded(builder, events).await;
        let middlebox = std::sync::Arc::new(Middlebox::start(relay.address(), options).await);
        let url = self.front(name, middlebox.address()).await;
        self.keep.push(Box::new(relay));
        self.keep.push(Box::new(middlebox.clone()));
        (url, middlebox)
    }

    fn connector(&self, keys: Option<Keys>) -> Connector {
        let mut connector = Connector::new(networks())
            .unwrap()
            .with_root_certificate(self.ca.der())
            .unwrap()
            .with_keys(keys);
        for (host, address) in &self.resolve {
            connector = connector.resolve(host, *address);
        }
        connector
    }
}

fn networks() -> NetworksConfig {
    let mut networks = NetworksConfig::default();
    networks.clearnet.timeout = 2.0;
    // The test relays are on loopback.
    networks.clearnet.allow_private = true;
    networks
}

/// Archive `[T0, T_END]` with `limit`, everything else default.
fn config(limit: u32) -> SynchronizerConfig {
    SynchronizerConfig {
        processing: ProcessingConfig {
            since: T0 as i64,
            until: Some(T_END),
            end_lag: 0,
            limit,
            batch_size: 100,
            ..ProcessingConfig::default()
        },
        networks: networks(),
        ..SynchronizerConfig::default()
    }
}

/// `config` with two filters (the notes, and reactions the test relays do not hold): a walk of
/// several filters reads ascending windows and commits each as it completes.
fn ascending(mut config: SynchronizerConfig) -> SynchronizerConfig {
    config.processing.filters = vec![
        serde_json::json!({"kinds": [1]}),
        serde_json::json!({"kinds": [7]}),
    ];
    config
}

fn context(brotr: Brotr) -> Context {
    Context {
        brotr,
        metrics: Metrics::new("synchronizer"),
        shutdown: CancellationToken::new(),
    }
}

/// A signed kind-1 note at `T0 + offset`.
fn note(keys: &Keys, offset: u64, n: usize) -> nostr::Event {
    EventBuilder::text_note(format!("note {n}"))
        .custom_created_at(Timestamp::from(T0 + offset))
        .sign_with_keys(keys)
        .unwrap()
}

/// `count` notes spread `per_second` to a second from `T0 + first`.
fn notes(keys: &Keys, first: u64, count: usize, per_second: usize) -> Vec<nostr::Event> {
    (0..count)
        .map(|n| note(keys, first + (n / per_second) as u64, n))
        .collect()
}

/// `event` with its signature replaced (a valid id, a signature that does not verify).
fn bad_signature(event: &nostr::Event) -> nostr::Event {
    let other = EventBuilder::text_note("other")
        .sign_with_keys(&Keys::generate())
        .unwrap();
    nostr::Event::new(
        event.id,
        event.pubkey,
        event.created_at,
        event.kind,
        event.tags.clone(),
        event.content.clone(),
        other.sig,
    )
}

/// `event` under an id that is not its hash.
fn bad_id(event: &nostr::Event) -> nostr::Event {
    nostr::Event::new(
        EventId::from_byte_array(rand_id()),
        event.pubkey,
        event.created_at,
        event.kind,
        event.tags.clone(),
        event.content.clone(),
        event.sig,
    )
}

fn rand_id() -> [u8; 32] {
    let keys = Keys::generate();
    keys.public_key().to_bytes()
}

fn ids(events: &[nostr::Event]) -> BTreeSet<[u8; 32]> {
    events.iter().map(|e| e.id.to_bytes()).collect()
}

/// The event ids archived from `url`.
async fn archived(db: &TestDb, url: &str) -> BTreeSet<[u8; 32]> {
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT event_id FROM event_relay WHERE relay_url = $1")
            .bind(url)
            .fetch_all(db.pool())
            .await
            .unwrap();
    rows.into_iter()
        .map(|id| <[u8; 32]>::try_from(id.as_slice()).unwrap())
        .collect()
}

async fn cursors(db: &TestDb) -> HashMap<String, Cursor> {
    db.brotr()
        .get_service_state(ServiceName::Synchronizer, ServiceStateType::Cursor, None)
        .await
        .unwrap()
        .into_iter()
        .map(|(url, value)| (url, Cursor::from_value(&value).unwrap()))
        .collect()
}

/// The relay has a cursor and it does not run ahead of the archive: every valid event at or
/// before it is stored. Returns the cursor's timestamp.
async fn assert_cursor_behind_archive(db: &TestDb, url: &str, valid: &[nostr::Event]) -> i64 {
    let Some(cursor) = cursors(db).await.remove(url) else {
        panic!("{url}: no cursor was written");
    };
    assert_eq!(cursor.id, WINDOW_DONE_ID, "{url}: window cursors only");
    let stored = archived(db, url).await;
    for event in valid {
        if event.created_at.as_secs() as i64 <= cursor.timestamp {
            assert!(
                stored.contains(&event.id.to_bytes()),
                "{url}: the cursor ({}) is past event {} at {} that is not stored",
                cursor.timestamp,
                event.id,
                event.created_at.as_secs()
            );
        }
    }
    cursor.timestamp
}

async fn add_relays(db: &TestDb, urls: &[&str]) {
    let relays: Vec<_> = urls.iter().map(|u| relay(u, T0 as i64)).collect();
    db.brotr().insert_relays(&relays).await.unwrap();
}

async fn run(db: &TestDb, config: SynchronizerConfig, connector: Connector) -> CycleReport {
    let ctx = context(db.brotr());
    Synchronizer::new(config, connector)
        .synchronize(&ctx)
        .await
        .unwrap()
}

fn outcome<'a>(report: &'a CycleReport, url: &str) -> &'a bigbrotr_synchronizer::RelayOutcome {
    report.relays.iter().find(|r| r.url == url).unwrap()
}

#[tokio::test]
async fn clamped_and_reordering_relays_are_archived_exactly_and_a_rerun_fetches_nothing() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    // 600 events, 6 to a second: the relay returns 50 when 500 are asked.
    let clamped_events = notes(&keys, 0, 600, 6);
    let clamped = lab
        .relay(
            "clamped",
            RelayBuilder::default().max_filter_limit(50),
            &clamped_events,
        )
        .await;
    // 300 events, 3 to a second, delivered oldest first, pages of 40 (clamp) for 100 asked.
    let reversed_events = notes(&keys, 5_000, 300, 3);
    let (reversed, middlebox) = lab
        .relay_behind(
            "reversed",
            RelayBuilder::default().max_filter_limit(40),
            &reversed_events,
            MiddleboxOptions {
                reverse_stored_events: true,
                ..MiddleboxOptions::default()
            },
        )
        .await;
    add_relays(&db, &[&clamped, &reversed]).await;

    let report = run(&db, config(500), lab.connector(None)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.completed, 2);
    assert_eq!(archived(&db, &clamped).await, ids(&clamped_events));
    assert_eq!(archived(&db, &reversed).await, ids(&reversed_events));
    assert!(
        middlebox
            .stats()
            .events
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 300
    );
    for (url, events) in [(&clamped, &clamped_events), (&reversed, &reversed_events)] {
        assert_eq!(assert_cursor_behind_archive(&db, url, events).await, T_END);
    }
    assert_eq!(report.rejections.total(), 0);
    // 600 events in pages of at most 50: the walk needs about 12 full pages plus the window
    // logic, never the original's 2–3 extra requests per window.
    let requests = outcome(&report, &clamped).stats.requests;
    assert!((12..=20).contains(&requests), "{requests} requests");

    let again = run(&db, config(500), lab.connector(None)).await;
    assert_eq!(again.planned, 0, "both relays are archived up to end_time");
    assert_eq!(again.requests, 0);
    assert_eq!(again.writer.written, 0);
}

#[tokio::test]
async fn a_thousand_events_in_one_second_are_listed_with_negentropy() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    let mut events = notes(&keys, 100, 1000, 1000);
    events.extend(notes(&keys, 50, 40, 4));
    events.extend(notes(&keys, 200, 40, 4));
    let dense = lab
        .relay(
            "dense",
            RelayBuilder::default().max_filter_limit(50),
            &events,
        )
        .await;
    add_relays(&db, &[&dense]).await;

    let report = run(&db, config(500), lab.connector(None)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(archived(&db, &dense).await, ids(&events));
    assert!(report.saturated_seconds >= 1);
    assert_eq!(report.unresolved_seconds, 0);
    assert_eq!(
        assert_cursor_behind_archive(&db, &dense, &events).await,
        T_END
    );
}

#[tokio::test]
async fn a_saturated_second_on_a_relay_without_nip77_is_counted_and_the_rest_archived() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    let crowded = notes(&keys, 100, 200, 200);
    let mut events = crowded.clone();
    let others = notes(&keys, 300, 60, 3);
    events.extend(others.iter().cloned());
    let (url, middlebox) = lab
        .relay_behind(
            "noneg",
            RelayBuilder::default().max_filter_limit(50),
            &events,
            MiddleboxOptions {
                refuse_negentropy: true,
                ..MiddleboxOptions::default()
            },
        )
        .await;
    add_relays(&db, &[&url]).await;

    let report = run(&db, config(500), lab.connector(None)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.unresolved_seconds, 1);
    assert_eq!(
        middlebox
            .stats()
            .negentropy_refused
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let stored = archived(&db, &url).await;
    // Every event outside the crowded second, and one page of it: the documented limit.
    assert!(ids(&others).is_subset(&stored));
    let crowded_stored = stored.intersection(&ids(&crowded)).count();
    assert_eq!(crowded_stored, 50);
}

#[tokio::test]
async fn auth_relays_are_archived_with_keys_and_fail_without() {
    let keys = Keys::generate();
    let events = notes(&keys, 0, 120, 2);
    let builder = || {
        RelayBuilder::default().nip42(nostr_relay_builder::prelude::RelayBuilderNip42 {
            mode: nostr_relay_builder::prelude::RelayBuilderNip42Mode::Read,
        })
    };

    let db = TestDb::new().await;
    let mut lab = Lab::new();
    let url = lab.relay("auth", builder(), &events).await;
    add_relays(&db, &[&url]).await;
    let report = run(&db, config(500), lab.connector(None)).await;
    assert_eq!(report.failed, 1);
    let error = outcome(&report, &url).error.clone().unwrap();
    assert!(error.contains("AUTH"), "{error}");
    assert!(archived(&db, &url).await.is_empty());
    assert!(cursors(&db).await.is_empty());

    let report = run(&db, config(500), lab.connector(Some(Keys::generate()))).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(archived(&db, &url).await, ids(&events));
}

#[tokio::test]
async fn invalid_oversized_and_forged_events_are_dropped_counted_and_never_stored() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    let valid = notes(&keys, 0, 100, 5);
    let forged_sig: Vec<_> = notes(&keys, 1_000, 5, 1)
        .iter()
        .map(bad_signature)
        .collect();
    let forged_id: Vec<_> = notes(&keys, 2_000, 4, 1).iter().map(bad_id).collect();
    let big: Vec<_> = (0..3)
        .map(|n| {
            EventBuilder::text_note("x".repeat(4000))
                .custom_created_at(Timestamp::from(T0 + 3_000 + n))
                .sign_with_keys(&keys)
                .unwrap()
        })
        .collect();
    let mut served = valid.clone();
    served.extend(forged_sig.iter().cloned());
    served.extend(forged_id.iter().cloned());
    served.extend(big.iter().cloned());
    let url = lab
        .relay(
            "forger",
            RelayBuilder::default().max_filter_limit(30),
            &served,
        )
        .await;
    add_relays(&db, &[&url]).await;

    let mut config = config(500);
    config.processing.max_event_size = Some(2048);
    let ctx = context(db.brotr());
    let report = Synchronizer::new(config, lab.connector(None))
        .synchronize(&ctx)
        .await
        .unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(archived(&db, &url).await, ids(&valid));
    assert_eq!(report.rejections.invalid_signature, 5);
    assert_eq!(report.rejections.invalid_id, 4);
    assert_eq!(report.rejections.oversized, 3);
    let tally = report.writer.relays[&url];
    assert_eq!(tally.rejections.total(), 12);
    assert_eq!(ctx.metrics.counter("events_rejected_invalid_signature"), 5);
    assert_eq!(ctx.metrics.counter("events_rejected_oversized"), 3);
    // Counted per reason only: a relay label would be one series per relay URL forever.
    let exported = ctx.metrics.encode();
    assert!(!exported.contains("relay=\""), "{exported}");
    let bad: BTreeSet<_> = ids(&forged_sig).union(&ids(&forged_id)).copied().collect();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM event WHERE id = ANY($1)")
        .bind(bad.iter().map(|id| id.to_vec()).collect::<Vec<_>>())
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn a_dropped_connection_keeps_the_cursor_behind_the_archive_and_the_rerun_completes() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    // Deep enough (4,000 seconds of one event, pages of 20) that the walk reads its four
    // segments from the top, then commits ascending windows from the start: the cut comes
    // after the first committed window, before the end.
    let events = notes(&keys, 0, 4000, 1);
    let (url, middlebox) = lab
        .relay_behind(
            "flaky",
            RelayBuilder::default().max_filter_limit(20),
            &events,
            MiddleboxOptions {
                cut_first_connection_after: Some(3300),
                ..MiddleboxOptions::default()
            },
        )
        .await;
    let silent = HostilePeer::start(Hostility::SilentRelay).await;
    let silent_url = lab.front("silent", silent.address()).await;
    add_relays(&db, &[&url, &silent_url]).await;

    let started = std::time::Instant::now();
    let report = run(&db, config(500), lab.connector(None)).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(report.failed, 2, "{report:?}");
    assert!(outcome(&report, &silent_url).error.is_some());
    assert_eq!(
        middlebox
            .stats()
            .cuts
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let partial = archived(&db, &url).await;
    assert!(!partial.is_empty() && partial.len() < events.len());
    let cut_at = assert_cursor_behind_archive(&db, &url, &events).await;
    assert!(
        (T0 as i64..T0 as i64 + 4000).contains(&cut_at),
        "a window was committed before the cut, not the end: {cut_at}"
    );

    let report = run(&db, config(500), lab.connector(None)).await;
    assert_eq!(outcome(&report, &url).error, None);
    assert_eq!(archived(&db, &url).await, ids(&events));
    assert_eq!(
        assert_cursor_behind_archive(&db, &url, &events).await,
        T_END
    );
    drop(silent);
}

#[tokio::test]
async fn database_connections_cut_mid_cycle_lose_nothing() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    let mut all = Vec::new();
    let mut urls = Vec::new();
    for i in 0..3 {
        let events = notes(&keys, i * 10_000, 1500, 1);
        let url = lab
            .relay(
                &format!("busy-{i}"),
                RelayBuilder::default().max_filter_limit(20),
                &events,
            )
            .await;
        all.push((url.clone(), events));
        urls.push(url);
    }
    add_relays(&db, &urls.iter().map(String::as_str).collect::<Vec<_>>()).await;

    let proxy = TcpProxy::start(db.proxy_target()).await;
    let mut brotr_config = BrotrConfig::default();
    brotr_config.pool.retry.max_attempts = 1;
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .connect_with(db.options_via(proxy.address()))
        .await
        .unwrap();
    let ctx = context(Brotr::from_pool(pool, brotr_config));
    // Two filters: each relay is read in ascending windows committed one by one (pages of 20,
    // 1,500 seconds deep), so every relay has a cursor before the cuts and its windows after.
    let synchronizer = Synchronizer::new(ascending(config(100)), lab.connector(None));
    let cycle = synchronizer.synchronize(&ctx);
    let saboteur = async {
        // Cut once every relay has committed a window, then keep cutting for a while.
        let give_up = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                std::time::Instant::now() < give_up,
                "no window was committed"
            );
            if cursors(&db).await.len() == urls.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut cut = 0;
        for _ in 0..20 {
            cut += proxy.cut();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cut
    };
    let (result, cut) = tokio::join!(cycle, saboteur);
    assert!(cut > 0, "the proxy cut live connections");
    match &result {
        // A cut connection was replaced before the writer used it again.
        Ok(report) => assert_eq!(report.planned, 3, "{report:?}"),
        // The writer's statement died with its connection: the cycle fails (no retry here).
        Err(error) => {
            let error = format!("{error:#}");
            assert!(error.contains("database"), "{error}");
        }
    }
    for (url, events) in &all {
        assert_cursor_behind_archive(&db, url, events).await;
    }

    let report = run(&db, ascending(config(100)), lab.connector(None)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    for (url, events) in &all {
        assert_eq!(&archived(&db, url).await, &ids(events), "{url}");
        assert_eq!(assert_cursor_behind_archive(&db, url, events).await, T_END);
    }
}

#[tokio::test]
async fn a_stop_mid_batch_commits_only_whole_windows_and_the_next_run_completes() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    let events = notes(&keys, 0, 3000, 2);
    let url = lab
        .relay(
            "long",
            RelayBuilder::default().max_filter_limit(20),
            &events,
        )
        .await;
    add_relays(&db, &[&url]).await;

    let ctx = context(db.brotr());
    // Two filters: ascending windows committed one by one; the stop comes after the first.
    let synchronizer = Synchronizer::new(ascending(config(500)), lab.connector(None));
    let stopper = async {
        let give_up = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                std::time::Instant::now() < give_up,
                "no window was committed"
            );
            if !cursors(&db).await.is_empty() {
                ctx.shutdown.cancel();
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (report, ()) = tokio::join!(synchronizer.synchronize(&ctx), stopper);
    let report = report.unwrap();
    let stopped = outcome(&report, &url).error.clone().unwrap_or_default();
    assert!(stopped.contains("shutdown"), "{stopped}");
    let partial = archived(&db, &url).await;
    assert!(partial.len() < events.len());
    assert!(assert_cursor_behind_archive(&db, &url, &events).await < T0 as i64 + 1500);

    let report = run(&db, ascending(config(500)), lab.connector(None)).await;
    assert_eq!(report.failed, 0);
    assert_eq!(archived(&db, &url).await, ids(&events));
    assert_eq!(
        assert_cursor_behind_archive(&db, &url, &events).await,
        T_END
    );
}

#[tokio::test]
async fn since_filters_overrides_and_resumption_follow_the_configuration() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    let notes_ = notes(&keys, 0, 200, 2);
    let reactions: Vec<nostr::Event> = (0..50)
        .map(|n| {
            EventBuilder::new(Kind::Reaction, "+")
                .custom_created_at(Timestamp::from(T0 + 10 + n))
                .sign_with_keys(&keys)
                .unwrap()
        })
        .collect();
    let mut served = notes_.clone();
    served.extend(reactions.iter().cloned());
    let plain = lab.relay("plain", RelayBuilder::default(), &served).await;
    let special = lab.relay("special", RelayBuilder::default(), &served).await;
    add_relays(&db, &[&plain, &special]).await;

    let mut config = config(500);
    // processing.since is honoured for relays without a cursor: seconds 0..49 are skipped.
    config.processing.since = T0 as i64 + 50;
    config.processing.until = Some(T0 as i64 + 79);
    config.processing.filters = vec![serde_json::json!({"kinds": [1]})];
    config.overrides.insert(
        special.clone(),
        RelayOverride {
            filters: Some(vec![serde_json::json!({"kinds": [7]})]),
            limit: Some(10),
            ..RelayOverride::default()
        },
    );
    let report = run(&db, config.clone(), lab.connector(None)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    let in_range = |e: &&nostr::Event, from: u64, to: u64| {
        (T0 + from..=T0 + to).contains(&e.created_at.as_secs())
    };
    let expect_plain: Vec<_> = notes_
        .iter()
        .filter(|e| in_range(e, 50, 79))
        .cloned()
        .collect();
    let expect_special: Vec<_> = reactions
        .iter()
        .filter(|e| in_range(e, 50, 79))
        .cloned()
        .collect();
    assert_eq!(archived(&db, &plain).await, ids(&expect_plain));
    assert_eq!(archived(&db, &special).await, ids(&expect_special));
    assert_eq!(
        cursors(&db).await[&plain],
        Cursor::new(T0 as i64 + 79, WINDOW_DONE_ID).unwrap()
    );

    // Moving `until` on archives only the new seconds: one window per relay.
    config.processing.until = Some(T0 as i64 + 99);
    let report = run(&db, config, lab.connector(None)).await;
    assert_eq!(report.failed, 0);
    let expect_plain: Vec<_> = notes_
        .iter()
        .filter(|e| in_range(e, 50, 99))
        .cloned()
        .collect();
    assert_eq!(archived(&db, &plain).await, ids(&expect_plain));
    // One page, and one request confirming the page was not cut (the page size is learned
    // per connection).
    assert!(outcome(&report, &plain).stats.requests <= 2);
    assert_eq!(report.writer.inserted, 40);
}

#[tokio::test]
async fn lilbrotr_archives_ids_without_tags_content_or_signatures() {
    let db = TestDb::with_variant(Variant::LilBrotr).await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    let events = notes(&keys, 0, 80, 4);
    let url = lab.relay("lil", RelayBuilder::default(), &events).await;
    add_relays(&db, &[&url]).await;
    let report = run(&db, config(500), lab.connector(None)).await;
    assert_eq!(report.failed, 0);
    assert_eq!(archived(&db, &url).await, ids(&events));
    let payload: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event WHERE tags IS NOT NULL OR content IS NOT NULL OR sig IS NOT NULL",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(payload, 0);
}

#[tokio::test]
async fn cursors_of_deleted_relays_are_cleaned_up() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    let events = notes(&keys, 0, 10, 1);
    let url = lab.relay("gone", RelayBuilder::default(), &events).await;
    add_relays(&db, &[&url]).await;
    run(&db, config(500), lab.connector(None)).await;
    assert_eq!(cursors(&db).await.len(), 1);
    sqlx::query("DELETE FROM event_relay")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM relay")
        .execute(db.pool())
        .await
        .unwrap();
    let ctx = context(db.brotr());
    let synchronizer = Synchronizer::new(config(500), lab.connector(None));
    assert_eq!(synchronizer.cleanup_cursors(&ctx).await.unwrap(), 1);
    assert!(cursors(&db).await.is_empty());
}

#[tokio::test]
async fn a_relay_whose_pages_come_back_short_while_older_events_remain_is_archived_completely() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    // 2,000 events, two to a second, pages of at most 100; the middlebox hides the same tenth of
    // them from every page after the relay applied its limit, so pages come back short (about
    // 90 events, never the same count twice in a row) while older events remain.
    let events = notes(&keys, 0, 2000, 2);
    let served: Vec<nostr::Event> = events
        .iter()
        .filter(|e| !hidden_by_middlebox(&e.id.to_bytes(), 10))
        .cloned()
        .collect();
    assert!((1700..1900).contains(&served.len()), "{}", served.len());
    let (url, _middlebox) = lab
        .relay_behind(
            "shortpages",
            RelayBuilder::default().max_filter_limit(100),
            &events,
            MiddleboxOptions {
                drop_events_one_in: Some(10),
                ..MiddleboxOptions::default()
            },
        )
        .await;
    add_relays(&db, &[&url]).await;

    let report = run(&db, config(500), lab.connector(None)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    let stored = archived(&db, &url).await;
    assert_eq!(
        stored.len(),
        served.len(),
        "every event the relay serves is archived"
    );
    assert_eq!(stored, ids(&served));
    assert_eq!(
        assert_cursor_behind_archive(&db, &url, &served).await,
        T_END
    );
    assert_eq!(report.unresolved_seconds, 0);
}

#[tokio::test]
async fn a_relay_streaming_invalid_frames_fails_within_the_timeout_and_is_counted() {
    let db = TestDb::new().await;
    let mut lab = Lab::new();
    let garbage = HostilePeer::start(Hostility::GarbageStream).await;
    let url = lab.front("garbage", garbage.address()).await;
    add_relays(&db, &[&url]).await;
    let mut config = config(500);
    // Long enough to tell the bound apart from the network's 2 s timeout.
    config.timeouts.idle = 30.0;
    let ctx = context(db.brotr());
    let started = std::time::Instant::now();
    let report = Synchronizer::new(config, lab.connector(None))
        .synchronize(&ctx)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(report.failed, 1, "{report:?}");
    assert!(
        took < Duration::from_secs(10),
        "the relay held its task for {took:?}"
    );
    let error = outcome(&report, &url).error.clone().unwrap();
    assert!(error.contains("invalid"), "{error}");
    assert_eq!(ctx.metrics.counter("relay_failures_invalid_frames"), 1);
    assert!(cursors(&db).await.is_empty());
}

/// Peak resident set size of this process in MiB since the last reset.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

#[tokio::test]
async fn a_relay_serving_8_mib_events_stays_within_the_memory_of_the_benchmark() {
    let db = TestDb::new().await;
    let mut lab = Lab::new();
    // 40 events of 8 MiB for every REQ: 320 MiB a page.
    let huge = HostilePeer::start(Hostility::HugeEvents {
        count: 40,
        created_at: T0 + 10,
    })
    .await;
    let url = lab.front("huge", huge.address()).await;
    add_relays(&db, &[&url]).await;
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_rss_mib();
    let report = run(&db, config(500), lab.connector(None)).await;
    let peak = peak_rss_mib();
    // The synchronizer benchmark's peak RSS for 200,000 events (docs/benchmarks.md), with the
    // hostile relay and its TLS front in this same process.
    assert!(
        peak < 68.0,
        "peak RSS {peak:.0} MiB (before the cycle: {before:.0} MiB)"
    );
    assert!(archived(&db, &url).await.is_empty());
    assert!(report.rejections.oversized >= 40, "{report:?}");
}

#[tokio::test]
async fn a_resume_from_an_original_cursor_reports_no_second_it_did_not_see() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    let events = notes(&keys, 0, 40, 2);
    let (url, _middlebox) = lab
        .relay_behind(
            "resumed",
            RelayBuilder::default(),
            &events,
            MiddleboxOptions {
                refuse_negentropy: true,
                ..MiddleboxOptions::default()
            },
        )
        .await;
    add_relays(&db, &[&url]).await;
    // The original's cursor: the created_at and id of the last event it archived.
    let last = events.last().unwrap();
    let cursor = Cursor::new(last.created_at.as_secs() as i64, &last.id.to_hex()).unwrap();
    let state = bigbrotr_models::service_state::ServiceState::cursor(
        ServiceName::Synchronizer,
        &url,
        &cursor,
    )
    .unwrap();
    db.brotr().upsert_service_state(&[state]).await.unwrap();

    let report = run(&db, config(500), lab.connector(None)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.saturated_seconds, 0, "{report:?}");
    assert_eq!(report.unresolved_seconds, 0, "{report:?}");
    assert_eq!(
        cursors(&db).await[&url],
        Cursor::new(T_END, WINDOW_DONE_ID).unwrap()
    );
}

#[tokio::test]
async fn a_first_run_from_since_zero_costs_about_what_a_plain_pager_costs() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    // 5,000 events five seconds apart, read from `since: 0` with `limit: 500`: a plain `until`
    // pager needs 10 full pages and one empty answer.
    let events: Vec<nostr::Event> = (0..5000)
        .map(|n| note(&keys, 1_000 + 5 * n, n as usize))
        .collect();
    let url = lab
        .relay(
            "pager",
            RelayBuilder::default().max_filter_limit(500),
            &events,
        )
        .await;
    add_relays(&db, &[&url]).await;
    let mut config = config(500);
    config.processing.since = 0;
    config.processing.until = Some(T0 as i64 + 30_000);
    let report = run(&db, config, lab.connector(None)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(archived(&db, &url).await, ids(&events));
    let stats = outcome(&report, &url).stats;
    assert!(
        stats.requests <= 12,
        "{} requests: {stats:?}",
        stats.requests
    );
    assert!(
        stats.received as f64 <= 1.1 * events.len() as f64,
        "{} events received for {} stored: {stats:?}",
        stats.received,
        events.len()
    );
    assert_eq!(stats.abandoned_windows, 0, "{stats:?}");
}

#[tokio::test]
async fn a_response_too_large_in_bytes_is_asked_again_with_a_smaller_limit() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    // 150 events of 100 KB, three to a second: 15 MB for one page, more than a response may
    // hold (8 MiB); with the limit halved to 62 a page holds about 6 MB.
    let events: Vec<nostr::Event> = (0..150)
        .map(|n| {
            EventBuilder::text_note(format!("{n} {}", "y".repeat(100_000)))
                .custom_created_at(Timestamp::from(T0 + n / 3))
                .sign_with_keys(&keys)
                .unwrap()
        })
        .collect();
    let url = lab.relay("large", RelayBuilder::default(), &events).await;
    add_relays(&db, &[&url]).await;
    let mut config = config(500);
    config.processing.max_event_size = Some(200_000);
    let report = run(&db, config, lab.connector(None)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(archived(&db, &url).await, ids(&events));
    assert_eq!(
        assert_cursor_behind_archive(&db, &url, &events).await,
        T_END
    );
}

#[tokio::test]
async fn several_filters_are_archived_in_ascending_windows_exactly() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let mut lab = Lab::new();
    // Two filters over a relay with pages of 50: 3,000 notes (more than 32 pages) and 400
    // reactions, and events of a third kind that neither filter asks for.
    let notes_ = notes(&keys, 0, 3000, 3);
    let reactions: Vec<nostr::Event> = (0..400)
        .map(|n| {
            EventBuilder::new(Kind::Reaction, "+")
                .custom_created_at(Timestamp::from(T0 + 2 * n))
                .sign_with_keys(&keys)
                .unwrap()
        })
        .collect();
    let reposts: Vec<nostr::Event> = (0..100)
        .map(|n| {
            EventBuilder::new(Kind::Repost, "")
                .custom_created_at(Timestamp::from(T0 + n))
                .sign_with_keys(&keys)
                .unwrap()
        })
        .collect();
    let mut served = notes_.clone();
    served.extend(reactions.iter().cloned());
    served.extend(reposts.iter().cloned());
    let url = lab
        .relay(
            "filters",
            RelayBuilder::default().max_filter_limit(50),
            &served,
        )
        .await;
    add_relays(&db, &[&url]).await;
    let mut config = config(500);
    config.processing.filters = vec![
        serde_json::json!({"kinds": [1]}),
        serde_json::json!({"kinds": [7]}),
    ];
    let report = run(&db, config, lab.connector(None)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    let mut expected = notes_.clone();
    expected.extend(reactions.iter().cloned());
    assert_eq!(archived(&db, &url).await, ids(&expected));
    assert_eq!(
        assert_cursor_behind_archive(&db, &url, &expected).await,
        T_END
    );
    // Windows too wide for the data are narrowed after their first page, not after 32: the
    // events received stay within 1.1 × those stored.
    let stats = outcome(&report, &url).stats;
    assert!(stats.windows > 1, "{stats:?}");
    assert!(
        stats.received as f64 <= 1.1 * expected.len() as f64,
        "{stats:?}"
    );
}
