//! Snapshot reader: hostile bytes are refused or give a snapshot that answers
//! every lookup without panicking and re-encodes to something readable.
#![no_main]
use iys_gate::consent::{AddressKey, Brand, Channel, RecipientType};
use iys_gate::store::file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The body parser directly (the checksum would stop almost every input).
    let _ = file::from_bytes(data);
    if let Ok(s) = file::parse_body(data) {
        for b in s.brands() {
            for key in [AddressKey::TrPhone(0), AddressKey::TrPhone(u32::MAX), AddressKey::Email(7), AddressKey::ForeignPhone(1)] {
                for ch in Channel::ALL {
                    let _ = s.find(b, *ch, RecipientType::Bireysel, key, Some(1));
                }
            }
        }
        let _ = s.tuples_per_channel();
        let bytes = file::to_bytes(&s);
        file::from_bytes(&bytes).expect("a re-encoded snapshot reads back");
        let _ = Brand::new(0, 0);
    }
});
