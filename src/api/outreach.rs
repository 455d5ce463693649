//! Outreach towards the programme's goal of 2,000 households informed (issue 11 point 6):
//! the figures per community and topic, and the targets.
//!
//! `GET /api/v1/outreach`: households informed by a counsellor's completed call or an
//! information session, and (apart) self-served by reading a topic to the end, per
//! community and topic, against the targets; counts only. Admins and counsellors see every
//! community and the programme; coordinators and programme officers their communities.
//! `POST /api/v1/outreach/targets`: an admin sets a community's target, or the programme's
//! (`community` left out); audited. The CSV is `GET /api/v1/exports/outreach.csv`.

use axum::{extract::State, http::StatusCode, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    auth::Auth,
    error::{ApiResult, Body, ErrorBody},
};
use crate::{
    app::AppState,
    service::outreach::{self as service},
};

pub use crate::service::outreach::{CommunityFigures, Counts, Figures, TopicCounts};

/// The figures the caller may see.
#[utoipa::path(get, path = "/api/v1/outreach", tag = "outreach",
    responses((status = 200, body = Figures), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn figures(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Figures>> {
    Ok(Json(service::figures(&state, &auth).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTarget {
    /// The community; left out: the programme's target.
    pub community: Option<i64>,
    /// Households, 1 to 10,000,000.
    pub target: i64,
}

/// Sets a community's target of households informed (or the programme's). Admins only.
#[utoipa::path(post, path = "/api/v1/outreach/targets", tag = "outreach", request_body = NewTarget,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_target(
    State(state): State<AppState>,
    auth: Auth,
    Body(t): Body<NewTarget>,
) -> ApiResult<StatusCode> {
    service::set_target(&state, &auth, t.community, t.target).await?;
    Ok(StatusCode::NO_CONTENT)
}
