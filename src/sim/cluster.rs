//! [`Cluster`]: the simulated world and its event loop. Nodes with their
//! hosts, a network, a virtual clock and a queue of timed events, run in one
//! thread.
//!
//! Each event (a tick, a message delivery, an fsync completing, a crash, a
//! client request, ...) is handled completely before the next; the checkers
//! of `check.rs` run after every one. Events at the same virtual time are
//! ordered by when they were scheduled, so a run is a pure function of its
//! plan and seed: no clock, no thread, no hash-map iteration anywhere.
//!
//! This file holds the queue, the clock and the dispatch; each event is
//! handled by the room that owns what it is about:
//!
//! - `host/`: the host's Ready loop, its fsyncs, ticks and restarts
//!   (`run_loop.rs`), client requests at a host (`requests.rs`), the disk;
//! - `network.rs`: message delivery, latency, loss, duplication, delay
//!   spikes, and the partitions that block links;
//! - `faults.rs`: the fault timers (partitions, crashes, stalls, lying
//!   disks, the operator, lease attacks) and the end of the safety phase;
//! - `client.rs`: the client workload and its link to the hosts;
//! - `check.rs`: the checks after every event and at the end of a run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::check::{Check, Fail, Safety, fail};
use super::client::{Reply, Workload};
use super::faults::Stall;
use super::host::{Host, Request};
use super::network::Network;
use super::options::{Plan, TICK_US, assert_bug_built_in};
use super::rng::Rng;
use super::trace::{MsgSum, Trace};
use super::{Failure, RunStats};
use crate::input::Input;
use crate::message::Message;
use crate::node::Node;
use crate::status::Role;
use crate::types::{Index, NodeId, Term};

/// Something that happens at a virtual time.
#[derive(Debug)]
pub(crate) enum Ev {
    Tick(usize),
    Deliver(Message),
    SyncDone {
        node: usize,
        epoch: u64,
    },
    Restart(usize),
    CrashTimer,
    PartitionTimer,
    OperatorTimer,
    MembershipTimer,
    Heal(u64),
    Unreachable {
        node: usize,
        peer: NodeId,
    },
    Flush(usize),
    ClientIssue(usize),
    ClientArrive {
        node: usize,
        req: Request,
    },
    ClientReply {
        client: usize,
        seq: u64,
        attempt: u32,
        reply: Reply,
    },
    ClientTimeout {
        client: usize,
        seq: u64,
        attempt: u32,
    },
    ClientDeadline {
        client: usize,
        seq: u64,
    },
    FastRestartTimer,
    LeaseAttackTimer,
    CampaignAt(usize),
    StallTimer,
    Resume {
        node: usize,
        epoch: u64,
    },
}

struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: the heap pops the earliest event, ties in scheduling order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A simulated cluster: nodes, their hosts, a network and a virtual clock.
///
/// [`crate::sim::run`] builds one with faults and a client workload. It can
/// also be driven by hand for experiments (see `examples/figure16.rs`): build
/// it from a [`Plan`] (for instance [`Plan::quiet`]), then alternate
/// [`Cluster::run_until`] with [`Cluster::crash`] and [`Cluster::restart`].
/// The safety checks run after every event either way.
pub struct Cluster {
    pub(crate) plan: Plan,
    pub(crate) seed: u64,
    pub(crate) now: u64,
    /// The events to come, and how many were ever scheduled (the order of
    /// events at the same time).
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    pub(crate) hosts: Vec<Host>,
    pub(crate) net: Network,
    pub(crate) next_read_ctx: u64,
    pub(crate) safety: Safety,
    pub(crate) trace: Trace,
    pub(crate) fault_rng: Rng,
    pub(crate) disk_rng: Rng,
    pub(crate) client_rng: Rng,
    pub(crate) work: Workload,
    pub(crate) stats: RunStats,
    /// The safety phase: faults are injected. Off once the network is healed.
    pub(crate) faults_on: bool,
    /// Per node: its process is paused (see `faults.rs`).
    pub(crate) stalls: Vec<Option<Stall>>,
    /// During a lease attack: the follower the operator keeps telling to
    /// campaign, until when.
    pub(crate) pushy: Option<(usize, u64)>,
    /// When the network was healed, and when a leader was first seen after.
    pub(crate) healed_at: Option<u64>,
    pub(crate) leader_after_heal: Option<u64>,
}

