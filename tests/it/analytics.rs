//! Incremental analytics (migration 0004): every statistics object equals its full
//! recomputation (`analytics.<object>_full`) after any sequence of changes and whatever the
//! commit order of concurrent writers; the rebuild; the roles that refresh and write; and a
//! 6.6.9 database migrated in place keeping its statistics.

use std::collections::BTreeMap;

use bigbrotr_db::migrate;
use bigbrotr_models::metadata::{Metadata, MetadataType};
use bigbrotr_testkit::TestDb;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

use crate::dbkit::{Ev, VIEWS_IN_ORDER, columns, ev, exec, id32, snapshot};
use crate::migrate::EmptyDb;

/// Every object the refresh functions maintain: 6.6.9's 13 and the two availability objects.
const OBJECTS: [&str; 15] = migrate::STATISTICS_OBJECTS;

/// Rows of `object` missing from, and in excess of, its full recomputation (same snapshot and
/// same `now()`: the caller runs it in the refresh's transaction).
async fn differences(conn: &mut PgConnection, object: &str) -> (i64, i64, i64) {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM (TABLE public.{object} EXCEPT ALL
                                       TABLE analytics.{object}_full) AS a),
                (SELECT count(*) FROM (TABLE analytics.{object}_full EXCEPT ALL
                                       TABLE public.{object}) AS b),
                (SELECT count(*) FROM public.{object})"
    )))
    .fetch_one(conn)
    .await
    .unwrap_or_else(|e| panic!("compare {object}: {e}"))
}

/// Refreshes (all at once, or view by view in 6.6.9's order as its refresher does) and asserts
/// that every object equals its full recomputation; returns the row counts.
async fn assert_exact(pool: &PgPool, step: &str, per_view: bool) -> BTreeMap<&'static str, i64> {
    let mut tx = pool.begin().await.unwrap();
    if per_view {
        for view in OBJECTS {
            sqlx::query(AssertSqlSafe(format!("SELECT {view}_refresh()")))
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| panic!("{step}: {view}_refresh(): {e}"));
        }
    } else {
        sqlx::query("SELECT all_statistics_refresh()")
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{step}: all_statistics_refresh(): {e}"));
    }
    let mut counts = BTreeMap::new();
    for object in OBJECTS {
        let (extra, missing, rows) = differences(&mut tx, object).await;
        assert_eq!(
            (extra, missing),
            (0, 0),
            "{step}: {object} ({rows} rows) has rows not in / missing from its full recomputation"
        );
        counts.insert(object, rows);
    }
    tx.commit().await.unwrap();
    counts
}

/// Total differences over every object after a refresh (for tests that expect some).
async fn total_differences(pool: &PgPool) -> i64 {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT all_statistics_refresh()")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut total = 0;
    for object in OBJECTS {
        let (extra, missing, _) = differences(&mut tx, object).await;
        total += extra + missing;
    }
    tx.commit().await.unwrap();
    total
}

