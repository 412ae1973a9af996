//! What can be wrong with a SIP message: which field, and what.

use thiserror::Error;

/// A message the scanner refuses. `field` is the header name (canonical
/// long form), `start line`, `header section` or `body`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScanError {
    /// Bigger than the configured maximum.
    #[error("message is at least {size} bytes long: at most {max} are allowed")]
    TooLarge {
        /// Bytes seen (a lower bound on a stream).
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A field that is missing, repeated or unreadable.
    #[error("{field}: {problem}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl ScanError {
    /// The field at fault (`"message"` for a size error).
    pub fn field(&self) -> &'static str {
        match self {
            ScanError::TooLarge { .. } => "message",
            ScanError::Field { field, .. } => field,
        }
    }
}

/// Shorthand for a field error.
pub(crate) fn bad<T>(field: &'static str, problem: &'static str) -> Result<T, ScanError> {
    Err(ScanError::Field { field, problem })
}
