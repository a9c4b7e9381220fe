//! Where the monitor's GeoLite databases come from, end to end against a MaxMind-style download
//! service on 127.0.0.1: the official download with its credentials, a refused licence key, and a
//! `geoipupdate` directory that is read without any request.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use bigbrotr_nips::nip11::Nip11Options;
use bigbrotr_testkit::mmdb::{AsnEntry, CityEntry, asn_database, city_database};

use super::*;

const AUTHORIZATION: &str = "Basic MTIzNDU2OnRlc3QtbGljZW5jZS1rZXk="; // 123456:test-licence-key

fn archive(edition: &str, database: &[u8]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    let mut header = tar::Header::new_gnu();
    header.set_size(database.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            format!("{edition}_20250101/{edition}.mmdb"),
            database,
        )
        .expect("append");
    builder.into_inner().expect("tar").finish().expect("gzip")
}

fn city() -> Vec<u8> {
    city_database(&[CityEntry {
        network: "198.51.100.0/24".into(),
        country_iso: Some("DE".into()),
        ..CityEntry::default()
    }])
}

fn asn() -> Vec<u8> {
    asn_database(&[AsnEntry {
        network: "198.51.100.0/24".into(),
        asn: 64_500,
        org: "Example".into(),
    }])
}

/// Serves `/geoip/databases/{GeoLite2-City,GeoLite2-ASN}/download` to [`AUTHORIZATION`] only,
/// counting requests.
async fn maxmind_site() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let mut router = Router::new();
    for (edition, database) in [("GeoLite2-City", city()), ("GeoLite2-ASN", asn())] {
        let body = archive(edition, &database);
        let requests = requests.clone();
        router = router.route(
            &format!("/geoip/databases/{edition}/download"),
            get(move |headers: HeaderMap| {
                let body = body.clone();
                requests.fetch_add(1, Ordering::SeqCst);
                async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        == Some(AUTHORIZATION)
                    {
                        body.into_response()
                    } else {
                        StatusCode::UNAUTHORIZED.into_response()
                    }
                }
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!(
        "http://{}/geoip/databases",
        listener.local_addr().expect("address")
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, requests, task)
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "bigbrotr-monitor-geo-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path).expect("create");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn monitor(configure: impl FnOnce(&mut MonitorConfig)) -> Monitor {
    bigbrotr_core::bootstrap::install_crypto_provider();
    let mut config = MonitorConfig::default();
    configure(&mut config);
    let keys = Keys::generate();
    let connector = Connector::new(config.networks.clone()).expect("connector");
    let nip11: Nip11Options = Monitor::nip11_options(&config);
    Monitor::new(config, keys, connector, nip11)
}

fn credentials(license_key: &str) -> Option<MaxMindCredentials> {
    Some(MaxMindCredentials {
        account_id: "123456".into(),
        license_key: license_key.into(),
    })
}

#[tokio::test]
async fn maxmind_credentials_download_both_databases_and_a_refused_key_keeps_none() {
    let (base, requests, task) = maxmind_site().await;
    let dir = TempDir::new();
    let configure = |c: &mut MonitorConfig| {
        c.geo.city_database_path = dir.0.join("city.mmdb").display().to_string();
        c.geo.asn_database_path = dir.0.join("asn.mmdb").display().to_string();
        c.geo.maxmind_download_url = base.clone();
        // A mirror URL is set too: with credentials, MaxMind wins.
        c.geo.city_download_url = "http://127.0.0.1:9/unreachable.mmdb".into();
    };
    // A refused licence key: nothing is written, the checks have no database.
    let refused = monitor(configure);
    let (city_db, asn_db) = refused
        .load_geo_databases_with(credentials("wrong-key"))
        .await;
    assert!(city_db.is_none() && asn_db.is_none());
    assert_eq!(std::fs::read_dir(&dir.0).expect("list").count(), 0);
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    // The right one: both downloaded from their archives and opened.
    let monitor = monitor(configure);
    let (city_db, asn_db) = monitor
        .load_geo_databases_with(credentials("test-licence-key"))
        .await;
    assert_eq!(
        city_db.expect("city").database_type(),
        MaxMindDatabase::<geoip::City>::from_bytes(city())
            .expect("fixture")
            .database_type()
    );
    assert!(asn_db.is_some());
    assert_eq!(std::fs::read(dir.0.join("asn.mmdb")).expect("asn"), asn());
    assert_eq!(requests.load(Ordering::SeqCst), 4);
    task.abort();
}

#[tokio::test]
async fn a_geoipupdate_directory_is_read_without_any_download() {
    let (base, requests, task) = maxmind_site().await;
    let dir = TempDir::new();
    std::fs::write(dir.0.join("GeoLite2-City.mmdb"), city()).expect("write");
    std::fs::write(dir.0.join("GeoLite2-ASN.mmdb"), asn()).expect("write");
    let monitor = monitor(|c| {
        c.geo.geoipupdate_directory = Some(dir.0.display().to_string());
        c.geo.maxmind_download_url = base.clone();
        // Older than max_age_days: still not downloaded, geoipupdate keeps them.
        c.geo.max_age_days = Some(1);
    });
    for name in ["GeoLite2-City.mmdb", "GeoLite2-ASN.mmdb"] {
        std::fs::File::options()
            .write(true)
            .open(dir.0.join(name))
            .and_then(|f| {
                f.set_modified(std::time::SystemTime::now() - Duration::from_secs(10 * 86_400))
            })
            .expect("age");
    }
    let (city_db, asn_db) = monitor
        .load_geo_databases_with(credentials("test-licence-key"))
        .await;
    assert!(city_db.is_some() && asn_db.is_some());
    assert_eq!(requests.load(Ordering::SeqCst), 0);
    task.abort();
}
