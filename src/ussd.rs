//! One USSD hop, from the parsed request to the screen: load the caller's context (one
//! read), replay the input history through the pure engine, run any effect it reaches (one
//! transaction, once per session and step), and render.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::Duration,
};

use serde::Deserialize;
use sqlx::{types::Json, PgPool, Row};

use crate::{
    actions::{self, ActionError, EffectCtx},
    app::AppState,
    domain::{Language, Phone},
    engine::{Caller, Engine, ListItem, Need, Reply, Stop, Vars, World},
    metrics::HopOutcome,
};

/// A hop as every provider module hands it over.
#[derive(Debug, Clone)]
pub struct Hop {
    pub provider: &'static str,
    pub session_id: String,
    pub phone: Phone,
    /// The whole input history, `*`-separated, `""` on the first hop.
    pub text: String,
}

impl Hop {
    fn session_key(&self) -> String {
        format!("{}:{}", self.provider, self.session_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HopError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("action: {0}")]
    Action(#[from] ActionError),
    #[error("menu: {0}")]
    Menu(String),
    #[error("the database did not answer in time")]
    Timeout,
}

#[derive(Debug, Deserialize)]
struct HouseholdRow {
    language: Option<Language>,
}

#[derive(Debug, Deserialize)]
struct SessionRow {
    start_caller: Caller,
    base_step: usize,
    expired: bool,
    effects: BTreeMap<String, Vars>,
}

#[derive(Debug, Deserialize)]
struct ItemRow {
    id: i64,
    tg: String,
    ru: String,
    en: String,
    #[serde(default)]
    currency: Option<String>,
}

impl From<ItemRow> for ListItem {
    fn from(r: ItemRow) -> ListItem {
        let mut extra = Vars::new();
        if let Some(c) = r.currency {
            extra.insert("currency".into(), c);
        }
        ListItem {
            id: r.id.to_string(),
            labels: [r.tg, r.ru, r.en],
            extra,
        }
    }
}

/// Everything a hop needs to know, in one round trip (a second one for a coordinator's
/// lists).
struct HopContext {
    household: Option<HouseholdRow>,
    /// The caller is a coordinator: the coordinator menu, behind a PIN.
    coordinator: Option<i64>,
    coord_projects: Vec<ListItem>,
    coord_communities: Vec<ListItem>,
    session: Option<SessionRow>,
    projects: Vec<ListItem>,
    communities: Vec<ListItem>,
}

const CONTEXT_SQL: &str = r#"
with hh as (
    select h.id, h.language, h.community_id
    from phones ph join households h on h.id = ph.household_id
    where ph.phone = $1
), ss as (
    select s.session_key, s.start_caller, s.base_step, s.started_at < $3 as expired
    from ussd_sessions s where s.session_key = $2
)
select
    (select c.id from coordinators c where c.phone = $1) as coordinator,
    (select json_build_object('language', hh.language) from hh) as household,
    (select json_build_object(
        'start_caller', ss.start_caller, 'base_step', ss.base_step, 'expired', ss.expired,
        'effects', coalesce((select json_object_agg(e.step, e.result) from ussd_effects e
                             where e.session_key = ss.session_key), '{}'::json))
     from ss) as session,
    (select json_agg(json_build_object('id', p.id, 'tg', p.name_tg, 'ru', p.name_ru, 'en', p.name_en,
                                       'currency', p.currency) order by p.id)
     from projects p
     where (p.status = 'open' or p.closed_at > $3) and p.community_id = (select community_id from hh)) as projects,
    (select json_agg(json_build_object('id', c.id, 'tg', c.name_tg, 'ru', c.name_ru, 'en', c.name_en)
                     order by c.id)
     from communities c
     -- only while registering: the caller is unknown, or this session began before they were
     where not exists (select 1 from hh)
        or exists (select 1 from ss where not coalesce((ss.start_caller->>'registered')::boolean, false))
    ) as communities
"#;

/// What a coordinator's menu lists: the projects and communities they may see.
const COORDINATOR_LISTS_SQL: &str = r#"
with co as (select c.id, c.is_admin from coordinators c where c.id = $1)
select
    (select json_agg(json_build_object('id', p.id, 'tg', p.name_tg, 'ru', p.name_ru, 'en', p.name_en,
                                       'currency', p.currency) order by p.id)
     from projects p, co
     where (p.status = 'open' or p.closed_at > $2)
       and (co.is_admin or p.community_id in (select community_id from coordinator_communities where coordinator_id = co.id))
    ) as coord_projects,
    (select json_agg(json_build_object('id', c.id, 'tg', c.name_tg, 'ru', c.name_ru, 'en', c.name_en) order by c.id)
     from communities c, co
     where co.is_admin or c.id in (select community_id from coordinator_communities where coordinator_id = co.id)
    ) as coord_communities
"#;

async fn load_context(
    pool: &PgPool,
    hop: &Hop,
    expired_before: chrono::DateTime<chrono::Utc>,
) -> Result<HopContext, sqlx::Error> {
    let row = sqlx::query(CONTEXT_SQL)
        .bind(hop.phone.as_str())
        .bind(hop.session_key())
        .bind(expired_before)
        .fetch_one(pool)
        .await?;
    let household: Option<Json<HouseholdRow>> = row.try_get("household")?;
    let session: Option<Json<SessionRow>> = row.try_get("session")?;
    let projects: Option<Json<Vec<ItemRow>>> = row.try_get("projects")?;
    let communities: Option<Json<Vec<ItemRow>>> = row.try_get("communities")?;
    let coordinator: Option<i64> = row.try_get("coordinator")?;
    let items = |v: Option<Json<Vec<ItemRow>>>| -> Vec<ListItem> {
        v.map(|j| j.0.into_iter().map(ListItem::from).collect())
            .unwrap_or_default()
    };
    // The coordinator's lists only for a coordinator: a household's hop (nearly all of
    // them) does not pay for them.
    let (coord_projects, coord_communities) = match coordinator {
        Some(id) => {
            let lists = sqlx::query(COORDINATOR_LISTS_SQL)
                .bind(id)
                .bind(expired_before)
                .fetch_one(pool)
                .await?;
            (
                lists.try_get("coord_projects")?,
                lists.try_get("coord_communities")?,
            )
        }
        None => (None, None),
    };
    Ok(HopContext {
        household: household.map(|j| j.0),
        coordinator,
        coord_projects: items(coord_projects),
        coord_communities: items(coord_communities),
        session: session.map(|j| j.0),
        projects: items(projects),
        communities: items(communities),
    })
}

/// The last language each caller used, so that even a "service busy" screen shown while the
/// database is down speaks it. A hint only: bounded, per process, never the record.
#[derive(Debug, Default)]
pub struct LanguageHints(Mutex<HashMap<String, Language>>);

const HINTS_CAP: usize = 100_000;

impl LanguageHints {
    pub fn remember(&self, phone: &Phone, lang: Language) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= HINTS_CAP && !m.contains_key(phone.as_str()) {
                m.clear();
            }
            // nearly every hop repeats what is known: no new key string for it
            if m.get(phone.as_str()) != Some(&lang) {
                m.insert(phone.as_str().to_owned(), lang);
            }
        }
    }

