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
    // 6.6.9 downloads from a third-party mirror by default; here it is opt-in.
    assert!(c.geo.city_download_url.is_empty() && c.geo.asn_download_url.is_empty());
    assert_eq!(c.geo.maxmind_account_id_env, "MAXMIND_ACCOUNT_ID");
    assert_eq!(c.geo.maxmind_license_key_env, "MAXMIND_LICENSE_KEY");
    assert_eq!(c.geo.geoipupdate_directory, None);
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

/// MaxMind credentials of the fake environment `vars`.
fn credentials(
    geo: &GeoConfig,
    vars: &[(&str, &str)],
) -> Result<Option<MaxMindCredentials>, String> {
    geo.maxmind_credentials(|name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    })
    .map_err(|e| e.0)
}

#[test]
fn geo_without_a_file_or_a_source_is_valid_and_has_no_source() {
    // 6.6.9 refused this (its default always had a source); here the check is skipped with a
    // warning until a file is there.
    let mut c = MonitorConfig::default();
    c.geo.city_database_path = "/nonexistent/city.mmdb".into();
    c.geo.asn_database_path = "/nonexistent/asn.mmdb".into();
    c.validate().expect("valid");
    assert_eq!(c.geo.city_source(None), GeoSource::None);
    assert_eq!(c.geo.asn_source(None), GeoSource::None);
}

#[test]
fn geo_sources_geoipupdate_then_maxmind_then_the_configured_url() {
    let mirror = format!("{GEOLITE_MIRROR}/GeoLite2-City.mmdb");
    // 6.6.9's keys keep their meaning: a URL serving the .mmdb, used as is.
    let c = from_yaml(&format!(
        "geo:\n  city_download_url: {mirror}\n  city_database_path: static/city.mmdb\n"
    ))
    .expect("loads");
    let geo = &c.geo;
    assert_eq!(geo.city_source(None), GeoSource::Url(mirror.clone()));
    assert_eq!(geo.asn_source(None), GeoSource::None);
    assert_eq!(geo.city_path(), Path::new("static/city.mmdb"));
    // MaxMind's credentials, when both are set, win over the URL.
    let none = credentials(geo, &[]).expect("ok");
    assert_eq!(none, None);
    let vars = [
        ("MAXMIND_ACCOUNT_ID", " 123456 "),
        ("MAXMIND_LICENSE_KEY", "key"),
    ];
    let both = credentials(geo, &vars).expect("ok").expect("both");
    assert_eq!(both.account_id, "123456");
    assert!(!format!("{both:?}").contains("key\""), "{both:?}");
    assert_eq!(
        geo.city_source(Some(&both)),
        GeoSource::MaxMind("GeoLite2-City".into())
    );
    assert_eq!(
        geo.asn_source(Some(&both)),
        GeoSource::MaxMind("GeoLite2-ASN".into())
    );
    // One without the other is an error naming both; empty counts as unset.
    let half = credentials(geo, &[("MAXMIND_ACCOUNT_ID", "123456")]).expect_err("half");
    assert!(
        half.contains("MAXMIND_ACCOUNT_ID") && half.contains("MAXMIND_LICENSE_KEY"),
        "{half}"
    );
    let empty = [("MAXMIND_ACCOUNT_ID", ""), ("MAXMIND_LICENSE_KEY", " ")];
    assert_eq!(credentials(geo, &empty).expect("ok"), None);
    // Other variable names.
    let c = from_yaml(
        "geo:\n  maxmind_account_id_env: GEOIPUPDATE_ACCOUNT_ID\n  \
         maxmind_license_key_env: GEOIPUPDATE_LICENSE_KEY\n",
    )
    .expect("loads");
    let vars = [
        ("GEOIPUPDATE_ACCOUNT_ID", "1"),
        ("GEOIPUPDATE_LICENSE_KEY", "k"),
    ];
    assert!(credentials(&c.geo, &vars).expect("ok").is_some());
    // A geoipupdate directory: its <edition>.mmdb files, never downloaded.
    let c = from_yaml(&format!(
        "geo:\n  geoipupdate_directory: /var/lib/GeoIP\n  city_download_url: {mirror}\n"
    ))
    .expect("loads");
    assert_eq!(
        c.geo.city_path(),
        Path::new("/var/lib/GeoIP/GeoLite2-City.mmdb")
    );
    assert_eq!(
        c.geo.asn_path(),
        Path::new("/var/lib/GeoIP/GeoLite2-ASN.mmdb")
    );
    assert_eq!(c.geo.city_source(Some(&both)), GeoSource::GeoIpUpdate);
    assert_eq!(c.geo.asn_source(None), GeoSource::GeoIpUpdate);
}

