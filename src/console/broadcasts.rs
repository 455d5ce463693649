//! The Broadcasts pages (`/console/broadcasts`, §3 of the console design; issue 10, page 5):
//! meeting notices to communities, each household in its language.
//!
//! - the list: drafts, scheduled, sending, sent and cancelled broadcasts with their RSVP
//!   yes/no counts; empty: "No broadcasts yet";
//! - compose: the audience (communities, numbers abroad, a project's pledgers, one
//!   language) with the recipients per language, read only when the audience changes; the
//!   Tajik, Russian and English texts (stacked at 360 px, side by side on a desktop) with the
//!   placeholders' values; each text measured as one types (GSM-7 or UCS-2, characters, SMS
//!   parts, cost at the configured price) and when it would go out, in words, with the quiet
//!   hours. The measures are pure (`service::broadcasts::measure`, `send_time`): htmx asks
//!   for them on `input changed delay:400ms` and gets out-of-band fragments; the recipients
//!   travel in hidden fields, so a keystroke costs no query. Without JavaScript the
//!   "Preview" button renders the whole page with the same figures;
//! - "Continue" stores a draft and shows the confirm page (who, how many SMS, what it
//!   costs, when), whose one button sends or schedules it; the broadcast's page then offers
//!   **Undo** (the cancel) while nothing has gone out, shows its progress by outbox state
//!   (polled every 15 s while messages are in flight), the failure reasons and the RSVP
//!   tally per community; a cancelled broadcast can be copied into a new one.
//!
//! Every change calls `service::broadcasts`, the admin API's rules (scope, texts, audit row,
//! one-time form key). Broadcasts are what coordinators and admins do: for counsellors and
//! programme officers every route is 404, as the Money pages are; a broadcast outside a
//! coordinator's communities is 404 too.
//!
//! Routes:
//! - `GET  /console/broadcasts`: the list;
//! - `GET  /console/broadcasts/new[?copy=ID]`: compose (with `part=text|audience` and
//!   `HX-Request`: the live fragment); `POST`: preview (`do=preview`) or store the draft;
//! - `GET  /console/broadcasts/{id}` (with `part=progress` and `HX-Request`: the progress);
//! - `GET  /console/broadcasts/{id}/send[?at=]`: confirm; `POST` sends or schedules;
//! - `POST /console/broadcasts/{id}/cancel`: undo (cancel).

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::flash::FlashView;
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
    broadcasts::{timed, ZoneGroup},
    domain::{Encoding, Language},
    engine::Vars,
    service::{
        broadcasts::{self as service, Audience, Measure, NewBroadcast, NewMeeting, Reach},
        Once, ServiceError,
    },
    store::{
        broadcasts::{BroadcastStatus, Listed},
        meetings::Topic,
        projects::ProjectStatus,
        BroadcastId,
    },
};

/// The page's place in the navigation.
const PATH: &str = "/console/broadcasts";
/// Longest short value kept from what was typed (characters).
const MAX_SHORT: usize = 40;
/// The placeholders, in the order the form shows them.
const VAR_NAMES: [&str; 4] = ["date", "time", "place", "project"];
/// How often the broadcast page asks for its progress while messages are in flight.
pub const POLL_SECONDS: u32 = 15;

/// Every text key the service's refusals may carry (for the completeness check).
pub const SERVICE_KEYS: &[&str] = &[
    key("broadcasts.no_audience"),
    key("broadcasts.language_invalid"),
    key("broadcasts.project_invalid"),
    key("broadcasts.text_empty"),
    key("broadcasts.text_long"),
    key("broadcasts.placeholder_unknown"),
    key("broadcasts.placeholder_empty"),
    key("broadcasts.value_long"),
    key("broadcasts.rsvp_hours_invalid"),
    key("broadcasts.no_community"),
    key("broadcasts.at_passed"),
    key("broadcasts.not_pending"),
    key("broadcasts.already_cancelled"),
    key("form.key_invalid"),
    key("form.key_reused"),
    key("form.in_progress"),
    key("meetings.at_passed"),
    key("meetings.at_far"),
    key("meetings.place_length"),
    key("meetings.passed"),
];

/// A choice in a list.
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

fn error_of<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|e| e.field == field)
        .map(|e| e.text.as_str())
}

// ---------------------------------------------------------------------------------------
// What was typed

/// The compose form as typed (every value bounded).
#[derive(Debug, Clone, Default)]
pub struct Typed {
    pub communities: Vec<i64>,
    pub only_migrants: bool,
    pub only_project: String,
    pub only_language: String,
    /// Tajik, Russian, English.
    pub texts: [String; 3],
    /// date, time, place, project.
    pub vars: [String; 4],
    pub later: bool,
    pub at: String,
    /// The recipients per language the audience fragment last showed (`n_tg` …).
    pub counts: Option<[usize; 3]>,
    pub key: String,
    /// The meeting it announces (`meeting_at` empty: none): when (`datetime-local`), where,
    /// what about.
    pub meeting_at: String,
    pub meeting_place: String,
    pub topics: Vec<Topic>,
    /// An update to the chosen project's pledgers ("Post an update" on a project's page):
    /// stored by `service::news::post_update` (no answer window).
    pub update: bool,
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn bounded(v: &str, max: usize) -> String {
    v.chars().take(max).collect()
}

impl Typed {
    fn parse(pairs: &[(String, String)]) -> Typed {
        let communities = pairs
            .iter()
            .filter(|(k, _)| k == "community")
            .filter_map(|(_, v)| v.trim().parse().ok())
            .take(100)
            .collect();
        let text = |name: &str| bounded(field(pairs, name), service::MAX_TEXT + 1);
        let var = |name: &str| bounded(field(pairs, name), service::MAX_VAR + 1);
        let counts = ["n_tg", "n_ru", "n_en"].map(|n| field(pairs, n).trim().parse::<usize>().ok());
        Typed {
            communities,
            only_migrants: !field(pairs, "only_migrants").is_empty(),
            only_project: bounded(field(pairs, "only_project"), MAX_SHORT),
            only_language: bounded(field(pairs, "only_language"), MAX_SHORT),
            texts: [text("text_tg"), text("text_ru"), text("text_en")],
            vars: VAR_NAMES.map(var),
            later: field(pairs, "when") == "later",
            at: bounded(field(pairs, "at"), MAX_SHORT),
            counts: match counts {
                [Some(a), Some(b), Some(c)] => Some([a, b, c]),
                _ => None,
            },
            key: bounded(field(pairs, "key"), MAX_SHORT * 2),
            meeting_at: bounded(field(pairs, "meeting_at"), MAX_SHORT),
            meeting_place: bounded(field(pairs, "meeting_place"), MAX_SHORT),
            topics: pairs
                .iter()
                .filter(|(k, _)| k == "topic")
                .filter_map(|(_, v)| v.trim().parse().ok())
                .take(Topic::ALL.len())
                .collect(),
            update: !field(pairs, "update").is_empty(),
        }
    }

    fn audience(&self) -> Audience {
        Audience {
            communities: self.communities.clone(),
            only_migrants: self.only_migrants,
            only_project: self.only_project.trim().parse().ok(),
            only_language: Some(self.only_language.trim())
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        }
    }

