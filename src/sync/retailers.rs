//! Dealer access kept current. The change feed carries no `retailerAccess`,
//! and a dealer's access can be granted or withdrawn without any consent
//! change, so the gate asks the registry's
//! `POST .../consents/retailers/access/list` for the consents it knows to
//! involve dealers, and publishes what changed through the store's one
//! atomic publish path.
//!
//! Which consents: those holding dealer grants in the store when the task
//! starts (phone channels; the store keeps only a hash of e-mail addresses,
//! so an e-mail consent joins once a change or webhook names it), and every
//! later change (feed or webhook) that names a dealer. When: a dealer-named
//! change is refreshed at once; every consent on the list again each
//! `retailers.refresh_interval`. All calls keep to `retailers.budget_rps`.
//!
//! What is published: for a consent the store holds as ONAY whose dealers
//! differ from the registry's, the same ONAY (same consent date) with the
//! registry's dealers. A consent the registry no longer holds, or that the
//! store holds as RET, is left to the change feed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge};
use serde::Deserialize;

use super::ledger::DealerTuple;
use super::StoreHandle;
use crate::config::ConfigError;
use crate::consent::address::Phone;
use crate::consent::{Address, Brand, Channel, ConsentRecord, ConsentTime, RecipientType, Status};
use crate::registry::api::StatusQuery;
use crate::registry::budget::Budget;
use crate::registry::client::{ClientError, RegistryClient};
use crate::store::snapshot::{key_of_index, FOREIGN_ID_BASE, KEYS_PER_BRAND};
use crate::store::{key_index, Snapshot};

/// `[retailers]`: keeping dealer access current.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetailersConfig {
    /// Refresh dealer access at all (needs a `[registry]`). Default true.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// How often every consent known to involve dealers is asked for again.
    /// Default 5m; at least 1s. A revoked access refuses that dealer within
    /// this interval plus the time a round takes (about one request per
    /// watched consent at `budget_rps`; `iys_gate_retailer_refresh_round_seconds`).
    #[serde(default = "default_refresh_interval", with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Registry requests per second this task may use. Default 2; 0.1 to 100.
    #[serde(default = "default_budget_rps")]
    pub budget_rps: f64,
}

fn default_enabled() -> bool {
    true
}
fn default_refresh_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_budget_rps() -> f64 {
    2.0
}

impl Default for RetailersConfig {
    fn default() -> Self {
        RetailersConfig {
            enabled: default_enabled(),
            refresh_interval: default_refresh_interval(),
            budget_rps: default_budget_rps(),
        }
    }
}

impl RetailersConfig {
    /// Check the values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.refresh_interval < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                key: "retailers.refresh_interval".into(),
                message: "must be at least 1s".into(),
            });
        }
        if !(0.1..=100.0).contains(&self.budget_rps) {
            return Err(ConfigError::Invalid {
                key: "retailers.budget_rps".into(),
                message: "must be between 0.1 and 100 requests per second".into(),
            });
        }
        Ok(())
    }
}

/// The address behind a store id on a channel, when the store can say:
/// Turkish and foreign numbers yes, e-mails no (the store keeps a hash).
pub fn address_of_id(snapshot: &Snapshot, channel: Channel, id: u32) -> Option<Address> {
    if !channel.is_phone() {
        return None;
    }
    if id < FOREIGN_ID_BASE {
        return Some(Address::Phone(Phone::from_tr_id(id)));
    }
    let pos = id - FOREIGN_ID_BASE;
    let dict = snapshot.foreign();
    let digits = if (pos as usize) < dict.base_len() {
        dict.base().nth(pos as usize)?
    } else {
        dict.extra_sorted()
            .into_iter()
            .find(|(_, i)| *i == pos)
            .map(|(k, _)| k)?
    };
    Phone::from_digits(digits).ok().map(Address::Phone)
}

