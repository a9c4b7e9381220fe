//! Database refresh tests against a local HTTP server serving generated databases.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use bigbrotr_testkit::mmdb::{AsnEntry, asn_database};
use tokio::task::JoinHandle;

use super::*;
use crate::nip66::net::{self, AsnDatabase};

const DAY: Duration = Duration::from_secs(86_400);

/// A database whose single network maps to `asn`, to tell versions apart.
fn database(asn: u32) -> Vec<u8> {
    asn_database(&[AsnEntry {
        network: "198.51.100.0/24".into(),
        asn,
        org: format!("AS{asn}"),
    }])
}

/// The ASN of 198.51.100.1 in the database at `path`.
fn asn_in(path: &Path) -> Option<i64> {
    let db = AsnDatabase::open(path).expect("opens");
    net::check(&db, Some("198.51.100.1".parse().expect("ip")), None).int_field("net_asn")
}

/// An HTTP server on 127.0.0.1 counting every request: `/db.mmdb` (ASN 2), `/garbage` (a 200
/// that is no database), anything else 404.
struct Site {
    address: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Site {
    async fn start() -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        let count = |requests: &Arc<AtomicUsize>| {
            let requests = requests.clone();
            move || {
                requests.fetch_add(1, Ordering::SeqCst);
            }
        };
        let (db, garbage, missing) = (count(&requests), count(&requests), count(&requests));
        let router = Router::new()
            .route(
                "/db.mmdb",
                get(move || async move {
                    db();
                    database(2)
                }),
            )
            .route(
                "/garbage",
                get(move || async move {
                    garbage();
                    "this is not a MaxMind database"
                }),
            )
            .fallback(move || async move {
                missing();
                StatusCode::NOT_FOUND
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            address,
            requests,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "bigbrotr-geoip-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// The names of the files in the directory holding `path`.
    fn files_beside(path: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Writes database `asn` at `path`, `age` old.
fn existing(path: &Path, asn: u32, age: Duration) {
    std::fs::write(path, database(asn)).expect("write");
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(SystemTime::now() - age))
        .expect("set mtime");
}

const MAX: usize = 1_000_000;

#[tokio::test]
async fn missing_file_is_downloaded_into_a_new_directory() {
    let site = Site::start().await;
    let dir = TempDir::new();
    let path = dir.0.join("static").join("GeoLite2-ASN.mmdb");
    let refreshed = refresh(&path, &site.url("/db.mmdb"), Some(30), MAX, &client())
        .await
        .expect("downloaded");
    assert_eq!(
        refreshed,
        Refresh::Downloaded {
            bytes: database(2).len()
        }
    );
    assert_eq!(asn_in(&path), Some(2));
    // No temporary file is left behind.
    assert_eq!(TempDir::files_beside(&path), ["GeoLite2-ASN.mmdb"]);
    assert_eq!(site.requests(), 1);
}

#[tokio::test]
async fn fresh_file_is_kept_without_a_request() {
    let site = Site::start().await;
    let dir = TempDir::new();
    let path = dir.0.join("db.mmdb");
    existing(&path, 1, DAY * 29);
    let client = client();
    let url = site.url("/db.mmdb");
    assert_eq!(
        refresh(&path, &url, Some(30), MAX, &client)
            .await
            .expect("ok"),
        Refresh::Fresh
    );
    // No maximum age: an existing file is never downloaded again, however old.
    existing(&path, 1, DAY * 3650);
    assert_eq!(
        refresh(&path, &url, None, MAX, &client).await.expect("ok"),
        Refresh::Fresh
    );
    assert_eq!(site.requests(), 0);
    assert_eq!(asn_in(&path), Some(1));
}

#[tokio::test]
async fn stale_file_is_downloaded_again() {
    let site = Site::start().await;
    let dir = TempDir::new();
    let path = dir.0.join("db.mmdb");
    existing(&path, 1, DAY * 31);
    let refreshed = refresh(&path, &site.url("/db.mmdb"), Some(30), MAX, &client())
        .await
        .expect("downloaded");
    assert!(matches!(refreshed, Refresh::Downloaded { .. }));
    assert_eq!(site.requests(), 1);
    assert_eq!(asn_in(&path), Some(2));
    assert_eq!(TempDir::files_beside(&path), ["db.mmdb"]);
}

#[tokio::test]
async fn oversized_download_fails_and_keeps_the_old_file() {
    let site = Site::start().await;
    let dir = TempDir::new();
    let path = dir.0.join("db.mmdb");
    existing(&path, 1, DAY * 31);
    let before = std::fs::read(&path).expect("read");
    let limit = database(2).len() - 1;
    let error = refresh(&path, &site.url("/db.mmdb"), Some(30), limit, &client())
        .await
        .expect_err("too large");
    assert!(
        matches!(&error, GeoIpError::Download(message) if message.contains("too large")),
        "{error}"
    );
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert_eq!(TempDir::files_beside(&path), ["db.mmdb"]);
}

#[tokio::test]
async fn invalid_database_fails_and_keeps_the_old_file() {
    let site = Site::start().await;
    let dir = TempDir::new();
    let path = dir.0.join("db.mmdb");
    existing(&path, 1, DAY * 31);
    let before = std::fs::read(&path).expect("read");
    let error = refresh(&path, &site.url("/garbage"), Some(30), MAX, &client())
        .await
        .expect_err("not a database");
    assert!(matches!(error, GeoIpError::Invalid(_)), "{error}");
    assert_eq!(site.requests(), 1);
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert_eq!(TempDir::files_beside(&path), ["db.mmdb"]);
}

#[tokio::test]
async fn http_error_fails_and_creates_nothing() {
    let site = Site::start().await;
    let dir = TempDir::new();
    let path = dir.0.join("db.mmdb");
    let error = refresh(&path, &site.url("/nowhere.mmdb"), Some(30), MAX, &client())
        .await
        .expect_err("404");
    assert!(matches!(error, GeoIpError::Status(404)), "{error}");
    assert_eq!(error.to_string(), "download failed: HTTP 404");
    assert!(!path.exists());
    assert_eq!(site.requests(), 1);
}
