//! Proof of power: every classic Raft bug of `zaft::sim::Bug`, injected into
//! the node, is caught by the simulator within a stated number of seeds, and
//! the check that catches it is recorded.
//!
//! The bugs are compiled into the protocol code only with the `zaft_bugs`
//! cfg, never in an ordinary build (`--all-features` included), so these
//! tests run only in a build that sets it, in a target directory of its own
//! (the main build's cache stays as it is):
//!
//! ```text
//! RUSTFLAGS="--cfg zaft_bugs" CARGO_TARGET_DIR=target/bugs cargo test --all-features --test bugs
//! ```
//!
//! With `-- --nocapture` it prints the table.
//! Each hunt runs seeds 0, 1, 2, ... with options aimed at the bug (the
//! faults and node settings that can expose it) until a run fails. For the
//! bugs a specific check exists for, the hunt also asserts that this check
//! is the one that fired.
//!
//! The last tests show the power of the lease faults on a correct node:
//! clocks drifting beyond the bound the lease allows, and a host that steps
//! what arrived during a stall before the ticks it missed, both give stale
//! lease reads that the linearizability check rejects.
#![cfg(zaft_bugs)]

use zaft::sim::{Bug, BugInjection, BugTarget, Check, FaultSwitches, Options, run};

/// How to hunt one bug.
struct Hunt {
    options: Options,
    /// The hunt fails if no seed below this exposes the bug.
    budget: u64,
    /// Why the simulator cannot expose this bug, for the few it cannot.
    unreachable: Option<&'static str>,
    /// The checks that may catch it (any, if empty).
    caught_by: &'static [Check],
}

/// Lease reads on every seed, a network fast enough for an election to fit
/// in a fraction of a tick, and the lease attack: the leader cut off while
/// one client reads at it and another writes through the rest.
fn lease_hunt(o: &mut Options, faults: &str) {
    o.nodes_min = 3;
    o.nodes_max = 5;
    o.pins.lease_reads = Some(true);
    o.pins.fast_network = Some(true);
    o.faults = FaultSwitches::parse(faults).unwrap();
    o.swarm = false;
}

fn options(bug: Bug, target: BugTarget) -> Options {
    let mut o = Options::default();
    o.bug = Some(BugInjection { bug, target });
    o.trace_events = 40;
    o
}

