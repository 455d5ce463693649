//! Broadcasts (meeting notices), for every edge: the list, one broadcast with its preview,
//! progress, failure reasons and answers, the recipients an audience would reach, and the
//! changes — create a draft, send it now or at a time (never in the quiet hours), cancel.
//!
//! The rules are the admin API's (an audience of communities in the actor's scope, texts of
//! 1 to 1000 characters with the placeholders {date}, {time}, {place}, {project} and their
//! values, answers counted for 0 to 720 hours). Sending and cancelling are what coordinators
//! and admins do: counsellors and programme officers are refused (`Forbidden`); a broadcast
//! whose communities are not all in the actor's scope is `NotFound`. Each change runs in one
//! transaction with its audit row (`broadcast.create`, `broadcast.send`, `broadcast.cancel`)
//! and is kept from happening twice by [`Once`].
//!
//! The measures the compose page shows as one types ([`measure`], [`send_time`]) are pure:
//! no database, so they can run on every keystroke.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgConnection;

use super::{audit, forms, Actor, Once, Role, ServiceError, ServiceResult};
use crate::{
    app::AppState,
    broadcasts::{self as sending, Broadcast, BroadcastStatus, Preview, Progress, PLACEHOLDERS},
    domain::{Encoding, Language, QuietHours, TextMeasure},
    engine::{
        menu::{fill, placeholders},
        Vars,
    },
    store::{
        self,
        broadcasts::{Listed, Rsvp, StatusCount},
        BroadcastId, CommunityId, ProjectId, Violation,
    },
};

/// How many broadcasts the list shows.
pub const LISTED: i64 = 50;
/// Longest text per language (characters), as the schema.
pub const MAX_TEXT: usize = 1000;
/// Longest value of a placeholder (characters).
pub const MAX_VAR: usize = 100;
/// How long answers count when nothing is said (hours).
pub const DEFAULT_RSVP_HOURS: i32 = 72;

/// Whether this actor sends and cancels broadcasts (admins and coordinators).
pub fn sends(actor: &Actor) -> bool {
    matches!(actor.role, Role::Admin | Role::Coordinator)
}

fn require_sender(actor: &Actor) -> ServiceResult<()> {
    if sends(actor) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden)
    }
}

/// Who a broadcast goes to: households of `communities`, narrowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    pub communities: Vec<i64>,
    /// Only households with a number abroad.
    pub only_migrants: bool,
    /// Only households that pledged to this project.
    pub only_project: Option<i64>,
    /// Only households speaking this language (tg, ru, en).
    pub only_language: Option<String>,
}

/// A broadcast to create.
#[derive(Debug, Clone)]
pub struct NewBroadcast<'a> {
    pub audience: Audience,
    /// Tajik, Russian, English, with placeholders.
    pub texts: [&'a str; 3],
    pub vars: Vars,
    /// Hours answers count (default [`DEFAULT_RSVP_HOURS`]).
    pub rsvp_hours: Option<i32>,
    /// The meeting it announces, if any (checked by [`super::meetings::check`]); its date,
    /// time and place fill `{date}`, `{time}` and `{place}` unless `vars` gives them.
    pub meeting: Option<NewMeeting>,
}

/// A meeting as typed: when, where, what about.
#[derive(Debug, Clone)]
pub struct NewMeeting {
    pub at: DateTime<Utc>,
    pub place: String,
    pub topics: Vec<store::meetings::Topic>,
}

