//! Tests for sanitising, canonical JSON and metadata ids.
//!
//! Every expected canonical string and SHA-256 below was produced by CPython 3.11's `json`
//! module (`json.dumps(sanitize_data(doc), sort_keys=True, ensure_ascii=False,
//! separators=(",", ":"))`) and `hashlib.sha256`, with BigBrotr 6.6.9's `sanitize_data`.

use serde_json::{Map, Value, json};

use super::canonical::python_float_repr;
use super::*;

/// (JSON text of a float, CPython `repr`), including 40 random bit patterns and 20 random
/// rounded decimals. `1.5e-300` needs serde_json's `float_roundtrip` parsing; the first block
/// are exact ties between two shortest candidates, where CPython keeps the even last digit.
const FLOAT_VECTORS: &[(&str, &str)] = &[
    ("-1462468587316101.2", "-1462468587316101.2"),
    ("262913229590057.62", "262913229590057.62"),
    ("809491214188220.2", "809491214188220.2"),
    ("1205434237988825.2", "1205434237988825.2"),
    ("0.5", "0.5"),
    ("2.5", "2.5"),
    ("1.0000000000000002e+16", "1.0000000000000002e+16"),
    ("1.152921504606847e+18", "1.152921504606847e+18"),
    ("0.3333333333333333", "0.3333333333333333"),
    ("1.0", "1.0"),
    ("37.751", "37.751"),
    ("1e+16", "1e+16"),
    ("1e-05", "1e-05"),
    ("0.30000000000000004", "0.30000000000000004"),
    ("-0.0", "-0.0"),
    ("0.0", "0.0"),
    ("1.2345678901234568e+17", "1.2345678901234568e+17"),
    ("5e-324", "5e-324"),
    ("1.7976931348623157e+308", "1.7976931348623157e+308"),
    ("-1.7976931348623157e+308", "-1.7976931348623157e+308"),
    ("1000000000000000.0", "1000000000000000.0"),
    ("123456789012345.6", "123456789012345.6"),
    ("1234567890123456.8", "1234567890123456.8"),
    ("0.0001", "0.0001"),
    ("1.234e-05", "1.234e-05"),
    ("1e+22", "1e+22"),
    ("1e+23", "1e+23"),
    ("2.5e-07", "2.5e-07"),
    ("100.0", "100.0"),
    ("1.5", "1.5"),
    ("-2.75", "-2.75"),
    ("9007199254740992.0", "9007199254740992.0"),
    ("3.141592653589793", "3.141592653589793"),
    ("1e-07", "1e-07"),
    ("9999999999999998.0", "9999999999999998.0"),
    ("4.35", "4.35"),
    ("0.3", "0.3"),
    ("0.6666666666666666", "0.6666666666666666"),
    ("1e+100", "1e+100"),
    ("1.5e-300", "1.5e-300"),
    ("2.2250738585072014e-308", "2.2250738585072014e-308"),
    ("12.0", "12.0"),
    ("0.0001", "0.0001"),
    ("0.001", "0.001"),
    ("-1e+16", "-1e+16"),
    ("1e+21", "1e+21"),
    ("5e-05", "5e-05"),
    ("1.9808135516422403e-303", "1.9808135516422403e-303"),
    ("2.580957650739987e-39", "2.580957650739987e-39"),
    ("1.948196791350387e-124", "1.948196791350387e-124"),
    ("-1.358293939758475e-19", "-1.358293939758475e-19"),
    ("3.0948389195717756e+186", "3.0948389195717756e+186"),
    ("-7.18380331092842e+172", "-7.18380331092842e+172"),
    ("2.229568638912478e+72", "2.229568638912478e+72"),
    ("-3.7113819341109233e+236", "-3.7113819341109233e+236"),
    ("5.7071853860695735e-33", "5.7071853860695735e-33"),
    ("-4.7436664636877546e+85", "-4.7436664636877546e+85"),
    ("3.1179717224393453e-34", "3.1179717224393453e-34"),
    ("2.0471613281491574e+111", "2.0471613281491574e+111"),
    ("6.6753221777651315e+62", "6.6753221777651315e+62"),
    ("1.8637470436183496e+22", "1.8637470436183496e+22"),
    ("1.6594687067865043e+130", "1.6594687067865043e+130"),
    ("5.045433305504388e-307", "5.045433305504388e-307"),
    ("-2.0955214511860937e+212", "-2.0955214511860937e+212"),
    ("-1.00433888060364e-105", "-1.00433888060364e-105"),
    ("-3.926501905679146e+293", "-3.926501905679146e+293"),
    ("-1.4755488009408736e-93", "-1.4755488009408736e-93"),
    ("30.535122414715826", "30.535122414715826"),
    ("1.5465228253971388e+159", "1.5465228253971388e+159"),
    ("2.2953213383706634e+84", "2.2953213383706634e+84"),
    ("6.14494300053039e+103", "6.14494300053039e+103"),
    ("-6.491115006885956e-113", "-6.491115006885956e-113"),
    ("-4.5054420091644013e-305", "-4.5054420091644013e-305"),
    ("2.160926930000238e-174", "2.160926930000238e-174"),
    ("-5.036471316655489e+291", "-5.036471316655489e+291"),
    ("-2.2882984659040732e+16", "-2.2882984659040732e+16"),
    ("-6.89353775638028e+167", "-6.89353775638028e+167"),
    ("-2.741840927735317e-168", "-2.741840927735317e-168"),
    ("7.295792473999744e-36", "7.295792473999744e-36"),
    ("-2.015392642179065e+184", "-2.015392642179065e+184"),
    ("-6.219835499110317e+285", "-6.219835499110317e+285"),
    ("1.938622435424555e-176", "1.938622435424555e-176"),
    ("-9.778674344786206e+245", "-9.778674344786206e+245"),
    ("-2.474619107975045e-106", "-2.474619107975045e-106"),
    ("-4.487542714319825e+142", "-4.487542714319825e+142"),
    ("-1.4657897605183383e-185", "-1.4657897605183383e-185"),
    ("-7.745353048868776e+135", "-7.745353048868776e+135"),
    ("204.4012538", "204.4012538"),
    ("369.376508", "369.376508"),
    ("-937.602363", "-937.602363"),
    ("523.8654748", "523.8654748"),
    ("506.190859", "506.190859"),
    ("-695.14929", "-695.14929"),
    ("581.96743019", "581.96743019"),
    ("-990.0", "-990.0"),
    ("-169.684", "-169.684"),
    ("-183.8", "-183.8"),
    ("518.0", "518.0"),
    ("55.0", "55.0"),
    ("-689.97", "-689.97"),
    ("900.40921", "900.40921"),
    ("433.5161259", "433.5161259"),
    ("438.7", "438.7"),
    ("290.741", "290.741"),
    ("118.58", "118.58"),
    ("-843.04455", "-843.04455"),
    ("193.3", "193.3"),
];

