//! The refresher against a real database: configuration rules, the start-up catalog check that
//! names the key, per-view isolation, a cycle where every view fails, the metrics, no statement
//! timeout, the `refresher` role running every default refresh function, and the entry point.

use std::path::PathBuf;
use std::process::ExitCode;

use bigbrotr_core::cli::Cli;
use bigbrotr_core::config::{self, Loaded, Validate};
use bigbrotr_core::metrics::Metrics;
use bigbrotr_core::runner::{self, Context, Daemon, Outcome, Schedule};
use bigbrotr_db::Brotr;
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_refresher::{DEFAULT_VIEWS, RefreshConfig, Refresher, RefresherConfig};
use bigbrotr_testkit::TestDb;
use clap::Parser;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::dbkit::{ev0, exec, insert_events};

const UNUSED_PREFIX: &str = "BIGBROTR_TEST_UNUSED_PREFIX__";

fn load(yaml: &str) -> Result<Loaded<RefresherConfig>, String> {
    let value = config::parse_yaml(yaml, std::path::Path::new("refresher.yaml")).unwrap();
    config::load_value(value, true, UNUSED_PREFIX, "refresher.yaml").map_err(|e| e.0)
}

fn views(names: &[&str]) -> RefresherConfig {
    RefresherConfig {
        refresh: RefreshConfig {
            views: names.iter().map(|n| (*n).to_owned()).collect(),
            ..RefreshConfig::default()
        },
        ..RefresherConfig::default()
    }
}

/// A facade connected as `role` (the test cluster trusts local users), pool of two like the
/// deployments.
async fn connect_as(db: &TestDb, role: &str) -> Brotr {
    let mut config = db.config();
    config.pool.database.user = role.to_owned();
    config.pool.limits.max_size = 2;
    Brotr::connect(config, None).await.unwrap()
}

fn context(brotr: Brotr) -> Context {
    Context {
        brotr,
        metrics: Metrics::new("refresher"),
        shutdown: CancellationToken::new(),
    }
}

/// One `--once` cycle through the runner, as the entry point runs it.
async fn one_cycle(refresher: &mut Refresher, ctx: &Context) -> Outcome {
    let schedule = Schedule {
        interval: std::time::Duration::from_secs(60),
        max_consecutive_failures: 5,
        once: true,
    };
    runner::run_cycles(refresher, ctx, schedule).await
}

/// A refresh function that always fails.
async fn create_failing(db: &TestDb, name: &str) {
    exec(
        db.pool(),
        &format!(
            "CREATE FUNCTION public.{name}_refresh() RETURNS VOID LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION '{name} exploded'; END $$"
        ),
    )
    .await;
}

async fn event_count(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT event_count FROM event_stats")
        .fetch_optional(db.pool())
        .await
        .unwrap()
        .unwrap_or(0)
}

#[test]
fn refresher_config_defaults_and_validation_name_the_key() {
    let defaults = RefresherConfig::default();
    assert_eq!(defaults.base.interval, 86_400.0);
    assert_eq!(defaults.refresh.views, DEFAULT_VIEWS);
    assert_eq!(
        DEFAULT_VIEWS[..13],
        crate::dbkit::VIEWS_IN_ORDER,
        "the original's 13 views in its order, then this project's additions"
    );
    assert_eq!(DEFAULT_VIEWS[13..], ["relay_uptime_daily", "relay_uptime"]);
    defaults.validate().unwrap();

    let loaded = load("").unwrap();
    assert_eq!(loaded.config, defaults, "an empty file means the defaults");

    let error = load("interval: 59\n").unwrap_err();
    assert!(error.contains("interval = 59 is out of range"), "{error}");
    load("interval: 60\n").unwrap();
    // No upper bound, unlike every other service (604800 there).
    let loaded = load("interval: 10000000\n").unwrap();
    assert_eq!(loaded.config.base.interval, 1e7);
    let schedule = Schedule::from_base(&loaded.config.base, false);
    assert_eq!(schedule.interval.as_secs(), 10_000_000);
    // Beyond what a Duration holds: still accepted, waits "forever" instead of panicking.
    let huge = load("interval: 1.0e30\n").unwrap();
    Schedule::from_base(&huge.config.base, false);

    let error = load("refresh:\n  views: [event_stats, Bad-Name, kind_counts]\n").unwrap_err();
    assert!(error.contains("refresh.views[1]"), "{error}");
    assert!(error.contains("^[a-z_][a-z0-9_]*$"), "{error}");
    let error = load("refresh:\n  views: [\"1abc\"]\n").unwrap_err();
    assert!(error.contains("refresh.views[0]"), "{error}");
    let error = load(&format!("refresh:\n  views: [{}]\n", "a".repeat(56))).unwrap_err();
    assert!(error.contains("refresh.views[0]"), "{error}");
    let error = load("refresh:\n  views: []\n").unwrap_err();
    assert!(error.contains("refresh.views"), "{error}");
    let error = load("refresh:\n  views: event_stats\n").unwrap_err();
    assert!(error.contains("refresh.views"), "{error}");
}

