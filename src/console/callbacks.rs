//! The Callbacks page (`/console/callbacks`, §3 of the console design; issue 11 point 5):
//! the counsellors' queue of households that asked to be called back, oldest first, with
//! waiting time, household, community, language, "due by" (overdue ones highlighted and
//! counted) and a `tel:` button per request; **Take** (the household gets an SMS that a
//! counsellor will call today), then **Record outcome** (reached, no answer, wrong number,
//! declined; the topics the call covered; an optional note). "No answer" puts the request
//! back in the queue two hours later; the third closes it as unreachable.
//!
//! Every change calls `service::callbacks`, the admin API's rules (role, audit row, one-time
//! form key). Counsellors and admins only: coordinators and programme officers get 404.
//!
//! Routes:
//! - `GET  /console/callbacks[?language=tg|ru|en][&done=1]`: the queue (or the done ones);
//! - `GET  /console/callbacks/coverage`: the queue's reach per community (30 days);
//! - `GET  /console/callbacks/{id}/take`: the confirm page (the household's SMS shown);
//! - `POST /console/callbacks/{id}/take`: take it, 303 back with "Taken · SMS queued";
//! - `POST /console/callbacks/{id}/outcome`: record the call, 303 back;
//! - `POST /console/callbacks/{id}/release`: its holder (or an admin) puts it back in the
//!   queue, 303 back.

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use chrono::{DateTime, Utc};

use super::flash::FlashView;
use super::pages::form_key;
use super::{
    auth::Staff,
    flash::{self, Flash},
    i18n::{key, Tr},
    pages::{endonym, staff_language as language, Answers, Layout},
    Console,
};
use crate::{
    domain::Language,
    service::{
        callbacks::{self as service, Callback, ListQuery, Outcome, Record, Stage, Topic},
        Once, Role, ServiceError,
    },
};

/// The page's place in the navigation.
const PATH: &str = "/console/callbacks";
/// Requests a page shows (the rest: "more" by offset).
const PAGE: i64 = 50;
/// Longest form body read (a note of 280 characters is far less).
const MAX_FORM: usize = 8 * 1024;

/// Every text key the service's refusals may carry (for the completeness check).
pub const SERVICE_KEYS: &[&str] = &[
    key("callbacks.taken"),
    key("callbacks.done"),
    key("callbacks.not_yet"),
    key("callbacks.take_first"),
    key("callbacks.outcome_invalid"),
    key("callbacks.note_too_long"),
    key("callbacks.topic_invalid"),
    key("callbacks.language_invalid"),
    key("callbacks.limit_invalid"),
    key("form.key_invalid"),
    key("form.key_reused"),
    key("form.in_progress"),
];

/// A choice of a filter, a radio button or a check box.
#[derive(Debug, Clone)]
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
    pub href: String,
}

/// A request, worded.
#[derive(Debug, Clone)]
pub struct Card {
    pub id: i64,
    pub household: String,
    pub household_href: Option<String>,
    pub community: String,
    pub language: String,
    /// The number to call (E.164) — shown in full: this is the callback card.
    pub phone: String,
    pub other_phones: Vec<String>,
    pub asked: String,
    pub waiting: String,
    pub due: String,
    pub overdue: bool,
    /// New, taken by …, no answer …, done: …
    pub stage: String,
    pub mine: bool,
    pub takeable: bool,
    /// Taken, and this member of staff may put it back (its holder, or an admin).
    pub releasable: bool,
    pub note: Option<String>,
    pub topics: String,
}

/// A community's line on the coverage tab, worded.
pub struct CoverageLine {
    pub community: String,
    pub households: String,
    pub abroad: String,
    pub requests: String,
    pub done: String,
    /// "3 hours", or "–" with nothing done.
    pub wait: String,
}

/// The coverage tab: how far the queue reaches, per community (console design, Callbacks).
#[derive(Template, WebTemplate)]
#[template(path = "console/callbacks_coverage.html")]
pub struct CoveragePage {
    pub t: Tr,
    pub l: Layout,
    pub lines: Vec<CoverageLine>,
    pub open_href: String,
    pub done_href: String,
    pub days: i64,
}

