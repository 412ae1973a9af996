//! What the gate does with one SIP message, without touching a socket: the
//! caller hands over the bytes and where they came from and gets back an
//! [`Outbox`] of (destination, bytes) to send.
//!
//! Proxy mode (RFC 3261 §16.11, stateless):
//! - requests: an initial INVITE (no To tag) is judged; a refusal is answered
//!   by the gate (608 by default) and remembered, so a retransmission gets
//!   the same bytes, the ACK of that answer is absorbed and a CANCEL of it is
//!   answered `200`. Every other request (re-INVITE, ACK, BYE, CANCEL,
//!   OPTIONS, REGISTER, unknown) and every allowed INVITE is forwarded to the
//!   trunk's next hop (else `sip.next_hop`) with the gate's Via on top
//!   (branch `z9hG4bKiys` + a hash of the incoming branch, so a
//!   retransmission, its CANCEL and the ACK of a non-2xx take the same
//!   branch), `received`/`rport` added to the sender's Via (RFC 3581),
//!   Max-Forwards decremented (`483` at 0, 70 added when missing), the İYS
//!   headers cut (configurable) and Content-Length added when it goes over
//!   TCP without one. A UDP request that would leave larger than 1300 bytes
//!   goes over TCP (§18.1.1), unless configured off.
//! - responses: dropped unless the top Via is the gate's; that Via is cut and
//!   the response goes where the next Via says (`received`, `rport`; over
//!   TCP on the connection the request came in on, named in the gate's Via
//!   `ic` parameter). A sent-by host name without `received` is resolved
//!   by the caller (`Dest::Named`, see `proxy::resolve`).
//!
//! Redirect mode: an initial INVITE is answered `302` with a Contact of its
//! Request-URI when allowed (the SBC continues to the original target), or
//! the refusal; a re-INVITE gets the `302` unjudged; ACK is absorbed; CANCEL
//! gets `200` for a remembered transaction, else `481`; OPTIONS gets `200`;
//! other methods `405` with Allow.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use xxhash_rust::xxh3::Xxh3;

use super::cache::{self, Done, TxCache};
use crate::gate::{GateContext, TurnClock, TurnRecord};
use crate::sip::codec::{scan, write_edited, write_response, Edits, Kind, Message, Method, Via};
use crate::sip::config::{Mode, SipConfig};
use crate::sip::gating::{self, Answer, Trunk, Trunks};
use crate::sip::metrics::{Path, SipMetrics};
use crate::store::Snapshot;

/// How a message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A datagram.
    Udp,
    /// A TCP connection.
    Tcp,
}

/// Where a message came from.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// UDP or TCP.
    pub transport: Transport,
    /// The peer's address.
    pub addr: SocketAddr,
    /// The TCP connection's id.
    pub conn: Option<u64>,
}

/// Where to send bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A datagram from the gate's UDP socket.
    Udp(SocketAddr),
    /// An open TCP connection, by id.
    Conn(u64),
    /// A TCP connection to this address (reused, or opened).
    Tcp(SocketAddr),
    /// A host name to resolve first (a response's Via without `received`),
    /// then UDP, or TCP when `tcp`.
    Named {
        /// The Via's sent-by host.
        host: Box<str>,
        /// Its `rport`, else its port, else 5060.
        port: u16,
        /// Over TCP.
        tcp: bool,
    },
}

/// What to send after one message.
#[derive(Debug, Default)]
pub struct Outbox {
    /// (destination, bytes), in order.
    pub items: Vec<(Dest, Vec<u8>)>,
    /// What the items are, for the added-latency histogram (set with them).
    pub path: Option<Path>,
}

impl Outbox {
    fn push(&mut self, path: Path, dest: Dest, bytes: Vec<u8>) {
        self.path = Some(path);
        self.items.push((dest, bytes));
    }
}

/// Per-task scratch state, reused across messages.
#[derive(Default)]
pub struct Work {
    edits: Edits,
    extra: Vec<u8>,
    /// Decisions and refusals of this turn, handed over by the caller.
    pub turn: TurnRecord,
}

