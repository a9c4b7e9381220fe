//! The DVM: the tables enabled in `dvm.yaml` served as NIP-90 jobs. A request of `kind` (5050
//! by default) names a `table` and the API's `limit`, `offset`, `sort`, `cursor` and `filter`
//! params; the answer is a result of `kind + 1000` holding the rows and `meta` (the API's catalog
//! code, shared through `bigbrotr-catalog`), or kind 7000 feedback (`error`, or
//! `payment-required` with `amount` for a priced table and a lower bid; no payment is ever
//! verified).
//!
//! Unlike 6.6.9, which polled every minute, each relay is subscribed to and requests are
//! answered as they arrive; a dropped relay is reconnected with backoff and re-subscribed from
//! the newest request it delivered, and at start the relays are read back to the newest answer
//! of ours (at most `catch_up` seconds), each older request checked against the answers already
//! on the relays, so that a restart answers nothing twice. Requests are admitted within
//! per-requester and total rate limits and a bounded queue, each refusal told at most once per
//! requester and window. The announcement (kind 31990) is re-published every
//! `announce_interval`. Encrypted requests (NIP-90's `encrypted` tag, NIP-04 content) are read
//! and answered encrypted.
//!
//! Requests without a `table` param are not ours and get no answer: 5050 is NIP-90's text
//! generation kind, and answering other DVMs' prompts with errors would be noise (6.6.9 answered
//! them "Invalid or disabled table").

pub mod config;
pub mod jobs;
pub mod limits;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bigbrotr_catalog::{Catalog, CatalogError};
use bigbrotr_core::clock;
use bigbrotr_core::config::BaseServiceConfig;
use bigbrotr_core::metrics::{Metrics, names};
use bigbrotr_core::runner::{Context, Daemon};
use bigbrotr_db::catalog::{ReadBudget, is_data_error};
use bigbrotr_db::{Brotr, DbError};
use bigbrotr_models::relay::Relay;
use bigbrotr_models::service_state::ServiceName;
use bigbrotr_utils::relay::{Connector, Notification, RelayConnection, classify};
use futures_util::future::join_all;
use nostr::{Event, EventId, Filter, Keys, Kind, Timestamp};
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::DvmConfig;
use jobs::{JobRequest, Reading, Status};
use limits::{BoundedSet, Limiter, Refusal};

/// Request ids remembered as answered (or deliberately left unanswered) in memory; older ones
/// are recognised by the answers on the relays.
const REMEMBERED: usize = 100_000;

/// Requests re-read after a reconnection start this long before the newest one delivered.
const RESUBSCRIBE_MARGIN: i64 = 60;

/// A remote `created_at` is trusted at most this far past the local clock.
const CLOCK_SKEW: i64 = 300;

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the daemon shares between its tasks.
struct Shared {
    config: DvmConfig,
    keys: Keys,
    catalog: Catalog,
    brotr: Brotr,
    metrics: Metrics,
    connector: Connector,
    connections: Mutex<BTreeMap<String, Arc<RelayConnection>>>,
    state: Mutex<State>,
    started_at: i64,
    shutdown: CancellationToken,
    workers: Semaphore,
    pending: AtomicUsize,
}

struct State {
    limiter: Limiter,
    answered: BoundedSet<EventId>,
    in_flight: BoundedSet<EventId>,
}

/// The DVM daemon.
pub struct Dvm {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    last_announce: Option<Instant>,
}

impl std::fmt::Debug for Dvm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dvm")
            .field("pubkey", &self.shared.keys.public_key().to_hex())
            .finish()
    }
}

