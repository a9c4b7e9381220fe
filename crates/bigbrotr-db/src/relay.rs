//! The `relay` aggregate: validated relays (`relay_insert`) and the reads daemons need.

use std::sync::Arc;

use bigbrotr_models::relay::Relay;
use sqlx::PgConnection;

use crate::Brotr;
use crate::config::TimeoutCategory;
use crate::error::Result;

/// Column arrays of `relay_insert`.
#[derive(Debug, Default)]
pub(crate) struct RelayColumns {
    pub(crate) urls: Vec<String>,
    pub(crate) networks: Vec<String>,
    pub(crate) discovered_ats: Vec<i64>,
}

impl RelayColumns {
    pub(crate) fn push(&mut self, relay: &Relay) {
        self.urls.push(relay.url().to_owned());
        self.networks.push(relay.network().as_str().to_owned());
        self.discovered_ats.push(relay.discovered_at());
    }
}

/// `relay_insert` on the caller's transaction. Returns the rows inserted.
pub(crate) async fn insert_relay_rows(
    conn: &mut PgConnection,
    c: &RelayColumns,
) -> std::result::Result<u64, sqlx::Error> {
    let n: Option<i32> = sqlx::query_scalar("SELECT relay_insert($1, $2, $3)")
        .persistent(false)
        .bind(&c.urls)
        .bind(&c.networks)
        .bind(&c.discovered_ats)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

impl Brotr {
    /// `relay_insert`: stores validated relays; an existing URL keeps its first `discovered_at`.
    /// Returns the rows inserted.
    pub async fn insert_relays(&self, relays: &[Relay]) -> Result<u64> {
        self.check_batch(relays.len())?;
        if relays.is_empty() {
            return Ok(0);
        }
        let mut columns = RelayColumns::default();
        relays.iter().for_each(|relay| columns.push(relay));
        let columns = Arc::new(columns);
        self.transact(TimeoutCategory::Batch, move |conn| {
            let c = columns.clone();
            Box::pin(async move { insert_relay_rows(conn, &c).await })
        })
        .await
    }

    /// The URLs of all stored relays, sorted.
    pub async fn relay_urls(&self) -> Result<Vec<String>> {
        self.transact(TimeoutCategory::Query, |conn| {
            Box::pin(async move {
                sqlx::query_scalar("SELECT url FROM relay ORDER BY url")
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await
            })
        })
        .await
    }

    /// How many relays are stored.
    pub async fn relay_count(&self) -> Result<i64> {
        self.transact(TimeoutCategory::Query, |conn| {
            Box::pin(async move {
                sqlx::query_scalar("SELECT count(*) FROM relay")
                    .persistent(false)
                    .fetch_one(&mut *conn)
                    .await
            })
        })
        .await
    }
}
