//! Meetings, for every edge: the meeting a broadcast announces (checked when it is composed
//! and when it is sent), and attendance — who came, by household — with the meeting's
//! figures (invited, said yes, came).
//!
//! Attendance is recorded by admins and by coordinators of the meeting's communities
//! (counsellors and programme officers read it); a household outside the meeting's
//! communities, or outside the actor's scope, is `NotFound` (404), as is a meeting the actor
//! may not see. A save marks each household given as came or not; marks that do not change
//! are not written again, so saving the same form twice changes nothing the second time. One
//! audit row per save that changed something (`meeting.attendance`, subject: the broadcast).

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde_json::json;

use super::{audit, forms, text, Actor, Once, Role, ServiceError, ServiceResult};
use crate::{
    app::AppState,
    broadcasts::Broadcast,
    engine::Vars,
    store::{
        self,
        meetings::{Counts, Meeting, RosterRow, Topic},
        BroadcastId, HouseholdId,
    },
};

pub use crate::store::meetings::MAX_PLACE;
/// How far ahead a meeting may be (days).
pub const MAX_DAYS_AHEAD: i64 = 366;
/// The most households one attendance save may mark, and a roster shows.
pub const MAX_MARKS: usize = 2000;
/// How long before a meeting's time attendance may be recorded (a coordinator fills it in
/// during the meeting, or after).
pub const EARLY_RECORD: Duration = Duration::hours(2);

/// Whether this actor records attendance (admins and coordinators).
pub fn records(actor: &Actor) -> bool {
    matches!(actor.role, Role::Admin | Role::Coordinator)
}

/// A meeting as typed: checked (a time to come, within a year; a place of 1 to
/// [`MAX_PLACE`] characters; topics without repeats) into what is stored.
pub fn check(
    at: DateTime<Utc>,
    place: &str,
    topics: &[Topic],
    now: DateTime<Utc>,
) -> ServiceResult<Meeting> {
    if at <= now {
        return Err(ServiceError::invalid(
            "meeting.at",
            "meetings.at_passed",
            "the meeting's time has passed",
        ));
    }
    if at > now + Duration::days(MAX_DAYS_AHEAD) {
        return Err(ServiceError::invalid(
            "meeting.at",
            "meetings.at_far",
            format!("a meeting is at most {MAX_DAYS_AHEAD} days ahead"),
        ));
    }
    let place = text("meeting.place", place, MAX_PLACE).map_err(|_| {
        ServiceError::invalid(
            "meeting.place",
            "meetings.place_length",
            format!("the place is 1 to {MAX_PLACE} characters"),
        )
    })?;
    let mut topics = topics.to_vec();
    topics.sort();
    topics.dedup();
    Ok(Meeting {
        at,
        place: place.to_owned(),
        topics,
    })
}

/// The values `{date}`, `{time}` and `{place}` of a meeting's notice, in the programme's
/// time zone (`31.12`, `14:00`), for those the composer did not give.
pub fn fill_vars(vars: &mut Vars, m: &Meeting, tz: Tz) {
    let local = m.at.with_timezone(&tz);
    vars.entry("date".into())
        .or_insert_with(|| local.format("%d.%m").to_string());
    vars.entry("time".into())
        .or_insert_with(|| local.format("%H:%M").to_string());
    vars.entry("place".into())
        .or_insert_with(|| m.place.clone());
}

/// A meeting's notice may go out only before the meeting: `Conflict` when `send_at` is not.
pub fn check_send(b: &Broadcast, send_at: DateTime<Utc>) -> ServiceResult<()> {
    match &b.meeting {
        Some(m) if m.at <= send_at => Err(ServiceError::conflict(
            "meetings.passed",
            format!(
                "broadcast {} announces a meeting at {} that would have passed when it goes out",
                b.id.0, m.at
            ),
        )),
        _ => Ok(()),
    }
}

/// Broadcast `id` if the actor may see it and it announces a meeting.
async fn load(
    conn: &mut sqlx::PgConnection,
    actor: &Actor,
    id: BroadcastId,
) -> ServiceResult<(Broadcast, Meeting)> {
    let b = store::broadcasts::get(conn, id)
        .await?
        .filter(|b| b.communities.iter().all(|c| actor.may_see(*c)))
        .ok_or(ServiceError::NotFound("broadcast"))?;
    let m = b.meeting.clone().ok_or(ServiceError::NotFound("meeting"))?;
    Ok((b, m))
}

/// A meeting's attendance sheet: its households with their answers and marks, and figures.
#[derive(Debug, Clone)]
pub struct Attendance {
    pub broadcast: Broadcast,
    pub meeting: Meeting,
    pub counts: Counts,
    pub households: Vec<RosterRow>,
    /// Whether this actor may record it (and the meeting's time is near or past).
    pub may_record: bool,
    /// Attendance may be recorded from this time.
    pub opens_at: DateTime<Utc>,
}

