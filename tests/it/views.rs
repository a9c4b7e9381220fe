//! The event materialized views (reference §1.6): event_stats, kind_counts, kind_counts_by_relay,
//! pubkey_counts, pubkey_counts_by_relay, network_stats, event_daily_counts and the two
//! latest-version views, each refreshed through the facade in dependency order.

use bigbrotr_testkit::TestDb;
use serde_json::json;
use sqlx::Row;

use crate::dbkit::{
    Ev, assert_tie_is_not_settled_by_scan_order, category, count, ev, ev0, exec,
    expected_tagvalues, id32, insert_events, insert_relay, link, refresh_all,
};

/// Unix seconds at the database.
async fn db_now(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT extract(epoch FROM now())::bigint")
        .fetch_one(db.pool())
        .await
        .expect("now() at the database")
}

/// Kinds on both sides of every range boundary of §1.6.
const BOUNDARY_KINDS: [i32; 18] = [
    0, 1, 2, 3, 4, 44, 45, 999, 1000, 9999, 10000, 19999, 20000, 29999, 30000, 39999, 40000, 65535,
];

#[tokio::test]
async fn event_stats_counts_categories_authors_kinds_and_time_windows() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let now = db_now(&db).await;
    // One event per boundary kind, three authors, created far in the past.
    let mut events: Vec<Ev> = BOUNDARY_KINDS
        .iter()
        .enumerate()
        .map(|(i, &kind)| ev0(i as u32, (i % 3) as u8 + 1, 1_000_000 + i as i64, kind))
        .collect();
    // Recent events (kind 1, author 1) for the windows: 10 s, 2 h, 3 d, 20 d and 60 d ago.
    for (j, age) in [10, 2 * 3600, 3 * 86_400, 20 * 86_400, 60 * 86_400]
        .iter()
        .enumerate()
    {
        events.push(ev0(100 + j as u32, 1, now - age, 1));
    }
    insert_events(pool, &events).await;
    refresh_all(&db.brotr()).await;
    let row = sqlx::query("SELECT * FROM event_stats")
        .fetch_one(pool)
        .await
        .unwrap();
    let get = |c: &str| row.get::<i64, _>(c);
    let by_category = |cat: &str| events.iter().filter(|e| category(e.kind) == cat).count() as i64;
    assert_eq!(row.get::<i32, _>("singleton_key"), 1);
    assert_eq!(get("event_count"), events.len() as i64);
    assert_eq!(get("unique_pubkeys"), 3);
    assert_eq!(get("unique_kinds"), BOUNDARY_KINDS.len() as i64);
    assert_eq!(get("earliest_event_timestamp"), 1_000_000);
    assert_eq!(get("latest_event_timestamp"), now - 10);
    assert_eq!(get("regular_event_count"), by_category("regular"));
    assert_eq!(get("replaceable_event_count"), by_category("replaceable"));
    assert_eq!(get("ephemeral_event_count"), by_category("ephemeral"));
    assert_eq!(get("addressable_event_count"), by_category("addressable"));
    assert_eq!(
        by_category("regular"),
        6 + 5,
        "fixture sanity: 6 boundary + 5 recent kind-1 events"
    );
    assert_eq!(
        (
            get("event_count_last_1h"),
            get("event_count_last_24h"),
            get("event_count_last_7d"),
            get("event_count_last_30d")
        ),
        (1, 2, 3, 4)
    );
    assert_eq!(count(pool, "event_stats").await, 1, "a single row");
}

#[tokio::test]
async fn events_per_day_is_count_over_the_span_in_days_with_a_one_day_floor() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let brotr = db.brotr();
    // (created_at values, expected events_per_day as text): count / GREATEST(span / 86400.0, 1)
    // rounded to 2 places, or the count itself when all events share one timestamp.
    let day = 86_400;
    let cases: [(Vec<i64>, &str); 6] = [
        (vec![], "0"),
        (vec![500], "1"),
        (vec![500, 500, 500], "3"),
        (vec![0, day, 2 * day], "1.50"),
        (vec![0, 100, 200, 300, day / 2], "5.00"),
        (vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 3 * day], "3.33"),
    ];
    for (times, expected) in cases {
        // DELETE, not TRUNCATE: the statistics follow deletions (a TRUNCATE asks for a rebuild).
        exec(pool, "DELETE FROM event").await;
        let events: Vec<Ev> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| ev0(i as u32, 1, t, 1))
            .collect();
        if !events.is_empty() {
            insert_events(pool, &events).await;
        }
        brotr
            .refresh_materialized_view("event_stats")
            .await
            .unwrap();
        let (epd, n, earliest): (String, i64, Option<i64>) = sqlx::query_as(
            "SELECT events_per_day::text, event_count, earliest_event_timestamp FROM event_stats",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(epd, expected, "events_per_day for {times:?}");
        assert_eq!(n, times.len() as i64);
        assert_eq!(earliest, times.iter().min().copied());
    }
}

