//! The synchronizer: archives the events of every relay of the enabled networks into `event` /
//! `event_relay`, complete, verified and resumable.
//!
//! Each cycle archives `[cursor, end_time]` of every relay, where `end_time = (until or now) −
//! end_lag` and a relay without a cursor starts at `processing.since`. Relay tasks (at most
//! `networks.<net>.max_tasks` per network) walk their relay in windows ([`walk`]) over a lean
//! NIP-01 session, hand each page to the blocking pool for verification ([`verify`]) and pass
//! it on through a bounded channel to the one database writer ([`writer`]), which writes events
//! of all relays in batches and stores each window's cursor in the same transaction as (or
//! after) the window's events.

pub mod config;
pub mod verify;
pub mod walk;
pub mod writer;

use std::collections::HashMap;
use std::time::Duration;

use bigbrotr_core::clock;
use bigbrotr_core::config::BaseServiceConfig;
use bigbrotr_core::metrics::names::synchronizer as names;
use bigbrotr_core::runner::{Context, Daemon};
use bigbrotr_models::relay::{NetworkType, Relay};
use bigbrotr_models::service_state::{Cursor, ServiceName};
use bigbrotr_utils::network::NetworkSemaphores;
use bigbrotr_utils::relay::Connector;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::RelaySettings;
pub use crate::config::SynchronizerConfig;
use crate::verify::Rejections;
use crate::walk::{Walk, WalkError, WalkLimits, WalkStats};
use crate::writer::{Message, WriterReport};

/// Messages (pages or window ends) queued between the relay tasks and the writer at most.
pub const CHANNEL_CAPACITY: usize = 64;

/// Bytes of EVENT frames queued between the relay tasks and the writer at most (pages being
/// verified included); a task whose page does not fit waits.
pub const CHANNEL_BYTES: usize = 64 * 1024 * 1024;

/// How often the writer commits finished windows even when its batch is not full.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// One relay to archive in this cycle.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The relay.
    pub relay: Relay,
    /// First second to archive.
    pub start: i64,
    /// Whether the relay had a cursor.
    pub resumed: bool,
}

/// The result of one relay task.
#[derive(Debug, Clone)]
pub struct RelayOutcome {
    /// The relay URL.
    pub url: String,
    /// What the walk did.
    pub stats: WalkStats,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
    /// The reason, short and bounded (`connect`, `timeout`, `invalid_frames`, ...).
    pub reason: Option<&'static str>,
}

/// What one cycle did.
#[derive(Debug, Clone, Default)]
pub struct CycleReport {
    /// `end_time` of the cycle.
    pub end_time: i64,
    /// Relays with something to archive.
    pub planned: u64,
    /// Relays archived up to `end_time`.
    pub completed: u64,
    /// Relays that failed or stopped early.
    pub failed: u64,
    /// Requests sent.
    pub requests: u64,
    /// EVENT messages received (duplicates and invalid events included).
    pub received: u64,
    /// Saturated seconds, and those left unresolved (no NIP-77).
    pub saturated_seconds: u64,
    /// Saturated seconds the relay could not list.
    pub unresolved_seconds: u64,
    /// Events dropped, summed over relays.
    pub rejections: Rejections,
    /// The writer's figures.
    pub writer: WriterReport,
    /// Per relay.
    pub relays: Vec<RelayOutcome>,
}

/// The synchronizer daemon.
#[derive(Debug)]
pub struct Synchronizer {
    config: SynchronizerConfig,
    connector: Connector,
    semaphores: NetworkSemaphores,
}

