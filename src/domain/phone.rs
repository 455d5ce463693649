use std::fmt;

use phonenumber::{country, Mode};
use serde::{Serialize, Serializer};

/// The numbers parsed lately, spelling as received → E.164. Parsing matches the spelling
/// against the country's metadata patterns (regular expressions): about a tenth of a USSD
/// hop's CPU when profiled, for the same few thousand numbers over and over. Parsing is a
/// pure function of the spelling, so a remembered answer is always the right one. Only
/// numbers that parsed are kept (junk cannot push them out one by one), at most
/// [`memo::MAX`] of them; when full the memo starts over (a flood of new numbers costs the
/// parse, nothing else). Written by hand: a map under a mutex is all it takes, and the
/// caches on crates.io would be a dependency for eight lines.
mod memo {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    use super::Phone;

    /// At most this many spellings (a few MiB at the most).
    pub const MAX: usize = 32_768;
    /// Longer spellings are parsed every time (a number is at most 15 digits and a few
    /// separators).
    const MAX_LEN: usize = 32;

    fn map() -> &'static Mutex<HashMap<Box<str>, Phone>> {
        static MAP: OnceLock<Mutex<HashMap<Box<str>, Phone>>> = OnceLock::new();
        MAP.get_or_init(|| Mutex::new(HashMap::new()))
    }

    pub fn get(spelling: &str) -> Option<Phone> {
        if spelling.len() > MAX_LEN {
            return None;
        }
        // A poisoned lock only means a panic elsewhere while holding it: the map is whole.
        let map = map().lock().unwrap_or_else(|e| e.into_inner());
        map.get(spelling).cloned()
    }

    pub fn put(spelling: &str, phone: &Phone) {
        if spelling.len() > MAX_LEN {
            return;
        }
        let mut map = map().lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX {
            map.clear();
        }
        map.insert(spelling.into(), phone.clone());
    }
}

/// A phone number in E.164 form (`+992901234567`), parsed once at the edge.
///
/// A number without a country code is read as Tajik. `Display` and `Debug` mask the middle
/// digits so that a number never reaches a log in full; use [`Phone::as_str`] for storage.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("not a phone number: {0}")]
    Unparseable(String),
    #[error("not a valid phone number for its country")]
    Invalid,
}

