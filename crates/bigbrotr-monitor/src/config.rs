//! `monitor.yaml`: processing (chunks, retries, compute/store flags), GeoLite databases,
//! publishing relays and the four publications (discovery 30166, announcement 10166, profile 0,
//! relay list 10002), with the original's keys, defaults, ranges and cross-checks.

use std::time::Duration;

use bigbrotr_core::config::{BaseServiceConfig, ConfigError, KeysConfig, Validate};
use bigbrotr_models::metadata::MetadataType;
use bigbrotr_models::relay::{NetworkType, parse_relay};
use bigbrotr_utils::network::NetworksConfig;
use serde::{Deserialize, Serialize};

/// `monitor.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MonitorConfig {
    /// The keys every service has.
    #[serde(flatten)]
    pub base: BaseServiceConfig,
    /// `keys:` — the signer of the published events and of the RTT write probe (required).
    pub keys: KeysConfig,
    /// `networks:`.
    pub networks: NetworksConfig,
    /// `processing:`.
    pub processing: ProcessingConfig,
    /// `geo:`.
    pub geo: GeoConfig,
    /// `dns:` — the resolver of the DNS, Geo and Net checks (beyond the original).
    pub dns: DnsConfig,
    /// `publishing:`.
    pub publishing: PublishingConfig,
    /// `discovery:` — kind 30166, one per checked relay.
    pub discovery: DiscoveryConfig,
    /// `announcement:` — kind 10166.
    pub announcement: AnnouncementConfig,
    /// `profile:` — kind 0.
    pub profile: ProfileConfig,
    /// `relay_list:` — kind 10002.
    pub relay_list: RelayListConfig,
}

/// One flag per metadata type (`compute`, `store`, `include`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetadataFlags {
    /// NIP-11.
    pub nip11_info: bool,
    /// RTT.
    pub nip66_rtt: bool,
    /// SSL.
    pub nip66_ssl: bool,
    /// Geo.
    pub nip66_geo: bool,
    /// Net.
    pub nip66_net: bool,
    /// DNS.
    pub nip66_dns: bool,
    /// HTTP.
    pub nip66_http: bool,
}

impl Default for MetadataFlags {
    fn default() -> Self {
        Self::all(true)
    }
}

impl MetadataFlags {
    /// Every flag set to `value`.
    pub fn all(value: bool) -> Self {
        Self {
            nip11_info: value,
            nip66_rtt: value,
            nip66_ssl: value,
            nip66_geo: value,
            nip66_net: value,
            nip66_dns: value,
            nip66_http: value,
        }
    }

    /// The flag of `kind`.
    pub fn get(&self, kind: MetadataType) -> bool {
        match kind {
            MetadataType::Nip11Info => self.nip11_info,
            MetadataType::Nip66Rtt => self.nip66_rtt,
            MetadataType::Nip66Ssl => self.nip66_ssl,
            MetadataType::Nip66Geo => self.nip66_geo,
            MetadataType::Nip66Net => self.nip66_net,
            MetadataType::Nip66Dns => self.nip66_dns,
            MetadataType::Nip66Http => self.nip66_http,
        }
    }

    /// Types set here and not in `superset`.
    pub fn missing_from(&self, superset: &MetadataFlags) -> Vec<&'static str> {
        MetadataType::ALL
            .into_iter()
            .filter(|kind| self.get(*kind) && !superset.get(*kind))
            .map(MetadataType::as_str)
            .collect()
    }
}

/// Retry policy of one check type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryConfig {
    /// Retries after the first attempt (0–10).
    pub max_attempts: u32,
    /// Seconds before the first retry (0.1–10).
    pub initial_delay: f64,
    /// Largest delay in seconds (1–60).
    pub max_delay: f64,
    /// Up to this many seconds added at random (0–2).
    pub jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 0,
            initial_delay: 1.0,
            max_delay: 10.0,
            jitter: 0.5,
        }
    }
}

