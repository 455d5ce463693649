//! Signed-in console requests for the tests of console pages (through the real router, no
//! browser): members of staff with a role, communities and a password, a sign-in through
//! the form, and GET/POST with the session cookie and its CSRF token.

#![allow(dead_code)]

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{header, HeaderMap, Request, StatusCode},
};
use hashar::{
    domain::Phone,
    store::{staff::Role, CommunityId},
};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::common::{self, TestApp};

pub const PASSWORD: &str = "correct horse battery";

/// A signed-in session: its cookie (`name=value`) and CSRF token.
#[derive(Debug, Clone)]
pub struct Signed {
    pub cookie: String,
    pub csrf: String,
}

/// An answer: status, headers, body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A member of staff with `role`, `communities` and the password [`PASSWORD`].
pub async fn staff(app: &TestApp, name: &str, phone: &str, role: Role, communities: &[i64]) {
    let phone = Phone::parse(phone).expect("a phone");
    let mut conn = app.pool.acquire().await.expect("a connection");
    let id = hashar::store::staff::upsert_coordinator(&mut conn, name, &phone, Some(role))
        .await
        .expect("a member of staff");
    for c in communities {
        hashar::store::staff::grant_community(&mut conn, id, CommunityId(*c))
            .await
            .expect("a community");
    }
    drop(conn);
    hashar::console::auth::set_password(&app.pool, &phone, PASSWORD)
        .await
        .expect("a password");
}

async fn send(app: &TestApp, mut req: Request<Body>, ip: [u8; 4]) -> Answer {
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    let resp = app.router.clone().oneshot(req).await.expect("an answer");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The value of the first `<input … name="{name}" value="…">` in `body`.
pub fn field(body: &str, name: &str) -> String {
    body.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {name} field in {body}"))
        .to_owned()
}

fn cookie_from(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

/// Signs `phone` in through the sign-in form (English, from address `ip`).
pub async fn sign_in(app: &TestApp, phone: &str, ip: [u8; 4]) -> Signed {
    let page = get(app, "/console/login?lang=en", "").await;
    let pre = cookie_from(&page.headers, "__Host-hashar-csrf").expect("a pre-session cookie");
    let form = common::form(&[
        ("csrf", &field(&page.body, "csrf")),
        ("phone", phone),
        ("password", PASSWORD),
    ]);
    let req = Request::post("/console/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("cookie", format!("{pre}; hashar-lang=en"))
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(form))
        .expect("request");
    let answer = send(app, req, ip).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let cookie = cookie_from(&answer.headers, "__Host-hashar").expect("a session cookie");
    let home = get(app, "/console", &cookie).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    Signed {
        csrf: field(&home.body, "csrf"),
        cookie,
    }
}

/// GET with a cookie (`""`: none) and more headers.
pub async fn get_with(app: &TestApp, uri: &str, cookie: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::get(uri).header("cookie", cookie);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(
        app,
        req.body(Body::empty()).expect("request"),
        [127, 0, 0, 1],
    )
    .await
}

pub async fn get(app: &TestApp, uri: &str, cookie: &str) -> Answer {
    get_with(app, uri, cookie, &[]).await
}

/// A form POST with these fields (add `csrf` yourself, or leave it out).
pub async fn post(app: &TestApp, uri: &str, cookie: &str, fields: &[(&str, &str)]) -> Answer {
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(common::form(fields)))
        .expect("request");
    send(app, req, [127, 0, 0, 1]).await
}
