//! The synthetic population every brand draws from: Turkish mobile and landline
//! numbers, a few foreign mobiles, and e-mail addresses. A population index maps to
//! an address by a fixed bijection (keyed by the seed), so the numbers are spread
//! over the real prefixes rather than consecutive, and the same subscriber recurs
//! across brands.

use rand::RngCore;

/// A seeded permutation of `0..n`: an alternating (unbalanced) Feistel network over
/// the next power of two, with cycle walking back into `0..n`. Cheap, needs no
/// memory, and any prefix of it is a uniform-looking sample without repeats. The
/// round function is a keyed multiply-shift hash (top bits of the product).
#[derive(Debug, Clone)]
pub(super) struct Perm {
    n: u64,
    rbits: u32,
    lmask: u64,
    rmask: u64,
    lshift: u32,
    rshift: u32,
    keys: [(u64, u64); ROUNDS],
}

const ROUNDS: usize = 6;

impl Perm {
    pub(super) fn new(n: u64, rng: &mut impl RngCore) -> Perm {
        let bits = bits_for(n);
        let rbits = bits / 2;
        let lbits = bits - rbits;
        let mut keys = [(0u64, 0u64); ROUNDS];
        for k in &mut keys {
            *k = (rng.next_u64(), rng.next_u64() | 1);
        }
        Perm {
            n,
            rbits,
            lmask: mask(lbits),
            rmask: mask(rbits),
            lshift: 64 - lbits,
            rshift: (64 - rbits).min(63),
            keys,
        }
    }

    /// The size of the permuted range.
    pub(super) fn len(&self) -> u64 {
        self.n
    }

    /// The image of `x` (`x < len()`).
    #[inline]
    pub(super) fn get(&self, x: u64) -> u64 {
        debug_assert!(x < self.n);
        let mut y = x;
        loop {
            y = self.round_trip(y);
            if y < self.n {
                return y;
            }
        }
    }

    #[inline]
    fn round_trip(&self, x: u64) -> u64 {
        let mut l = x >> self.rbits;
        let mut r = x & self.rmask;
        for (i, &(k, m)) in self.keys.iter().enumerate() {
            if i % 2 == 0 {
                l ^= ((r ^ k).wrapping_mul(m) >> self.lshift) & self.lmask;
            } else {
                r ^= ((l ^ k).wrapping_mul(m) >> self.rshift) & self.rmask;
            }
        }
        (l << self.rbits) | r
    }
}

