//! The `service_state` aggregate: the key-value store where daemons keep candidates, cursors and
//! checkpoints (`service_state_upsert`, `service_state_get`, `service_state_delete`).

use std::collections::HashMap;
use std::sync::Arc;

use bigbrotr_models::service_state::{ServiceName, ServiceState, ServiceStateType};
use serde_json::Value;
use sqlx::PgConnection;

use crate::Brotr;
use crate::config::TimeoutCategory;
use crate::error::Result;

/// The key of one `service_state` row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateKey {
    /// Owning service.
    pub service_name: ServiceName,
    /// Kind of record.
    pub state_type: ServiceStateType,
    /// Record key (a relay URL, a source URL, a publish key).
    pub state_key: String,
}

/// Column arrays of `service_state_upsert`, duplicates removed (the last record of a key wins).
#[derive(Debug, Default)]
pub(crate) struct StateColumns {
    names: Vec<String>,
    types: Vec<String>,
    keys: Vec<String>,
    values: Vec<Value>,
}

impl StateColumns {
    /// The arrays for `records`. The stored function keeps an arbitrary row among duplicate
    /// keys of one batch (`DISTINCT ON` without an order), so duplicates are removed here.
    pub(crate) fn from_records(records: &[ServiceState]) -> Self {
        let key = |r: &ServiceState| (r.service_name(), r.state_type(), r.state_key().to_owned());
        let last: HashMap<_, usize> = records
            .iter()
            .enumerate()
            .map(|(index, record)| (key(record), index))
            .collect();
        let mut columns = Self::default();
        for (index, record) in records.iter().enumerate() {
            if last.get(&key(record)) != Some(&index) {
                continue;
            }
            columns
                .names
                .push(record.service_name().as_str().to_owned());
            columns.types.push(record.state_type().as_str().to_owned());
            columns.keys.push(record.state_key().to_owned());
            columns.values.push(record.state_value().clone());
        }
        columns
    }
}

/// `service_state_upsert` on the caller's transaction. Returns the rows written.
pub(crate) async fn upsert_state_rows(
    conn: &mut PgConnection,
    c: &StateColumns,
) -> std::result::Result<u64, sqlx::Error> {
    if c.keys.is_empty() {
        return Ok(0);
    }
    let n: Option<i32> = sqlx::query_scalar("SELECT service_state_upsert($1, $2, $3, $4)")
        .persistent(false)
        .bind(&c.names)
        .bind(&c.types)
        .bind(&c.keys)
        .bind(&c.values)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

impl Brotr {
    /// `service_state_upsert`: inserts or fully replaces the values (the last record of a
    /// duplicated key wins). Returns the rows written.
    pub async fn upsert_service_state(&self, records: &[ServiceState]) -> Result<u64> {
        self.check_batch(records.len())?;
        if records.is_empty() {
            return Ok(0);
        }
        let columns = Arc::new(StateColumns::from_records(records));
        self.transact(TimeoutCategory::Batch, move |conn| {
            let c = columns.clone();
            Box::pin(async move { upsert_state_rows(conn, &c).await })
        })
        .await
    }

    /// `service_state_get`: one key's value, or every `(key, value)` of the service and type
    /// ordered by key when `key` is `None`.
    pub async fn get_service_state(
        &self,
        service_name: ServiceName,
        state_type: ServiceStateType,
        key: Option<&str>,
    ) -> Result<Vec<(String, Value)>> {
        let key = key.map(str::to_owned);
        self.transact(TimeoutCategory::Query, move |conn| {
            let key = key.clone();
            Box::pin(async move {
                sqlx::query_as("SELECT state_key, state_value FROM service_state_get($1, $2, $3)")
                    .persistent(false)
                    .bind(service_name.as_str())
                    .bind(state_type.as_str())
                    .bind(key)
                    .fetch_all(&mut *conn)
                    .await
            })
        })
        .await
    }

    /// `service_state_delete`: removes the given keys. Returns the rows deleted.
    pub async fn delete_service_state(&self, keys: &[StateKey]) -> Result<u64> {
        self.check_batch(keys.len())?;
        if keys.is_empty() {
            return Ok(0);
        }
        let names: Vec<String> = keys
            .iter()
            .map(|k| k.service_name.as_str().to_owned())
            .collect();
        let types: Vec<String> = keys
            .iter()
            .map(|k| k.state_type.as_str().to_owned())
            .collect();
        let state_keys: Vec<String> = keys.iter().map(|k| k.state_key.clone()).collect();
        let columns = Arc::new((names, types, state_keys));
        self.transact(TimeoutCategory::Batch, move |conn| {
            let c = columns.clone();
            Box::pin(async move {
                let n: Option<i32> = sqlx::query_scalar("SELECT service_state_delete($1, $2, $3)")
                    .persistent(false)
                    .bind(&c.0)
                    .bind(&c.1)
                    .bind(&c.2)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(n.unwrap_or(0).max(0) as u64)
            })
        })
        .await
    }
}

/// One statement's worth of rows that a progress transaction writes before its state rows.
pub(crate) trait RowBatch: Send + Sync + 'static {
    /// Inserts the rows; returns the count the stored function reports.
    fn insert<'c>(&'c self, conn: &'c mut PgConnection) -> crate::brotr::TxFuture<'c, u64>;
}

impl Brotr {
    /// Writes `rows` (statements of at most `batch.max_size` rows each) and upserts `states` in
    /// one transaction, so a state (cursor, checkpoint) is never stored without the rows it
    /// stands for. Returns the sum of the row counts.
    pub(crate) async fn store_with_states<T, B: RowBatch>(
        &self,
        rows: &[T],
        columns: impl Fn(&[T]) -> B,
        states: &[ServiceState],
    ) -> Result<u64> {
        if rows.is_empty() && states.is_empty() {
            return Ok(0);
        }
        let max = self.batch_max_size().max(1);
        let row_chunks: Vec<B> = rows.chunks(max).map(columns).collect();
        let state_chunks: Vec<StateColumns> =
            states.chunks(max).map(StateColumns::from_records).collect();
        let work = Arc::new((row_chunks, state_chunks));
        self.transact(TimeoutCategory::Batch, move |conn| {
            let work = work.clone();
            Box::pin(async move {
                let mut inserted = 0;
                for batch in &work.0 {
                    inserted += batch.insert(conn).await?;
                }
                for columns in &work.1 {
                    upsert_state_rows(conn, columns).await?;
                }
                Ok(inserted)
            })
        })
        .await
    }
}
