//! Connecting to PostgreSQL: connection options from [`PoolConfig`], connect-time retries with
//! backoff, and the classification of errors as transient (worth a retry on a fresh connection).
//!
//! PgBouncer in transaction mode: by default every statement the facade sends is unnamed (never
//! a server-side prepared statement that could outlive its server connection), as in the
//! original; `pool.limits.statement_cache_size` turns on sqlx's per-connection cache of named
//! statements, which PgBouncer ≥ 1.21 (`max_prepared_statements`) maps onto its server
//! connections. Writes run inside an explicit transaction, which pins one server connection from
//! `BEGIN` to `COMMIT`; session state (timeouts, time zone) is set with `SET LOCAL` in that
//! transaction, never on the session.

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::config::PoolConfig;
use crate::error::Result;

/// Builds the driver's connection options. `password` comes from the environment variable named
/// by `pool.database.password_env`; the caller reads it (secrets never live in YAML).
pub fn connect_options(config: &PoolConfig, password: Option<&str>) -> PgConnectOptions {
    let db = &config.database;
    let mut options = PgConnectOptions::new_without_pgpass()
        .port(db.port)
        .database(&db.database)
        .username(&db.user)
        .application_name(&config.server_settings.application_name)
        // 0 (the default): every statement unnamed, see the module docs.
        .statement_cache_capacity(config.limits.statement_cache_size)
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(30));
    options = if db.host.starts_with('/') {
        options.socket(&db.host)
    } else {
        options.host(&db.host)
    };
    if let Some(password) = password {
        options = options.password(password);
    }
    options
}

/// Opens a pool, retrying the first connection with the configured backoff. Every error is
/// retried here (the server may still be starting); the last one is returned.
pub async fn connect(config: &PoolConfig, password: Option<&str>) -> Result<PgPool> {
    let options = connect_options(config, password);
    let limits = &config.limits;
    let pool_options = PgPoolOptions::new()
        .min_connections(limits.min_size)
        .max_connections(limits.max_size)
        .acquire_timeout(Duration::from_secs_f64(config.timeouts.acquisition))
        .idle_timeout(Some(Duration::from_secs_f64(
            limits.max_inactive_connection_lifetime,
        )))
        // A dropped connection is noticed before it is handed out, not by the query.
        .test_before_acquire(true);
    let mut attempt = 0;
    loop {
        match pool_options.clone().connect_with(options.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(error) => {
                attempt += 1;
                if attempt >= config.retry.max_attempts {
                    return Err(error.into());
                }
                let delay = config.retry.delay(attempt - 1);
                tracing::warn!(
                    target: "pool",
                    attempt,
                    delay_s = delay.as_secs_f64(),
                    error = %error,
                    "connect_retry"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// True when `error` means the attempt failed for a reason outside the statement, so the same
/// transaction may succeed when run again: the connection failed (I/O errors, a dead pool
/// worker, protocol desynchronisation, SQLSTATE class 08, 57P01–57P03: server shutting down or
/// starting), or the server rolled the transaction back to break a deadlock (40P01) or a
/// serialization conflict (40001), which concurrent writers (replicas of a daemon inserting the
/// same events) can meet. Every write is idempotent, so running it again is safe. Everything
/// else — constraint violations, bad input, timeouts — is not retried.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db_error) => db_error.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "40P01" | "40001"
                )
        }),
        _ => false,
    }
}

/// The SQLSTATE PostgreSQL reports when `statement_timeout` cancelled a statement.
pub(crate) fn is_statement_timeout(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("57014"))
}
