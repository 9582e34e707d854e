#![no_main]
//! API-key shape check (`Authorization: Bearer …`, stream `?key=`).
//!
//! Properties: never panics; accepts exactly `sk_live_` + 43 base64url
//! characters; the public prefix is the 4 characters after `sk_live_`.

use libfuzzer_sys::fuzz_target;
use marquee_core::apikey;

fuzz_target!(|bytes: &[u8]| {
    let Ok(s) = std::str::from_utf8(bytes) else { return };
    let want = s.len() == 51
        && s.starts_with("sk_live_")
        && s.bytes()
            .skip(8)
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let got = apikey::parse(s);
    assert_eq!(got.is_some(), want, "{s:?}");
    if let Some(k) = got {
        assert_eq!(k.plaintext, s);
        assert_eq!(k.public_prefix, &s[8..12]);
    }
});
