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
