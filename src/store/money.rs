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

/// Receipt `id` (a reversal too), whatever its project: the caller checks the scope.
pub async fn receipt(conn: &mut PgConnection, id: i64) -> Result<Option<Receipt>, sqlx::Error> {
    sqlx::query_as!(
        Receipt,
        r#"select id, project_id, pledge_id, household_id, amount, currency, received_on,
                method as "method: ReceiptMethod", receipt_no, recorded_by, recorded_at, reverses, reason
         from receipts where id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Whether receipt `id` has been reversed.
pub async fn receipt_reversed(conn: &mut PgConnection, id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from receipts where reverses = $1) as "reversed!""#,
        id
    )
    .fetch_one(conn)
    .await
}

/// A project's receipts without a pledge and their reversals, newest first (at most `limit`).
pub async fn receipts_without_pledge(
    conn: &mut PgConnection,
    project: ProjectId,
    limit: i64,
) -> Result<Vec<Receipt>, sqlx::Error> {
    sqlx::query_as!(
        Receipt,
        r#"select id, project_id, pledge_id, household_id, amount, currency, received_on,
                method as "method: ReceiptMethod", receipt_no, recorded_by, recorded_at, reverses, reason
         from receipts where project_id = $1 and pledge_id is null order by id desc limit $2"#,
        project as ProjectId,
        limit
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

/// The pledge with this 7-digit code (codes are unique across the programme), whatever its
/// status or community: the caller checks the scope.
pub async fn pledge_by_code(
    conn: &mut PgConnection,
    code: &str,
) -> Result<Option<PledgeId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select id as "id: PledgeId" from pledges where code = $1"#,
        code
    )
    .fetch_optional(conn)
    .await
}

/// What the money page shows of a pledge besides its history: its code, its household's
/// number and the project's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PledgeCard {
    pub code: String,
    pub household: HouseholdId,
    /// The household's name, if it was given one.
    pub household_name: Option<String>,
    /// The number that pledged (E.164).
    pub phone: String,
    pub project: ProjectId,
    pub project_name: super::Localized,
}

/// The card of pledge `id`.
pub async fn pledge_card(
    conn: &mut PgConnection,
    id: PledgeId,
) -> Result<Option<PledgeCard>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select pl.code, pl.household_id as "household: HouseholdId", h.name as household_name,
                  pl.phone, pl.project_id as "project: ProjectId", p.name_tg, p.name_ru, p.name_en
           from pledges pl join projects p on p.id = pl.project_id
           join households h on h.id = pl.household_id
           where pl.id = $1"#,
        id as PledgeId
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| PledgeCard {
        code: r.code,
        household: r.household,
        household_name: r.household_name,
        phone: r.phone,
        project: r.project,
        project_name: super::Localized {
            tg: r.name_tg,
            ru: r.name_ru,
            en: r.name_en,
        },
    }))
}

/// A project's money in one row of the `project_totals` view (trigger-kept sums, so as
/// cheap at a million pledges as at ten): received, matched, the matched total, what
/// partners disbursed and what is still due from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectLedger {
    pub project: ProjectId,
    pub community: CommunityId,
    pub name: super::Localized,
    pub currency: String,
    pub target: Decimal,
    pub pledged: Decimal,
    pub received: Decimal,
    pub matched: Decimal,
    pub matched_total: Decimal,
    pub disbursed: Decimal,
    pub match_due: Decimal,
}

/// The ledger figures of project `id`.
pub async fn project_ledger(
    conn: &mut PgConnection,
    id: ProjectId,
) -> Result<Option<ProjectLedger>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select p.id as "project: ProjectId", p.community_id as "community: CommunityId",
                  p.name_tg, p.name_ru, p.name_en, p.currency, p.target,
                  t.pledged as "pledged!", t.received as "received!", t.matched as "matched!",
                  t.matched_total as "matched_total!", t.disbursed as "disbursed!",
                  t.match_due as "match_due!"
           from projects p join project_totals t on t.project_id = p.id
           where p.id = $1"#,
        id as ProjectId
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| ProjectLedger {
        project: r.project,
        community: r.community,
        name: super::Localized {
            tg: r.name_tg,
            ru: r.name_ru,
            en: r.name_en,
        },
        currency: r.currency,
        target: r.target,
        pledged: r.pledged,
        received: r.received,
        matched: r.matched,
        matched_total: r.matched_total,
        disbursed: r.disbursed,
        match_due: r.match_due,
    }))
}

/// A project's disbursements and their reversals, newest first (at most `limit`).
pub async fn disbursements_of_project(
    conn: &mut PgConnection,
    project: ProjectId,
    limit: i64,
) -> Result<Vec<Disbursement>, sqlx::Error> {
    sqlx::query_as!(
        Disbursement,
        "select id, project_id, amount, currency, disbursed_on, partner, reference,
                recorded_by, recorded_at, reverses, reason
         from match_disbursements where project_id = $1 order by id desc limit $2",
        project as ProjectId,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Disbursement `id` (a reversal too), and whether it has been reversed; the caller checks
/// the scope.
pub async fn disbursement(
    conn: &mut PgConnection,
    id: i64,
) -> Result<Option<(Disbursement, bool)>, sqlx::Error> {
    let row = sqlx::query_as!(
        Disbursement,
        "select id, project_id, amount, currency, disbursed_on, partner, reference,
                recorded_by, recorded_at, reverses, reason
         from match_disbursements where id = $1",
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(d) = row else { return Ok(None) };
    let reversed = sqlx::query_scalar!(
        r#"select exists(select 1 from match_disbursements where reverses = $1) as "reversed!""#,
        id
    )
    .fetch_one(conn)
    .await?;
    Ok(Some((d, reversed)))
}

/// A receipt as the Money page lists it: with its project's name and its pledge's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentReceipt {
    pub id: i64,
    pub amount: Decimal,
    pub currency: String,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
    pub pledge: Option<PledgeId>,
    pub code: Option<String>,
    pub project: ProjectId,
    pub project_name: super::Localized,
}

/// Receipts (reversals included) recorded since `since` in the communities of `scope`
/// (`None`: all), newest first, at most `limit` (read along `receipts_recorded_at_idx`).
pub async fn receipts_since(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    scope: Option<&[i64]>,
    limit: i64,
) -> Result<Vec<RecentReceipt>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select r.id, r.amount, r.currency, r.recorded_at, r.recorded_by,
                  r.pledge_id as "pledge: PledgeId", pl.code as "code?",
                  r.project_id as "project: ProjectId", p.name_tg, p.name_ru, p.name_en
           from receipts r join projects p on p.id = r.project_id
           left join pledges pl on pl.id = r.pledge_id
           where r.recorded_at >= $1 and ($2::bigint[] is null or p.community_id = any($2))
           order by r.recorded_at desc, r.id desc limit $3"#,
        since,
        scope,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RecentReceipt {
            id: r.id,
            amount: r.amount,
            currency: r.currency,
            recorded_at: r.recorded_at,
            recorded_by: r.recorded_by,
            pledge: r.pledge,
            code: r.code,
            project: r.project,
            project_name: super::Localized {
                tg: r.name_tg,
                ru: r.name_ru,
                en: r.name_en,
            },
        })
        .collect())
}
