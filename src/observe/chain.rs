//! The audit file as a hash chain, rotated daily (Turkey time) and kept for a
//! number of days; and `audit verify`, which checks a chain.
//!
//! Each line is the record's JSON object with two fields in front:
//! `{"seq":N,"prev":"<hex SHA-256 of the previous line>",...}`. `seq`
//! counts lines across files (1 is the first line the gate ever wrote) and
//! `prev` is the SHA-256 of the previous line's bytes (without its newline);
//! the first line of a file carries the hash of the previous file's last
//! line, and the very first line 64 zeros. A deleted line shows as a gap in
//! `seq`, an edited line as a `prev` in the next line that no longer
//! matches, a missing file as a gap between two files.
//!
//! The file being written is always `path` (so `tail -f` keeps working);
//! when the first record of a new Turkey day arrives, it is renamed to
//! `path.YYYY-MM-DD` (the day it holds) and a new `path` begins. Rotated
//! files older than `retention_days` are deleted at each rotation and at
//! start. Rotation follows the records' own times, so a test can drive it
//! with chosen times.

use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::day::Day;

/// The `prev` of the very first line.
pub const GENESIS: [u8; 32] = [0; 32];

/// How the audit file is rotated and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainConfig {
    /// Start a new file each Turkey day.
    pub rotate_daily: bool,
    /// Delete rotated files older than this many days (0: keep them all).
    pub retention_days: u32,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            rotate_daily: true,
            retention_days: 0,
        }
    }
}

/// SHA-256 of a line (without its newline).
pub fn line_hash(line: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, line);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Lower-case hex of a hash.
pub fn hex(hash: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    push_hex(&mut s, hash);
    s
}

fn push_hex(out: &mut String, hash: &[u8; 32]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in hash {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The name a rotated file gets: `path.YYYY-MM-DD`, or with `.2`, `.3`...
/// when that exists already (the clock went back).
fn rotated_name(path: &Path, day: Day) -> PathBuf {
    let base = format!("{}.{day}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}

/// The day a rotated file of `path` holds, from its name
/// (`<name>.YYYY-MM-DD` or `<name>.YYYY-MM-DD.N`).
fn rotated_day(path: &Path, candidate: &Path) -> Option<Day> {
    let name = path.file_name()?.to_str()?;
    let other = candidate.file_name()?.to_str()?;
    let rest = other.strip_prefix(name)?.strip_prefix('.')?;
    let date = rest.get(..10)?;
    let tail = &rest[10..];
    if !(tail.is_empty()
        || tail
            .strip_prefix('.')
            .is_some_and(|n| n.parse::<u32>().is_ok()))
    {
        return None;
    }
    Day::parse(date).ok()
}

/// Delete the rotated files of `path` older than `retention_days` before
/// `today`; returns the files deleted.
pub fn apply_retention(path: &Path, retention_days: u32, today: Day) -> Vec<PathBuf> {
    let mut deleted = Vec::new();
    if retention_days == 0 {
        return deleted;
    }
    let oldest_kept = today.plus(-i64::from(retention_days));
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return deleted;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if rotated_day(path, &p).is_some_and(|d| d < oldest_kept) {
            match std::fs::remove_file(&p) {
                Ok(()) => {
                    tracing::info!(file = %p.display(), retention_days, "audit file past its retention deleted");
                    deleted.push(p);
                }
                Err(e) => {
                    tracing::error!(file = %p.display(), error = %e, "cannot delete an audit file past its retention")
                }
            }
        }
    }
    deleted
}

/// What the active file holds when the writer opens it.
struct Tail {
    /// Day of its first line.
    day: Option<Day>,
    /// Its last complete line's `seq` and hash.
    last: Option<(u64, [u8; 32])>,
    /// Bytes of an incomplete last line cut off.
    cut: u64,
    /// The last line carries no `seq`: written before the chain existed.
    unchained: bool,
}

/// `seq` and `ts` of a chain line.
fn line_fields(line: &[u8]) -> Option<(Option<u64>, Option<Day>)> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let seq = v.get("seq").and_then(|s| s.as_u64());
    let day = v
        .get("ts")
        .and_then(|t| t.as_str())
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .map(Day::of);
    Some((seq, day))
}

/// Read the first line's day and the last complete line of `file`, and cut
/// off an incomplete last line (a crash in the middle of a write).
fn read_tail(file: &mut File) -> std::io::Result<Tail> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut tail = Tail {
        day: None,
        last: None,
        cut: 0,
        unchained: false,
    };
    if len == 0 {
        return Ok(tail);
    }
    file.seek(SeekFrom::Start(0))?;
    let mut first = Vec::new();
    std::io::BufReader::new(&mut *file)
        .take(1 << 20)
        .read_until(b'\n', &mut first)?;
    if first.ends_with(b"\n") {
        tail.day = line_fields(&first[..first.len() - 1]).and_then(|(_, d)| d);
    }
    // Read back from the end until a whole last line is in view.
    let mut chunk = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(chunk);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        (&mut *file).take(len - start).read_to_end(&mut buf)?;
        let end = match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => i,
            None if start == 0 => {
                // Not one complete line in the file.
                tail.cut = len;
                file.set_len(0)?;
                tail.day = None;
                return Ok(tail);
            }
            None => {
                chunk *= 4;
                continue;
            }
        };
        let line_start = match buf[..end].iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if start == 0 => 0,
            None => {
                chunk *= 4;
                continue;
            }
        };
        let complete_len = start + end as u64 + 1;
        if complete_len < len {
            tail.cut = len - complete_len;
            file.set_len(complete_len)?;
        }
        let line = &buf[line_start..end];
        match line_fields(line).and_then(|(seq, _)| seq) {
            Some(seq) => tail.last = Some((seq, line_hash(line))),
            None => tail.unchained = true,
        }
        file.seek(SeekFrom::End(0))?;
        return Ok(tail);
    }
}

