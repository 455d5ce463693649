//! The console's pages so far: the layout every page shares, the sign-in page and the
//! answers that are whole pages (a refused form, "not yet").
//!
//! The language of a page before sign-in is `?lang=` (remembered in a cookie), then that
//! cookie, then `Accept-Language`, then `HASHAR_DEFAULT_LANGUAGE` ([`i18n::choose`]).

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
};

use super::{
    assets::HTMX,
    csrf,
    i18n::{self, key, Tr},
    Console,
};
use crate::domain::Language;

/// The cookie that remembers the language chosen before sign-in.
pub const LANG_COOKIE: &str = "hashar-lang";

/// An entry of the navigation.
pub struct NavItem {
    pub href: &'static str,
    pub key: &'static str,
    pub current: bool,
}

/// A link of the language switch: the language's own name, and the current page with `?lang=`.
pub struct LangLink {
    pub code: &'static str,
    pub name: &'static str,
    pub href: String,
    pub current: bool,
}

/// What the layout (`templates/console/base.html`) needs besides the texts.
pub struct Layout {
    pub css: String,
    pub js: String,
    pub htmx: String,
    pub favicon: String,
    /// The token for `hx-headers` on `<body>` and every form's hidden field.
    pub csrf: String,
    pub nav: Vec<NavItem>,
    pub langs: Vec<LangLink>,
}

impl Layout {
    fn new(console: &Console, t: &Tr, path: &'static str, csrf: &csrf::Token) -> Layout {
        let assets = &console.assets;
        Layout {
            css: assets.url("console.css"),
            js: assets.url("console.js"),
            htmx: assets.url(HTMX),
            favicon: assets.url("favicon.svg"),
            csrf: csrf.as_str().to_owned(),
            // Before sign-in the menu has the sign-in page only; the pages of the next
            // steps add their entries for a signed-in person's role.
            nav: vec![NavItem {
                href: "/console/login",
                key: key("nav.sign_in"),
                current: path == "/console/login",
            }],
            langs: Language::ALL
                .into_iter()
                .map(|l| LangLink {
                    code: l.code(),
                    name: endonym(l),
                    href: format!("{path}?lang={}", l.code()),
                    current: l == t.language,
                })
                .collect(),
        }
    }
}

/// A language's name in itself (the same in every UI language, so not a text).
pub fn endonym(language: Language) -> &'static str {
    match language {
        Language::Tg => "Тоҷикӣ",
        Language::Ru => "Русский",
        Language::En => "English",
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    pub t: Tr,
    pub l: Layout,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/message.html")]
pub struct MessagePage {
    pub t: Tr,
    pub l: Layout,
    pub title_key: &'static str,
    pub text_key: &'static str,
    pub back: &'static str,
    pub back_key: &'static str,
}

#[derive(Debug, serde::Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

/// The page's language (see the module), and the `Set-Cookie` remembering a `?lang=` choice.
fn language(
    console: &Console,
    query: Option<&str>,
    headers: &HeaderMap,
) -> (Tr, Option<HeaderValue>) {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let language = i18n::choose(
        query,
        csrf::cookie(headers, LANG_COOKIE),
        accept,
        console.app.config.default_language,
    );
    let chosen = query.and_then(|q| q.parse::<Language>().ok());
    let set = chosen.and_then(|l| {
        let secure = if console.origin.https { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/console; Max-Age=31536000; HttpOnly; SameSite=Lax{secure}",
            l.code()
        ))
        .ok()
    });
    (Tr::new(language), set)
}

fn with_cookies(
    mut response: Response,
    cookies: impl IntoIterator<Item = Option<HeaderValue>>,
) -> Response {
    for c in cookies.into_iter().flatten() {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// `GET /console`: until sessions land, always the sign-in page (303).
pub async fn root() -> Response {
    Redirect::to("/console/login").into_response()
}

/// `GET /console/login`: the sign-in form, with the pre-session CSRF token.
pub async fn login(
    State(console): State<Console>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (t, lang_cookie) = language(&console, q.lang.as_deref(), &headers);
    let (token, csrf_cookie) = csrf::pre_session(&headers);
    let page = LoginPage {
        l: Layout::new(&console, &t, "/console/login", &token),
        t,
    };
    with_cookies(page.into_response(), [lang_cookie, csrf_cookie])
}

/// `POST /console/login`: reached only past the CSRF check; signing in comes with the
/// sessions of the next step, so for now it answers 501 with a page saying so.
pub async fn login_post(State(console): State<Console>, headers: HeaderMap) -> Response {
    message(
        &console,
        &headers,
        StatusCode::NOT_IMPLEMENTED,
        key("login.title"),
        key("login.not_yet"),
    )
}

/// The page for a request the CSRF middleware refused (403).
pub fn csrf_refused(console: &Console, headers: &HeaderMap) -> Response {
    message(
        console,
        headers,
        StatusCode::FORBIDDEN,
        key("error.csrf.title"),
        key("error.csrf.text"),
    )
}

fn message(
    console: &Console,
    headers: &HeaderMap,
    status: StatusCode,
    title_key: &'static str,
    text_key: &'static str,
) -> Response {
    let (t, _) = language(console, None, headers);
    let (token, csrf_cookie) = csrf::pre_session(headers);
    let page = MessagePage {
        l: Layout::new(console, &t, "/console/login", &token),
        t,
        title_key,
        text_key,
        back: "/console/login",
        back_key: key("login.back"),
    };
    with_cookies((status, page).into_response(), [csrf_cookie])
}

#[cfg(test)]
mod tests {
    /// Every value in a console template is escaped: `|safe` (which turns escaping off) is
    /// refused, and so is turning it off in a `#[template(...)]` attribute.
    #[test]
    fn templates_never_turn_escaping_off() {
        for (file, text) in super::i18n::USERS {
            if !file.starts_with("templates/") {
                continue;
            }
            let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            assert!(!squeezed.contains("|safe"), "{file} uses |safe");
            assert!(
                !squeezed.contains("escape=\"none\""),
                "{file} turns escaping off"
            );
        }
        let this = include_str!("pages.rs");
        let marker = ["escape", " = \"none\""].concat();
        assert!(
            !this.contains(&marker),
            "a page template turns escaping off"
        );
    }
}
