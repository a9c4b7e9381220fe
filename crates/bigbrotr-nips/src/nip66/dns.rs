//! The NIP-66 DNS check (`nip66_dns`, clearnet only): A addresses with their TTL, AAAA
//! addresses, the CNAME target, the NS of the registered domain and the PTR of the first A
//! address, each looked up independently under one deadline. The resolver also serves the
//! address lookups of the Geo and Net checks ([`DnsResolver::lookup_ips`]).
//!
//! Data fields: `dns_ips` (list), `dns_ttl` (integer), `dns_ips_v6` (list), `dns_cname`,
//! `dns_ns` (list) and `dns_reverse`; names have no trailing dot and lists hold at most
//! [`MAX_ENTRIES`] entries. A lookup that fails (NXDOMAIN, no records, timeout) only leaves its
//! field out.
//!
//! A host that is an IP literal has no A, AAAA, CNAME or NS records of its own: only the PTR of
//! the address itself is looked up.
//!
//! Every query goes to the configured servers, as dnspython does in BigBrotr 6.6.9: hickory's
//! resolver answers the special-use names of RFC 6761 itself (`localhost.` and its subdomains,
//! the reverse names of 127/8 and `::1` with `localhost`, `invalid.`, `onion.`) without asking,
//! so those queries are sent through the resolver's name-server pool directly
//! ([`DnsResolver::query`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use std::sync::Arc;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer, RetryDnsHandle};
use hickory_resolver::proto::op::{DnsRequestOptions, Query, ResponseCode};
use hickory_resolver::proto::rr::domain::usage::{
    IN_ADDR_ARPA_127, INVALID, IP6_ARPA_1, LOCALHOST, ONION,
};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig, TokioResolver};
use serde_json::{Map, Value};
use tokio::time::{Instant, timeout_at};

use crate::outcome::CheckOutcome;

/// The most entries kept in each list field (`dns_ips`, `dns_ips_v6`, `dns_ns`).
pub const MAX_ENTRIES: usize = 32;

/// Where and how long to resolve.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    /// Name servers to ask (UDP, and TCP for truncated answers); empty means the system's
    /// configuration (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Deadline for a whole check (every lookup of it), and for each address lookup of
    /// [`DnsResolver::lookup_ips`].
    pub timeout: Duration,
}

/// Why a resolver could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The system configuration could not be read, or the resolver could not be built.
    #[error("cannot configure the DNS resolver: {0}")]
    Config(String),
}

/// A stub resolver without cache, built once per cycle and cheap to clone.
#[derive(Clone)]
pub struct DnsResolver {
    resolver: TokioResolver,
    /// The same servers and options without the resolver's special-use shortcuts, for the names
    /// it would answer itself.
    direct: RetryDnsHandle<NameServerPool<TokioRuntimeProvider>>,
    request: DnsRequestOptions,
    timeout: Duration,
}

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsResolver")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why one lookup gave nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Miss {
    /// NXDOMAIN, no records of the type, or any other error.
    Absent,
    /// The deadline passed (or the resolver gave up waiting).
    TimedOut,
}

impl DnsResolver {
    /// Builds the resolver: the system configuration when `options.nameservers` is empty,
    /// otherwise exactly those servers. The hosts file is never consulted and nothing is cached
    /// (so TTLs are the servers' own).
    pub fn new(options: &DnsOptions) -> Result<Self, DnsError> {
        let config_error = |e: NetError| DnsError::Config(e.to_string());
        let (config, mut opts) = if options.nameservers.is_empty() {
            hickory_resolver::system_conf::read_system_conf().map_err(config_error)?
        } else {
            let servers = options
                .nameservers
                .iter()
                .map(|address| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = address.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = address.port();
                    NameServerConfig::new(address.ip(), true, vec![udp, tcp])
                })
                .collect();
            (
                ResolverConfig::from_parts(None, Vec::new(), servers),
                ResolverOpts::default(),
            )
        };
        // Two tries per query within the check's deadline.
        opts.timeout = (options.timeout / 2).max(Duration::from_millis(100));
        opts.attempts = 2;
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;