impl Synchronizer {
    /// A synchronizer with `config`, reading through `connector` (whose networks and keys should
    /// be the configuration's).
    pub fn new(config: SynchronizerConfig, connector: Connector) -> Self {
        let semaphores = NetworkSemaphores::new(&config.networks);
        Self {
            config,
            connector,
            semaphores,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SynchronizerConfig {
        &self.config
    }

    /// Deletes cursors of relays that no longer exist.
    pub async fn cleanup_cursors(&self, ctx: &Context) -> anyhow::Result<u64> {
        let deleted = ctx.brotr.delete_stale_sync_cursors().await?;
        if deleted > 0 {
            tracing::info!(deleted, "stale_cursors_deleted");
        }
        Ok(deleted)
    }

    /// The relays to archive up to `end_time`, those without a cursor first, then by cursor.
    pub async fn plan(&self, ctx: &Context, end_time: i64) -> anyhow::Result<Vec<Plan>> {
        let networks = self.config.networks.enabled();
        let targets = ctx.brotr.sync_targets(&networks).await?;
        let mut plans: Vec<Plan> = targets
            .into_iter()
            .map(|target| {
                let cursor = target.cursor.as_ref().and_then(|value| {
                    Cursor::from_value(value)
                        .inspect_err(|e| {
                            tracing::warn!(relay = target.relay.url(), error = %e, "cursor_unreadable");
                        })
                        .ok()
                });
                match cursor {
                    Some(cursor) => Plan {
                        relay: target.relay,
                        start: walk::resume_from(&cursor).max(0),
                        resumed: true,
                    },
                    None => Plan {
                        relay: target.relay,
                        start: self.config.processing.since,
                        resumed: false,
                    },
                }
            })
            .filter(|plan| plan.start <= end_time)
            .collect();
        plans.sort_by_key(|plan| (plan.resumed, plan.start));
        Ok(plans)
    }

    /// One archive pass over every relay.
    pub async fn synchronize(&self, ctx: &Context) -> anyhow::Result<CycleReport> {
        let end_time = self.config.end_time(clock::now());
        let settings = self.config.relay_settings()?;
        let plans = self.plan(ctx, end_time).await?;
        let mut report = CycleReport {
            end_time,
            planned: plans.len() as u64,
            ..CycleReport::default()
        };
        ctx.metrics
            .set_gauge(names::RELAYS_PLANNED, plans.len() as f64);
        tracing::info!(relays = plans.len(), end_time, "sync_started");
        let deadline = Instant::now() + Duration::from_secs_f64(self.config.timeouts.max_duration);

        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let queued_bytes = Arc::new(Semaphore::new(CHANNEL_BYTES));
        let batch_size = self.config.processing.batch_size as usize;
        let writer = tokio::spawn(writer::run(ctx.brotr.clone(), rx, batch_size, FLUSH_EVERY));

        // One queue per network, each with its own concurrency, so a slow overlay never holds
        // clearnet relays back.
        let mut by_network: HashMap<NetworkType, Vec<Plan>> = HashMap::new();
        for plan in plans {
            by_network
                .entry(plan.relay.network())
                .or_default()
                .push(plan);
        }
        report.relays = run_relay_tasks(
            by_network,
            |network| {
                self.config
                    .networks
                    .get(network)
                    .map_or(1, |c| c.max_tasks.max(1) as usize)
            },
            || !ctx.is_stopping() && Instant::now() < deadline,
            |plan| {
                let relay_settings = settings.for_relay(&plan.relay).clone();
                self.relay_task(
                    ctx,
                    plan,
                    relay_settings,
                    end_time,
                    deadline,
                    (tx.clone(), queued_bytes.clone()),
                )
            },
        )
        .await;
        drop(tx);
        let writer_report = writer.await??;

        for outcome in &report.relays {
            report.requests += outcome.stats.requests;
            report.received += outcome.stats.received;
            report.saturated_seconds += outcome.stats.saturated_seconds;
            report.unresolved_seconds += outcome.stats.unresolved_seconds;
            if outcome.error.is_none() {
                report.completed += 1;
            } else {
                report.failed += 1;
            }
        }
        for (url, tally) in &writer_report.relays {
            report.rejections.add(&tally.rejections);
            if tally.rejections.total() > 0 {
                let r = &tally.rejections;
                tracing::warn!(
                    relay = url.as_str(),
                    malformed = r.malformed,
                    oversized = r.oversized,
                    mismatched = r.mismatched,
                    invalid_id = r.invalid_id,
                    invalid_signature = r.invalid_signature,
                    unstorable = r.unstorable,
                    "events_rejected"
                );
            }
        }
        report.writer = writer_report;
        self.record_metrics(ctx, &report);
        tracing::info!(
            relays = report.planned,
            completed = report.completed,
            failed = report.failed,
            events = report.writer.written,
            inserted = report.writer.inserted,
            rejected = report.rejections.total(),
            requests = report.requests,
            received = report.received,
            saturated_seconds = report.saturated_seconds,
            unresolved_seconds = report.unresolved_seconds,
            verify_s = report.writer.verify_time.as_secs_f64(),
            write_s = report.writer.write_time.as_secs_f64(),
            "sync_completed"
        );
        Ok(report)
    }

    fn record_metrics(&self, ctx: &Context, report: &CycleReport) {
        let m = &ctx.metrics;
        m.set_gauge(names::RELAYS_COMPLETED, report.completed as f64);
        m.set_gauge(names::RELAYS_FAILED, report.failed as f64);
        m.inc_counter(names::EVENTS_WRITTEN, report.writer.written);
        m.inc_counter(names::EVENTS_INSERTED, report.writer.inserted);
        m.inc_counter(names::REQUESTS, report.requests);
        m.inc_counter(names::SATURATED_SECONDS, report.saturated_seconds);
        m.inc_counter(names::UNRESOLVED_SECONDS, report.unresolved_seconds);
        for (reason, count) in report.rejections.by_reason() {
            m.inc_counter(&format!("{}{reason}", names::EVENTS_REJECTED_PREFIX), count);
        }
        for reason in names::RELAY_FAILURE_REASONS {
            let count = report
                .relays
                .iter()
                .filter(|r| r.reason == Some(reason))
                .count();
            m.inc_counter(
                &format!("{}{reason}", names::RELAY_FAILURES_PREFIX),
                count as u64,
            );
        }
    }

    /// Archives one relay under its network's concurrency; never fails the cycle.
    fn relay_task(
        &self,
        ctx: &Context,
        plan: Plan,
        settings: RelaySettings,
        end_time: i64,
        deadline: Instant,
        (tx, queued_bytes): (mpsc::Sender<Message>, Arc<Semaphore>),
    ) -> impl Future<Output = RelayOutcome> + Send + 'static {
        let connector = self.connector.clone();
        let semaphores = self.semaphores.clone();
        let max_event_size = self.config.processing.max_event_size;
        let shutdown = ctx.shutdown.clone();
        async move {
            let network = plan.relay.network();
            let url = plan.relay.url().to_owned();
            let mut outcome = RelayOutcome {
                url: url.clone(),
                stats: WalkStats::default(),
                error: None,
                reason: None,
            };
            let result = async {
                let _permit = semaphores
                    .acquire(network)
                    .await
                    .ok_or_else(|| ("network", format!("network {network} is not operational")))?;
                if shutdown.is_cancelled() {
                    return Err(("stopped", "stopped before the start".to_owned()));
                }
                let wait = match settings.timeout {
                    Some(wait) => wait,
                    None => connector
                        .timeout(network)
                        .map_err(|e| ("network", e.to_string()))?,
                };
                let mut session = connector
                    .open_session(&plan.relay)
                    .await
                    .map_err(|e| ("connect", e.to_string()))?;
                session.set_bounds(walk::session_bounds(max_event_size));
                let limits = WalkLimits {
                    wait,
                    max_event_size,
                    deadline,
                    shutdown,
                    queued_bytes,
                };
                let mut walk = Walk::new(&mut session, plan.relay.clone(), settings, limits, tx);
                let result = walk.run(plan.start, end_time).await;
                outcome.stats = walk.stats;
                session.close().await;
                result.map_err(|e: WalkError| (e.reason(), e.to_string()))
            }
            .await;
            if let Err((reason, error)) = result {
                tracing::info!(relay = url.as_str(), reason, error = %error, windows = outcome.stats.windows, "relay_sync_failed");
                outcome.error = Some(error);
                outcome.reason = Some(reason);
            } else {
                tracing::debug!(
                    relay = url.as_str(),
                    requests = outcome.stats.requests,
                    windows = outcome.stats.windows,
                    "relay_synced"
                );
            }
            outcome
        }
    }
}

/// Runs `start(plan)` as a task for every plan, at most `capacity(network)` at a time per
/// network (one queue per network, so a slow overlay never holds clearnet relays back), and
/// starts new tasks only while `may_start()` holds. Returns the outcome of every task started.
///
/// A task that panicked is its relay's failure (reason `panic`): the task set is joined by task
/// id, so its network's slot is released and the relay is in the report, as any other failure.
async fn run_relay_tasks<Fut>(
    by_network: HashMap<NetworkType, Vec<Plan>>,
    capacity: impl Fn(NetworkType) -> usize,
    may_start: impl Fn() -> bool,
    mut start: impl FnMut(Plan) -> Fut,
) -> Vec<RelayOutcome>
where
    Fut: Future<Output = RelayOutcome> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let mut started: HashMap<tokio::task::Id, (NetworkType, String)> = HashMap::new();
    let mut queues: HashMap<NetworkType, std::vec::IntoIter<Plan>> = by_network
        .into_iter()
        .map(|(network, plans)| (network, plans.into_iter()))
        .collect();
    let mut running: HashMap<NetworkType, usize> = HashMap::new();
    let mut outcomes = Vec::new();
    loop {
        for (network, queue) in queues.iter_mut() {
            let busy = running.entry(*network).or_default();
            while *busy < capacity(*network) && may_start() {
                let Some(plan) = queue.next() else { break };
                *busy += 1;
                let relay = (*network, plan.relay.url().to_owned());
                let handle = tasks.spawn(start(plan));
                started.insert(handle.id(), relay);
            }
        }
        let Some(joined) = tasks.join_next_with_id().await else {
            break;
        };
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, Some(outcome)),
            Err(error) => {
                tracing::error!(error = %error, "relay_task_panicked");
                (error.id(), None)
            }
        };
        let Some((network, url)) = started.remove(&id) else {
            continue;
        };
        if let Some(busy) = running.get_mut(&network) {
            *busy = busy.saturating_sub(1);
        }
        outcomes.push(outcome.unwrap_or_else(|| {
            tracing::info!(relay = url.as_str(), reason = "panic", "relay_sync_failed");
            RelayOutcome {
                url,
                stats: WalkStats::default(),
                error: Some("the relay task panicked".to_owned()),
                reason: Some("panic"),
            }
        }));
    }
    outcomes
}

