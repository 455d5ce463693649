//! Households and their phones, for every edge (the admin API's `/api/v1/households` and the
//! console's Households pages): list and search, register (with its numbers), read, rename,
//! set the language, move to another community, link and unlink numbers (a migrant
//! member's foreign number, say), and record or clear a number's STOP state; and, for the
//! console, a household's page (pledges, messages in and out, callback requests).
//!
//! Scope: an actor sees only the households of their communities (admins and counsellors
//! all); another community's household (or number) is [`ServiceError::NotFound`], and
//! acting on another community (registering a household there, moving one there) is
//! [`ServiceError::Forbidden`]. Programme officers only read. A number belongs to at most
//! one household. Each change writes its audit row in its own transaction.
//!
//! Linking a number must not tell a coordinator whether a number they cannot see belongs to
//! a household elsewhere (a programme member: migrant families, remittances). So:
//! - the number is already this household's: [`PhoneAdded::Already`]; it is the number of a
//!   household the caller may see: a conflict naming that household (nothing new is learnt);
//! - otherwise — the number is free, *or* it is a household's in a community the caller
//!   cannot see — the answer is the same [`PhoneAdded::CodeSent`] and the same work is done
//!   (the request is stored and an SMS with a random 6-digit code is queued to the number,
//!   in the language of its household if it has one, else the one guessed for a stranger),
//!   so neither the answer nor its timing tells the two apart. [`confirm_phone`] with the
//!   code links it; a conflict if the number is (still, or meanwhile) another household's —
//!   said only once the right code, i.e. the owner's consent, is given, and the household
//!   named only if the caller may see it. A wrong code is invalid and counted; the 5th wrong
//!   one voids the request; a void or expired request (15 minutes) is
//!   [`ServiceError::Gone`] (ask for a new code); with none pending, not found. A new code
//!   for the same household and number replaces the pending one. At most
//!   [`LINK_CODES_PER_COORDINATOR_HOUR`] codes per coordinator and
//!   [`LINK_CODES_PER_PHONE_HOUR`] per number (from all coordinators together) an hour:
//!   [`ServiceError::TooMany`] beyond. Requests are kept (only a salted SHA-256 of the code)
//!   for audit and deleted 7 days after they expired, by the next request for a code.
//! - admins may see every household: they learn nothing from the answer, so they link at
//!   once ([`PhoneAdded::Linked`], or a conflict naming the household), without a code.
//!
//! Known residual risk: registering a household with its numbers still answers "already
//! registered to another household" (without naming it) for a number of a household the
//! coordinator cannot see, and so tells "taken" from "free". Registration is done in person
//! with the family, whose numbers are at hand, and a code round trip for every number would
//! slow down registering a village; instead such answers are counted: a coordinator who got
//! [`TAKEN_ANSWERS_PER_DAY`] of them in 24 hours cannot register households
//! ([`ServiceError::TooMany`], whatever the numbers) until the oldest is 24 hours old, and
//! each is logged as a WARN with the coordinator's id (the number masked). A free number, on
//! the other hand, only ever answers by registering a household, which stays on record.
//!
//! Decisions:
//! - A household keeps at least one number: unlinking its last one is a conflict (link the
//!   new number first, then unlink the old one).
//! - A number that texted STOP gets no code either (the outbox suppresses it): the person
//!   texts START first. The answer is the same.
//! - The STOP state belongs to the number, not to the household: unlinking a number keeps it.
//! - Moving a household leaves its past pledges and receipts with their projects.
//! - Numbers are never logged in full (`Phone`'s `Display` masks them); codes never are.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::{audit, Actor, ServiceError, ServiceResult};
use crate::{
    app::AppState,
    domain::{Language, Phone},
    store::{
        self,
        households::owner_of_phone as owner,
        link_codes::{self, LinkCodeState},
        CommunityId, CoordinatorId, HouseholdId, Violation,
    },
};

pub use crate::store::households::{CallbackRow, HouseholdPledge, HouseholdSums, TimelineItem};

/// Most numbers a household may have (the people of one family, at home and abroad).
pub const MAX_PHONES: usize = 10;
/// Longest household name.
pub const MAX_NAME: usize = 120;
/// Longest search text.
pub const MAX_QUERY: usize = 100;
/// How long a link code is good for.
pub const LINK_CODE_MINUTES: i64 = 15;
/// Wrong codes that void a link request.
pub const LINK_CODE_TRIES: i32 = 5;
/// Link codes one coordinator may have sent in an hour.
pub const LINK_CODES_PER_COORDINATOR_HOUR: i64 = 10;
/// Link codes one number may get in an hour, whoever asks.
pub const LINK_CODES_PER_PHONE_HOUR: i64 = 3;
/// "Registered to another household" answers about households a coordinator cannot see,
/// in 24 hours, after which registering is refused until the oldest is a day old.
pub const TAKEN_ANSWERS_PER_DAY: i64 = 5;
/// Link requests and counted answers are deleted this long after they expired.
const KEEP_DAYS: i64 = 7;
/// The SMS with a link code: placeholders `{code}` and `{community}` (checked by `menus
/// check`: `engine::check::SERVICE_TEXTS`).
pub const LINK_CODE_TEXT: &str = "sms.link_code";

