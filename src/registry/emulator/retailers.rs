//! Dealer (retailer) access to a consent: `POST .../consents/retailers/access`
//! grants dealers, `.../retailers/access/remove` withdraws them,
//! `.../retailers/access/remove/all` withdraws every dealer from the consents
//! of a list of recipients (those the registry does not hold are skipped) and
//! `.../retailers/access/list` pages through them (100 a page).
//!
//! As in İYS, access changes are not consent changes: they leave the consent's
//! status, dates and transaction alone and add nothing to the change feed or
//! the movement file. Where İYS's documentation is silent the emulator
//! chooses, and says so here: a grant needs a stored ONAY (a RET or unknown
//! tuple is refused with HTTP 400 / 404, code `H000`, `location` naming the
//! field); a withdrawal of dealers that had no access succeeds and changes
//! nothing; both answer `{"transactionId","creationDate"}` (grant 200,
//! withdrawal 202 as İYS's asynchronous removal does); the list reads the
//! page start from the `offset` query parameter.

use super::store::TupleKey;
use super::{record_error, Emulator, Rejection};
use crate::consent::{Address, Brand, Channel, ConsentTime, RecipientType, RecordError, Status};
use crate::registry::api::{
    ErrorBody, Pagination, RetailerAccessBody, RetailerAccessItem, RetailerAccessPage,
    RetailerAccessRemoveAll, TransactionResponse,
};

/// Dealers per page of the list answer (İYS: 100).
pub const ACCESS_PAGE_SIZE: u64 = 100;

/// Most dealers one grant or withdrawal may name.
pub const MAX_ACCESS_CODES: usize = 1000;

fn invalid(e: RecordError) -> Rejection {
    Rejection {
        status: 400,
        body: ErrorBody {
            errors: vec![record_error(&e)],
        },
    }
}

/// The stored tuple a body names.
fn tuple_of(body: &RetailerAccessBody) -> Result<(Address, Channel, RecipientType), Rejection> {
    let recipient_type: RecipientType = body
        .recipient_type
        .trim()
        .parse()
        .map_err(|e| invalid(RecordError::Value(e)))?;
    let channel: Channel = body
        .channel
        .trim()
        .parse()
        .map_err(|e| invalid(RecordError::Value(e)))?;
    let address = Address::parse_for(channel, &body.recipient)
        .map_err(|e| invalid(RecordError::Address(e)))?;
    Ok((address, channel, recipient_type))
}

/// The dealer codes of a grant or withdrawal: 1 to [`MAX_ACCESS_CODES`].
fn codes_of(body: &RetailerAccessBody) -> Result<Vec<u32>, Rejection> {
    let codes = body.retailer_access.clone().unwrap_or_default();
    if codes.is_empty() || codes.len() > MAX_ACCESS_CODES {
        return Err(Rejection::invalid(
            "retailerAccess",
            format!("retailerAccess must list 1 to {MAX_ACCESS_CODES} dealer codes"),
        ));
    }
    Ok(codes)
}

impl Emulator {
    fn missing_consent(brand: Brand, channel: Channel, rtype: RecipientType) -> Rejection {
        Rejection::not_found(
            "recipient",
            format!("no {rtype} {channel} consent record for this recipient in brand {brand}"),
        )
    }

    /// `POST .../consents/retailers/access/list?offset=N`: one page of the
    /// dealers allowed to use a stored consent.
    pub fn retailer_access_list(
        &self,
        brand: Brand,
        body: &RetailerAccessBody,
        offset: u64,
        now: ConsentTime,
    ) -> Result<RetailerAccessPage, Rejection> {
        let (address, channel, rtype) = tuple_of(body)?;
        let missing = || Self::missing_consent(brand, channel, rtype);
        let cell = self.settled(brand, now).ok_or_else(missing)?;
        let st = super::read(&cell);
        let stored = st
            .consents
            .store
            .get(TupleKey::new(address.key(), channel, rtype))
            .ok_or_else(missing)?;
        let total = stored.retailer_access.len() as u64;
        let list = stored
            .retailer_access
            .iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(ACCESS_PAGE_SIZE as usize)
            .map(|&retailer_code| RetailerAccessItem { retailer_code })
            .collect();
        Ok(RetailerAccessPage {
            pagination: Pagination {
                offset,
                page_size: ACCESS_PAGE_SIZE,
                total_count: total,
            },
            list,
        })
    }

    /// `POST .../consents/retailers/access`: let more dealers use a stored ONAY.
    pub fn grant_retailer_access(
        &self,
        brand: Brand,
        body: &RetailerAccessBody,
        now: ConsentTime,
    ) -> Result<TransactionResponse, Rejection> {
        self.change_access(brand, body, now, true)
    }

    /// `POST .../consents/retailers/access/remove`: withdraw dealers' access.
    pub fn withdraw_retailer_access(
        &self,
        brand: Brand,
        body: &RetailerAccessBody,
        now: ConsentTime,
    ) -> Result<TransactionResponse, Rejection> {
        self.change_access(brand, body, now, false)
    }

