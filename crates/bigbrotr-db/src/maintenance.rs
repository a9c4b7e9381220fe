//! Maintenance calls: batched orphan cleanup and materialized-view refreshes.

use crate::Brotr;
use crate::config::TimeoutCategory;
use crate::error::{DbError, Result};
use crate::refresher::{refresh_op, refresh_statement};

impl Brotr {
    /// `orphan_event_delete`: deletes events no relay is linked to, `batch_size` at a time.
    /// Returns the total deleted.
    pub async fn delete_orphan_events(&self, batch_size: i32) -> Result<u64> {
        self.orphan_delete("SELECT orphan_event_delete($1)", batch_size)
            .await
    }

    /// `orphan_metadata_delete`: deletes documents no `relay_metadata` row references,
    /// `batch_size` at a time. Returns the total deleted.
    pub async fn delete_orphan_metadata(&self, batch_size: i32) -> Result<u64> {
        self.orphan_delete("SELECT orphan_metadata_delete($1)", batch_size)
            .await
    }

    async fn orphan_delete(&self, sql: &'static str, batch_size: i32) -> Result<u64> {
        if batch_size < 1 {
            return Err(DbError::Config(format!(
                "orphan cleanup batch size must be positive, got {batch_size}"
            )));
        }
        self.transact(TimeoutCategory::Cleanup, move |conn| {
            Box::pin(async move {
                let n: Option<i32> = sqlx::query_scalar(sql)
                    .persistent(false)
                    .bind(batch_size)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(n.unwrap_or(0).max(0) as u64)
            })
        })
        .await
    }

    /// Runs `public.<view>_refresh()` (an incremental refresh since migration 0004) with the
    /// `refresh` timeout; [`Brotr::refresh`] is the same without any timeout. The name must be a
    /// plain identifier; it is quoted into SQL only after that check.
    pub async fn refresh_materialized_view(&self, view: &str) -> Result<()> {
        let sql = refresh_statement(view)?;
        self.transact(TimeoutCategory::Refresh, refresh_op(sql))
            .await
    }
}
