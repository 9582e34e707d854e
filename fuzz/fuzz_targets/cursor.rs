#![no_main]
//! `Cursor` parsing (`?after=`, stream resume positions).
//!
//! Properties: never panics; a parsed cursor is at most `i64::MAX` and
//! re-encodes to exactly the text it was parsed from (one text per position);
//! any position (clamped by `from_seq`) encodes to 13 characters that parse
//! back to it, and encodings sort as their positions do.

use libfuzzer_sys::fuzz_target;
use marquee_core::Cursor;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(s) = std::str::from_utf8(bytes)
        && let Ok(c) = s.parse::<Cursor>()
    {
        assert!(c.seq() <= i64::MAX as u64);
        assert_eq!(c.encode(), s);
        assert_eq!(c.to_string(), s);
    }
    if bytes.len() >= 16 {
        let a = Cursor::from_seq(u64::from_le_bytes(bytes[..8].try_into().unwrap()));
        let b = Cursor::from_seq(u64::from_le_bytes(bytes[8..16].try_into().unwrap()));
        for c in [a, b] {
            let e = c.encode();
            assert_eq!(e.len(), 13);
            assert_eq!(e.parse::<Cursor>(), Ok(c));
        }
        assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
    }
});
