//! The DATA reader: whatever the text and however it is cut into chunks, it
//! never panics, ends only at `<CRLF>.<CRLF>`, and (not stripping) relays
//! exactly the octets before the final `.<CRLF>`, dot-stuffing included.

#![no_main]

use iys_gate::smtp::codec::data::{DataReader, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, msg)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut % 16) + 1;
    let strip = cut & 0x80 != 0;
    let mut r = DataReader::new(1 << 20, 1000, strip);
    let mut out = Vec::new();
    let mut at = 0;
    let mut ended = false;
    'outer: while at < msg.len() {
        let end = (at + chunk).min(msg.len());
        let mut piece = &msg[at..end];
        while !piece.is_empty() {
            let (n, step) = r.feed(piece, &mut out);
            assert!(n <= piece.len());
            at += n;
            piece = &piece[n..];
            if step == Step::End {
                ended = true;
                break 'outer;
            }
        }
    }
    if ended {
        // The end is exactly <CRLF>.<CRLF> (the first CRLF may be DATA's own).
        assert!(msg[..at].ends_with(b".\r\n"));
        assert!(at == 3 || msg[..at].ends_with(b"\r\n.\r\n"));
        if !strip {
            assert_eq!(out, &msg[..at - 3]);
        } else {
            assert!(out.len() <= at - 3);
        }
        assert_eq!(r.size(), at - 3);
    } else {
        assert_eq!(at, msg.len());
        let _ = (r.smuggling(), r.too_big(), r.line_too_long(), r.iys());
    }
});
