//! The relay and event write functions (reference §1.3, §1.4): relay_insert, event_insert and
//! tagvalues, event_relay_insert with its foreign keys, and the atomic
//! event_relay_insert_cascade, through the facade and through raw SQL, including two
//! concurrent overlapping cascades.

use bigbrotr_models::event::Event;
use bigbrotr_models::event_relay::EventRelay;
use bigbrotr_models::relay::Relay;
use bigbrotr_testkit::TestDb;
use nostr::Keys;
use serde_json::{Value, json};
use sqlx::Row;

use crate::dbkit::{self, count, db_sqlstate, ev, expected_tagvalues, insert_events, sqlstate};
use crate::fixtures::{event, relay};

const TOR: &str = "ws://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";

fn sighting(event: &Event, relay: &Relay, seen_at: i64) -> EventRelay {
    EventRelay {
        event: event.clone(),
        relay: relay.clone(),
        seen_at,
    }
}

async fn discovered_at(db: &TestDb, url: &str) -> i64 {
    sqlx::query_scalar("SELECT discovered_at FROM relay WHERE url = $1")
        .bind(url)
        .fetch_one(db.pool())
        .await
        .expect("discovered_at of a stored relay")
}

#[tokio::test]
async fn relay_insert_counts_new_rows_and_the_first_discovered_at_wins() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let a = "wss://a.example.com";
    assert_eq!(
        brotr
            .insert_relays(&[relay(a, 100), relay(TOR, 200)])
            .await
            .unwrap(),
        2
    );
    // a again (earlier and later timestamps) is skipped; only the new relay counts.
    let second = [
        relay(a, 50),
        relay("wss://c.example.com", 300),
        relay(a, 999),
    ];
    assert_eq!(brotr.insert_relays(&second).await.unwrap(), 1);
    assert_eq!(discovered_at(&db, a).await, 100);
    assert_eq!(discovered_at(&db, "wss://c.example.com").await, 300);
    assert_eq!(brotr.relay_count().await.unwrap(), 3);
    // Byte order ("ws://" < "wss:"): the database is created with --locale=C.
    assert_eq!(
        brotr.relay_urls().await.unwrap(),
        [TOR, a, "wss://c.example.com"]
    );
    let networks: Vec<(String, String)> =
        sqlx::query_as("SELECT url, network FROM relay ORDER BY url")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(networks[0], (TOR.to_owned(), "tor".to_owned()));
    assert_eq!(networks[1], (a.to_owned(), "clearnet".to_owned()));
}

#[tokio::test]
async fn relays_of_every_network_are_stored_with_their_url_and_network() {
    let db = TestDb::new().await;
    let loki = "ws://kcpyawmzse7trdbzncimdi5t7tdikkmm6pu7mkcufgpo3iro4emy.loki";
    // (canonical URL, network column): overlay relays use ws://, clearnet wss://.
    let cases = [
        ("wss://relay.example.com", "clearnet"),
        ("wss://relay.example.com:8443", "clearnet"),
        ("wss://relay.example.com/nostr", "clearnet"),
        ("wss://[2606:4700:4700::1111]:8443/nostr/v1", "clearnet"),
        (TOR, "tor"),
        ("ws://x.i2p", "i2p"),
        (loki, "loki"),
    ];
    let relays: Vec<Relay> = cases.iter().map(|(url, _)| relay(url, 7)).collect();
    assert_eq!(db.brotr().insert_relays(&relays).await.unwrap(), 7);
    for (url, network) in cases {
        let stored: (String, i64) =
            sqlx::query_as("SELECT network, discovered_at FROM relay WHERE url = $1")
                .bind(url)
                .fetch_one(db.pool())
                .await
                .unwrap_or_else(|e| panic!("{url} stored verbatim: {e}"));
        assert_eq!(stored, (network.to_owned(), 7), "{url}");
    }
}

