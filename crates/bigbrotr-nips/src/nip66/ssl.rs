//! The SSL check (`nip66_ssl`, clearnet only): a first TLS handshake without verification reads
//! the certificate (SHA-256 fingerprint, subject CN, issuer O and CN, validity, SANs, serial,
//! version) and the negotiated protocol and cipher (OpenSSL's name, as 6.6.9 stores it); a second,
//! verifying handshake decides `ssl_valid`.

use std::time::Duration;

use bigbrotr_models::relay::{NetworkType, Relay};
use bigbrotr_utils::relay::Connector;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::CheckOutcome;

/// SANs kept at most (a certificate may carry thousands).
const MAX_SANS: usize = 100;

/// Checks the certificate of `relay`; each handshake within `timeout`.
pub async fn check(connector: &Connector, relay: &Relay, timeout: Duration) -> CheckOutcome {
    if relay.network() != NetworkType::Clearnet {
        return CheckOutcome::failure(format!(
            "requires clearnet, got {}",
            relay.network().as_str()
        ));
    }
    let peer = match connector.tls_handshake(relay, false, timeout).await {
        Ok(peer) => peer,
        Err(error) => return CheckOutcome::failure(error.to_string()),
    };
    let Some(leaf) = peer.certificates.first() else {
        return CheckOutcome::failure("no certificate data extracted");
    };
    let mut data = certificate_fields(leaf);
    if data.is_empty() {
        return CheckOutcome::failure("no certificate data extracted");
    }
    if let Some(protocol) = peer.protocol {
        data.insert("ssl_protocol".to_owned(), Value::String(protocol));
    }
    if let Some(cipher) = peer.cipher_suite {
        if let Some(bits) = cipher_bits(&cipher) {
            data.insert("ssl_cipher_bits".to_owned(), Value::from(bits));
        }
        data.insert(
            "ssl_cipher".to_owned(),
            Value::String(openssl_name(&cipher)),
        );
    }
    let valid = connector.tls_handshake(relay, true, timeout).await.is_ok();
    data.insert("ssl_valid".to_owned(), Value::Bool(valid));
    CheckOutcome::success(data)
}

/// The fields read from a DER certificate (empty when it does not parse).
pub fn certificate_fields(der: &[u8]) -> Map<String, Value> {
    let mut data = Map::new();
    let Ok((_, certificate)) = x509_parser::parse_x509_certificate(der) else {
        return data;
    };
    data.insert(
        "ssl_fingerprint".to_owned(),
        Value::String(fingerprint(der)),
    );
    insert_first(
        &mut data,
        "ssl_subject_cn",
        certificate.subject().iter_common_name(),
    );
    insert_first(
        &mut data,
        "ssl_issuer",
        certificate.issuer().iter_organization(),
    );
    insert_first(
        &mut data,
        "ssl_issuer_cn",
        certificate.issuer().iter_common_name(),
    );
    let validity = certificate.validity();
    data.insert(
        "ssl_not_before".to_owned(),
        Value::from(validity.not_before.timestamp()),
    );
    data.insert(
        "ssl_expires".to_owned(),
        Value::from(validity.not_after.timestamp()),
    );
    let sans = subject_alt_names(&certificate);
    if !sans.is_empty() {
        data.insert("ssl_san".to_owned(), Value::from(sans));
    }
    data.insert(
        "ssl_serial".to_owned(),
        Value::String(serial(certificate.raw_serial())),
    );
    data.insert(
        "ssl_version".to_owned(),
        Value::from(certificate.version().0),
    );
    data
}

fn insert_first<'a>(
    data: &mut Map<String, Value>,
    key: &str,
    mut attributes: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) {
    if let Some(text) = attributes.find_map(|a| a.as_str().ok()) {
        data.insert(key.to_owned(), Value::String(text.to_owned()));
    }
}

fn subject_alt_names(certificate: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(extension)) = certificate.subject_alternative_name() else {
        return Vec::new();
    };
    extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .take(MAX_SANS)
        .collect()
}

/// `SHA256:AA:BB:...` of the DER bytes.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let pairs: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    format!("SHA256:{}", pairs.join(":"))
}

/// The serial as upper-case hex without leading zeros (Python's `format(serial, "X")`).
fn serial(raw: &[u8]) -> String {
    let text = hex::encode_upper(raw);
    let trimmed = text.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The OpenSSL name of a cipher suite given by its IANA name, as Python's `ssl` (hence 6.6.9)
/// reports it: TLS 1.3 suites keep their IANA name, the TLS 1.2 suites rustls negotiates get
/// OpenSSL's; any other name is returned as it is.
pub fn openssl_name(iana: &str) -> String {
    let name = match iana {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => "ECDHE-RSA-CHACHA20-POLY1305",
        other => other,
    };
    name.to_owned()
}

/// The secret key bits of a cipher suite, from its IANA name.
pub fn cipher_bits(suite: &str) -> Option<u32> {
    if suite.contains("AES_256") || suite.contains("CHACHA20") {
        Some(256)
    } else if suite.contains("AES_128") {
        Some(128)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_and_fingerprint_formats() {
        assert_eq!(serial(&[0x00, 0x0a, 0xbc]), "ABC");
        assert_eq!(serial(&[0x00]), "0");
        let fp = fingerprint(b"abc");
        assert!(fp.starts_with("SHA256:BA:78:16:BF"));
        assert_eq!(fp.len(), "SHA256:".len() + 32 * 3 - 1);
    }

    #[test]
    fn cipher_bits_from_names() {
        assert_eq!(cipher_bits("TLS_AES_256_GCM_SHA384"), Some(256));
        assert_eq!(cipher_bits("TLS_AES_128_GCM_SHA256"), Some(128));
        assert_eq!(cipher_bits("TLS_CHACHA20_POLY1305_SHA256"), Some(256));
        assert_eq!(
            cipher_bits("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            Some(128)
        );
        assert_eq!(cipher_bits("TLS_NULL"), None);
    }

    #[test]
    fn cipher_names_are_openssl_names() {
        assert_eq!(
            openssl_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            "ECDHE-RSA-AES128-GCM-SHA256"
        );
        assert_eq!(
            openssl_name("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        );
        assert_eq!(
            openssl_name("TLS_AES_256_GCM_SHA384"),
            "TLS_AES_256_GCM_SHA384"
        );
    }

    #[test]
    fn garbage_certificate_gives_no_fields() {
        assert!(certificate_fields(b"not a certificate").is_empty());
    }
}
