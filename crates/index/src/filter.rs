//! Allow-sets: the filter every `search` takes, applied inside the search.
//!
//! A filter is a set of the internal ids that may be returned. Indexes consult it while
//! they search (not afterwards), so a filtered search still returns `k` hits whenever `k`
//! allowed documents exist.

use roaring::RoaringBitmap;

/// The ids a filtered search may return. `None` in a `search` call means "every id".
pub type AllowSet = RoaringBitmap;

/// Whether `id` passes an optional filter.
#[inline]
pub(crate) fn allowed(filter: Option<&AllowSet>, id: crate::DocId) -> bool {
    filter.is_none_or(|set| set.contains(id))
}
