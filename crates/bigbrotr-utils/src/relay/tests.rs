//! Tests of the relay connector and the probe against real relays on loopback: rust-nostr's
//! in-process relay behind a TLS front, NIP-42 relays, hostile peers, and an observable SOCKS5
//! proxy standing in for Tor.

use std::collections::HashMap;
use std::time::Duration;

use bigbrotr_models::relay::Relay;
use bigbrotr_testkit::relays::{HostilePeer, Hostility, TestCa, TestRelay, TlsFront};
use bigbrotr_testkit::socks::SocksProxy;
use nostr_sdk::prelude::{Filter, Keys, Kind};
use tokio::time::Instant;

use super::probe::{Evidence, ProbeError, probe};
use super::*;
use crate::network::NetworkConfig;

const ONION: &str = "ws://2jsnlhfnelig5acq6iacydmzdbdmg7xwunm4xl6qwbvzacw4lwrjmlyd.onion";

/// The clearnet settings of the tests: their relays are on loopback.
fn networks(timeout: f64) -> NetworksConfig {
    let mut networks = NetworksConfig::default();
    networks.clearnet.timeout = timeout;
    networks.clearnet.allow_private = true;
    networks
}

fn relay(url: &str) -> Relay {
    Relay::new(url, 0).unwrap()
}

/// A relay behind TLS, reachable as `wss://<host>` through a resolve override.
struct Secured {
    _relay: TestRelay,
    _front: TlsFront,
    ca: TestCa,
    host: &'static str,
    front: std::net::SocketAddr,
}

async fn secured(host: &'static str, auth: bool) -> Secured {
    let relay = if auth {
        TestRelay::with_auth().await
    } else {
        TestRelay::start().await
    };
    let ca = TestCa::new();
    let front = TlsFront::start(ca.server_config(&[host]), relay.address()).await;
    Secured {
        front: front.address(),
        _relay: relay,
        _front: front,
        ca,
        host,
    }
}

impl Secured {
    fn connector(&self, timeout: f64, trust: bool) -> Connector {
        let connector = Connector::new(networks(timeout))
            .unwrap()
            .resolve(self.host, self.front);
        if trust {
            connector.with_root_certificate(self.ca.der()).unwrap()
        } else {
            connector
        }
    }

    fn relay(&self) -> Relay {
        relay(&format!("wss://{}", self.host))
    }
}

