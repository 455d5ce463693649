//! The inserts of `hashar demo-data`: each leaves what exists (by community code, project
//! code within its community, phone number) as it is, so loading the demo twice changes
//! nothing.

use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};

use super::{CommunityId, HouseholdId, ProjectId};
use crate::domain::{Language, Phone};

/// A community of the demo; its names in the three languages.
#[derive(Debug)]
pub struct NewCommunity<'a> {
    pub code: &'a str,
    pub district: &'a str,
    pub name_tg: &'a str,
    pub name_ru: &'a str,
    pub name_en: &'a str,
}

/// The community with this code, inserted if new; whether it was.
pub async fn community(
    conn: &mut PgConnection,
    c: &NewCommunity<'_>,
) -> Result<(CommunityId, bool), sqlx::Error> {
    let inserted = sqlx::query_scalar!(
        r#"insert into communities (code, district, name_tg, name_ru, name_en) values ($1, $2, $3, $4, $5)
           on conflict (code) do nothing returning id as "id: CommunityId""#,
        c.code,
        c.district,
        c.name_tg,
        c.name_ru,
        c.name_en,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = inserted {
        return Ok((id, true));
    }
    let id = sqlx::query_scalar!(
        r#"select id as "id: CommunityId" from communities where code = $1"#,
        c.code
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((id, false))
}

/// A project of the demo.
#[derive(Debug)]
pub struct NewProject<'a> {
    pub community: CommunityId,
    pub code: &'a str,
    pub kind: &'a str,
    pub name_tg: &'a str,
    pub name_ru: &'a str,
    pub name_en: &'a str,
    pub target: Decimal,
    pub match_ratio: Decimal,
    pub match_cap: Option<Decimal>,
}

/// Inserts the project unless its community has one with its code; its id if it was new.
pub async fn project_if_new(
    conn: &mut PgConnection,
    p: &NewProject<'_>,
) -> Result<Option<ProjectId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"insert into projects (community_id, code, kind, name_tg, name_ru, name_en, target, match_ratio, match_cap)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           on conflict (community_id, code) do nothing returning id as "id: ProjectId""#,
        p.community as CommunityId,
        p.code,
        p.kind,
        p.name_tg,
        p.name_ru,
        p.name_en,
        p.target,
        p.match_ratio,
        p.match_cap,
    )
    .fetch_optional(conn)
    .await
}

/// Money the demo's project has received already: one cash receipt (in TJS, today).
pub async fn received(
    conn: &mut PgConnection,
    project: ProjectId,
    amount: Decimal,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into receipts (project_id, amount, currency, received_on, method, recorded_by)
         values ($1, $2, 'TJS', current_date, 'cash', 'demo-data')",
        project as ProjectId,
        amount,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Registers a household with its phone unless the number is known; its id if it was new.
pub async fn household_if_new(
    conn: &mut PgConnection,
    community: CommunityId,
    name: &str,
    language: Language,
    phone: &Phone,
) -> Result<Option<HouseholdId>, sqlx::Error> {
    let known = sqlx::query_scalar!(
        r#"select exists (select 1 from phones where phone = $1) as "known!""#,
        phone.as_str()
    )
    .fetch_one(&mut *conn)
    .await?;
    if known {
        return Ok(None);
    }
    let household = sqlx::query_scalar!(
        r#"insert into households (community_id, name, language, registered_via) values ($1, $2, $3, 'demo')
           returning id as "id: HouseholdId""#,
        community as CommunityId,
        name,
        language.code(),
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!(
        "insert into phones (phone, household_id) values ($1, $2)",
        phone.as_str(),
        household as HouseholdId,
    )
    .execute(&mut *conn)
    .await?;
    Ok(Some(household))
}

/// Phones of the generated households: `+99290` and seven digits, the household's index.
pub const SCALE_PREFIX: &str = "+99290";

/// Generated households with indexes `from..to` (phones [`SCALE_PREFIX`] + the index in
/// seven digits; below 1,000,000 none is a number of the demo programme's), spread over
/// the communities (tg 60 %, ru 30 %, en 10 %); an index whose
/// phone is known already is skipped, so re-running adds nothing twice. How many were added.
pub async fn scale_households(
    conn: &mut PgConnection,
    from: i64,
    to: i64,
) -> Result<u64, sqlx::Error> {
    let added = sqlx::query_scalar!(
        r#"with c as (select array_agg(id order by id) as ids from communities),
           wanted as (
               select g, $3 || lpad(g::text, 7, '0') as phone
               from generate_series($1::bigint, $2::bigint - 1) g
               where not exists (
                   select 1 from phones where phone = $3 || lpad(g::text, 7, '0'))
           ),
           h as (
               insert into households (community_id, name, language, registered_via)
               select c.ids[1 + g % array_length(c.ids, 1)],
                      'Household ' || lpad(g::text, 7, '0'),
                      case when g % 10 < 6 then 'tg' when g % 10 < 9 then 'ru' else 'en' end,
                      'demo'
               from wanted, c
               returning id, name
           ),
           p as (
               insert into phones (phone, household_id)
               select $3 || right(h.name, 7), h.id from h
               returning 1
           )
           select count(*) as "n!" from p"#,
        from,
        to,
        SCALE_PREFIX,
    )
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(added).unwrap_or(0))
}

/// How many generated households exist (the demo programme's own households have
/// `+99290…` numbers too, so they are told apart by their generated names).
pub async fn scale_households_count(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select count(*) as "n!" from phones p join households h on h.id = p.household_id
           where p.phone like $1 || '%' and h.registered_via = 'demo' and h.name like 'Household %'"#,
        SCALE_PREFIX
    )
    .fetch_one(conn)
    .await
}

