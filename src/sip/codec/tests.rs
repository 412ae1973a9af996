//! Scanner tests on raw messages: the examples of RFC 3261 and short versions
//! of the classic RFC 4475 torture cases (written here, not copied), split
//! reads on a stream, and forwarding by edits.

use super::uri::{self, UriError};
use super::*;
use crate::consent::Phone;

const MAX: usize = 65535;

fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

/// RFC 3261 §24.2 style INVITE (Alice to Bob via atlanta's proxy).
fn invite() -> Vec<u8> {
    crlf(
        "INVITE sip:05300000001@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8
Max-Forwards: 70
To: Bob <sip:05300000001@biloxi.example.com>
From: Alice <sip:+905320000000@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>
X-IYS-Message-Type: 11
Content-Type: application/sdp
Content-Length: 5

v=0
",
    )
}

fn text(buf: &[u8], s: Span) -> &str {
    std::str::from_utf8(s.of(buf)).unwrap()
}

#[test]
fn an_invite_gives_every_field_the_gate_needs() {
    let b = invite();
    let m = scan(&b, MAX).unwrap();
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(
        text(&b, m.uri().unwrap()),
        "sip:05300000001@biloxi.example.com"
    );
    assert_eq!(text(&b, m.top_via.transport), "UDP");
    assert_eq!(text(&b, m.top_via.host), "pc33.atlanta.example.com");
    assert_eq!(m.top_via.port, None);
    assert_eq!(text(&b, m.top_via.branch.unwrap()), "z9hG4bKnashds8");
    assert_eq!(m.second_via, None);
    assert_eq!(m.max_forwards.map(|(n, _)| n), Some(70));
    assert_eq!(text(&b, m.from_tag.unwrap()), "1928301774");
    assert_eq!(m.to_tag, None);
    assert_eq!(
        text(&b, m.call_id),
        "a84b4c76e66710@pc33.atlanta.example.com"
    );
    assert_eq!(m.cseq, 314159);
    assert_eq!(text(&b, m.cseq_method), "INVITE");
    assert_eq!(m.content_length, Some(5));
    assert_eq!(text(&b, m.body), "v=0\n".replace('\n', "\r\n"));
    assert_eq!(text(&b, m.iys.message_type.unwrap()), "11");
    assert_eq!(m.iys.count, 1);
    assert_eq!(m.end(), b.len());
    assert_eq!(
        uri::phone(m.uri().unwrap().of(&b)).unwrap(),
        Phone::parse("+905300000001").unwrap()
    );
    assert_eq!(
        uri::phone(uri::addr_uri(m.from.of(&b))).unwrap(),
        Phone::parse("+905320000000").unwrap()
    );
}

#[test]
fn a_response_with_two_vias_in_one_field() {
    let b = crlf(
        "SIP/2.0 180 Ringing
Via: SIP/2.0/UDP gate.example;branch=z9hG4bKgate1 , SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa;received=192.0.2.7;rport=6000
To: <sip:05300000001@b.example>;tag=xyz
From: <sip:a@a.example>;tag=abc
Call-ID: c1
CSeq: 1 INVITE
Content-Length: 0

",
    );
    let m = scan(&b, MAX).unwrap();
    assert_eq!(m.code(), Some(180));
    assert_eq!(text(&b, m.top_via.branch.unwrap()), "z9hG4bKgate1");
    let second = m.second_via.unwrap();
    assert_eq!(text(&b, second.host), "10.0.0.1");
    assert_eq!(second.port, Some(5070));
    assert_eq!(text(&b, second.received.unwrap()), "192.0.2.7");
    assert_eq!(second.rport, Some(Some(6000)));
    assert_eq!(text(&b, m.to_tag.unwrap()), "xyz");
    // Cutting the top via-parm leaves the second one as the field's value.
    let mut e = Edits::new();
    e.remove(m.top_via_cut);
    let mut out = Vec::new();
    write_edited(&b, &e, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("\r\nVia: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa;received"),
        "{out}"
    );
}