#[test]
fn geo_keys_are_checked() {
    let e = invalid(|c| c.geo.city_download_url = "ftp://example.com/x.mmdb".into());
    assert!(e.contains("geo.city_download_url"), "{e}");
    let e = invalid(|c| c.geo.maxmind_download_url.clear());
    assert!(e.contains("geo.maxmind_download_url"), "{e}");
    let e = invalid(|c| c.geo.asn_edition_id = "../GeoLite2-ASN".into());
    assert!(e.contains("geo.asn_edition_id"), "{e}");
    let e = invalid(|c| c.geo.maxmind_license_key_env = String::new());
    assert!(e.contains("geo.maxmind_license_key_env"), "{e}");
    let e = invalid(|c| c.geo.geoipupdate_directory = Some(String::new()));
    assert!(e.contains("geo.geoipupdate_directory"), "{e}");
    // An unknown key is a warning (reported with its path), not an error: one rule everywhere.
    assert_eq!(unknown("geo:\n  license_key: x\n"), ["geo.license_key"]);
}

/// The unknown keys of `yaml`, which must load.
fn unknown(yaml: &str) -> Vec<String> {
    let value = parse_yaml(yaml, Path::new("monitor.yaml")).unwrap();
    load_value::<MonitorConfig>(value, true, "BIGBROTR_MONITOR_TEST__", "monitor.yaml")
        .unwrap()
        .unknown_keys
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
fn unknown_flag_names_are_reported() {
    let yaml = "processing:\n  compute:\n    nip66_rttt: false\n";
    assert_eq!(unknown(yaml), ["processing.compute.nip66_rttt"]);
    // The real flag keeps its default.
    assert!(from_yaml(yaml).unwrap().processing.compute.nip66_rtt);
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

#[test]
fn unknown_keys_in_subsections_are_warnings_not_errors() {
    let value = bigbrotr_core::config::parse_yaml(
        "publishing:\n  timout: 5\nprocessing:\n  retries:\n    nip11_info:\n      max_atempts: 2\n",
        std::path::Path::new("monitor.yaml"),
    )
    .unwrap();
    let loaded = bigbrotr_core::config::load_value::<MonitorConfig>(
        value,
        true,
        "BIGBROTR_TEST_UNUSED__",
        "monitor.yaml",
    )
    .unwrap();
    assert_eq!(
        loaded.unknown_keys,
        [
            "processing.retries.nip11_info.max_atempts",
            "publishing.timout"
        ]
    );
}

#[test]
fn the_originals_cross_field_and_range_rules_hold() {
    let error = invalid(|c| {
        c.processing.retries.nip11_info.initial_delay = 5.0;
        c.processing.retries.nip11_info.max_delay = 2.0;
    });
    assert!(
        error.contains("processing.retries.nip11_info.max_delay")
            && error.contains("initial_delay"),
        "{error}"
    );
    let error = invalid(|c| c.discovery.interval = 604_801.0);
    assert!(error.contains("discovery.interval"), "{error}");
    let error = invalid(|c| c.profile.interval = 1_000_000.0);
    assert!(error.contains("profile.interval"), "{error}");
}
