//! Checking one relay: NIP-11 first, then RTT (with the document's proof-of-work demand), then
//! SSL, DNS, Geo, Net and HTTP in parallel, each with its type's retry policy and a hard time
//! bound, so a hostile relay costs at most its timeouts.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use bigbrotr_models::metadata::{Metadata, MetadataType};
use bigbrotr_models::relay::{NetworkType, Relay};
use bigbrotr_models::relay_metadata::RelayMetadata;
use bigbrotr_nips::CheckOutcome;
use bigbrotr_nips::events::RelayChecks;
use bigbrotr_nips::nip11::{Nip11, Nip11Fetcher};
use bigbrotr_nips::nip66::dns::DnsResolver;
use bigbrotr_nips::nip66::geo::GeoDatabase;
use bigbrotr_nips::nip66::net::AsnDatabase;
use bigbrotr_nips::nip66::rtt::{self, Rtt, RttOptions};
use bigbrotr_nips::nip66::{http, ssl};
use bigbrotr_utils::relay::Connector;
use nostr::Keys;
use rand::Rng;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::{MetadataFlags, RetriesConfig, RetryConfig};

/// Everything a relay check needs, shared by the tasks of a cycle.
#[derive(Debug, Clone)]
pub struct Checker {
    /// Relay connections (keys for AUTH, proxies, TLS rules).
    pub connector: Connector,
    /// NIP-11 fetcher.
    pub nip11: Nip11Fetcher,
    /// The DNS resolver (also resolves hosts for Geo and Net).
    pub dns: DnsResolver,
    /// GeoLite2 City, when available.
    pub city: Option<Arc<GeoDatabase>>,
    /// GeoLite2 ASN, when available.
    pub asn: Option<Arc<AsnDatabase>>,
    /// Signer of the write probe.
    pub keys: Keys,
    /// Which checks run.
    pub compute: MetadataFlags,
    /// Retry policies.
    pub retries: RetriesConfig,
    /// Geohash characters.
    pub geohash_precision: usize,
    /// Most proof-of-work bits the write probe mines.
    pub max_probe_pow: u8,
    /// Stop signal (interrupts retry delays).
    pub shutdown: CancellationToken,
}

/// Every result of one relay.
#[derive(Debug, Clone, Default)]
pub struct RelayResult {
    /// When the checks started (shared by every stored type).
    pub generated_at: i64,
    /// NIP-11.
    pub nip11: Option<Nip11>,
    /// RTT.
    pub rtt: Option<Rtt>,
    /// SSL.
    pub ssl: Option<CheckOutcome>,
    /// DNS.
    pub dns: Option<CheckOutcome>,
    /// Geo.
    pub geo: Option<CheckOutcome>,
    /// Net.
    pub net: Option<CheckOutcome>,
    /// HTTP.
    pub http: Option<CheckOutcome>,
}

impl RelayResult {
    /// The outcome of `kind`, if the check ran.
    pub fn outcome(&self, kind: MetadataType) -> Option<&CheckOutcome> {
        match kind {
            MetadataType::Nip11Info => self.nip11.as_ref().map(|n| &n.outcome),
            MetadataType::Nip66Rtt => self.rtt.as_ref().map(|r| &r.outcome),
            MetadataType::Nip66Ssl => self.ssl.as_ref(),
            MetadataType::Nip66Geo => self.geo.as_ref(),
            MetadataType::Nip66Net => self.net.as_ref(),
            MetadataType::Nip66Dns => self.dns.as_ref(),
            MetadataType::Nip66Http => self.http.as_ref(),
        }
    }

