//! The API phase: fetch each HTTP source (respecting its cooldown), select relay URLs with its
//! JMESPath expression, and store them as candidates with the sources' checkpoints.

use std::collections::BTreeMap;
use std::time::Duration;

use bigbrotr_core::clock;
use bigbrotr_core::runner::Context;
use bigbrotr_models::relay::{NetworkType, Relay, parse_relay};
use bigbrotr_models::service_state::{Checkpoint, ServiceName, ServiceState, ServiceStateType};
use bigbrotr_utils::http::{self, HttpOptions};
use bigbrotr_utils::network::NetworksConfig;

use crate::config::{ApiConfig, ApiSource};

/// What the API phase did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiReport {
    /// Sources fetched successfully.
    pub fetched: usize,
    /// Sources skipped for their cooldown.
    pub cooling: usize,
    /// Sources that failed.
    pub failed: usize,
    /// Distinct relay URLs found.
    pub found: usize,
    /// Candidates added.
    pub added: u64,
}

/// A source with its compiled expression.
pub(crate) struct CompiledSource {
    pub(crate) source: ApiSource,
    pub(crate) expression: jmespath::Expression<'static>,
}

/// Compiles the enabled sources' expressions (already checked by the configuration).
pub(crate) fn compile(config: &ApiConfig) -> anyhow::Result<Vec<CompiledSource>> {
    config
        .sources
        .iter()
        .filter(|s| s.enabled)
        .map(|source| {
            let expression = jmespath::compile(&source.expression)
                .map_err(|e| anyhow::anyhow!("{}: {e}", source.expression))?;
            Ok(CompiledSource {
                source: source.clone(),
                expression,
            })
        })
        .collect()
}

/// Relay URLs selected from a JSON body: the expression must give a list; its string items are
/// parsed and deduplicated (others are ignored).
pub fn select_relays(
    body: &[u8],
    expression: &jmespath::Expression<'_>,
    now: i64,
) -> anyhow::Result<Vec<Relay>> {
    let json: serde_json::Value = serde_json::from_slice(body)?;
    let data = jmespath::Variable::try_from(json)?;
    let result = expression.search(data)?;
    let items = result
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("expression result is not a list"))?;
    let mut relays = BTreeMap::new();
    for item in items {
        if let Some(text) = item.as_string()
            && let Ok(relay) = parse_relay(text, now)
        {
            relays.entry(relay.url().to_owned()).or_insert(relay);
        }
    }
    Ok(relays.into_values().collect())
}

async fn fetch(
    compiled: &CompiledSource,
    networks: &NetworksConfig,
    max_bytes: usize,
    now: i64,
) -> anyhow::Result<Vec<Relay>> {
    let source = &compiled.source;
    let options = HttpOptions {
        timeout: Duration::from_secs_f64(source.timeout),
        connect_timeout: Duration::from_secs_f64(source.connect_timeout),
        allow_insecure: source.allow_insecure,
        // The operator's configured source, not an address a relay gave.
        operator_url: true,
        ..HttpOptions::with_timeout(Duration::from_secs_f64(source.timeout))
    };
    let client = http::client(NetworkType::Clearnet, networks, &options)?;
    let response = http::send_bounded(client.get(&source.url), max_bytes).await?;
    if !(200..300).contains(&response.status) {
        anyhow::bail!("HTTP status {}", response.status);
    }
    select_relays(&response.body, &compiled.expression, now)
}

/// Runs the API phase.
pub(crate) async fn run(
    ctx: &Context,
    config: &ApiConfig,
    sources: &[CompiledSource],
    networks: &NetworksConfig,
) -> anyhow::Result<ApiReport> {
    let mut report = ApiReport::default();
    let checkpoints: BTreeMap<String, i64> = ctx
        .brotr
        .get_service_state(ServiceName::Finder, ServiceStateType::Checkpoint, None)
        .await?
        .into_iter()
        .map(|(key, value)| {
            let last = Checkpoint::from_value(&value).map_or(0, |c| c.timestamp);
            (key, last)
        })
        .collect();
    let mut found: BTreeMap<String, Relay> = BTreeMap::new();
    let mut fetched_sources = Vec::new();
    let mut first = true;
    for compiled in sources {
        if ctx.is_stopping() {
            break;
        }
        let url = &compiled.source.url;
        let now = clock::now();
        let last = checkpoints.get(url).copied().unwrap_or(0);
        if ((now - last) as f64) < config.cooldown {
            report.cooling += 1;
            continue;
        }
        if !first
            && !ctx
                .sleep(Duration::from_secs_f64(config.request_delay))
                .await
        {
            break;
        }
        first = false;
        let max = usize::try_from(config.max_response_size).unwrap_or(usize::MAX);
        match fetch(compiled, networks, max, now).await {
            Ok(relays) => {
                tracing::info!(source = %url, relays = relays.len(), "api_source_fetched");
                report.fetched += 1;
                for relay in relays {
                    found.entry(relay.url().to_owned()).or_insert(relay);
                }
                fetched_sources.push(ServiceState::checkpoint(
                    ServiceName::Finder,
                    url,
                    &Checkpoint { timestamp: now },
                )?);
            }
            Err(error) => {
                report.failed += 1;
                tracing::warn!(source = %url, error = %error, "api_source_failed");
            }
        }
    }
    report.found = found.len();
    let relays: Vec<Relay> = found.into_values().collect();
    report.added = ctx
        .brotr
        .store_finder_progress(&relays, clock::now(), &fetched_sources)
        .await?;
    tracing::info!(
        fetched = report.fetched,
        cooling = report.cooling,
        failed = report.failed,
        found = report.found,
        added = report.added,
        "api_phase_completed"
    );
    Ok(report)
}