/// `event_relay_insert_cascade`: the events, their relay and the sightings in one call.
async fn cascade<'c, E>(executor: E, events: &[Ev], relay: &str, network: &str, seen_at: i64)
where
    E: sqlx::PgExecutor<'c>,
{
    let c = columns(events);
    let n = events.len();
    sqlx::query("SELECT event_relay_insert_cascade($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(&c.ids)
        .bind(&c.pubkeys)
        .bind(&c.created_ats)
        .bind(&c.kinds)
        .bind(&c.tags)
        .bind(&c.contents)
        .bind(&c.sigs)
        .bind(vec![relay.to_owned(); n])
        .bind(vec![network.to_owned(); n])
        .bind(vec![1_i64; n])
        .bind(vec![seen_at; n])
        .execute(executor)
        .await
        .expect("event_relay_insert_cascade");
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const KINDS: [i32; 14] = [
    1, 1, 1, 7, 0, 3, 10002, 30023, 30023, 30000, 20001, 4, 1063, 40000,
];

/// `count` events numbered from `first`: 12 authors, the kinds above, created_at spread over
/// the 40 days before `now` (some in the future), d tags on the addressable ones (some missing,
/// some key-only).
fn events(rng: &mut Rng, first: u32, count: u32, now: i64) -> Vec<Ev> {
    (first..first + count)
        .map(|n| {
            let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
            let author = 1 + rng.below(12) as u8;
            let created_at = now - 40 * 86_400 + rng.below(41 * 86_400) as i64;
            let tags = if (30000..40000).contains(&kind) {
                match rng.below(5) {
                    0 => json!([["p", "x"]]),
                    1 => json!([["d"], ["d", "second"]]),
                    d => json!([["d", format!("topic-{d}")], ["d", "ignored"]]),
                }
            } else {
                json!([["p", format!("{n}")]])
            };
            ev(n, author, created_at, kind, tags)
        })
        .collect()
}

const C1: &str = "wss://c1.example.com";
const C2: &str = "wss://c2.example.com";
const C3: &str = "wss://c3.example.com";
const T1: &str = "ws://t1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.onion";
const T2: &str = "ws://t2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.onion";
const I1: &str = "ws://i1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b32.i2p";
const RELAYS: [(&str, &str); 6] = [
    (C1, "clearnet"),
    (C2, "clearnet"),
    (C3, "clearnet"),
    (T1, "tor"),
    (T2, "tor"),
    (I1, "i2p"),
];

async fn db_now(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT analytics.epoch_now()")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn rtt(ok: bool, open: i64) -> Metadata {
    let (data, logs) = if ok {
        (
            json!({"rtt_open": open, "rtt_read": open + 5}),
            json!({"open_success": true, "read_success": true}),
        )
    } else {
        (
            json!({}),
            json!({"open_success": false, "open_reason": "connection refused"}),
        )
    };
    Metadata::envelope(MetadataType::Nip66Rtt, data, logs).unwrap()
}

fn nip11(software: &str, version: Option<&str>, nips: Value) -> Metadata {
    let mut data = json!({"name": software, "software": software, "supported_nips": nips});
    if let Some(v) = version {
        data["version"] = json!(v);
    }
    Metadata::envelope(MetadataType::Nip11Info, data, json!({"success": true})).unwrap()
}

#[tokio::test]
async fn every_object_equals_its_full_recomputation_through_a_sequence_of_changes() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let now = db_now(pool).await;
    let mut rng = Rng(0x5eed_0004);

    // 1. An archive over six relays of three networks.
    let batch = events(&mut rng, 0, 480, now);
    for (i, chunk) in batch.chunks(80).enumerate() {
        let (relay, network) = RELAYS[i];
        cascade(pool, chunk, relay, network, now).await;
    }
    assert_exact(pool, "first archive", false).await;

    // 2. The same events seen on a second relay: same network, and another network.
    let again: Vec<Ev> = batch.iter().step_by(3).cloned().collect();
    cascade(pool, &again[..60], C2, "clearnet", now).await;
    cascade(pool, &again[60..], T2, "tor", now).await;
    assert_exact(pool, "second sightings", true).await;

    // 3. Monitor results: NIP-11 documents and RTT checks inside and outside every window,
    //    on both sides of the partial hours that start the windows.
    let offsets = [
        -30,
        -3_599,
        -3_601,
        -5 * 3_600,
        -86_399,
        -86_400,
        -86_401,
        -3 * 86_400,
        -604_799,
        -604_801,
        -29 * 86_400,
        -2_592_000,
        -2_592_001,
        -31 * 86_400,
        -400 * 86_400,
        600,
    ];
    for (i, (relay, network)) in RELAYS.iter().enumerate() {
        let doc = nip11(
            ["strfry", "nostream", "khatru"][i % 3],
            (i % 2 == 0).then_some("1.0"),
            json!([1, 11, i, "x", "99999999999", -4]),
        );
        snapshot(pool, relay, network, &doc, now - 100).await;
        for (j, offset) in offsets.iter().enumerate() {
            let ok = (i + j) % 3 != 0;
            snapshot(
                pool,
                relay,
                network,
                &rtt(ok, 10 + j as i64),
                now + offset - i as i64,
            )
            .await;
        }
    }
    assert_exact(pool, "monitor results", false).await;

    // 4. Newer replaceable and addressable versions, and a tie broken by the lower id.
    let mut updates = Vec::new();
    for (k, kind) in [(0, 0), (1, 3), (2, 10002), (3, 30023)] {
        let mut e = ev(10_000 + k, 1, now + 50, kind, json!([["d", "topic-2"]]));
        e.pubkey = vec![2; 32];
        updates.push(e);
    }
    let mut tie_high = ev(20_000, 3, now + 60, 0, json!([]));
    tie_high.id = id32(0xff, 1);
    let mut tie_low = ev(20_001, 3, now + 60, 0, json!([]));
    tie_low.id = id32(0x01, 1);
    cascade(pool, &updates, C3, "clearnet", now).await;
    cascade(pool, &[tie_high.clone()], C1, "clearnet", now).await;
    assert_exact(pool, "newer versions", true).await;
    cascade(pool, &[tie_low.clone()], T1, "tor", now).await;
    assert_exact(pool, "a tie", false).await;

    // 5. A relay deleted: its sightings and monitor results go with it.
    exec(pool, &format!("DELETE FROM relay WHERE url = '{C1}'")).await;
    assert_exact(pool, "relay deleted", true).await;

    // 6. Events deleted with their sightings, sightings deleted, then the orphan cleanup.
    let gone: Vec<Vec<u8>> = batch
        .iter()
        .skip(1)
        .step_by(11)
        .map(|e| e.id.clone())
        .collect();
    sqlx::query("DELETE FROM event WHERE id = ANY($1)")
        .bind(&gone)
        .execute(pool)
        .await
        .unwrap();
    exec(
        pool,
        &format!(
            "DELETE FROM event_relay WHERE relay_url = '{C2}' AND event_id IN
               (SELECT event_id FROM event_relay WHERE relay_url = '{C2}' ORDER BY event_id LIMIT 50)"
        ),
    )
    .await;
    exec(
        pool,
        &format!(
            "DELETE FROM event_relay WHERE event_id = '\\x{}'",
            hex::encode(&tie_low.id)
        ),
    )
    .await;
    let orphans: i32 = sqlx::query_scalar("SELECT orphan_event_delete(7)")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(orphans > 0, "the fixture leaves orphans");
    assert_exact(pool, "deletions and orphan cleanup", false).await;

    // 7. Monitor results deleted, then orphan metadata.
    exec(
        pool,
        &format!(
            "DELETE FROM relay_metadata WHERE relay_url = '{C2}' AND metadata_type = 'nip66_rtt'"
        ),
    )
    .await;
    exec(
        pool,
        &format!(
            "DELETE FROM relay_metadata WHERE relay_url = '{T1}' AND metadata_type = 'nip11_info'"
        ),
    )
    .await;
    exec(pool, "SELECT orphan_metadata_delete()").await;
    assert_exact(pool, "metadata deleted", true).await;

    // 8. Deleted events come back; hostile timestamps (far future, negative, zero).
    let back: Vec<Ev> = batch.iter().skip(1).step_by(11).cloned().collect();
    cascade(pool, &back, C3, "clearnet", now).await;
    let mut hostile = Vec::new();
    for (n, created_at) in [
        (30_000, i64::MAX),
        (30_001, -5),
        (30_002, 0),
        (30_003, 185_542_587_187_199),
    ] {
        hostile.push(ev(n, 9, created_at, 1, json!([])));
    }
    hostile.push(ev(30_010, 9, i64::MAX, 30023, json!([["d", "far"]])));
    cascade(pool, &hostile, I1, "i2p", now).await;
    // A new relay without events, and one more monitor result.
    exec(
        pool,
        "SELECT relay_insert(ARRAY['wss://new.example.com'], ARRAY['clearnet'], ARRAY[5::bigint])",
    )
    .await;
    snapshot(pool, C3, "clearnet", &rtt(true, 7), now - 10).await;
    let counts = assert_exact(pool, "re-inserted and hostile events", false).await;
    for (object, rows) in counts {
        assert!(
            rows > 0,
            "{object} is empty at the end: the comparison proved nothing"
        );
    }

    // Nothing pending: every delta row left is covered by every consumer's watermark (rows are
    // deleted once older than every snapshot's xmin, which other databases' transactions on the
    // same cluster can hold back).
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
             SELECT xid FROM analytics.event_delta UNION ALL SELECT xid FROM analytics.sighting_delta
             UNION ALL SELECT xid FROM analytics.relay_delta
             UNION ALL SELECT xid FROM analytics.relay_metadata_delta) AS d
         WHERE EXISTS (SELECT 1 FROM analytics.consumer AS c
                       WHERE NOT pg_visible_in_snapshot(d.xid, c.applied))",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn changes_are_applied_once_whatever_the_order_writers_commit_in() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let now = db_now(pool).await;
    let mut rng = Rng(7);
    let first = events(&mut rng, 0, 50, now);
    let second = events(&mut rng, 100, 50, now);
    let third = events(&mut rng, 200, 50, now);

    // Writer A starts first (lower transaction id) and commits last.
    let mut a = PgConnection::connect_with(db.options()).await.unwrap();
    let mut b = PgConnection::connect_with(db.options()).await.unwrap();
    let mut tx_a = a.begin().await.unwrap();
    cascade(&mut *tx_a, &first, C1, "clearnet", now).await;
    let mut tx_b = b.begin().await.unwrap();
    cascade(&mut *tx_b, &second, C2, "clearnet", now).await;
    tx_b.commit().await.unwrap();
    let counts = assert_exact(pool, "B committed, A still open", false).await;
    assert!(counts["pubkey_counts"] > 0);

    tx_a.commit().await.unwrap();
    // A refresh that ran after B's commit must not have passed A's changes by.
    assert_exact(pool, "A committed after the refresh", true).await;
    let total: i64 = sqlx::query_scalar("SELECT event_count FROM event_stats")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(total, 100);

    // A writer that rolls back leaves nothing to apply.
    let mut tx_c = a.begin().await.unwrap();
    cascade(&mut *tx_c, &third, C3, "clearnet", now).await;
    tx_c.rollback().await.unwrap();
    assert_exact(pool, "C rolled back", false).await;
    let total: i64 = sqlx::query_scalar("SELECT event_count FROM event_stats")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(total, 100);
}