/// The branch prefix that marks the gate's own Via.
const BRANCH: &[u8] = b"z9hG4bKiys";

/// Everything the message handler needs, shared by every task.
pub struct Core {
    /// `[sip]`.
    pub cfg: SipConfig,
    /// The trunks.
    pub trunks: Trunks,
    /// Store, policy, counters, audit.
    pub ctx: GateContext,
    /// Series.
    pub metrics: SipMetrics,
    /// Resolved next hops: the default, and per trunk name.
    pub default_hop: Option<SocketAddr>,
    /// Per trunk name.
    pub trunk_hops: std::collections::HashMap<String, SocketAddr>,
    /// The host written in the gate's Via.
    pub via_host: String,
    /// The port written in the gate's Via for UDP and for TCP.
    pub via_ports: (u16, u16),
    /// Remembered INVITE transactions.
    pub cache: TxCache,
}

impl Core {
    /// Handle one message (a datagram, or a frame from a stream).
    pub fn handle(&self, buf: &[u8], src: &Source, now: Instant, w: &mut Work, out: &mut Outbox) {
        if buf
            .iter()
            .all(|&b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
        {
            return; // keep-alive
        }
        let m = match scan(buf, self.cfg.max_message_size) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(peer = %src.addr, error = %e, "unreadable SIP message dropped");
                self.metrics.invalid(e.field());
                return;
            }
        };
        match m.kind {
            Kind::Response { code } => {
                self.metrics.response(code);
                self.response(buf, &m, out);
            }
            Kind::Request { method, .. } => {
                self.metrics.request(method);
                self.request(buf, &m, method, src, now, w, out);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        buf: &[u8],
        m: &Message,
        method: Method,
        src: &Source,
        now: Instant,
        w: &mut Work,
        out: &mut Outbox,
    ) {
        let key = cache::key(
            m.top_via.branch.map_or(m.top_via.value, |b| b).of(buf),
            m.call_id.of(buf),
            m.cseq,
        );
        match method {
            Method::Ack => {
                if matches!(self.cache.get(key, now), Some(Done::Answered(_))) {
                    self.metrics.acks_absorbed.increment(1);
                    return;
                }
                if self.cfg.mode == Mode::Redirect {
                    return;
                }
            }
            Method::Cancel => {
                if matches!(self.cache.get(key, now), Some(Done::Answered(_))) {
                    self.answer_plain(buf, m, src, 200, w, out);
                    return;
                }
                if self.cfg.mode == Mode::Redirect {
                    self.answer_plain(buf, m, src, 481, w, out);
                    return;
                }
            }
            Method::Invite if m.to_tag.is_none() => match self.cache.get(key, now) {
                Some(Done::Answered(bytes)) => {
                    self.metrics.retransmissions_absorbed.increment(1);
                    out.push(Path::Answer, self.back(src), bytes.to_vec());
                    return;
                }
                Some(Done::Forwarded) => {}
                None => {
                    if let Some(bytes) = self.gate_invite(buf, m, src, w) {
                        self.cache
                            .put(key, Done::Answered(Arc::from(&bytes[..])), now);
                        out.push(Path::Answer, self.back(src), bytes);
                        return;
                    }
                    self.cache.put(key, Done::Forwarded, now);
                }
            },
            _ => {}
        }
        if self.cfg.mode == Mode::Redirect {
            match method {
                Method::Invite => {
                    let bytes = self.redirect(buf, m, w);
                    out.push(Path::Answer, self.back(src), bytes);
                }
                Method::Options => self.answer_plain(buf, m, src, 200, w, out),
                _ => self.answer_plain(buf, m, src, 405, w, out),
            }
            return;
        }
        if let Some((0, _)) = m.max_forwards {
            if method != Method::Ack {
                self.answer_plain(buf, m, src, 483, w, out);
            }
            return;
        }
        let trunk = self.trunks.find(src.addr.ip());
        self.forward_request(buf, m, src, trunk, w, out);
    }

    /// Judge an initial INVITE: `Some(answer bytes)` when the gate answers
    /// it (refused, unmatched, unreadable İYS headers, or redirect mode).
    fn gate_invite(&self, buf: &[u8], m: &Message, src: &Source, w: &mut Work) -> Option<Vec<u8>> {
        let Some(trunk) = self.trunks.find(src.addr.ip()) else {
            self.metrics.unmatched.increment(1);
            return match gating::unmatched(&self.cfg) {
                Some(a) => Some(self.answer(buf, m, &a, None, w)),
                None if self.cfg.mode == Mode::Redirect => Some(self.redirect(buf, m, w)),
                None => None,
            };
        };
        // The calling number matters only to a trunk that maps numbers to brands.
        let caller = if trunk.callers.is_empty() {
            None
        } else {
            gating::caller(buf, m, trunk)
        };
        let what = match gating::classify(buf, trunk, caller, &m.iys) {
            Ok(c) => c,
            Err(why) => {
                return Some(self.answer(buf, m, &gating::bad_iys_header(), Some(&why), w));
            }
        };
        let clock = TurnClock::at(std::time::SystemTime::now());
        let snapshot: Option<Arc<Snapshot>> = self.ctx.store.load();
        let callee = gating::callee(buf, m);
        let d = gating::judge(&self.ctx.policy, snapshot.as_deref(), &what, callee, clock);
        let protocol = match self.cfg.mode {
            Mode::Proxy => "sip_proxy",
            Mode::Redirect => "sip_redirect",
        };
        // The callee as written, for the audit trail of a refusal only.
        let user = if d.verdict == crate::policy::Verdict::Allow {
            std::borrow::Cow::Borrowed("")
        } else {
            m.uri()
                .and_then(|u| crate::sip::codec::uri::user_part(u.of(buf)).ok())
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
        };
        gating::record(
            &mut w.turn,
            protocol,
            &trunk.config.name,
            &what,
            &user,
            clock,
            &d,
        );
        match gating::refusal(&self.cfg.answers, &d) {
            Some(a) => Some(self.answer(buf, m, &a, None, w)),
            None if self.cfg.mode == Mode::Redirect => Some(self.redirect(buf, m, w)),
            None => None,
        }
    }

    /// The gate's own tag for To: the same for every retransmission.
    fn to_tag(&self, buf: &[u8], m: &Message) -> [u8; 16] {
        let mut h = Xxh3::new();
        h.update(m.call_id.of(buf));
        h.update(m.from_tag.map_or(&[][..], |t| t.of(buf)));
        h.update(m.top_via.branch.map_or(&[][..], |b| b.of(buf)));
        hex16(h.digest())
    }

    fn answer(
        &self,
        buf: &[u8],
        m: &Message,
        a: &Answer,
        detail: Option<&str>,
        w: &mut Work,
    ) -> Vec<u8> {
        w.extra.clear();
        gating::write_answer_headers(&self.cfg.answers, a, detail, &mut w.extra);
        self.metrics.answer(a.code);
        let mut out = Vec::with_capacity(m.headers_end + 200);
        write_response(
            buf,
            m,
            a.code,
            gating::phrase(a.code),
            &self.to_tag(buf, m),
            &w.extra,
            &mut out,
        );
        out
    }

    fn answer_plain(
        &self,
        buf: &[u8],
        m: &Message,
        src: &Source,
        code: u16,
        w: &mut Work,
        out: &mut Outbox,
    ) {
        w.extra.clear();
        if code == 405 || (code == 200 && m.method() == Some(Method::Options)) {
            w.extra
                .extend_from_slice(b"Allow: INVITE, ACK, CANCEL, OPTIONS\r\n");
        }
        self.metrics.answer(code);
        let mut bytes = Vec::with_capacity(m.headers_end + 100);
        write_response(
            buf,
            m,
            code,
            gating::phrase(code),
            &self.to_tag(buf, m),
            &w.extra,
            &mut bytes,
        );
        out.push(Path::Answer, self.back(src), bytes);
    }

    /// `302` with a Contact of the Request-URI.
    fn redirect(&self, buf: &[u8], m: &Message, w: &mut Work) -> Vec<u8> {
        w.extra.clear();
        w.extra.extend_from_slice(b"Contact: <");
        if let Some(u) = m.uri() {
            w.extra.extend_from_slice(u.of(buf));
        }
        w.extra.extend_from_slice(b">\r\n");
        self.metrics.answer(302);
        let mut out = Vec::with_capacity(m.headers_end + 200);
        write_response(
            buf,
            m,
            302,
            gating::phrase(302),
            &self.to_tag(buf, m),
            &w.extra,
            &mut out,
        );
        out
    }

    /// Where the gate's own answer goes: back where the request came from.
    fn back(&self, src: &Source) -> Dest {
        match (src.transport, src.conn) {
            (Transport::Tcp, Some(id)) => Dest::Conn(id),
            _ => Dest::Udp(src.addr),
        }
    }

    fn forward_request(
        &self,
        buf: &[u8],
        m: &Message,
        src: &Source,
        trunk: Option<&Trunk>,
        w: &mut Work,
        out: &mut Outbox,
    ) {
        let target = trunk
            .and_then(|t| self.trunk_hops.get(&t.config.name))
            .copied()
            .or(self.default_hop);
        let Some(target) = target else {
            self.metrics.forward_error("no_route");
            return;
        };
        let mut tcp = src.transport == Transport::Tcp;
        self.request_edits(buf, m, src, tcp, &mut w.edits);
        if !tcp
            && self.cfg.large_requests_over_tcp
            && (m.end() - m.start) as isize + w.edits.delta() > 1300
        {
            tcp = true;
            self.request_edits(buf, m, src, tcp, &mut w.edits);
        }
        let mut bytes = Vec::with_capacity(m.end() + 256);
        if write_edited(&buf[..m.end()], &w.edits, &mut bytes).is_err() {
            self.metrics.forward_error("edit");
            return;
        }
        let dest = if tcp {
            Dest::Tcp(target)
        } else {
            Dest::Udp(target)
        };
        out.push(Path::Request, dest, bytes);
    }

    fn request_edits(&self, buf: &[u8], m: &Message, src: &Source, tcp: bool, e: &mut Edits) {
        e.clear();
        if m.start > 0 {
            e.remove(crate::sip::codec::Span::new(0, m.start));
        }
        // received / rport on the sender's Via (RFC 3261 §18.2.1, RFC 3581).
        let via = &m.top_via;
        if let Some(at) = via.empty_rport_end(buf) {
            e.insert_with(at, |t| {
                let _ = write!(t, "={}", src.addr.port());
            });
        }
        if via.received.is_none() && host_ip(via.host.of(buf)) != Some(src.addr.ip()) {
            e.insert_with(via.value.end, |t| {
                let _ = write!(t, ";received={}", src.addr.ip());
            });
        }
        // The gate's Via on top.
        let branch = self.branch(buf, m);
        e.insert_with(m.via_line, |t| {
            let (transport, port) = if tcp {
                (&b"Via: SIP/2.0/TCP "[..], self.via_ports.1)
            } else {
                (&b"Via: SIP/2.0/UDP "[..], self.via_ports.0)
            };
            t.extend_from_slice(transport);
            t.extend_from_slice(self.via_host.as_bytes());
            t.push(b':');
            t.extend_from_slice(itoa::Buffer::new().format(port).as_bytes());
            t.extend_from_slice(b";branch=");
            t.extend_from_slice(BRANCH);
            t.extend_from_slice(&branch);
            if let (Transport::Tcp, Some(id)) = (src.transport, src.conn) {
                t.extend_from_slice(b";ic=");
                t.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
            }
            t.extend_from_slice(b"\r\n");
        });
        match m.max_forwards {
            Some((n, span)) => e.replace_with(span, |t| {
                t.extend_from_slice(itoa::Buffer::new().format(n.saturating_sub(1)).as_bytes())
            }),
            None => e.insert(m.via_line, b"Max-Forwards: 70\r\n"),
        }
        if self.cfg.strip_iys_headers {
            for line in m.iys.lines() {
                e.remove(*line);
            }
        }
        if tcp && m.content_length.is_none() {
            e.insert_with(m.headers_end, |t| {
                let _ = write!(t, "Content-Length: {}\r\n", m.body.len());
            });
        }
    }

    /// §16.11: from the incoming branch when it has the RFC 3261 cookie, else
    /// from the fields that identify the transaction.
    fn branch(&self, buf: &[u8], m: &Message) -> [u8; 16] {
        match m.top_via.branch.map(|b| b.of(buf)) {
            // One-shot: the same value as the streaming hasher, fewer steps.
            Some(b) if b.starts_with(b"z9hG4bK") => hex16(xxhash_rust::xxh3::xxh3_64(b)),
            _ => {
                let mut h = Xxh3::new();
                h.update(m.top_via.value.of(buf));
                h.update(m.to_tag.map_or(&[][..], |t| t.of(buf)));
                h.update(m.from_tag.map_or(&[][..], |t| t.of(buf)));
                h.update(m.call_id.of(buf));
                h.update(&m.cseq.to_le_bytes());
                h.update(m.uri().map_or(&[][..], |u| u.of(buf)));
                hex16(h.digest())
            }
        }
    }

    fn response(&self, buf: &[u8], m: &Message, out: &mut Outbox) {
        let top = &m.top_via;
        let ours = top.branch.is_some_and(|b| b.of(buf).starts_with(BRANCH))
            && top
                .host
                .of(buf)
                .eq_ignore_ascii_case(self.via_host.as_bytes());
        if !ours {
            self.metrics.forward_error("not_ours");
            return;
        }
        let Some(next) = m.second_via else {
            self.metrics.forward_error("no_route");
            return;
        };
        let Some(dest) = response_dest(buf, top, &next) else {
            self.metrics.forward_error("no_route");
            return;
        };
        let mut e = Edits::new();
        e.remove(m.top_via_cut);
        if m.start > 0 {
            e.remove(crate::sip::codec::Span::new(0, m.start));
        }
        let stream = match &dest {
            Dest::Udp(_) => false,
            Dest::Named { tcp, .. } => *tcp,
            _ => true,
        };
        if stream && m.content_length.is_none() {
            e.insert_with(m.headers_end, |t| {
                let _ = write!(t, "Content-Length: {}\r\n", m.body.len());
            });
        }
        let mut bytes = Vec::with_capacity(m.end());
        if write_edited(&buf[..m.end()], &e, &mut bytes).is_err() {
            self.metrics.forward_error("edit");
            return;
        }
        out.push(Path::Response, dest, bytes);
    }
}

/// Where a response goes after the gate's Via is cut: the next Via's
/// `received` (else its host: an address, or a name to resolve) and `rport`
/// (else its port, else 5060); over TCP the connection named in the gate's
/// Via when there is one.
fn response_dest(buf: &[u8], ours: &Via, next: &Via) -> Option<Dest> {
    let port = match next.rport {
        Some(Some(p)) => p,
        _ => next.port.unwrap_or(5060),
    };
    let udp = next.transport.of(buf).eq_ignore_ascii_case(b"UDP");
    if !udp {
        let conn = ours
            .param(buf, b"ic")
            .flatten()
            .and_then(|s| std::str::from_utf8(s.of(buf)).ok()?.parse().ok());
        if let Some(id) = conn {
            return Some(Dest::Conn(id));
        }
    }
    let ip = match next.received {
        Some(r) => host_ip(r.of(buf))?,
        None => match host_ip(next.host.of(buf)) {
            Some(ip) => ip,
            None => {
                let host = std::str::from_utf8(next.host.of(buf)).ok()?;
                if host.is_empty()
                    || !host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
                {
                    return None;
                }
                return Some(Dest::Named {
                    host: host.to_ascii_lowercase().into(),
                    port,
                    tcp: !udp,
                });
            }
        },
    };
    let addr = SocketAddr::new(ip, port);
    Some(if udp {
        Dest::Udp(addr)
    } else {
        Dest::Tcp(addr)
    })
}

/// A Via host as an address (`[v6]` included), if it is one.
fn host_ip(host: &[u8]) -> Option<IpAddr> {
    let h = host
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(host);
    std::str::from_utf8(h).ok()?.parse().ok()
}

fn hex16(v: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}