/// Appends chained lines to the audit file, rotating and pruning it.
pub struct ChainWriter {
    path: PathBuf,
    cfg: ChainConfig,
    file: File,
    /// The Turkey day of the active file's first line (`None`: empty file).
    day: Option<Day>,
    /// `seq` of the last line.
    seq: u64,
    /// Hash of the last line.
    prev: [u8; 32],
    /// Lines not yet written.
    pending: Vec<u8>,
    /// The `{"seq":N,"prev":"…",` prefix being built.
    prefix: String,
    /// Writes are failing (logged once until they work again).
    failing: bool,
}

impl ChainWriter {
    /// Open (or create) the active file at `path`, continuing the chain its
    /// last line ends; `now` is the day retention counts from. A file
    /// written before the chain existed is moved aside to
    /// `path.before-chain` (a new chain starts); an incomplete last line is
    /// cut off and noted in the chain.
    pub fn open(path: &Path, cfg: ChainConfig, now: SystemTime) -> std::io::Result<ChainWriter> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(path)
        };
        let mut file = open()?;
        let mut tail = read_tail(&mut file)?;
        if tail.unchained {
            let aside = PathBuf::from(format!("{}.before-chain", path.display()));
            let aside = if aside.exists() {
                rotated_name(&aside, Day::of(now))
            } else {
                aside
            };
            drop(file);
            std::fs::rename(path, &aside)?;
            tracing::warn!(file = %aside.display(), "the audit file holds lines without a hash chain (written by an older version): moved aside, a new chain starts");
            file = open()?;
            tail = read_tail(&mut file)?;
        }
        let (seq, prev) = tail.last.unwrap_or((0, GENESIS));
        let mut w = ChainWriter {
            path: path.to_path_buf(),
            cfg,
            file,
            day: tail.day,
            seq,
            prev,
            pending: Vec::new(),
            prefix: String::with_capacity(96),
            failing: false,
        };
        if tail.cut > 0 {
            tracing::warn!(file = %path.display(), bytes = tail.cut, "the audit file ended in an incomplete line (a crash while writing): cut off");
            let body = format!(
                "{{\"ts\":\"{}\",\"event\":\"incomplete_line_cut\",\"bytes\":{}}}\n",
                humantime::format_rfc3339_millis(now),
                tail.cut
            );
            w.append(now, body.as_bytes());
        }
        if cfg.rotate_daily {
            apply_retention(path, cfg.retention_days, Day::of(now));
        }
        Ok(w)
    }

    /// The `seq` and hash of the last line appended.
    pub fn last(&self) -> (u64, [u8; 32]) {
        (self.seq, self.prev)
    }

    /// Append one record, decided at `at`: `body` is its JSON object and a
    /// newline. Rotates first when `at` falls on a later Turkey day than the
    /// active file's first line. Written by [`ChainWriter::flush`].
    pub fn append(&mut self, at: SystemTime, body: &[u8]) {
        let day = Day::of(at);
        match self.day {
            Some(d) if self.cfg.rotate_daily && day > d => self.rotate(d, day),
            None => self.day = Some(day),
            _ => {}
        }
        let body = body.strip_suffix(b"\n").unwrap_or(body);
        let body = body.strip_prefix(b"{").unwrap_or(body);
        self.seq += 1;
        self.prefix.clear();
        self.prefix.push_str("{\"seq\":");
        self.prefix.push_str(itoa::Buffer::new().format(self.seq));
        self.prefix.push_str(",\"prev\":\"");
        push_hex(&mut self.prefix, &self.prev);
        self.prefix.push_str("\",");
        let start = self.pending.len();
        self.pending.extend_from_slice(self.prefix.as_bytes());
        self.pending.extend_from_slice(body);
        self.prev = line_hash(&self.pending[start..]);
        self.pending.push(b'\n');
    }

    /// Write the pending lines.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match self.file.write_all(&self.pending) {
            Ok(()) => {
                if self.failing {
                    tracing::info!(file = %self.path.display(), "audit file writable again");
                    self.failing = false;
                }
            }
            Err(e) => {
                if !self.failing {
                    tracing::error!(file = %self.path.display(), error = %e, "cannot write the audit file: records are lost (audit verify will show the gap)");
                    self.failing = true;
                }
            }
        }
        self.pending.clear();
    }

    /// Close the active file (holding `old`), rename it to its day, start a
    /// new one for `new`, and prune.
    fn rotate(&mut self, old: Day, new: Day) {
        self.flush();
        let _ = self.file.sync_all();
        let to = rotated_name(&self.path, old);
        match std::fs::rename(&self.path, &to) {
            Ok(()) => {
                tracing::info!(file = %to.display(), last_seq = self.seq, last_hash = %hex(&self.prev), "audit file rotated");
                match std::fs::OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(&self.path)
                {
                    Ok(f) => self.file = f,
                    Err(e) => {
                        tracing::error!(file = %self.path.display(), error = %e, "cannot open a new audit file: writing on into the rotated one")
                    }
                }
            }
            Err(e) => {
                tracing::error!(file = %self.path.display(), error = %e, "cannot rotate the audit file: writing on into it")
            }
        }
        self.day = Some(new);
        apply_retention(&self.path, self.cfg.retention_days, new);
    }
}

