//! The Outreach page (`/console/outreach`, issue 11 point 6): households informed towards
//! the programme's goal (2,000 by default), per community and topic, against the targets;
//! counts only, never a household ([`service::outreach`], the admin API's figures).
//!
//! Informed: by a counsellor's completed call, or at an information session; households
//! that read a topic to the end on USSD or SMS are shown apart (self-served) and are not in
//! the informed figure. Every role sees the page: admins and counsellors every community
//! and the programme against its target; coordinators and programme officers their own
//! communities. Admins set the targets (the programme's, or a community's) in a form on the
//! page (audited). The CSV is the Exports page's `outreach` file.
//!
//! Routes:
//! - `GET  /console/outreach`: the figures;
//! - `POST /console/outreach/targets`: an admin sets a target, 303 back with a flash.

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    body::Bytes,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use rust_decimal::Decimal;

use super::flash::FlashView;
use super::{
    auth::Staff,
    flash::{self, Flash},
    i18n::{key, Tr},
    pages::{staff_language as language, Answers, Layout},
    svg::{self, Svg},
    Console,
};
use crate::service::{
    outreach::{self as service, Counts, TopicCounts},
    Role, ServiceError,
};

const PATH: &str = "/console/outreach";
/// Longest form body read.
const MAX_FORM: usize = 4 * 1024;

/// Every text key the service's refusals may carry (for the completeness check).
pub const SERVICE_KEYS: &[&str] = &[key("outreach.target_invalid")];

const ANSWERS: Answers = Answers {
    path: PATH,
    back: "/console",
    back_key: key("outreach.back"),
    not_found: (
        key("outreach.not_found.title"),
        key("outreach.not_found.text"),
    ),
    failed: (key("outreach.failed.title"), key("outreach.failed.text")),
    what: "outreach",
};

/// A topic's row, worded.
pub struct TopicRow {
    pub topic: &'static str,
    pub label: String,
    pub informed: String,
    pub by_counsellor: String,
    pub by_session: String,
    pub self_served: String,
}

/// Households informed against a target, worded, with the bar.
pub struct Goal {
    /// "412 of 2 000 households informed (20.6%)", or "412 households informed" without
    /// a target.
    pub headline: String,
    pub bar: Option<Svg>,
    /// "Self-served (read to the end): 57".
    pub self_served: String,
}

pub struct CommunityCard {
    pub id: i64,
    pub name: String,
    pub goal: Goal,
    pub topics: Vec<TopicRow>,
}

pub struct TargetChoice {
    pub value: String,
    pub label: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/outreach.html")]
pub struct OutreachPage {
    pub t: Tr,
    pub l: Layout,
    pub flash: Option<FlashView>,
    pub programme: bool,
    pub total: Goal,
    pub topics: Vec<TopicRow>,
    pub communities: Vec<CommunityCard>,
    pub admin: bool,
    pub choices: Vec<TargetChoice>,
    pub as_of: String,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
}

fn topic_key(topic: &str) -> &'static str {
    match topic {
        "legal_stay" => key("callbacks.topic.legal_stay"),
        "trafficking" => key("callbacks.topic.trafficking"),
        "hiv" => key("callbacks.topic.hiv"),
        _ => key("callbacks.topic.remittances"),
    }
}

fn rows(t: &Tr, topics: &[TopicCounts]) -> Vec<TopicRow> {
    topics
        .iter()
        .map(|x| TopicRow {
            topic: x.topic,
            label: t.t(topic_key(x.topic)),
            informed: t.int(x.counts.informed),
            by_counsellor: t.int(x.counts.by_counsellor),
            by_session: t.int(x.counts.by_session),
            self_served: t.int(x.counts.self_served),
        })
        .collect()
}

