//! The payload of one change-log entry: a brand's checked records and, for a
//! feed batch, the brand's sync state after them. JSON, versioned, records
//! as their ten CSV fields (the export's column order), so a reader in any
//! language can follow the stream.

use serde::{Deserialize, Serialize};

use super::log::EntryKind;
use crate::consent::{Brand, ConsentRecord, ConsentTime};
use crate::store::SyncState;

/// The entry format version this gate writes and reads.
pub const VERSION: u32 = 1;

/// A decoded entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Feed batch or push.
    pub kind: EntryKind,
    /// Whose records.
    pub brand: Brand,
    /// Checked records, in apply order.
    pub records: Vec<ConsentRecord>,
    /// The brand's sync state after a feed batch.
    pub sync: Option<SyncState>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    v: u32,
    kind: String,
    iys_code: u32,
    brand_code: u32,
    records: Vec<[String; 10]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sync: Option<WireSync>,
}

#[derive(Serialize, Deserialize)]
struct WireSync {
    cursor_hs: Option<String>,
    cursor_iys: Option<String>,
    synced_at: Option<i64>,
    changes_applied: u64,
}

fn fields(r: &ConsentRecord) -> [String; 10] {
    let access: Vec<String> = r.retailer_access.iter().map(u32::to_string).collect();
    [
        r.brand.iys_code.to_string(),
        r.brand.brand_code.to_string(),
        r.address.to_string(),
        r.recipient_type.to_string(),
        r.channel.to_string(),
        r.status.to_string(),
        r.consent_date.map(|d| d.to_string()).unwrap_or_default(),
        r.source.map(|s| s.as_str().to_string()).unwrap_or_default(),
        r.retailer_code.map(|c| c.to_string()).unwrap_or_default(),
        access.join(";"),
    ]
}

/// Why an entry cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// Not the JSON of an entry.
    #[error("not a change-log entry: {0}")]
    Json(String),
    /// Written by a newer gate.
    #[error("entry version {0} is not {VERSION}: upgrade this gate")]
    Version(u32),
    /// A bad field.
    #[error("{0}")]
    Field(String),
}

impl Entry {
    /// Encode.
    pub fn encode(&self) -> bytes::Bytes {
        let wire = Wire {
            v: VERSION,
            kind: self.kind.as_str().into(),
            iys_code: self.brand.iys_code,
            brand_code: self.brand.brand_code,
            records: self.records.iter().map(fields).collect(),
            sync: self.sync.as_ref().map(|s| WireSync {
                cursor_hs: s.cursor_hs.clone(),
                cursor_iys: s.cursor_iys.clone(),
                synced_at: s.synced_at.map(|t| t.unix()),
                changes_applied: s.changes_applied,
            }),
        };
        match serde_json::to_vec(&wire) {
            Ok(v) => v.into(),
            Err(e) => unreachable!("an entry always serialises: {e}"),
        }
    }

    /// Decode, checking every record.
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Json(e.to_string()))?;
        if wire.v != VERSION {
            return Err(EntryError::Version(wire.v));
        }
        let kind = match wire.kind.as_str() {
            "feed" => EntryKind::Feed,
            "push" => EntryKind::Push,
            other => return Err(EntryError::Field(format!("kind: unknown {other:?}"))),
        };
        let brand = Brand::new(wire.iys_code, wire.brand_code);
        let records = wire
            .records
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let r = ConsentRecord::from_csv_fields(f.iter().map(String::as_str))
                    .map_err(|e| EntryError::Field(format!("records[{i}]: {e}")))?;
                if r.brand != brand {
                    return Err(EntryError::Field(format!(
                        "records[{i}]: brand {} in an entry of brand {brand}",
                        r.brand
                    )));
                }
                Ok(r)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Entry {
            kind,
            brand,
            records,
            sync: wire.sync.map(|s| SyncState {
                cursor_hs: s.cursor_hs,
                cursor_iys: s.cursor_iys,
                synced_at: s.synced_at.map(ConsentTime),
                changes_applied: s.changes_applied,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_survives_the_wire_and_garbage_is_refused() {
        let brand = Brand::new(700001, 100001);
        let rows = [
            "700001,100001,+905300000001,BIREYSEL,MESAJ,ONAY,2024-05-01 10:00:00,HS_WEB,,",
            "700001,100001,demo@example.com,BIREYSEL,EPOSTA,RET,2024-06-01 10:00:00,IYS_WEB,,",
            "700001,100001,+905300000004,BIREYSEL,MESAJ,ONAY,2024-05-01 10:00:00,HS_FIZIKSEL_ORTAM,501,501;502",
            "700001,100001,+905300000003,TACIR,MESAJ,ONAY,,,,",
        ];
        let records: Vec<ConsentRecord> = rows
            .iter()
            .map(|r| ConsentRecord::from_csv_fields(r.split(',')).unwrap())
            .collect();
        let e = Entry {
            kind: EntryKind::Feed,
            brand,
            records,
            sync: Some(SyncState {
                cursor_hs: Some("c1".into()),
                cursor_iys: None,
                synced_at: Some(ConsentTime(1_800_000_000)),
                changes_applied: 7,
            }),
        };
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        assert!(matches!(Entry::decode(b"{}"), Err(EntryError::Json(_))));
        let wrong = String::from_utf8(e.encode().to_vec())
            .unwrap()
            .replace("\"v\":1", "\"v\":2");
        assert!(matches!(
            Entry::decode(wrong.as_bytes()),
            Err(EntryError::Version(2))
        ));
        let bad = String::from_utf8(e.encode().to_vec())
            .unwrap()
            .replace("MESAJ", "FAX");
        let err = Entry::decode(bad.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("records[0]"), "{err}");
    }
}
