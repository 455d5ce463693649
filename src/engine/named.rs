//! The names a menu file may use: its actions (effects and reads), list sources and entry
//! conditions. Each is an enum read from the TOML, so a name the code does not implement
//! fails when the menu is loaded, with the file and line; every place that acts on one
//! matches it exhaustively (`crate::actions::run_effect`, `crate::actions::run_read`, the
//! lists of each transport), so a new name does not compile until it is implemented.

use std::fmt;

use serde::{de, Deserialize, Deserializer};

/// An enum of unit variants, each with the one name menus spell it with.
macro_rules! named {
    ($(#[$meta:meta])* pub enum $ty:ident { $($(#[$vmeta:meta])* $variant:ident = $name:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $ty {
            $($(#[$vmeta])* $variant,)*
        }

        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant,)*];
            /// Every name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name,)*];

            /// The name menus use for it.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }

            /// The variant a menu names, if any.
            pub fn from_name(name: &str) -> Option<$ty> {
                match name {
                    $($name => Some($ty::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let name = String::deserialize(d)?;
                $ty::from_name(&name).ok_or_else(|| de::Error::unknown_variant(&name, $ty::NAMES))
            }
        }
    };
}

named! {
    /// An effect: changes something (or must happen once, like showing the next tip). A
    /// USSD hop runs it once per (session, step, history) and records its result; an SMS
    /// conversation runs it in the text's transaction. Implemented in `crate::actions`.
    pub enum Action {
        /// `arg` is the language code.
        SetLanguage = "set_language",
        Register = "register",
        /// May answer `ask` (the same pledge minutes ago): only a confirm screen with `ask`
        /// runs it.
        CreatePledge = "create_pledge",
        /// The caller's "yes" to `ask`.
        CreatePledgeAgain = "create_pledge_again",
        RequestCallback = "request_callback",
        NextTip = "next_tip",
        VerifyPin = "verify_pin",
        FindPledge = "find_pledge",
        RecordCash = "record_cash",
        PreviewNotice = "preview_notice",
        SendNotice = "send_notice",
        /// The household's own pledge chosen from `my_pledges`, when nothing was received
        /// for it.
        CancelPledge = "cancel_pledge",
        /// The household's answer (`arg`: yes or no) to the meeting chosen from `meetings`.
        Rsvp = "rsvp",
        /// The caller's household read a safe-migration topic to the end; `arg` is the
        /// topic (one of [`crate::domain::outreach::TOPICS`]).
        TopicRead = "topic_read",
    }
}

impl Action {
    /// The values it needs, each stored by a list (`name_id`) or an input screen (`name`).
    pub fn needs(self) -> &'static [&'static str] {
        match self {
            Action::Register => &["community"],
            Action::CreatePledge | Action::CreatePledgeAgain => &["project", "amount"],
            Action::VerifyPin => &["pin"],
            Action::FindPledge => &["pledge_code"],
            Action::RecordCash => &["pledge_code", "cash_amount"],
            Action::PreviewNotice | Action::SendNotice => &["community", "date", "time", "place"],
            Action::CancelPledge => &["pledge"],
            Action::Rsvp => &["meeting"],
            Action::SetLanguage | Action::RequestCallback | Action::NextTip | Action::TopicRead => {
                &[]
            }
        }
    }

    /// It may do nothing yet and ask the caller first (its result holds `ask`).
    pub fn may_ask(self) -> bool {
        matches!(self, Action::CreatePledge)
    }
}

named! {
    /// A read: data an info screen shows, run whenever the screen must be drawn.
    /// Implemented in `crate::actions`.
    pub enum Read {
        ProjectTotal = "project_total",
        JoinCode = "join_code",
        /// One of the household's pledges (chosen from `my_pledges`).
        MyPledge = "my_pledge",
    }
}

impl Read {
    /// The values it needs (see [`Action::needs`]).
    pub fn needs(self) -> &'static [&'static str] {
        match self {
            Read::ProjectTotal => &["project"],
            Read::JoinCode => &[],
            Read::MyPledge => &["pledge"],
        }
    }
}

/// What an info screen's `data` names: a read, or an effect run when the screen is entered
/// (the next tip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    Effect(Action),
    Read(Read),
}

impl Data {
    /// The reads' names, then the effects' (checked against both in a test).
    pub const NAMES: &'static [&'static str] = &[
        "project_total",
        "join_code",
        "my_pledge",
        "set_language",
        "register",
        "create_pledge",
        "create_pledge_again",
        "request_callback",
        "next_tip",
        "verify_pin",
        "find_pledge",
        "record_cash",
        "preview_notice",
        "send_notice",
        "cancel_pledge",
        "rsvp",
        "topic_read",
    ];

    pub fn name(self) -> &'static str {
        match self {
            Data::Effect(a) => a.name(),
            Data::Read(r) => r.name(),
        }
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Data, D::Error> {
        let name = String::deserialize(d)?;
        if let Some(r) = Read::from_name(&name) {
            return Ok(Data::Read(r));
        }
        if let Some(a) = Action::from_name(&name) {
            return Ok(Data::Effect(a));
        }
        Err(de::Error::unknown_variant(&name, Data::NAMES))
    }
}

named! {
    /// Where a list screen's entries come from. Each transport fills the lists it serves.
    pub enum ListSource {
        /// Every community (registering).
        Communities = "communities",
        /// The caller's community's projects open for pledges (and those closed during the
        /// conversation, so that numbers keep their meaning).
        OpenProjects = "open_projects",
        /// The caller's community's projects whose totals the phone shows: open ones and
        /// those closed in the last year, a closed one marked completed or closed.
        TotalProjects = "total_projects",
        /// The projects a coordinator may see.
        CoordProjects = "coord_projects",
        /// The communities a coordinator may see.
        CoordCommunities = "coord_communities",
        /// The caller's household's pledges, whichever of its phones made them.
        MyPledges = "my_pledges",
        /// The upcoming meetings of the caller's community.
        Meetings = "meetings",
    }
}

impl ListSource {
    /// Read only when a screen that shows it is reached (the transport's `list`), not with
    /// every hop's context: the lists that only some walks need.
    pub fn lazy(self) -> bool {
        matches!(self, ListSource::MyPledges | ListSource::Meetings)
    }
}

named! {
    /// A fact about the caller that an entry guard (`unless`) tests.
    pub enum Condition {
        HasLanguage = "has_language",
        Registered = "registered",
        /// A coordinator who entered the right PIN in this session.
        PinOk = "pin_ok",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(*a));
            assert_eq!(Read::from_name(a.name()), None);
        }
        for r in Read::ALL {
            assert_eq!(Read::from_name(r.name()), Some(*r));
        }
        for s in ListSource::ALL {
            assert_eq!(ListSource::from_name(s.name()), Some(*s));
        }
        for c in Condition::ALL {
            assert_eq!(Condition::from_name(c.name()), Some(*c));
        }
        assert_eq!(Action::from_name("launch_rocket"), None);
        let both: Vec<&str> = Read::NAMES.iter().chain(Action::NAMES).copied().collect();
        assert_eq!(Data::NAMES, both.as_slice());
    }
}