/// The page before Take (console design: confirm before sending): the request and the SMS
/// its household gets when it is taken, with one POST button.
#[derive(Template, WebTemplate)]
#[template(path = "console/callbacks_confirm.html")]
pub struct ConfirmTakePage {
    pub t: Tr,
    pub l: Layout,
    pub c: Card,
    /// The household's SMS, in its language.
    pub sms: String,
    pub key: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/callbacks.html")]
pub struct QueuePage {
    pub t: Tr,
    pub l: Layout,
    pub flash: Option<FlashView>,
    pub done: bool,
    pub summary: String,
    pub overdue: i64,
    pub overdue_text: String,
    pub languages: Vec<Opt>,
    pub open_href: String,
    pub done_href: String,
    pub cards: Vec<Card>,
    pub more: Option<String>,
    pub outcomes: Vec<Opt>,
    pub topics: Vec<Opt>,
    pub key: String,
    pub note_max: usize,
    pub sms_hint: String,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct QueueQuery {
    #[serde(default)]
    language: String,
    #[serde(default)]
    done: String,
    #[serde(default)]
    offset: String,
    lang: Option<String>,
}

const ANSWERS: Answers = Answers {
    path: PATH,
    back: "/console",
    back_key: key("callbacks.back"),
    not_found: (
        key("callbacks.not_found.title"),
        key("callbacks.not_found.text"),
    ),
    failed: (key("callbacks.failed.title"), key("callbacks.failed.text")),
    what: "callbacks",
};

fn failed(console: &Console, staff: &Staff, e: ServiceError) -> Response {
    ANSWERS.failed(console, staff, e)
}

fn local(console: &Console, t: &Tr, at: DateTime<Utc>) -> String {
    let at = at.with_timezone(&console.app.config.timezone);
    format!("{} {}", t.date(at.date_naive()), t.time(at.time()))
}

fn local_time(console: &Console, t: &Tr, at: DateTime<Utc>) -> String {
    t.time(at.with_timezone(&console.app.config.timezone).time())
}

/// How long a household has waited: minutes, hours, then days.
fn waiting(t: &Tr, since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    minutes_text(t, (now - since).num_minutes())
}

/// A wait of `minutes`: minutes below an hour, hours below two days, then days.
fn minutes_text(t: &Tr, minutes: i64) -> String {
    let minutes = minutes.max(0);
    if minutes < 60 {
        t.n("callbacks.waiting_minutes", minutes)
    } else if minutes < 48 * 60 {
        t.n("callbacks.waiting_hours", minutes / 60)
    } else {
        t.n("callbacks.waiting_days", minutes / (24 * 60))
    }
}

fn outcome_key(o: &str) -> &'static str {
    match o {
        "reached" => key("callbacks.outcome.reached"),
        "no_answer" => key("callbacks.outcome.no_answer"),
        "wrong_number" => key("callbacks.outcome.wrong_number"),
        "declined" => key("callbacks.outcome.declined"),
        _ => key("callbacks.outcome.unreachable"),
    }
}

fn topic_key(topic: &str) -> &'static str {
    match topic {
        "legal_stay" => key("callbacks.topic.legal_stay"),
        "trafficking" => key("callbacks.topic.trafficking"),
        "hiv" => key("callbacks.topic.hiv"),
        "remittances" => key("callbacks.topic.remittances"),
        _ => key("callbacks.topic.other"),
    }
}

fn stage(console: &Console, t: &Tr, c: &Callback, now: DateTime<Utc>) -> String {
    match c.stage {
        Stage::New => t.t("callbacks.stage.new"),
        Stage::Taken => t.t_with(
            key("callbacks.stage.taken"),
            &[
                ("name", c.taken_by.as_ref().map_or("", |s| s.name.as_str())),
                (
                    "time",
                    &c.taken_at
                        .map(|at| local_time(console, t, at))
                        .unwrap_or_default(),
                ),
            ],
        ),
        Stage::NoAnswer => match c.next_try_at.filter(|at| *at > now) {
            Some(at) => t.t_with(
                key("callbacks.stage.no_answer_wait"),
                &[
                    ("tries", &t.int(i64::from(c.attempts))),
                    ("time", &local_time(console, t, at)),
                ],
            ),
            None => t.t_with(
                key("callbacks.stage.no_answer_again"),
                &[("tries", &t.int(i64::from(c.attempts)))],
            ),
        },
        Stage::Done => t.t_with(
            key("callbacks.stage.done"),
            &[
                (
                    "outcome",
                    &t.t(outcome_key(c.outcome.as_deref().unwrap_or(""))),
                ),
                ("name", c.done_by.as_ref().map_or("", |s| s.name.as_str())),
                (
                    "time",
                    &c.done_at
                        .map(|at| local(console, t, at))
                        .unwrap_or_default(),
                ),
            ],
        ),
    }
}

