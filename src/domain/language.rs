use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A language Hashar speaks. Texts for each live in `menus/locales/<code>.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Tajik (Cyrillic script).
    Tg,
    /// Russian.
    Ru,
    /// English.
    En,
}

impl Language {
    pub const ALL: [Language; 3] = [Language::Tg, Language::Ru, Language::En];

    pub fn code(self) -> &'static str {
        match self {
            Language::Tg => "tg",
            Language::Ru => "ru",
            Language::En => "en",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown language {0:?}: expected tg, ru or en")]
pub struct UnknownLanguage(pub String);

impl FromStr for Language {
    type Err = UnknownLanguage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tg" => Ok(Language::Tg),
            "ru" => Ok(Language::Ru),
            "en" => Ok(Language::En),
            _ => Err(UnknownLanguage(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_case_insensitively() {
        assert_eq!("TG".parse::<Language>(), Ok(Language::Tg));
        assert_eq!(" ru ".parse::<Language>(), Ok(Language::Ru));
        assert!("de".parse::<Language>().is_err());
    }
}
