//! Outreach (issue 11 point 6): the households' self-served readings, the targets, and the
//! counts of households informed per community and topic (`outreach_informed`, see
//! `migrations/20261130195000_outreach.sql`). Counts only: no query here returns a
//! household.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::{CommunityId, CoordinatorId};
use crate::domain::Phone;

/// Records that the household of `phone` read `topic` to the end, once (the first time is
/// kept); one statement, nothing when the number belongs to no household.
pub async fn record_self_served(
    conn: &mut PgConnection,
    phone: &Phone,
    topic: &str,
    channel: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        r#"insert into outreach_self_served (household_id, topic, channel, first_at)
           select p.household_id, $2, $3, $4 from phones p where p.phone = $1
           on conflict (household_id, topic) do nothing"#,
        phone.as_str(),
        topic,
        channel,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Households counted for one community and topic, or a total (`community` and/or `topic`
/// `None`: over all of them, each household once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub community: Option<CommunityId>,
    pub topic: Option<String>,
    pub by_counsellor: i64,
    pub by_session: i64,
    /// Read to the end (counted apart: not in `informed`).
    pub self_served: i64,
    /// By a counsellor or a session: what the targets count.
    pub informed: i64,
}

/// The counts per community and topic, per community, per topic and overall, of the
/// communities of `scope` (`None`: all). Groups with no household are absent.
pub async fn counts<'e>(
    db: impl PgExecutor<'e>,
    scope: Option<&[i64]>,
) -> Result<Vec<Count>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select h.community_id as "community?: CommunityId", i.topic as "topic?",
                  grouping(h.community_id) = 1 as "all_communities!",
                  grouping(i.topic) = 1 as "all_topics!",
                  count(distinct i.household_id) filter (where i.source = 'counsellor') as "by_counsellor!",
                  count(distinct i.household_id) filter (where i.source = 'session') as "by_session!",
                  count(distinct i.household_id) filter (where i.source = 'self') as "self_served!",
                  count(distinct i.household_id) filter (where i.source <> 'self') as "informed!"
             from outreach_informed i
             join households h on h.id = i.household_id
            where $1::bigint[] is null or h.community_id = any($1)
            group by grouping sets ((h.community_id, i.topic), (h.community_id), (i.topic), ())"#,
        scope
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.all_communities || r.community.is_some())
        .map(|r| Count {
            community: if r.all_communities { None } else { r.community },
            topic: if r.all_topics { None } else { r.topic },
            by_counsellor: r.by_counsellor,
            by_session: r.by_session,
            self_served: r.self_served,
            informed: r.informed,
        })
        .collect())
}

/// The programme's target.
pub async fn programme_target<'e>(db: impl PgExecutor<'e>) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar!("select target from outreach_programme_target")
        .fetch_one(db)
        .await
}

/// The communities' targets that were set, of `scope` (`None`: all).
pub async fn targets<'e>(
    db: impl PgExecutor<'e>,
    scope: Option<&[i64]>,
) -> Result<Vec<(CommunityId, i32)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select community_id as "community: CommunityId", target from outreach_targets
           where $1::bigint[] is null or community_id = any($1)"#,
        scope
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.community, r.target)).collect())
}

/// Sets `community`'s target (`None`: the programme's); returns the one before (a community's
/// `None`: none was set).
pub async fn set_target(
    conn: &mut PgConnection,
    community: Option<CommunityId>,
    target: i32,
    by: CoordinatorId,
    now: DateTime<Utc>,
) -> Result<Option<i32>, sqlx::Error> {
    match community {
        None => {
            let before =
                sqlx::query_scalar!("select target from outreach_programme_target for update")
                    .fetch_one(&mut *conn)
                    .await?;
            sqlx::query!(
                "update outreach_programme_target set target = $1, set_by = $2, set_at = $3",
                target,
                by.0,
                now
            )
            .execute(&mut *conn)
            .await?;
            Ok(Some(before))
        }
        Some(c) => {
            let before = sqlx::query_scalar!(
                "select target from outreach_targets where community_id = $1 for update",
                c.0
            )
            .fetch_optional(&mut *conn)
            .await?;
            sqlx::query!(
                r#"insert into outreach_targets (community_id, target, set_by, set_at)
                   values ($1, $2, $3, $4)
                   on conflict (community_id) do update
                   set target = excluded.target, set_by = excluded.set_by, set_at = excluded.set_at"#,
                c.0,
                target,
                by.0,
                now
            )
            .execute(&mut *conn)
            .await?;
            Ok(before)
        }
    }
}
