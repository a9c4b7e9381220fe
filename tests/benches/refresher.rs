//! `make bench`, refresher part: the 13 statistics objects at 1,000,000 events (1.5 M sightings,
//! 200 relays), all wall-clock seconds on the database side:
//! - 6.6.9's full refresh: its 13 materialized views (0001's SQL, in a scratch schema) refreshed
//!   CONCURRENTLY, view by view, as its refresher does;
//! - this project's full recomputation: `analytics.rebuild()`;
//! - the incremental refresh after nothing new, after 1 % and after 10 % new events, as ratios of
//!   the 6.6.9 full refresh: one cycle of the real refresher (`Refresher::refresh_all` over the
//!   default 15 names, `refresh.concurrency` 2 as deployed, and 1 as 6.6.9 runs them), and the
//!   database time of each consumer (event, sighting, metadata) called on its own;
//! - the capture's cost on ingest: `event_relay_insert_cascade` batches with the capture triggers
//!   on and off, alternated.
//!
//! The run ends by checking every object against its full recomputation.

// A benchmark program: any failure must abort the run loudly, and the report goes to stdout.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::time::Instant;

use bigbrotr_core::metrics::Metrics;
use bigbrotr_core::runner::Context;
use bigbrotr_refresher::{Refresher, RefresherConfig};
use bigbrotr_testkit::TestDb;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio_util::sync::CancellationToken;

const ARCHIVE_EVENTS: i64 = 1_000_000;
const CHUNK: i64 = 200_000;

const BASELINE_SQL: &str = include_str!("../../migrations/0001_bigbrotr_baseline.sql");

const VIEWS: [&str; 13] = bigbrotr_db::migrate::MATERIALIZED_VIEWS;

/// 200 relays (170 clearnet, 20 tor, 5 i2p, 5 loki).
const RELAYS_SQL: &str = "
INSERT INTO relay (url, network, discovered_at)
SELECT CASE WHEN r < 170 THEN 'wss://relay' || r || '.example.com'
            WHEN r < 190 THEN 'ws://' || md5(r::text) || 'abcdefghijklmnopqrstuvw.onion'
            WHEN r < 195 THEN 'ws://' || md5(r::text) || '.i2p'
            ELSE 'ws://' || md5(r::text) || '.loki' END,
       CASE WHEN r < 170 THEN 'clearnet' WHEN r < 190 THEN 'tor'
            WHEN r < 195 THEN 'i2p' ELSE 'loki' END,
       1700000000 + r
FROM generate_series(0, 199) r ON CONFLICT DO NOTHING";

/// Events `start .. start + count`: 20,000 authors with a skewed activity, the kind mix of a
/// relay's archive (notes, reactions, profiles, contacts, relay lists, long-form, ephemeral,
/// DMs, files), created_at over a year, each on one relay and every other one on a second.
/// Generated server-side: the database never verifies signatures.
fn events_sql(start: i64, count: i64) -> String {
    format!(
        "CREATE TEMP TABLE g AS
         SELECT i,
           decode(md5('a' || ((abs(hashint8(i)) % 20000) * (abs(hashint8(i + 7)) % 20000) / 20000)::text)
                  || md5('pk'), 'hex') AS pubkey,
           (ARRAY[1,1,1,1,1,1,7,7,0,3,10002,30023,30023,20001,4,1000,1063,30000,1,6])
               [1 + abs(hashint8(i * 3)) % 20] AS kind,
           1700000000 + (abs(hashint8(i * 5)) % (365 * 86400))::bigint AS created_at
         FROM generate_series({start}, {end}) i;
         INSERT INTO event (id, pubkey, created_at, kind, tags, tagvalues, content, sig)
         SELECT decode(md5(i::text) || md5((-i)::text), 'hex'), pubkey, created_at, kind, t.tags,
                tags_to_tagvalues(t.tags), 'benchmark note', decode(repeat('00', 64), 'hex')
         FROM g CROSS JOIN LATERAL (SELECT CASE WHEN kind >= 30000
             THEN jsonb_build_array(jsonb_build_array('d', 'd' || (i % 7)),
                                    jsonb_build_array('p', md5(i::text)))
             ELSE jsonb_build_array(jsonb_build_array('p', md5(i::text))) END AS tags) t;
         CREATE TEMP TABLE rl AS SELECT array_agg(url ORDER BY url) AS u FROM relay;
         INSERT INTO event_relay (event_id, relay_url, seen_at)
         SELECT decode(md5(i::text) || md5((-i)::text), 'hex'),
                rl.u[1 + abs(hashint8(i * 11)) % 200], created_at
         FROM g, rl;
         INSERT INTO event_relay (event_id, relay_url, seen_at)
         SELECT decode(md5(i::text) || md5((-i)::text), 'hex'),
                rl.u[1 + abs(hashint8(i * 13)) % 200], created_at
         FROM g, rl WHERE i % 2 = 0 ON CONFLICT DO NOTHING;
         DROP TABLE g; DROP TABLE rl;",
        end = start + count - 1
    )
}

