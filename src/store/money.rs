//! Money recorded: receipts (for a pledge or without one), pledge cancellations and
//! partners' matching disbursements, each with its reversal. Rows are only appended; the
//! database refuses anything inconsistent (`check_violation`, see `migrations/*_money.sql`).
//!
//! The rows keep plain `i64` ids: they are the API's bodies as they are.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;

use super::{CommunityId, HouseholdId, PledgeId, ProjectId};

/// How money was received (`receipts.method`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    sqlx::Type,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ReceiptMethod {
    Cash,
    Bank,
    MobileMoney,
    Remittance,
    Other,
}

text_values!(ReceiptMethod {
    Cash => "cash",
    Bank => "bank",
    MobileMoney => "mobile_money",
    Remittance => "remittance",
    Other => "other",
});

/// A stored receipt, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    pub id: i64,
    pub project_id: i64,
    pub pledge_id: Option<i64>,
    pub household_id: Option<i64>,
    #[serde(serialize_with = "crate::domain::money::two_dp")]
    pub amount: Decimal,
    pub currency: String,
    pub received_on: NaiveDate,
    pub method: ReceiptMethod,
    pub receipt_no: Option<String>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
    /// On a reversal: the receipt it cancels (its amount is that receipt's, negated).
    pub reverses: Option<i64>,
    /// On a reversal: why.
    pub reason: Option<String>,
}

/// A receipt to record. `received_on` is the local date the money changed hands.
#[derive(Debug)]
pub struct ReceiptInsert<'a> {
    pub project_id: i64,
    pub pledge_id: Option<i64>,
    pub household_id: Option<i64>,
    pub amount: Decimal,
    pub currency: &'a str,
    pub received_on: NaiveDate,
    pub method: ReceiptMethod,
    pub receipt_no: Option<&'a str>,
    pub recorded_by: &'a str,
    pub recorded_at: DateTime<Utc>,
}

/// Inserts the receipt (a blank receipt number is none); a rule the database refuses comes
/// back as its `check_violation` error.
pub async fn insert_receipt(
    conn: &mut PgConnection,
    r: &ReceiptInsert<'_>,
) -> Result<Receipt, sqlx::Error> {
    sqlx::query_as!(
        Receipt,
        r#"insert into receipts (project_id, pledge_id, household_id, amount, currency, received_on,
                               method, receipt_no, recorded_by, recorded_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         returning id, project_id, pledge_id, household_id, amount, currency, received_on,
                   method as "method: ReceiptMethod", receipt_no, recorded_by, recorded_at, reverses, reason"#,
        r.project_id,
        r.pledge_id,
        r.household_id,
        r.amount,
        r.currency,
        r.received_on,
        r.method as ReceiptMethod,
        r.receipt_no.map(str::trim).filter(|s| !s.is_empty()),
        r.recorded_by,
        r.recorded_at
    )
    .fetch_one(conn)
    .await
}

/// Appends the reversal of receipt `id` (the same receipt with its amount negated, a reason,
/// who and when); `None` when there is no such receipt.
pub async fn reverse_receipt(
    conn: &mut PgConnection,
    id: i64,
    reason: &str,
    recorded_by: &str,
    recorded_at: DateTime<Utc>,
) -> Result<Option<Receipt>, sqlx::Error> {
    sqlx::query_as!(
        Receipt,
        r#"insert into receipts (project_id, pledge_id, household_id, amount, currency, received_on,
                               method, receipt_no, recorded_by, recorded_at, reverses, reason)
         select project_id, pledge_id, household_id, -amount, currency, received_on,
                method, null, $2, $3, id, $4
         from receipts where id = $1
         returning id, project_id, pledge_id, household_id, amount, currency, received_on,
                   method as "method: ReceiptMethod", receipt_no, recorded_by, recorded_at, reverses, reason"#,
        id,
        recorded_by,
        recorded_at,
        reason
    )
    .fetch_optional(conn)
    .await
}

/// A pledge's receipts and their reversals, in the order they were recorded.
pub async fn receipts_of_pledge(
    conn: &mut PgConnection,
    pledge: PledgeId,
) -> Result<Vec<Receipt>, sqlx::Error> {
    sqlx::query_as!(
        Receipt,
        r#"select id, project_id, pledge_id, household_id, amount, currency, received_on,
                method as "method: ReceiptMethod", receipt_no, recorded_by, recorded_at, reverses, reason
         from receipts where pledge_id = $1 order by id"#,
        pledge as PledgeId
    )
    .fetch_all(conn)
    .await
}

