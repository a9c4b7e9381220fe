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
//!   [`RttOptions::max_pow`] bits, mined on the blocking pool one probe at a time, for at most
//!   the phase's timeout; a higher demand, or work not found in time, fails the phase with a
//!   `pow:` reason instead of stalling the cycle). Mining stops as soon as the check's future is
//!   dropped (the monitor's bound on the whole check fired): its CPU work never outlives the
//!   check.
//!
//! `rtt_write` is the time from sending the EVENT to the relay's `OK`. The phase succeeds when the
//! relay accepted the event *and* returns it to a REQ by id; an acceptance the relay cannot
//! back up is recorded as `unverified: accepted but not retrievable`, a refusal with the relay's
//! `OK` message (`auth-required:`, `restricted:`, `pow:`, ...).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bigbrotr_models::relay::Relay;
use bigbrotr_utils::relay::session::SessionError;
use bigbrotr_utils::relay::{Connector, Session};
use nostr::nips::nip13::get_leading_zero_bits;
use nostr::{EventBuilder, Filter, Keys, Kind, Tag, Tags, Timestamp};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::CheckOutcome;

/// Kind of the write probe (NIP-78 application-specific data).
pub const PROBE_KIND: u16 = 30078;

/// Content of the write probe (the original's).
pub const PROBE_CONTENT: &str = "nip66-test";

/// Probes mined at the same time at most: proof of work is CPU a relay asks for, so relays
/// that all demand it cannot take more than one core of the monitor.
static MINING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Nonces tried between two looks at the stop flag and the deadline (well under a millisecond).
const MINING_CHUNK: u64 = 1024;

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

