//! `iys-gate registry`: run the emulator as a server, optionally loaded from a
//! consent export.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;

use super::{serve, Emulator, EmulatorConfig, FaultConfig, LoadSummary, User};
use crate::consent::ConsentTime;

/// Command-line options of `iys-gate registry`.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8480")]
    pub listen: SocketAddr,
    /// A consent export (CSV) to load as existing state before serving.
    #[arg(long, value_name = "FILE.csv")]
    pub load: Option<PathBuf>,
    /// User name accepted on the password grant.
    #[arg(long, default_value = "demo", env = "IYS_REGISTRY_USER")]
    pub user: String,
    /// Password for that user.
    #[arg(
        long,
        default_value = "demo",
        env = "IYS_REGISTRY_PASSWORD",
        hide_env_values = true
    )]
    pub password: String,
    /// Requests per second before HTTP 429 / H124 (default: no limit).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: Option<u32>,
    /// Leave changes younger than this out of the feed (the real feed: 1h).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub feed_lag: Duration,
    /// Access token lifetime.
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    #[arg(long, default_value = "4h", value_parser = humantime::parse_duration)]
    pub refresh_ttl: Duration,
    /// Keep bulk items `enqueue` this long before applying them.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub bulk_delay: Duration,
    /// Fault injection: share (0 to 1) of token and change-feed requests
    /// answered HTTP 429 / H124.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub fault_429: f64,
    /// Fault injection: share answered HTTP 500/502/503.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub fault_5xx: f64,
    /// Fault injection: share answered only after --fault-slow-delay.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub fault_slow: f64,
    /// How long a slow answer waits.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub fault_slow_delay: Duration,
    /// Fault injection: share of change-feed pages served garbled (cut short
    /// or not JSON).
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub fault_garbled: f64,
    /// Seed of the fault draws, for a repeatable run (default: random).
    #[arg(long, value_name = "N")]
    pub fault_seed: Option<u64>,
}

/// A probability: a number from 0 to 1.
fn rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{text:?} is not a rate: use a number from 0 to 1")),
    }
}

impl RegistryArgs {
    /// The emulator settings these options describe.
    pub fn config(&self) -> EmulatorConfig {
        EmulatorConfig {
            users: vec![User::new(&self.user, &self.password)],
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            rate_limit: self.rate_limit,
            feed_lag: self.feed_lag,
            bulk_delay: self.bulk_delay,
            faults: FaultConfig {
                rate_limited: self.fault_429,
                server_error: self.fault_5xx,
                slow: self.fault_slow,
                slow_delay: self.fault_slow_delay,
                garbled: self.fault_garbled,
                seed: self.fault_seed,
            },
            ..EmulatorConfig::default()
        }
    }
}

/// Load the export, then serve until Ctrl-C (or SIGTERM).
pub async fn run(args: RegistryArgs) -> anyhow::Result<()> {
    let sum = args.fault_429 + args.fault_5xx + args.fault_slow + args.fault_garbled;
    if sum > 1.0 + 1e-9 {
        anyhow::bail!(
            "--fault-429 + --fault-5xx + --fault-slow + --fault-garbled = {sum}: the rates are shares of one request stream and add up to at most 1"
        );
    }
    if args.fault_slow > 0.0 && args.fault_slow_delay.is_zero() {
        anyhow::bail!("--fault-slow-delay is 0s while --fault-slow is set: give a delay");
    }
    let config = args.config();
    config
        .faults
        .validate()
        .map_err(|e| anyhow::anyhow!("--fault-*: {e}"))?;
    let emulator = Arc::new(Emulator::new(config));
    if let Some(path) = args.load.clone() {
        let started = Instant::now();
        let emu = emulator.clone();
        let file_name = path.display().to_string();
        let summary = tokio::task::spawn_blocking(move || -> anyhow::Result<LoadSummary> {
            let file = File::open(&path)
                .with_context(|| format!("cannot open the consent export {}", path.display()))?;
            emu.load_csv(file, ConsentTime::now())
                .with_context(|| format!("cannot load {}", path.display()))
        })
        .await
        .context("the load task failed")??;
        report_load(&file_name, &summary, started.elapsed());
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "İYS registry emulator listening on http://{} (user {:?}, {} consents)",
        listener.local_addr()?,
        args.user,
        emulator.consent_count()
    );
    if emulator.config().faults.enabled() {
        let f = &emulator.config().faults;
        eprintln!(
            "injecting faults on token and change-feed requests: 429 {}, 5xx {}, slow {} ({:?}), garbled {}",
            f.rate_limited, f.server_error, f.slow, f.slow_delay, f.garbled
        );
    }
    serve(emulator.clone(), listener, stop_signal())
        .await
        .context("the registry emulator server failed")?;
    if emulator.config().faults.enabled() {
        eprintln!("faults injected: {}", emulator.faults().counts());
    }
    eprintln!("İYS registry emulator stopped");
    Ok(())
}

fn report_load(file: &str, summary: &LoadSummary, took: Duration) {
    for e in &summary.errors {
        eprintln!("{file}: skipped {e}");
    }
    let unlisted = summary.skipped.saturating_sub(summary.errors.len() as u64);
    if unlisted > 0 {
        eprintln!("{file}: skipped {unlisted} more bad rows");
    }
    eprintln!("{file}: {summary} in {took:.1?}");
}

async fn stop_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = ctrl_c => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}
