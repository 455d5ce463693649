//! Cross-site request forgery protection for the console: a synchronizer token plus a
//! cross-origin check (§5 of the console design), in one middleware on every `/console`
//! request that is not `GET` or `HEAD`.
//!
//! # Design
//!
//! - **The token** is 32 random bytes from the operating system's generator (through
//!   `rand`'s thread generator, a CSPRNG), written base64url without padding. Every form
//!   carries it in a hidden [`FIELD`] field; htmx sends it in the [`HEADER`] header (from
//!   `hx-headers` on `<body>`). The middleware compares what was sent with what the server
//!   expects in constant time (`subtle`).
//! - **Where the expected token lives.** Once signed in, in the server-side session: the
//!   session layer (next step) runs before this middleware and puts the session's token in
//!   the request's extensions as [`SessionToken`]; the session holds it (with staff id,
//!   epoch, sign-in time and language), so a session has one token for its life and a
//!   sign-out ends it. Before sign-in (the sign-in form: login CSRF), there is no session
//!   yet, so the token lives in a pre-session cookie, [`COOKIE`] (`__Host-`, `Secure`,
//!   `HttpOnly`, `SameSite=Strict`, `Path=/`, no lifetime: gone with the browser). It is
//!   random and signed by nothing: an attacker who cannot read or set the victim's cookies
//!   (the `__Host-` prefix refuses cookies set by a sibling domain or over plain HTTP)
//!   cannot know it. At sign-in the session is created with a fresh token (never the
//!   pre-session one) and the pre-session cookie is cleared.
//! - **Cross-origin check** (Go 1.25's `CrossOriginProtection`, the idea of the `tower-csrf`
//!   crate): a `Sec-Fetch-Site` other than `same-origin` or `none` is refused, and so is an
//!   `Origin` other than `HASHAR_PUBLIC_URL`'s. Browsers too old to send either still face
//!   the token. `Referrer-Policy: same-origin` keeps `Origin` real on POSTs.
//! - **Refused** requests get 403 with a page saying the form expired (in the request's
//!   language); the log says why, never the token.
//!
//! A form body is read whole (at most [`BODY_LIMIT`]) to find the field, and handed on to
//! the handler unchanged. A request without a form body (JSON, multipart) must send the
//! header.

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use subtle::ConstantTimeEq;

use super::Console;

/// The hidden form field.
pub const FIELD: &str = "csrf";
/// The header htmx sends (`hx-headers` on `<body>`).
pub const HEADER: &str = "x-csrf-token";
/// The pre-session cookie of the sign-in form.
pub const COOKIE: &str = "__Host-hashar-csrf";
/// Largest form body the middleware reads to find the token.
pub const BODY_LIMIT: usize = 64 * 1024;

const TOKEN_BYTES: usize = 32;

/// A CSRF token: 32 random bytes, base64url.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// A new random token.
    pub fn generate() -> Token {
        let bytes: [u8; TOKEN_BYTES] = rand::random();
        Token(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token as sent back by a browser: only one of the right form (43 base64url
    /// characters decoding to 32 bytes) is a token.
    pub fn parse(text: &str) -> Option<Token> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        (bytes.len() == TOKEN_BYTES).then(|| Token(text.to_owned()))
    }

    /// The text for a form field or header.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `sent` is this token, in time independent of where they differ.
    pub fn matches(&self, sent: &str) -> bool {
        self.0.as_bytes().ct_eq(sent.as_bytes()).into()
    }
}

/// The signed-in session's token, put in the request's extensions by the session layer.
#[derive(Debug, Clone)]
pub struct SessionToken(pub Token);

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// The token a page before sign-in puts in its forms: the pre-session cookie's, or a new
/// one with the `Set-Cookie` that keeps it.
pub fn pre_session(headers: &HeaderMap) -> (Token, Option<HeaderValue>) {
    if let Some(token) = cookie(headers, COOKIE).and_then(Token::parse) {
        return (token, None);
    }
    let token = Token::generate();
    let set = format!(
        "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict",
        token.as_str()
    );
    (token, HeaderValue::from_str(&set).ok())
}

/// The token this request must carry: its session's, else the pre-session cookie's.
fn expected(req: &Request) -> Option<Token> {
    if let Some(SessionToken(t)) = req.extensions().get::<SessionToken>() {
        return Some(t.clone());
    }
    cookie(req.headers(), COOKIE).and_then(Token::parse)
}

/// Why a request was refused (logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    CrossSite,
    ForeignOrigin,
    NoExpectedToken,
    NoToken,
    WrongToken,
    UnreadableBody,
}

