//! The facade's statement runner: retries on transient connection failures only, per-category
//! timeouts enforced by the server, and the batch-size guard.

use std::time::{Duration, Instant};

use bigbrotr_db::DbError;
use bigbrotr_db::catalog::{ReadBudget, Value};
use bigbrotr_db::config::BrotrConfig;
use bigbrotr_testkit::TestDb;

use crate::fixtures::relay;

fn fast_retry_config() -> BrotrConfig {
    let mut config = BrotrConfig::default();
    config.pool.retry.initial_delay = 0.05;
    config.pool.retry.max_delay = 0.1;
    config.pool.retry.max_attempts = 3;
    config
}

#[tokio::test]
async fn a_killed_connection_is_retried_on_a_fresh_one() {
    let db = TestDb::new().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        // Hand out the connection without a health check, so the query meets the dead socket.
        .test_before_acquire(false)
        .connect_with(db.options().clone())
        .await
        .unwrap();
    let brotr = bigbrotr_db::Brotr::from_pool(pool.clone(), fast_retry_config());
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(db.pool())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let inserted = brotr
        .insert_relays(&[relay("wss://retry.example.com", 1)])
        .await
        .expect("the insert is retried on a new connection");
    assert_eq!(inserted, 1);
    let new_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(pid, new_pid);
}

