//! The named actions menus use: effects (which change something, inside the hop's
//! transaction) and reads. Each is plain SQL over sqlx.

use std::str::FromStr;

use rust_decimal::Decimal;
use sqlx::{types::Json, PgConnection, PgPool, Row};

use crate::{
    domain::{Language, Phone},
    engine::Vars,
};

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("unknown action {0:?}")]
    Unknown(String),
    #[error("action {action} needs {var}")]
    MissingVar { action: String, var: &'static str },
    #[error("the caller has no household")]
    NotRegistered,
    #[error("project {0} is not open for pledges from this caller")]
    ProjectNotOpen(i64),
    #[error("no such community {0}")]
    NoCommunity(i64),
    #[error("hashing a PIN: {0}")]
    Pin(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl ActionError {
    /// A text for the caller when the action cannot be done, if there is a specific one.
    pub fn text_key(&self) -> Option<&'static str> {
        match self {
            ActionError::ProjectNotOpen(_) => Some("pledge.closed"),
            _ => None,
        }
    }
}

/// Who asked, and how, for effects.
pub struct EffectCtx<'a> {
    pub state: &'a crate::app::AppState,
    pub now: chrono::DateTime<chrono::Utc>,
    pub phone: &'a Phone,
    pub channel: &'static str,
    /// Unique per (session, step): makes the effect happen once.
    pub idempotency_key: &'a str,
    pub language: Language,
}

fn var<'v>(vars: &'v Vars, action: &str, name: &'static str) -> Result<&'v str, ActionError> {
    vars.get(name)
        .map(String::as_str)
        .ok_or_else(|| ActionError::MissingVar {
            action: action.to_owned(),
            var: name,
        })
}

fn id_var(vars: &Vars, action: &str, name: &'static str) -> Result<i64, ActionError> {
    var(vars, action, name)?
        .parse()
        .map_err(|_| ActionError::MissingVar {
            action: action.to_owned(),
            var: name,
        })
}

