//! Validator candidates: relay URLs waiting for validation, kept as `validator/checkpoint/<url>`
//! rows of `service_state` with the value `{"network","failures","timestamp"}`.

use std::sync::Arc;

use bigbrotr_models::relay::Relay;
use bigbrotr_models::service_state::CandidateRecord;

use sqlx::PgConnection;

use crate::Brotr;
use crate::config::TimeoutCategory;
use crate::error::Result;

impl Brotr {
    /// Adds relays as validator candidates, skipping URLs that are already relays or already
    /// candidates (an existing candidate keeps its failure count). The filter and the upsert run in
    /// one transaction. Returns the candidates added.
    pub async fn insert_candidates(&self, relays: &[Relay], now: i64) -> Result<u64> {
        self.check_batch(relays.len())?;
        if relays.is_empty() {
            return Ok(0);
        }
        let columns = Arc::new(candidate_columns(relays, now));
        self.transact(TimeoutCategory::Batch, move |conn| {
            let c = columns.clone();
            Box::pin(async move { insert_candidate_rows(conn, &c).await })
        })
        .await
    }

    /// The number of validator candidates.
    pub async fn candidate_count(&self) -> Result<i64> {
        self.transact(TimeoutCategory::Query, |conn| {
            Box::pin(async move {
                sqlx::query_scalar(
                    "SELECT count(*) FROM service_state
                     WHERE service_name = 'validator' AND state_type = 'checkpoint'",
                )
                .persistent(false)
                .fetch_one(&mut *conn)
                .await
            })
        })
        .await
    }
}

/// Candidate rows as the two arrays the insert binds.
pub(crate) type CandidateColumns = (Vec<String>, Vec<serde_json::Value>);

/// `{network, failures 0, timestamp now}` for each relay.
pub(crate) fn candidate_columns(relays: &[Relay], now: i64) -> CandidateColumns {
    let mut urls = Vec::with_capacity(relays.len());
    let mut values = Vec::with_capacity(relays.len());
    for relay in relays {
        let record = CandidateRecord {
            network: relay.network(),
            failures: 0,
            timestamp: now,
        };
        urls.push(relay.url().to_owned());
        values.push(record.to_value());
    }
    (urls, values)
}

/// Upserts the candidates that are neither relays nor candidates yet, on the caller's
/// transaction. Returns the candidates added.
pub(crate) async fn insert_candidate_rows(
    conn: &mut PgConnection,
    columns: &CandidateColumns,
) -> std::result::Result<u64, sqlx::Error> {
    // language=PostgreSQL
    let n: Option<i32> = sqlx::query_scalar(
        "WITH input AS (
             SELECT DISTINCT ON (u.url) u.url, u.value
             FROM unnest($1::text[], $2::jsonb[]) AS u(url, value)
         ), fresh AS (
             SELECT i.url, i.value FROM input i
             WHERE NOT EXISTS (SELECT 1 FROM relay r WHERE r.url = i.url)
               AND NOT EXISTS (
                   SELECT 1 FROM service_state s
                   WHERE s.service_name = 'validator'
                     AND s.state_type = 'checkpoint'
                     AND s.state_key = i.url)
         )
         SELECT service_state_upsert(
             array_agg('validator'::text), array_agg('checkpoint'::text),
             array_agg(url), array_agg(value))
         FROM fresh",
    )
    .persistent(false)
    .bind(&columns.0)
    .bind(&columns.1)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n.unwrap_or(0).max(0) as u64)
}
