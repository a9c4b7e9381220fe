//! The one relay connector used by every daemon that talks to relays: rust-nostr's client over
//! BigBrotr's transport, with the network's timeout, a SOCKS5 proxy for tor/i2p/loki (an overlay
//! relay without a proxy is an error, never a direct connection), clearnet TLS with the
//! certificate-error retry without verification only when `allow_insecure` is set, and NIP-42
//! AUTH answered automatically when keys are configured.
//!
//! All nostr-sdk calls of the project go through this module and [`probe`], so a later move to
//! nostr-sdk 0.45 stays small.

pub mod probe;
pub mod session;
mod transport;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bigbrotr_models::event::Event;
use bigbrotr_models::relay::{NetworkType, Relay};
use nostr_sdk::prelude::{
    Client, ClientOptions, ConnectionMode, Filter, Keys, Kind, RelayNotification, RelayOptions,
    RelayUrl, ReqExitPolicy, Timestamp,
};
use rustls::pki_types::CertificateDer;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::network::{NetworkError, NetworksConfig, ProxyUrl};
pub use session::{Published, Session};
pub use transport::{HandshakeHeaders, MAX_MESSAGE_BYTES, TlsPeer, is_certificate_error};
use transport::{RelayTransport, TlsMode, error_chain, transport_certificate_error};

use crate::dial;

/// Why a relay could not be reached. Every variant is an ordinary, recorded failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The network is disabled, or an overlay has no proxy.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The proxy host does not resolve.
    #[error("proxy {0} cannot be resolved: {1}")]
    ProxyResolve(String, String),
    /// The URL is not a relay URL nostr-sdk accepts.
    #[error("invalid relay URL {0}: {1}")]
    Url(String, String),
    /// The certificate was rejected and `allow_insecure` is off.
    #[error("TLS certificate rejected (allow_insecure is off): {0}")]
    Certificate(String),
    /// The connection failed (DNS, TCP, TLS, WebSocket handshake, proxy).
    #[error("connection failed: {0}")]
    Connect(String),
    /// No connection within the budget: the caller's budget (the network's timeout), never
    /// the time measured, so the same situation always gives the same reason.
    #[error("no connection within {0:?}")]
    Timeout(Duration),
}

/// Builds connections to relays; cheap to clone and shared by all the tasks of a daemon.
#[derive(Debug, Clone)]
pub struct Connector {
    networks: NetworksConfig,
    keys: Option<Keys>,
    allow_insecure: bool,
    verified: TlsMode,
    insecure: TlsMode,
    extra_roots: Vec<CertificateDer<'static>>,
    resolve: dial::Overrides,
}

impl Connector {
    /// A connector for the given networks, without keys and with certificate checks always on.
    pub fn new(networks: NetworksConfig) -> Result<Self, ConnectError> {
        let tls = |e: rustls::Error| ConnectError::Connect(format!("TLS set-up: {e}"));
        Ok(Self {
            networks,
            keys: None,
            allow_insecure: false,
            verified: TlsMode::verified(&[]).map_err(tls)?,
            insecure: TlsMode::insecure().map_err(tls)?,
            extra_roots: Vec::new(),
            resolve: dial::Overrides::default(),
        })
    }

    /// Answers NIP-42 AUTH challenges with these keys.
    pub fn with_keys(mut self, keys: Option<Keys>) -> Self {
        self.keys = keys;
        self
    }

    /// Retries a clearnet relay whose certificate is rejected once more without verification.
    pub fn allow_insecure(mut self, allow: bool) -> Self {
        self.allow_insecure = allow;
        self
    }

    /// Trusts one more root certificate (DER) besides Mozilla's.
    pub fn with_root_certificate(mut self, der: Vec<u8>) -> Result<Self, ConnectError> {
        self.extra_roots.push(CertificateDer::from(der));
        self.verified = TlsMode::verified(&self.extra_roots)
            .map_err(|e| ConnectError::Connect(format!("TLS set-up: {e}")))?;
        Ok(self)
    }

