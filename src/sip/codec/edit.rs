//! Forwarding by edits: the original bytes with a few ranges replaced, cut
//! or inserted, applied while writing (Kamailio's "lumps"). Nothing else of
//! the message changes.

use thiserror::Error;

use super::scan::Span;

/// One edit: replace `span` of the original with `text` of the edit list's
/// text buffer (an insert has an empty span, a cut an empty text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edit {
    span: Span,
    text: (usize, usize),
}

/// Edits that overlap: a bug in the caller, never the peer's doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("edits overlap at byte {0}")]
pub struct EditError(pub usize);

/// A short list of edits to one message, kept in order of position (edits at
/// the same position apply in the order they were added). Reusable: `clear`
/// keeps the allocations.
#[derive(Debug, Clone, Default)]
pub struct Edits {
    list: Vec<Edit>,
    text: Vec<u8>,
}

impl Edits {
    /// No edits.
    pub fn new() -> Edits {
        Edits::default()
    }

    /// Forget every edit.
    pub fn clear(&mut self) {
        self.list.clear();
        self.text.clear();
    }

    /// No edits at all: the message goes out as it came.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Insert `bytes` before byte `at`.
    pub fn insert(&mut self, at: usize, bytes: &[u8]) {
        self.replace(Span::new(at, at), bytes);
    }

    /// Insert what `write` appends, before byte `at`.
    pub fn insert_with(&mut self, at: usize, write: impl FnOnce(&mut Vec<u8>)) {
        self.replace_with(Span::new(at, at), write);
    }

    /// Cut `span`.
    pub fn remove(&mut self, span: Span) {
        self.replace(span, b"");
    }

    /// Replace `span` with `bytes`.
    pub fn replace(&mut self, span: Span, bytes: &[u8]) {
        self.replace_with(span, |t| t.extend_from_slice(bytes));
    }

    /// Replace `span` with what `write` appends.
    pub fn replace_with(&mut self, span: Span, write: impl FnOnce(&mut Vec<u8>)) {
        let from = self.text.len();
        write(&mut self.text);
        let edit = Edit {
            span,
            text: (from, self.text.len()),
        };
        let at = self
            .list
            .iter()
            .rposition(|e| e.span.start <= span.start)
            .map_or(0, |i| i + 1);
        self.list.insert(at, edit);
    }

    /// How many bytes the edits add (negative: remove).
    pub fn delta(&self) -> isize {
        self.list
            .iter()
            .map(|e| (e.text.1 - e.text.0) as isize - e.span.len() as isize)
            .sum()
    }
}

/// Append `original` with `edits` applied to `out`.
pub fn write_edited(original: &[u8], edits: &Edits, out: &mut Vec<u8>) -> Result<(), EditError> {
    out.reserve(original.len().saturating_add_signed(edits.delta().max(0)));
    let mut pos = 0;
    for e in &edits.list {
        if e.span.start < pos || e.span.end > original.len() || e.span.end < e.span.start {
            return Err(EditError(e.span.start));
        }
        out.extend_from_slice(&original[pos..e.span.start]);
        out.extend_from_slice(&edits.text[e.text.0..e.text.1]);
        pos = e.span.end;
    }
    out.extend_from_slice(&original[pos..]);
    Ok(())
}
