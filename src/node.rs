//! [`Node`]: the public state machine. It turns inputs into [`Ready`] batches
//! and holds back what must wait for durability until [`Node::advance`].
//!
//! The protocol itself lives in `raft/`; this module owns the contract with
//! the host: numbering Readies, remembering what each one asked to persist,
//! and releasing held messages, the node's own vote and its own match index
//! only when the host says they are durable.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::config::Config;
use crate::durability::Durability;
use crate::entries::Entries;
use crate::error::{Error, Misuse, RestoreError};
use crate::input::Input;
use crate::log::RaftLog;
use crate::membership::{ConfLog, ConfState, MembershipEntry};
use crate::message::{Entry, EntryKind, HardState};
use crate::raft::Raft;
use crate::ready::{Parts, Ready, ReadyId, SoftState};
use crate::status::{PeerProgress, Status};
use crate::types::{Index, LogId, NodeId, Term};

/// What the host persisted, handed back to [`Node::new`] on restart. For a
/// brand-new node use `Restored::default()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// The last hard state saved.
    pub hard_state: HardState,
    /// The durable log, contiguous from index 1.
    pub entries: Vec<Entry>,
    /// The configuration in force before the first of `entries`; `None`
    /// for the founding voters of [`Config::voters`]. The membership entries
    /// of `entries` are taken in on top of it, so a host that keeps its log
    /// need not persist configurations separately.
    pub conf_state: Option<ConfState>,
    /// The highest index the state machine has applied. Committed entries
    /// above it are handed out again; none at or below it are.
    pub applied: Index,
    /// The host knows this node's durable state is incomplete: its data
    /// directory was wiped, or its log was damaged and the operator chose to
    /// go on with what survived. (A log that ends below `hard_state.commit`
    /// proves the same and is treated alike without being told.)
    ///
    /// Such a node may have acknowledged entries it no longer holds, and a
    /// leader may have counted those acknowledgements to commit them, so its
    /// vote could elect a leader that lacks a committed entry. Until it has
    /// caught up, the node refuses votes and pre-votes, does not campaign
    /// and does not confirm read rounds ([`crate::Status::recovering`]). It
    /// has caught up once it durably holds an entry committed in a term
    /// newer than the one it restored: that term's leader was elected
    /// without this node, so it holds every entry committed before its term,
    /// and so does this node's log up to that entry. It keeps acknowledging
    /// appends meanwhile: an acknowledgement states what is durable now.
    ///
    /// What this cannot repair: a wiped node has also forgotten its term and
    /// vote, so it might vote twice in a term it forgot, or acknowledge a
    /// deposed leader of a term older than the one it forgot. Only a
    /// minority of nodes may lose data at once, and a wiped node is safest
    /// given a new identity.
    pub lost_data: bool,
}

/// The emptied bodies of handled Readies, with their vectors' buffers, for
/// reuse.
type Spares = Vec<Box<Parts>>;

/// One Raft node.
///
/// Methods by kind:
/// - inputs: [`Node::step`] (ticks, messages, proposals, ...) and
///   [`Node::advance`] (the host's durability acknowledgement);
/// - outputs: each returns a [`Ready`], which the host handles in order of id;
/// - getters: [`Node::status`], [`Node::id`], [`Node::role`], ...
///
/// The host calls `step` for every input, handles each Ready (persist, send,
/// apply), and after making the writes durable calls `advance` with the id of
/// the last durable Ready. See the crate docs for the loop.
// `repr(C)`: the flags an idle tick reads sit next to the start of `raft`.
#[repr(C)]
pub struct Node {
    /// Whether the bookkeeping buffers may hold heap memory worth freeing.
    buffers_in_use: bool,
    /// Whether committed entries wait beyond the last Ready's byte limit.
    committed_backlog: bool,
    raft: Raft,
    /// Emptied bodies of handled Readies, given back by `recycle`. `None`
    /// (no allocation) in the many idle nodes of a multi-raft process.
    spares: Option<Spares>,
    /// The role and leader last handed to the host.
    emitted_ss: SoftState,
}

