//! `iys-gate serve`: bring the gate up with data already loaded, then keep it
//! current. Order: logging and metrics, (demo) the in-process registry
//! emulator, bootstrap (snapshot file, else CSV, else demo data, else empty),
//! admin listener, change-feed follower, persister, then each protocol's
//! `start` (SMPP, SMTP) with the one shared [`GateContext`]; Ctrl-C or SIGTERM
//! stops everything and writes a last snapshot. This module only wires.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::config::{Config, LogFormat};
use crate::consent::{Brand, ConsentRecord, ConsentTime};
use crate::gate::{Started, Stop};
use crate::gen::{GenParams, Generator};
use crate::observe::audit::Audit;
use crate::observe::metrics::{self, DecisionCounters};
use crate::registry::client::RegistryClient;
use crate::registry::emulator::{self, Emulator, EmulatorConfig};
use crate::store::SnapshotBuilder;
use crate::sync::{bootstrap, follow, persist, StoreHandle};

pub use crate::gate::GateContext;

/// Set up tracing from the config (`RUST_LOG` overrides the level).
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The fixed demo records, so a newcomer has known addresses to try.
pub fn demo_fixed_records(brand: Brand) -> Vec<ConsentRecord> {
    let rows = [
        "+905300000001,BIREYSEL,MESAJ,ONAY,2024-05-01 10:00:00,HS_WEB,,",
        "+905300000002,BIREYSEL,MESAJ,ONAY,2024-05-01 10:00:00,HS_WEB,,",
        "+905300000002,BIREYSEL,MESAJ,RET,2024-06-01 10:00:00,IYS_MOBIL,,",
        "+905300000003,TACIR,MESAJ,ONAY,,,,",
        "+905300000004,BIREYSEL,MESAJ,ONAY,2024-05-01 10:00:00,HS_FIZIKSEL_ORTAM,501,501;502",
        "+905300000001,BIREYSEL,ARAMA,ONAY,2024-05-01 10:00:00,HS_CAGRI_MERKEZI,,",
        "demo@example.com,BIREYSEL,EPOSTA,ONAY,2024-05-01 10:00:00,HS_WEB,,",
    ];
    rows.iter()
        .filter_map(|r| {
            let row = format!("{},{},{r}", brand.iys_code, brand.brand_code);
            ConsentRecord::from_csv_fields(row.split(',')).ok()
        })
        .collect()
}

/// Demo data: the fixed records plus generated ones, all for the demo brands.
pub fn demo_records(
    brands: &[Brand],
    tuples: u64,
    seed: u64,
) -> anyhow::Result<Vec<ConsentRecord>> {
    let mut out: Vec<ConsentRecord> = Vec::new();
    let Some(first) = brands.first() else {
        return Ok(out);
    };
    let generator =
        Generator::new(&GenParams::new(tuples, brands.len() as u32, seed)).context("demo data")?;
    let slot: std::collections::HashMap<Brand, usize> = generator
        .brands()
        .iter()
        .enumerate()
        .map(|(i, p)| (p.brand, i % brands.len()))
        .collect();
    for mut r in generator.records() {
        r.brand = brands[slot.get(&r.brand).copied().unwrap_or(0)];
        out.push(r);
    }
    out.extend(demo_fixed_records(*first));
    Ok(out)
}

/// A running gate (what `start` returns).
pub struct RunningGate {
    /// Where the admin API listens.
    pub admin_addr: std::net::SocketAddr,
    /// Where the SMPP gate listens (plain TCP), when configured.
    pub smpp_addr: Option<std::net::SocketAddr>,
    /// Where the SMPP gate listens with TLS, when configured.
    pub smpp_tls_addr: Option<std::net::SocketAddr>,
    /// Where the Postfix policy service listens, when configured.
    pub smtp_policy_addr: Option<std::net::SocketAddr>,
    /// Where the inline SMTP hop listens, when configured.
    pub smtp_hop_addr: Option<std::net::SocketAddr>,
    /// Where the SIP gate listens for UDP, when configured.
    pub sip_udp_addr: Option<std::net::SocketAddr>,
    /// Where the SIP gate listens for TCP, when configured.
    pub sip_tcp_addr: Option<std::net::SocketAddr>,
    /// The in-process registry emulator's base URL, when one runs.
    pub emulator_url: Option<String>,
    /// The in-process registry emulator, when one runs.
    pub emulator: Option<Arc<Emulator>>,
    /// The shared context the protocol gates decide with.
    pub context: GateContext,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _emulator_server: Option<emulator::EmulatorServer>,
}

