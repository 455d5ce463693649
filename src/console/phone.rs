//! The phone simulator (`/console/phone`, §3 "Phone" of the console design; issue 10,
//! page 8): a feature phone drawn on the page that acts as a household's number, or as a
//! new one. Dial the USSD code and answer screen by screen, or text the service, and see
//! what each step stored.
//!
//! Each step is handed **in-process to the real webhook routes** (`crate::http::webhooks`,
//! the router an aggregator's requests reach, through `tower::ServiceExt::oneshot`), as
//! Africa's Talking sends them: a USSD hop (`sessionId` made here per simulated call, the
//! whole input history as `text`) or an inbound SMS (its message id made from the form's
//! one-time key, so a double submit is one message). The shared webhook secret, when set,
//! is added here as HTTP basic auth: it never reaches the browser. What the step wrote is
//! then read back from the database (`service::simulator`): a household registered, a
//! pledge with its code, a callback request, SMS queued to the number; the SMS tab shows
//! the number's texts from the outbox and the inbound messages.
//!
//! It writes real registrations and pledges, so it exists only while the SMS provider is
//! the built-in console (`HASHAR_SMS_PROVIDER=console`, a demo or training deployment):
//! otherwise every route here is 404, as it is for programme officers (who change nothing).
//! A member of staff acts as a number of a household they may see, or a number of nobody's
//! (`service::simulator::typed_number`); each number taken up is written to the audit log
//! (`phone.simulate`) and logged masked.
//!
//! The simulator's state (the number, the open call's session id and history, the line
//! being typed and the log of steps) is kept in the signed-in person's server-side session.
//! The keypad works without JavaScript: every key is a submit button of one form whose
//! reply field travels with it; with htmx the form swaps the handset and the log in place
//! (askama block `sim`), without it each POST answers 303 back to the page.
//!
//! Routes:
//! - `GET  /console/phone[?tab=ussd|sms]`: the page;
//! - `POST /console/phone/ussd`: take up a number, a key, Send (dial, or the next answer),
//!   End;
//! - `POST /console/phone/sms`: take up a number, a key, Send (a text from the number).

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    body::Body,
    extract::{Query, State},
    http::{header, HeaderMap, HeaderValue, Request, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form, Router,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use super::flash::FlashView;
use super::pages::form_key;
use super::{
    auth::Staff,
    flash::{self, Flash},
    i18n::{key, Tr},
    money::FieldError,
    pages::{staff_language, Answers, Layout},
    Console,
};
use crate::{
    app::AppState,
    channels::{africastalking::AfricasTalking, webhook_path, Provider, MAX_TEXT_CHARS},
    domain::{
        text::{Encoding, TextMeasure},
        Phone,
    },
    service::{
        simulator::{self, Activity, ThreadItem},
        ServiceError,
    },
    store::Localized,
};

/// The page's place in the navigation.
pub const PATH: &str = "/console/phone";
/// The USSD code the handset dials (what `hashar phone` dials too; Africa's Talking sends
/// it as `serviceCode`, which the service does not read).
pub const SERVICE_CODE: &str = "*384*4274#";
/// Longest USSD answer typed on the handset, in characters.
const MAX_REPLY: usize = 160;
/// Steps the log keeps (newest first).
const KEEP_STEPS: usize = 30;
/// Largest answer of a webhook read back.
const MAX_ANSWER: usize = 64 * 1024;
/// The session key of the simulator's state.
const SESSION_KEY: &str = "phone";
/// The keys of the keypad, as a phone lays them out.
const KEYS: [&str; 12] = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

/// The webhook routes the simulator hands its steps to, and the secret it adds.
pub struct Simulator {
    webhooks: Router,
    /// `Authorization: Basic …` with `HASHAR_WEBHOOK_SECRET`, when one is set.
    auth: Option<HeaderValue>,
}

impl Simulator {
    /// The simulator over `state`'s webhooks, or none when the SMS provider is not the
    /// console (then the simulator's routes are 404).
    pub fn new(state: &AppState) -> Option<Simulator> {
        if state.config.sms_provider != crate::channels::SmsProvider::Console {
            return None;
        }
        let auth = state.config.webhook_secret().and_then(|secret| {
            use base64::Engine as _;
            let pair = format!("simulator:{secret}");
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
            value.set_sensitive(true);
            Some(value)
        });
        Some(Simulator {
            webhooks: crate::http::webhooks(state.clone()),
            auth,
        })
    }

    /// POSTs `form` to Africa's Talking's webhook `kind` (`ussd` or `sms`), in-process.
    async fn post(
        &self,
        kind: &str,
        form: &[(&str, &str)],
    ) -> Result<(StatusCode, String), StepError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = Request::post(webhook_path(AfricasTalking::NAME, kind))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(auth) = &self.auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        let request = request
            .body(Body::from(body))
            .map_err(|e| StepError::Request(e.to_string()))?;
        let response = match self.webhooks.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
            .await
            .map_err(|e| StepError::Request(e.to_string()))?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// A step that could not be handed to the webhook at all.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("the webhook request failed: {0}")]
    Request(String),
}

/// Which side of the handset is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    Ussd,
    Sms,
}

