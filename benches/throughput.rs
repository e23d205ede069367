//! Committed entries per second of an in-process cluster run by the documented
//! loop (see `support/cluster.rs`): 3, 5 and 7 nodes, 128-byte and 4-KiB
//! entries, rounds of 1, 64 and 1024 proposals. A round is one `Propose` (or
//! one `ProposeBatch`) at the leader, then delivering messages until every
//! node has applied the round; only that is timed. Criterion's `elem/s` is
//! committed entries per second, counted once all nodes applied them.
//!
//! ```sh
//! cargo bench --bench throughput                 # whole matrix, short (~1.5 min)
//! cargo bench --bench throughput -- 3n_128B      # one line of it
//! ZAFT_BENCH_FULL=1 cargo bench --bench throughput   # longer, steadier samples
//! ```
//!
//! The nodes never compact their logs, so the cluster is rebuilt (untimed)
//! once the leader's log passes 32,768 entries, whatever their size: that
//! bounds memory (at most 128 MiB of 4-KiB payloads, shared by all nodes) and
//! makes the growth of the log vectors cost the same in every configuration.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

#[path = "support/cluster.rs"]
mod cluster;

use cluster::{Cluster, payloads};

const NODES: [u64; 3] = [3, 5, 7];
const SIZES: [usize; 2] = [128, 4096];
const ROUNDS: [usize; 3] = [1, 64, 1024];
/// Rebuild the cluster (untimed) past this many entries in the leader's log.
const MAX_LOG_ENTRIES: usize = 1 << 15;

fn full() -> bool {
    std::env::var_os("ZAFT_BENCH_FULL").is_some_and(|v| v != "0")
}

fn throughput(c: &mut Criterion) {
    for n in NODES {
        for size in SIZES {
            let mut group = c.benchmark_group(format!("throughput/{n}n_{size}B"));
            if full() {
                group.sample_size(30);
                group.warm_up_time(Duration::from_secs(2));
                group.measurement_time(Duration::from_secs(10));
            } else {
                group.sample_size(10);
                group.warm_up_time(Duration::from_secs(1));
                group.measurement_time(Duration::from_secs(3));
            }
            for round in ROUNDS {
                group.throughput(Throughput::Elements(round as u64));
                group.bench_function(BenchmarkId::from_parameter(round), |b| {
                    let mut cluster = Cluster::new(n);
                    let mut seed = 0u8;
                    b.iter_custom(|iters| {
                        let mut timed = Duration::ZERO;
                        for _ in 0..iters {
                            if cluster.log_len() > MAX_LOG_ENTRIES {
                                cluster = Cluster::new(n);
                            }
                            seed = seed.wrapping_add(1);
                            let batch = payloads(round, size, seed);
                            let start = Instant::now();
                            black_box(cluster.round(batch));
                            timed += start.elapsed();
                        }
                        black_box(cluster.hosts[1].applied_bytes);
                        timed
                    });
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);
