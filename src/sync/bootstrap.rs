//! Coming up with data already loaded: the snapshot file if there is one, else
//! the configured CSV exports, else an empty store for the configured brands.
//!
//! Brands the config does not follow (`[[brands]]`) are left out by default
//! (`store.unfollowed_brands = "skip"`): no change feed keeps them current,
//! so answering from them would answer from an export that only ages. Their
//! rows are counted in `iys_gate_bootstrap_rows_skipped_total{reason=
//! "unfollowed_brand"}` (for a snapshot file: the brand's tuples) and the
//! brands named in a warning. Without any `[[brands]]` every brand loads.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Instant;

use crate::config::{BadRows, UnfollowedBrands};
use crate::consent::{Brand, ConsentTime, CsvError, CsvReader};
use crate::store::{file, BuildStats, Snapshot, SnapshotBuilder};

/// Why a bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The snapshot file exists but cannot be used.
    #[error("snapshot file {path}: {source}")]
    Snapshot {
        /// The file.
        path: String,
        /// What is wrong.
        source: file::SnapshotFileError,
    },
    /// A CSV export cannot be read or has a bad row (with `bad_rows = "abort"`).
    #[error("CSV export {path}: {message}")]
    Csv {
        /// The file.
        path: String,
        /// What is wrong, with the line number.
        message: String,
    },
}

/// Figures from loading CSV exports.
#[derive(Debug, Clone, Default)]
pub struct CsvLoad {
    /// Build figures.
    pub build: BuildStats,
    /// Rows skipped as bad.
    pub skipped: u64,
    /// The first few bad rows, with line numbers.
    pub first_errors: Vec<String>,
    /// Rows left out because their brand is not followed, by brand.
    pub unfollowed: BTreeMap<Brand, u64>,
}

impl CsvLoad {
    /// Rows left out because their brand is not followed.
    pub fn unfollowed_rows(&self) -> u64 {
        self.unfollowed.values().sum()
    }
}

/// Load CSV exports into a builder. With `BadRows::Abort` the first bad row
/// fails the load; with `Skip` bad rows are counted and the first ten kept.
pub fn load_csv_into(
    builder: &mut SnapshotBuilder,
    path: &Path,
    bad_rows: BadRows,
    load: &mut CsvLoad,
) -> Result<(), BootstrapError> {
    load_csv_following(builder, path, bad_rows, None, load)
}

/// [`load_csv_into`], leaving out (and counting in `load.unfollowed`) rows
/// of brands not in `follow` when it is given.
fn load_csv_following(
    builder: &mut SnapshotBuilder,
    path: &Path,
    bad_rows: BadRows,
    follow: Option<&HashSet<Brand>>,
    load: &mut CsvLoad,
) -> Result<(), BootstrapError> {
    let csv_err = |message: String| BootstrapError::Csv {
        path: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| csv_err(e.to_string()))?;
    let reader = CsvReader::new(std::io::BufReader::with_capacity(1 << 20, file));
    for item in reader {
        match item {
            Ok(record) if follow.is_some_and(|f| !f.contains(&record.brand)) => {
                *load.unfollowed.entry(record.brand).or_insert(0) += 1;
            }
            Ok(record) => builder.add(&record),
            Err(e @ CsvError::Header { .. }) => return Err(csv_err(e.to_string())),
            Err(e) if bad_rows == BadRows::Abort => {
                return Err(csv_err(format!(
                    "{e} (set store.bad_rows = \"skip\" to skip bad rows)"
                )))
            }
            Err(e) => {
                load.skipped += 1;
                if load.first_errors.len() < 10 {
                    load.first_errors.push(e.to_string());
                }
            }
        }
    }
    Ok(())
}

/// Build a snapshot from CSV exports; `brands` exist even if no row names them.
pub fn from_csv(
    paths: &[&Path],
    brands: &[Brand],
    bad_rows: BadRows,
    as_of: ConsentTime,
) -> Result<(Snapshot, CsvLoad), BootstrapError> {
    from_csv_following(paths, brands, bad_rows, UnfollowedBrands::Load, as_of)
}

/// The brands to keep: `None` (all) unless `unfollowed` is `Skip` and some
/// brands are configured.
fn followed(brands: &[Brand], unfollowed: UnfollowedBrands) -> Option<HashSet<Brand>> {
    (unfollowed == UnfollowedBrands::Skip && !brands.is_empty())
        .then(|| brands.iter().copied().collect())
}

/// [`from_csv`], leaving out rows of brands not in `brands` when
/// `unfollowed` says skip (and `brands` is not empty).
pub fn from_csv_following(
    paths: &[&Path],
    brands: &[Brand],
    bad_rows: BadRows,
    unfollowed: UnfollowedBrands,
    as_of: ConsentTime,
) -> Result<(Snapshot, CsvLoad), BootstrapError> {
    let follow = followed(brands, unfollowed);
    let mut builder = SnapshotBuilder::new();
    for b in brands {
        builder.add_brand(*b);
    }
    let mut load = CsvLoad::default();
    for p in paths {
        load_csv_following(&mut builder, p, bad_rows, follow.as_ref(), &mut load)?;
    }
    let (snapshot, build) = builder.build(as_of);
    load.build = build;
    Ok((snapshot, load))
}

/// Where the first snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The snapshot file.
    File,
    /// CSV exports.
    Csv,
    /// Nothing: an empty store for the configured brands.
    Empty,
}