impl Tab {
    fn parse(s: Option<&str>) -> Tab {
        match s {
            Some("sms") => Tab::Sms,
            _ => Tab::Ussd,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Tab::Ussd => "ussd",
            Tab::Sms => "sms",
        }
    }
}

// ---------------------------------------------------------------------------------------
// The state kept in the session

/// The simulator's state in the session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Sim {
    /// The number acted as (E.164), once one is taken up.
    #[serde(default)]
    phone: Option<String>,
    /// The household it was chosen from, if it was.
    #[serde(default)]
    household: Option<i64>,
    /// The number typed in the "or type a number" field, kept after a refusal.
    #[serde(default)]
    number_input: String,
    /// The handset's input line.
    #[serde(default)]
    typed: String,
    #[serde(default)]
    call: Option<Call>,
    /// Newest first, at most [`KEEP_STEPS`].
    #[serde(default)]
    log: Vec<Step>,
    /// The one-time key of the last text sent (its form sent again sends nothing).
    #[serde(default)]
    last_key: Option<String>,
}

/// A simulated USSD call.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Call {
    /// The `sessionId` made for this call.
    session: String,
    /// The answers so far (Africa's Talking sends them joined by `*`).
    history: Vec<String>,
    /// The screen shown now.
    screen: String,
    /// The screen ended the session (`END`).
    end: bool,
}

/// One step and what it stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Step {
    at: DateTime<Utc>,
    /// `dial`, `ussd` (an answer) or `sms` (a text).
    what: String,
    /// What was typed (none for a dial).
    sent: Option<String>,
    /// The USSD screen the step brought.
    screen: Option<String>,
    /// The step brought this screen after `pages` presses of 99 in a row.
    #[serde(default)]
    page: usize,
    /// The webhook's answer when it was not 200.
    failure: Option<(u16, String)>,
    events: Vec<Event>,
}

/// A row a step wrote, as the log keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Event {
    kind: String,
    code: Option<String>,
    amount: Option<String>,
    currency: Option<String>,
    names: Option<[String; 3]>,
    detail: Option<String>,
    status: Option<String>,
    body: Option<String>,
}

impl From<Activity> for Event {
    fn from(a: Activity) -> Event {
        let names = match (a.name_tg, a.name_ru, a.name_en) {
            (Some(tg), Some(ru), Some(en)) => Some([tg, ru, en]),
            _ => None,
        };
        Event {
            kind: a.kind,
            code: a.code,
            amount: a.amount.map(|d| d.to_string()),
            currency: a.currency,
            names,
            detail: a.detail,
            status: a.status,
            body: a.body,
        }
    }
}

async fn load(staff: &Staff) -> Sim {
    match staff.session.get::<Sim>(SESSION_KEY).await {
        Ok(sim) => sim.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "console: reading the phone simulator's state failed");
            Sim::default()
        }
    }
}

async fn save(staff: &Staff, sim: &Sim) {
    if let Err(e) = staff.session.insert(SESSION_KEY, sim).await {
        tracing::warn!(error = %e, "console: keeping the phone simulator's state failed");
    }
}

// ---------------------------------------------------------------------------------------
// What the page shows

/// A number of the list.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// A line of text measured as a phone counts it.
pub struct Measured {
    pub text: String,
    pub measure: String,
    /// Longer than one USSD screen (it would be cut).
    pub over: bool,
}

/// A text of the SMS tab.
pub struct Bubble {
    pub incoming: bool,
    pub body: Option<String>,
    pub meta: String,
}

/// A step of the log.
pub struct StepView {
    pub at: String,
    pub title: String,
    pub screen: Option<Measured>,
    pub failure: Option<String>,
    pub lines: Vec<String>,
}

