//! The daily movement file, `GET .../consents/changes/{reportDate}/file`:
//! every change the registry recorded on one day (Turkey time), both sources.
//!
//! İYS serves the previous 7 days only and does not document the body's
//! format; the emulator answers [`MovementFile`] (JSON, the change feed's item
//! shape, ordered by `creationDate`). It also serves today's file as far as
//! the day has gone, so a test can compare a day that is still running; a
//! client should treat a refusal of today's file as "not yet available".

use super::{Emulator, Rejection};
use crate::consent::{Brand, ConsentTime};
use crate::registry::api::MovementFile;

/// Days back the registry serves movement files for.
pub const MOVEMENT_DAYS: i64 = 7;

const DAY: i64 = 86_400;

/// Parse a `reportDate` (`YYYY-MM-DD`): the start of that Turkey day.
pub fn parse_report_date(text: &str) -> Result<ConsentTime, String> {
    let shown: String = text.chars().take(40).collect();
    if text.len() != 10 {
        return Err(format!(
            "reportDate {shown:?} is not a date: use YYYY-MM-DD"
        ));
    }
    ConsentTime::parse(&format!("{text} 00:00:00"))
        .map_err(|_| format!("reportDate {shown:?} is not a date: use YYYY-MM-DD"))
}

impl Emulator {
    /// `GET .../consents/changes/{reportDate}/file`: the day's changes from
    /// both feeds, or HTTP 400 for a day outside the last 7 (and today).
    pub fn movement_file(
        &self,
        brand: Brand,
        report_date: &str,
        now: ConsentTime,
    ) -> Result<MovementFile, Rejection> {
        let start =
            parse_report_date(report_date).map_err(|m| Rejection::invalid("reportDate", m))?;
        let today = now.turkey_day_start();
        let oldest = ConsentTime(today.unix() - MOVEMENT_DAYS * DAY);
        if start < oldest || start > today {
            return Err(Rejection::invalid(
                "reportDate",
                format!(
                    "reportDate {report_date} is outside the files kept: use a day from {} to {}",
                    oldest.turkey_date(),
                    today.turkey_date()
                ),
            ));
        }
        let end = ConsentTime(start.unix() + DAY);
        let mut rows = match self.settled(brand, now) {
            None => Vec::new(),
            Some(cell) => {
                let st = super::read(&cell);
                let mut rows = st.consents.hs.created_between(start, end);
                rows.extend(st.consents.iys.created_between(start, end));
                rows
            }
        };
        rows.sort_by(|a, b| (a.0, &a.1.transaction_id).cmp(&(b.0, &b.1.transaction_id)));
        Ok(MovementFile {
            report_date: report_date.to_string(),
            list: rows.into_iter().map(|(_, c)| c).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turkey_days() {
        let t = ConsentTime::parse("2026-12-04 01:30:00").unwrap();
        assert_eq!(t.turkey_date(), "2026-12-04");
        assert_eq!(
            t.turkey_day_start(),
            ConsentTime::parse("2026-12-04 00:00:00").unwrap()
        );
        assert!(parse_report_date("2026-12-4").is_err());
        assert!(parse_report_date("2026-13-01").is_err());
        assert_eq!(
            parse_report_date("2026-12-04").unwrap(),
            t.turkey_day_start()
        );
    }

    #[test]
    fn the_file_lists_both_feeds_for_its_day_only() {
        use crate::registry::api::ConsentBody;
        let emu = Emulator::default();
        let brand = Brand::new(700001, 1);
        let now = ConsentTime::now();
        let body = |status: &str, source: &str, date: &str| ConsentBody {
            consent_date: date.into(),
            source: source.into(),
            recipient: "+905321112233".into(),
            recipient_type: "BIREYSEL".into(),
            status: status.into(),
            channel: "MESAJ".into(),
            retailer_code: None,
            retailer_access: None,
        };
        emu.add_consent(brand, &body("ONAY", "HS_WEB", "2024-01-01 10:00:00"), now)
            .unwrap();
        emu.add_consent(brand, &body("RET", "IYS_WEB", "2024-01-02 10:00:00"), now)
            .unwrap();
        let today = now.turkey_date();
        let file = emu.movement_file(brand, &today, now).unwrap();
        let got: Vec<(&str, &str)> = file
            .list
            .iter()
            .map(|c| (c.status.as_str(), c.source.as_str()))
            .collect();
        assert_eq!(got, vec![("ONAY", "HS_WEB"), ("RET", "IYS_WEB")]);
        let yesterday = ConsentTime(now.unix() - DAY).turkey_date();
        assert!(emu
            .movement_file(brand, &yesterday, now)
            .unwrap()
            .list
            .is_empty());
        let old = ConsentTime(now.unix() - 8 * DAY).turkey_date();
        let e = emu.movement_file(brand, &old, now).unwrap_err();
        assert_eq!(e.body.errors[0].location.as_deref(), Some("reportDate"));
        let tomorrow = ConsentTime(now.unix() + DAY).turkey_date();
        assert!(emu.movement_file(brand, &tomorrow, now).is_err());
    }
}
