//! The refresher: on every cycle, calls `public.<name>_refresh()` for each name of
//! `refresh.views`, started in order with at most `refresh.concurrency` running at once, each in
//! its own transaction with no statement timeout.
//!
//! One name failing is logged (name and error) and counted, and the next one runs. A cycle in
//! which every name failed is a failed cycle (6.6.9 reported it as a success); a cycle in which
//! some failed succeeds with a warning naming them. Every name must have its refresh function in
//! the database when the daemon starts: a missing one stops it at once, naming the key
//! (`refresh.views[3]: no function public.foo_refresh() in the database`), instead of failing
//! every cycle.
//!
//! Figures: gauges `views_total`, `views_refreshed`, `views_failed` and, for each name refreshed,
//! `duration_<name>` (seconds).

pub mod config;

use std::time::Instant;

use anyhow::anyhow;
use bigbrotr_core::config::BaseServiceConfig;
use bigbrotr_core::runner::{Context, Daemon};
use bigbrotr_db::refresher::{RefreshFunction, refresh_function_name};
use bigbrotr_db::{Brotr, DbError};
use bigbrotr_models::service_state::ServiceName;
use futures_util::stream::{self, StreamExt};

pub use config::{DEFAULT_VIEWS, RefreshConfig, RefresherConfig};

/// What one cycle did.
#[derive(Debug, Default)]
pub struct RefreshReport {
    /// Names refreshed, in order.
    pub refreshed: Vec<String>,
    /// Names that failed, with the error.
    pub failed: Vec<(String, DbError)>,
    /// Names not attempted because a stop was requested.
    pub skipped: usize,
}

impl RefreshReport {
    /// The failed names, comma-separated.
    pub fn failed_names(&self) -> String {
        self.failed
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The refresher daemon.
#[derive(Debug)]
pub struct Refresher {
    config: RefresherConfig,
}

impl Refresher {
    /// A refresher with `config` (not checked against the database; [`Daemon::build`] does that).
    pub fn new(config: RefresherConfig) -> Self {
        Self { config }
    }

    /// The start-up check: every name has a zero-argument `public.<name>_refresh()` the
    /// connected role may execute. The error lists every problem, each naming its key.
    pub async fn check_functions(&self, brotr: &Brotr) -> anyhow::Result<()> {
        let views = &self.config.refresh.views;
        let found = brotr.refresh_functions(views).await?;
        let problems: Vec<String> = views
            .iter()
            .zip(found)
            .enumerate()
            .filter_map(|(index, (name, status))| {
                let function = refresh_function_name(name);
                match status {
                    RefreshFunction::Callable => None,
                    RefreshFunction::Missing => Some(format!(
                        "refresh.views[{index}]: no function public.{function}() in the database"
                    )),
                    RefreshFunction::NotExecutable => Some(format!(
                        "refresh.views[{index}]: the connected role may not execute \
                         public.{function}()"
                    )),
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("{}", problems.join("; ")))
        }
    }

    /// One pass over `refresh.views`: each name refreshed on its own, started in order with at
    /// most `refresh.concurrency` at once; failures logged and counted, a stop honoured before
    /// each start. Returns what happened; [`Daemon::run`] turns a pass in which every attempted
    /// name failed into an error.
    pub async fn refresh_all(&self, ctx: &Context) -> RefreshReport {
        let views = &self.config.refresh.views;
        let metrics = &ctx.metrics;
        metrics.set_gauge("views_total", views.len() as f64);
        metrics.set_gauge("views_refreshed", 0.0);
        metrics.set_gauge("views_failed", 0.0);
        let mut report = RefreshReport::default();
        // Owned names and a cloned facade: the futures borrow nothing from the loop.
        let mut outcomes = stream::iter(views.clone())
            .map(|view| {
                // Evaluated when the refresh is about to start, so a stop is honoured there.
                let stopping = ctx.is_stopping();
                let brotr = ctx.brotr.clone();
                async move {
                    if stopping {
                        return (view, None);
                    }
                    tracing::info!(view = %view, "view_refresh_started");
                    let started = Instant::now();
                    let result = brotr.refresh(&view).await;
                    (view, Some((result, started.elapsed().as_secs_f64())))
                }
            })
            .buffered(self.config.refresh.concurrency.max(1));
        while let Some((view, outcome)) = outcomes.next().await {
            match outcome {
                None => report.skipped += 1,
                Some((Ok(()), seconds)) => {
                    metrics.set_gauge(&format!("duration_{view}"), seconds);
                    tracing::info!(
                        view = %view,
                        duration_s = (seconds * 1000.0).round() / 1000.0,
                        "view_refreshed"
                    );
                    report.refreshed.push(view);
                    metrics.set_gauge("views_refreshed", report.refreshed.len() as f64);
                }
                Some((Err(error), _)) => {
                    tracing::error!(view = %view, error = %error, "view_refresh_failed");
                    report.failed.push((view, error));
                    metrics.set_gauge("views_failed", report.failed.len() as f64);
                }
            }
        }
        if report.skipped > 0 {
            tracing::warn!(remaining = report.skipped, "refresh_interrupted");
        }
        report
    }
}

impl Daemon for Refresher {
    const NAME: ServiceName = ServiceName::Refresher;
    type Config = RefresherConfig;

    fn base(config: &RefresherConfig) -> &BaseServiceConfig {
        &config.base
    }

    async fn build(config: RefresherConfig, ctx: &Context) -> anyhow::Result<Self> {
        let refresher = Self::new(config);
        refresher.check_functions(&ctx.brotr).await?;
        Ok(refresher)
    }

    async fn run(&mut self, ctx: &Context) -> anyhow::Result<()> {
        let mut report = self.refresh_all(ctx).await;
        let refreshed = report.refreshed.len();
        let failed = report.failed.len();
        let names = report.failed_names();
        // Every attempted name failed: the last error is the cause, so the cycle counts under
        // its class (`errors_<kind>`).
        if refreshed == 0
            && let Some((_, last)) = report.failed.pop()
        {
            return Err(anyhow::Error::new(last)
                .context(format!("every view failed to refresh ({failed}): {names}")));
        }
        if failed > 0 {
            tracing::warn!(
                refreshed,
                failed,
                failed_views = %names,
                "refresh_partially_failed"
            );
        } else {
            tracing::info!(refreshed, skipped = report.skipped, "refresh_completed");
        }
        Ok(())
    }
}
