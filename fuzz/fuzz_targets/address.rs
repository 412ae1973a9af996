//! Address normalisation: never panics; normalising a normalised address is
//! the identity; the allocation-free key equals the parsed key; octets parse
//! as their text does.
#![no_main]
use iys_gate::consent::{address_key, Address, Channel, Email, Phone};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The octet path (SMPP address fields) accepts what the text path accepts.
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(Phone::parse_octets(data, false), Phone::parse(text));
        assert_eq!(Phone::parse_octets(data, true), Phone::parse_international(text));
    } else {
        assert!(Phone::parse_octets(data, false).is_err());
    }
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
