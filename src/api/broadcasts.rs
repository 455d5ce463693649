//! Broadcast meeting notices: create (with a preview), send now or at a time, follow the
//! progress, cancel, read the RSVPs.

use std::collections::BTreeMap;

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;

use super::{
    auth::Auth,
    error::{ApiError, ApiResult, Body, ErrorBody, Segments},
};
use crate::{
    app::AppState,
    broadcasts::{self, Broadcast, BroadcastStatus, Preview, Progress, PLACEHOLDERS},
    engine::{menu::placeholders, Vars},
    store::{self, BroadcastId, CommunityId, ProjectId, Violation},
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
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastView {
    #[schema(value_type = Object)]
    pub broadcast: Broadcast,
    pub preview: Option<Preview>,
    pub progress: Progress,
}

fn check_scope(auth: &Auth, communities: &[i64]) -> ApiResult<()> {
    communities.iter().try_for_each(|c| auth.require(*c))
}

/// Broadcast `id` if the caller may see it: every one of its communities is in their scope
/// (else, as when there is no such broadcast, 404).
async fn load(conn: &mut PgConnection, auth: &Auth, id: BroadcastId) -> ApiResult<Broadcast> {
    let b = store::broadcasts::get(conn, id)
        .await?
        .ok_or(ApiError::NotFound("broadcast"))?;
    if !b.communities.iter().all(|c| auth.may(c.0)) {
        return Err(ApiError::NotFound("broadcast"));
    }
    Ok(b)
}

async fn view(
    conn: &mut PgConnection,
    state: &AppState,
    auth: &Auth,
    id: BroadcastId,
) -> ApiResult<BroadcastView> {
    let b = load(conn, auth, id).await?;
    let preview = if b.status.is_pending() {
        let people = broadcasts::recipients(conn, &b, state.config.default_language).await?;
        Some(broadcasts::preview(
            &b,
            &people,
            state.config.sms_price_per_segment,
            state.settings.sms_price_currency,
        ))
    } else {
        None
    };
    let progress = broadcasts::progress(conn, id).await?;
    Ok(BroadcastView {
        broadcast: b,
        preview,
        progress,
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
    if b.communities.is_empty() {
        return Err(ApiError::invalid(
            "communities",
            "name at least one community",
        ));
    }
    check_scope(&auth, &b.communities)?;
    if let Some(l) = &b.only_language {
        if l.parse::<crate::domain::Language>().is_err() {
            return Err(ApiError::invalid(
                "only_language",
                "only_language is tg, ru or en",
            ));
        }
    }
    let rsvp_hours = b.rsvp_hours.unwrap_or(72);
    if !(0..=720).contains(&rsvp_hours) {
        return Err(ApiError::invalid("rsvp_hours", "rsvp_hours is 0 to 720"));
    }
    for (field, text) in [
        ("texts.tg", &b.texts.tg),
        ("texts.ru", &b.texts.ru),
        ("texts.en", &b.texts.en),
    ] {
        let n = text.trim().chars().count();
        if n == 0 || n > 1000 {
            return Err(ApiError::invalid(
                field,
                format!("{field} is 1 to 1000 characters"),
            ));
        }
        for p in placeholders(text) {
            if !PLACEHOLDERS.contains(&p.as_str()) {
                return Err(ApiError::invalid(
                    field,
                    format!("unknown placeholder {{{p}}}: use date, time, place or project"),
                ));
            }
            if !b.vars.contains_key(&p) {
                return Err(ApiError::invalid(
                    "vars",
                    format!("{{{p}}} is used but has no value"),
                ));
            }
        }
    }
    if let Some(k) = b.vars.keys().find(|k| !PLACEHOLDERS.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            "vars",
            format!("unknown value {k}: use date, time, place or project"),
        ));
    }
    let mut tx = state.pool.begin().await?;
    if let Some(p) = b.only_project {
        let c = store::projects::get(&mut tx, ProjectId(p)).await?;
        if c.is_none_or(|c| !b.communities.contains(&c.community.0)) {
            return Err(ApiError::invalid(
                "only_project",
                "no such project in these communities",
            ));
        }
    }
    let draft = Broadcast {
        id: BroadcastId(0),
        communities: b.communities.into_iter().map(CommunityId).collect(),
        only_migrants: b.only_migrants,
        only_project: b.only_project.map(ProjectId),
        only_language: b.only_language,
        texts: BTreeMap::from([
            ("tg".to_owned(), b.texts.tg.trim().to_owned()),
            ("ru".to_owned(), b.texts.ru.trim().to_owned()),
            ("en".to_owned(), b.texts.en.trim().to_owned()),
        ]),
        vars: b.vars,
        status: BroadcastStatus::Draft,
        send_at: None,
        rsvp_hours,
        created_by: auth.who(),
        created_at: state.clock.now(),
    };
    let id = broadcasts::create(&mut tx, &draft).await.map_err(|e| {
        if Violation::is_foreign_key(&e) {
            ApiError::invalid("communities", "no such community")
        } else {
            ApiError::Internal(e)
        }
    })?;
    let v = view(&mut tx, &state, &auth, id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(v)))
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
    let mut conn = state.pool.acquire().await?;
    Ok(Json(view(&mut conn, &state, &auth, BroadcastId(id)).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// When to send (RFC 3339 with an offset, e.g. `2026-12-01T09:00:00+05:00`); now when
    /// left out. A time in the quiet hours moves to their end.
    pub at: Option<DateTime<chrono::FixedOffset>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Scheduled {
    pub send_at: DateTime<Utc>,
    /// The same time in the programme's time zone.
    pub send_at_local: String,
    /// How many messages were queued now (0 when scheduled for later or held by quiet hours).
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
    let now = state.clock.now();
    let wanted = r.at.map(|t| t.with_timezone(&Utc)).unwrap_or(now);
    if wanted < now - chrono::Duration::minutes(5) {
        return Err(ApiError::invalid("at", "that time has passed"));
    }
    let mut tx = state.pool.begin().await?;
    let b = load(&mut tx, &auth, BroadcastId(id)).await?;
    if !b.status.is_pending() {
        return Err(ApiError::Conflict(format!(
            "broadcast {id} is {}",
            b.status
        )));
    }
    // Each transition is one conditional update: of two sends at once (a double click, or
    // this and the scheduler), the second waits for the first's transaction and then finds
    // the broadcast queued (409).
    let sending = broadcasts::schedule(&mut tx, &state, &b, wanted, now)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!("broadcast {id} is already queued or cancelled"))
        })?;
    let (send_at, queued) = (sending.send_at, sending.queued);
    tx.commit().await?;
    tracing::info!(
        coordinator = auth.coordinator_id,
        broadcast = id,
        queued,
        "broadcast sent or scheduled"
    );
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
    let mut conn = state.pool.acquire().await?;
    let b = load(&mut conn, &auth, BroadcastId(id)).await?;
    if b.status == BroadcastStatus::Cancelled {
        return Err(ApiError::Conflict(format!(
            "broadcast {id} is already cancelled"
        )));
    }
    drop(conn);
    let stopped = broadcasts::cancel(&state.pool, b.id, state.clock.now()).await?;
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

/// The answers, latest per number.
#[utoipa::path(get, path = "/api/v1/broadcasts/{id}/rsvps", tag = "broadcasts",
    params(("id" = i64, Path, description = "broadcast id")),
    responses((status = 200, body = [Rsvp]), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rsvps(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<Vec<Rsvp>>> {
    let mut conn = state.pool.acquire().await?;
    load(&mut conn, &auth, BroadcastId(id)).await?;
    let rsvps = store::broadcasts::rsvps(&mut conn, BroadcastId(id)).await?;
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