impl Dvm {
    /// Starts the DVM with `keys`, reaching relays through `connector` (its keys are replaced
    /// by `keys`, for NIP-42): discovers the catalog, then subscribes to every relay.
    pub async fn start(
        config: DvmConfig,
        ctx: &Context,
        keys: Keys,
        connector: Connector,
    ) -> anyhow::Result<Self> {
        let catalog = Catalog::discover_for(&ctx.brotr, &config.tables)
            .await
            .context("catalog discovery failed")?;
        let exposed = catalog.exposed(&config.tables).len();
        ctx.metrics
            .set_gauge(names::api::TABLES_EXPOSED, exposed as f64);
        for name in [
            names::api::REQUESTS_TOTAL,
            names::api::REQUESTS_FAILED,
            names::dvm::JOBS_ANSWERED,
            names::dvm::JOBS_REFUSED,
            names::dvm::JOBS_IGNORED,
        ] {
            ctx.metrics.inc_counter(name, 0);
        }
        let now = clock::now();
        let mut relays = Vec::new();
        for (index, url) in config.relays.iter().enumerate() {
            let relay =
                Relay::new(url, now).map_err(|e| anyhow!("relays[{index}] = {url:?}: {e}"))?;
            relays.push(relay);
        }
        let limits = &config.limits;
        let state = State {
            limiter: Limiter::new(
                limits.per_requester,
                limits.total,
                Duration::from_secs_f64(limits.window),
                limits.tracked_requesters,
            ),
            answered: BoundedSet::new(REMEMBERED),
            in_flight: BoundedSet::new(limits.queue + limits.workers + 16),
        };
        let (sender, receiver) = mpsc::channel(limits.queue.max(16));
        let shared = Arc::new(Shared {
            workers: Semaphore::new(limits.workers),
            connector: connector
                .with_keys(Some(keys.clone()))
                .allow_insecure(config.allow_insecure),
            config,
            keys,
            catalog,
            brotr: ctx.brotr.clone(),
            metrics: ctx.metrics.clone(),
            connections: Mutex::new(BTreeMap::new()),
            state: Mutex::new(state),
            started_at: now,
            shutdown: ctx.shutdown.child_token(),
            pending: AtomicUsize::new(0),
        });
        let mut tasks = Vec::new();
        for relay in relays {
            tasks.push(tokio::spawn(listen(shared.clone(), relay, sender.clone())));
        }
        drop(sender);
        tasks.push(tokio::spawn(dispatch(shared.clone(), receiver)));
        tracing::info!(
            pubkey = %shared.keys.public_key().to_hex(),
            kind = shared.config.kind,
            relays = shared.config.relays.len(),
            tables_exposed = exposed,
            "dvm_started"
        );
        Ok(Self {
            shared,
            tasks,
            last_announce: None,
        })
    }

    /// Relays connected right now.
    pub async fn connected(&self) -> usize {
        self.shared.connections.lock().await.len()
    }

    /// Stops the listeners and workers (the daemon's shutdown does the same).
    pub async fn stop(self) {
        self.shared.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        let connections: Vec<Arc<RelayConnection>> =
            std::mem::take(&mut *self.shared.connections.lock().await)
                .into_values()
                .collect();
        for connection in connections {
            if let Ok(connection) = Arc::try_unwrap(connection) {
                connection.shutdown().await;
            }
        }
    }

    /// Publishes the announcement when it is due; returns the relays that accepted it.
    pub async fn announce_if_due(&mut self) -> usize {
        let config = &self.shared.config;
        if !config.announce {
            return 0;
        }
        let due = self
            .last_announce
            .is_none_or(|at| at.elapsed() >= Duration::from_secs_f64(config.announce_interval));
        if !due {
            return 0;
        }
        let tables: Vec<String> = self
            .shared
            .catalog
            .exposed(&config.tables)
            .iter()
            .map(|o| o.name.clone())
            .collect();
        let event = match jobs::announcement(
            &self.shared.keys,
            &config.d_tag,
            config.kind,
            &config.name,
            &config.about,
            &tables,
        ) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, "announcement_unsigned");
                return 0;
            }
        };
        let accepted = publish(&self.shared, &event).await;
        if accepted > 0 {
            self.last_announce = Some(Instant::now());
            tracing::info!(relays = accepted, "announcement_published");
        } else {
            tracing::warn!("announcement_not_published: no relay accepted it; retried next cycle");
        }
        accepted
    }
}