    /// The remembered language, else one guessed from the country code.
    pub fn guess(&self, phone: &Phone, default: Language) -> Language {
        if let Some(l) = self
            .0
            .lock()
            .ok()
            .and_then(|m| m.get(phone.as_str()).copied())
        {
            return l;
        }
        let p = phone.as_str();
        if p.starts_with("+992") {
            default
        } else if p.starts_with("+7") || p.starts_with("+375") || p.starts_with("+996") {
            Language::Ru
        } else {
            Language::En
        }
    }
}

/// Answers one hop. Never fails: a database that is down or slow gets the caller a short
/// "service busy" screen in their language within the configured timeout.
pub async fn answer(state: &AppState, hop: &Hop) -> Reply {
    let started = std::time::Instant::now();
    let timeout = Duration::from_millis(state.config.db_timeout_ms);
    let outcome = match tokio::time::timeout(timeout, answer_inner(state, hop)).await {
        Ok(r) => r,
        Err(_) => Err(HopError::Timeout),
    };
    match outcome {
        Ok(reply) => {
            state.hints.remember(&hop.phone, reply.language);
            let outcome = if reply.end {
                HopOutcome::End
            } else {
                HopOutcome::Continue
            };
            crate::metrics::ussd_hop(outcome, started.elapsed());
            reply
        }
        Err(e) => {
            let language = state.hints.guess(&hop.phone, state.config.default_language);
            let key = match &e {
                HopError::Action(a) => a.text_key().unwrap_or("nav.busy"),
                _ => "nav.busy",
            };
            if key == "nav.busy" {
                if let HopError::Db(e) = &e {
                    crate::metrics::pool_timeout(e);
                }
                tracing::error!(phone = %hop.phone, session = %hop.session_id, error = %e, "USSD hop failed");
                crate::metrics::ussd_hop(HopOutcome::Busy, started.elapsed());
            } else {
                tracing::info!(phone = %hop.phone, error = %e, "USSD hop refused");
                crate::metrics::ussd_hop(HopOutcome::Refused, started.elapsed());
            }
            Reply {
                text: state.menus.text(language, key).to_owned(),
                end: true,
                language,
            }
        }
    }
}

