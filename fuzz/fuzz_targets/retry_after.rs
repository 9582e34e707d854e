#![no_main]
//! `Retry-After` (RFC 9110 §10.2.3) from a webhook receiver's response.
//!
//! Properties: never panics, for any value and any `now`; the wait is at most
//! `MAX_RETRY_AFTER`; a value of ASCII digits (whitespace around) is that many
//! seconds, capped; a date written by an independent formatter (the `time`
//! crate) in each of the three HTTP-date forms, for any second of years
//! 0000–9999, gives exactly the wait from `now` to it (zero when it is past,
//! capped), the RFC 850 form whenever its two-digit year resolves back to the
//! same year (in now's century, or the previous one when that is more than
//! 50 years ahead, as documented).

use std::time::Duration;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use marquee_core::Timestamp;
use marquee_core::webhook::{MAX_RETRY_AFTER, parse_retry_after};
use time::OffsetDateTime;
use time::macros::format_description;

const FIRST: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
const LAST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

fn expected_wait(at_secs: i64, now: Timestamp) -> Duration {
    let wait = i128::from(at_secs) * 1_000_000 - i128::from(now.as_micros());
    if wait <= 0 {
        Duration::ZERO
    } else {
        Duration::from_micros(u64::try_from(wait).unwrap_or(u64::MAX)).min(MAX_RETRY_AFTER)
    }
}

fn dates(u: &mut Unstructured<'_>) -> Result<()> {
    let at = u.int_in_range(FIRST..=LAST)?;
    let now = if u.arbitrary()? {
        Timestamp::from_micros(u.arbitrary()?)
    } else {
        // Near the date, where the wait is not capped.
        Timestamp::from_micros(
            (at + i64::from(u.arbitrary::<i16>()?)) * 1_000_000 + u.int_in_range(0..=999_999)?,
        )
    };
    let dt = OffsetDateTime::from_unix_timestamp(at).unwrap();
    let want = Some(expected_wait(at, now));
    let imf = dt
        .format(format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .unwrap();
    assert_eq!(parse_retry_after(&imf, now), want, "{imf}");
    let asctime = dt
        .format(format_description!(
            "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
        ))
        .unwrap();
    assert_eq!(parse_retry_after(&asctime, now), want, "{asctime}");
    let rfc850 = dt
        .format(format_description!(
            "[weekday], [day]-[month repr:short]-[year repr:last_two] [hour]:[minute]:[second] GMT"
        ))
        .unwrap();
    let got = parse_retry_after(&rfc850, now);
    match OffsetDateTime::from_unix_timestamp(now.as_secs()) {
        Ok(n) => {
            // The documented rule: the two digits in now's century, or the
            // previous one when that is more than 50 years ahead.
            let mut year = n.year() - n.year().rem_euclid(100) + dt.year().rem_euclid(100);
            if year > n.year() + 50 {
                year -= 100;
            }
            if year == dt.year() {
                assert_eq!(got, want, "{rfc850}");
            }
        }
        Err(_) => assert_eq!(got, None, "{rfc850}: now is outside the calendar"),
    }
    Ok(())
}

fuzz_target!(|bytes: &[u8]| {
    let mut u = Unstructured::new(bytes);
    let Ok(mode) = u.arbitrary::<u8>() else { return };
    if mode % 4 == 0 {
        let _ = dates(&mut u);
        return;
    }
    let Ok(micros) = u.arbitrary::<i64>() else { return };
    let now = Timestamp::from_micros(micros);
    let Ok(v) = std::str::from_utf8(u.take_rest()) else {
        return;
    };
    let got = parse_retry_after(v, now);
    if let Some(d) = got {
        assert!(d <= MAX_RETRY_AFTER, "{v:?} gave {d:?}");
    }
    let t = v.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n = t.parse::<u64>().unwrap_or(u64::MAX);
        assert_eq!(got, Some(Duration::from_secs(n.min(MAX_RETRY_AFTER.as_secs()))));
    } else if !t.is_ascii() {
        assert_eq!(got, None, "{v:?}");
    }
});
