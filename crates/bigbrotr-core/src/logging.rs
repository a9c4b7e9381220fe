//! Logging through `tracing`, in the original's line format or as JSON.
//!
//! kv: `<level> <logger> <message> key=value ...` — levels lower-case (`warning` for WARN), the
//! logger is the service name, `brotr`/`pool` for the database layer, `cli` for start-up; values
//! longer than 1000 characters are truncated with `...<truncated N chars>`; a value is quoted when
//! it is empty or holds a space, `=`, `"` or `'`, with `\` and `"` escaped inside.
//!
//! json: `{"timestamp": ISO-8601 UTC, "level", "service", "message", ...fields}`.
//!
//! Lines go to standard error through a non-blocking writer (tracing-appender): the daemon's
//! threads only queue a line; one writer thread writes them. The queue holds [`QUEUED_LINES`]
//! lines; when it is full (standard error blocked: a full pipe, a stalled log collector) new
//! lines are **dropped**, not waited for, and counted. [`flush`] at exit waits for the queued
//! lines (up to one second) and reports the dropped ones (`log_lines_dropped count=N`); the
//! binaries call it on every way out.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::cli::{LogFormat, LogLevel};

/// Longest value printed before truncation.
const MAX_VALUE_CHARS: usize = 1000;

/// Lines queued for standard error at most; beyond, lines are dropped (and counted).
pub const QUEUED_LINES: usize = 8192;

/// Where log lines go: standard error, or a shared buffer in tests.
#[derive(Clone)]
pub enum Sink {
    /// Standard error (what the original's handler uses), written synchronously.
    Stderr,
    /// Standard error through the non-blocking writer.
    NonBlocking(NonBlocking),
    /// An in-memory buffer.
    Buffer(Arc<Mutex<Vec<u8>>>),
}

/// The process's writer: the queue's sending side, the writer thread's guard (dropped by
/// [`flush`]), its dropped-line counter, and the format and service of the report.
struct Writer {
    sink: NonBlocking,
    guard: Mutex<Option<WorkerGuard>>,
    dropped: ErrorCounter,
    format: LogFormat,
    service: String,
}

static WRITER: OnceLock<Writer> = OnceLock::new();

/// The process's non-blocking writer to standard error, started at the first call.
fn writer(format: LogFormat, service: &str) -> NonBlocking {
    WRITER
        .get_or_init(|| {
            let (sink, guard) = non_blocking(std::io::stderr());
            Writer {
                dropped: sink.error_counter(),
                sink,
                guard: Mutex::new(Some(guard)),
                format,
                service: service.to_owned(),
            }
        })
        .sink
        .clone()
}

/// A lossy non-blocking writer to `out`, holding at most [`QUEUED_LINES`] lines.
pub fn non_blocking<W: std::io::Write + Send + 'static>(out: W) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("bigbrotr-log")
        .finish(out)
}

/// Queues a report of the lines dropped since the start (`log_lines_dropped count=N`, if any),
/// then writes the queued lines out and stops the writer thread, waiting at most about a second
/// (standard error may be blocked: the process still ends). Call it once, on the way out of the
/// process: lines logged afterwards are lost.
pub fn flush() {
    let Some(writer) = WRITER.get() else {
        return;
    };
    let dropped = writer.dropped.dropped_lines();
    if dropped > 0 {
        let mut fields = Fields {
            message: "log_lines_dropped".to_owned(),
            ..Fields::default()
        };
        fields
            .pairs
            .push(("count", FieldValue::U64(dropped as u64)));
        let line = match writer.format {
            LogFormat::Kv => kv_line("warning", "cli", &fields),
            LogFormat::Json => json_line("warning", &writer.service, &fields),
        };
        // Queued like any line: never waits for a blocked standard error.
        let _ = writer.sink.clone().write_all(line.as_bytes());
    }
    let guard = writer.guard.lock().ok().and_then(|mut guard| guard.take());
    // Dropping the guard waits (bounded) for the writer thread to write what is queued.
    drop(guard);
}

/// The formatting layer.
pub struct LineLayer {
    format: LogFormat,
    service: String,
    sink: Sink,
}

impl LineLayer {
    /// A layer writing `format` lines for `service` to `sink`.
    pub fn new(format: LogFormat, service: &str, sink: Sink) -> Self {
        Self {
            format,
            service: service.to_owned(),
            sink,
        }
    }

