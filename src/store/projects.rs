//! Projects: one by id, and the lists a community's households choose from.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{types::Json, PgConnection};

use super::{CommunityId, Localized, ProjectId, Texts};

/// Whether households may pledge to a project (`projects.status`). Closing it sets
/// `closed_at` (a trigger), which keeps it in conversations that listed it for a while.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    sqlx::Type,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    Open,
    Closed,
}

text_values!(ProjectStatus {
    Open => "open",
    Closed => "closed",
});

/// What a project builds (`projects.kind`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    sqlx::Type,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ProjectKind {
    Infrastructure,
    Business,
}

text_values!(ProjectKind {
    Infrastructure => "infrastructure",
    Business => "business",
});

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
    /// When it closed (open: none).
    pub closed_at: Option<DateTime<Utc>>,
    /// Closed after its target was reached (`project_target_reached`).
    pub completed: bool,
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
            closed_at: None,
            completed: false,
        })
        .collect())
}

/// The projects a conversation lists: open ones and those closed after `since` (SQL
/// function `listed_projects`, the rule USSD follows too), each with when it closed and
/// whether it was completed.
pub async fn listed(
    conn: &mut PgConnection,
    community: CommunityId,
    since: DateTime<Utc>,
) -> Result<Vec<ProjectItem>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select id as "id!: ProjectId", code as "code!", name_tg as "name_tg!",
                  name_ru as "name_ru!", name_en as "name_en!", currency as "currency!", closed_at,
                  status = 'closed' and exists (select 1 from project_target_reached r where r.project_id = p.id)
                      as "completed!"
           from listed_projects($1, $2) p"#,
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
            closed_at: r.closed_at,
            completed: r.completed,
        })
        .collect())
}

/// A project's figures from the `project_totals` view, formatted for a screen (SQL function
/// `project_total_texts`); `None` when there is no such project.
pub async fn total_texts(
    conn: &mut PgConnection,
    project: ProjectId,
) -> Result<Option<Texts>, sqlx::Error> {
    let totals = sqlx::query_scalar!(
        r#"select project_total_texts($1) as "totals: Json<Texts>""#,
        project as ProjectId
    )
    .fetch_one(conn)
    .await?;
    Ok(totals.map(|Json(v)| v))
}

/// [`total_texts`] of each of `projects`, in their order, in one statement.
pub async fn total_texts_of(
    conn: &mut PgConnection,
    projects: &[ProjectId],
) -> Result<Vec<Option<Texts>>, sqlx::Error> {
    let ids: Vec<i64> = projects.iter().map(|p| p.0).collect();
    let rows = sqlx::query_scalar!(
        r#"select project_total_texts(t.id) as "totals: Json<Texts>"
           from unnest($1::bigint[]) with ordinality t(id, n) order by t.n"#,
        &ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|t| t.map(|Json(v)| v)).collect())
}

/// The rate from `base` to `quote` on `day`'s date (the latest valid then), if one is known.
pub async fn exchange_rate(
    conn: &mut PgConnection,
    base: &str,
    quote: &str,
    day: chrono::NaiveDate,
) -> Result<Option<Decimal>, sqlx::Error> {
    sqlx::query_scalar!(
        "select rate from exchange_rates where base = $1 and quote = $2 and valid_from <= $3
         order by valid_from desc limit 1",
        base,
        quote,
        day
    )
    .fetch_optional(conn)
    .await
}

/// A project with its figures from the `project_totals` view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectTotals {
    pub id: ProjectId,
    pub community: CommunityId,
    pub code: String,
    pub kind: ProjectKind,
    pub name: Localized,
    pub currency: String,
    pub target: Decimal,
    pub match_ratio: Decimal,
    pub match_cap: Option<Decimal>,
    pub status: ProjectStatus,
    pub pledged: Decimal,
    pub outstanding: Decimal,
    pub received: Decimal,
    pub matched: Decimal,
    pub matched_total: Decimal,
    pub percent: Decimal,
}

macro_rules! project_totals {
    ($r:expr) => {
        ProjectTotals {
            id: $r.id,
            community: $r.community,
            code: $r.code,
            kind: $r.kind,
            name: Localized {
                tg: $r.name_tg,
                ru: $r.name_ru,
                en: $r.name_en,
            },
            currency: $r.currency,
            target: $r.target,
            match_ratio: $r.match_ratio,
            match_cap: $r.match_cap,
            status: $r.status,
            pledged: $r.pledged,
            outstanding: $r.outstanding,
            received: $r.received,
            matched: $r.matched,
            matched_total: $r.matched_total,
            percent: $r.percent,
        }
    };
}

