//! The backend-independent part of a publish: deciding, before the first
//! write, what happens to each message of a request (insert it, answer with
//! the message stored under its idempotency key, or repeat an earlier message
//! of the same request). Deciding everything first is what lets a backend
//! run the publish without a savepoint.

use marquee_core::message::{NewMessage, StoredMessage};

use crate::{Result, StoreError};

/// What the publish does with one message.
pub enum Plan {
    Insert,
    /// Answer with the message already stored under this idempotency key.
    Replay(StoredMessage),
    /// Same idempotency key as message `.0` of this request.
    SameAs(usize),
    /// A dedup duplicate of this stored message ([`crate::rules`]).
    Duplicate(StoredMessage),
    /// Same dedup key as message `.0` of this request.
    DuplicateOf(usize),
}

impl Plan {
    pub fn deduplicated(&self) -> bool {
        matches!(self, Plan::Duplicate(_) | Plan::DuplicateOf(_))
    }
}

/// For each message, the earlier message of the request that used the same
/// idempotency key; a conflict when the two differ.
pub fn repeated_keys(messages: &[NewMessage]) -> Result<Vec<Option<usize>>> {
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let Some(idem) = &m.idempotency else {
            out.push(None);
            continue;
        };
        let earlier = messages[..i]
            .iter()
            .position(|p| p.idempotency.as_ref().is_some_and(|k| k.key == idem.key));
        if let Some(j) = earlier
            && messages[j].idempotency.as_ref().map(|k| k.fingerprint) != Some(idem.fingerprint)
        {
            return Err(StoreError::Conflict(
                "one idempotency key is used for two different messages".into(),
            ));
        }
        out.push(earlier);
    }
    Ok(out)
}

/// True when no message of a non-empty request is inserted.
pub fn all_replayed(plans: &[Plan]) -> bool {
    !plans.is_empty()
        && plans
            .iter()
            .all(|p| matches!(p, Plan::Replay(_) | Plan::SameAs(_)))
}
