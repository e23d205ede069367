//! Linearizable reads (thesis §6.4: read index, leases, reads on followers)
//! and leadership transfer (thesis §3.10).

use super::{Raft, bug, ld};
use crate::error::{Busy, Error, Misuse};
use crate::message::Body;
use crate::read_index::PendingRead;
use crate::ready::{ReadState, TransferOutcome};
use crate::status::Role;
use crate::trace::emit;
use crate::types::{Index, NodeId};

impl Raft {
    /// A read-index request from this node's host.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), Error> {
        if self.role != Role::Leader {
            return match self.leader {
                Some(l) => {
                    self.send(l, Body::ReadIndex { ctx });
                    Ok(())
                }
                None => Err(Error::NotLeader { leader: None }),
            };
        }
        let limit = self.cfg.max_pending_reads;
        if ld!(self).reads.len() >= limit as usize {
            return Err(Busy::PendingReads { limit }.into());
        }
        self.accept_read(ctx, None);
        Ok(())
    }

    /// A read-index request a follower forwarded.
    pub(super) fn handle_forwarded_read(&mut self, from: NodeId, ctx: u64) {
        if self.role != Role::Leader || ld!(self).reads.len() >= self.cfg.max_pending_reads as usize
        {
            return self.send(from, Body::ReadIndexResponse { ctx, index: None });
        }
        self.accept_read(ctx, Some(from));
    }

    fn accept_read(&mut self, ctx: u64, from: Option<NodeId>) {
        if self.log.term_at(self.log.committed) != Some(self.term) {
            // Until an entry of our term commits, our commit index may be
            // behind what the previous leader committed (§8).
            ld!(self).reads.waiting.push_back((ctx, from));
            return;
        }
        let index = self.log.committed;
        // Alone a quorum (one voter): nothing to confirm with anyone.
        let me = self.id;
        if self.conf.quorum().value(|id| id == me) || self.lease_valid() {
            return self.answer_read(ctx, from, Some(index));
        }
        // Coalesce: while one round is in flight, new reads wait for the
        // next, which starts when the current one is confirmed (or at the
        // next heartbeat). A round started before the read cannot confirm it.
        let round = if ld!(self).confirmed_round >= ld!(self).reads.round {
            self.broadcast_heartbeat()
        } else {
            ld!(self).round_wanted = true;
            ld!(self).reads.round + 1
        };
        ld!(self).reads.push(PendingRead {
            ctx,
            from,
            index,
            round,
        });
    }

    fn answer_read(&mut self, ctx: u64, from: Option<NodeId>, index: Option<Index>) {
        match from {
            None => self.read_states.push(ReadState { ctx, index }),
            Some(to) => self.send(to, Body::ReadIndexResponse { ctx, index }),
        }
    }

    /// Whether the leader's lease holds: a majority answered a heartbeat
    /// round sent less than `election_timeout_ticks_min - margin` ticks ago,
    /// and those followers will not vote for anyone else before their own
    /// election timeout (CheckQuorum's stickiness).
    fn lease_valid(&self) -> bool {
        let Some(ld) = self.lead.as_deref() else {
            return false;
        };
        if !(self.cfg.lease_reads && self.cfg.check_quorum)
            || ld.lease_forfeited
            || ld.confirmed_round < ld.lease_floor
        {
            return false;
        }
        let timeout = if bug!(self, LeaseFromMaxTimeout) {
            self.cfg.election_timeout_ticks_max
        } else {
            self.cfg.election_timeout_ticks_min
        };
        let margin = if bug!(self, LeaseWithoutDriftMargin) {
            0
        } else {
            self.cfg.lease_drift_margin_ticks
        };
        let lease = u64::from(timeout - margin);
        ld.reads
            .tick_of(ld.confirmed_round)
            .is_some_and(|start| self.ticks < start + lease)
    }

    /// Recomputes the round a majority has answered and answers the reads it
    /// confirms.
    pub(super) fn confirm_reads(&mut self) {
        let ld = self.lead.as_deref_mut().expect("leading");
        let progress = &ld.progress;
        let conf = &self.conf;
        let confirmed = conf
            .quorum()
            .value(|id| conf.position(id).map_or(0, |p| progress[p].acked_round));
        ld.confirmed_round = confirmed;
        while let Some(r) = ld!(self).reads.pop_confirmed(confirmed) {
            self.answer_read(r.ctx, r.from, Some(r.index));
        }
        let ld = ld!(self);
        if ld.round_wanted && ld.confirmed_round >= ld.reads.round {
            self.broadcast_heartbeat();
        }
    }

    /// Serves the reads that waited for the first commit of this term.
    pub(super) fn release_waiting_reads(&mut self) {
        while let Some((ctx, from)) = ld!(self).reads.waiting.pop_front() {
            self.accept_read(ctx, from);
        }
    }

    /// Leadership is lost: every read still waiting fails (so no client waits
    /// forever), and a transfer in progress is over.
    pub(super) fn end_leadership(&mut self) {
        self.end_transfer(TransferOutcome::LeadershipLost);
        while let Some((ctx, from)) = ld!(self).reads.pop_any() {
            self.answer_read(ctx, from, None);
        }
    }

    /// Aborts the transfer in progress (`Input::AbortTransfer`).
    pub fn abort_transfer(&mut self) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        self.end_transfer(TransferOutcome::Aborted);
        Ok(())
    }

    /// Starts handing leadership to `to`.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if to == self.id {
            self.end_transfer(TransferOutcome::Aborted);
            return Ok(());
        }
        let Some(i) = self.peer_pos(to).filter(|_| self.conf.is_voter(to)) else {
            return Err(Misuse::TransferToNonVoter(to).into());
        };
        if ld!(self).transferee == Some(to) {
            return Ok(());
        }
        ld!(self).transferee = Some(to);
        emit!(
            INFO,
            TRANSFER_STARTED,
            self,
            to = to.0,
            match_index = ld!(self).progress[i].match_index.0,
            last_index = self.log.last_index().0
        );
        // The transfer gets one election timeout to finish.
        self.election_elapsed = 0;
        if !self.maybe_send_timeout_now(i) {
            self.send_append(i, true);
        }
        Ok(())
    }

    /// Tells the transfer target to campaign once its log is as long as
    /// ours, so it is sure to win. Returns whether it was told.
    pub(super) fn maybe_send_timeout_now(&mut self, i: usize) -> bool {
        let to = ld!(self).progress[i].id;
        if ld!(self).transferee != Some(to)
            || ld!(self).progress[i].match_index != self.log.last_index()
        {
            return false;
        }
        self.send(to, Body::TimeoutNow);
        emit!(INFO, TRANSFER_TIMEOUT_NOW_SENT, self, to = to.0);
        ld!(self).lease_forfeited = true;
        true
    }
}