/// The caller's household and community, if registered.
pub async fn household_of(
    conn: &mut PgConnection,
    phone: &Phone,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let row = sqlx::query(
        "select h.id, h.community_id from phones ph join households h on h.id = ph.household_id where ph.phone = $1",
    )
    .bind(phone.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Runs an effect inside the caller's transaction and returns the values it adds.
pub async fn run_effect(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    action: &str,
    arg: Option<&str>,
    vars: &Vars,
) -> Result<Vars, ActionError> {
    match action {
        "set_language" => {
            let lang =
                arg.and_then(|a| Language::from_str(a).ok())
                    .ok_or(ActionError::MissingVar {
                        action: action.into(),
                        var: "arg",
                    })?;
            sqlx::query(
                "update households set language = $2
                 where id = (select household_id from phones where phone = $1)",
            )
            .bind(ctx.phone.as_str())
            .bind(lang.code())
            .execute(&mut *conn)
            .await?;
            Ok(Vars::new())
        }
        "register" => {
            let community = id_var(vars, action, "community_id")?;
            if household_of(conn, ctx.phone).await?.is_some() {
                // Registered meanwhile (another session): nothing to do.
                return Ok(Vars::new());
            }
            let household: Option<i64> = sqlx::query_scalar(
                "insert into households (community_id, language, registered_via)
                 select id, $2, $3 from communities where id = $1 returning id",
            )
            .bind(community)
            .bind(ctx.language.code())
            // the channel the household registered on: 'ussd' or 'sms'
            .bind(ctx.channel)
            .fetch_optional(&mut *conn)
            .await?;
            let household = household.ok_or(ActionError::NoCommunity(community))?;
            sqlx::query("insert into phones (phone, household_id) values ($1, $2)")
                .bind(ctx.phone.as_str())
                .bind(household)
                .execute(&mut *conn)
                .await?;
            tracing::info!(phone = %ctx.phone, household, community, "household registered");
            Ok(Vars::new())
        }
        "create_pledge" | "create_pledge_again" => {
            let project = id_var(vars, action, "project_id")?;
            let amount = Decimal::from_str(var(vars, action, "amount")?).map_err(|_| {
                ActionError::MissingVar {
                    action: action.into(),
                    var: "amount",
                }
            })?;
            // `create_pledge` asks first ({ask, minutes}) when the same pledge was made in
            // the last 10 minutes; `create_pledge_again` is the caller's "yes".
            let Json(totals): Json<Vars> =
                sqlx::query_scalar("select pledge_at($1, $2, $3, $4, $5, $6, $7)")
                    .bind(ctx.now)
                    .bind(project)
                    .bind(ctx.phone.as_str())
                    .bind(amount)
                    .bind(ctx.channel)
                    .bind(ctx.idempotency_key)
                    .bind(action == "create_pledge_again")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(|e| pledge_error(e, project))?;
            if totals.contains_key("ask") {
                tracing::info!(phone = %ctx.phone, project, amount = %amount, "pledge repeats a recent one: asking");
            } else {
                tracing::info!(phone = %ctx.phone, project, amount = %amount, "pledge recorded");
            }
            Ok(totals)
        }
        "request_callback" => {
            let household = household_of(conn, ctx.phone).await?.map(|(h, _)| h);
            sqlx::query(
                "insert into callback_requests (phone, household_id, language, channel, idempotency_key)
                 values ($1, $2, $3, $4, $5) on conflict (idempotency_key) do nothing",
            )
            .bind(ctx.phone.as_str())
            .bind(household)
            .bind(ctx.language.code())
            .bind(ctx.channel)
            .bind(ctx.idempotency_key)
            .execute(&mut *conn)
            .await?;
            Ok(Vars::new())
        }
        "next_tip" => next_tip(conn, ctx).await,
        "verify_pin" => verify_pin(conn, ctx, var(vars, action, "pin")?, vars).await,
        "preview_notice" | "send_notice" => {
            let community = id_var(vars, action, "community_id")?;
            let mut values = Vars::new();
            for name in ["date", "time", "place"] {
                values.insert(name.to_owned(), var(vars, action, name)?.to_owned());
            }
            notice(conn, ctx, community, values, action == "send_notice").await
        }
        "find_pledge" => find_pledge(conn, ctx, var(vars, action, "pledge_code")?).await,
        "record_cash" => {
            let pledge = id_var(vars, action, "pledge_id")?;
            let amount = Decimal::from_str(var(vars, action, "cash_amount")?).map_err(|_| {
                ActionError::MissingVar {
                    action: action.into(),
                    var: "cash_amount",
                }
            })?;
            record_cash(conn, ctx, pledge, amount).await
        }
        other => Err(ActionError::Unknown(other.to_owned())),
    }
}

/// The SQLSTATE `create_pledge` raises when the project is closed or not the caller's.
pub const PROJECT_NOT_OPEN: &str = "HS001";

/// Maps a failed pledge call: "not open" becomes [`ActionError::ProjectNotOpen`].
pub fn pledge_error(e: sqlx::Error, project: i64) -> ActionError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(PROJECT_NOT_OPEN) => {
            ActionError::ProjectNotOpen(project)
        }
        _ => ActionError::Db(e),
    }
}

/// Runs a read action.
pub async fn run_read(
    conn: &mut PgConnection,
    phone: &Phone,
    action: &str,
    vars: &Vars,
) -> Result<Vars, ActionError> {
    match action {
        "project_total" => {
            let project = id_var(vars, action, "project_id")?;
            project_total(conn, project).await
        }
        "join_code" => {
            let code: Option<String> = sqlx::query_scalar(
                "select h.join_code from phones p join households h on h.id = p.household_id where p.phone = $1",
            )
            .bind(phone.as_str())
            .fetch_optional(conn)
            .await?
            .flatten();
            let code = code.ok_or(ActionError::NotRegistered)?;
            Ok(Vars::from([("join_code".to_owned(), code)]))
        }
        other => Err(ActionError::Unknown(other.to_owned())),
    }
}

/// A project's figures from the `project_totals` view, formatted for a screen.
pub async fn project_total(conn: &mut PgConnection, project: i64) -> Result<Vars, ActionError> {
    let totals: Option<Json<Vars>> = sqlx::query_scalar("select project_total_texts($1)")
        .bind(project)
        .fetch_one(conn)
        .await?;
    totals
        .map(|Json(v)| v)
        .ok_or(ActionError::ProjectNotOpen(project))
}

