//! The validator end to end: real relays on loopback (TLS-fronted in-process relays, a NIP-42
//! relay, a Tor relay behind an observable SOCKS5 proxy, dead and silent peers) and a real
//! database. Valid candidates are promoted, invalid ones accumulate failures, wait out the
//! retry interval and are cleaned up at the cap.

use std::collections::HashMap;

use bigbrotr_core::metrics::Metrics;
use bigbrotr_core::runner::Context;
use bigbrotr_models::service_state::{
    CandidateRecord, ServiceName, ServiceState, ServiceStateType,
};
use bigbrotr_testkit::TestDb;
use bigbrotr_testkit::relays::{HostilePeer, Hostility, TestCa, TestRelay, TlsFront};
use bigbrotr_testkit::socks::SocksProxy;
use bigbrotr_utils::network::{NetworkConfig, NetworksConfig};
use bigbrotr_utils::relay::Connector;
use bigbrotr_validator::{CleanupConfig, ProcessingConfig, Validator, ValidatorConfig};
use tokio_util::sync::CancellationToken;

use crate::fixtures::relay;

const ONION: &str = "ws://2jsnlhfnelig5acq6iacydmzdbdmg7xwunm4xl6qwbvzacw4lwrjmlyd.onion";
const LOST_ONION: &str = "ws://xyz7lhfnelig5acq6iacydmzdbdmg7xwunm4xl6qwbvzacw4lwrjmlyd.onion";

pub(crate) fn context(db: &TestDb, service: &str) -> Context {
    Context {
        brotr: db.brotr(),
        metrics: Metrics::new(service),
        shutdown: CancellationToken::new(),
    }
}

/// The loopback network the tests validate: every peer kept alive for the test's duration.
pub(crate) struct Peers {
    _keep: Vec<Box<dyn std::any::Any + Send>>,
    pub(crate) connector: Connector,
    pub(crate) networks: NetworksConfig,
    pub(crate) proxy: SocksProxy,
}

/// Clearnet names for live relays (`live-N.example.com`), an AUTH relay, dead ports, silent
/// sockets, and one onion relay behind a SOCKS5 proxy.
pub(crate) async fn peers(live: usize, dead: usize, silent: usize, timeout: f64) -> Peers {
    let ca = TestCa::new();
    let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    let mut resolve = Vec::new();
    for i in 0..live {
        let host = format!("live-{i}.example.com");
        let relay = TestRelay::start().await;
        let front = TlsFront::start(ca.server_config(&[&host]), relay.address()).await;
        resolve.push((host, front.address()));
        keep.push(Box::new(relay));
        keep.push(Box::new(front));
    }
    let auth = TestRelay::with_auth().await;
    let front = TlsFront::start(ca.server_config(&["auth.example.com"]), auth.address()).await;
    resolve.push(("auth.example.com".to_owned(), front.address()));
    keep.push(Box::new(auth));
    keep.push(Box::new(front));
    for i in 0..dead {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        resolve.push((
            format!("dead-{i}.example.com"),
            closed.local_addr().unwrap(),
        ));
    }
    for i in 0..silent {
        let peer = HostilePeer::start(Hostility::SilentSocket).await;
        resolve.push((format!("silent-{i}.example.com"), peer.address()));
        keep.push(Box::new(peer));
    }
    let onion = TestRelay::start().await;
    let onion_host = ONION.trim_start_matches("ws://").to_owned();
    let proxy = SocksProxy::start(HashMap::from([(onion_host, onion.address())])).await;
    keep.push(Box::new(onion));

    let mut networks = NetworksConfig::default();
    networks.clearnet.timeout = timeout;
    // The test relays are on loopback.
    networks.clearnet.allow_private = true;
    networks.tor = NetworkConfig {
        enabled: true,
        proxy_url: Some(proxy.url()),
        max_tasks: 5,
        timeout,
        allow_private: false,
    };
    let mut connector = Connector::new(networks.clone())
        .unwrap()
        .with_root_certificate(ca.der())
        .unwrap();
    for (host, address) in resolve {
        connector = connector.resolve(&host, address);
    }
    Peers {
        _keep: keep,
        connector,
        networks,
        proxy,
    }
}

fn validator(peers: &Peers, processing: ProcessingConfig, cleanup: CleanupConfig) -> Validator {
    let config = ValidatorConfig {
        processing,
        cleanup,
        networks: peers.networks.clone(),
        ..Default::default()
    };
    Validator::new(config, peers.connector.clone())
}

async fn candidates(db: &TestDb) -> HashMap<String, CandidateRecord> {
    db.brotr()
        .get_service_state(ServiceName::Validator, ServiceStateType::Checkpoint, None)
        .await
        .unwrap()
        .into_iter()
        .map(|(url, value)| (url, CandidateRecord::from_value(&value).unwrap()))
        .collect()
}

