//! `consentDate`: `YYYY-MM-DD HH:mm:ss` in Turkey time (UTC+3, no daylight saving
//! since 2016), held as seconds since the Unix epoch.
//!
//! A hand-written fixed-width parser rather than a date crate: the format is rigid,
//! and bulk loads parse it a hundred million times.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Offset of Turkey time from UTC, in seconds.
pub const TURKEY_OFFSET_SECS: i64 = 3 * 3600;

/// The earliest date İYS accepts (`2015-05-01 00:00:00`, rule H155).
pub const EARLIEST: ConsentTime = ConsentTime(1_430_427_600);

/// A point in time, in seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ConsentTime(pub i64);

/// A date that is not `YYYY-MM-DD HH:mm:ss`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid date {0:?}: expected YYYY-MM-DD HH:mm:ss (Turkey time)")]
pub struct InvalidDate(pub String);

impl ConsentTime {
    /// Parse the registry's `YYYY-MM-DD HH:mm:ss` (Turkey time).
    pub fn parse(s: &str) -> Result<ConsentTime, InvalidDate> {
        let err = || InvalidDate(s.chars().take(40).collect());
        let b = s.as_bytes();
        if b.len() != 19
            || b[4] != b'-'
            || b[7] != b'-'
            || (b[10] != b' ' && b[10] != b'T')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(err());
        }
        let num = |from: usize, to: usize| -> Result<i64, InvalidDate> {
            b[from..to].iter().try_fold(0i64, |acc, &c| {
                if c.is_ascii_digit() {
                    Ok(acc * 10 + i64::from(c - b'0'))
                } else {
                    Err(err())
                }
            })
        };
        let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(err());
        }
        let days = days_from_civil(year, month, day);
        Ok(ConsentTime(
            days * 86_400 + hour * 3600 + minute * 60 + second - TURKEY_OFFSET_SECS,
        ))
    }

    /// The current time.
    pub fn now() -> ConsentTime {
        ConsentTime::at(SystemTime::now())
    }

    /// A wall-clock reading, to the second.
    pub fn at(t: SystemTime) -> ConsentTime {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        ConsentTime(secs)
    }

    /// Seconds since the Unix epoch.
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// The start (Turkey midnight) of the Turkey-time day this falls on:
    /// the registry's `reportDate` days, the reconciliation ledger's days.
    pub const fn turkey_day_start(self) -> ConsentTime {
        ConsentTime((self.0 + TURKEY_OFFSET_SECS).div_euclid(86_400) * 86_400 - TURKEY_OFFSET_SECS)
    }

    /// The Turkey-time date, `YYYY-MM-DD` (a `reportDate`).
    pub fn turkey_date(self) -> String {
        let text = self.to_string();
        text.get(..10).unwrap_or(&text).to_string()
    }
}

impl fmt::Display for ConsentTime {
    /// Formats as the registry does: `YYYY-MM-DD HH:mm:ss`, Turkey time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = self.0 + TURKEY_OFFSET_SECS;
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl serde::Serialize for ConsentTime {
    /// As the registry writes dates: `YYYY-MM-DD HH:mm:ss`, Turkey time.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_turkey_time() {
        let t = ConsentTime::parse("2018-02-10 09:30:00").unwrap();
        // 2018-02-10T06:30:00Z
        assert_eq!(t.unix(), 1_518_244_200);
        assert_eq!(t.to_string(), "2018-02-10 09:30:00");
        assert_eq!(ConsentTime::parse("2015-05-01 00:00:00").unwrap(), EARLIEST);
    }

    #[test]
    fn round_trips_many_dates() {
        for secs in (0..4_000_000_000i64).step_by(9_999_991) {
            let t = ConsentTime(secs);
            assert_eq!(ConsentTime::parse(&t.to_string()).unwrap(), t);
        }
    }

    #[test]
    fn rejects_bad_dates() {
        for bad in [
            "",
            "2018-02-10",
            "2018-02-30 09:30:00",
            "2019-02-29 00:00:00",
            "2018-13-01 00:00:00",
            "2018-02-10 24:00:00",
            "2018/02/10 09:30:00",
            "2018-02-10 09:30:0x",
            "２018-02-10 09:30:00",
        ] {
            assert!(ConsentTime::parse(bad).is_err(), "{bad}");
        }
        assert!(ConsentTime::parse("2020-02-29 00:00:00").is_ok());
    }
}