#[tokio::test]
async fn a_refresh_without_new_data_writes_nothing_but_the_clock_columns() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let now = db_now(pool).await;
    let mut rng = Rng(11);
    cascade(pool, &events(&mut rng, 0, 200, now), C1, "clearnet", now).await;
    snapshot(pool, C1, "clearnet", &rtt(true, 5), now - 60).await;
    assert_exact(pool, "loaded", false).await;
    let versions = "SELECT string_agg(xmin::text, ',' ORDER BY 1) FROM (
          SELECT xmin, 1 FROM kind_counts UNION ALL SELECT xmin, 1 FROM pubkey_counts
          UNION ALL SELECT xmin, 1 FROM kind_counts_by_relay UNION ALL SELECT xmin, 1 FROM relay_stats
          UNION ALL SELECT xmin, 1 FROM events_replaceable_latest
          UNION ALL SELECT xmin, 1 FROM relay_uptime_daily UNION ALL SELECT xmin, 1 FROM relay_uptime
          UNION ALL SELECT xmin, 1 FROM network_stats) AS v";
    let before: String = sqlx::query_scalar(versions).fetch_one(pool).await.unwrap();
    assert_exact(pool, "nothing new", false).await;
    let after: String = sqlx::query_scalar(versions).fetch_one(pool).await.unwrap();
    assert_eq!(before, after, "a refresh with nothing pending rewrote rows");
}

