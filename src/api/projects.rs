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
        .map(|s| {
            s.parse()
                .map_err(|()| ApiError::invalid("status", "status is open or closed"))
        })
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

fn check_money(field: &'static str, v: Decimal, positive: bool) -> ApiResult<()> {
    if v.scale() > 2 && v.normalize().scale() > 2 {
        return Err(ApiError::invalid(
            field,
            format!("{field} has more than two decimals"),
        ));
    }
    if (positive && v <= Decimal::ZERO) || v < Decimal::ZERO {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} must be {}",
                if positive { "more than 0" } else { "0 or more" }
            ),
        ));
    }
    if v >= Decimal::from(1_000_000_000_000i64) {
        return Err(ApiError::invalid(field, format!("{field} is too large")));
    }
    Ok(())
}

fn check_name(field: &'static str, v: &str) -> ApiResult<()> {
    let n = v.trim().chars().count();
    if n == 0 || n > crate::engine::check::MAX_PROJECT_NAME {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} must be 1 to {} characters (it is shown on a phone screen)",
                crate::engine::check::MAX_PROJECT_NAME
            ),
        ));
    }
    Ok(())
}

fn check_ratio(v: Decimal) -> ApiResult<()> {
    if v < Decimal::ZERO || v > Decimal::from(100) || v.normalize().scale() > 4 {
        return Err(ApiError::invalid(
            "match_ratio",
            "match_ratio must be between 0 and 100, at most 4 decimals",
        ));
    }
    Ok(())
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
    auth.require(p.community_id)?;
    let code = p.code.trim().to_uppercase();
    if !(2..=12).contains(&code.len())
        || !code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err(ApiError::invalid(
            "code",
            "code is 2 to 12 letters or digits, e.g. BRIDGE",
        ));
    }
    let kind: ProjectKind = p
        .kind
        .parse()
        .map_err(|()| ApiError::invalid("kind", "kind is infrastructure or business"))?;
    check_name("name_tg", &p.name_tg)?;
    check_name("name_ru", &p.name_ru)?;
    check_name("name_en", &p.name_en)?;
    check_money("target", p.target, true)?;
    check_ratio(p.match_ratio)?;
    if let Some(cap) = p.match_cap {
        check_money("match_cap", cap, false)?;
    }
    let currency: crate::domain::Currency = p
        .currency
        .as_deref()
        .unwrap_or("TJS")
        .parse()
        .map_err(|_| {
            ApiError::invalid("currency", "currency is a three-letter code such as TJS")
        })?;
    let mut conn = state.pool.acquire().await?;
    let id = store::projects::create(
        &mut conn,
        &store::projects::NewProject {
            community: CommunityId(p.community_id),
            code: &code,
            kind,
            name: [p.name_tg.trim(), p.name_ru.trim(), p.name_en.trim()],
            target: p.target,
            currency: currency.as_str(),
            match_ratio: p.match_ratio,
            match_cap: p.match_cap,
        },
    )
    .await
    .map(|id| id.0);
    drop(conn);
    let id = match id {
        Ok(id) => id,
        Err(e) if crate::store::Violation::is_unique(&e) => {
            return Err(ApiError::Conflict(format!(
                "the community already has a project {code}"
            )))
        }
        Err(e) if crate::store::Violation::is_foreign_key(&e) => {
            return Err(ApiError::invalid("community_id", "no such community"))
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(
        coordinator = auth.coordinator_id,
        project = id,
        "project created"
    );
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
    load(&state, &auth, id).await?;
    if let Some(t) = c.target {
        check_money("target", t, true)?;
    }
    if let Some(r) = c.match_ratio {
        check_ratio(r)?;
    }
    if let Some(Some(cap)) = c.match_cap {
        check_money("match_cap", cap, false)?;
    }
    let status = project_status(c.status.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    store::projects::change(
        &mut conn,
        ProjectId(id),
        &store::projects::ProjectChange {
            target: c.target,
            match_ratio: c.match_ratio,
            match_cap: c.match_cap,
            status,
        },
    )
    .await?;
    drop(conn);
    tracing::info!(
        coordinator = auth.coordinator_id,
        project = id,
        "project changed"
    );
    Ok(Json(load(&state, &auth, id).await?))
}