impl RetryConfig {
    /// The delay before retry `n` (0-based) without jitter: `min(initial·2^n, max)`.
    pub fn base_delay(&self, n: u32) -> Duration {
        let delay = self.initial_delay * 2_f64.powi(n.min(30) as i32);
        Duration::from_secs_f64(delay.min(self.max_delay).max(0.0))
    }
}

/// `processing.retries`: one policy per type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetriesConfig {
    /// NIP-11.
    pub nip11_info: RetryConfig,
    /// RTT.
    pub nip66_rtt: RetryConfig,
    /// SSL.
    pub nip66_ssl: RetryConfig,
    /// Geo.
    pub nip66_geo: RetryConfig,
    /// Net.
    pub nip66_net: RetryConfig,
    /// DNS.
    pub nip66_dns: RetryConfig,
    /// HTTP.
    pub nip66_http: RetryConfig,
}

impl RetriesConfig {
    /// The policy of `kind`.
    pub fn get(&self, kind: MetadataType) -> &RetryConfig {
        match kind {
            MetadataType::Nip11Info => &self.nip11_info,
            MetadataType::Nip66Rtt => &self.nip66_rtt,
            MetadataType::Nip66Ssl => &self.nip66_ssl,
            MetadataType::Nip66Geo => &self.nip66_geo,
            MetadataType::Nip66Net => &self.nip66_net,
            MetadataType::Nip66Dns => &self.nip66_dns,
            MetadataType::Nip66Http => &self.nip66_http,
        }
    }
}

/// `processing:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessingConfig {
    /// Relays per chunk; results and checkpoints are stored after each chunk (10–1000).
    pub chunk_size: u32,
    /// Relays checked per cycle at most (`null` = all due).
    pub max_relays: Option<u32>,
    /// Retry a clearnet relay whose certificate is rejected without verification.
    pub allow_insecure: bool,
    /// Largest NIP-11 body in bytes (1 KiB–10 MiB).
    pub nip11_info_max_size: u32,
    /// Redirects followed when fetching NIP-11 (0–10, beyond the original).
    pub nip11_max_redirects: u32,
    /// Most proof-of-work bits the RTT write probe mines (0–32, beyond the original).
    pub max_probe_pow: u8,
    /// Per-type retries.
    pub retries: RetriesConfig,
    /// Which checks run.
    pub compute: MetadataFlags,
    /// Which results are stored (⊆ compute).
    pub store: MetadataFlags,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self {
            chunk_size: 100,
            max_relays: None,
            allow_insecure: false,
            nip11_info_max_size: 1_048_576,
            nip11_max_redirects: 3,
            max_probe_pow: 20,
            retries: RetriesConfig::default(),
            compute: MetadataFlags::default(),
            store: MetadataFlags::default(),
        }
    }
}

/// The third-party mirror 6.6.9 downloads from by default (an opt-in here: set
/// `geo.city_download_url` / `geo.asn_download_url` to `<this>/GeoLite2-City.mmdb`, ...).
pub const GEOLITE_MIRROR: &str = "https://github.com/P3TERX/GeoLite.mmdb/raw/download";

/// `geo:` — the GeoLite2 databases of the Geo and Net checks, and where they come from: the
/// files of a `geoipupdate` directory (no download); else MaxMind's own download when its
/// credentials are in the environment; else a URL serving the `.mmdb` (a mirror, opt-in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GeoConfig {
    /// City database file.
    pub city_database_path: String,
    /// ASN database file.
    pub asn_database_path: String,
    /// A URL serving the City `.mmdb` itself, used without MaxMind credentials (empty = none;
    /// 6.6.9's default was a third-party mirror, [`GEOLITE_MIRROR`]).
    pub city_download_url: String,
    /// The same for the ASN database.
    pub asn_download_url: String,
    /// Re-download when the file is older than this many days (`null` = never).
    pub max_age_days: Option<u32>,
    /// Largest download in bytes (from MaxMind: the archive, and the database in it).
    pub max_download_size: u64,
    /// Geohash characters (1–12; 9 ≈ 4.8 m).
    pub geohash_precision: u32,
    /// Environment variable holding the MaxMind account ID (new).
    pub maxmind_account_id_env: String,
    /// Environment variable holding the MaxMind licence key (new).
    pub maxmind_license_key_env: String,
    /// MaxMind's download service; an edition is `<this>/<edition>/download?suffix=tar.gz` (new).
    pub maxmind_download_url: String,
    /// The City edition, also the file name in a `geoipupdate` directory (new).
    pub city_edition_id: String,
    /// The ASN edition (new).
    pub asn_edition_id: String,
    /// A directory kept by MaxMind's `geoipupdate` (`<edition>.mmdb` files): read from there,
    /// never downloaded; the `*_database_path` keys are then unused (new; `null` = none).
    pub geoipupdate_directory: Option<String>,
}

