//! `iys-gate audit verify` over arbitrary file contents: never panics, and
//! names a line when it refuses a file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("iys-gate-fuzz-audit-{}.jsonl", std::process::id()));
    std::fs::write(&path, data).expect("write the temp file");
    let _ = iys_gate::observe::chain::verify(std::slice::from_ref(&path));
    let _ = std::fs::remove_file(&path);
});
