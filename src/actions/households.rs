//! A household's own actions: its language, registering, a callback request, and the code
//! that links another number to it.

use std::str::FromStr;

use sqlx::PgConnection;

use super::{id_var, ActionError, EffectCtx};
use crate::{
    domain::{Language, Phone},
    engine::{Action, Vars},
    store::{
        households::{
            add_own_phone, owner_of_phone, register as register_household,
            request_callback as request_callback_of, set_language_of_phone,
        },
        CommunityId,
    },
};

/// `set_language`: the household's language, from the option's `arg`.
pub(super) async fn set_language(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    arg: Option<&str>,
) -> Result<Vars, ActionError> {
    let lang = arg
        .and_then(|a| Language::from_str(a).ok())
        .ok_or(ActionError::MissingVar {
            action: Action::SetLanguage.name(),
            var: "arg",
        })?;
    set_language_of_phone(conn, ctx.phone, lang).await?;
    Ok(Vars::new())
}

/// `register`: a household in the chosen community, with the caller's number.
pub(super) async fn register(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    vars: &Vars,
) -> Result<Vars, ActionError> {
    let community = id_var(vars, Action::Register.name(), "community_id")?;
    if owner_of_phone(conn, ctx.phone).await?.is_some() {
        // Registered meanwhile (another session): nothing to do.
        return Ok(Vars::new());
    }
    // the channel the household registered on: 'ussd' or 'sms'
    let household = register_household(conn, CommunityId(community), ctx.language, ctx.channel)
        .await?
        .ok_or(ActionError::NoCommunity(community))?;
    add_own_phone(conn, ctx.phone, household).await?;
    let household = household.0;
    tracing::info!(phone = %ctx.phone, household, community, "household registered");
    Ok(Vars::new())
}

/// `request_callback`: a counsellor is to call back, once per idempotency key.
pub(super) async fn request_callback(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
) -> Result<Vars, ActionError> {
    let household = owner_of_phone(conn, ctx.phone).await?.map(|o| o.household);
    request_callback_of(
        conn,
        ctx.phone,
        household,
        ctx.language,
        ctx.channel,
        ctx.idempotency_key,
    )
    .await?;
    Ok(Vars::new())
}

/// The read `join_code`: the code that links another number to the caller's household.
pub(super) async fn join_code(conn: &mut PgConnection, phone: &Phone) -> Result<Vars, ActionError> {
    let code = owner_of_phone(conn, phone).await?.and_then(|o| o.join_code);
    let code = code.ok_or(ActionError::NotRegistered)?;
    Ok(Vars::from([("join_code".to_owned(), code)]))
}
