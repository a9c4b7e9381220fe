//! Network classification of relay hosts: clearnet, Tor, I2P, Lokinet, local or unknown.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::RelayUrlError;
use super::ip::{PyIp, parse_ip};

/// The network a relay host belongs to, stored as lower-case text in `relay.network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    /// The public Internet (IP address or DNS name); relays use `wss://`.
    Clearnet,
    /// A Tor onion service (`.onion`); relays use `ws://`.
    Tor,
    /// An I2P eepsite (`.i2p`); relays use `ws://`.
    I2p,
    /// A Lokinet address (`.loki`); relays use `ws://`.
    Loki,
    /// A loopback, private or reserved address; always rejected for relays.
    Local,
    /// A host that fits no other class; always rejected for relays.
    Unknown,
}

impl NetworkType {
    /// All six variants, in declaration order.
    pub const ALL: [NetworkType; 6] = [
        NetworkType::Clearnet,
        NetworkType::Tor,
        NetworkType::I2p,
        NetworkType::Loki,
        NetworkType::Local,
        NetworkType::Unknown,
    ];

    /// The lower-case name used in the database and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkType::Clearnet => "clearnet",
            NetworkType::Tor => "tor",
            NetworkType::I2p => "i2p",
            NetworkType::Loki => "loki",
            NetworkType::Local => "local",
            NetworkType::Unknown => "unknown",
        }
    }

    /// Whether relays on this network can be stored and contacted (clearnet, tor, i2p, loki).
    pub fn is_operational(self) -> bool {
        !matches!(self, NetworkType::Local | NetworkType::Unknown)
    }
}

impl fmt::Display for NetworkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NetworkType {
    type Err = RelayUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        NetworkType::ALL
            .into_iter()
            .find(|network| network.as_str() == text)
            .ok_or_else(|| RelayUrlError::UnknownNetwork(text.to_owned()))
    }
}

const HOSTNAME_MAX_LENGTH: usize = 253;
const HOSTNAME_MAX_LABEL_LENGTH: usize = 63;
const ONION_V3_LENGTH: usize = 56;
const ONION_V2_LENGTH: usize = 16;
const I2P_B32_LENGTH: usize = 52;
const LOKI_LENGTH: usize = 52;

/// IANA special-purpose IPv4 blocks treated as local: (network, prefix length).
const LOCAL_V4: [(u32, u32); 16] = [
    (0x0000_0000, 8),  // 0.0.0.0/8
    (0x0A00_0000, 8),  // 10.0.0.0/8
    (0x6440_0000, 10), // 100.64.0.0/10
    (0x7F00_0000, 8),  // 127.0.0.0/8
    (0xA9FE_0000, 16), // 169.254.0.0/16
    (0xAC10_0000, 12), // 172.16.0.0/12
    (0xC000_0000, 24), // 192.0.0.0/24
    (0xC000_0200, 24), // 192.0.2.0/24
    (0xC058_6300, 24), // 192.88.99.0/24
    (0xC0A8_0000, 16), // 192.168.0.0/16
    (0xC612_0000, 15), // 198.18.0.0/15
    (0xC633_6400, 24), // 198.51.100.0/24
    (0xCB00_7100, 24), // 203.0.113.0/24
    (0xE000_0000, 4),  // 224.0.0.0/4
    (0xF000_0000, 4),  // 240.0.0.0/4
    (0xFFFF_FFFF, 32), // 255.255.255.255/32
];

/// IANA special-purpose IPv6 blocks treated as local: (network, prefix length).
const LOCAL_V6: [(u128, u32); 12] = [
    (1, 128),                     // ::1/128
    (0, 128),                     // ::/128
    (0xFFFF_0000_0000, 96),       // ::ffff:0:0/96
    (0x0064_FF9B_u128 << 96, 96), // 64:ff9b::/96
    (0x0100_u128 << 112, 64),     // 100::/64
    (0x2001_0000_u128 << 96, 32), // 2001::/32
    (0x2001_0002_u128 << 96, 48), // 2001:2::/48
    (0x2001_0DB8_u128 << 96, 32), // 2001:db8::/32
    (0x2001_0010_u128 << 96, 28), // 2001:10::/28
    (0xFC00_u128 << 112, 7),      // fc00::/7
    (0xFE80_u128 << 112, 10),     // fe80::/10
    (0xFF00_u128 << 112, 8),      // ff00::/8
];

