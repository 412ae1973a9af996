//! `iys-gate serve`: bring the gate up with data already loaded, then keep it
//! current. Order: logging and metrics, (demo) the in-process registry
//! emulator, bootstrap (snapshot file, else CSV, else demo data, else empty),
//! admin listener, change-feed follower, persister; Ctrl-C or SIGTERM stops
//! everything and writes a last snapshot.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::config::{Config, LogFormat};
use crate::consent::{Brand, ConsentRecord, ConsentTime};
use crate::gen::{GenParams, Generator};
use crate::observe::audit::Audit;
use crate::observe::metrics::{self, DecisionCounters};
use crate::policy::Policy;
use crate::registry::client::RegistryClient;
use crate::registry::emulator::{self, Emulator, EmulatorConfig};
use crate::store::SnapshotBuilder;
use crate::sync::{bootstrap, follow, persist, StoreHandle};

/// What every protocol gate shares: the store, the policy, counters and audit.
#[derive(Clone)]
pub struct GateContext {
    /// The published snapshot.
    pub store: Arc<StoreHandle>,
    /// Decision policy.
    pub policy: Policy,
    /// Decision counters.
    pub decisions: DecisionCounters,
    /// Refusal audit trail.
    pub audit: Audit,
}

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

/// Bring the gate up and return once it serves.
pub async fn start(config: Config) -> anyhow::Result<RunningGate> {
    let prometheus = metrics::install();
    let brands: Vec<Brand> = config.brands.iter().map(|b| b.brand()).collect();
    let (stop_tx, stop_rx) = watch::channel(false);

    // The in-process registry emulator (demo and tests).
    let mut demo: Option<Vec<ConsentRecord>> = None;
    let mut emulator_server = None;
    let mut emulator_handle = None;
    let mut registry_url = config.registry.as_ref().map(|r| r.base_url.clone());
    if let Some(r) = config.registry.as_ref().filter(|r| r.emulator) {
        let ecfg = EmulatorConfig {
            users: vec![emulator::User::new(
                r.username.clone(),
                config.registry_password()?,
            )],
            ..EmulatorConfig::default()
        };
        let emu = Arc::new(Emulator::new(ecfg));
        if let Some(d) = &config.demo {
            let records = demo_records(&brands, d.tuples, d.seed)?;
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
        registry_url = Some(server.url());
        emulator_server = Some(server);
        emulator_handle = Some(emu);
    }

    // Bootstrap.
    let snapshot_path = config.store.snapshot_path.as_deref();
    let csv: Vec<&Path> = config
        .store
        .bootstrap_csv
        .iter()
        .map(|p| p.as_path())
        .collect();
    let bootstrap_brands = brands.clone();
    let bad_rows = config.store.bad_rows;
    let snapshot_owned = snapshot_path.map(Path::to_path_buf);
    let csv_owned: Vec<std::path::PathBuf> = csv.iter().map(|p| p.to_path_buf()).collect();
    let (mut snapshot, mut origin) = tokio::task::spawn_blocking(move || {
        let csv: Vec<&Path> = csv_owned.iter().map(|p| p.as_path()).collect();
        bootstrap::initial(snapshot_owned.as_deref(), &csv, &bootstrap_brands, bad_rows)
    })
    .await??;
    if origin == bootstrap::Origin::Empty {
        if let Some(records) = &demo {
            let mut b = SnapshotBuilder::new();
            for brand in &brands {
                b.add_brand(*brand);
            }
            for r in records {
                b.add(r);
            }
            let (s, stats) = b.build(ConsentTime::now());
            tracing::info!(tuples = stats.tuples, "loaded demo data");
            snapshot = s;
            origin = bootstrap::Origin::Csv;
        }
    }
    let _ = origin;
    let persisted_version = if snapshot_path.is_some_and(Path::exists) {
        snapshot.version
    } else {
        0
    };
    let store = StoreHandle::new();
    store.publish(snapshot);
    store.update_age_gauge(ConsentTime::now());

    // Admin listener.
    let admin_listener = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("admin.listen {}", config.admin.listen))?;
    let admin_addr = admin_listener.local_addr()?;
    let state = Arc::new(AdminState {
        store: store.clone(),
        policy: config.policy(),
        metrics: prometheus,
        webhook_secret: config.webhook_secret()?,
        brands: brands.clone(),
    });
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    tasks.push(tokio::spawn(admin::serve(
        admin_listener,
        state,
        stop_rx.clone(),
    )));

    // Follower.
    if let (Some(r), Some(url)) = (&config.registry, registry_url) {
        let client = Arc::new(RegistryClient::new(
            &url,
            &r.username,
            &config.registry_password()?,
            r.request_timeout,
        )?);
        let cfg = follow::FollowConfig {
            brands: brands.clone(),
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
            stop_rx.clone(),
        )));
    }

    // Persister.
    if let Some(path) = &config.store.snapshot_path {
        tasks.push(tokio::spawn(persist::run(
            store.clone(),
            path.clone(),
            config.store.persist_interval,
            stop_rx.clone(),
            persisted_version,
        )));
    }

    let audit = Audit::start(config.audit.path.clone(), config.audit.unmasked)?;
    let context = GateContext {
        store,
        policy: config.policy(),
        decisions: DecisionCounters::new(),
        audit,
    };

    // The SMS gate.
    let mut smpp_addr = None;
    let mut smpp_tls_addr = None;
    if let Some(smpp) = &config.smpp {
        let shared = Arc::new(crate::smpp::proxy::ProxyShared::new(
            context.clone(),
            smpp.clone(),
        )?);
        let limit = Arc::new(tokio::sync::Semaphore::new(smpp.max_sessions));
        let listener = TcpListener::bind(smpp.listen)
            .await
            .with_context(|| format!("smpp.listen {}", smpp.listen))?;
        smpp_addr = Some(listener.local_addr()?);
        tasks.push(tokio::spawn(crate::smpp::proxy::serve(
            listener,
            None,
            shared.clone(),
            limit.clone(),
            stop_rx.clone(),
        )));
        if let Some(tls) = &smpp.tls {
            let acceptor = crate::smpp::proxy::tls_acceptor(&tls.cert, &tls.key)?;
            let listener = TcpListener::bind(tls.listen)
                .await
                .with_context(|| format!("smpp.tls.listen {}", tls.listen))?;
            smpp_tls_addr = Some(listener.local_addr()?);
            tasks.push(tokio::spawn(crate::smpp::proxy::serve(
                listener,
                Some(acceptor),
                shared,
                limit,
                stop_rx.clone(),
            )));
        }
        tracing::info!(listen = ?smpp_addr, tls = ?smpp_tls_addr, upstream = %smpp.upstream, "SMPP gate listening");
    }

    tracing::info!(admin = %admin_addr, monitor = config.policy.monitor, brands = brands.len(), "iys-gate ready");
    if demo.is_some() {
        if let Some(b) = brands.first() {
            let base = format!(
                "http://{admin_addr}/v1/check?iys_code={}&brand_code={}&channel=MESAJ",
                b.iys_code, b.brand_code
            );
            eprintln!(
                "\nDemo: try\n  curl '{base}&recipient=05300000001'   # consent: allow\n  curl '{base}&recipient=05300000002'   # withdrawn: refuse\n  curl '{base}&recipient=05300000009'   # never given: refuse\n  curl '{base}&recipient=05300000009&message_type=0'   # informational: allow\n  curl http://{admin_addr}/metrics\n"
            );
        }
    }
    Ok(RunningGate {
        admin_addr,
        smpp_addr,
        smpp_tls_addr,
        emulator_url: emulator_server.as_ref().map(|s| s.url()),
        emulator: emulator_handle,
        context,
        stop: stop_tx,
        tasks,
        _emulator_server: emulator_server,
    })
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
