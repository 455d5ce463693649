//! People & access (the console's admin page): members of staff as the list and a
//! person's page show them, changes to role, communities, password, lock, sessions and
//! disabling, their API tokens, the one-time set-password links (`password_links`, only a
//! SHA-256 kept) and the audit log by person, action and date.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{audit::AuditRow, CommunityId, CoordinatorId};
use crate::domain::Phone;
pub use crate::store::staff::Role;

/// A member of staff as People & access shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: CoordinatorId,
    pub name: String,
    /// E.164, shown masked.
    pub phone: String,
    pub role: Role,
    pub communities: Vec<CommunityId>,
    /// Their last console sign-in (from the audit log).
    pub last_sign_in: Option<DateTime<Utc>>,
    pub locked_until: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub has_password: bool,
}

macro_rules! person {
    ($r:expr) => {{
        let r = $r;
        Person {
            id: r.id,
            name: r.name,
            phone: r.phone,
            role: r.role,
            communities: r.communities.into_iter().map(CommunityId).collect(),
            last_sign_in: r.last_sign_in,
            locked_until: r.locked_until,
            disabled_at: r.disabled_at,
            has_password: r.has_password,
        }
    }};
}

/// Every member of staff (at most `limit`), the enabled first, by name.
pub async fn list(conn: &mut PgConnection, limit: i64) -> Result<Vec<Person>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select c.id as "id: CoordinatorId", c.name, c.phone, c.role as "role: Role",
                  coalesce((select array_agg(cc.community_id order by cc.community_id)
                            from coordinator_communities cc where cc.coordinator_id = c.id), '{}')
                      as "communities!: Vec<i64>",
                  (select max(a.at) from audit_log a where a.subject_kind = 'staff'
                      and a.subject_id = c.id and a.action = 'staff.sign_in') as last_sign_in,
                  c.password_locked_until as locked_until, c.disabled_at,
                  c.password_hash is not null as "has_password!"
           from coordinators c
           order by c.disabled_at is not null, lower(c.name), c.id
           limit $1"#,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| person!(r)).collect())
}

/// The member of staff `id`, locked (`for update`) until the caller's transaction ends
/// when `lock`.
pub async fn get(
    conn: &mut PgConnection,
    id: CoordinatorId,
    lock: bool,
) -> Result<Option<Person>, sqlx::Error> {
    if lock {
        sqlx::query!(
            "select id from coordinators where id = $1 for update",
            id as CoordinatorId
        )
        .fetch_optional(&mut *conn)
        .await?;
    }
    let row = sqlx::query!(
        r#"select c.id as "id: CoordinatorId", c.name, c.phone, c.role as "role: Role",
                  coalesce((select array_agg(cc.community_id order by cc.community_id)
                            from coordinator_communities cc where cc.coordinator_id = c.id), '{}')
                      as "communities!: Vec<i64>",
                  (select max(a.at) from audit_log a where a.subject_kind = 'staff'
                      and a.subject_id = c.id and a.action = 'staff.sign_in') as last_sign_in,
                  c.password_locked_until as locked_until, c.disabled_at,
                  c.password_hash is not null as "has_password!"
           from coordinators c where c.id = $1"#,
        id as CoordinatorId
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| person!(r)))
}

/// The member of staff with this phone, if any.
pub async fn by_phone(
    conn: &mut PgConnection,
    phone: &Phone,
) -> Result<Option<CoordinatorId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select id as "id: CoordinatorId" from coordinators where phone = $1"#,
        phone.as_str()
    )
    .fetch_optional(conn)
    .await
}

/// A new member of staff (the phone must be free).
pub async fn insert(
    conn: &mut PgConnection,
    name: &str,
    phone: &Phone,
    role: Role,
) -> Result<CoordinatorId, sqlx::Error> {
    sqlx::query_scalar!(
        r#"insert into coordinators (name, phone, role, is_admin) values ($1, $2, $3, $3 = 'admin')
           returning id as "id: CoordinatorId""#,
        name,
        phone.as_str(),
        role.as_str()
    )
    .fetch_one(conn)
    .await
}

/// The enabled admins, each row locked until the caller's transaction ends (so that two
/// demotions at once cannot leave none).
pub async fn enabled_admins_for_update(
    conn: &mut PgConnection,
) -> Result<Vec<CoordinatorId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select id as "id: CoordinatorId" from coordinators
           where role = 'admin' and disabled_at is null order by id for update"#
    )
    .fetch_all(conn)
    .await
}

