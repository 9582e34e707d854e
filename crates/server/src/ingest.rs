//! The publish path's validation: raw request JSON → validated
//! [`NewMessage`]s.
//!
//! This is the one place per-type ingest rules plug in. It checks names,
//! sizes, I-JSON and timestamps, and the payload against its type's schema
//! (the organization's catalog); [`IngestRules`] is where dedup keys and
//! debounce/coalescing (Revento's capacity events) attach next, because every
//! message passes here before it reaches the store.

use marquee_core::ids::MessageId;
use marquee_core::message::{self, Idempotency, MAX_CHANNELS, MAX_IDEMPOTENCY_KEY_LEN, NewMessage};
use marquee_core::names::{Channel, EventType};
use marquee_core::rules::{DedupKey, ProjectOp};
use marquee_core::timestamp::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::catalog::OrgRules;
use crate::error::ApiError;

/// The body of `POST /v1/messages` (and each item of a batch).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    /// The event type (`fan_checkin`, `order.completed`); checked against
    /// its schema when the organization's catalog has one.
    #[serde(rename = "type")]
    #[schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$", example = "fan_checkin")]
    pub event_type: String,
    /// 1 to 16 channels, each `kind:id`.
    #[schema(min_items = 1, max_items = 16, example = json!(["venue:stubbs-austin"]))]
    pub channels: Vec<String>,
    /// A JSON object (I-JSON, nesting at most 64 deep), stored byte for byte.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// RFC 3339 (default: now).
    #[serde(default)]
    #[schema(example = "2026-12-01T20:00:00Z")]
    pub occurred_at: Option<String>,
    /// 1 to 255 bytes without control characters; the same key with the
    /// same body answers the stored message (200), with another body 409.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
}

/// The body of `POST /v1/messages/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// 1 to 1,000 messages, committed together.
    #[schema(min_items = 1, max_items = 1000)]
    pub messages: Vec<PublishBody>,
}

pub const MAX_BATCH: usize = 1_000;
/// Deepest nesting accepted in `data`: deeper documents break many clients'
/// parsers, so they are refused at the door.
pub const MAX_DEPTH: usize = 64;

/// Per-type rules applied to every message before it is stored: today the
/// payload schemas of the organization's catalog ([`crate::catalog`]).
#[derive(Default)]
pub struct IngestRules {
    pub catalogs: crate::catalog::Catalogs,
    /// Wakes the coalescing flusher when a publish opens an earlier window.
    pub coalescer: crate::coalesce::Wake,
}

