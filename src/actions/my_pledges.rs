//! "My pledges": a household's pledges (whichever of its phones made them), one of them in
//! detail, and cancelling one nothing was received for, by the same rule as the API's
//! cancellation (`service::money::cancel`): a `pledge_cancellations` row, from which the
//! database moves the pledge's status (and refuses a pledge money was received for).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{id_var, refused, ActionError, EffectCtx};
use crate::{
    domain::{money::format_amount, Language, Phone},
    engine::{menu::MenuSet, Action, ListItem, Read, Vars},
    store::{
        self,
        pledges::{Own, PledgeStatus},
        PledgeId,
    },
};

/// The reason a household's own cancellation is recorded with.
pub const REASON: &str = "cancelled by the household";

/// The most pledges a list shows (newest first).
pub const LIST_LIMIT: i64 = 20;

/// The text key of a pledge's status, as the household reads it.
pub fn status_key(status: PledgeStatus) -> &'static str {
    match status {
        PledgeStatus::Pledged => "mypledges.status.pledged",
        PledgeStatus::Received => "mypledges.status.received",
        PledgeStatus::Cancelled => "mypledges.status.cancelled",
    }
}

/// Whether the household may cancel it: still pledged, and nothing (net of reversals)
/// received for it.
pub fn cancellable(p: &Own) -> bool {
    p.status == PledgeStatus::Pledged && p.received.is_zero()
}

/// The pledges as a list shows them: `code project amount currency`, and a short mark when
/// it is paid or cancelled. The choice keeps the pledge's code, amount, currency and
/// project (`project.<lang>`) for the screens that follow.
pub fn items(menus: &MenuSet, pledges: &[Own]) -> Vec<ListItem> {
    pledges
        .iter()
        .map(|p| {
            let label = |lang: Language| {
                let mut l = format!(
                    "{} {} {} {}",
                    p.code,
                    p.project_name.get(lang),
                    format_amount(p.amount),
                    p.currency
                );
                let mark = match p.status {
                    PledgeStatus::Pledged => None,
                    PledgeStatus::Received => Some("mypledges.mark.received"),
                    PledgeStatus::Cancelled => Some("mypledges.mark.cancelled"),
                };
                if let Some(mark) = mark {
                    l.push(' ');
                    l.push_str(menus.text(lang, mark));
                }
                l
            };
            ListItem {
                id: p.pledge.0.to_string(),
                labels: [
                    label(Language::Tg),
                    label(Language::Ru),
                    label(Language::En),
                ],
                extra: {
                    let mut extra = values(menus, p);
                    extra.retain(|k, _| !k.starts_with("status.") && k != "received");
                    extra
                },
            }
        })
        .collect()
}

/// The pledges of `phone`'s household as a list (see [`store::pledges::of_household`]).
pub async fn list(
    conn: &mut PgConnection,
    menus: &MenuSet,
    phone: &Phone,
    now: DateTime<Utc>,
    ussd_session: Option<(&str, DateTime<Utc>)>,
) -> Result<Vec<ListItem>, sqlx::Error> {
    let (pledges, _) =
        store::pledges::of_household(conn, phone.as_str(), now, ussd_session, LIST_LIMIT).await?;
    Ok(items(menus, &pledges))
}

/// A pledge's values for a screen or an SMS: `pledge_code`, `project.<lang>`, `amount`,
/// `currency`, `received` and `status.<lang>`.
pub fn values(menus: &MenuSet, p: &Own) -> Vars {
    let mut v = Vars::from([
        ("pledge_code".to_owned(), p.code.clone()),
        ("amount".to_owned(), format_amount(p.amount)),
        ("currency".to_owned(), p.currency.clone()),
        ("received".to_owned(), format_amount(p.received)),
    ]);
    for lang in Language::ALL {
        v.insert(
            format!("project.{lang}"),
            p.project_name.get(lang).to_owned(),
        );
        v.insert(
            format!("status.{lang}"),
            menus.text(lang, status_key(p.status)).to_owned(),
        );
    }
    v
}

