//! The random part of a run: tuples the store holds and tuples it does not.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::consent::address::Phone;
use crate::consent::{Address, Brand, Channel, RecipientType};
use crate::store::snapshot::{key_of_index, KEYS_PER_BRAND};
use crate::store::{Found, Snapshot};
use crate::sync::retailers::address_of_id;

/// One tuple to check.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    /// Channel.
    pub channel: Channel,
    /// Recipient type.
    pub rtype: RecipientType,
    /// The address.
    pub address: Address,
}

/// The random part of a run, drawn from one snapshot.
pub(crate) struct Draw {
    /// Tuples the store holds, uniformly drawn (phone channels).
    pub held: Vec<Probe>,
    /// Tuples it does not hold.
    pub absent: Vec<Probe>,
    /// E-mail tuples held (not drawable: the store keeps their hashes).
    pub eposta_held: u64,
}

/// Draw up to `n` held and `n` absent tuples of `brand`: a reservoir sample
/// over every held phone tuple (no copy of the sets), then, for absent ones,
/// other channels or types of the sampled addresses (up to half) and random
/// Turkish mobile numbers.
pub(crate) fn draw(snapshot: &Snapshot, brand: Brand, n: usize) -> Draw {
    let mut rng = rand::thread_rng();
    let mut out = Draw {
        held: Vec::new(),
        absent: Vec::new(),
        eposta_held: 0,
    };
    let Some(entry) = snapshot.brand(brand) else {
        return out;
    };
    // Reservoir sample over every held phone tuple (base and recent changes).
    let mut seen = 0u64;
    let mut reservoir: Vec<(usize, u32)> = Vec::with_capacity(n);
    for idx in 0..KEYS_PER_BRAND {
        let (channel, _) = key_of_index(idx);
        let set = &entry.sets[idx];
        if !channel.is_phone() {
            let (onay, ret) = set.tuples();
            out.eposta_held += onay + ret;
            continue;
        }
        // Base records not overridden by a recent change, then the recent
        // changes: each held tuple once, without copying the set.
        let delta = set.delta();
        let base = set
            .known()
            .iter()
            .filter(|id| delta.binary_search_by_key(id, |e| e.id).is_err());
        for id in base.chain(delta.iter().map(|e| e.id)) {
            seen += 1;
            if reservoir.len() < n {
                reservoir.push((idx, id));
            } else {
                let j = rng.gen_range(0..seen);
                if (j as usize) < n {
                    reservoir[j as usize] = (idx, id);
                }
            }
        }
    }
    for (idx, id) in reservoir {
        let (channel, rtype) = key_of_index(idx);
        if let Some(address) = address_of_id(snapshot, channel, id) {
            out.held.push(Probe {
                channel,
                rtype,
                address,
            });
        }
    }
    // Absent: half neighbours of held addresses, the rest random mobiles.
    let mut neighbours: Vec<Probe> = Vec::new();
    for p in &out.held {
        for (channel, rtype) in [
            (Channel::Mesaj, RecipientType::Bireysel),
            (Channel::Mesaj, RecipientType::Tacir),
            (Channel::Arama, RecipientType::Bireysel),
            (Channel::Arama, RecipientType::Tacir),
        ] {
            let found = snapshot.find_in(entry, channel, rtype, p.address.key(), None);
            if found == Found::Unknown {
                neighbours.push(Probe {
                    channel,
                    rtype,
                    address: p.address.clone(),
                });
            }
        }
    }
    neighbours.shuffle(&mut rng);
    neighbours.truncate(n / 2);
    out.absent = neighbours;
    let mut tries = 0;
    while out.absent.len() < n && tries < n * 20 {
        tries += 1;
        // +905XXXXXXXXX: a Turkish mobile number.
        let national: u64 = 5_000_000_000 + rng.gen_range(0..1_000_000_000);
        let Ok(phone) = Phone::from_digits(900_000_000_000 + national) else {
            continue;
        };
        let address = Address::Phone(phone);
        let (channel, rtype) = if rng.gen_bool(0.5) {
            (Channel::Mesaj, RecipientType::Bireysel)
        } else {
            (Channel::Arama, RecipientType::Bireysel)
        };
        if snapshot.find_in(entry, channel, rtype, address.key(), None) == Found::Unknown {
            out.absent.push(Probe {
                channel,
                rtype,
                address,
            });
        }
    }
    out
}
