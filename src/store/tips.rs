//! Budgeting tips (`tips`) and which of them each household has seen, round by round
//! (`tip_views`).
//!
//! [`Tip`] keeps a plain `i64` id: it is the API's body as it is.

use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use utoipa::ToSchema;

use super::{HouseholdId, Localized};

#[derive(Debug, Serialize, ToSchema)]
pub struct Tip {
    pub id: i64,
    pub code: String,
    /// Tips are shown in this order (then by id).
    pub position: i32,
    pub active: bool,
    pub text_tg: String,
    pub text_ru: String,
    pub text_en: String,
}

/// Every tip (only the active or inactive ones with `active`), in the order they are shown.
pub async fn list<'e>(
    db: impl PgExecutor<'e>,
    active: Option<bool>,
) -> Result<Vec<Tip>, sqlx::Error> {
    sqlx::query_as!(
        Tip,
        "select id, code, position, active, text_tg, text_ru, text_en from tips
         where $1::boolean is null or active = $1 order by position, id",
        active
    )
    .fetch_all(db)
    .await
}

/// Tip `id`, if there is one.
pub async fn get<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<Option<Tip>, sqlx::Error> {
    sqlx::query_as!(
        Tip,
        "select id, code, position, active, text_tg, text_ru, text_en from tips where id = $1",
        id
    )
    .fetch_optional(db)
    .await
}

/// A tip to add.
#[derive(Debug, Clone, Copy)]
pub struct NewTip<'a> {
    pub code: &'a str,
    /// `None`: after the last tip.
    pub position: Option<i32>,
    pub active: bool,
    pub text_tg: &'a str,
    pub text_ru: &'a str,
    pub text_en: &'a str,
}

/// Adds a tip; a code that is taken fails with a unique violation
/// ([`super::Violation::is_unique`]).
pub async fn create<'e>(db: impl PgExecutor<'e>, t: &NewTip<'_>) -> Result<Tip, sqlx::Error> {
    sqlx::query_as!(
        Tip,
        r#"insert into tips (code, position, active, text_tg, text_ru, text_en)
           values ($1, coalesce($2, (select coalesce(max(position), -1) + 1 from tips)), $3, $4, $5, $6)
           returning id, code, position, active, text_tg, text_ru, text_en"#,
        t.code,
        t.position,
        t.active,
        t.text_tg,
        t.text_ru,
        t.text_en
    )
    .fetch_one(db)
    .await
}

/// What changes of a tip: `Some` fields are set.
#[derive(Debug, Clone, Copy, Default)]
pub struct TipChange<'a> {
    pub text_tg: Option<&'a str>,
    pub text_ru: Option<&'a str>,
    pub text_en: Option<&'a str>,
    pub position: Option<i32>,
    pub active: Option<bool>,
}

/// Changes tip `id`; `false` when there is no such tip.
pub async fn update<'e>(
    db: impl PgExecutor<'e>,
    id: i64,
    c: &TipChange<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update tips set text_tg = coalesce($2, text_tg), text_ru = coalesce($3, text_ru),
                text_en = coalesce($4, text_en), position = coalesce($5, position),
                active = coalesce($6, active)
         where id = $1",
        id,
        c.text_tg,
        c.text_ru,
        c.text_en,
        c.position,
        c.active
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// Adds the tip `code` at `position` unless a tip has that code already (then it is left
/// as it is); `true` when it was added.
pub async fn add_if_missing(
    conn: &mut PgConnection,
    code: &str,
    position: i32,
    text: &Localized,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "insert into tips (code, position, text_tg, text_ru, text_en) values ($1, $2, $3, $4, $5)
         on conflict (code) do nothing",
        code,
        position,
        text.tg,
        text.ru,
        text.en
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// A tip to show: its id and its text in each language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipText {
    pub id: i64,
    pub text: Localized,
}

/// The first active tip, if there is one.
pub async fn first_active(conn: &mut PgConnection) -> Result<Option<TipText>, sqlx::Error> {
    let row = sqlx::query!(
        "select t.id, t.text_tg, t.text_ru, t.text_en from tips t
         where t.active order by t.position, t.id limit 1"
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| TipText {
        id: r.id,
        text: Localized {
            tg: r.text_tg,
            ru: r.text_ru,
            en: r.text_en,
        },
    }))
}

/// The first active tip `household` has not seen in `round`, if there is one.
pub async fn first_unseen(
    conn: &mut PgConnection,
    household: HouseholdId,
    round: i32,
) -> Result<Option<TipText>, sqlx::Error> {
    let row = sqlx::query!(
        "select t.id, t.text_tg, t.text_ru, t.text_en from tips t
         where t.active and not exists (
             select 1 from tip_views v where v.household_id = $1 and v.round = $2 and v.tip_id = t.id)
         order by t.position, t.id limit 1",
        household as HouseholdId,
        round
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| TipText {
        id: r.id,
        text: Localized {
            tg: r.text_tg,
            ru: r.text_ru,
            en: r.text_en,
        },
    }))
}

/// The household's current round of tips (1 before it saw any).
pub async fn current_round(
    conn: &mut PgConnection,
    household: HouseholdId,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select coalesce(max(round), 1) as "round!" from tip_views where household_id = $1"#,
        household as HouseholdId
    )
    .fetch_one(conn)
    .await
}

/// Records that `household` was shown `tip` in `round` (once).
pub async fn mark_seen(
    conn: &mut PgConnection,
    household: HouseholdId,
    round: i32,
    tip: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into tip_views (household_id, round, tip_id) values ($1, $2, $3) on conflict do nothing",
        household as HouseholdId,
        round,
        tip
    )
    .execute(conn)
    .await?;
    Ok(())
}
