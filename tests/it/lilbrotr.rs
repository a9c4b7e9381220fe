//! The LilBrotr variant (reference §1.9): tags, content and sig nullable and always NULL through
//! event_insert and event_relay_insert_cascade, tagvalues kept, the same function signatures, the
//! same 13 views giving the same aggregates as BigBrotr, and d_tag taken from tagvalues.

use bigbrotr_db::migrate::Variant;
use bigbrotr_models::event_relay::EventRelay;
use bigbrotr_testkit::TestDb;
use nostr::Keys;
use serde_json::json;
use sqlx::Row;

use crate::dbkit::{
    Ev, VIEWS_IN_ORDER, count, ev, expected_tagvalues, insert_events, insert_relay, link,
    refresh_all, sqlstate,
};
use crate::fixtures::{event, relay};

async fn lil() -> TestDb {
    TestDb::with_variant(Variant::LilBrotr).await
}

#[tokio::test]
async fn the_payload_columns_are_nullable_and_must_be_null() {
    let db = lil().await;
    let columns: Vec<(String, bool)> = sqlx::query_as(
        "SELECT attname::text, attnotnull FROM pg_attribute
         WHERE attrelid = 'event'::regclass AND attnum > 0 ORDER BY attnum",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let expected: Vec<(String, bool)> = [
        ("id", true),
        ("pubkey", true),
        ("created_at", true),
        ("kind", true),
        ("tags", false),
        ("tagvalues", true),
        ("content", false),
        ("sig", false),
    ]
    .iter()
    .map(|(c, nn)| (c.to_string(), *nn))
    .collect();
    assert_eq!(columns, expected);
    // Every partition follows the parent.
    let notnull_leaves: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_attribute a JOIN pg_inherits i ON i.inhrelid = a.attrelid
         WHERE i.inhparent = 'event'::regclass AND a.attname IN ('tags', 'content', 'sig') AND a.attnotnull",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(notnull_leaves, 0);
    // A hand-written INSERT carrying a payload is refused by the CHECK.
    let err = sqlx::query(
        "INSERT INTO event VALUES ('\\x01', '\\x02', 1, 1, '[]', '{}', 'payload', NULL)",
    )
    .execute(db.pool())
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("23514"), "{err}");
}

#[tokio::test]
async fn event_insert_keeps_the_signature_and_stores_only_the_light_columns() {
    let db = lil().await;
    let signature: (String, String, String) = sqlx::query_as(
        "SELECT oid::regprocedure::text, pg_get_function_arguments(oid), pg_get_function_result(oid)
         FROM pg_proc WHERE proname = 'event_insert' AND pronamespace = 'public'::regnamespace",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(
        signature,
        (
            "event_insert(bytea[],bytea[],bigint[],integer[],jsonb[],text[],bytea[])".to_owned(),
            "p_event_ids bytea[], p_pubkeys bytea[], p_created_ats bigint[], p_kinds integer[], \
             p_tags jsonb[], p_content_values text[], p_sigs bytea[]"
                .to_owned(),
            "integer".to_owned()
        )
    );
    let keys = Keys::generate();
    let tags = vec![
        vec!["e", "abc"],
        vec!["t", "x"],
        vec!["t", "x"],
        vec!["e"],
        vec!["client", "c"],
    ];
    let e = event(&keys, 1, 1_700_000_000, "dropped content", tags);
    let brotr = db.brotr();
    assert_eq!(
        brotr.insert_events(std::slice::from_ref(&e)).await.unwrap(),
        1
    );
    assert_eq!(
        brotr.insert_events(std::slice::from_ref(&e)).await.unwrap(),
        0,
        "ON CONFLICT kept"
    );
    let row = sqlx::query("SELECT * FROM event")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(row.get::<Vec<u8>, _>("id"), e.id().to_vec());
    assert_eq!(row.get::<Vec<u8>, _>("pubkey"), e.pubkey().to_vec());
    assert_eq!(row.get::<i64, _>("created_at"), 1_700_000_000);
    assert_eq!(row.get::<i32, _>("kind"), 1);
    assert_eq!(row.get::<Option<serde_json::Value>, _>("tags"), None);
    assert_eq!(row.get::<Option<String>, _>("content"), None);
    assert_eq!(row.get::<Option<Vec<u8>>, _>("sig"), None);
    let tagvalues: Vec<Option<String>> = row.get("tagvalues");
    assert_eq!(tagvalues, expected_tagvalues(&e.tags_json()));
    assert_eq!(
        tagvalues,
        [
            Some("e:abc".into()),
            Some("t:x".into()),
            Some("t:x".into()),
            None
        ],
        "computed from the tags before they are dropped"
    );
}

