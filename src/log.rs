//! The in-memory replicated log and its commit index.
//!
//! This module owns the log's invariants; it knows nothing of roles,
//! messages or durability (what the host has persisted, handed out or
//! applied is [`crate::durability::Durability`]'s). It never decides
//! *whether* to append or truncate — the protocol does.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use smallvec::SmallVec;

use crate::entries::Entries;
use crate::message::Entry;
use crate::types::{Index, LogId, Term};

/// How many of `entries` fit within `max_bytes`, counting them into `bytes`
/// (the size of what was taken before them). The first entry of a slice is
/// always taken, however large: `took_some` says whether it already was.
#[inline]
fn fit(entries: &[Entry], bytes: &mut u64, max_bytes: u64, took_some: bool) -> usize {
    if max_bytes == u64::MAX {
        return entries.len();
    }
    for (j, e) in entries.iter().enumerate() {
        *bytes += e.size_bytes();
        if *bytes > max_bytes && (j > 0 || took_some) {
            return j;
        }
    }
    entries.len()
}

/// The log of one node.
///
/// Entries are held as shared runs ([`Entries`]), the way they arrived (a
/// proposal batch, the new part of an AppendEntries): handing a run to the
/// host or to a follower shares it instead of cloning each entry.
///
/// Invariants (checked by [`RaftLog::check_invariants`]):
/// - the runs are non-empty and their entries contiguous from
///   `offset.index + 1`, terms non-decreasing;
/// - `terms[i]` is the term of the entry at position `i`;
/// - `committed <= last_index()`.
#[derive(Debug)]
pub(crate) struct RaftLog {
    runs: VecDeque<Entries>,
    /// The term of every held entry, by position: a term lookup needs no
    /// search for the run that holds the entry.
    terms: VecDeque<Term>,
    /// The id just before the first held entry (zero: nothing compacted).
    offset: LogId,
    /// The highest index known to be committed.
    pub committed: Index,
}

impl RaftLog {
    /// A log restored from durable entries.
    pub fn restore(entries: Vec<Entry>, committed: Index) -> RaftLog {
        let terms = entries.iter().map(|e| e.term).collect();
        let mut runs = VecDeque::new();
        if !entries.is_empty() {
            runs.push_back(Entries::from(entries));
        }
        RaftLog {
            runs,
            terms,
            offset: LogId::ZERO,
            committed,
        }
    }

    #[inline]
    pub fn last_index(&self) -> Index {
        Index(self.offset.index.0 + self.terms.len() as u64)
    }

    #[inline]
    pub fn last_id(&self) -> LogId {
        self.terms
            .back()
            .map_or(self.offset, |&t| LogId::new(t, self.last_index()))
    }

    #[inline]
    fn pos(&self, index: Index) -> Option<usize> {
        if index <= self.offset.index || index > self.last_index() {
            None
        } else {
            Some((index.0 - self.offset.index.0 - 1) as usize)
        }
    }

    /// The position in `runs` of the run holding `index`, which the caller
    /// knows is held.
    #[inline]
    fn run_of(&self, index: Index) -> usize {
        let last = self.runs.len() - 1;
        // Most lookups are of recent entries.
        if self.runs[last][0].index <= index {
            return last;
        }
        self.runs.partition_point(|r| r[0].index <= index) - 1
    }

