//! DNS check tests against an in-process authoritative server on 127.0.0.1.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bigbrotr_testkit::dns::{DnsRecords, DnsServer};
use serde_json::{Value, json};

use super::*;

fn resolver(address: SocketAddr, timeout: Duration) -> DnsResolver {
    DnsResolver::new(&DnsOptions {
        nameservers: vec![address],
        timeout,
    })
    .expect("resolver")
}

fn sorted(value: Option<&Value>) -> Vec<String> {
    let mut items: Vec<String> = value
        .and_then(Value::as_array)
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect();
    items.sort();
    items
}

#[tokio::test]
async fn check_reports_every_field() {
    let first = Ipv4Addr::new(203, 0, 113, 7);
    let second = Ipv4Addr::new(203, 0, 113, 8);
    let server = DnsServer::start(
        DnsRecords::new()
            .cname("relay.sub.example.co.uk", "edge.cdn.example.co.uk")
            .a("edge.cdn.example.co.uk", first, 120)
            .a("edge.cdn.example.co.uk", second, 120)
            .aaaa(
                "edge.cdn.example.co.uk",
                "2001:db8::7".parse().expect("ip"),
                90,
            )
            // NS of the registered domain, not of the host or its parent.
            .ns("example.co.uk", "ns1.example.net")
            .ns("example.co.uk", "ns2.example.net")
            .ns("sub.example.co.uk", "wrong.example.net")
            .ptr(first, "first.example.co.uk")
            .ptr(second, "second.example.co.uk"),
    )
    .await;
    let outcome = resolver(server.address(), Duration::from_secs(5))
        .check("relay.sub.example.co.uk")
        .await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let ips = outcome.data["dns_ips"].as_array().expect("a list").clone();
    assert_eq!(
        sorted(outcome.data.get("dns_ips")),
        ["203.0.113.7", "203.0.113.8"]
    );
    assert_eq!(outcome.int_field("dns_ttl"), Some(120));
    assert_eq!(outcome.data["dns_ips_v6"], json!(["2001:db8::7"]));
    assert_eq!(
        outcome.str_field("dns_cname"),
        Some("edge.cdn.example.co.uk")
    );
    assert_eq!(
        sorted(outcome.data.get("dns_ns")),
        ["ns1.example.net", "ns2.example.net"]
    );
    // The PTR of the first A address, without the trailing dot.
    let expected_reverse = if ips[0] == json!("203.0.113.7") {
        "first.example.co.uk"
    } else {
        "second.example.co.uk"
    };
    assert_eq!(outcome.str_field("dns_reverse"), Some(expected_reverse));
    assert_eq!(outcome.data.len(), 6);
}

#[tokio::test]
async fn missing_lookups_only_leave_their_fields_out() {
    let server = DnsServer::start(DnsRecords::new().a(
        "relay.example.com",
        Ipv4Addr::new(192, 0, 2, 10),
        60,
    ))
    .await;
    let outcome = resolver(server.address(), Duration::from_secs(5))
        .check("Relay.Example.com.")
        .await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.data["dns_ips"], json!(["192.0.2.10"]));
    assert_eq!(outcome.int_field("dns_ttl"), Some(60));
    for absent in ["dns_ips_v6", "dns_cname", "dns_ns", "dns_reverse"] {
        assert!(
            !outcome.data.contains_key(absent),
            "{absent} in {outcome:?}"
        );
    }
}

#[tokio::test]
async fn ns_uses_the_icann_registered_domain() {
    let server = DnsServer::start(
        DnsRecords::new()
            .aaaa("relay.nostr.github.io", Ipv6Addr::LOCALHOST, 30)
            .ns("github.io", "dns1.p05.nsone.net"),
    )
    .await;
    let outcome = resolver(server.address(), Duration::from_secs(5))
        .check("relay.nostr.github.io")
        .await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.data["dns_ns"], json!(["dns1.p05.nsone.net"]));
    assert_eq!(outcome.data["dns_ips_v6"], json!(["::1"]));
    assert!(!outcome.data.contains_key("dns_ips"));
}

