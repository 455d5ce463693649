//! CSV exports (pledges with their history, project totals, households, broadcasts): one
//! writer for the admin API (`/api/v1/exports/*`, `api::exports`) and the console's Exports
//! page (`console::exports`), so both give the same file for the same person and filters.
//!
//! [`export`] checks the actor's scope (a `community` filter outside it is
//! [`ServiceError::Forbidden`]; a `project` filter outside it gives a file with only the
//! header row), reads the rows as a stream (`store::exports`) inside one read transaction
//! with the export statement timeout (`HASHAR_EXPORT_STATEMENT_TIMEOUT_MS`), writes them as
//! CSV into an anonymous temporary file (deleted when closed) in chunks of about 32 KiB,
//! writes one audit row in the same transaction (who, which file, the filters, how many
//! rows), and returns the file rewound: the edge sends it after the database connection
//! is back in the pool. At most `HASHAR_EXPORTS_MAX_CONCURRENT` exports read at a time;
//! one more is [`ServiceError::Busy`] at once, never queued.
//!
//! The format:
//! - UTF-8 (no byte-order mark unless asked for: Excel on Windows needs one to read
//!   Cyrillic), a header row, RFC 4180: comma-separated, CRLF line ends, a cell quoted when
//!   it holds a comma, a quote or a line break (the `csv` crate's writer).
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
//! Programme officers read, and read no one's number: in their files every phone number
//! is masked as in the console's lists (`+99290*****33`, `domain::phone::mask`) and the
//! households' family codes (which let a number join a household) are left empty.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use futures_util::StreamExt;
use rust_decimal::{Decimal, RoundingStrategy};
use sqlx::{PgConnection, PgPool};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::{audit, Actor, ServiceError, ServiceResult};
use crate::{
    app::AppState,
    domain::phone::mask,
    store::{
        self,
        communities::Community,
        exports::{
            self, BroadcastRow, CommunityFilter, HouseholdRow, PledgeFilter, PledgeRow, Rows,
            TotalsRow,
        },
        CommunityId, Localized, ProjectId,
    },
};

/// About this many bytes per body chunk (of the temporary file, and of the answer).
pub const CHUNK: usize = 32 * 1024;

type Record = Vec<String>;

/// The four files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum File {
    Pledges,
    ProjectTotals,
    Households,
    Broadcasts,
    /// Households informed per community and topic against the targets (counts only;
    /// `service::outreach`).
    Outreach,
}

impl File {
    pub const ALL: [File; 5] = [
        File::Pledges,
        File::ProjectTotals,
        File::Households,
        File::Broadcasts,
        File::Outreach,
    ];

    /// Its name in URLs, file names and the audit log: `pledges`, `project-totals`, …
    pub fn name(self) -> &'static str {
        match self {
            File::Pledges => "pledges",
            File::ProjectTotals => "project-totals",
            File::Households => "households",
            File::Broadcasts => "broadcasts",
            File::Outreach => "outreach",
        }
    }

    /// The file named `name` (see [`File::name`]).
    pub fn from_name(name: &str) -> Option<File> {
        File::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Its columns, in order.
    pub fn header(self) -> &'static [&'static str] {
        match self {
            File::Pledges => PLEDGE_HEADER,
            File::ProjectTotals => TOTALS_HEADER,
            File::Households => HOUSEHOLD_HEADER,
            File::Broadcasts => BROADCAST_HEADER,
            File::Outreach => OUTREACH_HEADER,
        }
    }

    /// Whether the `project`, `from` and `to` filters apply (the pledges only).
    pub fn by_project_and_day(self) -> bool {
        self == File::Pledges
    }
}

/// What a file is narrowed to, as asked (the actor's scope is added by [`export`]). The
/// filters a file does not have ([`File::by_project_and_day`]) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub community: Option<i64>,
    pub project: Option<i64>,
    /// First day (inclusive, UTC).
    pub from: Option<NaiveDate>,
    /// Last day (inclusive, UTC).
    pub to: Option<NaiveDate>,
    /// Start the file with a UTF-8 byte-order mark (Excel on Windows).
    pub bom: bool,
}

/// A file read whole, ready to send.
#[derive(Debug)]
pub struct Spooled {
    /// The CSV, rewound; deleted from disk when dropped.
    pub file: tokio::fs::File,
    /// `pledges-20261128.csv`: the file's name and the day by the service's clock.
    pub filename: String,
    pub rows: u64,
}

/// An export and what it is narrowed to.
enum Export {
    Pledges(PledgeFilter),
    ProjectTotals(CommunityFilter),
    Households(CommunityFilter),
    Broadcasts(CommunityFilter),
    /// Counted before the export reads (a few rows per community).
    Outreach(Vec<Record>),
}

