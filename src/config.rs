//! Settings: every one has a default that works on a developer's machine, and an
//! environment variable that overrides it (listed in the README).

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;
use rust_decimal::Decimal;

use crate::domain::{text::ScreenLimits, Language};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@localhost:5432/hashar";

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// PostgreSQL URL; the database is created if missing and migrated at start.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Address the HTTP server listens on.
    #[arg(long, env = "HASHAR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory with the menus (`*.toml`, `locales/`, `tips.toml`).
    #[arg(long, env = "HASHAR_MENUS_DIR", default_value = "menus")]
    pub menus_dir: PathBuf,

    /// Where Hashar keeps local state (the private PostgreSQL cluster, if it starts one).
    #[arg(long, env = "HASHAR_DATA_DIR", default_value = ".hashar")]
    pub data_dir: PathBuf,

    /// Start a private PostgreSQL cluster under the data dir when the default database
    /// does not answer and PostgreSQL's server binaries are installed.
    #[arg(long, env = "HASHAR_PRIVATE_CLUSTER", default_value_t = true, action = clap::ArgAction::Set)]
    pub private_cluster: bool,

    /// Language of screens shown before a caller has chosen one.
    #[arg(long, env = "HASHAR_DEFAULT_LANGUAGE", default_value = "tg")]
    pub default_language: Language,

    /// Largest amount one pledge may have, in the project's currency.
    #[arg(long, env = "HASHAR_MAX_PLEDGE", default_value = "100000")]
    pub max_pledge: Decimal,

    /// A USSD session older than this starts over at the first screen.
    #[arg(long, env = "HASHAR_USSD_SESSION_TTL_SECS", default_value_t = 300)]
    pub ussd_session_ttl_secs: u64,

    /// How long a hop may wait for the database before the caller is told to try again.
    #[arg(long, env = "HASHAR_DB_TIMEOUT_MS", default_value_t = 800)]
    pub db_timeout_ms: u64,

    /// Database connections per server process.
    #[arg(long, env = "HASHAR_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: u32,

    /// The Information Centre hotline shown on the safe-migration screens.
    #[arg(
        long,
        env = "HASHAR_HOTLINE",
        default_value = "ask your resource centre"
    )]
    pub hotline: String,

    /// Largest USSD screen in GSM-7 septets (protocol maximum 182).
    #[arg(long, env = "HASHAR_USSD_LIMIT_GSM7", default_value_t = 160)]
    pub ussd_limit_gsm7: usize,

    /// Largest USSD screen in UCS-2 characters (protocol maximum 80).
    #[arg(long, env = "HASHAR_USSD_LIMIT_UCS2", default_value_t = 80)]
    pub ussd_limit_ucs2: usize,
}

#[derive(clap::Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// The defaults (and any environment overrides), as `hashar serve` would see them.
    pub fn from_env() -> Config {
        use clap::Parser;
        DefaultsOnly::parse_from(["hashar"]).config
    }

    pub fn screen_limits(&self) -> ScreenLimits {
        ScreenLimits {
            gsm7: self.ussd_limit_gsm7.min(182),
            ucs2: self.ussd_limit_ucs2.min(80),
        }
    }
}