        let mut request = DnsRequestOptions::default();
        request.recursion_desired = opts.recursion_desired;
        request.use_edns = opts.edns0;
        request.edns_payload_len = opts.edns_payload_len;
        request.case_randomization = opts.case_randomization;
        let context = PoolContext::new(opts.clone(), TlsConfig::new().map_err(config_error)?);
        let pool = NameServerPool::from_config(
            config.name_servers().iter().cloned(),
            Arc::new(context),
            TokioRuntimeProvider::default(),
        );
        let direct = RetryDnsHandle::new(pool, opts.attempts);

        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(config_error)?;
        Ok(Self {
            resolver,
            direct,
            request,
            timeout: options.timeout,
        })
    }

    /// Runs the DNS check on `host` (a name or an IP literal), bounded by the timeout.
    pub async fn check(&self, host: &str) -> CheckOutcome {
        let deadline = Instant::now() + self.timeout;
        let host = normalise(host);
        let mut data = Map::new();
        let mut timed_out = false;

        if let Ok(ip) = host.parse::<IpAddr>() {
            match self.reverse(ip, deadline).await {
                Ok(name) => {
                    data.insert("dns_reverse".into(), Value::String(name));
                }
                Err(miss) => timed_out |= miss == Miss::TimedOut,
            }
            return finish(data, timed_out, self.timeout);
        }

        let Some(name) = absolute_name(&host) else {
            return CheckOutcome::failure("no DNS records found");
        };
        let registered = registered_domain(&host).and_then(|domain| absolute_name(&domain));

        let a_and_ptr = async {
            let lookup = self.query(name.clone(), RecordType::A, deadline).await?;
            let ttl = lookup
                .answers()
                .iter()
                .filter(|r| matches!(r.data, RData::A(_)))
                .map(|r| r.ttl)
                .min();
            let ips: Vec<Ipv4Addr> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .take(MAX_ENTRIES)
                .collect();
            let Some(first) = ips.first() else {
                return Err(Miss::Absent);
            };
            let reverse = self.reverse(IpAddr::V4(*first), deadline).await;
            Ok((ips, ttl, reverse))
        };
        let aaaa = async {
            let lookup = self.query(name.clone(), RecordType::AAAA, deadline).await?;
            let ips: Vec<Ipv6Addr> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::AAAA(aaaa) => Some(aaaa.0),
                    _ => None,
                })
                .take(MAX_ENTRIES)
                .collect();
            if ips.is_empty() {
                return Err(Miss::Absent);
            }
            Ok(ips)
        };
        let cname = async {
            let lookup = self
                .query(name.clone(), RecordType::CNAME, deadline)
                .await?;
            lookup
                .answers()
                .iter()
                .find_map(|r| match &r.data {
                    RData::CNAME(target) => Some(plain(&target.0)),
                    _ => None,
                })
                .ok_or(Miss::Absent)
        };
        let ns = async {
            let Some(domain) = registered else {
                return Err(Miss::Absent);
            };
            let lookup = self.query(domain, RecordType::NS, deadline).await?;
            let names: Vec<String> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::NS(ns) => Some(plain(&ns.0)),
                    _ => None,
                })
                .take(MAX_ENTRIES)
                .collect();
            if names.is_empty() {
                return Err(Miss::Absent);
            }
            Ok(names)
        };
        let (a_and_ptr, aaaa, cname, ns) = tokio::join!(a_and_ptr, aaaa, cname, ns);

        match a_and_ptr {
            Ok((ips, ttl, reverse)) => {
                data.insert("dns_ips".into(), strings(&ips));
                if let Some(ttl) = ttl {
                    data.insert("dns_ttl".into(), Value::from(ttl));
                }
                match reverse {
                    Ok(name) => {
                        data.insert("dns_reverse".into(), Value::String(name));
                    }
                    Err(miss) => timed_out |= miss == Miss::TimedOut,
                }
            }
            Err(miss) => timed_out |= miss == Miss::TimedOut,
        }
        match aaaa {
            Ok(ips) => {
                data.insert("dns_ips_v6".into(), strings(&ips));
            }
            Err(miss) => timed_out |= miss == Miss::TimedOut,
        }
        match cname {
            Ok(target) => {
                data.insert("dns_cname".into(), Value::String(target));
            }
            Err(miss) => timed_out |= miss == Miss::TimedOut,
        }
        match ns {
            Ok(names) => {
                data.insert("dns_ns".into(), strings(&names));
            }
            Err(miss) => timed_out |= miss == Miss::TimedOut,
        }
        finish(data, timed_out, self.timeout)
    }

    /// The first A and the first AAAA address of `host`, each lookup bounded by the timeout
    /// (run concurrently); an IP literal is returned as it is.
    pub async fn lookup_ips(&self, host: &str) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
        let host = normalise(host);
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => return (Some(ip), None),
            Ok(IpAddr::V6(ip)) => return (None, Some(ip)),
            Err(_) => {}
        }
        let Some(name) = absolute_name(&host) else {
            return (None, None);
        };
        let deadline = Instant::now() + self.timeout;
        let v4 = async {
            let lookup = self
                .query(name.clone(), RecordType::A, deadline)
                .await
                .ok()?;
            lookup.answers().iter().find_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
        };
        let v6 = async {
            let lookup = self
                .query(name.clone(), RecordType::AAAA, deadline)
                .await
                .ok()?;
            lookup.answers().iter().find_map(|r| match &r.data {
                RData::AAAA(aaaa) => Some(aaaa.0),
                _ => None,
            })
        };
        tokio::join!(v4, v6)
    }

    /// One query, bounded by `deadline`. Names the resolver would answer itself (RFC 6761
    /// special-use names, e.g. the PTR of 127.0.0.1) go to the servers directly.
    async fn query(
        &self,
        name: Name,
        record_type: RecordType,
        deadline: Instant,
    ) -> Result<Lookup, Miss> {
        if answered_by_the_resolver(&name) {
            return self.query_servers(name, record_type, deadline).await;
        }
        match timeout_at(deadline, self.resolver.lookup(name, record_type)).await {
            Err(_) | Ok(Err(NetError::Timeout)) => Err(Miss::TimedOut),
            Ok(Err(_)) => Err(Miss::Absent),
            Ok(Ok(lookup)) => Ok(lookup),
        }
    }

    /// One query sent to the configured servers (with the resolver's retries), bounded by
    /// `deadline`; an answer other than NOERROR with records is [`Miss::Absent`].
    async fn query_servers(
        &self,
        name: Name,
        record_type: RecordType,
        deadline: Instant,
    ) -> Result<Lookup, Miss> {
        let query = Query::query(name, record_type);
        let answer = self
            .direct
            .lookup(query.clone(), self.request)
            .first_answer();
        let response = match timeout_at(deadline, answer).await {
            Err(_) | Ok(Err(NetError::Timeout)) => return Err(Miss::TimedOut),
            Ok(Err(_)) => return Err(Miss::Absent),
            Ok(Ok(response)) => response,
        };
        if response.metadata.response_code != ResponseCode::NoError || response.answers.is_empty() {
            return Err(Miss::Absent);
        }
        Ok(Lookup::new_with_max_ttl(query, response.answers.clone()))
    }

    /// The first PTR target of `ip`.
    async fn reverse(&self, ip: IpAddr, deadline: Instant) -> Result<String, Miss> {
        let mut name = Name::from(ip);
        name.set_fqdn(true);
        let lookup = self.query(name, RecordType::PTR, deadline).await?;
        lookup
            .answers()
            .iter()
            .find_map(|r| match &r.data {
                RData::PTR(target) => Some(plain(&target.0)),
                _ => None,
            })
            .ok_or(Miss::Absent)
    }
}

