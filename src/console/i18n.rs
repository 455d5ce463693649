//! The console's texts, plurals, numbers, money, percentages and dates in Tajik, Russian
//! and English.
//!
//! Texts live in `console/locales/{tg,ru,en}.toml` (embedded), in the format translators
//! know from `menus/locales`: dotted keys, `{named}` placeholders, and a plural as a table
//! of forms (`[households.count]` with `one`/`other`, Russian `one`/`few`/`many`).
//! Household-facing texts stay in `menus/locales`.
//!
//! Templates call `t.t("login.title")`, `t.n("login.attempts_left", 3)`,
//! `t.money(amount, currency)`, `t.date(day)`. The number and date rules are CLDR's (checked
//! against ICU4X 2), written out here because Fluent's plural rules have no Tajik and its
//! numbers are ungrouped `f64`s:
//! - tg, ru: `1 234 567,50` (group separator U+00A0, decimal comma); en: `1,234,567.50`;
//! - money: always two decimals and the ISO code after: `1 500,00 TJS`;
//! - percentages: one decimal: tg `12,5%`, ru `12,5 %` (U+00A0), en `12.5%`;
//! - dates: tables `28.11.2026` (tg, ru), `28 Nov 2026` (en); long `28 Ноябр 2026`,
//!   `28 ноября 2026 г.`, `28 November 2026`. CLDR capitalises Tajik month names; the
//!   programme's Tajik translator confirms them before release.
//!
//! [`check`] is the completeness check (a test, and at server start through
//! [`check_at_start`]): every key in every language with the same placeholders, the plural
//! forms each language needs, every key the console uses present, and no Tajik or Russian
//! text left in English unless it is allow-listed.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::LazyLock,
};

use chrono::{Datelike, NaiveDate, NaiveTime, Timelike, Weekday};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::domain::Language;

/// The locale files, embedded.
const SOURCES: [(Language, &str); 3] = [
    (Language::Tg, include_str!("../../console/locales/tg.toml")),
    (Language::Ru, include_str!("../../console/locales/ru.toml")),
    (Language::En, include_str!("../../console/locales/en.toml")),
];

