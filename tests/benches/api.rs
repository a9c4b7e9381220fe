//! `make bench-api` (part of `make bench`): the REST API over a 1,000,000-event archive, each
//! request next to the same SQL run directly in the same run (the floor).
//!
//! The archive is generated server-side (`common::load_archive`, shared with the DVM's bench:
//! set-based SQL, capture triggers off while loading): 200 relays, 1,000,000 events by 20,000
//! authors with a skewed activity, the kind mix of an archive, `created_at` spread over a year,
//! one or two small tags, short content, 64-byte signatures; each event on one relay and every
//! other one on a second. Then `VACUUM ANALYZE`.
//!
//! The real `bigbrotr-api` binary (release build, `target/release/bigbrotr-api`) serves `event`,
//! `event_relay` and `relay` as role `reader` with its defaults (pool of 5, `exact_total_limit`
//! 10,000) on loopback. Every scenario is measured with 1 and 4 concurrent clients on each path,
//! one path after the other, each after its own warm-up; wall time per request:
//! - **API**: a `reqwest` client over loopback HTTP, from sending the request to having read the
//!   whole body;
//! - **floor**: the same SQL statements sent directly with sqlx, prepared once per connection (the
//!   page statement, then the capped count: exact up to 10,000 rows, else the estimate, on one
//!   connection, no transaction); for lookups the API's statement, and also a plain `SELECT *`;
//! - where the difference goes: the same statements unnamed (parsed, described and planned at
//!   every execution, as the API's pool sends them for PgBouncer's transaction mode), and the
//!   API's own database call in this process (`Brotr::catalog_get` / `catalog_list` as `reader`:
//!   unnamed statements in a read-only transaction with `SET LOCAL statement_timeout`), i.e. the
//!   API without HTTP; and HTTP alone (`/v1/schema/event`, no database).
//!
//! Plus the walk to the deep page: 500 pages of 1,000 rows following `next_cursor`. Before
//! measuring, every scenario's answer is checked to be the same on every path.

// A benchmark program: any failure must abort the run loudly, and the report goes to stdout.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bigbrotr_db::Brotr;
use bigbrotr_db::catalog::{
    CatalogObject, Condition, ListPage, ListQuery, Op, ReadBudget, TotalMode, Value,
};
use bigbrotr_testkit::TestDb;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};
use tokio::task::JoinSet;

use common::{ARCHIVE_EVENTS as EVENTS, DaemonProcess, archive_size, free_port, load_archive};

/// The position of the deep page, in rows (key order).
const DEEP: usize = 500_000;
/// The page size of the walk to the deep page (the API's `max_page_size`).
const WALK_PAGE: u32 = 1_000;
/// The page size of the measured pages.
const PAGE: u32 = 100;
/// The API's default `exact_total_limit`.
const EXACT_TOTAL: u64 = 10_000;
/// The API's deepest `offset`.
const MAX_OFFSET: u64 = 100_000;
const BUDGET: ReadBudget = ReadBudget(Duration::from_secs(30));
const CLIENTS: [usize; 2] = [1, 4];
/// Rounds of every measurement (each runs a share of the requests on every path in turn).
const ROUNDS: usize = 5;
/// Requests per lookup measurement.
const LOOKUPS: usize = 4_000;
/// Requests per page measurement.
const PAGES: usize = 500;
/// Requests per measurement of the deepest offset (about 0.2 s each).
const OFFSET_PAGES: usize = 30;

/// The select list the API renders an event with (crates/bigbrotr-db/src/catalog.rs).
const RENDER: &str = "SELECT encode(t.\"id\", 'hex') AS \"id\", \
    encode(t.\"pubkey\", 'hex') AS \"pubkey\", t.\"created_at\" AS \"created_at\", \
    t.\"kind\" AS \"kind\", t.\"tags\" AS \"tags\", t.\"tagvalues\" AS \"tagvalues\", \
    t.\"content\" AS \"content\", encode(t.\"sig\", 'hex') AS \"sig\"";

