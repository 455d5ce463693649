//! Security headers on every console response (§5 of the console design).
//!
//! - `Content-Security-Policy`: [`CSP`] — scripts, styles, images and requests from this
//!   origin only; no inline script or style, no `on*=` or `style=` attributes, no frames.
//!   htmx 2.0.11 runs under it with `allowEval: false` and its indicator styles in our CSS.
//! - `X-Content-Type-Options: nosniff`.
//! - `Referrer-Policy: same-origin` (with `no-referrer` browsers send `Origin: null` on a
//!   POST, which the CSRF check refuses).
//! - `Cache-Control: no-store` on pages (Back after sign-out shows nothing); the hashed
//!   static files keep their own year-long `immutable`.
//! - `Strict-Transport-Security` when `HASHAR_PUBLIC_URL` is https.

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue},
    middleware::Next,
    response::Response,
};

use crate::config::Config;

/// The console's Content-Security-Policy, exactly.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// HSTS for an https deployment: a year, subdomains untouched (the programme may not own
/// its parent domain).
pub const HSTS: &str = "max-age=31536000";

/// What the console needs to know of `HASHAR_PUBLIC_URL`, parsed once when the router is
/// built (the setting itself is validated at start with the others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicOrigin {
    /// `scheme://host[:port]`, as browsers send it in `Origin`.
    pub origin: String,
    /// The deployment is served over https: HSTS, and `Secure` on every cookie.
    pub https: bool,
}

impl PublicOrigin {
    pub fn from_config(config: &Config) -> PublicOrigin {
        PublicOrigin::parse(&config.public_url)
    }

    /// The origin of a URL; one that does not parse (which `serve` refuses at start) gives
    /// an origin no browser sends, so every cross-checked POST is refused.
    pub fn parse(public_url: &str) -> PublicOrigin {
        match url::Url::parse(public_url) {
            Ok(u) => PublicOrigin {
                origin: u.origin().ascii_serialization(),
                https: u.scheme() == "https",
            },
            Err(_) => PublicOrigin {
                origin: "invalid:".to_owned(),
                https: false,
            },
        }
    }
}

/// The middleware adding the headers above to every console response.
pub async fn secure(
    State(origin): State<std::sync::Arc<PublicOrigin>>,
    req: Request,
    next: Next,
) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if origin.https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_origin_is_scheme_host_and_port() {
        assert_eq!(
            PublicOrigin::parse("https://hashar.example.org/some/path"),
            PublicOrigin {
                origin: "https://hashar.example.org".into(),
                https: true
            }
        );
        assert_eq!(
            PublicOrigin::parse("http://127.0.0.1:8080"),
            PublicOrigin {
                origin: "http://127.0.0.1:8080".into(),
                https: false
            }
        );
        assert!(!PublicOrigin::parse("not a url").https);
    }
}
