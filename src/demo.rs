//! `hashar demo-data`: a realistic demo programme (src/demo/demo.toml), loaded idempotently.

use rust_decimal::Decimal;
use serde::Deserialize;
use sqlx::PgPool;

use crate::domain::{Language, Phone};
use crate::store::demo;

const DEMO: &str = include_str!("demo/demo.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoFile {
    community: Vec<DemoCommunity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoCommunity {
    code: String,
    district: String,
    name_tg: String,
    name_ru: String,
    name_en: String,
    #[serde(default)]
    project: Vec<DemoProject>,
    #[serde(default)]
    household: Vec<DemoHousehold>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoProject {
    code: String,
    kind: String,
    name_tg: String,
    name_ru: String,
    name_en: String,
    target: Decimal,
    match_ratio: Decimal,
    #[serde(default)]
    match_cap: Option<Decimal>,
    #[serde(default)]
    received: Option<Decimal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoHousehold {
    name: String,
    phone: String,
    language: Language,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo data: {0}")]
    Parse(String),
    #[error("demo data: phone {0}: {1}")]
    Phone(String, crate::domain::PhoneError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct DemoSummary {
    pub communities: u64,
    pub projects: u64,
    pub households: u64,
}

/// Loads the demo programme. Whatever exists already (by community code, project code,
/// phone) is left as it is, so running it twice changes nothing.
pub async fn load(pool: &PgPool) -> Result<DemoSummary, DemoError> {
    let file: DemoFile =
        toml::from_str(DEMO).map_err(|e| DemoError::Parse(e.message().to_owned()))?;
    let mut added = DemoSummary::default();
    let mut tx = pool.begin().await?;
    for c in &file.community {
        let (community, new) = demo::community(
            &mut tx,
            &demo::NewCommunity {
                code: &c.code,
                district: &c.district,
                name_tg: &c.name_tg,
                name_ru: &c.name_ru,
                name_en: &c.name_en,
            },
        )
        .await?;
        if new {
            added.communities += 1;
        }
        for p in &c.project {
            let project = demo::project_if_new(
                &mut tx,
                &demo::NewProject {
                    community,
                    code: &p.code,
                    kind: &p.kind,
                    name_tg: &p.name_tg,
                    name_ru: &p.name_ru,
                    name_en: &p.name_en,
                    target: p.target,
                    match_ratio: p.match_ratio,
                    match_cap: p.match_cap,
                },
            )
            .await?;
            if let (Some(project), Some(received)) = (project, p.received) {
                demo::received(&mut tx, project, received).await?;
            }
            if project.is_some() {
                added.projects += 1;
            }
        }
        for h in &c.household {
            let phone = Phone::parse(&h.phone).map_err(|e| DemoError::Phone(h.phone.clone(), e))?;
            if demo::household_if_new(&mut tx, community, &h.name, h.language, &phone)
                .await?
                .is_some()
            {
                added.households += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(added)
}

/// What [`scale`] added.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScaleSummary {
    pub households: u64,
    pub pledges: u64,
    pub receipts: u64,
}

/// Rows a batch of [`scale`] inserts in one transaction (a crash keeps the batches done).
const SCALE_BATCH: i64 = 50_000;

/// Pledge ids a batch of receipts covers (about a third of them get a receipt).
const SCALE_RECEIPT_IDS: i64 = 30_000;

/// A batch's statement timeout: well above what a batch takes on a busy 2-core machine
/// (a few seconds), far below forever (the pool's own is `HASHAR_DB_STATEMENT_TIMEOUT_MS`,
/// made for hops, not bulk inserts).
const SCALE_BATCH_TIMEOUT_MS: u64 = 600_000;

/// The most households and pledges [`scale`] makes (the phone numbers have seven digits).
pub const SCALE_MAX: u64 = 10_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("demo data: at most {SCALE_MAX} generated households and pledges")]
    TooMany,
    #[error("demo data: generated pledges need generated households (--households)")]
    NoHouseholds,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Generated data on top of the demo programme, for benchmarks at scale (issue 10's console
/// benchmark, issue 12's USSD comparison): `households` registered households with phones
/// `+99290` and seven digits (`+992900000000` …), and `pledges` pledges by them to their
/// communities' open projects over the last 12 weeks, one in three received. Idempotent:
/// what exists already is counted, not made again, so a larger figure adds the difference.
/// Written in SQL batches (`generate_series`) rather than row by row: a million pledges
/// take minutes, not hours, and go through the same triggers (codes, sums) as any insert.
pub async fn scale(
    pool: &PgPool,
    households: u64,
    pledges: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ScaleSummary, ScaleError> {
    if households > SCALE_MAX || pledges > SCALE_MAX {
        return Err(ScaleError::TooMany);
    }
    let mut added = ScaleSummary::default();
    let mut from = 0;
    let households = households as i64;
    while from < households {
        let to = (from + SCALE_BATCH).min(households);
        let mut tx = pool.begin().await?;
        crate::store::exports::statement_timeout(&mut tx, SCALE_BATCH_TIMEOUT_MS).await?;
        added.households += demo::scale_households(&mut tx, from, to).await?;
        tx.commit().await?;
        from = to;
    }
    if pledges == 0 {
        return Ok(added);
    }
    let mut conn = pool.acquire().await?;
    if demo::scale_households_count(&mut conn).await? == 0 {
        return Err(ScaleError::NoHouseholds);
    }
    drop(conn);
    let pledges = pledges as i64;
    let mut from = 0;
    while from < pledges {
        let to = (from + SCALE_BATCH).min(pledges);
        let mut tx = pool.begin().await?;
        crate::store::exports::statement_timeout(&mut tx, SCALE_BATCH_TIMEOUT_MS).await?;
        added.pledges += demo::scale_pledges(&mut tx, from, to, now).await?;
        tx.commit().await?;
        from = to;
    }
    // Receipts in batches of pledge ids, one transaction each, like the steps above: one
    // statement for a third of a million receipts updated each project's `project_sums` row
    // tens of thousands of times in one transaction and ran past its timeout. A batch of
    // SCALE_RECEIPT_IDS ids makes about a third as many receipts; an interrupted run keeps
    // the batches done and the next run skips the pledges received already.
    let mut conn = pool.acquire().await?;
    let range = demo::pledge_id_range(&mut conn).await?;
    drop(conn);
    if let Some((first, last)) = range {
        let mut from = first;
        while from <= last {
            let to = from.saturating_add(SCALE_RECEIPT_IDS);
            let mut tx = pool.begin().await?;
            crate::store::exports::statement_timeout(&mut tx, SCALE_BATCH_TIMEOUT_MS).await?;
            added.receipts += demo::scale_receipts(&mut tx, from, to, now).await?;
            tx.commit().await?;
            from = to;
        }
    }
    Ok(added)
}
