//! Pledges from a menu, and a project's figures as every screen shows them.

use sqlx::PgConnection;

use super::{decimal_var, id_var, ActionError, EffectCtx};
use crate::{
    engine::{Action, Vars},
    store::{pledges, projects, ProjectId},
};

/// The SQLSTATE `create_pledge` raises when the project is closed or not the caller's.
pub const PROJECT_NOT_OPEN: &str = "HS001";

/// Maps a failed pledge call: "not open" becomes [`ActionError::ProjectNotOpen`].
pub fn pledge_error(e: sqlx::Error, project: i64) -> ActionError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(PROJECT_NOT_OPEN) => {
            ActionError::ProjectNotOpen(project)
        }
        _ => ActionError::Db(e),
    }
}

/// `create_pledge` and, with `again`, `create_pledge_again`: the chosen project and amount.
/// `create_pledge` asks first ({ask, minutes}) when the same pledge was made in the last 10
/// minutes; `create_pledge_again` is the caller's "yes".
pub(super) async fn create(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    vars: &Vars,
    again: bool,
) -> Result<Vars, ActionError> {
    let action = if again {
        Action::CreatePledgeAgain
    } else {
        Action::CreatePledge
    };
    let project = id_var(vars, action.name(), "project_id")?;
    let amount = decimal_var(vars, action.name(), "amount")?;
    let totals = pledges::pledge_at(
        conn,
        ctx.now,
        ProjectId(project),
        ctx.phone.as_str(),
        amount,
        ctx.channel,
        ctx.idempotency_key,
        again,
    )
    .await
    .map_err(|e| pledge_error(e, project))?;
    if totals.contains_key("ask") {
        tracing::info!(phone = %ctx.phone, project, amount = %amount, "pledge repeats a recent one: asking");
    } else {
        tracing::info!(phone = %ctx.phone, project, amount = %amount, "pledge recorded");
    }
    Ok(totals)
}

/// A project's figures from the `project_totals` view, formatted for a screen.
pub async fn project_total(conn: &mut PgConnection, project: i64) -> Result<Vars, ActionError> {
    projects::total_texts(conn, ProjectId(project))
        .await?
        .ok_or(ActionError::ProjectNotOpen(project))
}
