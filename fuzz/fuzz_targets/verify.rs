#![no_main]
//! Every registered wire format's `verify`, as a receiver runs it on whatever
//! arrives. Three modes, chosen by the first byte:
//!
//! - raw: arbitrary headers (names picked from the formats' header names, in
//!   any case, or arbitrary) and an arbitrary body, for every format: never
//!   panics, and never verifies (nothing here is signed);
//! - signed: a request correctly signed by the harness over a fuzzed
//!   timestamp text (near `now`, any `i64`, or arbitrary text) and body, for
//!   each format the harness knows how to sign: the exact outcome is predicted
//!   (`Ok`, `Stale` or `Malformed`), and another secret never verifies;
//! - roundtrip: a message with fuzzed data (valid JSON object text), type,
//!   channels, ids and times is rendered by every format and verifies at the
//!   attempt's time, with every secret a multi-signature format signs with;
//!   a tampered body or a time past the tolerance does not verify; the body
//!   does not depend on the attempt's time; where the data is I-JSON the body
//!   is a JSON object that carries the data unchanged.
//!
//! Secrets are fixed per scheme (built with `from_sealed`) so a crash
//! reproduces; `now` is fixed.

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use marquee_core::ids::MessageId;
use marquee_core::message::StoredMessage;
use marquee_core::profile::{attendee, eventium, revento, revolution, standard};
use marquee_core::wire::{Format, Received, Render, SecretScheme, SigningSecret, VerifyError, hmac_util};
use marquee_core::{Channel, EventType, Timestamp, ijson};
use serde_json::value::RawValue;

const NOW_SECS: i64 = 1_780_000_000;
/// Every format that signs a time allows 300 s (checked in `formats`).
const TOLERANCE: i128 = 300;
const STALE: VerifyError = VerifyError::Stale { tolerance_secs: 300 };

fn now() -> Timestamp {
    Timestamp::from_micros(NOW_SECS * 1_000_000)
}

/// Every header name a format reads (and a few it does not).
const NAMES: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-eventium-signature",
    "x-revolution-signature",
    "x-revento-timestamp",
    "x-revento-signature",
    "x-revento-event",
    "x-revento-delivery-id",
    "x-signature",
    "content-type",
];

struct Fmt {
    format: Format,
    secret: SigningSecret,
    other: SigningSecret,
}

/// Two fixed secrets of a scheme, made through the store's path.
fn fixed_secret(scheme: SecretScheme, n: u8) -> SigningSecret {
    let text = format!("whsec_{}{}", (b'A' + n) as char, "x".repeat(42));
    let sealed = match scheme {
        SecretScheme::Base64Whsec => vec![n; 32],
        SecretScheme::IdentifierAndText => format!("chn_fuzz{n}\n{text}").into_bytes(),
        _ => text.into_bytes(),
    };
    scheme.from_sealed(sealed).expect("a fixed secret")
}

fn formats() -> &'static [Fmt] {
    static F: OnceLock<Vec<Fmt>> = OnceLock::new();
    F.get_or_init(|| {
        Format::all()
            .map(|format| {
                let scheme = format.wire().secret_scheme();
                assert!(
                    matches!(format.wire().tolerance_secs(), None | Some(300)),
                    "{format}: update TOLERANCE"
                );
                Fmt {
                    format,
                    secret: fixed_secret(scheme, 1),
                    other: fixed_secret(scheme, 2),
                }
            })
            .collect()
    })
}

fn within(ts_secs: i128) -> bool {
    (i128::from(NOW_SECS) - ts_secs).abs() <= TOLERANCE
}

fn header_name(u: &mut Unstructured<'_>) -> Result<String> {
    let b: u8 = u.arbitrary()?;
    let i = usize::from(b);
    Ok(if i < NAMES.len() {
        NAMES[i].to_owned()
    } else if i < 2 * NAMES.len() {
        NAMES[i - NAMES.len()].to_ascii_uppercase()
    } else {
        u.arbitrary::<String>()?
    })
}

