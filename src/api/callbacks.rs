//! The counsellors' callback queue (issue 11 point 5): list the requests, take one (the
//! household gets an SMS that a counsellor will call today), record a call's outcome.
//!
//! The routes only read the request and word the answer: the rules are
//! `service::callbacks`'s, shared with the console. Counsellors and admins only;
//! coordinators and programme officers get 403 (the queue is private to counsellors). A
//! POST may carry an `Idempotency-Key` (the API's middleware replays the first answer).

use axum::{extract::State, Json};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    auth::Auth,
    error::{ApiResult, Body, ErrorBody, Params, Segments},
};
use crate::{
    app::AppState,
    service::{
        callbacks::{self as service, ListQuery, Record},
        Once,
    },
};

pub use crate::service::callbacks::{Callback, Outcome, Queue, StaffRef, Stage, Topic};

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