/// Bits needed for `0..n` (at least 1).
pub(super) fn bits_for(n: u64) -> u32 {
    (64 - n.saturating_sub(1).leading_zeros()).max(1)
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Uniform in `0..n` from 64 random bits (multiply-high; the bias is below 2^-32
/// for the ranges used here, and it is the same on every platform).
pub(super) fn below(bits: u64, n: u64) -> u64 {
    ((u128::from(bits) * u128::from(n)) >> 64) as u64
}

/// Mobile prefixes in use: Türk Telekom, Turkcell, Vodafone.
pub(super) const MOBILE_PREFIXES: [u64; 31] = [
    501, 505, 506, 507, 551, 552, 553, 554, 555, 559, // Türk Telekom
    530, 531, 532, 533, 534, 535, 536, 537, 538, 539, 561, // Turkcell
    540, 541, 542, 543, 544, 545, 546, 547, 548, 549, // Vodafone
];

/// Landline area codes (a representative set of the 81 provinces).
pub(super) const AREA_CODES: [u64; 40] = [
    212, 216, 312, 232, 224, 242, 322, 332, 352, 262, 258, 462, 222, 226, 236, 246, 256, 264, 266,
    272, 274, 282, 284, 286, 318, 324, 326, 342, 344, 362, 364, 380, 412, 414, 422, 424, 442, 452,
    454, 482,
];

/// Subscriber numbers per mobile prefix.
const MOBILE_BLOCK: u64 = 10_000_000;
/// Landline subscriber numbers per area code: 7 digits starting with 2..9.
const LANDLINE_BLOCK: u64 = 8_000_000;
/// Turkish numbers come from a permutation of `0..2^28`: value `v` is block
/// `v % blocks`, subscriber `v / blocks` stretched over the block (strictly
/// increasing, so injective). No cycle walking on the hot path.
const TR_BITS: u32 = 28;

/// `v` in `0..2^TR_BITS` as (block index, subscriber number within a block of `size`).
fn spread(v: u64, blocks: u64, size: u64) -> (usize, u64) {
    let per_block = (1u64 << TR_BITS).div_ceil(blocks);
    ((v % blocks) as usize, v / blocks * size / per_block)
}

/// Foreign mobile ranges: (E.164 digits before the subscriber part, subscriber digits).
const FOREIGN: [(u64, u32); 12] = [
    (4915, 9),  // Germany
    (4917, 9),  // Germany
    (447, 9),   // United Kingdom
    (316, 8),   // Netherlands
    (99450, 7), // Azerbaijan
    (99455, 7), // Azerbaijan
    (336, 8),   // France
    (79, 9),    // Russia
    (4176, 7),  // Switzerland
    (35988, 7), // Bulgaria
    (9955, 8),  // Georgia
    (38067, 7), // Ukraine
];

/// Multiplier coprime to 10: a bijection on `0..10^d` for every `d`.
const FOREIGN_MULT: u64 = 2_654_435_761;

/// First names, ASCII and with Turkish letters (both spellings occur in real mail
/// addresses). No name is a single letter; none contains a digit, `.` or `_`.
pub(super) const FIRST_NAMES: &[&str] = &[
    "ahmet",
    "mehmet",
    "mustafa",
    "ali",
    "huseyin",
    "hasan",
    "ibrahim",
    "ismail",
    "osman",
    "yusuf",
    "murat",
    "omer",
    "ramazan",
    "halil",
    "suleyman",
    "abdullah",
    "mahmut",
    "recep",
    "salih",
    "fatih",
    "kadir",
    "emre",
    "burak",
    "serkan",
    "volkan",
    "onur",
    "kemal",
    "cem",
    "deniz",
    "baris",
    "tolga",
    "selim",
    "eren",
    "kaan",
    "arda",
    "efe",
    "berk",
    "umut",
    "mert",
    "ayse",
    "fatma",
    "emine",
    "hatice",
    "zeynep",
    "elif",
    "meryem",
    "sultan",
    "hulya",
    "esra",
    "merve",
    "ozlem",
    "sibel",
    "derya",
    "seda",
    "ebru",
    "gamze",
    "pinar",
    "tugba",
    "busra",
    "kubra",
    "yasemin",
    "asli",
    "ceren",
    "irem",
    "ecem",
    "melis",
    "selin",
    "defne",
    "leyla",
    "aylin",
    "gizem",
    "buse",
    "dilek",
    "gokhan",
    "ozge",
    "cagla",
    "sule",
    "ugur",
    "hakan",
    "hüseyin",
    "ömer",
    "süleyman",
    "barış",
    "özlem",
    "hülya",
    "pınar",
    "tuğba",
    "büşra",
    "kübra",
    "aslı",
    "gül",
    "çağla",
    "gökhan",
    "şule",
    "özge",
    "ılgın",
    "ümit",
    "çağrı",
    "şeyma",
    "gülşen",
    "oğuz",
    "tuğçe",
    "görkem",
    "ayşe",
    "uğur",
    "doğukan",
    "ışıl",
];

/// Surnames, ASCII and with Turkish letters.
pub(super) const SURNAMES: &[&str] = &[
    "yilmaz",
    "kaya",
    "demir",
    "sahin",
    "celik",
    "yildiz",
    "yildirim",
    "ozturk",
    "aydin",
    "ozdemir",
    "arslan",
    "dogan",
    "kilic",
    "aslan",
    "cetin",
    "kara",
    "koc",
    "kurt",
    "ozkan",
    "simsek",
    "polat",
    "ozcan",
    "korkmaz",
    "cakir",
    "erdogan",
    "yavuz",
    "aksoy",
    "bulut",
    "gunes",
    "tekin",
    "keskin",
    "karaca",
    "erdem",
    "akin",
    "sari",
    "acar",
    "bozkurt",
    "tas",
    "duman",
    "uysal",
    "guler",
    "unal",
    "turan",
    "kaplan",
    "aktas",
    "kose",
    "ates",
    "ciftci",
    "yalcin",
    "sen",
    "coskun",
    "yilmazer",
    "ekinci",
    "ucar",
    "yılmaz",
    "şahin",
    "çelik",
    "yıldız",
    "yıldırım",
    "öztürk",
    "aydın",
    "özdemir",
    "doğan",
    "kılıç",
    "çetin",
    "koç",
    "özkan",
    "şimşek",
    "özcan",
    "çakır",
    "erdoğan",
    "güneş",
    "sarı",
    "taş",
    "güler",
    "ünal",
    "aktaş",
    "köse",
    "ateş",
    "çiftçi",
    "yalçın",
    "şen",
    "coşkun",
];

/// Mail domains with weights (per mille of the e-mail population).
const DOMAINS: [(&str, u64); 18] = [
    ("gmail.com", 400),
    ("hotmail.com", 180),
    ("outlook.com", 70),
    ("yahoo.com", 60),
    ("yandex.com", 40),
    ("icloud.com", 40),
    ("mynet.com", 40),
    ("yandex.com.tr", 20),
    ("windowslive.com", 15),
    ("ttmail.com", 15),
    ("ornekfirma.com.tr", 15),
    ("egetekstil.com.tr", 15),
    ("marmaralojistik.com.tr", 15),
    ("karadenizgida.com.tr", 15),
    ("ankarainsaat.com.tr", 15),
    ("akdenizturizm.com.tr", 15),
    ("yildizotomotiv.com.tr", 15),
    ("bogazicimuhendislik.com.tr", 15),
];

/// Separators between first name and surname.
const SEPARATORS: [&str; 3] = [".", "", "_"];

/// Suffix variants: none, a birth year 1950..=2009, two digits, three digits. All
/// digit strings of one length class, classes of different lengths: distinct.
const SUFFIXES: u64 = 1 + 60 + 100 + 1000;

/// A generated address, compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Addr {
    /// A Turkish national number (10 digits, 2xx..5xx).
    Tr(u64),
    /// A foreign number as E.164 digits.
    Foreign(u64),
    /// An e-mail, by population index.
    Email(u64),
}

/// What kind of line a phone number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PhoneKind {
    Mobile,
    Landline,
    Foreign,
}

