//! Human durations for configuration: `250ms`, `5s`, `30m`, `2h`, `30d`, and
//! comma-separated schedules of them (`0s,5s,5m`).

use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad duration {0:?}: use a whole number followed by ms, s, m, h or d (e.g. 500ms, 30s, 2h)")]
pub struct BadDuration(pub String);

pub fn parse(s: &str) -> Result<Duration, BadDuration> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| BadDuration(s.to_owned()))?;
    let ms_per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(BadDuration(s.to_owned())),
    };
    n.checked_mul(ms_per)
        .map(Duration::from_millis)
        .ok_or_else(|| BadDuration(s.to_owned()))
}

pub fn parse_list(s: &str) -> Result<Vec<Duration>, BadDuration> {
    s.split(',').map(parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse("30d").unwrap(), Duration::from_secs(30 * 86400));
        assert_eq!(parse_list("0ms,50ms,200ms").unwrap().len(), 3);
        for bad in ["", "5", "s", "-5s", "5 y", "1.5s", "99999999999999999999d"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
