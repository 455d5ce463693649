//! Recording money: receipts for pledges (fully or partly) and without one, cancellations,
//! partners' matching disbursements. Every change is an appended row with who and when; the
//! database refuses anything inconsistent (see migrations/*_money.sql), which is answered
//! 409 with the reason. A receipt for a pledge sends the household an SMS receipt with the
//! project's new matched total, in its language, through the outbox, in the same
//! transaction.
//!
//! The routes only read the request and word the answer: what happens is
//! `service::money`'s (the actor's role and scope, the rules, the audit row, the
//! `Idempotency-Key` answer kept in the change's transaction), shared with the console.
//! Counsellors and programme officers handle no money (403).

use axum::{extract::State, http::StatusCode, Json};
use chrono::NaiveDate;
use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::{
    auth::Auth,
    error::{ApiError, ApiResult, Body, ErrorBody, Segments},
    idempotency::{Claim, Idempotent},
};
use crate::{
    app::AppState,
    service::{self, KeepAnswer, Once, ServiceError, ServiceResult},
    store::{money::ReceiptMethod, HouseholdId, PledgeId, ProjectId},
};

/// The answer of a route that requires an `Idempotency-Key`, kept under the key claimed by
/// the middleware in the same transaction as the money itself.
struct Answer<'a>(&'a Claim, StatusCode);

impl KeepAnswer for Answer<'_> {
    fn keep<'c>(
        &'c self,
        conn: &'c mut sqlx::PgConnection,
        body: &'c RawValue,
    ) -> BoxFuture<'c, ServiceResult<()>> {
        Box::pin(async move {
            self.0.save(conn, self.1, &body).await.map_err(|e| match e {
                ApiError::Internal(e) => ServiceError::Db(e),
                ApiError::Encode(e) => ServiceError::Encode(e),
                other => ServiceError::Db(sqlx::Error::Protocol(other.to_string())),
            })
        })
    }
}

pub use crate::service::money::Receipt;

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
    let receipt = service::money::receive_for_pledge(
        &state,
        &auth,
        PledgeId(id),
        service::money::PledgeReceipt {
            amount: r.amount,
            received_on: r.received_on,
            method: &r.method,
            receipt_no: r.receipt_no.as_deref(),
        },
        Once::Answer(&Answer(&key, StatusCode::CREATED)),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(receipt)))
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
    service::money::cancel(&state, &auth, PledgeId(id), &c.reason, Once::Always).await?;
    history(&state, &auth, id).await.map(Json)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PledgeHistory {
    pub pledge: super::pledges::Pledge,
    pub receipts: Vec<Receipt>,
    pub cancellation: Option<CancellationRow>,
    #[serde(serialize_with = "super::two_dp")]
    pub outstanding: Decimal,
    /// What was done to the pledge (receipts, reversals, a cancellation), with who and when,
    /// newest first (from the audit log).
    pub audit: Vec<AuditEntry>,
}

/// A row of the audit log about an object.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub at: chrono::DateTime<chrono::Utc>,
    /// `coordinator:<id>`, `system` or `cli`.
    pub actor: String,
    /// e.g. `receipt.record`, `receipt.reverse`, `pledge.cancel`.
    pub action: String,
    /// `{"before": …, "after": …}`.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

pub use crate::service::money::CancellationRow;

async fn history(state: &AppState, auth: &Auth, id: i64) -> ApiResult<PledgeHistory> {
    let h = service::money::history(state, auth, PledgeId(id)).await?;
    Ok(PledgeHistory {
        pledge: h.pledge.into(),
        receipts: h.receipts,
        cancellation: h.cancellation,
        outstanding: h.outstanding,
        audit: h
            .audit
            .into_iter()
            .map(|r| AuditEntry {
                at: r.at,
                actor: r.actor,
                action: r.action,
                detail: r.detail,
            })
            .collect(),
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
    let receipt = service::money::receive_without_pledge(
        &state,
        &auth,
        service::money::ProjectReceipt {
            project: ProjectId(r.project_id),
            household: r.household_id.map(HouseholdId),
            amount: r.amount,
            received_on: r.received_on,
            method: &r.method,
            receipt_no: r.receipt_no.as_deref(),
        },
        Once::Answer(&Answer(&key, StatusCode::CREATED)),
    )
    .await?;
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

pub use crate::service::money::Disbursement;

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
    let disbursement = service::money::disburse(
        &state,
        &auth,
        ProjectId(id),
        service::money::NewDisbursement {
            amount: d.amount,
            disbursed_on: d.disbursed_on,
            partner: &d.partner,
            reference: d.reference.as_deref(),
        },
        Once::Answer(&Answer(&key, StatusCode::CREATED)),
    )
    .await?;
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
    let reversal = service::money::reverse_receipt(
        &state,
        &auth,
        id,
        &r.reason,
        Once::Answer(&Answer(&key, StatusCode::CREATED)),
    )
    .await?;
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
    let reversal = service::money::reverse_disbursement(
        &state,
        &auth,
        id,
        &r.reason,
        Once::Answer(&Answer(&key, StatusCode::CREATED)),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(reversal)))
}
