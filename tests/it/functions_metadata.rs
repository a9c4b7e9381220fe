//! Content-addressed metadata (reference §1.2, §1.4, §2.4): metadata_insert dedup per (id, type),
//! relay_metadata's (relay, time, type) key and composite foreign key, and the atomic
//! relay_metadata_insert_cascade, through the facade and raw SQL.

use bigbrotr_models::metadata::{Metadata, MetadataType};
use bigbrotr_models::relay::Relay;
use bigbrotr_models::relay_metadata::RelayMetadata;
use bigbrotr_testkit::TestDb;
use serde_json::{Value, json};

use crate::dbkit::{count, db_sqlstate, doc, exec, sqlstate};
use crate::fixtures::relay;

fn snap(relay: &Relay, metadata: &Metadata, generated_at: i64) -> RelayMetadata {
    RelayMetadata {
        relay: relay.clone(),
        metadata: metadata.clone(),
        generated_at,
    }
}

fn nip11(name: &str) -> Metadata {
    doc(
        MetadataType::Nip11Info,
        json!({"name": name, "supported_nips": [1, 11]}),
    )
}

#[tokio::test]
async fn metadata_insert_dedups_per_hash_and_type() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let a = nip11("a");
    let b = nip11("b");
    assert_eq!(
        brotr
            .insert_metadata(&[a.clone(), b.clone(), a.clone()])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        brotr
            .insert_metadata(std::slice::from_ref(&a))
            .await
            .unwrap(),
        0
    );
    // The same document under another type is a second row with the same id.
    let a_as_rtt = Metadata::new(MetadataType::Nip66Rtt, a.data().clone()).unwrap();
    assert_eq!(a_as_rtt.id(), a.id(), "the type is not part of the hash");
    assert_eq!(brotr.insert_metadata(&[a_as_rtt]).await.unwrap(), 1);
    let rows: Vec<(Vec<u8>, String, Value)> =
        sqlx::query_as("SELECT id, type, data FROM metadata WHERE id = $1 ORDER BY type")
            .bind(a.id().to_vec())
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(
        rows,
        [
            (a.id().to_vec(), "nip11_info".to_owned(), a.data().clone()),
            (a.id().to_vec(), "nip66_rtt".to_owned(), a.data().clone()),
        ]
    );
    assert_eq!(count(db.pool(), "metadata").await, 3);
    // The stored id is the SHA-256 of the canonical JSON, and the stored JSON is that document.
    let matches: bool = sqlx::query_scalar(
        "SELECT bool_and(id = sha256(convert_to($1, 'UTF8')) AND data = $1::jsonb)
         FROM metadata WHERE id = $2",
    )
    .bind(a.canonical())
    .bind(a.id().to_vec())
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert!(matches);
    // The envelope shape the views rely on.
    assert_eq!(a.data()["data"]["name"], "a");
}

#[tokio::test]
async fn metadata_insert_in_sql_keeps_the_first_document_for_a_key() {
    let db = TestDb::new().await;
    let n: i32 = sqlx::query_scalar(
        "SELECT metadata_insert(ARRAY['\\x01'::bytea, '\\x01', '\\x01'], ARRAY['nip11_info', 'nip11_info', 'custom'],
                                ARRAY['{\"v\": 1}', '{\"v\": 2}', '{\"v\": 3}']::jsonb[])",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(
        n, 2,
        "(\\x01, nip11_info) once, and an unchecked type is accepted"
    );
    let n: i32 = sqlx::query_scalar(
        "SELECT metadata_insert(ARRAY['\\x01'::bytea], ARRAY['nip11_info'], ARRAY['{\"v\": 9}']::jsonb[])",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(n, 0);
    let v: Value = sqlx::query_scalar("SELECT data FROM metadata WHERE type = 'nip11_info'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(
        v == json!({"v": 1}) || v == json!({"v": 2}),
        "an in-batch duplicate: {v}"
    );
    assert_ne!(
        v,
        json!({"v": 9}),
        "an existing document is never overwritten"
    );
}

