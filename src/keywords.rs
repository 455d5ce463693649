//! Keyword commands by SMS, in English, Russian and Tajik, Latin or Cyrillic spelling:
//! `PLEDGE 500 BRIDGE`, `ОБЕЩАЮ 1 500 МОСТ`, `ВАЪДА 5000 RUB`, `TOTAL`, `TIP`, `HELP`,
//! `LANG RU`, `JOIN 482113`, `MY` / `МОИ` / `ВАЪДАҲОИ МАН`, `CANCEL 1234567` /
//! `ОТМЕНА 1234567` / `БЕКОР 1234567`, `STOP`, `START`. Pure parsing; what each does is in `crate::sms`.

use rust_decimal::Decimal;

use crate::domain::{
    money::{parse_amount, AmountError},
    Currency, Language,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Pledge {
        amount: Decimal,
        /// The currency said, when one was (`RUB`, `СОМ`…); else the project's.
        currency: Option<Currency>,
        /// A project code or a word of its name, when given.
        project: Option<String>,
    },
    Total {
        project: Option<String>,
    },
    Tip,
    Help,
    Language(Option<Language>),
    Join(String),
    /// The household's pledges ("My pledges").
    Mine,
    /// Cancel the household's pledge with this 7-digit code.
    Cancel(String),
    Stop,
    Start,
}

/// A keyword was recognised but what followed it was not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    /// `PLEDGE` without an amount, or with one that is not a number.
    PledgeAmount(Option<AmountError>),
    /// `JOIN` without a code.
    JoinCode,
    /// `CANCEL` without a 7-digit pledge code.
    CancelCode,
}

const PLEDGE: &[&str] = &[
    "PLEDGE",
    "ВАЪДА",
    "ВАДА",
    "VADA",
    "VAADA",
    "VA'DA",
    "ОБЕЩАЮ",
    "ОБЕЩАНИЕ",
    "OBESHCHAYU",
    "OBESHAYU",
];
const TOTAL: &[&str] = &[
    "TOTAL",
    "TOTALS",
    "ҲИСОБ",
    "ХИСОБ",
    "HISOB",
    "ИТОГ",
    "ИТОГО",
    "ITOG",
    "ITOGO",
];
const TIP: &[&str] = &[
    "TIP",
    "TIPS",
    "МАСЛИҲАТ",
    "МАСЛИХАТ",
    "MASLIHAT",
    "СОВЕТ",
    "SOVET",
];
const HELP: &[&str] = &[
    "HELP",
    "ЁРӢ",
    "ЁРИ",
    "YORI",
    "ПОМОЩЬ",
    "POMOSHCH",
    "POMOSH",
    "?",
];
const LANGUAGE: &[&str] = &["LANG", "LANGUAGE", "ЗАБОН", "ZABON", "ЯЗЫК", "YAZYK"];
const JOIN: &[&str] = &["JOIN", "ПАЙВАСТ", "PAYVAST", "ВСТУПИТЬ"];
/// "My pledges": `MY`, Russian `МОИ` ("mine"), Tajik `ВАЪДАҲО` ("pledges"), each alone or
/// followed by the word that completes it (`MY PLEDGES`, `МОИ ОБЕЩАНИЯ`, `ВАЪДАҲОИ МАН`).
const MINE: &[&str] = &[
    "MY",
    "MINE",
    "МОИ",
    "MOI",
    "ВАЪДАҲО",
    "ВАЪДАХО",
    "ВАДАХО",
    "VADAHO",
    "VAADAHO",
    "ВАЪДАҲОИ",
    "ВАЪДАХОИ",
    "ВАДАХОИ",
    "VADAHOI",
];
/// What may follow a [`MINE`] word.
const MINE_TAIL: &[&str] = &[
    "PLEDGES",
    "ОБЕЩАНИЯ",
    "ВЗНОСЫ",
    "OBESHCHANIYA",
    "МАН",
    "MAN",
];
const CANCEL: &[&str] = &[
    "CANCEL",
    "ОТМЕНА",
    "ОТМЕНИТЬ",
    "OTMENA",
    "OTMENIT",
    "БЕКОР",
    "BEKOR",
];
const STOP: &[&str] = &["STOP", "СТОП", "UNSUBSCRIBE", "ОТПИСКА"];
const START: &[&str] = &["START", "СТАРТ", "UNSTOP"];

/// Largest amount a keyword may name; the pledge limit itself is checked when pledging.
const MAX_SAID: i64 = 1_000_000_000;

