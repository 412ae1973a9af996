//! Called and calling numbers from URIs: never panic; a number found in a
//! URI is a number `Phone` accepts, and the same number written as a tel:
//! URI or a sip: URI with user=phone reads back the same.
#![no_main]
use iys_gate::consent::Phone;
use iys_gate::sip::codec::uri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = uri::user_part(data);
    let inner = uri::addr_uri(data);
    let _ = uri::phone(inner);
    if let Ok(p) = uri::phone(data) {
        assert_eq!(Phone::parse(&p.to_string()), Ok(p));
        assert_eq!(uri::phone(format!("tel:{p}").as_bytes()), Ok(p));
        assert_eq!(uri::phone(format!("sip:{p}@h;user=phone").as_bytes()), Ok(p));
    }
});