    fn vars(&self) -> Vars {
        VAR_NAMES
            .iter()
            .zip(&self.vars)
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| ((*k).to_owned(), v.trim().to_owned()))
            .collect()
    }
}

/// A `datetime-local` value (`2026-11-28T22:00`) in the programme's time zone.
fn parse_local(console: &Console, at: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(at.trim(), "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(at.trim(), "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    console
        .app
        .config
        .timezone
        .from_local_datetime(&naive)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
}

/// The time asked for: `None` for now; `Err` for "later" without a time that reads.
fn wanted(console: &Console, typed: &Typed) -> Result<Option<DateTime<Utc>>, ()> {
    if !typed.later {
        return Ok(None);
    }
    parse_local(console, &typed.at).map(Some).ok_or(())
}

fn local_input(console: &Console, at: DateTime<Utc>) -> String {
    at.with_timezone(&console.app.config.timezone)
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

// ---------------------------------------------------------------------------------------
// The live measures

/// One language's text with its measure, as the compose page shows it.
#[derive(Debug, Clone)]
pub struct MeasureView {
    pub lang: &'static str,
    /// The textarea's name and id.
    pub field: &'static str,
    pub label: String,
    pub value: String,
    pub encoding: &'static str,
    pub segments: usize,
    /// "UCS-2 · 75 characters · 2 SMS".
    pub line: String,
    /// "70 characters in one SMS, 67 in each part of a longer one".
    pub limits: String,
    /// "3 recipients · 6 SMS · 0.60 TJS".
    pub cost: String,
    pub empty: bool,
}

/// The recipients per language, as the compose page shows them.
#[derive(Debug, Clone)]
pub struct ReachView {
    pub total: String,
    pub lines: Vec<String>,
    /// Hidden fields carrying the counts to the text measures.
    pub hidden: Vec<(&'static str, usize)>,
    pub none: bool,
    /// When each time zone's recipients receive it.
    pub zones: Vec<String>,
}

/// What updates as one types.
#[derive(Debug, Clone)]
pub struct Live {
    pub measures: Vec<MeasureView>,
    /// `None`: no community chosen yet (or the fragment is about the texts only).
    pub reach: Option<ReachView>,
    /// When it would go out, in words, with the quiet hours.
    pub when: String,
    /// All languages together: recipients, SMS, cost.
    pub total: String,
    /// Rendered as htmx out-of-band swaps.
    pub oob: bool,
}

fn language_key(l: Language) -> &'static str {
    match l {
        Language::Tg => key("broadcasts.text.tg"),
        Language::Ru => key("broadcasts.text.ru"),
        Language::En => key("broadcasts.text.en"),
    }
}

fn language_name_key(l: Language) -> &'static str {
    match l {
        Language::Tg => key("broadcasts.language.tg"),
        Language::Ru => key("broadcasts.language.ru"),
        Language::En => key("broadcasts.language.en"),
    }
}

fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Gsm7 => "GSM-7",
        Encoding::Ucs2 => "UCS-2",
    }
}

fn encoding_code(e: Encoding) -> &'static str {
    match e {
        Encoding::Gsm7 => "gsm7",
        Encoding::Ucs2 => "ucs2",
    }
}

fn price(console: &Console) -> (Decimal, String) {
    (
        console.app.config.sms_price_per_segment,
        console.app.settings.sms_price_currency.to_string(),
    )
}

fn measure_view(
    console: &Console,
    t: &Tr,
    lang: Language,
    text: &str,
    m: &Measure,
    recipients: usize,
) -> MeasureView {
    let (per, currency) = price(console);
    let total = m.segments * recipients;
    MeasureView {
        lang: lang.code(),
        field: match lang {
            Language::Tg => "text_tg",
            Language::Ru => "text_ru",
            Language::En => "text_en",
        },
        label: t.t(language_key(lang)),
        value: text.to_owned(),
        encoding: encoding_code(m.encoding),
        segments: m.segments,
        line: t.t_with(
            key("broadcasts.measure.line"),
            &[
                ("encoding", encoding_name(m.encoding)),
                (
                    "characters",
                    &t.n(key("broadcasts.measure.characters"), m.characters as i64),
                ),
                (
                    "segments",
                    &t.n(key("broadcasts.measure.segments"), m.segments as i64),
                ),
            ],
        ),
        limits: t.t_with(
            key("broadcasts.measure.limits"),
            &[
                ("single", &t.int(m.single as i64)),
                ("part", &t.int(m.per_part as i64)),
            ],
        ),
        cost: t.t_with(
            key("broadcasts.measure.cost"),
            &[
                (
                    "recipients",
                    &t.n(key("broadcasts.recipients"), recipients as i64),
                ),
                (
                    "segments",
                    &t.n(key("broadcasts.measure.segments"), total as i64),
                ),
                ("cost", &t.money(service::cost(per, total), &currency)),
            ],
        ),
        empty: m.text.is_empty(),
    }
}

/// "will be sent at 07:00 tomorrow (quiet hours 21:00–07:00)".
fn when_text(console: &Console, t: &Tr, send_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let q = &console.app.settings.quiet_hours;
    let (start, end) = (t.time(q.start), t.time(q.end));
    let tz = console.app.config.timezone;
    let local = send_at.with_timezone(&tz);
    let today = now.with_timezone(&tz).date_naive();
    let time = t.time(local.time());
    let day = local.date_naive();
    let vars = [
        ("time", time.as_str()),
        ("start", start.as_str()),
        ("end", end.as_str()),
    ];
    if send_at <= now {
        t.t_with(key("broadcasts.when.now"), &vars)
    } else if day == today {
        t.t_with(key("broadcasts.when.today"), &vars)
    } else if Some(day) == today.succ_opt() {
        t.t_with(key("broadcasts.when.tomorrow"), &vars)
    } else {
        let date = t.date(day);
        t.t_with(
            key("broadcasts.when.day"),
            &[
                ("time", time.as_str()),
                ("date", date.as_str()),
                ("start", start.as_str()),
                ("end", end.as_str()),
            ],
        )
    }
}

/// A zone's name in the console's language: its city (`zones.Europe_Moscow`), or, for a
/// zone the locale files do not name, the city part of the IANA name.
pub(super) fn place(t: &Tr, zone: &str) -> String {
    let k = format!("zones.{}", zone.replace('/', "_"));
    let named = t.t(&k);
    if named != k {
        return named;
    }
    zone.rsplit('/').next().unwrap_or(zone).replace('_', " ")
}