#[test]
fn refresher_the_original_yaml_shape_loads_with_the_same_meaning() {
    // BigBrotr 6.6.9's refresher.yaml keys, as its deployment and docs write them.
    let yaml = "\
interval: 3600
max_consecutive_failures: 5
metrics:
  enabled: true
  port: 8000
  host: \"0.0.0.0\"
  path: /metrics
pool:
  user: refresher
  password_env: DB_REFRESHER_PASSWORD
  min_size: 1
  max_size: 2
refresh:
  views:
    - relay_metadata_latest
    - event_stats
    - relay_stats
    - kind_counts
    - kind_counts_by_relay
    - pubkey_counts
    - pubkey_counts_by_relay
    - network_stats
    - relay_software_counts
    - supported_nip_counts
    - event_daily_counts
";
    let loaded = load(yaml).unwrap();
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    let c = loaded.config;
    assert_eq!(c.base.interval, 3600.0);
    assert_eq!(c.base.max_consecutive_failures, 5);
    assert!(c.base.metrics.enabled);
    assert_eq!(c.base.metrics.host, "0.0.0.0");
    assert_eq!(c.base.pool.user.as_deref(), Some("refresher"));
    assert_eq!(
        c.base.pool.password_env.as_deref(),
        Some("DB_REFRESHER_PASSWORD")
    );
    assert_eq!(c.base.pool.max_size, Some(2));
    assert_eq!(c.refresh.views.len(), 11, "the list replaces the default");
    assert_eq!(c.refresh.views[8], "relay_software_counts");
    assert_eq!(c.refresh.views[10], "event_daily_counts");
    // The pool overrides reach the connection settings.
    let mut brotr = BrotrConfig::default();
    c.base.pool.apply(&mut brotr, "refresher");
    assert_eq!(brotr.pool.database.user, "refresher");
    assert_eq!(brotr.pool.database.password_env, "DB_REFRESHER_PASSWORD");
    assert_eq!(brotr.pool.limits.max_size, 2);
    assert_eq!(brotr.pool.server_settings.application_name, "refresher");
}

#[tokio::test]
async fn refresher_start_up_fails_naming_the_key_of_each_name_without_a_callable_function() {
    let db = TestDb::new().await;
    // Not a refresh function: takes an argument.
    exec(
        db.pool(),
        "CREATE FUNCTION public.argy_refresh(n INTEGER) RETURNS VOID LANGUAGE sql AS $$ SELECT $$",
    )
    .await;
    // Exists, but the refresher may not run it.
    exec(
        db.pool(),
        "CREATE FUNCTION public.secret_refresh() RETURNS VOID LANGUAGE sql AS $$ SELECT $$; \
         REVOKE EXECUTE ON FUNCTION public.secret_refresh() FROM PUBLIC, writer, reader, refresher",
    )
    .await;
    let ctx = context(connect_as(&db, "refresher").await);
    let config = views(&["event_stats", "foo", "argy", "kind_counts", "secret"]);
    let error = Refresher::build(config, &ctx).await.unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("refresh.views[1]: no function public.foo_refresh() in the database"),
        "{message}"
    );
    assert!(
        message.contains("refresh.views[2]: no function public.argy_refresh() in the database"),
        "{message}"
    );
    assert!(
        message.contains(
            "refresh.views[4]: the connected role may not execute public.secret_refresh()"
        ),
        "{message}"
    );
    assert!(
        !message.contains("views[0]") && !message.contains("views[3]"),
        "{message}"
    );
    // Nothing was refreshed: the check runs before any cycle.
    assert_eq!(ctx.metrics.counter("cycles_failed"), 0);

    // Through the binary's entry point: exit 1 before the first cycle.
    let dir = TempDir::new();
    let (brotr_path, service) = dir.configs(&db, &["event_stats", "foo"]);
    assert_eq!(run_once(&brotr_path, &service).await, ExitCode::from(1));

    // Every function there, the check passes.
    Refresher::build(views(&["event_stats", "kind_counts"]), &ctx)
        .await
        .unwrap();
}

