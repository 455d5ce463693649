//! The console's pages so far: the layout every page shares, the sign-in page and the
//! answers that are whole pages (a refused form, "not yet"); the overview, `GET /console`,
//! is in [`super::overview`].
//!
//! The language of a page before sign-in is `?lang=` (remembered in a cookie), then that
//! cookie, then `Accept-Language`, then `HASHAR_DEFAULT_LANGUAGE` ([`i18n::choose`]).

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use tower_sessions::Session;

use super::{
    assets::HTMX,
    auth::{self, ClientIp, Staff},
    csrf,
    i18n::{self, key, Tr},
    timing, Console,
};
use crate::{
    domain::{Language, Phone},
    service::{actor::Role, ServiceError},
    store::{self, staff, CoordinatorId},
};

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

/// A one-time key for a form (32 hex digits): the service does the form's change once per
/// key, so a double tap or a resent form is not a second change (`service::forms`).
pub fn form_key() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    /// A signed-in person's page (`console.js` keeps it out of the back/forward cache).
    pub signed_in: bool,
}

impl Layout {
    /// The layout of a page before sign-in (the navigation has the sign-in page only).
    pub fn new(console: &Console, t: &Tr, path: &'static str, csrf: &csrf::Token) -> Layout {
        // Before sign-in the menu has the sign-in page only.
        let nav = vec![NavItem {
            href: "/console/login",
            key: key("nav.sign_in"),
            current: path == "/console/login",
        }];
        Layout::with_nav(console, t, path, csrf, nav)
    }

    /// The layout of a signed-in person's page: the navigation for their role.
    pub fn signed_in(console: &Console, t: &Tr, path: &'static str, staff: &Staff) -> Layout {
        let csrf = csrf::Token::parse(&staff.signed.csrf).unwrap_or_else(csrf::Token::generate);
        let nav = nav_for(staff.actor.role)
            .into_iter()
            .filter(|(href, _)| BUILT.contains(href))
            // the phone simulator exists only with the console SMS provider
            .filter(|(href, _)| *href != "/console/phone" || console.simulator.is_some())
            .map(|(href, key)| NavItem {
                href,
                key,
                current: href == path,
            })
            .collect();
        Layout {
            signed_in: true,
            ..Layout::with_nav(console, t, path, &csrf, nav)
        }
    }

    /// [`Layout::signed_in`] for the page at `url`: its language links keep the page (and
    /// its query) and add `lang=`.
    pub fn signed_in_at(
        console: &Console,
        t: &Tr,
        path: &'static str,
        staff: &Staff,
        url: &str,
    ) -> Layout {
        let mut l = Layout::signed_in(console, t, path, staff);
        let joiner = if url.contains('?') { '&' } else { '?' };
        for link in &mut l.langs {
            link.href = format!("{url}{joiner}lang={}", link.code);
        }
        l
    }

