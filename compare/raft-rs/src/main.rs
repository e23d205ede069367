//! zaft and raft-rs 0.7 side by side, in one process, on the same workload:
//! a 3-node in-process cluster, 128-byte entries, rounds of 1024, 64 and 1
//! proposals (propose, then deliver messages until every node applied the
//! round). Each library is driven by the run loop its own docs give, with
//! in-memory storage that keeps every entry and one FIFO network queue.
//!
//! ```sh
//! cargo run --release -p raft-rs-compare            # 7 runs per figure
//! cargo run --release -p raft-rs-compare -- --runs 15
//! cargo run --release -p raft-rs-compare -- --only zaft 1 200000   # for a profiler
//! ```
//!
//! It prints, per round size, the median committed entries per second of
//! each (over chunks of 4096 entries from all runs; runs interleaved, zaft and
//! raft-rs alternating), their ratio, and
//! heap allocator calls per committed entry (counting allocator, whole
//! process, each payload's own allocation included); then the memory of an
//! idle follower group of each.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;

#[path = "../../../benches/support/counting_alloc.rs"]
mod counting_alloc;
mod raftrs;
#[path = "../../../benches/support/cluster.rs"]
mod zaft_cluster;

use counting_alloc::{CountingAlloc, counts};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const NODES: u64 = 3;
const SIZE: usize = 128;
/// Entries committed in one timed run (after a warm-up of 1/8 of it).
const ENTRIES: usize = 32_768;
const GROUPS: usize = 10_000;

/// Either cluster, behind one interface.
trait Driver {
    fn new() -> Self;
    fn round(&mut self, payloads: Vec<Bytes>) -> u64;
}

impl Driver for zaft_cluster::Cluster {
    fn new() -> Self {
        zaft_cluster::Cluster::new(NODES)
    }
    fn round(&mut self, payloads: Vec<Bytes>) -> u64 {
        zaft_cluster::Cluster::round(self, payloads)
    }
}

impl Driver for raftrs::Cluster {
    fn new() -> Self {
        raftrs::Cluster::new(NODES)
    }
    fn round(&mut self, payloads: Vec<Bytes>) -> u64 {
        raftrs::Cluster::round(self, payloads)
    }
}

fn payloads(n: usize, seed: u8) -> Vec<Bytes> {
    zaft_cluster::payloads(n, SIZE, seed)
}

/// Entries per timed chunk: a run's rate is measured per chunk, and the
/// report gives the median chunk, so a preemption by another process on the
/// shared machine spoils one chunk rather than the whole run.
const CHUNK: usize = 4096;

/// Committed entries per second of each `CHUNK` of `ENTRIES` entries in
/// rounds of `n`, and the whole run's timed seconds. Only the rounds are
/// timed, not the making of the payloads.
fn run<D: Driver>(n: usize) -> (Vec<f64>, f64) {
    let mut c = D::new();
    for s in 0..(ENTRIES / 8 / n).max(1) {
        c.round(payloads(n, s as u8));
    }
    let mut rates = Vec::new();
    let mut total = Duration::ZERO;
    let mut timed = Duration::ZERO;
    let mut done = 0u64;
    for s in 0..ENTRIES / n {
        let batch = payloads(n, s as u8);
        let start = Instant::now();
        done += black_box(c.round(batch));
        timed += start.elapsed();
        if done as usize >= CHUNK {
            rates.push(done as f64 / timed.as_secs_f64());
            total += timed;
            (done, timed) = (0, Duration::ZERO);
        }
    }
    (rates, (total + timed).as_secs_f64())
}

/// Heap allocator calls (alloc + realloc) per committed entry, whole process,
/// payload creation included.
fn allocs<D: Driver>(n: usize) -> f64 {
    let mut c = D::new();
    for s in 0..(ENTRIES / 8 / n).max(1) {
        c.round(payloads(n, s as u8));
    }
    let rounds = ENTRIES / n;
    counting_alloc::enable(true);
    let t0 = counts();
    for s in 0..rounds {
        c.round(payloads(n, s as u8));
    }
    let mut calls = counts().since(t0).calls();
    counting_alloc::enable(false);
    if n == 1 {
        // The one-element vector that carries a lone payload to `round` is
        // the harness's, not the library's (a round of 1 is a plain propose).
        calls -= rounds as u64;
    }
    calls as f64 / (rounds * n) as f64
}

