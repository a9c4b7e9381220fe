//! The NIP-66 Net check (`nip66_net`, clearnet): the autonomous system of a relay's addresses,
//! from a GeoLite2-ASN database.
//!
//! Data fields, as BigBrotr 6.6.9 stores them: every resolved address is stored whether or not
//! the database knows it (`net_ip` for IPv4, `net_ipv6` for IPv6), so the check succeeds whenever
//! the host resolved. For an IPv4 address the database knows: `net_asn`, `net_asn_org` and
//! `net_network` (the CIDR of the matched network); for a known IPv6 address: `net_network_v6`,
//! plus `net_asn` and `net_asn_org` when IPv4 gave no ASN. A zero ASN and an empty organisation
//! count as missing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use maxminddb::geoip2;
use serde_json::{Map, Value};

use crate::nip66::geoip::{Asn, MaxMindDatabase};
use crate::outcome::CheckOutcome;

/// A GeoLite2-ASN database held in memory; share it as an `Arc`.
pub type AsnDatabase = MaxMindDatabase<Asn>;

impl AsnDatabase {
    /// The ASN record of `ip` and the CIDR of the network it was found in.
    fn lookup(&self, ip: IpAddr) -> Option<(Option<u32>, Option<String>, String)> {
        let found = self.reader().lookup(ip).ok()?;
        let asn = found.decode::<geoip2::Asn>().ok().flatten()?;
        let network = found.network().ok()?.to_string();
        Some((
            asn.autonomous_system_number,
            asn.autonomous_system_organization.map(str::to_owned),
            network,
        ))
    }
}

/// Runs the Net check on the resolved addresses of a relay.
pub fn check(db: &AsnDatabase, ipv4: Option<Ipv4Addr>, ipv6: Option<Ipv6Addr>) -> CheckOutcome {
    if ipv4.is_none() && ipv6.is_none() {
        return CheckOutcome::failure("could not resolve hostname to IP");
    }
    let mut data = Map::new();
    if let Some(ip) = ipv4 {
        data.insert("net_ip".into(), Value::String(ip.to_string()));
        if let Some((asn, org, network)) = db.lookup(IpAddr::V4(ip)) {
            insert_asn(&mut data, asn, org);
            data.insert("net_network".into(), Value::String(network));
        }
    }
    if let Some(ip) = ipv6 {
        data.insert("net_ipv6".into(), Value::String(ip.to_string()));
        if let Some((asn, org, network)) = db.lookup(IpAddr::V6(ip)) {
            data.insert("net_network_v6".into(), Value::String(network));
            if !data.contains_key("net_asn") {
                insert_asn(&mut data, asn, org);
            }
        }
    }
    CheckOutcome::success(data)
}

fn insert_asn(data: &mut Map<String, Value>, asn: Option<u32>, org: Option<String>) {
    if let Some(asn) = asn.filter(|asn| *asn != 0) {
        data.insert("net_asn".into(), Value::from(asn));
    }
    if let Some(org) = org.filter(|org| !org.is_empty()) {
        data.insert("net_asn_org".into(), Value::String(org));
    }
}

#[cfg(test)]
mod tests {
    use bigbrotr_models::metadata::MetadataType;
    use bigbrotr_testkit::mmdb::{AsnEntry, asn_database};
    use serde_json::json;

    use super::*;

    fn database() -> AsnDatabase {
        AsnDatabase::from_bytes(asn_database(&[
            AsnEntry {
                network: "198.51.100.0/24".into(),
                asn: 64_500,
                org: "Example Transit".into(),
            },
            AsnEntry {
                network: "2001:db8::/32".into(),
                asn: 64_501,
                org: "Example Six".into(),
            },
        ]))
        .expect("valid database")
    }

    #[test]
    fn ipv4_and_ipv6_fields() {
        let db = database();
        assert_eq!(db.database_type(), "GeoLite2-ASN");
        let outcome = check(
            &db,
            Some(Ipv4Addr::new(198, 51, 100, 20)),
            Some("2001:db8::20".parse().expect("ip")),
        );
        assert!(outcome.succeeded(), "{outcome:?}");
        assert_eq!(
            Value::Object(outcome.data),
            json!({
                "net_ip": "198.51.100.20",
                "net_asn": 64_500,
                "net_asn_org": "Example Transit",
                "net_network": "198.51.100.0/24",
                "net_ipv6": "2001:db8::20",
                "net_network_v6": "2001:db8::/32",
            })
        );
    }

    /// The stored envelope's canonical JSON and id (hex), as the monitor stores it.
    fn stored(outcome: &CheckOutcome) -> (String, String) {
        let metadata = outcome
            .to_metadata(MetadataType::Nip66Net)
            .expect("storable");
        (metadata.canonical().to_owned(), metadata.id_hex())
    }

    /// Issue 18, case 1: an IPv4 address missing from the ASN database keeps `net_ip`, and the
    /// IPv6 record supplies the ASN, as in 6.6.9.
    #[test]
    fn ipv6_supplies_the_asn_when_ipv4_has_none() {
        let db = database();
        let outcome = check(
            &db,
            Some(Ipv4Addr::new(192, 0, 2, 1)),
            Some("2001:db8::20".parse().expect("ip")),
        );
        assert_eq!(
            stored(&outcome),
            (
                r#"{"data":{"net_asn":64501,"net_asn_org":"Example Six","net_ip":"192.0.2.1","net_ipv6":"2001:db8::20","net_network_v6":"2001:db8::/32"},"logs":{"success":true}}"#.to_owned(),
                "fcba3d42184c03ffc8ff20b0498e8c451a240054e17c6cb19c962505742b25a7".to_owned()
            )
        );
    }

    /// Issue 18, case 1: addresses the ASN database does not know at all are still stored, as a
    /// success, as in 6.6.9 (not a failure that loses them).
    #[test]
    fn unknown_addresses_are_stored_without_asn() {
        let db = database();
        let outcome = check(
            &db,
            Some(Ipv4Addr::new(192, 0, 2, 1)),
            Some("2001:db9::1".parse().expect("ip")),
        );
        assert_eq!(
            stored(&outcome),
            (
                r#"{"data":{"net_ip":"192.0.2.1","net_ipv6":"2001:db9::1"},"logs":{"success":true}}"#.to_owned(),
                "262853ca9a9d9df6612df3a1768ae55ebc13c6eeb289ce1f7188a985f6aa4f28".to_owned()
            )
        );
        let outcome = check(&db, Some(Ipv4Addr::new(192, 0, 2, 1)), None);
        assert_eq!(Value::Object(outcome.data), json!({"net_ip": "192.0.2.1"}));
    }

    #[test]
    fn a_zero_asn_and_an_empty_organisation_are_missing() {
        let db = AsnDatabase::from_bytes(asn_database(&[AsnEntry {
            network: "198.51.100.0/24".into(),
            asn: 0,
            org: String::new(),
        }]))
        .expect("valid database");
        let outcome = check(&db, Some(Ipv4Addr::new(198, 51, 100, 1)), None);
        assert_eq!(
            Value::Object(outcome.data),
            json!({"net_ip": "198.51.100.1", "net_network": "198.51.100.0/24"})
        );
    }

    #[test]
    fn failures() {
        let db = database();
        assert_eq!(
            check(&db, None, None).reason(),
            Some("could not resolve hostname to IP")
        );
    }
}