impl Phone {
    /// Parses any common spelling (`+992 90 123 4567`, `00992901234567`, `901234567`).
    pub fn parse(raw: &str) -> Result<Phone, PhoneError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if let Some(known) = memo::get(trimmed) {
            return Ok(known);
        }
        let phone = Phone::parse_uncached(trimmed)?;
        memo::put(trimmed, &phone);
        Ok(phone)
    }

    /// [`Phone::parse`] without the memo: the numbering-plan metadata's patterns, every time.
    fn parse_uncached(trimmed: &str) -> Result<Phone, PhoneError> {
        // Aggregators such as Infobip send international numbers without the `+`.
        let digits_only = trimmed.chars().all(|c| c.is_ascii_digit());
        let candidate = if digits_only && trimmed.len() > 9 && !trimmed.starts_with('0') {
            format!("+{trimmed}")
        } else if let Some(rest) = trimmed.strip_prefix("00") {
            format!("+{rest}")
        } else {
            trimmed.to_owned()
        };
        let number = phonenumber::parse(Some(country::Id::TJ), &candidate)
            .map_err(|e| PhoneError::Unparseable(e.to_string()))?;
        if !phonenumber::is_valid(&number) {
            return Err(PhoneError::Invalid);
        }
        let e164 = number.format().mode(Mode::E164).to_string();
        // E.164 allows at most 15 digits, and the database stores 7 to 15 (every phone
        // column checks `^\+[1-9][0-9]{6,14}$`); the metadata accepts some longer German
        // numbers, which would otherwise fail at the insert.
        if !(8..=16).contains(&e164.len()) {
            return Err(PhoneError::Invalid);
        }
        Ok(Phone(e164))
    }

    /// Parses a number that is known to be in international form, with or without the `+`
    /// (Infobip sends `992901234567`, aggregators.md §5.5). [`Phone::parse`] has to guess
    /// for bare digits and reads nine or fewer as a Tajik national number, which would turn
    /// a short foreign number (`988364467`, +98…) into a Tajik one.
    pub fn parse_international(raw: &str) -> Result<Phone, PhoneError> {
        let trimmed = raw.trim();
        if !trimmed.is_empty()
            && !trimmed.starts_with('0')
            && trimmed.chars().all(|c| c.is_ascii_digit())
        {
            return Phone::parse(&format!("+{trimmed}"));
        }
        Phone::parse(trimmed)
    }

    /// Loads the numbering-plan metadata now, and compiles the patterns of the countries
    /// the programme's callers come from (both are done lazily on first use, which takes a
    /// noticeable moment, most of a second unoptimised), so that no caller's first request
    /// pays for it. Called when the application state is built; cheap after the first call.
    pub fn warm_up() {
        static WARM: std::sync::Once = std::sync::Once::new();
        WARM.call_once(|| {
            // Tajikistan, Russia, Kazakhstan, Uzbekistan, Kyrgyzstan, Turkey.
            for example in [
                "+992901234567",
                "+79161234567",
                "+77012345678",
                "+998901234567",
                "+996700123456",
                "+905321234567",
            ] {
                let _ = Phone::parse(example);
            }
        });
    }

    /// Wraps a value read back from the database, where only E.164 numbers are stored.
    pub fn from_e164_unchecked(e164: String) -> Phone {
        Phone(e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `+99290*****67`: country and operator prefix, then the last two digits.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// Masks a phone-like string for logs: keeps the first 6 and the last 2 characters.
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_number_is_the_parsed_one() {
        for spelling in [
            "+992 90 123 4567",
            "992901234567",
            "00992901234567",
            "901234567",
        ] {
            let first = Phone::parse(spelling).expect("valid");
            let again = Phone::parse(spelling).expect("remembered");
            assert_eq!(first, again);
            assert_eq!(Some(first), memo::get(spelling));
            assert_eq!(again, Phone::parse_uncached(spelling).expect("valid"));
        }
        // what did not parse is not remembered, and is refused every time
        assert_eq!(Phone::parse("+99290"), Phone::parse("+99290"));
        assert!(Phone::parse("+99290").is_err());
        assert_eq!(memo::get("+99290"), None);
    }

    #[test]
    fn parses_tajik_and_foreign_numbers() {
        let cases = [
            ("+992901234567", "+992901234567"),
            ("+992 90 123 4567", "+992901234567"),
            ("00992901234567", "+992901234567"),
            ("992901234567", "+992901234567"),
            ("901234567", "+992901234567"),
            ("+79161234567", "+79161234567"),
            ("79161234567", "+79161234567"),
        ];
        for (raw, want) in cases {
            assert_eq!(
                Phone::parse(raw).map(|p| p.as_str().to_owned()),
                Ok(want.to_owned()),
                "{raw}"
            );
        }
    }

    /// Found by the `phone` fuzz target: `+988364467` written without its `+` (as Infobip
    /// writes every number) was read as the Tajik `+992988364467`.
    #[test]
    fn international_digits_keep_their_country() {
        assert_eq!(
            Phone::parse("988364467").map(|p| p.as_str().to_owned()),
            Ok("+992988364467".to_owned()),
            "bare nine digits are Tajik for a person typing"
        );
        for raw in ["988364467", "+988364467", " 988364467 "] {
            assert_eq!(
                Phone::parse_international(raw).map(|p| p.as_str().to_owned()),
                Ok("+988364467".to_owned()),
                "{raw}"
            );
        }
        assert_eq!(
            Phone::parse_international("992901234567").map(|p| p.as_str().to_owned()),
            Ok("+992901234567".to_owned())
        );
        assert_eq!(Phone::parse_international(" "), Err(PhoneError::Empty));
    }

    /// Found by the `phone` fuzz target: `+4960406640928007` (16 digits) was valid for the
    /// metadata but not E.164, and every phone column refuses it.
    #[test]
    fn more_than_fifteen_digits_is_not_a_number() {
        assert_eq!(Phone::parse("+4960406640928007"), Err(PhoneError::Invalid));
        assert_eq!(
            Phone::parse_international("4960406640928007"),
            Err(PhoneError::Invalid)
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Phone::parse("  "), Err(PhoneError::Empty));
        assert!(Phone::parse("hello").is_err());
        assert!(Phone::parse("+9921").is_err());
    }

    #[test]
    fn masks_for_logs() {
        let p = Phone::parse("+992901234567").expect("valid");
        assert_eq!(p.to_string(), "+99290*****67");
        assert_eq!(format!("{p:?}"), "Phone(+99290*****67)");
    }
}
