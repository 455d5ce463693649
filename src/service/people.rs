//! People & access: adding members of staff, their role and communities, passwords (set
//! directly or through a one-time link), locks, sessions, disabling, API tokens and the
//! audit log. Every function is for admins only (others: [`ServiceError::Forbidden`]);
//! every change is written to the audit log in its own transaction (subject `staff`).
//!
//! Secrets (a new API token, a set-password link) are made here, returned once and stored
//! only as SHA-256; a repeated form key answers without them (its stored result never
//! holds a secret). The CLI (`hashar coordinator add`) issues its tokens through
//! [`issue_token_in`] as well, written to the audit log as `cli`.
//!
//! "The last admin cannot be removed": demoting or disabling the only enabled admin is
//! refused (rule `people.last_admin`), with the admins' rows locked so two at once cannot
//! leave none.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::{audit, forms, text, Actor, Once, Role, ServiceError, ServiceResult};
use crate::{
    app::AppState,
    domain::Phone,
    store::{
        self,
        audit::{AuditInsert, AuditRow},
        people::{AuditFilter, Person, Token},
        CommunityId, CoordinatorId,
    },
};

/// How long a set-password link works.
pub const LINK_HOURS: i64 = 24;
/// Longest name.
pub const MAX_NAME: usize = 120;
/// The shortest password (characters), as `hashar coordinator set-password`.
pub const MIN_PASSWORD: usize = 10;
/// The longest password (characters).
pub const MAX_PASSWORD: usize = 200;
/// Most communities one person is given.
pub const MAX_COMMUNITIES: usize = 200;
/// Most people listed, tokens per person, audit rows a page.
pub const MAX_ROWS: i64 = 500;
pub const MAX_TOKENS: i64 = 50;
pub const MAX_AUDIT: i64 = 200;