/// The reltuples estimate of an unfiltered count, as the API runs it.
const ESTIMATE_SQL: &str = "SELECT COALESCE(\
    (SELECT sum(GREATEST(c.reltuples, 0)) \
     FROM pg_catalog.pg_partition_tree($1::regclass) p \
     JOIN pg_catalog.pg_class c ON c.oid = p.relid WHERE p.isleaf), \
    (SELECT GREATEST(c.reltuples, 0) FROM pg_catalog.pg_class c WHERE c.oid = $1::regclass), \
    0)::float8";

/// A filter of a page: `column op value` over an integer column of `event`.
#[derive(Debug, Clone)]
struct Filter {
    column: &'static str,
    pg_type: &'static str,
    op: Op,
    value: i64,
}

impl Filter {
    fn sql_op(&self) -> &'static str {
        match self.op {
            Op::Eq => "=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Le => "<=",
            other => panic!("unused operator {other:?}"),
        }
    }

    /// The query parameter, percent-encoded: `kind=1`, `created_at=%3E%3D:1700000000`.
    fn param(&self) -> String {
        let op = match self.op {
            Op::Eq => String::new(),
            _ => format!(
                "{}:",
                self.sql_op()
                    .replace('>', "%3E")
                    .replace('<', "%3C")
                    .replace('=', "%3D")
            ),
        };
        format!("{}={op}{}", self.column, self.value)
    }
}

/// One page request: filters, order, keyset position (the key's PostgreSQL text), offset, size.
#[derive(Debug, Clone)]
struct PageSpec {
    filters: Vec<Filter>,
    /// `sort=created_at:desc` (the order is then `created_at DESC, id DESC`); else key order.
    newest_first: bool,
    after: Option<String>,
    /// The API's cursor for `after`.
    cursor: Option<String>,
    offset: u64,
    limit: u32,
}

impl PageSpec {
    fn new(filters: Vec<Filter>, limit: u32) -> Self {
        Self {
            filters,
            newest_first: false,
            after: None,
            cursor: None,
            offset: 0,
            limit,
        }
    }

    fn url(&self, base: &str) -> String {
        let mut params: Vec<String> = self.filters.iter().map(Filter::param).collect();
        params.push(format!("limit={}", self.limit));
        if self.newest_first {
            params.push("sort=created_at:desc".to_owned());
        }
        if self.offset > 0 {
            params.push(format!("offset={}", self.offset));
        }
        if let Some(cursor) = &self.cursor {
            params.push(format!("cursor={cursor}"));
        }
        format!("{base}/v1/event?{}", params.join("&"))
    }

    /// The filters' `WHERE` clauses (binds `$1…`).
    fn filter_clauses(&self) -> Vec<String> {
        self.filters
            .iter()
            .enumerate()
            .map(|(i, f)| {
                format!(
                    "t.\"{}\" {} ${}::{}",
                    f.column,
                    f.sql_op(),
                    i + 1,
                    f.pg_type
                )
            })
            .collect()
    }

