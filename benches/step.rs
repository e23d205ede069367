//! The cost of one `step()` per kind of input, on one node of a 3-member
//! cluster whose peers are played by the bench; and, with 10,000 groups in one
//! process, the cost of a tick per idle follower group and the memory of an
//! idle follower group.
//!
//! ```sh
//! cargo bench --bench step             # all (~1 min), memory figure printed first
//! cargo bench --bench step -- follower # a subset
//! cargo bench --bench step --features tracing  # the events compiled in, no subscriber
//! ```
//!
//! Inputs are prepared untimed in chunks; a chunk is stepped back to back
//! (each Ready dropped, as a host would after handling it) and timed as a
//! whole, then the node is advanced past the chunk, untimed, the way a host
//! that fsyncs once per batch does. So the figures are `step()` alone: the
//! held acknowledgements, committed entries and follow-up Readies of
//! `advance()` are not in them (the throughput bench has the whole loop).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use zaft::{
    AppendResponse, Body, Config, Entry, EntryKind, Index, Input, LogId, Message, Node, NodeId,
    Ready, Term,
};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{CountingAlloc, counts};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const ME: NodeId = NodeId(1);
const PEER: NodeId = NodeId(2);
const OTHER: NodeId = NodeId(3);
const GROUPS: usize = 10_000;
/// Rebuild a node (untimed) past this many entries, to bound memory.
const MAX_LOG: u64 = 1 << 20;

fn config(id: NodeId) -> Config {
    Config::new(id, [ME, PEER, OTHER])
}

fn msg(from: NodeId, term: u64, body: Body) -> Message {
    Message {
        from,
        to: ME,
        term: Term(term),
        body,
    }
}

fn entry(index: u64, data: &Bytes) -> Entry {
    Entry {
        term: Term(1),
        index: Index(index),
        kind: EntryKind::Normal,
        data: data.clone(),
    }
}

/// Advances past `ready` and every follow-up, dropping what they carry.
fn settle(node: &mut Node, ready: Ready) {
    let mut id = ready.id();
    loop {
        let next = node.advance(id).expect("advance");
        if next.is_empty() {
            return;
        }
        id = next.id();
    }
}

fn step(node: &mut Node, input: Input) -> Ready {
    node.step(input).expect("step")
}

/// Steps every input of `chunk`, timed; then advances past them, untimed.
fn timed_chunk(node: &mut Node, chunk: Vec<Input>) -> Duration {
    let start = Instant::now();
    let mut last = None;
    for input in chunk {
        let ready = node.step(input).expect("step");
        last = Some(ready.id());
        drop(black_box(ready));
    }
    let elapsed = start.elapsed();
    if let Some(id) = last {
        let ready = node.advance(id).expect("advance");
        settle(node, ready);
    }
    elapsed
}

/// Node 1 as a follower of node 2 in term 1, with an empty log.
fn follower_with(cfg: Config) -> Node {
    let mut n = Node::new(cfg, Default::default()).expect("config");
    let hb = Body::Heartbeat {
        commit: Index(0),
        round: 1,
    };
    let r = step(&mut n, Input::Message(msg(PEER, 1, hb)));
    settle(&mut n, r);
    n
}

fn follower() -> Node {
    follower_with(config(ME))
}

/// Node 1 as the leader of term 1, both peers caught up (in the Replicate state).
fn leader() -> Node {
    let mut n = Node::new(config(ME), Default::default()).expect("config");
    let r = step(&mut n, Input::Campaign);
    settle(&mut n, r);
    let vote = Body::RequestVoteResponse { granted: true };
    let r = step(&mut n, Input::Message(msg(PEER, 1, vote)));
    settle(&mut n, r);
    assert!(n.is_leader());
    for p in [PEER, OTHER] {
        let ack = Body::AppendEntriesResponse(AppendResponse::Success {
            match_index: Index(1),
        });
        let r = step(&mut n, Input::Message(msg(p, 1, ack)));
        settle(&mut n, r);
    }
    n
}

/// AppendEntries at a follower, `per_msg` new entries each, in chunks of
/// `chunk` messages.
fn bench_append(c: &mut Criterion, name: &str, per_msg: u64, chunk: u64) {
    let data = Bytes::from(vec![7u8; 128]);
    let mut node = follower();
    let mut last = 0u64;
    let mut g = c.benchmark_group("step");
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                if last > MAX_LOG {
                    node = follower();
                    last = 0;
                }
                let k = left.min(chunk);
                left -= k;
                let inputs = (0..k)
                    .map(|_| {
                        let prev = LogId::new(Term(if last == 0 { 0 } else { 1 }), Index(last));
                        let entries = (last + 1..=last + per_msg)
                            .map(|i| entry(i, &data))
                            .collect();
                        let commit = Index(last.saturating_sub(per_msg));
                        last += per_msg;
                        let body = Body::AppendEntries {
                            prev,
                            entries,
                            commit,
                        };
                        Input::Message(msg(PEER, 1, body))
                    })
                    .collect();
                timed += timed_chunk(&mut node, inputs);
            }
            timed
        })
    });
    g.finish();
}

