//! What the console's phone simulator reads back after each step it drives through the
//! real webhooks: the rows a number's step wrote (a household registered, a pledge, a
//! callback request, SMS queued), and the SMS to and from a number.
//!
//! A step is bracketed by [`marks`] (the highest id of each table before the step) and
//! [`activity`] (the number's rows above those ids after it): no clock is involved, and a
//! row written for the number between two steps (a receipt's SMS recorded on the Money
//! page) is not counted as a step's.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;

use crate::domain::Phone;

/// The highest id of each table a step may write to, before the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Marks {
    pub households: i64,
    pub pledges: i64,
    pub outbox: i64,
    pub callbacks: i64,
}

/// The highest ids now (one statement; each `max` is read from its primary key's index).
pub async fn marks(conn: &mut PgConnection) -> Result<Marks, sqlx::Error> {
    sqlx::query_as!(
        Marks,
        r#"select (select coalesce(max(id), 0) from households) as "households!",
                  (select coalesce(max(id), 0) from pledges) as "pledges!",
                  (select coalesce(max(id), 0) from outbox) as "outbox!",
                  (select coalesce(max(id), 0) from callback_requests) as "callbacks!""#
    )
    .fetch_one(conn)
    .await
}

/// One row a step wrote for the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// `household` (registered), `pledge`, `callback` or `sms` (queued to the number).
    pub kind: String,
    pub id: i64,
    /// A pledge's 7-digit code.
    pub code: Option<String>,
    pub amount: Option<Decimal>,
    pub currency: Option<String>,
    /// The household's community, or the pledge's project.
    pub name_tg: Option<String>,
    pub name_ru: Option<String>,
    pub name_en: Option<String>,
    /// How the household registered (ussd, sms), a callback's topic, an SMS's kind.
    pub detail: Option<String>,
    /// An SMS's outbox state.
    pub status: Option<String>,
    /// An SMS's text (none for a link code: the code is the owner's consent, never shown).
    pub body: Option<String>,
}

/// The rows written for `phone` above `marks`: households, pledges, callbacks, then SMS,
/// each oldest first; at most `limit` of each.
pub async fn activity(
    conn: &mut PgConnection,
    phone: &Phone,
    marks: &Marks,
    limit: i64,
) -> Result<Vec<Activity>, sqlx::Error> {
    sqlx::query_as!(
        Activity,
        r#"select e.kind as "kind!", e.id as "id!", e.code, e.amount, e.currency,
                  e.name_tg, e.name_ru, e.name_en, e.detail, e.status, e.body
           from (
               (select 1 as rank, 'household'::text as kind, h.id, null::text as code,
                       null::numeric as amount, null::text as currency,
                       c.name_tg, c.name_ru, c.name_en, h.registered_via as detail,
                       null::text as status, null::text as body
                from households h
                join phones p on p.household_id = h.id
                join communities c on c.id = h.community_id
                where p.phone = $1 and h.id > $2
                order by h.id limit $6)
               union all
               (select 2, 'pledge', pl.id, pl.code, pl.amount, pl.currency,
                       pr.name_tg, pr.name_ru, pr.name_en, pl.channel, pl.status, null
                from pledges pl join projects pr on pr.id = pl.project_id
                where pl.phone = $1 and pl.id > $3
                order by pl.id limit $6)
               union all
               (select 3, 'callback', cb.id, null, null, null, null, null, null, cb.topic,
                       cb.status, null
                from callback_requests cb
                where cb.phone = $1 and cb.id > $5
                order by cb.id limit $6)
               union all
               (select 4, 'sms', o.id, null, null, null, null, null, null, o.kind, o.status,
                       case when o.kind = 'link_code' then null else o.body end
                from outbox o
                where o.phone = $1 and o.id > $4
                order by o.id limit $6)
           ) e
           order by e.rank, e.id"#,
        phone.as_str(),
        marks.households,
        marks.pledges,
        marks.outbox,
        marks.callbacks,
        limit
    )
    .fetch_all(conn)
    .await
}

/// A text to or from the number, as the simulator's SMS tab shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadItem {
    /// `in` (the number texted us) or `out` (the outbox).
    pub direction: String,
    pub id: i64,
    pub at: DateTime<Utc>,
    /// None for a link code's SMS (never shown).
    pub body: Option<String>,
    /// reply, stop_confirmation, broadcast, receipt, link_code; `sms` for a text received.
    pub kind: String,
    /// The outbox state, or what was done with a text received (its outcome), if anything yet.
    pub status: Option<String>,
}

/// The newest `limit` texts to and from `phone`, newest first (at one instant, a reply
/// after the texts received: it answers them).
pub async fn thread(
    conn: &mut PgConnection,
    phone: &Phone,
    limit: i64,
) -> Result<Vec<ThreadItem>, sqlx::Error> {
    sqlx::query_as!(
        ThreadItem,
        r#"select t.direction as "direction!", t.id as "id!", t.at as "at!", t.body,
                  t.kind as "kind!", t.status
           from (
               (select 'out'::text as direction, o.id, 1 as rank, o.created_at as at,
                       case when o.kind = 'link_code' then null else o.body end as body,
                       o.kind, o.status
                from outbox o
                where o.phone = $1
                order by o.created_at desc, o.id desc
                limit $2)
               union all
               (select 'in'::text, m.id, 0, m.received_at, m.text, m.kind, m.outcome
                from inbound_messages m
                where m.sender_e164 = $1 and m.kind = 'sms'
                order by m.received_at desc, m.id desc
                limit $2)
           ) t
           order by t.at desc, t.rank desc, t.id desc
           limit $2"#,
        phone.as_str(),
        limit
    )
    .fetch_all(conn)
    .await
}