#[tokio::test]
async fn lists_are_bounded_and_large_answers_come_over_tcp() {
    // 100 A records (about 1.6 KB) exceed the UDP payload: the answer is truncated and the
    // resolver asks again over TCP.
    let mut records = DnsRecords::new();
    for last in 1..=100 {
        records = records.a("big.example.com", Ipv4Addr::new(198, 51, 100, last), 300);
    }
    let server = DnsServer::start(records).await;
    let outcome = resolver(server.address(), Duration::from_secs(5))
        .check("big.example.com")
        .await;
    assert_eq!(
        outcome.data["dns_ips"].as_array().map(Vec::len),
        Some(MAX_ENTRIES)
    );
}

#[tokio::test]
async fn unknown_host_finds_no_records() {
    let server =
        DnsServer::start(DnsRecords::new().a("relay.example.com", Ipv4Addr::new(192, 0, 2, 1), 60))
            .await;
    let outcome = resolver(server.address(), Duration::from_secs(5))
        .check("nothing.example.org")
        .await;
    assert!(!outcome.succeeded());
    assert_eq!(outcome.reason(), Some("no DNS records found"));
    assert!(outcome.data.is_empty());
}

#[tokio::test]
async fn silent_nameserver_fails_within_the_timeout() {
    // A UDP socket that never answers and a TCP listener that never accepts, on one port.
    let (udp, tcp) = loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        if let Ok(tcp) = std::net::TcpListener::bind(udp.local_addr().expect("address")) {
            break (udp, tcp);
        }
    };
    let timeout = Duration::from_secs(1);
    let dns = resolver(udp.local_addr().expect("address"), timeout);
    let started = Instant::now();
    let outcome = dns.check("relay.example.com").await;
    let elapsed = started.elapsed();
    assert_eq!(
        outcome.reason(),
        Some("DNS timeout after 1s"),
        "{outcome:?}"
    );
    assert!(
        elapsed < timeout + Duration::from_millis(500),
        "{elapsed:?}"
    );

    let started = Instant::now();
    assert_eq!(dns.lookup_ips("relay.example.com").await, (None, None));
    assert!(started.elapsed() < timeout + Duration::from_millis(500));
    drop((udp, tcp));
}

#[tokio::test]
async fn ip_literal_host_only_looks_up_its_ptr() {
    let v4 = Ipv4Addr::new(198, 51, 100, 4);
    let v6: Ipv6Addr = "2001:db8::4".parse().expect("ip");
    let server = DnsServer::start(
        DnsRecords::new()
            .ptr(v4, "relay.example.org")
            .ptr(v6, "relay6.example.org"),
    )
    .await;
    let dns = resolver(server.address(), Duration::from_secs(5));

    let outcome = dns.check("198.51.100.4").await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.data.len(), 1);
    assert_eq!(outcome.str_field("dns_reverse"), Some("relay.example.org"));

    let outcome = dns.check("[2001:db8::4]").await;
    assert_eq!(outcome.str_field("dns_reverse"), Some("relay6.example.org"));
    assert_eq!(outcome.data.len(), 1);

    let outcome = dns.check("198.51.100.5").await;
    assert_eq!(outcome.reason(), Some("no DNS records found"));
}