/// The next tip this household has not seen in the current round; a new round starts
/// once every active tip was seen. Callers without a household get the first tip.
async fn next_tip(conn: &mut PgConnection, ctx: &EffectCtx<'_>) -> Result<Vars, ActionError> {
    let household = household_of(conn, ctx.phone).await?.map(|(h, _)| h);
    let pick = |round_filter: bool| {
        let sql = if round_filter {
            "select t.id, t.text_tg, t.text_ru, t.text_en from tips t
             where t.active and not exists (
                 select 1 from tip_views v where v.household_id = $1 and v.round = $2 and v.tip_id = t.id)
             order by t.position, t.id limit 1"
        } else {
            "select t.id, t.text_tg, t.text_ru, t.text_en from tips t where t.active order by t.position, t.id limit 1"
        };
        sqlx::query(sql)
    };
    let Some(household) = household else {
        let row = pick(false).fetch_optional(&mut *conn).await?;
        return Ok(tip_vars(row));
    };
    // Serialise concurrent sessions of one household on its row.
    sqlx::query("select 1 from households where id = $1 for update")
        .bind(household)
        .execute(&mut *conn)
        .await?;
    let mut round: i32 =
        sqlx::query_scalar("select coalesce(max(round), 1) from tip_views where household_id = $1")
            .bind(household)
            .fetch_one(&mut *conn)
            .await?;
    let mut row = pick(true)
        .bind(household)
        .bind(round)
        .fetch_optional(&mut *conn)
        .await?;
    if row.is_none() {
        round += 1;
        row = pick(true)
            .bind(household)
            .bind(round)
            .fetch_optional(&mut *conn)
            .await?;
    }
    if let Some(r) = &row {
        let tip: i64 = r.get(0);
        sqlx::query("insert into tip_views (household_id, round, tip_id) values ($1, $2, $3) on conflict do nothing")
            .bind(household)
            .bind(round)
            .bind(tip)
            .execute(&mut *conn)
            .await?;
    }
    Ok(tip_vars(row))
}

fn tip_vars(row: Option<sqlx::postgres::PgRow>) -> Vars {
    let mut out = Vars::new();
    // No active tip at all: an empty text rather than a visible placeholder.
    out.insert("tip".into(), String::new());
    if let Some(r) = row {
        for (i, lang) in Language::ALL.iter().enumerate() {
            out.insert(format!("tip.{lang}"), r.get::<String, _>(i + 1));
        }
    }
    out
}

