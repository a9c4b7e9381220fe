//! A TCP proxy between a client and a server (TCP or Unix socket) whose connections a test can
//! count and cut at any moment, to play a database or network failure, and a black hole: an
//! address whose connection attempts are never answered.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::task::JoinHandle;

/// Where a [`TcpProxy`] forwards to.
#[derive(Debug, Clone)]
pub enum ProxyTarget {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// A forwarding proxy on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    address: SocketAddr,
    accept: JoinHandle<()>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accepted: Arc<AtomicUsize>,
}

impl TcpProxy {
    /// Starts forwarding every accepted connection to `target`.
    pub async fn start(target: ProxyTarget) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tracked = connections.clone();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let target = target.clone();
                let task = tokio::spawn(async move {
                    let _ = forward(client, target).await;
                });
                tracked.lock().expect("lock").push(task);
            }
        });
        Self {
            address,
            accept,
            connections,
            accepted,
        }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Cuts every open connection (new ones are still accepted). Returns how many were open.
    pub fn cut(&self) -> usize {
        let mut connections = self.connections.lock().expect("lock");
        let open = connections.iter().filter(|c| !c.is_finished()).count();
        for connection in connections.drain(..) {
            connection.abort();
        }
        open
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn forward(mut client: TcpStream, target: ProxyTarget) -> std::io::Result<()> {
    match target {
        ProxyTarget::Tcp(addr) => {
            let mut server = TcpStream::connect(addr).await?;
            tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        }
        ProxyTarget::Unix(path) => {
            let mut server = UnixStream::connect(path).await?;
            tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        }
    }
    Ok(())
}

/// An address on loopback that drops every connection attempt, like a black-holed IPv6 route:
/// a listener with a backlog of 0 whose accept queue is filled and never drained, so the kernel
/// drops further SYNs (no RST): a connect to it hangs until the caller gives up. Stops when
/// dropped.
#[derive(Debug)]
pub struct BlackHole {
    address: SocketAddr,
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

impl BlackHole {
    /// A black hole on `ip` (`127.0.0.1` or `::1`), checked: a fresh connect to it does not
    /// complete within 300 ms.
    pub async fn start(ip: std::net::IpAddr) -> Self {
        let socket = if ip.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .expect("socket");
        socket.bind(SocketAddr::new(ip, 0)).expect("bind");
        let listener = socket.listen(0).expect("listen");
        let address = listener.local_addr().expect("address");
        let wait = std::time::Duration::from_millis(300);
        let mut queued = Vec::new();
        // Fill the accept queue until a connect stalls: that SYN, and every later one, is
        // dropped.
        loop {
            match tokio::time::timeout(wait, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => queued.push(stream),
                Ok(Err(error)) => panic!("black hole {address}: {error}"),
                Err(_) => break,
            }
            assert!(
                queued.len() < 64,
                "the accept queue of {address} never fills"
            );
        }
        Self {
            address,
            _listener: listener,
            _queued: queued,
        }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}