#[tokio::test]
async fn valid_candidates_are_promoted_and_invalid_ones_fail_until_cleaned_up() {
    let db = TestDb::new().await;
    let ctx = context(&db, "validator");
    let peers = peers(2, 1, 1, 1.0).await;
    let urls = [
        "wss://live-0.example.com",
        "wss://live-1.example.com",
        "wss://auth.example.com",
        "wss://dead-0.example.com",
        "wss://silent-0.example.com",
        ONION,
        LOST_ONION,
    ];
    let now = bigbrotr_core::clock::now();
    let relays: Vec<_> = urls.iter().map(|u| relay(u, now)).collect();
    db.brotr()
        .insert_candidates(&relays, now - 10)
        .await
        .unwrap();

    let processing = ProcessingConfig {
        chunk_size: 10,
        ..Default::default()
    };
    let v = validator(&peers, processing.clone(), CleanupConfig::default());
    let report = v.validate_candidates(&ctx).await.unwrap();
    assert_eq!((report.due, report.probed), (7, 7));
    assert_eq!((report.promoted, report.failed), (4, 3));

    let mut stored = db.brotr().relay_urls().await.unwrap();
    stored.sort();
    let mut expected = vec![
        "wss://auth.example.com".to_owned(),
        "wss://live-0.example.com".to_owned(),
        "wss://live-1.example.com".to_owned(),
        ONION.to_owned(),
    ];
    expected.sort();
    assert_eq!(stored, expected);
    let left = candidates(&db).await;
    assert_eq!(left.len(), 3);
    for url in [
        "wss://dead-0.example.com",
        "wss://silent-0.example.com",
        LOST_ONION,
    ] {
        assert_eq!(left[url].failures, 1, "{url}");
        assert!(left[url].timestamp >= now, "{url}");
    }
    // The onion relays went through the proxy; clearnet did not.
    let proxied = peers.proxy.requests();
    assert_eq!(proxied.len(), 2, "{proxied:?}");
    assert!(proxied.iter().all(|r| r.contains(".onion")), "{proxied:?}");

    // Within the retry interval nothing is due.
    let again = v.validate_candidates(&ctx).await.unwrap();
    assert_eq!((again.due, again.probed), (0, 0));

    // With no retry interval the failures are retried and counted again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let eager = validator(
        &peers,
        ProcessingConfig {
            interval: 0.0,
            ..processing.clone()
        },
        CleanupConfig {
            enabled: true,
            max_failures: 2,
        },
    );
    let retried = eager.validate_candidates(&ctx).await.unwrap();
    assert_eq!((retried.probed, retried.failed), (3, 3));
    assert!(candidates(&db).await.values().all(|c| c.failures == 2));

    // A candidate that is already a relay, and the ones at the cap, are cleaned up.
    let promoted = ServiceState::candidate(
        "wss://live-0.example.com",
        &CandidateRecord {
            network: bigbrotr_models::relay::NetworkType::Clearnet,
            failures: 0,
            timestamp: now,
        },
    )
    .unwrap();
    db.brotr().upsert_service_state(&[promoted]).await.unwrap();
    assert_eq!(eager.cleanup_candidates(&ctx).await.unwrap(), (1, 3));
    assert!(candidates(&db).await.is_empty());
}

#[tokio::test]
async fn order_budget_and_disabled_networks() {
    let db = TestDb::new().await;
    let ctx = context(&db, "validator");
    let mut peers = peers(1, 2, 0, 1.0).await;
    let now = bigbrotr_core::clock::now();
    let records = [
        ("wss://dead-0.example.com", 3, now - 7200),
        ("wss://dead-1.example.com", 0, now - 100),
        ("wss://live-0.example.com", 1, now - 7200),
        (ONION, 0, now - 50),
    ];
    let states: Vec<ServiceState> = records
        .iter()
        .map(|(url, failures, timestamp)| {
            let network = relay(url, 0).network();
            ServiceState::candidate(
                url,
                &CandidateRecord {
                    network,
                    failures: *failures,
                    timestamp: *timestamp,
                },
            )
            .unwrap()
        })
        .collect();
    db.brotr().upsert_service_state(&states).await.unwrap();

    // Tor disabled: the onion candidate is not due. Budget 2: the two with the fewest failures.
    peers.networks.tor.enabled = false;
    let v = validator(
        &peers,
        ProcessingConfig {
            chunk_size: 10,
            max_candidates: Some(2),
            ..Default::default()
        },
        CleanupConfig::default(),
    );
    let report = v.validate_candidates(&ctx).await.unwrap();
    assert_eq!(report.due, 3);
    assert_eq!(report.probed, 2);
    let left = candidates(&db).await;
    // dead-1 (0 failures) then live-0 (1 failure) were taken; dead-0 (3 failures) waits.
    assert_eq!(left["wss://dead-1.example.com"].failures, 1);
    assert!(!left.contains_key("wss://live-0.example.com"));
    assert_eq!(left["wss://dead-0.example.com"].failures, 3);
    assert_eq!(left[ONION].failures, 0);
    assert!(peers.proxy.requests().is_empty());
}

