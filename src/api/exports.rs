//! CSV exports for coordinators: pledges with their history, project totals, households,
//! broadcasts with their delivery and RSVP counts.
//!
//! `GET /api/v1/exports/pledges.csv`, `GET /api/v1/exports/project-totals.csv`,
//! `GET /api/v1/exports/households.csv`, `GET /api/v1/exports/broadcasts.csv`.
//!
//! The files, their format, the scope rules, the audit row and the limits are
//! `service::exports`, shared with the console's Exports page; this module turns the
//! query into its filters and the spooled file into the answer.
//!
//! Reading and sending apart (issue 8, point 7): the service reads the rows from
//! PostgreSQL as a stream inside one read transaction with its own statement timeout
//! (`HASHAR_EXPORT_STATEMENT_TIMEOUT_MS`) into an anonymous temporary file, and only then is
//! it sent from that file. The database connection is back in the API's pool before the
//! first byte goes out, so a client that downloads slowly, or stops reading, holds a file
//! and never a connection; memory stays at a chunk or two whatever the number of rows. At
//! most `HASHAR_EXPORTS_MAX_CONCURRENT` exports read from the database at a time; one more
//! is answered 503 (`busy`, `Retry-After`) at once instead of queueing for a connection.
//!
//! Errors: any (the query failing or timing out, the disk) come before the answer starts,
//! as a JSON 500 (503 when the database is only unavailable for now); a file that is sent
//! is complete.
//!
//! Scope: a coordinator gets rows of their own communities only (an admin: all); a
//! `community` filter outside their scope is 403. A `project` filter outside their scope
//! gives a file with only the header row, as `GET /api/v1/pledges` gives an empty list. A
//! programme officer's files show numbers masked. Every download is in the audit log.

use axum::{
    body::Body,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    auth::Auth,
    error::{ApiResult, ErrorBody, Params},
};
use crate::{
    app::AppState,
    service::exports::{self, File, Filters, Spooled, CHUNK},
};

/// The answer for a spooled file: the CSV, sent from its temporary file.
pub fn csv_response(spooled: Spooled) -> Response {
    let Spooled { file, filename, .. } = spooled;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, CHUNK));
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

async fn answer(
    state: &AppState,
    auth: &Auth,
    file: File,
    filters: Filters,
) -> ApiResult<Response> {
    let spooled = exports::export(state, auth, file, &filters).await?;
    Ok(csv_response(spooled))
}

/// The exports filtered by community only (project totals, households, broadcasts).
async fn community_export(
    state: &AppState,
    auth: &Auth,
    q: &CommunityExportQuery,
    file: File,
) -> ApiResult<Response> {
    let filters = Filters {
        community: q.community,
        bom: q.bom,
        ..Filters::default()
    };
    answer(state, auth, file, filters).await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PledgeExportQuery {
    pub community: Option<i64>,
    pub project: Option<i64>,
    /// First day (inclusive, UTC), `YYYY-MM-DD`.
    pub from: Option<NaiveDate>,
    /// Last day (inclusive, UTC), `YYYY-MM-DD`.
    pub to: Option<NaiveDate>,
    /// `true`: start the file with a UTF-8 byte-order mark, for Excel on Windows.
    #[serde(default)]
    pub bom: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CommunityExportQuery {
    pub community: Option<i64>,
    /// `true`: start the file with a UTF-8 byte-order mark, for Excel on Windows.
    #[serde(default)]
    pub bom: bool,
}

/// Pledges with their history, one row per pledge, oldest first.
#[utoipa::path(get, path = "/api/v1/exports/pledges.csv", tag = "exports", params(PledgeExportQuery),
    responses((status = 200, description = "CSV file, streamed: id, created_at, community, project, household_id, phone, \
amount, currency, said_amount, said_currency, rate, channel, status, received, last_received_on, cancelled_at, cancel_reason, \
code (the pledge's 7-digit code, as the household was told it)",
               content_type = "text/csv", body = String),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn pledges(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<PledgeExportQuery>,
) -> ApiResult<Response> {
    let filters = Filters {
        community: q.community,
        project: q.project,
        from: q.from,
        to: q.to,
        bom: q.bom,
    };
    answer(&state, &auth, File::Pledges, filters).await
}

/// Every project's totals (from the one totals view), by community and project code.
#[utoipa::path(get, path = "/api/v1/exports/project-totals.csv", tag = "exports", params(CommunityExportQuery),
    responses((status = 200, description = "CSV file, streamed: project_id, community, code, name_tg, name_ru, name_en, \
status, currency, target, match_ratio, match_cap, pledged, outstanding, received, matched, matched_total, percent, disbursed, \
match_due", content_type = "text/csv", body = String),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn project_totals(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<CommunityExportQuery>,
) -> ApiResult<Response> {
    community_export(&state, &auth, &q, File::ProjectTotals).await
}

/// Households with their phones (space-separated) and which of them texted STOP.
#[utoipa::path(get, path = "/api/v1/exports/households.csv", tag = "exports", params(CommunityExportQuery),
    responses((status = 200, description = "CSV file, streamed: household_id, community, name, language, join_code, \
phones, opted_out_phones", content_type = "text/csv", body = String),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn households(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<CommunityExportQuery>,
) -> ApiResult<Response> {
    community_export(&state, &auth, &q, File::Households).await
}

/// Broadcasts with their delivery and RSVP counts.
#[utoipa::path(get, path = "/api/v1/exports/broadcasts.csv", tag = "exports", params(CommunityExportQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn broadcasts(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<CommunityExportQuery>,
) -> ApiResult<Response> {
    community_export(&state, &auth, &q, File::Broadcasts).await
}

/// Households informed per community and topic (counsellor, session, self-served apart)
/// against the targets: counts only (`service::outreach`). One row per community and
/// topic, a community's `all` row with its target, and without `community` the rows over
/// every community the caller sees (empty `community`).
#[utoipa::path(get, path = "/api/v1/exports/outreach.csv", tag = "exports", params(CommunityExportQuery),
    responses((status = 200, description = "CSV file: community_id, community, topic (legal_stay, trafficking, hiv, \
remittances, all), informed, by_counsellor, by_session, self_served, target", content_type = "text/csv", body = String),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn outreach(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<CommunityExportQuery>,
) -> ApiResult<Response> {
    community_export(&state, &auth, &q, File::Outreach).await
}
