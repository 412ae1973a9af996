//! Registry JSON (change pages, consent bodies, webhook pushes, movement
//! files, dealer-access pages): arbitrary
//! bytes never panic; what parses converts to a record or a named error.
#![no_main]
use iys_gate::consent::Brand;
use iys_gate::registry::api::{
    ChangesPage, ConsentBody, ErrorBody, MovementFile, RetailerAccessPage, TokenResponse,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = serde_json::from_slice::<ChangesPage>(data) {
        for c in &page.list {
            let _ = c.to_record(Brand::new(1, 1));
        }
    }
    if let Ok(body) = serde_json::from_slice::<ConsentBody>(data) {
        if let Ok(r) = body.to_record(Brand::new(1, 1)) {
            assert_eq!(ConsentBody::from_record(&r).to_record(Brand::new(1, 1)), Ok(r));
        }
    }
    let _ = iys_gate::sync::push::parse(data);
    let _ = serde_json::from_slice::<ErrorBody>(data);
    let _ = serde_json::from_slice::<TokenResponse>(data);
    // The reconciliation's movement files and dealer-access pages.
    if let Ok(file) = serde_json::from_slice::<MovementFile>(data) {
        for c in &file.list {
            let _ = c.to_record(Brand::new(1, 1));
        }
    }
    let _ = serde_json::from_slice::<RetailerAccessPage>(data);
});