impl Drop for ChainWriter {
    fn drop(&mut self) {
        self.flush();
        if self.seq > 0 {
            tracing::info!(file = %self.path.display(), last_seq = self.seq, last_hash = %hex(&self.prev), "audit file closed");
        }
    }
}

/// What `audit verify` found on an intact chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Files checked (in chain order), with their line counts.
    pub files: Vec<(PathBuf, u64)>,
    /// Lines checked.
    pub lines: u64,
    /// `seq` of the first and last line (0 when no lines).
    pub first_seq: u64,
    /// See `first_seq`.
    pub last_seq: u64,
    /// Hash of the last line (compare with the gate's log: `audit file
    /// rotated` / `audit file closed` name it).
    pub last_hash: [u8; 32],
}

/// The first broken or missing line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The file.
    pub file: PathBuf,
    /// Line number in it (1-based).
    pub line: u64,
    /// What is wrong.
    pub why: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.why)
    }
}

/// Check the chain across `files`, taken in the order of their first
/// `seq` (so a shell glob's order does not matter). Empty files are skipped.
/// The first line of the earliest file is trusted unless it is `seq` 1,
/// whose `prev` must be 64 zeros.
pub fn verify(files: &[PathBuf]) -> Result<Verified, Broken> {
    let broken = |file: &Path, line: u64, why: String| Broken {
        file: file.to_path_buf(),
        line,
        why,
    };
    // Order by first seq.
    let mut ordered: Vec<(u64, &PathBuf)> = Vec::new();
    for f in files {
        let file = File::open(f).map_err(|e| broken(f, 0, format!("cannot open: {e}")))?;
        let mut first = Vec::new();
        std::io::BufReader::new(file)
            .take(1 << 20)
            .read_until(b'\n', &mut first)
            .map_err(|e| broken(f, 1, format!("cannot read: {e}")))?;
        if first.is_empty() {
            continue;
        }
        let line = first.strip_suffix(b"\n").unwrap_or(&first);
        let seq = parse_line(line).map_err(|why| broken(f, 1, why))?.0;
        if let Some((_, other)) = ordered.iter().find(|(s, _)| *s == seq) {
            return Err(broken(
                f,
                1,
                format!(
                    "starts at seq {seq} like {} (the same file twice?)",
                    other.display()
                ),
            ));
        }
        ordered.push((seq, f));
    }
    ordered.sort_by_key(|(s, _)| *s);

    let mut out = Verified {
        files: Vec::new(),
        lines: 0,
        first_seq: 0,
        last_seq: 0,
        last_hash: GENESIS,
    };
    // The previous line: its file, line number, seq and hash.
    let mut previous: Option<(&Path, u64, u64, [u8; 32])> = None;
    for (_, f) in ordered {
        let file = File::open(f).map_err(|e| broken(f, 0, format!("cannot open: {e}")))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| broken(f, n + 1, format!("cannot read: {e}")))?;
            if read == 0 {
                break;
            }
            n += 1;
            let Some(line) = buf.strip_suffix(b"\n") else {
                return Err(broken(
                    f,
                    n,
                    "incomplete line (no newline at the end): cut off or still being written"
                        .into(),
                ));
            };
            let (seq, prev) = parse_line(line).map_err(|why| broken(f, n, why))?;
            match previous {
                None if seq == 1 && prev != GENESIS => {
                    return Err(broken(
                        f,
                        n,
                        "the chain's first line (seq 1) must carry prev 000…0".into(),
                    ))
                }
                None => out.first_seq = seq,
                Some((pf, pn, pseq, phash)) => {
                    let expected = pseq + 1;
                    let where_prev = if pf == f.as_path() {
                        format!("line {pn}")
                    } else {
                        format!("{}:{pn}", pf.display())
                    };
                    if seq > expected {
                        let missing = seq - expected;
                        let what = if n == 1 {
                            "missing between the files (a file or lines are missing)"
                        } else {
                            "missing before this line (deleted)"
                        };
                        return Err(broken(
                            f,
                            n,
                            format!("seq {seq} follows seq {pseq} ({where_prev}): {missing} line(s) {what}"),
                        ));
                    }
                    if seq < expected {
                        return Err(broken(
                            f,
                            n,
                            format!("seq {seq} follows seq {pseq} ({where_prev}): repeated or out of order"),
                        ));
                    }
                    if prev != phash {
                        return Err(broken(
                            pf,
                            pn,
                            format!(
                                "this line does not hash to the prev the next line carries ({}): it was edited",
                                if pf == f.as_path() {
                                    format!("line {n}")
                                } else {
                                    format!("{}:{n}", f.display())
                                }
                            ),
                        ));
                    }
                }
            }
            previous = Some((f.as_path(), n, seq, line_hash(line)));
        }
        out.lines += n;
        out.files.push((f.clone(), n));
    }
    if let Some((_, _, seq, hash)) = previous {
        out.last_seq = seq;
        out.last_hash = hash;
    }
    Ok(out)
}