#[tokio::test]
async fn refresher_one_failing_view_is_isolated_and_counted() {
    let db = TestDb::new().await;
    create_failing(&db, "boom").await;
    let events: Vec<_> = (0..7)
        .map(|n| ev0(n, 1, 1_000_000 + i64::from(n), 1))
        .collect();
    insert_events(db.pool(), &events).await;
    assert_eq!(event_count(&db).await, 0, "not refreshed yet");

    let ctx = context(connect_as(&db, "refresher").await);
    let mut refresher = Refresher::build(views(&["boom", "event_stats"]), &ctx)
        .await
        .unwrap();
    let outcome = one_cycle(&mut refresher, &ctx).await;
    assert_eq!(
        outcome,
        Outcome::Completed,
        "some views refreshed: a success"
    );
    assert_eq!(
        event_count(&db).await,
        7,
        "event_stats refreshed after boom failed"
    );

    let m = &ctx.metrics;
    let text = m.encode();
    assert!(
        !text.contains("name=\"duration_boom\""),
        "no duration for a failed view:\n{text}"
    );
    assert_eq!(m.gauge("views_total"), 2.0);
    assert_eq!(m.gauge("views_refreshed"), 1.0);
    assert_eq!(m.gauge("views_failed"), 1.0);
    assert!(m.gauge("duration_event_stats") > 0.0);
    assert!(
        text.contains("service_gauge{service=\"refresher\",name=\"views_failed\"} 1"),
        "{text}"
    );
    assert_eq!(m.counter("cycles_success"), 1);
    assert_eq!(m.counter("cycles_failed"), 0);

    // The report names the failure and keeps its error.
    let report = refresher.refresh_all(&ctx).await;
    assert_eq!(report.refreshed, ["event_stats"]);
    assert_eq!(report.failed_names(), "boom");
    assert!(
        report.failed[0].1.to_string().contains("boom exploded"),
        "{}",
        report.failed[0].1
    );
}

#[tokio::test]
async fn refresher_a_cycle_where_every_view_fails_is_a_failed_cycle() {
    let db = TestDb::new().await;
    create_failing(&db, "boom").await;
    create_failing(&db, "bang").await;
    let ctx = context(connect_as(&db, "refresher").await);
    let mut refresher = Refresher::build(views(&["boom", "bang"]), &ctx)
        .await
        .unwrap();
    let error = refresher.run(&ctx).await.unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("every view failed to refresh (2): boom,bang"),
        "{message}"
    );
    assert!(message.contains("bang exploded"), "{message}");
    assert_eq!(runner::error_kind(&error), "PostgresError");
    assert_eq!(ctx.metrics.gauge("views_failed"), 2.0);
    assert_eq!(ctx.metrics.gauge("views_refreshed"), 0.0);

    let outcome = one_cycle(&mut refresher, &ctx).await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(ctx.metrics.counter("cycles_failed"), 1);
    assert_eq!(ctx.metrics.counter("errors_PostgresError"), 1);

    // `--once` exits non-zero.
    let dir = TempDir::new();
    let (brotr_path, service) = dir.configs(&db, &["boom", "bang"]);
    assert_eq!(run_once(&brotr_path, &service).await, ExitCode::from(1));
}

