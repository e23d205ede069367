//! Log replication (§5.3) and commitment (§5.4.2): proposals, AppendEntries
//! on both sides, heartbeats, CheckQuorum, fast backtracking and the commit
//! rule.

use alloc::vec::Vec;
use bytes::Bytes;
use smallvec::SmallVec;

use super::{Raft, bug, ld};
use crate::entries::Entries;
use crate::error::{Busy, Error};
use crate::message::{AppendResponse, Body, Entry, EntryKind};
use crate::ready::Proposed;
use crate::status::{DropReason, ProgressState, Role};
use crate::trace::{emit, traced};
use crate::types::{Index, LogId, NodeId, Term};

/// Commands of one proposal input; one command needs no allocation.
pub(crate) type Commands = SmallVec<[Bytes; 1]>;

impl Raft {
    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_timeout_ticks_min {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let me = self.own_pos();
                let ld = self.lead.as_deref_mut().expect("leading");
                if let Some(me) = me {
                    ld.progress[me].recent_active = true;
                }
                let progress = &ld.progress;
                let conf = &self.conf;
                let quorum_active = conf
                    .quorum()
                    .value(|id| conf.position(id).is_some_and(|p| progress[p].recent_active));
                #[cfg(feature = "tracing")]
                let active = progress.iter().filter(|p| p.recent_active).count();
                for p in &mut ld.progress {
                    p.recent_active = false;
                }
                if !quorum_active && !bug!(self, CheckQuorumNeverStepsDown) {
                    // Partitioned from a majority: stop accepting proposals
                    // that can never commit, and let the majority elect.
                    emit!(
                        WARN,
                        CHECK_QUORUM_STEP_DOWN,
                        self,
                        active = active as u64,
                        voters = self.conf.voter_count() as u64
                    );
                    let term = self.term;
                    self.become_follower(term, None);
                    return;
                }
            }
            // A transfer that has not finished within an election timeout
            // has failed; take proposals again.
            self.end_transfer(crate::ready::TransferOutcome::TimedOut);
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Sends every follower a heartbeat of a new round. Returns the round.
    pub(super) fn broadcast_heartbeat(&mut self) -> u64 {
        let round = ld!(self).reads.start_round(self.ticks);
        ld!(self).round_wanted = false;
        let me = self.own_pos();
        if let Some(me) = me {
            ld!(self).progress[me].acked_round = round;
        }
        for i in 0..ld!(self).progress.len() {
            if Some(i) == me {
                continue;
            }
            // Never beyond what the follower is known to hold, so it can
            // adopt the value without checking its log.
            let commit = ld!(self).progress[i].match_index.min(self.log.committed);
            let to = ld!(self).progress[i].id;
            self.send(to, Body::Heartbeat { commit, round });
        }
        round
    }

    /// Appends client commands as the leader. Refused while a leadership
    /// transfer runs and past the uncommitted-bytes budget.
    pub(super) fn append_commands(&mut self, data: Commands) -> Result<Proposed, Error> {
        debug_assert_eq!(self.role, Role::Leader);
        if let Some(to) = ld!(self).transferee {
            emit!(
                DEBUG,
                PROPOSAL_REFUSED,
                self,
                reason = "leadership_transfer",
                entries = data.len() as u64,
                to = to.0
            );
            return Err(Busy::LeadershipTransfer { to }.into());
        }
        let bytes: u64 = data.iter().map(|d| 24 + d.len() as u64).sum();
        let limit = self.cfg.max_uncommitted_bytes;
        // One proposal always fits when nothing is pending, however large.
        if ld!(self).uncommitted_bytes > 0 && ld!(self).uncommitted_bytes + bytes > limit {
            emit!(
                DEBUG,
                PROPOSAL_REFUSED,
                self,
                reason = "uncommitted_bytes",
                entries = data.len() as u64,
                held_bytes = ld!(self).uncommitted_bytes,
                limit_bytes = limit
            );
            return Err(Busy::UncommittedBytes {
                held: ld!(self).uncommitted_bytes,
                limit,
            }
            .into());
        }
        ld!(self).uncommitted_bytes += bytes;
        let term = self.term;
        let first = self.log.last_index().next();
        // One run, one allocation, shared from here to every follower and
        // to the host.
        let mut data = data.into_iter();
        let run = Entries::build(data.len(), |i| Entry {
            term,
            index: Index(first.0 + i as u64),
            kind: EntryKind::Normal,
            data: data.next().unwrap_or_default(),
        });
        self.log.append(run);
        let last = self.log.last_index();
        self.broadcast_append(false);
        Ok(Proposed { term, first, last })
    }

