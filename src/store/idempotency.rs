//! The admin API's `Idempotency-Key`s (`api_idempotency`): a key claimed per token (by the
//! token's SHA-256), the request it was claimed for, and the answer stored under it.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

/// A key as stored: the request it was claimed for, and its answer once there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// SHA-256 (hex) of the method, path and body it was claimed for.
    pub request_hash: String,
    /// The answer's HTTP status; `None` while the first request still runs.
    pub status: Option<i16>,
    pub body: Option<Vec<u8>>,
}

/// Deletes the keys claimed before `before`.
pub async fn forget_before<'e>(
    db: impl PgExecutor<'e>,
    before: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from api_idempotency where created_at < $1", before)
        .execute(db)
        .await?;
    Ok(())
}

/// Claims `key` for the token and request; `false` when it is claimed already.
pub async fn claim<'e>(
    db: impl PgExecutor<'e>,
    token_sha256: &str,
    key: &str,
    request_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "insert into api_idempotency (token_sha256, key, request_hash, created_at)
         values ($1, $2, $3, $4) on conflict do nothing",
        token_sha256,
        key,
        request_hash,
        now
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// The key as stored, if it is (still) claimed.
pub async fn stored<'e>(
    db: impl PgExecutor<'e>,
    token_sha256: &str,
    key: &str,
) -> Result<Option<StoredKey>, sqlx::Error> {
    sqlx::query_as!(
        StoredKey,
        "select request_hash, status, body from api_idempotency where token_sha256 = $1 and key = $2",
        token_sha256,
        key
    )
    .fetch_optional(db)
    .await
}

/// Releases a claimed key that has no answer yet (nothing was done: a retry runs again).
pub async fn release<'e>(
    db: impl PgExecutor<'e>,
    token_sha256: &str,
    key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from api_idempotency where token_sha256 = $1 and key = $2 and status is null",
        token_sha256,
        key
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Stores the answer under a claimed key, unless one is stored already.
pub async fn save_answer(
    conn: &mut PgConnection,
    token_sha256: &str,
    key: &str,
    status: i16,
    body: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update api_idempotency set status = $3, body = $4
         where token_sha256 = $1 and key = $2 and status is null",
        token_sha256,
        key,
        status,
        body
    )
    .execute(conn)
    .await?;
    Ok(())
}