/// Projects with their figures, by community and id: those of the communities in `scope`
/// (`None`: all), of `community` and with `status`, each filter optional.
pub async fn list_totals(
    conn: &mut PgConnection,
    scope: Option<&[i64]>,
    community: Option<CommunityId>,
    status: Option<ProjectStatus>,
) -> Result<Vec<ProjectTotals>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select p.id as "id: ProjectId", p.community_id as "community: CommunityId", p.code,
                  p.kind as "kind: ProjectKind", p.name_tg, p.name_ru, p.name_en, p.currency, p.target,
                  p.match_ratio, p.match_cap, p.status as "status: ProjectStatus",
                  t.pledged as "pledged!", t.outstanding as "outstanding!", t.received as "received!",
                  t.matched as "matched!", t.matched_total as "matched_total!", t.percent as "percent!"
           from projects p join project_totals t on t.project_id = p.id
           where ($1::bigint[] is null or p.community_id = any($1))
             and ($2::bigint is null or p.community_id = $2)
             and ($3::text is null or p.status = $3)
           order by p.community_id, p.id"#,
        scope,
        community as Option<CommunityId>,
        status as Option<ProjectStatus>
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| project_totals!(r)).collect())
}

/// Project `id` with its figures.
pub async fn totals(
    conn: &mut PgConnection,
    id: ProjectId,
) -> Result<Option<ProjectTotals>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select p.id as "id: ProjectId", p.community_id as "community: CommunityId", p.code,
                  p.kind as "kind: ProjectKind", p.name_tg, p.name_ru, p.name_en, p.currency, p.target,
                  p.match_ratio, p.match_cap, p.status as "status: ProjectStatus",
                  t.pledged as "pledged!", t.outstanding as "outstanding!", t.received as "received!",
                  t.matched as "matched!", t.matched_total as "matched_total!", t.percent as "percent!"
           from projects p join project_totals t on t.project_id = p.id
           where p.id = $1"#,
        id as ProjectId
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| project_totals!(r)))
}

/// A project to create (names already trimmed).
#[derive(Debug)]
pub struct NewProject<'a> {
    pub community: CommunityId,
    pub code: &'a str,
    pub kind: ProjectKind,
    pub name: [&'a str; 3],
    pub target: Decimal,
    pub currency: &'a str,
    pub match_ratio: Decimal,
    pub match_cap: Option<Decimal>,
}

/// Creates the project. A code the community already has fails with a unique violation, an
/// unknown community with a foreign-key violation ([`super::Violation`]).
pub async fn create(conn: &mut PgConnection, p: &NewProject<'_>) -> Result<ProjectId, sqlx::Error> {
    sqlx::query_scalar!(
        r#"insert into projects (community_id, code, kind, name_tg, name_ru, name_en, target, currency, match_ratio, match_cap)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning id as "id: ProjectId""#,
        p.community as CommunityId,
        p.code,
        p.kind as ProjectKind,
        p.name[0],
        p.name[1],
        p.name[2],
        p.target,
        p.currency,
        p.match_ratio,
        p.match_cap
    )
    .fetch_one(conn)
    .await
}

/// What an edit of a project changes (`None`: unchanged; `match_cap: Some(None)` removes the
/// cap).
#[derive(Debug, Default)]
pub struct ProjectChange {
    pub target: Option<Decimal>,
    pub match_ratio: Option<Decimal>,
    pub match_cap: Option<Option<Decimal>>,
    pub status: Option<ProjectStatus>,
}

/// Applies `c` to project `id`.
pub async fn change(
    conn: &mut PgConnection,
    id: ProjectId,
    c: &ProjectChange,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update projects set target = coalesce($2, target), match_ratio = coalesce($3, match_ratio),
                match_cap = case when $4 then $5 else match_cap end, status = coalesce($6, status)
         where id = $1",
        id as ProjectId,
        c.target,
        c.match_ratio,
        c.match_cap.is_some(),
        c.match_cap.flatten(),
        c.status as Option<ProjectStatus>
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A project's receipts and their reversals, newest first (at most `limit`).
pub async fn receipts_of(
    conn: &mut PgConnection,
    project: ProjectId,
    limit: i64,
) -> Result<Vec<super::money::Receipt>, sqlx::Error> {
    sqlx::query_as!(
        super::money::Receipt,
        r#"select id, project_id, pledge_id, household_id, amount, currency, received_on,
                method as "method: crate::store::money::ReceiptMethod", receipt_no, recorded_by, recorded_at,
                reverses, reason
         from receipts where project_id = $1 order by id desc limit $2"#,
        project as ProjectId,
        limit
    )
    .fetch_all(conn)
    .await
}
