//! Domain types parsed once at the edge: phone numbers, languages, money and SMS text measures.

pub mod language;
pub mod money;
pub mod outreach;
pub mod phone;
pub mod quiet_hours;
pub mod text;
pub mod timezones;

pub use language::Language;
pub use money::{AmountError, Currency, Money};
pub use phone::{Phone, PhoneError};
pub use quiet_hours::{BadQuietHours, QuietHours};
pub use text::{Encoding, TextMeasure};
