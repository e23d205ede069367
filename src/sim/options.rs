//! What a run may do ([`Options`]) and what one seed made of it ([`Plan`]).
//!
//! Options switch each fault on or off and bound the run; the seed then draws
//! the concrete rates (swarm testing: each enabled fault is on for about half
//! of the seeds, at a rate drawn per seed, so that rare combinations get runs
//! where nothing else drowns them out). The `Plan` is printed with every
//! failure; `(seed, options)` reproduces it exactly.

use std::fmt;

use crate::bugs::Bug;
use crate::config::Config;
use crate::types::NodeId;

use super::rng::Rng;

/// The length of one nominal tick in virtual microseconds. Every duration in
/// the simulator is counted in these microseconds; node timers count ticks.
pub const TICK_US: u64 = 1_000;

/// Which faults a run may inject. Each one that is switched on is drawn per
/// seed (see [`Options::swarm`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FaultSwitches {
    /// Messages are lost.
    pub loss: bool,
    /// Messages are delivered twice.
    pub duplication: bool,
    /// Messages overtake each other (without it, each link is FIFO).
    pub reordering: bool,
    /// Some messages are delayed by many ticks.
    pub delay_spikes: bool,
    /// Symmetric and asymmetric partitions, and single nodes isolated, then
    /// healed.
    pub partitions: bool,
    /// Nodes crash (power cut) at random points of the host loop, including
    /// between persisting and fsyncing, and restart from their durable state.
    pub crashes: bool,
    /// A crash keeps a random prefix of the writes not yet fsynced (a torn
    /// tail) instead of losing all of them.
    pub torn_writes: bool,
    /// Some fsyncs take many ticks.
    pub slow_fsync: bool,
    /// Nodes tick at different rates (up to ±10%).
    pub clock_skew: bool,
    /// A follower of the leader crashes and restarts within a tick, while
    /// the leader's lease still counts on what it promised before the crash.
    pub fast_restarts: bool,
    /// Lease attacks: the leader is cut off from everyone and, from that
    /// moment, one client hammers it with reads while another writes through
    /// the rest of the cluster; half of the time a majority of the followers
    /// also restart at once and one of them is told to campaign.
    pub lease_partitions: bool,
    /// Nodes tick apart at exactly the drift the lease allows (see
    /// [`Plan::draw`]); beyond it only with [`Options::drift_beyond_bound`].
    pub drift_at_bound: bool,
    /// A host's whole process pauses (no event handled) for a while; then
    /// its host delivers every missed tick with `Input::Ticks` before it
    /// steps anything that arrived meanwhile.
    pub stalls: bool,
    /// Storage lies: a crash may lose a suffix of the durable log or all of
    /// it (and, with [`Options::wipe_hard_state`], the hard state too), and
    /// the host restores the node with `Restored::lost_data`. Only a
    /// minority at a time, and a node loses data again only once it has
    /// caught up. Off in [`Options::default`] (storage that lies is an
    /// assumption a run opts into: `--faults all` or a list naming
    /// `amnesia`); when on, drawn for about one seed in four of the swarm
    /// (of three nodes or more).
    pub amnesia: bool,
    /// Membership changes: an operator adds spare nodes as learners,
    /// promotes them, removes voters (the leader included) and learners,
    /// and replaces a voter by a spare in one joint change (left on its own
    /// or explicitly), one change at a time; a node whose removal has
    /// committed is shut down for good. The cluster starts with one or two
    /// spare nodes that know no configuration. Never drawn together with
    /// `amnesia` (a node that lost data is assumed to be a voter of a
    /// fixed cluster).
    pub membership: bool,
}

impl FaultSwitches {
    /// Every fault on, lying storage included.
    pub const ALL: FaultSwitches = FaultSwitches {
        loss: true,
        duplication: true,
        reordering: true,
        delay_spikes: true,
        partitions: true,
        crashes: true,
        torn_writes: true,
        slow_fsync: true,
        clock_skew: true,
        fast_restarts: true,
        lease_partitions: true,
        drift_at_bound: true,
        stalls: true,
        amnesia: true,
        membership: true,
    };

    /// Every fault off: a perfect network and perfect disks.
    pub const NONE: FaultSwitches = FaultSwitches {
        loss: false,
        duplication: false,
        reordering: false,
        delay_spikes: false,
        partitions: false,
        crashes: false,
        torn_writes: false,
        slow_fsync: false,
        clock_skew: false,
        fast_restarts: false,
        lease_partitions: false,
        drift_at_bound: false,
        stalls: false,
        amnesia: false,
        membership: false,
    };

