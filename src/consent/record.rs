//! One consent record as the registry holds it, and its CSV row form.
//!
//! The export format is exactly
//! `iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess`;
//! `retailerAccess` is a `;`-separated list. `consentDate` and `source` may be
//! empty on `TACIR` rows, as in İYS.

use std::io::Read;

use super::address::{Address, AddressError};
use super::model::{Brand, Channel, InvalidValue, RecipientType, Source, Status};
use super::time::{ConsentTime, InvalidDate, EARLIEST};

/// The CSV header, in the only order accepted.
pub const CSV_HEADER: [&str; 10] = [
    "iysCode",
    "brandCode",
    "recipient",
    "recipientType",
    "type",
    "status",
    "consentDate",
    "source",
    "retailerCode",
    "retailerAccess",
];

/// A consent record: the state of one (brand, address, channel, recipient type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// Whose consent.
    pub brand: Brand,
    /// The normalised recipient address.
    pub address: Address,
    /// BIREYSEL or TACIR.
    pub recipient_type: RecipientType,
    /// MESAJ, ARAMA or EPOSTA.
    pub channel: Channel,
    /// ONAY or RET.
    pub status: Status,
    /// When consent was given or withdrawn (may be absent on TACIR records).
    pub consent_date: Option<ConsentTime>,
    /// Where it came from (may be absent on TACIR records).
    pub source: Option<Source>,
    /// The dealer who collected it.
    pub retailer_code: Option<u32>,
    /// Dealers allowed to use it.
    pub retailer_access: Vec<u32>,
}

/// Why a record (a CSV row, a JSON body) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Wrong number of fields.
    #[error("expected {expected} fields, found {found}")]
    FieldCount {
        /// Fields the format has.
        expected: usize,
        /// Fields the row had.
        found: usize,
    },
    /// A required field is empty.
    #[error("{0} is empty")]
    Missing(&'static str),
    /// A numeric field that is not an unsigned integer.
    #[error("{field} {value:?} is not a positive integer")]
    NotANumber {
        /// The field.
        field: &'static str,
        /// What was there (truncated).
        value: String,
    },
    /// An enumerated field with an unknown spelling.
    #[error(transparent)]
    Value(#[from] InvalidValue),
    /// The recipient does not normalise.
    #[error("recipient: {0}")]
    Address(#[from] AddressError),
    /// The date does not parse.
    #[error("consentDate: {0}")]
    Date(#[from] InvalidDate),
    /// A date before 2015-05-01 (İYS error H155).
    #[error("consentDate {0} is before 2015-05-01 (H155)")]
    TooEarly(String),
}

impl ConsentRecord {
    /// Build a record from the registry's fields (text as in CSV/JSON). Empty
    /// strings stand for absent optional fields.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        iys_code: &str,
        brand_code: &str,
        recipient: &str,
        recipient_type: &str,
        channel: &str,
        status: &str,
        consent_date: &str,
        source: &str,
        retailer_code: &str,
        retailer_access: &str,
    ) -> Result<ConsentRecord, RecordError> {
        let brand = Brand::new(
            parse_u32("iysCode", iys_code)?,
            parse_u32("brandCode", brand_code)?,
        );
        let recipient_type: RecipientType = required("recipientType", recipient_type)?.parse()?;
        let channel: Channel = required("type", channel)?.parse()?;
        let status: Status = required("status", status)?.parse()?;
        let address = Address::parse_for(channel, required("recipient", recipient)?)?;
        let consent_date = match consent_date.trim() {
            "" if recipient_type == RecipientType::Tacir => None,
            "" => return Err(RecordError::Missing("consentDate")),
            text => {
                let t = ConsentTime::parse(text)?;
                if t < EARLIEST {
                    return Err(RecordError::TooEarly(text.to_string()));
                }
                Some(t)
            }
        };
        let source = match source.trim() {
            "" if recipient_type == RecipientType::Tacir => None,
            "" => return Err(RecordError::Missing("source")),
            text => Some(text.parse()?),
        };
        let retailer_code = match retailer_code.trim() {
            "" => None,
            text => Some(parse_u32("retailerCode", text)?),
        };
        let retailer_access = parse_u32_list("retailerAccess", retailer_access)?;
        Ok(ConsentRecord {
            brand,
            address,
            recipient_type,
            channel,
            status,
            consent_date,
            source,
            retailer_code,
            retailer_access,
        })
    }

    /// Parse one CSV row's fields in `CSV_HEADER` order.
    pub fn from_csv_fields<'a, I>(fields: I) -> Result<ConsentRecord, RecordError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut f = [""; 10];
        let mut found = 0usize;
        for field in fields {
            if found < f.len() {
                f[found] = field;
            }
            found += 1;
        }
        if found != f.len() {
            return Err(RecordError::FieldCount {
                expected: f.len(),
                found,
            });
        }
        ConsentRecord::from_parts(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9])
    }

    /// The record as a CSV row (without the line end), in `CSV_HEADER` order.
    pub fn to_csv_row(&self) -> String {
        let access: Vec<String> = self.retailer_access.iter().map(u32::to_string).collect();
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.brand.iys_code,
            self.brand.brand_code,
            self.address,
            self.recipient_type,
            self.channel,
            self.status,
            self.consent_date.map(|d| d.to_string()).unwrap_or_default(),
            self.source.map(|s| s.as_str()).unwrap_or_default(),
            self.retailer_code
                .map(|c| c.to_string())
                .unwrap_or_default(),
            access.join(";"),
        )
    }
}

fn required<'a>(field: &'static str, value: &'a str) -> Result<&'a str, RecordError> {
    match value.trim() {
        "" => Err(RecordError::Missing(field)),
        v => Ok(v),
    }
}