/// The dealers the store lets use (brand, channel, type, id)'s consent, and
/// the consent date it holds for it (from the recent-change delta; `None`
/// for a base record, which keeps no date). `None` unless the store holds ONAY.
pub fn held_dealers(
    snapshot: &Snapshot,
    brand: Brand,
    channel: Channel,
    rtype: RecipientType,
    id: u32,
) -> Option<(Vec<u32>, Option<ConsentTime>)> {
    let set = &snapshot.brand(brand)?.sets[key_index(channel, rtype)];
    if let Ok(i) = set.delta().binary_search_by_key(&id, |e| e.id) {
        let e = &set.delta()[i];
        return (e.status == Status::Onay).then(|| {
            (
                e.access.to_vec(),
                (e.date != 0).then_some(ConsentTime(e.date)),
            )
        });
    }
    if set.find(id, None) != crate::store::Found::Consent {
        return None;
    }
    let mut dealers: Vec<u32> = set
        .grants()
        .iter()
        .filter(|g| *g as u32 == id)
        .map(|g| (g >> 32) as u32)
        .collect();
    dealers.sort_unstable();
    Some((dealers, None))
}

/// The consents the store holds dealer grants for, on the phone channels of
/// `brands` (the starting watch list).
pub fn tuples_with_dealers(snapshot: &Snapshot, brands: &[Brand]) -> Vec<DealerTuple> {
    let mut out = Vec::new();
    for &brand in brands {
        let Some(entry) = snapshot.brand(brand) else {
            continue;
        };
        for idx in 0..KEYS_PER_BRAND {
            let (channel, recipient_type) = key_of_index(idx);
            if !channel.is_phone() {
                continue;
            }
            let set = &entry.sets[idx];
            let mut ids: Vec<u32> = set.grants().iter().map(|g| g as u32).collect();
            ids.extend(
                set.delta()
                    .iter()
                    .filter(|e| !e.access.is_empty())
                    .map(|e| e.id),
            );
            ids.sort_unstable();
            ids.dedup();
            out.extend(ids.into_iter().filter_map(|id| {
                Some(DealerTuple {
                    brand,
                    channel,
                    recipient_type,
                    recipient: address_of_id(snapshot, channel, id)?.to_string(),
                })
            }));
        }
    }
    out
}

/// What refreshing one consent did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// The store's dealers matched the registry's.
    Unchanged,
    /// The registry's dealers were published.
    Changed,
    /// The registry holds no such consent, or the store holds no ONAY for it.
    NotOnay,
}

impl Refreshed {
    fn as_str(self) -> &'static str {
        match self {
            Refreshed::Unchanged => "unchanged",
            Refreshed::Changed => "changed",
            Refreshed::NotOnay => "not_onay",
        }
    }
}

/// Every dealer the registry lets use a consent (all pages), or `None` when
/// it holds no such consent.
pub async fn registry_dealers(
    client: &RegistryClient,
    budget: &mut Budget,
    t: &DealerTuple,
) -> Result<Option<Vec<u32>>, ClientError> {
    let query = StatusQuery {
        recipient: t.recipient.clone(),
        recipient_type: t.recipient_type.as_str().to_string(),
        channel: t.channel.as_str().to_string(),
    };
    let mut dealers = Vec::new();
    let mut offset = 0u64;
    loop {
        let page = budget
            .call(|| client.retailer_access_page(t.brand, &query, offset))
            .await?;
        let Some(page) = page else {
            return Ok(None);
        };
        let n = page.list.len() as u64;
        dealers.extend(page.list.iter().map(|i| i.retailer_code));
        offset += n;
        if n == 0 || offset >= page.pagination.total_count {
            break;
        }
    }
    dealers.sort_unstable();
    dealers.dedup();
    Ok(Some(dealers))
}

