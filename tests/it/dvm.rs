//! The DVM end to end: rust-nostr's in-process relays behind TLS fronts (and a TCP proxy a test
//! can cut), a real database, and a client that publishes NIP-90 requests and reads back results
//! and feedback, checked tag by tag. Hostile requests (unknown table, SQL in params, huge or
//! malformed limits, malformed tags, another provider's request, an encrypted request, a flood
//! from one pubkey) each get the right answer or none, without stalling the daemon; a restart
//! answers nothing twice; a dropped relay is reconnected.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bigbrotr_core::metrics::Metrics;
use bigbrotr_core::metrics::names;
use bigbrotr_core::runner::Context;
use bigbrotr_dvm::{Dvm, DvmConfig};
use bigbrotr_models::relay::Relay;
use bigbrotr_testkit::TestDb;
use bigbrotr_testkit::relays::{TestCa, TestRelay, TlsFront};
use bigbrotr_testkit::tcp::{ProxyTarget, TcpProxy};
use bigbrotr_utils::network::NetworksConfig;
use bigbrotr_utils::relay::{Connector, RelayConnection};
use nostr::nips::nip04;
use nostr::{Event, EventBuilder, Filter, JsonUtil, Keys, Kind, Tag};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::dbkit::insert_relay;

/// One relay reached as `wss://<name>.example.com` (TLS front → cuttable TCP proxy → relay).
struct Lab {
    ca: TestCa,
    host: String,
    front: SocketAddr,
    proxy: TcpProxy,
    _relay: TestRelay,
    _front: TlsFront,
}

impl Lab {
    async fn new(name: &str) -> Self {
        let relay = TestRelay::start().await;
        let proxy = TcpProxy::start(ProxyTarget::Tcp(relay.address())).await;
        let ca = TestCa::new();
        let host = format!("{name}.example.com");
        let front = TlsFront::start(ca.server_config(&[&host]), proxy.address()).await;
        Self {
            host,
            front: front.address(),
            proxy,
            ca,
            _relay: relay,
            _front: front,
        }
    }

    fn url(&self) -> String {
        format!("wss://{}", self.host)
    }

    fn connector(&self) -> Connector {
        let mut networks = NetworksConfig::default();
        networks.clearnet.timeout = 5.0;
        // The test relays are on loopback.
        networks.clearnet.allow_private = true;
        Connector::new(networks)
            .unwrap()
            .with_root_certificate(self.ca.der())
            .unwrap()
            .resolve(&self.host, self.front)
    }

    /// A client connection (as `keys`).
    async fn client(&self, keys: &Keys) -> RelayConnection {
        let relay = Relay::new(&self.url(), 0).unwrap();
        self.connector()
            .with_keys(Some(keys.clone()))
            .connect(&relay)
            .await
            .unwrap()
    }
}

fn config(lab: &Lab, tables: Value) -> DvmConfig {
    let mut config = DvmConfig {
        relays: vec![lab.url()],
        fetch_timeout: 5.0,
        ..DvmConfig::default()
    };
    config.tables = serde_json::from_value(tables).unwrap();
    config.limits.per_requester = 5;
    config.limits.window = 60.0;
    config
}

fn context(db: &TestDb) -> Context {
    Context {
        brotr: db.brotr(),
        metrics: Metrics::new("dvm"),
        shutdown: CancellationToken::new(),
    }
}

async fn start(lab: &Lab, ctx: &Context, config: DvmConfig, keys: &Keys) -> Dvm {
    let dvm = Dvm::start(config, ctx, keys.clone(), lab.connector())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dvm.connected().await == 0 {
        assert!(Instant::now() < deadline, "the DVM connects");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its subscription is open once connected; give the REQ a moment to reach the relay.
    tokio::time::sleep(Duration::from_millis(200)).await;
    dvm
}

fn tag(values: &[&str]) -> Tag {
    Tag::parse(values.iter().map(|v| (*v).to_owned())).unwrap()
}

fn job(keys: &Keys, tags: Vec<Tag>, content: &str) -> Event {
    EventBuilder::new(Kind::from(5050), content)
        .tags(tags)
        .sign_with_keys(keys)
        .unwrap()
}

fn params(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| tag(&["param", k, v])).collect()
}