/// Monitor results: for each relay, `per_relay` snapshots drawn from 10 NIP-11 documents and 9
/// RTT results (a third of them failed), generated over the 40 days before now.
fn metadata_sql(seed: i64, per_relay: i64) -> String {
    format!(
        "INSERT INTO metadata (id, type, data)
         SELECT sha256(convert_to(d::text, 'UTF8')), t, d FROM (
           SELECT 'nip11_info' AS t, jsonb_build_object('data', jsonb_build_object(
                    'name', 'r' || i, 'software', 'sw' || (i % 3),
                    'version', CASE WHEN i % 4 = 0 THEN NULL ELSE 'v' || (i % 2) END,
                    'supported_nips', jsonb_build_array(1, 11, i % 5)),
                  'logs', jsonb_build_object('success', true)) AS d
           FROM generate_series(0, 9) i
           UNION ALL
           SELECT 'nip66_rtt', jsonb_build_object(
                    'data', CASE WHEN i % 3 = 0 THEN '{{}}'::jsonb
                                 ELSE jsonb_build_object('rtt_open', 10 + i, 'rtt_read', 20 + i) END,
                    'logs', jsonb_build_object('open_success', i % 3 <> 0))
           FROM generate_series(0, 8) i) AS x
         ON CONFLICT DO NOTHING;
         INSERT INTO relay_metadata (relay_url, metadata_id, metadata_type, generated_at)
         SELECT r.url, m.id, m.type,
                floor(extract(epoch FROM now()))::bigint
                  - (abs(hashtext(r.url || m.id::text || '{seed}')) % (40 * 86400))
         FROM relay r
         CROSS JOIN LATERAL (SELECT id, type FROM metadata
                             ORDER BY md5(id::text || r.url || '{seed}') LIMIT {per_relay}) m
         ON CONFLICT DO NOTHING;"
    )
}

async fn exec(conn: &mut PgConnection, sql: &str) -> f64 {
    let started = Instant::now();
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", &sql[..sql.len().min(200)]));
    started.elapsed().as_secs_f64()
}

/// The incremental refresh, consumer by consumer (what all_statistics_refresh() runs).
async fn incremental(conn: &mut PgConnection) -> (f64, f64, f64) {
    let metadata = exec(conn, "SELECT analytics.apply_metadata()").await;
    let event = exec(conn, "SELECT analytics.apply_event()").await;
    let sighting = exec(conn, "SELECT analytics.apply_sighting()").await;
    (event, sighting, metadata)
}

