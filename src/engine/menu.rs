//! Menu definitions as data (`menus/*.toml`) and the texts they use (`menus/locales/*.toml`).

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use serde::Deserialize;

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
    pub unless: String,
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
        source: String,
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
        action: Option<String>,
    },
    /// `1` runs `action` then goes to `next`; `2` goes to `no`. An action whose result
    /// holds `ask` (a pledge that repeats one made minutes ago) goes to the screen `ask`
    /// instead, which asks the caller first.
    Confirm {
        prompt: String,
        action: String,
        next: String,
        no: String,
        #[serde(default)]
        ask: Option<String>,
    },
    /// A text, optionally filled by a named data action, with optional options.
    Info {
        text: String,
        #[serde(default)]
        data: Option<String>,
        #[serde(default)]
        options: Vec<OptionDef>,
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
    pub action: Option<String>,
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
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: unsupported spec_version {found} (this build reads {SPEC_VERSION})")]
    Version { path: PathBuf, found: u32 },
    #[error("{0}: no locale file for language {1}")]
    MissingLocale(PathBuf, Language),
}

/// Reads one menu file's text (`path` only names it in errors).
pub fn parse_menu(path: &Path, source: &str) -> Result<MenuDef, LoadError> {
    let def: MenuDef = toml::from_str(source).map_err(|e| LoadError::Parse {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })?;
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
            let locale = Locale::parse(&source).map_err(|e| LoadError::Parse {
                path: path.clone(),
                message: e.message().to_owned(),
            })?;
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
}