/// Builds and signs the write probe, mining `pow` bits of NIP-13 proof of work on the blocking
/// pool (one probe at a time, waiting for the turn included) for at most `budget`: work not
/// found in time is `pow: <pow> bits not mined within <budget>`. Dropping the future stops the
/// mining thread within [`MINING_CHUNK`] nonces.
pub async fn probe_event(
    keys: &Keys,
    relay_url: &str,
    ttl: u64,
    pow: u8,
    budget: Duration,
) -> Result<nostr::Event, String> {
    let identifier = probe_identifier(relay_url);
    let expiration = Timestamp::now() + ttl;
    let tags = vec![Tag::identifier(identifier), Tag::expiration(expiration)];
    if pow == 0 {
        return EventBuilder::new(Kind::from(PROBE_KIND), PROBE_CONTENT)
            .tags(tags)
            .sign_with_keys(keys)
            .map_err(|e| e.to_string());
    }
    let out_of_time = || format!("pow: {pow} bits not mined within {budget:?}");
    let deadline = Instant::now() + budget;
    let permit = tokio::time::timeout(budget, MINING.acquire())
        .await
        .map_err(|_| out_of_time())?
        .map_err(|e| format!("probe mining unavailable: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let keys = keys.clone();
    let mined = tokio::task::spawn_blocking(move || {
        // The turn is held until the thread stops, not until the future is dropped.
        let _permit = permit;
        mine(&keys, tags, pow, &stop, deadline)
    })
    .await
    .map_err(|e| format!("probe signing failed: {e}"))?;
    match mined {
        Ok(event) => Ok(event),
        Err(Mining::OutOfTime) => Err(out_of_time()),
        Err(Mining::Stopped) => Err("probe mining stopped".to_owned()),
        Err(Mining::Failed(reason)) => Err(format!("probe signing failed: {reason}")),
    }
}

/// Sets the stop flag of a mining thread when the future that waits for it is dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Why mining ended without a probe.
#[derive(Debug)]
enum Mining {
    /// The deadline passed.
    OutOfTime,
    /// The waiting future was dropped.
    Stopped,
    /// Signing failed, or the mined id was not the signed event's.
    Failed(String),
}

/// Mines a nonce tag (`["nonce", <n>, <difficulty>]`, NIP-13) after `tags` until the event id
/// has `difficulty` leading zero bits, `stop` is set or `deadline` passes, then signs.
///
/// The id is the SHA-256 of `[0,<pubkey>,<created_at>,<kind>,<tags>,<content>]` (NIP-01) and
/// only the nonce's digits change, so the hash state of everything before them is computed
/// once and cloned for each nonce; the signed event's id is checked against the mined one.
fn mine(
    keys: &Keys,
    tags: Vec<Tag>,
    difficulty: u8,
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<nostr::Event, Mining> {
    const PLACEHOLDER: &str = "BIGBROTR_NONCE";
    let kind = Kind::from(PROBE_KIND);
    let created_at = Timestamp::now();
    let difficulty_text = difficulty.to_string();
    let mut template = tags.clone();
    template.push(
        Tag::parse(["nonce", PLACEHOLDER, difficulty_text.as_str()])
            .map_err(|e| Mining::Failed(e.to_string()))?,
    );
    let serialized = serde_json::json!([
        0,
        keys.public_key(),
        created_at,
        kind,
        Tags::from_list(template),
        PROBE_CONTENT
    ])
    .to_string();
    // The nonce tag is the last tag and the content a constant: its placeholder is the last one
    // even if the relay URL in the `d` tag contains the same text.
    let at = serialized
        .rfind(PLACEHOLDER)
        .ok_or_else(|| Mining::Failed("nonce placeholder not serialized".to_owned()))?;
    let prefix = Sha256::new().chain_update(&serialized.as_bytes()[..at]);
    let suffix = &serialized.as_bytes()[at + PLACEHOLDER.len()..];
    let mut digits = String::with_capacity(20);
    let mut nonce: u64 = 0;
    loop {
        for _ in 0..MINING_CHUNK {
            digits.clear();
            let _ = write!(digits, "{nonce}");
            let id = prefix
                .clone()
                .chain_update(digits.as_bytes())
                .chain_update(suffix)
                .finalize();
            if get_leading_zero_bits(id) >= difficulty {
                let mut tags = tags;
                tags.push(Tag::pow(u128::from(nonce), difficulty));
                let event = EventBuilder::new(kind, PROBE_CONTENT)
                    .tags(tags)
                    .custom_created_at(created_at)
                    .sign_with_keys(keys)
                    .map_err(|e| Mining::Failed(e.to_string()))?;
                if event.id.as_bytes()[..] != id[..] {
                    return Err(Mining::Failed(
                        "mined id differs from the event's".to_owned(),
                    ));
                }
                return Ok(event);
            }
            nonce += 1;
        }
        if stop.load(Ordering::Relaxed) {
            return Err(Mining::Stopped);
        }
        if Instant::now() >= deadline {
            return Err(Mining::OutOfTime);
        }
    }
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
    let event = match probe_event(keys, relay.url(), options.probe_ttl, pow, options.timeout).await
    {
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

#[cfg(test)]
mod tests {
    use bigbrotr_testkit::relays::{TestCa, TestRelay, TlsFront};
    use bigbrotr_utils::network::NetworksConfig;

    use super::*;

    /// The name of the test runtime's threads (its blocking pool included), 15 bytes at most.
    const THREADS: &str = "rtt-pow-test";

    /// CPU time used so far by this process's live threads named [`THREADS`] (Linux `/proc`,
    /// whose clock ticks are 1/100 s), so other tests of the same process never count.
    fn cpu_of_test_threads() -> Duration {
        let mut ticks = 0_u64;
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let path = task.path();
            let named = std::fs::read_to_string(path.join("comm"))
                .is_ok_and(|comm| comm.trim_end() == THREADS);
            let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
                continue;
            };
            if !named {
                continue;
            }
            // After the command's closing parenthesis: utime and stime are fields 14 and 15.
            let fields: Vec<u64> = stat
                .rsplit_once(") ")
                .map(|(_, rest)| rest.split(' ').map(|f| f.parse().unwrap_or(0)).collect())
                .unwrap_or_default();
            ticks += fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
        }
        Duration::from_millis(ticks * 10)
    }

    /// Fails when the test threads keep using CPU (a mining thread that was not stopped takes a
    /// whole core).
    async fn assert_idle(what: &str) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = cpu_of_test_threads();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let used = cpu_of_test_threads().saturating_sub(before);
        assert!(
            used < Duration::from_millis(250),
            "{what}: {used:?} of CPU in the second after"
        );
    }

    #[tokio::test]
    async fn a_mined_probe_carries_the_work_and_verifies() {
        let keys = Keys::generate();
        // A URL holding the placeholder text cannot move where the nonce goes.
        for url in [
            "wss://relay.example.com",
            "wss://relay.example.com/BIGBROTR_NONCE",
        ] {
            let event = probe_event(&keys, url, 3600, 12, Duration::from_secs(60))
                .await
                .unwrap();
            event.verify().unwrap();
            assert!(
                get_leading_zero_bits(event.id.as_bytes()) >= 12,
                "{event:?}"
            );
            let tags: Vec<Vec<String>> = event.tags.iter().map(|t| t.clone().to_vec()).collect();
            assert_eq!(tags[0], ["d".to_owned(), probe_identifier(url)]);
            assert_eq!(tags[1][0], "expiration");
            assert_eq!(tags[2][0], "nonce");
            assert_eq!(tags[2][2], "12");
            assert_eq!(event.kind, Kind::from(PROBE_KIND));
            assert_eq!(event.content, PROBE_CONTENT);
        }
        let plain = probe_event(&keys, "wss://relay.example.com", 3600, 0, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(plain.tags.len(), 2, "no proof of work asked, none mined");
    }

    /// Issue 16: a relay whose document asks for 32 bits (within `max_pow`) cannot keep a core
    /// of the monitor: mining stops at the phase's timeout, and at once when the monitor's bound
    /// on the whole check drops it.
    #[test]
    fn mining_stops_at_the_phase_timeout_and_when_the_check_is_dropped() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(THREADS)
            .enable_all()
            .build()
            .unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(mining_is_bounded())
        }));
        // A miner that does not stop must fail the test, not hang it in the runtime's drop.
        runtime.shutdown_background();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    /// The test proper, on the runtime of [`THREADS`].
    async fn mining_is_bounded() {
        let relay = TestRelay::start().await;
        let ca = TestCa::new();
        let host = "pow.example.com";
        let front = TlsFront::start(ca.server_config(&[host]), relay.address()).await;
        let mut networks = NetworksConfig::default();
        networks.clearnet.timeout = 5.0;
        // The relay is on loopback.
        networks.clearnet.allow_private = true;
        let keys = Keys::generate();
        let connector = Connector::new(networks)
            .unwrap()
            .resolve(host, front.address())
            .with_root_certificate(ca.der())
            .unwrap()
            .with_keys(Some(keys.clone()));
        let target = Relay::new(&format!("wss://{host}"), 0).unwrap();
        let mut options = RttOptions {
            timeout: Duration::from_millis(500),
            probe_ttl: 3600,
            max_pow: 32,
        };

        let cpu = cpu_of_test_threads();
        let started = Instant::now();
        let rtt = tokio::time::timeout(
            Duration::from_secs(10),
            check(&connector, &target, &keys, 32, &options),
        )
        .await
        .expect("the check ends on its own");
        let elapsed = started.elapsed();
        let logs = &rtt.outcome.logs;
        assert_eq!(logs["open_success"], true, "{logs:?}");
        assert_eq!(
            logs["write_reason"], "pow: 32 bits not mined within 500ms",
            "{logs:?}"
        );
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        assert!(
            cpu_of_test_threads().saturating_sub(cpu) >= Duration::from_millis(100),
            "it did mine (the measure sees the mining thread)"
        );
        assert_idle("after the phase timeout").await;

        // The whole check dropped after 1 s, with mining allowed 60 s.
        options.timeout = Duration::from_secs(60);
        let dropped = tokio::time::timeout(
            Duration::from_secs(1),
            check(&connector, &target, &keys, 32, &options),
        )
        .await;
        assert!(dropped.is_err(), "still mining at the monitor's bound");
        assert_idle("after the check was dropped").await;
    }
}