impl Default for GeoConfig {
    fn default() -> Self {
        Self {
            city_database_path: "static/GeoLite2-City.mmdb".to_owned(),
            asn_database_path: "static/GeoLite2-ASN.mmdb".to_owned(),
            city_download_url: String::new(),
            asn_download_url: String::new(),
            max_age_days: Some(30),
            max_download_size: 100_000_000,
            geohash_precision: 9,
            maxmind_account_id_env: "MAXMIND_ACCOUNT_ID".to_owned(),
            maxmind_license_key_env: "MAXMIND_LICENSE_KEY".to_owned(),
            maxmind_download_url: "https://download.maxmind.com/geoip/databases".to_owned(),
            city_edition_id: "GeoLite2-City".to_owned(),
            asn_edition_id: "GeoLite2-ASN".to_owned(),
            geoipupdate_directory: None,
        }
    }
}

/// MaxMind credentials read from the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct MaxMindCredentials {
    /// The account ID.
    pub account_id: String,
    /// The licence key.
    pub license_key: String,
}

impl std::fmt::Debug for MaxMindCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaxMindCredentials")
            .field("account_id", &self.account_id)
            .field("license_key", &"<redacted>")
            .finish()
    }
}

/// Where one database comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeoSource {
    /// A `geoipupdate` directory's file: nothing is downloaded.
    GeoIpUpdate,
    /// MaxMind's download service, this edition.
    MaxMind(String),
    /// A URL serving the `.mmdb` (a mirror).
    Url(String),
    /// Nothing: the file is used as it is, if it exists.
    None,
}

impl GeoConfig {
    /// The City database file: in the `geoipupdate` directory when one is set.
    pub fn city_path(&self) -> std::path::PathBuf {
        self.database_path(&self.city_database_path, &self.city_edition_id)
    }

    /// The ASN database file: in the `geoipupdate` directory when one is set.
    pub fn asn_path(&self) -> std::path::PathBuf {
        self.database_path(&self.asn_database_path, &self.asn_edition_id)
    }

    fn database_path(&self, path: &str, edition: &str) -> std::path::PathBuf {
        match &self.geoipupdate_directory {
            Some(directory) => std::path::Path::new(directory).join(format!("{edition}.mmdb")),
            None => path.into(),
        }
    }

    /// The MaxMind credentials from `lookup` (the environment): both variables set and not
    /// empty, or neither (`None`); one without the other is an error naming both.
    pub fn maxmind_credentials(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<MaxMindCredentials>, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        match (
            get(&self.maxmind_account_id_env),
            get(&self.maxmind_license_key_env),
        ) {
            (Some(account_id), Some(license_key)) => Ok(Some(MaxMindCredentials {
                account_id: account_id.trim().to_owned(),
                license_key: license_key.trim().to_owned(),
            })),
            (None, None) => Ok(None),
            _ => Err(ConfigError(format!(
                "geo: set both {} and {} (MaxMind's GeoLite download) or neither",
                self.maxmind_account_id_env, self.maxmind_license_key_env
            ))),
        }
    }

