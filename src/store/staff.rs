//! Coordinators (the programme's staff): their API tokens (only a SHA-256 of each is
//! stored), the communities they may act on, and the PIN of the coordinator phone menu with
//! its failure count and growing locks (columns, so they survive a restart).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::{CommunityId, CoordinatorId};
use crate::domain::Phone;

/// What a member of staff may do (`coordinators.role`): an admin everything; a
/// coordinator their communities; a counsellor every community but no money; a programme
/// officer read their communities, change nothing.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    sqlx::Type,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Coordinator,
    Counsellor,
    Officer,
}

text_values!(Role {
    Admin => "admin",
    Coordinator => "coordinator",
    Counsellor => "counsellor",
    Officer => "officer",
});

/// Who holds an API token: the coordinator, their role, and their communities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHolder {
    pub coordinator: CoordinatorId,
    pub role: Role,
    /// The communities they may act on (none for an admin who was given none).
    pub communities: Vec<CommunityId>,
}

/// The holder of the token whose SHA-256 (hex) is `token_sha256`, unless it is revoked or
/// its holder is disabled.
pub async fn token_holder<'e>(
    db: impl PgExecutor<'e>,
    token_sha256: &str,
) -> Result<Option<TokenHolder>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select c.id as "coordinator: CoordinatorId", c.role as "role: Role",
                  coalesce(array_agg(cc.community_id) filter (where cc.community_id is not null), '{}')
                      as "communities!: Vec<i64>"
           from api_tokens t
           join coordinators c on c.id = t.coordinator_id
           left join coordinator_communities cc on cc.coordinator_id = c.id
           where t.token_sha256 = $1 and t.revoked_at is null and c.disabled_at is null
           group by c.id, c.role"#,
        token_sha256
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| TokenHolder {
        coordinator: r.coordinator,
        role: r.role,
        communities: r.communities.into_iter().map(CommunityId).collect(),
    }))
}

/// A member of staff by phone: a new one (a coordinator unless `role` says otherwise), or
/// the one with this phone renamed and given `role` if one is given (an admin is never made
/// anything else again here). `is_admin` follows the role.
pub async fn upsert_coordinator(
    conn: &mut PgConnection,
    name: &str,
    phone: &Phone,
    role: Option<Role>,
) -> Result<CoordinatorId, sqlx::Error> {
    sqlx::query_scalar!(
        r#"insert into coordinators (name, phone, role, is_admin)
           values ($1, $2, coalesce($3::text, 'coordinator'), coalesce($3::text, 'coordinator') = 'admin')
           on conflict (phone) do update set
               name = excluded.name,
               role = case when coordinators.role = 'admin' then 'admin'
                           else coalesce($3::text, coordinators.role) end,
               is_admin = coordinators.role = 'admin' or coalesce($3::text, coordinators.role) = 'admin'
           returning id as "id: CoordinatorId""#,
        name,
        phone.as_str(),
        role.map(Role::as_str)
    )
    .fetch_one(conn)
    .await
}

/// The community a coordinator is given by its code, if there is one.
pub async fn community_by_code(
    conn: &mut PgConnection,
    code: &str,
) -> Result<Option<CommunityId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select id as "id: CommunityId" from communities where code = $1"#,
        code
    )
    .fetch_optional(conn)
    .await
}

/// Lets `coordinator` act on `community` (nothing if they already may).
pub async fn grant_community(
    conn: &mut PgConnection,
    coordinator: CoordinatorId,
    community: CommunityId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into coordinator_communities values ($1, $2) on conflict do nothing",
        coordinator as CoordinatorId,
        community as CommunityId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores a new token of `coordinator` by its SHA-256 (hex); returns the token's id.
pub async fn add_token(
    conn: &mut PgConnection,
    coordinator: CoordinatorId,
    token_sha256: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into api_tokens (coordinator_id, token_sha256) values ($1, $2) returning id",
        coordinator as CoordinatorId,
        token_sha256
    )
    .fetch_one(conn)
    .await
}

/// Revokes token `id`; `false` when there is no such token or it already is revoked.
pub async fn revoke_token<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update api_tokens set revoked_at = now() where id = $1 and revoked_at is null",
        id
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// The coordinator behind a phone and whether they are an admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneCoordinator {
    pub id: CoordinatorId,
    pub admin: bool,
}

