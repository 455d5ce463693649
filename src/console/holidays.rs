//! The public holidays page (`/console/holidays`, issue 11 point 5): the days that the
//! callback queue's "due by" (two working days) does not count. The fixed holidays of the
//! Labour Code come every year; Idi Ramazon and Idi Qurbon move every year and a day off
//! moved from a weekend belongs to one year, so an admin adds those when the government
//! announces them. Counsellors and admins read the page (it is the queue's calendar);
//! admins add and remove holidays ([`service::add_holiday`], audited). Coordinators and
//! programme officers get 404, as for the queue.
//!
//! Routes:
//! - `GET  /console/holidays`: the list, and the form for admins;
//! - `POST /console/holidays`: an admin adds one, 303 back with a flash;
//! - `POST /console/holidays/{id}/remove`: an admin removes one, 303 back with a flash.

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use chrono::{Datelike, NaiveDate};

use super::flash::FlashView;
use super::pages::form_key;
use super::{
    auth::Staff,
    flash::{self, Flash},
    i18n::{key, Tr},
    pages::{staff_language as language, Answers, Layout},
    Console,
};
use crate::service::{
    callbacks::{self as service, NewHoliday, PublicHoliday, HOLIDAY_NAME_MAX},
    Once, Role, ServiceError,
};

const PATH: &str = "/console/holidays";
/// The navigation entry the page belongs to.
const NAV: &str = "/console/callbacks";
/// Longest form body read.
const MAX_FORM: usize = 4 * 1024;

/// Every text key the service's refusals may carry (for the completeness check).
pub const SERVICE_KEYS: &[&str] = &[
    key("holidays.name_invalid"),
    key("holidays.date_invalid"),
    key("holidays.exists"),
];

const ANSWERS: Answers = Answers {
    path: NAV,
    back: "/console/callbacks",
    back_key: key("holidays.back"),
    not_found: (
        key("callbacks.not_found.title"),
        key("callbacks.not_found.text"),
    ),
    failed: (key("holidays.failed.title"), key("holidays.failed.text")),
    what: "holidays",
};

/// A holiday's row, worded.
pub struct Row {
    pub id: i64,
    /// "21 March" (every year) or "10.03.2027".
    pub when: String,
    pub name: String,
}

/// The holidays of one year (or of every year), in date order.
pub struct Group {
    /// `year-every` or `year-2027`: the add form comes back here.
    pub anchor: String,
    pub title: String,
    pub rows: Vec<Row>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/holidays.html")]
pub struct HolidaysPage {
    pub t: Tr,
    pub l: Layout,
    pub flash: Option<FlashView>,
    pub groups: Vec<Group>,
    pub admin: bool,
    /// A one-time key for each form on the page.
    pub key: String,
    pub name_max: usize,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
}

/// The holidays grouped: every year first, then each year from the oldest.
fn groups(t: &Tr, holidays: Vec<PublicHoliday>) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    let mut current: Option<Option<i16>> = None;
    for h in holidays {
        let when = match h.year {
            None => u32::try_from(h.month)
                .ok()
                .zip(u32::try_from(h.day).ok())
                .map(|(m, d)| t.day_month(m, d))
                .unwrap_or_default(),
            Some(y) => NaiveDate::from_ymd_opt(
                i32::from(y),
                u32::try_from(h.month).unwrap_or(0),
                u32::try_from(h.day).unwrap_or(0),
            )
            .map(|d| t.date(d))
            .unwrap_or_default(),
        };
        if current != Some(h.year) {
            current = Some(h.year);
            out.push(Group {
                anchor: h
                    .year
                    .map_or_else(|| "year-every".to_owned(), |y| format!("year-{y}")),
                title: match h.year {
                    None => t.t("holidays.every_year"),
                    Some(y) => t.t_with(key("holidays.in_year"), &[("year", &y.to_string())]),
                },
                rows: Vec::new(),
            });
        }
        if let Some(g) = out.last_mut() {
            g.rows.push(Row {
                id: h.id,
                when,
                name: h.name,
            });
        }
    }
    out
}

/// `GET /console/holidays`: the list (see the module).
pub async fn page(
    State(console): State<Console>,
    Query(q): Query<PageQuery>,
    staff: Staff,
) -> Response {
    let t = language(&staff, q.lang.as_deref()).await;
    let holidays = match service::holidays(&console.app, &staff.actor).await {
        Ok(h) => h,
        Err(e) => return ANSWERS.failed(&console, &staff, e),
    };
    let flash = flash::shown(&staff.session, &t).await;
    let page = HolidaysPage {
        l: Layout::signed_in_at(&console, &t, NAV, &staff, PATH),
        flash,
        groups: groups(&t, holidays),
        admin: staff.actor.role == Role::Admin,
        key: form_key(),
        name_max: HOLIDAY_NAME_MAX,
        t,
    };
    page.into_response()
}

fn fields(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .take(10)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.trim())
}

/// What the service said, as a flash on the page at `back` (303), or the page for what is
/// not a refusal (404 for someone who may not change holidays).
async fn answer(
    console: &Console,
    staff: &Staff,
    done: &'static str,
    result: Result<PublicHoliday, ServiceError>,
    back: &str,
) -> Response {
    let flash = match result {
        Ok(h) => Flash::done(done).with("name", h.name),
        Err(ServiceError::Invalid { key: k, field, .. }) => Flash::refused(k, Some(field)),
        Err(ServiceError::Conflict { rule, .. }) => Flash::refused(rule, None),
        Err(e) => return ANSWERS.failed(console, staff, e),
    };
    flash::set(&staff.session, flash).await;
    Redirect::to(back).into_response()
}

/// `POST /console/holidays`: an admin adds a holiday (`date` as the browser's date field
/// sends it, `every_year` checked or not, `name`); 303 back with what was done or why not.
pub async fn add(State(console): State<Console>, staff: Staff, body: Bytes) -> Response {
    if body.len() > MAX_FORM {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let form = fields(&body);
    let Ok(date) = NaiveDate::parse_from_str(field(&form, "date"), "%Y-%m-%d") else {
        // the service's own wording for a date it cannot take (admins only: others 404)
        if staff.actor.role != Role::Admin {
            return ANSWERS.not_found(&console, &staff);
        }
        flash::set(
            &staff.session,
            Flash::refused(key("holidays.date_invalid"), Some("date")),
        )
        .await;
        return Redirect::to(PATH).into_response();
    };
    let result = service::add_holiday(
        &console.app,
        &staff.actor,
        NewHoliday {
            date,
            every_year: field(&form, "every_year") == "1",
            name: field(&form, "name"),
        },
        Once::Form(field(&form, "key")),
    )
    .await;
    let year = if field(&form, "every_year") == "1" {
        "every".to_owned()
    } else {
        date.year().to_string()
    };
    let back = format!("{PATH}#year-{year}");
    answer(&console, &staff, key("holidays.flash.added"), result, &back).await
}

/// `POST /console/holidays/{id}/remove`: an admin removes a holiday; 303 back.
pub async fn remove(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    body: Bytes,
) -> Response {
    if body.len() > MAX_FORM {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let form = fields(&body);
    let result = service::remove_holiday(
        &console.app,
        &staff.actor,
        id,
        Once::Form(field(&form, "key")),
    )
    .await;
    answer(
        &console,
        &staff,
        key("holidays.flash.removed"),
        result,
        PATH,
    )
    .await
}
