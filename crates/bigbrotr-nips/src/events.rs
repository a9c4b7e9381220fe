//! The monitor's published events, tag by tag: kind 30166 (one relay's check results), kind
//! 10166 (the monitor's announcement), kind 0 (its profile) and kind 10002 (its relay list),
//! following the current NIP-66 text, plus the original's extension tags (`ssl*`, `net-*`,
//! `geo-*`, `dns-*`, `http-*`, `W` and the `l` labels), which clients that do not know them
//! ignore.

use bigbrotr_models::relay::{NetworkType, Relay};
use nostr::{EventBuilder, Kind, Tag, TagKind};
use serde_json::{Map, Value};

use crate::CheckOutcome;
use crate::nip11::Nip11;
use crate::nip66::rtt::{PROBE_KIND, Rtt};

/// Kind of the per-relay discovery event.
pub const RELAY_DISCOVERY: u16 = 30166;
/// Kind of the monitor announcement.
pub const MONITOR_ANNOUNCEMENT: u16 = 10166;

/// Largest NIP-11 document put verbatim into a 30166 `content`; a larger one is replaced by its
/// parsed form if that fits, else by `""` (publishing relays refuse oversized events).
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;

/// Longest tag value published; a tag with a longer value (a relay controls most of them) is
/// left out rather than cut.
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// Tags of one name published at most per event (`N`, `t`, `l`, `W`, `k`, ...).
pub const MAX_TAGS_PER_NAME: usize = 100;

/// The check results of one relay that go into its 30166 (each `None` when not included).
#[derive(Debug, Clone, Copy, Default)]
pub struct RelayChecks<'a> {
    /// NIP-11.
    pub nip11: Option<&'a Nip11>,
    /// RTT.
    pub rtt: Option<&'a Rtt>,
    /// SSL.
    pub ssl: Option<&'a CheckOutcome>,
    /// Net.
    pub net: Option<&'a CheckOutcome>,
    /// Geo.
    pub geo: Option<&'a CheckOutcome>,
    /// DNS.
    pub dns: Option<&'a CheckOutcome>,
    /// HTTP.
    pub http: Option<&'a CheckOutcome>,
}

fn tag(name: &str, values: &[&str]) -> Tag {
    Tag::custom(
        TagKind::custom(name.to_owned()),
        values.iter().map(|v| (*v).to_owned()),
    )
}

fn label(value: &str, namespace: &str) -> Tag {
    tag("l", &[value, namespace])
}

fn data_str<'a>(outcome: Option<&'a CheckOutcome>, key: &str) -> Option<&'a str> {
    outcome?.data.get(key)?.as_str()
}

fn data_scalar(outcome: Option<&CheckOutcome>, key: &str) -> Option<String> {
    match outcome?.data.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn first_of(outcome: Option<&CheckOutcome>, key: &str) -> Option<String> {
    outcome?
        .data
        .get(key)?
        .as_array()?
        .first()?
        .as_str()
        .map(str::to_owned)
}

/// The requirement flags of the `R` tags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requirements {
    /// NIP-42 AUTH is required.
    pub auth: bool,
    /// Payment is required.
    pub payment: bool,
    /// Writes are restricted.
    pub writes: bool,
    /// Proof of work is required.
    pub pow: bool,
}

