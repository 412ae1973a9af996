//! The snapshot file: a versioned header, the body's length and CRC-32, then the
//! body (dictionaries, per-brand sync state and cursors, the packed sets).
//! Written to a temporary file, fsynced and renamed; read whole, checked, and
//! parsed with every length bounded by the bytes present, so a corrupt or
//! truncated file is refused and never half-loaded.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::arena;
use super::dictionary::Dictionary;
use super::keyset::{BaseSet, DeltaEntry, KeySet};
use super::packed::PackedSet;
use super::snapshot::{key_of_index, BrandEntry, Snapshot, SyncState, KEYS_PER_BRAND};
use crate::consent::{Brand, Channel, ConsentTime, Status};

/// First bytes of every snapshot file.
pub const MAGIC: &[u8; 8] = b"IYSSNAP\0";
/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 4;
const HEADER_LEN: usize = 32;

/// Why a snapshot file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a snapshot file.
    #[error("not an iys-gate snapshot file (bad magic)")]
    Magic,
    /// Written by another format version.
    #[error("snapshot format {found} is not supported (this build reads {FORMAT_VERSION}); rebuild it with `iys-gate snapshot build`")]
    Version {
        /// The version in the file.
        found: u32,
    },
    /// Shorter or longer than the header says.
    #[error(
        "snapshot is truncated or padded: header says {expected} body bytes, file has {found}"
    )]
    Length {
        /// Bytes the header announces.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The body does not match its checksum.
    #[error("snapshot checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is corrupt")]
    Checksum {
        /// CRC in the header.
        stored: u32,
        /// CRC of the body.
        computed: u32,
    },
    /// The body does not parse.
    #[error("snapshot body is invalid at byte {offset}: {what}")]
    Body {
        /// Offset in the body.
        offset: usize,
        /// What was wrong.
        what: String,
    },
}

