//! The protocol: one node's Raft state and its reaction to each input.
//!
//! `Raft` decides; it never does I/O and never talks to the host directly.
//! What it wants sent goes to `msgs` (safe now) or `held` (only once this
//! step's writes are durable); what it wants persisted is read off the log and
//! the hard state by [`crate::Node`], which also owns the Ready bookkeeping.
//!
//! Split by concern: `election.rs` (timeouts, votes, role changes) and
//! `replication.rs` (appends, heartbeats, commitment).

mod election;
mod replication;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::Bytes;

use crate::config::Config;
use crate::error::Error;
use crate::log::RaftLog;
use crate::message::{Body, Entry, EntryKind, Message};
use crate::progress::Progress;
use crate::ready::Proposed;
use crate::rng::Rng;
use crate::status::{DropCounters, DropReason, Role};
use crate::types::{Index, LogId, NodeId, Term};

pub(crate) struct Raft {
    pub id: NodeId,
    pub cfg: Config,
    /// The other voters, in config order.
    pub peers: Vec<NodeId>,
    pub term: Term,
    pub vote: Option<NodeId>,
    pub role: Role,
    pub leader: Option<NodeId>,
    pub log: RaftLog,
    /// Leader only: one per peer, in `peers` order. Empty otherwise.
    pub progress: Vec<Progress>,
    /// Candidate only: each peer's answer, in `peers` order. Empty otherwise.
    votes: Vec<Option<bool>>,
    election_elapsed: u32,
    randomized_timeout: u32,
    heartbeat_elapsed: u32,
    rng: Rng,
    /// The term and vote the host has made durable (acknowledged by advance).
    pub durable_term: Term,
    pub durable_vote: Option<NodeId>,
    /// Messages safe to send now.
    pub msgs: Vec<Message>,
    /// Messages to release once everything up to this step is durable.
    pub held: Vec<Message>,
    pub dropped: DropCounters,
    /// Proposals this node accepted as leader and whose index is not yet
    /// handed out as committed, sorted by (index, term).
    proposals: VecDeque<LogId>,
    pub proposed: Option<Proposed>,
    #[cfg(feature = "sim")]
    pub bug: Option<crate::bugs::Bug>,
}

/// Whether the node was told to commit `bug` (always false without `sim`).
macro_rules! bug {
    ($self:expr, $bug:ident) => {{
        #[cfg(feature = "sim")]
        let on = $self.bug == Some(crate::bugs::Bug::$bug);
        #[cfg(not(feature = "sim"))]
        let on = false;
        on
    }};
}
pub(crate) use bug;