    /// Where the City database comes from, given the credentials.
    pub fn city_source(&self, credentials: Option<&MaxMindCredentials>) -> GeoSource {
        self.source(credentials, &self.city_edition_id, &self.city_download_url)
    }

    /// Where the ASN database comes from, given the credentials.
    pub fn asn_source(&self, credentials: Option<&MaxMindCredentials>) -> GeoSource {
        self.source(credentials, &self.asn_edition_id, &self.asn_download_url)
    }

    fn source(
        &self,
        credentials: Option<&MaxMindCredentials>,
        edition: &str,
        url: &str,
    ) -> GeoSource {
        if self.geoipupdate_directory.is_some() {
            GeoSource::GeoIpUpdate
        } else if credentials.is_some() {
            GeoSource::MaxMind(edition.to_owned())
        } else if !url.is_empty() {
            GeoSource::Url(url.to_owned())
        } else {
            GeoSource::None
        }
    }
}

/// `dns:` — which name servers the DNS check asks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsConfig {
    /// `ip:port` of the name servers (empty = the system's `/etc/resolv.conf`).
    pub nameservers: Vec<String>,
}

/// The publishing relays the original ships with.
fn default_publishing_relays() -> Vec<String> {
    [
        "wss://relay.mostr.pub",
        "wss://relay.damus.io",
        "wss://nos.lol",
        "wss://relay.primal.net",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// `publishing:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PublishingConfig {
    /// Relays the events go to unless a publication names its own.
    pub relays: Vec<String>,
    /// Seconds to wait for each relay's `OK`.
    pub timeout: f64,
}

impl Default for PublishingConfig {
    fn default() -> Self {
        Self {
            relays: default_publishing_relays(),
            timeout: 30.0,
        }
    }
}

/// `discovery:` — kind 30166.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscoveryConfig {
    /// Publish 30166 events.
    pub enabled: bool,
    /// Seconds between checks of one relay (also the 10166 `frequency`, ≥ 60).
    pub interval: f64,
    /// Which results go into the events (⊆ compute).
    pub include: MetadataFlags,
    /// Relays (`null` = `publishing.relays`).
    pub relays: Option<Vec<String>>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: 14_400.0,
            include: MetadataFlags::default(),
            relays: None,
        }
    }
}

/// `announcement:` — kind 10166.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnnouncementConfig {
    /// Publish the announcement.
    pub enabled: bool,
    /// Seconds between publications (≥ 60).
    pub interval: f64,
    /// The monitor's geohash (`g`).
    pub geohash: Option<String>,
    /// Which checks are announced (⊆ compute).
    pub include: MetadataFlags,
    /// Relays (`null` = `publishing.relays`).
    pub relays: Option<Vec<String>>,
}

impl Default for AnnouncementConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: 86_400.0,
            geohash: None,
            include: MetadataFlags::default(),
            relays: None,
        }
    }
}

/// `profile:` — kind 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileConfig {
    /// Publish the profile.
    pub enabled: bool,
    /// Seconds between publications (≥ 60).
    pub interval: f64,
    /// Relays (`null` = `publishing.relays`).
    pub relays: Option<Vec<String>>,
    /// `name`.
    pub name: Option<String>,
    /// `about`.
    pub about: Option<String>,
    /// `picture`.
    pub picture: Option<String>,
    /// `nip05`.
    pub nip05: Option<String>,
    /// `website`.
    pub website: Option<String>,
    /// `banner`.
    pub banner: Option<String>,
    /// `lud16`.
    pub lud16: Option<String>,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: 86_400.0,
            relays: None,
            name: Some("BigBrotr Monitor".to_owned()),
            about: Some("Nostr relay monitoring service".to_owned()),
            picture: None,
            nip05: None,
            website: None,
            banner: None,
            lud16: None,
        }
    }
}

/// `relay_list:` — kind 10002.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RelayListConfig {
    /// Publish the relay list.
    pub enabled: bool,
    /// Seconds between publications (≥ 60).
    pub interval: f64,
    /// Relays (`null` = `publishing.relays`).
    pub relays: Option<Vec<String>>,
}