/// Every file whose text may use a key (`t.t("…")`, `t.n("…", …)`), embedded so that the
/// check at server start sees them too; a test makes sure every file under
/// `templates/console/` and `src/console/` is listed.
pub const USERS: &[(&str, &str)] = &[
    (
        "templates/console/base.html",
        include_str!("../../templates/console/base.html"),
    ),
    (
        "templates/console/login.html",
        include_str!("../../templates/console/login.html"),
    ),
    (
        "templates/console/overview.html",
        include_str!("../../templates/console/overview.html"),
    ),
    (
        "templates/console/message.html",
        include_str!("../../templates/console/message.html"),
    ),
    (
        "templates/console/households.html",
        include_str!("../../templates/console/households.html"),
    ),
    (
        "templates/console/household.html",
        include_str!("../../templates/console/household.html"),
    ),
    (
        "templates/console/households_cards.html",
        include_str!("../../templates/console/households_cards.html"),
    ),
    (
        "templates/console/household_timeline.html",
        include_str!("../../templates/console/household_timeline.html"),
    ),
    (
        "templates/console/household_form.html",
        include_str!("../../templates/console/household_form.html"),
    ),
    (
        "templates/console/household_phone.html",
        include_str!("../../templates/console/household_phone.html"),
    ),
    ("src/console/households.rs", include_str!("households.rs")),
    (
        "templates/console/exports.html",
        include_str!("../../templates/console/exports.html"),
    ),
    (
        "templates/console/people.html",
        include_str!("../../templates/console/people.html"),
    ),
    (
        "templates/console/people_tabs.html",
        include_str!("../../templates/console/people_tabs.html"),
    ),
    (
        "templates/console/people_note.html",
        include_str!("../../templates/console/people_note.html"),
    ),
    (
        "templates/console/people_new.html",
        include_str!("../../templates/console/people_new.html"),
    ),
    (
        "templates/console/people_person.html",
        include_str!("../../templates/console/people_person.html"),
    ),
    (
        "templates/console/people_audit.html",
        include_str!("../../templates/console/people_audit.html"),
    ),
    (
        "templates/console/people_welcome.html",
        include_str!("../../templates/console/people_welcome.html"),
    ),
    ("src/console/mod.rs", include_str!("mod.rs")),
    ("src/console/people.rs", include_str!("people.rs")),
    ("src/console/assets.rs", include_str!("assets.rs")),
    ("src/console/auth.rs", include_str!("auth.rs")),
    ("src/console/csrf.rs", include_str!("csrf.rs")),
    ("src/console/headers.rs", include_str!("headers.rs")),
    ("src/console/i18n.rs", include_str!("i18n.rs")),
    ("src/console/pages.rs", include_str!("pages.rs")),
    ("src/console/overview.rs", include_str!("overview.rs")),
    ("src/console/exports.rs", include_str!("exports.rs")),
    ("src/console/svg.rs", include_str!("svg.rs")),
    ("src/console/timing.rs", include_str!("timing.rs")),
    (
        "templates/console/money.html",
        include_str!("../../templates/console/money.html"),
    ),
    (
        "templates/console/money_confirm.html",
        include_str!("../../templates/console/money_confirm.html"),
    ),
    (
        "templates/console/money_reverse.html",
        include_str!("../../templates/console/money_reverse.html"),
    ),
    (
        "templates/console/money_project.html",
        include_str!("../../templates/console/money_project.html"),
    ),
    ("src/console/flash.rs", include_str!("flash.rs")),
    ("src/console/money.rs", include_str!("money.rs")),
    ("src/console/outreach.rs", include_str!("outreach.rs")),
    (
        "templates/console/outreach.html",
        include_str!("../../templates/console/outreach.html"),
    ),
    (
        "templates/console/projects.html",
        include_str!("../../templates/console/projects.html"),
    ),
    (
        "templates/console/projects_page.html",
        include_str!("../../templates/console/projects_page.html"),
    ),
    (
        "templates/console/projects_edit.html",
        include_str!("../../templates/console/projects_edit.html"),
    ),
    (
        "templates/console/projects_new.html",
        include_str!("../../templates/console/projects_new.html"),
    ),
    (
        "templates/console/projects_confirm.html",
        include_str!("../../templates/console/projects_confirm.html"),
    ),
    ("src/console/projects.rs", include_str!("projects.rs")),
    (
        "templates/console/broadcasts.html",
        include_str!("../../templates/console/broadcasts.html"),
    ),
    (
        "templates/console/broadcasts_new.html",
        include_str!("../../templates/console/broadcasts_new.html"),
    ),
    (
        "templates/console/broadcasts_measure.html",
        include_str!("../../templates/console/broadcasts_measure.html"),
    ),
    (
        "templates/console/broadcasts_reach.html",
        include_str!("../../templates/console/broadcasts_reach.html"),
    ),
    (
        "templates/console/broadcasts_live.html",
        include_str!("../../templates/console/broadcasts_live.html"),
    ),
    (
        "templates/console/broadcasts_confirm.html",
        include_str!("../../templates/console/broadcasts_confirm.html"),
    ),
    (
        "templates/console/broadcast.html",
        include_str!("../../templates/console/broadcast.html"),
    ),
    ("src/console/broadcasts.rs", include_str!("broadcasts.rs")),
    (
        "templates/console/meeting_attendance.html",
        include_str!("../../templates/console/meeting_attendance.html"),
    ),
    ("src/console/meetings.rs", include_str!("meetings.rs")),
    (
        "templates/console/callbacks.html",
        include_str!("../../templates/console/callbacks.html"),
    ),
    ("src/console/callbacks.rs", include_str!("callbacks.rs")),
    (
        "templates/console/callbacks_coverage.html",
        include_str!("../../templates/console/callbacks_coverage.html"),
    ),
    (
        "templates/console/callbacks_confirm.html",
        include_str!("../../templates/console/callbacks_confirm.html"),
    ),
    (
        "templates/console/holidays.html",
        include_str!("../../templates/console/holidays.html"),
    ),
    ("src/console/holidays.rs", include_str!("holidays.rs")),
    (
        "templates/console/phone.html",
        include_str!("../../templates/console/phone.html"),
    ),
    ("src/console/phone.rs", include_str!("phone.rs")),
];

/// Texts a Tajik or Russian translation may leave as the English ones.
pub const SAME_AS_ENGLISH: &[&str] = &["SMS", "USSD", "TJS"];

/// A CLDR plural category (the ones our three languages use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Plural {
    One,
    Few,
    Many,
    Other,
}

