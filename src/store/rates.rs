//! Exchange rates (`exchange_rates`): 1 `base` = `rate` `quote` from `valid_from` on; rows
//! are only added. The pledge functions read them in SQL (`pledge_at`); this is the API's
//! list and insert.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::domain::Currency;

/// A stored rate, as the API shows it (the rate normalized: `0.1234`, not `0.12340000`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExchangeRate {
    pub base: String,
    pub quote: String,
    /// 1 base = rate quote, e.g. `"0.1234"` for RUB→TJS.
    #[schema(value_type = String)]
    pub rate: Decimal,
    pub valid_from: NaiveDate,
    pub created_at: DateTime<Utc>,
}

impl ExchangeRate {
    fn normalized(mut self) -> ExchangeRate {
        self.rate = self.rate.normalize();
        self
    }
}

/// The rates, optionally of one base and/or one quote, newest first for each pair.
pub async fn list(
    pool: &PgPool,
    base: Option<Currency>,
    quote: Option<Currency>,
) -> Result<Vec<ExchangeRate>, sqlx::Error> {
    let rows = sqlx::query_as!(
        ExchangeRate,
        "select base, quote, rate, valid_from, created_at from exchange_rates
         where ($1::text is null or base = $1) and ($2::text is null or quote = $2)
         order by base, quote, valid_from desc",
        base.as_ref().map(Currency::as_str),
        quote.as_ref().map(Currency::as_str),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(ExchangeRate::normalized).collect())
}

/// Adds a rate; the same pair from the same day again is a unique violation.
pub async fn insert(
    pool: &PgPool,
    base: Currency,
    quote: Currency,
    rate: Decimal,
    valid_from: NaiveDate,
) -> Result<ExchangeRate, sqlx::Error> {
    let row = sqlx::query_as!(
        ExchangeRate,
        "insert into exchange_rates (base, quote, rate, valid_from) values ($1, $2, $3, $4)
         returning base, quote, rate, valid_from, created_at",
        base.as_str(),
        quote.as_str(),
        rate,
        valid_from,
    )
    .fetch_one(pool)
    .await?;
    Ok(row.normalized())
}