/// Answers (result or feedback) by `dvm` tagging `request`, waited for up to `wait`.
async fn answers_to(
    client: &RelayConnection,
    dvm: &Keys,
    request: &Event,
    wait: Duration,
) -> Vec<Event> {
    let filter = Filter::new()
        .author(dvm.public_key())
        .kinds([Kind::from(6050), Kind::JobFeedback])
        .event(request.id);
    let deadline = Instant::now() + wait;
    loop {
        let found = client
            .query(filter.clone(), Duration::from_secs(5))
            .await
            .unwrap();
        if !found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The single answer to `request`, within 5 s.
async fn answer(client: &RelayConnection, dvm: &Keys, request: &Event) -> Event {
    let found = answers_to(client, dvm, request, Duration::from_secs(5)).await;
    assert_eq!(found.len(), 1, "one answer to {}: {found:?}", request.id);
    let event = found.into_iter().next().unwrap();
    event.verify().expect("a valid signature");
    event
}

fn tags_of(event: &Event) -> Vec<Vec<String>> {
    event.tags.iter().map(|t| t.as_slice().to_vec()).collect()
}

fn tag_value<'a>(event: &'a Event, name: &str) -> Option<&'a [String]> {
    event
        .tags
        .iter()
        .map(|t| t.as_slice())
        .find(|t| t.first().is_some_and(|k| k == name))
}

async fn populate(db: &TestDb) {
    for (i, url) in [
        "wss://relay.damus.io",
        "wss://nos.lol",
        "wss://relay.primal.net",
    ]
    .iter()
    .enumerate()
    {
        insert_relay(db.pool(), url, "clearnet", 1_700_000_000 + i as i64).await;
    }
}

#[tokio::test]
async fn jobs_are_answered_as_they_arrive_with_nip90_tags() {
    let db = TestDb::new().await;
    populate(&db).await;
    let lab = Lab::new("dvm-relay").await;
    let ctx = context(&db);
    let dvm_keys = Keys::generate();
    let tables = json!({"relay": {"enabled": true}, "event": {"enabled": true, "price": 1000}});
    let mut dvm = start(&lab, &ctx, config(&lab, tables), &dvm_keys).await;
    let customer = Keys::generate();
    let client = lab.client(&customer).await;

    // The announcement: kind 31990, d and k tags, the exposed tables.
    assert_eq!(dvm.announce_if_due().await, 1);
    let announced = client
        .query(
            Filter::new()
                .author(dvm_keys.public_key())
                .kind(Kind::Custom(31990)),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(announced.len(), 1);
    assert_eq!(
        tags_of(&announced[0]),
        [vec!["d", "bigbrotr-dvm"], vec!["k", "5050"]]
    );
    let content: Value = serde_json::from_str(&announced[0].content).unwrap();
    assert_eq!(content["tables"], json!(["event", "relay"]));
    assert_eq!(
        dvm.announce_if_due().await,
        0,
        "not again before announce_interval"
    );

    // A job: answered within a second of reaching the relay, every NIP-90 tag in place.
    let request = job(
        &customer,
        params(&[
            ("table", "relay"),
            ("limit", "2"),
            ("filter", "network=clearnet"),
            ("sort", "discovered_at:desc"),
        ]),
        "",
    );
    client.send(&request, Duration::from_secs(5)).await.unwrap();
    let sent = Instant::now();
    let found = answers_to(&client, &dvm_keys, &request, Duration::from_secs(5)).await;
    let latency = sent.elapsed();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(latency < Duration::from_secs(1), "answered in {latency:?}");
    let result = &found[0];
    result.verify().unwrap();
    assert_eq!(result.kind, Kind::from(6050));
    assert_eq!(result.pubkey, dvm_keys.public_key());
    let request_tag = tag_value(result, "request").unwrap();
    assert_eq!(
        Event::from_json(&request_tag[1]).unwrap(),
        request,
        "the request event itself"
    );
    assert_eq!(tag_value(result, "e").unwrap()[1], request.id.to_hex());
    assert_eq!(
        tag_value(result, "p").unwrap()[1],
        customer.public_key().to_hex()
    );
    assert!(
        tag_value(result, "amount").is_none(),
        "a free table has no amount"
    );
    let body: Value = serde_json::from_str(&result.content).unwrap();
    assert_eq!(body["meta"]["total"], 3);
    assert_eq!(body["meta"]["limit"], 2);
    assert_eq!(body["data"][0]["url"], "wss://relay.primal.net");
    assert!(body["meta"]["next_cursor"].is_string());
    // The next page with the cursor.
    let next = job(
        &customer,
        params(&[
            ("table", "relay"),
            ("limit", "2"),
            ("filter", "network=clearnet"),
            ("cursor", body["meta"]["next_cursor"].as_str().unwrap()),
        ]),
        "",
    );
    client.send(&next, Duration::from_secs(5)).await.unwrap();
    let page = answer(&client, &dvm_keys, &next).await;
    let body: Value = serde_json::from_str(&page.content).unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["url"], "wss://relay.damus.io");

    // A priced table: payment-required with the amount, then a high enough bid is served.
    let priced = job(&customer, params(&[("table", "event")]), "");
    client.send(&priced, Duration::from_secs(5)).await.unwrap();
    let feedback = answer(&client, &dvm_keys, &priced).await;
    assert_eq!(feedback.kind, Kind::JobFeedback);
    assert_eq!(
        tag_value(&feedback, "status").unwrap(),
        [
            "status",
            "payment-required",
            "This query costs 1000 millisats"
        ]
    );
    assert_eq!(tag_value(&feedback, "amount").unwrap()[1], "1000");
    assert_eq!(tag_value(&feedback, "e").unwrap()[1], priced.id.to_hex());
    assert_eq!(
        tag_value(&feedback, "p").unwrap()[1],
        customer.public_key().to_hex()
    );
    let mut tags = params(&[("table", "event")]);
    tags.push(tag(&["bid", "1000"]));
    let paid = job(&customer, tags, "");
    client.send(&paid, Duration::from_secs(5)).await.unwrap();
    let result = answer(&client, &dvm_keys, &paid).await;
    assert_eq!(result.kind, Kind::from(6050));
    assert_eq!(tag_value(&result, "amount").unwrap()[1], "1000");

    // An encrypted request: answered, encrypted to the requester.
    let secret = json!([["param", "table", "relay"], ["param", "limit", "1"]]).to_string();
    let content = nip04::encrypt(customer.secret_key(), &dvm_keys.public_key(), &secret).unwrap();
    let encrypted = job(
        &customer,
        vec![
            tag(&["p", &dvm_keys.public_key().to_hex()]),
            tag(&["encrypted"]),
        ],
        &content,
    );
    client
        .send(&encrypted, Duration::from_secs(5))
        .await
        .unwrap();
    let result = answer(&client, &dvm_keys, &encrypted).await;
    assert!(tag_value(&result, "encrypted").is_some());
    let plain = nip04::decrypt(
        customer.secret_key(),
        &dvm_keys.public_key(),
        &result.content,
    )
    .unwrap();
    let body: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert!(
        !result.content.contains("relay.damus.io"),
        "nothing in clear"
    );

    assert!(ctx.metrics.counter(names::dvm::JOBS_ANSWERED) >= 4);
    dvm.stop().await;
}

