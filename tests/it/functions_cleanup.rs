//! Foreign-key lifecycle and cleanup (reference §1.2, §1.5, §3.2): ON DELETE CASCADE from relays,
//! events and documents, the batched orphan deletes (batch sizes below the orphan count), and the
//! facade's batch-size guard on every bulk call.

use bigbrotr_db::DbError;
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_db::service_state::StateKey;
use bigbrotr_models::event_relay::EventRelay;
use bigbrotr_models::metadata::MetadataType;
use bigbrotr_models::relay_metadata::RelayMetadata;
use bigbrotr_models::service_state::{ServiceName, ServiceState, ServiceStateType};
use bigbrotr_testkit::TestDb;
use nostr::Keys;
use serde_json::json;

use crate::dbkit::{count, doc, ev0, exec, insert_events, insert_relay, link, snapshot};
use crate::fixtures::{event, relay};

#[tokio::test]
async fn deleting_a_relay_removes_its_sightings_and_snapshots_but_not_events_or_documents() {
    let db = TestDb::new().await;
    let pool = db.pool();
    for url in ["wss://a.example.com", "wss://b.example.com"] {
        insert_relay(pool, url, "clearnet", 1).await;
    }
    let (e1, e2) = (ev0(1, 1, 10, 1), ev0(2, 1, 11, 1));
    insert_events(pool, &[e1.clone(), e2.clone()]).await;
    link(pool, &[&e1, &e2], "wss://a.example.com", 1).await;
    link(pool, &[&e1], "wss://b.example.com", 1).await;
    let d = doc(MetadataType::Nip11Info, json!({"name": "x"}));
    snapshot(pool, "wss://a.example.com", "clearnet", &d, 1).await;
    snapshot(pool, "wss://b.example.com", "clearnet", &d, 1).await;

    exec(pool, "DELETE FROM relay WHERE url = 'wss://a.example.com'").await;
    let left: Vec<(String, i64)> = sqlx::query_as(
        "SELECT relay_url, count(*) FROM (SELECT relay_url FROM event_relay UNION ALL
                                          SELECT relay_url FROM relay_metadata) s
         GROUP BY relay_url",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(left, [("wss://b.example.com".to_owned(), 2)]);
    assert_eq!(
        (count(pool, "event").await, count(pool, "metadata").await),
        (2, 1)
    );

    // Deleting an event removes its sightings; deleting a document removes its snapshots.
    exec(pool, "DELETE FROM event").await;
    assert_eq!(count(pool, "event_relay").await, 0);
    exec(pool, "DELETE FROM metadata").await;
    assert_eq!(count(pool, "relay_metadata").await, 0);
    assert_eq!(count(pool, "relay").await, 1, "the surviving relay stays");
}

/// (orphans, linked, batch size): batch sizes below, equal to, dividing and above the count.
const ORPHAN_CASES: [(u32, u32, i32); 7] = [
    (7, 3, 3),
    (6, 2, 3),
    (5, 1, 5),
    (5, 2, 100),
    (0, 2, 1),
    (1, 0, 1),
    (25, 4, 2),
];

#[tokio::test]
async fn orphan_event_delete_removes_exactly_the_unlinked_events_in_batches() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let pool = db.pool();
    for (orphans, linked, batch) in ORPHAN_CASES {
        exec(pool, "TRUNCATE relay, event CASCADE").await;
        insert_relay(pool, "wss://r.example.com", "clearnet", 1).await;
        let events: Vec<_> = (0..orphans + linked).map(|n| ev0(n, 1, 10, 1)).collect();
        insert_events(pool, &events).await;
        let kept: Vec<_> = events[orphans as usize..].iter().collect();
        link(pool, &kept, "wss://r.example.com", 1).await;
        let deleted = brotr.delete_orphan_events(batch).await.unwrap();
        assert_eq!(
            deleted,
            u64::from(orphans),
            "case {orphans}/{linked}/batch {batch}"
        );
        let left: Vec<Vec<u8>> = sqlx::query_scalar("SELECT id FROM event ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
        let want: Vec<Vec<u8>> = kept.iter().map(|e| e.id.clone()).collect();
        assert_eq!(
            left, want,
            "only linked events remain (case {orphans}/{linked}/{batch})"
        );
        assert_eq!(count(pool, "event_relay").await, i64::from(linked));
        assert_eq!(
            brotr.delete_orphan_events(batch).await.unwrap(),
            0,
            "nothing left to delete"
        );
    }
}

