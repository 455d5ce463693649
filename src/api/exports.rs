//! CSV exports for coordinators: pledges with their history, project totals, households,
//! broadcasts with their delivery and RSVP counts.
//!
//! `GET /api/v1/exports/pledges.csv`, `GET /api/v1/exports/project-totals.csv`,
//! `GET /api/v1/exports/households.csv`, `GET /api/v1/exports/broadcasts.csv`.
//!
//! The format:
//! - UTF-8 (no byte-order mark unless `?bom=true`, which Excel on Windows needs to read
//!   Cyrillic), a header row, RFC 4180: comma-separated, CRLF line ends,
//!   a cell quoted when it holds a comma, a quote or a line break (the `csv` crate's writer).
//! - Amounts exact with two decimals (`1500.50`, `0.00`); ratios and exchange rates exact
//!   without trailing zeros (`0.5`, `10.7178`); the percentage as the totals view rounds it
//!   (`30.0`).
//! - Instants in ISO 8601 UTC to the second (`2026-11-20T08:30:00Z`), days as `YYYY-MM-DD`.
//!   The pledges export's `from`/`to` filters are UTC days too.
//! - An empty cell for a missing value.
//!
//! Spreadsheet formula injection (OWASP "CSV injection"): every text cell — anything that
//! comes from the database as text, including names, reasons, codes and phone numbers —
//! whose first character is `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with
//! a single quote, so a spreadsheet shows it as text instead of evaluating it. Phone numbers
//! are E.164 and start with `+`, so they appear as `'+992901112233`: that is what OWASP
//! recommends (a `+…` cell is a formula to Excel), and it also keeps spreadsheets from
//! turning the number into `9.92901E+11`. Numbers and dates are formatted here from typed
//! values (digits, `.`, `-`, `:`, `T`, `Z`), cannot carry a formula, and are not prefixed —
//! so a negative `match_due` (possible when a project's cap is lowered after matching was
//! paid) stays a number.
//!
//! Pledges are one row per pledge with its history folded in (sum of receipts, the last
//! receipt's day, the cancellation), which is what a coordinator reconciling a ledger
//! wants; `GET /api/v1/pledges/{id}` has the full event list of one pledge.
//!
//! Reading and sending apart (issue 8, point 7): the rows are read from PostgreSQL as a
//! stream (`store::exports`, each a `query_as!(..).fetch`) inside one read transaction
//! with its own statement timeout (`HASHAR_EXPORT_STATEMENT_TIMEOUT_MS`), written as CSV
//! into an anonymous temporary file (deleted when closed) in chunks of about 32 KiB, and
//! only then sent from that file. The database connection is back in the API's pool before
//! the first byte goes out, so a client that downloads slowly, or stops reading, holds a
//! file and never a connection; memory stays at a chunk or two whatever the number of
//! rows. At most `HASHAR_EXPORTS_MAX_CONCURRENT` exports read from the database at a time;
//! one more is answered 503 (`busy`, `Retry-After`) at once instead of queueing for a
//! connection.
//!
//! Errors: any (the query failing or timing out, the disk) come before the answer starts,
//! as a JSON 500 (503 when the database is only unavailable for now); a file that is sent
//! is complete.
//!
//! Scope: a coordinator gets rows of their own communities only (an admin: all); a
//! `community` filter outside their scope is 403. A `project` filter outside their scope
//! gives a file with only the header row, as `GET /api/v1/pledges` gives an empty list.
//!
//! `GET /api/v1/exports/broadcasts.csv` lists broadcasts with their delivery and RSVP
//! counts.

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use futures_util::StreamExt;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;
use sqlx::PgConnection;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use utoipa::IntoParams;

use super::{
    auth::Auth,
    error::{ApiError, ApiResult, ErrorBody, Params},
};
use crate::{
    app::AppState,
    store::{
        exports::{
            self, BroadcastRow, CommunityFilter, HouseholdRow, PledgeFilter, PledgeRow, Rows,
            TotalsRow,
        },
        CommunityId, ProjectId,
    },
};