#[tokio::test]
async fn kind_counts_groups_by_kind_with_the_nip01_category() {
    let db = TestDb::new().await;
    let pool = db.pool();
    // Kind k gets (1 + index % 3) events from as many authors, plus one repeat by author 1.
    let mut events = Vec::new();
    let mut n = 0;
    for (i, &kind) in BOUNDARY_KINDS.iter().enumerate() {
        for author in 0..(1 + i % 3) {
            events.push(ev0(n, author as u8 + 1, 10, kind));
            n += 1;
        }
        events.push(ev0(n, 1, 11, kind));
        n += 1;
    }
    insert_events(pool, &events).await;
    refresh_all(&db.brotr()).await;
    let got: Vec<(i32, i64, i64, String)> = sqlx::query_as(
        "SELECT kind, event_count, unique_pubkeys, category FROM kind_counts ORDER BY kind",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let expected: Vec<(i32, i64, i64, String)> = BOUNDARY_KINDS
        .iter()
        .enumerate()
        .map(|(i, &kind)| {
            (
                kind,
                2 + (i % 3) as i64,
                1 + (i % 3) as i64,
                category(kind).to_owned(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    // The literal categories of §1.6 at the edges, independent of the helper.
    let literal = [
        (44, "regular"),
        (45, "other"),
        (999, "other"),
        (19999, "replaceable"),
        (40000, "other"),
    ];
    for (kind, cat) in literal {
        assert!(
            got.iter().any(|g| g.0 == kind && g.3 == cat),
            "kind {kind} is {cat}"
        );
    }
}

/// Relays a and b (clearnet), t (tor), idle (clearnet, no events), and events seen on them.
async fn network_fixture(db: &TestDb) -> Vec<Ev> {
    let pool = db.pool();
    for (url, network) in [
        ("wss://a.example.com", "clearnet"),
        ("wss://b.example.com", "clearnet"),
        ("ws://t.onion", "tor"),
        ("wss://idle.example.com", "clearnet"),
        ("ws://idle.i2p", "i2p"),
    ] {
        insert_relay(pool, url, network, 1).await;
    }
    let events = vec![
        ev0(1, 1, 100, 1),
        ev0(2, 1, 200, 7),
        ev0(3, 2, 300, 1),
        ev0(4, 3, 50, 0),
        ev0(5, 2, 400, 1),
    ];
    insert_events(pool, &events).await;
    let e = |i: usize| &events[i];
    link(pool, &[e(0), e(1), e(2)], "wss://a.example.com", 1).await;
    link(pool, &[e(0), e(1), e(3)], "wss://b.example.com", 1).await;
    link(pool, &[e(0), e(4)], "ws://t.onion", 1).await;
    refresh_all(&db.brotr()).await;
    events
}

#[tokio::test]
async fn kind_counts_by_relay_counts_each_relay_separately() {
    let db = TestDb::new().await;
    network_fixture(&db).await;
    let got: Vec<(i32, String, i64, i64)> = sqlx::query_as(
        "SELECT kind, relay_url, event_count, unique_pubkeys FROM kind_counts_by_relay ORDER BY kind, relay_url",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let r = |k: i32, u: &str, n: i64, p: i64| (k, u.to_owned(), n, p);
    assert_eq!(
        got,
        [
            r(0, "wss://b.example.com", 1, 1),
            r(1, "ws://t.onion", 2, 2),
            r(1, "wss://a.example.com", 2, 2),
            r(1, "wss://b.example.com", 1, 1),
            r(7, "wss://a.example.com", 1, 1),
            r(7, "wss://b.example.com", 1, 1),
        ]
    );
}

#[tokio::test]
async fn pubkey_counts_are_per_hex_author_and_by_relay_only_from_two_events() {
    let db = TestDb::new().await;
    network_fixture(&db).await;
    let hex = |a: u8| hex::encode([a; 32]);
    let got: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT pubkey, event_count, unique_kinds, first_event_timestamp, last_event_timestamp
         FROM pubkey_counts ORDER BY pubkey",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(
        got,
        [
            (hex(1), 2, 2, 100, 200),
            (hex(2), 2, 1, 300, 400),
            (hex(3), 1, 1, 50, 50)
        ]
    );
    // Author 1 has 2 events on a and on b; author 2 has 1 on a and 1 on t; author 3 1 on b.
    let by_relay: Vec<(String, String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT relay_url, pubkey, event_count, unique_kinds, first_event_timestamp, last_event_timestamp
         FROM pubkey_counts_by_relay ORDER BY relay_url",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let r = |u: &str| (u.to_owned(), hex(1), 2, 2, 100, 200);
    assert_eq!(
        by_relay,
        [r("wss://a.example.com"), r("wss://b.example.com")]
    );
}

#[tokio::test]
async fn network_stats_counts_an_event_once_per_network() {
    let db = TestDb::new().await;
    network_fixture(&db).await;
    let got: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT network, relay_count, event_count, unique_pubkeys, unique_kinds FROM network_stats ORDER BY network",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    // clearnet: relays a, b, idle; events 1, 2, 3, 4 (1 and 2 are on both a and b).
    // tor: events 1 and 5. i2p: a relay without events. loki: no relay, no row.
    let r = |n: &str, rc: i64, ec: i64, up: i64, uk: i64| (n.to_owned(), rc, ec, up, uk);
    assert_eq!(
        got,
        [
            r("clearnet", 3, 4, 3, 3),
            r("i2p", 1, 0, 0, 0),
            r("tor", 1, 2, 2, 1)
        ]
    );
}

/// (year, month, day) of a day number since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> String {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[tokio::test]
async fn event_daily_counts_buckets_by_utc_day_whatever_the_session_time_zone() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let times: [(i64, u8, i32); 7] = [
        (0, 1, 1),
        (86_399, 2, 1),
        (86_400, 1, 7),
        (1_700_000_000, 1, 1),
        (1_700_006_399, 2, 3),
        (1_700_006_400, 3, 1),
        (1_709_208_000, 1, 1),
    ];
    let events: Vec<Ev> = times
        .iter()
        .enumerate()
        .map(|(i, &(t, a, k))| ev0(i as u32, a, t, k))
        .collect();
    insert_events(pool, &events).await;
    // A session in UTC+14 must not move the buckets.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL timezone = 'Pacific/Kiritimati'")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SELECT event_daily_counts_refresh()")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let got: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT day::text, event_count, unique_pubkeys, unique_kinds FROM event_daily_counts ORDER BY day",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut expected: Vec<(String, i64, i64, i64)> = Vec::new();
    for &(t, _, _) in &times {
        let day = civil_from_days(t.div_euclid(86_400));
        if expected.iter().any(|e| e.0 == day) {
            continue;
        }
        let same: Vec<_> = times
            .iter()
            .filter(|x| x.0.div_euclid(86_400) == t.div_euclid(86_400))
            .collect();
        let mut authors: Vec<u8> = same.iter().map(|x| x.1).collect();
        authors.sort_unstable();
        authors.dedup();
        let mut kinds: Vec<i32> = same.iter().map(|x| x.2).collect();
        kinds.sort_unstable();
        kinds.dedup();
        expected.push((
            day,
            same.len() as i64,
            authors.len() as i64,
            kinds.len() as i64,
        ));
    }
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(
        civil_from_days(19_675),
        "2023-11-14",
        "the date helper itself"
    );
    assert_eq!(got[0].0, "1970-01-01");
}

#[tokio::test]
async fn events_replaceable_latest_keeps_the_newest_version_and_the_lowest_id_on_ties() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let tags = json!([["p", "x"]]);
    let events = vec![
        ev(1, 1, 100, 0, json!([])),
        ev(2, 1, 200, 0, tags.clone()), // newest kind 0 of author 1
        ev(3, 1, 150, 3, json!([])),
        ev(19, 1, 300, 10002, json!([])), // three versions at 300: the lowest id (4) wins
        ev(4, 1, 300, 10002, json!([])),
        ev(14, 1, 300, 10002, json!([])),
        ev(20, 2, 50, 0, json!([])),
        ev(6, 2, 60, 19999, json!([])),
        ev(8, 1, 999, 1, json!([])), // regular, ephemeral, addressable: never replaceable
        ev(10, 1, 999, 20000, json!([])),
        ev(11, 1, 999, 30000, json!([])),
        ev(12, 1, 999, 9999, json!([])),
        ev(13, 1, 999, 19999, json!([])),
    ];
    insert_events(pool, &events).await;
    assert_tie_is_not_settled_by_scan_order(pool, &[&events[3], &events[4], &events[5]]).await;
    refresh_all(&db.brotr()).await;
    let rows = sqlx::query("SELECT * FROM events_replaceable_latest ORDER BY pubkey, kind")
        .fetch_all(pool)
        .await
        .unwrap();
    let winners = [2_u32, 3, 4, 13, 20, 6];
    let expected: Vec<&Ev> = winners
        .iter()
        .map(|&n| events.iter().find(|e| e.id == id32(0xee, n)).unwrap())
        .collect();
    assert_eq!(rows.len(), expected.len());
    for (row, want) in rows.iter().zip(expected) {
        assert_eq!(
            row.get::<Vec<u8>, _>("id"),
            want.id,
            "winner of ({:?}, {})",
            want.pubkey[0],
            want.kind
        );
        assert_eq!(row.get::<Vec<u8>, _>("pubkey"), want.pubkey);
        assert_eq!(row.get::<i64, _>("created_at"), want.created_at);
        assert_eq!(row.get::<i32, _>("kind"), want.kind);
        assert_eq!(row.get::<serde_json::Value, _>("tags"), want.tags);
        assert_eq!(
            row.get::<Vec<Option<String>>, _>("tagvalues"),
            expected_tagvalues(&want.tags)
        );
        assert_eq!(row.get::<String, _>("content"), want.content);
        assert_eq!(row.get::<Vec<u8>, _>("sig"), want.sig);
    }
}

#[tokio::test]
async fn events_addressable_latest_is_keyed_by_the_first_d_value() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let events = vec![
        ev(1, 1, 100, 30023, json!([["d", "post"]])),
        ev(
            2,
            1,
            200,
            30023,
            json!([["t", "x"], ["d", "post"], ["d", "other"]]),
        ), // newest "post"
        ev(3, 1, 150, 30023, json!([["d", "other"], ["d", "post"]])), // first d wins
        ev(4, 1, 100, 30023, json!([])),                              // no d: ''
        ev(5, 1, 120, 30023, json!([["d"]])),                         // key-only: ''
        ev(6, 1, 110, 30023, json!([["d", ""]])),                     // explicit ''
        ev(14, 2, 500, 39999, json!([["d", "x"]])),                   // tie: id 12 wins
        ev(12, 2, 500, 39999, json!([["d", "x"]])),
        ev(15, 2, 500, 39999, json!([["d", "x"]])),
        ev(8, 2, 400, 30000, json!([["d", "x"]])),
        ev(10, 2, 900, 40000, json!([["d", "x"]])), // not addressable
        ev(11, 2, 900, 29999, json!([["d", "x"]])),
    ];
    insert_events(pool, &events).await;
    assert_tie_is_not_settled_by_scan_order(pool, &[&events[6], &events[7], &events[8]]).await;
    refresh_all(&db.brotr()).await;
    let got: Vec<(u8, i32, String, u32, i64)> = sqlx::query_as::<_, (Vec<u8>, i32, String, Vec<u8>, i64)>(
        "SELECT pubkey, kind, d_tag, id, created_at FROM events_addressable_latest ORDER BY pubkey, kind, d_tag",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(pk, kind, d, id, t)| (pk[0], kind, d, u32::from_be_bytes(id[28..].try_into().unwrap()), t))
    .collect();
    let r = |pk: u8, k: i32, d: &str, id: u32, t: i64| (pk, k, d.to_owned(), id, t);
    assert_eq!(
        got,
        [
            r(1, 30023, "", 5, 120),
            r(1, 30023, "other", 3, 150),
            r(1, 30023, "post", 2, 200),
            r(2, 30000, "x", 8, 400),
            r(2, 39999, "x", 12, 500),
        ]
    );
    let content: String =
        sqlx::query_scalar("SELECT content FROM events_addressable_latest WHERE d_tag = 'post'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(content, events[1].content, "every event column is carried");
}