    /// Connects `host` to `addr` without DNS (like curl's `--resolve`), for direct connections;
    /// a host given several times has every address, tried in order. The addresses are subject
    /// to `networks.clearnet.allow_private` like resolved ones.
    pub fn resolve(mut self, host: &str, addr: SocketAddr) -> Self {
        Arc::make_mut(&mut self.resolve)
            .entry(host.to_ascii_lowercase())
            .or_default()
            .push(addr);
        self
    }

    /// The networks this connector serves.
    pub fn networks(&self) -> &NetworksConfig {
        &self.networks
    }

    /// Whether keys are configured.
    pub fn has_keys(&self) -> bool {
        self.keys.is_some()
    }

    /// The timeout of the relay's network (its connection budget).
    pub fn timeout(&self, network: NetworkType) -> Result<Duration, ConnectError> {
        Ok(self.networks.enabled_config(network)?.timeout())
    }

    /// Connects within the network's timeout.
    pub async fn connect(&self, relay: &Relay) -> Result<RelayConnection, ConnectError> {
        let timeout = self.timeout(relay.network())?;
        self.connect_within(relay, timeout).await
    }

    /// Connects within `budget` (DNS, proxy, TCP, TLS, the insecure retry and the WebSocket
    /// handshake all count).
    pub async fn connect_within(
        &self,
        relay: &Relay,
        budget: Duration,
    ) -> Result<RelayConnection, ConnectError> {
        let (mut connection, insecure) = self
            .with_tls_retry(relay, budget, |url, proxy, tls, deadline| {
                self.attempt(url, proxy, tls, deadline)
            })
            .await?;
        connection.insecure = insecure;
        Ok(connection)
    }

    /// Opens a lean reading [`Session`] within the network's timeout, with the same network,
    /// proxy, TLS and insecure-retry rules as [`Connector::connect`].
    pub async fn open_session(&self, relay: &Relay) -> Result<Session, ConnectError> {
        let budget = self.timeout(relay.network())?;
        self.open_session_within(relay, budget).await
    }

    /// Opens a session within `budget` instead of the network's timeout.
    pub async fn open_session_within(
        &self,
        relay: &Relay,
        budget: Duration,
    ) -> Result<Session, ConnectError> {
        let (mut session, insecure) = self
            .with_tls_retry(relay, budget, |url, proxy, tls, deadline| {
                self.attempt_session(url, proxy, tls, deadline)
            })
            .await?;
        session.set_insecure(insecure);
        Ok(session)
    }

    /// One TLS handshake with the relay's host and port within `budget` (DNS or proxy, TCP,
    /// TLS), with certificate verification (`verify`) or without, and what it revealed. A
    /// rejected certificate is [`ConnectError::Connect`] with the TLS error.
    pub async fn tls_handshake(
        &self,
        relay: &Relay,
        verify: bool,
        budget: Duration,
    ) -> Result<TlsPeer, ConnectError> {
        let deadline = Instant::now() + budget;
        let proxy = match self.networks.proxy_for(relay.network())? {
            Some(proxy) => Some(resolve_proxy(&proxy, budget).await?),
            None => None,
        };
        let tls = if verify {
            &self.verified
        } else {
            &self.insecure
        };
        let (transport, remaining) = self
            .transport_until(tls, deadline)
            .map_err(|e| e.with_budget(budget))?;
        let mode = proxy.map_or(ConnectionMode::Direct, ConnectionMode::Proxy);
        let target = nostr_sdk::Url::parse(relay.url())
            .map_err(|e| ConnectError::Url(relay.url().to_owned(), e.to_string()))?;
        match tokio::time::timeout(remaining, transport.tls_handshake(&target, &mode)).await {
            Ok(Ok(peer)) => Ok(peer),
            Ok(Err(error)) => Err(ConnectError::Connect(error_chain(&error))),
            Err(_) => Err(ConnectError::Timeout(budget)),
        }
    }