    /// Whether the relay answered: one of the checks that talk to the relay itself (NIP-11,
    /// RTT open, SSL, HTTP) succeeded; without any of those, any check that succeeded. DNS, Geo
    /// and Net describe a name and an address, which a dead relay keeps. A relay that did not
    /// answer is recorded as failed (the original counted it as a success) and gets no 30166.
    pub fn succeeded(&self) -> bool {
        const CONTACT: [MetadataType; 4] = [
            MetadataType::Nip11Info,
            MetadataType::Nip66Rtt,
            MetadataType::Nip66Ssl,
            MetadataType::Nip66Http,
        ];
        let contacted: Vec<&CheckOutcome> = CONTACT
            .iter()
            .filter_map(|kind| self.outcome(*kind))
            .collect();
        if !contacted.is_empty() {
            return contacted.iter().any(|o| o.succeeded());
        }
        MetadataType::ALL
            .into_iter()
            .filter_map(|kind| self.outcome(kind))
            .any(CheckOutcome::succeeded)
    }

    /// The rows to store for the types in `store` (failed checks included: their reason is
    /// history too).
    pub fn records(&self, relay: &Relay, store: &MetadataFlags) -> Vec<RelayMetadata> {
        MetadataType::ALL
            .into_iter()
            .filter(|kind| store.get(*kind))
            .filter_map(|kind| {
                let outcome = self.outcome(kind)?;
                // A result PostgreSQL cannot store (NUL in a string the relay sent) is recorded
                // as a failure with the reason, so every check leaves a row.
                let metadata = outcome.to_metadata(kind).or_else(|error| {
                    tracing::warn!(relay = relay.url(), kind = %kind, error = %error, "metadata_unstorable");
                    CheckOutcome::failure(format!("unstorable result: {error}")).to_metadata(kind)
                });
                metadata.ok().map(|m| record(relay, m, self.generated_at))
            })
            .collect()
    }

    /// The results that go into the relay's 30166 (`include`); failed checks contribute no
    /// data.
    pub fn for_discovery<'a>(&'a self, include: &MetadataFlags) -> RelayChecks<'a> {
        let pick = |kind: MetadataType, outcome: Option<&'a CheckOutcome>| {
            outcome.filter(|_| include.get(kind))
        };
        RelayChecks {
            nip11: self.nip11.as_ref().filter(|_| include.nip11_info),
            rtt: self.rtt.as_ref().filter(|_| include.nip66_rtt),
            ssl: pick(MetadataType::Nip66Ssl, self.ssl.as_ref()),
            net: pick(MetadataType::Nip66Net, self.net.as_ref()),
            geo: pick(MetadataType::Nip66Geo, self.geo.as_ref()),
            dns: pick(MetadataType::Nip66Dns, self.dns.as_ref()),
            http: pick(MetadataType::Nip66Http, self.http.as_ref()),
        }
    }
}

fn record(relay: &Relay, metadata: Metadata, generated_at: i64) -> RelayMetadata {
    RelayMetadata {
        relay: relay.clone(),
        metadata,
        generated_at,
    }
}

/// Runs `attempt` up to `max_attempts + 1` times until `ok` holds; between attempts waits
/// `min(initial·2^n, max) + uniform(0, jitter)` seconds unless stopped. Returns the last result.
pub async fn with_retry<T, F, Fut>(
    policy: &RetryConfig,
    shutdown: &CancellationToken,
    ok: impl Fn(&T) -> bool,
    mut attempt: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let mut result = attempt().await;
    for n in 0..policy.max_attempts {
        if ok(&result) || shutdown.is_cancelled() {
            break;
        }
        let jitter = if policy.jitter > 0.0 {
            rand::rng().random_range(0.0..=policy.jitter)
        } else {
            0.0
        };
        let delay = policy.base_delay(n) + Duration::from_secs_f64(jitter);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => break,
        }
        result = attempt().await;
    }
    result
}

/// `outcome` unless it takes longer than `budget` (a failure naming the check).
async fn bounded(
    name: &str,
    budget: Duration,
    check: impl Future<Output = CheckOutcome>,
) -> CheckOutcome {
    match tokio::time::timeout(budget, check).await {
        Ok(outcome) => outcome,
        Err(_) => CheckOutcome::failure(format!("{name} check timed out after {budget:?}")),
    }
}