/// Generated pledges `from..to` (idempotency keys `scale:<n>`, so re-running adds nothing
/// twice): each by a generated household, to an open project of its community, 10 to 5,000
/// in the project's currency, made over the 12 weeks before `now`. How many were added.
pub async fn scale_pledges(
    conn: &mut PgConnection,
    from: i64,
    to: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"with hh as (
               select array_agg(h.id order by h.id) as ids,
                      array_agg(h.community_id order by h.id) as cs,
                      array_agg(p.phone order by h.id) as phs
               from households h join phones p on p.household_id = h.id
               where p.phone like $4 || '%' and h.registered_via = 'demo'
                 and h.name like 'Household %'
           ),
           open as (
               select community_id, array_agg(id order by id) as ids,
                      array_agg(currency order by id) as cur
               from projects where status = 'open' group by community_id
           )
           insert into pledges (project_id, household_id, phone, amount, currency,
                                channel, idempotency_key, created_at)
           select o.ids[1 + (g / 7) % array_length(o.ids, 1)],
                  hh.ids[x.i], hh.phs[x.i],
                  (10 + (g * 2654435761) % 4991)::numeric(14, 2),
                  o.cur[1 + (g / 7) % array_length(o.ids, 1)],
                  case when g % 4 = 0 then 'sms' else 'ussd' end,
                  'scale:' || g,
                  $3::timestamptz - ((g * 40503) % (84 * 24 * 60)) * interval '1 minute'
           from generate_series($1::bigint, $2::bigint - 1) g
           cross join hh
           cross join lateral (select 1 + (g * 7919) % array_length(hh.ids, 1) as i) x
           join open o on o.community_id = hh.cs[x.i]
           where not exists (select 1 from pledges where idempotency_key = 'scale:' || g)"#,
        from,
        to,
        now,
        SCALE_PREFIX,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The range of pledge ids, `[first, last]` (`None` when there are no pledges): what
/// [`scale_receipts`] walks in batches.
pub async fn pledge_id_range(conn: &mut PgConnection) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let row = sqlx::query!(r#"select min(id) as first, max(id) as last from pledges"#)
        .fetch_one(conn)
        .await?;
    Ok(row.first.zip(row.last))
}

/// One in three generated pledges with ids in `[from, to)` received in full by cash two
/// days after it was made (those made in the last two days are not); a pledge received
/// already is skipped, so re-running a batch adds nothing twice. How many receipts were
/// added.
pub async fn scale_receipts(
    conn: &mut PgConnection,
    from: i64,
    to: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"insert into receipts (project_id, pledge_id, household_id, amount, currency,
                                 received_on, method, recorded_by, recorded_at)
           select p.project_id, p.id, p.household_id, p.amount, p.currency,
                  (p.created_at + interval '2 days')::date, 'cash', 'demo-data',
                  p.created_at + interval '2 days'
           from pledges p
           where p.id >= $1 and p.id < $2
             and p.idempotency_key like 'scale:%' and p.status = 'pledged' and p.id % 3 = 0
             and p.created_at + interval '2 days' < $3
           order by p.id"#,
        from,
        to,
        now,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Refreshes the planner's statistics of the tables a demo load fills (`with_pledges`: the
/// money tables too), as a bulk load should be followed. Only those: an ANALYZE of a table
/// that is still empty (the pledges, the USSD sessions before the first caller) records it
/// as empty, and on a server without autovacuum (this benchmark machine's) every connection
/// then plans its statements on it, and keeps those generic plans, as for an empty table
/// (sequential scans that grow with the table); a table never analyzed is planned as one of
/// some size (indexes).
pub async fn analyze(pool: &PgPool, with_pledges: bool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "analyze communities, projects, project_sums, project_pledge_sums, households, phones",
    )
    .execute(pool)
    .await?;
    if with_pledges {
        sqlx::raw_sql("analyze pledges, receipts, pledge_hour_sums, pledge_week_sums")
            .execute(pool)
            .await?;
    }
    Ok(())
}