impl Cluster {
    /// A cluster of `plan.nodes` nodes, all started from empty disks, ticking
    /// from time zero. The checks use `seed` only to name the run; all
    /// randomness of the run is drawn from it too.
    ///
    /// # Panics
    ///
    /// If `plan.bug` asks for a bug and this build has none (see
    /// [`Options::bug`](super::Options::bug)).
    pub fn new(plan: Plan, seed: u64) -> Result<Cluster, Box<Failure>> {
        assert_bug_built_in(plan.bug);
        Cluster::build(plan, seed, 200).map_err(|(c, f)| c.failure(f, seed, None))
    }

    pub(crate) fn build(
        plan: Plan,
        seed: u64,
        trace_events: usize,
    ) -> Result<Cluster, (Box<Cluster>, Fail)> {
        let n = plan.nodes + plan.spares;
        let hosts = (0..n)
            .map(|i| {
                let mut h = Host::new(NodeId(i as u64 + 1), plan.tick_us[i % plan.nodes]);
                h.spare = i >= plan.nodes;
                h.was_member = !h.spare;
                h.committed_member = !h.spare;
                h
            })
            .collect();
        let mut c = Cluster {
            seed,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            hosts,
            net: Network::new(n, Rng::derive(seed, 1)),
            next_read_ctx: 0,
            safety: Safety::default(),
            trace: Trace::new(trace_events),
            fault_rng: Rng::derive(seed, 2),
            disk_rng: Rng::derive(seed, 3),
            client_rng: Rng::derive(seed, 4),
            work: Workload::new(
                plan.clients,
                plan.lease_attack_every_ticks > 0 || plan.stall_every_ticks > 0,
            ),
            stats: RunStats::default(),
            faults_on: true,
            stalls: (0..n).map(|_| None).collect(),
            pushy: None,
            healed_at: None,
            leader_after_heal: None,
            plan,
        };
        for i in 0..n {
            if let Err(f) = c.restart_node(i) {
                return Err((Box::new(c), f));
            }
            // Nodes do not tick in phase.
            let first = c.fault_rng.range(1, c.hosts[i].tick_us);
            c.schedule(first, Ev::Tick(i));
        }
        if c.plan.partition_every_ticks > 0 {
            let t = c.fault_interval(c.plan.partition_every_ticks);
            c.schedule(t, Ev::PartitionTimer);
        }
        if c.plan.crash_every_ticks > 0 {
            let t = c.fault_interval(c.plan.crash_every_ticks);
            c.schedule(t, Ev::CrashTimer);
        }
        if c.plan.operator_every_ticks > 0 {
            let t = c.fault_interval(c.plan.operator_every_ticks);
            c.schedule(t, Ev::OperatorTimer);
        }
        if c.plan.membership_every_ticks > 0 {
            let t = c.fault_interval(c.plan.membership_every_ticks);
            c.schedule(t, Ev::MembershipTimer);
        }
        for (every, ev) in [
            (c.plan.fast_restart_every_ticks, Ev::FastRestartTimer),
            (c.plan.lease_attack_every_ticks, Ev::LeaseAttackTimer),
            (c.plan.stall_every_ticks, Ev::StallTimer),
        ] {
            if every > 0 {
                let t = c.fault_interval(every);
                c.schedule(t, ev);
            }
        }
        for client in 0..c.work.clients.len() {
            let t = c.client_rng.range(0, 5 * TICK_US);
            c.schedule(t, Ev::ClientIssue(client));
        }
        Ok(c)
    }

    // ---- the public driver ----------------------------------------------

    /// The virtual time, in microseconds.
    pub fn now_us(&self) -> u64 {
        self.now
    }

    /// Events handled so far.
    pub fn events(&self) -> u64 {
        self.stats.events
    }