    fn logger_name<'a>(&'a self, target: &'a str) -> &'a str {
        let Some(rest) = target.strip_prefix("bigbrotr_") else {
            return target;
        };
        // The database layer logs as `brotr`, as the original; everything else of ours as the
        // service.
        if rest.split("::").next() == Some("db") {
            "brotr"
        } else {
            &self.service
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` may refine the filter (e.g. `info,sqlx=warn`).
pub fn init(level: LogLevel, format: LogFormat, service: &str) {
    let directive = match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warning => "warn",
        LogLevel::Error => "error",
    };
    // Library internals speak only when something is wrong.
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!(
            "{directive},sqlx=warn,hyper=warn,reqwest=warn,nostr_relay_pool=warn,nostr_sdk=warn,nostr=warn"
        )));
    let layer = LineLayer::new(format, service, Sink::NonBlocking(writer(format, service)));
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
}

impl<S: Subscriber> Layer<S> for LineLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let line = match self.format {
            LogFormat::Kv => kv_line(
                level_name(metadata.level()),
                self.logger_name(metadata.target()),
                &fields,
            ),
            LogFormat::Json => json_line(level_name(metadata.level()), &self.service, &fields),
        };
        match &self.sink {
            Sink::Stderr => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::NonBlocking(writer) => {
                // One write, one queued line; a full queue drops it instead of waiting.
                let _ = writer.clone().write_all(line.as_bytes());
            }
            Sink::Buffer(buffer) => {
                if let Ok(mut buffer) = buffer.lock() {
                    buffer.extend_from_slice(line.as_bytes());
                }
            }
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "debug",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warning",
        Level::ERROR => "error",
    }
}

/// The message and key/value fields of one event, in order.
#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, FieldValue)>,
}

enum FieldValue {
    Text(String),
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
}

impl FieldValue {
    fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
            Self::I64(n) => n.to_string(),
            Self::U64(n) => n.to_string(),
            Self::F64(x) => x.to_string(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Self::Text(s) => serde_json::Value::String(truncate(s)),
            Self::Bool(b) => (*b).into(),
            Self::I64(n) => (*n).into(),
            Self::U64(n) => (*n).into(),
            Self::F64(x) => serde_json::Number::from_f64(*x)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.pairs
                .push((field.name(), FieldValue::Text(value.to_owned())));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pairs.push((field.name(), FieldValue::Bool(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pairs.push((field.name(), FieldValue::I64(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pairs.push((field.name(), FieldValue::U64(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.pairs.push((field.name(), FieldValue::F64(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.pairs.push((field.name(), FieldValue::Text(text)));
        }
    }
}

/// Truncates past [`MAX_VALUE_CHARS`] characters, saying how many were cut.
fn truncate(value: &str) -> String {
    let total = value.chars().count();
    if total <= MAX_VALUE_CHARS {
        return value.to_owned();
    }
    let kept: String = value.chars().take(MAX_VALUE_CHARS).collect();
    format!("{kept}...<truncated {} chars>", total - MAX_VALUE_CHARS)
}

/// Formats one value for the kv format.
fn kv_value(value: &str) -> String {
    let value = truncate(value);
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c == '\'' || c.is_control());
    if !needs_quotes {
        return value;
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn kv_line(level: &str, logger: &str, fields: &Fields) -> String {
    let mut line = format!("{level} {logger} {}", fields.message);
    for (key, value) in &fields.pairs {
        let _ = write!(line, " {key}={}", kv_value(&value.text()));
    }
    line.push('\n');
    line
}

fn json_line(level: &str, service: &str, fields: &Fields) -> String {
    let mut object = serde_json::Map::new();
    object.insert("timestamp".into(), iso_timestamp(SystemTime::now()).into());
    object.insert("level".into(), level.into());
    object.insert("service".into(), service.into());
    object.insert("message".into(), truncate(&fields.message).into());
    for (key, value) in &fields.pairs {
        object.insert((*key).to_owned(), value.json());
    }
    let mut line = serde_json::Value::Object(object).to_string();
    line.push('\n');
    line
}

/// ISO-8601 in UTC as Python's `datetime.isoformat()`: `2026-02-09T12:34:56.123456+00:00`, the
/// fraction omitted when it is zero.
fn iso_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let micros = since.subsec_micros();
    let fraction = if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
