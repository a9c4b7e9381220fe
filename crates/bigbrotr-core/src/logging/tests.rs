//! Tests of the kv and JSON line formats.

use super::*;

fn capture(format: LogFormat, emit: impl FnOnce()) -> String {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let layer = LineLayer::new(format, "seeder", Sink::Buffer(buffer.clone()));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, emit);
    let bytes = buffer.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn kv_lines_follow_the_original_format() {
    let out = capture(LogFormat::Kv, || {
        tracing::info!(target: "bigbrotr_seeder::service", count = 3, url = "wss://a b", "relays_loaded");
        tracing::warn!(target: "bigbrotr_db::pool", attempt = 2, "query_retry");
        tracing::error!(target: "cli", empty = "", quote = "it's", eq = "a=b", "bad");
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        r#"info seeder relays_loaded count=3 url="wss://a b""#
    );
    assert_eq!(lines[1], "warning brotr query_retry attempt=2");
    assert_eq!(lines[2], r#"error cli bad empty="" quote="it's" eq="a=b""#);
}

#[test]
fn kv_values_escape_and_truncate() {
    assert_eq!(kv_value(r#"say "hi" \o/"#), r#""say \"hi\" \\o/""#);
    assert_eq!(kv_value("plain"), "plain");
    let long = "x".repeat(1500);
    let shown = kv_value(&long);
    // Truncation comes first, and the marker holds a space, so the result is quoted (as the
    // original's formatter does).
    assert!(
        shown.starts_with(&format!("\"{}", "x".repeat(1000))),
        "{shown}"
    );
    assert!(shown.ends_with("...<truncated 500 chars>\""), "{shown}");
    assert_eq!(
        shown.chars().count(),
        1 + 1000 + "...<truncated 500 chars>".len() + 1
    );
}

#[test]
fn json_lines_carry_timestamp_level_service_message_and_fields() {
    let out = capture(LogFormat::Json, || {
        tracing::warn!(count = 2, ok = true, name = "x", "relay_parse_failed");
    });
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(value["level"], "warning");
    assert_eq!(value["service"], "seeder");
    assert_eq!(value["message"], "relay_parse_failed");
    assert_eq!(value["count"], 2);
    assert_eq!(value["ok"], true);
    assert_eq!(value["name"], "x");
    let timestamp = value["timestamp"].as_str().unwrap();
    assert!(
        timestamp.ends_with("+00:00") && timestamp.contains('T'),
        "{timestamp}"
    );
}

#[test]
fn iso_timestamps_match_python_isoformat() {
    let time = UNIX_EPOCH + std::time::Duration::from_micros(1_770_640_496_123_456);
    assert_eq!(iso_timestamp(time), "2026-02-09T12:34:56.123456+00:00");
    assert_eq!(iso_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00+00:00");
    // A leap day.
    let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
    assert_eq!(iso_timestamp(leap), "2000-02-29T00:00:00+00:00");
}
