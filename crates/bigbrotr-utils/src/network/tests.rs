//! Tests of the networks configuration, proxy rules and semaphores.

use super::*;

#[test]
fn defaults_are_the_originals() {
    let config = NetworksConfig::default();
    assert!(
        config.clearnet.enabled
            && !config.tor.enabled
            && !config.i2p.enabled
            && !config.loki.enabled
    );
    assert_eq!(
        (config.clearnet.max_tasks, config.clearnet.timeout),
        (30, 10.0)
    );
    assert_eq!((config.tor.max_tasks, config.tor.timeout), (10, 30.0));
    assert_eq!((config.i2p.max_tasks, config.i2p.timeout), (5, 45.0));
    assert_eq!((config.loki.max_tasks, config.loki.timeout), (5, 30.0));
    assert_eq!(config.tor.proxy_url.as_deref(), Some("socks5://tor:9050"));
    assert_eq!(config.i2p.proxy_url.as_deref(), Some("socks5://i2p:4447"));
    assert_eq!(
        config.loki.proxy_url.as_deref(),
        Some("socks5://lokinet:1080")
    );
    assert_eq!(config.enabled(), vec![NetworkType::Clearnet]);
    config.validate().unwrap();
}

#[test]
fn overlays_never_go_direct() {
    let mut config = NetworksConfig::default();
    config.tor.enabled = true;
    config.tor.proxy_url = None;
    assert_eq!(
        config.proxy_for(NetworkType::Tor),
        Err(NetworkError::ProxyRequired("tor".into()))
    );
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("networks.tor.proxy_url")
    );
    config.tor.proxy_url = Some("socks5://127.0.0.1:9050".into());
    let proxy = config.proxy_for(NetworkType::Tor).unwrap().unwrap();
    assert_eq!((proxy.host(), proxy.port()), ("127.0.0.1", 9050));
    assert_eq!(proxy.remote_dns_url(), "socks5h://127.0.0.1:9050");
    assert_eq!(config.proxy_for(NetworkType::Clearnet).unwrap(), None);
    assert_eq!(
        config.proxy_for(NetworkType::I2p),
        Err(NetworkError::Disabled("i2p".into()))
    );
    assert!(config.proxy_for(NetworkType::Local).is_err());
}

#[test]
fn invalid_settings_name_their_key() {
    type Mutation = fn(&mut NetworksConfig);
    let cases: Vec<(Mutation, &str)> = vec![
        (|c| c.clearnet.max_tasks = 0, "networks.clearnet.max_tasks"),
        (|c| c.tor.max_tasks = 201, "networks.tor.max_tasks"),
        (|c| c.i2p.timeout = 0.5, "networks.i2p.timeout"),
        (|c| c.loki.timeout = f64::INFINITY, "networks.loki.timeout"),
        (
            |c| c.tor.proxy_url = Some("http://tor:9050".into()),
            "networks.tor.proxy_url",
        ),
        (
            |c| c.tor.proxy_url = Some("socks5://tor".into()),
            "networks.tor.proxy_url",
        ),
        (
            |c| c.tor.proxy_url = Some("not a url".into()),
            "networks.tor.proxy_url",
        ),
    ];
    for (mutate, key) in cases {
        let mut config = NetworksConfig::default();
        mutate(&mut config);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains(key), "{err} should name {key}");
    }
}

#[test]
fn ipv6_proxies_are_bracketed() {
    let proxy = ProxyUrl::parse("socks5://[::1]:1080", NetworkType::Loki).unwrap();
    assert_eq!(proxy.host(), "::1");
    assert_eq!(proxy.remote_dns_url(), "socks5h://[::1]:1080");
}

#[tokio::test]
async fn each_network_has_its_own_limit() {
    let mut config = NetworksConfig::default();
    config.clearnet.max_tasks = 2;
    config.tor.max_tasks = 1;
    let semaphores = NetworkSemaphores::new(&config);
    let a = semaphores.acquire(NetworkType::Clearnet).await.unwrap();
    let _b = semaphores.acquire(NetworkType::Clearnet).await.unwrap();
    assert_eq!(semaphores.available(NetworkType::Clearnet), 0);
    assert_eq!(
        semaphores.available(NetworkType::Tor),
        1,
        "tor is not affected"
    );
    let waiting = tokio::time::timeout(
        Duration::from_millis(50),
        semaphores.acquire(NetworkType::Clearnet),
    )
    .await;
    assert!(waiting.is_err(), "a third clearnet task waits");
    drop(a);
    assert!(semaphores.acquire(NetworkType::Clearnet).await.is_some());
    assert!(semaphores.acquire(NetworkType::Unknown).await.is_none());
}
