//! The monitor: how healthy is each relay? Every cycle it refreshes the GeoLite databases,
//! publishes its profile (kind 0), relay list (10002) and announcement (10166) when they are due,
//! then checks every relay whose last check is older than `discovery.interval` — NIP-11 and the
//! NIP-66 checks ([`checks`]) — stores each result content-addressed with the relay's checkpoint
//! after each chunk, and publishes one kind 30166 per relay that answered.

pub mod checks;
pub mod config;
pub mod publish;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bigbrotr_core::clock;
use bigbrotr_core::config::BaseServiceConfig;
use bigbrotr_core::metrics::names::monitor as names;
use bigbrotr_core::runner::{Context, Daemon};
use bigbrotr_models::metadata::MetadataType;
use bigbrotr_models::relay::{NetworkType, Relay};
use bigbrotr_models::service_state::{Checkpoint, ServiceName, ServiceState, ServiceStateType};
use bigbrotr_nips::events::{self, Announcement, Profile};
use bigbrotr_nips::nip11::{Nip11Fetcher, Nip11Options};
use bigbrotr_nips::nip66::dns::{DnsOptions, DnsResolver};
use bigbrotr_nips::nip66::geo::GeoDatabase;
use bigbrotr_nips::nip66::geoip::{self, MaxMindDatabase, MaxMindDownload};
use bigbrotr_nips::nip66::net::AsnDatabase;
use bigbrotr_utils::http::{self, HttpOptions};
use bigbrotr_utils::network::NetworkSemaphores;
use bigbrotr_utils::relay::Connector;
use nostr::{EventBuilder, Keys};
use tokio::task::JoinSet;

use crate::checks::{Checker, RelayResult};
use crate::config::GeoSource;
pub use crate::config::{MaxMindCredentials, MonitorConfig};
use crate::publish::Publisher;

/// Checkpoint key of the kind 10166 publication.
pub const ANNOUNCEMENT_KEY: &str = "announcement";
/// Checkpoint key of the kind 0 publication.
pub const PROFILE_KEY: &str = "profile";
/// Checkpoint key of the kind 10002 publication.
pub const RELAY_LIST_KEY: &str = "relay_list";

/// Seconds a GeoLite download may take.
const GEOIP_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// What one cycle did.
#[derive(Debug, Clone, Default)]
pub struct CycleReport {
    /// Relays due.
    pub selected: u64,
    /// Relays checked.
    pub checked: u64,
    /// Relays with at least one successful check.
    pub succeeded: u64,
    /// Relays whose every check failed.
    pub failed: u64,
    /// Metadata rows stored.
    pub stored: u64,
    /// 30166 events stored by the publishing relay that took the most.
    pub discoveries_published: u64,
    /// Publications (0, 10002, 10166) sent this cycle.
    pub publications: Vec<&'static str>,
}

/// The monitor daemon.
#[derive(Debug)]
pub struct Monitor {
    config: MonitorConfig,
    keys: Keys,
    connector: Connector,
    nip11: Nip11Options,
    semaphores: NetworkSemaphores,
}

impl Monitor {
    /// A monitor with `config`, signing with `keys`, connecting through `connector` (whose
    /// networks and keys should be the configuration's) and fetching NIP-11 with `nip11`.
    pub fn new(
        config: MonitorConfig,
        keys: Keys,
        connector: Connector,
        nip11: Nip11Options,
    ) -> Self {
        let semaphores = NetworkSemaphores::new(&config.networks);
        Self {
            config,
            keys,
            connector,
            nip11,
            semaphores,
        }
    }