#[tokio::test]
async fn relay_insert_in_sql_skips_in_batch_duplicates_and_returns_the_row_count() {
    let db = TestDb::new().await;
    let n: i32 = sqlx::query_scalar(
        "SELECT relay_insert(ARRAY['wss://x.example.com', 'wss://x.example.com', 'wss://y.example.com'],
                             ARRAY['clearnet', 'clearnet', 'clearnet'], ARRAY[1, 2, 3]::bigint[])",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(count(db.pool(), "relay").await, 2);
    let empty: i32 = sqlx::query_scalar("SELECT relay_insert('{}', '{}', '{}')")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(empty, 0);
}

#[tokio::test]
async fn event_insert_stores_every_field_and_derives_tagvalues() {
    let db = TestDb::new().await;
    let keys = Keys::generate();
    let other = Keys::generate().public_key().to_hex();
    let root = "a".repeat(64);
    let tags = vec![
        vec!["e", root.as_str(), "wss://hint.example.com", "root"],
        vec!["p", other.as_str()],
        vec!["t", "nostr"],
        vec!["t", "nostr"],
        vec!["client", "bigbrotr"],
        vec!["e"],
        vec!["d", ""],
    ];
    let e = event(&keys, 1, 1_700_000_123, "hello\nworld ✓", tags);
    assert_eq!(
        db.brotr()
            .insert_events(std::slice::from_ref(&e))
            .await
            .unwrap(),
        1
    );
    let row = sqlx::query(
        "SELECT id, pubkey, created_at, kind, tags, tagvalues, content, sig FROM event",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(row.get::<Vec<u8>, _>("id"), e.id().to_vec());
    assert_eq!(row.get::<Vec<u8>, _>("pubkey"), e.pubkey().to_vec());
    assert_eq!(row.get::<Vec<u8>, _>("sig"), e.sig().to_vec());
    assert_eq!(row.get::<i64, _>("created_at"), 1_700_000_123);
    assert_eq!(row.get::<i32, _>("kind"), 1);
    assert_eq!(row.get::<String, _>("content"), "hello\nworld ✓");
    let stored_tags: Value = row.get("tags");
    assert_eq!(stored_tags, e.tags_json());
    let tagvalues: Vec<Option<String>> = row.get("tagvalues");
    assert_eq!(
        tagvalues,
        [
            Some(format!("e:{root}")),
            Some(format!("p:{other}")),
            Some("t:nostr".to_owned()),
            Some("t:nostr".to_owned()),
            None,
            Some("d:".to_owned()),
        ]
    );
    assert_eq!(tagvalues, expected_tagvalues(&stored_tags));
    // The id, pubkey and sig are the raw bytes of the hex forms.
    let hex_id: String = sqlx::query_scalar("SELECT encode(id, 'hex') FROM event")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(hex_id, e.id_hex());
}

#[tokio::test]
async fn event_insert_leaves_an_existing_id_untouched() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let keys = Keys::generate();
    let first = event(&keys, 1, 10, "first", vec![]);
    let second = event(&keys, 1, 11, "second", vec![]);
    assert_eq!(
        brotr
            .insert_events(&[first.clone(), second.clone()])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        brotr
            .insert_events(std::slice::from_ref(&first))
            .await
            .unwrap(),
        0
    );
    // A forged row with the same id but other fields is ignored by ON CONFLICT (id) DO NOTHING.
    let mut forged = dbkit::ev(0, 9, 99, 7, json!([["t", "forged"]]));
    forged.id = first.id().to_vec();
    forged.content = "forged".into();
    assert_eq!(insert_events(db.pool(), &[forged]).await, 0);
    let (content, kind): (String, i32) =
        sqlx::query_as("SELECT content, kind FROM event WHERE id = $1")
            .bind(first.id().to_vec())
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!((content.as_str(), kind), ("first", 1));
    assert_eq!(count(db.pool(), "event").await, 2);
}

