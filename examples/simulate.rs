//! Soak the Raft core in the deterministic simulator.
//!
//! ```text
//! cargo run --release --features sim --example simulate -- --seeds 100000
//! cargo run --release --features sim --example simulate -- --seed 42      # replay one seed
//! ```
//!
//! Flags:
//!
//! - `--seeds N` runs seeds `first..first+N` (default 1000); `--first-seed S`
//!   sets `first` (default 0); `--seed S` runs the single seed `S` and prints
//!   what it did, with its last `--trace N` events even when it passed.
//! - `--keep-going` reports every failing seed instead of stopping at the first.
//! - Option flags, as printed in a failure's replay line: `--nodes 3..=5`,
//!   `--clients N`, `--keys N`, `--safety-ticks N`, `--liveness-ticks N`,
//!   `--convergence-ticks N`, `--faults loss,crashes,...|all|none` (the
//!   names: loss, duplication, reordering, delay-spikes, partitions, crashes,
//!   torn-writes, slow-fsync, clock-skew, fast-restarts, lease-partitions,
//!   drift-at-bound, stalls, amnesia), `--no-swarm`, `--log-reads`,
//!   `--drift-beyond-bound`, `--bug NAME@all|one` (only in a build with the
//!   injected bugs: `RUSTFLAGS="--cfg zaft_bugs" CARGO_TARGET_DIR=target/bugs
//!   cargo run ...`; any other build refuses it), `--trace N`,
//!   `--lin-budget N`, and node settings pinned for every seed:
//!   `--max-entries-bytes N`, `--max-inflight N`, `--pre-vote true|false`,
//!   `--check-quorum true|false`, `--lease-reads true|false`.
//!
//! A progress line goes to stderr every second; a summary closes the run.
//! The exit status is 1 if any seed failed.

use std::process::ExitCode;
use std::time::Instant;

use zaft::sim::{FaultCounts, Options, run, run_traced};

struct Args {
    first: u64,
    count: u64,
    single: bool,
    keep_going: bool,
    options: Options,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        first: 0,
        count: 1000,
        single: false,
        keep_going: false,
        options: Options::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let num = |v: Option<String>| -> Result<u64, String> {
            let v = v.ok_or(format!("{flag} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--seeds" => a.count = num(it.next())?,
            "--first-seed" => a.first = num(it.next())?,
            "--seed" => {
                a.first = num(it.next())?;
                a.count = 1;
                a.single = true;
            }
            "--keep-going" => a.keep_going = true,
            "--help" | "-h" => {
                return Err("see the doc comment of examples/simulate.rs for the flags".into());
            }
            _ if !Options::flag_takes_value(&flag) => {
                if !a.options.set_flag(&flag, None)? {
                    return Err(format!("unknown flag {flag}"));
                }
            }
            _ => {
                let value = it.next();
                if !a.options.set_flag(&flag, value.as_deref())? {
                    return Err(format!("unknown flag {flag}"));
                }
            }
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("simulate: {e}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let mut last_progress = Instant::now();
    let (mut events, mut seeds, mut violations) = (0u64, 0u64, 0u64);
    let mut faults = FaultCounts::default();
    let (mut ok, mut failed, mut unknown, mut undecided) = (0u64, 0u64, 0u64, 0u64);
    let mut still_recovering = 0u64;
    let mut worst_commit = (0u64, 0u64);
    let mut worst_leader = (0u64, 0u64);
    for seed in args.first..args.first.saturating_add(args.count) {
        seeds += 1;
        let (outcome, trace) = if args.single {
            run_traced(seed, &args.options)
        } else {
            (run(seed, &args.options), Vec::new())
        };
        match outcome {
            Ok(s) => {
                events += s.events;
                faults.add(&s.faults);
                ok += s.ops_ok;
                failed += s.ops_failed;
                unknown += s.ops_unknown;
                undecided += s.undecided_keys as u64;
                still_recovering += s.still_recovering as u64;
                worst_commit = worst_commit.max((s.ticks_to_commit, seed));
                worst_leader = worst_leader.max((s.ticks_to_leader, seed));
                if args.single {
                    println!("seed {seed}: passed\n{s:#?}");
                    println!("last {} events:", trace.len());
                    for line in &trace {
                        println!("  {line}");
                    }
                }
            }
            Err(f) => {
                violations += 1;
                println!("{f}");
                if !args.keep_going {
                    break;
                }
            }
        }
        if last_progress.elapsed().as_secs_f64() >= 1.0 {
            last_progress = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "seeds {seeds}/{}  events {events}  faults {}  violations {violations}  {:.0} events/s  {:.1} seeds/s",
                args.count,
                faults.total(),
                events as f64 / secs,
                seeds as f64 / secs,
            );
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    println!("== summary");
    println!(
        "seeds {seeds} (from {})   violations {violations}",
        args.first
    );
    println!(
        "events {events}   {:.0} events/s   {:.1} seeds/s   {secs:.1} s",
        events as f64 / secs,
        seeds as f64 / secs
    );
    println!(
        "faults injected {}: {} lost, {} duplicated, {} delayed, {} partitions ({} lease attacks), \
         {} crashes ({} torn, {} fast restarts, {} lost durable data), {} slow fsyncs, {} stalls",
        faults.total(),
        faults.lost,
        faults.duplicated,
        faults.delayed,
        faults.partitions,
        faults.lease_attacks,
        faults.crashes,
        faults.torn_writes,
        faults.fast_restarts,
        faults.data_losses,
        faults.slow_fsyncs,
        faults.stalls
    );
    println!(
        "membership changes: {} ({} joint), {} removed nodes shut down",
        faults.membership_changes, faults.joint_changes, faults.decommissioned
    );
    println!(
        "client ops: {ok} ok, {failed} failed, {unknown} unknown; linearizability undecided keys: {undecided}"
    );
    println!(
        "nodes that lost data and still recover at the end (no newer term committed): {still_recovering}"
    );
    println!(
        "liveness after healing: worst {} ticks to a new leader (seed {}), worst {} ticks to a committed write (seed {})",
        worst_leader.0, worst_leader.1, worst_commit.0, worst_commit.1
    );
    if violations > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