#[tokio::test]
async fn the_cascade_stores_light_events_too() {
    let db = lil().await;
    let keys = Keys::generate();
    let r = relay("wss://r.example.com", 3);
    let records: Vec<EventRelay> = (0..4)
        .map(|i| EventRelay {
            event: event(&keys, 1, 100 + i, "body", vec![vec!["p", "pk"]]),
            relay: r.clone(),
            seen_at: 9,
        })
        .collect();
    assert_eq!(
        db.brotr()
            .insert_event_relays(&records, true)
            .await
            .unwrap(),
        4
    );
    let (n, payloads, tagged): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE tags IS NOT NULL OR content IS NOT NULL OR sig IS NOT NULL),
                count(*) FILTER (WHERE tagvalues = ARRAY['p:pk'])
         FROM event",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!((n, payloads, tagged), (4, 0, 4));
    assert_eq!(count(db.pool(), "event_relay").await, 4);
    assert_eq!(count(db.pool(), "relay").await, 1);
    // Raw SQL cascade with payloads given: they are ignored, not refused.
    let e = ev(77, 1, 5, 1, json!([["t", "raw"]]));
    let c = crate::dbkit::columns(std::slice::from_ref(&e));
    let n: i32 = sqlx::query_scalar(
        "SELECT event_relay_insert_cascade($1, $2, $3, $4, $5, $6, $7, ARRAY['wss://r.example.com'],
                                           ARRAY['clearnet'], ARRAY[1::bigint], ARRAY[1::bigint])",
    )
    .bind(&c.ids)
    .bind(&c.pubkeys)
    .bind(&c.created_ats)
    .bind(&c.kinds)
    .bind(&c.tags)
    .bind(&c.contents)
    .bind(&c.sigs)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(n, 1);
    let content: Option<String> = sqlx::query_scalar("SELECT content FROM event WHERE id = $1")
        .bind(&e.id)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(content, None);
    // Orphan cleanup works the same.
    sqlx::query("DELETE FROM relay")
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(db.brotr().delete_orphan_events(2).await.unwrap(), 5);
}

/// The same data set, written through the stored functions.
async fn load(db: &TestDb) -> Vec<Ev> {
    let pool = db.pool();
    insert_relay(pool, "wss://a.example.com", "clearnet", 1).await;
    insert_relay(pool, "ws://t.onion", "tor", 2).await;
    let events = vec![
        ev(1, 1, 100, 1, json!([["t", "x"]])),
        ev(2, 1, 200, 1, json!([])),
        ev(3, 2, 300, 0, json!([])),
        ev(4, 2, 400, 0, json!([])),
        ev(5, 1, 86_400 * 3, 10002, json!([["r", "wss://x"]])),
        ev(6, 1, 500, 30023, json!([["d", "post"]])),
        ev(7, 1, 600, 30023, json!([["d", "post"], ["d", "ignored"]])),
        ev(8, 1, 550, 30023, json!([["t", "x"], ["d", "note"]])),
        ev(9, 1, 700, 30023, json!([])),
        ev(10, 3, 800, 20001, json!([])),
    ];
    insert_events(pool, &events).await;
    let all: Vec<&Ev> = events.iter().collect();
    link(pool, &all, "wss://a.example.com", 1).await;
    link(pool, &all[..4], "ws://t.onion", 1).await;
    let nip11 = crate::dbkit::doc(
        bigbrotr_models::metadata::MetadataType::Nip11Info,
        json!({"name": "A", "software": "strfry", "supported_nips": [1, 11]}),
    );
    crate::dbkit::snapshot(pool, "wss://a.example.com", "clearnet", &nip11, 5).await;
    refresh_all(&db.brotr()).await;
    events
}