/// `seq` and `prev` of a chain line, or why it is not one.
fn parse_line(line: &[u8]) -> Result<(u64, [u8; 32]), String> {
    let v: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| format!("not a JSON line ({e}): edited or damaged"))?;
    let seq = v
        .get("seq")
        .and_then(|s| s.as_u64())
        .ok_or("no \"seq\": not an audit chain line, or edited")?;
    let prev = v
        .get("prev")
        .and_then(|p| p.as_str())
        .and_then(parse_hex)
        .ok_or("no \"prev\" hash (64 hex digits): not an audit chain line, or edited")?;
    Ok((seq, prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    fn body(t: SystemTime, n: u32) -> Vec<u8> {
        format!(
            "{{\"ts\":\"{}\",\"reason\":\"no_consent\",\"n\":{n}}}\n",
            humantime::format_rfc3339_millis(t)
        )
        .into_bytes()
    }

    /// Write `times.len()` records through a writer (opened at the first time).
    fn write(path: &Path, cfg: ChainConfig, times: &[SystemTime]) {
        let mut w = ChainWriter::open(path, cfg, times[0]).unwrap();
        for (i, t) in times.iter().enumerate() {
            w.append(*t, &body(*t, i as u32));
        }
        w.flush();
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotation_at_turkey_midnight_keeps_one_chain_across_files_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let cfg = ChainConfig::default();
        // 20:59 UTC is 23:59 in Turkey; 21:00 UTC is the next day there.
        write(
            &path,
            cfg,
            &[at("2026-12-02T10:00:00Z"), at("2026-12-02T20:59:59Z")],
        );
        // A restart the same day continues the chain in the same file.
        write(
            &path,
            cfg,
            &[at("2026-12-02T20:59:59.500Z"), at("2026-12-02T21:00:00Z")],
        );
        write(&path, cfg, &[at("2026-12-03T12:00:00Z")]);
        let names: Vec<String> = files(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["audit.jsonl", "audit.jsonl.2026-12-02"]);
        let old = std::fs::read_to_string(dir.path().join("audit.jsonl.2026-12-02")).unwrap();
        assert_eq!(old.lines().count(), 3);
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(new.lines().count(), 2);
        assert!(new.starts_with("{\"seq\":4,\"prev\":\""), "{new}");
        // Glob order (active file first) does not matter.
        let v = verify(&files(dir.path())).unwrap();
        assert_eq!((v.lines, v.first_seq, v.last_seq), (5, 1, 5));
        assert_eq!(v.files[0].0, dir.path().join("audit.jsonl.2026-12-02"));
        let last = new.lines().last().unwrap();
        assert_eq!(v.last_hash, line_hash(last.as_bytes()));
    }

    #[test]
    fn retention_deletes_rotated_files_older_than_the_configured_days() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let cfg = ChainConfig {
            rotate_daily: true,
            retention_days: 2,
        };
        // Records on five consecutive Turkey days: four rotations.
        let times: Vec<SystemTime> = (1..=5)
            .map(|d| at(&format!("2026-12-0{d}T09:00:00Z")))
            .collect();
        write(&path, cfg, &times);
        let names: Vec<String> = files(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // Today is the 5th: the 3rd and 4th are kept, the 1st and 2nd gone.
        assert_eq!(
            names,
            [
                "audit.jsonl",
                "audit.jsonl.2026-12-03",
                "audit.jsonl.2026-12-04"
            ]
        );
        // Another file's names are left alone.
        std::fs::write(dir.path().join("other.jsonl.2020-01-01"), "x").unwrap();
        assert!(apply_retention(&path, 2, Day::parse("2026-12-09").unwrap()).len() == 2);
        assert!(dir.path().join("other.jsonl.2020-01-01").exists());
        // What is left still verifies (from seq 5: earlier files were pruned).
        let v = verify(std::slice::from_ref(&path)).unwrap();
        assert_eq!((v.first_seq, v.last_seq), (5, 5));
    }

    #[test]
    fn an_incomplete_last_line_is_cut_and_noted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let t = at("2026-12-02T10:00:00Z");
        write(&path, ChainConfig::default(), &[t, t]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"seq\":3,\"prev\":\"ab").unwrap();
        drop(f);
        assert!(verify(std::slice::from_ref(&path))
            .unwrap_err()
            .why
            .contains("incomplete"));
        write(&path, ChainConfig::default(), &[t]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"event\":\"incomplete_line_cut\",\"bytes\":19"),
            "{text}"
        );
        assert_eq!(verify(&[path]).unwrap().last_seq, 4);
    }

    #[test]
    fn a_file_without_a_chain_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"ts\":\"2026-12-02T10:00:00Z\"}\n").unwrap();
        write(&path, ChainConfig::default(), &[at("2026-12-02T10:00:00Z")]);
        assert!(dir.path().join("audit.jsonl.before-chain").exists());
        assert_eq!(verify(&[path]).unwrap().first_seq, 1);
    }
}
