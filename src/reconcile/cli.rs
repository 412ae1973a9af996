//! `iys-gate reconcile`: ask the running gate (its admin API, `POST
//! /v1/reconcile`, role admin) to reconcile a brand, and print the report.
//! The gate runs it because only the gate holds the live store and the
//! record of what it applied. Exit status: 0 no mismatches, 1 mismatches
//! found or the run failed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use super::report::Report;
use crate::config::{Config, Role};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The report as JSON.
    Json,
    /// A summary for people.
    Text,
}

/// `reconcile` options.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The gate's config file (admin address, tokens, `[reconcile]` defaults).
    #[arg(long, short, env = "IYS_GATE_CONFIG")]
    pub config: PathBuf,
    /// The brand, as IYS_CODE/BRAND_CODE (e.g. 700001/1).
    #[arg(long)]
    pub brand: String,
    /// Tuples to sample from those the store holds, and again from those it
    /// does not (default: reconcile.sample).
    #[arg(long)]
    pub sample: Option<u32>,
    /// Registry requests per second (default: reconcile.budget_rps).
    #[arg(long)]
    pub budget: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The admin API's base URL (default: http://admin.listen, or https://
    /// when [admin.tls] is set).
    #[arg(long)]
    pub admin: Option<String>,
    /// An admin-role token (default: the first [[admin.tokens]] entry with
    /// role admin in the config).
    #[arg(long, env = "IYS_GATE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Run `iys-gate reconcile`.
pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let config = Config::from_file(&args.config)?;
    super::parse_brand(&args.brand).map_err(anyhow::Error::msg)?;
    let token = match args.token.clone() {
        Some(t) => t,
        None => config
            .admin_tokens()?
            .into_iter()
            .find(|t| t.role == Role::Admin)
            .map(|t| t.secret)
            .context("no admin token: pass --token (or IYS_GATE_ADMIN_TOKEN), or add an [[admin.tokens]] entry with role = \"admin\" to the config")?,
    };
    let base = match &args.admin {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let mut addr = config.admin.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let scheme = if config.admin.tls.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{addr}")
        }
    };
    let sample = args.sample.unwrap_or(config.reconcile.sample);
    let budget = args.budget.unwrap_or(config.reconcile.budget_rps);
    // Every request the run may make, at the budget, and a minute to spare.
    let expected = (2.0 * f64::from(sample) + 32.0) / budget.max(0.1);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs_f64(expected + 60.0))
        .build()?;
    let mut query = vec![("brand", args.brand.clone())];
    if let Some(s) = args.sample {
        query.push(("sample", s.to_string()));
    }
    if let Some(b) = args.budget {
        query.push(("budget", b.to_string()));
    }
    let url = format!("{base}/v1/reconcile");
    let resp = client
        .post(&url)
        .query(&query)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach the gate's admin API at {url}"))?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("{url} answered {status}: {message}");
    }
    let report: Report = serde_json::from_slice(&body)
        .with_context(|| format!("{url} sent a body that is not a reconciliation report"))?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", report.to_text()),
    }
    if !report.ok {
        bail!(
            "{} mismatches between the gate and the registry for brand {}",
            report.mismatches.len(),
            report.brand
        );
    }
    Ok(())
}