/// Everything the page (and the fragment htmx swaps in) shows.
pub struct PhoneView {
    /// The list of numbers is shown (no number yet, a refusal, or "use another number");
    /// else a link to it.
    pub show_pick: bool,
    /// The session's CSRF token, for the forms' hidden field (the fragment has no layout).
    pub csrf: String,
    pub tab: &'static str,
    /// Where the handset's form posts.
    pub action: &'static str,
    pub code: &'static str,
    pub choices: Vec<Choice>,
    pub number_input: String,
    /// "+99290*****98 · Karimov · Anzob", once a number is taken up.
    pub acting: Option<String>,
    /// The USSD screen shown now, measured (none: the idle screen).
    pub screen: Option<Measured>,
    pub screen_end: bool,
    /// "Page 2", "More on 99".
    pub paging: Vec<String>,
    pub in_call: bool,
    pub typed: String,
    /// The USSD step the form answers (the history's length), or the SMS form's one-time key.
    pub step: String,
    pub thread: Vec<Bubble>,
    pub log: Vec<StepView>,
    pub flash: Option<FlashView>,
    pub errors: Vec<FieldError>,
    pub keys: [&'static str; 12],
}

impl PhoneView {
    pub fn error_of(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.text.as_str())
    }

    pub fn is_sms(&self) -> bool {
        self.tab == "sms"
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/phone.html")]
pub struct PhonePage {
    pub t: Tr,
    pub l: Layout,
    pub v: PhoneView,
}

/// The handset and the log alone, for htmx.
#[derive(Template, WebTemplate)]
#[template(path = "console/phone.html", block = "sim")]
pub struct PhoneFragment {
    pub t: Tr,
    pub v: PhoneView,
}

fn names_in(t: &Tr, names: &[String; 3]) -> String {
    let l = Localized {
        tg: names[0].clone(),
        ru: names[1].clone(),
        en: names[2].clone(),
    };
    l.get(t.language).to_owned()
}

fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Gsm7 => "GSM-7",
        Encoding::Ucs2 => "UCS-2",
    }
}

/// A USSD screen measured: characters, encoding, units of the screen limit.
fn measure_screen(console: &Console, t: &Tr, text: &str) -> Measured {
    let m = TextMeasure::of(text);
    let limits = console.app.config.screen_limits();
    let limit = match m.encoding {
        Encoding::Gsm7 => limits.gsm7,
        Encoding::Ucs2 => limits.ucs2,
    };
    Measured {
        text: text.to_owned(),
        measure: t.t_with(
            key("phone.measure"),
            &[
                ("chars", &t.int(text.chars().count() as i64)),
                ("encoding", encoding_name(m.encoding)),
                ("units", &t.int(m.units as i64)),
                ("limit", &t.int(limit as i64)),
            ],
        ),
        over: m.units > limit,
    }
}

/// An SMS measured: characters, encoding, parts.
fn measure_sms(t: &Tr, text: &str) -> String {
    let m = TextMeasure::of(text);
    t.t_with(
        key("phone.sms_measure"),
        &[
            ("chars", &t.int(text.chars().count() as i64)),
            ("encoding", encoding_name(m.encoding)),
            ("parts", &t.n("phone.parts", m.sms_segments() as i64)),
        ],
    )
}

/// Whether a screen offers a next page (its last line is the `99` one).
fn has_more(screen: &str) -> bool {
    screen.lines().last().is_some_and(|l| {
        l.trim_start()
            .strip_prefix("99")
            .is_some_and(|r| r.starts_with(' '))
    })
}

/// How many pages on the screen is: 1 + the 99s pressed in a row before it.
fn page_of(history: &[String]) -> usize {
    1 + history
        .iter()
        .rev()
        .take_while(|h| h.trim() == "99")
        .count()
}

fn paging(t: &Tr, screen: &str, page: usize) -> Vec<String> {
    let mut out = Vec::new();
    if page > 1 || has_more(screen) {
        out.push(t.t_with(key("phone.page"), &[("n", &t.int(page as i64))]));
    }
    if has_more(screen) {
        out.push(t.t("phone.more"));
    }
    out
}

fn status_key(s: &str) -> &'static str {
    match s {
        "queued" => key("households.status.queued"),
        "sending" => key("households.status.sending"),
        "sent" => key("households.status.sent"),
        "delivered" => key("households.status.delivered"),
        "failed" => key("households.status.failed"),
        "suppressed" => key("households.status.suppressed"),
        "cancelled" => key("households.status.cancelled"),
        _ => key("households.status.handled"),
    }
}