/// Rounds of `n` until `entries` have committed, rebuilding the cluster
/// (untimed) every `ENTRIES` entries as the timed runs do.
fn long_run<D: Driver>(n: usize, entries: usize) -> f64 {
    let mut c = D::new();
    let mut timed = Duration::ZERO;
    let (mut done, mut since) = (0usize, 0usize);
    while done < entries {
        if since >= ENTRIES {
            c = D::new();
            since = 0;
        }
        let batch = payloads(n, done as u8);
        let start = Instant::now();
        let k = black_box(c.round(batch)) as usize;
        timed += start.elapsed();
        done += k;
        since += k;
    }
    done as f64 / timed.as_secs_f64()
}

fn usage() -> ! {
    eprintln!(
        "usage: raft-rs-compare [--runs N]\n       \
         raft-rs-compare --only zaft|raft-rs ROUND ENTRIES   (one long run, for a profiler)"
    );
    std::process::exit(2)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else {
        format!("{:.0} k/s", r / 1e3)
    }
}

fn zaft_heartbeat(node: &mut zaft::Node) {
    use zaft::{Body, Index, Input, Message, NodeId, Term};
    let hb = Message {
        from: NodeId(2),
        to: NodeId(1),
        term: Term(1),
        body: Body::Heartbeat {
            commit: Index(0),
            round: 1,
        },
    };
    let mut ready = node.step(Input::Message(hb)).expect("step");
    loop {
        ready = node.advance(ready.id()).expect("advance");
        if ready.is_empty() {
            break;
        }
    }
}

/// `GROUPS` zaft followers of a 3-member group, each having heard one
/// heartbeat and ticked once (idle groups tick), and the bytes live per group.
fn idle_groups_zaft() -> (f64, Vec<zaft::Node>) {
    use zaft::{Config, Node, NodeId};
    counting_alloc::enable(true);
    let before = counts().live;
    let mut groups = Vec::with_capacity(GROUPS);
    for g in 0..GROUPS {
        let mut cfg = Config::new(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]);
        cfg.seed = g as u64;
        let mut node = Node::new(cfg, Default::default()).expect("config");
        zaft_heartbeat(&mut node);
        assert!(node.tick().is_none(), "an idle tick");
        groups.push(node);
    }
    let live = counts().live.wrapping_sub(before);
    counting_alloc::enable(false);
    (live as f64 / GROUPS as f64, groups)
}

fn raftrs_heartbeat(
    host: &mut raftrs::Host,
    net: &mut std::collections::VecDeque<raft::eraftpb::Message>,
) {
    use raft::eraftpb::{Message, MessageType};
    let mut hb = Message::default();
    hb.set_msg_type(MessageType::MsgHeartbeat);
    hb.from = 2;
    hb.to = 1;
    hb.term = 1;
    host.node.step(hb).expect("step");
    host.handle(net);
    net.clear();
}

/// The same for raft-rs (`RawNode` + `MemStorage`).
fn idle_groups_raftrs() -> (f64, Vec<raftrs::Host>) {
    use raft::{RawNode, storage::MemStorage};
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    counting_alloc::enable(true);
    let before = counts().live;
    let mut groups = Vec::with_capacity(GROUPS);
    let mut net = std::collections::VecDeque::new();
    for _ in 0..GROUPS {
        let store = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
        let node = RawNode::new(&raftrs::config(1), store, &logger).expect("config");
        let mut host = raftrs::Host {
            node,
            applied_index: 0,
            applied_entries: 0,
            applied_bytes: 0,
        };
        raftrs_heartbeat(&mut host, &mut net);
        assert!(!host.node.tick(), "an idle tick");
        groups.push(host);
    }
    drop(net);
    let live = counts().live.wrapping_sub(before);
    counting_alloc::enable(false);
    (live as f64 / GROUPS as f64, groups)
}

