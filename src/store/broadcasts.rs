//! Broadcasts (meeting notices): a broadcast as stored, its audience, its recipients and
//! their messages' progress, the RSVPs, and who may send one from the phone menu.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef},
    types::Json,
    PgConnection, Postgres,
};

use super::{
    meetings::Meeting, BroadcastId, CommunityId, CoordinatorId, HouseholdId, OutboxId, ProjectId,
    Texts,
};
use crate::domain::{Encoding, Language, Phone};

/// Where a broadcast stands (`broadcasts.status`): a `draft` is `scheduled` for a time or
/// `queued` at once (its messages are in the outbox); either can be `cancelled`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, serde::Deserialize,
)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum BroadcastStatus {
    Draft,
    Scheduled,
    Queued,
    Cancelled,
}

impl BroadcastStatus {
    pub const ALL: [BroadcastStatus; 4] = [
        BroadcastStatus::Draft,
        BroadcastStatus::Scheduled,
        BroadcastStatus::Queued,
        BroadcastStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BroadcastStatus::Draft => "draft",
            BroadcastStatus::Scheduled => "scheduled",
            BroadcastStatus::Queued => "queued",
            BroadcastStatus::Cancelled => "cancelled",
        }
    }

    /// Not yet queued: it can still be sent (or moved), and it has a preview.
    pub fn is_pending(self) -> bool {
        matches!(self, BroadcastStatus::Draft | BroadcastStatus::Scheduled)
    }
}

impl std::fmt::Display for BroadcastStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a message's encoding is stored (`outbox.encoding`: `gsm7`, `ucs2`), the same strings
/// as its JSON (`domain::Encoding` serializes in lowercase). Written here, not derived in
/// `domain`, so that the domain does not depend on the database's crate.
fn encoding_name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Gsm7 => "gsm7",
        Encoding::Ucs2 => "ucs2",
    }
}

impl sqlx::Type<Postgres> for Encoding {
    fn type_info() -> PgTypeInfo {
        <&str as sqlx::Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as sqlx::Type<Postgres>>::compatible(ty)
    }
}

impl sqlx::Encode<'_, Postgres> for Encoding {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as sqlx::Encode<Postgres>>::encode(encoding_name(*self), buf)
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for Encoding {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match <&str as sqlx::Decode<Postgres>>::decode(value)? {
            "gsm7" => Ok(Encoding::Gsm7),
            "ucs2" => Ok(Encoding::Ucs2),
            other => Err(format!("unknown encoding {other:?}").into()),
        }
    }
}

/// What a broadcast is, as stored (and as the API shows it).
#[derive(Debug, Clone, Serialize)]
pub struct Broadcast {
    pub id: BroadcastId,
    pub communities: Vec<CommunityId>,
    pub only_migrants: bool,
    pub only_project: Option<ProjectId>,
    pub only_language: Option<String>,
    /// The text per language code (`tg`, `ru`, `en`), with its placeholders.
    pub texts: BTreeMap<String, String>,
    pub vars: Texts,
    pub status: BroadcastStatus,
    pub send_at: Option<DateTime<Utc>>,
    pub rsvp_hours: i32,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The meeting it announces, if it does.
    pub meeting: Option<Meeting>,
}

/// Broadcast `id`, if there is one.
pub async fn get(
    conn: &mut PgConnection,
    id: BroadcastId,
) -> Result<Option<Broadcast>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select id as "id: BroadcastId", communities as "communities: Vec<CommunityId>",
                  only_migrants, only_project as "only_project: ProjectId", only_language,
                  text_tg, text_ru, text_en, vars as "vars: Json<Texts>",
                  status as "status: BroadcastStatus", send_at, rsvp_hours, created_by, created_at,
                  meeting_at, place, topics
           from broadcasts where id = $1"#,
        id as BroadcastId
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Broadcast {
        id: r.id,
        communities: r.communities,
        only_migrants: r.only_migrants,
        only_project: r.only_project,
        only_language: r.only_language,
        texts: BTreeMap::from([
            ("tg".to_owned(), r.text_tg),
            ("ru".to_owned(), r.text_ru),
            ("en".to_owned(), r.text_en),
        ]),
        vars: r.vars.0,
        status: r.status,
        send_at: r.send_at,
        rsvp_hours: r.rsvp_hours,
        created_by: r.created_by,
        created_at: r.created_at,
        meeting: Meeting::from_columns(r.meeting_at, r.place, r.topics),
    }))
}

