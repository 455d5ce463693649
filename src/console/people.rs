//! People & access (`/console/people`, §3 of the console design; issue 10, page 7): the
//! staff, their roles and communities, passwords, locks, sessions and API tokens, and the
//! audit log. Admins only: for every other role each route here is 404.
//!
//! Every change calls `service::people` with the signed-in admin's
//! [`Actor`](crate::service::Actor) (rules, audit log, one-time form keys are the
//! service's) and answers 303 with a one-time [`flash`](super::flash). A secret made by a
//! change (a set-password link, an API token) travels in that flash, kept in the
//! server-side session for the one redirect and shown once by the page it leads to; a
//! repeated form gets no secret back.
//!
//! Routes:
//! - `GET  /console/people`: the list; `GET /console/people/audit`: the audit tab;
//! - `GET|POST /console/people/new`: add a person (a one-time link, or a password);
//! - `GET  /console/people/{id}`: a person's page;
//! - `GET  /console/people/{id}/access` → confirm; `POST` changes role and communities;
//! - `POST /console/people/{id}/password`, `…/unlock`, `…/sign-out`, `…/tokens`,
//!   `…/tokens/{token}/revoke`; `GET|POST …/disable` (confirm first);
//! - `GET|POST /console/welcome/{token}`: anonymous, the one-time set-password page
//!   (throttled per address like sign-in).

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::pages::form_key;
use super::{
    auth::{self, ClientIp, Staff},
    csrf,
    flash::{self, Flash},
    i18n::{key, Tr},
    pages::staff_language as language,
    pages::{self, role_key, Answers, Layout, MessagePage},
    timing, Console,
};
use crate::{
    domain::Phone,
    service::{
        people::{self as people_service, Act, LinkState, NewPerson},
        Once, Role, ServiceError,
    },
    store::{audit::AuditRow, people::AuditFilter, people::Person, CoordinatorId},
};

const PATH: &str = "/console/people";
/// Longest name, phone or filter text a form accepts (characters).
const MAX_SHORT: usize = 120;

/// Every text key the service's refusals may carry (for the completeness check).
pub const SERVICE_KEYS: &[&str] = &[
    key("people.password_short"),
    key("people.password_long"),
    key("people.password_failed"),
    key("people.communities_many"),
    key("people.communities_needed"),
    key("people.community_unknown"),
    key("people.phone_invalid"),
    key("people.phone_taken"),
    key("people.last_admin"),
    key("people.already_disabled"),
    key("form.text_length"),
    key("form.key_invalid"),
    key("form.key_reused"),
    key("form.in_progress"),
];

const ROLES: [Role; 4] = [
    Role::Admin,
    Role::Coordinator,
    Role::Counsellor,
    Role::Officer,
];

/// A flash shown at the top, and a secret shown once beside it.
#[derive(Debug, Clone)]
pub struct Note {
    pub done: bool,
    pub text: String,
    pub secret: Option<String>,
}

/// A row of the list.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub name: String,
    pub phone: String,
    pub role: String,
    pub communities: String,
    pub last_sign_in: String,
    pub locked_until: Option<String>,
    pub disabled: bool,
}

/// A role in a form.
#[derive(Debug, Clone)]
pub struct RoleOption {
    pub value: &'static str,
    pub label: String,
    pub selected: bool,
}

/// A community in a form.
#[derive(Debug, Clone)]
pub struct CommunityOption {
    pub id: i64,
    pub label: String,
    pub checked: bool,
}

/// A token as listed.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub prefix: String,
    pub created: String,
    pub revoked: Option<String>,
}

