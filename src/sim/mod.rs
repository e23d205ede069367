//! The deterministic cluster simulator (feature `sim`).
//!
//! [`run`] simulates a cluster of 1 to 9 nodes in one thread, in virtual
//! time, with every random choice drawn from one seed: a run is a pure
//! function of `(seed, options)`, so a failing seed replays exactly.
//!
//! # What a run does
//!
//! Each node sits in a host that follows the run loop of the crate docs: it
//! writes a Ready's entries and hard state to a volatile write buffer, sends
//! its messages, applies its committed entries to a replicated key-value
//! store, fsyncs (which takes virtual time and may cover many Readies), then
//! calls `advance`. The host's disk has a durable part and the buffer; a
//! crash is a power cut that loses the buffer (or keeps a torn prefix of it)
//! and the in-memory state machine, and a restart rebuilds the node from the
//! durable part.
//!
//! Faults are switched on in [`Options::faults`] and drawn per seed (swarm
//! testing, see [`Plan`]): message loss, duplication, reordering and delay
//! spikes; symmetric and asymmetric partitions and isolated nodes, healed
//! later; crashes at random points of the host loop (between events — so
//! between persisting and fsyncing when an fsync is in flight —, after
//! persisting, after sending, after applying, after the fsync but before
//! `advance`); slow fsyncs; nodes ticking at different rates. Half of the
//! runs also have an operator who asks the leader to transfer leadership or
//! tells a node to campaign now. Faults aimed at leases (fast restarts of
//! the leader's followers, lease attacks that cut the leader off while
//! clients read at it, tick rates at the drift bound of the lease, stalled
//! host processes that catch up with `Input::Ticks`) and storage that lies
//! (opted into: a crash may lose durable data) are described in `faults.rs`.
//! Membership changes (opted into with the `membership` fault: spare nodes
//! added as learners and promoted, voters removed, the leader included,
//! joint replacements, removed nodes shut down once their removal commits)
//! are described in `membership.rs`.
//!
//! Clients write keys through the log and read them either through the log
//! (a proposed read command) or with `Input::ReadIndex` (with CheckQuorum,
//! sometimes as lease reads), drawn per seed; they retry through leader
//! changes and give up after a deadline (see [`linearizability`] for how
//! their history is judged).
//!
//! A run has two phases:
//!
//! 1. **Safety**, for [`Options::safety_ticks`], with faults.
//! 2. **Liveness**: the network heals, faults stop, every node restarts. A
//!    leader must be elected and a new write committed and acknowledged
//!    within [`Options::liveness_ticks`], and every node must apply the log up
//!    to it within [`Options::convergence_ticks`] more. Then the clients
//!    finish, and the whole history must be linearizable.
//!
//! # What is checked, after every event
//!
//! Election Safety, Log Matching, Leader Completeness, State Machine Safety
//! (Figure 3 of the Raft paper); per node, a term, commit index and applied
//! index that never go back (across restarts, never below what was durable);
//! committed entries handed out once, in order and only once durable; the
//! node's log equal to what its Readies told the host to write; no message of
//! a term the node's disk does not hold; a CheckQuorum leader cut off from a
//! majority (of each half of its configuration) stepping down in time; an
//! entry first seen committed durable on a majority of a configuration in
//! use (of both halves, while joint); and, sampled, the node's own invariant
//! check (`Node::assert_invariants`). At the end: a node that lost data has
//! left recovery if a newer term committed what it applied, durability of
//! acknowledged writes and linearizability of the history. See [`Check`].
//!
//! A failure is a [`Failure`]: its `Display` prints the seed, the options,
//! the plan, the command that replays it, and a trace of the last events.
//!
//! To show that the checks have teeth, [`Options::bug`] makes the nodes
//! commit a classic Raft [`Bug`]. The protocol code has those bugs only in a
//! build with `RUSTFLAGS="--cfg zaft_bugs"` (the hunts of `tests/bugs.rs`);
//! any other build refuses a run that asks for one.
//!
//! ```
//! let mut options = zaft::sim::Options::default();
//! options.nodes_max = 3;
//! options.safety_ticks = 100;
//! for seed in 0..2 {
//!     if let Err(failure) = zaft::sim::run(seed, &options) {
//!         panic!("{failure}");
//!     }
//! }
//! ```

mod check;
mod client;
mod cluster;
mod faults;
mod host;
mod kv;
pub mod linearizability;
mod membership;
mod network;
mod options;
mod rng;
mod trace;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use crate::bugs::Bug;
pub use check::Check;
pub use cluster::Cluster;
pub use options::{BugInjection, BugTarget, FaultSwitches, Options, Pins, Plan, TICK_US};
pub use rng::Rng;

use check::{Fail, fail};
use options::{BUGS_BUILD, assert_bug_built_in};

