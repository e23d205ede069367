//! Heap allocations per committed entry in steady state: a 3-node cluster run
//! by the documented loop (see `support/cluster.rs`), 128-byte entries,
//! rounds of 1024, 64 and 1 proposals. The whole process is counted — the
//! three nodes, their hosts' storage and network queue, and each payload's own
//! allocation (every payload is a fresh `Bytes::from(vec)`).
//!
//! ```sh
//! cargo bench --bench allocs
//! ```
//!
//! Besides the totals it prints where the allocations happen: for each kind
//! of input, how many arrive per committed entry, and how many allocator
//! calls `step` makes for one of them and how many the handling of its Ready
//! makes (persist, send, apply and `advance`, with its follow-ups).

use std::collections::BTreeMap;

use bytes::Bytes;
use zaft::{Body, Input, Message, Role};

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use cluster::{Cluster, payloads};
use counting_alloc::{CountingAlloc, Counts, counts};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const SIZE: usize = 128;
/// Entries committed in the counted part of each configuration.
const ENTRIES: usize = 65_536;

#[derive(Default)]
struct Row {
    inputs: u64,
    step: u64,
    handle: u64,
}

/// Labels are static so that counting allocates nothing in the counted part.
type Table = BTreeMap<&'static str, Row>;

fn label_of(leader: bool, m: &Message) -> &'static str {
    match (leader, &m.body) {
        (false, Body::AppendEntries { entries, .. }) if entries.is_empty() => {
            "follower  AppendEntries (empty: new commit)"
        }
        (false, Body::AppendEntries { .. }) => "follower  AppendEntries (with entries)",
        (false, Body::Heartbeat { .. }) => "follower  Heartbeat",
        (true, Body::AppendEntriesResponse(_)) => "leader    AppendEntriesResponse",
        (true, Body::HeartbeatResponse { .. }) => "leader    HeartbeatResponse",
        (true, _) => "leader    other message",
        (false, _) => "follower  other message",
    }
}

/// Steps `input` at host `i` and handles its Ready, counting both.
fn counted(c: &mut Cluster, i: usize, input: Input, label: &'static str, table: &mut Table) {
    let h = &mut c.hosts[i];
    let t0 = counts();
    let ready = h.node.step(input).expect("step");
    let t1 = counts();
    h.handle(ready, &mut c.net);
    let t2 = counts();
    let row = table.entry(label).or_default();
    row.inputs += 1;
    row.step += t1.since(t0).calls();
    row.handle += t2.since(t1).calls();
}

/// How the client makes its payloads.
#[derive(Clone, Copy, PartialEq)]
enum Payloads {
    /// Each one a fresh `Bytes::from(vec)`: one allocation for the vector,
    /// and one more for the shared header `bytes` adds on the first clone.
    Owned,
    /// Sliced out of one buffer per round, as a server that reads requests
    /// into a buffer and splits them off does: two allocations per round.
    Sliced,
}

fn make_payloads(mode: Payloads, n: usize, seed: u8) -> Vec<Bytes> {
    match mode {
        Payloads::Owned => payloads(n, SIZE, seed),
        Payloads::Sliced => {
            let all = Bytes::from(vec![seed; n * SIZE]);
            (0..n)
                .map(|i| all.slice(i * SIZE..(i + 1) * SIZE))
                .collect()
        }
    }
}

/// One round, like `Cluster::round`, with every input counted.
fn round(c: &mut Cluster, n: usize, seed: u8, mode: Payloads, table: &mut Table) {
    let t0 = counts();
    // One payload goes in a `Propose` as is; more go in a `ProposeBatch`,
    // whose vector is part of the input.
    let (input, label) = if n == 1 {
        // One payload per round: sliced or not, it is one buffer.
        let data = Bytes::from(vec![seed; SIZE]);
        (Input::Propose(data), "leader    Propose")
    } else {
        let batch = make_payloads(mode, n, seed);
        (Input::ProposeBatch(batch), "leader    ProposeBatch")
    };
    let made = counts().since(t0).calls();
    let row = table.entry("(client)  payloads").or_default();
    row.inputs += n as u64;
    row.step += made;
    let last = c.hosts[0].log.len() as u64 + n as u64;
    counted(c, 0, input, label, table);
    loop {
        while let Some(m) = c.net.pop_front() {
            let i = m.to.get() as usize - 1;
            let label = label_of(c.hosts[i].node.role() == Role::Leader, &m);
            counted(c, i, Input::Message(m), label, table);
        }
        if c.hosts.iter().all(|h| h.applied_index >= last) {
            break;
        }
        counted(c, 0, Input::Tick, "leader    Tick", table);
    }
}

fn main() {
    let mut summary = Vec::new();
    for (mode, name) in [
        (Payloads::Owned, "each payload a fresh Bytes::from(vec)"),
        (
            Payloads::Sliced,
            "payloads sliced from one buffer per round",
        ),
    ] {
        println!(
            "zaft: heap allocations per committed entry, 3 nodes, {SIZE}-byte entries, {name}"
        );
        println!(
            "(allocator calls = alloc + realloc; whole process: 3 nodes, their hosts, payloads)\n"
        );
        measure(mode, name, &mut summary);
    }
    println!("summary (allocator calls per committed entry):");
    for (name, n, per) in summary {
        println!("  {name:<42} rounds of {n:>4}: {per:.2}");
    }
}

fn measure(mode: Payloads, name: &'static str, summary: &mut Vec<(&'static str, usize, f64)>) {
    for n in [1024usize, 64, 1] {
        let mut c = Cluster::new(3);
        let mut table = Table::new();
        // Warm up: the queues reach their steady capacity, the leader streams
        // to both followers, and the table has all its rows.
        for s in 0..(4096 / n).max(8) {
            round(&mut c, n, s as u8, mode, &mut table);
        }
        for row in table.values_mut() {
            *row = Row::default();
        }
        let rounds = ENTRIES / n;
        let t0 = counts();
        for s in 0..rounds {
            round(&mut c, n, s as u8, mode, &mut table);
        }
        let total: Counts = counts().since(t0);
        let entries = (rounds * n) as f64;
        println!("rounds of {n:>4}: {entries} entries committed on all 3 nodes");
        println!(
            "  per entry: {:.2} allocator calls ({:.2} alloc + {:.3} realloc), {:.0} bytes requested",
            total.calls() as f64 / entries,
            total.allocs as f64 / entries,
            total.reallocs as f64 / entries,
            total.bytes as f64 / entries,
        );
        println!(
            "  {:<44} {:>12} {:>14} {:>16}",
            "input at", "per entry", "step allocs", "handle allocs"
        );
        for (label, row) in table.iter().filter(|(_, r)| r.inputs > 0) {
            let per = |x: u64| x as f64 / row.inputs.max(1) as f64;
            println!(
                "  {:<44} {:>12.3} {:>14.2} {:>16.2}",
                label,
                row.inputs as f64 / entries,
                per(row.step),
                per(row.handle),
            );
        }
        println!();
        summary.push((name, n, total.calls() as f64 / entries));
    }
}