    const NAMES: [&'static str; 15] = [
        "loss",
        "duplication",
        "reordering",
        "delay-spikes",
        "partitions",
        "crashes",
        "torn-writes",
        "slow-fsync",
        "clock-skew",
        "fast-restarts",
        "lease-partitions",
        "drift-at-bound",
        "stalls",
        "amnesia",
        "membership",
    ];

    fn slots(&mut self) -> [&mut bool; 15] {
        [
            &mut self.loss,
            &mut self.duplication,
            &mut self.reordering,
            &mut self.delay_spikes,
            &mut self.partitions,
            &mut self.crashes,
            &mut self.torn_writes,
            &mut self.slow_fsync,
            &mut self.clock_skew,
            &mut self.fast_restarts,
            &mut self.lease_partitions,
            &mut self.drift_at_bound,
            &mut self.stalls,
            &mut self.amnesia,
            &mut self.membership,
        ]
    }

    /// Parses a comma-separated list of fault names (as printed by
    /// `Display`), or `all`, or `none`.
    pub fn parse(list: &str) -> Result<FaultSwitches, String> {
        match list {
            "all" => return Ok(FaultSwitches::ALL),
            "none" | "" => return Ok(FaultSwitches::NONE),
            _ => {}
        }
        let mut f = FaultSwitches::NONE;
        for name in list.split(',') {
            let Some(i) = Self::NAMES.iter().position(|n| *n == name.trim()) else {
                return Err(format!(
                    "unknown fault {name:?}; known: {}",
                    Self::NAMES.join(",")
                ));
            };
            *f.slots()[i] = true;
        }
        Ok(f)
    }
}

impl fmt::Display for FaultSwitches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut copy = *self;
        let on: Vec<&str> = copy
            .slots()
            .iter()
            .zip(Self::NAMES)
            .filter(|(s, _)| ***s)
            .map(|(_, n)| n)
            .collect();
        if on.is_empty() {
            f.write_str("none")
        } else if on.len() == Self::NAMES.len() {
            f.write_str("all")
        } else {
            f.write_str(&on.join(","))
        }
    }
}

/// What a command that replays an injected bug starts with: the build that
/// has the bugs, in a target directory of its own (it would otherwise
/// rebuild the main one's every time the cfg changes).
pub(crate) const BUGS_BUILD: &str = "RUSTFLAGS=\"--cfg zaft_bugs\" CARGO_TARGET_DIR=target/bugs ";

/// Why a bug cannot be injected in a build without `--cfg zaft_bugs`.
const NO_BUGS: &str = "this build has no injected bugs: build it with \
    RUSTFLAGS=\"--cfg zaft_bugs\" (and CARGO_TARGET_DIR=target/bugs to keep the main build's cache), \
    e.g. RUSTFLAGS=\"--cfg zaft_bugs\" CARGO_TARGET_DIR=target/bugs cargo run --release --features sim --example simulate -- ...";

/// Panics if `bug` asks for a bug this build does not have: a run without
/// it would pass for the wrong reason.
pub(crate) fn assert_bug_built_in(bug: Option<BugInjection>) {
    assert!(bug.is_none() || cfg!(zaft_bugs), "Options::bug: {NO_BUGS}");
}

/// Which nodes a bug is injected into.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BugTarget {
    /// Every node.
    AllNodes,
    /// Node 1 only.
    OneNode,
}

/// A deliberate bug to inject (see [`Bug`]), to show the simulator catches
/// it. Only a build with `RUSTFLAGS="--cfg zaft_bugs"` has the bugs: any
/// other refuses a run that asks for one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BugInjection {
    /// The bug.
    pub bug: Bug,
    /// Where.
    pub target: BugTarget,
}

/// Node settings fixed for every seed; `None` leaves a setting drawn per
/// seed. Useful to aim a search at a corner (one entry per message, one
/// message in flight, ...).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Pins {
    /// [`Config::max_entries_bytes_per_msg`] (1: one entry per message).
    pub max_entries_bytes_per_msg: Option<u64>,
    /// [`Config::max_inflight_msgs`].
    pub max_inflight_msgs: Option<u32>,
    /// [`Config::pre_vote`].
    pub pre_vote: Option<bool>,
    /// [`Config::check_quorum`].
    pub check_quorum: Option<bool>,
    /// [`Config::lease_reads`]. `Some(true)` also turns CheckQuorum on (a
    /// lease needs it) and makes every seed serve reads with
    /// `Input::ReadIndex` (unless [`Options::read_index`] is off).
    pub lease_reads: Option<bool>,
    /// A fast network and disk ([`Plan::latency_us`] and [`Plan::fsync_us`]
    /// of a few tens of microseconds, against ticks of a millisecond) for
    /// every seed (`Some(true)`) or none (`Some(false)`); drawn for one seed
    /// in four otherwise. An election then fits in a fraction of a tick,
    /// which is what a lease that ends a little late needs to be caught.
    pub fast_network: Option<bool>,
}

