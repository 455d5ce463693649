//! The Projects pages (`/console/projects`, §3 of the console design; issue 10, page 2):
//! the list with its filters (community, status, kind) and each project's figures and
//! progress bar; a project's page with its figures, ratio, cap, match due, latest pledges
//! (masked numbers), receipts, disbursements and history; creating a project (admins), and
//! editing its target, ratio and cap or opening and closing it (admins and coordinators)
//! through a confirm page that shows old → new and the effect on matched.
//!
//! Every change calls `service::projects`, the admin API's rules (screen limits of the
//! names, money, ratio, scope, audit row, one-time form key). Counsellors read projects
//! without money figures; programme officers read everything and change nothing. A project
//! outside a coordinator's communities is 404. The ledger's "Record money" is the Money
//! page's (`/console/money/projects/{id}`), linked, not copied.
//!
//! Routes:
//! - `GET  /console/projects[?community=&status=&kind=]`: the list;
//! - `GET  /console/projects/new` (admins): the form; `POST` creates;
//! - `GET  /console/projects/{id}`: the project;
//! - `GET  /console/projects/{id}/edit`: the form; `GET …/edit/confirm` → confirm; `POST
//!   …/edit` changes;
//! - `GET  /console/projects/{id}/status?to=` → confirm; `POST` opens or closes.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Form,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::flash::FlashView;
use super::pages::form_key;
use super::{
    auth::Staff,
    flash::{self, Flash},
    i18n::{key, Tr},
    pages::staff_language as language,
    pages::{Answers, Layout},
    svg::{self, Svg},
    timing, Console,
};
use crate::{
    domain::{money::parse_amount, Phone},
    service::{
        self,
        projects::{self as projects_service, Change, NewProject},
        Actor, Once, ServiceError,
    },
    store::{
        pledges::{PledgeCursor, PledgeStatus},
        projects::{ProjectKind, ProjectStatus, ProjectTotals},
        CommunityId, PledgeId, ProjectId,
    },
};

/// The page's place in the navigation.
const PATH: &str = "/console/projects";
/// Longest figure a form accepts (characters).
const MAX_SHORT: usize = 40;
/// Longest name or code kept from what was typed (the service's limits are lower).
const MAX_TYPED: usize = 100;

/// Every text key the service's refusals may carry (for the completeness check).
pub const SERVICE_KEYS: &[&str] = &[
    key("projects.code_invalid"),
    key("projects.kind_invalid"),
    key("projects.status_invalid"),
    key("projects.name_length"),
    key("projects.target_invalid"),
    key("projects.cap_invalid"),
    key("projects.ratio_invalid"),
    key("projects.currency_invalid"),
    key("projects.code_taken"),
    key("projects.no_community"),
    key("projects.rule"),
    key("form.key_invalid"),
    key("form.key_reused"),
    key("form.in_progress"),
];

/// A choice of a filter or a list.
#[derive(Debug, Clone)]
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// A refusal beside a field (`field` is the input's id) and in the summary.
#[derive(Debug, Clone)]
pub struct FieldError {
    pub field: &'static str,
    pub text: String,
}

/// A project's money figures, worded (none for counsellors).
#[derive(Debug, Clone)]
pub struct Figures {
    pub target: String,
    pub pledged: String,
    pub received: String,
    pub matched: String,
    pub matched_total: String,
    pub percent: String,
    pub ratio: String,
    pub cap: String,
    pub bar: Svg,
}

/// A row of the list.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub name: String,
    pub code: String,
    pub community: String,
    pub kind: String,
    pub closed: bool,
    pub money: Option<Figures>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/projects.html")]
pub struct ListPage {
    pub t: Tr,
    pub l: Layout,
    pub rows: Vec<Row>,
    pub communities: Vec<Opt>,
    pub statuses: Vec<Opt>,
    pub kinds: Vec<Opt>,
    pub may_create: bool,
    pub filtered: bool,
    pub flash: Option<FlashView>,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub day: String,
    pub amount: String,
    pub who: String,
    pub note: String,
}

#[derive(Debug, Clone)]
pub struct AuditLine {
    pub at: String,
    pub what: String,
    pub detail: String,
    pub who: String,
}

/// A project as its page shows it.
#[derive(Debug, Clone)]
pub struct Card {
    pub id: i64,
    pub name: String,
    pub code: String,
    pub community: String,
    pub kind: String,
    pub closed: bool,
    pub money: Option<Figures>,
    pub disbursed: String,
    pub match_due: String,
    /// A page of pledges: the latest, or older ones (`older_page`).
    pub pledges: Vec<Line>,
    pub older_page: bool,
    /// The link to the next older page of pledges, when there is one.
    pub older: Option<String>,
    pub receipts: Vec<Line>,
    pub disbursements: Vec<Line>,
    pub history: Vec<AuditLine>,
    /// Whether the target was reached and the pledgers told (project news, issue 11).
    pub reached: Option<ReachedLine>,
}

