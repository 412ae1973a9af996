//! `iys-gate serve`: bring the gate up with data already loaded, then keep it
//! current. Order: logging and metrics, (demo) the in-process registry
//! emulator, bootstrap (snapshot file, else CSV, else demo data, else empty),
//! admin listener, change-feed follower, persister, then each protocol's
//! `start` (SMPP, SMTP) with the one shared [`GateContext`]; Ctrl-C or SIGTERM
//! drains the protocol sessions (see [`crate::gate::drain`] and
//! docs/deploy.md), then stops everything else and writes a last snapshot.
//! SIGHUP never ends the process. This module only wires.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::consent::{Brand, ConsentRecord, ConsentTime};
use crate::gate::drain::{Drain, DrainReport};
use crate::gate::{Started, Stop};
use crate::gen::{GenParams, Generator};
use crate::observe::audit::Audit;
use crate::observe::metrics::{self, DecisionCounters};
use crate::registry::client::RegistryClient;
use crate::registry::emulator::{self, Emulator, EmulatorConfig};
use crate::store::SnapshotBuilder;
use crate::sync::{bootstrap, follow, persist, StoreHandle};

pub use crate::gate::GateContext;

/// The fixed demo records, so a newcomer has known addresses to try.
pub fn demo_fixed_records(brand: Brand) -> Vec<ConsentRecord> {
    let rows = [
        "+905300000001,BIREYSEL,MESAJ,ONAY,2024-05-01 10:00:00,HS_WEB,,",
        "+905300000002,BIREYSEL,MESAJ,ONAY,2024-05-01 10:00:00,HS_WEB,,",
        "+905300000002,BIREYSEL,MESAJ,RET,2024-06-01 10:00:00,IYS_MOBIL,,",
        "+905300000003,TACIR,MESAJ,ONAY,,,,",
        "+905300000004,BIREYSEL,MESAJ,ONAY,2024-05-01 10:00:00,HS_FIZIKSEL_ORTAM,501,501;502",
        "+905300000001,BIREYSEL,ARAMA,ONAY,2024-05-01 10:00:00,HS_CAGRI_MERKEZI,,",
        "+905300000002,BIREYSEL,ARAMA,ONAY,2024-05-01 10:00:00,HS_CAGRI_MERKEZI,,",
        "+905300000002,BIREYSEL,ARAMA,RET,2024-06-01 10:00:00,IYS_MOBIL,,",
        "demo@example.com,BIREYSEL,EPOSTA,ONAY,2024-05-01 10:00:00,HS_WEB,,",
        "withdrawn@example.com,BIREYSEL,EPOSTA,ONAY,2024-05-01 10:00:00,HS_WEB,,",
        "withdrawn@example.com,BIREYSEL,EPOSTA,RET,2024-06-01 10:00:00,IYS_WEB,,",
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
    /// Where the SIP gate listens for TLS, when configured.
    pub sip_tls_addr: Option<std::net::SocketAddr>,
    /// The in-process registry emulator's base URL, when one runs.
    pub emulator_url: Option<String>,
    /// The in-process registry emulator, when one runs.
    pub emulator: Option<Arc<Emulator>>,
    /// The shared context the protocol gates decide with.
    pub context: GateContext,
    /// The demo's in-process sinks (`[demo] sinks = true`), with what arrived.
    pub demo_sinks: DemoSinks,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _emulator_server: Option<emulator::EmulatorServer>,
    drain_timeout: std::time::Duration,
}

/// How long after `server.drain_timeout` the drain still waits for sessions
/// winding down (their last unbind, flush and close are bounded by this).
const DRAIN_CLOSE_SLACK: std::time::Duration = std::time::Duration::from_secs(3);

impl RunningGate {
    /// Drain, then stop every task; the persister writes a last snapshot.
    pub async fn shutdown(self) {
        self.drain().await;
        self.stop().await;
    }

    /// The graceful drain: `/readyz` turns 503, the protocol listeners stop
    /// accepting, and each session winds down (SMPP senders unbound once
    /// their requests in flight are answered, SMTP transactions in progress
    /// finished and everything else answered `421 4.3.2`, policy requests
    /// in progress answered, SIP stopped) within `server.drain_timeout`.
    /// The admin listener, the sync tasks and the demo sinks keep running.
    /// Returns once no session is left (or past the deadline).
    pub async fn drain(&self) -> DrainReport {
        let drain = &self.context.drain;
        let open: Vec<String> = drain
            .open()
            .iter()
            .map(|(p, n)| format!("{p}={n}"))
            .collect();
        if drain.begin(self.drain_timeout) {
            tracing::info!(
                drain_timeout = ?self.drain_timeout,
                sessions = %if open.is_empty() { "none".to_string() } else { open.join(" ") },
                "draining: /readyz answers 503, listeners closed, sessions winding down"
            );
        }
        let until = drain.deadline().unwrap_or_else(std::time::Instant::now) + DRAIN_CLOSE_SLACK;
        let report = drain.settled(until).await;
        if report.still_open.is_empty() {
            tracing::info!(took = ?report.took, "drained: {report}");
        } else {
            tracing::warn!(took = ?report.took, "drain incomplete past server.drain_timeout: {report}");
        }
        report
    }

    /// Stop at once, without the drain: sessions end where they are, then
    /// [`RunningGate::stop`]. For tests whose peers are scripted and would
    /// only make the drain wait out its deadline.
    pub async fn halt(self) {
        self.context.drain.halt();
        self.stop().await;
    }

    /// Stop what the drain left running (admin listener, sync, persister,
    /// demo sinks, emulator); the persister writes a last snapshot first.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(server) = self._emulator_server {
            let _ = server.shutdown().await;
        }
    }
}

