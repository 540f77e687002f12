//! The token every request must carry when the page is served beyond loopback: in a header
//! (`Authorization: Bearer …` or `X-Scenedex-Token`), or in a cookie that `?token=…` sets once,
//! since `<video>` and `<img>` send no headers of their own.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::App;

const COOKIE: &str = "scenedex_token";

/// A secret compared in constant time; never printed.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// None for an empty token: an empty secret protects nothing.
    pub fn new(text: &str) -> Option<Token> {
        (!text.is_empty()).then(|| Token(text.to_string()))
    }

    /// Digests first, so that neither the contents nor the length of the token leak through
    /// the time a comparison takes.
    fn matches(&self, offered: &str) -> bool {
        let mine = Sha256::digest(self.0.as_bytes());
        let theirs = Sha256::digest(offered.as_bytes());
        mine.ct_eq(&theirs).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

pub async fn require(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Some(token) = &app.token else {
        return next.run(request).await;
    };
    if offered(request.headers()).is_some_and(|t| token.matches(t)) {
        return next.run(request).await;
    }
    let query = request.uri().query().unwrap_or("");
    let from_query = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    match from_query {
        Some(t) if token.matches(&t) => with_cookie(request.uri().path(), &t),
        _ => (
            StatusCode::UNAUTHORIZED,
            "401: this page needs its token: open it once as /?token=YOUR_TOKEN\n",
        )
            .into_response(),
    }
}

fn offered(headers: &HeaderMap) -> Option<&str> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(bearer) = text(header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer ")) {
        return Some(bearer);
    }
    if let Some(t) = text(header::HeaderName::from_static("x-scenedex-token")) {
        return Some(t);
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Sends the browser back to the same page without the token in its address bar or history,
/// holding it in a cookie that scripts cannot read and other sites cannot send.
fn with_cookie(path: &str, token: &str) -> Response {
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let (Ok(cookie), Ok(location)) =
        (HeaderValue::from_str(&cookie), HeaderValue::from_str(path))
    {
        headers.insert(header::SET_COOKIE, cookie);
        headers.insert(header::LOCATION, location);
        return response;
    }
    (
        StatusCode::BAD_REQUEST,
        "400: the token holds characters a cookie cannot\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_only_itself_and_never_shows() {
        let token = Token::new("s3cret").unwrap();
        assert!(token.matches("s3cret"));
        assert!(!token.matches("s3cre"));
        assert!(!token.matches(""));
        assert!(Token::new("").is_none());
        assert_eq!(format!("{token:?}"), "Token(…)");
    }

    #[test]
    fn the_token_is_read_from_a_header_or_its_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; scenedex_token=t0k; b=2"),
        );
        assert_eq!(offered(&headers), Some("t0k"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer other"),
        );
        assert_eq!(offered(&headers), Some("other"));
        assert_eq!(offered(&HeaderMap::new()), None);
    }
}
