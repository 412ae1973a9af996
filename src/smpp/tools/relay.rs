//! A plain TCP relay: each accepted connection is joined to a fresh upstream
//! connection and bytes are copied both ways untouched. It is the floor any SMPP
//! proxy is compared against in throughput runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::conn;

/// Copy buffer per direction; bigger than tokio's 8 KiB default so one read can
/// carry a whole window of PDUs.
const COPY_BUF: usize = 64 * 1024;

/// `smpp-relay` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:2777")]
    pub listen: String,
    /// Where to relay each connection, host:port.
    #[arg(long, default_value = "127.0.0.1:2776")]
    pub upstream: String,
}

/// A running in-process relay; dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct RelayHandle {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl RelayHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections relayed so far (upstream connected).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a relay from `listener` to `upstream` (host:port) and returns at once.
pub async fn spawn(listener: TcpListener, upstream: String) -> RelayHandle {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let connections = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(accept_loop(listener, upstream, connections.clone()));
    RelayHandle {
        addr,
        connections,
        task,
    }
}

/// Runs the relay until Ctrl-C.
pub async fn run(args: RelayArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let relay = spawn(listener, args.upstream.clone()).await;
    println!(
        "tcp relay listening on {} -> {}",
        relay.local_addr(),
        args.upstream
    );
    tokio::signal::ctrl_c().await?;
    println!("relay: {} connections", relay.connections());
    relay.shutdown().await;
    Ok(())
}

async fn accept_loop(listener: TcpListener, upstream: String, connections: Arc<AtomicU64>) {
    // Dropping the set (when this task is aborted) aborts every connection.
    let mut tasks = JoinSet::new();
    let upstream: Arc<str> = upstream.into();
    loop {
        tokio::select! {
            client = conn::accept(&listener) => {
                let upstream = upstream.clone();
                let connections = connections.clone();
                tasks.spawn(async move {
                    relay(client, &upstream, &connections).await;
                });
            }
            Some(_) = tasks.join_next() => {}
        }
    }
}

async fn relay(mut client: TcpStream, upstream: &str, connections: &AtomicU64) {
    let mut server = match conn::connect(upstream).await {
        Ok(server) => server,
        Err(e) => {
            // Dropping the client closes it: the sender sees the upstream is down.
            tracing::warn!("relay: cannot connect to {upstream}: {e}");
            return;
        }
    };
    connections.fetch_add(1, Ordering::Relaxed);
    if let Err(e) =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, COPY_BUF, COPY_BUF).await
    {
        tracing::debug!("relay to {upstream} ended: {e}");
    }
}