fn hunt(bug: Bug) -> Hunt {
    let mut o = options(bug, BugTarget::AllNodes);
    let mut budget = 300;
    let mut unreachable = None;
    let mut caught_by: &'static [Check] = &[];
    match bug {
        Bug::VoteNotPersisted => {
            // Crash between sending a vote (or counting one's own) and its
            // fsync; restart and vote again in the same term. Quickest on a
            // single node, which then wins the same term twice with different
            // logs. (With three nodes the same bug shows as two leaders in one
            // term, about once per thousand seeds: see the README.)
            o.nodes_min = 1;
            o.nodes_max = 1;
            o.faults = FaultSwitches::parse("crashes,slow-fsync").unwrap();
            budget = 600;
        }
        Bug::CommitEarlierTermByCount => {
            // Figure 8: a leader must count a replica of an old entry before
            // its own no-op reaches that replica, so one entry per message
            // and one message in flight; delay spikes hold the no-op back,
            // CheckQuorum and crashes make the short terms Figure 8 needs.
            o.nodes_min = 3;
            o.nodes_max = 3;
            o.pins.max_entries_bytes_per_msg = Some(1);
            o.pins.max_inflight_msgs = Some(1);
            o.pins.check_quorum = Some(true);
            o.pins.pre_vote = Some(false);
            o.faults = FaultSwitches::parse("crashes,partitions,delay-spikes,clock-skew").unwrap();
            o.swarm = false;
            budget = 2_500;
        }
        Bug::TruncateOnStaleAppend => {
            o.nodes_min = 3;
            o.nodes_max = 5;
            o.faults = FaultSwitches::parse("duplication,reordering").unwrap();
        }
        Bug::VoteForOlderLog => {
            o.nodes_min = 3;
            o.nodes_max = 5;
        }
        Bug::ApplyTwiceAfterRestart => {
            o.nodes_min = 3;
            o.nodes_max = 5;
            o.faults = FaultSwitches::parse("crashes").unwrap();
            o.swarm = false;
        }
        Bug::LeaderIgnoresHigherTerm => {
            // One node with the bug: as leader it never steps down, so it
            // never learns the new leader's log.
            o = options(bug, BugTarget::OneNode);
            o.nodes_min = 3;
            o.nodes_max = 5;
            o.faults = FaultSwitches::parse("partitions").unwrap();
            o.swarm = false;
        }
        Bug::LeaseFromMaxTimeout => {
            // The lease outlives the minimum election timeout: a new leader
            // elected between the two serves writes the old one's reads miss.
            lease_hunt(&mut o, "lease-partitions");
            budget = 100;
            caught_by = &[Check::Linearizability];
        }
        Bug::LeaseWithoutDriftMargin => {
            // Without the margin the lease ends exactly when followers that
            // tick faster (at the bound the margin allows) may vote again.
            lease_hunt(&mut o, "lease-partitions,drift-at-bound");
            budget = 100;
            caught_by = &[Check::Linearizability];
        }
        Bug::VoteRightAfterRestart => {
            // Followers that restart forget the leader they promised; the
            // lease attack restarts a majority and a pushy operator makes
            // one campaign at the first moment it may.
            lease_hunt(&mut o, "lease-partitions,fast-restarts");
            budget = 100;
            caught_by = &[Check::Linearizability];
        }
        Bug::CheckQuorumNeverStepsDown => {
            o.nodes_min = 3;
            o.nodes_max = 5;
            o.pins.check_quorum = Some(true);
            o.faults = FaultSwitches::parse("partitions").unwrap();
            o.swarm = false;
            budget = 50;
            caught_by = &[Check::CheckQuorum];
        }
        Bug::TermNotPersisted => {
            o.nodes_min = 3;
            o.nodes_max = 5;
            budget = 50;
            caught_by = &[Check::DurableTerm];
        }
        Bug::AmnesiacVotes => {
            // A node that lost acknowledged entries votes for a candidate
            // that lacks them.
            o.nodes_min = 3;
            o.nodes_max = 3;
            o.faults = FaultSwitches::parse("crashes,amnesia,partitions").unwrap();
            o.swarm = false;
            budget = 100;
            caught_by = &[
                Check::ElectionSafety,
                Check::LeaderCompleteness,
                Check::StateMachineSafety,
                Check::Linearizability,
                Check::Durability,
            ];
        }
        Bug::JointCountsOnlyIncoming => {
            // Joint replacements drawn often, partitions to split the old
            // voters from the new.
            o.nodes_min = 3;
            o.nodes_max = 5;
            o.faults =
                FaultSwitches::parse("membership,crashes,partitions,loss,reordering,delay-spikes")
                    .unwrap();
            budget = 300;
            caught_by = &[
                Check::CheckQuorum,
                Check::Commitment,
                Check::ElectionSafety,
                Check::LeaderCompleteness,
                Check::StateMachineSafety,
                Check::Linearizability,
                Check::Durability,
            ];
        }
        Bug::ChangeBeforeTermCommit | Bug::TwoChangesAtOnce => {
            o.nodes_min = 3;
            o.nodes_max = 3;
            o.faults = FaultSwitches::parse("membership,crashes,partitions").unwrap();
            budget = 300;
            unreachable = Some(
                "not reached by random runs within the budget: the split needs two \
                 changes in flight at once, or a new leader's change before its first entry, \
                 with a partition that separates exactly the two majorities; \
                 tests/membership.rs builds each scenario by hand (without_one_change_at_a_time_*, \
                 without_committing_its_term_first_*), caught by State Machine Safety",
            );
        }
        Bug::CommitBeyondVerified => {
            budget = 200;
            unreachable = Some(
                "zaft's leader never sends an AppendEntries whose entries stop short of a \
                 follower's divergent suffix while its commit index lies beyond them: fast \
                 backtracking lands each probe exactly on the first conflict, whose entry the \
                 probe carries, so the follower truncates before it could commit a stale entry",
            );
        }
        _ => {}
    }
    Hunt {
        options: o,
        budget,
        unreachable,
        caught_by,
    }
}

struct Found {
    seed: u64,
    check: Check,
    message: String,
}

