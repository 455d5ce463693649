//! Outreach towards the programme's information goal (issue 11 point 6), shared by the
//! admin API (`api::outreach`), the console's Outreach page and its CSV export.
//!
//! A household counts as **informed** on a topic when a counsellor's completed call
//! (outcome reached) covered it, or when it attended an information session on it
//! (`outreach_session_attendance`, filled by the meetings' attendance). Reading a topic's
//! safe-migration screens to the end on USSD or SMS counts **apart**, as self-served, and is
//! not in the informed figure the targets measure. Households are counted once per
//! community and topic, once per topic over all communities, and once in the overall
//! figure (a household informed on two topics counts once there).
//!
//! Who sees what: aggregates only, never a household. Admins and counsellors see every
//! community and the programme's figure against its target; coordinators and programme
//! officers see their own communities (the total is then over those, against the sum of
//! their targets that are set). Only admins set targets (audited).

use serde::Serialize;
use utoipa::ToSchema;

use super::{audit, Actor, ServiceError, ServiceResult};
use crate::{
    app::AppState,
    domain::outreach::TOPICS,
    store::{self, outreach::Count, CommunityId},
};

/// The largest target that can be set (the database refuses more).
pub const MAX_TARGET: i32 = 10_000_000;

/// Households counted for one topic (or over all topics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counts {
    /// Informed by a counsellor's completed call.
    pub by_counsellor: i64,
    /// Informed at an information session.
    pub by_session: i64,
    /// Informed by a counsellor or a session (each household once): what targets measure.
    pub informed: i64,
    /// Read the topic's screens to the end on USSD or SMS (counted apart).
    pub self_served: i64,
}

/// One topic's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TopicCounts {
    /// legal_stay, trafficking, hiv or remittances
    pub topic: &'static str,
    #[serde(flatten)]
    pub counts: Counts,
}

/// A community's figures (`name` in the console's language: [`CommunityFigures::name`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CommunityFigures {
    pub id: i64,
    pub code: String,
    pub name_tg: String,
    pub name_ru: String,
    pub name_en: String,
    /// Set by an admin; none until then.
    pub target: Option<i32>,
    /// Over all topics (a household once).
    pub all: Counts,
    /// Every topic, in order, zeros included.
    pub topics: Vec<TopicCounts>,
}

/// The figures one person sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Figures {
    /// The whole programme (admins and counsellors), or the person's communities only.
    pub programme: bool,
    /// The programme's target (2,000 unless an admin set another) when `programme`; else
    /// the sum of the person's communities' targets that are set (none: null).
    pub target: Option<i64>,
    /// Over the communities shown, all topics (a household once).
    pub all: Counts,
    /// Over the communities shown, per topic.
    pub topics: Vec<TopicCounts>,
    pub communities: Vec<CommunityFigures>,
}

impl CommunityFigures {
    pub fn name(&self, language: crate::domain::Language) -> &str {
        match language {
            crate::domain::Language::Tg => &self.name_tg,
            crate::domain::Language::Ru => &self.name_ru,
            crate::domain::Language::En => &self.name_en,
        }
    }
}

fn counts_of(c: Option<&Count>) -> Counts {
    c.map(|c| Counts {
        by_counsellor: c.by_counsellor,
        by_session: c.by_session,
        informed: c.informed,
        self_served: c.self_served,
    })
    .unwrap_or_default()
}

fn topic_list(counts: &[Count], community: Option<CommunityId>) -> Vec<TopicCounts> {
    TOPICS
        .iter()
        .map(|&topic| TopicCounts {
            topic,
            counts: counts_of(
                counts
                    .iter()
                    .find(|c| c.community == community && c.topic.as_deref() == Some(topic)),
            ),
        })
        .collect()
}

/// The figures `actor` may see (see the module): three reads, counts only.
pub async fn figures(state: &AppState, actor: &Actor) -> ServiceResult<Figures> {
    let scope = actor.scope();
    let mut conn = state.api_pool.acquire().await?;
    let communities = store::communities::list(&mut *conn, scope).await?;
    let counts = store::outreach::counts(&mut *conn, scope).await?;
    let targets = store::outreach::targets(&mut *conn, scope).await?;
    let programme = scope.is_none();
    let target = if programme {
        Some(i64::from(
            store::outreach::programme_target(&mut *conn).await?,
        ))
    } else if targets.is_empty() {
        None
    } else {
        Some(targets.iter().map(|(_, t)| i64::from(*t)).sum())
    };
    let communities = communities
        .into_iter()
        .map(|c| CommunityFigures {
            id: c.id.0,
            code: c.code,
            name_tg: c.name.tg,
            name_ru: c.name.ru,
            name_en: c.name.en,
            target: targets.iter().find(|(id, _)| *id == c.id).map(|(_, t)| *t),
            all: counts_of(
                counts
                    .iter()
                    .find(|n| n.community == Some(c.id) && n.topic.is_none()),
            ),
            topics: topic_list(&counts, Some(c.id)),
        })
        .collect();
    Ok(Figures {
        programme,
        target,
        all: counts_of(
            counts
                .iter()
                .find(|n| n.community.is_none() && n.topic.is_none()),
        ),
        topics: topic_list(&counts, None),
        communities,
    })
}

/// Sets a target (admins only, audited): `community`'s, or the programme's when `None`.
/// 1 to [`MAX_TARGET`] households; an unknown community is not found.
pub async fn set_target(
    state: &AppState,
    actor: &Actor,
    community: Option<i64>,
    target: i64,
) -> ServiceResult<()> {
    actor.require_admin()?;
    let target = i32::try_from(target)
        .ok()
        .filter(|t| (1..=MAX_TARGET).contains(t))
        .ok_or_else(|| {
            ServiceError::invalid(
                "target",
                "outreach.target_invalid",
                format!("target is 1 to {MAX_TARGET} households"),
            )
        })?;
    let mut tx = state.api_pool.begin().await?;
    let community = match community {
        None => None,
        Some(id) => Some(
            store::communities::get(&mut *tx, CommunityId(id))
                .await?
                .ok_or(ServiceError::NotFound("community"))?
                .id,
        ),
    };
    let now = state.clock.now();
    let before = store::outreach::set_target(&mut tx, community, target, actor.id(), now).await?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "outreach.target",
            subject_kind: if community.is_some() {
                "community"
            } else {
                "programme"
            },
            subject_id: community.map_or(0, |c| c.0),
            community,
            before: serde_json::json!({ "target": before }),
            after: serde_json::json!({ "target": target }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