/// Derives the requirements from what the write probe saw and what NIP-11 claims.
///
/// The relay's own `OK` message wins over its document: `auth-required:` (or an AUTH challenge
/// answered during the write) means auth, a message mentioning payment means payment,
/// `restricted:`/`blocked:` means restricted writes, `pow:` means proof of work. Any other
/// failure (a timeout, `rate-limited:`, `error:`) proves nothing and leaves the NIP-11 flags in
/// place: the original read every failed write as "restricted" (reference §10.1).
pub fn requirements(nip11: Option<&Nip11>, rtt: Option<&Rtt>) -> Requirements {
    let flag = |key: &str| {
        nip11
            .and_then(|n| n.limitation(key))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let min_pow = nip11
        .and_then(|n| n.limitation("min_pow_difficulty"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut r = Requirements {
        auth: flag("auth_required"),
        payment: flag("payment_required"),
        writes: flag("restricted_writes"),
        pow: min_pow > 0,
    };
    let Some(rtt) = rtt else {
        return r;
    };
    let logs = &rtt.outcome.logs;
    match logs.get("write_success").and_then(Value::as_bool) {
        Some(true) => {
            r.auth = rtt.auth_requested;
            r.payment = false;
            r.writes = false;
        }
        Some(false) => {
            let reason = logs
                .get("write_reason")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase();
            if reason.starts_with("auth-required:") || rtt.auth_requested {
                r.auth = true;
            }
            if reason.contains("pay") {
                r.payment = true;
            }
            if reason.starts_with("restricted:") || reason.starts_with("blocked:") {
                r.writes = true;
            }
            if reason.starts_with("pow:") {
                r.pow = true;
            }
        }
        None => {}
    }
    r
}

/// The relay types of the `T` tags (PascalCase, nips#1282).
pub fn relay_types(
    nip11: &Map<String, Value>,
    r: Requirements,
    rtt: Option<&Rtt>,
) -> Vec<&'static str> {
    let nips: Vec<i64> = nip11
        .get("supported_nips")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let mut types = Vec::new();
    for (nip, name) in [(50, "Search"), (29, "Community"), (95, "Blob")] {
        if nips.contains(&nip) {
            types.push(name);
        }
    }
    if r.payment {
        types.push("Paid");
    }
    let read_needs_auth = rtt
        .and_then(|rtt| rtt.outcome.logs.get("read_reason"))
        .and_then(Value::as_str)
        .is_some_and(|reason| reason.to_ascii_lowercase().contains("auth"));
    if read_needs_auth {
        types.push(if r.auth {
            "PrivateStorage"
        } else {
            "PrivateInbox"
        });
    } else if r.auth || r.writes || r.payment {
        types.push("PublicOutbox");
    } else {
        types.push("PublicInbox");
    }
    types
}

/// The 30166 `content`: the NIP-11 document as the relay served it, or `""`.
pub fn discovery_content(nip11: Option<&Nip11>) -> String {
    let Some(nip11) = nip11 else {
        return String::new();
    };
    match &nip11.raw {
        Some(raw) if raw.len() <= MAX_CONTENT_BYTES => raw.clone(),
        Some(_) => serde_json::to_string(&nip11.outcome.data)
            .ok()
            .filter(|parsed| parsed.len() <= MAX_CONTENT_BYTES)
            .unwrap_or_default(),
        None => String::new(),
    }
}

/// The tags of a relay's 30166, in a fixed order (golden-tested), bounded: no value longer
/// than [`MAX_TAG_VALUE_CHARS`] (the `d` tag excepted), at most [`MAX_TAGS_PER_NAME`] per name.
pub fn discovery_tags(relay: &Relay, checks: &RelayChecks<'_>) -> Vec<Tag> {
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    all_discovery_tags(relay, checks)
        .into_iter()
        .enumerate()
        .filter(|(i, tag)| {
            *i == 0
                || tag
                    .as_slice()
                    .iter()
                    .all(|v| v.chars().count() <= MAX_TAG_VALUE_CHARS)
        })
        .filter(|(_, tag)| {
            let count = counts.entry(tag.kind().to_string()).or_default();
            *count += 1;
            *count <= MAX_TAGS_PER_NAME
        })
        .map(|(_, tag)| tag)
        .collect()
}

fn all_discovery_tags(relay: &Relay, checks: &RelayChecks<'_>) -> Vec<Tag> {
    let mut tags = vec![
        Tag::identifier(relay.url()),
        tag("n", &[relay.network().as_str()]),
    ];
    let rtt = checks.rtt.map(|r| &r.outcome);
    for phase in ["open", "read", "write"] {
        if let Some(ms) = data_scalar(rtt, &format!("rtt_{phase}")) {
            tags.push(tag(&format!("rtt-{phase}"), &[&ms]));
        }
    }
    // SSL (extension).
    if let Some(valid) = checks
        .ssl
        .and_then(|s| s.data.get("ssl_valid"))
        .and_then(Value::as_bool)
    {
        tags.push(tag("ssl", &[if valid { "valid" } else { "!valid" }]));
    }
    if let Some(expires) = data_scalar(checks.ssl, "ssl_expires") {
        tags.push(tag("ssl-expires", &[&expires]));
    }
    if let Some(issuer) = data_str(checks.ssl, "ssl_issuer") {
        tags.push(tag("ssl-issuer", &[issuer]));
    }
    // Net (extension).
    if let Some(ip) = data_str(checks.net, "net_ip") {
        tags.push(tag("net-ip", &[ip]));
    }
    if let Some(ip) = data_str(checks.net, "net_ipv6") {
        tags.push(tag("net-ipv6", &[ip]));
    }
    if let Some(asn) = data_scalar(checks.net, "net_asn") {
        tags.push(tag("net-asn", &[&asn]));
        tags.push(label(&asn, "IANA-asn"));
    }
    if let Some(org) = data_str(checks.net, "net_asn_org") {
        tags.push(tag("net-asn-org", &[org]));
        tags.push(label(org, "IANA-asnOrg"));
    }
    // Geo: `g` is NIP-66; the rest are extensions.
    if let Some(hash) = data_str(checks.geo, "geo_hash") {
        tags.push(tag("g", &[hash]));
    }
    if let Some(country) = data_str(checks.geo, "geo_country") {
        tags.push(tag("geo-country", &[country]));
        tags.push(label(country, "ISO-3166-1"));
    }
    if let Some(city) = data_str(checks.geo, "geo_city") {
        tags.push(tag("geo-city", &[city]));
        tags.push(label(city, "nip66.label.city"));
    }
    for (key, name) in [("geo_lat", "geo-lat"), ("geo_lon", "geo-lon")] {
        if let Some(value) = data_scalar(checks.geo, key) {
            tags.push(tag(name, &[&value]));
        }
    }
    if let Some(tz) = data_str(checks.geo, "geo_tz") {
        tags.push(tag("geo-tz", &[tz]));
        tags.push(label(tz, "IANA-tz"));
    }
    // DNS (extension).
    if let Some(ip) = first_of(checks.dns, "dns_ips") {
        tags.push(tag("dns-ip", &[&ip]));
    }
    if let Some(ip) = first_of(checks.dns, "dns_ips_v6") {
        tags.push(tag("dns-ip6", &[&ip]));
    }
    if let Some(cname) = data_str(checks.dns, "dns_cname") {
        tags.push(tag("dns-cname", &[cname]));
    }
    if let Some(ttl) = data_scalar(checks.dns, "dns_ttl") {
        tags.push(tag("dns-ttl", &[&ttl]));
    }
    // HTTP (extension).
    if let Some(server) = data_str(checks.http, "http_server") {
        tags.push(tag("http-server", &[server]));
    }
    if let Some(powered) = data_str(checks.http, "http_powered_by") {
        tags.push(tag("http-powered-by", &[powered]));
    }
    // What the document and the write probe say.
    let document = checks
        .nip11
        .filter(|n| n.outcome.succeeded())
        .map(|n| &n.outcome.data);
    let wrote = checks
        .rtt
        .and_then(|r| r.outcome.logs.get("write_success"))
        .and_then(Value::as_bool);
    if let Some(document) = document {
        nip11_tags(document, &mut tags);
    }
    if document.is_some() || wrote.is_some() {
        let r = requirements(checks.nip11.filter(|n| n.outcome.succeeded()), checks.rtt);
        for (flag, name) in [
            (r.auth, "auth"),
            (r.payment, "payment"),
            (r.writes, "writes"),
            (r.pow, "pow"),
        ] {
            let value = if flag {
                name.to_owned()
            } else {
                format!("!{name}")
            };
            tags.push(tag("R", &[&value]));
        }
        if wrote == Some(true) {
            tags.push(tag("k", &[&PROBE_KIND.to_string()]));
        }
        if let Some(document) = document {
            for kind in never_stored_kinds(document) {
                tags.push(tag("k", &[&format!("!{kind}")]));
            }
            for relay_type in relay_types(document, r, checks.rtt) {
                tags.push(tag("T", &[relay_type]));
            }
            if let Some(attributes) = document.get("attributes").and_then(Value::as_array) {
                for attribute in attributes.iter().filter_map(Value::as_str) {
                    tags.push(tag("W", &[attribute]));
                }
            }
        }
    }
    tags
}

/// `N`, `t` and the language labels of a NIP-11 document.
fn nip11_tags(document: &Map<String, Value>, tags: &mut Vec<Tag>) {
    if let Some(nips) = document.get("supported_nips").and_then(Value::as_array) {
        for nip in nips.iter().filter_map(Value::as_i64) {
            tags.push(tag("N", &[&nip.to_string()]));
        }
    }
    if let Some(topics) = document.get("tags").and_then(Value::as_array) {
        for topic in topics.iter().filter_map(Value::as_str) {
            tags.push(tag("t", &[topic]));
        }
    }
    if let Some(languages) = document.get("language_tags").and_then(Value::as_array) {
        let languages: Vec<&str> = languages.iter().filter_map(Value::as_str).collect();
        if !languages.contains(&"*") {
            let mut seen: Vec<String> = Vec::new();
            for language in languages {
                let primary = language
                    .split('-')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if primary.len() == 2
                    && primary.chars().all(|c| c.is_ascii_alphabetic())
                    && !seen.contains(&primary)
                {
                    tags.push(label(&primary, "ISO-639-1"));
                    seen.push(primary);
                }
            }
        }
    }
}

/// Single kinds a relay's `retention` says it never stores (`time: 0`).
fn never_stored_kinds(document: &Map<String, Value>) -> Vec<i64> {
    let mut kinds = Vec::new();
    let Some(entries) = document.get("retention").and_then(Value::as_array) else {
        return kinds;
    };
    for entry in entries {
        if entry.get("time").and_then(Value::as_i64) != Some(0) {
            continue;
        }
        if let Some(list) = entry.get("kinds").and_then(Value::as_array) {
            kinds.extend(list.iter().filter_map(Value::as_i64));
        }
    }
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

/// A relay's 30166, unsigned.
pub fn relay_discovery(relay: &Relay, checks: &RelayChecks<'_>) -> EventBuilder {
    EventBuilder::new(Kind::from(RELAY_DISCOVERY), discovery_content(checks.nip11))
        .tags(discovery_tags(relay, checks))
}

/// The checks a monitor announces, each with the timeout it applies.
#[derive(Debug, Clone, Default)]
pub struct Announcement {
    /// Seconds between checks of one relay (`discovery.interval`).
    pub frequency: u64,
    /// The monitor's geohash, if configured.
    pub geohash: Option<String>,
    /// The networks checked, in order.
    pub networks: Vec<NetworkType>,
    /// Milliseconds of the timeout of each check.
    pub timeout_ms: u64,
    /// RTT included (announces `open`, `read`, `write` and `auth`).
    pub rtt: bool,
    /// NIP-11 included.
    pub nip11: bool,
    /// DNS included.
    pub dns: bool,
    /// Geo included.
    pub geo: bool,
}

/// The tags of the 10166: `frequency`, `g`, the networks, then `timeout` and `c` per check with
/// NIP-66's check names (`open`, `read`, `write`, `auth`, `nip11`, `dns`, `geo`). SSL, Net and
/// HTTP have no NIP-66 check name; they appear only as extension tags of the 30166 events.
pub fn announcement_tags(a: &Announcement) -> Vec<Tag> {
    let mut tags = vec![tag("frequency", &[&a.frequency.to_string()])];
    if let Some(geohash) = &a.geohash {
        tags.push(tag("g", &[geohash]));
    }
    for network in &a.networks {
        tags.push(tag("n", &[network.as_str()]));
    }
    let ms = a.timeout_ms.to_string();
    let mut checks: Vec<&str> = Vec::new();
    if a.rtt {
        checks.extend(["open", "read", "write", "auth"]);
    }
    if a.nip11 {
        checks.push("nip11");
    }
    if a.dns {
        checks.push("dns");
    }
    if a.geo {
        checks.push("geo");
    }
    for check in checks {
        tags.push(tag("timeout", &[check, &ms]));
        tags.push(tag("c", &[check]));
    }
    tags
}

/// The monitor's 10166, unsigned.
pub fn announcement(a: &Announcement) -> EventBuilder {
    EventBuilder::new(Kind::from(MONITOR_ANNOUNCEMENT), "").tags(announcement_tags(a))
}

/// The profile fields of the kind 0 (empty ones are left out).
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// `name`.
    pub name: Option<String>,
    /// `about`.
    pub about: Option<String>,
    /// `picture`.
    pub picture: Option<String>,
    /// `nip05`.
    pub nip05: Option<String>,
    /// `website`.
    pub website: Option<String>,
    /// `banner`.
    pub banner: Option<String>,
    /// `lud16`.
    pub lud16: Option<String>,
}

/// The kind 0 content: a JSON object of the non-empty fields, in this order (the original's
/// `json.dumps` of an ordered dict).
pub fn profile_content(p: &Profile) -> String {
    let fields: Vec<String> = [
        ("name", &p.name),
        ("about", &p.about),
        ("picture", &p.picture),
        ("nip05", &p.nip05),
        ("website", &p.website),
        ("banner", &p.banner),
        ("lud16", &p.lud16),
    ]
    .into_iter()
    .filter_map(|(key, value)| {
        let value = value.as_deref().filter(|v| !v.is_empty())?;
        Some(format!("{}:{}", Value::from(key), Value::from(value)))
    })
    .collect();
    format!("{{{}}}", fields.join(","))
}

/// The monitor's kind 0, unsigned.
pub fn profile(p: &Profile) -> EventBuilder {
    EventBuilder::new(Kind::Metadata, profile_content(p))
}

/// The monitor's kind 10002: `["r", url, "write"]` per publishing relay.
pub fn relay_list(relays: &[String]) -> EventBuilder {
    EventBuilder::new(Kind::RelayList, "").tags(relays.iter().map(|url| tag("r", &[url, "write"])))
}

#[cfg(test)]
mod tests;