#[test]
fn the_simulator_finds_every_reachable_injected_bug() {
    let mut rows = Vec::new();
    let mut missed = Vec::new();
    for bug in Bug::ALL {
        let h = hunt(bug);
        let found = (0..h.budget).find_map(|seed| {
            run(seed, &h.options).err().map(|f| Found {
                seed,
                check: f.check,
                message: f.message.lines().next().unwrap_or("").to_string(),
            })
        });
        if found.is_none() && h.unreachable.is_none() {
            missed.push(format!("{bug:?}"));
        }
        rows.push((bug, h, found));
    }
    println!();
    println!(
        "{:<26} {:>7} {:>13}  {:<30} first failure",
        "bug", "budget", "seeds needed", "check that fired"
    );
    for (bug, h, found) in &rows {
        match found {
            Some(f) => println!(
                "{:<26} {:>7} {:>13}  {:<30} {}",
                format!("{bug:?}"),
                h.budget,
                f.seed + 1,
                f.check.to_string(),
                f.message
            ),
            None => println!(
                "{:<26} {:>7} {:>13}  {:<30} {}",
                format!("{bug:?}"),
                h.budget,
                "not found",
                "-",
                h.unreachable.unwrap_or("")
            ),
        }
    }
    for (bug, h, found) in &rows {
        if let Some(f) = found {
            assert_ne!(
                f.check,
                Check::NodeError,
                "{bug:?} was only seen as a node error: {}",
                f.message
            );
            assert!(
                h.caught_by.is_empty() || h.caught_by.contains(&f.check),
                "{bug:?} was caught by {}, not by one of {:?}: {}",
                f.check,
                h.caught_by,
                f.message
            );
            // The options print as flags that replay the failure.
            assert!(!h.options.to_args().is_empty());
        }
    }
    assert!(
        missed.is_empty(),
        "the simulator missed {missed:?} within their budgets"
    );
}

#[test]
fn a_correct_node_passes_the_hunts() {
    // The same aimed options without the bug pass: what the hunts catch is
    // the bug, not the options.
    for bug in Bug::ALL {
        let mut o = hunt(bug).options;
        o.bug = None;
        for seed in 0..20 {
            if let Err(f) = run(seed, &o) {
                panic!("without {bug:?}: {f}");
            }
        }
    }
}

#[test]
fn a_failure_with_a_bug_replays_in_the_build_that_has_it() {
    let mut o = options(Bug::VoteForOlderLog, BugTarget::AllNodes);
    o.nodes_min = 3;
    o.nodes_max = 5;
    let failure = (0..200)
        .find_map(|seed| run(seed, &o).err())
        .expect("the injected bug is found");
    let text = failure.to_string();
    assert!(
        text.contains(&format!(
            "replay: RUSTFLAGS=\"--cfg zaft_bugs\" CARGO_TARGET_DIR=target/bugs \
             cargo run --release --features sim --example simulate -- --seed {} ",
            failure.seed
        )),
        "{text}"
    );
    assert!(text.contains("--bug VoteForOlderLog@all"), "{text}");
}

/// The first seed below `budget` that fails, with its check.
fn first_failure(o: &Options, budget: u64) -> Option<(u64, Check, String)> {
    (0..budget).find_map(|seed| {
        run(seed, o).err().map(|f| {
            (
                seed,
                f.check,
                f.message.lines().next().unwrap_or("").to_string(),
            )
        })
    })
}

#[test]
fn clocks_drifting_beyond_the_lease_bound_give_stale_reads() {
    // A correct node: the drift fault within the bound passes (the hunts
    // above, without their bug, and `tests/sim.rs`); twice beyond it, the
    // lease outlives the followers' promise.
    let mut o = options(Bug::VoteNotPersisted, BugTarget::AllNodes);
    o.bug = None;
    lease_hunt(&mut o, "lease-partitions,drift-at-bound");
    o.drift_beyond_bound = true;
    let found = first_failure(&o, 50);
    println!("drift beyond the bound: {found:?}");
    let (_, check, message) = found.expect("stale lease reads under drift beyond the bound");
    assert_eq!(check, Check::Linearizability, "{message}");
}

#[test]
fn a_host_that_steps_before_delivering_missed_ticks_gives_stale_reads() {
    // The mistake the docs of `Input::Ticks` warn against: after a stall,
    // the host steps a read that arrived meanwhile while the node's lease
    // clock still stands where the stall froze it.
    let mut o = options(Bug::VoteNotPersisted, BugTarget::AllNodes);
    o.bug = None;
    lease_hunt(&mut o, "stalls");
    o.ticks_after_backlog = true;
    let found = first_failure(&o, 50);
    println!("missed ticks delivered last: {found:?}");
    let (_, check, message) = found.expect("stale lease reads from a host that ticks late");
    assert_eq!(check, Check::Linearizability, "{message}");
    // The same runs with a host that follows the docs pass.
    o.ticks_after_backlog = false;
    for seed in 0..20 {
        if let Err(f) = run(seed, &o) {
            panic!("{f}");
        }
    }
}
