//! The facade: a pool plus the facade configuration, and the one place where statements are run
//! (transaction, per-category timeout, retry on transient connection errors).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{AssertSqlSafe, Connection};

use crate::config::{BrotrConfig, TimeoutCategory};
use crate::error::{DbError, Result};
use crate::pool;

/// A boxed future borrowing a connection, as returned by the closures given to
/// [`Brotr::transact`].
pub(crate) type TxFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

/// Client-side margin over the server-side `statement_timeout`, so the server cancels first and
/// the connection stays usable.
const CLIENT_DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// The database facade shared by every daemon: typed wrappers over the stored functions live in
/// the aggregate modules (`relay`, `event`, `metadata`, `service_state`, ...).
#[derive(Debug, Clone)]
pub struct Brotr {
    pool: PgPool,
    config: BrotrConfig,
}

impl Brotr {
    /// Validates `config` and connects (with retries).
    pub async fn connect(config: BrotrConfig, password: Option<&str>) -> Result<Self> {
        config.validate()?;
        let pool = pool::connect(&config.pool, password).await?;
        Ok(Self { pool, config })
    }

    /// Wraps an existing pool (tests, tools).
    pub fn from_pool(pool: PgPool, config: BrotrConfig) -> Self {
        Self { pool, config }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The facade configuration.
    pub fn config(&self) -> &BrotrConfig {
        &self.config
    }

    /// `batch.max_size`: the most rows one bulk call accepts.
    pub fn batch_max_size(&self) -> usize {
        self.config.batch.max_size
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Rejects a bulk call larger than `batch.max_size`.
    pub(crate) fn check_batch(&self, size: usize) -> Result<()> {
        let max = self.config.batch.max_size;
        if size > max {
            return Err(DbError::BatchTooLarge { size, max });
        }
        Ok(())
    }

    /// Runs `op` in its own transaction with the category's timeout applied server-side
    /// (`SET LOCAL statement_timeout`) and client-side, retrying on a fresh connection when the
    /// connection failed (see [`pool::is_transient`]). Every statement of this crate goes through
    /// here. The stored functions are idempotent (`ON CONFLICT`), so a retry after a connection
    /// lost during `COMMIT` cannot duplicate data.
    pub(crate) async fn transact<T, F>(&self, category: TimeoutCategory, op: F) -> Result<T>
    where
        F: for<'c> FnMut(&'c mut PgConnection) -> TxFuture<'c, T>,
    {
        let timeout = self.config.timeouts.get(category);
        let statement_timeout = timeout
            .map(|t| t.as_millis().max(1) as u64)
            .or(Some(self.config.pool.server_settings.statement_timeout).filter(|ms| *ms > 0));
        self.transact_with(category, timeout, statement_timeout, false, op)
            .await
    }

    /// Like [`Brotr::transact`], but with no statement timeout at all, whatever the
    /// configuration, the role or the database says (`SET LOCAL statement_timeout = 0`) and no
    /// client-side deadline: for statements that may legitimately run for hours (the refresher's
    /// refresh functions). Retries on connection failures like every other statement.
    pub(crate) async fn transact_unbounded<T, F>(
        &self,
        category: TimeoutCategory,
        op: F,
    ) -> Result<T>
    where
        F: for<'c> FnMut(&'c mut PgConnection) -> TxFuture<'c, T>,
    {
        self.transact_with(category, None, Some(0), false, op).await
    }