/// One cycle of the refresher daemon over its default names; wall seconds.
async fn refresher_cycle(db: &TestDb, concurrency: usize) -> f64 {
    let mut brotr_config = db.config();
    brotr_config.pool.limits.max_size = 2;
    let ctx = Context {
        brotr: bigbrotr_db::Brotr::connect(brotr_config, None)
            .await
            .unwrap(),
        metrics: Metrics::new("refresher"),
        shutdown: CancellationToken::new(),
    };
    let mut config = RefresherConfig::default();
    config.refresh.concurrency = concurrency;
    let refresher = Refresher::new(config);
    refresher.check_functions(&ctx.brotr).await.unwrap();
    let started = Instant::now();
    let report = refresher.refresh_all(&ctx).await;
    let seconds = started.elapsed().as_secs_f64();
    assert!(report.failed.is_empty(), "{}", report.failed_names());
    assert_eq!(report.refreshed.len(), 15);
    seconds
}

/// Lets autovacuum's work happen outside the timings (the deployment runs autovacuum every 30 s).
async fn settle(conn: &mut PgConnection) {
    exec(conn, "VACUUM ANALYZE").await;
}

/// `batches` × 1,000 new events through `event_relay_insert_cascade`; events/s.
async fn ingest(conn: &mut PgConnection, first: i64, batches: i64) -> f64 {
    let mut seconds = 0.0;
    for b in 0..batches {
        let start = first + b * 1_000;
        let sql = format!(
            "SELECT event_relay_insert_cascade(
                 array_agg(decode(md5(i::text) || md5((-i)::text), 'hex')),
                 array_agg(decode(md5('a' || (i % 5000)) || md5('pk'), 'hex')),
                 array_agg((1700000000 + i)::bigint), array_agg(1 + (i % 3)),
                 array_agg(jsonb_build_array(jsonb_build_array('p', md5(i::text)))),
                 array_agg('benchmark note'::text), array_agg(decode(repeat('00', 64), 'hex')),
                 array_agg('wss://relay' || (i % 170) || '.example.com'),
                 array_agg('clearnet'::text), array_agg(1::bigint), array_agg(i::bigint))
             FROM generate_series({start}, {end}) i",
            end = start + 999
        );
        seconds += exec(conn, &sql).await;
    }
    (batches * 1_000) as f64 / seconds
}

async fn set_capture(conn: &mut PgConnection, on: bool) {
    let verb = if on { "ENABLE" } else { "DISABLE" };
    for table in ["event", "event_relay", "relay", "relay_metadata"] {
        exec(conn, &format!("ALTER TABLE {table} {verb} TRIGGER USER")).await;
    }
}