/// The audience checked against the scope and the rules: `Forbidden` for a community
/// outside it.
async fn check_audience(conn: &mut PgConnection, actor: &Actor, a: &Audience) -> ServiceResult<()> {
    if a.communities.is_empty() {
        return Err(ServiceError::invalid(
            "communities",
            "broadcasts.no_audience",
            "name at least one community",
        ));
    }
    a.communities.iter().try_for_each(|c| actor.require(*c))?;
    if let Some(l) = &a.only_language {
        if l.parse::<Language>().is_err() {
            return Err(ServiceError::invalid(
                "only_language",
                "broadcasts.language_invalid",
                "only_language is tg, ru or en",
            ));
        }
    }
    if let Some(p) = a.only_project {
        let c = store::projects::get(conn, ProjectId(p)).await?;
        if c.is_none_or(|c| !a.communities.contains(&c.community.0)) {
            return Err(ServiceError::invalid(
                "only_project",
                "broadcasts.project_invalid",
                "no such project in these communities",
            ));
        }
    }
    Ok(())
}

/// The text fields of each language and the placeholders' values, checked.
pub fn check_texts(texts: [&str; 3], vars: &Vars) -> ServiceResult<()> {
    for (field, text) in [
        ("texts.tg", texts[0]),
        ("texts.ru", texts[1]),
        ("texts.en", texts[2]),
    ] {
        let n = text.trim().chars().count();
        if n == 0 || n > MAX_TEXT {
            return Err(ServiceError::invalid(
                field,
                if n == 0 {
                    "broadcasts.text_empty"
                } else {
                    "broadcasts.text_long"
                },
                format!("{field} is 1 to {MAX_TEXT} characters"),
            ));
        }
        for p in placeholders(text) {
            if !PLACEHOLDERS.contains(&p.as_str()) {
                return Err(ServiceError::invalid(
                    field,
                    "broadcasts.placeholder_unknown",
                    format!("unknown placeholder {{{p}}}: use date, time, place or project"),
                ));
            }
            if !vars.contains_key(&p) {
                return Err(ServiceError::invalid(
                    "vars",
                    "broadcasts.placeholder_empty",
                    format!("{{{p}}} is used but has no value"),
                ));
            }
        }
    }
    if let Some(k) = vars.keys().find(|k| !PLACEHOLDERS.contains(&k.as_str())) {
        return Err(ServiceError::invalid(
            "vars",
            "broadcasts.placeholder_unknown",
            format!("unknown value {k}: use date, time, place or project"),
        ));
    }
    if vars.values().any(|v| v.chars().count() > MAX_VAR) {
        return Err(ServiceError::invalid(
            "vars",
            "broadcasts.value_long",
            format!("a value is at most {MAX_VAR} characters"),
        ));
    }
    Ok(())
}

