//! [`Durability`]: what the host was handed, what it has made durable and
//! what it has applied. The one owner of those facts; `advance` writes
//! nowhere else.
//!
//! Three cursors run along the log, never ahead of one another in this
//! order for committed entries: *handed* to persist (`emitted`), *durable*
//! (`stable`), *handed* to apply (`handed`) and *applied*. Beside them the
//! hard state: the one last handed out, and the term and vote the host has
//! made durable. Each Ready that asked for a write is remembered until the
//! `advance` that acknowledges it ([`Durability::acknowledge`]), which is
//! where "durable" is decided, with the Log Matching argument in one place.
//!
//! Nothing here assumes the log starts at index 1 or is all in memory: the
//! cursors are indexes, and the log is asked only for the entries between
//! two of them and whether it holds a given `(term, index)`.

use alloc::collections::VecDeque;

use crate::entries::Entries;
use crate::log::RaftLog;
use crate::message::HardState;
use crate::ready::ReadyId;
use crate::types::{Index, LogId, NodeId, Term};

/// What one Ready asked to persist, kept until `advance` acknowledges it.
#[derive(Debug)]
struct Pending {
    id: ReadyId,
    /// The first index and the last entry of the entries the Ready carried,
    /// if any: once durable, the disk's log ends with them.
    entries: Option<(Index, LogId)>,
    /// The term and vote the Ready carried, if they changed.
    hard_state: Option<(Term, Option<NodeId>)>,
    /// The last committed index it handed out to apply, if any.
    handed: Option<Index>,
}

/// The durability bookkeeping of one node.
///
/// Invariants (checked by [`Durability::check`]): `applied <= handed <=
/// min(committed, stable)`; `stable` and `emitted` within the log; the
/// durable term at most the node's term.
#[derive(Debug)]
pub(crate) struct Durability {
    /// Entries up to here are durable at the host *and* identical to ours.
    stable: Index,
    /// Entries up to here have been handed to the host to persist.
    emitted: Index,
    /// Committed entries up to here have been handed to the host to apply.
    handed: Index,
    /// Committed entries up to here have been applied (acknowledged).
    applied: Index,
    /// The term and vote the host has made durable.
    term: Term,
    vote: Option<NodeId>,
    /// The hard state last handed to the host.
    emitted_hs: HardState,
    /// The Readies that asked for writes and are not yet acknowledged.
    pending: VecDeque<Pending>,
}

impl Durability {
    /// The state of a node restored from disk: the restored log (ending at
    /// `last`) is durable, `applied` is applied, `hs` is what is on disk.
    pub fn restore(last: Index, applied: Index, hs: HardState) -> Durability {
        Durability {
            stable: last,
            emitted: last,
            handed: applied,
            applied,
            term: hs.term,
            vote: hs.vote,
            emitted_hs: hs,
            pending: VecDeque::new(),
        }
    }

    /// The highest index durable in the node's own log.
    #[inline]
    pub fn stable(&self) -> Index {
        self.stable
    }

    /// The highest committed index handed to the host to apply.
    #[inline]
    pub fn handed(&self) -> Index {
        self.handed
    }

    /// The highest index the host has applied (acknowledged by `advance`).
    #[inline]
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// The term the host has made durable.
    #[inline]
    pub fn term(&self) -> Term {
        self.term
    }

    /// Whether the host has made `vote` in `term` durable.
    #[inline]
    pub fn holds_vote(&self, term: Term, vote: Option<NodeId>) -> bool {
        self.term == term && self.vote == vote
    }

    /// The hard state last handed to the host.
    #[inline]
    pub fn emitted_hard_state(&self) -> &HardState {
        &self.emitted_hs
    }

    /// The commit index as far as our own log is durable: what the hard
    /// state may claim, and how far committed entries may be applied.
    #[inline]
    pub fn durable_commit(&self, log: &RaftLog) -> Index {
        log.committed.min(self.stable)
    }

    /// Whether there is nothing new for the host in the log: no entry to
    /// persist and no committed entry to apply.
    #[inline]
    pub fn is_quiet(&self, log: &RaftLog) -> bool {
        self.emitted >= log.last_index() && self.handed >= self.durable_commit(log)
    }