fn kind_key(s: &str) -> &'static str {
    match s {
        "sms" => key("households.kind.sms"),
        "stop_confirmation" => key("households.kind.stop_confirmation"),
        "broadcast" => key("households.kind.broadcast"),
        "receipt" => key("households.kind.receipt"),
        "link_code" => key("households.kind.link_code"),
        _ => key("households.kind.reply"),
    }
}

fn channel_name(via: &str) -> String {
    match via {
        "ussd" => "USSD".to_owned(),
        "sms" => "SMS".to_owned(),
        other => other.to_owned(),
    }
}

/// An event of the log in words.
fn event_line(t: &Tr, e: &Event) -> String {
    let name = e.names.as_ref().map(|n| names_in(t, n)).unwrap_or_default();
    match e.kind.as_str() {
        "household" => t.t_with(
            key("phone.event.household"),
            &[
                ("community", &name),
                (
                    "via",
                    &channel_name(e.detail.as_deref().unwrap_or_default()),
                ),
            ],
        ),
        "pledge" => {
            let amount = e
                .amount
                .as_deref()
                .and_then(|a| a.parse().ok())
                .map(|a| t.money(a, e.currency.as_deref().unwrap_or_default()))
                .unwrap_or_default();
            t.t_with(
                key("phone.event.pledge"),
                &[
                    ("code", e.code.as_deref().unwrap_or("—")),
                    ("amount", &amount),
                    ("project", &name),
                ],
            )
        }
        "callback" => t.t_with(
            key("phone.event.callback"),
            &[("topic", e.detail.as_deref().unwrap_or_default())],
        ),
        _ => {
            let measure = e
                .body
                .as_deref()
                .map(|b| measure_sms(t, b))
                .unwrap_or_default();
            t.t_with(
                key("phone.event.sms"),
                &[
                    (
                        "kind",
                        &t.t(kind_key(e.detail.as_deref().unwrap_or_default())),
                    ),
                    (
                        "status",
                        &t.t(status_key(e.status.as_deref().unwrap_or_default())),
                    ),
                    ("measure", &measure),
                ],
            )
        }
    }
}

fn local(console: &Console, t: &Tr, at: DateTime<Utc>) -> String {
    t.time(at.with_timezone(&console.app.config.timezone).time())
}

fn step_view(console: &Console, t: &Tr, s: &Step) -> StepView {
    let title = match (s.what.as_str(), &s.sent) {
        ("dial", _) => t.t_with(key("phone.log.dialled"), &[("code", SERVICE_CODE)]),
        ("sms", Some(text)) => t.t_with(key("phone.log.texted"), &[("text", text)]),
        (_, Some(text)) => t.t_with(key("phone.log.answered"), &[("text", text)]),
        _ => t.t("phone.log.answered_empty"),
    };
    let mut lines: Vec<String> = s.events.iter().map(|e| event_line(t, e)).collect();
    if lines.is_empty() && s.failure.is_none() {
        lines.push(t.t("phone.event.none"));
    }
    let screen = s.screen.as_deref().map(|text| {
        let mut m = measure_screen(console, t, text);
        let pages = paging(t, text, s.page.max(1));
        if !pages.is_empty() {
            m.measure = format!("{} · {}", m.measure, pages.join(" · "));
        }
        m
    });
    StepView {
        at: local(console, t, s.at),
        title,
        screen,
        failure: s.failure.as_ref().map(|(status, text)| {
            t.t_with(
                key("phone.error.service"),
                &[("status", &status.to_string()), ("text", text)],
            )
        }),
        lines,
    }
}

fn bubble(console: &Console, t: &Tr, i: &ThreadItem) -> Bubble {
    let incoming = i.direction == "in";
    let mut meta = vec![local(console, t, i.at)];
    if let Some(body) = &i.body {
        meta.push(measure_sms(t, body));
    }
    if !incoming {
        meta.push(t.t(kind_key(&i.kind)));
        if let Some(s) = &i.status {
            meta.push(t.t(status_key(s)));
        }
    }
    Bubble {
        incoming,
        body: i.body.clone(),
        meta: meta.join(" · "),
    }
}

