//! Every metric name the daemons export: the one place that defines them.
//!
//! Metric names are a contract with the deployments' Prometheus rules and Grafana dashboards
//! (`deployments/bigbrotr/monitoring/`) and with operators' own queries. Services use these
//! constants, never string literals; `docs/metrics.md` lists them, and the test suite checks that
//! every name the rules and dashboards query is in [`CATALOGUE`] and is exported by a running
//! daemon.
//!
//! The families and their labels are the original's (`service_info{service}`,
//! `cycle_duration_seconds{service}`, `service_gauge{service,name}`,
//! `service_counter_total{service,name}`), plus `http_request_duration_seconds` for the daemons
//! that serve HTTP. A `name` never carries an unbounded value: per-relay detail goes to the logs.

/// `service_info{service}`: 1, with the service's name.
pub const FAMILY_INFO: &str = "service_info";
/// `cycle_duration_seconds{service}`: a histogram of successful cycles' durations.
pub const FAMILY_CYCLE_DURATION: &str = "cycle_duration_seconds";
/// `service_gauge{service,name}`: point-in-time values.
pub const FAMILY_GAUGE: &str = "service_gauge";
/// `service_counter_total{service,name}`: cumulative totals.
pub const FAMILY_COUNTER: &str = "service_counter_total";
/// `http_request_duration_seconds{service,route,status}`: a histogram of HTTP requests served.
pub const FAMILY_HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";

/// Every service (`bigbrotr_core::runner`).
pub mod common {
    /// Counter: cycles that completed.
    pub const CYCLES_SUCCESS: &str = "cycles_success";
    /// Counter: cycles that failed (each also counts one `errors_<kind>`).
    pub const CYCLES_FAILED: &str = "cycles_failed";
    /// Counter prefix: failed cycles by error kind, `errors_<kind>` (the original's names, e.g.
    /// `errors_OSError`; a handful of kinds).
    pub const ERRORS_PREFIX: &str = "errors_";
    /// Gauge: Unix time of the last successful cycle.
    pub const LAST_CYCLE_TIMESTAMP: &str = "last_cycle_timestamp";
    /// Gauge: failed cycles in a row (0 after a success).
    pub const CONSECUTIVE_FAILURES: &str = "consecutive_failures";
}

/// `bigbrotr-seeder` (one-shot: its metrics are never served).
pub mod seeder {
    /// Gauge: relay URLs inserted by the last run.
    pub const RELAYS_SEEDED: &str = "relays_seeded";
}

/// `bigbrotr-finder`.
pub mod finder {
    /// Counter: new candidates stored (all phases).
    pub const CANDIDATES_FOUND: &str = "candidates_found";
    /// Gauge: API sources that failed in the last cycle.
    pub const API_SOURCES_FAILED: &str = "api_sources_failed";
    /// Gauge: live relays that failed in the last cycle.
    pub const LIVE_RELAYS_FAILED: &str = "live_relays_failed";
}

/// `bigbrotr-validator`.
pub mod validator {
    /// Gauge: candidates due in the last cycle.
    pub const TOTAL: &str = "total";
    /// Counter: candidates promoted to relays.
    pub const VALIDATED: &str = "validated";
    /// Counter: failed probes.
    pub const INVALIDATED: &str = "invalidated";
}

/// `bigbrotr-monitor`.
pub mod monitor {
    /// Gauge: relays due in the last cycle.
    pub const RELAYS_DUE: &str = "relays_due";
    /// Gauge: relays checked in the last cycle.
    pub const RELAYS_CHECKED: &str = "relays_checked";
    /// Gauge: relays checked whose checks succeeded.
    pub const RELAYS_SUCCEEDED: &str = "relays_succeeded";
    /// Gauge: relays checked whose checks failed.
    pub const RELAYS_FAILED: &str = "relays_failed";
    /// Counter with labels `type` (the 7 check types) and `status` (`success`, `failure`).
    pub const CHECKS: &str = "checks";
    /// Counter with label `kind` (`profile`, `relay_list`, `announcement`, `discovery`).
    pub const EVENTS_PUBLISHED: &str = "events_published";
}

