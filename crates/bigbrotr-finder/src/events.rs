//! The event phase: page through every relay's archived events by `(seen_at, event_id)`, take
//! relay URLs from every tag value (the text after the first `:`), and flush candidates together
//! with the cursors that cover them, in one transaction per flush.

use std::collections::HashMap;
use std::time::Duration;

use bigbrotr_core::clock;
use bigbrotr_core::runner::Context;
use bigbrotr_db::finder::{LIVE_CURSOR_PREFIX, ScannedEvent};
use bigbrotr_models::relay::{Relay, parse_relay};
use bigbrotr_models::service_state::{Cursor, ServiceName, ServiceState, ServiceStateType};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::EventsConfig;

/// What the event phase did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsReport {
    /// Relays scanned (at least one query).
    pub relays: usize,
    /// Events read.
    pub events: u64,
    /// Relay URLs found (before deduplication against the database).
    pub found: u64,
    /// Candidates added.
    pub added: u64,
    /// Flushes (transactions) written.
    pub flushes: u64,
}

/// Whether a tag value can hold a relay URL at all (a cheap test before the full parse).
fn may_be_relay(value: &str) -> bool {
    let value = value.trim_start();
    let bytes = value.as_bytes();
    (bytes.len() > 5 && bytes[..5].eq_ignore_ascii_case(b"ws://"))
        || (bytes.len() > 6 && bytes[..6].eq_ignore_ascii_case(b"wss://"))
}

/// The relays named by `k:v` tag values: the text after the first `:` of each, when it parses
/// as a relay URL. Key-only tags (NULL elements) and other text are skipped.
pub fn relays_in_tagvalues<'a>(
    tagvalues: impl IntoIterator<Item = &'a Option<String>>,
    now: i64,
) -> impl Iterator<Item = Relay> {
    tagvalues
        .into_iter()
        .filter_map(|value| value.as_deref())
        .filter_map(|value| value.split_once(':').map(|(_, rest)| rest))
        .filter(|rest| may_be_relay(rest))
        .filter_map(move |rest| parse_relay(rest, now).ok())
}

/// One page read by a worker.
struct Page {
    relay_url: String,
    cursor: Cursor,
    found: Vec<Relay>,
    events: u64,
}

fn cursor_of(event: &ScannedEvent) -> Cursor {
    Cursor {
        timestamp: event.seen_at,
        id: hex::encode(&event.id),
    }
}

/// Scans one relay from `cursor` until its events, its time or the phase's time run out.
async fn scan_relay(
    ctx: &Context,
    config: &EventsConfig,
    relay_url: String,
    mut cursor: Cursor,
    phase_deadline: Instant,
    tx: mpsc::Sender<Page>,
) -> anyhow::Result<bool> {
    if ctx.is_stopping() || Instant::now() >= phase_deadline {
        return Ok(false);
    }
    let relay_deadline =
        (Instant::now() + Duration::from_secs_f64(config.max_relay_time)).min(phase_deadline);
    let scan_size = i64::from(config.scan_size);
    loop {
        let id = hex::decode(&cursor.id).unwrap_or_else(|_| vec![0; 32]);
        let rows = ctx
            .brotr
            .scan_relay_events(&relay_url, cursor.timestamp, &id, scan_size)
            .await?;
        let Some(last) = rows.last() else {
            break;
        };
        cursor = cursor_of(last);
        let now = clock::now();
        let found: Vec<Relay> = rows
            .iter()
            .flat_map(|row| relays_in_tagvalues(&row.tagvalues, now))
            .collect();
        let page = Page {
            relay_url: relay_url.clone(),
            cursor: cursor.clone(),
            found,
            events: rows.len() as u64,
        };
        if tx.send(page).await.is_err() {
            break;
        }
        if (rows.len() as i64) < scan_size || ctx.is_stopping() || Instant::now() >= relay_deadline
        {
            break;
        }
    }
    Ok(true)
}

/// Pending candidates and the cursors that cover them.
#[derive(Default)]
struct Pending {
    relays: HashMap<String, Relay>,
    cursors: HashMap<String, Cursor>,
}

async fn flush(
    ctx: &Context,
    pending: &mut Pending,
    report: &mut EventsReport,
) -> anyhow::Result<()> {
    if pending.relays.is_empty() && pending.cursors.is_empty() {
        return Ok(());
    }
    let relays: Vec<Relay> = std::mem::take(&mut pending.relays).into_values().collect();
    let mut cursors = Vec::with_capacity(pending.cursors.len());
    for (url, cursor) in pending.cursors.drain() {
        if cursor.should_write() {
            cursors.push(ServiceState::cursor(ServiceName::Finder, &url, &cursor)?);
        }
    }
    report.added += ctx
        .brotr
        .store_finder_progress(&relays, clock::now(), &cursors)
        .await?;
    report.flushes += 1;
    Ok(())
}

