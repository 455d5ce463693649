//! Writing the audit log from a service function: one row per change, in the change's own
//! transaction, so both commit or neither does. Refused changes write nothing (their
//! transaction rolls back, or the refusal comes before any write).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{Actor, ServiceResult};
use crate::store::{
    self,
    audit::{AuditInsert, AuditRow},
    CommunityId,
};

pub use crate::store::audit::AuditRow as Row;

/// What a change did, to be written by [`write`].
#[derive(Debug)]
pub struct Change<'a> {
    /// e.g. `receipt.record`
    pub action: &'a str,
    /// e.g. `pledge`
    pub subject_kind: &'a str,
    pub subject_id: i64,
    pub community: Option<CommunityId>,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// Appends one row for `change` by `actor` at `at` in the caller's transaction.
pub async fn write(
    conn: &mut PgConnection,
    actor: &Actor,
    at: DateTime<Utc>,
    change: Change<'_>,
) -> ServiceResult<i64> {
    let who = actor.who();
    let id = store::audit::insert(
        conn,
        &AuditInsert {
            at,
            actor: &who,
            action: change.action,
            subject_kind: change.subject_kind,
            subject_id: change.subject_id,
            community: change.community,
            detail: serde_json::json!({ "before": change.before, "after": change.after }),
            request_id: actor.request_id.as_deref(),
        },
    )
    .await?;
    Ok(id)
}

/// The audit rows of one object, newest first (the caller has checked the scope).
pub async fn of(
    conn: &mut PgConnection,
    subject_kind: &str,
    subject_id: i64,
) -> ServiceResult<Vec<AuditRow>> {
    Ok(store::audit::of_subject(conn, subject_kind, subject_id, 200).await?)
}
