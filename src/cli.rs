//! Command-line front end: clap definitions and the small subcommands
//! (`snapshot build`, `snapshot inspect`). The long-running ones live in
//! `serve`, `registry::emulator` and `gen`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{BadRows, Config};
use crate::consent::{Brand, Channel, ConsentTime};
use crate::gen::{GenParams, Generator};
use crate::store::{file, SnapshotBuilder};
use crate::sync::bootstrap;

/// Operator-side consent gate for Turkey's İYS.
#[derive(Debug, Parser)]
#[command(name = "iys-gate", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gate (without --config: the embedded demo with a registry emulator).
    Serve(ServeArgs),
    /// Run the İYS-compatible registry emulator.
    Registry(crate::registry::emulator::RegistryArgs),
    /// Write synthetic consents as a CSV export.
    Gen(crate::gen::GenArgs),
    /// Build or inspect snapshot files.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Sink SMSC for tests and throughput runs.
    SmppSink(crate::smpp::tools::sink::SinkArgs),
    /// SMPP load generator: throughput, latency, answers by status.
    SmppLoad(Box<crate::smpp::tools::loadgen::LoadArgs>),
    /// Plain TCP relay: the baseline a proxy is measured against.
    SmppRelay(crate::smpp::tools::relay::RelayArgs),
    /// Send one SMS (bind, submit_sm, unbind) and print the answer.
    SmppSend(crate::smpp::tools::send::SendArgs),
    /// SIP UAS answering every call (demos and tests).
    SipUas(crate::sip::tools::uas::UasArgs),
    /// Place one SIP call over UDP and print how it ended.
    SipCall(crate::sip::tools::call::CallArgs),
    /// SMTP sink for demos, tests and throughput runs: accepts and counts mail.
    SmtpSink(crate::smtp::tools::sink::SinkArgs),
    /// SMTP load generator: sessions, pipelining, recipients per message.
    SmtpLoad(Box<crate::smtp::tools::load::LoadArgs>),
    /// Postfix policy load generator (with --serve-dunno: a trivial always-DUNNO policy server).
    SmtpPolicyLoad(Box<crate::smtp::tools::policy_load::PolicyLoadArgs>),
    /// The audit trail: check its hash chain.
    #[command(subcommand)]
    Audit(crate::observe::tools::AuditCommand),
    /// A day's decisions by brand, channel, decision, reason and dealer.
    Report(crate::observe::tools::ReportArgs),
    /// Reconcile a brand with the registry (asks the running gate) and print the report.
    Reconcile(crate::reconcile::cli::ReconcileArgs),
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML); see config/iys-gate.toml. Omit for the demo.
    #[arg(long, short, env = "IYS_GATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Record decisions but enforce none (overrides policy.monitor).
    #[arg(long)]
    pub monitor: bool,
    /// Check the config and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Build a snapshot file from CSV exports or from the generator.
    Build(BuildArgs),
    /// Print what a snapshot file holds (and check it whole).
    Inspect(InspectArgs),
    /// Load a snapshot file and time lookups on it (hot brand and random keys).
    Bench(BenchArgs),
}

/// `snapshot bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Snapshot file.
    pub file: PathBuf,
    /// Timing samples per workload (the median is reported).
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// Lookups per sample (short samples keep a preempted one an outlier).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
}

/// `snapshot build` options.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// CSV export(s) to load (repeatable).
    #[arg(long)]
    pub csv: Vec<PathBuf>,
    /// Instead of CSV: generate this many tuples in process (`gen`'s data, no file).
    #[arg(long, conflicts_with = "csv")]
    pub gen_tuples: Option<u64>,
    /// Brands for --gen-tuples.
    #[arg(long, default_value_t = 1000)]
    pub gen_brands: u32,
    /// Seed for --gen-tuples.
    #[arg(long, default_value_t = 1)]
    pub gen_seed: u64,
    /// Skip bad CSV rows (counted, first ten shown) instead of stopping.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Output snapshot file.
    #[arg(long)]
    pub out: PathBuf,
}

/// `snapshot inspect` options.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Snapshot file.
    pub file: PathBuf,
    /// List every brand (default: the ten largest).
    #[arg(long)]
    pub all_brands: bool,
}

