//! `make bench-dvm` (part of `make bench`): the DVM over a 1,000,000-event archive, NIP-90 jobs
//! end to end on loopback, next to what they are made of measured alone in the same run: the same
//! query run directly with SQL, and the relay's own round trip for a plain event.
//!
//! The archive is the API bench's (`common::load_archive`, generated server-side). The real
//! `bigbrotr-dvm` binary (release build, `target/release/bigbrotr-dvm`) runs as a process of its
//! own with `deployments/bigbrotr/config/services/dvm.yaml` as shipped (a pool of 3 `reader`
//! connections, 3 workers, 100 rows per page by default, results bounded at 60,000 bytes) except:
//! `event` enabled (closed in BigBrotr, open in LilBrotr), the relay below, its announcement off,
//! metrics on 127.0.0.1, no database password (the throwaway cluster trusts local users), and the
//! rate limits raised out of the way (30 jobs per requester a minute would be the figure measured
//! otherwise).
//!
//! One rust-nostr relay runs in this process (in-memory store, signatures checked), with
//! `TCP_NODELAY` on its connections (see `NodelayRelay`), reached as `wss://dvm-bench.example.com`
//! through a TLS front (certificate from a test CA). Every relay connection is TLS, as on the
//! network, and goes through a SOCKS5 proxy in this process that routes the name to the front
//! (`networks.clearnet.proxy_url`: a public name is not dialled on a loopback address). The DVM
//! accepts the test certificate with `allow_insecure`, the bench's own connections trust the
//! test CA.
//!
//! Every job names `table` = `event` (point lookup by `id`, first page, filtered pages; 50 rows,
//! which fit the 60,000 bytes) and carries a `nonce` tag so each request is a distinct event.
//! `N` customers (1, then 8), each with its own key and connection, publish a request and wait for
//! its result, then the next (closed loop). Measured, each as **wall time per job** (or per event)
//! from the bench process:
//! - **DVM**: from sending the request to the relay to receiving the result (kind 6050) on the
//!   customer's subscription: relay → DVM → database → DVM → relay → customer;
//! - **SQL**: the DVM's own database call for the same job, run directly from this process
//!   (`Brotr::catalog_list` as `reader` with the DVM's pool settings, the query parsed from the
//!   same params by the DVM's own code: the same statements in the same read-only transaction);
//! - **relay, request-sized**: a plain kind-1 event as large as the request, published by the
//!   customer's connection and received by another subscriber connected like the DVM;
//! - **relay, result-sized**: a plain kind-1 event as large as the result, published by a
//!   connection like the DVM's and received on the customer's subscription.
//!
//! The two relay trips and the SQL add up to a floor for a job without the DVM's own work
//! (reading the request, admission, building and signing the result, the hand-offs between its
//! tasks). The DVM process's **CPU time per job** comes from `/proc/<pid>/stat` (user + system)
//! around the measured jobs, its **peak RSS** from `VmHWM` in `/proc/<pid>/status`. Each
//! measurement warms every path up, then runs rounds that each send a share of the jobs on every
//! path in turn. Before measuring, the bench checks that the DVM's rows and total are the SQL's.

// A benchmark program: any failure must abort the run loudly, and the report goes to stdout.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bigbrotr_catalog::{Catalog, TablesConfig};
use bigbrotr_db::Brotr;
use bigbrotr_db::catalog::{CatalogObject, ListQuery, ReadBudget};
use bigbrotr_dvm::DvmConfig;
use bigbrotr_models::relay::Relay;
use bigbrotr_testkit::TestDb;
use bigbrotr_testkit::relays::{TestCa, TlsFront};
use bigbrotr_testkit::socks::SocksProxy;
use bigbrotr_utils::network::NetworksConfig;
use bigbrotr_utils::relay::{Connector, Notification, RelayConnection, classify};
use nostr::hashes::{Hash, sha1};
use nostr::{Event, EventBuilder, EventId, Filter, JsonUtil, Keys, Kind, PublicKey, Tag};
use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;

use common::{
    DaemonProcess, archive_size, cpu_seconds_of, free_port, load_archive, peak_rss_mib_of,
};