    /// The order columns.
    fn order(&self) -> &'static [&'static str] {
        if self.newest_first {
            &["created_at", "id"]
        } else {
            &["id"]
        }
    }

    /// The page statement the API runs (`list_sql`): the page cut in a subquery, then rendered.
    fn data_sql(&self) -> String {
        assert!(!(self.newest_first && self.after.is_some()), "not measured");
        let mut clauses = self.filter_clauses();
        if self.after.is_some() {
            clauses.push(format!("(t.\"id\") > (${}::bytea)", self.filters.len() + 1));
        }
        let direction = if self.newest_first { "DESC" } else { "ASC" };
        let order_by = self
            .order()
            .iter()
            .map(|c| format!("t.\"{c}\" {direction}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut page = "SELECT t.* FROM public.\"event\" t".to_owned();
        if !clauses.is_empty() {
            page.push_str(" WHERE ");
            page.push_str(&clauses.join(" AND "));
        }
        page.push_str(&format!(
            " ORDER BY {order_by} LIMIT {} OFFSET {}",
            self.limit + 1,
            self.offset
        ));
        let keys: String = self
            .order()
            .iter()
            .map(|c| format!(", t.\"{c}\"::text"))
            .collect();
        format!(
            "SELECT row_to_json(o)::text{keys} FROM ({page}) t CROSS JOIN LATERAL ({RENDER}) o \
             ORDER BY {order_by}"
        )
    }

    /// `SELECT 1 FROM … WHERE filters` (the count's source).
    fn filtered_sql(&self) -> String {
        let clauses = self.filter_clauses();
        if clauses.is_empty() {
            "SELECT 1 FROM public.\"event\" t".to_owned()
        } else {
            format!(
                "SELECT 1 FROM public.\"event\" t WHERE {}",
                clauses.join(" AND ")
            )
        }
    }

    /// The same page as the API's typed query.
    fn list_query(&self, event: &CatalogObject) -> ListQuery {
        ListQuery {
            conditions: self
                .filters
                .iter()
                .map(|f| Condition {
                    column: event.column(f.column).unwrap().0,
                    op: f.op,
                    value: Value::Int(f.value),
                })
                .collect(),
            sort: self.newest_first.then(|| {
                (
                    event.column("created_at").unwrap().0,
                    bigbrotr_db::catalog::Direction::Desc,
                )
            }),
            after: self.after.clone().map(|key| vec![Some(key)]),
            limit: self.limit,
            offset: self.offset,
            total: TotalMode::Capped(EXACT_TOTAL),
        }
    }
}

/// The SQL floor of a page: the page statement, then the capped count (and the estimate when
/// more than the cap match) on one connection, as the API runs them; the rows and the last
/// row's key when more follow.
async fn floor_page(
    pool: &PgPool,
    spec: &PageSpec,
    sql: &FloorSql,
) -> (Vec<String>, Option<Vec<String>>, u64) {
    let mut conn = pool.acquire().await.unwrap();
    let mut data = sqlx::query(AssertSqlSafe(sql.data.clone()));
    for f in &spec.filters {
        data = data.bind(f.value);
    }
    if let Some(after) = &spec.after {
        data = data.bind(after.clone());
    }
    let rows = data.fetch_all(&mut *conn).await.unwrap();
    let limit = spec.limit as usize;
    let has_more = rows.len() > limit;
    let last_key = has_more.then(|| {
        (1..=spec.order().len())
            .map(|k| rows[limit - 1].get::<String, _>(k))
            .collect()
    });
    let out: Vec<String> = rows.iter().take(limit).map(|r| r.get(0)).collect();
    let mut count = sqlx::query(AssertSqlSafe(sql.count.clone()));
    for f in &spec.filters {
        count = count.bind(f.value);
    }
    let counted: i64 = count.fetch_one(&mut *conn).await.unwrap().get(0);
    let total = if counted as u64 <= EXACT_TOTAL {
        counted as u64
    } else if spec.filters.is_empty() {
        let estimate: f64 = sqlx::query(ESTIMATE_SQL)
            .bind("public.\"event\"")
            .fetch_one(&mut *conn)
            .await
            .unwrap()
            .get(0);
        (estimate as u64).max(EXACT_TOTAL + 1)
    } else {
        let mut explain = sqlx::query(AssertSqlSafe(sql.explain.clone()));
        for f in &spec.filters {
            explain = explain.bind(f.value);
        }
        let plan: serde_json::Value = explain.fetch_one(&mut *conn).await.unwrap().get(0);
        let rows = plan
            .pointer("/0/Plan/Plan Rows")
            .and_then(serde_json::Value::as_f64)
            .unwrap();
        (rows as u64).max(EXACT_TOTAL + 1)
    };
    (out, last_key, total)
}

#[derive(Debug, Clone)]
struct FloorSql {
    data: String,
    count: String,
    explain: String,
}

impl FloorSql {
    fn of(spec: &PageSpec) -> Self {
        Self {
            data: spec.data_sql(),
            count: format!(
                "SELECT count(*)::int8 FROM ({} LIMIT {}) s",
                spec.filtered_sql(),
                EXACT_TOTAL + 1
            ),
            explain: format!("EXPLAIN (FORMAT JSON) {}", spec.filtered_sql()),
        }
    }
}

/// The API's lookup statement (`catalog_get`).
fn lookup_sql() -> String {
    format!(
        "SELECT row_to_json(o)::text FROM public.\"event\" t CROSS JOIN LATERAL ({RENDER}) o \
         WHERE t.\"id\" = $1"
    )
}

const PLAIN_LOOKUP_SQL: &str = "SELECT id, pubkey, created_at, kind, tags, tagvalues, content, sig \
    FROM public.event WHERE id = $1";

/// What is measured.
#[derive(Debug, Clone)]
enum Work {
    /// Random existing ids (hex, bytes).
    Lookup(Arc<Vec<(String, Vec<u8>)>>),
    Page(Arc<(PageSpec, FloorSql)>),
    /// One URL, HTTP only.
    Static(Arc<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// The API over loopback HTTP.
    Http,
    /// The API's database call in this process.
    Catalog,
    /// The same statements, prepared once per connection (sqlx's statement cache).
    Sql,
    /// The same statements, unnamed (parsed, described and planned at every execution), as the
    /// API's pool sends them for PgBouncer's transaction mode; no transaction.
    SqlUnnamed,
    /// Lookups only: `SELECT * … WHERE id = $1`, prepared.
    PlainSql,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Self::Http => "API (HTTP)",
            Self::Catalog => "catalog call (the API without HTTP)",
            Self::Sql => "floor: SQL, prepared",
            Self::SqlUnnamed => "SQL, unnamed statements",
            Self::PlainSql => "SQL, plain SELECT * WHERE id = $1",
        }
    }
}

