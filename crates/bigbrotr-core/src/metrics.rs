//! Prometheus metrics with the original's families and names, served at `/metrics` (plus
//! `/health`) in continuous mode.
//!
//! Families: `service_info{service}`, `cycle_duration_seconds{service}` (buckets 1 s … 1 h),
//! `service_gauge{service,name}` and `service_counter_total{service,name}` (the original's), plus
//! `http_request_duration_seconds{service,route,status}` for the daemons that serve HTTP (the
//! API): `route` is a route template and `status` a class (`2xx`…`5xx`), both bounded. Uses
//! `prometheus-client`, the Prometheus organisation's maintained crate (the tikv `prometheus`
//! crate has been unmaintained since 2025).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::sync::atomic::AtomicU64;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Validate};

pub mod names;

/// The cycle-duration histogram's bucket bounds, in seconds.
pub const CYCLE_BUCKETS: [f64; 10] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The request-duration histogram's bucket bounds, in seconds (1 ms … 30 s: the API's
/// `request_timeout` is at most 300 s, but anything past 30 s is already an alert).
pub const REQUEST_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// `metrics:` in a service file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Serve the endpoint (continuous mode only).
    pub enabled: bool,
    /// TCP port (1024–65535).
    pub port: u16,
    /// Listen address.
    pub host: String,
    /// Path of the exposition endpoint.
    pub path: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            port: 8000,
            host: "127.0.0.1".into(),
            path: "/metrics".into(),
        }
    }
}

impl Validate for MetricsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.port < 1024 {
            return Err(ConfigError(format!(
                "metrics.port = {} is out of range (1024..=65535)",
                self.port
            )));
        }
        if !self.path.starts_with('/') || self.path == "/health" {
            return Err(ConfigError(format!(
                "metrics.path {:?} must start with '/' and differ from /health",
                self.path
            )));
        }
        if !is_host(&self.host) {
            return Err(ConfigError(format!(
                "metrics.host {:?} must be an IP address or a host name",
                self.host
            )));
        }
        Ok(())
    }
}

/// An IP address or a DNS host name (`localhost`, as the original accepts): what a listener can
/// bind to after resolution.
pub fn is_host(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }))
}

type Labels = Vec<(String, String)>;

/// One process's metrics, labelled with its service name. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    service: String,
    registry: Arc<Registry>,
    gauges: Family<Labels, Gauge<f64, AtomicU64>>,
    counters: Family<Labels, Counter>,
    cycles: Family<Labels, Histogram, fn() -> Histogram>,
    requests: Family<Labels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("service", &self.service)
            .finish()
    }
}

impl Metrics {
    /// Registers the four families for `service`.
    pub fn new(service: &str) -> Self {
        let mut registry = Registry::default();
        let gauges = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let counters = Family::<Labels, Counter>::default();
        let cycles = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
            Histogram::new(CYCLE_BUCKETS)
        });
        let requests = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
            Histogram::new(REQUEST_BUCKETS)
        });
        registry.register(
            "service",
            "Static service metadata",
            Info::new(vec![("service".to_owned(), service.to_owned())]),
        );
        registry.register(
            "cycle_duration_seconds",
            "Duration of service cycles",
            cycles.clone(),
        );
        registry.register(
            "service_gauge",
            "Point-in-time service state",
            gauges.clone(),
        );
        registry.register(
            "service_counter",
            "Cumulative service totals",
            counters.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Duration of HTTP requests served, by route template and status class",
            requests.clone(),
        );
        Self {
            service: service.to_owned(),
            registry: Arc::new(registry),
            gauges,
            counters,
            cycles,
            requests,
        }
    }

    fn labels(&self, name: &str) -> Labels {
        vec![
            ("service".to_owned(), self.service.clone()),
            ("name".to_owned(), name.to_owned()),
        ]
    }

    /// Sets `service_gauge{name}`.
    pub fn set_gauge(&self, name: &str, value: f64) {
        self.gauges.get_or_create(&self.labels(name)).set(value);
    }

    /// Sets `database_replay_lag_seconds` from a replication sample: the lag on a standby
    /// (NaN while it is not known), -1 on a primary.
    pub fn set_replication(&self, replication: &bigbrotr_db::replication::Replication) {
        let value = match (replication.standby, replication.replay_lag_seconds) {
            (false, _) => -1.0,
            (true, Some(lag)) => lag,
            (true, None) => f64::NAN,
        };
        self.set_gauge(names::api::DATABASE_REPLAY_LAG_SECONDS, value);
    }

    /// Reads `service_gauge{name}` (0 when never set).
    pub fn gauge(&self, name: &str) -> f64 {
        self.gauges.get_or_create(&self.labels(name)).get()
    }

    /// Adds to `service_counter_total{name}`.
    pub fn inc_counter(&self, name: &str, by: u64) {
        self.counters.get_or_create(&self.labels(name)).inc_by(by);
    }

    /// Adds to `service_counter_total{name, <labels>}` (for bounded breakdowns such as the
    /// monitor's check type and status; never a relay URL or another unbounded value).
    pub fn inc_labelled_counter(&self, name: &str, labels: &[(&str, &str)], by: u64) {
        let mut all = self.labels(name);
        all.extend(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.counters.get_or_create(&all).inc_by(by);
    }

    /// Reads `service_counter_total{name, <labels>}`.
    pub fn labelled_counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut all = self.labels(name);
        all.extend(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.counters.get_or_create(&all).get()
    }

    /// Reads `service_counter_total{name}`.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get_or_create(&self.labels(name)).get()
    }

    /// Observes one cycle's duration.
    pub fn observe_cycle(&self, seconds: f64) {
        self.cycles
            .get_or_create(&vec![("service".to_owned(), self.service.clone())])
            .observe(seconds);
    }

    /// Observes one served HTTP request. `route` must be a route template (bounded), not a path;
    /// `status` is folded into its class (`2xx` …).
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&vec![
                ("service".to_owned(), self.service.clone()),
                ("route".to_owned(), route.to_owned()),
                ("status".to_owned(), class.to_owned()),
            ])
            .observe(seconds);
    }

    /// The text exposition of every family.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Serves `config.path` and `/health` until `shutdown` fires. Returns the bound address
    /// (port 0 picks a free one).
    pub async fn serve(
        &self,
        config: &MetricsConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<SocketAddr> {
        // A host name (`localhost`) is resolved; the first address that binds serves.
        let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port)).await?;
        let address = listener.local_addr()?;
        let app = Router::new()
            .route(&config.path, get(metrics_handler))
            .route("/health", get(health_handler))
            .with_state(self.clone());
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(error = %error, "metrics_server_failed");
            }
        });
        Ok(address)
    }
}

