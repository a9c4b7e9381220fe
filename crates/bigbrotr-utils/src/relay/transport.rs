//! The WebSocket transport under every relay connection: host resolution (with optional
//! static overrides, like curl's `--resolve`) and the private-address rule of [`crate::dial`],
//! TCP directly or through a SOCKS5 proxy that resolves the name itself, TLS verified against
//! Mozilla's roots (plus any extra anchors) or, only when asked, with certificate checks off, and
//! a bounded WebSocket frame size.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_wsocket::{ConnectionMode, Message, WebSocket};
use futures_util::{Sink, SinkExt, StreamExt, TryStreamExt};
use nostr_sdk::Url;
use nostr_sdk::prelude::transport::error::TransportError;
use nostr_sdk::prelude::transport::websocket::{
    WebSocketSink, WebSocketStream, WebSocketTransport,
};
use nostr_sdk::util::BoxedFuture;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::dial;

use super::session::MAX_AUTH_PER_SESSION;

/// Largest WebSocket message accepted from a relay (the pool's own message limit is 5 MB; this
/// is the frame-level bound below it).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// How certificates are checked.
#[derive(Clone)]
pub(crate) enum TlsMode {
    /// Mozilla's roots plus the extra anchors.
    Verified(Arc<ClientConfig>),
    /// No certificate check (signatures are still checked): `allow_insecure` only.
    Insecure(Arc<ClientConfig>),
}

impl fmt::Debug for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Verified(_) => "Verified",
            TlsMode::Insecure(_) => "Insecure",
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsMode {
    /// Verification against Mozilla's roots and `extra_roots`.
    pub(crate) fn verified(extra_roots: &[CertificateDer<'static>]) -> Result<Self, rustls::Error> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for root in extra_roots {
            roots.add(root.clone())?;
        }
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsMode::Verified(Arc::new(config)))
    }

    /// No certificate verification.
    pub(crate) fn insecure() -> Result<Self, rustls::Error> {
        let provider = provider();
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(provider)))
            .with_no_client_auth();
        Ok(TlsMode::Insecure(Arc::new(config)))
    }

    fn config(&self) -> Arc<ClientConfig> {
        match self {
            TlsMode::Verified(c) | TlsMode::Insecure(c) => c.clone(),
        }
    }
}

/// Accepts any certificate chain but still checks the handshake signatures.
#[derive(Debug)]
struct NoCertificateCheck(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A WebSocket over plain TCP or TLS, as the session reads it.
pub(crate) type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The transport handed to nostr-sdk's client.
#[derive(Debug, Clone)]
pub(crate) struct RelayTransport {
    pub(crate) tls: TlsMode,
    pub(crate) resolve: dial::Overrides,
    /// Direct connections may go to addresses outside the global Internet.
    pub(crate) allow_private: bool,
}

/// A transport failure with its cause chain flattened into the message, and whether the TLS
/// handshake rejected the peer's certificate (decided on the typed error before it was
/// flattened, see [`is_certificate_error`]).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct ConnectFailure {
    message: String,
    certificate: bool,
}

fn failure(context: &str, error: impl fmt::Display) -> TransportError {
    TransportError::backend(ConnectFailure {
        message: format!("{context}: {error}"),
        certificate: false,
    })
}

/// A failure of a step that may run a TLS handshake: the message, and whether `error` is a
/// rejected certificate.
fn tls_failure(context: &str, error: &(dyn std::error::Error + 'static)) -> TransportError {
    TransportError::backend(ConnectFailure {
        message: format!("{context}: {}", error_chain(error)),
        certificate: is_certificate_error(error),
    })
}

/// Whether `error` or one of its causes is rustls' [`rustls::Error::InvalidCertificate`]
/// (unknown issuer, expired, wrong name, bad signature, ...), the only failure a retry without
/// verification can get past. tokio-rustls hands it over inside an [`std::io::Error`], which
/// hides it from `source()`, so I/O errors are opened. A handshake cut short, an alert, a
/// protocol error or a reset is not one, whatever its message says.
pub fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if matches!(
            error.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidCertificate(_))
        ) || error
            .downcast_ref::<ConnectFailure>()
            .is_some_and(|failure| failure.certificate)
        {
            return true;
        }
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && is_certificate_error(inner)
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// Whether a transport error (from [`RelayTransport`]) is a rejected certificate.
pub(crate) fn transport_certificate_error(error: &TransportError) -> bool {
    match error {
        TransportError::Backend(inner) => is_certificate_error(inner.as_ref()),
    }
}