/// Creates a draft broadcast with its audit row; returns its id.
pub async fn create(
    state: &AppState,
    actor: &Actor,
    b: NewBroadcast<'_>,
    once: Once<'_>,
) -> ServiceResult<BroadcastId> {
    require_sender(actor)?;
    if b.audience.communities.is_empty() {
        return Err(ServiceError::invalid(
            "communities",
            "broadcasts.no_audience",
            "name at least one community",
        ));
    }
    b.audience
        .communities
        .iter()
        .try_for_each(|c| actor.require(*c))?;
    let rsvp_hours = b.rsvp_hours.unwrap_or(DEFAULT_RSVP_HOURS);
    if !(0..=720).contains(&rsvp_hours) {
        return Err(ServiceError::invalid(
            "rsvp_hours",
            "broadcasts.rsvp_hours_invalid",
            "rsvp_hours is 0 to 720",
        ));
    }
    if let Some(l) = &b.audience.only_language {
        if l.parse::<Language>().is_err() {
            return Err(ServiceError::invalid(
                "only_language",
                "broadcasts.language_invalid",
                "only_language is tg, ru or en",
            ));
        }
    }
    let now = state.clock.now();
    let meeting = match &b.meeting {
        Some(m) => Some(super::meetings::check(m.at, &m.place, &m.topics, now)?),
        None => None,
    };
    let mut vars = b.vars;
    if let Some(m) = &meeting {
        super::meetings::fill_vars(&mut vars, m, state.config.timezone);
    }
    check_texts(b.texts, &vars)?;
    let mut tx = state.pool.begin().await?;
    check_audience(&mut tx, actor, &b.audience).await?;
    if let Some(first) = forms::first::<i64>(&mut tx, actor, once, "broadcast.create", now).await? {
        return Ok(BroadcastId(first));
    }
    let draft = Broadcast {
        id: BroadcastId(0),
        communities: b
            .audience
            .communities
            .iter()
            .copied()
            .map(CommunityId)
            .collect(),
        only_migrants: b.audience.only_migrants,
        only_project: b.audience.only_project.map(ProjectId),
        only_language: b.audience.only_language.clone(),
        texts: BTreeMap::from([
            ("tg".to_owned(), b.texts[0].trim().to_owned()),
            ("ru".to_owned(), b.texts[1].trim().to_owned()),
            ("en".to_owned(), b.texts[2].trim().to_owned()),
        ]),
        vars,
        status: BroadcastStatus::Draft,
        send_at: None,
        rsvp_hours,
        created_by: actor.who(),
        created_at: now,
        meeting,
    };
    let id = sending::create(&mut tx, &draft).await.map_err(|e| {
        if Violation::is_foreign_key(&e) {
            ServiceError::invalid(
                "communities",
                "broadcasts.no_community",
                "no such community",
            )
        } else {
            ServiceError::Db(e)
        }
    })?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "broadcast.create",
            subject_kind: "broadcast",
            subject_id: id.0,
            community: draft.communities.first().copied(),
            before: json!(null),
            after: json!({
                "communities": b.audience.communities,
                "only_migrants": draft.only_migrants,
                "only_project": b.audience.only_project,
                "only_language": draft.only_language,
                "rsvp_hours": rsvp_hours,
                "meeting": draft.meeting,
            }),
        },
    )
    .await?;
    forms::keep(&mut tx, once, &id.0).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        broadcast = id.0,
        "broadcast created"
    );
    Ok(id)
}

/// Broadcast `id` if the actor may see it: every one of its communities is in their scope
/// (else, as when there is no such broadcast, `NotFound`).
async fn load(conn: &mut PgConnection, actor: &Actor, id: BroadcastId) -> ServiceResult<Broadcast> {
    store::broadcasts::get(conn, id)
        .await?
        .filter(|b| b.communities.iter().all(|c| actor.may_see(*c)))
        .ok_or(ServiceError::NotFound("broadcast"))
}

/// A broadcast with what it would cost (before it is queued) and how it went.
#[derive(Debug, Clone)]
pub struct View {
    pub broadcast: Broadcast,
    /// Recipients, encodings, segments and cost: while it is a draft or scheduled.
    pub preview: Option<Preview>,
    pub progress: Progress,
    /// Why messages failed, the most common first.
    pub failures: Vec<StatusCount>,
}

/// How many failure reasons [`view`] lists.
pub const FAILURE_REASONS: i64 = 5;

/// Broadcast `id`, if this actor may see it, with its preview, progress and failures.
pub async fn view(state: &AppState, actor: &Actor, id: BroadcastId) -> ServiceResult<View> {
    let mut conn = state.pool.acquire().await?;
    let b = load(&mut conn, actor, id).await?;
    let now = state.clock.now();
    let preview = if b.status.is_pending() {
        let people = sending::recipients(&mut conn, &b, state.config.default_language).await?;
        Some(sending::preview(
            &b,
            &people,
            state.config.sms_price_per_segment,
            state.settings.sms_price_currency,
            &state.settings.quiet_hours,
            b.send_at.unwrap_or(now).max(now),
        ))
    } else {
        None
    };
    let progress = sending::progress(&mut conn, id).await?;
    let failures = if progress.messages.contains_key("failed") {
        store::broadcasts::failure_reasons(&mut conn, id, FAILURE_REASONS).await?
    } else {
        Vec::new()
    };
    Ok(View {
        broadcast: b,
        preview,
        progress,
        failures,
    })
}

