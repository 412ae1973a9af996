//! The compliance subcommands: `iys-gate audit verify FILE...` and
//! `iys-gate report --date YYYY-MM-DD`.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::chain;
use super::day::Day;
use super::report;

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit trail's hash chain: report the first broken or
    /// missing line (file, line number, why) and exit 1, or confirm it whole.
    Verify(VerifyArgs),
}

/// `audit verify` options.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Audit files (any order: they are chained by their `seq`), e.g.
    /// /var/log/iys-gate/audit.jsonl*
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Run an `audit` subcommand.
pub fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify(args) => verify(args),
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    match chain::verify(&args.files) {
        Ok(v) => {
            let mut out = std::io::stdout().lock();
            for (f, n) in &v.files {
                writeln!(out, "{}: {n} lines", f.display())?;
            }
            writeln!(
                out,
                "ok: {} files, {} lines, seq {}..{}, last line's hash {}",
                v.files.len(),
                v.lines,
                v.first_seq,
                v.last_seq,
                chain::hex(&v.last_hash)
            )?;
            if v.first_seq > 1 {
                writeln!(
                    out,
                    "note: the chain starts at seq {}: lines before it are in files not given (or deleted by retention)",
                    v.first_seq
                )?;
            }
            Ok(())
        }
        Err(broken) => anyhow::bail!("audit verify: {broken}"),
    }
}

/// Output format of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A header and one line per row.
    Csv,
    /// The JSON `/v1/report` answers.
    Json,
}

/// `report` options.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The day, Turkey time (YYYY-MM-DD).
    #[arg(long)]
    pub date: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Csv)]
    pub format: ReportFormat,
    /// Directory holding reports.json (the gate's reports.state_dir, by
    /// default the snapshot file's directory).
    #[arg(long, conflicts_with = "config")]
    pub state_dir: Option<PathBuf>,
    /// The gate's config file: its reports.state_dir or snapshot directory.
    #[arg(long, short, env = "IYS_GATE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Print a day's report from the gate's report file. The file is written
/// every reports.flush_interval, so today's figures may lag by that much
/// (`/v1/report` answers from the running gate).
pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    let day = Day::parse(&args.date).map_err(|e| anyhow::anyhow!("--date: {e}"))?;
    let path = match (&args.state_dir, &args.config) {
        (Some(dir), _) => dir.join(report::FILE_NAME),
        (None, Some(c)) => crate::config::Config::from_file(c)?
            .reports_path()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: neither reports.state_dir nor store.snapshot_path is set, so the gate keeps reports in memory only (ask GET /v1/report)",
                    c.display()
                )
            })?,
        (None, None) => anyhow::bail!("give --state-dir DIR or --config FILE"),
    };
    if !path.exists() {
        anyhow::bail!(
            "{}: no report file (the gate writes it every reports.flush_interval once it has decided traffic)",
            path.display()
        );
    }
    let r = report::read_day(&path, day).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let Some(r) = r else {
        anyhow::bail!(
            "{}: no decisions counted on {day} (Turkey time)",
            path.display()
        );
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        ReportFormat::Csv => out.write_all(report::to_csv(&r).as_bytes())?,
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &r)?;
            writeln!(out)?;
        }
    }
    Ok(())
}
