//! Relays for tests, all on 127.0.0.1: rust-nostr's in-process relay (with raised rate limits,
//! optionally requiring NIP-42 AUTH, optionally seeded with events as given), a TLS front with a
//! certificate from a test CA, a WebSocket middlebox that reorders, cuts or filters what a real
//! relay says, and hostile peers that never answer, drop the connection, send garbage, flood, or
//! demand NIP-42 AUTH without end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nostr_relay_builder::prelude::{
    Event, LocalRelay, MemoryDatabase, MemoryDatabaseOptions, NostrDatabase, RateLimit,
    RelayBuilder, RelayBuilderNip42, RelayBuilderNip42Mode,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_tungstenite::tungstenite::Message;

/// A running in-process relay; it stops when dropped.
pub struct TestRelay {
    relay: LocalRelay,
    address: SocketAddr,
}

impl std::fmt::Debug for TestRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRelay")
            .field("address", &self.address)
            .finish()
    }
}

impl TestRelay {
    /// An open relay (no AUTH) with rate limits high enough for tests.
    pub async fn start() -> Self {
        Self::with_builder(RelayBuilder::default()).await
    }

    /// A relay that requires NIP-42 AUTH for reading and writing.
    pub async fn with_auth() -> Self {
        let nip42 = RelayBuilderNip42 {
            mode: RelayBuilderNip42Mode::Both,
        };
        Self::with_builder(RelayBuilder::default().nip42(nip42)).await
    }

    /// A relay built from `builder` whose store holds `events` exactly as given: they are not
    /// verified on the way in, so events with bad ids or signatures are served as stored.
    pub async fn seeded(builder: RelayBuilder, events: &[Event]) -> Self {
        let database = MemoryDatabase::with_opts(MemoryDatabaseOptions {
            events: true,
            max_events: None,
        });
        for event in events {
            database
                .save_event(event)
                .await
                .expect("seed the test relay");
        }
        Self::with_builder(builder.database(database)).await
    }

    /// A relay built from `builder` (address, port and rate limit are set here).
    pub async fn with_builder(builder: RelayBuilder) -> Self {
        let port = free_port().await;
        let builder = builder
            .addr([127, 0, 0, 1].into())
            .port(port)
            .rate_limit(RateLimit {
                max_reqs: 10_000,
                notes_per_minute: 1_000_000,
            });
        let relay = LocalRelay::new(builder);
        relay.run().await.expect("start the test relay");
        Self {
            relay,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// Where it listens (plain WebSocket).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `ws://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.address)
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.relay.shutdown();
    }
}

async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

/// A certificate authority made for one test.
#[derive(Debug)]
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
}