#[tokio::test]
async fn the_13_views_refresh_and_agree_with_bigbrotr_on_the_same_data() {
    let big = TestDb::new().await;
    let lil = lil().await;
    load(&big).await;
    load(&lil).await;
    for view in VIEWS_IN_ORDER {
        // The latest-version views carry the payload columns; compare what both variants have.
        let columns = match view {
            "events_replaceable_latest" => "id, pubkey, created_at, kind, tagvalues",
            "events_addressable_latest" => "id, pubkey, created_at, kind, tagvalues, d_tag",
            _ => "*",
        };
        let sql =
            format!("SELECT to_jsonb(v)::text FROM (SELECT {columns} FROM {view}) v ORDER BY 1");
        let fetch = |db: &TestDb| {
            let pool = db.pool().clone();
            let sql = sql.clone();
            async move {
                sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await
                    .unwrap()
            }
        };
        let (b, l) = (fetch(&big).await, fetch(&lil).await);
        assert!(!b.is_empty(), "{view} has rows");
        assert_eq!(l, b, "{view} is the same on LilBrotr");
    }
    let payloads: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events_addressable_latest WHERE tags IS NOT NULL OR content IS NOT NULL",
    )
    .fetch_one(lil.pool())
    .await
    .unwrap();
    assert_eq!(payloads, 0);
}

#[tokio::test]
async fn addressable_d_tags_come_from_tagvalues_when_tags_are_not_stored() {
    let db = lil().await;
    load(&db).await;
    let got: Vec<(String, i64)> =
        sqlx::query_as("SELECT d_tag, created_at FROM events_addressable_latest ORDER BY d_tag")
            .fetch_all(db.pool())
            .await
            .unwrap();
    // 6.6.9 read d from the NULL tags and collapsed these into one '' row.
    let r = |d: &str, t: i64| (d.to_owned(), t);
    assert_eq!(got, [r("", 700), r("note", 550), r("post", 600)]);
}

/// One catalog query's rows as text, sorted.
async fn catalog(db: &TestDb, sql: &str) -> Vec<String> {
    let mut rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.sort();
    rows
}

#[tokio::test]
async fn apart_from_the_event_payload_the_catalog_is_bigbrotrs() {
    let big = TestDb::new().await;
    let lil = lil().await;
    let queries = [
        // Functions with their bodies; event_insert is compared below.
        "SELECT p.oid::regprocedure::text || ' ' || pg_get_function_result(p.oid) || ' '
                || md5(p.prosrc) || ' ' || coalesce(p.proacl::text, '')
         FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
           AND p.proname <> 'event_insert'",
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'",
        "SELECT c.relname || ' ' || c.relkind::text || ' ' || coalesce(c.relacl::text, '') || ' '
                || coalesce(c.reloptions::text, '') || ' ' || pg_get_userbyid(c.relowner)
         FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'm')",
        "SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
                || a.attcompression::text
                || CASE WHEN c.relname LIKE 'event%' AND a.attname IN ('tags', 'content', 'sig')
                        THEN '' ELSE ' ' || a.attnotnull::text END
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'm')
           AND a.attnum > 0 AND NOT a.attisdropped",
        "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
         WHERE connamespace = 'public'::regnamespace AND conname <> 'event_lilbrotr_payload_null'",
    ];
    for sql in queries {
        assert_eq!(catalog(&lil, sql).await, catalog(&big, sql).await, "{sql}");
    }
    // What differs: the CHECK on event (inherited by its 16 partitions) and event_insert's body.
    let sql =
        "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
               WHERE conname = 'event_lilbrotr_payload_null'";
    assert!(catalog(&big, sql).await.is_empty());
    let checks = catalog(&lil, sql).await;
    assert_eq!(checks.len(), 17, "{checks:?}");
    assert!(checks.iter().all(|c| {
        c.ends_with("CHECK (((tags IS NULL) AND (content IS NULL) AND (sig IS NULL))) NOT VALID")
            || c.ends_with("CHECK (((tags IS NULL) AND (content IS NULL) AND (sig IS NULL)))")
    }));
    let body = "SELECT md5(prosrc) FROM pg_proc WHERE proname = 'event_insert'";
    assert_ne!(catalog(&lil, body).await, catalog(&big, body).await);
}