impl Plural {
    fn parse(name: &str) -> Option<Plural> {
        Some(match name {
            "one" => Plural::One,
            "few" => Plural::Few,
            "many" => Plural::Many,
            "other" => Plural::Other,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Plural::One => "one",
            Plural::Few => "few",
            Plural::Many => "many",
            Plural::Other => "other",
        }
    }

    /// The category of the whole number `n` in `language` (CLDR). Russian: *one* if
    /// n % 10 = 1 and n % 100 ≠ 11; *few* if n % 10 is 2–4 and n % 100 is not 12–14; else
    /// *many*. Tajik and English: *one* if n = 1, else *other*.
    pub fn of(language: Language, n: i64) -> Plural {
        let n = n.unsigned_abs();
        match language {
            Language::Ru => {
                let (m10, m100) = (n % 10, n % 100);
                if m10 == 1 && m100 != 11 {
                    Plural::One
                } else if (2..=4).contains(&m10) && !(12..=14).contains(&m100) {
                    Plural::Few
                } else {
                    Plural::Many
                }
            }
            Language::Tg | Language::En => {
                if n == 1 {
                    Plural::One
                } else {
                    Plural::Other
                }
            }
        }
    }

    /// The forms a plural must have in `language`.
    pub fn needed(language: Language) -> &'static [Plural] {
        match language {
            Language::Ru => &[Plural::One, Plural::Few, Plural::Many],
            Language::Tg | Language::En => &[Plural::One, Plural::Other],
        }
    }
}

/// One key's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Text(String),
    Plural(BTreeMap<Plural, String>),
}

/// One language's texts, by dotted key.
#[derive(Debug, Clone, Default)]
pub struct Locale {
    pub entries: BTreeMap<String, Entry>,
}

/// A locale file that is not what the console can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocaleError {
    #[error("console/locales/{language}.toml: {problem}")]
    Syntax { language: Language, problem: String },
    #[error("console/locales/{language}.toml: {key}: {problem}")]
    Value {
        language: Language,
        key: String,
        problem: String,
    },
}

impl Locale {
    /// Reads a locale file: a string is a text, a table of plural forms is a plural, any
    /// other table nests its keys.
    pub fn parse(language: Language, source: &str) -> Result<Locale, LocaleError> {
        let table: toml::Table =
            source
                .parse()
                .map_err(|e: toml::de::Error| LocaleError::Syntax {
                    language,
                    problem: e.message().to_owned(),
                })?;
        let mut locale = Locale::default();
        locale.add(language, "", &table)?;
        Ok(locale)
    }

    fn add(
        &mut self,
        language: Language,
        prefix: &str,
        table: &toml::Table,
    ) -> Result<(), LocaleError> {
        for (name, value) in table {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            let bad = |problem: &str| LocaleError::Value {
                language,
                key: key.clone(),
                problem: problem.to_owned(),
            };
            match value {
                toml::Value::String(text) => {
                    self.entries.insert(key, Entry::Text(text.clone()));
                }
                toml::Value::Table(inner)
                    if !inner.is_empty() && inner.keys().all(|k| Plural::parse(k).is_some()) =>
                {
                    let mut forms = BTreeMap::new();
                    for (form, text) in inner {
                        let text = text
                            .as_str()
                            .ok_or_else(|| bad("a plural form must be a string"))?;
                        if let Some(p) = Plural::parse(form) {
                            forms.insert(p, text.to_owned());
                        }
                    }
                    self.entries.insert(key, Entry::Plural(forms));
                }
                toml::Value::Table(inner) => self.add(language, &key, inner)?,
                _ => return Err(bad("a text must be a string")),
            }
        }
        Ok(())
    }
}

/// The three languages' texts.
#[derive(Debug, Clone, Default)]
pub struct Locales {
    by_language: BTreeMap<Language, Locale>,
}

impl Locales {
    /// Parses the embedded locale files.
    pub fn embedded() -> Result<Locales, LocaleError> {
        Locales::parse(&SOURCES)
    }

    pub fn parse(sources: &[(Language, &str)]) -> Result<Locales, LocaleError> {
        let mut by_language = BTreeMap::new();
        for (language, source) in sources {
            by_language.insert(*language, Locale::parse(*language, source)?);
        }
        Ok(Locales { by_language })
    }

    pub fn locale(&self, language: Language) -> Option<&Locale> {
        self.by_language.get(&language)
    }
}

