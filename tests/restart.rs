//! Crashes at every point of the run loop, for followers, candidates and
//! leaders, on a network that loses, duplicates and reorders messages; then
//! a healed network must converge. The points: Readies handed out but none
//! of their writes on disk; written but not synced, so that any prefix of
//! the writes survives (a torn write); synced but not acknowledged; and
//! acknowledged. Hosts also sync and acknowledge older Readies while newer
//! ones are written but not synced.
//!
//! What must hold whatever happens (the harness checks the first four on
//! every Ready; this file checks the rest at the end of each run):
//! - a node never grants its vote to two candidates in one term, even across
//!   a crash;
//! - there is never more than one leader in a term;
//! - no message promises what its sender's disk does not hold;
//! - a node's commit index is durable on a majority of disks;
//! - an entry handed to any state machine is never lost or changed: every
//!   node ends up applying exactly the same entries at the same indexes;
//! - every proposal whose index committed gets an outcome: committed with
//!   its id, or reported lost.
//!
//! Runs are seeded; a failure names its seed, and `RESTART_SEED=<seed>` runs
//! only that one. `RESTART_SEEDS=<count>` runs more seeds than the default.

mod common;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use common::*;
use zaft::{Index, Input, LogId, NodeId, Role};

/// A tiny deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick(&mut self, from: &[u64]) -> Option<u64> {
        (!from.is_empty()).then(|| from[self.below(from.len())])
    }
}

/// Where in the run loop a crash struck.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Point {
    /// Readies were handed out and their writes lost: none reached the disk.
    BeforePersist,
    /// Written but not synced: some of the writes reached the disk.
    TornWrite,
    /// Everything was synced but the last Ready not yet acknowledged.
    BeforeAdvance,
    /// Everything was synced and acknowledged.
    AfterAdvance,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    /// Deliver one message in flight, chosen at random (so: reordered).
    Deliver,
    Drop,
    Duplicate,
    Tick,
    /// Propose at a leader, if there is one.
    Propose,
    /// A host makes its writes durable.
    Sync,
    /// A host syncs and acknowledges its newest Ready.
    Advance,
    /// A host makes only its oldest Readies durable and acknowledges the
    /// last of those, while later ones are written but not synced.
    AdvanceSome,
    Crash,
    Restart,
    Campaign,
    /// A node (leader or not) is asked to hand leadership to a random node.
    TransferLeader,
    /// A node is asked for a linearizable read.
    ReadIndex,
    Isolate,
    Heal,
}

/// What the runs exercised, so that a run that does nothing fails.
#[derive(Default, Debug)]
struct Coverage {
    runs: u64,
    crashes: BTreeMap<(&'static str, Point), u32>,
    /// Entries applied and terms with a leader, over all runs.
    applied: u64,
    leaders: u64,
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Leader => "leader",
        Role::Candidate => "candidate",
        Role::Follower => "follower",
        _ => "other",
    }
}

/// The proposals a node accepted since it last (re)started, by host.
struct Proposals {
    since_restart: Vec<usize>,
}

fn crash(c: &mut Cluster, rng: &mut Rng, id: u64, cov: &mut Coverage, props: &mut Proposals) {
    let h = c.host(id);
    // Either nothing unsynced reaches the disk, or a torn write: any prefix
    // of the unsynced writes, the last perhaps cut inside its entries.
    let unsynced = c.unsynced_writes(id);
    let torn = unsynced > 0 && rng.below(3) > 0;
    let (writes, entries) = if torn {
        (rng.below(unsynced + 1), Some(rng.below(4)))
    } else {
        (0, None)
    };
    let point = if torn {
        Point::TornWrite
    } else if h.has_unsynced() {
        Point::BeforePersist
    } else if h.has_unadvanced() {
        Point::BeforeAdvance
    } else {
        Point::AfterAdvance
    };
    *cov.crashes
        .entry((role_name(c.role(id)), point))
        .or_default() += 1;
    c.crash_keeping(id, writes, entries);
    props.since_restart[id as usize - 1] = c.host(id).proposed.len();
}

