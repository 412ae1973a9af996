//! A session's metric counts, handed to the registry once per turn of the
//! session loop instead of once per PDU.
//!
//! A turn handles every whole frame one read brought (often dozens), so this
//! trades a label lookup and a shared atomic update per PDU for one per
//! command per turn; a scrape sees the counts at most one turn late. The
//! upstream latency histogram is sampled the same way: the first response
//! of each turn is recorded, which keeps its distribution and costs one
//! record per read instead of one per response.

use std::time::Instant;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use rustc_hash::FxHashMap;

use crate::smpp::codec::{status, CommandId};

/// Slots per direction: one per command id up to submit_multi (0x21),
/// alert_notification, data_sm, and one for everything else; each for the
/// request and the response.
const IDS: usize = 0x25;

/// Counts not yet handed over.
pub(super) struct SessionCounts {
    /// (counter, pending) by [`slot`] for `command_status` 0, registered on
    /// first use.
    slots: Vec<Option<(Counter, u64)>>,
    /// Slots with a pending count.
    dirty: Vec<usize>,
    /// The same for PDUs with any other status (error responses and
    /// refusals), by slot and labelled status: where each one's count is in
    /// `error_counts`.
    errors: FxHashMap<(usize, u32), usize>,
    error_counts: Vec<(Counter, u64)>,
    /// The last error counted (slot, status as sent, its place in
    /// `error_counts`): refusals repeat the same one, which then skips the
    /// label check and the map.
    last_error: Option<(usize, u32, usize)>,
    /// Change of in-flight requests towards the SMSC since the last flush.
    pub in_flight: i64,
    in_flight_gauge: Gauge,
    latency: Histogram,
    /// Whether this turn's latency sample has been taken.
    latency_sampled: bool,
}

/// Who a counted PDU comes from: read from the sender or the SMSC, or made
/// by the gate itself (its refusals and error answers, the keep-alives and
/// unbinds it answers or sends on either leg).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    Sender = 0,
    Smsc = 1,
    Gate = 2,
}

impl Source {
    const COUNT: usize = 3;

    fn label(self) -> &'static str {
        match self {
            Source::Sender => "esme",
            Source::Smsc => "smsc",
            Source::Gate => "gate",
        }
    }
}

/// Where a PDU is counted: by source, response bit and command id.
fn slot(from: Source, id: u32) -> usize {
    let low = id & 0x7FFF_FFFF;
    let index = match low {
        0..=0x21 => low as usize,
        0x102 => 0x22,
        0x103 => 0x23,
        _ => 0x24,
    };
    let response = usize::from(id & 0x8000_0000 != 0);
    ((index * 2 + response) * Source::COUNT) + from as usize
}

impl SessionCounts {
    pub(super) fn new() -> Self {
        SessionCounts {
            slots: (0..IDS * 2 * Source::COUNT).map(|_| None).collect(),
            dirty: Vec::new(),
            errors: FxHashMap::default(),
            error_counts: Vec::new(),
            last_error: None,
            in_flight: 0,
            in_flight_gauge: gauge!("iys_gate_smpp_in_flight"),
            latency: histogram!("iys_gate_smpp_upstream_latency_seconds"),
            latency_sampled: false,
        }
    }

    /// One PDU read from the sender or the SMSC, or made by the gate, with
    /// its `command_status`.
    pub(super) fn pdu(&mut self, from: Source, command: CommandId, status: u32) {
        let i = slot(from, command.as_u32());
        if status != 0 {
            let at = match self.last_error {
                Some((slot, sent, at)) if slot == i && sent == status => at,
                _ => {
                    let labelled = labelled_status(status);
                    let counts = &mut self.error_counts;
                    let at = *self.errors.entry((i, labelled)).or_insert_with(|| {
                        counts.push((pdu_counter(i, from, command, labelled), 0));
                        counts.len() - 1
                    });
                    self.last_error = Some((i, status, at));
                    at
                }
            };
            self.error_counts[at].1 += 1;
            return;
        }
        let entry = self.slots[i].get_or_insert_with(|| (pdu_counter(i, from, command, 0), 0));
        if entry.1 == 0 {
            self.dirty.push(i);
        }
        entry.1 += 1;
    }

    /// How long the SMSC took to answer a request sent at `sent`: the first
    /// of each turn is recorded (and only it is worked out).
    pub(super) fn upstream_latency(&mut self, sent: Instant, now: Instant) {
        if !self.latency_sampled {
            self.latency
                .record(now.saturating_duration_since(sent).as_secs_f64());
            self.latency_sampled = true;
        }
    }

