//! Synthetic consent data: a deterministic generator of realistic İYS exports.
//!
//! `generate` yields `ConsentRecord`s in process (the store builder consumes them
//! directly, without a CSV file); `write_csv` writes the same rows as an export
//! (`CSV_HEADER`, then one row per record, phone numbers in mixed spellings).
//! Both come from one row generator, so they always agree.
//!
//! - Exactly `tuples` distinct (brand, address, channel, recipient type) tuples,
//!   spread over `brands` brands by a Zipf law (exponent 1: the largest of 1000
//!   brands holds ~13 %). With `dup_share > 0` extra rows for existing tuples are
//!   added (older and newer, in scrambled order), so rows exceed tuples.
//! - Brands share one population (~60 M mobiles in the real prefixes, ~4 M
//!   landlines, 0.5 % foreign mobiles, ~20 M e-mail addresses). Each brand walks
//!   its own seeded permutation of that population, so its tuples are distinct
//!   with no per-brand set, and subscribers recur across brands.
//! - Determinism: ChaCha8 seeded from `seed`, one stream per brand (stream 0 for
//!   the shared tables), integer arithmetic throughout: same seed, same bytes, on
//!   every platform. Brands can be generated independently (`Generator::brand_records`).

mod population;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::consent::time::TURKEY_OFFSET_SECS;
use crate::consent::{
    Address, Brand, Channel, ConsentRecord, ConsentTime, Email, Phone, RecipientType, Source,
    Status, CSV_HEADER, EARLIEST,
};

use population::{below, push_digits, Addr, Perm, PhoneKind, Population};

/// 2026-11-01 00:00:00 Turkey time: the end (exclusive) of generated dates.
pub const DEFAULT_DATE_TO: ConsentTime = ConsentTime(1_793_480_400);
/// 2016-05-01: HS_2015 consents (obtained before İYS) are dated in its first year.
const HS2015_END: i64 = 1_462_050_000;
/// 2020-06-01 .. 2021-03-01: providers' bulk registration before the İYS deadline.
const BULK_FROM: i64 = 1_590_958_800;
const BULK_TO: i64 = 1_614_546_000;
/// 2021-01-01 .. 2021-05-01: the citizens' refusal wave once İYS opened to them.
const WAVE_FROM: i64 = 1_609_448_400;
const WAVE_TO: i64 = 1_619_816_400;

/// Rows a duplicate may be delayed by (scrambles older/newer order).
const DELAY_SLOTS: u64 = 256;

/// Invalid generator parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid generator parameters: {0}")]
pub struct GenError(pub String);

/// What to generate. `new` gives the realistic defaults; every share is tunable.
#[derive(Debug, Clone, PartialEq)]
pub struct GenParams {
    /// Distinct (brand, address, channel, recipient type) tuples in total.
    pub tuples: u64,
    /// Brands the tuples are spread over (at most 500 000).
    pub brands: u32,
    /// Seed: same seed (and parameters), same output.
    pub seed: u64,
    /// Zipf exponent of brand sizes (1.0: the largest of 1000 brands gets ~13 %).
    pub zipf_exponent: f64,
    /// Turkish mobile subscribers in the population.
    pub mobiles: u64,
    /// Turkish landlines in the population (ARAMA only).
    pub landlines: u64,
    /// Foreign mobile numbers in the population.
    pub foreign: u64,
    /// E-mail addresses in the population.
    pub emails: u64,
    /// Share of tuples on MESAJ.
    pub mesaj_share: f64,
    /// Share of tuples on ARAMA.
    pub arama_share: f64,
    /// Share of tuples on EPOSTA.
    pub eposta_share: f64,
    /// Of the subscribers a brand has on MESAJ, the share it also has on ARAMA.
    pub arama_given_mesaj: f64,
    /// Share of TACIR tuples.
    pub tacir_share: f64,
    /// Share of subscribers a brand holds both as BIREYSEL and as TACIR.
    pub both_types_share: f64,
    /// Share of RET rows.
    pub ret_share: f64,
    /// Of RET rows, the share with an `IYS_*` source (refused through İYS).
    pub ret_citizen_share: f64,
    /// Of ONAY rows, the share with an `IYS_*` source (the rest are `HS_*`).
    pub onay_citizen_share: f64,
    /// Of TACIR ONAY rows, the share with empty consentDate and source.
    pub tacir_undated_share: f64,
    /// Share of rows with a retailerCode and a 1–3 element retailerAccess.
    pub retailer_share: f64,
    /// Share of e-mail rows written with capitalised names (CSV only; they
    /// normalise to the same address).
    pub email_capitalised_share: f64,
    /// Earliest consentDate (not before 2015-05-01).
    pub date_from: ConsentTime,
    /// End of consentDates (exclusive).
    pub date_to: ConsentTime,
    /// Extra rows for existing tuples, as a share of tuples (0: none).
    pub dup_share: f64,
}

