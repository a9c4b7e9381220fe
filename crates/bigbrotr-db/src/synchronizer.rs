//! The synchronizer's queries: the relays to archive with their cursors, archived events stored
//! together with the cursors that cover them (one transaction), and removal of cursors whose
//! relay is gone.

use std::sync::Arc;

use bigbrotr_models::event_relay::EventRelay;
use bigbrotr_models::relay::{NetworkType, Relay};
use bigbrotr_models::service_state::ServiceState;
use serde_json::Value;

use crate::Brotr;
use crate::config::TimeoutCategory;
use crate::error::Result;
use crate::event::CascadeColumns;

/// A relay to archive and its stored cursor value, if any (read defensively by the caller).
#[derive(Debug, Clone)]
pub struct SyncTarget {
    /// The relay.
    pub relay: Relay,
    /// `synchronizer/cursor/<url>`'s value.
    pub cursor: Option<Value>,
}

impl Brotr {
    /// Every relay of `networks` with its synchronizer cursor. Rows whose URL no longer passes
    /// the sanitiser are skipped.
    pub async fn sync_targets(&self, networks: &[NetworkType]) -> Result<Vec<SyncTarget>> {
        let networks: Arc<Vec<String>> =
            Arc::new(networks.iter().map(|n| n.as_str().to_owned()).collect());
        let rows: Vec<(String, i64, Option<Value>)> = self
            .transact(TimeoutCategory::Query, move |conn| {
                let networks = networks.clone();
                Box::pin(async move {
                    sqlx::query_as(
                        "SELECT r.url, r.discovered_at, s.state_value
                         FROM relay r
                         LEFT JOIN service_state s
                           ON s.service_name = 'synchronizer' AND s.state_type = 'cursor'
                          AND s.state_key = r.url
                         WHERE r.network = ANY($1)
                         ORDER BY r.url",
                    )
                    .persistent(false)
                    .bind(&*networks)
                    .fetch_all(&mut *conn)
                    .await
                })
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(url, discovered_at, cursor)| {
                Relay::new(&url, discovered_at)
                    .ok()
                    .map(|relay| SyncTarget { relay, cursor })
            })
            .collect())
    }

    /// Stores `records` (relays, events and sightings through `event_relay_insert_cascade`) and
    /// upserts `cursors` in one transaction, so a cursor is never stored without the events it
    /// covers. Large inputs are split into statements of at most `batch.max_size` rows, still in
    /// the one transaction. Returns the sightings inserted.
    pub async fn store_sync_progress(
        &self,
        records: &[EventRelay],
        cursors: &[ServiceState],
    ) -> Result<u64> {
        self.store_with_states(records, CascadeColumns::from_records, cursors)
            .await
    }

    /// Deletes synchronizer cursors whose relay no longer exists. Returns the rows deleted.
    pub async fn delete_stale_sync_cursors(&self) -> Result<u64> {
        self.transact(TimeoutCategory::Cleanup, move |conn| {
            Box::pin(async move {
                Ok(sqlx::query(
                    "DELETE FROM service_state s
                     WHERE s.service_name = 'synchronizer' AND s.state_type = 'cursor'
                       AND NOT EXISTS (SELECT 1 FROM relay r WHERE r.url = s.state_key)",
                )
                .persistent(false)
                .execute(&mut *conn)
                .await?
                .rows_affected())
            })
        })
        .await
    }
}
