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

/// A MaxMind-style tar.gz: `<edition>_20250101/` with a COPYRIGHT.txt, then `<edition>.mmdb`
/// holding `database`.
fn maxmind_archive(edition: &str, database: &[u8]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    let directory = format!("{edition}_20250101");
    for (name, body) in [
        (
            "COPYRIGHT.txt",
            b"Database and Contents Copyright (c) MaxMind".as_slice(),
        ),
        (&format!("{edition}.mmdb") as &str, database),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, format!("{directory}/{name}"), body)
            .expect("append");
    }
    builder.into_inner().expect("tar").finish().expect("gzip")
}

const ACCOUNT: &str = "123456";
const LICENCE: &str = "test-licence-key";
/// `Basic base64("123456:test-licence-key")`.
const AUTHORIZATION: &str = "Basic MTIzNDU2OnRlc3QtbGljZW5jZS1rZXk=";

/// A request's Authorization header and query.
type Seen = (Option<String>, Option<String>);

/// MaxMind's download service on 127.0.0.1: `/geoip/databases/<edition>/download?suffix=tar.gz`
/// answers `archive` to [`AUTHORIZATION`] and 401 to anything else; every request's
/// Authorization header and query are recorded.
struct MaxMindSite {
    address: SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl MaxMindSite {
    async fn start(edition: &'static str, archive: Vec<u8>) -> Self {
        use axum::extract::RawQuery;
        use axum::http::HeaderMap;
        use axum::response::IntoResponse;

        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let router = Router::new().route(
            &format!("/geoip/databases/{edition}/download"),
            get(move |headers: HeaderMap, RawQuery(query): RawQuery| {
                let archive = archive.clone();
                let record = record.clone();
                async move {
                    let authorization = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let allowed = authorization.as_deref() == Some(AUTHORIZATION)
                        && query.as_deref() == Some("suffix=tar.gz");
                    record.lock().expect("lock").push((authorization, query));
                    if allowed {
                        archive.into_response()
                    } else {
                        (StatusCode::UNAUTHORIZED, "Invalid license key").into_response()
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            address,
            seen,
            task,
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}/geoip/databases", self.address)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for MaxMindSite {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn maxmind<'a>(base_url: &'a str, license_key: &'a str) -> MaxMindDownload<'a> {
    MaxMindDownload {
        base_url,
        edition_id: "GeoLite2-ASN",
        account_id: ACCOUNT,
        license_key,
    }
}

#[tokio::test]
async fn maxmind_download_sends_the_credentials_and_installs_the_mmdb_of_the_archive() {
    let site = MaxMindSite::start(
        "GeoLite2-ASN",
        maxmind_archive("GeoLite2-ASN", &database(2)),
    )
    .await;
    let dir = TempDir::new();
    let path = dir.0.join("GeoLite2-ASN.mmdb");
    existing(&path, 1, DAY * 31);
    let base = site.base_url();
    let source = Source::MaxMind(maxmind(&base, LICENCE));
    assert_eq!(
        source.url(),
        format!("{base}/GeoLite2-ASN/download?suffix=tar.gz")
    );
    let refreshed = refresh_from(&path, &source, Some(30), MAX, &client())
        .await
        .expect("downloaded");
    assert_eq!(
        refreshed,
        Refresh::Downloaded {
            bytes: database(2).len()
        }
    );
    assert_eq!(asn_in(&path), Some(2));
    assert_eq!(TempDir::files_beside(&path), ["GeoLite2-ASN.mmdb"]);
    assert_eq!(
        site.seen(),
        [(
            Some(AUTHORIZATION.to_owned()),
            Some("suffix=tar.gz".to_owned())
        )]
    );
    // Fresh now: no second request.
    let again = refresh_from(&path, &source, Some(30), MAX, &client()).await;
    assert_eq!(again.expect("fresh"), Refresh::Fresh);
    assert_eq!(site.seen().len(), 1);
}

#[tokio::test]
async fn maxmind_refusing_the_licence_key_is_a_clear_error_and_keeps_the_old_file() {
    let site = MaxMindSite::start(
        "GeoLite2-ASN",
        maxmind_archive("GeoLite2-ASN", &database(2)),
    )
    .await;
    let dir = TempDir::new();
    let path = dir.0.join("GeoLite2-ASN.mmdb");
    existing(&path, 1, DAY * 31);
    let before = std::fs::read(&path).expect("read");
    let base = site.base_url();
    let source = Source::MaxMind(maxmind(&base, "wrong-key"));
    let error = refresh_from(&path, &source, Some(30), MAX, &client())
        .await
        .expect_err("401");
    assert!(matches!(error, GeoIpError::Credentials(401)), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("HTTP 401") && message.contains("licence key"),
        "{message}"
    );
    assert!(!message.contains("wrong-key"), "the key is never shown");
    assert!(!format!("{source:?}").contains("wrong-key"), "{source:?}");
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert_eq!(TempDir::files_beside(&path), ["GeoLite2-ASN.mmdb"]);
    assert_eq!(site.seen().len(), 1);
}

#[tokio::test]
async fn maxmind_archives_that_are_too_large_or_lack_the_edition_keep_the_old_file() {
    let dir = TempDir::new();
    let path = dir.0.join("GeoLite2-ASN.mmdb");
    // The archive holds another edition only.
    let site = MaxMindSite::start(
        "GeoLite2-ASN",
        maxmind_archive("GeoLite2-City", &database(2)),
    )
    .await;
    existing(&path, 1, DAY * 31);
    let before = std::fs::read(&path).expect("read");
    let base = site.base_url();
    let source = Source::MaxMind(maxmind(&base, LICENCE));
    let error = refresh_from(&path, &source, Some(30), MAX, &client())
        .await
        .expect_err("no GeoLite2-ASN.mmdb");
    assert!(
        matches!(&error, GeoIpError::Invalid(m) if m.contains("no GeoLite2-ASN.mmdb")),
        "{error}"
    );
    drop(site);
    // The database in the archive is larger than allowed (the archive itself is not).
    let big = database(2);
    let site = MaxMindSite::start("GeoLite2-ASN", maxmind_archive("GeoLite2-ASN", &big)).await;
    let base = site.base_url();
    let source = Source::MaxMind(maxmind(&base, LICENCE));
    let archive_size = maxmind_archive("GeoLite2-ASN", &big).len();
    assert!(archive_size < big.len());
    let error = refresh_from(&path, &source, Some(30), big.len() - 1, &client())
        .await
        .expect_err("too large");
    assert!(
        matches!(&error, GeoIpError::Download(m) if m.contains("too large")),
        "{error}"
    );
    // Not a tar.gz at all.
    let site = MaxMindSite::start("GeoLite2-ASN", database(2)).await;
    let base = site.base_url();
    let source = Source::MaxMind(maxmind(&base, LICENCE));
    let error = refresh_from(&path, &source, Some(30), MAX, &client())
        .await
        .expect_err("not an archive");
    assert!(matches!(error, GeoIpError::Invalid(_)), "{error}");
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert_eq!(TempDir::files_beside(&path), ["GeoLite2-ASN.mmdb"]);
}

#[test]
fn a_compressed_bomb_is_decompressed_only_up_to_twice_the_limit() {
    // 64 MB of zeros before the database compress to a few tens of kB.
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    let zeros = vec![0u8; 64 << 20];
    let mut header = tar::Header::new_gnu();
    header.set_size(zeros.len() as u64);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            "GeoLite2-ASN_20250101/padding",
            zeros.as_slice(),
        )
        .expect("append");
    let db = database(2);
    let mut header = tar::Header::new_gnu();
    header.set_size(db.len() as u64);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            "GeoLite2-ASN_20250101/GeoLite2-ASN.mmdb",
            db.as_slice(),
        )
        .expect("append");
    let archive = builder.into_inner().expect("tar").finish().expect("gzip");
    assert!(archive.len() < 1 << 20, "{}", archive.len());
    let error = extract_mmdb(&archive, "GeoLite2-ASN", MAX).expect_err("stopped");
    assert!(matches!(error, GeoIpError::Invalid(_)), "{error}");
    // With room for it, the same archive yields the database.
    assert_eq!(
        extract_mmdb(&archive, "GeoLite2-ASN", 40 << 20).expect("found"),
        db
    );
}