/// About this many bytes per body chunk.
const CHUNK: usize = 32 * 1024;

type Record = Vec<String>;

/// An export and what it is narrowed to.
enum Export {
    Pledges(PledgeFilter),
    ProjectTotals(CommunityFilter),
    Households(CommunityFilter),
    Broadcasts(CommunityFilter),
}

impl Export {
    /// Its rows as CSV records, streamed from the store.
    fn records<'c>(&self, conn: &'c mut PgConnection) -> Rows<'c, Record> {
        match self {
            Export::Pledges(f) => exports::pledges(conn, f)
                .map(|r| r.map(pledge_record))
                .boxed(),
            Export::ProjectTotals(f) => exports::project_totals(conn, f)
                .map(|r| r.map(totals_record))
                .boxed(),
            Export::Households(f) => exports::households(conn, f)
                .map(|r| r.map(household_record))
                .boxed(),
            Export::Broadcasts(f) => exports::broadcasts(conn, f)
                .map(|r| r.map(broadcast_record))
                .boxed(),
        }
    }
}

/// A text cell, with a leading `=`, `+`, `-`, `@`, tab or carriage return neutralised.
fn text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

fn opt_text(s: Option<String>) -> String {
    s.as_deref().map(text).unwrap_or_default()
}

fn amount(d: Decimal) -> String {
    format!(
        "{:.2}",
        d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    )
}

fn opt_amount(d: Option<Decimal>) -> String {
    d.map(amount).unwrap_or_default()
}

/// Exact, without trailing zeros (`1.0000` → `1`).
fn exact(d: Decimal) -> String {
    d.normalize().to_string()
}

/// One decimal, as the totals view rounds it (`30.0`, `0.0`: a zero loses its scale on the
/// way from the database).
fn percent(d: Decimal) -> String {
    format!(
        "{:.1}",
        d.round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero)
    )
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn opt_instant(t: Option<DateTime<Utc>>) -> String {
    t.map(instant).unwrap_or_default()
}

fn day(d: Option<NaiveDate>) -> String {
    d.map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// A CSV writer over the chunk being filled.
struct Chunks(csv::Writer<Vec<u8>>);

impl Chunks {
    fn writer() -> csv::Writer<Vec<u8>> {
        csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::with_capacity(CHUNK + 8 * 1024))
    }

    fn new() -> Chunks {
        Chunks(Chunks::writer())
    }

    fn write<I, S>(&mut self, record: I) -> Result<(), sqlx::Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.0
            .write_record(record)
            .map_err(|e| sqlx::Error::Io(e.into()))
    }

    /// Bytes written out of the csv writer's own buffer so far.
    fn len(&self) -> usize {
        self.0.get_ref().len()
    }

    /// Everything written so far; the next record starts a new chunk.
    fn take(&mut self) -> Result<Bytes, sqlx::Error> {
        std::mem::replace(&mut self.0, Chunks::writer())
            .into_inner()
            .map(Bytes::from)
            .map_err(|e| sqlx::Error::Io(e.into_error()))
    }
}

/// Reads `export` row by row into CSV in an anonymous temporary file, in one read
/// transaction with the export statement timeout, and returns the file rewound; the
/// connection is released when this returns.
async fn spool(
    state: &AppState,
    what: &'static str,
    header: &'static [&'static str],
    export: &Export,
    bom: bool,
) -> Result<tokio::fs::File, sqlx::Error> {
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|_| sqlx::Error::WorkerCrashed)??;
    let mut file = tokio::fs::File::from_std(file);
    let mut out = Chunks::new();
    if bom {
        file.write_all(&UTF8_BOM).await?;
    }
    out.write(header)?;
    let mut count: u64 = 0;
    let mut tx = state.pool.begin().await?;
    exports::statement_timeout(&mut tx, state.config.export_statement_timeout_ms).await?;
    {
        let mut records = export.records(&mut tx);
        while let Some(record) = records.next().await {
            out.write(&record?)?;
            count += 1;
            if out.len() >= CHUNK {
                file.write_all(&out.take()?).await?;
            }
        }
    }
    tx.commit().await?;
    file.write_all(&out.take()?).await?;
    file.flush().await?;
    file.seek(std::io::SeekFrom::Start(0)).await?;
    tracing::info!(export = what, rows = count, "export read");
    Ok(file)
}

