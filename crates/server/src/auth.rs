//! Authentication: API keys for the public API, the admin token for
//! `/admin/v1`.
//!
//! A key is accepted from `x-api-key`, `apikey` (Eventory's upgrade header)
//! or `Authorization: Bearer`. Its shape is checked first, candidates are
//! found by the 4-character public prefix, and the peppered digest is compared
//! in constant time. The key is looked up on every request, so a revocation
//! takes effect on the very next one.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use marquee_core::Tier;
use marquee_core::apikey;
use marquee_core::ids::{KeyId, OrgId};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// The caller of a public API request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: KeyId,
    pub org_id: OrgId,
    pub tier: Tier,
    /// The key's own stream connection limit (`None`: its tier's default).
    pub max_stream_connections: Option<u32>,
}

tokio::task_local! {
    /// The key id a request authenticated with, for its log line
    /// (`api::log_request` sets the scope; [`authenticate`] fills it).
    static REQUEST_KEY: std::sync::Arc<std::sync::OnceLock<KeyId>>;
}

/// Runs `fut` (a request) and answers which key id it authenticated with.
pub async fn with_key_slot<F: std::future::Future>(fut: F) -> (F::Output, Option<KeyId>) {
    let slot = std::sync::Arc::new(std::sync::OnceLock::new());
    let out = REQUEST_KEY.scope(slot.clone(), fut).await;
    (out, slot.get().cloned())
}

const MISSING: &str = "Missing or invalid API key: send it as x-api-key or Authorization: Bearer.";

/// The key text from the headers, if any was sent.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    for name in ["x-api-key", "apikey"] {
        if let Some(v) = headers.get(name) {
            return v.to_str().ok().map(str::trim);
        }
    }
    let auth = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Verifies a presented key and applies the caller's rate limit.
pub async fn authenticate(state: &AppState, key: Option<&str>) -> Result<Caller, ApiError> {
    let key = key.ok_or(ApiError::InvalidApiKey(MISSING))?;
    let presented = apikey::parse(key).ok_or(ApiError::InvalidApiKey(MISSING))?;
    let digest = apikey::digest(&state.secrets.pepper, presented.plaintext);
    let candidates = state.store.keys_by_prefix(presented.public_prefix).await?;
    let mut found = None;
    for c in candidates {
        // Compare against every candidate so timing does not reveal which.
        if digest.ct_eq(&c.digest) {
            found = Some(c.record);
        }
    }
    let record = found.ok_or(ApiError::InvalidApiKey(MISSING))?;
    if record.revoked_at.is_some() {
        return Err(ApiError::InvalidApiKey("This API key has been revoked."));
    }
    state
        .limits
        .check(&record.id, record.tier)
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    let _ = REQUEST_KEY.try_with(|slot| slot.set(record.id.clone()));
    Ok(Caller {
        key_id: record.id,
        org_id: record.org_id,
        tier: record.tier,
        max_stream_connections: record.max_stream_connections,
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(state, presented_key(&parts.headers)).await
    }
}

/// Proof that the request carried the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.config.admin_token.as_deref() else {
            return Err(ApiError::Forbidden(
                "The admin API is disabled: start marquee with --admin-token (MARQUEE_ADMIN_TOKEN).".into(),
            ));
        };
        let given = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .unwrap_or("");
        // Compare digests so neither the content nor the length of the
        // token leaks through timing.
        let (given, expected) = (
            Sha256::digest(given.as_bytes()),
            Sha256::digest(expected.as_bytes()),
        );
        if bool::from(given.as_slice().ct_eq(expected.as_slice())) {
            Ok(Admin)
        } else {
            Err(ApiError::InvalidApiKey(
                "Missing or invalid admin token: send Authorization: Bearer <admin token>.",
            ))
        }
    }
}
