//! The SMPP tools against each other: the load generator drives the sink directly
//! and through the plain TCP relay, receipts come back, and answers are counted by
//! status and message class as a user of the report reads them.

use std::time::Duration;

use bytes::BytesMut;
use iys_gate::smpp::codec::{status, tag, Bind, Body, COctetString, Pdu, SubmitSmResp, TlvRead};
use iys_gate::smpp::tools::conn::{self, FrameBuf};
use iys_gate::smpp::tools::loadgen::{
    run_load, BindMode, LoadConfig, LoadReport, MessageClass, Stop,
};
use iys_gate::smpp::tools::{relay, sink};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind a port")
}

async fn start_sink(receipts: bool) -> sink::SinkHandle {
    let config = sink::SinkConfig {
        receipts,
        ..sink::SinkConfig::default()
    };
    sink::spawn(listener().await, config).await
}

fn load(target: String, sessions: usize, window: usize, messages: u64) -> LoadConfig {
    LoadConfig {
        target,
        sessions,
        window,
        stop: Stop::Messages(messages),
        ..LoadConfig::default()
    }
}

/// Everything answered ESME_ROK, every class present, totals consistent.
fn assert_all_ok(report: &LoadReport, messages: u64) {
    assert_eq!(report.sent, messages, "{report}");
    assert_eq!(report.messages, messages, "{report}");
    assert_eq!(report.status(status::ESME_ROK), messages, "{report}");
    assert_eq!(report.statuses.len(), 1, "only ESME_ROK: {report}");
    assert_eq!(report.unexpected, 0, "{report}");
    let per_class: u64 = MessageClass::ALL
        .iter()
        .map(|c| report.class_status(*c, status::ESME_ROK))
        .sum();
    assert_eq!(per_class, messages);
    for c in MessageClass::ALL {
        assert!(report.class_status(c, status::ESME_ROK) > 0, "no {c:?}");
    }
    assert!(
        report.msgs_per_sec > 0.0 && report.seconds > 0.0,
        "{report}"
    );
    let l = report.latency_us;
    assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max, "{l:?}");
    assert!(l.max > 0, "{l:?}");
}

