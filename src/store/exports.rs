//! The rows of the coordinators' CSV exports (`api::exports` writes them): pledges with
//! their history folded in, project totals, households with their numbers, broadcasts with
//! their delivery and RSVP counts.
//!
//! Each export is a stream (`fetch` of a `query_as!`): rows are read one by one as the
//! caller writes them, never collected. The caller runs them in its own read transaction,
//! after [`statement_timeout`].

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::stream::BoxStream;
use rust_decimal::Decimal;
use sqlx::PgConnection;

use super::{BroadcastId, CommunityId, HouseholdId, PledgeId, ProjectId};

/// Rows streamed from the database.
pub type Rows<'c, T> = BoxStream<'c, Result<T, sqlx::Error>>;

/// Sets the statement timeout of the caller's transaction (`set_config(…, true)`: it ends
/// with the transaction).
pub async fn statement_timeout(conn: &mut PgConnection, ms: u64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "select set_config('statement_timeout', $1, true)",
        format!("{ms}ms")
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// What the exports filtered by community only (totals, households, broadcasts) are
/// narrowed to.
#[derive(Debug, Clone, Default)]
pub struct CommunityFilter {
    /// The communities the caller may see (`None`: all).
    pub scope: Option<Vec<i64>>,
    pub community: Option<CommunityId>,
}

/// What the pledges export is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct PledgeFilter {
    /// The communities the caller may see (`None`: all).
    pub scope: Option<Vec<i64>>,
    pub community: Option<CommunityId>,
    pub project: Option<ProjectId>,
    /// First day (inclusive, UTC).
    pub from: Option<NaiveDate>,
    /// Last day (inclusive, UTC).
    pub to: Option<NaiveDate>,
}

/// A pledge with its history: what was received for it and when last, its cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PledgeRow {
    pub id: PledgeId,
    pub created_at: DateTime<Utc>,
    /// The community's code.
    pub community: String,
    /// The project's code.
    pub project: String,
    pub household: HouseholdId,
    pub phone: String,
    pub amount: Decimal,
    pub currency: String,
    pub said_amount: Option<Decimal>,
    pub said_currency: Option<String>,
    pub rate: Option<Decimal>,
    pub channel: String,
    pub status: String,
    /// Every receipt for it, reversals included.
    pub received: Decimal,
    pub last_received_on: Option<NaiveDate>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    /// The 7-digit code the household is told.
    pub code: String,
}

/// Pledges, oldest first.
pub fn pledges<'c>(conn: &'c mut PgConnection, f: &PledgeFilter) -> Rows<'c, PledgeRow> {
    sqlx::query_as!(
        PledgeRow,
        r#"select pl.id as "id: PledgeId", pl.created_at, c.code as community, p.code as project,
                  pl.household_id as "household: HouseholdId", pl.phone, pl.amount, pl.currency,
                  pl.said_amount, pl.said_currency, pl.rate, pl.channel, pl.status,
                  coalesce(r.received, 0)::numeric(14, 2) as "received!",
                  r.last_received_on as "last_received_on?", pc.cancelled_at as "cancelled_at?",
                  pc.reason as "cancel_reason?", pl.code
           from pledges pl
           join projects p on p.id = pl.project_id
           join communities c on c.id = p.community_id
           left join (select pledge_id, sum(amount) as received, max(received_on) as last_received_on
                      from receipts where pledge_id is not null group by pledge_id) r on r.pledge_id = pl.id
           left join pledge_cancellations pc on pc.pledge_id = pl.id
           where ($1::bigint[] is null or p.community_id = any($1))
             and ($2::bigint is null or p.community_id = $2)
             and ($3::bigint is null or pl.project_id = $3)
             and ($4::date is null or pl.created_at >= $4::date::timestamp at time zone 'UTC')
             and ($5::date is null or pl.created_at < ($5::date + 1)::timestamp at time zone 'UTC')
           order by pl.id"#,
        f.scope.as_deref(),
        f.community as Option<CommunityId>,
        f.project as Option<ProjectId>,
        f.from,
        f.to
    )
    .fetch(conn)
}

/// A project's totals, from the one totals view (`project_totals`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalsRow {
    pub project: ProjectId,
    /// The community's code.
    pub community: String,
    /// The project's code.
    pub code: String,
    pub name_tg: String,
    pub name_ru: String,
    pub name_en: String,
    pub status: String,
    pub currency: String,
    pub target: Decimal,
    pub match_ratio: Decimal,
    pub match_cap: Option<Decimal>,
    pub pledged: Decimal,
    pub outstanding: Decimal,
    pub received: Decimal,
    pub matched: Decimal,
    pub matched_total: Decimal,
    pub percent: Decimal,
    pub disbursed: Decimal,
    pub match_due: Decimal,
}

