//! The voice gate, channel `ARAMA`, in the two ways voice carriers and
//! call-centre trunks plug a check in:
//!
//! - `mode = "proxy"`: inline, a stateless proxy (RFC 3261 §16.11) between
//!   the trunks and the operator's softswitch/SBC; refused initial INVITEs
//!   are answered by the gate (608 by default), everything else is forwarded
//!   as the bytes that came plus a few edits;
//! - `mode = "redirect"`: a redirect server the SBC or Kamailio "dips"
//!   into: `302` with the original target to continue, or the refusal.
//!
//! `codec` is sans-I/O (the scanner, forwarding edits, URIs); `gating` is
//! the one place a decision becomes a SIP answer; `proxy` holds the message
//! handler (`proxy::core`, no sockets) and the UDP/TCP tasks. [`start`] is
//! the one entry `serve` calls.

pub mod codec;
pub mod config;
pub mod gating;
pub mod metrics;
pub mod proxy;
pub mod tools;

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::Context;

use crate::gate::{GateContext, Started, Stop};
use config::SipConfig;
use proxy::core::Core;
use proxy::Proxy;

/// Start what `[sip]` configures: `"sip_udp"`, `"sip_tcp"` and `"sip_tls"` in the result.
pub async fn start(ctx: &GateContext, cfg: &SipConfig, stop: &Stop) -> anyhow::Result<Started> {
    let default_hop = match &cfg.next_hop {
        Some(h) => Some(resolve(h, "sip.next_hop").await?),
        None => None,
    };
    let mut trunk_hops = HashMap::new();
    for (i, t) in cfg.trunks.iter().enumerate() {
        if let Some(h) = &t.next_hop {
            trunk_hops.insert(
                t.name.clone(),
                resolve(h, &format!("sip.trunks[{i}].next_hop")).await?,
            );
        }
    }
    let udp = match cfg.listen_udp {
        Some(a) => Some(
            tokio::net::UdpSocket::bind(a)
                .await
                .with_context(|| format!("sip.listen_udp {a}"))?,
        ),
        None => None,
    };
    let tcp = match cfg.listen_tcp {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("sip.listen_tcp {a}"))?,
        ),
        None => None,
    };
    let udp_addr = udp.as_ref().map(|s| s.local_addr()).transpose()?;
    let tcp_addr = tcp.as_ref().map(|s| s.local_addr()).transpose()?;
    let first = udp_addr.or(tcp_addr).context("sip: no listener")?;
    let mut ports = (
        udp_addr.or(tcp_addr).map_or(5060, |a| a.port()),
        tcp_addr.or(udp_addr).map_or(5060, |a| a.port()),
    );
    let via_host = match &cfg.via_host {
        Some(v) => match split_port(v) {
            Some((host, port)) => {
                ports = (port, port);
                host.to_string()
            }
            None => v.clone(),
        },
        None => match first.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
    };
    let core = Core {
        cfg: cfg.clone(),
        trunks: gating::Trunks::new(&cfg.trunks),
        ctx: ctx.clone(),
        metrics: metrics::SipMetrics::new(),
        default_hop,
        trunk_hops,
        via_host,
        via_ports: ports,
        cache: proxy::cache::TxCache::new(cfg.transaction_lifetime, cfg.max_transactions),
    };
    let p = Proxy::new(core, stop.clone());
    let mut started = Started::default();
    if let Some(s) = udp {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        p.serve_udp(s, workers, &mut started)?;
    }
    if let Some(l) = tcp {
        p.serve_tcp(l, &mut started)?;
    }
    if let Some(t) = &cfg.tls {
        let acceptor = crate::gate::tls::acceptor(&t.cert, &t.key, "sip.tls")?;
        let l = tokio::net::TcpListener::bind(t.listen)
            .await
            .with_context(|| format!("sip.tls.listen {}", t.listen))?;
        p.serve_tls(l, acceptor, &mut started)?;
    }
    tracing::info!(mode = ?cfg.mode, udp = ?udp_addr, tcp = ?tcp_addr, "SIP gate listening");
    Ok(started)
}

/// `host:port` to one address.
async fn resolve(hop: &str, key: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(hop)
        .await
        .with_context(|| format!("{key}: cannot resolve {hop}"))?
        .next()
        .with_context(|| format!("{key}: {hop} has no address"))
}

/// `host:port` (or `[v6]:port`) split; `None` without a port.
fn split_port(v: &str) -> Option<(&str, u16)> {
    let (host, port) = v.rsplit_once(':')?;
    if host.starts_with('[') && !host.ends_with(']') {
        return None; // a bare IPv6 reference
    }
    if host.contains(':') && !host.starts_with('[') {
        return None; // a bare IPv6 address
    }
    Some((host, port.parse().ok()?))
}
