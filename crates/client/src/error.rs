//! Errors as `Error<Kind>` (the async-nats shape): a small `Kind` enum to
//! match on, plus a human sentence and an optional source.

use std::fmt;

/// An error of some kind `K`: match on [`Error::kind`], print it for a reason.
pub struct Error<K> {
    kind: K,
    // Boxed: keeps `Result<T, Error<K>>` small.
    detail: Box<Detail>,
}

struct Detail {
    message: String,
    api: Option<ApiError>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The server's `{"error":{"code","message","param"}}` with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub param: Option<String>,
}

impl<K> Error<K> {
    pub fn new(kind: K, message: impl Into<String>) -> Self {
        Error {
            kind,
            detail: Box::new(Detail {
                message: message.into(),
                api: None,
                source: None,
            }),
        }
    }

    pub(crate) fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.detail.source = Some(Box::new(e));
        self
    }

    pub(crate) fn with_api(mut self, api: ApiError) -> Self {
        self.detail.api = Some(api);
        self
    }

    pub fn kind(&self) -> K
    where
        K: Copy,
    {
        self.kind
    }

    /// The server's error body, when the server answered one.
    pub fn api_error(&self) -> Option<&ApiError> {
        self.detail.api.as_ref()
    }
}

impl<K: fmt::Debug> fmt::Debug for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.detail.message)
            .field("api", &self.detail.api)
            .finish()
    }
}

impl<K> fmt::Display for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail.message)?;
        if let Some(s) = &self.detail.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl<K: fmt::Debug> std::error::Error for Error<K> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.detail
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why a REST call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestErrorKind {
    /// The server answered an error (see [`Error::api_error`]).
    Api,
    /// No answer: connection, TLS or timeout.
    Transport,
    /// The answer was not what marquee sends.
    Decode,
    /// The client refused the input before sending it.
    InvalidInput,
}

/// Why a stream ended or reported trouble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamErrorKind {
    /// The API key was revoked (close code 4003): not retried.
    Revoked,
    /// The server refused the connection before the upgrade (401, 403):
    /// not retried. See [`Error::api_error`].
    Refused,
    /// A resume position is older than the retention window
    /// (`cursor_expired`); the subscription stays, from now on.
    CursorExpired,
    /// The configured number of reconnects was used up.
    ReconnectsExhausted,
    /// An error frame from the server (`invalid_channel`, …).
    Server,
}

/// Why a captured webhook does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyErrorKind {
    UnknownFormat,
    BadSecret,
    MissingIdentifier,
    /// The signature or its headers are wrong (the message says which).
    Signature,
}

/// Why [`crate::ClientOptions::connect`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectErrorKind {
    InvalidUrl,
    Build,
    /// The CA bundle given to `ca_certificate_pem` holds no usable certificate.
    InvalidCa,
}
