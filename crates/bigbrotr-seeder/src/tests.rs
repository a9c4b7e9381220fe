//! Tests of seed-file parsing (the database side is tested end to end in tests/it).

use super::*;

#[test]
fn blank_and_comment_lines_are_skipped_and_invalid_lines_are_numbered() {
    let contents = b"# header\n\nwss://relay.damus.io\n  # indented comment\nnot a url\nws://127.0.0.1:7777\nwss://nos.lol/\n";
    let parsed = parse_seed(contents, 1000);
    let urls: Vec<&str> = parsed.relays.iter().map(|r| r.url()).collect();
    assert_eq!(urls, vec!["wss://relay.damus.io", "wss://nos.lol"]);
    assert_eq!(parsed.candidates, 4);
    let lines: Vec<usize> = parsed.invalid.iter().map(|i| i.line).collect();
    assert_eq!(lines, vec![5, 6]);
    assert!(
        parsed.invalid[1].reason.contains("Local"),
        "{:?}",
        parsed.invalid[1]
    );
    assert!(parsed.relays.iter().all(|r| r.discovered_at() == 1000));
}

#[test]
fn duplicates_after_canonicalisation_are_counted_once() {
    let contents =
        b"wss://Relay.Example.com\nwss://relay.example.com:443/\nws://relay.example.com\n";
    let parsed = parse_seed(contents, 0);
    assert_eq!(parsed.relays.len(), 1);
    assert_eq!(parsed.relays[0].url(), "wss://relay.example.com");
    assert_eq!(parsed.duplicates, 2);
}

#[test]
fn non_utf8_lines_and_crlf_endings() {
    let mut contents = b"wss://relay.damus.io\r\n".to_vec();
    contents.extend_from_slice(b"wss://\xff\xfe.example\n");
    contents.extend_from_slice(b"wss://nos.lol");
    let parsed = parse_seed(&contents, 0);
    assert_eq!(parsed.relays.len(), 2);
    assert_eq!(parsed.invalid.len(), 1);
    assert_eq!(parsed.invalid[0].line, 2);
    assert_eq!(parsed.invalid[0].reason, "not valid UTF-8");
}

#[test]
fn overlay_urls_get_the_ws_scheme() {
    let onion = format!("wss://{}.onion", "a".repeat(56));
    let parsed = parse_seed(onion.as_bytes(), 0);
    assert_eq!(
        parsed.relays[0].url(),
        format!("ws://{}.onion", "a".repeat(56))
    );
}

#[test]
fn config_defaults_are_the_originals() {
    let config = SeederConfig::default();
    assert_eq!(
        config.seed.file_path,
        PathBuf::from("static/seed_relays.txt")
    );
    assert!(config.seed.to_validate);
    config.validate().unwrap();
}