/// When one zone's recipients receive a broadcast, in words: "12 recipients: will be
/// received tomorrow at 07:00 Moscow time (09:00 Dushanbe)"; the day is the zone's own.
fn zone_text(console: &Console, t: &Tr, g: &ZoneGroup, now: DateTime<Utc>) -> String {
    let recipients = t.n(key("broadcasts.recipients"), g.recipients as i64);
    if g.receive_at <= now {
        return t.t_with(key("broadcasts.zones.now"), &[("recipients", &recipients)]);
    }
    let home_tz = console.app.settings.quiet_hours.tz;
    let tz: Tz = g.zone.parse().unwrap_or(home_tz);
    let local = g.receive_at.with_timezone(&tz);
    let day = local.date_naive();
    let today = now.with_timezone(&tz).date_naive();
    let day = if day == today {
        t.t("broadcasts.zones.today")
    } else if Some(day) == today.succ_opt() {
        t.t("broadcasts.zones.tomorrow")
    } else {
        t.t_with(key("broadcasts.zones.on"), &[("date", &t.date(day))])
    };
    let time = t.time(local.time());
    if tz == home_tz {
        return t.t_with(
            key("broadcasts.zones.home"),
            &[("recipients", &recipients), ("day", &day), ("time", &time)],
        );
    }
    let home_time = t.time(g.receive_at.with_timezone(&home_tz).time());
    t.t_with(
        key("broadcasts.zones.abroad"),
        &[
            ("recipients", &recipients),
            ("day", &day),
            ("time", &time),
            ("place", &place(t, &g.zone)),
            ("home_time", &home_time),
            ("home", &place(t, home_tz.name())),
        ],
    )
}

/// One figure per zone: its place, and when its recipients receive the broadcast.
fn zone_figures(
    console: &Console,
    t: &Tr,
    groups: &[ZoneGroup],
    now: DateTime<Utc>,
    prefix: &str,
) -> Vec<Figure> {
    groups
        .iter()
        .map(|g| Figure {
            id: format!("{prefix}-zone-{}", g.zone.replace('/', "-")),
            label: place(t, &g.zone),
            value: zone_text(console, t, g, now),
        })
        .collect()
}

/// How many numbers of the typed audience are in each zone (`None`, logged, when that
/// cannot be read: the page then says nothing about zones).
async fn zones_of(console: &Console, staff: &Staff, typed: &Typed) -> Option<Vec<(Tz, usize)>> {
    match service::reach_zones(&console.app, &staff.actor, &typed.audience()).await {
        Ok(z) => Some(z),
        Err(e) => {
            tracing::debug!(error = %e, "console: the audience's zones not read");
            None
        }
    }
}

fn reach_view(
    console: &Console,
    t: &Tr,
    reach: &BTreeMap<Language, Reach>,
    zones: &[ZoneGroup],
    now: DateTime<Utc>,
) -> ReachView {
    let total: usize = reach.values().map(|r| r.recipients).sum();
    let opted_out: usize = reach.values().map(|r| r.opted_out).sum();
    let mut lines: Vec<String> = Language::ALL
        .iter()
        .map(|l| {
            let r = reach.get(l).copied().unwrap_or_default();
            t.t_with(
                key("broadcasts.reach.line"),
                &[
                    ("language", &t.t(language_name_key(*l))),
                    (
                        "recipients",
                        &t.n(key("broadcasts.recipients"), r.recipients as i64),
                    ),
                ],
            )
        })
        .collect();
    if opted_out > 0 {
        lines.push(t.n(key("broadcasts.reach.opted_out"), opted_out as i64));
    }
    let n = |l: Language| reach.get(&l).map_or(0, |r| r.recipients);
    ReachView {
        total: t.n(key("broadcasts.reach.total"), total as i64),
        lines,
        hidden: vec![
            ("n_tg", n(Language::Tg)),
            ("n_ru", n(Language::Ru)),
            ("n_en", n(Language::En)),
        ],
        none: total == 0,
        zones: zones
            .iter()
            .map(|g| format!("{} — {}", place(t, &g.zone), zone_text(console, t, g, now)))
            .collect(),
    }
}

/// The measures of `typed` (pure), with the recipients from `reach` or, failing that, the
/// counts the form carried, and when each zone's recipients (`zones`) receive it.
fn live(
    console: &Console,
    t: &Tr,
    typed: &Typed,
    reach: Option<&BTreeMap<Language, Reach>>,
    zones: Option<&[(Tz, usize)]>,
    oob: bool,
) -> Live {
    let vars = typed.vars();
    let counts: [usize; 3] = match reach {
        Some(r) => Language::ALL.map(|l| r.get(&l).map_or(0, |x| x.recipients)),
        None => typed.counts.unwrap_or([0; 3]),
    };
    let mut segments = 0;
    let measures = Language::ALL
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let m = service::measure(&typed.texts[i], &vars);
            segments += m.segments * counts[i];
            measure_view(console, t, *l, &typed.texts[i], &m, counts[i])
        })
        .collect();
    let now = console.app.clock.now();
    let asked = wanted(console, typed).ok().flatten();
    let quiet = &console.app.settings.quiet_hours;
    let groups = zones.map_or_else(Vec::new, |z| {
        timed(z.iter().copied(), quiet, asked.unwrap_or(now).max(now))
    });
    // the first group's time, when the audience is known (abroad it may be before the end
    // of the quiet hours at home)
    let send_at = groups
        .first()
        .map_or_else(|| service::send_time(quiet, asked, now), |g| g.receive_at);
    let (per, currency) = price(console);
    let recipients: usize = counts.iter().sum();
    Live {
        measures,
        reach: reach.map(|r| reach_view(console, t, r, &groups, now)),
        when: when_text(console, t, send_at, now),
        total: t.t_with(
            key("broadcasts.total"),
            &[
                (
                    "recipients",
                    &t.n(key("broadcasts.recipients"), recipients as i64),
                ),
                (
                    "segments",
                    &t.n(key("broadcasts.measure.segments"), segments as i64),
                ),
                ("cost", &t.money(service::cost(per, segments), &currency)),
            ],
        ),
        oob,
    }
}

// ---------------------------------------------------------------------------------------
// Pages

/// A row of the list.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub created: String,
    pub status: String,
    pub status_class: &'static str,
    pub text: String,
    pub communities: String,
    pub messages: String,
    pub yes: String,
    pub no: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/broadcasts.html")]
pub struct ListPage {
    pub t: Tr,
    pub l: Layout,
    pub rows: Vec<Row>,
    pub flash: Option<FlashView>,
}

