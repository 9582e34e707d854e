//! The WebSocket stream (`GET /v1/stream`) with reconnect and resume.
//!
//! One background task owns the socket. It subscribes every channel with
//! `"after"` = the cursor of the last message it handed over on that channel,
//! so a reconnect (1001 shutdown, 4000 idle, 4008 slow consumer, a dropped
//! connection) continues with no gap and no duplicate. 4003 (revoked) and
//! refusals before the upgrade (401, 403) end the stream with an error.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::error::{ApiError, Error, StreamErrorKind};
use crate::{Client, Event, StreamError};

/// A message frame: `{"type","id","cursor","channel","payload","occurred_at"}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct StreamMessage {
    #[serde(rename = "type")]
    pub event_type: String,
    pub id: String,
    pub cursor: String,
    pub channel: String,
    pub payload: Value,
    pub occurred_at: String,
}

/// A live subscription; ends after an error that is not retried, or when
/// dropped (which closes the socket).
pub struct Subscriber {
    rx: mpsc::Receiver<Result<StreamMessage, StreamError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// The next message, or an error. `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<Result<StreamMessage, StreamError>> {
        self.rx.recv().await
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn start(client: Client, channels: Vec<(String, Option<String>)>) -> Subscriber {
    let (tx, rx) = mpsc::channel(client.inner.options.buffer);
    let task = tokio::spawn(run(client, channels, tx));
    Subscriber { rx, task }
}

enum ConnectFail {
    /// 401 / 403: the key cannot stream; retrying will not help.
    Refused(ApiError),
    Retry,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(client: &Client) -> Result<Ws, ConnectFail> {
    let base = &client.inner.base;
    let url = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}/v1/stream")
    } else {
        format!("ws://{}/v1/stream", base.trim_start_matches("http://"))
    };
    let mut req = url.into_client_request().map_err(|_| ConnectFail::Retry)?;
    let key = client.inner.options.api_key.parse().map_err(|_| {
        ConnectFail::Refused(ApiError {
            status: 0,
            code: "invalid_api_key".into(),
            message: "the API key is not a valid header value".into(),
            param: None,
        })
    })?;
    req.headers_mut().insert("x-api-key", key);
    match tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::connect_async_tls_with_config(
            req,
            None,
            false,
            Some(tokio_tungstenite::Connector::Rustls(client.inner.wss.clone())),
        ),
    )
    .await
    {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            let status = resp.status().as_u16();
            let body: Option<Value> = resp.body().as_ref().and_then(|b| serde_json::from_slice(b).ok());
            let api = ApiError {
                status,
                code: body
                    .as_ref()
                    .and_then(|b| b["error"]["code"].as_str())
                    .unwrap_or("http_error")
                    .to_owned(),
                message: body
                    .as_ref()
                    .and_then(|b| b["error"]["message"].as_str())
                    .unwrap_or("the stream was refused")
                    .to_owned(),
                param: None,
            };
            if status == 401 || status == 403 {
                Err(ConnectFail::Refused(api))
            } else {
                Err(ConnectFail::Retry)
            }
        }
        _ => Err(ConnectFail::Retry),
    }
}

async fn run(
    client: Client,
    mut channels: Vec<(String, Option<String>)>,
    tx: mpsc::Sender<Result<StreamMessage, StreamError>>,
) {
    let opts = &client.inner.options;
    let emit = |e: Event| {
        if let Some(f) = &opts.event_callback {
            f(e);
        }
    };
    let mut attempt = 0usize;
    loop {
        if attempt > 0 {
            if let Some(max) = opts.max_reconnects
                && attempt > max
            {
                let _ = tx
                    .send(Err(Error::new(
                        StreamErrorKind::ReconnectsExhausted,
                        format!("gave up after {max} reconnect attempts"),
                    )))
                    .await;
                return;
            }
            let delay = (opts.reconnect_delay)(attempt);
            emit(Event::Reconnecting { attempt, delay });
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = tx.closed() => return,
            }
        }
        let ws = match connect(&client).await {
            Ok(ws) => ws,
            Err(ConnectFail::Refused(api)) => {
                let msg = format!(
                    "the stream was refused: {} {}: {}",
                    api.status, api.code, api.message
                );
                let _ = tx
                    .send(Err(Error::new(StreamErrorKind::Refused, msg).with_api(api)))
                    .await;
                return;
            }
            Err(ConnectFail::Retry) => {
                attempt += 1;
                continue;
            }
        };
        let (mut sink, mut source) = ws.split();
        let mut ok = true;
        for (c, after) in &channels {
            let mut f = json!({"action": "subscribe", "channel": c});
            if let Some(a) = after {
                f["after"] = json!(a);
            }
            if sink.send(WsMessage::text(f.to_string())).await.is_err() {
                ok = false;
                break;
            }
        }
        if !ok {
            attempt += 1;
            continue;
        }
        emit(Event::Connected);
        let mut progressed = false;
        let mut ping = tokio::time::interval(Duration::from_secs(20));
        ping.tick().await;
        let close_code: Option<u16> = loop {
            let frame = tokio::select! {
                f = source.next() => f,
                _ = ping.tick() => {
                    let _ = sink.send(WsMessage::text(r#"{"action":"ping"}"#)).await;
                    continue;
                }
                _ = tx.closed() => {
                    let _ = sink.close().await;
                    return;
                }
            };
            match frame {
                Some(Ok(WsMessage::Text(t))) => {
                    let v: Value = match serde_json::from_str(t.as_str()) {
                        Ok(v) => v,
                        Err(_) => continue,
                    };
                    if v.get("type").is_some() {
                        let Ok(m) = serde_json::from_value::<StreamMessage>(v) else {
                            continue;
                        };
                        progressed = true;
                        if let Some(slot) = channels.iter_mut().find(|(c, _)| *c == m.channel) {
                            slot.1 = Some(m.cursor.clone());
                        }
                        if tx.send(Ok(m)).await.is_err() {
                            return;
                        }
                    } else {
                        match v["event"].as_str() {
                            Some("subscribed") => progressed = true,
                            Some("error") => {
                                let code = v["code"].as_str().unwrap_or("error").to_owned();
                                let message = v["message"].as_str().unwrap_or("").to_owned();
                                emit(Event::ServerError {
                                    code: code.clone(),
                                    message: message.clone(),
                                });
                                if code == "cursor_expired" {
                                    let ch = v["channel"].as_str().unwrap_or("").to_owned();
                                    // Resubscribing with that cursor cannot work: from now on.
                                    if let Some(slot) = channels.iter_mut().find(|(c, _)| *c == ch) {
                                        slot.1 = None;
                                    }
                                    let e = Error::new(
                                        StreamErrorKind::CursorExpired,
                                        format!("{ch}: {message}"),
                                    );
                                    if tx.send(Err(e)).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                Some(Ok(WsMessage::Close(f))) => break f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            }
        };
        emit(Event::Disconnected { close_code });
        match close_code {
            Some(4003) => {
                let _ = tx
                    .send(Err(Error::new(
                        StreamErrorKind::Revoked,
                        "the API key was revoked (close code 4003); not reconnecting",
                    )))
                    .await;
                return;
            }
            Some(4008) => emit(Event::SlowConsumer),
            _ => {}
        }
        attempt = if progressed { 1 } else { attempt + 1 };
    }
}
