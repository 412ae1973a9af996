//! A sink SMSC for tests and throughput runs: binds any account, answers every
//! submission at once with a fresh message id, and on request sends a delivery
//! receipt back for each message that asked for one.
//!
//! One task per connection reads whatever has arrived, answers every whole PDU in
//! it into one write buffer, and writes that buffer while it keeps reading, so it
//! never blocks on a peer that is itself busy writing. Counters are per connection
//! and added to the shared [`SinkStats`] once per read.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::conn::{self, FrameBuf};
use crate::smpp::codec::{
    status, tag, BindResp, Body, COctetString, CommandId, DeliverSm, DestAddress, Header,
    OctetString, Pdu, SubmitMultiResp, SubmitSm, Tlv, TlvRead, Tlvs, UnsuccessSmes,
    DEFAULT_MAX_COMMAND_LENGTH, HEADER_LEN,
};

/// Stop reading from a peer while this much output is waiting for it.
const OUT_HIGH_WATER: usize = 1024 * 1024;
/// Message ids a connection takes from the shared counter at a time.
const ID_BLOCK: u64 = 256;
/// `message_state` DELIVERED.
const MESSAGE_STATE_DELIVERED: u8 = 2;
/// `esm_class` of a delivery receipt.
const ESM_CLASS_RECEIPT: u8 = 0x04;

/// `smpp-sink` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:2776")]
    pub listen: String,
    /// Send a delivery receipt (deliver_sm) for each submit_sm/data_sm whose
    /// registered_delivery asks for one.
    #[arg(long)]
    pub receipts: bool,
    /// Largest PDU accepted, in octets; a longer one closes the connection.
    #[arg(long, default_value_t = DEFAULT_MAX_COMMAND_LENGTH)]
    pub max_command_length: u32,
    /// Hold every answer this long before sending it ("200ms"), like a slow
    /// SMSC: requests stay in flight (drain tests, window behaviour).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub delay: Duration,
}

/// How an in-process sink behaves.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Send delivery receipts when asked.
    pub receipts: bool,
    /// Largest PDU accepted, in octets.
    pub max_command_length: u32,
    /// How many of the latest submissions [`SinkStats::recent`] keeps (0: none,
    /// which is what throughput runs want).
    pub record_last: usize,
    /// How long every answer is held before it is sent (0: at once).
    pub delay: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            receipts: false,
            max_command_length: DEFAULT_MAX_COMMAND_LENGTH,
            record_last: 1024,
            delay: Duration::ZERO,
        }
    }
}

/// One submission as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitRecord {
    /// The bound account.
    pub system_id: String,
    /// submit_sm, data_sm or submit_multi.
    pub command: CommandId,
    /// The recipient (the first one of a submit_multi).
    pub destination: String,
    /// `short_message` (empty for data_sm).
    pub short_message: Vec<u8>,
    /// `registered_delivery`.
    pub registered_delivery: u8,
    /// The TLVs in wire order, as (tag, value).
    pub tlvs: Vec<(u16, Vec<u8>)>,
}

impl SubmitRecord {
    /// The TLV tags in wire order.
    pub fn tlv_tags(&self) -> Vec<u16> {
        self.tlvs.iter().map(|(t, _)| *t).collect()
    }
}

/// Totals since the sink started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCounts {
    /// Connections accepted.
    pub connections: u64,
    /// Successful binds.
    pub binds: u64,
    /// unbind requests answered.
    pub unbinds: u64,
    /// submit_sm answered with ESME_ROK.
    pub submit_sm: u64,
    /// data_sm answered with ESME_ROK.
    pub data_sm: u64,
    /// submit_multi answered with ESME_ROK.
    pub submit_multi: u64,
    /// enquire_link answered.
    pub enquire_links: u64,
    /// Delivery receipts sent.
    pub receipts_sent: u64,
    /// Receipts wanted but with no receiving session of that account to take them.
    pub receipts_unroutable: u64,
    /// deliver_sm_resp received.
    pub deliver_sm_resps: u64,
    /// PDUs that failed to decode, or came before a bind.
    pub rejected: u64,
}