fn card(console: &Console, t: &Tr, staff: &Staff, c: Callback, now: DateTime<Utc>) -> Card {
    let language = c
        .language
        .parse::<Language>()
        .map(endonym)
        .unwrap_or("")
        .to_owned();
    let household = match (&c.household_name, c.household_id) {
        (Some(name), _) => name.clone(),
        (None, Some(id)) => t.t_with(
            key("callbacks.household_unnamed"),
            &[("id", &id.to_string())],
        ),
        (None, None) => t.t("callbacks.household_none"),
    };
    Card {
        id: c.id,
        household,
        household_href: c.household_id.map(|id| format!("/console/households/{id}")),
        community: c
            .community
            .as_ref()
            .map(|n| n.get(t.language).to_owned())
            .unwrap_or_default(),
        language,
        other_phones: c
            .phones
            .iter()
            .filter(|p| **p != c.phone)
            .cloned()
            .collect(),
        asked: local(console, t, c.asked_at),
        waiting: waiting(t, c.asked_at, now),
        due: t.date(c.due_by),
        overdue: c.overdue,
        stage: stage(console, t, &c, now),
        mine: c.stage == Stage::Taken
            && c.taken_by.as_ref().map(|s| s.id) == Some(staff.actor.coordinator_id),
        takeable: c.takeable,
        releasable: c.stage == Stage::Taken
            && (staff.actor.role == Role::Admin
                || c.taken_by.as_ref().map(|s| s.id) == Some(staff.actor.coordinator_id)),
        note: c.note.clone(),
        topics: c
            .topics
            .iter()
            .map(|x| t.t(topic_key(x)))
            .collect::<Vec<_>>()
            .join(", "),
        phone: c.phone,
    }
}

fn url(language: Option<&str>, done: bool, offset: i64) -> String {
    let mut q = Vec::new();
    if let Some(l) = language {
        q.push(format!("language={l}"));
    }
    if done {
        q.push("done=1".to_owned());
    }
    if offset > 0 {
        q.push(format!("offset={offset}"));
    }
    if q.is_empty() {
        PATH.to_owned()
    } else {
        format!("{PATH}?{}", q.join("&"))
    }
}

