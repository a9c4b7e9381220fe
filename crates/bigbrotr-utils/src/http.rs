//! The HTTP client factory shared by the finder (API sources) and the monitor (NIP-11): reqwest
//! with rustls, the network's SOCKS5 proxy for overlays (host names resolved by the proxy), connect
//! and total timeouts, bounded redirects, an opt-in for invalid certificates, and bodies read with
//! a hard size limit.

use std::net::SocketAddr;
use std::time::Duration;

use bigbrotr_models::relay::NetworkType;
use reqwest::header::HeaderMap;

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
        Self::Request(message)
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
    /// Static `host → address` overrides consulted before DNS (like curl's `--resolve`).
    pub resolve: Vec<(String, SocketAddr)>,
    /// Extra trusted root certificates (DER) besides the platform's defaults.
    pub extra_roots: Vec<Vec<u8>>,
    /// Follow redirects only to the same host (NIP-11: a relay's document may move within its
    /// host, and must not send the monitor to other hosts or internal services).
    pub same_host_redirects: bool,
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
        }
    }
}

/// Builds a client for requests to hosts of `network`: through the network's proxy when it has
/// one (required for overlays), directly otherwise. Environment proxy variables are ignored.
pub fn client(
    network: NetworkType,
    networks: &NetworksConfig,
    options: &HttpOptions,
) -> Result<reqwest::Client, HttpError> {
    let proxy = networks.proxy_for(network)?;
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(options.timeout)
        .connect_timeout(options.connect_timeout)
        .redirect(redirect_policy(options))
        .pool_max_idle_per_host(0)
        .no_proxy();
    for (host, address) in &options.resolve {
        builder = builder.resolve(host, *address);
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

fn redirect_policy(options: &HttpOptions) -> reqwest::redirect::Policy {
    let max = options.max_redirects;
    if !options.same_host_redirects {
        return reqwest::redirect::Policy::limited(max);
    }
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            return attempt.error(format!("too many redirects (more than {max})"));
        }
        let origin = attempt
            .previous()
            .first()
            .and_then(|u| u.host_str().map(str::to_owned));
        if origin.as_deref() != attempt.url().host_str() {
            let target = attempt.url().to_string();
            return attempt.error(format!("redirect to another host refused: {target}"));
        }
        attempt.follow()
    })
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
