//! The counsellors' callback queue (issue 11 point 5): list the requests, take one (the
//! household gets an SMS that a counsellor will call today), release it back to the queue,
//! record a call's outcome; the public holidays that the working days skip.
//!
//! The routes only read the request and word the answer: the rules are
//! `service::callbacks`'s, shared with the console. Counsellors and admins only;
//! coordinators and programme officers get 403 (the queue is private to counsellors). A
//! POST may carry an `Idempotency-Key` (the API's middleware replays the first answer).

use axum::{extract::State, http::StatusCode, Json};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    auth::Auth,
    error::{ApiResult, Body, ErrorBody, Params, Segments},
};
use crate::{
    app::AppState,
    service::{
        callbacks::{self as service, ListQuery, NewHoliday, Record},
        Once,
    },
};

pub use crate::service::callbacks::{
    Callback, Outcome, PublicHoliday, Queue, StaffRef, Stage, Topic,
};

#[derive(Debug, Deserialize, IntoParams)]
pub struct CallbackQuery {
    /// `open` (default: oldest first) or `done` (the latest done first).
    pub status: Option<String>,
    /// tg, ru or en: only requests in that language.
    pub language: Option<String>,
    /// 1 to 500 (default 100).
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// The callback queue: open requests oldest first (or done ones), each with its household,
/// numbers, due day and whether it is overdue, and how many are open and overdue.
#[utoipa::path(get, path = "/api/v1/callbacks", tag = "callbacks", params(CallbackQuery),
    responses((status = 200, body = Queue), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<CallbackQuery>,
) -> ApiResult<Json<Queue>> {
    let done = match q.status.as_deref().map(str::trim) {
        None | Some("" | "open") => false,
        Some("done") => true,
        Some(_) => {
            return Err(super::error::ApiError::invalid(
                "status",
                "status is open or done",
            ))
        }
    };
    let queue = service::list(
        &state,
        &auth,
        ListQuery {
            done,
            language: q.language.as_deref(),
            limit: q.limit,
            offset: q.offset,
        },
    )
    .await?;
    Ok(Json(queue))
}

/// Takes a request for the calling counsellor; the household gets an SMS in its language
/// that a counsellor will call today (from their number, or `HASHAR_COUNSELLOR_NUMBER`).
/// Taken by another: 409 "Taken by Dilnoza at 10:02". Taking one's own again changes
/// nothing.
#[utoipa::path(post, path = "/api/v1/callbacks/{id}/take", tag = "callbacks",
    params(("id" = i64, Path, description = "callback request id")),
    responses((status = 200, body = Callback), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn take(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<Callback>> {
    Ok(Json(service::take(&state, &auth, id, Once::Always).await?))
}

/// Puts a taken request back in the queue: the counsellor who holds it, or an admin (the
/// holder is away). Nothing is sent to the household. Held by another counsellor: 409;
/// held by nobody: unchanged.
#[utoipa::path(post, path = "/api/v1/callbacks/{id}/release", tag = "callbacks",
    params(("id" = i64, Path, description = "callback request id")),
    responses((status = 200, body = Callback), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn release(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<Callback>> {
    Ok(Json(
        service::release(&state, &auth, id, Once::Always).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOutcome {
    /// reached, no_answer, wrong_number or declined
    #[schema(value_type = Outcome)]
    pub outcome: String,
    /// At most 280 characters.
    pub note: Option<String>,
    /// What the call covered: legal_stay, trafficking, hiv, remittances, other.
    #[serde(default)]
    #[schema(value_type = Vec<Topic>)]
    pub topics: Vec<String>,
}

/// Records the outcome of a call on a request the caller holds. "no_answer" puts it back in
/// the queue 2 hours later; the third closes it as unreachable.
#[utoipa::path(post, path = "/api/v1/callbacks/{id}/outcome", tag = "callbacks", request_body = NewOutcome,
    params(("id" = i64, Path, description = "callback request id")),
    responses((status = 200, body = Callback), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn outcome(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Body(o): Body<NewOutcome>,
) -> ApiResult<Json<Callback>> {
    let recorded = service::record(
        &state,
        &auth,
        id,
        Record {
            outcome: &o.outcome,
            note: o.note.as_deref(),
            topics: &o.topics,
        },
        Once::Always,
    )
    .await?;
    Ok(Json(recorded))
}

/// The public holidays that the queue's "due by" skips (two working days): every year on a
/// date (the fixed holidays of the Labour Code), or in one year only (Idi Ramazon, Idi
/// Qurbon, a day off moved from a weekend). Counsellors and admins.
#[utoipa::path(get, path = "/api/v1/holidays", tag = "callbacks",
    responses((status = 200, body = [PublicHoliday]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn holidays(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<PublicHoliday>>> {
    Ok(Json(service::holidays(&state, &auth).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPublicHoliday {
    /// The day (2020 to 2100); with `every_year`, only its month and day count.
    pub date: NaiveDate,
    #[serde(default)]
    pub every_year: bool,
    /// 1 to 80 characters, e.g. "Idi Ramazon".
    pub name: String,
}

/// Adds a public holiday (admins). A date that is a holiday already: 409.
#[utoipa::path(post, path = "/api/v1/holidays", tag = "callbacks", request_body = NewPublicHoliday,
    responses((status = 201, body = PublicHoliday), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_holiday(
    State(state): State<AppState>,
    auth: Auth,
    Body(h): Body<NewPublicHoliday>,
) -> ApiResult<(StatusCode, Json<PublicHoliday>)> {
    let added = service::add_holiday(
        &state,
        &auth,
        NewHoliday {
            date: h.date,
            every_year: h.every_year,
            name: &h.name,
        },
        Once::Always,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// Removes a public holiday (admins): its day counts as a working day again.
#[utoipa::path(delete, path = "/api/v1/holidays/{id}", tag = "callbacks",
    params(("id" = i64, Path, description = "public holiday id")),
    responses((status = 200, body = PublicHoliday), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn remove_holiday(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<PublicHoliday>> {
    Ok(Json(
        service::remove_holiday(&state, &auth, id, Once::Always).await?,
    ))
}