/// An audit row as shown.
#[derive(Debug, Clone)]
pub struct AuditLine {
    pub at: String,
    pub who: String,
    pub action: String,
    pub subject: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/people.html")]
pub struct ListPage {
    pub t: Tr,
    pub l: Layout,
    pub note: Option<Note>,
    pub rows: Vec<Row>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/people_new.html")]
pub struct NewPage {
    pub t: Tr,
    pub l: Layout,
    pub errors: Vec<(&'static str, String)>,
    pub name: String,
    pub phone: String,
    pub roles: Vec<RoleOption>,
    pub communities: Vec<CommunityOption>,
    pub key: String,
}

impl NewPage {
    pub fn error_of(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, t)| t.as_str())
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/people_person.html")]
pub struct PersonPage {
    pub t: Tr,
    pub l: Layout,
    pub note: Option<Note>,
    pub p: Row,
    pub has_password: bool,
    pub roles: Vec<RoleOption>,
    pub communities: Vec<CommunityOption>,
    pub tokens: Vec<TokenRow>,
    pub csrf: String,
    pub key: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/people_audit.html")]
pub struct AuditPage {
    pub t: Tr,
    pub l: Layout,
    pub rows: Vec<AuditLine>,
    pub people: Vec<(i64, String, bool)>,
    pub action: String,
    pub from: String,
    pub to: String,
    pub limit: i64,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/money_confirm.html")]
pub struct ConfirmPage {
    pub t: Tr,
    pub l: Layout,
    pub title: String,
    pub what: String,
    pub details: Vec<String>,
    pub action: String,
    pub key: String,
    pub fields: Vec<(&'static str, String)>,
    pub button: String,
    pub back: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/people_welcome.html")]
pub struct WelcomePage {
    pub t: Tr,
    pub l: Layout,
    pub name: String,
    pub action: String,
    pub error: Option<String>,
}

#[derive(Debug, serde::Deserialize, Default)]
pub struct LangQuery {
    pub lang: Option<String>,
}

#[derive(Debug, serde::Deserialize, Default)]
pub struct AuditQuery {
    pub lang: Option<String>,
    pub person: Option<String>,
    pub action: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, serde::Deserialize, Default)]
pub struct AccessQuery {
    pub lang: Option<String>,
    #[serde(default)]
    pub role: String,
    /// Comma-separated community ids (the form's checkboxes arrive as repeated fields,
    /// gathered by [`communities_of`]).
    #[serde(default)]
    pub communities: String,
}

#[derive(serde::Deserialize, Default)]
pub struct KeyPost {
    #[serde(default)]
    pub key: String,
}

#[derive(serde::Deserialize, Default)]
pub struct PasswordPost {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub password: String,
}

impl std::fmt::Debug for PasswordPost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordPost(…)")
    }
}

fn layout(console: &Console, t: &Tr, staff: &Staff, url: &str) -> Layout {
    Layout::signed_in_at(console, t, PATH, staff, url)
}

const ANSWERS: Answers = Answers {
    path: PATH,
    back: "/console",
    back_key: key("people.back_home"),
    not_found: (key("people.not_found.title"), key("people.not_found.text")),
    failed: (key("people.failed.title"), key("people.failed.text")),
    what: "people",
};

fn not_found(console: &Console, staff: &Staff) -> Response {
    ANSWERS.not_found(console, staff)
}

fn failed(console: &Console, staff: &Staff, e: ServiceError) -> Response {
    ANSWERS.failed(console, staff, e)
}

/// 404 for anyone but an admin.
fn admins_only(console: &Console, staff: &Staff) -> Option<Response> {
    (staff.actor.role != Role::Admin).then(|| not_found(console, staff))
}

/// The text key of a refusal, with the field it is about.
fn refusal(e: &ServiceError) -> Option<(&'static str, &'static str)> {
    let (field, k) = match e {
        ServiceError::Invalid { field, key, .. } => (*field, *key),
        ServiceError::Conflict { rule, .. } => ("summary", *rule),
        _ => return None,
    };
    let k = SERVICE_KEYS.iter().find(|s| **s == k).copied()?;
    let field = match field {
        "name" => "name",
        "phone" => "phone",
        "password" => "password",
        "communities" => "communities",
        _ => "summary",
    };
    Some((field, k))
}

/// After a refused POST: the reason as a flash, back to `back` (303); a failure that is
/// not a refusal answers its own page.
async fn refused_to(console: &Console, staff: &Staff, e: ServiceError, back: &str) -> Response {
    match refusal(&e) {
        Some((field, k)) => {
            flash::set(&staff.session, Flash::refused(k, Some(field))).await;
            Redirect::to(back).into_response()
        }
        None => failed(console, staff, e),
    }
}

fn local(console: &Console, t: &Tr, at: DateTime<Utc>) -> String {
    let at = at.with_timezone(&console.app.config.timezone);
    format!("{} {}", t.date(at.date_naive()), t.time(at.time()))
}

fn masked(phone: &str) -> String {
    Phone::parse(phone)
        .map(|p| p.masked())
        .unwrap_or_else(|_| crate::domain::phone::mask(phone))
}

async fn community_names(
    console: &Console,
    staff: &Staff,
    t: &Tr,
) -> Result<HashMap<i64, String>, ServiceError> {
    Ok(
        timing::db(people_service::communities(&console.app, &staff.actor))
            .await?
            .into_iter()
            .map(|c| (c.id.0, c.name.get(t.language).to_owned()))
            .collect(),
    )
}

fn row(console: &Console, t: &Tr, p: &Person, names: &HashMap<i64, String>) -> Row {
    let now = console.app.clock.now();
    let communities = if matches!(p.role, Role::Admin | Role::Counsellor) {
        t.t("people.all_communities")
    } else {
        let list: Vec<&str> = p
            .communities
            .iter()
            .filter_map(|c| names.get(&c.0).map(String::as_str))
            .collect();
        if list.is_empty() {
            t.t("people.none")
        } else {
            list.join(", ")
        }
    };
    Row {
        id: p.id.0,
        name: p.name.clone(),
        phone: masked(&p.phone),
        role: t.t(role_key(p.role)),
        communities,
        last_sign_in: p
            .last_sign_in
            .map(|at| local(console, t, at))
            .unwrap_or_else(|| t.t("people.never")),
        locked_until: auth::locked(p.locked_until, now).map(|u| local(console, t, u)),
        disabled: p.disabled_at.is_some(),
    }
}

fn roles(t: &Tr, chosen: Role) -> Vec<RoleOption> {
    ROLES
        .into_iter()
        .map(|r| RoleOption {
            value: r.as_str(),
            label: t.t(role_key(r)),
            selected: r == chosen,
        })
        .collect()
}

fn community_options(names: &HashMap<i64, String>, chosen: &[i64]) -> Vec<CommunityOption> {
    let mut v: Vec<CommunityOption> = names
        .iter()
        .map(|(id, label)| CommunityOption {
            id: *id,
            label: label.clone(),
            checked: chosen.contains(id),
        })
        .collect();
    v.sort_by_key(|c| c.id);
    v
}

/// The note for a flash: its text, and a secret to show once (a link or a token).
fn note(console: &Console, t: &Tr, f: &Flash) -> Note {
    let secret = f.vars.iter().find(|(k, _)| k == "secret").map(|(_, v)| v);
    let secret = secret.map(|s| {
        if f.key == key("people.flash.link") {
            format!("{}/console/welcome/{s}", console.origin.origin)
        } else {
            s.clone()
        }
    });
    Note {
        done: f.is_done(),
        text: f.text(t),
        secret,
    }
}

/// The communities of a form: every `communities` field (a checkbox each), as numbers.
fn communities_of(body: &[(String, String)]) -> Vec<i64> {
    body.iter()
        .filter(|(k, _)| k == "communities")
        .flat_map(|(_, v)| v.split(','))
        .filter_map(|v| v.trim().parse().ok())
        .take(people_service::MAX_COMMUNITIES + 1)
        .collect()
}

fn field<'a>(body: &'a [(String, String)], name: &str) -> &'a str {
    body.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn bounded(v: &str, max: usize) -> String {
    v.chars().take(max + 1).collect()
}

/// `GET /console/people`: everyone, with role, communities, last sign-in and locks.
pub async fn list(
    State(console): State<Console>,
    Query(q): Query<LangQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = admins_only(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let people = match timing::db(people_service::list(&console.app, &staff.actor)).await {
        Ok(p) => p,
        Err(e) => return failed(&console, &staff, e),
    };
    let names = match community_names(&console, &staff, &t).await {
        Ok(n) => n,
        Err(e) => return failed(&console, &staff, e),
    };
    let note = flash::take(&staff.session)
        .await
        .map(|f| note(&console, &t, &f));
    ListPage {
        l: layout(&console, &t, &staff, PATH),
        rows: people
            .iter()
            .map(|p| row(&console, &t, p, &names))
            .collect(),
        note,
        t,
    }
    .into_response()
}

/// `GET /console/people/new`: the add form (with what was typed, after a refusal).
pub async fn new_form(
    State(console): State<Console>,
    Query(q): Query<Vec<(String, String)>>,
    staff: Staff,
) -> Response {
    if let Some(r) = admins_only(&console, &staff) {
        return r;
    }
    let t = language(&staff, Some(field(&q, "lang")).filter(|l| !l.is_empty())).await;
    let names = match community_names(&console, &staff, &t).await {
        Ok(n) => n,
        Err(e) => return failed(&console, &staff, e),
    };
    let mut errors = Vec::new();
    if let Some(f) = flash::take(&staff.session).await {
        let at = match f.field.as_deref() {
            Some("name") => "name",
            Some("phone") => "phone",
            Some("password") => "password",
            Some("communities") => "communities",
            _ => "summary",
        };
        errors.push((at, f.text(&t)));
    }
    let role = field(&q, "role")
        .parse::<Role>()
        .unwrap_or(Role::Coordinator);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = NewPage {
        l: layout(&console, &t, &staff, "/console/people/new"),
        errors,
        name: bounded(field(&q, "name"), MAX_SHORT),
        phone: bounded(field(&q, "phone"), MAX_SHORT),
        roles: roles(&t, role),
        communities: community_options(&names, &communities_of(&q)),
        key: form_key(),
        t,
    };
    (status, page).into_response()
}

/// `POST /console/people/new`: adds the person; the one-time link (unless a password was
/// set) is shown once on their page.
pub async fn new_post(
    State(console): State<Console>,
    staff: Staff,
    Form(body): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = admins_only(&console, &staff) {
        return r;
    }
    let name = bounded(field(&body, "name"), MAX_SHORT);
    let phone = bounded(field(&body, "phone"), MAX_SHORT);
    let role = field(&body, "role").parse::<Role>();
    let communities = communities_of(&body);
    let password = field(&body, "password");
    let back = {
        let mut q: Vec<(&str, String)> = vec![
            ("name", name.clone()),
            ("phone", phone.clone()),
            ("role", field(&body, "role").chars().take(20).collect()),
        ];
        q.extend(communities.iter().map(|c| ("communities", c.to_string())));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q)
            .finish();
        format!("{PATH}/new?{query}")
    };
    let Ok(role) = role else {
        flash::set(
            &staff.session,
            Flash::refused(key("people.role_invalid"), None),
        )
        .await;
        return Redirect::to(&back).into_response();
    };
    let new = NewPerson {
        name: &name,
        phone: &phone,
        role,
        communities: &communities,
        password: Some(password).filter(|p| !p.is_empty()),
    };
    match timing::db(people_service::add(
        &console.app,
        &staff.actor,
        &new,
        Once::Form(field(&body, "key")),
    ))
    .await
    {
        Ok(added) => {
            let f = match added.link {
                Some(link) => Flash::done(key("people.flash.link")).with("secret", link),
                None if new.password.is_none() => Flash::done(key("people.flash.repeated")),
                None => Flash::done(key("people.flash.added")),
            };
            flash::set(&staff.session, f).await;
            Redirect::to(&format!("{PATH}/{}", added.id)).into_response()
        }
        Err(e) => refused_to(&console, &staff, e, &back).await,
    }
}

/// `GET /console/people/{id}`: a person's page.
pub async fn person(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<LangQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = admins_only(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let view = match timing::db(people_service::person(&console.app, &staff.actor, id)).await {
        Ok(v) => v,
        Err(e) => return failed(&console, &staff, e),
    };
    let names = match community_names(&console, &staff, &t).await {
        Ok(n) => n,
        Err(e) => return failed(&console, &staff, e),
    };
    let note = flash::take(&staff.session)
        .await
        .map(|f| note(&console, &t, &f));
    let p = &view.person;
    let url = format!("{PATH}/{id}");
    PersonPage {
        l: layout(&console, &t, &staff, &url),
        note,
        p: row(&console, &t, p, &names),
        has_password: p.has_password,
        roles: roles(&t, p.role),
        communities: community_options(&names, &people_service::community_ids(p)),
        tokens: view
            .tokens
            .iter()
            .map(|tk| TokenRow {
                id: tk.id,
                prefix: tk.prefix.clone(),
                created: local(&console, &t, tk.created_at),
                revoked: tk.revoked_at.map(|at| local(&console, &t, at)),
            })
            .collect(),
        csrf: staff.signed.csrf.clone(),
        key: form_key(),
        t,
    }
    .into_response()
}

/// `GET /console/people/{id}/access?role=&communities=`: says what will change (old → new),
/// one button.
pub async fn access_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<Vec<(String, String)>>,
    staff: Staff,
) -> Response {
    if let Some(r) = admins_only(&console, &staff) {
        return r;
    }
    let t = language(&staff, Some(field(&q, "lang")).filter(|l| !l.is_empty())).await;
    let view = match timing::db(people_service::person(&console.app, &staff.actor, id)).await {
        Ok(v) => v,
        Err(e) => return failed(&console, &staff, e),
    };
    let names = match community_names(&console, &staff, &t).await {
        Ok(n) => n,
        Err(e) => return failed(&console, &staff, e),
    };
    let p = &view.person;
    let role = field(&q, "role").parse::<Role>().unwrap_or(p.role);
    let mut chosen = communities_of(&q);
    chosen.retain(|c| names.contains_key(c));
    chosen.sort_unstable();
    chosen.dedup();
    let name_list = |ids: &[i64]| {
        if ids.is_empty() {
            t.t("people.none")
        } else {
            ids.iter()
                .filter_map(|c| names.get(c).cloned())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let before = people_service::community_ids(p);
    let url = format!("{PATH}/{id}/access");
    let page = ConfirmPage {
        l: layout(&console, &t, &staff, &format!("{PATH}/{id}")),
        title: t.t("people.confirm.access_title"),
        what: t.t_with(key("people.confirm.access_what"), &[("name", &p.name)]),
        details: vec![
            t.t_with(
                key("people.confirm.role"),
                &[
                    ("old", &t.t(role_key(p.role))),
                    ("new", &t.t(role_key(role))),
                ],
            ),
            t.t_with(
                key("people.confirm.communities"),
                &[("old", &name_list(&before)), ("new", &name_list(&chosen))],
            ),
        ],
        action: url,
        key: form_key(),
        fields: std::iter::once(("role", role.as_str().to_owned()))
            .chain(chosen.iter().map(|c| ("communities", c.to_string())))
            .collect(),
        button: t.t("people.confirm.access_button"),
        back: format!("{PATH}/{id}"),
        t,
    };
    page.into_response()
}

/// `POST /console/people/{id}/access`: the new role and communities.
pub async fn access_post(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(body): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = admins_only(&console, &staff) {
        return r;
    }
    let back = format!("{PATH}/{id}");
    let Ok(role) = field(&body, "role").parse::<Role>() else {
        flash::set(
            &staff.session,
            Flash::refused(key("people.role_invalid"), None),
        )
        .await;
        return Redirect::to(&back).into_response();
    };
    let communities = communities_of(&body);
    match timing::db(people_service::set_access(
        &console.app,
        &staff.actor,
        id,
        role,
        &communities,
        Once::Form(field(&body, "key")),
    ))
    .await
    {
        Ok(()) => {
            flash::set(&staff.session, Flash::done(key("people.flash.access"))).await;
            Redirect::to(&back).into_response()
        }
        Err(e) => refused_to(&console, &staff, e, &back).await,
    }
}

/// `POST /console/people/{id}/password`: with a password, sets it; without, a new
/// one-time link (shown once).
pub async fn password_post(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<PasswordPost>,
) -> Response {
    if let Some(r) = admins_only(&console, &staff) {
        return r;
    }
    let back = format!("{PATH}/{id}");
    let password = bounded(&form.password, people_service::MAX_PASSWORD);
    match timing::db(people_service::reset_password(
        &console.app,
        &staff.actor,
        id,
        Some(password.as_str()).filter(|p| !p.is_empty()),
        Once::Form(&form.key),
    ))
    .await
    {
        Ok(done) => {
            let f = match done.link {
                Some(link) => Flash::done(key("people.flash.link")).with("secret", link),
                None if password.is_empty() => Flash::done(key("people.flash.repeated")),
                None => Flash::done(key("people.flash.password")),
            };
            flash::set(&staff.session, f).await;
            Redirect::to(&back).into_response()
        }
        Err(e) => refused_to(&console, &staff, e, &back).await,
    }
}

async fn act(console: Console, staff: Staff, id: i64, what: Act, form: KeyPost) -> Response {
    if let Some(r) = admins_only(&console, &staff) {
        return r;
    }
    let back = format!("{PATH}/{id}");
    match timing::db(people_service::act(
        &console.app,
        &staff.actor,
        id,
        what,
        Once::Form(&form.key),
    ))
    .await
    {
        Ok(()) => {
            let k = match what {
                Act::Unlock => key("people.flash.unlocked"),
                Act::SignOutEverywhere => key("people.flash.signed_out"),
                Act::Disable => key("people.flash.disabled"),
            };
            flash::set(&staff.session, Flash::done(k)).await;
            Redirect::to(&back).into_response()
        }
        Err(e) => refused_to(&console, &staff, e, &back).await,
    }
}

/// `POST /console/people/{id}/unlock`.
pub async fn unlock(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<KeyPost>,
) -> Response {
    act(console, staff, id, Act::Unlock, form).await
}

/// `POST /console/people/{id}/sign-out`: every session of theirs ends.
pub async fn sign_out(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<KeyPost>,
) -> Response {
    act(console, staff, id, Act::SignOutEverywhere, form).await
}

/// `GET /console/people/{id}/disable`: what disabling does, one button.
pub async fn disable_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<LangQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = admins_only(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let view = match timing::db(people_service::person(&console.app, &staff.actor, id)).await {
        Ok(v) => v,
        Err(e) => return failed(&console, &staff, e),
    };
    let url = format!("{PATH}/{id}/disable");
    ConfirmPage {
        l: layout(&console, &t, &staff, &url),
        title: t.t("people.confirm.disable_title"),
        what: t.t_with(
            key("people.confirm.disable_what"),
            &[("name", &view.person.name)],
        ),
        details: vec![t.t("people.confirm.disable_effect")],
        action: url,
        key: form_key(),
        fields: Vec::new(),
        button: t.t("people.confirm.disable_button"),
        back: format!("{PATH}/{id}"),
        t,
    }
    .into_response()
}

/// `POST /console/people/{id}/disable`.
pub async fn disable(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<KeyPost>,
) -> Response {
    act(console, staff, id, Act::Disable, form).await
}

/// `POST /console/people/{id}/tokens`: a new API token, shown once.
pub async fn token_issue(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<KeyPost>,
) -> Response {
    if let Some(r) = admins_only(&console, &staff) {
        return r;
    }
    let back = format!("{PATH}/{id}");
    match timing::db(people_service::issue_token(
        &console.app,
        &staff.actor,
        id,
        Once::Form(&form.key),
    ))
    .await
    {
        Ok(issued) => {
            let f = match issued.token {
                Some(token) => Flash::done(key("people.flash.token")).with("secret", token),
                None => Flash::done(key("people.flash.repeated")),
            };
            flash::set(&staff.session, f).await;
            Redirect::to(&back).into_response()
        }
        Err(e) => refused_to(&console, &staff, e, &back).await,
    }
}

/// `POST /console/people/{id}/tokens/{token}/revoke`.
pub async fn token_revoke(
    State(console): State<Console>,
    Path((id, token)): Path<(i64, i64)>,
    staff: Staff,
    Form(form): Form<KeyPost>,
) -> Response {
    if let Some(r) = admins_only(&console, &staff) {
        return r;
    }
    let back = format!("{PATH}/{id}");
    match timing::db(people_service::revoke_token(
        &console.app,
        &staff.actor,
        id,
        token,
        Once::Form(&form.key),
    ))
    .await
    {
        Ok(()) => {
            flash::set(&staff.session, Flash::done(key("people.flash.revoked"))).await;
            Redirect::to(&back).into_response()
        }
        Err(e) => refused_to(&console, &staff, e, &back).await,
    }
}

fn action_key(action: &str) -> &'static str {
    match action {
        "staff.add" => key("people.action.add"),
        "staff.role" => key("people.action.role"),
        "staff.communities" => key("people.action.communities"),
        "staff.password_link" => key("people.action.password_link"),
        "staff.password_set" => key("people.action.password_set"),
        "staff.unlock" => key("people.action.unlock"),
        "staff.sign_out_everywhere" => key("people.action.sign_out"),
        "staff.disable" => key("people.action.disable"),
        "staff.token_issue" => key("people.action.token_issue"),
        "staff.token_revoke" => key("people.action.token_revoke"),
        "staff.sign_in" => key("people.action.sign_in"),
        "staff.lock" => key("people.action.lock"),
        "receipt.record" => key("money.action.receipt_record"),
        "pledge.cancel" => key("money.action.pledge_cancel"),
        "receipt.reverse" => key("money.action.receipt_reverse"),
        _ => key("money.action.other"),
    }
}

/// The start of a day in `HASHAR_TIMEZONE`, as UTC.
fn day_start(console: &Console, day: NaiveDate) -> Option<DateTime<Utc>> {
    let tz = console.app.config.timezone;
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
}

/// `GET /console/people/audit?person=&action=&from=&to=`: the audit log, newest first,
/// at most 200 rows.
pub async fn audit(
    State(console): State<Console>,
    Query(q): Query<AuditQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = admins_only(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let person = q.person.as_deref().and_then(|p| p.parse::<i64>().ok());
    let action: String = q
        .action
        .as_deref()
        .unwrap_or("")
        .trim()
        .chars()
        .take(80)
        .collect();
    let parse_day = |v: &Option<String>| {
        v.as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok())
    };
    let (from, to) = (parse_day(&q.from), parse_day(&q.to));
    let filter = AuditFilter {
        person: person.map(CoordinatorId),
        action: Some(action.as_str()).filter(|a| !a.is_empty()),
        from: from.and_then(|d| day_start(&console, d)),
        to: to
            .and_then(|d| d.succ_opt())
            .and_then(|d| day_start(&console, d)),
    };
    let rows = match timing::db(people_service::audit(&console.app, &staff.actor, &filter)).await {
        Ok(r) => r,
        Err(e) => return failed(&console, &staff, e),
    };
    let people = match timing::db(people_service::list(&console.app, &staff.actor)).await {
        Ok(p) => p,
        Err(e) => return failed(&console, &staff, e),
    };
    let names: HashMap<String, String> = people
        .iter()
        .map(|p| (format!("coordinator:{}", p.id.0), p.name.clone()))
        .collect();
    let staff_names: HashMap<i64, String> =
        people.iter().map(|p| (p.id.0, p.name.clone())).collect();
    let line = |a: &AuditRow| AuditLine {
        at: local(&console, &t, a.at),
        who: names
            .get(&a.actor)
            .cloned()
            .unwrap_or_else(|| match a.actor.as_str() {
                "system" => t.t("money.who_system"),
                "cli" => t.t("people.who_cli"),
                other => other.to_owned(),
            }),
        action: t.t(action_key(&a.action)),
        subject: match (a.subject_kind.as_str(), staff_names.get(&a.subject_id)) {
            ("staff", Some(n)) => n.clone(),
            (kind, _) => format!("{kind} {}", a.subject_id),
        },
    };
    let url = "/console/people/audit";
    AuditPage {
        l: layout(&console, &t, &staff, url),
        rows: rows.iter().map(line).collect(),
        people: people
            .iter()
            .map(|p| (p.id.0, p.name.clone(), Some(p.id.0) == person))
            .collect(),
        action,
        from: from.map(|d| d.to_string()).unwrap_or_default(),
        to: to.map(|d| d.to_string()).unwrap_or_default(),
        limit: people_service::MAX_AUDIT,
        t,
    }
    .into_response()
}

fn welcome_page(
    console: &Console,
    headers: &HeaderMap,
    token: &str,
    lang: Option<&str>,
    status: StatusCode,
    name: Option<String>,
    error: Option<String>,
) -> Response {
    let (t, lang_cookie) = pages::language(console, lang, headers);
    let (csrf_token, csrf_cookie) = csrf::pre_session(headers);
    let path = "/console/welcome";
    let mut l = Layout::new(console, &t, path, &csrf_token);
    let action = format!("{path}/{token}");
    for link in &mut l.langs {
        link.href = format!("{action}?lang={}", link.code);
    }
    let response = match name {
        Some(name) => (
            status,
            WelcomePage {
                l,
                name,
                action,
                error,
                t,
            },
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            MessagePage {
                l,
                t,
                title_key: key("people.welcome.closed_title"),
                text_key: key("people.welcome.closed_text"),
                back: "/console/login",
                back_key: key("login.back"),
            },
        )
            .into_response(),
    };
    pages::with_cookies(response, [lang_cookie, csrf_cookie])
}

/// `GET /console/welcome/{token}`: the set-password form, while the link works (else one
/// page for unknown, used and expired links).
pub async fn welcome(
    State(console): State<Console>,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let name = match timing::db(people_service::link_state(&console.app, &token)).await {
        Ok(LinkState::Open { name }) => Some(name),
        Ok(LinkState::Closed) => None,
        Err(e) => {
            tracing::error!(error = %e, "console: reading a set-password link failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    welcome_page(
        &console,
        &headers,
        &token,
        q.lang.as_deref(),
        StatusCode::OK,
        name,
        None,
    )
}

#[derive(serde::Deserialize, Default)]
pub struct WelcomePost {
    #[serde(default)]
    password: String,
    #[serde(default)]
    again: String,
}

impl std::fmt::Debug for WelcomePost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WelcomePost(…)")
    }
}

/// `POST /console/welcome/{token}`: sets the password once (throttled per address like
/// sign-in); then to the sign-in page (303).
pub async fn welcome_post(
    State(console): State<Console>,
    Path(token): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<WelcomePost>,
) -> Response {
    let (t, _) = pages::language(&console, None, &headers);
    if !console.auth.may_try(ip) {
        tracing::warn!("console: set-password link throttled");
        let text = t.t("login.throttled");
        return welcome_page(
            &console,
            &headers,
            &token,
            None,
            StatusCode::TOO_MANY_REQUESTS,
            Some(String::new()),
            Some(text),
        );
    }
    let state = match timing::db(people_service::link_state(&console.app, &token)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "console: reading a set-password link failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let LinkState::Open { name } = state else {
        return welcome_page(
            &console,
            &headers,
            &token,
            None,
            StatusCode::NOT_FOUND,
            None,
            None,
        );
    };
    let refuse = |k: &str| {
        welcome_page(
            &console,
            &headers,
            &token,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(name.clone()),
            Some(t.t(k)),
        )
    };
    if form.password != form.again {
        return refuse(key("people.welcome.mismatch"));
    }
    match timing::db(people_service::use_link(
        &console.app,
        &token,
        &form.password,
    ))
    .await
    {
        Ok(()) => Redirect::to("/console/login").into_response(),
        Err(ServiceError::NotFound(_)) => welcome_page(
            &console,
            &headers,
            &token,
            None,
            StatusCode::NOT_FOUND,
            None,
            None,
        ),
        Err(e) => match refusal(&e) {
            Some((_, k)) => refuse(k),
            None => {
                tracing::error!(error = %e, "console: setting a password through a link failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        },
    }
}
