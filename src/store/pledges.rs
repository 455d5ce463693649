//! Pledges: what is still outstanding on one, and the API's list.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{types::Json, PgConnection};

use super::ussd_sessions::StepDone;
use super::{CommunityId, CoordinatorId, HouseholdId, Localized, PledgeId, ProjectId, Texts};

/// Where a pledge stands (`pledges.status`). The database moves it (see
/// `migrations/*_money.sql`): `pledged` → `received` once receipts reach the amount, back
/// to `pledged` when a reversal leaves it short, `cancelled` on a cancellation.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    sqlx::Type,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum PledgeStatus {
    Pledged,
    Received,
    Cancelled,
}

text_values!(PledgeStatus {
    Pledged => "pledged",
    Received => "received",
    Cancelled => "cancelled",
});

/// How a pledge was made (`pledges.channel`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    sqlx::Type,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum PledgeChannel {
    Ussd,
    Sms,
    Api,
}

text_values!(PledgeChannel {
    Ussd => "ussd",
    Sms => "sms",
    Api => "api",
});

/// A pledge with what is still outstanding on it (its amount less every receipt for it,
/// reversals included) and its project's community and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub pledge: PledgeId,
    pub project: ProjectId,
    pub community: CommunityId,
    pub project_name: Localized,
    /// The number that pledged.
    pub phone: String,
    pub amount: Decimal,
    pub currency: String,
    pub status: PledgeStatus,
    pub outstanding: Decimal,
}

/// Pledge `id` and what is outstanding on it. With `lock`, the pledge's row stays locked
/// (`for update`) until the caller's transaction ends.
pub async fn balance(
    conn: &mut PgConnection,
    id: PledgeId,
    lock: bool,
) -> Result<Option<Balance>, sqlx::Error> {
    // Two statements only because `for update` cannot be a parameter; the columns are the same.
    macro_rules! balance {
        ($r:expr) => {
            $r.map(|r| Balance {
                pledge: r.pledge,
                project: r.project,
                community: r.community,
                project_name: Localized {
                    tg: r.name_tg,
                    ru: r.name_ru,
                    en: r.name_en,
                },
                phone: r.phone,
                amount: r.amount,
                currency: r.currency,
                status: r.status,
                outstanding: r.outstanding,
            })
        };
    }
    Ok(if lock {
        balance!(sqlx::query!(
            r#"select pl.id as "pledge: PledgeId", pl.project_id as "project: ProjectId",
                      p.community_id as "community: CommunityId",
                      p.name_tg, p.name_ru, p.name_en, pl.phone, pl.amount, pl.currency,
                      pl.status as "status: PledgeStatus",
                      pl.amount - coalesce((select sum(amount) from receipts r where r.pledge_id = pl.id), 0)
                          as "outstanding!"
               from pledges pl join projects p on p.id = pl.project_id where pl.id = $1
               for update of pl"#,
            id as PledgeId
        )
        .fetch_optional(conn)
        .await?)
    } else {
        balance!(sqlx::query!(
            r#"select pl.id as "pledge: PledgeId", pl.project_id as "project: ProjectId",
                      p.community_id as "community: CommunityId",
                      p.name_tg, p.name_ru, p.name_en, pl.phone, pl.amount, pl.currency,
                      pl.status as "status: PledgeStatus",
                      pl.amount - coalesce((select sum(amount) from receipts r where r.pledge_id = pl.id), 0)
                          as "outstanding!"
               from pledges pl join projects p on p.id = pl.project_id where pl.id = $1"#,
            id as PledgeId
        )
        .fetch_optional(conn)
        .await?)
    })
}

/// The `pledged` pledge with this code in one of the coordinator's communities (any
/// community for an admin).
pub async fn open_by_code(
    conn: &mut PgConnection,
    code: &str,
    coordinator: CoordinatorId,
    admin: bool,
) -> Result<Option<PledgeId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select pl.id as "pledge: PledgeId"
           from pledges pl join projects p on p.id = pl.project_id
           where pl.code = $1 and pl.status = 'pledged'
             and ($3 or p.community_id in (select community_id from coordinator_communities where coordinator_id = $2))"#,
        code,
        coordinator as CoordinatorId,
        admin
    )
    .fetch_optional(conn)
    .await
}

/// A pledge as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pledge {
    pub id: PledgeId,
    pub project: ProjectId,
    pub community: CommunityId,
    pub household: HouseholdId,
    pub phone: String,
    pub amount: Decimal,
    pub currency: String,
    pub said_amount: Option<Decimal>,
    pub said_currency: Option<String>,
    pub rate: Option<Decimal>,
    pub channel: PledgeChannel,
    pub status: PledgeStatus,
    pub created_at: DateTime<Utc>,
}

