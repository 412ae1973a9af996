//! The İYS REST API's JSON bodies, shared by the client and the emulator.
//! Field names follow the registry exactly (camelCase); enumerations travel as
//! text and are checked when turned into a [`ConsentRecord`].

use serde::{Deserialize, Serialize};

use crate::consent::{Brand, ConsentRecord, RecordError};

/// `POST /oauth2/token` body (password or refresh grant).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRequest {
    /// `password` or `refresh_token`.
    pub grant_type: String,
    /// For the password grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// For the password grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// For the refresh grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// `POST /oauth2/token` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenResponse {
    /// Bearer token for API calls.
    pub access_token: String,
    /// Token for the refresh grant.
    pub refresh_token: String,
    /// Seconds the access token lives (7200 in İYS).
    pub expires_in: u64,
    /// Seconds the refresh token lives (14400 in İYS).
    pub refresh_expires_in: u64,
    /// `bearer`.
    pub token_type: String,
}

/// A consent as posted to `.../consents` (and one item of a bulk request).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConsentBody {
    /// `YYYY-MM-DD HH:mm:ss`, Turkey time.
    #[serde(default)]
    pub consent_date: String,
    /// `HS_*` or `IYS_*`.
    #[serde(default)]
    pub source: String,
    /// Phone or e-mail.
    pub recipient: String,
    /// `BIREYSEL` or `TACIR`.
    pub recipient_type: String,
    /// `ONAY` or `RET`.
    pub status: String,
    /// `MESAJ`, `ARAMA` or `EPOSTA`.
    #[serde(rename = "type")]
    pub channel: String,
    /// Dealer who collected the consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_code: Option<u32>,
    /// Dealers allowed to use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_access: Option<Vec<u32>>,
}

impl ConsentBody {
    /// Check every field and build the record for `brand`.
    pub fn to_record(&self, brand: Brand) -> Result<ConsentRecord, RecordError> {
        record_from_api(
            brand,
            &self.recipient,
            &self.recipient_type,
            &self.channel,
            &self.status,
            &self.consent_date,
            &self.source,
            self.retailer_code,
            self.retailer_access.as_deref(),
        )
    }

    /// The body for a record (the inverse of `to_record`).
    pub fn from_record(r: &ConsentRecord) -> ConsentBody {
        ConsentBody {
            consent_date: r.consent_date.map(|d| d.to_string()).unwrap_or_default(),
            source: r.source.map(|s| s.as_str().to_string()).unwrap_or_default(),
            recipient: r.address.to_string(),
            recipient_type: r.recipient_type.as_str().to_string(),
            status: r.status.as_str().to_string(),
            channel: r.channel.as_str().to_string(),
            retailer_code: r.retailer_code,
            retailer_access: (!r.retailer_access.is_empty()).then(|| r.retailer_access.clone()),
        }
    }
}

/// Answer to a single consent add.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TransactionResponse {
    /// Registry transaction id.
    pub transaction_id: String,
    /// When the registry recorded it (`YYYY-MM-DD HH:mm:ss`).
    pub creation_date: String,
}

/// Answer to a bulk (asynchronous) consent request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BulkResponse {
    /// Id to poll the result with.
    pub request_id: String,
    /// One id per item, in request order.
    pub sub_requests: Vec<String>,
}

/// `GET .../consents/request/{requestId}` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BulkResult {
    /// The request.
    pub request_id: String,
    /// One entry per item, in request order.
    pub list: Vec<BulkItemResult>,
}

/// One item of a bulk result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BulkItemResult {
    /// The item's sub-request id.
    pub sub_request_id: String,
    /// `success`, `failure` or `enqueue`.
    pub status: String,
    /// The recipient of the item.
    pub recipient: String,
    /// Set on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// Set on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

/// `POST .../consents/status` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StatusQuery {
    /// Phone or e-mail.
    pub recipient: String,
    /// `BIREYSEL` or `TACIR`.
    pub recipient_type: String,
    /// Channel.
    #[serde(rename = "type")]
    pub channel: String,
}