/// One run: `steps` random actions with faults, then a healed network on
/// which the cluster must converge.
fn run(seed: u64, n: u64, steps: usize, cov: &mut Coverage) {
    let mut rng = Rng::new(seed);
    let max_bytes = [1, 64, 1 << 20][rng.below(3)];
    let (pre_vote, check_quorum) = (rng.below(2) == 0, rng.below(2) == 0);
    let mut c = Cluster::with_config(n, |cfg| {
        cfg.pre_vote = pre_vote;
        cfg.check_quorum = check_quorum;
        cfg.seed = seed;
        cfg.election_timeout_ticks_min = 4;
        cfg.election_timeout_ticks_max = 8;
        cfg.max_entries_bytes_per_msg = max_bytes;
        cfg.max_inflight_msgs = 4;
        cfg.forward_proposals = false;
    });
    let mut props = Proposals {
        since_restart: vec![0; n as usize],
    };
    for id in 1..=n {
        c.hold(id);
    }
    // Each run draws its own mix of faults, from gentle to harsh.
    let weights = [
        (Action::Deliver, 30),
        (Action::Drop, 1 + rng.below(4)),
        (Action::Duplicate, 1 + rng.below(3)),
        (Action::Tick, 15),
        (Action::Propose, 12),
        (Action::Sync, 2 + rng.below(8)),
        (Action::Advance, 3 + rng.below(14)),
        (Action::AdvanceSome, 1 + rng.below(6)),
        (Action::Crash, 1 + rng.below(3)),
        (Action::Restart, 3),
        (Action::Campaign, 1),
        (Action::TransferLeader, rng.below(2)),
        (Action::ReadIndex, rng.below(3)),
        (Action::Isolate, rng.below(2)),
        (Action::Heal, 1),
    ];
    let total: usize = weights.iter().map(|w| w.1).sum();
    let mut next_cmd = 0u64;
    for _ in 0..steps {
        let up = c.running();
        let down: Vec<u64> = (1..=n).filter(|id| !up.contains(id)).collect();
        let mut roll = rng.below(total);
        let action = weights
            .iter()
            .find(|w| {
                if roll < w.1 {
                    true
                } else {
                    roll -= w.1;
                    false
                }
            })
            .map_or(Action::Heal, |w| w.0);
        match action {
            Action::Deliver if !c.net.is_empty() => {
                let m = c.net.remove(rng.below(c.net.len()));
                c.deliver(m);
            }
            Action::Drop if !c.net.is_empty() => {
                c.net.remove(rng.below(c.net.len()));
            }
            Action::Duplicate if !c.net.is_empty() => {
                let m = c.net[rng.below(c.net.len())].clone();
                c.net.push(m);
            }
            Action::Tick => {
                if let Some(id) = rng.pick(&up) {
                    c.tick(id);
                }
            }
            Action::Propose => {
                let leaders: Vec<u64> = up
                    .iter()
                    .copied()
                    .filter(|&id| c.node(id).is_leader())
                    .collect();
                if let Some(id) = rng.pick(&leaders) {
                    next_cmd += 1;
                    // Refused while a leadership transfer runs.
                    let _ = c.try_propose(id, format!("cmd{next_cmd}"));
                }
            }
            Action::Sync => {
                if let Some(id) = rng.pick(&up) {
                    c.sync(id);
                }
            }
            Action::Advance => {
                if let Some(id) = rng.pick(&up) {
                    c.advance(id);
                }
            }
            Action::AdvanceSome => {
                if let Some(id) = rng.pick(&up) {
                    let pending = c.host(id).unadvanced();
                    if pending > 0 {
                        c.advance_some(id, 1 + rng.below(pending));
                    }
                }
            }
            // Keep a majority running most of the time, so that the cluster
            // makes progress between crashes.
            Action::Crash if up.len() as u64 > n / 2 + 1 || rng.below(4) == 0 => {
                if let Some(id) = rng.pick(&up) {
                    crash(&mut c, &mut rng, id, cov, &mut props);
                }
            }
            Action::Restart => {
                if let Some(id) = rng.pick(&down) {
                    c.restart(id);
                }
            }
            Action::Campaign => {
                if let Some(id) = rng.pick(&up) {
                    // Refused (Busy) while a CheckQuorum node hears a leader
                    // or has just restarted.
                    // The operator's way to move leadership then is a
                    // transfer at the leader.
                    match c.try_step(id, Input::Campaign) {
                        Ok(()) | Err(zaft::Error::Busy(_)) => {}
                        Err(e) => panic!("node {id}: {e}"),
                    }
                    if let Some(l) = c.leader()
                        && l != id
                        && c.node(id).role() == zaft::Role::Follower
                    {
                        let _ = c.try_step(l, Input::TransferLeader(NodeId(id)));
                    }
                }
            }
            Action::TransferLeader => {
                if let Some(id) = rng.pick(&up) {
                    let to = NodeId(1 + rng.below(n as usize) as u64);
                    // Refused unless `id` leads and `to` is another voter.
                    let _ = c.try_step(id, Input::TransferLeader(to));
                }
            }
            Action::ReadIndex => {
                if let Some(id) = rng.pick(&up) {
                    let _ = c.try_step(id, Input::ReadIndex(rng.next()));
                }
            }
            Action::Isolate => {
                if let Some(id) = rng.pick(&up) {
                    c.isolate(id);
                }
            }
            Action::Heal => c.heal(),
            _ => {}
        }
    }

    // Liveness: heal everything and run the loop properly; the cluster must
    // elect a leader and commit a new command on every node.
    c.heal();
    for id in 1..=n {
        if !c.host(id).is_up() {
            c.restart(id);
        }
        c.release(id);
    }
    c.stabilize();
    for _ in 0..400 {
        c.tick_all();
        c.stabilize();
        if (1..=n).all(|id| c.has_applied(id, "final")) {
            break;
        }
        // Propose once the leader has caught up with its term, and again if
        // a change of leader lost the proposal.
        if let Some(l) = c.leader()
            && c.node(l).status().commit.get() > 0
            && c.host(l).applied_index() == c.node(l).status().commit
            && !c.host(l).log.iter().any(|e| e.data == "final")
        {
            let _ = c.try_propose(l, "final");
        }
    }
    assert!(
        (1..=n).all(|id| c.has_applied(id, "final")),
        "no progress on a healed network: {:?}",
        (1..=n).map(|id| c.node(id).status()).collect::<Vec<_>>()
    );

    cov.runs += 1;
    cov.applied += c.committed.len() as u64;
    cov.leaders += c.leaders.len() as u64;

    // Nothing handed to a state machine was lost or changed. (A last
    // election may still be spreading its commit index: let it settle.)
    for _ in 0..50 {
        let len = c.host(1).applied.len();
        if (2..=n).all(|id| c.host(id).applied.len() == len) {
            break;
        }
        c.tick_and_stabilize(1);
    }
    c.assert_applied_equal();
    let everything: Vec<_> = c.committed.values().cloned().collect();
    for id in 1..=n {
        assert_eq!(c.host(id).applied, everything, "node {id}");
    }

    // Every proposal accepted since the proposer's last restart and whose
    // index committed has an outcome.
    let commit = c.node(1).status().commit;
    for id in 1..=n {
        let h = c.host(id);
        let outcome = |p: LogId| {
            let committed = h.applied.get(p.index.get() as usize - 1).map(|e| e.id()) == Some(p);
            let lost = h.lost.contains(&p);
            assert!(
                !(committed && lost),
                "node {id}: {p:?} both committed and lost"
            );
            committed || lost
        };
        let mut unresolved = 0;
        for p in &h.proposed[props.since_restart[id as usize - 1]..] {
            for pid in p.ids() {
                if pid.index <= commit {
                    assert!(outcome(pid), "node {id}: proposal {pid:?} has no outcome");
                } else {
                    unresolved += 1;
                }
            }
        }
        assert!(c.node(id).pending_proposals() <= unresolved, "node {id}");
    }
}