impl GenParams {
    /// Realistic defaults for the given size and seed.
    pub fn new(tuples: u64, brands: u32, seed: u64) -> GenParams {
        GenParams {
            tuples,
            brands,
            seed,
            zipf_exponent: 1.0,
            mobiles: 60_000_000,
            landlines: 4_000_000,
            foreign: 320_000,
            emails: 20_000_000,
            mesaj_share: 0.50,
            arama_share: 0.35,
            eposta_share: 0.15,
            arama_given_mesaj: 0.6,
            tacir_share: 0.10,
            both_types_share: 0.01,
            ret_share: 0.08,
            ret_citizen_share: 0.85,
            onay_citizen_share: 0.03,
            tacir_undated_share: 0.30,
            retailer_share: 0.02,
            email_capitalised_share: 0.05,
            date_from: EARLIEST,
            date_to: DEFAULT_DATE_TO,
            dup_share: 0.0,
        }
    }

    /// The standard data set: 100 M tuples, 1000 brands, seed 1.
    pub fn standard() -> GenParams {
        GenParams::new(100_000_000, 1000, 1)
    }

    /// Check the parameters (the generator also does).
    pub fn validate(&self) -> Result<(), GenError> {
        Generator::new(self).map(|_| ())
    }
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams::standard()
    }
}

/// One brand of the plan and how many distinct tuples it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrandPlan {
    /// İYS code and brand code.
    pub brand: Brand,
    /// Distinct tuples of this brand.
    pub tuples: u64,
}

/// A validated plan: brands, population, mix. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Generator {
    plan: Arc<Plan>,
}

#[derive(Debug)]
struct Plan {
    params: GenParams,
    brands: Vec<BrandPlan>,
    /// `"<iysCode>,<brandCode>,"` per brand.
    prefixes: Vec<Vec<u8>>,
    pop: Population,
    mix: Mix,
    days: DayTable,
}

/// Probabilities as 64-bit thresholds (`next_u64() < t`), and the pick tables.
#[derive(Debug)]
struct Mix {
    email: u64,
    /// Phone group patterns, cumulative: MESAJ+ARAMA, then MESAJ only (else ARAMA only).
    both_channels: u64,
    mesaj_or_both: u64,
    /// Type set, cumulative: TACIR only, then both (else BIREYSEL only).
    tacir_only: u64,
    tacir_or_both: u64,
    landline_arama_only: bool,
    ret: u64,
    ret_citizen: u64,
    onay_citizen: u64,
    tacir_undated: u64,
    retailer: u64,
    email_capitalised: u64,
    dup: u64,
    onay_hs: Pick<Source>,
    onay_iys: Pick<Source>,
    ret_hs: Pick<Source>,
    ret_iys: Pick<Source>,
    all: Window,
    hs2015: Window,
    bulk: Window,
    wave: Window,
    after_wave: Window,
}

