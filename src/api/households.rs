//! Households and their phones: list and search, register (with its numbers), read, rename,
//! set the language, move to another community, link and unlink numbers (a migrant member's
//! foreign number, say), and record or clear a number's STOP state.
//!
//! Scope: a coordinator sees only the households of their communities; another community's
//! household (or number) answers 404, and acting on another community (registering a
//! household there, moving one there) answers 403. A number belongs to at most one
//! household.
//!
//! Linking a number (`POST /households/{id}/phones`) must not tell a coordinator whether a
//! number they cannot see belongs to a household elsewhere (a programme member: migrant
//! families, remittances). So:
//! - the number is already this household's: 200; it is the number of a household the
//!   caller may see: 409 naming that household (nothing new is learnt);
//! - otherwise — the number is free, *or* it is a household's in a community the caller
//!   cannot see — the answer is the same 202 `{"status": "code_sent", "phone", "expires_at"}`
//!   and the same work is done (the request is stored and an SMS with a random 6-digit code
//!   is queued to the number, in the language of its household if it has one, else the one
//!   guessed for a stranger), so neither the answer nor its timing tells the two apart.
//!   `POST /households/{id}/phones/confirm` with `{"phone", "code"}` links it: 201; 409 if
//!   the number is (still, or meanwhile) another household's — said only once the right
//!   code, i.e. the owner's consent, is given, and the household named only if the caller
//!   may see it. A wrong code is 422 and counted; the 5th wrong one voids the request; a
//!   void or expired request (15 minutes) is 410 (ask for a new code); with none pending,
//!   404. A new code for the same household and number replaces the pending one. At most
//!   [`LINK_CODES_PER_COORDINATOR_HOUR`] codes per coordinator and
//!   [`LINK_CODES_PER_PHONE_HOUR`] per number (from all coordinators together) an hour:
//!   429 beyond. Requests are kept (only a salted SHA-256 of the code) for audit and
//!   deleted 7 days after they expired, by the next request for a code.
//! - admins may see every household: they learn nothing from the answer, so they link at
//!   once (201, or 409 naming the household), without a code.
//!
//! Known residual risk: registering a household (`POST /households` with its numbers) still
//! answers 409 "already registered to another household" (without naming it) for a number
//! of a household the coordinator cannot see, and so tells "taken" from "free". Registration
//! is done in person with the family, whose numbers are at hand, and a code round trip for
//! every number would slow down registering a village; instead such answers are counted:
//! a coordinator who got [`TAKEN_ANSWERS_PER_DAY`] of them in 24 hours cannot register
//! households (429, whatever the numbers) until the oldest is 24 hours old, and each is
//! logged as a WARN with the coordinator's id (the number masked). A free number, on the
//! other hand, only ever answers by registering a household, which stays on record.
//!
//! Decisions:
//! - A household keeps at least one number: unlinking its last one answers 409 (link the new
//!   number first, then unlink the old one). A household without a number could not pledge,
//!   get a receipt or a tip, and nobody could find it by phone.
//! - Linking a number already on the same household is a no-op answered 200.
//! - A number that texted STOP gets no code either (the outbox suppresses it): the person
//!   texts START first. The answer is the same 202.
//! - The STOP state belongs to the number, not to the household: unlinking a number keeps
//!   it, and `PUT /api/v1/phones/{phone}/opt-out` records what the person asked for (in
//!   person or by phone) exactly as texting STOP or START would.
//! - Moving a household leaves its past pledges and receipts with their projects: a pledge
//!   is a promise to a project, and the old community's coordinator still records its money.
//! - Numbers are never logged in full (`Phone`'s `Display` masks them); codes never are.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};

use super::{
    auth::Auth,
    error::{ApiError, ApiResult, Body, ErrorBody, Params, Segments},
};
use crate::{
    app::AppState,
    domain::{Language, Phone},
};

/// Most numbers a household may have (the people of one family, at home and abroad).
pub const MAX_PHONES: usize = 10;
const MAX_NAME: usize = 120;
const MAX_QUERY: usize = 100;