    /// A proposal from this node's host.
    pub fn propose(&mut self, data: Commands) -> Result<(), Error> {
        if self.role != Role::Leader {
            return match self.leader {
                Some(l) if self.cfg.forward_proposals => {
                    self.send(
                        l,
                        Body::Propose {
                            data: data.into_vec(),
                        },
                    );
                    Ok(())
                }
                leader => {
                    emit!(
                        DEBUG,
                        PROPOSAL_REFUSED,
                        self,
                        reason = "not_leader",
                        entries = data.len() as u64,
                        leader = leader.map(|l| l.0)
                    );
                    Err(Error::NotLeader { leader })
                }
            };
        }
        let p = self.append_commands(data)?;
        self.record_proposals(p);
        self.proposed = Some(p);
        Ok(())
    }

    /// Proposals forwarded by a follower. Their outcome is tracked by the
    /// follower's host (by content), not here.
    pub(super) fn handle_forwarded_propose(&mut self, data: Vec<Bytes>) {
        if self.role != Role::Leader || data.is_empty() {
            emit!(
                DEBUG,
                PROPOSAL_REFUSED,
                self,
                reason = if data.is_empty() {
                    "empty"
                } else {
                    "not_leader"
                },
                entries = data.len() as u64,
                leader = self.leader.map(|l| l.0)
            );
            return self.drop_msg(DropReason::ProposalRefused);
        }
        if self.append_commands(data.into()).is_err() {
            self.drop_msg(DropReason::ProposalRefused);
        }
    }

    pub(super) fn record_proposals(&mut self, p: Proposed) {
        let in_order = self.proposals.back().is_none_or(|b| b.index < p.first);
        for id in p.ids() {
            if in_order {
                self.proposals.push_back(id);
            } else {
                let at = self
                    .proposals
                    .partition_point(|q| (q.index, q.term) < (id.index, id.term));
                self.proposals.insert(at, id);
            }
        }
    }

    /// Moves proposals whose index has been handed out as committed off the
    /// pending list; those whose index committed with another term are lost.
    pub fn settle_proposals(&mut self, lost: &mut Vec<LogId>) {
        while let Some(p) = self.proposals.front().copied() {
            if p.index > self.dur.handed() {
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
            let pr = &mut ld!(self).progress[i];
            if pr.state == ProgressState::Replicate {
                pr.become_probe();
            }
        }
    }

    /// Sends every follower what it is missing. With `send_if_empty`, a
    /// follower that is missing nothing still gets an empty AppendEntries (to
    /// learn a new commit index).
    pub(crate) fn broadcast_append(&mut self, send_if_empty: bool) {
        let me = self.own_pos();
        for i in 0..self.conf.len() {
            if Some(i) != me {
                self.send_append(i, send_if_empty);
            }
        }
    }

    /// Sends one AppendEntries to peer `i` if its progress allows. Returns
    /// whether one was sent.
    pub(super) fn send_append(&mut self, i: usize, send_if_empty: bool) -> bool {
        let pr = &ld!(self).progress[i];
        if pr.is_paused() {
            return false;
        }
        let next = pr.next_index;
        let last = self.log.last_index();
        if next > last && !send_if_empty {
            return false;
        }
        let prev_index = next.prev();
        let Some(prev_term) = self.log.term_at(prev_index) else {
            debug_assert!(false, "next index {next:?} beyond the log");
            return false;
        };
        let entries = self
            .log
            .slice(next, last, self.cfg.max_entries_bytes_per_msg);
        let bytes = entries.iter().map(Entry::size_bytes).sum();
        let pr = &mut ld!(self).progress[i];
        pr.sent(entries.last().map(|e| e.index), bytes);
        let to = pr.id;
        let commit = self.log.committed;
        self.send(
            to,
            Body::AppendEntries {
                prev: LogId::new(prev_term, prev_index),
                entries,
                commit,
            },
        );
        traced! {
            let pr = &self.lead.as_deref().expect("leading").progress[i];
            if let Some(reason) = pr.pause_reason() {
                emit!(DEBUG, REPLICATION_PAUSED, self,
                    peer = pr.id.0,
                    reason,
                    next_index = pr.next_index.0,
                    match_index = pr.match_index.0,
                    inflight_msgs = pr.inflight() as u64);
            }
        }
        true
    }

    /// §5.3, §5.4.2: the leader commits the highest index held by a majority,
    /// but only if that entry is of its own term (Figure 8). Its own log counts
    /// only as far as it is durable. Returns whether the commit index moved.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let stable = self.dur.stable();
        if let Some(me) = self.own_pos() {
            ld!(self).progress[me].maybe_update(stable);
        }
        let progress = &self.lead.as_deref().expect("leading").progress;
        let conf = &self.conf;
        let idx = conf.quorum().value(|id| {
            conf.position(id)
                .map_or(Index(0), |p| progress[p].match_index)
        });
        let own_term = self.log.term_at(idx) == Some(self.term);
        if idx <= self.log.committed || !(own_term || bug!(self, CommitEarlierTermByCount)) {
            return false;
        }
        let freed = self
            .log
            .bytes_of_term(self.log.committed.next(), idx, self.term);
        ld!(self).uncommitted_bytes = ld!(self).uncommitted_bytes.saturating_sub(freed);
        self.log.committed = idx;
        if own_term {
            // The first commit of our term makes our commit index at least
            // the previous leader's: reads that waited for it can go now.
            self.release_waiting_reads();
        }
        true
    }

