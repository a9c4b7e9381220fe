//! The daemon as operators run it: the `bigbrotr-synchronizer` binary with YAML configs, an
//! onion relay reached through a SOCKS5 proxy, and a real SIGTERM in the middle of a batch. The
//! process must stop within its timeouts with the `--once` interrupted code, leave no cursor
//! ahead of the archive, and the next run must complete the archive.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bigbrotr_models::relay::Relay;
use bigbrotr_models::service_state::{Cursor, ServiceName, ServiceStateType};
use bigbrotr_testkit::TestDb;
use bigbrotr_testkit::relays::TestRelay;
use bigbrotr_testkit::socks::SocksProxy;
use nostr::{EventBuilder, Keys, Timestamp};
use nostr_relay_builder::prelude::RelayBuilder;

const ONION: &str = "2jsnlhfnelig5acq6iacydmzdbdmg7xwunm4xl6qwbvzacw4lwrjmlyd.onion";
const T0: u64 = 1_700_000_000;
const EVENTS: usize = 6000;

fn write_configs(dir: &Path, db: &TestDb, proxy: &SocksProxy) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let brotr = dir.join("brotr.yaml");
    // YAML is a superset of JSON.
    std::fs::write(&brotr, serde_json::to_string(&db.config()).unwrap()).unwrap();
    let service = dir.join("synchronizer.yaml");
    let config = serde_json::json!({
        "interval": 60,
        "metrics": {"enabled": false},
        "networks": {
            "clearnet": {"enabled": false},
            "tor": {"enabled": true, "proxy_url": proxy.url(), "max_tasks": 2, "timeout": 5}
        },
        // Two filters: the walk reads ascending windows and commits each as it completes, so
        // the SIGTERM comes after a committed window, in the middle of the next.
        "processing": {
            "filters": [{"kinds": [1]}, {"kinds": [7]}],
            "since": T0,
            "until": T0 + EVENTS as u64,
            "end_lag": 0,
            "limit": 500,
            "batch_size": 100
        }
    });
    std::fs::write(&service, config.to_string()).unwrap();
    (brotr, service)
}

fn start(brotr: &Path, service: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bigbrotr-synchronizer"))
        .arg("--config")
        .arg(service)
        .arg("--brotr-config")
        .arg(brotr)
        .arg("--once")
        .env("BIGBROTR_TEST_NO_PASSWORD", "trust")
        .env_remove("NOSTR_PRIVATE_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_exit(child: &mut Child, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "the daemon did not exit in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn archived(db: &TestDb) -> BTreeSet<Vec<u8>> {
    sqlx::query_scalar::<_, Vec<u8>>("SELECT event_id FROM event_relay")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn cursor(db: &TestDb, url: &str) -> Option<Cursor> {
    db.brotr()
        .get_service_state(ServiceName::Synchronizer, ServiceStateType::Cursor, None)
        .await
        .unwrap()
        .into_iter()
        .find(|(key, _)| key == url)
        .map(|(_, value)| Cursor::from_value(&value).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_batch_keeps_cursors_behind_the_archive_and_the_rerun_completes() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let events: Vec<nostr::Event> = (0..EVENTS)
        .map(|n| {
            EventBuilder::text_note(format!("note {n}"))
                .custom_created_at(Timestamp::from(T0 + (n / 2) as u64))
                .sign_with_keys(&keys)
                .unwrap()
        })
        .collect();
    let relay = TestRelay::seeded(RelayBuilder::default().max_filter_limit(50), &events).await;
    let proxy = SocksProxy::start(HashMap::from([(ONION.to_owned(), relay.address())])).await;
    let url = format!("ws://{ONION}");
    db.brotr()
        .insert_relays(&[Relay::new(&url, 1).unwrap()])
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("bigbrotr-sigterm-{:x}", rand::random::<u64>()));
    let (brotr, service) = write_configs(&dir, &db, &proxy);

    let mut child = start(&brotr, &service);
    let deadline = Instant::now() + Duration::from_secs(60);
    while cursor(&db, &url).await.is_none() {
        assert!(Instant::now() < deadline, "the daemon committed no window");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the daemon exited early"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Interrupted `--once` runs exit with 128 + SIGTERM.
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)).await, 143);

    let stored = archived(&db).await;
    assert!(stored.len() < EVENTS, "stopped before the end");
    let cursor_at = cursor(&db, &url)
        .await
        .expect("the window committed before the SIGTERM")
        .timestamp;
    assert!(
        cursor_at < (T0 + EVENTS as u64) as i64,
        "stopped before the end"
    );
    for event in &events {
        if event.created_at.as_secs() as i64 <= cursor_at {
            assert!(
                stored.contains(event.id.to_bytes().as_slice()),
                "the cursor ({cursor_at}) is past an unstored event"
            );
        }
    }

    let mut child = start(&brotr, &service);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(120)).await, 0);
    let expected: BTreeSet<Vec<u8>> = events.iter().map(|e| e.id.to_bytes().to_vec()).collect();
    assert_eq!(archived(&db).await, expected);
    assert_eq!(
        cursor(&db, &url).await.unwrap().timestamp,
        (T0 + EVENTS as u64) as i64
    );
    let _ = std::fs::remove_dir_all(dir);
}
