//! Communities: the villages and districts households, projects and money belong to.

use sqlx::PgExecutor;

use super::{CommunityId, Localized};

/// A community as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Community {
    pub id: CommunityId,
    pub code: String,
    pub district: String,
    pub name: Localized,
}

macro_rules! community {
    ($r:expr) => {{
        let r = $r;
        Community {
            id: r.id,
            code: r.code,
            district: r.district,
            name: Localized {
                tg: r.name_tg,
                ru: r.name_ru,
                en: r.name_en,
            },
        }
    }};
}

/// Every community, or those of `scope` (`None`: all), by id.
pub async fn list<'e>(
    db: impl PgExecutor<'e>,
    scope: Option<&[i64]>,
) -> Result<Vec<Community>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select id as "id: CommunityId", code, district, name_tg, name_ru, name_en
           from communities where $1::bigint[] is null or id = any($1) order by id"#,
        scope
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| community!(r)).collect())
}

/// The community `id`, if it exists.
pub async fn get<'e>(
    db: impl PgExecutor<'e>,
    id: CommunityId,
) -> Result<Option<Community>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select id as "id: CommunityId", code, district, name_tg, name_ru, name_en
           from communities where id = $1"#,
        id as CommunityId
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| community!(r)))
}

/// Adds a community; a code that exists fails with a unique violation
/// ([`super::Violation::is_unique`]).
pub async fn create<'e>(
    db: impl PgExecutor<'e>,
    code: &str,
    district: &str,
    name: &Localized,
) -> Result<Community, sqlx::Error> {
    let r = sqlx::query!(
        r#"insert into communities (code, district, name_tg, name_ru, name_en) values ($1, $2, $3, $4, $5)
           returning id as "id: CommunityId", code, district, name_tg, name_ru, name_en"#,
        code,
        district,
        name.tg,
        name.ru,
        name.en
    )
    .fetch_one(db)
    .await?;
    Ok(community!(r))
}

/// Changes what is given of a community's district and names; `None` if it does not exist.
pub async fn update<'e>(
    db: impl PgExecutor<'e>,
    id: CommunityId,
    district: Option<&str>,
    name_tg: Option<&str>,
    name_ru: Option<&str>,
    name_en: Option<&str>,
) -> Result<Option<Community>, sqlx::Error> {
    let row = sqlx::query!(
        r#"update communities set district = coalesce($2, district), name_tg = coalesce($3, name_tg),
                  name_ru = coalesce($4, name_ru), name_en = coalesce($5, name_en)
           where id = $1 returning id as "id: CommunityId", code, district, name_tg, name_ru, name_en"#,
        id as CommunityId,
        district,
        name_tg,
        name_ru,
        name_en
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| community!(r)))
}

/// The names of the community `id` (which must exist).
pub async fn name<'e>(db: impl PgExecutor<'e>, id: CommunityId) -> Result<Localized, sqlx::Error> {
    let r = sqlx::query!(
        "select name_tg, name_ru, name_en from communities where id = $1",
        id as CommunityId
    )
    .fetch_one(db)
    .await?;
    Ok(Localized {
        tg: r.name_tg,
        ru: r.name_ru,
        en: r.name_en,
    })
}
