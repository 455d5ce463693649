//! The Money page (`/console/money`, §3 of the console design; issue 10, page 3): find a
//! pledge by its 7-digit code, see its card and history with its project's matched total,
//! record a receipt (in full or in part), cancel it, and record a partner's matching
//! disbursement for its project.
//!
//! Every change goes through a server-rendered confirm page that says exactly what will
//! happen (a GET: nothing changes), whose one POST button carries a one-time form key, and
//! calls the same `service::money` function as the admin API with the signed-in person's
//! [`Actor`](crate::service::Actor): scope, audit log, money rules, the household's SMS
//! receipt and "a double submit records once" are the service's. A POST answers 303 with a
//! one-time [`flash`](super::flash) message; a refusal goes back to the form with what was
//! typed, the reason beside the field and in the summary on top (text keys, never the
//! database's words).
//!
//! Only admins and coordinators handle money: for counsellors and programme officers every
//! route here is 404, as is a pledge or project outside a coordinator's communities. A code
//! that does not exist and one in another community get the same words.
//!
//! Routes:
//! - `GET  /console/money[?q=]`: the one search box (a pledge code, a whole phone number, a
//!   household's name or number, read by `service::money::read_search`): a code shows the
//!   pledge, the rest the households found with their pledges (`?code=` is still read);
//!   with `HX-Request` (htmx's find) only the result fragment (askama block `result`);
//! - `GET  /console/money/pledges/{id}`: the pledge's card, history and forms;
//! - `GET  /console/money/pledges/{id}/receipt` → confirm; `POST` records;
//! - `GET  /console/money/pledges/{id}/cancel` → confirm; `POST` cancels;
//! - `GET  /console/money/projects/{id}`: the project's ledger, disbursements and receipts
//!   without a pledge;
//! - `GET  /console/money/projects/{id}/disburse` → confirm; `POST` records;
//! - `GET  /console/money/projects/{id}/receipt` → confirm; `POST` records money received
//!   without a pledge (from a household, named by one of its numbers, or from no one);
//! - `GET  /console/money/receipts/{id}/reverse` → confirm with the reason; `POST` reverses
//!   (admins only, as the service says; 404 for others);
//! - `GET  /console/money/disbursements/{id}/reverse` → likewise for a disbursement.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::flash::FlashView;
use super::pages::form_key;
use super::{
    auth::Staff,
    flash::{self, Flash},
    i18n::{key, Tr},
    pages::staff_language as language,
    pages::{Answers, Layout},
    timing, Console,
};
use crate::{
    domain::{money::parse_amount, Language, Phone},
    service::{
        self,
        money::{
            self as money_service, HouseholdPledges, MoneyFound, MoneySearch, NewDisbursement,
            PledgeReceipt, PledgeView, ProjectReceipt,
        },
        Once, ServiceError,
    },
    store::{
        money::{Disbursement, Receipt, ReceiptMethod},
        pledges::PledgeStatus,
        HouseholdId, PledgeId, ProjectId,
    },
};

/// The page's place in the navigation.
const PATH: &str = "/console/money";
/// Longest amount, date, code or method the forms accept (characters).
const MAX_SHORT: usize = 40;
/// Largest amount a form accepts (the service's bound is below 10¹²).
const MAX_AMOUNT: i64 = 999_999_999_999;

/// Every text key the service's refusals may carry: named here so that the completeness
/// check makes sure each is in every language.
pub const SERVICE_KEYS: &[&str] = &[
    key("money.pledge_cancelled"),
    key("money.more_than_outstanding"),
    key("money.cancel_received"),
    key("money.beyond_match_due"),
    key("money.already_reversed"),
    key("money.reverse_reversal"),
    key("money.reversal_leaves_match_due"),
    key("money.currency"),
    key("money.pledge_project"),
    key("money.rule"),
    key("money.date_out_of_range"),
    key("money.amount_invalid"),
    key("money.method_invalid"),
    key("money.receipt_no_taken"),
    key("money.already_cancelled"),
    key("money.no_project"),
    key("money.household_elsewhere"),
    key("money.code_invalid"),
    key("money.search_invalid"),
    key("money.search_partial"),
    key("form.text_length"),
    key("form.key_invalid"),
    key("form.key_reused"),
    key("form.in_progress"),
];

/// A refusal shown beside a field (`field` is the input's id) and in the summary.
#[derive(Debug, Clone)]
pub struct FieldError {
    pub field: &'static str,
    pub text: String,
}

/// A row of a pledge's receipts.
#[derive(Debug, Clone)]
pub struct ReceiptRow {
    pub id: i64,
    /// An admin may reverse it (not a reversal, not reversed yet).
    pub reversible: bool,
    pub day: String,
    pub amount: String,
    pub method: String,
    pub who: String,
    /// A reversal's reason.
    pub note: Option<String>,
}

/// A row of the audit log.
#[derive(Debug, Clone)]
pub struct AuditLine {
    pub at: String,
    pub what: String,
    pub who: String,
}

/// A pledge as the card shows it, every figure already worded.
#[derive(Debug, Clone)]
pub struct PledgeCard {
    pub id: i64,
    pub code: String,
    pub household: String,
    pub phone: String,
    pub project_id: i64,
    pub project: String,
    pub amount: String,
    pub received: String,
    pub outstanding: String,
    pub status: String,
    /// `pledged`, `received` or `cancelled` (a CSS class).
    pub status_class: &'static str,
    pub pledged_on: String,
    pub cancellation: Option<String>,
    pub open: bool,
    pub receipts: Vec<ReceiptRow>,
    pub audit: Vec<AuditLine>,
    pub project_received: String,
    pub matched: String,
    pub matched_total: String,
    pub match_due: String,
}

/// What the receipt form shows: what was typed, or the defaults.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ReceiptInput {
    #[serde(default)]
    pub amount: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub method: String,
}

/// A receipt recorded today, as the find page lists it.
#[derive(Debug, Clone)]
pub struct TodayRow {
    pub time: String,
    pub amount: String,
    pub project: String,
    /// The pledge's page and code, for a receipt for a pledge.
    pub pledge: Option<(i64, String)>,
    pub who: String,
}

/// A pledge of a household found by phone, number or name.
#[derive(Debug, Clone)]
pub struct FoundPledge {
    pub id: i64,
    pub code: String,
    pub project: String,
    pub amount: String,
    pub received: String,
    pub status: String,
    pub status_class: &'static str,
    pub at: String,
}

/// A household found by phone, number or name, with its pledges.
#[derive(Debug, Clone)]
pub struct FoundHousehold {
    pub id: i64,
    pub title: String,
    /// Its numbers, masked.
    pub phones: String,
    pub pledges: Vec<FoundPledge>,
}

/// A method of the receipt form's list.
#[derive(Debug, Clone)]
pub struct MethodOption {
    pub value: &'static str,
    pub label: String,
    pub selected: bool,
}

/// What the find page and the pledge page show (the fragment htmx swaps in is its
/// `result` block).
#[derive(Debug, Clone, Default)]
pub struct MoneyView {
    /// What the search box holds.
    pub code: String,
    /// Households found by phone, number or name.
    pub households: Vec<FoundHousehold>,
    /// More households match the name than are listed.
    pub more_households: bool,
    /// Reversal links are shown (admins).
    pub admin: bool,
    pub flash: Option<FlashView>,
    pub errors: Vec<FieldError>,
    /// "No pledge 4821735 in your communities".
    pub not_found: Option<String>,
    pub pledge: Option<PledgeCard>,
    pub receipt: ReceiptInput,
    pub methods: Vec<MethodOption>,
    pub reason: String,
    /// Today in `HASHAR_TIMEZONE` (the date field's highest value).
    pub today: String,
    /// The find page without a code lists the receipts recorded today.
    pub show_today: bool,
    pub today_receipts: Vec<TodayRow>,
}