impl Node {
    /// Creates a node from its config and what the host persisted.
    ///
    /// A crash may leave entries durable without the hard state that came
    /// with them, or the other way round; restore copes with both. It refuses
    /// state that no crash can produce.
    pub fn new(config: Config, restored: Restored) -> Result<Node, Error> {
        config.validate()?;
        let Restored {
            hard_state,
            entries,
            conf_state,
            applied,
            lost_data,
        } = restored;
        let mut prev = LogId::ZERO;
        for e in &entries {
            if e.index != prev.index.next() || e.term < prev.term {
                return Err(RestoreError::BadLog { at: e.index }.into());
            }
            prev = e.id();
        }
        let last = prev;
        if applied > last.index {
            return Err(RestoreError::AppliedBeyondLog {
                applied,
                last: last.index,
            }
            .into());
        }
        let base = match conf_state {
            Some(c) => {
                c.check()
                    .map_err(|_| RestoreError::BadMembership { at: Index(0) })?;
                c
            }
            None => ConfState::new(config.voters.iter().copied()),
        };
        let mut confs = ConfLog::new(Index(0), base);
        for e in entries.iter().filter(|e| e.kind == EntryKind::Membership) {
            let m = MembershipEntry::decode(&e.data)
                .map_err(|_| RestoreError::BadMembership { at: e.index })?;
            confs.push(e.index, m.conf);
        }
        let lost_data = lost_data || hard_state.commit > last.index;
        let current = confs.current();
        if lost_data && current.voters.len() == 1 && current.is_voter(config.id) {
            return Err(RestoreError::LostDataWithoutPeers.into());
        }
        // Entries durable without their hard state: the term they prove.
        let (term, vote) = if last.term > hard_state.term {
            (last.term, None)
        } else {
            (hard_state.term, hard_state.vote)
        };
        // The commit index is a hint for a faster restart, not needed for
        // safety: clamp it to what survived.
        let commit = hard_state.commit.max(applied).min(last.index);
        let log = RaftLog::restore(entries, commit);
        let dur = Durability::restore(last.index, applied, HardState { term, vote, commit });
        confs.compact(commit);
        let mut raft = Raft::new(config, term, vote, log, dur, confs);
        if lost_data {
            raft.start_recovery();
        }
        let node = Node {
            raft,
            buffers_in_use: false,
            committed_backlog: false,
            spares: None,
            emitted_ss: SoftState {
                role: crate::Role::Follower,
                leader: None,
            },
        };
        node.check_invariants();
        Ok(node)
    }

    /// Feeds one input to the node and returns the work it produced.
    ///
    /// On `Err` the node is unchanged and no Ready id is used.
    #[inline]
    pub fn step(&mut self, input: Input) -> Result<Ready, Error> {
        match input {
            Input::Tick => {
                self.raft.tick();
                self.release_idle_buffers();
            }
            Input::Ticks(n) => {
                self.raft.tick_many(n);
                self.release_idle_buffers();
            }
            Input::Message(m) => self.raft.step_message(m),
            Input::Propose(data) => self.raft.propose(smallvec::smallvec![data])?,
            Input::ProposeBatch(batch) => {
                if batch.is_empty() {
                    return Err(Misuse::EmptyProposal.into());
                }
                self.raft.propose(batch.into())?
            }
            Input::Campaign => self.raft.campaign_now()?,
            Input::ReportUnreachable(peer) => self.raft.report_unreachable(peer),
            Input::ReadIndex(ctx) => self.raft.read_index(ctx)?,
            Input::TransferLeader(to) => self.raft.transfer_leader(to)?,
            Input::AbortTransfer => self.raft.abort_transfer()?,
            Input::StepDown => self.raft.step_down()?,
            Input::ForgetLeader => self.raft.forget_leader()?,
            Input::ChangeMembership(change) => self.raft.propose_membership(change)?,
            Input::LeaveJoint => self.raft.leave_joint()?,
        }
        self.raft.maybe_end_recovery();
        Ok(self.build_ready())
    }

    /// The same as `step(Input::Tick)`, except that a tick that changes
    /// nothing the host must see returns `None` and uses no Ready id. For
    /// hosts that tick many groups: an idle tick costs a few nanoseconds.
    #[inline]
    pub fn tick(&mut self) -> Option<Ready> {
        let acted = self.raft.tick();
        // The idle group of a multi-raft process: nothing happened, nothing
        // waits, no buffer to free. Reads one cache line.
        if !acted && !self.committed_backlog && !self.buffers_in_use {
            self.check_invariants();
            return None;
        }
        self.tick_busy(acted)
    }