#[test]
fn repeated_via_fields_and_a_lone_top_via_is_cut_as_a_line() {
    let b = crlf(
        "SIP/2.0 200 OK
Via: SIP/2.0/TCP gate.example:5060;branch=z9hG4bKg
Via: SIP/2.0/UDP [2001:db8::9]:5080;branch=z9hG4bKb;rport
t: <sip:b@b.example>;tag=1
f: <sip:a@a.example>;tag=2
i: c2
CSeq: 7 OPTIONS
l: 0

",
    );
    let m = scan(&b, MAX).unwrap();
    let second = m.second_via.unwrap();
    assert_eq!(text(&b, second.host), "[2001:db8::9]");
    assert_eq!(second.port, Some(5080));
    assert_eq!(second.rport, Some(None));
    let mut e = Edits::new();
    e.remove(m.top_via_cut);
    let mut out = Vec::new();
    write_edited(&b, &e, &mut out).unwrap();
    assert!(out.starts_with(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP [2001:db8::9]"));
}

/// RFC 4475 §3.1.1.1 in spirit: odd case, compact names, whitespace before
/// colons and around the Via slashes, folded lines, unknown fields, a comma
/// inside a quoted Via parameter.
#[test]
fn a_tortuous_but_valid_invite() {
    let b = crlf(
        "\n\nINVITE sip:0530-000-0001@example.net;user=phone SIP/2.0
TO :
 sip:0530-000-0001@example.net ;   tag    = 1918181833n
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: 0ha0isndaksdj@192.0.2.1
Content-Length   : 3
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239;comment=\"a,b\"
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

v=0",
    );
    let m = scan(&b, MAX).unwrap();
    assert_eq!(m.start, 4);
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(text(&b, m.top_via.host), "192.0.2.2");
    assert_eq!(text(&b, m.top_via.branch.unwrap()), "390skdjuw");
    assert_eq!(text(&b, m.second_via.unwrap().host), "spindle.example.com");
    assert_eq!(
        text(&b, m.second_via.unwrap().branch.unwrap()),
        "z9hG4bK9ikj8"
    );
    assert_eq!(m.max_forwards.map(|(n, _)| n), Some(68));
    assert_eq!(text(&b, m.to_tag.unwrap()), "1918181833n");
    assert_eq!(text(&b, m.from_tag.unwrap()), "98asjd8");
    assert_eq!(m.cseq, 9);
    assert_eq!(text(&b, m.cseq_method), "INVITE");
    assert_eq!(text(&b, m.body), "v=0");
    assert_eq!(
        uri::phone(m.uri().unwrap().of(&b)).unwrap(),
        Phone::parse("05300000001").unwrap()
    );
}

#[test]
fn each_broken_message_names_its_field() {
    let base = String::from_utf8(invite()).unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n",
            "",
            "Call-ID",
        ),
        ("CSeq: 314159 INVITE", "CSeq: 314159 BYE", "CSeq"),
        ("CSeq: 314159 INVITE", "CSeq: -1 INVITE", "CSeq"),
        ("CSeq: 314159 INVITE", "CSeq: 314159INVITE", "CSeq"),
        ("Content-Length: 5", "Content-Length: 40", "Content-Length"),
        ("Content-Length: 5", "Content-Length: -5", "Content-Length"),
        ("Max-Forwards: 70", "Max-Forwards: seventy", "Max-Forwards"),
        ("SIP/2.0\r\nVia", "SIP/7.0\r\nVia", "start line"),
        ("INVITE sip:", "INVITE  sip:", "start line"),
        ("SIP/2.0/UDP pc33", "SIP/3.0/UDP pc33", "Via"),
        (
            "SIP/2.0/UDP pc33.atlanta.example.com;",
            "SIP/2.0/UDP ;",
            "Via",
        ),
        (
            "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n",
            "",
            "Via",
        ),
        ("From: Alice", "From: Alice\r\nf: x\r\nFrom: Alice", "From"),
        ("To: Bob", "Bob <sip:x>", "header section"),
        ("\r\n\r\nv=0\r\n", "\r\nv=0\r\n", "header section"),
    ];
    for (from, to, field) in cases {
        assert!(base.contains(from), "{from}");
        let b = base.replacen(from, to, 1);
        let err = scan(b.as_bytes(), MAX).expect_err(&b);
        assert_eq!(err.field(), *field, "{b}: {err}");
    }
    let err = scan(&invite(), 100).unwrap_err();
    assert!(matches!(err, ScanError::TooLarge { max: 100, .. }), "{err}");
}

