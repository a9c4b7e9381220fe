//! Raw-SQL helpers for the schema tests: synthetic rows written straight through the stored
//! functions (with ids the test chooses), scalar reads, SQLSTATE extraction and role switches.

use bigbrotr_db::DbError;
use bigbrotr_models::metadata::{Metadata, MetadataType};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgRow;

/// The 13 materialized views of 6.6.9 in the dependency order of reference §1.6:
/// relay_metadata_latest first, the two views that read it last.
pub(crate) const VIEWS_IN_ORDER: [&str; 13] = bigbrotr_db::migrate::MATERIALIZED_VIEWS;

/// 32 bytes: `tag` repeated 28 times, then `n` big-endian. Ids with one tag order like `n`.
pub(crate) fn id32(tag: u8, n: u32) -> Vec<u8> {
    let mut id = vec![tag; 28];
    id.extend_from_slice(&n.to_be_bytes());
    id
}

/// A synthetic event row (not signed: the database never verifies signatures).
#[derive(Debug, Clone)]
pub(crate) struct Ev {
    pub(crate) id: Vec<u8>,
    pub(crate) pubkey: Vec<u8>,
    pub(crate) created_at: i64,
    pub(crate) kind: i32,
    pub(crate) tags: Value,
    pub(crate) content: String,
    pub(crate) sig: Vec<u8>,
}

/// Event number `n` by author `author` (pubkey = 32 × `author`).
pub(crate) fn ev(n: u32, author: u8, created_at: i64, kind: i32, tags: Value) -> Ev {
    Ev {
        id: id32(0xee, n),
        pubkey: vec![author; 32],
        created_at,
        kind,
        tags,
        content: format!("content of event {n}"),
        sig: vec![0x51; 64],
    }
}

/// A tag-less event.
pub(crate) fn ev0(n: u32, author: u8, created_at: i64, kind: i32) -> Ev {
    ev(n, author, created_at, kind, json!([]))
}

/// Column arrays of `event_insert`.
pub(crate) struct EvColumns {
    pub(crate) ids: Vec<Vec<u8>>,
    pub(crate) pubkeys: Vec<Vec<u8>>,
    pub(crate) created_ats: Vec<i64>,
    pub(crate) kinds: Vec<i32>,
    pub(crate) tags: Vec<Value>,
    pub(crate) contents: Vec<String>,
    pub(crate) sigs: Vec<Vec<u8>>,
}

pub(crate) fn columns(events: &[Ev]) -> EvColumns {
    EvColumns {
        ids: events.iter().map(|e| e.id.clone()).collect(),
        pubkeys: events.iter().map(|e| e.pubkey.clone()).collect(),
        created_ats: events.iter().map(|e| e.created_at).collect(),
        kinds: events.iter().map(|e| e.kind).collect(),
        tags: events.iter().map(|e| e.tags.clone()).collect(),
        contents: events.iter().map(|e| e.content.clone()).collect(),
        sigs: events.iter().map(|e| e.sig.clone()).collect(),
    }
}

/// `event_insert` over `events`; returns its row count.
pub(crate) async fn insert_events(pool: &PgPool, events: &[Ev]) -> i32 {
    let c = columns(events);
    sqlx::query_scalar("SELECT event_insert($1, $2, $3, $4, $5, $6, $7)")
        .bind(&c.ids)
        .bind(&c.pubkeys)
        .bind(&c.created_ats)
        .bind(&c.kinds)
        .bind(&c.tags)
        .bind(&c.contents)
        .bind(&c.sigs)
        .fetch_one(pool)
        .await
        .expect("event_insert")
}

/// `relay_insert` of one relay; returns its row count.
pub(crate) async fn insert_relay(
    pool: &PgPool,
    url: &str,
    network: &str,
    discovered_at: i64,
) -> i32 {
    sqlx::query_scalar("SELECT relay_insert(ARRAY[$1], ARRAY[$2], ARRAY[$3::bigint])")
        .bind(url)
        .bind(network)
        .bind(discovered_at)
        .fetch_one(pool)
        .await
        .expect("relay_insert")
}

/// `event_relay_insert`: links each event to `relay_url` at `seen_at`.
pub(crate) async fn link(pool: &PgPool, events: &[&Ev], relay_url: &str, seen_at: i64) -> i32 {
    let ids: Vec<Vec<u8>> = events.iter().map(|e| e.id.clone()).collect();
    let urls = vec![relay_url.to_owned(); events.len()];
    let seen = vec![seen_at; events.len()];
    sqlx::query_scalar("SELECT event_relay_insert($1, $2, $3)")
        .bind(&ids)
        .bind(&urls)
        .bind(&seen)
        .fetch_one(pool)
        .await
        .expect("event_relay_insert")
}