/// The relay's public-looking name (resolved to the TLS front, by the proxy for the DVM).
const HOST: &str = "dvm-bench.example.com";
/// The deployment file the DVM runs with.
const DEPLOYMENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deployments/bigbrotr/config/services/dvm.yaml"
);
const CLIENTS: [usize; 2] = [1, 8];
/// Rounds of every measurement (each runs a share of the jobs on every path in turn).
const ROUNDS: usize = 4;
/// Jobs per lookup measurement (and per path).
const LOOKUP_JOBS: usize = 2_000;
/// Jobs per page measurement (and per path).
const PAGE_JOBS: usize = 800;
/// Rows per page: 50 events fit the DVM's 60,000-byte results (100 do not).
const PAGE: u32 = 50;
/// The longest wait for one answer.
const WAIT: Duration = Duration::from_secs(30);
/// What the DVM allows one query (its `query_timeout` default).
const BUDGET: ReadBudget = ReadBudget(Duration::from_secs(30));

/// rust-nostr's relay (in-memory store, signatures checked, the testkit's raised rate limits)
/// behind a listener of this bench that sets `TCP_NODELAY` on each connection, then does the
/// WebSocket upgrade and hands the connection over (`LocalRelay::take_connection`). rust-nostr's
/// own listener leaves Nagle's algorithm on, and a result written right after the `OK` of its
/// request then waits for the peer's delayed ACK: 40 ms a job, the relay's and not the DVM's.
/// Relays behind nginx (whose `tcp_nodelay` is on by default) do not wait.
struct NodelayRelay {
    address: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl NodelayRelay {
    async fn start() -> Self {
        let relay = LocalRelay::new(RelayBuilder::default().rate_limit(RateLimit {
            max_reqs: 10_000,
            notes_per_minute: 1_000_000,
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, peer)) = listener.accept().await {
                let relay = relay.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    if upgrade(&mut stream).await.is_ok() {
                        let _ = relay.take_connection(stream, peer).await;
                    }
                });
            }
        });
        Self { address, task }
    }
}

impl Drop for NodelayRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The server side of a WebSocket upgrade (RFC 6455 §4.2): reads the request's head, answers
/// `101` with `Sec-WebSocket-Accept`.
async fn upgrade(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16_384 || stream.read(&mut byte).await? == 0 {
            return Err(std::io::Error::other("no upgrade request"));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let key = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .ok_or_else(|| std::io::Error::other("no Sec-WebSocket-Key"))?;
    stream
        .write_all(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                websocket_accept(&key)
            )
            .as_bytes(),
        )
        .await
}

/// `Sec-WebSocket-Accept` for `key`: base64 of the SHA-1 of the key and RFC 6455's GUID.
fn websocket_accept(key: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let digest = sha1::Hash::hash(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes());
    let mut out = String::new();
    for chunk in digest.as_byte_array().chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// A job through the relay and the DVM.
    Dvm,
    /// The DVM's database call, from this process.
    Sql,
    /// A request-sized plain event, customer → relay → a subscriber connected like the DVM.
    HopRequest,
    /// A result-sized plain event, a connection like the DVM's → relay → the customer.
    HopResult,
}

const PATHS: [Path; 4] = [Path::Dvm, Path::Sql, Path::HopRequest, Path::HopResult];

/// One relay connection with one live subscription, its events forwarded to a channel.
struct Side {
    connection: RelayConnection,
    events: mpsc::UnboundedReceiver<Event>,
}

