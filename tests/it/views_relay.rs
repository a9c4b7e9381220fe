//! The relay materialized views (reference §1.6): relay_metadata_latest, relay_stats,
//! relay_software_counts and supported_nip_counts, which read the `{"data": …}` envelope, and the
//! refresh dependency order (per view through the facade, and all_statistics_refresh()).

use bigbrotr_models::metadata::MetadataType::{Nip11Info, Nip66Geo, Nip66Rtt};
use bigbrotr_testkit::TestDb;
use serde_json::{Value, json};
use sqlx::Row;

use crate::dbkit::{
    VIEWS_IN_ORDER, count, doc, ev0, insert_events, insert_relay, link, refresh_all, snapshot,
};

const CLEAR: &str = "clearnet";

#[tokio::test]
async fn relay_metadata_latest_keeps_the_newest_snapshot_per_relay_and_type() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let old = doc(Nip11Info, json!({"name": "old"}));
    let new = doc(Nip11Info, json!({"name": "new"}));
    let rtt = doc(Nip66Rtt, json!({"rtt_open": 5}));
    let b_doc = doc(Nip11Info, json!({"name": "b"}));
    snapshot(pool, "wss://a.example.com", CLEAR, &old, 100).await;
    snapshot(pool, "wss://a.example.com", CLEAR, &new, 200).await;
    snapshot(pool, "wss://a.example.com", CLEAR, &old, 150).await;
    snapshot(pool, "wss://a.example.com", CLEAR, &rtt, 120).await;
    snapshot(pool, "wss://b.example.com", CLEAR, &b_doc, 50).await;
    refresh_all(&db.brotr()).await;
    let got: Vec<(String, String, i64, Vec<u8>, Value)> = sqlx::query_as(
        "SELECT relay_url, metadata_type, generated_at, metadata_id, data FROM relay_metadata_latest
         ORDER BY relay_url, metadata_type",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let r = |u: &str, m: &bigbrotr_models::metadata::Metadata, t: i64| {
        (
            u.to_owned(),
            m.metadata_type().as_str().to_owned(),
            t,
            m.id().to_vec(),
            m.data().clone(),
        )
    };
    assert_eq!(
        got,
        [
            r("wss://a.example.com", &new, 200),
            r("wss://a.example.com", &rtt, 120),
            r("wss://b.example.com", &b_doc, 50),
        ]
    );
}

#[tokio::test]
async fn relay_stats_averages_the_latest_ten_rtt_snapshots_and_reads_the_latest_nip11() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let a = "wss://a.example.com";
    // 12 RTT snapshots at t = 1..12: open = 10 t, read = t, write only at t = 1, 11 and 12.
    for t in 1..=12_i64 {
        let mut data = json!({"rtt_open": 10 * t, "rtt_read": t});
        if t == 1 {
            data["rtt_write"] = json!(10_000);
        }
        if t >= 11 {
            data["rtt_write"] = json!(89 + 11 * (t - 10)); // 100 and 111
        }
        snapshot(pool, a, CLEAR, &doc(Nip66Rtt, data), t).await;
    }
    // A geo document with rtt-like fields must not count.
    snapshot(
        pool,
        a,
        CLEAR,
        &doc(Nip66Geo, json!({"rtt_open": 1_000_000})),
        13,
    )
    .await;
    let nip11_old = doc(
        Nip11Info,
        json!({"name": "Old", "software": "git+https://old", "version": "0.1"}),
    );
    let nip11_new = doc(
        Nip11Info,
        json!({"name": "Relay A", "software": "git+https://strfry", "version": "1.0.4"}),
    );
    snapshot(pool, a, CLEAR, &nip11_new, 20).await;
    snapshot(pool, a, CLEAR, &nip11_old, 10).await;
    // Events: 3 by 2 authors over 2 kinds on a.
    let events = vec![ev0(1, 1, 500, 1), ev0(2, 2, 700, 1), ev0(3, 1, 600, 7)];
    insert_events(pool, &events).await;
    link(pool, &events.iter().collect::<Vec<_>>(), a, 1).await;
    insert_relay(pool, "ws://quiet.onion", "tor", 77).await;
    refresh_all(&db.brotr()).await;

    let rows = sqlx::query(
        "SELECT *, avg_rtt_open::text AS o, avg_rtt_read::text AS r, avg_rtt_write::text AS w
         FROM relay_stats ORDER BY relay_url",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    // "ws://quiet.onion" sorts before "wss://a…" in byte order.
    let (quiet, row) = (&rows[0], &rows[1]);
    assert_eq!(row.get::<String, _>("relay_url"), a);
    assert_eq!(row.get::<String, _>("network"), "clearnet");
    // Latest 10 = t 3..12: open avg(30..120) = 75, read avg(3..12) = 7.5, write avg(100, 111).
    assert_eq!(row.get::<Option<String>, _>("o").as_deref(), Some("75.00"));
    assert_eq!(row.get::<Option<String>, _>("r").as_deref(), Some("7.50"));
    assert_eq!(row.get::<Option<String>, _>("w").as_deref(), Some("105.50"));
    assert_eq!(row.get::<i64, _>("event_count"), 3);
    assert_eq!(row.get::<i64, _>("unique_pubkeys"), 2);
    assert_eq!(row.get::<i64, _>("unique_kinds"), 2);
    assert_eq!(
        row.get::<Option<i64>, _>("first_event_timestamp"),
        Some(500)
    );
    assert_eq!(row.get::<Option<i64>, _>("last_event_timestamp"), Some(700));
    assert_eq!(
        row.get::<Option<String>, _>("nip11_name").as_deref(),
        Some("Relay A")
    );
    assert_eq!(
        row.get::<Option<String>, _>("nip11_software").as_deref(),
        Some("git+https://strfry")
    );
    assert_eq!(
        row.get::<Option<String>, _>("nip11_version").as_deref(),
        Some("1.0.4")
    );
    // A relay with nothing: zero counts, NULL averages, timestamps and NIP-11 fields.
    assert_eq!(quiet.get::<String, _>("network"), "tor");
    assert_eq!(quiet.get::<i64, _>("discovered_at"), 77);
    for c in ["event_count", "unique_pubkeys", "unique_kinds"] {
        assert_eq!(quiet.get::<i64, _>(c), 0, "{c}");
    }
    for c in [
        "o",
        "r",
        "w",
        "nip11_name",
        "nip11_software",
        "nip11_version",
    ] {
        assert_eq!(quiet.get::<Option<String>, _>(c), None, "{c}");
    }
    assert_eq!(quiet.get::<Option<i64>, _>("first_event_timestamp"), None);
}

