//! `GET /api/v1/communities`, `GET /api/v1/communities/{id}`.

use axum::{extract::State, Json};
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{
    auth::Auth,
    error::{ApiError, ApiResult, ErrorBody, Segments},
};
use crate::app::AppState;

#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct Community {
    pub id: i64,
    pub code: String,
    pub district: String,
    pub name_tg: String,
    pub name_ru: String,
    pub name_en: String,
}

const SELECT: &str = "select id, code, district, name_tg, name_ru, name_en from communities";

/// The communities this coordinator may see (all, for an admin).
#[utoipa::path(get, path = "/api/v1/communities", tag = "communities",
    responses((status = 200, body = [Community]), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<Community>>> {
    let rows = sqlx::query_as::<_, Community>(&format!(
        "{SELECT} where $1::bigint[] is null or id = any($1) order by id"
    ))
    .bind(auth.scope())
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
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
    sqlx::query_as::<_, Community>(&format!("{SELECT} where id = $1"))
        .bind(id)
        .fetch_optional(&state.pool)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("community"))
}
