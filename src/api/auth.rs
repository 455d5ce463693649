//! Bearer tokens: created by `hashar coordinator add`, shown once, stored as SHA-256; a
//! token's holder acts as a `service::Actor`.

use axum::{
    extract::FromRequestParts,
    http::{request::Parts, Method},
};
use sqlx::PgPool;

use super::error::ApiError;
use crate::{
    app::AppState,
    domain::Phone,
    service::{people, Actor, Role, ServiceError},
    store::staff,
};

/// Who is calling: the service layer's [`Actor`] (staff id, role, communities), built from
/// a bearer token. Handlers call `auth.require(community)`, `auth.may(community)` or filter
/// lists with `auth.scope()` (the actor's rules, answered as API errors); the money routes
/// hand the actor itself (`&auth`) to `service::money`.
#[derive(Debug, Clone)]
pub struct Auth(pub Actor);

impl std::ops::Deref for Auth {
    type Target = Actor;

    fn deref(&self) -> &Actor {
        &self.0
    }
}

impl Auth {
    /// 403 unless this actor may act on `community`.
    pub fn require(&self, community: i64) -> Result<(), ApiError> {
        Ok(self.0.require(community)?)
    }

    /// 403 unless an admin is calling (global data: communities, tips, rates).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        Ok(self.0.require_admin()?)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Forbidden => ApiError::Forbidden,
            ServiceError::NotFound(what) => ApiError::NotFound(what),
            ServiceError::Invalid { field, message, .. } => ApiError::Invalid { field, message },
            ServiceError::Conflict { message, .. } => ApiError::Conflict(message),
            ServiceError::Gone { message, .. } => ApiError::Gone(message),
            ServiceError::TooMany {
                message,
                retry_after,
                ..
            } => ApiError::TooManyRequests {
                message,
                retry_after,
            },
            ServiceError::Busy(message) => ApiError::Busy(message),
            ServiceError::Db(e) => ApiError::Internal(e),
            ServiceError::Encode(e) => ApiError::Encode(e),
        }
    }
}

pub fn token_hash(token: &str) -> String {
    people::sha256_hex(token)
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    /// The token's holder; a programme officer (read-only) is refused every request but a
    /// read (403).
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Auth, ApiError> {
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let holder = staff::token_holder(&state.pool, &token_hash(token))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let actor = Actor::new(holder);
        if actor.read_only() && !matches!(parts.method, Method::GET | Method::HEAD) {
            return Err(ApiError::Forbidden);
        }
        Ok(Auth(actor))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("phone: {0}")]
    Phone(#[from] crate::domain::PhoneError),
    #[error("no community with code {0:?}")]
    UnknownCommunity(String),
    #[error("a coordinator needs --admin or at least one --community")]
    NoScope,
    #[error("a programme officer needs at least one --community")]
    OfficerScope,
    #[error("no token with id {0}, or it is already revoked")]
    NoToken(i64),
    #[error("{0}")]
    Service(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A new coordinator (or a new token for an existing one, by phone) and its token, which
/// is returned here once and never stored in clear; an admin if `admin`.
pub async fn add_coordinator(
    pool: &PgPool,
    name: &str,
    phone: &str,
    community_codes: &[String],
    admin: bool,
) -> Result<(i64, i64, String), CoordinatorError> {
    add_staff(
        pool,
        name,
        phone,
        community_codes,
        admin.then_some(Role::Admin),
    )
    .await
}

/// A new member of staff with `role` (a coordinator when `None`; an existing one, by
/// phone, keeps theirs) and their new token, returned here once. Coordinators and
/// programme officers need a community; admins and counsellors see all.
pub async fn add_staff(
    pool: &PgPool,
    name: &str,
    phone: &str,
    community_codes: &[String],
    role: Option<Role>,
) -> Result<(i64, i64, String), CoordinatorError> {
    let phone = Phone::parse(phone)?;
    match role {
        None | Some(Role::Coordinator) if community_codes.is_empty() => {
            return Err(CoordinatorError::NoScope)
        }
        Some(Role::Officer) if community_codes.is_empty() => {
            return Err(CoordinatorError::OfficerScope)
        }
        _ => {}
    }
    let mut tx = pool.begin().await?;
    let id = staff::upsert_coordinator(&mut tx, name, &phone, role).await?;
    for code in community_codes {
        let community = staff::community_by_code(&mut tx, code)
            .await?
            .ok_or_else(|| CoordinatorError::UnknownCommunity(code.clone()))?;
        staff::grant_community(&mut tx, id, community).await?;
    }
    let issued = people::issue_token_in(&mut tx, "cli", None, id, chrono::Utc::now())
        .await
        .map_err(|e| match e {
            ServiceError::Db(e) => CoordinatorError::Db(e),
            other => CoordinatorError::Service(other.to_string()),
        })?;
    tx.commit().await?;
    let token = issued.token.unwrap_or_default();
    Ok((id.0, issued.token_id, token))
}

/// Revokes token `token_id` (audited as `cli`).
pub async fn revoke_token(pool: &PgPool, token_id: i64) -> Result<(), CoordinatorError> {
    match people::revoke_token_cli(pool, token_id, chrono::Utc::now()).await {
        Ok(()) => Ok(()),
        Err(ServiceError::NotFound(_)) => Err(CoordinatorError::NoToken(token_id)),
        Err(ServiceError::Db(e)) => Err(CoordinatorError::Db(e)),
        Err(other) => Err(CoordinatorError::Service(other.to_string())),
    }
}
