use bigbrotr_models::relay::Relay;
use bigbrotr_utils::network::NetworksConfig;
use serde_json::json;

use super::*;

#[test]
fn keeps_known_fields_and_removed_ones() {
    let text = json!({
        "name": "relay", "description": "d", "software": "git+https://x", "version": "1",
        "privacy_policy": "https://p", "posting_policy": "https://q", "self": "ab",
        "supported_nips": [11, 1, 1, 42, true, 1.5, "9"],
        "relay_countries": ["DE", 3], "language_tags": ["en", "de-CH"], "tags": ["sfw-only"],
        "limitation": {"max_limit": 500, "auth_required": true, "payment_required": "no",
                       "min_pow_difficulty": 0, "max_subscriptions": false, "unknown": 1},
        "retention": [{"kinds": [0, [5, 7], "x"], "time": 3600}, {"count": 10}, "bad"],
        "fees": {"admission": [{"amount": 1000, "unit": "msats"}], "bogus": []},
        "unknown_field": {"deep": true}
    })
    .to_string();
    let data = parse_document(&text).expect("object");
    assert_eq!(data["name"], "relay");
    assert_eq!(data["self"], "ab");
    assert_eq!(data["privacy_policy"], "https://p");
    assert_eq!(data["posting_policy"], "https://q");
    assert_eq!(data["supported_nips"], json!([1, 11, 42]));
    assert_eq!(data["relay_countries"], json!(["DE"]));
    assert_eq!(data["language_tags"], json!(["en", "de-CH"]));
    assert_eq!(data["tags"], json!(["sfw-only"]));
    assert_eq!(
        data["limitation"],
        json!({"max_limit": 500, "auth_required": true, "min_pow_difficulty": 0})
    );
    assert_eq!(
        data["retention"],
        json!([{"kinds": [0, [5, 7]], "time": 3600}, {"count": 10}])
    );
    assert_eq!(
        data["fees"],
        json!({"admission": [{"amount": 1000, "unit": "msats"}]})
    );
    assert!(!data.contains_key("unknown_field"));
}

#[test]
fn wrong_types_are_dropped_not_fatal() {
    let text = r#"{"name": 5, "supported_nips": "1,2", "limitation": [], "tags": "x", "fees": 3}"#;
    let data = parse_document(text).expect("object");
    assert!(data.is_empty(), "{data:?}");
}

#[test]
fn non_objects_are_errors() {
    assert!(parse_document("[]").unwrap_err().contains("not an object"));
    assert!(parse_document("{").unwrap_err().starts_with("Invalid JSON"));
    assert!(parse_document("").is_err());
}

#[test]
fn document_urls() {
    let url = |u: &str| document_url(u).map(|u| u.to_string());
    assert_eq!(
        url("wss://relay.example.com"),
        Some("https://relay.example.com/".into())
    );
    assert_eq!(
        url("wss://relay.example.com:8443/path"),
        Some("https://relay.example.com:8443/path".into())
    );
    assert_eq!(url("ws://abc.onion"), Some("http://abc.onion/".into()));
    assert_eq!(url("ws://[::1]:7000"), Some("http://[::1]:7000/".into()));
    assert_eq!(url("https://x"), None);
}

/// NIP-11 over loopback: a fetcher whose host names resolve to `address`.
fn fetcher(host: &str, address: std::net::SocketAddr, allow_insecure: bool) -> Nip11Fetcher {
    let mut networks = NetworksConfig::default();
    networks.clearnet.timeout = 5.0;
    networks.clearnet.allow_private = true;
    Nip11Fetcher::new(
        networks,
        Nip11Options {
            allow_insecure,
            resolve: vec![(host.to_owned(), address)],
            ..Nip11Options::default()
        },
    )
}