/// The population: sizes and the keyed bijections.
#[derive(Debug, Clone)]
pub(super) struct Population {
    mobiles: u64,
    landlines: u64,
    foreign: u64,
    emails: u64,
    mobile_map: Perm,
    landline_map: Perm,
    email_map: Perm,
    foreign_key: u64,
    /// Start of each domain's share of the (permuted) e-mail index range.
    domain_starts: Vec<u64>,
}

impl Population {
    pub(super) fn new(
        mobiles: u64,
        landlines: u64,
        foreign: u64,
        emails: u64,
        rng: &mut impl RngCore,
    ) -> Result<Population, String> {
        let tr_space = 1u64 << TR_BITS;
        if mobiles > tr_space || landlines > tr_space {
            return Err(format!(
                "mobiles and landlines are limited to {tr_space} each"
            ));
        }
        let foreign_space = FOREIGN.len() as u64 * 10_000_000;
        if foreign > foreign_space {
            return Err(format!("foreign {foreign} exceeds {foreign_space}"));
        }
        // E-mails: a permutation of 0..2^k (k = bits for `emails`), the range
        // split among the domains by weight.
        let email_space = 1u64 << bits_for(emails);
        let capacity = email_capacity();
        let total_weight: u64 = DOMAINS.iter().map(|d| d.1).sum();
        let mut domain_starts = Vec::with_capacity(DOMAINS.len());
        let mut start = 0u64;
        for (i, (name, w)) in DOMAINS.iter().enumerate() {
            domain_starts.push(start);
            let size = if i + 1 == DOMAINS.len() {
                email_space - start
            } else {
                (u128::from(email_space) * u128::from(*w) / u128::from(total_weight)) as u64
            };
            if size > capacity {
                return Err(format!(
                    "emails {emails} is too many: {name} could need {size} distinct addresses, at most {capacity}"
                ));
            }
            start += size;
        }
        Ok(Population {
            mobiles,
            landlines,
            foreign,
            emails,
            mobile_map: Perm::new(tr_space, rng),
            landline_map: Perm::new(tr_space, rng),
            email_map: Perm::new(email_space, rng),
            foreign_key: rng.next_u64(),
            domain_starts,
        })
    }

