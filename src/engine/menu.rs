//! Menu definitions as data (`menus/*.toml`) and the texts they use (`menus/locales/*.toml`).

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::named::{Action, Condition, Data, ListSource};
use crate::domain::Language;

pub const SPEC_VERSION: u32 = 1;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuDef {
    pub spec_version: u32,
    pub id: String,
    pub start: String,
    #[serde(default)]
    pub entry: Vec<EntryDef>,
    pub screens: BTreeMap<String, ScreenDef>,
}

/// Before `start` is shown, a caller whose context fails `unless` goes to `screen`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryDef {
    pub unless: Condition,
    pub screen: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ScreenDef {
    /// A static menu: a title and numbered options.
    Menu {
        title: String,
        options: Vec<OptionDef>,
    },
    /// A numbered list filled by a named source; the choice is stored in `store`.
    List {
        title: String,
        source: ListSource,
        store: String,
        empty: String,
        next: String,
    },
    /// Free input validated by kind; the value is stored in `store`.
    Input {
        prompt: String,
        input: InputKind,
        store: String,
        next: String,
        /// An effect that checks the input; a result with `refused` (a text key) keeps the
        /// caller on this screen with that text.
        #[serde(default)]
        action: Option<Action>,
    },
    /// `1` runs `action` then goes to `next`; `2` goes to `no`. An action whose result
    /// holds `ask` (a pledge that repeats one made minutes ago) goes to the screen `ask`
    /// instead, which asks the caller first.
    Confirm {
        prompt: String,
        action: Action,
        next: String,
        no: String,
        #[serde(default)]
        ask: Option<String>,
    },
    /// A text, optionally filled by a read (or by an effect run on entering it), with
    /// optional options.
    Info {
        text: String,
        #[serde(default)]
        data: Option<Data>,
        #[serde(default)]
        options: Vec<OptionDef>,
        /// An effect run when the caller reaches the text's last page (on entering the
        /// screen when it has one page, or on the "99" that shows the last one): a safe-
        /// migration topic read to the end. Each time, at that hop's step.
        #[serde(default)]
        at_end: Option<EffectDef>,
    },
    /// The last screen of a session.
    End { text: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionDef {
    pub label: String,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default)]
    pub arg: Option<String>,
}

/// An effect named with its argument (`{ action = "topic_read", arg = "hiv" }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectDef {
    pub action: Action,
    #[serde(default)]
    pub arg: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    Amount,
    /// 4 to 6 digits.
    Pin,
    /// A pledge code: 7 digits.
    Code,
    /// A day: `DDMM` → `DD.MM`.
    Date,
    /// A time: `HHMM` → `HH:MM`.
    Time,
    /// Free text, 2 to 40 characters.
    Text,
}

impl ScreenDef {
    pub fn options(&self) -> &[OptionDef] {
        match self {
            ScreenDef::Menu { options, .. } | ScreenDef::Info { options, .. } => options,
            _ => &[],
        }
    }

    /// Every screen this one can lead to.
    pub fn targets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .options()
            .iter()
            .filter_map(|o| o.next.as_deref())
            .collect();
        match self {
            ScreenDef::List { next, .. } | ScreenDef::Input { next, .. } => out.push(next),
            ScreenDef::Confirm { next, no, ask, .. } => {
                out.push(next);
                out.push(no);
                out.extend(ask.as_deref());
            }
            _ => {}
        }
        out
    }

    /// Every text key this screen uses.
    pub fn text_keys(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.options().iter().map(|o| o.label.as_str()).collect();
        match self {
            ScreenDef::Menu { title, .. } => out.push(title),
            ScreenDef::List { title, empty, .. } => {
                out.push(title);
                out.push(empty);
            }
            ScreenDef::Input { prompt, .. } | ScreenDef::Confirm { prompt, .. } => out.push(prompt),
            ScreenDef::Info { text, .. } | ScreenDef::End { text } => out.push(text),
        }
        out
    }
}

/// All texts of one language, flattened to `table.key` names.
#[derive(Debug, Clone, Default)]
pub struct Locale {
    texts: HashMap<String, String>,
}

impl Locale {
    pub fn parse(source: &str) -> Result<Locale, toml::de::Error> {
        let table: toml::Table = toml::from_str(source)?;
        let mut texts = HashMap::new();
        flatten("", &table, &mut texts);
        Ok(Locale { texts })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.texts.get(key).map(String::as_str)
    }

    /// Adds or replaces one text (used by tests to build broken cases).
    pub fn insert(&mut self, key: &str, text: &str) {
        self.texts.insert(key.to_owned(), text.to_owned());
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.texts.keys().map(String::as_str)
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut HashMap<String, String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            toml::Value::Table(t) => flatten(&key, t, out),
            // Non-string values are not texts; `menus check` reports keys it cannot find.
            _ => {}
        }
    }
}

