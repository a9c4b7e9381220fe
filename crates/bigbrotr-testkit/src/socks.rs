//! A SOCKS5 proxy for tests that stands in for Tor, I2P or Lokinet: it accepts CONNECT requests by
//! host name or address, routes the names it was given to loopback servers (an onion name cannot
//! resolve here), refuses everything else, and records every request so a test can prove that
//! overlay traffic went through it and clearnet traffic did not.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy on 127.0.0.1; it stops when dropped.
#[derive(Debug)]
pub struct SocksProxy {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SocksProxy {
    /// Starts a proxy that connects `host:port` targets to `routes[host:port]` (any port when the
    /// route key is a bare host).
    pub async fn start(routes: HashMap<String, SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(routes);
        let log = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let routes = routes.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &routes, &log).await;
                });
            }
        });
        Self {
            address,
            requests,
            task,
        }
    }

    /// The proxy's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `socks5://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("socks5://{}", self.address)
    }

    /// Every CONNECT target seen so far (`host:port`), in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for SocksProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut client: TcpStream,
    routes: &HashMap<String, SocketAddr>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    // Greeting: version 5, any methods; we pick "no authentication".
    let mut header = [0u8; 2];
    client.read_exact(&mut header).await?;
    let mut methods = vec![0u8; usize::from(header[1])];
    client.read_exact(&mut methods).await?;
    client.write_all(&[5, 0]).await?;
    // Request: version, command, reserved, address type.
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            std::net::Ipv6Addr::from(ip).to_string()
        }
        _ => return Ok(()),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let port = u16::from_be_bytes(port);
    let target = format!("{host}:{port}");
    if let Ok(mut log) = log.lock() {
        log.push(target.clone());
    }
    let route = routes.get(&target).or_else(|| routes.get(&host)).copied();
    let upstream = match (request[1], route) {
        (1, Some(address)) => TcpStream::connect(address).await.ok(),
        _ => None,
    };
    let Some(mut upstream) = upstream else {
        // 4 = host unreachable.
        client.write_all(&[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    };
    // No Nagle delay on what is forwarded (the copy writes in chunks of 8 KiB).
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