/// The attendance sheet of meeting `id`.
pub async fn attendance(
    state: &AppState,
    actor: &Actor,
    id: BroadcastId,
) -> ServiceResult<Attendance> {
    let mut conn = state.pool.acquire().await?;
    let (b, m) = load(&mut conn, actor, id).await?;
    let counts = store::meetings::counts(&mut conn, id).await?;
    let households = store::meetings::roster(&mut conn, id, MAX_MARKS as i64).await?;
    let opens_at = m.at - EARLY_RECORD;
    Ok(Attendance {
        may_record: records(actor) && state.clock.now() >= opens_at,
        opens_at,
        broadcast: b,
        meeting: m,
        counts,
        households,
    })
}

/// The figures of meeting `id` (invited, said yes, said no, came).
pub async fn counts(state: &AppState, actor: &Actor, id: BroadcastId) -> ServiceResult<Counts> {
    let mut conn = state.pool.acquire().await?;
    load(&mut conn, actor, id).await?;
    Ok(store::meetings::counts(&mut conn, id).await?)
}

/// One household's mark on an attendance sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub household: i64,
    pub attended: bool,
}

/// Records who came to meeting `id` (each household given: came or not), with one audit
/// row; returns the meeting's figures after it.
pub async fn record(
    state: &AppState,
    actor: &Actor,
    id: BroadcastId,
    marks: &[Mark],
    once: Once<'_>,
) -> ServiceResult<Counts> {
    if !records(actor) {
        return Err(ServiceError::Forbidden);
    }
    if marks.is_empty() || marks.len() > MAX_MARKS {
        return Err(ServiceError::invalid(
            "households",
            "meetings.marks_count",
            format!("mark 1 to {MAX_MARKS} households"),
        ));
    }
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let (b, m) = load(&mut tx, actor, id).await?;
    if let Some(first) =
        forms::first::<Counts>(&mut tx, actor, once, "meeting.attendance", now).await?
    {
        return Ok(first);
    }
    if now < m.at - EARLY_RECORD {
        return Err(ServiceError::conflict(
            "meetings.not_yet",
            format!(
                "attendance is recorded from {} (two hours before the meeting)",
                m.at - EARLY_RECORD
            ),
        ));
    }
    let mut came = Vec::new();
    let mut not = Vec::new();
    for mark in marks {
        let household = HouseholdId(mark.household);
        let community = store::meetings::household_community(&mut tx, household).await?;
        // another community's household is none of this meeting's (nor, perhaps, the
        // actor's): not found, never a hint that it exists
        if !community.is_some_and(|c| b.communities.contains(&c) && actor.may_see(c)) {
            return Err(ServiceError::NotFound("household"));
        }
        let before = store::meetings::record_attendance(
            &mut tx,
            id,
            household,
            mark.attended,
            actor.id(),
            now,
        )
        .await?;
        if before != Some(mark.attended) {
            if mark.attended {
                came.push(mark.household);
            } else {
                not.push(mark.household);
            }
        }
    }
    if !came.is_empty() || !not.is_empty() {
        audit::write(
            &mut tx,
            actor,
            now,
            audit::Change {
                action: "meeting.attendance",
                subject_kind: "broadcast",
                subject_id: id.0,
                community: b.communities.first().copied(),
                before: json!(null),
                after: json!({ "came": came, "did_not_come": not }),
            },
        )
        .await?;
    }
    let counts = store::meetings::counts(&mut tx, id).await?;
    forms::keep(&mut tx, once, &counts).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        broadcast = id.0,
        came = came.len(),
        did_not_come = not.len(),
        "attendance recorded"
    );
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, h, 0, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn a_meeting_is_to_come_with_a_short_place() {
        let now = at(1, 9);
        let long = "Ж".repeat(25);
        let m = check(at(3, 9), " Мактаби 3 ", &[Topic::Hiv, Topic::Hiv], now).expect("ok");
        assert_eq!(m.place, "Мактаби 3");
        assert_eq!(m.topics, vec![Topic::Hiv]);
        for (when, place, key) in [
            (at(1, 8), "School", "meetings.at_passed"),
            (now + Duration::days(400), "School", "meetings.at_far"),
            (at(3, 9), "", "meetings.place_length"),
            (at(3, 9), long.as_str(), "meetings.place_length"),
        ] {
            let e = check(when, place, &[], now).expect_err(key);
            assert!(
                matches!(e, ServiceError::Invalid { key: k, .. } if k == key),
                "{key}: {e:?}"
            );
        }
    }

    #[test]
    fn the_notice_gets_the_meetings_date_time_and_place() {
        let m = Meeting {
            at: at(12, 9),
            place: "School 3".into(),
            topics: vec![],
        };
        let mut v = Vars::from([("place".to_owned(), "the school".to_owned())]);
        fill_vars(&mut v, &m, chrono_tz::Asia::Dushanbe);
        assert_eq!(v.get("date").map(String::as_str), Some("12.12"));
        assert_eq!(v.get("time").map(String::as_str), Some("14:00"));
        assert_eq!(v.get("place").map(String::as_str), Some("the school"));
    }
}