/// The loaded menus and the texts of every language.
#[derive(Debug, Clone)]
pub struct MenuSet {
    pub menus: BTreeMap<String, MenuDef>,
    pub locales: HashMap<Language, Locale>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file, the line (when the TOML reader knows it) and what is wrong there: bad
    /// TOML, an unknown field, an unknown action, list source or condition.
    #[error("{path}{}: {message}", at_line(.line))]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{path}: unsupported spec_version {found} (this build reads {SPEC_VERSION})")]
    Version { path: PathBuf, found: u32 },
    #[error("{0}: no locale file for language {1}")]
    MissingLocale(PathBuf, Language),
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'\n').count()
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// The line of a TOML error. Errors inside a screen come with the span of the whole screen
/// (serde reads its `kind` first, so the table is buffered and inner spans are lost): the
/// name the message quotes first (`unknown variant `launch_rocket``, `unknown field
/// `colour``) is looked for as a word inside that span, and its line is given when found.
fn error_line(source: &str, e: &toml::de::Error) -> Option<usize> {
    let bytes = source.as_bytes();
    let span = e.span()?;
    let (start, end) = (span.start.min(bytes.len()), span.end.min(bytes.len()));
    let quoted = e
        .message()
        .split('`')
        .nth(1)
        .filter(|name| !name.is_empty());
    let at = quoted
        .and_then(|name| find_word(&bytes[start..end.max(start)], name.as_bytes()))
        .map_or(start, |i| start + i);
    Some(newlines(&bytes[..at]) + 1)
}

/// Where `word` first stands alone in `hay` (not part of a longer name).
fn find_word(hay: &[u8], word: &[u8]) -> Option<usize> {
    let part_of_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    (0..hay.len().checked_sub(word.len())? + 1).find(|&i| {
        hay[i..].starts_with(word)
            && (i == 0 || !part_of_name(hay[i - 1]))
            && hay.get(i + word.len()).is_none_or(|b| !part_of_name(*b))
    })
}

impl LoadError {
    fn parse(path: &Path, source: &str, e: &toml::de::Error) -> LoadError {
        LoadError::Parse {
            path: path.to_owned(),
            line: error_line(source, e),
            message: e.message().to_owned(),
        }
    }
}

/// Reads one menu file's text (`path` only names it in errors).
pub fn parse_menu(path: &Path, source: &str) -> Result<MenuDef, LoadError> {
    let def: MenuDef = toml::from_str(source).map_err(|e| LoadError::parse(path, source, &e))?;
    if def.spec_version != SPEC_VERSION {
        return Err(LoadError::Version {
            path: path.to_owned(),
            found: def.spec_version,
        });
    }
    Ok(def)
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}

impl MenuSet {
    /// Loads every `*.toml` menu directly in `dir` (except `tips.toml`) and `dir/locales/`.
    pub fn load_dir(dir: &Path) -> Result<MenuSet, LoadError> {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Read {
            path: dir.to_owned(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| LoadError::Read {
                path: dir.to_owned(),
                source,
            })?;
            let path = entry.path();
            let is_menu = path.extension().is_some_and(|e| e == "toml")
                && path.file_name().is_some_and(|n| n != "tips.toml");
            if is_menu && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        MenuSet::load_files(&files, &dir.join("locales"))
    }

    pub fn load_files(menu_files: &[PathBuf], locales_dir: &Path) -> Result<MenuSet, LoadError> {
        let mut menus = BTreeMap::new();
        for path in menu_files {
            let def = parse_menu(path, &read(path)?)?;
            menus.insert(def.id.clone(), def);
        }
        let mut locales = HashMap::new();
        for lang in Language::ALL {
            let path = locales_dir.join(format!("{}.toml", lang.code()));
            if !path.exists() {
                return Err(LoadError::MissingLocale(locales_dir.to_owned(), lang));
            }
            let source = read(&path)?;
            let locale =
                Locale::parse(&source).map_err(|e| LoadError::parse(&path, &source, &e))?;
            locales.insert(lang, locale);
        }
        Ok(MenuSet { menus, locales })
    }

    pub fn menu(&self, id: &str) -> Option<&MenuDef> {
        self.menus.get(id)
    }

    /// The text for `key` in `lang`, falling back to English, then to the key itself.
    pub fn text<'a>(&'a self, lang: Language, key: &'a str) -> &'a str {
        self.locales
            .get(&lang)
            .and_then(|l| l.get(key))
            .or_else(|| self.locales.get(&Language::En).and_then(|l| l.get(key)))
            .unwrap_or(key)
    }
}

/// Fills `{name}` placeholders. Unknown names are left as they are so that a gap is visible
/// rather than silently empty; `menus check` makes sure every name used is one we supply.
pub fn fill(template: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_name(&after[..close]) => {
                let name = &after[..close];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The placeholder names a template uses.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_name(&after[..close]) => {
                out.push(after[..close].to_owned());
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_placeholders() {
        let v = |n: &str| (n == "amount").then(|| "500".to_owned());
        assert_eq!(
            fill("Pledge {amount} {currency}?", v),
            "Pledge 500 {currency}?"
        );
        assert_eq!(fill("a {b c} {", v), "a {b c} {");
        assert_eq!(placeholders("{a} and {b_c} not {D}"), vec!["a", "b_c"]);
    }

    #[test]
    fn finds_a_name_as_a_word() {
        assert_eq!(find_word(b"x = \"a_b\", y = \"a\"", b"a"), Some(16));
        assert_eq!(find_word(b"a", b"a"), Some(0));
        assert_eq!(find_word(b"ab", b"abc"), None);
    }

    #[test]
    fn an_unknown_name_fails_at_load_with_its_line() {
        let source = "spec_version = 1\nid = \"m\"\nstart = \"main\"\n\n[screens.main]\nkind = \"menu\"\ntitle = \"t\"\noptions = [\n  { label = \"a\", next = \"main\" },\n  { label = \"b\", action = \"launch_rocket\" },\n]\n";
        let e = parse_menu(Path::new("m.toml"), source)
            .map(|_| ())
            .expect_err("an unknown action");
        let text = e.to_string();
        assert!(
            text.starts_with("m.toml:10: unknown variant `launch_rocket`"),
            "{text}"
        );
    }
}
