//! I-JSON (RFC 7493) checks on JSON text that is already known to be
//! syntactically valid (it parsed as a `RawValue`).
//!
//! JSON allows what JavaScript and Python consumers cannot read back as sent:
//! numbers beyond the IEEE 754 double range (`1e99999` parses as `Infinity`
//! or fails), numbers that underflow to zero (`1e-400`), and `\uD800`-style
//! escapes of lone surrogates (not a Unicode string). marquee refuses them at
//! publish, and refuses nesting past a limit, in one pass that also locates
//! the offending value (`data.sections.a[2]`) for the error message.

/// What makes a JSON text unacceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Nested deeper than the limit.
    TooDeep(usize),
    /// A number a double cannot hold (overflows, or underflows to zero).
    NumberOutOfRange(String),
    /// A `\u` escape of a surrogate that is not part of a pair.
    LoneSurrogate,
}

/// A [`Problem`] and where it is, as a path from the root (`a.b[3]`, empty
/// for the root itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub problem: Problem,
}

impl Violation {
    /// A sentence for an error message; `root` names the checked value.
    pub fn describe(&self, root: &str) -> (String, String) {
        let at = if self.path.is_empty() {
            root.to_owned()
        } else if self.path.starts_with('[') {
            format!("{root}{}", self.path)
        } else {
            format!("{root}.{}", self.path)
        };
        let msg = match &self.problem {
            Problem::TooDeep(max) => format!("{at} nests deeper than {max} levels"),
            Problem::NumberOutOfRange(n) => format!(
                "{at} is {n}, a number outside the IEEE 754 double range that JSON consumers cannot read \
                 back (RFC 7493); send it as a string"
            ),
            Problem::LoneSurrogate => format!(
                "{at} contains a \\u escape of a lone UTF-16 surrogate, which is not valid Unicode (RFC 7493)"
            ),
        };
        (at, msg)
    }
}

enum Frame {
    Object { key: Option<String> },
    Array { index: usize },
}

fn path_of(stack: &[Frame]) -> String {
    let mut s = String::new();
    for f in stack {
        match f {
            Frame::Object { key: Some(k) } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Frame::Object { key: None } => {}
            Frame::Array { index } => {
                s.push('[');
                s.push_str(&index.to_string());
                s.push(']');
            }
        }
    }
    s
}

fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() < 4 {
        return None;
    }
    let s = std::str::from_utf8(&b[..4]).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Reads the string starting at `b[i] == '"'`; returns its decoded text
/// (for keys; lossy and only as long as it is useful) and the index after
/// the closing quote.
fn read_string(b: &[u8], mut i: usize, want_text: bool) -> Result<(String, usize), Problem> {
    i += 1;
    let start = i;
    let mut text = String::new();
    let mut plain_from = start;
    while i < b.len() {
        match b[i] {
            b'"' => {
                if want_text {
                    text.push_str(&String::from_utf8_lossy(&b[plain_from..i]));
                }
                return Ok((text, i + 1));
            }
            b'\\' => {
                if want_text {
                    text.push_str(&String::from_utf8_lossy(&b[plain_from..i]));
                }
                let e = b.get(i + 1).copied().unwrap_or(b'"');
                if e == b'u' {
                    let cp = hex4(&b[(i + 2).min(b.len())..]).unwrap_or(0);
                    if (0xD800..0xDC00).contains(&cp) {
                        // A high surrogate must be followed by \u + a low one.
                        let next = b.get(i + 6..i + 8) == Some(b"\\u");
                        let low = if next {
                            hex4(&b[(i + 8).min(b.len())..])
                        } else {
                            None
                        };
                        match low {
                            Some(l) if (0xDC00..0xE000).contains(&l) => {
                                if want_text {
                                    let c = 0x10000 + ((cp - 0xD800) << 10) + (l - 0xDC00);
                                    text.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                                }
                                i += 12;
                            }
                            _ => return Err(Problem::LoneSurrogate),
                        }
                    } else if (0xDC00..0xE000).contains(&cp) {
                        return Err(Problem::LoneSurrogate);
                    } else {
                        if want_text {
                            text.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                        }
                        i += 6;
                    }
                } else {
                    if want_text {
                        text.push(match e {
                            b'n' => '\n',
                            b't' => '\t',
                            b'r' => '\r',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            other => other as char,
                        });
                    }
                    i += 2;
                }
                plain_from = i;
            }
            _ => i += 1,
        }
    }
    Ok((text, b.len()))
}

/// Whether a JSON number token survives as a double: finite, and not a
/// non-zero value that underflows to zero.
fn number_in_range(tok: &str) -> bool {
    match tok.parse::<f64>() {
        Ok(v) if v.is_finite() => {
            if v != 0.0 {
                return true;
            }
            // Zero is fine only if every mantissa digit is zero.
            let mantissa = tok.split(['e', 'E']).next().unwrap_or("");
            mantissa.bytes().all(|c| !c.is_ascii_digit() || c == b'0')
        }
        _ => false,
    }
}

