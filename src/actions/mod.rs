//! What a menu or keyword can do: effects (which change something, inside the caller's
//! transaction) and reads, each plain SQL over sqlx. The menus name them
//! ([`crate::engine::Action`], [`crate::engine::Read`]); [`run_effect`] and [`run_read`]
//! match every name, and each concern has its module.

mod coordinators;
mod households;
pub mod meetings;
pub mod my_pledges;
mod notices;
mod outreach;
mod pledges;
mod tips;

use std::str::FromStr;

use rust_decimal::Decimal;
use sqlx::PgConnection;

pub use coordinators::{set_pin, strong_pin, PinError, PIN_DIGITS, PIN_LOCK_MINUTES, PIN_TRIES};
pub use my_pledges::Cancelled;
pub use pledges::{pledge_error, project_total, PROJECT_NOT_OPEN};
pub use tips::{sync_tips, TipsError};

use crate::{
    domain::{Language, Phone},
    engine::{menu::MenuSet, Action, Read, Vars},
    store::ussd_sessions::StepDone,
};

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("action {action} needs {var}")]
    MissingVar {
        action: &'static str,
        var: &'static str,
    },
    #[error("the caller has no household")]
    NotRegistered,
    #[error("action {0} is more than one statement: it runs in a transaction")]
    NotOneStatement(&'static str),
    #[error("project {0} is not open for pledges from this caller")]
    ProjectNotOpen(i64),
    #[error("no such community {0}")]
    NoCommunity(i64),
    #[error("no such pledge of the caller's household")]
    NoPledge,
    #[error("the meeting is no longer to come for the caller's household")]
    MeetingGone,
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
            ActionError::NoPledge => Some("mypledges.unknown"),
            ActionError::MeetingGone => Some("meetings.gone"),
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

/// Runs an effect inside the caller's transaction and returns the values it adds.
pub async fn run_effect(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    action: Action,
    arg: Option<&str>,
    vars: &Vars,
) -> Result<Vars, ActionError> {
    match action {
        Action::SetLanguage => households::set_language(conn, ctx, arg).await,
        Action::Register => households::register(conn, ctx, vars).await,
        Action::RequestCallback => households::request_callback(conn, ctx).await,
        Action::CreatePledge => pledges::create(conn, ctx, vars, false, None).await,
        Action::CreatePledgeAgain => pledges::create(conn, ctx, vars, true, None).await,
        Action::NextTip => tips::next_tip(conn, ctx).await,
        Action::VerifyPin => coordinators::verify_pin(conn, ctx, vars).await,
        Action::FindPledge => coordinators::find_pledge(conn, ctx, vars).await,
        Action::RecordCash => coordinators::record_cash(conn, ctx, vars).await,
        Action::PreviewNotice => notices::notice(conn, ctx, vars, false).await,
        Action::SendNotice => notices::notice(conn, ctx, vars, true).await,
        Action::CancelPledge => my_pledges::cancel_chosen(conn, ctx, vars).await,
        Action::Rsvp => meetings::rsvp(conn, ctx, arg, vars).await,
        Action::TopicRead => outreach::topic_read(conn, ctx, arg).await,
    }
}

/// Whether the action is one statement, which [`run_effect_recorded`] runs with the record
/// of its USSD step in one round trip.
pub fn one_statement(action: Action) -> bool {
    matches!(action, Action::CreatePledge | Action::CreatePledgeAgain)
}

/// Runs an effect whose action is [`one_statement`] together with the record of its USSD
/// step, in that one statement, within `done.ms_left` milliseconds, which commits on its
/// own: it must not run inside a transaction (see `store::pledges::pledge_at`). Any other action is refused
/// ([`ActionError::NotOneStatement`]): the caller runs [`run_effect`] in a transaction and
/// records the step itself.
pub async fn run_effect_recorded(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    action: Action,
    vars: &Vars,
    done: &StepDone<'_, crate::engine::Caller>,
) -> Result<Vars, ActionError> {
    let done = Some(done);
    match action {
        Action::CreatePledge => pledges::create(conn, ctx, vars, false, done).await,
        Action::CreatePledgeAgain => pledges::create(conn, ctx, vars, true, done).await,
        _ => Err(ActionError::NotOneStatement(action.name())),
    }
}

/// Runs a read.
pub async fn run_read(
    conn: &mut PgConnection,
    menus: &MenuSet,
    phone: &Phone,
    action: Read,
    vars: &Vars,
) -> Result<Vars, ActionError> {
    match action {
        // (a closed project's state shows in its name as the totals list gave it:
        // "Bridge (completed)", see `crate::news::PhoneState::label`)
        Read::ProjectTotal => project_total(conn, id_var(vars, action.name(), "project_id")?).await,
        Read::JoinCode => households::join_code(conn, phone).await,
        Read::MyPledge => my_pledges::detail(conn, menus, phone, vars).await,
    }
}

/// A value the action needs (`action` names it in the error).
fn var<'v>(
    vars: &'v Vars,
    action: &'static str,
    name: &'static str,
) -> Result<&'v str, ActionError> {
    vars.get(name)
        .map(String::as_str)
        .ok_or(ActionError::MissingVar { action, var: name })
}

fn id_var(vars: &Vars, action: &'static str, name: &'static str) -> Result<i64, ActionError> {
    var(vars, action, name)?
        .parse()
        .map_err(|_| ActionError::MissingVar { action, var: name })
}

fn decimal_var(
    vars: &Vars,
    action: &'static str,
    name: &'static str,
) -> Result<Decimal, ActionError> {
    Decimal::from_str(var(vars, action, name)?)
        .map_err(|_| ActionError::MissingVar { action, var: name })
}

/// An action's refusal: the text (a key) shown above the same screen.
fn refused(key: &str) -> Vars {
    Vars::from([("refused".to_owned(), key.to_owned())])
}
