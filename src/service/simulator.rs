//! The phone simulator's rules (the console's `/console/phone`): which numbers a member of
//! staff may act as, the audit row of a simulated call or text, and what a step wrote,
//! read back from the database.
//!
//! A member of staff may act as a number of a household they may see, or as a number that
//! is nobody's yet (a new household, a migrant abroad); not as a number of a household
//! outside their communities, nor as a coordinator's number (that is the PIN menu of a
//! real person). Programme officers only read, so they simulate nothing (the simulator
//! writes real registrations and pledges).

use crate::{
    app::AppState,
    domain::Phone,
    store::{self, simulator::Marks},
};

use super::{audit, Actor, ServiceError, ServiceResult};

pub use crate::store::simulator::{Activity, ThreadItem};

/// Households offered in the list of numbers to act as.
pub const LISTED: i64 = 60;
/// Texts the SMS tab shows.
pub const THREAD: i64 = 20;
/// Rows of each kind a step's read-back shows at most.
const ACTIVITY: i64 = 20;

/// A number the simulator may act as, from a household the actor may see.
#[derive(Debug, Clone)]
pub struct Listed {
    pub household: i64,
    pub name: Option<String>,
    pub community: store::Localized,
    pub phone: Phone,
}

/// Refuses programme officers (they change nothing).
pub fn require_simulator(actor: &Actor) -> ServiceResult<()> {
    if actor.read_only() {
        Err(ServiceError::Forbidden)
    } else {
        Ok(())
    }
}

/// The numbers of the households this actor may see (the demo and training households of a
/// console deployment), oldest household first, each household's numbers in the order they
/// were linked.
pub async fn numbers(state: &AppState, actor: &Actor) -> ServiceResult<Vec<Listed>> {
    require_simulator(actor)?;
    let households = super::households::list(
        state,
        actor,
        &super::households::Search {
            limit: LISTED,
            ..Default::default()
        },
    )
    .await?;
    let communities = super::households::communities(state, actor).await?;
    let mut out = Vec::new();
    for h in households {
        let Some(c) = communities.iter().find(|c| c.id.0 == h.community_id) else {
            continue;
        };
        for p in &h.phones {
            if let Ok(phone) = Phone::parse(&p.phone) {
                out.push(Listed {
                    household: h.id,
                    name: h.name.clone(),
                    community: c.name.clone(),
                    phone,
                });
            }
        }
    }
    Ok(out)
}

/// The `index`th number of household `id`, if the actor may see it (not found otherwise).
pub async fn household_number(
    state: &AppState,
    actor: &Actor,
    id: i64,
    index: usize,
) -> ServiceResult<Phone> {
    require_simulator(actor)?;
    let h = super::households::get(state, actor, id).await?;
    let phone = h
        .phones
        .get(index)
        .and_then(|p| Phone::parse(&p.phone).ok())
        .ok_or(ServiceError::NotFound("phone"))?;
    check_number(state, actor, &phone).await?;
    Ok(phone)
}

/// A typed number the actor may act as: one of a household they may see, or nobody's.
/// Another community's household's number and a coordinator's number are refused with the
/// same words (`phone.error.not_here`).
pub async fn typed_number(state: &AppState, actor: &Actor, raw: &str) -> ServiceResult<Phone> {
    require_simulator(actor)?;
    let raw = raw.trim();
    if raw.is_empty() || raw.chars().count() > 40 {
        return Err(ServiceError::invalid(
            "number",
            "phone.error.number",
            "number: a phone number, e.g. +992901234567",
        ));
    }
    let phone = Phone::parse(raw).map_err(|e| {
        ServiceError::invalid("number", "phone.error.number", format!("number: {e}"))
    })?;
    check_number(state, actor, &phone).await?;
    Ok(phone)
}

/// The actor may act as `phone` now: it is a number of a household they may see, or
/// nobody's, and no member of staff's (whose phone menu has money in it). Checked when a
/// number is taken up and again before every step and every read of its texts, since a
/// step may register the number in another community and the actor's own communities may
/// change meanwhile.
pub async fn check_number(state: &AppState, actor: &Actor, phone: &Phone) -> ServiceResult<()> {
    require_simulator(actor)?;
    let mut conn = state.pool.acquire().await?;
    let owner = store::households::owner_of_phone(&mut conn, phone).await?;
    let elsewhere = owner.is_some_and(|o| !actor.may_see(o.community));
    let staff = store::staff::coordinator_by_phone(&mut conn, phone)
        .await?
        .is_some();
    if elsewhere || staff {
        return Err(ServiceError::invalid(
            "number",
            "phone.error.not_here",
            "number: not one this simulator may act as",
        ));
    }
    Ok(())
}

/// Writes `phone.simulate` to the audit log: who started acting as which number (masked),
/// on which channel; the subject is the household when the number is one's, else the
/// member of staff.
pub async fn audit_start(
    state: &AppState,
    actor: &Actor,
    phone: &Phone,
    channel: &str,
) -> ServiceResult<()> {
    require_simulator(actor)?;
    let mut tx = state.pool.begin().await?;
    let owner = store::households::owner_of_phone(&mut tx, phone).await?;
    let (kind, id, community) = match &owner {
        Some(o) => ("household", o.household.0, Some(o.community)),
        None => ("staff", actor.coordinator_id, None),
    };
    audit::write(
        &mut tx,
        actor,
        state.clock.now(),
        audit::Change {
            action: "phone.simulate",
            subject_kind: kind,
            subject_id: id,
            community,
            before: serde_json::json!({}),
            after: serde_json::json!({ "phone": phone.masked(), "channel": channel }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The highest ids before a step ([`store::simulator::marks`]), once the actor may still
/// act as `phone` ([`check_number`]).
pub async fn marks(state: &AppState, actor: &Actor, phone: &Phone) -> ServiceResult<Marks> {
    check_number(state, actor, phone).await?;
    let mut conn = state.pool.acquire().await?;
    Ok(store::simulator::marks(&mut conn).await?)
}

/// What a step wrote for `phone` (rows above `marks`).
pub async fn activity(
    state: &AppState,
    phone: &Phone,
    marks: &Marks,
) -> ServiceResult<Vec<Activity>> {
    let mut conn = state.pool.acquire().await?;
    Ok(store::simulator::activity(&mut conn, phone, marks, ACTIVITY).await?)
}

/// The newest texts to and from `phone`, oldest first (as a phone shows a conversation).
pub async fn thread(
    state: &AppState,
    actor: &Actor,
    phone: &Phone,
) -> ServiceResult<Vec<ThreadItem>> {
    check_number(state, actor, phone).await?;
    let mut conn = state.pool.acquire().await?;
    let mut items = store::simulator::thread(&mut conn, phone, THREAD).await?;
    items.reverse();
    Ok(items)
}
