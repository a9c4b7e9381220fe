//! Where and how the daemons connect when they resolve a host themselves (clearnet without a
//! proxy): names resolved through static overrides or the system resolver, then every address
//! outside the global Internet (loopback, private, link-local, cloud metadata, ...) refused unless
//! the network allows it (`networks.clearnet.allow_private`), so a relay or a document it serves
//! cannot send a daemon to internal services; then the remaining addresses raced as RFC 8305
//! (Happy Eyeballs) describes, so a black-holed IPv6 address does not cost a relay its budget.
//! The relay transport and the HTTP clients share the rule; see [`crate::http`] for how reqwest
//! connects.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bigbrotr_models::relay::is_local_address;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::net::TcpStream;

/// Static `host → addresses` overrides consulted before DNS (like curl's `--resolve`): the
/// addresses of a host in the order they were given. Keys are lower-case.
pub type Overrides = Arc<HashMap<String, Vec<SocketAddr>>>;

/// Overrides from `(host, address)` pairs; a host given several times keeps every address, in
/// order.
pub fn overrides(pairs: &[(String, SocketAddr)]) -> Overrides {
    let mut map: HashMap<String, Vec<SocketAddr>> = HashMap::new();
    for (host, address) in pairs {
        map.entry(host.to_ascii_lowercase())
            .or_default()
            .push(*address);
    }
    Arc::new(map)
}

/// Addresses named in a refusal at most (a hostile name may resolve to many).
const NAMED_ADDRESSES: usize = 4;

/// Why a host cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    /// The name does not resolve (or resolves to nothing).
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// Every address of the host is outside the global Internet and the network does not allow
    /// private addresses.
    #[error(
        "address refused: {host} resolves only to non-global addresses ({addresses}) and \
         networks.clearnet.allow_private is off"
    )]
    NotGlobal {
        /// The host name.
        host: String,
        /// The refused addresses, sorted, at most four.
        addresses: String,
    },
}

/// The addresses of `host` (a name or an IP literal, brackets allowed) at `port`: the overrides
/// first (their own ports), an IP literal as it is, else the system resolver (`getaddrinfo`:
/// `/etc/hosts`, then DNS, sorted by RFC 6724 and `/etc/gai.conf`).
pub async fn resolve(
    host: &str,
    port: u16,
    overrides: &Overrides,
) -> Result<Vec<SocketAddr>, DialError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Some(addresses) = overrides.get(&host.to_ascii_lowercase()) {
        return Ok(addresses.clone());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let failed = |reason: String| DialError::Resolve {
        host: host.to_owned(),
        reason,
    };
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| failed(e.to_string()))?
        .collect();
    if addresses.is_empty() {
        return Err(failed("no address".to_owned()));
    }
    Ok(addresses)
}

/// The addresses of `host` the daemon may connect to: all of them when `allow_private`, else
/// the global ones (a name that also resolves to a private address keeps only its public ones);
/// none left is [`DialError::NotGlobal`].
pub fn admit(
    host: &str,
    addresses: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, DialError> {
    if allow_private {
        return Ok(addresses);
    }
    let (global, local): (Vec<SocketAddr>, Vec<SocketAddr>) = addresses
        .into_iter()
        .partition(|a| !is_local_address(a.ip()));
    if !global.is_empty() {
        return Ok(global);
    }
    if local.is_empty() {
        return Err(DialError::Resolve {
            host: host.to_owned(),
            reason: "no address".to_owned(),
        });
    }
    let mut ips: Vec<IpAddr> = local.iter().map(SocketAddr::ip).collect();
    ips.sort();
    ips.dedup();
    let mut named: Vec<String> = ips
        .iter()
        .take(NAMED_ADDRESSES)
        .map(ToString::to_string)
        .collect();
    if ips.len() > NAMED_ADDRESSES {
        named.push(format!("{} more", ips.len() - NAMED_ADDRESSES));
    }
    Err(DialError::NotGlobal {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        addresses: named.join(", "),
    })
}

/// RFC 8305's "Connection Attempt Delay": how long an attempt has to succeed before the next
/// address is tried beside it.
pub const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// `addresses` in RFC 8305 §4 order: duplicates dropped, then the two families interleaved,
/// starting with the family of the first address (the resolver's preference, RFC 6724 and
/// `/etc/gai.conf`), each family keeping its own order.
pub fn interleave(addresses: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(addresses.len());
    for address in addresses {
        if !unique.contains(address) {
            unique.push(*address);
        }
    }
    let first_is_v6 = unique.first().is_some_and(SocketAddr::is_ipv6);
    let (mut first, mut second): (VecDeque<SocketAddr>, VecDeque<SocketAddr>) =
        unique.into_iter().partition(|a| a.is_ipv6() == first_is_v6);
    let mut ordered = Vec::with_capacity(first.len() + second.len());
    while !first.is_empty() || !second.is_empty() {
        ordered.extend(first.pop_front());
        ordered.extend(second.pop_front());
    }
    ordered
}

/// Opens a TCP connection the way browsers do (RFC 8305, Happy Eyeballs): the addresses in
/// [`interleave`] order, the next attempt started when the previous one fails or after
/// [`CONNECTION_ATTEMPT_DELAY`] while it is still pending, the first connection established
/// wins and the other attempts are dropped (their sockets closed). A black-holed address (an
/// IPv6 route that drops everything) therefore costs 250 ms, not the caller's whole budget. No
/// time limit of its own: the caller's deadline covers every attempt. When all fail, the error
/// is the last one's.
pub async fn connect(addresses: &[SocketAddr]) -> std::io::Result<TcpStream> {
    race(&interleave(addresses), CONNECTION_ATTEMPT_DELAY).await
}

/// [`connect`] over `addresses` as ordered, with `delay` between attempts.
async fn race(addresses: &[SocketAddr], delay: Duration) -> std::io::Result<TcpStream> {
    let mut waiting = addresses.iter().copied();
    let mut next = waiting.next();
    let mut attempts = FuturesUnordered::new();
    let mut last_error = None;
    loop {
        if let Some(address) = next.take() {
            attempts.push(TcpStream::connect(address));
            next = waiting.next();
        }
        if attempts.is_empty() {
            return Err(
                last_error.unwrap_or_else(|| std::io::Error::other("no address to connect to"))
            );
        }
        // Until an attempt fails (the next starts at once) or the delay passes with more
        // addresses waiting.
        tokio::select! {
            Some(result) = attempts.next() => match result {
                Ok(stream) => return Ok(stream),
                Err(error) => last_error = Some(error),
            },
            () = tokio::time::sleep(delay), if next.is_some() => {}
            else => {}
        }
    }
}

#[cfg(test)]
mod tests;
