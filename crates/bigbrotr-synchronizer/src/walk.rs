//! The archive walk of one relay: read newest-first in pages, committed with a window cursor
//! once complete. How completeness is reached:
//!
//! - A REQ with `limit: n` is answered with the newest matching events, at most `n`, possibly
//!   fewer (clamped limits, pages capped by bytes, expired, deleted or muted events dropped after
//!   the limit). A page whose oldest event is at second `m` holds every event the relay serves in
//!   `(m, u]`; only second `m` may be cut, so the next page asks for `until = m`.
//! - A page's size proves nothing: a descent ends only when the relay answers with nothing older
//!   than the page's `until` (or nothing at all).
//! - A page holding only its `until` second and at least half of the largest page seen (and at
//!   least [`CROWDED_MIN`] events) may be a crowded second: its ids are listed with NIP-77
//!   negentropy, which no `limit` applies to, and the missing ones fetched by id. A relay without
//!   NIP-77 leaves such a second possibly incomplete; it is counted (`unresolved_seconds`).
//! - With one filter the range is read from its end down like a plain pager; a descent stopped
//!   after [`MAX_WINDOW_PAGES`] pages keeps its pages as a segment and the next one starts below
//!   it. Reaching the start commits everything read. After [`MAX_PENDING_SEGMENTS`] segments the
//!   rest is read in ascending windows committed one by one (and so are several-filter walks);
//!   a window that goes too deep is abandoned uncommitted and retried narrower.
//!
//! Wire order does not matter (pages are collected to EOSE), duplicates are ignored, and every
//! request is bounded in time (`wait` per valid message, `idle` per request) and size (events
//! and bytes).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bigbrotr_core::clock;
use bigbrotr_models::relay::Relay;
use bigbrotr_models::service_state::{Cursor, ServiceName, ServiceState};
use bigbrotr_utils::relay::Session;
use bigbrotr_utils::relay::session::{Bounds, SessionError};
use nostr::{EventId, Filter, Timestamp};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::RelaySettings;
use crate::verify::verify_page;
use crate::writer::Message;

/// Pages one descent may take before it stops (its pages kept as a segment, or, in ascending
/// windows, given up and the window retried narrower).
pub const MAX_WINDOW_PAGES: u32 = 32;

/// Segments read from the top and not yet committed, at most (so a crash re-fetches at most
/// this many descents, `MAX_PENDING_SEGMENTS × MAX_WINDOW_PAGES` pages, plus one window).
pub const MAX_PENDING_SEGMENTS: usize = 4;

/// The cursor id meaning "every event up to and including `timestamp` is archived". Readers
/// that resume inclusively at `timestamp` (the original) re-read one second; this daemon
/// resumes at `timestamp + 1`.
pub const WINDOW_DONE_ID: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

/// Most ids one second may list through negentropy.
const MAX_SECOND_IDS: usize = 1_000_000;

/// Most bytes of EVENT frames one response may hold. A larger response is asked again with half
/// the `limit` (down to [`MIN_LIMIT`]); at the smallest limit it fails the relay.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// The smallest `limit` a response too large in bytes is retried with.
pub const MIN_LIMIT: usize = 10;

/// Bytes an EVENT frame may have beyond `max_event_size` (the envelope and the subscription id)
/// before it is dropped unparsed.
const FRAME_ENVELOPE: usize = 1024;

/// A page holding only one second is "crowded" (listed with NIP-77) when it holds at least
/// half of the largest page the relay has returned and at least this many events.
pub const CROWDED_MIN: usize = 10;

/// The session bounds of a walk with `max_event_size`.
pub fn session_bounds(max_event_size: Option<u64>) -> Bounds {
    Bounds {
        max_event_frame: max_event_size.map(|size| {
            usize::try_from(size)
                .unwrap_or(usize::MAX)
                .saturating_add(FRAME_ENVELOPE)
        }),
        max_response_bytes: MAX_RESPONSE_BYTES,
    }
}

