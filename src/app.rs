//! Shared state of a running server.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::{
    clock::{Clock, SystemClock},
    config::{Config, InvalidSettings, Settings},
    engine::{check, MenuSet, Vars},
    hints::LanguageHints,
};

/// The text a screen shows in place of the hotline when `HASHAR_HOTLINE` is not set.
pub const HOTLINE_UNKNOWN: &str = "migration.hotline_unknown";
pub use crate::engine::check::HOTLINE_LINE;

#[derive(Clone)]
pub struct AppState {
    /// The webhooks' pool (USSD hops, SMS and delivery reports, dispatchers). Inside the
    /// admin API's routes this is the API's pool: see [`AppState::for_api`].
    pub pool: PgPool,
    /// The admin API's own pool (the same as `pool` unless [`AppState::with_api_pool`]).
    pub api_pool: PgPool,
    /// CSV exports reading from the database now (`HASHAR_EXPORTS_MAX_CONCURRENT`).
    pub exports: Arc<tokio::sync::Semaphore>,
    pub menus: Arc<MenuSet>,
    pub config: Arc<Config>,
    /// The settings that are text in `config`, parsed once (quiet hours, SMS rate, price
    /// currency): use these, not their text.
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    pub hints: Arc<LanguageHints>,
    /// Values every text may use.
    pub globals: Arc<Vars>,
    /// What USSD hops read, in memory while [`AppState::follow_database`] runs.
    pub cache: crate::cache::Cache,
    /// Pledge codes made ahead by this process for its USSD pledges (`store::pledge_codes`).
    pub pledge_codes: crate::store::pledge_codes::PledgeCodes,
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
    /// Queues the SMS text `key` of the menus in `language`, its placeholders filled from
    /// `vars`, to `to`, inside the caller's transaction (the one way a text of the menus
    /// becomes an SMS outside a conversation's reply: receipts, link codes, alerts, late
    /// pledges), queued as of the application's clock.
    pub async fn queue_text(
        &self,
        conn: &mut sqlx::PgConnection,
        to: &crate::domain::Phone,
        language: crate::domain::Language,
        key: &str,
        vars: &Vars,
        kind: crate::outbox::Kind,
    ) -> Result<i64, sqlx::Error> {
        let text =
            crate::engine::menu::fill(self.menus.text(language, key), |n| vars.get(n).cloned());
        crate::outbox::enqueue(
            conn,
            &crate::outbox::NewMessage {
                to,
                body: &text,
                kind,
                inbound_id: None,
            },
            self.config.sms_provider.name(),
            self.config.sms_max_segments,
            self.clock.now(),
        )
        .await
    }

    /// The state of a server with these settings; refused, naming every bad one, like
    /// `serve` refuses them at start.
    pub fn new(pool: PgPool, menus: MenuSet, config: Config) -> Result<AppState, InvalidSettings> {
        AppState::with_clock(pool, menus, config, Arc::new(SystemClock))
    }

    pub fn with_clock(
        pool: PgPool,
        menus: MenuSet,
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<AppState, InvalidSettings> {
        let settings = config.settings()?;
        // The first text or hop would otherwise pay for loading the numbering plans.
        crate::domain::Phone::warm_up();
        let mut globals = Vars::new();
        match config.hotline.as_deref().map(str::trim) {
            Some(hotline) if !hotline.is_empty() => {
                globals.insert("hotline".into(), hotline.to_owned());
                for lang in crate::domain::Language::ALL {
                    let line = crate::engine::menu::fill(menus.text(lang, HOTLINE_LINE), |n| {
                        (n == "hotline").then(|| hotline.to_owned())
                    });
                    globals.insert(format!("hotline_line.{lang}"), format!("\n{line}"));
                }
            }
            // No number: the hotline screen says in each language where to ask for it (a
            // global `name.lang` is what a text in that language uses, see
            // `engine::lookup`), and the topics leave their hotline line out.
            _ => {
                for lang in crate::domain::Language::ALL {
                    globals.insert(
                        format!("hotline.{lang}"),
                        menus.text(lang, HOTLINE_UNKNOWN).to_owned(),
                    );
                    globals.insert(format!("hotline_line.{lang}"), String::new());
                }
            }
        }
        globals.insert("sms_number".into(), config.sms_number.clone());
        globals.insert(
            "max".into(),
            crate::domain::money::format_amount(config.max_pledge),
        );
        // Validated: 1 to 100.
        let exports = config.exports_max_concurrent as usize;
        Ok(AppState {
            api_pool: pool.clone(),
            pool,
            exports: Arc::new(tokio::sync::Semaphore::new(exports)),
            menus: Arc::new(menus),
            config: Arc::new(config),
            settings,
            clock,
            hints: Arc::new(LanguageHints::default()),
            globals: Arc::new(globals),
            cache: crate::cache::Cache::default(),
            pledge_codes: crate::store::pledge_codes::PledgeCodes::default(),
        })
    }

    /// Keeps the hop cache right until `until` completes (see [`crate::cache`]); nothing
    /// when the cache is off (`HASHAR_USSD_CACHE=false`): every hop reads the database.
    pub fn follow_database(
        &self,
        until: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.config.ussd_cache.then(|| {
            self.cache.follow(
                self.pool.clone(),
                self.clock.clone(),
                Duration::from_secs(self.config.ussd_session_ttl_secs),
                until,
            )
        })
    }

    /// The admin API's connections come from `api`, apart from the webhooks'.
    pub fn with_api_pool(mut self, api: PgPool) -> AppState {
        self.api_pool = api;
        self
    }

    /// The state the admin API's routes see: `pool` is the API's pool, so that no API
    /// handler can take a webhook connection.
    pub fn for_api(&self) -> AppState {
        AppState {
            pool: self.api_pool.clone(),
            ..self.clone()
        }
    }
}