async fn answer_inner(state: &AppState, hop: &Hop) -> Result<Reply, HopError> {
    let now = state.clock.now();
    let ttl = chrono::Duration::seconds(
        i64::try_from(state.config.ussd_session_ttl_secs).unwrap_or(i64::MAX / 2_000),
    );
    let ctx = load_context(&state.pool, hop, now - ttl).await?;
    let tokens: Vec<&str> = if hop.text.is_empty() {
        Vec::new()
    } else {
        hop.text.split('*').collect()
    };
    let (menu, current) = match ctx.coordinator {
        Some(_) => (
            "coordinator",
            Caller {
                language: Some(state.config.default_language),
                registered: true,
                pin_ok: false,
            },
        ),
        None => (
            "household",
            Caller {
                language: ctx.household.as_ref().and_then(|h| h.language),
                registered: ctx.household.is_some(),
                pin_ok: false,
            },
        ),
    };
    let (caller, mut base, mut results) = match ctx.session {
        Some(s) if s.expired => {
            // The session outlived its time: start over, ignoring the inputs so far.
            restart_session(&state.pool, hop, &current, tokens.len(), now).await?;
            (current.clone(), tokens.len(), BTreeMap::new())
        }
        Some(s) => {
            let results = s
                .effects
                .into_iter()
                .filter_map(|(k, v)| k.parse::<usize>().ok().map(|k| (k, v)))
                .collect();
            (s.start_caller, s.base_step, results)
        }
        None => (current.clone(), 0, BTreeMap::new()),
    };
    if base > tokens.len() {
        // The history is shorter than where the session restarted: a new dialogue reusing
        // the id. Follow the history from its start.
        base = 0;
        results.clear();
    }
    let engine = Engine::new(&state.menus, menu).map_err(|e| HopError::Menu(e.to_string()))?;
    let lists = |source: &str| -> Vec<ListItem> {
        match source {
            "communities" => ctx.communities.clone(),
            "open_projects" => ctx.projects.clone(),
            "coord_projects" => ctx.coord_projects.clone(),
            "coord_communities" => ctx.coord_communities.clone(),
            _ => Vec::new(),
        }
    };
    let mut reads: HashMap<String, Vars> = HashMap::new();
    for _ in 0..crate::engine::MAX_NEEDS {
        let outcome = {
            let world = World {
                caller: caller.clone(),
                lists: &lists,
                results: &results,
                reads: &reads,
                globals: &state.globals,
                default_language: state.config.default_language,
                max_amount: state.config.max_pledge,
                limits: state.config.screen_limits(),
            };
            engine.replay(&world, base, &tokens[base..])
        };
        match outcome {
            Ok(reply) => return Ok(reply),
            Err(Stop::Broken(message)) => return Err(HopError::Menu(message)),
            Err(Stop::Need(Need::Read {
                key, action, vars, ..
            })) => {
                let mut conn = state.pool.acquire().await?;
                let data = actions::run_read(&mut conn, &hop.phone, &action, &vars).await?;
                reads.insert(key, data);
            }
            Err(Stop::Need(Need::Effect {
                step,
                action,
                arg,
                vars,
                language,
            })) => {
                let result = apply_effect(
                    state,
                    hop,
                    &caller,
                    now,
                    step,
                    &action,
                    arg.as_deref(),
                    &vars,
                    language,
                )
                .await?;
                results.insert(step, result);
            }
        }
    }
    Err(HopError::Menu("too many actions in one hop".into()))
}

