//! Households and their numbers, the callbacks they ask for, and the locks that make
//! changes to a household (and the limits on linking numbers) happen one at a time.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;

use super::{CommunityId, CoordinatorId, HouseholdId, Localized, PledgeId};
use crate::domain::{Language, Phone};

/// The household a number belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneOwner {
    pub household: HouseholdId,
    pub community: CommunityId,
    /// The number's language: its own if it chose one, else the household's, if any.
    pub language: Option<Language>,
    /// The code that links another number to the household, if it has one.
    pub join_code: Option<String>,
}

/// The household `phone` belongs to, if any.
pub async fn owner_of_phone(
    conn: &mut PgConnection,
    phone: &Phone,
) -> Result<Option<PhoneOwner>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select h.id as "household: HouseholdId", h.community_id as "community: CommunityId",
                  coalesce(p.language, h.language) as language, h.join_code
           from phones p join households h on h.id = p.household_id
           where p.phone = $1"#,
        phone.as_str()
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| PhoneOwner {
        household: r.household,
        community: r.community,
        language: r.language.and_then(|l| l.parse().ok()),
        join_code: r.join_code,
    }))
}

/// Sets the language of `phone` itself (nothing when it belongs to no household): the
/// household's other numbers keep theirs, so a migrant's `LANG RU` does not change the
/// family's screens at home.
pub async fn set_language_of_phone(
    conn: &mut PgConnection,
    phone: &Phone,
    language: Language,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update phones set language = $2 where phone = $1",
        phone.as_str(),
        language.code()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Links `phone` to `household` as the caller's own number (USSD/SMS registration, `JOIN`),
/// stamped with the transaction's time (`now()`, the column's default) unlike
/// [`link_phone`]. A number that is taken fails with a unique violation.
pub async fn add_own_phone(
    conn: &mut PgConnection,
    phone: &Phone,
    household: HouseholdId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into phones (phone, household_id) values ($1, $2)",
        phone.as_str(),
        household as HouseholdId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A household the caller registers on `via` (`ussd` or `sms`) in `community`; `None` if
/// that community does not exist.
pub async fn register(
    conn: &mut PgConnection,
    community: CommunityId,
    language: Language,
    via: &str,
) -> Result<Option<HouseholdId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"insert into households (community_id, language, registered_via)
           select id, $2, $3 from communities where id = $1 returning id as "id: HouseholdId""#,
        community as CommunityId,
        language.code(),
        via
    )
    .fetch_optional(conn)
    .await
}

