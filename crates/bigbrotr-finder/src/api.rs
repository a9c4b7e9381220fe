//! The API phase: fetch each HTTP source (respecting its cooldown), select relay URLs with its
//! JMESPath expression, and store them as candidates with the sources' checkpoints. A body larger
//! than [`INLINE_PARSE_BYTES`] is parsed and searched on the blocking pool: a body up to
//! `max_response_size` (50 MiB at most) takes a worker thread for up to seconds otherwise.

use std::collections::BTreeMap;
use std::sync::Arc;
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

/// Bodies up to this size are parsed on the async worker (well under a millisecond); larger
/// ones on the blocking pool.
pub const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// A source with its compiled expression.
pub(crate) struct CompiledSource {
    pub(crate) source: ApiSource,
    pub(crate) expression: Arc<jmespath::Expression<'static>>,
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
                expression: Arc::new(expression),
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

/// [`select_relays`], on the blocking pool when `body` is larger than [`INLINE_PARSE_BYTES`], so
/// parsing a large body never holds an async worker.
pub async fn select_relays_off_worker(
    body: Vec<u8>,
    expression: Arc<jmespath::Expression<'static>>,
    now: i64,
) -> anyhow::Result<Vec<Relay>> {
    if body.len() <= INLINE_PARSE_BYTES {
        return select_relays(&body, &expression, now);
    }
    tokio::task::spawn_blocking(move || select_relays(&body, &expression, now))
        .await
        .map_err(|e| anyhow::anyhow!("parsing the body failed: {e}"))?
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
    select_relays_off_worker(response.body, compiled.expression.clone(), now).await
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A `{"relays": [...], "padding": [...]}` body of `count` relay URLs and `padding` other
    /// entries of 100 bytes (parsed and searched, not relays).
    fn body(count: usize, padding: usize) -> Vec<u8> {
        let relays: Vec<String> = (0..count)
            .map(|i| format!("wss://relay-{i}.example.com"))
            .collect();
        let padding: Vec<serde_json::Value> = (0..padding)
            .map(|i| serde_json::json!({ "id": i, "note": "x".repeat(80) }))
            .collect();
        serde_json::to_vec(&serde_json::json!({ "relays": relays, "padding": padding })).unwrap()
    }

    fn expression() -> Arc<jmespath::Expression<'static>> {
        Arc::new(jmespath::compile("relays").unwrap())
    }

    #[test]
    fn small_and_large_bodies_give_the_same_relays() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for count in [3, 5_000] {
            let body = body(count, 0);
            let inline = select_relays(&body, &expression(), 0).unwrap();
            let off = runtime
                .block_on(select_relays_off_worker(body, expression(), 0))
                .unwrap();
            assert_eq!(inline.len(), count);
            assert_eq!(inline, off);
        }
        let error = runtime
            .block_on(select_relays_off_worker(
                vec![b' '; INLINE_PARSE_BYTES + 1],
                expression(),
                0,
            ))
            .unwrap_err();
        assert!(error.to_string().contains("EOF"), "{error}");
    }

    /// On a runtime with one thread, a 5 MiB body (the default `max_response_size`) is parsed
    /// while a 5 ms interval keeps ticking: no gap between ticks comes near the parse's time
    /// (parsed on the worker, the body stops the ticker for the whole parse).
    #[tokio::test(flavor = "current_thread")]
    async fn a_large_body_does_not_hold_the_only_worker() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let body = body(1_000, 50_000);
        assert!(body.len() > 4 * 1024 * 1024, "{}", body.len());
        let started = std::time::Instant::now();
        let inline = select_relays(&body, &expression(), 0).unwrap();
        let parse = started.elapsed();
        assert!(
            parse > Duration::from_millis(100),
            "the parse took {parse:?}"
        );

        let longest_gap = Arc::new(AtomicU64::new(0));
        let gap = longest_gap.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(5));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            let mut last = tokio::time::Instant::now();
            loop {
                interval.tick().await;
                let now = tokio::time::Instant::now();
                let micros = u64::try_from((now - last).as_micros()).unwrap_or(u64::MAX);
                gap.fetch_max(micros, Ordering::SeqCst);
                last = now;
            }
        });
        // Let the ticker start.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let off = select_relays_off_worker(body, expression(), 0)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        ticker.abort();
        assert_eq!(off.len(), inline.len());
        let longest = Duration::from_micros(longest_gap.load(Ordering::SeqCst));
        assert!(
            longest < parse / 2,
            "the ticker stopped for {longest:?} (the parse takes {parse:?})"
        );
    }
}