/// Ask the registry for one consent's dealers and publish them if the store
/// holds that consent as ONAY with other dealers.
pub async fn refresh_one(
    store: &StoreHandle,
    client: &RegistryClient,
    budget: &mut Budget,
    t: &DealerTuple,
) -> Result<Refreshed, ClientError> {
    let Ok(address) = Address::parse_for(t.channel, &t.recipient) else {
        return Ok(Refreshed::NotOnay);
    };
    let Some(registry) = registry_dealers(client, budget, t).await? else {
        return Ok(Refreshed::NotOnay);
    };
    // Most refreshes change nothing: look first, and publish (a new snapshot
    // version, which the persister then writes) only for a difference.
    let looked = store.load().and_then(|s| {
        let id = s.address_id(t.channel, address.key())?;
        held_dealers(&s, t.brand, t.channel, t.recipient_type, id).map(|(held, _)| held)
    });
    match looked {
        None => return Ok(Refreshed::NotOnay),
        Some(held) if held == registry => return Ok(Refreshed::Unchanged),
        Some(_) => {}
    }
    let (outcome, _) = store
        .edit(|edit| -> Result<Refreshed, std::convert::Infallible> {
            let snapshot = edit.current();
            let Some(id) = snapshot.address_id(t.channel, address.key()) else {
                return Ok(Refreshed::NotOnay);
            };
            let Some((held, date)) =
                held_dealers(snapshot, t.brand, t.channel, t.recipient_type, id)
            else {
                return Ok(Refreshed::NotOnay);
            };
            if held == registry {
                return Ok(Refreshed::Unchanged);
            }
            let record = ConsentRecord {
                brand: t.brand,
                address: address.clone(),
                recipient_type: t.recipient_type,
                channel: t.channel,
                status: Status::Onay,
                consent_date: date,
                source: None,
                retailer_code: None,
                retailer_access: registry.clone(),
            };
            // Only a dictionary overflow can fail, and the id exists already.
            let _ = edit.apply(std::slice::from_ref(&record), ConsentTime::now());
            Ok(Refreshed::Changed)
        })
        .await
        .unwrap_or_else(|never| match never {});
    Ok(outcome)
}

/// Keep dealer access current for `brands` until `shutdown` fires.
pub async fn run(
    store: Arc<StoreHandle>,
    client: Arc<RegistryClient>,
    brands: Vec<Brand>,
    cfg: RetailersConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    {
        use metrics::{describe_counter, describe_gauge};
        describe_counter!(
            "iys_gate_retailer_refresh_total",
            "Dealer-access refreshes of one consent by result (unchanged, changed, not_onay, error)"
        );
        describe_counter!(
            "iys_gate_retailer_refresh_dropped_total",
            "Dealer-named changes dropped from the refresh queue when it was full"
        );
        describe_gauge!(
            "iys_gate_retailer_watched_consents",
            "Consents whose dealer access is refreshed periodically"
        );
        describe_gauge!(
            "iys_gate_retailer_refresh_round_seconds",
            "How long the last periodic dealer-access refresh round took"
        );
    }
    for result in ["unchanged", "changed", "not_onay", "error"] {
        counter!("iys_gate_retailer_refresh_total", "result" => result).increment(0);
    }
    counter!("iys_gate_retailer_refresh_dropped_total").increment(0);
    let mut budget = Budget::new(cfg.budget_rps);
    let mut w = Watch::default();
    if let Some(s) = store.load() {
        w.add(tuples_with_dealers(&s, &brands));
    }
    tracing::info!(
        consents = w.list.len(),
        interval = ?cfg.refresh_interval,
        "dealer access refresh: watching the consents that name dealers"
    );
    let mut next_round = tokio::time::Instant::now() + cfg.refresh_interval;
    loop {
        gauge!("iys_gate_retailer_watched_consents").set(w.list.len() as f64);
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = store.applied.dealers_queued() => {
                if serve_named(&store, &client, &mut budget, &brands, &mut w, &mut shutdown).await {
                    return;
                }
            }
            _ = tokio::time::sleep_until(next_round) => {
                let started = tokio::time::Instant::now();
                let list = w.list.clone();
                for t in &list {
                    // A dealer-named change goes ahead of the round.
                    if serve_named(&store, &client, &mut budget, &brands, &mut w, &mut shutdown).await
                        || refresh_all(&store, &client, &mut budget, std::slice::from_ref(t), &mut shutdown).await
                    {
                        return;
                    }
                }
                let took = started.elapsed();
                gauge!("iys_gate_retailer_refresh_round_seconds").set(took.as_secs_f64());
                if took > cfg.refresh_interval {
                    tracing::warn!(consents = list.len(), ?took, interval = ?cfg.refresh_interval, "dealer access refresh round took longer than retailers.refresh_interval: raise retailers.budget_rps (a round needs about one request per consent)");
                } else {
                    tracing::debug!(consents = list.len(), ?took, "dealer access refresh round done");
                }
                next_round = tokio::time::Instant::now() + cfg.refresh_interval;
            }
        }
    }
}

