//! A Rust client for marquee, modelled on async-nats: an options builder
//! ([`ClientOptions`]), connection-state [`Event`]s, a reconnect-delay
//! callback, errors as [`Error<Kind>`](Error).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use marquee_client::{ClientOptions, NewMessage, ListParams};
//! let client = ClientOptions::with_api_key("sk_live_…").connect("http://127.0.0.1:7400")?;
//! let m = client
//!     .publish(NewMessage::new("fan_checkin", serde_json::json!({"fan_id": "f1"})).channel("venue:x"))
//!     .await?;
//! let mut pages = client.messages(ListParams::default().channel("venue:x"));
//! while let Some(m) = pages.next().await { println!("{}", m?.id); }
//! let mut sub = client.subscribe([("venue:x", Some(m.cursor))]);
//! while let Some(frame) = sub.next().await { println!("{:?}", frame?); }
//! # Ok(()) }
//! ```
//!
//! Webhook verification ([`verify()`]) and local signing ([`sign`]) call
//! marquee-core's own wire formats: the same pure code the server signs with.

mod error;
mod operations;
mod rest;
mod stream;
mod tls;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

pub use error::{ApiError, ConnectErrorKind, Error, RequestErrorKind, StreamErrorKind, VerifyErrorKind};
pub use operations::{EndpointStats, Erasure, Recover, Replay, ReplayFrom};
pub use rest::{ListParams, Message, MessagePages, NewMessage, Page};
pub use stream::{StreamMessage, Subscriber};
pub use webhook::{message_from_frame, parse_secret, sign, verify};

pub type RequestError = Error<RequestErrorKind>;
pub type StreamError = Error<StreamErrorKind>;
pub type VerifyError = Error<VerifyErrorKind>;
pub type ConnectError = Error<ConnectErrorKind>;

/// What happens to a stream's connection, reported to
/// [`ClientOptions::event_callback`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The WebSocket is open and every channel is (re)subscribed.
    Connected,
    /// The connection ended; `close_code` is the server's (1001 shutdown,
    /// 4000 idle, 4008 slow consumer, …), `None` without a close frame.
    Disconnected { close_code: Option<u16> },
    /// Waiting `delay` before reconnect attempt `attempt` (1-based).
    Reconnecting { attempt: usize, delay: Duration },
    /// The server closed with 4008: this consumer fell behind; it resumes.
    SlowConsumer,
    /// A `{"event":"error"}` frame (`code`, `message`).
    ServerError { code: String, message: String },
}

type DelayFn = Arc<dyn Fn(usize) -> Duration + Send + Sync>;
type EventFn = Arc<dyn Fn(Event) + Send + Sync>;

/// Builds a [`Client`].
#[derive(Clone)]
pub struct ClientOptions {
    api_key: String,
    request_timeout: Duration,
    reconnect_delay: DelayFn,
    event_callback: Option<EventFn>,
    max_reconnects: Option<usize>,
    buffer: usize,
    /// Extra trusted roots (PEM), for servers with a private CA.
    ca_pem: Option<Vec<u8>>,
}

/// The default reconnect delay: 0 for the first attempt, then doubling from
/// 100 ms up to 8 s.
pub fn default_reconnect_delay(attempt: usize) -> Duration {
    if attempt <= 1 {
        Duration::ZERO
    } else {
        Duration::from_millis(100u64.saturating_mul(1 << (attempt - 2).min(7)))
    }
}

impl ClientOptions {
    pub fn with_api_key(key: impl Into<String>) -> Self {
        ClientOptions {
            api_key: key.into(),
            request_timeout: Duration::from_secs(30),
            reconnect_delay: Arc::new(default_reconnect_delay),
            event_callback: None,
            max_reconnects: None,
            buffer: 1024,
            ca_pem: None,
        }
    }

    /// Timeout of each REST request (default 30 s).
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// How long to wait before reconnect attempt `n` (1-based, reset by
    /// every successful connection).
    pub fn reconnect_delay_callback(mut self, f: impl Fn(usize) -> Duration + Send + Sync + 'static) -> Self {
        self.reconnect_delay = Arc::new(f);
        self
    }

    /// Called with each connection [`Event`] of a stream.
    pub fn event_callback(mut self, f: impl Fn(Event) + Send + Sync + 'static) -> Self {
        self.event_callback = Some(Arc::new(f));
        self
    }

    /// Consecutive failed reconnects after which a stream gives up
    /// (default: never).
    pub fn max_reconnects(mut self, n: Option<usize>) -> Self {
        self.max_reconnects = n;
        self
    }

    /// Frames buffered between the socket and [`Subscriber::next`] (default
    /// 1,024). A consumer slower than that applies back-pressure; the server
    /// then closes with 4008 and the stream resumes by cursor.
    pub fn buffer(mut self, frames: usize) -> Self {
        self.buffer = frames.max(1);
        self
    }

    /// Also trust the CA certificates in this PEM bundle (beside the
    /// public web roots), for an `https://` server whose certificate a
    /// private CA signed. Applies to REST and to `wss://` streams.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// A client for the server at `url` (`http://host:port`, or
    /// `https://host:port`: streams then use `wss://`). No request is made yet.
    pub fn connect(self, url: &str) -> Result<Client, ConnectError> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::new(
                ConnectErrorKind::InvalidUrl,
                format!("the server URL must start with http:// or https:// (got {url:?})"),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .user_agent(concat!("marquee-client/", env!("CARGO_PKG_VERSION")));
        let extra_roots = match &self.ca_pem {
            Some(pem) => tls::roots_from_pem(pem)?,
            None => Vec::new(),
        };
        for der in &extra_roots {
            let cert = reqwest::Certificate::from_der(der).map_err(|e| {
                Error::new(ConnectErrorKind::InvalidCa, "a CA certificate was refused").with_source(e)
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let wss = tls::stream_config(&extra_roots)?;
        let http = builder.build().map_err(|e| {
            Error::new(ConnectErrorKind::Build, "could not build the HTTP client").with_source(e)
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                base,
                http,
                wss,
                options: self,
            }),
        })
    }
}

/// A handle on one marquee server and API key; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    base: String,
    http: reqwest::Client,
    /// The TLS settings of `wss://` streams.
    wss: Arc<rustls::ClientConfig>,
    options: ClientOptions,
}

impl Client {
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Subscribes to channels, each with an optional resume cursor (`after`):
    /// messages committed after it arrive with no gap and no duplicate, also
    /// across reconnects (the client keeps each channel's last cursor).
    pub fn subscribe<C, S>(&self, channels: impl IntoIterator<Item = (C, Option<S>)>) -> Subscriber
    where
        C: Into<String>,
        S: Into<String>,
    {
        let channels = channels
            .into_iter()
            .map(|(c, a)| (c.into(), a.map(Into::into)))
            .collect();
        stream::start(self.clone(), channels)
    }
}