fn well_formed(k: &str) -> bool {
    k.len() == 32
        && k.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Builds the view: the list of numbers, the handset, the SMS thread (on that tab) and the
/// log.
async fn view(
    console: &Console,
    staff: &Staff,
    t: &Tr,
    sim: &Sim,
    tab: Tab,
) -> Result<PhoneView, ServiceError> {
    let listed = simulator::numbers(&console.app, &staff.actor).await?;
    let mut choices = Vec::new();
    let mut index_in_household = std::collections::HashMap::<i64, usize>::new();
    let mut acting = None;
    for n in &listed {
        let index = index_in_household.entry(n.household).or_insert(0);
        let value = format!("{}.{}", n.household, index);
        *index += 1;
        let mut label = vec![n.phone.masked()];
        if let Some(name) = &n.name {
            label.push(name.clone());
        }
        label.push(n.community.get(t.language).to_owned());
        let label = label.join(" · ");
        let selected = sim.phone.as_deref() == Some(n.phone.as_str());
        if selected {
            acting = Some(label.clone());
        }
        choices.push(Choice {
            value,
            label,
            selected,
        });
    }
    let phone = sim.phone.as_deref().and_then(|p| Phone::parse(p).ok());
    if acting.is_none() {
        acting = phone
            .as_ref()
            .map(|p| t.t_with(key("phone.acting_new"), &[("phone", &p.masked())]));
    }
    let thread = match (&phone, tab) {
        // a number no longer this person's to act as (moved to another community) shows
        // no texts; the next step says why
        (Some(p), Tab::Sms) => match simulator::thread(&console.app, &staff.actor, p).await {
            Ok(items) => items.iter().map(|i| bubble(console, t, i)).collect(),
            Err(ServiceError::Invalid { .. }) => Vec::new(),
            Err(e) => return Err(e),
        },
        _ => Vec::new(),
    };
    let (screen, screen_end, pages, in_call, step) = match (&sim.call, tab) {
        (Some(c), Tab::Ussd) => (
            Some(measure_screen(console, t, &c.screen)),
            c.end,
            paging(t, &c.screen, page_of(&c.history)),
            !c.end,
            if c.end {
                "dial".to_owned()
            } else {
                c.history.len().to_string()
            },
        ),
        (_, Tab::Sms) => (None, false, Vec::new(), false, form_key()),
        _ => (None, false, Vec::new(), false, "dial".to_owned()),
    };
    Ok(PhoneView {
        show_pick: acting.is_none(),
        csrf: staff.signed.csrf.clone(),
        tab: tab.as_str(),
        action: match tab {
            Tab::Ussd => "/console/phone/ussd",
            Tab::Sms => "/console/phone/sms",
        },
        code: SERVICE_CODE,
        choices,
        number_input: sim.number_input.clone(),
        acting,
        screen,
        screen_end,
        paging: pages,
        in_call,
        typed: sim.typed.clone(),
        step,
        thread,
        log: sim.log.iter().map(|s| step_view(console, t, s)).collect(),
        flash: None,
        errors: Vec::new(),
        keys: KEYS,
    })
}

// ---------------------------------------------------------------------------------------
// Handlers

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    tab: Option<String>,
    /// Show the list of numbers while acting as one.
    pick: Option<String>,
    lang: Option<String>,
}

const ANSWERS: Answers = Answers {
    path: PATH,
    back: "/console",
    back_key: key("nav.overview"),
    not_found: (key("phone.not_found.title"), key("phone.not_found.text")),
    failed: (key("phone.failed.title"), key("phone.failed.text")),
    what: "phone simulator",
};

fn not_found(console: &Console, staff: &Staff) -> Response {
    ANSWERS.not_found(console, staff)
}

fn failed(console: &Console, staff: &Staff, e: ServiceError) -> Response {
    ANSWERS.failed(console, staff, e)
}

/// The simulator, if it is on and this person may use it.
fn simulator<'a>(console: &'a Console, staff: &Staff) -> Option<&'a Simulator> {
    if staff.actor.read_only() {
        return None;
    }
    console.simulator.as_deref()
}

/// `GET /console/phone`: the number picker, the handset and the log.
pub async fn page(
    State(console): State<Console>,
    staff: Staff,
    Query(q): Query<PageQuery>,
) -> Response {
    if simulator(&console, &staff).is_none() {
        return not_found(&console, &staff);
    }
    let t = staff_language(&staff, q.lang.as_deref()).await;
    let tab = Tab::parse(q.tab.as_deref());
    let sim = load(&staff).await;
    let mut v = match view(&console, &staff, &t, &sim, tab).await {
        Ok(v) => v,
        Err(e) => return failed(&console, &staff, e),
    };
    if let Some(f) = flash::take(&staff.session).await {
        if let (false, Some(field)) = (f.is_done(), f.field.as_deref()) {
            v.errors.push(FieldError {
                field: match field {
                    "number" => "number",
                    _ => "reply",
                },
                text: f.text(&t),
            });
        } else {
            v.flash = Some(FlashView {
                done: f.is_done(),
                text: f.text(&t),
            });
        }
    }
    if q.pick.is_some() || !v.errors.is_empty() {
        v.show_pick = true;
    }
    let url = format!("{PATH}?tab={}", tab.as_str());
    let l = Layout::signed_in_at(&console, &t, PATH, &staff, &url);
    PhonePage { t, l, v }.into_response()
}

