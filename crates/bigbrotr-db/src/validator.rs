//! The validator's queries: eligible candidates in priority order, promotion to `relay` (insert
//! and checkpoint delete in one transaction), failure records and candidate cleanup.

use std::sync::Arc;

use bigbrotr_models::relay::Relay;

use crate::Brotr;
use crate::config::TimeoutCategory;
use crate::error::Result;
use crate::relay::{RelayColumns, insert_relay_rows};

/// One candidate as stored (`validator/checkpoint/<url>`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Candidate {
    /// The relay URL (the state key).
    pub url: String,
    /// The network recorded at insertion (text, as stored).
    pub network: String,
    /// Failed attempts so far.
    pub failures: i64,
    /// Insertion or last failure, unix seconds.
    pub timestamp: i64,
}

/// Candidate rows with their JSON fields read defensively: a value written by hand or by another
/// tool (a string, a float, a missing key, an absurd number) reads as a number, never as an error.
macro_rules! with_candidates {
    ($query:literal) => {
        concat!(
            "
    WITH candidate AS (
        SELECT state_key AS url,
               coalesce(state_value ->> 'network', '') AS network,
               CASE WHEN jsonb_typeof(state_value -> 'failures') = 'number'
                    THEN least(greatest(floor((state_value ->> 'failures')::numeric), 0),
                               2147483647)::bigint
                    ELSE 0 END AS failures,
               CASE WHEN jsonb_typeof(state_value -> 'timestamp') = 'number'
                    THEN least(greatest(floor((state_value ->> 'timestamp')::numeric), 0),
                               9007199254740991)::bigint
                    ELSE 0 END AS timestamp
        FROM service_state
        WHERE service_name = 'validator' AND state_type = 'checkpoint'
    ) ",
            $query
        )
    };
}

impl Brotr {
    /// Candidates of `networks` that are due: never failed, or last tried before
    /// `attempted_before`.
    pub async fn count_eligible_candidates(
        &self,
        networks: &[String],
        attempted_before: i64,
    ) -> Result<i64> {
        let networks = Arc::new(networks.to_vec());
        self.transact(TimeoutCategory::Query, move |conn| {
            let networks = networks.clone();
            Box::pin(async move {
                sqlx::query_scalar(with_candidates!(
                    "SELECT count(*) FROM candidate
                     WHERE network = ANY($1) AND (failures = 0 OR timestamp < $2)"
                ))
                .persistent(false)
                .bind(&*networks)
                .bind(attempted_before)
                .fetch_one(&mut *conn)
                .await
            })
        })
        .await
    }

    /// Up to `limit` due candidates, fewest failures first, then oldest (then by URL), after
    /// `after` in that order: a cycle pages through the candidates once even while the rows it
    /// already fetched are still being probed.
    pub async fn fetch_eligible_candidates(
        &self,
        networks: &[String],
        attempted_before: i64,
        after: Option<&Candidate>,
        limit: i64,
    ) -> Result<Vec<Candidate>> {
        let networks = Arc::new(networks.to_vec());
        let after = Arc::new(after.map_or((-1, -1, String::new()), |c| {
            (c.failures, c.timestamp, c.url.clone())
        }));
        self.transact(TimeoutCategory::Query, move |conn| {
            let networks = networks.clone();
            let after = after.clone();
            Box::pin(async move {
                sqlx::query_as(with_candidates!(
                    "SELECT url, network, failures, timestamp FROM candidate
                     WHERE network = ANY($1) AND (failures = 0 OR timestamp < $2)
                       AND (failures, timestamp, url) > ($4, $5, $6)
                     ORDER BY failures, timestamp, url
                     LIMIT $3"
                ))
                .persistent(false)
                .bind(&*networks)
                .bind(attempted_before)
                .bind(limit.max(0))
                .bind(after.0)
                .bind(after.1)
                .bind(&after.2)
                .fetch_all(&mut *conn)
                .await
            })
        })
        .await
    }

    /// Stores validated relays and removes their candidates, in one transaction. Returns the
    /// relays inserted.
    pub async fn promote_candidates(&self, relays: &[Relay]) -> Result<u64> {
        self.check_batch(relays.len())?;
        if relays.is_empty() {
            return Ok(0);
        }
        let mut columns = RelayColumns::default();
        relays.iter().for_each(|relay| columns.push(relay));
        let columns = Arc::new(columns);
        self.transact(TimeoutCategory::Batch, move |conn| {
            let c = columns.clone();
            Box::pin(async move {
                let inserted = insert_relay_rows(conn, &c).await?;
                sqlx::query(
                    "DELETE FROM service_state
                     WHERE service_name = 'validator' AND state_type = 'checkpoint'
                       AND state_key = ANY($1)",
                )
                .persistent(false)
                .bind(&c.urls)
                .execute(&mut *conn)
                .await?;
                Ok(inserted)
            })
        })
        .await
    }

    /// Deletes candidates whose URL is already a relay. Returns the rows deleted.
    pub async fn delete_promoted_candidates(&self) -> Result<u64> {
        self.transact(TimeoutCategory::Cleanup, |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "DELETE FROM service_state s
                     WHERE s.service_name = 'validator' AND s.state_type = 'checkpoint'
                       AND EXISTS (SELECT 1 FROM relay r WHERE r.url = s.state_key)",
                )
                .persistent(false)
                .execute(&mut *conn)
                .await?;
                Ok(done.rows_affected())
            })
        })
        .await
    }

    /// Deletes candidates that failed `max_failures` times or more. Returns the rows deleted.
    pub async fn delete_exhausted_candidates(&self, max_failures: i64) -> Result<u64> {
        self.transact(TimeoutCategory::Cleanup, move |conn| {
            Box::pin(async move {
                let done = sqlx::query(with_candidates!(
                    "DELETE FROM service_state s USING candidate c
                     WHERE s.service_name = 'validator' AND s.state_type = 'checkpoint'
                       AND s.state_key = c.url AND c.failures >= $1"
                ))
                .persistent(false)
                .bind(max_failures)
                .execute(&mut *conn)
                .await?;
                Ok(done.rows_affected())
            })
        })
        .await
    }
}