#[tokio::test]
async fn changes_that_bypass_the_capture_are_reported_and_the_rebuild_repairs_them() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let now = db_now(pool).await;
    let mut rng = Rng(13);
    let batch = events(&mut rng, 0, 100, now);
    cascade(pool, &batch, C1, "clearnet", now).await;
    assert_exact(pool, "loaded", false).await;

    // Rows written with the capture off are invisible to the incremental refresh.
    exec(
        pool,
        "ALTER TABLE event DISABLE TRIGGER analytics_capture_insert",
    )
    .await;
    exec(
        pool,
        "ALTER TABLE event_relay DISABLE TRIGGER analytics_capture_insert",
    )
    .await;
    let unseen = events(&mut rng, 500, 20, now);
    cascade(pool, &unseen, C2, "clearnet", now).await;
    exec(
        pool,
        "ALTER TABLE event ENABLE TRIGGER analytics_capture_insert",
    )
    .await;
    exec(
        pool,
        "ALTER TABLE event_relay ENABLE TRIGGER analytics_capture_insert",
    )
    .await;
    assert!(
        total_differences(pool).await > 0,
        "the bypass went unnoticed by the comparison"
    );

    // Deleting them with the capture on would take counts below zero: a clear error.
    let ids: Vec<Vec<u8>> = unseen.iter().map(|e| e.id.clone()).collect();
    sqlx::query("DELETE FROM event WHERE id = ANY($1)")
        .bind(&ids)
        .execute(pool)
        .await
        .unwrap();
    let err = sqlx::query("SELECT kind_counts_refresh()")
        .execute(pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("below zero"), "{err}");
    let hint: String = match sqlx::query("SELECT kind_counts_refresh()")
        .execute(pool)
        .await
    {
        Err(sqlx::Error::Database(e)) => e
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .and_then(|e| e.hint().map(str::to_owned))
            .unwrap_or_default(),
        other => panic!("expected a database error, got {other:?}"),
    };
    assert!(hint.contains("analytics.rebuild()"), "{hint}");

    exec(pool, "SELECT analytics.rebuild()").await;
    assert_exact(pool, "rebuilt", true).await;
}