/// What a run may do. Build with `Options::default()` and adjust fields.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct Options {
    /// The smallest cluster drawn (at least 1).
    pub nodes_min: usize,
    /// The largest cluster drawn (at most 9).
    pub nodes_max: usize,
    /// The most clients drawn (at least one client runs).
    pub clients_max: usize,
    /// Keys are drawn from `1..=keys`: fewer keys, more contention.
    pub keys: u64,
    /// Length of the safety phase, with faults, in ticks.
    pub safety_ticks: u64,
    /// Liveness bound, in ticks: after the network heals and every node is
    /// restarted, a leader must be elected and a new write committed and
    /// acknowledged within this many ticks.
    pub liveness_ticks: u64,
    /// Convergence bound, in ticks: after that write is acknowledged, every
    /// node must apply the log up to it within this many more ticks.
    pub convergence_ticks: u64,
    /// The faults a run may inject: every one but `amnesia` and
    /// `membership` by default.
    pub faults: FaultSwitches,
    /// Swarm testing: each enabled fault is on only for about half of the
    /// seeds. When false, every enabled fault is on in every run.
    pub swarm: bool,
    /// A deliberate bug to inject. Only a build with
    /// `RUSTFLAGS="--cfg zaft_bugs"` has them (`tests/bugs.rs` says how to
    /// run the hunts); in any other, [`run`](super::run) panics if this is
    /// set, rather than run without the bug.
    pub bug: Option<BugInjection>,
    /// Whether reads may use `Input::ReadIndex` (and, with CheckQuorum,
    /// lease reads): drawn per seed, half of the runs. When false every read
    /// goes through the log as a proposed command.
    pub read_index: bool,
    /// Node settings to pin instead of drawing them per seed.
    pub pins: Pins,
    /// How many of the last events a failure report shows.
    pub trace_events: usize,
    /// Search steps per key for the linearizability check.
    pub linearizability_budget: u64,
    /// With the `drift-at-bound` fault, nodes tick apart at twice the drift
    /// the lease allows: a run that says the bound may be broken, to show
    /// that the bound matters. A correct node can fail such a run.
    pub drift_beyond_bound: bool,
    /// With the `amnesia` fault, a data loss may also wipe the hard state
    /// (term and vote). The core documents that it cannot make that safe (a
    /// wiped node may vote twice in a term it forgot): a correct node can
    /// fail such a run.
    pub wipe_hard_state: bool,
    /// A host that, after a stall, steps what arrived meanwhile before it
    /// delivers the missed ticks: the mistake the docs of `Input::Ticks`
    /// warn against, to show that the stall fault catches it.
    pub ticks_after_backlog: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            nodes_min: 1,
            nodes_max: 9,
            clients_max: 4,
            keys: 4,
            safety_ticks: 600,
            liveness_ticks: 1_000,
            convergence_ticks: 2_000,
            // Storage that lies is opted into.
            faults: FaultSwitches {
                amnesia: false,
                membership: false,
                ..FaultSwitches::ALL
            },
            swarm: true,
            bug: None,
            read_index: true,
            pins: Pins::default(),
            trace_events: 120,
            linearizability_budget: super::linearizability::DEFAULT_BUDGET_PER_KEY,
            drift_beyond_bound: false,
            wipe_hard_state: false,
            ticks_after_backlog: false,
        }
    }
}