/// Whether hickory's resolver answers `name` itself instead of asking its servers (the
/// special-use zones its caching client short-circuits: loopback names and their reverse zones,
/// `invalid.`, `onion.`).
fn answered_by_the_resolver(name: &Name) -> bool {
    [
        &*LOCALHOST,
        &*IN_ADDR_ARPA_127,
        &*IP6_ARPA_1,
        &*INVALID,
        &*ONION,
    ]
    .iter()
    .any(|zone| zone.zone_of(name))
}

/// Success with the data, or the reason nothing was found.
fn finish(data: Map<String, Value>, timed_out: bool, timeout: Duration) -> CheckOutcome {
    if !data.is_empty() {
        CheckOutcome::success(data)
    } else if timed_out {
        CheckOutcome::failure(format!("DNS timeout after {}s", timeout.as_secs_f64()))
    } else {
        CheckOutcome::failure("no DNS records found")
    }
}

/// Lower case, without brackets (IPv6 literal) or a trailing dot.
fn normalise(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// `host` as an absolute DNS name (so no search domain is appended).
fn absolute_name(host: &str) -> Option<Name> {
    let mut name = Name::from_utf8(host).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// A name as text, without the trailing dot.
fn plain(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_owned()
}

fn strings<T: ToString>(items: &[T]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|item| Value::String(item.to_string()))
            .collect(),
    )
}

/// The registered domain of `host` (one label below its public suffix), as `tldextract` gives
/// it by default: only the ICANN section of the public suffix list counts (`nostr.github.io` →
/// `github.io`), and a host under an unknown suffix, or a bare suffix, has none.
pub fn registered_domain(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let mut suffix = icann_suffix(&host)?;
    if suffix.len() >= host.len() {
        return None;
    }
    // The label right before the suffix, then the suffix.
    let prefix = host[..host.len() - suffix.len()].strip_suffix('.')?;
    let label = prefix.rsplit('.').next().filter(|l| !l.is_empty())?;
    suffix.insert(0, '.');
    suffix.insert_str(0, label);
    Some(suffix)
}

/// The longest ICANN public suffix of `host`; private suffixes are shortened until an ICANN one
/// remains.
fn icann_suffix(host: &str) -> Option<String> {
    let mut candidate = host;
    loop {
        let suffix = psl::suffix(candidate.as_bytes())?;
        let text = std::str::from_utf8(suffix.trim().as_bytes()).ok()?;
        match suffix.typ() {
            Some(psl::Type::Icann) => return Some(text.to_owned()),
            Some(psl::Type::Private) => {
                // Drop the private suffix's first label and look again.
                let start = candidate.len() - text.len();
                let shorter = &candidate[start..];
                candidate = shorter.split_once('.')?.1;
            }
            None => return None,
        }
    }
}

#[cfg(test)]
mod tests;
