//! Budgeting and safe-migration tips: the next one a household has not seen (an effect,
//! since it moves the household's round on), and the tips file synchronised at start.

use sqlx::{PgConnection, PgPool, Row};

use super::{ActionError, EffectCtx};
use crate::{domain::Language, engine::Vars, store::households::owner_of_phone};

/// The next tip this household has not seen in the current round; a new round starts
/// once every active tip was seen. Callers without a household get the first tip.
pub(super) async fn next_tip(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
) -> Result<Vars, ActionError> {
    let household = owner_of_phone(conn, ctx.phone)
        .await?
        .map(|o| o.household.0);
    let pick = |round_filter: bool| {
        let sql = if round_filter {
            "select t.id, t.text_tg, t.text_ru, t.text_en from tips t
             where t.active and not exists (
                 select 1 from tip_views v where v.household_id = $1 and v.round = $2 and v.tip_id = t.id)
             order by t.position, t.id limit 1"
        } else {
            "select t.id, t.text_tg, t.text_ru, t.text_en from tips t where t.active order by t.position, t.id limit 1"
        };
        sqlx::query(sql)
    };
    let Some(household) = household else {
        let row = pick(false).fetch_optional(&mut *conn).await?;
        return Ok(tip_vars(row));
    };
    // Serialise concurrent sessions of one household on its row.
    sqlx::query("select 1 from households where id = $1 for update")
        .bind(household)
        .execute(&mut *conn)
        .await?;
    let mut round: i32 =
        sqlx::query_scalar("select coalesce(max(round), 1) from tip_views where household_id = $1")
            .bind(household)
            .fetch_one(&mut *conn)
            .await?;
    let mut row = pick(true)
        .bind(household)
        .bind(round)
        .fetch_optional(&mut *conn)
        .await?;
    if row.is_none() {
        round += 1;
        row = pick(true)
            .bind(household)
            .bind(round)
            .fetch_optional(&mut *conn)
            .await?;
    }
    if let Some(r) = &row {
        let tip: i64 = r.get(0);
        sqlx::query("insert into tip_views (household_id, round, tip_id) values ($1, $2, $3) on conflict do nothing")
            .bind(household)
            .bind(round)
            .bind(tip)
            .execute(&mut *conn)
            .await?;
    }
    Ok(tip_vars(row))
}

fn tip_vars(row: Option<sqlx::postgres::PgRow>) -> Vars {
    let mut out = Vars::new();
    // No active tip at all: an empty text rather than a visible placeholder.
    out.insert("tip".into(), String::new());
    if let Some(r) = row {
        for (i, lang) in Language::ALL.iter().enumerate() {
            out.insert(format!("tip.{lang}"), r.get::<String, _>(i + 1));
        }
    }
    out
}

#[derive(Debug, serde::Deserialize)]
struct TipsFile {
    tip: Vec<TipEntry>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TipEntry {
    code: String,
    tg: String,
    ru: String,
    en: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TipsError {
    #[error("{0}: {1}")]
    Read(std::path::PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(std::path::PathBuf, String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Adds the tips of `menus/tips.toml` that the database does not have yet (by code).
/// Tips already there are left alone, so edits made by coordinators are kept.
pub async fn sync_tips(pool: &PgPool, path: &std::path::Path) -> Result<u64, TipsError> {
    let source = std::fs::read_to_string(path).map_err(|e| TipsError::Read(path.to_owned(), e))?;
    let file: TipsFile = toml::from_str(&source)
        .map_err(|e| TipsError::Parse(path.to_owned(), e.message().to_owned()))?;
    let mut added = 0;
    let mut tx = pool.begin().await?;
    for (i, tip) in file.tip.iter().enumerate() {
        added += sqlx::query(
            "insert into tips (code, position, text_tg, text_ru, text_en) values ($1, $2, $3, $4, $5)
             on conflict (code) do nothing",
        )
        .bind(&tip.code)
        .bind(i32::try_from(i).unwrap_or(i32::MAX))
        .bind(&tip.tg)
        .bind(&tip.ru)
        .bind(&tip.en)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(added)
}
