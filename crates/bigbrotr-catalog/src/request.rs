//! Request parameters to typed queries: `limit`, `offset`, `sort`, `cursor` and one filter per
//! other parameter (`value` or `OP:value`), checked against the column's type; opaque keyset
//! cursors; key paths of single-row lookups.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bigbrotr_db::catalog::{
    CatalogObject, Column, ColumnKind, Condition, Direction, ListQuery, Op, TotalMode, Value,
};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

use crate::{CatalogError, echo};

/// The original's cap on `offset` (pages past it are reached with a cursor).
pub const MAX_OFFSET: u64 = 100_000;

/// The most filters one request may carry.
pub const MAX_FILTERS: usize = 32;

/// The longest filter or key value accepted, in bytes (the schema's own limit on URLs and tag
/// values is 2,048 characters; bytea keys are 32 bytes, 64 hex digits).
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

/// The longest cursor accepted, in bytes.
pub const MAX_CURSOR_BYTES: usize = 16 * 1024;

/// Page sizes and counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// `limit` when none is given.
    pub default_page_size: u32,
    /// The largest `limit` (larger ones are clamped, as in the original).
    pub max_page_size: u32,
    /// `total` is exact up to this many rows, estimated past it (0: always estimated).
    pub exact_total_limit: u64,
}

/// A parsed list request: the query for the database and what the response's `meta` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRequest {
    /// The query.
    pub query: ListQuery,
    /// The sort, as the cursor records it (`None`: key order).
    pub sort: Option<(String, Direction)>,
}

/// Parses a list request's parameters (in order; repeated filters on one column are ANDed, so
/// `created_at=>=:1&created_at=<:2` is a range). Reserved names: `limit`, `offset`, `sort`,
/// `cursor`; every other name must be a column of `object`.
pub fn parse_list(
    object: &CatalogObject,
    params: &[(String, String)],
    limits: PageLimits,
) -> Result<ListRequest, CatalogError> {
    let mut limit = None;
    let mut offset = None;
    let mut sort_param = None;
    let mut cursor_param = None;
    let mut conditions = Vec::new();
    for (name, value) in params {
        match name.as_str() {
            "limit" => limit = Some(value.as_str()),
            "offset" => offset = Some(value.as_str()),
            "sort" => sort_param = Some(value.as_str()),
            "cursor" => cursor_param = Some(value.as_str()),
            column => {
                if conditions.len() == MAX_FILTERS {
                    return Err(CatalogError::BadRequest(format!(
                        "Too many filters (at most {MAX_FILTERS})"
                    )));
                }
                conditions.push(parse_filter(object, column, value)?);
            }
        }
    }
    let limit = match limit {
        None => i64::from(limits.default_page_size),
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .map_err(|_| CatalogError::InvalidPaging)?,
    };
    let offset = match offset {
        None => 0,
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .map_err(|_| CatalogError::InvalidPaging)?,
    };
    let limit = limit.clamp(1, i64::from(limits.max_page_size.max(1))) as u32;
    let offset = offset.clamp(0, MAX_OFFSET as i64) as u64;

    let mut sort = sort_param.map(|raw| parse_sort(object, raw)).transpose()?;
    let mut after = None;
    if let Some(raw) = cursor_param.filter(|raw| !raw.trim().is_empty()) {
        if offset > 0 {
            return Err(CatalogError::BadRequest(
                "Cursor pagination cannot be combined with offset".into(),
            ));
        }
        if !object.keyset_capable() {
            return Err(CatalogError::BadRequest(format!(
                "Table {} has no primary key: cursor pagination is not available",
                object.name
            )));
        }
        let cursor = decode_cursor(raw.trim())?;
        if cursor.table != object.name {
            return Err(CatalogError::BadRequest(
                "Invalid cursor: it was issued for another table".into(),
            ));
        }
        let cursor_sort = match &cursor.sort {
            None => None,
            Some((column, direction)) => Some(parse_sort(
                object,
                &format!("{column}:{}", direction_name(*direction)),
            )?),
        };
        match (&sort, cursor_sort) {
            (None, cursor_sort) => sort = cursor_sort,
            (Some(requested), cursor_sort) if Some(requested) == cursor_sort.as_ref() => {}
            _ => {
                return Err(CatalogError::BadRequest(
                    "Invalid cursor: it was issued for another sort".into(),
                ));
            }
        }
        let expected = order_len(object, sort);
        if cursor.key.len() != expected {
            return Err(CatalogError::BadRequest("Invalid cursor".into()));
        }
        after = Some(cursor.key);
    }
    let sort_named =
        sort.map(|(column, direction)| (object.columns[column].name.clone(), direction));
    Ok(ListRequest {
        query: ListQuery {
            conditions,
            sort,
            after,
            limit,
            offset,
            total: TotalMode::Capped(limits.exact_total_limit),
        },
        sort: sort_named,
    })
}

