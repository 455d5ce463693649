//! The counsellors' callback queue: requests with their household, community and who holds
//! them; taking one, recording a call's outcome; the public holidays that move a request's
//! "due by" (see migrations/20261130061000_callback_queue.sql for the states and rules).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{CoordinatorId, Localized};

/// A callback request as the queue shows it.
#[derive(Debug, Clone)]
pub struct CallbackItem {
    pub id: i64,
    /// The number that asked (E.164).
    pub phone: String,
    /// The household's numbers (none for a number in no household).
    pub phones: Vec<String>,
    pub household_id: Option<i64>,
    pub household_name: Option<String>,
    pub community_id: Option<i64>,
    pub community: Option<Localized>,
    /// tg, ru or en: the language the request was made in.
    pub language: String,
    /// The menu the request came from (`migration`).
    pub topic: String,
    /// ussd or sms
    pub channel: String,
    /// open or done
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub taken_by: Option<i64>,
    pub taken_by_name: Option<String>,
    pub taken_at: Option<DateTime<Utc>>,
    pub attempts: i16,
    pub next_try_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub note: Option<String>,
    pub topics: Vec<String>,
    pub done_at: Option<DateTime<Utc>>,
    pub done_by: Option<i64>,
    pub done_by_name: Option<String>,
}

/// Which requests a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Open ones, oldest first.
    Open,
    /// Done ones, the latest done first.
    Done,
}

/// Requests, open (oldest first) or done (latest first), in one language or all; or the
/// one request `id` (open or done).
pub async fn list(
    conn: &mut PgConnection,
    which: Which,
    language: Option<&str>,
    id: Option<i64>,
    limit: i64,
    offset: i64,
) -> Result<Vec<CallbackItem>, sqlx::Error> {
    let done = which == Which::Done;
    let rows = sqlx::query!(
        r#"select c.id, c.phone, c.household_id, h.name as "household_name?",
                  h.community_id as "community_id?",
                  m.name_tg as "name_tg?", m.name_ru as "name_ru?", m.name_en as "name_en?",
                  array(select p.phone from phones p where p.household_id = c.household_id
                        order by p.created_at, p.phone) as "phones!",
                  c.language, c.topic, c.channel, c.status, c.created_at,
                  c.taken_by, t.name as "taken_by_name?", c.taken_at, c.attempts, c.next_try_at,
                  c.outcome, c.note, c.topics, c.done_at, c.done_by, d.name as "done_by_name?"
           from callback_requests c
           left join households h on h.id = c.household_id
           left join communities m on m.id = h.community_id
           left join coordinators t on t.id = c.taken_by
           left join coordinators d on d.id = c.done_by
           where ($5::bigint is null and c.status = case when $1 then 'done' else 'open' end
                  or c.id = $5)
             and ($2::text is null or c.language = $2)
           order by case when $1 then c.done_at end desc,
                    case when not $1 then c.created_at end asc, c.id
           limit $3 offset $4"#,
        done,
        language,
        limit,
        offset,
        id
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CallbackItem {
            id: r.id,
            phone: r.phone,
            phones: r.phones,
            household_id: r.household_id,
            household_name: r.household_name,
            community_id: r.community_id,
            community: match (r.name_tg, r.name_ru, r.name_en) {
                (Some(tg), Some(ru), Some(en)) => Some(Localized { tg, ru, en }),
                _ => None,
            },
            language: r.language,
            topic: r.topic,
            channel: r.channel,
            status: r.status,
            created_at: r.created_at,
            taken_by: r.taken_by,
            taken_by_name: r.taken_by_name,
            taken_at: r.taken_at,
            attempts: r.attempts,
            next_try_at: r.next_try_at,
            outcome: r.outcome,
            note: r.note,
            topics: r.topics,
            done_at: r.done_at,
            done_by: r.done_by,
            done_by_name: r.done_by_name,
        })
        .collect())
}

/// How many open requests there are (in one language or all), and how many of them were
/// made before `before` (the overdue ones, for a cut-off worked out from the working days).
pub async fn counts(
    conn: &mut PgConnection,
    language: Option<&str>,
    before: DateTime<Utc>,
) -> Result<(i64, i64), sqlx::Error> {
    let r = sqlx::query!(
        r#"select count(*) as "open!", count(*) filter (where created_at < $1) as "overdue!"
           from callback_requests
           where status = 'open' and ($2::text is null or language = $2)"#,
        before,
        language
    )
    .fetch_one(conn)
    .await?;
    Ok((r.open, r.overdue))
}

/// The state of request `id` that a change starts from, locked until the transaction ends.
#[derive(Debug, Clone)]
pub struct Locked {
    pub id: i64,
    pub phone: String,
    pub language: String,
    pub status: String,
    pub community_id: Option<i64>,
    pub taken_by: Option<i64>,
    pub taken_by_name: Option<String>,
    pub taken_at: Option<DateTime<Utc>>,
    pub attempts: i16,
    pub next_try_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
}

