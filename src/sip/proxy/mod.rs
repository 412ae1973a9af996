//! The SIP gate's sockets: one UDP socket read by a few worker tasks, a TCP
//! listener with one task per connection, and outbound TCP connections to
//! next hops (opened on first use, reused, and read like inbound ones: what
//! comes back on them is handled like any other message). Every message goes
//! through [`core::Core::handle`]; this module only moves bytes.

pub mod cache;
pub mod core;
pub mod resolve;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use dashmap::DashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use self::core::{Core, Dest, Outbox, Source, Transport, Work};
use self::resolve::{Cached, Resolver};
use crate::gate::{Started, Stop};
use crate::sip::codec::{frame, Frame};

/// Messages queued per TCP connection before new ones are dropped.
const CONN_QUEUE: usize = 4096;
/// Waiting for a next hop to accept a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The running gate: the message handler and the open connections.
pub struct Proxy {
    /// The message handler.
    pub core: Core,
    udp: OnceLock<Arc<UdpSocket>>,
    conns: DashMap<u64, mpsc::Sender<Vec<u8>>>,
    outbound: DashMap<SocketAddr, u64>,
    next_id: AtomicU64,
    stop: Stop,
    resolver: Resolver,
    /// TLS handshakes under way (they count towards `max_connections`).
    handshakes: AtomicUsize,
}

impl Proxy {
    /// A proxy around `core`; sockets are added by [`Proxy::serve_udp`] and
    /// [`Proxy::serve_tcp`].
    pub fn new(core: Core, stop: Stop) -> Arc<Proxy> {
        Arc::new(Proxy {
            core,
            udp: OnceLock::new(),
            conns: DashMap::new(),
            outbound: DashMap::new(),
            next_id: AtomicU64::new(1),
            stop,
            resolver: Resolver::default(),
            handshakes: AtomicUsize::new(0),
        })
    }

    /// Read datagrams from `socket` with `workers` tasks; `"sip_udp"` in `started`.
    pub fn serve_udp(
        self: &Arc<Self>,
        socket: UdpSocket,
        workers: usize,
        started: &mut Started,
    ) -> anyhow::Result<()> {
        started.listening.push(("sip_udp", socket.local_addr()?));
        let socket = Arc::new(socket);
        let _ = self.udp.set(socket.clone());
        for _ in 0..workers.max(1) {
            started
                .tasks
                .push(tokio::spawn(udp_loop(self.clone(), socket.clone())));
        }
        Ok(())
    }

    /// Accept TCP connections on `listener`; `"sip_tcp"` in `started`.
    pub fn serve_tcp(
        self: &Arc<Self>,
        listener: TcpListener,
        started: &mut Started,
    ) -> anyhow::Result<()> {
        started.listening.push(("sip_tcp", listener.local_addr()?));
        started
            .tasks
            .push(tokio::spawn(accept_loop(self.clone(), listener)));
        Ok(())
    }

    /// Accept TLS connections on `listener`; `"sip_tls"` in `started`.
    pub fn serve_tls(
        self: &Arc<Self>,
        listener: TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
        started: &mut Started,
    ) -> anyhow::Result<()> {
        started.listening.push(("sip_tls", listener.local_addr()?));
        started.tasks.push(tokio::spawn(tls_accept_loop(
            self.clone(),
            listener,
            acceptor,
        )));
        Ok(())
    }

    /// Send what one message produced.
    async fn dispatch(self: &Arc<Self>, out: &mut Outbox) {
        for (dest, bytes) in out.items.drain(..) {
            match dest {
                Dest::Udp(addr) => self.send_addr(addr, false, bytes).await,
                Dest::Conn(id) => self.send_conn(id, bytes),
                Dest::Tcp(addr) => self.send_addr(addr, true, bytes).await,
                Dest::Named { host, port, tcp } => self.send_named(host, port, tcp, bytes).await,
            }
        }
    }

