//! Inbound messages (`inbound_messages`: every text and delivery report, stored raw first,
//! deduplicated on provider, kind and the provider's id) and the delivery reports that
//! wait for their message (`early_delivery_reports`).

use chrono::{DateTime, Utc};
use sqlx::{types::Json, PgConnection, PgPool};

use super::outbox::{Report, ReportState};
use super::OutboxId;
use crate::domain::Phone;

/// What an inbound message is (`inbound_messages.kind`, with its check constraint's names).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, serde::Deserialize,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum InboundKind {
    Sms,
    Delivery,
    UssdEvent,
}

text_values!(InboundKind {
    Sms => "sms",
    Delivery => "delivery",
    UssdEvent => "ussd_event",
});

/// A text as it came.
#[derive(Debug)]
pub struct NewSms<'a> {
    pub provider: &'a str,
    pub provider_msg_id: &'a str,
    /// The sender as the provider wrote it.
    pub sender: &'a str,
    pub raw: &'a serde_json::Value,
    pub text: &'a str,
    pub now: DateTime<Utc>,
}

/// Stores a text; `None` when one with the same provider and id is stored already (a retry).
pub async fn insert_sms(
    conn: &mut PgConnection,
    sms: &NewSms<'_>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into inbound_messages (provider, kind, provider_msg_id, sender, raw, text, received_at)
         values ($1, 'sms', $2, $3, $4, $5, $6)
         on conflict (provider, kind, provider_msg_id) do nothing
         returning id",
        sms.provider,
        sms.provider_msg_id,
        sms.sender,
        Json(sms.raw) as _,
        sms.text,
        sms.now,
    )
    .fetch_optional(conn)
    .await
}

/// Records what became of a stored text: its sender as a number (when it is one), the
/// outcome, when.
pub async fn mark_handled(
    conn: &mut PgConnection,
    id: i64,
    sender: Option<&Phone>,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update inbound_messages set sender_e164 = $2, outcome = $3, handled_at = $4 where id = $1",
        id,
        sender.map(Phone::as_str),
        outcome,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores a delivery report under `key` (its message and status) with `outcome`; `None`
/// when one with the same provider and key is stored already (a retry).
pub async fn insert_delivery(
    conn: &mut PgConnection,
    provider: &str,
    key: &str,
    raw: &serde_json::Value,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into inbound_messages (provider, kind, provider_msg_id, raw, received_at, outcome)
         values ($1, 'delivery', $2, $3, $4, $5)
         on conflict (provider, kind, provider_msg_id) do nothing returning id",
        provider,
        key,
        Json(raw) as _,
        now,
        outcome,
    )
    .fetch_optional(conn)
    .await
}

/// Keeps `report` (stored as inbound message `inbound_id`) until its message is recorded
/// sent: always when it names the provider's id; by our id when that message has been
/// handed to the provider (`sending`, or already `sent` or later: the send may have been
/// recorded between the caller's failed attempt to apply the report and this statement,
/// and the report must not be lost then). Returns whether it was kept.
pub async fn keep_early_report(
    conn: &mut PgConnection,
    inbound_id: i64,
    report: &Report<'_>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let (ours, pid) = report.ids();
    let kept = sqlx::query!(
        "insert into early_delivery_reports
             (inbound_id, provider, provider_msg_id, outbox_ref, state, provider_status, reason, received_at)
         select $1, $2, $3, $4, $5, $6, $7, $8
          where $4::bigint is null
             or exists (select 1 from outbox where id = $4 and provider = $2
                           and status in ('sending', 'sent', 'delivered', 'failed'))",
        inbound_id,
        report.provider,
        pid,
        ours as Option<OutboxId>,
        report.state as ReportState,
        report.provider_status,
        report.reason,
        now,
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(kept == 1)
}

/// Applies the waiting reports whose messages are now sent, in the order they arrived, and
/// prunes those waiting longer than 7 days (SQL function `apply_early_delivery_reports`).
/// Returns how many it applied.
pub async fn apply_early_reports(pool: &PgPool, now: DateTime<Utc>) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select apply_early_delivery_reports($1) as "applied!""#,
        now
    )
    .fetch_one(pool)
    .await
}