/// "Target reached on 12 May 2027. Its pledgers were told by SMS.", with the message's page
/// for those who see broadcasts.
#[derive(Debug, Clone)]
pub struct ReachedLine {
    pub text: String,
    pub broadcast: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/projects_page.html")]
pub struct ProjectPage {
    pub t: Tr,
    pub l: Layout,
    pub p: Card,
    pub may_edit: bool,
    /// "Post an update" (to the project's pledgers): the compose page with the audience
    /// chosen, for those who send broadcasts.
    pub post_update: Option<String>,
    pub flash: Option<FlashView>,
}

/// What the edit form shows: what was typed, or the project's values.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct EditInput {
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub ratio: String,
    #[serde(default)]
    pub cap: String,
    pub lang: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/projects_edit.html")]
pub struct EditPage {
    pub t: Tr,
    pub l: Layout,
    pub id: i64,
    pub name: String,
    pub currency: String,
    pub form: EditInput,
    pub errors: Vec<FieldError>,
}

impl EditPage {
    pub fn error_of(&self, field: &str) -> Option<&str> {
        error_of(&self.errors, field)
    }
}

/// What the create form shows.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct NewInput {
    #[serde(default)]
    pub community: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name_tg: String,
    #[serde(default)]
    pub name_ru: String,
    #[serde(default)]
    pub name_en: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub ratio: String,
    #[serde(default)]
    pub cap: String,
    #[serde(default)]
    pub key: String,
    pub lang: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/projects_new.html")]
pub struct NewPage {
    pub t: Tr,
    pub l: Layout,
    pub form: NewInput,
    pub communities: Vec<Opt>,
    pub kinds: Vec<Opt>,
    pub key: String,
    pub errors: Vec<FieldError>,
    pub max_name: String,
}

impl NewPage {
    /// The three name inputs: id, label's text key, what was typed.
    pub fn name_fields(&self) -> [(&'static str, &'static str, &str); 3] {
        [
            ("name_tg", key("projects.field.name_tg"), &self.form.name_tg),
            ("name_ru", key("projects.field.name_ru"), &self.form.name_ru),
            ("name_en", key("projects.field.name_en"), &self.form.name_en),
        ]
    }

    pub fn error_of(&self, field: &str) -> Option<&str> {
        error_of(&self.errors, field)
    }
}

/// The confirm page of a change: what will happen, and one POST button.
#[derive(Template, WebTemplate)]
#[template(path = "console/projects_confirm.html")]
pub struct ConfirmPage {
    pub t: Tr,
    pub l: Layout,
    pub title: String,
    pub what: String,
    /// Old → new, one line each.
    pub changes: Vec<(String, String, String)>,
    pub details: Vec<String>,
    pub action: String,
    pub key: String,
    pub fields: Vec<(&'static str, String)>,
    pub button: String,
    pub back: String,
}

fn error_of<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|e| e.field == field)
        .map(|e| e.text.as_str())
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    community: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    kind: String,
    lang: Option<String>,
}

/// A project page's query: the language, and where its page of pledges starts.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
    /// `<created_at in microseconds since 1970>_<id>` of the last pledge of the page
    /// before, as the "older" link carries it (households' timelines do the same).
    before: Option<String>,
}

/// A page cursor from its text; `None` (the first page) for anything else.
fn parse_cursor(raw: &str) -> Option<PledgeCursor> {
    let (micros, id) = raw.split_once('_')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((at, PledgeId(id.parse().ok()?)))
}

/// The text of a page cursor.
fn cursor_text((at, id): PledgeCursor) -> String {
    format!("{}_{}", at.timestamp_micros(), id.0)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    to: String,
    lang: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct EditPost {
    #[serde(default)]
    key: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    ratio: String,
    #[serde(default)]
    cap: String,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct StatusPost {
    #[serde(default)]
    key: String,
    #[serde(default)]
    to: String,
}

/// The layout of a page at `url` (the language links keep the page).
fn layout(console: &Console, t: &Tr, staff: &Staff, url: &str) -> Layout {
    Layout::signed_in_at(console, t, PATH, staff, url)
}

const ANSWERS: Answers = Answers {
    path: PATH,
    back: PATH,
    back_key: key("projects.back_to_list"),
    not_found: (
        key("projects.not_found.title"),
        key("projects.not_found.text"),
    ),
    failed: (key("projects.failed.title"), key("projects.failed.text")),
    what: "projects",
};

fn not_found(console: &Console, staff: &Staff) -> Response {
    ANSWERS.not_found(console, staff)
}

fn failed(console: &Console, staff: &Staff, e: ServiceError) -> Response {
    ANSWERS.failed(console, staff, e)
}

/// The form input a service field is typed in.
fn input_of(field: &str) -> &'static str {
    match field {
        "code" => "code",
        "kind" => "kind",
        "name_tg" => "name_tg",
        "name_ru" => "name_ru",
        "name_en" => "name_en",
        "target" => "target",
        "match_ratio" | "ratio" => "ratio",
        "match_cap" | "cap" => "cap",
        "currency" => "currency",
        "community_id" | "community" => "community",
        _ => "summary",
    }
}

/// A refusal of the service: the input it is about and its text key.
fn refusal(e: &ServiceError) -> Option<(&'static str, &'static str)> {
    match e {
        ServiceError::Invalid { field, key: k, .. } => Some((input_of(field), k)),
        ServiceError::Conflict { rule, .. } => Some((
            if *rule == "projects.code_taken" {
                "code"
            } else {
                "summary"
            },
            rule,
        )),
        _ => None,
    }
}

/// The flash (if any) as a message on top, or as errors beside the fields.
async fn take_flash(staff: &Staff, t: &Tr, errors: &mut Vec<FieldError>) -> Option<FlashView> {
    let f = flash::take(&staff.session).await?;
    if f.is_done() {
        return Some(FlashView {
            done: true,
            text: f.text(t),
        });
    }
    errors.push(FieldError {
        field: input_of(f.field.as_deref().unwrap_or("summary")),
        text: f.text(t),
    });
    None
}

fn local(console: &Console, t: &Tr, at: DateTime<Utc>) -> String {
    let at = at.with_timezone(&console.app.config.timezone);
    format!("{} {}", t.date(at.date_naive()), t.time(at.time()))
}

fn kind_key(k: ProjectKind) -> &'static str {
    match k {
        ProjectKind::Infrastructure => key("projects.kind.infrastructure"),
        ProjectKind::Business => key("projects.kind.business"),
    }
}