    /// Send to an address, over UDP or TCP.
    async fn send_addr(self: &Arc<Self>, addr: SocketAddr, tcp: bool, bytes: Vec<u8>) {
        if tcp {
            let id = self.outbound_conn(addr);
            self.send_conn(id, bytes);
            return;
        }
        match self.udp.get() {
            Some(s) => {
                if let Err(e) = s.send_to(&bytes, addr).await {
                    tracing::debug!(%addr, error = %e, "SIP datagram not sent");
                    self.core.metrics.forward_error("send");
                }
            }
            None => self.core.metrics.forward_error("no_udp"),
        }
    }

    /// Send to a host name: from the cache, else after a lookup in its own
    /// task (the message path does not wait for DNS).
    async fn send_named(self: &Arc<Self>, host: Box<str>, port: u16, tcp: bool, bytes: Vec<u8>) {
        match self.resolver.cached(&host, Instant::now()) {
            Some(found) => self.send_resolved(&host, found, port, tcp, bytes).await,
            None => match self.resolver.permit() {
                Some(permit) => {
                    let p = self.clone();
                    tokio::spawn(async move {
                        let found = p.resolver.lookup(&host).await;
                        drop(permit);
                        p.send_resolved(&host, found, port, tcp, bytes).await;
                    });
                }
                None => self.core.metrics.forward_error("resolve_busy"),
            },
        }
    }

    async fn send_resolved(
        self: &Arc<Self>,
        host: &str,
        found: Cached,
        port: u16,
        tcp: bool,
        bytes: Vec<u8>,
    ) {
        let v4 = self
            .udp
            .get()
            .and_then(|s| s.local_addr().ok())
            .is_none_or(|a| a.is_ipv4());
        let ip = match &found {
            Cached::Found(ips) if tcp => ips.first().copied(),
            Cached::Found(ips) => resolve::pick(ips, v4),
            Cached::NotFound => None,
        };
        match ip {
            Some(ip) => self.send_addr(SocketAddr::new(ip, port), tcp, bytes).await,
            None => {
                tracing::debug!(host, "SIP response: Via host does not resolve");
                self.core.metrics.forward_error("resolve");
            }
        }
    }

    fn send_conn(&self, id: u64, bytes: Vec<u8>) {
        match self.conns.get(&id) {
            Some(tx) => {
                if tx.try_send(bytes).is_err() {
                    self.core.metrics.forward_error("queue_full");
                }
            }
            None => self.core.metrics.forward_error("connection_gone"),
        }
    }

    /// The open connection to `addr`, or a new one being opened.
    fn outbound_conn(self: &Arc<Self>, addr: SocketAddr) -> u64 {
        *self.outbound.entry(addr).or_insert_with(|| {
            let (id, rx) = self.register();
            tokio::spawn(connection(self.clone(), None, addr, id, rx));
            id
        })
    }

    fn register(&self) -> (u64, mpsc::Receiver<Vec<u8>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(CONN_QUEUE);
        self.conns.insert(id, tx);
        (id, rx)
    }
}

async fn udp_loop(p: Arc<Proxy>, socket: Arc<UdpSocket>) {
    let mut stop = p.stop.clone();
    let mut buf = vec![0u8; 65536];
    let mut w = Work::default();
    let mut out = Outbox::default();
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP port unreachable from an earlier send, and the like.
                    tracing::trace!(error = %e, "SIP UDP receive error");
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let src = Source {
            transport: Transport::Udp,
            addr: from,
            conn: None,
        };
        let t0 = Instant::now();
        p.core.handle(&buf[..n], &src, t0, &mut w, &mut out);
        w.turn.hand_over(&p.core.ctx);
        p.dispatch(&mut out).await;
        if let Some(path) = out.path.take() {
            p.core.metrics.added_latency(path, t0.elapsed());
        }
    }
}

async fn accept_loop(p: Arc<Proxy>, listener: TcpListener) {
    let mut stop = p.stop.clone();
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "SIP TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        if p.conns.len() >= p.core.cfg.max_connections {
            p.core.metrics.forward_error("too_many_connections");
            drop(stream);
            continue;
        }
        let (id, rx) = p.register();
        tokio::spawn(connection(p.clone(), Some(stream), addr, id, rx));
    }
}

