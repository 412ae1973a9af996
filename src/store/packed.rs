//! TEMPORARY stand-in with the agreed API (sorted Vec); replaced by the packed set.

/// Input ids were not strictly increasing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ids not strictly increasing")]
pub struct NotSorted;

/// A serialized set that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad set: {0}")]
pub struct SetDecodeError(&'static str);

/// An immutable set of u32.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedSet(Vec<u32>);

impl PackedSet {
    pub fn from_sorted(ids: &[u32]) -> Result<PackedSet, NotSorted> {
        if ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(NotSorted);
        }
        Ok(PackedSet(ids.to_vec()))
    }
    pub fn from_unsorted(mut ids: Vec<u32>) -> PackedSet {
        ids.sort_unstable();
        ids.dedup();
        PackedSet(ids)
    }
    pub fn contains(&self, id: u32) -> bool {
        self.0.binary_search(&id).is_ok()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }
    pub fn heap_bytes(&self) -> usize {
        self.0.capacity() * 4
    }
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.0.len() as u64).to_le_bytes());
        for v in &self.0 {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    pub fn read_from(bytes: &[u8]) -> Result<(PackedSet, usize), SetDecodeError> {
        let n = u64::from_le_bytes(
            bytes
                .get(..8)
                .ok_or(SetDecodeError("eof"))?
                .try_into()
                .map_err(|_| SetDecodeError("eof"))?,
        ) as usize;
        let body = bytes
            .get(8..8 + n.checked_mul(4).ok_or(SetDecodeError("len"))?)
            .ok_or(SetDecodeError("eof"))?;
        let v: Vec<u32> = body
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let s = PackedSet::from_sorted(&v).map_err(|_| SetDecodeError("order"))?;
        Ok((s, 8 + n * 4))
    }
    pub fn merge(&self, add: &[u32], remove: &[u32]) -> PackedSet {
        let mut v: Vec<u32> = self
            .0
            .iter()
            .copied()
            .filter(|x| remove.binary_search(x).is_err())
            .collect();
        v.extend_from_slice(add);
        PackedSet::from_unsorted(v)
    }
}
