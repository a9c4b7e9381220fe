//! The NIP-11 check (`nip11_info`): GET the relay's information document over HTTP(S) with
//! `Accept: application/nostr+json`, a bounded body, bounded redirects, the content-type rule,
//! the network's proxy for overlays, and a tolerant parser that keeps the fields NIP-11 has since
//! removed (retention, relay_countries, language_tags, tags, posting_policy, privacy_policy) and
//! drops values of the wrong type. A document larger than [`INLINE_PARSE_BYTES`] is parsed on the
//! blocking pool, so a relay's 10 MiB body never holds an async worker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bigbrotr_models::relay::{NetworkType, Relay};
use bigbrotr_utils::http::{self, HttpError, HttpOptions};
use bigbrotr_utils::network::NetworksConfig;
use serde_json::{Map, Value};

use crate::CheckOutcome;

/// The media types a NIP-11 document may be served as.
const ACCEPTED_MEDIA_TYPES: [&str; 2] = ["application/nostr+json", "application/json"];

/// Top-level string fields kept (NIP-11 today plus the removed `privacy_policy` and
/// `posting_policy`).
const STRING_FIELDS: [&str; 13] = [
    "name",
    "description",
    "banner",
    "icon",
    "pubkey",
    "self",
    "contact",
    "software",
    "version",
    "privacy_policy",
    "terms_of_service",
    "posting_policy",
    "payments_url",
];

/// Top-level lists of strings kept (the removed `relay_countries`, `language_tags`, `tags`, and
/// the non-standard `attributes`).
const STRING_LIST_FIELDS: [&str; 4] = ["relay_countries", "language_tags", "tags", "attributes"];

/// Integer fields of `limitation`.
const LIMITATION_INTS: [&str; 10] = [
    "max_message_length",
    "max_subscriptions",
    "max_limit",
    "max_subid_length",
    "max_event_tags",
    "max_content_length",
    "min_pow_difficulty",
    "created_at_lower_limit",
    "created_at_upper_limit",
    "default_limit",
];

/// Boolean fields of `limitation`.
const LIMITATION_BOOLS: [&str; 3] = ["auth_required", "payment_required", "restricted_writes"];

/// Entries kept per list (a document is at most `max_size` bytes, but a relay controls it).
const MAX_LIST_ITEMS: usize = 1000;

/// Documents up to this size are parsed on the async worker (well under a millisecond); larger
/// ones on the blocking pool.
pub const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// How the NIP-11 check fetches.
#[derive(Debug, Clone)]
pub struct Nip11Options {
    /// Largest body accepted, in bytes (`nip11_info_max_size`).
    pub max_size: usize,
    /// Redirects followed at most.
    pub max_redirects: usize,
    /// Retry a clearnet relay whose certificate is rejected without verification.
    pub allow_insecure: bool,
    /// Static `host → address` overrides (tests and pinned deployments).
    pub resolve: Vec<(String, SocketAddr)>,
    /// Extra trusted root certificates (DER).
    pub extra_roots: Vec<Vec<u8>>,
}

impl Default for Nip11Options {
    fn default() -> Self {
        Self {
            max_size: 1_048_576,
            max_redirects: 3,
            allow_insecure: false,
            resolve: Vec::new(),
            extra_roots: Vec::new(),
        }
    }
}

/// The NIP-11 check's result: the stored outcome and the document exactly as served.
#[derive(Debug, Clone, Default)]
pub struct Nip11 {
    /// `data` = the parsed document, `logs` = success or the reason.
    pub outcome: CheckOutcome,
    /// The body as the relay served it (only when the check succeeded).
    pub raw: Option<String>,
}

impl Nip11 {
    fn failure(reason: impl Into<String>) -> Self {
        Self {
            outcome: CheckOutcome::failure(reason),
            raw: None,
        }
    }

    /// `limitation.<key>` of the parsed document.
    pub fn limitation(&self, key: &str) -> Option<&Value> {
        self.outcome.data.get("limitation")?.get(key)
    }
}

/// Fetches NIP-11 documents; build one per cycle and share it (clones share the HTTP clients,
/// one per network and certificate mode, built on first use).
#[derive(Debug, Clone)]
pub struct Nip11Fetcher {
    networks: NetworksConfig,
    options: Nip11Options,
    clients: Arc<Mutex<HashMap<(NetworkType, bool), reqwest::Client>>>,
}

