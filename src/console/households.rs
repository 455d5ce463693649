//! `/console/households`: the Households pages (console design §3, issue 10 page 4), on the
//! same rules as the admin API ([`service::households`]).
//!
//! - `GET /console/households`: search (name, phone digits, join code) and community chips,
//!   the filter in the URL; cards with the name, masked numbers, language, community and
//!   (not for counsellors) pledged/received; "show more" pages by id ([`PAGE`] a page,
//!   an htmx fragment when asked with `HX-Request`, the full page otherwise). Empty: how
//!   households also register by USSD.
//! - `GET /console/households/new`, `POST /console/households`: Register household (303 to
//!   its page with a flash message; a refused form comes back with the errors beside the
//!   fields and what was typed kept; a number of a household in scope links to it).
//! - `GET /console/households/{id}`: the household page: numbers (full, as `tel:` links,
//!   only here) with their STOP state, numbers abroad apart, pledges, the timeline of
//!   messages in and out with delivery state (newest first, "show more" by cursor), and
//!   callback requests. Another community's household is 404.
//! - `GET /console/households/{id}/edit`, `POST /console/households/{id}`: name, language
//!   and community (where the actor may act).
//! - The household's numbers (admins and the community's coordinators; counsellors and
//!   officers read): `POST /console/households/{id}/phones` links a number as the API does
//!   (`service::households::add_phone`): a coordinator's number gets an SMS with a 6-digit
//!   code, typed at `GET|POST …/phones/confirm`; an admin links at once. `GET|POST
//!   …/phones/unlink?phone=` unlinks after a confirm page (not the last number), and `GET|POST
//!   …/phones/opt-out?phone=&stop=` records STOP or START for a number, as the person asked,
//!   after a confirm page. Each POST answers 303 with a flash; each change is audited by
//!   the service.
//!
//! Programme officers read only (no forms; a POST is 404, refused by the service); counsellors see
//! every community but no money figures. Every POST passed the CSRF middleware.

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    auth::Staff,
    flash::{self, Flash},
    i18n::{key, Tr},
    pages::staff_language as language,
    pages::{Layout, MessagePage},
    timing, Console,
};
use crate::{
    domain::{phone::mask, Language, Phone},
    service::{
        households::{self as service, Household, HouseholdSums, TimelineItem},
        Role, ServiceError,
    },
};

/// Households a list page shows.
pub const PAGE: i64 = 30;
/// Messages a household page shows at a time.
pub const TIMELINE_PAGE: i64 = 30;
/// Longest phones field of the register form.
const MAX_PHONES_FIELD: usize = 400;

/// The layout, with the language links pointing back at `href` (a page with an id).
fn layout(console: &Console, t: &Tr, staff: &Staff, href: Option<&str>) -> Layout {
    match href {
        Some(href) => Layout::signed_in_at(console, t, "/console/households", staff, href),
        None => Layout::signed_in(console, t, "/console/households", staff),
    }
}

/// The one-time message of the last change, in `t`'s language ([`flash`]).
async fn take_flash(staff: &Staff, t: &Tr) -> Option<String> {
    flash::take(&staff.session).await.map(|f| f.text(t))
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

/// Whether the actor sees money figures (all but counsellors).
fn shows_money(staff: &Staff) -> bool {
    staff.actor.role != Role::Counsellor
}

/// Whether the actor may link and unlink numbers and record STOP or START: admins and
/// coordinators (of the household's community: the service's scope); counsellors and
/// officers read.
fn manages_phones(staff: &Staff) -> bool {
    matches!(staff.actor.role, Role::Admin | Role::Coordinator)
}

fn encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Longest number a phone form takes.
const MAX_PHONE_FIELD: usize = 40;

/// Whether the actor may change households (all but programme officers).
fn changes(staff: &Staff) -> bool {
    !staff.actor.read_only()
}

fn language_key(code: Option<&str>) -> &'static str {
    match code {
        Some("tg") => key("households.language.tg"),
        Some("ru") => key("households.language.ru"),
        Some("en") => key("households.language.en"),
        _ => key("households.language.unset"),
    }
}

fn via_key(via: &str) -> &'static str {
    match via {
        "ussd" => key("households.via.ussd"),
        "sms" => key("households.via.sms"),
        "demo" => key("households.via.demo"),
        _ => key("households.via.coordinator"),
    }
}

fn title(t: &Tr, id: i64, name: Option<&str>) -> String {
    match name {
        Some(n) => n.to_owned(),
        None => t.t_with("households.unnamed", &[("id", &id.to_string())]),
    }
}

/// A date and time in the programme's time zone: "28.11.2026 09:41".
fn when(console: &Console, t: &Tr, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&console.app.config.timezone);
    format!("{} {}", t.date(local.date_naive()), t.time(local.time()))
}

// ---------------------------------------------------------------------------------------
// The list

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    pub q: Option<String>,
    /// A community id; empty for all.
    pub community: Option<String>,
    pub after: Option<i64>,
    pub lang: Option<String>,
}

/// A community chip of the filter.
pub struct Chip {
    pub name: String,
    pub href: String,
    pub current: bool,
}