#[test]
fn a_datagram_longer_than_content_length_is_cut_and_a_missing_one_takes_the_rest() {
    let mut b = invite();
    let len = b.len();
    b.extend_from_slice(b"garbage");
    assert_eq!(scan(&b, MAX).unwrap().end(), len);
    let without = String::from_utf8(invite())
        .unwrap()
        .replace("Content-Length: 5\r\n", "");
    let m = scan(without.as_bytes(), MAX).unwrap();
    assert_eq!(m.content_length, None);
    assert_eq!(m.end(), without.len());
}

#[test]
fn garbage_is_an_error_never_a_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let base = invite();
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut b = base.clone();
        let cut = (seed as usize) % b.len();
        b.truncate(cut + 1);
        let at = (seed >> 20) as usize % b.len();
        b[at] = (seed >> 40) as u8;
        let _ = scan(&b, MAX);
        let _ = frame(&b, MAX);
        let _ = uri::phone(&b[at..]);
    }
}

#[test]
fn a_stream_split_anywhere_frames_the_same_messages() {
    let one = invite();
    let two = crlf(
        "BYE sip:b@b.example SIP/2.0
v: SIP/2.0/TCP h;branch=z9hG4bK2
t: <sip:b@b.example>;tag=1
f: <sip:a@a.example>;tag=2
i: c2
CSeq: 2 BYE
l: 0

",
    );
    let mut stream = Vec::new();
    stream.extend_from_slice(&one);
    stream.extend_from_slice(b"\r\n\r\n");
    stream.extend_from_slice(&two);
    for split in 1..stream.len() {
        let mut buf: Vec<u8> = stream[..split].to_vec();
        let mut fed = split;
        let mut got = Vec::new();
        loop {
            match frame(&buf, MAX).unwrap() {
                Frame::NeedMore => {
                    if fed == stream.len() {
                        break;
                    }
                    buf.extend_from_slice(&stream[fed..]);
                    fed = stream.len();
                }
                Frame::Keepalive(n) => {
                    buf.drain(..n);
                }
                Frame::Message(n) => {
                    got.push(buf[..n].to_vec());
                    buf.drain(..n);
                }
            }
        }
        assert_eq!(got, vec![one.clone(), two.clone()], "split at {split}");
    }
}

#[test]
fn a_stream_needs_content_length_and_a_bound() {
    let no_length = crlf("OPTIONS sip:x SIP/2.0\nVia: SIP/2.0/TCP h\n\n");
    assert_eq!(
        frame(&no_length, MAX).unwrap_err().field(),
        "Content-Length"
    );
    let huge = crlf("OPTIONS sip:x SIP/2.0\nl: 999999\n\n");
    assert!(matches!(
        frame(&huge, 4096),
        Err(ScanError::TooLarge { .. })
    ));
    let mut endless = b"INVITE sip:x@y SIP/2.0\r\nX: ".to_vec();
    endless.resize(5000, b'a');
    assert!(matches!(
        frame(&endless, 4096),
        Err(ScanError::TooLarge { .. })
    ));
    assert_eq!(frame(&endless[..100], 4096).unwrap(), Frame::NeedMore);
}

