//! Hashar: the phone side of a community remittance-matching programme.
//!
//! Households walk USSD menus (and, later, SMS conversations) to pledge money to their
//! village's projects, see matched totals, read budgeting tips and safe-migration advice.
//! See `docs/ARCHITECTURE.md` for the map of this crate.

pub mod actions;
pub mod api;
pub mod app;
pub mod broadcasts;
pub mod cache;
pub mod channels;
pub mod clock;
pub mod config;
pub mod console;
pub mod conversation;
pub mod demo;
pub mod domain;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod hints;
pub mod http;
pub mod inbox;
pub mod keywords;
pub mod meetings;
pub mod metrics;
pub mod news;
pub mod outbox;
pub mod provision;
pub mod receipts;
pub mod server;
pub mod service;
pub mod sms;
pub mod store;
pub mod ussd;
pub mod workers;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
