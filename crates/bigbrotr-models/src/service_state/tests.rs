//! Tests for service-state rows and their typed values.

use serde_json::{Value, json};

use super::*;

const ID: &str = "abababababababababababababababababababababababababababababababab";

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn candidate_reads_and_writes_python_json() {
    // What 6.6.9 writes (`json.dumps` of the sanitised dict) and what PostgreSQL returns from
    // JSONB (keys ordered by length).
    for text in [
        r#"{"failures": 0, "network": "clearnet", "timestamp": 1700000000}"#,
        r#"{"network": "clearnet", "failures": 0, "timestamp": 1700000000}"#,
    ] {
        let record = CandidateRecord::from_value(&parse(text)).unwrap();
        assert_eq!(
            record,
            CandidateRecord {
                network: NetworkType::Clearnet,
                failures: 0,
                timestamp: 1_700_000_000
            }
        );
        assert_eq!(record.to_value(), parse(text));
    }
    let tor = CandidateRecord::from_value(
        &json!({"network": "tor", "failures": 3, "timestamp": 5, "extra": 1}),
    )
    .unwrap();
    assert_eq!(tor.network, NetworkType::Tor);
    assert_eq!(tor.failures, 3);
}

#[test]
fn candidate_rejects_malformed_values() {
    for value in [
        json!({"network": "clearnet", "failures": 0}),
        json!({"network": "onion", "failures": 0, "timestamp": 1}),
        json!({"network": "clearnet", "failures": "0", "timestamp": 1}),
        json!({"network": "clearnet", "failures": 1.5, "timestamp": 1}),
        json!([]),
    ] {
        let err = CandidateRecord::from_value(&value).unwrap_err();
        assert!(
            matches!(
                err,
                ServiceStateError::InvalidRecord {
                    record: "candidate",
                    ..
                }
            ),
            "{value}"
        );
    }
}

#[test]
fn checkpoint_reads_and_writes_python_json() {
    let text = r#"{"timestamp": 1700000000}"#;
    let checkpoint = Checkpoint::from_value(&parse(text)).unwrap();
    assert_eq!(
        checkpoint,
        Checkpoint {
            timestamp: 1_700_000_000
        }
    );
    assert_eq!(checkpoint.to_value(), parse(text));
    assert!(Checkpoint::from_value(&json!({})).is_err());
}

