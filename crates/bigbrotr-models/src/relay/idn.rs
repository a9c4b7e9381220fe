//! Internationalised host names: the 6.6.9 pre-processing step that turns non-ASCII host labels
//! into punycode before RFC 3986 parsing.
//!
//! CPython's `"idna"` codec implements IDNA 2003 (nameprep on Unicode 3.2, then punycode). This
//! module reproduces it with UTS #46 (the `idna` crate) after applying the four IDNA 2003
//! mappings that UTS #46 non-transitional processing does not perform (`ß`→`ss`, `ς`→`σ`, and
//! removal of ZWJ/ZWNJ). Names that differ between Unicode 3.2 and current Unicode, or that
//! only one standard rejects (e.g. a label starting with a combining mark), can still differ.

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use super::RelayUrlError;

/// Characters the CPython codec treats as label separators besides `.`.
const EXTRA_DOTS: [char; 3] = ['\u{3002}', '\u{FF0E}', '\u{FF61}'];

/// Converts the non-ASCII labels of the host of `raw` (the text between `://` and the first of
/// `/`, `:`, `?` or `#`) to punycode, leaving everything else untouched.
pub(crate) fn encode_idn_host(raw: &str) -> Result<String, RelayUrlError> {
    if raw.is_ascii() {
        return Ok(raw.to_owned());
    }
    let Some(scheme_end) = raw.find("://") else {
        return Ok(raw.to_owned());
    };
    let (prefix, after) = raw.split_at(scheme_end + 3);
    let host_end = after.find(['/', ':', '?', '#']).unwrap_or(after.len());
    let (host, rest) = after.split_at(host_end);
    if host.is_ascii() {
        return Ok(raw.to_owned());
    }
    let mut converted = Vec::new();
    for label in host.split('.') {
        if label.is_ascii() {
            converted.push(label.to_owned());
        } else {
            let encoded = encode_label(label)
                .ok_or_else(|| RelayUrlError::InvalidIdn(host.chars().take(50).collect()))?;
            converted.push(encoded);
        }
    }
    Ok(format!("{prefix}{}{rest}", converted.join(".")))
}

/// `label.encode("idna")`: the codec splits on the IDNA dots itself, encodes each part with
/// ToASCII and keeps one trailing dot.
fn encode_label(label: &str) -> Option<String> {
    let mut parts: Vec<&str> = label.split(EXTRA_DOTS).collect();
    let trailing_dot = parts.len() > 1 && parts.last().is_some_and(|last| last.is_empty());
    if trailing_dot {
        parts.pop();
    }
    let mut encoded: Vec<String> = Vec::with_capacity(parts.len());
    for part in parts {
        encoded.push(to_ascii(part)?);
    }
    let mut result = encoded.join(".");
    if trailing_dot {
        result.push('.');
    }
    Some(result)
}

/// RFC 3490 ToASCII with `UseSTD3ASCIIRules=false`: the result must be 1 to 63 bytes long and a
/// non-ASCII label must not already start with the ACE prefix.
fn to_ascii(label: &str) -> Option<String> {
    if label.is_ascii() {
        return (1..64).contains(&label.len()).then(|| label.to_owned());
    }
    let mapped: String = label
        .chars()
        .filter(|c| !matches!(c, '\u{200C}' | '\u{200D}'))
        .flat_map(|c| match c {
            'ß' => ['s', 's'].into_iter().take(2),
            'ς' => ['σ', 'σ'].into_iter().take(1),
            other => [other, other].into_iter().take(1),
        })
        .collect();
    if mapped.to_lowercase().starts_with("xn--") && !mapped.is_ascii() {
        return None;
    }
    let ascii = Uts46::new()
        .to_ascii(
            mapped.as_bytes(),
            AsciiDenyList::EMPTY,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .ok()?;
    // The mapping may have produced dots (e.g. U+2488 "1."); the codec checks the whole result.
    (1..64).contains(&ascii.len()).then(|| ascii.into_owned())
}