/// Where the walk of a relay with `cursor` starts: after a completed window, the next second;
/// after an event cursor (as the original writes), that event's second again.
pub fn resume_from(cursor: &Cursor) -> i64 {
    if cursor.id == WINDOW_DONE_ID {
        cursor.timestamp.saturating_add(1)
    } else {
        cursor.timestamp
    }
}

/// What one relay's walk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// REQ and NEG-OPEN requests sent.
    pub requests: u64,
    /// EVENT messages received for the walk's requests (before verification, duplicates
    /// included).
    pub received: u64,
    /// Windows committed.
    pub windows: u64,
    /// Windows abandoned for being too deep.
    pub abandoned_windows: u64,
    /// Seconds holding at least a full page of events.
    pub saturated_seconds: u64,
    /// Saturated seconds the relay could not list (no NIP-77).
    pub unresolved_seconds: u64,
    /// The end of the last committed window.
    pub committed_until: Option<i64>,
}

/// Why a walk ended before its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// The relay failed (timeout, disconnect, refusal, flood).
    #[error(transparent)]
    Relay(#[from] SessionError),
    /// A request took longer than `idle`.
    #[error("request took longer than {0:?}")]
    Idle(Duration),
    /// Shutdown was requested or the phase's `max_duration` passed.
    #[error("stopped before the end ({0})")]
    Stopped(&'static str),
    /// The writer is gone (database failure).
    #[error("the database writer stopped")]
    WriterGone,
}

impl WalkError {
    /// A short, bounded name for counting failures by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            WalkError::Relay(e) => e.reason(),
            WalkError::Idle(_) => "idle",
            WalkError::Stopped(_) => "stopped",
            WalkError::WriterGone => "writer",
        }
    }
}

/// The limits of a walk.
#[derive(Debug, Clone)]
pub struct WalkLimits {
    /// Wait for each message.
    pub wait: Duration,
    /// Largest accepted event JSON.
    pub max_event_size: Option<u64>,
    /// End of the phase.
    pub deadline: Instant,
    /// Shutdown.
    pub shutdown: CancellationToken,
    /// The bytes of pages queued for the writer (shared by every relay task).
    pub queued_bytes: Arc<Semaphore>,
}

/// The shape of a page, for the window logic: unique in-range events.
struct PageShape {
    count: usize,
    oldest: Option<i64>,
    newest: Option<i64>,
    ids_at_oldest: HashSet<EventId>,
}

enum Descent {
    /// The filter's descent reached the window's start.
    Complete { pages: u32 },
    /// Stopped after [`MAX_WINDOW_PAGES`] pages (or, when `probe` was asked, after a first
    /// page showing the window is far too wide): every event the relay serves in
    /// `(reached, until]` has been sent to the writer, the rest of the window has not.
    TooDeep {
        /// The oldest second reached (it may have been cut).
        reached: i64,
        /// The width to retry the window with if the pages read are given up.
        width: i64,
    },
}

/// One relay being archived.
pub struct Walk<'a> {
    session: &'a mut Session,
    relay: Relay,
    settings: RelaySettings,
    limits: WalkLimits,
    tx: mpsc::Sender<Message>,
    page_size: Vec<usize>,
    /// The REQ limit, halved after a response too large in bytes.
    limit: usize,
    /// The statistics so far (also meaningful after an error).
    pub stats: WalkStats,
}

impl<'a> Walk<'a> {
    /// A walk over an open session.
    pub(crate) fn new(
        session: &'a mut Session,
        relay: Relay,
        settings: RelaySettings,
        limits: WalkLimits,
        tx: mpsc::Sender<Message>,
    ) -> Self {
        let filters = settings.filters.len();
        let limit = settings.limit;
        Self {
            limit,
            session,
            relay,
            settings,
            limits,
            tx,
            page_size: vec![0; filters],
            stats: WalkStats::default(),
        }
    }

    fn check_stop(&self) -> Result<(), WalkError> {
        if self.limits.shutdown.is_cancelled() {
            return Err(WalkError::Stopped("shutdown"));
        }
        if Instant::now() >= self.limits.deadline {
            return Err(WalkError::Stopped("max_duration"));
        }
        Ok(())
    }