#[tokio::test]
async fn tags_to_tagvalues_keeps_single_char_keys_first_values_in_order() {
    let db = TestDb::new().await;
    // (tags, expected) per reference §1.3.
    let cases: Vec<(Value, Option<Vec<Option<&str>>>)> = vec![
        (
            json!([["e", "abc"], ["p", "def"], ["relay", "wss://x"]]),
            Some(vec![Some("e:abc"), Some("p:def")]),
        ),
        (json!([]), Some(vec![])),
        (json!([["relay", "x"], ["client", "y"]]), Some(vec![])),
        (json!([["e"]]), Some(vec![None])),
        (
            json!([["t", "a"], ["t", "a"], ["t", "b"]]),
            Some(vec![Some("t:a"), Some("t:a"), Some("t:b")]),
        ),
        (
            json!([["p", "2"], ["e", "1"]]),
            Some(vec![Some("p:2"), Some("e:1")]),
        ),
        (
            json!([["e", "x", "wss://hint", "root"]]),
            Some(vec![Some("e:x")]),
        ),
        (json!([["d", ""]]), Some(vec![Some("d:")])),
        (
            json!([["é", "v"], ["ab", "w"], ["", "z"]]),
            Some(vec![Some("é:v")]),
        ),
        (
            json!([["t", "a"], ["e"], ["expiration", "1"], ["t", "b"]]),
            Some(vec![Some("t:a"), None, Some("t:b")]),
        ),
    ];
    for (tags, expected) in cases {
        let got: Option<Vec<Option<String>>> = sqlx::query_scalar("SELECT tags_to_tagvalues($1)")
            .bind(&tags)
            .fetch_one(db.pool())
            .await
            .unwrap();
        let expected: Option<Vec<Option<String>>> =
            expected.map(|v| v.into_iter().map(|s| s.map(str::to_owned)).collect());
        assert_eq!(got, expected, "tags_to_tagvalues({tags})");
        assert_eq!(
            got.unwrap(),
            expected_tagvalues(&tags),
            "reference rule for {tags}"
        );
    }
    let null: Option<Vec<String>> = sqlx::query_scalar("SELECT tags_to_tagvalues(NULL)")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(null, None, "RETURNS NULL ON NULL INPUT");
}

#[tokio::test]
async fn event_insert_in_sql_stores_tagvalues_with_null_elements_and_counts_rows() {
    let db = TestDb::new().await;
    let tags = json!([
        ["e"],
        ["t", "x"],
        ["t", "x"],
        ["alt", "text"],
        ["a", "30000:pk:d", "hint"]
    ]);
    let events = vec![
        ev(1, 1, 10, 1, tags.clone()),
        ev(2, 1, 11, 1, json!([])),
        ev(1, 1, 10, 1, json!([])),
    ];
    // The in-batch duplicate id is skipped, not an error.
    assert_eq!(insert_events(db.pool(), &events).await, 2);
    let stored: Vec<Option<String>> =
        sqlx::query_scalar("SELECT tagvalues FROM event WHERE id = $1")
            .bind(&events[0].id)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(
        stored,
        [
            None,
            Some("t:x".into()),
            Some("t:x".into()),
            Some("a:30000:pk:d".into())
        ]
    );
    let empty: Vec<String> = sqlx::query_scalar("SELECT tagvalues FROM event WHERE id = $1")
        .bind(&events[1].id)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(empty.is_empty(), "no tags gives '{{}}', not NULL");
}

