//! Who may call the API: the bearer token (`[agent] token_file`) on `/api/v1` and `/-/reload`,
//! loopback callers only on `/-/reload` without one.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Api;
use crate::config::is_loopback;

/// Why a request is refused: the status and the message answered.
pub type Refusal = (StatusCode, &'static str);

/// Equal without an early exit on the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credentials of an `Authorization` header whose scheme is Bearer. Scheme names are
/// case-insensitive (RFC 7235, section 2.1), so `bearer` and `BEARER` are Bearer too; one or more
/// spaces separate the scheme from the token.
fn bearer_credentials(authorization: &str) -> Option<&str> {
    let (scheme, credentials) = authorization.trim().split_once(' ')?;
    let credentials = credentials.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

/// Whether `authorization` (the header, if sent) carries `token` as a bearer token; the refusal
/// (401) never repeats what was sent.
fn check_token(token: &str, authorization: Option<&str>) -> Result<(), Refusal> {
    match authorization.and_then(bearer_credentials) {
        Some(presented) if same_secret(presented.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err((StatusCode::UNAUTHORIZED, "wrong bearer token\n")),
        None => Err((
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send Authorization: Bearer <token> ([agent] token_file)\n",
        )),
    }
}

/// Whether a mutating request may go on: with a token, the caller must present it (401
/// otherwise); without one, the caller must be on loopback (403 otherwise).
pub fn authorize(
    token: Option<&str>,
    peer: IpAddr,
    authorization: Option<&str>,
) -> Result<(), Refusal> {
    match token {
        Some(token) => check_token(token, authorization),
        None if is_loopback(peer) => Ok(()),
        None => Err((
            StatusCode::FORBIDDEN,
            "mutating endpoints answer loopback callers only; set [agent] token_file to allow others with a bearer token\n",
        )),
    }
}

/// The answer to a refused request; a 401 names the scheme it wants (`WWW-Authenticate`).
pub fn refusal((code, message): Refusal) -> Response {
    let mut r = (code, message).into_response();
    if code == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// The layer of every `/api/v1` route: with a token configured, the request goes on only with it.
/// Runs before the handler, so nothing about the request (not even a bad query) is answered to a
/// caller without the token.
pub async fn require_token(State(api): State<Api>, request: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(refused) = check_token(token, authorization) {
            return refusal(refused);
        }
    }
    next.run(request).await
}

/// Reads `[agent] token_file`: the token is the file's content without surrounding whitespace.
/// The error names the setting and the file, never the content.
pub fn read_token(path: &std::path::Path) -> Result<Arc<str>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the API token file {} ([agent] token_file): {e}",
            path.display()
        )
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!(
            "the API token file {} ([agent] token_file) is empty",
            path.display()
        ));
    }
    Ok(Arc::from(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutating_calls_need_loopback_or_the_token() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let far: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(authorize(None, lo, None).is_ok());
        assert!(authorize(None, lo6, None).is_ok());
        assert!(authorize(None, mapped, None).is_ok());
        assert_eq!(
            authorize(None, far, None).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        // With a token, everyone needs it, loopback included.
        let t = Some("s3cret");
        assert!(authorize(t, far, Some("Bearer s3cret")).is_ok());
        for (peer, header) in [
            (far, None),
            (lo, None),
            (far, Some("Bearer wrong")),
            (far, Some("Bearer s3cre")),
            (far, Some("Basic s3cret")),
            (far, Some("Bearers3cret")),
            (far, Some("Bearer")),
            (far, Some("Bearer ")),
        ] {
            let (code, message) = authorize(t, peer, header).unwrap_err();
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{header:?}");
            assert!(!message.contains("s3cret"));
        }
    }

    #[test]
    fn the_scheme_name_is_case_insensitive() {
        for header in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER s3cret",
            "bEaReR s3cret",
            "Bearer   s3cret",
            " Bearer s3cret ",
        ] {
            assert_eq!(check_token("s3cret", Some(header)), Ok(()), "{header:?}");
        }
        assert_eq!(bearer_credentials("bearer a b"), Some("a b"));
        assert_eq!(bearer_credentials("Basic s3cret"), None);
        assert_eq!(bearer_credentials("Bearer"), None);
    }
}