#[tokio::test]
async fn a_statement_error_is_not_retried() {
    let db = TestDb::new().await;
    let mut config = BrotrConfig::default();
    // Were it retried, the retry delay alone would take five seconds.
    config.pool.retry.initial_delay = 5.0;
    config.pool.retry.max_delay = 5.0;
    let brotr = db.brotr_with(config);
    // A relay row whose network violates nothing but whose URL is too long for the b-tree index
    // would be an index error; simplest non-transient failure: a NOT NULL violation.
    sqlx::raw_sql(
        "ALTER TABLE relay ADD CONSTRAINT no_example CHECK (url <> 'wss://bad.example.com')",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let started = Instant::now();
    let err = brotr
        .insert_relays(&[relay("wss://bad.example.com", 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, DbError::Sqlx(sqlx::Error::Database(_))),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4), "no retry delay");
}

/// A transaction the server rolled back to break a deadlock (40P01) is run again: replicas
/// writing the same rows in different orders meet deadlocks, and every write is idempotent.
/// Here a trigger makes the relay insert take advisory lock 1 then 2 while another session holds
/// 2 and then asks for 1; the insert waited first, so it is the one the server cancels.
#[tokio::test]
async fn a_transaction_cancelled_by_a_deadlock_is_run_again() {
    let db = TestDb::new().await;
    sqlx::raw_sql(
        "CREATE FUNCTION locks_1_2() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_advisory_xact_lock(1); PERFORM pg_advisory_xact_lock(2); RETURN NEW; END $$;
         CREATE TRIGGER locks_1_2 BEFORE INSERT ON relay FOR EACH ROW EXECUTE FUNCTION locks_1_2();",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let brotr = db.brotr_with(fast_retry_config());
    let mut other = db.pool().begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(2)")
        .execute(&mut *other)
        .await
        .unwrap();
    let insert = tokio::spawn({
        let brotr = brotr.clone();
        async move {
            brotr
                .insert_relays(&[relay("wss://deadlock.example.com", 1)])
                .await
        }
    });
    // Let the insert take lock 1 and wait for 2, then close the cycle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("SELECT pg_advisory_xact_lock(1)")
        .execute(&mut *other)
        .await
        .unwrap();
    other.commit().await.unwrap();
    let inserted = insert.await.unwrap();
    assert_eq!(inserted.unwrap(), 1, "retried after the deadlock");
    assert_eq!(brotr.relay_count().await.unwrap(), 1);
}

#[tokio::test]
async fn the_category_timeout_cancels_the_statement_server_side() {
    let db = TestDb::new().await;
    let mut config = BrotrConfig::default();
    config.timeouts.batch = Some(0.2);
    let brotr = db.brotr_with(config);
    // A trigger that sleeps makes relay_insert slow.
    sqlx::raw_sql(
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
         CREATE TRIGGER slow BEFORE INSERT ON relay FOR EACH ROW EXECUTE FUNCTION slow();",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let started = Instant::now();
    let err = brotr
        .insert_relays(&[relay("wss://slow.example.com", 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DbError::Timeout {
                category: "batch",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM relay")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(count, 0, "the cancelled transaction was rolled back");
    // The connection is usable afterwards.
    assert_eq!(brotr.relay_count().await.unwrap(), 0);
}

#[tokio::test]
async fn batches_over_max_size_are_rejected_before_reaching_the_database() {
    let db = TestDb::new().await;
    let mut config = BrotrConfig::default();
    config.batch.max_size = 2;
    let brotr = db.brotr_with(config);
    let relays: Vec<_> = (0..3)
        .map(|i| relay(&format!("wss://r{i}.example.com"), 1))
        .collect();
    let err = brotr.insert_relays(&relays).await.unwrap_err();
    assert!(
        matches!(err, DbError::BatchTooLarge { size: 3, max: 2 }),
        "{err:?}"
    );
    assert_eq!(brotr.insert_relays(&relays[..2]).await.unwrap(), 2);
}

#[tokio::test]
async fn refresh_names_must_be_plain_identifiers() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let err = brotr
        .refresh_materialized_view("event_stats; DROP TABLE relay")
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::InvalidIdentifier(_)), "{err:?}");
    brotr
        .refresh_materialized_view("event_stats")
        .await
        .unwrap();
}

/// `pool.limits.statement_cache_size`: 0 (the original's behaviour) leaves no named statement on
/// the connection (sqlx names a statement unless told otherwise, and with its cache off never
/// closes it: one more per call, which behind PgBouncer collide across clients); 100 (the read
/// side's deployment setting) keeps the lookup's, so its repeats skip parsing and planning. The
/// answers are the same either way.
#[tokio::test]
async fn the_statement_cache_size_decides_whether_lookups_are_named() {
    let db = TestDb::new().await;
    db.brotr()
        .insert_relays(&[relay("wss://cached.example.com", 7)])
        .await
        .unwrap();
    let mut answers = Vec::new();
    for size in [0_usize, 100] {
        let mut config = db.config();
        config.pool.limits.min_size = 1;
        config.pool.limits.max_size = 1;
        config.pool.limits.statement_cache_size = size;
        let brotr = bigbrotr_db::Brotr::connect(config, None).await.unwrap();
        let objects = brotr.discover_catalog().await.unwrap();
        let relay_object = objects.iter().find(|o| o.name == "relay").unwrap();
        let key = [Value::Text("wss://cached.example.com".into())];
        for _ in 0..3 {
            answers.push(
                brotr
                    .catalog_get(relay_object, &key, ReadBudget(Duration::from_secs(5)))
                    .await
                    .unwrap()
                    .expect("the relay is found"),
            );
        }
        // The pool's only connection: the one the lookups ran on.
        let named: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_prepared_statements")
            .persistent(false)
            .fetch_one(brotr.pool())
            .await
            .unwrap();
        if size == 0 {
            assert_eq!(named, 0, "statement_cache_size 0: every statement unnamed");
        } else {
            assert!(named >= 1, "statement_cache_size {size}: none named");
        }
        brotr.close().await;
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert!(
        answers[0].contains("wss://cached.example.com"),
        "{}",
        answers[0]
    );
}

/// A lookup runs as one statement outside a transaction (no `SET LOCAL statement_timeout`): the
/// client-side budget still bounds it. Behind an `ACCESS EXCLUSIVE` lock the lookup gives up
/// after its budget, and the connection it left mid-statement serves the next lookup.
#[tokio::test]
async fn a_lookup_blocked_by_a_lock_ends_at_its_budget_and_the_pool_recovers() {
    let db = TestDb::new().await;
    db.brotr()
        .insert_relays(&[relay("wss://locked.example.com", 7)])
        .await
        .unwrap();
    let mut config = db.config();
    config.pool.limits.min_size = 1;
    config.pool.limits.max_size = 1;
    config.pool.limits.statement_cache_size = 100;
    config.pool.retry.max_attempts = 1;
    let brotr = bigbrotr_db::Brotr::connect(config, None).await.unwrap();
    let objects = brotr.discover_catalog().await.unwrap();
    let relay_object = objects.iter().find(|o| o.name == "relay").unwrap().clone();
    let key = [Value::Text("wss://locked.example.com".into())];

    let mut locker = db.pool().begin().await.unwrap();
    sqlx::query("LOCK TABLE relay IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .unwrap();
    let started = Instant::now();
    let err = brotr
        .catalog_get(&relay_object, &key, ReadBudget(Duration::from_millis(500)))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, DbError::Timeout { .. }), "{err:?}");
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    locker.rollback().await.unwrap();

    let found = brotr
        .catalog_get(&relay_object, &key, ReadBudget(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(found.is_some_and(|row| row.contains("wss://locked.example.com")));
    brotr.close().await;
}