    /// Handles events in time order until `stop` returns true after one of
    /// them (returns `Ok(true)`, the clock at that event) or no event is left
    /// at or before `until_us` (returns `Ok(false)`, the clock at `until_us`).
    /// A broken check ends the run with its report.
    pub fn run_until(
        &mut self,
        until_us: u64,
        stop: impl FnMut(&Cluster) -> bool,
    ) -> Result<bool, Box<Failure>> {
        let seed = self.seed;
        self.run_inner(until_us, stop)
            .map_err(|f| self.failure(f, seed, None))
    }

    /// Crashes node `id` now (a power cut: writes not yet fsynced are lost,
    /// or with `plan.torn_writes` a prefix of them survives). Fails if the
    /// writes that survive break a disk invariant.
    pub fn crash(&mut self, id: NodeId) -> Result<(), Box<Failure>> {
        let seed = self.seed;
        match self.index_of(id) {
            Some(n) => self
                .crash_now(n, "by hand", None)
                .map_err(|f| self.failure(f, seed, None)),
            None => Ok(()),
        }
    }

    /// Restarts node `id` from its durable state, if it is down.
    pub fn restart(&mut self, id: NodeId) -> Result<(), Box<Failure>> {
        let seed = self.seed;
        match self.index_of(id) {
            Some(n) => self
                .restart_node(n)
                .map_err(|f| self.failure(f, seed, None)),
            None => Ok(()),
        }
    }