/// Which pledges [`list`] returns (every filter optional), newest first.
#[derive(Debug, Clone, Default)]
pub struct PledgeFilter<'a> {
    /// The communities the caller may see (`None`: all).
    pub scope: Option<&'a [i64]>,
    pub community: Option<CommunityId>,
    pub project: Option<ProjectId>,
    pub status: Option<PledgeStatus>,
    pub channel: Option<PledgeChannel>,
    /// First day (inclusive).
    pub from: Option<NaiveDate>,
    /// Last day (inclusive).
    pub to: Option<NaiveDate>,
    pub limit: i64,
    pub offset: i64,
}

/// Pledges matching `f`, newest first.
pub async fn list(
    conn: &mut PgConnection,
    f: &PledgeFilter<'_>,
) -> Result<Vec<Pledge>, sqlx::Error> {
    sqlx::query_as!(
        Pledge,
        r#"select pl.id as "id: PledgeId", pl.project_id as "project: ProjectId",
                  p.community_id as "community: CommunityId", pl.household_id as "household: HouseholdId",
                  pl.phone, pl.amount, pl.currency, pl.said_amount, pl.said_currency, pl.rate,
                  pl.channel as "channel: PledgeChannel", pl.status as "status: PledgeStatus", pl.created_at
           from pledges pl join projects p on p.id = pl.project_id
           where ($1::bigint[] is null or p.community_id = any($1))
             and ($2::bigint is null or p.community_id = $2)
             and ($3::bigint is null or pl.project_id = $3)
             and ($4::text is null or pl.status = $4)
             and ($5::text is null or pl.channel = $5)
             and ($6::date is null or pl.created_at >= $6::date)
             and ($7::date is null or pl.created_at < $7::date + 1)
           order by pl.created_at desc, pl.id desc
           limit $8 offset $9"#,
        f.scope,
        f.community as Option<CommunityId>,
        f.project as Option<ProjectId>,
        f.status as Option<PledgeStatus>,
        f.channel as Option<PledgeChannel>,
        f.from,
        f.to,
        f.limit,
        f.offset
    )
    .fetch_all(conn)
    .await
}

/// Where a page of [`of_project`] starts: after the pledge made at `.0` with id `.1`
/// (the last one of the page before), in the order newest first.
pub type PledgeCursor = (DateTime<Utc>, PledgeId);

/// A project's pledges, newest first (by `created_at`, then `id`), at most `limit`, from
/// after `before` (the first page when `None`): a keyset page over
/// `pledges_project_recent`, so that any page costs `limit` rows of the index however many
/// pledges the project has (the API's [`list`], with its optional filters and offset, reads
/// all of a project's pledges to sort them). Equal timestamps are ordered by id, so pages
/// neither repeat nor skip a pledge.
pub async fn of_project(
    conn: &mut PgConnection,
    project: ProjectId,
    before: Option<PledgeCursor>,
    limit: i64,
) -> Result<Vec<Pledge>, sqlx::Error> {
    // The first page starts after (infinity, the largest id), so that the statement's one
    // (generic) plan always has the cursor as an index condition.
    let (at, id) = before.map_or((None, i64::MAX), |(at, id)| (Some(at), id.0));
    sqlx::query_as!(
        Pledge,
        r#"select pl.id as "id: PledgeId", pl.project_id as "project: ProjectId",
                  p.community_id as "community: CommunityId", pl.household_id as "household: HouseholdId",
                  pl.phone, pl.amount, pl.currency, pl.said_amount, pl.said_currency, pl.rate,
                  pl.channel as "channel: PledgeChannel", pl.status as "status: PledgeStatus", pl.created_at
           from pledges pl join projects p on p.id = pl.project_id
           where pl.project_id = $1
             and (pl.created_at, pl.id) < (coalesce($2::timestamptz, 'infinity'), $3::bigint)
           order by pl.created_at desc, pl.id desc
           limit $4"#,
        project as ProjectId,
        at,
        id,
        limit
    )
    .fetch_all(conn)
    .await
}

/// One pledge.
pub async fn one(conn: &mut PgConnection, id: PledgeId) -> Result<Option<Pledge>, sqlx::Error> {
    sqlx::query_as!(
        Pledge,
        r#"select pl.id as "id: PledgeId", pl.project_id as "project: ProjectId",
                  p.community_id as "community: CommunityId", pl.household_id as "household: HouseholdId",
                  pl.phone, pl.amount, pl.currency, pl.said_amount, pl.said_currency, pl.rate,
                  pl.channel as "channel: PledgeChannel", pl.status as "status: PledgeStatus", pl.created_at
           from pledges pl join projects p on p.id = pl.project_id where pl.id = $1"#,
        id as PledgeId
    )
    .fetch_optional(conn)
    .await
}