impl Export {
    /// Its rows as CSV records, streamed from the store; numbers masked when `masked`.
    fn records<'c>(&self, conn: &'c mut PgConnection, masked: bool) -> Rows<'c, Record> {
        match self {
            Export::Pledges(f) => exports::pledges(conn, f)
                .map(move |r| r.map(|r| pledge_record(r, masked)))
                .boxed(),
            Export::ProjectTotals(f) => exports::project_totals(conn, f)
                .map(|r| r.map(totals_record))
                .boxed(),
            Export::Households(f) => exports::households(conn, f)
                .map(move |r| r.map(|r| household_record(r, masked)))
                .boxed(),
            Export::Broadcasts(f) => exports::broadcasts(conn, f)
                .map(|r| r.map(broadcast_record))
                .boxed(),
            Export::Outreach(rows) => {
                futures_util::stream::iter(rows.clone().into_iter().map(Ok::<Record, sqlx::Error>))
                    .boxed()
            }
        }
    }
}

/// A project a pledges file may be narrowed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectChoice {
    pub id: ProjectId,
    pub name: Localized,
    /// Its community's name.
    pub community: Localized,
}

/// What the filters of `actor`'s files may name: the communities and projects of their
/// scope (two queries; names only, no figures).
#[derive(Debug, Clone, Default)]
pub struct Choices {
    pub communities: Vec<Community>,
    pub projects: Vec<ProjectChoice>,
}

/// The communities and projects `actor` may narrow a file to, by community and project.
pub async fn choices(pool: &PgPool, actor: &Actor) -> ServiceResult<Choices> {
    let scope = actor.scope();
    let mut conn = pool.acquire().await?;
    let communities = store::communities::list(&mut *conn, scope).await?;
    let projects = store::projects::list_totals(&mut conn, scope, None, None).await?;
    let projects = projects
        .into_iter()
        .filter_map(|p| {
            let community = communities.iter().find(|c| c.id == p.community)?;
            Some(ProjectChoice {
                id: p.id,
                name: p.name,
                community: community.name.clone(),
            })
        })
        .collect();
    Ok(Choices {
        communities,
        projects,
    })
}

/// `file` for `actor` narrowed by `filters`, read whole into a temporary file and audited
/// (see the module). Forbidden: a `community` filter outside the actor's scope; invalid:
/// `to` before `from`; busy: too many exports reading now.
pub async fn export(
    state: &AppState,
    actor: &Actor,
    file: File,
    filters: &Filters,
) -> ServiceResult<Spooled> {
    if let Some(c) = filters.community {
        actor.require(c)?;
    }
    let by_day = file.by_project_and_day();
    if let (true, Some(from), Some(to)) = (by_day, filters.from, filters.to) {
        if from > to {
            return Err(ServiceError::invalid(
                "to",
                "exports.to_before_from",
                "to is on or after from",
            ));
        }
    }
    let scope = actor.scope().map(<[i64]>::to_vec);
    let community = filters.community.map(CommunityId);
    let by_community = CommunityFilter {
        scope: scope.clone(),
        community,
    };
    let export = match file {
        File::Pledges => Export::Pledges(PledgeFilter {
            scope,
            community,
            project: filters.project.map(ProjectId),
            from: filters.from,
            to: filters.to,
        }),
        File::ProjectTotals => Export::ProjectTotals(by_community),
        File::Households => Export::Households(by_community),
        File::Broadcasts => Export::Broadcasts(by_community),
        File::Outreach => Export::Outreach(outreach_records(
            &super::outreach::figures(state, actor).await?,
            community,
        )),
    };
    let what = file.name();
    // Bounded, and never queued: someone told "busy, retry" is better than exports piling
    // up behind each other.
    let Ok(permit) = state.exports.clone().try_acquire_owned() else {
        tracing::warn!(export = what, "export refused: too many running");
        return Err(ServiceError::Busy(
            "too many exports are being prepared; retry in a minute",
        ));
    };
    let spooled = spool(state, actor, file, filters, &export).await;
    drop(permit);
    let (out, rows) = spooled.map_err(|e| {
        tracing::error!(export = what, error = %e, "export failed");
        e
    })?;
    Ok(Spooled {
        file: out,
        filename: format!("{what}-{}.csv", state.clock.now().format("%Y%m%d")),
        rows,
    })
}

