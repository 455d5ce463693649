//! Recording money: receipts for pledges (fully or partly) and without one, cancellations,
//! partners' matching disbursements. Every change is an appended row with who and when; the
//! database refuses anything inconsistent (see migrations/*_money.sql), which is answered
//! 409 with the reason. A receipt for a pledge sends the household an SMS receipt with the
//! project's new matched total, in its language, through the outbox, in the same
//! transaction.

use axum::{extract::State, http::StatusCode, Json};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;

use super::{
    auth::Auth,
    error::{money_date, opt_text, text, ApiError, ApiResult, Body, ErrorBody, Segments},
    idempotency::Idempotent,
};
use crate::{
    actions,
    app::AppState,
    receipts::{self, ReceiptInsert},
    store::{
        self,
        money::{DisbursementInsert, ReceiptMethod},
        pledges::Balance,
        PledgeId, ProjectId,
    },
};

/// Longest receipt number, partner reference and reason.
const MAX_RECEIPT_NO: usize = 50;
const MAX_REFERENCE: usize = 200;
const MAX_REASON: usize = 500;

/// A rule the database enforces, as a 409 with its reason; other errors as usual.
fn rule(e: sqlx::Error) -> ApiError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23514") => {
            ApiError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) if db.constraint() == Some("receipt_numbers_pkey") => {
            ApiError::Conflict(
                "this receipt number is already recorded in the project's community (reverse that receipt first if it was wrong)"
                    .into(),
            )
        }
        sqlx::Error::Database(db)
            if matches!(
                db.constraint(),
                Some("receipts_reverses_key" | "match_disbursements_reverses_key")
            ) =>
        {
            ApiError::Conflict("this entry is already reversed".into())
        }
        _ => ApiError::Internal(e),
    }
}

fn check_amount(field: &'static str, v: Decimal) -> ApiResult<()> {
    if v <= Decimal::ZERO || v.normalize().scale() > 2 || v >= Decimal::from(1_000_000_000_000i64) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be more than 0, with at most two decimals"),
        ));
    }
    Ok(())
}

pub use crate::receipts::Receipt;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPledgeReceipt {
    /// Defaults to what is still outstanding on the pledge.
    pub amount: Option<Decimal>,
    pub received_on: NaiveDate,
    /// cash, bank, mobile_money, remittance or other
    #[schema(value_type = ReceiptMethod, inline)]
    pub method: String,
    /// The paper receipt's number, unique in the community (1 to 50 characters).
    pub receipt_no: Option<String>,
}

/// Pledge `id` with what is outstanding on it, if this coordinator may see it.
async fn pledge_for(conn: &mut PgConnection, auth: &Auth, id: i64) -> ApiResult<Balance> {
    let p = store::pledges::balance(conn, PledgeId(id), false)
        .await?
        .ok_or(ApiError::NotFound("pledge"))?;
    if !auth.may(p.community.0) {
        return Err(ApiError::NotFound("pledge"));
    }
    Ok(p)
}

fn check_method(method: &str) -> ApiResult<ReceiptMethod> {
    method.parse().map_err(|()| {
        ApiError::invalid(
            "method",
            "method is cash, bank, mobile_money, remittance or other",
        )
    })
}