    /// Runs `attempt` with verified TLS and, for a clearnet certificate error with
    /// `allow_insecure`, once more without verification. Returns whether the retry was needed.
    /// A timeout reports `budget`.
    async fn with_tls_retry<'a, T, F, Fut>(
        &'a self,
        relay: &Relay,
        budget: Duration,
        attempt: F,
    ) -> Result<(T, bool), ConnectError>
    where
        F: Fn(RelayUrl, Option<SocketAddr>, &'a TlsMode, Instant) -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        self.try_with_tls_retry(relay, budget, attempt)
            .await
            .map_err(|e| e.with_budget(budget))
    }

    async fn try_with_tls_retry<'a, T, F, Fut>(
        &'a self,
        relay: &Relay,
        budget: Duration,
        attempt: F,
    ) -> Result<(T, bool), ConnectError>
    where
        F: Fn(RelayUrl, Option<SocketAddr>, &'a TlsMode, Instant) -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let deadline = Instant::now() + budget;
        let network = relay.network();
        let proxy = match self.networks.proxy_for(network)? {
            Some(proxy) => Some(resolve_proxy(&proxy, budget).await?),
            None => None,
        };
        let url = RelayUrl::parse(relay.url())
            .map_err(|e| ConnectError::Url(relay.url().to_owned(), e.to_string()))?;
        let first = attempt(url.clone(), proxy, &self.verified, deadline).await;
        match first {
            Err(AttemptError {
                error: ConnectError::Connect(text),
                certificate: true,
            }) if network == NetworkType::Clearnet => {
                if !self.allow_insecure {
                    return Err(ConnectError::Certificate(text));
                }
                tracing::debug!(relay = relay.url(), error = %text, "tls_retry_insecure");
                let value = attempt(url, proxy, &self.insecure, deadline)
                    .await
                    .map_err(|e| e.error)?;
                Ok((value, true))
            }
            other => other.map(|value| (value, false)).map_err(|e| e.error),
        }
    }

    /// The transport for one attempt and the time left before `deadline` (none left is a
    /// timeout).
    fn transport_until(
        &self,
        tls: &TlsMode,
        deadline: Instant,
    ) -> Result<(RelayTransport, Duration), ConnectError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(ConnectError::Timeout(Duration::ZERO));
        }
        let transport = RelayTransport {
            tls: tls.clone(),
            resolve: self.resolve.clone(),
            allow_private: self.networks.allow_private(),
        };
        Ok((transport, remaining))
    }

    async fn attempt_session(
        &self,
        url: RelayUrl,
        proxy: Option<SocketAddr>,
        tls: &TlsMode,
        deadline: Instant,
    ) -> Result<Session, AttemptError> {
        let (transport, remaining) = self.transport_until(tls, deadline)?;
        let mode = proxy.map_or(ConnectionMode::Direct, ConnectionMode::Proxy);
        let target = nostr_sdk::Url::parse(url.as_str())
            .map_err(|e| ConnectError::Url(url.to_string(), e.to_string()))?;
        match tokio::time::timeout(remaining, transport.open_stream(&target, &mode)).await {
            Ok(Ok((socket, headers))) => {
                Ok(Session::new(socket, url, self.keys.clone()).with_headers(headers))
            }
            Ok(Err(error)) => Err(AttemptError {
                certificate: transport_certificate_error(&error),
                error: ConnectError::Connect(error_chain(&error)),
            }),
            Err(_) => Err(ConnectError::Timeout(remaining).into()),
        }
    }

    async fn attempt(
        &self,
        url: RelayUrl,
        proxy: Option<SocketAddr>,
        tls: &TlsMode,
        deadline: Instant,
    ) -> Result<RelayConnection, AttemptError> {
        let (transport, remaining) = self.transport_until(tls, deadline)?;
        let options = ClientOptions::new()
            .automatic_authentication(self.keys.is_some())
            .verify_subscriptions(true);
        let mut builder = Client::builder()
            .websocket_transport(transport)
            .opts(options);
        if let Some(keys) = &self.keys {
            builder = builder.signer(keys.clone());
        }
        let client = builder.build();
        let mode = proxy.map_or(ConnectionMode::Direct, ConnectionMode::Proxy);
        let relay_options = RelayOptions::new()
            .connection_mode(mode)
            .reconnect(false)
            .verify_subscriptions(true);
        let connected = async {
            client
                .pool()
                .add_relay(url.clone(), relay_options)
                .await
                .map_err(|e| ConnectError::Url(url.to_string(), e.to_string()))?;
            let relay = client
                .relay(url.clone())
                .await
                .map_err(|e| ConnectError::Url(url.to_string(), e.to_string()))?;
            let notifications = relay.notifications();
            relay
                .try_connect(remaining)
                .await
                .map_err(|e| AttemptError {
                    certificate: matches!(
                        &e,
                        nostr_sdk::pool::relay::Error::Transport(error)
                            if transport_certificate_error(error)
                    ),
                    error: ConnectError::Connect(error_chain(&e)),
                })?;
            Ok::<_, AttemptError>((relay, notifications))
        };
        match tokio::time::timeout(remaining, connected).await {
            Ok(Ok((relay, notifications))) => Ok(RelayConnection {
                client,
                relay,
                notifications: Some(notifications),
                insecure: false,
            }),
            Ok(Err(error)) => {
                client.shutdown().await;
                Err(error)
            }
            Err(_) => {
                client.shutdown().await;
                Err(ConnectError::Timeout(remaining).into())
            }
        }
    }
}

