//! The subset of the Python `rfc3986` package (2.0) that BigBrotr 6.6.9 relies on.
//!
//! `uri_reference(text).normalize()` followed by a `Validator` that requires scheme and host,
//! allows only `ws`/`wss` and checks the validity of scheme, host, port and path. Only the parts
//! that influence the sanitiser's result are modelled: query and fragment are split off and
//! ignored, exactly as the original ignores them.

use super::RelayUrlError;

/// The normalised components of a URI reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uri {
    /// Lower-cased scheme, if the reference has one.
    pub(crate) scheme: Option<String>,
    /// Lower-cased host as written (brackets kept, percent escapes not decoded), if any.
    pub(crate) host: Option<String>,
    /// The port digits as written (one to five digits), if any.
    pub(crate) port: Option<String>,
    /// Percent-encoded path with upper-case escapes and dot segments removed.
    pub(crate) path: String,
}

/// Parses and normalises `text` like `rfc3986.uri_reference(text).normalize()`.
pub(crate) fn parse_normalized(text: &str) -> Uri {
    let (scheme, rest) = split_scheme(text);
    let (authority, rest) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['\\', '/', '?', '#']).unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        None => (None, rest),
    };
    let path_end = rest.find(['?', '#']).unwrap_or(rest.len());
    let path = normalize_path(&encode_component(&rest[..path_end]));

    // `normalize()` rebuilds the authority from its parsed parts, and the normalised reference
    // parses that string again: an authority whose parts are all empty disappears entirely.
    let normalized_authority = authority.and_then(authority_info).map(|info| {
        let mut result = String::new();
        if let Some(userinfo) = info.userinfo.filter(|u| !u.is_empty()) {
            result.push_str(&uppercase_percent_escapes(userinfo));
            result.push('@');
        }
        if !info.host.is_empty() {
            result.push_str(&normalize_host(info.host));
        }
        if let Some(port) = info.port {
            result.push(':');
            result.push_str(port);
        }
        result
    });
    let (host, port) = match normalized_authority.as_deref().and_then(authority_info) {
        Some(info) => (Some(info.host.to_owned()), info.port.map(str::to_owned)),
        None => (None, None),
    };

    Uri {
        scheme: scheme.map(|s| s.to_ascii_lowercase()),
        host,
        port,
        path,
    }
}

/// Applies the 6.6.9 validator: scheme and host required, scheme/host/port/path valid, scheme
/// `ws` or `wss` (checked last, as the validator does).
pub(crate) fn validate(uri: &Uri) -> Result<(), RelayUrlError> {
    let mut missing = Vec::new();
    if uri.host.is_none() {
        missing.push("host");
    }
    if uri.scheme.is_none() {
        missing.push("scheme");
    }
    if !missing.is_empty() {
        let verb = if missing.len() > 1 { "were" } else { "was" };
        return Err(RelayUrlError::InvalidUrl(format!(
            "{} {verb} required but missing",
            missing.join(", ")
        )));
    }

    let mut invalid = Vec::new();
    if !uri.host.as_deref().is_none_or(host_is_valid) {
        invalid.push("host");
    }
    if !path_is_valid(&uri.path) {
        invalid.push("path");
    }
    if uri
        .port
        .as_deref()
        .is_some_and(|port| port.parse::<u32>().is_ok_and(|p| p > 65535))
    {
        invalid.push("port");
    }
    if !invalid.is_empty() {
        let verb = if invalid.len() > 1 { "were" } else { "was" };
        return Err(RelayUrlError::InvalidUrl(format!(
            "{} {verb} found to be invalid",
            invalid.join(", ")
        )));
    }

    match uri.scheme.as_deref() {
        Some("ws" | "wss") => Ok(()),
        _ => Err(RelayUrlError::InvalidScheme),
    }
}

