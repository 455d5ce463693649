//! `topic_read`: the caller's household reached the last page of a safe-migration topic
//! (a menu screen's `at_end`). Only that hop runs it, in the hop's own effect transaction:
//! one statement, and no round trip for the hops that only page or navigate.

use sqlx::PgConnection;

use super::{ActionError, EffectCtx};
use crate::{
    domain::outreach::is_topic,
    engine::{Action, Vars},
    store::outreach::record_self_served,
};

pub(super) async fn topic_read(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    arg: Option<&str>,
) -> Result<Vars, ActionError> {
    let topic = arg.filter(|t| is_topic(t)).ok_or(ActionError::MissingVar {
        action: Action::TopicRead.name(),
        var: "arg",
    })?;
    let first = record_self_served(conn, ctx.phone, topic, ctx.channel, ctx.now).await?;
    if first {
        tracing::info!(
            topic,
            channel = ctx.channel,
            "a topic read to the end, the first time"
        );
    }
    Ok(Vars::new())
}
