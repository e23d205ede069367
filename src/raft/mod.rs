//! The protocol: one node's Raft state and its reaction to each input.
//!
//! `Raft` decides; it never does I/O and never talks to the host directly.
//! What it wants sent goes to its [`Outbox`], tagged with the durability it
//! waits for; what it wants persisted is read off the log and the hard state
//! by [`crate::Node`], which also owns the Ready bookkeeping.
//!
//! Split by concern: `election.rs` (timeouts, votes, pre-votes, role
//! changes), `replication.rs` (appends, heartbeats, commitment, proposals),
//! `read.rs` (read index, leases, leadership transfer) and `membership.rs`
//! (configuration changes).

mod election;
mod membership;
mod read;
mod replication;

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::config::Config;
use crate::durability::Durability;
use crate::error::{Busy, Error};
use crate::log::RaftLog;
use crate::membership::ConfLog;
use crate::message::{Body, Message};
use crate::outbox::Outbox;
use crate::progress::Progress;
use crate::read_index::ReadQueue;
use crate::ready::{Proposed, ReadState, TransferEnded, TransferOutcome};
use crate::rng::Rng;
use crate::status::{DropCounters, DropReason, Role};
use crate::trace::emit;
use crate::tracker::Membership;
use crate::types::{LogId, NodeId, Term};

// `repr(C)` keeps the fields an idle tick touches together at the start, so
// ticking thousands of idle groups touches one cache line each.
#[repr(C)]
pub(crate) struct Raft {
    /// Every tick this node has counted: the clock of leases.
    ticks: u64,
    /// Ticks since the last sign of a leader (followers), since the election
    /// started (candidates), or since the last CheckQuorum round (leaders).
    election_elapsed: u32,
    randomized_timeout: u32,
    pub role: Role,
    pub id: NodeId,
    pub cfg: Config,
    /// The members of the configuration in force (`confs.current()`);
    /// every quorum question goes through `conf.quorum()`.
    pub conf: Membership,
    /// The configurations of the log: the one in force and those a
    /// truncation can go back to.
    pub confs: ConfLog,
    /// The configuration in force changed since the last Ready.
    pub conf_changed: bool,
    pub term: Term,
    pub vote: Option<NodeId>,
    pub leader: Option<NodeId>,
    pub log: RaftLog,
    /// What only a leader keeps; `None` otherwise (boxed, so that the many
    /// idle followers of a multi-raft process stay small).
    pub lead: Option<alloc::boxed::Box<LeaderState>>,
    /// (Pre-)candidate only: each member's answer, this node's own
    /// included once it counts, in `conf.ids()` order. Empty otherwise.
    votes: Vec<Option<bool>>,
    heartbeat_elapsed: u32,
    rng: Rng,
    /// What the host was handed, made durable and applied.
    pub dur: Durability,
    /// Every message to send, safe now or waiting for durability.
    pub out: Outbox,
    pub dropped: DropCounters,
    /// Proposals this node accepted as leader and whose index is not yet
    /// handed out as committed, sorted by (index, term).
    proposals: VecDeque<LogId>,
    pub proposed: Option<Proposed>,
    pub read_states: Vec<ReadState>,
    /// Whether this node restarted with a term it may have promised a
    /// leader: it had answered messages in that term before it stopped.
    /// (No message of a term leaves before the term is durable, so a node
    /// restored at term 0 promised nobody anything.)
    restarted: bool,
    /// A leadership transfer that ended since the last Ready.
    pub transfer_ended: Option<TransferEnded>,
    /// While the node recovers from lost data: the term it restored. It
    /// takes no part in elections until it durably holds an entry committed
    /// in a newer term (see `Restored::lost_data`).
    recovering: Option<Term>,
    /// The bug this node was told to commit (bug hunts only).
    #[cfg(zaft_bugs)]
    pub bug: Option<crate::bugs::Bug>,
}

/// The state of one leadership.
#[derive(Debug)]
pub(crate) struct LeaderState {
    /// One per member in `conf.ids()` order, this node included if it is a
    /// member: its match index is what its host has made durable, its round
    /// the latest it started, and it is always active.
    pub progress: Vec<Progress>,
    /// Bytes of own-term entries above the commit index.
    pub uncommitted_bytes: u64,
    /// The node leadership is being handed to.
    pub transferee: Option<NodeId>,
    pub reads: ReadQueue,
    /// The highest heartbeat round a majority has answered.
    pub confirmed_round: u64,
    /// Reads are waiting for a round that has not been started yet.
    pub round_wanted: bool,
    /// This leadership sent a TimeoutNow: the target may win an election
    /// that ignores leader stickiness at any moment, so no lease holds.
    pub lease_forfeited: bool,
    /// The first heartbeat round that may give a lease: rounds started
    /// before the configuration last changed were confirmed by another
    /// configuration's majority.
    pub lease_floor: u64,
}

