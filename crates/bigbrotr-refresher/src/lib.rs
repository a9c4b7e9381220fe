//! The refresher: on every cycle, calls `public.<name>_refresh()` for each name of
//! `refresh.views`, each in its own transaction with no statement timeout. With
//! `refresh.concurrency` 1 they run one after the other in order, as 6.6.9 does. With more, the
//! names are first grouped by the consumers their refresh applies (migration 0004's
//! `analytics.object_consumer`; names that share a consumer would only wait for each other), and
//! up to `refresh.concurrency` groups run at once, each group's names in order.
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
use bigbrotr_core::metrics::names::refresher as metric;
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

    /// One pass over `refresh.views`: each name refreshed on its own, failures logged and
    /// counted, a stop honoured before each start; names grouped and groups run concurrently as
    /// the module documentation says. The report lists names in the configured order. Returns
    /// what happened; [`Daemon::run`] turns a pass in which every attempted name failed into an
    /// error.
    pub async fn refresh_all(&self, ctx: &Context) -> RefreshReport {
        let views = &self.config.refresh.views;
        let concurrency = self.config.refresh.concurrency.max(1);
        let metrics = &ctx.metrics;
        metrics.set_gauge(metric::VIEWS_TOTAL, views.len() as f64);
        metrics.set_gauge(metric::VIEWS_REFRESHED, 0.0);
        metrics.set_gauge(metric::VIEWS_FAILED, 0.0);
        let groups = if concurrency == 1 {
            vec![(0..views.len()).collect()]
        } else {
            match ctx.brotr.refresh_consumers(views).await {
                Ok(consumers) => group_by_consumer(&consumers),
                Err(error) => {
                    // Without the grouping the names still refresh, one group each.
                    tracing::warn!(error = %error, "refresh_groups_unavailable");
                    (0..views.len()).map(|index| vec![index]).collect()
                }
            }
        };
        // Each group's names one after the other; owned names and a cloned facade, so the
        // futures borrow nothing from the loop.
        let mut groups = stream::iter(groups)
            .map(|group| {
                let names: Vec<(usize, String)> =
                    group.into_iter().map(|i| (i, views[i].clone())).collect();
                let brotr = ctx.brotr.clone();
                let shutdown = ctx.shutdown.clone();
                async move {
                    let mut outcomes = Vec::with_capacity(names.len());
                    for (index, view) in names {
                        if shutdown.is_cancelled() {
                            outcomes.push((index, view, None));
                            continue;
                        }
                        tracing::info!(view = %view, "view_refresh_started");
                        let started = Instant::now();
                        let result = brotr.refresh(&view).await;
                        let seconds = started.elapsed().as_secs_f64();
                        match &result {
                            Ok(()) => tracing::info!(
                                view = %view,
                                duration_s = (seconds * 1000.0).round() / 1000.0,
                                "view_refreshed"
                            ),
                            Err(error) => {
                                tracing::error!(view = %view, error = %error, "view_refresh_failed");
                            }
                        }
                        outcomes.push((index, view, Some((result, seconds))));
                    }
                    outcomes
                }
            })
            .buffer_unordered(concurrency);
        let mut outcomes = Vec::with_capacity(views.len());
        while let Some(group) = groups.next().await {
            for (index, view, outcome) in group {
                if let Some((Ok(()), seconds)) = &outcome {
                    metrics.set_gauge(&format!("{}{view}", metric::DURATION_PREFIX), *seconds);
                }
                outcomes.push((index, view, outcome));
            }
        }
        outcomes.sort_by_key(|(index, _, _)| *index);
        let mut report = RefreshReport::default();
        for (_, view, outcome) in outcomes {
            match outcome {
                None => report.skipped += 1,
                Some((Ok(()), _)) => report.refreshed.push(view),
                Some((Err(error), _)) => report.failed.push((view, error)),
            }
        }
        metrics.set_gauge(metric::VIEWS_REFRESHED, report.refreshed.len() as f64);
        metrics.set_gauge(metric::VIEWS_FAILED, report.failed.len() as f64);
        if report.skipped > 0 {
            tracing::warn!(remaining = report.skipped, "refresh_interrupted");
        }
        report
    }
}

/// Groups names (by index) whose refreshes share a consumer, transitively (a name applying two
/// consumers joins their groups); a name without consumers is a group of its own. Groups are
/// ordered by their first name and keep the configured order inside.
pub fn group_by_consumer(consumers: &[Option<Vec<String>>]) -> Vec<Vec<usize>> {
    let mut group_of: Vec<usize> = (0..consumers.len()).collect();
    fn root(group_of: &mut [usize], mut i: usize) -> usize {
        while group_of[i] != i {
            group_of[i] = group_of[group_of[i]];
            i = group_of[i];
        }
        i
    }
    let mut first_with: std::collections::HashMap<&str, usize> = Default::default();
    for (index, names) in consumers.iter().enumerate() {
        for consumer in names.iter().flatten() {
            match first_with.get(consumer.as_str()) {
                Some(&other) => {
                    let (a, b) = (root(&mut group_of, index), root(&mut group_of, other));
                    group_of[a.max(b)] = a.min(b);
                }
                None => {
                    first_with.insert(consumer, index);
                }
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut slot: std::collections::HashMap<usize, usize> = Default::default();
    for index in 0..consumers.len() {
        let group = root(&mut group_of, index);
        let at = *slot.entry(group).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[at].push(index);
    }
    groups
}

impl Daemon for Refresher {
    const NAME: ServiceName = ServiceName::Refresher;
    type Config = RefresherConfig;

    fn check_with_brotr(
        config: &RefresherConfig,
        brotr: &bigbrotr_db::config::BrotrConfig,
    ) -> Result<(), bigbrotr_core::config::ConfigError> {
        let pool = brotr.pool.limits.max_size as usize;
        if config.refresh.concurrency > pool {
            return Err(bigbrotr_core::config::ConfigError(format!(
                "refresh.concurrency ({}) is larger than the pool (pool.max_size {pool}): the \
                 extra refreshes would only wait for a connection",
                config.refresh.concurrency
            )));
        }
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::group_by_consumer;

    fn c(names: &[&str]) -> Option<Vec<String>> {
        Some(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn names_sharing_a_consumer_are_grouped_transitively_in_order() {
        let consumers = vec![
            c(&["metadata"]),
            c(&["event"]),
            c(&["metadata", "sighting"]),
            None,
            c(&["sighting"]),
            c(&["event"]),
        ];
        assert_eq!(
            group_by_consumer(&consumers),
            vec![vec![0, 2, 4], vec![1, 5], vec![3]]
        );
    }

    #[test]
    fn without_consumers_every_name_is_its_own_group() {
        assert_eq!(
            group_by_consumer(&[None, None, None]),
            vec![vec![0], vec![1], vec![2]]
        );
    }
}