/// Links `phone` to `household`. A number belongs to at most one household: linking one
/// that is taken fails with a unique violation ([`super::Violation::is_unique`]).
/// `clock_timestamp()`, not `now()`: numbers linked in one transaction keep their order.
pub async fn link_phone(
    conn: &mut PgConnection,
    phone: &Phone,
    household: HouseholdId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into phones (phone, household_id, created_at) values ($1, $2, clock_timestamp())",
        phone.as_str(),
        household as HouseholdId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// How many numbers a household has.
pub async fn phone_count(
    conn: &mut PgConnection,
    household: HouseholdId,
) -> Result<i64, sqlx::Error> {
    let count = sqlx::query_scalar!(
        r#"select count(*) as "count!" from phones where household_id = $1"#,
        household as HouseholdId
    )
    .fetch_one(conn)
    .await?;
    Ok(count)
}

/// A household as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Household {
    pub id: HouseholdId,
    pub community: CommunityId,
    pub name: Option<String>,
    /// `tg`, `ru` or `en`, if the household chose one.
    pub language: Option<String>,
    /// coordinator, ussd, sms or demo
    pub registered_via: String,
    pub join_code: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The household `id`, if it exists. With `lock`, its row is locked for the rest of the
/// transaction (`for update`: changes to its numbers are serialised).
pub async fn household(
    conn: &mut PgConnection,
    id: HouseholdId,
    lock: bool,
) -> Result<Option<Household>, sqlx::Error> {
    if lock {
        sqlx::query_as!(
            Household,
            r#"select h.id as "id: HouseholdId", h.community_id as "community: CommunityId",
                      h.name, h.language, h.registered_via, h.join_code, h.created_at
               from households h where h.id = $1 for update"#,
            id as HouseholdId
        )
        .fetch_optional(conn)
        .await
    } else {
        sqlx::query_as!(
            Household,
            r#"select h.id as "id: HouseholdId", h.community_id as "community: CommunityId",
                      h.name, h.language, h.registered_via, h.join_code, h.created_at
               from households h where h.id = $1"#,
            id as HouseholdId
        )
        .fetch_optional(conn)
        .await
    }
}

/// What a search of households is narrowed to.
#[derive(Debug, Clone, Copy)]
pub struct HouseholdSearch<'a> {
    /// The communities the caller may see (`None`: all).
    pub scope: Option<&'a [i64]>,
    pub community: Option<CommunityId>,
    /// `ilike` pattern for the name (with `%`/`_` escaped); when `None`, no text filter.
    pub name_pattern: Option<&'a str>,
    /// The text as typed, compared with the join code.
    pub text: Option<&'a str>,
    /// `like` pattern of the digits typed, compared with the numbers.
    pub digits: Option<&'a str>,
    /// Only households with a larger id (keyset paging).
    pub after: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

/// The households a search finds, by id.
pub async fn search(
    conn: &mut PgConnection,
    s: &HouseholdSearch<'_>,
) -> Result<Vec<Household>, sqlx::Error> {
    sqlx::query_as!(
        Household,
        r#"select h.id as "id: HouseholdId", h.community_id as "community: CommunityId",
                  h.name, h.language, h.registered_via, h.join_code, h.created_at
           from households h
           where ($1::bigint[] is null or h.community_id = any($1))
             and ($2::bigint is null or h.community_id = $2)
             and ($3::text is null
                  or h.name ilike $3
                  or h.join_code = $4
                  or ($5::text is not null and exists (
                      select 1 from phones p where p.household_id = h.id and p.phone like $5)))
             and ($8::bigint is null or h.id > $8)
           order by h.id
           limit $6 offset $7"#,
        s.scope,
        s.community as Option<CommunityId>,
        s.name_pattern,
        s.text,
        s.digits,
        s.limit,
        s.offset,
        s.after
    )
    .fetch_all(conn)
    .await
}

/// A household's number, whether it texted STOP, and when it was linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdPhone {
    pub household: HouseholdId,
    pub phone: String,
    pub opted_out_at: Option<DateTime<Utc>>,
    pub linked_at: DateTime<Utc>,
    /// The zone recorded for the number (`phones.timezone`), if any.
    pub timezone: Option<String>,
}

/// The numbers of `households`, by household, in the order they were linked.
pub async fn phones_of(
    conn: &mut PgConnection,
    households: &[i64],
) -> Result<Vec<HouseholdPhone>, sqlx::Error> {
    sqlx::query_as!(
        HouseholdPhone,
        r#"select p.household_id as "household: HouseholdId", p.phone,
                  o.opted_out_at as "opted_out_at?", p.created_at as linked_at, p.timezone
           from phones p left join sms_optouts o on o.phone = p.phone
           where p.household_id = any($1)
           order by p.household_id, p.created_at, p.phone"#,
        households
    )
    .fetch_all(conn)
    .await
}

/// The zone recorded for `phone` (`Some(None)`: none; `None`: no such number).
pub async fn timezone_of(
    conn: &mut PgConnection,
    phone: &Phone,
) -> Result<Option<Option<String>>, sqlx::Error> {
    sqlx::query_scalar!(
        "select timezone from phones where phone = $1",
        phone.as_str()
    )
    .fetch_optional(conn)
    .await
}

/// Records the zone `phone`'s messages are timed in (`None`: its country's again).
pub async fn set_timezone(
    conn: &mut PgConnection,
    phone: &Phone,
    zone: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update phones set timezone = $2 where phone = $1",
        phone.as_str(),
        zone
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The numbers of one household (in no particular order).
pub async fn numbers_of(
    conn: &mut PgConnection,
    household: HouseholdId,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "select phone from phones where household_id = $1",
        household as HouseholdId
    )
    .fetch_all(conn)
    .await
}

