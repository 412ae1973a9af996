//! The SIP scanner and framer: never panic; every span lies inside the
//! buffer; a framed message scans the same as the bytes it covers; forwarding
//! edits (the gate's Via, Max-Forwards, the İYS cut, the own-Via cut of a
//! response) always apply and the result scans again with the same
//! Call-ID and CSeq.
#![no_main]
use iys_gate::sip::codec::{frame, scan, write_edited, write_response, Edits, Frame, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Frame::Message(n)) = frame(data, 65535) {
        assert!(n <= data.len());
    }
    let Ok(m) = scan(data, 65535) else { return };
    assert!(m.end() <= data.len() && m.headers_end <= m.body.start);
    for s in [m.from, m.to, m.call_id, m.top_via.value, m.top_via_cut, m.body] {
        assert!(s.start <= s.end && s.end <= data.len());
    }
    let mut e = Edits::new();
    match m.kind {
        Kind::Request { .. } => {
            e.insert(m.via_line, b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKiys0\r\n");
            match m.max_forwards {
                Some((n, span)) => e.replace(span, n.saturating_sub(1).to_string().as_bytes()),
                None => e.insert(m.via_line, b"Max-Forwards: 70\r\n"),
            }
            for line in m.iys.lines() {
                e.remove(*line);
            }
        }
        Kind::Response { .. } => e.remove(m.top_via_cut),
    }
    let msg = &data[..m.end()];
    let mut out = Vec::new();
    write_edited(msg, &e, &mut out).expect("the gate's edits never overlap");
    if m.start == 0 {
        if let Ok(again) = scan(&out, 1 << 20) {
            assert_eq!(again.call_id.of(&out), m.call_id.of(msg));
            assert_eq!(again.cseq, m.cseq);
        }
    }
    if let Kind::Request { .. } = m.kind {
        let mut answer = Vec::new();
        write_response(msg, &m, 608, "Rejected", b"tag", b"", &mut answer);
        let r = scan(&answer, 1 << 20).expect("the gate's own answer scans");
        assert_eq!(r.code(), Some(608));
    }
});