#[tokio::test]
async fn refresher_a_stop_is_honoured_between_views() {
    let db = TestDb::new().await;
    let ctx = context(connect_as(&db, "refresher").await);
    let refresher = Refresher::build(views(&["event_stats", "kind_counts"]), &ctx)
        .await
        .unwrap();
    insert_events(db.pool(), &[ev0(1, 1, 1_000_000, 1)]).await;
    ctx.shutdown.cancel();
    let report = refresher.refresh_all(&ctx).await;
    assert_eq!(report.skipped, 2);
    assert!(report.refreshed.is_empty() && report.failed.is_empty());
    assert_eq!(event_count(&db).await, 0);
}

#[tokio::test]
async fn refresher_refreshes_run_without_any_statement_timeout() {
    let db = TestDb::new().await;
    // A refresh that takes 1.5 s, with every timeout the daemon could inherit set far lower:
    // timeouts.refresh, server_settings.statement_timeout and the role's own default.
    exec(
        db.pool(),
        "CREATE FUNCTION public.slow_refresh() RETURNS VOID LANGUAGE sql AS \
         $$ SELECT pg_sleep(1.5) $$",
    )
    .await;
    exec(
        db.pool(),
        &format!(
            "ALTER ROLE refresher IN DATABASE {} SET statement_timeout = '200ms'",
            db.name()
        ),
    )
    .await;
    let mut config = db.config();
    config.pool.database.user = "refresher".into();
    config.pool.server_settings.statement_timeout = 200;
    config.timeouts.refresh = Some(0.2);
    let brotr = Brotr::connect(config, None).await.unwrap();
    // The settings bite for everything else.
    let error = sqlx::query("SELECT pg_sleep(1)")
        .execute(brotr.pool())
        .await
        .unwrap_err();
    assert_eq!(
        crate::dbkit::sqlstate(&error).as_deref(),
        Some("57014"),
        "the role's statement_timeout applies: {error}"
    );
    let error = brotr.refresh_materialized_view("slow").await.unwrap_err();
    assert!(error.to_string().contains("timed out"), "{error}");

    let ctx = context(brotr);
    let mut refresher = Refresher::build(views(&["slow"]), &ctx).await.unwrap();
    refresher.run(&ctx).await.unwrap();
    assert_eq!(ctx.metrics.gauge("views_refreshed"), 1.0);
    assert!(ctx.metrics.gauge("duration_slow") >= 1.5);
}

/// Needs migrations/0004 (incremental analytics): until it lands, `relay_uptime_daily_refresh()`
/// and `relay_uptime_refresh()` do not exist and the start-up check names them.
#[tokio::test]
async fn refresher_role_runs_every_default_refresh_function() {
    let db = TestDb::new().await;
    insert_events(
        db.pool(),
        &[ev0(1, 1, 1_000_000, 1), ev0(2, 2, 1_000_001, 0)],
    )
    .await;
    let ctx = context(connect_as(&db, "refresher").await);
    let mut refresher = Refresher::build(RefresherConfig::default(), &ctx)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    refresher.run(&ctx).await.unwrap();
    assert_eq!(ctx.metrics.gauge("views_total"), 15.0);
    assert_eq!(ctx.metrics.gauge("views_failed"), 0.0);
    assert_eq!(ctx.metrics.gauge("views_refreshed"), 15.0);
    for view in DEFAULT_VIEWS {
        assert!(
            ctx.metrics
                .encode()
                .contains(&format!("name=\"duration_{view}\"")),
            "{view}"
        );
    }
    assert_eq!(event_count(&db).await, 2);
}

#[tokio::test]
async fn refresher_the_entry_point_refreshes_as_the_refresher_role_and_exits_zero() {
    let db = TestDb::new().await;
    insert_events(
        db.pool(),
        &[ev0(1, 1, 1_000_000, 1), ev0(2, 1, 1_000_001, 1)],
    )
    .await;
    // Records who logged in (SECURITY DEFINER: the refresher itself may not write tables).
    exec(
        db.pool(),
        "CREATE TABLE refresh_log (who TEXT); \
         CREATE FUNCTION public.whoami_refresh() RETURNS VOID LANGUAGE sql SECURITY DEFINER AS \
         $$ INSERT INTO refresh_log VALUES (session_user::text) $$",
    )
    .await;
    let dir = TempDir::new();
    let (brotr_path, service) = dir.configs(&db, &["whoami", "event_stats", "kind_counts"]);
    assert_eq!(run_once(&brotr_path, &service).await, ExitCode::SUCCESS);
    assert_eq!(event_count(&db).await, 2);
    let who: Vec<String> = sqlx::query_scalar("SELECT who FROM refresh_log")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(who, ["refresher"], "one refresh, as the refresher role");
}

