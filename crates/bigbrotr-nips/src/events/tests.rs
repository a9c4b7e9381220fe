use bigbrotr_models::relay::Relay;
use serde_json::{Value, json};

use super::*;

fn outcome(data: Value) -> CheckOutcome {
    CheckOutcome::success(data.as_object().expect("object").clone())
}

fn rtt(data: Value, logs: Value, auth_requested: bool) -> Rtt {
    Rtt {
        outcome: CheckOutcome {
            data: data.as_object().expect("object").clone(),
            logs: logs.as_object().expect("object").clone(),
        },
        auth_requested,
    }
}

fn nip11(raw: &str) -> Nip11 {
    Nip11 {
        outcome: CheckOutcome::success(crate::nip11::parse_document(raw).expect("doc")),
        raw: Some(raw.to_owned()),
    }
}

fn as_vecs(tags: &[Tag]) -> Vec<Vec<String>> {
    tags.iter().map(|t| t.clone().to_vec()).collect()
}

fn v(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|s| (*s).to_owned()).collect())
        .collect()
}

const DOC: &str = r#"{"name":"r","supported_nips":[1,50,11],"tags":["sfw-only"],"language_tags":["en","en-US","pt-BR"],"limitation":{"min_pow_difficulty":8},"attributes":["Fast"],"retention":[{"kinds":[4,[5,7]],"time":0}]}"#;

#[test]
fn golden_30166_with_every_check() {
    let relay = Relay::new("wss://relay.example.com", 0).expect("relay");
    let nip11 = nip11(DOC);
    let rtt = rtt(
        json!({"rtt_open": 12, "rtt_read": 34, "rtt_write": 56}),
        json!({"open_success": true, "read_success": true, "write_success": true}),
        false,
    );
    let ssl = outcome(
        json!({"ssl_valid": false, "ssl_expires": 1_900_000_000, "ssl_issuer": "Let's Encrypt"}),
    );
    let net = outcome(
        json!({"net_ip": "1.2.3.4", "net_ipv6": "2001:db8::1", "net_asn": 13335, "net_asn_org": "Cloudflare"}),
    );
    let geo = outcome(
        json!({"geo_hash": "u33dc0cpp", "geo_country": "DE", "geo_city": "Berlin", "geo_lat": 52.52, "geo_lon": 13.4, "geo_tz": "Europe/Berlin"}),
    );
    let dns = outcome(
        json!({"dns_ips": ["1.2.3.4", "1.2.3.5"], "dns_ips_v6": ["2001:db8::1"], "dns_cname": "edge.example.net", "dns_ttl": 300}),
    );
    let http = outcome(json!({"http_server": "nginx", "http_powered_by": "strfry"}));
    let checks = RelayChecks {
        nip11: Some(&nip11),
        rtt: Some(&rtt),
        ssl: Some(&ssl),
        net: Some(&net),
        geo: Some(&geo),
        dns: Some(&dns),
        http: Some(&http),
    };
    let expected = v(&[
        &["d", "wss://relay.example.com"],
        &["n", "clearnet"],
        &["rtt-open", "12"],
        &["rtt-read", "34"],
        &["rtt-write", "56"],
        &["ssl", "!valid"],
        &["ssl-expires", "1900000000"],
        &["ssl-issuer", "Let's Encrypt"],
        &["net-ip", "1.2.3.4"],
        &["net-ipv6", "2001:db8::1"],
        &["net-asn", "13335"],
        &["l", "13335", "IANA-asn"],
        &["net-asn-org", "Cloudflare"],
        &["l", "Cloudflare", "IANA-asnOrg"],
        &["g", "u33dc0cpp"],
        &["geo-country", "DE"],
        &["l", "DE", "ISO-3166-1"],
        &["geo-city", "Berlin"],
        &["l", "Berlin", "nip66.label.city"],
        &["geo-lat", "52.52"],
        &["geo-lon", "13.4"],
        &["geo-tz", "Europe/Berlin"],
        &["l", "Europe/Berlin", "IANA-tz"],
        &["dns-ip", "1.2.3.4"],
        &["dns-ip6", "2001:db8::1"],
        &["dns-cname", "edge.example.net"],
        &["dns-ttl", "300"],
        &["http-server", "nginx"],
        &["http-powered-by", "strfry"],
        &["N", "1"],
        &["N", "11"],
        &["N", "50"],
        &["t", "sfw-only"],
        &["l", "en", "ISO-639-1"],
        &["l", "pt", "ISO-639-1"],
        &["R", "!auth"],
        &["R", "!payment"],
        &["R", "!writes"],
        &["R", "pow"],
        &["k", "30078"],
        &["k", "!4"],
        &["T", "Search"],
        &["T", "PublicInbox"],
        &["W", "Fast"],
    ]);
    assert_eq!(as_vecs(&discovery_tags(&relay, &checks)), expected);
    assert_eq!(
        discovery_content(Some(&nip11)),
        DOC,
        "content is the document as served"
    );
}