    /// A `READ ONLY` transaction for the read side (API, DVM): `budget` is both the server-side
    /// `statement_timeout` and, with the usual margin, the client-side deadline. Timeouts are
    /// reported in the `query` category.
    pub(crate) async fn transact_read_only<T, F>(&self, budget: Duration, op: F) -> Result<T>
    where
        F: for<'c> FnMut(&'c mut PgConnection) -> TxFuture<'c, T>,
    {
        let ms = budget.as_millis().clamp(1, u128::from(u32::MAX)) as u64;
        self.transact_with(TimeoutCategory::Query, Some(budget), Some(ms), true, op)
            .await
    }

    /// One read-only statement on a pooled connection, outside any transaction: for lookups by
    /// a unique key, whose time the index bounds, so they need neither `BEGIN READ ONLY` nor
    /// `SET LOCAL statement_timeout` (two round trips, more than the lookup itself). `budget`
    /// is the client-side deadline; a statement cut by it is left to finish on the server, which
    /// for an index lookup is immediate. With a `pool.server_settings.timezone` other than UTC
    /// (which is set per transaction) it runs as [`Brotr::transact_read_only`] does, so the
    /// values render the same on both paths. Retries on connection failures like the others.
    pub(crate) async fn read_statement<T, F>(&self, budget: Duration, mut op: F) -> Result<T>
    where
        F: for<'c> FnMut(&'c mut PgConnection) -> TxFuture<'c, T>,
    {
        if self.config.pool.server_settings.timezone != "UTC" {
            return self.transact_read_only(budget, op).await;
        }
        let retry = &self.config.pool.retry;
        let mut attempt: u32 = 0;
        loop {
            let run = async {
                let mut conn = self.pool.acquire().await?;
                Ok::<T, DbError>(op(&mut conn).await?)
            };
            let outcome = match tokio::time::timeout(budget, run).await {
                Ok(outcome) => outcome,
                Err(_) => Err(DbError::Timeout {
                    category: TimeoutCategory::Query.as_str(),
                    seconds: budget.as_secs_f64(),
                }),
            };
            match outcome {
                Err(DbError::Sqlx(error))
                    if pool::is_transient(&error) && attempt + 1 < retry.max_attempts =>
                {
                    let delay = retry.delay(attempt);
                    attempt += 1;
                    tracing::warn!(
                        target: "pool",
                        operation = TimeoutCategory::Query.as_str(),
                        attempt,
                        delay_s = delay.as_secs_f64(),
                        error = %error,
                        "query_retry"
                    );
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// The retry loop shared by [`Brotr::transact`] and [`Brotr::transact_unbounded`]:
    /// `timeout` is the client-side deadline (plus a margin), `statement_timeout` the
    /// milliseconds set with `SET LOCAL` (`Some(0)` disables it, `None` leaves the session's).
    async fn transact_with<T, F>(
        &self,
        category: TimeoutCategory,
        timeout: Option<Duration>,
        statement_timeout: Option<u64>,
        read_only: bool,
        mut op: F,
    ) -> Result<T>
    where
        F: for<'c> FnMut(&'c mut PgConnection) -> TxFuture<'c, T>,
    {
        let retry = &self.config.pool.retry;
        let mut attempt: u32 = 0;
        loop {
            let outcome = match timeout {
                Some(limit) => {
                    match tokio::time::timeout(
                        limit + CLIENT_DEADLINE_MARGIN,
                        self.attempt(statement_timeout, read_only, &mut op),
                    )
                    .await
                    {
                        Ok(outcome) => outcome,
                        Err(_) => Err(DbError::Timeout {
                            category: category.as_str(),
                            seconds: limit.as_secs_f64(),
                        }),
                    }
                }
                None => self.attempt(statement_timeout, read_only, &mut op).await,
            };
            match outcome {
                Err(DbError::Sqlx(error)) if pool::is_statement_timeout(&error) => {
                    return Err(DbError::Timeout {
                        category: category.as_str(),
                        seconds: timeout.map_or(0.0, |t| t.as_secs_f64()),
                    });
                }
                Err(DbError::Sqlx(error))
                    if pool::is_transient(&error) && attempt + 1 < retry.max_attempts =>
                {
                    let delay = retry.delay(attempt);
                    attempt += 1;
                    tracing::warn!(
                        target: "pool",
                        operation = category.as_str(),
                        attempt,
                        delay_s = delay.as_secs_f64(),
                        error = %error,
                        "query_retry"
                    );
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    async fn attempt<T, F>(
        &self,
        statement_timeout: Option<u64>,
        read_only: bool,
        op: &mut F,
    ) -> Result<T>
    where
        F: for<'c> FnMut(&'c mut PgConnection) -> TxFuture<'c, T>,
    {
        let mut conn = self.pool.acquire().await?;
        let mut begin = String::from(if read_only {
            "BEGIN READ ONLY"
        } else {
            "BEGIN"
        });
        if let Some(ms) = statement_timeout {
            begin.push_str(&format!("; SET LOCAL statement_timeout = {ms}"));
        }
        let timezone = &self.config.pool.server_settings.timezone;
        if timezone != "UTC" {
            // Validated to be a plain zone name; the driver already starts sessions in UTC.
            begin.push_str(&format!("; SET LOCAL timezone = '{timezone}'"));
        }
        let mut tx = conn.begin_with(AssertSqlSafe(begin)).await?;
        let value = op(&mut tx).await?;
        tx.commit().await?;
        Ok(value)
    }
}

/// Checks an identifier that must be interpolated into SQL (function and view names).
pub(crate) fn check_identifier(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63;
    if valid {
        Ok(())
    } else {
        Err(DbError::InvalidIdentifier(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::check_identifier;

    #[test]
    fn identifiers_are_plain_lower_case_names() {
        for good in ["relay_stats", "_x", "a1_b2"] {
            assert!(check_identifier(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Relay",
            "a-b",
            "a;drop",
            "a b",
            "x\"",
            &"a".repeat(64),
        ] {
            assert!(check_identifier(bad).is_err(), "{bad}");
        }
    }
}