async fn run_once(brotr: &std::path::Path, service: &std::path::Path) -> ExitCode {
    let cli = Cli::parse_from([
        "bigbrotr-refresher",
        "--once",
        "--config",
        service.to_str().unwrap(),
        "--brotr-config",
        brotr.to_str().unwrap(),
    ]);
    bigbrotr_core::bootstrap::run_with_cli::<Refresher>(cli).await
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("bigbrotr-refresher-it-{:x}", rand_suffix()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// `brotr.yaml` pointing at `db` (as its superuser) and a `refresher.yaml` that connects as
    /// `refresher` like the deployments, refreshing `views`.
    fn configs(&self, db: &TestDb, views: &[&str]) -> (PathBuf, PathBuf) {
        let brotr = self.0.join("brotr.yaml");
        // YAML is a superset of JSON.
        std::fs::write(&brotr, serde_json::to_string(&db.config()).unwrap()).unwrap();
        let service = self.0.join("refresher.yaml");
        let config = json!({
            "interval": 86400,
            "pool": {"user": "refresher", "max_size": 2},
            "refresh": {"views": views},
        });
        std::fs::write(&service, config.to_string()).unwrap();
        (brotr, service)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        ^ u128::from(std::process::id())
}

#[tokio::test]
async fn refresher_runs_up_to_concurrency_refreshes_at_once_and_reports_them_in_order() {
    let db = TestDb::new().await;
    // first_refresh() succeeds only if second_refresh() commits while it waits (2 s at most):
    // that happens only when the two run at the same time.
    exec(
        db.pool(),
        "CREATE TABLE handshake (x int);
         GRANT SELECT, INSERT ON handshake TO refresher;
         CREATE FUNCTION public.first_refresh() RETURNS VOID LANGUAGE plpgsql AS $$
         BEGIN
             FOR i IN 1..40 LOOP
                 IF EXISTS (SELECT 1 FROM handshake) THEN RETURN; END IF;
                 PERFORM pg_sleep(0.05);
             END LOOP;
             RAISE EXCEPTION 'second_refresh never ran alongside';
         END $$;
         CREATE FUNCTION public.second_refresh() RETURNS VOID LANGUAGE sql AS
             'INSERT INTO handshake VALUES (1)';",
    )
    .await;
    let ctx = context(connect_as(&db, "refresher").await);

    let mut config = views(&["first", "second"]);
    config.refresh.concurrency = 1;
    let refresher = Refresher::build(config, &ctx).await.unwrap();
    let report = refresher.refresh_all(&ctx).await;
    assert_eq!(
        report.failed_names(),
        "first",
        "one at a time, first waits in vain"
    );
    assert_eq!(report.refreshed, ["second"]);

    exec(db.pool(), "DELETE FROM handshake").await;
    let refresher = Refresher::build(views(&["first", "second"]), &ctx)
        .await
        .unwrap();
    let report = refresher.refresh_all(&ctx).await;
    assert!(report.failed.is_empty(), "{}", report.failed_names());
    assert_eq!(
        report.refreshed,
        ["first", "second"],
        "reported in the configured order"
    );
    assert_eq!(ctx.metrics.gauge("views_refreshed"), 2.0);

    // Names whose refreshes apply the same consumer (analytics.object_consumer) would only wait
    // for each other: they are started one after the other, in order, even at concurrency 2.
    exec(
        db.pool(),
        "DELETE FROM handshake;
         INSERT INTO analytics.object_consumer VALUES ('first', '{x}'), ('second', '{x,y}')",
    )
    .await;
    let report = refresher.refresh_all(&ctx).await;
    assert_eq!(report.failed_names(), "first", "same consumer, same queue");
    assert_eq!(report.refreshed, ["second"]);
}
