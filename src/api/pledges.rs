//! `GET /api/v1/pledges`: pledges filtered by community, project, status, channel and date.

use axum::{extract::State, Json};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    auth::Auth,
    error::{ApiError, ApiResult, ErrorBody, Params},
};
use crate::{
    app::AppState,
    store::{
        self,
        pledges::{PledgeChannel, PledgeFilter, PledgeStatus},
        CommunityId, PledgeId, ProjectId,
    },
};

#[derive(Debug, Serialize, ToSchema)]
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
    pub channel: PledgeChannel,
    pub status: PledgeStatus,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PledgeQuery {
    pub community: Option<i64>,
    pub project: Option<i64>,
    /// pledged, received or cancelled
    #[param(value_type = Option<PledgeStatus>, inline)]
    pub status: Option<String>,
    /// ussd, sms or api
    #[param(value_type = Option<PledgeChannel>, inline)]
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
    let status = match &q.status {
        None => None,
        Some(s) => Some(s.parse::<PledgeStatus>().map_err(|()| {
            ApiError::invalid("status", "status is pledged, received or cancelled")
        })?),
    };
    let channel = match &q.channel {
        None => None,
        Some(c) => Some(
            c.parse::<PledgeChannel>()
                .map_err(|()| ApiError::invalid("channel", "channel is ussd, sms or api"))?,
        ),
    };
    let (limit, offset) = super::error::paging(q.limit, q.offset)?;
    let mut conn = state.pool.acquire().await?;
    let rows = store::pledges::list(
        &mut conn,
        &PledgeFilter {
            scope: auth.scope(),
            community: q.community.map(CommunityId),
            project: q.project.map(ProjectId),
            status,
            channel,
            from: q.from,
            to: q.to,
            limit,
            offset,
        },
    )
    .await?;
    Ok(Json(rows.into_iter().map(Pledge::from).collect()))
}

impl From<store::pledges::Pledge> for Pledge {
    fn from(p: store::pledges::Pledge) -> Pledge {
        Pledge {
            id: p.id.0,
            project_id: p.project.0,
            community_id: p.community.0,
            household_id: p.household.0,
            phone: p.phone,
            amount: p.amount,
            currency: p.currency,
            said_amount: p.said_amount,
            said_currency: p.said_currency,
            rate: p.rate,
            channel: p.channel,
            status: p.status,
            created_at: p.created_at,
        }
    }
}

/// One pledge (no scope check: callers check it).
pub async fn one(conn: &mut sqlx::PgConnection, id: i64) -> Result<Option<Pledge>, sqlx::Error> {
    Ok(store::pledges::one(conn, PledgeId(id))
        .await?
        .map(Pledge::from))
}
