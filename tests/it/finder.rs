//! The finder end to end against a real database: HTTP API sources served by a local server,
//! the archive scan with resumable cursors and all-or-nothing flushes, and live discovery from
//! an in-process relay behind TLS.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bigbrotr_finder::{ApiConfig, ApiSource, EventsConfig, Finder, FinderConfig, LiveConfig};
use bigbrotr_models::event_relay::EventRelay;
use bigbrotr_models::service_state::{
    CandidateRecord, Cursor, ServiceName, ServiceState, ServiceStateType,
};
use bigbrotr_testkit::TestDb;
use nostr::{EventBuilder, Keys, Kind, Tag, Timestamp};

use crate::fixtures::{event, relay};
use crate::validator::{context, peers};

async fn api_server() -> SocketAddr {
    let app = Router::new()
        .route(
            "/list",
            get(|| async {
                r#"{"relays": ["wss://a.example.com", "wss://A.example.com:443/", "ws://127.0.0.1",
                    "not a url", {"url": "wss://nested.example.com"}, 7, "wss://b.example.com"]}"#
            }),
        )
        .route(
            "/objects",
            get(|| async { r#"[{"url":"wss://c.example.com"}]"# }),
        )
        .route("/big", get(|| async { vec![b' '; 64 * 1024] }))
        .route(
            "/error",
            get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "[]") }),
        )
        .route("/notjson", get(|| async { "<html>" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "[]"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn only_api(sources: Vec<ApiSource>) -> FinderConfig {
    FinderConfig {
        api: ApiConfig {
            request_delay: 0.0,
            max_response_size: 16 * 1024,
            sources,
            ..Default::default()
        },
        ..no_phase()
    }
}

/// Every phase disabled: a test enables the one it exercises.
fn no_phase() -> FinderConfig {
    let mut config = FinderConfig::default();
    config.api.enabled = false;
    config.events.enabled = false;
    config.live.enabled = false;
    config
}

fn finder(config: FinderConfig) -> Finder {
    bigbrotr_core::bootstrap::install_crypto_provider();
    let connector = bigbrotr_utils::relay::Connector::new(config.networks.clone()).unwrap();
    Finder::new(config, connector).unwrap()
}

async fn candidate_urls(db: &TestDb) -> Vec<String> {
    let mut urls: Vec<String> = db
        .brotr()
        .get_service_state(ServiceName::Validator, ServiceStateType::Checkpoint, None)
        .await
        .unwrap()
        .into_iter()
        .map(|(url, _)| url)
        .collect();
    urls.sort();
    urls
}

#[tokio::test]
async fn api_sources_feed_candidates_with_cooldown_and_cleanup() {
    let db = TestDb::new().await;
    let ctx = context(&db, "finder");
    let address = api_server().await;
    let url = |path: &str| format!("http://{address}{path}");
    let mut slow = ApiSource::new(&url("/slow"), "[*]");
    slow.timeout = 0.5;
    slow.connect_timeout = 0.5;
    let sources = vec![
        ApiSource::new(&url("/list"), "relays"),
        ApiSource::new(&url("/objects"), "[*].url"),
        ApiSource::new(&url("/big"), "[*]"),
        ApiSource::new(&url("/error"), "[*]"),
        ApiSource::new(&url("/notjson"), "[*]"),
        ApiSource::new(&url("/list?again"), "relays[0]"),
        slow,
    ];
    let f = finder(only_api(sources.clone()));
    let report = f.find(&ctx).await.unwrap().api;
    assert_eq!((report.fetched, report.failed), (2, 5), "{report:?}");
    assert_eq!(report.added, 3);
    assert_eq!(
        candidate_urls(&db).await,
        vec![
            "wss://a.example.com",
            "wss://b.example.com",
            "wss://c.example.com"
        ]
    );
    let checkpoints = db
        .brotr()
        .get_service_state(ServiceName::Finder, ServiceStateType::Checkpoint, None)
        .await
        .unwrap();
    let keys: Vec<&str> = checkpoints.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec![url("/list"), url("/objects")]);

    // Within the cooldown the fetched sources are skipped; the failed ones are retried.
    let again = f.find(&ctx).await.unwrap().api;
    assert_eq!((again.cooling, again.fetched, again.failed), (2, 0, 5));

    // A source removed from the configuration loses its checkpoint.
    let trimmed = finder(only_api(vec![ApiSource::new(&url("/objects"), "[*].url")]));
    assert_eq!(trimmed.cleanup_state(&ctx).await.unwrap(), (0, 1));
}

fn tagged(keys: &Keys, created_at: u64, tags: Vec<Vec<&str>>) -> bigbrotr_models::event::Event {
    event(keys, 1, created_at, "wss://in-content.example.com", tags)
}

async fn archive(
    db: &TestDb,
    relay_url: &str,
    seen_at: i64,
    events: &[bigbrotr_models::event::Event],
) {
    let records: Vec<EventRelay> = events
        .iter()
        .map(|e| EventRelay {
            event: e.clone(),
            relay: relay(relay_url, 1),
            seen_at,
        })
        .collect();
    db.brotr()
        .insert_event_relays(&records, true)
        .await
        .unwrap();
}

fn only_events(batch_size: u32, scan_size: u32) -> FinderConfig {
    FinderConfig {
        events: EventsConfig {
            batch_size,
            scan_size,
            parallel_relays: 4,
            ..Default::default()
        },
        ..no_phase()
    }
}

#[tokio::test]
async fn archived_events_name_relays_and_cursors_resume() {
    let db = TestDb::new().await;
    let ctx = context(&db, "finder");
    let keys = Keys::generate();
    let mut first = Vec::new();
    for i in 0..25 {
        let found = format!("wss://found-{i}.example.com");
        first.push(tagged(&keys, 1000 + i, vec![vec!["r", &found]]));
    }
    first.push(tagged(
        &keys,
        2000,
        vec![
            vec!["relay", "wss://long-key.example.com"],
            vec!["e", "abc", "wss://second-value.example.com"],
            vec!["x", " wss://X-Tag.example.com:443/path?query#frag"],
            vec!["r", "wss://192.168.1.1"],
            vec!["r", "wss://known.example.com"],
            vec!["t"],
        ],
    ));
    archive(&db, "wss://known.example.com", 100, &first).await;
    // A candidate found again keeps its failures.
    let existing = ServiceState::candidate(
        "wss://found-0.example.com",
        &CandidateRecord {
            network: bigbrotr_models::relay::NetworkType::Clearnet,
            failures: 9,
            timestamp: 5,
        },
    )
    .unwrap();
    db.brotr().upsert_service_state(&[existing]).await.unwrap();

    let f = finder(only_events(10, 10));
    let report = f.find(&ctx).await.unwrap().events;
    assert_eq!(report.events, 26);
    assert!(report.flushes >= 3, "{report:?}");
    let urls = candidate_urls(&db).await;
    assert_eq!(urls.len(), 26, "{urls:?}");
    assert!(urls.contains(&"wss://x-tag.example.com/path".to_owned()));
    for absent in ["long-key", "second-value", "in-content", "192.168"] {
        assert!(!urls.iter().any(|u| u.contains(absent)), "{absent}");
    }
    let kept = db
        .brotr()
        .get_service_state(
            ServiceName::Validator,
            ServiceStateType::Checkpoint,
            Some("wss://found-0.example.com"),
        )
        .await
        .unwrap();
    assert_eq!(CandidateRecord::from_value(&kept[0].1).unwrap().failures, 9);
    let cursor = db
        .brotr()
        .get_service_state(
            ServiceName::Finder,
            ServiceStateType::Cursor,
            Some("wss://known.example.com"),
        )
        .await
        .unwrap();
    let cursor = Cursor::from_value(&cursor[0].1).unwrap();
    assert_eq!(cursor.timestamp, 100);
    let max_id = first.iter().map(|e| hex::encode(e.id())).max().unwrap();
    assert_eq!(cursor.id, max_id);

    // Only what arrived after the cursor is read next time.
    let later = tagged(&keys, 3000, vec![vec!["r", "wss://later.example.com"]]);
    archive(
        &db,
        "wss://known.example.com",
        200,
        std::slice::from_ref(&later),
    )
    .await;
    let next = f.find(&ctx).await.unwrap().events;
    assert_eq!((next.events, next.added), (1, 1));

    // A cursor whose relay is gone is cleaned up.
    sqlx::query("DELETE FROM relay")
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(f.cleanup_state(&ctx).await.unwrap(), (1, 0));
}

#[tokio::test]
async fn a_failed_flush_stores_neither_candidates_nor_cursors() {
    let db = TestDb::new().await;
    let ctx = context(&db, "finder");
    let keys = Keys::generate();
    let events: Vec<_> = (0..5)
        .map(|i| {
            let url = format!("wss://f{i}.example.com");
            tagged(&keys, 10 + i, vec![vec!["r", &url]])
        })
        .collect();
    archive(&db, "wss://source.example.com", 50, &events).await;
    // The cursor write fails inside the flush's transaction.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_cursor() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'no cursors today'; END $$;
         CREATE TRIGGER refuse_cursor BEFORE INSERT ON service_state FOR EACH ROW
         WHEN (NEW.state_type = 'cursor') EXECUTE FUNCTION refuse_cursor();",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let f = finder(only_events(10, 10));
    let error = f.find(&ctx).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("no cursors today"),
        "{error:#}"
    );
    assert!(candidate_urls(&db).await.is_empty());

    sqlx::raw_sql("DROP TRIGGER refuse_cursor ON service_state")
        .execute(db.pool())
        .await
        .unwrap();
    let report = f.find(&ctx).await.unwrap().events;
    assert_eq!((report.events, report.added), (5, 5));
}

#[tokio::test]
async fn live_discovery_reads_relay_lists_and_monitor_events_with_a_cursor() {
    let db = TestDb::new().await;
    let ctx = context(&db, "finder");
    let peers = peers(1, 0, 0, 5.0).await;
    let source = relay("wss://live-0.example.com", 0);
    let connection = peers.connector.connect(&source).await.unwrap();
    let author = Keys::generate();
    let base = 1_700_000_000_u64;
    for i in 0..23_u64 {
        let listed = format!("wss://listed-{i}.example.com");
        let list = EventBuilder::new(Kind::RelayList, "")
            .tags([Tag::parse(["r", listed.as_str()]).unwrap()])
            .custom_created_at(Timestamp::from(base + i))
            .sign_with_keys(&Keys::generate())
            .unwrap();
        connection.relay().send_event(&list).await.unwrap();
    }
    let monitored = EventBuilder::new(Kind::from(30166), "")
        .tags([
            Tag::parse(["d", "wss://monitored.example.com"]).unwrap(),
            Tag::parse(["n", "clearnet"]).unwrap(),
        ])
        .custom_created_at(Timestamp::from(base + 100))
        .sign_with_keys(&author)
        .unwrap();
    connection.relay().send_event(&monitored).await.unwrap();
    let chatter = EventBuilder::text_note("wss://ignored.example.com")
        .sign_with_keys(&author)
        .unwrap();
    connection.relay().send_event(&chatter).await.unwrap();

    let config = FinderConfig {
        live: LiveConfig {
            enabled: true,
            relays: vec!["wss://live-0.example.com".to_owned()],
            page_size: 10,
            ..Default::default()
        },
        networks: peers.networks.clone(),
        ..no_phase()
    };
    let f = Finder::new(config, peers.connector.clone()).unwrap();
    let report = f.find(&ctx).await.unwrap().live;
    assert_eq!((report.relays, report.events, report.added), (1, 24, 24));
    let urls = candidate_urls(&db).await;
    assert!(urls.contains(&"wss://monitored.example.com".to_owned()));
    assert!(urls.contains(&"wss://listed-0.example.com".to_owned()));
    assert!(!urls.iter().any(|u| u.contains("ignored")));
    let cursor = db
        .brotr()
        .get_service_state(
            ServiceName::Finder,
            ServiceStateType::Cursor,
            Some("live:wss://live-0.example.com"),
        )
        .await
        .unwrap();
    assert_eq!(
        Cursor::from_value(&cursor[0].1).unwrap().timestamp,
        (base + 100) as i64
    );

    // The next cycle starts at the cursor: only the newest event is read again.
    let next = f.find(&ctx).await.unwrap().live;
    assert_eq!((next.events, next.added), (1, 0));

    // An unreachable live relay is a recorded failure, not a failed cycle.
    let dead = Finder::new(
        FinderConfig {
            live: LiveConfig {
                relays: vec!["wss://dead-0.example.com".to_owned()],
                ..LiveConfig::default()
            },
            networks: peers.networks.clone(),
            ..no_phase()
        },
        peers
            .connector
            .clone()
            .resolve("dead-0.example.com", "127.0.0.1:1".parse().unwrap()),
    )
    .unwrap();
    assert_eq!(dead.find(&ctx).await.unwrap().live.failed, 1);
    connection.shutdown().await;
}

#[tokio::test]
async fn an_event_from_the_future_does_not_stop_live_discovery() {
    let db = TestDb::new().await;
    let ctx = context(&db, "finder");
    let peers = peers(1, 0, 0, 5.0).await;
    let source = relay("wss://live-0.example.com", 0);
    let connection = peers.connector.connect(&source).await.unwrap();
    let list = |url: &str, at: u64| {
        EventBuilder::new(Kind::RelayList, "")
            .tags([Tag::parse(["r", url]).unwrap()])
            .custom_created_at(Timestamp::from(at))
            .sign_with_keys(&Keys::generate())
            .unwrap()
    };
    // Dated 1 January 2100.
    let future = list("wss://from-2100.example.com", 4_102_444_800);
    connection.relay().send_event(&future).await.unwrap();
    let config = FinderConfig {
        live: LiveConfig {
            enabled: true,
            relays: vec!["wss://live-0.example.com".to_owned()],
            ..Default::default()
        },
        networks: peers.networks.clone(),
        ..no_phase()
    };
    let f = Finder::new(config, peers.connector.clone()).unwrap();
    assert_eq!(f.find(&ctx).await.unwrap().live.added, 1);
    let cursor = db
        .brotr()
        .get_service_state(
            ServiceName::Finder,
            ServiceStateType::Cursor,
            Some("live:wss://live-0.example.com"),
        )
        .await
        .unwrap();
    let timestamp = Cursor::from_value(&cursor[0].1).unwrap().timestamp;
    let now = bigbrotr_core::clock::now();
    assert!(
        timestamp <= now,
        "the cursor never passes the local clock: {timestamp}"
    );
    // A relay list published now is still found on the next cycle.
    let current = list("wss://from-now.example.com", now as u64);
    connection.relay().send_event(&current).await.unwrap();
    f.find(&ctx).await.unwrap();
    assert!(
        candidate_urls(&db)
            .await
            .contains(&"wss://from-now.example.com".to_owned())
    );
    connection.shutdown().await;
}
