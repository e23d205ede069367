//! [`Ready`]: the batch of work a node hands the host after each call, and
//! the contract of each of its parts.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use crate::entries::Entries;
use crate::message::{Entry, HardState, Message};
use crate::status::Role;
use crate::types::{Index, LogId, NodeId, Term};

/// The number of a [`Ready`]. Ids increase by one with every `Ready` a node
/// hands out, starting from 1 after every `Node::new`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ReadyId(pub(crate) u64);

impl ReadyId {
    /// The raw number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ReadyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ready#{}", self.0)
    }
}

/// The proposals a `Propose` or `ProposeBatch` input was given: contiguous
/// indexes `first..=last`, all in `term`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Proposed {
    /// The term the proposals were appended in.
    pub term: Term,
    /// The index of the first proposal.
    pub first: Index,
    /// The index of the last proposal.
    pub last: Index,
}

impl Proposed {
    /// The id of every proposal, in order.
    pub fn ids(&self) -> impl Iterator<Item = LogId> + '_ {
        (self.first.0..=self.last.0).map(move |i| LogId::new(self.term, Index(i)))
    }
}

/// The answer to a read-index request ([`crate::Input::ReadIndex`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReadState {
    /// The host's tag for the request.
    pub ctx: u64,
    /// Serve the read once the state machine has applied up to this index.
    /// `None` when the read could not be confirmed (leadership was lost or
    /// the leader refused): retry it.
    pub index: Option<Index>,
}

/// The node's role and the leader it knows, reported in a [`Ready`] when
/// either changed ([`Ready::soft_state`]): what a host needs to redirect
/// clients or fail their pending requests, without polling.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SoftState {
    /// The node's role now.
    pub role: Role,
    /// The leader of the node's current term, if known (itself when it
    /// leads).
    pub leader: Option<NodeId>,
}

/// How a leadership transfer ended ([`Ready::transfer_ended`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum TransferOutcome {
    /// The target campaigned in a newer term and this node stepped down on
    /// hearing it: leadership was handed over (the target wins unless it
    /// fails right then).
    Succeeded,
    /// The transfer did not finish within an election timeout; the leader
    /// leads on and takes proposals again.
    TimedOut,
    /// The host aborted it ([`crate::Input::AbortTransfer`]).
    Aborted,
    /// Leadership was lost some other way first (a newer term from another
    /// node, CheckQuorum, [`crate::Input::StepDown`]).
    LeadershipLost,
}

/// The end of a leadership transfer ([`Ready::transfer_ended`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TransferEnded {
    /// The node leadership was being handed to.
    pub to: NodeId,
    /// How it ended.
    pub outcome: TransferOutcome,
}

/// One batch of work for the host. Handle Readies in order of [`Ready::id`]:
///
/// 1. write [`Ready::entries`] to the log (truncate at the first entry's index,
///    then append) and [`Ready::hard_state`] if present;
/// 2. send [`Ready::messages`] (safe at once, before any fsync);
/// 3. apply [`Ready::committed`] in order;
/// 4. make the writes durable (one fsync may cover many Readies);
/// 5. call [`crate::Node::advance`] with the id of the last durable Ready,
///    and handle the Ready it returns the same way.
#[must_use = "a Ready holds messages to send and entries to persist; handle it and call advance()"]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub(crate) id: ReadyId,
    /// `None` when the Ready asks nothing of the host. Boxed: a Ready is
    /// moved several times on its way through the host's loop, and 16 bytes
    /// move in registers where 200 take a call to `memcpy`. The box comes
    /// back through [`crate::Node::recycle`].
    pub(crate) parts: Option<Box<Parts>>,
}

/// What a non-empty [`Ready`] carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Parts {
    pub entries: Entries,
    pub hard_state: Option<HardState>,
    pub messages: Vec<Message>,
    pub committed: Entries,
    pub proposed: Option<Proposed>,
    pub lost: Vec<LogId>,
    pub read_states: Vec<ReadState>,
    pub soft_state: Option<SoftState>,
    pub transfer_ended: Option<TransferEnded>,
    pub conf_state: Option<crate::membership::ConfState>,
    pub must_sync: bool,
}