impl Daemon for Dvm {
    const NAME: ServiceName = ServiceName::Dvm;
    // Read-only: runs on a standby as on the primary.
    const WRITES: bool = false;
    type Config = DvmConfig;

    fn check_with_brotr(
        config: &DvmConfig,
        brotr: &bigbrotr_db::config::BrotrConfig,
    ) -> Result<(), bigbrotr_core::config::ConfigError> {
        let pool = brotr.pool.limits.max_size as usize;
        if config.limits.workers > pool {
            return Err(bigbrotr_core::config::ConfigError(format!(
                "limits.workers ({}) is larger than the pool (pool.max_size {pool}): jobs would \
                 wait for a connection and time out",
                config.limits.workers
            )));
        }
        Ok(())
    }

    fn base(config: &DvmConfig) -> &BaseServiceConfig {
        &config.base
    }

    async fn build(config: DvmConfig, ctx: &Context) -> anyhow::Result<Self> {
        let keys = bigbrotr_core::secrets::keys_from_env(&config.keys.keys_env)?;
        let connector = Connector::new(config.networks.clone())?;
        Self::start(config, ctx, keys, connector).await
    }

    async fn run(&mut self, ctx: &Context) -> anyhow::Result<()> {
        if self.tasks.iter().any(JoinHandle::is_finished) && !ctx.is_stopping() {
            return Err(anyhow!("a listener or the dispatcher stopped"));
        }
        // The first cycle runs right after start: give the relays their connection time.
        let deadline = Instant::now() + Duration::from_secs_f64(self.shared.config.fetch_timeout);
        while self.connected().await == 0 && Instant::now() < deadline && !ctx.is_stopping() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let connected = self.connected().await;
        ctx.metrics
            .set_gauge(names::dvm::RELAYS_CONNECTED, connected as f64);
        self.announce_if_due().await;
        let metrics = &ctx.metrics;
        tracing::info!(
            relays_connected = connected,
            requests_total = metrics.counter(names::api::REQUESTS_TOTAL),
            jobs_answered = metrics.counter(names::dvm::JOBS_ANSWERED),
            jobs_refused = metrics.counter(names::dvm::JOBS_REFUSED),
            requests_failed = metrics.counter(names::api::REQUESTS_FAILED),
            "cycle_stats"
        );
        if connected == 0 {
            // Not a failed cycle: the listeners keep reconnecting with backoff, and the
            // relays_connected gauge says it (a cycle failure would stop the daemon after
            // max_consecutive_failures outages of its relays).
            tracing::warn!(
                relays = self.shared.config.relays.len(),
                "no_relay_connected"
            );
        }
        Ok(())
    }
}

/// Sends `event` to every connected relay at once; returns how many accepted it.
async fn publish(shared: &Shared, event: &Event) -> usize {
    let connections: Vec<(String, Arc<RelayConnection>)> = shared
        .connections
        .lock()
        .await
        .iter()
        .map(|(url, c)| (url.clone(), c.clone()))
        .collect();
    let timeout = Duration::from_secs_f64(shared.config.fetch_timeout);
    let sends = connections.iter().map(|(url, connection)| async move {
        match connection.send(event, timeout).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(relay = %url, %error, kind = event.kind.as_u16(), "publish_refused");
                false
            }
        }
    });
    join_all(sends).await.into_iter().filter(|ok| *ok).count()
}