impl MoneyView {
    /// The error beside `field`, if any.
    pub fn error_of(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.text.as_str())
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/money.html")]
pub struct MoneyPage {
    pub t: Tr,
    pub l: Layout,
    pub v: MoneyView,
}

/// The find's result alone, for htmx.
#[derive(Template, WebTemplate)]
#[template(path = "console/money.html", block = "result")]
pub struct MoneyResult {
    pub t: Tr,
    pub v: MoneyView,
}

/// A project's ledger as the project page shows it.
#[derive(Debug, Clone)]
pub struct ProjectCard {
    pub id: i64,
    pub name: String,
    pub target: String,
    pub pledged: String,
    pub received: String,
    pub matched: String,
    pub matched_total: String,
    pub disbursed: String,
    pub match_due: String,
    pub disbursements: Vec<DisbursementRow>,
    /// Money received for the project without a pledge (and reversals), newest first.
    pub unpledged: Vec<UnpledgedRow>,
}

/// A receipt without a pledge, as the project page lists it.
#[derive(Debug, Clone)]
pub struct UnpledgedRow {
    pub id: i64,
    pub reversible: bool,
    pub day: String,
    pub amount: String,
    pub method: String,
    /// The household's page and number, if it came from one.
    pub household: Option<i64>,
    pub who: String,
    pub note: Option<String>,
}

/// What the form for money without a pledge shows.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct UnpledgedInput {
    #[serde(default)]
    pub amount: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub method: String,
    /// One of the household's numbers (empty: from no one in particular).
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub receipt_no: String,
}

#[derive(Debug, Clone)]
pub struct DisbursementRow {
    pub id: i64,
    /// An admin may reverse it (not a reversal, not reversed yet).
    pub reversible: bool,
    pub day: String,
    pub amount: String,
    pub partner: String,
    pub reference: String,
    pub who: String,
}

/// What the disbursement form shows.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct DisbursementInput {
    #[serde(default)]
    pub amount: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub partner: String,
    #[serde(default)]
    pub reference: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/money_project.html")]
pub struct ProjectPage {
    pub t: Tr,
    pub l: Layout,
    pub p: ProjectCard,
    pub flash: Option<FlashView>,
    pub errors: Vec<FieldError>,
    pub form: DisbursementInput,
    pub receipt: UnpledgedInput,
    pub methods: Vec<MethodOption>,
    pub admin: bool,
    pub today: String,
}

impl ProjectPage {
    pub fn error_of(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.text.as_str())
    }
}

/// The confirm page of a change: what will happen, and one POST button.
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

