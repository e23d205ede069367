//! Membership changes drawn during a run: the operator who adds, promotes,
//! removes and replaces nodes, and the host's bookkeeping of the
//! configurations its node reports.
//!
//! The operator acts on the leader it sees, one change at a time (the node
//! refuses a second one anyway): add a spare (a node started with no
//! configuration) as a learner, promote a learner once the leader has
//! caught it up, remove a voter (the leader included) or a learner, or
//! replace a voter by a caught-up learner in one joint change, left by the
//! leader on its own or, for an explicit one, by the operator's next
//! action. A node whose removal has committed is shut
//! down for good, as an operator would: a removed node that never heard of
//! its removal would otherwise keep campaigning, and a removed node is
//! never added back under the same id (it would bring back a stale log and
//! configuration, the reason real clusters give new members new ids).

use super::check::Fail;
use super::cluster::{Cluster, Ev};
use super::trace::Rec;
use crate::input::Input;
use crate::membership::{ConfChange, ConfState, MembershipChange, Transition};
use crate::types::NodeId;

impl Cluster {
    /// The membership timer: one operator action.
    pub(crate) fn membership_timer(&mut self) -> Result<Option<usize>, Fail> {
        if !self.faults_on {
            return Ok(None);
        }
        let next = self.fault_interval(self.plan.membership_every_ticks);
        self.schedule(next, Ev::MembershipTimer);
        let Some((leader, _)) = self.leader() else {
            return Ok(None);
        };
        let l = leader.0 as usize - 1;
        let Some(node) = self.hosts[l].node.as_ref() else {
            return Ok(None);
        };
        let conf = node.conf_state().clone();
        // Learners the leader has caught up: only they are promoted, as an
        // operator would (a voter that cannot keep up stalls commits).
        let caught_up: Vec<NodeId> = node
            .progress()
            .filter(|p| conf.learners.contains(&p.id) && p.match_index >= node.commit())
            .map(|p| p.id)
            .collect();
        self.follow_committed_config()?;
        let input = if conf.is_joint() && !conf.auto_leave {
            Input::LeaveJoint
        } else {
            match self.draw_change(&conf, &caught_up) {
                Some(change) => Input::ChangeMembership(change),
                None => return Ok(None),
            }
        };
        self.trace.push(
            self.now,
            Rec::Note(format!("operator: n{} {input:?}", leader.0)),
        );
        let added: Vec<NodeId> = match &input {
            Input::ChangeMembership(c) => c
                .changes
                .iter()
                .filter(|c| !matches!(c, ConfChange::RemoveNode(_)))
                .map(ConfChange::node)
                .collect(),
            _ => Vec::new(),
        };
        let joint = matches!(&input, Input::ChangeMembership(c) if c.changes.len() > 1);
        let acted = self.operate(l, input, false)?;
        if acted.is_some() {
            self.stats.faults.membership_changes += 1;
            self.stats.faults.joint_changes += u64::from(joint);
            for id in added {
                self.hosts[id.0 as usize - 1].was_member = true;
            }
        }
        Ok(acted)
    }

    /// Marks the members of the newest committed configuration, and shuts
    /// down for good the nodes it removed. The newest committed
    /// configuration is read at the up node with the highest commit index
    /// (a leader may be a stale one, cut off in an older term), and only if
    /// the configuration in force there is committed.
    fn follow_committed_config(&mut self) -> Result<(), Fail> {
        let Some(node) = self
            .hosts
            .iter()
            .filter_map(|h| h.node.as_ref())
            // A spare that was never added knows no configuration at all.
            .filter(|n| !n.conf_state().voters.is_empty())
            .max_by_key(|n| n.commit())
        else {
            return Ok(());
        };
        if node.conf_index() > node.commit() {
            return Ok(());
        }
        let conf = node.conf_state().clone();
        for id in conf.members() {
            self.hosts[id.0 as usize - 1].committed_member = true;
        }
        if !conf.is_joint() {
            self.decommission_removed(&conf)?;
        }
        Ok(())
    }

    /// A change for the configuration `conf` whose learners `caught_up`
    /// hold the leader's log, or none.
    fn draw_change(&mut self, conf: &ConfState, caught_up: &[NodeId]) -> Option<MembershipChange> {
        let spare = self
            .hosts
            .iter()
            .find(|h| h.spare && !h.was_member && h.is_up())
            .map(|h| h.id);
        let rng = &mut self.fault_rng;
        let pick = |rng: &mut super::rng::Rng, set: &[NodeId]| rng.pick(set).copied();
        match rng.below(6) {
            0 | 1 => spare.map(MembershipChange::add_learner),
            2 => pick(rng, caught_up).map(MembershipChange::add_voter),
            3 if conf.voters.len() > 1 => pick(rng, &conf.voters).map(MembershipChange::remove),
            4 => pick(rng, &conf.learners).map(MembershipChange::remove),
            5 => {
                let (Some(s), Some(v)) = (pick(rng, caught_up), pick(rng, &conf.voters)) else {
                    return None;
                };
                let t = if rng.coin() {
                    Transition::Joint
                } else {
                    Transition::JointExplicit
                };
                Some(
                    MembershipChange::new([ConfChange::AddVoter(s), ConfChange::RemoveNode(v)])
                        .with_transition(t),
                )
            }
            _ => None,
        }
    }

    /// Shuts down for good every node that was a member of a committed
    /// configuration and is not one of the committed configuration `conf`.
    fn decommission_removed(&mut self, conf: &ConfState) -> Result<(), Fail> {
        for n in 0..self.hosts.len() {
            let h = &self.hosts[n];
            if h.committed_member && !h.decommissioned && !conf.contains(h.id) {
                self.trace.push(
                    self.now,
                    Rec::Note(format!("operator: n{} removed, shut down for good", h.id.0)),
                );
                self.hosts[n].decommissioned = true;
                self.stats.faults.decommissioned += 1;
                self.crash_now(n, "decommissioned", None)?;
            }
        }
        Ok(())
    }

    /// Node `n` reported a new configuration in force: remember it for the
    /// commitment check, and if it leads with another set of voters, its
    /// CheckQuorum obligation starts over: from its next round it must hear
    /// a majority of the new voters, so the check's window counts from now.
    pub(crate) fn conf_changed(&mut self, n: usize, conf: ConfState) {
        let founders = (1..=self.plan.nodes as u64).map(NodeId);
        let host = &mut self.hosts[n];
        let before = host
            .confs
            .last()
            .cloned()
            .unwrap_or_else(|| ConfState::new(founders));
        let same_voters =
            before.voters == conf.voters && before.voters_outgoing == conf.voters_outgoing;
        if let Some(w) = host.watch.as_mut()
            && !same_voters
        {
            w.since = w.since.max(host.ticks);
        }
        host.confs.push(conf);
        if host.confs.len() > 4 {
            host.confs.remove(0);
        }
    }
}
