//! The NIP-66 Geo check (`nip66_geo`, clearnet): where a relay's address is, from a GeoLite2-City
//! database. One address is looked up, the IPv4 one when the host has one, else the IPv6 one,
//! exactly as BigBrotr 6.6.9 does: an IPv4 address the database does not know fails the check
//! ("no geo data found for IP") even when the IPv6 address is known, so the stored document always
//! describes the address `net_ip` (or, without IPv4, `net_ipv6`) names.
//!
//! Data fields, each only when the record has it (empty strings and a zero GeoNames id count as
//! missing, as in 6.6.9): `geo_country` (the country's ISO code, else the registered country's),
//! `geo_country_name` (likewise, chosen on its own), `geo_is_eu` (always present: the *country's*
//! `is_in_european_union`, `false` when the record has no country or no flag, never the
//! registered country's; GeoLite2 only stores `true`), `geo_continent`, `geo_continent_name`,
//! `geo_city`, `geo_geoname_id`, `geo_region` (the most specific subdivision's name),
//! `geo_postal`, `geo_lat`, `geo_lon`, `geo_accuracy` (km), `geo_tz` and `geo_hash` (the geohash
//! of the coordinates at the configured precision). Names are the English ones. Because
//! `geo_is_eu` is always present, an address the database knows always succeeds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use maxminddb::geoip2;
use serde_json::{Map, Number, Value};

use crate::nip66::geoip::{City, MaxMindDatabase};
use crate::outcome::CheckOutcome;

/// A GeoLite2-City database held in memory; share it as an `Arc`.
pub type GeoDatabase = MaxMindDatabase<City>;

/// Runs the Geo check on the resolved addresses of a relay: the IPv4 address when there is one,
/// else the IPv6 one.
pub fn check(
    db: &GeoDatabase,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    geohash_precision: usize,
) -> CheckOutcome {
    let Some(ip) = ipv4.map(IpAddr::V4).or(ipv6.map(IpAddr::V6)) else {
        return CheckOutcome::failure("could not resolve hostname to IP");
    };
    match fields(db, ip, geohash_precision) {
        Some(data) if !data.is_empty() => CheckOutcome::success(data),
        _ => CheckOutcome::failure("no geo data found for IP"),
    }
}

