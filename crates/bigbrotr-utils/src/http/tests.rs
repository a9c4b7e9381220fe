//! Tests of the HTTP client factory against local servers: bounded bodies, timeouts, redirects,
//! and overlay routing through an observable SOCKS5 proxy.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::response::Redirect;
use axum::routing::get;
use bigbrotr_testkit::socks::SocksProxy;

use super::*;

async fn server() -> SocketAddr {
    let app = Router::new()
        .route("/small", get(|| async { "hello" }))
        .route("/big", get(|| async { vec![b'x'; 2 * 1024 * 1024] }))
        .route(
            "/stream",
            get(|| async {
                // No Content-Length: the limit must be enforced while reading.
                let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 64 * 1024]));
                Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/loop", get(|| async { Redirect::temporary("/loop") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    address
}

fn options(timeout_ms: u64) -> HttpOptions {
    HttpOptions::with_timeout(Duration::from_millis(timeout_ms))
}

fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Networks whose clearnet may reach loopback (the test servers).
fn loopback_networks() -> NetworksConfig {
    let mut networks = NetworksConfig::default();
    networks.clearnet.allow_private = true;
    networks
}

/// A local server and a direct (clearnet) client with `timeout_ms`.
async fn clearnet_setup(timeout_ms: u64) -> (SocketAddr, reqwest::Client) {
    install_provider();
    let address = server().await;
    let client = client(
        NetworkType::Clearnet,
        &loopback_networks(),
        &options(timeout_ms),
    )
    .unwrap();
    (address, client)
}

#[tokio::test]
async fn bodies_within_the_limit_are_returned() {
    let (address, client) = clearnet_setup(5000).await;
    let response = send_bounded(client.get(format!("http://{address}/small")), 1024)
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    assert_eq!(response.media_type().as_deref(), Some("text/plain"));
}

#[tokio::test]
async fn oversized_bodies_are_refused_announced_or_streamed() {
    let (address, client) = clearnet_setup(5000).await;
    for path in ["big", "stream"] {
        let err = send_bounded(client.get(format!("http://{address}/{path}")), 1024 * 1024)
            .await
            .unwrap_err();
        assert!(
            matches!(err, HttpError::TooLarge { limit: 1_048_576 }),
            "{path}: {err}"
        );
        assert_eq!(err.to_string(), "Response body too large: >1048576 bytes");
    }
}

#[tokio::test]
async fn a_silent_server_costs_at_most_the_timeout() {
    let (address, client) = clearnet_setup(300).await;
    let started = std::time::Instant::now();
    let err = send_bounded(client.get(format!("http://{address}/slow")), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Request(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn redirect_loops_stop_at_the_limit() {
    let (address, client) = clearnet_setup(5000).await;
    let err = send_bounded(client.get(format!("http://{address}/loop")), 1024)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("redirect"), "{err}");
}

#[tokio::test]
async fn overlay_requests_go_through_the_proxy_and_clearnet_ones_do_not() {
    install_provider();
    let address = server().await;
    let onion = format!("{}.onion", "a".repeat(56));
    let proxy = SocksProxy::start(HashMap::from([(onion.clone(), address)])).await;
    let mut networks = loopback_networks();
    networks.tor.enabled = true;
    networks.tor.proxy_url = Some(proxy.url());

    let tor = client(NetworkType::Tor, &networks, &options(5000)).unwrap();
    let response = send_bounded(tor.get(format!("http://{onion}/small")), 1024)
        .await
        .unwrap();
    assert_eq!(response.body, b"hello");
    // The proxy saw the onion name itself: the name was never resolved locally.
    assert_eq!(proxy.requests(), vec![format!("{onion}:80")]);

    let clearnet = client(NetworkType::Clearnet, &networks, &options(5000)).unwrap();
    send_bounded(clearnet.get(format!("http://{address}/small")), 1024)
        .await
        .unwrap();
    assert_eq!(proxy.requests().len(), 1, "clearnet bypasses the proxy");
}

#[tokio::test]
async fn an_overlay_without_a_proxy_is_an_error_not_a_direct_connection() {
    install_provider();
    let mut networks = NetworksConfig::default();
    networks.i2p.enabled = true;
    networks.i2p.proxy_url = None;
    let err = client(NetworkType::I2p, &networks, &options(1000)).unwrap_err();
    assert!(
        matches!(err, HttpError::Network(NetworkError::ProxyRequired(_))),
        "{err}"
    );
}

#[test]
fn redirects_keep_the_origin_and_never_reach_a_literal_private_address() {
    let url = |text: &str| url::Url::parse(text).unwrap();
    let first = url("https://relay.example.com/");
    let refused = |target: &str, same_origin: bool, allow_private: bool| {
        redirect_refusal(Some(&first), &url(target), same_origin, allow_private)
    };
    // Same origin: path and query may change, the default port may be spelled out.
    assert_eq!(
        refused("https://relay.example.com/nip11.json", true, false),
        None
    );
    assert_eq!(
        refused("https://RELAY.example.com:443/?x=1", true, false),
        None
    );
    // Another port, scheme or host of the same document is another service.
    for target in [
        "https://relay.example.com:8443/",
        "http://relay.example.com/",
        "https://other.example.com/",
        "https://sub.relay.example.com/",
    ] {
        let reason = refused(target, true, false).unwrap_or_default();
        assert!(reason.contains("another origin"), "{target}: {reason}");
    }
    // Without the origin rule (API sources) other hosts are fine...
    assert_eq!(refused("https://other.example.com/", false, false), None);
    // ...but never a literal non-global address, unless private addresses are allowed.
    for target in [
        "http://127.0.0.1:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://10.0.0.1/",
    ] {
        let reason = refused(target, false, false).unwrap_or_default();
        assert!(
            reason.contains("non-global address refused"),
            "{target}: {reason}"
        );
        assert_eq!(refused(target, false, true), None, "{target}");
    }
    assert_eq!(refused("http://93.184.216.34/", false, false), None);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_unless_private_addresses_are_allowed() {
    install_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let refused = HttpOptions {
        resolve: vec![("internal.example.com".to_owned(), target)],
        ..options(2000)
    };
    let refusing = client(NetworkType::Clearnet, &NetworksConfig::default(), &refused).unwrap();
    let err = send_bounded(refusing.get("http://internal.example.com/small"), 1024)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "address refused: internal.example.com resolves only to non-global addresses \
             (127.0.0.1) and networks.clearnet.allow_private is off"
        ),
        "{err}"
    );
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "no connection may reach the listener");

    // The same name with private addresses allowed, or as the operator's own URL, connects.
    let address = server().await;
    let allowed = HttpOptions {
        resolve: vec![("internal.example.com".to_owned(), address)],
        ..options(2000)
    };
    let allowing = client(NetworkType::Clearnet, &loopback_networks(), &allowed).unwrap();
    let response = send_bounded(allowing.get("http://internal.example.com/small"), 1024)
        .await
        .unwrap();
    assert_eq!(response.body, b"hello");
    let operator = HttpOptions {
        operator_url: true,
        ..allowed
    };
    let operator = client(NetworkType::Clearnet, &NetworksConfig::default(), &operator).unwrap();
    let response = send_bounded(operator.get("http://internal.example.com/small"), 1024)
        .await
        .unwrap();
    assert_eq!(response.body, b"hello");
}
