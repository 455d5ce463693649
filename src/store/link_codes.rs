//! The codes that link a number to a household (`phone_link_codes`) and the count of
//! "registered elsewhere" answers given to coordinators (`taken_number_answers`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{CoordinatorId, HouseholdId};
use crate::domain::Phone;

/// Where a link code is: the table's `state` check lists the same four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkCodeState {
    /// May be confirmed until it expires.
    Pending,
    /// A newer code was sent for the same household and number.
    Replaced,
    /// The number was linked with it.
    Confirmed,
    /// Too many wrong codes were given.
    Void,
}

impl LinkCodeState {
    fn from_db(s: &str) -> Result<LinkCodeState, sqlx::Error> {
        Ok(match s {
            "pending" => LinkCodeState::Pending,
            "replaced" => LinkCodeState::Replaced,
            "confirmed" => LinkCodeState::Confirmed,
            "void" => LinkCodeState::Void,
            other => {
                return Err(sqlx::Error::Decode(
                    format!("unknown link code state {other:?}").into(),
                ))
            }
        })
    }
}

/// The last code sent for a household and number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCode {
    pub id: i64,
    pub code_salt: Vec<u8>,
    pub code_sha256: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub state: LinkCodeState,
}

/// The codes sent in the last hour by a coordinator and to a number, and the oldest of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentCodes {
    pub by_coordinator: i64,
    pub by_coordinator_oldest: Option<DateTime<Utc>>,
    pub to_phone: i64,
    pub to_phone_oldest: Option<DateTime<Utc>>,
}

/// A code to store (its hash and salt, never the code).
#[derive(Debug, Clone, Copy)]
pub struct NewLinkCode<'a> {
    pub household: HouseholdId,
    pub phone: &'a Phone,
    pub code_salt: &'a [u8],
    pub code_sha256: &'a [u8],
    pub created_by: CoordinatorId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Deletes the codes that expired before `before`.
pub async fn forget_expired(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from phone_link_codes where expires_at < $1", before)
        .execute(conn)
        .await?;
    Ok(())
}

/// The codes `coordinator` sent and `phone` was sent since `since`.
pub async fn recent(
    conn: &mut PgConnection,
    coordinator: CoordinatorId,
    phone: &Phone,
    since: DateTime<Utc>,
) -> Result<RecentCodes, sqlx::Error> {
    let r = sqlx::query!(
        r#"select count(*) filter (where created_by = $1) as "by_coordinator!",
                  min(created_at) filter (where created_by = $1) as by_coordinator_oldest,
                  count(*) filter (where phone = $2) as "to_phone!",
                  min(created_at) filter (where phone = $2) as to_phone_oldest
           from phone_link_codes
           where created_at > $3 and (created_by = $1 or phone = $2)"#,
        coordinator as CoordinatorId,
        phone.as_str(),
        since
    )
    .fetch_one(conn)
    .await?;
    Ok(RecentCodes {
        by_coordinator: r.by_coordinator,
        by_coordinator_oldest: r.by_coordinator_oldest,
        to_phone: r.to_phone,
        to_phone_oldest: r.to_phone_oldest,
    })
}

/// Marks the pending code of `household` and `phone`, if any, replaced.
pub async fn replace_pending(
    conn: &mut PgConnection,
    household: HouseholdId,
    phone: &Phone,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update phone_link_codes set state = 'replaced', closed_at = $3
         where household_id = $1 and phone = $2 and state = 'pending'",
        household as HouseholdId,
        phone.as_str(),
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores a new pending code.
pub async fn create(conn: &mut PgConnection, c: &NewLinkCode<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into phone_link_codes (household_id, phone, code_salt, code_sha256, created_by, created_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
        c.household as HouseholdId,
        c.phone.as_str(),
        c.code_salt,
        c.code_sha256,
        c.created_by as CoordinatorId,
        c.created_at,
        c.expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The last code sent for `household` and `phone`, if any.
pub async fn latest(
    conn: &mut PgConnection,
    household: HouseholdId,
    phone: &Phone,
) -> Result<Option<LinkCode>, sqlx::Error> {
    let row = sqlx::query!(
        "select id, code_salt, code_sha256, expires_at, state from phone_link_codes
         where household_id = $1 and phone = $2 order by id desc limit 1",
        household as HouseholdId,
        phone.as_str()
    )
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(LinkCode {
            id: r.id,
            code_salt: r.code_salt,
            code_sha256: r.code_sha256,
            expires_at: r.expires_at,
            state: LinkCodeState::from_db(&r.state)?,
        })
    })
    .transpose()
}

/// Counts a wrong code for the code `id`, voiding it at the `max_tries`th (closed at `at`);
/// the wrong tries so far.
pub async fn wrong_try(
    conn: &mut PgConnection,
    id: i64,
    max_tries: i32,
    at: DateTime<Utc>,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar!(
        "update phone_link_codes
         set wrong_tries = wrong_tries + 1,
             state = case when wrong_tries + 1 >= $2 then 'void' else state end,
             closed_at = case when wrong_tries + 1 >= $2 then $3 else closed_at end
         where id = $1 returning wrong_tries",
        id,
        max_tries,
        at
    )
    .fetch_one(conn)
    .await
}

/// Marks the code `id` confirmed (its number was linked) at `at`.
pub async fn confirm(
    conn: &mut PgConnection,
    id: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update phone_link_codes set state = 'confirmed', closed_at = $2 where id = $1",
        id,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// How many "registered elsewhere" answers `coordinator` got since `since`, and the oldest.
pub async fn taken_answers_since(
    conn: &mut PgConnection,
    coordinator: CoordinatorId,
    since: DateTime<Utc>,
) -> Result<(i64, Option<DateTime<Utc>>), sqlx::Error> {
    let r = sqlx::query!(
        r#"select count(*) as "answers!", min(answered_at) as oldest from taken_number_answers
           where coordinator_id = $1 and answered_at > $2"#,
        coordinator as CoordinatorId,
        since
    )
    .fetch_one(conn)
    .await?;
    Ok((r.answers, r.oldest))
}

/// Deletes the answers counted before `before`.
pub async fn forget_taken_answers(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from taken_number_answers where answered_at < $1",
        before
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts one "registered elsewhere" answer to `coordinator` at `at`.
pub async fn count_taken_answer(
    conn: &mut PgConnection,
    coordinator: CoordinatorId,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into taken_number_answers (coordinator_id, answered_at) values ($1, $2)",
        coordinator as CoordinatorId,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}
