//! Fault injection: the timers that partition the network, crash hosts,
//! stall their processes, make their disks lie, act as an operator, and
//! attack leases; and the end of the safety phase, which heals everything
//! (`Cluster::heal`). Every choice comes from the cluster's fault generator,
//! and nothing here fires once the network is healed (`faults_on` is false).
//!
//! The lease faults aim at the moments a lease depends on:
//!
//! - **Fast restarts**: a follower of the leader crashes and is back within
//!   a tick. Before the crash it may have answered the heartbeat round the
//!   leader's lease counts on; after it, it must still refuse to elect anyone
//!   else until an election timeout has passed (the boot rule).
//! - **Lease attacks**: the leader is cut off from everyone at once, and
//!   from that moment one client reads at it back to back while another
//!   writes through the others, and an operator tells one follower to
//!   campaign every tenth of a tick until it does: the earliest election the
//!   rules allow. Half of the time a majority of the followers also restart
//!   at once and the pushy operator picks one of them: only the boot rule
//!   then stands between it and a second leader while the first one's lease
//!   still runs.
//! - **Stalls**: a host's whole process pauses. Events for it wait; the
//!   ticks it missed are counted. When it resumes, its host delivers every
//!   missed tick with one `Input::Ticks(n)` before it steps anything that
//!   arrived meanwhile, as the docs of `Input::Ticks` require.
//! - Clock drift at the bound is drawn in the plan (`Plan::tick_us`: each
//!   node ticks at the slow or the fast end of the bound). A lease attack
//!   then slows the cut-off leader's clock to the slow end and speeds every
//!   other node's to the fast end: any mix of the two stays within the
//!   bound, and this one is the mix a lease can least afford.
//!
//! And storage that lies (**amnesia**, only when the options allow it): a
//! crash may lose a suffix of the durable log or all of it, and the state
//! machine's snapshot with it; the hard state (term and vote) survives,
//! except with `Options::wipe_hard_state` (a wipe), which the core documents
//! it cannot make safe. The host restarts the node with `Restored::lost_data` (except,
//! half of the time, when the restored hard state's commit index already
//! proves the loss, which the node must notice on its own), and keeps saying
//! so at every restart until the node has caught up. At most a minority of
//! the nodes has lost data and not caught up at any time.

use super::check::{Check, Fail, fail};
use super::cluster::{Cluster, Ev};
use super::host::{CrashPoint, Loss};
use super::options::TICK_US;
use super::trace::Rec;
use crate::error::Error;
use crate::input::Input;
use crate::status::Role;
use crate::types::{Index, NodeId};

/// A host whose process is paused.
#[derive(Debug, Default)]
pub(crate) struct Stall {
    /// Ticks the node missed.
    missed: u32,
    /// Events for the node, in the order they came.
    backlog: Vec<Ev>,
}

impl Cluster {
    /// Ends the safety phase: heals the network, stops injecting faults and
    /// restarts every node that is down.
    pub(crate) fn heal(&mut self) -> Result<(), Fail> {
        self.faults_on = false;
        if self.net.partitioned() {
            self.heal_partition();
        }
        self.resume_all()?;
        self.trace.push(self.now, Rec::Heal);
        for n in 0..self.hosts.len() {
            self.hosts[n].armed = None;
            if !self.hosts[n].is_up() {
                self.restart_node(n)?;
            }
        }
        self.healed_at = Some(self.now);
        Ok(())
    }

    pub(crate) fn fault_interval(&mut self, mean_ticks: u64) -> u64 {
        self.now
            + self
                .fault_rng
                .range(mean_ticks / 2, mean_ticks * 3 / 2)
                .max(1)
                * TICK_US
    }