/// Gives `id` the role `role` (`is_admin` follows).
pub async fn set_role(
    conn: &mut PgConnection,
    id: CoordinatorId,
    role: Role,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update coordinators set role = $2, is_admin = $2 = 'admin' where id = $1",
        id as CoordinatorId,
        role.as_str()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes `communities` the communities of `id` (others are taken away).
pub async fn set_communities(
    conn: &mut PgConnection,
    id: CoordinatorId,
    communities: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from coordinator_communities where coordinator_id = $1 and not (community_id = any($2))",
        id as CoordinatorId,
        communities
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "insert into coordinator_communities (coordinator_id, community_id)
         select $1, c from unnest($2::bigint[]) c on conflict do nothing",
        id as CoordinatorId,
        communities
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the password hash of `id`, with no failures and no lock.
pub async fn set_password_hash(
    conn: &mut PgConnection,
    id: CoordinatorId,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update coordinators set password_hash = $2, password_failures = 0, password_locked_until = null where id = $1",
        id as CoordinatorId,
        hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Lifts the password lock (and the PIN lock) of `id`.
pub async fn unlock(conn: &mut PgConnection, id: CoordinatorId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update coordinators set password_failures = 0, password_locked_until = null,
                pin_failures = 0, locked_until = null where id = $1",
        id as CoordinatorId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Disables `id` at `at` (their sessions end: the epoch goes up).
pub async fn disable(
    conn: &mut PgConnection,
    id: CoordinatorId,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update coordinators set disabled_at = $2, session_epoch = session_epoch + 1
         where id = $1 and disabled_at is null",
        id as CoordinatorId,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Every session of `id` ends at its next request (the epoch goes up by one).
pub async fn bump_epoch(conn: &mut PgConnection, id: CoordinatorId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update coordinators set session_epoch = session_epoch + 1 where id = $1",
        id as CoordinatorId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An API token as listed (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: i64,
    /// The first characters of the token's SHA-256, to tell tokens apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The API tokens of `id`, newest first (at most `limit`).
pub async fn tokens(
    conn: &mut PgConnection,
    id: CoordinatorId,
    limit: i64,
) -> Result<Vec<Token>, sqlx::Error> {
    sqlx::query_as!(
        Token,
        r#"select id, left(token_sha256, 8) as "prefix!", created_at, revoked_at
           from api_tokens where coordinator_id = $1 order by created_at desc, id desc limit $2"#,
        id as CoordinatorId,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Revokes token `token` of `id`; `false` when it is not theirs or already revoked.
pub async fn revoke_token(
    conn: &mut PgConnection,
    id: CoordinatorId,
    token: i64,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update api_tokens set revoked_at = $3 where id = $2 and coordinator_id = $1 and revoked_at is null",
        id as CoordinatorId,
        token,
        at
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// The owner of token `token`, if it exists.
pub async fn token_owner(
    conn: &mut PgConnection,
    token: i64,
) -> Result<Option<CoordinatorId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select coordinator_id as "id: CoordinatorId" from api_tokens where id = $1"#,
        token
    )
    .fetch_optional(conn)
    .await
}

/// Stores a set-password link of `id` by its SHA-256 (hex); returns its id.
pub async fn add_link(
    conn: &mut PgConnection,
    id: CoordinatorId,
    token_sha256: &str,
    created_by: &str,
    at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into password_links (coordinator_id, token_sha256, created_by, created_at, expires_at)
         values ($1, $2, $3, $4, $5) returning id",
        id as CoordinatorId,
        token_sha256,
        created_by,
        at,
        expires_at
    )
    .fetch_one(conn)
    .await
}

/// A set-password link as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: i64,
    pub coordinator: CoordinatorId,
    pub name: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub disabled: bool,
}

/// The link whose SHA-256 is `token_sha256`, locked until the caller's transaction ends.
pub async fn link_for_update(
    conn: &mut PgConnection,
    token_sha256: &str,
) -> Result<Option<Link>, sqlx::Error> {
    sqlx::query_as!(
        Link,
        r#"select l.id, l.coordinator_id as "coordinator: CoordinatorId", c.name, l.expires_at,
                  l.used_at, c.disabled_at is not null as "disabled!"
           from password_links l join coordinators c on c.id = l.coordinator_id
           where l.token_sha256 = $1 for update of l"#,
        token_sha256
    )
    .fetch_optional(conn)
    .await
}

/// Marks link `id` used at `at`.
pub async fn use_link(
    conn: &mut PgConnection,
    id: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update password_links set used_at = $2 where id = $1 and used_at is null",
        id,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What the audit tab asks for: all filters optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter<'a> {
    /// Rows by or about this member of staff.
    pub person: Option<CoordinatorId>,
    /// Actions starting with this (e.g. `staff.` or `receipt.record`).
    pub action: Option<&'a str>,
    /// Rows at or after…
    pub from: Option<DateTime<Utc>>,
    /// …and before.
    pub to: Option<DateTime<Utc>>,
}

/// The audit log as the filter asks, newest first, at most `limit` rows.
pub async fn audit(
    conn: &mut PgConnection,
    filter: &AuditFilter<'_>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let person = filter.person.map(|p| p.0);
    let actor = person.map(|p| format!("coordinator:{p}"));
    sqlx::query_as!(
        AuditRow,
        r#"select id, at, actor, action, subject_kind, subject_id,
                  community_id as "community_id: CommunityId", detail, request_id
           from audit_log
           where ($1::bigint is null or actor = $2 or (subject_kind = 'staff' and subject_id = $1))
             and ($3::text is null or starts_with(action, $3))
             and ($4::timestamptz is null or at >= $4)
             and ($5::timestamptz is null or at < $5)
           order by at desc, id desc limit $6"#,
        person,
        actor,
        filter.action,
        filter.from,
        filter.to,
        limit
    )
    .fetch_all(conn)
    .await
}