/// The coordinator whose phone is `phone`, if any and if their role handles money and
/// notices from the phone menu (an admin or a coordinator: a counsellor records no money and
/// a programme officer changes nothing, so the menu's effects find nothing for them).
pub async fn coordinator_by_phone(
    conn: &mut PgConnection,
    phone: &Phone,
) -> Result<Option<PhoneCoordinator>, sqlx::Error> {
    sqlx::query_as!(
        PhoneCoordinator,
        r#"select id as "id: CoordinatorId", is_admin as admin from coordinators
           where phone = $1 and role in ('admin', 'coordinator')"#,
        phone.as_str()
    )
    .fetch_optional(conn)
    .await
}

/// A coordinator's PIN and where its failures stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinState {
    pub id: CoordinatorId,
    pub name: String,
    /// The argon2 hash; `None` until a PIN is set.
    pub pin_hash: Option<String>,
    /// Wrong PINs since the last right one or lock.
    pub failures: i32,
    pub locked_until: Option<DateTime<Utc>>,
    /// Locks in a row (a right PIN starts again at 0).
    pub lockouts: i32,
}

/// The PIN state of the coordinator whose phone is `phone`, locked (`for update`) until
/// the caller's transaction ends, so that concurrent tries are counted one after another.
pub async fn pin_state_for_update(
    conn: &mut PgConnection,
    phone: &Phone,
) -> Result<Option<PinState>, sqlx::Error> {
    sqlx::query_as!(
        PinState,
        r#"select id as "id: CoordinatorId", name, pin_hash, pin_failures as failures,
                  locked_until, pin_lockouts as lockouts
           from coordinators where phone = $1 for update"#,
        phone.as_str()
    )
    .fetch_optional(conn)
    .await
}

/// Replaces a coordinator's PIN hash (a PIN change after the right PIN), leaving the
/// failure count and locks as they are.
pub async fn change_pin_hash(
    conn: &mut PgConnection,
    id: CoordinatorId,
    pin_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update coordinators set pin_hash = $2 where id = $1",
        id as CoordinatorId,
        pin_hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A right PIN: no failures, no lock, and the row of locks starts again.
pub async fn pin_right(conn: &mut PgConnection, id: CoordinatorId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update coordinators set pin_failures = 0, locked_until = null, pin_lockouts = 0 where id = $1",
        id as CoordinatorId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A wrong PIN that does not lock: the failures so far.
pub async fn pin_wrong(
    conn: &mut PgConnection,
    id: CoordinatorId,
    failures: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update coordinators set pin_failures = $2 where id = $1",
        id as CoordinatorId,
        failures
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A wrong PIN that locks: locked until `until`, the `lockouts`th lock in a row, and the
/// failures counted again from 0.
pub async fn pin_locked(
    conn: &mut PgConnection,
    id: CoordinatorId,
    until: DateTime<Utc>,
    lockouts: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update coordinators set pin_failures = 0, locked_until = $2, pin_lockouts = $3 where id = $1",
        id as CoordinatorId,
        until,
        lockouts
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The numbers told of a PIN lock: the locked coordinator's first, then every admin's.
pub async fn pin_lock_alert_phones(
    conn: &mut PgConnection,
    coordinator: CoordinatorId,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "select phone from coordinators where id = $1 or is_admin order by id <> $1, id",
        coordinator as CoordinatorId
    )
    .fetch_all(conn)
    .await
}

/// Sets (or replaces) the PIN hash of the coordinator whose phone is `phone`, with no
/// failures and no lock; `false` when there is no such coordinator.
pub async fn set_pin_hash<'e>(
    db: impl PgExecutor<'e>,
    phone: &Phone,
    pin_hash: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update coordinators set pin_hash = $2, pin_failures = 0, locked_until = null, pin_lockouts = 0 where phone = $1",
        phone.as_str(),
        pin_hash
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// A member of staff's console password and where its failures stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordState {
    pub id: CoordinatorId,
    /// The argon2id hash; `None` until a password is set.
    pub password_hash: Option<String>,
    /// Wrong passwords since the last right one or lock.
    pub failures: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub disabled: bool,
    /// The epoch a new session of theirs holds.
    pub session_epoch: i32,
}

/// The password state of the member of staff whose phone is `phone`, locked (`for update`)
/// until the caller's transaction ends, so that concurrent tries are counted one by one.
pub async fn password_state_for_update(
    conn: &mut PgConnection,
    phone: &Phone,
) -> Result<Option<PasswordState>, sqlx::Error> {
    sqlx::query_as!(
        PasswordState,
        r#"select id as "id: CoordinatorId", password_hash, password_failures as failures,
                  password_locked_until as locked_until, disabled_at is not null as "disabled!",
                  session_epoch
           from coordinators where phone = $1 for update"#,
        phone.as_str()
    )
    .fetch_optional(conn)
    .await
}

/// A right password: no failures, no lock.
pub async fn password_right(conn: &mut PgConnection, id: CoordinatorId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update coordinators set password_failures = 0, password_locked_until = null where id = $1",
        id as CoordinatorId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A wrong password: the failures so far, and the lock if this one locks (the count then
/// starts again at 0).
pub async fn password_wrong(
    conn: &mut PgConnection,
    id: CoordinatorId,
    failures: i32,
    locked_until: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update coordinators set password_failures = $2, password_locked_until = $3 where id = $1",
        id as CoordinatorId,
        failures,
        locked_until
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets (or replaces) the console password hash of the member of staff whose phone is
/// `phone`, with no failures and no lock; `false` when there is no such person.
pub async fn set_password_hash<'e>(
    db: impl PgExecutor<'e>,
    phone: &Phone,
    password_hash: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update coordinators set password_hash = $2, password_failures = 0, password_locked_until = null where phone = $1",
        phone.as_str(),
        password_hash
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// A signed-in member of staff as each console request re-reads them (one query by primary
/// key): a session of another epoch, or of someone disabled, is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPerson {
    pub id: CoordinatorId,
    pub name: String,
    pub role: Role,
    pub communities: Vec<CommunityId>,
    pub session_epoch: i32,
    pub disabled: bool,
}

/// The member of staff `id` for a console request, if they exist.
pub async fn session_person<'e>(
    db: impl PgExecutor<'e>,
    id: CoordinatorId,
) -> Result<Option<SessionPerson>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select c.id as "id: CoordinatorId", c.name, c.role as "role: Role", c.session_epoch,
                  c.disabled_at is not null as "disabled!",
                  coalesce((select array_agg(cc.community_id order by cc.community_id)
                            from coordinator_communities cc where cc.coordinator_id = c.id), '{}')
                      as "communities!: Vec<i64>"
           from coordinators c where c.id = $1"#,
        id as CoordinatorId
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| SessionPerson {
        id: r.id,
        name: r.name,
        role: r.role,
        communities: r.communities.into_iter().map(CommunityId).collect(),
        session_epoch: r.session_epoch,
        disabled: r.disabled,
    }))
}