impl RelayTransport {
    async fn tcp(&self, url: &Url, mode: &ConnectionMode) -> Result<TcpStream, TransportError> {
        let host = url
            .host_str()
            .ok_or_else(|| failure("connect", "URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = url
            .port_or_known_default()
            .ok_or_else(|| failure("connect", "URL has no port"))?;
        match mode {
            ConnectionMode::Direct => {
                let addresses = dial::resolve(host, port, &self.resolve)
                    .await
                    .map_err(|e| failure("dns", e))?;
                let addresses = dial::admit(host, addresses, self.allow_private)
                    .map_err(|e| failure("connect", e))?;
                dial::connect(&addresses)
                    .await
                    .map_err(|e| failure("tcp", e))
            }
            ConnectionMode::Proxy(proxy) => {
                // The proxy resolves the name (onion, I2P and Lokinet names only resolve there).
                let stream = tokio_socks::tcp::Socks5Stream::connect(*proxy, (host, port))
                    .await
                    .map_err(|e| failure("socks5", e))?;
                Ok(stream.into_inner())
            }
        }
    }

    async fn open(&self, url: &Url, mode: &ConnectionMode) -> Result<WebSocket, TransportError> {
        Ok(WebSocket::Tokio(self.open_stream(url, mode).await?.0))
    }

    /// A TLS handshake only (DNS or proxy, TCP, TLS), for certificate inspection; no time limit
    /// of its own.
    pub(crate) async fn tls_handshake(
        &self,
        url: &Url,
        mode: &ConnectionMode,
    ) -> Result<TlsPeer, TransportError> {
        let tcp = self.tcp(url, mode).await?;
        let host = url
            .host_str()
            .ok_or_else(|| failure("tls", "URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let name = ServerName::try_from(host).map_err(|e| failure("tls", e))?;
        let connector = tokio_rustls::TlsConnector::from(self.tls.config());
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| tls_failure("tls", &e))?;
        let (_, connection) = stream.get_ref();
        let peer = TlsPeer {
            certificates: connection
                .peer_certificates()
                .map(|chain| chain.iter().map(|c| c.to_vec()).collect())
                .unwrap_or_default(),
            protocol: connection.protocol_version().map(protocol_name),
            cipher_suite: connection
                .negotiated_cipher_suite()
                .map(|suite| cipher_suite_name(suite.suite())),
        };
        Ok(peer)
    }

    /// Opens the WebSocket (DNS or proxy, TCP, TLS, handshake) without a time limit of its own,
    /// with the headers of the handshake response that identify the server.
    pub(crate) async fn open_stream(
        &self,
        url: &Url,
        mode: &ConnectionMode,
    ) -> Result<(RawSocket, HandshakeHeaders), TransportError> {
        let tcp = self.tcp(url, mode).await?;
        let _ = tcp.set_nodelay(true);
        let connector = match url.scheme() {
            "wss" => Connector::Rustls(self.tls.config()),
            _ => Connector::Plain,
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let (socket, response) = Box::pin(tokio_tungstenite::client_async_tls_with_config(
            url.as_str(),
            tcp,
            Some(config),
            Some(connector),
        ))
        .await
        .map_err(|e| tls_failure("websocket", &e))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(MAX_HEADER_CHARS).collect::<String>())
                .filter(|v| !v.trim().is_empty())
        };
        let headers = HandshakeHeaders {
            server: header("server"),
            powered_by: header("x-powered-by"),
        };
        Ok((socket, headers))
    }
}

/// Longest handshake header value kept (a relay controls it).
const MAX_HEADER_CHARS: usize = 256;

/// The headers of a WebSocket handshake response that identify the server software.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeHeaders {
    /// `Server`.
    pub server: Option<String>,
    /// `X-Powered-By`.
    pub powered_by: Option<String>,
}

/// What a TLS handshake revealed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPeer {
    /// The certificate chain as sent, leaf first (DER).
    pub certificates: Vec<Vec<u8>>,
    /// The negotiated protocol, e.g. `TLSv1.3`.
    pub protocol: Option<String>,
    /// The negotiated cipher suite (IANA name, e.g. `TLS_AES_256_GCM_SHA384`).
    pub cipher_suite: Option<String>,
}

