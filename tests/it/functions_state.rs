//! service_state (reference §1.4, §2.5): upsert as a full replace with in-batch dedup, get by
//! key or all keys in key order, scoped delete, the column default, and validator candidates.

use bigbrotr_db::service_state::StateKey;
use bigbrotr_models::service_state::{ServiceName, ServiceState, ServiceStateType};
use bigbrotr_testkit::TestDb;
use serde_json::{Value, json};

use crate::dbkit::{count, exec};
use crate::fixtures::relay;

fn state(name: ServiceName, ty: ServiceStateType, key: &str, value: Value) -> ServiceState {
    ServiceState::new(name, ty, key, value).expect("valid service state")
}

fn key(name: ServiceName, ty: ServiceStateType, key: &str) -> StateKey {
    StateKey {
        service_name: name,
        state_type: ty,
        state_key: key.to_owned(),
    }
}

use ServiceName::{Finder, Monitor, Synchronizer, Validator};
use ServiceStateType::{Checkpoint, Cursor};

#[tokio::test]
async fn upsert_then_get_one_key_or_all_keys_in_key_order() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let records = [
        state(
            Finder,
            Cursor,
            "wss://c.example.com",
            json!({"timestamp": 3, "id": "c".repeat(64)}),
        ),
        state(
            Finder,
            Cursor,
            "wss://a.example.com",
            json!({"timestamp": 1, "id": "a".repeat(64)}),
        ),
        state(
            Finder,
            Cursor,
            "wss://b.example.com",
            json!({"timestamp": 2, "id": "b".repeat(64)}),
        ),
        // Same key under another type and another service: separate rows, not returned below.
        state(
            Finder,
            Checkpoint,
            "wss://a.example.com",
            json!({"timestamp": 100}),
        ),
        state(
            Monitor,
            Cursor,
            "wss://a.example.com",
            json!({"timestamp": 200}),
        ),
    ];
    assert_eq!(brotr.upsert_service_state(&records).await.unwrap(), 5);
    let all = brotr.get_service_state(Finder, Cursor, None).await.unwrap();
    let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "wss://a.example.com",
            "wss://b.example.com",
            "wss://c.example.com"
        ]
    );
    assert_eq!(all[1].1, json!({"timestamp": 2, "id": "b".repeat(64)}));
    let one = brotr
        .get_service_state(Finder, Checkpoint, Some("wss://a.example.com"))
        .await
        .unwrap();
    assert_eq!(
        one,
        [("wss://a.example.com".to_owned(), json!({"timestamp": 100}))]
    );
    let missing = brotr
        .get_service_state(Finder, Checkpoint, Some("wss://zzz.example.com"))
        .await
        .unwrap();
    assert!(missing.is_empty());
    assert!(
        brotr
            .get_service_state(Validator, Checkpoint, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn upsert_replaces_the_whole_value() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let k = "wss://r.example.com";
    brotr
        .upsert_service_state(&[state(
            Validator,
            Checkpoint,
            k,
            json!({"network": "clearnet", "failures": 2, "timestamp": 5}),
        )])
        .await
        .unwrap();
    // An update counts as a written row and drops keys absent from the new value (no merge).
    let n = brotr
        .upsert_service_state(&[state(Validator, Checkpoint, k, json!({"failures": 3}))])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let got = brotr
        .get_service_state(Validator, Checkpoint, Some(k))
        .await
        .unwrap();
    assert_eq!(got, [(k.to_owned(), json!({"failures": 3}))]);
    assert_eq!(count(db.pool(), "service_state").await, 1);
}

#[tokio::test]
async fn duplicate_keys_in_one_batch_are_deduplicated_not_an_error() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let k = "wss://dup.example.com";
    let batch = [
        state(Monitor, Checkpoint, k, json!({"timestamp": 1})),
        state(Monitor, Checkpoint, "announcement", json!({"timestamp": 7})),
        state(Monitor, Checkpoint, k, json!({"timestamp": 2})),
    ];
    // Without DISTINCT ON, ON CONFLICT DO UPDATE would fail with "cannot affect row a second time".
    assert_eq!(brotr.upsert_service_state(&batch).await.unwrap(), 2);
    let got = brotr
        .get_service_state(Monitor, Checkpoint, Some(k))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    // The stored function keeps an arbitrary duplicate (DISTINCT ON without ORDER BY); the
    // facade deduplicates first so that the last value of a key wins.
    assert_eq!(got[0].1, json!({"timestamp": 2}), "{got:?}");
    assert_eq!(count(db.pool(), "service_state").await, 2);
}

#[tokio::test]
async fn the_last_duplicate_wins_in_large_batches() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let batch: Vec<_> = (0..100)
        .map(|i| {
            state(
                Finder,
                Cursor,
                &format!("wss://k{}.example.com", i % 7),
                json!({ "timestamp": i }),
            )
        })
        .collect();
    assert_eq!(brotr.upsert_service_state(&batch).await.unwrap(), 7);
    let got = brotr.get_service_state(Finder, Cursor, None).await.unwrap();
    for (key, value) in got {
        let k: i64 = key["wss://k".len()..key.len() - ".example.com".len()]
            .parse()
            .unwrap();
        let last = (0..100).filter(|i| i % 7 == k).max().unwrap();
        assert_eq!(value, json!({ "timestamp": last }), "{key}");
    }
}