/// Classifies a host name or IP address (brackets allowed, case-insensitive).
///
/// Order, as in BigBrotr 6.6.9: overlay suffixes first (`.onion`, `.i2p`, `.loki`; a malformed
/// overlay name is [`NetworkType::Unknown`]), then `localhost`/`localhost.localdomain`, then IP
/// addresses (local when inside one of the IANA special-purpose blocks, clearnet otherwise), then
/// DNS host names (clearnet when valid), and [`NetworkType::Unknown`] for anything else.
pub fn detect_network(host: &str) -> NetworkType {
    if host.is_empty() {
        return NetworkType::Unknown;
    }
    let lowered = host.to_lowercase();
    let bare = lowered.trim_matches(|c| c == '[' || c == ']');

    for (suffix, network) in [
        (".onion", NetworkType::Tor),
        (".i2p", NetworkType::I2p),
        (".loki", NetworkType::Loki),
    ] {
        if let Some(name) = bare.strip_suffix(suffix) {
            return if is_valid_overlay_name(name, network) {
                network
            } else {
                NetworkType::Unknown
            };
        }
    }

    if bare == "localhost" || bare == "localhost.localdomain" {
        return NetworkType::Local;
    }

    if let Some(ip) = parse_ip(bare) {
        return if is_local_ip(&ip) {
            NetworkType::Local
        } else {
            NetworkType::Clearnet
        };
    }

    if is_valid_hostname(bare) {
        NetworkType::Clearnet
    } else {
        NetworkType::Unknown
    }
}

/// Whether a resolved address is one the daemons must not be sent to by a relay: inside the
/// blocks that make a literal host [`NetworkType::Local`] (loopback, private, link-local, shared,
/// documentation, multicast, reserved; `::1`, `fc00::/7`, `fe80::/10`, ...). IPv6 addresses that
/// carry an IPv4 address — IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96` and NAT64
/// `64:ff9b::/96` — are judged by that IPv4 address, so `::ffff:127.0.0.1` is local and a
/// DNS64 answer for a public IPv4 address is not.
pub fn is_local_address(address: std::net::IpAddr) -> bool {
    const EMBEDDING_V4: [u128; 3] = [0xFFFF_0000_0000, 0, 0x0064_FF9B_u128 << 96];
    match address {
        std::net::IpAddr::V4(v4) => is_local_ip(&PyIp::V4(u32::from(v4))),
        std::net::IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            if EMBEDDING_V4.contains(&(bits & !u128::from(u32::MAX))) {
                return is_local_ip(&PyIp::V4(bits as u32));
            }
            is_local_ip(&PyIp::V6 {
                addr: bits,
                scope: None,
            })
        }
    }
}

fn is_local_ip(ip: &PyIp) -> bool {
    match ip {
        PyIp::V4(addr) => LOCAL_V4.iter().any(|&(network, prefix)| {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            addr & mask == network
        }),
        PyIp::V6 { addr, .. } => LOCAL_V6.iter().any(|&(network, prefix)| {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            addr & mask == network
        }),
    }
}

/// A DNS host name: at least one dot, at most 253 characters, labels of 1-63 characters from
/// `[a-z0-9-_]` that neither start nor end with `-`, and a top-level label that is not all digits.
pub(crate) fn is_valid_hostname(host: &str) -> bool {
    if !host.contains('.') || host.chars().count() > HOSTNAME_MAX_LENGTH {
        return false;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let labels_ok = labels.iter().all(|label| {
        !label.is_empty()
            && label.chars().count() <= HOSTNAME_MAX_LABEL_LENGTH
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    });
    labels_ok
        && !labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

fn is_base32(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// Validates the part of an overlay host before its suffix (`name` in `name.onion`).
fn is_valid_overlay_name(name: &str, network: NetworkType) -> bool {
    if name.is_empty() {
        return false;
    }
    match network {
        NetworkType::Tor => {
            let (subdomains, onion_hash) = match name.rsplit_once('.') {
                Some((subdomains, onion_hash)) => (Some(subdomains), onion_hash),
                None => (None, name),
            };
            let hash_ok = matches!(
                onion_hash.chars().count(),
                ONION_V3_LENGTH | ONION_V2_LENGTH
            ) && is_base32(onion_hash);
            hash_ok && subdomains.is_none_or(|sub| is_valid_hostname(&format!("{sub}.onion")))
        }
        NetworkType::Loki => name.chars().count() == LOKI_LENGTH && is_base32(name),
        NetworkType::I2p => match name.strip_suffix(".b32") {
            Some(b32) => b32.chars().count() == I2P_B32_LENGTH && is_base32(b32),
            None => is_valid_hostname(&format!("{name}.i2p")),
        },
        NetworkType::Clearnet | NetworkType::Local | NetworkType::Unknown => false,
    }
}
