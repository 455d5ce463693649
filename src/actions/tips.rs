//! Budgeting and safe-migration tips: the next one a household has not seen (an effect,
//! since it moves the household's round on), and the tips file synchronised at start.

use sqlx::{PgConnection, PgPool};

use super::{ActionError, EffectCtx};
use crate::{
    domain::Language,
    engine::Vars,
    store::{
        households::{self, owner_of_phone},
        tips::{self, TipText},
        Localized,
    },
};

/// The next tip this household has not seen in the current round; a new round starts
/// once every active tip was seen. Callers without a household get the first tip.
pub(super) async fn next_tip(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
) -> Result<Vars, ActionError> {
    let household = owner_of_phone(conn, ctx.phone).await?.map(|o| o.household);
    let Some(household) = household else {
        let tip = tips::first_active(conn).await?;
        return Ok(tip_vars(tip));
    };
    // Serialise concurrent sessions of one household on its row.
    households::lock(conn, household).await?;
    let mut round = tips::current_round(conn, household).await?;
    let mut tip = tips::first_unseen(conn, household, round).await?;
    if tip.is_none() {
        round += 1;
        tip = tips::first_unseen(conn, household, round).await?;
    }
    if let Some(t) = &tip {
        tips::mark_seen(conn, household, round, t.id).await?;
    }
    Ok(tip_vars(tip))
}

fn tip_vars(tip: Option<TipText>) -> Vars {
    let mut out = Vars::new();
    // No active tip at all: an empty text rather than a visible placeholder.
    out.insert("tip".into(), String::new());
    if let Some(t) = tip {
        for lang in Language::ALL {
            out.insert(format!("tip.{lang}"), t.text.get(lang).to_owned());
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
    for (i, tip) in file.tip.into_iter().enumerate() {
        let text = Localized {
            tg: tip.tg,
            ru: tip.ru,
            en: tip.en,
        };
        let position = i32::try_from(i).unwrap_or(i32::MAX);
        if tips::add_if_missing(&mut tx, &tip.code, position, &text).await? {
            added += 1;
        }
    }
    tx.commit().await?;
    Ok(added)
}
