//! The finder: discovers relay URLs and stores them as validator candidates. Each cycle runs
//! three phases, each optional: HTTP API sources (JMESPath over their JSON), relay URLs named in
//! the archive's events (per-relay `(seen_at, event_id)` cursors), and live discovery of kind
//! 10002 / 30166 events from configured relays (beyond the original). URLs go through the models
//! sanitiser; known relays and existing candidates are skipped.

pub mod api;
pub mod config;
pub mod events;
pub mod live;

use bigbrotr_core::config::BaseServiceConfig;
use bigbrotr_core::metrics::names::finder as names;
use bigbrotr_core::runner::{Context, Daemon};
use bigbrotr_models::service_state::ServiceName;
use bigbrotr_utils::relay::Connector;

pub use config::{ApiConfig, ApiSource, EventsConfig, FinderConfig, LiveConfig};

/// What one cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// The API phase.
    pub api: api::ApiReport,
    /// The event phase.
    pub events: events::EventsReport,
    /// Live discovery.
    pub live: live::LiveReport,
}

/// The finder daemon.
pub struct Finder {
    config: FinderConfig,
    sources: Vec<api::CompiledSource>,
    connector: Connector,
}

impl std::fmt::Debug for Finder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finder")
            .field("config", &self.config)
            .finish()
    }
}

impl Finder {
    /// A finder with `config`, reaching live relays through `connector`.
    pub fn new(config: FinderConfig, connector: Connector) -> anyhow::Result<Self> {
        let sources = api::compile(&config.api)?;
        Ok(Self {
            config,
            sources,
            connector,
        })
    }

    /// Deletes cursors of relays that no longer exist (live cursors of relays no longer
    /// configured) and checkpoints of sources no longer configured.
    pub async fn cleanup_state(&self, ctx: &Context) -> anyhow::Result<(u64, u64)> {
        let sources: Vec<String> = self
            .config
            .api
            .sources
            .iter()
            .map(|s| s.url.clone())
            .collect();
        let (cursors, checkpoints) = ctx
            .brotr
            .delete_stale_finder_state(&sources, &self.config.live.relays)
            .await?;
        if cursors + checkpoints > 0 {
            tracing::info!(cursors, checkpoints, "finder_state_cleaned");
        }
        Ok((cursors, checkpoints))
    }

    /// One cycle: API, events, live; a failed phase is logged and the next one still runs,
    /// and the cycle fails if any phase failed.
    pub async fn find(&self, ctx: &Context) -> anyhow::Result<CycleReport> {
        let mut report = CycleReport::default();
        let mut failures = Vec::new();
        if self.config.api.enabled && !ctx.is_stopping() {
            match api::run(ctx, &self.config.api, &self.sources, &self.config.networks).await {
                Ok(r) => report.api = r,
                Err(e) => failures.push(format!("api phase: {e:#}")),
            }
        }
        if self.config.events.enabled && !ctx.is_stopping() {
            match events::run(ctx, &self.config.events).await {
                Ok(r) => report.events = r,
                Err(e) => failures.push(format!("event phase: {e:#}")),
            }
        }
        if self.config.live.enabled && !ctx.is_stopping() {
            match live::run(ctx, &self.config.live, &self.connector).await {
                Ok(r) => report.live = r,
                Err(e) => failures.push(format!("live phase: {e:#}")),
            }
        }
        let added = report.api.added + report.events.added + report.live.added;
        ctx.metrics.inc_counter(names::CANDIDATES_FOUND, added);
        ctx.metrics
            .set_gauge(names::API_SOURCES_FAILED, report.api.failed as f64);
        ctx.metrics
            .set_gauge(names::LIVE_RELAYS_FAILED, report.live.failed as f64);
        if failures.is_empty() {
            Ok(report)
        } else {
            anyhow::bail!(failures.join("; "))
        }
    }
}

impl Daemon for Finder {
    const NAME: ServiceName = ServiceName::Finder;
    type Config = FinderConfig;

    fn base(config: &FinderConfig) -> &BaseServiceConfig {
        &config.base
    }

    async fn build(config: FinderConfig, _ctx: &Context) -> anyhow::Result<Self> {
        let connector = Connector::new(config.networks.clone())?;
        Self::new(config, connector)
    }

    async fn cleanup(&mut self, ctx: &Context) -> anyhow::Result<()> {
        self.cleanup_state(ctx).await.map(|_| ())
    }

    async fn run(&mut self, ctx: &Context) -> anyhow::Result<()> {
        self.find(ctx).await.map(|_| ())
    }
}
