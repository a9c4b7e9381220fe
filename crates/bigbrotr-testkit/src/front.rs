//! A relay front for monitor tests, on 127.0.0.1: optional TLS with a test certificate, the
//! relay's NIP-11 document (or a hostile answer) on the same port for plain HTTP GETs, and
//! WebSocket upgrades passed to a real relay behind it with extra handshake headers (`Server`,
//! `X-Powered-By`) added to its answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// Largest request or response head read.
const MAX_HEAD: usize = 16 * 1024;

/// What a NIP-11 request (a GET that is not a WebSocket upgrade) gets.
#[derive(Debug, Clone)]
pub enum Nip11Reply {
    /// A response with this status, `Content-Type` and body.
    Document {
        /// HTTP status.
        status: u16,
        /// `Content-Type` value.
        content_type: String,
        /// The body.
        body: Vec<u8>,
    },
    /// `302` to the same path, for ever.
    EndlessRedirect,
    /// `302` to this URL.
    RedirectTo(String),
    /// Headers announcing a body of `length` bytes, then that many bytes.
    Huge(usize),
    /// Headers, then one body byte every second, never finishing.
    Slowloris,
}

impl Nip11Reply {
    /// A `200 application/nostr+json` answer with `body`.
    pub fn json(body: &str) -> Self {
        Nip11Reply::Document {
            status: 200,
            content_type: "application/nostr+json".to_owned(),
            body: body.as_bytes().to_vec(),
        }
    }
}

/// How a [`RelayFront`] behaves.
#[derive(Debug, Clone)]
pub struct FrontOptions {
    /// Terminate TLS with this configuration (plain TCP when `None`).
    pub tls: Option<Arc<ServerConfig>>,
    /// The answer to NIP-11 requests.
    pub nip11: Nip11Reply,
    /// Headers added to the relay's WebSocket handshake answer.
    pub handshake_headers: Vec<(String, String)>,
}

impl Default for FrontOptions {
    fn default() -> Self {
        Self {
            tls: None,
            nip11: Nip11Reply::Document {
                status: 404,
                content_type: "text/plain".to_owned(),
                body: b"not found".to_vec(),
            },
            handshake_headers: Vec::new(),
        }
    }
}

/// The front; stops when dropped.
#[derive(Debug)]
pub struct RelayFront {
    address: SocketAddr,
    nip11_requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RelayFront {
    /// A front on 127.0.0.1 for the relay at `backend`.
    pub async fn start(backend: SocketAddr, options: FrontOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let options = Arc::new(options);
        let nip11_requests = Arc::new(AtomicUsize::new(0));
        let counter = nip11_requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let options = options.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    match &options.tls {
                        Some(config) => {
                            let acceptor = TlsAcceptor::from(config.clone());
                            if let Ok(tls) = acceptor.accept(stream).await {
                                serve(tls, backend, &options, &counter).await;
                            }
                        }
                        None => serve(stream, backend, &options, &counter).await,
                    }
                });
            }
        });
        Self {
            address,
            nip11_requests,
            task,
        }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// How many NIP-11 requests it has answered.
    pub fn nip11_requests(&self) -> usize {
        self.nip11_requests.load(Ordering::SeqCst)
    }
}

impl Drop for RelayFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads up to the end of an HTTP head; returns the head and any bytes read past it.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Some((buffer, rest));
        }
        if buffer.len() > MAX_HEAD {
            return None;
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    backend: SocketAddr,
    options: &FrontOptions,
    counter: &AtomicUsize,
) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !text.contains("upgrade: websocket") {
        counter.fetch_add(1, Ordering::SeqCst);
        let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
        answer_nip11(&mut client, &options.nip11, &path).await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(backend).await else {
        return;
    };
    if upstream.write_all(&head).await.is_err() || upstream.write_all(&rest).await.is_err() {
        return;
    }
    let Some((answer, extra)) = read_head(&mut upstream).await else {
        return;
    };
    let mut answer = answer[..answer.len() - 2].to_vec();
    for (name, value) in &options.handshake_headers {
        answer.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    answer.extend_from_slice(b"\r\n");
    if client.write_all(&answer).await.is_err() || client.write_all(&extra).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

async fn answer_nip11<S: AsyncWrite + Unpin>(client: &mut S, reply: &Nip11Reply, path: &str) {
    match reply {
        Nip11Reply::Document {
            status,
            content_type,
            body,
        } => {
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
                 access-control-allow-origin: *\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = client.write_all(head.as_bytes()).await;
            let _ = client.write_all(body).await;
        }
        Nip11Reply::EndlessRedirect => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nlocation: {path}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = client.write_all(head.as_bytes()).await;
        }
        Nip11Reply::RedirectTo(location) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = client.write_all(head.as_bytes()).await;
        }
        Nip11Reply::Huge(length) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/nostr+json\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
            );
            if client.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let block = vec![b' '; 64 * 1024];
            let mut left = *length;
            while left > 0 {
                let n = left.min(block.len());
                if client.write_all(&block[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        }
        Nip11Reply::Slowloris => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/nostr+json\r\ncontent-length: 1000\r\n\r\n";
            if client.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            loop {
                if client.write_all(b" ").await.is_err() || client.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let _ = client.flush().await;
    let _ = client.shutdown().await;
}