#[tokio::test]
async fn the_refresher_role_refreshes_and_writers_need_no_rights_on_the_analytics_schema() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let now = db_now(pool).await;
    let mut rng = Rng(17);

    let mut writer = PgConnection::connect_with(db.options()).await.unwrap();
    exec_on(&mut writer, "SET ROLE writer").await;
    cascade(
        &mut writer,
        &events(&mut rng, 0, 30, now),
        C1,
        "clearnet",
        now,
    )
    .await;
    let denied = sqlx::query("INSERT INTO kind_counts VALUES (1, 1, 1, 'regular')")
        .execute(&mut writer)
        .await;
    assert!(denied.is_err(), "writer must not write the statistics");
    let denied = sqlx::query("DELETE FROM analytics.event_delta")
        .execute(&mut writer)
        .await;
    assert!(denied.is_err(), "writer must not touch the change log");

    let mut refresher = PgConnection::connect_with(db.options()).await.unwrap();
    exec_on(&mut refresher, "SET ROLE refresher").await;
    for view in OBJECTS {
        sqlx::query(AssertSqlSafe(format!("SELECT {view}_refresh()")))
            .execute(&mut refresher)
            .await
            .unwrap_or_else(|e| panic!("refresher: {view}_refresh(): {e}"));
    }
    let counted: i64 = sqlx::query_scalar("SELECT event_count FROM event_stats")
        .fetch_one(&mut refresher)
        .await
        .unwrap();
    assert_eq!(counted, 30);

    let mut reader = PgConnection::connect_with(db.options()).await.unwrap();
    exec_on(&mut reader, "SET ROLE reader").await;
    cascade(pool, &events(&mut rng, 100, 5, now), C1, "clearnet", now).await;
    let denied = sqlx::query("SELECT event_stats_refresh()")
        .execute(&mut reader)
        .await;
    assert!(denied.is_err(), "reader must not refresh");
    for object in OBJECTS {
        sqlx::query(AssertSqlSafe(format!("SELECT count(*) FROM {object}")))
            .execute(&mut reader)
            .await
            .unwrap_or_else(|e| panic!("reader reads {object}: {e}"));
    }
}

async fn exec_on(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Every row of `object`, as text, sorted: comparable across a change of relation kind.
async fn contents(pool: &PgPool, object: &str) -> Vec<String> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT t::text FROM {object} AS t ORDER BY 1"
    )))
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("read {object}: {e}"))
}

