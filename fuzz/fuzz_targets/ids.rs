#![no_main]
//! Prefixed ids (`msg_…`, `ep_…`, `dlv_…` in paths, queries and bodies) and
//! event ids (`evt_…`).
//!
//! Properties: never panics; each id type accepts exactly its prefix + 26
//! Crockford base32 characters whose first is at most `7` (a 128-bit ULID),
//! and returns the text unchanged; `lower_bound_at` of any time parses.

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use marquee_core::ids::{AttemptId, DeliveryId, EndpointId, KeyId, MessageId, OrgId};
use marquee_core::wire::message_id_of_event_id;

const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn want(s: &str, prefix: &str) -> bool {
    match s.strip_prefix(prefix) {
        Some(b) => b.len() == 26 && b.as_bytes()[0] <= b'7' && b.bytes().all(|c| CROCKFORD.contains(&c)),
        None => false,
    }
}

fn one<T: FromStr + ToString>(s: &str, prefix: &str) {
    let r = s.parse::<T>();
    assert_eq!(r.is_ok(), want(s, prefix), "{prefix} {s:?}");
    if let Ok(id) = r {
        assert_eq!(id.to_string(), s);
    }
}

fuzz_target!(|bytes: &[u8]| {
    if let Ok(s) = std::str::from_utf8(bytes) {
        one::<MessageId>(s, "msg_");
        one::<OrgId>(s, "org_");
        one::<KeyId>(s, "key_");
        one::<EndpointId>(s, "ep_");
        one::<DeliveryId>(s, "dlv_");
        one::<AttemptId>(s, "atmpt_");
        if let Some(m) = message_id_of_event_id(s) {
            assert_eq!(m.strip_prefix("msg_"), s.strip_prefix("evt_"));
        }
    }
    if bytes.len() >= 8 {
        let ms = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        let id = MessageId::lower_bound_at(ms);
        assert_eq!(id.as_str().parse::<MessageId>(), Ok(id.clone()));
    }
});