#[tokio::test]
async fn orphan_metadata_delete_removes_exactly_the_unreferenced_documents_in_batches() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let pool = db.pool();
    for (orphans, linked, batch) in ORPHAN_CASES {
        exec(pool, "TRUNCATE relay, metadata CASCADE").await;
        let docs: Vec<_> = (0..orphans + linked)
            .map(|n| doc(MetadataType::Nip66Rtt, json!({"rtt_open": n})))
            .collect();
        brotr.insert_metadata(&docs).await.unwrap();
        for (i, d) in docs[orphans as usize..].iter().enumerate() {
            snapshot(pool, "wss://r.example.com", "clearnet", d, i as i64).await;
        }
        // Same id as a referenced document but another type: not referenced on (id, type).
        if linked > 0 {
            let twin = bigbrotr_models::metadata::Metadata::new(
                MetadataType::Nip66Dns,
                docs[orphans as usize].data().clone(),
            )
            .unwrap();
            brotr.insert_metadata(&[twin]).await.unwrap();
        }
        let twins = u64::from(linked > 0);
        let deleted = brotr.delete_orphan_metadata(batch).await.unwrap();
        assert_eq!(
            deleted,
            u64::from(orphans) + twins,
            "case {orphans}/{linked}/batch {batch}"
        );
        let left: Vec<(Vec<u8>, String)> =
            sqlx::query_as("SELECT id, type FROM metadata ORDER BY id")
                .fetch_all(pool)
                .await
                .unwrap();
        let mut want: Vec<(Vec<u8>, String)> = docs[orphans as usize..]
            .iter()
            .map(|d| (d.id().to_vec(), "nip66_rtt".to_owned()))
            .collect();
        want.sort();
        assert_eq!(left, want, "only referenced (id, type) pairs remain");
    }
}

#[tokio::test]
async fn events_become_orphans_when_their_last_relay_goes() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let keys = Keys::generate();
    let shared = event(&keys, 1, 1, "on both relays", vec![]);
    let only_a = event(&keys, 1, 2, "only on a", vec![]);
    let (a, b) = (
        relay("wss://a.example.com", 1),
        relay("wss://b.example.com", 1),
    );
    let er = |e: &bigbrotr_models::event::Event, r: &bigbrotr_models::relay::Relay| EventRelay {
        event: e.clone(),
        relay: r.clone(),
        seen_at: 1,
    };
    brotr
        .insert_event_relays(&[er(&shared, &a), er(&shared, &b), er(&only_a, &a)], true)
        .await
        .unwrap();
    assert_eq!(
        brotr.delete_orphan_events(10).await.unwrap(),
        0,
        "no orphans yet"
    );
    exec(
        db.pool(),
        "DELETE FROM relay WHERE url = 'wss://a.example.com'",
    )
    .await;
    assert_eq!(brotr.delete_orphan_events(10).await.unwrap(), 1);
    let left: Vec<Vec<u8>> = sqlx::query_scalar("SELECT id FROM event")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(left, [shared.id().to_vec()]);
}

