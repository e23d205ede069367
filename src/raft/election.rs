//! Leader election (§5.2, §5.4.1) and PreVote (thesis §9.6): timeouts,
//! vote requests, tallies and the role changes they cause.

use alloc::vec;
use alloc::vec::Vec;

use super::{LeaderState, Raft, bug};
use crate::message::{Body, Entry, EntryKind};
use crate::progress::Progress;
use crate::quorum::VoteResult;
use crate::read_index::ReadQueue;
use crate::status::{DropReason, Role};
use crate::trace::{emit, traced};
use crate::types::{LogId, NodeId, Term};

/// Why an election starts: the `reason` of the `election_started` event.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Cause {
    /// The election timeout fired.
    Timeout,
    /// The host asked (`Input::Campaign`).
    Campaign,
    /// The leader handed leadership over (TimeoutNow).
    Transfer,
    /// A pre-vote round was won: the real election follows.
    PreVoteWon,
}

#[cfg(feature = "tracing")]
impl Cause {
    fn name(self) -> &'static str {
        match self {
            Cause::Timeout => "timeout",
            Cause::Campaign => "campaign",
            Cause::Transfer => "transfer",
            Cause::PreVoteWon => "pre_vote_won",
        }
    }
}

/// The `kind` of an election event for a node in `role`.
#[cfg(feature = "tracing")]
fn kind(role: Role) -> &'static str {
    if role == Role::PreCandidate {
        "pre_vote"
    } else {
        "vote"
    }
}

impl Raft {
    pub(super) fn reset_randomized_timeout(&mut self) {
        self.randomized_timeout = self.rng.range_inclusive(
            self.cfg.election_timeout_ticks_min,
            self.cfg.election_timeout_ticks_max,
        );
    }

    /// Returns whether the election timeout fired.
    #[inline]
    pub(super) fn tick_election(&mut self) -> bool {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.randomized_timeout {
            if self.is_recovering() || !self.may_campaign() {
                // No election until caught up (or by a node that is not a
                // voter: a learner, a removed node, one that has not joined
                // yet); the leader may be gone.
                self.election_elapsed = 0;
                self.leader = None;
                return true;
            }
            self.start_election(Cause::Timeout);
            return true;
        }
        false
    }

    /// The election timeout fired or the host asked for an election: a
    /// pre-vote round first if PreVote is on, else a real election.
    pub fn start_election(&mut self, cause: Cause) {
        if self.role == Role::Leader || !self.may_campaign() {
            return;
        }
        if self.cfg.pre_vote {
            self.pre_campaign(cause);
        } else {
            self.campaign(cause);
        }
    }

    /// The last entry of our durable log: all a vote request may claim. Votes
    /// are asked before our writes are durable; if we crash, lose the tail
    /// of the log and campaign again in the same term, the votes granted to
    /// the first request still count, so it must not claim that tail.
    fn durable_last_log(&self) -> LogId {
        let stable = self.dur.stable();
        LogId::new(self.log.term_at(stable).unwrap_or(Term(0)), stable)
    }

    /// Asks every peer whether it would vote for us in the next term, without
    /// changing our term or vote (thesis §9.6).
    fn pre_campaign(&mut self, cause: Cause) {
        if self.term == Term(u64::MAX) {
            return;
        }
        let last_log = self.durable_last_log();
        let term = self.term.next();
        self.solicit(Role::PreCandidate, term, Body::PreVote { last_log }, cause);
    }