    /// `POST .../consents/retailers/access/remove/all`: withdraw every
    /// dealer from the consents of the listed recipients.
    pub fn withdraw_all_retailer_access(
        &self,
        brand: Brand,
        body: &RetailerAccessRemoveAll,
        now: ConsentTime,
    ) -> Result<TransactionResponse, Rejection> {
        if body.recipients.is_empty() || body.recipients.len() > MAX_ACCESS_CODES {
            return Err(Rejection::invalid(
                "recipients",
                format!("recipients must list 1 to {MAX_ACCESS_CODES} addresses"),
            ));
        }
        let keys = body
            .recipients
            .iter()
            .map(|recipient| {
                tuple_of(&RetailerAccessBody {
                    recipient: recipient.clone(),
                    recipient_type: body.recipient_type.clone(),
                    channel: body.channel.clone(),
                    retailer_access: None,
                })
                .map(|(a, c, rt)| TupleKey::new(a.key(), c, rt))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(cell) = self.settled(brand, now) {
            let mut st = super::write(&cell);
            for key in keys {
                st.consents.store.set_access(key, Vec::new());
            }
        }
        let seq = self
            .next_transaction
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(TransactionResponse {
            transaction_id: self.transaction_id(seq),
            creation_date: now.to_string(),
        })
    }

    fn change_access(
        &self,
        brand: Brand,
        body: &RetailerAccessBody,
        now: ConsentTime,
        grant: bool,
    ) -> Result<TransactionResponse, Rejection> {
        let (address, channel, rtype) = tuple_of(body)?;
        let codes = codes_of(body)?;
        let missing = || Self::missing_consent(brand, channel, rtype);
        let cell = self.settled(brand, now).ok_or_else(missing)?;
        let mut st = super::write(&cell);
        let key = TupleKey::new(address.key(), channel, rtype);
        let stored = st.consents.store.get(key).ok_or_else(missing)?;
        let mut access = stored.retailer_access;
        if grant {
            if stored.status != Status::Onay {
                return Err(Rejection::invalid(
                    "status",
                    "the consent is RET: dealers can be given access to an ONAY only",
                ));
            }
            access.extend(codes);
            access.sort_unstable();
            access.dedup();
        } else {
            access.retain(|c| !codes.contains(c));
        }
        st.consents.store.set_access(key, access);
        let seq = self
            .next_transaction
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(TransactionResponse {
            transaction_id: self.transaction_id(seq),
            creation_date: now.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::ConsentRecord;

    fn body(access: Option<Vec<u32>>) -> RetailerAccessBody {
        RetailerAccessBody {
            recipient: "+905300000004".into(),
            recipient_type: "BIREYSEL".into(),
            channel: "MESAJ".into(),
            retailer_access: access,
        }
    }

    #[test]
    fn grant_withdraw_and_list() {
        let emu = Emulator::default();
        let brand = Brand::new(700001, 1);
        let now = ConsentTime::now();
        let row =
            "700001,1,+905300000004,BIREYSEL,MESAJ,ONAY,2024-05-01 10:00:00,HS_WEB,501,501;502";
        emu.seed(
            &ConsentRecord::from_csv_fields(row.split(',')).unwrap(),
            now,
        );
        let codes = |emu: &Emulator| -> Vec<u32> {
            emu.retailer_access_list(brand, &body(None), 0, now)
                .unwrap()
                .list
                .iter()
                .map(|i| i.retailer_code)
                .collect()
        };
        assert_eq!(codes(&emu), vec![501, 502]);
        emu.withdraw_retailer_access(brand, &body(Some(vec![502])), now)
            .unwrap();
        assert_eq!(codes(&emu), vec![501]);
        emu.grant_retailer_access(brand, &body(Some(vec![600, 501])), now)
            .unwrap();
        assert_eq!(codes(&emu), vec![501, 600]);
        let none = emu
            .grant_retailer_access(brand, &body(Some(vec![])), now)
            .unwrap_err();
        assert_eq!(
            none.body.errors[0].location.as_deref(),
            Some("retailerAccess")
        );
        let mut other = body(None);
        other.channel = "ARAMA".into();
        assert_eq!(
            emu.retailer_access_list(brand, &other, 0, now)
                .unwrap_err()
                .status,
            404
        );
        // The status answer shows the same list; the consent itself is unchanged.
        let s = emu
            .status(
                brand,
                &crate::registry::api::StatusQuery {
                    recipient: "+905300000004".into(),
                    recipient_type: "BIREYSEL".into(),
                    channel: "MESAJ".into(),
                },
                now,
            )
            .unwrap();
        assert_eq!(s.retailer_access, Some(vec![501, 600]));
        assert_eq!(s.status, "ONAY");
        let all = RetailerAccessRemoveAll {
            recipients: vec!["+905300000004".into(), "+905300000099".into()],
            recipient_type: "BIREYSEL".into(),
            channel: "MESAJ".into(),
        };
        emu.withdraw_all_retailer_access(brand, &all, now).unwrap();
        assert_eq!(codes(&emu), Vec::<u32>::new());
    }
}
