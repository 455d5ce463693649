//! The counsellors' callback queue (issue 11 point 5): households that asked on USSD or by
//! SMS for a counsellor to call them back. Every edge (the admin API, the console) calls
//! these functions with an [`Actor`]:
//! - [`list`]: open requests oldest first (or done ones, latest first), each with its
//!   household, community, language, numbers, when asked, "due by" (two working days,
//!   [`due_by`]) and whether it is overdue, and the number overdue;
//! - [`take`]: a counsellor holds a request (another's Take is refused, "Taken by Dilnoza at
//!   10:02"); the household gets an SMS in its language that a counsellor will call today
//!   from their number (or `HASHAR_COUNSELLOR_NUMBER`);
//! - [`release`]: the holder (or an admin, when the holder is away) puts a taken request
//!   back in the queue;
//! - [`holidays`], [`add_holiday`], [`remove_holiday`]: the public holidays that the
//!   working days skip (admins change them; Idi Ramazon and Idi Qurbon move every year);
//! - [`record`]: the call's outcome (reached, no answer, wrong number, declined), an
//!   optional note (at most 280 characters) and the topics it covered. "No answer" puts
//!   the request back in the queue [`RETRY_HOURS`] later; the [`MAX_TRIES`]th closes it as
//!   unreachable.
//!
//! Who: counsellors and admins. Coordinators and programme officers do not see the queue
//! at all (forbidden): a request is about a family's private worries (legal stay,
//! trafficking, HIV), told to a counsellor, not to the village's coordinator. Each change
//! writes its audit row in its own transaction; times come from the application's clock.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{audit, forms, opt_text, Actor, Once, Role, ServiceError, ServiceResult};
use crate::{
    app::AppState,
    domain::{Language, Phone},
    store::{
        self,
        callbacks::{CallbackItem, Holiday, Which},
        CommunityId,
    },
};

/// Longest note on a call.
pub const NOTE_MAX: usize = 280;
/// Hours before a request with no answer is back in the queue.
pub const RETRY_HOURS: i64 = 2;
/// Tries before a request nobody answers is closed as unreachable.
pub const MAX_TRIES: i16 = 3;
/// Working days a household waits at most for its call.
pub const DUE_WORKING_DAYS: u32 = 2;
/// The household's SMS when its request is taken: placeholder `{number}` (checked by
/// `menus check`: `engine::check::SERVICE_TEXTS`).
pub const TAKEN_TEXT: &str = "sms.callback_taken";
/// Most requests a list returns at once.
pub const MAX_LIMIT: i64 = 500;

/// What a call came to, as a counsellor records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Spoke with the household: done.
    Reached,
    /// Nobody answered: back in the queue in 2 hours, or closed as unreachable at the
    /// third try.
    NoAnswer,
    /// The number is not the household's: done.
    WrongNumber,
    /// The household no longer wants the call: done.
    Declined,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Reached,
        Outcome::NoAnswer,
        Outcome::WrongNumber,
        Outcome::Declined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Reached => "reached",
            Outcome::NoAnswer => "no_answer",
            Outcome::WrongNumber => "wrong_number",
            Outcome::Declined => "declined",
        }
    }

    /// The outcome named `s` (none for anything else).
    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s.trim())
    }
}

/// What a call covered (the outreach figures count households informed per topic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Labour-migration realities and legal stay: patent, registration, entry bans.
    LegalStay,
    /// Human trafficking.
    Trafficking,
    /// HIV/AIDS.
    Hiv,
    /// Remittances and budgeting.
    Remittances,
    Other,
}

impl Topic {
    pub const ALL: [Topic; 5] = [
        Topic::LegalStay,
        Topic::Trafficking,
        Topic::Hiv,
        Topic::Remittances,
        Topic::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::LegalStay => "legal_stay",
            Topic::Trafficking => "trafficking",
            Topic::Hiv => "hiv",
            Topic::Remittances => "remittances",
            Topic::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.as_str() == s.trim())
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Nobody has called yet.
    New,
    /// A counsellor holds it (`taken_by`).
    Taken,
    /// Nobody answered; back in the queue at `next_try_at`.
    NoAnswer,
    /// Finished: see `outcome`.
    Done,
}

/// A member of staff, by id and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StaffRef {
    pub id: i64,
    pub name: String,
}

