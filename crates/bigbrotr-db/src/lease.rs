//! Leases (`lease.service_lease`, migration 0005): how replicas of one daemon share its work. A unit
//! of work is a key (a relay URL, a candidate, a publication) of one service; a replica claims
//! keys, renews them while it works, and marks them finished, all on the database server's clock.
//! The format is documented in docs/ARCHITECTURE.md next to `service_state`'s.

use std::collections::HashSet;
use std::time::Duration;

use bigbrotr_models::service_state::{ServiceName, ServiceState};
use sqlx::PgConnection;

use crate::Brotr;
use crate::config::TimeoutCategory;
use crate::error::{DbError, Result};
use crate::service_state::{StateColumns, upsert_state_rows};

/// The longest replica id (`lease.service_lease.holder`) accepted.
pub const MAX_HOLDER_LEN: usize = 200;

/// Who claims: a service and one of its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// The service whose work is shared.
    pub service: ServiceName,
    /// The replica's id, unique among the service's replicas (`lease.service_lease.holder`).
    pub holder: String,
}

impl LeaseHolder {
    /// A holder; `holder` must be 1–200 bytes.
    pub fn new(service: ServiceName, holder: impl Into<String>) -> Result<Self> {
        let holder = holder.into();
        if holder.is_empty() || holder.len() > MAX_HOLDER_LEN {
            return Err(DbError::Config(format!(
                "a replica id must be 1-{MAX_HOLDER_LEN} bytes, got {} bytes",
                holder.len()
            )));
        }
        Ok(Self { service, holder })
    }
}

/// A point in time on the database server's clock, as returned by [`Brotr::lease_clock`]:
/// seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct ServerTime(pub f64);

fn ttl_seconds(ttl: Duration) -> f64 {
    ttl.as_secs_f64().max(0.001)
}

impl Brotr {
    /// The database server's clock, the time base of every lease: a replica takes its cycle's
    /// start from here, not from its own clock.
    pub async fn lease_clock(&self) -> Result<ServerTime> {
        let now: f64 = self
            .transact(TimeoutCategory::Query, |conn| {
                Box::pin(async move {
                    sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::float8")
                        .persistent(false)
                        .fetch_one(&mut *conn)
                        .await
                })
            })
            .await?;
        Ok(ServerTime(now))
    }

    /// `lease.acquire`: claims, in the order given, at most `limit` of `keys` that are
    /// free for `holder` — never claimed, finished before `cycle_start`, or unfinished and
    /// expired or already its own. Each claimed key is held for `ttl`. Returns the keys claimed.
    pub async fn lease_acquire(
        &self,
        holder: &LeaseHolder,
        keys: &[String],
        ttl: Duration,
        limit: usize,
        cycle_start: ServerTime,
    ) -> Result<Vec<String>> {
        if keys.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let holder = holder.clone();
        self.transact(TimeoutCategory::Query, move |conn| {
            let keys = keys.clone();
            let holder = holder.clone();
            Box::pin(async move {
                sqlx::query_scalar("SELECT lease.acquire($1, $2, $3, $4, $5, to_timestamp($6))")
                    .persistent(false)
                    .bind(holder.service.as_str())
                    .bind(&holder.holder)
                    .bind(&keys)
                    .bind(ttl_seconds(ttl))
                    .bind(limit)
                    .bind(cycle_start.0)
                    .fetch_all(&mut *conn)
                    .await
            })
        })
        .await
    }

