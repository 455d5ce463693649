//! The service layer: one rule book for every way staff change things. The admin API
//! today (and the web console next) call these functions with an [`Actor`]; each checks
//! the actor's role and scope, keeps the money rules, writes the audit log in the change's
//! own transaction ([`audit`]) and, for a console form, remembers its one-time key
//! ([`forms`]). Errors are a [`ServiceError`], which each edge words its own way (JSON for
//! the API, a page for the console).
//!
//! SQL stays in `store`; the service sits beside the conversation layer, to the left of the
//! actions and the store (`docs/ARCHITECTURE.md`).

pub mod actor;
pub mod audit;
pub mod broadcasts;
pub mod callbacks;
pub mod exports;
pub mod forms;
pub mod households;
pub mod meetings;
pub mod money;
pub mod news;
pub mod outreach;
pub mod overview;
pub mod people;
pub mod projects;
pub mod simulator;

pub use actor::{Actor, Role};
pub use forms::{KeepAnswer, Once};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

/// Why a service function refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The actor's role or scope does not allow this (API: 403).
    #[error("not allowed for this actor")]
    Forbidden,
    /// No such object, or none the actor may see (API: 404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A field is missing or wrong: its name, a text key for the console and the API's
    /// English message (API: 422).
    #[error("{message}")]
    Invalid {
        field: &'static str,
        key: &'static str,
        message: String,
    },
    /// A rule refuses the change: the rule's text key and the API's message (API: 409).
    #[error("{message}")]
    Conflict { rule: &'static str, message: String },
    /// What the request refers to is no more: an expired or voided code (API: 410).
    #[error("{message}")]
    Gone { rule: &'static str, message: String },
    /// A limit on how often this may be done is reached; `retry_after` in seconds (API: 429).
    #[error("{message}")]
    TooMany {
        rule: &'static str,
        message: String,
        retry_after: u64,
    },
    /// Too much of this is running now; retry in a while (API: 503 `busy`, with its
    /// English message).
    #[error("{0}")]
    Busy(&'static str),
    /// The database failed (API: 500, or 503 when it is only unavailable for now).
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A result could not be encoded or decoded (a stored form result).
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn invalid(field: &'static str, key: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Invalid {
            field,
            key,
            message: message.into(),
        }
    }

    pub fn conflict(rule: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Conflict {
            rule,
            message: message.into(),
        }
    }
}

/// A control character other than a line break or a tab: PostgreSQL refuses NUL in text,
/// and no person types the others.
fn has_control(v: &str) -> bool {
    v.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// A text field: trimmed, required, at most `max` characters, no control characters.
pub fn text<'a>(field: &'static str, value: &'a str, max: usize) -> ServiceResult<&'a str> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || has_control(v) {
        return Err(ServiceError::invalid(
            field,
            "form.text_length",
            format!("{field} is 1 to {max} characters of text"),
        ));
    }
    Ok(v)
}

/// An optional text field: trimmed, empty as none, at most `max` characters.
pub fn opt_text<'a>(
    field: &'static str,
    value: Option<&'a str>,
    max: usize,
) -> ServiceResult<Option<&'a str>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => text(field, v, max).map(Some),
    }
}

/// A date of money changing hands: not before 2020-01-01 (the programme did not exist) and
/// not after tomorrow by the service's clock (a day of slack for time zones).
pub fn money_date(
    field: &'static str,
    date: NaiveDate,
    now: DateTime<Utc>,
) -> ServiceResult<NaiveDate> {
    let earliest = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or(NaiveDate::MIN);
    let latest = now.date_naive() + chrono::Duration::days(1);
    if date < earliest || date > latest {
        return Err(ServiceError::invalid(
            field,
            "money.date_out_of_range",
            format!("{field} must be between {earliest} and {latest}"),
        ));
    }
    Ok(date)
}

/// An amount of money: more than 0, at most two decimals, below 10¹².
pub fn amount(field: &'static str, v: Decimal) -> ServiceResult<Decimal> {
    if v <= Decimal::ZERO || v.normalize().scale() > 2 || v >= Decimal::from(1_000_000_000_000i64) {
        return Err(ServiceError::invalid(
            field,
            "money.amount_invalid",
            format!("{field} must be more than 0, with at most two decimals"),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_refuse_control_characters_but_keep_line_breaks() {
        assert!(text("note", "a\u{0}b", 280).is_err());
        assert!(text("note", "a\u{7}b", 280).is_err());
        assert_eq!(text("note", " two\nlines\t ", 280).ok(), Some("two\nlines"));
        assert!(opt_text("note", Some("x\u{0}"), 280).is_err());
    }
}