static EMBEDDED: LazyLock<Result<Locales, LocaleError>> = LazyLock::new(Locales::embedded);
static EMPTY: LazyLock<Locale> = LazyLock::new(Locale::default);

/// The check at server start: the embedded texts, complete ([`check`] with [`USERS`]).
pub fn check_at_start() -> Result<(), IncompleteTexts> {
    let locales = match &*EMBEDDED {
        Ok(l) => l,
        Err(e) => return Err(IncompleteTexts(vec![e.to_string()])),
    };
    let problems = check(locales, USERS);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(IncompleteTexts(problems))
    }
}

/// What the completeness check found, one problem a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the console's texts are incomplete:\n{}", .0.join("\n"))]
pub struct IncompleteTexts(pub Vec<String>);

/// The `{name}` placeholders of a text.
pub fn placeholders(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    found.insert(name.to_owned());
                }
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    found
}

fn entry_placeholders(entry: &Entry) -> BTreeSet<String> {
    match entry {
        Entry::Text(t) => placeholders(t),
        Entry::Plural(forms) => forms.values().flat_map(|t| placeholders(t)).collect(),
    }
}

/// Names a text key held in a value before it is looked up (`key("login.not_yet")`), so
/// that the completeness check sees it.
pub const fn key(k: &'static str) -> &'static str {
    k
}

/// The keys a template or source file uses: the string literal after `.t("`, `.n("` or
/// `key("`. Comment lines (`//`) are skipped.
pub fn used_keys(source: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for line in source.lines() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        for call in [".t(\"", ".n(\"", "key(\""] {
            let mut rest = line;
            while let Some(at) = rest.find(call) {
                let after = &rest[at + call.len()..];
                match after.find('"') {
                    Some(end) => {
                        keys.insert(after[..end].to_owned());
                        rest = &after[end..];
                    }
                    None => break,
                }
            }
        }
    }
    keys
}

/// The completeness check: every problem, one a line (none: complete). Fails on a key
/// missing in a language (or one only it has) or a different placeholder set; a text where
/// English has a plural or the other way round; a Russian plural without one/few/many or a
/// Tajik or English one without one/other; a key used in `users` that English lacks; a
/// Tajik or Russian text equal to the English one unless in [`SAME_AS_ENGLISH`].
pub fn check(locales: &Locales, users: &[(&str, &str)]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(en) = locales.locale(Language::En) else {
        return vec!["no English texts".to_owned()];
    };
    for language in Language::ALL {
        let Some(locale) = locales.locale(language) else {
            problems.push(format!("{language}: no texts"));
            continue;
        };
        for (key, entry) in &locale.entries {
            if let Entry::Plural(forms) = entry {
                for needed in Plural::needed(language) {
                    if !forms.contains_key(needed) {
                        problems.push(format!(
                            "{language}: {key}: a plural without its `{}` form",
                            needed.name()
                        ));
                    }
                }
            }
            if language == Language::En {
                continue;
            }
            let Some(english) = en.entries.get(key) else {
                problems.push(format!("{language}: {key}: not in English"));
                continue;
            };
            match (entry, english) {
                (Entry::Text(_), Entry::Plural(_)) => problems.push(format!(
                    "{language}: {key}: a text where English has a plural"
                )),
                (Entry::Plural(_), Entry::Text(_)) => problems.push(format!(
                    "{language}: {key}: a plural where English has a text"
                )),
                _ => {}
            }
            let (mine, theirs) = (entry_placeholders(entry), entry_placeholders(english));
            if mine != theirs {
                problems.push(format!(
                    "{language}: {key}: placeholders {mine:?}, English has {theirs:?}"
                ));
            }
            let same = match (entry, english) {
                (Entry::Text(a), Entry::Text(b)) => {
                    a == b && !SAME_AS_ENGLISH.contains(&a.as_str())
                }
                (Entry::Plural(a), Entry::Plural(b)) => a
                    .iter()
                    .any(|(p, t)| b.get(p) == Some(t) && !SAME_AS_ENGLISH.contains(&t.as_str())),
                _ => false,
            };
            if same {
                problems.push(format!("{language}: {key}: still the English text"));
            }
        }
        if language != Language::En {
            for key in en.entries.keys() {
                if !locale.entries.contains_key(key) {
                    problems.push(format!("{language}: {key}: missing"));
                }
            }
        }
    }
    for (file, source) in users {
        for key in used_keys(source) {
            if !en.entries.contains_key(&key) {
                problems.push(format!("{file}: uses {key}, which no locale has"));
            }
        }
    }
    problems
}

