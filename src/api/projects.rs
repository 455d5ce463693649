//! Projects: list with their totals, create, read, edit target / ratio / cap, open / close.

use axum::{extract::State, http::StatusCode, Json};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    auth::Auth,
    error::{ApiError, ApiResult, Body, ErrorBody, Params, Segments},
};
use crate::{
    app::AppState,
    service::{self, Once},
    store::{
        self,
        projects::{ProjectKind, ProjectStatus},
        CommunityId, ProjectId,
    },
};

/// A project with its figures from the `project_totals` view.
#[derive(Debug, Serialize, ToSchema)]
pub struct Project {
    pub id: i64,
    pub community_id: i64,
    pub code: String,
    pub kind: ProjectKind,
    pub name_tg: String,
    pub name_ru: String,
    pub name_en: String,
    pub currency: String,
    #[serde(serialize_with = "super::two_dp")]
    pub target: Decimal,
    pub match_ratio: Decimal,
    #[serde(serialize_with = "super::opt_two_dp")]
    pub match_cap: Option<Decimal>,
    pub status: ProjectStatus,
    #[serde(serialize_with = "super::two_dp")]
    pub pledged: Decimal,
    #[serde(serialize_with = "super::two_dp")]
    pub outstanding: Decimal,
    #[serde(serialize_with = "super::two_dp")]
    pub received: Decimal,
    #[serde(serialize_with = "super::two_dp")]
    pub matched: Decimal,
    #[serde(serialize_with = "super::two_dp")]
    pub matched_total: Decimal,
    pub percent: Decimal,
}

impl From<store::projects::ProjectTotals> for Project {
    fn from(p: store::projects::ProjectTotals) -> Project {
        Project {
            id: p.id.0,
            community_id: p.community.0,
            code: p.code,
            kind: p.kind,
            name_tg: p.name.tg,
            name_ru: p.name.ru,
            name_en: p.name.en,
            currency: p.currency,
            target: p.target,
            match_ratio: p.match_ratio,
            match_cap: p.match_cap,
            status: p.status,
            pledged: p.pledged,
            outstanding: p.outstanding,
            received: p.received,
            matched: p.matched,
            matched_total: p.matched_total,
            percent: p.percent,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only this community's projects.
    pub community: Option<i64>,
    /// `open` or `closed`.
    #[param(value_type = Option<ProjectStatus>, inline)]
    pub status: Option<String>,
}

/// The `status` of a request, checked (422 on field `status` otherwise).
fn project_status(status: Option<&str>) -> ApiResult<Option<ProjectStatus>> {
    status
        .map(|s| service::projects::status(s).map_err(ApiError::from))
        .transpose()
}

/// Projects this coordinator may see, with their totals.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", params(ListQuery),
    responses((status = 200, body = [Project]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<ListQuery>,
) -> ApiResult<Json<Vec<Project>>> {
    if let Some(c) = q.community {
        auth.require(c)?;
    }
    let status = project_status(q.status.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let rows = store::projects::list_totals(
        &mut conn,
        auth.scope(),
        q.community.map(CommunityId),
        status,
    )
    .await?;
    Ok(Json(rows.into_iter().map(Project::from).collect()))
}

async fn load(state: &AppState, auth: &Auth, id: i64) -> ApiResult<Project> {
    let mut conn = state.pool.acquire().await?;
    let project = store::projects::totals(&mut conn, ProjectId(id))
        .await?
        .map(Project::from)
        .ok_or(ApiError::NotFound("project"))?;
    if !auth.may(project.community_id) {
        return Err(ApiError::NotFound("project"));
    }
    Ok(project)
}

/// One project with its totals.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = i64, Path, description = "project id")),
    responses((status = 200, body = Project), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<Project>> {
    Ok(Json(load(&state, &auth, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub community_id: i64,
    /// Short code people text, `^[A-Z0-9]{2,12}$`, unique in the community.
    pub code: String,
    /// `infrastructure` or `business`.
    #[schema(value_type = ProjectKind, inline)]
    pub kind: String,
    pub name_tg: String,
    pub name_ru: String,
    pub name_en: String,
    pub target: Decimal,
    /// Defaults to TJS.
    pub currency: Option<String>,
    /// Partners add `ratio` × what households pay (1 = 1:1).
    pub match_ratio: Decimal,
    pub match_cap: Option<Decimal>,
}

/// Creates a project (open).
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = NewProject,
    responses((status = 201, body = Project), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Body(p): Body<NewProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    let id = service::projects::create(
        &state,
        &auth,
        service::projects::NewProject {
            community: CommunityId(p.community_id),
            code: &p.code,
            kind: &p.kind,
            name: [&p.name_tg, &p.name_ru, &p.name_en],
            target: p.target,
            currency: p.currency.as_deref(),
            match_ratio: p.match_ratio,
            match_cap: p.match_cap,
        },
        Once::Always,
    )
    .await?
    .0;
    Ok((StatusCode::CREATED, Json(load(&state, &auth, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectChange {
    pub target: Option<Decimal>,
    pub match_ratio: Option<Decimal>,
    /// A number sets the cap; `null` removes it; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub match_cap: Option<Option<Decimal>>,
    /// `open` or `closed`.
    #[schema(value_type = Option<ProjectStatus>, inline)]
    pub status: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Decimal>>, D::Error> {
    Option::<Decimal>::deserialize(d).map(Some)
}

/// Edits a project's target, ratio or cap, or opens / closes it.
#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects", request_body = ProjectChange,
    params(("id" = i64, Path, description = "project id")),
    responses((status = 200, body = Project), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Body(c): Body<ProjectChange>,
) -> ApiResult<Json<Project>> {
    let status = project_status(c.status.as_deref())?;
    service::projects::change(
        &state,
        &auth,
        ProjectId(id),
        service::projects::Change {
            target: c.target,
            match_ratio: c.match_ratio,
            match_cap: c.match_cap,
            status,
        },
        Once::Always,
    )
    .await?;
    Ok(Json(load(&state, &auth, id).await?))
}