/// A failed connection attempt, and whether its TLS handshake rejected the certificate (rustls'
/// typed error, see [`is_certificate_error`]): the one failure the `allow_insecure` retry is
/// for.
#[derive(Debug)]
struct AttemptError {
    error: ConnectError,
    certificate: bool,
}

impl From<ConnectError> for AttemptError {
    fn from(error: ConnectError) -> Self {
        Self {
            error,
            certificate: false,
        }
    }
}

impl ConnectError {
    /// A timeout reports the caller's `budget` (attempts see only the time left of it).
    fn with_budget(self, budget: Duration) -> Self {
        match self {
            ConnectError::Timeout(_) => ConnectError::Timeout(budget),
            other => other,
        }
    }
}

/// Resolves the proxy host once per connection (a container name like `tor` may move).
async fn resolve_proxy(proxy: &ProxyUrl, budget: Duration) -> Result<SocketAddr, ConnectError> {
    let name = format!("{}:{}", proxy.host(), proxy.port());
    let lookup = tokio::net::lookup_host((proxy.host(), proxy.port()));
    match tokio::time::timeout(budget, lookup).await {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .ok_or_else(|| ConnectError::ProxyResolve(name, "no address".to_owned())),
        Ok(Err(e)) => Err(ConnectError::ProxyResolve(name, e.to_string())),
        Err(_) => Err(ConnectError::ProxyResolve(name, "timed out".to_owned())),
    }
}

/// What a relay notification means to the holder of one live subscription.
#[derive(Debug)]
pub enum Notification {
    /// An event of the subscription (verified by nostr-sdk).
    Event(Box<nostr_sdk::Event>),
    /// Anything else (notices, other subscriptions, AUTH).
    Other,
    /// The subscription is gone: the connection dropped, the relay closed the subscription, or
    /// notifications were missed (lagged). Reconnect and subscribe again.
    Lost,
}

/// Classifies one notification for `subscription`.
pub fn classify(
    note: Result<RelayNotification, broadcast::error::RecvError>,
    subscription: &nostr_sdk::SubscriptionId,
) -> Notification {
    use nostr_sdk::prelude::{RelayMessage, RelayStatus};
    match note {
        Ok(RelayNotification::Event {
            subscription_id,
            event,
        }) if &subscription_id == subscription => Notification::Event(event),
        Ok(RelayNotification::RelayStatus { status }) => match status {
            RelayStatus::Disconnected | RelayStatus::Terminated | RelayStatus::Banned => {
                Notification::Lost
            }
            _ => Notification::Other,
        },
        Ok(RelayNotification::Message {
            message: RelayMessage::Closed {
                subscription_id, ..
            },
        }) if subscription_id.as_ref() == subscription => Notification::Lost,
        Ok(RelayNotification::Shutdown) | Err(_) => Notification::Lost,
        Ok(_) => Notification::Other,
    }
}

/// Events returned by [`RelayConnection::fetch_events`].
#[derive(Debug, Clone, Default)]
pub struct FetchedEvents {
    /// The events that passed every check.
    pub events: Vec<Event>,
    /// Events dropped by the archive's checks.
    pub rejected: usize,
}

