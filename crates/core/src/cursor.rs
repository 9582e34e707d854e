//! Cursors: opaque positions in an organization's commit log.
//!
//! A cursor wraps the store's commit sequence number. Its text form is 13
//! Crockford base32 characters, fixed width, so cursors compare as strings in
//! the same order as the positions they stand for. Clients must treat them as
//! opaque; the encoding may gain a version character later.

use std::fmt;
use std::str::FromStr;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LEN: usize = 13;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed cursor")]
pub struct BadCursor;

impl Cursor {
    pub const START: Cursor = Cursor(0);

    pub fn from_seq(seq: u64) -> Self {
        Cursor(seq.min(i64::MAX as u64))
    }

    pub fn seq(self) -> u64 {
        self.0
    }

    pub fn encode(self) -> String {
        let mut v = self.0;
        let mut out = [b'0'; LEN];
        for i in (0..LEN).rev() {
            out[i] = CROCKFORD[(v & 31) as usize];
            v >>= 5;
        }
        String::from_utf8(out.to_vec()).expect("ascii")
    }
}

impl FromStr for Cursor {
    type Err = BadCursor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != LEN {
            return Err(BadCursor);
        }
        let mut v: u64 = 0;
        for (i, b) in s.bytes().enumerate() {
            let d = CROCKFORD.iter().position(|c| *c == b).ok_or(BadCursor)? as u64;
            // Positions are at most i64::MAX (every store keeps them as a
            // signed 64-bit integer): 63 bits, so the first of the 13
            // characters carries 3 bits.
            if i == 0 && d > 7 {
                return Err(BadCursor);
            }
            v = (v << 5) | d;
        }
        Ok(Cursor(v))
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_order() {
        let values = [0u64, 1, 31, 32, 1_000_000, u64::MAX / 3, i64::MAX as u64];
        for w in values.windows(2) {
            let (a, b) = (Cursor(w[0]).encode(), Cursor(w[1]).encode());
            assert!(a < b, "{a} < {b}");
        }
        for v in values {
            assert_eq!(Cursor(v).encode().parse::<Cursor>().unwrap(), Cursor(v));
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "abc",
            "000000000000U",
            "Z000000000000",
            "00000000000000",
            "0000000000 00",
        ] {
            assert_eq!(bad.parse::<Cursor>(), Err(BadCursor), "{bad}");
        }
    }
}
