//! Tests of the runner's schedule, failure cap, `--once`, shutdown and exit codes, on paused
//! tokio time (deterministic, no sleeping).

use std::sync::{Arc, Mutex};

use bigbrotr_db::config::BrotrConfig;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::*;

/// A daemon whose cycles take `work` and fail according to `fails`.
#[derive(Debug)]
struct Scripted {
    work: Duration,
    fails: Vec<bool>,
    starts: Arc<Mutex<Vec<Instant>>>,
    cleanups: Arc<Mutex<u32>>,
}

impl Daemon for Scripted {
    const NAME: ServiceName = ServiceName::Finder;
    type Config = BaseServiceConfig;

    fn base(config: &BaseServiceConfig) -> &BaseServiceConfig {
        config
    }

    async fn build(_config: BaseServiceConfig, _ctx: &Context) -> anyhow::Result<Self> {
        anyhow::bail!("not used")
    }

    async fn cleanup(&mut self, _ctx: &Context) -> anyhow::Result<()> {
        *self.cleanups.lock().unwrap() += 1;
        Ok(())
    }

    async fn run(&mut self, _ctx: &Context) -> anyhow::Result<()> {
        let n = {
            let mut starts = self.starts.lock().unwrap();
            starts.push(Instant::now());
            starts.len() - 1
        };
        tokio::time::sleep(self.work).await;
        if self.fails.get(n).copied().unwrap_or(false) {
            Err(std::io::Error::other("boom").into())
        } else {
            Ok(())
        }
    }
}

fn scripted(work_ms: u64, fails: Vec<bool>) -> Scripted {
    Scripted {
        work: Duration::from_millis(work_ms),
        fails,
        starts: Arc::default(),
        cleanups: Arc::default(),
    }
}

fn context() -> Context {
    // The runner never touches the database; a lazy pool never connects.
    let pool = PgPoolOptions::new().connect_lazy_with(PgConnectOptions::new());
    Context {
        brotr: Brotr::from_pool(pool, BrotrConfig::default()),
        metrics: Metrics::new("finder"),
        shutdown: CancellationToken::new(),
    }
}

fn schedule(interval_ms: u64, max_failures: u32, once: bool) -> Schedule {
    Schedule {
        interval: Duration::from_millis(interval_ms),
        max_consecutive_failures: max_failures,
        once,
    }
}

#[tokio::test(start_paused = true)]
async fn cycles_start_one_interval_apart_whatever_they_last() {
    let mut daemon = scripted(30, vec![]);
    let ctx = context();
    let starts = daemon.starts.clone();
    let stopper = ctx.shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(350)).await;
        stopper.cancel();
    });
    let outcome = run_cycles(&mut daemon, &ctx, schedule(100, 5, false)).await;
    assert_eq!(outcome, Outcome::Stopped);
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 4);
    for pair in starts.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::from_millis(100));
    }
    assert_eq!(ctx.metrics.counter("cycles_success"), 4);
    assert_eq!(
        *daemon.cleanups.lock().unwrap(),
        4,
        "cleanup runs before every cycle"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_cycle_is_followed_at_once() {
    let mut daemon = scripted(250, vec![]);
    let ctx = context();
    let starts = daemon.starts.clone();
    let stopper = ctx.shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        stopper.cancel();
    });
    run_cycles(&mut daemon, &ctx, schedule(100, 5, false)).await;
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts[1] - starts[0], Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn reaching_the_failure_cap_ends_the_loop() {
    let mut daemon = scripted(1, vec![true; 10]);
    let ctx = context();
    let outcome = run_cycles(&mut daemon, &ctx, schedule(100, 3, false)).await;
    assert_eq!(outcome, Outcome::FailureCapReached);
    assert_eq!(daemon.starts.lock().unwrap().len(), 3);
    assert_eq!(ctx.metrics.counter("cycles_failed"), 3);
    assert_eq!(ctx.metrics.counter("errors_OSError"), 3);
    assert_eq!(ctx.metrics.gauge("consecutive_failures"), 3.0);
    assert_eq!(exit_code(outcome, false, 0), 1, "the cap exits non-zero");
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_consecutive_failures() {
    let mut daemon = scripted(1, vec![true, true, false, true, true, true]);
    let ctx = context();
    let outcome = run_cycles(&mut daemon, &ctx, schedule(10, 3, false)).await;
    assert_eq!(outcome, Outcome::FailureCapReached);
    assert_eq!(daemon.starts.lock().unwrap().len(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_zero_cap_never_gives_up() {
    let mut daemon = scripted(1, vec![true; 50]);
    let ctx = context();
    let stopper = ctx.shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(395)).await;
        stopper.cancel();
    });
    let outcome = run_cycles(&mut daemon, &ctx, schedule(10, 0, false)).await;
    assert_eq!(outcome, Outcome::Stopped);
    assert!(daemon.starts.lock().unwrap().len() >= 30);
}

#[tokio::test(start_paused = true)]
async fn once_runs_cleanup_and_one_cycle() {
    let mut daemon = scripted(1, vec![]);
    let ctx = context();
    let outcome = run_cycles(&mut daemon, &ctx, schedule(100, 5, true)).await;
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(*daemon.cleanups.lock().unwrap(), 1);
    assert_eq!(daemon.starts.lock().unwrap().len(), 1);
    assert_eq!(exit_code(outcome, true, 0), 0);

    let mut failing = scripted(1, vec![true]);
    let outcome = run_cycles(&mut failing, &ctx, schedule(100, 5, true)).await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(exit_code(outcome, true, 0), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_the_wait_ends_promptly_without_another_cycle() {
    let mut daemon = scripted(1, vec![]);
    let ctx = context();
    let stopper = ctx.shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        stopper.cancel();
    });
    let started = Instant::now();
    let outcome = run_cycles(&mut daemon, &ctx, schedule(3_600_000, 5, false)).await;
    assert_eq!(outcome, Outcome::Stopped);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(daemon.starts.lock().unwrap().len(), 1);
}

#[test]
fn exit_codes() {
    assert_eq!(
        exit_code(Outcome::Stopped, false, 15),
        0,
        "SIGTERM in continuous mode is a clean stop"
    );
    assert_eq!(exit_code(Outcome::Stopped, false, 2), 0);
    assert_eq!(exit_code(Outcome::Stopped, true, 2), 130);
    assert_eq!(exit_code(Outcome::Stopped, true, 15), 143);
}

#[test]
fn error_kinds_name_the_cause() {
    let io: anyhow::Error = std::io::Error::other("x").into();
    assert_eq!(error_kind(&io), "OSError");
    let timeout: anyhow::Error = DbError::Timeout {
        category: "batch",
        seconds: 1.0,
    }
    .into();
    assert_eq!(error_kind(&timeout.context("inserting")), "TimeoutError");
    assert_eq!(error_kind(&anyhow::anyhow!("plain")), "Error");
}