impl Default for RelayListConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: 86_400.0,
            relays: None,
        }
    }
}

fn range_f64(key: &str, value: f64, low: f64, high: f64) -> Result<(), ConfigError> {
    if !value.is_finite() || value < low || value > high {
        return Err(ConfigError(format!(
            "{key} = {value} is out of range ({low}..={high})"
        )));
    }
    Ok(())
}

fn range_u64(key: &str, value: u64, low: u64, high: u64) -> Result<(), ConfigError> {
    if value < low || value > high {
        return Err(ConfigError(format!(
            "{key} = {value} is out of range ({low}..={high})"
        )));
    }
    Ok(())
}

fn check_relays(key: &str, relays: &[String]) -> Result<(), ConfigError> {
    for (i, url) in relays.iter().enumerate() {
        parse_relay(url, 0).map_err(|e| ConfigError(format!("{key}[{i}] = {url}: {e}")))?;
    }
    Ok(())
}

impl MonitorConfig {
    /// The checks that run: `compute`, minus the clearnet-only checks when clearnet is off.
    pub fn effective_compute(&self) -> MetadataFlags {
        let mut flags = self.processing.compute;
        if !self.networks.enabled().contains(&NetworkType::Clearnet) {
            flags.nip66_ssl = false;
            flags.nip66_geo = false;
            flags.nip66_net = false;
            flags.nip66_dns = false;
        }
        flags
    }

    /// The relays of a publication: its own list, or `publishing.relays`.
    pub fn relays_for<'a>(&'a self, own: &'a Option<Vec<String>>) -> &'a [String] {
        own.as_deref().unwrap_or(&self.publishing.relays)
    }
}