impl RunningGate {
    /// Stop every task; the persister writes a last snapshot first.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(server) = self._emulator_server {
            let _ = server.shutdown().await;
        }
    }
}

/// Run the gate until Ctrl-C / SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    init_logging(config.log.format, &config.log.level);
    let gate = start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    gate.shutdown().await;
    Ok(())
}

/// Bring the gate up and return once it serves: the emulator (demo), the
/// store, the admin listener, the sync tasks, then each protocol's listeners.
pub async fn start(config: Config) -> anyhow::Result<RunningGate> {
    let prometheus = metrics::install();
    let brands: Vec<Brand> = config.brands.iter().map(|b| b.brand()).collect();
    let (stop_tx, stop_rx) = watch::channel(false);

    let emulator = start_emulator(&config, &brands).await?;
    let registry_url = match &emulator {
        Some(e) => Some(e.server.url()),
        None => config.registry.as_ref().map(|r| r.base_url.clone()),
    };
    let demo = emulator.as_ref().and_then(|e| e.demo.as_deref());
    let (store, persisted_version) = load_store(&config, &brands, demo).await?;

    let mut tasks = start_admin(&config, &store, prometheus, &brands, &stop_rx).await?;
    let admin_addr = tasks.addr("admin").context("admin listener")?;
    tasks.tasks.extend(start_sync(
        &config,
        &store,
        registry_url,
        &brands,
        persisted_version,
        &stop_rx,
    )?);

    let context = GateContext {
        store,
        policy: config.policy(),
        decisions: DecisionCounters::new(),
        audit: Audit::start(config.audit.path.clone(), config.audit.unmasked)?,
    };
    if let Some(smpp) = &config.smpp {
        tasks.absorb(crate::smpp::start(&context, smpp, &stop_rx).await?);
    }
    if let Some(smtp) = &config.smtp {
        tasks.absorb(crate::smtp::start(&context, smtp, &stop_rx).await?);
    }
    if let Some(sip) = &config.sip {
        tasks.absorb(crate::sip::start(&context, sip, &stop_rx).await?);
    }

    tracing::info!(admin = %admin_addr, monitor = config.policy.monitor, brands = brands.len(), "iys-gate ready");
    if demo.is_some() {
        print_demo_hints(&brands, &tasks);
    }
    let (emulator_url, emulator_handle, emulator_server) = match emulator {
        Some(e) => (Some(e.server.url()), Some(e.emulator), Some(e.server)),
        None => (None, None, None),
    };
    Ok(RunningGate {
        admin_addr,
        smpp_addr: tasks.addr("smpp"),
        smpp_tls_addr: tasks.addr("smpp_tls"),
        smtp_policy_addr: tasks.addr("smtp_policy"),
        smtp_hop_addr: tasks.addr("smtp_hop"),
        sip_udp_addr: tasks.addr("sip_udp"),
        sip_tcp_addr: tasks.addr("sip_tcp"),
        emulator_url,
        emulator: emulator_handle,
        context,
        stop: stop_tx,
        tasks: tasks.tasks,
        _emulator_server: emulator_server,
    })
}

/// The in-process registry emulator, its server, and the demo records it was seeded with.
struct RunningEmulator {
    emulator: Arc<Emulator>,
    server: emulator::EmulatorServer,
    demo: Option<Vec<ConsentRecord>>,
}

/// Start the in-process registry emulator when `[registry] emulator = true`,
/// seeded with the demo data and the configured exports.
async fn start_emulator(
    config: &Config,
    brands: &[Brand],
) -> anyhow::Result<Option<RunningEmulator>> {
    let Some(r) = config.registry.as_ref().filter(|r| r.emulator) else {
        return Ok(None);
    };
    let ecfg = EmulatorConfig {
        users: vec![emulator::User::new(
            r.username.clone(),
            config.registry_password()?,
        )],
        ..EmulatorConfig::default()
    };
    let emu = Arc::new(Emulator::new(ecfg));
    let mut demo = None;
    if let Some(d) = &config.demo {
        let records = demo_records(brands, d.tuples, d.seed)?;
        let now = ConsentTime::now();
        for rec in &records {
            emu.seed(rec, now);
        }
        demo = Some(records);
    }
    // The emulator mirrors the configured exports, so citizens can act on them.
    for path in &config.store.bootstrap_csv {
        let f = std::fs::File::open(path)
            .with_context(|| format!("store.bootstrap_csv {}", path.display()))?;
        emu.load_csv(std::io::BufReader::new(f), ConsentTime::now())
            .with_context(|| format!("loading {} into the emulator", path.display()))?;
    }
    let listener = TcpListener::bind(r.emulator_listen)
        .await
        .with_context(|| format!("registry.emulator_listen {}", r.emulator_listen))?;
    let server = emulator::spawn(emu.clone(), listener)?;
    tracing::info!(url = %server.url(), "registry emulator running in this process");
    Ok(Some(RunningEmulator {
        emulator: emu,
        server,
        demo,
    }))
}

