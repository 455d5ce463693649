//! The store layer: the SQL, one module per group of tables, read into typed rows.
//!
//! Queries here are checked when the crate is built: `sqlx::query!`/`query_as!` compare each
//! statement with the schema the migrations make, from the offline data in `.sqlx/` (the
//! build uses it: `SQLX_OFFLINE=true` in `.cargo/config.toml`), so a typo in SQL or a column
//! that changed type fails the build, not a test. After changing a query or a migration,
//! `bash .ci/sqlx-prepare` regenerates `.sqlx/` (CI regenerates it too and fails when the
//! committed copy differs).
//!
//! What is here: typed ids, localized names, the one mapping from constraint violations,
//! households (by phone, for every channel; numbers, opt-outs, callback requests),
//! communities, phone-link codes, pledges, money (receipts, cancellations, disbursements
//! and their reversals), projects (one by id with its localized name, a community's lists,
//! the API's totals), broadcasts (a broadcast, its audience and recipients, their messages'
//! progress and the RSVPs), USSD sessions (a hop's context, an effect's claim and result),
//! SMS conversations, the CSV exports' rows (`exports`, streamed), coordinators with their
//! roles, API tokens and phone-menu PINs (`staff`), the API's idempotency keys
//! (`idempotency`), the audit log and the console's form keys (`audit`), tips and the
//! households' views of them (`tips`), the outbox (queuing, the dispatcher's claims, leases
//! and sends, delivery reports, the sending instances: `outbox`), inbound messages and the
//! delivery reports that wait for their message (`inbox`), the JOIN limiter
//! (`join_limits`), the figures the metrics sample (`gauges`), exchange rates (`rates`),
//! the demo data's inserts (`demo`), the console overview's figures (`overview`), People & access (`people`: staff as the console lists them,
//! set-password links, the audit log by person) and the
//! pools (`pool`).

pub mod audit;
/// For an enum stored as text (derived `sqlx::Type` with `type_name = "text"`): the
/// variants with the text each is stored as (the names of the column's CHECK constraint,
/// checked by `tests/enums.rs`) give `ALL`, `as_str`, `FromStr` (`Err(())` for any other
/// text) and `Display`, written once here instead of beside every enum.
macro_rules! text_values {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = ();

            fn from_str(s: &str) -> Result<Self, ()> {
                $name::ALL.into_iter().find(|v| v.as_str() == s).ok_or(())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod broadcasts;
pub mod callbacks;
pub mod communities;
pub mod conversations;
pub mod demo;
pub mod exports;
pub mod gauges;
pub mod households;
pub mod idempotency;
pub mod inbox;
pub mod join_limits;
pub mod link_codes;
pub mod meetings;
pub mod money;
pub mod news;
pub mod outbox;
pub mod outreach;
pub mod overview;
pub mod people;
pub mod pledge_codes;
pub mod pledges;
pub mod pool;
pub mod projects;
pub mod rates;
pub mod simulator;
pub mod staff;
pub mod tips;
pub mod ussd_sessions;

use std::fmt;

use crate::domain::Language;

macro_rules! id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of ", $what, " (its primary key).")]
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            sqlx::Type,
            serde::Serialize,
            serde::Deserialize,
        )]
        #[sqlx(transparent)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id!(HouseholdId, "a household");
id!(CommunityId, "a community");
id!(ProjectId, "a project");
id!(PledgeId, "a pledge");
id!(CoordinatorId, "a coordinator");
id!(BroadcastId, "a broadcast");
id!(OutboxId, "an outbox message");

/// Texts by name, as SQL functions compute them for the screens (`pledge_at`,
/// `project_total_texts`) and as an effect's result is recorded: the engine reads them as
/// its variables.
pub type Texts = std::collections::BTreeMap<String, String>;

/// A name in the programme's three languages (`name_tg`, `name_ru`, `name_en`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Localized {
    pub tg: String,
    pub ru: String,
    pub en: String,
}

impl Localized {
    pub fn get(&self, language: Language) -> &str {
        match language {
            Language::Tg => &self.tg,
            Language::Ru => &self.ru,
            Language::En => &self.en,
        }
    }
}

/// A constraint the database refused a write for, with the constraint's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    Unique(Option<String>),
    ForeignKey(Option<String>),
    Check(Option<String>),
    NotNull(Option<String>),
}

impl Violation {
    /// The violation behind `e`, if it is one (the one place that reads sqlx's error kinds).
    pub fn of(e: &sqlx::Error) -> Option<Violation> {
        let sqlx::Error::Database(db) = e else {
            return None;
        };
        let name = db.constraint().map(str::to_owned);
        match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => Some(Violation::Unique(name)),
            sqlx::error::ErrorKind::ForeignKeyViolation => Some(Violation::ForeignKey(name)),
            sqlx::error::ErrorKind::CheckViolation => Some(Violation::Check(name)),
            sqlx::error::ErrorKind::NotNullViolation => Some(Violation::NotNull(name)),
            _ => None,
        }
    }

    pub fn is_unique(e: &sqlx::Error) -> bool {
        matches!(Violation::of(e), Some(Violation::Unique(_)))
    }

    pub fn is_foreign_key(e: &sqlx::Error) -> bool {
        matches!(Violation::of(e), Some(Violation::ForeignKey(_)))
    }
}
