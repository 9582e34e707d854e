//! Request extractors that answer in the error envelope: JSON bodies (with the
//! body-size limit mapped to 413) and query strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// How long a client may take to send a request body (at most the body
/// limit, 256 KiB by default): a client trickling its body cannot hold a
/// connection slot for longer.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A request body read within [`BODY_READ_TIMEOUT`] and the body limit;
/// errors in the envelope (413 when too large).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let read = tokio::time::timeout(BODY_READ_TIMEOUT, Bytes::from_request(req, state))
            .await
            .map_err(|_| {
                ApiError::invalid(format!(
                    "The request body did not arrive within {} s.",
                    BODY_READ_TIMEOUT.as_secs()
                ))
            })?;
        read.map(RawBody).map_err(|rej| {
            if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("The request body is larger than this server accepts.".into())
            } else {
                ApiError::invalid("Could not read the request body.")
            }
        })
    }
}

/// A JSON request body parsed with serde; errors become `invalid_request`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::invalid(
            "The request body is empty; expected a JSON object.",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // The path of the offending field (`messages[3].type`), when the
        // document parsed but a value had the wrong shape.
        let path = e.path().to_string();
        let e = e.into_inner();
        json_error(
            &e,
            (path != "." && e.classify() == serde_json::error::Category::Data).then_some(path),
        )
    })?;
    de.end().map_err(|e| json_error(&e, None))?;
    Ok(value)
}

fn json_error(e: &serde_json::Error, param: Option<String>) -> ApiError {
    let what = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "Malformed JSON",
        _ => "Invalid request body",
    };
    let message = format!("{what}: {e}");
    match param {
        Some(p) => ApiError::invalid_param(p, message),
        None => ApiError::invalid(message),
    }
}

/// A query string parsed into a struct; errors become `invalid_request`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(QueryParams)
            .map_err(|e| ApiError::invalid(format!("Invalid query string: {e}")))
    }
}

/// Parses a list of names (`types`, `channels`), at most `max` of them,
/// dropping repeats; an error names the item (`channels[2]`).
pub fn parse_unique<T>(items: &[String], param: &str, max: usize) -> Result<Vec<T>, ApiError>
where
    T: std::str::FromStr + PartialEq,
    T::Err: std::fmt::Display,
{
    if items.len() > max {
        return Err(ApiError::invalid_param(param, format!("at most {max} {param}")));
    }
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let v: T = item
            .parse()
            .map_err(|e: T::Err| ApiError::invalid_param(format!("{param}[{i}]"), e.to_string()))?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}