/// Request `id`, locked for a change.
pub async fn lock(conn: &mut PgConnection, id: i64) -> Result<Option<Locked>, sqlx::Error> {
    sqlx::query_as!(
        Locked,
        r#"select c.id, c.phone, c.language, c.status, h.community_id as "community_id?",
                  c.taken_by, t.name as "taken_by_name?", c.taken_at, c.attempts,
                  c.next_try_at, c.outcome
           from callback_requests c
           left join households h on h.id = c.household_id
           left join coordinators t on t.id = c.taken_by
           where c.id = $1
           for update of c"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Request `id` is now held by `by` (taken at `at`); a request back in the queue after no
/// answer is a try like the first (its tries so far stay counted in `attempts`).
pub async fn take(
    conn: &mut PgConnection,
    id: i64,
    by: CoordinatorId,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update callback_requests
         set taken_by = $2, taken_at = $3, outcome = null, next_try_at = null
         where id = $1",
        id,
        by.0,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Request `id` is held by nobody again (back in the queue at once); its tries so far stay
/// counted.
pub async fn release(conn: &mut PgConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update callback_requests set taken_by = null, taken_at = null where id = $1",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What a call came to, as written on the request.
#[derive(Debug, Clone)]
pub struct OutcomeWrite<'a> {
    /// open (no answer, to be tried again) or done
    pub status: &'a str,
    pub outcome: &'a str,
    pub attempts: i16,
    pub next_try_at: Option<DateTime<Utc>>,
    pub note: Option<&'a str>,
    pub topics: &'a [String],
    pub done_at: Option<DateTime<Utc>>,
    pub done_by: Option<CoordinatorId>,
}

/// Records a call's outcome on request `id`; nobody holds it afterwards.
pub async fn record_outcome(
    conn: &mut PgConnection,
    id: i64,
    w: &OutcomeWrite<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update callback_requests
         set status = $2, outcome = $3, attempts = $4, next_try_at = $5,
             note = coalesce($6, note), topics = $7, done_at = $8, done_by = $9,
             taken_by = null, taken_at = null
         where id = $1",
        id,
        w.status,
        w.outcome,
        w.attempts,
        w.next_try_at,
        w.note,
        w.topics,
        w.done_at,
        w.done_by.map(|c| c.0)
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A member of staff's name and phone (for "Taken by …" and the household's SMS).
pub async fn staff_contact(
    conn: &mut PgConnection,
    id: CoordinatorId,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query!("select name, phone from coordinators where id = $1", id.0)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| (r.name, r.phone)))
}

/// A public holiday: every year on `month`/`day` (`year` none) or that year only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    pub year: Option<i16>,
    pub month: i16,
    pub day: i16,
}

/// Every public holiday (a few dozen rows).
pub async fn holidays(conn: &mut PgConnection) -> Result<Vec<Holiday>, sqlx::Error> {
    sqlx::query_as!(
        Holiday,
        "select year, month, day from public_holidays order by year nulls first, month, day"
    )
    .fetch_all(conn)
    .await
}

/// A public holiday as the holidays page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayRow {
    pub id: i64,
    /// None: every year on that date.
    pub year: Option<i16>,
    pub month: i16,
    pub day: i16,
    pub name: String,
}

/// Every public holiday with its id and name: the every-year ones first, then by date.
pub async fn holiday_rows(conn: &mut PgConnection) -> Result<Vec<HolidayRow>, sqlx::Error> {
    sqlx::query_as!(
        HolidayRow,
        "select id, year, month, day, name from public_holidays
         order by year nulls first, month, day"
    )
    .fetch_all(conn)
    .await
}

/// Adds a public holiday; `None` when that date is one already (every year on that date,
/// or that year only: `public_holidays_once`).
pub async fn add_holiday(
    conn: &mut PgConnection,
    year: Option<i16>,
    month: i16,
    day: i16,
    name: &str,
) -> Result<Option<HolidayRow>, sqlx::Error> {
    sqlx::query_as!(
        HolidayRow,
        "insert into public_holidays (year, month, day, name) values ($1, $2, $3, $4)
         on conflict do nothing
         returning id, year, month, day, name",
        year,
        month,
        day,
        name
    )
    .fetch_optional(conn)
    .await
}

/// Removes public holiday `id`: the row removed, if there was one.
pub async fn remove_holiday(
    conn: &mut PgConnection,
    id: i64,
) -> Result<Option<HolidayRow>, sqlx::Error> {
    sqlx::query_as!(
        HolidayRow,
        "delete from public_holidays where id = $1 returning id, year, month, day, name",
        id
    )
    .fetch_optional(conn)
    .await
}

/// A community's line of the queue's coverage: its households, those with a number abroad,
/// and the requests of its households since a time, done, and the median wait of the done
/// ones (asked → done).
#[derive(Debug, Clone)]
pub struct CoverageRow {
    pub community_id: i64,
    pub name: Localized,
    pub households: i64,
    pub abroad: i64,
    pub requests: i64,
    pub done: i64,
    pub median_wait_secs: Option<f64>,
}

/// Every community's coverage line, requests asked at or after `since` (a request from a
/// number in no household belongs to no community and is not counted here).
pub async fn coverage(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
) -> Result<Vec<CoverageRow>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select c.id, c.name_tg, c.name_ru, c.name_en,
                  (select count(*) from households h where h.community_id = c.id) as "households!",
                  (select count(distinct p.household_id) from phones p
                     join households h on h.id = p.household_id
                    where h.community_id = c.id and p.phone not like '+992%') as "abroad!",
                  coalesce(r.requests, 0) as "requests!",
                  coalesce(r.done, 0) as "done!",
                  r.median_wait as "median_wait_secs"
           from communities c
           left join lateral (
               select count(*) as requests,
                      count(*) filter (where q.status = 'done') as done,
                      percentile_cont(0.5) within group (
                          order by extract(epoch from q.done_at - q.created_at)::float8)
                          filter (where q.status = 'done') as median_wait
               from callback_requests q join households h on h.id = q.household_id
               where h.community_id = c.id and q.created_at >= $1
           ) r on true
           order by c.id"#,
        since
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CoverageRow {
            community_id: r.id,
            name: Localized {
                tg: r.name_tg,
                ru: r.name_ru,
                en: r.name_en,
            },
            households: r.households,
            abroad: r.abroad,
            requests: r.requests,
            done: r.done,
            median_wait_secs: r.median_wait_secs,
        })
        .collect())
}
