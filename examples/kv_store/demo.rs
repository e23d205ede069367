//! `kv_store demo`: three node processes on loopback, writes and reads, the
//! leader killed with SIGKILL, a new one elected, and every acknowledged write
//! checked on every node; then membership changes under load: the cluster
//! grown to five nodes (learners that catch up, then promoted), a killed
//! follower replaced by a fresh node, the cluster shrunk back to three, and
//! every acknowledged write checked on every remaining node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
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
    let result =
        script(&mut cluster, started).and_then(|acked| membership(&mut cluster, started, acked));
    if result.is_err() {
        for i in 0..cluster.members.len() {
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

/// The keys and values a client's writes were acknowledged for, and how
/// many of them it read back; or what a read got wrong.
type ClientResult = Result<(Vec<(String, String)>, u64), String>;

/// Clients that write until stopped, each `SET`ting keys of its own, and
/// every fifth time read back the last one acknowledged: the `GET` must
/// return it.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<ClientResult>>,
}

impl Load {
    fn start(addrs: Vec<SocketAddr>, tag: &'static str, n: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..n)
            .map(|w| {
                let (addrs, stop) = (addrs.clone(), stop.clone());
                thread::spawn(move || {
                    let mut c = Client::new(addrs);
                    let mut acked: Vec<(String, String)> = Vec::new();
                    let mut reads = 0;
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("{tag}{w}:{i}");
                        let val = format!("v{i}");
                        if let Ok(Reply::Simple(_)) =
                            c.call(&[b"SET", key.as_bytes(), val.as_bytes()], true)
                        {
                            acked.push((key, val));
                        }
                        i += 1;
                        let Some((k, v)) = acked.last().filter(|_| i.is_multiple_of(5)) else {
                            continue;
                        };
                        match c.call(&[b"GET", k.as_bytes()], true) {
                            Ok(Reply::Bulk(Some(got))) if got == v.as_bytes() => reads += 1,
                            Ok(other) => {
                                return Err(format!("GET {k} after SET {k} {v}: {}", show(&other)));
                            }
                            // No answer in time: nothing to check.
                            Err(_) => {}
                        }
                    }
                    Ok((acked, reads))
                })
            })
            .collect();
        Load { stop, clients }
    }

    /// Stops the clients; returns the writes acknowledged and how many reads
    /// were checked.
    fn finish(self) -> Result<(Vec<(String, String)>, u64), String> {
        self.stop.store(true, Ordering::Relaxed);
        let (mut acked, mut reads) = (Vec::new(), 0);
        for c in self.clients {
            let (a, r) = c.join().map_err(|_| "a client panicked")??;
            acked.extend(a);
            reads += r;
        }
        Ok((acked, reads))
    }
}