/// `POST .../consents/status` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    /// Recipient as stored (normalised).
    pub recipient: String,
    /// `BIREYSEL` or `TACIR`.
    pub recipient_type: String,
    /// Channel.
    #[serde(rename = "type")]
    pub channel: String,
    /// Source of the current record.
    pub source: String,
    /// `ONAY` or `RET`.
    pub status: String,
    /// Consent date of the current record.
    pub consent_date: String,
    /// When the registry stored it.
    pub creation_date: String,
    /// Collecting dealer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_code: Option<u32>,
    /// Dealers allowed to use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_access: Option<Vec<u32>>,
}

/// One page of `GET .../consents/changes`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangesPage {
    /// Cursor to pass as `after` next time (opaque).
    pub after: String,
    /// Changes in registry order (by `creationDate`).
    pub list: Vec<Change>,
}

/// One change in the feed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Consent date of the new state.
    #[serde(default)]
    pub consent_date: String,
    /// When the registry stored it.
    pub creation_date: String,
    /// `HS_*` or `IYS_*`.
    #[serde(default)]
    pub source: String,
    /// Phone or e-mail.
    pub recipient: String,
    /// `BIREYSEL` or `TACIR`.
    pub recipient_type: String,
    /// `ONAY` or `RET`.
    pub status: String,
    /// Channel.
    #[serde(rename = "type")]
    pub channel: String,
    /// Registry transaction id.
    #[serde(default)]
    pub transaction_id: String,
    /// Collecting dealer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_code: Option<u32>,
    /// Dealers allowed to use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_access: Option<Vec<u32>>,
}

impl Change {
    /// Check every field and build the record for `brand`.
    pub fn to_record(&self, brand: Brand) -> Result<ConsentRecord, RecordError> {
        record_from_api(
            brand,
            &self.recipient,
            &self.recipient_type,
            &self.channel,
            &self.status,
            &self.consent_date,
            &self.source,
            self.retailer_code,
            self.retailer_access.as_deref(),
        )
    }
}

/// A consent change pushed by an İYS integrator (webhook). Field names are
/// lower case, as integrators send them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushChange {
    /// Service provider code.
    pub iyscode: u32,
    /// Brand code.
    pub brandcode: u32,
    /// Phone or e-mail.
    pub recipient: String,
    /// Channel.
    #[serde(rename = "type")]
    pub channel: String,
    /// `HS_*` or `IYS_*`.
    #[serde(default)]
    pub source: String,
    /// `ONAY` or `RET`.
    pub status: String,
    /// Consent date.
    #[serde(default)]
    pub consentdate: String,
    /// `BIREYSEL` or `TACIR`.
    pub recipienttype: String,
    /// Collecting dealer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailercode: Option<u32>,
    /// Dealers allowed to use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retaileraccess: Option<Vec<u32>>,
}

impl PushChange {
    /// Check every field and build the record.
    pub fn to_record(&self) -> Result<ConsentRecord, RecordError> {
        record_from_api(
            Brand::new(self.iyscode, self.brandcode),
            &self.recipient,
            &self.recipienttype,
            &self.channel,
            &self.status,
            &self.consentdate,
            &self.source,
            self.retailercode,
            self.retaileraccess.as_deref(),
        )
    }
}

/// The registry's error body: `{"errors":[{"location","code","message"}]}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// One or more errors.
    pub errors: Vec<ApiError>,
}

/// One error of an [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    /// The field or part at fault, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Registry code, e.g. `H174`.
    pub code: String,
    /// Human text.
    pub message: String,
}

impl ErrorBody {
    /// A body with one error.
    pub fn one(code: &str, message: impl Into<String>, location: Option<&str>) -> ErrorBody {
        ErrorBody {
            errors: vec![ApiError {
                location: location.map(str::to_string),
                code: code.to_string(),
                message: message.into(),
            }],
        }
    }
}

/// Registry error codes the gate and emulator know.
pub mod codes {
    /// Per-second request limit (HTTP 429).
    pub const RATE_LIMIT: &str = "H124";
    /// Missing or invalid token (HTTP 401).
    pub const BAD_TOKEN: &str = "H351";
    /// Status unchanged.
    pub const UNCHANGED: &str = "H174";
    /// A first record cannot be RET.
    pub const FIRST_RET: &str = "H175";
    /// Date older than the stored record.
    pub const OLDER_DATE: &str = "H178";
    /// Date before 2015-05-01.
    pub const TOO_EARLY: &str = "H155";
    /// Any other field validation failure (emulator's own code).
    pub const INVALID: &str = "H000";
}