impl Side {
    async fn open(connector: &Connector, keys: &Keys, filter: Filter) -> Self {
        let relay = Relay::new(&format!("wss://{HOST}"), 0).unwrap();
        let mut connection = connector
            .clone()
            .with_keys(Some(keys.clone()))
            .connect(&relay)
            .await
            .unwrap();
        let mut notes = connection.take_notifications().unwrap();
        let subscription = connection.subscribe(filter).await.unwrap();
        let (sender, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match classify(notes.recv().await, &subscription) {
                    Notification::Event(event) => {
                        if sender.send(*event).is_err() {
                            return;
                        }
                    }
                    Notification::Other => {}
                    // Dropping the sender makes the waiting side fail loudly.
                    Notification::Lost => return,
                }
            }
        });
        Self { connection, events }
    }

    async fn send(&self, event: &Event) {
        self.connection.send(event, WAIT).await.unwrap();
    }

    /// The first event received that `matches`, within [`WAIT`].
    async fn receive(&mut self, matches: impl Fn(&Event) -> bool) -> Event {
        let wait = async {
            loop {
                let event = self.events.recv().await.expect("subscription lost");
                if matches(&event) {
                    return event;
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("no answer within 30 s")
    }
}

/// One concurrent client: a customer and, for the relay baseline, a peer in the DVM's place.
struct Client {
    customer_keys: Keys,
    /// Publishes requests and request-sized events; receives results and result-sized events.
    customer: Side,
    peer_keys: Keys,
    /// Like the DVM's: receives request-sized events, publishes result-sized events.
    peer: Side,
    /// The DVM's request kind (results are `kind + 1000`).
    kind: u16,
    /// Makes every event distinct.
    nonce: u64,
}

impl Client {
    async fn open(connector: &Connector, dvm: PublicKey, kind: u16) -> Self {
        let customer_keys = Keys::generate();
        let peer_keys = Keys::generate();
        let now = nostr::Timestamp::now();
        let answers = Filter::new()
            .authors([dvm, peer_keys.public_key()])
            .kinds([Kind::from(kind + 1000), Kind::JobFeedback, Kind::TextNote])
            .pubkey(customer_keys.public_key())
            .since(now);
        let customer = Side::open(connector, &customer_keys, answers).await;
        let requests = Filter::new()
            .author(customer_keys.public_key())
            .kind(Kind::TextNote)
            .since(now);
        let peer = Side::open(connector, &peer_keys, requests).await;
        Self {
            customer_keys,
            customer,
            peer_keys,
            peer,
            kind,
            nonce: 0,
        }
    }

    fn nonce(&mut self) -> Tag {
        self.nonce += 1;
        tag(&["nonce", &self.nonce.to_string()])
    }

    /// Publishes a job and returns its result with the wall time from publishing to receiving.
    async fn job(&mut self, params: &[(String, String)]) -> (Event, Event, f64) {
        let mut tags = vec![tag(&["param", "table", "event"])];
        tags.extend(params.iter().map(|(k, v)| tag(&["param", k, v])));
        tags.push(self.nonce());
        let request = EventBuilder::new(Kind::from(self.kind), "")
            .tags(tags)
            .sign_with_keys(&self.customer_keys)
            .unwrap();
        let started = Instant::now();
        self.customer.send(&request).await;
        let id = request.id;
        let answer = self.customer.receive(|e| tags_event(e, &id)).await;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(
            answer.kind,
            Kind::from(self.kind + 1000),
            "a result, not feedback: {:?}",
            answer.tags
        );
        (request, answer, elapsed)
    }

    /// A plain event of about `bytes` bytes on `path` (request-sized: customer → peer;
    /// result-sized: peer → customer), from publishing to receiving; wall ms.
    async fn hop(&mut self, path: Path, bytes: usize) -> f64 {
        let nonce = self.nonce();
        let (keys, p) = match path {
            Path::HopRequest => (&self.customer_keys, None),
            _ => (&self.peer_keys, Some(self.customer_keys.public_key())),
        };
        let event = padded(keys, nonce, p, bytes);
        let id = event.id;
        let started = Instant::now();
        match path {
            Path::HopRequest => {
                self.customer.send(&event).await;
                self.peer.receive(|e| e.id == id).await;
            }
            _ => {
                self.peer.send(&event).await;
                self.customer.receive(|e| e.id == id).await;
            }
        }
        started.elapsed().as_secs_f64() * 1000.0
    }
}

fn tag(values: &[&str]) -> Tag {
    Tag::parse(values.iter().map(|v| (*v).to_owned())).unwrap()
}

/// Whether `event` has an `e` tag naming `id`.
fn tags_event(event: &Event, id: &EventId) -> bool {
    let hex = id.to_hex();
    event
        .tags
        .iter()
        .map(|t| t.as_slice())
        .any(|t| t.len() >= 2 && t[0] == "e" && t[1] == hex)
}

/// A kind-1 event by `keys` whose JSON is about `bytes` long (content padded).
fn padded(keys: &Keys, nonce: Tag, p: Option<PublicKey>, bytes: usize) -> Event {
    let mut tags = vec![nonce];
    if let Some(p) = p {
        tags.push(tag(&["p", &p.to_hex()]));
    }
    let build = |content: &str| {
        EventBuilder::new(Kind::TextNote, content)
            .tags(tags.clone())
            .sign_with_keys(keys)
            .unwrap()
    };
    let base = build("").as_json().len();
    build(&"x".repeat(bytes.saturating_sub(base)))
}

/// One kind of job.
struct Scenario {
    label: &'static str,
    /// Params besides `table` (for lookups, `filter=id=…` with one of `ids` per job).
    params: Vec<(String, String)>,
    ids: Option<Arc<Vec<String>>>,
    jobs: usize,
}

impl Scenario {
    fn params(&self, i: usize) -> Vec<(String, String)> {
        match &self.ids {
            Some(ids) => vec![("filter".into(), format!("id={}", ids[i % ids.len()]))],
            None => self.params.clone(),
        }
    }
}

/// The DVM's query for `params`, built by its own code.
fn query(env: &Env, params: &[(String, String)]) -> ListQuery {
    let mut map: BTreeMap<String, String> = params.iter().cloned().collect();
    map.insert("table".into(), "event".into());
    let pairs = bigbrotr_dvm::jobs::catalog_params(&map).unwrap();
    bigbrotr_catalog::parse_list(&env.object, &pairs, env.config.page_limits())
        .unwrap()
        .query
}

struct Env {
    config: DvmConfig,
    brotr: Brotr,
    object: CatalogObject,
    clients: Vec<Arc<Mutex<Client>>>,
}

/// Sizes of one scenario's events, as measured by the check.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    request: usize,
    result: usize,
    rows: usize,
    total: u64,
}

/// One job (or event) on one path by client `client`; wall ms.
async fn once(
    env: &Env,
    client: usize,
    path: Path,
    scenario: &Scenario,
    sizes: Sizes,
    i: usize,
) -> f64 {
    match path {
        Path::Dvm => {
            let params = scenario.params(i);
            env.clients[client].lock().await.job(&params).await.2
        }
        Path::Sql => {
            let query = query(env, &scenario.params(i));
            let started = Instant::now();
            let page = env
                .brotr
                .catalog_list(&env.object, &query, BUDGET)
                .await
                .unwrap();
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            assert!(!page.rows.is_empty());
            elapsed
        }
        Path::HopRequest => {
            env.clients[client]
                .lock()
                .await
                .hop(path, sizes.request)
                .await
        }
        Path::HopResult => {
            env.clients[client]
                .lock()
                .await
                .hop(path, sizes.result)
                .await
        }
    }
}

/// Jobs `first .. first + count` spread over `clients` concurrent clients (closed loop); each
/// one's wall ms.
async fn drive(
    env: &Arc<Env>,
    path: Path,
    scenario: &Arc<Scenario>,
    sizes: Sizes,
    clients: usize,
    first: usize,
    count: usize,
) -> Vec<f64> {
    let mut set = JoinSet::new();
    for client in 0..clients {
        let env = env.clone();
        let scenario = scenario.clone();
        set.spawn(async move {
            let mut out = Vec::new();
            let mut i = first + client;
            while i < first + count {
                out.push(once(&env, client, path, &scenario, sizes, i).await);
                i += clients;
            }
            out
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(part) = set.join_next().await {
        all.extend(part.unwrap());
    }
    all
}

/// A table row: label, sizes, clients, jobs, the paths measured.
type TableRow = (&'static str, Sizes, usize, usize, Vec<(Path, Stats)>);

#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    /// Jobs (or events) per second of wall time.
    rate: f64,
    p50: f64,
    p99: f64,
    /// DVM only: the DVM process's CPU ms per job.
    cpu_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Every path with `clients` clients: a warm-up on each, then [`ROUNDS`] rounds that each run a
/// share of the jobs on every path in turn.
async fn measure(
    env: &Arc<Env>,
    dvm: &DaemonProcess,
    scenario: &Arc<Scenario>,
    sizes: Sizes,
    clients: usize,
) -> Vec<(Path, Stats)> {
    let jobs = scenario.jobs;
    for path in PATHS {
        drive(env, path, scenario, sizes, clients, 0, (jobs / 10).max(20)).await;
    }
    let share = jobs.div_ceil(ROUNDS);
    let mut latencies = vec![Vec::with_capacity(jobs); PATHS.len()];
    let mut seconds = [0.0; PATHS.len()];
    let mut cpu = 0.0;
    for round in 0..ROUNDS {
        for (slot, path) in PATHS.into_iter().enumerate() {
            let cpu_before = cpu_seconds_of(&dvm.pid());
            let started = Instant::now();
            let part = drive(env, path, scenario, sizes, clients, round * share, share).await;
            seconds[slot] += started.elapsed().as_secs_f64();
            if path == Path::Dvm {
                cpu += cpu_seconds_of(&dvm.pid()) - cpu_before;
            }
            latencies[slot].extend(part);
        }
    }
    PATHS
        .into_iter()
        .zip(latencies)
        .zip(seconds)
        .map(|((path, mut latencies), seconds)| {
            latencies.sort_by(f64::total_cmp);
            let count = latencies.len() as f64;
            let stats = Stats {
                rate: count / seconds,
                p50: percentile(&latencies, 0.50),
                p99: percentile(&latencies, 0.99),
                cpu_ms: if path == Path::Dvm {
                    cpu * 1000.0 / count
                } else {
                    0.0
                },
            };
            (path, stats)
        })
        .collect()
}

/// One job by client 0, checked against the SQL: the same rows and total, not truncated.
async fn check(env: &Env, scenario: &Scenario) -> Sizes {
    let params = scenario.params(0);
    let (request, result, _) = env.clients[0].lock().await.job(&params).await;
    result.verify().unwrap();
    let body: Value = serde_json::from_str(&result.content).unwrap();
    let page = env
        .brotr
        .catalog_list(&env.object, &query(env, &params), BUDGET)
        .await
        .unwrap();
    let rows: Vec<Value> = page
        .rows
        .iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect();
    assert_eq!(
        body["data"].as_array().unwrap(),
        &rows,
        "{}",
        scenario.label
    );
    assert_eq!(
        body["meta"]["truncated"],
        json!(false),
        "{}",
        scenario.label
    );
    let total = page.total.unwrap().value;
    assert_eq!(body["meta"]["total"].as_u64().unwrap(), total);
    assert!(!rows.is_empty());
    Sizes {
        request: request.as_json().len(),
        result: result.as_json().len(),
        rows: rows.len(),
        total,
    }
}

/// `dvm.yaml` as the BigBrotr deployment ships it, with the bench's changes (see the top).
fn dvm_config(socks: &SocksProxy) -> Value {
    let text = std::fs::read_to_string(DEPLOYMENT).unwrap();
    let mut config =
        bigbrotr_core::config::parse_yaml(&text, std::path::Path::new(DEPLOYMENT)).unwrap();
    config["relays"] = json!([format!("wss://{HOST}")]);
    config["networks"] = json!({"clearnet": {"proxy_url": socks.url()}});
    config["allow_insecure"] = json!(true);
    config["announce"] = json!(false);
    config["metrics"] = json!({"enabled": true, "host": "127.0.0.1", "port": free_port()});
    config["pool"]["password_env"] = json!("");
    config["tables"]["event"] = json!({"enabled": true});
    config["limits"] = json!({"per_requester": 1_000_000, "total": 10_000_000});
    config
}

async fn bench() {
    let db = TestDb::new().await;
    let load_s = load_archive(&db).await;
    let size = archive_size(&db).await;
    eprintln!(
        "loaded {} events, {} sightings in {load_s:.0}s",
        size.events, size.sightings
    );

    // The relay, its TLS front, and the proxy every connection reaches it through.
    assert_eq!(
        websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        "RFC 6455's example"
    );
    let relay = NodelayRelay::start().await;
    let ca = TestCa::new();
    let front = TlsFront::start(ca.server_config(&[HOST]), relay.address).await;
    let socks = SocksProxy::start([(HOST.to_owned(), front.address())].into()).await;
    let mut networks = NetworksConfig::default();
    networks.clearnet.proxy_url = Some(socks.url());
    let connector = Connector::new(networks)
        .unwrap()
        .with_root_certificate(ca.der())
        .unwrap();

    // The DVM process.
    let config_json = dvm_config(&socks);
    // Merged with the defaults and validated as the daemon does; no key may go unread.
    let loaded = bigbrotr_core::config::load_value::<DvmConfig>(
        config_json.clone(),
        true,
        "BIGBROTR_DVM_BENCH_UNUSED__",
        "dvm.yaml",
    )
    .unwrap();
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    let config = loaded.config;
    let dvm_keys = Keys::generate();
    let spawned = Instant::now();
    let mut dvm = DaemonProcess::start(
        "bigbrotr-dvm",
        &db,
        &config_json,
        &[(
            config.keys.keys_env.as_str(),
            dvm_keys.secret_key().to_secret_hex(),
        )],
    );

    // The SQL path: the DVM's pool settings, as `reader`.
    let mut brotr_config = db.config();
    config.base.pool.apply(&mut brotr_config, "dvm-bench");
    let pool_size = brotr_config.pool.limits.max_size;
    let brotr = Brotr::connect(brotr_config, None).await.unwrap();
    let tables: TablesConfig = config.tables.clone();
    let object = Catalog::discover_for(&brotr, &tables)
        .await
        .unwrap()
        .exposed_object(&tables, "event")
        .unwrap()
        .clone();

    let mut clients = Vec::new();
    for _ in 0..CLIENTS.into_iter().max().unwrap() {
        clients.push(Arc::new(Mutex::new(
            Client::open(&connector, dvm_keys.public_key(), config.kind).await,
        )));
    }
    let env = Arc::new(Env {
        config,
        brotr,
        object,
        clients,
    });

    // Random existing ids (event i has the id md5(i) || md5(-i)).
    let ids: Arc<Vec<String>> = sqlx::query_scalar(
        "SELECT md5(i::text) || md5((-i)::text)
         FROM (SELECT 1 + (random() * 999999)::int AS i FROM generate_series(1, 2000)) s",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .into();

    // The first job: answered once the DVM is up and subscribed (a request that arrives before
    // is caught up from the relay).
    let lookup = Arc::new(Scenario {
        label: "point lookup: `filter=id=<hex>`",
        params: Vec::new(),
        ids: Some(ids),
        jobs: LOOKUP_JOBS,
    });
    {
        let ready = check(&env, &lookup);
        tokio::pin!(ready);
        loop {
            tokio::select! {
                _ = &mut ready => break,
                () = tokio::time::sleep(Duration::from_millis(100)) => dvm.assert_running(),
            }
        }
    }
    let startup_s = spawned.elapsed().as_secs_f64();
    let rss_start = peak_rss_mib_of(&dvm.pid());
    let cpu_start = cpu_seconds_of(&dvm.pid());
    eprintln!("first job answered {startup_s:.1}s after start");

    let week_start: i64 = 1_700_000_000 + 180 * 86_400;
    let page = |params: &[(&str, String)]| {
        let mut out = vec![("limit".to_owned(), PAGE.to_string())];
        out.extend(params.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        out
    };
    let scenarios = vec![
        lookup,
        Arc::new(Scenario {
            label: "first page: `limit=50`",
            params: page(&[]),
            ids: None,
            jobs: PAGE_JOBS,
        }),
        Arc::new(Scenario {
            label: "filtered: `filter=kind=1`, `limit=50`",
            params: page(&[("filter", "kind=1".into())]),
            ids: None,
            jobs: PAGE_JOBS,
        }),
        Arc::new(Scenario {
            label: "filtered: one week of `created_at`, `sort=created_at:desc`, `limit=50`",
            params: page(&[
                (
                    "filter",
                    format!(
                        "created_at=>=:{week_start},created_at=<:{}",
                        week_start + 7 * 86_400
                    ),
                ),
                ("sort", "created_at:desc".into()),
            ]),
            ids: None,
            jobs: PAGE_JOBS,
        }),
    ];

    let mut rows: Vec<TableRow> = Vec::new();
    let mut jobs_measured = 0;
    let measuring = Instant::now();
    for scenario in &scenarios {
        let sizes = check(&env, scenario).await;
        eprintln!("{}: {sizes:?}", scenario.label);
        for clients in CLIENTS {
            let stats = measure(&env, &dvm, scenario, sizes, clients).await;
            dvm.assert_running();
            jobs_measured += scenario.jobs;
            eprintln!("{}, {clients} clients: done", scenario.label);
            rows.push((scenario.label, sizes, clients, scenario.jobs, stats));
        }
    }
    let measure_s = measuring.elapsed().as_secs_f64();
    let cpu_total = cpu_seconds_of(&dvm.pid()) - cpu_start;
    let rss_end = peak_rss_mib_of(&dvm.pid());

    println!(
        "### DVM: {} events ({:.0} MiB with indexes), {} sightings, database {:.0} MiB\n",
        size.events, size.event_mib, size.sightings, size.database_mib
    );
    println!(
        "Wall ms per job (DVM: request published → result received by the customer; SQL: the \
         DVM's database call alone) and per event (relay); DVM CPU = the bigbrotr-dvm process's \
         user + system CPU ms per measured job. One customer: floor = relay(request) + SQL + \
         relay(result) at p50, overhead = DVM p50 − floor (with 8 the paths queue differently \
         and do not add up). Jobs/s ratio = DVM jobs/s ÷ SQL calls/s.\n"
    );
    println!(
        "| job | clients | jobs | DVM jobs/s | DVM p50 | DVM p99 | DVM CPU ms/job | SQL p50 | SQL p99 | relay (request) p50 | relay (result) p50 | floor p50 | DVM overhead p50 | jobs/s ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let find =
        |stats: &[(Path, Stats)], path: Path| stats.iter().find(|(p, _)| *p == path).unwrap().1;
    for (label, _, clients, jobs, stats) in &rows {
        let dvm = find(stats, Path::Dvm);
        let sql = find(stats, Path::Sql);
        let hop_request = find(stats, Path::HopRequest);
        let hop_result = find(stats, Path::HopResult);
        let floor = hop_request.p50 + sql.p50 + hop_result.p50;
        let (floor, overhead) = if *clients == 1 {
            (format!("{floor:.2}"), format!("{:.2}", dvm.p50 - floor))
        } else {
            ("—".to_owned(), "—".to_owned())
        };
        println!(
            "| {label} | {clients} | {jobs} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {floor} | {overhead} | {:.2} |",
            dvm.rate,
            dvm.p50,
            dvm.p99,
            dvm.cpu_ms,
            sql.p50,
            sql.p99,
            hop_request.p50,
            hop_result.p50,
            dvm.rate / sql.rate,
        );
    }
    println!("\nThroughput of each path alone, per second, and p99 ms:\n");
    println!(
        "| job | clients | request bytes | result bytes | rows (total) | DVM | SQL | relay (request) | relay (result) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (label, sizes, clients, _, stats) in &rows {
        let cells: Vec<String> = PATHS
            .into_iter()
            .map(|path| {
                let s = find(stats, path);
                format!("{:.0} /s, p99 {:.2}", s.rate, s.p99)
            })
            .collect();
        println!(
            "| {label} | {clients} | {} | {} | {} ({}) | {} |",
            sizes.request,
            sizes.result,
            sizes.rows,
            sizes.total,
            cells.join(" | ")
        );
    }
    println!(
        "\nbigbrotr-dvm process: first job answered {startup_s:.1} s after the process started; \
         peak RSS (VmHWM) {rss_start:.1} MiB after it, {rss_end:.1} MiB after {jobs_measured} \
         measured jobs (plus warm-ups and checks); {:.1} s CPU in all since the first job. Pool \
         of {pool_size} connections, {} workers. Archive generated in {load_s:.0} s, \
         measurements {measure_s:.0} s.\n",
        cpu_total, env.config.limits.workers,
    );
    drop(dvm);
}

fn main() {
    bigbrotr_core::bootstrap::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}
