//! Read-index and lease bookkeeping (thesis §6.4).
//!
//! A leader confirms it is still leader by a heartbeat round that a majority
//! answers. Rounds are numbered; each read waits for the first round started
//! at or after it. This module remembers the rounds, their start ticks (for
//! the lease) and the waiting reads. It sends nothing and knows no roles.

use alloc::collections::VecDeque;

use crate::types::{Index, NodeId};

/// How many recent rounds keep their start tick. Older rounds cannot start a
/// lease anyway: a lease is shorter than an election timeout, and rounds
/// start at least once per heartbeat interval.
const ROUND_HISTORY: usize = 64;

/// A read waiting for its heartbeat round to be confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PendingRead {
    pub ctx: u64,
    /// Where to send the answer: `None` for this node's host.
    pub from: Option<NodeId>,
    /// The commit index when the read arrived: the read index.
    pub index: Index,
    /// The round that confirms it.
    pub round: u64,
}

#[derive(Debug, Default)]
pub(crate) struct ReadQueue {
    /// The latest round started.
    pub round: u64,
    /// Start tick of the most recent rounds, oldest first; the last is `round`.
    round_ticks: VecDeque<u64>,
    /// Reads sorted by round.
    pending: VecDeque<PendingRead>,
    /// Reads that arrived before the leader committed an entry of its term:
    /// until then its commit index may be behind the previous leader's.
    pub waiting: VecDeque<(u64, Option<NodeId>)>,
}

impl ReadQueue {
    pub fn len(&self) -> usize {
        self.pending.len() + self.waiting.len()
    }

    /// Starts a new round at `now` and returns its number.
    pub fn start_round(&mut self, now: u64) -> u64 {
        self.round += 1;
        if self.round_ticks.len() == ROUND_HISTORY {
            self.round_ticks.pop_front();
        }
        self.round_ticks.push_back(now);
        self.round
    }

    /// The tick at which `round` started, if it is recent enough to know.
    pub fn tick_of(&self, round: u64) -> Option<u64> {
        let back = self.round_ticks.len() as u64;
        if round == 0 || round > self.round || self.round - round >= back {
            return None;
        }
        let pos = back - 1 - (self.round - round);
        self.round_ticks.get(pos as usize).copied()
    }

    pub fn push(&mut self, read: PendingRead) {
        debug_assert!(self.pending.back().is_none_or(|r| r.round <= read.round));
        self.pending.push_back(read);
    }

    /// Removes and returns the next read confirmed by `confirmed_round`.
    pub fn pop_confirmed(&mut self, confirmed_round: u64) -> Option<PendingRead> {
        if self.pending.front()?.round <= confirmed_round {
            self.pending.pop_front()
        } else {
            None
        }
    }

    /// Removes and returns any read, confirmed or not (leadership lost).
    pub fn pop_any(&mut self) -> Option<(u64, Option<NodeId>)> {
        if let Some(r) = self.pending.pop_front() {
            return Some((r.ctx, r.from));
        }
        self.waiting.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_remember_their_start_ticks() {
        let mut q = ReadQueue::default();
        assert_eq!(q.tick_of(1), None);
        for t in 0..100u64 {
            q.start_round(t * 3);
        }
        assert_eq!(q.round, 100);
        assert_eq!(q.tick_of(100), Some(99 * 3));
        assert_eq!(q.tick_of(37), Some(36 * 3));
        assert_eq!(q.tick_of(36), None, "only the last 64 rounds are kept");
        assert_eq!(q.tick_of(101), None);
    }

    #[test]
    fn reads_come_out_when_their_round_is_confirmed() {
        let mut q = ReadQueue::default();
        let r = |ctx, round| PendingRead {
            ctx,
            from: None,
            index: Index(5),
            round,
        };
        q.push(r(1, 1));
        q.push(r(2, 2));
        assert_eq!(q.pop_confirmed(0), None);
        assert_eq!(q.pop_confirmed(1).map(|r| r.ctx), Some(1));
        assert_eq!(q.pop_confirmed(1), None);
        assert_eq!(q.pop_any(), Some((2, None)));
        assert_eq!(q.len(), 0);
    }
}