#[tokio::test]
async fn a_6_6_9_database_is_migrated_in_place_and_keeps_its_statistics() {
    let db = EmptyDb::new().await;
    let pool = db.pool.clone();
    crate::migrate::create_like_bigbrotr_6_6_9(&pool).await;
    let now = db_now_plain(&pool).await;
    let mut rng = Rng(19);
    let batch = events(&mut rng, 0, 300, now);
    for (i, chunk) in batch.chunks(50).enumerate() {
        let (relay, network) = RELAYS[i];
        cascade(&pool, chunk, relay, network, now).await;
    }
    for (relay, network) in RELAYS {
        snapshot(
            &pool,
            relay,
            network,
            &nip11("strfry", Some("1"), json!([1, 11])),
            now - 50,
        )
        .await;
        snapshot(&pool, relay, network, &rtt(true, 42), now - 60).await;
    }
    exec(&pool, "SELECT all_statistics_refresh()").await;
    let mut before = BTreeMap::new();
    for view in VIEWS_IN_ORDER {
        before.insert(view, contents(&pool, view).await);
    }

    let report = migrate::migrate(&pool, None, &[]).await.unwrap();
    assert_eq!(report.applied, vec![2, 3, 4, 5]);
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT relkind::text FROM pg_class
         WHERE relnamespace = 'public'::regnamespace AND relname = ANY($1)",
    )
    .bind(VIEWS_IN_ORDER.to_vec())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(kinds, ["r"], "the views became tables");
    for view in VIEWS_IN_ORDER {
        // event_stats' clock columns may move between the two reads; compare the rest.
        if view == "event_stats" {
            continue;
        }
        assert_eq!(
            before[view],
            contents(&pool, view).await,
            "{view} after the migration"
        );
    }
    let stats: (i64, i64) = sqlx::query_as("SELECT event_count, unique_pubkeys FROM event_stats")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stats.0, 300);
    assert_exact(&pool, "migrated", false).await;
    // And the incremental path works on the migrated database.
    cascade(
        &pool,
        &events(&mut rng, 1_000, 40, now),
        C2,
        "clearnet",
        now,
    )
    .await;
    assert_exact(&pool, "after the migration", true).await;
    db.drop_db().await;
}

async fn db_now_plain(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT floor(extract(epoch FROM now()))::bigint")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_truncate_stops_the_refresh_with_a_clear_error_until_the_rebuild() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let now = db_now(pool).await;
    let mut rng = Rng(23);
    cascade(pool, &events(&mut rng, 0, 40, now), C1, "clearnet", now).await;
    assert_exact(pool, "loaded", false).await;
    exec(pool, "TRUNCATE event CASCADE").await;
    let err = sqlx::query("SELECT event_stats_refresh()")
        .execute(pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated"), "{err}");
    let counted: i64 = sqlx::query_scalar("SELECT event_count FROM event_stats")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        counted, 40,
        "a failed refresh leaves the statistics as they were"
    );
    exec(pool, "SELECT analytics.rebuild()").await;
    let counts = assert_exact(pool, "rebuilt after the truncate", false).await;
    assert_eq!(counts["kind_counts"], 0);
    cascade(pool, &events(&mut rng, 100, 10, now), C1, "clearnet", now).await;
    assert_exact(pool, "written after the rebuild", true).await;
}

#[tokio::test]
async fn the_6_6_9_api_catalog_still_finds_every_object_and_its_key() {
    // 6.6.9's API discovers its objects from information_schema (BASE TABLE and VIEW) plus
    // pg_matviews, and a table's key from pg_constraint: the tables of 0004 must be found with
    // the columns of the views' unique indexes as their primary keys.
    let db = TestDb::new().await;
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.table_name::text,
                (SELECT string_agg(a.attname, ',' ORDER BY k.ord)
                 FROM pg_constraint AS c
                 CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                 WHERE c.conrelid = format('public.%I', t.table_name)::regclass
                   AND c.contype = 'p')
         FROM information_schema.tables AS t
         WHERE t.table_schema = 'public' AND t.table_type IN ('BASE TABLE', 'VIEW')
           AND t.table_name = ANY($1)
         ORDER BY 1",
    )
    .bind(OBJECTS.to_vec())
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut expected = vec![
        ("event_daily_counts", "day"),
        ("event_stats", "singleton_key"),
        ("events_addressable_latest", "pubkey,kind,d_tag"),
        ("events_replaceable_latest", "pubkey,kind"),
        ("kind_counts", "kind"),
        ("kind_counts_by_relay", "kind,relay_url"),
        ("network_stats", "network"),
        ("pubkey_counts", "pubkey"),
        ("pubkey_counts_by_relay", "pubkey,relay_url"),
        ("relay_metadata_latest", "relay_url,metadata_type"),
        ("relay_software_counts", "software,version"),
        ("relay_stats", "relay_url"),
        ("relay_uptime", "relay_url"),
        ("relay_uptime_daily", "relay_url,day"),
        ("supported_nip_counts", "nip"),
    ];
    expected.sort();
    let got: Vec<(&str, &str)> = keys.iter().map(|(t, k)| (t.as_str(), k.as_str())).collect();
    assert_eq!(got, expected);
    // The internal state is not in public, so the API lists nothing new besides the two
    // availability tables.
    let internal: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables
         WHERE table_schema = 'public' AND table_name LIKE '%delta%'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(internal, 0);
}

