//! Bearer tokens: created by `hashar coordinator add`, shown once, stored as SHA-256.

use axum::{extract::FromRequestParts, http::request::Parts};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

use super::error::ApiError;
use crate::{app::AppState, domain::Phone};

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
        let row = sqlx::query(
            "select c.id, c.is_admin,
                    coalesce(array_agg(cc.community_id) filter (where cc.community_id is not null), '{}') as communities
             from api_tokens t
             join coordinators c on c.id = t.coordinator_id
             left join coordinator_communities cc on cc.coordinator_id = c.id
             where t.token_sha256 = $1 and t.revoked_at is null
             group by c.id, c.is_admin",
        )
        .bind(token_hash(token))
        .fetch_optional(&state.pool)
        .await?
        .ok_or(ApiError::Unauthorized)?;
        Ok(Auth {
            coordinator_id: row.get(0),
            admin: row.get(1),
            communities: row.get(2),
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
    let id: i64 = sqlx::query_scalar(
        "insert into coordinators (name, phone, is_admin) values ($1, $2, $3)
         on conflict (phone) do update set name = excluded.name, is_admin = coordinators.is_admin or excluded.is_admin
         returning id",
    )
    .bind(name)
    .bind(phone.as_str())
    .bind(admin)
    .fetch_one(&mut *tx)
    .await?;
    for code in community_codes {
        let community: Option<i64> =
            sqlx::query_scalar("select id from communities where code = $1")
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?;
        let community =
            community.ok_or_else(|| CoordinatorError::UnknownCommunity(code.clone()))?;
        sqlx::query("insert into coordinator_communities values ($1, $2) on conflict do nothing")
            .bind(id)
            .bind(community)
            .execute(&mut *tx)
            .await?;
    }
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let token = format!(
        "hsr_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let token_id: i64 = sqlx::query_scalar(
        "insert into api_tokens (coordinator_id, token_sha256) values ($1, $2) returning id",
    )
    .bind(id)
    .bind(token_hash(&token))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((id, token_id, token))
}

pub async fn revoke_token(pool: &PgPool, token_id: i64) -> Result<(), CoordinatorError> {
    let done = sqlx::query(
        "update api_tokens set revoked_at = now() where id = $1 and revoked_at is null",
    )
    .bind(token_id)
    .execute(pool)
    .await?
    .rows_affected();
    if done == 1 {
        Ok(())
    } else {
        Err(CoordinatorError::NoToken(token_id))
    }
}
