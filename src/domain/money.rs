use std::{fmt, str::FromStr};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An ISO 4217 currency code such as `TJS` or `RUB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub const TJS: Currency = Currency(*b"TJS");

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored (see `FromStr`).
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a currency code: {0:?} (expected three letters such as TJS)")]
pub struct BadCurrency(pub String);

impl FromStr for Currency {
    type Err = BadCurrency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.trim().to_ascii_uppercase();
        let bytes = up.as_bytes();
        if bytes.len() == 3 && bytes.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([bytes[0], bytes[1], bytes[2]]))
        } else {
            Err(BadCurrency(s.to_owned()))
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = BadCurrency;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exact amount in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", format_amount(self.amount), self.currency)
    }
}

/// Why a typed amount was refused; each maps to a retry text in the caller's language.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("not a number")]
    NotANumber,
    #[error("amount must be more than zero")]
    NotPositive,
    #[error("at most two digits after the decimal point")]
    TooManyDecimals,
    #[error("amount is above the allowed maximum")]
    TooLarge,
}

impl AmountError {
    /// The locale key of the retry text.
    pub fn text_key(self) -> &'static str {
        match self {
            AmountError::NotANumber => "amount.not_a_number",
            AmountError::NotPositive => "amount.not_positive",
            AmountError::TooManyDecimals => "amount.too_many_decimals",
            AmountError::TooLarge => "amount.too_large",
        }
    }
}

/// Parses an amount typed by a person: `500`, `1500.50`, `1500,50`, `1 500`, `1,500`,
/// `1.500`, `1.500,50`, `1,500.50`.
///
/// Spaces between digit groups are ignored. `.` and `,` are both separators; a separator
/// followed by exactly three digits (and no more) is a thousands separator when the digits
/// before it are a group of one to three (not starting with 0) and every separator of its
/// kind is followed by a group of three: `1,500` and `1.500` are 1500, `1.500.000` is a
/// million, `0.500` is a half. Otherwise the last separator is the decimal point, with at most
/// two decimals (`1,50` is 1.50), and any earlier ones must be thousands separators of the
/// other kind (`1.500,50` and `1,500.50` are 1500.50; `1.500.50` is refused). The result is
/// > 0 and at most `max`.
///
/// Hand-written: locale-aware number crates pick one convention per locale, but a person
/// texting from Russia or Tajikistan may type either.
pub fn parse_amount(input: &str, max: Decimal) -> Result<Decimal, AmountError> {
    let compact: String = input
        .trim()
        .chars()
        .filter(|c| *c != ' ' && *c != '\u{a0}')
        .collect();
    if let Some(rest) = compact.strip_prefix('-') {
        // A sign is a number the person meant; say why it is refused, not that it is garbage.
        if !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
        {
            return Err(AmountError::NotPositive);
        }
        return Err(AmountError::NotANumber);
    }
    if compact.is_empty()
        || !compact
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    {
        return Err(AmountError::NotANumber);
    }
    let groups: Vec<&str> = compact.split(['.', ',']).collect();
    let seps: Vec<char> = compact.chars().filter(|c| *c == '.' || *c == ',').collect();
    if groups.iter().any(|g| g.is_empty()) {
        return Err(AmountError::NotANumber);
    }
    let grouped_thousands = |groups: &[&str]| {
        groups
            .first()
            .is_some_and(|g| g.len() <= 3 && !g.starts_with('0'))
            && groups.iter().skip(1).all(|g| g.len() == 3)
    };
    let (whole, frac): (String, Option<&str>) = match seps.last() {
        None => (compact.clone(), None),
        Some(&last) => {
            let all_same = seps.iter().all(|c| *c == last);
            if all_same && grouped_thousands(&groups) {
                (groups.concat(), None)
            } else {
                // the last separator is the decimal point; earlier ones group thousands
                let (int_groups, frac) = groups.split_at(groups.len() - 1);
                let earlier = &seps[..seps.len() - 1];
                if earlier.contains(&last)
                    || (int_groups.len() > 1 && !grouped_thousands(int_groups))
                {
                    return Err(AmountError::NotANumber);
                }
                (int_groups.concat(), frac.first().copied())
            }
        }
    };
    if whole.len() > 15 {
        return Err(AmountError::TooLarge);
    }
    // Three digits after the decimal point would have been thousands, were the grouping
    // right (`1500.500`, `1,500.500`): ambiguous, so asked again (but `0.500` is a half).
    if frac.is_some_and(|f| f.trim_end_matches('0').len() > 2 || (f.len() == 3 && whole != "0")) {
        return Err(AmountError::TooManyDecimals);
    }
    let normalized = match frac {
        Some(f) => format!("{whole}.{f}"),
        None => whole,
    };
    let value = Decimal::from_str(&normalized).map_err(|_| AmountError::NotANumber)?;
    if value <= Decimal::ZERO {
        return Err(AmountError::NotPositive);
    }
    if value > max {
        return Err(AmountError::TooLarge);
    }
    Ok(value.normalize())
}

/// Formats an amount for a phone screen: no trailing zeros for whole amounts
/// (`1500`), otherwise two decimals (`1500.50`). Halves round away from zero, as
/// PostgreSQL's `round` does (the SQL `screen_amount` must agree).
pub fn format_amount(amount: Decimal) -> String {
    let rounded =
        amount.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    if rounded.fract().is_zero() {
        rounded.trunc().normalize().to_string()
    } else {
        let mut s = rounded.to_string();
        if let Some(dot) = s.find('.') {
            while s.len() - dot - 1 < 2 {
                s.push('0');
            }
        }
        s
    }
}

/// Serialises an amount with always two decimals (API answers, receipts, previews) (`"0.00"`, `"1500.50"`): the database
/// returns zero without a scale, and a client should not see "0" for one row and "0.00"
/// for the next.
pub fn two_dp<S: serde::Serializer>(d: &rust_decimal::Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!(
        "{:.2}",
        d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    ))
}

pub fn opt_two_dp<S: serde::Serializer>(
    d: &Option<rust_decimal::Decimal>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => two_dp(d, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn parses_good_amounts() {
        let max = dec!(100000);
        assert_eq!(parse_amount("500", max), Ok(dec!(500)));
        assert_eq!(parse_amount(" 1500.50 ", max), Ok(dec!(1500.5)));
        assert_eq!(parse_amount("1500,50", max), Ok(dec!(1500.5)));
        assert_eq!(parse_amount("1 500", max), Ok(dec!(1500)));
        assert_eq!(parse_amount("0.01", max), Ok(dec!(0.01)));
        assert_eq!(parse_amount("100000", max), Ok(dec!(100000)));
        // (was 12.5 before issue 8: a separator followed by three digits groups thousands)
        assert_eq!(parse_amount("12.500", max), Ok(dec!(12500)));
        assert_eq!(parse_amount("12.5000", max), Ok(dec!(12.5)));
    }

    /// Issue 8, point 13: `1,500` and `1.500` were read as 1.50.
    #[test]
    fn thousands_separators_and_decimal_points() {
        let max = dec!(10000000);
        let cases = [
            ("1,500", dec!(1500)),
            ("1.500", dec!(1500)),
            ("1500,50", dec!(1500.50)),
            ("1500.50", dec!(1500.50)),
            ("1,50", dec!(1.50)),
            ("1.5", dec!(1.5)),
            ("1.500,50", dec!(1500.50)),
            ("1,500.50", dec!(1500.50)),
            ("1.500.000", dec!(1500000)),
            ("1,500,000", dec!(1500000)),
            ("1,500,000.5", dec!(1500000.5)),
            ("1 500,50", dec!(1500.50)),
            ("0.500", dec!(0.5)),
            ("0,50", dec!(0.5)),
            ("999,999", dec!(999999)),
            ("1,5000", dec!(1.5)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_amount(input, max), Ok(want), "{input:?}");
        }
        let refused = [
            ("1.500.50", AmountError::NotANumber),
            ("1,500,50", AmountError::NotANumber),
            ("1,500.500", AmountError::TooManyDecimals),
            ("1500.500", AmountError::TooManyDecimals),
            ("15,00.50", AmountError::NotANumber),
            ("1,5,0", AmountError::NotANumber),
        ];
        for (input, want) in refused {
            assert_eq!(parse_amount(input, max), Err(want), "{input:?}");
        }
    }

    #[test]
    fn refuses_bad_amounts_with_a_reason() {
        let max = dec!(100000);
        let cases = [
            ("abc", AmountError::NotANumber),
            ("", AmountError::NotANumber),
            ("5OO", AmountError::NotANumber),
            ("1.2.3", AmountError::NotANumber),
            ("12.", AmountError::NotANumber),
            (".5", AmountError::NotANumber),
            ("-5", AmountError::NotPositive),
            ("0", AmountError::NotPositive),
            ("0.00", AmountError::NotPositive),
            ("1234.567", AmountError::TooManyDecimals),
            ("1.2345", AmountError::TooManyDecimals),
            ("100000.01", AmountError::TooLarge),
            ("99999999999999999999999", AmountError::TooLarge),
        ];
        for (input, want) in cases {
            assert_eq!(parse_amount(input, max), Err(want), "{input:?}");
        }
    }

    #[test]
    fn formats_for_screens() {
        assert_eq!(format_amount(dec!(1500)), "1500");
        assert_eq!(format_amount(dec!(1500.00)), "1500");
        assert_eq!(format_amount(dec!(1500.5)), "1500.50");
        assert_eq!(format_amount(dec!(0.333)), "0.33");
    }

    #[test]
    fn currency_codes() {
        assert_eq!("tjs".parse::<Currency>(), Ok(Currency::TJS));
        assert!("TJ".parse::<Currency>().is_err());
        assert!("T1S".parse::<Currency>().is_err());
    }
}
