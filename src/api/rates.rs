//! Exchange rates used to convert a pledge said in another currency (`500 RUB`): 1 `base`
//! = `rate` `quote`, from `valid_from` on. Every coordinator may read them (they are the
//! same for every community); only an admin adds one (403 for anyone else). A rate is never
//! edited: a new one from a later date replaces it, and a pledge keeps the rate it used.

use axum::{extract::State, http::StatusCode, Json};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    auth::Auth,
    error::{ApiError, ApiResult, Body, ErrorBody, Params},
};
use crate::{app::AppState, domain::Currency, store::rates};

pub use crate::store::rates::ExchangeRate;

fn currency(field: &'static str, v: &str) -> ApiResult<Currency> {
    v.parse().map_err(|_| {
        ApiError::invalid(
            field,
            format!("{field} is a three-letter currency code such as RUB"),
        )
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RateQuery {
    /// Only rates from this currency, e.g. RUB.
    pub base: Option<String>,
    /// Only rates to this currency, e.g. TJS.
    pub quote: Option<String>,
}

/// Exchange rates, newest first for each pair.
#[utoipa::path(get, path = "/api/v1/exchange-rates", tag = "exchange rates", params(RateQuery),
    responses((status = 200, body = [ExchangeRate]), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _auth: Auth,
    Params(q): Params<RateQuery>,
) -> ApiResult<Json<Vec<ExchangeRate>>> {
    let base = q.base.as_deref().map(|b| currency("base", b)).transpose()?;
    let quote = q
        .quote
        .as_deref()
        .map(|b| currency("quote", b))
        .transpose()?;
    let rows = rates::list(&state.pool, base, quote).await?;
    Ok(Json(rows))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExchangeRate {
    /// Three letters, e.g. RUB.
    pub base: String,
    /// Three letters, e.g. TJS; not the base.
    pub quote: String,
    /// More than 0, at most 8 decimals.
    #[schema(value_type = String)]
    pub rate: Decimal,
    /// The first day the rate applies, `YYYY-MM-DD`.
    pub valid_from: NaiveDate,
}

/// Adds a rate (admins only); the same pair from the same day twice answers 409.
#[utoipa::path(post, path = "/api/v1/exchange-rates", tag = "exchange rates", request_body = NewExchangeRate,
    responses((status = 201, body = ExchangeRate), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Body(r): Body<NewExchangeRate>,
) -> ApiResult<(StatusCode, Json<ExchangeRate>)> {
    auth.require_admin()?;
    let base = currency("base", &r.base)?;
    let quote = currency("quote", &r.quote)?;
    if base == quote {
        return Err(ApiError::invalid("quote", "quote must differ from base"));
    }
    if r.rate <= Decimal::ZERO
        || r.rate.normalize().scale() > 8
        || r.rate >= Decimal::from(1_000_000_000_000i64)
    {
        return Err(ApiError::invalid(
            "rate",
            "rate must be more than 0 and less than 10^12, with at most 8 decimals",
        ));
    }
    let row = rates::insert(&state.pool, base, quote, r.rate, r.valid_from).await;
    let row = match row {
        Ok(row) => row,
        Err(e) if crate::store::Violation::is_unique(&e) => {
            return Err(ApiError::Conflict(format!(
                "there is already a {base}→{quote} rate from {}",
                r.valid_from
            )))
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(coordinator = auth.coordinator_id, base = %base, quote = %quote, rate = %row.rate,
        valid_from = %r.valid_from, "exchange rate added");
    Ok((StatusCode::CREATED, Json(row)))
}