impl SinkCounts {
    /// Submissions of any kind answered with ESME_ROK.
    pub fn submits(&self) -> u64 {
        self.submit_sm + self.data_sm + self.submit_multi
    }

    fn add(&self, shared: &SinkStats) {
        let add = |counter: &AtomicU64, n: u64| {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&shared.connections, self.connections);
        add(&shared.binds, self.binds);
        add(&shared.unbinds, self.unbinds);
        add(&shared.submit_sm, self.submit_sm);
        add(&shared.data_sm, self.data_sm);
        add(&shared.submit_multi, self.submit_multi);
        add(&shared.enquire_links, self.enquire_links);
        add(&shared.receipts_sent, self.receipts_sent);
        add(&shared.receipts_unroutable, self.receipts_unroutable);
        add(&shared.deliver_sm_resps, self.deliver_sm_resps);
        add(&shared.rejected, self.rejected);
    }
}

/// What the sink has seen, shared by its connections.
#[derive(Debug, Default)]
pub struct SinkStats {
    connections: AtomicU64,
    binds: AtomicU64,
    unbinds: AtomicU64,
    submit_sm: AtomicU64,
    data_sm: AtomicU64,
    submit_multi: AtomicU64,
    enquire_links: AtomicU64,
    receipts_sent: AtomicU64,
    receipts_unroutable: AtomicU64,
    deliver_sm_resps: AtomicU64,
    rejected: AtomicU64,
    record_last: usize,
    recent: Mutex<VecDeque<SubmitRecord>>,
}

impl SinkStats {
    fn new(record_last: usize) -> Self {
        SinkStats {
            record_last,
            ..SinkStats::default()
        }
    }

    /// The totals now (connections add theirs after each read).
    pub fn counts(&self) -> SinkCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SinkCounts {
            connections: get(&self.connections),
            binds: get(&self.binds),
            unbinds: get(&self.unbinds),
            submit_sm: get(&self.submit_sm),
            data_sm: get(&self.data_sm),
            submit_multi: get(&self.submit_multi),
            enquire_links: get(&self.enquire_links),
            receipts_sent: get(&self.receipts_sent),
            receipts_unroutable: get(&self.receipts_unroutable),
            deliver_sm_resps: get(&self.deliver_sm_resps),
            rejected: get(&self.rejected),
        }
    }

    /// The latest submissions, oldest first (at most `record_last`).
    pub fn recent(&self) -> Vec<SubmitRecord> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.iter().cloned().collect()
    }

    fn record(&self, batch: &mut Vec<SubmitRecord>) {
        if batch.is_empty() {
            return;
        }
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        for r in batch.drain(..) {
            if recent.len() == self.record_last {
                recent.pop_front();
            }
            recent.push_back(r);
        }
    }
}

/// A running in-process sink; dropping it stops the sink and its connections.
pub type SinkHandle = crate::gate::ServerHandle<SinkStats>;

/// A session that takes deliver_sm: its connection id and its queue.
type Receiver = (u64, mpsc::UnboundedSender<Pdu>);

/// State every connection shares.
#[derive(Debug)]
struct Shared {
    config: SinkConfig,
    stats: Arc<SinkStats>,
    next_id: AtomicU64,
    /// Sessions that can take a deliver_sm, by system_id.
    receivers: Mutex<HashMap<Bytes, Vec<Receiver>>>,
    /// Round-robin over the receivers of one account.
    next_receiver: AtomicU64,
}

/// Starts a sink on `listener` and returns at once.
pub async fn spawn(listener: TcpListener, config: SinkConfig) -> SinkHandle {
    let stats = Arc::new(SinkStats::new(config.record_last));
    // Fall back to port 0 only if the OS cannot say: the caller bound the listener.
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let shared = Arc::new(Shared {
        config,
        stats: stats.clone(),
        next_id: AtomicU64::new(1),
        receivers: Mutex::new(HashMap::new()),
        next_receiver: AtomicU64::new(0),
    });
    let task = tokio::spawn(accept_loop(listener, shared));
    SinkHandle::new(addr, stats, task)
}

