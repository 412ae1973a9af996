//! The domain: İYS vocabulary, address normalisation, dates and records. No I/O
//! beyond reading CSV from a caller's reader.

pub mod address;
pub mod model;
pub mod record;
pub mod time;

pub use address::{
    address_key, mask_into, mask_text, Address, AddressError, AddressKey, Email, Phone,
};
pub use model::{Brand, Channel, InvalidValue, MessageClass, RecipientType, Source, Status};
pub use record::{ConsentRecord, CsvError, CsvReader, RecordError, CSV_HEADER};
pub use time::{ConsentTime, EARLIEST};
