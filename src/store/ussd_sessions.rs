//! USSD sessions: what a hop reads in one round trip (who calls, the session's recorded
//! effects, the lists it shows), and the statements of an effect's transaction (claim the
//! step, read or record its result), restarting a session, and whether a pledge was made.
//!
//! The context query is the one every hop makes, tuned with `EXPLAIN` (see its comments):
//! change it with the benchmarks at hand (`docs/PERFORMANCE.md`). The session's starting
//! caller is the conversation layer's type, stored as JSON: these functions take it as any
//! `Serialize`/`DeserializeOwned` type so that the store does not depend on that layer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sqlx::{types::Json, PgConnection, PgPool};

use super::CoordinatorId;
use crate::domain::Language;

/// The texts an effect produced, by name (the engine's variables), as recorded.
pub type EffectResult = super::Texts;

/// The caller's household, as far as a hop needs it.
#[derive(Debug, Deserialize)]
pub struct HopHousehold {
    pub language: Option<Language>,
}

/// A session as recorded: who it started with (the conversation layer's caller, as the JSON
/// it was stored as: see [`StoredSession::start_caller`]), where its history begins,
/// whether it is too old to go on, and its effects by step.
#[derive(Debug, Deserialize)]
pub struct StoredSession {
    start_caller: serde_json::Value,
    pub base_step: usize,
    pub expired: bool,
    pub effects: BTreeMap<String, StoredEffect>,
}

impl StoredSession {
    /// The caller the session started with, read as the type it was stored from.
    pub fn start_caller<C: DeserializeOwned>(&self) -> Result<C, serde_json::Error> {
        C::deserialize(&self.start_caller)
    }

    /// Whether the caller was registered when the session started (as the context query
    /// reads `start_caller->>'registered'`).
    pub fn started_registered(&self) -> bool {
        self.start_caller
            .get("registered")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }
}

#[derive(Debug, Deserialize)]
pub struct StoredEffect {
    pub result: EffectResult,
    /// Hex SHA-256 of the inputs up to the step; none for rows older than the column.
    pub hash: Option<String>,
}

/// A project or a community as a list shows it: its names and, for a project, its currency.
#[derive(Debug, Clone, Deserialize)]
pub struct ListedItem {
    pub id: i64,
    pub tg: String,
    pub ru: String,
    pub en: String,
    #[serde(default)]
    pub currency: Option<String>,
    /// When a project closed (open: none).
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    /// A closed project whose target was reached.
    #[serde(default)]
    pub completed: Option<bool>,
}

/// Everything a hop needs to know, in one round trip.
#[derive(Debug)]
pub struct HopContext {
    /// The caller is a coordinator: the coordinator menu, behind a PIN.
    pub coordinator: Option<CoordinatorId>,
    pub household: Option<HopHousehold>,
    pub session: Option<StoredSession>,
    /// The projects the household's community lists (`listed_projects`).
    pub projects: Vec<ListedItem>,
    /// The communities, only while the caller registers.
    pub communities: Vec<ListedItem>,
}

