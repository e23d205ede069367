//! The safety checkers: what must hold after every event of a run.
//!
//! The properties of Figure 3 of the Raft paper, checked against what the
//! hosts observe (their logs, the entries handed to them to apply, each node's
//! status), never against the node's internals:
//!
//! - Election Safety: at most one leader per term.
//! - Log Matching: two logs holding an entry with the same index and term hold
//!   the same entries up to it. Checked by chaining a hash over each log: every
//!   entry ever written anywhere with a given `(index, term)` must carry the
//!   same chained hash.
//! - Leader Completeness: a leader's log holds every entry committed in an
//!   earlier term. An observer only learns that an entry is committed, not in
//!   which term the commit happened (an entry of term 3 may be committed by
//!   the leader of term 7, and the leader of term 5 may rightly lack it), so
//!   the check applies to the leader of the highest term seen so far, which
//!   must hold every entry committed before it: when it is elected, and when
//!   an entry is first seen committed.
//! - State Machine Safety: no two nodes apply different entries at one index.
//!
//! Plus the host contract (monotonic term, commit and applied index; each
//! committed entry handed out once, in order, and only once durable; no
//! message of a term the node's disk does not hold), durability of
//! acknowledged writes, and CheckQuorum's promise that a leader cut off from
//! a majority steps down ([`LeaderWatch`]). This module owns the global record;
//! the per-node checks live with the host in `cluster.rs`.

use std::collections::BTreeMap;
use std::fmt;

use crate::message::Entry;
use crate::types::{LogId, NodeId, Term};

/// Which check a failed run broke.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Check {
    /// Two leaders in one term.
    ElectionSafety,
    /// Two logs agree on an entry but not on what comes before it.
    LogMatching,
    /// A leader lacks an entry committed in an earlier term.
    LeaderCompleteness,
    /// Two nodes applied different entries at the same index.
    StateMachineSafety,
    /// A node's term, commit or applied index went backwards, or a committed
    /// entry was handed out twice or out of order (across restarts too).
    Monotonic,
    /// A write acknowledged to a client was lost.
    Durability,
    /// The node broke its contract with the host: its log and what it asked
    /// the host to persist disagree, or it handed out an entry before it was
    /// durable, or it changed a durable vote.
    ReadyContract,
    /// The clients' history is not linearizable.
    Linearizability,
    /// On a healed network, no leader was elected, no write committed, or the
    /// nodes did not converge within the bound.
    Liveness,
    /// `step`, `advance` or `Node::new` returned an error the host did not
    /// cause.
    NodeError,
    /// The node panicked (one of its own invariant assertions fired).
    NodePanic,
    /// A message did not come out of the wire codec as it went in.
    Codec,
    /// A CheckQuorum leader went on leading although it had not heard from
    /// a majority for longer than its window (see `Cluster::check_step_down`).
    CheckQuorum,
    /// A node sent a message of a term its disk did not hold yet (pre-vote
    /// requests and granted pre-votes, whose term is only proposed, aside).
    DurableTerm,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 14] = [
        Check::ElectionSafety,
        Check::LogMatching,
        Check::LeaderCompleteness,
        Check::StateMachineSafety,
        Check::Monotonic,
        Check::Durability,
        Check::ReadyContract,
        Check::Linearizability,
        Check::Liveness,
        Check::NodeError,
        Check::NodePanic,
        Check::Codec,
        Check::CheckQuorum,
        Check::DurableTerm,
    ];
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::ElectionSafety => "Election Safety",
            Check::LogMatching => "Log Matching",
            Check::LeaderCompleteness => "Leader Completeness",
            Check::StateMachineSafety => "State Machine Safety",
            Check::Monotonic => "Monotonic term/commit/applied",
            Check::Durability => "Durability of acknowledged writes",
            Check::ReadyContract => "Ready contract",
            Check::Linearizability => "Linearizability",
            Check::Liveness => "Liveness",
            Check::NodeError => "Node error",
            Check::NodePanic => "Node panic",
            Check::Codec => "Wire codec round trip",
            Check::CheckQuorum => "CheckQuorum step-down",
            Check::DurableTerm => "Durable term before sending",
        })
    }
}

/// A broken check, before the run wraps it with its seed and trace.
#[derive(Clone, Debug)]
pub(crate) struct Fail {
    pub check: Check,
    pub message: String,
}

pub(crate) fn fail<T>(check: Check, message: String) -> Result<T, Fail> {
    Err(Fail { check, message })
}

/// FNV-1a over the payload.
pub(crate) fn data_hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// The hash of a log up to and including `e`, given the hash up to the entry
/// before it.
pub(crate) fn chain(prev: u64, e: &Entry) -> u64 {
    let mut h = prev ^ e.term.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ e.index.0)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
        .rotate_left(29);
    h ^= data_hash(&e.data) ^ ((e.kind as u8 as u64) << 7);
    h.wrapping_mul(0x94D0_49BB_1331_11EB)
}

/// The global record the checks compare against.
#[derive(Debug, Default)]
pub(crate) struct Safety {
    /// The leader of each term, as first observed.
    leaders: BTreeMap<Term, NodeId>,
    /// `(index, term)` → chained hash, and the node that wrote it first.
    entries: BTreeMap<(u64, u64), (u64, NodeId)>,
    /// By index - 1: the entry first handed out as committed there, its
    /// payload hash, and the node that applied it first.
    committed: Vec<Option<(LogId, u64, NodeId)>>,
    /// Writes acknowledged to clients, at the entry that carried them.
    pub acked: Vec<LogId>,
}

