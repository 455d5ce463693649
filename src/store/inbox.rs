//! Inbound messages (`inbound_messages`: every text and delivery report, stored raw first,
//! deduplicated on provider, kind and the provider's id) and the delivery reports that
//! wait for their message (`early_delivery_reports`).

use chrono::{DateTime, Utc};
use sqlx::{types::Json, PgConnection, PgPool};

use rust_decimal::Decimal;

use super::outbox::{Kind, Report, ReportState};
use super::{OutboxId, ProjectId, Texts};
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

/// A stored text, locked for the caller's transaction: its id and whether it has been
/// handled. A retry of a text stored but never handled (its process died after a quick
/// path's first statement) is handled then, not taken for a duplicate.
pub async fn lock_sms(
    conn: &mut PgConnection,
    provider: &str,
    provider_msg_id: &str,
) -> Result<Option<(i64, bool)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select id, handled_at is not null as "handled!" from inbound_messages
           where provider = $1 and kind = 'sms' and provider_msg_id = $2
           for update"#,
        provider,
        provider_msg_id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.id, r.handled)))
}

/// A text to answer on the quick path (`crate::sms`): stored, from a known number, with its
/// reply measured for the outbox.
#[derive(Debug)]
pub struct Answer<'a> {
    pub sms: &'a NewSms<'a>,
    pub sender: &'a Phone,
    /// `inbound_messages.outcome`.
    pub outcome: &'a str,
    /// `outbox.provider`: the provider replies go through.
    pub reply_provider: &'a str,
    /// The reply, cut to the segments allowed, with its encoding's name (`gsm7`, `ucs2`)
    /// and its number of segments (`crate::outbox::Measured`).
    pub body: &'a str,
    pub encoding: &'a str,
    pub segments: i32,
    pub kind: Kind,
}

/// Records a text handled and queues its reply, in one statement. The reply is queued like
/// [`super::outbox::insert`]'s (`suppressed` to a number that texted STOP, unless a STOP
/// confirmation). Either
/// - `stored` is `None`: the text is stored now, handled (a text whose answer changes
///   nothing: totals, a question back); `None` comes back when a text with the same provider
///   and id is stored already (a retry), and nothing is written; or
/// - `stored` is the text stored earlier (with its pledge): it is marked handled, unless it
///   has been handled already (by a retry of the text, or by [`unhandled_sms`]'s caller),
///   when nothing is written and `None` comes back, so a text is answered once.
///
/// Returns the text's id and its reply's.
pub async fn answer(
    conn: &mut PgConnection,
    stored: Option<i64>,
    a: &Answer<'_>,
) -> Result<Option<(i64, OutboxId)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"with text as (
               insert into inbound_messages (provider, kind, provider_msg_id, sender, raw, text, received_at,
                                             sender_e164, outcome, handled_at)
               select $1, 'sms', $2, $3, $4, $5, $6, $7, $8, $6
               where $14::bigint is null
               on conflict (provider, kind, provider_msg_id) do nothing
               returning id),
           handled as (
               update inbound_messages set sender_e164 = $7, outcome = $8, handled_at = $6
               where id = $14 and handled_at is null
               returning id),
           answered as (select id from text union all select id from handled)
           insert into outbox (phone, body, encoding, segments, provider, kind, status, next_attempt_at,
                               inbound_id, created_at, updated_at)
           select $7, $9, $10, $11, $12, $13,
                  case when $13 <> 'stop_confirmation' and exists (select 1 from sms_optouts where phone = $7)
                       then 'suppressed' else 'queued' end,
                  $6, answered.id, $6, $6
           from answered
           returning inbound_id as "inbound!", id as "reply: OutboxId""#,
        a.sms.provider,
        a.sms.provider_msg_id,
        a.sms.sender,
        Json(a.sms.raw) as _,
        a.sms.text,
        a.sms.now,
        a.sender.as_str(),
        a.outcome,
        a.body,
        a.encoding,
        a.segments,
        a.reply_provider,
        a.kind as Kind,
        stored,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.inbound, r.reply)))
}

/// A pledge by text on the quick path: the text stored (not yet handled) and the pledge
/// made (SQL function `create_pledge`, channel `sms`, idempotent on `key`) in one
/// statement, which returns the text's id and the project's new figures. `code`: a pledge
/// code made ahead by this process (`super::pledge_codes`), which the pledge takes if it is
/// unused (`None`, or a used one: the trigger makes one). `None` when the text is stored
/// already (a retry: nothing is done). A closed project or one not the caller's fails the
/// whole statement with SQLSTATE `HS001`, and nothing is stored.
pub async fn insert_pledging(
    conn: &mut PgConnection,
    sms: &NewSms<'_>,
    sender: &Phone,
    project: ProjectId,
    amount: Decimal,
    key: &str,
    code: Option<&str>,
) -> Result<Option<(i64, Texts)>, sqlx::Error> {
    // The code is set first: the text's insert reads the materialized row that sets it, and
    // the pledge is made for the inserted text.
    let row = sqlx::query!(
        r#"with code as materialized (select set_config('hashar.pledge_code', $11, true)),
           text as (
               insert into inbound_messages (provider, kind, provider_msg_id, sender, raw, text, received_at,
                                             sender_e164)
               select $1, 'sms', $2, $3, $4, $5, $6, $7 from code
               on conflict (provider, kind, provider_msg_id) do nothing
               returning id)
           select text.id as "inbound!",
                  create_pledge($8, $7, $9, 'sms', $10, null, null, null) as "totals!: Json<Texts>"
           from text"#,
        sms.provider,
        sms.provider_msg_id,
        sms.sender,
        Json(sms.raw) as _,
        sms.text,
        sms.now,
        sender.as_str(),
        project as ProjectId,
        amount,
        key,
        code.unwrap_or(""),
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.inbound, r.totals.0)))
}

/// A text stored but not handled.
#[derive(Debug)]
pub struct Unhandled {
    pub provider: String,
    pub provider_msg_id: String,
    pub sender: Option<String>,
    pub raw: serde_json::Value,
    pub text: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// Texts received between `from` and `before` and never handled, oldest first, at most
/// `limit` (by `inbound_messages_unhandled_sms_idx`).
pub async fn unhandled_sms(
    pool: &PgPool,
    from: DateTime<Utc>,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Unhandled>, sqlx::Error> {
    sqlx::query_as!(
        Unhandled,
        r#"select provider, provider_msg_id, sender, raw, text, received_at from inbound_messages
           where kind = 'sms' and handled_at is null and received_at >= $1 and received_at < $2
           order by received_at
           limit $3"#,
        from,
        before,
        limit,
    )
    .fetch_all(pool)
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