/// Run the gate until Ctrl-C / SIGTERM, then drain and stop; a second
/// Ctrl-C / SIGTERM during the drain cuts it short (the snapshot is still
/// written).
pub async fn run(config: Config) -> anyhow::Result<()> {
    crate::observe::init_logging(config.log.format, &config.log.level);
    // From here on SIGHUP never ends the process, also while the snapshot
    // loads (tokio keeps the handler; the admin listener's task acts on it).
    #[cfg(unix)]
    let _hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let gate = start(config).await?;
    shutdown_signal().await;
    tokio::select! {
        _ = gate.drain() => {}
        _ = shutdown_signal() => tracing::warn!("second stop signal: ending the drain now"),
    }
    gate.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Bring the gate up and return once it serves: the emulator (demo), the
/// store, the admin listener, the sync tasks, then each protocol's listeners.
pub async fn start(mut config: Config) -> anyhow::Result<RunningGate> {
    let prometheus = metrics::install();
    let brands: Vec<Brand> = config.brands.iter().map(|b| b.brand()).collect();
    let (stop_tx, stop_rx) = watch::channel(false);
    // The protocol listeners and sessions watch the drain's signal; the
    // admin listener, sync and demo sinks the final stop.
    let drain = Drain::new();
    let drain_rx = drain.signal();

    let emulator = start_emulator(&config, &brands).await?;
    let registry_url = match &emulator {
        Some(e) => Some(e.server.url()),
        None => config.registry.as_ref().map(|r| r.base_url.clone()),
    };
    let demo = emulator.as_ref().and_then(|e| e.demo.as_deref());
    let (store, persisted_version) = load_store(&config, &brands, demo).await?;
    let (fleet, fleet_tasks) =
        start_fleet(&config, &store, registry_url.clone(), &brands, &stop_rx).await?;

    let recent = crate::observe::recent::RecentRefusals::default();
    let reports = open_reports(&config);
    let compliance =
        crate::reconcile::start(&config, &store, registry_url.clone(), &brands, &stop_rx)?;
    let mut tasks = start_admin(
        &config,
        &store,
        prometheus,
        &brands,
        AdminExtras {
            recent: recent.clone(),
            drain: drain.clone(),
            reports: reports.clone(),
            reconcile: compliance.reconciler,
            fleet,
        },
        &stop_rx,
    )
    .await?;
    tasks.tasks.extend(compliance.tasks);
    tasks.tasks.extend(fleet_tasks);
    tasks.tasks.push(tokio::spawn(crate::observe::report::run(
        reports.clone(),
        config.reports.flush_interval,
        stop_rx.clone(),
    )));
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
        audit: Audit::start_with(
            config.audit.path.clone(),
            config.audit.unmasked,
            config.audit.chain(),
            recent,
        )?,
        drain,
        reports,
    };
    let demo_sinks = start_demo_sinks(&mut config, &stop_rx, &mut tasks).await?;
    if let Some(smpp) = &config.smpp {
        tasks.absorb(crate::smpp::start(&context, smpp, &drain_rx).await?);
    }
    if let Some(smtp) = &config.smtp {
        tasks.absorb(crate::smtp::start(&context, smtp, &drain_rx).await?);
    }
    if let Some(sip) = &config.sip {
        tasks.absorb(crate::sip::start(&context, sip, &drain_rx).await?);
    }

    tracing::info!(admin = %admin_addr, monitor = config.policy.monitor, brands = brands.len(), "iys-gate ready");
    if demo.is_some() {
        print_demo_hints(&brands, &tasks, &demo_sinks, demo_read_token(&config));
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
        sip_tls_addr: tasks.addr("sip_tls"),
        emulator_url,
        emulator: emulator_handle,
        context,
        demo_sinks,
        stop: stop_tx,
        tasks: tasks.tasks,
        _emulator_server: emulator_server,
        drain_timeout: config.server.drain_timeout,
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
    let unfollowed = config.store.unfollowed_brands;
    let path = snapshot_path.clone();
    let (mut snapshot, origin) = tokio::task::spawn_blocking(move || {
        let csv: Vec<&Path> = csv.iter().map(|p| p.as_path()).collect();
        bootstrap::initial(
            path.as_deref(),
            &csv,
            &bootstrap_brands,
            bad_rows,
            unfollowed,
        )
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

/// The daily report book, loaded from its file beside the snapshot.
fn open_reports(config: &Config) -> crate::observe::report::ReportBook {
    let path = config.reports_path();
    match &path {
        Some(p) => tracing::info!(file = %p.display(), "daily reports kept in"),
        None => tracing::warn!("daily reports are kept in memory only (lost at restart): set store.snapshot_path or reports.state_dir"),
    }
    crate::observe::report::ReportBook::open(crate::observe::report::ReportConfig {
        path,
        retention_days: config.reports.retention_days,
    })
}

/// What the admin API shares with the rest of the gate, beyond the store:
/// the console's latest refusals, the drain (`/readyz`), the daily reports,
/// the reconciler (`None` without a registry), the fleet (`None` alone).
struct AdminExtras {
    recent: crate::observe::recent::RecentRefusals,
    drain: Drain,
    reports: crate::observe::report::ReportBook,
    reconcile: Option<Arc<crate::reconcile::Reconciler>>,
    fleet: Option<Arc<crate::fleet::Fleet>>,
}

/// The admin listener (`"admin"` in the result).
async fn start_admin(
    config: &Config,
    store: &Arc<StoreHandle>,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    brands: &[Brand],
    extras: AdminExtras,
    stop: &Stop,
) -> anyhow::Result<Started> {
    let listener = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("admin.listen {}", config.admin.listen))?;
    let mut started = Started::default();
    started.listening.push(("admin", listener.local_addr()?));
    admin::describe_metrics();
    let tokens = config.admin_tokens()?;
    if tokens.is_empty() {
        tracing::warn!("no [[admin.tokens]] configured: /v1/check and /v1/status answer 401 until one with role read is");
    }
    let state = Arc::new(AdminState {
        store: store.clone(),
        policy: config.policy(),
        metrics: prometheus,
        webhook_secret: config.webhook_secret()?,
        brands: brands.to_vec(),
        decisions: DecisionCounters::for_check_api(),
        tokens: admin::auth::Tokens::new(&tokens),
        metrics_open: config.admin.metrics_open,
        access: admin::access::AccessLog::start(config.admin.access_log.clone())?,
        console: admin::console::ConsoleState::new(extras.recent),
        console_enabled: config.admin.console,
        drain: extras.drain,
        reports: extras.reports,
        reconcile: extras.reconcile,
        fleet: extras.fleet,
    });
    let tls = match &config.admin.tls {
        Some(t) => {
            let tls = Arc::new(admin::tls::AdminTls::load(t)?);
            if !t.reload_check.is_zero() {
                started.tasks.push(tokio::spawn(admin::tls::watch(
                    tls.clone(),
                    t.reload_check,
                    stop.clone(),
                )));
            }
            Some(tls)
        }
        None => None,
    };
    // Always: SIGHUP's default action ends the process, which it never should.
    started
        .tasks
        .push(admin::on_hangup(state.clone(), tls.clone(), stop.clone())?);
    started.tasks.push(tokio::spawn(admin::serve(
        listener,
        state,
        tls,
        stop.clone(),
    )));
    Ok(started)
}

/// The registry client and follower settings of `[registry]`.
fn follower(
    config: &Config,
    registry_url: Option<String>,
    brands: &[Brand],
) -> anyhow::Result<Option<(Arc<RegistryClient>, follow::FollowConfig)>> {
    let (Some(r), Some(url)) = (&config.registry, registry_url) else {
        return Ok(None);
    };
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
        budget: None,
    };
    Ok(Some((client, cfg)))
}

/// With `[fleet]`: join the fleet (it then polls, applies and persists
/// instead of [`start_sync`]).
async fn start_fleet(
    config: &Config,
    store: &Arc<StoreHandle>,
    registry_url: Option<String>,
    brands: &[Brand],
    stop: &Stop,
) -> anyhow::Result<(
    Option<Arc<crate::fleet::Fleet>>,
    Vec<tokio::task::JoinHandle<()>>,
)> {
    let Some(fleet) = &config.fleet else {
        return Ok((None, Vec::new()));
    };
    let setup = crate::fleet::FleetSetup {
        fleet: fleet.clone(),
        registry: follower(config, registry_url, brands)?,
        snapshot_path: config.store.snapshot_path.clone(),
        persist_interval: config.store.persist_interval,
    };
    let (fleet, tasks) = crate::fleet::start(setup, store.clone(), stop.clone()).await?;
    Ok((Some(fleet), tasks))
}

/// The change-feed follower (when a registry is configured) and the snapshot
/// persister (when a snapshot file is); in a fleet, the fleet does both.
fn start_sync(
    config: &Config,
    store: &Arc<StoreHandle>,
    registry_url: Option<String>,
    brands: &[Brand],
    persisted_version: u64,
    stop: &Stop,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    if config.fleet.is_some() {
        return Ok(tasks);
    }
    if let Some((client, cfg)) = follower(config, registry_url, brands)? {
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

/// The demo's in-process sinks, each with its counters and recent messages.
#[derive(Debug, Default)]
pub struct DemoSinks {
    /// The SMSC sink the SMPP gate relays to.
    pub smsc: Option<crate::smpp::tools::sink::SinkHandle>,
    /// The SMTP sink the SMTP hop relays to.
    pub smtp: Option<crate::smtp::tools::sink::SinkHandle>,
    /// The answering UAS the SIP gate forwards calls to.
    pub uas: Option<crate::sip::tools::uas::UasHandle>,
}

/// With `[demo] sinks = true`: the SMSC sink on `smpp.upstream`, the SMTP
/// sink on `smtp.hop.next_hop` and the answering SIP UAS on `sip.next_hop`, started before the listeners that relay to
/// them, which are then pointed at the addresses the sinks got (port 0 in the
/// config: any free port). Also a task that logs each SMS the SMSC sink takes.
async fn start_demo_sinks(
    config: &mut Config,
    stop: &Stop,
    started: &mut Started,
) -> anyhow::Result<DemoSinks> {
    use crate::smpp::tools::sink as smsc;
    use crate::smtp::tools::sink as smtp;
    let mut sinks = DemoSinks::default();
    if !config.demo.as_ref().is_some_and(|d| d.sinks) {
        return Ok(sinks);
    }
    if let Some(smpp) = config.smpp.as_mut() {
        let listener = TcpListener::bind(smpp.upstream.as_str())
            .await
            .with_context(|| format!("demo SMSC sink on smpp.upstream {}", smpp.upstream))?;
        let config = smsc::SinkConfig {
            record_last: 100,
            ..smsc::SinkConfig::default()
        };
        let sink = smsc::spawn(listener, config).await;
        smpp.upstream = sink.local_addr().to_string();
        tracing::info!(addr = %sink.local_addr(), "demo SMSC sink running in this process");
        started
            .tasks
            .push(tokio::spawn(log_sms(sink.stats().clone(), stop.clone())));
        sinks.smsc = Some(sink);
    }
    if let Some(hop) = config.smtp.as_mut().and_then(|s| s.hop.as_mut()) {
        let listener = TcpListener::bind(hop.next_hop.as_str())
            .await
            .with_context(|| format!("demo SMTP sink on smtp.hop.next_hop {}", hop.next_hop))?;
        let config = smtp::SinkConfig {
            hostname: "demo-sink".into(),
            record_last: 100,
            log_messages: true,
            ..smtp::SinkConfig::default()
        };
        let sink = smtp::spawn(listener, config);
        hop.next_hop = sink.local_addr().to_string();
        tracing::info!(addr = %sink.local_addr(), "demo SMTP sink running in this process");
        sinks.smtp = Some(sink);
    }
    if let Some(hop) = config.sip.as_mut().and_then(|s| s.next_hop.as_mut()) {
        let socket = tokio::net::UdpSocket::bind(hop.as_str())
            .await
            .with_context(|| format!("demo SIP UAS on sip.next_hop {hop}"))?;
        let uas = crate::sip::tools::uas::spawn(socket)?;
        *hop = uas.addr.to_string();
        tracing::info!(addr = %uas.addr, "demo SIP UAS answering in this process");
        sinks.uas = Some(uas);
    }
    Ok(sinks)
}

/// Logs each submission the demo's SMSC sink takes (it keeps the last 100).
async fn log_sms(stats: Arc<crate::smpp::tools::sink::SinkStats>, mut stop: Stop) {
    let mut seen = 0u64;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = stats.counts().submits();
        if now == seen {
            continue;
        }
        let recent = stats.recent();
        let new = ((now - seen) as usize).min(recent.len());
        for r in &recent[recent.len() - new..] {
            tracing::info!(
                system_id = %r.system_id,
                to = %r.destination,
                text = %String::from_utf8_lossy(&r.short_message),
                "demo SMSC sink: message arrived"
            );
        }
        seen = now;
    }
}

/// The demo's read token (written in the demo config, so it may be printed).
fn demo_read_token(config: &Config) -> Option<&str> {
    config
        .admin
        .tokens
        .iter()
        .find(|t| t.role >= crate::config::Role::Read)
        .and_then(|t| t.token.as_deref())
}

/// What the demo prints for a newcomer to try.
fn print_demo_hints(brands: &[Brand], started: &Started, sinks: &DemoSinks, token: Option<&str>) {
    if let Some(hints) = demo_hints(brands, started, sinks, token) {
        eprintln!("{hints}");
    }
}

/// The commands [`print_demo_hints`] prints, for the listeners that run;
/// `token` is the demo config's read token, which `/v1/check` needs.
fn demo_hints(
    brands: &[Brand],
    started: &Started,
    sinks: &DemoSinks,
    token: Option<&str>,
) -> Option<String> {
    let (Some(b), Some(admin)) = (brands.first(), started.addr("admin")) else {
        return None;
    };
    let auth = token
        .map(|t| format!("-H 'Authorization: Bearer {t}' "))
        .unwrap_or_default();
    let check = |channel: &str| {
        format!(
            "http://{admin}/v1/check?iys_code={}&brand_code={}&channel={channel}",
            b.iys_code, b.brand_code
        )
    };
    let base = check("MESAJ");
    let mut hints = format!(
        "\nDemo: try (/v1/check needs a token with role read; the demo config has one)\n  curl {auth}'{base}&recipient=05300000001'   # consent: allow\n  curl {auth}'{base}&recipient=05300000002'   # withdrawn: refuse\n  curl {auth}'{base}&recipient=05300000009'   # never given: refuse\n  curl {auth}'{base}&recipient=05300000009&message_type=0'   # informational: allow\n  curl {auth}'{}&recipient=demo@example.com'   # e-mail consent: allow\n",
        check("EPOSTA")
    );
    if let Some(smpp) = started.addr("smpp") {
        let sink = sinks
            .smsc
            .as_ref()
            .map(|s| format!(" to the SMSC sink on {}", s.local_addr()))
            .unwrap_or_default();
        hints += &format!(
            "\nSMS through the SMPP gate on {smpp}{sink} (the log shows what arrives):\n  cargo run -q -- smpp-send --target {smpp} --to 905300000001   # ESME_ROK: arrives\n  cargo run -q -- smpp-send --target {smpp} --to 905300000002   # 0x402 withdrawn: never arrives\n"
        );
    }
    if let Some(hop) = started.addr("smtp_hop") {
        let sink = sinks
            .smtp
            .as_ref()
            .map(|s| format!(" to the SMTP sink on {}", s.local_addr()))
            .unwrap_or_default();
        hints += &format!(
            "\nMail through the SMTP hop on {hop}{sink} (the log shows what arrives):\n  printf 'Subject: demo\\r\\n\\r\\nhello\\r\\n' | curl -v smtp://{hop} --mail-from news@shop.example \\\n      --mail-rcpt demo@example.com --mail-rcpt withdrawn@example.com --mail-rcpt-allowfails --upload-file - 2>&1 | grep '^[<>]'\n    # RCPT demo@example.com: 250; withdrawn@example.com: 550 5.7.1 (withdrawn); the sink gets one copy, for demo@example.com\n"
        );
    }
    if let Some(policy) = started.addr("smtp_policy") {
        hints += &format!(
            "\nPostfix policy service on {policy} (smtpd_recipient_restrictions = check_policy_service inet:{policy}); by hand:\n  printf 'request=smtpd_access_policy\\nprotocol_state=RCPT\\nclient_address=127.0.0.1\\nsender=news@shop.example\\nrecipient=nobody@example.com\\n\\n' | curl -s --max-time 1 telnet://{policy}\n    # action=550 5.7.1 ... (no_consent); recipient=demo@example.com: action=DUNNO\n"
        );
    }
    if let Some(sip) = started.addr("sip_udp") {
        let uas = sinks
            .uas
            .as_ref()
            .map(|u| format!(" to the answering UAS on {}", u.addr))
            .unwrap_or_default();
        hints += &format!(
            "\nCalls through the SIP gate on udp {sip}{uas} (the log shows each call answered):\n  cargo run -q -- sip-call --target {sip} --to 05300000001   # 200 OK (answered); BYE 200\n  cargo run -q -- sip-call --target {sip} --to 05300000002   # 608 Rejected (withdrawn): the UAS never sees it\n"
        );
    }
    hints += &format!("\n  curl http://{admin}/metrics\n");
    let sign_in = token
        .map(|t| format!("the demo token {t}"))
        .unwrap_or_else(|| "a token with role read".into());
    hints += &format!("\nWeb console: http://{admin}/ (sign in with {sign_in})\n");
    Some(hints)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_hints_name_the_listeners_and_the_demo_addresses() {
        let at = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
        let started = Started {
            listening: vec![
                ("admin", at(9090)),
                ("smpp", at(2775)),
                ("smtp_hop", at(2525)),
                ("smtp_policy", at(10040)),
            ],
            tasks: Vec::new(),
        };
        let h = demo_hints(
            &[Brand::new(700001, 100001)],
            &started,
            &DemoSinks::default(),
            Some("demo-token-0123456789"),
        )
        .expect("hints");
        for want in [
            "cargo run -q -- smpp-send --target 127.0.0.1:2775 --to 905300000001",
            "cargo run -q -- smpp-send --target 127.0.0.1:2775 --to 905300000002",
            "printf 'Subject: demo\\r\\n\\r\\nhello\\r\\n' | curl -v smtp://127.0.0.1:2525 --mail-from news@shop.example \\\n      --mail-rcpt demo@example.com --mail-rcpt withdrawn@example.com --mail-rcpt-allowfails --upload-file - 2>&1 | grep '^[<>]'",
            "| curl -s --max-time 1 telnet://127.0.0.1:10040",
            "channel=EPOSTA&recipient=demo@example.com",
            "curl -H 'Authorization: Bearer demo-token-0123456789' 'http://127.0.0.1:9090/v1/check?",
        ] {
            assert!(h.contains(want), "{want:?} in:\n{h}");
        }
        // Without the SMTP listeners there are no mail hints.
        let started = Started {
            listening: vec![("admin", at(9090))],
            tasks: Vec::new(),
        };
        let h = demo_hints(
            &[Brand::new(700001, 100001)],
            &started,
            &DemoSinks::default(),
            None,
        )
        .unwrap();
        assert!(!h.contains("smtp://") && !h.contains("smpp-send"), "{h}");
    }
}
