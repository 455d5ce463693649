//! Quiet hours: a daily window, in local time, in which no broadcast, notice or other
//! message that can wait is sent (a time rule, used by the outbox, broadcasts and settings).
//! The window is read in the recipient's own zone ([`QuietHours::contains_in`],
//! [`QuietHours::next_allowed_in`], with the zone from `domain::timezones`): 21:00–07:00
//! is Moscow's night for a number in Moscow, Dushanbe's for one at home.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A daily window, in local time, during which no message that can wait is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub tz: Tz,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("quiet hours are HH:MM-HH:MM, e.g. 21:00-07:00: {0:?}")]
pub struct BadQuietHours(pub String);

impl QuietHours {
    pub fn parse(window: &str, tz: Tz) -> Result<QuietHours, BadQuietHours> {
        let bad = || BadQuietHours(window.to_owned());
        let (a, b) = window.split_once('-').ok_or_else(bad)?;
        let t = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| bad());
        Ok(QuietHours {
            start: t(a)?,
            end: t(b)?,
            tz,
        })
    }

    /// Whether `at` falls in the window (which may cross midnight), in the programme's zone.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.contains_in(self.tz, at)
    }

    /// `at`, or the end of the quiet window it falls in, in the programme's zone.
    pub fn next_allowed(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.next_allowed_in(self.tz, at)
    }

    /// No window at all (`00:00-00:00`).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether `at` falls in the window as read in zone `tz`.
    pub fn contains_in(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&tz).time();
        if self.start <= self.end {
            local >= self.start && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }

    /// `at`, or the end of the quiet window it falls in, as read in zone `tz` (when the
    /// end falls in the gap of a clock change, an hour later by the wall clock).
    pub fn next_allowed_in(&self, tz: Tz, at: DateTime<Utc>) -> DateTime<Utc> {
        if !self.contains_in(tz, at) {
            return at;
        }
        let local = at.with_timezone(&tz);
        let mut day = local.date_naive();
        if self.start > self.end && local.time() >= self.start {
            day = day.succ_opt().unwrap_or(day);
        }
        let end = day.and_time(self.end);
        tz.from_local_datetime(&end)
            .earliest()
            // a spring-forward gap: the end's wall time does not exist that day
            .or_else(|| {
                tz.from_local_datetime(&(end + Duration::hours(1)))
                    .earliest()
            })
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(at + Duration::hours(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .expect("time")
    }

    #[test]
    fn quiet_hours_in_dushanbe_time() {
        let q = QuietHours::parse("21:00-07:00", chrono_tz::Asia::Dushanbe).expect("window");
        // Dushanbe is UTC+5
        assert!(!q.contains(at("2026-11-28T15:59:00Z"))); // 20:59 local
        assert!(q.contains(at("2026-11-28T16:00:00Z"))); // 21:00
        assert!(q.contains(at("2026-11-29T01:30:00Z"))); // 06:30
        assert!(!q.contains(at("2026-11-29T02:00:00Z"))); // 07:00
        assert_eq!(
            q.next_allowed(at("2026-11-28T17:00:00Z")),
            at("2026-11-29T02:00:00Z")
        );
        assert_eq!(
            q.next_allowed(at("2026-11-29T00:00:00Z")),
            at("2026-11-29T02:00:00Z")
        );
        assert_eq!(
            q.next_allowed(at("2026-11-28T10:00:00Z")),
            at("2026-11-28T10:00:00Z")
        );
        assert!(QuietHours::parse("9pm-7am", chrono_tz::Asia::Dushanbe).is_err());
    }

    /// One window, read in each recipient's zone: at 22:30 in Dushanbe (17:30 UTC) it is
    /// 20:30 in Moscow and Istanbul (not quiet) and 12:30 in New York.
    #[test]
    fn the_window_is_read_in_the_recipients_zone() {
        use chrono_tz::{America, Asia, Europe};
        let q = QuietHours::parse("21:00-07:00", Asia::Dushanbe).expect("window");
        let t = at("2026-11-28T17:30:00Z");
        assert!(q.contains_in(Asia::Dushanbe, t));
        assert!(!q.contains_in(Europe::Moscow, t));
        assert!(!q.contains_in(Europe::Istanbul, t));
        assert!(!q.contains_in(America::New_York, t));
        assert_eq!(q.next_allowed_in(Europe::Moscow, t), t);
        // at 23:30 in Dushanbe (18:30 UTC) Moscow is quiet too: 07:00 there is 04:00 UTC,
        // two hours after Dushanbe's 07:00
        let late = at("2026-11-28T18:30:00Z");
        assert_eq!(
            q.next_allowed_in(Asia::Dushanbe, late),
            at("2026-11-29T02:00:00Z")
        );
        assert_eq!(
            q.next_allowed_in(Europe::Moscow, late),
            at("2026-11-29T04:00:00Z")
        );
        assert_eq!(
            q.next_allowed_in(Europe::Istanbul, late),
            at("2026-11-29T04:00:00Z")
        );
        // Almaty is UTC+5 since March 2024, as Dushanbe
        assert_eq!(
            q.next_allowed_in(Asia::Almaty, late),
            at("2026-11-29T02:00:00Z")
        );
        // before midnight in the window: the end is the next morning, after it the same one
        let after_midnight = at("2026-11-28T22:30:00Z"); // 01:30 in Moscow on the 29th
        assert_eq!(
            q.next_allowed_in(Europe::Moscow, after_midnight),
            at("2026-11-29T04:00:00Z")
        );
        assert!(!QuietHours::parse("00:00-00:00", Asia::Dushanbe)
            .expect("none")
            .contains_in(Europe::Moscow, late));
    }

    /// Moscow and Istanbul keep one offset all year (UTC+3); New York and Berlin change
    /// theirs, and the window follows the local clock across the change.
    #[test]
    fn the_window_follows_daylight_saving_time() {
        use chrono_tz::{America, Asia, Europe};
        let q = QuietHours::parse("21:00-07:00", Asia::Dushanbe).expect("window");
        for (summer, winter) in [
            ("2026-07-01T02:00:00Z", "2026-12-01T02:00:00Z"),
            ("2026-07-01T04:30:00Z", "2026-12-01T04:30:00Z"),
        ] {
            for tz in [Europe::Moscow, Europe::Istanbul] {
                assert_eq!(
                    q.contains_in(tz, at(summer)),
                    q.contains_in(tz, at(winter)),
                    "{tz} has no DST"
                );
            }
        }
        // New York: 07:00 is 11:00 UTC in summer (EDT), 12:00 UTC in winter (EST)
        assert_eq!(
            q.next_allowed_in(America::New_York, at("2026-07-01T06:00:00Z")),
            at("2026-07-01T11:00:00Z")
        );
        assert_eq!(
            q.next_allowed_in(America::New_York, at("2026-12-01T06:00:00Z")),
            at("2026-12-01T12:00:00Z")
        );
        // the night the clocks go back in Berlin (25 October 2026, 03:00 CEST → 02:00 CET):
        // 07:00 that morning is 06:00 UTC
        assert_eq!(
            q.next_allowed_in(Europe::Berlin, at("2026-10-24T22:00:00Z")),
            at("2026-10-25T06:00:00Z")
        );
        // a window ending in the spring-forward gap (02:30 does not exist in New York on
        // 8 March 2026): an hour later by the wall clock, 03:30 EDT
        let gap = QuietHours::parse("22:00-02:30", Asia::Dushanbe).expect("window");
        assert_eq!(
            gap.next_allowed_in(America::New_York, at("2026-03-08T05:00:00Z")),
            at("2026-03-08T07:30:00Z")
        );
    }
}
