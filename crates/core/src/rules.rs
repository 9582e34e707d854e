//! Per-type rules evaluated on a message's `data` at ingest: its dedup key
//! and its projection operation. The catalog declares them as data
//! ([`crate::profile::catalog::TypeDef`]); this module turns a payload into
//! the values the store applies in the publish commit, so the store never
//! parses `data` and every backend applies the same keys and versions.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::profile::catalog::Project;
use crate::timestamp::Timestamp;

/// Longest projected entity id accepted.
pub const MAX_ENTITY_ID_LEN: usize = 255;

/// A message's dedup key: a digest of its type and the values its catalog's
/// dedup pointers select, and how long the key is remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupKey {
    pub key: [u8; 32],
    /// `None`: as long as the first message with the key is retained.
    pub window_micros: Option<i64>,
}

/// What a projected message does to its entity's current-state row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectOp {
    pub kind: String,
    pub entity_id: String,
    /// RFC 3339 versions compare as instants (microseconds), integer
    /// versions as integers; `None` when the type declares no version (then
    /// the later commit wins) or a delete carries none (a final delete).
    pub version: Option<i64>,
    /// The instant a platform lists the entity by (`project.sort`).
    pub sort_at: Option<i64>,
    pub delete: bool,
}

/// A payload value a rule cannot use: the field (`data.updated_at`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleViolation {
    pub param: String,
    pub message: String,
}

/// `data.a.b` for `/a/b`: how a field is named in errors.
fn param(pointer: &str) -> String {
    let mut out = String::from("data");
    for part in pointer.split('/').skip(1) {
        out.push('.');
        out.push_str(&part.replace("~1", "/").replace("~0", "~"));
    }
    out
}

/// The dedup key of a message of `event_type`, or `None` when a pointer
/// selects nothing (such a message is never treated as a duplicate).
pub fn dedup_key(
    event_type: &str,
    pointers: &[String],
    window_ms: Option<u64>,
    data: &Value,
) -> Option<DedupKey> {
    let mut h = Sha256::new();
    h.update(b"dedup\0");
    h.update(event_type.as_bytes());
    h.update([0]);
    for p in pointers {
        let v = data.pointer(p)?;
        let text = v.to_string();
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    Some(DedupKey {
        key: h.finalize().into(),
        window_micros: window_ms.map(|ms| i64::try_from(ms.saturating_mul(1000)).unwrap_or(i64::MAX)),
    })
}

/// A version value: an RFC 3339 timestamp (as its instant) or an integer.
fn version_of(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => Timestamp::parse_rfc3339(s).ok().map(Timestamp::as_micros),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The projection operation of a message under `rule`.
pub fn project(rule: &Project, data: &Value) -> Result<ProjectOp, RuleViolation> {
    let bad = |pointer: &str, message: String| RuleViolation {
        param: param(pointer),
        message,
    };
    let entity_id = match data.pointer(&rule.id) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ENTITY_ID_LEN => s.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => {
            return Err(bad(
                &rule.id,
                format!(
                    "{} must be a string of 1 to {MAX_ENTITY_ID_LEN} bytes or an integer: it names the {} entity",
                    param(&rule.id),
                    rule.kind
                ),
            ));
        }
    };
    let version = match &rule.version {
        None => None,
        Some(p) => match data.pointer(p) {
            None if rule.delete => None,
            Some(v) if version_of(v).is_some() => version_of(v),
            _ => {
                return Err(bad(
                    p,
                    format!(
                        "{} must be an RFC 3339 timestamp or an integer: it versions the {} entity",
                        param(p),
                        rule.kind
                    ),
                ));
            }
        },
    };
    let sort_at = match &rule.sort {
        None => None,
        Some(p) => match data.pointer(p) {
            None => None,
            Some(Value::String(s)) if Timestamp::parse_rfc3339(s).is_ok() => {
                Timestamp::parse_rfc3339(s).ok().map(Timestamp::as_micros)
            }
            Some(_) => return Err(bad(p, format!("{} must be an RFC 3339 timestamp", param(p)))),
        },
    };
    Ok(ProjectOp {
        kind: rule.kind.clone(),
        entity_id,
        version,
        sort_at,
        delete: rule.delete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule() -> Project {
        Project {
            kind: "events".into(),
            id: "/id".into(),
            version: Some("/updated_at".into()),
            sort: Some("/created_at".into()),
            delete: false,
        }
    }

    #[test]
    fn dedup_keys_depend_on_type_and_values() {
        let p = vec!["/id".to_string(), "/at".to_string()];
        let a = dedup_key("t", &p, None, &json!({"id": "x", "at": "1"})).unwrap();
        let b = dedup_key("t", &p, None, &json!({"id": "x", "at": "1", "other": 2})).unwrap();
        let c = dedup_key("t", &p, None, &json!({"id": "x", "at": "2"})).unwrap();
        let d = dedup_key("u", &p, None, &json!({"id": "x", "at": "1"})).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.key, c.key);
        assert_ne!(a.key, d.key);
        assert!(dedup_key("t", &p, None, &json!({"id": "x"})).is_none());
        assert_eq!(
            dedup_key("t", &p, Some(2), &json!({"id": 1, "at": 1}))
                .unwrap()
                .window_micros,
            Some(2000)
        );
    }

    #[test]
    fn versions_compare_as_instants() {
        let a = project(
            &rule(),
            &json!({"id": "e", "updated_at": "2026-01-01T10:00:00+01:00"}),
        )
        .unwrap();
        let b = project(&rule(), &json!({"id": "e", "updated_at": "2026-01-01T09:00:00Z"})).unwrap();
        assert_eq!(a.version, b.version);
        let n = project(&rule(), &json!({"id": 7, "updated_at": 3})).unwrap();
        assert_eq!((n.entity_id.as_str(), n.version), ("7", Some(3)));
        let e = project(&rule(), &json!({"id": "e", "updated_at": "yesterday"})).unwrap_err();
        assert_eq!(e.param, "data.updated_at");
        assert!(project(&rule(), &json!({"id": "e"})).is_err());
        let mut del = rule();
        del.delete = true;
        assert_eq!(project(&del, &json!({"id": "e"})).unwrap().version, None);
        assert_eq!(
            project(&rule(), &json!({"updated_at": 1})).unwrap_err().param,
            "data.id"
        );
    }
}