async fn bench() {
    let db = TestDb::new().await;
    let mut conn = PgConnection::connect_with(db.options()).await.unwrap();

    // The archive, written through the capture like any daemon's writes.
    let load = Instant::now();
    exec(&mut conn, RELAYS_SQL).await;
    for chunk in 0..ARCHIVE_EVENTS / CHUNK {
        exec(&mut conn, &events_sql(1 + chunk * CHUNK, CHUNK)).await;
    }
    exec(&mut conn, &metadata_sql(1, 60)).await;
    let (events, sightings): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM event_relay)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(events, ARCHIVE_EVENTS);
    eprintln!(
        "loaded {events} events, {sightings} sightings in {:.0}s",
        load.elapsed().as_secs_f64()
    );

    // This project's full recomputation (it also applies the load's deltas).
    settle(&mut conn).await;
    let rebuild = exec(&mut conn, "SELECT analytics.rebuild()").await;
    // Each object's full definition on its own (what a from-scratch recomputation of that one
    // object costs with this project's SQL).
    let mut definitions = Vec::new();
    for object in bigbrotr_db::migrate::STATISTICS_OBJECTS {
        let seconds = exec(
            &mut conn,
            &format!(
                "CREATE TEMP TABLE scratch AS SELECT * FROM analytics.{object}_full;
                 DROP TABLE scratch"
            ),
        )
        .await;
        definitions.push((object, seconds));
    }

    // 6.6.9's views, created from its own SQL in a scratch schema, then refreshed as it does.
    let views_start = BASELINE_SQL
        .find("CREATE MATERIALIZED VIEW IF NOT EXISTS relay_metadata_latest")
        .unwrap();
    let views_end = BASELINE_SQL
        .find("-- ==========================================================================\n-- Refresh functions")
        .unwrap();
    let indexes_start = BASELINE_SQL
        .find("CREATE UNIQUE INDEX IF NOT EXISTS idx_relay_metadata_latest_pk")
        .unwrap();
    exec(
        &mut conn,
        "CREATE SCHEMA v669; SET search_path = v669, public",
    )
    .await;
    exec(&mut conn, &BASELINE_SQL[views_start..views_end]).await;
    exec(&mut conn, &BASELINE_SQL[indexes_start..]).await;
    exec(&mut conn, "SET search_path = public").await;
    settle(&mut conn).await;
    let mut original = Vec::new();
    for view in VIEWS {
        let seconds = exec(
            &mut conn,
            &format!("REFRESH MATERIALIZED VIEW CONCURRENTLY v669.{view}"),
        )
        .await;
        original.push((view, seconds));
    }
    let full: f64 = original.iter().map(|(_, s)| s).sum();

    // Nothing new.
    let idle = incremental(&mut conn).await;
    let idle_cycle = refresher_cycle(&db, 2).await;

    // 1 %: 10,000 new events (15,000 sightings) and a new round of monitor results, each
    // measurement after its own batch: the consumers on their own, then the refresher as
    // deployed three times (the median is reported), then one view at a time.
    let mut next = ARCHIVE_EVENTS + 1;
    let mut seed = 2;
    let mut batch = async |conn: &mut PgConnection| {
        exec(conn, &events_sql(next, 10_000)).await;
        exec(conn, &metadata_sql(seed, 2)).await;
        next += 10_000;
        seed += 1;
    };
    batch(&mut conn).await;
    let one = incremental(&mut conn).await;
    settle(&mut conn).await;
    let mut one_cycles = Vec::new();
    for _ in 0..3 {
        batch(&mut conn).await;
        one_cycles.push(refresher_cycle(&db, 2).await);
        settle(&mut conn).await;
    }
    one_cycles.sort_by(f64::total_cmp);
    batch(&mut conn).await;
    let one_cycle_serial = refresher_cycle(&db, 1).await;
    settle(&mut conn).await;

    // 10 %: 100,000 new events, then the same through the refresher.
    exec(&mut conn, &events_sql(next, 100_000)).await;
    exec(&mut conn, &metadata_sql(50, 2)).await;
    let ten = incremental(&mut conn).await;
    settle(&mut conn).await;
    exec(&mut conn, &events_sql(next + 100_000, 100_000)).await;
    exec(&mut conn, &metadata_sql(51, 2)).await;
    let ten_cycle = refresher_cycle(&db, 2).await;

    // Every object equals its full recomputation after the measured refreshes.
    let mut tx = conn.begin().await.unwrap();
    exec(&mut tx, "SELECT all_statistics_refresh()").await;
    for view in bigbrotr_db::migrate::STATISTICS_OBJECTS {
        let differs: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT (SELECT count(*) FROM (TABLE public.{view} EXCEPT ALL TABLE analytics.{view}_full) a)
                  + (SELECT count(*) FROM (TABLE analytics.{view}_full EXCEPT ALL TABLE public.{view}) b)"
        )))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(differs, 0, "{view} differs from its full recomputation");
    }
    tx.commit().await.unwrap();

    // The capture's cost on ingest, alternated to spread drift evenly.
    settle(&mut conn).await;
    let mut with = Vec::new();
    let mut without = Vec::new();
    let mut next = 10_000_000;
    let captured = "SELECT count(*) FROM analytics.event_delta";
    for _ in 0..3 {
        set_capture(&mut conn, false).await;
        let before: i64 = sqlx::query_scalar(captured)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        without.push(ingest(&mut conn, next, 10).await);
        let after: i64 = sqlx::query_scalar(captured)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(after, before, "the capture was off");
        next += 10_000;
        set_capture(&mut conn, true).await;
        with.push(ingest(&mut conn, next, 10).await);
        let later: i64 = sqlx::query_scalar(captured)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(later, after + 10_000, "the capture was on");
        next += 10_000;
    }
    // Medians: a round can meet autovacuum or a checkpoint.
    with.sort_by(f64::total_cmp);
    without.sort_by(f64::total_cmp);
    let with_rate = with[with.len() / 2];
    let without_rate = without[without.len() / 2];

    let (state_mib, archive_mib): (f64, f64) = sqlx::query_as(
        "SELECT (sum(pg_total_relation_size(c.oid))
                     FILTER (WHERE c.relnamespace = 'analytics'::regnamespace) / 1048576.0)::float8,
                (sum(pg_total_relation_size(c.oid))
                     FILTER (WHERE c.relname ~ '^(event|event_relay)_p[0-9]+$') / 1048576.0)::float8
         FROM pg_class AS c WHERE c.relkind = 'r'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();

    println!("### Refresher: {events} events, {sightings} sightings, 200 relays\n");
    println!(
        "Full recomputation per object, wall s: 6.6.9 (REFRESH MATERIALIZED VIEW CONCURRENTLY) \
         and this project's definition (analytics.<object>_full into a scratch table):\n"
    );
    println!("| object | 6.6.9 s | this project s |\n|---|---|---|");
    for (object, ours) in &definitions {
        let theirs = original
            .iter()
            .find(|(view, _)| view == object)
            .map_or("—".to_owned(), |(_, s)| format!("{s:.2}"));
        println!("| {object} | {theirs} | {ours:.2} |");
    }
    let ours_total: f64 = definitions.iter().map(|(_, s)| s).sum();
    println!("| **total** | **{full:.2}** | **{ours_total:.2}** |\n");
    println!(
        "| refresh (wall s, database side) | event | sighting | metadata | total | / 6.6.9 full |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| this project's full rebuild (analytics.rebuild()) | | | | {rebuild:.2} | {:.3} |",
        rebuild / full
    );
    for (label, (e, s, m)) in [
        ("consumers one after the other, nothing new", idle),
        ("consumers one after the other, +1 % (10,000 events)", one),
        ("consumers one after the other, +10 % (100,000 events)", ten),
    ] {
        let total = e + s + m;
        println!(
            "| {label} | {e:.3} | {s:.3} | {m:.3} | {total:.3} | {:.4} |",
            total / full
        );
    }
    println!("\n| refresher cycle, 15 names (wall s) | s | / 6.6.9 full |\n|---|---|---|");
    for (label, seconds) in [
        ("concurrency 2 (deployed), nothing new", idle_cycle),
        (
            "concurrency 2 (deployed), +1 %, fastest of 3",
            one_cycles[0],
        ),
        ("concurrency 2 (deployed), +1 %, median of 3", one_cycles[1]),
        (
            "concurrency 2 (deployed), +1 %, slowest of 3",
            one_cycles[2],
        ),
        ("concurrency 1 (one at a time), +1 %", one_cycle_serial),
        ("concurrency 2 (deployed), +10 %", ten_cycle),
    ] {
        println!("| {label} | {seconds:.3} | {:.4} |", seconds / full);
    }
    println!(
        "\nIngest through event_relay_insert_cascade (1,000-event batches, median of 3 rounds of 10,000): capture off {without_rate:.0} events/s, on {with_rate:.0} events/s, on / off {:.2}\n",
        with_rate / without_rate
    );
    println!(
        "Storage after the run: analytics schema (count and delta tables) {state_mib:.0} MiB, \
         event and event_relay {archive_mib:.0} MiB\n"
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}