    /// Archives `[start, end]`.
    ///
    /// With one filter, the range is first read from its end down, like a plain `until` pager,
    /// without throwing a page away: a descent stopped after [`MAX_WINDOW_PAGES`] pages keeps
    /// what it read as a segment `(reached, top]` and the next descent starts at `reached`.
    /// Reaching `start` commits everything read. After [`MAX_PENDING_SEGMENTS`] segments (a
    /// relay too large to read in one go) the rest below the lowest segment is read in
    /// ascending windows, each committed as it completes, and the segments are committed when
    /// those windows reach them. With several filters, windows ascend from the start.
    pub async fn run(&mut self, start: i64, end: i64) -> Result<(), WalkError> {
        let mut since = start.max(0);
        let mut width = end.saturating_sub(since).saturating_add(1).max(1);
        // Segments `(lo, hi]` read but not committed, contiguous, the lowest last.
        let mut pending: Vec<(i64, i64)> = Vec::new();
        let single = self.settings.filters.len() == 1;
        let mut ascending = !single;
        while since <= end {
            self.check_stop()?;
            let target = pending.last().map_or(end, |&(lo, _)| lo);
            let window_end = if ascending {
                target.min(since.saturating_add(width - 1))
            } else {
                target
            };
            let mut most_pages = 0;
            let mut too_deep = None;
            for index in 0..self.settings.filters.len() {
                match self.descend(index, since, window_end, ascending).await? {
                    Descent::Complete { pages } => most_pages = most_pages.max(pages),
                    Descent::TooDeep { reached, width } => {
                        too_deep = Some((reached, width));
                        break;
                    }
                }
            }
            if let Some((reached, narrower)) = too_deep {
                if single && pending.len() < MAX_PENDING_SEGMENTS {
                    // Keep what was read; go on below it.
                    pending.push((reached, window_end));
                    if pending.len() == MAX_PENDING_SEGMENTS {
                        ascending = true;
                        // About half a budget of pages at the density just read.
                        width = ((window_end - reached) / 2).max(1);
                    }
                    tracing::debug!(
                        relay = self.relay.url(),
                        since,
                        reached,
                        window_end,
                        "segment_read"
                    );
                    continue;
                }
                self.stats.abandoned_windows += 1;
                width = narrower.clamp(1, (window_end - since).max(1));
                tracing::debug!(
                    relay = self.relay.url(),
                    since,
                    window_end,
                    width,
                    "window_abandoned"
                );
                continue;
            }
            // `[since, window_end]` is complete, and so is every segment it reaches.
            let mut committed = window_end;
            while let Some(&(lo, hi)) = pending.last()
                && lo == committed
            {
                pending.pop();
                committed = hi;
            }
            let cursor = Cursor::new(committed, WINDOW_DONE_ID).expect("a valid cursor id");
            let state = ServiceState::cursor(ServiceName::Synchronizer, self.relay.url(), &cursor)
                .expect("a sanitised relay URL is a valid state key");
            self.tx
                .send(Message::WindowDone(state))
                .await
                .map_err(|_| WalkError::WriterGone)?;
            self.stats.windows += 1;
            self.stats.committed_until = Some(committed);
            if most_pages <= MAX_WINDOW_PAGES / 4 {
                width = width.saturating_mul(2);
            } else if most_pages >= MAX_WINDOW_PAGES * 3 / 4 {
                width = (width / 2).max(1);
            }
            since = committed.saturating_add(1);
        }
        Ok(())
    }

