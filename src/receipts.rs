//! Money received: the one place a receipt row is written, whether a coordinator records it
//! through the admin API (for a pledge or without one) or by phone (cash for a pledge).
//! The database checks the rest (currency = the project's, no more than is outstanding,
//! nothing for a cancelled pledge; see `migrations/*_money.sql`).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

/// A stored receipt, as the API shows it.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct Receipt {
    pub id: i64,
    pub project_id: i64,
    pub pledge_id: Option<i64>,
    pub household_id: Option<i64>,
    #[serde(serialize_with = "crate::domain::money::two_dp")]
    pub amount: Decimal,
    pub currency: String,
    pub received_on: NaiveDate,
    pub method: String,
    pub receipt_no: Option<String>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
    /// On a reversal: the receipt it cancels (its amount is that receipt's, negated).
    pub reverses: Option<i64>,
    /// On a reversal: why.
    pub reason: Option<String>,
}

/// The columns of a [`Receipt`], for `select` and `returning`.
pub const COLUMNS: &str =
    "id, project_id, pledge_id, household_id, amount, currency, received_on, \
     method, receipt_no, recorded_by, recorded_at, reverses, reason";

impl Receipt {
    /// What the household's SMS receipt calls it: the coordinator's number, else ours.
    pub fn label(&self) -> String {
        self.receipt_no
            .clone()
            .unwrap_or_else(|| format!("#{}", self.id))
    }
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
    pub method: &'a str,
    pub receipt_no: Option<&'a str>,
    pub recorded_by: &'a str,
    pub recorded_at: DateTime<Utc>,
}

/// Inserts the receipt in the caller's transaction; a rule the database refuses comes back
/// as its `check_violation` error for the caller to word.
pub async fn insert(
    conn: &mut PgConnection,
    r: &ReceiptInsert<'_>,
) -> Result<Receipt, sqlx::Error> {
    sqlx::query_as::<_, Receipt>(&format!(
        "insert into receipts (project_id, pledge_id, household_id, amount, currency, received_on,
                               method, receipt_no, recorded_by, recorded_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         returning {COLUMNS}"
    ))
    .bind(r.project_id)
    .bind(r.pledge_id)
    .bind(r.household_id)
    .bind(r.amount)
    .bind(r.currency)
    .bind(r.received_on)
    .bind(r.method)
    .bind(r.receipt_no.map(str::trim).filter(|s| !s.is_empty()))
    .bind(r.recorded_by)
    .bind(r.recorded_at)
    .fetch_one(conn)
    .await
}

/// Appends the reversal of receipt `id` (the same receipt with its amount negated, a reason,
/// who and when) in the caller's transaction. The database refuses a second reversal, the
/// reversal of a reversal, and one that would leave partners' matching above what is due
/// (`check_violation`); `None` when there is no such receipt.
pub async fn reverse(
    conn: &mut PgConnection,
    id: i64,
    reason: &str,
    recorded_by: &str,
    recorded_at: DateTime<Utc>,
) -> Result<Option<Receipt>, sqlx::Error> {
    sqlx::query_as::<_, Receipt>(&format!(
        "insert into receipts (project_id, pledge_id, household_id, amount, currency, received_on,
                               method, receipt_no, recorded_by, recorded_at, reverses, reason)
         select project_id, pledge_id, household_id, -amount, currency, received_on,
                method, null, $2, $3, id, $4
         from receipts where id = $1
         returning {COLUMNS}"
    ))
    .bind(id)
    .bind(recorded_by)
    .bind(recorded_at)
    .bind(reason)
    .fetch_optional(conn)
    .await
}