fn run_many(n: u64, seeds: std::ops::Range<u64>, steps: usize) -> Coverage {
    let only: Option<u64> = std::env::var("RESTART_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    // RESTART_SEEDS=<count> runs more (or fewer) seeds than the default.
    let count = std::env::var("RESTART_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(seeds.end - seeds.start);
    let mut cov = Coverage::default();
    for seed in seeds.start..seeds.start + count {
        if only.is_some_and(|o| o != seed) {
            continue;
        }
        let r = catch_unwind(AssertUnwindSafe(|| run(seed, n, steps, &mut cov)));
        if let Err(e) = r {
            eprintln!("FAILED: {n} nodes, seed {seed} (rerun with RESTART_SEED={seed})");
            resume_unwind(e);
        }
    }
    cov
}

fn assert_covers_every_crash_point(cov: &Coverage) {
    if std::env::var("RESTART_SEED").is_ok() {
        return;
    }
    assert!(
        cov.applied >= 20 * cov.runs,
        "little was committed: {cov:?}"
    );
    assert!(cov.leaders >= 3 * cov.runs, "few elections: {cov:?}");
    for role in ["follower", "candidate", "leader"] {
        for point in [
            Point::BeforePersist,
            Point::TornWrite,
            Point::BeforeAdvance,
            Point::AfterAdvance,
        ] {
            let hits = cov.crashes.get(&(role, point)).copied().unwrap_or(0);
            assert!(
                hits >= 20,
                "only {hits} crashes of a {role} at {point:?}: {cov:?}"
            );
        }
    }
}

/// Three nodes, crashes at every point of the loop with torn writes, message
/// loss, duplication and reordering, partitions: safety throughout, then
/// convergence.
#[test]
fn three_nodes_survive_crashes_at_every_point_of_the_loop() {
    let cov = run_many(3, 0..2000, 1500);
    assert_covers_every_crash_point(&cov);
}

/// The same with five nodes, where two may be down at once.
#[test]
fn five_nodes_survive_crashes_at_every_point_of_the_loop() {
    // Answers in a new term wait for its fsync, so five held hosts need more
    // steps than three for the same coverage.
    let cov = run_many(5, 1000..2000, 2500);
    assert_covers_every_crash_point(&cov);
}

// ---- the same points, one story each ---------------------------------------------

/// A vote that never reached the disk was never sent either, so after the
/// crash the node may vote again in that term, and only once.
#[test]
fn follower_that_crashes_before_persisting_its_vote_votes_once() {
    let mut c = Cluster::new(3);
    c.hold(1);
    c.deliver(request_vote(2, 1, 1, LogId::ZERO));
    assert_eq!(c.count_sent(is_vote_grant), 0);
    c.crash(1);
    c.restart(1);
    c.release(1);
    c.deliver(request_vote(3, 1, 1, LogId::ZERO));
    c.deliver(request_vote(2, 1, 1, LogId::ZERO));
    let grants: Vec<u64> = c
        .sent
        .iter()
        .filter(|m| is_vote_grant(m))
        .map(|m| m.to.get())
        .collect();
    assert_eq!(grants, [3]);
}

/// A vote persisted but not yet acknowledged by `advance` is kept across the
/// crash: the node does not vote for another candidate in that term.
#[test]
fn follower_that_crashes_after_persisting_its_vote_keeps_it() {
    let mut c = Cluster::new(3);
    c.hold(1);
    c.deliver(request_vote(2, 1, 1, LogId::ZERO));
    c.sync(1);
    c.crash(1);
    c.restart(1);
    c.release(1);
    c.deliver(request_vote(3, 1, 1, LogId::ZERO));
    c.deliver(request_vote(2, 1, 1, LogId::ZERO));
    let answers: Vec<(u64, bool)> = c
        .sent
        .iter()
        .filter_map(|m| Some((m.to.get(), vote_answer(m)?)))
        .collect();
    assert_eq!(answers, [(3, false), (2, true)]);
}

/// A candidate whose own vote was lost in a crash must not become leader of
/// that term on the strength of votes it can no longer account for.
#[test]
fn candidate_that_crashes_before_persisting_its_vote_does_not_lead_that_term() {
    let mut c = Cluster::new(3);
    c.hold(1);
    c.campaign(1);
    c.crash(1);
    c.stabilize(); // its requests waited for its term to be durable: none left
    c.restart(1);
    assert_eq!(c.term(1), 0);
    assert_eq!(c.role(1), Role::Follower);
    c.release(1);
    c.elect(1);
    assert_eq!(c.term(1), 1, "its campaign of term 1 starts afresh");
}

/// §5.4.1 across a crash: a candidate asks for votes before its log is on
/// disk, crashes, loses the tail of its log, and campaigns again in the
/// same term. A vote granted to its first request (whose log held entries
/// committed by others) must not elect it now that its log lacks them.
#[test]
fn candidate_that_lost_its_log_tail_cannot_win_with_votes_for_the_longer_log() {
    let mut c = Cluster::new(3);
    c.elect(2);
    c.tick_and_stabilize(1);
    // Node 1 receives x and y but does not sync them; node 3 does, so they
    // commit, and node 3 applies them.
    c.hold(1);
    c.propose(2, "x");
    c.propose(2, "y");
    c.stabilize();
    c.tick(2);
    c.stabilize();
    assert!(c.has_applied(3, "y"));
    assert_eq!(c.host(1).store.entries.len(), 1, "node 1 synced nothing");
    c.crash(2);

    // Node 1 campaigns with x and y in memory only, then crashes.
    c.campaign(1);
    c.deliver_to(3);
    let grants: Vec<_> = c.take_where(|m| m.to == nid(1));
    c.crash(1);
    c.restart(1);
    c.release(1);
    assert_eq!(c.host(1).log.len(), 1, "x and y are gone");

    // It campaigns again in the same term, and the old answers arrive.
    c.campaign(1);
    for m in grants {
        c.deliver(m);
    }
    c.stabilize();
    assert!(
        !c.node(1).is_leader(),
        "node 1 leads term {} without the committed entries x and y",
        c.term(1)
    );
}

/// A leader that crashes before its own write is durable loses only entries
/// that were never committed; what a majority stored survives it.
#[test]
fn leader_that_crashes_before_persisting_loses_nothing_committed() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.hold(1);
    let p = c.propose(1, "x");
    c.deliver_to(2);
    c.deliver_to(3);
    c.crash(1);
    assert!(c.host(1).store.entries.len() < p.last.get() as usize);
    c.drop_all();
    let leader = c.run_until_leader(100);
    assert_ne!(leader, 1);
    c.restart(1);
    c.release(1);
    c.tick_and_stabilize(3);
    for id in 1..=3 {
        assert!(c.has_applied(id, "x"), "node {id}");
    }
    c.assert_applied_equal();
}

/// A follower that persisted entries but crashed before acknowledging them
/// is caught up after the restart and acknowledges then.
#[test]
fn follower_that_crashes_before_advance_is_caught_up_after_restart() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.hold(2);
    let p = c.propose(1, "x");
    c.stabilize();
    c.sync(2);
    c.crash(2);
    assert!(c.node(1).status().commit < p.last);
    c.restart(2);
    c.release(2);
    c.tick_and_stabilize(2);
    assert_eq!(c.node(1).status().commit, p.last);
    assert!(c.has_applied(2, "x"));
    assert_eq!(c.node(2).status().persisted, Index(p.last.get()));
}