/// The number of order terms of a page of `object` sorted by `sort` (the sort column, then the
/// key's other columns).
fn order_len(object: &CatalogObject, sort: Option<(usize, Direction)>) -> usize {
    match sort {
        None => object.key.len(),
        Some((column, _)) => 1 + object.key.iter().filter(|&&k| k != column).count(),
    }
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Asc => "asc",
        Direction::Desc => "desc",
    }
}

/// `col`, `col:asc` or `col:desc` (case-insensitive direction), as the original parses it.
fn parse_sort(object: &CatalogObject, raw: &str) -> Result<(usize, Direction), CatalogError> {
    let (name, direction) = match raw.rsplit_once(':') {
        Some((name, direction)) => {
            let direction = match direction.to_ascii_uppercase().as_str() {
                "ASC" => Direction::Asc,
                "DESC" => Direction::Desc,
                _ => {
                    return Err(CatalogError::BadRequest(format!(
                        "Invalid sort direction: {}",
                        echo(&direction.to_uppercase())
                    )));
                }
            };
            (name, direction)
        }
        None => (raw, Direction::Asc),
    };
    let Some((index, column)) = object.column(name) else {
        return Err(CatalogError::BadRequest(format!(
            "Unknown sort column: {}",
            echo(name)
        )));
    };
    if !column.kind.orderable() {
        return Err(CatalogError::BadRequest(format!(
            "Column {} of type {} cannot be sorted",
            column.name, column.pg_type
        )));
    }
    Ok((index, direction))
}

/// The operators of a filter value, longest first, matched case-insensitively as `OP:`.
const OPERATORS: [(&str, Op); 7] = [
    ("ILIKE", Op::ILike),
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("@>", Op::Contains),
    (">", Op::Gt),
    ("<", Op::Lt),
    ("=", Op::Eq),
];

/// `value` or `OP:value` (OP one of `=`, `>`, `<`, `>=`, `<=`, `ILIKE` as in the original, plus
/// `@>` for jsonb containment), checked against the column's type.
fn parse_filter(object: &CatalogObject, name: &str, raw: &str) -> Result<Condition, CatalogError> {
    let Some((index, column)) = object.column(name) else {
        return Err(CatalogError::BadRequest(format!(
            "Unknown column: {}",
            echo(name)
        )));
    };
    let (op, value) = OPERATORS
        .iter()
        .find_map(|(prefix, op)| {
            let head = raw.get(..prefix.len() + 1)?;
            (head[..prefix.len()].eq_ignore_ascii_case(prefix) && head.ends_with(':'))
                .then(|| (*op, &raw[prefix.len() + 1..]))
        })
        .unwrap_or((Op::Eq, raw));
    check_operator(column, op)?;
    Ok(Condition {
        column: index,
        op,
        value: parse_value(column, value)?,
    })
}

fn check_operator(column: &Column, op: Op) -> Result<(), CatalogError> {
    let ok = match (op, column.kind) {
        (_, kind) if !kind.filterable() => {
            return Err(CatalogError::BadRequest(format!(
                "Column {} of type {} cannot be filtered",
                column.name, column.pg_type
            )));
        }
        (Op::ILike, kind) => kind == ColumnKind::Text,
        (Op::Contains, kind) => kind == ColumnKind::Jsonb,
        (Op::Eq, _) => true,
        (_, kind) => kind.orderable(),
    };
    if ok {
        return Ok(());
    }
    let message = match op {
        Op::ILike => format!(
            "ILIKE operator requires a text column, got {} for {}",
            column.pg_type, column.name
        ),
        Op::Contains => format!(
            "@> operator requires a jsonb column, got {} for {}",
            column.pg_type, column.name
        ),
        _ => format!(
            "Column {} of type {} only supports equality",
            column.name, column.pg_type
        ),
    };
    Err(CatalogError::BadRequest(message))
}

