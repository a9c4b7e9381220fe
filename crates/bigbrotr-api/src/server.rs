//! The HTTP side: one handler routes on the raw (still percent-encoded) path, so that a key
//! holding `/` (a relay URL) can be split before it is decoded; every answer is JSON, every
//! bound has its own error, and every request is counted, timed by route template and logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bigbrotr_catalog::{Catalog, CatalogError, PageLimits, TablesConfig};
use bigbrotr_core::metrics::{Metrics, names};
use bigbrotr_core::runner::Context;
use bigbrotr_db::catalog::{ReadBudget, Total, is_data_error};
use bigbrotr_db::{Brotr, DbError};
use percent_encoding::percent_decode_str;
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::config::ApiConfig;
use crate::openapi;

/// The longest request target (path and query) accepted, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The most query parameters one request may carry.
pub const MAX_PARAMS: usize = 64;

/// How long `/health` waits for the database.
const HEALTH_BUDGET: Duration = Duration::from_secs(2);

/// The interactive documentation page (self-contained: no external scripts or styles).
const DOCS_HTML: &str = include_str!("docs.html");

/// What every request needs.
#[derive(Debug)]
pub struct AppState {
    prefix: String,
    tables: TablesConfig,
    limits: PageLimits,
    catalog: Catalog,
    brotr: Brotr,
    metrics: Metrics,
    queries: Semaphore,
    request_timeout: Duration,
    queue_timeout: Duration,
    max_replay_lag: Option<f64>,
    cors_origins: Vec<String>,
    openapi: String,
    docs: String,
}

impl AppState {
    /// The state of a server over `catalog`, with `pool_size` connections to share.
    pub fn new(config: ApiConfig, catalog: Catalog, ctx: &Context, pool_size: u32) -> Self {
        let slots = config.max_concurrent_queries.unwrap_or(pool_size).max(1) as usize;
        let openapi = openapi::document(&config, &catalog).to_string();
        let docs = DOCS_HTML
            .replace("{{TITLE}}", &html_escape(&config.title))
            .replace("{{OPENAPI}}", "/openapi.json");
        Self {
            prefix: config.prefix(),
            limits: config.page_limits(),
            tables: config.tables,
            catalog,
            brotr: ctx.brotr.clone(),
            metrics: ctx.metrics.clone(),
            queries: Semaphore::new(slots),
            request_timeout: Duration::from_secs_f64(config.request_timeout),
            queue_timeout: Duration::from_secs_f64(config.queue_timeout),
            max_replay_lag: config.max_replay_lag,
            cors_origins: config.cors_origins,
            openapi,
            docs,
        }
    }
}

/// The application: every route through [`handle`], CORS when origins are configured (GET only,
/// any header, as the original).
pub fn router(state: Arc<AppState>) -> Router {
    let origins = state.cors_origins.clone();
    let router = Router::new().fallback(handle).with_state(state);
    if origins.is_empty() {
        return router;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    router.layer(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET])
            .allow_headers(Any),
    )
}

/// A failed request: status and client-safe message.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl Failure {
    fn bad(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }

    fn from_catalog(error: CatalogError) -> Self {
        match error {
            CatalogError::UnknownTable(_) => Self(StatusCode::NOT_FOUND, error.to_string()),
            other => Self::bad(other.to_string()),
        }
    }

    fn from_db(error: &DbError) -> Self {
        if matches!(error, DbError::Timeout { .. }) {
            return Self(StatusCode::GATEWAY_TIMEOUT, "Query timeout".into());
        }
        if is_data_error(error) {
            return Self::bad("Invalid filter value");
        }
        // No connection came free in time (the pool's acquisition timeout).
        if error.class() == "TimeoutError" {
            return Self(
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable".into(),
            );
        }
        tracing::error!(error = %error, "query_failed");
        Self(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error".into(),
        )
    }
}

