use std::collections::{HashMap, HashSet};

use super::*;
use crate::consent::AddressKey;

fn csv(params: &GenParams) -> Vec<u8> {
    let mut out = Vec::new();
    let rows = write_csv(params, &mut out).unwrap();
    assert_eq!(
        rows,
        out.iter().filter(|&&b| b == b'\n').count() as u64 - 1,
        "returned row count"
    );
    out
}

fn tuple_key(r: &ConsentRecord) -> (Brand, AddressKey, Channel, RecipientType) {
    (r.brand, r.address.key(), r.channel, r.recipient_type)
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let p = GenParams::new(20_000, 20, 1);
    let a = csv(&p);
    assert_eq!(a, csv(&p));
    let q = GenParams::new(20_000, 20, 2);
    assert_ne!(a, csv(&q));
}

#[test]
fn exact_row_count() {
    for (tuples, brands) in [(0, 5), (1, 1), (7, 10), (12_345, 17), (50_000, 1000)] {
        let p = GenParams::new(tuples, brands, 9);
        let g = Generator::new(&p).unwrap();
        assert_eq!(g.brands().iter().map(|b| b.tuples).sum::<u64>(), tuples);
        let it = g.records();
        assert_eq!(it.size_hint(), (tuples as usize, Some(tuples as usize)));
        assert_eq!(it.count() as u64, tuples);
        assert_eq!(g.write_csv(io::sink()).unwrap(), tuples);
    }
}

#[test]
fn every_csv_row_parses_back_to_the_record() {
    let mut p = GenParams::new(30_000, 12, 5);
    p.dup_share = 0.1;
    let text = String::from_utf8(csv(&p)).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), CSV_HEADER.join(","));
    let mut records = generate(&p);
    let mut n = 0;
    for line in lines {
        let parsed = ConsentRecord::from_csv_fields(line.split(','))
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(Some(parsed), records.next(), "{line}");
        n += 1;
    }
    assert!(records.next().is_none());
    assert!(n > 30_000);
    // The csv crate path reads it too.
    let via_reader: Vec<_> = crate::consent::CsvReader::new(text.as_bytes()).collect();
    assert_eq!(via_reader.len(), n);
    assert!(via_reader.iter().all(|r| r.is_ok()));
}

#[test]
fn tuples_are_distinct_within_a_brand_and_shared_across() {
    // A small population, so brands overlap heavily and walks go deep.
    let mut p = GenParams::new(100_000, 8, 3);
    p.mobiles = 30_000;
    p.landlines = 2_500;
    p.foreign = 300;
    p.emails = 12_500;
    let mut seen = HashSet::new();
    let mut brands_of: HashMap<AddressKey, HashSet<Brand>> = HashMap::new();
    for r in generate(&p) {
        assert!(seen.insert(tuple_key(&r)), "repeated tuple {r:?}");
        brands_of
            .entry(r.address.key())
            .or_default()
            .insert(r.brand);
    }
    assert_eq!(seen.len(), 100_000);
    let shared = brands_of.values().filter(|b| b.len() > 1).count();
    assert!(
        shared > brands_of.len() / 2,
        "{shared} of {}",
        brands_of.len()
    );
}

#[test]
fn largest_brand_fills_the_population() {
    // One brand asking for nearly all tuples the population holds: the walks
    // run dry and fall back to the other stream, still without repeats.
    let mut p = GenParams::new(14_000, 1, 4);
    p.mobiles = 10_000;
    p.landlines = 0;
    p.foreign = 0;
    p.emails = 4_000;
    let mut seen = HashSet::new();
    for r in generate(&p) {
        assert!(seen.insert(tuple_key(&r)));
    }
    assert_eq!(seen.len(), 14_000);
    p.tuples = 14_001;
    assert!(p.validate().is_err());
}

#[test]
fn zipf_skew_and_codes() {
    let g = Generator::new(&GenParams::standard()).unwrap();
    let sizes: Vec<u64> = g.brands().iter().map(|b| b.tuples).collect();
    assert_eq!(sizes.len(), 1000);
    assert_eq!(sizes.iter().sum::<u64>(), 100_000_000);
    let largest = sizes[0] as f64 / 1e8;
    assert!((0.125..0.145).contains(&largest), "{largest}");
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    assert!(
        sizes[0] > 100 * sorted[500],
        "{} vs {}",
        sizes[0],
        sorted[500]
    );
    let mut codes = HashSet::new();
    let mut per_provider: HashMap<u32, u32> = HashMap::new();
    for b in g.brands() {
        assert!((600_000..1_000_000).contains(&b.brand.iys_code));
        assert!((100_000..1_000_000).contains(&b.brand.brand_code));
        assert!(codes.insert(b.brand.brand_code));
        *per_provider.entry(b.brand.iys_code).or_default() += 1;
    }
    let multi = per_provider.values().filter(|&&n| n > 1).count();
    assert!(multi > 100, "{multi} providers own several brands");
}

