//! Relay URLs: the canonicalising sanitiser, network detection and the validated [`Relay`].

mod idn;
mod ip;
mod network;
mod sanitize;
mod uri;

#[cfg(test)]
mod test_vectors;
#[cfg(test)]
mod tests;

pub use network::{NetworkType, detect_network, is_local_address};
pub use sanitize::{MAX_URL_LENGTH, sanitize_relay_url};

use sanitize::scheme_for;
use uri::parse_normalized;

/// Why a relay URL was rejected. The messages are BigBrotr 6.6.9's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayUrlError {
    /// A non-ASCII host label could not be converted to punycode (holds the first 50 characters
    /// of the host).
    #[error("Invalid internationalized hostname: '{0}'")]
    InvalidIdn(String),
    /// RFC 3986 validation failed: a required component is missing or one is malformed. The
    /// original appends the `rfc3986` exception tuple; only its message is kept here.
    #[error("Invalid URL: {0}")]
    InvalidUrl(String),
    /// The scheme is neither `ws` nor `wss`.
    #[error("Invalid scheme: must be ws or wss")]
    InvalidScheme,
    /// The host contains forbidden characters or is neither an IP address, a valid host name nor
    /// a well-formed overlay address.
    #[error("Invalid host: '{0}'")]
    InvalidHost(String),
    /// The host is `localhost` or an address in a private or reserved block.
    #[error("Local addresses not allowed")]
    LocalAddress,
    /// The port is 0 (ports above 65535 already fail RFC 3986 validation).
    #[error("Port out of range: {0}")]
    PortOutOfRange(u32),
    /// The canonical URL is longer than [`MAX_URL_LENGTH`] characters.
    #[error("URL exceeds maximum length ({length} > 2048): '{prefix}...'")]
    TooLong {
        /// Length of the canonical URL in characters.
        length: usize,
        /// Its first 80 characters.
        prefix: String,
    },
    /// [`Relay::new`] was given a URL containing NUL.
    #[error("url contains null bytes")]
    NullByte,
    /// [`Relay::new`] was given a negative `discovered_at`.
    #[error("discovered_at must be non-negative")]
    NegativeTimestamp,
    /// [`Relay::new`] was given a URL that [`sanitize_relay_url`] would change.
    #[error("Relay URL is not in canonical form: '{url}' (expected '{expected}')")]
    NotCanonical {
        /// The URL as given.
        url: String,
        /// What [`sanitize_relay_url`] makes of it.
        expected: String,
    },
    /// A network name that is not one of the [`NetworkType`] values.
    #[error("unknown network type: '{0}'")]
    UnknownNetwork(String),
}

/// A relay with a canonical URL, as stored in the `relay` table.
///
/// Only URLs already in canonical form are accepted; pass untrusted input through
/// [`sanitize_relay_url`] or use [`parse_relay`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Relay {
    url: String,
    network: NetworkType,
    discovered_at: i64,
    host: String,
    port: Option<u16>,
    path: Option<String>,
}

impl Relay {
    /// Validates an already canonical `url` (errors if [`sanitize_relay_url`] would change it,
    /// or if it contains NUL) and a non-negative `discovered_at` (Unix seconds).
    pub fn new(url: &str, discovered_at: i64) -> Result<Relay, RelayUrlError> {
        if url.contains('\0') {
            return Err(RelayUrlError::NullByte);
        }
        if discovered_at < 0 {
            return Err(RelayUrlError::NegativeTimestamp);
        }
        let canonical = sanitize_relay_url(url)?;
        if canonical != url {
            return Err(RelayUrlError::NotCanonical {
                url: url.to_owned(),
                expected: canonical,
            });
        }
        // Components come from a fresh RFC 3986 parse of the canonical URL, as in 6.6.9 (so an
        // IPv6 zone keeps its `%25` escape in `host`).
        let parts = parse_normalized(url);
        let host = parts
            .host
            .unwrap_or_default()
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let port = parts.port.and_then(|digits| digits.parse().ok());
        let path = Some(parts.path).filter(|path| !path.is_empty());
        let network = detect_network(&host);
        Ok(Relay {
            url: url.to_owned(),
            network,
            discovered_at,
            host,
            port,
            path,
        })
    }

    /// The canonical URL (primary key of the `relay` table).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The network of the host; always one of the operational networks.
    pub fn network(&self) -> NetworkType {
        self.network
    }

    /// When the relay was first discovered (Unix seconds).
    pub fn discovered_at(&self) -> i64 {
        self.discovered_at
    }

    /// `wss` for clearnet relays, `ws` for overlay relays.
    pub fn scheme(&self) -> &'static str {
        scheme_for(self.network)
    }

    /// The host name or IP address, without IPv6 brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The explicit port, or `None` when the URL uses the scheme's default port.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The path (starting with `/`), or `None` when the URL has none.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
}

/// Sanitises `raw` with [`sanitize_relay_url`] and builds a [`Relay`] from the result.
pub fn parse_relay(raw: &str, discovered_at: i64) -> Result<Relay, RelayUrlError> {
    Relay::new(&sanitize_relay_url(raw)?, discovered_at)
}