/// Serialize a snapshot to bytes (header + body).
pub fn to_bytes(s: &Snapshot) -> Vec<u8> {
    let mut body = Vec::with_capacity(s.heap_bytes() + 1024);
    put_u64(&mut body, s.version);
    put_i64(&mut body, s.published_at.unix());
    write_dictionary(&mut body, s.emails());
    write_dictionary(&mut body, s.foreign());
    let mut brands: Vec<(&Brand, &BrandEntry)> = s.brand_entries().collect();
    brands.sort_unstable_by_key(|b| *b.0);
    put_u32(&mut body, brands.len() as u32);
    for (brand, entry) in brands {
        put_u32(&mut body, brand.iys_code);
        put_u32(&mut body, brand.brand_code);
        put_i64(
            &mut body,
            entry.sync.synced_at.map_or(i64::MIN, ConsentTime::unix),
        );
        put_u64(&mut body, entry.sync.changes_applied);
        put_opt_str(&mut body, entry.sync.cursor_hs.as_deref());
        put_opt_str(&mut body, entry.sync.cursor_iys.as_deref());
        for set in &entry.sets {
            match set.known() {
                BaseSet::Own(own) => {
                    body.push(0);
                    own.write_to(&mut body);
                }
                BaseSet::Derived { ranks, extra, .. } => {
                    body.push(1);
                    ranks.write_to(&mut body);
                    extra.write_to(&mut body);
                }
            }
            set.ret_positions().write_to(&mut body);
            put_u64(&mut body, set.grants().len() as u64);
            for g in set.grants().iter() {
                put_u64(&mut body, g);
            }
            put_u32(&mut body, set.delta().len() as u32);
            for e in set.delta() {
                put_u32(&mut body, e.id);
                body.push(match e.status {
                    Status::Onay => 0,
                    Status::Ret => 1,
                });
                put_i64(&mut body, e.date);
                put_i64(&mut body, e.applied_at);
                put_u32(&mut body, e.access.len() as u32);
                for code in e.access.iter() {
                    put_u32(&mut body, *code);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, FORMAT_VERSION);
    put_u32(&mut out, 0);
    put_u64(&mut out, body.len() as u64);
    put_u32(&mut out, crc32fast::hash(&body));
    put_u32(&mut out, 0);
    out.extend_from_slice(&body);
    out
}

/// Parse a whole snapshot file's bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, SnapshotFileError> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(SnapshotFileError::Magic);
    }
    let mut h = Cursor { buf: bytes, pos: 8 };
    let version = h.u32().map_err(|_| SnapshotFileError::Length {
        expected: HEADER_LEN as u64,
        found: bytes.len() as u64,
    })?;
    if version != FORMAT_VERSION {
        return Err(SnapshotFileError::Version { found: version });
    }
    if bytes.len() < HEADER_LEN {
        return Err(SnapshotFileError::Length {
            expected: HEADER_LEN as u64,
            found: bytes.len() as u64,
        });
    }
    let _flags = h.u32()?;
    let body_len = h.u64()?;
    let stored = h.u32()?;
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != body_len {
        return Err(SnapshotFileError::Length {
            expected: body_len,
            found: body.len() as u64,
        });
    }
    let computed = crc32fast::hash(body);
    if computed != stored {
        return Err(SnapshotFileError::Checksum { stored, computed });
    }
    parse_body(body)
}

/// Parse a body without the header checks (the fuzz target's entry point, so
/// the parser itself is exercised rather than the checksum).
pub fn parse_body(body: &[u8]) -> Result<Snapshot, SnapshotFileError> {
    let mut c = Cursor { buf: body, pos: 0 };
    let version = c.u64()?;
    let published_at = ConsentTime(c.i64()?);
    let emails = read_dictionary(&mut c, u64::from(u32::MAX) + 1)?;
    let foreign = read_dictionary(
        &mut c,
        u64::from(u32::MAX - super::snapshot::FOREIGN_ID_BASE) + 1,
    )?;
    let n_brands = c.count(8)?;
    let mut brands: FxHashMap<Brand, Arc<BrandEntry>> = FxHashMap::default();
    for _ in 0..n_brands {
        let brand = Brand::new(c.u32()?, c.u32()?);
        let synced_at = match c.i64()? {
            i64::MIN => None,
            t => Some(ConsentTime(t)),
        };
        let changes_applied = c.u64()?;
        let cursor_hs = c.opt_str()?;
        let cursor_iys = c.opt_str()?;
        let mut entry = BrandEntry {
            sync: SyncState {
                cursor_hs,
                cursor_iys,
                synced_at,
                changes_applied,
            },
            ..BrandEntry::default()
        };
        for i in 0..KEYS_PER_BRAND {
            let onay_tag = c.u8()?;
            let onay = match onay_tag {
                0 => BaseSet::Own(c.set()?),
                1 => {
                    // Only ARAMA is described against MESAJ of the same recipient type,
                    // which comes earlier in the file.
                    let (channel, _) = key_of_index(i);
                    let of = match (channel, entry.sets[i % 2].known()) {
                        (Channel::Arama, BaseSet::Own(of)) => of.clone(),
                        _ => {
                            return Err(
                                c.err("a derived ONAY set must be an ARAMA set over its MESAJ set")
                            )
                        }
                    };
                    let ranks = c.set()?;
                    let extra = c.set()?;
                    if ranks.iter().last().is_some_and(|r| r as usize >= of.len()) {
                        return Err(c.err("derived ONAY set names a position past its base set"));
                    }
                    BaseSet::Derived { of, ranks, extra }
                }
                _ => return Err(c.err("ONAY set tag is neither own (0) nor derived (1)")),
            };
            // A temporary (turned into RET flags below): not in the arena.
            let ret = arena::on_heap(|| c.set())?;
            if ret.iter().last().is_some_and(|p| p as usize >= onay.len()) {
                return Err(c.err("RET positions point past the known set"));
            }
            let n_grants = c.count64(8)?;
            let mut grants: Vec<u64> = Vec::with_capacity(n_grants);
            for _ in 0..n_grants {
                let g = c.u64()?;
                if grants.last().is_some_and(|last| *last >= g) {
                    return Err(c.err("dealer grants are not strictly increasing"));
                }
                grants.push(g);
            }
            let n_delta = c.count(25)?;
            let mut delta: Vec<DeltaEntry> = Vec::with_capacity(n_delta);
            for _ in 0..n_delta {
                let id = c.u32()?;
                if delta.last().is_some_and(|e| e.id >= id) {
                    return Err(c.err("delta ids are not strictly increasing"));
                }
                let status = match c.u8()? {
                    0 => Status::Onay,
                    1 => Status::Ret,
                    _ => return Err(c.err("delta status is neither ONAY nor RET")),
                };
                let date = c.i64()?;
                let applied_at = c.i64()?;
                let n_access = c.count(4)?;
                let mut access = Vec::with_capacity(n_access);
                for _ in 0..n_access {
                    access.push(c.u32()?);
                }
                access.sort_unstable();
                access.dedup();
                delta.push(DeltaEntry {
                    id,
                    status,
                    date,
                    applied_at,
                    access: access.into(),
                });
            }
            entry.sets[i] = KeySet::from_base(PackedSet::default(), PackedSet::default(), &grants)
                .with_known(onay, ret)
                .with_delta(delta);
        }
        if brands.insert(brand, Arc::new(entry)).is_some() {
            return Err(c.err(format!("brand {brand} appears twice")));
        }
    }
    if c.pos != body.len() {
        return Err(c.err("trailing bytes after the last brand"));
    }
    Ok(Snapshot::from_parts(
        version,
        published_at,
        brands,
        emails,
        foreign,
    ))
}

/// Write a snapshot atomically: temporary file in the same folder, fsync,
/// rename over `path`, fsync the folder. Returns the bytes written.
pub fn write(path: &Path, s: &Snapshot) -> Result<u64, SnapshotFileError> {
    let bytes = to_bytes(s);
    let io = |source| SnapshotFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".into());
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)?;
    Ok(bytes.len() as u64)
}