async fn nip11(db: &TestDb, url: &str, data: Value, t: i64) {
    snapshot(db.pool(), url, CLEAR, &doc(Nip11Info, data), t).await;
}

#[tokio::test]
async fn relay_software_counts_groups_latest_nip11_by_software_and_version() {
    let db = TestDb::new().await;
    nip11(
        &db,
        "wss://r1.example.com",
        json!({"software": "strfry", "version": "1.0"}),
        1,
    )
    .await;
    nip11(
        &db,
        "wss://r2.example.com",
        json!({"software": "strfry", "version": "1.0"}),
        1,
    )
    .await;
    nip11(
        &db,
        "wss://r3.example.com",
        json!({"software": "strfry", "version": "0.9"}),
        1,
    )
    .await;
    nip11(
        &db,
        "wss://r4.example.com",
        json!({"software": "strfry"}),
        1,
    )
    .await;
    nip11(
        &db,
        "wss://r5.example.com",
        json!({"software": "nostr-rs-relay", "name": "x"}),
        1,
    )
    .await;
    nip11(
        &db,
        "wss://r6.example.com",
        json!({"name": "no software"}),
        1,
    )
    .await;
    // r7 used to run khatru but its latest document names no software: not counted.
    nip11(
        &db,
        "wss://r7.example.com",
        json!({"software": "khatru", "version": "1"}),
        1,
    )
    .await;
    nip11(
        &db,
        "wss://r7.example.com",
        json!({"name": "now silent"}),
        2,
    )
    .await;
    // r8 moved from 0.9 to 1.0: counted once, under 1.0.
    nip11(
        &db,
        "wss://r8.example.com",
        json!({"software": "strfry", "version": "0.9"}),
        1,
    )
    .await;
    nip11(
        &db,
        "wss://r8.example.com",
        json!({"software": "strfry", "version": "1.0"}),
        2,
    )
    .await;
    // A software field in another document type is ignored.
    snapshot(
        db.pool(),
        "wss://r9.example.com",
        CLEAR,
        &doc(Nip66Geo, json!({"software": "geo"})),
        1,
    )
    .await;
    refresh_all(&db.brotr()).await;
    let got: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT software, version, relay_count FROM relay_software_counts ORDER BY 1, 2",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let r = |s: &str, v: &str, n: i64| (s.to_owned(), v.to_owned(), n);
    assert_eq!(
        got,
        [
            r("nostr-rs-relay", "unknown", 1),
            r("strfry", "0.9", 1),
            r("strfry", "1.0", 3),
            r("strfry", "unknown", 1)
        ]
    );
}