/// Unlinks `phone` from `household` (nothing if it is not one of its numbers).
pub async fn unlink_phone(
    conn: &mut PgConnection,
    phone: &Phone,
    household: HouseholdId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from phones where phone = $1 and household_id = $2",
        phone.as_str(),
        household as HouseholdId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A household a coordinator registers; a community that does not exist fails with a
/// foreign-key violation ([`super::Violation::is_foreign_key`]).
pub async fn create(
    conn: &mut PgConnection,
    community: CommunityId,
    name: Option<&str>,
    language: Option<Language>,
) -> Result<HouseholdId, sqlx::Error> {
    sqlx::query_scalar!(
        r#"insert into households (community_id, name, language, registered_via)
           values ($1, $2, $3, 'coordinator') returning id as "id: HouseholdId""#,
        community as CommunityId,
        name,
        language.map(Language::code)
    )
    .fetch_one(conn)
    .await
}

/// What changes of a household: `Some` fields are set (`Some(None)` clears).
#[derive(Debug, Clone, Copy, Default)]
pub struct HouseholdChange<'a> {
    pub name: Option<Option<&'a str>>,
    pub language: Option<Option<Language>>,
    pub community: Option<CommunityId>,
}

/// Changes a household; a community that does not exist fails with a foreign-key
/// violation.
pub async fn update(
    conn: &mut PgConnection,
    id: HouseholdId,
    c: &HouseholdChange<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update households set
             name = case when $2 then $3 else name end,
             language = case when $4 then $5 else language end,
             community_id = coalesce($6, community_id)
         where id = $1",
        id as HouseholdId,
        c.name.is_some(),
        c.name.flatten(),
        c.language.is_some(),
        c.language.flatten().map(Language::code),
        c.community as Option<CommunityId>
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that `phone` opted out of SMS at `at` (kept as it was if it had already).
pub async fn opt_out(
    conn: &mut PgConnection,
    phone: &Phone,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into sms_optouts (phone, opted_out_at) values ($1, $2) on conflict do nothing",
        phone.as_str(),
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Clears `phone`'s opt-out: it gets SMS again. True when it had opted out.
pub async fn opt_in(conn: &mut PgConnection, phone: &Phone) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!("delete from sms_optouts where phone = $1", phone.as_str())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// When `phone` opted out of SMS, if it has.
pub async fn opted_out_at(
    conn: &mut PgConnection,
    phone: &Phone,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar!(
        "select opted_out_at from sms_optouts where phone = $1",
        phone.as_str()
    )
    .fetch_optional(conn)
    .await
}

/// Sets a household's language.
pub async fn set_language(
    conn: &mut PgConnection,
    household: HouseholdId,
    language: Language,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update households set language = $2 where id = $1",
        household as HouseholdId,
        language.code()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The household a join code (`JOIN 123456`) links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTarget {
    pub household: HouseholdId,
    pub community_name: Localized,
    /// The household's language, if it chose one.
    pub language: Option<Language>,
}

/// The household whose join code is `code`, if any.
pub async fn by_join_code(
    conn: &mut PgConnection,
    code: &str,
) -> Result<Option<JoinTarget>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select h.id as "household: HouseholdId", c.name_tg, c.name_ru, c.name_en, h.language
           from households h join communities c on c.id = h.community_id where h.join_code = $1"#,
        code
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| JoinTarget {
        household: r.household,
        community_name: Localized {
            tg: r.name_tg,
            ru: r.name_ru,
            en: r.name_en,
        },
        language: r.language.and_then(|l| l.parse().ok()),
    }))
}

/// Locks household `id`'s row until the caller's transaction ends (`for update`), so that
/// what one household does in concurrent sessions (the next tip, say) happens in turn.
pub async fn lock(conn: &mut PgConnection, id: HouseholdId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "select 1 as one from households where id = $1 for update",
        id as HouseholdId
    )
    .fetch_optional(conn)
    .await?;
    Ok(())
}