/// The broadcasts this actor sees (all their communities in scope), newest first.
pub async fn list(state: &AppState, actor: &Actor) -> ServiceResult<Vec<Listed>> {
    let mut conn = state.pool.acquire().await?;
    Ok(store::broadcasts::list(&mut conn, actor.scope(), LISTED).await?)
}

/// The answers to broadcast `id` (latest per number), if this actor may see it.
pub async fn rsvps(state: &AppState, actor: &Actor, id: BroadcastId) -> ServiceResult<Vec<Rsvp>> {
    let mut conn = state.pool.acquire().await?;
    load(&mut conn, actor, id).await?;
    Ok(store::broadcasts::rsvps(&mut conn, id).await?)
}

/// Who an audience reaches, per language: numbers that would get the text, and numbers
/// skipped because they opted out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    pub recipients: usize,
    pub opted_out: usize,
}

/// A draft that is not stored, to read who `audience` reaches.
fn probe(state: &AppState, actor: &Actor, audience: &Audience) -> Broadcast {
    Broadcast {
        id: BroadcastId(0),
        communities: audience
            .communities
            .iter()
            .copied()
            .map(CommunityId)
            .collect(),
        only_migrants: audience.only_migrants,
        only_project: audience.only_project.map(ProjectId),
        only_language: audience.only_language.clone(),
        texts: BTreeMap::new(),
        vars: Vars::new(),
        status: BroadcastStatus::Draft,
        send_at: None,
        rsvp_hours: DEFAULT_RSVP_HOURS,
        created_by: actor.who(),
        created_at: state.clock.now(),
        meeting: None,
    }
}

/// The numbers `audience` reaches, per language (the audience checked as [`create`] does).
pub async fn reach(
    state: &AppState,
    actor: &Actor,
    audience: &Audience,
) -> ServiceResult<BTreeMap<Language, Reach>> {
    require_sender(actor)?;
    let mut conn = state.pool.acquire().await?;
    check_audience(&mut conn, actor, audience).await?;
    let probe = probe(state, actor, audience);
    let people = sending::recipients(&mut conn, &probe, state.config.default_language).await?;
    let mut by_language: BTreeMap<Language, Reach> = Language::ALL
        .into_iter()
        .map(|l| (l, Reach::default()))
        .collect();
    for r in &people {
        let e = by_language.entry(r.language).or_default();
        if r.opted_out {
            e.opted_out += 1;
        } else {
            e.recipients += 1;
        }
    }
    Ok(by_language)
}

/// How many numbers `audience` reaches in each time zone (the numbers that opted out not
/// counted), for the compose page to say when each group receives it (the audience checked
/// as [`reach`] does).
pub async fn reach_zones(
    state: &AppState,
    actor: &Actor,
    audience: &Audience,
) -> ServiceResult<Vec<(Tz, usize)>> {
    require_sender(actor)?;
    let mut conn = state.pool.acquire().await?;
    check_audience(&mut conn, actor, audience).await?;
    let probe = probe(state, actor, audience);
    let people = sending::recipients(&mut conn, &probe, state.config.default_language).await?;
    Ok(sending::zone_counts(&people, state.settings.quiet_hours.tz))
}

/// One language's text as phones will count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measure {
    /// The text with its placeholders filled.
    pub text: String,
    pub characters: usize,
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: usize,
    pub segments: usize,
    /// Units in a single SMS and in each part of a longer one (160/153, 70/67).
    pub single: usize,
    pub per_part: usize,
}

/// Measures `template` with `vars` filled in (unknown placeholders stay as typed): pure, for
/// every keystroke.
pub fn measure(template: &str, vars: &Vars) -> Measure {
    let text = fill(template.trim(), |name| vars.get(name).cloned());
    let m = TextMeasure::of(&text);
    let (single, per_part) = match m.encoding {
        Encoding::Gsm7 => (160, 153),
        Encoding::Ucs2 => (70, 67),
    };
    Measure {
        characters: text.chars().count(),
        encoding: m.encoding,
        units: m.units,
        segments: if text.is_empty() { 0 } else { m.sms_segments() },
        single,
        per_part,
        text,
    }
}