/// The consents refreshed each round, each once.
#[derive(Default)]
struct Watch {
    list: Vec<DealerTuple>,
    known: HashSet<DealerTuple>,
}

impl Watch {
    fn add(&mut self, tuples: impl IntoIterator<Item = DealerTuple>) {
        for t in tuples {
            if self.known.insert(t.clone()) {
                self.list.push(t);
            }
        }
    }
}

/// Refresh the queued dealer-named consents (of followed brands) and watch
/// them from now on; true when shutdown came meanwhile.
async fn serve_named(
    store: &StoreHandle,
    client: &RegistryClient,
    budget: &mut Budget,
    brands: &[Brand],
    w: &mut Watch,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let named: Vec<DealerTuple> = store
        .applied
        .take_dealers()
        .into_iter()
        .filter(|t| brands.contains(&t.brand))
        .collect();
    if named.is_empty() {
        return false;
    }
    w.add(named.iter().cloned());
    refresh_all(store, client, budget, &named, shutdown).await
}

/// Refresh each tuple; true when shutdown came meanwhile.
async fn refresh_all(
    store: &StoreHandle,
    client: &RegistryClient,
    budget: &mut Budget,
    tuples: &[DealerTuple],
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    for t in tuples {
        if *shutdown.borrow() {
            return true;
        }
        let result = tokio::select! {
            r = refresh_one(store, client, budget, t) => r,
            _ = shutdown.changed() => return true,
        };
        match result {
            Ok(r) => {
                counter!("iys_gate_retailer_refresh_total", "result" => r.as_str()).increment(1);
                if r == Refreshed::Changed {
                    tracing::info!(brand = %t.brand, channel = %t.channel, recipient = %crate::consent::mask_text(&t.recipient), "dealer access changed in the registry: published");
                }
            }
            Err(e) => {
                counter!("iys_gate_retailer_refresh_total", "result" => "error").increment(1);
                tracing::warn!(brand = %t.brand, channel = %t.channel, recipient = %crate::consent::mask_text(&t.recipient), "dealer access refresh failed: {e}");
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SnapshotBuilder;

    #[test]
    fn ids_map_back_to_phone_numbers_and_dealers_are_read_back() {
        let mut b = SnapshotBuilder::new();
        let brand = Brand::new(700001, 1);
        b.add_brand(brand);
        for row in [
            "700001,1,+905321234567,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,7,7;9",
            "700001,1,+4915112345678,BIREYSEL,ARAMA,ONAY,2024-01-01 10:00:00,HS_WEB,,",
            "700001,1,a@b.example,BIREYSEL,EPOSTA,ONAY,2024-01-01 10:00:00,HS_WEB,3,3",
        ] {
            b.add(&ConsentRecord::from_csv_fields(row.split(',')).unwrap());
        }
        let (s, _) = b.build(ConsentTime::now());
        for (text, channel) in [
            ("+905321234567", Channel::Mesaj),
            ("+4915112345678", Channel::Arama),
        ] {
            let a = Address::parse_for(channel, text).unwrap();
            let id = s.address_id(channel, a.key()).unwrap();
            assert_eq!(address_of_id(&s, channel, id), Some(a));
        }
        let tr = Address::parse_for(Channel::Mesaj, "+905321234567").unwrap();
        let id = s.address_id(Channel::Mesaj, tr.key()).unwrap();
        assert_eq!(
            held_dealers(&s, brand, Channel::Mesaj, RecipientType::Bireysel, id),
            Some((vec![7, 9], None))
        );
        // The watch list: the phone consent with dealers; the e-mail one
        // cannot be named from the store.
        let watched = tuples_with_dealers(&s, &[brand]);
        assert_eq!(watched.len(), 1);
        assert_eq!(watched[0].recipient, "+905321234567");
    }
}
