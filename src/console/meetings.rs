//! A meeting's attendance page (`/console/broadcasts/{id}/attendance`, issue 11 point 4):
//! the households of the meeting's communities, those that said yes first, each with its
//! answer and a box to tick when it came; "Save" records the ticks (and unticks what was
//! recorded before) through `service::meetings::record`, the admin API's rule book (scope,
//! audit row, one-time form key: a double submit records once), and the figures above the
//! list — invited, said yes, came — follow.
//!
//! As the other Broadcasts pages: coordinators (their communities) and admins; counsellors
//! and programme officers get 404, as does a broadcast that announces no meeting.

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
    Form,
};

use super::pages::form_key;
use super::{
    auth::Staff,
    flash::{self, Flash},
    i18n::{key, Tr},
    pages::staff_language as language,
    pages::{Answers, Layout},
    Console,
};
use crate::{
    domain::phone::mask,
    service::{
        meetings::{self as service, Mark},
        Once, ServiceError,
    },
    store::BroadcastId,
};

const PATH: &str = "/console/broadcasts";
/// Longest form key kept.
const MAX_KEY: usize = 80;

/// Every text key the service's refusals may carry here (for the completeness check).
pub const SERVICE_KEYS: &[&str] = &[
    key("meetings.not_yet"),
    key("meetings.marks_count"),
    key("form.key_invalid"),
    key("form.key_reused"),
    key("form.in_progress"),
];

/// A household on the sheet.
#[derive(Debug, Clone)]
pub struct Line {
    pub id: i64,
    pub name: String,
    pub phone: String,
    pub answer: String,
    pub answer_class: &'static str,
    pub came: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/meeting_attendance.html")]
pub struct AttendancePage {
    pub t: Tr,
    pub l: Layout,
    pub id: i64,
    pub title: String,
    pub when: String,
    pub place: String,
    pub topics: String,
    pub invited: String,
    pub yes: String,
    pub came: String,
    pub lines: Vec<Line>,
    pub may_record: bool,
    pub opens: String,
    pub flash: Option<Note>,
    pub key: String,
}

/// The flash of the last save.
#[derive(Debug, Clone)]
pub struct Note {
    pub done: bool,
    pub text: String,
}

const ANSWERS: Answers = Answers {
    path: PATH,
    back: PATH,
    back_key: key("broadcasts.back_to_list"),
    not_found: (
        key("broadcasts.not_found.title"),
        key("broadcasts.not_found.text"),
    ),
    failed: (
        key("broadcasts.failed.title"),
        key("broadcasts.failed.text"),
    ),
    what: "attendance",
};

fn senders_only(console: &Console, staff: &Staff) -> Option<Response> {
    (!service::records(&staff.actor)).then(|| ANSWERS.not_found(console, staff))
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
}

/// `GET /console/broadcasts/{id}/attendance`: the sheet.
pub async fn page(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = senders_only(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let a = match service::attendance(&console.app, &staff.actor, BroadcastId(id)).await {
        Ok(a) => a,
        Err(ServiceError::NotFound(_)) => return ANSWERS.not_found(&console, &staff),
        Err(e) => return ANSWERS.failed(&console, &staff, e),
    };
    let tz = console.app.config.timezone;
    let local = |at: chrono::DateTime<chrono::Utc>| {
        let at = at.with_timezone(&tz);
        format!("{} {}", t.date(at.date_naive()), t.time(at.time()))
    };
    let flash = flash::take(&staff.session).await.map(|f| Note {
        done: f.is_done(),
        text: f.text(&t),
    });
    let topics: Vec<String> = a
        .meeting
        .topics
        .iter()
        .map(|x| t.t(&format!("meetings.topic.{x}")))
        .collect();
    let lines = a
        .households
        .iter()
        .map(|h| {
            let (answer, answer_class) = match h.answer.as_deref() {
                Some("yes") => (t.t("meetings.rsvp.yes"), "ok"),
                Some("no") => (t.t("meetings.rsvp.no"), "muted"),
                _ => (t.t("meetings.rsvp.none"), "muted"),
            };
            Line {
                id: h.household.0,
                name: h.name.clone().unwrap_or_else(|| {
                    t.t_with("meetings.household", &[("id", &h.household.0.to_string())])
                }),
                phone: h.phone.as_deref().map(mask).unwrap_or_default(),
                answer,
                answer_class,
                came: h.attended == Some(true),
            }
        })
        .collect();
    let url = format!("{PATH}/{id}/attendance");
    AttendancePage {
        l: Layout::signed_in_at(&console, &t, PATH, &staff, &url),
        id,
        title: t.t_with("meetings.attendance.title", &[("id", &id.to_string())]),
        when: local(a.meeting.at),
        place: a.meeting.place.clone(),
        topics: topics.join(", "),
        invited: t.int(a.counts.invited),
        yes: t.int(a.counts.yes),
        came: t.int(a.counts.came),
        lines,
        may_record: a.may_record,
        opens: local(a.opens_at),
        flash,
        key: form_key(),
        t,
    }
    .into_response()
}

/// `POST /console/broadcasts/{id}/attendance`: the ticks saved (once per form key); 303 back
/// with "Saved: N came", or refused with the reason.
pub async fn save(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(body): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = senders_only(&console, &staff) {
        return r;
    }
    let ids = |name: &str| -> Vec<i64> {
        body.iter()
            .filter(|(k, _)| k == name)
            .filter_map(|(_, v)| v.trim().parse().ok())
            .take(service::MAX_MARKS)
            .collect()
    };
    let came = ids("came");
    let had = ids("had");
    let mut marks: Vec<Mark> = came
        .iter()
        .map(|h| Mark {
            household: *h,
            attended: true,
        })
        .collect();
    // ticked before and not now: did not come after all
    marks.extend(had.iter().filter(|h| !came.contains(h)).map(|h| Mark {
        household: *h,
        attended: false,
    }));
    let form_key: String = body
        .iter()
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.chars().take(MAX_KEY).collect())
        .unwrap_or_default();
    let back = format!("{PATH}/{id}/attendance");
    let f = match service::record(
        &console.app,
        &staff.actor,
        BroadcastId(id),
        &marks,
        Once::Form(&form_key),
    )
    .await
    {
        Ok(counts) => {
            let t = Tr::new(staff.signed.language);
            Flash::done(key("meetings.flash.saved")).with("came", t.int(counts.came))
        }
        Err(ServiceError::NotFound(_)) => return ANSWERS.not_found(&console, &staff),
        Err(ServiceError::Invalid { key: k, .. }) => Flash::refused(k, None),
        Err(ServiceError::Conflict { rule, .. }) => Flash::refused(rule, None),
        Err(e) => return ANSWERS.failed(&console, &staff, e),
    };
    flash::set(&staff.session, f).await;
    Redirect::to(&back).into_response()
}