/// A request that a counsellor call `phone` back, once per `idempotency_key` (a repeated
/// request with the same key adds nothing). `channel` is `ussd` or `sms`.
pub async fn request_callback(
    conn: &mut PgConnection,
    phone: &Phone,
    household: Option<HouseholdId>,
    language: Language,
    channel: &str,
    idempotency_key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into callback_requests (phone, household_id, language, channel, idempotency_key)
         values ($1, $2, $3, $4, $5) on conflict (idempotency_key) do nothing",
        phone.as_str(),
        household as Option<HouseholdId>,
        language.code(),
        channel,
        idempotency_key
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The advisory lock that makes the link-code limits atomic: every request for a code takes
/// it for its transaction, so concurrent requests are counted one after the other. Codes
/// are asked for rarely (a number or two per household), so one lock for all costs nothing.
const LINK_CODES_LOCK: i64 = 0x6c696e6b; // "link"
/// The first key of the per-coordinator advisory lock (the second is the coordinator id)
/// that makes the count of "registered elsewhere" answers atomic.
const TAKEN_ANSWERS_LOCK: i32 = 0x74616b6e; // "takn"

/// Takes the link-code requests' lock until the caller's transaction ends.
pub async fn lock_link_codes(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "select from pg_advisory_xact_lock($1::bigint)",
        LINK_CODES_LOCK
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes `coordinator`'s lock on its count of "registered elsewhere" answers until the
/// caller's transaction ends.
pub async fn lock_taken_answers(
    conn: &mut PgConnection,
    coordinator: CoordinatorId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "select from pg_advisory_xact_lock($1::integer, ($2::bigint % 2147483647)::integer)",
        TAKEN_ANSWERS_LOCK,
        coordinator as CoordinatorId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What a household pledged (not cancelled) and what was received from it, in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdSums {
    pub household: HouseholdId,
    pub currency: String,
    pub pledged: Decimal,
    pub received: Decimal,
}

/// Pledged and received per household of `households` and currency (a page of a list: each
/// household's few pledges and receipts, read by index).
pub async fn sums(
    conn: &mut PgConnection,
    households: &[i64],
) -> Result<Vec<HouseholdSums>, sqlx::Error> {
    sqlx::query_as!(
        HouseholdSums,
        r#"select x.household_id as "household!: HouseholdId", x.currency as "currency!",
                  sum(x.pledged)::numeric(14, 2) as "pledged!", sum(x.received)::numeric(14, 2) as "received!"
           from (
               select pl.household_id, pl.currency, pl.amount as pledged, 0::numeric as received
               from pledges pl where pl.household_id = any($1) and pl.status <> 'cancelled'
               union all
               select pl.household_id, r.currency, 0, r.amount
               from pledges pl join receipts r on r.pledge_id = pl.id
               where pl.household_id = any($1)
               union all
               select r.household_id, r.currency, 0, r.amount
               from receipts r where r.household_id = any($1) and r.pledge_id is null
           ) x
           group by x.household_id, x.currency
           order by x.household_id, x.currency"#,
        households
    )
    .fetch_all(conn)
    .await
}

/// A pledge on a household's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdPledge {
    pub id: PledgeId,
    /// The 7-digit code read out to a coordinator.
    pub code: String,
    pub project_tg: String,
    pub project_ru: String,
    pub project_en: String,
    pub amount: Decimal,
    pub currency: String,
    /// What was received for it (reversals subtracted).
    pub received: Decimal,
    /// pledged, received or cancelled
    pub status: String,
    pub channel: String,
    pub created_at: DateTime<Utc>,
}

/// A household's newest pledges with what was received for each.
pub async fn pledges_of(
    conn: &mut PgConnection,
    household: HouseholdId,
    limit: i64,
) -> Result<Vec<HouseholdPledge>, sqlx::Error> {
    sqlx::query_as!(
        HouseholdPledge,
        r#"select pl.id as "id: PledgeId", pl.code, p.name_tg as project_tg, p.name_ru as project_ru,
                  p.name_en as project_en, pl.amount, pl.currency,
                  coalesce((select sum(r.amount) from receipts r where r.pledge_id = pl.id), 0)::numeric(14, 2)
                      as "received!",
                  pl.status, pl.channel, pl.created_at
           from pledges pl join projects p on p.id = pl.project_id
           where pl.household_id = $1
           order by pl.created_at desc, pl.id desc
           limit $2"#,
        household as HouseholdId,
        limit
    )
    .fetch_all(conn)
    .await
}

/// A message to or from one of a household's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineItem {
    /// `out` (the outbox) or `in` (a text received).
    pub direction: String,
    pub id: i64,
    /// The order key within one instant: `2 id` for out, `2 id + 1` for in.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub phone: String,
    /// The text; `None` for a link code's SMS (the code is the owner's consent, never shown).
    pub body: Option<String>,
    /// reply, stop_confirmation, broadcast, receipt, link_code; `sms` for a text received.
    pub kind: String,
    /// The outbox state (queued, sending, sent, delivered, failed, suppressed, cancelled);
    /// for a text received, what was done with it (its outcome), if anything yet.
    pub status: Option<String>,
    /// The provider's reason for a failure.
    pub reason: Option<String>,
    /// When the state was reached (sent, delivered or failed).
    pub status_at: Option<DateTime<Utc>>,
}

/// The messages to and from a household's numbers, newest first, before the cursor `(at,
/// seq)` if given, at most `limit`.
pub async fn timeline(
    conn: &mut PgConnection,
    household: HouseholdId,
    before: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> Result<Vec<TimelineItem>, sqlx::Error> {
    let (before_at, before_seq) = before.unzip();
    sqlx::query_as!(
        TimelineItem,
        r#"with numbers as (select phone from phones where household_id = $1)
           select t.direction as "direction!", t.id as "id!", t.seq as "seq!", t.at as "at!",
                  t.phone as "phone!", t.body, t.kind as "kind!", t.status, t.reason, t.status_at
           from (
               (select 'out'::text as direction, o.id, o.id * 2 as seq, o.created_at as at, o.phone,
                       case when o.kind = 'link_code' then null else o.body end as body,
                       o.kind, o.status, coalesce(o.last_error, o.provider_status) as reason,
                       coalesce(o.failed_at, o.delivered_at, o.sent_at) as status_at
                from outbox o
                where o.phone in (select phone from numbers)
                  and ($2::timestamptz is null or (o.created_at, o.id * 2) < ($2, $3))
                order by o.created_at desc, o.id desc
                limit $4)
               union all
               (select 'in'::text, m.id, m.id * 2 + 1, m.received_at, m.sender_e164, m.text,
                       m.kind, m.outcome, null::text, m.handled_at
                from inbound_messages m
                where m.sender_e164 in (select phone from numbers) and m.kind = 'sms'
                  and ($2::timestamptz is null or (m.received_at, m.id * 2 + 1) < ($2, $3))
                order by m.received_at desc, m.id desc
                limit $4)
           ) t
           order by t.at desc, t.seq desc
           limit $4"#,
        household as HouseholdId,
        before_at,
        before_seq,
        limit
    )
    .fetch_all(conn)
    .await
}

/// A callback request on a household's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRow {
    pub id: i64,
    pub phone: String,
    pub language: String,
    pub topic: String,
    /// open or done
    pub status: String,
    pub channel: String,
    pub created_at: DateTime<Utc>,
}

/// A household's newest callback requests.
pub async fn callbacks_of(
    conn: &mut PgConnection,
    household: HouseholdId,
    limit: i64,
) -> Result<Vec<CallbackRow>, sqlx::Error> {
    sqlx::query_as!(
        CallbackRow,
        "select id, phone, language, topic, status, channel, created_at
         from callback_requests where household_id = $1
         order by created_at desc, id desc
         limit $2",
        household as HouseholdId,
        limit
    )
    .fetch_all(conn)
    .await
}
