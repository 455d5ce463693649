//! The database-wide figures `crate::metrics` samples: the outbox by status, the age of its
//! oldest waiting message, and the progress of the broadcasts being sent.

use sqlx::PgPool;

use super::outbox::OutboxStatus;

/// How many messages the outbox holds with one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCount {
    pub status: OutboxStatus,
    pub count: i64,
}

/// The outbox's messages by status (statuses without messages are absent).
pub async fn outbox_by_status(pool: &PgPool) -> Result<Vec<StatusCount>, sqlx::Error> {
    sqlx::query_as!(
        StatusCount,
        r#"select status as "status: OutboxStatus", count(*) as "count!" from outbox group by status"#
    )
    .fetch_all(pool)
    .await
}

/// Seconds since the oldest message waiting to be sent (`queued` or `sending`) was queued,
/// by the database's clock; `None` when none waits.
pub async fn oldest_waiting_secs(pool: &PgPool) -> Result<Option<f64>, sqlx::Error> {
    sqlx::query_scalar!(
        "select extract(epoch from now() - min(created_at))::float8
           from outbox where status in ('queued', 'sending')"
    )
    .fetch_one(pool)
    .await
}

/// The broadcasts with messages still waiting, and their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastProgress {
    /// Broadcasts with messages still waiting.
    pub sending: i64,
    /// Their messages still waiting (`queued` or `sending`).
    pub waiting: i64,
    /// Their messages done with (any other status).
    pub done: i64,
}

/// How far along the broadcasts being sent are.
pub async fn broadcast_progress(pool: &PgPool) -> Result<BroadcastProgress, sqlx::Error> {
    sqlx::query_as!(
        BroadcastProgress,
        r#"with active as (
             select distinct r.broadcast_id
               from outbox o join broadcast_recipients r on r.outbox_id = o.id
              where o.status in ('queued', 'sending'))
         select (select count(*) from active) as "sending!",
                count(o.id) filter (where o.status in ('queued', 'sending')) as "waiting!",
                count(o.id) filter (where o.status not in ('queued', 'sending')) as "done!"
           from broadcast_recipients r join outbox o on o.id = r.outbox_id
          where r.broadcast_id in (select broadcast_id from active)"#
    )
    .fetch_one(pool)
    .await
}