#[tokio::test]
async fn the_metadata_cascade_shares_one_document_between_relays() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let shared = nip11("shared");
    let r1 = relay("wss://one.example.com", 5);
    let r2 = relay("wss://two.example.com", 6);
    let records = [
        snap(&r1, &shared, 100),
        snap(&r2, &shared, 100),
        snap(&r1, &shared, 200),
    ];
    assert_eq!(
        brotr.insert_relay_metadata(&records, true).await.unwrap(),
        3
    );
    assert_eq!(count(db.pool(), "relay").await, 2);
    assert_eq!(
        count(db.pool(), "metadata").await,
        1,
        "content-addressed: stored once"
    );
    assert_eq!(count(db.pool(), "relay_metadata").await, 3);
    assert_eq!(
        brotr.insert_relay_metadata(&records, true).await.unwrap(),
        0
    );
    // An existing relay keeps its discovered_at through the cascade too.
    let later = relay("wss://one.example.com", 999);
    let other = doc(MetadataType::Nip66Rtt, json!({"rtt_open": 10}));
    assert_eq!(
        brotr
            .insert_relay_metadata(&[snap(&later, &other, 300)], true)
            .await
            .unwrap(),
        1
    );
    let discovered: i64 =
        sqlx::query_scalar("SELECT discovered_at FROM relay WHERE url = 'wss://one.example.com'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(discovered, 5);
}

#[tokio::test]
async fn a_snapshot_is_keyed_by_relay_time_and_type() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let r = relay("wss://r.example.com", 1);
    let first = nip11("first");
    let second = nip11("second");
    let rtt = doc(MetadataType::Nip66Rtt, json!({"rtt_open": 1}));
    assert_eq!(
        brotr
            .insert_relay_metadata(&[snap(&r, &first, 100)], true)
            .await
            .unwrap(),
        1
    );
    // Same relay, time and type, other document: skipped, the first is kept.
    assert_eq!(
        brotr
            .insert_relay_metadata(&[snap(&r, &second, 100)], true)
            .await
            .unwrap(),
        0
    );
    // Another type at the same time, or the same type at another time: new rows.
    assert_eq!(
        brotr
            .insert_relay_metadata(&[snap(&r, &rtt, 100), snap(&r, &second, 101)], true)
            .await
            .unwrap(),
        2
    );
    let at_100: Vec<u8> = sqlx::query_scalar(
        "SELECT metadata_id FROM relay_metadata WHERE generated_at = 100 AND metadata_type = 'nip11_info'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(at_100, first.id().to_vec());
    // The skipped snapshot's document was still stored by the cascade (an orphan until cleanup).
    assert_eq!(count(db.pool(), "metadata").await, 3);
}

#[tokio::test]
async fn relay_metadata_insert_needs_the_relay_and_the_document_under_the_same_type() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let r = relay("wss://r.example.com", 1);
    let d = nip11("x");
    let err = brotr
        .insert_relay_metadata(&[snap(&r, &d, 1)], false)
        .await
        .unwrap_err();
    assert_eq!(
        db_sqlstate(&err).as_deref(),
        Some("23503"),
        "nothing exists: {err}"
    );
    brotr.insert_relays(std::slice::from_ref(&r)).await.unwrap();
    let err = brotr
        .insert_relay_metadata(&[snap(&r, &d, 1)], false)
        .await
        .unwrap_err();
    assert_eq!(
        db_sqlstate(&err).as_deref(),
        Some("23503"),
        "document missing: {err}"
    );
    // The document exists under another type only: the composite key (id, type) refuses it.
    let same_data_other_type = Metadata::new(MetadataType::Nip66Geo, d.data().clone()).unwrap();
    brotr
        .insert_metadata(&[same_data_other_type])
        .await
        .unwrap();
    let err = brotr
        .insert_relay_metadata(&[snap(&r, &d, 1)], false)
        .await
        .unwrap_err();
    assert_eq!(
        db_sqlstate(&err).as_deref(),
        Some("23503"),
        "wrong type: {err}"
    );
    brotr
        .insert_metadata(std::slice::from_ref(&d))
        .await
        .unwrap();
    assert_eq!(
        brotr
            .insert_relay_metadata(&[snap(&r, &d, 1)], false)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        brotr
            .insert_relay_metadata(&[snap(&r, &d, 1)], false)
            .await
            .unwrap(),
        0
    );
    // A relay missing while the document exists.
    let unknown = relay("wss://unknown.example.com", 1);
    let err = brotr
        .insert_relay_metadata(&[snap(&unknown, &d, 1)], false)
        .await
        .unwrap_err();
    assert_eq!(
        db_sqlstate(&err).as_deref(),
        Some("23503"),
        "relay missing: {err}"
    );
    assert_eq!(
        count(db.pool(), "relay").await,
        1,
        "the non-cascade path creates no relay"
    );
}