/// Fills `{name}` placeholders from `vars`; an unknown one stays as it is.
fn fill(text: &str, vars: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// The console's texts and formats in one language: what templates call `t`.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub language: Language,
    locale: &'static Locale,
}

impl Tr {
    /// The embedded texts in `language` (no texts when they failed to load, which the check
    /// at start refuses: keys are shown instead).
    pub fn new(language: Language) -> Tr {
        let locale = match &*EMBEDDED {
            Ok(l) => l.locale(language).unwrap_or(&EMPTY),
            Err(_) => &EMPTY,
        };
        Tr { language, locale }
    }

    /// The language's code, for `<html lang>`.
    pub fn lang(&self) -> &'static str {
        self.language.code()
    }

    /// The text of `key`; a missing one (which the completeness check refuses) shows the key.
    pub fn t(&self, key: &str) -> String {
        match self.locale.entries.get(key) {
            Some(Entry::Text(text)) => text.clone(),
            Some(Entry::Plural(forms)) => forms
                .get(&Plural::Other)
                .or_else(|| forms.values().next())
                .cloned()
                .unwrap_or_else(|| key.to_owned()),
            None => {
                tracing::debug!(key, language = %self.language, "console text missing");
                key.to_owned()
            }
        }
    }

    /// The text of `key` with its placeholders filled.
    pub fn t_with(&self, key: &str, vars: &[(&str, &str)]) -> String {
        fill(&self.t(key), vars)
    }

    /// The plural text of `key` for `count`, `{n}` filled with the count in this language's
    /// digits.
    pub fn n(&self, key: &str, count: i64) -> String {
        let n = self.int(count);
        let text = match self.locale.entries.get(key) {
            Some(Entry::Plural(forms)) => forms
                .get(&Plural::of(self.language, count))
                .or_else(|| forms.get(&Plural::Other))
                .cloned()
                .unwrap_or_else(|| key.to_owned()),
            _ => self.t(key),
        };
        fill(&text, &[("n", &n)])
    }

    /// A whole number with this language's group separator.
    pub fn int(&self, n: i64) -> String {
        self.number(Decimal::from(n), 0)
    }

    /// `value` rounded (half away from zero) to `decimals`, grouped by thousands.
    pub fn number(&self, value: Decimal, decimals: u32) -> String {
        let (group, point) = separators(self.language);
        let rounded =
            value.round_dp_with_strategy(decimals, RoundingStrategy::MidpointAwayFromZero);
        let plain = format!("{:.*}", decimals as usize, rounded.abs());
        let (whole, fraction) = match plain.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (plain.as_str(), None),
        };
        let mut out = String::new();
        if rounded.is_sign_negative() && !rounded.is_zero() {
            out.push('-');
        }
        let digits = whole.len();
        for (i, digit) in whole.chars().enumerate() {
            if i > 0 && (digits - i) % 3 == 0 {
                out.push(group);
            }
            out.push(digit);
        }
        if let Some(f) = fraction {
            out.push(point);
            out.push_str(f);
        }
        out
    }

    /// An amount with two decimals and the currency code after: `1 500,00 TJS`.
    pub fn money(&self, amount: Decimal, currency: impl std::fmt::Display) -> String {
        format!("{}\u{a0}{currency}", self.number(amount, 2))
    }

    /// A percentage with one decimal: `12,5%` (tg), `12,5 %` (ru), `12.5%` (en).
    pub fn percent(&self, value: Decimal) -> String {
        let n = self.number(value, 1);
        match self.language {
            Language::Ru => format!("{n}\u{a0}%"),
            Language::Tg | Language::En => format!("{n}%"),
        }
    }

    /// A date in a table: `28.11.2026` (tg, ru), `28 Nov 2026` (en).
    pub fn date(&self, day: NaiveDate) -> String {
        match self.language {
            Language::Tg | Language::Ru => {
                format!("{:02}.{:02}.{}", day.day(), day.month(), day.year())
            }
            Language::En => format!(
                "{} {} {}",
                day.day(),
                EN_MONTHS_SHORT[day.month0() as usize],
                day.year()
            ),
        }
    }

    /// A date in a sentence: `28 Ноябр 2026`, `28 ноября 2026 г.`, `28 November 2026`.
    pub fn date_long(&self, day: NaiveDate) -> String {
        let month = day.month0() as usize;
        match self.language {
            Language::Tg => format!("{} {} {}", day.day(), TG_MONTHS[month], day.year()),
            Language::Ru => format!(
                "{} {} {} г.",
                day.day(),
                RU_MONTHS_GENITIVE[month],
                day.year()
            ),
            Language::En => format!("{} {} {}", day.day(), EN_MONTHS[month], day.year()),
        }
    }

    /// A day of every year, without the year: `21 Март`, `21 марта`, `21 March`. `month`
    /// is 1 to 12 (anything else is shown as a number).
    pub fn day_month(&self, month: u32, day: u32) -> String {
        let Some(i) = month.checked_sub(1).map(|m| m as usize).filter(|m| *m < 12) else {
            return format!("{day:02}.{month:02}");
        };
        match self.language {
            Language::Tg => format!("{day} {}", TG_MONTHS[i]),
            Language::Ru => format!("{day} {}", RU_MONTHS_GENITIVE[i]),
            Language::En => format!("{day} {}", EN_MONTHS[i]),
        }
    }

    /// The weekday's name.
    pub fn weekday(&self, day: Weekday) -> &'static str {
        let i = day.num_days_from_monday() as usize;
        match self.language {
            Language::Tg => TG_WEEKDAYS[i],
            Language::Ru => RU_WEEKDAYS[i],
            Language::En => EN_WEEKDAYS[i],
        }
    }

    /// A time of day, 24-hour: `09:41`.
    pub fn time(&self, time: NaiveTime) -> String {
        format!("{:02}:{:02}", time.hour(), time.minute())
    }
}

