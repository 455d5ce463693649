//! SMS conversations (the answers so far of a household walking the menus by SMS), the
//! per-number cap on replies to unregistered numbers, and whether a number is known.

use chrono::{DateTime, Utc};
use sqlx::{types::Json, PgConnection};

use super::HouseholdId;
use crate::domain::Phone;

/// A conversation as stored. `start_caller` and `results` are the engine's values as JSON
/// (the store does not know the engine's types; the conversation module reads them).
#[derive(Debug)]
pub struct Conversation {
    pub inputs: Vec<String>,
    pub start_caller: serde_json::Value,
    pub results: serde_json::Value,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The conversation of `phone`, locked for the rest of the transaction (texts of one
/// number are handled one after the other).
pub async fn lock(
    conn: &mut PgConnection,
    phone: &Phone,
) -> Result<Option<Conversation>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select inputs, start_caller as "start_caller: Json<serde_json::Value>",
                  results as "results: Json<serde_json::Value>", started_at, updated_at
           from sms_conversations where phone = $1 for update"#,
        phone.as_str()
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Conversation {
        inputs: r.inputs,
        start_caller: r.start_caller.0,
        results: r.results.0,
        started_at: r.started_at,
        updated_at: r.updated_at,
    }))
}

/// Stores `conversation` as the one of `phone` (the household menus), replacing any.
pub async fn save(
    conn: &mut PgConnection,
    phone: &Phone,
    conversation: &Conversation,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into sms_conversations (phone, menu, inputs, start_caller, results, started_at, updated_at)
         values ($1, 'household', $2, $3, $4, $5, $6)
         on conflict (phone) do update set inputs = excluded.inputs, start_caller = excluded.start_caller,
             results = excluded.results, started_at = excluded.started_at, updated_at = excluded.updated_at",
        phone.as_str(),
        &conversation.inputs,
        Json(&conversation.start_caller) as _,
        Json(&conversation.results) as _,
        conversation.started_at,
        conversation.updated_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends the conversation of `phone`, if any.
pub async fn end(conn: &mut PgConnection, phone: &Phone) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from sms_conversations where phone = $1",
        phone.as_str()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends the conversations of every number of `household`.
pub async fn end_for_household(
    conn: &mut PgConnection,
    household: HouseholdId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from sms_conversations where phone in (select phone from phones where household_id = $1)",
        household as HouseholdId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether `phone` belongs to a household or a coordinator.
pub async fn is_known(conn: &mut PgConnection, phone: &Phone) -> Result<bool, sqlx::Error> {
    let known = sqlx::query_scalar!(
        r#"select exists (select 1 from phones where phone = $1)
               or exists (select 1 from coordinators where phone = $1) as "known!""#,
        phone.as_str()
    )
    .fetch_one(conn)
    .await?;
    Ok(known)
}

/// Counts a reply to the unregistered `phone` in the hour's window that starts at its
/// first reply, and returns the count (at most `cap + 1`). One upsert: concurrent texts
/// from one number wait for each other on the row and each sees its own count.
pub async fn count_unknown_reply(
    conn: &mut PgConnection,
    phone: &Phone,
    now: DateTime<Utc>,
    cap: i32,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into sms_unknown_replies as r (phone, window_start, replies)
         values ($1, $2, 1)
         on conflict (phone) do update set
             window_start = case when r.window_start <= $2 - interval '1 hour'
                                 then $2 else r.window_start end,
             replies = case when r.window_start <= $2 - interval '1 hour'
                            then 1 else least(r.replies + 1, $3 + 1) end
         returning replies",
        phone.as_str(),
        now,
        cap
    )
    .fetch_one(conn)
    .await
}