    /// Whether committed, durable entries wait to be handed out to apply.
    #[inline]
    pub fn has_committed(&self, log: &RaftLog) -> bool {
        self.handed < self.durable_commit(log)
    }

    /// The log lost every entry from `from` on: they are no longer ours,
    /// durable or handed out.
    pub fn log_truncated(&mut self, from: Index) {
        let keep = from.prev();
        self.stable = self.stable.min(keep);
        self.emitted = self.emitted.min(keep);
    }

    /// The entries not yet handed to the host to persist.
    pub fn take_unemitted(&mut self, log: &RaftLog) -> Entries {
        let last = log.last_index();
        if self.emitted >= last {
            return Entries::new();
        }
        let out = log.slice(self.emitted.next(), last, u64::MAX);
        self.emitted = last;
        out
    }

    /// The committed, durable entries not yet handed to the host to apply,
    /// up to `max_bytes` (at least one).
    pub fn take_committed(&mut self, log: &RaftLog, max_bytes: u64) -> Entries {
        let hi = self.durable_commit(log);
        if self.handed >= hi {
            return Entries::new();
        }
        let out = log.slice(self.handed.next(), hi, max_bytes);
        self.handed = Index(self.handed.0 + out.len() as u64);
        out
    }

    /// The hard state to hand out with the next Ready, if it changed, and
    /// whether its term or vote did (then it must be durable before the
    /// messages that depend on it leave, and the Ready must be synced).
    pub fn emit_hard_state(&mut self, hs: HardState) -> (Option<HardState>, bool) {
        if hs == self.emitted_hs {
            return (None, false);
        }
        let vote_changed = hs.term != self.emitted_hs.term || hs.vote != self.emitted_hs.vote;
        self.emitted_hs = hs;
        (Some(hs), vote_changed)
    }

    /// Remembers what Ready `id` asked to write: `entries`, a new term and
    /// vote (`hard_state`), and the committed entries up to `handed`.
    pub fn record(
        &mut self,
        id: ReadyId,
        entries: &Entries,
        hard_state: Option<(Term, Option<NodeId>)>,
        handed: Option<Index>,
    ) {
        if entries.is_empty() && hard_state.is_none() && handed.is_none() {
            return;
        }
        self.pending.push_back(Pending {
            id,
            entries: entries
                .first()
                .zip(entries.last())
                .map(|(f, l)| (f.index, l.id())),
            hard_state,
            handed,
        });
    }

    /// The host made every Ready up to `id` durable. Returns whether more
    /// of the log or of the hard state became durable.
    pub fn acknowledge(&mut self, id: ReadyId, log: &RaftLog) -> bool {
        let mut persisted = false;
        while self.pending.front().is_some_and(|p| p.id <= id) {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            if let Some((first, e)) = p.entries {
                // The disk's log now ends with these entries. If ours holds
                // `e` too, the two agree up to it (Log Matching). If not, a
                // later Ready rewrote it and they agree only below `first`:
                // even where a later Ready wrote the same entries back, the
                // disk does not hold those until that Ready is acknowledged.
                let stable = if log.matches(e) {
                    e.index
                } else {
                    self.stable.min(first.prev())
                };
                persisted |= stable > self.stable;
                self.stable = stable;
            }
            if let Some((term, vote)) = p.hard_state {
                self.term = term;
                self.vote = vote;
                persisted = true;
            }
            if let Some(h) = p.handed {
                self.applied = self.applied.max(h);
            }
        }
        persisted
    }

    /// Whether a Ready's writes wait for `advance`.
    #[inline]
    pub fn is_waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether the bookkeeping holds heap memory.
    #[inline]
    pub fn holds_memory(&self) -> bool {
        self.pending.capacity() > 0
    }

    /// Frees the bookkeeping's memory if nothing waits.
    pub fn release_idle_buffers(&mut self) {
        if self.pending.is_empty() {
            self.pending = VecDeque::new();
        }
    }

    /// Forgets what was applied: committed entries are handed out again
    /// (an injected bug).
    #[cfg(zaft_bugs)]
    pub fn forget_applied(&mut self) {
        self.handed = Index(0);
        self.applied = Index(0);
    }

