//! Membership changes (thesis chapter 4): proposing a configuration,
//! taking in the configurations the log carries, leaving a joint
//! configuration, and a removed leader stepping down. The safety argument
//! is in `crate::membership`'s module docs.

use super::{Raft, bug, ld};
use crate::error::{Busy, Error};
use crate::membership::{self, ConfState, MembershipChange, MembershipEntry, MembershipError};
use crate::message::{Entry, EntryKind};
use crate::progress::Progress;
use crate::ready::{Proposed, TransferOutcome};
use crate::status::Role;
use crate::trace::emit;
use crate::tracker::Membership;
use crate::types::Index;

impl Raft {
    /// A membership change from this node's host
    /// (`Input::ChangeMembership`).
    pub fn propose_membership(&mut self, change: MembershipChange) -> Result<(), Error> {
        self.may_change_membership()?;
        let next = membership::apply_change(self.confs.current(), &change)?;
        let p = self.append_membership(Some(change), next);
        self.record_proposal(p);
        Ok(())
    }

    /// The host leaves a joint configuration (`Input::LeaveJoint`).
    pub fn leave_joint(&mut self) -> Result<(), Error> {
        self.may_change_membership()?;
        let next = membership::leave_joint(self.confs.current())?;
        let p = self.append_membership(None, next);
        self.record_proposal(p);
        Ok(())
    }

    /// Whether this node may propose a configuration now: it leads, no
    /// transfer runs, the configuration in force is committed (one change
    /// at a time), and an entry of its own term is committed (so its log
    /// holds every committed configuration; see the module docs).
    fn may_change_membership(&self) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(to) = self.lead.as_deref().and_then(|l| l.transferee) {
            return Err(Busy::LeadershipTransfer { to }.into());
        }
        let at = self.confs.current_index();
        if at > self.log.committed && !bug!(self, TwoChangesAtOnce) {
            return Err(MembershipError::ChangePending { index: at }.into());
        }
        if self.log.term_at(self.log.committed) != Some(self.term)
            && !bug!(self, ChangeBeforeTermCommit)
        {
            return Err(MembershipError::TermNotCommitted.into());
        }
        Ok(())
    }

    /// Appends an entry carrying configuration `conf`, which is in force
    /// from now on, and sends it.
    fn append_membership(&mut self, change: Option<MembershipChange>, conf: ConfState) -> Proposed {
        let term = self.term;
        let index = self.log.last_index().next();
        let data = MembershipEntry {
            change,
            conf: conf.clone(),
        }
        .encode();
        ld!(self).uncommitted_bytes += 24 + data.len() as u64;
        self.log.push(Entry {
            term,
            index,
            kind: EntryKind::Membership,
            data,
        });
        self.confs.push(index, conf);
        self.on_conf_change();
        self.broadcast_append(false);
        // Without a voter that lagged behind, a quorum may already hold
        // more than the commit index.
        if self.maybe_commit() {
            self.broadcast_commit();
        }
        Proposed {
            term,
            first: index,
            last: index,
        }
    }

    /// The log lost every entry from `truncated` on (if any) and took in
    /// `appended`: follow the configurations they carried. Entries from the
    /// network were checked to decode (`entries_well_formed`).
    pub(super) fn log_changed(&mut self, truncated: Option<Index>, appended: &[Entry]) {
        let mut changed = truncated.is_some_and(|at| self.confs.truncate(at));
        for e in appended {
            if e.kind == EntryKind::Membership
                && let Ok(m) = MembershipEntry::decode(&e.data)
            {
                self.confs.push(e.index, m.conf);
                changed = true;
            }
        }
        self.confs.compact(self.log.committed);
        if changed {
            self.on_conf_change();
        }
    }

    /// The configuration in force changed: rebuild the per-member tables.
    fn on_conf_change(&mut self) {
        self.conf = Membership::new(self.confs.current());
        #[cfg(zaft_bugs)]
        if bug!(self, JointCountsOnlyIncoming) {
            self.conf.forget_outgoing();
        }
        self.conf_changed = true;
        emit!(
            INFO,
            MEMBERSHIP_CHANGED,
            self,
            index = self.confs.current_index().0,
            voters = self.confs.current().voters.len() as u64,
            voters_outgoing = self.confs.current().voters_outgoing.len() as u64,
            learners = self.confs.current().learners.len() as u64,
            removed = !self.conf.is_voter(self.id)
        );
        if matches!(self.role, Role::Candidate | Role::PreCandidate) {
            // Only a follower takes entries in; kept for completeness.
            let term = self.term;
            self.become_follower(term, None);
            return;
        }
        let Some(ld) = self.lead.as_deref_mut() else {
            return;
        };
        // A new member is probed from the entry that made it one, which
        // goes out with the next broadcast: it learns of the cluster now,
        // not at the next heartbeat.
        let next = self.log.last_index().max(Index(1));
        let (max_msgs, max_bytes) = (
            self.cfg.max_inflight_msgs as usize,
            self.cfg.max_inflight_bytes,
        );
        let mut old = core::mem::take(&mut ld.progress);
        ld.progress = self
            .conf
            .ids()
            .map(|id| match old.iter().position(|p| p.id == id) {
                Some(k) => old.swap_remove(k),
                None => Progress::new(id, next, max_msgs, max_bytes),
            })
            .collect();
        // A lease rests on the promises of a majority of the configuration
        // that confirmed its round; the new one's majorities may be other
        // nodes. Only rounds started from now on give a lease.
        ld.lease_floor = ld.reads.round + 1;
        let transferee_gone = ld.transferee.is_some_and(|t| !self.conf.is_voter(t));
        if transferee_gone {
            self.end_transfer(TransferOutcome::Aborted);
        }
        // Read rounds are counted by the new configuration's majorities.
        self.confirm_reads();
    }

    /// The commit index moved at the leader: a committed joint
    /// configuration is left, and a leader the committed configuration
    /// removed steps down.
    pub(super) fn after_commit(&mut self) {
        self.confs.compact(self.log.committed);
        if self.role != Role::Leader || self.confs.current_index() > self.log.committed {
            return;
        }
        let cur = self.confs.current();
        if !cur.is_voter(self.id) && self.cfg.step_down_on_removal {
            let term = self.term;
            self.become_follower(term, None);
            return;
        }
        let leave = cur.is_joint()
            && cur.auto_leave
            && self.log.term_at(self.log.committed) == Some(self.term)
            && ld!(self).transferee.is_none();
        if leave && let Ok(next) = membership::leave_joint(cur) {
            self.append_membership(None, next);
        }
    }

    /// Whether this node may stand for election: it votes in the latest
    /// committed configuration of its log or in one after it. A node whose
    /// removal (or demotion) is not committed yet still takes part: a
    /// leader that removed itself may have been deposed before the removal
    /// reached the new voters, and its log, the longest, is the one that
    /// must win for the removal to commit. Its election is decided by the
    /// majorities of the configuration in force, as any. Once the change
    /// is committed it never campaigns again; nor do learners and nodes
    /// that have not joined.
    #[inline]
    pub(crate) fn may_campaign(&self) -> bool {
        self.conf.is_voter(self.id) || self.confs.votes_since(self.id, self.log.committed)
    }

    /// Records a proposal of this node's host, reported in the Ready.
    fn record_proposal(&mut self, p: Proposed) {
        self.record_proposals(p);
        self.proposed = Some(p);
    }

    /// Whether `e`, if it carries a configuration, carries one that decodes.
    pub(super) fn membership_entry_ok(e: &Entry) -> bool {
        e.kind != EntryKind::Membership || MembershipEntry::decode(&e.data).is_ok()
    }
}