#[test]
fn mix_within_tolerance() {
    let p = GenParams::new(200_000, 20, 11);
    let mut channel = [0u64; 3];
    let mut tacir = 0u64;
    let mut ret = 0u64;
    let mut ret_citizen = 0u64;
    let mut onay_hs = 0u64;
    let mut tacir_undated = 0u64;
    let mut retail = 0u64;
    let mut foreign = 0u64;
    let mut landline_mesaj = 0u64;
    // (brand, phone) -> channels seen, for the MESAJ/ARAMA correlation.
    let mut phone_channels: HashMap<(Brand, AddressKey), (bool, bool)> = HashMap::new();
    let (from, to) = (p.date_from, p.date_to);
    for r in generate(&p) {
        channel[r.channel.index()] += 1;
        if r.recipient_type == RecipientType::Tacir {
            tacir += 1;
            if r.consent_date.is_none() {
                assert!(r.source.is_none());
                tacir_undated += 1;
            }
        } else {
            assert!(r.consent_date.is_some() && r.source.is_some());
        }
        if let Some(d) = r.consent_date {
            assert!(d >= from && d < to);
        }
        match r.status {
            Status::Ret => {
                ret += 1;
                assert!(r.source.is_some());
                ret_citizen += u64::from(r.source.unwrap().is_citizen());
            }
            Status::Onay => onay_hs += u64::from(r.source.is_some_and(|s| !s.is_citizen())),
        }
        if let Some(code) = r.retailer_code {
            retail += 1;
            assert!((1..=3).contains(&r.retailer_access.len()));
            assert!(r.retailer_access.contains(&code));
        } else {
            assert!(r.retailer_access.is_empty());
        }
        if let Address::Phone(ph) = &r.address {
            match ph.key() {
                AddressKey::ForeignPhone(_) => foreign += 1,
                AddressKey::TrPhone(_) => {
                    let national = ph.tr_national().unwrap();
                    if national < 5_000_000_000 && r.channel == Channel::Mesaj {
                        landline_mesaj += 1;
                    }
                }
                AddressKey::Email(_) => unreachable!(),
            }
            if r.recipient_type == RecipientType::Bireysel {
                let e = phone_channels.entry((r.brand, ph.key())).or_default();
                match r.channel {
                    Channel::Mesaj => e.0 = true,
                    _ => e.1 = true,
                }
            }
        }
    }
    let n = 200_000f64;
    let near = |what: &str, got: u64, of: f64, want: f64, tol: f64| {
        let share = got as f64 / of;
        assert!(
            (share - want).abs() <= tol,
            "{what}: {share:.4}, want {want}"
        );
    };
    near("MESAJ", channel[0], n, 0.50, 0.01);
    near("ARAMA", channel[1], n, 0.35, 0.01);
    near("EPOSTA", channel[2], n, 0.15, 0.01);
    near("TACIR", tacir, n, 0.10, 0.01);
    near("RET", ret, n, 0.08, 0.005);
    near("RET by citizens", ret_citizen, ret as f64, 0.85, 0.02);
    near("ONAY by providers", onay_hs, n - ret as f64, 0.94, 0.03);
    near(
        "undated TACIR",
        tacir_undated,
        tacir as f64,
        0.30 * 0.92,
        0.02,
    );
    near("retailer", retail, n, 0.02, 0.003);
    near(
        "foreign phones",
        foreign,
        channel[0] as f64 + channel[1] as f64,
        0.005,
        0.002,
    );
    assert_eq!(landline_mesaj, 0, "landlines take calls, not SMS");
    let mesaj = phone_channels.values().filter(|c| c.0).count() as f64;
    let both = phone_channels.values().filter(|c| c.0 && c.1).count() as f64;
    assert!(both / mesaj > 0.5, "ARAMA given MESAJ: {}", both / mesaj);
}

