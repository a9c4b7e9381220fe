//! Maintenance calls: batched orphan cleanup and materialized-view refreshes.

use crate::Brotr;
use crate::brotr::check_identifier;
use crate::config::TimeoutCategory;
use crate::error::{DbError, Result};

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

    /// Runs `<view>_refresh()` (an incremental refresh since migration 0004) with the `refresh`
    /// timeout. The name must be a plain identifier; it is interpolated into SQL only after that
    /// check.
    pub async fn refresh_materialized_view(&self, view: &str) -> Result<()> {
        check_identifier(view)?;
        let sql = format!("SELECT {view}_refresh()");
        self.transact(TimeoutCategory::Refresh, move |conn| {
            let sql = sql.clone();
            Box::pin(async move {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .persistent(false)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .await
    }
}