/// `bigbrotr-synchronizer`.
pub mod synchronizer {
    /// Gauge: relays planned in the last cycle.
    pub const RELAYS_PLANNED: &str = "relays_planned";
    /// Gauge: relays completed in the last cycle.
    pub const RELAYS_COMPLETED: &str = "relays_completed";
    /// Gauge: relays that failed in the last cycle.
    pub const RELAYS_FAILED: &str = "relays_failed";
    /// Counter: valid events written (sightings).
    pub const EVENTS_WRITTEN: &str = "events_written";
    /// Counter: events new to the archive.
    pub const EVENTS_INSERTED: &str = "events_inserted";
    /// Counter: REQ and NIP-77 requests sent.
    pub const REQUESTS: &str = "requests";
    /// Counter: seconds whose events a relay could not list in one request.
    pub const SATURATED_SECONDS: &str = "saturated_seconds";
    /// Counter: saturated seconds left incomplete (no NIP-77).
    pub const UNRESOLVED_SECONDS: &str = "unresolved_seconds";
    /// Counter prefix: rejected events by reason, `events_rejected_<reason>` for each of
    /// [`REJECTION_REASONS`] (no relay label: which relay sent them is in the
    /// `events_rejected` log line).
    pub const EVENTS_REJECTED_PREFIX: &str = "events_rejected_";
    /// The reasons an event is rejected.
    pub const REJECTION_REASONS: [&str; 6] = [
        "malformed",
        "oversized",
        "mismatched",
        "invalid_id",
        "invalid_signature",
        "unstorable",
    ];
    /// Counter prefix: relays that failed or stopped early, `relay_failures_<reason>` for each
    /// of [`RELAY_FAILURE_REASONS`] (the relay and the error are in the `relay_sync_failed`
    /// log line).
    pub const RELAY_FAILURES_PREFIX: &str = "relay_failures_";
    /// Why a relay's walk ends early: its network, the connection, a wait without a valid
    /// message, the connection lost, the subscription closed, NIP-42 AUTH, too many events,
    /// a response too large in bytes, too many invalid frames, a NIP-77 error, a request longer
    /// than `idle`, shutdown or `max_duration`, the database writer gone, the relay's task
    /// panicked.
    pub const RELAY_FAILURE_REASONS: [&str; 14] = [
        "network",
        "connect",
        "timeout",
        "connection",
        "closed",
        "auth",
        "flood",
        "too_large",
        "invalid_frames",
        "negentropy",
        "idle",
        "stopped",
        "writer",
        "panic",
    ];
}

/// `bigbrotr-refresher`.
pub mod refresher {
    /// Gauge: names in `refresh.views`.
    pub const VIEWS_TOTAL: &str = "views_total";
    /// Gauge: names refreshed in the last cycle.
    pub const VIEWS_REFRESHED: &str = "views_refreshed";
    /// Gauge: names whose refresh failed in the last cycle.
    pub const VIEWS_FAILED: &str = "views_failed";
    /// Gauge prefix: seconds the last refresh of a name took, `duration_<name>` (one per
    /// configured name).
    pub const DURATION_PREFIX: &str = "duration_";
}

/// `bigbrotr-api` and `bigbrotr-dvm` (the original's names for both).
pub mod api {
    /// Counter: requests served.
    pub const REQUESTS_TOTAL: &str = "requests_total";
    /// Counter: requests that failed.
    pub const REQUESTS_FAILED: &str = "requests_failed";
    /// Gauge: tables and views served.
    pub const TABLES_EXPOSED: &str = "tables_exposed";
    /// Gauge: seconds the database is behind its primary when it is a read-only standby (0
    /// when everything received is replayed, NaN while not known yet), -1 on a primary.
    /// Sampled every 10 s (and by the API's `/health`).
    pub const DATABASE_REPLAY_LAG_SECONDS: &str = "database_replay_lag_seconds";
}

/// `bigbrotr-dvm`, beyond the names it shares with the API.
pub mod dvm {
    /// Counter: jobs answered with a result.
    pub const JOBS_ANSWERED: &str = "jobs_answered";
    /// Counter: jobs refused by a rate limit or a full queue (a bounded feedback was sent).
    pub const JOBS_REFUSED: &str = "jobs_refused";
    /// Counter: requests ignored (another provider's, unreadable, already answered).
    pub const JOBS_IGNORED: &str = "jobs_ignored";
    /// Gauge: relays connected.
    pub const RELAYS_CONNECTED: &str = "relays_connected";
}

/// Whether a `name` is a gauge or a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `service_gauge{service,name}`.
    Gauge,
    /// `service_counter_total{service,name}`.
    Counter,
}

/// One `name` label value (or family of values, for prefixes) a service exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The services that export it (`"*"`: every continuous service).
    pub services: &'static [&'static str],
    /// Gauge or counter.
    pub kind: Kind,
    /// The name, or a prefix when `prefix` is set.
    pub name: &'static str,
    /// `name` is a prefix completed by a bounded suffix.
    pub prefix: bool,
    /// Labels beyond `service` and `name`.
    pub labels: &'static [&'static str],
}

const fn entry(services: &'static [&'static str], kind: Kind, name: &'static str) -> Entry {
    Entry {
        services,
        kind,
        name,
        prefix: false,
        labels: &[],
    }
}

const ALL: &[&str] = &["*"];
const API_DVM: &[&str] = &["api", "dvm"];