    /// The node with id `id`, if it is up.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.index_of(id).and_then(|n| self.hosts[n].node.as_ref())
    }

    /// The up node that is leader in the highest term, with that term.
    pub fn leader(&self) -> Option<(NodeId, Term)> {
        self.hosts
            .iter()
            .filter_map(|h| h.node.as_ref())
            .filter(|n| n.role() == Role::Leader)
            .map(|n| (n.id(), n.term()))
            .max_by_key(|&(_, t)| t)
    }

    pub(crate) fn index_of(&self, id: NodeId) -> Option<usize> {
        let n = id.0.checked_sub(1)? as usize;
        (n < self.hosts.len()).then_some(n)
    }

    // ---- the event loop ---------------------------------------------------

    pub(crate) fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        });
    }

    pub(crate) fn run_inner(
        &mut self,
        until: u64,
        mut stop: impl FnMut(&Cluster) -> bool,
    ) -> Result<bool, Fail> {
        loop {
            match self.queue.peek() {
                Some(s) if s.at <= until => {}
                _ => {
                    self.now = self.now.max(until);
                    return Ok(false);
                }
            }
            let Some(s) = self.queue.pop() else {
                return Ok(false);
            };
            self.now = s.at;
            self.stats.events += 1;
            if self.queue.len() > MAX_PENDING_EVENTS {
                return self.storm();
            }
            if let Some(n) = self.dispatch(s.ev)? {
                self.check_node(n)?;
            }
            if stop(self) {
                return Ok(true);
            }
        }
    }

    /// Fails a run whose events pile up beyond [`MAX_PENDING_EVENTS`]: some
    /// exchange answers every message with more than one, and would take
    /// the simulator's memory with it.
    fn storm(&self) -> Result<bool, Fail> {
        let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
        for s in self.queue.iter() {
            if let Ev::Deliver(m) = &s.ev {
                let sum = MsgSum::of(m).to_string();
                let kind: Vec<&str> = sum.split(' ').take(3).collect();
                *kinds.entry(kind.join(" ")).or_default() += 1;
            }
        }
        let mut top: Vec<(usize, String)> = kinds.into_iter().map(|(k, n)| (n, k)).collect();
        top.sort_unstable_by(|a, b| b.cmp(a));
        let top: Vec<String> = top
            .iter()
            .take(4)
            .map(|(n, k)| format!("{n} x {k}"))
            .collect();
        fail(
            Check::Liveness,
            format!(
                "a message storm: {} events pending, most of them {}; nodes:{}",
                self.queue.len(),
                top.join(", "),
                self.describe_nodes()
            ),
        )
    }

    /// Handles one event; returns the node it touched, to check.
    pub(crate) fn dispatch(&mut self, ev: Ev) -> Result<Option<usize>, Fail> {
        let Some(ev) = self.hold_if_stalled(ev) else {
            return Ok(None);
        };
        match ev {
            Ev::Tick(n) => {
                let next = self.now + self.hosts[n].tick_us;
                self.schedule(next, Ev::Tick(n));
                if !self.hosts[n].is_up() {
                    return Ok(None);
                }
                self.give_ticks(n, 1)?;
                Ok(Some(n))
            }
            Ev::Deliver(m) => self.deliver(m),
            Ev::SyncDone { node, epoch } => {
                self.sync_done(node, epoch)?;
                Ok(Some(node))
            }
            Ev::Restart(n) => {
                self.restart_node(n)?;
                Ok(Some(n))
            }
            Ev::CrashTimer => {
                self.crash_timer()?;
                Ok(None)
            }
            Ev::PartitionTimer => {
                self.partition_timer();
                Ok(None)
            }
            Ev::OperatorTimer => self.operator_timer(),
            Ev::MembershipTimer => self.membership_timer(),
            Ev::Heal(epoch) => {
                if epoch == self.net.epoch() && self.net.partitioned() {
                    self.heal_partition();
                }
                Ok(None)
            }
            Ev::Unreachable { node, peer } => {
                if !self.hosts[node].is_up() {
                    return Ok(None);
                }
                self.step_node(node, Input::ReportUnreachable(peer))?;
                Ok(Some(node))
            }
            Ev::Flush(n) => self.flush(n),
            Ev::ClientArrive { node, req } => self.client_arrive(node, req),
            Ev::ClientIssue(c) => {
                self.client_issue(c);
                Ok(None)
            }
            Ev::ClientReply {
                client,
                seq,
                attempt,
                reply,
            } => {
                self.client_reply(client, seq, attempt, reply);
                Ok(None)
            }
            Ev::ClientTimeout {
                client,
                seq,
                attempt,
            } => {
                self.client_timeout(client, seq, attempt);
                Ok(None)
            }
            Ev::ClientDeadline { client, seq } => {
                self.client_deadline(client, seq);
                Ok(None)
            }
            Ev::FastRestartTimer => {
                self.fast_restart_timer()?;
                Ok(None)
            }
            Ev::LeaseAttackTimer => {
                self.lease_attack_timer()?;
                Ok(None)
            }
            Ev::CampaignAt(n) => self.campaign_at(n),
            Ev::StallTimer => {
                self.stall_timer();
                Ok(None)
            }
            Ev::Resume { node, epoch } => {
                self.resume(node, epoch)?;
                Ok(None)
            }
        }
    }

    /// The largest commit index among the up nodes.
    pub(crate) fn max_commit(&self) -> Index {
        self.hosts
            .iter()
            .filter_map(|h| h.node.as_ref())
            .map(|n| n.status().commit)
            .max()
            .unwrap_or(Index(0))
    }

    /// Whether every node is up and has applied up to `index`.
    pub(crate) fn all_applied(&self, index: Index) -> bool {
        if self.plan.membership_every_ticks == 0 {
            return self
                .hosts
                .iter()
                .all(|h| h.is_up() && h.kv.applied >= index);
        }
        // With membership changes: every member of the leader's
        // configuration (spares never added and removed nodes are not).
        let Some((leader, _)) = self.leader() else {
            return false;
        };
        let Some(conf) = self.hosts[leader.0 as usize - 1]
            .node
            .as_ref()
            .map(|n| n.conf_state().clone())
        else {
            return false;
        };
        self.hosts
            .iter()
            .filter(|h| conf.contains(h.id))
            .all(|h| h.is_up() && h.kv.applied >= index)
    }

    /// Wraps a broken check into the report of this run.
    pub(crate) fn failure(
        &self,
        f: Fail,
        seed: u64,
        options: Option<super::Options>,
    ) -> Box<Failure> {
        Box::new(Failure {
            seed,
            options,
            plan: self.plan.clone(),
            check: f.check,
            message: f.message,
            at_us: self.now,
            trace: self.trace.lines(),
        })
    }
}

/// More events pending than any healthy run comes near (a few thousand at
/// most): beyond it, the run is a message storm.
const MAX_PENDING_EVENTS: usize = 200_000;
