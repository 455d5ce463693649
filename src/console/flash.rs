//! One-time messages after a change ("Recorded · SMS receipt queued"): a POST handler puts
//! a [`Flash`] in the signed-in person's server-side session and answers 303; the page the
//! browser then asks for takes it out ([`take`]) and shows it once. A reload shows nothing.
//!
//! A flash holds a text key and its placeholders' values, not a sentence, so it is worded in
//! the language of the page that shows it. It may name a form field (`amount`), for a
//! refusal shown beside that field as well as in the summary on top.
//!
//! ```ignore
//! flash::set(&staff.session, Flash::done(key("money.flash.recorded"))).await;
//! return Redirect::to(&back).into_response();
//! // …and in the GET handler:
//! let flash = flash::take(&staff.session).await;
//! ```

use tower_sessions::Session;

use super::i18n::Tr;

/// The key of the flash in the session.
const SESSION_KEY: &str = "flash";

/// Whether the change was done or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Done,
    Refused,
}

/// A one-time message: what happened, as a text key with its placeholders.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    pub kind: Kind,
    pub key: String,
    #[serde(default)]
    pub vars: Vec<(String, String)>,
    /// The form field a refusal is about, if any.
    #[serde(default)]
    pub field: Option<String>,
}

impl Flash {
    /// A change was done.
    pub fn done(key: &str) -> Flash {
        Flash {
            kind: Kind::Done,
            key: key.to_owned(),
            vars: Vec::new(),
            field: None,
        }
    }

    /// A change was refused, for the reason `key` (about `field`, if given).
    pub fn refused(key: &str, field: Option<&str>) -> Flash {
        Flash {
            kind: Kind::Refused,
            key: key.to_owned(),
            vars: Vec::new(),
            field: field.map(str::to_owned),
        }
    }

    /// With a placeholder's value.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Flash {
        self.vars.push((name.to_owned(), value.into()));
        self
    }

    /// The message in `t`'s language.
    pub fn text(&self, t: &Tr) -> String {
        let vars: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        t.t_with(&self.key, &vars)
    }

    pub fn is_done(&self) -> bool {
        self.kind == Kind::Done
    }
}

/// Keeps `flash` for the next page of this session (replacing one not yet shown). A
/// failure is logged: the change itself is done, only its message is lost.
pub async fn set(session: &Session, flash: Flash) {
    if let Err(e) = session.insert(SESSION_KEY, flash).await {
        tracing::warn!(error = %e, "console: keeping a flash message failed");
    }
}

/// Takes the waiting flash out of the session, if there is one (it is shown once).
pub async fn take(session: &Session) -> Option<Flash> {
    match session.remove::<Flash>(SESSION_KEY).await {
        Ok(flash) => flash,
        Err(e) => {
            tracing::warn!(error = %e, "console: reading a flash message failed");
            None
        }
    }
}

/// A flash as a page shows it: worded in the page's language, done or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashView {
    pub done: bool,
    pub text: String,
}

impl FlashView {
    pub fn of(flash: &Flash, t: &Tr) -> FlashView {
        FlashView {
            done: flash.is_done(),
            text: flash.text(t),
        }
    }
}

/// Takes the waiting flash out of the session, worded for the page (see [`take`]).
pub async fn shown(session: &Session, t: &Tr) -> Option<FlashView> {
    take(session).await.map(|f| FlashView::of(&f, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Language;

    #[test]
    fn a_flash_is_worded_in_the_page_language() {
        let f = Flash::refused("login.locked", Some("amount")).with("time", "09:55");
        let en = f.text(&Tr::new(Language::En));
        assert_eq!(en, "Too many wrong passwords. Try again at 09:55.");
        let ru = f.text(&Tr::new(Language::Ru));
        assert!(ru.contains("09:55") && ru != en, "{ru}");
        assert!(!f.is_done());
        // it survives the session's encoding
        let back: Flash =
            serde_json::from_value(serde_json::to_value(&f).expect("json")).expect("a flash");
        assert_eq!(back, f);
    }
}