/// A household's card.
pub struct Card {
    pub id: i64,
    pub href: String,
    pub title: String,
    pub phones: Vec<String>,
    pub language_key: &'static str,
    pub community: String,
    /// "Pledged 1 500,00 TJS · received 500,00 TJS", one a currency.
    pub sums: Vec<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/households.html")]
pub struct ListPage {
    pub t: Tr,
    pub l: Layout,
    pub flash: Option<String>,
    pub q: String,
    pub chips: Vec<Chip>,
    pub cards: Vec<Card>,
    pub more: Option<String>,
    pub can_register: bool,
    /// Nothing found because of a search or filter (not an empty programme).
    pub filtered: bool,
}

/// The cards and the "show more" link alone, for htmx.
#[derive(Template, WebTemplate)]
#[template(path = "console/households_cards.html")]
pub struct ListFragment {
    pub t: Tr,
    pub cards: Vec<Card>,
    pub more: Option<String>,
}

/// The URL of the list with this filter (and a page cursor).
fn list_href(q: &str, community: Option<i64>, after: Option<i64>) -> String {
    let mut parts = Vec::new();
    if !q.is_empty() {
        parts.push(format!(
            "q={}",
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        ));
    }
    if let Some(c) = community {
        parts.push(format!("community={c}"));
    }
    if let Some(a) = after {
        parts.push(format!("after={a}"));
    }
    if parts.is_empty() {
        "/console/households".to_owned()
    } else {
        format!("/console/households?{}", parts.join("&"))
    }
}

/// `GET /console/households`.
pub async fn list(
    State(console): State<Console>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
    staff: Staff,
) -> Response {
    let t = language(&staff, query.lang.as_deref()).await;
    let q: String = query
        .q
        .as_deref()
        .unwrap_or("")
        .trim()
        .chars()
        .take(service::MAX_QUERY)
        .collect();
    let community = query
        .community
        .as_deref()
        .and_then(|c| c.trim().parse::<i64>().ok());
    let state = &console.app;
    let search = service::Search {
        community,
        q: Some(&q),
        after: query.after,
        limit: PAGE + 1,
        offset: 0,
    };
    let found = timing::db(service::list(state, &staff.actor, &search)).await;
    let mut rows = match found {
        Ok(rows) => rows,
        Err(e) => return refused(&console, &t, &staff, e),
    };
    let more = (rows.len() > usize::try_from(PAGE).unwrap_or(usize::MAX)).then(|| {
        rows.truncate(usize::try_from(PAGE).unwrap_or(0));
        list_href(&q, community, rows.last().map(|h| h.id))
    });
    let communities = match timing::db(service::communities(state, &staff.actor)).await {
        Ok(c) => c,
        Err(e) => return refused(&console, &t, &staff, e),
    };
    let sums = if shows_money(&staff) {
        let ids: Vec<i64> = rows.iter().map(|h| h.id).collect();
        match timing::db(service::sums(state, &ids)).await {
            Ok(s) => s,
            Err(e) => return refused(&console, &t, &staff, e),
        }
    } else {
        Vec::new()
    };
    let cards = rows
        .iter()
        .map(|h| card(&t, h, &communities, &sums))
        .collect();
    if is_htmx(&headers) && query.after.is_some() {
        return ListFragment { t, cards, more }.into_response();
    }
    let mut chips = vec![Chip {
        name: t.t("households.all_communities"),
        href: list_href(&q, None, None),
        current: community.is_none(),
    }];
    chips.extend(communities.iter().map(|c| Chip {
        name: c.name.get(t.language).to_owned(),
        href: list_href(&q, Some(c.id.0), None),
        current: community == Some(c.id.0),
    }));
    let l = layout(&console, &t, &staff, None);
    ListPage {
        flash: take_flash(&staff, &t).await,
        filtered: !q.is_empty() || community.is_some() || query.after.is_some(),
        q,
        chips,
        cards,
        more,
        can_register: changes(&staff),
        t,
        l,
    }
    .into_response()
}

fn card(t: &Tr, h: &Household, communities: &[service::Community], sums: &[HouseholdSums]) -> Card {
    Card {
        id: h.id,
        href: format!("/console/households/{}", h.id),
        title: title(t, h.id, h.name.as_deref()),
        phones: h.phones.iter().map(|p| mask(&p.phone)).collect(),
        language_key: language_key(h.language.as_deref()),
        community: communities
            .iter()
            .find(|c| c.id.0 == h.community_id)
            .map(|c| c.name.get(t.language).to_owned())
            .unwrap_or_default(),
        sums: sums
            .iter()
            .filter(|s| s.household.0 == h.id)
            .map(|s| {
                t.t_with(
                    "households.sums",
                    &[
                        ("pledged", &t.money(s.pledged, &s.currency)),
                        ("received", &t.money(s.received, &s.currency)),
                    ],
                )
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// The household page

#[derive(Debug, Deserialize, Default)]
pub struct PageQuery {
    /// The timeline's cursor: `{unix microseconds}_{seq}`.
    pub before: Option<String>,
    pub lang: Option<String>,
    /// A number typed in "Link a number" that was refused.
    pub phone: Option<String>,
}

pub struct PhoneView {
    pub e164: String,
    /// The number URL-encoded, for the links of its forms.
    pub param: String,
    pub stopped: bool,
    pub tel: String,
    /// "Opted out (STOP) 28.11.2026 09:41".
    pub opted_out: Option<String>,
    pub linked: String,
    /// "Moscow time (the number's country)", "Novosibirsk time (set for this number)".
    pub zone: String,
    /// The zone recorded for the number, as the form shows it ("" for none).
    pub timezone: String,
}

pub struct PledgeView {
    pub code: String,
    pub project: String,
    pub amount: String,
    pub received: String,
    pub status_key: &'static str,
    pub at: String,
}

pub struct ItemView {
    pub incoming: bool,
    pub at: String,
    pub phone: String,
    /// The text, or `None` for a link code's SMS.
    pub body: Option<String>,
    pub kind_key: &'static str,
    pub status_key: Option<&'static str>,
    pub status_at: Option<String>,
    pub reason: Option<String>,
    /// failed, suppressed: shown as a problem.
    pub bad: bool,
}

pub struct CallbackView {
    pub at: String,
    pub phone: String,
    pub open: bool,
    pub channel: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/household.html")]
pub struct HouseholdPage {
    pub t: Tr,
    pub l: Layout,
    pub flash: Option<String>,
    pub id: i64,
    pub title: String,
    pub community: String,
    pub language_key: &'static str,
    pub via_key: &'static str,
    pub created: String,
    pub home: Vec<PhoneView>,
    pub abroad: Vec<PhoneView>,
    pub show_money: bool,
    pub pledges: Vec<PledgeView>,
    pub items: Vec<ItemView>,
    pub more: Option<String>,
    pub callbacks: Vec<CallbackView>,
    pub can_edit: bool,
    /// Numbers may be linked, unlinked, stopped and started here.
    pub can_phones: bool,
    /// The household has one number (it cannot be unlinked).
    pub one_number: bool,
    /// Why the number typed in "Link a number" was refused, and what was typed.
    pub phone_error: Option<String>,
    pub phone_typed: String,
    /// Suggestions for a number's zone (the form takes any IANA name).
    pub zone_names: &'static [&'static str],
}

/// The zones a number abroad is most likely in, suggested by the household page's form:
/// Russia's from west to east, then the other countries migrants from the valley work in.
const ZONE_NAMES: &[&str] = &[
    "Europe/Moscow",
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Omsk",
    "Asia/Novosibirsk",
    "Asia/Krasnoyarsk",
    "Asia/Irkutsk",
    "Asia/Yakutsk",
    "Asia/Vladivostok",
    "Asia/Almaty",
    "Asia/Tashkent",
    "Asia/Bishkek",
    "Europe/Istanbul",
    "Asia/Dubai",
    "Asia/Seoul",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
];

/// The timeline's next items alone, for htmx.
#[derive(Template, WebTemplate)]
#[template(path = "console/household_timeline.html")]
pub struct TimelineFragment {
    pub t: Tr,
    pub items: Vec<ItemView>,
    pub more: Option<String>,
}

fn parse_cursor(raw: &str) -> Option<(DateTime<Utc>, i64)> {
    let (micros, seq) = raw.split_once('_')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((at, seq.parse().ok()?))
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

fn pledge_status_key(s: &str) -> &'static str {
    match s {
        "received" => key("households.pledge.received_status"),
        "cancelled" => key("households.pledge.cancelled"),
        _ => key("households.pledge.pledged"),
    }
}

fn item_view(console: &Console, t: &Tr, i: &TimelineItem) -> ItemView {
    let incoming = i.direction == "in";
    ItemView {
        incoming,
        at: when(console, t, i.at),
        phone: mask(&i.phone),
        body: i.body.clone(),
        kind_key: kind_key(&i.kind),
        status_key: if incoming {
            None
        } else {
            i.status.as_deref().map(status_key)
        },
        status_at: i.status_at.map(|a| when(console, t, a)),
        reason: i.reason.clone().filter(|_| !incoming),
        bad: !incoming && matches!(i.status.as_deref(), Some("failed" | "suppressed")),
    }
}

/// `GET /console/households/{id}`.
pub async fn page(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    staff: Staff,
) -> Response {
    let href = format!("/console/households/{id}");
    let t = language(&staff, query.lang.as_deref()).await;
    let before = query.before.as_deref().and_then(parse_cursor);
    let state = &console.app;
    let data = match timing::db(service::page(
        state,
        &staff.actor,
        id,
        before,
        TIMELINE_PAGE,
    ))
    .await
    {
        Ok(d) => d,
        Err(e) => return refused(&console, &t, &staff, e),
    };
    let mut timeline = data.timeline;
    let more = (timeline.len() > usize::try_from(TIMELINE_PAGE).unwrap_or(usize::MAX)).then(|| {
        timeline.truncate(usize::try_from(TIMELINE_PAGE).unwrap_or(0));
        timeline
            .last()
            .map(|i| format!("{href}?before={}_{}", i.at.timestamp_micros(), i.seq))
            .unwrap_or_else(|| href.clone())
    });
    let items: Vec<ItemView> = timeline
        .iter()
        .map(|i| item_view(&console, &t, i))
        .collect();
    if is_htmx(&headers) && before.is_some() {
        return TimelineFragment { t, items, more }.into_response();
    }
    let h = data.household;
    let communities = match timing::db(service::communities(state, &staff.actor)).await {
        Ok(c) => c,
        Err(e) => return refused(&console, &t, &staff, e),
    };
    let (home, abroad): (Vec<_>, Vec<_>) = h
        .phones
        .iter()
        .map(|p| {
            let view = PhoneView {
                e164: p.phone.clone(),
                param: encode(&p.phone),
                stopped: p.opted_out,
                tel: format!("tel:{}", p.phone),
                opted_out: p.opted_out_at.map(|at| {
                    t.t_with("households.opted_out", &[("when", &when(&console, &t, at))])
                }),
                linked: t.t_with(
                    "households.linked",
                    &[("when", &when(&console, &t, p.linked_at))],
                ),
                zone: zone_view(&console, &t, &p.phone, p.timezone.as_deref()),
                timezone: p.timezone.clone().unwrap_or_default(),
            };
            (p.phone.starts_with("+992"), view)
        })
        .partition(|(home, _)| *home);
    let pledges = data
        .pledges
        .iter()
        .map(|p| PledgeView {
            code: p.code.clone(),
            project: match t.language {
                Language::Tg => p.project_tg.clone(),
                Language::Ru => p.project_ru.clone(),
                Language::En => p.project_en.clone(),
            },
            amount: t.money(p.amount, &p.currency),
            received: t.money(p.received, &p.currency),
            status_key: pledge_status_key(&p.status),
            at: when(&console, &t, p.created_at),
        })
        .collect();
    let callbacks = data
        .callbacks
        .iter()
        .map(|c| CallbackView {
            at: when(&console, &t, c.created_at),
            phone: c.phone.clone(),
            open: c.status == "open",
            channel: c.channel.to_uppercase(),
        })
        .collect();
    let l = layout(&console, &t, &staff, Some(&href));
    let (flash, phone_error) = match flash::take(&staff.session).await {
        Some(f) if f.is_done() => (Some(f.text(&t)), None),
        Some(f) => (None, Some(f.text(&t))),
        None => (None, None),
    };
    let phone_typed: String = query
        .phone
        .as_deref()
        .unwrap_or("")
        .chars()
        .take(MAX_PHONE_FIELD)
        .collect();
    HouseholdPage {
        flash,
        phone_error,
        phone_typed,
        can_phones: manages_phones(&staff),
        one_number: h.phones.len() == 1,
        id,
        title: title(&t, h.id, h.name.as_deref()),
        community: communities
            .iter()
            .find(|c| c.id.0 == h.community_id)
            .map(|c| c.name.get(t.language).to_owned())
            .unwrap_or_default(),
        language_key: language_key(h.language.as_deref()),
        via_key: via_key(&h.registered_via),
        created: when(&console, &t, h.created_at),
        home: home.into_iter().map(|(_, v)| v).collect(),
        abroad: abroad.into_iter().map(|(_, v)| v).collect(),
        show_money: shows_money(&staff),
        pledges,
        items,
        more,
        callbacks,
        can_edit: changes(&staff),
        zone_names: ZONE_NAMES,
        t,
        l,
    }
    .into_response()
}

// ---------------------------------------------------------------------------------------
// Register and edit

/// A community to choose in a form.
pub struct CommunityOption {
    pub id: i64,
    pub name: String,
    pub selected: bool,
}

/// A language to choose in a form (`code` empty: not set).
pub struct LanguageOption {
    pub code: &'static str,
    pub key: &'static str,
    pub selected: bool,
}

/// An error beside a field (`field` empty: the summary only).
pub struct FieldError {
    pub field: &'static str,
    pub text: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/household_form.html")]
pub struct FormPage {
    pub t: Tr,
    pub l: Layout,
    /// `None`: register; `Some(id)`: edit household `id`.
    pub edit: Option<i64>,
    pub heading: String,
    pub action: String,
    pub name: String,
    pub phones: String,
    pub communities: Vec<CommunityOption>,
    pub languages: Vec<LanguageOption>,
    pub errors: Vec<FieldError>,
    /// A link to the household a number belongs to (in scope).
    pub owner: Option<String>,
}

impl FormPage {
    pub fn error_for(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.text.as_str())
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct HouseholdForm {
    #[serde(default)]
    pub community: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub phones: String,
}

fn language_options(selected: &str) -> Vec<LanguageOption> {
    [
        ("", key("households.language.unset")),
        ("tg", key("households.language.tg")),
        ("ru", key("households.language.ru")),
        ("en", key("households.language.en")),
    ]
    .into_iter()
    .map(|(code, key)| LanguageOption {
        code,
        key,
        selected: code == selected,
    })
    .collect()
}

#[allow(clippy::too_many_arguments)]
async fn form_page(
    console: &Console,
    t: Tr,
    staff: &Staff,
    edit: Option<i64>,
    form: &HouseholdForm,
    errors: Vec<FieldError>,
    owner: Option<String>,
    status: StatusCode,
) -> Response {
    let communities = match timing::db(service::communities(&console.app, &staff.actor)).await {
        Ok(c) => c,
        Err(e) => return refused(console, &t, staff, e),
    };
    let chosen = form.community.trim().parse::<i64>().ok();
    let (heading, action, href) = match edit {
        None => (
            t.t("households.register.title"),
            "/console/households".to_owned(),
            "/console/households/new".to_owned(),
        ),
        Some(id) => (
            t.t("households.edit.title"),
            format!("/console/households/{id}"),
            format!("/console/households/{id}/edit"),
        ),
    };
    let l = layout(console, &t, staff, Some(&href));
    let page = FormPage {
        edit,
        heading,
        action,
        name: form.name.clone(),
        phones: form.phones.clone(),
        communities: communities
            .iter()
            .map(|c| CommunityOption {
                id: c.id.0,
                name: c.name.get(t.language).to_owned(),
                selected: chosen == Some(c.id.0),
            })
            .collect(),
        languages: language_options(form.language.trim()),
        errors,
        owner,
        t,
        l,
    };
    (status, page).into_response()
}

/// `GET /console/households/new`: the register form (officers: 403).
pub async fn new(
    State(console): State<Console>,
    Query(query): Query<PageQuery>,
    staff: Staff,
) -> Response {
    let t = language(&staff, query.lang.as_deref()).await;
    if !changes(&staff) {
        return refused(&console, &t, &staff, ServiceError::Forbidden);
    }
    let form = HouseholdForm {
        community: staff
            .actor
            .communities
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
        ..HouseholdForm::default()
    };
    form_page(
        &console,
        t,
        &staff,
        None,
        &form,
        Vec::new(),
        None,
        StatusCode::OK,
    )
    .await
}

/// The numbers of the phones field: one a line (or separated by commas or semicolons).
fn phone_lines(raw: &str) -> Vec<String> {
    raw.split(['\n', ',', ';'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /console/households`: registers; 303 to the household's page with a flash.
pub async fn create(
    State(console): State<Console>,
    staff: Staff,
    Form(form): Form<HouseholdForm>,
) -> Response {
    let t = Tr::new(staff.signed.language);
    let mut errors = Vec::new();
    let community = form.community.trim().parse::<i64>().ok();
    if community.is_none() {
        errors.push(FieldError {
            field: "community",
            text: t.t("households.error.community"),
        });
    }
    if form.phones.chars().count() > MAX_PHONES_FIELD {
        errors.push(FieldError {
            field: "phones",
            text: t.t("households.error.phones"),
        });
    }
    if !errors.is_empty() {
        return form_page(
            &console,
            t,
            &staff,
            None,
            &form,
            errors,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let new = service::NewHousehold {
        community_id: community.unwrap_or_default(),
        name: Some(form.name.trim().to_owned()).filter(|n| !n.is_empty()),
        language: Some(form.language.trim().to_owned()).filter(|l| !l.is_empty()),
        phones: phone_lines(&form.phones),
    };
    match timing::db(service::register(&console.app, &staff.actor, &new)).await {
        Ok(h) => {
            let name = title(&t, h.id, h.name.as_deref());
            let done = Flash::done(key("households.register.done")).with("name", name);
            flash::set(&staff.session, done).await;
            Redirect::to(&format!("/console/households/{}", h.id)).into_response()
        }
        Err(e) => form_error(&console, t, &staff, None, &form, e).await,
    }
}

/// A refused form: the page again with the error beside its field (422, 409, 429), or a
/// page for what is not a form error.
async fn form_error(
    console: &Console,
    t: Tr,
    staff: &Staff,
    edit: Option<i64>,
    form: &HouseholdForm,
    e: ServiceError,
) -> Response {
    let (field, text, status) = match &e {
        ServiceError::Invalid { field, key, .. } => {
            let field = match *field {
                "community_id" => "community",
                f => f,
            };
            (field, t.t(key), StatusCode::UNPROCESSABLE_ENTITY)
        }
        ServiceError::Conflict { rule, .. } => ("phones", t.t(rule), StatusCode::CONFLICT),
        ServiceError::TooMany { rule, .. } => ("", t.t(rule), StatusCode::TOO_MANY_REQUESTS),
        _ => return refused(console, &t, staff, e),
    };
    // A number of a household this person may see: link to it.
    let mut owner = None;
    if matches!(&e, ServiceError::Conflict { rule, .. } if *rule == "households.error.taken_here") {
        for raw in phone_lines(&form.phones) {
            if let Ok(phone) = Phone::parse(&raw) {
                if let Ok(Some(id)) =
                    timing::db(service::visible_owner(&console.app, &staff.actor, &phone)).await
                {
                    owner = Some(format!("/console/households/{id}"));
                    break;
                }
            }
        }
    }
    let errors = vec![FieldError { field, text }];
    form_page(console, t, staff, edit, form, errors, owner, status).await
}

/// `GET /console/households/{id}/edit`: the edit form (officers: 403; out of scope: 404).
pub async fn edit(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
    staff: Staff,
) -> Response {
    let t = language(&staff, query.lang.as_deref()).await;
    let h = match timing::db(service::get(&console.app, &staff.actor, id)).await {
        Ok(h) => h,
        Err(e) => return refused(&console, &t, &staff, e),
    };
    if !changes(&staff) {
        return refused(&console, &t, &staff, ServiceError::Forbidden);
    }
    let form = HouseholdForm {
        community: h.community_id.to_string(),
        name: h.name.unwrap_or_default(),
        language: h.language.unwrap_or_default(),
        phones: String::new(),
    };
    form_page(
        &console,
        t,
        &staff,
        Some(id),
        &form,
        Vec::new(),
        None,
        StatusCode::OK,
    )
    .await
}

/// `POST /console/households/{id}`: saves name, language and community; 303 to the page.
pub async fn update(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<HouseholdForm>,
) -> Response {
    let t = Tr::new(staff.signed.language);
    let name = form.name.trim();
    let language = form.language.trim();
    let change = service::HouseholdChange {
        name: Some(Some(name.to_owned()).filter(|n| !n.is_empty())),
        language: Some(Some(language.to_owned()).filter(|l| !l.is_empty())),
        community_id: form.community.trim().parse::<i64>().ok(),
    };
    match timing::db(service::update(&console.app, &staff.actor, id, &change)).await {
        Ok(h) => {
            let name = title(&t, h.id, h.name.as_deref());
            let done = Flash::done(key("households.edit.done")).with("name", name);
            flash::set(&staff.session, done).await;
            Redirect::to(&format!("/console/households/{id}")).into_response()
        }
        Err(e) => form_error(&console, t, &staff, Some(id), &form, e).await,
    }
}

/// The zone a number's messages are timed in, in words.
fn zone_view(console: &Console, t: &Tr, phone: &str, chosen: Option<&str>) -> String {
    let home = console.app.settings.quiet_hours.tz;
    let zone = crate::domain::timezones::zone_of(phone, chosen, home);
    let place = super::broadcasts::place(t, zone.name());
    let k = if chosen.is_some_and(|c| c == zone.name()) {
        key("households.zone.chosen")
    } else {
        key("households.zone.country")
    };
    t.t_with(k, &[("place", &place), ("zone", zone.name())])
}

#[derive(Debug, Default, Deserialize)]
pub struct ZoneForm {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    timezone: String,
}

/// `POST /console/households/{id}/timezone`: records the zone one of the household's numbers
/// is timed in (empty: its country's again); 303 back to the household with what was done,
/// or refused with the reason (a name that is not a zone).
pub async fn timezone_post(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<ZoneForm>,
) -> Response {
    let t = Tr::new(staff.signed.language);
    let back = format!("/console/households/{id}");
    // bounded before anything reads it (the service checks the name against the IANA list)
    let phone: String = form.phone.chars().take(32).collect();
    let zone: String = form.timezone.chars().take(80).collect();
    let zone = Some(zone.trim()).filter(|z| !z.is_empty());
    match timing::db(service::set_timezone(
        &console.app,
        &staff.actor,
        &phone,
        zone,
    ))
    .await
    {
        Ok(z) if z.household_id == id => {
            let place = super::broadcasts::place(&t, &z.zone);
            let done = Flash::done(key("households.zone.done"))
                .with("phone", z.phone)
                .with("zone", place);
            flash::set(&staff.session, done).await;
            Redirect::to(&back).into_response()
        }
        // a number of another household (in scope): its page shows the change
        Ok(z) => Redirect::to(&format!("/console/households/{}", z.household_id)).into_response(),
        Err(ServiceError::Invalid { key: k, .. }) => {
            flash::set(&staff.session, Flash::refused(k, None)).await;
            Redirect::to(&back).into_response()
        }
        Err(e) => refused(&console, &t, &staff, e),
    }
}

/// A refusal that is a whole page: 404 (not found, out of scope, or out of role), or a database
/// failure (503, with a retry link; never partial figures).
fn refused(console: &Console, t: &Tr, staff: &Staff, e: ServiceError) -> Response {
    let (status, title_key, text_key) = match &e {
        ServiceError::NotFound(_) => (
            StatusCode::NOT_FOUND,
            key("households.not_found.title"),
            key("households.not_found.text"),
        ),
        // out of role or scope: 404, as for what does not exist (console_routes' rule)
        ServiceError::Forbidden => (
            StatusCode::NOT_FOUND,
            key("households.forbidden.title"),
            key("households.forbidden.text"),
        ),
        ServiceError::Invalid { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            key("households.invalid.title"),
            key("households.invalid.text"),
        ),
        _ => {
            tracing::error!(error = %e, "console: households page failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                key("households.error.title"),
                key("households.error.text"),
            )
        }
    };
    let page = MessagePage {
        t: *t,
        l: layout(console, t, staff, None),
        title_key,
        text_key,
        back: "/console/households",
        back_key: key("households.back"),
    };
    (status, page).into_response()
}

// ---------------------------------------------------------------------------------------
// Numbers: link (with a code), unlink, STOP / START

/// A confirm page of a change to a number, or the page where the link code is typed.
#[derive(Template, WebTemplate)]
#[template(path = "console/household_phone.html")]
pub struct PhonePage {
    pub t: Tr,
    pub l: Layout,
    pub id: i64,
    pub household: String,
    pub title: String,
    pub what: String,
    pub details: Vec<String>,
    /// Where the button posts; empty: no button (the change is refused).
    pub action: String,
    pub fields: Vec<(&'static str, String)>,
    /// The page asks for the 6-digit code.
    pub code_entry: bool,
    pub error: Option<String>,
    pub button: String,
    /// The number, for "Send a new code".
    pub phone: String,
}

#[derive(Debug, Deserialize, Default)]
pub struct PhoneQuery {
    #[serde(default)]
    pub phone: String,
    /// STOP (`true`) or START (`false`), for the opt-out page.
    pub stop: Option<bool>,
    pub lang: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub struct PhoneForm {
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub code: String,
    pub stop: Option<bool>,
}

fn bounded(v: &str) -> String {
    v.trim().chars().take(MAX_PHONE_FIELD).collect()
}

/// 404 for a person who may not change numbers.
fn phones_staff(console: &Console, t: &Tr, staff: &Staff) -> Option<Response> {
    (!manages_phones(staff)).then(|| refused(console, t, staff, ServiceError::Forbidden))
}

/// The household (in scope) and which of its numbers `raw` is (E.164), or a 404 page.
async fn household_number(
    console: &Console,
    t: &Tr,
    staff: &Staff,
    id: i64,
    raw: &str,
) -> Result<(Household, Option<String>), Response> {
    let h = match timing::db(service::get(&console.app, &staff.actor, id)).await {
        Ok(h) => h,
        Err(e) => return Err(refused(console, t, staff, e)),
    };
    let number = Phone::parse(raw).ok().and_then(|p| {
        h.phones
            .iter()
            .find(|n| n.phone == p.as_str())
            .map(|n| n.phone.clone())
    });
    Ok((h, number))
}

/// What a number's confirm page starts with: the page's language, the check that this
/// member of staff may change numbers, the household, and the number of the query as the
/// household lists it (404 for a number it does not have).
async fn confirming_number(
    console: &Console,
    staff: &Staff,
    id: i64,
    q: &PhoneQuery,
) -> Result<(Tr, Household, String), Response> {
    let t = language(staff, q.lang.as_deref()).await;
    if let Some(r) = phones_staff(console, &t, staff) {
        return Err(r);
    }
    let (h, number) = household_number(console, &t, staff, id, &q.phone).await?;
    match number {
        Some(number) => Ok((t, h, number)),
        None => Err(refused(console, &t, staff, ServiceError::NotFound("phone"))),
    }
}

fn household_href(id: i64) -> String {
    format!("/console/households/{id}")
}

/// `POST /console/households/{id}/phones`: asks to link a number: a coordinator is sent on
/// to type the code the number got by SMS; an admin links at once. Refused: back to the
/// household with the reason beside the field and what was typed.
pub async fn phone_add(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<PhoneForm>,
) -> Response {
    let t = Tr::new(staff.signed.language);
    if let Some(r) = phones_staff(&console, &t, &staff) {
        return r;
    }
    let typed = bounded(&form.phone);
    let back = format!("{}?phone={}#link-phone", household_href(id), encode(&typed));
    match timing::db(service::add_phone(&console.app, &staff.actor, id, &typed)).await {
        Ok(service::PhoneAdded::Already(_)) => {
            let done = Flash::done(key("households.phones.already")).with("phone", mask(&typed));
            flash::set(&staff.session, done).await;
            Redirect::to(&household_href(id)).into_response()
        }
        Ok(service::PhoneAdded::Linked(_)) => {
            let phone = Phone::parse(&typed)
                .map(|p| p.as_str().to_owned())
                .unwrap_or(typed);
            let done = Flash::done(key("households.phones.linked")).with("phone", phone);
            flash::set(&staff.session, done).await;
            Redirect::to(&household_href(id)).into_response()
        }
        Ok(service::PhoneAdded::CodeSent { phone, .. }) => Redirect::to(&format!(
            "{}/phones/confirm?phone={}",
            household_href(id),
            encode(&phone)
        ))
        .into_response(),
        Err(e) => match phone_refusal(&e) {
            Some(k) => {
                flash::set(&staff.session, Flash::refused(k, Some("phone"))).await;
                Redirect::to(&back).into_response()
            }
            None => refused(&console, &t, &staff, e),
        },
    }
}

/// The text key of a refusal about a number or a code, or `None` for a page-wide answer.
fn phone_refusal(e: &ServiceError) -> Option<&'static str> {
    match e {
        ServiceError::Invalid { key, .. } => Some(key),
        ServiceError::Conflict { rule, .. }
        | ServiceError::Gone { rule, .. }
        | ServiceError::TooMany { rule, .. } => Some(rule),
        ServiceError::NotFound("pending code") => Some(key("households.phones.no_code")),
        ServiceError::NotFound("phone") => Some(key("households.phones.not_linked")),
        _ => None,
    }
}

/// `GET /console/households/{id}/phones/confirm?phone=`: where the code the number got is
/// typed (and a new one asked for).
pub async fn phone_code(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<PhoneQuery>,
    staff: Staff,
) -> Response {
    let t = language(&staff, q.lang.as_deref()).await;
    if let Some(r) = phones_staff(&console, &t, &staff) {
        return r;
    }
    let (h, _) = match household_number(&console, &t, &staff, id, &q.phone).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let phone = match Phone::parse(&q.phone) {
        Ok(p) => p,
        Err(_) => return refused(&console, &t, &staff, ServiceError::NotFound("phone")),
    };
    let error = flash::take(&staff.session).await.map(|f| f.text(&t));
    let url = format!("{}/phones/confirm", household_href(id));
    let household = title(&t, h.id, h.name.as_deref());
    let page = PhonePage {
        l: layout(&console, &t, &staff, Some(&url)),
        id,
        title: t.t("households.phones.code_title"),
        what: t.t_with(
            "households.phones.code_what",
            &[("phone", phone.as_str()), ("household", &household)],
        ),
        details: vec![t.t_with(
            "households.phones.code_minutes",
            &[("minutes", &service::LINK_CODE_MINUTES.to_string())],
        )],
        household,
        action: url,
        fields: vec![("phone", phone.as_str().to_owned())],
        code_entry: true,
        error,
        button: t.t("households.phones.code_button"),
        phone: phone.as_str().to_owned(),
        t,
    };
    page.into_response()
}

/// `POST /console/households/{id}/phones/confirm`: links the number with its code.
pub async fn phone_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<PhoneForm>,
) -> Response {
    let t = Tr::new(staff.signed.language);
    if let Some(r) = phones_staff(&console, &t, &staff) {
        return r;
    }
    let phone = bounded(&form.phone);
    let code: String = form.code.trim().chars().take(12).collect();
    let back = format!(
        "{}/phones/confirm?phone={}",
        household_href(id),
        encode(&phone)
    );
    match timing::db(service::confirm_phone(
        &console.app,
        &staff.actor,
        id,
        &phone,
        &code,
    ))
    .await
    {
        Ok((linked, _)) => {
            let k = if linked {
                key("households.phones.linked")
            } else {
                key("households.phones.already")
            };
            flash::set(&staff.session, Flash::done(k).with("phone", phone)).await;
            Redirect::to(&household_href(id)).into_response()
        }
        Err(e) => match phone_refusal(&e) {
            Some(k) => {
                flash::set(&staff.session, Flash::refused(k, Some("code"))).await;
                Redirect::to(&back).into_response()
            }
            None => refused(&console, &t, &staff, e),
        },
    }
}

/// `GET /console/households/{id}/phones/unlink?phone=`: what unlinking does, one button
/// (none for the household's only number).
pub async fn unlink_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<PhoneQuery>,
    staff: Staff,
) -> Response {
    let (t, h, number) = match confirming_number(&console, &staff, id, &q).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let url = format!("{}/phones/unlink", household_href(id));
    let household = title(&t, h.id, h.name.as_deref());
    let last = h.phones.len() == 1;
    let mut details = vec![t.t("households.phones.unlink_keeps")];
    let error = flash::take(&staff.session).await.map(|f| f.text(&t));
    if last {
        details.push(t.t("households.error.last_phone"));
    }
    let page = PhonePage {
        l: layout(&console, &t, &staff, Some(&url)),
        id,
        title: t.t("households.phones.unlink_title"),
        what: t.t_with(
            "households.phones.unlink_what",
            &[("phone", &number), ("household", &household)],
        ),
        details,
        household,
        action: if last { String::new() } else { url },
        fields: vec![("phone", number.clone())],
        code_entry: false,
        error,
        button: t.t("households.phones.unlink_button"),
        phone: number,
        t,
    };
    let status = if last {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    (status, page).into_response()
}

/// `POST /console/households/{id}/phones/unlink`: unlinks, 303 to the household.
pub async fn unlink(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<PhoneForm>,
) -> Response {
    let t = Tr::new(staff.signed.language);
    if let Some(r) = phones_staff(&console, &t, &staff) {
        return r;
    }
    let phone = bounded(&form.phone);
    match timing::db(service::remove_phone(
        &console.app,
        &staff.actor,
        id,
        &phone,
    ))
    .await
    {
        Ok(_) => {
            let done = Flash::done(key("households.phones.unlinked")).with("phone", phone);
            flash::set(&staff.session, done).await;
            Redirect::to(&household_href(id)).into_response()
        }
        Err(ServiceError::NotFound("household")) => {
            refused(&console, &t, &staff, ServiceError::NotFound("household"))
        }
        Err(e) => match phone_refusal(&e) {
            Some(k) => {
                flash::set(&staff.session, Flash::refused(k, None)).await;
                Redirect::to(&household_href(id)).into_response()
            }
            None => refused(&console, &t, &staff, e),
        },
    }
}

/// `GET /console/households/{id}/phones/opt-out?phone=&stop=`: what STOP (or START) does,
/// one button.
pub async fn opt_out_confirm(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Query(q): Query<PhoneQuery>,
    staff: Staff,
) -> Response {
    let (t, h, number) = match confirming_number(&console, &staff, id, &q).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let stop = q.stop.unwrap_or(true);
    let url = format!("{}/phones/opt-out", household_href(id));
    let household = title(&t, h.id, h.name.as_deref());
    let (title_key, what_key, detail_key, button_key) = if stop {
        (
            key("households.phones.stop_title"),
            key("households.phones.stop_what"),
            key("households.phones.stop_detail"),
            key("households.phones.stop_button"),
        )
    } else {
        (
            key("households.phones.start_title"),
            key("households.phones.start_what"),
            key("households.phones.start_detail"),
            key("households.phones.start_button"),
        )
    };
    let page = PhonePage {
        l: layout(&console, &t, &staff, Some(&url)),
        id,
        title: t.t(title_key),
        what: t.t_with(what_key, &[("phone", &number), ("household", &household)]),
        details: vec![t.t(detail_key)],
        household,
        action: url,
        fields: vec![("phone", number.clone()), ("stop", stop.to_string())],
        code_entry: false,
        error: None,
        button: t.t(button_key),
        phone: number,
        t,
    };
    page.into_response()
}

/// `POST /console/households/{id}/phones/opt-out`: records STOP or START for one of the
/// household's numbers, 303 to the household.
pub async fn opt_out(
    State(console): State<Console>,
    Path(id): Path<i64>,
    staff: Staff,
    Form(form): Form<PhoneForm>,
) -> Response {
    let t = Tr::new(staff.signed.language);
    if let Some(r) = phones_staff(&console, &t, &staff) {
        return r;
    }
    let (_, number) = match household_number(&console, &t, &staff, id, &form.phone).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(number) = number else {
        flash::set(
            &staff.session,
            Flash::refused(key("households.phones.not_linked"), None),
        )
        .await;
        return Redirect::to(&household_href(id)).into_response();
    };
    let stop = form.stop.unwrap_or(true);
    match timing::db(service::set_opt_out(
        &console.app,
        &staff.actor,
        &number,
        stop,
    ))
    .await
    {
        Ok(_) => {
            let k = if stop {
                key("households.phones.stopped")
            } else {
                key("households.phones.started")
            };
            flash::set(&staff.session, Flash::done(k).with("phone", number)).await;
            Redirect::to(&household_href(id)).into_response()
        }
        Err(e) => refused(&console, &t, &staff, e),
    }
}