pub(crate) fn parse_u32(field: &'static str, value: &str) -> Result<u32, RecordError> {
    let v = required(field, value)?;
    v.parse::<u32>().map_err(|_| RecordError::NotANumber {
        field,
        value: v.chars().take(40).collect(),
    })
}

fn parse_u32_list(field: &'static str, value: &str) -> Result<Vec<u32>, RecordError> {
    let mut out: Vec<u32> = Vec::new();
    for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        out.push(parse_u32(field, part)?);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A CSV input problem: the header, or one row (1-based line number).
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The header line is not `CSV_HEADER`.
    #[error("CSV header must be exactly `{}`, found `{found}`", CSV_HEADER.join(","))]
    Header {
        /// The header that was found.
        found: String,
    },
    /// A row that does not parse.
    #[error("line {line}: {error}")]
    Row {
        /// 1-based line number in the file.
        line: u64,
        /// What is wrong with it.
        error: RecordError,
    },
    /// The CSV layer itself (quoting, encoding, I/O).
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line number.
        line: u64,
        /// The CSV reader's description.
        message: String,
    },
}

/// Reads a consent export: checks the header, then yields records or row errors
/// with line numbers. The caller decides whether a row error aborts.
pub struct CsvReader<R: Read> {
    inner: csv::Reader<R>,
    row: csv::StringRecord,
    header_checked: bool,
}

impl<R: Read> CsvReader<R> {
    /// Wrap a reader positioned at the header line.
    pub fn new(reader: R) -> Self {
        let inner = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(reader);
        CsvReader {
            inner,
            row: csv::StringRecord::new(),
            header_checked: false,
        }
    }

    /// The next record, `None` at the end. Header errors and I/O errors are
    /// returned once and end the stream.
    pub fn next_record(&mut self) -> Option<Result<ConsentRecord, CsvError>> {
        loop {
            let line = self.inner.position().line() + 1;
            match self.inner.read_record(&mut self.row) {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(line);
                    return Some(Err(CsvError::Syntax {
                        line,
                        message: e.to_string(),
                    }));
                }
            }
            let line = self.row.position().map(|p| p.line()).unwrap_or(line);
            if !self.header_checked {
                self.header_checked = true;
                let found: Vec<&str> = self.row.iter().collect();
                let found = found.join(",");
                let found = found.trim_start_matches('\u{feff}');
                if found != CSV_HEADER.join(",") {
                    return Some(Err(CsvError::Header {
                        found: found.chars().take(200).collect(),
                    }));
                }
                continue;
            }
            if self.row.len() == 1 && self.row.get(0) == Some("") {
                continue; // blank line
            }
            return Some(
                ConsentRecord::from_csv_fields(self.row.iter())
                    .map_err(|error| CsvError::Row { line, error }),
            );
        }
    }
}

impl<R: Read> Iterator for CsvReader<R> {
    type Item = Result<ConsentRecord, CsvError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Result<ConsentRecord, CsvError>> {
        CsvReader::new(text.as_bytes()).collect()
    }

    const HEADER: &str = "iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n";

    #[test]
    fn reads_rows_and_names_bad_ones() {
        let text = format!(
            "{HEADER}\
             700001,1,05321234567,BIREYSEL,MESAJ,ONAY,2024-01-02 10:00:00,HS_WEB,,\n\
             700001,1,ali@example.com,BIREYSEL,EPOSTA,RET,2024-01-02 10:00:00,IYS_WEB,12,3;4\n\
             700001,1,+905321234567,TACIR,ARAMA,ONAY,,,,\n\
             700001,1,05321234567,BIREYSEL,SMS,ONAY,2024-01-02 10:00:00,HS_WEB,,\n\
             700001,1,05321234567,BIREYSEL,MESAJ,ONAY,,HS_WEB,,\n\
             700001,x,05321234567,BIREYSEL,MESAJ,ONAY,2024-01-02 10:00:00,HS_WEB,,\n\
             700001,1,05321234567,BIREYSEL,MESAJ,ONAY,2014-01-02 10:00:00,HS_WEB,,\n\
             700001,1,05321234567\n"
        );
        let got = rows(&text);
        assert_eq!(got.len(), 8);
        let second = got[1].as_ref().unwrap();
        assert_eq!(second.retailer_access, vec![3, 4]);
        assert_eq!(second.retailer_code, Some(12));
        assert_eq!(second.status, Status::Ret);
        let tacir = got[2].as_ref().unwrap();
        assert_eq!(tacir.consent_date, None);
        let msgs: Vec<String> = got[3..]
            .iter()
            .map(|r| r.as_ref().unwrap_err().to_string())
            .collect();
        assert!(
            msgs[0].starts_with("line 5:") && msgs[0].contains("SMS"),
            "{}",
            msgs[0]
        );
        assert!(msgs[1].starts_with("line 6:") && msgs[1].contains("consentDate is empty"));
        assert!(msgs[2].contains("brandCode"), "{}", msgs[2]);
        assert!(msgs[3].contains("H155"), "{}", msgs[3]);
        assert!(msgs[4].starts_with("line 9:") && msgs[4].contains("expected 10 fields"));
    }

    #[test]
    fn header_must_match() {
        let got = rows("recipient,iysCode\n1,2\n");
        assert!(matches!(got[0], Err(CsvError::Header { .. })));
    }

    #[test]
    fn row_round_trip() {
        let r = ConsentRecord::from_csv_fields(
            "700001,2,ali@example.com,BIREYSEL,EPOSTA,ONAY,2024-01-02 10:00:00,HS_WEB,7,1;2"
                .split(','),
        )
        .unwrap();
        let again = ConsentRecord::from_csv_fields(r.to_csv_row().split(',')).unwrap();
        assert_eq!(r, again);
    }
}