#[tokio::test]
async fn event_relay_insert_needs_both_rows_and_keeps_the_first_seen_at() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let keys = Keys::generate();
    let e = event(&keys, 1, 10, "x", vec![]);
    let r = relay("wss://r.example.com", 1);
    // Neither row exists: the foreign keys refuse the sighting (no cascade).
    let err = brotr
        .insert_event_relays(&[sighting(&e, &r, 5)], false)
        .await
        .unwrap_err();
    assert_eq!(db_sqlstate(&err).as_deref(), Some("23503"), "{err}");
    brotr.insert_relays(std::slice::from_ref(&r)).await.unwrap();
    let err = brotr
        .insert_event_relays(&[sighting(&e, &r, 5)], false)
        .await
        .unwrap_err();
    assert_eq!(
        db_sqlstate(&err).as_deref(),
        Some("23503"),
        "event missing: {err}"
    );
    // Event present, relay missing.
    brotr.insert_events(std::slice::from_ref(&e)).await.unwrap();
    let other = relay("wss://other.example.com", 1);
    let err = brotr
        .insert_event_relays(&[sighting(&e, &other, 5)], false)
        .await
        .unwrap_err();
    assert_eq!(
        db_sqlstate(&err).as_deref(),
        Some("23503"),
        "relay missing: {err}"
    );
    assert_eq!(count(db.pool(), "event_relay").await, 0);
    // Both present.
    assert_eq!(
        brotr
            .insert_event_relays(&[sighting(&e, &r, 5)], false)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        brotr
            .insert_event_relays(&[sighting(&e, &r, 9)], false)
            .await
            .unwrap(),
        0
    );
    let seen: i64 = sqlx::query_scalar("SELECT seen_at FROM event_relay")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(seen, 5, "ON CONFLICT DO NOTHING keeps the first sighting");
    // The non-cascade path never creates relays or events.
    assert_eq!(
        (
            count(db.pool(), "relay").await,
            count(db.pool(), "event").await
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn the_cascade_stores_relays_events_and_sightings_and_returns_new_sightings() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let keys = Keys::generate();
    let events: Vec<Event> = (0..3)
        .map(|i| event(&keys, 1, 100 + i, "c", vec![vec!["t", "x"]]))
        .collect();
    let r1 = relay("wss://one.example.com", 10);
    let r2 = relay(TOR, 20);
    let mut records: Vec<EventRelay> = Vec::new();
    for e in &events {
        records.push(sighting(e, &r1, 1000));
        records.push(sighting(e, &r2, 2000));
    }
    // The same (event, relay) twice in one batch is stored once (DISTINCT ON).
    records.push(sighting(&events[0], &r1, 1001));
    assert_eq!(brotr.insert_event_relays(&records, true).await.unwrap(), 6);
    assert_eq!(count(db.pool(), "relay").await, 2);
    assert_eq!(count(db.pool(), "event").await, 3);
    assert_eq!(count(db.pool(), "event_relay").await, 6);
    let tagged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event WHERE tagvalues = ARRAY['t:x']")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(
        tagged, 3,
        "the cascade computes tagvalues through event_insert"
    );
    assert_eq!(
        brotr.insert_event_relays(&records, true).await.unwrap(),
        0,
        "idempotent"
    );
    // Known events seen on a new relay: only the sightings are new, and the return value counts
    // them (not relays or events); an existing relay keeps its first discovered_at.
    let r3 = relay("wss://three.example.com", 30);
    let later_r1 = relay("wss://one.example.com", 99_999);
    let more = [
        sighting(&events[0], &r3, 3000),
        sighting(&events[1], &r3, 3000),
        sighting(&events[2], &later_r1, 1),
    ];
    assert_eq!(brotr.insert_event_relays(&more, true).await.unwrap(), 2);
    assert_eq!(discovered_at(&db, "wss://one.example.com").await, 10);
    let network: String = sqlx::query_scalar("SELECT network FROM relay WHERE url = $1")
        .bind(TOR)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(network, "tor");
}