    /// `lease.renew`: extends `holder`'s unfinished leases among `keys` by `ttl` from
    /// now. Returns the keys still held; a missing one was taken over and its work must stop.
    pub async fn lease_renew(
        &self,
        holder: &LeaseHolder,
        keys: &[String],
        ttl: Duration,
    ) -> Result<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        let holder = holder.clone();
        self.transact(TimeoutCategory::Query, move |conn| {
            let keys = keys.clone();
            let holder = holder.clone();
            Box::pin(async move {
                sqlx::query_scalar("SELECT lease.renew($1, $2, $3, $4)")
                    .persistent(false)
                    .bind(holder.service.as_str())
                    .bind(&holder.holder)
                    .bind(&keys)
                    .bind(ttl_seconds(ttl))
                    .fetch_all(&mut *conn)
                    .await
            })
        })
        .await
    }

    /// `lease.pending`: the keys among `keys` that another replica holds unfinished and
    /// unexpired — work `holder` must wait for rather than skip.
    pub async fn lease_pending(
        &self,
        holder: &LeaseHolder,
        keys: &[String],
    ) -> Result<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        let holder = holder.clone();
        self.transact(TimeoutCategory::Query, move |conn| {
            let keys = keys.clone();
            let holder = holder.clone();
            Box::pin(async move {
                sqlx::query_scalar("SELECT lease.pending($1, $2, $3)")
                    .persistent(false)
                    .bind(holder.service.as_str())
                    .bind(&holder.holder)
                    .bind(&keys)
                    .fetch_all(&mut *conn)
                    .await
            })
        })
        .await
    }

    /// `lease.purge`: deletes `service`'s rows finished (or expired unfinished) more than
    /// `older_than` ago, which no cycle shorter than that can need. Returns how many.
    pub async fn lease_purge(&self, service: ServiceName, older_than: Duration) -> Result<u64> {
        let n: i32 = self
            .transact(TimeoutCategory::Cleanup, move |conn| {
                Box::pin(async move {
                    sqlx::query_scalar("SELECT lease.purge($1, $2)")
                        .persistent(false)
                        .bind(service.as_str())
                        .bind(older_than.as_secs_f64())
                        .fetch_one(&mut *conn)
                        .await
                })
            })
            .await?;
        Ok(n.max(0) as u64)
    }

    /// `lease.finish`: marks `holder`'s unfinished leases among `keys` finished now, so
    /// no replica does them again in a cycle that started earlier. Returns how many it marked.
    pub async fn lease_finish(&self, holder: &LeaseHolder, keys: &[String]) -> Result<u64> {
        self.lease_end("lease.finish", holder, keys).await
    }

    /// `lease.release`: gives `holder`'s unfinished leases among `keys` back unfinished,
    /// claimable by any replica at once. Returns how many.
    pub async fn lease_release(&self, holder: &LeaseHolder, keys: &[String]) -> Result<u64> {
        self.lease_end("lease.release", holder, keys).await
    }

    async fn lease_end(
        &self,
        function: &'static str,
        holder: &LeaseHolder,
        keys: &[String],
    ) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let keys = keys.to_vec();
        let holder = holder.clone();
        let n: i32 = self
            .transact(TimeoutCategory::Query, move |conn| {
                let keys = keys.clone();
                let holder = holder.clone();
                Box::pin(async move {
                    // `function` is one of two constants of this module.
                    let sql = format!("SELECT {function}($1, $2, $3)");
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .persistent(false)
                        .bind(holder.service.as_str())
                        .bind(&holder.holder)
                        .bind(&keys)
                        .fetch_one(&mut *conn)
                        .await
                })
            })
            .await?;
        Ok(n.max(0) as u64)
    }
}

impl Brotr {
    /// `service_state_upsert` of the `records` whose keys `holder` still holds, fenced by
    /// `lease.fence` in the same transaction: a replica whose lease was taken over
    /// writes nothing for that key. Returns the rows written and the keys left out.
    pub async fn upsert_service_state_leased(
        &self,
        holder: &LeaseHolder,
        records: &[ServiceState],
    ) -> Result<(u64, Vec<String>)> {
        self.check_batch(records.len())?;
        if records.is_empty() {
            return Ok((0, Vec::new()));
        }
        let records = records.to_vec();
        let holder = holder.clone();
        self.transact(TimeoutCategory::Batch, move |conn| {
            let records = records.clone();
            let holder = holder.clone();
            Box::pin(async move {
                let keys: Vec<String> = records.iter().map(|r| r.state_key().to_owned()).collect();
                let held: HashSet<String> =
                    fence(conn, &holder, &keys).await?.into_iter().collect();
                let (kept, lost): (Vec<ServiceState>, Vec<ServiceState>) = records
                    .into_iter()
                    .partition(|r| held.contains(r.state_key()));
                let written = upsert_state_rows(conn, &StateColumns::from_records(&kept)).await?;
                Ok((
                    written,
                    lost.iter().map(|r| r.state_key().to_owned()).collect(),
                ))
            })
        })
        .await
    }
}

/// `lease.fence` on the caller's transaction: the keys among `keys` that `holder` holds
/// unfinished, locked until the transaction ends. A writer records work (a cursor, a checkpoint)
/// only for the keys this returns, so a replica that lost a lease never writes over its
/// successor's.
async fn fence(
    conn: &mut PgConnection,
    holder: &LeaseHolder,
    keys: &[String],
) -> std::result::Result<Vec<String>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT lease.fence($1, $2, $3)")
        .persistent(false)
        .bind(holder.service.as_str())
        .bind(&holder.holder)
        .bind(keys)
        .fetch_all(&mut *conn)
        .await
}