#[tokio::test]
async fn a_corrupt_candidate_is_a_failure_not_a_crash() {
    let db = TestDb::new().await;
    let ctx = context(&db, "validator");
    let peers = peers(0, 1, 0, 1.0).await;
    sqlx::query(
        "INSERT INTO service_state VALUES
         ('validator','checkpoint','wss://not a url','{\"network\":\"clearnet\",\"failures\":\"x\"}'),
         ('validator','checkpoint','wss://dead-0.example.com','{\"network\":\"clearnet\",\"failures\":1e30,\"timestamp\":-5}')",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let v = validator(
        &peers,
        ProcessingConfig::default(),
        CleanupConfig::default(),
    );
    let report = v.validate_candidates(&ctx).await.unwrap();
    assert_eq!((report.probed, report.failed), (2, 2));
    let left = candidates(&db).await;
    assert_eq!(left["wss://not a url"].failures, 1);
    assert_eq!(left["wss://dead-0.example.com"].failures, 2_147_483_648);
}

fn replica(peers: &Peers, id: &str) -> Validator {
    let config = ValidatorConfig {
        processing: ProcessingConfig {
            chunk_size: 10,
            ..Default::default()
        },
        networks: peers.networks.clone(),
        replica: bigbrotr_core::replica::ReplicaConfig {
            id: Some(id.to_owned()),
            lease_ttl: 2.0,
        },
        ..Default::default()
    };
    Validator::new(config, peers.connector.clone())
}

/// Two replicas on one database share the due candidates: each is probed once, by one of them
/// (a candidate probed twice would have two failures), and both together do the whole work.
#[tokio::test]
async fn two_replicas_probe_every_candidate_once() {
    let db = TestDb::new().await;
    let peers = peers(3, 4, 3, 1.0).await;
    let mut urls: Vec<String> = (0..3)
        .map(|i| format!("wss://live-{i}.example.com"))
        .collect();
    urls.extend((0..4).map(|i| format!("wss://dead-{i}.example.com")));
    urls.extend((0..3).map(|i| format!("wss://silent-{i}.example.com")));
    let now = bigbrotr_core::clock::now();
    let relays: Vec<_> = urls.iter().map(|u| relay(u, now)).collect();
    db.brotr()
        .insert_candidates(&relays, now - 10)
        .await
        .unwrap();
    let (a, b) = (replica(&peers, "a"), replica(&peers, "b"));
    let (ctx_a, ctx_b) = (context(&db, "validator"), context(&db, "validator"));
    let (ra, rb) = tokio::join!(a.validate_candidates(&ctx_a), b.validate_candidates(&ctx_b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.probed + rb.probed, 10, "{ra:?} {rb:?}");
    assert_eq!(ra.promoted + rb.promoted, 3);
    assert_eq!(ra.failed + rb.failed, 7);
    let left = candidates(&db).await;
    assert_eq!(left.len(), 7);
    assert!(left.values().all(|c| c.failures == 1), "{left:?}");
}

/// A replica that died holding candidates (its leases no longer renewed) leaves them to the
/// others once its leases expire: the cycle waits for them, probes them, and finishes.
#[tokio::test]
async fn candidates_held_by_a_dead_replica_are_taken_over_after_its_lease() {
    use bigbrotr_db::lease::LeaseHolder;
    let db = TestDb::new().await;
    let peers = peers(2, 2, 0, 1.0).await;
    let urls = [
        "wss://live-0.example.com",
        "wss://live-1.example.com",
        "wss://dead-0.example.com",
        "wss://dead-1.example.com",
    ];
    let now = bigbrotr_core::clock::now();
    let relays: Vec<_> = urls.iter().map(|u| relay(u, now)).collect();
    db.brotr()
        .insert_candidates(&relays, now - 10)
        .await
        .unwrap();
    // The dead replica claimed two of them with a 2 s lease, and then nothing more.
    let brotr = db.brotr();
    let dead = LeaseHolder::new(ServiceName::Validator, "dead").unwrap();
    let held = vec![urls[0].to_owned(), urls[2].to_owned()];
    let start = brotr.lease_clock().await.unwrap();
    let claimed = brotr
        .lease_acquire(&dead, &held, std::time::Duration::from_secs(2), 10, start)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);

    let started = std::time::Instant::now();
    let report = replica(&peers, "survivor")
        .validate_candidates(&context(&db, "validator"))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!((report.probed, report.promoted, report.failed), (4, 2, 2));
    assert!(
        took >= std::time::Duration::from_millis(1500) && took < std::time::Duration::from_secs(10),
        "waited for the dead replica's leases: {took:?}"
    );
    let mut stored = brotr.relay_urls().await.unwrap();
    stored.sort();
    assert_eq!(
        stored,
        ["wss://live-0.example.com", "wss://live-1.example.com"]
    );
    assert!(candidates(&db).await.values().all(|c| c.failures == 1));
}
