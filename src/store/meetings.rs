//! Meetings: broadcasts that announce a meeting (`broadcasts.meeting_at`, `place`, `topics`),
//! a household's upcoming meetings and its answer (one per household and meeting), the
//! reminders of the day before, and attendance by household.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use sqlx::PgConnection;

use super::{BroadcastId, CommunityId, CoordinatorId, HouseholdId, OutboxId};

/// Longest place (characters), as the schema: "12.12 14:00 <place>" fits a USSD list line.
pub const MAX_PLACE: usize = 24;

/// What a meeting is about (`broadcasts.topics`, with its check constraint's names). The
/// outreach figures count "attended an information session on T" from these: `legal_stay`,
/// `trafficking`, `hiv` and `remittances` are the callback queue's topics too.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    sqlx::Type,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// A general meeting of the community.
    General,
    /// Family budgeting and remittances (a training).
    Remittances,
    /// Starting a business (a training).
    Business,
    /// Labour migration: legal stay, documents (an information session).
    LegalStay,
    /// Human trafficking (an information session).
    Trafficking,
    /// HIV/AIDS (an information session).
    Hiv,
}

text_values!(Topic {
    General => "general",
    Remittances => "remittances",
    Business => "business",
    LegalStay => "legal_stay",
    Trafficking => "trafficking",
    Hiv => "hiv",
});

/// A broadcast's meeting: when, where (one text for every language) and what about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Meeting {
    pub at: DateTime<Utc>,
    pub place: String,
    pub topics: Vec<Topic>,
}

impl Meeting {
    /// From the columns as stored (a broadcast without `meeting_at` is no meeting).
    pub fn from_columns(
        at: Option<DateTime<Utc>>,
        place: Option<String>,
        topics: Vec<String>,
    ) -> Option<Meeting> {
        Some(Meeting {
            at: at?,
            place: place.unwrap_or_default(),
            topics: topics.iter().filter_map(|t| t.parse().ok()).collect(),
        })
    }
}

/// An upcoming meeting as a household sees it, with its answer so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upcoming {
    pub broadcast: BroadcastId,
    pub at: DateTime<Utc>,
    pub place: String,
    pub topics: Vec<Topic>,
    /// `yes`, `no`, or none yet.
    pub answer: Option<String>,
}

/// The meetings of `phone`'s household's community still to come at `now` (sent, not
/// cancelled), soonest first, at most `limit`. A notice narrowed (to migrants, a project's
/// pledgers, a language) is listed only to the households it reached.
pub async fn upcoming(
    conn: &mut PgConnection,
    phone: &str,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Upcoming>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select b.id as "broadcast: BroadcastId", b.meeting_at as "at!", b.place as "place!", b.topics,
                  v.answer as "answer?"
           from phones ph
           join households h on h.id = ph.household_id
           join broadcasts b on h.community_id = any(b.communities)
           left join rsvps v on v.broadcast_id = b.id and v.household_id = h.id
           where ph.phone = $1 and b.status = 'queued' and b.meeting_at > $2
             and ((not b.only_migrants and b.only_project is null and b.only_language is null)
                  or exists (select 1 from broadcast_recipients r
                              where r.broadcast_id = b.id and r.household_id = h.id))
           order by b.meeting_at, b.id limit $3"#,
        phone,
        now,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Upcoming {
            broadcast: r.broadcast,
            at: r.at,
            place: r.place,
            topics: r.topics.iter().filter_map(|t| t.parse().ok()).collect(),
            answer: r.answer,
        })
        .collect())
}