fn reason(nip11: &Nip11) -> String {
    nip11.outcome.logs["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Issue 16: the insecure retry is for a certificate rustls rejected (its typed error), not for
/// an error whose text mentions TLS: a handshake the server cuts short ("tls handshake eof", or
/// a reset) of a host whose name holds "tls" is a connection failure, fetched once.
#[tokio::test]
async fn only_a_rejected_certificate_gets_the_insecure_retry() {
    use bigbrotr_testkit::front::{FrontOptions, Nip11Reply, RelayFront};
    use bigbrotr_testkit::relays::{HostilePeer, Hostility, TestCa};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let timeout = std::time::Duration::from_secs(5);

    let ca = TestCa::new();
    let host = "ssl.example.com";
    let unused_backend = "127.0.0.1:9".parse().unwrap();
    let front = RelayFront::start(
        unused_backend,
        FrontOptions {
            tls: Some(ca.server_config(&[host])),
            nip11: Nip11Reply::json(r#"{"name":"self-signed"}"#),
            ..FrontOptions::default()
        },
    )
    .await;
    let relay = Relay::new(&format!("wss://{host}"), 0).unwrap();
    let strict = fetcher(host, front.address(), false)
        .fetch(&relay, timeout)
        .await;
    assert!(
        reason(&strict).starts_with("TLS certificate rejected (allow_insecure is off): "),
        "{}",
        reason(&strict)
    );
    let lenient = fetcher(host, front.address(), true)
        .fetch(&relay, timeout)
        .await;
    assert_eq!(
        lenient.outcome.data["name"], "self-signed",
        "retried without verification"
    );

    for reset in [false, true] {
        for allow_insecure in [false, true] {
            let peer = HostilePeer::start(Hostility::CutHandshake { reset }).await;
            let host = "tls.example.com";
            let relay = Relay::new(&format!("wss://{host}"), 0).unwrap();
            let nip11 = fetcher(host, peer.address(), allow_insecure)
                .fetch(&relay, timeout)
                .await;
            let case = format!("reset {reset}, allow_insecure {allow_insecure}");
            assert!(!nip11.outcome.succeeded(), "{case}");
            assert!(
                !reason(&nip11).contains("certificate rejected"),
                "{case}: {}",
                reason(&nip11)
            );
            assert_eq!(peer.connections(), 1, "{case}: no insecure retry");
        }
    }
}

/// A `{"name", "tags": [...]}` document of about `bytes` bytes (short tags: many values).
fn large_document(bytes: usize) -> Vec<u8> {
    let tags: Vec<String> = (0..bytes / 12).map(|i| format!("{i:0>9}")).collect();
    serde_json::to_vec(&json!({"name": "big", "tags": tags})).unwrap()
}

#[test]
fn small_and_large_bodies_parse_alike() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for body in [large_document(1000), large_document(2 * INLINE_PARSE_BYTES)] {
        let text = String::from_utf8(body.clone()).unwrap();
        let (data, raw) = runtime.block_on(parse_body(body)).unwrap();
        assert_eq!(data, parse_document(&text).unwrap());
        assert_eq!(raw, text);
    }
    for bad in [vec![0xff; 10], vec![0xff; INLINE_PARSE_BYTES + 1]] {
        let error = runtime.block_on(parse_body(bad)).unwrap_err();
        assert_eq!(error, "Invalid JSON: the body is not UTF-8");
    }
}

/// On a runtime with one thread, a 10 MiB document (the largest `nip11_info_max_size`) is
/// parsed while a 5 ms interval keeps ticking: no gap between ticks comes near the parse's time
/// (parsed on the worker, the document stops the ticker for the whole parse).
#[tokio::test(flavor = "current_thread")]
async fn a_large_document_does_not_hold_the_only_worker() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let body = large_document(10 * 1024 * 1024);
    let started = std::time::Instant::now();
    let text = String::from_utf8(body.clone()).unwrap();
    parse_document(&text).unwrap();
    let parse = started.elapsed();
    assert!(
        parse > Duration::from_millis(40),
        "the parse took {parse:?}"
    );

    let longest_gap = Arc::new(AtomicU64::new(0));
    let gap = longest_gap.clone();
    let ticker = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(5));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        let mut last = tokio::time::Instant::now();
        loop {
            interval.tick().await;
            let now = tokio::time::Instant::now();
            let micros = u64::try_from((now - last).as_micros()).unwrap_or(u64::MAX);
            gap.fetch_max(micros, Ordering::SeqCst);
            last = now;
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (data, _) = parse_body(body).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    ticker.abort();
    assert_eq!(data["name"], "big");
    let longest = Duration::from_micros(longest_gap.load(Ordering::SeqCst));
    assert!(
        longest < parse / 2,
        "the ticker stopped for {longest:?} (the parse takes {parse:?})"
    );
}