#[tokio::test]
async fn a_failing_row_rolls_back_the_whole_cascade() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let keys = Keys::generate();
    let kept = event(&keys, 1, 1, "already stored", vec![]);
    let r0 = relay("wss://kept.example.com", 1);
    brotr
        .insert_event_relays(&[sighting(&kept, &r0, 1)], true)
        .await
        .unwrap();
    // Facade: the third sighting violates a constraint added for the test; the relays and events
    // of the two good rows, inserted earlier in the same statement, must vanish with it.
    dbkit::exec(
        db.pool(),
        "ALTER TABLE event_relay ADD CONSTRAINT not_666 CHECK (seen_at <> 666)",
    )
    .await;
    let bad: Vec<EventRelay> = (0..3)
        .map(|i| {
            let e = event(&keys, 1, 10 + i, "new", vec![]);
            let r = relay(&format!("wss://new{i}.example.com"), 1);
            sighting(&e, &r, if i == 2 { 666 } else { 5 })
        })
        .collect();
    let err = brotr.insert_event_relays(&bad, true).await.unwrap_err();
    assert_eq!(db_sqlstate(&err).as_deref(), Some("23514"), "{err}");
    let counts = (
        count(db.pool(), "relay").await,
        count(db.pool(), "event").await,
        count(db.pool(), "event_relay").await,
    );
    assert_eq!(
        counts,
        (1, 1, 1),
        "nothing of the failed batch remains, earlier data stays"
    );

    // Raw SQL: a NULL content fails inside event_insert, after relay_insert already ran.
    let events = vec![ev(1, 1, 1, 1, json!([])), ev(2, 1, 1, 1, json!([]))];
    let c = dbkit::columns(&events);
    let contents: Vec<Option<String>> = vec![Some("ok".into()), None];
    let err = sqlx::query_scalar::<_, i32>(
        "SELECT event_relay_insert_cascade($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&c.ids)
    .bind(&c.pubkeys)
    .bind(&c.created_ats)
    .bind(&c.kinds)
    .bind(&c.tags)
    .bind(&contents)
    .bind(&c.sigs)
    .bind(vec!["wss://raw1.example.com", "wss://raw2.example.com"])
    .bind(vec!["clearnet", "clearnet"])
    .bind(vec![1_i64, 1])
    .bind(vec![1_i64, 1])
    .fetch_one(db.pool())
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("23502"), "{err}");
    assert_eq!(
        count(db.pool(), "relay").await,
        1,
        "relay_insert of the failed call rolled back"
    );
    assert_eq!(count(db.pool(), "event").await, 1);
}

#[tokio::test]
async fn the_cascade_in_sql_dedups_pairs_and_reports_only_sightings() {
    let db = TestDb::new().await;
    let events = vec![
        ev(1, 1, 1, 1, json!([])),
        ev(1, 1, 1, 1, json!([])),
        ev(2, 1, 1, 1, json!([])),
    ];
    let c = dbkit::columns(&events);
    let call = |seen: Vec<i64>, url: &'static str| {
        sqlx::query_scalar::<_, i32>(
            "SELECT event_relay_insert_cascade($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(c.ids.clone())
        .bind(c.pubkeys.clone())
        .bind(c.created_ats.clone())
        .bind(c.kinds.clone())
        .bind(c.tags.clone())
        .bind(c.contents.clone())
        .bind(c.sigs.clone())
        .bind(vec![url; 3])
        .bind(vec!["clearnet"; 3])
        .bind(vec![7_i64; 3])
        .bind(seen)
    };
    let n = call(vec![100, 200, 300], "wss://r.example.com")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(n, 2, "(event 1, r) twice in the batch is one sighting");
    let seen: Vec<i64> = sqlx::query_scalar("SELECT seen_at FROM event_relay WHERE event_id = $1")
        .bind(&events[0].id)
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert!(
        seen == [100] || seen == [200],
        "one of the duplicates' seen_at: {seen:?}"
    );
    let n = call(vec![1, 1, 1], "wss://r.example.com")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn concurrent_overlapping_cascades_both_succeed_and_store_each_row_once() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let keys = Keys::generate();
    let events: Vec<Event> = (0..60)
        .map(|i| event(&keys, 1, 1000 + i, "c", vec![vec!["t", "x"]]))
        .collect();
    let relays = [
        relay("wss://a.example.com", 1),
        relay("wss://b.example.com", 1),
    ];
    let batch = |range: std::ops::Range<usize>| -> Vec<EventRelay> {
        events[range]
            .iter()
            .flat_map(|e| relays.iter().map(move |r| sighting(e, r, 5)))
            .collect()
    };
    // Events 0..40 and 20..60, both on both relays: 40 pairs overlap.
    for round in 0..3 {
        if round > 0 {
            dbkit::exec(db.pool(), "TRUNCATE relay, event CASCADE").await;
        }
        let (left, right) = (batch(0..40), batch(20..60));
        let (a, b) = tokio::join!(
            brotr.insert_event_relays(&left, true),
            brotr.insert_event_relays(&right, true)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            a + b,
            120,
            "each of the 120 distinct sightings counted once (got {a} + {b})"
        );
        assert_eq!(count(db.pool(), "event_relay").await, 120);
        assert_eq!(count(db.pool(), "event").await, 60);
        assert_eq!(count(db.pool(), "relay").await, 2);
    }
}