/// The SHA-256 (hex) of a token or link, as stored.
pub fn sha256_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 32 random bytes, URL-safe base64, after `prefix`.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// An argon2id hash of `password` (argon2's defaults), made off the async threads.
pub async fn hash_password(password: &str) -> ServiceResult<String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(ServiceError::invalid(
            "password",
            "people.password_short",
            format!("a password needs at least {MIN_PASSWORD} characters"),
        ));
    }
    if n > MAX_PASSWORD {
        return Err(ServiceError::invalid(
            "password",
            "people.password_long",
            format!("a password has at most {MAX_PASSWORD} characters"),
        ));
    }
    let password = password.to_owned();
    let hashed = tokio::task::spawn_blocking(move || {
        use argon2::{
            password_hash::{rand_core::OsRng, SaltString},
            Argon2, PasswordHasher,
        };
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    hashed.map_err(|e| {
        tracing::error!(error = %e, "hashing a password failed");
        ServiceError::invalid("password", "people.password_failed", "hashing failed")
    })
}

#[allow(clippy::too_many_arguments)]
async fn write(
    conn: &mut PgConnection,
    who: &str,
    request_id: Option<&str>,
    at: DateTime<Utc>,
    action: &str,
    person: CoordinatorId,
    before: serde_json::Value,
    after: serde_json::Value,
) -> ServiceResult<()> {
    store::audit::insert(
        conn,
        &AuditInsert {
            at,
            actor: who,
            action,
            subject_kind: "staff",
            subject_id: person.0,
            community: None,
            detail: json!({ "before": before, "after": after }),
            request_id,
        },
    )
    .await?;
    Ok(())
}

async fn change(
    conn: &mut PgConnection,
    actor: &Actor,
    at: DateTime<Utc>,
    action: &str,
    person: CoordinatorId,
    before: serde_json::Value,
    after: serde_json::Value,
) -> ServiceResult<()> {
    audit::write(
        conn,
        actor,
        at,
        audit::Change {
            action,
            subject_kind: "staff",
            subject_id: person.0,
            community: None,
            before,
            after,
        },
    )
    .await?;
    Ok(())
}

/// Every member of staff (admins only).
pub async fn list(state: &AppState, actor: &Actor) -> ServiceResult<Vec<Person>> {
    actor.require_admin()?;
    let mut conn = state.pool.acquire().await?;
    Ok(store::people::list(&mut conn, MAX_ROWS).await?)
}

/// A person with their API tokens.
#[derive(Debug, Clone)]
pub struct PersonView {
    pub person: Person,
    pub tokens: Vec<Token>,
}

/// One member of staff and their tokens (admins only; none: not found).
pub async fn person(state: &AppState, actor: &Actor, id: i64) -> ServiceResult<PersonView> {
    actor.require_admin()?;
    let mut conn = state.pool.acquire().await?;
    let person = store::people::get(&mut conn, CoordinatorId(id), false)
        .await?
        .ok_or(ServiceError::NotFound("person"))?;
    let tokens = store::people::tokens(&mut conn, person.id, MAX_TOKENS).await?;
    Ok(PersonView { person, tokens })
}

/// Checks communities for a role: they exist, at most [`MAX_COMMUNITIES`], and a
/// coordinator or officer has at least one. Sorted, without repeats.
async fn communities_for(
    conn: &mut PgConnection,
    role: Role,
    communities: &[i64],
) -> ServiceResult<Vec<i64>> {
    let mut ids: Vec<i64> = communities.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > MAX_COMMUNITIES {
        return Err(ServiceError::invalid(
            "communities",
            "people.communities_many",
            "too many communities",
        ));
    }
    if matches!(role, Role::Coordinator | Role::Officer) && ids.is_empty() {
        return Err(ServiceError::invalid(
            "communities",
            "people.communities_needed",
            "a coordinator or programme officer needs at least one community",
        ));
    }
    let known = store::communities::list(&mut *conn, Some(&ids)).await?;
    if known.len() != ids.len() {
        return Err(ServiceError::invalid(
            "communities",
            "people.community_unknown",
            "no such community",
        ));
    }
    Ok(ids)
}

/// A new person: who they are and how they get a password.
#[derive(Debug, Clone)]
pub struct NewPerson<'a> {
    pub name: &'a str,
    pub phone: &'a str,
    pub role: Role,
    pub communities: &'a [i64],
    /// Set directly; `None`: a one-time link is made.
    pub password: Option<&'a str>,
}

/// What adding a person (or resetting a password) gave: the person, and the one-time
/// link's secret, returned once (`None` on a repeated form, or with a password set).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Added {
    pub id: i64,
    #[serde(skip)]
    pub link: Option<String>,
}

/// Adds a member of staff (admins only), with a password or a one-time link.
pub async fn add(
    state: &AppState,
    actor: &Actor,
    new: &NewPerson<'_>,
    once: Once<'_>,
) -> ServiceResult<Added> {
    actor.require_admin()?;
    let name = text("name", new.name, MAX_NAME)?;
    let phone = Phone::parse(new.phone.trim()).map_err(|_| {
        ServiceError::invalid("phone", "people.phone_invalid", "not a phone number")
    })?;
    let hash = match new.password.filter(|p| !p.is_empty()) {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "staff.add", now).await? {
        return Ok(first);
    }
    let communities = communities_for(&mut tx, new.role, new.communities).await?;
    if store::people::by_phone(&mut tx, &phone).await?.is_some() {
        return Err(ServiceError::conflict(
            "people.phone_taken",
            "someone has this phone number already",
        ));
    }
    let id = store::people::insert(&mut tx, name, &phone, new.role).await?;
    store::people::set_communities(&mut tx, id, &communities).await?;
    change(
        &mut tx,
        actor,
        now,
        "staff.add",
        id,
        json!({}),
        json!({ "name": name, "role": new.role, "communities": communities }),
    )
    .await?;
    let link = match hash {
        Some(hash) => {
            store::people::set_password_hash(&mut tx, id, &hash).await?;
            change(
                &mut tx,
                actor,
                now,
                "staff.password_set",
                id,
                json!({}),
                json!({}),
            )
            .await?;
            None
        }
        None => Some(link_in(&mut tx, actor, id, now).await?),
    };
    let added = Added { id: id.0, link };
    forms::keep(&mut tx, once, &added).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        staff = id.0,
        "person added"
    );
    Ok(added)
}

