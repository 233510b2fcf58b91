//! The outermost `/api` and `/simulator/v1` layer: every error answers ONTAP's JSON envelope
//! (also the ones the framework makes: 405, 413, a path that is not UTF-8, a body that is not
//! JSON), over-long URIs and header sections are refused with one, and `Accept:
//! application/json` drops HAL `_links` except `next` (reference notes §6.3).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::ApiError;
use crate::sim::world::codes;

/// The longest request URI (path and query) answered, in bytes. Longer ones get a 414 envelope.
/// 8 KiB is the common server default (Apache's `LimitRequestLine`); the HTTP layer below
/// refuses URIs of 64 KiB and more by itself, with an empty 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The largest header section answered, in bytes (names, values and separators). Larger ones get
/// a 431 envelope. The HTTP layer below refuses heads of about 400 KiB, or more than 100 headers,
/// by itself, with an empty 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The largest error body from the framework that is read to become an envelope's message.
const MAX_ERROR_TEXT: usize = 4 * 1024;

/// See the module documentation.
pub async fn envelope(req: Request, next: Next) -> Response {
    let uri_bytes = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return ApiError::new(
            414,
            codes::INVALID,
            format!("The request URI is {uri_bytes} bytes; at most {MAX_URI_BYTES} are accepted."),
            "uri",
        )
        .into_response();
    }
    let header_bytes = headers_size(req.headers());
    if header_bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            431,
            codes::INVALID,
            format!(
                "The request headers are {header_bytes} bytes; at most {MAX_HEADER_BYTES} are accepted."
            ),
            "headers",
        )
        .into_response();
    }
    let plain_json = wants_plain_json(req.headers());
    let resp = next.run(req).await;
    let resp = if resp.status().as_u16() >= 400 && !is_json(resp.headers()) {
        as_envelope(resp).await
    } else {
        resp
    };
    if plain_json && is_json(resp.headers()) {
        without_links(resp).await
    } else {
        resp
    }
}

fn headers_size(headers: &HeaderMap) -> usize {
    headers.iter().fold(0usize, |sum, (name, value)| {
        // "name: value\r\n"
        sum.saturating_add(name.as_str().len())
            .saturating_add(value.len())
            .saturating_add(4)
    })
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn is_json(headers: &HeaderMap) -> bool {
    let ct = content_type(headers);
    ct.starts_with("application/json") || ct.starts_with("application/hal+json")
}

/// `Accept` names `application/json` and not `application/hal+json`.
fn wants_plain_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect::<Vec<_>>();
    accept.iter().any(|t| t == "application/json")
        && !accept.iter().any(|t| t == "application/hal+json")
}

/// The field a framework error is about, by status.
fn target_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        405 => "method",
        413 => "body",
        414 | 400 => "uri",
        431 => "headers",
        _ => "",
    }
}

/// A framework error (plain text or empty body) rewritten as ONTAP's envelope, status kept.
async fn as_envelope(resp: Response) -> Response {
    let status = resp.status();
    let text = match axum::body::to_bytes(resp.into_body(), MAX_ERROR_TEXT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_string()
    } else {
        text
    };
    // ONTAP's code 3 is "not supported" (reference notes §6.3); the rest are invalid input.
    let code = if status == StatusCode::METHOD_NOT_ALLOWED {
        3
    } else {
        codes::INVALID
    };
    ApiError::new(status.as_u16(), code, message, target_of(status)).into_response()
}

/// The same answer as `application/json`: every `_links` removed, except the collection's
/// `_links.next`.
async fn without_links(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        // The body failed on purpose (an injected dropped connection): fail it the same way.
        return aborted(parts);
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let next = value.get("_links").and_then(|l| l.get("next")).cloned();
    strip_links(&mut value);
    if let (Some(next), Some(top)) = (next, value.as_object_mut()) {
        top.insert("_links".into(), serde_json::json!({ "next": next }));
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&value).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

/// The answer's head with a body that fails at once, so the connection is aborted as the
/// original body would have aborted it.
fn aborted(parts: axum::http::response::Parts) -> Response {
    let stream = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "the answer's body failed",
        ))
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

fn strip_links(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("_links");
            map.values_mut().for_each(strip_links);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_links),
        _ => {}
    }
}
