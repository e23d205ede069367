//! The wire types: messages between nodes, log entries and the hard state.
//!
//! Everything here derives `serde` so the host can choose its codec; the crate's
//! own is [`crate::codec`]. These types carry data only: whether a message is
//! acceptable is decided by the node when it steps it, never here.

use alloc::vec::Vec;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::entries::Entries;
use crate::types::{Index, LogId, NodeId, Term};

/// What an entry carries.
///
/// New kinds will be added (snapshot markers among them). A host that
/// meets a committed entry of a kind it does not know must not skip it
/// silently: its state machine would diverge from the nodes that do know
/// it. Stop applying and report the node as needing an upgrade.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum EntryKind {
    /// An application command: `data` is the host's proposal.
    Normal,
    /// The empty entry a new leader appends at the start of its term (§5.4.2,
    /// §8): it lets entries of earlier terms commit without waiting for a client
    /// write. Its `data` is empty; the host skips it when applying.
    Noop,
    /// A configuration change: `data` is a [`crate::MembershipEntry`]
    /// (decode it with [`crate::MembershipEntry::decode`]). The node takes
    /// the configuration in when the entry reaches its log; the host needs
    /// it only for its own bookkeeping (a new member's address, say) and
    /// otherwise skips it when applying.
    Membership,
}

/// One log entry.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The position of the entry in the log.
    pub index: Index,
    /// What the entry carries.
    pub kind: EntryKind,
    /// The payload. Shared, never copied, from proposal to apply.
    pub data: Bytes,
}

impl Entry {
    /// The id of this entry.
    #[inline]
    pub fn id(&self) -> LogId {
        LogId::new(self.term, self.index)
    }

    /// An estimate of the bytes this entry occupies in a message, used for the
    /// size limits of messages and Readies.
    #[inline]
    pub fn size_bytes(&self) -> u64 {
        // term + index + kind + length prefix, rounded up, plus the payload.
        24 + self.data.len() as u64
    }
}

/// The state a node must persist before it acts on it (§5, Figure 2: "persistent
/// state on all servers"), plus the commit index, which is saved for a faster
/// restart but is not needed for safety.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest index known to be committed whose entry was already durable
    /// in this node's log when the hard state was produced, so a restart can
    /// trust it even if the hard state outlived the entries written with it.
    pub commit: Index,
}

/// A message between two nodes.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The sender's term when it sent the message.
    pub term: Term,
    /// What the message says.
    pub body: Body,
}

/// The content of a [`Message`].
///
/// New kinds will be added. A host routes messages by [`Message::to`] and
/// need not look inside; one that does (to count or prioritise) treats a
/// kind it does not know as an ordinary message and delivers it.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Body {
    /// A candidate asks for a vote (§5.2). `last_log` is the id of the
    /// candidate's last entry, for the up-to-date check (§5.4.1).
    RequestVote {
        /// The candidate's last log entry.
        last_log: LogId,
        /// The election was started by the leader's [`Body::TimeoutNow`]
        /// (leadership transfer): it overrides leader stickiness.
        transfer: bool,
    },
    /// The answer to [`Body::RequestVote`].
    RequestVoteResponse {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// A pre-candidate asks whether it could win an election (thesis §9.6),
    /// without changing anyone's term. The message's term is the term the
    /// sender would campaign in.
    PreVote {
        /// The pre-candidate's last log entry.
        last_log: LogId,
    },
    /// The answer to [`Body::PreVote`]. When granted, its term is the
    /// proposed term; when refused, the responder's own term.
    PreVoteResponse {
        /// Whether the pre-vote was granted.
        granted: bool,
    },
    /// The leader replicates entries (§5.3). With no entries it still carries
    /// the commit index and probes the follower's log.
    AppendEntries {
        /// The entry just before `entries`, for the consistency check.
        prev: LogId,
        /// The entries to store, contiguous from `prev.index + 1`. Shared
        /// with the leader's log: sending them copies no entry.
        entries: Entries,
        /// The leader's commit index.
        commit: Index,
    },
    /// The answer to [`Body::AppendEntries`].
    AppendEntriesResponse(AppendResponse),
    /// The leader's periodic heartbeat. `commit` is never beyond what the
    /// follower is known to hold, so the follower can adopt it directly.
    Heartbeat {
        /// The commit index the follower may adopt.
        commit: Index,
        /// The leader's heartbeat round, echoed in the response. Read-index
        /// requests and leases are confirmed by a quorum echoing a round.
        round: u64,
    },
    /// The answer to [`Body::Heartbeat`].
    HeartbeatResponse {
        /// The round of the heartbeat answered.
        round: u64,
    },
    /// The leader tells a caught-up follower to start an election at once
    /// (leadership transfer).
    TimeoutNow,
    /// The leader tells a follower that has every entry it was sent about a
    /// new commit index. One way: it needs no answer, so a commit costs one
    /// message per follower instead of an empty AppendEntries and its ack.
    /// Like [`Body::Heartbeat`]'s, `commit` is never beyond what the follower
    /// is known to hold.
    Commit {
        /// The commit index the follower may adopt.
        commit: Index,
    },
    /// A follower forwards client proposals to the leader.
    Propose {
        /// The commands, in order.
        data: Vec<Bytes>,
    },
    /// A follower forwards a read-index request to the leader.
    ReadIndex {
        /// The follower's request context, echoed back.
        ctx: u64,
    },
    /// The leader's answer to [`Body::ReadIndex`]: reads may be served once
    /// the follower has applied up to `index`.
    ReadIndexResponse {
        /// The request context.
        ctx: u64,
        /// The read index; `None` if the leader could not serve the read.
        index: Option<Index>,
    },
}

/// The outcome of an [`Body::AppendEntries`] at the follower.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum AppendResponse {
    /// The follower's log now matches the leader's up to `match_index`, and
    /// those entries are durable at the follower.
    Success {
        /// The last index known to match the leader's log.
        match_index: Index,
    },
    /// The consistency check failed at `rejected` (the `prev.index` of the
    /// request). `hint` is the follower's last entry at or below `rejected`
    /// whose term is at most the request's `prev.term`: the leader can skip
    /// every index after it, one term at a time instead of one entry at a time.
    Reject {
        /// The `prev.index` that failed the check.
        rejected: Index,
        /// Where the follower's log may match the leader's.
        hint: LogId,
    },
    /// The follower was told of a commit index beyond its log (by a
    /// [`Body::Heartbeat`] or [`Body::Commit`], which the leader never sends
    /// beyond what it believes the follower holds): its log went backwards
    /// (lost writes, a wiped disk, a restore from an old copy). The leader
    /// forgets what it believed the follower held and probes it from `last`.
    Behind {
        /// The follower's last entry.
        last: LogId,
    },
}

impl Message {
    /// Whether this message kind answers a request (as opposed to starting one).
    pub fn is_response(&self) -> bool {
        matches!(
            self.body,
            Body::RequestVoteResponse { .. }
                | Body::PreVoteResponse { .. }
                | Body::AppendEntriesResponse(_)
                | Body::HeartbeatResponse { .. }
                | Body::ReadIndexResponse { .. }
        )
    }
}
