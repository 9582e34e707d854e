//! Prefixed, time-sortable identifiers (`msg_01JD…`, `org_01JD…`).
//!
//! The body is a ULID: 48 bits of milliseconds then 80 random bits, in
//! Crockford base32 (26 characters). Sorting ids sorts them by creation time,
//! which keeps B-tree inserts append-mostly in every store. Each kind of id is
//! its own newtype that only parses with its own prefix, so an endpoint id can
//! never be passed where a message id is expected.

use std::fmt;
use std::str::FromStr;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BODY_LEN: usize = 26;

/// Fills `buf` with random bytes from the operating system.
pub fn random_bytes(buf: &mut [u8]) {
    // getrandom only fails when the OS has no entropy source at all, in which
    // case no secret or id could be made safely: stopping is the right answer.
    getrandom::fill(buf).expect("operating system randomness is unavailable");
}

thread_local! {
    /// Per-thread generator state for id randomness, seeded once from the OS.
    /// Ids need uniqueness, not secrecy (secrets use [`random_bytes`]), and a
    /// system call per id showed up in publish profiles.
    static ID_RNG: std::cell::Cell<u64> = std::cell::Cell::new({
        let mut seed = [0u8; 8];
        random_bytes(&mut seed);
        u64::from_le_bytes(seed) | 1
    });
}

/// splitmix64: a fast, well-distributed 64-bit sequence.
fn next_u64() -> u64 {
    ID_RNG.with(|state| {
        let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

fn ulid_body(now_ms: u64) -> String {
    let mut rnd = [0u8; 10];
    rnd[..8].copy_from_slice(&next_u64().to_le_bytes());
    rnd[8..].copy_from_slice(&next_u64().to_le_bytes()[..2]);
    let mut value: u128 = u128::from(now_ms & 0xFFFF_FFFF_FFFF) << 80;
    for (i, b) in rnd.iter().enumerate() {
        value |= u128::from(*b) << (8 * (9 - i));
    }
    let mut out = [0u8; BODY_LEN];
    for i in (0..BODY_LEN).rev() {
        out[i] = CROCKFORD[(value & 31) as usize];
        value >>= 5;
    }
    String::from_utf8(out.to_vec()).expect("ascii")
}

fn valid_body(s: &str) -> bool {
    s.len() == BODY_LEN && s.as_bytes()[0] <= b'7' && s.bytes().all(|b| CROCKFORD.contains(&b))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed {kind} id")]
pub struct BadId {
    pub kind: &'static str,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-sortable id.
            pub fn generate() -> Self {
                $name(format!("{}{}", $prefix, ulid_body(now_ms())))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The smallest id that could be generated at `ms` (Unix
            /// milliseconds): every id made earlier sorts below it.
            pub fn lower_bound_at(ms: u64) -> Self {
                let mut value: u128 = u128::from(ms & 0xFFFF_FFFF_FFFF) << 80;
                let mut out = [0u8; BODY_LEN];
                for i in (0..BODY_LEN).rev() {
                    out[i] = CROCKFORD[(value & 31) as usize];
                    value >>= 5;
                }
                $name(format!("{}{}", $prefix, String::from_utf8(out.to_vec()).expect("ascii")))
            }

            /// Trusts a value read back from the store.
            pub fn from_trusted(s: String) -> Self {
                $name(s)
            }
        }

        impl FromStr for $name {
            type Err = BadId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.strip_prefix($prefix) {
                    Some(body) if valid_body(body) => Ok($name(s.to_owned())),
                    _ => Err(BadId { kind: $kind }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A message in the durable log.
    MessageId, "msg_", "message");
prefixed_id!(
    /// An organization: the unit of isolation.
    OrgId, "org_", "organization");
prefixed_id!(
    /// An API key's public id (not the secret).
    KeyId, "key_", "key");
prefixed_id!(
    /// A webhook endpoint.
    EndpointId, "ep_", "endpoint");
prefixed_id!(
    /// One delivery of one message to one endpoint; stable across retries.
    DeliveryId, "dlv_", "delivery");
prefixed_id!(
    /// One HTTP attempt of a delivery.
    AttemptId, "atmpt_", "attempt");
prefixed_id!(
    /// An erasure: the removal of every stored message on a channel.
    ErasureId, "era_", "erasure");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_by_time() {
        let a = MessageId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = MessageId::generate();
        assert!(a < b);
        assert_eq!(a.as_str().parse::<MessageId>().unwrap(), a);
        assert_eq!(a.as_str().len(), 4 + 26);
    }

    #[test]
    fn lower_bound_sorts_below_later_ids() {
        let before = MessageId::lower_bound_at(now_ms());
        let id = MessageId::generate();
        assert!(before <= id);
        assert!(MessageId::lower_bound_at(now_ms() + 10_000) > id);
        assert!(before.as_str().parse::<MessageId>().is_ok());
    }

    #[test]
    fn wrong_prefix_or_body_is_rejected() {
        let m = MessageId::generate();
        assert!(m.as_str().parse::<OrgId>().is_err());
        for bad in [
            "",
            "msg_",
            "msg_short",
            "msg_01JD0000000000000000000000U",
            "msg_81JD00000000000000000000AA",
        ] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad}");
        }
    }
}