/// A community to tick.
#[derive(Debug, Clone)]
pub struct Check {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

/// A placeholder's value field.
#[derive(Debug, Clone)]
pub struct VarField {
    pub name: &'static str,
    pub label: String,
    pub value: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/broadcasts_new.html")]
pub struct ComposePage {
    pub t: Tr,
    pub l: Layout,
    pub communities: Vec<Check>,
    pub only_migrants: bool,
    pub projects: Vec<Opt>,
    pub languages: Vec<Opt>,
    pub vars: Vec<VarField>,
    pub later: bool,
    pub at: String,
    pub at_min: String,
    pub live: Live,
    pub errors: Vec<FieldError>,
    pub key: String,
    pub meeting_at: String,
    pub meeting_place: String,
    pub topics: Vec<Check>,
    /// An update to a project's pledgers: the project's name.
    pub update: Option<String>,
}

impl ComposePage {
    pub fn error_of(&self, field: &str) -> Option<&str> {
        error_of(&self.errors, field)
    }
}

/// The compose page's live parts alone, as out-of-band swaps for htmx.
#[derive(Template, WebTemplate)]
#[template(path = "console/broadcasts_live.html")]
pub struct LivePart {
    pub t: Tr,
    pub live: Live,
}

/// A line of figures: label, value.
#[derive(Debug, Clone)]
pub struct Figure {
    pub id: String,
    pub label: String,
    pub value: String,
}

/// The RSVP answers of one community.
#[derive(Debug, Clone)]
pub struct Tally {
    pub community: String,
    pub yes: String,
    pub no: String,
}

#[derive(Debug, Clone)]
pub struct AuditLine {
    pub at: String,
    pub what: String,
    pub who: String,
}

/// A broadcast as its page shows it.
#[derive(Debug, Clone)]
pub struct Card {
    pub id: i64,
    pub title: String,
    pub status: String,
    pub status_class: &'static str,
    pub communities: String,
    pub narrowing: Vec<String>,
    pub texts: Vec<(String, String)>,
    pub draft: bool,
    /// "Scheduled for 07:00 tomorrow (quiet hours …)".
    pub scheduled: Option<String>,
    /// Recipients, SMS and cost, before it is queued.
    pub preview: Vec<Figure>,
    /// Messages by outbox state.
    pub progress: Vec<Figure>,
    pub failures: Vec<Figure>,
    pub tally: Vec<Tally>,
    pub tally_total: Option<Tally>,
    /// Cancel shown as Undo: nothing has gone out yet.
    pub undo: bool,
    /// Cancel what has not gone out yet.
    pub cancel_rest: bool,
    pub cancelled: bool,
    pub polling: bool,
    pub as_of: String,
    pub history: Vec<AuditLine>,
    /// The one-time key of the cancel form.
    pub key: String,
    /// The meeting it announces, with its figures.
    pub meeting: Option<MeetingCard>,
}

/// A broadcast's meeting: when, where, what about; invited, said yes, came.
#[derive(Debug, Clone)]
pub struct MeetingCard {
    pub line: String,
    pub counts: Vec<Figure>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/broadcast.html")]
pub struct BroadcastPage {
    pub t: Tr,
    pub l: Layout,
    pub p: Card,
    pub flash: Option<FlashView>,
}

/// The progress alone, for the poll.
#[derive(Template, WebTemplate)]
#[template(path = "console/broadcast.html", block = "progress")]
pub struct ProgressPart {
    pub t: Tr,
    pub p: Card,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/broadcasts_confirm.html")]
pub struct ConfirmPage {
    pub t: Tr,
    pub l: Layout,
    pub id: i64,
    pub what: String,
    pub figures: Vec<Figure>,
    pub texts: Vec<(String, String)>,
    pub when: String,
    pub at: String,
    pub key: String,
    pub error: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Answers

fn layout(console: &Console, t: &Tr, staff: &Staff, url: &str) -> Layout {
    Layout::signed_in_at(console, t, PATH, staff, url)
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
    what: "broadcasts",
};

fn not_found(console: &Console, staff: &Staff) -> Response {
    ANSWERS.not_found(console, staff)
}

fn failed(console: &Console, staff: &Staff, e: ServiceError) -> Response {
    ANSWERS.failed(console, staff, e)
}

/// Counsellors and programme officers do not send broadcasts: 404, as the Money pages.
fn senders_only(console: &Console, staff: &Staff) -> Option<Response> {
    (!service::sends(&staff.actor)).then(|| not_found(console, staff))
}

/// Whether this is htmx asking for a fragment (not restoring history, which wants the page).
fn htmx_fragment(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some() && headers.get("hx-history-restore-request").is_none()
}

/// The form input a service field is typed in.
fn input_of(field: &str) -> &'static str {
    match field {
        "communities" => "communities",
        "only_language" => "only_language",
        "only_project" => "only_project",
        "texts.tg" => "text_tg",
        "texts.ru" => "text_ru",
        "texts.en" => "text_en",
        "vars" => "vars",
        "at" => "at",
        "meeting.at" => "meeting_at",
        "meeting.place" => "meeting_place",
        _ => "summary",
    }
}

/// A refusal of the service as an error beside its field, or `None` for what is not one.
fn refusal(t: &Tr, e: &ServiceError) -> Option<FieldError> {
    match e {
        ServiceError::Invalid { field, key: k, .. } => Some(FieldError {
            field: input_of(field),
            text: t.t(k),
        }),
        ServiceError::Conflict { rule, .. } => Some(FieldError {
            field: "summary",
            text: t.t(rule),
        }),
        _ => None,
    }
}

fn local(console: &Console, t: &Tr, at: DateTime<Utc>) -> String {
    let at = at.with_timezone(&console.app.config.timezone);
    format!("{} {}", t.date(at.date_naive()), t.time(at.time()))
}

/// The communities this person sees, by id, with their names in `t`'s language.
async fn community_names(
    console: &Console,
    staff: &Staff,
    t: &Tr,
) -> Result<Vec<(i64, String)>, ServiceError> {
    let list = crate::store::communities::list(&console.app.pool, staff.actor.scope()).await?;
    Ok(list
        .into_iter()
        .map(|c| (c.id.0, c.name.get(t.language).to_owned()))
        .collect())
}

/// Where a listed broadcast stands: draft, scheduled, sending, sent, cancelled.
fn listed_status(b: &Listed) -> (&'static str, &'static str) {
    match b.status {
        BroadcastStatus::Draft => (key("broadcasts.status.draft"), "draft"),
        BroadcastStatus::Scheduled => (key("broadcasts.status.scheduled"), "scheduled"),
        BroadcastStatus::Queued if b.pending > 0 => (key("broadcasts.status.sending"), "sending"),
        BroadcastStatus::Queued => (key("broadcasts.status.sent"), "sent"),
        BroadcastStatus::Cancelled => (key("broadcasts.status.cancelled"), "cancelled"),
    }
}

/// The first words of a text, for a list.
fn excerpt(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX - 1).collect();
        format!("{}…", cut.trim_end())
    }
}

fn names_of(names: &HashMap<i64, String>, ids: impl Iterator<Item = i64>) -> String {
    ids.map(|id| names.get(&id).cloned().unwrap_or_else(|| id.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

/// `GET /console/broadcasts`: the broadcasts this person sees, newest first.
pub async fn list(
    State(console): State<Console>,
    Query(q): Query<LangQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = senders_only(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let listed = match service::list(&console.app, &staff.actor).await {
        Ok(l) => l,
        Err(e) => return failed(&console, &staff, e),
    };
    let names: HashMap<i64, String> = match community_names(&console, &staff, &t).await {
        Ok(n) => n.into_iter().collect(),
        Err(e) => return failed(&console, &staff, e),
    };
    let rows = listed
        .iter()
        .map(|b| {
            let (status, class) = listed_status(b);
            let text = match t.language {
                Language::Tg => &b.text_tg,
                Language::Ru => &b.text_ru,
                Language::En => &b.text_en,
            };
            Row {
                id: b.id.0,
                created: local(&console, &t, b.created_at),
                status: t.t(status),
                status_class: class,
                text: excerpt(text),
                communities: names_of(&names, b.communities.iter().map(|c| c.0)),
                messages: t.n(key("broadcasts.messages"), b.messages),
                yes: t.int(b.yes),
                no: t.int(b.no),
            }
        })
        .collect();
    let flash = flash::shown(&staff.session, &t).await;
    ListPage {
        l: layout(&console, &t, &staff, PATH),
        rows,
        flash,
        t,
    }
    .into_response()
}

/// The compose page for `typed`, with the recipients read when `read_reach`.
#[allow(clippy::too_many_arguments)]
async fn compose_page(
    console: &Console,
    staff: &Staff,
    t: Tr,
    typed: &Typed,
    read_reach: bool,
    errors: Vec<FieldError>,
    url: &str,
    status: StatusCode,
) -> Response {
    let names = match community_names(console, staff, &t).await {
        Ok(n) => n,
        Err(e) => return failed(console, staff, e),
    };
    // closed projects too: news of a finished project goes to its pledgers
    let projects =
        match crate::service::projects::list(&console.app, &staff.actor, None, None, None).await {
            Ok(p) => p,
            Err(e) => return failed(console, staff, e),
        };
    let by_id: HashMap<i64, &str> = names.iter().map(|(id, n)| (*id, n.as_str())).collect();
    let mut errors = errors;
    let reach = if read_reach && !typed.communities.is_empty() {
        match service::reach(&console.app, &staff.actor, &typed.audience()).await {
            Ok(r) => Some(r),
            Err(e) => match refusal(&t, &e) {
                Some(err) => {
                    errors.push(err);
                    None
                }
                None => return failed(console, staff, e),
            },
        }
    } else {
        None
    };
    let update = typed
        .update
        .then(|| {
            projects
                .iter()
                .find(|p| typed.only_project.trim() == p.id.0.to_string())
                .map(|p| p.name.get(t.language).to_owned())
        })
        .flatten();
    let zones = match &reach {
        Some(_) => zones_of(console, staff, typed).await,
        None => None,
    };
    let now = console.app.clock.now();
    let page = ComposePage {
        update,
        l: layout(console, &t, staff, url),
        communities: names
            .iter()
            .map(|(id, n)| Check {
                value: id.to_string(),
                label: n.clone(),
                checked: typed.communities.contains(id),
            })
            .collect(),
        only_migrants: typed.only_migrants,
        projects: projects
            .iter()
            .map(|p| Opt {
                value: p.id.0.to_string(),
                label: format!(
                    "{} · {}{}",
                    p.name.get(t.language),
                    by_id.get(&p.community.0).copied().unwrap_or(""),
                    if p.status == ProjectStatus::Closed {
                        format!(" ({})", t.t("projects.status.closed"))
                    } else {
                        String::new()
                    }
                ),
                selected: typed.only_project.trim() == p.id.0.to_string(),
            })
            .collect(),
        languages: Language::ALL
            .iter()
            .map(|l| Opt {
                value: l.code().to_owned(),
                label: t.t(language_name_key(*l)),
                selected: typed.only_language.trim() == l.code(),
            })
            .collect(),
        vars: VAR_NAMES
            .iter()
            .zip(&typed.vars)
            .map(|(name, value)| VarField {
                name,
                label: t.t(&format!("broadcasts.var.{name}")),
                value: value.clone(),
            })
            .collect(),
        later: typed.later,
        at: typed.at.clone(),
        at_min: local_input(console, now),
        live: live(console, &t, typed, reach.as_ref(), zones.as_deref(), false),
        errors,
        key: if typed.key.is_empty() {
            form_key()
        } else {
            typed.key.clone()
        },
        meeting_at: typed.meeting_at.clone(),
        meeting_place: typed.meeting_place.clone(),
        topics: Topic::ALL
            .iter()
            .map(|topic| Check {
                value: topic.as_str().to_owned(),
                label: t.t(&format!("meetings.topic.{topic}")),
                checked: typed.topics.contains(topic),
            })
            .collect(),
        t,
    };
    (status, page).into_response()
}

// The keys `compose_page` builds with `format!` (for the completeness check).
const _TOPIC_KEYS: [&str; 6] = [
    key("meetings.topic.general"),
    key("meetings.topic.remittances"),
    key("meetings.topic.business"),
    key("meetings.topic.legal_stay"),
    key("meetings.topic.trafficking"),
    key("meetings.topic.hiv"),
];
const _VAR_KEYS: [&str; 4] = [
    key("broadcasts.var.date"),
    key("broadcasts.var.time"),
    key("broadcasts.var.place"),
    key("broadcasts.var.project"),
];

/// `GET /console/broadcasts/new`: the compose form — empty, a copy of broadcast `copy`, or
/// what was typed (`part=text|audience` with `HX-Request`: the live fragment).
pub async fn new_form(
    State(console): State<Console>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    staff: Staff,
) -> Response {
    if let Some(r) = senders_only(&console, &staff) {
        return r;
    }
    let lang = Some(field(&q, "lang")).filter(|l| !l.is_empty());
    let t = language(&staff, lang).await;
    let part = field(&q, "part");
    let mut typed = Typed::parse(&q);
    // a new time changes when each zone's recipients get it: with an audience chosen, read
    // as an audience change (the zones are read again), else as a text change
    let part = match part {
        "when" if typed.communities.is_empty() => "text",
        "when" => "audience",
        other => other,
    };
    if htmx_fragment(&headers) && (part == "text" || part == "audience") {
        let reach = if part == "audience" && !typed.communities.is_empty() {
            match service::reach(&console.app, &staff.actor, &typed.audience()).await {
                Ok(r) => Some(r),
                Err(e @ ServiceError::Invalid { .. }) => {
                    tracing::debug!(error = %e, "console: an audience that does not read");
                    Some(BTreeMap::new())
                }
                Err(e) => return failed(&console, &staff, e),
            }
        } else if part == "audience" {
            Some(BTreeMap::new())
        } else {
            None
        };
        let zones = match &reach {
            Some(r) if !r.is_empty() => zones_of(&console, &staff, &typed).await,
            _ => None,
        };
        let live = live(&console, &t, &typed, reach.as_ref(), zones.as_deref(), true);
        return LivePart { t, live }.into_response();
    }
    if let Ok(copy) = field(&q, "copy").trim().parse::<i64>() {
        match service::view(&console.app, &staff.actor, BroadcastId(copy)).await {
            Ok(v) => {
                let b = v.broadcast;
                typed.communities = b.communities.iter().map(|c| c.0).collect();
                typed.only_migrants = b.only_migrants;
                typed.only_project = b.only_project.map(|p| p.0.to_string()).unwrap_or_default();
                typed.only_language = b.only_language.clone().unwrap_or_default();
                typed.texts =
                    ["tg", "ru", "en"].map(|l| b.texts.get(l).cloned().unwrap_or_default());
                typed.vars = VAR_NAMES.map(|n| b.vars.get(n).cloned().unwrap_or_default());
                if let Some(m) = &b.meeting {
                    typed.meeting_place = m.place.clone();
                    typed.topics = m.topics.clone();
                }
            }
            Err(e) => return failed(&console, &staff, e),
        }
    }
    typed.key = String::new();
    let url = format!("{PATH}/new");
    compose_page(
        &console,
        &staff,
        t,
        &typed,
        true,
        Vec::new(),
        &url,
        StatusCode::OK,
    )
    .await
}

/// `POST /console/broadcasts/new`: with `do=preview`, the page with its figures (nothing is
/// stored); else the draft is stored (once per form key) and the confirm page follows (303);
/// refused, the form again with what was typed and why (422).
pub async fn new_post(
    State(console): State<Console>,
    staff: Staff,
    Form(body): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = senders_only(&console, &staff) {
        return r;
    }
    let t = Tr::new(staff.signed.language);
    let typed = Typed::parse(&body);
    let url = format!("{PATH}/new");
    if field(&body, "do") == "preview" {
        return compose_page(
            &console,
            &staff,
            t,
            &typed,
            true,
            Vec::new(),
            &url,
            StatusCode::OK,
        )
        .await;
    }
    let refuse = |errors: Vec<FieldError>| {
        compose_page(
            &console,
            &staff,
            t,
            &typed,
            true,
            errors,
            &url,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    let at = match wanted(&console, &typed) {
        Ok(at) => at,
        Err(()) => {
            return refuse(vec![FieldError {
                field: "at",
                text: t.t("broadcasts.at_invalid"),
            }])
            .await
        }
    };
    if typed.communities.is_empty() {
        return refuse(vec![FieldError {
            field: "communities",
            text: t.t("broadcasts.no_audience"),
        }])
        .await;
    }
    let meeting = if typed.meeting_at.trim().is_empty() {
        None
    } else {
        match parse_local(&console, &typed.meeting_at) {
            Some(at) => Some(NewMeeting {
                at,
                place: typed.meeting_place.clone(),
                topics: typed.topics.clone(),
            }),
            None => {
                return refuse(vec![FieldError {
                    field: "meeting_at",
                    text: t.t("meetings.at_invalid"),
                }])
                .await
            }
        }
    };
    let audience = typed.audience();
    // Nobody to send to is refused here, before a draft is stored (the API allows it).
    match service::reach(&console.app, &staff.actor, &audience).await {
        Ok(r) if r.values().all(|x| x.recipients == 0) => {
            return refuse(vec![FieldError {
                field: "communities",
                text: t.t("broadcasts.no_recipients"),
            }])
            .await
        }
        Ok(_) => {}
        Err(e) => match refusal(&t, &e) {
            Some(err) => return refuse(vec![err]).await,
            None => return failed(&console, &staff, e),
        },
    }
    let texts = [&*typed.texts[0], &*typed.texts[1], &*typed.texts[2]];
    let created = match audience.only_project.filter(|_| typed.update) {
        // an update to a project's pledgers: the one rule for its audience
        Some(project) => {
            crate::service::news::post_update(
                &console.app,
                &staff.actor,
                project,
                texts,
                typed.vars(),
                Once::Form(&typed.key),
            )
            .await
        }
        None => {
            service::create(
                &console.app,
                &staff.actor,
                NewBroadcast {
                    audience,
                    texts,
                    vars: typed.vars(),
                    rsvp_hours: None,
                    meeting,
                },
                Once::Form(&typed.key),
            )
            .await
        }
    };
    match created {
        Ok(id) => {
            let next = match at {
                Some(at) => format!(
                    "{PATH}/{}/send?at={}",
                    id.0,
                    local_input(&console, at).replace(':', "%3A")
                ),
                None => format!("{PATH}/{}/send", id.0),
            };
            Redirect::to(&next).into_response()
        }
        Err(e) => match refusal(&t, &e) {
            Some(err) => refuse(vec![err]).await,
            None => failed(&console, &staff, e),
        },
    }
}

fn state_key(status: &str) -> &'static str {
    match status {
        "queued" => key("broadcasts.state.queued"),
        "sending" => key("broadcasts.state.sending"),
        "sent" => key("broadcasts.state.sent"),
        "delivered" => key("broadcasts.state.delivered"),
        "failed" => key("broadcasts.state.failed"),
        "suppressed" => key("broadcasts.state.suppressed"),
        "cancelled" => key("broadcasts.state.cancelled"),
        _ => key("broadcasts.state.other"),
    }
}

fn action_key(action: &str) -> &'static str {
    match action {
        "broadcast.create" => key("broadcasts.action.create"),
        "broadcast.send" => key("broadcasts.action.send"),
        "broadcast.cancel" => key("broadcasts.action.cancel"),
        "meeting.attendance" => key("meetings.action.attendance"),
        _ => key("broadcasts.action.other"),
    }
}

/// Broadcast `id` as its page shows it.
async fn card(console: &Console, staff: &Staff, t: &Tr, id: i64) -> Result<Card, ServiceError> {
    let v = service::view(&console.app, &staff.actor, BroadcastId(id)).await?;
    let names: HashMap<i64, String> = community_names(console, staff, t)
        .await?
        .into_iter()
        .collect();
    let b = &v.broadcast;
    let now = console.app.clock.now();
    let (status_key, class) = match b.status {
        BroadcastStatus::Draft => (key("broadcasts.status.draft"), "draft"),
        BroadcastStatus::Scheduled => (key("broadcasts.status.scheduled"), "scheduled"),
        BroadcastStatus::Queued
            if v.progress
                .messages
                .iter()
                .any(|(s, n)| *n > 0 && (s == "queued" || s == "sending")) =>
        {
            (key("broadcasts.status.sending"), "sending")
        }
        BroadcastStatus::Queued => (key("broadcasts.status.sent"), "sent"),
        BroadcastStatus::Cancelled => (key("broadcasts.status.cancelled"), "cancelled"),
    };
    let mut narrowing = Vec::new();
    if b.only_migrants {
        narrowing.push(t.t("broadcasts.only_migrants"));
    }
    if let Some(l) = b
        .only_language
        .as_deref()
        .and_then(|l| l.parse::<Language>().ok())
    {
        narrowing.push(t.t_with(
            key("broadcasts.only_language_is"),
            &[("language", &t.t(language_name_key(l)))],
        ));
    }
    if let Some(p) = b.only_project {
        let name = match crate::service::projects::get(&console.app, &staff.actor, p).await {
            Ok(p) => p.name.get(t.language).to_owned(),
            Err(_) => p.0.to_string(),
        };
        narrowing.push(t.t_with(key("broadcasts.only_project_is"), &[("project", &name)]));
    }
    let meeting = match &b.meeting {
        Some(m) => {
            let c = crate::service::meetings::counts(&console.app, &staff.actor, b.id).await?;
            let topics: Vec<String> = m
                .topics
                .iter()
                .map(|x| t.t(&format!("meetings.topic.{x}")))
                .collect();
            Some(MeetingCard {
                line: format!(
                    "{} · {}{}{}",
                    local(console, t, m.at),
                    m.place,
                    if topics.is_empty() { "" } else { " · " },
                    topics.join(", ")
                ),
                counts: vec![
                    Figure {
                        id: "meeting-invited".into(),
                        label: t.t("meetings.count.invited"),
                        value: t.int(c.invited),
                    },
                    Figure {
                        id: "meeting-yes".into(),
                        label: t.t("meetings.count.yes"),
                        value: t.int(c.yes),
                    },
                    Figure {
                        id: "meeting-came".into(),
                        label: t.t("meetings.count.came"),
                        value: t.int(c.came),
                    },
                ],
            })
        }
        None => None,
    };
    let texts = Language::ALL
        .iter()
        .map(|l| (t.t(language_key(*l)), b.text(*l)))
        .collect();
    let (per, currency) = price(console);
    let preview = match &v.preview {
        Some(p) => {
            let mut figures: Vec<Figure> = Language::ALL
                .iter()
                .filter_map(|l| p.languages.get(l.code()).map(|x| (l, x)))
                .map(|(l, x)| Figure {
                    id: format!("preview-{}", l.code()),
                    label: t.t(language_name_key(*l)),
                    value: t.t_with(
                        key("broadcasts.measure.cost"),
                        &[
                            (
                                "recipients",
                                &t.n(key("broadcasts.recipients"), x.recipients as i64),
                            ),
                            (
                                "segments",
                                &t.n(key("broadcasts.measure.segments"), x.segments_total as i64),
                            ),
                            (
                                "cost",
                                &t.money(service::cost(per, x.segments_total), &currency),
                            ),
                        ],
                    ),
                })
                .collect();
            figures.push(Figure {
                id: "preview-total".to_owned(),
                label: t.t("broadcasts.in_all"),
                value: t.t_with(
                    key("broadcasts.measure.cost"),
                    &[
                        (
                            "recipients",
                            &t.n(key("broadcasts.recipients"), p.recipients as i64),
                        ),
                        (
                            "segments",
                            &t.n(key("broadcasts.measure.segments"), p.segments_total as i64),
                        ),
                        ("cost", &t.money(p.estimated_cost, &p.cost_currency)),
                    ],
                ),
            });
            figures.extend(zone_figures(console, t, &p.zones, now, "preview"));
            figures
        }
        None => Vec::new(),
    };
    const ORDER: [&str; 7] = [
        "queued",
        "sending",
        "sent",
        "delivered",
        "failed",
        "suppressed",
        "cancelled",
    ];
    let mut states: Vec<(String, i64)> = ORDER
        .iter()
        .filter_map(|s| v.progress.messages.get(*s).map(|n| ((*s).to_owned(), *n)))
        .collect();
    states.extend(
        v.progress
            .messages
            .iter()
            .filter(|(s, _)| !ORDER.contains(&s.as_str()))
            .map(|(s, n)| (s.clone(), *n)),
    );
    let mut progress: Vec<Figure> = states
        .iter()
        .map(|(s, n)| Figure {
            id: format!("state-{s}"),
            label: t.t(state_key(s)),
            value: t.int(*n),
        })
        .collect();
    if v.progress.skipped_opted_out > 0 {
        progress.push(Figure {
            id: "state-skipped".to_owned(),
            label: t.t("broadcasts.state.skipped"),
            value: t.int(v.progress.skipped_opted_out),
        });
    }
    let failures = v
        .failures
        .iter()
        .map(|f| Figure {
            id: String::new(),
            label: if f.status.is_empty() {
                t.t("broadcasts.no_reason")
            } else {
                f.status.clone()
            },
            value: t.int(f.count),
        })
        .collect();
    let mut tally: Vec<Tally> = b
        .communities
        .iter()
        .map(|c| {
            let r = v
                .progress
                .rsvps
                .get(&c.0.to_string())
                .copied()
                .unwrap_or_default();
            Tally {
                community: names.get(&c.0).cloned().unwrap_or_else(|| c.0.to_string()),
                yes: t.int(r.yes),
                no: t.int(r.no),
            }
        })
        .collect();
    tally.sort_by(|a, b| a.community.cmp(&b.community));
    let (yes, no) = v
        .progress
        .rsvps
        .values()
        .fold((0, 0), |(y, n), r| (y + r.yes, n + r.no));
    let went_out = v
        .progress
        .messages
        .iter()
        .any(|(s, n)| *n > 0 && s != "queued" && s != "cancelled");
    let waiting = v.progress.messages.get("queued").copied().unwrap_or(0)
        + v.progress.messages.get("sending").copied().unwrap_or(0);
    let queued = b.status == BroadcastStatus::Queued;
    let history = service::history(&console.app, BroadcastId(id)).await?;
    let whos: Vec<&str> = history.iter().map(|a| a.actor.as_str()).collect();
    let who_names = crate::service::money::names(&console.app, &whos).await?;
    Ok(Card {
        id,
        title: t.t_with(key("broadcasts.page_title"), &[("id", &id.to_string())]),
        status: t.t(status_key),
        status_class: class,
        communities: names_of(&names, b.communities.iter().map(|c| c.0)),
        narrowing,
        texts,
        draft: b.status == BroadcastStatus::Draft,
        scheduled: if b.status == BroadcastStatus::Scheduled {
            b.send_at.map(|at| when_text(console, t, at, now))
        } else {
            None
        },
        preview,
        progress,
        failures,
        tally,
        tally_total: queued.then(|| Tally {
            community: t.t("broadcasts.in_all"),
            yes: t.int(yes),
            no: t.int(no),
        }),
        undo: b.status == BroadcastStatus::Scheduled || (queued && !went_out),
        cancel_rest: queued && went_out && waiting > 0,
        cancelled: b.status == BroadcastStatus::Cancelled,
        polling: queued && waiting > 0,
        as_of: t.t_with(
            key("broadcasts.as_of"),
            &[(
                "time",
                &t.time(now.with_timezone(&console.app.config.timezone).time()),
            )],
        ),
        history: history
            .iter()
            .map(|a| AuditLine {
                at: local(console, t, a.at),
                what: t.t(action_key(&a.action)),
                who: who_names
                    .get(&a.actor)
                    .cloned()
                    .unwrap_or_else(|| a.actor.clone()),
            })
            .collect(),
        key: form_key(),
        meeting,
    })
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    part: String,
    lang: Option<String>,
}

/// `GET /console/broadcasts/{id}`: the broadcast (`part=progress` with `HX-Request`: its
/// progress alone, for the poll).
pub async fn page(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    staff: Staff,
) -> Response {
    if let Some(r) = senders_only(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let p = match card(&console, &staff, &t, id).await {
        Ok(p) => p,
        Err(e) => return failed(&console, &staff, e),
    };
    if htmx_fragment(&headers) && q.part == "progress" {
        return ProgressPart { t, p }.into_response();
    }
    let flash = flash::shown(&staff.session, &t).await;
    BroadcastPage {
        l: layout(&console, &t, &staff, &format!("{PATH}/{id}")),
        p,
        flash,
        t,
    }
    .into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct SendQuery {
    #[serde(default)]
    at: String,
    lang: Option<String>,
}

/// `GET /console/broadcasts/{id}/send[?at=]`: what sending does — who, how many SMS, the
/// cost, when — and one button.
pub async fn send_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<SendQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = senders_only(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let v = match service::view(&console.app, &staff.actor, BroadcastId(id)).await {
        Ok(v) => v,
        Err(e) => return failed(&console, &staff, e),
    };
    let Some(preview) = v.preview else {
        flash::set(
            &staff.session,
            Flash::refused(key("broadcasts.not_pending"), None),
        )
        .await;
        return Redirect::to(&format!("{PATH}/{id}")).into_response();
    };
    let now = console.app.clock.now();
    let at = if q.at.trim().is_empty() {
        None
    } else {
        parse_local(&console, &q.at)
    };
    let quiet = &console.app.settings.quiet_hours;
    let zones = crate::broadcasts::retime(&preview.zones, quiet, at.unwrap_or(now).max(now));
    // the first zone's time (abroad it may be before the end of the quiet hours at home)
    let send_at = zones
        .first()
        .map_or_else(|| service::send_time(quiet, at, now), |g| g.receive_at);
    let (per, currency) = price(&console);
    let mut figures: Vec<Figure> = Language::ALL
        .iter()
        .filter_map(|l| preview.languages.get(l.code()).map(|x| (l, x)))
        .map(|(l, x)| Figure {
            id: format!("confirm-{}", l.code()),
            label: t.t(language_name_key(*l)),
            value: t.t_with(
                key("broadcasts.measure.cost"),
                &[
                    (
                        "recipients",
                        &t.n(key("broadcasts.recipients"), x.recipients as i64),
                    ),
                    (
                        "segments",
                        &t.n(key("broadcasts.measure.segments"), x.segments_total as i64),
                    ),
                    (
                        "cost",
                        &t.money(service::cost(per, x.segments_total), &currency),
                    ),
                ],
            ),
        })
        .collect();
    if preview.skipped_opted_out > 0 {
        figures.push(Figure {
            id: "confirm-opted-out".to_owned(),
            label: t.t("broadcasts.state.skipped"),
            value: t.int(preview.skipped_opted_out as i64),
        });
    }
    figures.extend(zone_figures(&console, &t, &zones, now, "confirm"));
    let what = t.t_with(
        key("broadcasts.confirm.what"),
        &[
            (
                "recipients",
                &t.n(key("broadcasts.recipients"), preview.recipients as i64),
            ),
            (
                "segments",
                &t.n(
                    key("broadcasts.measure.segments"),
                    preview.segments_total as i64,
                ),
            ),
            (
                "cost",
                &t.money(preview.estimated_cost, &preview.cost_currency),
            ),
        ],
    );
    let error = (preview.recipients == 0).then(|| t.t("broadcasts.no_recipients"));
    let texts = Language::ALL
        .iter()
        .map(|l| (t.t(language_key(*l)), v.broadcast.text(*l)))
        .collect();
    let url = if q.at.is_empty() {
        format!("{PATH}/{id}/send")
    } else {
        format!("{PATH}/{id}/send?at={}", q.at.replace(':', "%3A"))
    };
    ConfirmPage {
        l: layout(&console, &t, &staff, &url),
        id,
        what,
        figures,
        texts,
        when: when_text(&console, &t, send_at, now),
        at: at.map(|a| local_input(&console, a)).unwrap_or_default(),
        key: form_key(),
        error,
        t,
    }
    .into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct SendPost {
    #[serde(default)]
    key: String,
    #[serde(default)]
    at: String,
}

/// `POST /console/broadcasts/{id}/send`: sends or schedules (once per form key); 303 to the
/// broadcast with "Sent" or "Scheduled for …", refused with the reason.
pub async fn send_post(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<SendPost>,
) -> Response {
    if let Some(r) = senders_only(&console, &staff) {
        return r;
    }
    let page = format!("{PATH}/{id}");
    let at = if form.at.trim().is_empty() {
        None
    } else {
        match parse_local(&console, &bounded(&form.at, MAX_SHORT)) {
            Some(at) => Some(at),
            None => {
                flash::set(
                    &staff.session,
                    Flash::refused(key("broadcasts.at_invalid"), None),
                )
                .await;
                return Redirect::to(&page).into_response();
            }
        }
    };
    let t = Tr::new(staff.signed.language);
    match service::send(
        &console.app,
        &staff.actor,
        BroadcastId(id),
        at,
        Once::Form(&bounded(&form.key, MAX_SHORT * 2)),
    )
    .await
    {
        Ok(sent) => {
            let now = console.app.clock.now();
            let f = if sent.send_at <= now {
                Flash::done(key("broadcasts.flash.sent")).with(
                    "messages",
                    t.n(key("broadcasts.messages"), sent.queued as i64),
                )
            } else {
                let local = sent.send_at.with_timezone(&console.app.config.timezone);
                Flash::done(key("broadcasts.flash.scheduled"))
                    .with("date", t.date(local.date_naive()))
                    .with("time", t.time(local.time()))
            };
            flash::set(&staff.session, f).await;
            Redirect::to(&page).into_response()
        }
        Err(e) => refused(&console, &staff, e, &page).await,
    }
}

/// Puts a refusal in the flash and answers 303 to `back`, or 404/500 for what is not one.
async fn refused(console: &Console, staff: &Staff, e: ServiceError, back: &str) -> Response {
    let text_key = match &e {
        ServiceError::Invalid { key: k, .. } => *k,
        ServiceError::Conflict { rule, .. } => *rule,
        _ => return failed(console, staff, e),
    };
    flash::set(&staff.session, Flash::refused(text_key, None)).await;
    Redirect::to(back).into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct CancelPost {
    #[serde(default)]
    key: String,
}

/// `POST /console/broadcasts/{id}/cancel`: Undo — the broadcast is cancelled and what still
/// waits in the outbox is not sent (once per form key); 303 to the broadcast.
pub async fn cancel_post(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<CancelPost>,
) -> Response {
    if let Some(r) = senders_only(&console, &staff) {
        return r;
    }
    let page = format!("{PATH}/{id}");
    let t = Tr::new(staff.signed.language);
    match service::cancel(
        &console.app,
        &staff.actor,
        BroadcastId(id),
        Once::Form(&bounded(&form.key, MAX_SHORT * 2)),
    )
    .await
    {
        Ok(stopped) => {
            flash::set(
                &staff.session,
                Flash::done(key("broadcasts.flash.cancelled"))
                    .with("messages", t.n(key("broadcasts.messages"), stopped as i64)),
            )
            .await;
            Redirect::to(&page).into_response()
        }
        Err(e) => refused(&console, &staff, e, &page).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_form_reads_as_typed_and_bounded() {
        let long = "я".repeat(5000);
        let t = Typed::parse(&pairs(&[
            ("community", "3"),
            ("community", "x"),
            ("community", "5"),
            ("only_migrants", "1"),
            ("text_tg", &long),
            ("date", " 1.12 "),
            ("place", ""),
            ("when", "later"),
            ("n_tg", "4"),
            ("n_ru", "2"),
            ("n_en", "0"),
        ]));
        assert_eq!(t.communities, vec![3, 5]);
        assert!(t.only_migrants && t.later);
        assert_eq!(t.texts[0].chars().count(), service::MAX_TEXT + 1);
        assert_eq!(t.counts, Some([4, 2, 0]));
        let vars = t.vars();
        assert_eq!(vars.get("date").map(String::as_str), Some("1.12"));
        assert_eq!(vars.len(), 1, "an empty value is no value");
        assert_eq!(t.audience().only_language, None);
    }

    #[test]
    fn a_long_text_is_cut_for_the_list() {
        assert_eq!(excerpt("short"), "short");
        let e = excerpt(&"word ".repeat(40));
        assert!(e.ends_with('…') && e.chars().count() <= 80, "{e}");
    }
}
