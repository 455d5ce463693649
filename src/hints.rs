//! The last language each caller used, kept per process: a "service busy" screen shown
//! while the database is down, or a text to a number that is not registered, still speaks
//! the caller's language. A hint only, never the record (that is the household's language in
//! the database). Used by USSD, SMS and the API (which texts a number the code to link it).

use std::{collections::HashMap, sync::Mutex};

use crate::domain::{Language, Phone};

/// The last language of each caller: bounded (cleared when full), per process.
#[derive(Debug, Default)]
pub struct LanguageHints(Mutex<HashMap<String, Language>>);

const HINTS_CAP: usize = 100_000;

impl LanguageHints {
    pub fn remember(&self, phone: &Phone, lang: Language) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= HINTS_CAP && !m.contains_key(phone.as_str()) {
                m.clear();
            }
            // nearly every hop repeats what is known: no new key string for it
            if m.get(phone.as_str()) != Some(&lang) {
                m.insert(phone.as_str().to_owned(), lang);
            }
        }
    }

    /// The remembered language, else one guessed from the country code.
    pub fn guess(&self, phone: &Phone, default: Language) -> Language {
        if let Some(l) = self
            .0
            .lock()
            .ok()
            .and_then(|m| m.get(phone.as_str()).copied())
        {
            return l;
        }
        let p = phone.as_str();
        if p.starts_with("+992") {
            default
        } else if p.starts_with("+7") || p.starts_with("+375") || p.starts_with("+996") {
            Language::Ru
        } else {
            Language::En
        }
    }
}
