//! Settings: every one has a default that works on a developer's machine, and an
//! environment variable that overrides it (listed in the README).

use std::{net::SocketAddr, num::NonZeroU32, path::PathBuf};

use clap::Args;
use rust_decimal::Decimal;
use secrecy::SecretString;

pub use crate::channels::SmsProvider;
use crate::{
    channels::ProviderOptions,
    domain::{text::ScreenLimits, Currency, Language, QuietHours},
};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@localhost:5432/hashar";

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// PostgreSQL URL; the database is created if missing and migrated at start.
    /// Held as a secret: the URL may carry the database password.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, value_parser = secret, hide_env_values = true, hide_default_value = true)]
    pub database_url: SecretString,

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

    /// A pledge from a menu that repeats one the household made to the same project with the
    /// same amount less than this many minutes before is asked about first ("Pledge
    /// again?"); 0 never asks (a load test whose phones pledge the same amount every few
    /// seconds must make every pledge, as a real caller's would be).
    #[arg(long, env = "HASHAR_PLEDGE_REPEAT_MINUTES", default_value_t = 10)]
    pub pledge_repeat_minutes: u32,

    /// A USSD session older than this starts over at the first screen.
    #[arg(long, env = "HASHAR_USSD_SESSION_TTL_SECS", default_value_t = 300)]
    pub ussd_session_ttl_secs: u64,

    /// Keep what USSD hops read (communities, projects, callers, which sessions have
    /// effects) in memory, kept right by the database's notifications (`src/cache.rs`).
    /// `false` reads the database on every hop, as before issue 12 (for before/after
    /// benchmarks and as a way out).
    #[arg(long, env = "HASHAR_USSD_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub ussd_cache: bool,

    /// How long a USSD hop or an SMS/delivery webhook may wait for the database before the
    /// caller or provider is told to try again.
    #[arg(long, env = "HASHAR_DB_TIMEOUT_MS", default_value_t = 800)]
    pub db_timeout_ms: u64,

    /// Database connections per server process for USSD hops, SMS and delivery-report
    /// webhooks and the dispatchers; the admin API has a pool of its own.
    #[arg(long, env = "HASHAR_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: u32,

    /// Database connections per server process for the admin API and CSV exports, apart
    /// from the webhooks' so that the API can never starve them.
    #[arg(long, env = "HASHAR_DB_API_POOL_SIZE", default_value_t = 4)]
    pub db_api_pool_size: u32,

    /// PostgreSQL's `statement_timeout` on every pooled connection: a statement running
    /// longer is cancelled by the server.
    #[arg(long, env = "HASHAR_DB_STATEMENT_TIMEOUT_MS", default_value_t = 5_000)]
    pub db_statement_timeout_ms: u64,

    /// PostgreSQL's `idle_in_transaction_session_timeout` on every pooled connection: a
    /// transaction left open and idle longer is ended by the server.
    #[arg(
        long,
        env = "HASHAR_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub db_idle_in_transaction_timeout_ms: u64,

    /// The statement timeout of a CSV export's query (exports read more than any other).
    #[arg(
        long,
        env = "HASHAR_EXPORT_STATEMENT_TIMEOUT_MS",
        default_value_t = 120_000
    )]
    pub export_statement_timeout_ms: u64,

    /// CSV exports read from the database at the same time; one more is answered 503.
    #[arg(long, env = "HASHAR_EXPORTS_MAX_CONCURRENT", default_value_t = 2)]
    pub exports_max_concurrent: u32,

    /// Console sign-in (and set-password) tries a minute from one client address, counted
    /// by the server's clock. Staff of one resource centre behind one address share it.
    #[arg(long, env = "HASHAR_CONSOLE_TRIES_PER_MINUTE", default_value_t = 10)]
    pub console_tries_per_minute: u32,

    /// The Information Centre hotline shown on the safe-migration screens. Unset (or
    /// blank), the screens say in the caller's language to ask the resource centre for the
    /// number (`migration.hotline_unknown` in menus/locales).
    #[arg(long, env = "HASHAR_HOTLINE")]
    pub hotline: Option<String>,

    /// The number a household is told a counsellor will call from when its callback request
    /// is taken (e.g. the programme's counsellors' line). Unset, the counsellor's own number.
    #[arg(long, env = "HASHAR_COUNSELLOR_NUMBER")]
    pub counsellor_number: Option<String>,

    /// Largest USSD screen in GSM-7 septets (protocol maximum 182).
    #[arg(long, env = "HASHAR_USSD_LIMIT_GSM7", default_value_t = 160)]
    pub ussd_limit_gsm7: usize,

    /// Largest USSD screen in UCS-2 characters (protocol maximum 80).
    #[arg(long, env = "HASHAR_USSD_LIMIT_UCS2", default_value_t = 80)]
    pub ussd_limit_ucs2: usize,

    /// The number or short code people text (shown to households with their join code).
    #[arg(long, env = "HASHAR_SMS_NUMBER", default_value = "4274")]
    pub sms_number: String,

    /// Who sends SMS: one of the providers in `src/channels/`.
    #[arg(long, env = "HASHAR_SMS_PROVIDER", value_enum, default_value_t = SmsProvider::Console)]
    pub sms_provider: SmsProvider,

    /// This service's public base URL, as the aggregators call it (Twilio signatures,
    /// delivery-report URLs).
    #[arg(
        long,
        env = "HASHAR_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,

    /// Shared secret for the webhooks of providers that do not sign requests
    /// (`channels::Protection::SharedSecret`): `?secret=…` in the URL or the password of
    /// HTTP basic auth. At least 16 characters. Unset: not checked, and `serve` refuses a non-loopback address unless
    /// `HASHAR_INSECURE_WEBHOOKS=true`.
    #[arg(long, env = "HASHAR_WEBHOOK_SECRET", value_parser = secret, hide_env_values = true)]
    pub webhook_secret: Option<SecretString>,

    /// Run with the unsigned providers' webhooks open to anyone (no `HASHAR_WEBHOOK_SECRET`)
    /// on a non-loopback address. Logged as a warning at every start.
    #[arg(long, env = "HASHAR_INSECURE_WEBHOOKS", default_value_t = false, action = clap::ArgAction::Set)]
    pub insecure_webhooks: bool,

    /// Replies at most this many texts per hour to a number that is not registered (no
    /// household, no coordinator): SMS pumping through invented numbers costs money. 0: none.
    /// Registering by SMS takes three replies while the number is still unknown (language,
    /// community, confirmation), so the default leaves room for a page or a mistake.
    #[arg(long, env = "HASHAR_SMS_UNKNOWN_REPLIES_PER_HOUR", default_value_t = 5)]
    pub sms_unknown_replies_per_hour: u32,

    /// A client has this long to send a request's headers (slow or unfinished requests are
    /// cut off).
    #[arg(long, env = "HASHAR_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub http_header_timeout_secs: u64,

    /// A request (its body included) must be answered within this long; slower ones get 408.
    /// Covers reading the body and the handler, not the streaming of a long export.
    #[arg(long, env = "HASHAR_HTTP_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub http_request_timeout_secs: u64,

    /// Open HTTP connections at most; further clients wait in the listen backlog.
    #[arg(long, env = "HASHAR_HTTP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub http_max_connections: usize,

    /// Messages per second the SMS provider allows, for the whole deployment (shared by
    /// this process's dispatchers and split with other sending instances); 1 to 10000 (an
    /// instance that must send nothing has `HASHAR_DISPATCHERS=0`). Used as
    /// [`Settings::sms_rate`].
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

    /// How long a dispatcher holds the messages it claimed; a message whose dispatcher died
    /// is sent again once this has passed.
    #[arg(long, env = "HASHAR_SMS_LEASE_SECS", default_value_t = 60)]
    pub sms_lease_secs: u64,

    /// Messages a dispatcher claims per round (at most 1000).
    #[arg(long, env = "HASHAR_SMS_BATCH", default_value_t = 50)]
    pub sms_batch: u32,

    /// First wait before a temporarily failed message is tried again (it doubles per
    /// attempt, up to 30 minutes); a provider's `Retry-After` is waited for in any case.
    #[arg(long, env = "HASHAR_SMS_RETRY_BASE_MS", default_value_t = 5000)]
    pub sms_retry_base_ms: u64,

    /// How long an idle dispatcher waits before looking for messages again.
    #[arg(long, env = "HASHAR_SMS_IDLE_POLL_MS", default_value_t = 500)]
    pub sms_idle_poll_ms: u64,

    /// How long a send to the provider may take before it counts as a timeout (retried).
    #[arg(long, env = "HASHAR_SMS_HTTP_TIMEOUT_MS", default_value_t = 15000)]
    pub sms_http_timeout_ms: u64,

    /// How often scheduled broadcasts are looked for.
    #[arg(long, env = "HASHAR_BROADCAST_POLL_MS", default_value_t = 15000)]
    pub broadcast_poll_ms: u64,

    /// The programme's time zone: broadcast times, quiet hours and the date of cash recorded
    /// by phone are local to it.
    #[arg(long, env = "HASHAR_TIMEZONE", default_value = "Asia/Dushanbe")]
    pub timezone: chrono_tz::Tz,

    /// Local hours during which no broadcast message is sent (`HH:MM-HH:MM`, 24-hour;
    /// `00:00-00:00`: none). Used as [`Settings::quiet_hours`].
    #[arg(long, env = "HASHAR_QUIET_HOURS", default_value = "21:00-07:00")]
    pub quiet_hours: String,

    /// Price of one SMS segment, for broadcast cost estimates.
    #[arg(long, env = "HASHAR_SMS_PRICE_PER_SEGMENT", default_value = "0.03")]
    pub sms_price_per_segment: Decimal,

    /// Currency of that price (a three-letter code). Used as
    /// [`Settings::sms_price_currency`].
    #[arg(long, env = "HASHAR_SMS_PRICE_CURRENCY", default_value = "USD")]
    pub sms_price_currency: String,

    /// Every provider's own settings (`HASHAR_AT_*`, `HASHAR_TWILIO_*`, …), declared in its
    /// module (`Options`).
    #[command(flatten)]
    pub providers: ProviderOptions,
}

