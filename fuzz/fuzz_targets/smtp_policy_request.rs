//! Postfix policy requests: the codec never panics on any octets; a request
//! read in two pieces gives "need more" or the same result as the whole; what
//! it reads lies inside the request it says it used (which ends with a
//! newline), and no value holds a newline; answers parse without panicking.
#![no_main]
use iys_gate::smtp::codec::policy::{parse, parse_answer, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first octet picks a small limit sometimes, so the limits are reached.
    let limits = match data.first() {
        Some(&b) if b & 1 == 1 => Limits {
            max_size: 1024 + usize::from(b) * 4,
            max_lines: 1 + usize::from(b % 64),
        },
        _ => Limits::default(),
    };
    let whole = parse(data, &limits);
    if let Ok(Some((req, used))) = &whole {
        assert!(*used <= data.len() && *used >= 2);
        assert_eq!(data[*used - 1], b'\n');
        assert!(req.attributes >= 1);
        for v in [
            req.request,
            req.protocol_state,
            req.recipient,
            req.sender,
            req.client_address,
            req.sasl_username,
            req.instance,
            req.policy_context,
        ]
        .into_iter()
        .flatten()
        {
            assert!(!v.contains('\n'));
        }
    }
    // Split reads: a prefix is "need more" or already the whole's result.
    for cut in [data.len() / 2, data.len() / 3, data.len().saturating_sub(1)] {
        let part = parse(&data[..cut], &limits);
        assert!(part == Ok(None) || part == whole, "cut {cut}: {part:?} vs {whole:?}");
    }
    // Pipelined: read request after request until none is whole.
    let mut rest = data;
    while let Ok(Some((_, used))) = parse(rest, &limits) {
        rest = &rest[used..];
    }
    let mut rest = data;
    while let Ok(Some((_, used))) = parse_answer(rest) {
        rest = &rest[used..];
    }
});
