//! Consent changes pushed by an İYS integrator (the webhook): checked whole,
//! then applied at once in one publish.

use super::StoreHandle;
use crate::consent::{ConsentRecord, ConsentTime};
use crate::registry::api::PushChange;

/// Why a push was refused (HTTP 400; nothing applied).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Not JSON of the expected shape.
    #[error("body is not a consent change or a list of them: {0}")]
    Json(String),
    /// An empty list.
    #[error("body holds no changes")]
    Empty,
    /// A change with a bad field.
    #[error("change {index}: {message}")]
    Invalid {
        /// Position in the list.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// A change for a brand this gate does not hold.
    #[error("change {index}: brand {brand} is not followed by this gate")]
    UnknownBrand {
        /// Position in the list.
        index: usize,
        /// The brand.
        brand: String,
    },
}

/// What a push did.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PushResult {
    /// Changes in the body.
    pub received: usize,
    /// Changes that took effect (older ones are ignored).
    pub applied: u64,
    /// Snapshot version published.
    pub snapshot_version: u64,
}

/// Parse a webhook body: one change object or an array of them.
pub fn parse(body: &[u8]) -> Result<Vec<ConsentRecord>, PushError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| PushError::Json(e.to_string()))?;
    let items: Vec<serde_json::Value> = match value {
        serde_json::Value::Array(items) => items,
        one @ serde_json::Value::Object(_) => vec![one],
        _ => return Err(PushError::Json("expected a JSON object or array".into())),
    };
    if items.is_empty() {
        return Err(PushError::Empty);
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let change: PushChange =
                serde_json::from_value(item).map_err(|e| PushError::Invalid {
                    index,
                    message: e.to_string(),
                })?;
            change.to_record().map_err(|e| PushError::Invalid {
                index,
                message: e.to_string(),
            })
        })
        .collect()
}

/// Check and apply a webhook body.
pub async fn apply(store: &StoreHandle, body: &[u8]) -> Result<PushResult, PushError> {
    let mut records = parse(body)?;
    if let Some(s) = store.load() {
        if let Some((index, r)) = records
            .iter()
            .enumerate()
            .find(|(_, r)| s.brand(r.brand).is_none())
        {
            return Err(PushError::UnknownBrand {
                index,
                brand: r.brand.to_string(),
            });
        }
    }
    super::order_for_apply(&mut records);
    let received = records.len();
    let (applied, snapshot_version) = store
        .edit(|edit| {
            let before = edit.report().applied;
            edit.apply(&records, ConsentTime::now())
                .map_err(|e| PushError::Invalid {
                    index: 0,
                    message: e.to_string(),
                })?;
            Ok::<u64, PushError>(edit.report().applied - before)
        })
        .await?;
    store.applied.note_dealers(&records);
    Ok(PushResult {
        received,
        applied,
        snapshot_version,
    })
}