/// A community's name in the programme's three languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommunityName {
    pub tg: String,
    pub ru: String,
    pub en: String,
}

impl CommunityName {
    pub fn get(&self, language: Language) -> &str {
        match language {
            Language::Tg => &self.tg,
            Language::Ru => &self.ru,
            Language::En => &self.en,
        }
    }
}

/// A callback request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Callback {
    pub id: i64,
    /// The number that asked (E.164): the one to call.
    pub phone: String,
    /// All of the household's numbers (empty for a number in no household).
    pub phones: Vec<String>,
    pub household_id: Option<i64>,
    pub household_name: Option<String>,
    pub community_id: Option<i64>,
    /// The community's name in the three languages (none for a number in no household).
    pub community: Option<CommunityName>,
    /// tg, ru or en: the language to speak.
    pub language: String,
    /// ussd or sms
    pub channel: String,
    pub stage: Stage,
    pub asked_at: DateTime<Utc>,
    /// Two working days after the day it was asked (Monday to Friday in
    /// `HASHAR_TIMEZONE`, public holidays excepted).
    pub due_by: NaiveDate,
    /// Still open after its due day.
    pub overdue: bool,
    pub taken_by: Option<StaffRef>,
    pub taken_at: Option<DateTime<Utc>>,
    /// Calls nobody answered so far.
    pub attempts: i16,
    /// When a request nobody answered is back in the queue.
    pub next_try_at: Option<DateTime<Utc>>,
    /// Whether Take is possible now (open, nobody holds it, not waiting for its next try).
    pub takeable: bool,
    /// reached, no_answer, wrong_number, declined or unreachable
    pub outcome: Option<String>,
    pub note: Option<String>,
    /// legal_stay, trafficking, hiv, remittances, other
    pub topics: Vec<String>,
    pub done_at: Option<DateTime<Utc>>,
    pub done_by: Option<StaffRef>,
}

/// A page of the queue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Queue {
    /// When the figures were read.
    pub as_of: DateTime<Utc>,
    /// Open requests (in the language asked for, or all).
    pub open: i64,
    /// Open requests past their due day.
    pub overdue: i64,
    pub items: Vec<Callback>,
}

/// The public holidays, as the working-day count needs them.
#[derive(Debug, Clone, Default)]
pub struct Holidays {
    every_year: HashSet<(u32, u32)>,
    dated: HashSet<NaiveDate>,
}

impl Holidays {
    pub fn new(rows: &[Holiday]) -> Holidays {
        let mut h = Holidays::default();
        for r in rows {
            let (Ok(month), Ok(day)) = (u32::try_from(r.month), u32::try_from(r.day)) else {
                continue;
            };
            match r.year {
                None => {
                    h.every_year.insert((month, day));
                }
                Some(y) => {
                    if let Some(d) = NaiveDate::from_ymd_opt(i32::from(y), month, day) {
                        h.dated.insert(d);
                    }
                }
            }
        }
        h
    }

    /// Whether `day` is a working day: Monday to Friday and no public holiday.
    pub fn working(&self, day: NaiveDate) -> bool {
        !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
            && !self.every_year.contains(&(day.month(), day.day()))
            && !self.dated.contains(&day)
    }
}

/// The day a request asked on `asked` is due: the second working day after it.
pub fn due_by(asked: NaiveDate, holidays: &Holidays) -> NaiveDate {
    let mut day = asked;
    let mut left = DUE_WORKING_DAYS;
    // at most a few weeks of holidays in a row; the bound keeps a bad table from looping
    for _ in 0..60 {
        day = day.succ_opt().unwrap_or(day);
        if holidays.working(day) {
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
    day
}

/// The first day whose requests are not overdue on `today`: a request asked before it is.
pub fn overdue_before(today: NaiveDate, holidays: &Holidays) -> NaiveDate {
    let mut day = today - Duration::days(60);
    while day < today && due_by(day, holidays) < today {
        day = day.succ_opt().unwrap_or(today);
    }
    day
}

/// Forbidden unless a counsellor or an admin is acting.
pub fn require_counsellor(actor: &Actor) -> ServiceResult<()> {
    if sees_queue(actor) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden)
    }
}

/// Whether the actor works the queue (counsellors and admins).
pub fn sees_queue(actor: &Actor) -> bool {
    matches!(actor.role, Role::Admin | Role::Counsellor)
}

