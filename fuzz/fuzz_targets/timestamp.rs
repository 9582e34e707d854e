#![no_main]
//! RFC 3339 timestamps (`occurred_at` at publish, `?since=`).
//!
//! Properties: never panics; an accepted timestamp renders (`to_rfc3339`) as
//! RFC 3339 text that parses back to the same instant, and rendering is then
//! stable; any instant that renders as a date parses back to itself.

use libfuzzer_sys::fuzz_target;
use marquee_core::Timestamp;

fn rendered_round_trips(t: Timestamp, from: &str) {
    let text = t.to_rfc3339();
    assert_eq!(
        Timestamp::parse_rfc3339(&text),
        Ok(t),
        "{from:?} renders as {text:?}"
    );
    assert_eq!(Timestamp::parse_rfc3339(&text).unwrap().to_rfc3339(), text);
}

fuzz_target!(|bytes: &[u8]| {
    if let Ok(s) = std::str::from_utf8(bytes)
        && let Ok(t) = Timestamp::parse_rfc3339(s)
    {
        rendered_round_trips(t, s);
    }
    if bytes.len() >= 8 {
        let t = Timestamp::from_micros(i64::from_le_bytes(bytes[..8].try_into().unwrap()));
        let text = t.to_rfc3339();
        // Outside years 0000–9999 the rendering falls back to the number.
        if text.parse::<i64>().is_err() {
            rendered_round_trips(t, &text);
        }
    }
});
