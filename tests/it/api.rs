//! The API end to end: the real `bigbrotr-api` binary on a migrated test database with rows in
//! every table, called over HTTP on loopback. Every route, every filter operator on every column
//! type (each answer checked against the same predicate run with SQL), every error (a JSON 4xx,
//! never a 500), keyset pages that cover a table exactly once while rows are inserted between
//! pages (ascending, descending, ties, a nullable sort column), CORS, server-side timeouts, the
//! query-slot bound, the metrics, and the `reader` role unable to write.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bigbrotr_models::metadata::MetadataType;
use bigbrotr_testkit::TestDb;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::dbkit::{
    as_role, doc, ev, exec, insert_events, insert_relay, link, refresh_all, snapshot,
};

/// A running `bigbrotr-api` process, killed on drop.
pub(crate) struct ApiProcess {
    child: Child,
    pub(crate) address: SocketAddr,
    pub(crate) metrics: SocketAddr,
    _dir: TempDir,
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The workspace's `bigbrotr-api` binary (built by `make test` before the tests run).
fn api_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/it-<hash> → target/<profile>/bigbrotr-api
    let path = exe.parent().unwrap().parent().unwrap().join("bigbrotr-api");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p bigbrotr-api` (make test does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the binary on `db` as role `reader` with `config` merged over the test defaults
/// (loopback, any free port, metrics on), and waits until it listens.
fn start(db: &TestDb, config: Value) -> ApiProcess {
    start_with(&db.config(), config)
}

/// Starts the binary on the database `brotr_config` points at, as [`start`] does.
pub(crate) fn start_with(
    brotr_config: &bigbrotr_db::config::BrotrConfig,
    config: Value,
) -> ApiProcess {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("bigbrotr-api-it-{}-{unique}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let brotr = dir.join("brotr.yaml");
    std::fs::write(&brotr, serde_json::to_string(brotr_config).unwrap()).unwrap();
    let metrics_port = free_port();
    let mut service = json!({
        "host": "127.0.0.1",
        "port": 0,
        "metrics": {"enabled": true, "host": "127.0.0.1", "port": metrics_port},
        // Named statements cached, as the deployments' api.yaml has it.
        "pool": {"user": "reader", "min_size": 1, "max_size": 4, "statement_cache_size": 100},
    });
    merge(&mut service, config);
    let service_path = dir.join("api.yaml");
    std::fs::write(&service_path, service.to_string()).unwrap();
    let mut child = Command::new(api_binary())
        .arg("--config")
        .arg(&service_path)
        .arg("--brotr-config")
        .arg(&brotr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log names the bound address; keep draining the output afterwards.
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the API did not start; its output: {seen:#?}");
        };
        if line.contains("api_listening")
            && let Some(address) = line
                .split_whitespace()
                .find_map(|part| part.strip_prefix("address="))
        {
            return ApiProcess {
                child,
                address: address.parse().unwrap(),
                metrics: SocketAddr::from(([127, 0, 0, 1], metrics_port)),
                _dir: TempDir(dir),
            };
        }
        seen.push(line);
    }
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (slot, value) => *slot = value,
    }
}

/// One HTTP/1.1 exchange with raw bytes on the wire (so malformed targets reach the server as
/// they are): status, lower-cased headers, body.
async fn raw(address: SocketAddr, request: &[u8]) -> (u16, BTreeMap<String, String>, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("answer within 30 s")
        .unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

pub(crate) async fn request(
    address: SocketAddr,
    method: &str,
    target: &str,
    extra_headers: &str,
) -> (u16, BTreeMap<String, String>, String) {
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra_headers}\r\n"
    );
    raw(address, request.as_bytes()).await
}

/// GET `target`: status and parsed JSON body.
pub(crate) async fn get(address: SocketAddr, target: &str) -> (u16, Value) {
    let (status, headers, body) = request(address, "GET", target, "").await;
    if target != "/docs" {
        assert_eq!(
            headers.get("content-type").map(String::as_str),
            Some("application/json"),
            "{target}: {body}"
        );
    }
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, value)
}

/// Percent-encodes a query value.
pub(crate) fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const RELAY_WITH_PATH: &str = "wss://relay.example.com/inbox";

/// Rows in every table: relays (one with a path), events of several kinds with tags, their
/// sightings, metadata documents and their links, a service_state row, refreshed analytics.
async fn populate(db: &TestDb) -> Vec<crate::dbkit::Ev> {
    let pool = db.pool();
    for (i, url) in ["wss://relay.damus.io", "wss://nos.lol", RELAY_WITH_PATH]
        .iter()
        .enumerate()
    {
        insert_relay(pool, url, "clearnet", 1_700_000_000 + i as i64).await;
    }
    let mut events = Vec::new();
    for n in 0..40u32 {
        let tags = json!([
            ["t", format!("topic{}", n % 3)],
            ["p", hex::encode([n as u8; 32])]
        ]);
        events.push(ev(
            n,
            (n % 4) as u8 + 1,
            1_700_000_000 + i64::from(n) * 3600,
            [1, 7, 0, 30023][n as usize % 4],
            tags,
        ));
    }
    insert_events(pool, &events).await;
    let refs: Vec<&crate::dbkit::Ev> = events.iter().collect();
    link(pool, &refs[..30], "wss://relay.damus.io", 1_700_500_000).await;
    link(pool, &refs[10..], RELAY_WITH_PATH, 1_700_600_000).await;
    let nip11 = doc(
        MetadataType::Nip11Info,
        json!({"name": "Damus", "software": "strfry", "supported_nips": [1, 11]}),
    );
    let rtt = doc(
        MetadataType::Nip66Rtt,
        json!({"rtt_open": 120, "rtt_read": 80}),
    );
    snapshot(
        pool,
        "wss://relay.damus.io",
        "clearnet",
        &nip11,
        1_700_003_600,
    )
    .await;
    snapshot(pool, RELAY_WITH_PATH, "clearnet", &rtt, 1_700_007_200).await;
    snapshot(pool, RELAY_WITH_PATH, "clearnet", &nip11, 1_700_007_200).await;
    // A recent check, for the uptime tables (they cover the last 30 days).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    snapshot(pool, "wss://relay.damus.io", "clearnet", &rtt, now - 3600).await;
    exec(
        pool,
        "INSERT INTO service_state (service_name, state_type, state_key, state_value) \
         VALUES ('finder', 'cursor', 'wss://relay.damus.io', '{\"timestamp\": 1}')",
    )
    .await;
    let brotr = db.brotr();
    refresh_all(&brotr).await;
    for table in ["relay_uptime_daily", "relay_uptime"] {
        brotr.refresh_materialized_view(table).await.unwrap();
    }
    events
}

/// Every table of the catalog the test database has, enabled.
fn all_tables() -> Value {
    let names = [
        "event",
        "event_relay",
        "relay",
        "metadata",
        "relay_metadata",
        "service_state",
    ]
    .into_iter()
    .chain(bigbrotr_db::migrate::STATISTICS_OBJECTS);
    Value::Object(
        names
            .map(|n| (n.to_owned(), json!({"enabled": true})))
            .collect(),
    )
}

#[tokio::test]
async fn every_route_answers_like_the_original() {
    let db = TestDb::new().await;
    let events = populate(&db).await;
    let api = start(
        &db,
        json!({"tables": {"relay": {"enabled": true}, "relay_metadata": {"enabled": true},
                          "event_relay": {"enabled": true}, "event": {"enabled": false},
                          "relay_stats": {"enabled": true}}}),
    );
    let a = api.address;

    // 6.6.9's body plus where the database stands (a primary here: no lag).
    assert_eq!(
        get(a, "/health").await,
        (
            200,
            json!({"status": "ok", "database": {"standby": false, "replay_lag_seconds": null}})
        )
    );

    let (status, schema) = get(a, "/v1/schema").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = schema["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["event_relay", "relay", "relay_metadata", "relay_stats"]
    );
    assert_eq!(
        schema["data"][1],
        json!({"name": "relay", "is_view": false, "columns": 3, "has_primary_key": true})
    );
    assert_eq!(
        schema["data"][3]["is_view"], true,
        "a 6.6.9 view reads as one"
    );

    let (status, relay) = get(a, "/v1/schema/relay").await;
    assert_eq!(status, 200);
    assert_eq!(relay["data"]["primary_key"], json!(["url"]));
    assert_eq!(
        relay["data"]["columns"][2],
        json!({"name": "discovered_at", "type": "bigint", "nullable": false})
    );
    for closed in [
        "event",
        "service_state",
        "event_p0",
        "pg_stat_statements",
        "nope",
    ] {
        assert_eq!(
            get(a, &format!("/v1/schema/{closed}")).await,
            (404, json!({"error": format!("table not found: {closed}")})),
        );
        assert_eq!(
            get(a, &format!("/v1/{closed}")).await,
            (404, json!({"error": format!("table not found: {closed}")})),
        );
    }

    let (status, page) = get(a, "/v1/relay").await;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    assert_eq!(page["meta"]["total"], 3);
    assert_eq!(page["meta"]["limit"], 100);
    assert_eq!(page["meta"]["offset"], 0);
    assert_eq!(page["meta"]["table"], "relay");
    assert_eq!(page["meta"]["next_cursor"], Value::Null);
    assert_eq!(
        page["data"][0],
        json!({"url": "wss://nos.lol", "network": "clearnet", "discovered_at": 1_700_000_001})
    );

    // Lookups: a URL key as it is and percent-encoded, a URL with a path, composite keys.
    for target in [
        "/v1/relay/wss://relay.damus.io",
        "/v1/relay/wss%3A%2F%2Frelay.damus.io",
    ] {
        let (status, row) = get(a, target).await;
        assert_eq!(status, 200, "{target}: {row}");
        assert_eq!(row["data"]["url"], "wss://relay.damus.io");
    }
    let (status, row) = get(a, &format!("/v1/relay/{RELAY_WITH_PATH}")).await;
    assert_eq!(
        (status, row["data"]["url"].as_str()),
        (200, Some(RELAY_WITH_PATH))
    );
    let (status, row) = get(
        a,
        &format!("/v1/relay_metadata/{RELAY_WITH_PATH}/1700007200/nip66_rtt"),
    )
    .await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(row["data"]["metadata_type"], "nip66_rtt");
    assert_eq!(row["data"]["generated_at"], 1_700_007_200);
    assert_eq!(
        row["data"]["metadata_id"].as_str().unwrap().len(),
        64,
        "bytea as hex"
    );
    let event_id = hex::encode(&events[12].id);
    let (status, row) = get(a, &format!("/v1/event_relay/{event_id}/{RELAY_WITH_PATH}")).await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(row["data"]["event_id"], event_id.as_str());
    assert_eq!(row["data"]["seen_at"], 1_700_600_000);
    assert_eq!(
        get(a, "/v1/relay/wss://absent.example.com").await,
        (404, json!({"error": "not found"}))
    );
    let (status, body) = get(a, "/v1/relay_metadata/wss://relay.damus.io/1700003600").await;
    assert_eq!(status, 400, "{body}");

    // OpenAPI: each exposed table, nothing closed; the documentation page.
    let (status, openapi) = get(a, "/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(openapi["openapi"], "3.1.0");
    let paths = openapi["paths"].as_object().unwrap();
    for table in ["relay", "relay_metadata", "event_relay", "relay_stats"] {
        assert!(paths.contains_key(&format!("/v1/{table}")), "{table}");
        assert!(
            openapi["components"]["schemas"][format!("Row_{table}")]["properties"].is_object(),
            "{table}"
        );
    }
    assert!(paths.contains_key("/v1/relay_metadata/{relay_url}/{generated_at}/{metadata_type}"));
    assert!(
        !paths.keys().any(|p| p == "/v1/event"),
        "closed tables are not described"
    );
    let (status, _, html) = request(a, "GET", "/docs", "").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("/openapi.json") && !html.contains("<script src"),
        "self-contained"
    );
}

/// The API's `meta.total` for `table` filtered by `column=raw`, and SQL's count of the same.
async fn both_counts(
    db: &TestDb,
    a: SocketAddr,
    table: &str,
    column: &str,
    op: &str,
    value: &str,
    sql_predicate: &str,
) {
    let target = format!(
        "/v1/{table}?{column}={}&limit=1",
        enc(&format!("{op}{value}"))
    );
    let (status, page) = get(a, &target).await;
    assert_eq!(status, 200, "{target}: {page}");
    assert_eq!(page["meta"]["total_exact"], true);
    let sql = format!("SELECT count(*) FROM public.{table} t WHERE {sql_predicate}");
    let expected: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
        .bind(value)
        .fetch_one(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(page["meta"]["total"], expected, "{target} vs {sql}");
}

#[tokio::test]
async fn every_filter_operator_works_on_every_column_type() {
    let db = TestDb::new().await;
    populate(&db).await;
    let api = start(&db, json!({"tables": all_tables()}));
    let a = api.address;
    let (_, schema) = get(a, "/v1/schema").await;
    let mut checked = BTreeSet::new();
    for table in schema["data"].as_array().unwrap() {
        let table = table["name"].as_str().unwrap();
        let (_, described) = get(a, &format!("/v1/schema/{table}")).await;
        let (status, page) = get(a, &format!("/v1/{table}?limit=1")).await;
        assert_eq!(status, 200, "{table}: {page}");
        let Some(row) = page["data"].get(0) else {
            panic!("{table} has no rows: populate() fills every table");
        };
        for column in described["data"]["columns"].as_array().unwrap() {
            let name = column["name"].as_str().unwrap();
            let pg_type = column["type"].as_str().unwrap();
            let value = &row[name];
            if value.is_null() {
                continue;
            }
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let col = format!("t.\"{name}\"");
            match pg_type {
                "bigint" | "integer" | "smallint" | "text" | "date" | "numeric"
                | "double precision" => {
                    for op in ["", "=:", ">:", "<:", ">=:", "<=:"] {
                        let sql_op = match op {
                            "" | "=:" => "=",
                            o => o.trim_end_matches(':'),
                        };
                        let predicate = format!("{col} {sql_op} $1::{pg_type}");
                        both_counts(&db, a, table, name, op, &text, &predicate).await;
                    }
                    if pg_type == "text" {
                        let pattern = format!("%{}%", &text[..text.len().min(3)].to_uppercase());
                        both_counts(
                            &db,
                            a,
                            table,
                            name,
                            "ILIKE:",
                            &pattern,
                            &format!("{col} ILIKE $1"),
                        )
                        .await;
                    }
                }
                "bytea" => {
                    both_counts(
                        &db,
                        a,
                        table,
                        name,
                        "",
                        &text,
                        &format!("{col} = decode($1, 'hex')"),
                    )
                    .await;
                    both_counts(
                        &db,
                        a,
                        table,
                        name,
                        ">=:",
                        &text,
                        &format!("{col} >= decode($1, 'hex')"),
                    )
                    .await;
                }
                "jsonb" => {
                    both_counts(
                        &db,
                        a,
                        table,
                        name,
                        "",
                        &text,
                        &format!("{col} = $1::jsonb"),
                    )
                    .await;
                    both_counts(
                        &db,
                        a,
                        table,
                        name,
                        "@>:",
                        &text,
                        &format!("{col} @> $1::jsonb"),
                    )
                    .await;
                }
                "text[]" => {
                    let Some(first) = value.get(0).and_then(Value::as_str) else {
                        continue;
                    };
                    both_counts(
                        &db,
                        a,
                        table,
                        name,
                        "",
                        first,
                        &format!("{col} @> ARRAY[$1]"),
                    )
                    .await;
                }
                other => panic!("{table}.{name}: type {other} is not covered by this test"),
            }
            checked.insert(pg_type.to_owned());
        }
    }
    for pg_type in [
        "bigint", "integer", "text", "date", "numeric", "bytea", "jsonb", "text[]",
    ] {
        assert!(
            checked.contains(pg_type),
            "no column of type {pg_type} was exercised: {checked:?}"
        );
    }
    // A range: the same column twice, ANDed.
    let (status, page) = get(
        a,
        "/v1/event?created_at=%3E%3D%3A1700003600&created_at=%3C%3A1700010800&limit=1",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["meta"]["total"], 2);
}

#[tokio::test]
async fn hostile_requests_get_a_clear_json_4xx_and_never_a_500() {
    let db = TestDb::new().await;
    populate(&db).await;
    let api = start(&db, json!({"tables": all_tables()}));
    let a = api.address;
    let cases: Vec<(String, u16, &str)> = vec![
        ("/v1/nope".into(), 404, "table not found: nope"),
        ("/v1/relay?nope=1".into(), 400, "Unknown column: nope"),
        (
            "/v1/relay?url%3B%20DROP%20TABLE%20relay=1".into(),
            400,
            "Unknown column: url; DROP TABLE relay",
        ),
        (
            "/v1/event?kind=1%3B%20DROP%20TABLE%20event".into(),
            400,
            "column kind",
        ),
        (
            "/v1/event?kind=99999999999999999999999".into(),
            400,
            "column kind",
        ),
        (
            "/v1/event?created_at=%3E%3A1e999".into(),
            400,
            "column created_at",
        ),
        (
            "/v1/event?id=zz".into(),
            400,
            "Invalid hex value for column id",
        ),
        (
            "/v1/event?kind=ILIKE%3A1".into(),
            400,
            "ILIKE operator requires a text column",
        ),
        ("/v1/event?tags=%7Bbroken".into(), 400, "column tags"),
        (
            "/v1/event_daily_counts?day=2026-13-45".into(),
            400,
            "Invalid filter value",
        ),
        ("/v1/relay?url=%FF%FE".into(), 400, "not valid UTF-8"),
        ("/v1/relay?url=a%00b".into(), 400, "NUL"),
        ("/v1/relay/%FF".into(), 400, "not UTF-8"),
        ("/v1/event/not-hex".into(), 400, "Invalid hex value"),
        (
            "/v1/relay?sort=nope".into(),
            400,
            "Unknown sort column: nope",
        ),
        (
            "/v1/relay?sort=url:sideways".into(),
            400,
            "Invalid sort direction: SIDEWAYS",
        ),
        ("/v1/event?sort=tags".into(), 400, "cannot be sorted"),
        ("/v1/relay?limit=abc".into(), 400, "Invalid limit or offset"),
        (
            "/v1/relay?offset=1.5".into(),
            400,
            "Invalid limit or offset",
        ),
        ("/v1/relay?cursor=%21%21%21".into(), 400, "Invalid cursor"),
        (
            "/v1/relay?cursor=e30&offset=5".into(),
            400,
            "cannot be combined with offset",
        ),
        (
            format!("/v1/relay?url={}", "x".repeat(9000)),
            414,
            "too long",
        ),
        (format!("/v1/{}", "a".repeat(9000)), 414, "too long"),
        ("/elsewhere".into(), 404, "Not found"),
        ("/v1/".into(), 404, "Not found"),
    ];
    for (target, expected_status, message) in cases {
        let (status, body) = get(a, &target).await;
        let shown: String = target.chars().take(80).collect();
        assert_eq!(status, expected_status, "{shown}: {body}");
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{shown}: {body}"));
        assert!(error.contains(message), "{shown}: {error}");
        assert!(
            error.len() < 300,
            "{shown}: the error echoes a bounded value"
        );
    }
    let (status, headers, body) = request(a, "DELETE", "/v1/relay", "").await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(headers.get("allow").map(String::as_str), Some("GET, HEAD"));
    // Raw non-UTF-8 bytes in the query: refused, never a 500.
    let (status, _, _) = raw(
        a,
        b"GET /v1/relay?url=\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!((400..500).contains(&status), "{status}");
    // Still serving, and nothing was dropped.
    assert_eq!(get(a, "/health").await.0, 200);
    let relays: i64 = sqlx::query_scalar("SELECT count(*) FROM relay")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(relays, 3);
}

/// Walks `/v1/{table}?{query}` page by page (limit `limit`), calling `between` after each page;
/// returns the `key` field of every row in the order served.
async fn walk<F, Fut>(
    a: SocketAddr,
    table: &str,
    query: &str,
    key: &str,
    limit: usize,
    mut between: F,
) -> Vec<String>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page_number in 0.. {
        let mut target = format!("/v1/{table}?limit={limit}&{query}");
        if let Some(cursor) = &cursor {
            target.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = get(a, &target).await;
        assert_eq!(status, 200, "{target}: {page}");
        let rows = page["data"].as_array().unwrap();
        assert!(rows.len() <= limit);
        seen.extend(rows.iter().map(|r| match &r[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }));
        match page["meta"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        between(page_number).await;
        assert!(page_number < 10_000, "the walk ends");
    }
    seen
}

#[tokio::test]
async fn keyset_pages_cover_a_table_exactly_once_while_rows_are_inserted() {
    let db = TestDb::new().await;
    let pool = db.pool().clone();
    // 120 relays, discovered in groups of 7 equal timestamps (ties broken by the key).
    for n in 0..120 {
        insert_relay(
            &pool,
            &format!("wss://r{n:03}.example.com"),
            "clearnet",
            1_700_000_000 + n / 7,
        )
        .await;
    }
    // A table with a nullable sort column: every third value NULL.
    exec(
        &pool,
        "CREATE TABLE public.nully (id integer PRIMARY KEY, v integer)",
    )
    .await;
    exec(&pool, "INSERT INTO public.nully SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 10 END FROM generate_series(1, 100) g").await;
    exec(&pool, "GRANT SELECT ON public.nully TO reader").await;
    let api = start(
        &db,
        json!({"tables": {"relay": {"enabled": true}, "nully": {"enabled": true}}}),
    );
    let a = api.address;
    let original: BTreeSet<String> = (0..120)
        .map(|n| format!("wss://r{n:03}.example.com"))
        .collect();

    for sort in [
        "",
        "sort=discovered_at",
        "sort=discovered_at:desc",
        "sort=url:desc",
    ] {
        let inserted = std::sync::Arc::new(std::sync::Mutex::new(0));
        let seen = walk(a, "relay", sort, "url", 9, |page| {
            let pool = pool.clone();
            let inserted = inserted.clone();
            async move {
                // Rows that sort before and after the walk's position arrive between pages.
                let n = *inserted.lock().unwrap();
                *inserted.lock().unwrap() += 2;
                insert_relay(
                    &pool,
                    &format!("wss://a{n:03}-{page}.example.com"),
                    "clearnet",
                    1_600_000_000,
                )
                .await;
                insert_relay(
                    &pool,
                    &format!("wss://z{n:03}-{page}.example.com"),
                    "clearnet",
                    1_800_000_000,
                )
                .await;
            }
        })
        .await;
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: no row served twice");
        for url in &original {
            assert!(unique.contains(url), "{sort}: {url} was skipped");
        }
    }

    // Nullable sort column, both directions: every row exactly once, NULLs last ascending and
    // first descending.
    for (sort, nulls_first) in [("sort=v", false), ("sort=v:desc", true)] {
        let seen = walk(a, "nully", sort, "id", 7, |_| async {}).await;
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!((seen.len(), unique.len()), (100, 100), "{sort}");
        let first_is_null = seen[0].parse::<i64>().unwrap() % 3 == 0;
        assert_eq!(first_is_null, nulls_first, "{sort}: {seen:?}");
    }
    // Offset pages still work for old clients, and agree with the cursor order.
    let (_, first) = get(a, "/v1/nully?limit=5&offset=5&sort=v").await;
    let walked = walk(a, "nully", "sort=v", "id", 100, |_| async {}).await;
    let ids: Vec<String> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].to_string())
        .collect();
    assert_eq!(ids, walked[5..10]);
}

#[tokio::test]
async fn cors_timeouts_query_slots_and_metrics() {
    let db = TestDb::new().await;
    populate(&db).await;
    // A view that takes two seconds per read.
    exec(
        db.pool(),
        "CREATE VIEW public.slow AS SELECT 1 AS id, pg_sleep(2)::text AS nap",
    )
    .await;
    exec(db.pool(), "GRANT SELECT ON public.slow TO reader").await;
    let api = start(
        &db,
        json!({"tables": {"relay": {"enabled": true}, "slow": {"enabled": true}},
               "cors_origins": ["https://bigbrotr.example"],
               "request_timeout": 1, "max_concurrent_queries": 1, "queue_timeout": 0.2}),
    );
    let a = api.address;

    // CORS: the configured origin is allowed (GET), another is not; preflight answered.
    let (status, headers, _) = request(
        a,
        "GET",
        "/v1/relay",
        "Origin: https://bigbrotr.example\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(String::as_str),
        Some("https://bigbrotr.example")
    );
    let (_, headers, _) = request(a, "GET", "/v1/relay", "Origin: https://evil.example\r\n").await;
    assert!(!headers.contains_key("access-control-allow-origin"));
    let (status, headers, _) = request(
        a,
        "OPTIONS",
        "/v1/relay",
        "Origin: https://bigbrotr.example\r\nAccess-Control-Request-Method: GET\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers
            .get("access-control-allow-methods")
            .is_some_and(|m| m.contains("GET"))
    );

    // The server-side timeout: a 504 after about a second, and the statement is gone from the
    // server (cancelled by statement_timeout, not left running).
    let started = Instant::now();
    let (status, body) = get(a, "/v1/slow").await;
    assert_eq!((status, body), (504, json!({"error": "Query timeout"})));
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%public.\"slow\"%' AND state = 'active' AND pid <> pg_backend_pid()",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(running, 0, "the slow statement was cancelled on the server");

    // One query slot: while a slow query holds it, the next request waits 0.2 s and gets a 503.
    let slow = tokio::spawn(async move { get(a, "/v1/slow").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, headers, body) = request(a, "GET", "/v1/relay", "").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Too many concurrent queries"), "{body}");
    assert_eq!(headers.get("retry-after").map(String::as_str), Some("1"));
    assert_eq!(slow.await.unwrap().0, 504);
    assert_eq!(get(a, "/v1/relay").await.0, 200, "the slot is free again");

    // Metrics: the original's names, plus latency by route template (never a raw path).
    let (_, _, metrics) = request(api.metrics, "GET", "/metrics", "").await;
    for needle in [
        r#"service_gauge{service="api",name="tables_exposed"} 2"#,
        r#"service_counter_total{service="api",name="requests_total"}"#,
        r#"service_counter_total{service="api",name="requests_failed"}"#,
        r#"http_request_duration_seconds_count{service="api",route="/v1/{table}",status="5xx"} 3"#,
        r#"http_request_duration_seconds_count{service="api",route="/v1/{table}",status="2xx"}"#,
    ] {
        assert!(metrics.contains(needle), "{needle}\n{metrics}");
    }
    assert!(
        !metrics.contains("route=\"/v1/relay\""),
        "no raw paths as labels"
    );
}

#[tokio::test]
async fn the_reader_role_cannot_write_and_reads_run_read_only() {
    let db = TestDb::new().await;
    populate(&db).await;
    for statement in [
        "INSERT INTO relay (url, network, discovered_at) VALUES ('wss://x.example', 'clearnet', 1)",
        "DELETE FROM relay",
        "UPDATE event SET kind = 2",
        "TRUNCATE relay_stats",
        "SELECT relay_insert(ARRAY['wss://y.example'], ARRAY['clearnet'], ARRAY[1::bigint])",
    ] {
        let error = as_role(db.pool(), "reader", statement).await.unwrap_err();
        assert!(
            error.to_string().contains("permission denied"),
            "{statement}: {error}"
        );
    }
    // The API's transactions are READ ONLY even for a role that could write.
    let brotr = db.brotr();
    let catalog = bigbrotr_catalog::Catalog::discover(&brotr).await.unwrap();
    let relay = catalog.get("relay").unwrap();
    let page = brotr
        .catalog_list(
            relay,
            &bigbrotr_db::catalog::ListQuery {
                conditions: vec![],
                sort: None,
                after: None,
                limit: 2,
                offset: 0,
                total: bigbrotr_db::catalog::TotalMode::Capped(10),
            },
            bigbrotr_db::catalog::ReadBudget(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 2);
    assert!(page.has_more && page.last_key.is_some());
    assert_eq!(page.total.map(|t| (t.value, t.exact)), Some((3, true)));
}

#[tokio::test]
async fn totals_are_estimated_past_the_exact_limit() {
    let db = TestDb::new().await;
    for n in 0..60 {
        insert_relay(
            db.pool(),
            &format!("wss://r{n}.example.com"),
            "clearnet",
            1_700_000_000,
        )
        .await;
    }
    exec(db.pool(), "ANALYZE relay").await;
    let api = start(
        &db,
        json!({"tables": {"relay": {"enabled": true}}, "exact_total_limit": 50}),
    );
    let (_, page) = get(api.address, "/v1/relay?limit=1").await;
    assert_eq!(page["meta"]["total_exact"], false);
    assert!(page["meta"]["total"].as_u64().unwrap() >= 51, "{page}");
    let (_, page) = get(api.address, "/v1/relay?limit=1&url=ILIKE%3A%25r1%25").await;
    assert_eq!(
        (
            page["meta"]["total"].clone(),
            page["meta"]["total_exact"].clone()
        ),
        (json!(11), json!(true))
    );
}