    pub(super) fn handle_append_response(&mut self, i: usize, r: AppendResponse) {
        if self.role != Role::Leader {
            return self.drop_msg(DropReason::Stale);
        }
        ld!(self).progress[i].recent_active = true;
        match r {
            AppendResponse::Success { match_index } => {
                if match_index > self.log.last_index() {
                    return self.drop_msg(DropReason::Malformed);
                }
                let pr = &mut ld!(self).progress[i];
                let was_probe = pr.state == ProgressState::Probe;
                let old_match = pr.match_index;
                let confirms = match_index == old_match;
                let updated = pr.maybe_update(match_index);
                if !(updated || was_probe && confirms) {
                    return self.drop_msg(DropReason::Stale);
                }
                if was_probe {
                    pr.become_replicate();
                }
                // An acknowledgement at or below the commit index cannot
                // move it.
                let moved = updated && match_index > self.log.committed && self.maybe_commit();
                if moved {
                    self.broadcast_commit();
                }
                let mut sent = false;
                while self.send_append(i, false) {
                    sent = true;
                }
                if !moved && !sent && updated && old_match < self.log.committed {
                    // It now holds entries committed while they were on
                    // their way to it: say so, as nothing else will soon.
                    let commit = match_index.min(self.log.committed);
                    let to = ld!(self).progress[i].id;
                    self.send(to, Body::Commit { commit });
                }
                self.maybe_send_timeout_now(i);
                if moved {
                    self.after_commit();
                }
            }
            AppendResponse::Behind { last } => {
                let pr = &mut ld!(self).progress[i];
                if last.index >= pr.match_index {
                    // Sent before a later acknowledgement: nothing lost.
                    return self.drop_msg(DropReason::Stale);
                }
                #[cfg(feature = "tracing")]
                let acked = pr.match_index;
                pr.forget_match(last.index.min(self.log.last_index()));
                emit!(
                    WARN,
                    FOLLOWER_BEHIND,
                    self,
                    peer = ld!(self).progress[i].id.0,
                    last_index = last.index.0,
                    last_term = last.term.0,
                    acked_index = acked.0
                );
                self.send_append(i, true);
            }
            AppendResponse::Reject { rejected, hint } => {
                if hint.index > rejected {
                    return self.drop_msg(DropReason::Malformed);
                }
                // Fast backtracking: skip every entry of ours after the last
                // index where the follower's log may agree with ours.
                let to = if hint.term > Term(0) {
                    self.log.last_at_or_below(hint.index, hint.term).index
                } else {
                    hint.index
                };
                if ld!(self).progress[i].maybe_decr_to(rejected, to) {
                    self.send_append(i, true);
                } else {
                    self.drop_msg(DropReason::Stale);
                }
            }
        }
    }

    pub(super) fn handle_heartbeat_response(&mut self, i: usize, round: u64) {
        if self.role != Role::Leader {
            return self.drop_msg(DropReason::Stale);
        }
        if round > ld!(self).reads.round {
            return self.drop_msg(DropReason::Malformed);
        }
        let pr = &mut ld!(self).progress[i];
        pr.recent_active = true;
        pr.acked_round = pr.acked_round.max(round);
        pr.on_heartbeat_response();
        if pr.match_index < self.log.last_index() || pr.state == ProgressState::Probe {
            self.send_append(i, true);
        }
        self.confirm_reads();
    }

    /// Whether the entries of an AppendEntries are well formed: contiguous
    /// after `prev`, terms non-decreasing and not beyond the sender's term.
    fn entries_well_formed(term: Term, prev: LogId, entries: &[Entry]) -> bool {
        if prev.term > term {
            return false;
        }
        let mut last = prev;
        for e in entries {
            // Checked: a peer may send an index with no successor.
            let follows = last.index.0.checked_add(1) == Some(e.index.0);
            if !follows || e.term < last.term || e.term > term || !Self::membership_entry_ok(e) {
                return false;
            }
            last = e.id();
        }
        true
    }

    /// A message from the leader of our term: we are its follower.
    fn follow(&mut self, leader: NodeId) {
        if self.role != Role::Follower {
            let term = self.term;
            self.become_follower(term, Some(leader));
        }
        self.leader = Some(leader);
        self.election_elapsed = 0;
    }