    /// The NIP-11 options that follow the configuration.
    pub fn nip11_options(config: &MonitorConfig) -> Nip11Options {
        Nip11Options {
            max_size: config.processing.nip11_info_max_size as usize,
            max_redirects: config.processing.nip11_max_redirects as usize,
            allow_insecure: config.processing.allow_insecure,
            ..Nip11Options::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// The monitor's public key.
    pub fn public_key(&self) -> nostr::PublicKey {
        self.keys.public_key()
    }

    /// The publication keys whose checkpoints are kept.
    fn enabled_publication_keys(&self) -> Vec<&'static str> {
        let c = &self.config;
        let mut keys = Vec::new();
        if c.announcement.enabled {
            keys.push(ANNOUNCEMENT_KEY);
        }
        if c.profile.enabled {
            keys.push(PROFILE_KEY);
        }
        if c.relay_list.enabled {
            keys.push(RELAY_LIST_KEY);
        }
        keys
    }

    /// Deletes checkpoints that belong to no relay and no enabled publication.
    pub async fn cleanup_checkpoints(&self, ctx: &Context) -> anyhow::Result<u64> {
        let keep = self.enabled_publication_keys();
        let deleted = ctx.brotr.delete_stale_monitor_checkpoints(&keep).await?;
        if deleted > 0 {
            tracing::info!(deleted, "stale_checkpoints_deleted");
        }
        Ok(deleted)
    }

    /// The MaxMind credentials named by `geo.maxmind_*_env`, from the environment.
    fn maxmind_credentials(&self) -> Option<MaxMindCredentials> {
        self.config
            .geo
            .maxmind_credentials(|name| std::env::var(name).ok())
            .inspect_err(|e| tracing::warn!(error = %e.0, "geoip_credentials_incomplete"))
            .ok()
            .flatten()
    }

    /// Downloads the GeoLite databases that are missing or stale from their source (a
    /// `geoipupdate` directory: never; MaxMind with credentials; else the configured URL;
    /// failures only warn) and opens those present.
    pub async fn load_geo_databases(&self) -> (Option<Arc<GeoDatabase>>, Option<Arc<AsnDatabase>>) {
        self.load_geo_databases_with(self.maxmind_credentials())
            .await
    }

    /// [`Self::load_geo_databases`] with the MaxMind credentials given rather than read from the
    /// environment.
    pub async fn load_geo_databases_with(
        &self,
        credentials: Option<MaxMindCredentials>,
    ) -> (Option<Arc<GeoDatabase>>, Option<Arc<AsnDatabase>>) {
        let compute = self.config.effective_compute();
        let geo = &self.config.geo;
        let city_source = geo.city_source(credentials.as_ref());
        let asn_source = geo.asn_source(credentials.as_ref());
        let downloads =
            |source: &GeoSource| matches!(source, GeoSource::MaxMind(_) | GeoSource::Url(_));
        let client = if (compute.nip66_geo && downloads(&city_source))
            || (compute.nip66_net && downloads(&asn_source))
        {
            http::client(
                NetworkType::Clearnet,
                &self.config.networks,
                &HttpOptions {
                    // MaxMind or the operator's configured mirror, not an address a relay gave.
                    operator_url: true,
                    ..HttpOptions::with_timeout(GEOIP_DOWNLOAD_TIMEOUT)
                },
            )
            .inspect_err(|e| tracing::warn!(error = %e, "geoip_client_failed"))
            .ok()
        } else {
            None
        };
        let refresh = |path: PathBuf, source: GeoSource| {
            let client = client.clone();
            let credentials = credentials.clone();
            async move {
                let Some(client) = client else {
                    return;
                };
                let source = match &source {
                    GeoSource::Url(url) => geoip::Source::Url(url),
                    GeoSource::MaxMind(edition) => {
                        let Some(credentials) = &credentials else {
                            return;
                        };
                        geoip::Source::MaxMind(MaxMindDownload {
                            base_url: &geo.maxmind_download_url,
                            edition_id: edition,
                            account_id: &credentials.account_id,
                            license_key: &credentials.license_key,
                        })
                    }
                    GeoSource::GeoIpUpdate | GeoSource::None => return,
                };
                match geoip::refresh_from(
                    &path,
                    &source,
                    geo.max_age_days,
                    geo.max_download_size as usize,
                    &client,
                )
                .await
                {
                    Ok(outcome) => {
                        tracing::debug!(path = %path.display(), outcome = ?outcome, "geoip_refresh")
                    }
                    Err(error) => {
                        let url = source.url();
                        tracing::warn!(path = %path.display(), url = url.as_str(), error = %error, "geoip_download_failed");
                    }
                }
            }
        };
        let city = if compute.nip66_geo {
            refresh(geo.city_path(), city_source).await;
            open_database(&geo.city_path()).await
        } else {
            None
        };
        let asn = if compute.nip66_net {
            refresh(geo.asn_path(), asn_source).await;
            open_database(&geo.asn_path()).await
        } else {
            None
        };
        (city, asn)
    }

    /// Logs where each GeoLite database comes from, and warns when a check that runs has neither
    /// a file nor a source.
    fn log_geo_sources(&self) {
        let compute = self.config.effective_compute();
        let geo = &self.config.geo;
        let credentials = self.maxmind_credentials();
        for (check, enabled, path, source) in [
            (
                "nip66_geo",
                compute.nip66_geo,
                geo.city_path(),
                geo.city_source(credentials.as_ref()),
            ),
            (
                "nip66_net",
                compute.nip66_net,
                geo.asn_path(),
                geo.asn_source(credentials.as_ref()),
            ),
        ] {
            if !enabled {
                continue;
            }
            let label = match &source {
                GeoSource::GeoIpUpdate => "geoipupdate".to_owned(),
                GeoSource::MaxMind(edition) => format!("maxmind:{edition}"),
                GeoSource::Url(url) => url.clone(),
                GeoSource::None => "none".to_owned(),
            };
            tracing::info!(check, path = %path.display(), source = label.as_str(), "geoip_source");
            if source == GeoSource::None && !path.exists() {
                tracing::warn!(
                    check,
                    path = %path.display(),
                    hint = format!(
                        "set {} and {} (MaxMind's GeoLite download), geo.geoipupdate_directory, \
                         or a geo.*_download_url (e.g. 6.6.9's mirror); the check is skipped \
                         until the file exists",
                        geo.maxmind_account_id_env, geo.maxmind_license_key_env
                    )
                    .as_str(),
                    "geoip_no_source"
                );
            }
        }
    }

    fn dns_options(&self) -> DnsOptions {
        let timeout = self
            .config
            .networks
            .get(NetworkType::Clearnet)
            .map_or(Duration::from_secs(10), |n| n.timeout());
        DnsOptions {
            nameservers: self
                .config
                .dns
                .nameservers
                .iter()
                .filter_map(|s| s.parse::<SocketAddr>().ok())
                .collect(),
            timeout,
        }
    }

    /// The checker of one cycle.
    pub async fn checker(&self, ctx: &Context) -> anyhow::Result<Checker> {
        let (city, asn) = self.load_geo_databases().await;
        Ok(Checker {
            connector: self.connector.clone(),
            nip11: Nip11Fetcher::new(self.config.networks.clone(), self.nip11.clone()),
            dns: DnsResolver::new(&self.dns_options())?,
            city,
            asn,
            keys: self.keys.clone(),
            compute: self.config.effective_compute(),
            retries: self.config.processing.retries,
            geohash_precision: self.config.geo.geohash_precision as usize,
            max_probe_pow: self.config.processing.max_probe_pow,
            shutdown: ctx.shutdown.clone(),
        })
    }

    fn publisher(&self) -> Publisher {
        Publisher::new(
            self.connector.clone(),
            Duration::from_secs_f64(self.config.publishing.timeout),
        )
    }

    /// One whole cycle: publications, then the checks.
    pub async fn cycle(&self, ctx: &Context) -> anyhow::Result<CycleReport> {
        let checker = self.checker(ctx).await?;
        let publisher = self.publisher();
        let mut report = CycleReport::default();
        let result = async {
            self.publish_due(ctx, &publisher, &mut report).await?;
            self.monitor(ctx, &checker, &publisher, &mut report).await
        }
        .await;
        publisher.close().await;
        result?;
        Ok(report)
    }

    async fn last_published(&self, ctx: &Context, key: &str) -> anyhow::Result<i64> {
        let rows = ctx
            .brotr
            .get_service_state(
                ServiceName::Monitor,
                ServiceStateType::Checkpoint,
                Some(key),
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|(_, value)| Checkpoint::from_value(value).ok())
            .map_or(0, |c| c.timestamp))
    }

