//! Type patterns used by subscriptions: an exact type (`fan_checkin`) or a
//! prefix ending in `*` (`order.*`, `*`).

use std::fmt;
use std::str::FromStr;

use crate::names::valid_type;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TypePattern {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("type pattern must be a type, optionally ending in * (e.g. order.*)")]
pub struct BadPattern;

impl TypePattern {
    pub fn matches(&self, ty: &str) -> bool {
        match self {
            TypePattern::Exact(t) => t == ty,
            TypePattern::Prefix(p) => ty.starts_with(p.as_str()),
        }
    }
}

impl FromStr for TypePattern {
    type Err = BadPattern;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(prefix) = s.strip_suffix('*') {
            if prefix.is_empty() || (prefix.len() < 64 && valid_type(prefix)) {
                return Ok(TypePattern::Prefix(prefix.to_owned()));
            }
            return Err(BadPattern);
        }
        if valid_type(s) {
            Ok(TypePattern::Exact(s.to_owned()))
        } else {
            Err(BadPattern)
        }
    }
}

impl fmt::Display for TypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypePattern::Exact(t) => f.write_str(t),
            TypePattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// True when `patterns` is empty (all types) or one of them matches.
pub fn any_matches(patterns: &[TypePattern], ty: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.matches(ty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let p: TypePattern = "order.*".parse().unwrap();
        assert!(p.matches("order.completed"));
        assert!(!p.matches("ticket.refunded"));
        let all: TypePattern = "*".parse().unwrap();
        assert!(all.matches("anything"));
        let exact: TypePattern = "fan_checkin".parse().unwrap();
        assert!(exact.matches("fan_checkin") && !exact.matches("fan_checkin2"));
        assert!(any_matches(&[], "x"));
        for bad in ["", "**", "Order.*", "a*b", "a b"] {
            assert!(bad.parse::<TypePattern>().is_err(), "{bad}");
        }
    }
}