    /// The term of the entry at `index`; `None` beyond the log.
    #[inline]
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.offset.index {
            return Some(self.offset.term);
        }
        self.pos(index).map(|p| self.terms[p])
    }

    /// Whether the log holds the entry `id`.
    #[inline]
    pub fn matches(&self, id: LogId) -> bool {
        self.term_at(id.index) == Some(id.term)
    }

    /// Appends one entry at the end.
    pub fn push(&mut self, entry: Entry) {
        self.append(core::iter::once(entry).collect());
    }

    /// Appends a run at the end.
    #[inline]
    pub fn append(&mut self, run: Entries) {
        let Some(first) = run.first() else { return };
        debug_assert_eq!(first.index, self.last_index().next());
        debug_assert!(first.term >= self.last_id().term);
        // What changed is checked once, here; after each input the debug
        // checks look only at the log's ends (`check_ends`).
        #[cfg(debug_assertions)]
        for w in run.windows(2) {
            assert_eq!(w[1].index, w[0].index.next(), "run not contiguous");
            assert!(w[1].term >= w[0].term, "run terms decrease");
        }
        self.terms.extend(run.iter().map(|e| e.term));
        // The pieces of one leader batch, arriving in several messages,
        // become one run again.
        if let Some(last) = self.runs.back_mut()
            && last.try_join(&run)
        {
            return;
        }
        self.runs.push_back(run);
    }

    /// Removes every entry at `from` and beyond. Never below the commit index.
    pub fn truncate(&mut self, from: Index) {
        debug_assert!(from > self.committed, "truncating committed entries");
        if let Some(p) = self.pos(from) {
            self.terms.truncate(p);
            while let Some(run) = self.runs.back_mut() {
                let first = run[0].index;
                if first >= from {
                    self.runs.pop_back();
                } else {
                    run.truncate((from.0 - first.0) as usize);
                    break;
                }
            }
        }
    }

    /// The entries `lo..=hi` (clamped to the log), stopping once `max_bytes`
    /// is reached but always taking at least one. Shares the log's runs: a
    /// range within one run costs no allocation and clones no entry.
    pub fn slice(&self, lo: Index, hi: Index, max_bytes: u64) -> Entries {
        let hi = hi.min(self.last_index());
        if lo > hi || self.pos(lo).is_none() {
            return Entries::new();
        }
        let mut parts: SmallVec<[Entries; 2]> = SmallVec::new();
        let mut bytes = 0u64;
        let mut next = lo;
        for run in self.runs.range(self.run_of(lo)..) {
            let a = (next.0 - run[0].index.0) as usize;
            let want = (run.len() - a).min((hi.0 - next.0 + 1) as usize);
            let k = fit(&run[a..a + want], &mut bytes, max_bytes, next > lo);
            let piece = run.sub(a, a + k);
            next = Index(next.0 + k as u64);
            let done = k < want || next > hi;
            if done && parts.is_empty() {
                // The common case: all from one run (a proposal batch
                // handed to the host, or replicated as it was proposed).
                return piece;
            }
            // Adjacent runs never share a buffer (`append` joins them), so
            // pieces of several runs are joined by copying.
            if k > 0 {
                parts.push(piece);
            }
            if done {
                break;
            }
        }
        Entries::concat(&parts)
    }

    /// The entries `lo..=hi` (clamped to the log), in order.
    fn iter_range(&self, lo: Index, hi: Index) -> impl Iterator<Item = &Entry> {
        let hi = hi.min(self.last_index());
        let (first, skip, n) = match self.pos(lo) {
            Some(_) if lo <= hi => {
                let r = self.run_of(lo);
                let skip = (lo.0 - self.runs[r][0].index.0) as usize;
                (r, skip, (hi.0 - lo.0 + 1) as usize)
            }
            _ => (self.runs.len(), 0, 0),
        };
        self.runs
            .range(first..)
            .flat_map(|r| r.iter())
            .skip(skip)
            .take(n)
    }

    /// The bytes of the entries `lo..=hi` whose term is `term`.
    pub fn bytes_of_term(&self, lo: Index, hi: Index, term: Term) -> u64 {
        self.iter_range(lo, hi)
            .filter(|e| e.term == term)
            .map(Entry::size_bytes)
            .sum()
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

    /// Panics if an invariant at the log's ends is broken: the commit
    /// index, and where the runs start and end. O(1): run after every input in debug
    /// builds, so a downstream debug build stays linear in the log's length
    /// (appends check the runs they add, once).
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub fn check_ends(&self) {
        let last = self.last_index();
        assert!(self.committed <= last, "committed beyond log");
        assert_eq!(self.runs.is_empty(), self.terms.is_empty());
        if let (Some(front), Some(back)) = (self.runs.front(), self.runs.back()) {
            assert_eq!(front[0].index, self.offset.index.next(), "log start");
            let end = &back[back.len() - 1];
            assert_eq!(end.id(), self.last_id(), "log end out of step");
        }
    }

    /// Panics if any invariant is broken, walking the whole log: for tests
    /// and the simulator.
    #[cfg_attr(not(any(test, feature = "sim")), allow(dead_code))]
    pub fn check_invariants(&self) {
        self.check_ends();
        let last = self.last_index();
        let mut prev = self.offset;
        let mut held = 0;
        for run in &self.runs {
            assert!(!run.is_empty(), "empty run in the log");
            for e in run.iter() {
                assert_eq!(e.index, prev.index.next(), "log not contiguous");
                assert!(e.term >= prev.term, "log terms decrease at {:?}", e.id());
                assert_eq!(Some(e.term), self.term_at(e.index), "terms out of step");
                prev = e.id();
                held += 1;
            }
        }
        assert_eq!(held, self.terms.len(), "terms out of step with the runs");
        assert_eq!(prev.index, last);
    }
}

