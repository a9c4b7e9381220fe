//! Recursive normalisation of JSON values before hashing (6.6.9 `sanitize_data`).

use serde_json::{Map, Value};

use super::MetadataError;

/// Nesting depth past which values are replaced by null (the top level is depth 0).
pub const MAX_DEPTH: usize = 50;

/// Normalises a JSON value for deterministic hashing; `Ok(None)` stands for Python's `None`.
///
/// - Values nested deeper than [`MAX_DEPTH`] become null (and are then dropped by their parent;
///   a chain that only leads to such values therefore vanishes entirely).
/// - Null, booleans, numbers and strings are kept; a string or object key containing NUL is an
///   error.
/// - Objects drop entries whose sanitised value is null, `{}` or `[]` (keys are emitted in
///   sorted order by [`canonical_json`](super::canonical_json) anyway).
/// - Arrays drop items that are null, `{}` or `[]` after sanitising.
///
/// Python also turns NaN, infinities and non-JSON types into null; a `serde_json::Value` cannot
/// hold those (`json!(f64::NAN)` is already `Value::Null`), so they need no case here.
pub fn sanitize(value: &Value) -> Result<Option<Value>, MetadataError> {
    sanitize_named(value, "data")
}

/// [`sanitize`] with the field name used in error messages.
pub(crate) fn sanitize_named(
    value: &Value,
    field: &'static str,
) -> Result<Option<Value>, MetadataError> {
    sanitize_at(value, field, 0)
}

fn sanitize_at(
    value: &Value,
    field: &'static str,
    depth: usize,
) -> Result<Option<Value>, MetadataError> {
    if depth > MAX_DEPTH {
        return Ok(None);
    }
    match value {
        Value::Null => Ok(None),
        Value::Bool(_) | Value::Number(_) => Ok(Some(value.clone())),
        Value::String(text) => {
            if text.contains('\0') {
                return Err(MetadataError::NullByte(field));
            }
            Ok(Some(value.clone()))
        }
        Value::Object(map) => {
            // Python checks keys in sorted order, so the first NUL found is the same one.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut result = Map::new();
            for key in keys {
                if key.contains('\0') {
                    return Err(MetadataError::NullByteInKey(field));
                }
                if let Some(item) = sanitize_at(&map[key], field, depth + 1)?
                    && !is_empty_container(&item)
                {
                    result.insert(key.clone(), item);
                }
            }
            Ok(Some(Value::Object(result)))
        }
        Value::Array(items) => {
            let mut result = Vec::with_capacity(items.len());
            for item in items {
                if let Some(item) = sanitize_at(item, field, depth + 1)?
                    && !is_empty_container(&item)
                {
                    result.push(item);
                }
            }
            Ok(Some(Value::Array(result)))
        }
    }
}

fn is_empty_container(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => false,
    }
}

/// The name CPython's `type(value).__name__` gives the value `json.loads` would produce.
pub(crate) fn python_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(number) if number.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}