fn json(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn error_response(failure: Failure) -> Response {
    let mut response = json(
        failure.0,
        serde_json::json!({ "error": failure.1 }).to_string(),
    );
    if matches!(
        failure.0,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
    ) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Every request: route, answer, count, time, log.
async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    // The body is never read (GET only); the parts are what routing needs, and unlike the body
    // they may be shared across awaits.
    let (request, _body) = request.into_parts();
    let method = request.method.clone();
    let (route, outcome) = dispatch(&state, &request, started).await;
    let response = match outcome {
        Ok(response) => response,
        Err(failure) => error_response(failure),
    };
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state.metrics.inc_counter(names::api::REQUESTS_TOTAL, 1);
    if status >= 400 {
        state.metrics.inc_counter(names::api::REQUESTS_FAILED, 1);
    }
    state
        .metrics
        .observe_request(&route, status, elapsed.as_secs_f64());
    let duration_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    let path: String = request.uri.path().chars().take(256).collect();
    if status >= 400 {
        tracing::info!(method = %method, route = %route, path = %path, status, duration_ms, "request_failed");
    } else {
        tracing::debug!(method = %method, route = %route, path = %path, status, duration_ms, "request_completed");
    }
    response
}

type Outcome = Result<Response, Failure>;

/// Routes a request: returns the route template (a bounded metric label) and the answer.
async fn dispatch(
    state: &AppState,
    request: &axum::http::request::Parts,
    started: Instant,
) -> (String, Outcome) {
    let prefix = &state.prefix;
    let uri = &request.uri;
    // Path and query as received (no allocation: checked on every request).
    if uri.path().len() + uri.query().map_or(0, str::len) > MAX_URI_BYTES {
        return (
            "other".into(),
            Err(Failure(
                StatusCode::URI_TOO_LONG,
                format!("Request target too long (at most {MAX_URI_BYTES} bytes)"),
            )),
        );
    }
    if request.method != Method::GET && request.method != Method::HEAD {
        let mut response = error_response(Failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed: the API is read-only".into(),
        ));
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return ("other".into(), Ok(response));
    }
    let path = uri.path();
    match path {
        "/health" => return ("/health".into(), Ok(health(state).await)),
        "/openapi.json" => {
            return (
                "/openapi.json".into(),
                Ok(json(StatusCode::OK, state.openapi.clone())),
            );
        }
        "/docs" => {
            let response = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                state.docs.clone(),
            )
                .into_response();
            return ("/docs".into(), Ok(response));
        }
        _ => {}
    }
    let Some(rest) = path
        .strip_prefix(prefix.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return ("other".into(), Err(not_found()));
    };
    let (table_raw, key_raw) = match rest.split_once('/') {
        Some((table, key)) => (table, Some(key)),
        None => (rest, None),
    };
    if table_raw == "schema" {
        return match key_raw {
            None => (format!("{prefix}/schema"), Ok(schema_list(state))),
            Some(name) => (
                format!("{prefix}/schema/{{table}}"),
                decode_segment(name).and_then(|name| schema_one(state, &name)),
            ),
        };
    }
    if table_raw.is_empty() {
        return ("other".into(), Err(not_found()));
    }
    match key_raw {
        None => (
            format!("{prefix}/{{table}}"),
            list(state, table_raw, uri.query(), started).await,
        ),
        Some(key) => (
            format!("{prefix}/{{table}}/{{key}}"),
            lookup(state, table_raw, key, started).await,
        ),
    }
}

fn not_found() -> Failure {
    Failure(StatusCode::NOT_FOUND, "Not found".into())
}

fn decode_segment(raw: &str) -> Result<String, Failure> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Failure::bad("Path is not valid UTF-8"))
}

/// The query string as (name, value) pairs, in order: `+` is a space, percent-escapes must
/// decode to UTF-8.
fn parse_query(raw: Option<&str>) -> Result<Vec<(String, String)>, Failure> {
    let mut out = Vec::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        if out.len() == MAX_PARAMS {
            return Err(Failure::bad(format!(
                "Too many query parameters (at most {MAX_PARAMS})"
            )));
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| Failure::bad("Query string is not valid UTF-8"))
        };
        out.push((decode(name)?, decode(value)?));
    }
    Ok(out)
}

/// `/health`: 6.6.9's `{"status":"ok"}` when the database answers within [`HEALTH_BUDGET`],
/// plus `"database": {"standby", "replay_lag_seconds"}` (the lag in seconds on a standby, null
/// on a primary or while not known); 503 `"degraded"` when a standby lags more than
/// `max_replay_lag`, 503 `"unavailable"` when the database does not answer.
async fn health(state: &AppState) -> Response {
    match state.brotr.replication(HEALTH_BUDGET).await {
        Ok(replication) => {
            state.metrics.set_replication(&replication);
            let lag = replication
                .replay_lag_seconds
                .map(|lag| (lag * 1000.0).round() / 1000.0);
            let database = serde_json::json!({
                "standby": replication.standby,
                "replay_lag_seconds": lag,
            });
            match (state.max_replay_lag, lag) {
                (Some(max), Some(lag)) if lag > max => {
                    tracing::warn!(
                        replay_lag_s = lag,
                        max_replay_lag = max,
                        "health_replay_lag_high"
                    );
                    json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        serde_json::json!({
                            "status": "degraded",
                            "error": format!("standby replay lag {lag} s above max_replay_lag {max} s"),
                            "database": database,
                        })
                        .to_string(),
                    )
                }
                _ => json(
                    StatusCode::OK,
                    serde_json::json!({"status": "ok", "database": database}).to_string(),
                ),
            }
        }
        Err(error) => {
            tracing::warn!(error = %error, "health_database_unreachable");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"status":"unavailable","error":"database unreachable"}"#.into(),
            )
        }
    }
}