/// Remove the temporary files that writers killed mid-write (`kill -9`, OOM,
/// power loss) left next to `path`: `.NAME.tmp.PID` whose process is gone.
/// The snapshot itself is untouched (the rename never happened). A file of a
/// live process, or one whose owner cannot be told, is kept. Returns the files
/// removed.
pub fn remove_stale_temp_files(path: &Path) -> Vec<PathBuf> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(file_name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let prefix = format!(".{file_name}.tmp.");
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || !process_gone(pid) {
            continue;
        }
        let stale = entry.path();
        if fs::remove_file(&stale).is_ok() {
            removed.push(stale);
        }
    }
    removed
}

/// True when no process `pid` exists (unix: `kill(pid, 0)` says ESRCH).
fn process_gone(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: signal 0 only checks that the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// Read and check a snapshot file, and pack the store into huge pages
/// ([`Snapshot::packed`]).
pub fn read(path: &Path) -> Result<Snapshot, SnapshotFileError> {
    let bytes = fs::read(path).map_err(|source| SnapshotFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // The sets' arrays go straight into huge pages as they are parsed
    // (they take about as many bytes as the body: reserve twice that);
    // a small store stays on the heap.
    let body = bytes.len();
    let snapshot = if body >= arena::MIN_PACK_BYTES {
        arena::build_in_arena(2 * body + (16 << 20), || from_bytes(&bytes))?
    } else {
        from_bytes(&bytes)?
    };
    drop(bytes);
    Ok(snapshot.packed())
}

fn write_dictionary(out: &mut Vec<u8>, d: &Dictionary) {
    put_u64(out, d.base_len() as u64);
    for k in d.base() {
        put_u64(out, k);
    }
    let extra = d.extra_sorted();
    put_u64(out, extra.len() as u64);
    for (k, id) in extra {
        put_u64(out, k);
        put_u32(out, id);
    }
}

fn read_dictionary(c: &mut Cursor<'_>, limit: u64) -> Result<Dictionary, SnapshotFileError> {
    let n = c.count64(8)?;
    let mut base = Vec::with_capacity(n);
    for _ in 0..n {
        let k = c.u64()?;
        if base.last().is_some_and(|last| *last >= k) {
            return Err(c.err("dictionary keys are not strictly increasing"));
        }
        base.push(k);
    }
    let n_extra = c.count64(12)?;
    if (n + n_extra) as u64 > limit {
        return Err(c.err("dictionary holds more ids than its id space"));
    }
    let mut extra = Vec::with_capacity(n_extra);
    let mut seen = rustc_hash::FxHashSet::default();
    for i in 0..n_extra {
        let k = c.u64()?;
        let id = c.u32()?;
        if id as usize != n + i || base.binary_search(&k).is_ok() || !seen.insert(k) {
            return Err(
                c.err("dictionary additions are not numbered after the base, or repeat a key")
            );
        }
        extra.push((k, id));
    }
    Ok(Dictionary::from_parts(base, extra))
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_u32(out, u32::MAX),
        Some(s) => {
            put_u32(out, s.len() as u32);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// A bounds-checked reader over the body.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: impl Into<String>) -> SnapshotFileError {
        SnapshotFileError::Body {
            offset: self.pos,
            what: what.into(),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotFileError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.err(format!("{n} more bytes needed, file ends")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotFileError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, SnapshotFileError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, SnapshotFileError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotFileError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotFileError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// A u32 count of items at least `min_size` bytes each, bounded by what is left.
    fn count(&mut self, min_size: usize) -> Result<usize, SnapshotFileError> {
        let n = self.u32()? as usize;
        self.bounded(n, min_size)
    }
    fn count64(&mut self, min_size: usize) -> Result<usize, SnapshotFileError> {
        let n = usize::try_from(self.u64()?).map_err(|_| self.err("count too large"))?;
        self.bounded(n, min_size)
    }
    fn bounded(&self, n: usize, min_size: usize) -> Result<usize, SnapshotFileError> {
        match n.checked_mul(min_size) {
            Some(bytes) if bytes <= self.buf.len() - self.pos => Ok(n),
            _ => Err(self.err(format!("count {n} exceeds the bytes left"))),
        }
    }
    fn opt_str(&mut self) -> Result<Option<String>, SnapshotFileError> {
        let n = self.u32()?;
        if n == u32::MAX {
            return Ok(None);
        }
        let s = self.take(n as usize)?;
        String::from_utf8(s.to_vec())
            .map(Some)
            .map_err(|_| self.err("cursor is not UTF-8"))
    }
    fn set(&mut self) -> Result<PackedSet, SnapshotFileError> {
        let (set, used) = PackedSet::read_from(&self.buf[self.pos..])
            .map_err(|e| self.err(format!("set: {e}")))?;
        self.pos += used;
        Ok(set)
    }
}

impl From<std::convert::Infallible> for SnapshotFileError {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stale_temp_files_of_dead_writers_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.bin");
        // The highest pid Linux hands out is 2^22; this one cannot exist.
        let dead = dir.path().join(".snapshot.bin.tmp.2000000000");
        let mine = dir
            .path()
            .join(format!(".snapshot.bin.tmp.{}", std::process::id()));
        let other = dir.path().join(".other.bin.tmp.2000000000");
        let odd = dir.path().join(".snapshot.bin.tmp.x");
        for f in [&path, &dead, &mine, &other, &odd] {
            std::fs::write(f, b"x").unwrap();
        }
        assert_eq!(super::remove_stale_temp_files(&path), vec![dead.clone()]);
        assert!(!dead.exists());
        for f in [&path, &mine, &other, &odd] {
            assert!(f.exists(), "{} was removed", f.display());
        }
    }

    use super::*;
    use crate::consent::{address_key, Channel, ConsentRecord, RecipientType};
    use crate::store::{Found, SnapshotBuilder};

    fn sample() -> Snapshot {
        let mut b = SnapshotBuilder::new();
        for row in [
            "700001,1,05321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
            "700001,1,05322222222,BIREYSEL,MESAJ,RET,2024-02-01 10:00:00,IYS_WEB,,",
            "700001,1,ali@example.com,BIREYSEL,EPOSTA,ONAY,2024-01-01 10:00:00,HS_WEB,3,4;5",
            "700002,9,+4915112345678,TACIR,ARAMA,ONAY,,,,",
        ] {
            b.add(&ConsentRecord::from_csv_fields(row.split(',')).unwrap());
        }
        let (s, _) = b.build(ConsentTime(1_700_000_000));
        let mut e = s.edit();
        e.apply(
            &[ConsentRecord::from_csv_fields(
                "700001,1,veli@example.com,BIREYSEL,EPOSTA,ONAY,2024-03-01 10:00:00,HS_WEB,,"
                    .split(','),
            )
            .unwrap()],
            ConsentTime(1_700_000_100),
        )
        .unwrap();
        let brand = Brand::new(700001, 1);
        e.set_sync(
            brand,
            SyncState {
                cursor_hs: Some("c-hs".into()),
                cursor_iys: None,
                synced_at: Some(ConsentTime(1_700_000_100)),
                changes_applied: 1,
            },
        );
        e.publish(ConsentTime(1_700_000_100))
    }

    fn answers(s: &Snapshot) -> Vec<Option<Found>> {
        let b = Brand::new(700001, 1);
        let ask = |ch, addr: &str| {
            s.find(
                b,
                ch,
                RecipientType::Bireysel,
                address_key(ch, addr).unwrap(),
                None,
            )
        };
        vec![
            ask(Channel::Mesaj, "5321111111"),
            ask(Channel::Mesaj, "5322222222"),
            ask(Channel::Eposta, "ali@example.com"),
            ask(Channel::Eposta, "veli@example.com"),
            s.find(
                b,
                Channel::Eposta,
                RecipientType::Bireysel,
                address_key(Channel::Eposta, "ali@example.com").unwrap(),
                Some(4),
            ),
            s.find(
                Brand::new(700002, 9),
                Channel::Arama,
                RecipientType::Tacir,
                address_key(Channel::Arama, "+4915112345678").unwrap(),
                None,
            ),
        ]
    }

    #[test]
    fn round_trip_gives_the_same_answers() {
        let s = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.snap");
        write(&path, &s).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(answers(&back), answers(&s));
        assert_eq!(back.version, s.version);
        assert_eq!(
            back.brand(Brand::new(700001, 1)).unwrap().sync,
            s.brand(Brand::new(700001, 1)).unwrap().sync
        );
        assert_eq!(to_bytes(&back), to_bytes(&s), "re-encoding is stable");
        assert_eq!(answers(&s)[3], Some(Found::Consent));
    }

    #[test]
    fn corrupt_or_truncated_files_are_refused() {
        let bytes = to_bytes(&sample());
        for cut in [0, 7, 20, HEADER_LEN, bytes.len() / 2, bytes.len() - 1] {
            let err = from_bytes(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(
                    err,
                    SnapshotFileError::Magic | SnapshotFileError::Length { .. }
                ),
                "cut {cut}: {err}"
            );
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x40;
        assert!(matches!(
            from_bytes(&flipped),
            Err(SnapshotFileError::Checksum { .. })
        ));
        let mut other = bytes.clone();
        other[8] = 9;
        assert!(from_bytes(&other)
            .unwrap_err()
            .to_string()
            .contains("format 9"));
        // The body parser alone, at every truncation point: an error, never a panic.
        let body = &bytes[HEADER_LEN..];
        for cut in 0..body.len() {
            assert!(parse_body(&body[..cut]).is_err(), "cut {cut}");
        }
    }
}