impl Validate for MonitorConfig {
    fn shapes() -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("processing.max_relays", serde_json::Value::from(0)),
            ("geo.max_age_days", serde_json::Value::from(0)),
        ]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.base.validate()?;
        self.networks
            .validate()
            .map_err(|e| ConfigError(e.to_string()))?;
        let p = &self.processing;
        range_u64("processing.chunk_size", p.chunk_size.into(), 10, 1000)?;
        if p.max_relays == Some(0) {
            return Err(ConfigError(
                "processing.max_relays must be at least 1 (or null)".to_owned(),
            ));
        }
        range_u64(
            "processing.nip11_info_max_size",
            p.nip11_info_max_size.into(),
            1024,
            10_485_760,
        )?;
        range_u64(
            "processing.nip11_max_redirects",
            p.nip11_max_redirects.into(),
            0,
            10,
        )?;
        range_u64("processing.max_probe_pow", p.max_probe_pow.into(), 0, 32)?;
        for kind in MetadataType::ALL {
            let r = p.retries.get(kind);
            let key = format!("processing.retries.{kind}");
            range_u64(&format!("{key}.max_attempts"), r.max_attempts.into(), 0, 10)?;
            range_f64(&format!("{key}.initial_delay"), r.initial_delay, 0.1, 10.0)?;
            range_f64(&format!("{key}.max_delay"), r.max_delay, 1.0, 60.0)?;
            if r.max_delay < r.initial_delay {
                return Err(ConfigError(format!(
                    "{key}.max_delay ({}) must be >= {key}.initial_delay ({}), as the original \
                     requires",
                    r.max_delay, r.initial_delay
                )));
            }
            range_f64(&format!("{key}.jitter"), r.jitter, 0.0, 2.0)?;
        }
        let missing = p.store.missing_from(&p.compute);
        if !missing.is_empty() {
            return Err(ConfigError(format!(
                "Cannot store metadata that is not computed: {}. Enable in processing.compute.* \
                 or disable in processing.store.*",
                missing.join(", ")
            )));
        }
        if self.discovery.enabled {
            let missing = self.discovery.include.missing_from(&p.compute);
            if !missing.is_empty() {
                return Err(ConfigError(format!(
                    "Cannot publish metadata that is not computed: {}. Enable in \
                     processing.compute.* or disable in discovery.include.*",
                    missing.join(", ")
                )));
            }
        }
        if self.announcement.enabled {
            let missing = self.announcement.include.missing_from(&p.compute);
            if !missing.is_empty() {
                return Err(ConfigError(format!(
                    "Cannot announce metadata that is not computed: {}. Enable in \
                     processing.compute.* or disable in announcement.include.*",
                    missing.join(", ")
                )));
            }
        }
        // A database with no file and no source is not an error (6.6.9's was, but its default
        // always had a source: a mirror that is opt-in here): the monitor warns and skips the
        // Geo or Net check until a file is there.
        let g = &self.geo;
        for (key, value) in [
            ("geo.city_download_url", &g.city_download_url),
            ("geo.asn_download_url", &g.asn_download_url),
            ("geo.maxmind_download_url", &g.maxmind_download_url),
        ] {
            if !(value.is_empty() || value.starts_with("https://") || value.starts_with("http://"))
            {
                return Err(ConfigError(format!("{key} = {value}: not an http(s) URL")));
            }
        }
        for (key, value) in [
            ("geo.maxmind_account_id_env", &g.maxmind_account_id_env),
            ("geo.maxmind_license_key_env", &g.maxmind_license_key_env),
            ("geo.city_edition_id", &g.city_edition_id),
            ("geo.asn_edition_id", &g.asn_edition_id),
        ] {
            if value.is_empty()
                || !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ConfigError(format!(
                    "{key} = {value:?}: letters, digits, '_' and '-' only"
                )));
            }
        }
        if g.maxmind_download_url.is_empty() {
            return Err(ConfigError(
                "geo.maxmind_download_url: MaxMind's download service URL, not empty".to_owned(),
            ));
        }
        if g.geoipupdate_directory.as_deref() == Some("") {
            return Err(ConfigError(
                "geo.geoipupdate_directory: a directory, or null".to_owned(),
            ));
        }
        if g.max_age_days == Some(0) {
            return Err(ConfigError(
                "geo.max_age_days must be at least 1 (or null)".to_owned(),
            ));
        }
        range_u64(
            "geo.max_download_size",
            g.max_download_size,
            1_000_000,
            500_000_000,
        )?;
        range_u64("geo.geohash_precision", g.geohash_precision.into(), 1, 12)?;
        for (i, server) in self.dns.nameservers.iter().enumerate() {
            server.parse::<std::net::SocketAddr>().map_err(|e| {
                ConfigError(format!(
                    "dns.nameservers[{i}] = {server}: not ip:port ({e})"
                ))
            })?;
        }
        range_f64("publishing.timeout", self.publishing.timeout, 1.0, 300.0)?;
        check_relays("publishing.relays", &self.publishing.relays)?;
        for (key, interval, relays) in [
            ("discovery", self.discovery.interval, &self.discovery.relays),
            (
                "announcement",
                self.announcement.interval,
                &self.announcement.relays,
            ),
            ("profile", self.profile.interval, &self.profile.relays),
            (
                "relay_list",
                self.relay_list.interval,
                &self.relay_list.relays,
            ),
        ] {
            // The original's range: at most a week.
            if !interval.is_finite() || !(60.0..=604_800.0).contains(&interval) {
                return Err(ConfigError(format!(
                    "{key}.interval = {interval} is out of range (60..=604800)"
                )));
            }
            if let Some(relays) = relays {
                check_relays(&format!("{key}.relays"), relays)?;
            }
        }
        if let Some(geohash) = &self.announcement.geohash
            && (geohash.is_empty()
                || geohash.len() > 12
                || !geohash
                    .chars()
                    .all(|c| "0123456789bcdefghjkmnpqrstuvwxyz".contains(c)))
        {
            return Err(ConfigError(format!(
                "announcement.geohash = {geohash} is not a geohash"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