impl Nip11Fetcher {
    /// A fetcher for `networks` (the proxy of each overlay) with `options`.
    pub fn new(networks: NetworksConfig, options: Nip11Options) -> Self {
        Self {
            networks,
            options,
            clients: Arc::default(),
        }
    }

    /// The client of `network` (connect timeout: the network's; each request sets its own
    /// total timeout).
    fn client(&self, network: NetworkType, insecure: bool) -> Result<reqwest::Client, HttpError> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(&(network, insecure)) {
            return Ok(client.clone());
        }
        let timeout = self.networks.enabled_config(network)?.timeout();
        let options = HttpOptions {
            timeout,
            connect_timeout: timeout,
            allow_insecure: insecure,
            max_redirects: self.options.max_redirects,
            resolve: self.options.resolve.clone(),
            extra_roots: self.options.extra_roots.clone(),
            same_host_redirects: true,
            operator_url: false,
        };
        let client = http::client(network, &self.networks, &options)?;
        clients.insert((network, insecure), client.clone());
        Ok(client)
    }

    /// Fetches and parses the document of `relay`; everything (connect, TLS, redirects, body)
    /// within `timeout`.
    pub async fn fetch(&self, relay: &Relay, timeout: Duration) -> Nip11 {
        let Some(url) = document_url(relay.url()) else {
            return Nip11::failure(format!("cannot derive an HTTP URL from {}", relay.url()));
        };
        let attempt = |insecure: bool| {
            let url = url.clone();
            async move {
                let client = self.client(relay.network(), insecure)?;
                let request = client
                    .get(url)
                    .timeout(timeout)
                    .header(reqwest::header::ACCEPT, "application/nostr+json");
                http::send_bounded(request, self.options.max_size).await
            }
        };
        let response = match attempt(false).await {
            Err(HttpError::Certificate(text)) if relay.network() == NetworkType::Clearnet => {
                if !self.options.allow_insecure {
                    return Nip11::failure(format!(
                        "TLS certificate rejected (allow_insecure is off): {text}"
                    ));
                }
                attempt(true).await
            }
            other => other,
        };
        let response = match response {
            Ok(response) => response,
            Err(error) => return Nip11::failure(error.to_string()),
        };
        if response.status != 200 {
            return Nip11::failure(format!("HTTP {}", response.status));
        }
        match response.media_type() {
            Some(media) if ACCEPTED_MEDIA_TYPES.contains(&media.as_str()) => {}
            Some(media) => return Nip11::failure(format!("Invalid Content-Type: {media}")),
            None => return Nip11::failure("Invalid Content-Type: none"),
        }
        match parse_body(response.body).await {
            Ok((data, text)) => Nip11 {
                outcome: CheckOutcome::success(data),
                raw: Some(text),
            },
            Err(reason) => Nip11::failure(reason),
        }
    }
}

/// A response body as text and its parsed document ([`parse_document`]), on the blocking pool
/// when the body is larger than [`INLINE_PARSE_BYTES`].
pub async fn parse_body(body: Vec<u8>) -> Result<(Map<String, Value>, String), String> {
    fn parse(body: Vec<u8>) -> Result<(Map<String, Value>, String), String> {
        let text = String::from_utf8(body)
            .map_err(|_| "Invalid JSON: the body is not UTF-8".to_owned())?;
        let data = parse_document(&text)?;
        Ok((data, text))
    }
    if body.len() <= INLINE_PARSE_BYTES {
        return parse(body);
    }
    tokio::task::spawn_blocking(move || parse(body))
        .await
        // The reason names no task: the same failure stores the same document.
        .unwrap_or_else(|_| Err("Invalid JSON: the parser failed".to_owned()))
}

/// The HTTP URL of a relay's document: `https` for `wss`, `http` for `ws`, same host, port and
/// path.
pub fn document_url(relay_url: &str) -> Option<url::Url> {
    let mut url = url::Url::parse(relay_url).ok()?;
    let scheme = match url.scheme() {
        "wss" => "https",
        "ws" => "http",
        _ => return None,
    };
    let port = url.port();
    url.set_scheme(scheme).ok()?;
    // A port that is the default of the old scheme stays explicit only if it differs from the
    // new scheme's default (wss:443 → https:443 disappears by itself).
    url.set_port(port).ok()?;
    Some(url)
}

