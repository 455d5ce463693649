//! Quiet hours: a daily window, in local time, in which no broadcast, notice or other
//! message that can wait is sent (a time rule, used by the outbox, broadcasts and settings).

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

    /// Whether `at` falls in the window (which may cross midnight).
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz).time();
        if self.start <= self.end {
            local >= self.start && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }

    /// `at`, or the end of the quiet window it falls in.
    pub fn next_allowed(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        if !self.contains(at) {
            return at;
        }
        let local = at.with_timezone(&self.tz);
        let mut day = local.date_naive();
        if self.start > self.end && local.time() >= self.start {
            day = day.succ_opt().unwrap_or(day);
        }
        self.tz
            .from_local_datetime(&day.and_time(self.end))
            .earliest()
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
}
