//! Admission: fixed-window rate limits per requester and in total, a bounded memory of
//! requesters, and at most one refusal feedback per requester and window (a flood of requests
//! must not become a flood of answers).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use nostr::PublicKey;

/// Why a job was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The requester's own limit.
    Requester,
    /// The DVM's total limit.
    Total,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
    refusal_sent: bool,
}

/// The admission state.
#[derive(Debug)]
pub struct Limiter {
    per_requester: u32,
    total: u32,
    window: Duration,
    capacity: usize,
    requesters: HashMap<PublicKey, Window>,
    all: Window,
}

impl Limiter {
    /// `per_requester` and `total` jobs per `window`, remembering at most `capacity` requesters.
    pub fn new(per_requester: u32, total: u32, window: Duration, capacity: usize) -> Self {
        Self {
            per_requester,
            total,
            window,
            capacity: capacity.max(1),
            requesters: HashMap::new(),
            all: Window {
                started: Instant::now(),
                count: 0,
                refusal_sent: false,
            },
        }
    }

    /// Admits one job of `requester` at `now`, or says which limit refuses it.
    pub fn admit(&mut self, requester: PublicKey, now: Instant) -> Result<(), Refusal> {
        if now.duration_since(self.all.started) >= self.window {
            self.all = Window {
                started: now,
                count: 0,
                refusal_sent: false,
            };
        }
        if !self.requesters.contains_key(&requester) && self.requesters.len() >= self.capacity {
            let window = self.window;
            self.requesters
                .retain(|_, w| now.duration_since(w.started) < window);
            if self.requesters.len() >= self.capacity {
                // Still full of active requesters: forget half (their limits restart; the total
                // limit still holds).
                let keep = self.capacity / 2;
                let mut kept = 0;
                self.requesters.retain(|_, _| {
                    kept += 1;
                    kept <= keep
                });
            }
        }
        let entry = self.requesters.entry(requester).or_insert(Window {
            started: now,
            count: 0,
            refusal_sent: false,
        });
        if now.duration_since(entry.started) >= self.window {
            *entry = Window {
                started: now,
                count: 0,
                refusal_sent: false,
            };
        }
        if entry.count >= self.per_requester {
            return Err(Refusal::Requester);
        }
        if self.all.count >= self.total {
            return Err(Refusal::Total);
        }
        entry.count += 1;
        self.all.count += 1;
        Ok(())
    }

    /// Whether a refusal feedback may be sent to `requester` now (once per window).
    pub fn may_notify(&mut self, requester: PublicKey) -> bool {
        match self.requesters.get_mut(&requester) {
            Some(window) if !window.refusal_sent => {
                window.refusal_sent = true;
                true
            }
            _ => false,
        }
    }

    /// Requesters remembered.
    pub fn tracked(&self) -> usize {
        self.requesters.len()
    }
}

/// A bounded set of ids: the oldest are forgotten past `capacity`.
#[derive(Debug)]
pub struct BoundedSet<T: std::hash::Hash + Eq + Copy> {
    capacity: usize,
    set: HashSet<T>,
    order: VecDeque<T>,
}

impl<T: std::hash::Hash + Eq + Copy> BoundedSet<T> {
    /// An empty set holding at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Adds `id`; false when it was already there.
    pub fn insert(&mut self, id: T) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// Whether `id` is there.
    pub fn contains(&self, id: &T) -> bool {
        self.set.contains(id)
    }

    /// Removes `id`.
    pub fn remove(&mut self, id: &T) {
        if self.set.remove(id) {
            self.order.retain(|x| x != id);
        }
    }

    /// How many ids are held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use nostr::Keys;

    use super::*;

    #[test]
    fn per_requester_and_total_limits_hold_per_window() {
        let mut limiter = Limiter::new(2, 3, Duration::from_secs(60), 100);
        let a = Keys::generate().public_key();
        let b = Keys::generate().public_key();
        let t0 = Instant::now();
        assert_eq!(limiter.admit(a, t0), Ok(()));
        assert_eq!(limiter.admit(a, t0), Ok(()));
        assert_eq!(limiter.admit(a, t0), Err(Refusal::Requester));
        assert_eq!(limiter.admit(b, t0), Ok(()));
        assert_eq!(limiter.admit(b, t0), Err(Refusal::Total));
        // One refusal feedback per requester and window.
        assert!(limiter.may_notify(a));
        assert!(!limiter.may_notify(a));
        let later = t0 + Duration::from_secs(61);
        assert_eq!(limiter.admit(a, later), Ok(()));
        assert!(limiter.may_notify(a), "a new window may notify again");
    }

    #[test]
    fn requesters_are_bounded() {
        let mut limiter = Limiter::new(1, u32::MAX, Duration::from_secs(60), 100);
        let now = Instant::now();
        for _ in 0..1000 {
            let _ = limiter.admit(Keys::generate().public_key(), now);
        }
        assert!(limiter.tracked() <= 100, "{}", limiter.tracked());
    }

    #[test]
    fn bounded_sets_forget_the_oldest() {
        let mut set = BoundedSet::new(3);
        for i in 0..5 {
            assert!(set.insert(i));
        }
        assert!(!set.insert(4));
        assert_eq!(set.len(), 3);
        assert!(!set.contains(&0) && !set.contains(&1) && set.contains(&2));
        set.remove(&3);
        assert!(!set.contains(&3));
    }
}