/// The confirm page of a reversal: what will be reversed, the reason to type and one POST
/// button (none when it cannot be reversed).
#[derive(Template, WebTemplate)]
#[template(path = "console/money_reverse.html")]
pub struct ReversePage {
    pub t: Tr,
    pub l: Layout,
    pub title: String,
    pub what: String,
    pub details: Vec<String>,
    /// Empty: no button.
    pub action: String,
    pub key: String,
    pub fields: Vec<(&'static str, String)>,
    pub reason: Option<ReasonField>,
    pub button: String,
    pub back: String,
}

/// The reason field of a confirm page, with what was typed and its error.
#[derive(Debug, Clone)]
pub struct ReasonField {
    pub label: String,
    pub value: String,
    pub error: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct FindQuery {
    /// The search box.
    q: Option<String>,
    /// A pledge code (the search box's old name, in bookmarks).
    #[serde(default)]
    code: String,
    lang: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    partner: Option<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    r_amount: Option<String>,
    #[serde(default)]
    r_date: Option<String>,
    #[serde(default)]
    r_method: Option<String>,
    #[serde(default)]
    r_phone: Option<String>,
    #[serde(default)]
    r_receipt_no: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ReceiptPost {
    #[serde(default)]
    key: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    method: String,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct CancelInput {
    #[serde(default)]
    reason: String,
    lang: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct CancelPost {
    #[serde(default)]
    key: String,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct DisbursementPost {
    #[serde(default)]
    key: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    partner: String,
    #[serde(default)]
    reference: String,
}

/// The layout of a money page at `url` (the language links keep the page).
fn layout(console: &Console, t: &Tr, staff: &Staff, url: &str) -> Layout {
    Layout::signed_in_at(console, t, PATH, staff, url)
}

/// The 404 page for a person who does not handle money (only admins and coordinators do).
fn money_staff(console: &Console, staff: &Staff) -> Option<Response> {
    (!staff.actor.handles_money()).then(|| not_found(console, staff))
}

const ANSWERS: Answers = Answers {
    path: PATH,
    back: PATH,
    back_key: key("money.back_to_find"),
    not_found: (key("money.not_found.title"), key("money.not_found.text")),
    failed: (key("money.failed.title"), key("money.failed.text")),
    what: "money",
};

fn not_found(console: &Console, staff: &Staff) -> Response {
    ANSWERS.not_found(console, staff)
}

fn failed(console: &Console, staff: &Staff, e: ServiceError) -> Response {
    ANSWERS.failed(console, staff, e)
}

/// A refusal of the service as a field error: the field it is about (as the forms name
/// their inputs) and its text.
fn refusal(t: &Tr, e: &ServiceError) -> Option<FieldError> {
    let field = match e {
        ServiceError::Invalid { field, .. } => match *field {
            "received_on" | "disbursed_on" => "date",
            other => other,
        },
        ServiceError::Conflict { rule, .. } => match *rule {
            "money.more_than_outstanding" | "money.beyond_match_due" => "amount",
            "money.cancel_received" | "money.already_cancelled" => "reason",
            _ => "summary",
        },
        _ => return None,
    };
    Some(FieldError {
        field: static_field(field),
        text: t.t(refusal_key(e)?),
    })
}

/// The form fields a refusal may name.
fn static_field(field: &str) -> &'static str {
    match field {
        "amount" => "amount",
        "date" => "date",
        "method" => "method",
        "reason" => "reason",
        "partner" => "partner",
        "reference" => "reference",
        "code" => "code",
        "r_amount" => "r_amount",
        "r_date" => "r_date",
        "r_method" => "r_method",
        "r_phone" => "r_phone",
        "r_receipt_no" => "r_receipt_no",
        _ => "summary",
    }
}

/// Today in `HASHAR_TIMEZONE`.
fn today(console: &Console) -> NaiveDate {
    console
        .app
        .clock
        .now()
        .with_timezone(&console.app.config.timezone)
        .date_naive()
}

fn local(console: &Console, t: &Tr, at: DateTime<Utc>) -> String {
    let at = at.with_timezone(&console.app.config.timezone);
    format!("{} {}", t.date(at.date_naive()), t.time(at.time()))
}

fn methods(t: &Tr, chosen: &str) -> Vec<MethodOption> {
    ReceiptMethod::ALL
        .into_iter()
        .map(|m| MethodOption {
            value: m.as_str(),
            label: t.t(method_key(m)),
            selected: m.as_str() == chosen,
        })
        .collect()
}

fn method_key(m: ReceiptMethod) -> &'static str {
    match m {
        ReceiptMethod::Cash => key("money.method.cash"),
        ReceiptMethod::Bank => key("money.method.bank"),
        ReceiptMethod::MobileMoney => key("money.method.mobile_money"),
        ReceiptMethod::Remittance => key("money.method.remittance"),
        ReceiptMethod::Other => key("money.method.other"),
    }
}

fn status_key(s: PledgeStatus) -> (&'static str, &'static str) {
    match s {
        PledgeStatus::Pledged => (key("money.status.pledged"), "pledged"),
        PledgeStatus::Received => (key("money.status.received"), "received"),
        PledgeStatus::Cancelled => (key("money.status.cancelled"), "cancelled"),
    }
}

fn action_key(action: &str) -> &'static str {
    match action {
        "receipt.record" => key("money.action.receipt_record"),
        "pledge.cancel" => key("money.action.pledge_cancel"),
        "receipt.reverse" => key("money.action.receipt_reverse"),
        _ => key("money.action.other"),
    }
}

fn masked(phone: &str) -> String {
    Phone::parse(phone)
        .map(|p| p.masked())
        .unwrap_or_else(|_| crate::domain::phone::mask(phone))
}

/// The household as a sentence names it: its name, else "household 12".
fn household_label(t: &Tr, name: Option<&str>, id: i64) -> String {
    match name {
        Some(n) => n.to_owned(),
        None => t.t_with(key("money.household_no"), &[("id", &id.to_string())]),
    }
}

/// Who did something, by name when it is a member of staff.
fn who(t: &Tr, names: &HashMap<String, String>, recorded_by: &str) -> String {
    names
        .get(recorded_by)
        .cloned()
        .unwrap_or_else(|| match recorded_by {
            "system" => t.t("money.who_system"),
            other => other.to_owned(),
        })
}

async fn pledge_card(
    console: &Console,
    t: &Tr,
    view: &PledgeView,
    admin: bool,
) -> Result<PledgeCard, ServiceError> {
    let h = &view.history;
    let reversed: Vec<i64> = h.receipts.iter().filter_map(|r| r.reverses).collect();
    let c = &view.card;
    let cur = &h.pledge.currency;
    let mut whos: Vec<&str> = h.receipts.iter().map(|r| r.recorded_by.as_str()).collect();
    whos.extend(h.audit.iter().map(|a| a.actor.as_str()));
    if let Some(cancel) = &h.cancellation {
        whos.push(cancel.cancelled_by.as_str());
    }
    let names = timing::db(money_service::names(&console.app, &whos)).await?;
    let received: Decimal = h.receipts.iter().map(|r| r.amount).sum();
    let (status_key, status_class) = status_key(h.pledge.status);
    let l = &view.ledger;
    Ok(PledgeCard {
        id: h.pledge.id.0,
        code: c.code.clone(),
        household: match c.household_name.as_deref() {
            Some(name) => name.to_owned(),
            None => t.t_with(
                key("money.household_card"),
                &[("id", &c.household.0.to_string())],
            ),
        },
        phone: masked(&c.phone),
        project_id: c.project.0,
        project: c.project_name.get(t.language).to_owned(),
        amount: t.money(h.pledge.amount, cur),
        received: t.money(received, cur),
        outstanding: t.money(h.outstanding, cur),
        status: t.t(status_key),
        status_class,
        pledged_on: t.date(
            h.pledge
                .created_at
                .with_timezone(&console.app.config.timezone)
                .date_naive(),
        ),
        cancellation: h.cancellation.as_ref().map(|x| {
            t.t_with(
                key("money.cancelled_by"),
                &[
                    ("at", &local(console, t, x.cancelled_at)),
                    ("who", &who(t, &names, &x.cancelled_by)),
                    ("reason", &x.reason),
                ],
            )
        }),
        open: h.pledge.status == PledgeStatus::Pledged,
        receipts: h
            .receipts
            .iter()
            .rev()
            .map(|r| ReceiptRow {
                id: r.id,
                reversible: admin && r.reverses.is_none() && !reversed.contains(&r.id),
                day: t.date(r.received_on),
                amount: t.money(r.amount, &r.currency),
                method: t.t(method_key(r.method)),
                who: who(t, &names, &r.recorded_by),
                note: r.reason.as_ref().map(|reason| {
                    t.t_with(key("money.reversal_note"), &[("reason", reason.as_str())])
                }),
            })
            .collect(),
        audit: h
            .audit
            .iter()
            .map(|a| AuditLine {
                at: local(console, t, a.at),
                what: t.t(action_key(&a.action)),
                who: who(t, &names, &a.actor),
            })
            .collect(),
        project_received: t.money(l.received, &l.currency),
        matched: t.money(l.matched, &l.currency),
        matched_total: t.money(l.matched_total, &l.currency),
        match_due: t.money(l.match_due, &l.currency),
    })
}

/// The find page or the pledge page, with `view` filled for pledge `id` (if any).
#[allow(clippy::too_many_arguments)]
async fn money_page(
    console: &Console,
    staff: &Staff,
    t: Tr,
    url: &str,
    mut v: MoneyView,
    id: Option<PledgeId>,
    htmx: bool,
    status: StatusCode,
) -> Response {
    v.admin = staff.actor.require_admin().is_ok();
    if let Some(id) = id {
        let view =
            match timing::db(money_service::pledge_view(&console.app, &staff.actor, id)).await {
                Ok(view) => view,
                Err(e) => return failed(console, staff, e),
            };
        let card = match pledge_card(console, &t, &view, v.admin).await {
            Ok(c) => c,
            Err(e) => return failed(console, staff, e),
        };
        if v.receipt.amount.is_empty() {
            v.receipt.amount = t.number(view.history.outstanding, 2);
        }
        v.code = card.code.clone();
        v.pledge = Some(card);
    }
    let today = today(console);
    if v.receipt.date.is_empty() {
        v.receipt.date = today.to_string();
    }
    if v.receipt.method.is_empty() {
        v.receipt.method = ReceiptMethod::Cash.as_str().to_owned();
    }
    v.methods = methods(&t, &v.receipt.method);
    v.today = today.to_string();
    if v.flash.is_none() {
        if let Some(f) = flash::take(&staff.session).await {
            if let Some(field) = f.field.as_deref() {
                v.errors.push(FieldError {
                    field: static_field(field),
                    text: f.text(&t),
                });
            } else if !f.is_done() {
                v.errors.push(FieldError {
                    field: "summary",
                    text: f.text(&t),
                });
            } else {
                v.flash = Some(FlashView::of(&f, &t));
            }
        }
    }
    if htmx {
        return (status, MoneyResult { t, v }).into_response();
    }
    let page = MoneyPage {
        l: layout(console, &t, staff, url),
        t,
        v,
    };
    (status, page).into_response()
}

/// Whether this is htmx asking for a fragment (not restoring history, which wants the page).
fn htmx_fragment(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some() && headers.get("hx-history-restore-request").is_none()
}

/// "No pledge 4821735 in your communities", "No household with the number … in your
/// communities": the same words for what does not exist and what is elsewhere.
fn nothing_found(t: &Tr, what: &MoneySearch) -> String {
    match what {
        MoneySearch::Code(code) => t.t_with(key("money.no_pledge"), &[("code", code)]),
        MoneySearch::Phone(phone) => t.t_with(
            key("money.no_household_phone"),
            &[("phone", phone.as_str())],
        ),
        MoneySearch::Household(id) => {
            t.t_with(key("money.no_household_no"), &[("id", &id.to_string())])
        }
        MoneySearch::Name(name) => t.t_with(key("money.no_household_name"), &[("name", name)]),
    }
}

fn found_household(console: &Console, t: &Tr, h: &HouseholdPledges) -> FoundHousehold {
    let hh = &h.household;
    FoundHousehold {
        id: hh.id,
        title: match hh.name.as_deref() {
            Some(name) => name.to_owned(),
            None => t.t_with(key("money.household_card"), &[("id", &hh.id.to_string())]),
        },
        phones: hh
            .phones
            .iter()
            .map(|p| masked(&p.phone))
            .collect::<Vec<_>>()
            .join(", "),
        pledges: h
            .pledges
            .iter()
            .map(|p| {
                let status = p.status.parse().unwrap_or(PledgeStatus::Pledged);
                let (status_key, status_class) = status_key(status);
                FoundPledge {
                    id: p.id.0,
                    code: p.code.clone(),
                    project: match t.language {
                        Language::Tg => p.project_tg.clone(),
                        Language::Ru => p.project_ru.clone(),
                        Language::En => p.project_en.clone(),
                    },
                    amount: t.money(p.amount, &p.currency),
                    received: t.money(p.received, &p.currency),
                    status: t.t(status_key),
                    status_class,
                    at: t.date(
                        p.created_at
                            .with_timezone(&console.app.config.timezone)
                            .date_naive(),
                    ),
                }
            })
            .collect(),
    }
}

/// `GET /console/money[?q=]`: the find form; with a code, the pledge or "No pledge …
/// in your communities" (the same words for one that does not exist and one elsewhere).
pub async fn find(
    State(console): State<Console>,
    Query(q): Query<FindQuery>,
    headers: HeaderMap,
    staff: Staff,
) -> Response {
    if let Some(r) = money_staff(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let raw = q.q.unwrap_or(q.code);
    let text: String = raw
        .trim()
        .chars()
        .take(money_service::MAX_SEARCH + 1)
        .collect();
    let url = if text.is_empty() {
        PATH.to_owned()
    } else {
        format!("{PATH}?q={}", urlencoding(&text))
    };
    let mut v = MoneyView {
        code: text.clone(),
        ..MoneyView::default()
    };
    let mut id = None;
    if text.is_empty() {
        match today_receipts(&console, &staff, &t).await {
            Ok(rows) => v.today_receipts = rows,
            Err(e) => return failed(&console, &staff, e),
        }
        v.show_today = true;
    } else {
        match money_service::read_search(&text) {
            Err(e) => v.errors.push(FieldError {
                field: "code",
                text: t.t(refusal_key(&e).unwrap_or(key("money.search_invalid"))),
            }),
            Ok(what) => {
                match timing::db(money_service::search(&console.app, &staff.actor, &what)).await {
                    Ok(MoneyFound::Pledge(found)) => id = Some(found),
                    Ok(MoneyFound::Households { households, more }) => {
                        if households.is_empty() {
                            v.not_found = Some(nothing_found(&t, &what));
                        }
                        v.households = households
                            .iter()
                            .map(|h| found_household(&console, &t, h))
                            .collect();
                        v.more_households = more;
                    }
                    Err(ServiceError::NotFound(_)) => {
                        v.not_found = Some(nothing_found(&t, &what));
                    }
                    Err(e) => return failed(&console, &staff, e),
                }
            }
        }
    }
    money_page(
        &console,
        &staff,
        t,
        &url,
        v,
        id,
        htmx_fragment(&headers),
        StatusCode::OK,
    )
    .await
}

/// The receipts recorded since the start of today in `HASHAR_TIMEZONE`, in the person's
/// communities.
async fn today_receipts(
    console: &Console,
    staff: &Staff,
    t: &Tr,
) -> Result<Vec<TodayRow>, ServiceError> {
    let tz = console.app.config.timezone;
    let midnight = today(console).and_time(chrono::NaiveTime::MIN);
    let since = midnight
        .and_local_timezone(tz)
        .earliest()
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or_else(|| console.app.clock.now() - chrono::Duration::hours(24));
    let rows = timing::db(money_service::receipts_since(
        &console.app,
        &staff.actor,
        since,
    ))
    .await?;
    let whos: Vec<&str> = rows.iter().map(|r| r.recorded_by.as_str()).collect();
    let names = timing::db(money_service::names(&console.app, &whos)).await?;
    Ok(rows
        .iter()
        .map(|r| TodayRow {
            time: t.time(r.recorded_at.with_timezone(&tz).time()),
            amount: t.money(r.amount, &r.currency),
            project: r.project_name.get(t.language).to_owned(),
            pledge: r.pledge.zip(r.code.clone()).map(|(p, c)| (p.0, c)),
            who: who(t, &names, &r.recorded_by),
        })
        .collect())
}

/// `GET /console/money/pledges/{id}`: the pledge's card, history and forms (what was typed
/// before a refusal comes back in the query).
pub async fn pledge(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = money_staff(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let v = MoneyView {
        receipt: ReceiptInput {
            amount: short(q.amount.as_deref()),
            date: short(q.date.as_deref()),
            method: short(q.method.as_deref()),
        },
        reason: bounded(q.reason.as_deref(), money_service::MAX_REASON),
        ..MoneyView::default()
    };
    money_page(
        &console,
        &staff,
        t,
        &format!("{PATH}/pledges/{id}"),
        v,
        Some(PledgeId(id)),
        false,
        StatusCode::OK,
    )
    .await
}

fn short(v: Option<&str>) -> String {
    v.unwrap_or_default().chars().take(MAX_SHORT).collect()
}

fn bounded(v: Option<&str>, max: usize) -> String {
    v.unwrap_or_default().chars().take(max).collect()
}

fn urlencoding(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// A receipt as typed, checked: amount, day and method; or the errors beside the fields.
fn check_receipt(
    console: &Console,
    t: &Tr,
    input: &ReceiptInput,
    outstanding: Decimal,
) -> Result<(Decimal, NaiveDate, ReceiptMethod), Vec<FieldError>> {
    let mut errors = Vec::new();
    let amount = check_amount(t, &input.amount, &mut errors);
    if let Some(a) = amount {
        if a > outstanding {
            errors.push(FieldError {
                field: "amount",
                text: t.t("money.more_than_outstanding"),
            });
        }
    }
    let day = check_date(console, t, &input.date, &mut errors);
    let method = input.method.parse::<ReceiptMethod>().ok();
    if method.is_none() {
        errors.push(FieldError {
            field: "method",
            text: t.t("money.method_invalid"),
        });
    }
    match (amount, day, method) {
        (Some(a), Some(d), Some(m)) if errors.is_empty() => Ok((a, d, m)),
        _ => Err(errors),
    }
}

fn check_amount(t: &Tr, input: &str, errors: &mut Vec<FieldError>) -> Option<Decimal> {
    if input.chars().count() > MAX_SHORT {
        errors.push(FieldError {
            field: "amount",
            text: t.t("money.amount_invalid"),
        });
        return None;
    }
    match parse_amount(input, Decimal::from(MAX_AMOUNT))
        .map_err(|_| ())
        .and_then(|a| service::amount("amount", a).map_err(|_| ()))
    {
        Ok(a) => Some(a),
        Err(()) => {
            errors.push(FieldError {
                field: "amount",
                text: t.t("money.amount_invalid"),
            });
            None
        }
    }
}

fn check_date(
    console: &Console,
    t: &Tr,
    input: &str,
    errors: &mut Vec<FieldError>,
) -> Option<NaiveDate> {
    let day = NaiveDate::parse_from_str(input.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| service::money_date("date", d, console.app.clock.now()).ok());
    if day.is_none() {
        errors.push(FieldError {
            field: "date",
            text: t.t("money.date_out_of_range"),
        });
    }
    day
}

/// `GET /console/money/pledges/{id}/receipt`: the receipt as typed, checked, then the
/// confirm page ("Record 500,00 TJS for pledge 4821735, Bridge, household …?"); refused,
/// the pledge page with the reasons beside the fields (422).
pub async fn receipt_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(input): Query<ReceiptInput>,
    Query(q): Query<PageQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = money_staff(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let id = PledgeId(id);
    let view = match timing::db(money_service::pledge_view(&console.app, &staff.actor, id)).await {
        Ok(v) => v,
        Err(e) => return failed(&console, &staff, e),
    };
    let input = ReceiptInput {
        amount: short(Some(input.amount.as_str())),
        date: short(Some(input.date.as_str())),
        method: short(Some(input.method.as_str())),
    };
    let checked = if view.history.pledge.status == PledgeStatus::Pledged {
        check_receipt(&console, &t, &input, view.history.outstanding)
    } else {
        Err(vec![FieldError {
            field: "summary",
            text: t.t(match view.history.pledge.status {
                PledgeStatus::Cancelled => key("money.pledge_cancelled"),
                _ => key("money.fully_received"),
            }),
        }])
    };
    let url = format!("{PATH}/pledges/{}/receipt", id.0);
    let (amount, day, method) = match checked {
        Ok(c) => c,
        Err(errors) => {
            let v = MoneyView {
                errors,
                receipt: input,
                ..MoneyView::default()
            };
            return money_page(
                &console,
                &staff,
                t,
                &url,
                v,
                Some(id),
                false,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let c = &view.card;
    let cur = &view.history.pledge.currency;
    let household = household_label(&t, c.household_name.as_deref(), c.household.0);
    let project = c.project_name.get(t.language);
    let what = t.t_with(
        key("money.confirm.receipt_what"),
        &[
            ("amount", &t.money(amount, cur)),
            ("code", &c.code),
            ("project", project),
            ("household", &household),
        ],
    );
    let left = view.history.outstanding - amount;
    let details = vec![
        t.t_with(
            key("money.confirm.receipt_day"),
            &[("date", &t.date(day)), ("method", &t.t(method_key(method)))],
        ),
        t.t_with(
            key("money.confirm.receipt_left"),
            &[("outstanding", &t.money(left, cur))],
        ),
        t.t("money.confirm.receipt_sms"),
    ];
    let page = ConfirmPage {
        l: layout(&console, &t, &staff, &url),
        title: t.t("money.confirm.receipt_title"),
        what,
        details,
        action: format!("{PATH}/pledges/{}/receipt", id.0),
        key: form_key(),
        fields: vec![
            ("amount", amount.to_string()),
            ("date", day.to_string()),
            ("method", method.as_str().to_owned()),
        ],
        button: t.t("money.confirm.receipt_button"),
        back: format!("{PATH}/pledges/{}", id.0),
        t,
    };
    page.into_response()
}

/// Where a refused form goes back to: the page at `path` with what was typed.
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

/// Puts a refusal in the flash (`None`), or answers 404/500 for what is not one.
async fn refused(console: &Console, staff: &Staff, e: ServiceError) -> Option<Response> {
    let t = Tr::new(staff.signed.language);
    let Some(err) = refusal(&t, &e) else {
        return Some(failed(console, staff, e));
    };
    let text_key = refusal_key(&e).unwrap_or(key("money.rule"));
    let field = (err.field != "summary").then_some(err.field);
    flash::set(&staff.session, Flash::refused(text_key, field)).await;
    None
}

/// The text key [`refusal`] words `e` with.
fn refusal_key(e: &ServiceError) -> Option<&'static str> {
    match e {
        ServiceError::Invalid { field, key: k, .. } => Some(match (*field, *k) {
            ("reason", "form.text_length") => key("money.reason_invalid"),
            ("partner", "form.text_length") => key("money.partner_invalid"),
            ("reference", "form.text_length") => key("money.reference_invalid"),
            (_, k) => k,
        }),
        ServiceError::Conflict { rule, .. } => Some(rule),
        _ => None,
    }
}

/// `POST /console/money/pledges/{id}/receipt`: records the receipt (once per form key),
/// queues the household's SMS receipt, 303 back to the pledge with "Recorded · SMS receipt
/// queued"; refused, 303 back to the form with what was typed and why.
pub async fn receipt_record(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<ReceiptPost>,
) -> Response {
    if let Some(r) = money_staff(&console, &staff) {
        return r;
    }
    let t = Tr::new(staff.signed.language);
    let page = format!("{PATH}/pledges/{id}");
    let mut errors = Vec::new();
    let amount = check_amount(&t, &form.amount, &mut errors);
    let day = check_date(&console, &t, &form.date, &mut errors);
    let back = back_with(
        &page,
        &[
            ("amount", &form.amount),
            ("date", &form.date),
            ("method", &form.method),
        ],
    );
    let (Some(amount), Some(day)) = (amount, day) else {
        let field = errors.first().map(|e| e.field);
        let text_key = match field {
            Some("date") => key("money.date_out_of_range"),
            _ => key("money.amount_invalid"),
        };
        flash::set(&staff.session, Flash::refused(text_key, field)).await;
        return Redirect::to(&back).into_response();
    };
    let r = PledgeReceipt {
        amount: Some(amount),
        received_on: day,
        method: form.method.trim(),
        receipt_no: None,
    };
    match timing::db(money_service::receive_for_pledge(
        &console.app,
        &staff.actor,
        PledgeId(id),
        r,
        Once::Form(&form.key),
    ))
    .await
    {
        Ok(receipt) => {
            flash::set(
                &staff.session,
                Flash::done(key("money.flash.recorded"))
                    .with("amount", t.money(receipt.amount, &receipt.currency)),
            )
            .await;
            Redirect::to(&page).into_response()
        }
        Err(e) => match refused(&console, &staff, e).await {
            None => Redirect::to(&back).into_response(),
            Some(r) => r,
        },
    }
}

/// `GET /console/money/pledges/{id}/cancel`: the reason checked, then the confirm page.
pub async fn cancel_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<CancelInput>,
    staff: Staff,
) -> Response {
    if let Some(r) = money_staff(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let id = PledgeId(id);
    let view = match timing::db(money_service::pledge_view(&console.app, &staff.actor, id)).await {
        Ok(v) => v,
        Err(e) => return failed(&console, &staff, e),
    };
    let reason: String = q
        .reason
        .chars()
        .take(money_service::MAX_REASON + 1)
        .collect();
    let url = format!("{PATH}/pledges/{}/cancel", id.0);
    let received: Decimal = view.history.receipts.iter().map(|r| r.amount).sum();
    let mut errors = Vec::new();
    if view.history.pledge.status == PledgeStatus::Cancelled {
        errors.push(FieldError {
            field: "reason",
            text: t.t("money.already_cancelled"),
        });
    } else if received > Decimal::ZERO {
        errors.push(FieldError {
            field: "reason",
            text: t.t("money.cancel_received"),
        });
    } else if let Err(e) = service::text("reason", &reason, money_service::MAX_REASON) {
        errors.extend(refusal(&t, &e));
    }
    if !errors.is_empty() {
        let v = MoneyView {
            errors,
            reason,
            ..MoneyView::default()
        };
        return money_page(
            &console,
            &staff,
            t,
            &url,
            v,
            Some(id),
            false,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let c = &view.card;
    let household = household_label(&t, c.household_name.as_deref(), c.household.0);
    let what = t.t_with(
        key("money.confirm.cancel_what"),
        &[
            ("code", &c.code),
            (
                "amount",
                &t.money(view.history.pledge.amount, &view.history.pledge.currency),
            ),
            ("project", c.project_name.get(t.language)),
            ("household", &household),
        ],
    );
    let details = vec![
        t.t_with(
            key("money.confirm.cancel_reason"),
            &[("reason", reason.trim())],
        ),
        t.t("money.confirm.cancel_final"),
    ];
    let page = ConfirmPage {
        l: layout(&console, &t, &staff, &url),
        title: t.t("money.confirm.cancel_title"),
        what,
        details,
        action: url.clone(),
        key: form_key(),
        fields: vec![("reason", reason.trim().to_owned())],
        button: t.t("money.confirm.cancel_button"),
        back: format!("{PATH}/pledges/{}", id.0),
        t,
    };
    page.into_response()
}

/// `POST /console/money/pledges/{id}/cancel`: cancels (once per form key), 303 back.
pub async fn cancel_record(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<CancelPost>,
) -> Response {
    if let Some(r) = money_staff(&console, &staff) {
        return r;
    }
    let page = format!("{PATH}/pledges/{id}");
    let reason: String = form
        .reason
        .chars()
        .take(money_service::MAX_REASON + 1)
        .collect();
    match timing::db(money_service::cancel(
        &console.app,
        &staff.actor,
        PledgeId(id),
        &reason,
        Once::Form(&form.key),
    ))
    .await
    {
        Ok(_) => {
            flash::set(&staff.session, Flash::done(key("money.flash.cancelled"))).await;
            Redirect::to(&page).into_response()
        }
        Err(e) => match refused(&console, &staff, e).await {
            None => Redirect::to(&back_with(&page, &[("reason", &reason)])).into_response(),
            Some(r) => r,
        },
    }
}

async fn project_card(
    console: &Console,
    t: &Tr,
    ledger: &money_service::ProjectLedger,
    disbursements: &[Disbursement],
    unpledged: &[Receipt],
    admin: bool,
) -> Result<ProjectCard, ServiceError> {
    let mut whos: Vec<&str> = disbursements
        .iter()
        .map(|d| d.recorded_by.as_str())
        .collect();
    whos.extend(unpledged.iter().map(|r| r.recorded_by.as_str()));
    let reversed_d: Vec<i64> = disbursements.iter().filter_map(|d| d.reverses).collect();
    let reversed_r: Vec<i64> = unpledged.iter().filter_map(|r| r.reverses).collect();
    let names = timing::db(money_service::names(&console.app, &whos)).await?;
    let cur = &ledger.currency;
    Ok(ProjectCard {
        id: ledger.project.0,
        name: ledger.name.get(t.language).to_owned(),
        target: t.money(ledger.target, cur),
        pledged: t.money(ledger.pledged, cur),
        received: t.money(ledger.received, cur),
        matched: t.money(ledger.matched, cur),
        matched_total: t.money(ledger.matched_total, cur),
        disbursed: t.money(ledger.disbursed, cur),
        match_due: t.money(ledger.match_due, cur),
        disbursements: disbursements
            .iter()
            .map(|d| DisbursementRow {
                id: d.id,
                reversible: admin && d.reverses.is_none() && !reversed_d.contains(&d.id),
                day: t.date(d.disbursed_on),
                amount: t.money(d.amount, &d.currency),
                partner: d.partner.clone(),
                reference: d
                    .reason
                    .as_ref()
                    .map(|r| t.t_with(key("money.reversal_note"), &[("reason", r.as_str())]))
                    .or_else(|| d.reference.clone())
                    .unwrap_or_default(),
                who: who(t, &names, &d.recorded_by),
            })
            .collect(),
        unpledged: unpledged
            .iter()
            .map(|r| UnpledgedRow {
                id: r.id,
                reversible: admin && r.reverses.is_none() && !reversed_r.contains(&r.id),
                day: t.date(r.received_on),
                amount: t.money(r.amount, &r.currency),
                method: t.t(method_key(r.method)),
                household: r.household_id,
                who: who(t, &names, &r.recorded_by),
                note: r.reason.as_ref().map(|reason| {
                    t.t_with(key("money.reversal_note"), &[("reason", reason.as_str())])
                }),
            })
            .collect(),
    })
}

/// The project page with `form` and `errors`.
#[allow(clippy::too_many_arguments)]
async fn project_page(
    console: &Console,
    staff: &Staff,
    t: Tr,
    id: ProjectId,
    url: &str,
    (mut form, mut receipt): (DisbursementInput, UnpledgedInput),
    mut errors: Vec<FieldError>,
    status: StatusCode,
) -> Response {
    let (ledger, disbursements) =
        match timing::db(money_service::project_view(&console.app, &staff.actor, id)).await {
            Ok(v) => v,
            Err(e) => return failed(console, staff, e),
        };
    let unpledged = match timing::db(money_service::receipts_without_pledge(
        &console.app,
        &staff.actor,
        id,
    ))
    .await
    {
        Ok(v) => v,
        Err(e) => return failed(console, staff, e),
    };
    let admin = staff.actor.require_admin().is_ok();
    let p = match project_card(console, &t, &ledger, &disbursements, &unpledged, admin).await {
        Ok(p) => p,
        Err(e) => return failed(console, staff, e),
    };
    let today = today(console);
    if form.amount.is_empty() && ledger.match_due > Decimal::ZERO {
        form.amount = t.number(ledger.match_due, 2);
    }
    if form.date.is_empty() {
        form.date = today.to_string();
    }
    if receipt.date.is_empty() {
        receipt.date = today.to_string();
    }
    if receipt.method.is_empty() {
        receipt.method = ReceiptMethod::Cash.as_str().to_owned();
    }
    let methods = methods(&t, &receipt.method);
    let mut shown = None;
    if let Some(f) = flash::take(&staff.session).await {
        if f.is_done() {
            shown = Some(FlashView::of(&f, &t));
        } else {
            errors.push(FieldError {
                field: static_field(f.field.as_deref().unwrap_or("summary")),
                text: f.text(&t),
            });
        }
    }
    let page = ProjectPage {
        l: layout(console, &t, staff, url),
        p,
        flash: shown,
        errors,
        form,
        receipt,
        methods,
        admin,
        today: today.to_string(),
        t,
    };
    (status, page).into_response()
}

/// `GET /console/money/projects/{id}`: the project's ledger (received, matched, matched
/// total, disbursed, match due), its disbursements and the disbursement form.
pub async fn project(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = money_staff(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let form = DisbursementInput {
        amount: short(q.amount.as_deref()),
        date: short(q.date.as_deref()),
        partner: bounded(q.partner.as_deref(), money_service::MAX_PARTNER),
        reference: bounded(q.reference.as_deref(), money_service::MAX_REFERENCE),
    };
    let receipt = UnpledgedInput {
        amount: short(q.r_amount.as_deref()),
        date: short(q.r_date.as_deref()),
        method: short(q.r_method.as_deref()),
        phone: short(q.r_phone.as_deref()),
        receipt_no: bounded(q.r_receipt_no.as_deref(), money_service::MAX_RECEIPT_NO),
    };
    project_page(
        &console,
        &staff,
        t,
        ProjectId(id),
        &format!("{PATH}/projects/{id}"),
        (form, receipt),
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

/// `GET /console/money/projects/{id}/disburse`: the disbursement checked, then the confirm
/// page.
pub async fn disburse_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(input): Query<DisbursementInput>,
    Query(q): Query<PageQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = money_staff(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let project_id = ProjectId(id);
    let (ledger, _) = match timing::db(money_service::project_view(
        &console.app,
        &staff.actor,
        project_id,
    ))
    .await
    {
        Ok(v) => v,
        Err(e) => return failed(&console, &staff, e),
    };
    let input = DisbursementInput {
        amount: short(Some(input.amount.as_str())),
        date: short(Some(input.date.as_str())),
        partner: bounded(Some(input.partner.as_str()), money_service::MAX_PARTNER + 1),
        reference: bounded(
            Some(input.reference.as_str()),
            money_service::MAX_REFERENCE + 1,
        ),
    };
    let mut errors = Vec::new();
    let amount = check_amount(&t, &input.amount, &mut errors);
    if let Some(a) = amount {
        if a > ledger.match_due {
            errors.push(FieldError {
                field: "amount",
                text: t.t("money.beyond_match_due"),
            });
        }
    }
    let day = check_date(&console, &t, &input.date, &mut errors);
    if let Err(e) = service::text("partner", &input.partner, money_service::MAX_PARTNER) {
        errors.extend(refusal(&t, &e));
    }
    if let Err(e) = service::opt_text(
        "reference",
        Some(input.reference.as_str()),
        money_service::MAX_REFERENCE,
    ) {
        errors.extend(refusal(&t, &e));
    }
    let url = format!("{PATH}/projects/{id}/disburse");
    let (Some(amount), Some(day), true) = (amount, day, errors.is_empty()) else {
        return project_page(
            &console,
            &staff,
            t,
            project_id,
            &url,
            (input, UnpledgedInput::default()),
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let cur = &ledger.currency;
    let what = t.t_with(
        key("money.confirm.disburse_what"),
        &[
            ("amount", &t.money(amount, cur)),
            ("partner", input.partner.trim()),
            ("project", ledger.name.get(t.language)),
        ],
    );
    let details = vec![
        t.t_with(key("money.confirm.disburse_day"), &[("date", &t.date(day))]),
        t.t_with(
            key("money.confirm.disburse_left"),
            &[("due", &t.money(ledger.match_due - amount, cur))],
        ),
    ];
    let page = ConfirmPage {
        l: layout(&console, &t, &staff, &url),
        title: t.t("money.confirm.disburse_title"),
        what,
        details,
        action: url.clone(),
        key: form_key(),
        fields: vec![
            ("amount", amount.to_string()),
            ("date", day.to_string()),
            ("partner", input.partner.trim().to_owned()),
            ("reference", input.reference.trim().to_owned()),
        ],
        button: t.t("money.confirm.disburse_button"),
        back: format!("{PATH}/projects/{id}"),
        t,
    };
    page.into_response()
}

/// `POST /console/money/projects/{id}/disburse`: records the disbursement (once per form
/// key), 303 back to the project.
pub async fn disburse_record(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<DisbursementPost>,
) -> Response {
    if let Some(r) = money_staff(&console, &staff) {
        return r;
    }
    let t = Tr::new(staff.signed.language);
    let page = format!("{PATH}/projects/{id}");
    let partner = bounded(Some(form.partner.as_str()), money_service::MAX_PARTNER + 1);
    let reference = bounded(
        Some(form.reference.as_str()),
        money_service::MAX_REFERENCE + 1,
    );
    let back = back_with(
        &page,
        &[
            ("amount", &form.amount),
            ("date", &form.date),
            ("partner", &partner),
            ("reference", &reference),
        ],
    );
    let mut errors = Vec::new();
    let amount = check_amount(&t, &form.amount, &mut errors);
    let day = check_date(&console, &t, &form.date, &mut errors);
    let (Some(amount), Some(day)) = (amount, day) else {
        let field = errors.first().map(|e| e.field);
        let text_key = match field {
            Some("date") => key("money.date_out_of_range"),
            _ => key("money.amount_invalid"),
        };
        flash::set(&staff.session, Flash::refused(text_key, field)).await;
        return Redirect::to(&back).into_response();
    };
    let d = NewDisbursement {
        amount,
        disbursed_on: day,
        partner: &partner,
        reference: Some(reference.as_str()),
    };
    match timing::db(money_service::disburse(
        &console.app,
        &staff.actor,
        ProjectId(id),
        d,
        Once::Form(&form.key),
    ))
    .await
    {
        Ok(d) => {
            flash::set(
                &staff.session,
                Flash::done(key("money.flash.disbursed"))
                    .with("amount", t.money(d.amount, &d.currency)),
            )
            .await;
            Redirect::to(&page).into_response()
        }
        Err(e) => match refused(&console, &staff, e).await {
            None => Redirect::to(&back).into_response(),
            Some(r) => r,
        },
    }
}

// ---------------------------------------------------------------------------------------
// Money without a pledge

/// A refusal about the form for money without a pledge, with its field renamed to that
/// form's (`r_…`) so that it shows beside the right input.
fn unpledged_field(field: &'static str) -> &'static str {
    match field {
        "amount" => "r_amount",
        "date" => "r_date",
        "method" => "r_method",
        "household_id" | "phone" => "r_phone",
        "receipt_no" => "r_receipt_no",
        _ => "summary",
    }
}

/// The household behind `phone` (empty: none), among those this person may see; an
/// unknown number and one elsewhere get the same words.
async fn household_of(
    console: &Console,
    staff: &Staff,
    t: &Tr,
    phone: &str,
) -> Result<Option<(i64, String)>, FieldError> {
    let phone = phone.trim();
    if phone.is_empty() {
        return Ok(None);
    }
    let refused = |k: &'static str| FieldError {
        field: "r_phone",
        text: t.t(k),
    };
    let parsed = Phone::parse(phone).map_err(|_| refused(key("households.error.phone")))?;
    match timing::db(service::households::visible_owner(
        &console.app,
        &staff.actor,
        &parsed,
    ))
    .await
    {
        Ok(Some(id)) => Ok(Some((id, parsed.as_str().to_owned()))),
        Ok(None) => Err(refused(key("money.household_elsewhere"))),
        Err(e) => {
            tracing::error!(error = %e, "console: a household by number could not be read");
            Err(refused(key("money.failed.text")))
        }
    }
}

/// `GET /console/money/projects/{id}/receipt`: money received for the project without a
/// pledge, checked, then the confirm page; refused, the project page with the reasons.
pub async fn unpledged_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(input): Query<UnpledgedInput>,
    Query(q): Query<PageQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = money_staff(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let project_id = ProjectId(id);
    let (ledger, _) = match timing::db(money_service::project_view(
        &console.app,
        &staff.actor,
        project_id,
    ))
    .await
    {
        Ok(v) => v,
        Err(e) => return failed(&console, &staff, e),
    };
    let input = UnpledgedInput {
        amount: short(Some(input.amount.as_str())),
        date: short(Some(input.date.as_str())),
        method: short(Some(input.method.as_str())),
        phone: short(Some(input.phone.as_str())),
        receipt_no: bounded(
            Some(input.receipt_no.as_str()),
            money_service::MAX_RECEIPT_NO + 1,
        ),
    };
    let mut errors = Vec::new();
    let amount = check_amount(&t, &input.amount, &mut errors);
    let day = check_date(&console, &t, &input.date, &mut errors);
    for e in &mut errors {
        e.field = unpledged_field(e.field);
    }
    let method = input.method.parse::<ReceiptMethod>().ok();
    if method.is_none() {
        errors.push(FieldError {
            field: "r_method",
            text: t.t("money.method_invalid"),
        });
    }
    if service::opt_text(
        "receipt_no",
        Some(input.receipt_no.as_str()),
        money_service::MAX_RECEIPT_NO,
    )
    .is_err()
    {
        errors.push(FieldError {
            field: "r_receipt_no",
            text: t.t("money.receipt_no_invalid"),
        });
    }
    let household = match household_of(&console, &staff, &t, &input.phone).await {
        Ok(h) => h,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let url = format!("{PATH}/projects/{id}/receipt");
    let (Some(amount), Some(day), Some(method), true) = (amount, day, method, errors.is_empty())
    else {
        return project_page(
            &console,
            &staff,
            t,
            project_id,
            &url,
            (DisbursementInput::default(), input),
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let cur = &ledger.currency;
    let from = match &household {
        Some((hid, _)) => t.t_with(key("money.household_card"), &[("id", &hid.to_string())]),
        None => t.t("money.confirm.unpledged_nobody"),
    };
    let what = t.t_with(
        key("money.confirm.unpledged_what"),
        &[
            ("amount", &t.money(amount, cur)),
            ("project", ledger.name.get(t.language)),
            ("from", &from),
        ],
    );
    let details = vec![
        t.t_with(
            key("money.confirm.receipt_day"),
            &[("date", &t.date(day)), ("method", &t.t(method_key(method)))],
        ),
        t.t("money.confirm.unpledged_no_sms"),
    ];
    let page = ConfirmPage {
        l: layout(&console, &t, &staff, &url),
        title: t.t("money.confirm.unpledged_title"),
        what,
        details,
        action: url.clone(),
        key: form_key(),
        fields: vec![
            ("amount", amount.to_string()),
            ("date", day.to_string()),
            ("method", method.as_str().to_owned()),
            (
                "phone",
                household.map(|(_, phone)| phone).unwrap_or_default(),
            ),
            ("receipt_no", input.receipt_no.trim().to_owned()),
        ],
        button: t.t("money.confirm.receipt_button"),
        back: format!("{PATH}/projects/{id}"),
        t,
    };
    page.into_response()
}

/// `POST /console/money/projects/{id}/receipt`: records money without a pledge (once per
/// form key), 303 back to the project's ledger.
pub async fn unpledged_record(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<UnpledgedPost>,
) -> Response {
    if let Some(r) = money_staff(&console, &staff) {
        return r;
    }
    let t = Tr::new(staff.signed.language);
    let page = format!("{PATH}/projects/{id}");
    let receipt_no = bounded(
        Some(form.receipt_no.as_str()),
        money_service::MAX_RECEIPT_NO + 1,
    );
    let back = back_with(
        &page,
        &[
            ("r_amount", &form.amount),
            ("r_date", &form.date),
            ("r_method", &form.method),
            ("r_phone", &form.phone),
            ("r_receipt_no", &receipt_no),
        ],
    );
    let mut errors = Vec::new();
    let amount = check_amount(&t, &form.amount, &mut errors);
    let day = check_date(&console, &t, &form.date, &mut errors);
    let household = match household_of(&console, &staff, &t, &form.phone).await {
        Ok(h) => h.map(|(hid, _)| HouseholdId(hid)),
        Err(_) => {
            flash::set(
                &staff.session,
                Flash::refused(key("money.household_elsewhere"), Some("r_phone")),
            )
            .await;
            return Redirect::to(&back).into_response();
        }
    };
    let (Some(amount), Some(day)) = (amount, day) else {
        let field = errors.first().map(|e| unpledged_field(e.field));
        let text_key = match field {
            Some("r_date") => key("money.date_out_of_range"),
            _ => key("money.amount_invalid"),
        };
        flash::set(&staff.session, Flash::refused(text_key, field)).await;
        return Redirect::to(&back).into_response();
    };
    let r = ProjectReceipt {
        project: ProjectId(id),
        household,
        amount,
        received_on: day,
        method: form.method.trim(),
        receipt_no: Some(receipt_no.as_str()),
    };
    match timing::db(money_service::receive_without_pledge(
        &console.app,
        &staff.actor,
        r,
        Once::Form(&form.key),
    ))
    .await
    {
        Ok(receipt) => {
            flash::set(
                &staff.session,
                Flash::done(key("money.flash.unpledged"))
                    .with("amount", t.money(receipt.amount, &receipt.currency)),
            )
            .await;
            Redirect::to(&page).into_response()
        }
        Err(ServiceError::Invalid {
            field: "project_id",
            ..
        }) => not_found(&console, &staff),
        Err(e) => {
            if refusal(&t, &e).is_none() {
                return failed(&console, &staff, e);
            }
            let field = match &e {
                ServiceError::Invalid { field, .. } => unpledged_field(field),
                ServiceError::Conflict {
                    rule: "money.receipt_no_taken",
                    ..
                } => "r_receipt_no",
                _ => "summary",
            };
            let text_key = refusal_key(&e).unwrap_or(key("money.rule"));
            flash::set(
                &staff.session,
                Flash::refused(text_key, (field != "summary").then_some(field)),
            )
            .await;
            Redirect::to(&back).into_response()
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct UnpledgedPost {
    #[serde(default)]
    key: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    receipt_no: String,
}

// ---------------------------------------------------------------------------------------
// Reversals (admins)

#[derive(Debug, Default, serde::Deserialize)]
pub struct ReverseQuery {
    #[serde(default)]
    reason: Option<String>,
    lang: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ReversePost {
    #[serde(default)]
    key: String,
    #[serde(default)]
    reason: String,
}

/// What a reversal's confirm page needs of the entry.
struct Reversible {
    title: String,
    what: String,
    /// The entry is a reversal, or reversed already: the page says so and has no button.
    refusal: Option<&'static str>,
    back: String,
}

/// The confirm page of a reversal: what will be reversed, the reason to type, one button
/// (none when it cannot be reversed).
async fn reverse_page(
    console: &Console,
    staff: &Staff,
    t: Tr,
    url: String,
    r: Reversible,
    reason: String,
) -> Response {
    let mut error = r.refusal.map(|k| t.t(k));
    if error.is_none() {
        if let Some(f) = flash::take(&staff.session).await {
            error = Some(f.text(&t));
        }
    }
    let mut details = vec![t.t("money.reverse.kept")];
    if let Some(k) = r.refusal {
        details.push(t.t(k));
    }
    let page = ReversePage {
        l: layout(console, &t, staff, &url),
        title: r.title,
        what: r.what,
        details,
        action: if r.refusal.is_some() {
            String::new()
        } else {
            url.clone()
        },
        key: form_key(),
        fields: Vec::new(),
        reason: r.refusal.is_none().then(|| ReasonField {
            label: t.t("money.reverse.reason"),
            value: reason,
            error,
        }),
        button: t.t("money.reverse.button"),
        back: r.back,
        t,
    };
    let status = if r.refusal.is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    (status, page).into_response()
}

/// 404 unless an admin is acting (reversals are for admins, as in the API).
fn admin_only(console: &Console, staff: &Staff) -> Option<Response> {
    staff
        .actor
        .require_admin()
        .is_err()
        .then(|| not_found(console, staff))
}

/// `GET /console/money/receipts/{id}/reverse`: the receipt and the reason field.
pub async fn reverse_receipt_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<ReverseQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = admin_only(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let (receipt, reversed) =
        match timing::db(money_service::receipt(&console.app, &staff.actor, id)).await {
            Ok(v) => v,
            Err(e) => return failed(&console, &staff, e),
        };
    let (ledger, _) = match timing::db(money_service::project_view(
        &console.app,
        &staff.actor,
        ProjectId(receipt.project_id),
    ))
    .await
    {
        Ok(v) => v,
        Err(e) => return failed(&console, &staff, e),
    };
    let what = t.t_with(
        key("money.reverse.receipt_what"),
        &[
            ("amount", &t.money(receipt.amount, &receipt.currency)),
            ("date", &t.date(receipt.received_on)),
            ("project", ledger.name.get(t.language)),
        ],
    );
    let refusal = if receipt.reverses.is_some() {
        Some(key("money.reverse_reversal"))
    } else if reversed {
        Some(key("money.already_reversed"))
    } else {
        None
    };
    let back = match receipt.pledge_id {
        Some(p) => format!("{PATH}/pledges/{p}"),
        None => format!("{PATH}/projects/{}", receipt.project_id),
    };
    let r = Reversible {
        title: t.t("money.reverse.receipt_title"),
        what,
        refusal,
        back,
    };
    let reason = bounded(q.reason.as_deref(), money_service::MAX_REASON);
    reverse_page(
        &console,
        &staff,
        t,
        format!("{PATH}/receipts/{id}/reverse"),
        r,
        reason,
    )
    .await
}

/// `POST /console/money/receipts/{id}/reverse`: reverses (once per form key), 303 to the
/// pledge or the project with the ledger after it.
pub async fn reverse_receipt_record(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<ReversePost>,
) -> Response {
    let posted = ReversalPost::new(&form, format!("{PATH}/receipts/{id}/reverse"));
    let reverse = money_service::reverse_receipt(
        &console.app,
        &staff.actor,
        id,
        &posted.reason,
        Once::Form(&form.key),
    );
    reversal_done(&console, &staff, &posted.back, reverse, |reversal, t| {
        let page = match reversal.pledge_id {
            Some(p) => format!("{PATH}/pledges/{p}"),
            None => format!("{PATH}/projects/{}", reversal.project_id),
        };
        (
            Flash::done(key("money.flash.receipt_reversed"))
                .with("amount", t.money(-reversal.amount, &reversal.currency)),
            page,
        )
    })
    .await
}

/// What a reversal's POST carries: the reason as typed (bounded) and the form to go back to
/// with it when the reversal is refused.
struct ReversalPost {
    reason: String,
    back: String,
}

impl ReversalPost {
    fn new(form: &ReversePost, form_path: String) -> ReversalPost {
        let reason = bounded(Some(form.reason.as_str()), money_service::MAX_REASON + 1);
        let back = back_with(&form_path, &[("reason", &reason)]);
        ReversalPost { reason, back }
    }
}

/// A reversal's POST, admins only: awaits `reverse`; done, a flash and 303 to the page
/// `done` names; refused, back to the form (`back`) with the reason typed.
async fn reversal_done<T>(
    console: &Console,
    staff: &Staff,
    back: &str,
    reverse: impl std::future::Future<Output = Result<T, ServiceError>>,
    done: impl FnOnce(T, &Tr) -> (Flash, String),
) -> Response {
    if let Some(r) = admin_only(console, staff) {
        return r;
    }
    let t = Tr::new(staff.signed.language);
    match timing::db(reverse).await {
        Ok(reversal) => {
            let (message, page) = done(reversal, &t);
            flash::set(&staff.session, message).await;
            Redirect::to(&page).into_response()
        }
        Err(e) => match refused(console, staff, e).await {
            None => Redirect::to(back).into_response(),
            Some(r) => r,
        },
    }
}

/// `GET /console/money/disbursements/{id}/reverse`: the disbursement and the reason field.
pub async fn reverse_disbursement_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<ReverseQuery>,
    staff: Staff,
) -> Response {
    if let Some(r) = admin_only(&console, &staff) {
        return r;
    }
    let t = language(&staff, q.lang.as_deref()).await;
    let (d, reversed) =
        match timing::db(money_service::disbursement(&console.app, &staff.actor, id)).await {
            Ok(v) => v,
            Err(e) => return failed(&console, &staff, e),
        };
    let (ledger, _) = match timing::db(money_service::project_view(
        &console.app,
        &staff.actor,
        ProjectId(d.project_id),
    ))
    .await
    {
        Ok(v) => v,
        Err(e) => return failed(&console, &staff, e),
    };
    let what = t.t_with(
        key("money.reverse.disbursement_what"),
        &[
            ("amount", &t.money(d.amount, &d.currency)),
            ("partner", &d.partner),
            ("date", &t.date(d.disbursed_on)),
            ("project", ledger.name.get(t.language)),
        ],
    );
    let refusal = if d.reverses.is_some() {
        Some(key("money.reverse_reversal"))
    } else if reversed {
        Some(key("money.already_reversed"))
    } else {
        None
    };
    let r = Reversible {
        title: t.t("money.reverse.disbursement_title"),
        what,
        refusal,
        back: format!("{PATH}/projects/{}", d.project_id),
    };
    let reason = bounded(q.reason.as_deref(), money_service::MAX_REASON);
    reverse_page(
        &console,
        &staff,
        t,
        format!("{PATH}/disbursements/{id}/reverse"),
        r,
        reason,
    )
    .await
}

/// `POST /console/money/disbursements/{id}/reverse`: reverses (once per form key), 303 to
/// the project's ledger.
pub async fn reverse_disbursement_record(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<ReversePost>,
) -> Response {
    let posted = ReversalPost::new(&form, format!("{PATH}/disbursements/{id}/reverse"));
    let reverse = money_service::reverse_disbursement(
        &console.app,
        &staff.actor,
        id,
        &posted.reason,
        Once::Form(&form.key),
    );
    reversal_done(&console, &staff, &posted.back, reverse, |reversal, t| {
        (
            Flash::done(key("money.flash.disbursement_reversed"))
                .with("amount", t.money(-reversal.amount, &reversal.currency)),
            format!("{PATH}/projects/{}", reversal.project_id),
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_their_field_and_key() {
        let t = Tr::new(crate::domain::Language::En);
        let e = ServiceError::conflict("money.more_than_outstanding", "db words");
        let r = refusal(&t, &e).expect("a refusal");
        assert_eq!(r.field, "amount");
        assert!(!r.text.contains("db words"));
        assert_eq!(r.text, t.t("money.more_than_outstanding"));
        let e = ServiceError::invalid("received_on", "money.date_out_of_range", "x");
        assert_eq!(refusal(&t, &e).expect("a refusal").field, "date");
        let e = ServiceError::invalid("reason", "form.text_length", "x");
        assert_eq!(refusal_key(&e), Some("money.reason_invalid"));
        assert!(refusal(&t, &ServiceError::NotFound("pledge")).is_none());
    }

    #[test]
    fn a_refused_form_goes_back_with_what_was_typed() {
        assert_eq!(
            back_with(
                "/console/money/pledges/3",
                &[("amount", "1 500,50"), ("date", "")]
            ),
            "/console/money/pledges/3?amount=1+500%2C50"
        );
        assert_eq!(back_with("/x", &[("reason", "")]), "/x");
    }
}