fn invalid(column: &Column, value: &str, expected: &str) -> CatalogError {
    CatalogError::BadRequest(format!(
        "Invalid filter value for column {} ({expected}): {}",
        column.name,
        echo(value)
    ))
}

/// A value for `column`, checked the way PostgreSQL would check it, so that a bad value is a
/// 400 naming the column instead of a database error.
pub(crate) fn parse_value(column: &Column, raw: &str) -> Result<Value, CatalogError> {
    if raw.len() > MAX_VALUE_BYTES {
        return Err(CatalogError::BadRequest(format!(
            "Filter value for column {} is too long (at most {MAX_VALUE_BYTES} bytes)",
            column.name
        )));
    }
    if raw.contains('\0') {
        return Err(invalid(column, raw, "no NUL characters"));
    }
    match column.kind {
        ColumnKind::Integer { min, max } => match raw.trim().parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(Value::Int(v)),
            _ => Err(invalid(
                column,
                raw,
                &format!("an integer between {min} and {max}"),
            )),
        },
        ColumnKind::Float => match raw.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Value::Float(v)),
            _ => Err(invalid(column, raw, "a finite number")),
        },
        ColumnKind::Numeric => {
            if is_decimal(raw.trim()) {
                Ok(Value::Text(raw.trim().to_owned()))
            } else {
                Err(invalid(column, raw, "a decimal number"))
            }
        }
        ColumnKind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "on" | "1" => Ok(Value::Bool(true)),
            "false" | "f" | "no" | "n" | "off" | "0" => Ok(Value::Bool(false)),
            _ => Err(invalid(column, raw, "true or false")),
        },
        ColumnKind::Bytea => {
            let digits = raw.strip_prefix("\\x").unwrap_or(raw);
            hex::decode(digits).map(Value::Bytes).map_err(|_| {
                CatalogError::BadRequest(format!(
                    "Invalid hex value for column {}: {}",
                    column.name,
                    echo(raw)
                ))
            })
        }
        ColumnKind::Date | ColumnKind::Timestamp | ColumnKind::Timestamptz => {
            // The shape only; PostgreSQL checks the calendar (a refusal is still a 400).
            let ok = !raw.trim().is_empty()
                && raw.len() <= 64
                && raw
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " -:+.T/".contains(c));
            if ok {
                Ok(Value::Text(raw.to_owned()))
            } else {
                Err(invalid(column, raw, "a date or timestamp"))
            }
        }
        ColumnKind::Jsonb => match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(v) => Ok(Value::Text(v.to_string())),
            Err(_) => Err(invalid(column, raw, "JSON")),
        },
        ColumnKind::Text | ColumnKind::TextArray => Ok(Value::Text(raw.to_owned())),
        ColumnKind::Json | ColumnKind::Other => Err(CatalogError::BadRequest(format!(
            "Column {} of type {} cannot be filtered",
            column.name, column.pg_type
        ))),
    }
}

/// `[+-]digits[.digits][e[+-]digits]` (or `.digits`), at most 64 characters: what `::numeric`
/// accepts, minus NaN and infinities.
fn is_decimal(raw: &str) -> bool {
    if raw.is_empty() || raw.len() > 64 {
        return false;
    }
    let body = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.len() <= 4 && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// What a cursor carries: the table, the sort, and the last row's order values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cursor {
    #[serde(rename = "t")]
    table: String,
    #[serde(rename = "s", with = "sort_serde")]
    sort: Option<(String, Direction)>,
    #[serde(rename = "k")]
    key: Vec<Option<String>>,
}

