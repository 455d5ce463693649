//! Project news, for every edge: an update a coordinator posts to a project ("the bridge is
//! finished, opening on 12 May") is a broadcast (`service::broadcasts`, its one path: the
//! texts' rules, the preview, sending outside the quiet hours, the audit rows
//! `broadcast.create` and `broadcast.send`, the form key) whose audience is the households
//! that pledged to the project and did not cancel, with no answer window (a `1` in reply is
//! not an RSVP). Coordinators of the project's community and admins post; counsellors and
//! programme officers are refused (`Forbidden`), and a project outside the actor's scope is
//! `NotFound`, as when there is none.

use super::{
    broadcasts::{self, Audience, NewBroadcast},
    Actor, Once, ServiceError, ServiceResult,
};
use crate::{
    app::AppState,
    engine::Vars,
    store::{self, news::Reached, BroadcastId, ProjectId},
};

/// An update's answer window: none.
pub const UPDATE_RSVP_HOURS: i32 = 0;

/// The audience of an update to `project` (in `community`): its pledgers.
pub fn audience(community: i64, project: i64) -> Audience {
    Audience {
        communities: vec![community],
        only_migrants: false,
        only_project: Some(project),
        only_language: None,
    }
}

/// Project `project` if the actor may see it (else `NotFound`).
async fn visible(
    state: &AppState,
    actor: &Actor,
    project: i64,
) -> ServiceResult<store::projects::Project> {
    let mut conn = state.pool.acquire().await?;
    store::projects::get(&mut conn, ProjectId(project))
        .await?
        .filter(|p| actor.may_see(p.community))
        .ok_or(ServiceError::NotFound("project"))
}

/// Stores an update to project `project`'s pledgers as a draft broadcast (texts in Tajik,
/// Russian and English, with the placeholders' values), to be previewed and sent like any
/// broadcast; returns its id.
pub async fn post_update(
    state: &AppState,
    actor: &Actor,
    project: i64,
    texts: [&str; 3],
    vars: Vars,
    once: Once<'_>,
) -> ServiceResult<BroadcastId> {
    if !broadcasts::sends(actor) {
        return Err(ServiceError::Forbidden);
    }
    let p = visible(state, actor, project).await?;
    broadcasts::create(
        state,
        actor,
        NewBroadcast {
            audience: audience(p.community.0, project),
            texts,
            vars,
            rsvp_hours: Some(UPDATE_RSVP_HOURS),
            meeting: None,
        },
        once,
    )
    .await
}

/// Whether project `project`'s target was reached and how its pledgers were told (see
/// `crate::news`), if the actor may see it.
pub async fn target_reached(
    state: &AppState,
    actor: &Actor,
    project: i64,
) -> ServiceResult<Option<Reached>> {
    visible(state, actor, project).await?;
    let mut conn = state.pool.acquire().await?;
    Ok(store::news::reached(&mut conn, ProjectId(project)).await?)
}
