//! [`Entries`]: a shared, immutable run of log entries.
//!
//! A proposal's entries are built once, in one allocation, and every holder
//! after that — the leader's log, the Ready that asks the host to persist
//! them, the AppendEntries to each follower, the follower's log, the Readies
//! that hand them out to apply — shares that allocation. Passing a run on
//! costs one reference-count increment, whatever its length, instead of one
//! per entry. This module owns the sharing; it knows nothing of indexes or
//! terms beyond what [`Entry`] carries.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ops::{Bound, Deref, RangeBounds};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::message::Entry;

/// A contiguous run of log entries behind a shared, reference-counted
/// buffer. It dereferences to `&[Entry]`; cloning it or taking a sub-run
/// ([`Entries::slice`]) never copies an entry.
///
/// On the wire it is a plain sequence of entries.
///
/// ```
/// use bytes::Bytes;
/// use zaft::{Entries, Entry, EntryKind, Index, Term};
///
/// let run: Entries = (1..=3)
///     .map(|i| Entry { term: Term(1), index: Index(i), kind: EntryKind::Normal, data: Bytes::new() })
///     .collect();
/// let tail = run.slice(1..);
/// assert_eq!(tail.len(), 2);
/// assert_eq!(tail[0].index, Index(2));
/// ```
#[derive(Clone, Default)]
pub struct Entries {
    /// `None` for an empty run: an empty run costs no allocation.
    buf: Option<Arc<[Entry]>>,
    /// Invariant: `start <= end <= buf.len()`, and `start == end == 0`
    /// when `buf` is `None`. 32 bits keep a message small; a run of 2^32
    /// entries would take hundreds of gigabytes.
    start: u32,
    end: u32,
}

/// A position in a run.
#[inline]
fn at(n: usize) -> u32 {
    u32::try_from(n).expect("a run holds fewer than 2^32 entries")
}

impl Entries {
    /// An empty run.
    pub const fn new() -> Entries {
        Entries {
            buf: None,
            start: 0,
            end: 0,
        }
    }

    /// The entries as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[Entry] {
        match &self.buf {
            Some(b) => &b[self.start as usize..self.end as usize],
            None => &[],
        }
    }

    /// A sub-run sharing this run's buffer, by position (not by log index).
    ///
    /// # Panics
    ///
    /// If the range is out of bounds or decreasing, like slice indexing.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Entries {
        let len = (self.end - self.start) as usize;
        let lo = match range.start_bound() {
            Bound::Included(&a) => a,
            Bound::Excluded(&a) => a.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let hi = match range.end_bound() {
            Bound::Included(&b) => b.saturating_add(1),
            Bound::Excluded(&b) => b,
            Bound::Unbounded => len,
        };
        assert!(
            lo <= hi && hi <= len,
            "range {lo}..{hi} out of bounds of a run of {len}"
        );
        self.sub(lo, hi)
    }

    /// Positions `lo..hi`, which the caller knows are in bounds.
    #[inline]
    pub(crate) fn sub(&self, lo: usize, hi: usize) -> Entries {
        debug_assert!(lo <= hi && hi <= (self.end - self.start) as usize);
        if lo == hi {
            return Entries::new();
        }
        Entries {
            buf: self.buf.clone(),
            start: self.start + at(lo),
            end: self.start + at(hi),
        }
    }

    /// Keeps the first `len` entries.
    #[inline]
    pub(crate) fn truncate(&mut self, len: usize) {
        if len == 0 {
            *self = Entries::new();
        } else if len < (self.end - self.start) as usize {
            self.end = self.start + at(len);
        }
    }

    /// Extends this run with `next` if `next` continues it in the same
    /// buffer (two pieces of one proposal batch, sent in two messages).
    /// Returns whether it did.
    #[inline]
    pub(crate) fn try_join(&mut self, next: &Entries) -> bool {
        match (&self.buf, &next.buf) {
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) && self.end == next.start => {
                self.end = next.end;
                true
            }
            _ => false,
        }
    }

    /// One run holding `parts` in order, sharing the part's buffer when
    /// there is only one.
    pub(crate) fn concat(parts: &[Entries]) -> Entries {
        match parts {
            [] => Entries::new(),
            [one] => one.clone(),
            _ => {
                let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
                for p in parts {
                    v.extend_from_slice(p);
                }
                Entries::from(v)
            }
        }
    }

    /// An exact-length build: one allocation, no intermediate vector.
    #[inline]
    pub(crate) fn build(n: usize, mut f: impl FnMut(usize) -> Entry) -> Entries {
        if n == 0 {
            return Entries::new();
        }
        let buf: Arc<[Entry]> = (0..n).map(&mut f).collect();
        Entries {
            buf: Some(buf),
            start: 0,
            end: at(n),
        }
    }
}