/// [`values`] in one language, without the language in the names (`project`, `status`):
/// for an SMS in that language.
pub fn values_in(menus: &MenuSet, p: &Own, lang: Language) -> Vars {
    let mut v = values(menus, p);
    for name in ["project", "status"] {
        if let Some(text) = v.get(&format!("{name}.{lang}")).cloned() {
            v.insert(name.to_owned(), text);
        }
    }
    v
}

/// `my_pledge`: the chosen pledge in detail (only the caller's household's).
pub(super) async fn detail(
    conn: &mut PgConnection,
    menus: &MenuSet,
    phone: &Phone,
    vars: &Vars,
) -> Result<Vars, ActionError> {
    let id = id_var(vars, Read::MyPledge.name(), "pledge_id")?;
    let p = store::pledges::own(conn, phone.as_str(), Some(PledgeId(id)), None, false)
        .await?
        .ok_or(ActionError::NoPledge)?;
    Ok(values(menus, &p))
}

/// What became of a household's cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// Cancelled now.
    Done(Own),
    /// Not the household's pledge, or no such pledge: one answer for both.
    NotFound,
    /// Money was received for it, or it is already cancelled.
    NotCancellable(Own),
}

/// Cancels a pledge of `phone`'s household, by id or by code, in the caller's transaction:
/// recorded as by `household:<id>` with [`REASON`], and in the audit log (actor `system`,
/// the household and the channel in its detail). A pledge money was received for (net of
/// reversals) or one already cancelled is left as it is.
pub async fn cancel(
    conn: &mut PgConnection,
    phone: &Phone,
    id: Option<PledgeId>,
    code: Option<&str>,
    channel: &str,
    now: DateTime<Utc>,
) -> Result<Cancelled, ActionError> {
    let Some(p) = store::pledges::own(conn, phone.as_str(), id, code, true).await? else {
        return Ok(Cancelled::NotFound);
    };
    if !cancellable(&p) {
        return Ok(Cancelled::NotCancellable(p));
    }
    let who = format!("household:{}", p.household.0);
    // checked under the pledge's lock above, so the database's own rule (no money received)
    // holds; should it refuse all the same, the caller's transaction fails as a whole
    let done = store::money::cancel_pledge(conn, p.pledge, REASON, &who, now).await?;
    if !done {
        return Ok(Cancelled::NotCancellable(p));
    }
    store::audit::insert(
        conn,
        &store::audit::AuditInsert {
            at: now,
            actor: "system",
            action: "pledge.cancel",
            subject_kind: "pledge",
            subject_id: p.pledge.0,
            community: Some(p.community),
            detail: serde_json::json!({
                "before": { "status": p.status, "outstanding": format!("{:.2}", p.amount) },
                "after": { "status": "cancelled", "reason": REASON },
                "by": who,
                "channel": channel,
            }),
            request_id: None,
        },
    )
    .await?;
    tracing::info!(phone = %phone, pledge = p.pledge.0, channel, "pledge cancelled by its household");
    Ok(Cancelled::Done(p))
}

/// `cancel_pledge`: the chosen pledge cancelled; a refusal (`mypledges.paid`, `mypledges.already`,
/// `mypledges.unknown`) keeps the caller on the confirm screen.
pub(super) async fn cancel_chosen(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    vars: &Vars,
) -> Result<Vars, ActionError> {
    let id = id_var(vars, Action::CancelPledge.name(), "pledge_id")?;
    match cancel(
        conn,
        ctx.phone,
        Some(PledgeId(id)),
        None,
        ctx.channel,
        ctx.now,
    )
    .await?
    {
        Cancelled::Done(p) => {
            let mut v = values(&ctx.state.menus, &p);
            // as it stands now
            for lang in Language::ALL {
                v.insert(
                    format!("status.{lang}"),
                    ctx.state
                        .menus
                        .text(lang, status_key(PledgeStatus::Cancelled))
                        .to_owned(),
                );
            }
            Ok(v)
        }
        Cancelled::NotFound => Ok(refused("mypledges.unknown")),
        Cancelled::NotCancellable(p) if p.status == PledgeStatus::Cancelled => {
            Ok(refused("mypledges.already"))
        }
        Cancelled::NotCancellable(_) => Ok(refused("mypledges.paid")),
    }
}
