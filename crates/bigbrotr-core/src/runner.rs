//! The service runner shared by every daemon: cycles on a fixed schedule (the interval is measured
//! between cycle starts), cleanup then run, cycle metrics, the consecutive-failure cap, graceful
//! shutdown, and `--once`.
//!
//! Shutdown never interrupts a cycle from outside: the runner only cancels the context's token,
//! and services check it between units of work (each unit commits atomically), so a stop never
//! leaves half-written state.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use bigbrotr_db::{Brotr, DbError};
use bigbrotr_models::service_state::ServiceName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::config::{BaseServiceConfig, Validate};
use crate::metrics::Metrics;
use crate::metrics::names::common as names;

/// What a service gets to work with.
#[derive(Debug, Clone)]
pub struct Context {
    /// The database facade.
    pub brotr: Brotr,
    /// This process's metrics.
    pub metrics: Metrics,
    /// Cancelled when the daemon should stop (signal, or end of `--once`).
    pub shutdown: CancellationToken,
}

impl Context {
    /// True once a stop was requested: finish the current unit of work and return.
    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Sleeps for `duration` unless a stop is requested first; returns false when interrupted.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.shutdown.cancelled() => false,
        }
    }
}

/// A BigBrotr daemon: its configuration and its cycle.
pub trait Daemon: Sized + Send {
    /// The service's name (metrics label, state owner, default config path).
    const NAME: ServiceName;
    /// Whether the service writes to the database. A writer (the default) refuses to start on
    /// a read-only standby; the read side (the API, the DVM) says `false`, runs on a standby as
    /// on the primary, and exports how far behind its database is
    /// (`database_replay_lag_seconds`).
    const WRITES: bool = true;
    /// The service's YAML configuration.
    type Config: Serialize + DeserializeOwned + Default + Validate + Clone + std::fmt::Debug + Send;

    /// The keys every service has.
    fn base(config: &Self::Config) -> &BaseServiceConfig;

    /// Checks the service's keys against `brotr.yaml`'s (after the `pool:` overrides): a
    /// mismatch that would fail every cycle (a chunk larger than `batch.max_size`, more
    /// concurrent work than pooled connections) is refused at start, naming both keys.
    fn check_with_brotr(
        _config: &Self::Config,
        _brotr: &bigbrotr_db::config::BrotrConfig,
    ) -> Result<(), crate::config::ConfigError> {
        Ok(())
    }

    /// Builds the service (after the database is reachable).
    fn build(
        config: Self::Config,
        ctx: &Context,
    ) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Housekeeping run before each cycle.
    fn cleanup(&mut self, _ctx: &Context) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }

    /// One cycle of work.
    fn run(&mut self, ctx: &Context) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// How [`run_cycles`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `--once` finished its cycle successfully.
    Completed,
    /// `--once` failed.
    Failed,
    /// A stop was requested (continuous mode, or `--once` interrupted).
    Stopped,
    /// `max_consecutive_failures` cycles failed in a row.
    FailureCapReached,
}

/// Schedule settings taken from the service's base configuration and the CLI.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Time between cycle starts.
    pub interval: Duration,
    /// Failed cycles in a row before giving up (0 = never).
    pub max_consecutive_failures: u32,
    /// One cycle, then return.
    pub once: bool,
}

impl Schedule {
    /// The schedule of a base configuration.
    pub fn from_base(base: &BaseServiceConfig, once: bool) -> Self {
        Self {
            // An interval too long for a Duration (the refresher's has no upper bound) waits
            // "forever" instead of panicking.
            interval: Duration::try_from_secs_f64(base.interval).unwrap_or(Duration::MAX),
            max_consecutive_failures: base.max_consecutive_failures,
            once,
        }
    }
}

