//! The NIP-66 Geo check (`nip66_geo`, clearnet): where a relay's address is, from a GeoLite2-City
//! database. The IPv4 address is preferred; the IPv6 one is used when there is no IPv4 address or
//! the database knows nothing about it.
//!
//! Data fields: `geo_country` (ISO code, else the registered country's), `geo_country_name`,
//! `geo_is_eu` (whenever a country is known; GeoLite2 only stores `true`), `geo_continent`,
//! `geo_continent_name`, `geo_city`, `geo_geoname_id`, `geo_region` (the most specific
//! subdivision), `geo_postal`, `geo_lat`, `geo_lon`, `geo_accuracy` (km), `geo_tz` and `geo_hash`
//! (the geohash of the coordinates at the configured precision). Names are the English ones.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use maxminddb::geoip2;
use serde_json::{Map, Number, Value};

use crate::nip66::geoip::{City, MaxMindDatabase};
use crate::outcome::CheckOutcome;

/// A GeoLite2-City database held in memory; share it as an `Arc`.
pub type GeoDatabase = MaxMindDatabase<City>;

/// Runs the Geo check on the resolved addresses of a relay.
pub fn check(
    db: &GeoDatabase,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    geohash_precision: usize,
) -> CheckOutcome {
    if ipv4.is_none() && ipv6.is_none() {
        return CheckOutcome::failure("could not resolve hostname to IP");
    }
    let candidates = ipv4.map(IpAddr::V4).into_iter().chain(ipv6.map(IpAddr::V6));
    for ip in candidates {
        let data = fields(db, ip, geohash_precision);
        if !data.is_empty() {
            return CheckOutcome::success(data);
        }
    }
    CheckOutcome::failure("no geo data found for IP")
}

/// The fields the database has for `ip` (empty when it has none).
fn fields(db: &GeoDatabase, ip: IpAddr, geohash_precision: usize) -> Map<String, Value> {
    let mut data = Map::new();
    let Some(city) = db
        .reader()
        .lookup(ip)
        .and_then(|found| found.decode::<geoip2::City>())
        .ok()
        .flatten()
    else {
        return data;
    };
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            data.insert(key.to_owned(), value);
        }
    };
    let string = |text: Option<&str>| text.map(|t| Value::String(t.to_owned()));
    let float = |x: Option<f64>| x.and_then(Number::from_f64).map(Value::Number);

    let country = if city.country.iso_code.is_some() {
        &city.country
    } else {
        &city.registered_country
    };
    put("geo_country", string(country.iso_code));
    put("geo_country_name", string(country.names.english));
    if country.iso_code.is_some() {
        put(
            "geo_is_eu",
            Some(Value::Bool(country.is_in_european_union.unwrap_or(false))),
        );
    }
    put("geo_continent", string(city.continent.code));
    put("geo_continent_name", string(city.continent.names.english));
    put("geo_city", string(city.city.names.english));
    put("geo_geoname_id", city.city.geoname_id.map(Value::from));
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
    data
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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

    #[test]
    fn ipv6_is_used_without_ipv4_or_when_ipv4_is_unknown() {
        let tokyo = CityEntry {
            network: "2001:db8::/32".into(),
            country_iso: Some("JP".into()),
            city_name: Some("Tokyo".into()),
            ..CityEntry::default()
        };
        let db = database(&[paris(), tokyo]);
        let v6 = Some("2001:db8::1".parse().unwrap());
        let outcome = check(&db, None, v6, 9);
        assert_eq!(outcome.str_field("geo_city"), Some("Tokyo"));
        // Non-EU countries carry no flag in GeoLite2: reported as false.
        assert_eq!(outcome.data["geo_is_eu"], json!(false));
        // An IPv4 address the database does not know falls back to IPv6.
        let outcome = check(&db, Some(Ipv4Addr::new(192, 0, 2, 1)), v6, 9);
        assert_eq!(outcome.str_field("geo_city"), Some("Tokyo"));
        // IPv4 is preferred when both are known.
        let outcome = check(&db, Some(Ipv4Addr::new(127, 0, 0, 1)), v6, 9);
        assert_eq!(outcome.str_field("geo_city"), Some("Paris"));
    }

    #[test]
    fn registered_country_is_the_fallback() {
        let entry = CityEntry {
            network: "127.0.0.0/8".into(),
            registered_country_iso: Some("DE".into()),
            ..CityEntry::default()
        };
        let outcome = check(&database(&[entry]), Some(Ipv4Addr::LOCALHOST), None, 9);
        assert_eq!(outcome.str_field("geo_country"), Some("DE"));
        assert!(!outcome.data.contains_key("geo_hash"));
    }

    #[test]
    fn failures() {
        let db = database(&[paris()]);
        let outcome = check(&db, None, None, 9);
        assert_eq!(outcome.reason(), Some("could not resolve hostname to IP"));
        let outcome = check(&db, Some(Ipv4Addr::new(192, 0, 2, 1)), None, 9);
        assert_eq!(outcome.reason(), Some("no geo data found for IP"));
        assert!(outcome.data.is_empty());
        let empty = database(&[CityEntry {
            network: "127.0.0.0/8".into(),
            ..CityEntry::default()
        }]);
        let outcome = check(&empty, Some(Ipv4Addr::LOCALHOST), None, 9);
        assert_eq!(outcome.reason(), Some("no geo data found for IP"));
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
