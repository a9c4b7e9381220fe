//! Shared test data: signed events, relays, metadata.

use bigbrotr_models::event::Event;
use bigbrotr_models::relay::Relay;
use nostr::{EventBuilder, Keys, Kind, Tag, Timestamp};

/// A relay with a canonical URL.
pub(crate) fn relay(url: &str, discovered_at: i64) -> Relay {
    Relay::new(url, discovered_at).expect("canonical relay URL")
}

/// A signed, verified event of `kind` at `created_at` with `tags`.
pub(crate) fn event(
    keys: &Keys,
    kind: u16,
    created_at: u64,
    content: &str,
    tags: Vec<Vec<&str>>,
) -> Event {
    let tags: Vec<Tag> = tags
        .into_iter()
        .map(|t| Tag::parse(t).expect("valid tag"))
        .collect();
    let signed = EventBuilder::new(Kind::from(kind), content)
        .tags(tags)
        .custom_created_at(Timestamp::from(created_at))
        .sign_with_keys(keys)
        .expect("sign");
    Event::from_nostr(&signed).expect("valid event")
}
