//! Long operations: endpoint replay and recover, erasures, and the
//! endpoint stats that show a replay's deliveries draining.

use serde::{Deserialize, Serialize};

use crate::error::{Error, RequestErrorKind};
use crate::{Client, RequestError};

/// Where a replay starts (`POST /v1/endpoints/{id}/replay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayFrom {
    /// RFC 3339: every matching message received from then on.
    Since(String),
    /// A cursor: every matching message after it.
    After(String),
}

/// One answer of `POST /v1/endpoints/{id}/replay`. The server does a
/// bounded amount of work per request: with `has_more`, continue from
/// `next_cursor` ([`Client::replay_all`] does).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Replay {
    pub endpoint_id: String,
    pub queued: u64,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

/// The answer of `POST /v1/endpoints/{id}/recover`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Recover {
    pub endpoint_id: String,
    pub queued: u64,
}

/// An erasure (`POST /v1/erasures`, `GET /v1/erasures/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Erasure {
    pub id: String,
    /// `running` until `completed`.
    pub status: String,
    pub channel: String,
    pub within: Option<String>,
    pub messages_erased: u64,
    /// Counted when the erasure was accepted.
    pub messages_total: u64,
    pub created_at: String,
    pub completed_at: Option<String>,
}

impl Erasure {
    pub fn is_completed(&self) -> bool {
        self.status == "completed"
    }
}

/// `GET /v1/endpoints/{id}/stats`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct EndpointStats {
    pub endpoint_id: String,
    pub enabled: bool,
    pub delivered: u64,
    pub failed: u64,
    /// Deliveries not yet done, `retrying` included.
    pub pending: u64,
    /// Pending deliveries that failed at least once.
    pub retrying: u64,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    pub attempts_last_hour: u64,
    pub success_rate_last_hour: Option<f64>,
}

/// A path segment the client refuses to send (an id with `/`, `?`, …).
fn id_segment(what: &str, id: &str) -> Result<(), RequestError> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::new(
            RequestErrorKind::InvalidInput,
            format!("{what} {id:?} is not an id (letters, digits, '_' or '-')"),
        ));
    }
    Ok(())
}

impl Client {
    /// One request of `POST /v1/endpoints/{id}/replay`.
    pub async fn replay(&self, endpoint: &str, from: &ReplayFrom) -> Result<Replay, RequestError> {
        id_segment("endpoint", endpoint)?;
        let body = match from {
            ReplayFrom::Since(s) => serde_json::json!({ "since": s }),
            ReplayFrom::After(a) => serde_json::json!({ "after": a }),
        };
        self.send(
            self.request(reqwest::Method::POST, &format!("/v1/endpoints/{endpoint}/replay"))
                .json(&body),
        )
        .await
    }

    /// A whole replay: requests until one answers `has_more: false`,
    /// calling `progress` with each answer and the total queued so far.
    /// Answers the total.
    pub async fn replay_all(
        &self,
        endpoint: &str,
        from: ReplayFrom,
        mut progress: impl FnMut(&Replay, u64),
    ) -> Result<u64, RequestError> {
        let mut from = from;
        let mut total = 0u64;
        loop {
            let r = self.replay(endpoint, &from).await?;
            total = total.saturating_add(r.queued);
            progress(&r, total);
            match (&r.has_more, &r.next_cursor) {
                (true, Some(c)) if from == ReplayFrom::After(c.clone()) => {
                    // Never loop on a server that does not move on.
                    return Err(Error::new(
                        RequestErrorKind::Decode,
                        format!("the replay did not advance past cursor {c}"),
                    ));
                }
                (true, Some(c)) => from = ReplayFrom::After(c.clone()),
                (true, None) => {
                    return Err(Error::new(
                        RequestErrorKind::Decode,
                        "the replay answered has_more without a next_cursor",
                    ));
                }
                (false, _) => return Ok(total),
            }
        }
    }

    /// `POST /v1/endpoints/{id}/recover`: failed deliveries of messages
    /// received in `[since, until)` (RFC 3339; `until` default now) queued again.
    pub async fn recover(
        &self,
        endpoint: &str,
        since: &str,
        until: Option<&str>,
    ) -> Result<Recover, RequestError> {
        id_segment("endpoint", endpoint)?;
        let mut body = serde_json::json!({ "since": since });
        if let Some(u) = until {
            body["until"] = u.into();
        }
        self.send(
            self.request(
                reqwest::Method::POST,
                &format!("/v1/endpoints/{endpoint}/recover"),
            )
            .json(&body),
        )
        .await
    }

    /// `GET /v1/endpoints/{id}/stats`.
    pub async fn endpoint_stats(&self, endpoint: &str) -> Result<EndpointStats, RequestError> {
        id_segment("endpoint", endpoint)?;
        self.send(self.request(reqwest::Method::GET, &format!("/v1/endpoints/{endpoint}/stats")))
            .await
    }

    /// `POST /v1/erasures`: accepted at once (`status` `running`), worked
    /// through in the background; follow it with [`Client::erasure`].
    pub async fn create_erasure(&self, channel: &str, within: Option<&str>) -> Result<Erasure, RequestError> {
        let mut body = serde_json::json!({ "channel": channel });
        if let Some(w) = within {
            body["within"] = w.into();
        }
        self.send(self.request(reqwest::Method::POST, "/v1/erasures").json(&body))
            .await
    }

    /// `GET /v1/erasures/{id}`: its progress.
    pub async fn erasure(&self, id: &str) -> Result<Erasure, RequestError> {
        id_segment("erasure", id)?;
        self.send(self.request(reqwest::Method::GET, &format!("/v1/erasures/{id}")))
            .await
    }
}