#[tokio::test]
async fn delete_removes_only_the_listed_keys_and_counts_them() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let records = [
        state(Validator, Checkpoint, "wss://a.example.com", json!({})),
        state(Validator, Checkpoint, "wss://b.example.com", json!({})),
        state(Finder, Checkpoint, "wss://a.example.com", json!({})),
        state(Validator, Cursor, "wss://a.example.com", json!({})),
    ];
    brotr.upsert_service_state(&records).await.unwrap();
    let n = brotr
        .delete_service_state(&[
            key(Validator, Checkpoint, "wss://a.example.com"),
            key(Validator, Checkpoint, "wss://missing.example.com"),
        ])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let left: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT service_name, state_type, state_key FROM service_state ORDER BY 1, 2, 3",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let row = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        left,
        [
            row("finder", "checkpoint", "wss://a.example.com"),
            row("validator", "checkpoint", "wss://b.example.com"),
            row("validator", "cursor", "wss://a.example.com"),
        ]
    );
    assert_eq!(
        brotr
            .delete_service_state(&[key(Validator, Checkpoint, "wss://a.example.com")])
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn the_sql_functions_default_the_key_and_the_value() {
    let db = TestDb::new().await;
    let pool = db.pool();
    exec(pool, "INSERT INTO service_state (service_name, state_type, state_key) VALUES ('api', 'cursor', 'b'), ('api', 'cursor', 'a')").await;
    let rows: Vec<(String, Value)> =
        sqlx::query_as("SELECT * FROM service_state_get('api', 'cursor')")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [("a".to_owned(), json!({})), ("b".to_owned(), json!({}))]
    );
    let n: i32 = sqlx::query_scalar(
        "SELECT service_state_upsert(ARRAY['api', 'api'], ARRAY['cursor', 'cursor'], ARRAY['a', 'c'],
                                     ARRAY['{\"x\": [1, {\"y\": null}]}', '1']::jsonb[])",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(n, 2, "one update and one insert");
    let a: Value =
        sqlx::query_scalar("SELECT state_value FROM service_state_get('api', 'cursor', 'a')")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(a, json!({"x": [1, {"y": null}]}), "stored as given");
    let n: i32 = sqlx::query_scalar(
        "SELECT service_state_delete(ARRAY['api'], ARRAY['cursor'], ARRAY['c'])",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn candidates_skip_known_relays_and_existing_candidates() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let known = relay("wss://known.example.com", 1);
    brotr
        .insert_relays(std::slice::from_ref(&known))
        .await
        .unwrap();
    let tor = relay(
        "ws://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion",
        1,
    );
    let fresh = relay("wss://fresh.example.com", 1);
    assert_eq!(
        brotr
            .insert_candidates(
                &[known.clone(), fresh.clone(), tor.clone(), fresh.clone()],
                500
            )
            .await
            .unwrap(),
        2
    );
    assert_eq!(brotr.candidate_count().await.unwrap(), 2);
    let value = brotr
        .get_service_state(Validator, Checkpoint, Some(tor.url()))
        .await
        .unwrap();
    assert_eq!(
        value[0].1,
        json!({"network": "tor", "failures": 0, "timestamp": 500})
    );
    // A candidate that has failed keeps its count when offered again.
    brotr
        .upsert_service_state(&[state(
            Validator,
            Checkpoint,
            fresh.url(),
            json!({"network": "clearnet", "failures": 4, "timestamp": 600}),
        )])
        .await
        .unwrap();
    assert_eq!(
        brotr
            .insert_candidates(std::slice::from_ref(&fresh), 900)
            .await
            .unwrap(),
        0
    );
    let value = brotr
        .get_service_state(Validator, Checkpoint, Some(fresh.url()))
        .await
        .unwrap();
    assert_eq!(value[0].1["failures"], 4);
    // The validator's network filter is served by the partial index.
    let uses_index: bool = {
        let mut tx = db.pool().begin().await.unwrap();
        exec_tx(&mut tx, "SET LOCAL enable_seqscan = off").await;
        let plan: Vec<String> = sqlx::query_scalar(
            "EXPLAIN SELECT state_key FROM service_state
             WHERE service_name = 'validator' AND state_type = 'checkpoint'
               AND state_value ->> 'network' = 'tor'",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        plan.iter()
            .any(|line| line.contains("idx_service_state_candidate_network"))
    };
    assert!(uses_index);
}

async fn exec_tx(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut **tx)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn concurrent_upserts_of_the_same_keys_both_succeed() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let batch = |value: i64| -> Vec<ServiceState> {
        (0..50)
            .map(|i| {
                let url = format!("wss://r{i:02}.example.com");
                state(Synchronizer, Cursor, &url, json!({"timestamp": value}))
            })
            .collect()
    };
    let (left, right) = (batch(1), batch(2));
    let (a, b) = tokio::join!(
        brotr.upsert_service_state(&left),
        brotr.upsert_service_state(&right)
    );
    assert_eq!(
        (a.unwrap(), b.unwrap()),
        (50, 50),
        "every row written by both"
    );
    let rows = brotr
        .get_service_state(Synchronizer, Cursor, None)
        .await
        .unwrap();
    assert_eq!(rows.len(), 50);
    // The transaction that committed last wins every key: the values are all 1 or all 2.
    let values: Vec<&Value> = rows.iter().map(|(_, v)| &v["timestamp"]).collect();
    assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
}
