//! Meeting notices: a broadcast to one or more communities, narrowed to households with a
//! number abroad, households that pledged to a project, or one language; each recipient
//! gets their language's text. Previewed (recipients, encodings, segments, cost), sent now
//! or scheduled (time-zone aware), cancelled while messages still wait, and answered with
//! RSVPs. Each recipient's message is held past the quiet hours of the recipient's own zone
//! (the number's country's, or the one the household's record names: a migrant in Moscow
//! gets it at 07:00 Moscow time, the family at home at 07:00 in Dushanbe), and the preview
//! says when each zone's group receives it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

pub use crate::store::broadcasts::{recipients, Broadcast, BroadcastStatus, Recipient};
use crate::{
    domain::QuietHours,
    domain::{Currency, Encoding, Language, Phone, TextMeasure},
    engine::menu::fill,
    outbox::{self, Held, Kind, NewMessage},
    store::{self, BroadcastId, OutboxId},
};

/// The placeholders a notice may use.
pub const PLACEHOLDERS: &[&str] = &["date", "time", "place", "project"];

impl Broadcast {
    /// The text for one language with its placeholders filled.
    pub fn text(&self, lang: Language) -> String {
        let template = self
            .texts
            .get(lang.code())
            .map(String::as_str)
            .unwrap_or("");
        fill(template, |name| self.vars.get(name).cloned())
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LanguagePreview {
    pub recipients: usize,
    pub skipped_opted_out: usize,
    /// gsm7 or ucs2
    #[schema(value_type = String)]
    pub encoding: Encoding,
    pub segments_each: usize,
    pub segments_total: usize,
    pub text: String,
}

/// The recipients of one time zone, and when they receive the broadcast there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ZoneGroup {
    /// IANA name (`Europe/Moscow`).
    pub zone: String,
    /// Numbers in the zone that get the message (opted-out ones are not counted).
    pub recipients: usize,
    /// When they receive it: the broadcast's time, or the end of the quiet hours there.
    pub receive_at: DateTime<Utc>,
    /// The same instant in the zone's local time (RFC 3339 with its offset).
    pub receive_at_local: String,
    /// The same instant in the programme's zone (RFC 3339 with its offset).
    pub receive_at_home: String,
    /// Whether the quiet hours there hold it past the broadcast's time.
    pub held: bool,
}

/// How many of `recipients` get a message (opted-out numbers do not) in each zone, in no
/// particular order.
pub fn zone_counts(recipients: &[Recipient], home: Tz) -> Vec<(Tz, usize)> {
    let mut counts: std::collections::HashMap<Tz, usize> = std::collections::HashMap::new();
    for r in recipients.iter().filter(|r| !r.opted_out) {
        *counts.entry(r.zone(home)).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// Zones with their recipient counts, and when each group receives a broadcast going out at
/// `at` (the end of the quiet hours there when `at` falls in them): earliest first, then by
/// zone name. Pure.
pub fn timed(
    counts: impl IntoIterator<Item = (Tz, usize)>,
    quiet: &QuietHours,
    at: DateTime<Utc>,
) -> Vec<ZoneGroup> {
    let mut groups: Vec<ZoneGroup> = counts
        .into_iter()
        .map(|(zone, recipients)| {
            let receive_at = quiet.next_allowed_in(zone, at);
            ZoneGroup {
                zone: zone.name().to_owned(),
                recipients,
                receive_at,
                receive_at_local: receive_at.with_timezone(&zone).to_rfc3339(),
                receive_at_home: receive_at.with_timezone(&quiet.tz).to_rfc3339(),
                held: receive_at > at,
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        a.receive_at
            .cmp(&b.receive_at)
            .then_with(|| a.zone.cmp(&b.zone))
    });
    groups
}

/// The recipients that get a message grouped by zone, with when each group receives a
/// broadcast going out at `at`.
pub fn zone_groups(
    recipients: &[Recipient],
    quiet: &QuietHours,
    at: DateTime<Utc>,
) -> Vec<ZoneGroup> {
    timed(zone_counts(recipients, quiet.tz), quiet, at)
}

/// The same groups for a broadcast going out at `at` instead (a time chosen on the
/// confirmation page). Pure.
pub fn retime(groups: &[ZoneGroup], quiet: &QuietHours, at: DateTime<Utc>) -> Vec<ZoneGroup> {
    timed(
        groups
            .iter()
            .filter_map(|g| Some((g.zone.parse::<Tz>().ok()?, g.recipients))),
        quiet,
        at,
    )
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub languages: BTreeMap<String, LanguagePreview>,
    /// The recipients per time zone, with when each group receives it (each recipient's
    /// message waits past the quiet hours of their own zone).
    pub zones: Vec<ZoneGroup>,
    pub recipients: usize,
    pub skipped_opted_out: usize,
    pub segments_total: usize,
    #[serde(serialize_with = "crate::domain::money::two_dp")]
    pub estimated_cost: Decimal,
    pub cost_currency: String,
}

/// Who would get what, what it would cost (opted-out numbers are counted apart), and when
/// each zone's recipients receive it if it goes out at `at`.
pub fn preview(
    b: &Broadcast,
    recipients: &[Recipient],
    price_per_segment: Decimal,
    currency: Currency,
    quiet: &QuietHours,
    at: DateTime<Utc>,
) -> Preview {
    let mut languages = BTreeMap::new();
    for lang in Language::ALL {
        let text = b.text(lang);
        let m = TextMeasure::of(&text);
        let count = recipients
            .iter()
            .filter(|r| r.language == lang && !r.opted_out)
            .count();
        let skipped = recipients
            .iter()
            .filter(|r| r.language == lang && r.opted_out)
            .count();
        let each = m.sms_segments();
        languages.insert(
            lang.code().to_owned(),
            LanguagePreview {
                recipients: count,
                skipped_opted_out: skipped,
                encoding: m.encoding,
                segments_each: each,
                segments_total: each * count,
                text,
            },
        );
    }
    let segments_total: usize = languages.values().map(|l| l.segments_total).sum();
    Preview {
        recipients: languages.values().map(|l| l.recipients).sum(),
        skipped_opted_out: languages.values().map(|l| l.skipped_opted_out).sum(),
        segments_total,
        estimated_cost: price_per_segment * Decimal::from(segments_total as u64),
        cost_currency: currency.to_string(),
        languages,
        zones: zone_groups(recipients, quiet, at),
    }
}

/// Stores `b` as a new draft (its `id`, `status` and `send_at` are not read) and returns
/// its id, in the caller's transaction. The one place a broadcast is created: by the admin
/// API and by the coordinator phone menu's meeting notice.
pub use crate::store::broadcasts::create;

/// When a broadcast goes out, and how many messages were queued now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sending {
    pub send_at: DateTime<Utc>,
    /// 0 when scheduled for later (or held by the quiet hours).
    pub queued: usize,
}

/// Sends a draft (or moves a scheduled broadcast) for `wanted`, in the caller's
/// transaction: its time is when its first recipient may receive it (`wanted`, or the end
/// of the quiet hours in the zone whose hours end first; with no recipient, the
/// programme's); queued at once when that time has come (see [`queue`]: each message then
/// waits for the end of its own recipient's quiet hours), else marked `scheduled` for the
/// scheduler ([`run_due`]). The one place a
/// broadcast is sent or scheduled, by the admin API and by the coordinator phone menu.
/// `None` when the broadcast is no longer a draft or scheduled (of two callers at once, the
/// second waits for the first's transaction and finds it queued or cancelled).
pub async fn schedule(
    conn: &mut PgConnection,
    state: &crate::app::AppState,
    b: &Broadcast,
    wanted: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<Sending>, sqlx::Error> {
    let quiet = &state.settings.quiet_hours;
    let at = wanted.max(now);
    let people = recipients(conn, b, state.config.default_language).await?;
    let send_at = zone_groups(&people, quiet, at)
        .first()
        .map_or_else(|| quiet.next_allowed(at), |g| g.receive_at);
    if send_at <= now {
        let queued = queue(
            conn,
            b,
            Some(send_at),
            quiet,
            state.config.default_language,
            state.config.sms_provider.name(),
            state.config.sms_max_segments,
            now,
        )
        .await?;
        return Ok(queued.map(|queued| Sending { send_at, queued }));
    }
    let scheduled = store::broadcasts::set_scheduled(conn, b.id, send_at).await?;
    Ok(scheduled.then_some(Sending { send_at, queued: 0 }))
}

/// Queues every message of a broadcast, inside the caller's transaction: first moves it
/// from draft or scheduled to queued in one conditional update (so of two callers at once
/// — a double click, the API and the scheduler — exactly one gets it; the other waits for
/// the first's transaction and finds it queued), then records the recipients and one outbox
/// row each (numbers that opted out are recorded as skipped, sent nothing), due at the end
/// of the quiet hours in the recipient's zone when it is quiet there now. `send_at`, when
/// given, is recorded as the time it was sent for. Returns how many messages were queued,
/// or `None` if the broadcast was no longer a draft or scheduled.
#[allow(clippy::too_many_arguments)]
pub async fn queue(
    conn: &mut PgConnection,
    b: &Broadcast,
    send_at: Option<DateTime<Utc>>,
    quiet: &QuietHours,
    default: Language,
    provider: &str,
    max_segments: u32,
    now: DateTime<Utc>,
) -> Result<Option<usize>, sqlx::Error> {
    if !store::broadcasts::set_queued(conn, b.id, now, send_at).await? {
        return Ok(None);
    }
    let people = recipients(conn, b, default).await?;
    let until = now + Duration::hours(i64::from(b.rsvp_hours));
    let mut queued = 0;
    for r in &people {
        let outbox_id = if r.opted_out {
            None
        } else {
            let phone = Phone::from_e164_unchecked(r.phone.clone());
            queued += 1;
            Some(OutboxId(
                outbox::enqueue_broadcast(
                    conn,
                    &NewMessage {
                        to: &phone,
                        body: &b.text(r.language),
                        kind: Kind::Broadcast,
                        inbound_id: None,
                    },
                    b.id.0,
                    Held::past_quiet_hours(quiet, r.zone(quiet.tz), now),
                    provider,
                    max_segments,
                    now,
                )
                .await?,
            ))
        };
        store::broadcasts::add_recipient(conn, b.id, r, outbox_id, until).await?;
    }
    Ok(Some(queued))
}

/// Queues the broadcasts whose time has come (their messages then wait out the quiet hours
/// of each recipient's zone). Several server instances can run this: each broadcast is
/// taken by one (row locks, SKIP LOCKED).
pub async fn run_due(
    pool: &PgPool,
    now: DateTime<Utc>,
    quiet: &QuietHours,
    default: Language,
    provider: &str,
    max_segments: u32,
) -> Result<usize, sqlx::Error> {
    let mut done = 0;
    loop {
        let mut tx = pool.begin().await?;
        let Some(id) = store::broadcasts::lock_next_due(&mut tx, now).await? else {
            tx.commit().await?;
            return Ok(done);
        };
        if let Some(b) = store::broadcasts::get(&mut tx, id).await? {
            let queued = queue(
                &mut tx,
                &b,
                None,
                quiet,
                default,
                provider,
                max_segments,
                now,
            );
            if let Some(n) = queued.await? {
                tracing::info!(broadcast = id.0, messages = n, "broadcast queued");
            }
        }
        tx.commit().await?;
        done += 1;
    }
}

/// Cancels a broadcast: what still waits in the outbox is not sent. Returns how many
/// messages were stopped.
pub async fn cancel(
    pool: &PgPool,
    id: BroadcastId,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let stopped = store::broadcasts::cancel(&mut tx, id, now).await?;
    tx.commit().await?;
    Ok(stopped)
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Progress {
    /// Messages by outbox status (queued, sending, sent, delivered, failed, suppressed, cancelled).
    pub messages: BTreeMap<String, i64>,
    pub skipped_opted_out: i64,
    /// RSVP answers per community id: yes, no.
    pub rsvps: BTreeMap<String, RsvpCount>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct RsvpCount {
    pub yes: i64,
    pub no: i64,
}

pub async fn progress(conn: &mut PgConnection, id: BroadcastId) -> Result<Progress, sqlx::Error> {
    let mut p = Progress::default();
    for c in store::broadcasts::message_counts(conn, id).await? {
        if c.status == "skipped" {
            p.skipped_opted_out = c.count;
        } else {
            p.messages.insert(c.status, c.count);
        }
    }
    for c in store::broadcasts::rsvp_counts(conn, id).await? {
        p.rsvps.insert(
            c.community.to_string(),
            RsvpCount {
                yes: c.yes,
                no: c.no,
            },
        );
    }
    Ok(p)
}

/// Reads a text as an RSVP answer: `1`/`2` or yes/no in any of the three languages.
pub fn rsvp_answer(text: &str) -> Option<&'static str> {
    let word = text.trim().trim_end_matches(['.', '!']).to_uppercase();
    match word.as_str() {
        "1" | "YES" | "Y" | "ДА" | "ҲА" | "ХА" | "HA" | "DA" => Some("yes"),
        "2" | "NO" | "N" | "НЕТ" | "НЕ" | "NE" | "NET" => Some("no"),
        _ => None,
    }
}

/// Records an RSVP if `text` is one and this number has a broadcast whose answer window is
/// open and that came after the number's last SMS conversation step. Returns the broadcast
/// and the answer.
pub async fn record_rsvp(
    conn: &mut PgConnection,
    phone: &Phone,
    text: &str,
    now: DateTime<Utc>,
    inbound_id: i64,
) -> Result<Option<(i64, &'static str)>, sqlx::Error> {
    let Some(answer) = rsvp_answer(text) else {
        return Ok(None);
    };
    let Some((broadcast, household)) = store::broadcasts::rsvp_target(conn, phone, now).await?
    else {
        return Ok(None);
    };
    store::meetings::record_rsvp(
        conn,
        broadcast,
        household,
        phone.as_str(),
        answer,
        now,
        Some(inbound_id),
        "sms",
    )
    .await?;
    Ok(Some((broadcast.0, answer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsvp_words() {
        for yes in ["1", "yes", "Да", "ҳа", "YES!"] {
            assert_eq!(rsvp_answer(yes), Some("yes"), "{yes}");
        }
        for no in ["2", "no", "НЕТ", "не"] {
            assert_eq!(rsvp_answer(no), Some("no"), "{no}");
        }
        assert_eq!(rsvp_answer("maybe"), None);
        assert_eq!(rsvp_answer("3"), None);
    }
}