/// An open connection to one relay; close it with [`RelayConnection::shutdown`].
#[derive(Debug)]
pub struct RelayConnection {
    client: Client,
    relay: nostr_sdk::Relay,
    notifications: Option<broadcast::Receiver<RelayNotification>>,
    insecure: bool,
}

impl RelayConnection {
    /// The nostr-sdk client (one relay).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The relay handle.
    pub fn relay(&self) -> &nostr_sdk::Relay {
        &self.relay
    }

    /// Whether the connection had to skip certificate verification.
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// The relay's notifications since before the connection opened (so an AUTH challenge sent
    /// right after the handshake is not missed). Taken once.
    pub fn take_notifications(&mut self) -> Option<broadcast::Receiver<RelayNotification>> {
        self.notifications.take()
    }

    /// Fetches stored events of `kinds` in `[since, until]`, at most `limit`, until EOSE or
    /// `timeout`. Events are signature-checked by nostr-sdk and must pass the archive's own
    /// checks ([`Event::from_nostr`]); the others are dropped and counted.
    pub async fn fetch_events(
        &self,
        kinds: &[u16],
        since: Option<i64>,
        until: Option<i64>,
        limit: usize,
        timeout: Duration,
    ) -> Result<FetchedEvents, ConnectError> {
        let mut filter = Filter::new()
            .kinds(kinds.iter().map(|k| Kind::from(*k)))
            .limit(limit);
        if let Some(since) = since {
            filter = filter.since(Timestamp::from(since.max(0) as u64));
        }
        if let Some(until) = until {
            filter = filter.until(Timestamp::from(until.max(0) as u64));
        }
        let events = self
            .relay
            .fetch_events(filter, timeout, ReqExitPolicy::ExitOnEOSE)
            .await
            .map_err(|e| ConnectError::Connect(error_chain(&e)))?;
        let mut fetched = FetchedEvents::default();
        for event in events.into_iter().take(limit) {
            match Event::from_nostr(&event) {
                Ok(event) => fetched.events.push(event),
                Err(_) => fetched.rejected += 1,
            }
        }
        Ok(fetched)
    }

    /// Opens a live subscription for `filter` (kept open: stored events, EOSE, then new ones);
    /// its events arrive through [`RelayConnection::take_notifications`], verified by nostr-sdk.
    pub async fn subscribe(
        &self,
        filter: Filter,
    ) -> Result<nostr_sdk::SubscriptionId, ConnectError> {
        self.relay
            .subscribe(filter, nostr_sdk::SubscribeOptions::default())
            .await
            .map_err(|e| ConnectError::Connect(error_chain(&e)))
    }

    /// The stored events matching `filter`, until EOSE or `timeout`, verified by nostr-sdk.
    pub async fn query(
        &self,
        filter: Filter,
        timeout: Duration,
    ) -> Result<Vec<nostr_sdk::Event>, ConnectError> {
        let events = self
            .relay
            .fetch_events(filter, timeout, ReqExitPolicy::ExitOnEOSE)
            .await
            .map_err(|e| ConnectError::Connect(error_chain(&e)))?;
        Ok(events.into_iter().collect())
    }

    /// Sends `event` and waits at most `timeout` for the relay's `OK`; a refusal is an error
    /// with the relay's message (NIP-42 AUTH is answered first when keys are configured).
    pub async fn send(
        &self,
        event: &nostr_sdk::Event,
        timeout: Duration,
    ) -> Result<(), ConnectError> {
        match tokio::time::timeout(timeout, self.relay.send_event(event)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(ConnectError::Connect(error_chain(&error))),
            Err(_) => Err(ConnectError::Timeout(timeout)),
        }
    }

    /// Whether the connection is still up.
    pub fn is_connected(&self) -> bool {
        self.relay.is_connected()
    }

    /// Closes the connection and drops everything the client held.
    pub async fn shutdown(self) {
        let _ = self.relay.unsubscribe_all().await;
        self.relay.disconnect();
        self.client.shutdown().await;
    }
}

#[cfg(test)]
mod tests;
