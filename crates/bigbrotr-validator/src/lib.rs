//! The validator: probes candidate relay URLs (the `validator/checkpoint/<url>` rows written by
//! the seeder and the finder) and promotes those that speak Nostr to `relay`.
//!
//! A candidate is due when its network is enabled and it never failed or last failed more than
//! `processing.interval` seconds ago. Due candidates are probed fewest-failures-first, then
//! oldest-first, through a pipeline that keeps at most `processing.chunk_size` probes in flight
//! and at most `networks.<net>.max_tasks` connections per network. A valid relay is inserted and
//! its candidate deleted in one transaction; an invalid one has its failure count raised. Each
//! probe costs at most its network's timeout, so a hostile candidate never stalls a cycle.
//!
//! Replicas share the candidates: each candidate is probed under a lease (`replica:`,
//! bigbrotr-core's `replica` module), so a candidate is probed by one replica at a time and once
//! per cycle; one held by a replica that died is probed by another once its lease expires.

use bigbrotr_core::clock;
use bigbrotr_core::config::{BaseServiceConfig, ConfigError, Validate};
use bigbrotr_core::metrics::names::validator as names;
use bigbrotr_core::replica::{ReplicaConfig, WorkLeases};
use bigbrotr_core::runner::{Context, Daemon};
use bigbrotr_db::validator::Candidate;
use bigbrotr_models::relay::{NetworkType, Relay};
use bigbrotr_models::service_state::{CandidateRecord, ServiceName, ServiceState};
use bigbrotr_utils::network::{NetworkSemaphores, NetworksConfig};
use bigbrotr_utils::relay::Connector;
use bigbrotr_utils::relay::probe::{self, Evidence, ProbeError};
use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};

/// How long finished lease rows are kept: a week, the longest interval of any daemon.
const LEASE_RETENTION: Duration = Duration::from_secs(604_800);

/// `validator.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ValidatorConfig {
    /// The keys every service has.
    #[serde(flatten)]
    pub base: BaseServiceConfig,
    /// `processing:`.
    pub processing: ProcessingConfig,
    /// `cleanup:`.
    pub cleanup: CleanupConfig,
    /// `networks:`.
    pub networks: NetworksConfig,
    /// `replica:` (not in the original): this replica's id and its leases' time to live.
    pub replica: ReplicaConfig,
}

/// `processing:` — how candidates are taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessingConfig {
    /// Candidates fetched per query and kept in flight at most (10–1000).
    pub chunk_size: u32,
    /// Candidates probed per cycle at most (`null`: all that are due).
    pub max_candidates: Option<u64>,
    /// Seconds before a failed candidate is tried again (0–604800).
    pub interval: f64,
    /// Retry a clearnet relay whose certificate is rejected without verification.
    pub allow_insecure: bool,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self {
            chunk_size: 100,
            max_candidates: None,
            interval: 3600.0,
            allow_insecure: false,
        }
    }
}

/// `cleanup:` — dropping hopeless candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CleanupConfig {
    /// Delete candidates that failed `max_failures` times.
    pub enabled: bool,
    /// Failures after which a candidate is deleted (1–1000000; 720 × 1 h ≈ 30 days).
    pub max_failures: u32,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_failures: 720,
        }
    }
}

impl Validate for ValidatorConfig {
    fn shapes() -> Vec<(&'static str, bigbrotr_core::config::Value)> {
        vec![(
            "processing.max_candidates",
            bigbrotr_core::config::Value::from(0),
        )]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.base.validate()?;
        let p = &self.processing;
        if !(10..=1000).contains(&p.chunk_size) {
            return Err(ConfigError(format!(
                "processing.chunk_size = {} is out of range (10..=1000)",
                p.chunk_size
            )));
        }
        if !p.interval.is_finite() || !(0.0..=604_800.0).contains(&p.interval) {
            return Err(ConfigError(format!(
                "processing.interval = {} is out of range (0..=604800)",
                p.interval
            )));
        }
        if p.max_candidates == Some(0) {
            return Err(ConfigError(
                "processing.max_candidates must be at least 1 (or null for no limit)".into(),
            ));
        }
        if !(1..=1_000_000).contains(&self.cleanup.max_failures) {
            return Err(ConfigError(format!(
                "cleanup.max_failures = {} is out of range (1..=1000000)",
                self.cleanup.max_failures
            )));
        }
        self.replica.validate()?;
        self.networks
            .validate()
            .map_err(|e| ConfigError(e.to_string()))
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Candidates due at the start of the cycle.
    pub due: i64,
    /// Candidates probed.
    pub probed: u64,
    /// Relays promoted.
    pub promoted: u64,
    /// Failures recorded.
    pub failed: u64,
}

/// The result of one probe.
struct Verdict {
    candidate: Candidate,
    outcome: Result<(Relay, Evidence), String>,
}

/// The validator daemon.
#[derive(Debug)]
pub struct Validator {
    config: ValidatorConfig,
    connector: Connector,
    semaphores: NetworkSemaphores,
}

impl Validator {
    /// A validator with `config`, probing through `connector` (whose networks should be the
    /// configuration's).
    pub fn new(config: ValidatorConfig, connector: Connector) -> Self {
        let semaphores = NetworkSemaphores::new(&config.networks);
        Self {
            config,
            connector,
            semaphores,
        }
    }