#[derive(Debug, serde::Deserialize)]
struct TipsFile {
    tip: Vec<TipEntry>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TipEntry {
    code: String,
    tg: String,
    ru: String,
    en: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TipsError {
    #[error("{0}: {1}")]
    Read(std::path::PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(std::path::PathBuf, String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Adds the tips of `menus/tips.toml` that the database does not have yet (by code).
/// Tips already there are left alone, so edits made by coordinators are kept.
pub async fn sync_tips(pool: &PgPool, path: &std::path::Path) -> Result<u64, TipsError> {
    let source = std::fs::read_to_string(path).map_err(|e| TipsError::Read(path.to_owned(), e))?;
    let file: TipsFile = toml::from_str(&source)
        .map_err(|e| TipsError::Parse(path.to_owned(), e.message().to_owned()))?;
    let mut added = 0;
    let mut tx = pool.begin().await?;
    for (i, tip) in file.tip.iter().enumerate() {
        added += sqlx::query(
            "insert into tips (code, position, text_tg, text_ru, text_en) values ($1, $2, $3, $4, $5)
             on conflict (code) do nothing",
        )
        .bind(&tip.code)
        .bind(i32::try_from(i).unwrap_or(i32::MAX))
        .bind(&tip.tg)
        .bind(&tip.ru)
        .bind(&tip.en)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(added)
}

/// Wrong PINs before a lock.
pub const PIN_TRIES: i32 = 5;
/// The first lock; the next ones grow: see [`PIN_LOCKS`].
pub const PIN_LOCK_MINUTES: i64 = 15;
/// Lock lengths in minutes, with the text shown, for the first, second and every further
/// lock in a row (a right PIN starts the row again): 15 minutes, an hour, a day. Five wrong
/// PINs per lock give ~480 guesses a day with a fixed 15-minute lock; growing, ~15 a day.
const PIN_LOCKS: [(i64, &str); 3] = [
    (PIN_LOCK_MINUTES, "refused.pin_locked"),
    (60, "refused.pin_locked_hour"),
    (24 * 60, "refused.pin_locked_day"),
];
/// Digits of a new PIN. The phone menu's PIN input takes 4 to 6 digits (PINs set before
/// this rule are 4 or 5): a shorter PIN still opens the menu once, then must be changed.
pub const PIN_DIGITS: usize = 6;

fn pin_lock(lockouts: i32) -> (i64, &'static str) {
    let i = usize::try_from(lockouts.max(1) - 1)
        .unwrap_or(0)
        .min(PIN_LOCKS.len() - 1);
    PIN_LOCKS[i]
}

fn refused(key: &str) -> Vars {
    Vars::from([("refused".to_owned(), key.to_owned())])
}

/// A refusal that keeps (or moves) the session's PIN change at `stage`.
fn pin_change(key: &str, stage: &str) -> Vars {
    Vars::from([
        ("refused".to_owned(), key.to_owned()),
        ("pin_change".to_owned(), stage.to_owned()),
    ])
}

/// A new PIN: [`PIN_DIGITS`] digits, not all the same and not a run (123456, 654321).
pub fn strong_pin(pin: &str) -> bool {
    let digits: Vec<i16> = pin
        .bytes()
        .map(|b| i16::from(b) - i16::from(b'0'))
        .collect();
    if digits.len() != PIN_DIGITS || digits.iter().any(|d| !(0..=9).contains(d)) {
        return false;
    }
    let steps: Vec<i16> = digits.windows(2).map(|w| w[1] - w[0]).collect();
    !steps.iter().all(|s| *s == 0)
        && !steps.iter().all(|s| *s == 1)
        && !steps.iter().all(|s| *s == -1)
}

fn hash_pin(pin: &str) -> Result<String, PinError> {
    use argon2::{
        password_hash::{rand_core::OsRng, SaltString},
        Argon2, PasswordHasher,
    };
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map_err(|e| PinError::Hash(e.to_string()))?
        .to_string())
}

fn pin_matches(pin: &str, hash: &str) -> bool {
    use argon2::{password_hash::PasswordHash, Argon2, PasswordVerifier};
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(pin.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Checks a coordinator's PIN (argon2). Five wrong PINs lock the number for 15 minutes, the
/// next five in a row for an hour, then for a day each time; every lock sends an SMS to the
/// coordinator and to the admins. The count and the lock are rows, so a restart changes
/// nothing. A right PIN shorter than [`PIN_DIGITS`] opens the menu only after a new PIN is
/// typed twice on the same screen (the session's `pin_change` stage: `new`, `again`).
async fn verify_pin(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    pin: &str,
    vars: &Vars,
) -> Result<Vars, ActionError> {
    let row = sqlx::query(
        "select id, pin_hash, pin_failures, locked_until, pin_lockouts, name
         from coordinators where phone = $1 for update",
    )
    .bind(ctx.phone.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(refused("refused.no_pin"));
    };
    let id: i64 = row.get(0);
    let Some(hash) = row.get::<Option<String>, _>(1) else {
        return Ok(refused("refused.no_pin"));
    };
    let failures: i32 = row.get(2);
    let locked_until: Option<chrono::DateTime<chrono::Utc>> = row.get(3);
    let lockouts: i32 = row.get(4);
    // The stages of a PIN change: only reached after the right PIN in this session.
    match vars.get("pin_change").map(String::as_str) {
        Some("new") => {
            if !strong_pin(pin) {
                return Ok(pin_change("refused.pin_weak", "new"));
            }
            let candidate = hash_pin(pin).map_err(|e| ActionError::Pin(e.to_string()))?;
            let mut out = pin_change("refused.pin_again", "again");
            out.insert("pin_candidate".into(), candidate);
            return Ok(out);
        }
        Some("again") => {
            let candidate = vars.get("pin_candidate").map(String::as_str).unwrap_or("");
            if !pin_matches(pin, candidate) {
                return Ok(pin_change("refused.pin_mismatch", "new"));
            }
            sqlx::query("update coordinators set pin_hash = $2 where id = $1")
                .bind(id)
                .bind(candidate)
                .execute(&mut *conn)
                .await?;
            tracing::info!(phone = %ctx.phone, "coordinator changed a short PIN");
            return Ok(Vars::from([
                ("ok".to_owned(), "1".to_owned()),
                ("pin_change".to_owned(), "done".to_owned()),
            ]));
        }
        _ => {}
    }
    if locked_until.is_some_and(|t| t > ctx.now) {
        return Ok(refused(pin_lock(lockouts).1));
    }
    if pin_matches(pin, &hash) {
        sqlx::query(
            "update coordinators set pin_failures = 0, locked_until = null, pin_lockouts = 0 where id = $1",
        )
        .bind(id)
        .execute(&mut *conn)
        .await?;
        if pin.len() < PIN_DIGITS {
            return Ok(pin_change("refused.pin_change", "new"));
        }
        return Ok(Vars::from([("ok".to_owned(), "1".to_owned())]));
    }
    let failures = failures + 1;
    if failures >= PIN_TRIES {
        let lockouts = lockouts.saturating_add(1);
        let (minutes, text) = pin_lock(lockouts);
        sqlx::query(
            "update coordinators set pin_failures = 0, locked_until = $2, pin_lockouts = $3 where id = $1",
        )
        .bind(id)
        .bind(ctx.now + chrono::Duration::minutes(minutes))
        .bind(lockouts)
        .execute(&mut *conn)
        .await?;
        tracing::warn!(phone = %ctx.phone, minutes, lockouts, "coordinator PIN locked after {PIN_TRIES} wrong tries");
        pin_lock_alert(conn, ctx, id, row.get(5), minutes).await?;
        return Ok(refused(text));
    }
    sqlx::query("update coordinators set pin_failures = $2 where id = $1")
        .bind(id)
        .bind(failures)
        .execute(&mut *conn)
        .await?;
    Ok(refused("refused.pin_wrong"))
}

/// An SMS to the locked coordinator and to every admin: someone may be guessing a PIN.
async fn pin_lock_alert(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    coordinator: i64,
    name: String,
    minutes: i64,
) -> Result<(), sqlx::Error> {
    let state = ctx.state;
    let phones: Vec<String> = sqlx::query_scalar(
        "select phone from coordinators where id = $1 or is_admin order by id <> $1, id",
    )
    .bind(coordinator)
    .fetch_all(&mut *conn)
    .await?;
    let vars = Vars::from([
        ("coordinator".to_owned(), name),
        ("phone".to_owned(), ctx.phone.masked()),
        ("minutes".to_owned(), minutes.to_string()),
    ]);
    for phone in phones {
        let phone = Phone::from_e164_unchecked(phone);
        let lang = state.hints.guess(&phone, state.config.default_language);
        let text = crate::engine::menu::fill(state.menus.text(lang, "sms.pin_locked_alert"), |n| {
            vars.get(n).cloned()
        });
        crate::outbox::enqueue(
            conn,
            &crate::outbox::NewMessage {
                to: &phone,
                body: &text,
                kind: crate::outbox::Kind::Reply,
                inbound_id: None,
            },
            state.config.sms_provider.name(),
            state.config.sms_max_segments,
            ctx.now,
        )
        .await?;
    }
    Ok(())
}

/// Sets (or replaces) a coordinator's PIN: [`PIN_DIGITS`] digits, not all the same and not
/// a run, stored as an argon2 hash.
pub async fn set_pin(pool: &PgPool, phone: &Phone, pin: &str) -> Result<(), PinError> {
    if !strong_pin(pin) {
        return Err(PinError::Format);
    }
    let hash = hash_pin(pin)?;
    let done = sqlx::query("update coordinators set pin_hash = $2, pin_failures = 0, locked_until = null, pin_lockouts = 0 where phone = $1")
        .bind(phone.as_str())
        .bind(hash)
        .execute(pool)
        .await?
        .rows_affected();
    if done == 1 {
        Ok(())
    } else {
        Err(PinError::NoCoordinator)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("a PIN is 6 digits, not all the same and not a run like 123456")]
    Format,
    #[error("no coordinator with that phone")]
    NoCoordinator,
    #[error("hashing the PIN: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The coordinator behind this phone and whether they are an admin.
async fn coordinator_of(
    conn: &mut PgConnection,
    phone: &Phone,
) -> Result<Option<(i64, bool)>, sqlx::Error> {
    let row = sqlx::query("select id, is_admin from coordinators where phone = $1")
        .bind(phone.as_str())
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// An open pledge by its code, in the coordinator's communities.
async fn find_pledge(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    code: &str,
) -> Result<Vars, ActionError> {
    let Some((coordinator, admin)) = coordinator_of(conn, ctx.phone).await? else {
        return Ok(refused("refused.no_pledge"));
    };
    let row = sqlx::query(
        "select pl.id, pl.amount, pl.amount - coalesce((select sum(amount) from receipts r where r.pledge_id = pl.id), 0),
                pl.currency, p.name_tg, p.name_ru, p.name_en, p.id
         from pledges pl join projects p on p.id = pl.project_id
         where pl.code = $1 and pl.status = 'pledged'
           and ($3 or p.community_id in (select community_id from coordinator_communities where coordinator_id = $2))",
    )
    .bind(code)
    .bind(coordinator)
    .bind(admin)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else {
        return Ok(refused("refused.no_pledge"));
    };
    let mut out = Vars::new();
    out.insert("pledge_id".into(), r.get::<i64, _>(0).to_string());
    out.insert(
        "pledge_amount".into(),
        crate::domain::money::format_amount(r.get(1)),
    );
    out.insert(
        "outstanding".into(),
        crate::domain::money::format_amount(r.get(2)),
    );
    out.insert("currency".into(), r.get(3));
    for (i, lang) in Language::ALL.iter().enumerate() {
        out.insert(format!("project.{lang}"), r.get(4 + i));
    }
    out.insert("project_id".into(), r.get::<i64, _>(7).to_string());
    Ok(out)
}

/// Cash a coordinator received for a pledge: a receipt, and the household's SMS receipt.
async fn record_cash(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    pledge: i64,
    amount: Decimal,
) -> Result<Vars, ActionError> {
    let Some((coordinator, _)) = coordinator_of(conn, ctx.phone).await? else {
        return Ok(refused("refused.no_pledge"));
    };
    let row = sqlx::query(
        "select project_id, phone, currency, amount - coalesce((select sum(amount) from receipts r where r.pledge_id = pledges.id), 0)
         from pledges where id = $1 and status = 'pledged' for update",
    )
    .bind(pledge)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(refused("refused.no_pledge"));
    };
    let project: i64 = row.get(0);
    let household_phone: String = row.get(1);
    let outstanding: Decimal = row.get(3);
    if amount > outstanding {
        return Ok(refused("refused.too_much"));
    }
    let currency: String = row.get(2);
    let receipt = crate::receipts::insert(
        conn,
        &crate::receipts::ReceiptInsert {
            project_id: project,
            pledge_id: Some(pledge),
            household_id: None,
            amount,
            currency: &currency,
            // the programme's local date (a UTC date is the day before until 05:00 in Dushanbe)
            received_on: ctx
                .now
                .with_timezone(&ctx.state.config.timezone)
                .date_naive(),
            method: "cash",
            receipt_no: None,
            recorded_by: &format!("coordinator:{coordinator}"),
            recorded_at: ctx.now,
        },
    )
    .await?;
    send_receipt(
        ctx.state,
        conn,
        &household_phone,
        project,
        amount,
        &receipt.label(),
        ctx.now,
    )
    .await?;
    tracing::info!(phone = %ctx.phone, pledge, amount = %amount, "cash recorded by phone");
    project_total(conn, project).await
}

/// Queues the household's SMS receipt for money received, in its language, with the
/// project's new matched total.
pub async fn send_receipt(
    state: &crate::app::AppState,
    conn: &mut PgConnection,
    phone: &str,
    project: i64,
    amount: Decimal,
    receipt_no: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ActionError> {
    let row = sqlx::query(
        "select h.language, p.name_tg, p.name_ru, p.name_en from phones ph join households h on h.id = ph.household_id
         join projects p on p.id = $2 where ph.phone = $1",
    )
    .bind(phone)
    .bind(project)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(()); // the number left the household: nobody to tell
    };
    let phone = Phone::from_e164_unchecked(phone.to_owned());
    let lang = row
        .get::<Option<String>, _>(0)
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| state.hints.guess(&phone, state.config.default_language));
    let mut vars = project_total(conn, project).await?;
    vars.insert(
        "project".into(),
        row.get(match lang {
            Language::Tg => 1,
            Language::Ru => 2,
            Language::En => 3,
        }),
    );
    vars.insert("amount".into(), crate::domain::money::format_amount(amount));
    vars.insert("receipt_no".into(), receipt_no.to_owned());
    let text = crate::engine::menu::fill(state.menus.text(lang, "sms.receipt"), |n| {
        vars.get(n).cloned()
    });
    crate::outbox::enqueue(
        conn,
        &crate::outbox::NewMessage {
            to: &phone,
            body: &text,
            kind: crate::outbox::Kind::Receipt,
            inbound_id: None,
        },
        state.config.sms_provider.name(),
        state.config.sms_max_segments,
        now,
    )
    .await?;
    Ok(())
}

/// A meeting notice from the coordinator's phone: the template of each language with the
/// day, time and place typed on the phone, to every household of one community. Without
/// `send`, only the preview (numbers and SMS segments); with it, the broadcast is created
/// and queued now, or at the end of the quiet hours.
async fn notice(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    community: i64,
    values: Vars,
    send: bool,
) -> Result<Vars, ActionError> {
    let Some((coordinator, admin)) = coordinator_of(conn, ctx.phone).await? else {
        return Ok(refused("refused.no_pin"));
    };
    let allowed: bool = sqlx::query_scalar(
        "select $3 or exists (select 1 from coordinator_communities where coordinator_id = $1 and community_id = $2)",
    )
    .bind(coordinator)
    .bind(community)
    .bind(admin)
    .fetch_one(&mut *conn)
    .await?;
    if !allowed {
        return Ok(refused("refused.no_pledge"));
    }
    let state = ctx.state;
    let texts: std::collections::BTreeMap<String, String> = Language::ALL
        .iter()
        .map(|l| {
            (
                l.code().to_owned(),
                state.menus.text(*l, "coord.notice_template").to_owned(),
            )
        })
        .collect();
    let mut b = crate::broadcasts::Broadcast {
        id: 0,
        communities: vec![community],
        only_migrants: false,
        only_project: None,
        only_language: None,
        texts,
        vars: values,
        status: "draft".into(),
        send_at: None,
        rsvp_hours: 72,
        created_by: format!("coordinator:{coordinator}"),
        created_at: ctx.now,
    };
    let people = crate::broadcasts::recipients(conn, &b, state.config.default_language).await?;
    let preview = crate::broadcasts::preview(
        &b,
        &people,
        state.config.sms_price_per_segment,
        state.settings.sms_price_currency,
    );
    let mut out = Vars::from([
        ("recipients".to_owned(), preview.recipients.to_string()),
        ("segments".to_owned(), preview.segments_total.to_string()),
    ]);
    if !send {
        return Ok(out);
    }
    let send_at = state.settings.quiet_hours.next_allowed(ctx.now);
    b.id = sqlx::query_scalar(
        "insert into broadcasts (created_by, communities, text_tg, text_ru, text_en, vars, rsvp_hours, created_at, status, send_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, 'scheduled', $9) returning id",
    )
    .bind(&b.created_by)
    .bind(&b.communities)
    .bind(b.texts.get("tg"))
    .bind(b.texts.get("ru"))
    .bind(b.texts.get("en"))
    .bind(sqlx::types::Json(&b.vars))
    .bind(b.rsvp_hours)
    .bind(ctx.now)
    .bind(send_at)
    .fetch_one(&mut *conn)
    .await?;
    if send_at <= ctx.now {
        crate::broadcasts::queue(
            conn,
            &b,
            None,
            state.config.default_language,
            state.config.sms_provider.name(),
            state.config.sms_max_segments,
            ctx.now,
        )
        .await?;
    }
    tracing::info!(phone = %ctx.phone, broadcast = b.id, "meeting notice from the phone menu");
    out.insert(
        "when".to_owned(),
        send_at
            .with_timezone(&state.config.timezone)
            .format("%d.%m %H:%M")
            .to_string(),
    );
    Ok(out)
}