/// (group separator, decimal separator).
fn separators(language: Language) -> (char, char) {
    match language {
        Language::Tg | Language::Ru => ('\u{a0}', ','),
        Language::En => (',', '.'),
    }
}

const TG_MONTHS: [&str; 12] = [
    "Январ",
    "Феврал",
    "Март",
    "Апрел",
    "Май",
    "Июн",
    "Июл",
    "Август",
    "Сентябр",
    "Октябр",
    "Ноябр",
    "Декабр",
];
const RU_MONTHS_GENITIVE: [&str; 12] = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
];
const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const EN_MONTHS_SHORT: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const TG_WEEKDAYS: [&str; 7] = [
    "Душанбе",
    "Сешанбе",
    "Чоршанбе",
    "Панҷшанбе",
    "Ҷумъа",
    "Шанбе",
    "Якшанбе",
];
const RU_WEEKDAYS: [&str; 7] = [
    "понедельник",
    "вторник",
    "среда",
    "четверг",
    "пятница",
    "суббота",
    "воскресенье",
];
const EN_WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The UI language of a request before sign-in: `?lang=` first, then the `lang` cookie,
/// then the best of `Accept-Language` we speak, then the deployment's default.
pub fn choose(
    query: Option<&str>,
    cookie: Option<&str>,
    accept_language: Option<&str>,
    default: Language,
) -> Language {
    query
        .and_then(|q| q.parse().ok())
        .or_else(|| cookie.and_then(|c| c.parse().ok()))
        .or_else(|| accept_language.and_then(from_accept_language))
        .unwrap_or(default)
}

