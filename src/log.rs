//! The in-memory replicated log: the durable prefix and the not-yet-durable
//! tail, with the commit and apply cursors.
//!
//! This module owns the log's invariants; it knows nothing of roles or
//! messages. It never decides *whether* to append or truncate — the protocol
//! does — only keeps the cursors consistent when it happens.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::message::Entry;
use crate::types::{Index, LogId, Term};

/// The log of one node.
///
/// Invariants (checked by [`RaftLog::check_invariants`]):
/// - entries are contiguous from `offset.index + 1`, terms non-decreasing;
/// - `applied <= handed <= min(committed, stable)`;
/// - `committed <= last_index()`, `stable <= last_index()`, `emitted <= last_index()`.
#[derive(Debug)]
pub(crate) struct RaftLog {
    entries: VecDeque<Entry>,
    /// The id just before the first held entry (zero: nothing compacted).
    offset: LogId,
    /// The highest index known to be committed.
    pub committed: Index,
    /// Entries up to here are durable at the host *and* identical to ours.
    pub stable: Index,
    /// Entries up to here have been handed to the host to persist.
    emitted: Index,
    /// Committed entries up to here have been handed to the host to apply.
    pub handed: Index,
    /// Committed entries up to here have been applied (acknowledged by advance).
    pub applied: Index,
}

impl RaftLog {
    /// A log restored from durable entries, all considered stable.
    pub fn restore(entries: Vec<Entry>, committed: Index, applied: Index) -> RaftLog {
        let last = entries.last().map_or(Index(0), |e| e.index);
        RaftLog {
            entries: entries.into(),
            offset: LogId::ZERO,
            committed,
            stable: last,
            emitted: last,
            handed: applied,
            applied,
        }
    }

    #[inline]
    pub fn last_index(&self) -> Index {
        Index(self.offset.index.0 + self.entries.len() as u64)
    }

    #[inline]
    pub fn last_id(&self) -> LogId {
        self.entries.back().map_or(self.offset, Entry::id)
    }

    #[inline]
    fn pos(&self, index: Index) -> Option<usize> {
        if index <= self.offset.index || index > self.last_index() {
            None
        } else {
            Some((index.0 - self.offset.index.0 - 1) as usize)
        }
    }

