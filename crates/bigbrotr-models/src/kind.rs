//! Well-known Nostr event kinds that BigBrotr reads or publishes.

/// Kind 0: user profile metadata (NIP-01); the monitor publishes its profile with it.
pub const SET_METADATA: u16 = 0;
/// Kind 2: legacy relay recommendation (NIP-01, deprecated).
pub const RECOMMEND_RELAY: u16 = 2;
/// Kind 3: contact list, possibly with relay hints (NIP-02).
pub const CONTACTS: u16 = 3;
/// Kind 10002: relay list metadata (NIP-65).
pub const RELAY_LIST: u16 = 10_002;
/// Kind 22456: the ephemeral event the monitor's RTT write probe publishes.
pub const NIP66_TEST: u16 = 22_456;
/// Kind 10166: NIP-66 monitor announcement (replaceable).
pub const MONITOR_ANNOUNCEMENT: u16 = 10_166;
/// Kind 30166: NIP-66 relay discovery event (addressable, one per relay).
pub const RELAY_DISCOVERY: u16 = 30_166;
/// The largest valid event kind.
pub const EVENT_KIND_MAX: u16 = 65_535;

/// Kind 5050: the DVM's job request kind (NIP-90).
pub const DVM_JOB_REQUEST: u16 = 5_050;
/// Kind 6050: the DVM's job result kind (request kind + 1000).
pub const DVM_JOB_RESULT: u16 = 6_050;
/// Kind 7000: DVM job feedback (NIP-90).
pub const DVM_JOB_FEEDBACK: u16 = 7_000;
/// Kind 31990: the DVM's handler information announcement (NIP-89).
pub const DVM_HANDLER_INFO: u16 = 31_990;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_match_bigbrotr_6_6_9() {
        let kinds = [
            SET_METADATA,
            RECOMMEND_RELAY,
            CONTACTS,
            RELAY_LIST,
            NIP66_TEST,
            MONITOR_ANNOUNCEMENT,
            RELAY_DISCOVERY,
            EVENT_KIND_MAX,
            DVM_JOB_REQUEST,
            DVM_JOB_RESULT,
            DVM_JOB_FEEDBACK,
            DVM_HANDLER_INFO,
        ];
        assert_eq!(
            kinds,
            [
                0, 2, 3, 10002, 22456, 10166, 30166, 65535, 5050, 6050, 7000, 31990
            ]
        );
        assert_eq!(DVM_JOB_RESULT, DVM_JOB_REQUEST + 1000);
    }
}
