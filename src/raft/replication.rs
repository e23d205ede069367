//! Log replication (§5.3) and commitment (§5.4.2): AppendEntries on both
//! sides, heartbeats, fast backtracking and the commit rule.

use alloc::vec::Vec;

use super::{Raft, bug};
use crate::message::{AppendResponse, Body, Entry};
use crate::quorum::committed_index;
use crate::status::{DropReason, ProgressState, Role};
use crate::types::{Index, LogId, NodeId, Term};

impl Raft {
    pub(super) fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.cfg.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            for i in 0..self.peers.len() {
                // Never beyond what the follower is known to hold, so it can
                // adopt the value without checking its log.
                let commit = self.progress[i].match_index.min(self.log.committed);
                let to = self.peers[i];
                self.send(to, Body::Heartbeat { commit });
            }
        }
    }

    /// Sends every follower what it is missing. With `send_if_empty`, a
    /// follower that is missing nothing still gets an empty AppendEntries (to
    /// learn a new commit index).
    pub(crate) fn broadcast_append(&mut self, send_if_empty: bool) {
        for i in 0..self.peers.len() {
            self.send_append(i, send_if_empty);
        }
    }

    /// Sends one AppendEntries to peer `i` if its progress allows. Returns
    /// whether one was sent.
    fn send_append(&mut self, i: usize, send_if_empty: bool) -> bool {
        let pr = &self.progress[i];
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
        let pr = &mut self.progress[i];
        pr.sent(entries.last().map(|e| e.index));
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
        true
    }

    /// §5.3, §5.4.2: the leader commits the highest index held by a majority,
    /// but only if that entry is of its own term (Figure 8). Its own log counts
    /// only as far as it is durable. Returns whether the commit index moved.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let own = self.log.stable;
        let idx = committed_index(
            self.progress
                .iter()
                .map(|p| p.match_index)
                .chain(core::iter::once(own)),
        );
        let own_term = self.log.term_at(idx) == Some(self.term);
        if idx > self.log.committed && (own_term || bug!(self, CommitEarlierTermByCount)) {
            self.log.committed = idx;
            true
        } else {
            false
        }
    }

    pub(super) fn handle_append_response(&mut self, i: usize, r: AppendResponse) {
        if self.role != Role::Leader {
            return self.drop_msg(DropReason::Stale);
        }
        match r {
            AppendResponse::Success { match_index } => {
                if match_index > self.log.last_index() {
                    return self.drop_msg(DropReason::Malformed);
                }
                let pr = &mut self.progress[i];
                let was_probe = pr.state == ProgressState::Probe;
                let confirms = match_index == pr.match_index;
                let updated = pr.maybe_update(match_index);
                if !(updated || was_probe && confirms) {
                    return self.drop_msg(DropReason::Stale);
                }
                if was_probe {
                    pr.become_replicate();
                }
                if updated && self.maybe_commit() {
                    self.broadcast_append(true);
                }
                while self.send_append(i, false) {}
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
                if self.progress[i].maybe_decr_to(rejected, to) {
                    self.send_append(i, true);
                } else {
                    self.drop_msg(DropReason::Stale);
                }
            }
        }
    }

    pub(super) fn handle_heartbeat_response(&mut self, i: usize) {
        if self.role != Role::Leader {
            return self.drop_msg(DropReason::Stale);
        }
        let pr = &mut self.progress[i];
        pr.on_heartbeat_response();
        if pr.match_index < self.log.last_index() || pr.state == ProgressState::Probe {
            self.send_append(i, true);
        }
    }

    /// Whether the entries of an AppendEntries are well formed: contiguous
    /// after `prev`, terms non-decreasing and not beyond the sender's term.
    fn entries_well_formed(term: Term, prev: LogId, entries: &[Entry]) -> bool {
        if prev.term > term {
            return false;
        }
        let mut last = prev;
        for e in entries {
            if e.index != last.index.next() || e.term < last.term || e.term > term {
                return false;
            }
            last = e.id();
        }
        true
    }

    /// The follower side of AppendEntries (§5.3).
    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        term: Term,
        prev: LogId,
        entries: Vec<Entry>,
        commit: Index,
    ) {
        if self.role == Role::Leader {
            // Two leaders in one term: Election Safety says this cannot happen.
            return self.drop_msg(DropReason::Misbehaving);
        }
        if !Self::entries_well_formed(term, prev, &entries) {
            return self.drop_msg(DropReason::Malformed);
        }
        if self.role == Role::Candidate {
            self.become_follower(term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;

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
            if at <= self.log.last_index() {
                self.log.truncate(at);
            }
            for e in entries.into_iter().skip(k) {
                self.log.push(e);
            }
        } else if bug!(self, TruncateOnStaleAppend)
            && last_new < self.log.last_index()
            && last_new >= self.log.committed
        {
            self.log.truncate(last_new.next());
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
        if m <= self.log.stable {
            self.send(to, body);
        } else {
            self.send_when_durable(to, body);
        }
    }

    pub(super) fn handle_heartbeat(&mut self, from: NodeId, commit: Index) {
        if self.role == Role::Leader {
            return self.drop_msg(DropReason::Misbehaving);
        }
        if self.role == Role::Candidate {
            let term = self.term;
            self.become_follower(term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
        if commit > self.log.last_index() {
            return self.drop_msg(DropReason::Misbehaving);
        }
        if commit > self.log.committed {
            self.log.committed = commit;
        }
        self.send(from, Body::HeartbeatResponse);
    }
}