/// Parses a document tolerantly: the body must be a JSON object; known fields of the wrong type
/// are dropped, unknown fields are ignored.
pub fn parse_document(text: &str) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("Invalid JSON: {e}"))?;
    let Value::Object(document) = value else {
        return Err("Invalid JSON: the document is not an object".to_owned());
    };
    let mut data = Map::new();
    for key in STRING_FIELDS {
        if let Some(Value::String(text)) = document.get(key) {
            data.insert(key.to_owned(), Value::String(text.clone()));
        }
    }
    if let Some(Value::Array(items)) = document.get("supported_nips") {
        let mut nips: Vec<i64> = items.iter().filter_map(strict_int).collect();
        nips.sort_unstable();
        nips.dedup();
        nips.truncate(MAX_LIST_ITEMS);
        data.insert("supported_nips".to_owned(), Value::from(nips));
    }
    for key in STRING_LIST_FIELDS {
        if let Some(Value::Array(items)) = document.get(key) {
            let strings: Vec<Value> = items
                .iter()
                .filter(|v| v.is_string())
                .take(MAX_LIST_ITEMS)
                .cloned()
                .collect();
            data.insert(key.to_owned(), Value::Array(strings));
        }
    }
    if let Some(Value::Object(limitation)) = document.get("limitation") {
        let mut kept = Map::new();
        for key in LIMITATION_INTS {
            if let Some(n) = limitation.get(key).and_then(strict_int) {
                kept.insert(key.to_owned(), Value::from(n));
            }
        }
        for key in LIMITATION_BOOLS {
            if let Some(Value::Bool(flag)) = limitation.get(key) {
                kept.insert(key.to_owned(), Value::Bool(*flag));
            }
        }
        data.insert("limitation".to_owned(), Value::Object(kept));
    }
    if let Some(Value::Array(entries)) = document.get("retention") {
        let kept: Vec<Value> = entries
            .iter()
            .take(MAX_LIST_ITEMS)
            .filter_map(retention_entry)
            .collect();
        data.insert("retention".to_owned(), Value::Array(kept));
    }
    if let Some(Value::Object(fees)) = document.get("fees") {
        let mut kept = Map::new();
        for key in ["admission", "subscription", "publication"] {
            if let Some(Value::Array(entries)) = fees.get(key) {
                let entries: Vec<Value> = entries
                    .iter()
                    .take(MAX_LIST_ITEMS)
                    .filter_map(fee_entry)
                    .collect();
                kept.insert(key.to_owned(), Value::Array(entries));
            }
        }
        data.insert("fees".to_owned(), Value::Object(kept));
    }
    Ok(data)
}

/// An integer that is not a boolean and not a float (Python's `isinstance(v, int)` without
/// `bool`).
fn strict_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => n.as_i64(),
        _ => None,
    }
}

/// Integers of `kinds`: a kind or a `[from, to]` range.
fn kinds(value: &Value) -> Option<Value> {
    let Value::Array(items) = value else {
        return None;
    };
    let kept: Vec<Value> = items
        .iter()
        .take(MAX_LIST_ITEMS)
        .filter_map(|item| match item {
            Value::Array(range) if range.len() == 2 => {
                let from = strict_int(&range[0])?;
                let to = strict_int(&range[1])?;
                Some(Value::from(vec![from, to]))
            }
            other => strict_int(other).map(Value::from),
        })
        .collect();
    Some(Value::Array(kept))
}

fn retention_entry(value: &Value) -> Option<Value> {
    let Value::Object(entry) = value else {
        return None;
    };
    let mut kept = Map::new();
    if let Some(kinds) = entry.get("kinds").and_then(kinds) {
        kept.insert("kinds".to_owned(), kinds);
    }
    for key in ["time", "count"] {
        if let Some(n) = entry.get(key).and_then(strict_int) {
            kept.insert(key.to_owned(), Value::from(n));
        }
    }
    Some(Value::Object(kept))
}

fn fee_entry(value: &Value) -> Option<Value> {
    let Value::Object(entry) = value else {
        return None;
    };
    let mut kept = Map::new();
    for key in ["amount", "period"] {
        if let Some(n) = entry.get(key).and_then(strict_int) {
            kept.insert(key.to_owned(), Value::from(n));
        }
    }
    if let Some(Value::String(unit)) = entry.get("unit") {
        kept.insert("unit".to_owned(), Value::String(unit.clone()));
    }
    if let Some(kinds) = entry.get("kinds").and_then(kinds) {
        kept.insert("kinds".to_owned(), kinds);
    }
    Some(Value::Object(kept))
}

#[cfg(test)]
mod tests;