    /// Phone subscribers: mobiles, then landlines, then foreign numbers.
    pub(super) fn phones(&self) -> u64 {
        self.mobiles + self.landlines + self.foreign
    }

    pub(super) fn emails(&self) -> u64 {
        self.emails
    }

    /// Share of landlines among phone subscribers.
    pub(super) fn landline_share(&self) -> f64 {
        match self.phones() {
            0 => 0.0,
            n => self.landlines as f64 / n as f64,
        }
    }

    /// The phone number of subscriber `idx` (`idx < phones()`).
    pub(super) fn phone(&self, idx: u64) -> (Addr, PhoneKind) {
        if idx < self.mobiles {
            let v = self.mobile_map.get(idx);
            let (block, sub) = spread(v, MOBILE_PREFIXES.len() as u64, MOBILE_BLOCK);
            (
                Addr::Tr(MOBILE_PREFIXES[block] * MOBILE_BLOCK + sub),
                PhoneKind::Mobile,
            )
        } else if idx < self.mobiles + self.landlines {
            let v = self.landline_map.get(idx - self.mobiles);
            let (block, sub) = spread(v, AREA_CODES.len() as u64, LANDLINE_BLOCK);
            (
                Addr::Tr(AREA_CODES[block] * 10_000_000 + 2_000_000 + sub),
                PhoneKind::Landline,
            )
        } else {
            let j = idx - self.mobiles - self.landlines;
            let n = FOREIGN.len() as u64;
            let (prefix, digits) = FOREIGN[(j % n) as usize];
            let m = 10u64.pow(digits);
            let w = j / n;
            let s = ((u128::from(w) * u128::from(FOREIGN_MULT) + u128::from(self.foreign_key))
                % u128::from(m)) as u64;
            (Addr::Foreign(prefix * m + s), PhoneKind::Foreign)
        }
    }

    /// Append e-mail address `idx` (`idx < emails()`), lower case, or with the
    /// names capitalised (ASCII letters only, so case folding gives it back).
    pub(super) fn email(&self, idx: u64, capitalised: bool, buf: &mut Vec<u8>) {
        let v = self.email_map.get(idx);
        let d = self.domain_starts.partition_point(|&s| s <= v) - 1;
        let mut o = v - self.domain_starts[d];
        let nf = FIRST_NAMES.len() as u64;
        let ns = SURNAMES.len() as u64;
        let first = FIRST_NAMES[(o % nf) as usize];
        o /= nf;
        let last = SURNAMES[(o % ns) as usize];
        o /= ns;
        let sep = SEPARATORS[(o % 3) as usize];
        let suffix = o / 3;
        push_name(buf, first, capitalised);
        buf.extend_from_slice(sep.as_bytes());
        push_name(buf, last, capitalised);
        match suffix {
            0 => {}
            1..=60 => push_digits(buf, 1949 + suffix, 4),
            61..=160 => push_digits(buf, suffix - 61, 2),
            _ => push_digits(buf, suffix - 161, 3),
        }
        buf.push(b'@');
        buf.extend_from_slice(DOMAINS[d].0.as_bytes());
    }
}

/// Distinct addresses one domain can hold.
fn email_capacity() -> u64 {
    FIRST_NAMES.len() as u64 * SURNAMES.len() as u64 * SEPARATORS.len() as u64 * SUFFIXES
}

fn push_name(buf: &mut Vec<u8>, name: &str, capitalised: bool) {
    let start = buf.len();
    buf.extend_from_slice(name.as_bytes());
    if capitalised {
        buf[start].make_ascii_uppercase();
    }
}

