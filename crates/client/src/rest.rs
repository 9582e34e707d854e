//! The REST half: publish, batch, get, list by cursor.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, Error, RequestErrorKind};
use crate::{Client, RequestError};

/// A stored message as the API answers it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Message {
    pub id: String,
    pub cursor: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub channels: Vec<String>,
    pub data: Value,
    pub occurred_at: String,
    pub received_at: String,
}

/// A message to publish.
#[derive(Debug, Clone, Serialize)]
pub struct NewMessage {
    #[serde(rename = "type")]
    pub event_type: String,
    pub channels: Vec<String>,
    pub data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl NewMessage {
    pub fn new(event_type: impl Into<String>, data: Value) -> Self {
        NewMessage {
            event_type: event_type.into(),
            channels: Vec::new(),
            data,
            occurred_at: None,
            idempotency_key: None,
        }
    }

    pub fn channel(mut self, c: impl Into<String>) -> Self {
        self.channels.push(c.into());
        self
    }

    pub fn occurred_at(mut self, rfc3339: impl Into<String>) -> Self {
        self.occurred_at = Some(rfc3339.into());
        self
    }

    pub fn idempotency_key(mut self, k: impl Into<String>) -> Self {
        self.idempotency_key = Some(k.into());
        self
    }
}

/// Query of `GET /v1/messages`.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub after: Option<String>,
    pub channel: Option<String>,
    pub event_type: Option<String>,
    pub limit: Option<u32>,
}

impl ListParams {
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.after = Some(cursor.into());
        self
    }
    pub fn channel(mut self, c: impl Into<String>) -> Self {
        self.channel = Some(c.into());
        self
    }
    pub fn event_type(mut self, t: impl Into<String>) -> Self {
        self.event_type = Some(t.into());
        self
    }
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
}

/// One page of the log.
#[derive(Debug, Clone, Deserialize)]
pub struct Page {
    pub data: Vec<Message>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(Deserialize)]
struct ErrorInner {
    code: String,
    message: String,
    param: Option<String>,
}

impl Client {
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.inner
            .http
            .request(method, format!("{}{}", self.inner.base, path))
            .header("x-api-key", &self.inner.options.api_key)
    }

    pub(crate) async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, RequestError> {
        let r = req
            .send()
            .await
            .map_err(|e| Error::new(RequestErrorKind::Transport, "marquee did not answer").with_source(e))?;
        let status = r.status();
        let bytes = r.bytes().await.map_err(|e| {
            Error::new(RequestErrorKind::Transport, "reading marquee's answer failed").with_source(e)
        })?;
        if !status.is_success() {
            let api = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => ApiError {
                    status: status.as_u16(),
                    code: b.error.code,
                    message: b.error.message,
                    param: b.error.param,
                },
                Err(_) => ApiError {
                    status: status.as_u16(),
                    code: "http_error".into(),
                    message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                    param: None,
                },
            };
            let msg = format!("{} {}: {}", api.status, api.code, api.message);
            return Err(Error::new(RequestErrorKind::Api, msg).with_api(api));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(RequestErrorKind::Decode, "unexpected answer from marquee").with_source(e)
        })
    }

    /// `POST /v1/messages`: answers once the message is durably committed.
    pub async fn publish(&self, m: NewMessage) -> Result<Message, RequestError> {
        if m.channels.is_empty() {
            return Err(Error::new(
                RequestErrorKind::InvalidInput,
                "a message needs at least one channel",
            ));
        }
        self.send(self.request(reqwest::Method::POST, "/v1/messages").json(&m))
            .await
    }

    /// `POST /v1/messages/batch`: all or nothing, one commit, in order.
    pub async fn publish_batch(&self, messages: Vec<NewMessage>) -> Result<Vec<Message>, RequestError> {
        let body = serde_json::json!({ "messages": messages });
        let page: Page = self
            .send(
                self.request(reqwest::Method::POST, "/v1/messages/batch")
                    .json(&body),
            )
            .await?;
        Ok(page.data)
    }

    /// `GET /v1/messages/{id}`.
    pub async fn get_message(&self, id: &str) -> Result<Message, RequestError> {
        self.send(self.request(reqwest::Method::GET, &format!("/v1/messages/{id}")))
            .await
    }

    /// One page of `GET /v1/messages` (commit order).
    pub async fn list(&self, p: &ListParams) -> Result<Page, RequestError> {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(a) = &p.after {
            q.push(("after", a.clone()));
        }
        if let Some(c) = &p.channel {
            q.push(("channel", c.clone()));
        }
        if let Some(t) = &p.event_type {
            q.push(("type", t.clone()));
        }
        if let Some(l) = p.limit {
            q.push(("limit", l.to_string()));
        }
        self.send(self.request(reqwest::Method::GET, "/v1/messages").query(&q))
            .await
    }

    /// Every message after `p.after`, page by page following `next_cursor`,
    /// until a page says `has_more: false`. [`MessagePages::cursor`] is where
    /// to continue polling later.
    pub fn messages(&self, p: ListParams) -> MessagePages {
        MessagePages {
            client: self.clone(),
            params: p,
            buffered: std::collections::VecDeque::new(),
            done: false,
        }
    }
}

/// Iterates the log by cursor (see [`Client::messages`]).
pub struct MessagePages {
    client: Client,
    params: ListParams,
    buffered: std::collections::VecDeque<Message>,
    done: bool,
}

impl MessagePages {
    pub async fn next(&mut self) -> Option<Result<Message, RequestError>> {
        loop {
            if let Some(m) = self.buffered.pop_front() {
                return Some(Ok(m));
            }
            if self.done {
                return None;
            }
            match self.client.list(&self.params).await {
                Ok(page) => {
                    self.done = !page.has_more;
                    if page.next_cursor.is_some() {
                        self.params.after = page.next_cursor;
                    }
                    self.buffered.extend(page.data);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// The position after the last page fetched: poll again from here.
    pub fn cursor(&self) -> Option<&str> {
        self.params.after.as_deref()
    }
}
