//! The console's foundation through the real router (no browser): redirects, the sign-in
//! page in each language, security headers, static files with their caching and
//! compression, and the CSRF middleware's refusals.

mod common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    response::Response,
};
use http_body_util::BodyExt;
use tower::ServiceExt;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The router over a pool that never connects: these pages read no data.
async fn app_with(config: hashar::config::Config) -> axum::Router {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://postgres@127.0.0.1:5432/never_used")
        .expect("a lazy pool");
    common::app_with(pool, config).await.router
}

async fn app() -> axum::Router {
    app_with(common::test_config()).await
}

async fn send(router: &axum::Router, req: Request<Body>) -> (Response, String) {
    let resp = router.clone().oneshot(req).await.expect("an answer");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (Response::from_parts(parts, Body::empty()), text)
}

async fn get(router: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> (Response, String) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(router, req.body(Body::empty()).expect("request")).await
}

fn header_of<'a>(resp: &'a Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn set_cookies(resp: &Response) -> Vec<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// The pre-session cookie (`name=value`) and the token in the page's hidden field.
async fn login_form(router: &axum::Router) -> (String, String) {
    let (resp, body) = get(router, "/console/login", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = set_cookies(&resp)
        .into_iter()
        .find(|c| c.starts_with("__Host-hashar-csrf="))
        .expect("a pre-session CSRF cookie");
    let cookie = cookie.split(';').next().expect("name=value").to_owned();
    let token = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the hidden csrf field")
        .to_owned();
    assert_eq!(cookie, format!("__Host-hashar-csrf={token}"));
    (cookie, token)
}

async fn post(
    router: &axum::Router,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (Response, String) {
    let mut req =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(
        router,
        req.body(Body::from(body.to_owned())).expect("request"),
    )
    .await
}

#[tokio::test]
async fn the_console_root_sends_to_the_sign_in_page() {
    let router = app().await;
    let (resp, _) = get(&router, "/console", &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&resp, "location"), "/console/login");
    assert_eq!(header_of(&resp, "content-security-policy"), CSP);
}

#[tokio::test]
async fn every_console_response_carries_the_security_headers() {
    let router = app().await;
    for uri in ["/console", "/console/login", "/console/static/nothing.css"] {
        let (resp, _) = get(&router, uri, &[]).await;
        assert_eq!(header_of(&resp, "content-security-policy"), CSP, "{uri}");
        assert_eq!(
            header_of(&resp, "x-content-type-options"),
            "nosniff",
            "{uri}"
        );
        assert_eq!(header_of(&resp, "referrer-policy"), "same-origin", "{uri}");
        assert_eq!(header_of(&resp, "cache-control"), "no-store", "{uri}");
        // the default public URL is http: no HSTS
        assert_eq!(header_of(&resp, "strict-transport-security"), "", "{uri}");
    }
    // not on the rest of the service
    let (resp, _) = get(&router, "/healthz", &[]).await;
    assert_eq!(header_of(&resp, "content-security-policy"), "");

    let mut config = common::test_config();
    config.public_url = "https://hashar.example.org".into();
    let router = app_with(config).await;
    let (resp, _) = get(&router, "/console/login", &[]).await;
    assert_eq!(
        header_of(&resp, "strict-transport-security"),
        "max-age=31536000"
    );
}

#[tokio::test]
async fn the_sign_in_page_speaks_the_chosen_language() {
    let router = app().await;
    // the default (tests: Tajik)
    let (resp, body) = get(&router, "/console/login", &[]).await;
    assert_eq!(header_of(&resp, "content-type"), "text/html; charset=utf-8");
    assert!(body.contains("<html lang=\"tg\">"), "{body}");
    assert!(body.contains("<h1>Ворид шудан</h1>"), "{body}");
    // Accept-Language
    let (_, body) = get(
        &router,
        "/console/login",
        &[("accept-language", "ru-RU,ru;q=0.9,en;q=0.5")],
    )
    .await;
    assert!(body.contains("<html lang=\"ru\">"), "{body}");
    assert!(body.contains("<h1>Вход</h1>"), "{body}");
    assert!(
        body.contains("<label for=\"phone\">Номер телефона</label>"),
        "{body}"
    );
    // ?lang= wins and is remembered in a cookie
    let (resp, body) = get(
        &router,
        "/console/login?lang=en",
        &[("accept-language", "ru")],
    )
    .await;
    assert!(body.contains("<html lang=\"en\">"), "{body}");
    assert!(body.contains("<h1>Sign in</h1>"), "{body}");
    let lang = set_cookies(&resp)
        .into_iter()
        .find(|c| c.starts_with("hashar-lang="))
        .expect("the language is remembered");
    assert!(lang.starts_with("hashar-lang=en;"), "{lang}");
    assert!(
        lang.contains("Path=/console") && lang.contains("HttpOnly"),
        "{lang}"
    );
    // the cookie then beats Accept-Language
    let (_, body) = get(
        &router,
        "/console/login",
        &[("cookie", "hashar-lang=en"), ("accept-language", "ru")],
    )
    .await;
    assert!(body.contains("<html lang=\"en\">"), "{body}");
    // language links lead to the same page in each language, in that language's own name
    assert!(body.contains("href=\"/console/login?lang=tg\""), "{body}");
    assert!(body.contains(">Тоҷикӣ</a>"), "{body}");
    assert!(body.contains("href=\"/console/login?lang=ru\""), "{body}");
    assert!(body.contains("aria-current=\"true\">English</a>"), "{body}");
    // an unknown ?lang= is ignored and sets nothing
    let (resp, body) = get(
        &router,
        "/console/login?lang=de",
        &[("accept-language", "ru")],
    )
    .await;
    assert!(body.contains("<html lang=\"ru\">"), "{body}");
    assert!(!set_cookies(&resp)
        .iter()
        .any(|c| c.starts_with("hashar-lang=")));
}

#[tokio::test]
async fn the_sign_in_page_has_its_form_and_no_inline_script_or_style() {
    let router = app().await;
    let (resp, body) = get(&router, "/console/login?lang=en", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    for needed in [
        "<form class=\"card form\" method=\"post\" action=\"/console/login\">",
        "<input type=\"hidden\" name=\"csrf\" value=\"",
        "<input id=\"phone\" name=\"phone\" type=\"tel\"",
        "<input id=\"password\" name=\"password\" type=\"password\"",
        "<details class=\"menu\">",
        "<main id=\"main\">",
        "<nav ",
        "hx-headers='{\"X-CSRF-Token\": \"",
        "\"allowEval\":false",
        "src=\"/console/static/htmx-2.0.11.min.d6fdc75f.js\"",
    ] {
        assert!(body.contains(needed), "{needed} missing in {body}");
    }
    assert_eq!(body.matches("<h1").count(), 1, "{body}");
    assert!(!body.contains("<style"), "{body}");
    assert!(!body.contains("style="), "{body}");
    let handler = body.split(" on").skip(1).any(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert!(!handler, "no on*= handlers: {body}");
    for script in body.split("<script").skip(1) {
        assert!(
            script.trim_start().starts_with("src="),
            "inline script: {script}"
        );
    }
    // the token in the field is the one in hx-headers and in the cookie
    let (cookie, token) = login_form(&router).await;
    assert!(cookie.ends_with(&token));
    let (resp, body) = get(&router, "/console/login", &[("cookie", &cookie)]).await;
    assert!(
        body.contains(&format!("value=\"{token}\"")),
        "the same token is kept"
    );
    assert!(
        body.contains(&format!("\"X-CSRF-Token\": \"{token}\"")),
        "{body}"
    );
    assert!(set_cookies(&resp)
        .iter()
        .all(|c| !c.starts_with("__Host-hashar-csrf")));
    let set = {
        let (resp, _) = get(&router, "/console/login", &[]).await;
        set_cookies(&resp)
            .into_iter()
            .find(|c| c.starts_with("__Host-hashar-csrf="))
            .expect("set")
    };
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(set.contains(attribute), "{set}");
    }
}

#[tokio::test]
async fn static_files_have_hashed_names_long_caching_and_compression() {
    let router = app().await;
    let (_, page) = get(&router, "/console/login", &[]).await;
    let urls: Vec<String> = page
        .split("/console/static/")
        .skip(1)
        .map(|rest| format!("/console/static/{}", rest.split('"').next().unwrap_or("")))
        .collect();
    assert_eq!(urls.len(), 4, "{urls:?}");
    for url in &urls {
        let (resp, body) = get(&router, url, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
        assert_eq!(
            header_of(&resp, "cache-control"),
            "public, max-age=31536000, immutable",
            "{url}"
        );
        assert!(!body.is_empty(), "{url}");
    }
    let css = urls
        .iter()
        .find(|u| u.ends_with(".css"))
        .expect("the stylesheet");
    let (resp, _) = get(&router, css, &[]).await;
    assert_eq!(header_of(&resp, "content-type"), "text/css; charset=utf-8");
    let htmx = urls.iter().find(|u| u.contains("htmx")).expect("htmx");
    for (accept, encoding) in [("gzip", "gzip"), ("br", "br"), ("br, gzip", "br")] {
        let req = Request::get(htmx.as_str())
            .header("accept-encoding", accept)
            .body(Body::empty())
            .expect("request");
        let resp = router.clone().oneshot(req).await.expect("an answer");
        assert_eq!(header_of(&resp, "content-encoding"), encoding, "{accept}");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        // 52 KB of JavaScript, about 17 KB compressed
        assert!(bytes.len() < 20_000, "{accept}: {} bytes", bytes.len());
    }
    let (resp, _) = get(&router, "/console/login", &[("accept-encoding", "gzip")]).await;
    assert_eq!(header_of(&resp, "content-encoding"), "gzip");
    // a stale hash is not served
    let stale = css
        .replace(".css", "")
        .rsplit_once('.')
        .map(|(a, _)| format!("{a}.00000000.css"))
        .expect("hashed");
    let (resp, _) = get(&router, &stale, &[]).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// A form with its token reaches the sign-in handler (which answers the wrong phone with
/// 401; sign-in itself is in `tests/console_signin.rs`). Until sessions landed the handler
/// answered 501 here.
#[tokio::test]
async fn a_post_with_its_token_passes_the_csrf_check() {
    let router = app().await;
    let (cookie, token) = login_form(&router).await;
    let form = format!("csrf={token}&phone=not-a-phone&password=secret");
    let (resp, body) = post(
        &router,
        "/console/login?lang=en",
        &[
            ("cookie", &cookie),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ],
        &form,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body.contains("Рақами телефон ё парол нодуруст аст."),
        "{body}"
    );
    // the header works as well as the field (htmx)
    let (resp, _) = post(
        &router,
        "/console/login",
        &[("cookie", &cookie), ("x-csrf-token", &token)],
        "phone=1",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forms_without_the_right_token_or_from_another_origin_are_refused() {
    let router = app().await;
    let (cookie, token) = login_form(&router).await;
    let (_, other) = login_form(&router).await;
    let good = format!("csrf={token}&phone=1");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, String);
    let cases: Vec<Case> = vec![
        ("no token", vec![("cookie", &cookie)], "phone=1".into()),
        ("no cookie", vec![], good.clone()),
        (
            "another browser's token",
            vec![("cookie", &cookie)],
            format!("csrf={other}&phone=1"),
        ),
        (
            "a wrong header",
            vec![("cookie", &cookie), ("x-csrf-token", &other)],
            good.clone(),
        ),
        (
            "cross-site",
            vec![("cookie", &cookie), ("sec-fetch-site", "cross-site")],
            good.clone(),
        ),
        (
            "same-site",
            vec![("cookie", &cookie), ("sec-fetch-site", "same-site")],
            good.clone(),
        ),
        (
            "foreign origin",
            vec![("cookie", &cookie), ("origin", "https://evil.example")],
            good.clone(),
        ),
        (
            "null origin",
            vec![("cookie", &cookie), ("origin", "null")],
            good.clone(),
        ),
    ];
    for (name, headers, body) in cases {
        let (resp, page) = post(&router, "/console/login", &headers, &body).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}");
        assert_eq!(header_of(&resp, "content-security-policy"), CSP, "{name}");
        assert!(
            page.contains("<h1>Мӯҳлати ин шакл гузашт</h1>"),
            "{name}: {page}"
        );
    }
    // a JSON body must use the header
    let req = Request::post("/console/login")
        .header("cookie", &cookie)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!("{{\"csrf\":\"{token}\"}}")))
        .expect("request");
    let (resp, _) = send(&router, req).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}