/// (input JSON text, canonical JSON after sanitising, SHA-256 hex of the canonical text).
const DOCUMENT_VECTORS: &[(&str, &str, &str)] = &[
    (
        "{}",
        "{}",
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    ),
    (
        "{\"name\": \"My Relay\"}",
        "{\"name\":\"My Relay\"}",
        "5dd492d922960f42939b15a0883453be7592ad9fce36d6ffc12fd12885d2ad48",
    ),
    (
        "{\"b\": 2, \"a\": 1}",
        "{\"a\":1,\"b\":2}",
        "43258cff783fe7036d8a43033f830adfc60ec037382473548ac742b888292777",
    ),
    (
        "{\"a\": 1, \"b\": 2}",
        "{\"a\":1,\"b\":2}",
        "43258cff783fe7036d8a43033f830adfc60ec037382473548ac742b888292777",
    ),
    (
        "{\"z\": 1, \"a\": {\"y\": 2, \"b\": [3, 2, 1]}, \"m\": \"x\"}",
        "{\"a\":{\"b\":[3,2,1],\"y\":2},\"m\":\"x\",\"z\":1}",
        "a2fd4693e32f5795d23989d1c88f2c0f1fdccfc43a8eb7e3c3b75d43a098f761",
    ),
    (
        "{\"a\": {}, \"b\": [], \"c\": null, \"d\": [null, {}, [], 1], \"e\": {\"f\": {\"g\": null}}, \"h\": [[], [[]], [{}]]}",
        "{\"d\":[1]}",
        "0fd4ff4a38ea4349536c0a4897d06b26d1191d6ca29fe2256545ed6fb2eb5100",
    ),
    (
        "{\"t\": true, \"f\": false, \"zero\": 0, \"neg\": -1, \"big\": 9007199254740993, \"i64max\": 9223372036854775807, \"i64min\": -9223372036854775808, \"u64max\": 18446744073709551615}",
        "{\"big\":9007199254740993,\"f\":false,\"i64max\":9223372036854775807,\"i64min\":-9223372036854775808,\"neg\":-1,\"t\":true,\"u64max\":18446744073709551615,\"zero\":0}",
        "8b1624380d98d9da74d22ca72eebc49da34195bd48f439504934cd6c13a3c2a3",
    ),
    (
        "{\"floats\": [1.0, 37.751, 1e+16, 1e-05, 0.30000000000000004, -0.0, 1.2345678901234568e+17, 5e-324]}",
        "{\"floats\":[1.0,37.751,1e+16,1e-05,0.30000000000000004,-0.0,1.2345678901234568e+17,5e-324]}",
        "f39a3de11bc0c5de92e67c09b5b8928e4bc2a619414c909dd3835d35b37c3acc",
    ),
    (
        "{\"emoji\": \"\\ud83d\\ude00\\ud83d\\udc4d\\ud83c\\udffd\", \"cjk\": \"\\u65e5\\u672c\\u8a9e\", \"combining\": \"e\\u0301\", \"ls\": \"a\\u2028b\\u2029c\", \"bom\": \"\\ufeff\"}",
        "{\"bom\":\"\u{feff}\",\"cjk\":\"\u{65e5}\u{672c}\u{8a9e}\",\"combining\":\"e\u{301}\",\"emoji\":\"\u{1f600}\u{1f44d}\u{1f3fd}\",\"ls\":\"a\u{2028}b\u{2029}c\"}",
        "581a563d9486b2baa7baf7519256f3c13fd34637652b7c957cad599b5b326006",
    ),
    (
        "{\"ctrl\": \"\\u0001\\u0002\\u001f\\u007f\\u0080\\u009f\", \"esc\": \"\\\"\\\\/\\b\\f\\n\\r\\t\", \"slash\": \"a/b\"}",
        "{\"ctrl\":\"\\u0001\\u0002\\u001f\u{7f}\u{80}\u{9f}\",\"esc\":\"\\\"\\\\/\\b\\f\\n\\r\\t\",\"slash\":\"a/b\"}",
        "60511050da2a8fae1fb229a9a9fe67454f6c52a5296b238e10c17829669281e6",
    ),
    (
        "{\"\\u00e9\": 1, \"z\": 2, \"Z\": 3, \"a\": 4, \"aa\": 5, \"A\": 6, \"\\u65e5\": 7, \"\\ud83d\\ude00\": 8, \"\\uffff\": 9, \"\\ud800\\udc00\": 10, \"\": 11, \" \": 12}",
        "{\"\":11,\" \":12,\"A\":6,\"Z\":3,\"a\":4,\"aa\":5,\"z\":2,\"\u{e9}\":1,\"\u{65e5}\":7,\"\u{ffff}\":9,\"\u{10000}\":10,\"\u{1f600}\":8}",
        "f98baa6d26c05a90fa2066177b3802d91148ef9993e46e5dc16abe9a088e8aab",
    ),
    (
        "{\"nested\": [{\"b\": 1, \"a\": [{\"d\": null, \"c\": \"x\"}]}]}",
        "{\"nested\":[{\"a\":[{\"c\":\"x\"}],\"b\":1}]}",
        "6b1e4453880e6c776bdafb1080f54f7e780dba4fc9abd796c5d8de40f9149813",
    ),
    (
        "{\"data\": {\"name\": \"relay\", \"supported_nips\": [1, 11, 42], \"limitation\": {\"auth_required\": false, \"max_limit\": 500}}, \"logs\": {\"success\": true}}",
        "{\"data\":{\"limitation\":{\"auth_required\":false,\"max_limit\":500},\"name\":\"relay\",\"supported_nips\":[1,11,42]},\"logs\":{\"success\":true}}",
        "9cb11e6ce8bb12a602a73534d31209f52f9c352aec6be3f024b3289e761d01e7",
    ),
    (
        "{\"data\": {}, \"logs\": {\"success\": false, \"reason\": \"HTTP 404\"}}",
        "{\"logs\":{\"reason\":\"HTTP 404\",\"success\":false}}",
        "7bc4644266ab76b70fa5160642612428df0eddd41b7e731633bd54a7734051db",
    ),
    (
        "{\"data\": {\"rtt_open\": 120, \"rtt_read\": 85}, \"logs\": {\"open_success\": true, \"read_success\": true, \"write_success\": false, \"write_reason\": \"unverified: accepted but not retrievable\"}}",
        "{\"data\":{\"rtt_open\":120,\"rtt_read\":85},\"logs\":{\"open_success\":true,\"read_success\":true,\"write_reason\":\"unverified: accepted but not retrievable\",\"write_success\":false}}",
        "f7d45e338ea53228c473eac0d0972aaec784ca50d99c91773620afd00b6ee930",
    ),
    (
        "{\"data\": {\"geo_lat\": 37.751, \"geo_lon\": -97.822, \"geo_hash\": \"9y3v2zzzz\", \"geo_is_eu\": false}}",
        "{\"data\":{\"geo_hash\":\"9y3v2zzzz\",\"geo_is_eu\":false,\"geo_lat\":37.751,\"geo_lon\":-97.822}}",
        "27cbaf65858ccc035c90ec5fbe45581dd5a72cda8a41dd3245129a2ac17edf70",
    ),
    (
        "{\"list_of_lists\": [[1, [2, [3, []]]], []]}",
        "{\"list_of_lists\":[[1,[2,[3]]]]}",
        "00f943350d21ad9f3b32bfd7dbcc54f3a9f878c962ad1e5e6ad75ae25c53079a",
    ),
    (
        "{\"x\": \"no nul\"}",
        "{\"x\":\"no nul\"}",
        "1e179351e057b4fbe8c3f3fe655e8862cb922ab8f2fd184787b0fc56ed3faa64",
    ),
];