/// Stores `b` as a new draft (its `id`, `status` and `send_at` are not read) and returns
/// its id. An unknown community or project is a foreign-key violation (`super::Violation`).
pub async fn create(conn: &mut PgConnection, b: &Broadcast) -> Result<BroadcastId, sqlx::Error> {
    let topics: Vec<String> = b
        .meeting
        .iter()
        .flat_map(|m| m.topics.iter().map(|t| t.as_str().to_owned()))
        .collect();
    sqlx::query_scalar!(
        r#"insert into broadcasts (created_by, communities, only_migrants, only_project, only_language,
                                   text_tg, text_ru, text_en, vars, rsvp_hours, created_at,
                                   meeting_at, place, topics)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
           returning id as "id: BroadcastId""#,
        b.created_by,
        &b.communities as &[CommunityId],
        b.only_migrants,
        b.only_project as Option<ProjectId>,
        b.only_language,
        b.texts.get("tg"),
        b.texts.get("ru"),
        b.texts.get("en"),
        Json(&b.vars) as _,
        b.rsvp_hours,
        b.created_at,
        b.meeting.as_ref().map(|m| m.at),
        b.meeting.as_ref().map(|m| m.place.as_str()),
        &topics
    )
    .fetch_one(conn)
    .await
}

/// One number a broadcast goes to.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub phone: String,
    pub household: HouseholdId,
    pub community: CommunityId,
    pub language: Language,
    pub opted_out: bool,
    /// The zone the household's record names for this number (`phones.timezone`), if any.
    pub timezone: Option<String>,
}

impl Recipient {
    /// The zone this number's messages are timed in: the one recorded for it, else its
    /// country's, else `home` (the programme's; see `domain::timezones`).
    pub fn zone(&self, home: chrono_tz::Tz) -> chrono_tz::Tz {
        crate::domain::timezones::zone_of(&self.phone, self.timezone.as_deref(), home)
    }
}

/// Every number of every household the broadcast targets, households without a language
/// counted in `default`'s. One static statement: each filter is a parameter that is null
/// (or false) when not used.
pub async fn recipients(
    conn: &mut PgConnection,
    b: &Broadcast,
    default: Language,
) -> Result<Vec<Recipient>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select ph.phone, h.id as "household: HouseholdId", h.community_id as "community: CommunityId",
                  coalesce(ph.language, h.language) as language, ph.timezone,
                  exists (select 1 from sms_optouts o where o.phone = ph.phone) as "opted_out!"
           from households h join phones ph on ph.household_id = h.id
           where h.community_id = any($1)
             and ($2::text is null or coalesce(ph.language, h.language, $5) = $2)
             and (not $3 or exists (select 1 from phones x where x.household_id = h.id and x.phone not like '+992%'))
             and ($4::bigint is null or exists (select 1 from pledges pl where pl.household_id = h.id
                                                and pl.project_id = $4 and pl.status <> 'cancelled'))
           order by h.community_id, h.id, ph.phone"#,
        &b.communities as &[CommunityId],
        b.only_language,
        b.only_migrants,
        b.only_project as Option<ProjectId>,
        default.code()
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Recipient {
            phone: r.phone,
            household: r.household,
            community: r.community,
            language: r.language.and_then(|l| l.parse().ok()).unwrap_or(default),
            opted_out: r.opted_out,
            timezone: r.timezone,
        })
        .collect())
}