    pub(crate) fn partition_timer(&mut self) {
        if !self.faults_on {
            return;
        }
        let next = self.fault_interval(self.plan.partition_every_ticks);
        self.schedule(next, Ev::PartitionTimer);
        let n = self.hosts.len();
        if self.net.partitioned() || n < 2 {
            return;
        }
        let rng = &mut self.fault_rng;
        let desc = match rng.below(4) {
            0 => {
                // Two sides that cannot talk at all.
                let mut side: Vec<bool> = (0..n).map(|_| rng.coin()).collect();
                if side.iter().all(|s| *s) || side.iter().all(|s| !*s) {
                    side[rng.below(n as u64) as usize] ^= true;
                }
                self.net.split(&side);
                let group: Vec<String> = (0..n)
                    .filter(|&i| side[i])
                    .map(|i| format!("n{}", i + 1))
                    .collect();
                format!("symmetric: {{{}}} | the rest", group.join(","))
            }
            1 => {
                // Some one-way links fail.
                let mut cut = Vec::new();
                for a in 0..n {
                    for b in 0..n {
                        if a != b && rng.chance(300) {
                            self.net.cut(a, b);
                            cut.push(format!("n{}->n{}", a + 1, b + 1));
                        }
                    }
                }
                if cut.is_empty() {
                    self.net.cut(0, n - 1);
                    cut.push(format!("n1->n{n}"));
                }
                format!("asymmetric: {}", cut.join(" "))
            }
            2 => {
                let x = rng.below(n as u64) as usize;
                self.net.isolate(x);
                format!("n{} isolated", x + 1)
            }
            _ => {
                // A node that hears but is not heard, or the reverse.
                let x = rng.below(n as u64) as usize;
                let deaf = rng.coin();
                for o in 0..n {
                    if o != x {
                        if deaf {
                            self.net.cut(o, x);
                        } else {
                            self.net.cut(x, o);
                        }
                    }
                }
                format!(
                    "n{} {}",
                    x + 1,
                    if deaf {
                        "hears nobody (can send)"
                    } else {
                        "cannot send (can hear)"
                    }
                )
            }
        };
        let epoch = self.net.start_partition();
        self.stats.faults.partitions += 1;
        self.trace.push(self.now, Rec::Partition(desc));
        let heal = self.now + self.fault_rng.range(5, 80) * TICK_US;
        self.schedule(heal, Ev::Heal(epoch));
    }

    /// An operator action: the leader is asked to hand leadership to a
    /// random peer, or a follower is told to campaign now. Refusals (not the
    /// leader, a transfer already running) are part of the game.
    pub(crate) fn operator_timer(&mut self) -> Result<Option<usize>, Fail> {
        if !self.faults_on {
            return Ok(None);
        }
        let next = self.fault_interval(self.plan.operator_every_ticks);
        self.schedule(next, Ev::OperatorTimer);
        let nodes = self.hosts.len() as u64;
        // Half the time the leader (transfers), otherwise anyone.
        let n = match self.leader() {
            Some((id, _)) if self.fault_rng.coin() => id.0 as usize - 1,
            _ => self.fault_rng.below(nodes) as usize,
        };
        let Some(node) = self.hosts[n].node.as_ref() else {
            return Ok(None);
        };
        let input = if node.role() == Role::Leader {
            let to = NodeId(self.fault_rng.range(1, nodes));
            self.trace.push(
                self.now,
                Rec::Note(format!("operator: n{} transfer leadership to {to}", n + 1)),
            );
            Input::TransferLeader(to)
        } else {
            self.trace.push(
                self.now,
                Rec::Note(format!("operator: n{} campaign now", n + 1)),
            );
            Input::Campaign
        };
        let transfer = matches!(input, Input::TransferLeader(_));
        self.operate(n, input, transfer)
    }

    /// Gives node `n` an operator's input. Refusals (not the leader, a
    /// transfer already running, a leader still heard, a node catching up)
    /// are part of the game.
    pub(crate) fn operate(
        &mut self,
        n: usize,
        input: Input,
        transfer: bool,
    ) -> Result<Option<usize>, Fail> {
        let host = &mut self.hosts[n];
        let Some(node) = host.node.as_mut() else {
            return Ok(None);
        };
        match node.step(input) {
            Ok(ready) => {
                if transfer && let Some(w) = host.watch.as_mut() {
                    // A transfer gives the leader one more election timeout.
                    w.since = host.ticks;
                }
                self.process(n, ready)?;
                Ok(Some(n))
            }
            Err(
                e @ (Error::NotLeader { .. }
                | Error::Busy(_)
                | Error::Membership(_)
                | Error::Misuse(crate::error::Misuse::TransferToNonVoter(_))),
            ) => {
                self.trace.push(
                    self.now,
                    Rec::Note(format!("operator: n{} refused: {e}", n + 1)),
                );
                Ok(None)
            }
            Err(e) => fail(
                Check::NodeError,
                format!("n{}: an operator action failed: {e}", n + 1),
            ),
        }
    }