/// "Sign out everywhere": the member of staff's session epoch goes up by one, so every
/// session of theirs (which holds the old epoch) is over at its next request. Returns the
/// new epoch.
pub async fn bump_session_epoch<'e>(
    db: impl PgExecutor<'e>,
    id: CoordinatorId,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar!(
        "update coordinators set session_epoch = session_epoch + 1 where id = $1 returning session_epoch",
        id as CoordinatorId
    )
    .fetch_optional(db)
    .await
}

/// A console session row (`tower_sessions.session`): the id is the cookie's value, `data`
/// the encoded record. Inserts it unless the id is taken; `false` when it is.
pub async fn session_insert<'e>(
    db: impl PgExecutor<'e>,
    id: &str,
    data: &[u8],
    expiry: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "insert into tower_sessions.session (id, data, expiry_date) values ($1, $2, $3)
                 on conflict (id) do nothing",
        id,
        data,
        expiry
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Writes a console session row, new or not.
pub async fn session_save<'e>(
    db: impl PgExecutor<'e>,
    id: &str,
    data: &[u8],
    expiry: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into tower_sessions.session (id, data, expiry_date) values ($1, $2, $3)
             on conflict (id) do update set data = excluded.data, expiry_date = excluded.expiry_date",
        id,
        data,
        expiry
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A console session's data, unless it is unknown or expired.
pub async fn session_load<'e>(
    db: impl PgExecutor<'e>,
    id: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar!(
        "select data from tower_sessions.session where id = $1 and expiry_date > now()",
        id
    )
    .fetch_optional(db)
    .await
}

/// Deletes a console session (sign-out).
pub async fn session_delete<'e>(db: impl PgExecutor<'e>, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from tower_sessions.session where id = $1", id)
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes the expired console sessions (the one table with deletes).
pub async fn delete_expired_sessions<'e>(db: impl PgExecutor<'e>) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from tower_sessions.session where expiry_date < now()")
        .execute(db)
        .await?;
    Ok(())
}

/// The names of the members of staff `ids` (those that exist), for "who" on a page.
pub async fn names_of<'e>(
    db: impl PgExecutor<'e>,
    ids: &[i64],
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let rows = sqlx::query!("select id, name from coordinators where id = any($1)", ids)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.name)).collect())
}