/// Which requests [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct ListQuery<'a> {
    /// Done ones (latest first) instead of open ones (oldest first).
    pub done: bool,
    /// tg, ru or en: only requests in that language.
    pub language: Option<&'a str>,
    /// 1 to [`MAX_LIMIT`] (default 100).
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

fn language(value: Option<&str>) -> ServiceResult<Option<&'static str>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<Language>().map(|l| Some(l.code())).map_err(|_| {
            ServiceError::invalid(
                "language",
                "callbacks.language_invalid",
                "language is tg, ru or en",
            )
        }),
    }
}

/// The queue (see [`ListQuery`]), with the number of open and overdue requests.
pub async fn list(state: &AppState, actor: &Actor, q: ListQuery<'_>) -> ServiceResult<Queue> {
    require_counsellor(actor)?;
    let language = language(q.language)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ServiceError::invalid(
            "limit",
            "callbacks.limit_invalid",
            format!("limit is 1 to {MAX_LIMIT}"),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ServiceError::invalid(
            "offset",
            "callbacks.limit_invalid",
            "offset is 0 or more",
        ));
    }
    let now = state.clock.now();
    let tz = state.config.timezone;
    let mut conn = state.pool.acquire().await?;
    let holidays = Holidays::new(&store::callbacks::holidays(&mut conn).await?);
    let today = now.with_timezone(&tz).date_naive();
    let cutoff = local_midnight(tz, overdue_before(today, &holidays));
    let (open, overdue) = store::callbacks::counts(&mut conn, language, cutoff).await?;
    let which = if q.done { Which::Done } else { Which::Open };
    let rows = store::callbacks::list(&mut conn, which, language, None, limit, offset).await?;
    let items = rows
        .into_iter()
        .map(|r| view(r, now, tz, &holidays))
        .collect();
    Ok(Queue {
        as_of: now,
        open,
        overdue,
        items,
    })
}

/// One request.
pub async fn get(state: &AppState, actor: &Actor, id: i64) -> ServiceResult<Callback> {
    require_counsellor(actor)?;
    let mut conn = state.pool.acquire().await?;
    one(state, &mut conn, id).await
}

async fn one(state: &AppState, conn: &mut sqlx::PgConnection, id: i64) -> ServiceResult<Callback> {
    let holidays = Holidays::new(&store::callbacks::holidays(conn).await?);
    let row = store::callbacks::list(conn, Which::Open, None, Some(id), 1, 0)
        .await?
        .into_iter()
        .next()
        .ok_or(ServiceError::NotFound("callback request"))?;
    Ok(view(
        row,
        state.clock.now(),
        state.config.timezone,
        &holidays,
    ))
}

fn local_midnight(tz: chrono_tz::Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&midnight)
        .earliest()
        .map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc))
}

fn view(r: CallbackItem, now: DateTime<Utc>, tz: chrono_tz::Tz, holidays: &Holidays) -> Callback {
    let due = due_by(r.created_at.with_timezone(&tz).date_naive(), holidays);
    let open = r.status == "open";
    let stage = if !open {
        Stage::Done
    } else if r.taken_by.is_some() {
        Stage::Taken
    } else if r.outcome.as_deref() == Some("no_answer") {
        Stage::NoAnswer
    } else {
        Stage::New
    };
    let takeable = open && r.taken_by.is_none() && r.next_try_at.is_none_or(|at| at <= now);
    Callback {
        id: r.id,
        phone: r.phone,
        phones: r.phones,
        household_id: r.household_id,
        household_name: r.household_name,
        community_id: r.community_id,
        community: r.community.map(|c| CommunityName {
            tg: c.tg,
            ru: c.ru,
            en: c.en,
        }),
        language: r.language,
        channel: r.channel,
        stage,
        asked_at: r.created_at,
        due_by: due,
        overdue: open && now.with_timezone(&tz).date_naive() > due,
        taken_by: r.taken_by.map(|id| StaffRef {
            id,
            name: r.taken_by_name.unwrap_or_default(),
        }),
        taken_at: r.taken_at,
        attempts: r.attempts,
        next_try_at: r.next_try_at,
        takeable,
        outcome: r.outcome,
        note: r.note,
        topics: r.topics,
        done_at: r.done_at,
        done_by: r.done_by.map(|id| StaffRef {
            id,
            name: r.done_by_name.unwrap_or_default(),
        }),
    }
}

