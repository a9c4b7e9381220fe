//! NIP-90 jobs: reading a request (its `param` and `bid` tags, in clear or NIP-04-encrypted in
//! the content with an `encrypted` tag) and building the answers: the result (`kind + 1000`,
//! with the request event itself in its `request` tag, `e`, `p`, the request's `i` tags and
//! `amount` when priced) and kind 7000 feedback (`status`, `e`, `p`, `amount`).

use std::collections::BTreeMap;

use nostr::nips::nip04;
use nostr::{Event, EventBuilder, JsonUtil, Keys, Kind, Tag};

/// The most tags one request may carry (clear or decrypted).
pub const MAX_REQUEST_TAGS: usize = 256;

/// The longest encrypted content accepted, in bytes.
pub const MAX_ENCRYPTED_BYTES: usize = 64 * 1024;

/// A request addressed to us, read.
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// The request event, as received.
    pub event: Event,
    /// `param` tags, the last of each name winning (as the original).
    pub params: BTreeMap<String, String>,
    /// The `bid` in millisats (an unreadable bid counts as none).
    pub bid: Option<u64>,
    /// Whether the params came encrypted (the result is then encrypted back).
    pub encrypted: bool,
    /// The request's `i` tags (echoed in a clear result, as NIP-90 asks).
    pub inputs: Vec<Tag>,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Reading {
    /// Answer it.
    Job(Box<JobRequest>),
    /// Not for us: `p`-tagged to another provider only, or an encrypted request not addressed
    /// to us. No answer.
    NotForUs,
    /// For us but unreadable: answer with an error feedback saying why.
    Invalid(String),
}

fn tag_values(tag: &Tag) -> &[String] {
    tag.as_slice()
}

/// Reads `event` as a job for `keys`' pubkey.
pub fn read_request(event: &Event, keys: &Keys) -> Reading {
    let ours = keys.public_key();
    let providers: Vec<&str> = event
        .tags
        .iter()
        .map(tag_values)
        .filter(|t| t.first().is_some_and(|k| k == "p"))
        .filter_map(|t| t.get(1).map(String::as_str))
        .collect();
    let for_us = providers.iter().any(|p| *p == ours.to_hex());
    if !providers.is_empty() && !for_us {
        return Reading::NotForUs;
    }
    let encrypted = event
        .tags
        .iter()
        .any(|t| tag_values(t).first().is_some_and(|k| k == "encrypted"));
    if event.tags.len() > MAX_REQUEST_TAGS {
        return Reading::Invalid(format!("too many tags (at most {MAX_REQUEST_TAGS})"));
    }
    let tags: Vec<Vec<String>> = if encrypted {
        if !for_us {
            return Reading::NotForUs;
        }
        if event.content.len() > MAX_ENCRYPTED_BYTES {
            return Reading::Invalid("encrypted content too large".into());
        }
        let Ok(plain) = nip04::decrypt(keys.secret_key(), &event.pubkey, &event.content) else {
            return Reading::Invalid("could not decrypt the request (NIP-04)".into());
        };
        match serde_json::from_str::<Vec<Vec<String>>>(&plain) {
            Ok(tags) if tags.len() <= MAX_REQUEST_TAGS => tags,
            Ok(_) => {
                return Reading::Invalid(format!(
                    "too many encrypted tags (at most {MAX_REQUEST_TAGS})"
                ));
            }
            Err(_) => {
                return Reading::Invalid(
                    "the decrypted content is not a JSON array of tags".into(),
                );
            }
        }
    } else {
        event.tags.iter().map(|t| tag_values(t).to_vec()).collect()
    };
    let mut params = BTreeMap::new();
    let mut bid = None;
    let mut inputs = Vec::new();
    for tag in &tags {
        match tag.first().map(String::as_str) {
            Some("param") if tag.len() >= 3 => {
                params.insert(tag[1].clone(), tag[2].clone());
            }
            Some("bid") => bid = tag.get(1).and_then(|b| b.trim().parse::<u64>().ok()),
            Some("i") if !encrypted => {
                if let Ok(tag) = Tag::parse(tag.clone()) {
                    inputs.push(tag);
                }
            }
            _ => {}
        }
    }
    Reading::Job(Box::new(JobRequest {
        event: event.clone(),
        params,
        bid,
        encrypted,
        inputs,
    }))
}

