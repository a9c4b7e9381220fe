//! The RTT check (`nip66_rtt`): milliseconds to open a WebSocket to the relay, to read a stored
//! event, and to write one, with a success flag and a reason per phase.
//!
//! **The write probe.** The original publishes an ephemeral kind 22456 event and then asks for it
//! back; relays that follow NIP-01 never store ephemeral events, so the probe fails on exactly the
//! relays that behave. Here the probe is a storable event that cleans up after itself:
//!
//! - kind 30078 (NIP-78, application-specific data: not shown in feeds), addressable with
//!   `d = "bigbrotr-rtt-probe:<relay url>"`, so a relay keeps at most one probe per monitor key
//!   and relay even if it ignores expiration;
//! - a NIP-40 `expiration` tag [`RttOptions::probe_ttl`] seconds ahead, so compliant relays drop
//!   it soon after;
//! - NIP-13 proof of work when the relay's NIP-11 document asks for it (up to
//!   [`RttOptions::max_pow`] bits, mined on the blocking pool; a higher demand fails the phase
//!   with a reason instead of stalling the cycle).
//!
//! `rtt_write` is the time from sending the EVENT to the relay's `OK`. The phase succeeds when the
//! relay accepted the event *and* returns it to a REQ by id; an acceptance the relay cannot
//! back up is recorded as `unverified: accepted but not retrievable`, a refusal with the relay's
//! `OK` message (`auth-required:`, `restricted:`, `pow:`, ...).

use std::time::{Duration, Instant};

use bigbrotr_models::relay::Relay;
use bigbrotr_utils::relay::session::SessionError;
use bigbrotr_utils::relay::{Connector, Session};
use nostr::{EventBuilder, Filter, Keys, Kind, Tag, Timestamp};
use serde_json::{Map, Value};

use crate::CheckOutcome;

/// Kind of the write probe (NIP-78 application-specific data).
pub const PROBE_KIND: u16 = 30078;

/// Content of the write probe (the original's).
pub const PROBE_CONTENT: &str = "nip66-test";

/// Probes mined at the same time at most: proof of work is CPU a relay asks for, so relays
/// that all demand it cannot take more than one core of the monitor.
static MINING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// How the RTT check runs.
#[derive(Debug, Clone)]
pub struct RttOptions {
    /// Budget of each phase (the network's timeout).
    pub timeout: Duration,
    /// Seconds until the probe expires (NIP-40).
    pub probe_ttl: u64,
    /// Most proof-of-work bits the probe mines.
    pub max_pow: u8,
}

impl Default for RttOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            probe_ttl: 3600,
            max_pow: 20,
        }
    }
}

/// The RTT check's result.
#[derive(Debug, Clone, Default)]
pub struct Rtt {
    /// `data` = `rtt_open`/`rtt_read`/`rtt_write`, `logs` = the per-phase flags and reasons.
    pub outcome: CheckOutcome,
    /// Whether the relay asked for NIP-42 AUTH during the write.
    pub auth_requested: bool,
}

#[derive(Debug, Default)]
struct Phases {
    data: Map<String, Value>,
    logs: Map<String, Value>,
}

impl Phases {
    fn ok(&mut self, phase: &str, elapsed: Duration) {
        let ms = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
        self.data.insert(format!("rtt_{phase}"), Value::from(ms));
        self.logs
            .insert(format!("{phase}_success"), Value::Bool(true));
    }

    fn fail(&mut self, phase: &str, reason: impl Into<String>) {
        self.logs
            .insert(format!("{phase}_success"), Value::Bool(false));
        self.logs
            .insert(format!("{phase}_reason"), Value::String(reason.into()));
    }

    fn finish(self, auth_requested: bool) -> Rtt {
        Rtt {
            outcome: CheckOutcome {
                data: self.data,
                logs: self.logs,
            },
            auth_requested,
        }
    }
}

/// The `d` tag of the probe for `relay_url`.
pub fn probe_identifier(relay_url: &str) -> String {
    format!("bigbrotr-rtt-probe:{relay_url}")
}

