//! Tests of resolution and the private-address rule.

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn only_global_addresses_are_admitted_unless_private_ones_are_allowed() {
    let loopback = vec![addr("127.0.0.1:443"), addr("[::1]:443")];
    let error = admit("internal.example.com", loopback.clone(), false).unwrap_err();
    assert_eq!(
        error.to_string(),
        "address refused: internal.example.com resolves only to non-global addresses \
         (127.0.0.1, ::1) and networks.clearnet.allow_private is off"
    );
    assert_eq!(
        admit("internal.example.com", loopback.clone(), true).unwrap(),
        loopback
    );
    // Cloud metadata, RFC 1918, NAT64 of a private address: refused; the reason lists them
    // sorted whatever the resolver's order, so it is the same on every attempt.
    let hostile = vec![
        addr("169.254.169.254:80"),
        addr("10.0.0.1:80"),
        addr("[64:ff9b::a00:1]:80"),
    ];
    let mut reversed = hostile.clone();
    reversed.reverse();
    assert_eq!(
        admit("h.example.com", hostile, false),
        admit("h.example.com", reversed, false)
    );
    // A name that also resolves to a public address keeps only the public one.
    let mixed = vec![addr("127.0.0.1:443"), addr("93.184.216.34:443")];
    assert_eq!(
        admit("mixed.example.com", mixed, false).unwrap(),
        vec![addr("93.184.216.34:443")]
    );
    let many: Vec<SocketAddr> = (1..=6).map(|i| addr(&format!("10.0.0.{i}:1"))).collect();
    let error = admit("many.example.com", many, false).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("(10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 2 more)"),
        "{error}"
    );
}

#[tokio::test]
async fn names_resolved_by_the_system_resolver_are_checked_after_resolution() {
    // `localhost` resolves on every host (no /etc/hosts edit): a public-looking rule on the
    // name alone would let it through; the resolved address is what is refused.
    let addresses = resolve("localhost", 8080, &Overrides::default())
        .await
        .unwrap();
    assert!(
        addresses
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8080)
    );
    let error = admit("localhost", addresses, false).unwrap_err();
    assert!(matches!(error, DialError::NotGlobal { .. }), "{error}");
    assert!(error.to_string().contains("127.0.0.1"), "{error}");
}

#[tokio::test]
async fn overrides_come_first_keep_their_order_and_ports() {
    let pairs = vec![
        ("Relay.Example.com".to_owned(), addr("127.0.0.2:4000")),
        ("relay.example.com".to_owned(), addr("[::1]:4001")),
    ];
    let overrides = overrides(&pairs);
    assert_eq!(
        resolve("relay.example.com", 443, &overrides).await.unwrap(),
        vec![addr("127.0.0.2:4000"), addr("[::1]:4001")]
    );
    assert_eq!(
        resolve("[::1]", 443, &overrides).await.unwrap(),
        vec![addr("[::1]:443")]
    );
    let missing = resolve("does-not-exist.invalid", 443, &overrides).await;
    assert!(
        matches!(missing, Err(DialError::Resolve { .. })),
        "{missing:?}"
    );
}

#[test]
fn addresses_are_interleaved_by_family_from_the_first_one() {
    let v4a = addr("192.0.2.1:443");
    let v4b = addr("192.0.2.2:443");
    let v6a = addr("[2001:db8::1]:443");
    let v6b = addr("[2001:db8::2]:443");
    let v6c = addr("[2001:db8::3]:443");
    assert_eq!(
        interleave(&[v6a, v6b, v6c, v4a, v4b]),
        vec![v6a, v4a, v6b, v4b, v6c]
    );
    assert_eq!(interleave(&[v4a, v4b, v6a]), vec![v4a, v6a, v4b]);
    assert_eq!(interleave(&[v4a, v4a, v4b]), vec![v4a, v4b]);
    assert_eq!(interleave(&[]), Vec::<SocketAddr>::new());
}

/// A listener on 127.0.0.1 that accepts.
async fn working() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
}

#[tokio::test]
async fn a_black_holed_first_address_costs_the_attempt_delay_not_the_budget() {
    use bigbrotr_testkit::tcp::BlackHole;
    // The black hole is one of each family: an IPv6 route that drops everything (the case of
    // relays whose AAAA record does not work), and another IPv4 address of the same name.
    for hole in ["::1", "127.0.0.1"] {
        let hole = BlackHole::start(hole.parse().unwrap()).await;
        let good = working().await;
        let started = std::time::Instant::now();
        let stream = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            connect(&[hole.address(), good.local_addr().unwrap()]),
        )
        .await
        .expect("one after the other, the black hole takes the whole budget")
        .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(stream.peer_addr().unwrap(), good.local_addr().unwrap());
        assert!(
            elapsed >= CONNECTION_ATTEMPT_DELAY && elapsed < std::time::Duration::from_secs(1),
            "{}: {elapsed:?}",
            hole.address()
        );
    }
}