    /// The follower side of AppendEntries (§5.3).
    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        term: Term,
        prev: LogId,
        entries: Entries,
        commit: Index,
    ) {
        if self.role == Role::Leader {
            // Two leaders in one term: Election Safety says this cannot happen.
            return self.drop_msg(DropReason::Misbehaving);
        }
        if !Self::entries_well_formed(term, prev, &entries) {
            return self.drop_msg(DropReason::Malformed);
        }
        self.follow(from);

        if prev.index < self.log.committed {
            // Everything up to our commit index matches any leader's log
            // (Leader Completeness); report that instead of re-checking.
            let m = self.log.committed;
            return self.ack_append(from, m);
        }
        if !self.log.matches(prev) {
            let hint = self
                .log
                .last_at_or_below(prev.index.min(self.log.last_index()), prev.term);
            return self.send(
                from,
                Body::AppendEntriesResponse(AppendResponse::Reject {
                    rejected: prev.index,
                    hint,
                }),
            );
        }
        // Skip what we already hold; truncate only at a real conflict, never
        // because a stale or reordered AppendEntries is shorter than our log.
        let conflict = entries
            .iter()
            .position(|e| self.log.term_at(e.index) != Some(e.term));
        let last_new = Index(prev.index.0 + entries.len() as u64);
        if let Some(k) = conflict {
            let at = entries[k].index;
            if at <= self.log.committed {
                return self.drop_msg(DropReason::Misbehaving);
            }
            let truncated = at <= self.log.last_index();
            if truncated {
                self.log.truncate(at);
                self.dur.log_truncated(at);
            }
            self.log_changed(truncated.then_some(at), &entries[k..]);
            self.log.append(entries.sub(k, entries.len()));
        } else if bug!(self, TruncateOnStaleAppend)
            && last_new < self.log.last_index()
            && last_new >= self.log.committed
        {
            self.log.truncate(last_new.next());
            self.dur.log_truncated(last_new.next());
            self.log_changed(Some(last_new.next()), &[]);
        }
        let new_commit = if bug!(self, CommitBeyondVerified) {
            commit.min(self.log.last_index())
        } else {
            commit.min(last_new)
        };
        if new_commit > self.log.committed {
            self.log.committed = new_commit;
        }
        self.ack_append(from, last_new);
    }

    /// Acknowledges a match up to `m`, once entries up to `m` are durable.
    fn ack_append(&mut self, to: NodeId, m: Index) {
        let body = Body::AppendEntriesResponse(AppendResponse::Success { match_index: m });
        if m <= self.dur.stable() {
            self.send(to, body);
        } else {
            self.send_when_durable(to, body);
        }
    }

    /// A heartbeat or a commit notice from the leader of our term: follow
    /// it, and adopt its commit index, which it never sends beyond what we
    /// are known to hold. Returns whether the message was acceptable.
    pub(super) fn adopt_leader_commit(&mut self, from: NodeId, commit: Index) -> bool {
        if self.role == Role::Leader {
            self.drop_msg(DropReason::Misbehaving);
            return false;
        }
        self.follow(from);
        if commit > self.log.last_index() {
            // The leader sends no commit index beyond what it believes we
            // hold: our log went backwards (lost writes, a wiped disk). Say
            // where it ends, so the leader stops trusting what we once
            // acknowledged and brings us up to date.
            let last = self.log.last_id();
            emit!(
                WARN,
                LOG_BEHIND_LEADER,
                self,
                leader = from.0,
                commit = commit.0,
                last_index = last.index.0,
                last_term = last.term.0
            );
            self.send(
                from,
                Body::AppendEntriesResponse(AppendResponse::Behind { last }),
            );
            return false;
        }
        if commit > self.log.committed {
            self.log.committed = commit;
        }
        true
    }

    /// Tells every follower about a new commit index. A follower with
    /// entries to receive gets them (an AppendEntries carries the commit
    /// index); one that holds everything gets a one-way `Commit`; one whose
    /// last entries are in flight hears when it acknowledges them.
    pub(crate) fn broadcast_commit(&mut self) {
        let last = self.log.last_index();
        let committed = self.log.committed;
        let me = self.own_pos();
        for i in 0..self.conf.len() {
            if Some(i) == me {
                continue;
            }
            if self.send_append(i, false) {
                continue;
            }
            let pr = &ld!(self).progress[i];
            if pr.state == ProgressState::Replicate && pr.next_index > last {
                // Entries still on their way will be told about when they
                // are acknowledged.
                if pr.match_index >= committed {
                    let to = pr.id;
                    self.send(to, Body::Commit { commit: committed });
                }
            } else {
                self.send_append(i, true);
            }
        }
    }
}