impl TestCa {
    /// A fresh CA.
    pub fn new() -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA certificate");
        let der = cert.der().to_vec();
        Self {
            issuer: Issuer::new(params, key),
            der,
        }
    }

    /// The CA certificate (DER), to be trusted by the client under test.
    pub fn der(&self) -> Vec<u8> {
        self.der.clone()
    }

    /// A server configuration whose certificate names `hosts`.
    pub fn server_config(&self, hosts: &[&str]) -> Arc<ServerConfig> {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let params = CertificateParams::new(names).expect("leaf params");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
        Arc::new(config)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// Terminates TLS and forwards the bytes to a backend (a [`TestRelay`]); stops when dropped.
#[derive(Debug)]
pub struct TlsFront {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    /// A front on 127.0.0.1 with `config`'s certificate, forwarding to `backend`.
    pub async fn start(config: Arc<ServerConfig>, backend: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // No Nagle delay: a message forwarded in several writes (TLS records of
                    // the copy's 8 KiB chunks) would otherwise wait for a delayed ACK (40 ms).
                    let _ = stream.set_nodelay(true);
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
        Self { address, task }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a hostile peer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostility {
    /// Accepts TCP and never says a byte.
    SilentSocket,
    /// Completes the WebSocket handshake, then never answers.
    SilentRelay,
    /// Completes the handshake and closes the connection on the first message.
    DropOnRequest,
    /// Completes the handshake and answers every message with malformed frames.
    Garbage,
    /// Completes the handshake and floods notices and unrelated events, never an EOSE.
    Flood,
    /// Accepts TCP and sends bytes that are not HTTP.
    NotHttp,
    /// Completes the handshake and, from the first message on, streams invalid frames without
    /// end (not JSON, wrong arrays, binary noise, 10 KB of junk), never a valid message.
    GarbageStream,
    /// Completes the handshake and sends a NIP-42 challenge; accepts every AUTH (`OK` true) and
    /// at once sends a new challenge, for ever; answers every REQ with `CLOSED auth-required:`
    /// and every EVENT with `OK` false `auth-required:` ([`HostilePeer::auth_messages`] counts
    /// the AUTH events received).
    EndlessAuth,
    /// Completes the handshake and sends a NIP-42 challenge; answers every REQ with `CLOSED
    /// auth-required:` and every EVENT with `OK` false `auth-required:`, and never answers AUTH.
    IgnoredAuth,
    /// Accepts TCP, reads the client's first bytes (a TLS ClientHello) and closes the
    /// connection: a TLS handshake cut short, not a certificate problem.
    CutHandshake {
        /// Reset the connection (RST) instead of closing it (FIN).
        reset: bool,
    },
    /// Completes the handshake and answers every REQ with `count` EVENT frames of about 8 MiB
    /// each (events at second `created_at`, their ids and signatures not valid), then EOSE.
    HugeEvents {
        /// EVENT frames per REQ.
        count: usize,
        /// Their `created_at`.
        created_at: u64,
    },
}

/// A hostile peer on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct HostilePeer {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    auths: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl HostilePeer {
    /// Starts a peer that behaves as `hostility`.
    pub async fn start(hostility: Hostility) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let auths = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (counter, accepted) = (auths.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_hostile(stream, hostility, counter.clone()));
            }
        });
        Self {
            address,
            task,
            auths,
            connections,
        }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// NIP-42 AUTH messages received so far, over all connections.
    pub fn auth_messages(&self) -> usize {
        self.auths.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HostilePeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const GARBAGE: [&str; 6] = [
    "not json",
    "[\"EOSE\"]",
    "{\"EVENT\": 1}",
    "[\"EVENT\",\"x\",{\"id\":\"zz\"}]",
    "[\"EOSE\",1,2,3]",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
];

async fn serve_hostile(
    mut stream: tokio::net::TcpStream,
    hostility: Hostility,
    auths: Arc<AtomicUsize>,
) {
    use tokio::io::AsyncWriteExt;
    match hostility {
        Hostility::SilentSocket => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(stream);
            return;
        }
        Hostility::NotHttp => {
            let _ = stream.write_all(b"\x00\x01garbage\r\n\r\n").await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        Hostility::CutHandshake { reset } => {
            use tokio::io::AsyncReadExt;
            let mut hello = [0_u8; 512];
            let _ = stream.read(&mut hello).await;
            if reset {
                // A zero linger makes the close a RST.
                let _ = stream.set_zero_linger();
            }
            drop(stream);
            return;
        }
        _ => {}
    }
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    match hostility {
        Hostility::SilentRelay => while ws.next().await.is_some() {},
        Hostility::DropOnRequest => {
            let _ = ws.next().await;
            drop(ws);
        }
        Hostility::Garbage => {
            while let Some(Ok(_)) = ws.next().await {
                for text in GARBAGE {
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                let _ = ws.send(Message::binary(vec![0xff_u8; 64])).await;
            }
        }
        Hostility::Flood => {
            let _ = ws.next().await;
            let notice = format!("[\"NOTICE\",\"{}\"]", "x".repeat(4096));
            loop {
                if ws.send(Message::text(notice.clone())).await.is_err() {
                    return;
                }
            }
        }
        Hostility::GarbageStream => {
            let _ = ws.next().await;
            let junk = "#".repeat(10 * 1024);
            loop {
                for text in GARBAGE.iter().copied().chain([junk.as_str()]) {
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                if ws.send(Message::binary(vec![0xff_u8; 64])).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Hostility::HugeEvents { count, created_at } => {
            // Just under the transport's 8 MiB message bound.
            let content = "x".repeat(8 * 1024 * 1024 - 4096);
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(serde_json::Value::Array(items)) =
                    serde_json::from_str::<serde_json::Value>(&text)
                else {
                    continue;
                };
                if items.first().and_then(|v| v.as_str()) != Some("REQ") {
                    continue;
                }
                let sub = items.get(1).and_then(|v| v.as_str()).unwrap_or_default();
                // One frame per REQ, sent `count` times without a copy (the same event id: the
                // client drops it before it could tell).
                let frame = tokio_tungstenite::tungstenite::Utf8Bytes::from(format!(
                    "[\"EVENT\",\"{sub}\",{{\"id\":\"{id}\",\"pubkey\":\"{pk}\",\"created_at\":{created_at},\"kind\":1,\"tags\":[],\"content\":\"{content}\",\"sig\":\"{sig}\"}}]",
                    id = "ef".repeat(32),
                    pk = "ab".repeat(32),
                    sig = "cd".repeat(64),
                ));
                for _ in 0..count {
                    if ws.send(Message::Text(frame.clone())).await.is_err() {
                        return;
                    }
                }
                drop(frame);
                if ws
                    .send(Message::text(format!("[\"EOSE\",\"{sub}\"]")))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        Hostility::EndlessAuth => auth_wall(&mut ws, &auths, true).await,
        Hostility::IgnoredAuth => auth_wall(&mut ws, &auths, false).await,
        Hostility::SilentSocket | Hostility::NotHttp | Hostility::CutHandshake { .. } => {}
    }
}

/// A relay that wants NIP-42 AUTH for everything; with `accept`, every AUTH is accepted and
/// followed by a new challenge, else AUTH is never answered.
async fn auth_wall(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    auths: &AtomicUsize,
    accept: bool,
) {
    let mut challenges = 0_u64;
    let challenge = |challenges: &mut u64| {
        *challenges += 1;
        Message::text(format!("[\"AUTH\",\"challenge-{challenges}\"]"))
    };
    if ws.send(challenge(&mut challenges)).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(&text)
        else {
            continue;
        };
        let second = items.get(1);
        let id = |value: Option<&serde_json::Value>| {
            value
                .and_then(|v| v.get("id"))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let replies = match items.first().and_then(|v| v.as_str()) {
            Some("AUTH") => {
                auths.fetch_add(1, Ordering::SeqCst);
                if !accept {
                    continue;
                }
                vec![
                    Message::text(serde_json::json!(["OK", id(second), true, ""]).to_string()),
                    challenge(&mut challenges),
                ]
            }
            Some("REQ") => {
                let sub = second.and_then(|v| v.as_str()).unwrap_or_default();
                vec![Message::text(
                    serde_json::json!(["CLOSED", sub, "auth-required: sign in first"]).to_string(),
                )]
            }
            Some("EVENT") => vec![Message::text(
                serde_json::json!(["OK", id(second), false, "auth-required: sign in first"])
                    .to_string(),
            )],
            _ => continue,
        };
        for reply in replies {
            if ws.send(reply).await.is_err() {
                return;
            }
        }
    }
}

/// How a [`Middlebox`] alters the conversation with the relay behind it.
#[derive(Debug, Clone, Default)]
pub struct MiddleboxOptions {
    /// Deliver each subscription's stored events in the reverse of the relay's order (oldest
    /// first), all before the EOSE.
    pub reverse_stored_events: bool,
    /// Close the first connection after forwarding this many EVENT messages.
    pub cut_first_connection_after: Option<usize>,
    /// Answer NEG-OPEN with a NOTICE instead of forwarding it, like a relay without NIP-77.
    pub refuse_negentropy: bool,
    /// Never deliver the events whose id's first byte is a multiple of `n` (about one in `n`
    /// for `n` of 10 and more): the same events on every request, dropped after the relay
    /// applied the `limit`, so pages come back short while older events remain (as relays that
    /// hide expired, deleted or muted events do).
    pub drop_events_one_in: Option<u8>,
}

/// Whether a middlebox with `drop_events_one_in: Some(n)` hides the event with `id`.
pub fn hidden_by_middlebox(id: &[u8; 32], n: u8) -> bool {
    n > 0 && id[0].is_multiple_of(n)
}

/// A WebSocket proxy in front of a real relay; stops when dropped.
#[derive(Debug)]
pub struct Middlebox {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<MiddleboxStats>,
}

/// What a middlebox saw.
#[derive(Debug, Default)]
pub struct MiddleboxStats {
    /// Connections accepted.
    pub connections: std::sync::atomic::AtomicUsize,
    /// REQ messages forwarded.
    pub requests: std::sync::atomic::AtomicUsize,
    /// EVENT messages delivered.
    pub events: std::sync::atomic::AtomicUsize,
    /// NEG-OPEN messages refused.
    pub negentropy_refused: std::sync::atomic::AtomicUsize,
    /// Connections cut.
    pub cuts: std::sync::atomic::AtomicUsize,
}

impl Middlebox {
    /// Starts a middlebox in front of the relay at `backend` (plain WebSocket).
    pub async fn start(backend: SocketAddr, options: MiddleboxOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let stats = Arc::new(MiddleboxStats::default());
        let shared = stats.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let first = shared
                    .connections
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    == 0;
                tokio::spawn(middle(
                    stream,
                    backend,
                    options.clone(),
                    first,
                    shared.clone(),
                ));
            }
        });
        Self {
            address,
            task,
            stats,
        }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What it saw so far.
    pub fn stats(&self) -> &MiddleboxStats {
        &self.stats
    }
}

impl Drop for Middlebox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

async fn middle(
    stream: tokio::net::TcpStream,
    backend: SocketAddr,
    options: MiddleboxOptions,
    first: bool,
    stats: Arc<MiddleboxStats>,
) {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;
    // Small frames both ways: without TCP_NODELAY each REQ waits for a delayed ACK (~40 ms).
    let _ = stream.set_nodelay(true);
    let Ok(client) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let Ok((relay, _)) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{backend}"), None, true).await
    else {
        return;
    };
    let (mut client_tx, mut client_rx) = client.split();
    let (mut relay_tx, mut relay_rx) = relay.split();
    let (to_client, mut outbox) = tokio::sync::mpsc::channel::<Message>(1024);
    let writer = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            if client_tx.send(message).await.is_err() {
                break;
            }
        }
        let _ = client_tx.close().await;
    });
    let refuse = options.refuse_negentropy;
    let upstream_stats = stats.clone();
    let notices = to_client.clone();
    let upstream = tokio::spawn(async move {
        while let Some(Ok(message)) = client_rx.next().await {
            if let Message::Text(text) = &message {
                if refuse && text.starts_with("[\"NEG-OPEN\"") {
                    upstream_stats
                        .negentropy_refused
                        .fetch_add(1, Ordering::SeqCst);
                    let notice = Message::text("[\"NOTICE\",\"ERROR: bad msg: unknown cmd\"]");
                    if notices.send(notice).await.is_err() {
                        break;
                    }
                    continue;
                }
                if text.starts_with("[\"REQ\"") {
                    upstream_stats.requests.fetch_add(1, Ordering::SeqCst);
                }
            }
            if relay_tx.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut held: HashMap<String, Vec<Message>> = HashMap::new();
    let mut delivered = 0_usize;
    'relay: while let Some(Ok(message)) = relay_rx.next().await {
        let mut out = vec![message.clone()];
        if let Message::Text(text) = &message
            && let Ok(serde_json::Value::Array(items)) =
                serde_json::from_str::<serde_json::Value>(text)
        {
            let kind = items.first().and_then(|v| v.as_str()).unwrap_or_default();
            let sub = items
                .get(1)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            if kind == "EVENT"
                && let Some(n) = options.drop_events_one_in
                && let Some(id) = items
                    .get(2)
                    .and_then(|e| e.get("id"))
                    .and_then(|v| v.as_str())
                    .and_then(|hex| <[u8; 32]>::try_from(hex_bytes(hex).as_slice()).ok())
                && hidden_by_middlebox(&id, n)
            {
                continue;
            }
            if options.reverse_stored_events && kind == "EVENT" {
                held.entry(sub).or_default().push(message.clone());
                continue;
            }
            if kind == "EOSE" {
                let mut events = held.remove(&sub).unwrap_or_default();
                events.reverse();
                events.push(message.clone());
                out = events;
            }
        }
        for message in out {
            let is_event = matches!(&message, Message::Text(t) if t.starts_with("[\"EVENT\""));
            if is_event {
                if first
                    && options
                        .cut_first_connection_after
                        .is_some_and(|n| delivered >= n)
                {
                    stats.cuts.fetch_add(1, Ordering::SeqCst);
                    break 'relay;
                }
                delivered += 1;
                stats.events.fetch_add(1, Ordering::SeqCst);
            }
            if to_client.send(message).await.is_err() {
                break 'relay;
            }
        }
    }
    upstream.abort();
    drop(to_client);
    let _ = writer.await;
}