/// An event id that hashes into `event_p{partition}` (and `event_relay_p{partition}`).
async fn id_in_partition(pool: &PgPool, partition: i32, salt: i32) -> Vec<u8> {
    sqlx::query_scalar(
        "SELECT decode(md5(i::text) || md5((i + $2)::text), 'hex')
         FROM generate_series(1, 100000) AS i
         WHERE satisfies_hash_partition('event'::regclass, 16, $1,
                                        decode(md5(i::text) || md5((i + $2)::text), 'hex'))
         LIMIT 1",
    )
    .bind(partition)
    .bind(salt)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn updates_partition_writes_and_cascaded_document_deletions_are_captured() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let now = db_now(pool).await;
    let mut rng = Rng(29);
    let batch = events(&mut rng, 0, 300, now);
    for (i, chunk) in batch.chunks(50).enumerate() {
        let (relay, network) = RELAYS[i];
        cascade(pool, chunk, relay, network, now).await;
    }
    let ok = rtt(true, 10);
    let failed = rtt(false, 0);
    for (relay, network) in RELAYS {
        snapshot(pool, relay, network, &ok, now - 100).await;
        snapshot(pool, relay, network, &failed, now - 50).await;
        snapshot(
            pool,
            relay,
            network,
            &nip11("strfry", Some("1"), json!([1])),
            now - 10,
        )
        .await;
    }
    assert_exact(pool, "loaded", false).await;

    // A document deleted while monitor results still point at it (they go with it).
    sqlx::query("DELETE FROM metadata WHERE id = $1")
        .bind(ok.id().to_vec())
        .execute(pool)
        .await
        .unwrap();
    assert_exact(pool, "referenced document deleted", true).await;

    // Writes that name a partition instead of the partitioned table, as writer.
    let mut writer = PgConnection::connect_with(db.options()).await.unwrap();
    exec_on(&mut writer, "SET ROLE writer").await;
    let direct = id_in_partition(pool, 3, 0).await;
    sqlx::query(
        "INSERT INTO event_p3 (id, pubkey, created_at, kind, tags, tagvalues, content, sig)
         VALUES ($1, $2, 1700000000, 1, '[]', '{}', 'direct', $3)",
    )
    .bind(&direct)
    .bind(vec![4_u8; 32])
    .bind(vec![0_u8; 64])
    .execute(&mut writer)
    .await
    .unwrap();
    sqlx::query("INSERT INTO event_relay_p3 VALUES ($1, $2, 1)")
        .bind(&direct)
        .bind(C2)
        .execute(&mut writer)
        .await
        .unwrap();
    assert_exact(pool, "partition insert", false).await;
    exec_on(
        &mut writer,
        "DELETE FROM event_p5 WHERE id IN (SELECT event_id FROM event_relay_p5 LIMIT 3)",
    )
    .await;
    assert_exact(pool, "partition delete with its sightings", true).await;

    // Updates: a relay's network, events' kind and time, a sighting's relay, a monitor result's
    // time, a document's data, a relay's discovery time.
    for sql in [
        format!("UPDATE relay SET network = 'tor' WHERE url = '{C3}'"),
        "UPDATE event SET kind = 7 WHERE id IN (SELECT id FROM event WHERE kind = 1 LIMIT 20)"
            .to_owned(),
        "UPDATE event SET created_at = created_at - 86400 * 3
         WHERE id IN (SELECT id FROM event WHERE kind = 0 LIMIT 10)"
            .to_owned(),
        format!(
            "UPDATE event_relay SET relay_url = '{I1}' WHERE relay_url = '{C1}'
               AND event_id IN (SELECT event_id FROM event_relay WHERE relay_url = '{C1}' LIMIT 5)"
        ),
        format!(
            "UPDATE relay_metadata SET generated_at = generated_at - 86400 WHERE relay_url = '{T1}'"
        ),
        "UPDATE relay SET discovered_at = 42".to_owned(),
    ] {
        exec_on(&mut writer, &sql).await;
        assert_exact(pool, &sql, false).await;
    }
    sqlx::query("UPDATE metadata SET data = $1 WHERE id = $2")
        .bind(json!({"data": {"rtt_open": 3}, "logs": {"open_success": true}}))
        .bind(failed.id().to_vec())
        .execute(pool)
        .await
        .unwrap();
    assert_exact(pool, "document data updated", true).await;
}