/// Small logs for the unit tests of the log and of its users.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::message::EntryKind;
    use bytes::Bytes;

    /// An empty normal entry.
    pub fn ent(term: u64, index: u64) -> Entry {
        Entry {
            term: Term(term),
            index: Index(index),
            kind: EntryKind::Normal,
            data: Bytes::new(),
        }
    }

    /// A log of empty entries with these terms, from index 1.
    pub fn log_of(terms: &[u64]) -> RaftLog {
        let es = terms
            .iter()
            .enumerate()
            .map(|(i, t)| ent(*t, i as u64 + 1))
            .collect();
        RaftLog::restore(es, Index(0))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ent, log_of};
    use super::*;
    use crate::message::EntryKind;
    use bytes::Bytes;

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
    fn slice_respects_the_byte_limit_but_takes_one() {
        let l = log_of(&[1, 1, 1]);
        let len = |lo, hi, max| l.slice(Index(lo), Index(hi), max).len();
        assert_eq!(len(1, 3, 1), 1);
        assert_eq!(len(1, 3, 48), 2);
        assert_eq!(len(4, 3, 48), 0);
    }

    #[test]
    fn slices_across_runs_share_or_join_them() {
        let mut l = log_of(&[1, 1]);
        l.append((3..=5).map(|i| ent(2, i)).collect());
        l.push(ent(2, 6));
        let ids = |e: &Entries| e.iter().map(|e| e.index.get()).collect::<Vec<_>>();
        assert_eq!(ids(&l.slice(Index(3), Index(4), u64::MAX)), [3, 4]);
        assert_eq!(ids(&l.slice(Index(2), Index(6), u64::MAX)), [2, 3, 4, 5, 6]);
        // 24 bytes an entry: the limit cuts inside the second run.
        assert_eq!(ids(&l.slice(Index(2), Index(6), 72)), [2, 3, 4]);
        l.truncate(Index(4));
        assert_eq!(l.last_id(), LogId::new(Term(2), Index(3)));
        assert_eq!(ids(&l.slice(Index(1), Index(9), u64::MAX)), [1, 2, 3]);
        l.check_invariants();
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            /// Append a run of this many entries, the term raised by this much.
            Append(u8, u8),
            /// The same, but in two pieces of one buffer split at this point
            /// (one batch arriving in two messages).
            AppendPieces(u8, u8, u8),
            /// Truncate at this fraction of the log.
            Truncate(u8),
            /// Slice this fraction range with this byte limit.
            Slice(u8, u8, u16),
            /// Hand out what is unemitted.
            TakeUnemitted,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (1u8..6, 0u8..2).prop_map(|(n, t)| Op::Append(n, t)),
                (2u8..8, 0u8..2, any::<u8>()).prop_map(|(n, t, at)| Op::AppendPieces(n, t, at)),
                any::<u8>().prop_map(Op::Truncate),
                (any::<u8>(), any::<u8>(), 1u16..200).prop_map(|(a, b, m)| Op::Slice(a, b, m)),
                Just(Op::TakeUnemitted),
            ]
        }

        /// The naive slice: contiguous entries lo..=hi, cut at max bytes.
        fn naive_slice(v: &[Entry], lo: u64, hi: u64, max: u64) -> Vec<Entry> {
            let mut out = Vec::new();
            let mut bytes = 0;
            for e in v.iter().filter(|e| (lo..=hi).contains(&e.index.get())) {
                bytes += e.size_bytes();
                if !out.is_empty() && bytes > max {
                    break;
                }
                out.push(e.clone());
            }
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]
            #[test]
            fn runs_behave_like_a_plain_vector(ops in proptest::collection::vec(op(), 1..40)) {
                let mut l = log_of(&[]);
                let mut v: Vec<Entry> = Vec::new();
                let mut emitted = 0u64;
                let frac = |f: u8, n: usize| (f as u64 * (n as u64 + 2)) / 256;
                for op in ops {
                    match op {
                        Op::Append(n, dt) | Op::AppendPieces(n, dt, _) => {
                            let term = v.last().map_or(1, |e| e.term.get()) + dt as u64;
                            let first = v.len() as u64 + 1;
                            let run: Vec<Entry> =
                                (0..n as u64).map(|i| Entry {
                                    term: Term(term),
                                    index: Index(first + i),
                                    kind: EntryKind::Normal,
                                    data: Bytes::from(alloc::vec![0; i as usize]),
                                }).collect();
                            v.extend(run.iter().cloned());
                            let run = Entries::from(run);
                            if let Op::AppendPieces(_, _, at) = op {
                                let at = 1 + at as usize % (n as usize - 1);
                                l.append(run.slice(..at));
                                l.append(run.slice(at..));
                            } else {
                                l.append(run);
                            }
                        }
                        Op::Truncate(f) => {
                            let at = frac(f, v.len()).max(1);
                            v.truncate(at as usize - 1);
                            l.truncate(Index(at));
                            emitted = emitted.min(at - 1);
                        }
                        Op::Slice(a, b, max) => {
                            let (lo, hi) = (frac(a, v.len()).max(1), frac(b, v.len()));
                            let got = l.slice(Index(lo), Index(hi), max as u64);
                            prop_assert_eq!(got.to_vec(), naive_slice(&v, lo, hi, max as u64));
                        }
                        Op::TakeUnemitted => {
                            let got = l.slice(Index(emitted + 1), l.last_index(), u64::MAX);
                            prop_assert_eq!(got.to_vec(), naive_slice(&v, emitted + 1, u64::MAX, u64::MAX));
                            emitted = v.len() as u64;
                        }
                    }
                    l.check_invariants();
                    prop_assert_eq!(l.last_index().get(), v.len() as u64);
                    for e in &v {
                        prop_assert_eq!(l.term_at(e.index), Some(e.term));
                    }
                    prop_assert_eq!(l.term_at(Index(v.len() as u64 + 1)), None);
                }
            }
        }
    }
    #[test]
    #[should_panic(expected = "committed beyond log")]
    fn the_per_input_check_sees_a_cursor_beyond_the_log() {
        let mut l = log_of(&[1, 1, 2]);
        l.committed = Index(4);
        l.check_ends();
    }

    #[test]
    #[should_panic(expected = "log end out of step")]
    fn the_per_input_check_sees_terms_out_of_step_at_the_end() {
        let mut l = log_of(&[1, 1, 2]);
        *l.terms.back_mut().unwrap() = Term(3);
        l.check_ends();
    }
}