    /// Deletes candidates that are already relays and, when enabled, those at the failure cap.
    pub async fn cleanup_candidates(&self, ctx: &Context) -> anyhow::Result<(u64, u64)> {
        let promoted = ctx.brotr.delete_promoted_candidates().await?;
        let exhausted = if self.config.cleanup.enabled {
            ctx.brotr
                .delete_exhausted_candidates(i64::from(self.config.cleanup.max_failures))
                .await?
        } else {
            0
        };
        // Lease rows no cycle can need (finished or expired a week ago, the longest interval).
        let leases = ctx
            .brotr
            .lease_purge(ServiceName::Validator, LEASE_RETENTION)
            .await?;
        if promoted + exhausted + leases > 0 {
            tracing::info!(promoted, exhausted, leases, "candidates_cleaned");
        }
        Ok((promoted, exhausted))
    }

    /// One validation pass over the due candidates, under this replica's leases.
    pub async fn validate_candidates(&self, ctx: &Context) -> anyhow::Result<CycleReport> {
        let leases =
            WorkLeases::begin(&ctx.brotr, ServiceName::Validator, &self.config.replica).await?;
        let outcome = self.validate_leased(ctx, &leases).await;
        // Whatever is still held (a stop, an error) is given back for the other replicas.
        if let Err(error) = leases.end().await {
            tracing::warn!(error = %error, "lease_release_failed");
        }
        outcome
    }

    async fn validate_leased(
        &self,
        ctx: &Context,
        leases: &WorkLeases,
    ) -> anyhow::Result<CycleReport> {
        let networks: Vec<NetworkType> = self.config.networks.enabled();
        if networks.is_empty() {
            tracing::warn!("no_networks_enabled");
            return Ok(CycleReport::default());
        }
        let names: Vec<String> = networks.iter().map(|n| n.as_str().to_owned()).collect();
        let now = clock::now();
        let attempted_before = now - self.config.processing.interval as i64;
        let mut report = CycleReport {
            due: ctx
                .brotr
                .count_eligible_candidates(&names, attempted_before)
                .await?,
            ..CycleReport::default()
        };
        ctx.metrics.set_gauge(names::TOTAL, report.due as f64);
        tracing::info!(due = report.due, networks = ?names, "validation_started");

        let chunk = i64::from(self.config.processing.chunk_size);
        let budget = self.config.processing.max_candidates.unwrap_or(u64::MAX);
        let mut fetched: u64 = 0;
        let mut last: Option<Candidate> = None;
        let mut exhausted = false;
        let mut in_flight = FuturesUnordered::new();
        let mut verdicts: Vec<Verdict> = Vec::new();
        // Due candidates another replica held when they were fetched: probed here if it gives
        // them back or dies (its lease expires), dropped once it finished them.
        let mut elsewhere: Vec<Candidate> = Vec::new();
        let poll = (self.config.replica.ttl() / 4)
            .clamp(Duration::from_millis(250), Duration::from_secs(5));
        loop {
            // Refill the window when half of it drained: probes stay pipelined across chunks.
            while !exhausted
                && !ctx.is_stopping()
                && (in_flight.len() as i64) <= chunk / 2
                && fetched < budget
            {
                let limit = chunk.min((budget - fetched).min(i64::MAX as u64) as i64);
                let batch = ctx
                    .brotr
                    .fetch_eligible_candidates(&names, attempted_before, last.as_ref(), limit)
                    .await?;
                if batch.is_empty() {
                    exhausted = true;
                    break;
                }
                last = batch.last().cloned();
                let urls: Vec<String> = batch.iter().map(|c| c.url.clone()).collect();
                let claimed: HashSet<String> = leases
                    .claim(&urls, urls.len())
                    .await?
                    .into_iter()
                    .map(|(url, _)| url)
                    .collect();
                fetched += claimed.len() as u64;
                for candidate in batch {
                    if claimed.contains(&candidate.url) {
                        in_flight.push(self.probe_candidate(candidate));
                    } else {
                        elsewhere.push(candidate);
                    }
                }
            }
            if in_flight.is_empty() && (exhausted || fetched >= budget) {
                if elsewhere.is_empty() || ctx.is_stopping() || fetched >= budget {
                    break;
                }
                let urls: Vec<String> = elsewhere.iter().map(|c| c.url.clone()).collect();
                let limit = chunk.min((budget - fetched).min(i64::MAX as u64) as i64) as usize;
                let claimed: HashSet<String> = leases
                    .claim(&urls, limit)
                    .await?
                    .into_iter()
                    .map(|(url, _)| url)
                    .collect();
                if claimed.is_empty() {
                    let pending: HashSet<String> =
                        leases.pending(&urls).await?.into_iter().collect();
                    elsewhere.retain(|c| pending.contains(&c.url));
                    if !elsewhere.is_empty() && !ctx.sleep(poll).await {
                        break;
                    }
                    continue;
                }
                fetched += claimed.len() as u64;
                let (mine, rest): (Vec<Candidate>, Vec<Candidate>) =
                    elsewhere.drain(..).partition(|c| claimed.contains(&c.url));
                elsewhere = rest;
                for candidate in mine {
                    in_flight.push(self.probe_candidate(candidate));
                }
            }
            let Some(verdict) = in_flight.next().await else {
                if ctx.is_stopping() {
                    break;
                }
                // Every candidate of the last batch was held elsewhere: fetch the next one.
                continue;
            };
            report.probed += 1;
            verdicts.push(verdict);
            if verdicts.len() as i64 >= chunk {
                self.record(ctx, leases, &mut verdicts, &mut report).await?;
            }
        }
        self.record(ctx, leases, &mut verdicts, &mut report).await?;
        ctx.metrics.inc_counter(names::VALIDATED, report.promoted);
        ctx.metrics.inc_counter(names::INVALIDATED, report.failed);
        tracing::info!(
            due = report.due,
            probed = report.probed,
            promoted = report.promoted,
            failed = report.failed,
            stopped = ctx.is_stopping(),
            "validation_completed"
        );
        Ok(report)
    }