impl Options {
    /// The command-line flags that give these options to the `simulate`
    /// example (only those that differ from the defaults).
    pub fn to_args(&self) -> String {
        let d = Options::default();
        let mut out = Vec::new();
        if (self.nodes_min, self.nodes_max) != (d.nodes_min, d.nodes_max) {
            out.push(format!("--nodes {}..={}", self.nodes_min, self.nodes_max));
        }
        if self.clients_max != d.clients_max {
            out.push(format!("--clients {}", self.clients_max));
        }
        if self.keys != d.keys {
            out.push(format!("--keys {}", self.keys));
        }
        if self.safety_ticks != d.safety_ticks {
            out.push(format!("--safety-ticks {}", self.safety_ticks));
        }
        if self.liveness_ticks != d.liveness_ticks {
            out.push(format!("--liveness-ticks {}", self.liveness_ticks));
        }
        if self.convergence_ticks != d.convergence_ticks {
            out.push(format!("--convergence-ticks {}", self.convergence_ticks));
        }
        if self.faults != d.faults {
            out.push(format!("--faults {}", self.faults));
        }
        if !self.swarm {
            out.push("--no-swarm".into());
        }
        if !self.read_index {
            out.push("--log-reads".into());
        }
        if let Some(b) = self.bug {
            let t = match b.target {
                BugTarget::AllNodes => "all",
                BugTarget::OneNode => "one",
            };
            out.push(format!("--bug {:?}@{t}", b.bug));
        }
        let p = self.pins;
        if let Some(v) = p.max_entries_bytes_per_msg {
            out.push(format!("--max-entries-bytes {v}"));
        }
        if let Some(v) = p.max_inflight_msgs {
            out.push(format!("--max-inflight {v}"));
        }
        if let Some(v) = p.pre_vote {
            out.push(format!("--pre-vote {v}"));
        }
        if let Some(v) = p.check_quorum {
            out.push(format!("--check-quorum {v}"));
        }
        if let Some(v) = p.lease_reads {
            out.push(format!("--lease-reads {v}"));
        }
        if let Some(v) = p.fast_network {
            out.push(format!("--fast-network {v}"));
        }
        if self.drift_beyond_bound {
            out.push("--drift-beyond-bound".into());
        }
        if self.wipe_hard_state {
            out.push("--wipe-hard-state".into());
        }
        if self.ticks_after_backlog {
            out.push("--ticks-after-backlog".into());
        }
        if self.trace_events != d.trace_events {
            out.push(format!("--trace {}", self.trace_events));
        }
        if self.linearizability_budget != d.linearizability_budget {
            out.push(format!("--lin-budget {}", self.linearizability_budget));
        }
        out.join(" ")
    }

    /// Whether an option flag of [`Options::to_args`] takes a value (a few
    /// are switches on their own).
    pub fn flag_takes_value(flag: &str) -> bool {
        !matches!(
            flag,
            "--no-swarm"
                | "--log-reads"
                | "--drift-beyond-bound"
                | "--wipe-hard-state"
                | "--ticks-after-backlog"
        )
    }