#[test]
fn forwarding_edits_touch_only_what_they_name() {
    let b = invite();
    let m = scan(&b, MAX).unwrap();
    let mut e = Edits::new();
    e.insert(
        m.via_line,
        b"Via: SIP/2.0/UDP gate:5060;branch=z9hG4bKx\r\n",
    );
    let (mf, span) = m.max_forwards.unwrap();
    e.replace_with(span, |t| {
        t.extend_from_slice((mf - 1).to_string().as_bytes())
    });
    for line in m.iys.lines() {
        e.remove(*line);
    }
    let mut out = Vec::new();
    write_edited(&b, &e, &mut out).unwrap();
    let expected = String::from_utf8(b.clone())
        .unwrap()
        .replace("Via:", "Via: SIP/2.0/UDP gate:5060;branch=z9hG4bKx\r\nVia:")
        .replace("Max-Forwards: 70", "Max-Forwards: 69")
        .replace("X-IYS-Message-Type: 11\r\n", "");
    assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
    assert_eq!(out.len() as isize, b.len() as isize + e.delta());
    // The result scans again, with the gate's Via on top.
    let again = scan(&out, MAX).unwrap();
    assert_eq!(text(&out, again.top_via.host), "gate");
    assert_eq!(again.iys.count, 0);
    // Overlapping edits are refused.
    let mut bad = Edits::new();
    bad.remove(Span::new(10, 20));
    bad.remove(Span::new(15, 30));
    assert!(write_edited(&b, &bad, &mut Vec::new()).is_err());
}

#[test]
fn callee_numbers_in_every_form() {
    let want = Phone::parse("+905300000001").unwrap();
    for u in [
        "sip:05300000001@h",
        "sip:+905300000001@h;user=phone",
        "SIP:905300000001@h:5060",
        "sips:00905300000001@h",
        "sip:5300000001:secret@h",
        "sip:+90-530-000-00-01@h;user=phone",
        "sip:(0530)000.0001@h",
        "sip:%2B905300000001@h",
        "sip:+905300000001;npdi@h;user=phone",
        "tel:+90-530-000-0001",
        "tel:05300000001;phone-context=+90",
        "TEL:+905300000001",
    ] {
        assert_eq!(uri::phone(u.as_bytes()), Ok(want), "{u}");
    }
    assert_eq!(
        uri::phone(b"sip:alice@h").map_err(|e| matches!(e, UriError::Number(_))),
        Err(true)
    );
    assert_eq!(uri::phone(b"sip:h.example"), Err(UriError::NoUser));
    assert_eq!(uri::phone(b"mailto:a@b"), Err(UriError::Scheme));
    assert!(matches!(uri::phone(b"sip:%2@h"), Err(UriError::Escape(_))));
    assert_eq!(
        uri::addr_uri(b"\"Bob <x>\" <tel:+905300000001>;tag=1"),
        b"tel:+905300000001"
    );
    assert_eq!(
        uri::addr_uri(b"sip:+905300000001@h;tag=1"),
        b"sip:+905300000001@h"
    );
}

#[test]
fn the_gates_own_answer_copies_via_from_to_call_id_and_cseq() {
    let b = invite();
    let m = scan(&b, MAX).unwrap();
    let mut out = Vec::new();
    write_response(
        &b,
        &m,
        608,
        "Rejected",
        b"gt1",
        b"Reason: SIP;cause=608\r\n",
        &mut out,
    );
    let expected = crlf(
        "SIP/2.0 608 Rejected
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8
To: Bob <sip:05300000001@biloxi.example.com>;tag=gt1
From: Alice <sip:+905320000000@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Reason: SIP;cause=608
Content-Length: 0

",
    );
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        String::from_utf8(expected).unwrap()
    );
    let r = scan(&out, MAX).unwrap();
    assert_eq!(r.code(), Some(608));
    assert_eq!(text(&out, r.to_tag.unwrap()), "gt1");
}

#[test]
fn a_stream_that_does_not_start_like_sip_is_refused_at_once() {
    assert_eq!(frame(&[0xff; 10], MAX).unwrap_err().field(), "start line");
    assert_eq!(frame(&[b'A'; 40], MAX).unwrap_err().field(), "start line");
    assert_eq!(frame(b" INVITE", MAX).unwrap_err().field(), "start line");
    assert_eq!(frame(b"INVI", MAX).unwrap(), Frame::NeedMore);
    assert_eq!(frame(b"SIP/2.0 200", MAX).unwrap(), Frame::NeedMore);
}
