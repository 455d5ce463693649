//! The outbox's SQL: queuing a message, the dispatcher's claims, leases and the record of
//! each send, delivery reports applied to a message, and the sending instances that share
//! the provider's rate (`dispatcher_instances`).
//!
//! The claim and send statements are measured by the SMS benchmark (`hashar-sms-bench`):
//! their text and the number of round trips they take are as they were before they moved
//! here (only output aliases with the macros' type overrides were added). The rules (what a
//! claim takes, what a claim's token is, when a result counts) are told in `crate::outbox`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::{BroadcastId, OutboxId};
use crate::domain::Phone;

/// Why a message is sent; a STOP confirmation is the one message an opted-out number gets.
/// Stored as text in `outbox.kind` (its check constraint lists the same names).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, serde::Deserialize,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Reply,
    StopConfirmation,
    Broadcast,
    Receipt,
    /// The code that confirms linking a number to a household (admin API).
    LinkCode,
    /// A counsellor took the household's callback request and will call today.
    Callback,
}

text_values!(Kind {
    Reply => "reply",
    StopConfirmation => "stop_confirmation",
    Broadcast => "broadcast",
    Receipt => "receipt",
    LinkCode => "link_code",
    Callback => "callback",
});

/// Where a message stands (`outbox.status`, with its check constraint's names): `queued`
/// → `sending` (claimed, under a lease) → `sent` → `delivered` | `failed`; `suppressed` for
/// an opted-out number, `cancelled` by hand.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, serde::Deserialize,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Failed,
    Suppressed,
    Cancelled,
}

text_values!(OutboxStatus {
    Queued => "queued",
    Sending => "sending",
    Sent => "sent",
    Delivered => "delivered",
    Failed => "failed",
    Suppressed => "suppressed",
    Cancelled => "cancelled",
});

/// A message to insert, measured and cut already.
#[derive(Debug)]
pub struct NewRow<'a> {
    pub phone: &'a Phone,
    pub body: &'a str,
    /// `gsm7` or `ucs2` (`outbox.encoding`).
    pub encoding: &'a str,
    pub segments: i32,
    pub provider: &'a str,
    pub kind: Kind,
    pub inbound_id: Option<i64>,
    pub broadcast: Option<BroadcastId>,
    pub now: DateTime<Utc>,
    /// A message that can wait: the recipient's zone, whose quiet hours it waits out, and
    /// when it is due (past them); `None`: due at `now`, never held.
    pub held: Option<Held<'a>>,
}

/// When a message that can wait goes, and in whose zone its quiet hours are read.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    /// An IANA zone name (`outbox.timezone`).
    pub zone: &'a str,
    /// `next_attempt_at`: not before the end of the quiet hours in `zone`.
    pub due: DateTime<Utc>,
}

/// Inserts a message, due at once (or, held, when its recipient's quiet hours end). A number that texted STOP gets nothing but the STOP
/// confirmation: anything else is stored as `suppressed`. At most one message per
/// broadcast and number (a unique index: a second one is a unique violation).
pub async fn insert(conn: &mut PgConnection, row: &NewRow<'_>) -> Result<OutboxId, sqlx::Error> {
    sqlx::query_scalar!(
        r#"insert into outbox (phone, body, encoding, segments, provider, kind, status, next_attempt_at,
                             inbound_id, created_at, updated_at, broadcast_id, timezone)
         values ($1, $2, $3, $4, $5, $6,
                 case when $6 <> 'stop_confirmation' and exists (select 1 from sms_optouts where phone = $1)
                      then 'suppressed' else 'queued' end,
                 coalesce($11::timestamptz, $7), $8, $7, $7, $9, $10)
         returning id as "id: OutboxId""#,
        row.phone.as_str(),
        row.body,
        row.encoding,
        row.segments,
        row.provider,
        row.kind as Kind,
        row.now,
        row.inbound_id,
        row.broadcast as Option<BroadcastId>,
        row.held.map(|h| h.zone),
        row.held.map(|h| h.due),
    )
    .fetch_one(conn)
    .await
}