fn split_scheme(text: &str) -> (Option<&str>, &str) {
    if let Some((candidate, rest)) = text.split_once(':') {
        let mut bytes = candidate.bytes();
        let starts_alpha = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
        if starts_alpha
            && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'))
        {
            return (Some(candidate), rest);
        }
    }
    (None, text)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Characters `encode_component` leaves alone: reserved (gen-delims and sub-delims) and unreserved.
fn is_not_percent_encoded(b: u8) -> bool {
    is_unreserved(b)
        || is_sub_delim(b)
        || matches!(b, b':' | b'/' | b'?' | b'#' | b'[' | b']' | b'@')
}

fn is_percent_triplet(bytes: &[u8], index: usize) -> bool {
    bytes.get(index) == Some(&b'%')
        && bytes.get(index + 1).is_some_and(u8::is_ascii_hexdigit)
        && bytes.get(index + 2).is_some_and(u8::is_ascii_hexdigit)
}

/// `rfc3986.normalizers.encode_component`: percent-encodes every byte outside the reserved and
/// unreserved sets; `%` is kept only when every `%` already starts a valid escape.
fn encode_component(component: &str) -> String {
    let bytes = component.as_bytes();
    let already_encoded = (0..bytes.len())
        .filter(|&i| bytes[i] == b'%')
        .all(|i| is_percent_triplet(bytes, i));
    let mut encoded = String::with_capacity(bytes.len());
    for &byte in bytes {
        if (already_encoded && byte == b'%') || (byte.is_ascii() && is_not_percent_encoded(byte)) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Upper-cases the hex digits of every `%XX` escape.
fn uppercase_percent_escapes(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < bytes.len() {
        if is_percent_triplet(bytes, index) {
            out.push('%');
            out.push(char::from(bytes[index + 1].to_ascii_uppercase()));
            out.push(char::from(bytes[index + 2].to_ascii_uppercase()));
            index += 3;
        } else {
            let ch = text[index..].chars().next().unwrap_or_default();
            out.push(ch);
            index += ch.len_utf8().max(1);
        }
    }
    out
}

fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    remove_dot_segments(&uppercase_percent_escapes(path))
}

/// RFC 3986 §5.2.4 as implemented by `rfc3986.normalizers.remove_dot_segments`.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "." => {}
            ".." => {
                output.pop();
            }
            other => output.push(other),
        }
    }
    if path.starts_with('/') && output.first().is_none_or(|first| !first.is_empty()) {
        output.insert(0, "");
    }
    if path.ends_with("/.") || path.ends_with("/..") {
        output.push("");
    }
    output.join("/")
}

/// `normalize_host`: lower-case, except that an IPv6 zone id keeps its case and a bare `%` zone
/// delimiter becomes `%25` (RFC 6874).
fn normalize_host(host: &str) -> String {
    if is_ipv6_literal(host, true)
        && let Some(percent) = host.find('%')
    {
        let mut host = host.to_owned();
        let percent_25 = host.find("%25");
        let replace = match percent_25 {
            None => true,
            Some(p25) => percent < p25 || (percent == p25 && p25 + 4 == host.len()),
        };
        if replace {
            host.replace_range(percent..=percent, "%25");
        }
        return format!("{}{}", host[..percent].to_lowercase(), &host[percent..]);
    }
    host.to_lowercase()
}

struct AuthorityInfo<'a> {
    userinfo: Option<&'a str>,
    host: &'a str,
    port: Option<&'a str>,
}

/// `authority_info()`: splits `[userinfo@]host[:port]` with `SUBAUTHORITY_MATCHER`; `None` when
/// the authority is absent, empty, does not match, or looks like IPv4 with an octet over 255.
fn authority_info(authority: &str) -> Option<AuthorityInfo<'_>> {
    if authority.is_empty() {
        return None;
    }
    let (userinfo, host_port) = match authority.split_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, authority),
    };
    if userinfo.is_some_and(|u| !is_valid_userinfo(u)) {
        return None;
    }
    // Reg-name is tried first; it cannot contain `[`, so an authority starting with `[` can
    // only match as an IP literal.
    let host_end = if host_port.starts_with('[') {
        let close = host_port.find(']')?;
        if !is_ip_literal(&host_port[..=close]) {
            return None;
        }
        close + 1
    } else {
        reg_name_end(host_port)
    };
    split_port(host_port, host_end, userinfo)
}

fn split_port<'a>(
    host_port: &'a str,
    host_end: usize,
    userinfo: Option<&'a str>,
) -> Option<AuthorityInfo<'a>> {
    let host = &host_port[..host_end];
    let remainder = &host_port[host_end..];
    // `:?` then an optional `[0-9]{1,5}`: after a reg-name the colon is always there (the
    // greedy reg-name would have taken bare digits), after an IP literal it is optional.
    let port = match remainder.strip_prefix(':').unwrap_or(remainder) {
        "" => None,
        digits if digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) => Some(digits),
        _ => return None,
    };
    if looks_like_ipv4(host) && parse_ipv4_octets(host).is_none() {
        return None;
    }
    Some(AuthorityInfo {
        userinfo,
        host,
        port,
    })
}

/// The longest prefix made of reg-name characters (unreserved, sub-delims, `%XX`).
fn reg_name_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if is_percent_triplet(bytes, index) {
            index += 3;
        } else if is_unreserved(bytes[index]) || is_sub_delim(bytes[index]) {
            index += 1;
        } else {
            break;
        }
    }
    index
}

fn is_valid_userinfo(userinfo: &str) -> bool {
    let bytes = userinfo.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if is_percent_triplet(bytes, index) {
            index += 3;
        } else if is_unreserved(bytes[index]) || is_sub_delim(bytes[index]) || bytes[index] == b':'
        {
            index += 1;
        } else {
            return false;
        }
    }
    !bytes.is_empty()
}