/// Checks `text` (valid JSON) for I-JSON problems and nesting past
/// `max_depth`; the first problem found, in document order.
pub fn check(text: &str, max_depth: usize) -> Result<(), Violation> {
    let b = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    let fail = |stack: &[Frame], problem| Violation {
        path: path_of(stack),
        problem,
    };
    while i < b.len() {
        match b[i] {
            b'{' | b'[' => {
                if stack.len() >= max_depth {
                    return Err(fail(&stack, Problem::TooDeep(max_depth)));
                }
                stack.push(if b[i] == b'{' {
                    Frame::Object { key: None }
                } else {
                    Frame::Array { index: 0 }
                });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Array { index }) => *index += 1,
                    Some(Frame::Object { key }) => *key = None,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let is_key = matches!(stack.last(), Some(Frame::Object { key: None }));
                match read_string(b, i, is_key) {
                    Ok((t, next)) => {
                        if is_key && let Some(Frame::Object { key }) = stack.last_mut() {
                            *key = Some(t);
                        }
                        i = next;
                    }
                    Err(p) => {
                        if is_key && let Some(Frame::Object { key }) = stack.last_mut() {
                            *key = Some("<key>".into());
                        }
                        return Err(fail(&stack, p));
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    i += 1;
                }
                let tok = &text[start..i];
                if !number_in_range(tok) {
                    return Err(fail(
                        &stack,
                        Problem::NumberOutOfRange(tok.chars().take(40).collect()),
                    ));
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(t: &str) -> Option<(String, Problem)> {
        check(t, 64).err().map(|v| (v.path, v.problem))
    }

    #[test]
    fn accepts_ordinary_json() {
        for ok in [
            r#"{}"#,
            r#"{"a":1,"b":-2.5e10,"c":[0,0.0,-0,1e308,5e-324,1E+2],"d":"x\"y\\u"}"#,
            r#"{"emoji":"\ud83d\ude00","plain":"☃","esc":"\u00e9\n"}"#,
            r#"{"zero":0e-999,"neg":-0.000e5}"#,
            r#"{"s":"1e99999"}"#,
        ] {
            assert_eq!(check(ok, 64), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_and_locates() {
        assert_eq!(
            problem(r#"{"n":1e99999}"#),
            Some(("n".into(), Problem::NumberOutOfRange("1e99999".into())))
        );
        assert_eq!(
            problem(r#"{"a":{"b":[1,2,-1e400]}}"#),
            Some(("a.b[2]".into(), Problem::NumberOutOfRange("-1e400".into())))
        );
        assert_eq!(
            problem(r#"{"tiny":1e-400}"#),
            Some(("tiny".into(), Problem::NumberOutOfRange("1e-400".into())))
        );
        assert_eq!(
            problem(r#"{"s":"\ud800"}"#),
            Some(("s".into(), Problem::LoneSurrogate))
        );
        assert_eq!(
            problem(r#"{"s":"\udc00x"}"#),
            Some(("s".into(), Problem::LoneSurrogate))
        );
        assert_eq!(
            problem(r#"{"s":"\ud800\u0041"}"#),
            Some(("s".into(), Problem::LoneSurrogate))
        );
        assert_eq!(
            problem(r#"{"\ud800":1}"#),
            Some(("<key>".into(), Problem::LoneSurrogate))
        );
        assert_eq!(
            problem(r#"{"a":[{"x":1},{"y":[1e999]}]}"#),
            Some(("a[1].y[0]".into(), Problem::NumberOutOfRange("1e999".into())))
        );
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(64), "]".repeat(64));
        assert!(matches!(
            check(&deep, 64),
            Err(Violation {
                problem: Problem::TooDeep(64),
                ..
            })
        ));
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(63), "]".repeat(63));
        assert_eq!(check(&ok, 64), Ok(()));
        // Brackets inside strings are not nesting.
        assert_eq!(check(r#"{"a":"[[[{{{\\"}"#, 2), Ok(()));
    }

    #[test]
    fn describes() {
        let v = check(r#"{"n":1e99999}"#, 64).unwrap_err();
        let (param, msg) = v.describe("data");
        assert_eq!(param, "data.n");
        assert!(msg.contains("1e99999") && msg.contains("RFC 7493"), "{msg}");
    }

    #[test]
    fn never_panics_on_truncated_text() {
        let t = r#"{"a":"\ud83d\ude00","b":[1e5,"\u00"#;
        for i in 0..=t.len() {
            if t.is_char_boundary(i) {
                let _ = check(&t[..i], 64);
            }
        }
    }
}