/// Moves a draft or scheduled broadcast to `scheduled` for `send_at`; false when it is
/// neither any more.
pub async fn set_scheduled(
    conn: &mut PgConnection,
    id: BroadcastId,
    send_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update broadcasts set status = 'scheduled', send_at = $2
          where id = $1 and status in ('draft', 'scheduled')",
        id as BroadcastId,
        send_at
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Moves a draft or scheduled broadcast to `queued` (at `now`, for `send_at` when given) in
/// one conditional update, so that of two callers at once exactly one gets it; false when
/// it is neither any more.
pub async fn set_queued(
    conn: &mut PgConnection,
    id: BroadcastId,
    now: DateTime<Utc>,
    send_at: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query!(
        "update broadcasts set status = 'queued', queued_at = $2, send_at = coalesce($3, send_at)
          where id = $1 and status in ('draft', 'scheduled')",
        id as BroadcastId,
        now,
        send_at
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(taken != 0)
}

/// Records one recipient of a broadcast: its message (`None` when skipped because the
/// number opted out) and until when an answer counts. A recipient already recorded stays.
pub async fn add_recipient(
    conn: &mut PgConnection,
    id: BroadcastId,
    r: &Recipient,
    outbox_id: Option<OutboxId>,
    rsvp_until: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into broadcast_recipients (broadcast_id, phone, household_id, community_id, language, outbox_id, skipped, rsvp_until)
         values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict do nothing",
        id as BroadcastId,
        r.phone,
        r.household as HouseholdId,
        r.community as CommunityId,
        r.language.code(),
        outbox_id as Option<OutboxId>,
        r.opted_out.then_some("opted_out"),
        rsvp_until
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The scheduled broadcast due first at `now`, locked until the caller's transaction ends;
/// broadcasts another transaction holds are skipped (so several schedulers share the work).
pub async fn lock_next_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Option<BroadcastId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select id as "id: BroadcastId" from broadcasts where status = 'scheduled' and send_at <= $1
           order by send_at, id limit 1 for update skip locked"#,
        now
    )
    .fetch_optional(conn)
    .await
}

/// Marks a broadcast cancelled (unless it already is) and cancels its messages still
/// queued in the outbox; returns how many were stopped. Two statements: run them in one
/// transaction.
pub async fn cancel(
    conn: &mut PgConnection,
    id: BroadcastId,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    sqlx::query!(
        "update broadcasts set status = 'cancelled', cancelled_at = $2 where id = $1 and status <> 'cancelled'",
        id as BroadcastId,
        now
    )
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query!(
        "update outbox set status = 'cancelled', updated_at = $2
         where id in (select outbox_id from broadcast_recipients where broadcast_id = $1 and outbox_id is not null)
           and status = 'queued'",
        id as BroadcastId,
        now
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// How many of a broadcast's recipients are at one outbox status (`skipped` for the
/// numbers skipped because they opted out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
}

pub async fn message_counts(
    conn: &mut PgConnection,
    id: BroadcastId,
) -> Result<Vec<StatusCount>, sqlx::Error> {
    sqlx::query_as!(
        StatusCount,
        r#"select coalesce(o.status, 'skipped') as "status!", count(*) as "count!"
           from broadcast_recipients r
           left join outbox o on o.id = r.outbox_id where r.broadcast_id = $1 group by 1"#,
        id as BroadcastId
    )
    .fetch_all(conn)
    .await
}

/// The RSVP answers to a broadcast from one community's recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommunityRsvps {
    pub community: CommunityId,
    pub yes: i64,
    pub no: i64,
}

pub async fn rsvp_counts(
    conn: &mut PgConnection,
    id: BroadcastId,
) -> Result<Vec<CommunityRsvps>, sqlx::Error> {
    sqlx::query_as!(
        CommunityRsvps,
        r#"select h.community_id as "community: CommunityId",
                  count(*) filter (where v.answer = 'yes') as "yes!",
                  count(*) filter (where v.answer = 'no') as "no!"
           from rsvps v join households h on h.id = v.household_id
           where v.broadcast_id = $1 group by h.community_id"#,
        id as BroadcastId
    )
    .fetch_all(conn)
    .await
}

/// The broadcast an answer from `phone` at `now` is for (with the household it was sent
/// to): the latest one queued to it whose answer window is open and that came after the
/// number's last SMS conversation step.
pub async fn rsvp_target(
    conn: &mut PgConnection,
    phone: &Phone,
    now: DateTime<Utc>,
) -> Result<Option<(BroadcastId, HouseholdId)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select r.broadcast_id as "broadcast: BroadcastId", r.household_id as "household: HouseholdId"
           from broadcast_recipients r join broadcasts b on b.id = r.broadcast_id
           where r.phone = $1 and r.rsvp_until > $2 and r.skipped is null and b.status = 'queued'
             and not exists (select 1 from sms_conversations c where c.phone = r.phone and c.updated_at > b.queued_at)
           order by b.queued_at desc limit 1"#,
        phone.as_str(),
        now
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.broadcast, r.household)))
}

/// One household's answer to a broadcast (by the number that gave it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rsvp {
    pub phone: String,
    pub community: CommunityId,
    pub language: String,
    pub answer: String,
    pub answered_at: DateTime<Utc>,
}

