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

    /// Address of the Prometheus metrics listener (`GET /metrics`), apart from the public
    /// one so that it is never exposed by accident; `off` turns it off.
    #[arg(long, env = "HASHAR_METRICS_LISTEN", default_value = "127.0.0.1:9464", value_parser = parse_metrics_listen)]
    pub metrics_listen: MetricsListen,

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

    /// How long a USSD hop or an SMS/delivery webhook may wait for the database before the
    /// caller or provider is told to try again.
    #[arg(long, env = "HASHAR_DB_TIMEOUT_MS", default_value_t = 800)]
    pub db_timeout_ms: u64,

    /// Database connections per server process for USSD hops, SMS and delivery-report
    /// webhooks and the dispatchers; the admin API has a pool of its own.
    #[arg(long, env = "HASHAR_DB_POOL_SIZE", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_size: u32,

    /// Database connections per server process for the admin API and CSV exports, apart
    /// from the webhooks' so that the API can never starve them.
    #[arg(long, env = "HASHAR_DB_API_POOL_SIZE", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_api_pool_size: u32,

    /// PostgreSQL's `statement_timeout` on every pooled connection: a statement running
    /// longer is cancelled by the server.
    #[arg(long, env = "HASHAR_DB_STATEMENT_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub db_statement_timeout_ms: u64,

    /// PostgreSQL's `idle_in_transaction_session_timeout` on every pooled connection: a
    /// transaction left open and idle longer is ended by the server.
    #[arg(long, env = "HASHAR_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub db_idle_in_transaction_timeout_ms: u64,

    /// The statement timeout of a CSV export's query (exports read more than any other).
    #[arg(long, env = "HASHAR_EXPORT_STATEMENT_TIMEOUT_MS", default_value_t = 120_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub export_statement_timeout_ms: u64,

    /// CSV exports read from the database at the same time; one more is answered 503.
    #[arg(long, env = "HASHAR_EXPORTS_MAX_CONCURRENT", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub exports_max_concurrent: u32,

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

    /// The number or short code people text (shown to households with their join code).
    #[arg(long, env = "HASHAR_SMS_NUMBER", default_value = "4274")]
    pub sms_number: String,

    /// Who sends SMS: console, africastalking, twilio, infobip or kannel.
    #[arg(long, env = "HASHAR_SMS_PROVIDER", default_value = "console")]
    pub sms_provider: SmsProvider,

    /// This service's public base URL, as the aggregators call it (Twilio signatures,
    /// delivery-report URLs).
    #[arg(
        long,
        env = "HASHAR_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,

    /// Shared secret for webhooks of providers that do not sign requests (Africa's Talking,
    /// Infobip, Kannel): `?secret=…` in the URL or the password of HTTP basic auth. Unset:
    /// not checked.
    #[arg(long, env = "HASHAR_WEBHOOK_SECRET")]
    pub webhook_secret: Option<String>,

    /// Messages per second the SMS provider allows, for the whole deployment (shared by
    /// this process's dispatchers and split with other sending instances).
    #[arg(long, env = "HASHAR_SMS_RATE", default_value_t = 20)]
    pub sms_rate: u32,

    /// Longest outgoing SMS, in segments (concatenated SMS); longer texts are cut at a word.
    #[arg(long, env = "HASHAR_SMS_MAX_SEGMENTS", default_value_t = 3)]
    pub sms_max_segments: u32,

    /// Attempts before a message that keeps failing temporarily is marked failed.
    #[arg(long, env = "HASHAR_SMS_MAX_ATTEMPTS", default_value_t = 8)]
    pub sms_max_attempts: i32,

    /// An SMS conversation expires after this much silence.
    #[arg(long, env = "HASHAR_SMS_CONVERSATION_TTL_SECS", default_value_t = 1800)]
    pub sms_conversation_ttl_secs: u64,

    /// Dispatcher tasks in this process (0: this instance sends nothing).
    #[arg(long, env = "HASHAR_DISPATCHERS", default_value_t = 1)]
    pub dispatchers: u32,

    /// The programme's time zone: broadcast times, quiet hours and the date of cash recorded
    /// by phone are local to it.
    #[arg(long, env = "HASHAR_TIMEZONE", default_value = "Asia/Dushanbe")]
    pub timezone: chrono_tz::Tz,

    /// Local hours during which no broadcast message is sent (`HH:MM-HH:MM`).
    #[arg(long, env = "HASHAR_QUIET_HOURS", default_value = "21:00-07:00")]
    pub quiet_hours: String,

    /// Price of one SMS segment, for broadcast cost estimates.
    #[arg(long, env = "HASHAR_SMS_PRICE_PER_SEGMENT", default_value = "0.03")]
    pub sms_price_per_segment: Decimal,

    /// Currency of that price.
    #[arg(long, env = "HASHAR_SMS_PRICE_CURRENCY", default_value = "USD")]
    pub sms_price_currency: String,

    #[arg(long, env = "HASHAR_AT_USERNAME", default_value = "sandbox")]
    pub at_username: String,
    #[arg(long, env = "HASHAR_AT_API_KEY")]
    pub at_api_key: Option<String>,
    #[arg(long, env = "HASHAR_AT_SENDER")]
    pub at_sender: Option<String>,
    #[arg(
        long,
        env = "HASHAR_AT_BASE_URL",
        default_value = "https://api.africastalking.com"
    )]
    pub at_base_url: String,

    #[arg(long, env = "HASHAR_TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    /// Also the key Twilio signs its webhooks with.
    #[arg(long, env = "HASHAR_TWILIO_AUTH_TOKEN")]
    pub twilio_auth_token: Option<String>,
    #[arg(long, env = "HASHAR_TWILIO_FROM")]
    pub twilio_from: Option<String>,
    #[arg(
        long,
        env = "HASHAR_TWILIO_BASE_URL",
        default_value = "https://api.twilio.com"
    )]
    pub twilio_base_url: String,

    #[arg(long, env = "HASHAR_INFOBIP_API_KEY")]
    pub infobip_api_key: Option<String>,
    #[arg(long, env = "HASHAR_INFOBIP_SENDER", default_value = "Hashar")]
    pub infobip_sender: String,
    #[arg(
        long,
        env = "HASHAR_INFOBIP_BASE_URL",
        default_value = "https://api.infobip.com"
    )]
    pub infobip_base_url: String,

    #[arg(
        long,
        env = "HASHAR_KANNEL_SENDSMS_URL",
        default_value = "http://127.0.0.1:13013/cgi-bin/sendsms"
    )]
    pub kannel_sendsms_url: String,
    #[arg(long, env = "HASHAR_KANNEL_USERNAME", default_value = "hashar")]
    pub kannel_username: String,
    #[arg(long, env = "HASHAR_KANNEL_PASSWORD")]
    pub kannel_password: Option<String>,
    #[arg(long, env = "HASHAR_KANNEL_SENDER")]
    pub kannel_sender: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SmsProvider {
    Console,
    Africastalking,
    Twilio,
    Infobip,
    Kannel,
}