/// Builds and signs the write probe (mining `pow` bits on the blocking pool).
pub async fn probe_event(
    keys: &Keys,
    relay_url: &str,
    ttl: u64,
    pow: u8,
) -> Result<nostr::Event, String> {
    let keys = keys.clone();
    let identifier = probe_identifier(relay_url);
    let expiration = Timestamp::now() + ttl;
    let _permit = if pow > 0 {
        Some(
            MINING
                .acquire()
                .await
                .map_err(|e| format!("probe mining unavailable: {e}"))?,
        )
    } else {
        None
    };
    tokio::task::spawn_blocking(move || {
        let mut builder = EventBuilder::new(Kind::from(PROBE_KIND), PROBE_CONTENT)
            .tags([Tag::identifier(identifier), Tag::expiration(expiration)]);
        if pow > 0 {
            builder = builder.pow(pow);
        }
        builder.sign_with_keys(&keys).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("probe signing failed: {e}"))?
}

/// Runs the three phases against `relay`. `min_pow` is the relay's NIP-11
/// `limitation.min_pow_difficulty` (0 when unknown). The connector should carry `keys` so AUTH
/// challenges are answered.
pub async fn check(
    connector: &Connector,
    relay: &Relay,
    keys: &Keys,
    min_pow: u64,
    options: &RttOptions,
) -> Rtt {
    let mut phases = Phases::default();
    let started = Instant::now();
    let mut session = match connector.open_session_within(relay, options.timeout).await {
        Ok(session) => session,
        Err(error) => {
            let reason = error.to_string();
            for phase in ["open", "read", "write"] {
                phases.fail(phase, reason.clone());
            }
            return phases.finish(false);
        }
    };
    phases.ok("open", started.elapsed());
    read_phase(&mut session, &mut phases, options).await;
    let auth_requested =
        write_phase(&mut session, &mut phases, relay, keys, min_pow, options).await;
    session.close().await;
    phases.finish(auth_requested)
}

/// Time to the first stored event of `{"limit": 1}` (the original's measure), within the
/// phase's timeout in total.
async fn read_phase(session: &mut Session, phases: &mut Phases, options: &RttOptions) {
    let started = Instant::now();
    match session
        .first_event(&Filter::new().limit(1), options.timeout)
        .await
    {
        Ok(Some(_)) => phases.ok("read", started.elapsed()),
        Ok(None) => phases.fail("read", "no events returned"),
        Err(error) => phases.fail("read", session_reason(&error)),
    }
}

/// Returns whether the relay asked for AUTH.
async fn write_phase(
    session: &mut Session,
    phases: &mut Phases,
    relay: &Relay,
    keys: &Keys,
    min_pow: u64,
    options: &RttOptions,
) -> bool {
    if min_pow > u64::from(options.max_pow) {
        phases.fail(
            "write",
            format!(
                "pow: the relay asks for {min_pow} bits, the probe mines at most {}",
                options.max_pow
            ),
        );
        return false;
    }
    let pow = u8::try_from(min_pow).unwrap_or(options.max_pow);
    let event = match probe_event(keys, relay.url(), options.probe_ttl, pow).await {
        Ok(event) => event,
        Err(reason) => {
            phases.fail("write", reason);
            return false;
        }
    };
    let started = Instant::now();
    let published = match session.publish(&event, options.timeout).await {
        Ok(published) => published,
        Err(error) => {
            // A timeout or a broken connection says nothing about AUTH; an AUTH failure means
            // the relay asked for it.
            phases.fail("write", session_reason(&error));
            return error.reason() == "auth";
        }
    };
    let elapsed = started.elapsed();
    if !published.accepted {
        let reason = if published.message.is_empty() {
            "rejected without a message".to_owned()
        } else {
            published.message
        };
        phases.fail("write", reason);
        return published.auth_requested;
    }
    let filter = Filter::new().id(event.id).limit(1);
    match session.first_event(&filter, options.timeout).await {
        Ok(Some(received)) if received.event.id == event.id => phases.ok("write", elapsed),
        Ok(_) => phases.fail("write", "unverified: accepted but not retrievable"),
        Err(error) => phases.fail(
            "write",
            format!("unverified: read-back failed: {}", session_reason(&error)),
        ),
    }
    published.auth_requested
}

/// The stored reason of a failed phase: a function of what the relay did, never of when (no
/// measured durations), and true (a timeout only when the relay sent nothing that answers).
fn session_reason(error: &SessionError) -> String {
    match error {
        SessionError::Timeout(_) => "no response from relay".to_owned(),
        SessionError::Closed(message) => message.clone(),
        other => other.to_string(),
    }
}