const EMPTY_OBJECT_SHA256: &str =
    "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

#[test]
fn floats_use_python_repr() {
    for (text, expected) in FLOAT_VECTORS {
        let value: f64 = serde_json::from_str(text).unwrap();
        assert_eq!(python_float_repr(value), *expected, "{text}");
        let number = Value::from(value);
        assert_eq!(canonical_json(&number), *expected, "{text}");
    }
}

#[test]
fn non_finite_floats_use_python_spelling() {
    assert_eq!(python_float_repr(f64::NAN), "NaN");
    assert_eq!(python_float_repr(f64::INFINITY), "Infinity");
    assert_eq!(python_float_repr(f64::NEG_INFINITY), "-Infinity");
}

#[test]
fn documents_match_python_canonical_json_and_sha256() {
    for (input, canonical, sha) in DOCUMENT_VECTORS {
        let value: Value = serde_json::from_str(input).unwrap();
        let sanitized = sanitize(&value).unwrap().unwrap();
        assert_eq!(canonical_json(&sanitized), *canonical, "{input}");
        let metadata = Metadata::new(MetadataType::Nip11Info, value).unwrap();
        assert_eq!(metadata.canonical(), *canonical, "{input}");
        assert_eq!(metadata.id_hex(), *sha, "{input}");
        assert_eq!(hex::encode(metadata.id()), *sha);
        assert_eq!(metadata.data(), &sanitized);
    }
}