/// One relay: connect (with backoff), subscribe from the right point, hand requests to the
/// dispatcher, and start over when the connection drops.
async fn listen(shared: Arc<Shared>, relay: Relay, sender: mpsc::Sender<Event>) {
    let url = relay.url().to_owned();
    let kind = Kind::from(shared.config.kind);
    let timeout = Duration::from_secs_f64(shared.config.fetch_timeout);
    let mut newest_seen: Option<i64> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        if shared.shutdown.is_cancelled() {
            return;
        }
        let connected_at = Instant::now();
        match shared.connector.connect_within(&relay, timeout).await {
            Ok(mut connection) => {
                let notifications = connection.take_notifications();
                let connection = Arc::new(connection);
                let since = match newest_seen {
                    Some(newest) => newest - RESUBSCRIBE_MARGIN,
                    None => initial_since(&shared, &connection, timeout).await,
                };
                let filter = Filter::new()
                    .kind(kind)
                    .since(Timestamp::from(since.max(0) as u64));
                match (notifications, connection.subscribe(filter).await) {
                    (Some(mut notifications), Ok(subscription)) => {
                        shared
                            .connections
                            .lock()
                            .await
                            .insert(url.clone(), connection.clone());
                        tracing::info!(relay = %url, since, "relay_subscribed");
                        loop {
                            let note = tokio::select! {
                                () = shared.shutdown.cancelled() => break,
                                note = notifications.recv() => note,
                            };
                            match classify(note, &subscription) {
                                Notification::Event(event) => {
                                    let created = (event.created_at.as_secs() as i64)
                                        .min(clock::now() + CLOCK_SKEW);
                                    newest_seen =
                                        Some(newest_seen.map_or(created, |n| n.max(created)));
                                    if sender.try_send(*event).is_err() {
                                        shared.metrics.inc_counter(names::dvm::JOBS_REFUSED, 1);
                                        tracing::warn!(relay = %url, "request_dropped_queue_full");
                                    }
                                }
                                Notification::Other => {}
                                Notification::Lost => break,
                            }
                        }
                        shared.connections.lock().await.remove(&url);
                    }
                    (_, Err(error)) => {
                        tracing::warn!(relay = %url, %error, "relay_subscribe_failed");
                    }
                    (None, Ok(_)) => {}
                }
                if let Ok(connection) = Arc::try_unwrap(connection) {
                    connection.shutdown().await;
                }
            }
            Err(error) => {
                tracing::warn!(relay = %url, %error, "relay_connect_failed");
            }
        }
        if shared.shutdown.is_cancelled() {
            return;
        }
        if connected_at.elapsed() > MAX_BACKOFF {
            backoff = Duration::from_secs(1);
        }
        tracing::info!(relay = %url, retry_in_s = backoff.as_secs_f64(), "relay_reconnecting");
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Where a first subscription starts: just before the newest answer of ours on this relay
/// (what was asked since was possibly missed), at most `catch_up` seconds back.
async fn initial_since(shared: &Shared, connection: &RelayConnection, timeout: Duration) -> i64 {
    let now = clock::now();
    let floor = now - shared.config.catch_up as i64;
    let filter = Filter::new()
        .author(shared.keys.public_key())
        .kinds([Kind::from(shared.config.result_kind()), Kind::JobFeedback])
        .limit(1);
    let newest = connection
        .query(filter, timeout)
        .await
        .ok()
        .and_then(|events| events.iter().map(|e| e.created_at.as_secs() as i64).max());
    match newest {
        Some(newest) => (newest.min(now) - RESUBSCRIBE_MARGIN).max(floor),
        None => floor,
    }
}

/// Admission: every request arriving from any relay passes here once.
async fn dispatch(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Event>) {
    loop {
        let event = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            event = receiver.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        if event.kind != Kind::from(shared.config.kind) {
            continue;
        }
        {
            let state = shared.state.lock().await;
            if state.answered.contains(&event.id) || state.in_flight.contains(&event.id) {
                // The same request from another relay, or again after a reconnection.
                continue;
            }
        }
        shared.metrics.inc_counter(names::api::REQUESTS_TOTAL, 1);
        let job = match jobs::read_request(&event, &shared.keys) {
            Reading::NotForUs => {
                ignore(&shared, event.id).await;
                continue;
            }
            Reading::Job(job) if !job.params.contains_key("table") => {
                // Not a BigBrotr query (another DVM's job of the same kind).
                ignore(&shared, event.id).await;
                continue;
            }
            Reading::Job(job) => Ok(job),
            Reading::Invalid(reason) => Err(reason),
        };
        let admitted = {
            let mut state = shared.state.lock().await;
            let verdict = state.limiter.admit(event.pubkey, Instant::now());
            let busy = shared.pending.load(Ordering::SeqCst) >= shared.config.limits.queue;
            match (verdict, busy) {
                (Ok(()), false) => {
                    state.in_flight.insert(event.id);
                    None
                }
                (verdict, _) => {
                    let notify = state.limiter.may_notify(event.pubkey);
                    state.answered.insert(event.id);
                    Some((verdict.err(), notify))
                }
            }
        };
        if let Some((refusal, notify)) = admitted {
            shared.metrics.inc_counter(names::dvm::JOBS_REFUSED, 1);
            let message = match refusal {
                Some(Refusal::Requester) => format!(
                    "rate-limited: at most {} jobs per requester every {} s",
                    shared.config.limits.per_requester, shared.config.limits.window
                ),
                Some(Refusal::Total) => format!(
                    "rate-limited: at most {} jobs every {} s in total, retry later",
                    shared.config.limits.total, shared.config.limits.window
                ),
                None => "busy: too many jobs waiting, retry later".to_owned(),
            };
            tracing::info!(request = %event.id, requester = %event.pubkey, %message, notify, "job_refused");
            if notify {
                let shared = shared.clone();
                tokio::spawn(async move {
                    send_feedback(&shared, &event, Status::Error, &message, None).await;
                });
            }
            continue;
        }
        shared.pending.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        tokio::spawn(async move {
            let id = event.id;
            let answered = match shared.workers.acquire().await {
                Ok(_permit) => work(&shared, event, job).await,
                Err(_) => false,
            };
            let mut state = shared.state.lock().await;
            state.in_flight.remove(&id);
            if answered {
                state.answered.insert(id);
            }
            drop(state);
            shared.pending.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn ignore(shared: &Shared, id: EventId) {
    shared.metrics.inc_counter(names::dvm::JOBS_IGNORED, 1);
    shared.state.lock().await.answered.insert(id);
}

/// Whether one of the relays already holds an answer of ours to `request` (a result or a
/// feedback tagging it).
async fn already_answered(shared: &Shared, request: &Event) -> bool {
    let connections: Vec<Arc<RelayConnection>> =
        shared.connections.lock().await.values().cloned().collect();
    let timeout = Duration::from_secs_f64(shared.config.fetch_timeout);
    let filter = Filter::new()
        .author(shared.keys.public_key())
        .kinds([Kind::from(shared.config.result_kind()), Kind::JobFeedback])
        .event(request.id)
        .limit(1);
    for connection in connections {
        if let Ok(events) = connection.query(filter.clone(), timeout).await
            && !events.is_empty()
        {
            return true;
        }
    }
    false
}

/// Answers one admitted request; returns whether an answer reached a relay.
async fn work(shared: &Shared, event: Event, job: Result<Box<JobRequest>, String>) -> bool {
    // A request older than this process may have been answered before a restart.
    if (event.created_at.as_secs() as i64) < shared.started_at
        && already_answered(shared, &event).await
    {
        shared.metrics.inc_counter(names::dvm::JOBS_IGNORED, 1);
        tracing::debug!(request = %event.id, "job_already_answered");
        return true;
    }
    let job = match job {
        Ok(job) => job,
        Err(reason) => {
            shared.metrics.inc_counter(names::api::REQUESTS_FAILED, 1);
            return send_feedback(shared, &event, Status::Error, &reason, None).await;
        }
    };
    match answer(shared, &job).await {
        Ok(result) => {
            let accepted = publish(shared, &result).await;
            if accepted > 0 {
                shared.metrics.inc_counter(names::dvm::JOBS_ANSWERED, 1);
                tracing::info!(request = %event.id, relays = accepted, "job_answered");
            } else {
                tracing::warn!(request = %event.id, "job_result_not_published");
            }
            accepted > 0
        }
        Err((status, message, amount)) => {
            if status == Status::Error {
                shared.metrics.inc_counter(names::api::REQUESTS_FAILED, 1);
            }
            tracing::info!(request = %event.id, %message, "job_refused_with_feedback");
            send_feedback(shared, &event, status, &message, amount).await
        }
    }
}

async fn send_feedback(
    shared: &Shared,
    request: &Event,
    status: Status,
    message: &str,
    amount: Option<u64>,
) -> bool {
    match jobs::feedback(&shared.keys, request, status, message, amount) {
        Ok(feedback) => publish(shared, &feedback).await > 0,
        Err(error) => {
            tracing::error!(%error, "feedback_unsigned");
            false
        }
    }
}

type Refused = (Status, String, Option<u64>);

/// The result event of `job`, or the feedback to send instead.
async fn answer(shared: &Shared, job: &JobRequest) -> Result<Event, Refused> {
    let config = &shared.config;
    let error = |message: String| (Status::Error, message, None);
    let table = job.params.get("table").map(String::as_str).unwrap_or("");
    let object = shared
        .catalog
        .exposed_object(&config.tables, table)
        .map_err(|_| {
            error(format!(
                "Invalid or disabled table: {}",
                table.chars().take(64).collect::<String>()
            ))
        })?;
    let price = config.tables.get(table).map_or(0, |t| t.price);
    if price > 0 && job.bid.unwrap_or(0) < price {
        return Err((
            Status::PaymentRequired,
            format!("This query costs {price} millisats"),
            Some(price),
        ));
    }
    let pairs = jobs::catalog_params(&job.params).map_err(error)?;
    let request = bigbrotr_catalog::parse_list(object, &pairs, config.page_limits()).map_err(
        |e| match e {
            CatalogError::InvalidPaging => error("Invalid limit or offset value".into()),
            other => error(other.to_string()),
        },
    )?;
    let budget = Duration::from_secs_f64(config.query_timeout);
    let mut attempt = 0;
    let page = loop {
        let query = shared
            .brotr
            .catalog_list(object, &request.query, ReadBudget(budget));
        match tokio::time::timeout(budget + Duration::from_secs(1), query).await {
            Ok(Ok(page)) => break page,
            Ok(Err(e)) if is_data_error(&e) => return Err(error("Invalid filter value".into())),
            Ok(Err(DbError::Timeout { .. })) | Err(_) => {
                return Err(error("Query timeout".into()));
            }
            Ok(Err(e)) if e.class() == "ConnectionError" && attempt < 2 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "job_query_retry");
                tokio::time::sleep(Duration::from_secs(attempt)).await;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "job_query_failed");
                return Err(error("Query execution failed".into()));
            }
        }
    };
    let total = page.total.map_or(0, |t| t.value);
    let mut rows = page.rows;
    let mut next_cursor = page
        .last_key
        .filter(|_| object.keyset_capable())
        .map(|key| bigbrotr_catalog::cursor_for(object, &request, key));
    let meta = |returned: usize, truncated: bool, cursor: &Option<String>| {
        serde_json::json!({
            "total": total,
            "limit": request.query.limit,
            "offset": request.query.offset,
            "returned": returned,
            "truncated": truncated,
            "next_cursor": cursor,
        })
    };
    let mut content = bigbrotr_catalog::page_body(&rows, &meta(rows.len(), false, &next_cursor));
    if content.len() > config.max_result_bytes {
        // Leave rows out until the result fits what relays accept; the cursor would point past
        // rows not sent, so there is none: ask again with a smaller limit or an offset.
        next_cursor = None;
        while content.len() > config.max_result_bytes && !rows.is_empty() {
            let excess = content.len() - config.max_result_bytes;
            let mut dropped = 0;
            while dropped < excess && !rows.is_empty() {
                dropped += rows.pop().map_or(0, |r| r.len() + 1);
            }
            content = bigbrotr_catalog::page_body(&rows, &meta(rows.len(), true, &next_cursor));
        }
    }
    let amount = (price > 0).then_some(price);
    jobs::result(&shared.keys, job, config.result_kind(), &content, amount)
        .map_err(|e| error(format!("cannot sign the result: {e}")))
}
