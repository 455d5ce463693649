//! Households and their phones (the rules live in `service::households`, shared with the
//! console): list and search, register (with its numbers), read, rename,
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
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    auth::Auth,
    error::{ApiResult, Body, ErrorBody, Params, Segments},
};
use crate::{
    app::AppState,
    service::households::{self as service, PhoneAdded},
};

pub use crate::service::households::{
    Household, HouseholdPhone, PhoneOptOut, PhoneZone, LINK_CODES_PER_COORDINATOR_HOUR,
    LINK_CODES_PER_PHONE_HOUR, LINK_CODE_MINUTES, LINK_CODE_TEXT, LINK_CODE_TRIES, MAX_PHONES,
    TAKEN_ANSWERS_PER_DAY,
};

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
    let search = service::Search {
        community: q.community,
        q: q.q.as_deref(),
        after: None,
        limit,
        offset,
    };
    Ok(Json(service::list(&state, &auth, &search).await?))
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
    let new = service::NewHousehold {
        community_id: h.community_id,
        name: h.name,
        language: h.language,
        phones: h.phones,
    };
    let household = service::register(&state, &auth, &new).await?;
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
    Ok(Json(service::get(&state, &auth, id).await?))
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
    let change = service::HouseholdChange {
        name: c.name,
        language: c.language,
        community_id: c.community_id,
    };
    Ok(Json(service::update(&state, &auth, id, &change).await?))
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
    Ok(
        match service::add_phone(&state, &auth, id, &p.phone).await? {
            PhoneAdded::Already(h) => (StatusCode::OK, Json(h)).into_response(),
            PhoneAdded::Linked(h) => (StatusCode::CREATED, Json(h)).into_response(),
            PhoneAdded::CodeSent { phone, expires_at } => (
                StatusCode::ACCEPTED,
                Json(LinkCodeSent {
                    status: "code_sent".into(),
                    phone,
                    expires_at,
                }),
            )
                .into_response(),
        },
    )
}

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
    let (linked, household) = service::confirm_phone(&state, &auth, id, &c.phone, &c.code).await?;
    let status = if linked {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(household)))
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
    Ok(Json(service::remove_phone(&state, &auth, id, &raw).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOutChange {
    /// true: the number gets no SMS (as if it texted STOP); false: it gets them again (START).
    pub opted_out: bool,
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
    Ok(Json(
        service::set_opt_out(&state, &auth, &raw, c.opted_out).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimezoneChange {
    /// An IANA zone name (`Asia/Novosibirsk`) the number's messages are timed in (quiet
    /// hours), or null for the zone of its country (the capital's for Russia, Kazakhstan,
    /// the USA, …; the programme's for +992).
    pub timezone: Option<String>,
}

/// Records or clears the zone a number's broadcasts are timed in (a number of a household
/// this coordinator may see; others answer 404; a name that is not an IANA zone, 422).
#[utoipa::path(put, path = "/api/v1/phones/{phone}/timezone", tag = "households", request_body = TimezoneChange,
    params(("phone" = String, Path, description = "the number, URL-encoded E.164")),
    responses((status = 200, body = PhoneZone), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn set_timezone(
    State(state): State<AppState>,
    auth: Auth,
    Segments(raw): Segments<String>,
    Body(c): Body<TimezoneChange>,
) -> ApiResult<Json<PhoneZone>> {
    Ok(Json(
        service::set_timezone(&state, &auth, &raw, c.timezone.as_deref()).await?,
    ))
}