/// What a POST of the page sends: one of the buttons, with the fields.
#[derive(Debug, Default, Deserialize)]
pub struct PhoneForm {
    #[serde(default)]
    reply: String,
    #[serde(default)]
    step: String,
    press: Option<String>,
    send: Option<String>,
    hangup: Option<String>,
    pick: Option<String>,
    #[serde(default)]
    household: String,
    #[serde(default)]
    number: String,
}

/// `POST /console/phone/ussd`.
pub async fn ussd(
    State(console): State<Console>,
    staff: Staff,
    headers: HeaderMap,
    Form(form): Form<PhoneForm>,
) -> Response {
    post(console, staff, headers, form, Tab::Ussd).await
}

/// `POST /console/phone/sms`.
pub async fn sms(
    State(console): State<Console>,
    staff: Staff,
    headers: HeaderMap,
    Form(form): Form<PhoneForm>,
) -> Response {
    post(console, staff, headers, form, Tab::Sms).await
}

/// What a POST came to, before it is answered.
enum Outcome {
    /// Nothing to say.
    Quiet,
    /// A done or refused message (a refusal names its field).
    Said(Flash),
}

async fn post(
    console: Console,
    staff: Staff,
    headers: HeaderMap,
    form: PhoneForm,
    tab: Tab,
) -> Response {
    let Some(sim_routes) = simulator(&console, &staff) else {
        return not_found(&console, &staff);
    };
    let mut sim = load(&staff).await;
    let outcome = if form.pick.is_some() {
        pick(&console, &staff, &mut sim, &form, tab).await
    } else if let Some(k) = form.press.as_deref() {
        press(&mut sim, &form.reply, k, tab);
        Ok(Outcome::Quiet)
    } else if form.hangup.is_some() {
        sim.call = None;
        sim.typed.clear();
        Ok(Outcome::Quiet)
    } else if form.send.is_some() {
        match tab {
            Tab::Ussd => send_ussd(&console, &staff, sim_routes, &mut sim, &form).await,
            Tab::Sms => send_sms(&console, &staff, sim_routes, &mut sim, &form).await,
        }
    } else {
        Ok(Outcome::Quiet)
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e @ (ServiceError::NotFound(_) | ServiceError::Forbidden)) => {
            return failed(&console, &staff, e)
        }
        Err(ServiceError::Invalid { field, key, .. }) => {
            Outcome::Said(Flash::refused(key, Some(field)))
        }
        Err(e) => return failed(&console, &staff, e),
    };
    save(&staff, &sim).await;
    if headers.get("hx-request").is_some() {
        let t = Tr::new(staff.signed.language);
        let mut v = match view(&console, &staff, &t, &sim, tab).await {
            Ok(v) => v,
            Err(e) => return failed(&console, &staff, e),
        };
        if let Outcome::Said(f) = outcome {
            if f.is_done() {
                v.flash = Some(FlashView {
                    done: true,
                    text: f.text(&t),
                });
            } else {
                v.errors.push(FieldError {
                    field: "reply",
                    text: f.text(&t),
                });
            }
        }
        return PhoneFragment { t, v }.into_response();
    }
    if let Outcome::Said(f) = outcome {
        flash::set(&staff.session, f).await;
    }
    Redirect::to(&format!("{PATH}?tab={}#handset", tab.as_str())).into_response()
}