fn protocol_name(version: rustls::ProtocolVersion) -> String {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    }
}

/// rustls names TLS 1.3 suites `TLS13_*`; the IANA (and OpenSSL) name is `TLS_*`.
fn cipher_suite_name(suite: rustls::CipherSuite) -> String {
    let name = format!("{suite:?}");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// The error and its sources as one line (TLS details often hide in the sources).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl WebSocketTransport for RelayTransport {
    fn support_ping(&self) -> bool {
        true
    }

    fn connect<'a>(
        &'a self,
        url: &'a Url,
        mode: &'a ConnectionMode,
        timeout: Duration,
    ) -> BoxedFuture<'a, Result<(WebSocketSink, WebSocketStream), TransportError>> {
        Box::pin(async move {
            let socket = tokio::time::timeout(timeout, self.open(url, mode))
                .await
                .map_err(|_| failure("connect", "timed out"))??;
            let (tx, rx) = socket.split();
            let sink: WebSocketSink = Box::new(TransportSink(tx));
            // nostr-sdk answers every challenge it sees with a newly signed AUTH: it sees only
            // the first MAX_AUTH_PER_SESSION of a connection.
            let mut challenges = 0_usize;
            let stream: WebSocketStream = Box::pin(rx.map_err(TransportError::backend).try_filter(
                move |message| {
                    let keep = match message {
                        Message::Text(text) if is_auth_challenge(text) => {
                            challenges += 1;
                            challenges <= MAX_AUTH_PER_SESSION
                        }
                        _ => true,
                    };
                    std::future::ready(keep)
                },
            ));
            Ok((sink, stream))
        })
    }
}

/// Whether a relay's text message is a NIP-42 `AUTH` challenge, as a JSON parser reads its
/// first element (an escaped spelling such as `"\u0041UTH"` is parsed, anything else is read
/// from the first bytes).
pub(crate) fn is_auth_challenge(text: &str) -> bool {
    let Some(rest) = text
        .trim_start()
        .strip_prefix('[')
        .map(str::trim_start)
        .and_then(|rest| rest.strip_prefix('"'))
    else {
        return false;
    };
    match rest.find(['"', '\\']) {
        Some(end) if rest.as_bytes()[end] == b'"' => &rest[..end] == "AUTH",
        Some(_) => serde_json::from_str::<Vec<serde_json::Value>>(text)
            .ok()
            .and_then(|items| items.first().and_then(|v| v.as_str().map(|s| s == "AUTH")))
            .unwrap_or(false),
        None => false,
    }
}

/// The sink half with the transport's error type (a plain struct: `sink_map_err` can panic
/// inside nostr-sdk's pool, rust-nostr issue 984).
struct TransportSink(futures_util::stream::SplitSink<WebSocket, Message>);

impl Sink<Message> for TransportSink {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready_unpin(cx).map_err(TransportError::backend)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.0
            .start_send_unpin(item)
            .map_err(TransportError::backend)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_flush_unpin(cx).map_err(TransportError::backend)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_close_unpin(cx).map_err(TransportError::backend)
    }
}