/// Resident set size of this process, in bytes (Linux).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Anonymous memory of this process on transparent huge pages, in bytes (Linux).
pub fn huge_page_bytes() -> Option<u64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = rollup.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let mut config = match &args.config {
                Some(p) => Config::from_file(p)?,
                None => Config::demo(),
            };
            if args.monitor {
                config.policy.monitor = true;
            }
            if args.check_config {
                println!("config ok");
                return Ok(());
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(crate::serve::run(config))
        }
        Command::Registry(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(crate::registry::emulator::run(args))
        }
        Command::Gen(args) => crate::gen::run(args),
        Command::SmppSink(args) => runtime()?.block_on(crate::smpp::tools::sink::run(args)),
        Command::SmppLoad(args) => runtime()?
            .block_on(crate::smpp::tools::loadgen::run(*args))
            .map(|_| ()),
        Command::SmppRelay(args) => runtime()?.block_on(crate::smpp::tools::relay::run(args)),
        Command::SmppSend(args) => runtime()?.block_on(crate::smpp::tools::send::run(args)),
        Command::SipUas(args) => runtime()?.block_on(crate::sip::tools::uas::run(args)),
        Command::SipCall(args) => runtime()?.block_on(crate::sip::tools::call::run(args)),
        Command::SmtpSink(args) => runtime()?.block_on(crate::smtp::tools::sink::run(args)),
        Command::SmtpLoad(args) => runtime()?
            .block_on(crate::smtp::tools::load::run(*args))
            .map(|_| ()),
        Command::SmtpPolicyLoad(args) => {
            runtime()?.block_on(crate::smtp::tools::policy_load::run(*args))
        }
        Command::Reconcile(args) => runtime()?.block_on(crate::reconcile::cli::run(args)),
        Command::Snapshot(SnapshotCommand::Build(args)) => build(args),
        Command::Snapshot(SnapshotCommand::Inspect(args)) => inspect(args),
        Command::Snapshot(SnapshotCommand::Bench(args)) => bench(args),
        Command::Audit(cmd) => crate::observe::tools::audit(cmd),
        Command::Report(args) => crate::observe::tools::report(args),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    let now = ConsentTime::now();
    let (snapshot, records, tuples, skipped) = if let Some(n) = args.gen_tuples {
        let generator = Generator::new(&GenParams::new(n, args.gen_brands, args.gen_seed))?;
        let mut builder = SnapshotBuilder::new();
        for r in generator.records() {
            builder.add(&r);
        }
        let gen_secs = started.elapsed().as_secs_f64();
        eprintln!("generated {} records in {gen_secs:.1}s", builder.records());
        let (s, stats) = builder.build(now);
        (s, stats.records, stats.tuples, 0)
    } else {
        if args.csv.is_empty() {
            anyhow::bail!("give --csv FILE (repeatable) or --gen-tuples N");
        }
        let paths: Vec<&std::path::Path> = args.csv.iter().map(|p| p.as_path()).collect();
        let bad = if args.skip_bad_rows {
            BadRows::Skip
        } else {
            BadRows::Abort
        };
        let (s, load) = bootstrap::from_csv(&paths, &[], bad, now)?;
        for e in &load.first_errors {
            eprintln!("skipped: {e}");
        }
        (s, load.build.records, load.build.tuples, load.skipped)
    };
    let build_secs = started.elapsed().as_secs_f64();
    let heap = snapshot.heap_bytes();
    let bytes = file::write(&args.out, &snapshot)
        .with_context(|| format!("writing {}", args.out.display()))?;
    writeln!(
        out,
        "built {} in {build_secs:.1}s: {records} records, {tuples} tuples, {skipped} bad rows skipped, {} brands; store {heap} bytes ({:.2} bytes/tuple); file {bytes} bytes",
        args.out.display(),
        snapshot.brands().len(),
        heap as f64 / tuples.max(1) as f64,
    )?;
    Ok(())
}

fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let rss_before = resident_bytes().unwrap_or(0);
    let started = Instant::now();
    let s = file::read(&args.file)?;
    let secs = started.elapsed().as_secs_f64();
    let rss_after = resident_bytes().unwrap_or(0);
    let per_channel = s.tuples_per_channel();
    let tuples: u64 = per_channel.iter().sum();
    let resident = rss_after.saturating_sub(rss_before);
    writeln!(out, "file:              {}", args.file.display())?;
    writeln!(out, "format:            {}", file::FORMAT_VERSION)?;
    writeln!(out, "snapshot version:  {}", s.version)?;
    writeln!(out, "published at:      {} (Turkey time)", s.published_at)?;
    writeln!(out, "loaded in:         {secs:.2}s (checksum verified)")?;
    writeln!(out, "brands:            {}", s.brands().len())?;
    for (i, ch) in Channel::ALL.iter().enumerate() {
        writeln!(out, "tuples {:<7}     {}", ch.as_str(), per_channel[i])?;
    }
    writeln!(out, "tuples total:      {tuples}")?;
    writeln!(
        out,
        "e-mail ids:        {}   foreign number ids: {}",
        s.emails().len(),
        s.foreign().len()
    )?;
    writeln!(
        out,
        "store heap bytes:  {} ({:.2} bytes/tuple)",
        s.heap_bytes(),
        s.heap_bytes() as f64 / tuples.max(1) as f64
    )?;
    writeln!(
        out,
        "resident (RSS Δ):  {resident} ({:.2} bytes/tuple)",
        resident as f64 / tuples.max(1) as f64
    )?;
    let usage = s.arena_usage();
    writeln!(
        out,
        "arrays:            {} in the arena ({} mapped), {} on the heap",
        usage.in_arenas, usage.arena_capacity, usage.heap
    )?;
    writeln!(
        out,
        "on huge pages:     {} (AnonHugePages)",
        huge_page_bytes().map_or_else(|| "-".to_string(), |b| b.to_string())
    )?;
    let mut brands: Vec<(Brand, u64)> = s
        .brand_entries()
        .map(|(b, e)| {
            (
                *b,
                e.sets
                    .iter()
                    .map(|k| {
                        let (o, r) = k.tuples();
                        o + r
                    })
                    .sum(),
            )
        })
        .collect();
    brands.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let shown = if args.all_brands {
        brands.len()
    } else {
        brands.len().min(10)
    };
    writeln!(
        out,
        "brands (largest first{}):",
        if args.all_brands { "" } else { ", ten shown" }
    )?;
    for (b, n) in brands.iter().take(shown) {
        let e = s.brand(*b).map(|e| e.sync.clone()).unwrap_or_default();
        writeln!(
            out,
            "  {b:<16} tuples {n:>10}  synced_at {}  cursor HS {}  IYS {}",
            e.synced_at
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            e.cursor_hs.as_deref().unwrap_or("-"),
            e.cursor_iys.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    use crate::store::probe;
    let started = Instant::now();
    let s = file::read(&args.file)?;
    let usage = s.arena_usage();
    writeln!(
        out,
        "loaded {} in {:.2}s: {} tuples; {} of {} array bytes in the arena, {} bytes on huge pages",
        args.file.display(),
        started.elapsed().as_secs_f64(),
        s.tuples_per_channel().iter().sum::<u64>(),
        usage.in_arenas,
        usage.in_arenas + usage.heap,
        huge_page_bytes().map_or_else(|| "-".to_string(), |b| b.to_string()),
    )?;
    let hot = probe::hot(&s, 4096, 7);
    let random = probe::random(&s, 1 << 20, 11);
    let hot_t = probe::time(&s, &hot, args.samples, args.batch);
    let rand_t = probe::time(&s, &random, args.samples, args.batch);
    let brand = probe::hottest_brand(&s)
        .map(|b| b.to_string())
        .unwrap_or_default();
    let spread = |t: &probe::Timing| {
        format!(
            "median {:.1} ns/lookup (samples p10 {:.1}, p90 {:.1}; {} x {})",
            t.median, t.p10, t.p90, args.samples, args.batch
        )
    };
    writeln!(
        out,
        "hot brand {brand} (MESAJ/BIREYSEL): {}, {:.0}% with consent",
        spread(&hot_t),
        100.0 * hot_t.hits as f64 / (args.samples * args.batch).max(1) as f64
    )?;
    writeln!(
        out,
        "random brand, channel, type and number: {}",
        spread(&rand_t)
    )?;
    Ok(())
}