async fn tls_accept_loop(
    p: Arc<Proxy>,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) {
    let mut stop = p.stop.clone();
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "SIP TLS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        if p.conns.len() + p.handshakes.load(Ordering::Relaxed) >= p.core.cfg.max_connections {
            p.core.metrics.forward_error("too_many_connections");
            drop(stream);
            continue;
        }
        p.handshakes.fetch_add(1, Ordering::Relaxed);
        let p = p.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let done = tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(stream)).await;
            p.handshakes.fetch_sub(1, Ordering::Relaxed);
            let tls = match done {
                Ok(Ok(s)) => s,
                _ => {
                    tracing::debug!(peer = %addr, "SIP TLS handshake failed");
                    p.core.metrics.invalid("tls_handshake");
                    return;
                }
            };
            let (id, rx) = p.register();
            let (rd, wr) = tokio::io::split(tls);
            serve_stream(p, rd, wr, addr, id, rx, false).await;
        });
    }
}

/// One TCP connection, inbound (`stream` given) or outbound (opened here).
async fn connection(
    p: Arc<Proxy>,
    stream: Option<TcpStream>,
    addr: SocketAddr,
    id: u64,
    rx: mpsc::Receiver<Vec<u8>>,
) {
    let outbound = stream.is_none();
    let stream = match stream {
        Some(s) => s,
        None => match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            _ => {
                tracing::debug!(%addr, "SIP next hop: TCP connect failed");
                p.core.metrics.forward_error("connect");
                p.conns.remove(&id);
                p.outbound.remove_if(&addr, |_, v| *v == id);
                return;
            }
        },
    };
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    serve_stream(p, rd, wr, addr, id, rx, outbound).await;
}

/// Read messages from a stream (TCP or TLS) and write what is queued for it.
async fn serve_stream<R, W>(
    p: Arc<Proxy>,
    mut rd: R,
    mut wr: W,
    addr: SocketAddr,
    id: u64,
    mut rx: mpsc::Receiver<Vec<u8>>,
    outbound: bool,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut stop = p.stop.clone();
    let max = p.core.cfg.max_message_size;
    let idle = p.core.cfg.idle_timeout;
    let mut buf = BytesMut::with_capacity(8192);
    let mut w = Work::default();
    let mut out = Outbox::default();
    let src = Source {
        transport: Transport::Tcp,
        addr,
        conn: Some(id),
    };
    'conn: loop {
        loop {
            match frame(&buf, max) {
                Ok(Frame::NeedMore) => break,
                Ok(Frame::Keepalive(n)) => {
                    if buf.starts_with(b"\r\n\r\n") {
                        p.send_conn(id, b"\r\n".to_vec()); // RFC 5626 pong
                        buf.advance(4);
                    } else {
                        buf.advance(n);
                    }
                }
                Ok(Frame::Message(n)) => {
                    let msg = buf.split_to(n);
                    let t0 = Instant::now();
                    p.core.handle(&msg, &src, t0, &mut w, &mut out);
                    w.turn.hand_over(&p.core.ctx);
                    p.dispatch(&mut out).await;
                    if let Some(path) = out.path.take() {
                        p.core.metrics.added_latency(path, t0.elapsed());
                    }
                }
                Err(e) => {
                    tracing::debug!(peer = %addr, error = %e, "SIP stream broken; closing");
                    p.core.metrics.invalid(e.field());
                    break 'conn;
                }
            }
        }
        tokio::select! {
            r = tokio::time::timeout(idle, rd.read_buf(&mut buf)) => match r {
                Ok(Ok(n)) if n > 0 => {}
                _ => break,
            },
            _ = stop.changed() => break,
        }
    }
    p.conns.remove(&id);
    if outbound {
        p.outbound.remove_if(&addr, |_, v| *v == id);
    }
    let _ = writer.await;
}