/// Faults injected during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Messages lost.
    pub lost: u64,
    /// Messages delivered twice.
    pub duplicated: u64,
    /// Messages held back by a delay spike.
    pub delayed: u64,
    /// Messages dropped by a partition.
    pub partitioned: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Crashes.
    pub crashes: u64,
    /// Restarts after a crash.
    pub restarts: u64,
    /// Crashes that kept a torn prefix of unsynced writes.
    pub torn_writes: u64,
    /// Slow fsyncs.
    pub slow_fsyncs: u64,
    /// `ReportUnreachable` inputs given to nodes.
    pub unreachable_reports: u64,
    /// Followers crashed and restarted within a tick (by the fast-restarts
    /// fault or a lease attack).
    pub fast_restarts: u64,
    /// Lease attacks (the leader cut off, reads aimed at it).
    pub lease_attacks: u64,
    /// Stalls of a host's process.
    pub stalls: u64,
    /// Crashes in which the disk lost durable data.
    pub data_losses: u64,
    /// Membership changes the leader accepted (joint ones and leaving a
    /// joint configuration by hand included; the leader's own automatic
    /// leave not).
    pub membership_changes: u64,
    /// Of those, joint changes.
    pub joint_changes: u64,
    /// Removed nodes shut down for good once their removal committed.
    pub decommissioned: u64,
}

impl FaultCounts {
    /// Faults injected: lost, duplicated and delayed messages, partitions
    /// (lease attacks included), crashes (fast restarts included), torn
    /// writes, slow fsyncs, stalls and data losses.
    pub fn total(&self) -> u64 {
        self.lost
            + self.duplicated
            + self.delayed
            + self.partitions
            + self.crashes
            + self.torn_writes
            + self.slow_fsyncs
            + self.stalls
            + self.data_losses
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &FaultCounts) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.delayed += other.delayed;
        self.partitioned += other.partitioned;
        self.partitions += other.partitions;
        self.crashes += other.crashes;
        self.restarts += other.restarts;
        self.torn_writes += other.torn_writes;
        self.slow_fsyncs += other.slow_fsyncs;
        self.unreachable_reports += other.unreachable_reports;
        self.fast_restarts += other.fast_restarts;
        self.lease_attacks += other.lease_attacks;
        self.stalls += other.stalls;
        self.data_losses += other.data_losses;
        self.membership_changes += other.membership_changes;
        self.joint_changes += other.joint_changes;
        self.decommissioned += other.decommissioned;
    }
}

/// What a passing run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Events handled (ticks, deliveries, fsyncs, client steps, ...).
    pub events: u64,
    /// Ticks given to nodes.
    pub ticks: u64,
    /// Messages sent.
    pub messages: u64,
    /// Faults injected.
    pub faults: FaultCounts,
    /// Cluster size.
    pub nodes: usize,
    /// Client operations acknowledged.
    pub ops_ok: u64,
    /// Client operations that definitely failed.
    pub ops_failed: u64,
    /// Client operations of unknown outcome.
    pub ops_unknown: u64,
    /// Terms that had a leader.
    pub leaders: u64,
    /// Ticks from healing to the first leader seen after it (0 if a leader
    /// was already in place and stayed).
    pub ticks_to_leader: u64,
    /// Ticks from healing to the liveness probe's write being acknowledged.
    pub ticks_to_commit: u64,
    /// The commit index reached.
    pub commit: u64,
    /// Keys whose linearizability search ran out of budget.
    pub undecided_keys: usize,
    /// Nodes that lost data in the term of the leader that still leads at
    /// the end, and so have not left recovery (the core ends recovery only
    /// with an entry committed in a newer term than the one restored).
    pub still_recovering: usize,
}