async fn link_in(
    conn: &mut PgConnection,
    actor: &Actor,
    id: CoordinatorId,
    now: DateTime<Utc>,
) -> ServiceResult<String> {
    let secret = new_secret("");
    let until = now + Duration::hours(LINK_HOURS);
    store::people::add_link(conn, id, &sha256_hex(&secret), &actor.who(), now, until).await?;
    change(
        conn,
        actor,
        now,
        "staff.password_link",
        id,
        json!({}),
        json!({ "until": until }),
    )
    .await?;
    Ok(secret)
}

/// The person `id`, locked for the change; not found when there is none.
async fn target(conn: &mut PgConnection, id: i64) -> ServiceResult<Person> {
    store::people::get(conn, CoordinatorId(id), true)
        .await?
        .ok_or(ServiceError::NotFound("person"))
}

/// Refuses a change that leaves no enabled admin.
async fn keep_an_admin(conn: &mut PgConnection, person: &Person) -> ServiceResult<()> {
    if person.role != Role::Admin || person.disabled_at.is_some() {
        return Ok(());
    }
    let admins = store::people::enabled_admins_for_update(conn).await?;
    if admins.iter().all(|a| *a == person.id) {
        return Err(ServiceError::conflict(
            "people.last_admin",
            "the last admin cannot be removed, disabled or demoted",
        ));
    }
    Ok(())
}

/// Gives `id` a role and communities (admins only); the last admin keeps theirs.
pub async fn set_access(
    state: &AppState,
    actor: &Actor,
    id: i64,
    role: Role,
    communities: &[i64],
    once: Once<'_>,
) -> ServiceResult<()> {
    actor.require_admin()?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "staff.access", now).await? {
        return Ok(first);
    }
    let person = target(&mut tx, id).await?;
    let communities = communities_for(&mut tx, role, communities).await?;
    if role != person.role {
        keep_an_admin(&mut tx, &person).await?;
        store::people::set_role(&mut tx, person.id, role).await?;
        change(
            &mut tx,
            actor,
            now,
            "staff.role",
            person.id,
            json!({ "role": person.role }),
            json!({ "role": role }),
        )
        .await?;
    }
    let before: Vec<i64> = person.communities.iter().map(|c| c.0).collect();
    if before != communities {
        store::people::set_communities(&mut tx, person.id, &communities).await?;
        let granted: Vec<i64> = communities
            .iter()
            .filter(|c| !before.contains(c))
            .copied()
            .collect();
        let removed: Vec<i64> = before
            .iter()
            .filter(|c| !communities.contains(c))
            .copied()
            .collect();
        change(
            &mut tx,
            actor,
            now,
            "staff.communities",
            person.id,
            json!({ "communities": before }),
            json!({ "communities": communities, "granted": granted, "removed": removed }),
        )
        .await?;
    }
    forms::keep(&mut tx, once, &()).await?;
    tx.commit().await?;
    Ok(())
}

/// A simple change to one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Lift the password and PIN locks.
    Unlock,
    /// End every session of theirs.
    SignOutEverywhere,
    /// They can no longer sign in or use a token; their sessions end.
    Disable,
}

impl Act {
    pub fn action(self) -> &'static str {
        match self {
            Act::Unlock => "staff.unlock",
            Act::SignOutEverywhere => "staff.sign_out_everywhere",
            Act::Disable => "staff.disable",
        }
    }
}

