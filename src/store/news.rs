//! Project news: the projects whose target was reached (`project_target_reached`, written by
//! triggers the first time a project's matched total reaches its target) and the broadcast
//! that told their pledgers.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{BroadcastId, ProjectId};

/// The reached target announced first at `now`, locked until the caller's transaction ends;
/// rows another transaction holds are skipped (so several schedulers share the work).
pub async fn lock_next_due(conn: &mut PgConnection) -> Result<Option<ProjectId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select project_id as "project: ProjectId" from project_target_reached
           where state = 'due' order by reached_at, project_id limit 1 for update skip locked"#
    )
    .fetch_optional(conn)
    .await
}

/// Records that `broadcast` tells project `project`'s pledgers; false when it was no longer
/// due.
pub async fn mark_announced(
    conn: &mut PgConnection,
    project: ProjectId,
    broadcast: BroadcastId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update project_target_reached set state = 'announced', broadcast_id = $2, announced_at = $3
          where project_id = $1 and state = 'due'",
        project as ProjectId,
        broadcast as BroadcastId,
        now
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Whether and how project `project`'s target was reached: its state (`due`, `announced`,
/// `before`) and the broadcast that told its pledgers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub state: String,
    pub reached_at: DateTime<Utc>,
    pub broadcast: Option<BroadcastId>,
}

pub async fn reached(
    conn: &mut PgConnection,
    project: ProjectId,
) -> Result<Option<Reached>, sqlx::Error> {
    sqlx::query_as!(
        Reached,
        r#"select state, reached_at, broadcast_id as "broadcast: BroadcastId"
           from project_target_reached where project_id = $1"#,
        project as ProjectId
    )
    .fetch_optional(conn)
    .await
}