    /// Applies one flag of [`Options::to_args`] with its value. Returns
    /// `Ok(false)` if the flag is not an option flag.
    pub fn set_flag(&mut self, flag: &str, value: Option<&str>) -> Result<bool, String> {
        fn need<'a>(flag: &str, v: Option<&'a str>) -> Result<&'a str, String> {
            v.ok_or_else(|| format!("{flag} needs a value"))
        }
        fn num(flag: &str, v: Option<&str>) -> Result<u64, String> {
            let v = need(flag, v)?;
            v.parse()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        }
        fn boolean(flag: &str, v: Option<&str>) -> Result<bool, String> {
            match need(flag, v)? {
                "true" | "on" => Ok(true),
                "false" | "off" => Ok(false),
                v => Err(format!("{flag}: {v:?} is neither true nor false")),
            }
        }
        match flag {
            "--nodes" => {
                let v = need(flag, value)?;
                let (lo, hi) = match v.split_once("..=") {
                    Some((a, b)) => (a, b),
                    None => (v, v),
                };
                let lo: usize = lo.parse().map_err(|_| format!("--nodes: bad {v:?}"))?;
                let hi: usize = hi.parse().map_err(|_| format!("--nodes: bad {v:?}"))?;
                if lo < 1 || hi > 9 || lo > hi {
                    return Err("--nodes: need 1 <= min <= max <= 9".into());
                }
                self.nodes_min = lo;
                self.nodes_max = hi;
            }
            "--clients" => self.clients_max = num(flag, value)?.max(1) as usize,
            "--keys" => self.keys = num(flag, value)?.max(1),
            "--safety-ticks" => self.safety_ticks = num(flag, value)?,
            "--liveness-ticks" => self.liveness_ticks = num(flag, value)?,
            "--convergence-ticks" => self.convergence_ticks = num(flag, value)?,
            "--faults" => self.faults = FaultSwitches::parse(need(flag, value)?)?,
            "--no-swarm" => self.swarm = false,
            "--log-reads" => self.read_index = false,
            "--max-entries-bytes" => {
                self.pins.max_entries_bytes_per_msg = Some(num(flag, value)?.max(1));
            }
            "--max-inflight" => {
                self.pins.max_inflight_msgs = Some(num(flag, value)?.clamp(1, 1 << 20) as u32);
            }
            "--pre-vote" => self.pins.pre_vote = Some(boolean(flag, value)?),
            "--check-quorum" => self.pins.check_quorum = Some(boolean(flag, value)?),
            "--lease-reads" => self.pins.lease_reads = Some(boolean(flag, value)?),
            "--fast-network" => self.pins.fast_network = Some(boolean(flag, value)?),
            "--drift-beyond-bound" => self.drift_beyond_bound = true,
            "--wipe-hard-state" => self.wipe_hard_state = true,
            "--ticks-after-backlog" => self.ticks_after_backlog = true,
            "--trace" => self.trace_events = num(flag, value)? as usize,
            "--lin-budget" => self.linearizability_budget = num(flag, value)?,
            "--bug" => {
                let v = need(flag, value)?;
                let (name, target) = v.split_once('@').unwrap_or((v, "all"));
                let Some(bug) = Bug::ALL.iter().find(|b| format!("{b:?}") == name) else {
                    let known: Vec<String> = Bug::ALL.iter().map(|b| format!("{b:?}")).collect();
                    return Err(format!("unknown bug {name:?}; known: {}", known.join(", ")));
                };
                let target = match target {
                    "all" => BugTarget::AllNodes,
                    "one" => BugTarget::OneNode,
                    t => return Err(format!("--bug: target {t:?} is neither all nor one")),
                };
                if !cfg!(zaft_bugs) {
                    return Err(format!("--bug {v}: {NO_BUGS}"));
                }
                self.bug = Some(BugInjection { bug: *bug, target });
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Everything one seed decided: the concrete cluster, rates and node
/// settings of a run. Printed with every failure.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Plan {
    /// Cluster size.
    pub nodes: usize,
    /// Clients of the key-value workload.
    pub clients: usize,
    /// Keys are `1..=keys`.
    pub keys: u64,
    /// Each node's tick length, in virtual microseconds.
    pub tick_us: Vec<u64>,
    /// One-way message latency range, in virtual microseconds.
    pub latency_us: (u64, u64),
    /// Whether each link delivers in order.
    pub fifo: bool,
    /// Per-mille of messages lost.
    pub loss_per_mille: u32,
    /// Per-mille of messages delivered twice.
    pub dup_per_mille: u32,
    /// Per-mille of messages delayed by a spike.
    pub spike_per_mille: u32,
    /// The extra delay of a spike, in virtual microseconds.
    pub spike_us: (u64, u64),
    /// Mean ticks between partitions; 0: none.
    pub partition_every_ticks: u64,
    /// Mean ticks between crashes; 0: none.
    pub crash_every_ticks: u64,
    /// Whether a crash keeps a torn prefix of unsynced writes.
    pub torn_writes: bool,
    /// The usual fsync duration, in virtual microseconds.
    pub fsync_us: (u64, u64),
    /// Per-mille of fsyncs that are slow.
    pub slow_fsync_per_mille: u32,
    /// The duration of a slow fsync, in virtual microseconds.
    pub slow_fsync_us: (u64, u64),
    /// Whether hosts report unreachable peers to their node.
    pub report_unreachable: bool,
    /// Whether hosts batch client requests into one `ProposeBatch`.
    pub batching: bool,
    /// Whether reads use `Input::ReadIndex` instead of the log.
    pub read_index: bool,
    /// Mean ticks between operator actions during the safety phase (a
    /// leadership transfer, or a forced campaign); 0: none.
    pub operator_every_ticks: u64,
    /// The node settings (id, voters and seed are set per node).
    pub config: Config,
    /// The bug injected, if any.
    pub bug: Option<BugInjection>,
    /// Whether every message goes through [`crate::Codec`] (encoded, then
    /// decoded) on its way, as over a real network.
    pub wire: bool,
    /// Mean ticks between fast restarts of one of the leader's followers
    /// (crash, then restart within a tick); 0: none.
    pub fast_restart_every_ticks: u64,
    /// Mean ticks between lease attacks (the leader cut off, reads aimed at
    /// it, writes through the others); 0: none.
    pub lease_attack_every_ticks: u64,
    /// Whether the tick rates in `tick_us` sit at the drift bound of the
    /// lease (or beyond it, with [`Options::drift_beyond_bound`]).
    pub drift_at_bound: bool,
    /// Mean ticks between stalls of a host's process; 0: none.
    pub stall_every_ticks: u64,
    /// How long a stall lasts, in ticks.
    pub stall_ticks: (u64, u64),
    /// Per-mille of crashes that lose durable data; 0: storage never lies.
    pub amnesia_per_mille: u32,
    /// Whether a data loss may wipe the hard state too.
    pub wipe_hard_state: bool,
    /// Whether hosts deliver the ticks a stall missed after what arrived
    /// meanwhile (a host bug, see [`Options::ticks_after_backlog`]).
    pub ticks_after_backlog: bool,
    /// Mean ticks between membership changes during the safety phase; 0:
    /// none (and no spare nodes).
    pub membership_every_ticks: u64,
    /// Spare nodes, started with no configuration, that membership changes
    /// may add: hosts `nodes + 1 ..= nodes + spares`.
    pub spares: usize,
}

impl Plan {
    /// A fault-free plan: `nodes` nodes, every tick `tick_us` long, latency and
    /// fsync times in the given ranges, node settings from `config`.
    pub fn quiet(
        nodes: usize,
        tick_us: u64,
        latency_us: (u64, u64),
        fsync_us: (u64, u64),
        config: Config,
    ) -> Plan {
        Plan {
            nodes,
            clients: 0,
            keys: 1,
            tick_us: vec![tick_us; nodes],
            latency_us,
            fifo: true,
            loss_per_mille: 0,
            dup_per_mille: 0,
            spike_per_mille: 0,
            spike_us: (0, 0),
            partition_every_ticks: 0,
            crash_every_ticks: 0,
            torn_writes: false,
            fsync_us,
            slow_fsync_per_mille: 0,
            slow_fsync_us: (0, 0),
            report_unreachable: false,
            batching: false,
            read_index: false,
            operator_every_ticks: 0,
            config,
            bug: None,
            wire: false,
            fast_restart_every_ticks: 0,
            lease_attack_every_ticks: 0,
            drift_at_bound: false,
            stall_every_ticks: 0,
            stall_ticks: (0, 0),
            amnesia_per_mille: 0,
            wipe_hard_state: false,
            ticks_after_backlog: false,
            membership_every_ticks: 0,
            spares: 0,
        }
    }

    /// Draws the plan of `seed` within `options`.
    pub fn draw(seed: u64, options: &Options) -> Plan {
        let mut rng = Rng::derive(seed, 0x504C_414E);
        let f = options.faults;
        // Swarm: an enabled fault is on for about half of the seeds.
        let mut on = |enabled: bool| enabled && (!options.swarm || rng.coin());
        let loss = on(f.loss);
        let dup = on(f.duplication);
        let reorder = on(f.reordering);
        let spikes = on(f.delay_spikes);
        let partitions = on(f.partitions);
        let crashes = on(f.crashes);
        let torn = on(f.torn_writes);
        let slow = on(f.slow_fsync);
        let skew = on(f.clock_skew);

        let nodes_min = options.nodes_min.clamp(1, 9);
        let nodes_max = options.nodes_max.clamp(nodes_min, 9);
        let nodes = rng.range(nodes_min as u64, nodes_max as u64) as usize;
        let clients = rng.range(1, options.clients_max.max(1) as u64) as usize;
        let tick_us = (0..nodes)
            .map(|_| {
                if skew {
                    rng.range(TICK_US * 9 / 10, TICK_US * 11 / 10)
                } else {
                    TICK_US
                }
            })
            .collect();
        let mut config = Config::new(NodeId(1), [NodeId(1)]);
        config.election_timeout_ticks_min = *rng.pick(&[5, 10, 10, 20]).unwrap_or(&10);
        config.election_timeout_ticks_max =
            config.election_timeout_ticks_min * *rng.pick(&[2, 2, 3]).unwrap_or(&2);
        config.heartbeat_interval_ticks = *rng.pick(&[1, 1, 2]).unwrap_or(&1);
        config.max_inflight_msgs = *rng.pick(&[1, 2, 8, 256]).unwrap_or(&256);
        config.max_entries_bytes_per_msg = *rng.pick(&[1, 200, 1 << 20]).unwrap_or(&(1 << 20));
        config.pre_vote = rng.coin();
        config.check_quorum = rng.coin();
        config.forward_proposals = rng.coin();
        let pins = options.pins;
        if let Some(v) = pins.max_entries_bytes_per_msg {
            config.max_entries_bytes_per_msg = v;
        }
        if let Some(v) = pins.max_inflight_msgs {
            config.max_inflight_msgs = v;
        }
        if let Some(v) = pins.pre_vote {
            config.pre_vote = v;
        }
        if let Some(v) = pins.check_quorum {
            config.check_quorum = v;
        }
        if pins.lease_reads == Some(true) {
            config.check_quorum = true;
        }
        let mut read_index = options.read_index && rng.coin();
        let lease = read_index && config.check_quorum && rng.coin();
        let lease = match pins.lease_reads {
            Some(pinned) => {
                read_index |= pinned && options.read_index;
                pinned && read_index
            }
            None => lease,
        };
        if lease {
            config.lease_reads = true;
            // A lease is safe while no follower's ticks outrun the leader's
            // by more than the margin over an election timeout: with tick
            // rates up to ±10% apart, a quarter of the timeout covers it.
            config.lease_drift_margin_ticks = config.election_timeout_ticks_min / 4 + 1;
        }
        // Raft's timing requirement (§5.6): the broadcast time, a round trip
        // plus an fsync, well below the election timeout. A fifth of it for
        // the slowest one-way message leaves room for the round trip and the
        // fsync of a vote.
        let room = u64::from(config.election_timeout_ticks_min) * TICK_US / 5;
        let hi = rng.range(room / 4, room);
        let latency_us = (rng.range(20, hi / 4), hi);
        let mut plan = Plan {
            nodes,
            clients,
            keys: options.keys.max(1),
            tick_us,
            latency_us,
            fifo: !reorder,
            loss_per_mille: if loss { rng.range(5, 150) as u32 } else { 0 },
            dup_per_mille: if dup { rng.range(5, 100) as u32 } else { 0 },
            spike_per_mille: if spikes { rng.range(2, 50) as u32 } else { 0 },
            spike_us: (5 * TICK_US, rng.range(10, 60) * TICK_US),
            partition_every_ticks: if partitions { rng.range(20, 150) } else { 0 },
            crash_every_ticks: if crashes { rng.range(20, 200) } else { 0 },
            torn_writes: torn,
            fsync_us: (rng.range(20, 200), rng.range(200, room)),
            slow_fsync_per_mille: if slow { rng.range(20, 300) as u32 } else { 0 },
            slow_fsync_us: (2 * TICK_US, rng.range(5, 40) * TICK_US),
            report_unreachable: rng.coin(),
            batching: rng.coin(),
            read_index,
            operator_every_ticks: if rng.coin() { rng.range(20, 150) } else { 0 },
            config,
            bug: options.bug,
            // Drawn last: the draws above stay what they were for every seed.
            wire: rng.coin(),
            fast_restart_every_ticks: 0,
            lease_attack_every_ticks: 0,
            drift_at_bound: false,
            stall_every_ticks: 0,
            stall_ticks: (0, 0),
            amnesia_per_mille: 0,
            wipe_hard_state: options.wipe_hard_state,
            ticks_after_backlog: options.ticks_after_backlog,
            membership_every_ticks: 0,
            spares: 0,
        };
        // The lease faults, drawn after everything above so that each seed
        // keeps the rest of its plan.
        let mut on = |enabled: bool| enabled && (!options.swarm || rng.coin());
        let fast_restarts = on(f.fast_restarts);
        let lease_partitions = on(f.lease_partitions);
        let drift = on(f.drift_at_bound);
        let stalls = on(f.stalls);
        // Lying storage is rarer: one seed in four of the swarm. A lone node
        // that lost data has no one to catch up from, and two nodes have no
        // minority to spare.
        let amnesia = f.amnesia && nodes >= 3 && (!options.swarm || rng.below(4) == 0);
        let p = &mut plan;
        let max = u64::from(p.config.election_timeout_ticks_max);
        if fast_restarts {
            p.fast_restart_every_ticks = rng.range(15, 100);
        }
        if lease_partitions {
            p.lease_attack_every_ticks = rng.range(4 * max, 150);
        }
        if stalls {
            p.stall_every_ticks = rng.range(20, 150);
            p.stall_ticks = (1, rng.range(2, 3 * max));
        }
        if amnesia {
            p.amnesia_per_mille = rng.range(100, 600) as u32;
        }
        let fast_network = rng.below(4) == 0;
        if pins.fast_network.unwrap_or(fast_network) {
            let hi = rng.range(40, 200);
            p.latency_us = (rng.range(10, 40), hi);
            p.fsync_us = (rng.range(10, 50), rng.range(50, 300));
        }
        if drift && nodes >= 2 {
            p.drift_at_bound = true;
            p.tick_us = drift_tick_us(&mut rng, &p.config, nodes, options.drift_beyond_bound);
            // Raft's timing requirement in the fastest node's ticks: its
            // election timeout is the shortest.
            let fast = p.tick_us.iter().copied().min().unwrap_or(TICK_US);
            let scale = |(lo, hi): (u64, u64)| (lo * fast / TICK_US, hi * fast / TICK_US);
            p.latency_us = scale(p.latency_us);
            p.fsync_us = scale(p.fsync_us);
        }
        // Membership changes, drawn last so that every other draw of a seed
        // stays what it was.
        if f.membership && (!options.swarm || rng.coin()) {
            p.membership_every_ticks = rng.range(20, 120);
            p.spares = rng.range(1, 2) as usize;
            p.amnesia_per_mille = 0;
        }
        plan
    }

    /// The number of faults kinds this plan switches on.
    pub fn faults_on(&self) -> usize {
        [
            self.loss_per_mille > 0,
            self.dup_per_mille > 0,
            !self.fifo,
            self.spike_per_mille > 0,
            self.partition_every_ticks > 0,
            self.crash_every_ticks > 0,
            self.torn_writes,
            self.slow_fsync_per_mille > 0,
            self.tick_us.iter().any(|&t| t != TICK_US),
            self.fast_restart_every_ticks > 0,
            self.lease_attack_every_ticks > 0,
            self.stall_every_ticks > 0,
            self.amnesia_per_mille > 0,
            self.membership_every_ticks > 0,
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

/// Tick lengths at the drift bound of the lease: every node ticks either
/// at a slow length or at the fast one, at least one of each.
///
/// The lease lasts `L = election_timeout_ticks_min - lease_drift_margin_ticks`
/// of the leader's ticks, and the docs of `Config::lease_reads` allow any
/// node to tick faster than the leader by at most the margin over that span:
/// `min` ticks of the fast node in `L` of the slow one, `min * fast >= L *
/// slow`. The fast length is the shortest that keeps it (rounded up).
/// Beyond the bound, the fast node gains twice the margin instead.
fn drift_tick_us(rng: &mut Rng, config: &Config, nodes: usize, beyond: bool) -> Vec<u64> {
    let min = u64::from(config.election_timeout_ticks_min);
    let margin = u64::from(config.lease_drift_margin_ticks);
    let lease = min - margin;
    let slow = rng.range(TICK_US, TICK_US * 11 / 10);
    let fast = if beyond {
        slow * lease / (min + margin)
    } else {
        (slow * lease).div_ceil(min)
    };
    let mut tick_us: Vec<u64> = (0..nodes)
        .map(|_| if rng.coin() { slow } else { fast })
        .collect();
    let pos = rng.below(nodes as u64) as usize;
    let other = (pos + 1 + rng.below(nodes as u64 - 1) as usize) % nodes;
    tick_us[pos] = slow;
    tick_us[other] = fast;
    tick_us
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip() {
        let mut o = Options {
            read_index: false,
            nodes_min: 3,
            nodes_max: 5,
            faults: FaultSwitches::parse("loss,crashes").unwrap(),
            swarm: false,
            // Only a build with the bugs takes `--bug`.
            bug: cfg!(zaft_bugs).then_some(BugInjection {
                bug: Bug::VoteForOlderLog,
                target: BugTarget::OneNode,
            }),
            ..Options::default()
        };
        o.safety_ticks = 77;
        o.pins.max_entries_bytes_per_msg = Some(1);
        o.pins.check_quorum = Some(false);
        o.pins.lease_reads = Some(true);
        o.pins.fast_network = Some(false);
        o.drift_beyond_bound = true;
        o.wipe_hard_state = true;
        o.ticks_after_backlog = true;
        let args = o.to_args();
        let mut back = Options::default();
        let words: Vec<&str> = args.split(' ').collect();
        let mut i = 0;
        while i < words.len() {
            let takes_value = Options::flag_takes_value(words[i]);
            let value = takes_value.then(|| words[i + 1]);
            assert!(back.set_flag(words[i], value).unwrap(), "{}", words[i]);
            i += if takes_value { 2 } else { 1 };
        }
        assert_eq!(back, o, "{args}");
    }

    #[test]
    fn drift_at_the_bound_keeps_the_lease_bound_and_beyond_breaks_it() {
        let mut o = Options {
            faults: FaultSwitches::parse("drift-at-bound").unwrap(),
            swarm: false,
            nodes_min: 2,
            ..Options::default()
        };
        for beyond in [false, true] {
            o.drift_beyond_bound = beyond;
            for seed in 0..200 {
                let p = Plan::draw(seed, &o);
                let min = u64::from(p.config.election_timeout_ticks_min);
                let lease = min - u64::from(p.config.lease_drift_margin_ticks);
                let slow = *p.tick_us.iter().max().unwrap();
                let fast = *p.tick_us.iter().min().unwrap();
                // Over the leader's lease, the fast node's ticks.
                let gained = (lease * slow) as f64 / fast as f64 - lease as f64;
                let margin = f64::from(p.config.lease_drift_margin_ticks);
                if beyond {
                    assert!(gained > margin, "seed {seed}: {gained} ticks gained");
                } else {
                    assert!(min * fast >= lease * slow, "seed {seed}: {p:?}");
                    assert!(gained > margin - 0.05, "seed {seed}: not at the bound");
                }
            }
        }
    }

    #[test]
    fn a_seed_always_draws_the_same_plan() {
        let o = Options::default();
        assert_eq!(Plan::draw(5, &o), Plan::draw(5, &o));
        let sizes: std::collections::BTreeSet<usize> =
            (0..200).map(|s| Plan::draw(s, &o).nodes).collect();
        assert_eq!(sizes.len(), 9, "every cluster size gets drawn");
    }
}
