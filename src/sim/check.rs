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
//! committed entry handed out once, in order, and only once durable) and
//! durability of acknowledged writes. This module owns the global record;
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
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 12] = [
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
