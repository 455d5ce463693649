//! One USSD hop, from the parsed request to the screen: load the caller's context (one
//! read), replay the input history through the pure engine, run any effect it reaches (one
//! transaction, once per session, step and input history), and render.
//!
//! A session belongs to its caller: it is keyed by (provider, phone, session id), and an
//! effect recorded at a step is reused only by a hop whose inputs up to that step are the
//! same (a SHA-256 of them is kept with the effect). A hop whose history disagrees with what
//! the session recorded is a new dialogue that reuses the id: the session starts over for
//! it, as a caller who dialled again expects, and its pledge is a new pledge (the effect's
//! idempotency key holds the history's hash too).

use std::{collections::BTreeMap, time::Duration};

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::time::Instant;

use crate::{
    actions::{self, ActionError, EffectCtx},
    app::AppState,
    conversation::ConversationError,
    domain::{Language, Phone},
    engine::{
        drive::{drive, Answers, EffectNeed, ListNeed, ReadNeed, Scene, Transport},
        Action, Caller, Engine, ListItem, ListSource, Reply, Vars,
    },
    metrics::HopOutcome,
    store::ussd_sessions::{self, ListedItem, SessionNotify, StepDone},
};

/// A hop as every provider module hands it over (the type is the channels').
pub use crate::channels::ussd::Hop;

impl Hop {
    /// The session's key: the same id from another phone is another session. (Neither a
    /// provider name nor an E.164 number holds `:`, so keys cannot collide.)
    fn session_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.provider,
            self.phone.as_str(),
            self.session_id
        )
    }
}