/// A request another counsellor holds: the refusal names them and the time they took it.
fn taken_by_other(name: &str, at: Option<DateTime<Utc>>, tz: chrono_tz::Tz) -> ServiceError {
    let time = at
        .map(|t| t.with_timezone(&tz).format("%H:%M").to_string())
        .unwrap_or_default();
    ServiceError::conflict("callbacks.taken", format!("Taken by {name} at {time}"))
}

/// The number the household is told the call comes from: `HASHAR_COUNSELLOR_NUMBER` if
/// set, else the counsellor's own.
fn caller_number(state: &AppState, own: &str) -> String {
    state
        .config
        .counsellor_number
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(own)
        .to_owned()
}

/// The SMS the household of request `c` would get if the acting counsellor took it now, in
/// the request's language (what the console's confirm page shows before Take).
pub async fn taken_sms(state: &AppState, actor: &Actor, c: &Callback) -> ServiceResult<String> {
    require_counsellor(actor)?;
    let mut conn = state.api_pool.acquire().await?;
    let (_, own) = store::callbacks::staff_contact(&mut conn, actor.id())
        .await?
        .ok_or(ServiceError::Forbidden)?;
    let lang = c.language.parse::<Language>().unwrap_or(Language::Tg);
    let number = caller_number(state, &own);
    Ok(crate::engine::menu::fill(
        state.menus.text(lang, TAKEN_TEXT),
        |n| (n == "number").then(|| number.clone()),
    ))
}

/// Request `id`, locked for a change until the transaction ends; a done one is refused (a
/// done request never changes).
async fn lock_open(
    conn: &mut sqlx::PgConnection,
    id: i64,
) -> ServiceResult<store::callbacks::Locked> {
    let c = store::callbacks::lock(conn, id)
        .await?
        .ok_or(ServiceError::NotFound("callback request"))?;
    if c.status != "open" {
        return Err(ServiceError::conflict(
            "callbacks.done",
            "this request is done already",
        ));
    }
    Ok(c)
}

/// A change that changes nothing (taking one's own request again, releasing one nobody
/// holds): the request as it is, kept for the form key, and the transaction ended.
async fn unchanged(
    state: &AppState,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    id: i64,
    once: Once<'_>,
) -> ServiceResult<Callback> {
    let current = one(state, &mut tx, id).await?;
    forms::keep(&mut tx, once, &current).await?;
    tx.commit().await?;
    Ok(current)
}

/// Takes request `id` for the acting counsellor and queues the household's SMS ("a
/// counsellor will call you today from …"). Taking one's own request again changes
/// nothing (and sends nothing).
pub async fn take(
    state: &AppState,
    actor: &Actor,
    id: i64,
    once: Once<'_>,
) -> ServiceResult<Callback> {
    require_counsellor(actor)?;
    let now = state.clock.now();
    let tz = state.config.timezone;
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "callback.take", now).await? {
        return Ok(first);
    }
    let c = lock_open(&mut tx, id).await?;
    match c.taken_by {
        Some(by) if by == actor.coordinator_id => return unchanged(state, tx, id, once).await,
        Some(_) => {
            return Err(taken_by_other(
                c.taken_by_name.as_deref().unwrap_or(""),
                c.taken_at,
                tz,
            ))
        }
        None => {}
    }
    if let Some(at) = c.next_try_at.filter(|at| *at > now) {
        return Err(ServiceError::conflict(
            "callbacks.not_yet",
            format!(
                "nobody answered; the request is back in the queue at {}",
                at.with_timezone(&tz).format("%H:%M")
            ),
        ));
    }
    store::callbacks::take(&mut tx, id, actor.id(), now).await?;
    let (_, own) = store::callbacks::staff_contact(&mut tx, actor.id())
        .await?
        .ok_or(ServiceError::Forbidden)?;
    let number = caller_number(state, &own);
    let lang = c.language.parse::<Language>().unwrap_or(Language::Tg);
    let to = Phone::from_e164_unchecked(c.phone.clone());
    let mut vars = crate::engine::Vars::new();
    vars.insert("number".into(), number);
    state
        .queue_text(
            &mut tx,
            &to,
            lang,
            TAKEN_TEXT,
            &vars,
            crate::outbox::Kind::Callback,
        )
        .await?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "callback.take",
            subject_kind: "callback_request",
            subject_id: id,
            community: c.community_id.map(CommunityId),
            before: json!({ "taken_by": null, "attempts": c.attempts }),
            after: json!({ "taken_by": actor.coordinator_id }),
        },
    )
    .await?;
    let taken = one(state, &mut tx, id).await?;
    forms::keep(&mut tx, once, &taken).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        callback = id,
        "callback request taken"
    );
    Ok(taken)
}