/// Every `service_gauge` / `service_counter_total` name, by service (what `docs/metrics.md`
/// lists).
pub const CATALOGUE: &[Entry] = &[
    entry(ALL, Kind::Counter, common::CYCLES_SUCCESS),
    entry(ALL, Kind::Counter, common::CYCLES_FAILED),
    Entry {
        prefix: true,
        ..entry(ALL, Kind::Counter, common::ERRORS_PREFIX)
    },
    entry(ALL, Kind::Gauge, common::LAST_CYCLE_TIMESTAMP),
    entry(ALL, Kind::Gauge, common::CONSECUTIVE_FAILURES),
    entry(&["seeder"], Kind::Gauge, seeder::RELAYS_SEEDED),
    entry(&["finder"], Kind::Counter, finder::CANDIDATES_FOUND),
    entry(&["finder"], Kind::Gauge, finder::API_SOURCES_FAILED),
    entry(&["finder"], Kind::Gauge, finder::LIVE_RELAYS_FAILED),
    entry(&["validator"], Kind::Gauge, validator::TOTAL),
    entry(&["validator"], Kind::Counter, validator::VALIDATED),
    entry(&["validator"], Kind::Counter, validator::INVALIDATED),
    entry(&["monitor"], Kind::Gauge, monitor::RELAYS_DUE),
    entry(&["monitor"], Kind::Gauge, monitor::RELAYS_CHECKED),
    entry(&["monitor"], Kind::Gauge, monitor::RELAYS_SUCCEEDED),
    entry(&["monitor"], Kind::Gauge, monitor::RELAYS_FAILED),
    Entry {
        labels: &["type", "status"],
        ..entry(&["monitor"], Kind::Counter, monitor::CHECKS)
    },
    Entry {
        labels: &["kind"],
        ..entry(&["monitor"], Kind::Counter, monitor::EVENTS_PUBLISHED)
    },
    entry(&["synchronizer"], Kind::Gauge, synchronizer::RELAYS_PLANNED),
    entry(
        &["synchronizer"],
        Kind::Gauge,
        synchronizer::RELAYS_COMPLETED,
    ),
    entry(&["synchronizer"], Kind::Gauge, synchronizer::RELAYS_FAILED),
    entry(
        &["synchronizer"],
        Kind::Counter,
        synchronizer::EVENTS_WRITTEN,
    ),
    entry(
        &["synchronizer"],
        Kind::Counter,
        synchronizer::EVENTS_INSERTED,
    ),
    entry(&["synchronizer"], Kind::Counter, synchronizer::REQUESTS),
    entry(
        &["synchronizer"],
        Kind::Counter,
        synchronizer::SATURATED_SECONDS,
    ),
    entry(
        &["synchronizer"],
        Kind::Counter,
        synchronizer::UNRESOLVED_SECONDS,
    ),
    Entry {
        prefix: true,
        ..entry(
            &["synchronizer"],
            Kind::Counter,
            synchronizer::EVENTS_REJECTED_PREFIX,
        )
    },
    Entry {
        prefix: true,
        ..entry(
            &["synchronizer"],
            Kind::Counter,
            synchronizer::RELAY_FAILURES_PREFIX,
        )
    },
    entry(&["refresher"], Kind::Gauge, refresher::VIEWS_TOTAL),
    entry(&["refresher"], Kind::Gauge, refresher::VIEWS_REFRESHED),
    entry(&["refresher"], Kind::Gauge, refresher::VIEWS_FAILED),
    Entry {
        prefix: true,
        ..entry(&["refresher"], Kind::Gauge, refresher::DURATION_PREFIX)
    },
    entry(API_DVM, Kind::Counter, api::REQUESTS_TOTAL),
    entry(API_DVM, Kind::Counter, api::REQUESTS_FAILED),
    entry(API_DVM, Kind::Gauge, api::TABLES_EXPOSED),
    entry(API_DVM, Kind::Gauge, api::DATABASE_REPLAY_LAG_SECONDS),
    entry(&["dvm"], Kind::Counter, dvm::JOBS_ANSWERED),
    entry(&["dvm"], Kind::Counter, dvm::JOBS_REFUSED),
    entry(&["dvm"], Kind::Counter, dvm::JOBS_IGNORED),
    entry(&["dvm"], Kind::Gauge, dvm::RELAYS_CONNECTED),
];

/// The catalogue entry for `name` exported by `service`, if any (prefixes match their
/// completions).
pub fn lookup(service: &str, name: &str) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|e| {
        (e.services.contains(&"*") || e.services.contains(&service))
            && if e.prefix {
                name.starts_with(e.name) && name.len() > e.name.len()
            } else {
                name == e.name
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_matches_names_prefixes_and_services() {
        assert_eq!(
            lookup("finder", "cycles_success").map(|e| e.kind),
            Some(Kind::Counter)
        );
        assert!(lookup("refresher", "duration_event_stats").is_some());
        assert!(lookup("refresher", "duration_").is_none());
        assert!(lookup("monitor", "views_total").is_none());
        assert!(lookup("dvm", "requests_failed").is_some());
        assert!(lookup("synchronizer", "events_rejected_oversized").is_some());
    }

    #[test]
    fn names_are_unique_per_service() {
        for (i, a) in CATALOGUE.iter().enumerate() {
            for b in &CATALOGUE[i + 1..] {
                let shared = a
                    .services
                    .iter()
                    .any(|s| *s == "*" || b.services.contains(s) || b.services.contains(&"*"));
                assert!(!(shared && a.name == b.name), "{} twice", a.name);
            }
        }
    }
}
