//! The `networks:` section through the daemons' configuration loader: partial YAML keeps each
//! network's own defaults, and the environment can enable an overlay.

use bigbrotr_core::config::{self, ConfigError, Validate};
use bigbrotr_utils::network::NetworksConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct WithNetworks {
    networks: NetworksConfig,
}

impl Validate for WithNetworks {
    fn validate(&self) -> Result<(), ConfigError> {
        self.networks
            .validate()
            .map_err(|e| ConfigError(e.to_string()))
    }
}

fn yaml(text: &str) -> serde_json::Value {
    config::parse_yaml(text, std::path::Path::new("validator.yaml")).unwrap()
}

#[test]
fn partial_network_settings_keep_each_networks_defaults() {
    let loaded = config::load_value::<WithNetworks>(
        yaml("networks:\n  tor:\n    enabled: true\n  clearnet:\n    max_tasks: 50\n"),
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        "validator.yaml",
    )
    .unwrap();
    let networks = loaded.config.networks;
    assert!(networks.tor.enabled);
    assert_eq!(networks.tor.proxy_url.as_deref(), Some("socks5://tor:9050"));
    assert_eq!((networks.tor.max_tasks, networks.tor.timeout), (10, 30.0));
    assert_eq!(
        (networks.clearnet.max_tasks, networks.clearnet.timeout),
        (50, 10.0)
    );
    assert!(loaded.unknown_keys.is_empty());
}

#[test]
fn an_overlay_proxy_cleared_while_enabled_is_rejected_with_its_key() {
    let err = config::load_value::<WithNetworks>(
        yaml("networks:\n  loki:\n    enabled: true\n    proxy_url: null\n"),
        true,
        "BIGBROTR_TEST_UNUSED_PREFIX__",
        "validator.yaml",
    )
    .unwrap_err();
    assert!(err.0.contains("networks.loki.proxy_url"), "{err}");
}
