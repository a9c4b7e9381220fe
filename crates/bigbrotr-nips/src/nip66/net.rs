//! The NIP-66 Net check (`nip66_net`, clearnet): the autonomous system of a relay's addresses,
//! from a GeoLite2-ASN database.
//!
//! Data fields, only for an address the database knows: IPv4 gives `net_ip`, `net_asn`,
//! `net_asn_org` and `net_network` (the CIDR of the matched network); IPv6 gives `net_ipv6` and
//! `net_network_v6`, plus `net_asn` and `net_asn_org` when IPv4 gave none.

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
    if let Some(ip) = ipv4
        && let Some((asn, org, network)) = db.lookup(IpAddr::V4(ip))
    {
        data.insert("net_ip".into(), Value::String(ip.to_string()));
        insert_asn(&mut data, asn, org);
        data.insert("net_network".into(), Value::String(network));
    }
    if let Some(ip) = ipv6
        && let Some((asn, org, network)) = db.lookup(IpAddr::V6(ip))
    {
        data.insert("net_ipv6".into(), Value::String(ip.to_string()));
        data.insert("net_network_v6".into(), Value::String(network));
        if !data.contains_key("net_asn") {
            insert_asn(&mut data, asn, org);
        }
    }
    if data.is_empty() {
        CheckOutcome::failure("no ASN data found for IP")
    } else {
        CheckOutcome::success(data)
    }
}

fn insert_asn(data: &mut Map<String, Value>, asn: Option<u32>, org: Option<String>) {
    if let Some(asn) = asn {
        data.insert("net_asn".into(), Value::from(asn));
    }
    if let Some(org) = org {
        data.insert("net_asn_org".into(), Value::String(org));
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn ipv6_supplies_the_asn_when_ipv4_has_none() {
        let db = database();
        let outcome = check(
            &db,
            Some(Ipv4Addr::new(192, 0, 2, 1)),
            Some("2001:db8::20".parse().expect("ip")),
        );
        assert_eq!(
            Value::Object(outcome.data),
            json!({
                "net_ipv6": "2001:db8::20",
                "net_network_v6": "2001:db8::/32",
                "net_asn": 64_501,
                "net_asn_org": "Example Six",
            })
        );
    }

    #[test]
    fn failures() {
        let db = database();
        assert_eq!(
            check(&db, None, None).reason(),
            Some("could not resolve hostname to IP")
        );
        let outcome = check(
            &db,
            Some(Ipv4Addr::new(192, 0, 2, 1)),
            Some("2001:db9::1".parse().expect("ip")),
        );
        assert_eq!(outcome.reason(), Some("no ASN data found for IP"));
        assert!(outcome.data.is_empty());
    }
}