/// One of a household's numbers and whether it texted STOP.
#[derive(Debug, Serialize, ToSchema)]
pub struct HouseholdPhone {
    /// E.164, e.g. `+992901234567`.
    pub phone: String,
    /// True while the number has opted out of SMS (STOP): it gets no SMS but the STOP confirmation.
    pub opted_out: bool,
    pub opted_out_at: Option<DateTime<Utc>>,
    pub linked_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
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

/// The household if this coordinator may see it; 404 otherwise. With `lock`, the row is
/// locked for the rest of the transaction (changes to its numbers are serialised).
async fn visible(
    conn: &mut PgConnection,
    auth: &Auth,
    id: i64,
    lock: bool,
) -> ApiResult<store::households::Household> {
    let row = store::households::household(conn, HouseholdId(id), lock)
        .await?
        .ok_or(ApiError::NotFound("household"))?;
    if !auth.may(row.community.0) {
        return Err(ApiError::NotFound("household"));
    }
    Ok(row)
}

async fn load(conn: &mut PgConnection, auth: &Auth, id: i64) -> ApiResult<Household> {
    let row = visible(&mut *conn, auth, id, false).await?;
    with_phones(conn, vec![row])
        .await?
        .pop()
        .ok_or(ApiError::NotFound("household"))
}

fn parse_phone(field: &'static str, raw: &str) -> ApiResult<Phone> {
    Phone::parse(raw).map_err(|e| {
        ApiError::invalid(
            field,
            format!("{field}: {e} (an E.164 number such as +992901234567, or a Tajik number)"),
        )
    })
}

fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME {
        return Err(ApiError::invalid(
            "name",
            format!("name must be 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(name.to_owned())
}

fn check_language(raw: &str) -> ApiResult<Language> {
    raw.parse()
        .map_err(|_| ApiError::invalid("language", "language is tg, ru or en"))
}

use crate::store::{
    self,
    households::owner_of_phone as owner,
    link_codes::{self, LinkCodeState},
    CommunityId, CoordinatorId, HouseholdId, Violation,
};

fn taken(auth: &Auth, phone: &Phone, owner: Option<(i64, i64)>) -> ApiError {
    match owner {
        Some((id, community)) if auth.may(community) => ApiError::Conflict(format!(
            "{} is already registered to household {id}",
            phone.as_str()
        )),
        _ => ApiError::Conflict(format!(
            "{} is already registered to another household",
            phone.as_str()
        )),
    }
}

/// Inserts a number for a household; a concurrent insert of the same number is a 409 too.
async fn link(
    conn: &mut PgConnection,
    auth: &Auth,
    phone: &Phone,
    household: i64,
) -> ApiResult<()> {
    match store::households::link_phone(&mut *conn, phone, HouseholdId(household)).await {
        Ok(()) => {}
        Err(e) if Violation::is_unique(&e) => return Err(taken(auth, phone, None)),
        Err(e) => return Err(e.into()),
    }
    // An SMS conversation started while the number was a stranger ends (as on `JOIN`).
    crate::sms::end_conversation(conn, phone).await?;
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HouseholdQuery {
    /// Only this community's households.
    pub community: Option<i64>,
    /// Part of the name (any case), part of a number (digits), or the join code.
    pub q: Option<String>,
    /// At most 1000 (default 100).
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Households this coordinator may see, with their numbers, oldest first.
#[utoipa::path(get, path = "/api/v1/households", tag = "households", params(HouseholdQuery),
    responses((status = 200, body = [Household]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<HouseholdQuery>,
) -> ApiResult<Json<Vec<Household>>> {
    if let Some(c) = q.community {
        auth.require(c)?;
    }
    let (limit, offset) = super::error::paging(q.limit, q.offset)?;
    let text =
        q.q.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
    if text.as_ref().is_some_and(|t| t.chars().count() > MAX_QUERY) {
        return Err(ApiError::invalid(
            "q",
            format!("q is at most {MAX_QUERY} characters"),
        ));
    }
    // Searched literally: `%` and `_` typed by the coordinator are not wildcards.
    let pattern = text.as_ref().map(|t| {
        format!(
            "%{}%",
            t.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let digits = text
        .as_ref()
        .map(|t| t.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|d| d.len() >= 3)
        .map(|d| format!("%{d}%"));
    let mut conn = state.pool.acquire().await?;
    let search = store::households::HouseholdSearch {
        scope: auth.scope(),
        community: q.community.map(CommunityId),
        name_pattern: pattern.as_deref(),
        text: text.as_deref(),
        digits: digits.as_deref(),
        limit,
        offset,
    };
    let rows = store::households::search(&mut conn, &search).await?;
    Ok(Json(with_phones(&mut conn, rows).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHousehold {
    pub community_id: i64,
    /// 1 to 120 characters.
    pub name: Option<String>,
    /// `tg`, `ru` or `en`; absent: guessed from the number when texting.
    pub language: Option<String>,
    /// 1 to 10 numbers, any common spelling (`+992 90 123 4567`, `901234567`,
    /// `+79161234567`); stored as E.164.
    pub phones: Vec<String>,
}

/// Registers a household with its numbers. A number of another household answers 409 (the
/// household named only if the caller may see it); a coordinator who got that answer for
/// households they cannot see 5 times in 24 hours cannot register for a while (429).
#[utoipa::path(post, path = "/api/v1/households", tag = "households", request_body = NewHousehold,
    responses((status = 201, body = Household), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Body(h): Body<NewHousehold>,
) -> ApiResult<(StatusCode, Json<Household>)> {
    auth.require(h.community_id)?;
    let name = h.name.as_deref().map(check_name).transpose()?;
    let language = h.language.as_deref().map(check_language).transpose()?;
    if h.phones.is_empty() || h.phones.len() > MAX_PHONES {
        return Err(ApiError::invalid(
            "phones",
            format!("phones is a list of 1 to {MAX_PHONES} numbers"),
        ));
    }
    let mut phones: Vec<Phone> = Vec::with_capacity(h.phones.len());
    for raw in &h.phones {
        let phone = parse_phone("phones", raw)?;
        if phones.contains(&phone) {
            return Err(ApiError::invalid(
                "phones",
                format!("phones lists {} twice", phone.as_str()),
            ));
        }
        phones.push(phone);
    }
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    if auth.scope().is_some() {
        // Paused after too many "registered elsewhere" answers, whatever the numbers are
        // (a refusal only for a taken number would answer the question all the same).
        taken_answers_below_cap(&mut tx, &auth, now).await?;
    }
    for phone in &phones {
        match owner(&mut tx, phone).await? {
            None => {}
            Some(o) if auth.may(o.community.0) => {
                return Err(taken(&auth, phone, Some((o.household.0, o.community.0))))
            }
            Some(_) => {
                // A household this coordinator cannot see: the answer is counted (see the
                // module doc), and nothing else is written.
                count_taken_answer(&mut tx, &auth, now).await?;
                tx.commit().await?;
                tracing::warn!(
                    coordinator = auth.coordinator_id,
                    phone = %phone,
                    "registration refused: the number belongs to a household in a community this coordinator cannot see"
                );
                return Err(taken(&auth, phone, None));
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
        Err(e) if crate::store::Violation::is_foreign_key(&e) => {
            return Err(ApiError::invalid("community_id", "no such community"))
        }
        Err(e) => return Err(e.into()),
    };
    for phone in &phones {
        link(&mut tx, &auth, phone, id).await?;
    }
    let household = load(&mut tx, &auth, id).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = auth.coordinator_id,
        household = id,
        phones = phones.len(),
        "household registered"
    );
    Ok((StatusCode::CREATED, Json(household)))
}

/// One household with its numbers.
#[utoipa::path(get, path = "/api/v1/households/{id}", tag = "households",
    params(("id" = i64, Path, description = "household id")),
    responses((status = 200, body = Household), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<Household>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(load(&mut conn, &auth, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HouseholdChange {
    /// A name sets it; `null` removes it; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// `tg`, `ru` or `en`; `null` removes it (guessed from the number); absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub language: Option<Option<String>>,
    /// Moves the household: the coordinator must be allowed on both communities.
    pub community_id: Option<i64>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Renames a household, sets its language, or moves it to another community.
#[utoipa::path(patch, path = "/api/v1/households/{id}", tag = "households", request_body = HouseholdChange,
    params(("id" = i64, Path, description = "household id")),
    responses((status = 200, body = Household), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Body(c): Body<HouseholdChange>,
) -> ApiResult<Json<Household>> {
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
    let mut tx = state.pool.begin().await?;
    let current = visible(&mut tx, &auth, id, true).await?;
    let moved = c.community_id.filter(|&to| to != current.community.0);
    if let Some(to) = moved {
        auth.require(to)?;
    }
    let change = store::households::HouseholdChange {
        name: name.as_ref().map(|n| n.as_deref()),
        language,
        community: moved.map(CommunityId),
    };
    let done = store::households::update(&mut tx, HouseholdId(id), &change).await;
    match done {
        Ok(_) => {}
        Err(e) if crate::store::Violation::is_foreign_key(&e) => {
            return Err(ApiError::invalid("community_id", "no such community"))
        }
        Err(e) => return Err(e.into()),
    }
    if moved.is_some() {
        // An SMS conversation lists the old community's projects: it starts again.
        crate::sms::end_household_conversations(&mut tx, id).await?;
    }
    let household = load(&mut tx, &auth, id).await?;
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
            coordinator = auth.coordinator_id,
            household = id,
            from = current.community.0,
            to,
            "household moved"
        ),
        None => tracing::info!(
            coordinator = auth.coordinator_id,
            household = id,
            "household changed"
        ),
    }
    Ok(Json(household))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPhone {
    /// Any common spelling; stored as E.164.
    pub phone: String,
}

/// The answer when a code was sent to the number (202).
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkCodeSent {
    /// Always `code_sent`.
    pub status: String,
    /// The number, E.164.
    pub phone: String,
    /// Until when the code links the number (`POST …/phones/confirm`).
    pub expires_at: DateTime<Utc>,
}

/// Links a number (a member's, at home or abroad) to a household. 200 when it already is
/// this household's; 409 when it is the number of a household the caller may see (named).
/// Otherwise a coordinator gets 202 and the number an SMS with a code that links it (`POST
/// …/phones/confirm`), whether the number is free or belongs to a household in a community
/// the coordinator cannot see — the answer does not tell. An admin, who may see every
/// household, gets 201 at once (or 409). 429: too many codes this hour (10 per coordinator,
/// 3 per number).
#[utoipa::path(post, path = "/api/v1/households/{id}/phones", tag = "households", request_body = NewPhone,
    params(("id" = i64, Path, description = "household id")),
    responses((status = 202, body = LinkCodeSent), (status = 201, body = Household), (status = 200, body = Household),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn add_phone(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Body(p): Body<NewPhone>,
) -> ApiResult<Response> {
    let phone = parse_phone("phone", &p.phone)?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let household = visible(&mut tx, &auth, id, true).await?;
    let owner = owner(&mut tx, &phone).await?;
    match &owner {
        Some(o) if o.household.0 == id => {
            let household = load(&mut tx, &auth, id).await?;
            tx.commit().await?;
            return Ok((StatusCode::OK, Json(household)).into_response());
        }
        Some(o) if auth.may(o.community.0) => {
            return Err(taken(&auth, &phone, Some((o.household.0, o.community.0))))
        }
        _ => {}
    }
    // The household's own count: telling it says nothing about the number.
    room_for_a_number(&mut tx, id).await?;
    if auth.scope().is_none() {
        // An admin may see every household, so the number is free: linked at once.
        link(&mut tx, &auth, &phone, id).await?;
        let household = load(&mut tx, &auth, id).await?;
        tx.commit().await?;
        tracing::info!(coordinator = auth.coordinator_id, household = id, phone = %phone, "number linked");
        return Ok((StatusCode::CREATED, Json(household)).into_response());
    }
    // Free, or a household's the caller cannot see: the same work and the same answer.
    let language = owner
        .and_then(|o| o.language)
        .unwrap_or_else(|| state.hints.guess(&phone, state.config.default_language));
    let expires_at =
        send_link_code(&state, &mut tx, &auth, &household, &phone, language, now).await?;
    tx.commit().await?;
    tracing::info!(coordinator = auth.coordinator_id, household = id, phone = %phone, "link code sent");
    Ok((
        StatusCode::ACCEPTED,
        Json(LinkCodeSent {
            status: "code_sent".into(),
            phone: phone.as_str().to_owned(),
            expires_at,
        }),
    )
        .into_response())
}

/// 409 when the household has [`MAX_PHONES`] numbers already.
async fn room_for_a_number(conn: &mut PgConnection, household: i64) -> ApiResult<()> {
    let count = store::households::phone_count(conn, HouseholdId(household)).await?;
    if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_PHONES {
        return Err(ApiError::Conflict(format!(
            "the household already has {MAX_PHONES} numbers"
        )));
    }
    Ok(())
}

/// How long a link code is good for.
pub const LINK_CODE_MINUTES: i64 = 15;
/// Wrong codes that void a link request.
pub const LINK_CODE_TRIES: i32 = 5;
/// Link codes one coordinator may have sent in an hour.
pub const LINK_CODES_PER_COORDINATOR_HOUR: i64 = 10;
/// Link codes one number may get in an hour, whoever asks.
pub const LINK_CODES_PER_PHONE_HOUR: i64 = 3;
/// "Registered to another household" answers about households a coordinator cannot see,
/// in 24 hours, after which registering is refused (429) until the oldest is a day old.
pub const TAKEN_ANSWERS_PER_DAY: i64 = 5;
/// Link requests and counted answers are deleted this long after they expired.
const KEEP_DAYS: i64 = 7;

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
/// and queues the SMS with its code, both in `tx`; 429 when a limit is reached. Returns when
/// the code expires.
async fn send_link_code(
    state: &AppState,
    tx: &mut PgConnection,
    auth: &Auth,
    household: &store::households::Household,
    phone: &Phone,
    language: Language,
    now: DateTime<Utc>,
) -> ApiResult<DateTime<Utc>> {
    store::households::lock_link_codes(tx).await?;
    link_codes::forget_expired(tx, now - Duration::days(KEEP_DAYS)).await?;
    // Read after the lock: each request sees the ones committed before it.
    let recent = link_codes::recent(
        tx,
        CoordinatorId(auth.coordinator_id),
        phone,
        now - Duration::hours(1),
    )
    .await?;
    let hour_after =
        |t: Option<DateTime<Utc>>| seconds_until(t.unwrap_or(now) + Duration::hours(1), now);
    if recent.by_coordinator >= LINK_CODES_PER_COORDINATOR_HOUR {
        tracing::warn!(
            coordinator = auth.coordinator_id,
            "link code refused: the coordinator's hourly limit is reached"
        );
        return Err(ApiError::TooManyRequests {
            message: format!(
                "at most {LINK_CODES_PER_COORDINATOR_HOUR} codes an hour may be sent for one coordinator; try again later"
            ),
            retry_after: hour_after(recent.by_coordinator_oldest),
        });
    }
    if recent.to_phone >= LINK_CODES_PER_PHONE_HOUR {
        tracing::warn!(coordinator = auth.coordinator_id, phone = %phone, "link code refused: the number's hourly limit is reached");
        return Err(ApiError::TooManyRequests {
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
            created_by: CoordinatorId(auth.coordinator_id),
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

/// The SMS with a link code: placeholders `{code}` and `{community}` (checked by `menus
/// check`: `engine::check::SERVICE_TEXTS`).
pub const LINK_CODE_TEXT: &str = "sms.link_code";

/// The last link request for a household and number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneConfirmation {
    /// The number the code was sent to, any common spelling.
    pub phone: String,
    /// The 6 digits the number received by SMS.
    pub code: String,
}

/// Links a number with the code it received (after `POST …/phones` answered 202): 201 with
/// the household. 422: a wrong code (the 5th voids the request); 410: the code expired
/// (15 minutes) or was voided — ask for a new one; 404: no code is pending for this household
/// and number (or the household is not the caller's); 409: the number is another household's
/// (it must be unlinked there first), or the household has 10 numbers; 200: the number is
/// already this household's.
#[utoipa::path(post, path = "/api/v1/households/{id}/phones/confirm", tag = "households", request_body = PhoneConfirmation,
    params(("id" = i64, Path, description = "household id")),
    responses((status = 201, body = Household), (status = 200, body = Household), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn confirm_phone(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Body(c): Body<PhoneConfirmation>,
) -> ApiResult<(StatusCode, Json<Household>)> {
    let phone = parse_phone("phone", &c.phone)?;
    let code = c.code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(
            "code",
            "code is the 6 digits the number received by SMS",
        ));
    }
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    visible(&mut tx, &auth, id, true).await?;
    let current = owner(&mut tx, &phone).await?;
    if current.as_ref().is_some_and(|o| o.household.0 == id) {
        let household = load(&mut tx, &auth, id).await?;
        tx.commit().await?;
        return Ok((StatusCode::OK, Json(household)));
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
            return Err(ApiError::Gone(format!(
                "{LINK_CODE_TRIES} wrong codes were given for this number: ask for a new code"
            )))
        }
        // none, or the last one was used
        _ => return Err(ApiError::NotFound("pending code")),
    };
    if expires_at <= now {
        return Err(ApiError::Gone(
            "the code has expired: ask for a new one".into(),
        ));
    }
    // compared in time that does not depend on where the hashes differ
    if !bool::from(code_hash(&salt, code).as_slice().ct_eq(&hash)) {
        let tries = link_codes::wrong_try(&mut tx, request, LINK_CODE_TRIES, now).await?;
        tx.commit().await?;
        tracing::info!(coordinator = auth.coordinator_id, household = id, phone = %phone, tries, "wrong link code");
        let left = LINK_CODE_TRIES - tries;
        let message = if left > 0 {
            format!("the code is not right ({left} tries left)")
        } else {
            "the code is not right, and that was the last try: ask for a new code".into()
        };
        return Err(ApiError::invalid("code", message));
    }
    if let Some(o) = current {
        // The caller holds the owner's code, i.e. their consent: saying that the number is
        // taken is fine; the household is named only if the caller may see it. The request
        // stays pending: once the number is unlinked there, confirming again links it.
        let whose = if auth.may(o.community.0) {
            format!("household {}", o.household)
        } else {
            "another household".to_owned()
        };
        return Err(ApiError::Conflict(format!(
            "{} is registered to {whose}; it must be unlinked there first",
            phone.as_str()
        )));
    }
    room_for_a_number(&mut tx, id).await?;
    link(&mut tx, &auth, &phone, id).await?;
    link_codes::confirm(&mut tx, request, now).await?;
    let household = load(&mut tx, &auth, id).await?;
    tx.commit().await?;
    tracing::info!(coordinator = auth.coordinator_id, household = id, phone = %phone, "number linked with a code");
    Ok((StatusCode::CREATED, Json(household)))
}

/// 429 when this coordinator got [`TAKEN_ANSWERS_PER_DAY`] "registered elsewhere" answers
/// in the last 24 hours.
async fn taken_answers_below_cap(
    conn: &mut PgConnection,
    auth: &Auth,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let (answers, oldest) = link_codes::taken_answers_since(
        conn,
        CoordinatorId(auth.coordinator_id),
        now - Duration::hours(24),
    )
    .await?;
    if answers >= TAKEN_ANSWERS_PER_DAY {
        tracing::warn!(
            coordinator = auth.coordinator_id,
            answers,
            "registration refused: too many numbers of households in other communities in 24 hours"
        );
        return Err(ApiError::TooManyRequests {
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
    auth: &Auth,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    store::households::lock_taken_answers(&mut *conn, CoordinatorId(auth.coordinator_id)).await?;
    taken_answers_below_cap(&mut *conn, auth, now).await?;
    link_codes::forget_taken_answers(&mut *conn, now - Duration::days(KEEP_DAYS)).await?;
    link_codes::count_taken_answer(conn, CoordinatorId(auth.coordinator_id), now).await?;
    Ok(())
}

/// Unlinks a number (URL-encoded E.164, `%2B992901234567`) from a household. A household
/// keeps at least one number: unlinking the last answers 409. The number's STOP state stays.
#[utoipa::path(delete, path = "/api/v1/households/{id}/phones/{phone}", tag = "households",
    params(("id" = i64, Path, description = "household id"),
           ("phone" = String, Path, description = "the number, URL-encoded E.164")),
    responses((status = 200, body = Household), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn remove_phone(
    State(state): State<AppState>,
    auth: Auth,
    Segments((id, raw)): Segments<(i64, String)>,
) -> ApiResult<Json<Household>> {
    let phone = parse_phone("phone", &raw)?;
    let mut tx = state.pool.begin().await?;
    visible(&mut tx, &auth, id, true).await?;
    let numbers = store::households::numbers_of(&mut tx, HouseholdId(id)).await?;
    if !numbers.iter().any(|n| n == phone.as_str()) {
        return Err(ApiError::NotFound("phone"));
    }
    if numbers.len() == 1 {
        return Err(ApiError::Conflict(
            "this is the household's only number: link another one first".into(),
        ));
    }
    store::households::unlink_phone(&mut tx, &phone, HouseholdId(id)).await?;
    crate::sms::end_conversation(&mut tx, &phone).await?;
    let household = load(&mut tx, &auth, id).await?;
    tx.commit().await?;
    tracing::info!(coordinator = auth.coordinator_id, household = id, phone = %phone, "number unlinked");
    Ok(Json(household))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOutChange {
    /// true: the number gets no SMS (as if it texted STOP); false: it gets them again (START).
    pub opted_out: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneOptOut {
    pub phone: String,
    pub household_id: i64,
    pub opted_out: bool,
    pub opted_out_at: Option<DateTime<Utc>>,
}

/// Records or clears a number's STOP state, as the person asked (a number of a household
/// this coordinator may see; others answer 404).
#[utoipa::path(put, path = "/api/v1/phones/{phone}/opt-out", tag = "households", request_body = OptOutChange,
    params(("phone" = String, Path, description = "the number, URL-encoded E.164")),
    responses((status = 200, body = PhoneOptOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn set_opt_out(
    State(state): State<AppState>,
    auth: Auth,
    Segments(raw): Segments<String>,
    Body(c): Body<OptOutChange>,
) -> ApiResult<Json<PhoneOptOut>> {
    let phone = parse_phone("phone", &raw)?;
    let mut tx = state.pool.begin().await?;
    let household = match owner(&mut tx, &phone).await? {
        Some(o) if auth.may(o.community.0) => o.household.0,
        _ => return Err(ApiError::NotFound("phone")),
    };
    if c.opted_out {
        store::households::opt_out(&mut tx, &phone, state.clock.now()).await?;
    } else {
        store::households::opt_in(&mut tx, &phone).await?;
    }
    let opted_out_at = store::households::opted_out_at(&mut tx, &phone).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = auth.coordinator_id,
        household,
        phone = %phone,
        opted_out = c.opted_out,
        "opt-out set by a coordinator"
    );
    Ok(Json(PhoneOptOut {
        phone: phone.as_str().to_owned(),
        household_id: household,
        opted_out: opted_out_at.is_some(),
        opted_out_at,
    }))
}