/// A claimed message, as the claim returns it.
#[derive(Debug)]
pub struct Claimed {
    pub id: OutboxId,
    /// E.164, as stored (checked by the column's constraint).
    pub phone: String,
    pub body: String,
    /// As stored: `gsm7` or `ucs2`.
    pub encoding: String,
    pub segments: i32,
    /// The attempt this claim is (raised by the claim): with the owner, the claim's token.
    pub attempts: i32,
    /// The number texted STOP after the message was queued.
    pub opted_out: bool,
    pub kind: Kind,
    /// The zone whose quiet hours the message waits out (`None`: it goes at once).
    pub timezone: Option<String>,
}

/// What a dispatcher claims with.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    /// Through which provider (`outbox.provider`).
    pub provider: &'a str,
    /// Rows at most.
    pub limit: i64,
    /// Whether broadcast messages queued without a zone wait (quiet hours in the programme's
    /// zone; rows queued before zones were recorded). Those with a zone are claimed and
    /// checked against their own zone by the dispatcher.
    pub hold_broadcasts: bool,
    /// The dispatcher, written to `lease_owner`.
    pub owner: &'a str,
    pub now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
}

/// Claims due messages (`queued` and due, or `sending` with an expired lease) with `FOR
/// UPDATE SKIP LOCKED`: each is marked `sending`, leased until `lease_until`, with `owner`
/// as `lease_owner` and its attempt number raised. One statement.
pub async fn claim(pool: &PgPool, c: &ClaimRequest<'_>) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as!(
        Claimed,
        r#"with due as (
                 select id from outbox
                 where provider = $4
                   and ((status = 'queued' and next_attempt_at <= $1) or (status = 'sending' and lease_until < $1))
                   and (kind <> 'broadcast' or not $5 or timezone is not null)
                 order by next_attempt_at, id
                 limit $2
                 for update skip locked
             )
             update outbox o
                set status = 'sending', lease_until = $3, lease_owner = $6, attempts = o.attempts + 1,
                    updated_at = $1
               from due
              where o.id = due.id
             returning o.id as "id: OutboxId", o.phone, o.body, o.encoding, o.segments, o.attempts,
                       o.kind as "kind: Kind", o.timezone,
                       exists (select 1 from sms_optouts s where s.phone = o.phone) as "opted_out!""#,
        c.now,
        c.limit,
        c.lease_until,
        c.provider,
        c.hold_broadcasts,
        c.owner,
    )
    .fetch_all(pool)
    .await
}

/// A claim's token: the row, the attempt it was claimed for and the dispatcher that holds it.
#[derive(Debug, Clone, Copy)]
pub struct Token<'a> {
    pub id: OutboxId,
    pub attempts: i32,
    pub owner: &'a str,
}

/// Renews the lease of a row that still carries `token` and is `sending`; returns whether
/// it did (one statement, so no other dispatcher takes the row between check and renewal).
pub async fn renew_lease(
    pool: &PgPool,
    token: Token<'_>,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let renewed = sqlx::query!(
        "update outbox set lease_until = $4, updated_at = $5
              where id = $1 and attempts = $2 and lease_owner = $3 and status = 'sending'",
        token.id as OutboxId,
        token.attempts,
        token.owner,
        lease_until,
        now,
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(renewed == 1)
}