fn is(word: &str, list: &[&str]) -> bool {
    list.contains(&word)
}

fn currency_word(word: &str) -> Option<Currency> {
    match word {
        "СОМ" | "СОМОНӢ" | "СОМОНИ" | "SOMONI" | "SOM" => Some(Currency::TJS),
        "РУБ" | "РУБЛЬ" | "РУБЛЕЙ" | "RUBL" => "RUB".parse().ok(),
        "ДОЛЛАР" | "DOLLAR" | "$" => "USD".parse().ok(),
        "TJS" | "RUB" | "USD" | "EUR" | "KZT" | "UZS" => word.parse().ok(),
        _ => None,
    }
}

fn language_word(word: &str) -> Option<Language> {
    match word {
        "TG" | "ТҶ" | "ТОҶИКӢ" | "ТОЧИКИ" | "TOJIKI" | "TAJIK" | "ТАДЖИКСКИЙ" => {
            Some(Language::Tg)
        }
        "RU" | "РУ" | "РУССКИЙ" | "РУСӢ" | "RUSSIAN" | "RUSSKIY" => Some(Language::Ru),
        "EN" | "ENGLISH" | "АНГЛИСӢ" | "АНГЛИЙСКИЙ" => Some(Language::En),
        _ => None,
    }
}

/// Reads a text as a command. `None`: not a keyword (the text goes to the conversation).
pub fn parse(text: &str) -> Option<Result<Command, CommandError>> {
    let upper = text.trim().to_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let (first, rest) = words.split_first()?;
    let first = first.trim_end_matches(['.', ',', '!', ':']);
    if is(first, STOP) && rest.is_empty() {
        return Some(Ok(Command::Stop));
    }
    if is(first, START) && rest.is_empty() {
        return Some(Ok(Command::Start));
    }
    if is(first, HELP) {
        return Some(Ok(Command::Help));
    }
    if is(first, TIP) && rest.is_empty() {
        return Some(Ok(Command::Tip));
    }
    if is(first, TOTAL) {
        return Some(Ok(Command::Total {
            project: rest.first().map(|w| (*w).to_owned()),
        }));
    }
    if is(first, LANGUAGE) {
        return Some(Ok(Command::Language(
            rest.first().and_then(|w| language_word(w)),
        )));
    }
    if is(first, JOIN) {
        return Some(match rest.first() {
            Some(code)
                if code.chars().all(|c| c.is_ascii_digit()) && (4..=6).contains(&code.len()) =>
            {
                Ok(Command::Join((*code).to_owned()))
            }
            _ => Err(CommandError::JoinCode),
        });
    }
    if is(first, MINE) && (rest.is_empty() || rest.len() == 1 && is(rest[0], MINE_TAIL)) {
        return Some(Ok(Command::Mine));
    }
    if is(first, CANCEL) {
        return Some(match rest {
            [code] if code.len() == 7 && code.chars().all(|c| c.is_ascii_digit()) => {
                Ok(Command::Cancel((*code).to_owned()))
            }
            _ => Err(CommandError::CancelCode),
        });
    }
    if is(first, PLEDGE) {
        return Some(parse_pledge(rest));
    }
    None
}

/// A project as a keyword names it: its code, or a word of its name in any language.
#[derive(Debug, Clone, Copy)]
pub struct ProjectWords<'a> {
    pub code: &'a str,
    /// The names in tg, ru, en order (see [`Language::ALL`]).
    pub names: [&'a str; 3],
}