#[tokio::test]
async fn hostile_requests_get_the_right_answer_or_none_and_never_stall() {
    let db = TestDb::new().await;
    populate(&db).await;
    let lab = Lab::new("dvm-hostile").await;
    let ctx = context(&db);
    let dvm_keys = Keys::generate();
    // Twelve jobs per requester a minute: the cases below fit, the flood does not.
    let mut settings = config(&lab, json!({"relay": {"enabled": true}}));
    settings.limits.per_requester = 12;
    let dvm = start(&lab, &ctx, settings, &dvm_keys).await;
    let customer = Keys::generate();
    let client = lab.client(&customer).await;

    let cases: Vec<(Vec<Tag>, &str)> = vec![
        (
            params(&[("table", "nope")]),
            "Invalid or disabled table: nope",
        ),
        (
            params(&[("table", "service_state")]),
            "Invalid or disabled table: service_state",
        ),
        (
            params(&[("table", "relay"), ("limit", "abc")]),
            "Invalid limit or offset value",
        ),
        (
            params(&[("table", "relay"), ("filter", "nope=1")]),
            "Unknown column: nope",
        ),
        (
            params(&[
                ("table", "relay"),
                ("filter", "discovered_at=1; DROP TABLE relay"),
            ]),
            "column discovered_at",
        ),
        (
            params(&[("table", "relay"), ("filter", "garbage")]),
            "Invalid filter",
        ),
        (
            params(&[("table", "relay"), ("sort", "url:sideways")]),
            "Invalid sort direction",
        ),
    ];
    for (tags, expected) in cases {
        let request = job(&customer, tags, "");
        client.send(&request, Duration::from_secs(5)).await.unwrap();
        let feedback = answer(&client, &dvm_keys, &request).await;
        assert_eq!(feedback.kind, Kind::JobFeedback);
        let status = tag_value(&feedback, "status").unwrap();
        assert_eq!(status[1], "error");
        assert!(status[2].contains(expected), "{expected}: {status:?}");
    }
    // SQL in a text value is only a value; a huge limit is clamped.
    let request = job(
        &customer,
        params(&[
            ("table", "relay"),
            ("limit", "99999999"),
            ("filter", "url=x'; DROP TABLE relay; --"),
        ]),
        "",
    );
    client.send(&request, Duration::from_secs(5)).await.unwrap();
    let result = answer(&client, &dvm_keys, &request).await;
    let body: Value = serde_json::from_str(&result.content).unwrap();
    assert_eq!(
        (body["meta"]["total"].clone(), body["meta"]["limit"].clone()),
        (json!(0), json!(1000))
    );
    let relays: i64 = sqlx::query_scalar("SELECT count(*) FROM relay")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(relays, 3);

    // No answer: another provider's request, a request without a table (another DVM's job of
    // the same kind), malformed tags without a table.
    let other = Keys::generate();
    let silent = vec![
        job(
            &customer,
            vec![
                tag(&["p", &other.public_key().to_hex()]),
                tag(&["param", "table", "relay"]),
            ],
            "",
        ),
        job(
            &customer,
            vec![tag(&["i", "What is the capital of France?", "text"])],
            "",
        ),
        job(
            &customer,
            vec![
                tag(&["param"]),
                tag(&["param", "table"]),
                tag(&["bid", "lots"]),
            ],
            "",
        ),
    ];
    for request in &silent {
        client.send(request, Duration::from_secs(5)).await.unwrap();
    }
    // A flood from one pubkey: 12 answered (the per-requester limit), one rate-limit feedback,
    // the rest dropped; meanwhile another requester is served at once.
    let flooder = Keys::generate();
    let flood_client = lab.client(&flooder).await;
    let mut flood = Vec::new();
    for n in 0..1000 {
        let request = job(
            &flooder,
            params(&[("table", "relay"), ("offset", &n.to_string())]),
            "",
        );
        flood_client
            .send(&request, Duration::from_secs(5))
            .await
            .unwrap();
        flood.push(request);
    }
    let polite = job(&customer, params(&[("table", "relay"), ("limit", "1")]), "");
    client.send(&polite, Duration::from_secs(5)).await.unwrap();
    let sent = Instant::now();
    let result = answer(&client, &dvm_keys, &polite).await;
    assert_eq!(result.kind, Kind::from(6050));
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "not stalled: {:?}",
        sent.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = client
        .query(
            Filter::new()
                .author(dvm_keys.public_key())
                .kinds([Kind::from(6050), Kind::JobFeedback])
                .pubkey(flooder.public_key()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let results = all.iter().filter(|e| e.kind == Kind::from(6050)).count();
    let refusals: Vec<&Event> = all.iter().filter(|e| e.kind == Kind::JobFeedback).collect();
    assert_eq!(results, 12, "the per-requester limit");
    assert_eq!(
        refusals.len(),
        1,
        "one refusal per window, not one per request"
    );
    assert!(tag_value(refusals[0], "status").unwrap()[2].starts_with("rate-limited"));
    for request in &silent {
        assert!(
            answers_to(&client, &dvm_keys, request, Duration::from_millis(100))
                .await
                .is_empty()
        );
    }
    assert!(ctx.metrics.counter(names::dvm::JOBS_REFUSED) >= 988);
    assert!(ctx.metrics.counter(names::dvm::JOBS_IGNORED) >= 3);
    dvm.stop().await;
}

#[tokio::test]
async fn a_restart_answers_nothing_twice_and_catches_up() {
    let db = TestDb::new().await;
    populate(&db).await;
    let lab = Lab::new("dvm-restart").await;
    let dvm_keys = Keys::generate();
    let customer = Keys::generate();
    let client = lab.client(&customer).await;
    let tables = json!({"relay": {"enabled": true}});

    let ctx = context(&db);
    let dvm = start(&lab, &ctx, config(&lab, tables.clone()), &dvm_keys).await;
    let first = job(&customer, params(&[("table", "relay")]), "");
    client.send(&first, Duration::from_secs(5)).await.unwrap();
    answer(&client, &dvm_keys, &first).await;
    dvm.stop().await;

    // Asked while the DVM was down.
    let missed = job(&customer, params(&[("table", "relay"), ("limit", "1")]), "");
    client.send(&missed, Duration::from_secs(5)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let ctx = context(&db);
    let dvm = start(&lab, &ctx, config(&lab, tables), &dvm_keys).await;
    let result = answer(&client, &dvm_keys, &missed).await;
    assert_eq!(
        result.kind,
        Kind::from(6050),
        "the missed request is answered"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = answers_to(&client, &dvm_keys, &first, Duration::ZERO).await;
    assert_eq!(again.len(), 1, "the first request is not answered twice");
    assert_eq!(
        answers_to(&client, &dvm_keys, &missed, Duration::ZERO)
            .await
            .len(),
        1
    );

    // A dropped connection: reconnected with backoff, and requests sent meanwhile answered.
    assert!(lab.proxy.cut() >= 1);
    let during = job(&customer, params(&[("table", "relay"), ("limit", "2")]), "");
    let client = lab.client(&customer).await;
    client.send(&during, Duration::from_secs(5)).await.unwrap();
    let found = answers_to(&client, &dvm_keys, &during, Duration::from_secs(10)).await;
    assert_eq!(found.len(), 1, "answered after the reconnection");
    dvm.stop().await;
}