/// Median ns per idle tick over `GROUPS` groups: `rounds` passes of 5 ticks
/// each (below the election timeout of 10), the groups hearing a heartbeat
/// between passes (untimed).
fn tick_cost(rounds: usize, mut pass: impl FnMut(bool) -> Duration) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            pass(true);
            let t: Duration = (0..5).map(|_| pass(false)).sum();
            t.as_nanos() as f64 / (5 * GROUPS) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn idle_groups_report() {
    let (zmem, mut zaft_groups) = idle_groups_zaft();
    let (rmem, mut raft_groups) = idle_groups_raftrs();
    let mut net = std::collections::VecDeque::new();
    let mut zaft_ns = 0.0;
    let mut raft_ns = 0.0;
    // Interleaved, three times over, to share the machine's moods.
    for _ in 0..3 {
        zaft_ns += tick_cost(20, |heartbeat| {
            let start = Instant::now();
            for n in &mut zaft_groups {
                if heartbeat {
                    zaft_heartbeat(n);
                } else {
                    // As a host uses it: only a Ready that comes back is
                    // handled. (`black_box` on the `Option<Ready>` itself
                    // would time a 200-byte copy of `None` into memory.)
                    if let Some(r) = n.tick() {
                        let _ = black_box(r);
                    }
                }
            }
            start.elapsed()
        }) / 3.0;
        raft_ns += tick_cost(20, |heartbeat| {
            let start = Instant::now();
            for h in &mut raft_groups {
                if heartbeat {
                    raftrs_heartbeat(h, &mut net);
                } else {
                    black_box(h.node.tick());
                }
            }
            start.elapsed()
        }) / 3.0;
    }
    println!(
        "idle follower groups ({GROUPS} groups of 3 members, one heartbeat and one tick each):\n  \
         memory: zaft {zmem:.0} B/group, raft-rs (RawNode + MemStorage) {rmem:.0} B/group\n  \
         idle tick: zaft Node::tick {zaft_ns:.1} ns/group, raft-rs RawNode::tick {raft_ns:.1} ns/group"
    );
}

fn main() {
    counting_alloc::enable(false);
    let mut runs = 7usize;
    let mut only: Option<(String, usize, usize)> = None;
    let mut args = std::env::args().skip(1);
    let number = |v: Option<String>| -> usize {
        v.and_then(|v| v.parse().ok())
            .filter(|&r| r > 0)
            .unwrap_or_else(|| usage())
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = number(args.next()),
            "--only" => {
                let which = args.next().unwrap_or_else(|| usage());
                let round = number(args.next());
                let entries = number(args.next());
                only = Some((which, round, entries));
            }
            _ => usage(),
        }
    }
    if let Some((which, n, entries)) = only {
        // One long run of one library, for a profiler.
        let rate = match which.as_str() {
            "zaft" => long_run::<zaft_cluster::Cluster>(n, entries),
            "raft-rs" => long_run::<raftrs::Cluster>(n, entries),
            _ => usage(),
        };
        println!(
            "{which}: rounds of {n}, {entries} entries: {}",
            fmt_rate(rate)
        );
        return;
    }
    println!(
        "{NODES} nodes in one process, {SIZE}-byte entries, {runs} interleaved runs of \
         {ENTRIES} entries each, median over chunks of {CHUNK} entries"
    );
    println!(
        "{:>6}  {:>11} {:>11} {:>7}   {:>16} {:>16}",
        "round", "zaft", "raft-rs", "ratio", "zaft allocs/ent", "raft-rs allocs/ent"
    );
    for n in [1024usize, 64, 1] {
        let (mut z, mut r) = (Vec::new(), Vec::new());
        let (mut zt, mut rt) = (0.0, 0.0);
        let mut one = |zaft: bool| {
            let (rates, secs) = if zaft {
                run::<zaft_cluster::Cluster>(n)
            } else {
                run::<raftrs::Cluster>(n)
            };
            let (v, t) = if zaft {
                (&mut z, &mut zt)
            } else {
                (&mut r, &mut rt)
            };
            v.extend(rates);
            *t += secs;
        };
        for i in 0..runs {
            // Alternate which goes first, so neither always gets the warmer cache.
            one(i % 2 == 0);
            one(i % 2 != 0);
        }
        let (zm, rm) = (median(&mut z), median(&mut r));
        let za = allocs::<zaft_cluster::Cluster>(n);
        let ra = allocs::<raftrs::Cluster>(n);
        println!(
            "{:>6}  {:>11} {:>11} {:>6.2}x   {:>16.2} {:>16.2}",
            n,
            fmt_rate(zm),
            fmt_rate(rm),
            zm / rm,
            za,
            ra
        );
        let quartiles = |v: &[f64]| {
            let q = |p: usize| fmt_rate(v[(v.len() - 1) * p / 4]);
            format!("{}..{}", q(1), q(3))
        };
        println!(
            "        middle half of {} chunks: zaft {}, raft-rs {}",
            z.len(),
            quartiles(&z),
            quartiles(&r)
        );
        // Every entry over all the time, spikes included: the growth of the
        // in-memory logs (no compaction) and preemptions on a shared machine.
        let all = (runs * ENTRIES) as f64;
        println!(
            "        overall (total entries / total time): zaft {}, raft-rs {}, ratio {:.2}x",
            fmt_rate(all / zt),
            fmt_rate(all / rt),
            rt / zt
        );
    }
    idle_groups_report();
}
