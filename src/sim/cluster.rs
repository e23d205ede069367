//! [`Cluster`]: the simulated world. Nodes with their hosts, a network, a
//! virtual clock and a queue of timed events, run in one thread.
//!
//! Each event (a tick, a message delivery, an fsync completing, a crash, a
//! client request, ...) is handled completely before the next; the checkers
//! of `check.rs` run after every one. Events at the same virtual time are
//! ordered by when they were scheduled, so a run is a pure function of its
//! plan and seed: no clock, no thread, no hash-map iteration anywhere.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::check::{Check, Fail, Safety, chain, fail, over_the_wire};
use super::client::{Reply, Workload};
use super::faults::Stall;
use super::host::{CrashPoint, Host, Request, Seen, Write};
use super::kv::{Applied, Command};
use super::linearizability::Op;
use super::network::Network;
#[cfg(zaft_bugs)]
use super::options::BugTarget;
use super::options::{Plan, TICK_US, assert_bug_built_in};
use super::rng::Rng;
use super::trace::{MsgSum, Rec, Trace};
use super::{Failure, RunStats};
use crate::error::Error;
use crate::input::Input;
use crate::message::{Body, Entry, EntryKind, Message};
use crate::node::{Node, Restored};
use crate::ready::{Ready, ReadyId};
use crate::status::Role;
use crate::types::{Index, LogId, NodeId, Term};

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
    seed: u64,
    pub(crate) now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    pub(crate) hosts: Vec<Host>,
    pub(crate) net: Network,
    next_read_ctx: u64,
    pub(crate) safety: Safety,
    pub(crate) trace: Trace,
    pub(crate) fault_rng: Rng,
    disk_rng: Rng,
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
        let n = plan.nodes;
        let hosts = (0..n)
            .map(|i| Host::new(NodeId(i as u64 + 1), plan.tick_us[i]))
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
            Ev::Flush(n) => {
                self.hosts[n].flush_scheduled = false;
                let reqs = std::mem::take(&mut self.hosts[n].inbox);
                if reqs.is_empty() || !self.hosts[n].is_up() {
                    return Ok(None);
                }
                self.propose(n, reqs)?;
                Ok(Some(n))
            }
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

    /// Gives node `n` (up) `ticks` ticks, one `Tick` or, after a stall, one
    /// `Ticks(n)`; then checks that a CheckQuorum leader cut off from a
    /// majority has stepped down. The caller checks the node as usual.
    pub(crate) fn give_ticks(&mut self, n: usize, ticks: u32) -> Result<(), Fail> {
        self.stats.ticks += u64::from(ticks);
        self.hosts[n].ticks += u64::from(ticks);
        let input = if ticks == 1 {
            Input::Tick
        } else {
            Input::Ticks(ticks)
        };
        self.step_node(n, input)?;
        self.check_step_down(n)
    }

    // ---- the host loop ----------------------------------------------------

    pub(crate) fn step_node(&mut self, n: usize, input: Input) -> Result<(), Fail> {
        let Some(node) = self.hosts[n].node.as_mut() else {
            return Ok(());
        };
        match node.step(input) {
            Ok(ready) => self.process(n, ready),
            Err(e) => fail(Check::NodeError, format!("n{}: step failed: {e}", n + 1)),
        }
    }

    /// Whether an armed crash strikes at `point`; if so the node is down.
    fn crash_point(&mut self, n: usize, point: CrashPoint) -> Result<bool, Fail> {
        if self.hosts[n].armed == Some(point) {
            self.crash_now(n, point.name(), None)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Handles one Ready as the run loop says, and the Readies that
    /// immediate acknowledgements return.
    pub(crate) fn process(&mut self, n: usize, mut ready: Ready) -> Result<(), Fail> {
        for _ in 0..10_000 {
            let id = ready.id().get();
            let host = &mut self.hosts[n];
            if id != host.last_ready + 1 {
                return fail(
                    Check::ReadyContract,
                    format!(
                        "n{}: Ready ids jump from {} to {id}",
                        n + 1,
                        host.last_ready
                    ),
                );
            }
            host.last_ready = id;
            if ready.is_empty() {
                // Nothing to do; a later cumulative advance covers it.
                return Ok(());
            }
            // 1. Persist: into the volatile buffer (and the host's view).
            let has_writes = !ready.entries().is_empty() || ready.hard_state().is_some();
            let entries: Vec<Entry> = ready.entries().to_vec();
            if let Some(first) = entries.first() {
                let at = first.index;
                self.write_view(n, &entries)?;
                self.hosts[n].buffer.push((id, Write::Log { at, entries }));
            }
            if let Some(hs) = ready.hard_state() {
                self.hosts[n].buffer.push((id, Write::Hard(*hs)));
            }
            if self.crash_point(n, CrashPoint::AfterPersist)? {
                return Ok(());
            }
            // 2. Send: never a message of a term the disk does not hold.
            let durable_term = self.hosts[n].durable.term();
            for m in ready.take_messages() {
                let proposed = matches!(
                    m.body,
                    Body::PreVote { .. } | Body::PreVoteResponse { granted: true }
                );
                if m.term > durable_term && !proposed {
                    return fail(
                        Check::DurableTerm,
                        format!(
                            "n{} sends {} in term {} but its disk holds term {durable_term}",
                            n + 1,
                            MsgSum::of(&m),
                            m.term
                        ),
                    );
                }
                let m = if self.plan.wire { over_the_wire(m)? } else { m };
                self.send(n, m);
            }
            if self.crash_point(n, CrashPoint::AfterSend)? {
                return Ok(());
            }
            // 3. Apply, and tell clients what became of their proposals.
            for &lost in ready.lost() {
                if let Some((client, seq, attempt)) =
                    self.hosts[n].proposals.remove(&(lost.index, lost.term))
                {
                    self.reply(client, seq, attempt, Reply::Lost);
                }
            }
            let committed: Vec<Entry> = ready.committed().to_vec();
            self.apply(n, committed)?;
            // Read-index answers: serve each read once the state machine has
            // applied up to the index it names (at once if it already has).
            for rs in ready.read_states() {
                let Some((client, seq, attempt, key)) = self.hosts[n].reads.remove(&rs.ctx) else {
                    continue;
                };
                match rs.index {
                    Some(index) => self.hosts[n]
                        .confirmed_reads
                        .push((index, client, seq, attempt, key)),
                    None => self.reply(client, seq, attempt, Reply::Refused(None)),
                }
            }
            self.serve_reads(n);
            if self.crash_point(n, CrashPoint::AfterApply)? {
                return Ok(());
            }
            // 4. Durability. A Ready without writes whose predecessors are
            // all acknowledged needs no fsync: acknowledge it at once.
            let host = &mut self.hosts[n];
            if !has_writes && host.acked + 1 == id && host.buffer.is_empty() {
                let Some(node) = host.node.as_mut() else {
                    return Ok(());
                };
                host.acked = id;
                ready = match node.advance(ReadyId(id)) {
                    Ok(r) => r,
                    Err(e) => {
                        return fail(
                            Check::NodeError,
                            format!("n{}: advance({id}) failed: {e}", n + 1),
                        );
                    }
                };
                continue;
            }
            host.dirty = true;
            self.maybe_sync(n);
            return Ok(());
        }
        fail(
            Check::ReadyContract,
            format!(
                "n{}: advance keeps returning new work (10000 rounds)",
                n + 1
            ),
        )
    }

    /// Applies a Ready's entries to the host's view of its log, checking Log
    /// Matching for each new entry.
    fn write_view(&mut self, n: usize, entries: &[Entry]) -> Result<(), Fail> {
        let host = &mut self.hosts[n];
        let at = entries[0].index;
        if at.0 == 0 || at.0 as usize > host.view.len() + 1 {
            return fail(
                Check::ReadyContract,
                format!(
                    "n{}: entries at {at} leave a gap after {}",
                    n + 1,
                    host.view.len()
                ),
            );
        }
        if at <= host.kv.applied {
            return fail(
                Check::ReadyContract,
                format!(
                    "n{}: a Ready truncates the log at {at}, below the applied index {}",
                    n + 1,
                    host.kv.applied
                ),
            );
        }
        let keep = at.0 as usize - 1;
        host.view.truncate(keep);
        host.hashes.truncate(keep);
        for e in entries {
            let h = chain(host.hashes.last().copied().unwrap_or(0), e);
            self.safety.written(host.id, e, h)?;
            host.view.push(e.clone());
            host.hashes.push(h);
        }
        Ok(())
    }

    fn maybe_sync(&mut self, n: usize) {
        let host = &self.hosts[n];
        if !host.is_up() || host.sync.is_some() || !host.dirty {
            return;
        }
        let slow = self.faults_on && self.disk_rng.chance(self.plan.slow_fsync_per_mille);
        let (lo, hi) = if slow {
            self.stats.faults.slow_fsyncs += 1;
            self.plan.slow_fsync_us
        } else {
            self.plan.fsync_us
        };
        let delay = self.disk_rng.range(lo, hi);
        let host = &mut self.hosts[n];
        let epoch = host.epoch;
        host.sync = Some(super::host::SyncJob {
            ops: host.buffer.len(),
            kv: host.kv.clone(),
            epoch,
        });
        let at = self.now + delay;
        self.schedule(at, Ev::SyncDone { node: n, epoch });
    }

    fn sync_done(&mut self, n: usize, epoch: u64) -> Result<(), Fail> {
        let host = &mut self.hosts[n];
        if host.epoch != epoch || !host.is_up() {
            return Ok(());
        }
        let Some(job) = host.sync.take_if(|j| j.epoch == epoch) else {
            return Ok(());
        };
        for (_, w) in host.buffer.drain(..job.ops) {
            if let Err(e) = host.durable.apply(&w) {
                return fail(Check::ReadyContract, format!("n{}: {e}", n + 1));
            }
        }
        host.durable.kv = job.kv;
        if self.crash_point(n, CrashPoint::BeforeAdvance)? {
            return Ok(());
        }
        let host = &mut self.hosts[n];
        // Every Ready whose writes are now all durable.
        let target = match host.buffer.first() {
            Some(&(id, _)) => id - 1,
            None => host.last_ready,
        };
        let advancing = target > host.acked;
        if advancing && host.node.is_none() {
            return Ok(());
        }
        if advancing {
            host.acked = target;
            if target == host.last_ready {
                host.dirty = false;
            }
        }
        self.trace.push(
            self.now,
            Rec::Synced {
                node: n as u64 + 1,
                ops: job.ops,
                advanced: if advancing { target } else { 0 },
            },
        );
        if let (true, Some(node)) = (advancing, self.hosts[n].node.as_mut()) {
            match node.advance(ReadyId(target)) {
                Ok(ready) => self.process(n, ready)?,
                Err(e) => {
                    return fail(
                        Check::NodeError,
                        format!("n{}: advance({target}) failed: {e}", n + 1),
                    );
                }
            }
        }
        self.maybe_sync(n);
        Ok(())
    }

    /// Applies committed entries in order, checking the host contract and
    /// State Machine Safety, and answers the clients waiting here.
    fn apply(&mut self, n: usize, committed: Vec<Entry>) -> Result<(), Fail> {
        let (Some(first), Some(last)) = (
            committed.first().map(|e| e.index),
            committed.last().map(|e| e.index),
        ) else {
            return Ok(());
        };
        for e in committed {
            let host = &mut self.hosts[n];
            let id = host.id;
            if e.index != host.kv.applied.next() {
                let what = if e.index <= host.kv.applied {
                    "again"
                } else {
                    "out of order"
                };
                return fail(
                    Check::Monotonic,
                    format!(
                        "n{id}: committed entry {} handed out {what}: the state machine has applied up to {}",
                        e.id(),
                        host.kv.applied
                    ),
                );
            }
            let durable = host
                .durable
                .entries
                .get(e.index.0 as usize - 1)
                .map(Entry::id);
            if durable != Some(e.id()) {
                return fail(
                    Check::ReadyContract,
                    format!(
                        "n{id}: committed entry {} handed out before it is durable (the disk holds {durable:?})",
                        e.id()
                    ),
                );
            }
            if self.safety.applied(id, &e)? {
                self.check_leaders_hold(&e)?;
            }
            let host = &mut self.hosts[n];
            host.kv.applied = e.index;
            host.proposals.remove(&(e.index, e.term));
            if e.kind != EntryKind::Normal {
                continue;
            }
            let Some(cmd) = Command::decode(&e.data) else {
                continue;
            };
            let answer = match host.kv.apply(&cmd) {
                Applied::Fresh(a) | Applied::Duplicate(a) => a,
                Applied::Stale => continue,
            };
            let client = cmd.client as usize;
            if let Some(attempt) = host.waiting.remove(&(client, cmd.seq)) {
                self.reply(client, cmd.seq, attempt, Reply::Done { answer, at: e.id() });
            }
        }
        self.trace.push(
            self.now,
            Rec::Applied {
                node: n as u64 + 1,
                first,
                last,
            },
        );
        Ok(())
    }

    /// Answers the confirmed reads whose index the state machine has reached.
    fn serve_reads(&mut self, n: usize) {
        let host = &mut self.hosts[n];
        if host.confirmed_reads.is_empty() {
            return;
        }
        let applied = host.kv.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut host.confirmed_reads)
            .into_iter()
            .partition(|r| r.0 <= applied);
        host.confirmed_reads = waiting;
        for (_, client, seq, attempt, key) in ready {
            let answer = self.hosts[n].kv.get(key);
            self.reply(
                client,
                seq,
                attempt,
                Reply::Done {
                    answer,
                    at: LogId::ZERO,
                },
            );
        }
    }

    // ---- client requests at a host ------------------------------------------

    fn client_arrive(&mut self, n: usize, req: Request) -> Result<Option<usize>, Fail> {
        if !self.hosts[n].is_up() {
            self.trace_attempt(&req, n, "refused: node down");
            self.reply(req.client, req.seq, req.attempt, Reply::Refused(None));
            return Ok(None);
        }
        if self.plan.read_index
            && let Some(Command {
                op: Op::Read { key },
                ..
            }) = Command::decode(&req.cmd)
        {
            return self.read_index(n, req, key);
        }
        if self.plan.batching {
            let host = &mut self.hosts[n];
            host.inbox.push(req);
            if !host.flush_scheduled {
                host.flush_scheduled = true;
                let at = self.now + self.client_rng.range(0, TICK_US / 2);
                self.schedule(at, Ev::Flush(n));
            }
            return Ok(None);
        }
        self.propose(n, vec![req])?;
        Ok(Some(n))
    }

    /// A linearizable read through `Input::ReadIndex` instead of the log.
    fn read_index(&mut self, n: usize, req: Request, key: u64) -> Result<Option<usize>, Fail> {
        self.next_read_ctx += 1;
        let ctx = self.next_read_ctx;
        let Some(node) = self.hosts[n].node.as_mut() else {
            return Ok(None);
        };
        match node.step(Input::ReadIndex(ctx)) {
            Ok(ready) => {
                self.hosts[n]
                    .reads
                    .insert(ctx, (req.client, req.seq, req.attempt, key));
                self.trace_attempt(&req, n, "read index asked");
                self.reply(req.client, req.seq, req.attempt, Reply::Accepted);
                self.process(n, ready)?;
                Ok(Some(n))
            }
            Err(e) => {
                let hint = match e {
                    Error::NotLeader { leader } => leader,
                    _ => None,
                };
                self.trace_attempt(&req, n, "read index refused");
                self.reply(req.client, req.seq, req.attempt, Reply::Refused(hint));
                Ok(None)
            }
        }
    }

    fn trace_attempt(&mut self, req: &Request, n: usize, answer: &'static str) {
        self.trace.push(
            self.now,
            Rec::Attempt {
                client: req.client as u64 + 1,
                seq: req.seq,
                node: n as u64 + 1,
                answer,
            },
        );
    }

    /// Proposes client requests, one `Propose` or one `ProposeBatch`.
    fn propose(&mut self, n: usize, reqs: Vec<Request>) -> Result<(), Fail> {
        let Some(node) = self.hosts[n].node.as_mut() else {
            return Ok(());
        };
        let input = if reqs.len() == 1 {
            Input::Propose(reqs[0].cmd.clone())
        } else {
            Input::ProposeBatch(reqs.iter().map(|r| r.cmd.clone()).collect())
        };
        match node.step(input) {
            Ok(ready) => {
                let ids: Vec<Option<LogId>> = match ready.proposed() {
                    Some(p) => {
                        let ids: Vec<_> = p.ids().map(Some).collect();
                        if ids.len() != reqs.len() {
                            return fail(
                                Check::ReadyContract,
                                format!(
                                    "n{}: {} proposals got {} ids",
                                    n + 1,
                                    reqs.len(),
                                    ids.len()
                                ),
                            );
                        }
                        ids
                    }
                    // Forwarded to the leader: no id here.
                    None => vec![None; reqs.len()],
                };
                for (req, id) in reqs.iter().zip(ids) {
                    let host = &mut self.hosts[n];
                    if let Some(id) = id {
                        host.proposals
                            .insert((id.index, id.term), (req.client, req.seq, req.attempt));
                    }
                    host.waiting.insert((req.client, req.seq), req.attempt);
                    self.trace_attempt(
                        req,
                        n,
                        if id.is_some() {
                            "accepted"
                        } else {
                            "forwarded"
                        },
                    );
                    self.reply(req.client, req.seq, req.attempt, Reply::Accepted);
                }
                self.process(n, ready)
            }
            Err(e) => {
                let (hint, answer) = match e {
                    Error::NotLeader { leader } => (leader, "refused: not leader"),
                    _ => (None, "refused: busy"),
                };
                for req in &reqs {
                    self.trace_attempt(req, n, answer);
                    self.reply(req.client, req.seq, req.attempt, Reply::Refused(hint));
                }
                Ok(())
            }
        }
    }

    /// Sends a host's answer to a client (reliable, with a small latency).
    pub(crate) fn reply(&mut self, client: usize, seq: u64, attempt: u32, reply: Reply) {
        let at = self.now + self.client_rng.range(50, 300);
        self.schedule(
            at,
            Ev::ClientReply {
                client,
                seq,
                attempt,
                reply,
            },
        );
    }

    /// Sends a client's request to a host.
    pub(crate) fn send_request(&mut self, node: usize, req: Request) {
        let at = self.now + self.client_rng.range(50, 300);
        self.schedule(at, Ev::ClientArrive { node, req });
    }

    fn restart_node(&mut self, n: usize) -> Result<(), Fail> {
        let host = &mut self.hosts[n];
        if host.is_up() {
            return Ok(());
        }
        let voters: Vec<NodeId> = (1..=self.plan.nodes as u64).map(NodeId).collect();
        let mut cfg = self.plan.config.clone();
        cfg.id = host.id;
        cfg.voters = voters;
        cfg.seed = Rng::derive(self.seed, 1_000 + 64 * n as u64 + host.incarnation).next_u64();
        let restored = Restored {
            hard_state: host.durable.hard_state,
            entries: host.durable.entries.clone(),
            applied: host.durable.kv.applied,
            lost_data: host.lost_data,
            conf_state: None,
        };
        // Mutable for the bug hunts' injection below.
        #[cfg_attr(not(zaft_bugs), allow(unused_mut))]
        let mut node = match Node::new(cfg, restored) {
            Ok(node) => node,
            Err(e) => {
                return fail(
                    Check::NodeError,
                    format!("n{}: restart from disk failed: {e}", n + 1),
                );
            }
        };
        #[cfg(zaft_bugs)]
        if let Some(b) = self.plan.bug
            && (b.target == BugTarget::AllNodes || n == 0)
        {
            node.inject_bug(b.bug);
        }
        if host.incarnation > 0 {
            self.stats.faults.restarts += 1;
        }
        host.incarnation += 1;
        // A host that knows its node lost data says so at every restart
        // until the node has caught up.
        host.lost_data = host.amnesiac;
        if host.amnesiac {
            host.lost_term = node.term();
        }
        host.kv = host.durable.kv.clone();
        host.view = host.durable.entries.clone();
        host.hashes.clear();
        let mut h = 0;
        for e in &host.view {
            h = chain(h, e);
            host.hashes.push(h);
            self.safety.written(host.id, e, h)?;
        }
        let st = node.status();
        let durable_term = host.durable.hard_state.term;
        if st.term < durable_term {
            return fail(
                Check::Monotonic,
                format!(
                    "n{}: restarts in term {} below its durable term {durable_term}",
                    n + 1,
                    st.term
                ),
            );
        }
        if st.applied < host.kv.applied {
            return fail(
                Check::Monotonic,
                format!(
                    "n{}: restarts with applied index {} below its durable applied index {}",
                    n + 1,
                    st.applied,
                    host.kv.applied
                ),
            );
        }
        host.seen = Seen {
            role: Some(st.role),
            term: st.term,
            commit: st.commit,
            applied: st.applied,
        };
        self.trace.push(
            self.now,
            Rec::Restart {
                node: n as u64 + 1,
                term: st.term,
                last: st.last_log,
                applied: host.kv.applied,
            },
        );
        host.node = Some(node);
        Ok(())
    }

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
        self.hosts
            .iter()
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