/// Records the answer of `household` (by `phone`) to meeting `broadcast`: the household's
/// one answer, replaced by a later one.
#[allow(clippy::too_many_arguments)]
pub async fn record_rsvp(
    conn: &mut PgConnection,
    broadcast: BroadcastId,
    household: HouseholdId,
    phone: &str,
    answer: &str,
    now: DateTime<Utc>,
    inbound_id: Option<i64>,
    channel: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into rsvps (broadcast_id, household_id, phone, answer, answered_at, inbound_id, channel)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (broadcast_id, household_id) do update set phone = excluded.phone,
             answer = excluded.answer, answered_at = excluded.answered_at,
             inbound_id = excluded.inbound_id, channel = excluded.channel",
        broadcast as BroadcastId,
        household as HouseholdId,
        phone,
        answer,
        now,
        inbound_id,
        channel
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A reminder to send: the number of a household that said yes to a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueReminder {
    pub broadcast: BroadcastId,
    pub household: HouseholdId,
    pub phone: String,
    /// The number's language, else the household's (none: the service's default).
    pub language: Option<String>,
    pub at: DateTime<Utc>,
    pub place: String,
}

/// The reminders due at `now`: households whose answer to a meeting between `now` and
/// `until` is yes and that were not reminded yet, locked (SKIP LOCKED: several instances
/// share the work), at most `limit`. The reminder goes to the number that answered, while
/// it is still the household's.
pub async fn lock_due_reminders(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueReminder>, sqlx::Error> {
    sqlx::query_as!(
        DueReminder,
        r#"select v.broadcast_id as "broadcast: BroadcastId", v.household_id as "household: HouseholdId",
                  v.phone, coalesce(ph.language, h.language) as language,
                  b.meeting_at as "at!", b.place as "place!"
           from rsvps v
           join broadcasts b on b.id = v.broadcast_id
           join phones ph on ph.phone = v.phone and ph.household_id = v.household_id
           join households h on h.id = v.household_id
           where v.answer = 'yes' and b.status = 'queued'
             and b.meeting_at > $1 and b.meeting_at <= $2
             and not exists (select 1 from meeting_reminders m
                              where m.broadcast_id = v.broadcast_id and m.household_id = v.household_id)
           order by b.meeting_at, v.broadcast_id, v.household_id
           limit $3 for update of v skip locked"#,
        now,
        until,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Records that `household` was reminded of `broadcast` by message `outbox_id`; false when
/// it already was (the caller then rolls back its message).
pub async fn record_reminder(
    conn: &mut PgConnection,
    r: &DueReminder,
    outbox_id: OutboxId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "insert into meeting_reminders (broadcast_id, household_id, phone, outbox_id, created_at)
         values ($1, $2, $3, $4, $5) on conflict do nothing",
        r.broadcast as BroadcastId,
        r.household as HouseholdId,
        r.phone,
        outbox_id as OutboxId,
        now
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// A household of a meeting's communities, with its answer and whether it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterRow {
    pub household: HouseholdId,
    pub community: CommunityId,
    pub name: Option<String>,
    /// One of its numbers (the first), for staff to tell households apart.
    pub phone: Option<String>,
    /// The notice reached it (it is one of the recipients).
    pub invited: bool,
    pub answer: Option<String>,
    pub attended: Option<bool>,
}

/// The households of broadcast `id`'s communities, those that answered yes first, then by
/// name and id, at most `limit`.
pub async fn roster(
    conn: &mut PgConnection,
    id: BroadcastId,
    limit: i64,
) -> Result<Vec<RosterRow>, sqlx::Error> {
    sqlx::query_as!(
        RosterRow,
        r#"select h.id as "household: HouseholdId", h.community_id as "community: CommunityId", h.name,
                  (select min(p.phone) from phones p where p.household_id = h.id) as phone,
                  exists (select 1 from broadcast_recipients r
                           where r.broadcast_id = b.id and r.household_id = h.id and r.skipped is null) as "invited!",
                  v.answer as "answer?", a.attended as "attended?"
           from broadcasts b
           join households h on h.community_id = any(b.communities)
           left join rsvps v on v.broadcast_id = b.id and v.household_id = h.id
           left join meeting_attendance a on a.broadcast_id = b.id and a.household_id = h.id
           where b.id = $1
           order by (v.answer = 'yes') desc nulls last, h.name nulls last, h.id
           limit $2"#,
        id as BroadcastId,
        limit
    )
    .fetch_all(conn)
    .await
}

/// The community of `household`, if there is one.
pub async fn household_community(
    conn: &mut PgConnection,
    household: HouseholdId,
) -> Result<Option<CommunityId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select community_id as "community: CommunityId" from households where id = $1"#,
        household as HouseholdId
    )
    .fetch_optional(conn)
    .await
}

/// Records whether `household` came to meeting `broadcast`; returns what was recorded
/// before (none: nothing). Unchanged marks are not written again.
pub async fn record_attendance(
    conn: &mut PgConnection,
    broadcast: BroadcastId,
    household: HouseholdId,
    attended: bool,
    by: CoordinatorId,
    now: DateTime<Utc>,
) -> Result<Option<bool>, sqlx::Error> {
    let before = sqlx::query_scalar!(
        "select attended from meeting_attendance where broadcast_id = $1 and household_id = $2 for update",
        broadcast as BroadcastId,
        household as HouseholdId
    )
    .fetch_optional(&mut *conn)
    .await?;
    if before != Some(attended) {
        sqlx::query!(
            "insert into meeting_attendance (broadcast_id, household_id, attended, recorded_by, recorded_at)
             values ($1, $2, $3, $4, $5)
             on conflict (broadcast_id, household_id) do update set attended = excluded.attended,
                 recorded_by = excluded.recorded_by, recorded_at = excluded.recorded_at",
            broadcast as BroadcastId,
            household as HouseholdId,
            attended,
            by as CoordinatorId,
            now
        )
        .execute(conn)
        .await?;
    }
    Ok(before)
}

/// A meeting's figures: households its notice reached, that said yes, that came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Counts {
    pub invited: i64,
    pub yes: i64,
    pub no: i64,
    pub came: i64,
}

pub async fn counts(conn: &mut PgConnection, id: BroadcastId) -> Result<Counts, sqlx::Error> {
    sqlx::query_as!(
        Counts,
        r#"select (select count(distinct household_id) from broadcast_recipients
                    where broadcast_id = $1 and skipped is null) as "invited!",
                  (select count(*) from rsvps where broadcast_id = $1 and answer = 'yes') as "yes!",
                  (select count(*) from rsvps where broadcast_id = $1 and answer = 'no') as "no!",
                  (select count(*) from meeting_attendance where broadcast_id = $1 and attended) as "came!""#,
        id as BroadcastId
    )
    .fetch_one(conn)
    .await
}
