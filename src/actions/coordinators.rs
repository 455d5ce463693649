//! The coordinator phone menu: the PIN that guards it (checked, locked, changed) and cash
//! recorded against a pledge's code.

use sqlx::{PgConnection, PgPool};

use super::{decimal_var, id_var, refused, var, ActionError, EffectCtx};
use crate::{
    domain::{Language, Phone},
    engine::{Action, Vars},
    store::{
        pledges::{self, PledgeStatus},
        staff, CoordinatorId, PledgeId,
    },
};

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
pub(super) async fn verify_pin(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    vars: &Vars,
) -> Result<Vars, ActionError> {
    let pin = var(vars, Action::VerifyPin.name(), "pin")?;
    let Some(current) = staff::pin_state_for_update(conn, ctx.phone).await? else {
        return Ok(refused("refused.no_pin"));
    };
    let staff::PinState {
        id,
        name,
        pin_hash,
        failures,
        locked_until,
        lockouts,
    } = current;
    let Some(hash) = pin_hash else {
        return Ok(refused("refused.no_pin"));
    };
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
            staff::change_pin_hash(conn, id, candidate).await?;
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
        staff::pin_right(conn, id).await?;
        if pin.len() < PIN_DIGITS {
            return Ok(pin_change("refused.pin_change", "new"));
        }
        return Ok(Vars::from([("ok".to_owned(), "1".to_owned())]));
    }
    let failures = failures + 1;
    if failures >= PIN_TRIES {
        let lockouts = lockouts.saturating_add(1);
        let (minutes, text) = pin_lock(lockouts);
        staff::pin_locked(
            conn,
            id,
            ctx.now + chrono::Duration::minutes(minutes),
            lockouts,
        )
        .await?;
        tracing::warn!(phone = %ctx.phone, minutes, lockouts, "coordinator PIN locked after {PIN_TRIES} wrong tries");
        pin_lock_alert(conn, ctx, id, name, minutes).await?;
        return Ok(refused(text));
    }
    staff::pin_wrong(conn, id, failures).await?;
    Ok(refused("refused.pin_wrong"))
}

/// An SMS to the locked coordinator and to every admin: someone may be guessing a PIN.
async fn pin_lock_alert(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    coordinator: CoordinatorId,
    name: String,
    minutes: i64,
) -> Result<(), sqlx::Error> {
    let state = ctx.state;
    let phones = staff::pin_lock_alert_phones(conn, coordinator).await?;
    let vars = Vars::from([
        ("coordinator".to_owned(), name),
        ("phone".to_owned(), ctx.phone.masked()),
        ("minutes".to_owned(), minutes.to_string()),
    ]);
    for phone in phones {
        let phone = Phone::from_e164_unchecked(phone);
        let lang = state.hints.guess(&phone, state.config.default_language);
        state
            .queue_text(
                conn,
                &phone,
                lang,
                "sms.pin_locked_alert",
                &vars,
                crate::outbox::Kind::Reply,
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
    if staff::set_pin_hash(pool, phone, &hash).await? {
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
pub(super) async fn coordinator_of(
    conn: &mut PgConnection,
    phone: &Phone,
) -> Result<Option<(i64, bool)>, sqlx::Error> {
    let c = staff::coordinator_by_phone(conn, phone).await?;
    Ok(c.map(|c| (c.id.0, c.admin)))
}

/// An open pledge by its code, in the coordinator's communities.
pub(super) async fn find_pledge(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    vars: &Vars,
) -> Result<Vars, ActionError> {
    let code = var(vars, Action::FindPledge.name(), "pledge_code")?;
    let Some((coordinator, admin)) = coordinator_of(conn, ctx.phone).await? else {
        return Ok(refused("refused.no_pledge"));
    };
    let Some(id) = pledges::open_by_code(conn, code, CoordinatorId(coordinator), admin).await?
    else {
        return Ok(refused("refused.no_pledge"));
    };
    let Some(p) = pledges::balance(conn, id, false).await? else {
        return Ok(refused("refused.no_pledge"));
    };
    let mut out = Vars::new();
    out.insert("pledge_id".into(), p.pledge.to_string());
    out.insert(
        "pledge_amount".into(),
        crate::domain::money::format_amount(p.amount),
    );
    out.insert(
        "outstanding".into(),
        crate::domain::money::format_amount(p.outstanding),
    );
    out.insert("currency".into(), p.currency);
    for lang in Language::ALL {
        out.insert(
            format!("project.{lang}"),
            p.project_name.get(lang).to_owned(),
        );
    }
    out.insert("project_id".into(), p.project.to_string());
    Ok(out)
}

/// Cash a coordinator received for a pledge: a receipt, and the household's SMS receipt.
pub(super) async fn record_cash(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    vars: &Vars,
) -> Result<Vars, ActionError> {
    let pledge = id_var(vars, Action::RecordCash.name(), "pledge_id")?;
    let amount = decimal_var(vars, Action::RecordCash.name(), "cash_amount")?;
    let Some((coordinator, _)) = coordinator_of(conn, ctx.phone).await? else {
        return Ok(refused("refused.no_pledge"));
    };
    // locked until the hop commits: a second coordinator's cash waits for this one
    let Some(p) = pledges::balance(conn, PledgeId(pledge), true)
        .await?
        .filter(|p| p.status == PledgeStatus::Pledged)
    else {
        return Ok(refused("refused.no_pledge"));
    };
    let project = p.project.0;
    let household_phone = p.phone;
    if amount > p.outstanding {
        return Ok(refused("refused.too_much"));
    }
    let currency = p.currency;
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
            method: crate::receipts::ReceiptMethod::Cash,
            receipt_no: None,
            recorded_by: &format!("coordinator:{coordinator}"),
            recorded_at: ctx.now,
        },
    )
    .await?;
    crate::receipts::queue_sms(ctx.state, conn, &household_phone, &receipt).await?;
    // the audit row, as `service::money` writes it for the API, in the hop's transaction
    crate::store::audit::insert(
        conn,
        &crate::store::audit::AuditInsert {
            at: ctx.now,
            actor: &format!("coordinator:{coordinator}"),
            action: "receipt.record",
            subject_kind: "pledge",
            subject_id: pledge,
            community: Some(p.community),
            detail: serde_json::json!({
                "before": { "outstanding": format!("{:.2}", p.outstanding), "status": p.status },
                "after": {
                    "outstanding": format!("{:.2}", p.outstanding - amount),
                    "receipt": receipt.id,
                    "amount": format!("{amount:.2}"),
                    "by": "phone",
                },
            }),
            request_id: None,
        },
    )
    .await?;
    tracing::info!(phone = %ctx.phone, pledge, amount = %amount, "cash recorded by phone");
    super::project_total(conn, project).await
}