impl Safety {
    /// Election Safety: `node` is leader in `term`.
    pub fn leader(&mut self, term: Term, node: NodeId) -> Result<(), Fail> {
        match self.leaders.get(&term) {
            Some(&other) if other != node => fail(
                Check::ElectionSafety,
                format!("two leaders in term {term}: n{other} and n{node}"),
            ),
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(term, node);
                Ok(())
            }
        }
    }

    /// The highest term that had a leader.
    pub fn newest_leader_term(&self) -> Option<Term> {
        self.leaders.keys().next_back().copied()
    }

    /// The number of distinct terms that had a leader.
    pub fn terms_with_leader(&self) -> usize {
        self.leaders.len()
    }

    /// Log Matching: `node` now holds `e`, with chained hash `h`.
    pub fn written(&mut self, node: NodeId, e: &Entry, h: u64) -> Result<(), Fail> {
        match self.entries.get(&(e.index.0, e.term.0)) {
            Some(&(seen, first)) if seen != h => fail(
                Check::LogMatching,
                format!(
                    "n{node} now holds entry {} but n{first} held it earlier with a different log up to it",
                    e.id()
                ),
            ),
            Some(_) => Ok(()),
            None => {
                self.entries.insert((e.index.0, e.term.0), (h, node));
                Ok(())
            }
        }
    }

    /// State Machine Safety: `node` applies `e`. Returns whether this is the
    /// first time any node applies this index.
    pub fn applied(&mut self, node: NodeId, e: &Entry) -> Result<bool, Fail> {
        let i = (e.index.0 - 1) as usize;
        if self.committed.len() <= i {
            self.committed.resize(i + 1, None);
        }
        let h = data_hash(&e.data);
        match self.committed[i] {
            Some((id, dh, first)) if id != e.id() || dh != h => fail(
                Check::StateMachineSafety,
                format!(
                    "n{node} applies {} but n{first} applied {id} at index {}",
                    e.id(),
                    e.index
                ),
            ),
            Some(_) => Ok(false),
            None => {
                self.committed[i] = Some((e.id(), h, node));
                Ok(true)
            }
        }
    }

    /// Entries seen committed, by index - 1.
    pub fn committed(&self) -> impl Iterator<Item = LogId> + '_ {
        self.committed.iter().flatten().map(|c| c.0)
    }
}

/// What one leader has heard, counted in its own ticks, for the CheckQuorum
/// check: a leader that has not heard from a majority for longer than its
/// window must have stepped down.
///
/// The leader runs its CheckQuorum round every `election_timeout_ticks_min`
/// of its ticks: it steps down if fewer than a majority (itself included)
/// were heard since the previous round. A peer last heard at tick count `h`
/// (a message delivered after the leader's `h`-th tick) counts in the rounds
/// up to the first one after `h`; the next round, at most
/// `2 * election_timeout_ticks_min` ticks after `h`, finds it silent. So
/// once the leader's tick count exceeds `h_q + 2 * min`, where `h_q` is the
/// latest tick count by which a majority had last been heard, it must have
/// stepped down. No further slack is needed: ticks reach the leader one by
/// one (`Input::Ticks(n)` after a stall runs the rounds it covers), and the
/// check runs after each tick input. A leadership transfer restarts the
/// leader's round timer (the transfer gets one election timeout), so the
/// window counts from the later of `h_q` and the transfer.
#[derive(Clone, Debug)]
pub(crate) struct LeaderWatch {
    pub term: crate::types::Term,
    /// Per node (by index; the leader's own slot unused): the leader's tick
    /// count when it last received a message of its term from that node.
    pub heard: Vec<u64>,
    /// The tick count at which the leader's round timer last restarted
    /// (leadership won, or a transfer started).
    pub since: u64,
}

impl LeaderWatch {
    pub fn new(term: crate::types::Term, nodes: usize, now_ticks: u64) -> LeaderWatch {
        // A new leader counts every peer as heard (its first round passes).
        LeaderWatch {
            term,
            heard: vec![now_ticks; nodes],
            since: now_ticks,
        }
    }

    /// The latest tick count by which a majority (the leader itself
    /// included) had been heard: the (majority - 1)-th most recent peer.
    pub fn quorum_heard(&self, me: usize) -> u64 {
        let n = self.heard.len();
        let need = n / 2; // peers besides the leader to make a majority
        if need == 0 {
            return u64::MAX;
        }
        let mut peers: Vec<u64> = (0..n).filter(|&i| i != me).map(|i| self.heard[i]).collect();
        peers.sort_unstable_by(|a, b| b.cmp(a));
        peers[need - 1].max(self.since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Term;

    #[test]
    fn a_leader_hears_a_majority_as_of_its_majority_th_freshest_peer() {
        // Five nodes, the leader is node 0: it needs two peers.
        let mut w = LeaderWatch::new(Term(3), 5, 10);
        w.heard = vec![0, 40, 25, 31, 12];
        assert_eq!(w.quorum_heard(0), 31);
        w.since = 35;
        assert_eq!(w.quorum_heard(0), 35, "a transfer restarts the window");
        // Three nodes: one peer is enough.
        let w = LeaderWatch {
            term: Term(1),
            heard: vec![7, 3, 9],
            since: 0,
        };
        assert_eq!(w.quorum_heard(2), 7);
        // A single node answers to nobody.
        assert_eq!(LeaderWatch::new(Term(1), 1, 4).quorum_heard(0), u64::MAX);
    }
}