/// Drives `daemon` until it is stopped, fails too often, or (with `once`) after one cycle.
pub async fn run_cycles<D: Daemon>(daemon: &mut D, ctx: &Context, schedule: Schedule) -> Outcome {
    let service = D::NAME.as_str();
    let mut consecutive_failures: u32 = 0;
    // Counters start at 0, so rate() and increase() have a series before the first failure.
    ctx.metrics.inc_counter(names::CYCLES_SUCCESS, 0);
    ctx.metrics.inc_counter(names::CYCLES_FAILED, 0);
    ctx.metrics.set_gauge(names::CONSECUTIVE_FAILURES, 0.0);
    loop {
        if ctx.is_stopping() {
            return Outcome::Stopped;
        }
        let started = Instant::now();
        tracing::info!(service, "cycle_started");
        let result = run_one_cycle(daemon, ctx).await;
        let elapsed = started.elapsed();
        match result {
            Ok(()) => {
                consecutive_failures = 0;
                ctx.metrics.inc_counter(names::CYCLES_SUCCESS, 1);
                ctx.metrics.observe_cycle(elapsed.as_secs_f64());
                ctx.metrics
                    .set_gauge(names::LAST_CYCLE_TIMESTAMP, clock::now_f64());
                ctx.metrics.set_gauge(names::CONSECUTIVE_FAILURES, 0.0);
                tracing::info!(
                    duration_s = round3(elapsed.as_secs_f64()),
                    "cycle_completed"
                );
                if schedule.once {
                    tracing::info!("{service}_completed");
                    return if ctx.is_stopping() {
                        Outcome::Stopped
                    } else {
                        Outcome::Completed
                    };
                }
            }
            Err(error) => {
                consecutive_failures += 1;
                ctx.metrics.inc_counter(names::CYCLES_FAILED, 1);
                ctx.metrics.inc_counter(
                    &format!("{}{}", names::ERRORS_PREFIX, error_kind(&error)),
                    1,
                );
                ctx.metrics
                    .set_gauge(names::CONSECUTIVE_FAILURES, f64::from(consecutive_failures));
                tracing::error!(
                    error = %format!("{error:#}"),
                    consecutive_failures,
                    "run_cycle_error"
                );
                if schedule.once {
                    tracing::error!("{service}_failed");
                    return Outcome::Failed;
                }
                if schedule.max_consecutive_failures > 0
                    && consecutive_failures >= schedule.max_consecutive_failures
                {
                    tracing::error!(consecutive_failures, "max_consecutive_failures_reached");
                    return Outcome::FailureCapReached;
                }
            }
        }
        let wait = schedule.interval.saturating_sub(elapsed);
        if !wait.is_zero() && !ctx.sleep(wait).await {
            return Outcome::Stopped;
        }
    }
}

async fn run_one_cycle<D: Daemon>(daemon: &mut D, ctx: &Context) -> anyhow::Result<()> {
    daemon.cleanup(ctx).await?;
    daemon.run(ctx).await
}

/// The process exit code for how the runner ended: 0 on success or a graceful stop, 1 on failure
/// (the consecutive-failure cap included), and 130/143 when a `--once` run was interrupted by
/// SIGINT/SIGTERM before it finished.
pub fn exit_code(outcome: Outcome, once: bool, signal: i32) -> u8 {
    match outcome {
        Outcome::Completed => 0,
        Outcome::Failed | Outcome::FailureCapReached => 1,
        Outcome::Stopped if once && signal == 2 => 130,
        Outcome::Stopped if once && signal == 15 => 143,
        Outcome::Stopped => 0,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A short, stable class name for `errors_<kind>` counters (the original used the exception
/// class): database timeouts, lost connections, server-reported errors, I/O, or generic.
pub fn error_kind(error: &anyhow::Error) -> &'static str {
    for cause in error.chain() {
        if let Some(db) = cause.downcast_ref::<DbError>() {
            return db.class();
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return "OSError";
        }
        if cause
            .downcast_ref::<tokio::time::error::Elapsed>()
            .is_some()
        {
            return "TimeoutError";
        }
    }
    "Error"
}

#[cfg(test)]
mod tests;
