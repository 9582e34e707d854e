#![no_main]
//! Message types, channels and type patterns (publish bodies, subscriptions,
//! endpoint filters, query parameters).
//!
//! Properties: never panics; each parser accepts exactly the documented
//! grammar (checked against a second, table-driven implementation); accepted
//! values round-trip through `as_str()` and `Display`; a channel's kind and
//! id rebuild it through `from_parts`; a pattern matches what it names.

use libfuzzer_sys::fuzz_target;
use marquee_core::pattern::TypePattern;
use marquee_core::{Channel, EventType};

fn all_in(s: &str, first: fn(u8) -> bool, rest: fn(u8) -> bool, max: usize) -> bool {
    let b = s.as_bytes();
    (1..=max).contains(&b.len()) && first(b[0]) && b[1..].iter().all(|c| rest(*c))
}

/// `[a-z0-9][a-z0-9_.-]{0,63}`
fn is_type(s: &str) -> bool {
    all_in(
        s,
        |c| matches!(c, b'a'..=b'z' | b'0'..=b'9'),
        |c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'),
        64,
    )
}

/// `[a-z][a-z0-9_]{0,31}` `:` `[A-Za-z0-9._~-]{1,128}`
fn is_channel(s: &str) -> bool {
    let id = |c| matches!(c, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'~' | b'-');
    match s.split_once(':') {
        Some((k, i)) => {
            all_in(
                k,
                |c| c.is_ascii_lowercase(),
                |c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_'),
                32,
            ) && all_in(i, id, id, 128)
        }
        None => false,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(s) = std::str::from_utf8(bytes) else { return };

    let t = s.parse::<EventType>();
    assert_eq!(t.is_ok(), is_type(s), "type {s:?}");
    assert_eq!(marquee_core::names::valid_type(s), is_type(s));
    if let Ok(t) = t {
        assert_eq!(t.as_str(), s);
        assert_eq!(t.to_string(), s);
    }

    let c = s.parse::<Channel>();
    assert_eq!(c.is_ok(), is_channel(s), "channel {s:?}");
    if let Ok(c) = c {
        assert_eq!(c.as_str(), s);
        assert_eq!(c.to_string(), s);
        assert_eq!(format!("{}:{}", c.kind(), c.id()), s);
        assert_eq!(Channel::from_parts(c.kind(), c.id()), Ok(c.clone()));
    }
    // The stream protocol sends kind and id apart.
    if let Some((k, i)) = s.split_once('\u{0}') {
        let p = Channel::from_parts(k, i);
        assert_eq!(
            p.is_ok(),
            is_channel(&format!("{k}:{i}")) && !i.contains(':'),
            "parts {k:?} {i:?}"
        );
    }

    let p = s.parse::<TypePattern>();
    let want = match s.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => prefix.len() < 64 && is_type(prefix),
        None => is_type(s),
    };
    assert_eq!(p.is_ok(), want, "pattern {s:?}");
    if let Ok(p) = p {
        assert_eq!(p.to_string(), s);
        assert_eq!(p.to_string().parse::<TypePattern>(), Ok(p.clone()));
        match &p {
            TypePattern::Exact(t) => assert!(p.matches(t) && t == s),
            TypePattern::Prefix(pre) => {
                assert!(p.matches(pre) && p.matches(&format!("{pre}x")));
                assert_eq!(format!("{pre}*"), s);
            }
        }
    }
});
