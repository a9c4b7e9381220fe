//! The monitor's queries: the relays due for a check (oldest checkpoint first), check results
//! stored together with the checkpoints of the relays they cover (one transaction), and removal
//! of checkpoints that belong to no relay and no enabled publication.

use std::sync::Arc;

use bigbrotr_models::relay::{NetworkType, Relay};
use bigbrotr_models::relay_metadata::RelayMetadata;
use bigbrotr_models::service_state::ServiceState;

use crate::Brotr;
use crate::config::TimeoutCategory;
use crate::error::Result;
use crate::metadata::{RelayMetadataColumns, insert_relay_metadata_rows};
use crate::service_state::{StateColumns, upsert_state_rows};

impl Brotr {
    /// Relays of `networks` never checked or last checked before `checked_before`, the oldest
    /// checkpoint first (none counts as 0), then the earliest discovered; at most `limit`.
    /// A checkpoint value that is not `{"timestamp": <number>}` counts as none. Rows whose URL no
    /// longer passes the sanitiser are skipped.
    pub async fn monitor_targets(
        &self,
        networks: &[NetworkType],
        checked_before: i64,
        limit: Option<i64>,
    ) -> Result<Vec<Relay>> {
        let networks: Arc<Vec<String>> =
            Arc::new(networks.iter().map(|n| n.as_str().to_owned()).collect());
        let rows: Vec<(String, i64)> = self
            .transact(TimeoutCategory::Query, move |conn| {
                let networks = networks.clone();
                Box::pin(async move {
                    sqlx::query_as(
                        "WITH checked AS (
                             SELECT state_key AS url,
                                    CASE WHEN jsonb_typeof(state_value -> 'timestamp') = 'number'
                                         THEN least(greatest(floor((state_value ->> 'timestamp')::numeric), 0),
                                                    9007199254740991)::bigint
                                         ELSE 0 END AS checked_at
                             FROM service_state
                             WHERE service_name = 'monitor' AND state_type = 'checkpoint'
                         )
                         SELECT r.url, r.discovered_at
                         FROM relay r
                         LEFT JOIN checked c ON c.url = r.url
                         WHERE r.network = ANY($1) AND coalesce(c.checked_at, 0) < $2
                         ORDER BY coalesce(c.checked_at, 0), r.discovered_at, r.url
                         LIMIT $3",
                    )
                    .persistent(false)
                    .bind(&*networks)
                    .bind(checked_before)
                    .bind(limit)
                    .fetch_all(&mut *conn)
                    .await
                })
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(url, discovered_at)| Relay::new(&url, discovered_at).ok())
            .collect())
    }

    /// Stores check results (`relay_metadata_insert_cascade`) and upserts `checkpoints` in one
    /// transaction, split into statements of at most `batch.max_size` rows. Returns the
    /// junction rows inserted.
    pub async fn store_monitor_results(
        &self,
        records: &[RelayMetadata],
        checkpoints: &[ServiceState],
    ) -> Result<u64> {
        if records.is_empty() && checkpoints.is_empty() {
            return Ok(0);
        }
        let max = self.batch_max_size().max(1);
        let record_chunks: Vec<_> = records
            .chunks(max)
            .map(RelayMetadataColumns::from_records)
            .collect();
        let state_chunks: Vec<_> = checkpoints
            .chunks(max)
            .map(StateColumns::from_records)
            .collect();
        let work = Arc::new((record_chunks, state_chunks));
        self.transact(TimeoutCategory::Batch, move |conn| {
            let work = work.clone();
            Box::pin(async move {
                let mut inserted = 0;
                for columns in &work.0 {
                    inserted += insert_relay_metadata_rows(conn, columns, true).await?;
                }
                for columns in &work.1 {
                    upsert_state_rows(conn, columns).await?;
                }
                Ok(inserted)
            })
        })
        .await
    }

    /// Deletes monitor checkpoints whose key is neither a known relay URL nor one of `keep`
    /// (the enabled publication keys). Returns the rows deleted.
    pub async fn delete_stale_monitor_checkpoints(&self, keep: &[&str]) -> Result<u64> {
        let keep: Arc<Vec<String>> = Arc::new(keep.iter().map(|k| (*k).to_owned()).collect());
        self.transact(TimeoutCategory::Cleanup, move |conn| {
            let keep = keep.clone();
            Box::pin(async move {
                Ok(sqlx::query(
                    "DELETE FROM service_state s
                     WHERE s.service_name = 'monitor' AND s.state_type = 'checkpoint'
                       AND s.state_key <> ALL($1)
                       AND NOT EXISTS (SELECT 1 FROM relay r WHERE r.url = s.state_key)",
                )
                .persistent(false)
                .bind(&*keep)
                .execute(&mut *conn)
                .await?
                .rows_affected())
            })
        })
        .await
    }
}
