//! IP address parsing and formatting with the exact rules of CPython's `ipaddress` module.
//!
//! The sanitiser must accept, reject and print addresses exactly as BigBrotr 6.6.9 did through
//! `ipaddress.ip_address()` and `str()`, so `std::net` parsing (which differs on scope ids and
//! some edge cases) is not used here.

/// A parsed IP address, as `ipaddress.ip_address()` would return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PyIp {
    /// An IPv4 address as a big-endian integer.
    V4(u32),
    /// An IPv6 address as a big-endian integer, with its optional RFC 4007 scope id.
    V6 {
        /// The 128-bit address.
        addr: u128,
        /// The scope (zone) id after `%`, if any.
        scope: Option<String>,
    },
}

/// Parses `text` like `ipaddress.ip_address(text)`: IPv4 first, then IPv6.
pub(crate) fn parse_ip(text: &str) -> Option<PyIp> {
    if let Some(v4) = parse_ipv4(text) {
        return Some(PyIp::V4(v4));
    }
    parse_ipv6(text)
}

/// Formats an address like `str(ip_address(..))`: dotted quad, or RFC 5952 compressed IPv6.
pub(crate) fn format_ip(ip: &PyIp) -> String {
    match ip {
        PyIp::V4(v4) => {
            let [a, b, c, d] = v4.to_be_bytes();
            format!("{a}.{b}.{c}.{d}")
        }
        PyIp::V6 { addr, scope } => {
            let mut text = format_ipv6(*addr);
            if let Some(scope) = scope.as_deref().filter(|scope| !scope.is_empty()) {
                text.push('%');
                text.push_str(scope);
            }
            text
        }
    }
}

/// Strict dotted-quad parsing: four decimal octets, no leading zeros, each at most 255.
pub(crate) fn parse_ipv4(text: &str) -> Option<u32> {
    if text.is_empty() || text.contains('/') {
        return None;
    }
    let octets: Vec<&str> = text.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    let mut value: u32 = 0;
    for octet in octets {
        if octet.is_empty() || !octet.bytes().all(|b| b.is_ascii_digit()) || octet.len() > 3 {
            return None;
        }
        if octet != "0" && octet.starts_with('0') {
            return None;
        }
        let number: u32 = octet.parse().ok()?;
        if number > 255 {
            return None;
        }
        value = (value << 8) | number;
    }
    Some(value)
}

fn parse_ipv6(text: &str) -> Option<PyIp> {
    if text.contains('/') {
        return None;
    }
    let (addr_text, scope) = match text.split_once('%') {
        None => (text, None),
        Some((_, scope)) if scope.is_empty() || scope.contains('%') => return None,
        Some((addr_text, scope)) => (addr_text, Some(scope.to_owned())),
    };
    let addr = parse_ipv6_int(addr_text)?;
    Some(PyIp::V6 { addr, scope })
}

const HEXTET_COUNT: usize = 8;

fn parse_ipv6_int(text: &str) -> Option<u128> {
    if text.is_empty() {
        return None;
    }
    let mut parts: Vec<String> = text.split(':').map(str::to_owned).collect();
    if parts.len() < 3 {
        return None;
    }
    if parts.last().is_some_and(|last| last.contains('.')) {
        let v4 = parse_ipv4(&parts.pop()?)?;
        parts.push(format!("{:x}", (v4 >> 16) & 0xFFFF));
        parts.push(format!("{:x}", v4 & 0xFFFF));
    }
    if parts.len() > HEXTET_COUNT + 1 {
        return None;
    }
    let mut skip_index = None;
    for (index, part) in parts.iter().enumerate().take(parts.len() - 1).skip(1) {
        if part.is_empty() {
            if skip_index.is_some() {
                return None;
            }
            skip_index = Some(index);
        }
    }
    let first_empty = parts.first().is_some_and(String::is_empty);
    let last_empty = parts.last().is_some_and(String::is_empty);
    let (parts_hi, parts_lo, parts_skipped) = if let Some(skip) = skip_index {
        let mut parts_hi = skip;
        let mut parts_lo = parts.len() - skip - 1;
        if first_empty {
            parts_hi -= 1;
            if parts_hi != 0 {
                return None;
            }
        }
        if last_empty {
            parts_lo -= 1;
            if parts_lo != 0 {
                return None;
            }
        }
        let used = parts_hi + parts_lo;
        if used >= HEXTET_COUNT {
            return None;
        }
        (parts_hi, parts_lo, HEXTET_COUNT - used)
    } else {
        if parts.len() != HEXTET_COUNT || first_empty || last_empty {
            return None;
        }
        (parts.len(), 0, 0)
    };
    let mut value: u128 = 0;
    for part in &parts[..parts_hi] {
        value = (value << 16) | u128::from(parse_hextet(part)?);
    }
    // A shift by 128 bits would overflow; it only happens for "::" where value is still 0.
    value = value
        .checked_shl(16 * u32::try_from(parts_skipped).ok()?)
        .unwrap_or(0);
    for part in &parts[parts.len() - parts_lo..] {
        value = (value << 16) | u128::from(parse_hextet(part)?);
    }
    Some(value)
}

fn parse_hextet(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(text, 16).ok()
}

/// Lower-case hextets without leading zeros; the first longest run of two or more zero hextets
/// becomes `::` (CPython `_compress_hextets`, which follows RFC 5952). Never uses dotted quads.
fn format_ipv6(addr: u128) -> String {
    let hextets: Vec<u16> = (0..8)
        .rev()
        .map(|i| ((addr >> (16 * i)) & 0xFFFF) as u16)
        .collect();
    let (mut best_start, mut best_len) = (0, 0);
    let mut run_start = 0;
    let mut run_len = 0;
    for (index, hextet) in hextets.iter().enumerate() {
        if *hextet == 0 {
            if run_len == 0 {
                run_start = index;
            }
            run_len += 1;
            if run_len > best_len {
                best_len = run_len;
                best_start = run_start;
            }
        } else {
            run_len = 0;
        }
    }
    let render = |slice: &[u16]| {
        slice
            .iter()
            .map(|h| format!("{h:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len > 1 {
        let head = render(&hextets[..best_start]);
        let tail = render(&hextets[best_start + best_len..]);
        format!("{head}::{tail}")
    } else {
        render(&hextets)
    }
}
