//! [`Error`]: what `step`, `advance` and `Node::new` refuse, sorted by whose
//! fault it is.
//!
//! Bad input from the network is never an `Error`: a message the node cannot
//! accept is dropped and counted (see [`crate::DropReason`]). An `Error` is
//! about the caller's own request: a proposal that cannot be taken now, a
//! broken contract, a configuration or restored state that does not hold
//! together. Each message says what to do about it.

use core::fmt;

use crate::membership::MembershipError;
use crate::types::{Index, NodeId};

/// Why a call was refused. When a call returns an `Error` the node is
/// unchanged, as if the call had not been made.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Error {
    /// A proposal was made to a node that is not the leader. Send it to
    /// `leader` if there is one, or retry after an election.
    NotLeader {
        /// The leader this node knows of in its current term, if any.
        leader: Option<NodeId>,
    },
    /// The request cannot be taken now; retry later.
    Busy(Busy),
    /// The caller broke the `step → Ready → advance` contract.
    Misuse(Misuse),
    /// The configuration is invalid.
    Config(ConfigError),
    /// The state handed to [`crate::Node::new`] does not hold together.
    Restore(RestoreError),
    /// A membership change (or a campaign) the configuration in force does
    /// not allow.
    Membership(MembershipError),
}

/// A broken call contract: the caller's bug.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Misuse {
    /// `advance` was given an id that no `Ready` has carried yet.
    AdvanceUnknown {
        /// The id passed to `advance`.
        id: u64,
        /// The last id handed out.
        last_issued: u64,
    },
    /// `advance` was given an id at or below one already acknowledged.
    AdvanceBackwards {
        /// The id passed to `advance`.
        id: u64,
        /// The last id acknowledged.
        last_acknowledged: u64,
    },
    /// A proposal batch was empty.
    EmptyProposal,
    /// Leadership cannot be transferred to a node that is not a voter.
    TransferToNonVoter(NodeId),
}

/// An invalid field of [`crate::Config`].
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// `id` is `NodeId(0)`, which is reserved.
    ZeroId,
    /// `voters` contains `NodeId(0)` or a duplicate.
    BadVoters,
    /// `voters` is not empty and does not contain this node's own id.
    SelfNotVoter,
    /// The heartbeat interval is zero or not shorter than the minimum election timeout.
    HeartbeatTooLong,
    /// The election timeout range is empty or its minimum is below 2 ticks.
    BadElectionTimeout,
    /// A size or count limit is zero.
    ZeroLimit(&'static str),
    /// `lease_reads` is on but `check_quorum` is off.
    LeaseWithoutCheckQuorum,
    /// `lease_drift_margin_ticks` leaves no lease at all.
    LeaseMarginTooLong,
    /// `lease_drift_margin_ticks` is 0: a follower's promise is sure for one
    /// tick less than the lease would assume.
    LeaseMarginTooShort,
}

/// A request refused for now: retry later, or elsewhere.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Busy {
    /// The leader holds too many uncommitted bytes
    /// ([`crate::Config::max_uncommitted_bytes`]).
    UncommittedBytes {
        /// Uncommitted bytes held now.
        held: u64,
        /// The limit.
        limit: u64,
    },
    /// Too many read-index requests are waiting
    /// ([`crate::Config::max_pending_reads`]).
    PendingReads {
        /// The limit.
        limit: u32,
    },
    /// The leader is handing leadership to another node and refuses
    /// proposals until that ends.
    LeadershipTransfer {
        /// The node leadership is being handed to.
        to: NodeId,
    },
    /// An election was asked for while this node still hears from a leader
    /// and `check_quorum` is on: the followers of that leader have promised
    /// not to elect anyone else for an election timeout (its lease reads
    /// rely on the promise). Use [`crate::Input::TransferLeader`] at the
    /// leader to move leadership on purpose, or wait for the leader to go
    /// quiet.
    LeaderAlive {
        /// The leader this node hears from; `None` while the node is within
        /// an election timeout of its own start (it may have promised a
        /// leader before it restarted).
        leader: Option<NodeId>,
    },
    /// This node lost data it may have acknowledged and takes no part in
    /// elections until it has caught up (see [`crate::Restored::lost_data`]).
    CatchingUp,
}

/// Restored state that cannot be right.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum RestoreError {
    /// The restored entries are not contiguous from index 1 with
    /// non-decreasing terms.
    BadLog {
        /// The index at which the log stops making sense.
        at: Index,
    },
    /// The applied index is beyond the last restored entry.
    AppliedBeyondLog {
        /// The applied index given.
        applied: Index,
        /// The last index of the restored log.
        last: Index,
    },
    /// The restored configuration, or the membership entry at `at`, does
    /// not hold together (see [`crate::ConfState`]).
    BadMembership {
        /// The index of the entry (0: `Restored::conf_state`).
        at: Index,
    },
    /// The node lost data (see [`crate::Restored::lost_data`]) and is the
    /// only voter: there is no one to catch up from.
    LostDataWithoutPeers,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotLeader { leader: Some(l) } => {
                write!(
                    f,
                    "not the leader; node {l} leads this term: send the proposal there"
                )
            }
            Error::NotLeader { leader: None } => {
                write!(
                    f,
                    "not the leader and no leader is known: retry after an election"
                )
            }
            Error::Busy(b) => fmt::Display::fmt(b, f),
            Error::Misuse(m) => fmt::Display::fmt(m, f),
            Error::Config(c) => write!(f, "invalid config: {c}"),
            Error::Restore(r) => write!(f, "invalid restored state: {r}"),
            Error::Membership(m) => write!(f, "membership: {m}"),
        }
    }
}

