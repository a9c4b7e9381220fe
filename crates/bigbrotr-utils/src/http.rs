//! The HTTP client factory shared by the finder (API sources) and the monitor (NIP-11): reqwest
//! with rustls, the network's SOCKS5 proxy for overlays (host names resolved by the proxy), direct
//! connections resolved under the private-address rule of [`crate::dial`], connect and total
//! timeouts, bounded redirects (same origin only for NIP-11), an opt-in for invalid certificates,
//! and bodies read with a hard size limit.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bigbrotr_models::relay::{NetworkType, is_local_address};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderMap;

use crate::dial;
use crate::network::{NetworkError, NetworksConfig};

/// The `User-Agent` sent with every request.
pub const USER_AGENT: &str = concat!("bigbrotr-rs/", env!("CARGO_PKG_VERSION"));

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The network cannot be used (disabled, or an overlay without a proxy).
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// Building the client or sending the request failed (connect, TLS, timeout, redirects).
    #[error("{0}")]
    Request(String),
    /// The TLS handshake rejected the server's certificate (rustls' typed error in the cause
    /// chain, see [`crate::relay::is_certificate_error`]); the message is the whole chain, as
    /// for [`HttpError::Request`].
    #[error("{0}")]
    Certificate(String),
    /// The body is larger than allowed.
    #[error("Response body too large: >{limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl HttpError {
    fn request(error: reqwest::Error) -> Self {
        // The whole source chain: reqwest's own message hides the TLS or I/O cause.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        if crate::relay::is_certificate_error(&error) {
            Self::Certificate(message)
        } else {
            Self::Request(message)
        }
    }
}

/// How a client behaves.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Deadline for the whole request, body included.
    pub timeout: Duration,
    /// Deadline for the TCP (and proxy) connection.
    pub connect_timeout: Duration,
    /// Accept invalid or self-signed certificates on clearnet.
    pub allow_insecure: bool,
    /// Redirects followed at most.
    pub max_redirects: usize,
    /// Static `host → address` overrides consulted before DNS (like curl's `--resolve`); a host
    /// given several times has every address, in order. They obey the private-address rule like
    /// resolved addresses.
    pub resolve: Vec<(String, SocketAddr)>,
    /// Extra trusted root certificates (DER) besides the platform's defaults.
    pub extra_roots: Vec<Vec<u8>>,
    /// Follow redirects only within the same origin — scheme, host and port (NIP-11: a relay's
    /// document may move within its origin, and must not send the monitor to other hosts, other
    /// services of the same host or internal services).
    pub same_host_redirects: bool,
    /// The URL is the operator's own (a configured API source or download), not one a relay
    /// gave: its host may resolve to a private address whatever `networks.clearnet.allow_private`
    /// says.
    pub operator_url: bool,
}

impl HttpOptions {
    /// Options with one timeout for everything, verification on, and 5 redirects.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            connect_timeout: timeout,
            allow_insecure: false,
            max_redirects: 5,
            resolve: Vec::new(),
            extra_roots: Vec::new(),
            same_host_redirects: false,
            operator_url: false,
        }
    }
}

/// Builds a client for requests to hosts of `network`: through the network's proxy when it has
/// one (required for overlays), directly otherwise. Environment proxy variables are ignored.
///
/// A direct client resolves every host name (redirect targets included) through
/// [`PolicyResolver`]: the overrides, then the system resolver, and only global addresses unless
/// `networks.clearnet.allow_private` or [`HttpOptions::operator_url`]. A proxied client hands
/// names to the proxy (the proxy's own address is the operator's and is not checked).
pub fn client(
    network: NetworkType,
    networks: &NetworksConfig,
    options: &HttpOptions,
) -> Result<reqwest::Client, HttpError> {
    let proxy = networks.proxy_for(network)?;
    let allow_private = networks.allow_private() || options.operator_url;
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(options.timeout)
        .connect_timeout(options.connect_timeout)
        .redirect(redirect_policy(options, allow_private || proxy.is_some()))
        .pool_max_idle_per_host(0)
        .no_proxy();
    if proxy.is_none() {
        builder = builder.dns_resolver(Arc::new(PolicyResolver {
            overrides: dial::overrides(&options.resolve),
            allow_private,
        }));
    }
    for der in &options.extra_roots {
        let certificate = reqwest::Certificate::from_der(der).map_err(HttpError::request)?;
        builder = builder.add_root_certificate(certificate);
    }
    builder = match proxy {
        Some(proxy) => {
            let proxy = reqwest::Proxy::all(proxy.remote_dns_url()).map_err(HttpError::request)?;
            // Overlay names are authenticated by the overlay itself; TLS there is rarely signed
            // by a public authority.
            builder.proxy(proxy).danger_accept_invalid_certs(true)
        }
        None => builder.danger_accept_invalid_certs(options.allow_insecure),
    };
    builder.build().map_err(HttpError::request)
}