/// The context of a hop by `phone` in the session `session_key`; a session started before
/// `expired_before` is marked expired. The projects are those open and those closed after
/// `shown_since` (which is before `expired_before`), each with when it closed.
pub async fn hop_context(
    pool: &PgPool,
    phone: &str,
    session_key: &str,
    expired_before: DateTime<Utc>,
    shown_since: DateTime<Utc>,
) -> Result<HopContext, sqlx::Error> {
    let row = sqlx::query!(
        r#"
with hh as (
    select h.id, coalesce(ph.language, h.language) as language, h.community_id
    from phones ph join households h on h.id = ph.household_id
    where ph.phone = $1
), ss as (
    select s.session_key, s.start_caller, s.base_step, s.started_at < $3 as expired
    from ussd_sessions s where s.session_key = $2
)
select
    (select c.id from coordinators c where c.phone = $1) as "coordinator: CoordinatorId",
    (select json_build_object('language', hh.language) from hh) as "household: Json<HopHousehold>",
    (select json_build_object(
        'start_caller', ss.start_caller, 'base_step', ss.base_step, 'expired', ss.expired,
        'effects', coalesce((select json_object_agg(e.step, json_build_object(
                                 'result', e.result, 'hash', encode(e.inputs_hash, 'hex')))
                             from ussd_effects e where e.session_key = ss.session_key), '{}'::json))
     from ss) as "session: Json<StoredSession>",
    (select json_agg(json_build_object('id', p.id, 'tg', p.name_tg, 'ru', p.name_ru, 'en', p.name_en,
                                       'currency', p.currency, 'closed_at', p.closed_at,
                                       'completed', p.status = 'closed' and exists (
                                           select 1 from project_target_reached r where r.project_id = p.id))
                     order by p.id)
     -- a column argument, not a sub-select: PostgreSQL inlines the function only so (a
     -- sub-select argument turns it into a separate function scan on every hop)
     -- (open, or closed since $4: a year for the totals list; the pledge list keeps those
     -- closed after $3, see `ussd::load_context`)
     from hh cross join lateral listed_projects(hh.community_id, $4) p) as "projects: Json<Vec<ListedItem>>",
    (select json_agg(json_build_object('id', c.id, 'tg', c.name_tg, 'ru', c.name_ru, 'en', c.name_en)
                     order by c.id)
     from communities c
     -- only while registering: the caller is unknown, or this session began before they were
     where not exists (select 1 from hh)
        or exists (select 1 from ss where not coalesce((ss.start_caller->>'registered')::boolean, false))
    ) as "communities: Json<Vec<ListedItem>>"
"#,
        phone,
        session_key,
        expired_before,
        shown_since,
    )
    .fetch_one(pool)
    .await?;
    Ok(HopContext {
        coordinator: row.coordinator,
        household: row.household.map(|j| j.0),
        session: row.session.map(|j| j.0),
        projects: row.projects.map(|j| j.0).unwrap_or_default(),
        communities: row.communities.map(|j| j.0).unwrap_or_default(),
    })
}

/// What a coordinator's menu lists: the projects (open, or closed after `closed_after`) and
/// the communities they may see; all of them for an admin.
pub async fn coordinator_lists(
    pool: &PgPool,
    coordinator: CoordinatorId,
    closed_after: DateTime<Utc>,
) -> Result<(Vec<ListedItem>, Vec<ListedItem>), sqlx::Error> {
    let row = sqlx::query!(
        r#"
with co as (select c.id, c.is_admin from coordinators c where c.id = $1)
select
    (select json_agg(json_build_object('id', p.id, 'tg', p.name_tg, 'ru', p.name_ru, 'en', p.name_en,
                                       'currency', p.currency, 'closed_at', p.closed_at,
                                       'completed', p.status = 'closed' and exists (
                                           select 1 from project_target_reached r where r.project_id = p.id))
                     order by p.id)
     from projects p, co
     where (p.status = 'open' or p.closed_at > $2)
       and (co.is_admin or p.community_id in (select community_id from coordinator_communities where coordinator_id = co.id))
    ) as "projects: Json<Vec<ListedItem>>",
    (select json_agg(json_build_object('id', c.id, 'tg', c.name_tg, 'ru', c.name_ru, 'en', c.name_en) order by c.id)
     from communities c, co
     where co.is_admin or c.id in (select community_id from coordinator_communities where coordinator_id = co.id)
    ) as "communities: Json<Vec<ListedItem>>"
"#,
        coordinator as CoordinatorId,
        closed_after,
    )
    .fetch_one(pool)
    .await?;
    Ok((
        row.projects.map(|j| j.0).unwrap_or_default(),
        row.communities.map(|j| j.0).unwrap_or_default(),
    ))
}

/// Starts a session over for a new dialogue that reuses its id: its effects are dropped and
/// its history begins at `base_step`, with `caller` as it is now.
pub async fn restart<C: Serialize + Sync>(
    pool: &PgPool,
    session_key: &str,
    caller: &C,
    base_step: i32,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "delete from ussd_effects where session_key = $1",
        session_key
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update ussd_sessions set start_caller = $2, base_step = $3, started_at = $4, updated_at = $4
         where session_key = $1",
        session_key,
        Json(caller) as _,
        base_step,
        now,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The step an effect runs at, with the history that led there: what [`record_step`] (in
/// the effect's transaction) and `ussd_step_done` (in a one-statement effect, see
/// `store::pledges::pledge_at`) record with the effect's result.
#[derive(Debug)]
pub struct Step<'a, C> {
    pub session_key: &'a str,
    pub phone: &'a str,
    pub start_caller: &'a C,
    pub now: DateTime<Utc>,
    pub step: i32,
    pub action: &'a str,
    /// SHA-256 of the inputs up to the step.
    pub inputs_hash: &'a [u8],
}

/// The end of an effect run in one statement (`ussd_step_done`): its step, the milliseconds
/// it has left, and who tells the other processes' hop caches that the session has a row.
pub struct StepDone<'a, C> {
    pub step: &'a Step<'a, C>,
    pub ms_left: i32,
    pub notify: SessionNotify,
}