impl fmt::Display for Misuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misuse::AdvanceUnknown { id, last_issued } => write!(
                f,
                "advance({id}) but the last Ready handed out is {last_issued}: pass the id of a Ready you received"
            ),
            Misuse::AdvanceBackwards {
                id,
                last_acknowledged,
            } => write!(
                f,
                "advance({id}) but Readies up to {last_acknowledged} are already acknowledged: acknowledge each Ready once, in order"
            ),
            Misuse::EmptyProposal => {
                write!(f, "an empty proposal batch: propose at least one command")
            }
            Misuse::TransferToNonVoter(n) => write!(
                f,
                "cannot transfer leadership to {n}: it is not a voter of this cluster"
            ),
        }
    }
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Busy::UncommittedBytes { held, limit } => write!(
                f,
                "{held} uncommitted bytes at the leader, limit {limit}: retry once earlier proposals commit"
            ),
            Busy::PendingReads { limit } => write!(
                f,
                "{limit} read requests already waiting: retry once earlier reads complete"
            ),
            Busy::LeadershipTransfer { to } => write!(
                f,
                "leadership is being transferred to {to}: retry there shortly"
            ),
            Busy::LeaderAlive { leader: Some(l) } => write!(
                f,
                "node {l} still leads and its followers promised not to elect another leader \
                 for an election timeout: transfer leadership from it (TransferLeader) instead"
            ),
            Busy::LeaderAlive { leader: None } => write!(
                f,
                "this node started less than an election timeout ago and may have promised a \
                 leader not to elect another: retry after an election timeout"
            ),
            Busy::CatchingUp => write!(
                f,
                "this node lost data and takes no part in elections until it has caught up \
                 with a leader of a newer term: retry later"
            ),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroId => write!(f, "id is 0, which is reserved: number nodes from 1"),
            ConfigError::BadVoters => write!(f, "voters must not contain 0 or a duplicate"),
            ConfigError::SelfNotVoter => write!(
                f,
                "voters must include this node's own id (leave voters empty on a node that joins a running cluster)"
            ),
            ConfigError::HeartbeatTooLong => write!(
                f,
                "heartbeat_interval_ticks must be at least 1 and below election_timeout_ticks_min (10x shorter is usual)"
            ),
            ConfigError::BadElectionTimeout => write!(
                f,
                "election_timeout_ticks_min must be at least 2 and at most election_timeout_ticks_max"
            ),
            ConfigError::ZeroLimit(name) => write!(f, "{name} must be at least 1"),
            ConfigError::LeaseWithoutCheckQuorum => write!(
                f,
                "lease_reads needs check_quorum: without it a deposed leader could keep its lease"
            ),
            ConfigError::LeaseMarginTooLong => write!(
                f,
                "lease_drift_margin_ticks must be below election_timeout_ticks_min"
            ),
            ConfigError::LeaseMarginTooShort => write!(
                f,
                "lease_drift_margin_ticks is 0; a follower's promise is sure for one tick less \
                 than a lease of election_timeout_ticks_min: set it to 1 or more"
            ),
        }
    }
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::BadLog { at } => write!(
                f,
                "the restored log breaks at index {at}: entries must run from 1 without gaps, with non-decreasing terms"
            ),
            RestoreError::AppliedBeyondLog { applied, last } => write!(
                f,
                "applied index {applied} is beyond the last restored entry {last}: apply only entries the Ready handed out as committed"
            ),
            RestoreError::BadMembership { at } => write!(
                f,
                "the configuration restored at index {at} is not valid: restore the log and conf_state the node handed out"
            ),
            RestoreError::LostDataWithoutPeers => write!(
                f,
                "this node lost data and is the only voter, so nothing can bring it back: \
                 restore its data from a backup"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

impl From<Busy> for Error {
    fn from(b: Busy) -> Self {
        Error::Busy(b)
    }
}

impl From<Misuse> for Error {
    fn from(m: Misuse) -> Self {
        Error::Misuse(m)
    }
}

impl From<ConfigError> for Error {
    fn from(c: ConfigError) -> Self {
        Error::Config(c)
    }
}

impl From<MembershipError> for Error {
    fn from(m: MembershipError) -> Self {
        Error::Membership(m)
    }
}

impl From<RestoreError> for Error {
    fn from(r: RestoreError) -> Self {
        Error::Restore(r)
    }
}
