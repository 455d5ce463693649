//! The audit log (`audit_log`, append-only: who did what to which object, when, with a small
//! before → after) and the console forms' one-time keys (`console_form_keys`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::CommunityId;

/// A row to append to the audit log.
#[derive(Debug)]
pub struct AuditInsert<'a> {
    pub at: DateTime<Utc>,
    /// `coordinator:<id>`, `system` or `cli`.
    pub actor: &'a str,
    /// What was done, e.g. `receipt.record`.
    pub action: &'a str,
    /// What it was done to, e.g. `pledge` and its id.
    pub subject_kind: &'a str,
    pub subject_id: i64,
    pub community: Option<CommunityId>,
    /// `{"before": …, "after": …}`.
    pub detail: serde_json::Value,
    pub request_id: Option<&'a str>,
}

/// A row of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject_kind: String,
    pub subject_id: i64,
    pub community_id: Option<CommunityId>,
    pub detail: serde_json::Value,
    pub request_id: Option<String>,
}

/// Appends `row` in the caller's transaction; returns its id.
pub async fn insert(conn: &mut PgConnection, row: &AuditInsert<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into audit_log (at, actor, action, subject_kind, subject_id, community_id, detail, request_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning id",
        row.at,
        row.actor,
        row.action,
        row.subject_kind,
        row.subject_id,
        row.community.map(|c| c.0),
        row.detail,
        row.request_id
    )
    .fetch_one(conn)
    .await
}

/// What happened to one object, newest first (at most `limit` rows).
pub async fn of_subject(
    conn: &mut PgConnection,
    subject_kind: &str,
    subject_id: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as!(
        AuditRow,
        r#"select id, at, actor, action, subject_kind, subject_id,
                  community_id as "community_id: CommunityId", detail, request_id
           from audit_log where subject_kind = $1 and subject_id = $2
           order by at desc, id desc limit $3"#,
        subject_kind,
        subject_id,
        limit
    )
    .fetch_all(conn)
    .await
}

/// A console form key as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FormKey {
    pub actor: String,
    pub action: String,
    /// The first result; `None` only while the transaction that claimed it runs.
    pub result: Option<serde_json::Value>,
}

/// Forgets the form keys claimed before `before`.
pub async fn forget_form_keys_before(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from console_form_keys where created_at < $1",
        before
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims `key` in the caller's transaction; `false` when it is claimed already (a
/// transaction that claimed it and is still running makes this wait for its end).
pub async fn claim_form_key(
    conn: &mut PgConnection,
    key: &str,
    actor: &str,
    action: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "insert into console_form_keys (key, actor, action, created_at) values ($1, $2, $3, $4)
         on conflict (key) do nothing",
        key,
        actor,
        action,
        now
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// The form key as stored, if it is.
pub async fn form_key(conn: &mut PgConnection, key: &str) -> Result<Option<FormKey>, sqlx::Error> {
    sqlx::query_as!(
        FormKey,
        "select actor, action, result from console_form_keys where key = $1",
        key
    )
    .fetch_optional(conn)
    .await
}

/// Stores the first result under a key claimed in this transaction.
pub async fn save_form_result(
    conn: &mut PgConnection,
    key: &str,
    result: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update console_form_keys set result = $2 where key = $1 and result is null",
        key,
        result
    )
    .execute(conn)
    .await?;
    Ok(())
}