    /// Reads `[since, until]` for filter `index`, newest first. Each page asks `until` = the
    /// oldest second of the previous page (that second may have been cut), so the descent ends
    /// when the relay answers with nothing older than its `until` (or nothing at all), whatever
    /// the size of its pages.
    /// With `probe`, a first page showing the window would take far more than
    /// [`MAX_WINDOW_PAGES`] pages stops it at once.
    async fn descend(
        &mut self,
        index: usize,
        since: i64,
        until: i64,
        probe: bool,
    ) -> Result<Descent, WalkError> {
        let mut upper = until;
        let mut pages = 0;
        // The newest event of the descent: the density of what it reads is measured from it,
        // not from an empty top of the window.
        let mut top = None;
        loop {
            self.check_stop()?;
            let shape = self.fetch_page(index, since, upper).await?;
            pages += 1;
            let (Some(oldest), Some(newest)) = (shape.oldest, shape.newest) else {
                return Ok(Descent::Complete { pages });
            };
            let top = *top.get_or_insert(newest);
            let known = &mut self.page_size[index];
            *known = (*known).max(shape.count);
            let known = *known;
            if oldest >= upper {
                // Nothing older than `upper`: the descent is done, unless that second holds
                // more events than a page shows (a crowded second).
                let at_oldest = shape.ids_at_oldest.len();
                if at_oldest >= CROWDED_MIN.min(self.limit) && at_oldest * 2 >= known {
                    self.resolve_second(index, oldest, &shape.ids_at_oldest)
                        .await?;
                    if oldest > since {
                        upper = oldest - 1;
                        continue;
                    }
                }
                return Ok(Descent::Complete { pages });
            }
            // A first page that covers a small part of a wide window: the window would take
            // far more than MAX_WINDOW_PAGES pages; retry it with about eight pages' width.
            // Either the page covers a small part of the window, or at the page's density the
            // rest of the window below it would take more than the budget.
            let covered = until - oldest + 1;
            let span = newest - oldest + 1;
            if probe
                && pages == 1
                && oldest > since
                && ((until - since + 1) / covered > i64::from(MAX_WINDOW_PAGES)
                    || (oldest - since) / span > i64::from(MAX_WINDOW_PAGES))
            {
                return Ok(Descent::TooDeep {
                    reached: oldest,
                    width: covered
                        .min(span)
                        .saturating_mul(i64::from(MAX_WINDOW_PAGES / 2)),
                });
            }
            upper = oldest;
            if pages >= MAX_WINDOW_PAGES {
                return Ok(Descent::TooDeep {
                    reached: oldest,
                    width: ((top - upper) / 2).max(1),
                });
            }
        }
    }

    /// One page of filter `index` in `[since, until]` at the current limit; a response too
    /// large in bytes is asked again with half the limit.
    async fn fetch_page(
        &mut self,
        index: usize,
        since: i64,
        until: i64,
    ) -> Result<PageShape, WalkError> {
        loop {
            let limit = self.limit;
            let filter = self.window_filter(index, since, until).limit(limit);
            match self.fetch(&filter, since, until, limit).await {
                Err(WalkError::Relay(SessionError::TooLarge(bytes))) if limit > MIN_LIMIT => {
                    self.limit = (limit / 2).max(MIN_LIMIT);
                    // Pages are now at most the new limit: a crowded second is judged by it.
                    for known in &mut self.page_size {
                        *known = (*known).min(self.limit);
                    }
                    tracing::debug!(
                        relay = self.relay.url(),
                        bytes,
                        limit = self.limit,
                        "response_too_large_limit_halved"
                    );
                }
                other => return other,
            }
        }
    }

    /// Filter `index` restricted to `[since, until]`, without a limit.
    fn window_filter(&self, index: usize, since: i64, until: i64) -> Filter {
        let mut filter = self.settings.filters[index].clone();
        filter.limit = None;
        filter
            .since(Timestamp::from(since.max(0) as u64))
            .until(Timestamp::from(until.max(0) as u64))
    }