/// Start-up: the snapshot file if present, else CSV exports, else empty.
/// Configured brands missing from the result are added empty.
pub fn initial(
    snapshot_path: Option<&Path>,
    csv: &[&Path],
    brands: &[Brand],
    bad_rows: BadRows,
    unfollowed: UnfollowedBrands,
) -> Result<(Snapshot, Origin), BootstrapError> {
    let started = Instant::now();
    let skipped = |reason: &'static str, n: u64| {
        metrics::counter!("iys_gate_bootstrap_rows_skipped_total", "reason" => reason).increment(n)
    };
    // Both series exist from the start, so a first skip shows as an increase.
    skipped("bad_row", 0);
    skipped("unfollowed_brand", 0);
    let (mut snapshot, origin) = match snapshot_path.filter(|p| p.exists()) {
        Some(path) => {
            let s = file::read(path).map_err(|source| BootstrapError::Snapshot {
                path: path.display().to_string(),
                source,
            })?;
            tracing::info!(path = %path.display(), version = s.version, brands = s.brands().len(), secs = started.elapsed().as_secs_f64(), "loaded snapshot file");
            (s, Origin::File)
        }
        None if !csv.is_empty() => {
            let (s, load) =
                from_csv_following(csv, brands, bad_rows, unfollowed, ConsentTime::now())?;
            skipped("bad_row", load.skipped);
            skipped("unfollowed_brand", load.unfollowed_rows());
            if !load.unfollowed.is_empty() {
                tracing::warn!(
                    rows = load.unfollowed_rows(),
                    brands = %brand_list(&load.unfollowed),
                    "export rows of brands not in [[brands]] left out: nothing would keep them current (store.unfollowed_brands = \"load\" loads them)"
                );
            }
            tracing::info!(
                records = load.build.records,
                tuples = load.build.tuples,
                skipped = load.skipped,
                secs = started.elapsed().as_secs_f64(),
                "built snapshot from CSV exports"
            );
            for e in &load.first_errors {
                tracing::warn!("skipped CSV row: {e}");
            }
            (s, Origin::Csv)
        }
        None => (Snapshot::default(), Origin::Empty),
    };
    if let Some(follow) = followed(brands, unfollowed).filter(|_| origin == Origin::File) {
        // A snapshot written under an earlier config may hold brands no
        // longer followed.
        let gone: BTreeMap<Brand, u64> = snapshot
            .brand_entries()
            .filter(|(b, _)| !follow.contains(b))
            .map(|(b, e)| (*b, e.sets.iter().map(|k| k.tuples().0 + k.tuples().1).sum()))
            .collect();
        if !gone.is_empty() {
            let mut edit = snapshot.edit();
            for b in gone.keys() {
                edit.remove_brand(*b);
            }
            snapshot = edit.publish(snapshot.published_at);
            skipped("unfollowed_brand", gone.values().sum());
            tracing::warn!(
                brands = %brand_list(&gone),
                "brands in the snapshot file not in [[brands]] dropped: nothing would keep them current (store.unfollowed_brands = \"load\" keeps them)"
            );
        }
    }
    let missing: Vec<Brand> = brands
        .iter()
        .copied()
        .filter(|b| snapshot.brand(*b).is_none())
        .collect();
    if missing.is_empty() {
        return Ok((snapshot, origin));
    }
    let mut edit = snapshot.edit();
    for b in missing {
        edit.add_brand(b);
    }
    Ok((edit.publish(snapshot.published_at), origin))
}

/// `700002/1 (12 rows), ...`: the first ten brands and how many more.
fn brand_list(counts: &BTreeMap<Brand, u64>) -> String {
    let mut s: Vec<String> = counts
        .iter()
        .take(10)
        .map(|(b, n)| format!("{b} ({n})"))
        .collect();
    if counts.len() > 10 {
        s.push(format!("and {} more", counts.len() - 10));
    }
    s.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = "iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n\
700001,100001,+905321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n\
700002,1,+905321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n\
700002,1,+905322222222,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n";

    const FOLLOWED: Brand = Brand::new(700001, 100001);
    const OTHER: Brand = Brand::new(700002, 1);

    #[test]
    fn brands_not_followed_are_left_out_of_exports_and_snapshot_files_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("export.csv");
        std::fs::write(&csv, EXPORT).unwrap();
        let csvs = [csv.as_path()];
        let load = |brands: &[Brand], u| {
            initial(None, &csvs, brands, BadRows::Abort, u)
                .unwrap()
                .0
                .brands()
        };
        assert_eq!(load(&[FOLLOWED], UnfollowedBrands::Skip), [FOLLOWED]);
        assert_eq!(load(&[FOLLOWED], UnfollowedBrands::Load), [FOLLOWED, OTHER]);
        // No [[brands]]: nothing to tell followed from not; all load.
        assert_eq!(load(&[], UnfollowedBrands::Skip), [FOLLOWED, OTHER]);
        let (_, l) = from_csv_following(
            &csvs,
            &[FOLLOWED],
            BadRows::Abort,
            UnfollowedBrands::Skip,
            ConsentTime::now(),
        )
        .unwrap();
        assert_eq!(l.unfollowed_rows(), 2);
        assert_eq!(brand_list(&l.unfollowed), "700002/1 (2)");

        // A snapshot file written when both were followed.
        let (both, _) = from_csv(&csvs, &[], BadRows::Abort, ConsentTime::now()).unwrap();
        let file = dir.path().join("snapshot.bin");
        file::write(&file, &both).unwrap();
        let (s, origin) = initial(
            Some(&file),
            &[],
            &[FOLLOWED],
            BadRows::Abort,
            UnfollowedBrands::Skip,
        )
        .unwrap();
        assert_eq!(origin, Origin::File);
        assert_eq!(s.brands(), [FOLLOWED]);
        let (s, _) = initial(
            Some(&file),
            &[],
            &[FOLLOWED],
            BadRows::Abort,
            UnfollowedBrands::Load,
        )
        .unwrap();
        assert_eq!(s.brands(), [FOLLOWED, OTHER]);
    }
}