/// The leader state; only called where the role is known to be leader.
macro_rules! ld {
    ($s:expr) => {
        $s.lead
            .as_deref_mut()
            .expect("leader state exists while leading")
    };
}
pub(crate) use ld;

/// Whether the node was told to commit `bug`: always false except in the
/// bug hunts' builds (`--cfg zaft_bugs`).
macro_rules! bug {
    ($self:expr, $bug:ident) => {{
        #[cfg(zaft_bugs)]
        let on = $self.bug == Some(crate::bugs::Bug::$bug);
        #[cfg(not(zaft_bugs))]
        let on = false;
        on
    }};
}
pub(crate) use bug;

impl Raft {
    pub fn new(
        cfg: Config,
        term: Term,
        vote: Option<NodeId>,
        log: RaftLog,
        dur: Durability,
        confs: ConfLog,
    ) -> Raft {
        let id = cfg.id;
        let conf = Membership::new(confs.current());
        // The id goes through the generator's mixer first. A plain multiple
        // of the generator's own increment made node k's stream node 1's
        // shifted by k - 1 draws: two nodes one draw apart then drew the
        // same timeouts forever, splitting every vote.
        let rng = Rng::new(cfg.seed ^ Rng::new(id.0).next_u64());
        let mut r = Raft {
            id,
            conf,
            confs,
            conf_changed: false,
            term,
            vote,
            role: Role::Follower,
            leader: None,
            log,
            lead: None,
            votes: Vec::new(),
            election_elapsed: 0,
            randomized_timeout: 0,
            heartbeat_elapsed: 0,
            ticks: 0,
            rng,
            dur,
            out: Outbox::new(),
            dropped: DropCounters::default(),
            proposals: VecDeque::new(),
            proposed: None,
            read_states: Vec::new(),
            restarted: term > Term(0),
            transfer_ended: None,
            recovering: None,
            #[cfg(zaft_bugs)]
            bug: None,
            cfg,
        };
        r.reset_randomized_timeout();
        r
    }

    /// The place of another member in the per-member tables.
    fn peer_pos(&self, id: NodeId) -> Option<usize> {
        if id == self.id {
            return None;
        }
        self.conf.position(id)
    }

    /// This node's place in the per-member tables, if it is a member.
    #[inline]
    pub(crate) fn own_pos(&self) -> Option<usize> {
        self.conf.position(self.id)
    }

    /// The member at place `i` of the per-member tables.
    pub(crate) fn member_at(&self, i: usize) -> NodeId {
        self.conf.at(i)
    }

    pub(crate) fn send(&mut self, to: NodeId, body: Body) {
        let term = self.term;
        self.send_in_term(to, term, body);
    }

    /// Queues a message carrying `term` (our term, or the term a pre-vote
    /// proposes). No message leaves while our own term is not durable: a
    /// node that crashed before its fsync would come back in an older term
    /// and could contradict what the message said (an acknowledgement, a
    /// confirmed read round, a vote request that counted itself).
    pub(crate) fn send_in_term(&mut self, to: NodeId, term: Term, body: Body) {
        let m = Message {
            from: self.id,
            to,
            term,
            body,
        };
        if self.dur.term() < self.term && !bug!(self, TermNotPersisted) {
            self.out.send_when_durable(m);
        } else {
            self.out.send(m);
        }
    }

    /// Sends `body` once this step's writes are durable: for answers that
    /// promise something about this node's durable state.
    pub(crate) fn send_when_durable(&mut self, to: NodeId, body: Body) {
        self.out.send_when_durable(Message {
            from: self.id,
            to,
            term: self.term,
            body,
        });
    }

    pub(crate) fn drop_msg(&mut self, reason: DropReason) {
        emit!(DEBUG, MESSAGE_DROPPED, self, reason = ?reason);
        self.dropped.bump(reason);
    }