/// Unlocks, signs out everywhere or disables `id` (admins only).
pub async fn act(
    state: &AppState,
    actor: &Actor,
    id: i64,
    what: Act,
    once: Once<'_>,
) -> ServiceResult<()> {
    actor.require_admin()?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, what.action(), now).await? {
        return Ok(first);
    }
    let person = target(&mut tx, id).await?;
    let (before, after) = match what {
        Act::Unlock => {
            store::people::unlock(&mut tx, person.id).await?;
            (json!({ "locked_until": person.locked_until }), json!({}))
        }
        Act::SignOutEverywhere => {
            store::people::bump_epoch(&mut tx, person.id).await?;
            (json!({}), json!({}))
        }
        Act::Disable => {
            if person.disabled_at.is_some() {
                return Err(ServiceError::conflict(
                    "people.already_disabled",
                    "this person is disabled already",
                ));
            }
            keep_an_admin(&mut tx, &person).await?;
            store::people::disable(&mut tx, person.id, now).await?;
            (json!({ "disabled": false }), json!({ "disabled": true }))
        }
    };
    change(&mut tx, actor, now, what.action(), person.id, before, after).await?;
    forms::keep(&mut tx, once, &()).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        staff = id,
        action = what.action(),
        "person changed"
    );
    Ok(())
}

/// Sets the password of `id` (`Some`), or makes a new one-time link (`None`; returned in
/// [`Added::link`]); admins only.
pub async fn reset_password(
    state: &AppState,
    actor: &Actor,
    id: i64,
    password: Option<&str>,
    once: Once<'_>,
) -> ServiceResult<Added> {
    actor.require_admin()?;
    let hash = match password.filter(|p| !p.is_empty()) {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "staff.password", now).await? {
        return Ok(first);
    }
    let person = target(&mut tx, id).await?;
    if person.disabled_at.is_some() {
        return Err(ServiceError::conflict(
            "people.already_disabled",
            "this person is disabled",
        ));
    }
    let link = match hash {
        Some(hash) => {
            store::people::set_password_hash(&mut tx, person.id, &hash).await?;
            change(
                &mut tx,
                actor,
                now,
                "staff.password_set",
                person.id,
                json!({}),
                json!({}),
            )
            .await?;
            None
        }
        None => Some(link_in(&mut tx, actor, person.id, now).await?),
    };
    let added = Added { id, link };
    forms::keep(&mut tx, once, &added).await?;
    tx.commit().await?;
    Ok(added)
}

/// A new API token: its id, and the token itself, returned once (`None` on a repeated form).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Issued {
    pub token_id: i64,
    #[serde(skip)]
    pub token: Option<String>,
}

/// Issues a token for `person` in the caller's transaction, audited as `who` (the CLI's
/// `cli`, or an admin's `coordinator:<id>`).
pub async fn issue_token_in(
    conn: &mut PgConnection,
    who: &str,
    request_id: Option<&str>,
    person: CoordinatorId,
    now: DateTime<Utc>,
) -> ServiceResult<Issued> {
    let token = new_secret("hsr_");
    let token_id = store::staff::add_token(conn, person, &sha256_hex(&token)).await?;
    write(
        conn,
        who,
        request_id,
        now,
        "staff.token_issue",
        person,
        json!({}),
        json!({ "token": token_id }),
    )
    .await?;
    Ok(Issued {
        token_id,
        token: Some(token),
    })
}

/// Issues an API token for `id` (admins only; not for a disabled person).
pub async fn issue_token(
    state: &AppState,
    actor: &Actor,
    id: i64,
    once: Once<'_>,
) -> ServiceResult<Issued> {
    actor.require_admin()?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "staff.token_issue", now).await? {
        return Ok(first);
    }
    let person = target(&mut tx, id).await?;
    if person.disabled_at.is_some() {
        return Err(ServiceError::conflict(
            "people.already_disabled",
            "this person is disabled",
        ));
    }
    let issued = issue_token_in(
        &mut tx,
        &actor.who(),
        actor.request_id.as_deref(),
        person.id,
        now,
    )
    .await?;
    forms::keep(&mut tx, once, &issued).await?;
    tx.commit().await?;
    Ok(issued)
}