/// SHA-256 of the inputs up to and including `step` (the first `step` tokens), hex.
fn inputs_hash(tokens: &[&str], step: usize) -> [u8; 32] {
    let upto = &tokens[..step.min(tokens.len())];
    Sha256::digest(upto.join("*").as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn list_item(r: ListedItem) -> ListItem {
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

/// Everything a hop needs to know, in one round trip (a second one for a coordinator's
/// lists).
struct HopContext {
    household: Option<ussd_sessions::HopHousehold>,
    /// The caller is a coordinator: the coordinator menu, behind a PIN.
    coordinator: Option<i64>,
    coord_projects: Vec<ListItem>,
    coord_communities: Vec<ListItem>,
    session: Option<ussd_sessions::StoredSession>,
    /// The projects open for pledges (and those closed during the session).
    projects: Vec<ListItem>,
    /// The projects whose totals are shown: open, or closed in the last year (marked).
    total_projects: Vec<ListItem>,
    communities: Vec<ListItem>,
}

async fn load_context(
    state: &AppState,
    hop: &Hop,
    now: chrono::DateTime<chrono::Utc>,
    expired_before: chrono::DateTime<chrono::Utc>,
) -> Result<HopContext, sqlx::Error> {
    let pool = &state.pool;
    let shown_since = crate::news::shown_since(now);
    let ctx = match from_memory(state, hop, expired_before, shown_since).await? {
        Some(ctx) => ctx,
        None => {
            ussd_sessions::hop_context(
                pool,
                hop.phone.as_str(),
                &hop.session_key(),
                expired_before,
                shown_since,
            )
            .await?
        }
    };
    let items = |v: Vec<ListedItem>| -> Vec<ListItem> { v.into_iter().map(list_item).collect() };
    // The totals list: every project read, a closed one marked completed or closed; the
    // pledge list: open ones and those closed after the session began.
    let total_projects: Vec<ListItem> = ctx
        .projects
        .iter()
        .map(|p| {
            let shown =
                crate::news::PhoneState::of(p.closed_at.is_some(), p.completed.unwrap_or(false));
            let mut item = list_item(p.clone());
            item.labels =
                Language::ALL.map(|lang| shown.label(&state.menus, lang, item.label(lang)));
            item
        })
        .collect();
    let open_projects: Vec<ListedItem> = ctx
        .projects
        .into_iter()
        .filter(|p| p.closed_at.is_none_or(|at| at > expired_before))
        .collect();
    // The coordinator's lists only for a coordinator: a household's hop (nearly all of
    // them) does not pay for them.
    let (coord_projects, coord_communities) = match ctx.coordinator {
        Some(id) => ussd_sessions::coordinator_lists(pool, id, expired_before).await?,
        None => (Vec::new(), Vec::new()),
    };
    Ok(HopContext {
        household: ctx.household,
        coordinator: ctx.coordinator.map(|c| c.0),
        coord_projects: items(coord_projects),
        coord_communities: items(coord_communities),
        session: ctx.session,
        projects: items(open_projects),
        total_projects,
        communities: items(ctx.communities),
    })
}

/// The context of [`ussd_sessions::hop_context`] from the process's cache: no database
/// round trip for a known caller in a session without a recorded effect, one indexed read
/// for an unknown caller or a session with one. `None` when the cache does not serve.
async fn from_memory(
    state: &AppState,
    hop: &Hop,
    expired_before: chrono::DateTime<chrono::Utc>,
    shown_since: chrono::DateTime<chrono::Utc>,
) -> Result<Option<ussd_sessions::HopContext>, sqlx::Error> {
    let pool = &state.pool;
    let Some(caller) = state.cache.caller(pool, hop.phone.as_str()).await? else {
        return Ok(None);
    };
    let Some(reference) = state.cache.reference() else {
        return Ok(None);
    };
    let key = hop.session_key();
    let session = if state.cache.session_recorded(&key) {
        ussd_sessions::stored_session(pool, &key, expired_before).await?
    } else {
        None
    };
    let projects = match caller.household {
        Some(h) => reference
            .listed(h.community_id, shown_since)
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    // The communities only while registering: the caller is unknown, or this session began
    // before they were.
    let registering =
        caller.household.is_none() || session.as_ref().is_some_and(|s| !s.started_registered());
    Ok(Some(ussd_sessions::HopContext {
        coordinator: caller.coordinator,
        household: caller.household.map(|h| ussd_sessions::HopHousehold {
            language: h.language,
        }),
        session,
        projects,
        communities: if registering {
            reference.communities.clone()
        } else {
            Vec::new()
        },
    }))
}

/// The time a hop keeps between the last moment an effect may be committed and its
/// deadline: a quarter of the deadline, at most 200 ms (the COMMIT and the answer fit in it).
fn commit_reserve(timeout: Duration) -> Duration {
    (timeout / 4).min(Duration::from_millis(200))
}

/// The deadline of one hop.
struct HopRun {
    deadline: Instant,
    reserve: Duration,
}

/// Answers one hop. Never fails: a database that is down or slow gets the caller a short
/// "service busy" screen in their language within the configured timeout.
///
/// An effect (a pledge, a registration, …) either commits inside the deadline and is shown,
/// or is not done: its transaction gets a statement and idle timeout from the time left and
/// is committed only while time remains (see [`effect_tx`]). Should a pledge's COMMIT
/// complete after the hop was answered "busy" anyway, the household still gets the SMS
/// with the pledge and its code: it is queued by the pledge's own statement.
pub async fn answer(state: &AppState, hop: &Hop) -> Reply {
    let started = std::time::Instant::now();
    let timeout = Duration::from_millis(state.config.db_timeout_ms);
    let run = HopRun {
        deadline: Instant::now() + timeout,
        reserve: commit_reserve(timeout),
    };
    let outcome = match tokio::time::timeout_at(run.deadline, answer_inner(state, hop, &run)).await
    {
        Ok(r) => r,
        Err(_) => Err(ConversationError::Timeout),
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
                ConversationError::Action(a) => a.text_key().unwrap_or("nav.busy"),
                _ => "nav.busy",
            };
            if key == "nav.busy" {
                if let ConversationError::Db(e) = &e {
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

async fn answer_inner(
    state: &AppState,
    hop: &Hop,
    run: &HopRun,
) -> Result<Reply, ConversationError> {
    let now = state.clock.now();
    let ctx = load_context(state, hop, now, now - state.config.ussd_session_ttl()).await?;
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
            restart_session(state, hop, &current, tokens.len(), now).await?;
            (current.clone(), tokens.len(), BTreeMap::new())
        }
        Some(s) => {
            // An effect recorded for other inputs up to its step: this history is another
            // dialogue that reuses the session id (its pledge is not the recorded one). It
            // starts over from its first input, as the caller who dialled again expects.
            let other_dialogue = s.effects.iter().any(|(k, e)| {
                k.parse::<usize>().is_ok_and(|step| {
                    step <= tokens.len()
                        && e.hash.as_deref() != Some(hex(&inputs_hash(&tokens, step)).as_str())
                })
            });
            if other_dialogue {
                tracing::info!(phone = %hop.phone, session = %hop.session_id, "USSD session id reused with other inputs: a new session");
                restart_session(state, hop, &current, 0, now).await?;
                (current.clone(), 0, BTreeMap::new())
            } else {
                let start: Caller = s
                    .start_caller()
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                // Steps beyond this history (a late copy of an earlier hop) are not used.
                let results = s
                    .effects
                    .into_iter()
                    .filter_map(|(k, e)| k.parse::<usize>().ok().map(|k| (k, e.result)))
                    .filter(|(k, _)| *k <= tokens.len())
                    .collect();
                (start, s.base_step, results)
            }
        }
        None => (current.clone(), 0, BTreeMap::new()),
    };
    if base > tokens.len() {
        // The history is shorter than where the session restarted: a new dialogue reusing
        // the id. Follow the history from its start.
        base = 0;
        results.clear();
    }
    let engine =
        Engine::new(&state.menus, menu).map_err(|e| ConversationError::Menu(e.to_string()))?;
    let lists = |source: ListSource| -> Vec<ListItem> {
        match source {
            ListSource::Communities => ctx.communities.clone(),
            ListSource::OpenProjects => ctx.projects.clone(),
            ListSource::TotalProjects => ctx.total_projects.clone(),
            ListSource::CoordProjects => ctx.coord_projects.clone(),
            ListSource::CoordCommunities => ctx.coord_communities.clone(),
            // lazy: read by the transport only when their screen is reached
            ListSource::MyPledges | ListSource::Meetings => Vec::new(),
        }
    };
    let scene = Scene {
        caller: caller.clone(),
        lists: &lists,
        globals: &state.globals,
        default_language: state.config.default_language,
        max_amount: state.config.max_pledge,
        limits: state.config.screen_limits(),
    };
    let mut transport = HopSteps {
        state,
        hop,
        run,
        caller: &caller,
        now,
        tokens: &tokens,
    };
    drive(
        &engine,
        &scene,
        base,
        &tokens,
        &mut Answers::with_results(results),
        crate::engine::MAX_NEEDS,
        &mut transport,
    )
    .await
}

/// A hop's reads (on the pool) and effects (each once per session, step and history).
struct HopSteps<'a> {
    state: &'a AppState,
    hop: &'a Hop,
    run: &'a HopRun,
    caller: &'a Caller,
    now: chrono::DateTime<chrono::Utc>,
    tokens: &'a [&'a str],
}

impl Transport for HopSteps<'_> {
    type Error = ConversationError;

    async fn read(&mut self, need: ReadNeed<'_>) -> Result<Vars, ConversationError> {
        let mut conn = self.state.pool.acquire().await?;
        Ok(actions::run_read(
            &mut conn,
            &self.state.menus,
            &self.hop.phone,
            need.action,
            need.vars,
        )
        .await?)
    }

    async fn effect(&mut self, need: EffectNeed<'_>) -> Result<Vars, ConversationError> {
        let session_key = self.hop.session_key();
        let hash = inputs_hash(self.tokens, need.step);
        let call = EffectCall {
            idempotency_key: idempotency_key(&session_key, need.step, &hash),
            session_key,
            phone: self.hop.phone.clone(),
            start_caller: self.caller.clone(),
            now: self.now,
            step: i32::try_from(need.step)
                .map_err(|_| ConversationError::Menu("step out of range".into()))?,
            hash,
            action: need.action,
            arg: need.arg.map(str::to_owned),
            vars: need.vars.clone(),
            language: need.language,
        };
        // Marked before the effect may record anything: this process's next hop reads the
        // session, whatever the timing of the notification.
        self.state.cache.mark_session(&call.session_key);
        let changes_caller = matches!(need.action, Action::Register | Action::SetLanguage);
        let result = apply_effect(self.state, self.run, call).await;
        if changes_caller {
            self.state.cache.forget_caller(self.hop.phone.as_str());
        }
        result
    }

    /// The lists only some walks need, read when their screen is reached (never with every
    /// hop's context): the household's pledges (those made during this session after the
    /// others, so a number chosen keeps its meaning) and its community's upcoming meetings.
    async fn list(&mut self, need: ListNeed) -> Result<Vec<ListItem>, ConversationError> {
        let mut conn = self.state.pool.acquire().await?;
        let phone = &self.hop.phone;
        Ok(match need.source {
            ListSource::MyPledges => {
                let ttl = self.state.config.ussd_session_ttl();
                let session_key = self.hop.session_key();
                actions::my_pledges::list(
                    &mut conn,
                    &self.state.menus,
                    phone,
                    self.now,
                    Some((session_key.as_str(), self.now - ttl)),
                )
                .await?
            }
            ListSource::Meetings => {
                actions::meetings::list(
                    &mut conn,
                    &self.state.menus,
                    self.state.config.timezone,
                    phone,
                    self.now,
                )
                .await?
            }
            ListSource::Communities
            | ListSource::OpenProjects
            | ListSource::TotalProjects
            | ListSource::CoordProjects
            | ListSource::CoordCommunities => Vec::new(),
        })
    }
}

async fn restart_session(
    state: &AppState,
    hop: &Hop,
    current: &Caller,
    base: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    let base = i32::try_from(base).unwrap_or(i32::MAX);
    let key = hop.session_key();
    state.cache.mark_session(&key);
    ussd_sessions::restart(&state.pool, &key, current, base, now).await
}

/// Unique per (session, step, inputs up to the step): the effect happens once for one
/// history, and another history at the same step is another effect.
fn idempotency_key(session_key: &str, step: usize, hash: &[u8; 32]) -> String {
    format!("ussd:{session_key}:{step}:{}", &hex(hash)[..16])
}

/// An effect the replay reached, with the inputs that led to it, owned by the task that
/// runs it.
struct EffectCall {
    session_key: String,
    phone: Phone,
    start_caller: Caller,
    now: chrono::DateTime<chrono::Utc>,
    step: i32,
    /// SHA-256 of the inputs up to the step.
    hash: [u8; 32],
    idempotency_key: String,
    action: Action,
    arg: Option<String>,
    vars: Vars,
    language: Language,
}

/// Runs an effect once per (session, step, inputs up to the step): the first hop to get
/// here runs it and records its result; a repeated or concurrent hop with the same inputs
/// waits for that and reads the same result, and a hop with other inputs runs its own.
/// Every effect runs in its own task and commits only inside the hop's deadline (see
/// [`effect_tx`]).
async fn apply_effect(
    state: &AppState,
    run: &HopRun,
    call: EffectCall,
) -> Result<Vars, ConversationError> {
    let commit_by = run
        .deadline
        .checked_sub(run.reserve)
        .unwrap_or(run.deadline);
    // Its own task: the hop's deadline may drop this hop at any await, but never between
    // the COMMIT and knowing whether it was made.
    let task = tokio::spawn(effect_tx(state.clone(), call, commit_by));
    task.await
        .map_err(|e| ConversationError::Menu(format!("the effect task ended: {e}")))?
}

/// SQLSTATE of a statement cut by `statement_timeout`.
const QUERY_CANCELED: &str = "57014";

/// A unique violation from an effect's statements (its action's or the step's own).
fn unique_violation(e: &ConversationError) -> bool {
    match e {
        ConversationError::Db(db) | ConversationError::Action(ActionError::Db(db)) => {
            crate::store::Violation::is_unique(db)
        }
        _ => false,
    }
}

/// A one-statement effect whose step was recorded for the same inputs first (by a repeated
/// or concurrent hop): its statement was rolled back.
fn step_recorded(e: &ConversationError) -> bool {
    match e {
        ConversationError::Db(sqlx::Error::Database(d))
        | ConversationError::Action(ActionError::Db(sqlx::Error::Database(d))) => {
            d.code().as_deref() == Some(ussd_sessions::STEP_RECORDED)
        }
        _ => false,
    }
}

/// SQLSTATE of a lock not had within `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// A statement cut by its timeout (or a lock wait by its own) is the hop's deadline
/// passing.
fn timed_out(e: ConversationError) -> ConversationError {
    let db = match &e {
        ConversationError::Db(db) | ConversationError::Action(ActionError::Db(db)) => db,
        _ => return e,
    };
    match db {
        sqlx::Error::Database(d)
            if matches!(
                d.code().as_deref(),
                Some(QUERY_CANCELED | LOCK_NOT_AVAILABLE)
            ) =>
        {
            ConversationError::Timeout
        }
        _ => e,
    }
}

/// One effect step in one transaction that commits only inside the hop's deadline: the
/// statements may not run, nor the transaction sit idle, past `commit_by` (server-side
/// timeouts from the time left, set with BEGIN), and COMMIT is sent only while time is left.
/// Dropping the transaction at any point before rolls it back: not done, and the caller is
/// told "busy". The COMMIT itself cannot be cut reliably (the WAL flush is not
/// interruptible), so it runs without a statement timeout; a pledge whose COMMIT completes
/// after the hop was answered "busy" (a slow disk, a lost answer) is told to the household
/// by SMS.
///
/// In the transaction, besides BEGIN and COMMIT: the action ([`actions::run_effect`]), then
/// one statement that records its result and claims the step for this history (taking it
/// over from another history). When a concurrent hop of the same history recorded the step
/// first (or, doing so, made the same rows first: a unique violation), this run is rolled
/// back and that hop's result is the answer. An action that is one statement (the pledge:
/// [`actions::one_statement`]) runs with that record in its one statement instead, which
/// commits on its own: one round trip, no transaction held open between round trips.
async fn effect_tx(
    state: AppState,
    call: EffectCall,
    commit_by: Instant,
) -> Result<Vars, ConversationError> {
    let ms_left =
        |now: Instant| -> u128 { commit_by.saturating_duration_since(now).as_millis().max(1) };
    let ctx = EffectCtx {
        state: &state,
        now: call.now,
        phone: &call.phone,
        channel: "ussd",
        idempotency_key: &call.idempotency_key,
        language: call.language,
    };
    let step = ussd_sessions::Step {
        session_key: &call.session_key,
        phone: call.phone.as_str(),
        start_caller: &call.start_caller,
        now: call.now,
        step: call.step,
        action: call.action.name(),
        inputs_hash: &call.hash[..],
    };
    // An action that is one statement records its step in it and commits with it: one
    // round trip. Not under a timeout here (it may not be cut between its commit and
    // knowing of it): the server bounds its lock waits by the time left and refuses to end
    // it past that (`ussd_step_done`).
    if actions::one_statement(call.action) {
        // The pool connection is acquired inside the deadline too.
        let mut conn = match tokio::time::timeout_at(commit_by, state.pool.acquire()).await {
            Ok(conn) => conn?,
            Err(_) => return Err(ConversationError::Timeout),
        };
        // While this process announces sessions, the statement's commit leaves the session's
        // notification to it (the notification lock would order every pledge's commit).
        let notify = if state.cache.announces() {
            SessionNotify::AfterCommit
        } else {
            SessionNotify::Trigger
        };
        let recorded = StepDone {
            step: &step,
            ms_left: i32::try_from(ms_left(Instant::now())).unwrap_or(i32::MAX),
            notify,
        };
        let done =
            actions::run_effect_recorded(&mut conn, &ctx, call.action, &call.vars, &recorded).await;
        drop(conn);
        // Whatever the outcome (a failed statement may have committed as its connection
        // broke): a needless announcement costs another process one read.
        if notify == SessionNotify::AfterCommit {
            state
                .cache
                .announce_session(&call.session_key, &state.pool)
                .await;
        }
        return match done.map_err(ConversationError::Action) {
            Ok(result) => Ok(result),
            Err(e) if step_recorded(&e) => recorded_instead(&state.pool, &call, None).await,
            Err(e) if unique_violation(&e) => recorded_instead(&state.pool, &call, Some(e)).await,
            Err(e) => Err(timed_out(e)),
        };
    }
    let work = async {
        // The pool connection is acquired inside the deadline too.
        let left = ms_left(Instant::now());
        let mut tx = state
            .pool
            .begin_with(format!(
                "begin; set local statement_timeout = {left}; \
                 set local idle_in_transaction_session_timeout = {left}"
            ))
            .await?;
        let result =
            actions::run_effect(&mut tx, &ctx, call.action, call.arg.as_deref(), &call.vars)
                .await?;
        // also lifts the statement timeout for the COMMIT that follows
        let claimed = ussd_sessions::record_step(&mut tx, &step, &result).await?;
        Ok::<_, ConversationError>((tx, result, claimed))
    };
    let done = match tokio::time::timeout_at(commit_by, work).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) if unique_violation(&e) => Err(e),
        Ok(Err(e)) => return Err(timed_out(e)),
        Err(_) => return Err(ConversationError::Timeout),
    };
    // When a concurrent hop of the same history recorded this step first (or, doing so, made
    // the same rows first: a unique violation, the same household say), its result stands
    // and this run is rolled back.
    let (tx, result) = match done {
        Ok((tx, result, true)) => (tx, result),
        Ok((tx, unused, false)) => {
            drop(unused);
            tx.rollback().await?;
            return recorded_instead(&state.pool, &call, None).await;
        }
        Err(e) => return recorded_instead(&state.pool, &call, Some(e)).await,
    };
    if Instant::now() >= commit_by {
        return Err(ConversationError::Timeout);
    }
    // Whether a COMMIT that fails here was made is unknown (the connection broke); a pledge
    // that was made has its SMS queued with it, so the household hears of it either way.
    tx.commit().await?;
    Ok(result)
}

/// The result a concurrent hop of the same history recorded at the step; `refused` (or "not
/// found") when there is none.
async fn recorded_instead(
    pool: &PgPool,
    call: &EffectCall,
    refused: Option<ConversationError>,
) -> Result<Vars, ConversationError> {
    let recorded =
        ussd_sessions::recorded_result(pool, &call.session_key, call.step, &call.hash[..]).await?;
    recorded.ok_or_else(|| refused.unwrap_or(ConversationError::Db(sqlx::Error::RowNotFound)))
}
