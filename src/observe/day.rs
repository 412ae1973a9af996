//! Calendar days in Turkey time (UTC+3 all year: Turkey has kept no daylight
//! saving time since 2016), the unit of audit rotation and daily reports.

use std::time::{Duration, SystemTime};

pub use crate::consent::time::TURKEY_OFFSET_SECS;

const DAY_SECS: i64 = 86_400;

/// A Turkey-time calendar day, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i64);

impl Day {
    /// The Turkey-time day `at` falls on.
    #[inline]
    pub fn of(at: SystemTime) -> Day {
        let secs = match at.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64) - 1,
        };
        Day((secs + TURKEY_OFFSET_SECS).div_euclid(DAY_SECS))
    }

    /// Today in Turkey.
    pub fn today() -> Day {
        Day::of(SystemTime::now())
    }

    /// `YYYY-MM-DD` (what [`Day::parse`] reads).
    pub fn parse(s: &str) -> Result<Day, String> {
        let bad = || format!("{s:?} is not a date (YYYY-MM-DD)");
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let t = humantime::parse_rfc3339(&format!("{s}T00:00:00Z")).map_err(|_| bad())?;
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| bad())?
            .as_secs() as i64;
        let day = Day(secs.div_euclid(DAY_SECS));
        // humantime accepts 2026-02-30 by rolling over; refuse what does not
        // print back the same.
        if day.to_string() != s {
            return Err(bad());
        }
        Ok(day)
    }

    /// The day `n` days later (earlier when negative).
    pub fn plus(self, n: i64) -> Day {
        Day(self.0 + n)
    }

    /// Midnight in Turkey that starts this day.
    pub fn start(self) -> SystemTime {
        let secs = self.0 * DAY_SECS - TURKEY_OFFSET_SECS;
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        }
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The UTC midnight of the same date prints the date.
        let utc = self.start() + Duration::from_secs(TURKEY_OFFSET_SECS as u64);
        let text = humantime::format_rfc3339_seconds(utc).to_string();
        f.write_str(&text[..10.min(text.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    #[test]
    fn a_turkey_day_starts_at_21_00_utc_the_day_before() {
        assert_eq!(
            Day::of(at("2026-12-03T20:59:59Z")).to_string(),
            "2026-12-03"
        );
        assert_eq!(
            Day::of(at("2026-12-03T21:00:00Z")).to_string(),
            "2026-12-04"
        );
        // Summer too: no daylight saving time.
        assert_eq!(
            Day::of(at("2026-07-01T21:00:00Z")).to_string(),
            "2026-07-02"
        );
        let d = Day::parse("2026-12-04").unwrap();
        assert_eq!(d.start(), at("2026-12-03T21:00:00Z"));
        assert_eq!(d.plus(-1).to_string(), "2026-12-03");
        assert_eq!(Day::parse("2028-02-29").unwrap().to_string(), "2028-02-29");
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-12-04",
            "2026/12/04",
            "",
            "2026-12-4x",
        ] {
            assert!(Day::parse(bad).is_err(), "{bad}");
        }
    }
}
