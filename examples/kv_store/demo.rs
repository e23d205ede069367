//! `kv_store demo`: three node processes on loopback, writes and reads, the
//! leader killed with SIGKILL, a new one elected, and every acknowledged write
//! checked on every node.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{CallError, Client};
use crate::cluster::{Cluster, TempDir};
use crate::resp::Reply;

fn show(r: &Reply) -> String {
    match r {
        Reply::Simple(s) => s.clone(),
        Reply::Error(e) => format!("(error) {e}"),
        Reply::Int(i) => format!("(integer) {i}"),
        Reply::Bulk(None) => "(nil)".into(),
        Reply::Bulk(Some(b)) => format!("{:?}", String::from_utf8_lossy(b)),
        Reply::Array(v) => format!("{v:?}"),
    }
}

fn must(r: Result<Reply, CallError>) -> Result<Reply, String> {
    r.map_err(|e| e.to_string())
}

pub fn run() -> Result<(), String> {
    let started = Instant::now();
    let tmp = TempDir::new("kv-demo").map_err(|e| e.to_string())?;
    let mut cluster = Cluster::start(3, tmp.0.clone()).map_err(|e| e.to_string())?;
    let result = script(&mut cluster, started);
    if result.is_err() {
        for i in 0..3 {
            eprintln!("--- node {} log ---\n{}", i + 1, cluster.tail_log(i, 20));
        }
    }
    drop(cluster);
    drop(tmp);
    if result.is_ok() {
        println!(
            "demo finished in {:.1} s; nodes stopped, data dir removed",
            started.elapsed().as_secs_f64()
        );
    }
    result
}

fn script(cluster: &mut Cluster, started: Instant) -> Result<(), String> {
    for m in &cluster.members {
        println!(
            "node {}: clients on {}, peers on {}",
            m.id, m.client_addr, m.peer_addr
        );
    }
    println!("data in {}", cluster.dir.display());
    let leader = cluster
        .wait_leader(Duration::from_secs(10))
        .ok_or("no leader elected within 10 s")?;
    println!(
        "\n[{:.1}s] node {} is the leader",
        started.elapsed().as_secs_f64(),
        leader + 1
    );

    let addrs = cluster.client_addrs();
    let mut c = Client::new(addrs.clone());
    for args in [
        &[&b"SET"[..], b"greeting", b"hello"][..],
        &[b"GET", b"greeting"],
        &[b"INCR", b"visits"],
        &[b"INCR", b"visits"],
        &[b"DEL", b"greeting"],
        &[b"GET", b"greeting"],
    ] {
        let r = must(c.call(args, false))?;
        let cmd: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        println!("> {:<22} {}", cmd.join(" "), show(&r));
    }

    let follower = (leader + 1) % 3;
    let mut direct = Client::new(vec![addrs[follower]]);
    let r = direct
        .call_once(&[b"SET", b"x", b"1"])
        .map_err(|e| e.to_string())?;
    println!(
        "> SET x 1 sent to follower node {}: {}",
        follower + 1,
        show(&r)
    );
    let r = direct
        .call_once(&[b"STALEGET", b"visits"])
        .map_err(|e| e.to_string())?;
    println!(
        "> STALEGET visits on follower node {}: {} (local, may lag)",
        follower + 1,
        show(&r)
    );

    // Writers run through the failover, remembering what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (addrs, stop) = (addrs.clone(), stop.clone());
            thread::spawn(move || {
                let mut c = Client::new(addrs);
                let mut acked = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{w}:{i}");
                    let val = format!("v{i}");
                    if let Ok(Reply::Simple(_)) =
                        c.call(&[b"SET", key.as_bytes(), val.as_bytes()], true)
                    {
                        acked.push((key, val));
                    }
                    i += 1;
                }
                acked
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(700));

    let killed_at = Instant::now();
    cluster.kill(leader);
    println!(
        "\n[{:.1}s] killed the leader, node {} (SIGKILL), while 4 clients write",
        started.elapsed().as_secs_f64(),
        leader + 1
    );
    let new_leader = cluster
        .wait_leader(Duration::from_secs(10))
        .ok_or("no new leader within 10 s")?;
    println!(
        "[{:.1}s] node {} is the new leader ({} ms after the kill)",
        started.elapsed().as_secs_f64(),
        new_leader + 1,
        killed_at.elapsed().as_millis()
    );
    thread::sleep(Duration::from_millis(700));
    cluster
        .restart(leader)
        .map_err(|e| format!("restart: {e}"))?;
    println!(
        "[{:.1}s] restarted node {}; it recovers its WAL and rejoins as a follower",
        started.elapsed().as_secs_f64(),
        leader + 1
    );
    thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.join().map_err(|_| "writer panicked")?);
    }
    println!(
        "[{:.1}s] {} writes acknowledged during the failover",
        started.elapsed().as_secs_f64(),
        acked.len()
    );

    // Wait until every node has applied everything, then check each copy.
    let info = cluster
        .info(new_leader)
        .ok_or("the new leader stopped answering")?;
    let commit: u64 = info
        .get("commit_index")
        .and_then(|s| s.parse().ok())
        .ok_or("no commit index in INFO")?;
    if !cluster.wait_applied(commit, Duration::from_secs(10)) {
        return Err(format!("not every node applied up to {commit} within 10 s"));
    }
    for (i, addr) in addrs.iter().enumerate() {
        let mut c = Client::new(vec![*addr]);
        let mut missing = 0;
        for (k, v) in &acked {
            match c.call_once(&[b"STALEGET", k.as_bytes()]) {
                Ok(Reply::Bulk(Some(got))) if got == v.as_bytes() => {}
                _ => missing += 1,
            }
        }
        if missing > 0 {
            return Err(format!(
                "node {} lacks {missing} acknowledged writes",
                i + 1
            ));
        }
        println!(
            "node {}: all {} acknowledged writes present (applied up to {commit})",
            i + 1,
            acked.len()
        );
    }
    let mut c = Client::new(addrs);
    let r = must(c.call(&[b"GET", b"visits"], true))?;
    println!("> GET visits (linearizable, via the leader): {}", show(&r));
    Ok(())
}
