//! The programme at a glance, as the actor may see it: per community and project the
//! target, pledged, received, matched, matched total and % of target; the same totals for
//! the scope, by currency (amounts in different currencies are never added); pledges per
//! week for the last [`WEEKS`] weeks; households by how they registered; messages sent this
//! week and how many were delivered.
//!
//! Scope is the actor's ([`Actor::scope`]): admins and counsellors all communities,
//! coordinators and officers their own. Counsellors see no money: their overview has
//! households and messages only. Weeks run Monday to Sunday in the programme's time zone
//! (`HASHAR_TIMEZONE`), counted from the caller's clock.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};
use sqlx::PgPool;

use super::{Actor, Role, ServiceResult};
use crate::store::{
    overview::{self as figures, Health, ProjectFigures},
    CommunityId, Localized,
};

/// How many weeks the pledges chart covers, this one included.
pub const WEEKS: usize = 12;

/// What the overview shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    /// The Monday this week started on.
    pub week: NaiveDate,
    /// The money figures; `None` for someone who sees no money (counsellors).
    pub money: Option<Money>,
    pub health: Health,
}

/// The money side of the overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// The communities with projects, each with its projects.
    pub communities: Vec<CommunityFigures>,
    /// The scope's totals, one per currency.
    pub totals: Vec<Totals>,
    /// Pledges per week, [`WEEKS`] of them, the oldest first.
    pub weeks: Vec<Week>,
}

/// A community's projects and totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommunityFigures {
    pub id: CommunityId,
    pub name: Localized,
    pub totals: Vec<Totals>,
    pub projects: Vec<ProjectFigures>,
}

/// Sums over projects of one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub currency: String,
    pub target: Decimal,
    pub pledged: Decimal,
    pub outstanding: Decimal,
    pub received: Decimal,
    pub matched: Decimal,
    pub matched_total: Decimal,
}

impl Totals {
    fn new(currency: &str) -> Totals {
        Totals {
            currency: currency.to_owned(),
            target: Decimal::ZERO,
            pledged: Decimal::ZERO,
            outstanding: Decimal::ZERO,
            received: Decimal::ZERO,
            matched: Decimal::ZERO,
            matched_total: Decimal::ZERO,
        }
    }

    fn add(&mut self, p: &ProjectFigures) {
        self.target += p.target;
        self.pledged += p.pledged;
        self.outstanding += p.outstanding;
        self.received += p.received;
        self.matched += p.matched;
        self.matched_total += p.matched_total;
    }

    /// The matched total as a percentage of the target, to one decimal (as
    /// `project_totals.percent` rounds: half away from zero).
    pub fn percent(&self) -> Decimal {
        percent(self.matched_total, self.target)
    }
}

/// `part` as a percentage of `whole`, to one decimal; 0 when `whole` is 0.
pub fn percent(part: Decimal, whole: Decimal) -> Decimal {
    (Decimal::ONE_HUNDRED * part)
        .checked_div(whole)
        .unwrap_or(Decimal::ZERO)
        .round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero)
}

/// Sums `projects` by currency, in the order the currencies first appear.
pub fn totals<'a>(projects: impl IntoIterator<Item = &'a ProjectFigures>) -> Vec<Totals> {
    let mut out: Vec<Totals> = Vec::new();
    for p in projects {
        match out.iter_mut().find(|t| t.currency == p.currency) {
            Some(t) => t.add(p),
            None => {
                let mut t = Totals::new(&p.currency);
                t.add(p);
                out.push(t);
            }
        }
    }
    out
}

/// One week of pledges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Week {
    /// Its Monday.
    pub start: NaiveDate,
    pub pledges: i64,
    /// The amount pledged, per currency (none in a week without pledges).
    pub amounts: Vec<(String, Decimal)>,
}

/// Whether `actor` sees money figures (everyone but counsellors).
pub fn sees_money(actor: &Actor) -> bool {
    actor.role != Role::Counsellor
}

