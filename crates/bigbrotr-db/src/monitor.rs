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
use crate::metadata::RelayMetadataColumns;

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
        self.store_with_states(records, RelayMetadataColumns::from_records, checkpoints)
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
