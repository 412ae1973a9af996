//! The SIP gate's series, prefixed `iys_gate_sip_`; registered once, so
//! counting is an atomic add. No number or brand in any label.
//!
//! - `iys_gate_sip_messages_total{message}`: messages received, by request
//!   method (`INVITE`, ..., `other`) or response code (`180`, `200`, ...);
//! - `iys_gate_sip_answers_total{code}`: answers the gate gave itself;
//! - `iys_gate_sip_retransmissions_absorbed_total`: INVITE retransmissions
//!   answered from the transaction cache; `iys_gate_sip_acks_absorbed_total`:
//!   ACKs of the gate's own answers;
//! - `iys_gate_sip_forward_errors_total{reason}`: messages that could not be
//!   forwarded (`no_route`, `send`, `connect`, `queue_full`, `not_ours`,
//!   `resolve`: a Via host name that does not resolve, `resolve_busy`: too
//!   many lookups at once, `too_many_connections`);
//! - `iys_gate_sip_invalid_total{field}`: messages dropped as unreadable;
//! - `iys_gate_sip_unmatched_total`: initial INVITEs from no trunk;
//! - `iys_gate_sip_added_latency_seconds{path}` (histogram, buckets from
//!   5 µs): from a message read off the socket to its forwarded bytes handed
//!   to the socket (UDP: `send_to` returned; TCP: queued to the connection's
//!   writer), by `path`: `request` (forwarded requests), `response`
//!   (forwarded responses), `answer` (the gate's own answers).

use std::sync::OnceLock;

use std::time::Duration;

use metrics::{counter, histogram, Counter, Histogram};

use super::codec::Method;

/// Held counters.
#[derive(Clone)]
pub struct SipMetrics {
    methods: [Counter; 7],
    codes: Vec<Counter>,
    answers: Vec<Counter>,
    /// INVITE retransmissions answered from the cache.
    pub retransmissions_absorbed: Counter,
    /// ACKs of the gate's own answers.
    pub acks_absorbed: Counter,
    /// Initial INVITEs from no trunk.
    pub unmatched: Counter,
    latency: [Histogram; 3],
}

/// What the gate sent for a message, for the added-latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// A request forwarded to a next hop.
    Request = 0,
    /// A response forwarded back.
    Response = 1,
    /// An answer of the gate's own (refusal, 302, 483, ...).
    Answer = 2,
}

const METHODS: [Method; 7] = [
    Method::Invite,
    Method::Ack,
    Method::Cancel,
    Method::Bye,
    Method::Options,
    Method::Register,
    Method::Other,
];

fn code_labels() -> &'static [String] {
    static LABELS: OnceLock<Vec<String>> = OnceLock::new();
    LABELS.get_or_init(|| (100..700).map(|c: u16| c.to_string()).collect())
}

impl SipMetrics {
    /// Register every series.
    pub fn new() -> SipMetrics {
        metrics::describe_counter!(
            "iys_gate_sip_messages_total",
            "SIP messages received, by request method or response code"
        );
        metrics::describe_counter!(
            "iys_gate_sip_answers_total",
            "SIP answers the gate gave itself, by code"
        );
        metrics::describe_counter!(
            "iys_gate_sip_retransmissions_absorbed_total",
            "INVITE retransmissions answered from the transaction cache"
        );
        metrics::describe_counter!(
            "iys_gate_sip_acks_absorbed_total",
            "ACKs of the gate's own answers, absorbed"
        );
        metrics::describe_counter!(
            "iys_gate_sip_forward_errors_total",
            "SIP messages that could not be forwarded, by reason"
        );
        metrics::describe_counter!(
            "iys_gate_sip_invalid_total",
            "SIP messages dropped as unreadable, by field"
        );
        metrics::describe_counter!(
            "iys_gate_sip_unmatched_total",
            "Initial INVITEs from an address that matches no trunk"
        );
        metrics::describe_histogram!(
            "iys_gate_sip_added_latency_seconds",
            metrics::Unit::Seconds,
            "Time from a SIP message read to what the gate sent for it handed to the socket, by path (request, response, answer)"
        );
        // Failure series exist from the start at 0, so the first failure
        // shows in `increase()` and a scrape lists them.
        for reason in [
            "no_route",
            "send",
            "connect",
            "queue_full",
            "not_ours",
            "resolve",
        ] {
            counter!("iys_gate_sip_forward_errors_total", "reason" => reason).increment(0);
        }
        counter!("iys_gate_sip_invalid_total", "field" => "message").increment(0);
        let codes = code_labels();
        SipMetrics {
            methods: METHODS
                .map(|m| counter!("iys_gate_sip_messages_total", "message" => m.as_str())),
            codes: codes
                .iter()
                .map(|c| counter!("iys_gate_sip_messages_total", "message" => c.as_str()))
                .collect(),
            answers: codes
                .iter()
                .map(|c| counter!("iys_gate_sip_answers_total", "code" => c.as_str()))
                .collect(),
            retransmissions_absorbed: counter!("iys_gate_sip_retransmissions_absorbed_total"),
            acks_absorbed: counter!("iys_gate_sip_acks_absorbed_total"),
            unmatched: counter!("iys_gate_sip_unmatched_total"),
            latency: ["request", "response", "answer"]
                .map(|p| histogram!("iys_gate_sip_added_latency_seconds", "path" => p)),
        }
    }

    /// Record the time from a message read to what it produced handed on.
    pub fn added_latency(&self, path: Path, took: Duration) {
        self.latency[path as usize].record(took.as_secs_f64());
    }

    /// Count a request.
    pub fn request(&self, m: Method) {
        let i = METHODS.iter().position(|x| *x == m).unwrap_or(6);
        self.methods[i].increment(1);
    }

    /// Count a response.
    pub fn response(&self, code: u16) {
        if let Some(c) = self.codes.get(usize::from(code).wrapping_sub(100)) {
            c.increment(1);
        }
    }

    /// Count an answer of the gate's own.
    pub fn answer(&self, code: u16) {
        if let Some(c) = self.answers.get(usize::from(code).wrapping_sub(100)) {
            c.increment(1);
        }
    }

    /// Count a message that could not be forwarded.
    pub fn forward_error(&self, reason: &'static str) {
        counter!("iys_gate_sip_forward_errors_total", "reason" => reason).increment(1);
    }

    /// Count a message dropped as unreadable.
    pub fn invalid(&self, field: &'static str) {
        counter!("iys_gate_sip_invalid_total", "field" => field).increment(1);
    }
}

impl Default for SipMetrics {
    fn default() -> Self {
        SipMetrics::new()
    }
}