// A pledge's cancellation (no doc comment: it would change the OpenAPI document).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CancellationRow {
    pub reason: String,
    pub cancelled_by: String,
    pub cancelled_at: DateTime<Utc>,
}

/// Cancels `pledge`; `false` when it already is. The database refuses to cancel a pledge
/// money was received for (`check_violation`).
pub async fn cancel_pledge(
    conn: &mut PgConnection,
    pledge: PledgeId,
    reason: &str,
    cancelled_by: &str,
    cancelled_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "insert into pledge_cancellations (pledge_id, reason, cancelled_by, cancelled_at) values ($1, $2, $3, $4)
         on conflict (pledge_id) do nothing",
        pledge as PledgeId,
        reason,
        cancelled_by,
        cancelled_at
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// The cancellation of `pledge`, if it was cancelled.
pub async fn cancellation_of(
    conn: &mut PgConnection,
    pledge: PledgeId,
) -> Result<Option<CancellationRow>, sqlx::Error> {
    sqlx::query_as!(
        CancellationRow,
        "select reason, cancelled_by, cancelled_at from pledge_cancellations where pledge_id = $1",
        pledge as PledgeId
    )
    .fetch_optional(conn)
    .await
}

// A partner's matching disbursement for a project (no doc comment: as above).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Disbursement {
    pub id: i64,
    pub project_id: i64,
    #[serde(serialize_with = "crate::domain::money::two_dp")]
    pub amount: Decimal,
    pub currency: String,
    pub disbursed_on: NaiveDate,
    pub partner: String,
    pub reference: Option<String>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
    /// On a reversal: the disbursement it cancels (its amount is that one's, negated).
    pub reverses: Option<i64>,
    /// On a reversal: why.
    pub reason: Option<String>,
}

/// A disbursement to record.
#[derive(Debug)]
pub struct DisbursementInsert<'a> {
    pub project: ProjectId,
    pub amount: Decimal,
    pub currency: &'a str,
    pub disbursed_on: NaiveDate,
    pub partner: &'a str,
    pub reference: Option<&'a str>,
    pub recorded_by: &'a str,
    pub recorded_at: DateTime<Utc>,
}

/// Inserts the disbursement; the database refuses one beyond what is due
/// (`check_violation`).
pub async fn insert_disbursement(
    conn: &mut PgConnection,
    d: &DisbursementInsert<'_>,
) -> Result<Disbursement, sqlx::Error> {
    sqlx::query_as!(
        Disbursement,
        "insert into match_disbursements (project_id, amount, currency, disbursed_on, partner, reference, recorded_by, recorded_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning id, project_id, amount, currency, disbursed_on, partner, reference,
                   recorded_by, recorded_at, reverses, reason",
        d.project as ProjectId,
        d.amount,
        d.currency,
        d.disbursed_on,
        d.partner,
        d.reference,
        d.recorded_by,
        d.recorded_at
    )
    .fetch_one(conn)
    .await
}

/// Appends the reversal of disbursement `id` (amount negated, reason, who, when); `None`
/// when there is no such disbursement.
pub async fn reverse_disbursement(
    conn: &mut PgConnection,
    id: i64,
    reason: &str,
    recorded_by: &str,
    recorded_at: DateTime<Utc>,
) -> Result<Option<Disbursement>, sqlx::Error> {
    sqlx::query_as!(
        Disbursement,
        "insert into match_disbursements (project_id, amount, currency, disbursed_on, partner, reference,
                                          recorded_by, recorded_at, reverses, reason)
         select project_id, -amount, currency, disbursed_on, partner, reference, $2, $3, id, $4
         from match_disbursements where id = $1
         returning id, project_id, amount, currency, disbursed_on, partner, reference,
                   recorded_by, recorded_at, reverses, reason",
        id,
        recorded_by,
        recorded_at,
        reason
    )
    .fetch_optional(conn)
    .await
}

/// The community of household `id`, if there is such a household.
pub async fn household_community(
    conn: &mut PgConnection,
    id: HouseholdId,
) -> Result<Option<CommunityId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select community_id as "community: CommunityId" from households where id = $1"#,
        id as HouseholdId
    )
    .fetch_optional(conn)
    .await
}