/// The project `word` names (any case): the one whose code it is, else the first whose name
/// in any language is that word or has it as a word.
pub fn find_project(projects: &[ProjectWords<'_>], word: &str) -> Option<usize> {
    let w = word.to_uppercase();
    projects.iter().position(|p| p.code == w).or_else(|| {
        projects.iter().position(|p| {
            p.names.iter().any(|n| {
                let n = n.to_uppercase();
                n == w || n.split_whitespace().any(|part| part == w)
            })
        })
    })
}

/// The word to suggest for project `i` in a reply in `lang`: the shortest word of its name
/// in that language that names it and no other project (`ОБЕЩАЮ 500 МОСТ`, not
/// `PLEDGE 500 BRIDGE`, in Russian), else its code. English replies use the code.
pub fn project_word(projects: &[ProjectWords<'_>], i: usize, lang: Language) -> String {
    let Some(project) = projects.get(i) else {
        return String::new();
    };
    let position = Language::ALL.iter().position(|l| *l == lang).unwrap_or(2);
    if lang == Language::En {
        return project.code.to_owned();
    }
    let name = project.names[position].to_uppercase();
    let mut words: Vec<&str> = name
        .split_whitespace()
        .filter(|w| w.chars().count() >= 3 && w.chars().all(char::is_alphabetic))
        .collect();
    words.sort_by_key(|w| w.chars().count());
    words
        .into_iter()
        .find(|w| find_project(projects, w) == Some(i))
        .map(str::to_owned)
        .unwrap_or_else(|| project.code.to_owned())
}

/// `500`, `1 500`, `1500.50`, `1500,50`, then an optional currency, then the project.
fn parse_pledge(rest: &[&str]) -> Result<Command, CommandError> {
    let numeric = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == ',' || c == '-')
    };
    let mut i = 0;
    let mut amount_text = String::new();
    while i < rest.len() && numeric(rest[i]) {
        // digit groups after the first: "1 500" but not "500 2025"
        if i > 0
            && !(rest[i].len() == 3 && rest[i].chars().all(|c| c.is_ascii_digit())
                || rest[i].contains([',', '.']))
        {
            break;
        }
        amount_text.push_str(rest[i]);
        i += 1;
    }
    if amount_text.is_empty() {
        return Err(CommandError::PledgeAmount(None));
    }
    let amount = parse_amount(&amount_text, Decimal::from(MAX_SAID))
        .map_err(|e| CommandError::PledgeAmount(Some(e)))?;
    let mut currency = None;
    if let Some(word) = rest.get(i) {
        if let Some(c) = currency_word(word) {
            currency = Some(c);
            i += 1;
        }
    }
    let project = if i < rest.len() {
        Some(rest[i..].join(" "))
    } else {
        None
    };
    Ok(Command::Pledge {
        amount,
        currency,
        project,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pledge(
        amount: &str,
        currency: Option<&str>,
        project: Option<&str>,
    ) -> Option<Result<Command, CommandError>> {
        Some(Ok(Command::Pledge {
            amount: amount.parse().expect("decimal"),
            currency: currency.map(|c| c.parse().expect("currency")),
            project: project.map(str::to_owned),
        }))
    }

    #[test]
    fn projects_are_suggested_by_a_word_of_their_name_in_the_replys_language() {
        let projects = [
            ProjectWords {
                code: "BRIDGE",
                names: ["Пули пиёдагард", "Пешеходный мост", "Footbridge"],
            },
            ProjectWords {
                code: "ROOF",
                names: ["Боми мактаб", "Крыша школы", "School roof"],
            },
            // a word another project's name has too: not suggested for this one
            ProjectWords {
                code: "ROOF2",
                names: ["Боми клуб", "Крыша клуба", "Club roof"],
            },
        ];
        assert_eq!(project_word(&projects, 0, Language::Ru), "МОСТ");
        assert_eq!(project_word(&projects, 0, Language::Tg), "ПУЛИ");
        assert_eq!(project_word(&projects, 0, Language::En), "BRIDGE");
        assert_eq!(project_word(&projects, 1, Language::Ru), "КРЫША");
        assert_eq!(project_word(&projects, 2, Language::Ru), "КЛУБА");
        assert_eq!(project_word(&projects, 2, Language::Tg), "КЛУБ");
        // "БОМИ" names the school roof first: the club's is its other word
        assert_eq!(project_word(&projects, 1, Language::Tg), "БОМИ");
        // every suggestion, read back as a keyword, names its project
        for lang in Language::ALL {
            for i in 0..projects.len() {
                let word = project_word(&projects, i, lang);
                assert_eq!(find_project(&projects, &word), Some(i), "{lang} {word}");
                let text = format!("ОБЕЩАЮ 500 {word}");
                assert_eq!(parse(&text), pledge("500", None, Some(&word)), "{text}");
            }
        }
    }

    #[test]
    fn keyword_cases() {
        let cases: Vec<(&str, Option<Result<Command, CommandError>>)> = vec![
            ("PLEDGE 500", pledge("500", None, None)),
            ("pledge 500 bridge", pledge("500", None, Some("BRIDGE"))),
            (
                "  Pledge   1 500   Bridge ",
                pledge("1500", None, Some("BRIDGE")),
            ),
            ("PLEDGE 1500.50 ROOF", pledge("1500.5", None, Some("ROOF"))),
            ("PLEDGE 1500,50", pledge("1500.5", None, None)),
            ("ВАЪДА 500", pledge("500", None, None)),
            ("ваъда 500 пул", pledge("500", None, Some("ПУЛ"))),
            ("ОБЕЩАЮ 500 МОСТ", pledge("500", None, Some("МОСТ"))),
            (
                "обещаю 1 000 000 мост",
                pledge("1000000", None, Some("МОСТ")),
            ),
            ("PLEDGE 5000 RUB", pledge("5000", Some("RUB"), None)),
            (
                "PLEDGE 5000 руб мост",
                pledge("5000", Some("RUB"), Some("МОСТ")),
            ),
            ("vada 300 som", pledge("300", Some("TJS"), None)),
            ("PLEDGE", Some(Err(CommandError::PledgeAmount(None)))),
            ("PLEDGE BRIDGE", Some(Err(CommandError::PledgeAmount(None)))),
            (
                "PLEDGE -5",
                Some(Err(CommandError::PledgeAmount(Some(
                    AmountError::NotPositive,
                )))),
            ),
            (
                "PLEDGE 0",
                Some(Err(CommandError::PledgeAmount(Some(
                    AmountError::NotPositive,
                )))),
            ),
            (
                // (`1.234` is 1234 since issue 8: three digits after a separator group thousands)
                "PLEDGE 1.2345",
                Some(Err(CommandError::PledgeAmount(Some(
                    AmountError::TooManyDecimals,
                )))),
            ),
            ("PLEDGE 1,500 BRIDGE", pledge("1500", None, Some("BRIDGE"))),
            ("PLEDGE 1.500,50", pledge("1500.5", None, None)),
            (
                "PLEDGE 1.2.3",
                Some(Err(CommandError::PledgeAmount(Some(
                    AmountError::NotANumber,
                )))),
            ),
            ("TOTAL", Some(Ok(Command::Total { project: None }))),
            (
                "итого мост",
                Some(Ok(Command::Total {
                    project: Some("МОСТ".into()),
                })),
            ),
            ("ҳисоб", Some(Ok(Command::Total { project: None }))),
            ("tip", Some(Ok(Command::Tip))),
            ("Совет", Some(Ok(Command::Tip))),
            ("маслиҳат", Some(Ok(Command::Tip))),
            ("HELP", Some(Ok(Command::Help))),
            ("помощь", Some(Ok(Command::Help))),
            ("lang ru", Some(Ok(Command::Language(Some(Language::Ru))))),
            (
                "забон тоҷикӣ",
                Some(Ok(Command::Language(Some(Language::Tg)))),
            ),
            ("язык", Some(Ok(Command::Language(None)))),
            ("JOIN 4821", Some(Ok(Command::Join("4821".into())))),
            ("join 482113", Some(Ok(Command::Join("482113".into())))),
            ("JOIN abc", Some(Err(CommandError::JoinCode))),
            ("JOIN", Some(Err(CommandError::JoinCode))),
            ("STOP", Some(Ok(Command::Stop))),
            ("стоп", Some(Ok(Command::Stop))),
            ("Stop.", Some(Ok(Command::Stop))),
            ("START", Some(Ok(Command::Start))),
            ("старт", Some(Ok(Command::Start))),
            ("MY", Some(Ok(Command::Mine))),
            ("my pledges", Some(Ok(Command::Mine))),
            ("мои", Some(Ok(Command::Mine))),
            ("Мои обещания", Some(Ok(Command::Mine))),
            ("ваъдаҳо", Some(Ok(Command::Mine))),
            ("Ваъдаҳои ман", Some(Ok(Command::Mine))),
            ("vadahoi man", Some(Ok(Command::Mine))),
            ("my bridge is broken", None),
            (
                "CANCEL 1234567",
                Some(Ok(Command::Cancel("1234567".into()))),
            ),
            (
                "отмена 1234567",
                Some(Ok(Command::Cancel("1234567".into()))),
            ),
            ("бекор 7654321", Some(Ok(Command::Cancel("7654321".into())))),
            ("CANCEL", Some(Err(CommandError::CancelCode))),
            ("ОТМЕНА 12345", Some(Err(CommandError::CancelCode))),
            ("cancel 1234567 please", Some(Err(CommandError::CancelCode))),
            ("stop sending me the bridge news", None),
            ("hello", None),
            ("1", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), want, "{text:?}");
        }
    }
}