impl Deref for Entries {
    type Target = [Entry];

    #[inline]
    fn deref(&self) -> &[Entry] {
        self.as_slice()
    }
}

impl AsRef<[Entry]> for Entries {
    fn as_ref(&self) -> &[Entry] {
        self.as_slice()
    }
}

impl From<Vec<Entry>> for Entries {
    fn from(v: Vec<Entry>) -> Entries {
        if v.is_empty() {
            return Entries::new();
        }
        let end = at(v.len());
        Entries {
            buf: Some(Arc::from(v)),
            start: 0,
            end,
        }
    }
}

impl From<&[Entry]> for Entries {
    fn from(s: &[Entry]) -> Entries {
        Entries::build(s.len(), |i| s[i].clone())
    }
}

impl FromIterator<Entry> for Entries {
    fn from_iter<I: IntoIterator<Item = Entry>>(iter: I) -> Entries {
        let buf: Arc<[Entry]> = iter.into_iter().collect();
        let end = at(buf.len());
        if end == 0 {
            return Entries::new();
        }
        Entries {
            buf: Some(buf),
            start: 0,
            end,
        }
    }
}

impl<'a> IntoIterator for &'a Entries {
    type Item = &'a Entry;
    type IntoIter = core::slice::Iter<'a, Entry>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Entries) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Entries {}

impl PartialEq<[Entry]> for Entries {
    fn eq(&self, other: &[Entry]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<Vec<Entry>> for Entries {
    fn eq(&self, other: &Vec<Entry>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Serialize for Entries {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entries, D::Error> {
        Vec::<Entry>::deserialize(d).map(Entries::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::EntryKind;
    use crate::types::{Index, Term};
    use bytes::Bytes;

    fn run(lo: u64, hi: u64) -> Entries {
        (lo..=hi)
            .map(|i| Entry {
                term: Term(1),
                index: Index(i),
                kind: EntryKind::Normal,
                data: Bytes::from(alloc::vec![i as u8; 4]),
            })
            .collect()
    }

    fn indexes(e: &Entries) -> Vec<u64> {
        e.iter().map(|e| e.index.get()).collect()
    }

    #[test]
    fn sub_runs_share_the_buffer_and_see_only_their_range() {
        let r = run(1, 5);
        let mid = r.slice(1..4);
        assert_eq!(indexes(&mid), [2, 3, 4]);
        assert_eq!(indexes(&mid.slice(..=0)), [2]);
        assert!(mid.slice(3..).is_empty());
        let (Some(a), Some(b)) = (&r.buf, &mid.buf) else {
            panic!("non-empty runs have a buffer")
        };
        assert!(Arc::ptr_eq(a, b), "slicing copies nothing");
    }

    #[test]
    fn truncate_and_concat_keep_order() {
        let mut r = run(1, 5);
        r.truncate(2);
        assert_eq!(indexes(&r), [1, 2]);
        let joined = Entries::concat(&[r.clone(), run(3, 4), Entries::new()]);
        assert_eq!(indexes(&joined), [1, 2, 3, 4]);
        r.truncate(0);
        assert!(
            r.is_empty() && r.buf.is_none(),
            "an empty run holds nothing"
        );
    }

    #[test]
    fn adjacent_pieces_of_one_buffer_join_without_copying() {
        let r = run(1, 6);
        let mut a = r.slice(..2);
        assert!(a.try_join(&r.slice(2..4)));
        assert_eq!(indexes(&a), [1, 2, 3, 4]);
        assert!(!a.try_join(&r.slice(5..)), "a gap");
        assert!(!a.try_join(&run(5, 6)), "another buffer");
        assert_eq!(indexes(&a), [1, 2, 3, 4]);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn slicing_past_the_end_is_refused() {
        let _ = run(1, 2).slice(1..3);
    }

    #[test]
    fn wire_form_is_a_plain_sequence() {
        let r = run(1, 3).slice(1..);
        let as_vec: Vec<Entry> = r.to_vec();
        let a = postcard::to_allocvec(&r).expect("encode");
        let b = postcard::to_allocvec(&as_vec).expect("encode");
        assert_eq!(a, b);
        let back: Entries = postcard::from_bytes(&a).expect("decode");
        assert_eq!(back, as_vec);
    }
}