fn header_value(u: &mut Unstructured<'_>) -> Result<String> {
    let kind: u8 = u.arbitrary()?;
    Ok(match kind % 8 {
        0 => u.arbitrary::<i64>()?.to_string(),
        1 => (NOW_SECS + i64::from(u.arbitrary::<i16>()?)).to_string(),
        2 => format!("t={},v1={}", u.arbitrary::<i64>()?, u.arbitrary::<&str>()?),
        3 => format!("{}/{}", u.arbitrary::<i128>()?, u.arbitrary::<&str>()?),
        4 => format!("sha256={}", u.arbitrary::<&str>()?),
        5 => format!("v1,{}", u.arbitrary::<&str>()?),
        _ => u.arbitrary::<String>()?,
    })
}

fn received<'a>(headers: &'a [(&'a str, &'a str)], body: &'a [u8]) -> Received<'a> {
    Received { headers, body }
}

fn raw(u: &mut Unstructured<'_>) -> Result<()> {
    let n = u.int_in_range(0..=8)?;
    let mut owned = Vec::with_capacity(n);
    for _ in 0..n {
        owned.push((header_name(u)?, header_value(u)?));
    }
    let body = u.bytes(u.len())?;
    let headers: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for f in formats() {
        let r = f
            .format
            .wire()
            .verify(&f.secret, &received(&headers, body), now());
        assert!(r.is_err(), "{}: an unsigned request verified", f.format);
    }
    Ok(())
}

/// A timestamp text in `unit`s per second: near `now`, any integer, padded
/// with spaces, or arbitrary text.
fn ts_text(u: &mut Unstructured<'_>, unit: i128) -> Result<String> {
    let kind: u8 = u.arbitrary()?;
    let near = i128::from(NOW_SECS + i64::from(u.arbitrary::<i16>()? % 400)) * unit;
    Ok(match kind % 5 {
        0 | 1 => near.to_string(),
        2 => u.arbitrary::<i64>()?.to_string(),
        3 => format!(" {near} "),
        _ => u.arbitrary::<String>()?,
    })
}

/// Comma-free junk for signature lists.
fn junk(u: &mut Unstructured<'_>) -> Result<String> {
    let b: &[u8] = u.arbitrary()?;
    Ok(hmac_util::hex(b))
}

