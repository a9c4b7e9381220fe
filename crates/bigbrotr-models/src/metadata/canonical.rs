//! Canonical JSON: byte-identical to CPython's
//! `json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`.

use serde_json::{Map, Number, Value};

/// Serialises `value` exactly as BigBrotr 6.6.9 does before hashing metadata.
///
/// - Object keys are sorted by Unicode code point (independent of serde_json's map order).
/// - No whitespace; non-ASCII text is written raw (UTF-8).
/// - Strings escape `"`, `\`, `\n`, `\r`, `\t`, `\b`, `\f`, and other characters below U+0020 as
///   lower-case `\u00XX`; U+007F and everything above are written raw, as Python does.
/// - Integers are written in full. serde_json (without `arbitrary_precision`) holds integers
///   only in the `i64`/`u64` range; larger integers in parsed JSON text arrive as `f64` and are
///   then written as floats (`1e+20`), where Python would write every digit. Likewise `-0` in
///   JSON text is parsed by serde_json as the float `-0.0`, which is written `-0.0`.
/// - Floats use Python's `repr`: the shortest round-tripping digits, positional notation for
///   decimal exponents from -4 to 15 (always with a fractional part, `1.0`), scientific notation
///   otherwise with a signed exponent of at least two digits (`1e+16`, `1e-05`).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    // Rust string order is byte order, which for UTF-8 equals code point order (Python's).
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (index, (key, item)) in entries.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, item);
    }
    out.push('}');
}

fn write_number(out: &mut String, number: &Number) {
    if let Some(int) = number.as_i64() {
        out.push_str(&int.to_string());
    } else if let Some(uint) = number.as_u64() {
        out.push_str(&uint.to_string());
    } else if let Some(float) = number.as_f64() {
        out.push_str(&python_float_repr(float));
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// CPython's `float.__repr__` (`format_float_short` with mode `'r'`).
pub(crate) fn python_float_repr(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_owned();
    }
    let scientific = shortest_scientific(value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let digit_count = i32::try_from(digits.len()).unwrap_or(i32::MAX);

    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if (-4..16).contains(&exponent) {
        // Position of the decimal point relative to the first digit.
        let point = exponent + 1;
        if point <= 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat(usize::try_from(-point).unwrap_or(0)));
            out.push_str(&digits);
        } else if point >= digit_count {
            out.push_str(&digits);
            out.push_str(&"0".repeat(usize::try_from(point - digit_count).unwrap_or(0)));
            out.push_str(".0");
        } else {
            let split = usize::try_from(point).unwrap_or(0);
            out.push_str(&digits[..split]);
            out.push('.');
            out.push_str(&digits[split..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exponent.unsigned_abs()));
    }
    out
}

/// The shortest round-tripping digits in `d.ddde±x` form, choosing among equally short
/// candidates the one closest to the exact binary value and, on an exact tie, the one with an
/// even last digit (what CPython's `dtoa` mode 0 does).
///
/// Rust's `{:e}` finds the shortest length but may round an exact tie upwards
/// (`1462468587316101.25` prints as `...101.3`, CPython prints `...101.2`), so the digits are
/// recomputed with exact, ties-to-even formatting at that length and kept when they round-trip.
fn shortest_scientific(value: f64) -> String {
    let shortest = format!("{value:e}");
    let digit_count = shortest
        .split('e')
        .next()
        .unwrap_or_default()
        .bytes()
        .filter(u8::is_ascii_digit)
        .count();
    let nearest = format!(
        "{value:.precision$e}",
        precision = digit_count.saturating_sub(1)
    );
    if nearest.parse::<f64>().is_ok_and(|parsed| parsed == value) {
        nearest
    } else {
        shortest
    }
}