/// Every project's totals, by community and project code.
pub fn project_totals<'c>(conn: &'c mut PgConnection, f: &CommunityFilter) -> Rows<'c, TotalsRow> {
    // A view's columns are all nullable to PostgreSQL: which are not is said here.
    sqlx::query_as!(
        TotalsRow,
        r#"select t.project_id as "project!: ProjectId", c.code as community, t.code as "code!",
                  t.name_tg as "name_tg!", t.name_ru as "name_ru!", t.name_en as "name_en!",
                  t.status as "status!", t.currency as "currency!", t.target as "target!",
                  t.match_ratio as "match_ratio!", t.match_cap as "match_cap?",
                  t.pledged as "pledged!", t.outstanding as "outstanding!", t.received as "received!",
                  t.matched as "matched!", t.matched_total as "matched_total!", t.percent as "percent!",
                  t.disbursed as "disbursed!", t.match_due as "match_due!"
           from project_totals t
           join communities c on c.id = t.community_id
           where ($1::bigint[] is null or t.community_id = any($1))
             and ($2::bigint is null or t.community_id = $2)
           order by c.code, t.code"#,
        f.scope.as_deref(),
        f.community as Option<CommunityId>
    )
    .fetch(conn)
}

/// A household with its numbers and which of them texted STOP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdRow {
    pub id: HouseholdId,
    /// The community's code.
    pub community: String,
    pub name: Option<String>,
    pub language: Option<String>,
    pub join_code: Option<String>,
    /// Its numbers, space-separated, in order (empty when it has none).
    pub phones: String,
    /// Those of its numbers that opted out, likewise.
    pub opted_out_phones: String,
}

/// Households, by id.
pub fn households<'c>(conn: &'c mut PgConnection, f: &CommunityFilter) -> Rows<'c, HouseholdRow> {
    sqlx::query_as!(
        HouseholdRow,
        r#"select h.id as "id: HouseholdId", c.code as community, h.name, h.language, h.join_code,
                  coalesce((select string_agg(ph.phone, ' ' order by ph.phone)
                            from phones ph where ph.household_id = h.id), '') as "phones!",
                  coalesce((select string_agg(ph.phone, ' ' order by ph.phone)
                            from phones ph join sms_optouts o on o.phone = ph.phone
                            where ph.household_id = h.id), '') as "opted_out_phones!"
           from households h
           join communities c on c.id = h.community_id
           where ($1::bigint[] is null or h.community_id = any($1))
             and ($2::bigint is null or h.community_id = $2)
           order by h.id"#,
        f.scope.as_deref(),
        f.community as Option<CommunityId>
    )
    .fetch(conn)
}

/// A broadcast with its recipients, its messages by status and its RSVPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastRow {
    pub id: BroadcastId,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// The codes of its communities, space-separated.
    pub communities: Option<String>,
    pub status: String,
    pub send_at: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub recipients: i64,
    pub skipped_opted_out: i64,
    /// Queued or being sent.
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
    pub suppressed: i64,
    pub cancelled: i64,
    pub rsvp_yes: i64,
    pub rsvp_no: i64,
}

/// Broadcasts, by id. A coordinator's scope sees a broadcast when every community it went
/// to is in the scope.
pub fn broadcasts<'c>(conn: &'c mut PgConnection, f: &CommunityFilter) -> Rows<'c, BroadcastRow> {
    sqlx::query_as!(
        BroadcastRow,
        r#"select b.id as "id: BroadcastId", b.created_at, b.created_by,
                  (select string_agg(c.code, ' ' order by c.code)
                   from communities c where c.id = any(b.communities)) as "communities?",
                  b.status, b.send_at, b.queued_at,
                  count(r.phone) as "recipients!",
                  count(r.phone) filter (where r.skipped is not null) as "skipped_opted_out!",
                  count(o.id) filter (where o.status in ('queued', 'sending')) as "queued!",
                  count(o.id) filter (where o.status = 'sent') as "sent!",
                  count(o.id) filter (where o.status = 'delivered') as "delivered!",
                  count(o.id) filter (where o.status = 'failed') as "failed!",
                  count(o.id) filter (where o.status = 'suppressed') as "suppressed!",
                  count(o.id) filter (where o.status = 'cancelled') as "cancelled!",
                  (select count(*) from rsvps v where v.broadcast_id = b.id and v.answer = 'yes')
                      as "rsvp_yes!",
                  (select count(*) from rsvps v where v.broadcast_id = b.id and v.answer = 'no')
                      as "rsvp_no!"
           from broadcasts b
           left join broadcast_recipients r on r.broadcast_id = b.id
           left join outbox o on o.id = r.outbox_id
           where ($1::bigint[] is null or b.communities <@ $1)
             and ($2::bigint is null or $2 = any(b.communities))
           group by b.id
           order by b.id"#,
        f.scope.as_deref(),
        f.community as Option<CommunityId>
    )
    .fetch(conn)
}
