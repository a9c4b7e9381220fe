//! The `metadata` aggregate: content-addressed documents (`metadata_insert`) and their time
//! series per relay (`relay_metadata_insert`, `relay_metadata_insert_cascade`).

use std::sync::Arc;

use bigbrotr_models::metadata::Metadata;
use bigbrotr_models::relay_metadata::RelayMetadata;
use serde_json::Value;

use crate::Brotr;
use crate::config::TimeoutCategory;
use crate::error::Result;
use crate::relay::RelayColumns;

#[derive(Debug, Default)]
struct MetadataColumns {
    ids: Vec<Vec<u8>>,
    types: Vec<String>,
    data: Vec<Value>,
}

impl MetadataColumns {
    fn push(&mut self, metadata: &Metadata) {
        self.ids.push(metadata.id().to_vec());
        self.types
            .push(metadata.metadata_type().as_str().to_owned());
        self.data.push(metadata.data().clone());
    }
}

#[derive(Debug, Default)]
pub(crate) struct RelayMetadataColumns {
    relays: RelayColumns,
    metadata: MetadataColumns,
    generated_ats: Vec<i64>,
}

impl RelayMetadataColumns {
    /// The seven cascade columns of `records`.
    pub(crate) fn from_records(records: &[RelayMetadata]) -> Self {
        let mut columns = Self::default();
        for record in records {
            columns.relays.push(&record.relay);
            columns.metadata.push(&record.metadata);
            columns.generated_ats.push(record.generated_at);
        }
        columns
    }
}

/// `relay_metadata_insert_cascade` (or, without `cascade`, `relay_metadata_insert`) on an open
/// connection. Returns the junction rows inserted.
pub(crate) async fn insert_relay_metadata_rows(
    conn: &mut sqlx::PgConnection,
    c: &RelayMetadataColumns,
    cascade: bool,
) -> std::result::Result<u64, sqlx::Error> {
    let query = if cascade {
        sqlx::query_scalar("SELECT relay_metadata_insert_cascade($1, $2, $3, $4, $5, $6, $7)")
            .bind(&c.relays.urls)
            .bind(&c.relays.networks)
            .bind(&c.relays.discovered_ats)
            .bind(&c.metadata.ids)
            .bind(&c.metadata.types)
            .bind(&c.metadata.data)
            .bind(&c.generated_ats)
    } else {
        sqlx::query_scalar("SELECT relay_metadata_insert($1, $2, $3, $4)")
            .bind(&c.relays.urls)
            .bind(&c.metadata.ids)
            .bind(&c.metadata.types)
            .bind(&c.generated_ats)
    };
    let n: Option<i32> = query.persistent(false).fetch_one(&mut *conn).await?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

impl Brotr {
    /// `metadata_insert`: stores documents; a (hash, type) already present is left untouched.
    /// Returns the rows inserted.
    pub async fn insert_metadata(&self, documents: &[Metadata]) -> Result<u64> {
        self.check_batch(documents.len())?;
        if documents.is_empty() {
            return Ok(0);
        }
        let mut columns = MetadataColumns::default();
        documents.iter().for_each(|m| columns.push(m));
        let columns = Arc::new(columns);
        self.transact(TimeoutCategory::Batch, move |conn| {
            let c = columns.clone();
            Box::pin(async move {
                let n: Option<i32> = sqlx::query_scalar("SELECT metadata_insert($1, $2, $3)")
                    .persistent(false)
                    .bind(&c.ids)
                    .bind(&c.types)
                    .bind(&c.data)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(n.unwrap_or(0).max(0) as u64)
            })
        })
        .await
    }

    /// Stores metadata snapshots of relays. With `cascade`, `relay_metadata_insert_cascade` also
    /// inserts the relays and the documents; without it, `relay_metadata_insert` needs both to
    /// exist. Returns the junction rows inserted.
    pub async fn insert_relay_metadata(
        &self,
        records: &[RelayMetadata],
        cascade: bool,
    ) -> Result<u64> {
        self.check_batch(records.len())?;
        if records.is_empty() {
            return Ok(0);
        }
        let mut columns = RelayMetadataColumns::default();
        for record in records {
            if cascade {
                columns.relays.push(&record.relay);
                columns.metadata.push(&record.metadata);
            } else {
                columns.relays.urls.push(record.relay.url().to_owned());
                columns.metadata.ids.push(record.metadata.id().to_vec());
                columns
                    .metadata
                    .types
                    .push(record.metadata.metadata_type().as_str().to_owned());
            }
            columns.generated_ats.push(record.generated_at);
        }
        let columns = Arc::new(columns);
        self.transact(TimeoutCategory::Batch, move |conn| {
            let c = columns.clone();
            Box::pin(async move { insert_relay_metadata_rows(conn, &c, cascade).await })
        })
        .await
    }
}

/// In a progress transaction, relay metadata is always written with its relays and documents.
impl crate::service_state::RowBatch for RelayMetadataColumns {
    fn insert<'c>(&'c self, conn: &'c mut sqlx::PgConnection) -> crate::brotr::TxFuture<'c, u64> {
        Box::pin(insert_relay_metadata_rows(conn, self, true))
    }
}
