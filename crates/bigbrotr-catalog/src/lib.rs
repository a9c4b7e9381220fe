//! The read side shared by the API and the DVM: which of the discovered tables are exposed
//! (`tables: {name: {enabled, price}}`, closed by default), how a request's parameters become a
//! typed query (filters checked against the column's type before anything reaches the database),
//! opaque keyset cursors, key paths, and the `{"data":…,"meta":…}` bodies clients get.
//!
//! Errors are [`CatalogError`]s whose messages are safe to send to a client: they name the
//! parameter or column at fault and never echo more than a bounded prefix of a value.

pub mod request;

use std::collections::BTreeMap;

use bigbrotr_db::catalog::CatalogObject;
use bigbrotr_db::{Brotr, DbError};
use serde::{Deserialize, Serialize};

pub use request::{ListRequest, PageLimits, cursor_for, parse_key_path, parse_list};

/// One `tables:` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TableAccess {
    /// Whether the table is served (false by default: closed unless listed).
    pub enabled: bool,
    /// Price of one query in millisatoshis (DVM; 0 = free). No payment is ever verified.
    pub price: u64,
}

/// `tables:`: access per table name.
pub type TablesConfig = BTreeMap<String, TableAccess>;

/// A client-safe error of the read side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogError {
    /// The request is malformed (bad parameter, value, sort, cursor): 400.
    BadRequest(String),
    /// The table is unknown or not exposed: 404 in the API.
    UnknownTable(String),
    /// `limit` or `offset` is not an integer (each front-end has the original's wording).
    InvalidPaging,
}

impl std::fmt::Display for CatalogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadRequest(message) => f.write_str(message),
            Self::UnknownTable(name) => write!(f, "table not found: {name}"),
            Self::InvalidPaging => f.write_str("Invalid limit or offset"),
        }
    }
}

impl std::error::Error for CatalogError {}

/// The longest part of a client's value echoed back in an error.
const ECHO_CHARS: usize = 64;

/// `value` cut to a bounded length for an error message.
pub(crate) fn echo(value: &str) -> String {
    let mut out: String = value.chars().take(ECHO_CHARS).collect();
    if value.chars().count() > ECHO_CHARS {
        out.push('…');
    }
    out
}

/// The discovered schema, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    objects: BTreeMap<String, CatalogObject>,
}

impl Catalog {
    /// Discovers the `public` schema (see [`Brotr::discover_catalog`]).
    pub async fn discover(brotr: &Brotr) -> Result<Self, DbError> {
        Ok(Self::from_objects(brotr.discover_catalog().await?))
    }

    /// Discovers the `public` schema for a daemon serving `tables`: warns about each enabled
    /// name the database lacks (or the role may not read), since it will answer as unknown.
    pub async fn discover_for(brotr: &Brotr, tables: &TablesConfig) -> Result<Self, DbError> {
        let catalog = Self::discover(brotr).await?;
        for name in catalog.missing(tables) {
            tracing::warn!(
                table = name,
                "table_unavailable: enabled in tables but not in the database (or not readable)"
            );
        }
        Ok(catalog)
    }

    /// A catalog of given objects (tests, tools).
    pub fn from_objects(objects: Vec<CatalogObject>) -> Self {
        Self {
            objects: objects.into_iter().map(|o| (o.name.clone(), o)).collect(),
        }
    }

    /// Every discovered object, by name.
    pub fn objects(&self) -> impl Iterator<Item = &CatalogObject> {
        self.objects.values()
    }

    /// The object named `name`, whether exposed or not.
    pub fn get(&self, name: &str) -> Option<&CatalogObject> {
        self.objects.get(name)
    }

    /// The exposed object named `name`: discovered and `enabled` in `tables`.
    pub fn exposed_object(
        &self,
        tables: &TablesConfig,
        name: &str,
    ) -> Result<&CatalogObject, CatalogError> {
        match (self.objects.get(name), tables.get(name)) {
            (Some(object), Some(access)) if access.enabled => Ok(object),
            _ => Err(CatalogError::UnknownTable(echo(name))),
        }
    }

