//! `make bench`: the ingest rate of `event_relay_insert_cascade` in batches of 1,000 events,
//! beside raw `COPY` of the same rows into the same tables, on the throwaway cluster.
//!
//! Both paths write the same rows: the relay, the events (tagvalues included) and the junction.
//! The ratio is the price of the stored function (conflict handling, tagvalue extraction, DISTINCT
//! ON) over the fastest way PostgreSQL can load data.

// A benchmark program: any failure must abort the run loudly, and the report goes to stdout.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::time::Instant;

use bigbrotr_models::event::Event;
use bigbrotr_models::event_relay::EventRelay;
use bigbrotr_models::relay::Relay;
use bigbrotr_testkit::TestDb;
use nostr::{EventBuilder, Keys, Kind, Tag, Timestamp};

const EVENTS: usize = 50_000;
const BATCH: usize = 1_000;
const RELAYS: usize = 5;

fn make_events() -> Vec<Event> {
    let keys: Vec<Keys> = (0..100).map(|_| Keys::generate()).collect();
    (0..EVENTS)
        .map(|i| {
            let author = &keys[i % keys.len()];
            let other = keys[(i * 7 + 3) % keys.len()].public_key().to_hex();
            let tags = vec![
                Tag::parse(["p", other.as_str()]).unwrap(),
                Tag::parse(["e", &format!("{:064x}", i * 31 + 7)]).unwrap(),
                Tag::parse(["t", "nostr"]).unwrap(),
                Tag::parse(["client", "bench"]).unwrap(),
            ];
            let content = format!(
                "benchmark note {i}: {}",
                "the quick brown fox jumps over the lazy dog ".repeat(1 + i % 5)
            );
            let signed = EventBuilder::new(Kind::from((i % 3) as u16 + 1), content)
                .tags(tags)
                .custom_created_at(Timestamp::from(1_700_000_000 + i as u64))
                .sign_with_keys(author)
                .unwrap();
            Event::from_nostr(&signed).unwrap()
        })
        .collect()
}

fn relays() -> Vec<Relay> {
    (0..RELAYS)
        .map(|i| Relay::new(&format!("wss://relay{i}.bench.example"), 1).unwrap())
        .collect()
}

/// One CSV field, quoted.
fn csv(field: &str) -> String {
    format!("\"{}\"", field.replace('"', "\"\""))
}

/// A PostgreSQL array literal of optional texts.
fn array_literal(values: &[Option<String>]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| match v {
            None => "NULL".to_owned(),
            Some(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

async fn cascade(db: &TestDb, events: &[Event], relays: &[Relay]) -> f64 {
    let brotr = db.brotr();
    let records: Vec<EventRelay> = events
        .iter()
        .enumerate()
        .map(|(i, event)| EventRelay {
            event: event.clone(),
            relay: relays[i % relays.len()].clone(),
            seen_at: 1_700_000_000,
        })
        .collect();
    let started = Instant::now();
    for chunk in records.chunks(BATCH) {
        brotr.insert_event_relays(chunk, true).await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

async fn copy(db: &TestDb, events: &[Event], relays: &[Relay]) -> f64 {
    let mut conn = db.pool().acquire().await.unwrap();
    let started = Instant::now();
    let mut relay_rows = String::new();
    for relay in relays {
        relay_rows.push_str(&format!(
            "{},{},{}\n",
            csv(relay.url()),
            relay.network().as_str(),
            relay.discovered_at()
        ));
    }
    let mut event_rows = String::new();
    let mut junction_rows = String::new();
    for (i, event) in events.iter().enumerate() {
        let tags = serde_json::to_string(event.tags()).unwrap();
        event_rows.push_str(&format!(
            "\\x{},\\x{},{},{},{},{},{},\\x{}\n",
            hex::encode(event.id()),
            hex::encode(event.pubkey()),
            event.created_at(),
            event.kind(),
            csv(&tags),
            csv(&array_literal(&event.tagvalues())),
            csv(event.content()),
            hex::encode(event.sig()),
        ));
        junction_rows.push_str(&format!(
            "\\x{},{},1700000000\n",
            hex::encode(event.id()),
            csv(relays[i % relays.len()].url())
        ));
    }
    for (sql, rows) in [
        (
            "COPY relay (url, network, discovered_at) FROM STDIN WITH (FORMAT csv)",
            relay_rows,
        ),
        (
            "COPY event (id, pubkey, created_at, kind, tags, tagvalues, content, sig) FROM STDIN WITH (FORMAT csv)",
            event_rows,
        ),
        (
            "COPY event_relay (event_id, relay_url, seen_at) FROM STDIN WITH (FORMAT csv)",
            junction_rows,
        ),
    ] {
        let mut copy = conn.copy_in_raw(sql).await.unwrap();
        copy.send(rows.into_bytes()).await.unwrap();
        copy.finish().await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

async fn count(db: &TestDb, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(db.pool())
        .await
        .unwrap()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let started = Instant::now();
        let events = make_events();
        let relays = relays();
        eprintln!("signed {EVENTS} events in {:.1}s", started.elapsed().as_secs_f64());

        let mut rows = Vec::new();
        for round in 0..2 {
            let db = TestDb::new().await;
            let cascade_s = cascade(&db, &events, &relays).await;
            assert_eq!(count(&db, "event").await as usize, EVENTS);
            assert_eq!(count(&db, "event_relay").await as usize, EVENTS);
            drop(db);
            let db = TestDb::new().await;
            let copy_s = copy(&db, &events, &relays).await;
            assert_eq!(count(&db, "event").await as usize, EVENTS);
            assert_eq!(count(&db, "event_relay").await as usize, EVENTS);
            let tagvalues_match: bool = sqlx::query_scalar(
                "SELECT bool_and(tagvalues = tags_to_tagvalues(tags)) FROM event",
            )
            .fetch_one(db.pool())
            .await
            .unwrap();
            assert!(tagvalues_match, "COPY rows must equal what the function stores");
            drop(db);
            rows.push((round, cascade_s, copy_s));
        }
        println!("| round | cascade events/s | COPY events/s | cascade / COPY |");
        println!("|---|---|---|---|");
        for (round, cascade_s, copy_s) in &rows {
            let cascade_rate = EVENTS as f64 / cascade_s;
            let copy_rate = EVENTS as f64 / copy_s;
            println!(
                "| {round} | {cascade_rate:.0} | {copy_rate:.0} | {:.2} |",
                cascade_rate / copy_rate
            );
        }
        println!(
            "\n{EVENTS} events over {RELAYS} relays, batches of {BATCH} through event_relay_insert_cascade; COPY of the same relay, event (with tagvalues) and event_relay rows."
        );
    });
}
