//! Money received: the one place a receipt row is written, whether a coordinator records it
//! through the admin API (for a pledge or without one) or by phone (cash for a pledge), and
//! the one place the household's SMS receipt is written ([`queue_sms`]).
//! The database checks the rest (currency = the project's, no more than is outstanding,
//! nothing for a cancelled pledge; see `migrations/*_money.sql`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::{
    actions::{project_total, ActionError},
    app::AppState,
    domain::Phone,
    store::{self, ProjectId},
};

pub use crate::store::money::{Receipt, ReceiptInsert, ReceiptMethod};

impl Receipt {
    /// What the household's SMS receipt calls it: the coordinator's number, else ours.
    pub fn label(&self) -> String {
        self.receipt_no
            .clone()
            .unwrap_or_else(|| format!("#{}", self.id))
    }
}

/// Inserts the receipt in the caller's transaction; a rule the database refuses comes back
/// as its `check_violation` error for the caller to word.
pub async fn insert(
    conn: &mut PgConnection,
    r: &ReceiptInsert<'_>,
) -> Result<Receipt, sqlx::Error> {
    store::money::insert_receipt(conn, r).await
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
    store::money::reverse_receipt(conn, id, reason, recorded_by, recorded_at).await
}

/// Queues the SMS receipt for `receipt` to the household behind `phone` (the pledge's
/// number), in the caller's transaction: in the household's language, with the project's
/// new matched total. Nothing when the number has left the household.
pub async fn queue_sms(
    state: &AppState,
    conn: &mut PgConnection,
    phone: &str,
    receipt: &Receipt,
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
    state
        .queue_text(
            conn,
            &phone,
            lang,
            "sms.receipt",
            &vars,
            crate::outbox::Kind::Receipt,
        )
        .await?;
    Ok(())
}