    /// The rest of [`Node::tick`], out of line so that the idle path stays
    /// a handful of instructions.
    #[inline(never)]
    fn tick_busy(&mut self, acted: bool) -> Option<Ready> {
        self.release_idle_buffers();
        // Every other input ends with everything handed out, except
        // committed entries held back by the per-Ready byte limit.
        if (!acted && !self.committed_backlog) || self.is_quiet() {
            self.check_invariants();
            return None;
        }
        Some(self.build_nonempty())
    }

    /// Gives a handled Ready back so that its memory is reused. Optional:
    /// a host that recycles its Readies (after taking or draining what it
    /// keeps) makes no allocation per Ready in steady state. Whatever the
    /// host left in the Ready is dropped. Recycling says nothing about
    /// durability; `advance` still does.
    #[inline]
    pub fn recycle(&mut self, ready: Ready) {
        const KEEP: usize = 4;
        let Some(mut parts) = ready.parts else {
            return;
        };
        let spares = self.spares.get_or_insert_with(Vec::new);
        if spares.len() < KEEP {
            parts.clear();
            spares.push(parts);
        }
        self.buffers_in_use = true;
    }

    /// Acknowledges that every Ready up to and including `id` has been handled
    /// and its writes are durable. Returns the follow-up work: held messages
    /// now safe to send, entries that became committed, and so on.
    pub fn advance(&mut self, id: ReadyId) -> Result<Ready, Error> {
        let last_issued = self.raft.out.last_issued();
        if id.0 > last_issued {
            return Err(Misuse::AdvanceUnknown {
                id: id.0,
                last_issued,
            }
            .into());
        }
        let acknowledged = self.raft.out.acknowledged();
        if id.0 <= acknowledged {
            return Err(Misuse::AdvanceBackwards {
                id: id.0,
                last_acknowledged: acknowledged,
            }
            .into());
        }
        let persisted = self.raft.dur.acknowledge(id, &self.raft.log);
        self.raft.out.acknowledge(id);
        if persisted {
            self.raft.on_persisted();
            self.raft.maybe_end_recovery();
        }
        Ok(self.build_ready())
    }

    #[inline]
    fn build_ready(&mut self) -> Ready {
        if self.is_quiet() {
            // The common case of a tick or a heartbeat: nothing to hand out.
            let id = self.raft.out.next_ready();
            self.committed_backlog = false;
            self.check_invariants();
            return Ready::empty(id);
        }
        self.build_nonempty()
    }

    /// Builds a Ready of what the last input left for the host; the caller
    /// knows there is something.
    fn build_nonempty(&mut self) -> Ready {
        let mut parts = self.spares.as_mut().and_then(Vec::pop).unwrap_or_default();
        let raft = &mut self.raft;
        // What waits for this Ready's writes was filed under its id.
        let id = raft.out.seal(&mut parts.messages);
        let entries = raft.dur.take_unemitted(&raft.log);
        #[allow(unused_mut)]
        let mut term = raft.term;
        #[cfg(zaft_bugs)]
        if raft.bug == Some(crate::bugs::Bug::TermNotPersisted)
            && raft.vote.is_none()
            && raft.dur.emitted_hard_state().vote.is_none()
        {
            term = raft.dur.emitted_hard_state().term;
        }
        let hs = HardState {
            term,
            vote: raft.vote,
            // Never beyond our durable log: a crash may keep this hard state
            // but lose the entries written with it (two files, one fsync),
            // and a restart trusts the commit index it finds.
            commit: raft.dur.durable_commit(&raft.log),
        };
        let (hard_state, vote_changed) = raft.dur.emit_hard_state(hs);
        let mut committed = Entries::new();
        if raft.dur.has_committed(&raft.log) {
            committed = raft
                .dur
                .take_committed(&raft.log, raft.cfg.max_committed_bytes_per_ready);
            raft.settle_proposals(&mut parts.lost);
        }
        self.committed_backlog = raft.dur.has_committed(&raft.log);
        raft.dur.record(
            id,
            &entries,
            vote_changed.then_some((hs.term, hs.vote)),
            committed.last().map(|e| e.index),
        );
        let ss = SoftState {
            role: raft.role,
            leader: raft.leader,
        };
        if ss != self.emitted_ss {
            parts.soft_state = Some(ss);
            self.emitted_ss = ss;
        }
        parts.transfer_ended = raft.transfer_ended.take();
        if core::mem::take(&mut raft.conf_changed) {
            parts.conf_state = Some(raft.confs.current().clone());
        }
        parts.must_sync = vote_changed || !entries.is_empty();
        parts.entries = entries;
        parts.hard_state = hard_state;
        parts.committed = committed;
        parts.proposed = raft.proposed.take();
        // `read_states` goes on with the recycled (empty) buffer.
        core::mem::swap(&mut parts.read_states, &mut raft.read_states);
        let ready = Ready {
            id,
            parts: Some(parts),
        };
        // Only what really holds memory needs the next tick's attention: a
        // heartbeat answered leaves nothing behind.
        self.buffers_in_use = self.spares.is_some()
            || self.raft.dur.holds_memory()
            || self.raft.out.holds_memory()
            || self.raft.read_states.capacity() > 0;
        self.check_invariants();
        ready
    }

