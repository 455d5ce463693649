//! Doing a change once: the admin API's `Idempotency-Key` (claimed by its middleware, see
//! `api::idempotency`, whose rules these follow) and the console's one-time form keys.
//!
//! Either way the first answer is stored in the same transaction as the change, so a crash
//! between the two cannot leave the change without its answer; a repeat gets the first
//! answer and nothing is done twice. A console key is claimed inside the change's
//! transaction: a second request with the key waits for the first to end, then gets its
//! result (or runs, when the first was rolled back). The same key for another actor or
//! another kind of change is refused. Keys are forgotten after [`TTL_HOURS`], as the API's.

use chrono::{DateTime, Duration, Utc};
use futures_util::future::BoxFuture;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::value::RawValue;
use sqlx::PgConnection;

use super::{Actor, ServiceError, ServiceResult};
use crate::store;

/// How long a form key is remembered (the API's keys: `api::idempotency::TTL_HOURS`).
pub const TTL_HOURS: i64 = 24;
/// Longest form key accepted (as the API's).
pub const MAX_KEY_LEN: usize = 200;

/// Keeps an edge's answer in the change's transaction (the API's claimed
/// `Idempotency-Key` implements it).
pub trait KeepAnswer: Sync {
    /// Stores `body` (the change's result, as JSON) as the answer, in `conn`'s transaction.
    fn keep<'c>(
        &'c self,
        conn: &'c mut PgConnection,
        body: &'c RawValue,
    ) -> BoxFuture<'c, ServiceResult<()>>;
}

/// How a change is kept from happening twice.
#[derive(Clone, Copy)]
pub enum Once<'a> {
    /// Nothing remembered: every call acts (a route without a key, the CLI, tests).
    Always,
    /// An answer the edge keeps (the API's `Idempotency-Key`, claimed before the call).
    Answer(&'a dyn KeepAnswer),
    /// A console form's one-time key.
    Form(&'a str),
}

impl std::fmt::Debug for Once<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Once::Always => f.write_str("Always"),
            Once::Answer(_) => f.write_str("Answer"),
            Once::Form(_) => f.write_str("Form"),
        }
    }
}

/// At the start of a change's transaction: the first result when `once` is a form key used
/// before, else `None` (the key is now claimed by this transaction).
pub async fn first<T: DeserializeOwned>(
    conn: &mut PgConnection,
    actor: &Actor,
    once: Once<'_>,
    action: &'static str,
    now: DateTime<Utc>,
) -> ServiceResult<Option<T>> {
    let Once::Form(key) = once else {
        return Ok(None);
    };
    if !(1..=MAX_KEY_LEN).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ServiceError::invalid(
            "form_key",
            "form.key_invalid",
            format!("a form key is 1 to {MAX_KEY_LEN} visible ASCII characters"),
        ));
    }
    let who = actor.who();
    store::audit::forget_form_keys_before(conn, now - Duration::hours(TTL_HOURS)).await?;
    if store::audit::claim_form_key(conn, key, &who, action, now).await? {
        return Ok(None);
    }
    let Some(stored) = store::audit::form_key(conn, key).await? else {
        return Err(in_progress());
    };
    if stored.actor != who || stored.action != action {
        return Err(ServiceError::invalid(
            "form_key",
            "form.key_reused",
            "this form key was already used for something else; reload the form",
        ));
    }
    match stored.result {
        Some(result) => Ok(Some(serde_json::from_value(result)?)),
        None => Err(in_progress()),
    }
}

fn in_progress() -> ServiceError {
    ServiceError::conflict(
        "form.in_progress",
        "this form is still being processed; try again in a moment",
    )
}

/// At the end of a change's transaction: keeps `result` as the answer under `once`.
pub async fn keep<T: Serialize>(
    conn: &mut PgConnection,
    once: Once<'_>,
    result: &T,
) -> ServiceResult<()> {
    match once {
        Once::Always => Ok(()),
        Once::Answer(keeper) => {
            let body = RawValue::from_string(serde_json::to_string(result)?)?;
            keeper.keep(conn, &body).await
        }
        Once::Form(key) => {
            let value = serde_json::to_value(result)?;
            store::audit::save_form_result(conn, key, &value).await?;
            Ok(())
        }
    }
}