impl IngestRules {
    /// Validates one message; `at` names it in errors (`messages[3].`).
    pub fn validate(
        &self,
        body: PublishBody,
        at: &str,
        header_key: Option<&str>,
        rules: &OrgRules,
    ) -> Result<NewMessage, ApiError> {
        let event_type: EventType =
            body.event_type
                .parse()
                .map_err(|e: marquee_core::names::NameError| {
                    ApiError::invalid_param(format!("{at}type"), e.to_string())
                })?;
        if body.channels.is_empty() || body.channels.len() > MAX_CHANNELS {
            return Err(ApiError::invalid_param(
                format!("{at}channels"),
                format!("channels must list 1 to {MAX_CHANNELS} channels"),
            ));
        }
        let channels: Vec<Channel> =
            crate::extract::parse_unique(&body.channels, &format!("{at}channels"), MAX_CHANNELS)?;
        if !body.data.get().starts_with('{') {
            return Err(ApiError::invalid_param(
                format!("{at}data"),
                "data must be a JSON object",
            ));
        }
        if let Err(v) = marquee_core::ijson::check(body.data.get(), MAX_DEPTH) {
            let (param, msg) = v.describe(&format!("{at}data"));
            return Err(ApiError::invalid_param(param, msg));
        }
        let occurred_at = match &body.occurred_at {
            Some(s) => Timestamp::parse_rfc3339(s)
                .map_err(|e| ApiError::invalid_param(format!("{at}occurred_at"), e.to_string()))?,
            None => Timestamp::now(),
        };
        let (mut dedup, mut project) = (None, None);
        let schema = rules.schema(event_type.as_str());
        let coalesce_rule = rules.coalesce(event_type.as_str());
        let derives = rules.has_derivation(event_type.as_str());
        let (mut coalesce, mut derived) = (None, None);
        if schema.is_some() || coalesce_rule.is_some() || derives {
            // Only typed (coalesced, read-model) messages pay for a parse
            // into a tree.
            let tree: serde_json::Value = serde_json::from_str(body.data.get())
                .map_err(|e| ApiError::invalid_param(format!("{at}data"), e.to_string()))?;
            if let Some(schema) = schema
                && let Err(v) = schema.validate(&tree)
            {
                return Err(ApiError::invalid_param(format!("{at}{}", v.param), v.message));
            }
            if let Some(def) = rules.def(event_type.as_str()) {
                (dedup, project) = type_rules(def, &tree)
                    .map_err(|v| ApiError::invalid_param(format!("{at}{}", v.param), v.message))?;
            }
            if let Some(rule) = coalesce_rule {
                coalesce = Some(crate::coalesce::key_of(rule, &tree, at)?);
            }
            if derives {
                derived = rules.derive(event_type.as_str(), &tree, occurred_at);
            }
        }
        // What a rule keys or keeps (dedup keys, entities, coalescing keys,
        // read models, inventory snapshots) is stored as text apart from the
        // message, and PostgreSQL text cannot hold NUL: refused on both
        // stores alike, before it can fail a group commit it shares.
        let keyed = dedup.is_some()
            || project.is_some()
            || coalesce.is_some()
            || derived.is_some()
            || event_type.as_str() == marquee_core::profile::eventory::SNAPSHOT_TYPE;
        if keyed && has_escaped_nul(body.data.get()) {
            return Err(ApiError::invalid_param(
                format!("{at}data"),
                "the data of a type with a dedup, project, coalesce or read-model rule may not contain NUL (\\u0000)",
            ));
        }
        let key = match (&body.idempotency_key, header_key) {
            (Some(k), Some(h)) if k != h => {
                return Err(ApiError::invalid_param(
                    format!("{at}idempotency_key"),
                    "the body's idempotency_key and the Idempotency-Key header differ",
                ));
            }
            (Some(k), _) => Some(k.as_str()),
            (None, h) => h,
        };
        let idempotency = match key {
            Some(k) => {
                check_idempotency_key(k, &format!("{at}idempotency_key"))?;
                Some(Idempotency {
                    key: k.to_owned(),
                    fingerprint: message::fingerprint(
                        event_type.as_str(),
                        &channels,
                        &body.data,
                        body.occurred_at.as_deref(),
                    ),
                })
            }
            None => None,
        };
        Ok(NewMessage {
            id: MessageId::generate(),
            event_type,
            channels,
            data: body.data,
            occurred_at,
            idempotency,
            dedup,
            project,
            coalesce,
            derived,
        })
    }
}

/// The catalog rules of a type applied to one payload: its dedup key and
/// its projection (stored and applied by the store in the publish commit).
fn type_rules(
    def: &marquee_core::profile::catalog::TypeDef,
    data: &serde_json::Value,
) -> Result<(Option<DedupKey>, Option<ProjectOp>), marquee_core::rules::RuleViolation> {
    let dedup = def
        .dedup
        .as_ref()
        .and_then(|p| marquee_core::rules::dedup_key(&def.name, p, def.dedup_window_ms, data));
    let project = match &def.project {
        Some(p) => Some(marquee_core::rules::project(p, data)?),
        None => None,
    };
    Ok((dedup, project))
}

/// Whether a JSON text has a `\u0000` escape (the only way JSON carries NUL).
fn has_escaped_nul(json: &str) -> bool {
    let b = json.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'u') && b.get(i + 2..i + 6) == Some(b"0000".as_slice()) {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

pub fn check_idempotency_key(k: &str, param: &str) -> Result<(), ApiError> {
    if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY_LEN || k.chars().any(char::is_control) {
        return Err(ApiError::invalid_param(
            param,
            format!("idempotency keys are 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes without control characters"),
        ));
    }
    Ok(())
}

/// The fingerprint of a whole batch, for a batch-level `Idempotency-Key`,
/// taken from the request as sent (before defaults are filled in).
pub fn batch_fingerprint(items: &[PublishBody]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"batch\0");
    for m in items {
        for part in [
            m.event_type.as_str(),
            &m.channels.join(" "),
            m.data.get(),
            m.occurred_at.as_deref().unwrap_or(""),
            m.idempotency_key.as_deref().unwrap_or(""),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::has_escaped_nul;

    #[test]
    fn finds_escaped_nul_but_not_an_escaped_backslash_before_u0000() {
        assert!(has_escaped_nul(r#"{"a":"x\u0000"}"#));
        assert!(has_escaped_nul(r#"{"\u0000":1}"#));
        assert!(!has_escaped_nul(r#"{"a":"x\\u0000"}"#));
        assert!(has_escaped_nul(r#"{"a":"\u00001"}"#));
        assert!(!has_escaped_nul(r#"{"a":"\u0001"}"#));
        assert!(!has_escaped_nul(r#"{"a":"\\"}"#));
    }
}