fn status_key(s: ProjectStatus) -> &'static str {
    match s {
        ProjectStatus::Open => key("projects.status.open"),
        ProjectStatus::Closed => key("projects.status.closed"),
    }
}

fn pledge_status_key(s: PledgeStatus) -> &'static str {
    match s {
        PledgeStatus::Pledged => key("money.status.pledged"),
        PledgeStatus::Received => key("money.status.received"),
        PledgeStatus::Cancelled => key("money.status.cancelled"),
    }
}

fn action_key(action: &str) -> &'static str {
    match action {
        "project.create" => key("projects.action.create"),
        "project.edit" => key("projects.action.edit"),
        "project.open" => key("projects.action.open"),
        "project.close" => key("projects.action.close"),
        "receipt.record_without_pledge" => key("projects.action.receipt"),
        "disbursement.record" => key("projects.action.disbursement"),
        "receipt.reverse" => key("projects.action.receipt_reverse"),
        "disbursement.reverse" => key("projects.action.disbursement_reverse"),
        _ => key("projects.action.other"),
    }
}

/// A ratio as people say it: `2:1`, `0,5:1`.
fn ratio_text(t: &Tr, ratio: Decimal) -> String {
    let r = ratio.normalize();
    format!("{}:1", t.number(r, r.scale()))
}

fn cap_text(t: &Tr, cap: Option<Decimal>, currency: &str) -> String {
    match cap {
        Some(c) => t.money(c, currency),
        None => t.t("projects.no_cap"),
    }
}

fn figures(t: &Tr, p: &ProjectTotals) -> Figures {
    let cur = &p.currency;
    let label = t.t_with(
        key("projects.bar_label"),
        &[
            ("total", &t.money(p.matched_total, cur)),
            ("target", &t.money(p.target, cur)),
            ("percent", &t.percent(p.percent)),
        ],
    );
    let titles = [
        t.t_with(
            key("projects.bar.received"),
            &[("amount", &t.money(p.received, cur))],
        ),
        t.t_with(
            key("projects.bar.matched"),
            &[("amount", &t.money(p.matched, cur))],
        ),
        t.t_with(
            key("projects.bar.outstanding"),
            &[("amount", &t.money(p.outstanding, cur))],
        ),
        t.t_with(
            key("projects.bar.target"),
            &[("amount", &t.money(p.target, cur))],
        ),
    ];
    Figures {
        target: t.money(p.target, cur),
        pledged: t.money(p.pledged, cur),
        received: t.money(p.received, cur),
        matched: t.money(p.matched, cur),
        matched_total: t.money(p.matched_total, cur),
        percent: t.percent(p.percent),
        ratio: ratio_text(t, p.match_ratio),
        cap: cap_text(t, p.match_cap, cur),
        bar: svg::progress(&svg::Progress {
            received: p.received,
            matched: p.matched,
            outstanding: p.outstanding,
            target: p.target,
            label: &label,
            titles: [&titles[0], &titles[1], &titles[2], &titles[3]],
        }),
    }
}

/// Whether the person sees money figures (everyone but counsellors).
fn sees_money(actor: &Actor) -> bool {
    actor.role != service::Role::Counsellor
}

/// The communities this person sees, by id, with their names in `t`'s language.
async fn community_names(
    console: &Console,
    actor: &Actor,
    t: &Tr,
) -> Result<Vec<(i64, String)>, ServiceError> {
    let list = timing::db(crate::store::communities::list(
        &console.app.pool,
        actor.scope(),
    ))
    .await?;
    Ok(list
        .into_iter()
        .map(|c| (c.id.0, c.name.get(t.language).to_owned()))
        .collect())
}