    /// The exposed objects, sorted by name.
    pub fn exposed<'a>(&'a self, tables: &TablesConfig) -> Vec<&'a CatalogObject> {
        self.objects
            .values()
            .filter(|object| tables.get(&object.name).is_some_and(|a| a.enabled))
            .collect()
    }

    /// Names enabled in `tables` that the database does not have (or the role may not read):
    /// reported at start, since they will answer 404.
    pub fn missing<'a>(&self, tables: &'a TablesConfig) -> Vec<&'a str> {
        tables
            .iter()
            .filter(|(name, access)| access.enabled && !self.objects.contains_key(*name))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// The JSON description of an object's columns (`GET /schema/{t}`): the original's shape.
pub fn describe(object: &CatalogObject) -> serde_json::Value {
    serde_json::json!({
        "name": object.name,
        "is_view": object.is_view,
        "columns": object.columns.iter().map(|c| serde_json::json!({
            "name": c.name,
            "type": c.pg_type,
            "nullable": c.nullable,
        })).collect::<Vec<_>>(),
        "primary_key": object.key_names(),
    })
}

/// The summary of an object in `GET /schema`: the original's shape.
pub fn summary(object: &CatalogObject) -> serde_json::Value {
    serde_json::json!({
        "name": object.name,
        "is_view": object.is_view,
        "columns": object.columns.len(),
        "has_primary_key": !object.key.is_empty(),
    })
}

/// Writes `{"data":[rows…],"meta":meta}` where each row is already JSON text (from the
/// database), without parsing the rows again.
pub fn page_body(rows: &[String], meta: &serde_json::Value) -> String {
    let size: usize = rows.iter().map(|r| r.len() + 1).sum::<usize>() + 256;
    let mut body = String::with_capacity(size);
    body.push_str("{\"data\":[");
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str(row);
    }
    body.push_str("],\"meta\":");
    body.push_str(&meta.to_string());
    body.push('}');
    body
}

#[cfg(test)]
mod tests {
    use bigbrotr_db::catalog::{Column, ColumnKind};

    use super::*;

    fn object(name: &str) -> CatalogObject {
        CatalogObject {
            name: name.into(),
            is_view: false,
            columns: vec![Column {
                name: "url".into(),
                pg_type: "text".into(),
                kind: ColumnKind::Text,
                nullable: false,
            }],
            key: vec![0],
        }
    }

    #[test]
    fn tables_are_closed_unless_enabled() {
        let catalog = Catalog::from_objects(vec![object("relay"), object("event")]);
        let mut tables = TablesConfig::new();
        tables.insert(
            "relay".into(),
            TableAccess {
                enabled: true,
                price: 0,
            },
        );
        tables.insert("event".into(), TableAccess::default());
        tables.insert(
            "ghost".into(),
            TableAccess {
                enabled: true,
                price: 0,
            },
        );
        assert!(catalog.exposed_object(&tables, "relay").is_ok());
        assert_eq!(
            catalog.exposed_object(&tables, "event").unwrap_err(),
            CatalogError::UnknownTable("event".into())
        );
        assert_eq!(
            catalog
                .exposed_object(&tables, "nope")
                .unwrap_err()
                .to_string(),
            "table not found: nope"
        );
        let names: Vec<&str> = catalog
            .exposed(&tables)
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(names, ["relay"]);
        assert_eq!(catalog.missing(&tables), ["ghost"]);
    }

    #[test]
    fn a_page_body_embeds_rows_as_they_are() {
        let body = page_body(
            &[r#"{"a":1}"#.into(), r#"{"a":2}"#.into()],
            &serde_json::json!({"limit": 2}),
        );
        assert_eq!(body, r#"{"data":[{"a":1},{"a":2}],"meta":{"limit":2}}"#);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["data"][1]["a"], 2);
        assert_eq!(
            page_body(&[], &serde_json::json!({})),
            r#"{"data":[],"meta":{}}"#
        );
    }

    #[test]
    fn echoed_values_are_bounded() {
        let long = "x".repeat(10_000);
        assert_eq!(echo(&long).chars().count(), ECHO_CHARS + 1);
        assert_eq!(echo("short"), "short");
    }
}
