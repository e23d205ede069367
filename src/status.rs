//! [`Status`]: a snapshot of a node's state for monitoring and tests.

use alloc::vec::Vec;
use core::fmt;

use crate::types::{Index, LogId, NodeId, Term};

/// The role a node plays in its current term (§5.1).
///
/// A host that meets a role it does not know treats it as "not the
/// leader".
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Follows a leader, or waits for one.
    Follower,
    /// Asks whether it could win an election before starting one (PreVote).
    PreCandidate,
    /// Asks for votes to become leader.
    Candidate,
    /// Accepts proposals and replicates the log.
    Leader,
}

/// How a leader replicates to one follower. More states will come (a
/// follower being sent a snapshot); show an unknown one by its `Debug` name.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum ProgressState {
    /// The leader does not know where the follower's log matches its own: it
    /// sends one AppendEntries at a time until one succeeds.
    Probe,
    /// The follower's log is known to match: the leader streams entries
    /// without waiting, up to the inflight window.
    Replicate,
}

/// What a leader knows of one follower.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PeerProgress {
    /// The follower.
    pub id: NodeId,
    /// The highest index known to be durable and matching at the follower.
    pub match_index: Index,
    /// The next index to send.
    pub next_index: Index,
    /// Probe or replicate.
    pub state: ProgressState,
    /// AppendEntries sent and not yet acknowledged.
    pub inflight: u32,
}

/// Why a message was dropped instead of being acted on.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Addressed to another node.
    WrongRecipient,
    /// From a node that is not a voter of this cluster, or from itself.
    UnknownSender,
    /// From an older term, and needing no answer.
    StaleTerm,
    /// Meaningless in this node's current role or state: a response to a
    /// request this node no longer has outstanding, or one already answered.
    Stale,
    /// Inconsistent in itself: entries not contiguous, terms out of order, an
    /// acknowledgement beyond what was sent.
    Malformed,
    /// A vote or pre-vote request while this node hears from a leader
    /// (leader stickiness).
    LeaderAlive,
    /// A forwarded proposal refused by the leader (not leader, transfer in
    /// progress, or over the uncommitted-bytes budget).
    ProposalRefused,
    /// Contradicts the protocol: an attempt to overwrite a committed entry, a
    /// second leader in one term. Only a faulty peer (or a host that lost
    /// durable writes) sends it. (A commit index beyond the follower's log is
    /// not dropped: it is answered with `AppendResponse::Behind`.)
    Misbehaving,
}

impl DropReason {
    /// Every reason, in the order of [`DropCounters`].
    pub const ALL: [DropReason; 8] = [
        DropReason::WrongRecipient,
        DropReason::UnknownSender,
        DropReason::StaleTerm,
        DropReason::Stale,
        DropReason::Malformed,
        DropReason::LeaderAlive,
        DropReason::ProposalRefused,
        DropReason::Misbehaving,
    ];

    fn slot(self) -> usize {
        self as usize
    }
}

/// Counts of dropped messages, by reason.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    /// How many messages were dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.slot()]
    }

    /// How many messages were dropped in all.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub(crate) fn bump(&mut self, reason: DropReason) {
        self.0[reason.slot()] += 1;
    }
}

impl fmt::Debug for DropCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for r in DropReason::ALL {
            if self.get(r) > 0 {
                m.entry(&r, &self.get(r));
            }
        }
        m.finish()
    }
}

/// A snapshot of a node's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// Whom it voted for in `term`.
    pub vote: Option<NodeId>,
    /// The leader of `term`, if known.
    pub leader: Option<NodeId>,
    /// The highest index known to be committed.
    pub commit: Index,
    /// The highest index the host has applied (acknowledged by `advance`).
    pub applied: Index,
    /// The last entry of the log, durable or not.
    pub last_log: LogId,
    /// The highest index known to be durable in this node's own log.
    pub persisted: Index,
    /// Per-follower replication progress; empty unless leader.
    pub progress: Vec<PeerProgress>,
    /// Messages dropped, by reason.
    pub dropped: DropCounters,
    /// The node lost data it may have acknowledged (the host said so with
    /// [`crate::Restored::lost_data`], or the restored log ends below the
    /// restored commit index) and has not caught up yet: it refuses votes
    /// and pre-votes and does not campaign.
    pub recovering: bool,
    /// The configuration in force.
    pub conf_state: crate::membership::ConfState,
}