/// The failover: returns the writes acknowledged.
fn script(cluster: &mut Cluster, started: Instant) -> Result<Vec<(String, String)>, String> {
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
    let load = Load::start(addrs.clone(), "w", 4);
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
    let (acked, reads) = load.finish()?;
    println!(
        "[{:.1}s] {} writes acknowledged during the failover, {reads} read back",
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
    Ok(acked)
}

/// A `CLUSTER` command, sent to the leader (following `MOVED`, retrying
/// `TRYAGAIN`), printed with its answer. An error answer fails the demo.
fn admin(c: &mut Client, args: &[&str]) -> Result<Reply, String> {
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let t0 = Instant::now();
    let r = must(c.call(&bytes, true))?;
    let took = t0.elapsed().as_millis();
    if let Reply::Array(lines) = &r {
        println!("> {}", args.join(" "));
        for l in lines {
            if let Reply::Bulk(Some(b)) = l {
                println!("    {}", String::from_utf8_lossy(b));
            }
        }
        return Ok(r);
    }
    println!("> {:<58} {} ({took} ms)", args.join(" "), show(&r));
    match r {
        Reply::Error(e) => Err(format!("{}: {e}", args.join(" "))),
        r => Ok(r),
    }
}

/// `CLUSTER MEMBERS` on the leader.
fn members(c: &mut Client) -> Result<Reply, String> {
    admin(c, &["CLUSTER", "MEMBERS"])
}

/// Waits until node `i` answers PING.
fn wait_up(cluster: &Cluster, i: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = Client::new(vec![cluster.members[i].client_addr]);
    while c.call_once(&[b"PING"]).is_err() {
        if Instant::now() > deadline {
            return Err(format!("node {} did not start within 10 s", i + 1));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn leads(cluster: &Cluster, i: usize) -> bool {
    cluster
        .info(i)
        .is_some_and(|m| m.get("role").map(String::as_str) == Some("leader"))
}

/// `CLUSTER ADDLEARNER` for node `i`, with the addresses it listens on.
fn add_learner(cluster: &Cluster, c: &mut Client, i: usize) -> Result<Reply, String> {
    let m = &cluster.members[i];
    let (id, peer, client) = (
        m.id.to_string(),
        m.peer_addr.to_string(),
        m.client_addr.to_string(),
    );
    admin(c, &["CLUSTER", "ADDLEARNER", &id, &peer, &client])
}

/// Grows the cluster to five nodes, replaces a killed follower, shrinks it
/// back to three, all under load; then checks every write acknowledged
/// since the start on every remaining node.
fn membership(
    cluster: &mut Cluster,
    started: Instant,
    mut acked: Vec<(String, String)>,
) -> Result<(), String> {
    let t = || started.elapsed().as_secs_f64();
    let id = |i: usize| (i + 1).to_string();
    println!(
        "\n[{:.1}s] membership changes, while 4 clients write and read back",
        t()
    );
    let load = Load::start(cluster.client_addrs(), "m", 4);
    let mut ac = Client::new(cluster.client_addrs());
    // Between steps the clients go on: the learners have a log to catch up on.
    let pause = || thread::sleep(Duration::from_millis(400));
    pause();

    let grown = [
        cluster.add_node().map_err(|e| e.to_string())?,
        cluster.add_node().map_err(|e| e.to_string())?,
    ];
    for &i in &grown {
        wait_up(cluster, i)?;
    }
    println!(
        "[{:.1}s] started nodes 4 and 5 with --join-cluster: empty data directories, no voters; \
         they wait to be added",
        t()
    );
    for &i in &grown {
        add_learner(cluster, &mut ac, i)?;
    }
    members(&mut ac)?;
    println!(
        "[{:.1}s] PROMOTE waits until a learner's match index is within 64 entries of the commit",
        t()
    );
    for &i in &grown {
        admin(&mut ac, &["CLUSTER", "PROMOTE", &id(i)])?;
    }
    println!("[{:.1}s] five voters", t());
    pause();

    let leader = cluster
        .wait_leader(Duration::from_secs(10))
        .ok_or("no leader within 10 s")?;
    let dead = (0..3)
        .find(|&i| i != leader && cluster.running(i))
        .ok_or("no founding follower to kill")?;
    cluster.kill(dead);
    println!(
        "\n[{:.1}s] killed node {} (SIGKILL), a follower; replacing it with a fresh node",
        t(),
        dead + 1
    );
    pause();
    let fresh = cluster.add_node().map_err(|e| e.to_string())?;
    wait_up(cluster, fresh)?;
    println!(
        "[{:.1}s] started node {} with --join-cluster",
        t(),
        fresh + 1
    );
    add_learner(cluster, &mut ac, fresh)?;
    admin(&mut ac, &["CLUSTER", "PROMOTE", &id(fresh)])?;
    admin(&mut ac, &["CLUSTER", "REMOVE", &id(dead)])?;
    members(&mut ac)?;
    pause();

    println!(
        "\n[{:.1}s] shrinking back to three nodes; node {} leads first, so that it removes itself",
        t(),
        grown[0] + 1
    );
    admin(&mut ac, &["TRANSFER", &id(grown[0])])?;
    // The old leader answers once the new one campaigns; wait until it won.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !leads(cluster, grown[0]) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    for &i in &grown {
        let was_leader = leads(cluster, i);
        admin(&mut ac, &["CLUSTER", "REMOVE", &id(i)])?;
        cluster.kill(i);
        println!(
            "[{:.1}s] stopped node {}{}",
            t(),
            i + 1,
            if was_leader {
                " (it led: it stepped down once its removal committed, and the others \
                 elected a leader)"
            } else {
                ""
            }
        );
    }
    members(&mut ac)?;
    pause();

    let (more, reads) = load.finish()?;
    println!(
        "[{:.1}s] {} writes acknowledged during the membership changes, {reads} read back",
        t(),
        more.len()
    );
    acked.extend(more);
    let leader = cluster
        .wait_leader(Duration::from_secs(10))
        .ok_or("no leader within 10 s")?;
    let commit: u64 = cluster
        .info(leader)
        .and_then(|m| m.get("commit_index")?.parse().ok())
        .ok_or("no commit index from the leader")?;
    if !cluster.wait_applied(commit, Duration::from_secs(10)) {
        return Err(format!("not every node applied up to {commit} within 10 s"));
    }
    for i in (0..cluster.members.len()).filter(|&i| cluster.running(i)) {
        let mut c = Client::new(vec![cluster.members[i].client_addr]);
        let missing = acked
            .iter()
            .filter(|(k, v)| {
                !matches!(c.call_once(&[b"STALEGET", k.as_bytes()]),
                    Ok(Reply::Bulk(Some(got))) if got == v.as_bytes())
            })
            .count();
        if missing > 0 {
            return Err(format!(
                "node {} lacks {missing} acknowledged writes",
                i + 1
            ));
        }
        println!(
            "node {}: all {} acknowledged writes since the start present (applied up to {commit})",
            i + 1,
            acked.len()
        );
    }
    Ok(())
}