/// One of a household's numbers and whether it texted STOP.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HouseholdPhone {
    /// E.164, e.g. `+992901234567`.
    pub phone: String,
    /// True while the number has opted out of SMS (STOP): it gets no SMS but the STOP confirmation.
    pub opted_out: bool,
    pub opted_out_at: Option<DateTime<Utc>>,
    pub linked_at: DateTime<Utc>,
    /// The IANA zone recorded for the number (quiet hours are read in it); absent: the zone
    /// of the number's country (Russia: Europe/Moscow), or the programme's for +992.
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Household {
    pub id: i64,
    pub community_id: i64,
    pub name: Option<String>,
    /// `tg`, `ru` or `en`; absent: guessed from the number.
    pub language: Option<String>,
    /// coordinator, ussd, sms or demo
    pub registered_via: String,
    /// The code a member abroad texts (`JOIN 123456`) to link their number.
    pub join_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub phones: Vec<HouseholdPhone>,
}

/// The households' numbers, in the order they were linked.
async fn with_phones(
    conn: &mut PgConnection,
    rows: Vec<store::households::Household>,
) -> Result<Vec<Household>, sqlx::Error> {
    let ids: Vec<i64> = rows.iter().map(|h| h.id.0).collect();
    let phones = store::households::phones_of(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|h| Household {
            phones: phones
                .iter()
                .filter(|p| p.household == h.id)
                .map(|p| HouseholdPhone {
                    phone: p.phone.clone(),
                    opted_out: p.opted_out_at.is_some(),
                    opted_out_at: p.opted_out_at,
                    linked_at: p.linked_at,
                    timezone: p.timezone.clone(),
                })
                .collect(),
            id: h.id.0,
            community_id: h.community.0,
            name: h.name,
            language: h.language,
            registered_via: h.registered_via,
            join_code: h.join_code,
            created_at: h.created_at,
        })
        .collect())
}

/// The household if this actor may see it; not found otherwise. With `lock`, the row is
/// locked for the rest of the transaction (changes to its numbers are serialised).
async fn visible(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    lock: bool,
) -> ServiceResult<store::households::Household> {
    let row = store::households::household(conn, HouseholdId(id), lock)
        .await?
        .ok_or(ServiceError::NotFound("household"))?;
    if !actor.may(row.community.0) {
        return Err(ServiceError::NotFound("household"));
    }
    Ok(row)
}

async fn load(conn: &mut PgConnection, actor: &Actor, id: i64) -> ServiceResult<Household> {
    let row = visible(&mut *conn, actor, id, false).await?;
    with_phones(conn, vec![row])
        .await?
        .pop()
        .ok_or(ServiceError::NotFound("household"))
}

/// Forbidden for programme officers, who only read.
fn writes(actor: &Actor) -> ServiceResult<()> {
    if actor.read_only() {
        Err(ServiceError::Forbidden)
    } else {
        Ok(())
    }
}

/// A number in any common spelling, or invalid (`field`).
pub fn parse_phone(field: &'static str, raw: &str) -> ServiceResult<Phone> {
    Phone::parse(raw).map_err(|e| {
        ServiceError::invalid(
            field,
            "households.error.phone",
            format!("{field}: {e} (an E.164 number such as +992901234567, or a Tajik number)"),
        )
    })
}