/// `GET /console/callbacks`: the queue (see the module).
pub async fn page(
    State(console): State<Console>,
    Query(q): Query<QueueQuery>,
    staff: Staff,
) -> Response {
    if !service::sees_queue(&staff.actor) {
        return failed(&console, &staff, ServiceError::Forbidden);
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let chosen = q.language.parse::<Language>().ok().map(|l| l.code());
    let done = !q.done.trim().is_empty() && q.done.trim() != "0";
    let offset = q
        .offset
        .trim()
        .parse::<i64>()
        .unwrap_or(0)
        .clamp(0, 100_000);
    let queue = match service::list(
        &console.app,
        &staff.actor,
        ListQuery {
            done,
            language: chosen,
            limit: Some(PAGE + 1),
            offset: Some(offset),
        },
    )
    .await
    {
        Ok(q) => q,
        Err(e) => return failed(&console, &staff, e),
    };
    let now = queue.as_of;
    let more = (queue.items.len() as i64 > PAGE).then(|| url(chosen, done, offset + PAGE));
    let cards = queue
        .items
        .into_iter()
        .take(PAGE as usize)
        .map(|c| card(&console, &t, &staff, c, now))
        .collect();
    let flash = flash::shown(&staff.session, &t).await;
    let mut languages = vec![Opt {
        value: String::new(),
        label: t.t("callbacks.all_languages"),
        selected: chosen.is_none(),
        href: url(None, done, 0),
    }];
    for l in Language::ALL {
        languages.push(Opt {
            value: l.code().to_owned(),
            label: endonym(l).to_owned(),
            selected: chosen == Some(l.code()),
            href: url(Some(l.code()), done, 0),
        });
    }
    let summary = t.t_with(
        key("callbacks.summary"),
        &[
            ("waiting", &t.n("callbacks.waiting_count", queue.open)),
            ("time", &local_time(&console, &t, now)),
        ],
    );
    let number = console
        .app
        .config
        .counsellor_number
        .clone()
        .filter(|n| !n.trim().is_empty());
    let sms_hint = match number {
        Some(n) => t.t_with(key("callbacks.sms_hint_number"), &[("number", n.trim())]),
        None => t.t("callbacks.sms_hint_own"),
    };
    let page = QueuePage {
        l: Layout::signed_in_at(&console, &t, PATH, &staff, &url(chosen, done, offset)),
        flash,
        done,
        summary,
        overdue: queue.overdue,
        overdue_text: t.n("callbacks.overdue_count", queue.overdue),
        languages,
        open_href: url(chosen, false, 0),
        done_href: url(chosen, true, 0),
        cards,
        more,
        outcomes: Outcome::ALL
            .into_iter()
            .map(|o| Opt {
                value: o.as_str().to_owned(),
                label: t.t(outcome_key(o.as_str())),
                selected: false,
                href: String::new(),
            })
            .collect(),
        topics: Topic::ALL
            .into_iter()
            .map(|x| Opt {
                value: x.as_str().to_owned(),
                label: t.t(topic_key(x.as_str())),
                selected: false,
                href: String::new(),
            })
            .collect(),
        key: form_key(),
        note_max: service::NOTE_MAX,
        sms_hint,
        t,
    };
    page.into_response()
}

/// The fields of a form body (`topics` may repeat).
fn fields(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .take(40)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Where a change goes back to: the queue at the request's card.
fn back(id: i64) -> String {
    format!("{PATH}#callback-{id}")
}

/// A refusal in the flash and 303 back to the queue, or 404/500 for what is not one.
/// "Taken by Dilnoza at 10:02" names the counsellor and the time in the page's language.
async fn refused(console: &Console, staff: &Staff, id: i64, e: ServiceError) -> Response {
    let flash = match &e {
        ServiceError::Conflict { rule, .. } if *rule == "callbacks.taken" => {
            let t = Tr::new(staff.signed.language);
            let (name, time) = match service::get(&console.app, &staff.actor, id).await {
                Ok(c) => (
                    c.taken_by.map(|s| s.name).unwrap_or_default(),
                    c.taken_at
                        .map(|at| local_time(console, &t, at))
                        .unwrap_or_default(),
                ),
                Err(e) => return failed(console, staff, e),
            };
            Flash::refused(rule, None)
                .with("name", name)
                .with("time", time)
        }
        ServiceError::Conflict { rule, .. } if *rule == "callbacks.not_yet" => {
            let t = Tr::new(staff.signed.language);
            let time = match service::get(&console.app, &staff.actor, id).await {
                Ok(c) => c
                    .next_try_at
                    .map(|at| local_time(console, &t, at))
                    .unwrap_or_default(),
                Err(e) => return failed(console, staff, e),
            };
            Flash::refused(rule, None).with("time", time)
        }
        ServiceError::Conflict { rule, .. } => Flash::refused(rule, None),
        ServiceError::Invalid { key: k, field, .. } => Flash::refused(k, Some(*field)),
        _ => return failed(console, staff, e),
    };
    flash::set(&staff.session, flash).await;
    Redirect::to(&back(id)).into_response()
}

/// A median wait, in the units a waiting household's card uses.
fn duration(t: &Tr, secs: f64) -> String {
    // whole minutes of a median of at most weeks: far inside i64
    minutes_text(t, (secs / 60.0).round() as i64)
}

/// `GET /console/callbacks/coverage`: per community, households, those with a number
/// abroad, requests of the last 30 days, done, and the median wait of the done ones.
pub async fn coverage(
    State(console): State<Console>,
    Query(q): Query<QueueQuery>,
    staff: Staff,
) -> Response {
    if !service::sees_queue(&staff.actor) {
        return failed(&console, &staff, ServiceError::Forbidden);
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let rows = match service::coverage(&console.app, &staff.actor).await {
        Ok(r) => r,
        Err(e) => return failed(&console, &staff, e),
    };
    let lines = rows
        .into_iter()
        .map(|r| CoverageLine {
            community: r.name.get(t.language).to_owned(),
            households: t.int(r.households),
            abroad: t.int(r.abroad),
            requests: t.int(r.requests),
            done: t.int(r.done),
            wait: r
                .median_wait_secs
                .map_or_else(|| "–".to_owned(), |s| duration(&t, s)),
        })
        .collect();
    let page = CoveragePage {
        l: Layout::signed_in_at(&console, &t, PATH, &staff, &format!("{PATH}/coverage")),
        lines,
        open_href: url(None, false, 0),
        done_href: url(None, true, 0),
        days: service::COVERAGE_DAYS,
        t,
    };
    page.into_response()
}

/// `GET /console/callbacks/{id}/take`: the confirm page before Take (the request and the
/// SMS its household will get); a request that cannot be taken now goes back to the queue
/// with the reason.
pub async fn take_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<QueueQuery>,
    staff: Staff,
) -> Response {
    if !service::sees_queue(&staff.actor) {
        return failed(&console, &staff, ServiceError::Forbidden);
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let c = match service::get(&console.app, &staff.actor, id).await {
        Ok(c) => c,
        Err(e) => return failed(&console, &staff, e),
    };
    if !c.takeable {
        let flash = match c.stage {
            Stage::Taken => Flash::refused(key("callbacks.taken"), None)
                .with(
                    "name",
                    c.taken_by
                        .as_ref()
                        .map(|s| s.name.clone())
                        .unwrap_or_default(),
                )
                .with(
                    "time",
                    c.taken_at
                        .map(|at| local_time(&console, &t, at))
                        .unwrap_or_default(),
                ),
            Stage::NoAnswer | Stage::New => Flash::refused(key("callbacks.not_yet"), None).with(
                "time",
                c.next_try_at
                    .map(|at| local_time(&console, &t, at))
                    .unwrap_or_default(),
            ),
            Stage::Done => Flash::refused(key("callbacks.done"), None),
        };
        flash::set(&staff.session, flash).await;
        return Redirect::to(&back(id)).into_response();
    }
    let sms = match service::taken_sms(&console.app, &staff.actor, &c).await {
        Ok(s) => s,
        Err(e) => return failed(&console, &staff, e),
    };
    let now = console.app.clock.now();
    let page = ConfirmTakePage {
        l: Layout::signed_in_at(&console, &t, PATH, &staff, &format!("{PATH}/{id}/take")),
        c: card(&console, &t, &staff, c, now),
        sms,
        key: form_key(),
        t,
    };
    page.into_response()
}

/// What a POST on a request answers before its form is read: 404 for those who do not work
/// the queue, 413 for a body over [`MAX_FORM`].
fn refused_post(console: &Console, staff: &Staff, body: &Bytes) -> Option<Response> {
    if !service::sees_queue(&staff.actor) {
        return Some(failed(console, staff, ServiceError::Forbidden));
    }
    (body.len() > MAX_FORM).then(|| StatusCode::PAYLOAD_TOO_LARGE.into_response())
}

/// The end of a change to request `id`: its flash and 303 back to the queue, or the refusal.
async fn changed(
    console: &Console,
    staff: &Staff,
    id: i64,
    result: Result<Flash, ServiceError>,
) -> Response {
    match result {
        Ok(flash) => {
            flash::set(&staff.session, flash).await;
            Redirect::to(&back(id)).into_response()
        }
        Err(e) => refused(console, staff, id, e).await,
    }
}

/// `POST /console/callbacks/{id}/take`: takes the request (once per form key); 303 back to
/// the queue with "Taken · SMS queued", or with who holds it.
pub async fn take(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    body: Bytes,
) -> Response {
    if let Some(answer) = refused_post(&console, &staff, &body) {
        return answer;
    }
    let form = fields(&body);
    let result = service::take(
        &console.app,
        &staff.actor,
        id,
        Once::Form(field(&form, "key")),
    )
    .await
    .map(|_| Flash::done(key("callbacks.flash.taken")));
    changed(&console, &staff, id, result).await
}

/// `POST /console/callbacks/{id}/outcome`: records the call (once per form key); 303 back
/// to the queue with what happens next.
pub async fn outcome(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    body: Bytes,
) -> Response {
    if let Some(answer) = refused_post(&console, &staff, &body) {
        return answer;
    }
    let form = fields(&body);
    let topics: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "topics")
        .map(|(_, v)| v.clone())
        .collect();
    let note = field(&form, "note");
    let result = service::record(
        &console.app,
        &staff.actor,
        id,
        Record {
            outcome: field(&form, "outcome"),
            note: Some(note),
            topics: &topics,
        },
        Once::Form(field(&form, "key")),
    )
    .await
    .map(|c| match (c.stage, c.next_try_at) {
        (Stage::NoAnswer, Some(at)) => Flash::done(key("callbacks.flash.no_answer")).with(
            "time",
            local_time(&console, &Tr::new(staff.signed.language), at),
        ),
        _ => Flash::done(key("callbacks.flash.done")),
    });
    changed(&console, &staff, id, result).await
}

/// `POST /console/callbacks/{id}/release`: its holder, or an admin, puts a taken request back
/// in the queue (once per form key); 303 back to the queue.
pub async fn release(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    body: Bytes,
) -> Response {
    if let Some(answer) = refused_post(&console, &staff, &body) {
        return answer;
    }
    let form = fields(&body);
    let result = service::release(
        &console.app,
        &staff.actor,
        id,
        Once::Form(field(&form, "key")),
    )
    .await
    .map(|_| Flash::done(key("callbacks.flash.released")));
    changed(&console, &staff, id, result).await
}
