//! Tests for event verification, storage checks and derived columns.

use nostr::{EventBuilder, JsonUtil, Keys, Kind, Tag, TagKind};
use serde_json::json;

use super::*;

fn signed(content: &str, tags: Vec<Tag>) -> nostr::Event {
    EventBuilder::new(Kind::TextNote, content)
        .tags(tags)
        .sign_with_keys(&Keys::generate())
        .unwrap()
}

fn custom_tag(key: &str, values: &[&str]) -> Tag {
    Tag::custom(TagKind::from(key), values.iter().copied())
}

/// Re-serialises an event after editing its JSON, keeping id and sig as they were.
fn tampered(event: &nostr::Event, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&event.as_json()).unwrap();
    edit(&mut value);
    value.to_string()
}

#[test]
fn from_nostr_copies_every_field() {
    let keys = Keys::generate();
    let nostr_event = EventBuilder::new(Kind::Custom(30_166), "héllo 🌍")
        .tags([
            custom_tag("d", &["wss://relay.damus.io"]),
            custom_tag("n", &["clearnet"]),
        ])
        .custom_created_at(nostr::Timestamp::from(1_700_000_000))
        .sign_with_keys(&keys)
        .unwrap();
    let event = Event::from_nostr(&nostr_event).unwrap();
    assert_eq!(event.id(), nostr_event.id.as_bytes());
    assert_eq!(event.id_hex(), nostr_event.id.to_hex());
    assert_eq!(event.pubkey(), &keys.public_key().to_bytes());
    assert_eq!(event.pubkey_hex(), keys.public_key().to_hex());
    assert_eq!(event.created_at(), 1_700_000_000);
    assert_eq!(event.kind(), 30_166);
    assert_eq!(event.content(), "héllo 🌍");
    assert_eq!(event.sig(), &nostr_event.sig.serialize());
    assert_eq!(event.sig_hex(), hex::encode(nostr_event.sig.serialize()));
    assert_eq!(
        event.tags(),
        [
            vec!["d".to_owned(), "wss://relay.damus.io".to_owned()],
            vec!["n".to_owned(), "clearnet".to_owned()]
        ]
    );
    assert_eq!(
        event.tags_json(),
        json!([["d", "wss://relay.damus.io"], ["n", "clearnet"]])
    );
}

#[test]
fn from_json_round_trips_a_signed_event() {
    let nostr_event = signed("gm", vec![custom_tag("t", &["nostr"])]);
    let event = Event::from_json(&nostr_event.as_json()).unwrap();
    assert_eq!(event, Event::from_nostr(&nostr_event).unwrap());
}

#[test]
fn from_json_rejects_malformed_json() {
    assert!(matches!(Event::from_json("{}"), Err(EventError::Json(_))));
    assert!(matches!(
        Event::from_json("not json"),
        Err(EventError::Json(_))
    ));
}

#[test]
fn tampered_content_fails_the_id_check() {
    let nostr_event = signed("original", vec![]);
    let json = tampered(&nostr_event, |v| v["content"] = json!("tampered"));
    let prefix = nostr_event.id.to_hex()[..16].to_owned();
    assert_eq!(
        Event::from_json(&json),
        Err(EventError::InvalidId(prefix.clone()))
    );
    assert_eq!(
        Event::from_json(&json).unwrap_err().to_string(),
        format!("Event {prefix}... has an invalid id")
    );
}

#[test]
fn tampered_signature_fails_the_signature_check() {
    let nostr_event = signed("original", vec![]);
    let mut sig = nostr_event.sig.serialize();
    sig[0] ^= 0x01;
    let json = tampered(&nostr_event, |v| v["sig"] = json!(hex::encode(sig)));
    let prefix = nostr_event.id.to_hex()[..16].to_owned();
    assert_eq!(
        Event::from_json(&json),
        Err(EventError::InvalidSignature(prefix))
    );
}

#[test]
fn signature_from_another_event_is_rejected() {
    let first = signed("one", vec![]);
    let second = signed("two", vec![]);
    let json = tampered(&first, |v| {
        v["sig"] = json!(hex::encode(second.sig.serialize()))
    });
    assert!(matches!(
        Event::from_json(&json),
        Err(EventError::InvalidSignature(_))
    ));
}

#[test]
fn nul_in_content_is_rejected() {
    let nostr_event = signed("a\0b", vec![]);
    let prefix = nostr_event.id.to_hex()[..16].to_owned();
    let err = Event::from_nostr(&nostr_event).unwrap_err();
    assert_eq!(err, EventError::NullByteInContent(prefix.clone()));
    assert_eq!(
        err.to_string(),
        format!("Event {prefix}... content contains null bytes")
    );
}

#[test]
fn nul_in_any_tag_element_is_rejected() {
    for tag in [
        custom_tag("t", &["a\0b"]),
        custom_tag("t\0", &["x"]),
        custom_tag("r", &["wss://x", "re\0ad"]),
    ] {
        let nostr_event = signed("ok", vec![tag]);
        let prefix = nostr_event.id.to_hex()[..16].to_owned();
        assert_eq!(
            Event::from_nostr(&nostr_event),
            Err(EventError::NullByteInTags(prefix))
        );
    }
}

#[test]
fn tag_values_are_limited_to_2048_characters() {
    // Characters, not bytes: 2048 two-byte characters are accepted.
    let at_limit = "é".repeat(MAX_TAG_VALUE_LENGTH);
    assert!(Event::from_nostr(&signed("ok", vec![custom_tag("t", &[&at_limit])])).is_ok());

    let too_long = "a".repeat(MAX_TAG_VALUE_LENGTH + 1);
    for tag in [
        custom_tag("t", &[&too_long]),
        custom_tag(&too_long, &["x"]),
        custom_tag("r", &["x", &too_long]),
    ] {
        let nostr_event = signed("ok", vec![tag]);
        let id_prefix = nostr_event.id.to_hex()[..16].to_owned();
        let err = Event::from_nostr(&nostr_event).unwrap_err();
        assert_eq!(
            err,
            EventError::TagValueTooLong {
                id_prefix: id_prefix.clone(),
                length: 2049
            }
        );
        assert_eq!(
            err.to_string(),
            format!("Event {id_prefix}... tag value exceeds 2048 chars (2049)")
        );
    }
}

#[test]
fn content_checks_run_before_tag_checks() {
    let nostr_event = signed("a\0", vec![custom_tag("t", &[&"a".repeat(3000)])]);
    assert!(matches!(
        Event::from_nostr(&nostr_event),
        Err(EventError::NullByteInContent(_))
    ));
}

#[test]
fn tagvalues_follow_tags_to_tagvalues() {
    let nostr_event = signed(
        "ok",
        vec![
            custom_tag("e", &["abc"]),
            custom_tag("p", &["def", "wss://hint", "marker"]),
            custom_tag("relay", &["wss://x"]),
            custom_tag("e", &["abc"]),
            custom_tag("t", &[]),
            custom_tag("é", &["accent"]),
            custom_tag("r", &[""]),
            custom_tag("alt", &[]),
        ],
    );
    let event = Event::from_nostr(&nostr_event).unwrap();
    assert_eq!(
        event.tagvalues(),
        [
            Some("e:abc".to_owned()),
            Some("p:def".to_owned()),
            Some("e:abc".to_owned()),
            None,
            Some("é:accent".to_owned()),
            Some("r:".to_owned()),
        ]
    );
    assert!(
        Event::from_nostr(&signed("no tags", vec![]))
            .unwrap()
            .tagvalues()
            .is_empty()
    );
}