#[tokio::test]
async fn a_refresh_inside_a_writing_transaction_applies_its_later_writes_after_the_commit() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let now = db_now(pool).await;
    let mut rng = Rng(31);
    let before = events(&mut rng, 0, 10, now);
    let after = events(&mut rng, 100, 10, now);
    // Another transaction commits meanwhile, so the writer's own id sits below the snapshot's
    // xmax: 6.6.9-style snapshot bookkeeping would count the writer's later rows as applied.
    let mut tx = pool.begin().await.unwrap();
    cascade(&mut *tx, &before, C1, "clearnet", now).await;
    cascade(pool, &events(&mut rng, 200, 10, now), C2, "clearnet", now).await;
    sqlx::query("SELECT all_statistics_refresh()")
        .execute(&mut *tx)
        .await
        .unwrap();
    cascade(&mut *tx, &after, C1, "clearnet", now).await;
    tx.commit().await.unwrap();
    assert_exact(pool, "after the commit", false).await;
    let counted: i64 = sqlx::query_scalar("SELECT event_count FROM event_stats")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(counted, 30);
}

#[tokio::test]
async fn a_malformed_rtt_value_does_not_stop_the_refreshes() {
    // 6.6.9 cast RTT values with ::INTEGER: one document with 12.5 failed every relay_stats
    // refresh. Such a value now averages as missing.
    let db = TestDb::new().await;
    let pool = db.pool();
    let now = db_now(pool).await;
    let odd = Metadata::envelope(
        MetadataType::Nip66Rtt,
        json!({"rtt_open": 12.5, "rtt_read": "fast", "rtt_write": 99_999_999_999_i64}),
        json!({"open_success": true}),
    )
    .unwrap();
    snapshot(pool, C1, "clearnet", &odd, now - 20).await;
    snapshot(pool, C1, "clearnet", &rtt(true, 30), now - 10).await;
    assert_exact(pool, "malformed RTT values", false).await;
    let avg: Option<String> =
        sqlx::query_scalar("SELECT avg_rtt_open::text FROM relay_stats WHERE relay_url = $1")
            .bind(C1)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(avg.as_deref(), Some("30.00"));
}

#[tokio::test]
async fn concurrent_writers_and_refreshes_of_every_kind_end_exact_without_deadlocks() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let now = db_now(pool).await;
    let calls: Vec<String> = OBJECTS
        .iter()
        .map(|o| format!("SELECT {o}_refresh()"))
        .chain(["SELECT all_statistics_refresh()".to_owned()])
        .collect();
    let mut tasks = Vec::new();
    for worker in 0..3_u32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(100 + u64::from(worker));
            for round in 0..8_u32 {
                let batch = events(&mut rng, worker * 10_000 + round * 100, 40, now);
                let (relay, network) = RELAYS[((worker + round) % 6) as usize];
                cascade(&pool, &batch, relay, network, now).await;
                snapshot(
                    &pool,
                    relay,
                    network,
                    &rtt(round % 2 == 0, 5),
                    now - i64::from(round),
                )
                .await;
                if round % 3 == 2 {
                    sqlx::query("DELETE FROM event WHERE id = $1")
                        .bind(&batch[0].id)
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for refresher in 0..3_usize {
        let pool = pool.clone();
        let calls = calls.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..12_usize {
                let call = &calls[(refresher * 7 + round * 5) % calls.len()];
                sqlx::query(AssertSqlSafe(call.clone()))
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{call}: {e}"));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_exact(pool, "after the concurrent run", false).await;
}
