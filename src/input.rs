//! [`Input`]: everything that can happen to a node.
//!
//! Time, the network and the clients all reach the node through this one enum
//! and [`crate::Node::step`]. The node never reads a clock: a [`Input::Tick`] is
//! the only way time passes, and the host decides how long a tick is.

use alloc::vec::Vec;
use bytes::Bytes;

use crate::message::Message;
use crate::types::NodeId;

/// One input to [`crate::Node::step`]. New inputs will be added; a host
/// only builds the ones it uses.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Input {
    /// One unit of logical time has passed. Election timeouts and heartbeat
    /// intervals are counted in ticks (see [`crate::Config`]).
    Tick,
    /// `n` units of logical time have passed: the same as `n` [`Input::Tick`]s
    /// in one step (and one Ready).
    ///
    /// A host ticks by elapsed monotonic time, not by loop iterations: after
    /// any stall (a GC pause, swapping, a stopped process) it delivers every
    /// tick that was missed, with `Ticks(missed)`, **before** it steps any
    /// message, proposal or read that arrived meanwhile. Lease reads depend
    /// on it: a leader's lease is counted in its own ticks, so ticks that
    /// never reach the node would let a lease outlive the real time it was
    /// granted for. Zero ticks change nothing.
    Ticks(u32),
    /// A message from a peer. Stale, duplicated, reordered, misaddressed or
    /// malformed messages are dropped and counted in
    /// [`crate::Status::dropped`]; none of them can panic the node.
    Message(Message),
    /// A client command to append to the replicated log. Only the leader
    /// accepts proposals; elsewhere `step` returns [`crate::Error::NotLeader`].
    /// The `(term, index)` it was given is in [`crate::Ready::proposed`].
    Propose(Bytes),
    /// Several client commands at once: one append per follower carries them
    /// all. Accepted or refused as a whole.
    ProposeBatch(Vec<Bytes>),
    /// Start an election now, without waiting for the election timeout
    /// (with PreVote on, a pre-vote round comes first).
    ///
    /// Refused with [`crate::Busy::LeaderAlive`] while `check_quorum` is on
    /// and this node hears from a leader (or started less than an election
    /// timeout ago): that leader's followers promised it not to elect anyone
    /// else for an election timeout, and its lease reads rely on that
    /// promise. Move leadership on purpose with [`Input::TransferLeader`].
    /// Refused with [`crate::Busy::CatchingUp`] while the node recovers from
    /// lost data (see [`crate::Restored::lost_data`]).
    Campaign,
    /// Ask for a linearizable read. `ctx` is the host's own tag for the
    /// request. The answer comes in [`crate::Ready::read_states`]: once the
    /// host has applied up to the index given there, it may serve the read
    /// from its state machine. A follower forwards the request to its leader;
    /// if the network loses the request or the answer, no `ReadState` comes,
    /// so a host serving reads on followers times them out and retries.
    /// On a node that knows no leader, `step` returns
    /// [`crate::Error::NotLeader`].
    ReadIndex(u64),
    /// Hand leadership to another voter (leader only). The leader first
    /// brings the target up to date, then tells it to campaign at once;
    /// proposals are refused meanwhile. The transfer is abandoned after an
    /// election timeout.
    TransferLeader(NodeId),
    /// Abort the leadership transfer in progress (leader only; nothing to
    /// do if none runs). Proposals are taken again at once;
    /// [`crate::Ready::transfer_ended`] reports it. The lease stays
    /// forfeited for the rest of the term: the `TimeoutNow` may still arrive.
    /// `TransferLeader` to the leader itself does the same.
    AbortTransfer,
    /// The leader gives up leadership at once, without picking a successor
    /// (for maintenance): it becomes a follower in the same term, fails the
    /// reads it holds, and the others elect a new leader once their
    /// election timeouts pass. On a node that does not lead, `step` returns
    /// [`crate::Error::NotLeader`].
    StepDown,
    /// A follower forgets the leader it knows (the host learnt it is gone),
    /// so that it stops forwarding to it and supports another candidate
    /// without waiting out its election timeout. Refused with
    /// [`crate::Busy::LeaderAlive`] while `check_quorum` is on: leases rely
    /// on followers keeping their promise for a full election timeout. Does
    /// nothing on a leader (see [`Input::StepDown`]) or a node that knows
    /// no leader.
    ForgetLeader,
    /// The host could not reach this peer (a connection failed or a send
    /// queue overflowed). The leader stops streaming to it optimistically and
    /// probes it instead.
    ReportUnreachable(NodeId),
    /// Proposes a membership change (leader only). It goes into the log as
    /// an entry of kind [`crate::EntryKind::Membership`] and is in force on
    /// each node as soon as the entry is in its log; the Ready's
    /// `proposed` gives its `(term, index)` and [`crate::Ready::conf_state`]
    /// reports each configuration a node takes in. Refused (with
    /// [`crate::MembershipError`]) while another change is uncommitted,
    /// before the leader has committed an entry of its own term, during a
    /// joint configuration, and when the change itself is invalid.
    ChangeMembership(crate::MembershipChange),
    /// Leaves the joint configuration in force (leader only): needed only
    /// after a change made with [`crate::Transition::JointExplicit`].
    LeaveJoint,
}
