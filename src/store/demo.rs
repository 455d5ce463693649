//! The inserts of `hashar demo-data`: each leaves what exists (by community code, project
//! code within its community, phone number) as it is, so loading the demo twice changes
//! nothing.

use rust_decimal::Decimal;
use sqlx::PgConnection;

use super::{CommunityId, HouseholdId, ProjectId};
use crate::domain::{Language, Phone};

/// A community of the demo; its names in the three languages.
#[derive(Debug)]
pub struct NewCommunity<'a> {
    pub code: &'a str,
    pub district: &'a str,
    pub name_tg: &'a str,
    pub name_ru: &'a str,
    pub name_en: &'a str,
}

/// The community with this code, inserted if new; whether it was.
pub async fn community(
    conn: &mut PgConnection,
    c: &NewCommunity<'_>,
) -> Result<(CommunityId, bool), sqlx::Error> {
    let inserted = sqlx::query_scalar!(
        r#"insert into communities (code, district, name_tg, name_ru, name_en) values ($1, $2, $3, $4, $5)
           on conflict (code) do nothing returning id as "id: CommunityId""#,
        c.code,
        c.district,
        c.name_tg,
        c.name_ru,
        c.name_en,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = inserted {
        return Ok((id, true));
    }
    let id = sqlx::query_scalar!(
        r#"select id as "id: CommunityId" from communities where code = $1"#,
        c.code
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((id, false))
}

/// A project of the demo.
#[derive(Debug)]
pub struct NewProject<'a> {
    pub community: CommunityId,
    pub code: &'a str,
    pub kind: &'a str,
    pub name_tg: &'a str,
    pub name_ru: &'a str,
    pub name_en: &'a str,
    pub target: Decimal,
    pub match_ratio: Decimal,
    pub match_cap: Option<Decimal>,
}

/// Inserts the project unless its community has one with its code; its id if it was new.
pub async fn project_if_new(
    conn: &mut PgConnection,
    p: &NewProject<'_>,
) -> Result<Option<ProjectId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"insert into projects (community_id, code, kind, name_tg, name_ru, name_en, target, match_ratio, match_cap)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           on conflict (community_id, code) do nothing returning id as "id: ProjectId""#,
        p.community as CommunityId,
        p.code,
        p.kind,
        p.name_tg,
        p.name_ru,
        p.name_en,
        p.target,
        p.match_ratio,
        p.match_cap,
    )
    .fetch_optional(conn)
    .await
}

/// Money the demo's project has received already: one cash receipt (in TJS, today).
pub async fn received(
    conn: &mut PgConnection,
    project: ProjectId,
    amount: Decimal,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into receipts (project_id, amount, currency, received_on, method, recorded_by)
         values ($1, $2, 'TJS', current_date, 'cash', 'demo-data')",
        project as ProjectId,
        amount,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Registers a household with its phone unless the number is known; its id if it was new.
pub async fn household_if_new(
    conn: &mut PgConnection,
    community: CommunityId,
    name: &str,
    language: Language,
    phone: &Phone,
) -> Result<Option<HouseholdId>, sqlx::Error> {
    let known = sqlx::query_scalar!(
        r#"select exists (select 1 from phones where phone = $1) as "known!""#,
        phone.as_str()
    )
    .fetch_one(&mut *conn)
    .await?;
    if known {
        return Ok(None);
    }
    let household = sqlx::query_scalar!(
        r#"insert into households (community_id, name, language, registered_via) values ($1, $2, $3, 'demo')
           returning id as "id: HouseholdId""#,
        community as CommunityId,
        name,
        language.code(),
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!(
        "insert into phones (phone, household_id) values ($1, $2)",
        phone.as_str(),
        household as HouseholdId,
    )
    .execute(&mut *conn)
    .await?;
    Ok(Some(household))
}