/// Append `n` as exactly `width` decimal digits.
pub(super) fn push_digits(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let start = buf.len();
    buf.resize(start + width, b'0');
    for i in (start..start + width).rev() {
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{AddressKey, Email, Phone};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashSet;

    #[test]
    fn perm_is_a_bijection() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for n in [1u64, 2, 3, 5, 64, 1000, 4097, 100_003] {
            let p = Perm::new(n, &mut rng);
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = p.get(x);
                assert!(!seen[y as usize], "n={n} repeats {y}");
                seen[y as usize] = true;
            }
        }
    }

    #[test]
    fn perm_prefixes_look_like_random_samples() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 1u64 << 20;
        let a = Perm::new(n, &mut rng);
        let b = Perm::new(n, &mut rng);
        let take = 100_000u64;
        let sa: HashSet<u64> = (0..take).map(|x| a.get(x)).collect();
        let overlap = (0..take).filter(|&x| sa.contains(&b.get(x))).count() as f64;
        let expected = (take * take) as f64 / n as f64;
        assert!(
            (overlap / expected - 1.0).abs() < 0.05,
            "{overlap} vs {expected}"
        );
        let mut buckets = [0u32; 16];
        for &v in &sa {
            buckets[(v >> 16) as usize] += 1;
        }
        for c in buckets {
            assert!(
                (f64::from(c) / (take as f64 / 16.0) - 1.0).abs() < 0.05,
                "{buckets:?}"
            );
        }
    }

    #[test]
    fn name_lists_render_injectively() {
        let mut names = HashSet::new();
        for n in FIRST_NAMES.iter().chain(SURNAMES) {
            assert!(n.chars().count() > 1);
            assert!(!n.contains(['.', '_', '@']) && !n.chars().any(|c| c.is_ascii_digit()));
            assert_eq!(n.to_lowercase(), *n);
        }
        for f in FIRST_NAMES {
            assert!(names.insert(*f), "duplicate first name {f}");
        }
        let mut lasts = HashSet::new();
        for l in SURNAMES {
            assert!(lasts.insert(*l), "duplicate surname {l}");
        }
        // With the empty separator, first+last must not be ambiguous.
        let mut joined = HashSet::new();
        for f in FIRST_NAMES {
            for l in SURNAMES {
                assert!(joined.insert(format!("{f}{l}")), "{f}{l} is ambiguous");
            }
        }
    }

    #[test]
    fn addresses_are_distinct_and_valid() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let pop = Population::new(100_000, 20_000, 5_000, 100_000, &mut rng).unwrap();
        let mut keys = HashSet::new();
        let mut kinds = [0u32; 3];
        for i in 0..pop.phones() {
            let (addr, kind) = pop.phone(i);
            kinds[kind as usize] += 1;
            let phone = match addr {
                Addr::Tr(n) => Phone::parse(&format!("0{n}")).unwrap(),
                Addr::Foreign(d) => Phone::parse(&format!("+{d}")).unwrap(),
                Addr::Email(_) => unreachable!(),
            };
            if kind == PhoneKind::Foreign {
                assert!(matches!(phone.key(), AddressKey::ForeignPhone(_)));
            }
            assert!(keys.insert(phone.key()), "repeat {phone}");
        }
        assert_eq!(kinds, [100_000, 20_000, 5_000]);
        // Subscriber numbers use the whole 7-digit range of each prefix.
        let high = (0..100_000)
            .filter(|&i| matches!(pop.phone(i).0, Addr::Tr(n) if n % 10_000_000 >= 9_000_000))
            .count();
        assert!(high > 7_500, "{high}");
        let mut buf = Vec::new();
        let mut turkish = 0;
        for i in 0..pop.emails() {
            buf.clear();
            pop.email(i, i % 2 == 0, &mut buf);
            let text = std::str::from_utf8(&buf).unwrap();
            if !text.is_ascii() {
                turkish += 1;
            }
            let e = Email::parse(text).unwrap();
            assert!(keys.insert(e.key()), "repeat {text}");
        }
        assert!(turkish > 5_000, "{turkish}");
    }
}
