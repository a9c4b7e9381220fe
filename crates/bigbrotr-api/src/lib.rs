//! The API: the tables enabled in `api.yaml` over read-only REST, as the original serves them
//! (same routes under `route_prefix`, same `{"data":…,"meta":…}` and `{"error":…}` bodies and
//! status codes, `/health`), plus keyset cursors, typed filters, cheap totals, an OpenAPI 3.1
//! description of every exposed table (`/openapi.json`, browsable at `/docs`) and bounds on
//! everything a client controls.
//!
//! The HTTP server runs beside the service loop; each cycle (`interval`, 60 s) checks it is
//! still serving and logs the figures. Figures: `requests_total`, `requests_failed`,
//! `tables_exposed` (the original's names) and `http_request_duration_seconds{route,status}`.

pub mod config;
pub mod openapi;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use bigbrotr_catalog::Catalog;
use bigbrotr_core::config::BaseServiceConfig;
use bigbrotr_core::metrics::names;
use bigbrotr_core::runner::{Context, Daemon};
use bigbrotr_models::service_state::ServiceName;
use tokio::task::JoinHandle;

pub use config::ApiConfig;

/// The API daemon.
#[derive(Debug)]
pub struct Api {
    address: SocketAddr,
    server: JoinHandle<std::io::Result<()>>,
    served_before: u64,
}

impl Api {
    /// The address the server listens on (port 0 in the configuration picks a free one).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Daemon for Api {
    const NAME: ServiceName = ServiceName::Api;
    // Read-only: runs on a standby as on the primary.
    const WRITES: bool = false;
    type Config = ApiConfig;

    fn check_with_brotr(
        config: &ApiConfig,
        brotr: &bigbrotr_db::config::BrotrConfig,
    ) -> Result<(), bigbrotr_core::config::ConfigError> {
        let pool = brotr.pool.limits.max_size;
        if let Some(slots) = config.max_concurrent_queries
            && slots > pool
        {
            return Err(bigbrotr_core::config::ConfigError(format!(
                "max_concurrent_queries ({slots}) is larger than the pool (pool.max_size \
                 {pool}): queries past the pool would wait for a connection, not a slot"
            )));
        }
        Ok(())
    }

    fn base(config: &ApiConfig) -> &BaseServiceConfig {
        &config.base
    }

    async fn build(config: ApiConfig, ctx: &Context) -> anyhow::Result<Self> {
        let catalog = Catalog::discover_for(&ctx.brotr, &config.tables)
            .await
            .context("catalog discovery failed")?;
        let exposed = catalog.exposed(&config.tables).len();
        ctx.metrics
            .set_gauge(names::api::TABLES_EXPOSED, exposed as f64);
        let pool_size = ctx.brotr.config().pool.limits.max_size;
        let state = server::AppState::new(config.clone(), catalog, ctx, pool_size);
        // A host name (`localhost`) is resolved, as for the metrics endpoint.
        let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
        let address = listener.local_addr()?;
        let shutdown = ctx.shutdown.clone();
        let router = server::router(Arc::new(state));
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        });
        tracing::info!(
            address = %address,
            prefix = %config.prefix(),
            tables_exposed = exposed,
            "api_listening"
        );
        Ok(Self {
            address,
            server,
            served_before: 0,
        })
    }

    async fn run(&mut self, ctx: &Context) -> anyhow::Result<()> {
        if self.server.is_finished() {
            return Err(anyhow!("the HTTP server stopped"));
        }
        let total = ctx.metrics.counter(names::api::REQUESTS_TOTAL);
        let failed = ctx.metrics.counter(names::api::REQUESTS_FAILED);
        tracing::info!(
            requests_total = total,
            requests_failed = failed,
            requests_since_last_cycle = total.saturating_sub(self.served_before),
            "cycle_stats"
        );
        self.served_before = total;
        Ok(())
    }
}