/// Revokes token `token` of `id` (admins only).
pub async fn revoke_token(
    state: &AppState,
    actor: &Actor,
    id: i64,
    token: i64,
    once: Once<'_>,
) -> ServiceResult<()> {
    actor.require_admin()?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "staff.token_revoke", now).await? {
        return Ok(first);
    }
    let person = target(&mut tx, id).await?;
    if !store::people::revoke_token(&mut tx, person.id, token, now).await? {
        return Err(ServiceError::NotFound("token"));
    }
    change(
        &mut tx,
        actor,
        now,
        "staff.token_revoke",
        person.id,
        json!({ "token": token }),
        json!({ "token": token, "revoked": true }),
    )
    .await?;
    forms::keep(&mut tx, once, &()).await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes token `token` for the CLI (`hashar coordinator revoke`), audited as `cli`
/// about the token's owner.
pub async fn revoke_token_cli(
    pool: &sqlx::PgPool,
    token: i64,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    let mut tx = pool.begin().await?;
    let owner = store::people::token_owner(&mut tx, token)
        .await?
        .ok_or(ServiceError::NotFound("token"))?;
    if !store::people::revoke_token(&mut tx, owner, token, now).await? {
        return Err(ServiceError::NotFound("token"));
    }
    write(
        &mut tx,
        "cli",
        None,
        now,
        "staff.token_revoke",
        owner,
        json!({ "token": token }),
        json!({ "token": token, "revoked": true }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The audit log (admins only), newest first, at most [`MAX_AUDIT`] rows.
pub async fn audit(
    state: &AppState,
    actor: &Actor,
    filter: &AuditFilter<'_>,
) -> ServiceResult<Vec<AuditRow>> {
    actor.require_admin()?;
    let mut conn = state.pool.acquire().await?;
    Ok(store::people::audit(&mut conn, filter, MAX_AUDIT).await?)
}

/// What a set-password link is worth now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// It works: whose it is.
    Open { name: String },
    /// Unknown, used, expired, or its person disabled (one answer for all).
    Closed,
}

async fn open_link(
    conn: &mut PgConnection,
    secret: &str,
    now: DateTime<Utc>,
) -> ServiceResult<Option<store::people::Link>> {
    if secret.is_empty() || secret.len() > 100 {
        return Ok(None);
    }
    let link = store::people::link_for_update(conn, &sha256_hex(secret)).await?;
    Ok(link.filter(|l| l.used_at.is_none() && !l.disabled && l.expires_at > now))
}

/// Whether the link `secret` works now (anyone may ask: the secret is the proof).
pub async fn link_state(state: &AppState, secret: &str) -> ServiceResult<LinkState> {
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    Ok(match open_link(&mut tx, secret, now).await? {
        Some(l) => LinkState::Open { name: l.name },
        None => LinkState::Closed,
    })
}

/// Sets a password through the link `secret`, once: the link is used up, the person's
/// failures and lock are cleared, and their other sessions end. Not found for a link that
/// does not work.
pub async fn use_link(state: &AppState, secret: &str, password: &str) -> ServiceResult<()> {
    let hash = hash_password(password).await?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let link = open_link(&mut tx, secret, now)
        .await?
        .ok_or(ServiceError::NotFound("link"))?;
    store::people::use_link(&mut tx, link.id, now).await?;
    store::people::set_password_hash(&mut tx, link.coordinator, &hash).await?;
    store::people::bump_epoch(&mut tx, link.coordinator).await?;
    write(
        &mut tx,
        &format!("coordinator:{}", link.coordinator.0),
        None,
        now,
        "staff.password_set",
        link.coordinator,
        json!({}),
        json!({ "link": link.id }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(staff = link.coordinator.0, "password set through a link");
    Ok(())
}

/// The communities a person may be given (every one), for the forms.
pub async fn communities(
    state: &AppState,
    actor: &Actor,
) -> ServiceResult<Vec<store::communities::Community>> {
    actor.require_admin()?;
    Ok(store::communities::list(&state.pool, None).await?)
}

/// The community ids of `person`, as plain numbers.
pub fn community_ids(person: &Person) -> Vec<i64> {
    person
        .communities
        .iter()
        .map(|c: &CommunityId| c.0)
        .collect()
}