    /// The term of the entry at `index`; `None` beyond the log.
    #[inline]
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.offset.index {
            return Some(self.offset.term);
        }
        self.pos(index).map(|p| self.entries[p].term)
    }

    /// Whether the log holds the entry `id`.
    #[inline]
    pub fn matches(&self, id: LogId) -> bool {
        self.term_at(id.index) == Some(id.term)
    }

    /// Appends one entry at the end.
    #[inline]
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index().next());
        debug_assert!(entry.term >= self.last_id().term);
        self.entries.push_back(entry);
    }

    /// Removes every entry at `from` and beyond. Never below the commit index.
    pub fn truncate(&mut self, from: Index) {
        debug_assert!(from > self.committed, "truncating committed entries");
        if let Some(p) = self.pos(from) {
            self.entries.truncate(p);
        }
        let keep = from.prev();
        self.stable = self.stable.min(keep);
        self.emitted = self.emitted.min(keep);
    }

    /// Clones entries `lo..=hi` (clamped to the log), stopping once
    /// `max_bytes` is reached but always taking at least one.
    pub fn slice<C: Default + Extend<Entry>>(&self, lo: Index, hi: Index, max_bytes: u64) -> C {
        let mut out = C::default();
        self.slice_into(lo, hi, max_bytes, &mut out);
        out
    }

    /// [`RaftLog::slice`] into an existing collection.
    pub fn slice_into<C: Extend<Entry>>(&self, lo: Index, hi: Index, max_bytes: u64, out: &mut C) {
        let hi = hi.min(self.last_index());
        let (Some(a), true) = (self.pos(lo), lo <= hi) else {
            return;
        };
        let n = (hi.0 - lo.0 + 1) as usize;
        let mut bytes = 0u64;
        let mut taken = 0;
        for e in self.entries.range(a..a + n) {
            bytes += e.size_bytes();
            if taken > 0 && bytes > max_bytes {
                break;
            }
            taken += 1;
        }
        out.extend(self.entries.range(a..a + taken).cloned());
    }

    /// The commit index as far as our own log is durable: what the hard
    /// state may claim.
    #[inline]
    pub fn durable_commit(&self) -> Index {
        self.committed.min(self.stable)
    }

    /// Whether there is nothing new for the host: no entry to persist and no
    /// committed entry to apply.
    #[inline]
    pub fn is_quiet(&self) -> bool {
        self.emitted >= self.last_index() && self.handed >= self.committed.min(self.stable)
    }

    /// The bytes of the entries `lo..=hi` whose term is `term`.
    pub fn bytes_of_term(&self, lo: Index, hi: Index, term: Term) -> u64 {
        let hi = hi.min(self.last_index());
        let Some(a) = self.pos(lo) else { return 0 };
        if lo > hi {
            return 0;
        }
        let n = (hi.0 - lo.0 + 1) as usize;
        self.entries
            .range(a..a + n)
            .filter(|e| e.term == term)
            .map(Entry::size_bytes)
            .sum()
    }

    /// Whether entries wait to be handed to the host to persist.
    #[inline]
    pub fn has_unemitted(&self) -> bool {
        self.emitted < self.last_index()
    }

    /// Whether committed, durable entries wait to be handed out to apply.
    #[inline]
    pub fn has_committed(&self) -> bool {
        self.handed < self.durable_commit()
    }

    /// Appends the entries not yet handed to the host to persist to `out`.
    pub fn take_unemitted(&mut self, out: &mut Vec<Entry>) {
        let last = self.last_index();
        if self.emitted < last {
            self.slice_into(self.emitted.next(), last, u64::MAX, out);
            self.emitted = last;
        }
    }

    /// Appends the committed, durable entries not yet handed to the host to
    /// apply to `out`, up to `max_bytes` (at least one).
    pub fn take_committed(&mut self, max_bytes: u64, out: &mut Vec<Entry>) {
        let hi = self.durable_commit();
        if self.handed < hi {
            let before = out.len();
            self.slice_into(self.handed.next(), hi, max_bytes, out);
            if out.len() > before {
                self.handed = Index(self.handed.0 + (out.len() - before) as u64);
            }
        }
    }

    /// The largest index at or below `index` whose term is at most `term`:
    /// where a log that has `term` at `index` may last match ours. Used by
    /// both sides of fast log backtracking.
    pub fn last_at_or_below(&self, index: Index, term: Term) -> LogId {
        let mut i = index.min(self.last_index());
        while i > self.offset.index {
            let t = self.term_at(i).unwrap_or(Term(0));
            if t <= term {
                return LogId::new(t, i);
            }
            i = i.prev();
        }
        self.offset
    }

    /// Panics if an invariant is broken. Called after every input in debug builds.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub fn check_invariants(&self) {
        let last = self.last_index();
        let mut prev = self.offset;
        for e in &self.entries {
            assert_eq!(e.index, prev.index.next(), "log not contiguous");
            assert!(e.term >= prev.term, "log terms decrease at {:?}", e.id());
            prev = e.id();
        }
        assert!(self.committed <= last, "committed beyond log");
        assert!(self.stable <= last, "stable beyond log");
        assert!(self.emitted <= last, "emitted beyond log");
        assert!(self.applied <= self.handed, "applied beyond handed");
        assert!(self.handed <= self.committed, "handed beyond committed");
        assert!(self.handed <= self.stable, "handed beyond stable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::EntryKind;
    use bytes::Bytes;

    fn ent(term: u64, index: u64) -> Entry {
        Entry {
            term: Term(term),
            index: Index(index),
            kind: EntryKind::Normal,
            data: Bytes::new(),
        }
    }

    fn log_of(terms: &[u64]) -> RaftLog {
        let es = terms
            .iter()
            .enumerate()
            .map(|(i, t)| ent(*t, i as u64 + 1))
            .collect();
        RaftLog::restore(es, Index(0), Index(0))
    }

    #[test]
    fn truncation_lowers_stable_and_emitted() {
        let mut l = log_of(&[1, 1, 2, 2]);
        assert_eq!(l.stable, Index(4));
        l.truncate(Index(3));
        assert_eq!(l.last_index(), Index(2));
        assert_eq!(l.stable, Index(2));
        l.push(ent(3, 3));
        let mut out = Vec::new();
        l.take_unemitted(&mut out);
        assert_eq!(out, alloc::vec![ent(3, 3)]);
        l.check_invariants();
    }

    #[test]
    fn last_at_or_below_skips_a_whole_term() {
        let l = log_of(&[1, 1, 4, 4, 4, 5, 5]);
        assert_eq!(
            l.last_at_or_below(Index(7), Term(4)),
            LogId::new(Term(4), Index(5))
        );
        assert_eq!(
            l.last_at_or_below(Index(7), Term(3)),
            LogId::new(Term(1), Index(2))
        );
        assert_eq!(
            l.last_at_or_below(Index(100), Term(9)),
            LogId::new(Term(5), Index(7))
        );
        assert_eq!(l.last_at_or_below(Index(7), Term(0)), LogId::ZERO);
    }

    #[test]
    fn committed_entries_wait_for_durability() {
        let mut l = log_of(&[1, 1]);
        l.push(ent(1, 3));
        l.committed = Index(3);
        let take = |l: &mut RaftLog| {
            let mut out = Vec::new();
            l.take_committed(u64::MAX, &mut out);
            out
        };
        assert_eq!(
            take(&mut l).len(),
            2,
            "only the durable prefix is handed out"
        );
        l.stable = Index(3);
        assert_eq!(take(&mut l), alloc::vec![ent(1, 3)]);
        assert!(take(&mut l).is_empty(), "each entry once");
    }

    #[test]
    fn slice_respects_the_byte_limit_but_takes_one() {
        let l = log_of(&[1, 1, 1]);
        let len = |lo, hi, max| l.slice::<Vec<Entry>>(Index(lo), Index(hi), max).len();
        assert_eq!(len(1, 3, 1), 1);
        assert_eq!(len(1, 3, 48), 2);
        assert_eq!(len(4, 3, 48), 0);
    }
}