    /// Publishes the profile, relay list and announcement that are enabled and due; a
    /// checkpoint moves only when at least one relay accepted the event.
    pub async fn publish_due(
        &self,
        ctx: &Context,
        publisher: &Publisher,
        report: &mut CycleReport,
    ) -> anyhow::Result<()> {
        let c = &self.config;
        let now = clock::now();
        let profile = Profile {
            name: c.profile.name.clone(),
            about: c.profile.about.clone(),
            picture: c.profile.picture.clone(),
            nip05: c.profile.nip05.clone(),
            website: c.profile.website.clone(),
            banner: c.profile.banner.clone(),
            lud16: c.profile.lud16.clone(),
        };
        let candidates: [(bool, &'static str, f64, &[String], EventBuilder); 3] = [
            (
                c.profile.enabled,
                PROFILE_KEY,
                c.profile.interval,
                c.relays_for(&c.profile.relays),
                events::profile(&profile),
            ),
            (
                c.relay_list.enabled,
                RELAY_LIST_KEY,
                c.relay_list.interval,
                c.relays_for(&c.relay_list.relays),
                events::relay_list(&c.publishing.relays),
            ),
            (
                c.announcement.enabled,
                ANNOUNCEMENT_KEY,
                c.announcement.interval,
                c.relays_for(&c.announcement.relays),
                events::announcement(&self.announcement()),
            ),
        ];
        for (enabled, key, interval, relays, builder) in candidates {
            if !enabled || ctx.is_stopping() {
                continue;
            }
            let last = self.last_published(ctx, key).await?;
            if ((now - last) as f64) < interval {
                continue;
            }
            let event = builder.sign_with_keys(&self.keys)?;
            let delivery = publisher.publish(&[event], relays).await;
            tracing::info!(
                publication = key,
                accepted = delivery.accepted,
                failed = delivery.failed,
                "published"
            );
            if delivery.accepted > 0 {
                let state = ServiceState::checkpoint(
                    ServiceName::Monitor,
                    key,
                    &Checkpoint { timestamp: now },
                )?;
                ctx.brotr.upsert_service_state(&[state]).await?;
                ctx.metrics
                    .inc_labelled_counter(names::EVENTS_PUBLISHED, &[("kind", key)], 1);
                report.publications.push(key);
            }
        }
        Ok(())
    }

    /// The 10166 content of this configuration.
    pub fn announcement(&self) -> Announcement {
        let c = &self.config;
        let include = c.announcement.include;
        let compute = c.effective_compute();
        let networks = c.networks.enabled();
        let timeout_ms = networks
            .first()
            .and_then(|n| c.networks.get(*n))
            .map_or(10_000, |n| n.timeout().as_millis() as u64);
        Announcement {
            frequency: c.discovery.interval as u64,
            geohash: c.announcement.geohash.clone(),
            networks,
            timeout_ms,
            rtt: include.nip66_rtt && compute.nip66_rtt,
            nip11: include.nip11_info && compute.nip11_info,
            dns: include.nip66_dns && compute.nip66_dns,
            geo: include.nip66_geo && compute.nip66_geo,
        }
    }

    /// Checks the due relays chunk by chunk.
    pub async fn monitor(
        &self,
        ctx: &Context,
        checker: &Checker,
        publisher: &Publisher,
        report: &mut CycleReport,
    ) -> anyhow::Result<()> {
        let c = &self.config;
        let now = clock::now();
        let checked_before = now - c.discovery.interval as i64;
        let targets = ctx
            .brotr
            .monitor_targets(
                &c.networks.enabled(),
                checked_before,
                c.processing.max_relays.map(i64::from),
            )
            .await?;
        report.selected = targets.len() as u64;
        init_counters(ctx);
        ctx.metrics
            .set_gauge(names::RELAYS_DUE, targets.len() as f64);
        tracing::info!(relays = targets.len(), "monitor_started");
        for chunk in targets.chunks(c.processing.chunk_size as usize) {
            if ctx.is_stopping() {
                break;
            }
            let results = self.check_chunk(ctx, checker, chunk).await;
            self.finish_chunk(ctx, publisher, results, report).await?;
        }
        ctx.metrics
            .set_gauge(names::RELAYS_CHECKED, report.checked as f64);
        ctx.metrics
            .set_gauge(names::RELAYS_SUCCEEDED, report.succeeded as f64);
        ctx.metrics
            .set_gauge(names::RELAYS_FAILED, report.failed as f64);
        tracing::info!(
            selected = report.selected,
            checked = report.checked,
            succeeded = report.succeeded,
            failed = report.failed,
            stored = report.stored,
            published = report.discoveries_published,
            "monitor_completed"
        );
        Ok(())
    }

    async fn check_chunk(
        &self,
        ctx: &Context,
        checker: &Checker,
        chunk: &[Relay],
    ) -> Vec<(Relay, RelayResult)> {
        let mut tasks = JoinSet::new();
        let mut relays_of = std::collections::HashMap::new();
        for relay in chunk {
            let task_relay = relay.clone();
            let checker = checker.clone();
            let semaphores = self.semaphores.clone();
            let shutdown = ctx.shutdown.clone();
            let timeout = self.connector.timeout(relay.network());
            let handle = tasks.spawn(async move {
                let relay = task_relay;
                let Ok(timeout) = timeout else {
                    return None;
                };
                let _permit = semaphores.acquire(relay.network()).await?;
                if shutdown.is_cancelled() {
                    return None;
                }
                let result = checker.check(&relay, timeout, clock::now()).await;
                Some((relay, result))
            });
            relays_of.insert(handle.id(), relay.clone());
        }
        let mut results = Vec::with_capacity(chunk.len());
        while let Some(joined) = tasks.join_next_with_id().await {
            match joined {
                Ok((_, Some(result))) => results.push(result),
                Ok((_, None)) => {}
                Err(error) => {
                    // A check that panicked is a failed check of that relay: it still gets its
                    // checkpoint, so it cannot stay first in line for ever.
                    tracing::error!(error = %error, "relay_check_panicked");
                    if let Some(relay) = relays_of.remove(&error.id()) {
                        let mut result = RelayResult {
                            generated_at: clock::now(),
                            ..RelayResult::default()
                        };
                        // The reason names no task id: the same failure stores the same document.
                        result.http = Some(bigbrotr_nips::CheckOutcome::failure(
                            "check aborted: the check panicked",
                        ));
                        results.push((relay, result));
                    }
                }
            }
        }
        results
    }

    async fn finish_chunk(
        &self,
        ctx: &Context,
        publisher: &Publisher,
        results: Vec<(Relay, RelayResult)>,
        report: &mut CycleReport,
    ) -> anyhow::Result<()> {
        let c = &self.config;
        let store = c.processing.store;
        let mut records = Vec::new();
        let mut checkpoints = Vec::with_capacity(results.len());
        let mut discoveries = Vec::new();
        for (relay, result) in &results {
            report.checked += 1;
            let ok = result.succeeded();
            if ok {
                report.succeeded += 1;
            } else {
                report.failed += 1;
            }
            for kind in MetadataType::ALL {
                if let Some(outcome) = result.outcome(kind) {
                    let status = if outcome.succeeded() {
                        "success"
                    } else {
                        "failure"
                    };
                    ctx.metrics.inc_labelled_counter(
                        names::CHECKS,
                        &[("type", kind.as_str()), ("status", status)],
                        1,
                    );
                }
            }
            tracing::debug!(relay = relay.url(), succeeded = ok, "relay_checked");
            records.extend(result.records(relay, &store));
            checkpoints.push(ServiceState::checkpoint(
                ServiceName::Monitor,
                relay.url(),
                &Checkpoint {
                    timestamp: clock::now(),
                },
            )?);
            if c.discovery.enabled && ok {
                let checks = result.for_discovery(&c.discovery.include);
                match events::relay_discovery(relay, &checks).sign_with_keys(&self.keys) {
                    Ok(event) => discoveries.push(event),
                    Err(error) => {
                        tracing::warn!(relay = relay.url(), error = %error, "discovery_sign_failed")
                    }
                }
            }
        }
        report.stored += ctx
            .brotr
            .store_monitor_results(&records, &checkpoints)
            .await?;
        if !discoveries.is_empty() {
            let relays = c.relays_for(&c.discovery.relays);
            let delivery = publisher.publish(&discoveries, relays).await;
            // At least this many events are on some relay.
            let published = delivery.most_accepted;
            report.discoveries_published += published as u64;
            ctx.metrics.inc_labelled_counter(
                names::EVENTS_PUBLISHED,
                &[("kind", "discovery")],
                published as u64,
            );
        }
        Ok(())
    }
}

/// Creates the labelled counters at 0 (a bounded set: 7 check types × 2 statuses, 4 publication
/// kinds), so rates and ratios have a series before the first check or publication.
fn init_counters(ctx: &Context) {
    for kind in MetadataType::ALL {
        for status in ["success", "failure"] {
            ctx.metrics.inc_labelled_counter(
                names::CHECKS,
                &[("type", kind.as_str()), ("status", status)],
                0,
            );
        }
    }
    for kind in [PROFILE_KEY, RELAY_LIST_KEY, ANNOUNCEMENT_KEY, "discovery"] {
        ctx.metrics
            .inc_labelled_counter(names::EVENTS_PUBLISHED, &[("kind", kind)], 0);
    }
}

/// Opens a GeoLite database (tens of MB read into memory) on the blocking pool.
async fn open_database<K: Send + 'static>(path: &Path) -> Option<Arc<MaxMindDatabase<K>>> {
    let path = path.to_owned();
    if !path.exists() {
        tracing::warn!(path = %path.display(), "geoip_database_missing");
        return None;
    }
    let opened = tokio::task::spawn_blocking({
        let path = path.clone();
        move || MaxMindDatabase::<K>::open(&path).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match opened {
        Ok(db) => Some(Arc::new(db)),
        Err(error) => {
            tracing::warn!(path = %path.display(), error = %error, "geoip_database_unreadable");
            None
        }
    }
}

impl Daemon for Monitor {
    const NAME: ServiceName = ServiceName::Monitor;
    type Config = MonitorConfig;

    fn base(config: &MonitorConfig) -> &BaseServiceConfig {
        &config.base
    }

    async fn build(config: MonitorConfig, _ctx: &Context) -> anyhow::Result<Self> {
        let keys = config.keys.load_optional()?.ok_or_else(|| {
            anyhow::anyhow!(
                "the monitor signs its events: set {} to a secret key (hex or nsec)",
                config.keys.keys_env
            )
        })?;
        let connector = Connector::new(config.networks.clone())?
            .with_keys(Some(keys.clone()))
            .allow_insecure(config.processing.allow_insecure);
        // Half of MaxMind's credentials is a configuration error, not a silent mirror fallback.
        config
            .geo
            .maxmind_credentials(|name| std::env::var(name).ok())
            .map_err(|e| anyhow::anyhow!(e.0))?;
        let nip11 = Self::nip11_options(&config);
        let monitor = Self::new(config, keys, connector, nip11);
        monitor.log_geo_sources();
        Ok(monitor)
    }

    async fn cleanup(&mut self, ctx: &Context) -> anyhow::Result<()> {
        self.cleanup_checkpoints(ctx).await.map(|_| ())
    }

    async fn run(&mut self, ctx: &Context) -> anyhow::Result<()> {
        self.cycle(ctx).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests;