/// `IPv4_MATCHER`: four dot-separated runs of one to three digits.
fn looks_like_ipv4(host: &str) -> bool {
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4
        && octets
            .iter()
            .all(|o| (1..=3).contains(&o.len()) && o.bytes().all(|b| b.is_ascii_digit()))
}

/// `valid_ipv4_host_address`: every octet (leading zeros allowed) at most 255.
fn parse_ipv4_octets(host: &str) -> Option<()> {
    host.split('.')
        .all(|o| o.parse::<u32>().is_ok_and(|v| v <= 255))
        .then_some(())
}

/// `[IPv6 (with RFC 4007 or RFC 6874 zone)]` or `[vX.future]`.
fn is_ip_literal(literal: &str) -> bool {
    is_ipv6_literal(literal, true) || is_ipvfuture_literal(literal)
}

fn is_ipvfuture_literal(literal: &str) -> bool {
    let Some(inner) = literal.strip_prefix("[v").and_then(|s| s.strip_suffix(']')) else {
        return false;
    };
    let Some((version, rest)) = inner.split_once('.') else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_hexdigit())
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| is_unreserved(b) || is_sub_delim(b) || b == b':')
}

/// `[` IPv6address [ zone ] `]`. With `rfc4007` the zone may start with a bare `%`
/// (`IPv6_MATCHER`); without it only `%25` is accepted (`IPv6_NO_RFC4007_MATCHER`).
fn is_ipv6_literal(literal: &str, rfc4007: bool) -> bool {
    let Some(inner) = literal.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
        return false;
    };
    let (address, zone) = match inner.split_once('%') {
        Some((address, zone)) => (address, Some(zone)),
        None => (inner, None),
    };
    let zone_ok = match zone {
        None => true,
        Some(zone) if rfc4007 => is_zone_id(zone),
        Some(zone) => zone.strip_prefix("25").is_some_and(is_zone_id),
    };
    zone_ok && is_rfc3986_ipv6(address)
}

fn is_zone_id(zone: &str) -> bool {
    let bytes = zone.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if is_percent_triplet(bytes, index) {
            index += 3;
        } else if is_unreserved(bytes[index]) {
            index += 1;
        } else {
            return false;
        }
    }
    !bytes.is_empty()
}

/// The `IPv6address` rule of RFC 3986 §3.2.2 (the IPv4 tail only needs 1-3 digits per octet).
fn is_rfc3986_ipv6(address: &str) -> bool {
    fn is_h16(piece: &str) -> bool {
        (1..=4).contains(&piece.len()) && piece.bytes().all(|b| b.is_ascii_hexdigit())
    }
    // Units: an h16 counts 1, a trailing IPv4 counts 2.
    fn units(pieces: &[&str], allow_ipv4_tail: bool) -> Option<usize> {
        let mut total = 0;
        for (index, piece) in pieces.iter().enumerate() {
            if is_h16(piece) {
                total += 1;
            } else if allow_ipv4_tail && index + 1 == pieces.len() && looks_like_ipv4(piece) {
                total += 2;
            } else {
                return None;
            }
        }
        Some(total)
    }
    match address.split_once("::") {
        Some((left, right)) => {
            if right.contains("::") {
                return false;
            }
            let left_pieces: Vec<&str> = if left.is_empty() {
                Vec::new()
            } else {
                left.split(':').collect()
            };
            let right_pieces: Vec<&str> = if right.is_empty() {
                Vec::new()
            } else {
                right.split(':').collect()
            };
            match (units(&left_pieces, false), units(&right_pieces, true)) {
                (Some(l), Some(r)) => l + r <= 7,
                _ => false,
            }
        }
        None => {
            let pieces: Vec<&str> = address.split(':').collect();
            units(&pieces, true) == Some(8)
        }
    }
}

/// `host_is_valid` on an already matched host: IPv4-looking hosts need octets up to 255 and
/// IPv6 literals need an RFC 6874 (`%25`) zone delimiter.
fn host_is_valid(host: &str) -> bool {
    if looks_like_ipv4(host) {
        return parse_ipv4_octets(host).is_some();
    }
    if is_ipv6_literal(host, true) {
        return is_ipv6_literal(host, false);
    }
    true
}

/// `PATH_MATCHER`: every character is a pchar (unreserved, sub-delims, `:`, `@`, `%XX`) or `/`.
fn path_is_valid(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if is_percent_triplet(bytes, index) {
            index += 3;
        } else if is_unreserved(bytes[index])
            || is_sub_delim(bytes[index])
            || matches!(bytes[index], b':' | b'@' | b'/')
        {
            index += 1;
        } else {
            return false;
        }
    }
    true
}

/// Python's `urllib.parse.unquote`: decodes `%XX` escapes as UTF-8, replacing invalid sequences
/// with U+FFFD; malformed escapes stay as they are.
pub(crate) fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if is_percent_triplet(bytes, index) {
            let hex = &text[index + 1..index + 3];
            out.push(u8::from_str_radix(hex, 16).unwrap_or_default());
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
