//! The JOIN limiter's tries (`join_attempts`) and the advisory lock that makes its
//! check-and-count atomic (the limits themselves are `crate::sms`'s).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::domain::Phone;

/// The advisory lock that makes the JOIN check-and-count atomic: every JOIN takes it for
/// its transaction, so concurrent tries are counted one after the other (9 concurrent
/// wrong tries from one number used to pass a check of 5). JOINs are rare (once per
/// migrant), so one lock for all of them costs nothing.
const JOIN_LOCK: i64 = 0x6a6f696e; // "join"

/// Takes the JOIN lock until the caller's transaction ends.
pub async fn lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("select pg_advisory_xact_lock($1)", JOIN_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

/// Wrong join codes since a moment: from one number, and from all numbers together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    pub mine: i64,
    pub all: i64,
}

/// The wrong join codes tried after `since`, by `phone` and by everyone (read after
/// [`lock`]: each statement sees what the tries before it committed).
pub async fn failures_since(
    conn: &mut PgConnection,
    phone: &Phone,
    since: DateTime<Utc>,
) -> Result<Failures, sqlx::Error> {
    sqlx::query_as!(
        Failures,
        r#"select count(*) filter (where phone = $1) as "mine!", count(*) as "all!"
             from join_attempts where not succeeded and attempted_at > $2"#,
        phone.as_str(),
        since,
    )
    .fetch_one(conn)
    .await
}

/// Records a try of a join code by `phone`, right or wrong.
pub async fn record(
    conn: &mut PgConnection,
    phone: &Phone,
    succeeded: bool,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into join_attempts (phone, succeeded, attempted_at) values ($1, $2, $3)",
        phone.as_str(),
        succeeded,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}