    /// Hand the pending counts to the registry.
    pub(super) fn flush(&mut self) {
        self.latency_sampled = false;
        for i in self.dirty.drain(..) {
            if let Some((counter, pending)) = &mut self.slots[i] {
                counter.increment(*pending);
                *pending = 0;
            }
        }
        for (counter, pending) in &mut self.error_counts {
            if *pending > 0 {
                counter.increment(*pending);
                *pending = 0;
            }
        }
        if self.in_flight != 0 {
            self.in_flight_gauge.increment(self.in_flight as f64);
            self.in_flight = 0;
        }
    }
}

/// Stands for every status without a label of its own.
const OTHER_STATUS: u32 = u32::MAX;

/// The status itself when the spec defines it or it is in the SMSC vendors'
/// range 0x400–0x4FF, else [`OTHER_STATUS`]: a peer sending random statuses
/// cannot create series (or map entries) without bound.
fn labelled_status(status: u32) -> u32 {
    if status::name(status).is_some() || (0x400..=0x4FF).contains(&status) {
        status
    } else {
        OTHER_STATUS
    }
}

/// `iys_gate_smpp_pdus_total{from, command, status}` for a slot, the status
/// as the spec writes it (`0x00000401`) or `other`.
fn pdu_counter(slot: usize, from: Source, command: CommandId, status: u32) -> Counter {
    let name = if slot / (2 * Source::COUNT) == 0x24 {
        "unknown"
    } else {
        command.name()
    };
    let status = if status == OTHER_STATUS {
        "other".to_string()
    } else {
        format!("0x{status:08X}")
    };
    counter!("iys_gate_smpp_pdus_total", "from" => from.label(), "command" => name, "status" => status)
}

impl Drop for SessionCounts {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_its_own_slot_per_source() {
        let ids = [
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0B, 0x15, 0x21, 0x102, 0x103,
        ];
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            for resp in [0, 0x8000_0000u32] {
                for from in [Source::Sender, Source::Smsc, Source::Gate] {
                    assert!(seen.insert(slot(from, id | resp)), "{id:#x}");
                }
            }
        }
        assert!(
            seen.insert(slot(Source::Sender, 0x8000_0000)),
            "generic_nack"
        );
        assert!(seen.iter().all(|&i| i < IDS * 2 * Source::COUNT));
        assert_eq!(
            slot(Source::Sender, 0x1234),
            slot(Source::Sender, 0x4321),
            "unknown ids share one"
        );
        assert!(slot(Source::Gate, 0xFFFF_FFFF) < IDS * 2 * Source::COUNT);
    }

    #[test]
    fn statuses_labelled_are_bounded() {
        assert_eq!(labelled_status(0x58), 0x58, "spec status");
        assert_eq!(labelled_status(0x401), 0x401, "SMSC vendor range");
        assert_eq!(labelled_status(0x0000_0100), OTHER_STATUS);
        assert_eq!(labelled_status(0xDEAD_BEEF), OTHER_STATUS);
        let mut counts = SessionCounts::new();
        for st in 0x1000..0x2000 {
            counts.pdu(Source::Smsc, CommandId::SubmitSmResp, st);
        }
        assert_eq!(counts.errors.len(), 1, "random statuses share one entry");
    }

    #[test]
    fn pdu_series_are_labelled_by_status() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let mut counts = SessionCounts::new();
            counts.pdu(Source::Smsc, CommandId::SubmitSmResp, 0);
            counts.pdu(Source::Smsc, CommandId::SubmitSmResp, 0x401);
            counts.pdu(Source::Smsc, CommandId::SubmitSmResp, 0xDEAD_BEEF);
            counts.pdu(Source::Smsc, CommandId::SubmitSmResp, 0xDEAD_BEEE);
            counts.pdu(Source::Gate, CommandId::SubmitSmResp, 0x401);
            counts.pdu(Source::Gate, CommandId::SubmitSmResp, 0x401);
            counts.flush();
        });
        let text = handle.render();
        let series = |status: &str| {
            format!("iys_gate_smpp_pdus_total{{from=\"smsc\",command=\"submit_sm_resp\",status=\"{status}\"}}")
        };
        for (status, n) in [("0x00000000", 1), ("0x00000401", 1), ("other", 2)] {
            assert!(
                text.contains(&format!("{} {n}", series(status))),
                "{status}: {text}"
            );
        }
        assert!(!text.contains("DEADBEE"), "{text}");
        let gate = "iys_gate_smpp_pdus_total{from=\"gate\",command=\"submit_sm_resp\",status=\"0x00000401\"} 2";
        assert!(text.contains(gate), "the gate's own answers: {text}");
    }
}
