//! Fleet stream entries (JSON read from NATS JetStream): arbitrary bytes
//! never panic; what decodes encodes and decodes again to the same entry.
#![no_main]
use iys_gate::fleet::entry::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::decode(data) {
        let again = Entry::decode(&entry.encode()).expect("an encoded entry decodes");
        assert_eq!(again, entry);
    }
});
