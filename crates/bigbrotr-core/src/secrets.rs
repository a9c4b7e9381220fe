//! Secrets come only from environment variables named in the configuration (`password_env`,
//! `keys_env`); they never appear in YAML, logs or `Debug` output.

use std::fmt;

/// A secret string that never prints its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Reads the secret held by environment variable `name`; `None` when unset or empty.
pub fn from_env(name: &str) -> Option<Secret> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .map(Secret)
}

/// Reads a required secret; the error says which variable to set.
pub fn require_env(name: &str, what: &str) -> anyhow::Result<Secret> {
    from_env(name).ok_or_else(|| {
        anyhow::anyhow!("{what}: environment variable {name} is required but not set")
    })
}

/// Parses Nostr secret keys given as 64 hex characters or `nsec1…` (NIP-19).
pub fn parse_keys(secret: &Secret) -> anyhow::Result<nostr::Keys> {
    nostr::Keys::parse(secret.expose().trim()).map_err(|_| {
        anyhow::anyhow!("the Nostr secret key is neither 64 hex characters nor an nsec")
    })
}

/// Loads the Nostr keys from environment variable `keys_env` (hex or nsec).
pub fn keys_from_env(keys_env: &str) -> anyhow::Result<nostr::Keys> {
    let secret = from_env(keys_env).ok_or_else(|| {
        anyhow::anyhow!(
            "{keys_env} environment variable is required. Generate one with: openssl rand -hex 32"
        )
    })?;
    parse_keys(&secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret("hunter2".into());
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }

    #[test]
    fn keys_parse_from_hex_and_nsec() {
        let keys = nostr::Keys::generate();
        let hex = keys.secret_key().to_secret_hex();
        let nsec = nostr::nips::nip19::ToBech32::to_bech32(keys.secret_key()).unwrap();
        assert_eq!(
            parse_keys(&Secret(hex)).unwrap().public_key(),
            keys.public_key()
        );
        assert_eq!(
            parse_keys(&Secret(nsec)).unwrap().public_key(),
            keys.public_key()
        );
        assert!(parse_keys(&Secret("not a key".into())).is_err());
    }
}