    fn with_nav(
        console: &Console,
        t: &Tr,
        path: &'static str,
        csrf: &csrf::Token,
        nav: Vec<NavItem>,
    ) -> Layout {
        let assets = &console.assets;
        Layout {
            css: assets.url("console.css"),
            js: assets.url("console.js"),
            htmx: assets.url(HTMX),
            favicon: assets.url("favicon.svg"),
            csrf: csrf.as_str().to_owned(),
            nav,
            signed_in: false,
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

/// The language of a signed-in person's page: `?lang=` changes it first (and the session
/// remembers it), else the session's.
pub async fn staff_language(staff: &Staff, lang: Option<&str>) -> Tr {
    let mut language = staff.signed.language;
    if let Some(chosen) = lang.and_then(|l| l.parse::<Language>().ok()) {
        if chosen != language {
            auth::set_session_language(&staff.session, &staff.signed, chosen).await;
            language = chosen;
        }
    }
    Tr::new(language)
}

/// The console's pages that exist so far: the navigation offers a page of [`nav_for`] once
/// it is here (a link that answers 404 is a dead end for the person who follows it).
pub const BUILT: &[&str] = &[
    "/console",
    "/console/projects",
    "/console/money",
    "/console/households",
    "/console/exports",
    "/console/people",
    "/console/broadcasts",
    "/console/callbacks",
    "/console/outreach",
    "/console/phone",
];

/// The pages a role's navigation offers once they are built (see [`BUILT`]): the pages of
/// the next steps; a role sees only what it may use.
pub fn nav_for(role: Role) -> Vec<(&'static str, &'static str)> {
    let mut nav = vec![("/console", key("nav.overview"))];
    if matches!(role, Role::Admin | Role::Coordinator) {
        nav.push(("/console/money", key("nav.money")));
    }
    nav.push(("/console/projects", key("projects.nav")));
    nav.push(("/console/households", key("nav.households")));
    if matches!(role, Role::Admin | Role::Coordinator) {
        nav.push(("/console/broadcasts", key("nav.broadcasts")));
    }
    if matches!(role, Role::Admin | Role::Counsellor) {
        nav.push(("/console/callbacks", key("nav.callbacks")));
    }
    nav.push(("/console/outreach", key("nav.outreach")));
    nav.push(("/console/exports", key("nav.exports")));
    if role == Role::Admin {
        nav.push(("/console/people", key("nav.people")));
    }
    // programme officers change nothing; the simulator writes registrations and pledges
    if role != Role::Officer {
        nav.push(("/console/phone", key("nav.phone")));
    }
    nav
}

/// The text key of a role's name.
pub fn role_key(role: Role) -> &'static str {
    match role {
        Role::Admin => key("role.admin"),
        Role::Coordinator => key("role.coordinator"),
        Role::Counsellor => key("role.counsellor"),
        Role::Officer => key("role.officer"),
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
    /// Why the last try failed, already in the page's language.
    pub error: Option<String>,
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
    pub lang: Option<String>,
}

/// The page's language (see the module), and the `Set-Cookie` remembering a `?lang=` choice.
pub fn language(
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

/// `response` with these `Set-Cookie`s.
pub fn with_cookies(
    mut response: Response,
    cookies: impl IntoIterator<Item = Option<HeaderValue>>,
) -> Response {
    for c in cookies.into_iter().flatten() {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// `GET /console/login`: the sign-in form, with the pre-session CSRF token (or the
/// session's, for someone signed in already).
pub async fn login(
    State(console): State<Console>,
    Query(q): Query<LangQuery>,
    session_token: Option<Extension<csrf::SessionToken>>,
    headers: HeaderMap,
) -> Response {
    let (t, lang_cookie) = language(&console, q.lang.as_deref(), &headers);
    login_page(
        &console,
        t,
        session_token,
        &headers,
        StatusCode::OK,
        None,
        lang_cookie,
    )
}

fn login_page(
    console: &Console,
    t: Tr,
    session_token: Option<Extension<csrf::SessionToken>>,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<String>,
    lang_cookie: Option<HeaderValue>,
) -> Response {
    let (token, csrf_cookie) = match session_token {
        Some(Extension(csrf::SessionToken(token))) => (token, None),
        None => csrf::pre_session(headers),
    };
    let page = LoginPage {
        l: Layout::new(console, &t, "/console/login", &token),
        t,
        error,
    };
    with_cookies((status, page).into_response(), [lang_cookie, csrf_cookie])
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    password: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginForm(…)")
    }
}

/// What a sign-in try came to.
enum Outcome {
    In { id: CoordinatorId, epoch: i32 },
    Wrong,
    Locked(chrono::DateTime<chrono::Utc>),
}

/// `POST /console/login` (past the CSRF check): throttled per client address; an unknown
/// phone and a wrong password get the same answer; five wrong passwords lock the account
/// for 15 minutes; success starts a new session (new id) and sends to `/console` (303).
pub async fn login_post(
    State(console): State<Console>,
    ClientIp(ip): ClientIp,
    session: Session,
    session_token: Option<Extension<csrf::SessionToken>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let (t, _) = language(&console, None, &headers);
    let refuse = |t: Tr, status: StatusCode, error: String| {
        login_page(
            &console,
            t,
            session_token.clone(),
            &headers,
            status,
            Some(error),
            None,
        )
    };
    if !console.auth.may_try(ip) {
        tracing::warn!("console: sign-in throttled");
        let text = t.t("login.throttled");
        return refuse(t, StatusCode::TOO_MANY_REQUESTS, text);
    }
    let now = console.app.clock.now();
    let outcome = match sign_in(&console, &form, now).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "console: sign-in failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    match outcome {
        Outcome::In { id, epoch } => {
            if let Err(e) = auth::start_session(&session, id, epoch, now, t.language).await {
                tracing::error!(error = %e, "console: starting a session failed");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            tracing::info!(staff = id.0, "console: signed in");
            // The pre-session token is done with.
            let clear = HeaderValue::from_str(&format!(
                "{}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict",
                csrf::COOKIE
            ))
            .ok();
            with_cookies(Redirect::to("/console").into_response(), [clear])
        }
        Outcome::Wrong => {
            let text = t.t("login.wrong");
            refuse(t, StatusCode::UNAUTHORIZED, text)
        }
        Outcome::Locked(until) => {
            let local = until.with_timezone(&console.app.config.timezone).time();
            let text = t.t_with("login.locked", &[("time", &t.time(local))]);
            refuse(t, StatusCode::UNAUTHORIZED, text)
        }
    }
}

/// Checks a sign-in try, counting failures and locking in the person's row.
async fn sign_in(
    console: &Console,
    form: &LoginForm,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Outcome, sqlx::Error> {
    let auth = &console.auth;
    let Ok(phone) = Phone::parse(form.phone.trim()) else {
        auth.verify(form.password.clone(), None).await;
        return Ok(Outcome::Wrong);
    };
    let mut tx = console.app.pool.begin().await?;
    let state = timing::db(staff::password_state_for_update(&mut tx, &phone)).await?;
    let Some(state) = state.filter(|s| !s.disabled && s.password_hash.is_some()) else {
        drop(tx);
        auth.verify(form.password.clone(), None).await;
        return Ok(Outcome::Wrong);
    };
    if let Some(until) = auth::locked(state.locked_until, now) {
        return Ok(Outcome::Locked(until));
    }
    if auth
        .verify(form.password.clone(), state.password_hash.clone())
        .await
    {
        timing::db(staff::password_right(&mut tx, state.id)).await?;
        audit_sign_in(
            &mut tx,
            &format!("coordinator:{}", state.id.0),
            "staff.sign_in",
            state.id,
            now,
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        return Ok(Outcome::In {
            id: state.id,
            epoch: state.session_epoch,
        });
    }
    let failures = state.failures + 1;
    let outcome = if failures >= auth::PASSWORD_TRIES {
        let until = now + chrono::Duration::minutes(auth::PASSWORD_LOCK_MINUTES);
        timing::db(staff::password_wrong(&mut tx, state.id, 0, Some(until))).await?;
        audit_sign_in(
            &mut tx,
            "system",
            "staff.lock",
            state.id,
            now,
            serde_json::json!({ "failures": failures, "until": until }),
        )
        .await?;
        tracing::warn!(
            staff = state.id.0,
            "console: account locked after wrong passwords"
        );
        Outcome::Locked(until)
    } else {
        timing::db(staff::password_wrong(&mut tx, state.id, failures, None)).await?;
        Outcome::Wrong
    };
    tx.commit().await?;
    Ok(outcome)
}

/// A sign-in, or an account locked after wrong passwords, in the audit log (in the
/// transaction that records it).
async fn audit_sign_in(
    tx: &mut sqlx::PgConnection,
    actor: &str,
    action: &str,
    person: CoordinatorId,
    now: chrono::DateTime<chrono::Utc>,
    after: serde_json::Value,
) -> Result<(), sqlx::Error> {
    store::audit::insert(
        tx,
        &store::audit::AuditInsert {
            at: now,
            actor,
            action,
            subject_kind: "staff",
            subject_id: person.0,
            community: None,
            detail: serde_json::json!({ "before": {}, "after": after }),
            request_id: None,
        },
    )
    .await?;
    Ok(())
}

/// `POST /console/logout`: the session is deleted; to the sign-in page (303).
pub async fn logout(session: Session) -> Response {
    if let Err(e) = session.flush().await {
        tracing::warn!(error = %e, "console: signing out failed");
    }
    Redirect::to("/console/login").into_response()
}

/// `POST /console/logout/everywhere`: every session of the signed-in person ends (their
/// epoch goes up by one), this one included.
pub async fn logout_everywhere(State(console): State<Console>, staff: Staff) -> Response {
    if let Err(e) = timing::db(staff::bump_session_epoch(
        &console.app.pool,
        staff.actor.id(),
    ))
    .await
    {
        tracing::error!(error = %e, "console: signing out everywhere failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    tracing::info!(
        staff = staff.actor.coordinator_id,
        "console: signed out everywhere"
    );
    logout(staff.session).await
}

/// How a signed-in page answers what it cannot show: its "not found" and "failed" words,
/// where the message's link goes back to, and its name in the log. One per page module, so
/// that every page answers a refusal (404, never a hint of what exists) and a database
/// failure (500, logged) the same way.
pub struct Answers {
    /// The page's path (its navigation entry).
    pub path: &'static str,
    /// Where the message's link goes, and its words.
    pub back: &'static str,
    pub back_key: &'static str,
    pub not_found: (&'static str, &'static str),
    pub failed: (&'static str, &'static str),
    /// The page's name in the log line of a failure.
    pub what: &'static str,
}

impl Answers {
    /// A message page (`title_key`, `text_key`) with this status.
    pub fn message(
        &self,
        console: &Console,
        staff: &Staff,
        status: StatusCode,
        title_key: &'static str,
        text_key: &'static str,
    ) -> Response {
        let t = Tr::new(staff.signed.language);
        let page = MessagePage {
            l: Layout::signed_in(console, &t, self.path, staff),
            t,
            title_key,
            text_key,
            back: self.back,
            back_key: self.back_key,
        };
        (status, page).into_response()
    }

    /// 404: what the person may not see or do, in the same words as what does not exist.
    pub fn not_found(&self, console: &Console, staff: &Staff) -> Response {
        let (title, text) = self.not_found;
        self.message(console, staff, StatusCode::NOT_FOUND, title, text)
    }

    /// A service error that is not a refusal to show beside a field: 404 for what the
    /// person may not see, 500 (logged) for the database.
    pub fn failed(&self, console: &Console, staff: &Staff, e: ServiceError) -> Response {
        match e {
            ServiceError::NotFound(_) | ServiceError::Forbidden => self.not_found(console, staff),
            e => {
                tracing::error!(error = %e, coordinator = staff.actor.coordinator_id, page = self.what, "console: page failed");
                let (title, text) = self.failed;
                self.message(
                    console,
                    staff,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    title,
                    text,
                )
            }
        }
    }
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