/// The fields of the record the database has for `ip`, `None` when it has none.
fn fields(db: &GeoDatabase, ip: IpAddr, geohash_precision: usize) -> Option<Map<String, Value>> {
    let city = db
        .reader()
        .lookup(ip)
        .and_then(|found| found.decode::<geoip2::City>())
        .ok()
        .flatten()?;
    let mut data = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            data.insert(key.to_owned(), value);
        }
    };
    // Python's truthiness: a missing or empty string is left out.
    let string = |text: Option<&str>| {
        text.filter(|t| !t.is_empty())
            .map(|t| Value::String(t.to_owned()))
    };
    let float = |x: Option<f64>| x.and_then(Number::from_f64).map(Value::Number);

    let country = &city.country;
    let registered = &city.registered_country;
    put(
        "geo_country",
        string(country.iso_code).or_else(|| string(registered.iso_code)),
    );
    put(
        "geo_country_name",
        string(country.names.english).or_else(|| string(registered.names.english)),
    );
    put(
        "geo_is_eu",
        Some(Value::Bool(country.is_in_european_union.unwrap_or(false))),
    );
    put("geo_continent", string(city.continent.code));
    put("geo_continent_name", string(city.continent.names.english));
    put("geo_city", string(city.city.names.english));
    put(
        "geo_geoname_id",
        city.city.geoname_id.filter(|id| *id != 0).map(Value::from),
    );
    put(
        "geo_region",
        string(city.subdivisions.last().and_then(|s| s.names.english)),
    );
    put("geo_postal", string(city.postal.code));
    let location = &city.location;
    put("geo_lat", float(location.latitude));
    put("geo_lon", float(location.longitude));
    put("geo_accuracy", location.accuracy_radius.map(Value::from));
    put("geo_tz", string(location.time_zone));
    if let (Some(lat), Some(lon)) = (location.latitude, location.longitude) {
        let hash = geohash::encode(geohash::Coord { x: lon, y: lat }, geohash_precision);
        put("geo_hash", hash.ok().map(Value::String));
    }
    Some(data)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bigbrotr_models::metadata::MetadataType;
    use bigbrotr_testkit::mmdb::{CityEntry, city_database};
    use serde_json::json;

    use crate::nip66::geoip::GeoIpError;

    use super::*;

    fn paris() -> CityEntry {
        CityEntry {
            network: "127.0.0.0/8".into(),
            country_iso: Some("FR".into()),
            country_name: Some("France".into()),
            is_in_european_union: Some(true),
            continent_code: Some("EU".into()),
            continent_name: Some("Europe".into()),
            city_name: Some("Paris".into()),
            city_geoname_id: Some(2_988_507),
            subdivisions: vec!["Île-de-France".into(), "Paris".into()],
            postal: Some("75001".into()),
            latitude: Some(48.8566),
            longitude: Some(2.3522),
            accuracy_radius: Some(20),
            time_zone: Some("Europe/Paris".into()),
            ..CityEntry::default()
        }
    }

    fn database(entries: &[CityEntry]) -> GeoDatabase {
        GeoDatabase::from_bytes(city_database(entries)).expect("valid database")
    }

    #[test]
    fn ipv4_gives_every_field() {
        let db = database(&[paris()]);
        assert_eq!(db.database_type(), "GeoLite2-City");
        let outcome = check(&db, Some(Ipv4Addr::new(127, 0, 0, 1)), None, 9);
        assert!(outcome.succeeded(), "{outcome:?}");
        let expected = json!({
            "geo_country": "FR",
            "geo_country_name": "France",
            "geo_is_eu": true,
            "geo_continent": "EU",
            "geo_continent_name": "Europe",
            "geo_city": "Paris",
            "geo_geoname_id": 2_988_507,
            "geo_region": "Paris",
            "geo_postal": "75001",
            "geo_lat": 48.8566,
            "geo_lon": 2.3522,
            "geo_accuracy": 20,
            "geo_tz": "Europe/Paris",
            "geo_hash": "u09tvw0f6",
        });
        assert_eq!(Value::Object(outcome.data), expected);
    }

    #[test]
    fn geohash_follows_the_precision() {
        let db = database(&[paris()]);
        let ip = Some(Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(check(&db, ip, None, 5).str_field("geo_hash"), Some("u09tv"));
        assert_eq!(
            check(&db, ip, None, 12).str_field("geo_hash").map(str::len),
            Some(12)
        );
    }

    /// The stored envelope's canonical JSON and id (hex), as the monitor stores it.
    fn stored(outcome: &CheckOutcome) -> (String, String) {
        let metadata = outcome
            .to_metadata(MetadataType::Nip66Geo)
            .expect("storable");
        (metadata.canonical().to_owned(), metadata.id_hex())
    }

    fn tokyo() -> CityEntry {
        CityEntry {
            network: "2001:db8::/32".into(),
            country_iso: Some("JP".into()),
            city_name: Some("Tokyo".into()),
            ..CityEntry::default()
        }
    }

    #[test]
    fn ipv6_is_used_only_without_ipv4() {
        let db = database(&[paris(), tokyo()]);
        let v6 = Some("2001:db8::1".parse().unwrap());
        let outcome = check(&db, None, v6, 9);
        // Non-EU countries carry no flag in GeoLite2: stored as false.
        assert_eq!(
            stored(&outcome),
            (
                r#"{"data":{"geo_city":"Tokyo","geo_country":"JP","geo_is_eu":false},"logs":{"success":true}}"#.to_owned(),
                "abd89a5714ffed44941c8fe0e6f3ebd85a0ae48459d1a6b319545dab11c5dde0".to_owned()
            )
        );
        // IPv4 is preferred when both are known.
        let outcome = check(&db, Some(Ipv4Addr::new(127, 0, 0, 1)), v6, 9);
        assert_eq!(outcome.str_field("geo_city"), Some("Paris"));
    }

    /// Issue 18, case 2: an IPv4 address missing from the City database fails the check, as in
    /// 6.6.9, even though the IPv6 address is known (no silent switch to another address).
    #[test]
    fn an_unknown_ipv4_address_fails_even_with_a_known_ipv6_one() {
        let db = database(&[paris(), tokyo()]);
        let v6 = Some("2001:db8::1".parse().unwrap());
        let outcome = check(&db, Some(Ipv4Addr::new(192, 0, 2, 1)), v6, 9);
        assert_eq!(
            stored(&outcome),
            (
                r#"{"logs":{"reason":"no geo data found for IP","success":false}}"#.to_owned(),
                "7ef9e2f88084f6481a76a671aa75186518cd0e4435732555fc3bda461b0608f8".to_owned()
            )
        );
    }

    /// Issue 18, case 3: `geo_is_eu` is the country's own flag, false without a country, never
    /// the registered country's (here an EU member), while `geo_country` and
    /// `geo_country_name` fall back to the registered country, as in 6.6.9.
    #[test]
    fn registered_country_fills_the_country_but_not_the_eu_flag() {
        let entry = CityEntry {
            network: "127.0.0.0/8".into(),
            registered_country_iso: Some("DE".into()),
            registered_country_name: Some("Germany".into()),
            registered_is_in_european_union: Some(true),
            ..CityEntry::default()
        };
        let outcome = check(&database(&[entry]), Some(Ipv4Addr::LOCALHOST), None, 9);
        assert_eq!(
            stored(&outcome),
            (
                r#"{"data":{"geo_country":"DE","geo_country_name":"Germany","geo_is_eu":false},"logs":{"success":true}}"#.to_owned(),
                "5d47a6754b2e7a396a98c1ff9a0a416305f071a70c64c2c22f4344802b894649".to_owned()
            )
        );
    }

    #[test]
    fn a_known_address_with_an_empty_record_stores_only_the_eu_flag() {
        let empty = database(&[CityEntry {
            network: "127.0.0.0/8".into(),
            ..CityEntry::default()
        }]);
        let outcome = check(&empty, Some(Ipv4Addr::LOCALHOST), None, 9);
        assert_eq!(
            stored(&outcome),
            (
                r#"{"data":{"geo_is_eu":false},"logs":{"success":true}}"#.to_owned(),
                "56505717111d4292b26b28e5e5ecb3c4a9a848f12bc43be64945d7b3f8431a6e".to_owned()
            )
        );
    }

    #[test]
    fn empty_strings_and_a_zero_geoname_id_are_missing() {
        let entry = CityEntry {
            network: "127.0.0.0/8".into(),
            country_iso: Some(String::new()),
            registered_country_iso: Some("AT".into()),
            city_name: Some(String::new()),
            city_geoname_id: Some(0),
            postal: Some(String::new()),
            accuracy_radius: Some(0),
            ..CityEntry::default()
        };
        let outcome = check(&database(&[entry]), Some(Ipv4Addr::LOCALHOST), None, 9);
        assert_eq!(
            Value::Object(outcome.data),
            json!({"geo_country": "AT", "geo_is_eu": false, "geo_accuracy": 0})
        );
    }

    #[test]
    fn failures() {
        let db = database(&[paris()]);
        let outcome = check(&db, None, None, 9);
        assert_eq!(outcome.reason(), Some("could not resolve hostname to IP"));
        let outcome = check(&db, Some(Ipv4Addr::new(192, 0, 2, 1)), None, 9);
        assert_eq!(outcome.reason(), Some("no geo data found for IP"));
        assert!(outcome.data.is_empty());
    }

    #[test]
    fn invalid_bytes_are_rejected() {
        assert!(matches!(
            GeoDatabase::from_bytes(b"not a database".to_vec()),
            Err(GeoIpError::Invalid(_))
        ));
        let missing = std::env::temp_dir().join("bigbrotr-no-such-city.mmdb");
        assert!(matches!(
            GeoDatabase::open(&missing),
            Err(GeoIpError::Io { .. })
        ));
    }
}
