//! Live discovery (beyond the original): relay lists (kind 10002, NIP-65 `r` tags) and other
//! monitors' relay discoveries (kind 30166, NIP-66 `d` tags) fetched from configured relays,
//! each relay with its own cursor (`finder/cursor/live:<url>`, the newest `created_at` read).
//!
//! A window `[cursor, now]` is read newest-first in pages of `page_size`; when it holds more
//! than `max_events`, the newest `max_events` are used and the cursor still moves to the newest
//! event (logged as truncated): relay lists are replaceable, so the newest ones matter most.

use std::collections::{BTreeMap, HashSet};

use bigbrotr_core::clock;
use bigbrotr_core::runner::Context;
use bigbrotr_db::finder::LIVE_CURSOR_PREFIX;
use bigbrotr_models::event::Event;
use bigbrotr_models::relay::{Relay, parse_relay};
use bigbrotr_models::service_state::{Cursor, ServiceName, ServiceState, ServiceStateType};
use bigbrotr_utils::relay::Connector;

use crate::config::LiveConfig;

/// What live discovery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveReport {
    /// Relays read successfully.
    pub relays: usize,
    /// Relays that failed.
    pub failed: usize,
    /// Events read.
    pub events: u64,
    /// Candidates added.
    pub added: u64,
}

/// The relays an event names: the first value of every single-letter tag (`r` in kind 10002,
/// `d` in kind 30166, and the same rule for any other kind configured).
pub fn relays_in_event(event: &Event, now: i64) -> Vec<Relay> {
    event
        .tags()
        .iter()
        .filter(|tag| tag.first().is_some_and(|k| k.chars().count() == 1))
        .filter_map(|tag| tag.get(1))
        .filter_map(|value| parse_relay(value, now).ok())
        .collect()
}

/// Reads one relay's events since `since`; returns them and whether `max_events` cut the window.
async fn read_relay(
    connector: &Connector,
    relay: &Relay,
    config: &LiveConfig,
    since: i64,
) -> anyhow::Result<(Vec<Event>, bool)> {
    let timeout = connector.timeout(relay.network())?;
    let connection = connector.connect(relay).await?;
    let mut events: Vec<Event> = Vec::new();
    let mut seen: HashSet<[u8; 32]> = HashSet::new();
    let mut until: Option<i64> = None;
    let page = config.page_size as usize;
    let mut truncated = false;
    let outcome = async {
        loop {
            let fetched = connection
                .fetch_events(&config.kinds, Some(since), until, page, timeout)
                .await?;
            let count = fetched.events.len();
            let mut oldest = i64::MAX;
            let mut new = 0;
            for event in fetched.events {
                oldest = oldest.min(event.created_at());
                if seen.insert(*event.id()) {
                    events.push(event);
                    new += 1;
                }
            }
            if events.len() >= config.max_events as usize {
                truncated = true;
                break;
            }
            // A short page, or a page with nothing new (many events in one second), ends it.
            if count < page || new == 0 || oldest <= since {
                break;
            }
            until = Some(oldest);
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    connection.shutdown().await;
    outcome?;
    Ok((events, truncated))
}

/// Runs live discovery over the configured relays, one after the other.
pub(crate) async fn run(
    ctx: &Context,
    config: &LiveConfig,
    connector: &Connector,
) -> anyhow::Result<LiveReport> {
    let mut report = LiveReport::default();
    let cursors: BTreeMap<String, Cursor> = ctx
        .brotr
        .get_service_state(ServiceName::Finder, ServiceStateType::Cursor, None)
        .await?
        .into_iter()
        .filter_map(|(key, value)| {
            let url = key.strip_prefix(LIVE_CURSOR_PREFIX)?.to_owned();
            Some((url, Cursor::from_value(&value).ok()?))
        })
        .collect();
    for url in &config.relays {
        if ctx.is_stopping() {
            break;
        }
        let now = clock::now();
        let relay = match Relay::new(url, now) {
            Ok(relay) => relay,
            Err(error) => {
                tracing::warn!(relay = %url, %error, "live_relay_invalid");
                report.failed += 1;
                continue;
            }
        };
        let since = cursors.get(url).map_or(0, |c| c.timestamp);
        let (events, truncated) = match read_relay(connector, &relay, config, since).await {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(relay = %url, %error, "live_relay_failed");
                report.failed += 1;
                continue;
            }
        };
        report.relays += 1;
        report.events += events.len() as u64;
        let mut found: BTreeMap<String, Relay> = BTreeMap::new();
        for event in &events {
            for relay in relays_in_event(event, now) {
                found.entry(relay.url().to_owned()).or_insert(relay);
            }
        }
        let newest = events
            .iter()
            .max_by(|a, b| (a.created_at(), a.id()).cmp(&(b.created_at(), b.id())));
        let mut states = Vec::new();
        if let Some(newest) = newest {
            // A remote clock never moves the cursor past ours: one event dated in 2100 would
            // otherwise end live discovery from this relay for good. (Events a little ahead of
            // our clock are simply read again next time.)
            let cursor = Cursor {
                timestamp: newest.created_at().min(now),
                id: hex::encode(newest.id()),
            };
            if cursor.should_write() {
                let key = format!("{LIVE_CURSOR_PREFIX}{url}");
                states.push(ServiceState::cursor(ServiceName::Finder, &key, &cursor)?);
            }
        }
        if truncated {
            tracing::warn!(relay = %url, events = events.len(), "live_window_truncated");
        }
        let relays: Vec<Relay> = found.into_values().collect();
        let added = ctx
            .brotr
            .store_finder_progress(&relays, clock::now(), &states)
            .await?;
        report.added += added;
        tracing::info!(relay = %url, events = events.len(), found = relays.len(), added, "live_relay_read");
    }
    Ok(report)
}
