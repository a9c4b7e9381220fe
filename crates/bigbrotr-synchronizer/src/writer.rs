//! The database writer: the one consumer of every relay task. It buffers verified events across
//! relays, writes them `batch_size` at a time through `event_relay_insert_cascade`, and upserts
//! each finished window's cursor in the same transaction as (or after) the events the window
//! produced, so a stored cursor never runs ahead of the archive.

use std::collections::HashMap;
use std::time::Duration;

use bigbrotr_db::Brotr;
use bigbrotr_models::event::Event;
use bigbrotr_models::event_relay::EventRelay;
use bigbrotr_models::relay::Relay;
use bigbrotr_models::service_state::ServiceState;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinHandle;

use crate::verify::Rejections;

/// What relay tasks send to the writer; per relay, in the order things happened.
#[derive(Debug)]
pub(crate) enum Message {
    /// A page being verified on the blocking pool.
    Page {
        /// Where it came from.
        relay: Relay,
        /// When it was received (Unix seconds).
        seen_at: i64,
        /// The verification job (with the time it took).
        verified: JoinHandle<(Vec<Event>, Rejections, Duration)>,
        /// The page's bytes in the queue's byte budget, released once its events are taken.
        queued: OwnedSemaphorePermit,
    },
    /// A window is complete: its cursor may be stored once the events before it are.
    WindowDone(ServiceState),
}

/// What one relay contributed in this cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayTally {
    /// Events that passed verification.
    pub valid: u64,
    /// Events dropped.
    pub rejections: Rejections,
}

/// What the writer did.
#[derive(Debug, Clone, Default)]
pub struct WriterReport {
    /// Sightings inserted (new `event_relay` rows).
    pub inserted: u64,
    /// Verified events handed to the database (duplicates included).
    pub written: u64,
    /// Cursors stored.
    pub cursors: u64,
    /// Transactions committed.
    pub flushes: u64,
    /// CPU time spent verifying events, summed over pages (each page's thread CPU time on the
    /// blocking pool, not the time it waited for a core; zero without
    /// `/proc/thread-self/schedstat`).
    pub verify_time: Duration,
    /// Time spent in database transactions.
    pub write_time: Duration,
    /// Per relay URL.
    pub relays: HashMap<String, RelayTally>,
}

/// Runs until every sender is dropped, then writes what is left. On a database error, or a
/// verification job that died, it returns at once: nothing of the failed transaction is stored
/// and no later cursor either, so no cursor can cover a lost page.
pub(crate) async fn run(
    brotr: Brotr,
    mut rx: mpsc::Receiver<Message>,
    batch_size: usize,
    flush_every: Duration,
) -> anyhow::Result<WriterReport> {
    let mut report = WriterReport::default();
    let mut buffer: Vec<EventRelay> = Vec::with_capacity(batch_size * 2);
    let mut cursors: Vec<ServiceState> = Vec::new();
    let mut ticker = tokio::time::interval(flush_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        let message = tokio::select! {
            message = rx.recv() => message,
            _ = ticker.tick() => {
                if !cursors.is_empty() || !buffer.is_empty() {
                    flush(&brotr, &mut buffer, &mut cursors, &mut report).await?;
                }
                continue;
            }
        };
        let Some(message) = message else { break };
        match message {
            Message::Page {
                relay,
                seen_at,
                verified,
                queued,
            } => {
                let (events, rejections, took) = verified.await.map_err(|e| {
                    anyhow::anyhow!("verification of a page from {} failed: {e}", relay.url())
                })?;
                drop(queued);
                report.verify_time += took;
                let tally = report.relays.entry(relay.url().to_owned()).or_default();
                tally.valid += events.len() as u64;
                tally.rejections.add(&rejections);
                buffer.extend(events.into_iter().map(|event| EventRelay {
                    event,
                    relay: relay.clone(),
                    seen_at,
                }));
                if buffer.len() >= batch_size {
                    flush(&brotr, &mut buffer, &mut cursors, &mut report).await?;
                }
            }
            Message::WindowDone(cursor) => cursors.push(cursor),
        }
    }
    flush(&brotr, &mut buffer, &mut cursors, &mut report).await?;
    Ok(report)
}

/// One transaction: the buffered events, then the cursors of windows whose events are all in
/// this or an earlier transaction.
async fn flush(
    brotr: &Brotr,
    buffer: &mut Vec<EventRelay>,
    cursors: &mut Vec<ServiceState>,
    report: &mut WriterReport,
) -> Result<(), bigbrotr_db::DbError> {
    if buffer.is_empty() && cursors.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    report.inserted += brotr.store_sync_progress(buffer, cursors).await?;
    report.write_time += started.elapsed();
    report.written += buffer.len() as u64;
    report.cursors += cursors.len() as u64;
    report.flushes += 1;
    buffer.clear();
    cursors.clear();
    Ok(())
}