/// The same message over and over: its handling leaves the node as it was.
fn bench_repeat(c: &mut Criterion, name: &str, node: &mut Node, input: Input) {
    let mut g = c.benchmark_group("step");
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let k = left.min(1024);
                left -= k;
                let inputs = (0..k).map(|_| input.clone()).collect();
                timed += timed_chunk(node, inputs);
            }
            timed
        })
    });
    g.finish();
}

fn bench_request_vote(c: &mut Criterion) {
    let mut node = follower();
    let mut term = 1u64;
    let mut g = c.benchmark_group("step");
    g.throughput(Throughput::Elements(1));
    g.bench_function("follower/RequestVote (granted, new term)", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let k = left.min(256);
                left -= k;
                let inputs = (0..k)
                    .map(|_| {
                        term += 1;
                        let body = Body::RequestVote {
                            last_log: LogId::ZERO,
                            transfer: false,
                        };
                        Input::Message(msg(PEER, term, body))
                    })
                    .collect();
                timed += timed_chunk(&mut node, inputs);
            }
            timed
        })
    });
    g.finish();
}

/// AppendEntriesResponse at the leader. Each chunk: the leader's host
/// proposes 1024 entries (untimed), then peer 2 acknowledges them one index
/// at a time, then peer 3 does. With `commit` the acks of peer 2 are timed:
/// each moves the commit index by one (and so hands out a committed entry
/// and broadcasts the new commit index). Otherwise those of peer 3 are: each
/// only moves its match index.
fn bench_append_response(c: &mut Criterion, commit: bool) {
    const N: u64 = 1024;
    let data = Bytes::from(vec![7u8; 128]);
    let mut node = leader();
    let mut last = 1u64; // the noop
    let name = if commit {
        "leader/AppendEntriesResponse (commits 1)"
    } else {
        "leader/AppendEntriesResponse (no commit)"
    };
    let mut g = c.benchmark_group("step");
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                if last > MAX_LOG {
                    node = leader();
                    last = 1;
                }
                let batch = (0..N).map(|_| data.clone()).collect();
                let r = step(&mut node, Input::ProposeBatch(batch));
                settle(&mut node, r);
                let acks = |from: NodeId| -> Vec<Input> {
                    (last + 1..=last + N)
                        .map(|m| {
                            let ack = AppendResponse::Success {
                                match_index: Index(m),
                            };
                            Input::Message(msg(from, 1, Body::AppendEntriesResponse(ack)))
                        })
                        .collect()
                };
                let (first, second) = (acks(PEER), acks(OTHER));
                last += N;
                let k = left.min(N);
                left -= k;
                let t1 = timed_chunk(&mut node, first);
                let t2 = timed_chunk(&mut node, second);
                // Only `k` of the N acks count when this is the last chunk.
                let t = if commit { t1 } else { t2 };
                timed += t.mul_f64(k as f64 / N as f64);
            }
            timed
        })
    });
    g.finish();
}

fn per_kind(c: &mut Criterion) {
    bench_append(c, "follower/AppendEntries (1 entry)", 1, 1024);
    bench_append(c, "follower/AppendEntries (64 entries)", 64, 64);

    let mut f = follower();
    let hb = Body::Heartbeat {
        commit: Index(0),
        round: 2,
    };
    bench_repeat(
        c,
        "follower/Heartbeat",
        &mut f,
        Input::Message(msg(PEER, 1, hb)),
    );
    bench_request_vote(c);

    bench_append_response(c, true);
    bench_append_response(c, false);

    let mut l = leader();
    // One heartbeat round, so round 1 exists to be answered.
    let r = step(&mut l, Input::Tick);
    settle(&mut l, r);
    let hbr = Body::HeartbeatResponse { round: 1 };
    bench_repeat(
        c,
        "leader/HeartbeatResponse",
        &mut l,
        Input::Message(msg(PEER, 1, hbr)),
    );

    // A follower whose election timeout is far off, so every tick is idle.
    let mut cfg = config(ME);
    cfg.election_timeout_ticks_min = 1 << 30;
    cfg.election_timeout_ticks_max = 1 << 30;
    let mut f = follower_with(cfg);
    let mut g = c.benchmark_group("step");
    g.throughput(Throughput::Elements(1));
    g.bench_function("follower/Tick (idle)", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let k = left.min(1024);
                left -= k;
                timed += timed_chunk(&mut f, (0..k).map(|_| Input::Tick).collect());
                // Hear from the leader again (untimed).
                let hb = Body::Heartbeat {
                    commit: Index(0),
                    round: 1,
                };
                let r = step(&mut f, Input::Message(msg(PEER, 1, hb)));
                settle(&mut f, r);
            }
            timed
        })
    });
    g.finish();

    let mut l = leader();
    bench_repeat(
        c,
        "leader/Tick (idle, sends 2 heartbeats)",
        &mut l,
        Input::Tick,
    );

    // The other message kinds, each on a path that leaves the node as it
    // was, so the same message can be stepped again and again.
    let mut f = follower();
    bench_repeat(
        c,
        "follower/Commit (nothing new to apply)",
        &mut f,
        Input::Message(msg(PEER, 1, Body::Commit { commit: Index(0) })),
    );
    let mut f = follower();
    bench_repeat(
        c,
        "follower/ReadIndexResponse (handed to the host)",
        &mut f,
        Input::Message(msg(
            PEER,
            1,
            Body::ReadIndexResponse {
                ctx: 7,
                index: Some(Index(0)),
            },
        )),
    );
    let mut f = follower();
    bench_repeat(
        c,
        "follower/PreVote (refused: leader alive)",
        &mut f,
        Input::Message(msg(
            OTHER,
            2,
            Body::PreVote {
                last_log: LogId::ZERO,
            },
        )),
    );
    // No leader heard: the pre-vote is granted, and changes no term.
    let mut cfg = config(ME);
    cfg.pre_vote = true;
    let mut n = Node::new(cfg, Default::default()).expect("config");
    bench_repeat(
        c,
        "node/PreVote (granted)",
        &mut n,
        Input::Message(msg(
            OTHER,
            1,
            Body::PreVote {
                last_log: LogId::ZERO,
            },
        )),
    );
    let mut l = leader();
    bench_repeat(
        c,
        "leader/RequestVoteResponse (stale, dropped)",
        &mut l,
        Input::Message(msg(OTHER, 1, Body::RequestVoteResponse { granted: true })),
    );
    let mut l = leader();
    bench_repeat(
        c,
        "leader/PreVoteResponse (stale, dropped)",
        &mut l,
        Input::Message(msg(OTHER, 1, Body::PreVoteResponse { granted: false })),
    );
}