fn check_name(name: &str) -> ServiceResult<String> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME {
        return Err(ServiceError::invalid(
            "name",
            "households.error.name",
            format!("name must be 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(name.to_owned())
}

fn check_language(raw: &str) -> ServiceResult<Language> {
    raw.parse().map_err(|_| {
        ServiceError::invalid(
            "language",
            "households.error.language",
            "language is tg, ru or en",
        )
    })
}

fn taken(actor: &Actor, phone: &Phone, owner: Option<(i64, i64)>) -> ServiceError {
    match owner {
        Some((id, community)) if actor.may(community) => ServiceError::conflict(
            "households.error.taken_here",
            format!("{} is already registered to household {id}", phone.as_str()),
        ),
        _ => ServiceError::conflict(
            "households.error.taken",
            format!(
                "{} is already registered to another household",
                phone.as_str()
            ),
        ),
    }
}

/// The household `phone` belongs to, if the actor may see it (a console links to it when
/// a number is refused as taken).
pub async fn visible_owner(
    state: &AppState,
    actor: &Actor,
    phone: &Phone,
) -> ServiceResult<Option<i64>> {
    let mut conn = state.pool.acquire().await?;
    Ok(owner(&mut conn, phone)
        .await?
        .filter(|o| actor.may(o.community.0))
        .map(|o| o.household.0))
}

/// Inserts a number for a household; a concurrent insert of the same number is a conflict too.
async fn link(
    conn: &mut PgConnection,
    actor: &Actor,
    phone: &Phone,
    household: i64,
) -> ServiceResult<()> {
    match store::households::link_phone(&mut *conn, phone, HouseholdId(household)).await {
        Ok(()) => {}
        Err(e) if Violation::is_unique(&e) => return Err(taken(actor, phone, None)),
        Err(e) => return Err(e.into()),
    }
    // An SMS conversation started while the number was a stranger ends (as on `JOIN`).
    crate::sms::end_conversation(conn, phone).await?;
    Ok(())
}

/// What a search is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct Search<'a> {
    /// Only this community's households.
    pub community: Option<i64>,
    /// Part of the name (any case), part of a number (3 digits or more), or the join code.
    pub q: Option<&'a str>,
    /// Households after this id only (a console's "show more").
    pub after: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

/// Households this actor may see, with their numbers, oldest first. A community out of
/// scope is forbidden.
pub async fn list(
    state: &AppState,
    actor: &Actor,
    s: &Search<'_>,
) -> ServiceResult<Vec<Household>> {
    if let Some(c) = s.community {
        actor.require(c)?;
    }
    let text = s.q.map(str::trim).filter(|t| !t.is_empty());
    if text.is_some_and(|t| t.chars().count() > MAX_QUERY) {
        return Err(ServiceError::invalid(
            "q",
            "households.error.query",
            format!("q is at most {MAX_QUERY} characters"),
        ));
    }
    // Searched literally: `%` and `_` typed by the coordinator are not wildcards.
    let pattern = text.map(|t| {
        format!(
            "%{}%",
            t.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let digits = text
        .map(|t| t.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|d| d.len() >= 3)
        .map(|d| format!("%{d}%"));
    let mut conn = state.pool.acquire().await?;
    let search = store::households::HouseholdSearch {
        scope: actor.scope(),
        community: s.community.map(CommunityId),
        name_pattern: pattern.as_deref(),
        text,
        digits: digits.as_deref(),
        after: s.after,
        limit: s.limit,
        offset: s.offset,
    };
    let rows = store::households::search(&mut conn, &search).await?;
    Ok(with_phones(&mut conn, rows).await?)
}

/// What was pledged and received by each of `households` (in the caller's scope: the ids
/// come from [`list`]), per currency.
pub async fn sums(state: &AppState, households: &[i64]) -> ServiceResult<Vec<HouseholdSums>> {
    let mut conn = state.pool.acquire().await?;
    Ok(store::households::sums(&mut conn, households).await?)
}

/// A household to register.
#[derive(Debug, Clone, Default)]
pub struct NewHousehold {
    pub community_id: i64,
    /// 1 to 120 characters.
    pub name: Option<String>,
    /// `tg`, `ru` or `en`; absent: guessed from the number when texting.
    pub language: Option<String>,
    /// 1 to 10 numbers, any common spelling; stored as E.164.
    pub phones: Vec<String>,
}

/// Registers a household with its numbers. A number of another household is a conflict
/// (the household named only if the caller may see it); a coordinator who got that answer
/// for households they cannot see 5 times in 24 hours cannot register for a while.
pub async fn register(
    state: &AppState,
    actor: &Actor,
    h: &NewHousehold,
) -> ServiceResult<Household> {
    writes(actor)?;
    actor.require(h.community_id)?;
    let name = h.name.as_deref().map(check_name).transpose()?;
    let language = h.language.as_deref().map(check_language).transpose()?;
    if h.phones.is_empty() || h.phones.len() > MAX_PHONES {
        return Err(ServiceError::invalid(
            "phones",
            "households.error.phones",
            format!("phones is a list of 1 to {MAX_PHONES} numbers"),
        ));
    }
    let mut phones: Vec<Phone> = Vec::with_capacity(h.phones.len());
    for raw in &h.phones {
        let phone = parse_phone("phones", raw)?;
        if phones.contains(&phone) {
            return Err(ServiceError::invalid(
                "phones",
                "households.error.phones_twice",
                format!("phones lists {} twice", phone.as_str()),
            ));
        }
        phones.push(phone);
    }
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    if actor.scope().is_some() {
        // Paused after too many "registered elsewhere" answers, whatever the numbers are
        // (a refusal only for a taken number would answer the question all the same).
        taken_answers_below_cap(&mut tx, actor, now).await?;
    }
    for phone in &phones {
        match owner(&mut tx, phone).await? {
            None => {}
            Some(o) if actor.may(o.community.0) => {
                return Err(taken(actor, phone, Some((o.household.0, o.community.0))))
            }
            Some(_) => {
                // A household this coordinator cannot see: the answer is counted (see the
                // module doc), and nothing else is written.
                count_taken_answer(&mut tx, actor, now).await?;
                tx.commit().await?;
                tracing::warn!(
                    coordinator = actor.coordinator_id,
                    phone = %phone,
                    "registration refused: the number belongs to a household in a community this coordinator cannot see"
                );
                return Err(taken(actor, phone, None));
            }
        }
    }
    let id = store::households::create(
        &mut tx,
        CommunityId(h.community_id),
        name.as_deref(),
        language,
    )
    .await;
    let id = match id {
        Ok(id) => id.0,
        Err(e) if Violation::is_foreign_key(&e) => {
            return Err(ServiceError::invalid(
                "community_id",
                "households.error.community",
                "no such community",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    for phone in &phones {
        link(&mut tx, actor, phone, id).await?;
    }
    let household = load(&mut tx, actor, id).await?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "household.register",
            subject_kind: "household",
            subject_id: id,
            community: Some(CommunityId(h.community_id)),
            before: json!({}),
            after: json!({
                "name": household.name,
                "language": household.language,
                "phones": phones.len(),
            }),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        household = id,
        phones = phones.len(),
        "household registered"
    );
    Ok(household)
}

/// One household with its numbers.
pub async fn get(state: &AppState, actor: &Actor, id: i64) -> ServiceResult<Household> {
    let mut conn = state.pool.acquire().await?;
    load(&mut conn, actor, id).await
}

/// What changes of a household: `Some` fields are set (`Some(None)` clears).
#[derive(Debug, Clone, Default)]
pub struct HouseholdChange {
    pub name: Option<Option<String>>,
    pub language: Option<Option<String>>,
    /// Moves the household: the actor must be allowed on both communities.
    pub community_id: Option<i64>,
}

/// Renames a household, sets its language, or moves it to another community.
pub async fn update(
    state: &AppState,
    actor: &Actor,
    id: i64,
    c: &HouseholdChange,
) -> ServiceResult<Household> {
    writes(actor)?;
    let name = match &c.name {
        Some(Some(n)) => Some(Some(check_name(n)?)),
        Some(None) => Some(None),
        None => None,
    };
    let language = match &c.language {
        Some(Some(l)) => Some(Some(check_language(l)?)),
        Some(None) => Some(None),
        None => None,
    };
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let current = visible(&mut tx, actor, id, true).await?;
    let moved = c.community_id.filter(|&to| to != current.community.0);
    if let Some(to) = moved {
        actor.require(to)?;
    }
    let change = store::households::HouseholdChange {
        name: name.as_ref().map(|n| n.as_deref()),
        language,
        community: moved.map(CommunityId),
    };
    let done = store::households::update(&mut tx, HouseholdId(id), &change).await;
    match done {
        Ok(_) => {}
        Err(e) if Violation::is_foreign_key(&e) => {
            return Err(ServiceError::invalid(
                "community_id",
                "households.error.community",
                "no such community",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    if moved.is_some() {
        // An SMS conversation lists the old community's projects: it starts again.
        crate::sms::end_household_conversations(&mut tx, id).await?;
    }
    let household = load(&mut tx, actor, id).await?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "household.update",
            subject_kind: "household",
            subject_id: id,
            community: Some(CommunityId(household.community_id)),
            before: json!({
                "name": current.name,
                "language": current.language,
                "community": current.community.0,
            }),
            after: json!({
                "name": household.name,
                "language": household.language,
                "community": household.community_id,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    if let Some(Some(lang)) = language {
        // The per-process hint (used when the database cannot answer) follows the record.
        for p in &household.phones {
            state
                .hints
                .remember(&Phone::from_e164_unchecked(p.phone.clone()), lang);
        }
    }
    match moved {
        Some(to) => tracing::info!(
            coordinator = actor.coordinator_id,
            household = id,
            from = current.community.0,
            to,
            "household moved"
        ),
        None => tracing::info!(
            coordinator = actor.coordinator_id,
            household = id,
            "household changed"
        ),
    }
    Ok(household)
}

/// What asking to link a number came to.
#[derive(Debug, Clone)]
pub enum PhoneAdded {
    /// The number is this household's already.
    Already(Household),
    /// Linked at once (an admin).
    Linked(Household),
    /// A code was sent to the number (free, or a household's the caller cannot see).
    CodeSent {
        phone: String,
        expires_at: DateTime<Utc>,
    },
}

/// Links a number (a member's, at home or abroad) to a household; see the module doc.
pub async fn add_phone(
    state: &AppState,
    actor: &Actor,
    id: i64,
    raw: &str,
) -> ServiceResult<PhoneAdded> {
    writes(actor)?;
    let phone = parse_phone("phone", raw)?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let household = visible(&mut tx, actor, id, true).await?;
    let owner = owner(&mut tx, &phone).await?;
    match &owner {
        Some(o) if o.household.0 == id => {
            let household = load(&mut tx, actor, id).await?;
            tx.commit().await?;
            return Ok(PhoneAdded::Already(household));
        }
        Some(o) if actor.may(o.community.0) => {
            return Err(taken(actor, &phone, Some((o.household.0, o.community.0))))
        }
        _ => {}
    }
    // The household's own count: telling it says nothing about the number.
    room_for_a_number(&mut tx, id).await?;
    if actor.scope().is_none() {
        // An admin (or counsellor) may see every household, so the number is free: linked at once.
        link(&mut tx, actor, &phone, id).await?;
        let household = load(&mut tx, actor, id).await?;
        audit_link(&mut tx, actor, now, &household, "household.phone_link").await?;
        tx.commit().await?;
        tracing::info!(coordinator = actor.coordinator_id, household = id, phone = %phone, "number linked");
        return Ok(PhoneAdded::Linked(household));
    }
    // Free, or a household's the caller cannot see: the same work and the same answer.
    let language = owner
        .and_then(|o| o.language)
        .unwrap_or_else(|| state.hints.guess(&phone, state.config.default_language));
    let expires_at =
        send_link_code(state, &mut tx, actor, &household, &phone, language, now).await?;
    tx.commit().await?;
    tracing::info!(coordinator = actor.coordinator_id, household = id, phone = %phone, "link code sent");
    Ok(PhoneAdded::CodeSent {
        phone: phone.as_str().to_owned(),
        expires_at,
    })
}

/// A number linked: its audit row (numbers counted, never written in full).
async fn audit_link(
    tx: &mut PgConnection,
    actor: &Actor,
    now: DateTime<Utc>,
    household: &Household,
    action: &str,
) -> ServiceResult<()> {
    audit::write(
        tx,
        actor,
        now,
        audit::Change {
            action,
            subject_kind: "household",
            subject_id: household.id,
            community: Some(CommunityId(household.community_id)),
            before: json!({}),
            after: json!({ "phones": household.phones.len() }),
        },
    )
    .await?;
    Ok(())
}

/// A conflict when the household has [`MAX_PHONES`] numbers already.
async fn room_for_a_number(conn: &mut PgConnection, household: i64) -> ServiceResult<()> {
    let count = store::households::phone_count(conn, HouseholdId(household)).await?;
    if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_PHONES {
        return Err(ServiceError::conflict(
            "households.error.too_many_phones",
            format!("the household already has {MAX_PHONES} numbers"),
        ));
    }
    Ok(())
}

fn code_hash(salt: &[u8], code: &str) -> Vec<u8> {
    Sha256::new()
        .chain_update(salt)
        .chain_update(code.as_bytes())
        .finalize()
        .to_vec()
}

/// Seconds from `now` until `until` (at least 1): a `Retry-After`.
fn seconds_until(until: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    u64::try_from((until - now).num_seconds())
        .unwrap_or(0)
        .max(1)
}

/// Stores a new link request (replacing a pending one for the same household and number)
/// and queues the SMS with its code, both in `tx`; too many when a limit is reached.
/// Returns when the code expires.
async fn send_link_code(
    state: &AppState,
    tx: &mut PgConnection,
    actor: &Actor,
    household: &store::households::Household,
    phone: &Phone,
    language: Language,
    now: DateTime<Utc>,
) -> ServiceResult<DateTime<Utc>> {
    store::households::lock_link_codes(tx).await?;
    link_codes::forget_expired(tx, now - Duration::days(KEEP_DAYS)).await?;
    // Read after the lock: each request sees the ones committed before it.
    let recent = link_codes::recent(
        tx,
        CoordinatorId(actor.coordinator_id),
        phone,
        now - Duration::hours(1),
    )
    .await?;
    let hour_after =
        |t: Option<DateTime<Utc>>| seconds_until(t.unwrap_or(now) + Duration::hours(1), now);
    if recent.by_coordinator >= LINK_CODES_PER_COORDINATOR_HOUR {
        tracing::warn!(
            coordinator = actor.coordinator_id,
            "link code refused: the coordinator's hourly limit is reached"
        );
        return Err(ServiceError::TooMany {
            rule: "households.error.codes_per_coordinator",
            message: format!(
                "at most {LINK_CODES_PER_COORDINATOR_HOUR} codes an hour may be sent for one coordinator; try again later"
            ),
            retry_after: hour_after(recent.by_coordinator_oldest),
        });
    }
    if recent.to_phone >= LINK_CODES_PER_PHONE_HOUR {
        tracing::warn!(coordinator = actor.coordinator_id, phone = %phone, "link code refused: the number's hourly limit is reached");
        return Err(ServiceError::TooMany {
            rule: "households.error.codes_per_phone",
            message: format!(
                "at most {LINK_CODES_PER_PHONE_HOUR} codes an hour may be sent to one number; try again later"
            ),
            retry_after: hour_after(recent.to_phone_oldest),
        });
    }
    link_codes::replace_pending(tx, household.id, phone, now).await?;
    let code = format!("{:06}", rand::random_range(0..1_000_000u32));
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let expires_at = now + Duration::minutes(LINK_CODE_MINUTES);
    link_codes::create(
        tx,
        &link_codes::NewLinkCode {
            household: household.id,
            phone,
            code_salt: &salt,
            code_sha256: &code_hash(&salt, &code),
            created_by: CoordinatorId(actor.coordinator_id),
            created_at: now,
            expires_at,
        },
    )
    .await?;
    let community = store::communities::name(&mut *tx, household.community)
        .await?
        .get(language)
        .to_owned();
    let vars = crate::engine::Vars::from([
        ("code".to_owned(), code.clone()),
        ("community".to_owned(), community),
    ]);
    state
        .queue_text(
            tx,
            phone,
            language,
            LINK_CODE_TEXT,
            &vars,
            crate::outbox::Kind::LinkCode,
        )
        .await?;
    Ok(expires_at)
}

/// Links a number with the code it received (after [`add_phone`] sent one): `(true,
/// household)` when linked now, `(false, household)` when it was this household's already.
pub async fn confirm_phone(
    state: &AppState,
    actor: &Actor,
    id: i64,
    raw_phone: &str,
    code: &str,
) -> ServiceResult<(bool, Household)> {
    writes(actor)?;
    let phone = parse_phone("phone", raw_phone)?;
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ServiceError::invalid(
            "code",
            "households.error.code_format",
            "code is the 6 digits the number received by SMS",
        ));
    }
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    visible(&mut tx, actor, id, true).await?;
    let current = owner(&mut tx, &phone).await?;
    if current.as_ref().is_some_and(|o| o.household.0 == id) {
        let household = load(&mut tx, actor, id).await?;
        tx.commit().await?;
        return Ok((false, household));
    }
    // The household's row is locked (`visible`): requests for it are checked one at a time.
    let request = link_codes::latest(&mut tx, HouseholdId(id), &phone).await?;
    let link_codes::LinkCode {
        id: request,
        code_salt: salt,
        code_sha256: hash,
        expires_at,
        ..
    } = match request {
        Some(r) if r.state == LinkCodeState::Pending => r,
        Some(r) if r.state == LinkCodeState::Void => {
            return Err(ServiceError::Gone {
                rule: "households.error.code_void",
                message: format!(
                    "{LINK_CODE_TRIES} wrong codes were given for this number: ask for a new code"
                ),
            })
        }
        // none, or the last one was used
        _ => return Err(ServiceError::NotFound("pending code")),
    };
    if expires_at <= now {
        return Err(ServiceError::Gone {
            rule: "households.error.code_expired",
            message: "the code has expired: ask for a new one".into(),
        });
    }
    // compared in time that does not depend on where the hashes differ
    if !bool::from(code_hash(&salt, code).as_slice().ct_eq(&hash)) {
        let tries = link_codes::wrong_try(&mut tx, request, LINK_CODE_TRIES, now).await?;
        tx.commit().await?;
        tracing::info!(coordinator = actor.coordinator_id, household = id, phone = %phone, tries, "wrong link code");
        let left = LINK_CODE_TRIES - tries;
        let message = if left > 0 {
            format!("the code is not right ({left} tries left)")
        } else {
            "the code is not right, and that was the last try: ask for a new code".into()
        };
        return Err(ServiceError::invalid(
            "code",
            "households.error.code_wrong",
            message,
        ));
    }
    if let Some(o) = current {
        // The caller holds the owner's code, i.e. their consent: saying that the number is
        // taken is fine; the household is named only if the caller may see it. The request
        // stays pending: once the number is unlinked there, confirming again links it.
        let whose = if actor.may(o.community.0) {
            format!("household {}", o.household)
        } else {
            "another household".to_owned()
        };
        return Err(ServiceError::conflict(
            "households.error.taken",
            format!(
                "{} is registered to {whose}; it must be unlinked there first",
                phone.as_str()
            ),
        ));
    }
    room_for_a_number(&mut tx, id).await?;
    link(&mut tx, actor, &phone, id).await?;
    link_codes::confirm(&mut tx, request, now).await?;
    let household = load(&mut tx, actor, id).await?;
    audit_link(&mut tx, actor, now, &household, "household.phone_confirm").await?;
    tx.commit().await?;
    tracing::info!(coordinator = actor.coordinator_id, household = id, phone = %phone, "number linked with a code");
    Ok((true, household))
}

/// Too many when this coordinator got [`TAKEN_ANSWERS_PER_DAY`] "registered elsewhere"
/// answers in the last 24 hours.
async fn taken_answers_below_cap(
    conn: &mut PgConnection,
    actor: &Actor,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    let (answers, oldest) = link_codes::taken_answers_since(
        conn,
        CoordinatorId(actor.coordinator_id),
        now - Duration::hours(24),
    )
    .await?;
    if answers >= TAKEN_ANSWERS_PER_DAY {
        tracing::warn!(
            coordinator = actor.coordinator_id,
            answers,
            "registration refused: too many numbers of households in other communities in 24 hours"
        );
        return Err(ServiceError::TooMany {
            rule: "households.error.paused",
            message: format!(
                "{answers} numbers you tried to register in the last 24 hours belong to households in other \
                 communities: registering is paused; try again later or ask an administrator"
            ),
            retry_after: seconds_until(oldest.unwrap_or(now) + Duration::hours(24), now),
        });
    }
    Ok(())
}

/// Counts one "registered elsewhere" answer for this coordinator, checking the cap again
/// under a per-coordinator lock so that concurrent registrations cannot pass it together.
async fn count_taken_answer(
    conn: &mut PgConnection,
    actor: &Actor,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    store::households::lock_taken_answers(&mut *conn, CoordinatorId(actor.coordinator_id)).await?;
    taken_answers_below_cap(&mut *conn, actor, now).await?;
    link_codes::forget_taken_answers(&mut *conn, now - Duration::days(KEEP_DAYS)).await?;
    link_codes::count_taken_answer(conn, CoordinatorId(actor.coordinator_id), now).await?;
    Ok(())
}

/// Unlinks a number from a household. A household keeps at least one number: unlinking the
/// last is a conflict. The number's STOP state stays.
pub async fn remove_phone(
    state: &AppState,
    actor: &Actor,
    id: i64,
    raw: &str,
) -> ServiceResult<Household> {
    writes(actor)?;
    let phone = parse_phone("phone", raw)?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    visible(&mut tx, actor, id, true).await?;
    let numbers = store::households::numbers_of(&mut tx, HouseholdId(id)).await?;
    if !numbers.iter().any(|n| n == phone.as_str()) {
        return Err(ServiceError::NotFound("phone"));
    }
    if numbers.len() == 1 {
        return Err(ServiceError::conflict(
            "households.error.last_phone",
            "this is the household's only number: link another one first",
        ));
    }
    store::households::unlink_phone(&mut tx, &phone, HouseholdId(id)).await?;
    crate::sms::end_conversation(&mut tx, &phone).await?;
    let household = load(&mut tx, actor, id).await?;
    audit_link(&mut tx, actor, now, &household, "household.phone_unlink").await?;
    tx.commit().await?;
    tracing::info!(coordinator = actor.coordinator_id, household = id, phone = %phone, "number unlinked");
    Ok(household)
}

/// A number's STOP state after a change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PhoneOptOut {
    pub phone: String,
    pub household_id: i64,
    pub opted_out: bool,
    pub opted_out_at: Option<DateTime<Utc>>,
}

/// Records or clears a number's STOP state, as the person asked (a number of a household
/// this actor may see; others are not found).
pub async fn set_opt_out(
    state: &AppState,
    actor: &Actor,
    raw: &str,
    opted_out: bool,
) -> ServiceResult<PhoneOptOut> {
    writes(actor)?;
    let phone = parse_phone("phone", raw)?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let (household, community) = match owner(&mut tx, &phone).await? {
        Some(o) if actor.may(o.community.0) => (o.household.0, o.community),
        _ => return Err(ServiceError::NotFound("phone")),
    };
    let before = store::households::opted_out_at(&mut tx, &phone).await?;
    if opted_out {
        store::households::opt_out(&mut tx, &phone, now).await?;
    } else {
        store::households::opt_in(&mut tx, &phone).await?;
    }
    let opted_out_at = store::households::opted_out_at(&mut tx, &phone).await?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "household.opt_out",
            subject_kind: "household",
            subject_id: household,
            community: Some(community),
            before: json!({ "phone": phone.masked(), "opted_out": before.is_some() }),
            after: json!({ "phone": phone.masked(), "opted_out": opted_out_at.is_some() }),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        household,
        phone = %phone,
        opted_out,
        "opt-out set by a coordinator"
    );
    Ok(PhoneOptOut {
        phone: phone.as_str().to_owned(),
        household_id: household,
        opted_out: opted_out_at.is_some(),
        opted_out_at,
    })
}

/// The zone a number's messages are timed in, after a change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PhoneZone {
    pub phone: String,
    pub household_id: i64,
    /// The zone recorded for the number; absent: none (its country's applies).
    pub timezone: Option<String>,
    /// The zone its quiet hours are read in: the recorded one, else its country's (the
    /// capital's for a country of several zones), else the programme's.
    pub zone: String,
}

/// Records the IANA zone a number's messages are timed in (a migrant in Novosibirsk with a
/// +7 number, which would otherwise follow Moscow), or clears it with `None` (a number of
/// a household this actor may change; others are not found). Audited.
pub async fn set_timezone(
    state: &AppState,
    actor: &Actor,
    raw: &str,
    zone: Option<&str>,
) -> ServiceResult<PhoneZone> {
    writes(actor)?;
    let phone = parse_phone("phone", raw)?;
    let zone = match zone.map(str::trim).filter(|z| !z.is_empty()) {
        None => None,
        Some(z) => Some(crate::domain::timezones::parse_zone(z).map_err(|_| {
            ServiceError::invalid(
                "timezone",
                "households.error.timezone",
                "timezone is an IANA time zone name, such as Europe/Moscow",
            )
        })?),
    };
    let name = zone.map(|z| z.name());
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let (household, community) = match owner(&mut tx, &phone).await? {
        Some(o) if actor.may(o.community.0) => (o.household.0, o.community),
        _ => return Err(ServiceError::NotFound("phone")),
    };
    let before = store::households::timezone_of(&mut tx, &phone)
        .await?
        .flatten();
    store::households::set_timezone(&mut tx, &phone, name).await?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "household.timezone",
            subject_kind: "household",
            subject_id: household,
            community: Some(community),
            before: json!({ "phone": phone.masked(), "timezone": before }),
            after: json!({ "phone": phone.masked(), "timezone": name }),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        household,
        phone = %phone,
        timezone = name,
        "a number's time zone set"
    );
    let home = state.settings.quiet_hours.tz;
    Ok(PhoneZone {
        phone: phone.as_str().to_owned(),
        household_id: household,
        timezone: name.map(str::to_owned),
        zone: crate::domain::timezones::zone_of(phone.as_str(), name, home)
            .name()
            .to_owned(),
    })
}

/// Everything a household's page shows.
#[derive(Debug, Clone)]
pub struct HouseholdPage {
    pub household: Household,
    /// The newest pledges (at most [`PAGE_PLEDGES`]); empty for actors without money.
    pub pledges: Vec<HouseholdPledge>,
    /// Messages in and out, newest first; at most `limit` (one more means there is more).
    pub timeline: Vec<TimelineItem>,
    pub callbacks: Vec<CallbackRow>,
}

/// Pledges a household's page shows.
pub const PAGE_PLEDGES: i64 = 50;
/// Callback requests a household's page shows.
pub const PAGE_CALLBACKS: i64 = 20;

/// A household's page: the household (not found out of scope), its pledges (for actors who
/// handle money or read it: not counsellors), its messages in and out from before `before`
/// (an outbox or inbound id cursor: `(at, kind, id)`), newest first, at most `limit + 1`,
/// and its callback requests.
pub async fn page(
    state: &AppState,
    actor: &Actor,
    id: i64,
    before: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> ServiceResult<HouseholdPage> {
    let mut conn = state.pool.acquire().await?;
    let household = load(&mut conn, actor, id).await?;
    let pledges = if actor.role == super::Role::Counsellor {
        Vec::new()
    } else {
        store::households::pledges_of(&mut conn, HouseholdId(id), PAGE_PLEDGES).await?
    };
    let timeline =
        store::households::timeline(&mut conn, HouseholdId(id), before, limit + 1).await?;
    let callbacks =
        store::households::callbacks_of(&mut conn, HouseholdId(id), PAGE_CALLBACKS).await?;
    Ok(HouseholdPage {
        household,
        pledges,
        timeline,
        callbacks,
    })
}

pub use crate::store::communities::Community;

/// The communities this actor may see (a filter's chips, a form's choices), by id.
pub async fn communities(state: &AppState, actor: &Actor) -> ServiceResult<Vec<Community>> {
    Ok(store::communities::list(&state.pool, actor.scope()).await?)
}
