//! SMTP command and reply codecs: line splitting, command parsing, reply
//! parsing and EHLO capabilities never panic; a parsed MAIL/RCPT address and
//! parameters are slices of the line; a complete reply's length is within
//! the input and ends at a line end.

#![no_main]

use iys_gate::smtp::codec::command::{parse, split_line, Command, Line};
use iys_gate::smtp::codec::reply;
use libfuzzer_sys::fuzz_target;

fn within(outer: &[u8], inner: &str) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

fuzz_target!(|data: &[u8]| {
    let max = 64 + usize::from(data.first().copied().unwrap_or(0)) * 4;
    let mut rest = data;
    while !rest.is_empty() {
        match split_line(rest, max) {
            Line::Complete(n) => {
                assert!(n <= max && n <= rest.len() && rest[n - 1] == b'\n');
                let line = &rest[..n];
                match parse(line) {
                    Ok(Command::Mail(m)) => {
                        assert!(within(line, m.address) && within(line, m.params));
                    }
                    Ok(Command::Rcpt(r)) => {
                        assert!(!r.address.is_empty());
                        assert!(within(line, r.address) && within(line, r.params));
                    }
                    Ok(c) => {
                        let _ = c.verb();
                    }
                    Err(e) => {
                        let (code, _) = e.code();
                        assert!((500..=555).contains(&code));
                        let _ = e.to_string();
                    }
                }
                rest = &rest[n..];
            }
            Line::NeedMore => {
                let _ = parse(rest);
                break;
            }
            Line::TooLong => {
                assert!(rest.len() >= max);
                break;
            }
        }
    }
    match reply::parse(data) {
        Ok(Some(v)) => {
            assert!(v.len <= data.len() && data[v.len - 1] == b'\n');
            assert!((200..600).contains(&v.code));
            let _ = reply::Capabilities::from_ehlo(&data[..v.len]);
        }
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
