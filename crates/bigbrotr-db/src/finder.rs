//! The finder's queries: paging through a relay's archived events by `(seen_at, event_id)`,
//! storing found candidates together with the cursors that cover them (one transaction), and
//! removing stale cursors and checkpoints.

use std::sync::Arc;

use bigbrotr_models::relay::Relay;
use bigbrotr_models::service_state::ServiceState;

use crate::Brotr;
use crate::candidate::{candidate_columns, insert_candidate_rows};
use crate::config::TimeoutCategory;
use crate::error::Result;
use crate::service_state::{StateColumns, upsert_state_rows};

/// The key prefix of live-discovery cursors (`finder/cursor/live:<relay url>`). A canonical
/// relay URL never starts with it, so these never collide with the per-relay archive cursors.
pub const LIVE_CURSOR_PREFIX: &str = "live:";

/// One archived event as the finder sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScannedEvent {
    /// When the relay was seen carrying it.
    pub seen_at: i64,
    /// The event id (32 bytes).
    pub id: Vec<u8>,
    /// `k:v` tag values (a key-only tag gives a NULL element).
    pub tagvalues: Vec<Option<String>>,
}

impl Brotr {
    /// Up to `limit` events seen on `relay_url` after `(after_seen_at, after_id)`, in that order.
    pub async fn scan_relay_events(
        &self,
        relay_url: &str,
        after_seen_at: i64,
        after_id: &[u8],
        limit: i64,
    ) -> Result<Vec<ScannedEvent>> {
        let args = Arc::new((relay_url.to_owned(), after_id.to_vec()));
        self.transact(TimeoutCategory::Query, move |conn| {
            let args = args.clone();
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT er.seen_at, e.id, coalesce(e.tagvalues, '{}') AS tagvalues
                     FROM event_relay er
                     JOIN event e ON e.id = er.event_id
                     WHERE er.relay_url = $1 AND (er.seen_at, er.event_id) > ($2, $3)
                     ORDER BY er.seen_at, er.event_id
                     LIMIT $4",
                )
                .persistent(false)
                .bind(&args.0)
                .bind(after_seen_at)
                .bind(&args.1)
                .bind(limit.max(0))
                .fetch_all(&mut *conn)
                .await
            })
        })
        .await
    }

    /// Stores `candidates` (skipping relays and existing candidates) and upserts `cursors` in
    /// one transaction, so a cursor is never stored without the candidates found before it.
    /// Large inputs are split into statements of at most `batch.max_size` rows, still in the one
    /// transaction. Returns the candidates added.
    pub async fn store_finder_progress(
        &self,
        candidates: &[Relay],
        now: i64,
        cursors: &[ServiceState],
    ) -> Result<u64> {
        let max = self.batch_max_size().max(1);
        let candidate_chunks: Vec<_> = candidates
            .chunks(max)
            .map(|chunk| candidate_columns(chunk, now))
            .collect();
        let state_chunks: Vec<_> = cursors
            .chunks(max)
            .map(StateColumns::from_records)
            .collect();
        let work = Arc::new((candidate_chunks, state_chunks));
        self.transact(TimeoutCategory::Batch, move |conn| {
            let work = work.clone();
            Box::pin(async move {
                let mut added = 0;
                for columns in &work.0 {
                    added += insert_candidate_rows(conn, columns).await?;
                }
                for columns in &work.1 {
                    upsert_state_rows(conn, columns).await?;
                }
                Ok(added)
            })
        })
        .await
    }

    /// Deletes finder cursors whose relay no longer exists (live cursors: whose relay is not in
    /// `live_relays`) and API checkpoints whose source is not in `sources`. Returns
    /// `(cursors, checkpoints)` deleted.
    pub async fn delete_stale_finder_state(
        &self,
        sources: &[String],
        live_relays: &[String],
    ) -> Result<(u64, u64)> {
        let args = Arc::new((sources.to_vec(), live_relays.to_vec()));
        self.transact(TimeoutCategory::Cleanup, move |conn| {
            let args = args.clone();
            Box::pin(async move {
                let cursors = sqlx::query(
                    "DELETE FROM service_state s
                     WHERE s.service_name = 'finder' AND s.state_type = 'cursor'
                       AND CASE WHEN starts_with(s.state_key, $2)
                                THEN NOT (substr(s.state_key, length($2) + 1) = ANY($1))
                                ELSE NOT EXISTS (SELECT 1 FROM relay r WHERE r.url = s.state_key)
                           END",
                )
                .persistent(false)
                .bind(&args.1)
                .bind(LIVE_CURSOR_PREFIX)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                let checkpoints = sqlx::query(
                    "DELETE FROM service_state s
                     WHERE s.service_name = 'finder' AND s.state_type = 'checkpoint'
                       AND NOT (s.state_key = ANY($1))",
                )
                .persistent(false)
                .bind(&args.0)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                Ok((cursors, checkpoints))
            })
        })
        .await
    }
}