/// Reads `export` row by row into CSV in an anonymous temporary file, in one read
/// transaction with the export statement timeout that also writes the audit row, and
/// returns the file rewound with its row count; the connection is released when this
/// returns.
async fn spool(
    state: &AppState,
    actor: &Actor,
    file: File,
    filters: &Filters,
    export: &Export,
) -> ServiceResult<(tokio::fs::File, u64)> {
    let what = file.name();
    let masked = actor.read_only();
    let tmp = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|_| sqlx::Error::WorkerCrashed)?
        .map_err(sqlx::Error::Io)?;
    let mut tmp = tokio::fs::File::from_std(tmp);
    let mut out = Chunks::new();
    if filters.bom {
        tmp.write_all(&UTF8_BOM).await.map_err(sqlx::Error::Io)?;
    }
    out.write(file.header())?;
    let mut count: u64 = 0;
    let mut tx = state.pool.begin().await?;
    exports::statement_timeout(&mut tx, state.config.export_statement_timeout_ms).await?;
    {
        let mut records = export.records(&mut tx, masked);
        while let Some(record) = records.next().await {
            out.write(&record?)?;
            count += 1;
            if out.len() >= CHUNK {
                tmp.write_all(&out.take()?).await.map_err(sqlx::Error::Io)?;
            }
        }
    }
    let by_day = file.by_project_and_day();
    audit::write(
        &mut tx,
        actor,
        state.clock.now(),
        audit::Change {
            action: "export.download",
            subject_kind: "staff",
            subject_id: actor.coordinator_id,
            community: filters.community.map(CommunityId),
            before: serde_json::Value::Null,
            after: serde_json::json!({
                "file": what,
                "community": filters.community,
                "project": filters.project.filter(|_| by_day),
                "from": filters.from.filter(|_| by_day),
                "to": filters.to.filter(|_| by_day),
                "bom": filters.bom,
                "masked": masked,
                "rows": count,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    let io = |e: std::io::Error| ServiceError::Db(sqlx::Error::Io(e));
    tmp.write_all(&out.take()?).await.map_err(io)?;
    tmp.flush().await.map_err(io)?;
    tmp.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
    tracing::info!(export = what, rows = count, masked, "export read");
    Ok((tmp, count))
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
    fn take(&mut self) -> Result<Vec<u8>, sqlx::Error> {
        std::mem::replace(&mut self.0, Chunks::writer())
            .into_inner()
            .map_err(|e| sqlx::Error::Io(e.into_error()))
    }
}

/// What `?bom=true` puts first: Excel on Windows reads a CSV without it in the local
/// code page, which turns Tajik and Russian names into mojibake.
const UTF8_BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// A phone number as `masked` asks: in full, or as in the console's lists.
fn phone(s: &str, masked: bool) -> String {
    if masked {
        text(&mask(s))
    } else {
        text(s)
    }
}

/// Space-separated numbers, each as `masked` asks.
fn phones(s: &str, masked: bool) -> String {
    if masked {
        text(
            &s.split(' ')
                .filter(|p| !p.is_empty())
                .map(mask)
                .collect::<Vec<_>>()
                .join(" "),
        )
    } else {
        text(s)
    }
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

fn pledge_record(r: PledgeRow, masked: bool) -> Record {
    vec![
        r.id.to_string(),
        instant(r.created_at),
        text(&r.community),
        text(&r.project),
        r.household.to_string(),
        phone(&r.phone, masked),
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

const HOUSEHOLD_HEADER: &[&str] = &[
    "household_id",
    "community",
    "name",
    "language",
    "join_code",
    "phones",
    "opted_out_phones",
];

fn household_record(r: HouseholdRow, masked: bool) -> Record {
    vec![
        r.id.to_string(),
        text(&r.community),
        opt_text(r.name),
        opt_text(r.language),
        // a family code lets a number join the household: not for programme officers
        if masked {
            String::new()
        } else {
            opt_text(r.join_code)
        },
        phones(&r.phones, masked),
        phones(&r.opted_out_phones, masked),
    ]
}

const OUTREACH_HEADER: &[&str] = &[
    "community_id",
    "community",
    "topic",
    "informed",
    "by_counsellor",
    "by_session",
    "self_served",
    "target",
];

/// One row per community and topic, then the community over all topics (`all`, with its
/// target); without a `community` filter, the rows over every community shown last
/// (empty community; the target is the programme's, or the sum of the communities' set).
fn outreach_records(f: &super::outreach::Figures, community: Option<CommunityId>) -> Vec<Record> {
    use super::outreach::{Counts, TopicCounts};
    let row = |id: String, code: &str, topic: &str, c: &Counts, target: Option<i64>| -> Record {
        vec![
            id,
            text(code),
            topic.to_owned(),
            c.informed.to_string(),
            c.by_counsellor.to_string(),
            c.by_session.to_string(),
            c.self_served.to_string(),
            target.map(|t| t.to_string()).unwrap_or_default(),
        ]
    };
    let mut out = Vec::new();
    let mut block = |id: String, code: &str, topics: &[TopicCounts], all: &Counts, target| {
        for t in topics {
            out.push(row(id.clone(), code, t.topic, &t.counts, None));
        }
        out.push(row(id, code, "all", all, target));
    };
    for c in &f.communities {
        if community.is_some_and(|want| want.0 != c.id) {
            continue;
        }
        block(
            c.id.to_string(),
            &c.code,
            &c.topics,
            &c.all,
            c.target.map(i64::from),
        );
    }
    if community.is_none() {
        block(String::new(), "", &f.topics, &f.all, f.target);
    }
    out
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