/// The answers to a broadcast (the latest per household), in the order they came.
pub async fn rsvps(conn: &mut PgConnection, id: BroadcastId) -> Result<Vec<Rsvp>, sqlx::Error> {
    sqlx::query_as!(
        Rsvp,
        r#"select v.phone, h.community_id as "community: CommunityId",
                  coalesce(r.language, h.language, '') as "language!", v.answer, v.answered_at
           from rsvps v join households h on h.id = v.household_id
           left join broadcast_recipients r on r.broadcast_id = v.broadcast_id and r.phone = v.phone
           where v.broadcast_id = $1 order by v.answered_at, v.phone"#,
        id as BroadcastId
    )
    .fetch_all(conn)
    .await
}

/// A broadcast as the console's list shows it: what it is, where it stands and its
/// answers so far.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: BroadcastId,
    pub communities: Vec<CommunityId>,
    pub status: BroadcastStatus,
    pub text_tg: String,
    pub text_ru: String,
    pub text_en: String,
    pub send_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
    /// Messages queued for it (recipients who opted out have none).
    pub messages: i64,
    /// Of those, still waiting or being sent (`queued`, `sending`).
    pub pending: i64,
    pub yes: i64,
    pub no: i64,
}

/// The latest `limit` broadcasts whose communities are all in `scope` (`None`: all),
/// newest first, with their message and answer counts (per broadcast, through the
/// `(broadcast_id, …)` indexes of the outbox, recipients and answers).
pub async fn list(
    conn: &mut PgConnection,
    scope: Option<&[i64]>,
    limit: i64,
) -> Result<Vec<Listed>, sqlx::Error> {
    sqlx::query_as!(
        Listed,
        r#"select b.id as "id: BroadcastId", b.communities as "communities: Vec<CommunityId>",
                  b.status as "status: BroadcastStatus", b.text_tg, b.text_ru, b.text_en,
                  b.send_at, b.created_at, b.queued_at,
                  (select count(*) from outbox o where o.broadcast_id = b.id) as "messages!",
                  (select count(*) from outbox o where o.broadcast_id = b.id
                      and o.status in ('queued', 'sending')) as "pending!",
                  (select count(*) from rsvps v where v.broadcast_id = b.id and v.answer = 'yes') as "yes!",
                  (select count(*) from rsvps v where v.broadcast_id = b.id and v.answer = 'no') as "no!"
           from broadcasts b
           where $1::bigint[] is null or b.communities <@ $1
           order by b.created_at desc, b.id desc limit $2"#,
        scope,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Why a broadcast's messages failed: each reason (the provider's last error, else its
/// status) with how many, the most common first, at most `limit`.
pub async fn failure_reasons(
    conn: &mut PgConnection,
    id: BroadcastId,
    limit: i64,
) -> Result<Vec<StatusCount>, sqlx::Error> {
    sqlx::query_as!(
        StatusCount,
        r#"select coalesce(o.last_error, o.provider_status, '') as "status!", count(*) as "count!"
           from outbox o where o.broadcast_id = $1 and o.status = 'failed'
           group by 1 order by 2 desc, 1 limit $2"#,
        id as BroadcastId,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Whether `coordinator` may send a meeting notice to `community`: an admin anywhere,
/// anyone else in their own communities.
pub async fn may_notify(
    conn: &mut PgConnection,
    coordinator: CoordinatorId,
    community: CommunityId,
    admin: bool,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select $3 or exists (select 1 from coordinator_communities
                                 where coordinator_id = $1 and community_id = $2) as "allowed!""#,
        coordinator as CoordinatorId,
        community as CommunityId,
        admin
    )
    .fetch_one(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_stored_and_shown_as_the_schema_spells_them() {
        for s in BroadcastStatus::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(s.as_str().into()));
            assert_eq!(s.to_string(), s.as_str());
        }
        let schema = include_str!("../../migrations/20261128000009_broadcasts.sql");
        assert!(schema.contains("check (status in ('draft', 'scheduled', 'queued', 'cancelled'))"));
    }

    #[test]
    fn encodings_are_stored_as_they_are_shown() {
        for e in [Encoding::Gsm7, Encoding::Ucs2] {
            assert_eq!(serde_json::to_value(e).ok(), Some(encoding_name(e).into()));
        }
        let schema = include_str!("../../migrations/20261128000004_sms.sql");
        assert!(schema.contains("check (encoding in ('gsm7', 'ucs2'))"));
    }
}
