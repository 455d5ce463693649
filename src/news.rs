//! Project news (issue 11, point 3): what a project's pledgers are told, through the one
//! broadcast path (`crate::broadcasts::create` and `schedule`: each number of each household
//! that pledged to it and did not cancel, in its language, outside the quiet hours, opted-out
//! numbers skipped).
//!
//! - An update a coordinator posts (from the project's page in the console, or
//!   `POST /api/v1/projects/{id}/updates`) is a broadcast to the project's pledgers with no
//!   answer window (see `service::news`).
//! - The project's target reached: the database notes it once per project
//!   (`project_target_reached`, migration `20261130192000_project_news.sql`, by triggers on
//!   the running sums, so concurrent receipts and a reversal followed by a new receipt note
//!   it once), and the broadcast scheduler turns each noted target into a broadcast
//!   ([`announce_reached`]) built from the locale text `sms.target_reached`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::{
    app::AppState,
    broadcasts::{self, Broadcast, BroadcastStatus},
    domain::Language,
    engine::{menu::fill, Vars},
    store::{self, BroadcastId},
};

/// The locale text that tells pledgers a project reached its target.
pub const TARGET_REACHED: &str = "sms.target_reached";
/// Who the announcements are recorded as created by (`broadcasts.created_by`).
pub const CREATED_BY: &str = "hashar:target-reached";

/// The announcement's text in each language: `sms.target_reached` with the project's name in
/// that language and its figures (`matched_total`, `target`, `currency`, `percent`).
pub fn target_reached_texts(
    state: &AppState,
    name: &store::Localized,
    figures: &Vars,
) -> BTreeMap<String, String> {
    Language::ALL
        .iter()
        .map(|&lang| {
            let text = fill(state.menus.text(lang, TARGET_REACHED), |k| {
                if k == "project" {
                    Some(name.get(lang).to_owned())
                } else {
                    figures.get(k).cloned()
                }
            });
            (lang.code().to_owned(), text)
        })
        .collect()
}

/// Turns every noted target into its broadcast to the project's pledgers, sent now or at the
/// end of the quiet hours, each in its own transaction (a noted row is taken by one
/// scheduler: SKIP LOCKED, and it moves from `due` to `announced` with its broadcast in the
/// same transaction). Returns how many were announced.
pub async fn announce_reached(state: &AppState, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
    let mut done = 0;
    loop {
        let mut tx = state.pool.begin().await?;
        let Some(project) = store::news::lock_next_due(&mut tx).await? else {
            tx.commit().await?;
            return Ok(done);
        };
        let (Some(p), Some(figures)) = (
            store::projects::get(&mut tx, project).await?,
            store::projects::total_texts(&mut tx, project).await?,
        ) else {
            // (a noted project always exists: a foreign key)
            tx.rollback().await?;
            return Ok(done);
        };
        let mut b = Broadcast {
            id: BroadcastId(0),
            communities: vec![p.community],
            only_migrants: false,
            only_project: Some(project),
            only_language: None,
            texts: target_reached_texts(state, &p.name, &figures),
            vars: Vars::new(),
            status: BroadcastStatus::Draft,
            send_at: None,
            // nothing to answer
            rsvp_hours: 0,
            created_by: CREATED_BY.to_owned(),
            created_at: now,
            meeting: None,
        };
        b.id = broadcasts::create(&mut tx, &b).await?;
        let sending = broadcasts::schedule(&mut tx, state, &b, now, now).await?;
        store::news::mark_announced(&mut tx, project, b.id, now).await?;
        tx.commit().await?;
        tracing::info!(
            project = project.0,
            broadcast = b.id.0,
            queued = sending.map(|s| s.queued).unwrap_or(0),
            "project target reached: pledgers told"
        );
        done += 1;
    }
}

/// How long a closed project stays on the phone's totals list (and the SMS `TOTAL` reply)
/// after it closed.
pub const SHOWN_AFTER_CLOSING_DAYS: i64 = 365;

/// The earliest closing time of a project the phone still lists for its totals at `now`.
pub fn shown_since(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::days(SHOWN_AFTER_CLOSING_DAYS)
}

/// A project's state as the phone names it: open (no mark), completed (closed after its
/// target was reached) or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneState {
    Open,
    Completed,
    Closed,
}

impl PhoneState {
    pub fn of(closed: bool, completed: bool) -> PhoneState {
        match (closed, completed) {
            (false, _) => PhoneState::Open,
            (true, true) => PhoneState::Completed,
            (true, false) => PhoneState::Closed,
        }
    }

    /// As `project_total_texts` names it (`project_status`).
    pub fn from_name(name: &str) -> Option<PhoneState> {
        match name {
            "open" => Some(PhoneState::Open),
            "completed" => Some(PhoneState::Completed),
            "closed" => Some(PhoneState::Closed),
            _ => None,
        }
    }

    /// The locale text of its mark (none for an open project).
    pub fn mark_key(self) -> Option<&'static str> {
        match self {
            PhoneState::Open => None,
            PhoneState::Completed => Some("total.mark.completed"),
            PhoneState::Closed => Some("total.mark.closed"),
        }
    }

    /// `name (mark)` in `lang`, or the name alone for an open project.
    pub fn label(self, menus: &crate::engine::menu::MenuSet, lang: Language, name: &str) -> String {
        match self.mark_key() {
            Some(k) => format!("{name} ({})", menus.text(lang, k)),
            None => name.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_closing_and_the_target() {
        assert_eq!(PhoneState::of(false, true), PhoneState::Open);
        assert_eq!(PhoneState::of(true, true), PhoneState::Completed);
        assert_eq!(PhoneState::of(true, false), PhoneState::Closed);
        for s in [PhoneState::Open, PhoneState::Completed, PhoneState::Closed] {
            let name = match s {
                PhoneState::Open => "open",
                PhoneState::Completed => "completed",
                PhoneState::Closed => "closed",
            };
            assert_eq!(PhoneState::from_name(name), Some(s));
        }
        assert_eq!(PhoneState::Open.mark_key(), None);
    }
}
