//! The console overview's figures: every project of a scope with its totals (from the one
//! totals view, `project_totals`), pledges per week (from the trigger-kept
//! `pledge_hour_sums`, never a sum over `pledges`), and the health strip (households by
//! how they registered, messages sent and delivered, over `outbox_sent_at_idx`). Three
//! queries, each scoped by the communities in `scope` (`None`: all).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgExecutor;

use super::{projects::ProjectStatus, CommunityId, Localized, ProjectId};

/// A project with its community and figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFigures {
    pub community: CommunityId,
    pub community_name: Localized,
    pub id: ProjectId,
    pub name: Localized,
    pub status: ProjectStatus,
    pub currency: String,
    pub target: Decimal,
    pub pledged: Decimal,
    /// Pledged and not yet received.
    pub outstanding: Decimal,
    pub received: Decimal,
    pub matched: Decimal,
    pub matched_total: Decimal,
    pub percent: Decimal,
}

/// Every project of the communities in `scope` with its figures, by community and project
/// code.
pub async fn projects<'e>(
    db: impl PgExecutor<'e>,
    scope: Option<&[i64]>,
) -> Result<Vec<ProjectFigures>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select c.id as "community: CommunityId", c.name_tg as c_tg, c.name_ru as c_ru,
                  c.name_en as c_en,
                  t.project_id as "id!: ProjectId", t.name_tg as "name_tg!", t.name_ru as "name_ru!",
                  t.name_en as "name_en!", t.status as "status!: ProjectStatus",
                  t.currency as "currency!", t.target as "target!", t.pledged as "pledged!",
                  t.outstanding as "outstanding!", t.received as "received!", t.matched as "matched!",
                  t.matched_total as "matched_total!", t.percent as "percent!"
             from project_totals t join communities c on c.id = t.community_id
            where $1::bigint[] is null or t.community_id = any($1)
            order by c.code, t.code"#,
        scope
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ProjectFigures {
            community: r.community,
            community_name: Localized {
                tg: r.c_tg,
                ru: r.c_ru,
                en: r.c_en,
            },
            id: r.id,
            name: Localized {
                tg: r.name_tg,
                ru: r.name_ru,
                en: r.name_en,
            },
            status: r.status,
            currency: r.currency,
            target: r.target,
            pledged: r.pledged,
            outstanding: r.outstanding,
            received: r.received,
            matched: r.matched,
            matched_total: r.matched_total,
            percent: r.percent,
        })
        .collect())
}

/// The pledges (not cancelled) of one week in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeekPledges {
    /// The Monday the week starts on, in the programme's time zone.
    pub week: NaiveDate,
    pub currency: String,
    pub pledges: i64,
    pub amount: Decimal,
}

/// Pledges made in `[from, to)` in the communities of `scope`, not cancelled, by week
/// (Monday to Sunday in the time zone `timezone`, an IANA name) and currency.
///
/// Read from `pledge_hour_sums` (kept by a trigger on `pledges`), never from `pledges`
/// itself: at most one row per project, hour and currency. Each UTC hour falls in the
/// week its start falls in, so `from` and `to` should be whole hours (a local midnight
/// is, in any time zone with a whole-hour offset, such as the programme's UTC+5).
pub async fn pledges_by_week<'e>(
    db: impl PgExecutor<'e>,
    scope: Option<&[i64]>,
    timezone: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<WeekPledges>, sqlx::Error> {
    sqlx::query_as!(
        WeekPledges,
        r#"select date_trunc('week', s.hour at time zone $2)::date as "week!",
                  s.currency, sum(s.pledges)::bigint as "pledges!", sum(s.amount) as "amount!"
             from pledge_hour_sums s join projects pr on pr.id = s.project_id
            where s.hour >= $3 and s.hour < $4 and s.pledges > 0
              and ($1::bigint[] is null or pr.community_id = any($1))
            group by 1, 2
            order by 1, 2"#,
        scope,
        timezone,
        from,
        to
    )
    .fetch_all(db)
    .await
}

/// The health strip's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// Households registered by a coordinator (the API or the phone menu).
    pub by_coordinator: i64,
    pub by_ussd: i64,
    pub by_sms: i64,
    /// Households of the demo data.
    pub by_demo: i64,
    /// Messages sent in the period (their send was recorded in it).
    pub sent: i64,
    /// Of those, the ones the provider reported delivered.
    pub delivered: i64,
}

/// Households of `scope` by how they registered, and the messages sent in `[from, to)` to
/// their numbers (`None`: to any number) with how many of them were delivered.
pub async fn health<'e>(
    db: impl PgExecutor<'e>,
    scope: Option<&[i64]>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Health, sqlx::Error> {
    sqlx::query_as!(
        Health,
        r#"with h as (
               select registered_via from households
                where $1::bigint[] is null or community_id = any($1)),
             m as (
               select o.status from outbox o
                where o.sent_at >= $2 and o.sent_at < $3
                  and ($1::bigint[] is null or exists (
                        select 1 from phones ph join households hh on hh.id = ph.household_id
                         where ph.phone = o.phone and hh.community_id = any($1))))
           select (select count(*) from h where registered_via = 'coordinator') as "by_coordinator!",
                  (select count(*) from h where registered_via = 'ussd') as "by_ussd!",
                  (select count(*) from h where registered_via = 'sms') as "by_sms!",
                  (select count(*) from h where registered_via = 'demo') as "by_demo!",
                  (select count(*) from m) as "sent!",
                  (select count(*) from m where status = 'delivered') as "delivered!""#,
        scope,
        from,
        to
    )
    .fetch_one(db)
    .await
}
