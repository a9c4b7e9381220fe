//! Checks every received event before it may be stored: size, the request's filter, id and
//! Schnorr signature, and the storage rules of the `event` table. Runs on the blocking pool so
//! signature checks of many pages use every core while the relay tasks keep fetching.

use bigbrotr_models::event::{Event, EventError};
use bigbrotr_utils::relay::session::Received;
use nostr::Filter;
use nostr::JsonUtil;
use nostr::filter::MatchEventOptions;

/// Events dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejections {
    /// EVENT messages that were not event JSON.
    pub malformed: u64,
    /// Events larger than `max_event_size`.
    pub oversized: u64,
    /// Events outside the request's filter or time range.
    pub mismatched: u64,
    /// Events whose id is not the hash of their content.
    pub invalid_id: u64,
    /// Events whose signature does not verify.
    pub invalid_signature: u64,
    /// Valid events the `event` table cannot hold (NUL bytes, tag values over 2048 characters,
    /// out-of-range timestamps).
    pub unstorable: u64,
}

impl Rejections {
    /// Every rejection.
    pub fn total(&self) -> u64 {
        self.malformed
            + self.oversized
            + self.mismatched
            + self.invalid_id
            + self.invalid_signature
            + self.unstorable
    }

    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Rejections) {
        self.malformed += other.malformed;
        self.oversized += other.oversized;
        self.mismatched += other.mismatched;
        self.invalid_id += other.invalid_id;
        self.invalid_signature += other.invalid_signature;
        self.unstorable += other.unstorable;
    }

    /// `(reason, count)` pairs, for metrics and logs.
    pub fn by_reason(&self) -> [(&'static str, u64); 6] {
        [
            ("malformed", self.malformed),
            ("oversized", self.oversized),
            ("mismatched", self.mismatched),
            ("invalid_id", self.invalid_id),
            ("invalid_signature", self.invalid_signature),
            ("unstorable", self.unstorable),
        ]
    }
}

/// The filter options events are checked with: everything but NIP-50 `search`, whose matching
/// is the relay's own business.
fn match_options() -> MatchEventOptions {
    MatchEventOptions {
        id: true,
        author: true,
        kind: true,
        tags: true,
        since: true,
        until: true,
        nip50: false,
    }
}

/// Checks `received` against `filter` (with the request's since/until) and returns the
/// storable events with the rejection counts. `malformed` is carried over from the session.
pub fn verify_page(
    received: Vec<Received>,
    filter: &Filter,
    max_event_size: Option<u64>,
    malformed: u64,
) -> (Vec<Event>, Rejections) {
    let mut rejections = Rejections {
        malformed,
        ..Rejections::default()
    };
    let options = match_options();
    let mut events = Vec::with_capacity(received.len());
    for item in received {
        if let Some(max) = max_event_size
            // The frame is a little larger than the event; only then is the exact size needed.
            && item.frame_len as u64 > max
            && item.event.as_json().len() as u64 > max
        {
            rejections.oversized += 1;
            continue;
        }
        if !filter.match_event(&item.event, options) {
            rejections.mismatched += 1;
            continue;
        }
        match Event::from_nostr(&item.event) {
            Ok(event) => events.push(event),
            Err(EventError::InvalidId(_)) => rejections.invalid_id += 1,
            Err(EventError::InvalidSignature(_)) => rejections.invalid_signature += 1,
            Err(_) => rejections.unstorable += 1,
        }
    }
    (events, rejections)
}

/// CPU time the calling thread has used so far, from `/proc/thread-self/schedstat` (its first
/// field, nanoseconds on a CPU); `None` where the kernel does not provide it. The difference of
/// two readings on one thread is the CPU its work took, without the time it waited for a core.
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(nanos))
}

/// Runs `work` on this thread and returns its result with the CPU time it took (zero where
/// [`thread_cpu_time`] is not available).
pub fn with_cpu_time<T>(work: impl FnOnce() -> T) -> (T, std::time::Duration) {
    let before = thread_cpu_time();
    let value = work();
    let took = match (before, thread_cpu_time()) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => std::time::Duration::ZERO,
    };
    (value, took)
}

#[cfg(test)]
mod tests {
    use nostr::{EventBuilder, Keys, Kind, Timestamp};

    use super::*;

    #[test]
    fn cpu_time_counts_work_not_waiting() {
        use std::time::{Duration, Instant};
        let ((), slept) = with_cpu_time(|| std::thread::sleep(Duration::from_millis(200)));
        assert!(slept < Duration::from_millis(50), "sleeping used {slept:?}");
        // Work until this thread has run 100 ms on a CPU, however long a loaded machine makes
        // that take in wall time (bounded): the measurement counts that CPU time, and never
        // more than the wall time it spanned.
        let started = Instant::now();
        let ((), busy) = with_cpu_time(|| {
            let Some(from) = thread_cpu_time() else {
                return;
            };
            let mut x = 0_u64;
            while thread_cpu_time().is_some_and(|now| now - from < Duration::from_millis(100))
                && started.elapsed() < Duration::from_secs(30)
            {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            }
        });
        let wall = started.elapsed();
        assert!(busy >= Duration::from_millis(100), "busy for {busy:?}");
        assert!(
            busy <= wall + Duration::from_millis(5),
            "{busy:?} of CPU in {wall:?}"
        );
    }

    fn received(kind: Kind, created_at: u64) -> Received {
        let event = EventBuilder::new(kind, "hello")
            .custom_created_at(Timestamp::from(created_at))
            .sign_with_keys(&Keys::generate())
            .unwrap();
        let frame_len = event.as_json().len() + 20;
        Received { event, frame_len }
    }

    #[test]
    fn events_outside_the_filter_or_the_window_are_counted_as_mismatched() {
        let filter = Filter::new()
            .kind(Kind::TextNote)
            .since(Timestamp::from(100))
            .until(Timestamp::from(200));
        let page = vec![
            received(Kind::TextNote, 150),
            received(Kind::Reaction, 150),
            received(Kind::TextNote, 201),
            received(Kind::TextNote, 99),
        ];
        let (events, rejections) = verify_page(page, &filter, None, 2);
        assert_eq!(events.len(), 1);
        assert_eq!(rejections.mismatched, 3);
        assert_eq!(rejections.malformed, 2);
        assert_eq!(rejections.total(), 5);
    }

    #[test]
    fn the_size_limit_applies_to_the_event_json() {
        let item = received(Kind::TextNote, 150);
        let size = item.event.as_json().len() as u64;
        let (kept, _) = verify_page(vec![item.clone()], &Filter::new(), Some(size), 0);
        assert_eq!(kept.len(), 1, "an event of exactly the limit is kept");
        let (kept, rejections) = verify_page(vec![item], &Filter::new(), Some(size - 1), 0);
        assert!(kept.is_empty());
        assert_eq!(rejections.oversized, 1);
    }
}
