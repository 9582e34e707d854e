//! JSON rendering of API resources, written straight to bytes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use marquee_core::Cursor;
use marquee_core::message::{StoredMessage, write_native_json};

/// A pre-rendered JSON response.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn message(m: &StoredMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + m.data.get().len());
    write_native_json(&mut out, m);
    out
}

/// `{"object":"list","data":[…],"has_more":…,"next_cursor":…}`.
pub fn message_list(messages: &[StoredMessage], has_more: bool, next_cursor: Option<Cursor>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + messages.len() * 320);
    out.extend_from_slice(br#"{"object":"list","data":["#);
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_native_json(&mut out, m);
    }
    out.extend_from_slice(br#"],"has_more":"#);
    out.extend_from_slice(if has_more { b"true" } else { b"false" });
    out.extend_from_slice(br#","next_cursor":"#);
    match next_cursor {
        Some(c) => {
            out.push(b'"');
            out.extend_from_slice(c.encode().as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    out
}

/// A coalesced publish's answer: `{"object":"pending_message",…}` with the
/// id the message will have and when its window closes (`due_at`).
pub fn pending_message(m: &StoredMessage) -> serde_json::Value {
    serde_json::json!({
        "object": "pending_message",
        "id": m.id.as_str(),
        "type": m.event_type.as_str(),
        "channels": m.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "data": &m.data,
        "occurred_at": m.occurred_at.to_rfc3339(),
        "due_at": m.received_at.to_rfc3339(),
    })
}

/// A publish answer item: the committed message, or a coalesced pending one.
pub fn published(out: &mut Vec<u8>, m: &StoredMessage) {
    if marquee_store::coalesce::is_pending(m) {
        let _ = serde_json::to_writer(&mut *out, &pending_message(m));
    } else {
        write_native_json(out, m);
    }
}

/// The list of a batch publish's answers (see [`published`]).
pub fn published_list(messages: &[StoredMessage]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + messages.len() * 320);
    out.extend_from_slice(br#"{"object":"list","data":["#);
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        published(&mut out, m);
    }
    out.extend_from_slice(br#"],"has_more":false,"next_cursor":null}"#);
    out
}
