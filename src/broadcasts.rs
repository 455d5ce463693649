//! Meeting notices: a broadcast to one or more communities, narrowed to households with a
//! number abroad, households that pledged to a project, or one language; each recipient
//! gets their language's text. Previewed (recipients, encodings, segments, cost), sent now
//! or scheduled (time-zone aware, never in the quiet hours), cancelled while messages still
//! wait, and answered with RSVPs.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{types::Json, PgConnection, PgPool, Row};

use crate::{
    domain::QuietHours,
    domain::{Currency, Encoding, Language, Phone, TextMeasure},
    engine::{menu::fill, Vars},
    outbox::{self, Kind, NewMessage},
};

/// The placeholders a notice may use.
pub const PLACEHOLDERS: &[&str] = &["date", "time", "place", "project"];

/// What a broadcast is, as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Broadcast {
    pub id: i64,
    pub communities: Vec<i64>,
    pub only_migrants: bool,
    pub only_project: Option<i64>,
    pub only_language: Option<String>,
    pub texts: BTreeMap<String, String>,
    pub vars: Vars,
    pub status: String,
    pub send_at: Option<DateTime<Utc>>,
    pub rsvp_hours: i32,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

pub async fn load(conn: &mut PgConnection, id: i64) -> Result<Option<Broadcast>, sqlx::Error> {
    let row = sqlx::query(
        "select id, communities, only_migrants, only_project, only_language, text_tg, text_ru, text_en, vars,
                status, send_at, rsvp_hours, created_by, created_at
         from broadcasts where id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        let Json(vars): Json<Vars> = r.get("vars");
        Broadcast {
            id: r.get("id"),
            communities: r.get("communities"),
            only_migrants: r.get("only_migrants"),
            only_project: r.get("only_project"),
            only_language: r.get("only_language"),
            texts: BTreeMap::from([
                ("tg".to_owned(), r.get::<String, _>("text_tg")),
                ("ru".to_owned(), r.get::<String, _>("text_ru")),
                ("en".to_owned(), r.get::<String, _>("text_en")),
            ]),
            vars,
            status: r.get("status"),
            send_at: r.get("send_at"),
            rsvp_hours: r.get("rsvp_hours"),
            created_by: r.get("created_by"),
            created_at: r.get("created_at"),
        }
    }))
}

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

/// One number a broadcast goes to.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub phone: String,
    pub household: i64,
    pub community: i64,
    pub language: Language,
    pub opted_out: bool,
}

/// Every number of every household the broadcast targets.
pub async fn recipients(
    conn: &mut PgConnection,
    b: &Broadcast,
    default: Language,
) -> Result<Vec<Recipient>, sqlx::Error> {
    let rows = sqlx::query(
        "select ph.phone, h.id, h.community_id, h.language,
                exists (select 1 from sms_optouts o where o.phone = ph.phone) as opted_out
         from households h join phones ph on ph.household_id = h.id
         where h.community_id = any($1)
           and ($2::text is null or coalesce(h.language, $5) = $2)
           and (not $3 or exists (select 1 from phones x where x.household_id = h.id and x.phone not like '+992%'))
           and ($4::bigint is null or exists (select 1 from pledges pl where pl.household_id = h.id
                                              and pl.project_id = $4 and pl.status <> 'cancelled'))
         order by h.community_id, h.id, ph.phone",
    )
    .bind(&b.communities)
    .bind(&b.only_language)
    .bind(b.only_migrants)
    .bind(b.only_project)
    .bind(default.code())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Recipient {
            phone: r.get(0),
            household: r.get(1),
            community: r.get(2),
            language: r
                .get::<Option<String>, _>(3)
                .and_then(|l| l.parse().ok())
                .unwrap_or(default),
            opted_out: r.get(4),
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LanguagePreview {
    pub recipients: usize,
    pub skipped_opted_out: usize,
    /// gsm7 or ucs2
    pub encoding: String,
    pub segments_each: usize,
    pub segments_total: usize,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub languages: BTreeMap<String, LanguagePreview>,
    pub recipients: usize,
    pub skipped_opted_out: usize,
    pub segments_total: usize,
    #[serde(serialize_with = "crate::domain::money::two_dp")]
    pub estimated_cost: Decimal,
    pub cost_currency: String,
}

/// Who would get what, and what it would cost (opted-out numbers are counted apart).
pub fn preview(
    b: &Broadcast,
    recipients: &[Recipient],
    price_per_segment: Decimal,
    currency: Currency,
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
                encoding: match m.encoding {
                    Encoding::Gsm7 => "gsm7".into(),
                    Encoding::Ucs2 => "ucs2".into(),
                },
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
    }
}

/// Stores `b` as a new draft (its `id`, `status` and `send_at` are not read) and returns
/// its id, in the caller's transaction. The one place a broadcast is created: by the admin
/// API and by the coordinator phone menu's meeting notice.
pub async fn create(conn: &mut PgConnection, b: &Broadcast) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "insert into broadcasts (created_by, communities, only_migrants, only_project, only_language,
                                 text_tg, text_ru, text_en, vars, rsvp_hours, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning id",
    )
    .bind(&b.created_by)
    .bind(&b.communities)
    .bind(b.only_migrants)
    .bind(b.only_project)
    .bind(&b.only_language)
    .bind(b.texts.get("tg"))
    .bind(b.texts.get("ru"))
    .bind(b.texts.get("en"))
    .bind(Json(&b.vars))
    .bind(b.rsvp_hours)
    .bind(b.created_at)
    .fetch_one(conn)
    .await
}