impl Parts {
    /// Empties every part, keeping the vectors' buffers.
    pub fn clear(&mut self) {
        self.entries = Entries::new();
        self.hard_state = None;
        self.messages.clear();
        self.committed = Entries::new();
        self.proposed = None;
        self.lost.clear();
        self.read_states.clear();
        self.soft_state = None;
        self.transfer_ended = None;
        self.conf_state = None;
        self.must_sync = false;
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.hard_state.is_none()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.proposed.is_none()
            && self.lost.is_empty()
            && self.read_states.is_empty()
            && self.soft_state.is_none()
            && self.transfer_ended.is_none()
            && self.conf_state.is_none()
    }
}

impl Ready {
    #[inline]
    pub(crate) fn empty(id: ReadyId) -> Ready {
        Ready { id, parts: None }
    }

    /// This Ready's number, for [`crate::Node::advance`].
    pub fn id(&self) -> ReadyId {
        self.id
    }

    /// Entries to append to the durable log. They are contiguous. If the log
    /// already holds an entry at `entries()[0].index` or beyond, those entries
    /// are replaced: truncate the log at the first index, then append.
    #[inline]
    pub fn entries(&self) -> &[Entry] {
        self.parts.as_ref().map_or(&[], |p| &p.entries)
    }

    /// The hard state to save, if it changed. Save it atomically (all fields
    /// or none).
    #[inline]
    pub fn hard_state(&self) -> Option<&HardState> {
        self.parts.as_ref().and_then(|p| p.hard_state.as_ref())
    }

    /// Messages to send. Every one is safe to send right away, before the
    /// writes of this Ready are durable: messages that depend on durability
    /// (vote grants, append acknowledgements) are held inside the node and come
    /// out of the `advance` that acknowledges what they depend on. Messages may
    /// be lost, reordered or duplicated by the network without harm.
    #[inline]
    pub fn messages(&self) -> &[Message] {
        self.parts.as_ref().map_or(&[], |p| &p.messages)
    }

    /// Committed entries to apply to the state machine, in index order. Each
    /// committed entry is handed out exactly once (across restarts too, given
    /// the applied index at restore), and only once it is durable in this
    /// node's own log. Entries of kind [`crate::EntryKind::Noop`] carry nothing
    /// to apply but still count as applied.
    #[inline]
    pub fn committed(&self) -> &[Entry] {
        self.parts.as_ref().map_or(&[], |p| &p.committed)
    }

    /// The `(term, index)` given to the proposals of the input that produced
    /// this Ready, if it was a proposal. When an entry with that id appears in
    /// [`Ready::committed`] the proposal has succeeded; if its id appears in
    /// [`Ready::lost`] it never will.
    #[inline]
    pub fn proposed(&self) -> Option<Proposed> {
        self.parts.as_ref().and_then(|p| p.proposed)
    }

    /// Proposals accepted by this node that will never commit: a different
    /// entry was committed at their index (a new leader overwrote them). The
    /// client can be told to retry.
    #[inline]
    pub fn lost(&self) -> &[LogId] {
        self.parts.as_ref().map_or(&[], |p| &p.lost)
    }

    /// Answers to read-index requests.
    #[inline]
    pub fn read_states(&self) -> &[ReadState] {
        self.parts.as_ref().map_or(&[], |p| &p.read_states)
    }

    /// The node's role and leader, if either changed since the last Ready
    /// that reported them. A host redirects clients, or fails the requests
    /// it holds for a leadership that ended, here rather than by polling.
    #[inline]
    pub fn soft_state(&self) -> Option<SoftState> {
        self.parts.as_ref().and_then(|p| p.soft_state)
    }

    /// The configuration in force, when it changed with this Ready: a
    /// membership entry reached the log, or a truncation removed one. It is
    /// already in force (its entry is among [`Ready::entries`] of this or an
    /// earlier Ready); the host updates whom it sends to and may persist it
    /// alongside the log, but need not: a restart recomputes it from
    /// [`crate::Restored::conf_state`] and the membership entries of the
    /// restored log.
    #[inline]
    pub fn conf_state(&self) -> Option<&crate::membership::ConfState> {
        self.parts.as_ref().and_then(|p| p.conf_state.as_ref())
    }