/// The query parameters of a job for the catalog: `limit`, `offset`, `sort`, `cursor` as
/// given, and the `filter` param (`col=value,col2=OP:value`: split on commas, then on the first
/// `=`, both sides trimmed, as the original) as one pair per condition. A filter part without
/// `=` is an error.
pub fn catalog_params(params: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for key in ["limit", "offset", "sort", "cursor"] {
        if let Some(value) = params.get(key) {
            pairs.push((key.to_owned(), value.clone()));
        }
    }
    if let Some(filter) = params.get("filter") {
        for part in filter.split(',').filter(|p| !p.trim().is_empty()) {
            let Some((column, value)) = part.split_once('=') else {
                return Err(format!(
                    "Invalid filter: {:?} is not column=value",
                    part.chars().take(64).collect::<String>()
                ));
            };
            let column = column.trim();
            if ["limit", "offset", "sort", "cursor"].contains(&column) {
                return Err(format!("Invalid filter: {column} is not a column"));
            }
            pairs.push((column.to_owned(), value.trim().to_owned()));
        }
    }
    Ok(pairs)
}

/// NIP-90 feedback statuses used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The query costs more than the bid.
    PaymentRequired,
    /// The job failed or was refused.
    Error,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::PaymentRequired => "payment-required",
            Self::Error => "error",
        }
    }
}

/// A kind 7000 feedback to `request`: `["status", status, message]`, `["e", id]`,
/// `["p", customer]` and, when given, `["amount", millisats]`.
pub fn feedback(
    keys: &Keys,
    request: &Event,
    status: Status,
    message: &str,
    amount: Option<u64>,
) -> Result<Event, nostr::event::builder::Error> {
    let mut tags = vec![
        tag(&["status", status.as_str(), message]),
        tag(&["e", &request.id.to_hex()]),
        tag(&["p", &request.pubkey.to_hex()]),
    ];
    if let Some(amount) = amount {
        tags.push(tag(&["amount", &amount.to_string()]));
    }
    EventBuilder::new(Kind::JobFeedback, "")
        .tags(tags)
        .sign_with_keys(keys)
}

/// The result of `job`: kind `result_kind`, content `content` (encrypted to the requester when
/// the request was), tags `request` (the request event's JSON), `e`, `p`, the request's `i`
/// tags (clear requests), `amount` when priced, `encrypted` when encrypted.
pub fn result(
    keys: &Keys,
    job: &JobRequest,
    result_kind: u16,
    content: &str,
    amount: Option<u64>,
) -> Result<Event, String> {
    let request = &job.event;
    let mut tags = vec![
        tag(&["request", &request.as_json()]),
        tag(&["e", &request.id.to_hex()]),
        tag(&["p", &request.pubkey.to_hex()]),
    ];
    tags.extend(job.inputs.iter().cloned());
    if let Some(amount) = amount {
        tags.push(tag(&["amount", &amount.to_string()]));
    }
    let content = if job.encrypted {
        tags.push(tag(&["encrypted"]));
        nip04::encrypt(keys.secret_key(), &request.pubkey, content).map_err(|e| e.to_string())?
    } else {
        content.to_owned()
    };
    EventBuilder::new(Kind::from(result_kind), content)
        .tags(tags)
        .sign_with_keys(keys)
        .map_err(|e| e.to_string())
}

/// The NIP-89 handler announcement (kind 31990): `d`, one `k` for the request kind, content
/// `{"name","about","tables":[exposed, sorted]}`.
pub fn announcement(
    keys: &Keys,
    d_tag: &str,
    request_kind: u16,
    name: &str,
    about: &str,
    tables: &[String],
) -> Result<Event, nostr::event::builder::Error> {
    let content = serde_json::json!({"name": name, "about": about, "tables": tables}).to_string();
    EventBuilder::new(Kind::Custom(31990), content)
        .tags([tag(&["d", d_tag]), tag(&["k", &request_kind.to_string()])])
        .sign_with_keys(keys)
}