/// Reads a secret setting: held so that `Debug` never prints it.
pub(crate) fn secret(raw: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(raw))
}

/// A setting outside what Hashar can work with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSetting {
    /// The environment variable.
    pub setting: &'static str,
    /// What is wrong, with the accepted range.
    pub problem: String,
}

impl std::fmt::Display for BadSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.setting, self.problem)
    }
}

/// The settings that are text in the environment but values to Hashar, parsed once at start
/// by [`Config::settings`] (a bad one is refused there, with the others): the code uses these
/// and never reads the text again, so no bad value can turn into a default later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `HASHAR_QUIET_HOURS`, local to `HASHAR_TIMEZONE`.
    pub quiet_hours: QuietHours,
    /// `HASHAR_SMS_RATE`.
    pub sms_rate: NonZeroU32,
    /// `HASHAR_SMS_PRICE_CURRENCY`.
    pub sms_price_currency: Currency,
}

/// Every setting `serve` refuses, each on its own line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} bad setting(s):\n{}", .0.len(), .0.iter().map(|b| format!("  {b}")).collect::<Vec<_>>().join("\n"))]
pub struct InvalidSettings(pub Vec<BadSetting>);

impl InvalidSettings {
    /// Whether `setting` is among the refused ones.
    pub fn names(&self, setting: &str) -> bool {
        self.0.iter().any(|b| b.setting == setting)
    }
}