/// The hard state and the entries of one Ready may reach the disk separately
/// (two files, one fsync): a crash can keep the hard state and lose the
/// entries. The commit index a restart then trusts must not cover an older
/// entry still on disk at that index.
#[test]
fn hard_state_outliving_its_entries_never_commits_the_old_entry() {
    use zaft::{Config, Node, Restored};
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    let old = log_of(&[1, 1]);
    let mut node = Node::new(Config::new(NodeId(2), voters), restored(1, old.clone())).unwrap();
    // The leader of term 2 overwrites index 2 and says index 2 is committed.
    let ready = node
        .step(Input::Message(append(
            1,
            2,
            2,
            lid(1, 1),
            vec![ent(2, 2)],
            2,
        )))
        .unwrap();
    let hs = *ready.hard_state().expect("the term changed");
    assert_eq!(ready.entries().to_vec(), vec![ent(2, 2)]);
    assert!(
        hs.commit <= Index(1),
        "the hard state claims {:?} committed before entry 2@2 is durable",
        hs.commit
    );
    // Power cut: the hard state made it, the entries did not.
    let disk = Restored {
        hard_state: hs,
        entries: old,
        applied: Index(0),
        lost_data: false,
        conf_state: None,
    };
    let mut restarted = Node::new(Config::new(NodeId(2), voters), disk).unwrap();
    let after_restart = restarted.step(Input::Tick).unwrap();
    assert!(
        after_restart
            .committed()
            .iter()
            .all(|e| e.id() != lid(1, 2)),
        "the overwritten entry 1@2 was handed out as committed"
    );
    // Without the crash, the hard state's commit catches up once the entry
    // is durable.
    let follow_up = node.advance(ready.id()).unwrap();
    assert_eq!(follow_up.hard_state().map(|h| h.commit), Some(Index(2)));
    assert_eq!(
        follow_up.committed().last().map(|e| e.id()),
        Some(lid(2, 2))
    );
}