#[tokio::test]
async fn supported_nip_counts_counts_only_plain_numbers_from_the_latest_nip11() {
    let db = TestDb::new().await;
    nip11(
        &db,
        "wss://r1.example.com",
        json!({"supported_nips": [1, 11, "42", "nip-50", 1.5, -2, "007"]}),
        1,
    )
    .await;
    nip11(
        &db,
        "wss://r2.example.com",
        json!({"supported_nips": [1, 42, " 9", "9a"]}),
        1,
    )
    .await;
    // Not an array: ignored. An older document of r3 listed NIP 99; only the latest counts.
    nip11(
        &db,
        "wss://r3.example.com",
        json!({"supported_nips": [99]}),
        1,
    )
    .await;
    nip11(
        &db,
        "wss://r3.example.com",
        json!({"supported_nips": "1,11"}),
        2,
    )
    .await;
    // Digit strings beyond INTEGER are skipped (0003) instead of failing every refresh.
    nip11(
        &db,
        "wss://r4.example.com",
        json!({"supported_nips": [1, "99999999999", 2_147_483_648_i64, 65]}),
        1,
    )
    .await;
    // supported_nips in a non-NIP-11 document does not count.
    snapshot(
        db.pool(),
        "wss://r5.example.com",
        CLEAR,
        &doc(Nip66Rtt, json!({"supported_nips": [1]})),
        1,
    )
    .await;
    refresh_all(&db.brotr()).await;
    let got: Vec<(i32, i64)> =
        sqlx::query_as("SELECT nip, relay_count FROM supported_nip_counts ORDER BY nip")
            .fetch_all(db.pool())
            .await
            .unwrap();
    // 1: r1 r2 r4; 7 ("007"): r1; 11: r1; 42 (string and number): r1 r2; 65: r4.
    assert_eq!(got, [(1, 3), (7, 1), (11, 1), (42, 2), (65, 1)]);
}

#[tokio::test]
async fn a_dependant_refreshed_first_is_already_up_to_date() {
    // 6.6.9 refreshed each view from the others' last contents, so relay_stats refreshed before
    // relay_metadata_latest read stale NIP-11 fields. Since 0004 a refresh applies every change
    // its object depends on (docs/ARCHITECTURE.md, "Incremental analytics").
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let pool = db.pool();
    nip11(
        &db,
        "wss://r.example.com",
        json!({"name": "R", "software": "strfry", "supported_nips": [1]}),
        1,
    )
    .await;
    for view in [
        "relay_software_counts",
        "supported_nip_counts",
        "relay_stats",
    ] {
        brotr.refresh_materialized_view(view).await.unwrap();
    }
    assert_eq!(count(pool, "relay_software_counts").await, 1);
    assert_eq!(count(pool, "supported_nip_counts").await, 1);
    let name: Option<String> = sqlx::query_scalar("SELECT nip11_name FROM relay_stats")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("R"));
    assert_eq!(count(pool, "relay_metadata_latest").await, 1);
}

#[tokio::test]
async fn every_view_refreshes_through_the_facade_and_all_statistics_refresh_covers_all_13() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let pool = db.pool();
    // Empty database: every view refreshes.
    refresh_all(&brotr).await;
    let empty = contents_of_views(&db).await;
    insert_relay(pool, "wss://r.example.com", CLEAR, 1).await;
    let events = vec![
        ev0(1, 1, 10, 0),
        ev0(2, 1, 20, 1),
        ev0(3, 1, 30, 30000),
        ev0(4, 1, 40, 1),
    ];
    insert_events(pool, &events).await;
    link(
        pool,
        &events.iter().collect::<Vec<_>>(),
        "wss://r.example.com",
        1,
    )
    .await;
    nip11(
        &db,
        "wss://r.example.com",
        json!({"software": "s", "supported_nips": [1]}),
        1,
    )
    .await;
    assert_eq!(
        contents_of_views(&db).await,
        empty,
        "views change only when refreshed"
    );
    sqlx::query("SELECT all_statistics_refresh()")
        .execute(pool)
        .await
        .unwrap();
    let full = contents_of_views(&db).await;
    for (view, (before, after)) in VIEWS_IN_ORDER.iter().zip(empty.iter().zip(&full)) {
        assert_ne!(
            before, after,
            "{view} was refreshed by all_statistics_refresh()"
        );
    }
    // Refreshing again with no change keeps the same contents.
    refresh_all(&brotr).await;
    assert_eq!(contents_of_views(&db).await, full);
}

/// Every row of every view as JSON text, one sorted list per view.
async fn contents_of_views(db: &TestDb) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for view in VIEWS_IN_ORDER {
        // event_stats' time windows depend on now(), but these events are decades old.
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT to_jsonb(v)::text FROM {view} v ORDER BY 1"
        )))
        .fetch_all(db.pool())
        .await
        .unwrap_or_else(|e| panic!("read {view}: {e}"));
        out.push(rows);
    }
    out
}
