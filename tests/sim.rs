//! The deterministic simulator over a few hundred seeds: safety under faults,
//! then liveness on a healed network (see `zaft::sim`). A failure prints its
//! seed and the command that replays it.
//!
//! The long soak is `cargo run --release --features sim --example simulate --
//! --seeds 100000`.

use zaft::sim::{Check, FaultSwitches, Options, run};

fn pass(options: &Options, seeds: std::ops::Range<u64>) -> u64 {
    let mut events = 0;
    for seed in seeds {
        match run(seed, options) {
            Ok(stats) => events += stats.events,
            Err(failure) => panic!("{failure}"),
        }
    }
    events
}

#[test]
fn swarm_runs_of_one_to_nine_nodes_keep_every_safety_and_liveness_property() {
    let events = pass(&Options::default(), 0..600);
    assert!(events > 600 * 1_000, "runs did little: {events} events");
}

#[test]
fn three_and_five_nodes_with_every_fault_at_once_keep_every_property() {
    let mut o = Options::default();
    o.nodes_min = 3;
    o.nodes_max = 5;
    o.swarm = false;
    pass(&o, 1_000..1_200);
}

#[test]
fn crash_heavy_runs_without_network_faults_keep_every_property() {
    let mut o = Options::default();
    o.nodes_min = 2;
    o.nodes_max = 5;
    o.faults = FaultSwitches::parse("crashes,torn-writes,slow-fsync").unwrap();
    o.swarm = false;
    pass(&o, 2_000..2_100);
}

#[test]
fn lease_attacks_stalls_fast_restarts_and_drift_at_the_bound_keep_every_property() {
    // Every seed reads through leases and draws the lease faults; half of
    // them on a network fast enough for an election within a tick.
    let mut o = Options::default();
    o.nodes_min = 3;
    o.nodes_max = 5;
    o.pins.lease_reads = Some(true);
    o.faults =
        FaultSwitches::parse("lease-partitions,fast-restarts,drift-at-bound,stalls,partitions")
            .unwrap();
    let mut attacks = 0;
    let mut stalls = 0;
    for seed in 3_000..3_100 {
        let stats = run(seed, &o).unwrap_or_else(|f| panic!("{f}"));
        attacks += stats.faults.lease_attacks;
        stalls += stats.faults.stalls;
    }
    assert!(
        attacks > 100 && stalls > 100,
        "{attacks} attacks, {stalls} stalls"
    );
}

#[test]
fn nodes_that_lose_data_rejoin_safely_and_catch_up() {
    let mut o = Options::default();
    o.nodes_min = 3;
    o.nodes_max = 5;
    o.faults = FaultSwitches::parse("crashes,amnesia,partitions,loss,reordering").unwrap();
    o.swarm = false;
    let mut losses = 0;
    for seed in 4_000..4_100 {
        let stats = run(seed, &o).unwrap_or_else(|f| panic!("{f}"));
        losses += stats.faults.data_losses;
    }
    assert!(losses > 100, "only {losses} data losses");
}

/// Membership changes (learners added and promoted, voters removed, the
/// leader included, joint replacements) under every other fault but lying
/// storage: every safety check, the configuration-aware ones included, and
/// liveness once healed.
#[test]
fn membership_changes_under_every_fault_keep_every_property() {
    let mut o = Options::default();
    o.faults.membership = true;
    let (mut changes, mut joint, mut removed) = (0, 0, 0);
    for seed in 6_000..6_200 {
        let stats = run(seed, &o).unwrap_or_else(|f| panic!("{f}"));
        changes += stats.faults.membership_changes;
        joint += stats.faults.joint_changes;
        removed += stats.faults.decommissioned;
    }
    assert!(
        changes > 100 && joint > 10 && removed > 30,
        "{changes} changes, {joint} joint, {removed} removed"
    );
}

#[test]
fn a_seed_replays_exactly() {
    let mut o = Options::default();
    o.safety_ticks = 200;
    for seed in [3, 77] {
        let a = run(seed, &o).unwrap_or_else(|f| panic!("{f}"));
        let b = run(seed, &o).unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(a, b, "seed {seed} ran differently twice");
    }
    let a = run(5, &o).unwrap();
    let b = run(6, &o).unwrap();
    assert_ne!(a, b, "different seeds should run differently");
}

#[test]
fn a_failure_reports_its_seed_the_replay_command_and_a_trace() {
    // A correct node run outside its contract: a host that steps what
    // arrived during a stall before the ticks it missed (see tests/bugs.rs).
    let mut o = Options::default();
    o.nodes_min = 3;
    o.nodes_max = 5;
    o.pins.lease_reads = Some(true);
    o.pins.fast_network = Some(true);
    o.faults = FaultSwitches::parse("lease-partitions,stalls").unwrap();
    o.swarm = false;
    o.ticks_after_backlog = true;
    let failure = (0..200)
        .find_map(|seed| run(seed, &o).err())
        .expect("the host's mistake is found");
    let text = failure.to_string();
    let seed = failure.seed;
    assert!(text.contains(&format!("(seed {seed})")), "{text}");
    assert!(
        text.contains(&format!(
            "replay: cargo run --release --features sim --example simulate -- --seed {seed} "
        )),
        "{text}"
    );
    assert!(text.contains("--ticks-after-backlog"), "{text}");
    assert!(failure.trace.len() > 10, "{text}");
    assert_ne!(failure.check, Check::NodeError, "{text}");
    // The seed replays to the same failure.
    let again = run(seed, &o).unwrap_err();
    assert_eq!(
        (again.check, again.message, again.at_us),
        (failure.check, failure.message, failure.at_us)
    );
}

/// The protocol code of an ordinary build (`--all-features` included) has
/// no injected bugs: a run that asks for one is refused, never run without
/// it. The hunts build them in with `--cfg zaft_bugs` (see tests/bugs.rs).
#[cfg(not(zaft_bugs))]
#[test]
fn a_bug_asked_of_a_build_without_the_injected_bugs_is_refused() {
    use zaft::sim::{Bug, BugInjection, BugTarget};
    let mut o = Options::default();
    let err = o
        .set_flag("--bug", Some("VoteForOlderLog@all"))
        .unwrap_err();
    assert!(err.contains("RUSTFLAGS=\"--cfg zaft_bugs\""), "{err}");
    assert_eq!(o.bug, None);
    o.bug = Some(BugInjection {
        bug: Bug::VoteForOlderLog,
        target: BugTarget::AllNodes,
    });
    let panic = std::panic::catch_unwind(|| run(0, &o)).expect_err("refused");
    let what = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(what.contains("RUSTFLAGS=\"--cfg zaft_bugs\""), "{what}");
}