#[tokio::test]
async fn lookup_ips_gives_the_first_of_each_family() {
    let server = DnsServer::start(
        DnsRecords::new()
            .a("dual.example.com", Ipv4Addr::new(192, 0, 2, 5), 60)
            .aaaa("dual.example.com", "2001:db8::5".parse().expect("ip"), 60)
            .a("v4.example.com", Ipv4Addr::new(192, 0, 2, 6), 60),
    )
    .await;
    let dns = resolver(server.address(), Duration::from_secs(5));
    assert_eq!(
        dns.lookup_ips("dual.example.com").await,
        (
            Some(Ipv4Addr::new(192, 0, 2, 5)),
            Some("2001:db8::5".parse().expect("ip"))
        )
    );
    assert_eq!(
        dns.lookup_ips("v4.example.com").await,
        (Some(Ipv4Addr::new(192, 0, 2, 6)), None)
    );
    assert_eq!(dns.lookup_ips("missing.example.com").await, (None, None));
    // IP literals are returned as they are, without a query.
    assert_eq!(
        dns.lookup_ips("203.0.113.9").await,
        (Some(Ipv4Addr::new(203, 0, 113, 9)), None)
    );
    assert_eq!(
        dns.lookup_ips("[::1]").await,
        (None, Some(Ipv6Addr::LOCALHOST))
    );
}

#[test]
fn registered_domain_follows_the_icann_section() {
    assert_eq!(
        registered_domain("relay.sub.example.co.uk").as_deref(),
        Some("example.co.uk")
    );
    assert_eq!(
        registered_domain("Example.COM.").as_deref(),
        Some("example.com")
    );
    // Private suffixes are ignored, as tldextract does by default.
    assert_eq!(
        registered_domain("relay.nostr.github.io").as_deref(),
        Some("github.io")
    );
    assert_eq!(registered_domain("co.uk"), None);
    assert_eq!(registered_domain("relay.invalid-tld-xyz"), None);
}

/// Issue 18, case 4: the PTR of a loopback address is asked of the configured server, as
/// dnspython does in 6.6.9. hickory's resolver would answer `localhost` itself without sending a
/// query; the names below exist only on the test server, so they prove the query arrived.
#[tokio::test]
async fn loopback_reverse_lookups_ask_the_server() {
    let v6_loopback = Ipv6Addr::LOCALHOST;
    let server = DnsServer::start(
        DnsRecords::new()
            .a("relay.example.org", Ipv4Addr::new(127, 0, 0, 1), 60)
            .ptr(Ipv4Addr::new(127, 0, 0, 1), "loopback.example.org")
            .ptr(v6_loopback, "loopback6.example.org"),
    )
    .await;
    let dns = resolver(server.address(), Duration::from_secs(5));

    let outcome = dns.check("relay.example.org").await;
    assert_eq!(
        outcome.str_field("dns_reverse"),
        Some("loopback.example.org")
    );
    let outcome = dns.check("127.0.0.1").await;
    let metadata = outcome
        .to_metadata(bigbrotr_models::metadata::MetadataType::Nip66Dns)
        .expect("storable");
    assert_eq!(
        metadata.canonical(),
        r#"{"data":{"dns_reverse":"loopback.example.org"},"logs":{"success":true}}"#
    );
    assert_eq!(
        metadata.id_hex(),
        "cbc44e0b50fef53be7fd3da2e518556dbfe153c27835bad64112f2220fd85393"
    );
    let outcome = dns.check("[::1]").await;
    assert_eq!(
        outcome.str_field("dns_reverse"),
        Some("loopback6.example.org")
    );
    // A loopback address the server has no PTR for has no `dns_reverse` (not "localhost").
    let outcome = dns.check("127.0.0.2").await;
    assert_eq!(outcome.reason(), Some("no DNS records found"));
}

/// `localhost` is a name like any other for the DNS check: its records come from the server.
#[tokio::test]
async fn localhost_names_ask_the_server() {
    let server =
        DnsServer::start(DnsRecords::new().a("localhost", Ipv4Addr::new(127, 0, 0, 9), 60)).await;
    let dns = resolver(server.address(), Duration::from_secs(5));
    let outcome = dns.check("localhost").await;
    assert_eq!(outcome.data["dns_ips"], json!(["127.0.0.9"]));
    assert_eq!(outcome.data["dns_ttl"], json!(60));
    assert_eq!(
        dns.lookup_ips("localhost").await,
        (Some(Ipv4Addr::new(127, 0, 0, 9)), None)
    );
}
