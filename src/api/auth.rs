//! Bearer tokens: created by `hashar coordinator add`, shown once, stored as SHA-256.

use axum::{extract::FromRequestParts, http::request::Parts};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::error::ApiError;
use crate::{app::AppState, domain::Phone, store::staff};

/// Who is calling: an admin (everything) or a coordinator (their communities only).
#[derive(Debug, Clone)]
pub struct Auth {
    pub coordinator_id: i64,
    pub admin: bool,
    pub communities: Vec<i64>,
}

impl Auth {
    pub fn may(&self, community: i64) -> bool {
        self.admin || self.communities.contains(&community)
    }

    /// 403 unless this coordinator may act on `community`.
    pub fn require(&self, community: i64) -> Result<(), ApiError> {
        if self.may(community) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// 403 unless an admin is calling (global data: communities, tips, rates).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// How rows this coordinator writes name who did it (`recorded_by`, `created_by`).
    pub fn who(&self) -> String {
        format!("coordinator:{}", self.coordinator_id)
    }

    /// The communities a list may show: `None` for all (admins).
    pub fn scope(&self) -> Option<&[i64]> {
        (!self.admin).then_some(self.communities.as_slice())
    }
}

pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
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

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Auth, ApiError> {
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let holder = staff::token_holder(&state.pool, &token_hash(token))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Auth {
            coordinator_id: holder.coordinator.0,
            admin: holder.admin,
            communities: holder.communities.into_iter().map(|c| c.0).collect(),
        })
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
    #[error("no token with id {0}, or it is already revoked")]
    NoToken(i64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A new coordinator (or a new token for an existing one, by phone) and its token, which
/// is returned here once and never stored in clear.
pub async fn add_coordinator(
    pool: &PgPool,
    name: &str,
    phone: &str,
    community_codes: &[String],
    admin: bool,
) -> Result<(i64, i64, String), CoordinatorError> {
    let phone = Phone::parse(phone)?;
    if !admin && community_codes.is_empty() {
        return Err(CoordinatorError::NoScope);
    }
    let mut tx = pool.begin().await?;
    let id = staff::upsert_coordinator(&mut tx, name, &phone, admin).await?;
    for code in community_codes {
        let community = staff::community_by_code(&mut tx, code)
            .await?
            .ok_or_else(|| CoordinatorError::UnknownCommunity(code.clone()))?;
        staff::grant_community(&mut tx, id, community).await?;
    }
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let token = format!(
        "hsr_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let token_id = staff::add_token(&mut tx, id, &token_hash(&token)).await?;
    tx.commit().await?;
    Ok((id.0, token_id, token))
}

pub async fn revoke_token(pool: &PgPool, token_id: i64) -> Result<(), CoordinatorError> {
    if staff::revoke_token(pool, token_id).await? {
        Ok(())
    } else {
        Err(CoordinatorError::NoToken(token_id))
    }
}