/// Takes up a number: one of the list (`household` = `id.index`) or a typed one.
async fn pick(
    console: &Console,
    staff: &Staff,
    sim: &mut Sim,
    form: &PhoneForm,
    tab: Tab,
) -> Result<Outcome, ServiceError> {
    let typed = form.number.trim();
    let (phone, household) = if !typed.is_empty() {
        sim.number_input = typed.chars().take(40).collect();
        (
            simulator::typed_number(&console.app, &staff.actor, typed).await?,
            None,
        )
    } else if let Some((id, index)) = form
        .household
        .split_once('.')
        .and_then(|(h, i)| Some((h.parse::<i64>().ok()?, i.parse::<usize>().ok()?)))
    {
        let phone = simulator::household_number(&console.app, &staff.actor, id, index).await?;
        (phone, Some(id))
    } else {
        return Err(ServiceError::invalid(
            "number",
            "phone.error.pick_first",
            "choose a number",
        ));
    };
    simulator::audit_start(&console.app, &staff.actor, &phone, tab.as_str()).await?;
    tracing::info!(
        staff = staff.actor.coordinator_id,
        phone = %phone.masked(),
        channel = tab.as_str(),
        "console: phone simulator acting as a number"
    );
    let masked = phone.masked();
    *sim = Sim {
        phone: Some(phone.as_str().to_owned()),
        household,
        ..Sim::default()
    };
    Ok(Outcome::Said(
        Flash::done(key("phone.flash.acting")).with("phone", masked),
    ))
}

/// A key of the keypad: the line typed so far (the form's reply field) with the key added,
/// or its last character taken off (`del`).
fn press(sim: &mut Sim, reply: &str, k: &str, tab: Tab) {
    let max = match tab {
        Tab::Ussd => MAX_REPLY,
        Tab::Sms => MAX_TEXT_CHARS,
    };
    let mut line: String = reply.chars().take(max).collect();
    match k {
        "del" => {
            line.pop();
        }
        k if KEYS.contains(&k) && line.chars().count() < max => line.push_str(k),
        _ => {}
    }
    sim.typed = line;
}

fn the_phone(sim: &Sim) -> Result<Phone, ServiceError> {
    sim.phone
        .as_deref()
        .and_then(|p| Phone::parse(p).ok())
        .ok_or_else(|| ServiceError::invalid("number", "phone.error.pick_first", "choose a number"))
}

fn keep(sim: &mut Sim, step: Step) {
    sim.log.insert(0, step);
    sim.log.truncate(KEEP_STEPS);
}

/// Send on the USSD side: dials when no call is open (or the last one ended), else sends
/// the typed answer as the next hop. A form for another step than the call's (a double
/// submit, an old tab) sends nothing.
async fn send_ussd(
    console: &Console,
    staff: &Staff,
    routes: &Simulator,
    sim: &mut Sim,
    form: &PhoneForm,
) -> Result<Outcome, ServiceError> {
    let phone = the_phone(sim)?;
    let open = sim.call.as_ref().filter(|c| !c.end).cloned();
    let (mut call, sent) = match open {
        None => {
            if form.step != "dial" {
                return Ok(Outcome::Quiet);
            }
            let call = Call {
                session: format!("sim-{}", form_key()),
                history: Vec::new(),
                screen: String::new(),
                end: false,
            };
            (call, None)
        }
        Some(mut c) => {
            if form.step != c.history.len().to_string() {
                return Ok(Outcome::Quiet);
            }
            let answer = form.reply.trim();
            if answer.is_empty() || answer.chars().count() > MAX_REPLY {
                return Err(ServiceError::invalid(
                    "reply",
                    "phone.error.reply",
                    "a reply of 1 to 160 characters",
                ));
            }
            c.history.push(answer.to_owned());
            (c, Some(answer.to_owned()))
        }
    };
    let marks = simulator::marks(&console.app, &staff.actor, &phone).await?;
    let text = call.history.join("*");
    let answer = routes
        .post(
            "ussd",
            &[
                ("sessionId", call.session.as_str()),
                ("serviceCode", SERVICE_CODE),
                ("phoneNumber", phone.as_str()),
                ("networkCode", "99999"),
                ("text", text.as_str()),
            ],
        )
        .await;
    let events: Vec<Event> = simulator::activity(&console.app, &phone, &marks)
        .await?
        .into_iter()
        .map(Event::from)
        .collect();
    let now = console.app.clock.now();
    tracing::info!(
        staff = staff.actor.coordinator_id,
        phone = %phone.masked(),
        step = call.history.len(),
        "console: phone simulator USSD step"
    );
    let what = if sent.is_some() { "ussd" } else { "dial" };
    let page = page_of(&call.history);
    match answer {
        Ok((StatusCode::OK, body)) => {
            let (end, screen) = if let Some(s) = body.strip_prefix("CON ") {
                (false, s)
            } else if let Some(s) = body.strip_prefix("END ") {
                (true, s)
            } else {
                (true, body.as_str())
            };
            call.screen = screen.to_owned();
            call.end = end;
            keep(
                sim,
                Step {
                    at: now,
                    what: what.into(),
                    sent,
                    screen: Some(screen.to_owned()),
                    page,
                    failure: None,
                    events,
                },
            );
            sim.call = Some(call);
        }
        Ok((status, body)) => {
            // The service refused or failed the hop: the phone shows nothing new; the log
            // says what the webhook answered. The answer is not kept in the history.
            let mut c = call;
            if sent.is_some() {
                c.history.pop();
            }
            keep(
                sim,
                Step {
                    at: now,
                    what: what.into(),
                    sent,
                    screen: None,
                    page,
                    failure: Some((status.as_u16(), body.trim().chars().take(200).collect())),
                    events,
                },
            );
            if !c.screen.is_empty() {
                sim.call = Some(c);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "console: phone simulator could not reach the webhook");
            return Err(ServiceError::Busy("webhook"));
        }
    }
    sim.typed.clear();
    Ok(Outcome::Quiet)
}