/// reqwest's resolver for direct clients: [`dial::resolve`] (overrides first, their ports kept
/// unless the URL names one) and [`dial::admit`] (global addresses only unless `allow_private`).
///
/// The addresses go to hyper-util's `HttpConnector` in the resolver's order, and it, not
/// [`dial::connect`], opens the connection (reqwest takes no TCP connector of ours). It races the
/// families as RFC 6555 describes: the addresses of the first address's family one after another,
/// those of the other family one after another from 300 ms on, the first connection wins; the
/// connect timeout is shared evenly by the addresses of a family. So a black-holed IPv6 (or IPv4)
/// address costs 300 ms when the other family works, while a black-holed address followed by a
/// working one of the same family costs its share of the connect timeout (half of it for two),
/// not the whole budget.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    overrides: dial::Overrides,
    allow_private: bool,
}

impl PolicyResolver {
    /// A resolver with `overrides`, admitting private addresses when `allow_private`.
    pub fn new(overrides: dial::Overrides, allow_private: bool) -> Self {
        Self {
            overrides,
            allow_private,
        }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let host = name.as_str();
            // Port 0: hyper puts the URL's port (or the scheme's) in its place.
            let addresses = dial::resolve(host, 0, &resolver.overrides).await?;
            let addresses = dial::admit(host, addresses, resolver.allow_private)?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// The origin of a URL: scheme, host and port (the scheme's default when absent).
fn origin(url: &url::Url) -> (String, Option<String>, Option<u16>) {
    (
        url.scheme().to_owned(),
        url.host_str().map(str::to_ascii_lowercase),
        url.port_or_known_default(),
    )
}

fn redirect_policy(options: &HttpOptions, allow_private: bool) -> reqwest::redirect::Policy {
    let max = options.max_redirects;
    let same_origin = options.same_host_redirects;
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            return attempt.error(format!("too many redirects (more than {max})"));
        }
        let first = attempt.previous().first();
        match redirect_refusal(first, attempt.url(), same_origin, allow_private) {
            Some(reason) => attempt.error(reason),
            None => attempt.follow(),
        }
    })
}

/// Why a redirect from a request that started at `first` to `target` is not followed: a literal
/// non-global address without `allow_private` (a name is checked by the resolver, a literal
/// never reaches it), or, with `same_origin`, another scheme, host or port.
pub fn redirect_refusal(
    first: Option<&url::Url>,
    target: &url::Url,
    same_origin: bool,
    allow_private: bool,
) -> Option<String> {
    let literal = target.host_str().and_then(|h| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
    });
    if !allow_private && literal.is_some_and(is_local_address) {
        return Some(format!(
            "redirect to a non-global address refused: {target} \
             (networks.clearnet.allow_private is off)"
        ));
    }
    if same_origin && first.map(origin) != Some(origin(target)) {
        return Some(format!(
            "redirect to another origin refused (scheme, host and port must stay): {target}"
        ));
    }
    None
}

/// A response whose body was read completely within the limit.
#[derive(Debug, Clone)]
pub struct BoundedResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, at most the limit.
    pub body: Vec<u8>,
}

impl BoundedResponse {
    /// The media type of `Content-Type`, lower-cased, without parameters.
    pub fn media_type(&self) -> Option<String> {
        let value = self
            .headers
            .get(reqwest::header::CONTENT_TYPE)?
            .to_str()
            .ok()?;
        Some(value.split(';').next()?.trim().to_ascii_lowercase())
    }
}

/// Sends `request` and reads the body, failing as soon as it exceeds `max_bytes` (announced by
/// `Content-Length` or counted while streaming), so a hostile server cannot make us buffer more.
pub async fn send_bounded(
    request: reqwest::RequestBuilder,
    max_bytes: usize,
) -> Result<BoundedResponse, HttpError> {
    let mut response = request.send().await.map_err(HttpError::request)?;
    if response
        .content_length()
        .is_some_and(|length| length > max_bytes as u64)
    {
        return Err(HttpError::TooLarge { limit: max_bytes });
    }
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(HttpError::request)? {
        if body.len() + chunk.len() > max_bytes {
            return Err(HttpError::TooLarge { limit: max_bytes });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(BoundedResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests;