fn options<T: Copy + PartialEq>(
    t: &Tr,
    all: &[T],
    chosen: Option<T>,
    value: impl Fn(T) -> &'static str,
    label: impl Fn(T) -> &'static str,
) -> Vec<Opt> {
    all.iter()
        .map(|&v| Opt {
            value: value(v).to_owned(),
            label: t.t(label(v)),
            selected: chosen == Some(v),
        })
        .collect()
}

/// `GET /console/projects`: the projects this person sees, filtered.
pub async fn list(
    State(console): State<Console>,
    Query(q): Query<ListQuery>,
    staff: Staff,
) -> Response {
    let t = language(&staff, q.lang.as_deref()).await;
    let community = q.community.trim().parse::<i64>().ok().map(CommunityId);
    let status = q.status.parse::<ProjectStatus>().ok();
    let kind = q.kind.parse::<ProjectKind>().ok();
    let rows = match timing::db(projects_service::list(
        &console.app,
        &staff.actor,
        community,
        status,
        kind,
    ))
    .await
    {
        Ok(rows) => rows,
        Err(e) => return failed(&console, &staff, e),
    };
    let names = match community_names(&console, &staff.actor, &t).await {
        Ok(n) => n,
        Err(e) => return failed(&console, &staff, e),
    };
    let by_id: HashMap<i64, &str> = names.iter().map(|(id, n)| (*id, n.as_str())).collect();
    let money = sees_money(&staff.actor);
    let rows = rows
        .iter()
        .map(|p| Row {
            id: p.id.0,
            name: p.name.get(t.language).to_owned(),
            code: p.code.clone(),
            community: by_id.get(&p.community.0).copied().unwrap_or("").to_owned(),
            kind: t.t(kind_key(p.kind)),
            closed: p.status == ProjectStatus::Closed,
            money: money.then(|| figures(&t, p)),
        })
        .collect();
    let mut ignored = Vec::new();
    let flash = take_flash(&staff, &t, &mut ignored).await;
    let mut query = Vec::new();
    for (name, value) in [
        ("community", community.map(|c| c.0.to_string())),
        ("status", status.map(|s| s.as_str().to_owned())),
        ("kind", kind.map(|k| k.as_str().to_owned())),
    ] {
        if let Some(v) = value {
            query.push(format!("{name}={v}"));
        }
    }
    let url = if query.is_empty() {
        PATH.to_owned()
    } else {
        format!("{PATH}?{}", query.join("&"))
    };
    let page = ListPage {
        l: layout(&console, &t, &staff, &url),
        communities: names
            .iter()
            .map(|(id, n)| Opt {
                value: id.to_string(),
                label: n.clone(),
                selected: community == Some(CommunityId(*id)),
            })
            .collect(),
        statuses: options(
            &t,
            &ProjectStatus::ALL,
            status,
            ProjectStatus::as_str,
            status_key,
        ),
        kinds: options(&t, &ProjectKind::ALL, kind, ProjectKind::as_str, kind_key),
        may_create: staff.actor.role == service::Role::Admin,
        filtered: !query.is_empty(),
        flash,
        rows,
        t,
    };
    page.into_response()
}

fn masked(phone: &str) -> String {
    Phone::parse(phone)
        .map(|p| p.masked())
        .unwrap_or_else(|_| crate::domain::phone::mask(phone))
}

fn who(t: &Tr, names: &HashMap<String, String>, recorded_by: &str) -> String {
    names
        .get(recorded_by)
        .cloned()
        .unwrap_or_else(|| match recorded_by {
            "system" => t.t("money.who_system"),
            other => other.to_owned(),
        })
}

/// An audit row's old → new, in words (figures only for those who see money).
fn audit_detail(t: &Tr, detail: &serde_json::Value, money: bool) -> String {
    let (Some(before), Some(after)) = (detail.get("before"), detail.get("after")) else {
        return String::new();
    };
    if before.is_null() || !money {
        return String::new();
    }
    let mut parts = Vec::new();
    for (field, label) in [
        ("target", key("projects.field.target")),
        ("match_ratio", key("projects.field.ratio")),
        ("match_cap", key("projects.field.cap")),
        ("status", key("projects.field.status")),
    ] {
        let (b, a) = (&before[field], &after[field]);
        if b != a {
            let show = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "—".to_owned(),
                other => other.to_string(),
            };
            parts.push(format!("{}: {} → {}", t.t(label), show(b), show(a)));
        }
    }
    parts.join("; ")
}