/// Runs the sink until Ctrl-C, printing its totals every few seconds while they change.
pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let config = SinkConfig {
        receipts: args.receipts,
        max_command_length: args.max_command_length,
        record_last: 0,
        delay: args.delay,
    };
    let sink = spawn(listener, config).await;
    println!(
        "smpp sink listening on {} (receipts {}, delay {:?})",
        sink.local_addr(),
        if args.receipts { "on" } else { "off" },
        args.delay
    );
    let mut last = SinkCounts::default();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let now = sink.stats().counts();
                if now != last {
                    println!("{}", describe(&now, now.submits() - last.submits(), 5.0));
                    last = now;
                }
            }
        }
    }
    println!("{}", describe(&sink.stats().counts(), 0, 0.0));
    sink.shutdown().await;
    Ok(())
}

fn describe(c: &SinkCounts, recent: u64, secs: f64) -> String {
    let rate = if secs > 0.0 {
        format!(" ({:.0}/s)", recent as f64 / secs)
    } else {
        String::new()
    };
    format!(
        "sink: {} connections, {} binds, {} submits{rate}, {} receipts sent ({} unroutable), {} rejected",
        c.connections,
        c.binds,
        c.submits(),
        c.receipts_sent,
        c.receipts_unroutable,
        c.rejected
    )
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when this task is aborted) aborts every connection.
    let mut connections = JoinSet::new();
    let mut next_conn = 0u64;
    loop {
        tokio::select! {
            stream = conn::accept(&listener) => {
                next_conn += 1;
                connections.spawn(serve(stream, shared.clone(), next_conn));
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

/// How a session is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Transmitter,
    Receiver,
    Transceiver,
}

impl Bound {
    fn transmits(self) -> bool {
        self != Bound::Receiver
    }
    fn receives(self) -> bool {
        self != Bound::Transmitter
    }
}

/// One connection's state.
struct Session {
    shared: Arc<Shared>,
    id: u64,
    bound: Option<Bound>,
    system_id: Bytes,
    /// Where other sessions route receipts for this one.
    inbox: mpsc::UnboundedSender<Pdu>,
    next_seq: u32,
    ids: std::ops::Range<u64>,
    counts: SinkCounts,
    records: Vec<SubmitRecord>,
    closing: bool,
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>, id: u64) {
    let (inbox, mut routed) = mpsc::unbounded_channel();
    let mut frames = FrameBuf::new(shared.config.max_command_length);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut s = Session {
        shared,
        id,
        bound: None,
        system_id: Bytes::new(),
        inbox,
        next_seq: 0,
        ids: 0..0,
        counts: SinkCounts {
            connections: 1,
            ..SinkCounts::default()
        },
        records: Vec::new(),
        closing: false,
    };
    let (mut rd, mut wr) = stream.split();
    // With a delay: answers made at a read, and when they may be sent.
    let delay = s.shared.config.delay;
    let mut delayed: VecDeque<(tokio::time::Instant, BytesMut)> = VecDeque::new();
    loop {
        if s.closing && out.is_empty() && delayed.is_empty() {
            break;
        }
        let next_due = delayed.front().map(|(due, _)| *due);
        tokio::select! {
            read = rd.read_buf(frames.read_space()), if !s.closing && out.len() < OUT_HIGH_WATER => {
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if delay.is_zero() {
                    s.answer_all(&mut frames, &mut out);
                } else {
                    let mut answers = BytesMut::new();
                    s.answer_all(&mut frames, &mut answers);
                    if !answers.is_empty() {
                        delayed.push_back((tokio::time::Instant::now() + delay, answers));
                    }
                }
                while let Ok(receipt) = routed.try_recv() {
                    s.push_deliver(receipt, &mut out);
                }
                s.publish();
            }
            written = wr.write_buf(&mut out), if !out.is_empty() => {
                if !matches!(written, Ok(n) if n > 0) {
                    break;
                }
            }
            Some(receipt) = routed.recv(), if !s.closing => {
                s.push_deliver(receipt, &mut out);
                s.publish();
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(tokio::time::Instant::now)), if next_due.is_some() => {
                let now = tokio::time::Instant::now();
                while delayed.front().is_some_and(|(due, _)| *due <= now) {
                    if let Some((_, answers)) = delayed.pop_front() {
                        out.extend_from_slice(&answers);
                    }
                }
            }
        }
    }
    if !out.is_empty() {
        // Best effort: the peer may already be gone.
        let _ = wr.write_all(&out).await;
    }
    s.unregister();
    s.publish();
}

impl Session {
    /// Answers every whole PDU in `frames`.
    fn answer_all(&mut self, frames: &mut FrameBuf, out: &mut BytesMut) {
        while !self.closing {
            let frame = match frames.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be resynchronised: say why, then close.
                    tracing::debug!("sink connection {}: {e}", self.id);
                    self.counts.rejected += 1;
                    Pdu {
                        command_status: e.command_status(),
                        sequence_number: 0,
                        body: Body::GenericNack,
                    }
                    .encode(out);
                    self.closing = true;
                    break;
                }
            };
            let Some(header) = Header::peek(&frame) else {
                continue;
            };
            match Pdu::decode_bytes(frame) {
                Ok(pdu) => self.answer(pdu, out),
                Err(e) => {
                    tracing::debug!("sink connection {}: invalid PDU: {e}", self.id);
                    self.counts.rejected += 1;
                    if !header.command().is_response() {
                        Pdu::error_response(&header, e.command_status()).encode(out);
                    }
                }
            }
        }
    }

    fn answer(&mut self, pdu: Pdu, out: &mut BytesMut) {
        let seq = pdu.sequence_number;
        let reply = |body| Pdu {
            command_status: status::ESME_ROK,
            sequence_number: seq,
            body,
        };
        match pdu.body {
            Body::BindTransmitter(ref b)
            | Body::BindReceiver(ref b)
            | Body::BindTransceiver(ref b) => {
                let (bound, resp) = match pdu.body {
                    Body::BindTransmitter(_) => {
                        (Bound::Transmitter, CommandId::BindTransmitterResp)
                    }
                    Body::BindReceiver(_) => (Bound::Receiver, CommandId::BindReceiverResp),
                    _ => (Bound::Transceiver, CommandId::BindTransceiverResp),
                };
                if self.bound.is_some() {
                    self.refuse(&pdu, status::ESME_RALYBND, out);
                    return;
                }
                self.bound = Some(bound);
                self.system_id = Bytes::copy_from_slice(&b.system_id);
                self.counts.binds += 1;
                if bound.receives() {
                    self.register();
                }
                let body = BindResp {
                    system_id: COctetString::new(Bytes::from_static(b"sink")).unwrap_or_default(),
                    tlvs: Tlvs::from(vec![Tlv::from_u8(tag::SC_INTERFACE_VERSION, 0x34)]),
                };
                let body = match resp {
                    CommandId::BindTransmitterResp => Body::BindTransmitterResp(Some(body)),
                    CommandId::BindReceiverResp => Body::BindReceiverResp(Some(body)),
                    _ => Body::BindTransceiverResp(Some(body)),
                };
                reply(body).encode(out);
            }
            Body::SubmitSm(ref sm) => {
                if !self.can_transmit(&pdu, out) {
                    return;
                }
                let id = self.next_message_id();
                put_message_id_resp(out, CommandId::SubmitSmResp, seq, id);
                self.counts.submit_sm += 1;
                self.keep(CommandId::SubmitSm, &sm.destination_addr, sm, &sm.tlvs);
                if wants_receipt(sm.registered_delivery) {
                    self.receipt(id, sm, sm.payload(), out);
                }
            }
            Body::DataSm(ref dm) => {
                if !self.can_transmit(&pdu, out) {
                    return;
                }
                let id = self.next_message_id();
                put_message_id_resp(out, CommandId::DataSmResp, seq, id);
                self.counts.data_sm += 1;
                // Shaped as a submit_sm, so records and receipts need one code path.
                let as_submit = SubmitSm {
                    source_addr_ton: dm.source_addr_ton,
                    source_addr_npi: dm.source_addr_npi,
                    source_addr: COctetString::copy_from(&dm.source_addr).unwrap_or_default(),
                    dest_addr_ton: dm.dest_addr_ton,
                    dest_addr_npi: dm.dest_addr_npi,
                    destination_addr: COctetString::copy_from(&dm.destination_addr)
                        .unwrap_or_default(),
                    registered_delivery: dm.registered_delivery,
                    ..SubmitSm::default()
                };
                self.keep(
                    CommandId::DataSm,
                    &dm.destination_addr,
                    &as_submit,
                    &dm.tlvs,
                );
                if wants_receipt(dm.registered_delivery) {
                    let payload = dm.tlvs.message_payload().unwrap_or_default();
                    self.receipt(id, &as_submit, payload, out);
                }
            }
            Body::SubmitMulti(ref multi) => {
                if !self.can_transmit(&pdu, out) {
                    return;
                }
                let Ok(none_failed) = UnsuccessSmes::new(Vec::new()) else {
                    self.refuse(&pdu, status::ESME_RSYSERR, out);
                    return;
                };
                let id = self.next_message_id();
                let body = SubmitMultiResp {
                    message_id: COctetString::new(Bytes::from(hex_id(id))).unwrap_or_default(),
                    unsuccess_smes: none_failed,
                    tlvs: Tlvs::new(),
                };
                reply(Body::SubmitMultiResp(Some(body))).encode(out);
                self.counts.submit_multi += 1;
                let first = multi.dest_addresses.first().map(|d| match d {
                    DestAddress::Sme { addr, .. } => addr.as_bytes(),
                    DestAddress::DistributionList(name) => name.as_bytes(),
                });
                let as_submit = SubmitSm {
                    short_message: multi.short_message.clone(),
                    registered_delivery: multi.registered_delivery,
                    ..SubmitSm::default()
                };
                self.keep(
                    CommandId::SubmitMulti,
                    first.unwrap_or_default(),
                    &as_submit,
                    &multi.tlvs,
                );
            }
            Body::EnquireLink => {
                self.counts.enquire_links += 1;
                reply(Body::EnquireLinkResp).encode(out);
            }
            Body::Unbind => {
                self.counts.unbinds += 1;
                reply(Body::UnbindResp).encode(out);
                self.closing = true;
            }
            Body::DeliverSmResp(_) => self.counts.deliver_sm_resps += 1,
            Body::CancelSm(_) => reply(Body::CancelSmResp).encode(out),
            Body::ReplaceSm(_) => reply(Body::ReplaceSmResp).encode(out),
            Body::QuerySm(_) => self.refuse(&pdu, status::ESME_RQUERYFAIL, out),
            Body::Outbind(_) | Body::AlertNotification(_) | Body::DeliverSm(_) => {
                self.refuse(&pdu, status::ESME_RINVCMDID, out)
            }
            // Responses to nothing we asked, or to enquire_link: nothing to answer.
            _ => {}
        }
    }

    fn refuse(&mut self, pdu: &Pdu, command_status: u32, out: &mut BytesMut) {
        self.counts.rejected += 1;
        Pdu::error_response(&pdu.header(), command_status).encode(out);
    }

    /// Whether the session may submit; answers ESME_RINVBNDSTS when it may not.
    fn can_transmit(&mut self, pdu: &Pdu, out: &mut BytesMut) -> bool {
        if self.bound.is_some_and(Bound::transmits) {
            return true;
        }
        self.refuse(pdu, status::ESME_RINVBNDSTS, out);
        false
    }

    fn next_message_id(&mut self) -> u64 {
        if self.ids.is_empty() {
            let start = self.shared.next_id.fetch_add(ID_BLOCK, Ordering::Relaxed);
            self.ids = start..start + ID_BLOCK;
        }
        let id = self.ids.start;
        self.ids.start += 1;
        id
    }

    fn keep(&mut self, command: CommandId, destination: &[u8], sm: &SubmitSm, tlvs: &Tlvs) {
        if self.shared.config.record_last == 0 {
            return;
        }
        // Copies: holding the received Bytes would pin the whole read buffer.
        self.records.push(SubmitRecord {
            system_id: String::from_utf8_lossy(&self.system_id).into_owned(),
            command,
            destination: String::from_utf8_lossy(destination).into_owned(),
            short_message: sm.short_message.to_vec(),
            registered_delivery: sm.registered_delivery,
            tlvs: tlvs.iter().map(|t| (t.tag(), t.value().to_vec())).collect(),
        });
    }

    /// Sends a receipt for message `id` on this session if it is a transceiver,
    /// else on a receiving session of the same account.
    fn receipt(&mut self, id: u64, sm: &SubmitSm, text: &[u8], out: &mut BytesMut) {
        if !self.shared.config.receipts {
            return;
        }
        let receipt = build_receipt(id, sm, text);
        if self.bound == Some(Bound::Transceiver) {
            self.push_deliver(receipt, out);
            return;
        }
        let receivers = self
            .shared
            .receivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let target = receivers.get(&self.system_id).and_then(|list| {
            let n = self.shared.next_receiver.fetch_add(1, Ordering::Relaxed);
            let i = usize::try_from(n).unwrap_or(0) % list.len().max(1);
            list.get(i)
        });
        match target {
            // The receiving session counts it as sent.
            Some((_, queue)) if queue.send(receipt).is_ok() => {}
            _ => self.counts.receipts_unroutable += 1,
        }
    }

    /// Writes a deliver_sm with this session's next sequence number.
    fn push_deliver(&mut self, mut pdu: Pdu, out: &mut BytesMut) {
        self.next_seq = if self.next_seq >= 0x7FFF_FFFF {
            1
        } else {
            self.next_seq + 1
        };
        pdu.sequence_number = self.next_seq;
        pdu.encode(out);
        self.counts.receipts_sent += 1;
    }

    fn register(&self) {
        let mut receivers = self
            .shared
            .receivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        receivers
            .entry(self.system_id.clone())
            .or_default()
            .push((self.id, self.inbox.clone()));
    }

    fn unregister(&self) {
        if !self.bound.is_some_and(Bound::receives) {
            return;
        }
        let mut receivers = self
            .shared
            .receivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = receivers.get_mut(&self.system_id) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                receivers.remove(&self.system_id);
            }
        }
    }

    /// Adds this connection's counts and records to the shared ones.
    fn publish(&mut self) {
        self.counts.add(&self.shared.stats);
        self.counts = SinkCounts::default();
        self.shared.stats.record(&mut self.records);
    }
}