/// A broken check, with everything needed to understand and replay it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed of the run.
    pub seed: u64,
    /// The options of the run (`None` for a hand-driven [`Cluster`]).
    pub options: Option<Options>,
    /// What the seed drew.
    pub plan: Plan,
    /// The check that broke.
    pub check: Check,
    /// What exactly broke.
    pub message: String,
    /// When, in virtual microseconds.
    pub at_us: u64,
    /// The last events before it, oldest first.
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "zaft simulator: {} broken at {} (seed {})",
            self.check,
            trace::fmt_time(self.at_us),
            self.seed
        )?;
        for line in self.message.lines() {
            writeln!(f, "  {line}")?;
        }
        if let Some(o) = &self.options {
            let args = o.to_args();
            // A bug is only in the build that has the injected bugs.
            let build = if o.bug.is_some() { BUGS_BUILD } else { "" };
            writeln!(
                f,
                "replay: {build}cargo run --release --features sim --example simulate -- --seed {}{}{}",
                self.seed,
                if args.is_empty() { "" } else { " " },
                args
            )?;
            writeln!(f, "options: {o:?}")?;
        }
        writeln!(f, "plan: {:?}", self.plan)?;
        writeln!(f, "last {} events:", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// Runs the seed `seed`: a safety phase with faults, then a liveness phase on
/// a healed network, then the final checks. Returns what happened, or the
/// first broken check.
///
/// # Panics
///
/// If [`Options::bug`] asks for a bug and this build has none (it needs
/// `RUSTFLAGS="--cfg zaft_bugs"`): the run would pass for the wrong reason.
pub fn run(seed: u64, options: &Options) -> Result<RunStats, Box<Failure>> {
    run_traced(seed, options).0
}

/// [`run`], also returning the last [`Options::trace_events`] events of the
/// run whether it passed or not (a failure carries them too): to see what a
/// passing seed did.
///
/// # Panics
///
/// As [`run`].
pub fn run_traced(seed: u64, options: &Options) -> (Result<RunStats, Box<Failure>>, Vec<String>) {
    assert_bug_built_in(options.bug);
    let plan = Plan::draw(seed, options);
    let mut cluster: Option<Box<Cluster>> = None;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        match Cluster::build(plan.clone(), seed, options.trace_events) {
            Ok(c) => {
                let c = cluster.insert(Box::new(c));
                phases(c, options)
            }
            Err((c, f)) => {
                cluster = Some(c);
                Err(f)
            }
        }
    }));
    let fail = match outcome {
        Ok(Ok(stats)) => {
            let trace = cluster.map(|c| c.trace.lines()).unwrap_or_default();
            return (Ok(stats), trace);
        }
        Ok(Err(f)) => f,
        Err(panic) => {
            let what = panic_message(panic.as_ref());
            Fail {
                check: Check::NodePanic,
                message: what,
            }
        }
    };
    let failure = match cluster {
        Some(c) => c.failure(fail, seed, Some(options.clone())),
        None => Box::new(Failure {
            seed,
            options: Some(options.clone()),
            plan,
            check: fail.check,
            message: fail.message,
            at_us: 0,
            trace: Vec::new(),
        }),
    };
    let trace = failure.trace.clone();
    (Err(failure), trace)
}

fn phases(c: &mut Cluster, options: &Options) -> Result<RunStats, Fail> {
    // 1. Safety, with faults.
    c.run_inner(options.safety_ticks * TICK_US, |_| false)?;

    // 2. Liveness, on a healed network.
    c.heal()?;
    let healed = c.now;
    c.start_probe();
    let bound = healed + options.liveness_ticks * TICK_US;
    if !c.run_inner(bound, |c| c.work.probe_done_at.is_some())? {
        return fail(
            Check::Liveness,
            format!(
                "no write was acknowledged within {} ticks of healing the network (a leader {}); nodes:{}",
                options.liveness_ticks,
                match c.leader_after_heal.or(c.leader().map(|_| healed)) {
                    Some(_) => "was elected",
                    None => "was never elected",
                },
                c.describe_nodes()
            ),
        );
    }
    let committed_at = c.now;
    let target = c.max_commit();
    let bound = c.now + options.convergence_ticks * TICK_US;
    if !c.run_inner(bound, |c| c.all_applied(target))? {
        return fail(
            Check::Liveness,
            format!(
                "the nodes did not all apply up to {target} within {} ticks; nodes:{}",
                options.convergence_ticks,
                c.describe_nodes()
            ),
        );
    }
    let still_recovering = c.check_recovered(target)?;
    // Let the clients finish what they started (their deadlines bound this).
    c.work.issuing = false;
    let bound = c.now + 400 * TICK_US;
    c.run_inner(bound, |c| c.work.idle())?;
    c.work.close();

    // 3. Final checks.
    c.check_all_invariants()?;
    c.check_durability()?;
    let report =
        linearizability::check_with_budget(&c.work.history, options.linearizability_budget)
            .map_err(|v| Fail {
                check: Check::Linearizability,
                message: v.to_string(),
            })?;

    let leader_at = c.leader_after_heal.unwrap_or(healed).max(healed);
    Ok(RunStats {
        events: c.stats.events,
        ticks: c.stats.ticks,
        messages: c.stats.messages,
        faults: c.stats.faults,
        nodes: c.hosts.len(),
        ops_ok: c.work.ok,
        ops_failed: c.work.failed,
        ops_unknown: c.work.unknown,
        leaders: c.safety.terms_with_leader() as u64,
        ticks_to_leader: (leader_at - healed) / TICK_US,
        ticks_to_commit: (committed_at - healed) / TICK_US,
        commit: c.max_commit().0,
        undecided_keys: report.undecided_keys.len(),
        still_recovering,
    })
}

/// What a caught panic said.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}
