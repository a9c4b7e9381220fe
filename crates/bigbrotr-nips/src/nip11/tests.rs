use serde_json::json;

use super::*;

#[test]
fn keeps_known_fields_and_removed_ones() {
    let text = json!({
        "name": "relay", "description": "d", "software": "git+https://x", "version": "1",
        "privacy_policy": "https://p", "posting_policy": "https://q", "self": "ab",
        "supported_nips": [11, 1, 1, 42, true, 1.5, "9"],
        "relay_countries": ["DE", 3], "language_tags": ["en", "de-CH"], "tags": ["sfw-only"],
        "limitation": {"max_limit": 500, "auth_required": true, "payment_required": "no",
                       "min_pow_difficulty": 0, "max_subscriptions": false, "unknown": 1},
        "retention": [{"kinds": [0, [5, 7], "x"], "time": 3600}, {"count": 10}, "bad"],
        "fees": {"admission": [{"amount": 1000, "unit": "msats"}], "bogus": []},
        "unknown_field": {"deep": true}
    })
    .to_string();
    let data = parse_document(&text).expect("object");
    assert_eq!(data["name"], "relay");
    assert_eq!(data["self"], "ab");
    assert_eq!(data["privacy_policy"], "https://p");
    assert_eq!(data["posting_policy"], "https://q");
    assert_eq!(data["supported_nips"], json!([1, 11, 42]));
    assert_eq!(data["relay_countries"], json!(["DE"]));
    assert_eq!(data["language_tags"], json!(["en", "de-CH"]));
    assert_eq!(data["tags"], json!(["sfw-only"]));
    assert_eq!(
        data["limitation"],
        json!({"max_limit": 500, "auth_required": true, "min_pow_difficulty": 0})
    );
    assert_eq!(
        data["retention"],
        json!([{"kinds": [0, [5, 7]], "time": 3600}, {"count": 10}])
    );
    assert_eq!(
        data["fees"],
        json!({"admission": [{"amount": 1000, "unit": "msats"}]})
    );
    assert!(!data.contains_key("unknown_field"));
}

#[test]
fn wrong_types_are_dropped_not_fatal() {
    let text = r#"{"name": 5, "supported_nips": "1,2", "limitation": [], "tags": "x", "fees": 3}"#;
    let data = parse_document(text).expect("object");
    assert!(data.is_empty(), "{data:?}");
}

#[test]
fn non_objects_are_errors() {
    assert!(parse_document("[]").unwrap_err().contains("not an object"));
    assert!(parse_document("{").unwrap_err().starts_with("Invalid JSON"));
    assert!(parse_document("").is_err());
}

#[test]
fn document_urls() {
    let url = |u: &str| document_url(u).map(|u| u.to_string());
    assert_eq!(
        url("wss://relay.example.com"),
        Some("https://relay.example.com/".into())
    );
    assert_eq!(
        url("wss://relay.example.com:8443/path"),
        Some("https://relay.example.com:8443/path".into())
    );
    assert_eq!(url("ws://abc.onion"), Some("http://abc.onion/".into()));
    assert_eq!(url("ws://[::1]:7000"), Some("http://[::1]:7000/".into()));
    assert_eq!(url("https://x"), None);
}