/// Puts request `id` back in the queue, held by nobody: the counsellor who holds it (they
/// cannot call today after all) or an admin (the holder is away). The household was told a
/// counsellor would call today; it is not told again (the next Take tells it). Releasing a
/// request nobody holds changes nothing; another counsellor's is refused ("Taken by …").
pub async fn release(
    state: &AppState,
    actor: &Actor,
    id: i64,
    once: Once<'_>,
) -> ServiceResult<Callback> {
    require_counsellor(actor)?;
    let now = state.clock.now();
    let tz = state.config.timezone;
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "callback.release", now).await? {
        return Ok(first);
    }
    let c = lock_open(&mut tx, id).await?;
    let Some(holder) = c.taken_by else {
        return unchanged(state, tx, id, once).await;
    };
    if holder != actor.coordinator_id && actor.role != Role::Admin {
        return Err(taken_by_other(
            c.taken_by_name.as_deref().unwrap_or(""),
            c.taken_at,
            tz,
        ));
    }
    store::callbacks::release(&mut tx, id).await?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "callback.release",
            subject_kind: "callback_request",
            subject_id: id,
            community: c.community_id.map(CommunityId),
            before: json!({ "taken_by": holder, "taken_at": c.taken_at }),
            after: json!({ "taken_by": null }),
        },
    )
    .await?;
    let released = one(state, &mut tx, id).await?;
    forms::keep(&mut tx, once, &released).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        callback = id,
        holder,
        "callback request released"
    );
    Ok(released)
}

/// A call's outcome as a counsellor records it.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub outcome: &'a str,
    pub note: Option<&'a str>,
    pub topics: &'a [String],
}

/// Records the outcome of the call on request `id`, which the acting counsellor holds:
/// reached, wrong number or declined finish it; no answer puts it back in the queue
/// [`RETRY_HOURS`] later, or finishes it as unreachable at the [`MAX_TRIES`]th.
pub async fn record(
    state: &AppState,
    actor: &Actor,
    id: i64,
    r: Record<'_>,
    once: Once<'_>,
) -> ServiceResult<Callback> {
    require_counsellor(actor)?;
    let outcome = Outcome::parse(r.outcome).ok_or_else(|| {
        ServiceError::invalid(
            "outcome",
            "callbacks.outcome_invalid",
            "outcome is reached, no_answer, wrong_number or declined",
        )
    })?;
    let note = opt_text("note", r.note, NOTE_MAX).map_err(|_| {
        ServiceError::invalid(
            "note",
            "callbacks.note_too_long",
            format!("note is at most {NOTE_MAX} characters"),
        )
    })?;
    let mut topics: Vec<String> = Vec::new();
    for t in r.topics {
        let topic = Topic::parse(t).ok_or_else(|| {
            ServiceError::invalid(
                "topics",
                "callbacks.topic_invalid",
                "topics are legal_stay, trafficking, hiv, remittances or other",
            )
        })?;
        if !topics.iter().any(|x| x == topic.as_str()) {
            topics.push(topic.as_str().to_owned());
        }
    }
    let now = state.clock.now();
    let tz = state.config.timezone;
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "callback.outcome", now).await? {
        return Ok(first);
    }
    let c = lock_open(&mut tx, id).await?;
    match c.taken_by {
        Some(by) if by == actor.coordinator_id => {}
        Some(_) => {
            return Err(taken_by_other(
                c.taken_by_name.as_deref().unwrap_or(""),
                c.taken_at,
                tz,
            ))
        }
        None => {
            return Err(ServiceError::conflict(
                "callbacks.take_first",
                "take the request before recording a call",
            ))
        }
    }
    let (status, stored, attempts, next_try_at) = match outcome {
        Outcome::NoAnswer if c.attempts + 1 >= MAX_TRIES => {
            ("done", "unreachable", MAX_TRIES, None)
        }
        Outcome::NoAnswer => (
            "open",
            "no_answer",
            c.attempts + 1,
            Some(now + Duration::hours(RETRY_HOURS)),
        ),
        o => ("done", o.as_str(), c.attempts, None),
    };
    let done = status == "done";
    store::callbacks::record_outcome(
        &mut tx,
        id,
        &store::callbacks::OutcomeWrite {
            status,
            outcome: stored,
            attempts,
            next_try_at,
            note,
            topics: &topics,
            done_at: done.then_some(now),
            done_by: done.then(|| actor.id()),
        },
    )
    .await?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "callback.outcome",
            subject_kind: "callback_request",
            subject_id: id,
            community: c.community_id.map(CommunityId),
            before: json!({ "status": c.status, "attempts": c.attempts, "outcome": c.outcome }),
            // the note stays on the request (counsellors and admins only), not in the log
            after: json!({
                "status": status,
                "outcome": stored,
                "attempts": attempts,
                "topics": topics,
                "note": note.is_some(),
            }),
        },
    )
    .await?;
    let recorded = one(state, &mut tx, id).await?;
    forms::keep(&mut tx, once, &recorded).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        callback = id,
        outcome = stored,
        "callback outcome recorded"
    );
    Ok(recorded)
}