    async fn probe_candidate(&self, candidate: Candidate) -> Verdict {
        let relay = match Relay::new(&candidate.url, clock::now()) {
            Ok(relay) => relay,
            Err(e) => {
                return Verdict {
                    candidate,
                    outcome: Err(format!("invalid URL: {e}")),
                };
            }
        };
        let Some(_permit) = self.semaphores.acquire(relay.network()).await else {
            return Verdict {
                candidate,
                outcome: Err(format!("network {} is not operational", relay.network())),
            };
        };
        let outcome = match probe::probe(&self.connector, &relay).await {
            Ok(evidence) => Ok((relay, evidence)),
            Err(error) => Err(describe(&error)),
        };
        Verdict { candidate, outcome }
    }

    /// Writes a batch of verdicts: promotions in one transaction, failures in one upsert.
    /// Their leases are marked finished once both writes succeeded.
    async fn record(
        &self,
        ctx: &Context,
        leases: &WorkLeases,
        verdicts: &mut Vec<Verdict>,
        report: &mut CycleReport,
    ) -> anyhow::Result<()> {
        if verdicts.is_empty() {
            return Ok(());
        }
        let urls: Vec<String> = verdicts.iter().map(|v| v.candidate.url.clone()).collect();
        let now = clock::now();
        let mut valid = Vec::new();
        let mut failed = Vec::new();
        for verdict in verdicts.drain(..) {
            match verdict.outcome {
                Ok((relay, evidence)) => {
                    tracing::debug!(relay = relay.url(), ?evidence, "relay_valid");
                    valid.push(relay);
                }
                Err(reason) => {
                    tracing::debug!(relay = %verdict.candidate.url, %reason, "relay_invalid");
                    let network = verdict
                        .candidate
                        .network
                        .parse()
                        .unwrap_or(NetworkType::Unknown);
                    let record = CandidateRecord {
                        network,
                        failures: verdict.candidate.failures.saturating_add(1),
                        timestamp: now,
                    };
                    failed.push(ServiceState::candidate(&verdict.candidate.url, &record)?);
                }
            }
        }
        if !valid.is_empty() {
            ctx.brotr.promote_candidates(&valid).await?;
            report.promoted += valid.len() as u64;
        }
        if !failed.is_empty() {
            ctx.brotr.upsert_service_state(&failed).await?;
            report.failed += failed.len() as u64;
        }
        leases.finish_all(&urls).await?;
        Ok(())
    }
}

/// A short, loggable reason.
fn describe(error: &ProbeError) -> String {
    let text = error.to_string();
    text.chars().take(300).collect()
}

impl Daemon for Validator {
    const NAME: ServiceName = ServiceName::Validator;
    type Config = ValidatorConfig;

    fn check_with_brotr(
        config: &ValidatorConfig,
        brotr: &bigbrotr_db::config::BrotrConfig,
    ) -> Result<(), ConfigError> {
        let chunk = config.processing.chunk_size as usize;
        if chunk > brotr.batch.max_size {
            return Err(ConfigError(format!(
                "processing.chunk_size ({chunk}) is larger than brotr.yaml's batch.max_size ({}): \
                 every promotion would be refused",
                brotr.batch.max_size
            )));
        }
        Ok(())
    }

    fn base(config: &ValidatorConfig) -> &BaseServiceConfig {
        &config.base
    }

    async fn build(config: ValidatorConfig, _ctx: &Context) -> anyhow::Result<Self> {
        let connector = Connector::new(config.networks.clone())?
            .allow_insecure(config.processing.allow_insecure);
        Ok(Self::new(config, connector))
    }

    async fn cleanup(&mut self, ctx: &Context) -> anyhow::Result<()> {
        self.cleanup_candidates(ctx).await.map(|_| ())
    }

    async fn run(&mut self, ctx: &Context) -> anyhow::Result<()> {
        self.validate_candidates(ctx).await.map(|_| ())
    }
}