    /// Whether the last input left nothing for the host.
    #[inline]
    fn is_quiet(&self) -> bool {
        let r = &self.raft;
        r.out.is_quiet()
            && r.read_states.is_empty()
            && r.proposed.is_none()
            && r.transfer_ended.is_none()
            && !r.conf_changed
            && r.role == self.emitted_ss.role
            && r.leader == self.emitted_ss.leader
            && r.dur.is_quiet(&r.log)
            && r.term == r.dur.emitted_hard_state().term
            && r.vote == r.dur.emitted_hard_state().vote
            && r.dur.durable_commit(&r.log) == r.dur.emitted_hard_state().commit
    }

    /// Frees the buffers of the durability bookkeeping once they are empty.
    /// Done on ticks: a busy node refills them long before its next tick, and
    /// an idle one (most groups of a multi-raft process) keeps nothing.
    #[inline]
    fn release_idle_buffers(&mut self) {
        if !self.buffers_in_use {
            return;
        }
        let idle = !self.raft.dur.is_waiting() && self.raft.read_states.is_empty();
        if idle && self.raft.out.release_idle_buffers() {
            self.raft.dur.release_idle_buffers();
            self.raft.read_states = Vec::new();
            self.spares = None;
            self.buffers_in_use = false;
        }
    }

    #[inline]
    fn check_invariants(&self) {
        #[cfg(debug_assertions)]
        {
            self.raft.check_invariants();
            assert!(self.raft.out.acknowledged() <= self.raft.out.last_issued());
        }
    }

