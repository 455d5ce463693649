//! Projects: one by id, and the lists a community's households choose from.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{types::Json, PgConnection};

use super::{CommunityId, Localized, ProjectId};
use crate::engine::Vars;

/// A project's community, name and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: ProjectId,
    pub community: CommunityId,
    pub name: Localized,
    pub currency: String,
}

/// Project `id`, if there is one.
pub async fn get(conn: &mut PgConnection, id: ProjectId) -> Result<Option<Project>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select id as "id: ProjectId", community_id as "community: CommunityId",
                  name_tg, name_ru, name_en, currency
           from projects where id = $1"#,
        id as ProjectId
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Project {
        id: r.id,
        community: r.community,
        name: Localized {
            tg: r.name_tg,
            ru: r.name_ru,
            en: r.name_en,
        },
        currency: r.currency,
    }))
}

/// A project as a list of a community's projects shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectItem {
    pub id: ProjectId,
    /// What a keyword names it by (`BRIDGE`).
    pub code: String,
    pub name: Localized,
    pub currency: String,
}

/// The community's open projects, by id.
pub async fn open_in(
    conn: &mut PgConnection,
    community: CommunityId,
) -> Result<Vec<ProjectItem>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select id as "id: ProjectId", code, name_tg, name_ru, name_en, currency from projects
           where community_id = $1 and status = 'open' order by id"#,
        community as CommunityId
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ProjectItem {
            id: r.id,
            code: r.code,
            name: Localized {
                tg: r.name_tg,
                ru: r.name_ru,
                en: r.name_en,
            },
            currency: r.currency,
        })
        .collect())
}

/// The projects a conversation lists: open ones and those closed after `since` (SQL
/// function `listed_projects`, the rule USSD follows too).
pub async fn listed(
    conn: &mut PgConnection,
    community: CommunityId,
    since: DateTime<Utc>,
) -> Result<Vec<ProjectItem>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select id as "id!: ProjectId", code as "code!", name_tg as "name_tg!",
                  name_ru as "name_ru!", name_en as "name_en!", currency as "currency!"
           from listed_projects($1, $2)"#,
        community as CommunityId,
        since
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ProjectItem {
            id: r.id,
            code: r.code,
            name: Localized {
                tg: r.name_tg,
                ru: r.name_ru,
                en: r.name_en,
            },
            currency: r.currency,
        })
        .collect())
}

/// A project's figures from the `project_totals` view, formatted for a screen (SQL function
/// `project_total_texts`); `None` when there is no such project.
pub async fn total_texts(
    conn: &mut PgConnection,
    project: ProjectId,
) -> Result<Option<Vars>, sqlx::Error> {
    let totals = sqlx::query_scalar!(
        r#"select project_total_texts($1) as "totals: Json<Vars>""#,
        project as ProjectId
    )
    .fetch_one(conn)
    .await?;
    Ok(totals.map(|Json(v)| v))
}

/// The rate from `base` to `quote` on `day`'s date (the latest valid then), if one is known.
pub async fn exchange_rate(
    conn: &mut PgConnection,
    base: &str,
    quote: &str,
    day: DateTime<Utc>,
) -> Result<Option<Decimal>, sqlx::Error> {
    sqlx::query_scalar!(
        "select rate from exchange_rates where base = $1 and quote = $2 and valid_from <= $3::timestamptz::date
         order by valid_from desc limit 1",
        base,
        quote,
        day
    )
    .fetch_optional(conn)
    .await
}