#[test]
fn spellings_mix_and_addresses_look_turkish() {
    let text = String::from_utf8(csv(&GenParams::new(40_000, 5, 8))).unwrap();
    let mut forms = [0u32; 4];
    let mut turkish_letters = 0;
    let mut capitalised = 0;
    let mut prefixes = HashSet::new();
    let mut domains = HashSet::new();
    for line in text.lines().skip(1) {
        let recipient = line.split(',').nth(2).unwrap();
        if let Some((_, domain)) = recipient.split_once('@') {
            domains.insert(domain.to_string());
            turkish_letters += u32::from(!recipient.is_ascii());
            capitalised += u32::from(recipient.bytes().any(|b| b.is_ascii_uppercase()));
            continue;
        }
        let form = if recipient.starts_with("+90") {
            0
        } else if recipient.starts_with('+') {
            continue;
        } else if recipient.starts_with("90") && recipient.len() == 12 {
            1
        } else if recipient.starts_with('0') {
            2
        } else {
            3
        };
        forms[form] += 1;
        let national = &recipient[recipient.len() - 10..];
        prefixes.insert(national[..3].to_string());
    }
    let phones: u32 = forms.iter().sum();
    for f in forms {
        assert!(f64::from(f) / f64::from(phones) > 0.2, "{forms:?}");
    }
    assert!(prefixes.contains("532") && prefixes.contains("542") && prefixes.contains("505"));
    assert!(
        prefixes.contains("212") || prefixes.contains("312"),
        "landlines"
    );
    assert!(prefixes.len() > 50, "{}", prefixes.len());
    assert!(domains.contains("gmail.com") && domains.iter().any(|d| d.ends_with(".com.tr")));
    assert!(turkish_letters > 100 && capitalised > 50);
}

#[test]
fn duplicates_are_older_and_newer_rows_of_existing_tuples() {
    let mut p = GenParams::new(50_000, 10, 6);
    p.dup_share = 0.2;
    let rows: Vec<ConsentRecord> = generate(&p).collect();
    assert!(rows.len() > 58_000 && rows.len() < 62_000, "{}", rows.len());
    let mut newest: HashMap<_, (usize, Option<ConsentTime>)> = HashMap::new();
    let mut newer_first = 0;
    let mut older_first = 0;
    for (i, r) in rows.iter().enumerate() {
        let key = tuple_key(r);
        match newest.get(&key) {
            None => {
                newest.insert(key, (i, r.consent_date));
            }
            Some(&(_, prev)) => {
                assert_ne!(prev, r.consent_date, "duplicate rows differ in date");
                if r.consent_date > prev {
                    older_first += 1;
                    newest.insert(key, (i, r.consent_date));
                } else {
                    newer_first += 1;
                }
            }
        }
    }
    assert_eq!(newest.len(), 50_000);
    assert!(
        newer_first > 1000 && older_first > 1000,
        "{newer_first} {older_first}"
    );
    // Off by default: the standard set has one row per tuple.
    assert_eq!(GenParams::standard().dup_share, 0.0);
}

#[test]
fn brands_generate_independently() {
    let g = Generator::new(&GenParams::new(20_000, 7, 12)).unwrap();
    let all: Vec<ConsentRecord> = g.records().collect();
    let by_brand: Vec<ConsentRecord> = (0..7).flat_map(|i| g.brand_records(i)).collect();
    assert_eq!(all, by_brand);
    fn is_send<T: Send + 'static>(_: &T) {}
    is_send(&g.brand_records(0));
}

#[test]
fn invalid_parameters_are_refused() {
    let mut p = GenParams::new(10, 0, 1);
    assert!(p.validate().is_err());
    p.brands = 1;
    p.ret_share = 1.5;
    assert!(p.validate().unwrap_err().to_string().contains("ret_share"));
    let mut p = GenParams::new(10, 1, 1);
    p.date_from = ConsentTime(EARLIEST.0 - 1);
    assert!(p.validate().is_err());
    assert!(write_csv(&GenParams::new(10, 600_000, 1), io::sink()).is_err());
    assert_eq!(
        DEFAULT_DATE_TO,
        ConsentTime::parse("2026-11-01 00:00:00").unwrap()
    );
}

/// Throughput, release build:
/// `cargo test --release --lib gen::tests::rate -- --ignored --nocapture`
#[test]
#[ignore]
fn rate() {
    let n: u64 = std::env::var("GEN_RATE_TUPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let p = GenParams::new(n, 1000, 1);
    let g = Generator::new(&p).unwrap();
    let t = Instant::now();
    let mut check = 0u64;
    for r in g.records() {
        check = check.wrapping_add(r.retailer_code.unwrap_or(0) as u64);
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "iterator: {n} records in {secs:.2} s = {:.2} M records/s ({check})",
        n as f64 / secs / 1e6
    );
    let mut out = Counting::new(io::sink());
    let t = Instant::now();
    let rows = g.write_csv(&mut out).unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "csv: {rows} rows, {} bytes in {secs:.2} s = {:.2} M rows/s, {:.0} MB/s",
        out.bytes,
        rows as f64 / secs / 1e6,
        out.bytes as f64 / secs / 1e6
    );
}