/// registered_delivery asks for an SMSC receipt on success (bits 1..0 = 01).
fn wants_receipt(registered_delivery: u8) -> bool {
    registered_delivery & 0x03 == 0x01
}

/// A message id as the sink hands it out: lowercase hex.
fn hex_id(id: u64) -> Vec<u8> {
    format!("{id:x}").into_bytes()
}

/// Writes a submit_sm_resp or data_sm_resp carrying `message_id` (hex of `id`) straight
/// into `out`: the hot path, so no PDU value and no allocation.
fn put_message_id_resp(out: &mut BytesMut, command: CommandId, seq: u32, id: u64) {
    let mut digits = [0u8; 16];
    let mut n = 0;
    let mut rest = id;
    loop {
        digits[15 - n] = b"0123456789abcdef"[(rest & 0xF) as usize];
        n += 1;
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    let len = HEADER_LEN + n + 1;
    Header {
        // At most 16 + 16 + 1 octets.
        command_length: len as u32,
        command_id: command.as_u32(),
        command_status: status::ESME_ROK,
        sequence_number: seq,
    }
    .encode(out);
    out.put_slice(&digits[16 - n..]);
    out.put_u8(0);
}

/// The deliver_sm receipt for message `id`, in the de-facto format of SMPP v3.4
/// Appendix B, with the `receipted_message_id` and `message_state` TLVs.
fn build_receipt(id: u64, sm: &SubmitSm, text: &[u8]) -> Pdu {
    let hex = hex_id(id);
    let now = smpp_receipt_date(SystemTime::now());
    let mut short = Vec::with_capacity(160);
    short.extend_from_slice(b"id:");
    short.extend_from_slice(&hex);
    short.extend_from_slice(b" sub:001 dlvr:001 submit date:");
    short.extend_from_slice(&now);
    short.extend_from_slice(b" done date:");
    short.extend_from_slice(&now);
    short.extend_from_slice(b" stat:DELIVRD err:000 text:");
    short.extend_from_slice(&text[..text.len().min(20)]);
    let mut receipted = hex;
    receipted.push(0);
    let tlvs = Tlvs::from(vec![
        Tlv::new(tag::RECEIPTED_MESSAGE_ID, receipted)
            .unwrap_or_else(|_| Tlv::from_u8(tag::RECEIPTED_MESSAGE_ID, 0)),
        Tlv::from_u8(tag::MESSAGE_STATE, MESSAGE_STATE_DELIVERED),
    ]);
    let body: DeliverSm = SubmitSm {
        source_addr_ton: sm.dest_addr_ton,
        source_addr_npi: sm.dest_addr_npi,
        source_addr: COctetString::copy_from(&sm.destination_addr).unwrap_or_default(),
        dest_addr_ton: sm.source_addr_ton,
        dest_addr_npi: sm.source_addr_npi,
        destination_addr: COctetString::copy_from(&sm.source_addr).unwrap_or_default(),
        esm_class: ESM_CLASS_RECEIPT,
        short_message: OctetString::new(short).unwrap_or_default(),
        tlvs,
        ..SubmitSm::default()
    };
    Pdu::new(0, Body::DeliverSm(body))
}

/// `YYMMDDhhmm` (UTC) for the receipt's submit and done dates.
fn smpp_receipt_date(t: SystemTime) -> [u8; 10] {
    // "2026-03-21T12:34:56Z"
    let iso = humantime::format_rfc3339_seconds(t).to_string();
    let b = iso.as_bytes();
    let mut out = *b"0000000000";
    for (dst, src) in [(0, 2), (2, 5), (4, 8), (6, 11), (8, 14)] {
        if let Some(pair) = b.get(src..src + 2) {
            out[dst..dst + 2].copy_from_slice(pair);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_resp_is_a_valid_submit_sm_resp() {
        for id in [0u64, 1, 0xabc, u64::MAX] {
            let mut out = BytesMut::new();
            put_message_id_resp(&mut out, CommandId::SubmitSmResp, 7, id);
            let pdu = Pdu::decode(&out).expect("decodes");
            assert_eq!(pdu.sequence_number, 7);
            let Body::SubmitSmResp(Some(resp)) = pdu.body else {
                panic!("not a submit_sm_resp: {pdu:?}");
            };
            assert_eq!(resp.message_id.as_bytes(), format!("{id:x}").as_bytes());
        }
    }

    #[test]
    fn receipt_swaps_addresses_and_carries_the_receipt_tlvs() {
        let sm = SubmitSm {
            source_addr: COctetString::new(Bytes::from_static(b"BRAND")).unwrap(),
            source_addr_ton: 5,
            destination_addr: COctetString::new(Bytes::from_static(b"905321234567")).unwrap(),
            dest_addr_ton: 1,
            dest_addr_npi: 1,
            ..SubmitSm::default()
        };
        let pdu = build_receipt(0x1f, &sm, b"hello there, this is longer than twenty");
        let Body::DeliverSm(d) = &pdu.body else {
            panic!("not a deliver_sm");
        };
        assert_eq!(d.esm_class, 0x04);
        assert_eq!(d.source_addr.as_bytes(), b"905321234567");
        assert_eq!(d.destination_addr.as_bytes(), b"BRAND");
        assert_eq!(d.dest_addr_ton, 5);
        assert_eq!(d.tlvs.receipted_message_id().unwrap(), Some(&b"1f"[..]));
        assert_eq!(d.tlvs.message_state().unwrap(), Some(2));
        let text = String::from_utf8(d.short_message.to_vec()).unwrap();
        assert!(
            text.starts_with("id:1f sub:001 dlvr:001 submit date:"),
            "{text}"
        );
        assert!(
            text.ends_with(" stat:DELIVRD err:000 text:hello there, this is"),
            "{text}"
        );
    }

    #[test]
    fn receipt_date_is_yymmddhhmm() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 2023-11-14T22:13:20Z
        assert_eq!(&smpp_receipt_date(t), b"2311142213");
    }
}