#[tokio::test]
async fn a_refused_address_moves_on_at_once_and_all_refused_is_an_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let good = working().await;
    // A refusal starts the next attempt without waiting for the delay.
    let stream = tokio::time::timeout(
        CONNECTION_ATTEMPT_DELAY,
        connect(&[closed, good.local_addr().unwrap()]),
    )
    .await
    .expect("the next attempt waited for the delay")
    .unwrap();
    assert_eq!(stream.peer_addr().unwrap(), good.local_addr().unwrap());
    drop(good);
    let error = connect(&[closed]).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(connect(&[]).await.is_err());
}

mod connector {
    //! The rule through the relay connector: every way of reaching a relay checks the resolved
    //! addresses before connecting.

    use std::time::Duration;

    use bigbrotr_models::relay::Relay;
    use bigbrotr_testkit::relays::{TestCa, TestRelay, TlsFront};
    use bigbrotr_testkit::tcp::{ProxyTarget, TcpProxy};

    use crate::network::NetworksConfig;
    use crate::relay::Connector;

    fn networks(allow_private: bool) -> NetworksConfig {
        let mut networks = NetworksConfig::default();
        networks.clearnet.timeout = 3.0;
        networks.clearnet.allow_private = allow_private;
        networks
    }

    #[tokio::test]
    async fn a_relay_name_resolving_to_loopback_is_refused_before_any_connection() {
        let host = "internal.example.com";
        let ca = TestCa::new();
        let relay = TestRelay::start().await;
        let front = TlsFront::start(ca.server_config(&[host]), relay.address()).await;
        // Counts every TCP connection that reaches the relay.
        let door = TcpProxy::start(ProxyTarget::Tcp(front.address())).await;
        let connector = |allow_private: bool| {
            Connector::new(networks(allow_private))
                .unwrap()
                .with_root_certificate(ca.der())
                .unwrap()
                .resolve(host, door.address())
        };
        let target = Relay::new(&format!("wss://{host}"), 0).unwrap();
        let expected = "address refused: internal.example.com resolves only to non-global \
                        addresses (127.0.0.1) and networks.clearnet.allow_private is off";

        let refusing = connector(false);
        let error = refusing.connect(&target).await.unwrap_err().to_string();
        assert!(error.contains(expected), "connect: {error}");
        let error = refusing
            .open_session(&target)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "session: {error}");
        let error = refusing
            .tls_handshake(&target, true, Duration::from_secs(3))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "handshake: {error}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(door.accepted(), 0, "no connection may reach the relay");

        let allowing = connector(true);
        let connection = allowing.connect(&target).await.unwrap();
        connection.shutdown().await;
        assert!(door.accepted() > 0);
    }
}

mod happy_eyeballs {
    //! Relays and HTTP reached through a name whose first address is black-holed.

    use std::time::{Duration, Instant};

    use bigbrotr_models::relay::{NetworkType, Relay};
    use bigbrotr_testkit::relays::{TestCa, TestRelay, TlsFront};
    use bigbrotr_testkit::tcp::BlackHole;

    use crate::http::{self, HttpOptions};
    use crate::network::NetworksConfig;
    use crate::relay::Connector;

    /// Loopback allowed, and a budget far above what the test accepts.
    fn networks() -> NetworksConfig {
        let mut networks = NetworksConfig::default();
        networks.clearnet.timeout = 8.0;
        networks.clearnet.allow_private = true;
        networks
    }

    #[tokio::test]
    async fn a_relay_whose_first_address_is_black_holed_is_reached_within_a_second() {
        let host = "dual.example.com";
        let ca = TestCa::new();
        let relay = TestRelay::start().await;
        let front = TlsFront::start(ca.server_config(&[host]), relay.address()).await;
        let target = Relay::new(&format!("wss://{host}"), 0).unwrap();
        for hole in ["::1", "127.0.0.1"] {
            let hole = BlackHole::start(hole.parse().unwrap()).await;
            let connector = Connector::new(networks())
                .unwrap()
                .with_root_certificate(ca.der())
                .unwrap()
                .resolve(host, hole.address())
                .resolve(host, front.address());
            let started = Instant::now();
            let connection = connector.connect(&target).await.unwrap();
            connection.shutdown().await;
            let session = connector.open_session(&target).await.unwrap();
            session.close().await;
            let elapsed = started.elapsed();
            assert!(
                elapsed < Duration::from_secs(2),
                "{}: two connections took {elapsed:?}",
                hole.address()
            );
        }
    }

    /// reqwest connects through hyper-util, which races the two families (the first address's
    /// family first, the other 300 ms later): a black-holed IPv6 address costs 300 ms.
    #[tokio::test]
    async fn an_http_request_whose_ipv6_address_is_black_holed_falls_back_to_ipv4() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let hole = BlackHole::start("::1".parse().unwrap()).await;
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let options = HttpOptions {
            resolve: vec![
                ("dual.example.com".to_owned(), hole.address()),
                ("dual.example.com".to_owned(), good),
            ],
            ..HttpOptions::with_timeout(Duration::from_secs(8))
        };
        let client = http::client(NetworkType::Clearnet, &networks(), &options).unwrap();
        let started = Instant::now();
        let url = format!("http://dual.example.com:{}/", good.port());
        let response = http::send_bounded(client.get(url), 1024).await.unwrap();
        assert_eq!(response.body, b"hello");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