impl Daemon for Synchronizer {
    const NAME: ServiceName = ServiceName::Synchronizer;
    type Config = SynchronizerConfig;

    fn base(config: &SynchronizerConfig) -> &BaseServiceConfig {
        &config.base
    }

    async fn build(config: SynchronizerConfig, _ctx: &Context) -> anyhow::Result<Self> {
        let keys = config.keys.load_optional()?;
        if keys.is_none() {
            tracing::warn!(
                keys_env = config.keys.keys_env.as_str(),
                "no_keys: relays that require NIP-42 AUTH will be recorded as failed"
            );
        }
        let connector = Connector::new(config.networks.clone())?
            .with_keys(keys)
            .allow_insecure(config.processing.allow_insecure);
        Ok(Self::new(config, connector))
    }

    async fn cleanup(&mut self, ctx: &Context) -> anyhow::Result<()> {
        self.cleanup_cursors(ctx).await.map(|_| ())
    }

    async fn run(&mut self, ctx: &Context) -> anyhow::Result<()> {
        self.synchronize(ctx).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn plan(url: &str) -> Plan {
        Plan {
            relay: Relay::new(url, 0).unwrap(),
            start: 0,
            resumed: false,
        }
    }

    /// Issue 16: a relay task that panics (a hostile relay reaching a bug) is lost by a plain
    /// `join_next`: its network's slot is never given back, so with one slot nothing else of the
    /// network runs, and the relay is missing from the report.
    #[tokio::test]
    async fn a_panicking_relay_task_releases_its_slot_and_is_reported_failed() {
        let urls = [
            "wss://panics.example.com",
            "wss://b.example.com",
            "wss://c.example.com",
        ];
        let by_network = HashMap::from([(NetworkType::Clearnet, urls.map(plan).to_vec())]);
        let ran = Arc::new(AtomicUsize::new(0));
        let outcomes = run_relay_tasks(
            by_network,
            |_| 1,
            || true,
            |plan| {
                let ran = ran.clone();
                async move {
                    assert_ne!(plan.relay.url(), urls[0], "a bug reached by hostile input");
                    ran.fetch_add(1, Ordering::SeqCst);
                    RelayOutcome {
                        url: plan.relay.url().to_owned(),
                        stats: WalkStats::default(),
                        error: None,
                        reason: None,
                    }
                }
            },
        )
        .await;
        assert_eq!(
            ran.load(Ordering::SeqCst),
            2,
            "the slot was released: the other relays ran"
        );
        let mut reported: Vec<(&str, Option<&str>)> = outcomes
            .iter()
            .map(|o| (o.url.as_str(), o.reason))
            .collect();
        reported.sort_unstable();
        assert_eq!(
            reported,
            [(urls[1], None), (urls[2], None), (urls[0], Some("panic"))]
        );
        assert!(
            names::RELAY_FAILURE_REASONS.contains(&"panic"),
            "counted as relay_failures_panic"
        );
    }

    #[tokio::test]
    async fn each_network_runs_at_most_its_capacity() {
        let by_network = HashMap::from([
            (
                NetworkType::Clearnet,
                (0..6)
                    .map(|i| plan(&format!("wss://r{i}.example.com")))
                    .collect::<Vec<_>>(),
            ),
            (
                NetworkType::Tor,
                vec![plan(&format!("ws://{}.onion", "t".repeat(56)))],
            ),
        ]);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let outcomes = run_relay_tasks(
            by_network,
            |network| {
                if network == NetworkType::Clearnet {
                    2
                } else {
                    1
                }
            },
            || true,
            |plan| {
                let (running, peak) = (running.clone(), peak.clone());
                async move {
                    if plan.relay.network() == NetworkType::Clearnet {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                    }
                    RelayOutcome {
                        url: plan.relay.url().to_owned(),
                        stats: WalkStats::default(),
                        error: None,
                        reason: None,
                    }
                }
            },
        )
        .await;
        assert_eq!(outcomes.len(), 7);
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }
}