async fn metrics_handler(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn health_handler(State(metrics): State<Metrics>) -> impl IntoResponse {
    let body = serde_json::json!({
        "status": "ok",
        "service": metrics.service,
        "last_cycle_timestamp": metrics.gauge(names::common::LAST_CYCLE_TIMESTAMP),
        "consecutive_failures": metrics.gauge(names::common::CONSECUTIVE_FAILURES),
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn the_families_have_the_originals_names_and_labels() {
        let metrics = Metrics::new("seeder");
        metrics.set_gauge("consecutive_failures", 2.0);
        metrics.inc_counter("cycles_success", 3);
        metrics.observe_cycle(7.0);
        let text = metrics.encode();
        assert!(
            text.contains(r#"service_info{service="seeder"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"service_gauge{service="seeder",name="consecutive_failures"} 2.0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"service_counter_total{service="seeder",name="cycles_success"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cycle_duration_seconds_bucket{le="5.0",service="seeder"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cycle_duration_seconds_bucket{le="10.0",service="seeder"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cycle_duration_seconds_bucket{le="3600.0",service="seeder"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn request_durations_are_labelled_by_route_template_and_status_class() {
        let metrics = Metrics::new("api");
        metrics.observe_request("/v1/{table}", 200, 0.003);
        metrics.observe_request("/v1/{table}", 404, 0.002);
        metrics.observe_request("/v1/{table}", 204, 0.02);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"http_request_duration_seconds_count{service="api",route="/v1/{table}",status="2xx"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"http_request_duration_seconds_bucket{le="0.005",service="api",route="/v1/{table}",status="2xx"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"http_request_duration_seconds_count{service="api",route="/v1/{table}",status="4xx"} 1"#
            ),
            "{text}"
        );
    }

    async fn get(address: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn metrics_and_health_are_served_until_shutdown() {
        let metrics = Metrics::new("seeder");
        metrics.inc_counter("cycles_success", 1);
        let config = MetricsConfig {
            port: 0,
            path: "/custom".into(),
            ..MetricsConfig::default()
        };
        let shutdown = CancellationToken::new();
        let address = metrics.serve(&config, shutdown.clone()).await.unwrap();
        assert!(address.ip().is_loopback());
        let body = get(address, "/custom").await;
        assert!(body.starts_with("HTTP/1.0 200"), "{body}");
        assert!(body.contains("service_counter_total"), "{body}");
        let health = get(address, "/health").await;
        assert!(
            health.starts_with("HTTP/1.0 200") && health.contains(r#""status":"ok""#),
            "{health}"
        );
        let missing = get(address, "/metrics").await;
        assert!(missing.starts_with("HTTP/1.0 404"), "{missing}");
        shutdown.cancel();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            tokio::net::TcpStream::connect(address).await.is_err(),
            "the listener is closed"
        );
    }

    #[test]
    fn config_validation_names_the_key() {
        let mut config = MetricsConfig::default();
        config.validate().unwrap();
        config.port = 80;
        assert!(config.validate().unwrap_err().0.contains("metrics.port"));
        config = MetricsConfig {
            host: "not a host!".into(),
            ..MetricsConfig::default()
        };
        assert!(config.validate().unwrap_err().0.contains("metrics.host"));
        // The original binds host names too.
        for host in ["localhost", "metrics.internal", "::1", "0.0.0.0"] {
            config = MetricsConfig {
                host: host.into(),
                ..MetricsConfig::default()
            };
            config.validate().unwrap();
        }
        config = MetricsConfig {
            path: "/health".into(),
            ..MetricsConfig::default()
        };
        assert!(config.validate().unwrap_err().0.contains("metrics.path"));
    }
}