/// What `?bom=true` puts first: Excel on Windows reads a CSV without it in the local
/// code page, which turns Tajik and Russian names into mojibake.
const UTF8_BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// The CSV answer: read whole into a temporary file first (the connection released), then
/// sent from it; 503 when too many exports are being read, 500 when reading failed.
async fn csv_response(
    state: &AppState,
    what: &'static str,
    header: &'static [&'static str],
    export: Export,
    bom: bool,
) -> ApiResult<Response> {
    // Bounded, and never queued: a coordinator told "busy, retry" is better than exports
    // piling up behind each other.
    let Ok(permit) = state.exports.clone().try_acquire_owned() else {
        tracing::warn!(export = what, "export refused: too many running");
        return Err(ApiError::Busy(
            "too many exports are being prepared; retry in a minute",
        ));
    };
    let file = spool(state, what, header, &export, bom).await;
    drop(permit);
    let file = file.map_err(|e| {
        tracing::error!(export = what, error = %e, "export failed");
        ApiError::Internal(e)
    })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, CHUNK));
    let filename = format!("{what}-{}.csv", state.clock.now().format("%Y%m%d"));
    Ok((
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
        .into_response())
}

/// The exports filtered by community only (project totals, households, broadcasts):
/// `export` narrows its rows to the caller's scope and the `community` filter; a filter
/// outside the scope is 403.
async fn community_export(
    state: &AppState,
    auth: &Auth,
    q: &CommunityExportQuery,
    what: &'static str,
    header: &'static [&'static str],
    export: fn(CommunityFilter) -> Export,
) -> ApiResult<Response> {
    if let Some(c) = q.community {
        auth.require(c)?;
    }
    let filter = CommunityFilter {
        scope: auth.scope().map(<[i64]>::to_vec),
        community: q.community.map(CommunityId),
    };
    csv_response(state, what, header, export(filter), q.bom).await
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

const PLEDGE_HEADER: &[&str] = &[
    "id",
    "created_at",
    "community",
    "project",
    "household_id",
    "phone",
    "amount",
    "currency",
    "said_amount",
    "said_currency",
    "rate",
    "channel",
    "status",
    "received",
    "last_received_on",
    "cancelled_at",
    "cancel_reason",
    "code",
];

fn pledge_record(r: PledgeRow) -> Record {
    vec![
        r.id.to_string(),
        instant(r.created_at),
        text(&r.community),
        text(&r.project),
        r.household.to_string(),
        text(&r.phone),
        amount(r.amount),
        text(&r.currency),
        opt_amount(r.said_amount),
        opt_text(r.said_currency),
        r.rate.map(exact).unwrap_or_default(),
        text(&r.channel),
        text(&r.status),
        amount(r.received),
        day(r.last_received_on),
        opt_instant(r.cancelled_at),
        opt_text(r.cancel_reason),
        // the 7-digit code the household is told (never a leading zero: see new_pledge_code)
        text(&r.code),
    ]
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
    if let Some(c) = q.community {
        auth.require(c)?;
    }
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from > to {
            return Err(ApiError::invalid("to", "to is on or after from"));
        }
    }
    let export = Export::Pledges(PledgeFilter {
        scope: auth.scope().map(<[i64]>::to_vec),
        community: q.community.map(CommunityId),
        project: q.project.map(ProjectId),
        from: q.from,
        to: q.to,
    });
    csv_response(&state, "pledges", PLEDGE_HEADER, export, q.bom).await
}