/// Send on the SMS side: the typed text as an SMS from the number, its id made from the
/// form's one-time key (a double submit is the same message, handled once).
async fn send_sms(
    console: &Console,
    staff: &Staff,
    routes: &Simulator,
    sim: &mut Sim,
    form: &PhoneForm,
) -> Result<Outcome, ServiceError> {
    let phone = the_phone(sim)?;
    if !well_formed(&form.step) || sim.last_key.as_deref() == Some(form.step.as_str()) {
        return Ok(Outcome::Quiet);
    }
    let text = form.reply.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(ServiceError::invalid(
            "reply",
            "phone.error.text",
            "a text of 1 to 1600 characters",
        ));
    }
    let id = format!("sim-{}", form.step);
    sim.last_key = Some(form.step.clone());
    let marks = simulator::marks(&console.app, &staff.actor, &phone).await?;
    let answer = routes
        .post(
            "sms",
            &[
                ("id", id.as_str()),
                ("from", phone.as_str()),
                ("to", console.app.config.sms_number.as_str()),
                ("text", text),
            ],
        )
        .await;
    let events: Vec<Event> = simulator::activity(&console.app, &phone, &marks)
        .await?
        .into_iter()
        .map(Event::from)
        .collect();
    tracing::info!(
        staff = staff.actor.coordinator_id,
        phone = %phone.masked(),
        "console: phone simulator SMS"
    );
    let failure = match answer {
        Ok((StatusCode::OK, _)) => None,
        Ok((status, body)) => Some((status.as_u16(), body.trim().chars().take(200).collect())),
        Err(e) => {
            tracing::error!(error = %e, "console: phone simulator could not reach the webhook");
            return Err(ServiceError::Busy("webhook"));
        }
    };
    keep(
        sim,
        Step {
            at: console.app.clock.now(),
            what: "sms".into(),
            sent: Some(text.to_owned()),
            screen: None,
            page: 0,
            failure,
            events,
        },
    );
    sim.typed.clear();
    Ok(Outcome::Quiet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_screen_with_a_next_page_ends_with_99() {
        assert!(has_more("Лоиҳаҳо\n1 Пул\n0 Бозгашт\n99 Боз"));
        assert!(!has_more("Хашар\n1 Ваъда\n2 Ҳисоб"));
        assert!(!has_more("Ваъда 990 TJS?\n1 Ҳа"));
        assert_eq!(page_of(&["1".into(), "99".into(), "99".into()]), 3);
        assert_eq!(page_of(&["1".into()]), 1);
    }

    #[test]
    fn keys_add_to_the_line_and_del_takes_one_off() {
        let mut sim = Sim::default();
        press(&mut sim, "50", "0", Tab::Ussd);
        assert_eq!(sim.typed, "500");
        press(&mut sim, "500", "del", Tab::Ussd);
        assert_eq!(sim.typed, "50");
        // anything but a key changes nothing
        press(&mut sim, "50", "a", Tab::Ussd);
        assert_eq!(sim.typed, "50");
        press(&mut sim, &"1".repeat(MAX_REPLY), "1", Tab::Ussd);
        assert_eq!(sim.typed.len(), MAX_REPLY);
    }

    #[test]
    fn form_keys_are_32_lowercase_hex_digits() {
        let k = form_key();
        assert!(well_formed(&k), "{k}");
        assert_ne!(k, form_key());
        assert!(!well_formed("x"));
        assert!(!well_formed(&"A".repeat(32)));
    }
}