fn schema_list(state: &AppState) -> Response {
    let data: Vec<serde_json::Value> = state
        .catalog
        .exposed(&state.tables)
        .into_iter()
        .map(bigbrotr_catalog::summary)
        .collect();
    json(
        StatusCode::OK,
        serde_json::json!({ "data": data }).to_string(),
    )
}

fn schema_one(state: &AppState, name: &str) -> Outcome {
    let object = state
        .catalog
        .exposed_object(&state.tables, name)
        .map_err(Failure::from_catalog)?;
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "data": bigbrotr_catalog::describe(object) }).to_string(),
    ))
}

/// Runs `query` once a query slot is free, within what is left of the request's time.
async fn bounded<T, F>(state: &AppState, started: Instant, query: F) -> Result<T, Failure>
where
    F: Future<Output = Result<T, DbError>>,
{
    let deadline = started + state.request_timeout;
    let wait = state
        .queue_timeout
        .min(deadline.saturating_duration_since(Instant::now()));
    let _permit = match tokio::time::timeout(wait, state.queries.acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            return Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many concurrent queries, retry later".into(),
            ));
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, query).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Failure::from_db(&error)),
        Err(_) => Err(Failure(StatusCode::GATEWAY_TIMEOUT, "Query timeout".into())),
    }
}

fn budget(state: &AppState, started: Instant) -> ReadBudget {
    let left = (started + state.request_timeout).saturating_duration_since(Instant::now());
    ReadBudget(left.max(Duration::from_millis(1)))
}

async fn list(state: &AppState, table_raw: &str, query: Option<&str>, started: Instant) -> Outcome {
    let table = decode_segment(table_raw)?;
    let object = state
        .catalog
        .exposed_object(&state.tables, &table)
        .map_err(Failure::from_catalog)?;
    let params = parse_query(query)?;
    let request = bigbrotr_catalog::parse_list(object, &params, state.limits)
        .map_err(Failure::from_catalog)?;
    let page = bounded(
        state,
        started,
        state
            .brotr
            .catalog_list(object, &request.query, budget(state, started)),
    )
    .await?;
    let next_cursor = page
        .last_key
        .clone()
        .filter(|_| object.keyset_capable())
        .map(|key| bigbrotr_catalog::cursor_for(object, &request, key));
    let Total { value, exact } = page.total.unwrap_or(Total {
        value: 0,
        exact: false,
    });
    let meta = serde_json::json!({
        "total": value,
        "total_exact": exact,
        "limit": request.query.limit,
        "offset": request.query.offset,
        "table": object.name,
        "next_cursor": next_cursor,
    });
    Ok(json(
        StatusCode::OK,
        bigbrotr_catalog::page_body(&page.rows, &meta),
    ))
}

async fn lookup(state: &AppState, table_raw: &str, key_raw: &str, started: Instant) -> Outcome {
    let table = decode_segment(table_raw)?;
    let object = state
        .catalog
        .exposed_object(&state.tables, &table)
        .map_err(Failure::from_catalog)?;
    let key = bigbrotr_catalog::parse_key_path(object, key_raw).map_err(Failure::from_catalog)?;
    let row = bounded(
        state,
        started,
        state
            .brotr
            .catalog_get(object, &key, budget(state, started)),
    )
    .await?;
    match row {
        Some(row) => {
            let mut body = String::with_capacity(row.len() + 10);
            body.push_str("{\"data\":");
            body.push_str(&row);
            body.push('}');
            Ok(json(StatusCode::OK, body))
        }
        None => Err(Failure(StatusCode::NOT_FOUND, "not found".into())),
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_strictly() {
        let pairs = parse_query(Some("a=1&b=x+y&c=%3E%3A5&&d")).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), ">:5".into()),
                ("d".into(), String::new()),
            ]
        );
        assert!(parse_query(Some("a=%FF")).is_err());
        let many = vec!["a=1"; MAX_PARAMS + 1].join("&");
        assert!(parse_query(Some(&many)).is_err());
        assert!(parse_query(None).unwrap().is_empty());
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(html_escape("<b>&\""), "&lt;b&gt;&amp;&quot;");
    }
}