/// The sink saw what the load generator sent: the binds, the submits, the tags.
fn assert_sink_saw(sink: &sink::SinkHandle, sessions: u64, messages: u64) {
    let counts = sink.stats().counts();
    assert_eq!(counts.binds, sessions, "{counts:?}");
    assert_eq!(counts.unbinds, sessions, "{counts:?}");
    assert_eq!(counts.submit_sm, messages, "{counts:?}");
    assert_eq!(counts.rejected, 0, "{counts:?}");
    let recent = sink.stats().recent();
    assert_eq!(recent.len(), 1024.min(messages as usize));
    for r in &recent {
        assert_eq!(r.system_id, "load");
        assert_eq!(r.destination.len(), 12, "{r:?}");
        let iys: Vec<&[u8]> = r
            .tlvs
            .iter()
            .filter(|(t, _)| *t == tag::IYS_MESSAGE_TYPE)
            .map(|(_, v)| v.as_slice())
            .collect();
        match iys.as_slice() {
            [b"11"] => assert!(
                r.destination.starts_with("90532") || r.destination.starts_with("90555"),
                "{r:?}"
            ),
            [b"0"] => assert!(r.destination.starts_with("90555"), "{r:?}"),
            other => panic!("iys_message_type {other:?} in {r:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_to_sink_direct() {
    let sink = start_sink(false).await;
    let report = run_load(load(sink.local_addr().to_string(), 2, 8, 2000))
        .await
        .expect("load run");
    assert_all_ok(&report, 2000);
    assert_eq!(report.receipts, 0);
    assert_sink_saw(&sink, 2, 2000);
    let line = report.to_string();
    assert!(line.starts_with("2000 messages in "), "{line}");
    assert!(line.contains("0x00000000 (ESME_ROK)=2000"), "{line}");
    let json = report.to_json();
    assert_eq!(json["statuses"]["0x00000000"], 2000);
    assert_eq!(json["messages"], 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_through_relay_to_sink() {
    let sink = start_sink(false).await;
    let relay = relay::spawn(listener().await, sink.local_addr().to_string()).await;
    let report = run_load(load(relay.local_addr().to_string(), 2, 8, 2000))
        .await
        .expect("load run");
    assert_all_ok(&report, 2000);
    assert_sink_saw(&sink, 2, 2000);
    assert_eq!(relay.connections(), 2);
    assert_eq!(sink.stats().counts().connections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transceiver_sessions_receive_their_receipts() {
    let sink = start_sink(true).await;
    let cfg = LoadConfig {
        bind: BindMode::Transceiver,
        receipts: true,
        ..load(sink.local_addr().to_string(), 2, 8, 600)
    };
    let report = run_load(cfg).await.expect("load run");
    assert_all_ok(&report, 600);
    assert_eq!(report.receipts, 600, "{report}");
    assert_eq!(report.other_deliver_sm, 0);
    let counts = sink.stats().counts();
    assert_eq!(counts.receipts_sent, 600, "{counts:?}");
    assert_eq!(counts.deliver_sm_resps, 600, "{counts:?}");
    assert!(sink
        .stats()
        .recent()
        .iter()
        .all(|r| r.registered_delivery == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_receipts_asked_none_are_sent() {
    let sink = start_sink(true).await;
    let cfg = LoadConfig {
        bind: BindMode::Transceiver,
        ..load(sink.local_addr().to_string(), 1, 8, 200)
    };
    let report = run_load(cfg).await.expect("load run");
    assert_all_ok(&report, 200);
    assert_eq!(report.receipts, 0);
    assert_eq!(sink.stats().counts().receipts_sent, 0);
}

/// A transmitter's receipts go to a receiver session of the same account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_for_a_transmitter_go_to_a_receiver_of_the_same_account() {
    let sink = start_sink(true).await;
    let mut rx = conn::connect(sink.local_addr()).await.unwrap();
    let mut frames = FrameBuf::new(4096);
    let bind = Bind {
        system_id: COctetString::copy_from(b"load").unwrap(),
        password: COctetString::copy_from(b"load").unwrap(),
        interface_version: 0x34,
        ..Bind::default()
    };
    let resp = conn::exchange(
        &mut rx,
        &mut frames,
        &Pdu::new(1, Body::BindReceiver(bind)),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(resp.command_status, status::ESME_ROK);
    let Body::BindReceiverResp(Some(b)) = &resp.body else {
        panic!("{resp:?}");
    };
    assert_eq!(b.system_id.as_bytes(), b"sink");

    let receiver = tokio::spawn(async move {
        let mut ids = Vec::new();
        while ids.len() < 300 {
            while let Some(frame) = frames.next_frame().unwrap() {
                let pdu = Pdu::decode_bytes(frame).unwrap();
                let Body::DeliverSm(d) = &pdu.body else {
                    panic!("{pdu:?}");
                };
                assert_eq!(d.esm_class, 0x04);
                assert!(d.short_message.starts_with(b"id:"));
                assert!(d.destination_addr.as_bytes() == b"LOADTEST");
                ids.push(d.tlvs.receipted_message_id().unwrap().unwrap().to_vec());
                let mut out = BytesMut::new();
                Pdu {
                    command_status: 0,
                    sequence_number: pdu.sequence_number,
                    body: Body::DeliverSmResp(Some(SubmitSmResp::default())),
                }
                .encode(&mut out);
                rx.write_all(&out).await.unwrap();
            }
            if ids.len() < 300 {
                assert!(rx.read_buf(frames.read_space()).await.unwrap() > 0);
            }
        }
        ids
    });
    let cfg = LoadConfig {
        receipts: true,
        ..load(sink.local_addr().to_string(), 1, 8, 300)
    };
    let report = run_load(cfg).await.expect("load run");
    assert_all_ok(&report, 300);
    let mut ids = tokio::time::timeout(Duration::from_secs(5), receiver)
        .await
        .unwrap_or_else(|_| panic!("receipts missing: {:?}", sink.stats().counts()))
        .unwrap();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300, "one receipt per message, distinct ids");
    assert_eq!(sink.stats().counts().receipts_unroutable, 0);
}

/// A stand-in gate that refuses commercial messages to 90555… with 0x401: the
/// report shows the refusals per class, as a user measuring a gate would read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_by_status_and_class() {
    const REFUSED: u32 = 0x0000_0401;
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut frames = FrameBuf::new(4096);
                loop {
                    if s.read_buf(frames.read_space()).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut out = BytesMut::new();
                    while let Some(frame) = frames.next_frame().unwrap() {
                        let pdu = Pdu::decode_bytes(frame).unwrap();
                        let seq = pdu.sequence_number;
                        let answer = match &pdu.body {
                            Body::BindTransmitter(_) => Pdu {
                                command_status: 0,
                                sequence_number: seq,
                                body: Body::BindTransmitterResp(None),
                            },
                            Body::SubmitSm(sm) => {
                                let commercial =
                                    sm.tlvs.get(tag::IYS_MESSAGE_TYPE).unwrap().value()
                                        == &b"11"[..];
                                if commercial && sm.destination_addr.starts_with(b"90555") {
                                    Pdu::error_response(&pdu.header(), REFUSED)
                                } else {
                                    Pdu {
                                        command_status: 0,
                                        sequence_number: seq,
                                        body: Body::SubmitSmResp(Some(SubmitSmResp::default())),
                                    }
                                }
                            }
                            Body::Unbind => Pdu {
                                command_status: 0,
                                sequence_number: seq,
                                body: Body::UnbindResp,
                            },
                            other => panic!("{other:?}"),
                        };
                        answer.encode(&mut out);
                    }
                    s.write_all(&out).await.unwrap();
                }
            });
        }
    });
    let report = run_load(load(addr.to_string(), 2, 16, 1000))
        .await
        .expect("load run");
    assert_eq!(report.messages, 1000);
    let unconsented = report.class_status(MessageClass::Unconsented, REFUSED);
    assert!(unconsented > 100, "{report}");
    assert_eq!(
        report.class_status(MessageClass::Unconsented, status::ESME_ROK),
        0
    );
    assert_eq!(report.class_status(MessageClass::Consented, REFUSED), 0);
    assert_eq!(report.class_status(MessageClass::Informational, REFUSED), 0);
    assert_eq!(report.status(REFUSED), unconsented);
    assert_eq!(report.status(status::ESME_ROK), 1000 - unconsented);
    assert!(
        report
            .to_string()
            .contains(&format!("0x00000401={unconsented}")),
        "{report}"
    );
    assert_eq!(
        report.to_json()["classes"]["unconsented"]["0x00000401"],
        unconsented
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_runs_stop_on_time_with_everything_answered() {
    let sink = start_sink(false).await;
    let cfg = LoadConfig {
        stop: Stop::Duration(Duration::from_millis(300)),
        ..load(sink.local_addr().to_string(), 2, 8, 0)
    };
    let report = run_load(cfg).await.expect("load run");
    assert!(report.messages > 100, "{report}");
    assert_eq!(report.sent, report.messages);
    assert!(report.seconds < 2.0, "{report}");
    assert_eq!(sink.stats().counts().submit_sm, report.messages);
}

#[tokio::test]
async fn a_refused_bind_is_reported_with_its_status() {
    // A target that refuses every bind with ESME_RINVPASWD.
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut frames = FrameBuf::new(4096);
        loop {
            while let Some(frame) = frames.next_frame().unwrap() {
                let pdu = Pdu::decode_bytes(frame).unwrap();
                let mut out = BytesMut::new();
                Pdu::error_response(&pdu.header(), status::ESME_RINVPASWD).encode(&mut out);
                s.write_all(&out).await.unwrap();
            }
            if s.read_buf(frames.read_space()).await.unwrap_or(0) == 0 {
                return;
            }
        }
    });
    let err = run_load(load(addr.to_string(), 1, 8, 10))
        .await
        .expect_err("bind refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("refused bind_transmitter") && text.contains("0x0000000E (ESME_RINVPASWD)"),
        "{text}"
    );
}

/// What a proxy under test relies on: the sink refuses a submit before bind and a
/// second bind, answers enquire_link, and closes after an impossible command_length.
#[tokio::test]
async fn sink_answers_protocol_errors_like_an_smsc() {
    let sink = start_sink(false).await;
    let mut s = conn::connect(sink.local_addr()).await.unwrap();
    let mut frames = FrameBuf::new(4096);
    let wait = Duration::from_secs(5);
    let submit = Pdu::new(
        1,
        Body::SubmitSm(iys_gate::smpp::codec::SubmitSm::default()),
    );
    let resp = conn::exchange(&mut s, &mut frames, &submit, wait)
        .await
        .unwrap();
    assert_eq!(resp.command_status, status::ESME_RINVBNDSTS);
    let bind = || Body::BindTransmitter(Bind::default());
    let resp = conn::exchange(&mut s, &mut frames, &Pdu::new(2, bind()), wait)
        .await
        .unwrap();
    assert_eq!(resp.command_status, status::ESME_ROK);
    let resp = conn::exchange(&mut s, &mut frames, &Pdu::new(3, bind()), wait)
        .await
        .unwrap();
    assert_eq!(resp.command_status, status::ESME_RALYBND);
    let resp = conn::exchange(&mut s, &mut frames, &Pdu::new(4, Body::EnquireLink), wait)
        .await
        .unwrap();
    assert_eq!(resp.body, Body::EnquireLinkResp);
    let resp = conn::exchange(&mut s, &mut frames, &submit, wait)
        .await
        .unwrap();
    let Body::SubmitSmResp(Some(ok)) = &resp.body else {
        panic!("{resp:?}");
    };
    assert!(!ok.message_id.is_empty());

    // command_length 1 MiB: generic_nack ESME_RINVCMDLEN, then the sink hangs up.
    s.write_all(&[0, 0x10, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9])
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(wait, s.read_to_end(&mut rest))
        .await
        .expect("the sink closes")
        .unwrap();
    let nack = Pdu::decode(&rest).unwrap();
    assert_eq!(nack.body, Body::GenericNack);
    assert_eq!(nack.command_status, status::ESME_RINVCMDLEN);
    let counts = sink.stats().counts();
    assert_eq!((counts.binds, counts.submit_sm, counts.rejected), (1, 1, 3));
}

/// Throughput on this machine: `cargo test --release --test smpp_tools -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement; run in release"]
async fn throughput_direct_and_through_relay() {
    let sink = sink::spawn(
        listener().await,
        sink::SinkConfig {
            record_last: 0,
            ..sink::SinkConfig::default()
        },
    )
    .await;
    let relay = relay::spawn(listener().await, sink.local_addr().to_string()).await;
    for (name, target) in [
        ("direct", sink.local_addr().to_string()),
        ("relay ", relay.local_addr().to_string()),
    ] {
        let report = run_load(load(target, 4, 64, 200_000))
            .await
            .expect("load run");
        assert_eq!(report.status(status::ESME_ROK), 200_000, "{report}");
        println!("{name}: {report}");
    }
}