/// A stored document in 6.6.9's envelope form `{"data": data}` (empty logs are sanitised away).
pub(crate) fn doc(metadata_type: MetadataType, data: Value) -> Metadata {
    Metadata::envelope(metadata_type, data, json!({})).expect("valid metadata")
}

/// `relay_metadata_insert_cascade` of one snapshot (relay, document and link).
pub(crate) async fn snapshot(
    pool: &PgPool,
    relay_url: &str,
    network: &str,
    metadata: &Metadata,
    generated_at: i64,
) {
    let n: i32 = sqlx::query_scalar(
        "SELECT relay_metadata_insert_cascade(ARRAY[$1], ARRAY[$2], ARRAY[1::bigint], ARRAY[$3], \
         ARRAY[$4], ARRAY[$5::jsonb], ARRAY[$6::bigint])",
    )
    .bind(relay_url)
    .bind(network)
    .bind(metadata.id().to_vec())
    .bind(metadata.metadata_type().as_str())
    .bind(metadata.data())
    .bind(generated_at)
    .fetch_one(pool)
    .await
    .expect("relay_metadata_insert_cascade");
    assert_eq!(
        n,
        1,
        "snapshot ({relay_url}, {}, {generated_at}) stored",
        metadata.metadata_type()
    );
}

/// The number N of the `event_pN` partition holding event `id`.
pub(crate) async fn partition_of(pool: &PgPool, id: &[u8]) -> i32 {
    sqlx::query_scalar(
        "SELECT substring(tableoid::regclass::text FROM '_p(\\d+)$')::int FROM event WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("partition of an event")
}

/// Asserts that, of events tied on created_at, the lowest id is not in the first partition a
/// sequential scan reads: a tie broken by scan order instead of by id would then pick another.
pub(crate) async fn assert_tie_is_not_settled_by_scan_order(pool: &PgPool, tied: &[&Ev]) {
    let lowest = tied.iter().map(|e| &e.id).min().expect("ties");
    let mut first = i32::MAX;
    for e in tied {
        first = first.min(partition_of(pool, &e.id).await);
    }
    assert!(
        partition_of(pool, lowest).await > first,
        "fixture: pick tied ids whose lowest id is not in the lowest partition"
    );
}

/// Runs a statement that returns nothing interesting.
pub(crate) async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `SELECT count(*) FROM <table>`.
pub(crate) async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e}"))
}

/// Fetches every row of `sql`.
pub(crate) async fn rows(pool: &PgPool, sql: &str) -> Vec<PgRow> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The SQLSTATE of a driver error, if the server sent one.
pub(crate) fn sqlstate(error: &sqlx::Error) -> Option<String> {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

/// The SQLSTATE behind a facade error.
pub(crate) fn db_sqlstate(error: &DbError) -> Option<String> {
    match error {
        DbError::Sqlx(e) => sqlstate(e),
        _ => None,
    }
}

/// Runs `sql` as `role` (`SET LOCAL ROLE` inside a transaction that is always rolled back) and
/// returns the server's answer.
pub(crate) async fn as_role(pool: &PgPool, role: &str, sql: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE {role}")))
        .execute(&mut *tx)
        .await?;
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .map(|_| ());
    tx.rollback().await.ok();
    result
}

/// Refreshes every view through the facade, in dependency order.
pub(crate) async fn refresh_all(brotr: &bigbrotr_db::Brotr) {
    for view in VIEWS_IN_ORDER {
        brotr
            .refresh_materialized_view(view)
            .await
            .unwrap_or_else(|e| panic!("refresh {view}: {e}"));
    }
}

/// NIP-01 category of a kind, as reference §1.6 defines the ranges.
pub(crate) fn category(kind: i32) -> &'static str {
    match kind {
        1 | 2 | 4..=44 | 1000..=9999 => "regular",
        0 | 3 | 10000..=19999 => "replaceable",
        20000..=29999 => "ephemeral",
        30000..=39999 => "addressable",
        _ => "other",
    }
}

/// The tagvalues rule of reference §1.3, written independently of the SQL: for each tag whose
/// key is exactly one character, `key:first value`, in tag order, duplicates kept; a key-only tag
/// gives `None`.
pub(crate) fn expected_tagvalues(tags: &Value) -> Vec<Option<String>> {
    let Some(tags) = tags.as_array() else {
        return Vec::new();
    };
    tags.iter()
        .filter_map(|tag| {
            let key = tag.get(0)?.as_str()?;
            if key.chars().count() != 1 {
                return None;
            }
            Some(
                tag.get(1)
                    .and_then(Value::as_str)
                    .map(|v| format!("{key}:{v}")),
            )
        })
        .collect()
}
