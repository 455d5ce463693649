//! Family-budgeting tips: every coordinator may read them (they are the same for every
//! community); only an admin adds or edits them (403 for anyone else). A tip is never
//! deleted (households' views refer to it): set `active` to false to stop showing it.
//! Its `code` does not change either: `menus/tips.toml` is synced by code at start, so a
//! renamed tip would come back under its old code.

use axum::{extract::State, http::StatusCode, Json};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    auth::Auth,
    error::{ApiError, ApiResult, Body, ErrorBody, Params, Segments},
};
use crate::{
    app::AppState,
    engine::check::MAX_TIP,
    store::{self, tips},
};

pub use crate::store::tips::Tip;

fn check_text(field: &'static str, v: &str) -> ApiResult<String> {
    let v = v.trim();
    let n = v.chars().count();
    if n == 0 || n > MAX_TIP {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be 1 to {MAX_TIP} characters"),
        ));
    }
    Ok(v.to_owned())
}

fn check_code(v: &str) -> ApiResult<String> {
    let code = v.trim().to_owned();
    let mut chars = code.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !first_ok || !rest_ok || !(2..=60).contains(&code.len()) {
        return Err(ApiError::invalid(
            "code",
            "code is 2 to 60 lower-case letters, digits or dashes, e.g. save-share",
        ));
    }
    Ok(code)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TipQuery {
    /// Only active (true) or inactive (false) tips.
    pub active: Option<bool>,
}

/// Every tip, in the order they are shown.
#[utoipa::path(get, path = "/api/v1/tips", tag = "tips", params(TipQuery),
    responses((status = 200, body = [Tip]), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _auth: Auth,
    Params(q): Params<TipQuery>,
) -> ApiResult<Json<Vec<Tip>>> {
    Ok(Json(tips::list(&state.pool, q.active).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTip {
    /// `^[a-z0-9][a-z0-9-]{1,59}$`, unique.
    pub code: String,
    /// 1 to 300 characters each.
    pub text_tg: String,
    pub text_ru: String,
    pub text_en: String,
    /// Defaults to after the last tip.
    pub position: Option<i32>,
    /// Defaults to true.
    pub active: Option<bool>,
}

/// Adds a tip (admins only).
#[utoipa::path(post, path = "/api/v1/tips", tag = "tips", request_body = NewTip,
    responses((status = 201, body = Tip), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Body(t): Body<NewTip>,
) -> ApiResult<(StatusCode, Json<Tip>)> {
    auth.require_admin()?;
    let code = check_code(&t.code)?;
    let text_tg = check_text("text_tg", &t.text_tg)?;
    let text_ru = check_text("text_ru", &t.text_ru)?;
    let text_en = check_text("text_en", &t.text_en)?;
    let new = tips::NewTip {
        code: &code,
        position: t.position,
        active: t.active.unwrap_or(true),
        text_tg: &text_tg,
        text_ru: &text_ru,
        text_en: &text_en,
    };
    let tip = match tips::create(&state.pool, &new).await {
        Ok(tip) => tip,
        Err(e) if store::Violation::is_unique(&e) => {
            return Err(ApiError::Conflict(format!("there is already a tip {code}")))
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(coordinator = auth.coordinator_id, tip = tip.id, "tip added");
    Ok((StatusCode::CREATED, Json(tip)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TipChange {
    pub text_tg: Option<String>,
    pub text_ru: Option<String>,
    pub text_en: Option<String>,
    pub position: Option<i32>,
    /// false: no longer shown (a tip is never deleted).
    pub active: Option<bool>,
}

/// Edits a tip's texts or position, or (de)activates it (admins only).
#[utoipa::path(patch, path = "/api/v1/tips/{id}", tag = "tips", request_body = TipChange,
    params(("id" = i64, Path, description = "tip id")),
    responses((status = 200, body = Tip), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Body(c): Body<TipChange>,
) -> ApiResult<Json<Tip>> {
    auth.require_admin()?;
    let text_tg = c
        .text_tg
        .as_deref()
        .map(|v| check_text("text_tg", v))
        .transpose()?;
    let text_ru = c
        .text_ru
        .as_deref()
        .map(|v| check_text("text_ru", v))
        .transpose()?;
    let text_en = c
        .text_en
        .as_deref()
        .map(|v| check_text("text_en", v))
        .transpose()?;
    let mut conn = state.pool.acquire().await?;
    let change = tips::TipChange {
        text_tg: text_tg.as_deref(),
        text_ru: text_ru.as_deref(),
        text_en: text_en.as_deref(),
        position: c.position,
        active: c.active,
    };
    if !tips::update(&mut *conn, id, &change).await? {
        return Err(ApiError::NotFound("tip"));
    }
    tracing::info!(coordinator = auth.coordinator_id, tip = id, "tip changed");
    let tip = tips::get(&mut *conn, id)
        .await?
        .ok_or(ApiError::NotFound("tip"))?;
    Ok(Json(tip))
}
