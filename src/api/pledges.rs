//! `GET /api/v1/pledges`: pledges filtered by community, project, status, channel and date.

use axum::{extract::State, Json};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};

use super::{
    auth::Auth,
    error::{ApiError, ApiResult, ErrorBody, Params},
};
use crate::app::AppState;

#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct Pledge {
    pub id: i64,
    pub project_id: i64,
    pub community_id: i64,
    pub household_id: i64,
    pub phone: String,
    #[serde(serialize_with = "super::two_dp")]
    pub amount: Decimal,
    pub currency: String,
    #[serde(serialize_with = "super::opt_two_dp")]
    pub said_amount: Option<Decimal>,
    pub said_currency: Option<String>,
    pub rate: Option<Decimal>,
    pub channel: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PledgeQuery {
    pub community: Option<i64>,
    pub project: Option<i64>,
    /// pledged, received or cancelled
    pub status: Option<String>,
    /// ussd, sms or api
    pub channel: Option<String>,
    /// First day (inclusive), `YYYY-MM-DD`.
    pub from: Option<NaiveDate>,
    /// Last day (inclusive), `YYYY-MM-DD`.
    pub to: Option<NaiveDate>,
    /// At most 1000 (default 100).
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Pledges this coordinator may see, newest first.
#[utoipa::path(get, path = "/api/v1/pledges", tag = "pledges", params(PledgeQuery),
    responses((status = 200, body = [Pledge]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<PledgeQuery>,
) -> ApiResult<Json<Vec<Pledge>>> {
    if let Some(c) = q.community {
        auth.require(c)?;
    }
    if let Some(s) = &q.status {
        if !["pledged", "received", "cancelled"].contains(&s.as_str()) {
            return Err(ApiError::invalid(
                "status",
                "status is pledged, received or cancelled",
            ));
        }
    }
    if let Some(c) = &q.channel {
        if !["ussd", "sms", "api"].contains(&c.as_str()) {
            return Err(ApiError::invalid("channel", "channel is ussd, sms or api"));
        }
    }
    let (limit, offset) = super::error::paging(q.limit, q.offset)?;
    let rows = sqlx::query_as::<_, Pledge>(
        "select pl.id, pl.project_id, p.community_id, pl.household_id, pl.phone, pl.amount, pl.currency,
                pl.said_amount, pl.said_currency, pl.rate, pl.channel, pl.status, pl.created_at
         from pledges pl join projects p on p.id = pl.project_id
         where ($1::bigint[] is null or p.community_id = any($1))
           and ($2::bigint is null or p.community_id = $2)
           and ($3::bigint is null or pl.project_id = $3)
           and ($4::text is null or pl.status = $4)
           and ($5::text is null or pl.channel = $5)
           and ($6::date is null or pl.created_at >= $6::date)
           and ($7::date is null or pl.created_at < $7::date + 1)
         order by pl.created_at desc, pl.id desc
         limit $8 offset $9",
    )
    .bind(auth.scope())
    .bind(q.community)
    .bind(q.project)
    .bind(q.status)
    .bind(q.channel)
    .bind(q.from)
    .bind(q.to)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}

/// One pledge (no scope check: callers check it).
pub async fn one(conn: &mut sqlx::PgConnection, id: i64) -> Result<Option<Pledge>, sqlx::Error> {
    sqlx::query_as::<_, Pledge>(
        "select pl.id, pl.project_id, p.community_id, pl.household_id, pl.phone, pl.amount, pl.currency,
                pl.said_amount, pl.said_currency, pl.rate, pl.channel, pl.status, pl.created_at
         from pledges pl join projects p on p.id = pl.project_id where pl.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}