#[tokio::test]
async fn orphan_cleanup_needs_a_positive_batch_and_defaults_to_10000_in_sql() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let pool = db.pool();
    insert_events(pool, &[ev0(1, 1, 1, 1), ev0(2, 1, 1, 1)]).await;
    for batch in [0, -1] {
        let err = brotr.delete_orphan_events(batch).await.unwrap_err();
        assert!(matches!(err, DbError::Config(_)), "{err:?}");
        let err = brotr.delete_orphan_metadata(batch).await.unwrap_err();
        assert!(matches!(err, DbError::Config(_)), "{err:?}");
    }
    assert_eq!(
        count(pool, "event").await,
        2,
        "a refused call deletes nothing"
    );
    let n: i32 = sqlx::query_scalar("SELECT orphan_event_delete()")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let n: i32 = sqlx::query_scalar("SELECT orphan_metadata_delete()")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn every_bulk_call_rejects_a_batch_over_max_size_and_writes_nothing() {
    let db = TestDb::new().await;
    let mut config = BrotrConfig::default();
    config.batch.max_size = 2;
    let brotr = db.brotr_with(config);
    let keys = Keys::generate();
    let relays: Vec<_> = (0..3)
        .map(|i| relay(&format!("wss://r{i}.example.com"), 1))
        .collect();
    let events: Vec<_> = (0..3).map(|i| event(&keys, 1, i, "x", vec![])).collect();
    let sightings: Vec<EventRelay> = (0..3)
        .map(|i| EventRelay {
            event: events[i].clone(),
            relay: relays[i].clone(),
            seen_at: 1,
        })
        .collect();
    let docs: Vec<_> = (0..3)
        .map(|i| doc(MetadataType::Nip66Rtt, json!({"rtt_open": i})))
        .collect();
    let snapshots: Vec<RelayMetadata> = (0..3)
        .map(|i| RelayMetadata {
            relay: relays[i].clone(),
            metadata: docs[i].clone(),
            generated_at: 1,
        })
        .collect();
    let states: Vec<ServiceState> = (0..3)
        .map(|i| {
            ServiceState::new(
                ServiceName::Finder,
                ServiceStateType::Cursor,
                format!("k{i}"),
                json!({"timestamp": i}),
            )
            .unwrap()
        })
        .collect();
    let keys3: Vec<StateKey> = states
        .iter()
        .map(|s| StateKey {
            service_name: s.service_name(),
            state_type: s.state_type(),
            state_key: s.state_key().to_owned(),
        })
        .collect();

    let too_large = |result: Result<u64, DbError>, what: &str| match result {
        Err(DbError::BatchTooLarge { size: 3, max: 2 }) => {}
        other => panic!("{what}: expected BatchTooLarge {{ size: 3, max: 2 }}, got {other:?}"),
    };
    too_large(brotr.insert_relays(&relays).await, "insert_relays");
    too_large(brotr.insert_events(&events).await, "insert_events");
    too_large(
        brotr.insert_event_relays(&sightings, true).await,
        "insert_event_relays cascade",
    );
    too_large(
        brotr.insert_event_relays(&sightings, false).await,
        "insert_event_relays",
    );
    too_large(brotr.insert_metadata(&docs).await, "insert_metadata");
    too_large(
        brotr.insert_relay_metadata(&snapshots, true).await,
        "insert_relay_metadata cascade",
    );
    too_large(
        brotr.insert_relay_metadata(&snapshots, false).await,
        "insert_relay_metadata",
    );
    too_large(
        brotr.upsert_service_state(&states).await,
        "upsert_service_state",
    );
    too_large(
        brotr.delete_service_state(&keys3).await,
        "delete_service_state",
    );
    too_large(
        brotr.insert_candidates(&relays, 1).await,
        "insert_candidates",
    );
    for table in [
        "relay",
        "event",
        "event_relay",
        "metadata",
        "relay_metadata",
        "service_state",
    ] {
        assert_eq!(
            count(db.pool(), table).await,
            0,
            "{table} after refused batches"
        );
    }
    // Exactly max_size is accepted.
    assert_eq!(
        brotr
            .insert_event_relays(&sightings[..2], true)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        brotr
            .insert_relay_metadata(&snapshots[..2], true)
            .await
            .unwrap(),
        2
    );
    assert_eq!(brotr.upsert_service_state(&states[..2]).await.unwrap(), 2);
    assert_eq!(brotr.delete_service_state(&keys3[..2]).await.unwrap(), 2);
    // Empty batches are no-ops.
    assert_eq!(brotr.insert_events(&[]).await.unwrap(), 0);
    assert_eq!(brotr.upsert_service_state(&[]).await.unwrap(), 0);
}
