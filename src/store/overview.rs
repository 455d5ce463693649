//! The console overview's figures: every project of a scope with its totals (from the one
//! totals view, `project_totals`), pledges per week (from the trigger-kept
//! `pledge_week_sums` and `pledge_hour_sums`, never a sum over `pledges`), and the health strip (households by
//! how they registered, messages sent and delivered, over `outbox_sent_at_idx`). Three
//! queries, each scoped by the communities in `scope` (`None`: all).

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc};
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

/// The pledges (not cancelled) of one week of the chart in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeekPledges {
    /// The week: 0 for `[bounds[0], bounds[1])`, and so on.
    pub week: usize,
    pub currency: String,
    pub pledges: i64,
    pub amount: Decimal,
}

/// The Monday 00:00 UTC nearest to `at` (the later one when `at` is half-way).
pub fn nearest_utc_monday(at: DateTime<Utc>) -> DateTime<Utc> {
    let day = at.date_naive();
    let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
    let floor = Utc.from_utc_datetime(&monday.and_time(NaiveTime::MIN));
    if at - floor < Duration::hours(84) {
        floor
    } else {
        floor + Duration::weeks(1)
    }
}

/// Pledges made in the communities of `scope`, not cancelled, by week and currency: week
/// `i` is `[bounds[i], bounds[i + 1])` (the programme's Mondays, as instants), whole hours.
///
/// Read from the trigger-kept sums, never from `pledges`: whole UTC weeks from
/// `pledge_week_sums` (a row per project, week and currency), and, around each bound, the
/// hours between it and the nearest Monday 00:00 UTC from `pledge_hour_sums`, each moved
/// from the UTC week it was counted in to the week it falls in (5 hours a bound for
/// Dushanbe's UTC+5). Exact for bounds on whole hours, which local midnights are in every
/// time zone with a whole-hour offset (as the hours' migration says); 12 weeks cost about
/// 12 + 13 × 5 rows a project, where summing the hours read 2,016.
pub async fn pledges_by_week<'e>(
    db: impl PgExecutor<'e>,
    scope: Option<&[i64]>,
    bounds: &[DateTime<Utc>],
) -> Result<Vec<WeekPledges>, sqlx::Error> {
    if bounds.len() < 2 {
        return Ok(Vec::new());
    }
    let utc: Vec<DateTime<Utc>> = bounds.iter().copied().map(nearest_utc_monday).collect();
    // width_bucket(x, bounds) is i + 1 for x in [bounds[i], bounds[i + 1]); 0 and
    // bounds.len() are outside the chart.
    let rows = sqlx::query!(
        r#"with b as (select $2::timestamptz[] as local, $3::timestamptz[] as utc),
           parts as (
               -- whole UTC weeks, in the week their Monday falls in
               select width_bucket(w.week, b.utc) as i, w.currency, w.pledges, w.amount
                 from pledge_week_sums w join projects pr on pr.id = w.project_id, b
                where w.week >= b.utc[1] and w.week < b.utc[cardinality(b.utc)]
                  and ($1::bigint[] is null or pr.community_id = any($1))
               union all
               -- the hours between a bound and its UTC Monday: into the week they fall in,
               -- out of the UTC week they were counted in
               select x.i, h.currency, x.sign * h.pledges, x.sign * h.amount
                 from b cross join unnest(b.local, b.utc) as k(local, utc)
                 join pledge_hour_sums h
                   on h.hour >= least(k.local, k.utc) and h.hour < greatest(k.local, k.utc)
                 join projects pr on pr.id = h.project_id
                 cross join lateral (values
                       (width_bucket(h.hour, b.local), 1),
                       (width_bucket(date_trunc('week', h.hour, 'UTC'), b.utc), -1)) as x(i, sign)
                where $1::bigint[] is null or pr.community_id = any($1))
           select i as "i!", currency as "currency!", sum(pledges)::bigint as "pledges!",
                  sum(amount) as "amount!"
             from parts, b
            where i between 1 and cardinality(b.local) - 1
            group by i, currency
           having sum(pledges) > 0
            order by i, currency"#,
        scope,
        bounds,
        &utc,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(WeekPledges {
                week: usize::try_from(r.i).ok()?.checked_sub(1)?,
                currency: r.currency,
                pledges: r.pledges,
                amount: r.amount,
            })
        })
        .collect())
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
        // One pass over each table (four counts over a shared CTE read its 100,000 rows
        // four times more).
        r#"with h as (
               select count(*) filter (where registered_via = 'coordinator') as by_coordinator,
                      count(*) filter (where registered_via = 'ussd') as by_ussd,
                      count(*) filter (where registered_via = 'sms') as by_sms,
                      count(*) filter (where registered_via = 'demo') as by_demo
                 from households
                where $1::bigint[] is null or community_id = any($1)),
             m as (
               select count(*) as sent, count(*) filter (where o.status = 'delivered') as delivered
                 from outbox o
                where o.sent_at >= $2 and o.sent_at < $3
                  and ($1::bigint[] is null or exists (
                        select 1 from phones ph join households hh on hh.id = ph.household_id
                         where ph.phone = o.phone and hh.community_id = any($1))))
           select h.by_coordinator as "by_coordinator!", h.by_ussd as "by_ussd!",
                  h.by_sms as "by_sms!", h.by_demo as "by_demo!",
                  m.sent as "sent!", m.delivered as "delivered!"
             from h, m"#,
        scope,
        from,
        to
    )
    .fetch_one(db)
    .await
}