    /// Whether this node currently hears from a live leader: it is the
    /// leader, or it heard from one within the minimum election timeout.
    ///
    /// With CheckQuorum, a node that restarted counts as hearing a leader
    /// for its first minimum election timeout: before it stopped it may
    /// have answered a heartbeat round that a leader's lease counts on, and
    /// it has forgotten when. Waiting a full timeout from its start keeps the
    /// promise that answer made (thesis §6.4).
    fn hears_leader(&self) -> bool {
        let min = self.cfg.election_timeout_ticks_min;
        self.role == Role::Leader
            || (self.leader.is_some() && self.election_elapsed < min)
            || (self.cfg.check_quorum
                && self.restarted
                && self.ticks < u64::from(min)
                && !bug!(self, VoteRightAfterRestart))
    }

    /// The host asked for an election (`Input::Campaign`).
    pub fn campaign_now(&mut self) -> Result<(), Error> {
        if self.role == Role::Leader {
            return Ok(());
        }
        if !self.may_campaign() {
            emit!(INFO, CAMPAIGN_REFUSED, self, reason = "not_a_voter");
            return Err(crate::membership::MembershipError::NotAVoter.into());
        }
        if self.is_recovering() {
            emit!(INFO, CAMPAIGN_REFUSED, self, reason = "recovering");
            return Err(Busy::CatchingUp.into());
        }
        // Leader stickiness is a promise not to elect anyone else while the
        // leader is heard; a lease read counts on it. Only the leader may
        // release it, by transferring leadership.
        if self.cfg.check_quorum && self.hears_leader() {
            emit!(
                INFO,
                CAMPAIGN_REFUSED,
                self,
                reason = "leader_alive",
                leader = self.leader.map(|l| l.0)
            );
            return Err(Busy::LeaderAlive {
                leader: self.leader,
            }
            .into());
        }
        self.start_election(election::Cause::Campaign);
        Ok(())
    }