impl Generator {
    /// Validate the parameters and lay out brands and population.
    pub fn new(params: &GenParams) -> Result<Generator, GenError> {
        Plan::new(params).map(|plan| Generator {
            plan: Arc::new(plan),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &GenParams {
        &self.plan.params
    }

    /// The brands in generation order (largest first) with their tuple counts.
    pub fn brands(&self) -> &[BrandPlan] {
        &self.plan.brands
    }

    /// Every record, brand after brand.
    pub fn records(&self) -> Records {
        Records::new(self.plan.clone(), 0, self.plan.brands.len())
    }

    /// The records of brand `index` alone (as in `records`); brands are
    /// independent, so they can be generated in parallel.
    pub fn brand_records(&self, index: usize) -> Records {
        assert!(
            index < self.plan.brands.len(),
            "brand index {index} out of range"
        );
        Records::new(self.plan.clone(), index, index + 1)
    }

    /// Write the CSV export (header, then every row) through a `BufWriter`.
    /// Returns the number of data rows.
    pub fn write_csv<W: Write>(&self, out: W) -> io::Result<u64> {
        let plan = &*self.plan;
        let mut out = BufWriter::with_capacity(1 << 20, out);
        out.write_all(CSV_HEADER.join(",").as_bytes())?;
        out.write_all(b"\n")?;
        let mut line = Vec::with_capacity(256);
        let mut rows = 0u64;
        for index in 0..plan.brands.len() {
            let mut state = BrandState::new(plan, index);
            while let Some(row) = state.next_row(plan) {
                line.clear();
                plan.csv_row(index, &row, &mut line);
                out.write_all(&line)?;
                rows += 1;
            }
        }
        out.flush()?;
        Ok(rows)
    }
}

/// Every record for `params`, brand after brand.
///
/// # Panics
/// If the parameters are invalid (see `GenParams::validate`, `Generator::new`).
pub fn generate(params: &GenParams) -> impl Iterator<Item = ConsentRecord> {
    match Generator::new(params) {
        Ok(g) => g.records(),
        Err(e) => panic!("{e}"),
    }
}

/// Write the CSV export for `params` to `out`; returns the number of data rows.
/// Invalid parameters are an `InvalidInput` error.
pub fn write_csv(params: &GenParams, out: impl Write) -> io::Result<u64> {
    let g = Generator::new(params).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    g.write_csv(out)
}

/// Records of a range of brands; `Send`, owns what it needs.
#[derive(Debug)]
pub struct Records {
    plan: Arc<Plan>,
    next_brand: usize,
    end_brand: usize,
    current: Option<BrandState>,
    /// Distinct tuples still to come (rows, when there are no duplicates).
    remaining: u64,
    scratch: Vec<u8>,
}

impl Records {
    fn new(plan: Arc<Plan>, from: usize, to: usize) -> Records {
        let remaining = plan.brands[from..to].iter().map(|b| b.tuples).sum();
        Records {
            plan,
            next_brand: from,
            end_brand: to,
            current: None,
            remaining,
            scratch: Vec::with_capacity(64),
        }
    }
}

impl Iterator for Records {
    type Item = ConsentRecord;

    fn next(&mut self) -> Option<ConsentRecord> {
        loop {
            if let Some(state) = &mut self.current {
                let made = state.made;
                if let Some(row) = state.next_row(&self.plan) {
                    self.remaining -= state.made - made;
                    return Some(self.plan.record(state.index, &row, &mut self.scratch));
                }
                self.current = None;
            }
            if self.next_brand >= self.end_brand {
                return None;
            }
            self.current = Some(BrandState::new(&self.plan, self.next_brand));
            self.next_brand += 1;
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        if self.plan.mix.dup == 0 {
            (n, Some(n))
        } else {
            (n, None)
        }
    }
}

// ---------------------------------------------------------------------------
// The plan.

fn share(name: &str, p: f64) -> Result<f64, GenError> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(GenError(format!("{name} must be within 0..=1, got {p}")))
    }
}

/// `p` as a threshold for `next_u64() < t`.
fn threshold(p: f64) -> u64 {
    if p >= 1.0 {
        u64::MAX
    } else if p <= 0.0 {
        0
    } else {
        (p * 18_446_744_073_709_551_616.0) as u64
    }
}

impl Plan {
    fn new(p: &GenParams) -> Result<Plan, GenError> {
        for (name, v) in [
            ("mesaj_share", p.mesaj_share),
            ("arama_share", p.arama_share),
            ("eposta_share", p.eposta_share),
            ("arama_given_mesaj", p.arama_given_mesaj),
            ("tacir_share", p.tacir_share),
            ("both_types_share", p.both_types_share),
            ("ret_share", p.ret_share),
            ("ret_citizen_share", p.ret_citizen_share),
            ("onay_citizen_share", p.onay_citizen_share),
            ("tacir_undated_share", p.tacir_undated_share),
            ("retailer_share", p.retailer_share),
            ("email_capitalised_share", p.email_capitalised_share),
            ("dup_share", p.dup_share),
        ] {
            share(name, v)?;
        }
        if p.tuples > 0 && p.brands == 0 {
            return Err(GenError("brands must be at least 1".into()));
        }
        if p.brands > 500_000 {
            return Err(GenError(format!("brands {} exceeds 500000", p.brands)));
        }
        if !(p.zipf_exponent.is_finite() && p.zipf_exponent >= 0.0) {
            return Err(GenError("zipf_exponent must be finite and >= 0".into()));
        }
        if p.date_from < EARLIEST {
            return Err(GenError("date_from is before 2015-05-01 (H155)".into()));
        }
        if p.date_to <= p.date_from {
            return Err(GenError("date_to must be after date_from".into()));
        }
        let channels = p.mesaj_share + p.arama_share + p.eposta_share;
        if channels <= 0.0 {
            return Err(GenError("channel shares are all zero".into()));
        }

        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        rng.set_stream(0);
        let pop = Population::new(p.mobiles, p.landlines, p.foreign, p.emails, &mut rng)
            .map_err(GenError)?;

        let sizes = zipf_sizes(p.tuples, p.brands, p.zipf_exponent);
        let phone_used = p.mesaj_share + p.arama_share > 0.0;
        let email_used = p.eposta_share > 0.0;
        let capacity =
            if phone_used { pop.phones() } else { 0 } + if email_used { pop.emails() } else { 0 };
        let largest = sizes.first().copied().unwrap_or(0);
        if largest > capacity {
            return Err(GenError(format!(
                "the largest brand needs {largest} distinct tuples; the population holds at most {capacity} (raise mobiles/emails or brands)"
            )));
        }

        // Brand and provider codes: 6 digits, distinct brand codes; about four
        // brands for every three providers, so some providers own several.
        let brand_codes = Perm::new(900_000, &mut rng);
        let provider_codes = Perm::new(400_000, &mut rng);
        let providers = (u64::from(p.brands) * 3 / 4).max(1);
        let mut brands = Vec::with_capacity(sizes.len());
        let mut prefixes = Vec::with_capacity(sizes.len());
        for (i, &tuples) in sizes.iter().enumerate() {
            let provider = below(rng.next_u64(), providers);
            let brand = Brand::new(
                600_000 + provider_codes.get(provider) as u32,
                100_000 + brand_codes.get(i as u64) as u32,
            );
            prefixes.push(format!("{},{},", brand.iys_code, brand.brand_code).into_bytes());
            brands.push(BrandPlan { brand, tuples });
        }

        let mix = Mix::new(p, &pop);
        Ok(Plan {
            params: p.clone(),
            brands,
            prefixes,
            days: DayTable::new(p.date_from.0, p.date_to.0),
            pop,
            mix,
        })
    }

    fn record(&self, brand: usize, row: &Row, scratch: &mut Vec<u8>) -> ConsentRecord {
        let address = match row.addr {
            Addr::Tr(national) => {
                Address::Phone(Phone::from_tr_id((national - 2_000_000_000) as u32))
            }
            Addr::Foreign(digits) => Address::Phone(
                Phone::from_digits(digits).expect("generated foreign numbers are valid"),
            ),
            Addr::Email(i) => {
                scratch.clear();
                self.pop.email(i, false, scratch);
                let text = std::str::from_utf8(scratch).expect("names are UTF-8");
                Address::Email(Email::parse(text).expect("generated e-mails are valid"))
            }
        };
        ConsentRecord {
            brand: self.brands[brand].brand,
            address,
            recipient_type: row.rtype,
            channel: row.channel,
            status: row.status,
            consent_date: row.date.map(ConsentTime),
            source: row.source,
            retailer_code: row.retailer.map(|r| r.code),
            retailer_access: row
                .retailer
                .map(|r| r.access[..usize::from(r.len)].to_vec())
                .unwrap_or_default(),
        }
    }

    fn csv_row(&self, brand: usize, row: &Row, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.prefixes[brand]);
        match row.addr {
            Addr::Tr(national) => {
                let spelling: &[u8] = match row.style & 3 {
                    0 => b"+90",
                    1 => b"90",
                    2 => b"0",
                    _ => b"",
                };
                buf.extend_from_slice(spelling);
                push_u64(buf, national);
            }
            Addr::Foreign(digits) => {
                buf.push(b'+');
                push_u64(buf, digits);
            }
            Addr::Email(i) => self.pop.email(i, row.style != 0, buf),
        }
        buf.push(b',');
        buf.extend_from_slice(row.rtype.as_str().as_bytes());
        buf.push(b',');
        buf.extend_from_slice(row.channel.as_str().as_bytes());
        buf.push(b',');
        buf.extend_from_slice(row.status.as_str().as_bytes());
        buf.push(b',');
        if let Some(t) = row.date {
            self.days.push(buf, t);
        }
        buf.push(b',');
        if let Some(s) = row.source {
            buf.extend_from_slice(s.as_str().as_bytes());
        }
        buf.push(b',');
        if let Some(r) = row.retailer {
            push_u64(buf, u64::from(r.code));
            buf.push(b',');
            for (k, a) in r.access[..usize::from(r.len)].iter().enumerate() {
                if k > 0 {
                    buf.push(b';');
                }
                push_u64(buf, u64::from(*a));
            }
        } else {
            buf.push(b',');
        }
        buf.push(b'\n');
    }
}

/// Brand sizes by Zipf's law, summing to exactly `tuples`, largest first.
fn zipf_sizes(tuples: u64, brands: u32, exponent: f64) -> Vec<u64> {
    let n = brands as usize;
    if n == 0 {
        return Vec::new();
    }
    let weights: Vec<f64> = (1..=n)
        .map(|r| {
            if exponent == 1.0 {
                1.0 / r as f64
            } else {
                (r as f64).powf(-exponent)
            }
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut sizes: Vec<u64> = weights
        .iter()
        .map(|w| (tuples as f64 * w / total).floor() as u64)
        .collect();
    let mut sum: u64 = sizes.iter().sum();
    while sum > tuples {
        // Rounding pushed the floors over: take from the largest.
        sizes[0] -= (sum - tuples).min(sizes[0]);
        sum = sizes.iter().sum();
    }
    let mut i = 0;
    while sum < tuples {
        sizes[i % n] += 1;
        sum += 1;
        i += 1;
    }
    sizes
}

/// A weighted pick by the top byte of a random word.
#[derive(Debug)]
struct Pick<T: Copy>([T; 256]);

impl<T: Copy> Pick<T> {
    fn new(weights: &[(T, u32)]) -> Pick<T> {
        let total: u32 = weights.iter().map(|w| w.1).sum();
        let mut table = [weights[0].0; 256];
        let mut at = 0usize;
        let mut acc = 0u32;
        for (v, w) in weights {
            acc += w;
            let end = (acc as usize * 256) / total as usize;
            for slot in &mut table[at..end] {
                *slot = *v;
            }
            at = end;
        }
        Pick(table)
    }

    fn get(&self, bits: u64) -> T {
        self.0[(bits >> 56) as usize]
    }
}

/// A date range `[start, start + len)` in Unix seconds.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    len: u64,
}

impl Window {
    /// `[from, to)` clipped to `[lo, hi)`; the whole `[lo, hi)` if they do not meet.
    fn clipped(from: i64, to: i64, lo: i64, hi: i64) -> Window {
        let (s, e) = (from.max(lo), to.min(hi));
        if s < e {
            Window {
                start: s,
                len: (e - s) as u64,
            }
        } else {
            Window {
                start: lo,
                len: (hi - lo) as u64,
            }
        }
    }

    fn pick(self, bits: u64) -> i64 {
        self.start + below(bits, self.len) as i64
    }
}

impl Mix {
    fn new(p: &GenParams, pop: &Population) -> Mix {
        let channels = p.mesaj_share + p.arama_share + p.eposta_share;
        let phone = p.mesaj_share + p.arama_share;
        let landline_arama_only = p.arama_share > 0.0;
        // Phone groups: a subscriber gets MESAJ+ARAMA, MESAJ only or ARAMA only,
        // landlines ARAMA only; solve for the MESAJ:ARAMA ratio asked for.
        let (both, mesaj_only) = if p.arama_share == 0.0 {
            (0.0, 1.0)
        } else if p.mesaj_share == 0.0 {
            (0.0, 0.0)
        } else {
            let f = pop.landline_share();
            let r = p.mesaj_share / p.arama_share;
            let mut q = p.arama_given_mesaj;
            let mut m = r / ((1.0 - f) * (1.0 + r * (1.0 - q)));
            if m > 1.0 {
                m = 1.0;
                q = (((1.0 - f) / r - f) / (1.0 - f)).clamp(0.0, 1.0);
            }
            (q * m, (1.0 - q) * m)
        };
        let tau = p.tacir_share;
        let d = p.both_types_share.min(tau).min(1.0 - tau);
        let tacir_only = (tau * (1.0 + d) - d).max(0.0);
        let all = Window::clipped(p.date_from.0, p.date_to.0, p.date_from.0, p.date_to.0);
        let (lo, hi) = (p.date_from.0, p.date_to.0);
        use Source::*;
        Mix {
            email: if phone == 0.0 {
                u64::MAX
            } else {
                threshold(p.eposta_share / channels)
            },
            both_channels: threshold(both),
            mesaj_or_both: threshold(both + mesaj_only),
            tacir_only: threshold(tacir_only),
            tacir_or_both: threshold(tacir_only + d),
            landline_arama_only,
            ret: threshold(p.ret_share),
            ret_citizen: threshold(p.ret_citizen_share),
            onay_citizen: threshold(p.onay_citizen_share),
            tacir_undated: threshold(p.tacir_undated_share),
            retailer: threshold(p.retailer_share),
            email_capitalised: threshold(p.email_capitalised_share),
            dup: threshold(p.dup_share),
            onay_hs: Pick::new(&[
                (HsWeb, 20),
                (HsMobil, 12),
                (HsFizikselOrtam, 12),
                (HsCagriMerkezi, 12),
                (Hs2015, 10),
                (HsIslakImza, 8),
                (HsEortam, 8),
                (HsMesaj, 5),
                (HsEposta, 4),
                (HsSosyalMedya, 3),
                (HsEtkinlik, 2),
                (HsAtm, 2),
                (HsKarar, 2),
            ]),
            onay_iys: Pick::new(&[
                (IysWeb, 40),
                (IysMobil, 35),
                (IysCm, 10),
                (IysKisaLink, 10),
                (Iys3338, 5),
            ]),
            ret_hs: Pick::new(&[
                (HsCagriMerkezi, 30),
                (HsWeb, 25),
                (HsMesaj, 20),
                (HsMobil, 15),
                (HsEposta, 10),
            ]),
            ret_iys: Pick::new(&[
                (IysWeb, 35),
                (IysMobil, 30),
                (Iys3338, 15),
                (IysKisaLink, 12),
                (IysCm, 8),
            ]),
            all,
            hs2015: Window::clipped(lo, HS2015_END, lo, hi),
            bulk: Window::clipped(BULK_FROM, BULK_TO, lo, hi),
            wave: Window::clipped(WAVE_FROM, WAVE_TO, lo, hi),
            after_wave: Window::clipped(WAVE_FROM, hi, lo, hi),
        }
    }

    fn source(&self, status: Status, bits: u64, pick: u64) -> Source {
        match status {
            Status::Onay if bits < self.onay_citizen => self.onay_iys.get(pick),
            Status::Onay => self.onay_hs.get(pick),
            Status::Ret if bits < self.ret_citizen => self.ret_iys.get(pick),
            Status::Ret => self.ret_hs.get(pick),
        }
    }

    /// A consent date for a row with this status and source.
    fn date(&self, status: Status, source: Source, a: u64, b: u64) -> i64 {
        let window = match (status, source.is_citizen()) {
            _ if source == Source::Hs2015 => self.hs2015,
            // 35 % of provider consents are from the bulk registration of 2020.
            (Status::Onay, _) if a < threshold(0.35) => self.bulk,
            (Status::Onay, _) => self.all,
            // Citizens' refusals: 40 % in the 2021 wave, the rest after it.
            (Status::Ret, true) if a < threshold(0.40) => self.wave,
            (Status::Ret, true) => self.after_wave,
            (Status::Ret, false) => self.all,
        };
        window.pick(b)
    }
}

/// `YYYY-MM-DD ` for every day of the date range, so rows need no calendar maths.
#[derive(Debug)]
struct DayTable {
    first_day: i64,
    days: Vec<[u8; 11]>,
}

impl DayTable {
    fn new(from: i64, to: i64) -> DayTable {
        let first_day = (from + TURKEY_OFFSET_SECS).div_euclid(86_400);
        let last_day = (to - 1 + TURKEY_OFFSET_SECS).div_euclid(86_400);
        let days = (first_day..=last_day)
            .map(|d| {
                let text = ConsentTime(d * 86_400 - TURKEY_OFFSET_SECS).to_string();
                let mut day = [b' '; 11];
                day[..10].copy_from_slice(&text.as_bytes()[..10]);
                day
            })
            .collect();
        DayTable { first_day, days }
    }

    fn push(&self, buf: &mut Vec<u8>, t: i64) {
        let local = t + TURKEY_OFFSET_SECS;
        let day = local.div_euclid(86_400) - self.first_day;
        match usize::try_from(day).ok().and_then(|d| self.days.get(d)) {
            Some(text) => {
                buf.extend_from_slice(text);
                let s = local.rem_euclid(86_400) as u64;
                push_digits(buf, s / 3600, 2);
                buf.push(b':');
                push_digits(buf, s / 60 % 60, 2);
                buf.push(b':');
                push_digits(buf, s % 60, 2);
            }
            None => buf.extend_from_slice(ConsentTime(t).to_string().as_bytes()),
        }
    }
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

// ---------------------------------------------------------------------------
// Rows of one brand.

/// One generated row, compact and `Copy` (the e-mail text is rendered on output).
#[derive(Debug, Clone, Copy)]
struct Row {
    addr: Addr,
    channel: Channel,
    rtype: RecipientType,
    status: Status,
    date: Option<i64>,
    source: Option<Source>,
    retailer: Option<Retail>,
    /// Phone spelling 0..4, or 1 for a capitalised e-mail.
    style: u8,
}

#[derive(Debug, Clone, Copy)]
struct Retail {
    code: u32,
    access: [u32; 3],
    len: u8,
}

/// A brand's walk through one half of the population (phones or e-mails).
#[derive(Debug)]
struct Stream {
    perm: Perm,
    next: u64,
    /// The current subscriber and the (channel, type) tuples still to emit for it.
    addr: Addr,
    pending: [(Channel, RecipientType); 4],
    npending: usize,
}

impl Stream {
    fn new(perm: Perm) -> Stream {
        Stream {
            perm,
            next: 0,
            addr: Addr::Email(0),
            pending: [(Channel::Mesaj, RecipientType::Bireysel); 4],
            npending: 0,
        }
    }

    fn exhausted(&self) -> bool {
        self.npending == 0 && self.next == self.perm.len()
    }
}

#[derive(Debug)]
struct BrandState {
    index: usize,
    rng: ChaCha8Rng,
    tuples: u64,
    made: u64,
    phones: Stream,
    emails: Stream,
    dealer_base: u32,
    dealers: u32,
    /// Duplicate rows waiting for their turn, by main-row count modulo DELAY_SLOTS.
    delayed: Vec<Vec<Row>>,
    ready: Vec<Row>,
    flushed: u64,
}

impl BrandState {
    fn new(plan: &Plan, index: usize) -> BrandState {
        let mut rng = ChaCha8Rng::seed_from_u64(plan.params.seed);
        rng.set_stream(index as u64 + 1);
        let phones = Stream::new(Perm::new(plan.pop.phones(), &mut rng));
        let emails = Stream::new(Perm::new(plan.pop.emails(), &mut rng));
        let dealers = 3 + below(rng.next_u64(), 198) as u32;
        let dealer_base = 1000 + below(rng.next_u64(), 998_000) as u32;
        let delayed = if plan.mix.dup > 0 {
            (0..DELAY_SLOTS).map(|_| Vec::new()).collect()
        } else {
            Vec::new()
        };
        BrandState {
            index,
            rng,
            tuples: plan.brands[index].tuples,
            made: 0,
            phones,
            emails,
            dealer_base,
            dealers,
            delayed,
            ready: Vec::new(),
            flushed: 0,
        }
    }

    fn next_row(&mut self, plan: &Plan) -> Option<Row> {
        if let Some(row) = self.ready.pop() {
            return Some(row);
        }
        if self.made < self.tuples {
            let row = self.main_row(plan);
            self.made += 1;
            if !self.delayed.is_empty() {
                self.maybe_duplicate(plan, &row);
                let slot = (self.made % DELAY_SLOTS) as usize;
                std::mem::swap(&mut self.ready, &mut self.delayed[slot]);
            }
            return Some(row);
        }
        while !self.delayed.is_empty() && self.flushed < DELAY_SLOTS {
            self.flushed += 1;
            let slot = ((self.made + self.flushed) % DELAY_SLOTS) as usize;
            std::mem::swap(&mut self.ready, &mut self.delayed[slot]);
            if let Some(row) = self.ready.pop() {
                return Some(row);
            }
        }
        None
    }

    /// The next distinct tuple of this brand as a row.
    fn main_row(&mut self, plan: &Plan) -> Row {
        let mix = &plan.mix;
        let r = &mut self.rng;
        let want_email = r.next_u64() < mix.email;
        let use_email = if want_email {
            !self.emails.exhausted() || self.phones.exhausted()
        } else {
            self.phones.exhausted() && !self.emails.exhausted()
        };
        let stream = if use_email {
            &mut self.emails
        } else {
            &mut self.phones
        };
        if stream.npending == 0 {
            let who = stream.perm.get(stream.next);
            stream.next += 1;
            let g = r.next_u64();
            let t = r.next_u64();
            let mut channels = [Channel::Eposta; 2];
            let nch = if use_email {
                stream.addr = Addr::Email(who);
                1
            } else {
                let (addr, kind) = plan.pop.phone(who);
                stream.addr = addr;
                if kind == PhoneKind::Landline && mix.landline_arama_only {
                    channels[0] = Channel::Arama;
                    1
                } else if g < mix.both_channels {
                    channels = [Channel::Arama, Channel::Mesaj];
                    2
                } else if g < mix.mesaj_or_both {
                    channels[0] = Channel::Mesaj;
                    1
                } else {
                    channels[0] = Channel::Arama;
                    1
                }
            };
            let types: &[RecipientType] = if t < mix.tacir_only {
                &[RecipientType::Tacir]
            } else if t < mix.tacir_or_both {
                &[RecipientType::Tacir, RecipientType::Bireysel]
            } else {
                &[RecipientType::Bireysel]
            };
            for c in &channels[..nch] {
                for ty in types {
                    stream.pending[stream.npending] = (*c, *ty);
                    stream.npending += 1;
                }
            }
        }
        stream.npending -= 1;
        let (channel, rtype) = stream.pending[stream.npending];
        let addr = stream.addr;

        let s = r.next_u64();
        let status = if s < mix.ret {
            Status::Ret
        } else {
            Status::Onay
        };
        let (date, source) = if rtype == RecipientType::Tacir
            && status == Status::Onay
            && r.next_u64() < mix.tacir_undated
        {
            (None, None)
        } else {
            let a = r.next_u64();
            let source = mix.source(status, a, a << 8);
            let date = mix.date(status, source, r.next_u64(), r.next_u64());
            (Some(date), Some(source))
        };
        let x = r.next_u64();
        let retailer = (x < mix.retailer).then(|| self.retailer());
        let style = self.style(plan, addr);
        Row {
            addr,
            channel,
            rtype,
            status,
            date,
            source,
            retailer,
            style,
        }
    }

    fn style(&mut self, plan: &Plan, addr: Addr) -> u8 {
        let x = self.rng.next_u64();
        match addr {
            Addr::Email(_) => u8::from(x < plan.mix.email_capitalised),
            _ => (x >> 62) as u8,
        }
    }

    /// A collecting dealer and 1–3 dealers with access (the collector among them).
    fn retailer(&mut self) -> Retail {
        let d = u64::from(self.dealers);
        let x = self.rng.next_u64();
        let first = below(x, d);
        let len = 1 + below(x << 32, 3) as usize;
        let mut picked = [first, 0, 0];
        let mut n = 1;
        while n < len {
            let c = below(self.rng.next_u64(), d);
            if !picked[..n].contains(&c) {
                picked[n] = c;
                n += 1;
            }
        }
        let mut access = [0u32; 3];
        for (a, p) in access.iter_mut().zip(&picked[..len]) {
            *a = self.dealer_base + *p as u32;
        }
        access[..len].sort_unstable();
        Retail {
            code: self.dealer_base + first as u32,
            access,
            len: len as u8,
        }
    }

    /// With probability `dup_share`, schedule another row for the same tuple,
    /// older or newer, possibly with the other status, a few rows later.
    fn maybe_duplicate(&mut self, plan: &Plan, row: &Row) {
        let mix = &plan.mix;
        let x = self.rng.next_u64();
        let Some(date) = row.date else { return };
        if x >= mix.dup {
            return;
        }
        let y = self.rng.next_u64();
        let shift = 1 + below(y, 2 * 365 * 86_400) as i64;
        let (lo, hi) = (plan.params.date_from.0, plan.params.date_to.0 - 1);
        let older = (date - shift).max(lo);
        let newer = (date + shift).min(hi);
        let other = if y >> 63 == 0 && older != date {
            older
        } else if newer != date {
            newer
        } else if older != date {
            older
        } else {
            return;
        };
        let z = self.rng.next_u64();
        let status = if z >> 63 == 0 {
            row.status
        } else {
            match row.status {
                Status::Onay => Status::Ret,
                Status::Ret => Status::Onay,
            }
        };
        let a = self.rng.next_u64();
        let mut dup = *row;
        dup.status = status;
        dup.source = Some(mix.source(status, a, a << 8));
        dup.date = Some(other);
        dup.style = self.style(plan, row.addr);
        let delay = 1 + below(z << 1, DELAY_SLOTS - 1);
        let slot = ((self.made + delay) % DELAY_SLOTS) as usize;
        self.delayed[slot].push(dup);
    }
}

// ---------------------------------------------------------------------------
// CLI.

/// `iys-gate gen`: write synthetic consents as a CSV export.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// Distinct (brand, address, channel, recipient type) tuples to write.
    #[arg(long)]
    pub tuples: u64,
    /// Brands to spread them over (Zipf-sized).
    #[arg(long, default_value_t = 1000)]
    pub brands: u32,
    /// Random seed: same seed, same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output file, `-` for standard output.
    #[arg(long)]
    pub out: PathBuf,
    /// Extra older/newer rows for existing tuples, as a share of tuples.
    #[arg(long, default_value_t = 0.0)]
    pub dup_share: f64,
}

/// Run `gen`: write the file, then a one-line summary to stderr.
pub fn run(args: GenArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let mut params = GenParams::new(args.tuples, args.brands, args.seed);
    params.dup_share = args.dup_share;
    let generator = Generator::new(&params)?;
    let started = Instant::now();
    let to_stdout = args.out.as_os_str() == "-";
    let (rows, bytes) = if to_stdout {
        let mut out = Counting::new(io::stdout().lock());
        let rows = generator.write_csv(&mut out).context("writing to stdout")?;
        (rows, out.bytes)
    } else {
        let file =
            File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
        let mut out = Counting::new(file);
        let rows = generator
            .write_csv(&mut out)
            .with_context(|| format!("writing {}", args.out.display()))?;
        (rows, out.bytes)
    };
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "gen: {rows} rows ({} tuples, {} brands, seed {}), {bytes} bytes to {} in {secs:.2} s ({:.0} rows/s)",
        params.tuples,
        params.brands,
        params.seed,
        if to_stdout { "stdout".into() } else { args.out.display().to_string() },
        rows as f64 / secs.max(1e-9),
    );
    Ok(())
}

/// Counts bytes on their way to the writer.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W> Counting<W> {
    fn new(inner: W) -> Self {
        Counting { inner, bytes: 0 }
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