    /// Lists the ids of saturated second `second` with NIP-77 and fetches the ones the page did
    /// not carry.
    async fn resolve_second(
        &mut self,
        index: usize,
        second: i64,
        have: &HashSet<EventId>,
    ) -> Result<(), WalkError> {
        self.stats.saturated_seconds += 1;
        let filter = self.window_filter(index, second, second);
        self.stats.requests += 1;
        let listed = bounded(
            self.settings.idle,
            self.session
                .negentropy_ids(&filter, self.limits.wait, MAX_SECOND_IDS),
        )
        .await?;
        let Some(ids) = listed else {
            self.stats.unresolved_seconds += 1;
            tracing::warn!(
                relay = self.relay.url(),
                second,
                "saturated_second_unresolved: the relay holds a full page in one second and does not support NIP-77; events beyond its page may be missing"
            );
            return Ok(());
        };
        let missing: Vec<EventId> = ids
            .into_iter()
            .map(EventId::from_byte_array)
            .filter(|id| !have.contains(id))
            .collect();
        let chunk = self.page_size[index].clamp(1, self.limit.max(1));
        for ids in missing.chunks(chunk) {
            self.check_stop()?;
            let mut by_id = filter.clone();
            by_id.ids = Some(ids.iter().copied().collect());
            let by_id = by_id.limit(ids.len());
            self.fetch(&by_id, second, second, ids.len()).await?;
        }
        Ok(())
    }

    /// One REQ: collects the page, hands it to verification and the writer, and returns its
    /// shape (unique events inside `[since, until]`).
    async fn fetch(
        &mut self,
        filter: &Filter,
        since: i64,
        until: i64,
        limit: usize,
    ) -> Result<PageShape, WalkError> {
        self.stats.requests += 1;
        let max_events = limit.saturating_mul(2).saturating_add(100);
        let response = bounded(
            self.settings.idle,
            self.session.query(filter, self.limits.wait, max_events),
        )
        .await?;
        let bytes = response.bytes;
        let frames = response.events.len() + response.malformed + response.oversized;
        let mut seen = HashSet::with_capacity(response.events.len());
        let mut received = Vec::with_capacity(response.events.len());
        let mut shape = PageShape {
            count: 0,
            oldest: None,
            newest: None,
            ids_at_oldest: HashSet::new(),
        };
        for item in response.events {
            if !seen.insert(item.event.id) {
                continue;
            }
            let created_at = item.event.created_at.as_secs() as i64;
            if (since..=until).contains(&created_at) {
                shape.count += 1;
                shape.newest = Some(shape.newest.map_or(created_at, |n| n.max(created_at)));
                match shape.oldest {
                    Some(oldest) if created_at > oldest => {}
                    Some(oldest) if created_at == oldest => {
                        shape.ids_at_oldest.insert(item.event.id);
                    }
                    _ => {
                        shape.oldest = Some(created_at);
                        shape.ids_at_oldest.clear();
                        shape.ids_at_oldest.insert(item.event.id);
                    }
                }
            }
            received.push(item);
        }
        self.stats.received += frames as u64;
        let check = filter.clone();
        let max_event_size = self.limits.max_event_size;
        let malformed = response.malformed as u64;
        let oversized = response.oversized as u64;
        // The page's bytes are held until the writer has taken its events: pages queued for
        // the writer are bounded in bytes, not only in number.
        let permits = u32::try_from(bytes.min(MAX_RESPONSE_BYTES)).unwrap_or(u32::MAX);
        let queued = self
            .limits
            .queued_bytes
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| WalkError::WriterGone)?;
        let verified = tokio::task::spawn_blocking(move || {
            let ((events, mut rejections), cpu) = crate::verify::with_cpu_time(|| {
                verify_page(received, &check, max_event_size, malformed)
            });
            rejections.oversized += oversized;
            (events, rejections, cpu)
        });
        self.tx
            .send(Message::Page {
                relay: self.relay.clone(),
                seen_at: clock::now(),
                verified,
                queued,
            })
            .await
            .map_err(|_| WalkError::WriterGone)?;
        Ok(shape)
    }
}

/// Runs one request within `idle`.
async fn bounded<T>(
    idle: Duration,
    request: impl Future<Output = Result<T, SessionError>>,
) -> Result<T, WalkError> {
    match tokio::time::timeout(idle, request).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(WalkError::Idle(idle)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_cursors_resume_after_their_second_and_event_cursors_at_it() {
        let done = Cursor::new(1000, WINDOW_DONE_ID).unwrap();
        assert_eq!(resume_from(&done), 1001);
        // A cursor the original wrote: the second may hold more events, so it is read again.
        let event = Cursor::new(1000, &"ab".repeat(32)).unwrap();
        assert_eq!(resume_from(&event), 1000);
    }
}