#[test]
fn golden_30166_minimal_and_failed_checks() {
    let relay = Relay::new(
        "ws://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.onion",
        0,
    )
    .expect("relay");
    let failed_nip11 = Nip11 {
        outcome: CheckOutcome::failure("HTTP 404"),
        raw: None,
    };
    let rtt = rtt(
        json!({"rtt_open": 900}),
        json!({"open_success": true, "read_success": false, "read_reason": "no events returned",
               "write_success": false, "write_reason": "no response from relay"}),
        false,
    );
    let http = CheckOutcome::failure("no HTTP headers captured");
    let checks = RelayChecks {
        nip11: Some(&failed_nip11),
        rtt: Some(&rtt),
        http: Some(&http),
        ..RelayChecks::default()
    };
    let expected = v(&[
        &["d", relay.url()],
        &["n", "tor"],
        &["rtt-open", "900"],
        &["R", "!auth"],
        &["R", "!payment"],
        &["R", "!writes"],
        &["R", "!pow"],
    ]);
    assert_eq!(as_vecs(&discovery_tags(&relay, &checks)), expected);
    assert_eq!(discovery_content(Some(&failed_nip11)), "");
}

#[test]
fn requirements_read_the_relay_answer_not_any_failure() {
    let document = nip11(r#"{"limitation":{"auth_required":false,"restricted_writes":false}}"#);
    let failed = |reason: &str, auth| {
        rtt(
            json!({}),
            json!({"open_success": true, "write_success": false, "write_reason": reason}),
            auth,
        )
    };
    let r = requirements(
        Some(&document),
        Some(&failed("rate-limited: slow down", false)),
    );
    assert_eq!(
        r,
        Requirements::default(),
        "a rate limit is not a restriction"
    );
    let r = requirements(
        Some(&document),
        Some(&failed("no response from relay", false)),
    );
    assert!(
        !r.writes,
        "a timeout is not a restriction (the original's §10.1 mislabel)"
    );
    let r = requirements(
        Some(&document),
        Some(&failed("restricted: not on the list", false)),
    );
    assert!(r.writes && !r.auth);
    let r = requirements(
        Some(&document),
        Some(&failed("auth-required: sign in", true)),
    );
    assert!(r.auth && !r.writes);
    let r = requirements(
        Some(&document),
        Some(&failed("blocked: you must pay to post", false)),
    );
    assert!(r.payment && r.writes);
    let r = requirements(
        Some(&document),
        Some(&failed("pow: difficulty 30 required", false)),
    );
    assert!(r.pow);
    let ok = rtt(
        json!({"rtt_write": 5}),
        json!({"open_success": true, "write_success": true}),
        true,
    );
    let r = requirements(
        Some(&nip11(r#"{"limitation":{"restricted_writes":true}}"#)),
        Some(&ok),
    );
    assert!(r.auth && !r.writes, "a write that went through after AUTH");
}

#[test]
fn relay_types() {
    let document = nip11(r#"{"supported_nips":[29,95]}"#);
    let read_auth = rtt(
        json!({}),
        json!({"open_success": true, "read_success": false, "read_reason": "auth-required: who are you",
               "write_success": false, "write_reason": "auth-required: who are you"}),
        true,
    );
    let checks = RelayChecks {
        nip11: Some(&document),
        rtt: Some(&read_auth),
        ..RelayChecks::default()
    };
    let relay = Relay::new("wss://private.example.com", 0).expect("relay");
    let t: Vec<Vec<String>> = as_vecs(&discovery_tags(&relay, &checks))
        .into_iter()
        .filter(|t| t[0] == "T")
        .collect();
    assert_eq!(
        t,
        v(&[
            &["T", "Community"],
            &["T", "Blob"],
            &["T", "PrivateStorage"]
        ])
    );
}

#[test]
fn oversized_documents_and_tags_are_bounded() {
    // A big document of unknown fields: its parsed form is small and replaces it.
    let padded = format!(
        r#"{{"name":"big","junk":"{}"}}"#,
        "x".repeat(MAX_CONTENT_BYTES)
    );
    let content = discovery_content(Some(&nip11(&padded)));
    assert_eq!(content, r#"{"name":"big"}"#);
    // A big known field: even the parsed form is too big, so no content at all.
    let huge = format!(
        r#"{{"name":"big","description":"{}"}}"#,
        "x".repeat(MAX_CONTENT_BYTES)
    );
    assert_eq!(discovery_content(Some(&nip11(&huge))), "");
    // Relay-controlled tag values: long ones are left out, each name is capped.
    let topics: Vec<String> = (0..500).map(|i| format!("topic{i}")).collect();
    let doc = serde_json::json!({
        "tags": topics,
        "attributes": ["x".repeat(MAX_TAG_VALUE_CHARS + 1), "Short".to_owned()],
        "supported_nips": (0..300).collect::<Vec<i64>>(),
    })
    .to_string();
    let document = nip11(&doc);
    let relay = Relay::new("wss://relay.example.com", 0).expect("relay");
    let checks = RelayChecks {
        nip11: Some(&document),
        ..RelayChecks::default()
    };
    let tags = as_vecs(&discovery_tags(&relay, &checks));
    assert_eq!(
        tags.iter().filter(|t| t[0] == "t").count(),
        MAX_TAGS_PER_NAME
    );
    assert_eq!(
        tags.iter().filter(|t| t[0] == "N").count(),
        MAX_TAGS_PER_NAME
    );
    assert_eq!(
        tags.iter()
            .filter(|t| t[0] == "W")
            .cloned()
            .collect::<Vec<_>>(),
        v(&[&["W", "Short"]])
    );
    let event = relay_discovery(&relay, &checks)
        .sign_with_keys(&nostr::Keys::generate())
        .expect("sign");
    assert!(nostr::JsonUtil::as_json(&event).len() < 16 * 1024);
}

#[test]
fn golden_10166() {
    let a = Announcement {
        frequency: 14_400,
        geohash: Some("u33d".to_owned()),
        networks: vec![NetworkType::Clearnet, NetworkType::Tor],
        timeout_ms: 10_000,
        rtt: true,
        nip11: true,
        dns: true,
        geo: false,
    };
    let expected = v(&[
        &["frequency", "14400"],
        &["g", "u33d"],
        &["n", "clearnet"],
        &["n", "tor"],
        &["timeout", "open", "10000"],
        &["c", "open"],
        &["timeout", "read", "10000"],
        &["c", "read"],
        &["timeout", "write", "10000"],
        &["c", "write"],
        &["timeout", "auth", "10000"],
        &["c", "auth"],
        &["timeout", "nip11", "10000"],
        &["c", "nip11"],
        &["timeout", "dns", "10000"],
        &["c", "dns"],
    ]);
    assert_eq!(as_vecs(&announcement_tags(&a)), expected);
}

#[test]
fn golden_profile_and_relay_list() {
    let p = Profile {
        name: Some("BigBrotr Monitor".to_owned()),
        about: Some("Nostr relay monitoring service".to_owned()),
        picture: Some(String::new()),
        lud16: Some("m@example.com".to_owned()),
        ..Profile::default()
    };
    assert_eq!(
        profile_content(&p),
        r#"{"name":"BigBrotr Monitor","about":"Nostr relay monitoring service","lud16":"m@example.com"}"#
    );
    let keys = nostr::Keys::generate();
    let event = relay_list(&["wss://a.example".to_owned(), "wss://b.example".to_owned()])
        .sign_with_keys(&keys)
        .expect("sign");
    assert_eq!(event.kind.as_u16(), 10002);
    assert_eq!(
        as_vecs(event.tags.as_slice()),
        v(&[
            &["r", "wss://a.example", "write"],
            &["r", "wss://b.example", "write"]
        ])
    );
}