impl SmsProvider {
    pub fn name(self) -> &'static str {
        match self {
            SmsProvider::Console => "console",
            SmsProvider::Africastalking => "africastalking",
            SmsProvider::Twilio => "twilio",
            SmsProvider::Infobip => "infobip",
            SmsProvider::Kannel => "kannel",
        }
    }
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

    /// The quiet hours, checked (`hashar serve` refuses to start on a bad window).
    pub fn quiet(&self) -> Result<crate::broadcasts::QuietHours, crate::broadcasts::BadQuietHours> {
        crate::broadcasts::QuietHours::parse(&self.quiet_hours, self.timezone)
    }

    pub fn screen_limits(&self) -> ScreenLimits {
        ScreenLimits {
            gsm7: self.ussd_limit_gsm7.min(182),
            ucs2: self.ussd_limit_ucs2.min(80),
        }
    }
}

/// Where the metrics listener binds, or nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    Off,
    At(SocketAddr),
}

fn parse_metrics_listen(raw: &str) -> Result<MetricsListen, String> {
    if raw.trim().eq_ignore_ascii_case("off") {
        return Ok(MetricsListen::Off);
    }
    raw.trim()
        .parse()
        .map(MetricsListen::At)
        .map_err(|e| format!("{e}: expected an address such as 127.0.0.1:9464, or off"))
}