/// When a broadcast goes out, and how many messages were queued now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sending {
    pub send_at: DateTime<Utc>,
    /// 0 when scheduled for later (or held by the quiet hours).
    pub queued: usize,
}

/// Sends a draft (or moves a scheduled broadcast) for `wanted`, moved out of the quiet
/// hours, in the caller's transaction: queued at once when that time has come (see
/// [`queue`]), else marked `scheduled` for the scheduler ([`run_due`]). The one place a
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
    let send_at = state.settings.quiet_hours.next_allowed(wanted.max(now));
    if send_at <= now {
        let queued = queue(
            conn,
            b,
            Some(send_at),
            state.config.default_language,
            state.config.sms_provider.name(),
            state.config.sms_max_segments,
            now,
        )
        .await?;
        return Ok(queued.map(|queued| Sending { send_at, queued }));
    }
    let scheduled = sqlx::query(
        "update broadcasts set status = 'scheduled', send_at = $2
          where id = $1 and status in ('draft', 'scheduled')",
    )
    .bind(b.id)
    .bind(send_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok((scheduled == 1).then_some(Sending { send_at, queued: 0 }))
}

/// Queues every message of a broadcast, inside the caller's transaction: first moves it
/// from draft or scheduled to queued in one conditional update (so of two callers at once
/// — a double click, the API and the scheduler — exactly one gets it; the other waits for
/// the first's transaction and finds it queued), then records the recipients and one outbox
/// row each (numbers that opted out are recorded as skipped, sent nothing). `send_at`, when
/// given, is recorded as the time it was sent for. Returns how many messages were queued,
/// or `None` if the broadcast was no longer a draft or scheduled.
pub async fn queue(
    conn: &mut PgConnection,
    b: &Broadcast,
    send_at: Option<DateTime<Utc>>,
    default: Language,
    provider: &str,
    max_segments: u32,
    now: DateTime<Utc>,
) -> Result<Option<usize>, sqlx::Error> {
    let taken = sqlx::query(
        "update broadcasts set status = 'queued', queued_at = $2, send_at = coalesce($3, send_at)
          where id = $1 and status in ('draft', 'scheduled')",
    )
    .bind(b.id)
    .bind(now)
    .bind(send_at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if taken == 0 {
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
            Some(
                outbox::enqueue_broadcast(
                    conn,
                    &NewMessage {
                        to: &phone,
                        body: &b.text(r.language),
                        kind: Kind::Broadcast,
                        inbound_id: None,
                    },
                    b.id,
                    provider,
                    max_segments,
                    now,
                )
                .await?,
            )
        };
        sqlx::query(
            "insert into broadcast_recipients (broadcast_id, phone, household_id, community_id, language, outbox_id, skipped, rsvp_until)
             values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict do nothing",
        )
        .bind(b.id)
        .bind(&r.phone)
        .bind(r.household)
        .bind(r.community)
        .bind(r.language.code())
        .bind(outbox_id)
        .bind(r.opted_out.then_some("opted_out"))
        .bind(until)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Some(queued))
}