/// Days the coverage counts requests over.
pub const COVERAGE_DAYS: i64 = 30;

/// The queue's reach per community over the last [`COVERAGE_DAYS`] days (counsellors and
/// admins): households, those with a number abroad, requests, done, median wait.
pub async fn coverage(
    state: &AppState,
    actor: &Actor,
) -> ServiceResult<Vec<store::callbacks::CoverageRow>> {
    require_counsellor(actor)?;
    let since = state.clock.now() - Duration::days(COVERAGE_DAYS);
    let mut conn = state.api_pool.acquire().await?;
    Ok(store::callbacks::coverage(&mut conn, since).await?)
}

/// Longest name of a public holiday (`public_holidays.name`).
pub const HOLIDAY_NAME_MAX: usize = 80;

/// A public holiday: no working day when a request's "due by" is counted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PublicHoliday {
    pub id: i64,
    /// Every year on `month`/`day` (the fixed holidays of the Labour Code), or only in
    /// `year` (Idi Ramazon, Idi Qurbon, a day off moved from a weekend).
    pub every_year: bool,
    pub year: Option<i16>,
    pub month: i16,
    pub day: i16,
    pub name: String,
}

impl From<store::callbacks::HolidayRow> for PublicHoliday {
    fn from(r: store::callbacks::HolidayRow) -> Self {
        PublicHoliday {
            id: r.id,
            every_year: r.year.is_none(),
            year: r.year,
            month: r.month,
            day: r.day,
            name: r.name,
        }
    }
}

/// A public holiday to add: on `date`, or every year on its month and day.
#[derive(Debug, Clone, Copy)]
pub struct NewHoliday<'a> {
    pub date: NaiveDate,
    pub every_year: bool,
    pub name: &'a str,
}

/// Every public holiday, the every-year ones first (counsellors and admins: the queue's
/// calendar).
pub async fn holidays(state: &AppState, actor: &Actor) -> ServiceResult<Vec<PublicHoliday>> {
    require_counsellor(actor)?;
    let mut conn = state.api_pool.acquire().await?;
    let rows = store::callbacks::holiday_rows(&mut conn).await?;
    Ok(rows.into_iter().map(PublicHoliday::from).collect())
}

/// Adds a public holiday (admins): a name of 1 to 80 characters, a date from 2020 to 2100
/// (its year ignored when `every_year`). A date that is a holiday already is refused.
/// Audited.
pub async fn add_holiday(
    state: &AppState,
    actor: &Actor,
    h: NewHoliday<'_>,
    once: Once<'_>,
) -> ServiceResult<PublicHoliday> {
    actor.require_admin()?;
    let name = h.name.trim();
    if name.is_empty()
        || name.chars().count() > HOLIDAY_NAME_MAX
        || name.chars().any(char::is_control)
    {
        return Err(ServiceError::invalid(
            "name",
            "holidays.name_invalid",
            format!("name is 1 to {HOLIDAY_NAME_MAX} characters"),
        ));
    }
    let year = i16::try_from(h.date.year())
        .ok()
        .filter(|y| (2020..=2100).contains(y))
        .ok_or_else(|| {
            ServiceError::invalid(
                "date",
                "holidays.date_invalid",
                "date is a day from 2020 to 2100",
            )
        })?;
    // month 1..=12 and day 1..=31 always fit
    let (month, day) = (h.date.month() as i16, h.date.day() as i16);
    let now = state.clock.now();
    let mut tx = state.api_pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "holiday.add", now).await? {
        return Ok(first);
    }
    let year = (!h.every_year).then_some(year);
    let added = store::callbacks::add_holiday(&mut tx, year, month, day, name)
        .await?
        .ok_or_else(|| {
            ServiceError::conflict("holidays.exists", "that date is a public holiday already")
        })?;
    let added = PublicHoliday::from(added);
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "holiday.add",
            subject_kind: "public_holiday",
            subject_id: added.id,
            community: None,
            before: serde_json::Value::Null,
            after: json!(added),
        },
    )
    .await?;
    forms::keep(&mut tx, once, &added).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        holiday = added.id,
        "public holiday added"
    );
    Ok(added)
}

