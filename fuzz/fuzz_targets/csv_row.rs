//! CSV export reader: arbitrary bytes give records or errors with line
//! numbers, never a panic; every record re-serialises and re-parses equal.
#![no_main]
use iys_gate::consent::{ConsentRecord, CsvReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = b"iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n".to_vec();
    input.extend_from_slice(data);
    for item in CsvReader::new(&input[..]).take(1000) {
        if let Ok(record) = item {
            let row = record.to_csv_row();
            let again = ConsentRecord::from_csv_fields(row.split(',')).expect("a written row parses");
            assert_eq!(again, record);
        }
    }
});
