//! `sanitize_relay_url`: the canonical form of a relay URL from untrusted input.

use super::RelayUrlError;
use super::idn::encode_idn_host;
use super::ip::{format_ip, parse_ip};
use super::network::{NetworkType, detect_network};
use super::uri::{parse_normalized, percent_decode, validate};

/// Longest accepted canonical URL, in characters (the B-tree index row limit).
pub const MAX_URL_LENGTH: usize = 2048;

const DEFAULT_PORT_WS: u16 = 80;
const DEFAULT_PORT_WSS: u16 = 443;

/// Normalises a raw relay URL into BigBrotr's canonical `scheme://host[:port][path]` form.
///
/// Steps, as in BigBrotr 6.6.9:
/// 1. trim whitespace (Python `str.strip()`), convert non-ASCII host labels to punycode;
/// 2. parse and normalise per RFC 3986 (lower-case scheme and host, upper-case percent escapes,
///    remove dot segments); scheme and host are required and the scheme must be `ws` or `wss`;
/// 3. percent-decode the host, drop brackets and trailing dots, reject whitespace, control
///    characters, NUL and `\`;
/// 4. classify the host ([`detect_network`]): local and unknown hosts are rejected;
/// 5. print IP addresses canonically (IPv6 compressed per RFC 5952, bracketed in the URL);
/// 6. force the scheme by network: `wss` for clearnet, `ws` for tor, i2p and loki;
/// 7. require a port in 1-65535 and drop the default port of the (forced) scheme;
/// 8. collapse `//`, strip trailing `/`, and keep the path only when every percent-decoded
///    segment uses `[A-Za-z0-9-._~:]` and starts and ends alphanumeric (otherwise the whole path
///    is silently dropped);
/// 9. drop query and fragment;
/// 10. reject results longer than [`MAX_URL_LENGTH`] characters.
///
/// ```text
/// wss://atlas.nostr.land/wss://relay.damus.io  ->  wss://atlas.nostr.land
/// wss://x.i2p:80                               ->  ws://x.i2p
/// ```
pub fn sanitize_relay_url(raw: &str) -> Result<String, RelayUrlError> {
    let uri = parse_normalized(&encode_idn_host(py_strip(raw))?);
    validate(&uri)?;

    let raw_host = uri.host.as_deref().unwrap_or_default();
    let decoded = percent_decode(raw_host.trim_matches(|c| c == '[' || c == ']'));
    let host = decoded.trim_end_matches('.');
    if py_strip(host) != host || host.contains([' ', '\t', '\n', '\r', '\0', '\\']) {
        return Err(RelayUrlError::InvalidHost(host.chars().take(50).collect()));
    }

    let network = detect_network(host);
    match network {
        NetworkType::Local => return Err(RelayUrlError::LocalAddress),
        NetworkType::Unknown => return Err(RelayUrlError::InvalidHost(host.to_owned())),
        NetworkType::Clearnet | NetworkType::Tor | NetworkType::I2p | NetworkType::Loki => {}
    }
    let host = parse_ip(host).map_or_else(|| host.to_owned(), |ip| format_ip(&ip));
    let scheme = scheme_for(network);

    let port = match uri.port.as_deref() {
        Some(digits) => {
            let port: u32 = digits.parse().unwrap_or_default();
            if !(1..=65535).contains(&port) {
                return Err(RelayUrlError::PortOutOfRange(port));
            }
            u16::try_from(port).ok()
        }
        None => None,
    };
    let path = sanitize_path(&uri.path);

    let formatted_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = match port {
        Some(port) if port != default_port(scheme) => {
            format!("{scheme}://{formatted_host}:{port}{path}")
        }
        _ => format!("{scheme}://{formatted_host}{path}"),
    };
    let length = url.chars().count();
    if length > MAX_URL_LENGTH {
        return Err(RelayUrlError::TooLong {
            length,
            prefix: url.chars().take(80).collect(),
        });
    }
    Ok(url)
}

/// The scheme a relay on `network` must use: `wss` on clearnet, `ws` on the overlays.
pub(crate) fn scheme_for(network: NetworkType) -> &'static str {
    if network == NetworkType::Clearnet {
        "wss"
    } else {
        "ws"
    }
}

pub(crate) fn default_port(scheme: &str) -> u16 {
    if scheme == "wss" {
        DEFAULT_PORT_WSS
    } else {
        DEFAULT_PORT_WS
    }
}

/// Python's `str.strip()` with no argument: Unicode white space plus U+001C..U+001F.
pub(crate) fn py_strip(text: &str) -> &str {
    text.trim_matches(is_py_whitespace)
}

fn is_py_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&c)
}

/// RFC 3986 unreserved characters plus `:`, allowed anywhere in a decoded path segment.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | ':')
}

fn sanitize_path(raw_path: &str) -> String {
    let mut path = raw_path.to_owned();
    while path.contains("//") {
        path = path.replace("//", "/");
    }
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return String::new();
    }
    let decoded = percent_decode(path);
    let valid = decoded
        .split('/')
        .filter(|segment| !segment.is_empty())
        .all(|segment| {
            segment.chars().all(is_path_char)
                && segment
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
                && segment
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
        });
    if valid {
        path.to_owned()
    } else {
        String::new()
    }
}