#[derive(Debug)]
struct Env {
    http: reqwest::Client,
    base: String,
    brotr: Brotr,
    event: CatalogObject,
    /// Prepared statements (the floor).
    pool: PgPool,
    /// Unnamed statements, as the API's pool.
    unnamed: PgPool,
}

async fn get(env: &Env, url: &str) -> impl AsRef<[u8]> {
    let response = env.http.get(url).send().await.unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    assert!(
        status.is_success(),
        "{url}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    body
}

/// One request on one path.
async fn once(env: &Env, path: Path, work: &Work, i: usize) {
    match (work, path) {
        (Work::Lookup(ids), Path::Http) => {
            let (hex, _) = &ids[i % ids.len()];
            get(env, &format!("{}/v1/event/{hex}", env.base)).await;
        }
        (Work::Lookup(ids), Path::Catalog) => {
            let (_, bytes) = &ids[i % ids.len()];
            let row = env
                .brotr
                .catalog_get(&env.event, &[Value::Bytes(bytes.clone())], BUDGET)
                .await
                .unwrap();
            assert!(row.is_some());
        }
        (Work::Lookup(ids), Path::Sql | Path::SqlUnnamed | Path::PlainSql) => {
            let (_, bytes) = &ids[i % ids.len()];
            let sql = if path == Path::PlainSql {
                PLAIN_LOOKUP_SQL.to_owned()
            } else {
                lookup_sql()
            };
            let pool = if path == Path::SqlUnnamed {
                &env.unnamed
            } else {
                &env.pool
            };
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(bytes.clone())
                .fetch_optional(pool)
                .await
                .unwrap();
            assert!(row.is_some());
        }
        (Work::Page(page), Path::Http) => {
            get(env, &page.0.url(&env.base)).await;
        }
        (Work::Page(page), Path::Catalog) => {
            env.brotr
                .catalog_list(&env.event, &page.0.list_query(&env.event), BUDGET)
                .await
                .unwrap();
        }
        (Work::Page(page), Path::Sql) => {
            floor_page(&env.pool, &page.0, &page.1).await;
        }
        (Work::Page(page), Path::SqlUnnamed) => {
            floor_page(&env.unnamed, &page.0, &page.1).await;
        }
        (Work::Static(url), Path::Http) => {
            get(env, url).await;
        }
        (Work::Page(_), Path::PlainSql) | (Work::Static(_), _) => unreachable!(),
    }
}

/// Requests `first .. first + requests` spread over `clients` concurrent clients; each
/// request's wall ms.
async fn drive(
    env: &Arc<Env>,
    path: Path,
    work: &Work,
    clients: usize,
    first: usize,
    requests: usize,
) -> Vec<f64> {
    let mut set = JoinSet::new();
    for client in 0..clients {
        let env = env.clone();
        let work = work.clone();
        set.spawn(async move {
            let mut out = Vec::new();
            let mut i = first + client;
            while i < first + requests {
                let started = Instant::now();
                once(&env, path, &work, i).await;
                out.push(started.elapsed().as_secs_f64() * 1000.0);
                i += clients;
            }
            out
        });
    }
    let mut all = Vec::with_capacity(requests);
    while let Some(part) = set.join_next().await {
        all.extend(part.unwrap());
    }
    all
}

/// A table row: label, clients, requests, the paths measured.
type TableRow = (String, usize, usize, Vec<(Path, Stats)>);

#[derive(Debug, Clone, Copy)]
struct Stats {
    rate: f64,
    p50: f64,
    p99: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `requests` requests on each of `paths` with `clients` concurrent clients: a warm-up on each
/// path, then `ROUNDS` rounds that each run a share of the requests on every path in turn, so
/// that whatever else the machine does falls on all paths alike.
async fn measure(
    env: &Arc<Env>,
    paths: &[Path],
    work: &Work,
    clients: usize,
    requests: usize,
) -> Vec<(Path, Stats)> {
    for &path in paths {
        drive(env, path, work, clients, 0, (requests / 10).max(20)).await;
    }
    let share = requests.div_ceil(ROUNDS);
    let mut latencies = vec![Vec::with_capacity(requests); paths.len()];
    let mut seconds = vec![0.0; paths.len()];
    for round in 0..ROUNDS {
        for (slot, &path) in paths.iter().enumerate() {
            let started = Instant::now();
            let part = drive(env, path, work, clients, round * share, share).await;
            seconds[slot] += started.elapsed().as_secs_f64();
            latencies[slot].extend(part);
        }
    }
    paths
        .iter()
        .zip(latencies)
        .zip(seconds)
        .map(|((&path, mut latencies), seconds)| {
            latencies.sort_by(f64::total_cmp);
            let stats = Stats {
                rate: latencies.len() as f64 / seconds,
                p50: percentile(&latencies, 0.50),
                p99: percentile(&latencies, 0.99),
            };
            (path, stats)
        })
        .collect()
}

async fn start_api(db: &TestDb) -> (DaemonProcess, String) {
    let port = free_port();
    let config = serde_json::json!({
        "host": "127.0.0.1",
        "port": port,
        "metrics": {"enabled": true, "host": "127.0.0.1", "port": free_port()},
        "pool": {"user": "reader", "statement_cache_size": 100},
        "tables": {
            "event": {"enabled": true},
            "event_relay": {"enabled": true},
            "relay": {"enabled": true},
        },
    });
    let mut process = DaemonProcess::start("bigbrotr-api", db, &config, &[]);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(format!("{base}/health")).send().await
            && response.status().is_success()
        {
            break;
        }
        process.assert_running();
        assert!(
            Instant::now() < deadline,
            "bigbrotr-api did not answer /health in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (process, base)
}

fn cell(stats: &Stats) -> String {
    format!("{:.0} | {:.2} | {:.2}", stats.rate, stats.p50, stats.p99)
}

/// Whether the three paths answer `spec` alike (rows, total, next key); returns the API's page.
async fn check_page(env: &Env, spec: &PageSpec, sql: &FloorSql) -> serde_json::Value {
    let body: serde_json::Value =
        serde_json::from_slice(get(env, &spec.url(&env.base)).await.as_ref()).unwrap();
    let (rows, last_key, total) = floor_page(&env.pool, spec, sql).await;
    let page: ListPage = env
        .brotr
        .catalog_list(&env.event, &spec.list_query(&env.event), BUDGET)
        .await
        .unwrap();
    let parse = |rows: &[String]| -> Vec<serde_json::Value> {
        rows.iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect()
    };
    let api_rows = body["data"].as_array().unwrap();
    assert_eq!(api_rows.len(), spec.limit as usize, "{}", spec.url(""));
    assert_eq!(api_rows, &parse(&rows), "{}", spec.url(""));
    assert_eq!(parse(&page.rows), parse(&rows), "{}", spec.url(""));
    assert_eq!(
        page.last_key,
        last_key.map(|k| k.into_iter().map(Some).collect())
    );
    assert_eq!(page.total.unwrap().value, total);
    assert_eq!(body["meta"]["total"].as_u64().unwrap(), total);
    body
}

async fn bench() {
    let db = TestDb::new().await;
    let load_s = load_archive(&db).await;
    let common::ArchiveSize {
        events,
        sightings,
        event_mib,
        database_mib: total_mib,
    } = archive_size(&db).await;
    eprintln!("loaded {events} events, {sightings} sightings in {load_s:.0}s");

    let (_api, base) = start_api(&db).await;
    let mut reader_config = db.config();
    reader_config.pool.database.user = "reader".into();
    reader_config.pool.limits.max_size = 4;
    reader_config.pool.limits.statement_cache_size = 100;
    let brotr = Brotr::connect(reader_config, None).await.unwrap();
    let event = brotr
        .discover_catalog()
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.name == "event")
        .unwrap();
    let reader = db.options().clone().username("reader");
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(reader.clone())
        .await
        .unwrap();
    let unnamed = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(reader.statement_cache_capacity(0))
        .await
        .unwrap();
    let env = Arc::new(Env {
        http: reqwest::Client::new(),
        base,
        brotr,
        event,
        pool,
        unnamed,
    });

    // Random existing ids, read once by SQL so that every path finds them cached alike.
    let ids: Arc<Vec<(String, Vec<u8>)>> = sqlx::query_scalar(
        "SELECT md5(i::text) || md5((-i)::text)
         FROM (SELECT 1 + (random() * 999999)::int AS i FROM generate_series(1, 4000)) s",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .into_iter()
    .map(|hex: String| {
        let bytes = hex::decode(&hex).unwrap();
        (hex, bytes)
    })
    .collect::<Vec<_>>()
    .into();
    for (hex, bytes) in ids.iter().take(3) {
        let body: serde_json::Value = serde_json::from_slice(
            get(&env, &format!("{}/v1/event/{hex}", env.base))
                .await
                .as_ref(),
        )
        .unwrap();
        let direct: String = sqlx::query_scalar(AssertSqlSafe(lookup_sql()))
            .bind(bytes.clone())
            .fetch_one(&env.pool)
            .await
            .unwrap();
        assert_eq!(
            body["data"],
            serde_json::from_str::<serde_json::Value>(&direct).unwrap()
        );
    }
    let all: Vec<Vec<u8>> = ids.iter().map(|(_, b)| b.clone()).collect();
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM event WHERE id = ANY($1)")
        .bind(all)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(found > 3900, "{found} of the random ids exist");
    let lookup = Work::Lookup(ids);

    // The walk to the deep page: 500 pages of 1,000 rows by cursor, on each path.
    let walk_pages = DEEP / WALK_PAGE as usize;
    let mut walk = Vec::new();
    let started = Instant::now();
    let mut cursor: Option<String> = None;
    for _ in 0..walk_pages {
        let mut spec = PageSpec::new(Vec::new(), WALK_PAGE);
        spec.cursor = cursor.clone();
        let body: serde_json::Value =
            serde_json::from_slice(get(&env, &spec.url(&env.base)).await.as_ref()).unwrap();
        cursor = Some(body["meta"]["next_cursor"].as_str().unwrap().to_owned());
    }
    walk.push((Path::Http, started.elapsed().as_secs_f64()));
    let deep_cursor = cursor.unwrap();
    let started = Instant::now();
    let mut after: Option<Vec<Option<String>>> = None;
    for _ in 0..walk_pages {
        let mut spec = PageSpec::new(Vec::new(), WALK_PAGE);
        spec.after = after.map(|k| k[0].clone().unwrap());
        let page = env
            .brotr
            .catalog_list(&env.event, &spec.list_query(&env.event), BUDGET)
            .await
            .unwrap();
        after = page.last_key;
    }
    walk.push((Path::Catalog, started.elapsed().as_secs_f64()));
    let started = Instant::now();
    let mut after: Option<String> = None;
    for _ in 0..walk_pages {
        let mut spec = PageSpec::new(Vec::new(), WALK_PAGE);
        spec.after = after;
        let sql = FloorSql::of(&spec);
        after = floor_page(&env.pool, &spec, &sql)
            .await
            .1
            .map(|key| key[0].clone());
    }
    walk.push((Path::Sql, started.elapsed().as_secs_f64()));
    let deep_key = after.unwrap();
    let expected: String = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT id::text FROM event ORDER BY id OFFSET {} LIMIT 1",
        DEEP - 1
    )))
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(deep_key, expected, "the walk ends at row {DEEP}");

    // The scenarios.
    let week_start: i64 = 1_700_000_000 + 180 * 86_400;
    let kind1 = || Filter {
        column: "kind",
        pg_type: "integer",
        op: Op::Eq,
        value: 1,
    };
    let week = || {
        vec![
            Filter {
                column: "created_at",
                pg_type: "bigint",
                op: Op::Ge,
                value: week_start,
            },
            Filter {
                column: "created_at",
                pg_type: "bigint",
                op: Op::Lt,
                value: week_start + 7 * 86_400,
            },
        ]
    };
    let deep = |filters: Vec<Filter>| PageSpec {
        after: Some(deep_key.clone()),
        cursor: Some(deep_cursor.clone()),
        ..PageSpec::new(filters, PAGE)
    };
    let pages: Vec<(&str, PageSpec, usize)> = vec![
        ("first page", PageSpec::new(Vec::new(), PAGE), PAGES),
        (
            "filtered: kind=1",
            PageSpec::new(vec![kind1()], PAGE),
            PAGES,
        ),
        (
            "filtered: created_at in one week (key order)",
            PageSpec::new(week(), PAGE),
            PAGES,
        ),
        (
            "filtered: created_at in one week, sort=created_at:desc",
            PageSpec {
                newest_first: true,
                ..PageSpec::new(week(), PAGE)
            },
            PAGES,
        ),
        ("500,000 rows deep (cursor)", deep(Vec::new()), PAGES),
        (
            "kind=1 after row 500,000 (cursor)",
            deep(vec![kind1()]),
            PAGES,
        ),
        (
            "offset=100000 (the deepest offset)",
            PageSpec {
                offset: MAX_OFFSET,
                ..PageSpec::new(Vec::new(), PAGE)
            },
            OFFSET_PAGES,
        ),
    ];

    // Each row: label, clients, requests, the paths measured.
    let mut rows: Vec<TableRow> = Vec::new();
    // HTTP alone: a route that reads nothing from the database.
    let schema = Work::Static(Arc::new(format!("{}/v1/schema/event", env.base)));
    for clients in CLIENTS {
        let http = measure(&env, &[Path::Http], &schema, clients, LOOKUPS).await;
        rows.push((
            "no database: /v1/schema/event".into(),
            clients,
            LOOKUPS,
            http,
        ));
        let paths = [
            Path::Http,
            Path::Catalog,
            Path::Sql,
            Path::SqlUnnamed,
            Path::PlainSql,
        ];
        let stats = measure(&env, &paths, &lookup, clients, LOOKUPS).await;
        eprintln!("lookup, {clients} clients: done");
        rows.push((
            "point lookup /v1/event/{id}".into(),
            clients,
            LOOKUPS,
            stats,
        ));
    }
    for (label, spec, requests) in &pages {
        let sql = FloorSql::of(spec);
        let body = check_page(&env, spec, &sql).await;
        eprintln!(
            "{label}: total {} (exact {})",
            body["meta"]["total"], body["meta"]["total_exact"]
        );
        if spec.filters.is_empty() {
            // The estimate of an unfiltered total: the table's statistics, counted once.
            let total = body["meta"]["total"].as_u64().unwrap() as f64;
            assert!(
                (total / EVENTS as f64 - 1.0).abs() < 0.05,
                "estimated total {total} for {EVENTS} events"
            );
        }
        let work = Work::Page(Arc::new((spec.clone(), sql)));
        for clients in CLIENTS {
            let paths = [Path::Http, Path::Catalog, Path::Sql, Path::SqlUnnamed];
            let stats = measure(&env, &paths, &work, clients, *requests).await;
            eprintln!("{label}, {clients} clients: done");
            rows.push(((*label).to_owned(), clients, *requests, stats));
        }
    }

    println!(
        "### API: {events} events ({event_mib:.0} MiB with indexes), {sightings} sightings, \
         database {total_mib:.0} MiB\n"
    );
    println!(
        "Wall ms per request. API = a loopback HTTP request to bigbrotr-api until the whole body \
         is read. Floor = the same SQL statements sent directly with sqlx, prepared (page \
         statement and capped count on one connection; lookups: the API's statement). Ratios \
         are API / floor.\n"
    );
    println!(
        "| scenario | clients | requests | API req/s | API p50 | API p99 | floor req/s | floor p50 | floor p99 | p50 ratio | p99 ratio | req/s ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let find = |stats: &[(Path, Stats)], path: Path| {
        stats.iter().find(|(p, _)| *p == path).map(|(_, s)| *s)
    };
    for (label, clients, requests, stats) in &rows {
        let http = find(stats, Path::Http).unwrap();
        let Some(sql) = find(stats, Path::Sql) else {
            println!(
                "| {label} | {clients} | {requests} | {} | | | | | | |",
                cell(&http)
            );
            continue;
        };
        println!(
            "| {label} | {clients} | {requests} | {} | {} | {:.2} | {:.2} | {:.2} |",
            cell(&http),
            cell(&sql),
            http.p50 / sql.p50,
            http.p99 / sql.p99,
            http.rate / sql.rate,
        );
        if let Some(plain) = find(stats, Path::PlainSql) {
            println!(
                "| point lookup, floor = plain `SELECT *` | {clients} | {requests} | {} | {} | {:.2} | {:.2} | {:.2} |",
                cell(&http),
                cell(&plain),
                http.p50 / plain.p50,
                http.p99 / plain.p99,
                http.rate / plain.rate,
            );
        }
    }
    println!(
        "\nWhere the API's time goes, p50 / p99 ms: {}, {}, {} (what the API's pool sends, plus \
         its read-only transaction: BEGIN with SET LOCAL statement_timeout, COMMIT), {}.\n",
        Path::Sql.label(),
        Path::SqlUnnamed.label(),
        Path::Catalog.label(),
        Path::Http.label(),
    );
    println!(
        "| scenario | clients | floor: prepared | unnamed | + transaction (catalog call) | + HTTP (API) |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, clients, _, stats) in &rows {
        let cells: Vec<String> = [Path::Sql, Path::SqlUnnamed, Path::Catalog, Path::Http]
            .into_iter()
            .map(|path| {
                find(stats, path).map_or(String::new(), |s| format!("{:.2} / {:.2}", s.p50, s.p99))
            })
            .collect();
        println!("| {label} | {clients} | {} |", cells.join(" | "));
    }
    println!(
        "\nWalk to row {DEEP}: {walk_pages} pages of {WALK_PAGE} rows by cursor, one client:\n"
    );
    println!("| path | s | pages/s | rows/s | ms/page |\n|---|---|---|---|---|");
    for (path, seconds) in &walk {
        println!(
            "| {} | {seconds:.2} | {:.0} | {:.0} | {:.2} |",
            path.label(),
            walk_pages as f64 / seconds,
            DEEP as f64 / seconds,
            seconds * 1000.0 / walk_pages as f64
        );
    }
    println!();
}

fn main() {
    bigbrotr_core::bootstrap::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}