const TOTALS_HEADER: &[&str] = &[
    "project_id",
    "community",
    "code",
    "name_tg",
    "name_ru",
    "name_en",
    "status",
    "currency",
    "target",
    "match_ratio",
    "match_cap",
    "pledged",
    "outstanding",
    "received",
    "matched",
    "matched_total",
    "percent",
    "disbursed",
    "match_due",
];

fn totals_record(r: TotalsRow) -> Record {
    vec![
        r.project.to_string(),
        text(&r.community),
        text(&r.code),
        text(&r.name_tg),
        text(&r.name_ru),
        text(&r.name_en),
        text(&r.status),
        text(&r.currency),
        amount(r.target),
        exact(r.match_ratio),
        opt_amount(r.match_cap),
        amount(r.pledged),
        amount(r.outstanding),
        amount(r.received),
        amount(r.matched),
        amount(r.matched_total),
        percent(r.percent),
        amount(r.disbursed),
        amount(r.match_due),
    ]
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
    community_export(
        &state,
        &auth,
        &q,
        "project-totals",
        TOTALS_HEADER,
        Export::ProjectTotals,
    )
    .await
}

const HOUSEHOLD_HEADER: &[&str] = &[
    "household_id",
    "community",
    "name",
    "language",
    "join_code",
    "phones",
    "opted_out_phones",
];

fn household_record(r: HouseholdRow) -> Record {
    vec![
        r.id.to_string(),
        text(&r.community),
        opt_text(r.name),
        opt_text(r.language),
        opt_text(r.join_code),
        text(&r.phones),
        text(&r.opted_out_phones),
    ]
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
    community_export(
        &state,
        &auth,
        &q,
        "households",
        HOUSEHOLD_HEADER,
        Export::Households,
    )
    .await
}

const BROADCAST_HEADER: &[&str] = &[
    "broadcast_id",
    "created_at",
    "created_by",
    "communities",
    "status",
    "send_at",
    "queued_at",
    "recipients",
    "skipped_opted_out",
    "queued",
    "sent",
    "delivered",
    "failed",
    "suppressed",
    "cancelled",
    "rsvp_yes",
    "rsvp_no",
];

fn broadcast_record(r: BroadcastRow) -> Record {
    let counts = [
        r.recipients,
        r.skipped_opted_out,
        r.queued,
        r.sent,
        r.delivered,
        r.failed,
        r.suppressed,
        r.cancelled,
        r.rsvp_yes,
        r.rsvp_no,
    ];
    let mut out = vec![
        r.id.to_string(),
        instant(r.created_at),
        text(&r.created_by),
        opt_text(r.communities),
        text(&r.status),
        opt_instant(r.send_at),
        opt_instant(r.queued_at),
    ];
    out.extend(counts.iter().map(i64::to_string));
    out
}

/// Broadcasts with their delivery and RSVP counts.
#[utoipa::path(get, path = "/api/v1/exports/broadcasts.csv", tag = "exports", params(CommunityExportQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn broadcasts(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<CommunityExportQuery>,
) -> ApiResult<Response> {
    community_export(
        &state,
        &auth,
        &q,
        "broadcasts",
        BROADCAST_HEADER,
        Export::Broadcasts,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_plain_text_kept() {
        for (raw, want) in [
            (
                "=HYPERLINK(\"http://evil\")",
                "'=HYPERLINK(\"http://evil\")",
            ),
            ("+992901112233", "'+992901112233"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("Хонаводаи Раҳимов", "Хонаводаи Раҳимов"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(text(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn numbers_are_exact() {
        assert_eq!(amount(Decimal::new(150050, 2)), "1500.50");
        assert_eq!(amount(Decimal::ZERO), "0.00");
        assert_eq!(amount(Decimal::new(-100, 0)), "-100.00");
        assert_eq!(exact(Decimal::new(10000, 4)), "1");
        assert_eq!(exact(Decimal::new(1071780000, 8)), "10.7178");
    }
}
