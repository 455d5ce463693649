//! `hashar demo-data`: a realistic demo programme (src/demo/demo.toml), loaded idempotently.

use rust_decimal::Decimal;
use serde::Deserialize;
use sqlx::PgPool;

use crate::domain::{Language, Phone};

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
        let inserted: Option<i64> = sqlx::query_scalar(
            "insert into communities (code, district, name_tg, name_ru, name_en) values ($1, $2, $3, $4, $5)
             on conflict (code) do nothing returning id",
        )
        .bind(&c.code)
        .bind(&c.district)
        .bind(&c.name_tg)
        .bind(&c.name_ru)
        .bind(&c.name_en)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_some() {
            added.communities += 1;
        }
        let community: i64 = sqlx::query_scalar("select id from communities where code = $1")
            .bind(&c.code)
            .fetch_one(&mut *tx)
            .await?;
        for p in &c.project {
            let project: Option<i64> = sqlx::query_scalar(
                "insert into projects (community_id, code, kind, name_tg, name_ru, name_en, target, match_ratio, match_cap)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 on conflict (community_id, code) do nothing returning id",
            )
            .bind(community)
            .bind(&p.code)
            .bind(&p.kind)
            .bind(&p.name_tg)
            .bind(&p.name_ru)
            .bind(&p.name_en)
            .bind(p.target)
            .bind(p.match_ratio)
            .bind(p.match_cap)
            .fetch_optional(&mut *tx)
            .await?;
            if let (Some(project), Some(received)) = (project, p.received) {
                sqlx::query(
                    "insert into receipts (project_id, amount, currency, received_on, method, recorded_by)
                     values ($1, $2, 'TJS', current_date, 'cash', 'demo-data')",
                )
                .bind(project)
                .bind(received)
                .execute(&mut *tx)
                .await?;
            }
            if project.is_some() {
                added.projects += 1;
            }
        }
        for h in &c.household {
            let phone = Phone::parse(&h.phone).map_err(|e| DemoError::Phone(h.phone.clone(), e))?;
            let known: bool =
                sqlx::query_scalar("select exists (select 1 from phones where phone = $1)")
                    .bind(phone.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            if known {
                continue;
            }
            let household: i64 = sqlx::query_scalar(
                "insert into households (community_id, name, language, registered_via) values ($1, $2, $3, 'demo') returning id",
            )
            .bind(community)
            .bind(&h.name)
            .bind(h.language.code())
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("insert into phones (phone, household_id) values ($1, $2)")
                .bind(phone.as_str())
                .bind(household)
                .execute(&mut *tx)
                .await?;
            added.households += 1;
        }
    }
    tx.commit().await?;
    Ok(added)
}