/// The language of highest quality in an `Accept-Language` header that we speak
/// (`ru-RU,ru;q=0.9,en;q=0.8` → ru); the first listed wins a tie.
pub fn from_accept_language(header: &str) -> Option<Language> {
    let mut best: Option<(Language, f32)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        let Ok(language) = primary.parse::<Language>() else {
            continue;
        };
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((language, q));
        }
    }
    best.map(|(l, _)| l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn tr(language: Language) -> Tr {
        Tr::new(language)
    }

    #[test]
    fn the_embedded_texts_are_complete() {
        let locales = Locales::embedded().expect("locale files parse");
        assert_eq!(check(&locales, USERS), Vec::<String>::new());
        assert_eq!(check_at_start(), Ok(()));
    }

    /// Every template and source file of the console is among the files the check reads.
    #[test]
    fn every_console_file_is_checked_for_keys() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut on_disk = BTreeSet::new();
        for dir in ["templates/console", "src/console"] {
            let mut stack = vec![root.join(dir)];
            while let Some(d) = stack.pop() {
                for entry in std::fs::read_dir(&d).expect("readable directory") {
                    let path = entry.expect("entry").path();
                    if path.is_dir() {
                        stack.push(path);
                    } else {
                        let rel = path.strip_prefix(root).expect("below the root");
                        on_disk.insert(rel.to_string_lossy().replace('\\', "/"));
                    }
                }
            }
        }
        let listed: BTreeSet<String> = USERS.iter().map(|(f, _)| (*f).to_owned()).collect();
        assert_eq!(on_disk, listed, "list every console file in i18n::USERS");
        for (file, text) in USERS {
            let disk = std::fs::read_to_string(root.join(file)).expect("readable");
            assert_eq!(&disk, text, "{file}");
        }
    }

    #[test]
    fn the_check_finds_each_kind_of_gap() {
        let en = "[a]\nx = \"Hello {name}\"\ny = \"Same\"\nz = \"SMS\"\n[a.c]\none = \"{n} thing\"\nother = \"{n} things\"\n";
        let ru = "[a]\nx = \"Привет {who}\"\ny = \"Same\"\nz = \"SMS\"\n[a.c]\none = \"{n} вещь\"\nfew = \"{n} вещи\"\n";
        let tg = "[a]\ny = \"Ҳамон\"\nz = \"SMS\"\nextra = \"Зиёдатӣ\"\n[a.c]\none = \"{n} чиз\"\nother = \"{n} чиз\"\n";
        let locales = Locales::parse(&[(Language::En, en), (Language::Ru, ru), (Language::Tg, tg)])
            .expect("parse");
        let key = "a.missing";
        let template = format!("{{{{ t.t(\"{key}\") }}}} {{{{ t.t(\"a.x\") }}}}");
        let source = format!("let title = key(\"{key}.too\");");
        let problems = check(&locales, &[("page.html", &template), ("page.rs", &source)]);
        let expected = [
            "tg: a.extra: not in English",
            "tg: a.x: missing",
            "ru: a.c: a plural without its `many` form",
            "ru: a.x: placeholders {\"who\"}, English has {\"name\"}",
            "ru: a.y: still the English text",
            "page.html: uses a.missing, which no locale has",
            "page.rs: uses a.missing.too, which no locale has",
        ];
        for e in expected {
            assert!(problems.iter().any(|p| p == e), "{e} not in {problems:#?}");
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }

    #[test]
    fn plural_rules_are_cldr_s() {
        use Plural::*;
        let ru = |n| Plural::of(Language::Ru, n);
        for (n, p) in [
            (0, Many),
            (1, One),
            (2, Few),
            (4, Few),
            (5, Many),
            (11, Many),
            (12, Many),
            (14, Many),
            (21, One),
            (22, Few),
            (25, Many),
            (101, One),
            (111, Many),
            (112, Many),
            (122, Few),
        ] {
            assert_eq!(ru(n), p, "ru {n}");
        }
        for language in [Language::Tg, Language::En] {
            assert_eq!(Plural::of(language, 1), One);
            for n in [0, 2, 5, 11, 21, 101] {
                assert_eq!(Plural::of(language, n), Other, "{language} {n}");
            }
        }
    }

    #[test]
    fn plural_texts_take_their_form_and_grouped_count() {
        let ru = tr(Language::Ru);
        assert_eq!(ru.n("login.attempts_left", 1), "Осталась 1 попытка");
        assert_eq!(ru.n("login.attempts_left", 3), "Осталось 3 попытки");
        assert_eq!(ru.n("login.attempts_left", 5), "Осталось 5 попыток");
        assert_eq!(ru.n("login.attempts_left", 21), "Осталась 21 попытка");
        assert_eq!(
            ru.n("login.attempts_left", 1234),
            "Осталось 1\u{a0}234 попытки"
        );
        let en = tr(Language::En);
        assert_eq!(en.n("login.attempts_left", 1), "1 attempt left");
        assert_eq!(en.n("login.attempts_left", 1234), "1,234 attempts left");
        assert_eq!(tr(Language::Tg).n("login.attempts_left", 2), "2 кӯшиш монд");
    }

    #[test]
    fn numbers_money_and_percentages_golden() {
        let (tg, ru, en) = (tr(Language::Tg), tr(Language::Ru), tr(Language::En));
        assert_eq!(tg.number(dec!(1234567.5), 2), "1\u{a0}234\u{a0}567,50");
        assert_eq!(ru.number(dec!(1234567.5), 2), "1\u{a0}234\u{a0}567,50");
        assert_eq!(en.number(dec!(1234567.5), 2), "1,234,567.50");
        assert_eq!(en.int(0), "0");
        assert_eq!(en.int(999), "999");
        assert_eq!(en.int(1000), "1,000");
        assert_eq!(ru.int(-1500), "-1\u{a0}500");
        assert_eq!(tg.money(dec!(1500), "TJS"), "1\u{a0}500,00\u{a0}TJS");
        assert_eq!(ru.money(dec!(0.5), "TJS"), "0,50\u{a0}TJS");
        assert_eq!(en.money(dec!(1500.005), "TJS"), "1,500.01\u{a0}TJS");
        assert_eq!(
            en.money(dec!(100000), crate::domain::Currency::TJS),
            "100,000.00\u{a0}TJS"
        );
        assert_eq!(tg.percent(dec!(12.54)), "12,5%");
        assert_eq!(ru.percent(dec!(12.55)), "12,6\u{a0}%");
        assert_eq!(en.percent(dec!(100)), "100.0%");
        assert_eq!(en.percent(dec!(1234.5)), "1,234.5%");
    }

    #[test]
    fn dates_golden() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 28).expect("a date");
        let (tg, ru, en) = (tr(Language::Tg), tr(Language::Ru), tr(Language::En));
        assert_eq!(tg.date(day), "28.11.2026");
        assert_eq!(ru.date(day), "28.11.2026");
        assert_eq!(en.date(day), "28 Nov 2026");
        assert_eq!(tg.date_long(day), "28 Ноябр 2026");
        assert_eq!(ru.date_long(day), "28 ноября 2026 г.");
        assert_eq!(en.date_long(day), "28 November 2026");
        let first = NaiveDate::from_ymd_opt(2027, 1, 5).expect("a date");
        assert_eq!(tg.date(first), "05.01.2027");
        assert_eq!(en.date(first), "5 Jan 2027");
        assert_eq!(tg.date_long(first), "5 Январ 2027");
        assert_eq!(ru.date_long(first), "5 января 2027 г.");
        let months: Vec<String> = (1..=12)
            .map(|m| {
                let d = NaiveDate::from_ymd_opt(2026, m, 1).expect("a date");
                tg.date_long(d).split(' ').nth(1).unwrap_or("").to_owned()
            })
            .collect();
        assert_eq!(
            months.join(" "),
            "Январ Феврал Март Апрел Май Июн Июл Август Сентябр Октябр Ноябр Декабр"
        );
        let weekdays: Vec<&str> = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
        .into_iter()
        .map(|d| tg.weekday(d))
        .collect();
        assert_eq!(
            weekdays.join(" "),
            "Душанбе Сешанбе Чоршанбе Панҷшанбе Ҷумъа Шанбе Якшанбе"
        );
        assert_eq!(ru.weekday(day.weekday()), "суббота");
        let t = NaiveTime::from_hms_opt(9, 41, 59).expect("a time");
        assert_eq!(en.time(t), "09:41");
    }

    #[test]
    fn the_language_comes_from_query_then_cookie_then_accept_language_then_default() {
        use Language::*;
        assert_eq!(choose(Some("ru"), Some("en"), Some("tg"), En), Ru);
        assert_eq!(choose(Some("xx"), Some("en"), Some("tg"), Ru), En);
        assert_eq!(choose(None, None, Some("ru-RU,ru;q=0.9,en;q=0.8"), Tg), Ru);
        assert_eq!(choose(None, None, Some("de-DE,en;q=0.5,ru;q=0.7"), Tg), Ru);
        assert_eq!(choose(None, None, Some("en;q=0,de"), Tg), Tg);
        assert_eq!(choose(None, Some("garbage"), Some("fr"), Tg), Tg);
        assert_eq!(choose(None, None, Some("tg-Cyrl-TJ"), En), Tg);
    }

    #[test]
    fn missing_keys_show_the_key() {
        let key = String::from("no.such.key");
        assert_eq!(tr(Language::En).t(&key), "no.such.key");
        assert_eq!(
            placeholders("{a} and {b_c} but not { x } or {"),
            BTreeSet::from(["a".to_owned(), "b_c".to_owned()])
        );
    }
}
