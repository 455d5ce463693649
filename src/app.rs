//! Shared state of a running server.

use std::sync::Arc;

use sqlx::PgPool;

use crate::{
    clock::{Clock, SystemClock},
    config::Config,
    engine::{check, MenuSet, Vars},
    ussd::LanguageHints,
};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub menus: Arc<MenuSet>,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub hints: Arc<LanguageHints>,
    /// Values every text may use.
    pub globals: Arc<Vars>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("loading menus: {0}")]
    Load(#[from] crate::engine::menu::LoadError),
    #[error("the menus are broken:\n{}", .0.join("\n"))]
    Broken(Vec<String>),
}

/// Loads and checks the menus; a broken menu is an error, never a half-working server.
pub fn load_checked_menus(config: &Config) -> Result<MenuSet, StartError> {
    let set = MenuSet::load_dir(&config.menus_dir)?;
    let errors = check::check(&set, config.screen_limits());
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(StartError::Broken(errors))
    }
}

impl AppState {
    pub fn new(pool: PgPool, menus: MenuSet, config: Config) -> AppState {
        AppState::with_clock(pool, menus, config, Arc::new(SystemClock))
    }

    pub fn with_clock(
        pool: PgPool,
        menus: MenuSet,
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> AppState {
        // The first text or hop would otherwise pay for loading the numbering plans.
        crate::domain::Phone::warm_up();
        let mut globals = Vars::new();
        globals.insert("hotline".into(), config.hotline.clone());
        globals.insert("sms_number".into(), config.sms_number.clone());
        globals.insert(
            "max".into(),
            crate::domain::money::format_amount(config.max_pledge),
        );
        AppState {
            pool,
            menus: Arc::new(menus),
            config: Arc::new(config),
            clock,
            hints: Arc::new(LanguageHints::default()),
            globals: Arc::new(globals),
        }
    }
}