/// Runs the event phase.
pub(crate) async fn run(ctx: &Context, config: &EventsConfig) -> anyhow::Result<EventsReport> {
    let started = Instant::now();
    let phase_deadline = started + Duration::from_secs_f64(config.max_duration);
    let stored: HashMap<String, Cursor> = ctx
        .brotr
        .get_service_state(ServiceName::Finder, ServiceStateType::Cursor, None)
        .await?
        .into_iter()
        .filter(|(key, _)| !key.starts_with(LIVE_CURSOR_PREFIX))
        .filter_map(|(key, value)| match Cursor::from_value(&value) {
            Ok(cursor) => Some((key, cursor)),
            Err(error) => {
                tracing::warn!(relay = %key, %error, "finder_cursor_invalid");
                None
            }
        })
        .collect();
    let mut work: Vec<(String, Cursor)> = ctx
        .brotr
        .relay_urls()
        .await?
        .into_iter()
        .map(|url| {
            let cursor = stored.get(&url).cloned().unwrap_or_default();
            (url, cursor)
        })
        .collect();
    work.sort_by(|a, b| (a.1.timestamp, &a.1.id, &a.0).cmp(&(b.1.timestamp, &b.1.id, &b.0)));
    tracing::info!(relays = work.len(), "events_phase_started");

    let parallel = config.parallel_relays.max(1) as usize;
    let (tx, mut rx) = mpsc::channel::<Page>(parallel * 2);
    let producer = async move {
        let results: Vec<anyhow::Result<bool>> = futures_util::stream::iter(work)
            .map(|(url, cursor)| scan_relay(ctx, config, url, cursor, phase_deadline, tx.clone()))
            .buffer_unordered(parallel)
            .collect()
            .await;
        drop(tx);
        results
    };
    // The consumer owns the receiver: if it fails, the workers' sends fail and they stop.
    let consumer = async move {
        let mut report = EventsReport::default();
        let mut pending = Pending::default();
        while let Some(page) = rx.recv().await {
            report.events += page.events;
            report.found += page.found.len() as u64;
            for relay in page.found {
                pending
                    .relays
                    .entry(relay.url().to_owned())
                    .or_insert(relay);
            }
            pending.cursors.insert(page.relay_url, page.cursor);
            if pending.relays.len() >= config.batch_size as usize {
                flush(ctx, &mut pending, &mut report).await?;
            }
        }
        flush(ctx, &mut pending, &mut report).await?;
        Ok::<_, anyhow::Error>(report)
    };
    let (results, report) = tokio::join!(producer, consumer);
    let mut report = report?;
    for result in results {
        if result? {
            report.relays += 1;
        }
    }
    tracing::info!(
        relays = report.relays,
        events = report.events,
        found = report.found,
        added = report.added,
        flushes = report.flushes,
        seconds = started.elapsed().as_secs_f64(),
        "events_phase_completed"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(items: &[Option<&str>]) -> Vec<Option<String>> {
        items.iter().map(|v| v.map(str::to_owned)).collect()
    }

    #[test]
    fn relay_urls_come_from_the_text_after_the_first_colon() {
        let tags = values(&[
            Some("r:wss://relay.example.com"),
            Some("r:WSS://Relay.Example.com:443/"),
            Some("x: wss://spaced.example.com"),
            Some("e:5c83da77af1dec6d7289834998ad7aafbd9e2191396d75ec3cc27f5a77226f36"),
            Some("r:https://not-a-relay.example.com"),
            Some("r:ws://10.0.0.1"),
            Some("r"),
            None,
            Some("a:30023:pubkey:wss://after-two-colons.example.com"),
        ]);
        let found: Vec<String> = relays_in_tagvalues(&tags, 0)
            .map(|r| r.url().to_owned())
            .collect();
        assert_eq!(
            found,
            vec![
                "wss://relay.example.com",
                "wss://relay.example.com",
                "wss://spaced.example.com",
            ]
        );
    }

    #[test]
    fn the_prefilter_accepts_exactly_the_websocket_schemes() {
        assert!(may_be_relay("ws://a"));
        assert!(may_be_relay("WSS://a"));
        assert!(may_be_relay("  wss://a"));
        assert!(!may_be_relay("wss://"));
        assert!(!may_be_relay("https://a"));
        assert!(!may_be_relay("w"));
    }
}