/// Who announces a session's new row to the other processes (`NOTIFY hashar_cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionNotify {
    /// The row's trigger, in the effect's own commit.
    Trigger,
    /// This process, after the commit ([`crate::cache::Cache::announce_session`]): the
    /// commit then does not take PostgreSQL's notification lock, which every notifying
    /// commit holds through its WAL flush, one after another.
    AfterCommit,
}

impl SessionNotify {
    /// The value of the transaction's `hashar.session_notify` that the trigger reads.
    pub fn setting(self) -> &'static str {
        match self {
            SessionNotify::Trigger => "trigger",
            SessionNotify::AfterCommit => "after_commit",
        }
    }
}

/// SQLSTATE of a one-statement effect whose step was recorded for the same inputs first
/// (`ussd_step_done`): the statement was rolled back, the recorded result is the answer.
pub const STEP_RECORDED: &str = "HS002";

/// In the effect's transaction, after its action, one statement: makes sure the session
/// row exists, claims the step for this history with the action's result (taking it over
/// from another history), and lifts the transaction's statement timeout for the COMMIT that
/// follows (a statement's own timer is set when it starts, so the setting counts only for
/// the COMMIT). False when the same history had recorded the step already (a concurrent hop
/// that committed first; its row lock made this one wait): then this transaction must be
/// rolled back and the recorded result used (see [`recorded_result`]).
///
/// Claiming after the action, not before it, keeps an effect to one round trip of its own
/// besides BEGIN and COMMIT; a concurrent hop of the same history runs its action too, but
/// only one of them commits (the actions' own idempotency keys make the other wait).
pub async fn record_step<C: Serialize + Sync>(
    conn: &mut PgConnection,
    r: &Step<'_, C>,
    result: &EffectResult,
) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query_scalar!(
        r#"select ussd_record_step($1, $2, $3, $4, $5, $6, $7, $8)
               and set_config('statement_timeout', '0', true) = '0' as "claimed!""#,
        r.session_key,
        r.phone,
        Json(r.start_caller) as _,
        r.now,
        r.step,
        r.action,
        r.inputs_hash,
        Json(result) as _,
    )
    .fetch_one(conn)
    .await?;
    Ok(claimed)
}

/// The result recorded at a step for the history with this hash, if it is recorded.
pub async fn recorded_result(
    pool: &PgPool,
    session_key: &str,
    step: i32,
    inputs_hash: &[u8],
) -> Result<Option<EffectResult>, sqlx::Error> {
    let result = sqlx::query_scalar!(
        r#"select result as "result: Json<EffectResult>" from ussd_effects
           where session_key = $1 and step = $2 and inputs_hash = $3"#,
        session_key,
        step,
        inputs_hash,
    )
    .fetch_optional(pool)
    .await?;
    Ok(result.map(|r| r.0))
}

/// Who calls from a number, as a hop needs it: a coordinator, and the household the number
/// belongs to (read alone when the process's cache does not know the number yet).
#[derive(Debug, Clone, Copy, Default)]
pub struct KnownCaller {
    pub coordinator: Option<CoordinatorId>,
    pub household: Option<CallerHousehold>,
}

/// A calling number's household: the language (the number's own, else the household's) and
/// the community whose projects it is shown.
#[derive(Debug, Clone, Copy)]
pub struct CallerHousehold {
    pub language: Option<Language>,
    pub community_id: i64,
}

fn language_of(text: Option<String>) -> Result<Option<Language>, sqlx::Error> {
    text.map(|t| {
        t.parse::<Language>()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
    })
    .transpose()
}

