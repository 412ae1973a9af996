//! Address normalisation: never panics; normalising a normalised address is
//! the identity; the allocation-free key equals the parsed key.
#![no_main]
use iys_gate::consent::{address_key, Address, Channel, Email, Phone};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = Phone::parse(text) {
        assert_eq!(Phone::parse(&p.to_string()), Ok(p));
        assert_eq!(address_key(Channel::Mesaj, text), Ok(p.key()));
    }
    if let Ok(e) = Email::parse(text) {
        assert_eq!(Email::parse(e.as_str()).as_ref(), Ok(&e));
        assert_eq!(Email::key_of(text), Ok(e.key()));
    }
    for ch in [Channel::Mesaj, Channel::Eposta] {
        if let Ok(a) = Address::parse_for(ch, text) {
            let _ = a.masked();
        }
    }
    let _ = iys_gate::consent::mask_text(text);
});