/// The Monday of the week `now` falls in, in `tz`.
pub fn week_of(now: DateTime<Utc>, tz: Tz) -> NaiveDate {
    let day = now.with_timezone(&tz).date_naive();
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// The instant `day` starts in `tz` (in a gap at midnight, the first instant after it).
fn start_of(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_time(chrono::NaiveTime::MIN);
    (0..=3)
        .find_map(|h| {
            tz.from_local_datetime(&(midnight + Duration::hours(h)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// The overview for `actor` at `now`: three queries on one connection; any failure fails
/// the whole (never partial totals).
pub async fn overview(
    pool: &PgPool,
    actor: &Actor,
    now: DateTime<Utc>,
    tz: Tz,
) -> ServiceResult<Overview> {
    let scope = actor.scope();
    let week = week_of(now, tz);
    let this_week = start_of(week, tz);
    let mut conn = pool.acquire().await?;
    let money = if sees_money(actor) {
        let projects = figures::projects(&mut *conn, scope).await?;
        let first = week - Duration::weeks(WEEKS as i64 - 1);
        let starts: Vec<NaiveDate> = (0..=WEEKS)
            .map(|i| first + Duration::weeks(i as i64))
            .collect();
        let bounds: Vec<DateTime<Utc>> = starts.iter().map(|d| start_of(*d, tz)).collect();
        let rows = figures::pledges_by_week(&mut *conn, scope, &bounds).await?;
        let weeks = starts[..WEEKS]
            .iter()
            .enumerate()
            .map(|(i, start)| {
                let of_week = rows.iter().filter(|r| r.week == i);
                Week {
                    start: *start,
                    pledges: of_week.clone().map(|r| r.pledges).sum(),
                    amounts: of_week.map(|r| (r.currency.clone(), r.amount)).collect(),
                }
            })
            .collect();
        Some(Money {
            totals: totals(&projects),
            communities: by_community(projects),
            weeks,
        })
    } else {
        None
    };
    let health = figures::health(&mut *conn, scope, this_week, now).await?;
    Ok(Overview {
        week,
        money,
        health,
    })
}

/// Projects (ordered by community) grouped into their communities, with each one's totals.
fn by_community(projects: Vec<ProjectFigures>) -> Vec<CommunityFigures> {
    let mut out: Vec<CommunityFigures> = Vec::new();
    for p in projects {
        match out.last_mut() {
            Some(c) if c.id == p.community => c.projects.push(p),
            _ => out.push(CommunityFigures {
                id: p.community,
                name: p.community_name.clone(),
                totals: Vec::new(),
                projects: vec![p],
            }),
        }
    }
    for c in &mut out {
        c.totals = totals(&c.projects);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn weeks_start_on_monday_in_the_programme_time_zone() {
        let tz: Tz = "Asia/Dushanbe".parse().expect("a zone");
        // Sunday 29 Nov 2026 20:00 UTC is Monday 30 Nov 01:00 in Dushanbe (UTC+5)
        let now = Utc
            .with_ymd_and_hms(2026, 11, 29, 20, 0, 0)
            .single()
            .expect("a time");
        let monday = NaiveDate::from_ymd_opt(2026, 11, 30).expect("a day");
        assert_eq!(week_of(now, tz), monday);
        assert_eq!(
            start_of(monday, tz),
            Utc.with_ymd_and_hms(2026, 11, 29, 19, 0, 0)
                .single()
                .expect("a time")
        );
        let saturday = Utc
            .with_ymd_and_hms(2026, 11, 28, 9, 0, 0)
            .single()
            .expect("a time");
        assert_eq!(
            week_of(saturday, tz),
            NaiveDate::from_ymd_opt(2026, 11, 23).expect("a day")
        );
    }

    #[test]
    fn percentages_round_half_away_from_zero_and_survive_a_zero_target() {
        assert_eq!(percent(dec!(1), dec!(8)), dec!(12.5));
        assert_eq!(percent(dec!(1), dec!(3)), dec!(33.3));
        assert_eq!(percent(dec!(2), dec!(3)), dec!(66.7));
        assert_eq!(percent(dec!(5), dec!(0)), dec!(0));
    }
}
