#![no_main]
//! `ijson::check` on any valid JSON text (as publish calls it, on the text of
//! a `RawValue`).
//!
//! Properties:
//! - it never panics;
//! - if it returns `Ok`, `serde_json::Value` parses the text, every number in
//!   it is a finite double, and the re-serialized value passes again;
//! - it agrees exactly (the same problem at the same path, or `Ok`) with a
//!   second implementation that walks the document with serde_json instead of
//!   scanning bytes: containers nested past the limit, numbers a double cannot
//!   hold (`f64` overflow, or a non-zero mantissa that underflows to zero),
//!   and strings or keys serde_json refuses to decode (lone surrogates), the
//!   first in document order. Checked at depth 64 and at a small depth.

use std::fmt;

use libfuzzer_sys::fuzz_target;
use marquee_core::ijson::{Problem, Violation, check};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// An object's entries in document order, duplicates kept, keys undecoded.
struct Entries<'a>(Vec<(&'a RawValue, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = a.next_entry::<&'de RawValue, &'de RawValue>()? {
                    v.push(e);
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

/// The path as `check` writes it: `a.b[3]`.
fn path(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn in_range(tok: &str) -> bool {
    let v: f64 = tok.parse().expect("a JSON number parses as f64");
    let mantissa = tok.split(['e', 'E']).next().unwrap();
    let nonzero = mantissa.bytes().any(|c| matches!(c, b'1'..=b'9'));
    v.is_finite() && (v != 0.0 || !nonzero)
}

fn walk(raw: &RawValue, segs: &mut Vec<Seg>, depth: usize, max: usize) -> Result<(), Violation> {
    let t = raw.get();
    let fail = |segs: &[Seg], problem| {
        Err(Violation {
            path: path(segs),
            problem,
        })
    };
    match t.as_bytes()[0] {
        b'{' => {
            if depth >= max {
                return fail(segs, Problem::TooDeep(max));
            }
            let Entries(entries) = serde_json::from_str(t).expect("an object");
            for (k, v) in entries {
                match serde_json::from_str::<String>(k.get()) {
                    Ok(key) => segs.push(Seg::Key(key)),
                    Err(_) => {
                        segs.push(Seg::Key("<key>".into()));
                        return fail(segs, Problem::LoneSurrogate);
                    }
                }
                walk(v, segs, depth + 1, max)?;
                segs.pop();
            }
        }
        b'[' => {
            if depth >= max {
                return fail(segs, Problem::TooDeep(max));
            }
            let items: Vec<&RawValue> = serde_json::from_str(t).expect("an array");
            for (i, v) in items.into_iter().enumerate() {
                segs.push(Seg::Index(i));
                walk(v, segs, depth + 1, max)?;
                segs.pop();
            }
        }
        b'"' => {
            if serde_json::from_str::<String>(t).is_err() {
                return fail(segs, Problem::LoneSurrogate);
            }
        }
        b'-' | b'0'..=b'9' => {
            if !in_range(t) {
                return fail(segs, Problem::NumberOutOfRange(t.chars().take(40).collect()));
            }
        }
        _ => {}
    }
    Ok(())
}

fn numbers_finite(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
        serde_json::Value::Array(a) => a.iter().all(numbers_finite),
        serde_json::Value::Object(o) => o.values().all(numbers_finite),
        _ => true,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(input) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(raw) = serde_json::from_str::<&RawValue>(input) else {
        return;
    };
    let text = raw.get();
    let small = 1 + bytes.len() % 4;
    for max in [64, small] {
        let got = check(text, max);
        let want = walk(raw, &mut Vec::new(), 0, max);
        assert_eq!(got, want, "max_depth {max}");
    }
    if check(text, 64).is_ok() {
        let v: serde_json::Value = serde_json::from_str(text).expect("I-JSON parses as a Value");
        assert!(numbers_finite(&v), "every number is a finite double");
        let again = serde_json::to_string(&v).expect("a Value serializes");
        assert_eq!(check(&again, 64), Ok(()), "re-serialized: {again}");
    }
});