#[tokio::test]
async fn a_failing_row_rolls_back_the_whole_metadata_cascade() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    exec(
        db.pool(),
        "ALTER TABLE relay_metadata ADD CONSTRAINT not_666 CHECK (generated_at <> 666)",
    )
    .await;
    let records: Vec<RelayMetadata> = (0..3)
        .map(|i| {
            snap(
                &relay(&format!("wss://r{i}.example.com"), 1),
                &nip11(&format!("n{i}")),
                if i == 1 { 666 } else { 1 },
            )
        })
        .collect();
    let err = brotr
        .insert_relay_metadata(&records, true)
        .await
        .unwrap_err();
    assert_eq!(db_sqlstate(&err).as_deref(), Some("23514"), "{err}");
    for table in ["relay", "metadata", "relay_metadata"] {
        assert_eq!(
            count(db.pool(), table).await,
            0,
            "{table} after the failed cascade"
        );
    }
    // Raw SQL: a NULL document fails in metadata_insert, after relay_insert ran.
    let err = sqlx::query_scalar::<_, i32>(
        "SELECT relay_metadata_insert_cascade(ARRAY['wss://a.example.com', 'wss://b.example.com'],
             ARRAY['clearnet', 'clearnet'], ARRAY[1, 1]::bigint[], ARRAY['\\x01', '\\x02']::bytea[],
             ARRAY['nip11_info', 'nip11_info'], ARRAY['{}', NULL]::jsonb[], ARRAY[1, 1]::bigint[])",
    )
    .fetch_one(db.pool())
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("23502"), "{err}");
    assert_eq!(count(db.pool(), "relay").await, 0);
}

#[tokio::test]
async fn concurrent_metadata_cascades_sharing_documents_store_each_once() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let docs: Vec<Metadata> = (0..30)
        .map(|i| doc(MetadataType::Nip66Rtt, json!({"rtt_open": i})))
        .collect();
    let relays: Vec<Relay> = (0..3)
        .map(|i| relay(&format!("wss://r{i}.example.com"), 1))
        .collect();
    // Both batches write all 30 documents for the three relays, at overlapping times.
    let batch = |times: std::ops::Range<i64>| -> Vec<RelayMetadata> {
        times
            .flat_map(|t| relays.iter().map(move |r| (r, t)))
            .map(|(r, t)| snap(r, &docs[t as usize % 30], t))
            .collect()
    };
    let (left, right) = (batch(0..40), batch(20..60));
    let (a, b) = tokio::join!(
        brotr.insert_relay_metadata(&left, true),
        brotr.insert_relay_metadata(&right, true)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a + b,
        180,
        "60 times × 3 relays, each snapshot counted once ({a} + {b})"
    );
    assert_eq!(count(db.pool(), "relay_metadata").await, 180);
    assert_eq!(count(db.pool(), "metadata").await, 30);
    assert_eq!(count(db.pool(), "relay").await, 3);
}