/// Gives a claimed, unsent row back if it still carries `token`: queued again at once, its
/// lease and attempt released.
pub async fn release(
    pool: &PgPool,
    token: Token<'_>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update outbox set status = 'queued', lease_until = null, lease_owner = null,
                    attempts = attempts - 1, updated_at = $4
              where id = $1 and attempts = $2 and lease_owner = $3 and status = 'sending'",
        token.id as OutboxId,
        token.attempts,
        token.owner,
        now,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives a claimed, unsent row that still carries `token` back until `at` (the end of its
/// recipient's quiet hours): queued again, its lease and attempt released.
pub async fn hold(
    pool: &PgPool,
    token: Token<'_>,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update outbox set status = 'queued', next_attempt_at = $4, lease_until = null, lease_owner = null,
                    attempts = attempts - 1, updated_at = $5
              where id = $1 and attempts = $2 and lease_owner = $3 and status = 'sending'",
        token.id as OutboxId,
        token.attempts,
        token.owner,
        at,
        now,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Queues a row that still carries `token` again for `at`, with the reason of the failed
/// attempt.
pub async fn retry_at(
    pool: &PgPool,
    token: Token<'_>,
    at: DateTime<Utc>,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update outbox set status = 'queued', next_attempt_at = $3, lease_until = null,
                            last_error = $4, updated_at = $5
                      where id = $1 and status = 'sending' and attempts = $2 and lease_owner = $6",
        token.id as OutboxId,
        token.attempts,
        at,
        error,
        now,
        token.owner,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the end of an attempt (`sent`, `failed` or `suppressed`) if the row still
/// carries `token` and is `sending`; returns whether it did.
pub async fn finish(
    pool: &PgPool,
    token: Token<'_>,
    status: OutboxStatus,
    provider_msg_id: Option<&str>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update outbox
                set status = $3, provider_msg_id = coalesce($4, provider_msg_id), last_error = coalesce($5, last_error),
                    lease_until = null, updated_at = $6,
                    sent_at = case when $3 = 'sent' then $6 else sent_at end,
                    failed_at = case when $3 in ('failed', 'suppressed') then $6 else failed_at end
              where id = $1 and status = 'sending' and attempts = $2 and lease_owner = $7",
        token.id as OutboxId,
        token.attempts,
        status as OutboxStatus,
        provider_msg_id,
        error,
        now,
        token.owner,
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Which message a delivery report names: ours by its id, or the provider's id for it.
#[derive(Debug, Clone, Copy)]
pub enum ReportRef<'a> {
    Ours(OutboxId),
    Provider(&'a str),
}

/// Where a delivery report says a message is (`early_delivery_reports.state`, and what
/// `apply_delivery` takes).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, serde::Deserialize,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ReportState {
    Sent,
    Delivered,
    Failed,
}

text_values!(ReportState {
    Sent => "sent",
    Delivered => "delivered",
    Failed => "failed",
});

/// A delivery report as the store keeps and applies it.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub provider: &'a str,
    pub message: ReportRef<'a>,
    pub state: ReportState,
    pub provider_status: &'a str,
    pub reason: Option<&'a str>,
}

impl Report<'_> {
    /// (our id, the provider's id): one of them is set.
    pub(crate) fn ids(&self) -> (Option<OutboxId>, Option<&str>) {
        match self.message {
            ReportRef::Ours(id) => (Some(id), None),
            ReportRef::Provider(pid) => (None, Some(pid)),
        }
    }
}

/// Applies a delivery report with the SQL function `apply_delivery` (forward only, within
/// the provider's messages); returns the message it moved, if it found one.
pub async fn apply_delivery(
    conn: &mut PgConnection,
    report: &Report<'_>,
    now: DateTime<Utc>,
) -> Result<Option<OutboxId>, sqlx::Error> {
    let (by_id, by_provider_id) = report.ids();
    let found = sqlx::query_scalar!(
        r#"select apply_delivery($1, $2, $3, $4, $5, $6, $7) as "id: OutboxId""#,
        report.provider,
        by_id as Option<OutboxId>,
        by_provider_id,
        report.state as ReportState,
        report.provider_status,
        report.reason,
        now,
    )
    .fetch_one(conn)
    .await?;
    Ok(found)
}

/// Registers `instance` as sending through `provider` (or renews its heartbeat) and counts
/// the live instances of that provider, itself included: those whose heartbeat is after
/// `live_after`. One statement.
pub async fn heartbeat(
    pool: &PgPool,
    instance: &str,
    provider: &str,
    now: DateTime<Utc>,
    live_after: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"with me as (
                 insert into dispatcher_instances (instance_id, provider, started_at, heartbeat_at)
                 values ($1, $2, $3, $3)
                 on conflict (instance_id) do update set heartbeat_at = excluded.heartbeat_at
             )
             select 1 + count(*) as "live!" from dispatcher_instances
              where provider = $2 and instance_id <> $1 and heartbeat_at > $4"#,
        instance,
        provider,
        now,
        live_after,
    )
    .fetch_one(pool)
    .await
}

/// Takes `instance` out of the sending instances (it stops).
pub async fn leave(pool: &PgPool, instance: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from dispatcher_instances where instance_id = $1",
        instance
    )
    .execute(pool)
    .await?;
    Ok(())
}