/// Queues the broadcasts whose time has come, unless it is quiet hours now. Several server
/// instances can run this: each broadcast is taken by one (row locks, SKIP LOCKED).
pub async fn run_due(
    pool: &PgPool,
    now: DateTime<Utc>,
    quiet: &QuietHours,
    default: Language,
    provider: &str,
    max_segments: u32,
) -> Result<usize, sqlx::Error> {
    if quiet.contains(now) {
        return Ok(0);
    }
    let mut done = 0;
    loop {
        let mut tx = pool.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "select id from broadcasts where status = 'scheduled' and send_at <= $1
             order by send_at, id limit 1 for update skip locked",
        )
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            tx.commit().await?;
            return Ok(done);
        };
        if let Some(b) = load(&mut tx, id).await? {
            if let Some(n) = queue(&mut tx, &b, None, default, provider, max_segments, now).await? {
                tracing::info!(broadcast = id, messages = n, "broadcast queued");
            }
        }
        tx.commit().await?;
        done += 1;
    }
}

/// Cancels a broadcast: what still waits in the outbox is not sent. Returns how many
/// messages were stopped.
pub async fn cancel(pool: &PgPool, id: i64, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("update broadcasts set status = 'cancelled', cancelled_at = $2 where id = $1 and status <> 'cancelled'")
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let stopped = sqlx::query(
        "update outbox set status = 'cancelled', updated_at = $2
         where id in (select outbox_id from broadcast_recipients where broadcast_id = $1 and outbox_id is not null)
           and status = 'queued'",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
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

pub async fn progress(conn: &mut PgConnection, id: i64) -> Result<Progress, sqlx::Error> {
    let mut p = Progress::default();
    let rows = sqlx::query(
        "select coalesce(o.status, 'skipped'), count(*) from broadcast_recipients r
         left join outbox o on o.id = r.outbox_id where r.broadcast_id = $1 group by 1",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let status: String = r.get(0);
        let n: i64 = r.get(1);
        if status == "skipped" {
            p.skipped_opted_out = n;
        } else {
            p.messages.insert(status, n);
        }
    }
    let rows = sqlx::query(
        "select r.community_id, count(*) filter (where v.answer = 'yes'), count(*) filter (where v.answer = 'no')
         from rsvps v join broadcast_recipients r on r.broadcast_id = v.broadcast_id and r.phone = v.phone
         where v.broadcast_id = $1 group by r.community_id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        p.rsvps.insert(
            r.get::<i64, _>(0).to_string(),
            RsvpCount {
                yes: r.get(1),
                no: r.get(2),
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
    let broadcast: Option<i64> = sqlx::query_scalar(
        "select r.broadcast_id from broadcast_recipients r join broadcasts b on b.id = r.broadcast_id
         where r.phone = $1 and r.rsvp_until > $2 and r.skipped is null and b.status = 'queued'
           and not exists (select 1 from sms_conversations c where c.phone = r.phone and c.updated_at > b.queued_at)
         order by b.queued_at desc limit 1",
    )
    .bind(phone.as_str())
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(broadcast) = broadcast else {
        return Ok(None);
    };
    sqlx::query(
        "insert into rsvps (broadcast_id, phone, answer, answered_at, inbound_id) values ($1, $2, $3, $4, $5)
         on conflict (broadcast_id, phone) do update set answer = excluded.answer, answered_at = excluded.answered_at,
             inbound_id = excluded.inbound_id",
    )
    .bind(broadcast)
    .bind(phone.as_str())
    .bind(answer)
    .bind(now)
    .bind(inbound_id)
    .execute(conn)
    .await?;
    Ok(Some((broadcast, answer)))
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