/// Who can reach the webhooks of providers that do not sign their requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookExposure {
    /// `HASHAR_WEBHOOK_SECRET` is set: those webhooks check it.
    Protected,
    /// No secret, but only this machine can connect (a warning is logged).
    OpenOnLoopback,
    /// No secret on a reachable address, because `HASHAR_INSECURE_WEBHOOKS=true` says so
    /// (a warning is logged at every start).
    OpenByChoice,
}

/// `serve` refuses to start: the unsigned webhooks would be open to anyone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to listen on {listen} without HASHAR_WEBHOOK_SECRET: the webhooks of {} \
     (providers that do not sign requests) would take pledges, \
     STOPs and delivery reports from anyone. Set HASHAR_WEBHOOK_SECRET (and add it to those \
     providers' callback URLs), listen on a loopback address behind a proxy that checks \
     callers, or set HASHAR_INSECURE_WEBHOOKS=true to accept the risk",
    crate::channels::unsigned_titles()
)]
pub struct OpenWebhooks {
    pub listen: SocketAddr,
}

/// Shortest accepted `HASHAR_WEBHOOK_SECRET`.
pub const MIN_WEBHOOK_SECRET_CHARS: usize = 16;

#[derive(clap::Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// `HASHAR_USSD_SESSION_TTL_SECS` as a span of time (at most a day: `check` bounds it).
    pub fn ussd_session_ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(
            i64::try_from(self.ussd_session_ttl_secs).unwrap_or(i64::MAX / 2_000),
        )
    }

    /// The defaults (and any environment overrides), as `hashar serve` would see them.
    pub fn from_env() -> Config {
        use clap::Parser;
        DefaultsOnly::parse_from(["hashar"]).config
    }

    /// The webhook secret, when one is set (an empty one counts as none).
    pub fn webhook_secret(&self) -> Option<&str> {
        use secrecy::ExposeSecret;
        self.webhook_secret
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.is_empty())
    }

    /// Whether `serve` may start given who can reach the unsigned providers' webhooks
    /// (every provider's routes are always mounted, and the USSD webhook is Africa's
    /// Talking's): without a secret only on a loopback address, or on any
    /// address when `HASHAR_INSECURE_WEBHOOKS=true`.
    pub fn webhook_exposure(&self) -> Result<WebhookExposure, OpenWebhooks> {
        if self.webhook_secret().is_some() {
            Ok(WebhookExposure::Protected)
        } else if self.listen.ip().is_loopback() {
            Ok(WebhookExposure::OpenOnLoopback)
        } else if self.insecure_webhooks {
            Ok(WebhookExposure::OpenByChoice)
        } else {
            Err(OpenWebhooks {
                listen: self.listen,
            })
        }
    }

    /// Checks every setting against what Hashar can work with; `serve` refuses to start on
    /// any problem (instead of failing, or panicking, later in a hop or the dispatcher).
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        self.settings().map(|_| ())
    }

    /// Checks every setting (see [`Config::validate`]) and parses the ones that are text into
    /// their values, listing every bad one at once.
    pub fn settings(&self) -> Result<Settings, InvalidSettings> {
        let mut bad = Vec::new();
        let mut range = |setting: &'static str, value: u64, min: u64, max: u64| {
            if value < min || value > max {
                bad.push(BadSetting {
                    setting,
                    problem: format!("{value} is outside {min}..={max}"),
                });
            }
        };
        const DAY: u64 = 24 * 3600;
        range(
            "HASHAR_USSD_SESSION_TTL_SECS",
            self.ussd_session_ttl_secs,
            10,
            DAY,
        );
        range("HASHAR_DB_TIMEOUT_MS", self.db_timeout_ms, 10, 60_000);
        range(
            "HASHAR_PLEDGE_REPEAT_MINUTES",
            self.pledge_repeat_minutes.into(),
            0,
            24 * 60,
        );
        range("HASHAR_DB_POOL_SIZE", self.db_pool_size.into(), 1, 1_000);
        range(
            "HASHAR_DB_API_POOL_SIZE",
            self.db_api_pool_size.into(),
            1,
            1_000,
        );
        const HOUR_MS: u64 = 3_600_000;
        range(
            "HASHAR_DB_STATEMENT_TIMEOUT_MS",
            self.db_statement_timeout_ms,
            100,
            HOUR_MS,
        );
        range(
            "HASHAR_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
            self.db_idle_in_transaction_timeout_ms,
            100,
            HOUR_MS,
        );
        range(
            "HASHAR_EXPORT_STATEMENT_TIMEOUT_MS",
            self.export_statement_timeout_ms,
            100,
            HOUR_MS,
        );
        range("HASHAR_SMS_LEASE_SECS", self.sms_lease_secs, 1, 3_600);
        range("HASHAR_SMS_BATCH", self.sms_batch.into(), 1, 1_000);
        range(
            "HASHAR_SMS_RETRY_BASE_MS",
            self.sms_retry_base_ms,
            1,
            HOUR_MS,
        );
        range("HASHAR_SMS_IDLE_POLL_MS", self.sms_idle_poll_ms, 10, 60_000);
        range(
            "HASHAR_SMS_HTTP_TIMEOUT_MS",
            self.sms_http_timeout_ms,
            100,
            120_000,
        );
        range(
            "HASHAR_BROADCAST_POLL_MS",
            self.broadcast_poll_ms,
            10,
            HOUR_MS,
        );
        range(
            "HASHAR_EXPORTS_MAX_CONCURRENT",
            self.exports_max_concurrent.into(),
            1,
            100,
        );
        range(
            "HASHAR_CONSOLE_TRIES_PER_MINUTE",
            self.console_tries_per_minute.into(),
            1,
            10_000,
        );
        // Protocol maxima: 182 GSM-7 septets, 80 UCS-2 characters per USSD screen.
        range(
            "HASHAR_USSD_LIMIT_GSM7",
            self.ussd_limit_gsm7 as u64,
            40,
            182,
        );
        range(
            "HASHAR_USSD_LIMIT_UCS2",
            self.ussd_limit_ucs2 as u64,
            20,
            80,
        );
        range("HASHAR_SMS_RATE", self.sms_rate.into(), 1, 10_000);
        range(
            "HASHAR_SMS_MAX_SEGMENTS",
            self.sms_max_segments.into(),
            1,
            10,
        );
        range(
            "HASHAR_SMS_MAX_ATTEMPTS",
            self.sms_max_attempts.max(0) as u64,
            1,
            100,
        );
        range(
            "HASHAR_SMS_CONVERSATION_TTL_SECS",
            self.sms_conversation_ttl_secs,
            10,
            7 * DAY,
        );
        range("HASHAR_DISPATCHERS", self.dispatchers.into(), 0, 64);
        range(
            "HASHAR_SMS_UNKNOWN_REPLIES_PER_HOUR",
            self.sms_unknown_replies_per_hour.into(),
            0,
            100,
        );
        range(
            "HASHAR_HTTP_HEADER_TIMEOUT_SECS",
            self.http_header_timeout_secs,
            1,
            300,
        );
        range(
            "HASHAR_HTTP_REQUEST_TIMEOUT_SECS",
            self.http_request_timeout_secs,
            1,
            3_600,
        );
        range(
            "HASHAR_HTTP_MAX_CONNECTIONS",
            self.http_max_connections as u64,
            1,
            100_000,
        );
        if self.max_pledge <= Decimal::ZERO {
            bad.push(BadSetting {
                setting: "HASHAR_MAX_PLEDGE",
                problem: format!("{} is not a positive amount", self.max_pledge),
            });
        }
        if self.sms_price_per_segment < Decimal::ZERO {
            bad.push(BadSetting {
                setting: "HASHAR_SMS_PRICE_PER_SEGMENT",
                problem: format!("{} is negative", self.sms_price_per_segment),
            });
        }
        let sms_rate = NonZeroU32::new(self.sms_rate);
        let sms_price_currency = match self.sms_price_currency.parse::<Currency>() {
            Ok(c) => Some(c),
            Err(_) => {
                bad.push(BadSetting {
                    setting: "HASHAR_SMS_PRICE_CURRENCY",
                    problem: format!(
                        "{:?} is not a currency: use a three-letter code such as USD, EUR, RUB or TJS",
                        self.sms_price_currency
                    ),
                });
                None
            }
        };
        let quiet_hours = match QuietHours::parse(&self.quiet_hours, self.timezone) {
            Ok(q) => Some(q),
            Err(_) => {
                bad.push(BadSetting {
                    setting: "HASHAR_QUIET_HOURS",
                    problem: format!(
                        "{:?} is not a window HH:MM-HH:MM (24-hour, local to HASHAR_TIMEZONE), \
                         e.g. 21:00-07:00; 00:00-00:00 for none",
                        self.quiet_hours
                    ),
                });
                None
            }
        };
        match url::Url::parse(&self.public_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => bad.push(BadSetting {
                setting: "HASHAR_PUBLIC_URL",
                problem: format!("{:?} is not an http(s) URL", self.public_url),
            }),
        }
        if let Some(secret) = &self.webhook_secret {
            use secrecy::ExposeSecret;
            let chars = secret.expose_secret().chars().count();
            if chars < MIN_WEBHOOK_SECRET_CHARS {
                bad.push(BadSetting {
                    setting: "HASHAR_WEBHOOK_SECRET",
                    problem: format!(
                        "{chars} characters; use at least {MIN_WEBHOOK_SECRET_CHARS} (e.g. `openssl rand -hex 16`)"
                    ),
                });
            }
        }
        match (quiet_hours, sms_rate, sms_price_currency) {
            (Some(quiet_hours), Some(sms_rate), Some(sms_price_currency)) if bad.is_empty() => {
                Ok(Settings {
                    quiet_hours,
                    sms_rate,
                    sms_price_currency,
                })
            }
            // A missing value was listed when it was parsed (HASHAR_SMS_RATE by its range).
            _ => Err(InvalidSettings(bad)),
        }
    }

    /// `HASHAR_HOTLINE` is unset or blank: `serve` warns at start, and the safe-migration
    /// screens leave the hotline out (see `app::AppState::with_clock`).
    pub fn hotline_unset(&self) -> bool {
        self.hotline.as_deref().is_none_or(|h| h.trim().is_empty())
    }

    /// The USSD screen limits, as set: [`Config::validate`] refuses them above the protocol
    /// maxima (182 GSM-7 septets, 80 UCS-2 characters).
    pub fn screen_limits(&self) -> ScreenLimits {
        ScreenLimits {
            gsm7: self.ussd_limit_gsm7,
            ucs2: self.ussd_limit_ucs2,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The settings `hashar serve` would see with these arguments (environment ignored
    /// for the ones given).
    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["hashar"];
        argv.extend_from_slice(args);
        DefaultsOnly::try_parse_from(argv)
            .expect("arguments")
            .config
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(config(&[]).validate(), Ok(()));
    }

    #[test]
    fn out_of_range_settings_are_refused_each_by_name() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "--ussd-session-ttl-secs",
                "18446744073709551615",
                "HASHAR_USSD_SESSION_TTL_SECS",
            ),
            (
                "--ussd-session-ttl-secs",
                "0",
                "HASHAR_USSD_SESSION_TTL_SECS",
            ),
            ("--sms-rate", "0", "HASHAR_SMS_RATE"),
            ("--db-pool-size", "0", "HASHAR_DB_POOL_SIZE"),
            ("--db-timeout-ms", "0", "HASHAR_DB_TIMEOUT_MS"),
            ("--ussd-limit-gsm7", "183", "HASHAR_USSD_LIMIT_GSM7"),
            ("--ussd-limit-ucs2", "81", "HASHAR_USSD_LIMIT_UCS2"),
            ("--sms-max-segments", "0", "HASHAR_SMS_MAX_SEGMENTS"),
            ("--sms-max-attempts", "-1", "HASHAR_SMS_MAX_ATTEMPTS"),
            (
                "--sms-conversation-ttl-secs",
                "99999999999",
                "HASHAR_SMS_CONVERSATION_TTL_SECS",
            ),
            ("--dispatchers", "1000", "HASHAR_DISPATCHERS"),
            ("--max-pledge", "0", "HASHAR_MAX_PLEDGE"),
            (
                "--pledge-repeat-minutes",
                "1441",
                "HASHAR_PLEDGE_REPEAT_MINUTES",
            ),
            (
                "--sms-price-per-segment",
                "-1",
                "HASHAR_SMS_PRICE_PER_SEGMENT",
            ),
            (
                "--sms-price-currency",
                "dollars",
                "HASHAR_SMS_PRICE_CURRENCY",
            ),
            ("--quiet-hours", "25:00-07:00", "HASHAR_QUIET_HOURS"),
            ("--public-url", "not a url", "HASHAR_PUBLIC_URL"),
            (
                "--http-header-timeout-secs",
                "0",
                "HASHAR_HTTP_HEADER_TIMEOUT_SECS",
            ),
            (
                "--http-request-timeout-secs",
                "0",
                "HASHAR_HTTP_REQUEST_TIMEOUT_SECS",
            ),
            ("--http-max-connections", "0", "HASHAR_HTTP_MAX_CONNECTIONS"),
            (
                "--sms-unknown-replies-per-hour",
                "1000",
                "HASHAR_SMS_UNKNOWN_REPLIES_PER_HOUR",
            ),
            ("--webhook-secret", "short", "HASHAR_WEBHOOK_SECRET"),
            ("--webhook-secret", "", "HASHAR_WEBHOOK_SECRET"),
        ];
        for (flag, value, setting) in cases {
            let arg = format!("{flag}={value}");
            let err = config(&[&arg])
                .validate()
                .expect_err(&format!("{arg} accepted"));
            assert_eq!(err.0.len(), 1, "{arg}: {err}");
            assert!(err.names(setting), "{arg}: {err}");
            assert!(err.to_string().contains(setting), "{err}");
        }
    }

    #[test]
    fn every_bad_setting_is_listed_at_once() {
        let err = config(&["--sms-rate=0", "--db-pool-size=0"])
            .validate()
            .expect_err("refused");
        assert!(err.names("HASHAR_SMS_RATE") && err.names("HASHAR_DB_POOL_SIZE"));
        assert!(err.to_string().starts_with("2 bad setting(s):"), "{err}");
    }

    #[test]
    fn settings_given_as_text_are_parsed_once_into_values() {
        let defaults = config(&[]).settings().expect("defaults");
        assert_eq!(
            defaults,
            Settings {
                quiet_hours: QuietHours::parse("21:00-07:00", chrono_tz::Asia::Dushanbe)
                    .expect("window"),
                sms_rate: NonZeroU32::new(20).expect("non-zero"),
                sms_price_currency: "USD".parse().expect("currency"),
            }
        );
        let s = config(&[
            "--quiet-hours=22:30-06:15",
            "--timezone=Europe/Moscow",
            "--sms-rate=1",
            "--sms-price-currency=eur",
        ])
        .settings()
        .expect("valid");
        assert_eq!(
            s.quiet_hours,
            QuietHours::parse("22:30-06:15", chrono_tz::Europe::Moscow).expect("window")
        );
        assert_eq!(s.sms_rate.get(), 1);
        assert_eq!(s.sms_price_currency.as_str(), "EUR");
        // 00:00-00:00 is no quiet hours at all, not a bad window
        let none = config(&["--quiet-hours=00:00-00:00"])
            .settings()
            .expect("valid")
            .quiet_hours;
        let now = chrono::Utc::now();
        assert!(!none.contains(now));
        assert_eq!(none.next_allowed(now), now);
    }

    #[test]
    fn unparsable_settings_are_refused_naming_what_is_accepted() {
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "--quiet-hours",
                "9pm-7am",
                "HASHAR_QUIET_HOURS",
                "HH:MM-HH:MM",
            ),
            (
                "--quiet-hours",
                "21:00",
                "HASHAR_QUIET_HOURS",
                "HH:MM-HH:MM",
            ),
            (
                "--quiet-hours",
                "",
                "HASHAR_QUIET_HOURS",
                "00:00-00:00 for none",
            ),
            (
                "--quiet-hours",
                "21:00-24:00",
                "HASHAR_QUIET_HOURS",
                "24-hour",
            ),
            (
                "--sms-price-currency",
                "US",
                "HASHAR_SMS_PRICE_CURRENCY",
                "three-letter code",
            ),
            (
                "--sms-price-currency",
                "",
                "HASHAR_SMS_PRICE_CURRENCY",
                "three-letter code",
            ),
            (
                "--sms-price-currency",
                "US$",
                "HASHAR_SMS_PRICE_CURRENCY",
                "such as USD",
            ),
            ("--sms-rate", "0", "HASHAR_SMS_RATE", "outside 1..=10000"),
            (
                "--sms-rate",
                "10001",
                "HASHAR_SMS_RATE",
                "outside 1..=10000",
            ),
        ];
        for (flag, value, setting, accepted) in cases {
            let arg = format!("{flag}={value}");
            let err = config(&[&arg])
                .settings()
                .expect_err(&format!("{arg} accepted"));
            assert_eq!(err.0.len(), 1, "{arg}: {err}");
            assert!(err.names(setting), "{arg}: {err}");
            let message = err.to_string();
            assert!(message.contains(setting), "{message}");
            assert!(message.contains(accepted), "{arg}: {message}");
            assert!(message.contains(&format!("{value:?}")) || setting == &"HASHAR_SMS_RATE");
            // validate is the same check
            assert_eq!(config(&[&arg]).validate(), Err(err));
        }
    }

    #[test]
    fn unparsable_and_out_of_range_settings_are_listed_together() {
        let err = config(&[
            "--quiet-hours=late",
            "--sms-price-currency=dollars",
            "--sms-rate=0",
            "--db-pool-size=0",
        ])
        .settings()
        .expect_err("refused");
        for setting in [
            "HASHAR_QUIET_HOURS",
            "HASHAR_SMS_PRICE_CURRENCY",
            "HASHAR_SMS_RATE",
            "HASHAR_DB_POOL_SIZE",
        ] {
            assert!(err.names(setting), "{setting}: {err}");
        }
        assert!(err.to_string().starts_with("4 bad setting(s):"), "{err}");
    }

    #[test]
    fn screen_limits_are_the_settings_unclamped() {
        let limits = config(&["--ussd-limit-gsm7=182", "--ussd-limit-ucs2=70"]).screen_limits();
        assert_eq!((limits.gsm7, limits.ucs2), (182, 70));
        // above the protocol maxima they are refused, not cut to them
        assert!(config(&["--ussd-limit-gsm7=500"])
            .validate()
            .expect_err("refused")
            .names("HASHAR_USSD_LIMIT_GSM7"));
    }

    #[test]
    fn unsigned_webhooks_may_be_open_only_on_loopback_or_by_choice() {
        let secret = "--webhook-secret=0123456789abcdef";
        let public = "--listen=0.0.0.0:8080";
        assert_eq!(
            config(&[]).webhook_exposure(),
            Ok(WebhookExposure::OpenOnLoopback)
        );
        assert_eq!(
            config(&["--listen=[::1]:8080"]).webhook_exposure(),
            Ok(WebhookExposure::OpenOnLoopback)
        );
        assert_eq!(
            config(&[public]).webhook_exposure(),
            Err(OpenWebhooks {
                listen: "0.0.0.0:8080".parse().expect("addr")
            })
        );
        assert!(config(&["--listen=192.0.2.7:80"])
            .webhook_exposure()
            .is_err());
        // An empty secret is no secret.
        assert!(config(&[public, "--webhook-secret="])
            .webhook_exposure()
            .is_err());
        assert_eq!(
            config(&[public, secret]).webhook_exposure(),
            Ok(WebhookExposure::Protected)
        );
        assert_eq!(
            config(&[public, "--insecure-webhooks=true"]).webhook_exposure(),
            Ok(WebhookExposure::OpenByChoice)
        );
        let message = config(&[public])
            .webhook_exposure()
            .expect_err("refused")
            .to_string();
        assert!(message.contains("HASHAR_WEBHOOK_SECRET"), "{message}");
        assert!(
            message.contains("HASHAR_INSECURE_WEBHOOKS=true"),
            "{message}"
        );
    }

    #[test]
    fn debug_of_the_settings_shows_no_secret() {
        let secrets = [
            "webhook-secret-0123456789",
            "at-api-key-0123456789",
            "twilio-token-0123456789",
            "infobip-key-0123456789",
            "kannel-password-0123456789",
            "db-password-0123456789",
        ];
        let database_url = format!("--database-url=postgres://hashar:{}@db/hashar", secrets[5]);
        let c = config(&[
            &format!("--webhook-secret={}", secrets[0]),
            &format!("--at-api-key={}", secrets[1]),
            &format!("--twilio-auth-token={}", secrets[2]),
            &format!("--infobip-api-key={}", secrets[3]),
            &format!("--kannel-password={}", secrets[4]),
            &database_url,
        ]);
        let debug = format!("{c:?} {c:#?}");
        for s in secrets {
            assert!(!debug.contains(s), "{s} in {debug}");
        }
        assert!(debug.contains("REDACTED"), "{debug}");
        // and the values are there for those who need them
        assert_eq!(c.webhook_secret(), Some(secrets[0]));
    }
}
