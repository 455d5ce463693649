//! `GET /api/v1/communities`, `GET /api/v1/communities/{id}`; admins add and rename
//! communities (`POST`, `PATCH`). A community is never deleted: households, projects and
//! money refer to it.

use axum::http::StatusCode;
use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    auth::Auth,
    error::{ApiError, ApiResult, Body, ErrorBody, Segments},
};
use crate::{
    app::AppState,
    store::{communities as store, CommunityId, Localized},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Community {
    pub id: i64,
    pub code: String,
    pub district: String,
    pub name_tg: String,
    pub name_ru: String,
    pub name_en: String,
}

impl From<store::Community> for Community {
    fn from(c: store::Community) -> Community {
        Community {
            id: c.id.0,
            code: c.code,
            district: c.district,
            name_tg: c.name.tg,
            name_ru: c.name.ru,
            name_en: c.name.en,
        }
    }
}

/// The communities this coordinator may see (all, for an admin).
#[utoipa::path(get, path = "/api/v1/communities", tag = "communities",
    responses((status = 200, body = [Community]), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<Community>>> {
    let rows = store::list(&state.pool, auth.scope()).await?;
    Ok(Json(rows.into_iter().map(Community::from).collect()))
}

/// One community.
#[utoipa::path(get, path = "/api/v1/communities/{id}", tag = "communities",
    params(("id" = i64, Path, description = "community id")),
    responses((status = 200, body = Community), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<Community>> {
    if !auth.may(id) {
        return Err(ApiError::NotFound("community"));
    }
    store::get(&state.pool, CommunityId(id))
        .await?
        .map(|c| Json(c.into()))
        .ok_or(ApiError::NotFound("community"))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCommunity {
    /// Lowercase letters, digits and `-`, e.g. `anzob`.
    pub code: String,
    pub district: String,
    pub name_tg: String,
    pub name_ru: String,
    pub name_en: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommunityChange {
    pub district: Option<String>,
    pub name_tg: Option<String>,
    pub name_ru: Option<String>,
    pub name_en: Option<String>,
}

/// Names are shown in 80-character USSD lists: at most 20 characters.
fn check_name(field: &'static str, v: &str) -> ApiResult<()> {
    let n = v.trim().chars().count();
    if n == 0 || n > crate::engine::check::MAX_COMMUNITY_NAME {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} is 1 to {} characters",
                crate::engine::check::MAX_COMMUNITY_NAME
            ),
        ));
    }
    Ok(())
}

fn check_district(v: &str) -> ApiResult<()> {
    let n = v.trim().chars().count();
    if n == 0 || n > 60 {
        return Err(ApiError::invalid(
            "district",
            "district is 1 to 60 characters",
        ));
    }
    Ok(())
}

/// Adds a community (admins only).
#[utoipa::path(post, path = "/api/v1/communities", tag = "communities", request_body = NewCommunity,
    responses((status = 201, body = Community), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Body(c): Body<NewCommunity>,
) -> ApiResult<(StatusCode, Json<Community>)> {
    auth.require_admin()?;
    let code = c.code.trim().to_lowercase();
    let ok = (2..=40).contains(&code.len())
        && code
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        && !code.starts_with('-');
    if !ok {
        return Err(ApiError::invalid(
            "code",
            "code is 2 to 40 lowercase letters, digits or -, e.g. anzob",
        ));
    }
    check_district(&c.district)?;
    check_name("name_tg", &c.name_tg)?;
    check_name("name_ru", &c.name_ru)?;
    check_name("name_en", &c.name_en)?;
    let name = Localized {
        tg: c.name_tg.trim().to_owned(),
        ru: c.name_ru.trim().to_owned(),
        en: c.name_en.trim().to_owned(),
    };
    let row: Community = store::create(&state.pool, &code, c.district.trim(), &name)
        .await
        .map_err(|e| match &e {
            e if crate::store::Violation::is_unique(e) => {
                ApiError::Conflict(format!("a community {code} exists"))
            }
            _ => ApiError::Internal(e),
        })?
        .into();
    tracing::info!(
        coordinator = auth.coordinator_id,
        community = row.id,
        "community added"
    );
    Ok((StatusCode::CREATED, Json(row)))
}

/// Renames a community or changes its district (admins only).
#[utoipa::path(patch, path = "/api/v1/communities/{id}", tag = "communities", request_body = CommunityChange,
    params(("id" = i64, Path, description = "community id")),
    responses((status = 200, body = Community), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Body(c): Body<CommunityChange>,
) -> ApiResult<Json<Community>> {
    auth.require_admin()?;
    if let Some(d) = &c.district {
        check_district(d)?;
    }
    for (field, v) in [
        ("name_tg", &c.name_tg),
        ("name_ru", &c.name_ru),
        ("name_en", &c.name_en),
    ] {
        if let Some(v) = v {
            check_name(field, v)?;
        }
    }
    store::update(
        &state.pool,
        CommunityId(id),
        c.district.as_deref().map(str::trim),
        c.name_tg.as_deref().map(str::trim),
        c.name_ru.as_deref().map(str::trim),
        c.name_en.as_deref().map(str::trim),
    )
    .await?
    .map(|c| Json(c.into()))
    .ok_or(ApiError::NotFound("community"))
}