fn signed(u: &mut Unstructured<'_>) -> Result<()> {
    let body: Vec<u8> = u.arbitrary()?;
    let upper: bool = u.arbitrary()?;
    let name = |n: &str| {
        if upper {
            n.to_ascii_uppercase()
        } else {
            n.to_owned()
        }
    };
    for f in formats() {
        let s = &f.secret;
        let (headers, expected): (Vec<(String, String)>, Result<(), VerifyError>) = match f.format.as_str() {
            "standard" => {
                let id: String = u.arbitrary()?;
                let text = ts_text(u, 1)?;
                let (sig, expected) = match text.trim().parse::<i64>() {
                    Ok(ts) if within(ts.into()) => (standard::sign(s, &id, ts, &body), Ok(())),
                    Ok(ts) => (standard::sign(s, &id, ts, &body), Err(STALE)),
                    Err(_) => (
                        u.arbitrary::<String>()?,
                        Err(VerifyError::Malformed {
                            header: "webhook-timestamp",
                            why: "not Unix seconds",
                        }),
                    ),
                };
                let sig = if u.arbitrary()? {
                    format!("v1,{} {sig}", junk(u)?)
                } else {
                    sig
                };
                (
                    vec![
                        (name("webhook-id"), id),
                        (name("webhook-timestamp"), text),
                        (name("webhook-signature"), sig),
                    ],
                    expected,
                )
            }
            "eventium" => {
                let t: i64 = if u.arbitrary()? {
                    NOW_SECS + i64::from(u.arbitrary::<i16>()? % 400)
                } else {
                    u.arbitrary()?
                };
                let mut items = vec![format!("t={t}"), format!("v1={}", eventium::sign(s, t, &body))];
                for _ in 0..u.int_in_range(0..=3)? {
                    let k = *u.choose(&["v0", "v1", "x"])?;
                    items.push(format!("{k}={}", junk(u)?));
                }
                let n = items.len();
                let at = u.int_in_range(0..=n - 1)?;
                items.rotate_left(at);
                let sep = if u.arbitrary()? { ", " } else { "," };
                let expected = if within(t.into()) { Ok(()) } else { Err(STALE) };
                (
                    vec![(name(eventium::SIGNATURE_HEADER), items.join(sep))],
                    expected,
                )
            }
            "revento" => {
                let text = ts_text(u, 1)?;
                let sig = format!(
                    "sha256={}",
                    hmac_util::hmac_hex(s.key(), &[text.as_bytes(), b".", &body])
                );
                if let Ok(ts) = text.parse::<i64>()
                    && ts.to_string() == text
                {
                    assert_eq!(revento::sign(s, ts, &body), sig);
                }
                let expected = match text.trim().parse::<i64>() {
                    Ok(ts) if within(ts.into()) => Ok(()),
                    Ok(_) => Err(STALE),
                    Err(_) => Err(VerifyError::Malformed {
                        header: revento::TIMESTAMP_HEADER,
                        why: "not Unix seconds",
                    }),
                };
                (
                    vec![
                        (name(revento::TIMESTAMP_HEADER), text),
                        (name(revento::SIGNATURE_HEADER), sig),
                    ],
                    expected,
                )
            }
            "attendee" => {
                let text = ts_text(u, 1_000_000_000)?;
                let sig = attendee::sign(s, &text, &body);
                let malformed = |why| VerifyError::Malformed {
                    header: attendee::SIGNATURE_HEADER,
                    why,
                };
                let expected = if text.is_empty() || text.contains('/') {
                    Err(malformed("not <timestamp>/<signature>"))
                } else {
                    match text.parse::<i128>() {
                        Err(_) => Err(malformed("the timestamp is not nanoseconds")),
                        Ok(ns)
                            if ns != 0
                                && (i128::from(NOW_SECS) * 1_000_000_000 - ns).abs()
                                    <= TOLERANCE * 1_000_000_000 =>
                        {
                            Ok(())
                        }
                        Ok(_) => Err(STALE),
                    }
                };
                (
                    vec![(name(attendee::SIGNATURE_HEADER), format!("{text}/{sig}"))],
                    expected,
                )
            }
            "revolution" => (
                vec![(name(revolution::SIGNATURE_HEADER), revolution::sign(s, &body))],
                Ok(()),
            ),
            // A format this harness cannot sign is covered by raw and roundtrip.
            _ => continue,
        };
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let w = f.format.wire();
        let req = received(&headers, &body);
        assert_eq!(w.verify(s, &req, now()), expected, "{}", f.format);
        assert!(
            w.verify(&f.other, &req, now()).is_err(),
            "{}: another secret verified",
            f.format
        );
    }
    Ok(())
}

fn data(u: &mut Unstructured<'_>) -> Result<Option<Box<RawValue>>> {
    let text: &str = u.arbitrary()?;
    let raw = if u.arbitrary()? {
        match serde_json::from_str::<Box<RawValue>>(text) {
            Ok(r) => r,
            Err(_) => return Ok(None),
        }
    } else {
        RawValue::from_string(serde_json::json!({ "s": text, "n": u.arbitrary::<i64>()? }).to_string())
            .expect("serde_json writes JSON")
    };
    Ok(raw.get().starts_with('{').then_some(raw))
}