/// What `segments` SMS cost at `price` each.
pub fn cost(price: Decimal, segments: usize) -> Decimal {
    price * Decimal::from(segments as u64)
}

/// When a broadcast asked for `wanted` (now when `None`) goes out to numbers timed in the
/// programme's zone: moved out of its quiet hours, never before `now`. Pure. (Numbers
/// abroad are timed in their own zone: see `broadcasts::timed`.)
pub fn send_time(
    quiet: &QuietHours,
    wanted: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    quiet.next_allowed(wanted.unwrap_or(now).max(now))
}

/// When a broadcast goes out and how many messages were queued now (the answer a form key
/// keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sent {
    pub send_at: DateTime<Utc>,
    /// 0 when scheduled for later (or held by the quiet hours).
    pub queued: usize,
}

/// Sends draft (or scheduled) broadcast `id` now, or schedules it for `at`, moved out of the
/// quiet hours, with its audit row.
pub async fn send(
    state: &AppState,
    actor: &Actor,
    id: BroadcastId,
    at: Option<DateTime<Utc>>,
    once: Once<'_>,
) -> ServiceResult<Sent> {
    require_sender(actor)?;
    let now = state.clock.now();
    let wanted = at.unwrap_or(now);
    if wanted < now - Duration::minutes(5) {
        return Err(ServiceError::invalid(
            "at",
            "broadcasts.at_passed",
            "that time has passed",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let b = load(&mut tx, actor, id).await?;
    if let Some(first) = forms::first::<Sent>(&mut tx, actor, once, "broadcast.send", now).await? {
        return Ok(first);
    }
    if !b.status.is_pending() {
        return Err(ServiceError::conflict(
            "broadcasts.not_pending",
            format!("broadcast {} is {}", id.0, b.status),
        ));
    }
    super::meetings::check_send(
        &b,
        send_time(&state.settings.quiet_hours, Some(wanted), now),
    )?;
    // Each transition is one conditional update: of two sends at once (a double click, or
    // this and the scheduler), the second waits for the first's transaction and then finds
    // the broadcast queued (a conflict).
    let s = sending::schedule(&mut tx, state, &b, wanted, now)
        .await?
        .ok_or_else(|| {
            ServiceError::conflict(
                "broadcasts.not_pending",
                format!("broadcast {} is already queued or cancelled", id.0),
            )
        })?;
    let sent = Sent {
        send_at: s.send_at,
        queued: s.queued,
    };
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "broadcast.send",
            subject_kind: "broadcast",
            subject_id: id.0,
            community: b.communities.first().copied(),
            before: json!({ "status": b.status }),
            after: json!({
                "status": if sent.queued > 0 || sent.send_at <= now { "queued" } else { "scheduled" },
                "send_at": sent.send_at,
                "queued": sent.queued,
            }),
        },
    )
    .await?;
    forms::keep(&mut tx, once, &sent).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        broadcast = id.0,
        queued = sent.queued,
        "broadcast sent or scheduled"
    );
    Ok(sent)
}

/// Cancels broadcast `id` (messages still waiting in the outbox are not sent), with its
/// audit row; returns how many messages were stopped.
pub async fn cancel(
    state: &AppState,
    actor: &Actor,
    id: BroadcastId,
    once: Once<'_>,
) -> ServiceResult<u64> {
    require_sender(actor)?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let b = load(&mut tx, actor, id).await?;
    if let Some(first) = forms::first::<u64>(&mut tx, actor, once, "broadcast.cancel", now).await? {
        return Ok(first);
    }
    if b.status == BroadcastStatus::Cancelled {
        return Err(ServiceError::conflict(
            "broadcasts.already_cancelled",
            format!("broadcast {} is already cancelled", id.0),
        ));
    }
    let stopped = store::broadcasts::cancel(&mut tx, id, now).await?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "broadcast.cancel",
            subject_kind: "broadcast",
            subject_id: id.0,
            community: b.communities.first().copied(),
            before: json!({ "status": b.status }),
            after: json!({ "status": BroadcastStatus::Cancelled, "stopped": stopped }),
        },
    )
    .await?;
    forms::keep(&mut tx, once, &stopped).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        broadcast = id.0,
        stopped,
        "broadcast cancelled"
    );
    Ok(stopped)
}

