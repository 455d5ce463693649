//! Money received: the one place a receipt row is written, whether a coordinator records it
//! through the admin API (for a pledge or without one) or by phone (cash for a pledge), and
//! the one place the household's SMS receipt is written ([`queue_sms`]).
//! The database checks the rest (currency = the project's, no more than is outstanding,
//! nothing for a cancelled pledge; see `migrations/*_money.sql`).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use crate::{
    actions::{project_total, ActionError},
    app::AppState,
    domain::Phone,
    store::{self, ProjectId},
};

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

/// Queues the SMS receipt for `receipt` to the household behind `phone` (the pledge's
/// number), in the caller's transaction: in the household's language, with the project's
/// new matched total. Nothing when the number has left the household.
pub async fn queue_sms(
    state: &AppState,
    conn: &mut PgConnection,
    phone: &str,
    receipt: &Receipt,
    now: DateTime<Utc>,
) -> Result<(), ActionError> {
    let project = receipt.project_id;
    let phone = Phone::from_e164_unchecked(phone.to_owned());
    let Some(owner) = store::households::owner_of_phone(conn, &phone).await? else {
        return Ok(()); // the number left the household: nobody to tell
    };
    let Some(name) = store::projects::get(conn, ProjectId(project))
        .await?
        .map(|p| p.name)
    else {
        return Ok(());
    };
    let lang = owner
        .language
        .unwrap_or_else(|| state.hints.guess(&phone, state.config.default_language));
    let mut vars = project_total(conn, project).await?;
    vars.insert("project".into(), name.get(lang).to_owned());
    vars.insert(
        "amount".into(),
        crate::domain::money::format_amount(receipt.amount),
    );
    vars.insert("receipt_no".into(), receipt.label());
    let text = crate::engine::menu::fill(state.menus.text(lang, "sms.receipt"), |n| {
        vars.get(n).cloned()
    });
    crate::outbox::enqueue(
        conn,
        &crate::outbox::NewMessage {
            to: &phone,
            body: &text,
            kind: crate::outbox::Kind::Receipt,
            inbound_id: None,
        },
        state.config.sms_provider.name(),
        state.config.sms_max_segments,
        now,
    )
    .await?;
    Ok(())
}