/// 10,000 followers of a 3-member group each (the multi-raft case).
fn idle_followers() -> Vec<Node> {
    let mut groups = Vec::with_capacity(GROUPS);
    for g in 0..GROUPS {
        let mut cfg = config(ME);
        cfg.seed = g as u64;
        groups.push(Node::new(cfg, Default::default()).expect("config"));
    }
    groups
}

fn heartbeat_all(groups: &mut [Node]) {
    for n in groups {
        let hb = Body::Heartbeat {
            commit: Index(0),
            round: 1,
        };
        let r = step(n, Input::Message(msg(PEER, 1, hb)));
        settle(n, r);
    }
}

/// Prints the memory of an idle follower group: bytes live after creating
/// 10,000 followers, stepping each one heartbeat and one tick (idle groups
/// tick), divided by 10,000.
fn idle_group_memory() {
    let before = counts();
    let mut groups = idle_followers();
    let created = counts();
    heartbeat_all(&mut groups);
    let heard = counts();
    for n in &mut groups {
        black_box(n.tick());
    }
    let after = counts();
    let per = |x: usize| x as f64 / GROUPS as f64;
    println!(
        "idle follower group memory ({GROUPS} groups, 3 members each): \
         {:.0} bytes/group after a heartbeat and a tick ({:.0} right after the heartbeat; \
         {:.0} after Node::new; size_of::<Node>() = {} of it inline; \
         {:.1} allocator calls/group to create)",
        per(after.live - before.live),
        per(heard.live - before.live),
        per(created.live - before.live),
        std::mem::size_of::<Node>(),
        created.since(before).calls() as f64 / GROUPS as f64,
    );
    black_box(&groups);
}

/// Times `tick` on every group, in passes below the minimum election
/// timeout (10 ticks) so that every tick is idle; between passes each group
/// hears its leader (untimed).
fn tick_all(all: &mut [Node], iters: u64, tick: impl Fn(&mut Node)) -> Duration {
    let mut timed = Duration::ZERO;
    for i in 0..iters {
        if i % 8 == 0 {
            heartbeat_all(all);
        }
        let start = Instant::now();
        for n in all.iter_mut() {
            tick(n);
        }
        timed += start.elapsed();
    }
    timed
}

fn groups(c: &mut Criterion) {
    let mut all = idle_followers();
    let mut g = c.benchmark_group("groups");
    g.throughput(Throughput::Elements(GROUPS as u64));
    g.bench_function("Node::tick, 10k idle followers", |b| {
        b.iter_custom(|iters| {
            // As a host uses it: only a Ready that comes back is handled.
            tick_all(&mut all, iters, |n| {
                if let Some(r) = n.tick() {
                    let _ = black_box(r);
                }
            })
        })
    });
    g.bench_function("step(Input::Tick), 10k idle followers", |b| {
        b.iter_custom(|iters| {
            tick_all(&mut all, iters, |n| {
                drop(black_box(n.step(Input::Tick).expect("tick")));
            })
        })
    });
    g.finish();
}

fn main() {
    idle_group_memory();
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    per_kind(&mut c);
    groups(&mut c);
    c.final_summary();
}