/// [`KnownCaller`] of `phone`, in one indexed read.
pub async fn known_caller(pool: &PgPool, phone: &str) -> Result<KnownCaller, sqlx::Error> {
    let row = sqlx::query!(
        r#"select (select c.id from coordinators c where c.phone = $1) as "coordinator: CoordinatorId",
                  hh.language, hh.community_id
           from (select 1) one
           left join (select coalesce(ph.language, h.language) as language, h.community_id
                      from phones ph join households h on h.id = ph.household_id
                      where ph.phone = $1) hh on true"#,
        phone,
    )
    .fetch_one(pool)
    .await?;
    Ok(KnownCaller {
        coordinator: row.coordinator,
        household: match row.community_id {
            Some(community_id) => Some(CallerHousehold {
                language: language_of(row.language)?,
                community_id,
            }),
            None => None,
        },
    })
}

/// The session `session_key` as recorded, with its effects (one indexed read); a session
/// started before `expired_before` is marked expired.
pub async fn stored_session(
    pool: &PgPool,
    session_key: &str,
    expired_before: DateTime<Utc>,
) -> Result<Option<StoredSession>, sqlx::Error> {
    let session = sqlx::query_scalar!(
        r#"select json_build_object(
               'start_caller', s.start_caller, 'base_step', s.base_step,
               'expired', s.started_at < $2,
               'effects', coalesce((select json_object_agg(e.step, json_build_object(
                                        'result', e.result, 'hash', encode(e.inputs_hash, 'hex')))
                                    from ussd_effects e where e.session_key = s.session_key), '{}'::json))
               as "session!: Json<StoredSession>"
           from ussd_sessions s where s.session_key = $1"#,
        session_key,
        expired_before,
    )
    .fetch_optional(pool)
    .await?;
    Ok(session.map(|j| j.0))
}

/// A project as every process keeps it (`cache::Reference`): its community, names,
/// currency, and whether and when it closed.
#[derive(Debug, Clone)]
pub struct ReferenceProject {
    pub item: ListedItem,
    /// What a keyword names it by (`BRIDGE`): an SMS's quick path finds projects here.
    pub code: String,
    pub community_id: i64,
    pub open: bool,
}

/// Every community and every project, in id order: what the lists of a household's hop are
/// made from (the programme has a few dozen projects).
pub async fn reference(
    pool: &PgPool,
) -> Result<(Vec<ListedItem>, Vec<ReferenceProject>), sqlx::Error> {
    let communities =
        sqlx::query!("select id, name_tg, name_ru, name_en from communities order by id")
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|c| ListedItem {
                id: c.id,
                tg: c.name_tg,
                ru: c.name_ru,
                en: c.name_en,
                currency: None,
                closed_at: None,
                completed: None,
            })
            .collect();
    let projects = sqlx::query!(
        r#"select p.id, p.community_id, p.code, p.name_tg, p.name_ru, p.name_en, p.currency,
                  p.status = 'open' as "open!", p.closed_at,
                  p.status = 'closed' and exists (
                      select 1 from project_target_reached r where r.project_id = p.id) as "completed!"
           from projects p
           order by p.id"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|p| ReferenceProject {
        community_id: p.community_id,
        code: p.code,
        open: p.open,
        item: ListedItem {
            id: p.id,
            tg: p.name_tg,
            ru: p.name_ru,
            en: p.name_en,
            currency: Some(p.currency),
            closed_at: p.closed_at,
            completed: Some(p.completed),
        },
    })
    .collect();
    Ok((communities, projects))
}

/// The keys of the sessions with a row that started (or restarted) after `since`: those
/// whose hops must read their session (by `ussd_sessions_started_idx`).
pub async fn recent_sessions(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "select session_key from ussd_sessions where started_at > $1",
        since
    )
    .fetch_all(pool)
    .await
}

/// Deletes up to `limit` sessions (with their recorded effects) that started before
/// `before`, oldest first, by `ussd_sessions_started_idx`; how many. Every session restarts
/// after `HASHAR_USSD_SESSION_TTL_SECS` (at most a day), so one that started earlier than
/// that is never read again.
pub async fn prune(pool: &PgPool, before: DateTime<Utc>, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "delete from ussd_sessions where session_key in (
             select session_key from ussd_sessions where started_at < $1
             order by started_at limit $2)",
        before,
        limit,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