    pub(crate) fn crash_timer(&mut self) -> Result<(), Fail> {
        if !self.faults_on {
            return Ok(());
        }
        let next = self.fault_interval(self.plan.crash_every_ticks);
        self.schedule(next, Ev::CrashTimer);
        let n = self.fault_rng.below(self.hosts.len() as u64) as usize;
        if !self.hosts[n].is_up() {
            return Ok(());
        }
        let point = match self.fault_rng.below(8) {
            0 => Some(CrashPoint::AfterPersist),
            1 => Some(CrashPoint::AfterSend),
            2 => Some(CrashPoint::AfterApply),
            3 => Some(CrashPoint::BeforeAdvance),
            _ => None,
        };
        match point {
            Some(p) => self.hosts[n].armed = Some(p),
            // Between events: with an fsync in flight, between persist and fsync.
            None => self.crash_now(n, "between events", None)?,
        }
        Ok(())
    }

    /// A power cut at node `n` now; while faults are on, it restarts after
    /// `restart_after_us` (or a random 1 to 60 ticks).
    pub(crate) fn crash_now(
        &mut self,
        n: usize,
        point: &'static str,
        restart_after_us: Option<u64>,
    ) -> Result<(), Fail> {
        if !self.hosts[n].is_up() {
            return Ok(());
        }
        let (keep, partial) = if self.plan.torn_writes && self.faults_on {
            let len = self.hosts[n].buffer.len() as u64;
            let keep = self.fault_rng.range(0, len) as usize;
            let partial = self
                .fault_rng
                .coin()
                .then(|| self.fault_rng.range(0, 3) as usize);
            (keep, partial)
        } else {
            (0, None)
        };
        let (kept, lost) = match self.hosts[n].power_cut(keep, partial) {
            Ok(r) => r,
            Err(e) => return fail(Check::ReadyContract, format!("n{}: {e}", n + 1)),
        };
        if kept > 0 {
            self.stats.faults.torn_writes += 1;
        }
        self.stats.faults.crashes += 1;
        self.trace.push(
            self.now,
            Rec::Crash {
                node: n as u64 + 1,
                point,
                kept,
                lost,
            },
        );
        self.stalls[n] = None;
        if self.faults_on {
            self.maybe_lose_data(n);
            let after = restart_after_us.unwrap_or_else(|| self.fault_rng.range(1, 60) * TICK_US);
            self.schedule(self.now + after, Ev::Restart(n));
        }
        Ok(())
    }

    /// A follower of the leader crashes and comes back within a tick.
    pub(crate) fn fast_restart_timer(&mut self) -> Result<(), Fail> {
        if !self.faults_on {
            return Ok(());
        }
        let next = self.fault_interval(self.plan.fast_restart_every_ticks);
        self.schedule(next, Ev::FastRestartTimer);
        let Some((leader, _)) = self.leader() else {
            return Ok(());
        };
        let followers = self.up_nodes_except(leader.0 as usize - 1);
        let Some(&f) = self.fault_rng.pick(&followers) else {
            return Ok(());
        };
        self.stats.faults.fast_restarts += 1;
        let after = self.fault_rng.range(0, TICK_US);
        self.crash_now(f, "fast restart", Some(after))
    }