/// The host of a relay URL (brackets of an IPv6 literal removed).
pub fn relay_host(relay: &Relay) -> Option<String> {
    let url = url::Url::parse(relay.url()).ok()?;
    let host = url.host_str()?;
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
}

impl Checker {
    /// Checks `relay` with the network timeout `timeout`, at `generated_at`.
    pub async fn check(&self, relay: &Relay, timeout: Duration, generated_at: i64) -> RelayResult {
        let mut result = RelayResult {
            generated_at,
            ..RelayResult::default()
        };
        let shutdown = &self.shutdown;
        // A fetch reads at most nip11_info_max_size within `timeout`; the bound is a backstop.
        let slack = Duration::from_secs(1);
        if self.compute.nip11_info {
            let nip11 = with_retry(
                &self.retries.nip11_info,
                shutdown,
                |n: &Nip11| n.outcome.succeeded(),
                || async {
                    match tokio::time::timeout(timeout + slack, self.nip11.fetch(relay, timeout))
                        .await
                    {
                        Ok(nip11) => nip11,
                        Err(_) => Nip11 {
                            outcome: CheckOutcome::failure(format!(
                                "nip11 check timed out after {timeout:?}"
                            )),
                            raw: None,
                        },
                    }
                },
            )
            .await;
            result.nip11 = Some(nip11);
        }
        if self.compute.nip66_rtt {
            let min_pow = result
                .nip11
                .as_ref()
                .filter(|n| n.outcome.succeeded())
                .and_then(|n| n.limitation("min_pow_difficulty"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let options = RttOptions {
                timeout,
                max_pow: self.max_probe_pow,
                ..RttOptions::default()
            };
            // Three phases and a read-back, each within `timeout`, plus mining.
            let budget = timeout * 5 + slack;
            let rtt = with_retry(
                &self.retries.nip66_rtt,
                shutdown,
                |r: &Rtt| r.outcome.succeeded(),
                || async {
                    match tokio::time::timeout(
                        budget,
                        rtt::check(&self.connector, relay, &self.keys, min_pow, &options),
                    )
                    .await
                    {
                        Ok(rtt) => rtt,
                        Err(_) => {
                            let reason = format!("rtt check timed out after {budget:?}");
                            let mut outcome = CheckOutcome::default();
                            for phase in ["open", "read", "write"] {
                                outcome
                                    .logs
                                    .insert(format!("{phase}_success"), Value::Bool(false));
                                outcome
                                    .logs
                                    .insert(format!("{phase}_reason"), Value::from(reason.clone()));
                            }
                            Rtt {
                                outcome,
                                auth_requested: false,
                            }
                        }
                    }
                },
            )
            .await;
            result.rtt = Some(rtt);
        }
        let clearnet = relay.network() == NetworkType::Clearnet;
        let host = relay_host(relay).unwrap_or_default();
        let ssl = async {
            if !(clearnet && self.compute.nip66_ssl) {
                return None;
            }
            Some(
                self.retried(MetadataType::Nip66Ssl, timeout * 2 + slack, || {
                    ssl::check(&self.connector, relay, timeout)
                })
                .await,
            )
        };
        let dns = async {
            if !(clearnet && self.compute.nip66_dns) {
                return None;
            }
            Some(
                self.retried(MetadataType::Nip66Dns, timeout + slack, || {
                    self.dns.check(&host)
                })
                .await,
            )
        };
        let located = async {
            let geo_on = clearnet && self.compute.nip66_geo && self.city.is_some();
            let net_on = clearnet && self.compute.nip66_net && self.asn.is_some();
            if !(geo_on || net_on) {
                return (None, None);
            }
            let (v4, v6): (Option<Ipv4Addr>, Option<Ipv6Addr>) =
                tokio::time::timeout(timeout + slack, self.dns.lookup_ips(&host))
                    .await
                    .unwrap_or((None, None));
            let geo = match (&self.city, geo_on) {
                (Some(db), true) => Some(
                    self.retried(MetadataType::Nip66Geo, timeout, || async {
                        bigbrotr_nips::nip66::geo::check(db, v4, v6, self.geohash_precision)
                    })
                    .await,
                ),
                _ => None,
            };
            let net = match (&self.asn, net_on) {
                (Some(db), true) => Some(
                    self.retried(MetadataType::Nip66Net, timeout, || async {
                        bigbrotr_nips::nip66::net::check(db, v4, v6)
                    })
                    .await,
                ),
                _ => None,
            };
            (geo, net)
        };
        let http = async {
            if !self.compute.nip66_http {
                return None;
            }
            Some(
                self.retried(MetadataType::Nip66Http, timeout + slack, || {
                    http::check(&self.connector, relay, timeout)
                })
                .await,
            )
        };
        let (ssl, dns, (geo, net), http) = tokio::join!(ssl, dns, located, http);
        result.ssl = ssl;
        result.dns = dns;
        result.geo = geo;
        result.net = net;
        result.http = http;
        result
    }

    async fn retried<F, Fut>(
        &self,
        kind: MetadataType,
        budget: Duration,
        attempt: F,
    ) -> CheckOutcome
    where
        F: Fn() -> Fut,
        Fut: Future<Output = CheckOutcome>,
    {
        let name = kind.as_str();
        with_retry(
            self.retries.get(kind),
            &self.shutdown,
            CheckOutcome::succeeded,
            || bounded(name, budget, attempt()),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_with_bounded_backoff() {
        let policy = RetryConfig {
            max_attempts: 3,
            initial_delay: 1.0,
            max_delay: 1.5,
            jitter: 0.0,
        };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let result = with_retry(
            &policy,
            &CancellationToken::new(),
            |n: &u32| *n >= 2,
            || async { calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) },
        )
        .await;
        assert_eq!(result, 2);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        // Delays 1.0 then min(2.0, 1.5) = 1.5.
        assert_eq!(started.elapsed(), Duration::from_millis(2500));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_and_returns_the_last_result() {
        let policy = RetryConfig {
            max_attempts: 2,
            initial_delay: 0.1,
            max_delay: 1.0,
            jitter: 0.5,
        };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let result = with_retry(
            &policy,
            &CancellationToken::new(),
            |_: &u32| false,
            || async { calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) },
        )
        .await;
        assert_eq!(result, 2);
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(
            elapsed <= Duration::from_millis(1300),
            "jitter is bounded: {elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_interrupts_the_delay() {
        let policy = RetryConfig {
            max_attempts: 5,
            initial_delay: 10.0,
            max_delay: 60.0,
            jitter: 0.0,
        };
        let shutdown = CancellationToken::new();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stopper.cancel();
        });
        let calls = std::sync::atomic::AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        with_retry(
            &policy,
            &shutdown,
            |_: &u32| false,
            || async { calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) },
        )
        .await;
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(1),
            "not the 10 s delay"
        );
    }

    #[test]
    fn a_relay_that_does_not_answer_failed() {
        let mut result = RelayResult {
            http: Some(CheckOutcome::failure("connection refused")),
            dns: Some(CheckOutcome::success(serde_json::Map::new())),
            ..RelayResult::default()
        };
        assert!(
            !result.succeeded(),
            "its name still resolves, but it did not answer"
        );
        result.nip11 = Some(Nip11 {
            outcome: CheckOutcome::success(serde_json::Map::new()),
            raw: None,
        });
        assert!(result.succeeded());
        let lookups_only = RelayResult {
            dns: Some(CheckOutcome::success(serde_json::Map::new())),
            ..RelayResult::default()
        };
        assert!(
            lookups_only.succeeded(),
            "with only lookups computed, they decide"
        );
        assert!(!RelayResult::default().succeeded());
    }
}