/// The SMS that tells a pledge made on the menus, rendered by the application around the
/// code the pledge gets (7 digits, measured in advance): `before` + code + `after`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PledgeSms<'a> {
    pub before: &'a str,
    pub after: &'a str,
    /// `gsm7` or `ucs2` (`outbox.encoding`).
    pub encoding: &'a str,
    pub segments: i32,
    pub provider: &'a str,
}

/// A pledge from a menu (SQL function `pledge_at`): the project's new figures as a screen
/// shows them, or `{ask, minutes}` when the same pledge was made in the last 10 minutes and
/// `again` is false. A closed project or one not the caller's fails with SQLSTATE `HS001`.
/// With `sms`, the same statement queues the SMS that tells the pledge to the number, once
/// per pledge (not when it asks).
///
/// With `done` (a USSD effect's step, the milliseconds it has left and who announces the
/// session), the statement also records the step with the answer (`ussd_step_done`) and
/// must run on its own, outside a transaction: it commits by itself, one round trip in all;
/// `code` is then the code made ahead for it (`store::pledge_codes`; `None` leaves it to the
/// trigger, as every other path does). It fails with
/// [`super::ussd_sessions::STEP_RECORDED`] when the step was recorded for the same inputs
/// first, with 57014 when it ended after the time left, and 55P03 when a lock was not had
/// within that time; the pledge is then not made.
#[allow(clippy::too_many_arguments)]
pub async fn pledge_at<C: serde::Serialize + Sync>(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    project: ProjectId,
    phone: &str,
    amount: Decimal,
    channel: &str,
    key: &str,
    again: bool,
    sms: Option<&PledgeSms<'_>>,
    done: Option<&StepDone<'_, C>>,
    code: Option<&str>,
) -> Result<Texts, sqlx::Error> {
    let sms = sms
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let Some(&StepDone {
        step,
        ms_left,
        notify,
    }) = done
    else {
        let Json(totals) = sqlx::query_scalar!(
            r#"select pledge_at($1, $2, $3, $4, $5, $6, $7, $8) as "totals!: Json<Texts>""#,
            now,
            project as ProjectId,
            phone,
            amount,
            channel,
            key,
            again,
            sms
        )
        .fetch_one(conn)
        .await?;
        return Ok(totals);
    };
    // One statement, committed on its own: the lock timeout, who notifies and the code made
    // ahead first (the materialized CTE's row is made before the pledge is computed for
    // it), then the pledge, then the record of its step with the pledge's answer
    // (`ussd_step_done`).
    let Json(totals) = sqlx::query_scalar!(
        r#"with t as materialized (select set_config('lock_timeout', $9::int || 'ms', true),
                                          set_config('hashar.session_notify', $17, true),
                                          set_config('hashar.pledge_code', $18, true))
           select ussd_step_done($10, $11, $12, $13, $14, $15, $16, $9,
                                 pledge_at($1, $2, $3, $4, $5, $6, $7, $8))
               as "totals!: Json<Texts>"
           from t"#,
        now,
        project as ProjectId,
        phone,
        amount,
        channel,
        key,
        again,
        sms,
        ms_left,
        step.session_key,
        step.phone,
        Json(step.start_caller) as _,
        step.now,
        step.step,
        step.action,
        step.inputs_hash,
        notify.setting(),
        code.unwrap_or(""),
    )
    .fetch_one(conn)
    .await?;
    Ok(totals)
}

/// What a pledge by SMS said, when it named another currency than the project's.
#[derive(Debug, Clone)]
pub struct Said<'a> {
    pub amount: Decimal,
    pub currency: &'a str,
    /// The rate `amount` was converted at.
    pub rate: Decimal,
}

/// A pledge by SMS (SQL function `create_pledge`, channel `sms`): the project's new
/// figures. A closed project or one not the caller's fails with SQLSTATE `HS001`.
pub async fn create_by_sms(
    conn: &mut PgConnection,
    project: ProjectId,
    phone: &str,
    amount: Decimal,
    key: &str,
    said: Option<Said<'_>>,
) -> Result<Texts, sqlx::Error> {
    let Json(totals) = sqlx::query_scalar!(
        r#"select create_pledge($1, $2, $3, 'sms', $4, $5, $6, $7) as "totals!: Json<Texts>""#,
        project as ProjectId,
        phone,
        amount,
        key,
        said.as_ref().map(|s| s.amount),
        said.as_ref().map(|s| s.currency),
        said.as_ref().map(|s| s.rate)
    )
    .fetch_one(conn)
    .await?;
    Ok(totals)
}

/// A pledge as its household sees it ("My pledges"): code, project, amount, what was
/// received for it so far (net of reversals) and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Own {
    pub pledge: PledgeId,
    pub household: HouseholdId,
    pub community: CommunityId,
    pub code: String,
    pub project_name: Localized,
    pub amount: Decimal,
    pub currency: String,
    pub received: Decimal,
    pub status: PledgeStatus,
}