/// Records money received for a pledge (all of what is outstanding, or part of it).
/// Requires an `Idempotency-Key`; a retry with the same key returns the first answer.
#[utoipa::path(post, path = "/api/v1/pledges/{id}/receipts", tag = "money", request_body = NewPledgeReceipt,
    params(("id" = i64, Path, description = "pledge id"), IdempotencyKeyHeader),
    responses((status = 201, body = Receipt), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn receive_for_pledge(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Idempotent(key): Idempotent,
    Body(r): Body<NewPledgeReceipt>,
) -> ApiResult<(StatusCode, Json<Receipt>)> {
    let method = check_method(&r.method)?;
    let received_on = money_date("received_on", r.received_on, state.clock.now())?;
    let receipt_no = opt_text("receipt_no", r.receipt_no.as_deref(), MAX_RECEIPT_NO)?;
    let mut tx = state.pool.begin().await?;
    let pledge = pledge_for(&mut tx, &auth, id).await?;
    let amount = r.amount.unwrap_or(pledge.outstanding);
    check_amount("amount", amount)?;
    let receipt = receipts::insert(
        &mut tx,
        &ReceiptInsert {
            project_id: pledge.project.0,
            pledge_id: Some(id),
            household_id: None,
            amount,
            currency: &pledge.currency,
            received_on,
            method,
            receipt_no,
            recorded_by: &auth.who(),
            recorded_at: state.clock.now(),
        },
    )
    .await
    .map_err(rule)?;
    send_receipt(&state, &mut tx, &pledge.phone, &receipt).await?;
    key.save(&mut tx, StatusCode::CREATED, &receipt).await?;
    tx.commit().await?;
    tracing::info!(coordinator = auth.coordinator_id, pledge = id, amount = %amount, "money received for a pledge");
    Ok((StatusCode::CREATED, Json(receipt)))
}

/// The household's SMS receipt, queued with the change.
async fn send_receipt(
    state: &AppState,
    tx: &mut PgConnection,
    phone: &str,
    receipt: &Receipt,
) -> ApiResult<()> {
    receipts::queue_sms(state, tx, phone, receipt)
        .await
        .map_err(|e| match e {
            actions::ActionError::Db(db) => ApiError::Internal(db),
            _ => ApiError::NotFound("project"),
        })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cancellation {
    pub reason: String,
}

/// Cancels a pledge nothing was received for.
#[utoipa::path(post, path = "/api/v1/pledges/{id}/cancel", tag = "money", request_body = Cancellation,
    params(("id" = i64, Path, description = "pledge id")),
    responses((status = 200, body = PledgeHistory), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Body(c): Body<Cancellation>,
) -> ApiResult<Json<PledgeHistory>> {
    let reason = text("reason", &c.reason, MAX_REASON)?;
    let mut tx = state.pool.begin().await?;
    pledge_for(&mut tx, &auth, id).await?;
    let done = store::money::cancel_pledge(
        &mut tx,
        PledgeId(id),
        reason,
        &auth.who(),
        state.clock.now(),
    )
    .await
    .map_err(rule)?;
    if !done {
        return Err(ApiError::Conflict(format!(
            "pledge {id} is already cancelled"
        )));
    }
    tx.commit().await?;
    tracing::info!(
        coordinator = auth.coordinator_id,
        pledge = id,
        "pledge cancelled"
    );
    history(&state, &auth, id).await.map(Json)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PledgeHistory {
    pub pledge: super::pledges::Pledge,
    pub receipts: Vec<Receipt>,
    pub cancellation: Option<CancellationRow>,
    #[serde(serialize_with = "super::two_dp")]
    pub outstanding: Decimal,
}

pub use crate::store::money::CancellationRow;

async fn history(state: &AppState, auth: &Auth, id: i64) -> ApiResult<PledgeHistory> {
    let mut conn = state.pool.acquire().await?;
    let p = pledge_for(&mut conn, auth, id).await?;
    let pledge = super::pledges::one(&mut conn, id)
        .await?
        .ok_or(ApiError::NotFound("pledge"))?;
    let receipts = store::money::receipts_of_pledge(&mut conn, PledgeId(id)).await?;
    let cancellation = store::money::cancellation_of(&mut conn, PledgeId(id)).await?;
    Ok(PledgeHistory {
        pledge,
        receipts,
        outstanding: if cancellation.is_some() {
            Decimal::ZERO
        } else {
            p.outstanding
        },
        cancellation,
    })
}

/// A pledge with everything that happened to it.
#[utoipa::path(get, path = "/api/v1/pledges/{id}", tag = "money",
    params(("id" = i64, Path, description = "pledge id")),
    responses((status = 200, body = PledgeHistory), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_pledge(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<PledgeHistory>> {
    history(&state, &auth, id).await.map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReceipt {
    pub project_id: i64,
    pub household_id: Option<i64>,
    pub amount: Decimal,
    pub received_on: NaiveDate,
    #[schema(value_type = ReceiptMethod, inline)]
    pub method: String,
    /// The paper receipt's number, unique in the community (1 to 50 characters).
    pub receipt_no: Option<String>,
}

async fn project_scope(
    conn: &mut PgConnection,
    auth: &Auth,
    project: i64,
) -> ApiResult<(i64, String)> {
    let p = store::projects::get(conn, ProjectId(project))
        .await?
        .ok_or(ApiError::invalid("project_id", "no such project"))?;
    auth.require(p.community.0)?;
    Ok((p.community.0, p.currency))
}

/// Records money received for a project without a pledge.
/// Requires an `Idempotency-Key`; a retry with the same key returns the first answer.
#[utoipa::path(post, path = "/api/v1/receipts", tag = "money", request_body = NewReceipt,
    params(IdempotencyKeyHeader),
    responses((status = 201, body = Receipt), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn receive_without_pledge(
    State(state): State<AppState>,
    auth: Auth,
    Idempotent(key): Idempotent,
    Body(r): Body<NewReceipt>,
) -> ApiResult<(StatusCode, Json<Receipt>)> {
    let method = check_method(&r.method)?;
    check_amount("amount", r.amount)?;
    let received_on = money_date("received_on", r.received_on, state.clock.now())?;
    let receipt_no = opt_text("receipt_no", r.receipt_no.as_deref(), MAX_RECEIPT_NO)?;
    let mut tx = state.pool.begin().await?;
    let (community, currency) = project_scope(&mut tx, &auth, r.project_id).await?;
    if let Some(h) = r.household_id {
        let same: Option<i64> =
            sqlx::query_scalar("select community_id from households where id = $1")
                .bind(h)
                .fetch_optional(&mut *tx)
                .await?;
        if same != Some(community) {
            return Err(ApiError::invalid(
                "household_id",
                "no such household in the project's community",
            ));
        }
    }
    let receipt = receipts::insert(
        &mut tx,
        &ReceiptInsert {
            project_id: r.project_id,
            pledge_id: None,
            household_id: r.household_id,
            amount: r.amount,
            currency: &currency,
            received_on,
            method,
            receipt_no,
            recorded_by: &auth.who(),
            recorded_at: state.clock.now(),
        },
    )
    .await
    .map_err(rule)?;
    key.save(&mut tx, StatusCode::CREATED, &receipt).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(receipt)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDisbursement {
    pub amount: Decimal,
    pub disbursed_on: NaiveDate,
    /// 1 to 200 characters.
    pub partner: String,
    /// At most 200 characters.
    pub reference: Option<String>,
}

pub use crate::store::money::Disbursement;

/// Records a partner's matching disbursement for a project (never beyond what is due).
/// Requires an `Idempotency-Key`; a retry with the same key returns the first answer.
#[utoipa::path(post, path = "/api/v1/projects/{id}/disbursements", tag = "money", request_body = NewDisbursement,
    params(("id" = i64, Path, description = "project id"), IdempotencyKeyHeader),
    responses((status = 201, body = Disbursement), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn disburse(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Idempotent(key): Idempotent,
    Body(d): Body<NewDisbursement>,
) -> ApiResult<(StatusCode, Json<Disbursement>)> {
    check_amount("amount", d.amount)?;
    let partner = text("partner", &d.partner, 200)?;
    let reference = opt_text("reference", d.reference.as_deref(), MAX_REFERENCE)?;
    let disbursed_on = money_date("disbursed_on", d.disbursed_on, state.clock.now())?;
    let mut tx = state.pool.begin().await?;
    let project = store::projects::get(&mut tx, ProjectId(id))
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    if !auth.may(project.community.0) {
        return Err(ApiError::NotFound("project"));
    }
    let disbursement = store::money::insert_disbursement(
        &mut tx,
        &DisbursementInsert {
            project: project.id,
            amount: d.amount,
            currency: &project.currency,
            disbursed_on,
            partner,
            reference,
            recorded_by: &auth.who(),
            recorded_at: state.clock.now(),
        },
    )
    .await
    .map_err(rule)?;
    key.save(&mut tx, StatusCode::CREATED, &disbursement)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(disbursement)))
}

/// The `Idempotency-Key` header, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// A unique string per request (e.g. a UUID, 1 to 200 visible ASCII characters), sent
    /// again unchanged when retrying: the retry gets the first answer and nothing is
    /// recorded twice; the same key with a different request is refused (422); while the
    /// first request runs, a retry gets 409. Remembered for 24 hours per token. Required
    /// on the routes that record money, optional on every other POST.
    #[param(rename = "Idempotency-Key")]
    #[allow(dead_code)]
    idempotency_key: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reversal {
    /// Why the entry is reversed (1 to 500 characters).
    pub reason: String,
}

/// Reverses a receipt recorded by mistake (admins only): appends a reversal row (the same
/// receipt with its amount negated, the reason, who and when); totals, the pledge's
/// outstanding amount and its status follow. Nothing is deleted. A receipt is reversed at
/// most once, a reversal never; a reversal that would leave partners' matching above what
/// is due is refused (reverse the disbursement first). The receipt number is freed.
/// Requires an `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/receipts/{id}/reversal", tag = "money", request_body = Reversal,
    params(("id" = i64, Path, description = "receipt id"), IdempotencyKeyHeader),
    responses((status = 201, body = Receipt), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reverse_receipt(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Idempotent(key): Idempotent,
    Body(r): Body<Reversal>,
) -> ApiResult<(StatusCode, Json<Receipt>)> {
    auth.require_admin()?;
    let reason = text("reason", &r.reason, MAX_REASON)?;
    let mut tx = state.pool.begin().await?;
    let reversal = receipts::reverse(&mut tx, id, reason, &auth.who(), state.clock.now())
        .await
        .map_err(rule)?
        .ok_or(ApiError::NotFound("receipt"))?;
    key.save(&mut tx, StatusCode::CREATED, &reversal).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = auth.coordinator_id,
        receipt = id,
        "receipt reversed"
    );
    Ok((StatusCode::CREATED, Json(reversal)))
}

/// Reverses a partner's matching disbursement recorded by mistake (admins only): appends
/// a reversal row (amount negated, reason, who, when); what is disbursed and still due
/// follow. A disbursement is reversed at most once, a reversal never. Requires an
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/disbursements/{id}/reversal", tag = "money", request_body = Reversal,
    params(("id" = i64, Path, description = "disbursement id"), IdempotencyKeyHeader),
    responses((status = 201, body = Disbursement), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reverse_disbursement(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Idempotent(key): Idempotent,
    Body(r): Body<Reversal>,
) -> ApiResult<(StatusCode, Json<Disbursement>)> {
    auth.require_admin()?;
    let reason = text("reason", &r.reason, MAX_REASON)?;
    let mut tx = state.pool.begin().await?;
    let reversal =
        store::money::reverse_disbursement(&mut tx, id, reason, &auth.who(), state.clock.now())
            .await
            .map_err(rule)?
            .ok_or(ApiError::NotFound("disbursement"))?;
    key.save(&mut tx, StatusCode::CREATED, &reversal).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = auth.coordinator_id,
        disbursement = id,
        "disbursement reversed"
    );
    Ok((StatusCode::CREATED, Json(reversal)))
}