/// `GET .../consents/changes/{reportDate}/file`: the day's movement file.
///
/// İYS documents the path and that only the previous 7 days are served, not
/// the body's format. The emulator (and so the gate's client) uses JSON with
/// the change feed's item shape, both sources (HS and IYS) together, ordered
/// by `creationDate`; `reportDate` is a Turkey-time day.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MovementFile {
    /// The day, `YYYY-MM-DD` (Turkey time).
    pub report_date: String,
    /// Every change the registry recorded that day.
    pub list: Vec<Change>,
}

/// Body of the retailer-access calls: `POST .../consents/retailers/access`
/// (grant), `.../retailers/access/remove` (withdraw) and, without
/// `retailerAccess`, `.../retailers/access/list` (query).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RetailerAccessBody {
    /// Phone or e-mail.
    pub recipient: String,
    /// `BIREYSEL` or `TACIR`.
    pub recipient_type: String,
    /// Channel.
    #[serde(rename = "type")]
    pub channel: String,
    /// Dealers to grant or withdraw (absent on a list query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_access: Option<Vec<u32>>,
}

/// Body of `POST .../consents/retailers/access/remove/all`: withdraw every
/// dealer's access to the consents of these recipients.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RetailerAccessRemoveAll {
    /// Phones or e-mails.
    pub recipients: Vec<String>,
    /// `BIREYSEL` or `TACIR`.
    pub recipient_type: String,
    /// Channel.
    #[serde(rename = "type")]
    pub channel: String,
}

/// Paging of a retailer-access list answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// Index of the first item of this page.
    pub offset: u64,
    /// Items per page (İYS: 100).
    pub page_size: u64,
    /// Items over all pages.
    pub total_count: u64,
}

/// One dealer allowed to use a consent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RetailerAccessItem {
    /// The dealer's code.
    pub retailer_code: u32,
}

/// `POST .../consents/retailers/access/list?offset=N` answer: one page of the
/// dealers that may use a consent. İYS pages by 100; it documents
/// `pagination` and `list`, not the item's fields beyond `retailerCode`
/// (the emulator sends only that) nor the query parameter's name (the
/// emulator reads `offset`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RetailerAccessPage {
    /// Where this page sits.
    pub pagination: Pagination,
    /// The dealers on this page, by code.
    pub list: Vec<RetailerAccessItem>,
}

#[allow(clippy::too_many_arguments)]
fn record_from_api(
    brand: Brand,
    recipient: &str,
    recipient_type: &str,
    channel: &str,
    status: &str,
    consent_date: &str,
    source: &str,
    retailer_code: Option<u32>,
    retailer_access: Option<&[u32]>,
) -> Result<ConsentRecord, RecordError> {
    let mut record = ConsentRecord::from_parts(
        &brand.iys_code.to_string(),
        &brand.brand_code.to_string(),
        recipient,
        recipient_type,
        channel,
        status,
        consent_date,
        source,
        "",
        "",
    )?;
    record.retailer_code = retailer_code;
    let mut access = retailer_access.map(<[u32]>::to_vec).unwrap_or_default();
    access.sort_unstable();
    access.dedup();
    record.retailer_access = access;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_body_matches_registry_json() {
        let json = r#"{"consentDate":"2018-02-10 09:30:00","source":"HS_CAGRI_MERKEZI","recipient":"+905813334455","recipientType":"BIREYSEL","status":"ONAY","type":"ARAMA"}"#;
        let body: ConsentBody = serde_json::from_str(json).unwrap();
        let rec = body.to_record(Brand::new(1, 2)).unwrap();
        assert_eq!(rec.channel, crate::consent::Channel::Arama);
        assert_eq!(
            serde_json::to_string(&ConsentBody::from_record(&rec)).unwrap(),
            json
        );
    }

    #[test]
    fn push_change_requires_valid_fields() {
        let json = r#"{"iyscode":700001,"brandcode":1,"recipient":"05321234567","type":"MESAJ","source":"IYS_WEB","status":"RET","consentdate":"2024-01-02 10:00:00","recipienttype":"BIREYSEL"}"#;
        let p: PushChange = serde_json::from_str(json).unwrap();
        assert!(p.to_record().is_ok());
        let bad = json.replace("MESAJ", "FAX");
        let p: PushChange = serde_json::from_str(&bad).unwrap();
        assert!(p.to_record().unwrap_err().to_string().contains("FAX"));
    }
}