    /// Panics if an invariant is broken. O(1).
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub fn check(&self, log: &RaftLog, term: Term) {
        let last = log.last_index();
        assert!(self.stable <= last, "stable beyond log");
        assert!(self.emitted <= last, "emitted beyond log");
        assert!(self.applied <= self.handed, "applied beyond handed");
        assert!(self.handed <= log.committed, "handed beyond committed");
        assert!(self.handed <= self.stable, "handed beyond stable");
        assert!(self.term <= term, "durable term ahead of term");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::testing::{ent, log_of};

    fn restored(log: &RaftLog) -> Durability {
        Durability::restore(log.last_index(), Index(0), HardState::default())
    }

    #[test]
    fn truncation_lowers_stable_and_emitted() {
        let mut l = log_of(&[1, 1, 2, 2]);
        let mut d = restored(&l);
        assert_eq!(d.stable(), Index(4));
        l.truncate(Index(3));
        d.log_truncated(Index(3));
        assert_eq!(d.stable(), Index(2));
        l.push(ent(3, 3));
        assert_eq!(d.take_unemitted(&l), alloc::vec![ent(3, 3)]);
        d.check(&l, Term(3));
    }

    #[test]
    fn committed_entries_wait_for_durability() {
        let mut l = log_of(&[1, 1]);
        let mut d = restored(&l);
        l.push(ent(1, 3));
        l.committed = Index(3);
        let e = d.take_unemitted(&l);
        d.record(ReadyId(1), &e, None, None);
        assert_eq!(
            d.take_committed(&l, u64::MAX).len(),
            2,
            "only the durable prefix is handed out"
        );
        assert!(d.acknowledge(ReadyId(1), &l));
        assert_eq!(d.take_committed(&l, u64::MAX), alloc::vec![ent(1, 3)]);
        assert!(d.take_committed(&l, u64::MAX).is_empty(), "each entry once");
    }

    /// A write acknowledged after a later Ready rewrote its entries makes
    /// durable only what lies below the rewrite.
    #[test]
    fn an_overwritten_write_is_durable_only_below_the_rewrite() {
        let mut l = log_of(&[1]);
        let mut d = restored(&l);
        l.push(ent(1, 2));
        l.push(ent(1, 3));
        let first = d.take_unemitted(&l);
        d.record(ReadyId(1), &first, None, None);
        l.truncate(Index(3));
        d.log_truncated(Index(3));
        l.push(ent(2, 3));
        let second = d.take_unemitted(&l);
        d.record(ReadyId(2), &second, None, None);
        assert!(!d.acknowledge(ReadyId(1), &l), "nothing new is durable");
        assert_eq!(d.stable(), Index(1), "entry 3 on disk is not ours any more");
        assert!(d.acknowledge(ReadyId(2), &l));
        assert_eq!(d.stable(), Index(3));
    }

    #[test]
    fn a_new_term_or_vote_is_a_change_the_host_must_sync() {
        let l = log_of(&[]);
        let mut d = restored(&l);
        let hs = |t, v: Option<u64>, c| HardState {
            term: Term(t),
            vote: v.map(NodeId),
            commit: Index(c),
        };
        assert_eq!(d.emit_hard_state(hs(0, None, 0)), (None, false));
        assert_eq!(
            d.emit_hard_state(hs(1, None, 0)),
            (Some(hs(1, None, 0)), true)
        );
        assert!(d.emit_hard_state(hs(1, Some(2), 0)).1);
        assert_eq!(
            d.emit_hard_state(hs(1, Some(2), 1)),
            (Some(hs(1, Some(2), 1)), false)
        );
        assert!(!d.holds_vote(Term(1), Some(NodeId(2))));
        d.record(
            ReadyId(3),
            &Entries::new(),
            Some((Term(1), Some(NodeId(2)))),
            None,
        );
        assert!(d.acknowledge(ReadyId(3), &l));
        assert!(d.holds_vote(Term(1), Some(NodeId(2))));
        assert_eq!(d.term(), Term(1));
    }
}