fn roundtrip(u: &mut Unstructured<'_>) -> Result<()> {
    let Some(data) = data(u)? else { return Ok(()) };
    let event_type = u
        .arbitrary::<&str>()?
        .parse::<EventType>()
        .unwrap_or_else(|_| "order.completed".parse().unwrap());
    let mut channels = Vec::new();
    for _ in 0..u.int_in_range(1..=3)? {
        let kind = *u.choose(&["event", "organization", "venue", "artist"])?;
        if let Ok(c) = Channel::from_parts(kind, u.arbitrary()?) {
            channels.push(c);
        }
    }
    if channels.is_empty() {
        channels.push("venue:a".parse().unwrap());
    }
    let m = StoredMessage {
        seq: u.arbitrary()?,
        id: MessageId::lower_bound_at(u.arbitrary()?),
        org_id: marquee_core::ids::OrgId::from_trusted("org_01JD0000000000000000000000".into()),
        event_type,
        channels,
        data,
        occurred_at: Timestamp::from_micros(u.arbitrary()?),
        received_at: Timestamp::from_micros(u.arbitrary()?),
    };
    let delivery_id: String = u.arbitrary()?;
    let attempt: u32 = u.arbitrary()?;
    let at = Timestamp::from_micros(u.arbitrary()?);
    let retry_at = Timestamp::from_micros(u.arbitrary()?);
    let any_now = Timestamp::from_micros(u.arbitrary()?);
    let flip: usize = u.arbitrary()?;
    let data_value = ijson::check(m.data.get(), 64)
        .is_ok()
        .then(|| serde_json::from_str::<serde_json::Value>(m.data.get()).expect("I-JSON data parses"));
    for f in formats() {
        let w = f.format.wire();
        let secrets = [&f.secret, &f.other];
        let render = |at| {
            w.render(&Render {
                delivery_id: &delivery_id,
                attempt,
                at,
                secrets: &secrets,
                message: &m,
            })
        };
        let req = render(at);
        let headers: Vec<(&str, &str)> = req.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let rec = received(&headers, &req.body);
        // The attendee document refuses a zero timestamp: the epoch itself.
        let expected = if w.name() == "attendee" && at.as_micros() == 0 {
            Err(STALE)
        } else {
            Ok(())
        };
        assert_eq!(w.verify(&f.secret, &rec, at), expected, "{}", f.format);
        if expected.is_ok() {
            let other = w.verify(&f.other, &rec, at);
            if w.multi_signature() {
                assert_eq!(other, Ok(()), "{}: the second secret signs too", f.format);
            } else {
                assert_eq!(
                    other,
                    Err(VerifyError::Mismatch),
                    "{}: one signature only",
                    f.format
                );
            }
        }
        let _ = w.verify(&f.secret, &rec, any_now);
        // A stale signature is refused where the format signs a time.
        if let Some(t) = w.tolerance_secs()
            && let Some(later) = at.as_micros().checked_add((t + 1) * 1_000_000)
        {
            let r = w.verify(&f.secret, &rec, Timestamp::from_micros(later));
            assert!(matches!(r, Err(VerifyError::Stale { .. })), "{}: {r:?}", f.format);
        }
        // A tampered body never verifies.
        let mut tampered = req.body.clone();
        let i = flip % tampered.len();
        tampered[i] ^= 1 << (flip / tampered.len() % 8);
        assert_eq!(
            w.verify(&f.secret, &received(&headers, &tampered), at),
            Err(VerifyError::Mismatch),
            "{}: tampered body",
            f.format
        );
        // A retry sends the same body, signed anew.
        let retry = render(retry_at);
        assert_eq!(
            retry.body, req.body,
            "{}: the body depends on the attempt's time",
            f.format
        );
        let rh: Vec<(&str, &str)> = retry.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if !(w.name() == "attendee" && retry_at.as_micros() == 0) {
            assert_eq!(
                w.verify(&f.secret, &received(&rh, &retry.body), retry_at),
                Ok(()),
                "{}",
                f.format
            );
        }
        if let Some(dv) = &data_value {
            let v: serde_json::Value = serde_json::from_slice(&req.body).expect("the body is JSON");
            let obj = v.as_object().expect("the body is an object");
            assert!(
                obj.values().any(|x| x == dv),
                "{}: the body carries the data",
                f.format
            );
        }
    }
    Ok(())
}

fuzz_target!(|input: &[u8]| {
    let mut u = Unstructured::new(input);
    let _ = match u.arbitrary::<u8>().unwrap_or(0) % 3 {
        0 => raw(&mut u),
        1 => signed(&mut u),
        _ => roundtrip(&mut u),
    };
});
