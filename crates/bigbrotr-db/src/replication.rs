//! Streaming replication: whether the connected server is a read-only standby and how far it
//! lags behind its primary (the read side's `/health` and gauge), the start-up refusal of
//! writers on a standby, and the replication role a standby logs in as.
//!
//! The lag is measured on the standby alone, as PostgreSQL's documentation suggests: 0 while a
//! WAL receiver runs and everything received is replayed (an idle primary sends nothing, so
//! nothing is behind), otherwise the seconds since the last replayed transaction committed on the
//! primary (a standby cut off from its primary therefore shows a lag that grows). Unknown (`None`)
//! on a standby that has replayed no transaction since it started and is not caught up; `None`
//! on a primary.

use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Row};

use crate::Brotr;
use crate::config::DatabaseConfig;
use crate::error::{DbError, Result};

/// Where the connected server stands in replication.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replication {
    /// The server is in recovery: a hot standby, read-only.
    pub standby: bool,
    /// Seconds the standby's data is behind the primary (see the module's documentation);
    /// `None` on a primary, or on a standby whose lag is not known yet.
    pub replay_lag_seconds: Option<f64>,
}

/// The replication state in one statement (no function of the schema: it works on any server,
/// for any role: `pg_stat_wal_receiver` shows every role whether a receiver runs).
const REPLICATION_SQL: &str = "\
SELECT pg_is_in_recovery() AS standby,
       CASE
           WHEN NOT pg_is_in_recovery() THEN NULL
           WHEN EXISTS (SELECT 1 FROM pg_stat_wal_receiver)
                AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
           ELSE greatest(0, extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()))
       END::float8 AS replay_lag_seconds";

impl Brotr {
    /// Whether the server is a standby and how far behind it is, in a `READ ONLY` transaction
    /// bounded by `budget` (the read side's `/health` and its `database_replay_lag_seconds`
    /// gauge).
    pub async fn replication(&self, budget: Duration) -> Result<Replication> {
        self.transact_read_only(budget, |conn| {
            Box::pin(async move {
                let row = sqlx::query(REPLICATION_SQL)
                    .persistent(false)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(Replication {
                    standby: row.try_get("standby")?,
                    replay_lag_seconds: row.try_get("replay_lag_seconds")?,
                })
            })
        })
        .await
    }
}

/// The start-up check of every daemon that writes (and of `bigbrotr-migrate`): refuses a
/// server in recovery, a read-only standby, naming where `database` points. Runs on a
/// connection of its own, like [`crate::migrate::check_schema`].
pub async fn check_primary(pool: &PgPool, database: &DatabaseConfig) -> Result<()> {
    let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .persistent(false)
        .fetch_one(pool)
        .await?;
    if standby {
        return Err(DbError::Standby {
            host: database.host.clone(),
            port: database.port,
            database: database.database.clone(),
        });
    }
    Ok(())
}

/// Creates role `role` with `LOGIN REPLICATION` and `password`, or sets both on an existing
/// one: the role a streaming standby connects to its primary as (`pg_basebackup`,
/// `primary_conninfo`). It gets no privilege on any table. Needs a superuser (the admin role
/// `bigbrotr-migrate` runs as).
pub async fn ensure_replication_role(pool: &PgPool, role: &str, password: &str) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *conn)
            .await?;
    let verb = if exists { "ALTER" } else { "CREATE" };
    let statement: String = sqlx::query_scalar(
        "SELECT format('%s ROLE %I WITH LOGIN REPLICATION PASSWORD %L', $1::text, $2::text, $3::text)",
    )
    .bind(verb)
    .bind(role)
    .bind(password)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::raw_sql(AssertSqlSafe(statement))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