/// Removes public holiday `id` (admins): the days it made no working day count again.
/// Audited, with the row as it was.
pub async fn remove_holiday(
    state: &AppState,
    actor: &Actor,
    id: i64,
    once: Once<'_>,
) -> ServiceResult<PublicHoliday> {
    actor.require_admin()?;
    let now = state.clock.now();
    let mut tx = state.api_pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "holiday.remove", now).await? {
        return Ok(first);
    }
    let removed = store::callbacks::remove_holiday(&mut tx, id)
        .await?
        .map(PublicHoliday::from)
        .ok_or(ServiceError::NotFound("public holiday"))?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "holiday.remove",
            subject_kind: "public_holiday",
            subject_id: removed.id,
            community: None,
            before: json!(removed),
            after: serde_json::Value::Null,
        },
    )
    .await?;
    forms::keep(&mut tx, once, &removed).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        holiday = id,
        "public holiday removed"
    );
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("a date")
    }

    fn tajik() -> Holidays {
        Holidays::new(&[
            Holiday {
                year: None,
                month: 3,
                day: 21,
            },
            Holiday {
                year: None,
                month: 3,
                day: 23,
            },
            Holiday {
                year: None,
                month: 3,
                day: 24,
            },
            Holiday {
                year: Some(2027),
                month: 3,
                day: 25,
            },
        ])
    }

    #[test]
    fn two_working_days_skip_weekends_and_holidays() {
        let h = Holidays::default();
        // Monday → Wednesday; Thursday → Monday; Friday → Tuesday; Saturday → Tuesday
        assert_eq!(due_by(d(2026, 11, 30), &h), d(2026, 12, 2));
        assert_eq!(due_by(d(2026, 12, 3), &h), d(2026, 12, 7));
        assert_eq!(due_by(d(2026, 12, 4), &h), d(2026, 12, 8));
        assert_eq!(due_by(d(2026, 11, 28), &h), d(2026, 12, 1));
        // Friday 19 March 2027: Monday 22 is a working day, 23-24 Navruz, 25 a moved day off
        assert_eq!(due_by(d(2027, 3, 19), &tajik()), d(2027, 3, 26));
        // the same dates in 2028 have no moved day off: 21 (Tue) is Navruz, 22 works
        assert_eq!(due_by(d(2028, 3, 20), &tajik()), d(2028, 3, 27));
    }

    #[test]
    fn overdue_means_asked_before_the_cutoff() {
        let h = Holidays::default();
        // Thursday 3 Dec: Monday's (due Wed) is overdue, Tuesday's (due Thu) is not
        let cut = overdue_before(d(2026, 12, 3), &h);
        assert_eq!(cut, d(2026, 12, 1));
        for asked in [d(2026, 11, 27), d(2026, 11, 30)] {
            assert!(due_by(asked, &h) < d(2026, 12, 3));
        }
        assert!(due_by(cut, &h) >= d(2026, 12, 3));
        // Monday 7 Dec: Thursday's is due that day, Wednesday's (due Fri) is overdue
        assert_eq!(overdue_before(d(2026, 12, 7), &h), d(2026, 12, 3));
    }

    #[test]
    fn outcomes_and_topics_parse_only_their_names() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("unreachable"), None);
        for t in Topic::ALL {
            assert_eq!(Topic::parse(t.as_str()), Some(t));
        }
        assert_eq!(Topic::parse("HIV"), None);
    }
}
