//! Wall-clock time as Unix seconds, the unit of every timestamp BigBrotr stores.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in whole Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The current time as fractional Unix seconds (metrics, durations).
pub fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
