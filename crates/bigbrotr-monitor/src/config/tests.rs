use std::path::Path;

use bigbrotr_core::config::{load_value, parse_yaml};

use super::*;

fn from_yaml(yaml: &str) -> Result<MonitorConfig, ConfigError> {
    let value = parse_yaml(yaml, Path::new("monitor.yaml"))?;
    load_value::<MonitorConfig>(value, true, "BIGBROTR_MONITOR_TEST__", "monitor.yaml")
        .map(|loaded| loaded.config)
}

fn invalid(mutate: impl FnOnce(&mut MonitorConfig)) -> String {
    let mut config = MonitorConfig::default();
    mutate(&mut config);
    config.validate().unwrap_err().0
}

#[test]
fn defaults_are_the_originals_and_valid() {
    let c = MonitorConfig::default();
    c.validate().expect("valid");
    assert_eq!(c.processing.chunk_size, 100);
    assert_eq!(c.processing.nip11_info_max_size, 1_048_576);
    assert_eq!(c.processing.retries.nip66_rtt, RetryConfig::default());
    assert_eq!(c.processing.retries.nip11_info.max_attempts, 0);
    assert_eq!(c.processing.retries.nip11_info.jitter, 0.5);
    assert_eq!(c.processing.compute, MetadataFlags::all(true));
    assert_eq!(c.geo.geohash_precision, 9);
    assert_eq!(c.geo.max_age_days, Some(30));
    assert_eq!(c.geo.max_download_size, 100_000_000);
    assert!(c.geo.asn_download_url.ends_with("GeoLite2-ASN.mmdb"));
    assert_eq!(c.discovery.interval, 14_400.0);
    assert_eq!(c.announcement.interval, 86_400.0);
    assert_eq!(c.profile.name.as_deref(), Some("BigBrotr Monitor"));
    assert_eq!(c.publishing.relays.len(), 4);
    assert_eq!(c.keys.keys_env, "NOSTR_PRIVATE_KEY");
}

#[test]
fn store_and_include_must_be_computed() {
    let e = invalid(|c| c.processing.compute.nip66_geo = false);
    assert!(
        e.contains("Cannot store metadata that is not computed: nip66_geo"),
        "{e}"
    );
    let e = invalid(|c| {
        c.processing.compute.nip66_dns = false;
        c.processing.store.nip66_dns = false;
    });
    assert!(
        e.contains("Cannot publish metadata that is not computed: nip66_dns"),
        "{e}"
    );
    let e = invalid(|c| {
        c.processing.compute.nip66_dns = false;
        c.processing.store.nip66_dns = false;
        c.discovery.include.nip66_dns = false;
    });
    assert!(e.contains("Cannot announce"), "{e}");
    invalid(|c| {
        c.processing.compute.nip66_dns = false;
        c.processing.store.nip66_dns = false;
        c.discovery.include.nip66_dns = false;
        c.announcement.include.nip66_dns = false;
        c.processing.chunk_size = 5;
    });
}

#[test]
fn geo_needs_a_file_or_a_url() {
    let e = invalid(|c| {
        c.geo.city_download_url.clear();
        c.geo.city_database_path = "/nonexistent/city.mmdb".into();
    });
    assert!(e.contains("geo.city_download_url"), "{e}");
    let e = invalid(|c| {
        c.geo.asn_download_url.clear();
        c.geo.asn_database_path = "/nonexistent/asn.mmdb".into();
    });
    assert!(e.contains("geo.asn_download_url"), "{e}");
    let mut ok = MonitorConfig::default();
    ok.geo.city_download_url.clear();
    ok.processing.compute.nip66_geo = false;
    ok.processing.store.nip66_geo = false;
    ok.discovery.include.nip66_geo = false;
    ok.announcement.include.nip66_geo = false;
    ok.validate().expect("geo off needs no database");
}

#[test]
fn clearnet_only_checks_are_off_without_clearnet() {
    let yaml = "networks:\n  clearnet: {enabled: false}\n  tor: {enabled: true}\n";
    let c = from_yaml(yaml).expect("parse");
    let flags = c.effective_compute();
    assert!(!flags.nip66_ssl && !flags.nip66_geo && !flags.nip66_net && !flags.nip66_dns);
    assert!(flags.nip11_info && flags.nip66_rtt && flags.nip66_http);
}

#[test]
fn ranges_name_their_key() {
    assert!(invalid(|c| c.processing.chunk_size = 1001).contains("processing.chunk_size"));
    assert!(invalid(|c| c.processing.max_relays = Some(0)).contains("processing.max_relays"));
    assert!(invalid(|c| c.processing.nip11_info_max_size = 100).contains("nip11_info_max_size"));
    assert!(
        invalid(|c| c.processing.retries.nip66_ssl.max_attempts = 11)
            .contains("processing.retries.nip66_ssl.max_attempts")
    );
    assert!(
        invalid(|c| c.processing.retries.nip66_dns.jitter = 3.0)
            .contains("processing.retries.nip66_dns.jitter")
    );
    assert!(invalid(|c| c.geo.geohash_precision = 13).contains("geo.geohash_precision"));
    assert!(invalid(|c| c.geo.max_age_days = Some(0)).contains("geo.max_age_days"));
    assert!(invalid(|c| c.discovery.interval = 59.0).contains("discovery.interval"));
    assert!(
        invalid(|c| c.publishing.relays = vec!["http://x".into()]).contains("publishing.relays[0]")
    );
    assert!(invalid(|c| c.dns.nameservers = vec!["nope".into()]).contains("dns.nameservers[0]"));
    assert!(
        invalid(|c| c.announcement.geohash = Some("abc!".into())).contains("announcement.geohash")
    );
}

#[test]
fn unknown_flag_names_are_rejected() {
    let yaml = "processing:\n  compute:\n    nip66_rttt: false\n";
    let error = from_yaml(yaml).unwrap_err().0;
    assert!(error.contains("nip66_rttt"), "{error}");
}

#[test]
fn retry_delay_doubles_up_to_the_cap() {
    let r = RetryConfig {
        max_attempts: 5,
        initial_delay: 1.0,
        max_delay: 5.0,
        jitter: 0.0,
    };
    let delays: Vec<f64> = (0..5).map(|n| r.base_delay(n).as_secs_f64()).collect();
    assert_eq!(delays, vec![1.0, 2.0, 4.0, 5.0, 5.0]);
}
