//! `kv_store load` (N concurrent clients against a running cluster),
//! `kv_store bench` (a fresh local cluster, then 1, 16 and 128 clients) and
//! `kv_store fsync-bench` (what one fdatasync costs on this disk).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::cluster::{Cluster, TempDir};
use crate::resp::Reply;

pub struct LoadResult {
    pub clients: usize,
    pub ops: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latencies of acknowledged writes, sorted, in microseconds.
    pub lat_us: Vec<u64>,
}

impl LoadResult {
    fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return 0.0;
        }
        let i = ((self.lat_us.len() - 1) as f64 * p).round() as usize;
        self.lat_us[i] as f64 / 1000.0
    }

    pub fn line(&self) -> String {
        format!(
            "{:>7} clients  {:>8.0} writes/s  p50 {:>6.2} ms  p99 {:>7.2} ms  ({} ok, {} errors, {:.1} s)",
            self.clients,
            self.ops as f64 / self.elapsed.as_secs_f64(),
            self.pct(0.50),
            self.pct(0.99),
            self.ops,
            self.errors,
            self.elapsed.as_secs_f64()
        )
    }
}

/// `clients` threads each SET unique keys back to back for `duration`.
pub fn run_load(
    addrs: &[SocketAddr],
    clients: usize,
    duration: Duration,
    value_bytes: usize,
) -> LoadResult {
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..clients)
        .map(|t| {
            let addrs = addrs.to_vec();
            thread::spawn(move || {
                let mut c = Client::new(addrs);
                let value = vec![b'v'; value_bytes];
                // Find the leader before the clock starts counting.
                let _ = c.call(&[b"SET", b"warmup", b"1"], true);
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let key = format!("load:{t}:{i}");
                    let t0 = Instant::now();
                    match c.call(&[b"SET", key.as_bytes(), &value], true) {
                        Ok(Reply::Simple(_)) => lat.push(t0.elapsed().as_micros() as u64),
                        _ => errors += 1,
                    }
                    i += 1;
                }
                (lat, errors)
            })
        })
        .collect();
    let mut lat_us = Vec::new();
    let mut errors = 0;
    for h in handles {
        if let Ok((l, e)) = h.join() {
            lat_us.extend(l);
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    lat_us.sort_unstable();
    LoadResult {
        clients,
        ops: lat_us.len() as u64,
        errors,
        elapsed,
        lat_us,
    }
}

/// Starts a local 3-node cluster and measures each client count in turn.
pub fn bench(
    client_counts: &[usize],
    duration: Duration,
    value_bytes: usize,
) -> Result<(), String> {
    let tmp = TempDir::new("kv-bench").map_err(|e| e.to_string())?;
    println!("fsync on {}:", tmp.0.display());
    fsync_bench(&tmp.0, 200)?;
    let cluster = Cluster::start(3, tmp.0.join("cluster")).map_err(|e| e.to_string())?;
    let leader = cluster
        .wait_leader(Duration::from_secs(10))
        .ok_or("no leader within 10 s")?;
    println!(
        "\n3 nodes on loopback, leader node {}, SET of {value_bytes}-byte values, {:.0} s per run:",
        leader + 1,
        duration.as_secs_f64()
    );
    let addrs = cluster.client_addrs();
    for &n in client_counts {
        let r = run_load(&addrs, n, duration, value_bytes);
        println!("{}", r.line());
    }
    if let Some(info) = cluster.info(leader) {
        let get = |k: &str| info.get(k).cloned().unwrap_or_default();
        println!(
            "leader: {} proposals in {} batches, {} WAL fsyncs",
            get("proposals"),
            get("proposal_batches"),
            get("wal_fsyncs")
        );
    }
    drop(cluster);
    Ok(())
}

/// Times `count` rounds of each way the server writes: a small append and
/// `fdatasync` (one group commit of the WAL), a 4 KiB append (a new block
/// each time), an in-place overwrite (data only, no metadata), and the atomic
/// hard-state save (temp file + fsync + rename + directory fsync).
pub fn fsync_bench(dir: &Path, count: usize) -> Result<(), String> {
    let path = dir.join("fsync-bench.tmp");
    for (what, size, append) in [
        ("append 128 B + fdatasync (a WAL group commit)", 128, true),
        (
            "append 4 KiB + fdatasync (a new block each time)",
            4096,
            true,
        ),
        ("overwrite 4 KiB in place + fdatasync", 4096, false),
    ] {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let block = vec![0xA5u8; size];
        if !append {
            f.write_all(&block).map_err(|e| e.to_string())?;
            f.sync_all().map_err(|e| e.to_string())?;
        }
        let mut times = Vec::with_capacity(count);
        for _ in 0..count {
            if !append {
                use std::io::Seek;
                f.seek(std::io::SeekFrom::Start(0))
                    .map_err(|e| e.to_string())?;
            }
            let t0 = Instant::now();
            f.write_all(&block).map_err(|e| e.to_string())?;
            f.sync_data().map_err(|e| e.to_string())?;
            times.push(t0.elapsed());
        }
        drop(f);
        report(what, &mut times);
    }
    let _ = fs::remove_file(&path);

    let hs_dir = dir.join("fsync-bench-hs");
    fs::create_dir_all(&hs_dir).map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(count);
    for i in 0..count as u64 {
        let hs = zaft::HardState {
            term: zaft::Term(i),
            vote: None,
            commit: zaft::Index(i),
        };
        let t0 = Instant::now();
        crate::wal::save_hard_state(&hs_dir, &hs).map_err(|e| e.to_string())?;
        times.push(t0.elapsed());
    }
    let _ = fs::remove_dir_all(&hs_dir);
    report("hard-state save (write+fsync+rename+fsync dir)", &mut times);
    Ok(())
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort_unstable();
    let n = times.len();
    let mean = times.iter().sum::<Duration>() / n as u32;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {what}: mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms ({n} runs)",
        ms(mean),
        ms(times[n / 2]),
        ms(times[(n * 99 / 100).min(n - 1)])
    );
}