/// The pledges of `phone`'s household, whichever of its phones made them, at most `limit`,
/// with how many it has in all. Those made before `since` come first, newest first, then
/// those made since, oldest first: a list shown during a session keeps its numbers when a
/// pledge is made meanwhile. `since` is `now`, or, with `ussd_session` (its key, and the
/// time before which a session has expired), when that USSD session began.
pub async fn of_household(
    conn: &mut PgConnection,
    phone: &str,
    now: DateTime<Utc>,
    ussd_session: Option<(&str, DateTime<Utc>)>,
    limit: i64,
) -> Result<(Vec<Own>, i64), sqlx::Error> {
    let (session_key, expired_before) = ussd_session.unzip();
    let rows = sqlx::query!(
        r#"select pl.id as "pledge: PledgeId", pl.household_id as "household: HouseholdId",
                  p.community_id as "community: CommunityId", pl.code as "code!", p.name_tg, p.name_ru, p.name_en,
                  pl.amount, pl.currency,
                  coalesce((select sum(r.amount) from receipts r where r.pledge_id = pl.id), 0) as "received!",
                  pl.status as "status: PledgeStatus", count(*) over () as "total!"
           from pledges pl join projects p on p.id = pl.project_id
           cross join lateral (
               select coalesce((select s.started_at from ussd_sessions s
                                where s.session_key = $4 and s.started_at >= $5), $2) as since
           ) ss
           where pl.household_id = (select ph.household_id from phones ph where ph.phone = $1)
           order by pl.created_at >= ss.since,
                    case when pl.created_at < ss.since then pl.created_at end desc,
                    case when pl.created_at < ss.since then pl.id end desc,
                    pl.created_at, pl.id
           limit $3"#,
        phone,
        now,
        limit,
        session_key,
        expired_before
    )
    .fetch_all(conn)
    .await?;
    let total = rows.first().map_or(0, |r| r.total);
    let own = rows
        .into_iter()
        .map(|r| Own {
            pledge: r.pledge,
            household: r.household,
            community: r.community,
            code: r.code,
            project_name: Localized {
                tg: r.name_tg,
                ru: r.name_ru,
                en: r.name_en,
            },
            amount: r.amount,
            currency: r.currency,
            received: r.received,
            status: r.status,
        })
        .collect();
    Ok((own, total))
}

/// One pledge of `phone`'s household, by id or by code (`None` when it is not the
/// household's: the same answer as for no such pledge). With `lock`, its row stays locked
/// until the caller's transaction ends.
pub async fn own(
    conn: &mut PgConnection,
    phone: &str,
    id: Option<PledgeId>,
    code: Option<&str>,
    lock: bool,
) -> Result<Option<Own>, sqlx::Error> {
    if lock {
        // taken before the read: the status and the sum read below are the ones a
        // cancellation in the same transaction sees (its trigger locks the same row)
        sqlx::query!(
            r#"select pl.id from pledges pl
               where pl.household_id = (select ph.household_id from phones ph where ph.phone = $1)
                 and ($2::bigint is null or pl.id = $2)
                 and ($3::text is null or pl.code = $3)
                 and ($2::bigint is not null or $3::text is not null)
               for update"#,
            phone,
            id as Option<PledgeId>,
            code
        )
        .fetch_optional(&mut *conn)
        .await?;
    }
    let r = sqlx::query!(
        r#"select pl.id as "pledge: PledgeId", pl.household_id as "household: HouseholdId",
                  p.community_id as "community: CommunityId", pl.code as "code!", p.name_tg, p.name_ru, p.name_en,
                  pl.amount, pl.currency,
                  coalesce((select sum(r.amount) from receipts r where r.pledge_id = pl.id), 0) as "received!",
                  pl.status as "status: PledgeStatus"
           from pledges pl join projects p on p.id = pl.project_id
           where pl.household_id = (select ph.household_id from phones ph where ph.phone = $1)
             and ($2::bigint is null or pl.id = $2)
             and ($3::text is null or pl.code = $3)
             and ($2::bigint is not null or $3::text is not null)
           limit 1"#,
        phone,
        id as Option<PledgeId>,
        code
    )
    .fetch_optional(conn)
    .await?;
    let Some(r) = r else {
        return Ok(None);
    };
    Ok(Some(Own {
        pledge: r.pledge,
        household: r.household,
        community: r.community,
        code: r.code,
        project_name: Localized {
            tg: r.name_tg,
            ru: r.name_ru,
            en: r.name_en,
        },
        amount: r.amount,
        currency: r.currency,
        received: r.received,
        status: r.status,
    }))
}