async fn restart_session(
    pool: &PgPool,
    hop: &Hop,
    current: &Caller,
    base: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("delete from ussd_effects where session_key = $1")
        .bind(hop.session_key())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "update ussd_sessions set start_caller = $2, base_step = $3, started_at = $4, updated_at = $4
         where session_key = $1",
    )
    .bind(hop.session_key())
    .bind(Json(current))
    .bind(i32::try_from(base).unwrap_or(i32::MAX))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Runs an effect once per (session, step): the first hop to get here runs it and records
/// its result; a repeated or concurrent hop waits for that and reads the same result.
#[allow(clippy::too_many_arguments)]
async fn apply_effect(
    state: &AppState,
    hop: &Hop,
    start_caller: &Caller,
    now: chrono::DateTime<chrono::Utc>,
    step: usize,
    action: &str,
    arg: Option<&str>,
    vars: &Vars,
    language: Language,
) -> Result<Vars, HopError> {
    let key = hop.session_key();
    let step_i32 = i32::try_from(step).map_err(|_| HopError::Menu("step out of range".into()))?;
    if action == "create_pledge" {
        // The hot path: the whole step in one server-side call (see migrations/*pledge_functions).
        let project = vars
            .get("project_id")
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| HopError::Menu("create_pledge needs a project".into()))?;
        let amount = vars
            .get("amount")
            .and_then(|v| v.parse::<rust_decimal::Decimal>().ok())
            .ok_or_else(|| HopError::Menu("create_pledge needs an amount".into()))?;
        let Json(result): Json<Vars> =
            sqlx::query_scalar("select ussd_pledge($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&key)
                .bind(hop.phone.as_str())
                .bind(Json(start_caller))
                .bind(now)
                .bind(step_i32)
                .bind(project)
                .bind(amount)
                .bind(format!("ussd:{key}:{step}"))
                .fetch_one(&state.pool)
                .await
                .map_err(|e| actions::pledge_error(e, project))?;
        tracing::info!(phone = %hop.phone, project, amount = %amount, "pledge recorded");
        return Ok(result);
    }
    let mut tx = state.pool.begin().await?;
    // One statement makes sure the session row exists and claims this step.
    let claimed = sqlx::query(
        "with s as (
             insert into ussd_sessions (session_key, phone, start_caller, started_at, updated_at)
             values ($1, $2, $3, $4, $4)
             on conflict (session_key) do update set updated_at = excluded.updated_at
             returning session_key
         )
         insert into ussd_effects (session_key, step, action, result)
         select session_key, $5, $6, '{}' from s
         on conflict do nothing",
    )
    .bind(&key)
    .bind(hop.phone.as_str())
    .bind(Json(start_caller))
    .bind(now)
    .bind(step_i32)
    .bind(action)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        let Json(result): Json<Vars> = sqlx::query_scalar(
            "select result from ussd_effects where session_key = $1 and step = $2",
        )
        .bind(&key)
        .bind(step_i32)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(result);
    }
    let idempotency_key = format!("ussd:{key}:{step}");
    let ctx = EffectCtx {
        state,
        now,
        phone: &hop.phone,
        channel: "ussd",
        idempotency_key: &idempotency_key,
        language,
    };
    // Dropping `tx` on error rolls the claim back, so a retry can run the effect again.
    let result = actions::run_effect(&mut tx, &ctx, action, arg, vars).await?;
    sqlx::query("update ussd_effects set result = $3 where session_key = $1 and step = $2")
        .bind(&key)
        .bind(step_i32)
        .bind(Json(&result))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(result)
}
