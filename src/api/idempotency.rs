//! `Idempotency-Key` on every admin-API POST, as one middleware around the API router.
//!
//! A client sends any unique string (a UUID, 1 to 200 visible ASCII characters) with a
//! POST and the same string again when it retries. Per bearer token:
//! - the first request with a key claims it (a row in `api_idempotency`, status unset) and
//!   runs; its answer (status and body) is stored under the key;
//! - a later request with the same key and the same method, path and body gets the stored
//!   answer again (header `Idempotent-Replayed: true`), and nothing runs twice;
//! - the same key with a different request is refused with 422;
//! - while the first request still runs, another with its key gets 409 (retry later).
//!
//! Answers 401, 429 and 5xx are not stored (the claim is released so a retry runs again:
//! nothing was done). Handlers that record money take the [`Idempotent`] extractor, which makes the
//! key required there (422 without it) and lets them store their answer in the same
//! transaction as the money itself — so a crash between the two can never leave money
//! recorded without its answer (a retry would then record it again). Keys expire after
//! [`TTL_HOURS`] (pruned on the next keyed POST).
//!
//! Written by hand: no kept crate offers this for axum + PostgreSQL; it follows the
//! pattern of "Zero To Production" (claim with `insert … on conflict do nothing`, then save
//! the response).

use axum::{
    body::{Body, Bytes},
    extract::{FromRequestParts, Request, State},
    http::{header, request::Parts, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use super::{
    auth::{bearer, token_hash},
    error::ApiError,
};
use crate::{app::AppState, store::idempotency};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The header on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 200;
/// Largest request body a keyed POST may have (every admin-API body is far smaller).
pub const MAX_BODY: usize = 64 * 1024;
/// Largest answer stored (admin-API answers to POSTs are single objects).
const MAX_ANSWER: usize = 1024 * 1024;
/// How long a key is remembered.
pub const TTL_HOURS: i64 = 24;

/// A key this request claimed; handlers save their answer with it.
#[derive(Debug, Clone)]
pub struct Claim {
    token_sha256: String,
    key: String,
}

impl Claim {
    /// Stores the answer in the caller's transaction, the one that records the effect, so
    /// both commit or neither does.
    pub async fn save(
        &self,
        conn: &mut PgConnection,
        status: StatusCode,
        body: &impl Serialize,
    ) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(body)?;
        store(conn, self, status, &bytes).await?;
        Ok(())
    }
}

async fn store(
    conn: &mut PgConnection,
    claim: &Claim,
    status: StatusCode,
    body: &[u8],
) -> Result<(), sqlx::Error> {
    idempotency::save_answer(
        conn,
        &claim.token_sha256,
        &claim.key,
        i16::try_from(status.as_u16()).unwrap_or(500),
        body,
    )
    .await
}

/// A required `Idempotency-Key` (routes that record money): 422 without one.
#[derive(Debug, Clone)]
pub struct Idempotent(pub Claim);

impl<S: Send + Sync> FromRequestParts<S> for Idempotent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Idempotent, ApiError> {
        parts
            .extensions
            .get::<Claim>()
            .cloned()
            .map(Idempotent)
            .ok_or_else(|| {
                ApiError::invalid(
                    "Idempotency-Key",
                    "an Idempotency-Key header is required here: a unique string per request (e.g. a UUID), sent again unchanged when retrying",
                )
            })
    }
}

fn valid_key(k: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic())
}

fn request_hash(method: &Method, uri: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update([0]);
    h.update(uri.as_bytes());
    h.update([0]);
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

enum Claimed {
    Mine,
    Taken {
        request_hash: String,
        status: Option<i16>,
        body: Option<Vec<u8>>,
    },
}

async fn claim(
    pool: &PgPool,
    c: &Claim,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<Claimed, sqlx::Error> {
    idempotency::forget_before(pool, now - Duration::hours(TTL_HOURS)).await?;
    if idempotency::claim(pool, &c.token_sha256, &c.key, hash, now).await? {
        return Ok(Claimed::Mine);
    }
    let stored = idempotency::stored(pool, &c.token_sha256, &c.key).await?;
    Ok(match stored {
        Some(idempotency::StoredKey {
            request_hash,
            status,
            body,
        }) => Claimed::Taken {
            request_hash,
            status,
            body,
        },
        // released by a failed first attempt in between: as if still running
        None => Claimed::Taken {
            request_hash: hash.to_owned(),
            status: None,
            body: None,
        },
    })
}

async fn release(pool: &PgPool, c: &Claim) -> Result<(), sqlx::Error> {
    idempotency::release(pool, &c.token_sha256, &c.key).await
}

fn replay(status: i16, body: Vec<u8>) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}

/// The middleware: wraps every route of the admin API; acts on POSTs with a key.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let key = match raw.to_str() {
        Ok(k) if valid_key(k) => k.to_owned(),
        _ => {
            return ApiError::invalid(
                "Idempotency-Key",
                format!("Idempotency-Key is 1 to {MAX_KEY_LEN} visible ASCII characters"),
            )
            .into_response()
        }
    };
    // Without a token the route answers 401 itself; there is no one to remember a key for.
    let Some(token) = bearer(req.headers()) else {
        return next.run(req).await;
    };
    let c = Claim {
        token_sha256: token_hash(token),
        key,
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return ApiError::invalid(
            "body",
            format!("the request body is larger than {MAX_BODY} bytes"),
        )
        .into_response();
    };
    let uri = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let hash = request_hash(&parts.method, uri, &bytes);
    match claim(&state.pool, &c, &hash, state.clock.now()).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Claimed::Taken {
            request_hash,
            status,
            body,
        }) => {
            if request_hash != hash {
                return ApiError::invalid(
                    "Idempotency-Key",
                    "this Idempotency-Key was already used for a different request; use a new key for a new request",
                )
                .into_response();
            }
            match (status, body) {
                (Some(status), Some(body)) => replay(status, body),
                _ => ApiError::Conflict(
                    "a request with this Idempotency-Key is still being processed; retry it in a moment".into(),
                )
                .into_response(),
            }
        }
        Ok(Claimed::Mine) => {
            let mut req = Request::from_parts(parts, Body::from(bytes));
            req.extensions_mut().insert(c.clone());
            let resp = next.run(req).await;
            finish(&state.pool, &c, resp).await
        }
    }
}

/// Stores the answer under the key (unless the handler already did, in its transaction),
/// or releases the key when nothing was done (401, 429, 5xx).
async fn finish(pool: &PgPool, c: &Claim, resp: Response) -> Response {
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        if let Err(e) = release(pool, c).await {
            tracing::error!(error = %e, "api: releasing an idempotency key");
        }
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_ANSWER).await {
        Ok(b) => b,
        Err(e) => {
            // The key stays claimed without an answer: a retry gets 409, never a second effect.
            tracing::error!(error = %e, "api: an answer could not be read to keep it under its idempotency key");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let stored = match pool.acquire().await {
        Ok(mut conn) => store(&mut conn, c, status, &bytes).await,
        Err(e) => Err(e),
    };
    if let Err(e) = stored {
        // The effect happened; the answer is not kept. A retry with this key then gets 409
        // (still processing) until the key expires, never a second effect.
        tracing::error!(error = %e, "api: storing an idempotent answer");
    }
    Response::from_parts(parts, Body::from(bytes))
}