/// The audit rows of broadcast `id` (the caller has loaded it through [`view`]).
pub async fn history(state: &AppState, id: BroadcastId) -> ServiceResult<Vec<audit::Row>> {
    let mut conn = state.pool.acquire().await?;
    audit::of(&mut conn, "broadcast", id.0).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn vars() -> Vars {
        Vars::from([("date".to_owned(), "1.12".to_owned())])
    }

    #[test]
    fn cyrillic_switches_to_ucs2_and_long_texts_take_more_segments() {
        let m = measure("Meeting on {date}", &vars());
        assert_eq!(
            (m.encoding, m.single, m.per_part),
            (Encoding::Gsm7, 160, 153)
        );
        assert_eq!(m.text, "Meeting on 1.12");
        assert_eq!((m.characters, m.segments), (15, 1));
        let m = measure("Ҷаласа {date}", &vars());
        assert_eq!((m.encoding, m.single, m.per_part), (Encoding::Ucs2, 70, 67));
        assert_eq!(measure(&"д".repeat(70), &vars()).segments, 1);
        assert_eq!(measure(&"д".repeat(71), &vars()).segments, 2);
        assert_eq!(measure(&"d".repeat(161), &vars()).segments, 2);
        assert_eq!(measure("  ", &vars()).segments, 0);
    }

    #[test]
    fn a_time_in_the_quiet_hours_moves_to_their_end() {
        let q = QuietHours::parse("21:00-07:00", chrono_tz::Asia::Dushanbe).expect("window");
        let at = |h, m| {
            Utc.with_ymd_and_hms(2026, 11, 28, h, m, 0)
                .single()
                .expect("time")
        };
        let now = at(9, 0); // 14:00 in Dushanbe
        assert_eq!(send_time(&q, None, now), now);
        // 22:00 there is 17:00 UTC: moved to 07:00 the next morning (02:00 UTC)
        assert_eq!(
            send_time(&q, Some(at(17, 0)), now),
            Utc.with_ymd_and_hms(2026, 11, 29, 2, 0, 0)
                .single()
                .expect("time")
        );
        // never before now
        assert_eq!(send_time(&q, Some(at(8, 0)), now), now);
    }

    #[test]
    fn texts_follow_the_apis_rules() {
        assert!(check_texts(
            ["Ҷаласа {date}", "Собрание {date}", "Meeting {date}"],
            &vars()
        )
        .is_ok());
        let e = check_texts(["", "a", "b"], &vars()).expect_err("empty");
        assert!(matches!(
            e,
            ServiceError::Invalid {
                field: "texts.tg",
                key: "broadcasts.text_empty",
                ..
            }
        ));
        let e = check_texts(["a {place}", "a", "b"], &vars()).expect_err("no value");
        assert!(matches!(e, ServiceError::Invalid { field: "vars", .. }));
        let e = check_texts(["a {who}", "a", "b"], &vars()).expect_err("unknown");
        assert!(matches!(
            e,
            ServiceError::Invalid {
                key: "broadcasts.placeholder_unknown",
                ..
            }
        ));
    }

    #[test]
    fn only_coordinators_and_admins_send() {
        for (role, may) in [
            (Role::Admin, true),
            (Role::Coordinator, true),
            (Role::Counsellor, false),
            (Role::Officer, false),
        ] {
            let a = Actor {
                coordinator_id: 1,
                role,
                communities: vec![1],
                request_id: None,
            };
            assert_eq!(sends(&a), may, "{role}");
        }
    }
}