/// The cross-origin check of a request's headers.
pub fn cross_origin(headers: &HeaderMap, public_origin: &str) -> Result<(), Refusal> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(Refusal::CrossSite);
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.as_bytes() != public_origin.as_bytes() {
            return Err(Refusal::ForeignOrigin);
        }
    }
    Ok(())
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

/// The middleware: lets `GET` and `HEAD` through, checks every other request.
pub async fn protect(State(console): State<Console>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    match check(&console, req).await {
        Ok(req) => next.run(req).await,
        Err((refusal, headers)) => {
            // The path and body may carry data: the log says why and what kind of body.
            let body = if is_form(&headers) { "form" } else { "other" };
            tracing::warn!(reason = ?refusal, body, "console: request refused (CSRF)");
            super::pages::csrf_refused(&console, &headers).into_response()
        }
    }
}

async fn check(console: &Console, req: Request) -> Result<Request, (Refusal, HeaderMap)> {
    let headers = req.headers().clone();
    let fail = |r: Refusal| (r, headers.clone());
    cross_origin(&headers, &console.origin.origin).map_err(fail)?;
    let Some(expected) = expected(&req) else {
        return Err(fail(Refusal::NoExpectedToken));
    };
    if let Some(sent) = headers.get(HEADER) {
        let sent = sent.to_str().unwrap_or("");
        return if expected.matches(sent) {
            Ok(req)
        } else {
            Err(fail(Refusal::WrongToken))
        };
    }
    if !is_form(&headers) {
        return Err(fail(Refusal::NoToken));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| fail(Refusal::UnreadableBody))?;
    let sent = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned());
    match sent {
        Some(sent) if expected.matches(&sent) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Some(_) => Err(fail(Refusal::WrongToken)),
        None => Err(fail(Refusal::NoToken)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_random_bytes_and_compare_exactly() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 43);
        assert_eq!(Token::parse(a.as_str()), Some(a.clone()));
        assert!(a.matches(a.as_str()));
        assert!(!a.matches(b.as_str()));
        assert!(!a.matches(&a.as_str()[..42]));
        assert!(!a.matches(""));
        assert_eq!(Token::parse("short"), None);
        assert_eq!(Token::parse(&"A".repeat(44)), None);
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn cross_origin_requests_are_refused() {
        let origin = "https://hashar.example.org";
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert_eq!(cross_origin(&with(&[]), origin), Ok(()));
        assert_eq!(
            cross_origin(
                &with(&[("sec-fetch-site", "same-origin"), ("origin", origin)]),
                origin
            ),
            Ok(())
        );
        assert_eq!(
            cross_origin(&with(&[("sec-fetch-site", "none")]), origin),
            Ok(())
        );
        for site in ["cross-site", "same-site"] {
            assert_eq!(
                cross_origin(&with(&[("sec-fetch-site", site)]), origin),
                Err(Refusal::CrossSite)
            );
        }
        for other in ["null", "https://evil.example", "http://hashar.example.org"] {
            assert_eq!(
                cross_origin(&with(&[("origin", other)]), origin),
                Err(Refusal::ForeignOrigin)
            );
        }
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-hashar-csrf=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("hashar-lang=ru"));
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "hashar-lang"), Some("ru"));
        assert_eq!(cookie(&h, "b"), None);
        let (token, set) = pre_session(&h);
        let set = set.expect("a new token is set: xyz is not one");
        let set = set.to_str().expect("ascii");
        assert!(
            set.starts_with(&format!("{COOKIE}={}", token.as_str())),
            "{set}"
        );
        for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(set.contains(attribute), "{set}");
        }
    }
}
