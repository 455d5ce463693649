//! What a USSD channel hands over and what it renders: the request and response types of a
//! hop, owned here so that a provider module needs nothing from the conversation side.
//! `crate::ussd` answers a [`Hop`] with a screen, which the provider renders from a
//! [`Screen`].

use crate::domain::Phone;

/// A hop as every provider module hands it over.
#[derive(Debug, Clone)]
pub struct Hop {
    pub provider: &'static str,
    pub session_id: String,
    pub phone: Phone,
    /// The whole input history, `*`-separated, `""` on the first hop.
    pub text: String,
}

/// The screen to send back for a hop, as a provider renders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screen<'a> {
    pub text: &'a str,
    /// The session is over (Africa's Talking: `END`); otherwise the caller may answer.
    pub end: bool,
}
