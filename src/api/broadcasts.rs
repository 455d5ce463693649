//! Broadcast meeting notices: create (with a preview), send now or at a time, follow the
//! progress, cancel, read the RSVPs.

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    auth::Auth,
    error::{ApiResult, Body, ErrorBody, Segments},
};
use crate::{
    app::AppState,
    broadcasts::{Broadcast, Preview, Progress},
    engine::Vars,
    service::{self, Once},
    store::BroadcastId,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    pub tg: String,
    pub ru: String,
    pub en: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBroadcast {
    pub communities: Vec<i64>,
    /// Only households with a number abroad.
    #[serde(default)]
    pub only_migrants: bool,
    /// Only households that pledged to this project.
    pub only_project: Option<i64>,
    /// Only households speaking this language (tg, ru, en).
    pub only_language: Option<String>,
    /// The text per language; placeholders {date}, {time}, {place}, {project}.
    pub texts: Texts,
    /// Values of the placeholders.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub vars: Vars,
    /// How long answers (1/2, yes/no) count, in hours (default 72).
    pub rsvp_hours: Option<i32>,
    /// The meeting the notice announces, if it does: households list it on USSD and by SMS,
    /// answer it, are reminded the day before, and attendance is recorded for it. Its date,
    /// time and place fill {date}, {time} and {place} unless `vars` gives them.
    pub meeting: Option<NewMeeting>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMeeting {
    /// When (RFC 3339 with an offset, e.g. `2026-12-12T14:00:00+05:00`): to come, within a year.
    pub at: DateTime<chrono::FixedOffset>,
    /// Where: 1 to 24 characters, one text for every language.
    pub place: String,
    /// What about: general, remittances (family budgeting), business, legal_stay,
    /// trafficking, hiv.
    #[serde(default)]
    pub topics: Vec<crate::store::meetings::Topic>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastView {
    #[schema(value_type = Object)]
    pub broadcast: Broadcast,
    pub preview: Option<Preview>,
    pub progress: Progress,
}

async fn view(state: &AppState, auth: &Auth, id: BroadcastId) -> ApiResult<BroadcastView> {
    let v = service::broadcasts::view(state, auth, id).await?;
    Ok(BroadcastView {
        broadcast: v.broadcast,
        preview: v.preview,
        progress: v.progress,
    })
}

/// Creates a draft broadcast and returns it with its preview.
#[utoipa::path(post, path = "/api/v1/broadcasts", tag = "broadcasts", request_body = NewBroadcast,
    responses((status = 201, body = BroadcastView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Body(b): Body<NewBroadcast>,
) -> ApiResult<(StatusCode, Json<BroadcastView>)> {
    let id = service::broadcasts::create(
        &state,
        &auth,
        service::broadcasts::NewBroadcast {
            audience: service::broadcasts::Audience {
                communities: b.communities,
                only_migrants: b.only_migrants,
                only_project: b.only_project,
                only_language: b.only_language,
            },
            texts: [&b.texts.tg, &b.texts.ru, &b.texts.en],
            vars: b.vars,
            rsvp_hours: b.rsvp_hours,
            meeting: b.meeting.map(|m| service::broadcasts::NewMeeting {
                at: m.at.with_timezone(&Utc),
                place: m.place,
                topics: m.topics,
            }),
        },
        Once::Always,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &auth, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpdate {
    /// The text per language; placeholders {date}, {time}, {place}, {project}.
    pub texts: Texts,
    /// Values of the placeholders.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub vars: Vars,
}

/// Posts an update to a project's pledgers (every number of each household that pledged to
/// it and did not cancel, in its language): a draft broadcast with no answer window, returned
/// with its preview (recipients, segments, cost); send it with
/// `POST /api/v1/broadcasts/{id}/send`, which holds it past the quiet hours.
#[utoipa::path(post, path = "/api/v1/projects/{id}/updates", tag = "broadcasts", request_body = NewUpdate,
    params(("id" = i64, Path, description = "project id")),
    responses((status = 201, body = BroadcastView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn post_update(
    State(state): State<AppState>,
    auth: Auth,
    Segments(project): Segments<i64>,
    Body(u): Body<NewUpdate>,
) -> ApiResult<(StatusCode, Json<BroadcastView>)> {
    let id = service::news::post_update(
        &state,
        &auth,
        project,
        [&u.texts.tg, &u.texts.ru, &u.texts.en],
        u.vars,
        Once::Always,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &auth, id).await?)))
}

/// A broadcast, its preview (before it is queued) and its progress and RSVP counts.
#[utoipa::path(get, path = "/api/v1/broadcasts/{id}", tag = "broadcasts",
    params(("id" = i64, Path, description = "broadcast id")),
    responses((status = 200, body = BroadcastView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<BroadcastView>> {
    Ok(Json(view(&state, &auth, BroadcastId(id)).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// When to send (RFC 3339 with an offset, e.g. `2026-12-01T09:00:00+05:00`); now when
    /// left out. Each recipient's message waits for the end of the quiet hours in their own
    /// zone (`preview.zones` says when each zone's group receives it).
    pub at: Option<DateTime<chrono::FixedOffset>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Scheduled {
    /// When its first recipients may receive it: the asked time, or the earliest end of the
    /// quiet hours among its recipients' zones.
    pub send_at: DateTime<Utc>,
    /// The same time in the programme's time zone.
    pub send_at_local: String,
    /// How many messages were queued now (0 when scheduled for later); queued messages
    /// still wait for the end of the quiet hours in their recipient's zone.
    pub queued: usize,
}

/// Sends a draft now or schedules it.
#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/send", tag = "broadcasts", request_body = SendRequest,
    params(("id" = i64, Path, description = "broadcast id")),
    responses((status = 200, body = Scheduled), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn send(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Body(r): Body<SendRequest>,
) -> ApiResult<Json<Scheduled>> {
    let sent = service::broadcasts::send(
        &state,
        &auth,
        BroadcastId(id),
        r.at.map(|t| t.with_timezone(&Utc)),
        Once::Always,
    )
    .await?;
    let (send_at, queued) = (sent.send_at, sent.queued);
    Ok(Json(Scheduled {
        send_at,
        send_at_local: send_at.with_timezone(&state.config.timezone).to_rfc3339(),
        queued,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    /// Messages that were still waiting and will not be sent.
    pub stopped: u64,
}

/// Cancels a broadcast; messages still waiting in the outbox are not sent.
#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/cancel", tag = "broadcasts",
    params(("id" = i64, Path, description = "broadcast id")),
    responses((status = 200, body = Cancelled), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<Cancelled>> {
    let stopped = service::broadcasts::cancel(&state, &auth, BroadcastId(id), Once::Always).await?;
    Ok(Json(Cancelled { stopped }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rsvp {
    pub phone: String,
    pub community_id: i64,
    pub language: String,
    pub answer: String,
    pub answered_at: DateTime<Utc>,
}

/// The answers, latest per household (by the number that gave it).
#[utoipa::path(get, path = "/api/v1/broadcasts/{id}/rsvps", tag = "broadcasts",
    params(("id" = i64, Path, description = "broadcast id")),
    responses((status = 200, body = [Rsvp]), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rsvps(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<Vec<Rsvp>>> {
    let rsvps = service::broadcasts::rsvps(&state, &auth, BroadcastId(id)).await?;
    Ok(Json(
        rsvps
            .into_iter()
            .map(|r| Rsvp {
                phone: r.phone,
                community_id: r.community.0,
                language: r.language,
                answer: r.answer,
                answered_at: r.answered_at,
            })
            .collect(),
    ))
}