/// Bootstrap the store (snapshot file, else CSV, else demo data, else empty)
/// and publish it; also returns the version the snapshot file holds (0: none).
async fn load_store(
    config: &Config,
    brands: &[Brand],
    demo: Option<&[ConsentRecord]>,
) -> anyhow::Result<(Arc<StoreHandle>, u64)> {
    let snapshot_path = config.store.snapshot_path.clone();
    let csv: Vec<std::path::PathBuf> = config.store.bootstrap_csv.clone();
    let bootstrap_brands = brands.to_vec();
    let bad_rows = config.store.bad_rows;
    let path = snapshot_path.clone();
    let (mut snapshot, origin) = tokio::task::spawn_blocking(move || {
        let csv: Vec<&Path> = csv.iter().map(|p| p.as_path()).collect();
        bootstrap::initial(path.as_deref(), &csv, &bootstrap_brands, bad_rows)
    })
    .await??;
    if origin == bootstrap::Origin::Empty {
        if let Some(records) = demo {
            let mut b = SnapshotBuilder::new();
            for brand in brands {
                b.add_brand(*brand);
            }
            for r in records {
                b.add(r);
            }
            let (s, stats) = b.build(ConsentTime::now());
            tracing::info!(tuples = stats.tuples, "loaded demo data");
            snapshot = s;
        }
    }
    let persisted_version = if snapshot_path.as_deref().is_some_and(Path::exists) {
        snapshot.version
    } else {
        0
    };
    let store = StoreHandle::new();
    store.publish(snapshot);
    store.update_age_gauge(ConsentTime::now());
    Ok((store, persisted_version))
}

/// The admin listener (`"admin"` in the result).
async fn start_admin(
    config: &Config,
    store: &Arc<StoreHandle>,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    brands: &[Brand],
    stop: &Stop,
) -> anyhow::Result<Started> {
    let listener = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("admin.listen {}", config.admin.listen))?;
    let mut started = Started::default();
    started.listening.push(("admin", listener.local_addr()?));
    let state = Arc::new(AdminState {
        store: store.clone(),
        policy: config.policy(),
        metrics: prometheus,
        webhook_secret: config.webhook_secret()?,
        brands: brands.to_vec(),
        decisions: DecisionCounters::new(),
    });
    started
        .tasks
        .push(tokio::spawn(admin::serve(listener, state, stop.clone())));
    Ok(started)
}

/// The change-feed follower (when a registry is configured) and the snapshot
/// persister (when a snapshot file is).
fn start_sync(
    config: &Config,
    store: &Arc<StoreHandle>,
    registry_url: Option<String>,
    brands: &[Brand],
    persisted_version: u64,
    stop: &Stop,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    if let (Some(r), Some(url)) = (&config.registry, registry_url) {
        let client = Arc::new(RegistryClient::new(
            &url,
            &r.username,
            &config.registry_password()?,
            r.request_timeout,
        )?);
        let cfg = follow::FollowConfig {
            brands: brands.to_vec(),
            poll_interval: r.poll_interval,
            page_limit: r.page_limit,
            max_pages_per_round: 100,
            max_backoff: r.max_backoff,
            feed_retention: r.feed_retention,
        };
        tasks.push(tokio::spawn(follow::run(
            store.clone(),
            client,
            cfg,
            stop.clone(),
        )));
    }
    if let Some(path) = &config.store.snapshot_path {
        tasks.push(tokio::spawn(persist::run(
            store.clone(),
            path.clone(),
            config.store.persist_interval,
            stop.clone(),
            persisted_version,
        )));
    }
    Ok(tasks)
}

/// What the demo prints for a newcomer to try.
fn print_demo_hints(brands: &[Brand], started: &Started) {
    let (Some(b), Some(admin)) = (brands.first(), started.addr("admin")) else {
        return;
    };
    let base = format!(
        "http://{admin}/v1/check?iys_code={}&brand_code={}&channel=MESAJ",
        b.iys_code, b.brand_code
    );
    eprintln!(
        "\nDemo: try\n  curl '{base}&recipient=05300000001'   # consent: allow\n  curl '{base}&recipient=05300000002'   # withdrawn: refuse\n  curl '{base}&recipient=05300000009'   # never given: refuse\n  curl '{base}&recipient=05300000009&message_type=0'   # informational: allow\n  curl http://{admin}/metrics\n"
    );
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