fn goal(t: &Tr, all: &Counts, target: Option<i64>) -> Goal {
    let informed = t.int(all.informed);
    let self_served = t.t_with(
        key("outreach.self_served_line"),
        &[("n", &t.int(all.self_served))],
    );
    let Some(target) = target.filter(|t| *t > 0) else {
        return Goal {
            headline: t.t_with(key("outreach.informed_no_target"), &[("n", &informed)]),
            bar: None,
            self_served,
        };
    };
    let percent = Decimal::from(all.informed) * Decimal::from(100) / Decimal::from(target);
    let headline = t.t_with(
        key("outreach.informed_of"),
        &[
            ("n", &informed),
            ("target", &t.int(target)),
            ("percent", &t.number(percent, 1)),
        ],
    );
    let target_title = t.t_with(key("outreach.target_line"), &[("n", &t.int(target))]);
    let bar = svg::progress(&svg::Progress {
        received: Decimal::from(all.informed),
        matched: Decimal::ZERO,
        outstanding: Decimal::ZERO,
        target: Decimal::from(target),
        label: &headline,
        titles: [&headline, "", "", &target_title],
    });
    Goal {
        headline,
        bar: Some(bar),
        self_served,
    }
}

/// `GET /console/outreach`: the figures (see the module).
pub async fn page(
    State(console): State<Console>,
    Query(q): Query<PageQuery>,
    staff: Staff,
) -> Response {
    let t = language(&staff, q.lang.as_deref()).await;
    let figures = match service::figures(&console.app, &staff.actor).await {
        Ok(f) => f,
        Err(e) => return ANSWERS.failed(&console, &staff, e),
    };
    let flash = flash::shown(&staff.session, &t).await;
    let admin = staff.actor.role == Role::Admin;
    let mut choices = vec![TargetChoice {
        value: String::new(),
        label: t.t("outreach.form.programme"),
    }];
    choices.extend(figures.communities.iter().map(|c| TargetChoice {
        value: c.id.to_string(),
        label: c.name(t.language).to_owned(),
    }));
    let now = console
        .app
        .clock
        .now()
        .with_timezone(&console.app.config.timezone);
    let page = OutreachPage {
        l: Layout::signed_in(&console, &t, PATH, &staff),
        flash,
        programme: figures.programme,
        total: goal(&t, &figures.all, figures.target),
        topics: rows(&t, &figures.topics),
        communities: figures
            .communities
            .iter()
            .map(|c| CommunityCard {
                id: c.id,
                name: c.name(t.language).to_owned(),
                goal: goal(&t, &c.all, c.target.map(i64::from)),
                topics: rows(&t, &c.topics),
            })
            .collect(),
        admin,
        choices,
        as_of: t.t_with(key("outreach.as_of"), &[("time", &t.time(now.time()))]),
        t,
    };
    page.into_response()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.trim())
}

/// `POST /console/outreach/targets`: an admin sets the programme's target (`community`
/// empty) or a community's; 303 back with what was done or why not.
pub async fn set_target(State(console): State<Console>, staff: Staff, body: Bytes) -> Response {
    if body.len() > MAX_FORM {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .take(10)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let community = match field(&form, "community") {
        "" => None,
        c => match c.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => return ANSWERS.not_found(&console, &staff),
        },
    };
    // digits only (a space or a dot a person typed as a thousands separator is dropped)
    let digits: String = field(&form, "target")
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | ',' | '\u{a0}'))
        .collect();
    let target =
        if !digits.is_empty() && digits.len() <= 9 && digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse::<i64>().unwrap_or(0)
        } else {
            0
        };
    let flash = match service::set_target(&console.app, &staff.actor, community, target).await {
        Ok(()) => Flash::done(key("outreach.flash.target_set")),
        Err(ServiceError::Invalid { key: k, field, .. }) => Flash::refused(k, Some(field)),
        Err(e) => return ANSWERS.failed(&console, &staff, e),
    };
    flash::set(&staff.session, flash).await;
    Redirect::to(&format!("{PATH}#targets")).into_response()
}