    // ---- getters ------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.raft.id
    }

    /// The current role.
    pub fn role(&self) -> crate::Role {
        self.raft.role
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.raft.term
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.leader
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.role == crate::Role::Leader
    }

    /// Whom this node voted for in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.raft.vote
    }

    /// The highest index known to be committed.
    pub fn commit(&self) -> Index {
        self.raft.log.committed
    }

    /// The highest index the host has applied (acknowledged by `advance`).
    pub fn applied(&self) -> Index {
        self.raft.dur.applied()
    }

    /// The last entry of the log, durable or not.
    pub fn last_log(&self) -> LogId {
        self.raft.log.last_id()
    }

    /// The highest index known to be durable in this node's own log.
    pub fn persisted(&self) -> Index {
        self.raft.dur.stable()
    }

    /// Messages dropped so far, by reason.
    pub fn dropped(&self) -> crate::DropCounters {
        self.raft.dropped
    }

    /// Whether the node is recovering from lost data (see
    /// [`Restored::lost_data`]).
    pub fn is_recovering(&self) -> bool {
        self.raft.is_recovering()
    }

    /// Each follower's replication progress, while this node leads (empty
    /// otherwise). Allocates nothing: a metrics scrape of many groups can
    /// visit them all.
    pub fn progress(&self) -> impl Iterator<Item = PeerProgress> + '_ {
        let me = self.raft.id;
        self.raft
            .lead
            .iter()
            .flat_map(|l| l.progress.iter())
            .filter(move |p| p.id != me)
            .map(|p| PeerProgress {
                id: p.id,
                match_index: p.match_index,
                next_index: p.next_index,
                state: p.state,
                inflight: p.inflight() as u32,
            })
    }

    /// A snapshot of the node's state, for monitoring and tests. It
    /// allocates (the per-peer progress); the getters above do not.
    pub fn status(&self) -> Status {
        let r = &self.raft;
        Status {
            id: r.id,
            role: r.role,
            term: r.term,
            vote: r.vote,
            leader: r.leader,
            commit: r.log.committed,
            applied: r.dur.applied(),
            last_log: r.log.last_id(),
            persisted: r.dur.stable(),
            progress: self.progress().collect(),
            dropped: r.dropped,
            recovering: r.is_recovering(),
            conf_state: r.confs.current().clone(),
        }
    }

    /// Runs every invariant check of the node's state, the whole log
    /// included (O(log length)), and panics on a broken one. Debug builds run
    /// the same checks after every input; this makes them available to the
    /// simulator's release soaks.
    #[cfg(feature = "sim")]
    pub fn assert_invariants(&self) {
        self.raft.check_invariants_full();
        assert!(self.raft.out.acknowledged() <= self.raft.out.last_issued());
    }

    /// Makes this node commit a classic Raft bug from now on, so tests can
    /// show the simulator catches it. Only in the bug hunts' builds
    /// (`RUSTFLAGS="--cfg zaft_bugs"`, see `tests/bugs.rs`).
    #[cfg(zaft_bugs)]
    #[doc(hidden)]
    pub fn inject_bug(&mut self, bug: crate::bugs::Bug) {
        if bug == crate::bugs::Bug::ApplyTwiceAfterRestart {
            // Forget what the host said it applied: hand committed entries out again.
            self.raft.dur.forget_applied();
        }
        self.raft.bug = Some(bug);
    }

    /// The configuration in force: the last one in this node's log (see
    /// [`crate::ConfState`] and the crate docs, "Membership changes").
    pub fn conf_state(&self) -> &ConfState {
        self.raft.confs.current()
    }

    /// The index of the entry that carried the configuration in force (0
    /// for the founding one): the configuration is committed once
    /// [`Node::commit`] reaches it, and only then may the leader propose
    /// the next change.
    pub fn conf_index(&self) -> Index {
        self.raft.confs.current_index()
    }

    /// The node leadership is being transferred to, while a transfer runs.
    pub fn transferring_to(&self) -> Option<NodeId> {
        self.raft.lead.as_ref().and_then(|l| l.transferee)
    }

    /// How many proposals this node accepted and has not yet reported as
    /// committed or lost.
    pub fn pending_proposals(&self) -> usize {
        self.raft.pending_proposals()
    }
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.raft.id)
            .field("role", &self.raft.role)
            .field("term", &self.raft.term)
            .field("last_log", &self.raft.log.last_id())
            .field("commit", &self.raft.log.committed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Body, Message};

    fn follower() -> Node {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        Node::new(Config::new(NodeId(1), ids), Restored::default()).unwrap()
    }

    fn heartbeat(node: &mut Node, recycle: bool) {
        let hb = Message {
            from: NodeId(2),
            to: NodeId(1),
            term: Term(1),
            body: Body::Heartbeat {
                commit: Index(0),
                round: 1,
            },
        };
        let new_term = node.term() < Term(1);
        let ready = node.step(Input::Message(hb)).unwrap();
        // An answer in a term not yet durable waits for the advance that
        // makes it durable.
        let now = usize::from(!new_term);
        assert_eq!(ready.messages().len(), now, "the heartbeat is answered");
        let id = ready.id();
        if recycle {
            node.recycle(ready);
        }
        let follow_up = node.advance(id).unwrap();
        assert_eq!(follow_up.messages().len(), 1 - now);
    }

    fn holds_memory(n: &Node) -> bool {
        n.spares.is_some()
            || n.raft.dur.holds_memory()
            || n.raft.out.holds_memory()
            || n.raft.read_states.capacity() > 0
    }

    /// The idle tick skips the buffer check only when no buffer holds
    /// memory: an idle group of a multi-raft process keeps nothing.
    #[test]
    fn an_idle_tick_frees_what_the_last_ready_left_behind() {
        let mut n = follower();
        let idle_tick = |n: &mut Node| {
            assert_eq!(n.buffers_in_use, holds_memory(n));
            assert!(n.tick().is_none());
            assert!(!holds_memory(n), "freed on the first idle tick");
            assert!(!n.buffers_in_use);
        };
        // A new term to persist: the durability bookkeeping holds memory.
        heartbeat(&mut n, false);
        assert!(holds_memory(&n));
        idle_tick(&mut n);
        // A heartbeat answered in the same term leaves nothing behind.
        heartbeat(&mut n, false);
        assert!(!holds_memory(&n) && !n.buffers_in_use);
        idle_tick(&mut n);
        // A recycled Ready's body is kept until the next idle tick.
        heartbeat(&mut n, true);
        assert!(n.spares.is_some());
        idle_tick(&mut n);
    }
}