    /// The up nodes other than `except`.
    fn up_nodes_except(&self, except: usize) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|&i| i != except && self.hosts[i].is_up())
            .collect()
    }

    /// Cuts the leader off, wakes the lease clients, and half of the time
    /// restarts a majority of the followers at once and tells one of them
    /// to campaign.
    pub(crate) fn lease_attack_timer(&mut self) -> Result<(), Fail> {
        if !self.faults_on {
            return Ok(());
        }
        let next = self.fault_interval(self.plan.lease_attack_every_ticks);
        self.schedule(next, Ev::LeaseAttackTimer);
        let n = self.hosts.len();
        let Some((leader, term)) = self.leader() else {
            return Ok(());
        };
        if n < 3 {
            return Ok(());
        }
        let a = leader.0 as usize - 1;
        if self.net.partitioned() {
            self.heal_partition();
        }
        self.isolate(a, &format!("(leader of t{term}) cut off by a lease attack"));
        self.stats.faults.lease_attacks += 1;
        let max = u64::from(self.plan.config.election_timeout_ticks_max);
        let heal = self.now + self.fault_rng.range(2 * max, 5 * max) * TICK_US;
        self.schedule(heal, Ev::Heal(self.net.epoch()));
        if self.plan.drift_at_bound {
            // Drift that hurts: the cut-off leader's clock at the slow end
            // of the bound, everyone else's at the fast end.
            let slow = self.plan.tick_us.iter().copied().max().unwrap_or(TICK_US);
            let fast = self.plan.tick_us.iter().copied().min().unwrap_or(TICK_US);
            for (i, h) in self.hosts.iter_mut().enumerate() {
                h.tick_us = if i == a { slow } else { fast };
            }
        }
        let until = self.now + 3 * max * TICK_US;
        self.start_lease_burst(a, until);
        let mut followers = self.up_nodes_except(a);
        let mut latest = self.now;
        if self.fault_rng.coin() {
            let majority = n / 2 + 1;
            let mut restarted = Vec::new();
            while restarted.len() < majority && !followers.is_empty() {
                let i = self.fault_rng.below(followers.len() as u64) as usize;
                restarted.push(followers.swap_remove(i));
            }
            for &f in &restarted {
                let after = self.fault_rng.range(0, TICK_US);
                latest = latest.max(self.now + after);
                self.stats.faults.fast_restarts += 1;
                self.crash_now(f, "lease attack", Some(after))?;
            }
            followers = restarted;
        }
        // An operator who asks a follower to campaign, again and again,
        // until it may: the earliest election the rules allow.
        if let Some(&c) = self.fault_rng.pick(&followers) {
            self.pushy = Some((c, until));
            let at = latest + self.fault_rng.range(1, TICK_US);
            self.schedule(at, Ev::CampaignAt(c));
        }
        Ok(())
    }

    /// The operator tells node `n` to campaign now; during a lease attack,
    /// it asks again every tenth of a tick until the node campaigns.
    pub(crate) fn campaign_at(&mut self, n: usize) -> Result<Option<usize>, Fail> {
        if !self.faults_on {
            return Ok(None);
        }
        let touched = if self.hosts[n].is_up() {
            self.trace.push(
                self.now,
                Rec::Note(format!("operator: n{} campaign now", n + 1)),
            );
            self.operate(n, Input::Campaign, false)?
        } else {
            None
        };
        if let Some((c, until)) = self.pushy
            && c == n
        {
            if touched.is_none() && self.now < until {
                let at = self.now + self.hosts[n].tick_us / 10;
                self.schedule(at, Ev::CampaignAt(n));
            } else {
                self.pushy = None;
            }
        }
        Ok(touched)
    }

    /// Pauses the process of a random up host.
    pub(crate) fn stall_timer(&mut self) {
        if !self.faults_on {
            return;
        }
        let next = self.fault_interval(self.plan.stall_every_ticks);
        self.schedule(next, Ev::StallTimer);
        let n = self.fault_rng.below(self.hosts.len() as u64) as usize;
        if !self.hosts[n].is_up() || self.stalls[n].is_some() {
            return;
        }
        let (lo, hi) = self.plan.stall_ticks;
        let ticks = self.fault_rng.range(lo, hi);
        let until = self.now + ticks * TICK_US + self.fault_rng.range(0, TICK_US);
        self.stalls[n] = Some(Stall::default());
        self.stats.faults.stalls += 1;
        self.trace.push(
            self.now,
            Rec::Note(format!(
                "STALL    n{}: its process pauses for about {ticks} ticks",
                n + 1
            )),
        );
        let epoch = self.hosts[n].epoch;
        self.schedule(until, Ev::Resume { node: n, epoch });
        if self.hosts[n]
            .node
            .as_ref()
            .is_some_and(|node| node.is_leader())
        {
            // While the leader sleeps the others elect another: reads at it
            // when it wakes must not be served from its old lease. Half of
            // the time its connections drop too (a paused virtual machine),
            // so that nothing from the new leader reaches it first.
            let max = u64::from(self.plan.config.election_timeout_ticks_max);
            self.start_lease_burst(n, until + 2 * max * TICK_US);
            if !self.net.partitioned() && self.fault_rng.coin() {
                self.isolate(n, "stalled and cut off");
                self.schedule(until, Ev::Heal(self.net.epoch()));
            }
        }
    }

    /// Cuts node `a` off from every other node (one partition at a time:
    /// the caller heals it by the returned epoch).
    fn isolate(&mut self, a: usize, why: &str) {
        self.net.isolate(a);
        self.net.start_partition();
        self.stats.faults.partitions += 1;
        self.trace
            .push(self.now, Rec::Partition(format!("n{} {why}", a + 1)));
    }

    /// Holds `ev` back if it is for a stalled host (a tick is only
    /// counted). Returns the event if it can be handled now.
    pub(crate) fn hold_if_stalled(&mut self, ev: Ev) -> Option<Ev> {
        let n = match &ev {
            Ev::Tick(n) | Ev::Flush(n) | Ev::CampaignAt(n) => *n,
            Ev::SyncDone { node, .. }
            | Ev::Unreachable { node, .. }
            | Ev::ClientArrive { node, .. } => *node,
            Ev::Deliver(m) => match self.index_of(m.to) {
                Some(n) => n,
                None => return Some(ev),
            },
            _ => return Some(ev),
        };
        let Some(stall) = self.stalls[n].as_mut() else {
            return Some(ev);
        };
        if let Ev::Tick(_) = ev {
            stall.missed += 1;
            let next = self.now + self.hosts[n].tick_us;
            self.schedule(next, Ev::Tick(n));
        } else {
            stall.backlog.push(ev);
        }
        None
    }

    /// Ends the stall of node `n` (if it is still the same life): every
    /// missed tick in one `Input::Ticks`, then what arrived meanwhile, in
    /// order, each checked as it is handled.
    pub(crate) fn resume(&mut self, n: usize, epoch: u64) -> Result<(), Fail> {
        if self.hosts[n].epoch != epoch {
            return Ok(());
        }
        let Some(stall) = self.stalls[n].take() else {
            return Ok(());
        };
        self.trace.push(
            self.now,
            Rec::Note(format!(
                "RESUME   n{}: Ticks({}), then {} held events",
                n + 1,
                stall.missed,
                stall.backlog.len()
            )),
        );
        let late = self.plan.ticks_after_backlog;
        if !late && stall.missed > 0 && self.hosts[n].is_up() {
            self.give_ticks(n, stall.missed)?;
        }
        for ev in stall.backlog {
            if let Some(m) = self.dispatch(ev)? {
                self.check_node(m)?;
            }
        }
        if late && stall.missed > 0 && self.hosts[n].is_up() {
            self.give_ticks(n, stall.missed)?;
            self.check_node(n)?;
        }
        Ok(())
    }

    /// Ends every stall (the network heals, faults stop).
    pub(crate) fn resume_all(&mut self) -> Result<(), Fail> {
        for n in 0..self.hosts.len() {
            let epoch = self.hosts[n].epoch;
            self.resume(n, epoch)?;
        }
        Ok(())
    }

    /// The number of nodes that lost data and have not caught up.
    fn amnesiac(&self) -> usize {
        self.hosts.iter().filter(|h| h.amnesiac).count()
    }

    /// At a crash, while storage may lie: maybe the disk of node `n` loses
    /// data. Only while fewer than a minority have lost data and not caught
    /// up, and never again for a node that has not caught up.
    fn maybe_lose_data(&mut self, n: usize) {
        let nodes = self.hosts.len();
        if self.plan.amnesia_per_mille == 0
            || self.hosts[n].amnesiac
            || self.amnesiac() + 1 > (nodes - 1) / 2
            || !self.fault_rng.chance(self.plan.amnesia_per_mille)
        {
            return;
        }
        let len = self.hosts[n].durable.entries.len() as u64;
        let kinds = if self.plan.wipe_hard_state { 4 } else { 3 };
        let loss = match self.fault_rng.below(kinds) {
            0 => Loss::Log,
            3 => Loss::Wipe,
            _ if len > 0 => Loss::Suffix(Index(self.fault_rng.range(1, len))),
            _ => Loss::Log,
        };
        let host = &mut self.hosts[n];
        let before = (host.durable.entries.len(), host.durable.hard_state);
        host.durable.lose(loss);
        let after = host.durable.entries.len();
        // A hard state whose commit index lies beyond the log proves the
        // loss: half of the time the host leaves it to the node to notice.
        let provable = host.durable.hard_state.commit.0 > after as u64;
        host.lost_data = !provable || self.fault_rng.coin();
        host.amnesiac = true;
        self.stats.faults.data_losses += 1;
        self.trace.push(
            self.now,
            Rec::Note(format!(
                "AMNESIA  n{}: {loss:?}: log {} -> {after} entries, hard state {:?} -> {:?}{}",
                n + 1,
                before.0,
                before.1,
                host.durable.hard_state,
                if host.lost_data {
                    ""
                } else {
                    " (the restart is not told)"
                }
            )),
        );
    }
}