mod sort_serde {
    use bigbrotr_db::catalog::Direction;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        sort: &Option<(String, Direction)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match sort {
            None => s.serialize_none(),
            Some((column, direction)) => {
                s.serialize_some(&(column, super::direction_name(*direction)))
            }
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(String, Direction)>, D::Error> {
        let raw: Option<(String, String)> = Option::deserialize(d)?;
        raw.map(|(column, direction)| match direction.as_str() {
            "asc" => Ok((column, Direction::Asc)),
            "desc" => Ok((column, Direction::Desc)),
            _ => Err(serde::de::Error::custom("bad direction")),
        })
        .transpose()
    }
}

/// The cursor that continues after a page whose last row's order values are `last_key`.
pub fn cursor_for(
    object: &CatalogObject,
    request: &ListRequest,
    last_key: Vec<Option<String>>,
) -> String {
    let cursor = Cursor {
        table: object.name.clone(),
        sort: request.sort.clone(),
        key: last_key,
    };
    // Serialising plain strings cannot fail.
    let json = serde_json::to_vec(&cursor).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

fn decode_cursor(raw: &str) -> Result<Cursor, CatalogError> {
    let bad = || CatalogError::BadRequest("Invalid cursor".into());
    if raw.len() > MAX_CURSOR_BYTES {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if cursor
        .key
        .iter()
        .flatten()
        .any(|v| v.len() > MAX_VALUE_BYTES || v.contains('\0'))
    {
        return Err(bad());
    }
    Ok(cursor)
}

/// The key values of a single-row lookup from the raw (still percent-encoded) path after the
/// table name: one segment per key column, in key order, each percent-decoded after splitting.
/// A key part that holds `/` must be percent-encoded, except a URL (`scheme://…`): when there are
/// more segments than key columns, the text column whose segments start with `scheme:` and an
/// empty segment takes the extra ones (`/v1/relay/wss://relay.damus.io`,
/// `/v1/relay_metadata/wss://host/path/1700000000/nip11_info`).
pub fn parse_key_path(object: &CatalogObject, raw: &str) -> Result<Vec<Value>, CatalogError> {
    if object.key.is_empty() {
        return Err(CatalogError::BadRequest(format!(
            "Table {} has no primary key",
            object.name
        )));
    }
    let segments: Vec<&str> = raw.split('/').collect();
    let columns: Vec<&Column> = object.key.iter().map(|&i| &object.columns[i]).collect();
    let parts: Vec<String> = if segments.len() == columns.len() {
        segments.iter().map(|s| (*s).to_owned()).collect()
    } else if segments.len() > columns.len() {
        let extra = segments.len() - columns.len();
        let absorbing = (0..columns.len())
            .filter(|&i| columns[i].kind == ColumnKind::Text)
            .find(|&i| {
                segments[i].ends_with(':') && segments.get(i + 1).is_some_and(|s| s.is_empty())
            })
            .or_else(|| (0..columns.len()).find(|&i| columns[i].kind == ColumnKind::Text))
            .ok_or_else(|| wrong_arity(object))?;
        let mut parts: Vec<String> = segments[..absorbing]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        parts.push(segments[absorbing..=absorbing + extra].join("/"));
        parts.extend(
            segments[absorbing + extra + 1..]
                .iter()
                .map(|s| (*s).to_owned()),
        );
        parts
    } else {
        return Err(wrong_arity(object));
    };
    columns
        .iter()
        .zip(parts)
        .map(|(column, part)| {
            let decoded = percent_decode_str(&part).decode_utf8().map_err(|_| {
                CatalogError::BadRequest(format!(
                    "Invalid key value for column {}: not UTF-8",
                    column.name
                ))
            })?;
            if decoded.is_empty() {
                return Err(CatalogError::BadRequest(format!(
                    "Missing primary key column: {}",
                    column.name
                )));
            }
            parse_value(column, &decoded)
        })
        .collect()
}

fn wrong_arity(object: &CatalogObject) -> CatalogError {
    CatalogError::BadRequest(format!(
        "Table {} is looked up by {} (one path segment each)",
        object.name,
        object.key_names().join("/")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, pg_type: &str, nullable: bool) -> Column {
        Column {
            name: name.into(),
            pg_type: pg_type.into(),
            kind: ColumnKind::of(pg_type),
            nullable,
        }
    }

    fn relay_metadata() -> CatalogObject {
        CatalogObject {
            name: "relay_metadata".into(),
            is_view: false,
            columns: vec![
                column("relay_url", "text", false),
                column("metadata_id", "bytea", false),
                column("metadata_type", "text", false),
                column("generated_at", "bigint", false),
                column("score", "numeric", true),
                column("tagvalues", "text[]", false),
                column("data", "jsonb", false),
                column("kind", "integer", false),
                column("day", "date", false),
                column("ok", "boolean", false),
            ],
            key: vec![0, 3, 2],
        }
    }

    const LIMITS: PageLimits = PageLimits {
        default_page_size: 100,
        max_page_size: 1000,
        exact_total_limit: 10_000,
    };

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn bad(object: &CatalogObject, pairs: &[(&str, &str)]) -> String {
        match parse_list(object, &params(pairs), LIMITS) {
            Err(CatalogError::BadRequest(message)) => message,
            other => panic!("{pairs:?}: {other:?}"),
        }
    }

    #[test]
    fn filters_are_typed_by_column() {
        let object = relay_metadata();
        let request = parse_list(
            &object,
            &params(&[
                ("generated_at", ">:1700003600"),
                ("generated_at", "<=:1800000000"),
                ("kind", "1"),
                ("metadata_id", "ABcd"),
                ("relay_url", "ilike:%damus%"),
                ("score", ">=:1.5e3"),
                ("tagvalues", "e:abc"),
                ("data", r#"@>:{"software": "strfry"}"#),
                ("ok", "yes"),
                ("day", "2026-01-31"),
            ]),
            LIMITS,
        )
        .unwrap();
        let c = &request.query.conditions;
        assert_eq!((c[0].op, &c[0].value), (Op::Gt, &Value::Int(1_700_003_600)));
        assert_eq!(c[1].op, Op::Le);
        assert_eq!((c[2].op, &c[2].value), (Op::Eq, &Value::Int(1)));
        assert_eq!(c[3].value, Value::Bytes(vec![0xab, 0xcd]));
        assert_eq!(
            (c[4].op, &c[4].value),
            (Op::ILike, &Value::Text("%damus%".into()))
        );
        assert_eq!(c[5].value, Value::Text("1.5e3".into()));
        assert_eq!(c[6].value, Value::Text("e:abc".into()));
        assert_eq!(
            (c[7].op, &c[7].value),
            (
                Op::Contains,
                &Value::Text(r#"{"software":"strfry"}"#.into())
            )
        );
        assert_eq!(c[8].value, Value::Bool(true));
        assert_eq!(c[9].value, Value::Text("2026-01-31".into()));
        // A value that merely starts like an operator without the colon is a value.
        let request = parse_list(&object, &params(&[("relay_url", ">wss")]), LIMITS).unwrap();
        assert_eq!(request.query.conditions[0].op, Op::Eq);
    }

    #[test]
    fn bad_filters_are_client_errors_naming_the_column() {
        let object = relay_metadata();
        assert_eq!(bad(&object, &[("nope", "1")]), "Unknown column: nope");
        assert!(bad(&object, &[("kind", "1; DROP TABLE relay")]).contains("column kind"));
        assert!(bad(&object, &[("kind", "99999999999")]).contains("between"));
        assert!(bad(&object, &[("generated_at", "1e400")]).contains("generated_at"));
        assert!(bad(&object, &[("metadata_id", "xyz")]).starts_with("Invalid hex value"));
        assert!(bad(&object, &[("kind", "ILIKE:1")]).starts_with("ILIKE operator requires"));
        assert!(bad(&object, &[("score", "NaN")]).contains("decimal"));
        assert!(bad(&object, &[("data", "{not json")]).contains("JSON"));
        assert!(bad(&object, &[("data", ">:{}")]).contains("only supports equality"));
        assert!(bad(&object, &[("ok", "maybe")]).contains("true or false"));
        assert!(bad(&object, &[("day", "2026-01-01'; --")]).contains("date"));
        assert!(bad(&object, &[("relay_url", "a\0b")]).contains("NUL"));
        assert!(
            bad(&object, &[("relay_url", &"x".repeat(MAX_VALUE_BYTES + 1))]).contains("too long")
        );
        let many: Vec<(&str, &str)> = (0..=MAX_FILTERS).map(|_| ("kind", "1")).collect();
        assert!(bad(&object, &many).starts_with("Too many filters"));
        let long = "n".repeat(500);
        assert!(bad(&object, &[(long.as_str(), "1")]).len() < 100);
    }

    #[test]
    fn paging_is_clamped_like_the_original() {
        let object = relay_metadata();
        let request = parse_list(
            &object,
            &params(&[("limit", "5000"), ("offset", "-3")]),
            LIMITS,
        )
        .unwrap();
        assert_eq!((request.query.limit, request.query.offset), (1000, 0));
        let request = parse_list(
            &object,
            &params(&[("limit", "0"), ("offset", "999999999")]),
            LIMITS,
        )
        .unwrap();
        assert_eq!((request.query.limit, request.query.offset), (1, MAX_OFFSET));
        assert_eq!(parse_list(&object, &[], LIMITS).unwrap().query.limit, 100);
        for pairs in [
            [("limit", "ten")],
            [("offset", "1.5")],
            [("limit", "99999999999999999999")],
        ] {
            assert_eq!(
                parse_list(&object, &params(&pairs), LIMITS),
                Err(CatalogError::InvalidPaging)
            );
        }
    }

    #[test]
    fn sorts_name_a_column_and_a_direction() {
        let object = relay_metadata();
        let request =
            parse_list(&object, &params(&[("sort", "generated_at:DESC")]), LIMITS).unwrap();
        assert_eq!(request.query.sort, Some((3, Direction::Desc)));
        assert_eq!(
            bad(&object, &[("sort", "nope")]),
            "Unknown sort column: nope"
        );
        assert_eq!(
            bad(&object, &[("sort", "kind:up")]),
            "Invalid sort direction: UP"
        );
        assert!(bad(&object, &[("sort", "data")]).contains("cannot be sorted"));
    }

    #[test]
    fn cursors_round_trip_and_are_checked() {
        let object = relay_metadata();
        let request = parse_list(&object, &params(&[("sort", "kind:desc")]), LIMITS).unwrap();
        let key = vec![
            Some("7".into()),
            Some("wss://a".into()),
            Some("1".into()),
            Some("x".into()),
        ];
        let cursor = cursor_for(&object, &request, key.clone());
        assert!(
            cursor
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        // Without a sort parameter the cursor's sort is used.
        let next = parse_list(&object, &params(&[("cursor", &cursor)]), LIMITS).unwrap();
        assert_eq!(next.query.sort, Some((7, Direction::Desc)));
        assert_eq!(next.query.after, Some(key));
        assert!(bad(&object, &[("cursor", &cursor), ("sort", "kind")]).contains("another sort"));
        assert!(bad(&object, &[("cursor", &cursor), ("offset", "10")]).contains("offset"));
        assert_eq!(bad(&object, &[("cursor", "!!!")]), "Invalid cursor");
        assert_eq!(
            bad(&object, &[("cursor", &URL_SAFE_NO_PAD.encode("{}"))]),
            "Invalid cursor"
        );
        let mut other = object.clone();
        other.name = "relay".into();
        assert!(bad(&other, &[("cursor", &cursor)]).contains("another table"));
        let mut keyless = object.clone();
        keyless.key.clear();
        assert!(bad(&keyless, &[("cursor", &cursor)]).contains("no primary key"));
    }

    #[test]
    fn key_paths_split_around_urls() {
        let object = relay_metadata();
        let values = parse_key_path(&object, "wss://relay.damus.io/1700000000/nip11_info").unwrap();
        assert_eq!(
            values,
            vec![
                Value::Text("wss://relay.damus.io".into()),
                Value::Int(1_700_000_000),
                Value::Text("nip11_info".into())
            ]
        );
        let values = parse_key_path(&object, "wss://host/some/path/1/nip66_rtt").unwrap();
        assert_eq!(values[0], Value::Text("wss://host/some/path".into()));
        let values = parse_key_path(
            &object,
            "wss%3A%2F%2Frelay.damus.io%2Fa/1700000000/nip11_info",
        )
        .unwrap();
        assert_eq!(values[0], Value::Text("wss://relay.damus.io/a".into()));
        assert!(parse_key_path(&object, "wss://a/notanumber/nip11_info").is_err());
        assert!(parse_key_path(&object, "only-one").is_err());
        assert!(parse_key_path(&object, "%FF%FE/1/x").is_err());

        let relay = CatalogObject {
            name: "relay".into(),
            is_view: false,
            columns: vec![column("url", "text", false)],
            key: vec![0],
        };
        assert_eq!(
            parse_key_path(&relay, "wss://relay.damus.io").unwrap(),
            vec![Value::Text("wss://relay.damus.io".into())]
        );
        let event_relay = CatalogObject {
            name: "event_relay".into(),
            is_view: false,
            columns: vec![
                column("event_id", "bytea", false),
                column("relay_url", "text", false),
            ],
            key: vec![0, 1],
        };
        let values = parse_key_path(&event_relay, "00ff/wss://nos.lol/inbox").unwrap();
        assert_eq!(
            values,
            vec![
                Value::Bytes(vec![0, 255]),
                Value::Text("wss://nos.lol/inbox".into())
            ]
        );
    }

    #[test]
    fn decimals_are_checked() {
        for good in ["1", "-1.5", ".5", "1e3", "+2.0E-7", "10."] {
            assert!(is_decimal(good), "{good}");
        }
        for bad in [
            "", "NaN", "inf", "1e", "1.2.3", "--1", "1e99999", "0x10", ".",
        ] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }
}