    /// The leader gives up leadership now (`Input::StepDown`).
    pub fn step_down(&mut self) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        let term = self.term;
        self.become_follower(term, None);
        Ok(())
    }

    /// A follower forgets its leader (`Input::ForgetLeader`). Refused while
    /// CheckQuorum makes the follower's support a promise a lease relies on.
    pub fn forget_leader(&mut self) -> Result<(), Error> {
        if self.role == Role::Leader || self.leader.is_none() {
            return Ok(());
        }
        if self.cfg.check_quorum {
            return Err(Busy::LeaderAlive {
                leader: self.leader,
            }
            .into());
        }
        self.leader = None;
        Ok(())
    }

    /// Ends the transfer in progress, if any, reporting `outcome`.
    pub(crate) fn end_transfer(&mut self, outcome: TransferOutcome) {
        if let Some(ld) = self.lead.as_deref_mut()
            && let Some(to) = ld.transferee.take()
        {
            emit!(INFO, TRANSFER_ENDED, self, to = to.0, outcome = ?outcome);
            self.transfer_ended = Some(TransferEnded { to, outcome });
        }
    }

    /// Enters recovery from lost data (see `Restored::lost_data`).
    pub fn start_recovery(&mut self) {
        emit!(
            WARN,
            RECOVERY_STARTED,
            self,
            last_index = self.log.last_index().0,
            commit = self.log.committed.0
        );
        self.recovering = Some(self.term);
    }

    /// Whether the node is recovering from lost data and must stay out of
    /// elections.
    #[inline]
    pub fn is_recovering(&self) -> bool {
        self.recovering.is_some() && !bug!(self, AmnesiacVotes)
    }

    /// Ends recovery once the node durably holds an entry committed in a
    /// term newer than the one it restored. The leader that committed it was
    /// elected without this node's vote, so by Leader Completeness it held
    /// every entry committed before its term, the ones this node lost
    /// included; and this node's log matches it up to that entry. Within
    /// the restored term no such proof exists: the leader of that term may
    /// yet count an acknowledgement this node sent before it lost the entry.
    #[inline]
    pub fn maybe_end_recovery(&mut self) {
        let Some(lost_term) = self.recovering else {
            return;
        };
        let c = self.dur.durable_commit(&self.log);
        if self.log.term_at(c).is_some_and(|t| t > lost_term) {
            emit!(
                INFO,
                RECOVERY_ENDED,
                self,
                commit = c.0,
                restored_term = lost_term.0
            );
            self.recovering = None;
        }
    }

    /// `n` ticks at once (a host catching up after a stall). Beyond two of
    /// the longest election timeouts, further ticks change no role and no
    /// timer that matters (a follower has campaigned, a leader has run two
    /// CheckQuorum rounds), so only the lease clock counts them.
    pub fn tick_many(&mut self, n: u32) {
        let cap = self
            .cfg
            .election_timeout_ticks_max
            .saturating_mul(2)
            .saturating_add(1);
        let stepped = n.min(cap);
        for _ in 0..stepped {
            self.tick();
        }
        self.ticks += u64::from(n - stepped);
    }

    // ---- inputs -------------------------------------------------------

    /// One tick. Returns whether it did more than count: an idle follower's
    /// tick changes nothing the host can see.
    #[inline]
    pub fn tick(&mut self) -> bool {
        self.ticks += 1;
        match self.role {
            Role::Leader => {
                self.tick_leader();
                true
            }
            _ => self.tick_election(),
        }
    }

    pub fn step_message(&mut self, m: Message) {
        if m.to != self.id {
            return self.drop_msg(DropReason::WrongRecipient);
        }
        if m.from == self.id || m.from == NodeId(0) {
            return self.drop_msg(DropReason::UnknownSender);
        }
        // Requests are taken from anyone: a leader or a candidate may be a
        // member of a configuration this node has not learnt yet (a node
        // that joins knows no one). Answers are taken only from members, as
        // they fill the per-member tables.
        let from_pos = self.peer_pos(m.from);
        let is_answer = matches!(
            m.body,
            Body::RequestVoteResponse { .. }
                | Body::PreVoteResponse { .. }
                | Body::AppendEntriesResponse(_)
                | Body::HeartbeatResponse { .. }
        );
        if is_answer && from_pos.is_none() {
            return self.drop_msg(DropReason::UnknownSender);
        }
        let from_pos = from_pos.unwrap_or(usize::MAX);
        if m.term > self.term && self.role == Role::Leader && bug!(self, LeaderIgnoresHigherTerm) {
            return self.drop_msg(DropReason::StaleTerm);
        }
        // Leader stickiness (CheckQuorum) and the pre-vote rule of thesis
        // §9.6: while a leader is heard from, a vote request must not
        // disturb it. Checked before the term is looked at, so an ignored
        // request cannot bump our term either.
        let sticky = match m.body {
            Body::RequestVote { transfer, .. } => !transfer && self.cfg.check_quorum,
            Body::PreVote { .. } => true,
            _ => false,
        };
        if sticky && m.term > self.term && self.hears_leader() {
            emit!(
                INFO,
                VOTE_IGNORED,
                self,
                from = m.from.0,
                kind = if matches!(m.body, Body::PreVote { .. }) {
                    "pre_vote"
                } else {
                    "vote"
                },
                candidate_term = m.term.0,
                leader = self.leader.map(|l| l.0)
            );
            return self.drop_msg(DropReason::LeaderAlive);
        }
        // A pre-vote's term is only proposed; a granted pre-vote response
        // echoes our own proposed term: neither moves us to a newer term.
        let proposes = matches!(
            m.body,
            Body::PreVote { .. } | Body::PreVoteResponse { granted: true }
        );
        if m.term > self.term && !proposes {
            if let Some(to) = self.lead.as_deref().and_then(|l| l.transferee) {
                // The target's campaign (or anything newer from it) is the
                // handover; a newer term from anyone else ends it unfinished.
                let outcome = if m.from == to {
                    TransferOutcome::Succeeded
                } else {
                    TransferOutcome::LeadershipLost
                };
                self.end_transfer(outcome);
            }
            match m.body {
                Body::AppendEntries { .. }
                | Body::Heartbeat { .. }
                | Body::Commit { .. }
                | Body::TimeoutNow => self.become_follower(m.term, Some(m.from)),
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            return self.step_stale_term(m);
        }
        match m.body {
            Body::RequestVote { last_log, .. } => self.handle_request_vote(m.from, last_log),
            Body::RequestVoteResponse { granted } => self.handle_vote_response(from_pos, granted),
            Body::PreVote { last_log } => self.handle_pre_vote(m.from, m.term, last_log),
            Body::PreVoteResponse { granted } => {
                self.handle_pre_vote_response(from_pos, m.term, granted)
            }
            Body::AppendEntries {
                prev,
                entries,
                commit,
            } => self.handle_append(m.from, m.term, prev, entries, commit),
            Body::AppendEntriesResponse(r) => self.handle_append_response(from_pos, r),
            Body::Heartbeat { commit, round } => {
                if self.adopt_leader_commit(m.from, commit) {
                    // A node that lost data may also have lost a newer term
                    // (a wiped disk): it confirms no read round.
                    let round = if self.is_recovering() { 0 } else { round };
                    self.send(m.from, Body::HeartbeatResponse { round });
                }
            }
            Body::Commit { commit } => {
                self.adopt_leader_commit(m.from, commit);
            }
            Body::HeartbeatResponse { round } => self.handle_heartbeat_response(from_pos, round),
            Body::TimeoutNow => self.handle_timeout_now(),
            Body::Propose { data } => self.handle_forwarded_propose(data),
            Body::ReadIndex { ctx } => self.handle_forwarded_read(m.from, ctx),
            Body::ReadIndexResponse { ctx, index } => {
                self.read_states.push(ReadState { ctx, index })
            }
        }
    }

    /// A message from an older term. Requests get an answer carrying our
    /// term, so a deposed leader or a stale candidate learns it is behind
    /// (§5.1: "if a server receives a request with a stale term number, it
    /// rejects the request"). Responses are dropped.
    fn step_stale_term(&mut self, m: Message) {
        match m.body {
            Body::AppendEntries { .. } | Body::Heartbeat { .. } | Body::Commit { .. } => {
                self.send(m.from, Body::HeartbeatResponse { round: 0 })
            }
            Body::RequestVote { .. } => {
                self.send(m.from, Body::RequestVoteResponse { granted: false })
            }
            Body::PreVote { .. } => self.send(m.from, Body::PreVoteResponse { granted: false }),
            Body::ReadIndex { ctx } => {
                self.send(m.from, Body::ReadIndexResponse { ctx, index: None })
            }
            Body::Propose { .. } => self.drop_msg(DropReason::ProposalRefused),
            _ => self.drop_msg(DropReason::StaleTerm),
        }
    }

    /// Called by the node when `advance` made more of the log or the hard
    /// state durable.
    pub fn on_persisted(&mut self) {
        let role = self.role;
        match role {
            Role::Leader if self.maybe_commit() => {
                self.broadcast_commit();
                self.after_commit();
            }
            Role::Candidate => self.tally(),
            _ => {}
        }
    }

    /// Every check, the whole log included (O(log length)): for the
    /// simulator's release soaks and tests.
    #[cfg(feature = "sim")]
    pub fn check_invariants_full(&self) {
        self.log.check_invariants();
        self.check_invariants();
    }

    /// Panics if an invariant is broken: O(peers), the log only at its ends.
    /// Run after every input in debug builds.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub fn check_invariants(&self) {
        self.log.check_ends();
        self.dur.check(&self.log, self.term);
        assert!(
            self.log.last_id().term <= self.term,
            "an entry from a future term"
        );
        assert!(
            !self.is_recovering() || self.role == Role::Follower,
            "a node that lost data takes part in an election"
        );
        assert!(
            matches!(self.role, Role::Follower | Role::Leader) || self.may_campaign(),
            "a node that is not a voter campaigns"
        );
        assert!(
            self.confs.current_index() <= self.log.last_index(),
            "a configuration beyond the log"
        );
        match self.role {
            Role::Leader => {
                assert_eq!(self.leader, Some(self.id));
                assert_eq!(self.vote, Some(self.id), "a leader voted for itself");
                let ld = self.lead.as_deref().expect("a leader has leader state");
                assert_eq!(ld.progress.len(), self.conf.len());
                if let Some(me) = self.own_pos() {
                    assert!(
                        ld.progress[me].match_index <= self.dur.stable(),
                        "own match beyond durable"
                    );
                }
                for (i, p) in ld.progress.iter().enumerate() {
                    assert_eq!(p.id, self.conf.at(i), "progress out of table order");
                }
                for p in &ld.progress {
                    assert!(p.match_index < p.next_index, "progress of {:?}", p.id);
                    assert!(p.match_index <= self.log.last_index());
                    assert!(p.next_index <= self.log.last_index().next());
                    assert!(p.acked_round <= ld.reads.round);
                }
                assert!(ld.reads.len() <= self.cfg.max_pending_reads as usize);
            }
            Role::Candidate => {
                assert_eq!(self.vote, Some(self.id));
                assert!(self.leader.is_none());
                assert!(self.lead.is_none());
            }
            Role::PreCandidate | Role::Follower => {
                assert!(self.lead.is_none(), "leader state outlives leadership");
            }
        }
    }
}