    /// A leadership transfer that ended with this Ready, and how.
    #[inline]
    pub fn transfer_ended(&self) -> Option<TransferEnded> {
        self.parts.as_ref().and_then(|p| p.transfer_ended)
    }

    /// Whether this Ready's writes must be durable before `advance`: it
    /// carries entries, or a hard state whose term or vote changed. When
    /// false, whatever the Ready asks to write (a hard state that only moves
    /// `commit`, which is a restart hint) may be saved lazily, and `advance`
    /// may follow without an fsync.
    #[inline]
    pub fn must_sync(&self) -> bool {
        self.parts.as_ref().is_some_and(|p| p.must_sync)
    }

    /// Whether this Ready asks nothing of the host. An empty Ready still has
    /// an id, and may be passed to `advance` or skipped.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.parts.as_ref().is_none_or(|p| p.is_empty())
    }

    /// Moves the messages out one by one, keeping the buffer for
    /// [`crate::Node::recycle`].
    #[inline]
    pub fn drain_messages(&mut self) -> DrainMessages<'_> {
        DrainMessages(self.parts.as_mut().map(|p| p.messages.drain(..)))
    }

    /// Moves the messages out, to send them without copying.
    #[inline]
    pub fn take_messages(&mut self) -> Vec<Message> {
        self.parts
            .as_mut()
            .map_or_else(Vec::new, |p| core::mem::take(&mut p.messages))
    }

    /// Moves the entries to persist out: a shared run, to keep (an
    /// in-memory log) or hand to another thread without copying an entry.
    #[inline]
    pub fn take_entries(&mut self) -> Entries {
        self.parts
            .as_mut()
            .map_or_else(Entries::new, |p| core::mem::take(&mut p.entries))
    }

    /// Moves the committed entries out: a shared run, to apply elsewhere
    /// without copying an entry.
    #[inline]
    pub fn take_committed(&mut self) -> Entries {
        self.parts
            .as_mut()
            .map_or_else(Entries::new, |p| core::mem::take(&mut p.committed))
    }
}

/// The messages of a [`Ready`], moved out one by one
/// ([`Ready::drain_messages`]).
#[derive(Debug)]
pub struct DrainMessages<'a>(Option<alloc::vec::Drain<'a, Message>>);

impl Iterator for DrainMessages<'_> {
    type Item = Message;

    #[inline]
    fn next(&mut self) -> Option<Message> {
        self.0.as_mut()?.next()
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.as_ref().map_or((0, Some(0)), |d| d.size_hint())
    }
}

impl ExactSizeIterator for DrainMessages<'_> {}

impl DoubleEndedIterator for DrainMessages<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Message> {
        self.0.as_mut()?.next_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NodeId;

    #[test]
    fn a_cleared_body_carries_nothing_into_the_next_ready() {
        let entry = Entry {
            term: Term(1),
            index: Index(1),
            kind: crate::EntryKind::Normal,
            data: bytes::Bytes::new(),
        };
        let mut p = Parts {
            entries: alloc::vec![entry.clone()].into(),
            hard_state: Some(HardState::default()),
            messages: alloc::vec![Message {
                from: NodeId(1),
                to: NodeId(2),
                term: Term(1),
                body: crate::Body::TimeoutNow,
            }],
            committed: alloc::vec![entry].into(),
            proposed: Some(Proposed {
                term: Term(1),
                first: Index(1),
                last: Index(1),
            }),
            lost: alloc::vec![LogId::new(Term(1), Index(1))],
            read_states: alloc::vec![ReadState {
                ctx: 1,
                index: None
            }],
            soft_state: Some(SoftState {
                role: Role::Leader,
                leader: Some(NodeId(1)),
            }),
            transfer_ended: Some(TransferEnded {
                to: NodeId(2),
                outcome: TransferOutcome::Aborted,
            }),
            conf_state: Some(crate::ConfState::new([NodeId(1)])),
            must_sync: true,
        };
        p.clear();
        assert!(p.is_empty(), "{p:?}");
        assert!(!p.must_sync);
        assert!(p.messages.capacity() > 0, "buffers are kept");
    }
}
