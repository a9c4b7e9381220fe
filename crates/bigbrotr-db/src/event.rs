//! The `event` aggregate: `event_insert`, `event_relay_insert` and the atomic
//! `event_relay_insert_cascade` (relay + event + junction in one statement).

use std::sync::Arc;

use bigbrotr_models::event::Event;
use bigbrotr_models::event_relay::EventRelay;
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::Brotr;
use crate::config::TimeoutCategory;
use crate::error::Result;
use crate::relay::RelayColumns;

/// Column arrays of `event_insert` (the first seven parameters of the cascade too).
#[derive(Debug, Default)]
struct EventColumns {
    ids: Vec<Vec<u8>>,
    pubkeys: Vec<Vec<u8>>,
    created_ats: Vec<i64>,
    kinds: Vec<i32>,
    tags: Vec<Json<Vec<Vec<String>>>>,
    contents: Vec<String>,
    sigs: Vec<Vec<u8>>,
}

impl EventColumns {
    fn with_capacity(n: usize) -> Self {
        Self {
            ids: Vec::with_capacity(n),
            pubkeys: Vec::with_capacity(n),
            created_ats: Vec::with_capacity(n),
            kinds: Vec::with_capacity(n),
            tags: Vec::with_capacity(n),
            contents: Vec::with_capacity(n),
            sigs: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, event: &Event) {
        self.ids.push(event.id().to_vec());
        self.pubkeys.push(event.pubkey().to_vec());
        self.created_ats.push(event.created_at());
        self.kinds.push(i32::from(event.kind()));
        self.tags.push(Json(event.tags().to_vec()));
        self.contents.push(event.content().to_owned());
        self.sigs.push(event.sig().to_vec());
    }
}

/// Column arrays of `event_relay_insert_cascade`.
#[derive(Debug, Default)]
pub(crate) struct CascadeColumns {
    events: EventColumns,
    relays: RelayColumns,
    seen_ats: Vec<i64>,
}

impl Brotr {
    /// `event_insert`: stores events (tagvalues computed by the database); existing ids are left
    /// untouched. Returns the rows inserted.
    pub async fn insert_events(&self, events: &[Event]) -> Result<u64> {
        self.check_batch(events.len())?;
        if events.is_empty() {
            return Ok(0);
        }
        let mut columns = EventColumns::with_capacity(events.len());
        events.iter().for_each(|event| columns.push(event));
        let columns = Arc::new(columns);
        self.transact(TimeoutCategory::Batch, move |conn| {
            let c = columns.clone();
            Box::pin(async move {
                let n: Option<i32> =
                    sqlx::query_scalar("SELECT event_insert($1, $2, $3, $4, $5, $6, $7)")
                        .persistent(false)
                        .bind(&c.ids)
                        .bind(&c.pubkeys)
                        .bind(&c.created_ats)
                        .bind(&c.kinds)
                        .bind(&c.tags)
                        .bind(&c.contents)
                        .bind(&c.sigs)
                        .fetch_one(&mut *conn)
                        .await?;
                Ok(n.unwrap_or(0).max(0) as u64)
            })
        })
        .await
    }

    /// Stores sightings of events at relays. With `cascade`, `event_relay_insert_cascade` also
    /// inserts the relays and the events, atomically; without it, `event_relay_insert` needs both
    /// to exist already. Returns the junction rows inserted.
    pub async fn insert_event_relays(&self, records: &[EventRelay], cascade: bool) -> Result<u64> {
        self.check_batch(records.len())?;
        if records.is_empty() {
            return Ok(0);
        }
        if cascade {
            let columns = Arc::new(CascadeColumns::from_records(records));
            return self
                .transact(TimeoutCategory::Batch, move |conn| {
                    let c = columns.clone();
                    Box::pin(async move { insert_cascade_rows(conn, &c).await })
                })
                .await;
        }
        let mut ids = Vec::with_capacity(records.len());
        let mut urls = Vec::with_capacity(records.len());
        let mut seen_ats = Vec::with_capacity(records.len());
        for record in records {
            ids.push(record.event.id().to_vec());
            urls.push(record.relay.url().to_owned());
            seen_ats.push(record.seen_at);
        }
        let columns = Arc::new((ids, urls, seen_ats));
        self.transact(TimeoutCategory::Batch, move |conn| {
            let c = columns.clone();
            Box::pin(async move {
                let n: Option<i32> = sqlx::query_scalar("SELECT event_relay_insert($1, $2, $3)")
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

impl CascadeColumns {
    /// The arrays of `records`.
    pub(crate) fn from_records(records: &[EventRelay]) -> Self {
        let mut columns = CascadeColumns {
            events: EventColumns::with_capacity(records.len()),
            ..Default::default()
        };
        for record in records {
            columns.events.push(&record.event);
            columns.relays.push(&record.relay);
            columns.seen_ats.push(record.seen_at);
        }
        columns
    }
}

/// `event_relay_insert_cascade` on the caller's transaction. Returns the junction rows inserted.
pub(crate) async fn insert_cascade_rows(
    conn: &mut PgConnection,
    c: &CascadeColumns,
) -> std::result::Result<u64, sqlx::Error> {
    if c.seen_ats.is_empty() {
        return Ok(0);
    }
    let n: Option<i32> = sqlx::query_scalar(
        "SELECT event_relay_insert_cascade($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .persistent(false)
    .bind(&c.events.ids)
    .bind(&c.events.pubkeys)
    .bind(&c.events.created_ats)
    .bind(&c.events.kinds)
    .bind(&c.events.tags)
    .bind(&c.events.contents)
    .bind(&c.events.sigs)
    .bind(&c.relays.urls)
    .bind(&c.relays.networks)
    .bind(&c.relays.discovered_ats)
    .bind(&c.seen_ats)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

impl crate::service_state::RowBatch for CascadeColumns {
    fn insert<'c>(&'c self, conn: &'c mut PgConnection) -> crate::brotr::TxFuture<'c, u64> {
        Box::pin(insert_cascade_rows(conn, self))
    }
}
