//! Meetings on the phone: the upcoming meetings of the caller's community as a list (date
//! and time in the caller's language's conventions, place, and the household's answer so
//! far), and the household's answer from the menus (`rsvp`), which is the same one row per
//! household and meeting that an SMS reply writes.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::PgConnection;

use super::{id_var, ActionError, EffectCtx};
use crate::{
    domain::{Language, Phone},
    engine::{menu::MenuSet, Action, ListItem, Vars},
    store::{
        self,
        meetings::{Topic, Upcoming},
        BroadcastId,
    },
};

/// The most meetings a list shows (soonest first).
pub const LIST_LIMIT: i64 = 9;

/// A meeting's date and time as `lang` writes it, in the programme's time zone: `12.12
/// 14:00` in Tajik and Russian, `12 Dec 14:00` in English.
pub fn when(at: DateTime<Utc>, tz: Tz, lang: Language) -> String {
    let local = at.with_timezone(&tz);
    match lang {
        Language::Tg | Language::Ru => local.format("%d.%m %H:%M").to_string(),
        Language::En => local.format("%-d %b %H:%M").to_string(),
    }
}

/// The text key of a topic's name.
pub fn topic_key(t: Topic) -> &'static str {
    match t {
        Topic::General => "meetings.topic.general",
        Topic::Remittances => "meetings.topic.remittances",
        Topic::Business => "meetings.topic.business",
        Topic::LegalStay => "meetings.topic.legal_stay",
        Topic::Trafficking => "meetings.topic.trafficking",
        Topic::Hiv => "meetings.topic.hiv",
    }
}

/// The meetings as a list shows them: `when place`, marked with the household's answer.
/// The choice keeps `when`, `place` and `about` (the topics) for the screens that follow.
pub fn items(menus: &MenuSet, tz: Tz, meetings: &[Upcoming]) -> Vec<ListItem> {
    meetings
        .iter()
        .map(|m| {
            let label = |lang: Language| {
                let mut l = format!("{} {}", when(m.at, tz, lang), m.place);
                let mark = match m.answer.as_deref() {
                    Some("yes") => Some("meetings.mark.yes"),
                    Some("no") => Some("meetings.mark.no"),
                    _ => None,
                };
                if let Some(mark) = mark {
                    l.push(' ');
                    l.push_str(menus.text(lang, mark));
                }
                l
            };
            let mut extra = Vars::from([("place".to_owned(), m.place.clone())]);
            for lang in Language::ALL {
                extra.insert(format!("when.{lang}"), when(m.at, tz, lang));
                let topics: Vec<Topic> = if m.topics.is_empty() {
                    vec![Topic::General]
                } else {
                    m.topics.clone()
                };
                let about: Vec<&str> = topics
                    .iter()
                    .map(|t| menus.text(lang, topic_key(*t)))
                    .collect();
                extra.insert(format!("about.{lang}"), about.join(", "));
            }
            ListItem {
                id: m.broadcast.0.to_string(),
                labels: [
                    label(Language::Tg),
                    label(Language::Ru),
                    label(Language::En),
                ],
                extra,
            }
        })
        .collect()
}

/// The upcoming meetings of `phone`'s household's community as a list.
pub async fn list(
    conn: &mut PgConnection,
    menus: &MenuSet,
    tz: Tz,
    phone: &Phone,
    now: DateTime<Utc>,
) -> Result<Vec<ListItem>, sqlx::Error> {
    let meetings = store::meetings::upcoming(conn, phone.as_str(), now, LIST_LIMIT).await?;
    Ok(items(menus, tz, &meetings))
}

/// `rsvp`: the household's answer (`arg`: yes or no) to the chosen meeting, while it is
/// still to come; a later answer replaces an earlier one.
pub(super) async fn rsvp(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    arg: Option<&str>,
    vars: &Vars,
) -> Result<Vars, ActionError> {
    let id = BroadcastId(id_var(vars, Action::Rsvp.name(), "meeting_id")?);
    let answer = match arg {
        Some("yes") => "yes",
        Some("no") => "no",
        _ => {
            return Err(ActionError::MissingVar {
                action: Action::Rsvp.name(),
                var: "arg",
            })
        }
    };
    let owner = store::households::owner_of_phone(conn, ctx.phone)
        .await?
        .ok_or(ActionError::NotRegistered)?;
    // still one of the household's upcoming meetings (not cancelled, not begun)
    let upcoming = store::meetings::upcoming(conn, ctx.phone.as_str(), ctx.now, 100).await?;
    if !upcoming.iter().any(|m| m.broadcast == id) {
        return Err(ActionError::MeetingGone);
    }
    store::meetings::record_rsvp(
        conn,
        id,
        owner.household,
        ctx.phone.as_str(),
        answer,
        ctx.now,
        None,
        ctx.channel,
    )
    .await?;
    tracing::info!(phone = %ctx.phone, broadcast = id.0, channel = ctx.channel, "meeting answered");
    Ok(Vars::new())
}