fn tag(values: &[&str]) -> Tag {
    // A non-empty list of strings is always a valid tag.
    Tag::parse(values.iter().map(|v| (*v).to_owned())).unwrap_or_else(|_| Tag::hashtag("x"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(keys: &Keys, tags: Vec<Vec<&str>>, content: &str) -> Event {
        let tags: Vec<Tag> = tags
            .into_iter()
            .map(|t| Tag::parse(t.into_iter().map(str::to_owned)).unwrap())
            .collect();
        EventBuilder::new(Kind::from(5050), content)
            .tags(tags)
            .sign_with_keys(keys)
            .unwrap()
    }

    #[test]
    fn params_last_wins_and_filters_split_like_the_original() {
        let dvm = Keys::generate();
        let customer = Keys::generate();
        let event = request(
            &customer,
            vec![
                vec!["param", "table", "event"],
                vec!["param", "table", "relay"],
                vec!["param", "limit", "5"],
                vec![
                    "param",
                    "filter",
                    " network = clearnet ,discovered_at=>=:1700000000",
                ],
                vec!["bid", "2000"],
                vec!["i", "x", "text"],
            ],
            "",
        );
        let Reading::Job(job) = read_request(&event, &dvm) else {
            panic!("a job");
        };
        assert_eq!(job.params["table"], "relay");
        assert_eq!(job.bid, Some(2000));
        assert_eq!(job.inputs.len(), 1);
        let pairs = catalog_params(&job.params).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("limit".to_owned(), "5".to_owned()),
                ("network".to_owned(), "clearnet".to_owned()),
                ("discovered_at".to_owned(), ">=:1700000000".to_owned()),
            ]
        );
        let mut bad = job.params.clone();
        bad.insert("filter".into(), "nonsense".into());
        assert!(catalog_params(&bad).is_err());
        bad.insert("filter".into(), "limit=5".into());
        assert!(catalog_params(&bad).is_err());
    }

    #[test]
    fn requests_for_another_provider_are_not_ours() {
        let dvm = Keys::generate();
        let other = Keys::generate();
        let customer = Keys::generate();
        let event = request(&customer, vec![vec!["p", &other.public_key().to_hex()]], "");
        assert!(matches!(read_request(&event, &dvm), Reading::NotForUs));
        let event = request(
            &customer,
            vec![
                vec!["p", &other.public_key().to_hex()],
                vec!["p", &dvm.public_key().to_hex()],
            ],
            "",
        );
        assert!(matches!(read_request(&event, &dvm), Reading::Job(_)));
    }

    #[test]
    fn encrypted_requests_are_read_and_answered_encrypted() {
        let dvm = Keys::generate();
        let customer = Keys::generate();
        let params = r#"[["param","table","relay"],["param","limit","2"]]"#;
        let content = nip04::encrypt(customer.secret_key(), &dvm.public_key(), params).unwrap();
        let event = request(
            &customer,
            vec![vec!["p", &dvm.public_key().to_hex()], vec!["encrypted"]],
            &content,
        );
        let Reading::Job(job) = read_request(&event, &dvm) else {
            panic!("a job");
        };
        assert!(job.encrypted);
        assert_eq!(job.params["limit"], "2");
        let answer = result(&dvm, &job, 6050, r#"{"data":[]}"#, None).unwrap();
        assert!(answer.tags.iter().any(|t| t.as_slice() == ["encrypted"]));
        let plain =
            nip04::decrypt(customer.secret_key(), &dvm.public_key(), &answer.content).unwrap();
        assert_eq!(plain, r#"{"data":[]}"#);
        // Garbage in the content: an error the requester can read, not a crash.
        let event = request(
            &customer,
            vec![vec!["p", &dvm.public_key().to_hex()], vec!["encrypted"]],
            "not-nip04",
        );
        assert!(matches!(read_request(&event, &dvm), Reading::Invalid(_)));
        // Encrypted but not addressed to us: not ours.
        let event = request(&customer, vec![vec!["encrypted"]], &content);
        assert!(matches!(read_request(&event, &dvm), Reading::NotForUs));
    }

    #[test]
    fn answers_carry_nip90_tags() {
        let dvm = Keys::generate();
        let customer = Keys::generate();
        let event = request(&customer, vec![vec!["param", "table", "relay"]], "");
        let Reading::Job(job) = read_request(&event, &dvm) else {
            panic!("a job");
        };
        let answer = result(&dvm, &job, 6050, "{}", Some(5)).unwrap();
        answer.verify().unwrap();
        assert_eq!(answer.kind, Kind::from(6050));
        let tags: Vec<Vec<String>> = answer.tags.iter().map(|t| t.as_slice().to_vec()).collect();
        assert_eq!(tags[0][0], "request");
        assert_eq!(
            Event::from_json(&tags[0][1]).unwrap(),
            event,
            "the request event itself"
        );
        assert_eq!(tags[1], ["e", &event.id.to_hex()]);
        assert_eq!(tags[2], ["p", &customer.public_key().to_hex()]);
        assert_eq!(tags[3], ["amount", "5"]);
        let refusal = feedback(&dvm, &event, Status::PaymentRequired, "pay", Some(7)).unwrap();
        refusal.verify().unwrap();
        assert_eq!(refusal.kind, Kind::JobFeedback);
        let tags: Vec<Vec<String>> = refusal.tags.iter().map(|t| t.as_slice().to_vec()).collect();
        assert_eq!(tags[0], ["status", "payment-required", "pay"]);
        assert_eq!(tags[3], ["amount", "7"]);
        let note = announcement(&dvm, "d", 5050, "n", "a", &["relay".into()]).unwrap();
        assert_eq!(note.kind, Kind::Custom(31990));
        let content: serde_json::Value = serde_json::from_str(&note.content).unwrap();
        assert_eq!(content["tables"], serde_json::json!(["relay"]));
    }
}