#[tokio::test]
async fn a_trusted_relay_answers_eose_and_serves_events() {
    let s = secured("relay-a.example.com", false).await;
    let connector = s.connector(5.0, true);
    assert_eq!(probe(&connector, &s.relay()).await, Ok(Evidence::Eose));

    let connection = connector.connect(&s.relay()).await.unwrap();
    assert!(!connection.insecure());
    let keys = Keys::generate();
    let event = nostr_sdk::EventBuilder::text_note("hello")
        .sign_with_keys(&keys)
        .unwrap();
    connection.relay().send_event(&event).await.unwrap();
    let events = connection
        .relay()
        .fetch_events(
            Filter::new().kind(Kind::TextNote),
            Duration::from_secs(5),
            nostr_sdk::prelude::ReqExitPolicy::ExitOnEOSE,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    connection.shutdown().await;
    // With an event stored, the probe's evidence is that event.
    assert_eq!(probe(&connector, &s.relay()).await, Ok(Evidence::Event));
}

#[tokio::test]
async fn an_untrusted_certificate_needs_allow_insecure() {
    let s = secured("relay-b.example.com", false).await;
    let strict = s.connector(5.0, false);
    match strict.connect(&s.relay()).await {
        Err(ConnectError::Certificate(text)) => assert!(text.contains("certificate"), "{text}"),
        other => panic!("expected a certificate error, got {other:?}"),
    }
    let probe_error = probe(&strict, &s.relay()).await.unwrap_err();
    assert!(matches!(
        probe_error,
        ProbeError::Connect(ConnectError::Certificate(_))
    ));

    let lenient = s.connector(5.0, false).allow_insecure(true);
    let connection = lenient.connect(&s.relay()).await.unwrap();
    assert!(connection.insecure());
    connection.shutdown().await;
    assert_eq!(probe(&lenient, &s.relay()).await, Ok(Evidence::Eose));
}

#[tokio::test]
async fn a_relay_that_requires_auth_is_valid_and_keys_answer_the_challenge() {
    let s = secured("relay-c.example.com", true).await;
    let connector = s.connector(5.0, true);
    assert_eq!(
        probe(&connector, &s.relay()).await,
        Ok(Evidence::AuthRequired)
    );

    // With keys, nostr-sdk authenticates and the REQ is served.
    let with_keys = connector.with_keys(Some(Keys::generate()));
    let connection = with_keys.connect(&s.relay()).await.unwrap();
    let events = connection
        .relay()
        .fetch_events(
            Filter::new().kind(Kind::TextNote).limit(1),
            Duration::from_secs(5),
            nostr_sdk::prelude::ReqExitPolicy::ExitOnEOSE,
        )
        .await;
    assert!(events.is_ok(), "{events:?}");
    connection.shutdown().await;
}

async fn hostile(hostility: Hostility, tls: bool) -> (Result<Evidence, ProbeError>, Duration) {
    let peer = HostilePeer::start(hostility).await;
    let ca = TestCa::new();
    let host = "hostile.example.com";
    let front = TlsFront::start(ca.server_config(&[host]), peer.address()).await;
    let target = if tls { front.address() } else { peer.address() };
    let connector = Connector::new(networks(1.0))
        .unwrap()
        .resolve(host, target)
        .with_root_certificate(ca.der())
        .unwrap();
    let started = Instant::now();
    let outcome = probe(&connector, &relay(&format!("wss://{host}"))).await;
    (outcome, started.elapsed())
}

#[tokio::test]
async fn hostile_peers_fail_within_the_timeout() {
    let cases = [
        (Hostility::SilentSocket, false),
        (Hostility::SilentSocket, true),
        (Hostility::NotHttp, false),
        (Hostility::NotHttp, true),
        (Hostility::SilentRelay, true),
        (Hostility::DropOnRequest, true),
        (Hostility::Garbage, true),
        (Hostility::Flood, true),
    ];
    for (hostility, tls) in cases {
        let (outcome, elapsed) = hostile(hostility, tls).await;
        assert!(
            outcome.is_err(),
            "{hostility:?} (tls {tls}) was judged a relay"
        );
        // A one-second budget; the margin only absorbs scheduling on a loaded machine.
        assert!(
            elapsed < Duration::from_millis(2500),
            "{hostility:?} (tls {tls}) took {elapsed:?}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn a_closed_port_fails_fast() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let connector = Connector::new(networks(5.0))
        .unwrap()
        .resolve("dead.example.com", port);
    let started = Instant::now();
    let error = probe(&connector, &relay("wss://dead.example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProbeError::Connect(ConnectError::Connect(_))),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn tor_networks(proxy: Option<String>) -> NetworksConfig {
    let mut networks = networks(5.0);
    networks.tor = NetworkConfig {
        enabled: true,
        proxy_url: proxy,
        max_tasks: 2,
        timeout: 5.0,
        allow_private: false,
    };
    networks
}

#[tokio::test]
async fn overlay_relays_go_through_the_proxy_and_clearnet_does_not() {
    let onion_relay = TestRelay::start().await;
    let onion_host = ONION.trim_start_matches("ws://").to_owned();
    let proxy =
        SocksProxy::start(HashMap::from([(onion_host.clone(), onion_relay.address())])).await;
    let s = secured("relay-d.example.com", false).await;
    let connector = Connector::new(tor_networks(Some(proxy.url())))
        .unwrap()
        .resolve(s.host, s.front)
        .with_root_certificate(s.ca.der())
        .unwrap();

    assert_eq!(probe(&connector, &relay(ONION)).await, Ok(Evidence::Eose));
    assert_eq!(probe(&connector, &s.relay()).await, Ok(Evidence::Eose));
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].starts_with(&onion_host), "{requests:?}");
}

#[tokio::test]
async fn an_overlay_without_proxy_or_a_disabled_network_is_refused() {
    let connector = Connector::new(tor_networks(None)).unwrap();
    assert!(matches!(
        connector.connect(&relay(ONION)).await,
        Err(ConnectError::Network(NetworkError::ProxyRequired(_)))
    ));
    let connector = Connector::new(networks(5.0)).unwrap();
    assert!(matches!(
        connector.connect(&relay(ONION)).await,
        Err(ConnectError::Network(NetworkError::Disabled(_)))
    ));
}

#[test]
fn certificate_errors_are_rustls_certificate_errors_in_the_chain() {
    use rustls::{CertificateError, Error as Tls};
    use std::io;
    let rejected = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            Tls::InvalidCertificate(CertificateError::UnknownIssuer),
        )
    };
    // As tokio-rustls reports it, and as tungstenite wraps that.
    assert!(is_certificate_error(&rejected()));
    assert!(is_certificate_error(
        &tokio_tungstenite::tungstenite::Error::Io(rejected())
    ));
    assert!(is_certificate_error(&Tls::InvalidCertificate(
        CertificateError::NotValidForName
    )));
    // A reset, an alert, a protocol error: whatever their wording.
    assert!(!is_certificate_error(&io::Error::from(
        io::ErrorKind::ConnectionReset
    )));
    assert!(!is_certificate_error(&io::Error::other(
        "TLS handshake failure: bad certificate (ssl)"
    )));
    assert!(!is_certificate_error(&Tls::AlertReceived(
        rustls::AlertDescription::HandshakeFailure
    )));
}

/// A relay that accepts every AUTH and at once asks again, and refuses everything without AUTH,
/// behind a TLS front.
async fn endless_auth() -> (HostilePeer, TlsFront, Connector, Relay, Keys) {
    let peer = HostilePeer::start(Hostility::EndlessAuth).await;
    let ca = TestCa::new();
    let host = "endless.example.com";
    let front = TlsFront::start(ca.server_config(&[host]), peer.address()).await;
    let keys = Keys::generate();
    let connector = Connector::new(networks(5.0))
        .unwrap()
        .resolve(host, front.address())
        .with_root_certificate(ca.der())
        .unwrap()
        .with_keys(Some(keys.clone()));
    (
        peer,
        front,
        connector,
        relay(&format!("wss://{host}")),
        keys,
    )
}

#[tokio::test]
async fn a_session_signs_at_most_two_auth_events_for_a_relay_that_never_stops_asking() {
    let (peer, _front, connector, relay, keys) = endless_auth().await;
    let mut session = connector.open_session(&relay).await.unwrap();
    let started = Instant::now();
    let error = session
        .query(&Filter::new().limit(1), Duration::from_secs(5), 10)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    // Refused again after an accepted AUTH.
    assert_eq!(error.reason(), "auth", "{error:?}");
    assert!(
        elapsed < Duration::from_secs(1),
        "a recorded failure, not the 5 s wait: {elapsed:?}"
    );
    // The write path meets the bound: the session's two AUTH events are spent, the relay's
    // third challenge stays unanswered and the refused EVENT fails at once.
    let note = nostr_sdk::prelude::EventBuilder::text_note("x")
        .sign_with_keys(&keys)
        .unwrap();
    let error = session
        .publish(&note, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        session::SessionError::AuthLimit(session::MAX_AUTH_PER_SESSION)
    );
    assert_eq!(session.auth_sent(), session::MAX_AUTH_PER_SESSION);
    session.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(peer.auth_messages(), session::MAX_AUTH_PER_SESSION);
}

#[tokio::test]
async fn a_nostr_sdk_connection_signs_at_most_two_auth_events_too() {
    let (peer, _front, connector, relay, _) = endless_auth().await;
    let connection = connector.connect(&relay).await.unwrap();
    // nostr-sdk authenticates and resubscribes on its own; give it time to loop.
    let _ = connection
        .query(Filter::new().kind(Kind::TextNote), Duration::from_secs(2))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = peer.auth_messages();
    connection.shutdown().await;
    assert!(
        (1..=session::MAX_AUTH_PER_SESSION).contains(&sent),
        "{sent} AUTH events"
    );
}

#[test]
fn auth_challenges_are_recognised_as_a_parser_reads_them() {
    use super::transport::is_auth_challenge;
    assert!(is_auth_challenge(r#"["AUTH","abc"]"#));
    assert!(is_auth_challenge(" [ \"AUTH\" , \"abc\" ]"));
    assert!(is_auth_challenge(r#"["\u0041UTH","abc"]"#));
    assert!(!is_auth_challenge(r#"["EVENT","AUTH",{}]"#));
    assert!(!is_auth_challenge(r#"["AUTHX","abc"]"#));
    assert!(!is_auth_challenge(r#"["N\u004fTICE","AUTH"]"#));
    assert!(!is_auth_challenge("not json"));
    assert!(!is_auth_challenge(r#"["AUTH"#));
}

/// Issue 16: certificate errors are recognised by rustls' typed error, not by words in a
/// message. A TLS handshake the peer cuts short ("tls handshake eof", or a reset) is a
/// connection failure: no insecure retry (one connection per attempt), and never reported as a
/// rejected certificate.
#[tokio::test]
async fn a_cut_handshake_is_a_connection_failure_not_a_certificate_error() {
    for reset in [false, true] {
        for allow_insecure in [false, true] {
            let peer = HostilePeer::start(Hostility::CutHandshake { reset }).await;
            let connector = Connector::new(networks(5.0))
                .unwrap()
                .resolve("cut.example.com", peer.address())
                .allow_insecure(allow_insecure);
            let relay = relay("wss://cut.example.com");
            let case = format!("reset {reset}, allow_insecure {allow_insecure}");
            let connect = connector.connect(&relay).await.unwrap_err();
            assert!(
                matches!(connect, ConnectError::Connect(_)),
                "{case}: {connect:?}"
            );
            let session = connector.open_session(&relay).await.unwrap_err();
            assert!(
                matches!(session, ConnectError::Connect(_)),
                "{case}: {session:?}"
            );
            assert_eq!(
                peer.connections(),
                2,
                "{case}: one connection each, no retry"
            );
        }
    }
}

#[tokio::test]
async fn a_session_retries_an_untrusted_certificate_only_with_allow_insecure() {
    let s = secured("relay-session.example.com", false).await;
    match s.connector(5.0, false).open_session(&s.relay()).await {
        Err(ConnectError::Certificate(text)) => assert!(text.contains("UnknownIssuer"), "{text}"),
        other => panic!("expected a certificate error, got {other:?}"),
    }
    let session = s
        .connector(5.0, false)
        .allow_insecure(true)
        .open_session(&s.relay())
        .await
        .unwrap();
    assert!(session.insecure());
    session.close().await;
}
