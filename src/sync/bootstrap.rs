//! Coming up with data already loaded: the snapshot file if there is one, else
//! the configured CSV exports, else an empty store for the configured brands.

use std::path::Path;
use std::time::Instant;

use crate::config::BadRows;
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
}

/// Load CSV exports into a builder. With `BadRows::Abort` the first bad row
/// fails the load; with `Skip` bad rows are counted and the first ten kept.
pub fn load_csv_into(
    builder: &mut SnapshotBuilder,
    path: &Path,
    bad_rows: BadRows,
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
    let mut builder = SnapshotBuilder::new();
    for b in brands {
        builder.add_brand(*b);
    }
    let mut load = CsvLoad::default();
    for p in paths {
        load_csv_into(&mut builder, p, bad_rows, &mut load)?;
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
) -> Result<(Snapshot, Origin), BootstrapError> {
    let started = Instant::now();
    let (snapshot, origin) = match snapshot_path.filter(|p| p.exists()) {
        Some(path) => {
            let s = file::read(path).map_err(|source| BootstrapError::Snapshot {
                path: path.display().to_string(),
                source,
            })?;
            tracing::info!(path = %path.display(), version = s.version, brands = s.brands().len(), secs = started.elapsed().as_secs_f64(), "loaded snapshot file");
            (s, Origin::File)
        }
        None if !csv.is_empty() => {
            let (s, load) = from_csv(csv, brands, bad_rows, ConsentTime::now())?;
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
