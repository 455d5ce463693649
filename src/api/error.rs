//! API errors: JSON `{"error": {"code", "message", "field"}}` with a stable code.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no token, or an unknown or revoked one.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// 403: the token's coordinator may not act on this community.
    #[error("not allowed for this coordinator")]
    Forbidden,
    /// 404: no such resource (or not one this coordinator may see).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 422: a field is missing or wrong.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// 409: the request conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// 410: what the request refers to is no more (an expired or spent code).
    #[error("{0}")]
    Gone(String),
    /// 429 with `Retry-After` (seconds): a limit on how often this may be done is reached.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// 503 with `Retry-After`: the server is busy (too many exports, the API's database
    /// connections all taken, the database restarting); the same request later will do.
    #[error("{0}")]
    Busy(&'static str),
    /// 500: logged, never shown (503 when the database is only unavailable for now).
    #[error("internal error")]
    Internal(#[from] sqlx::Error),
    /// 500: an answer could not be encoded (logged, never shown).
    #[error("internal error")]
    Encode(#[from] serde_json::Error),
}

/// `limit` (1 to 1000, default 100) and `offset` (0 or more, default 0) of a list.
pub fn paging(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit is 1 to 1000"));
    }
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid("offset", "offset is 0 or more"));
    }
    Ok((limit, offset))
}

/// A text field of a request: trimmed, required, at most `max` characters (422 otherwise).
/// The rule is the service layer's ([`crate::service::text`]), answered as an API error.
pub fn text<'a>(field: &'static str, value: &'a str, max: usize) -> Result<&'a str, ApiError> {
    Ok(crate::service::text(field, value, max)?)
}

/// An optional text field: trimmed, empty as none, at most `max` characters.
pub fn opt_text<'a>(
    field: &'static str,
    value: Option<&'a str>,
    max: usize,
) -> Result<Option<&'a str>, ApiError> {
    Ok(crate::service::opt_text(field, value, max)?)
}

/// A date of money changing hands ([`crate::service::money_date`]: from 2020-01-01 to
/// tomorrow by the service's clock).
pub fn money_date(
    field: &'static str,
    date: chrono::NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::NaiveDate, ApiError> {
    Ok(crate::service::money_date(field, date, now)?)
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field,
            message: message.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: unauthorized, forbidden, not_found, invalid, conflict, gone,
    /// too_many_requests, busy, internal.
    pub code: &'static str,
    pub message: String,
    /// The field a validation error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", None),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::Invalid { field, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid", Some(*field))
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", None),
            ApiError::Gone(_) => (StatusCode::GONE, "gone", None),
            ApiError::TooManyRequests { retry_after, .. } => {
                let body = ErrorBody {
                    error: ErrorDetail {
                        code: "too_many_requests",
                        message: self.to_string(),
                        field: None,
                    },
                };
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(
                        axum::http::header::RETRY_AFTER,
                        (*retry_after).max(1).to_string(),
                    )],
                    Json(body),
                )
                    .into_response();
            }
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy", None),
            ApiError::Internal(e) if crate::store::pool::is_temporary(e) => {
                tracing::warn!(error = %e, "api: database unavailable for now");
                return ApiError::Busy("the database is busy; retry in a moment").into_response();
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "api: database error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", None)
            }
            ApiError::Encode(e) => {
                tracing::error!(error = %e, "api: encoding an answer");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", None)
            }
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let body = ErrorBody {
                error: ErrorDetail {
                    code,
                    message: self.to_string(),
                    field,
                },
            };
            return (
                status,
                [(axum::http::header::RETRY_AFTER, "30")],
                Json(body),
            )
                .into_response();
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                field,
            },
        };
        (status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body: like `axum::Json`, but a malformed body or an unknown field is answered in
/// our error format (422, code `invalid`, field `body`).
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// Query parameters, with bad ones answered in our error format (field `query`).
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Params<T>(pub T);

/// Path segments, with bad ones (`/projects/abc`) answered in our error format (field `path`).
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Segments<T>(pub T);

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> ApiError {
        ApiError::invalid("body", r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::invalid("query", r.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> ApiError {
        ApiError::invalid("path", r.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_requests_says_when_to_retry() {
        let resp = ApiError::TooManyRequests {
            message: "at most 3 codes an hour".into(),
            retry_after: 42,
        }
        .into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            resp.headers()
                .get(axum::http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("42")
        );
        let gone = ApiError::Gone("the code has expired".into()).into_response();
        assert_eq!(gone.status(), StatusCode::GONE);
    }
}