#[test]
fn control_characters_are_escaped_like_python() {
    // CPython: json.dumps(chr(c), ensure_ascii=False) for c in 0x00..0x20, 0x7f, 0x80, 0x2028.
    let expected = [
        r#""\u0000""#,
        r#""\u0001""#,
        r#""\u0002""#,
        r#""\u0003""#,
        r#""\u0004""#,
        r#""\u0005""#,
        r#""\u0006""#,
        r#""\u0007""#,
        r#""\b""#,
        r#""\t""#,
        r#""\n""#,
        r#""\u000b""#,
        r#""\f""#,
        r#""\r""#,
        r#""\u000e""#,
        r#""\u000f""#,
        r#""\u0010""#,
        r#""\u0011""#,
        r#""\u0012""#,
        r#""\u0013""#,
        r#""\u0014""#,
        r#""\u0015""#,
        r#""\u0016""#,
        r#""\u0017""#,
        r#""\u0018""#,
        r#""\u0019""#,
        r#""\u001a""#,
        r#""\u001b""#,
        r#""\u001c""#,
        r#""\u001d""#,
        r#""\u001e""#,
        r#""\u001f""#,
        "\"\u{7f}\"",
        "\"\u{80}\"",
        "\"\u{2028}\"",
    ];
    let chars = (0u32..0x20)
        .chain([0x7f, 0x80, 0x2028])
        .map(|c| char::from_u32(c).unwrap());
    for (c, expected) in chars.zip(expected) {
        assert_eq!(
            canonical_json(&Value::String(c.to_string())),
            expected,
            "U+{:04X}",
            u32::from(c)
        );
    }
    assert_eq!(canonical_json(&json!("\"\\/")), r#""\"\\/""#);
}

#[test]
fn keys_are_sorted_by_code_point_regardless_of_map_order() {
    let mut map = Map::new();
    for key in ["😀", "\u{ffff}", "日", "é", "z", "a", "Z", "aa", ""] {
        map.insert(key.to_owned(), json!(1));
    }
    assert_eq!(
        canonical_json(&Value::Object(map)),
        "{\"\":1,\"Z\":1,\"a\":1,\"aa\":1,\"z\":1,\"é\":1,\"日\":1,\"\u{ffff}\":1,\"😀\":1}"
    );
}

fn nest(levels: usize, leaf: Value) -> Value {
    (0..levels).fold(leaf, |inner, _| json!({ "a": inner }))
}

fn nest_arrays(levels: usize, leaf: Value) -> Value {
    json!({ "a": (0..levels).fold(leaf, |inner, _| json!([inner])) })
}

#[test]
fn depth_limit_matches_python() {
    // (document, canonical length, SHA-256) from CPython.
    let cases = [
        (
            nest(50, json!("deep")),
            306,
            "e70bd66b9d9992bbb686347f6306069b276b09acd9bd9a0a1205fce3b58d29fd",
        ),
        (nest(51, json!("deep")), 2, EMPTY_OBJECT_SHA256),
        (nest(52, json!("deep")), 2, EMPTY_OBJECT_SHA256),
        (
            json!({"keep": 1, "deep": nest(60, json!(1))}),
            10,
            "6675aa53127d6ad68fb4f47a8eeced07aebe9552f14b8d4795ca44de47eb56cd",
        ),
        (
            nest(49, json!([1])),
            297,
            "c3026a9b0599d5b4e95f20ca21f772e25a6619cd054a01888f0a21a5bff30555",
        ),
        (nest(50, json!([1])), 2, EMPTY_OBJECT_SHA256),
        (nest(50, json!({"x": 1})), 2, EMPTY_OBJECT_SHA256),
        (
            nest_arrays(49, json!(1)),
            105,
            "b81617853e2e253db29c3ac16cb4c97d44a5bb61de91b838f73475328729979c",
        ),
        (nest_arrays(50, json!(1)), 2, EMPTY_OBJECT_SHA256),
    ];
    for (index, (document, length, sha)) in cases.into_iter().enumerate() {
        let metadata = Metadata::new(MetadataType::Nip66Geo, document).unwrap();
        assert_eq!(metadata.canonical().len(), length, "case {index}");
        assert_eq!(metadata.id_hex(), sha, "case {index}");
    }
}

#[test]
fn null_bytes_are_rejected_unless_beyond_the_depth_limit() {
    let nul = "x\0y";
    assert_eq!(
        sanitize(&json!({"a": nul})),
        Err(MetadataError::NullByte("data"))
    );
    assert_eq!(
        sanitize(&json!({"a": [{"b": nul}]})),
        Err(MetadataError::NullByte("data"))
    );
    assert_eq!(
        sanitize(&json!({"a\u{0}": 1})),
        Err(MetadataError::NullByteInKey("data"))
    );
    assert_eq!(sanitize(&json!(nul)), Err(MetadataError::NullByte("data")));
    assert_eq!(
        MetadataError::NullByte("data").to_string(),
        "data contains null bytes"
    );
    assert_eq!(
        MetadataError::NullByteInKey("data").to_string(),
        "data key contains null bytes"
    );
    // CPython returns None before looking at a value nested deeper than 50 levels.
    assert_eq!(sanitize(&nest(51, json!(nul))), Ok(Some(json!({}))));
    assert_eq!(
        sanitize(&nest(50, json!(nul))),
        Err(MetadataError::NullByte("data"))
    );
}

#[test]
fn sanitize_scalars_and_empties() {
    assert_eq!(sanitize(&Value::Null), Ok(None));
    assert_eq!(sanitize(&json!(true)), Ok(Some(json!(true))));
    assert_eq!(sanitize(&json!(1.5)), Ok(Some(json!(1.5))));
    assert_eq!(sanitize(&json!("")), Ok(Some(json!(""))));
    assert_eq!(sanitize(&json!([])), Ok(Some(json!([]))));
    assert_eq!(
        sanitize(&json!([null, [], {}, [null]])),
        Ok(Some(json!([])))
    );
    assert_eq!(
        sanitize(&json!({"a": "", "b": 0, "c": false})),
        Ok(Some(json!({"a": "", "b": 0, "c": false})))
    );
    // serde_json cannot hold NaN: json!(NAN) is already null, and is then dropped.
    assert_eq!(
        sanitize(&json!({"nan": f64::NAN, "x": 1})),
        Ok(Some(json!({"x": 1})))
    );
}

#[test]
fn metadata_requires_an_object() {
    let cases = [
        (json!([1]), "list"),
        (json!("x"), "str"),
        (json!(1), "int"),
        (json!(1.5), "float"),
        (json!(true), "bool"),
        (Value::Null, "NoneType"),
    ];
    for (value, found) in cases {
        let err = Metadata::new(MetadataType::Nip66Rtt, value).unwrap_err();
        assert_eq!(
            err,
            MetadataError::NotAnObject {
                field: "data",
                found
            }
        );
        assert_eq!(
            err.to_string(),
            format!("data must be a Mapping, got {found}")
        );
    }
}

#[test]
fn integers_beyond_64_bits_become_floats() {
    // CPython writes 123456789012345678901234567890 in full; serde_json without
    // `arbitrary_precision` parses it as an f64, so the canonical text differs (documented).
    let value: Value = serde_json::from_str(r#"{"n": 123456789012345678901234567890}"#).unwrap();
    assert_eq!(canonical_json(&value), r#"{"n":1.2345678901234568e+29}"#);
    // And JSON `-0` is parsed as the float -0.0 (CPython: the integer 0).
    let value: Value = serde_json::from_str("-0").unwrap();
    assert_eq!(canonical_json(&value), "-0.0");
}

#[test]
fn envelope_hashes_the_sanitised_envelope() {
    let failed = Metadata::envelope(
        MetadataType::Nip11Info,
        json!({}),
        json!({"success": false, "reason": "HTTP 404"}),
    )
    .unwrap();
    assert_eq!(
        failed.canonical(),
        r#"{"logs":{"reason":"HTTP 404","success":false}}"#
    );
    assert_eq!(
        failed.id_hex(),
        "7bc4644266ab76b70fa5160642612428df0eddd41b7e731633bd54a7734051db"
    );
    assert_eq!(failed.metadata_type(), MetadataType::Nip11Info);

    let data = json!({"name": "relay", "supported_nips": [1, 11, 42], "limitation": {"auth_required": false, "max_limit": 500}});
    let logs = json!({"success": true});
    let ok = Metadata::envelope(MetadataType::Nip11Info, data.clone(), logs.clone()).unwrap();
    let direct =
        Metadata::new(MetadataType::Nip11Info, json!({"data": data, "logs": logs})).unwrap();
    assert_eq!(ok, direct);
    assert!(ok.canonical().starts_with(r#"{"data":{"limitation":"#));

    let nothing = Metadata::envelope(MetadataType::Nip66Dns, Value::Null, json!({})).unwrap();
    assert_eq!(nothing.canonical(), "{}");
    assert_eq!(nothing.id_hex(), EMPTY_OBJECT_SHA256);
}

#[test]
fn same_document_same_id_across_types() {
    let a = Metadata::new(MetadataType::Nip66Ssl, json!({"b": 2, "a": 1})).unwrap();
    let b = Metadata::new(MetadataType::Nip66Net, json!({"a": 1, "b": 2})).unwrap();
    assert_eq!(a.id(), b.id());
    assert_ne!(a, b);
}

#[test]
fn metadata_type_names_round_trip() {
    let names = [
        "nip11_info",
        "nip66_rtt",
        "nip66_ssl",
        "nip66_geo",
        "nip66_net",
        "nip66_dns",
        "nip66_http",
    ];
    for (kind, name) in MetadataType::ALL.into_iter().zip(names) {
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.to_string(), name);
        assert_eq!(name.parse::<MetadataType>(), Ok(kind));
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(name));
        assert_eq!(
            serde_json::from_value::<MetadataType>(json!(name)).unwrap(),
            kind
        );
    }
    assert_eq!(
        "nip66".parse::<MetadataType>(),
        Err(MetadataError::UnknownType("nip66".into()))
    );
}