    /// Enters `role`, sends `request` to every peer in `term`, and counts
    /// the votes it already has.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn solicit(&mut self, role: Role, term: Term, request: Body, cause: Cause) {
        emit!(
            INFO,
            ELECTION_STARTED,
            self,
            kind = kind(role),
            reason = cause.name(),
            election_term = term.0,
            last_log_index = self.durable_last_log().index.0,
            last_log_term = self.durable_last_log().term.0
        );
        traced! {
            if role != self.role {
                emit!(INFO, ROLE_CHANGED, self, role = ?role, from_role = ?self.role);
            }
        }
        self.role = role;
        self.leader = None;
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
        self.votes = vec![None; self.conf.len()];
        for i in 0..self.votes.len() {
            let to = self.member_at(i);
            if to != self.id && self.conf.is_voter(to) {
                self.send_in_term(to, term, request.clone());
            }
        }
        self.tally();
    }

    /// Becomes a candidate in the next term and asks every peer for its vote
    /// (§5.2). The node's own vote counts only once it is durable.
    pub(super) fn campaign(&mut self, cause: Cause) {
        if self.term == Term(u64::MAX) {
            // A faulty peer pushed us to the last term there is. Never
            // campaign again rather than wrap around to term 0.
            return;
        }
        emit!(INFO, TERM_CHANGED, self, term: self.term.0 + 1, from_term = self.term.0);
        self.term = self.term.next();
        self.vote = Some(self.id);
        let last_log = self.durable_last_log();
        let term = self.term;
        // A transfer's request overrides leader stickiness.
        let transfer = cause == Cause::Transfer;
        self.solicit(
            Role::Candidate,
            term,
            Body::RequestVote { last_log, transfer },
            cause,
        );
    }

    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        traced! {
            if matches!(self.role, Role::Candidate | Role::PreCandidate) {
                let reason = if term > self.term {
                    "newer_term"
                } else if leader.is_some() {
                    "leader_elected"
                } else {
                    // Only the tally ends an election in its own term
                    // without a leader.
                    "rejected"
                };
                emit!(INFO, ELECTION_LOST, self,
                    kind = kind(self.role),
                    reason,
                    granted = self.votes.iter().filter(|v| **v == Some(true)).count() as u64,
                    rejected = self.votes.iter().filter(|v| **v == Some(false)).count() as u64,
                    new_term = term.0,
                    leader = leader.map(|l| l.0));
            }
            if term > self.term {
                emit!(INFO, TERM_CHANGED, self, term: term.0, from_term = self.term.0);
            }
            if self.role != Role::Follower {
                emit!(INFO, ROLE_CHANGED, self, term: term.0.max(self.term.0),
                    role = ?Role::Follower,
                    from_role = ?self.role,
                    leader = leader.map(|l| l.0));
            }
        }
        if self.role == Role::Leader {
            self.end_leadership();
        }
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_timeout();
        self.lead = None;
        self.votes = Vec::new();
    }

    fn become_leader(&mut self) {
        emit!(INFO, ROLE_CHANGED, self, role = ?Role::Leader, from_role = ?self.role);
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.votes = Vec::new();
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        let next = self.log.last_index().next();
        let (max_msgs, max_bytes) = (
            self.cfg.max_inflight_msgs as usize,
            self.cfg.max_inflight_bytes,
        );
        self.lead = Some(alloc::boxed::Box::new(LeaderState {
            progress: self
                .conf
                .ids()
                .map(|p| Progress::new(p, next, max_msgs, max_bytes))
                .collect(),
            uncommitted_bytes: 0,
            transferee: None,
            reads: ReadQueue::default(),
            confirmed_round: 0,
            round_wanted: false,
            lease_forfeited: false,
            lease_floor: 0,
        }));
        // §5.4.2 and §8: a leader cannot count replicas of earlier terms'
        // entries, so it commits an entry of its own term at once.
        self.log.push(Entry {
            term: self.term,
            index: next,
            kind: EntryKind::Noop,
            data: bytes::Bytes::new(),
        });
        self.broadcast_append(true);
    }

    /// Counts the votes (or pre-votes). The node's own vote counts only once
    /// the host has made it durable, so a candidate that crashes before its
    /// fsync cannot have won an election it would forget. A pre-vote
    /// promises nothing and counts at once.
    pub(super) fn tally(&mut self) {
        let own = match self.role {
            Role::Candidate => {
                self.dur.holds_vote(self.term, Some(self.id)) || bug!(self, VoteNotPersisted)
            }
            Role::PreCandidate => true,
            _ => return,
        };
        if own && let Some(me) = self.own_pos() {
            self.votes[me] = Some(true);
        }
        let votes = &self.votes;
        let conf = &self.conf;
        let result = conf
            .quorum()
            .vote(|id| conf.position(id).and_then(|p| votes[p]));
        #[cfg(feature = "tracing")]
        let (granted, rejected) = (
            votes.iter().filter(|v| **v == Some(true)).count(),
            votes.iter().filter(|v| **v == Some(false)).count(),
        );
        match (result, self.role) {
            (VoteResult::Won, role) => {
                emit!(
                    INFO,
                    ELECTION_WON,
                    self,
                    kind = kind(role),
                    granted = granted as u64,
                    rejected = rejected as u64,
                    voters = self.conf.voter_count() as u64
                );
                if role == Role::Candidate {
                    self.become_leader();
                } else {
                    self.campaign(Cause::PreVoteWon);
                }
            }
            (VoteResult::Lost, _) => self.become_follower(self.term, None),
            (VoteResult::Pending, _) => {}
        }
    }

    /// §5.2 and §5.4.1: grant at most one vote per term, and only to a
    /// candidate whose log is at least as up to date as ours.
    pub(super) fn handle_request_vote(&mut self, from: NodeId, last_log: LogId) {
        // A node that knows the leader of this term does not help depose it.
        let can_vote = (self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none()))
            && !self.is_recovering();
        let up_to_date =
            last_log.is_up_to_date_with(&self.log.last_id()) || bug!(self, VoteForOlderLog);
        if can_vote && up_to_date {
            self.vote = Some(from);
            self.election_elapsed = 0;
            let body = Body::RequestVoteResponse { granted: true };
            if self.dur.holds_vote(self.term, self.vote) || bug!(self, VoteNotPersisted) {
                self.send(from, body);
            } else {
                self.send_when_durable(from, body);
            }
        } else {
            self.send(from, Body::RequestVoteResponse { granted: false });
        }
    }

    pub(super) fn handle_vote_response(&mut self, from_pos: usize, granted: bool) {
        if self.role != Role::Candidate {
            return self.drop_msg(DropReason::Stale);
        }
        self.votes[from_pos] = Some(granted);
        self.tally();
    }

    /// A pre-vote is granted to a proposed term above ours with a log at
    /// least as up to date as ours; leader stickiness was checked already.
    /// Nothing changes here, so nothing needs to be durable first.
    pub(super) fn handle_pre_vote(&mut self, from: NodeId, term: Term, last_log: LogId) {
        let grant = term > self.term
            && last_log.is_up_to_date_with(&self.log.last_id())
            && !self.is_recovering();
        if grant {
            self.send_in_term(from, term, Body::PreVoteResponse { granted: true });
        } else {
            self.send(from, Body::PreVoteResponse { granted: false });
        }
    }

    pub(super) fn handle_pre_vote_response(&mut self, from_pos: usize, term: Term, granted: bool) {
        if self.role != Role::PreCandidate || (granted && term != self.term.next()) {
            return self.drop_msg(DropReason::Stale);
        }
        self.votes[from_pos] = Some(granted);
        self.tally();
    }

    /// The leader asks us to take over (leadership transfer): campaign now,
    /// skipping the pre-vote, with a request that overrides stickiness.
    pub(super) fn handle_timeout_now(&mut self) {
        if self.role == Role::Leader {
            return self.drop_msg(DropReason::Misbehaving);
        }
        if self.is_recovering() || !self.may_campaign() {
            // The leader believes our log is complete (or that we vote);
            // it is not so.
            return self.drop_msg(DropReason::Stale);
        }
        self.campaign(Cause::Transfer);
    }
}