#[test]
fn cursor_reads_and_writes_python_json() {
    let text = format!(r#"{{"id": "{ID}", "timestamp": 1700000000}}"#);
    let cursor = Cursor::from_value(&parse(&text)).unwrap();
    assert_eq!(
        cursor,
        Cursor {
            timestamp: 1_700_000_000,
            id: ID.to_owned()
        }
    );
    assert_eq!(cursor.to_value(), parse(&text));
    assert_eq!(serde_json::from_str::<Cursor>(&text).unwrap(), cursor);
    assert_eq!(serde_json::to_value(&cursor).unwrap(), parse(&text));
}

#[test]
fn cursor_ids_must_be_64_hex_characters() {
    assert_eq!(Cursor::new(1, &ID.to_uppercase()).unwrap().id, ID);
    for bad in ["", &ID[..63], &format!("{ID}a"), &format!("{}g", &ID[..63])] {
        assert_eq!(
            Cursor::new(1, bad),
            Err(ServiceStateError::InvalidCursorId(bad.to_owned()))
        );
        assert!(Cursor::from_value(&json!({"timestamp": 1, "id": bad})).is_err());
        assert!(serde_json::from_value::<Cursor>(json!({"timestamp": 1, "id": bad})).is_err());
    }
    assert_eq!(
        Cursor::from_id_bytes(7, &[0xab; 32]),
        Cursor {
            timestamp: 7,
            id: ID.to_owned()
        }
    );
}

#[test]
fn default_cursor_is_zero_and_is_never_written() {
    let cursor = Cursor::default();
    assert_eq!(cursor.timestamp, 0);
    assert_eq!(cursor.id, "0".repeat(64));
    assert!(!cursor.should_write());
    assert!(Cursor::from_id_bytes(1, &[0; 32]).should_write());
}

#[test]
fn service_state_validates_key_and_value() {
    let value = json!({"timestamp": 1});
    let new = |key: &str, value: Value| {
        ServiceState::new(
            ServiceName::Finder,
            ServiceStateType::Checkpoint,
            key,
            value,
        )
    };
    assert_eq!(new("", value.clone()), Err(ServiceStateError::EmptyKey));
    assert_eq!(
        new("a\0b", value.clone()),
        Err(ServiceStateError::NullByteInKey)
    );
    assert_eq!(
        new("k", json!([1])),
        Err(ServiceStateError::NotAnObject("list"))
    );
    assert_eq!(
        ServiceStateError::NotAnObject("list").to_string(),
        "state_value must be a Mapping, got list"
    );
    let err = new("k", json!({"reason": "a\0"})).unwrap_err();
    assert_eq!(err.to_string(), "state_value contains null bytes");
}

#[test]
fn service_state_sanitises_the_value() {
    let state = ServiceState::new(
        ServiceName::Monitor,
        ServiceStateType::Checkpoint,
        "announcement",
        json!({"timestamp": 5, "note": null, "empty": {}, "list": []}),
    )
    .unwrap();
    assert_eq!(state.state_value(), &json!({"timestamp": 5}));
    assert_eq!(state.service_name(), ServiceName::Monitor);
    assert_eq!(state.state_type(), ServiceStateType::Checkpoint);
    assert_eq!(state.state_key(), "announcement");
}

#[test]
fn typed_constructors_build_the_documented_rows() {
    let record = CandidateRecord {
        network: NetworkType::I2p,
        failures: 2,
        timestamp: 9,
    };
    let row = ServiceState::candidate("ws://x.i2p", &record).unwrap();
    assert_eq!(
        (row.service_name(), row.state_type(), row.state_key()),
        (
            ServiceName::Validator,
            ServiceStateType::Checkpoint,
            "ws://x.i2p"
        )
    );
    assert_eq!(
        row.state_value(),
        &json!({"network": "i2p", "failures": 2, "timestamp": 9})
    );

    let row = ServiceState::checkpoint(
        ServiceName::Finder,
        "https://api.nostr.watch/v1/online",
        &Checkpoint { timestamp: 3 },
    )
    .unwrap();
    assert_eq!(row.state_type(), ServiceStateType::Checkpoint);
    assert_eq!(row.state_value(), &json!({"timestamp": 3}));

    let cursor = Cursor::from_id_bytes(4, &[0xab; 32]);
    let row =
        ServiceState::cursor(ServiceName::Synchronizer, "wss://relay.damus.io", &cursor).unwrap();
    assert_eq!(row.state_type(), ServiceStateType::Cursor);
    assert_eq!(Cursor::from_value(row.state_value()).unwrap(), cursor);
}

#[test]
fn enum_names_round_trip() {
    let names = [
        "seeder",
        "finder",
        "validator",
        "monitor",
        "synchronizer",
        "refresher",
        "api",
        "dvm",
    ];
    for (service, name) in ServiceName::ALL.into_iter().zip(names) {
        assert_eq!(service.as_str(), name);
        assert_eq!(service.to_string(), name);
        assert_eq!(name.parse::<ServiceName>(), Ok(service));
        assert_eq!(serde_json::to_value(service).unwrap(), json!(name));
    }
    assert_eq!(
        "Finder".parse::<ServiceName>(),
        Err(ServiceStateError::UnknownServiceName("Finder".into()))
    );
    for (kind, name) in ServiceStateType::ALL
        .into_iter()
        .zip(["checkpoint", "cursor"])
    {
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.to_string(), name);
        assert_eq!(name.parse::<ServiceStateType>(), Ok(kind));
        assert_eq!(
            serde_json::from_value::<ServiceStateType>(json!(name)).unwrap(),
            kind
        );
    }
    assert_eq!(
        "candidate".parse::<ServiceStateType>(),
        Err(ServiceStateError::UnknownStateType("candidate".into()))
    );
}