/// `GET /console/projects/{id}`: the project's page.
pub async fn page(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
    staff: Staff,
) -> Response {
    let t = language(&staff, q.lang.as_deref()).await;
    let before = q.before.as_deref().and_then(parse_cursor);
    let view = match timing::db(projects_service::view(
        &console.app,
        &staff.actor,
        ProjectId(id),
        before,
    ))
    .await
    {
        Ok(v) => v,
        Err(e) => return failed(&console, &staff, e),
    };
    let money = sees_money(&staff.actor);
    let p = &view.totals;
    let post_update = crate::service::broadcasts::sends(&staff.actor).then(|| {
        format!(
            "/console/broadcasts/new?community={}&only_project={}&update=1",
            p.community.0, p.id.0
        )
    });
    let cur = &p.currency;
    let mut whos: Vec<&str> = view.audit.iter().map(|a| a.actor.as_str()).collect();
    whos.extend(view.receipts.iter().map(|r| r.recorded_by.as_str()));
    whos.extend(view.disbursements.iter().map(|d| d.recorded_by.as_str()));
    let names = match timing::db(service::money::names(&console.app, &whos)).await {
        Ok(n) => n,
        Err(e) => return failed(&console, &staff, e),
    };
    let community = match timing::db(crate::store::communities::name(
        &console.app.pool,
        p.community,
    ))
    .await
    {
        Ok(n) => n.get(t.language).to_owned(),
        Err(e) => return failed(&console, &staff, e.into()),
    };
    let tz = console.app.config.timezone;
    let reached = match timing::db(crate::service::news::target_reached(
        &console.app,
        &staff.actor,
        id,
    ))
    .await
    {
        Ok(r) => r.map(|r| {
            let date = t.date_long(r.reached_at.with_timezone(&tz).date_naive());
            let k = match r.state.as_str() {
                "announced" => key("projects.reached.announced"),
                "due" => key("projects.reached.due"),
                _ => key("projects.reached.before"),
            };
            ReachedLine {
                text: t.t_with(k, &[("date", &date)]),
                broadcast: r
                    .broadcast
                    .filter(|_| crate::service::broadcasts::sends(&staff.actor))
                    .map(|b| format!("/console/broadcasts/{}", b.0)),
            }
        }),
        Err(e) => return failed(&console, &staff, e),
    };
    let card = Card {
        reached,
        id: p.id.0,
        name: p.name.get(t.language).to_owned(),
        code: p.code.clone(),
        community,
        kind: t.t(kind_key(p.kind)),
        closed: p.status == ProjectStatus::Closed,
        money: money.then(|| figures(&t, p)),
        older_page: before.is_some(),
        older: view
            .older
            .filter(|_| money)
            .map(|c| format!("{PATH}/{id}?before={}#pledges-title", cursor_text(c))),
        disbursed: t.money(view.ledger.disbursed, cur),
        match_due: t.money(view.ledger.match_due, cur),
        pledges: if money {
            view.pledges
                .iter()
                .map(|pl| Line {
                    day: t.date(pl.created_at.with_timezone(&tz).date_naive()),
                    amount: t.money(pl.amount, &pl.currency),
                    who: masked(&pl.phone),
                    note: t.t(pledge_status_key(pl.status)),
                })
                .collect()
        } else {
            Vec::new()
        },
        receipts: if money {
            view.receipts
                .iter()
                .map(|r| Line {
                    day: t.date(r.received_on),
                    amount: t.money(r.amount, &r.currency),
                    who: who(&t, &names, &r.recorded_by),
                    note: r.reason.clone().unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        },
        disbursements: if money {
            view.disbursements
                .iter()
                .map(|d| Line {
                    day: t.date(d.disbursed_on),
                    amount: t.money(d.amount, &d.currency),
                    who: d.partner.clone(),
                    note: d.reason.clone().unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        },
        history: view
            .audit
            .iter()
            .map(|a| AuditLine {
                at: local(&console, &t, a.at),
                what: t.t(action_key(&a.action)),
                detail: audit_detail(&t, &a.detail, money),
                who: who(&t, &names, &a.actor),
            })
            .collect(),
    };
    let mut ignored = Vec::new();
    let flash = take_flash(&staff, &t, &mut ignored).await;
    let page = ProjectPage {
        l: layout(
            &console,
            &t,
            &staff,
            &match before {
                Some(c) => format!("{PATH}/{id}?before={}", cursor_text(c)),
                None => format!("{PATH}/{id}"),
            },
        ),
        may_edit: projects_service::edits(&staff.actor),
        post_update,
        p: card,
        flash,
        t,
    };
    page.into_response()
}

/// The project for an edit, or the 404 for one who does not edit projects.
async fn editable(
    console: &Console,
    staff: &Staff,
    id: i64,
) -> Result<ProjectTotals, Box<Response>> {
    if !projects_service::edits(&staff.actor) {
        return Err(Box::new(not_found(console, staff)));
    }
    timing::db(projects_service::get(
        &console.app,
        &staff.actor,
        ProjectId(id),
    ))
    .await
    .map_err(|e| Box::new(failed(console, staff, e)))
}

fn short(v: &str) -> String {
    v.chars().take(MAX_SHORT).collect()
}

fn typed(v: &str) -> String {
    v.chars().take(MAX_TYPED).collect()
}

/// A ratio as typed (`2`, `0,5`, `1.25`).
fn parse_ratio(input: &str) -> Option<Decimal> {
    let v = input.trim().replace(',', ".");
    if v.is_empty() || v.len() > 12 {
        return None;
    }
    v.parse::<Decimal>().ok()
}

/// The edit as typed, checked with the service's rules: the change, or the errors.
fn check_edit(t: &Tr, input: &EditInput) -> Result<Change, Vec<FieldError>> {
    let mut errors = Vec::new();
    let max = Decimal::from(999_999_999_999i64);
    let target = parse_amount(&input.target, max)
        .ok()
        .and_then(|v| projects_service::money("target", v, true).ok());
    if target.is_none() {
        errors.push(FieldError {
            field: "target",
            text: t.t("projects.target_invalid"),
        });
    }
    let ratio = parse_ratio(&input.ratio).and_then(|v| projects_service::ratio(v).ok());
    if ratio.is_none() {
        errors.push(FieldError {
            field: "ratio",
            text: t.t("projects.ratio_invalid"),
        });
    }
    let cap = if input.cap.trim().is_empty() {
        Some(None)
    } else {
        parse_amount(&input.cap, max)
            .ok()
            .and_then(|v| projects_service::money("match_cap", v, false).ok())
            .map(Some)
    };
    if cap.is_none() {
        errors.push(FieldError {
            field: "cap",
            text: t.t("projects.cap_invalid"),
        });
    }
    match (target, ratio, cap) {
        (Some(target), Some(ratio), Some(cap)) if errors.is_empty() => Ok(Change {
            target: Some(target),
            match_ratio: Some(ratio),
            match_cap: Some(cap),
            status: None,
        }),
        _ => Err(errors),
    }
}

/// `GET /console/projects/{id}/edit`: the form with the project's values (or what was
/// typed before a refusal).
pub async fn edit_form(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<EditInput>,
    staff: Staff,
) -> Response {
    let p = match editable(&console, &staff, id).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let t = language(&staff, q.lang.as_deref()).await;
    let mut errors = Vec::new();
    take_flash(&staff, &t, &mut errors).await;
    let typed = !(q.target.is_empty() && q.ratio.is_empty() && q.cap.is_empty());
    let form = if typed {
        EditInput {
            target: short(&q.target),
            ratio: short(&q.ratio),
            cap: short(&q.cap),
            lang: None,
        }
    } else {
        EditInput {
            target: t.number(p.target, 2),
            ratio: t.number(p.match_ratio.normalize(), p.match_ratio.normalize().scale()),
            cap: p.match_cap.map(|c| t.number(c, 2)).unwrap_or_default(),
            lang: None,
        }
    };
    edit_page(&console, &staff, t, &p, form, errors, StatusCode::OK)
}

fn edit_page(
    console: &Console,
    staff: &Staff,
    t: Tr,
    p: &ProjectTotals,
    form: EditInput,
    errors: Vec<FieldError>,
    status: StatusCode,
) -> Response {
    let page = EditPage {
        l: layout(console, &t, staff, &format!("{PATH}/{}/edit", p.id.0)),
        id: p.id.0,
        name: p.name.get(t.language).to_owned(),
        currency: p.currency.clone(),
        form,
        errors,
        t,
    };
    (status, page).into_response()
}

/// `GET /console/projects/{id}/edit/confirm`: the edit checked, then old → new and the
/// effect on matched; refused, the form with the reasons (422).
pub async fn edit_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<EditInput>,
    staff: Staff,
) -> Response {
    let p = match editable(&console, &staff, id).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let t = language(&staff, q.lang.as_deref()).await;
    let input = EditInput {
        target: short(&q.target),
        ratio: short(&q.ratio),
        cap: short(&q.cap),
        lang: None,
    };
    let change = match check_edit(&t, &input) {
        Ok(c) => c,
        Err(errors) => {
            return edit_page(
                &console,
                &staff,
                t,
                &p,
                input,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    };
    let cur = &p.currency;
    let target = change.target.unwrap_or(p.target);
    let ratio = change.match_ratio.unwrap_or(p.match_ratio);
    let cap = change.match_cap.unwrap_or(p.match_cap);
    let matched = projects_service::matched(p.received, ratio, cap);
    let changes = vec![
        (
            t.t("projects.field.target"),
            t.money(p.target, cur),
            t.money(target, cur),
        ),
        (
            t.t("projects.field.ratio"),
            ratio_text(&t, p.match_ratio),
            ratio_text(&t, ratio),
        ),
        (
            t.t("projects.field.cap"),
            cap_text(&t, p.match_cap, cur),
            cap_text(&t, cap, cur),
        ),
        (
            t.t("projects.field.matched"),
            t.money(p.matched, cur),
            t.money(matched, cur),
        ),
        (
            t.t("projects.field.matched_total"),
            t.money(p.matched_total, cur),
            t.money(p.received + matched, cur),
        ),
    ];
    let mut details = vec![t.t_with(
        key("projects.confirm.matched_rule"),
        &[("received", &t.money(p.received, cur))],
    )];
    let disbursed = match timing::db(service::money::project_view(
        &console.app,
        &staff.actor,
        p.id,
    ))
    .await
    {
        Ok((ledger, _)) => ledger.disbursed,
        Err(e) => return failed(&console, &staff, e),
    };
    if matched < disbursed {
        details.push(t.t_with(
            key("projects.confirm.below_disbursed"),
            &[("disbursed", &t.money(disbursed, cur))],
        ));
    }
    let page = ConfirmPage {
        l: layout(&console, &t, &staff, &format!("{PATH}/{id}/edit")),
        title: t.t("projects.confirm.edit_title"),
        what: t.t_with(
            key("projects.confirm.edit_what"),
            &[("project", p.name.get(t.language))],
        ),
        changes,
        details,
        action: format!("{PATH}/{id}/edit"),
        key: form_key(),
        fields: vec![
            ("target", target.to_string()),
            ("ratio", ratio.normalize().to_string()),
            ("cap", cap.map(|c| c.to_string()).unwrap_or_default()),
        ],
        button: t.t("projects.confirm.edit_button"),
        back: format!("{PATH}/{id}/edit"),
        t,
    };
    page.into_response()
}

/// Where a refused form goes back to: `path` with what was typed.
fn back_with(path: &str, typed: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(typed.iter().filter(|(_, v)| !v.is_empty()))
        .finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// Puts a refusal in the flash and answers 303 to `back`, or 404/500 for what is not one.
async fn refused(console: &Console, staff: &Staff, e: ServiceError, back: &str) -> Response {
    let Some((field, text_key)) = refusal(&e) else {
        return failed(console, staff, e);
    };
    let field = (field != "summary").then_some(field);
    flash::set(&staff.session, Flash::refused(text_key, field)).await;
    Redirect::to(back).into_response()
}

/// `POST /console/projects/{id}/edit`: changes target, ratio and cap (once per form key),
/// 303 to the project with "Saved"; refused, 303 back to the form with what was typed.
pub async fn edit_save(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<EditPost>,
) -> Response {
    if !projects_service::edits(&staff.actor) {
        return not_found(&console, &staff);
    }
    let t = Tr::new(staff.signed.language);
    let input = EditInput {
        target: short(&form.target),
        ratio: short(&form.ratio),
        cap: short(&form.cap),
        lang: None,
    };
    let back = back_with(
        &format!("{PATH}/{id}/edit"),
        &[
            ("target", &input.target),
            ("ratio", &input.ratio),
            ("cap", &input.cap),
        ],
    );
    let change = match check_edit(&t, &input) {
        Ok(c) => c,
        Err(errors) => {
            let field = errors.first().map_or("summary", |e| e.field);
            let text_key = match field {
                "ratio" => key("projects.ratio_invalid"),
                "cap" => key("projects.cap_invalid"),
                _ => key("projects.target_invalid"),
            };
            flash::set(&staff.session, Flash::refused(text_key, Some(field))).await;
            return Redirect::to(&back).into_response();
        }
    };
    match timing::db(projects_service::change(
        &console.app,
        &staff.actor,
        ProjectId(id),
        change,
        Once::Form(&form.key),
    ))
    .await
    {
        Ok(_) => {
            flash::set(&staff.session, Flash::done(key("projects.flash.saved"))).await;
            Redirect::to(&format!("{PATH}/{id}")).into_response()
        }
        Err(e) => refused(&console, &staff, e, &back).await,
    }
}

/// `GET /console/projects/{id}/status?to=open|closed`: what opening or closing does, and
/// the button.
pub async fn status_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<StatusQuery>,
    staff: Staff,
) -> Response {
    let p = match editable(&console, &staff, id).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let t = language(&staff, q.lang.as_deref()).await;
    let to = match projects_service::status(&q.to) {
        Ok(s) if s != p.status => s,
        _ => {
            flash::set(
                &staff.session,
                Flash::refused(key("projects.status_invalid"), None),
            )
            .await;
            return Redirect::to(&format!("{PATH}/{id}")).into_response();
        }
    };
    let name = p.name.get(t.language);
    let (title, what, detail, button) = match to {
        ProjectStatus::Closed => (
            key("projects.confirm.close_title"),
            key("projects.confirm.close_what"),
            key("projects.confirm.close_detail"),
            key("projects.confirm.close_button"),
        ),
        ProjectStatus::Open => (
            key("projects.confirm.open_title"),
            key("projects.confirm.open_what"),
            key("projects.confirm.open_detail"),
            key("projects.confirm.open_button"),
        ),
    };
    let page = ConfirmPage {
        l: layout(
            &console,
            &t,
            &staff,
            &format!("{PATH}/{id}/status?to={}", to.as_str()),
        ),
        title: t.t(title),
        what: t.t_with(what, &[("project", name)]),
        changes: vec![(
            t.t("projects.field.status"),
            t.t(status_key(p.status)),
            t.t(status_key(to)),
        )],
        details: vec![t.t(detail)],
        action: format!("{PATH}/{id}/status"),
        key: form_key(),
        fields: vec![("to", to.as_str().to_owned())],
        button: t.t(button),
        back: format!("{PATH}/{id}"),
        t,
    };
    page.into_response()
}

/// `POST /console/projects/{id}/status`: opens or closes the project (once per form key).
pub async fn status_save(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<StatusPost>,
) -> Response {
    if !projects_service::edits(&staff.actor) {
        return not_found(&console, &staff);
    }
    let page = format!("{PATH}/{id}");
    let to = match projects_service::status(&form.to) {
        Ok(s) => s,
        Err(e) => return refused(&console, &staff, e, &page).await,
    };
    let change = Change {
        status: Some(to),
        ..Change::default()
    };
    match timing::db(projects_service::change(
        &console.app,
        &staff.actor,
        ProjectId(id),
        change,
        Once::Form(&form.key),
    ))
    .await
    {
        Ok(_) => {
            let done = match to {
                ProjectStatus::Closed => key("projects.flash.closed"),
                ProjectStatus::Open => key("projects.flash.opened"),
            };
            flash::set(&staff.session, Flash::done(done)).await;
            Redirect::to(&page).into_response()
        }
        Err(e) => refused(&console, &staff, e, &page).await,
    }
}

/// `GET /console/projects/new` (admins): the form (what was typed before a refusal).
pub async fn new_form(
    State(console): State<Console>,
    Query(q): Query<NewInput>,
    staff: Staff,
) -> Response {
    if staff.actor.role != service::Role::Admin {
        return not_found(&console, &staff);
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let mut errors = Vec::new();
    take_flash(&staff, &t, &mut errors).await;
    let names = match community_names(&console, &staff.actor, &t).await {
        Ok(n) => n,
        Err(e) => return failed(&console, &staff, e),
    };
    let form = bounded_new(&q);
    let kind = form.kind.parse::<ProjectKind>().ok();
    let page = NewPage {
        l: layout(&console, &t, &staff, &format!("{PATH}/new")),
        communities: names
            .iter()
            .map(|(id, n)| Opt {
                value: id.to_string(),
                label: n.clone(),
                selected: form.community == id.to_string(),
            })
            .collect(),
        kinds: options(
            &t,
            &ProjectKind::ALL,
            kind.or(Some(ProjectKind::Infrastructure)),
            ProjectKind::as_str,
            kind_key,
        ),
        key: form_key(),
        errors,
        max_name: crate::engine::check::MAX_PROJECT_NAME.to_string(),
        form,
        t,
    };
    page.into_response()
}

fn bounded_new(q: &NewInput) -> NewInput {
    NewInput {
        community: short(&q.community),
        code: short(&q.code),
        kind: short(&q.kind),
        name_tg: typed(&q.name_tg),
        name_ru: typed(&q.name_ru),
        name_en: typed(&q.name_en),
        target: short(&q.target),
        currency: short(&q.currency),
        ratio: short(&q.ratio),
        cap: short(&q.cap),
        key: short(&q.key),
        lang: None,
    }
}

/// `POST /console/projects/new` (admins): creates the project (once per form key), 303 to
/// its page with "Created"; refused, 303 back to the form with what was typed and why.
pub async fn new_save(
    State(console): State<Console>,
    staff: Staff,
    Form(form): Form<NewInput>,
) -> Response {
    if staff.actor.role != service::Role::Admin {
        return not_found(&console, &staff);
    }
    let f = bounded_new(&form);
    let back = back_with(
        &format!("{PATH}/new"),
        &[
            ("community", &f.community),
            ("code", &f.code),
            ("kind", &f.kind),
            ("name_tg", &f.name_tg),
            ("name_ru", &f.name_ru),
            ("name_en", &f.name_en),
            ("target", &f.target),
            ("currency", &f.currency),
            ("ratio", &f.ratio),
            ("cap", &f.cap),
        ],
    );
    let max = Decimal::from(999_999_999_999i64);
    let refuse = |field: &'static str, text_key: &'static str| {
        let session = staff.session.clone();
        let back = back.clone();
        async move {
            flash::set(&session, Flash::refused(text_key, Some(field))).await;
            Redirect::to(&back).into_response()
        }
    };
    let Ok(community) = f.community.trim().parse::<i64>() else {
        return refuse("community", key("projects.no_community")).await;
    };
    let Ok(target) = parse_amount(&f.target, max) else {
        return refuse("target", key("projects.target_invalid")).await;
    };
    let Some(ratio) = parse_ratio(&f.ratio) else {
        return refuse("ratio", key("projects.ratio_invalid")).await;
    };
    let cap = if f.cap.trim().is_empty() {
        None
    } else {
        match parse_amount(&f.cap, max) {
            Ok(c) => Some(c),
            Err(_) => return refuse("cap", key("projects.cap_invalid")).await,
        }
    };
    let created = timing::db(projects_service::create(
        &console.app,
        &staff.actor,
        NewProject {
            community: CommunityId(community),
            code: &f.code,
            kind: &f.kind,
            name: [&f.name_tg, &f.name_ru, &f.name_en],
            target,
            currency: Some(&f.currency),
            match_ratio: ratio,
            match_cap: cap,
        },
        Once::Form(&form.key),
    ))
    .await;
    match created {
        Ok(id) => {
            flash::set(
                &staff.session,
                Flash::done(key("projects.flash.created"))
                    .with("code", f.code.trim().to_uppercase()),
            )
            .await;
            Redirect::to(&format!("{PATH}/{}", id.0)).into_response()
        }
        Err(ServiceError::Forbidden) => refuse("community", key("projects.no_community")).await,
        Err(e) => refused(&console, &staff, e, &back).await,
    }
}