impl Raft {
    pub fn new(cfg: Config, term: Term, vote: Option<NodeId>, log: RaftLog) -> Raft {
        let id = cfg.id;
        let peers = cfg.voters.iter().copied().filter(|&v| v != id).collect();
        let rng = Rng::new(cfg.seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut r = Raft {
            id,
            peers,
            term,
            vote,
            role: Role::Follower,
            leader: None,
            log,
            progress: Vec::new(),
            votes: Vec::new(),
            election_elapsed: 0,
            randomized_timeout: 0,
            heartbeat_elapsed: 0,
            rng,
            durable_term: term,
            durable_vote: vote,
            msgs: Vec::new(),
            held: Vec::new(),
            dropped: DropCounters::default(),
            proposals: VecDeque::new(),
            proposed: None,
            #[cfg(feature = "sim")]
            bug: None,
            cfg,
        };
        r.reset_randomized_timeout();
        r
    }

    #[inline]
    pub fn voters(&self) -> usize {
        self.peers.len() + 1
    }

    fn peer_pos(&self, id: NodeId) -> Option<usize> {
        self.peers.iter().position(|&p| p == id)
    }

    pub(crate) fn send(&mut self, to: NodeId, body: Body) {
        self.msgs.push(Message {
            from: self.id,
            to,
            term: self.term,
            body,
        });
    }

    /// Sends `body` once this step's writes are durable: for answers that
    /// promise something about this node's durable state.
    pub(crate) fn send_when_durable(&mut self, to: NodeId, body: Body) {
        self.held.push(Message {
            from: self.id,
            to,
            term: self.term,
            body,
        });
    }

    pub(crate) fn drop_msg(&mut self, reason: DropReason) {
        self.dropped.bump(reason);
    }

    // ---- inputs -------------------------------------------------------

    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_heartbeat(),
            Role::Follower | Role::Candidate => self.tick_election(),
        }
    }

    pub fn propose(&mut self, data: impl ExactSizeIterator<Item = Bytes>) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        let first = self.log.last_index().next();
        let term = self.term;
        for d in data {
            let index = self.log.last_index().next();
            self.log.push(Entry {
                term,
                index,
                kind: EntryKind::Normal,
                data: d,
            });
        }
        let last = self.log.last_index();
        if last < first {
            return Ok(());
        }
        self.record_proposals(term, first, last);
        self.proposed = Some(Proposed { term, first, last });
        self.broadcast_append(false);
        // A one-node cluster has no one to wait for but its own disk.
        Ok(())
    }

    fn record_proposals(&mut self, term: Term, first: Index, last: Index) {
        let in_order = self.proposals.back().is_none_or(|b| b.index < first);
        for i in first.0..=last.0 {
            let id = LogId::new(term, Index(i));
            if in_order {
                self.proposals.push_back(id);
            } else {
                let at = self
                    .proposals
                    .partition_point(|p| (p.index, p.term) < (id.index, id.term));
                self.proposals.insert(at, id);
            }
        }
    }

    /// Moves proposals whose index has been handed out as committed off the
    /// pending list; those whose index committed with another term are lost.
    pub fn settle_proposals(&mut self, lost: &mut Vec<LogId>) {
        while let Some(p) = self.proposals.front().copied() {
            if p.index > self.log.handed {
                break;
            }
            self.proposals.pop_front();
            if self.log.term_at(p.index) != Some(p.term) {
                lost.push(p);
            }
        }
    }

    pub fn pending_proposals(&self) -> usize {
        self.proposals.len()
    }

    pub fn report_unreachable(&mut self, peer: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(i) = self.peer_pos(peer) {
            let pr = &mut self.progress[i];
            if pr.state == crate::status::ProgressState::Replicate {
                pr.become_probe();
            }
        }
    }

    pub fn step_message(&mut self, m: Message) {
        if m.to != self.id {
            return self.drop_msg(DropReason::WrongRecipient);
        }
        let Some(from_pos) = self.peer_pos(m.from) else {
            return self.drop_msg(DropReason::UnknownSender);
        };
        if m.term > self.term && self.role == Role::Leader && bug!(self, LeaderIgnoresHigherTerm) {
            return self.drop_msg(DropReason::StaleTerm);
        }
        if m.term > self.term {
            let leader = match m.body {
                Body::AppendEntries { .. } | Body::Heartbeat { .. } => Some(m.from),
                _ => None,
            };
            self.become_follower(m.term, leader);
        } else if m.term < self.term {
            return self.step_stale_term(m);
        }
        match m.body {
            Body::RequestVote { last_log } => self.handle_request_vote(m.from, last_log),
            Body::RequestVoteResponse { granted } => self.handle_vote_response(from_pos, granted),
            Body::AppendEntries {
                prev,
                entries,
                commit,
            } => self.handle_append(m.from, m.term, prev, entries, commit),
            Body::AppendEntriesResponse(r) => self.handle_append_response(from_pos, r),
            Body::Heartbeat { commit } => self.handle_heartbeat(m.from, commit),
            Body::HeartbeatResponse => self.handle_heartbeat_response(from_pos),
        }
    }

    /// A message from an older term. Requests get an answer carrying our
    /// term, so a deposed leader or a stale candidate learns it is behind
    /// (§5.1: "if a server receives a request with a stale term number, it
    /// rejects the request"). Responses are dropped.
    fn step_stale_term(&mut self, m: Message) {
        match m.body {
            Body::AppendEntries { .. } | Body::Heartbeat { .. } => {
                self.send(m.from, Body::HeartbeatResponse)
            }
            Body::RequestVote { .. } => {
                self.send(m.from, Body::RequestVoteResponse { granted: false })
            }
            _ => self.drop_msg(DropReason::StaleTerm),
        }
    }

    /// Called by the node when `advance` made more of the log or the hard
    /// state durable.
    pub fn on_persisted(&mut self) {
        match self.role {
            Role::Leader => {
                if self.maybe_commit() {
                    self.broadcast_append(true);
                }
            }
            Role::Candidate => self.tally(),
            Role::Follower => {}
        }
    }

    /// Panics if an invariant is broken. Run after every input in debug builds.
    pub fn check_invariants(&self) {
        self.log.check_invariants();
        assert!(self.durable_term <= self.term, "durable term ahead of term");
        assert!(
            self.log.last_id().term <= self.term,
            "an entry from a future term"
        );
        match self.role {
            Role::Leader => {
                assert_eq!(self.leader, Some(self.id));
                assert_eq!(self.vote, Some(self.id), "a leader voted for itself");
                assert_eq!(self.progress.len(), self.peers.len());
                for p in &self.progress {
                    assert!(p.match_index < p.next_index, "progress of {:?}", p.id);
                    assert!(p.match_index <= self.log.last_index());
                }
            }
            Role::Candidate => {
                assert_eq!(self.vote, Some(self.id));
                assert!(self.leader.is_none());
                assert!(self.progress.is_empty());
            }
            Role::Follower => assert!(self.progress.is_empty()),
        }
    }
}
