//! GeoLite2-shaped MaxMind databases built in memory (mmdb-writer), so the Geo and Net checks and
//! the database refresh run against real `.mmdb` files without MaxMind's licensed data.
//!
//! The records use GeoLite2's field names and types: integers are unsigned (`geoname_id` u32,
//! `accuracy_radius` u16, `autonomous_system_number` u32), as `maxminddb::geoip2` expects.

use std::collections::BTreeMap;

use mmdb_writer::Writer;
use mmdb_writer::ipnet::IpNet;
use serde::Serialize;

/// One network of a GeoLite2-City database. `None` fields are left out of the record.
#[derive(Debug, Clone, Default)]
pub struct CityEntry {
    /// The network, e.g. `127.0.0.0/8` or `::1/128`.
    pub network: String,
    /// Country ISO code (`country.iso_code`).
    pub country_iso: Option<String>,
    /// Country English name.
    pub country_name: Option<String>,
    /// Registered country ISO code (`registered_country.iso_code`).
    pub registered_country_iso: Option<String>,
    /// Registered country English name.
    pub registered_country_name: Option<String>,
    /// `registered_country.is_in_european_union`.
    pub registered_is_in_european_union: Option<bool>,
    /// `country.is_in_european_union` (GeoLite2 only stores it when true).
    pub is_in_european_union: Option<bool>,
    /// Continent code.
    pub continent_code: Option<String>,
    /// Continent English name.
    pub continent_name: Option<String>,
    /// City English name.
    pub city_name: Option<String>,
    /// City GeoNames id.
    pub city_geoname_id: Option<u32>,
    /// Subdivision English names, largest first.
    pub subdivisions: Vec<String>,
    /// Postal code.
    pub postal: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Accuracy radius in km.
    pub accuracy_radius: Option<u16>,
    /// IANA time zone.
    pub time_zone: Option<String>,
}

/// One network of a GeoLite2-ASN database.
#[derive(Debug, Clone)]
pub struct AsnEntry {
    /// The network, e.g. `127.0.0.0/8`.
    pub network: String,
    /// Autonomous system number.
    pub asn: u32,
    /// Organisation.
    pub org: String,
}

type Names = BTreeMap<&'static str, String>;

#[derive(Serialize, Default)]
struct Named {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iso_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    geoname_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_in_european_union: Option<bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    names: Names,
}

#[derive(Serialize, Default)]
struct Location {
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy_radius: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    longitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_zone: Option<String>,
}

#[derive(Serialize)]
struct Postal {
    code: String,
}

#[derive(Serialize)]
struct CityRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    continent: Option<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registered_country: Option<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    postal: Option<Postal>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subdivisions: Vec<Named>,
}

#[derive(Serialize)]
struct AsnRecord<'a> {
    autonomous_system_number: u32,
    autonomous_system_organization: &'a str,
}

fn english(name: Option<&String>) -> Names {
    name.map(|n| BTreeMap::from([("en", n.clone())]))
        .unwrap_or_default()
}

fn network(text: &str) -> IpNet {
    text.parse()
        .unwrap_or_else(|e| panic!("invalid network {text:?}: {e}"))
}

impl CityEntry {
    fn record(&self) -> CityRecord {
        let city = (self.city_name.is_some() || self.city_geoname_id.is_some()).then(|| Named {
            geoname_id: self.city_geoname_id,
            names: english(self.city_name.as_ref()),
            ..Named::default()
        });
        let continent =
            (self.continent_code.is_some() || self.continent_name.is_some()).then(|| Named {
                code: self.continent_code.clone(),
                names: english(self.continent_name.as_ref()),
                ..Named::default()
            });
        let country = (self.country_iso.is_some()
            || self.country_name.is_some()
            || self.is_in_european_union.is_some())
        .then(|| Named {
            iso_code: self.country_iso.clone(),
            is_in_european_union: self.is_in_european_union,
            names: english(self.country_name.as_ref()),
            ..Named::default()
        });
        let registered_country = (self.registered_country_iso.is_some()
            || self.registered_country_name.is_some()
            || self.registered_is_in_european_union.is_some())
        .then(|| Named {
            iso_code: self.registered_country_iso.clone(),
            is_in_european_union: self.registered_is_in_european_union,
            names: english(self.registered_country_name.as_ref()),
            ..Named::default()
        });
        let location = (self.accuracy_radius.is_some()
            || self.latitude.is_some()
            || self.longitude.is_some()
            || self.time_zone.is_some())
        .then(|| Location {
            accuracy_radius: self.accuracy_radius,
            latitude: self.latitude,
            longitude: self.longitude,
            time_zone: self.time_zone.clone(),
        });
        CityRecord {
            city,
            continent,
            country,
            registered_country,
            location,
            postal: self.postal.clone().map(|code| Postal { code }),
            subdivisions: self
                .subdivisions
                .iter()
                .map(|name| Named {
                    names: english(Some(name)),
                    ..Named::default()
                })
                .collect(),
        }
    }
}

/// The build time written into every fixture: a fixed one, so the same entries always make the
/// same bytes (with the writer's default, the current time, two builds a second apart differ).
fn fixed_build_epoch() -> std::time::SystemTime {
    std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)
}

/// A GeoLite2-City database (`database_type` "GeoLite2-City", IPv6 tree with IPv4 aliases).
pub fn city_database(entries: &[CityEntry]) -> Vec<u8> {
    let mut writer = Writer::builder("GeoLite2-City")
        .build_epoch(fixed_build_epoch())
        .build();
    for entry in entries {
        writer
            .insert(network(&entry.network), &entry.record())
            .expect("insert a City record");
    }
    writer.to_bytes().expect("serialise the City database")
}

/// A GeoLite2-ASN database (`database_type` "GeoLite2-ASN").
pub fn asn_database(entries: &[AsnEntry]) -> Vec<u8> {
    let mut writer = Writer::builder("GeoLite2-ASN")
        .build_epoch(fixed_build_epoch())
        .build();
    for entry in entries {
        let record = AsnRecord {
            autonomous_system_number: entry.asn,
            autonomous_system_organization: &entry.org,
        };
        writer
            .insert(network(&entry.network), &record)
            .expect("insert an ASN record");
    }
    writer.to_bytes().expect("serialise the ASN database")
}
