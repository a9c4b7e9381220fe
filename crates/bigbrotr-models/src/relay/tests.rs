//! Tests for relay URL sanitising, network detection and [`Relay`].

use super::ip::{format_ip, parse_ip};
use super::sanitize::py_strip;
use super::test_vectors::{LOCAL_RANGE_VECTORS, SANITIZE_VECTORS};
use super::*;

fn python_message_prefix(message: &str) -> String {
    match message.strip_prefix("Invalid URL: ('") {
        Some(rest) => format!(
            "Invalid URL: {}",
            rest.split("',").next().unwrap_or_default()
        ),
        None => message.to_owned(),
    }
}

#[test]
fn sanitize_matches_python_vectors() {
    let mut failures = Vec::new();
    for (input, expected) in SANITIZE_VECTORS {
        let actual = sanitize_relay_url(input).map_err(|e| e.to_string());
        let expected = expected.map(str::to_owned).map_err(python_message_prefix);
        if actual != expected {
            failures.push(format!("{input:?}: expected {expected:?}, got {actual:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn sanitize_reference_examples() {
    assert_eq!(
        sanitize_relay_url("wss://atlas.nostr.land/wss://relay.damus.io").as_deref(),
        Ok("wss://atlas.nostr.land")
    );
    assert_eq!(
        sanitize_relay_url("wss://x.i2p:80").as_deref(),
        Ok("ws://x.i2p")
    );
}

#[test]
fn sanitize_is_idempotent_on_accepted_vectors() {
    for (input, expected) in SANITIZE_VECTORS {
        if let Ok(canonical) = expected {
            assert_eq!(
                sanitize_relay_url(canonical).as_deref(),
                Ok(*canonical),
                "from {input:?}"
            );
        }
    }
}

#[test]
fn hostname_label_length_limit_is_63() {
    let ok = format!("wss://{}.com", "a".repeat(63));
    assert_eq!(sanitize_relay_url(&ok), Ok(ok.clone()));
    let long = format!("{}.com", "a".repeat(64));
    assert_eq!(
        sanitize_relay_url(&format!("wss://{long}")),
        Err(RelayUrlError::InvalidHost(long))
    );
}

#[test]
fn hostname_length_limit_is_253() {
    let label = "a".repeat(63);
    let host_253 = format!("{label}.{label}.{label}.{}", "a".repeat(61));
    assert_eq!(host_253.len(), 253);
    assert_eq!(
        sanitize_relay_url(&format!("wss://{host_253}")),
        Ok(format!("wss://{host_253}"))
    );
    let host_254 = format!("{label}.{label}.{label}.{}", "a".repeat(62));
    assert_eq!(
        sanitize_relay_url(&format!("wss://{host_254}")),
        Err(RelayUrlError::InvalidHost(host_254))
    );
}

#[test]
fn url_length_limit_is_2048_characters() {
    // "wss://relay.com/" is 16 characters.
    let at_limit = format!("wss://relay.com/{}", "a".repeat(2032));
    assert_eq!(sanitize_relay_url(&at_limit), Ok(at_limit.clone()));
    let over = format!("wss://relay.com/{}", "a".repeat(2033));
    let err = sanitize_relay_url(&over).unwrap_err();
    assert_eq!(
        err,
        RelayUrlError::TooLong {
            length: 2049,
            prefix: over.chars().take(80).collect()
        }
    );
    assert!(
        err.to_string()
            .starts_with("URL exceeds maximum length (2049 > 2048): 'wss://relay.c")
    );
    // A valid-looking path still counts: CPython reports 2215 characters here.
    let many_segments = format!("wss://relay.com/{}", "a/".repeat(1100));
    assert!(matches!(
        sanitize_relay_url(&many_segments),
        Err(RelayUrlError::TooLong { length: 2215, .. })
    ));
}

#[test]
fn idn_label_too_long_is_rejected_with_first_50_characters() {
    let host = format!("{}.com", "ü".repeat(70));
    assert_eq!(
        sanitize_relay_url(&format!("wss://{host}")),
        Err(RelayUrlError::InvalidIdn("ü".repeat(50)))
    );
}

#[test]
fn long_invalid_host_message_is_truncated_only_for_forbidden_characters() {
    let host = format!("{}%20.com", "a".repeat(60));
    let err = sanitize_relay_url(&format!("wss://{host}")).unwrap_err();
    assert_eq!(err, RelayUrlError::InvalidHost("a".repeat(50)));
}

#[test]
fn local_ranges_match_python() {
    for (address, expected) in LOCAL_RANGE_VECTORS {
        assert_eq!(detect_network(address), *expected, "{address}");
        let bracketed = format!("[{address}]");
        assert_eq!(detect_network(&bracketed), *expected, "{bracketed}");
    }
}

#[test]
fn detect_network_rules() {
    let v3 = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid";
    let v2 = "expyuzz4wqqyqhjn";
    let b32 = "ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq";
    let loki = "kcpyawmzse7trdbzncimdi5t7tdikkmm6pu7mkcufgpo3iro4emy";
    let cases: Vec<(String, NetworkType)> = vec![
        (String::new(), NetworkType::Unknown),
        ("relay.damus.io".into(), NetworkType::Clearnet),
        ("RELAY.Damus.IO".into(), NetworkType::Clearnet),
        ("relay".into(), NetworkType::Unknown),
        ("relay.123".into(), NetworkType::Unknown),
        ("relay.12a".into(), NetworkType::Clearnet),
        ("a_b.example.com".into(), NetworkType::Clearnet),
        ("-a.example.com".into(), NetworkType::Unknown),
        ("a-.example.com".into(), NetworkType::Unknown),
        ("a..com".into(), NetworkType::Unknown),
        ("exa mple.com".into(), NetworkType::Unknown),
        ("localhost".into(), NetworkType::Local),
        ("LocalHost.LocalDomain".into(), NetworkType::Local),
        ("localhost.com".into(), NetworkType::Clearnet),
        ("8.8.8.8".into(), NetworkType::Clearnet),
        ("08.8.8.8".into(), NetworkType::Unknown),
        ("2606:4700::1111".into(), NetworkType::Clearnet),
        ("[2606:4700::1111]".into(), NetworkType::Clearnet),
        ("fe80::1%eth0".into(), NetworkType::Local),
        (format!("{v3}.onion"), NetworkType::Tor),
        (format!("{v2}.onion"), NetworkType::Tor),
        (format!("sub.{v3}.onion"), NetworkType::Tor),
        (format!("a_b.c.{v3}.onion"), NetworkType::Tor),
        (format!("-sub.{v3}.onion"), NetworkType::Unknown),
        (format!("{}.onion", &v3[..55]), NetworkType::Unknown),
        (format!("{}8.onion", &v3[..55]), NetworkType::Unknown),
        (format!("{}.onion", &v2[..15]), NetworkType::Unknown),
        ("onion".into(), NetworkType::Unknown),
        (".onion".into(), NetworkType::Unknown),
        (format!("{b32}.b32.i2p"), NetworkType::I2p),
        (format!("{}.b32.i2p", &b32[..51]), NetworkType::Unknown),
        ("relay.i2p".into(), NetworkType::I2p),
        ("sub.relay.i2p".into(), NetworkType::I2p),
        ("-relay.i2p".into(), NetworkType::Unknown),
        (".i2p".into(), NetworkType::Unknown),
        (format!("{loki}.loki"), NetworkType::Loki),
        (format!("sub.{loki}.loki"), NetworkType::Unknown),
        (format!("{}.loki", &loki[..51]), NetworkType::Unknown),
        ("relay.loki".into(), NetworkType::Unknown),
    ];
    for (host, expected) in cases {
        assert_eq!(detect_network(&host), expected, "{host:?}");
    }
}

#[test]
fn network_type_names_round_trip() {
    let names = ["clearnet", "tor", "i2p", "loki", "local", "unknown"];
    for (network, name) in NetworkType::ALL.into_iter().zip(names) {
        assert_eq!(network.as_str(), name);
        assert_eq!(network.to_string(), name);
        assert_eq!(name.parse::<NetworkType>(), Ok(network));
        assert_eq!(
            serde_json::to_string(&network).unwrap(),
            format!("\"{name}\"")
        );
        assert_eq!(
            serde_json::from_str::<NetworkType>(&format!("\"{name}\"")).unwrap(),
            network
        );
    }
    assert_eq!(
        "Clearnet".parse::<NetworkType>(),
        Err(RelayUrlError::UnknownNetwork("Clearnet".into()))
    );
    assert!(serde_json::from_str::<NetworkType>("\"onion\"").is_err());
}

#[test]
fn operational_networks_are_the_first_four() {
    let operational: Vec<_> = NetworkType::ALL
        .into_iter()
        .filter(|n| n.is_operational())
        .collect();
    assert_eq!(
        operational,
        [
            NetworkType::Clearnet,
            NetworkType::Tor,
            NetworkType::I2p,
            NetworkType::Loki
        ]
    );
}

#[test]
fn py_strip_uses_python_whitespace() {
    // Every code point for which CPython 3.11 `str.isspace()` is true.
    let python_whitespace = [
        0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
        0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029,
        0x202f, 0x205f, 0x3000,
    ];
    for code in python_whitespace {
        let c = char::from_u32(code).unwrap();
        assert_eq!(py_strip(&format!("{c}x{c}")), "x", "U+{code:04X}");
    }
    for c in ['\u{180e}', '\u{200b}', '\u{feff}', '\0'] {
        assert_eq!(py_strip(&format!("{c}x")), format!("{c}x"), "{c:?}");
    }
}

#[test]
fn ip_parsing_and_formatting_follow_cpython() {
    // (input, str(ip_address(input))) from CPython 3.11; None where ip_address() raises.
    let cases: &[(&str, Option<&str>)] = &[
        ("1.2.3.4", Some("1.2.3.4")),
        ("0.0.0.0", Some("0.0.0.0")),
        ("01.2.3.4", None),
        ("1.2.3.256", None),
        ("1.2.3", None),
        ("1.2.3.4.5", None),
        ("1.2.3.1234", None),
        ("::", Some("::")),
        ("::1", Some("::1")),
        ("1::", Some("1::")),
        ("1:0:0:0:0:0:0:0", Some("1::")),
        ("0:0:0:0:0:0:0:1", Some("::1")),
        ("2001:DB8::A", Some("2001:db8::a")),
        ("2001:db8:0:1:0:0:0:1", Some("2001:db8:0:1::1")),
        ("2001:0:0:1:0:0:1:1", Some("2001::1:0:0:1:1")),
        ("1:2:3:4:5:6:7:8", Some("1:2:3:4:5:6:7:8")),
        ("1:2:3:4:5:6:7::", Some("1:2:3:4:5:6:7:0")),
        ("::2:3:4:5:6:7:8", Some("0:2:3:4:5:6:7:8")),
        ("1:2:3:4:5:6:1.2.3.4", Some("1:2:3:4:5:6:102:304")),
        ("::ffff:1.2.3.4", Some("::ffff:102:304")),
        ("::1.2.3.4", Some("::102:304")),
        ("fe80::1%eth0", Some("fe80::1%eth0")),
        ("fe80::1%", None),
        ("fe80::1%a%b", None),
        ("1:2:3:4:5:6:7:8:9", None),
        ("1::2::3", None),
        (":1::2", None),
        ("1::2:", None),
        ("12345::", None),
        ("g::1", None),
        ("1:2", None),
        ("::1.2.3", None),
        ("::01.2.3.4", None),
        ("1:2:3:4:5:6:7::8", None),
        ("", None),
        ("1.2.3.4/32", None),
    ];
    for (input, expected) in cases {
        assert_eq!(
            parse_ip(input).map(|ip| format_ip(&ip)).as_deref(),
            *expected,
            "{input:?}"
        );
    }
}

#[test]
fn relay_new_accepts_canonical_urls_and_derives_components() {
    let relay = Relay::new("wss://relay.damus.io", 1_700_000_000).unwrap();
    assert_eq!(relay.url(), "wss://relay.damus.io");
    assert_eq!(relay.network(), NetworkType::Clearnet);
    assert_eq!(relay.discovered_at(), 1_700_000_000);
    assert_eq!(relay.scheme(), "wss");
    assert_eq!(relay.host(), "relay.damus.io");
    assert_eq!(relay.port(), None);
    assert_eq!(relay.path(), None);

    let relay = Relay::new("wss://[2606:4700:4700::1111]:8443/nostr/v1", 0).unwrap();
    assert_eq!(relay.host(), "2606:4700:4700::1111");
    assert_eq!(relay.port(), Some(8443));
    assert_eq!(relay.path(), Some("/nostr/v1"));

    let onion = "ws://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:443";
    let relay = Relay::new(onion, 5).unwrap();
    assert_eq!(relay.network(), NetworkType::Tor);
    assert_eq!(relay.scheme(), "ws");
    assert_eq!(relay.port(), Some(443));

    // CPython keeps the RFC 6874 escape of the zone delimiter in `Relay.host`.
    let relay = Relay::new("wss://[2606:4700::1%x]", 0).unwrap();
    assert_eq!(relay.host(), "2606:4700::1%25x");
}

#[test]
fn relay_new_rejects_non_canonical_urls() {
    let cases = [
        ("ws://relay.damus.io", "wss://relay.damus.io"),
        ("wss://relay.damus.io/", "wss://relay.damus.io"),
        ("wss://Relay.Damus.io", "wss://relay.damus.io"),
        ("wss://relay.damus.io:443", "wss://relay.damus.io"),
        ("wss://relay.damus.io?x=1", "wss://relay.damus.io"),
        ("wss://x.i2p:80", "ws://x.i2p"),
        (" wss://relay.damus.io", "wss://relay.damus.io"),
    ];
    for (url, expected) in cases {
        assert_eq!(
            Relay::new(url, 0),
            Err(RelayUrlError::NotCanonical {
                url: url.into(),
                expected: expected.into()
            })
        );
    }
    assert_eq!(
        Relay::new("wss://localhost", 0),
        Err(RelayUrlError::LocalAddress)
    );
    assert_eq!(
        Relay::new("wss://relay.damus.io\0", 0),
        Err(RelayUrlError::NullByte)
    );
    assert_eq!(
        Relay::new("wss://relay.damus.io", -1),
        Err(RelayUrlError::NegativeTimestamp)
    );
    assert_eq!(
        Relay::new("ws://relay.damus.io", 0)
            .unwrap_err()
            .to_string(),
        "Relay URL is not in canonical form: 'ws://relay.damus.io' (expected 'wss://relay.damus.io')"
    );
}

#[test]
fn parse_relay_sanitises_first() {
    let relay = parse_relay("  WS://Relay.Damus.io:443/?q#f ", 42).unwrap();
    assert_eq!(relay.url(), "wss://relay.damus.io");
    assert_eq!(relay.discovered_at(), 42);
    assert_eq!(
        parse_relay("https://relay.damus.io", 0),
        Err(RelayUrlError::InvalidScheme)
    );
    assert_eq!(
        parse_relay("wss://relay.damus.io", -5),
        Err(RelayUrlError::NegativeTimestamp)
    );
}

#[test]
fn resolved_addresses_outside_the_global_internet_are_local() {
    let local = [
        "127.0.0.1",
        "127.3.2.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fd00::2",
        "fe80::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
    ];
    for text in local {
        let address: std::net::IpAddr = text.parse().unwrap();
        assert!(is_local_address(address), "{text} should be local");
    }
    let global = [
        "1.1.1.1",
        "93.184.216.34",
        "172.32.0.1",
        "2606:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:1.1.1.1",
        "64:ff9b::101:101",
    ];
    for text in global {
        let address: std::net::IpAddr = text.parse().unwrap();
        assert!(!is_local_address(address), "{text} should be global");
    }
}
