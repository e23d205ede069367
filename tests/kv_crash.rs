//! Crash tests for `examples/kv_store`: real processes on loopback, killed
//! with SIGKILL, restarted from their data directories.
//!
//! - every acknowledged write survives repeated `kill -9` of random nodes
//!   (the leader included) under load, and the history the clients saw is
//!   linearizable (checked with `zaft::sim::linearizability`);
//! - a leader stopped with SIGSTOP for longer than its lease serves no
//!   stale lease read when it runs again;
//! - a torn WAL tail is cut off on recovery and the node rejoins;
//! - a follower whose data directory was damaged while it was down (a
//!   flipped byte, the last 7 bytes cut, its segment cut to half or zeroed,
//!   the directory wiped) starts if the damage is a torn write, is refused
//!   with a message naming the file, byte and loss otherwise, and with the
//!   flag that message names catches up from the leader;
//! - garbage on the client and peer ports is answered or dropped, not a crash;
//! - membership changes (`CLUSTER ADDLEARNER | PROMOTE | REMOVE`) finish
//!   after `kill -9` of the leader and of the node being added, under load,
//!   with no acknowledged write lost and a linearizable history; each
//!   command's refusals say why.
//!
//! They build the example once (`cargo build --example kv_store`) and take
//! about a minute, so they are `#[ignore]`d: run them with
//! `cargo test --all-features --test kv_crash -- --ignored --test-threads=1`.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use zaft::sim::linearizability::{Event, Op, Outcome, check};

// ---- the binary -----------------------------------------------------------

/// Builds the example once, with zaft's `tracing` feature so that `--log`
/// shows zaft's events too, and returns its path. `CARGO_BIN_EXE_*` only
/// exists for `[[bin]]` targets, so ask cargo where it put the example.
fn kv_store_exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "--example",
                "kv_store",
                "--features",
                "tracing",
                "--message-format=json",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build --example kv_store --features tracing failed"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .filter(|l| {
                l.contains("\"reason\":\"compiler-artifact\"")
                    && l.contains("\"name\":\"kv_store\"")
            })
            .find_map(|l| {
                let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
                let end = start + l[start..].find('"')?;
                Some(PathBuf::from(&l[start..end]))
            })
            .expect("cargo reported no kv_store executable")
    })
    .clone()
}

// ---- a cluster of processes ----------------------------------------------

struct Node {
    id: u64,
    peer: SocketAddr,
    client: SocketAddr,
}

struct Cluster {
    dir: PathBuf,
    /// Every node ever added, in order of id (node `i` has id `i + 1`): the
    /// founding members first, then the ones [`Cluster::add_node`] added.
    nodes: Vec<Node>,
    children: Vec<Option<Child>>,
    /// Stopped with SIGSTOP: the process exists but answers nothing.
    paused: Vec<bool>,
    extra: Vec<String>,
}

impl Cluster {
    fn new(name: &str, n: usize, extra: &[&str]) -> Cluster {
        let dir = std::env::temp_dir().join(format!("kv-crash-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // Let the OS pick free loopback ports, then hand them to the nodes.
        let ls: Vec<TcpListener> = (0..2 * n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let nodes = (0..n)
            .map(|i| Node {
                id: i as u64 + 1,
                peer: ls[2 * i].local_addr().unwrap(),
                client: ls[2 * i + 1].local_addr().unwrap(),
            })
            .collect();
        drop(ls);
        let mut c = Cluster {
            dir,
            nodes,
            children: (0..n).map(|_| None).collect(),
            paused: vec![false; n],
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n {
            c.start_with(i, &["--bootstrap"]);
        }
        c
    }

    /// Reserves ports for a node new to the cluster; returns its index.
    /// Start it with `start_with(i, &["--join-cluster"])`.
    fn add_node(&mut self) -> usize {
        let ls: Vec<TcpListener> = (0..2)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let i = self.nodes.len();
        self.nodes.push(Node {
            id: i as u64 + 1,
            peer: ls[0].local_addr().unwrap(),
            client: ls[1].local_addr().unwrap(),
        });
        self.children.push(None);
        self.paused.push(false);
        i
    }

    /// Every node added so far: a founding member started with `--bootstrap`
    /// records the founding voters then, and later lists only give
    /// addresses.
    fn spec(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}={}/{}", n.id, n.peer, n.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{}", i + 1))
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{}.log", i + 1))
    }

    fn command(&self, i: usize) -> Command {
        let mut cmd = Command::new(kv_store_exe());
        cmd.arg("node")
            .arg("--id")
            .arg(self.nodes[i].id.to_string())
            .arg("--data")
            .arg(self.data_dir(i))
            .arg("--cluster")
            .arg(self.spec())
            .arg("--exit-with-parent")
            .args(&self.extra)
            .stdin(Stdio::null());
        cmd
    }

    /// Restarts node `i` from its data directory.
    fn start(&mut self, i: usize) {
        self.start_with(i, &[]);
    }

    fn start_with(&mut self, i: usize, flags: &[&str]) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))
            .unwrap();
        let child = self
            .command(i)
            .args(flags)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused[i] = false;
    }

    /// SIGSTOP: the process stops mid-instruction, as in a long GC pause or
    /// swap storm; its sockets stay open and the kernel queues what arrives.
    fn pause(&mut self, i: usize) {
        self.signal(i, "-STOP");
        self.paused[i] = true;
    }

    fn resume(&mut self, i: usize) {
        self.signal(i, "-CONT");
        self.paused[i] = false;
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.children[i].as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} {pid} failed");
    }

    /// Running and not paused.
    fn up(&self, i: usize) -> bool {
        self.children[i].is_some() && !self.paused[i]
    }

    /// The password the nodes were started with (`--requirepass`), if any.
    fn password(&self) -> Option<&str> {
        let i = self.extra.iter().position(|a| a == "--requirepass")?;
        self.extra.get(i + 1).map(String::as_str)
    }

    fn info(&self, i: usize) -> Option<HashMap<String, String>> {
        let mut c = Conn::open(self.nodes[i].client).ok()?;
        if let Some(p) = self.password() {
            c.call(&["AUTH", p]).ok()?;
        }
        match c.call(&["INFO"]).ok()? {
            Reply::Bulk(Some(b)) => Some(
                b.lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                    .collect(),
            ),
            _ => None,
        }
    }

    fn leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            for i in 0..self.nodes.len() {
                if self.up(i) && self.info(i).is_some_and(|m| m["role"] == "leader") {
                    return i;
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("no leader within {timeout:?}\n{}", self.logs());
    }

    /// Waits until every running node has applied the leader's commit index.
    fn converge(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let running: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.up(i)).collect();
            let infos: Vec<_> = running.iter().filter_map(|&i| self.info(i)).collect();
            if infos.len() == running.len() {
                let commit = infos
                    .iter()
                    .find(|m| m["role"] == "leader")
                    .map(|m| m["commit_index"].clone());
                if let Some(c) = commit
                    && infos.iter().all(|m| m["applied_index"] == c)
                {
                    return;
                }
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the cluster did not converge within {timeout:?}\n{}",
            self.logs()
        );
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for i in 0..self.nodes.len() {
            let text = fs::read_to_string(self.log(i)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            s += &format!("--- node {} ---\n", i + 1);
            s += &lines[lines.len().saturating_sub(15)..].join("\n");
            s += "\n";
        }
        s
    }

    fn segments(&self, i: usize) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.data_dir(i).join("wal"))
            .unwrap()
            .map(|d| d.unwrap().path())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("data and logs kept in {}", self.dir.display());
        }
    }
}

// ---- a RESP client ---------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Reply>),
}

struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        Conn::open_waiting(addr, Duration::from_secs(5))
    }

    /// A connection whose replies may take up to `wait`.
    fn open_waiting(addr: SocketAddr, wait: Duration) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        s.set_read_timeout(Some(wait))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    fn call(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        self.send(args)?;
        self.reply()
    }

    fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out += &format!("${}\r\n{a}\r\n", a.len());
        }
        self.w.write_all(out.as_bytes())
    }

    fn reply(&mut self) -> std::io::Result<Reply> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        let bad = || std::io::Error::other(format!("bad reply {line:?}"));
        let (t, rest) = line.split_at(1);
        Ok(match t {
            "+" => Reply::Simple(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().map_err(|_| bad())?),
            "$" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut b = vec![0; n as usize + 2];
                    self.r.read_exact(&mut b)?;
                    b.truncate(n as usize);
                    Reply::Bulk(Some(String::from_utf8_lossy(&b).into_owned()))
                }
            }
            "*" => {
                let n: usize = rest.parse().map_err(|_| bad())?;
                Reply::Array((0..n).map(|_| self.reply()).collect::<Result<_, _>>()?)
            }
            _ => return Err(bad()),
        })
    }
}

/// A client that finds the leader and records what it saw.
struct Recorder {
    id: u64,
    addrs: Vec<SocketAddr>,
    at: usize,
    conn: Option<Conn>,
    epoch: Instant,
}

enum Attempt {
    Done(Outcome),
    /// Refused before anything happened: try again elsewhere.
    Retry,
}

impl Recorder {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn attempt(&mut self, args: &[&str]) -> Attempt {
        if self.conn.is_none() {
            match Conn::open(self.addrs[self.at]) {
                Ok(c) => self.conn = Some(c),
                Err(_) => {
                    self.at = (self.at + 1) % self.addrs.len();
                    thread::sleep(Duration::from_millis(20));
                    return Attempt::Retry;
                }
            }
        }
        let reply = self.conn.as_mut().expect("connected").call(args);
        match reply {
            Ok(Reply::Simple(_)) | Ok(Reply::Int(_)) => Attempt::Done(Outcome::Ok(None)),
            Ok(Reply::Bulk(v)) => match v.map(|s| s.parse::<u64>()) {
                None => Attempt::Done(Outcome::Ok(None)),
                Some(Ok(v)) => Attempt::Done(Outcome::Ok(Some(v))),
                Some(Err(_)) => panic!("unexpected value for {args:?}"),
            },
            Ok(Reply::Error(e)) if e.starts_with("MOVED ") => {
                let to: Option<SocketAddr> = e.rsplit(' ').next().and_then(|a| a.parse().ok());
                self.at = match to {
                    // A node that joined after this client started leads.
                    Some(a) => self.addrs.iter().position(|&x| x == a).unwrap_or_else(|| {
                        self.addrs.push(a);
                        self.addrs.len() - 1
                    }),
                    None => (self.at + 1) % self.addrs.len(),
                };
                self.conn = None;
                Attempt::Retry
            }
            Ok(Reply::Error(e))
                if e.starts_with("TRYAGAIN no leader") || e.starts_with("TRYAGAIN busy") =>
            {
                thread::sleep(Duration::from_millis(20));
                self.at = (self.at + 1) % self.addrs.len();
                self.conn = None;
                Attempt::Retry
            }
            // A lost proposal or an unconfirmed read definitely did nothing.
            Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN") => Attempt::Done(Outcome::Fail),
            Ok(Reply::Error(e)) if e.starts_with("TIMEOUT") => Attempt::Done(Outcome::Unknown),
            Ok(Reply::Error(e)) => panic!("unexpected error reply to {args:?}: {e}"),
            Ok(Reply::Array(a)) => panic!("unexpected array reply to {args:?}: {a:?}"),
            Err(_) => {
                // Sent, but no answer: the node may have died after applying.
                self.conn = None;
                self.at = (self.at + 1) % self.addrs.len();
                Attempt::Done(Outcome::Unknown)
            }
        }
    }

    /// Runs `op` until it gets an outcome, recording one event per attempt
    /// that may have had an effect.
    fn run(&mut self, op: Op, history: &Mutex<Vec<Event>>) -> Outcome {
        loop {
            let args_owned: Vec<String> = match op {
                Op::Write { key, value } => {
                    vec!["SET".into(), format!("k{key}"), value.to_string()]
                }
                Op::Read { key } => vec!["GET".into(), format!("k{key}")],
            };
            let args: Vec<&str> = args_owned.iter().map(String::as_str).collect();
            let invoke = self.now();
            match self.attempt(&args) {
                Attempt::Retry => continue,
                Attempt::Done(outcome) => {
                    let complete = self.now();
                    history.lock().unwrap().push(Event {
                        client: self.id,
                        op,
                        invoke,
                        complete,
                        outcome,
                    });
                    return outcome;
                }
            }
        }
    }
}

/// A small xorshift generator: the test prints its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    std::env::var("KV_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

// ---- the tests ---------------------------------------------------------------

/// Keys shared by all clients: the linearizability check is about these.
const SHARED_KEYS: u64 = 6;
/// Keys from here on are written once each: the durability check.
const UNIQUE_KEY_BASE: u64 = 1_000_000;

/// Six clients, each a thread: writes of unique values to the shared keys,
/// linearizable reads of them, and writes of never-reused keys, every
/// attempt recorded in one history.
struct Load {
    epoch: Instant,
    addrs: Vec<SocketAddr>,
    history: Arc<Mutex<Vec<Event>>>,
    stop: Arc<AtomicBool>,
    clients: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(seed: u64, addrs: Vec<SocketAddr>) -> Load {
        let epoch = Instant::now();
        let history = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let next_unique = Arc::new(AtomicU64::new(UNIQUE_KEY_BASE));
        let n = addrs.len();
        let clients = (0..6u64)
            .map(|id| {
                let (history, stop, next_unique, addrs) = (
                    history.clone(),
                    stop.clone(),
                    next_unique.clone(),
                    addrs.clone(),
                );
                let mut rng = Rng(seed ^ (id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                thread::spawn(move || {
                    let mut r = Recorder {
                        id,
                        addrs,
                        at: id as usize % n,
                        conn: None,
                        epoch,
                    };
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        let value = (id << 40) | seq;
                        let op = match rng.below(10) {
                            0..=3 => Op::Write {
                                key: rng.below(SHARED_KEYS),
                                value,
                            },
                            4..=6 => Op::Read {
                                key: rng.below(SHARED_KEYS),
                            },
                            _ => Op::Write {
                                key: next_unique.fetch_add(1, Ordering::Relaxed),
                                value,
                            },
                        };
                        r.run(op, &history);
                    }
                })
            })
            .collect();
        Load {
            epoch,
            addrs,
            history,
            stop,
            clients,
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients.drain(..) {
            c.join().expect("client thread");
        }
    }

    /// Once the running nodes have converged: every acknowledged unique
    /// write is on every running node, and the whole history, final reads of
    /// the shared keys included, is linearizable.
    fn check(self, name: &str, cluster: &Cluster) {
        let mut history = Arc::try_unwrap(self.history).unwrap().into_inner().unwrap();
        let acked: Vec<(u64, u64)> = history
            .iter()
            .filter_map(|e| match (e.op, e.outcome) {
                (Op::Write { key, value }, Outcome::Ok(_)) if key >= UNIQUE_KEY_BASE => {
                    Some((key, value))
                }
                _ => None,
            })
            .collect();
        let count = |f: fn(&Outcome) -> bool| history.iter().filter(|e| f(&e.outcome)).count();
        eprintln!(
            "{name}: {} operations: {} ok, {} failed, {} unknown; {} acknowledged unique writes",
            history.len(),
            count(|o| matches!(o, Outcome::Ok(_))),
            count(|o| matches!(o, Outcome::Fail)),
            count(|o| matches!(o, Outcome::Unknown)),
            acked.len()
        );
        assert!(
            acked.len() > 100,
            "too little load got through: {}",
            acked.len()
        );

        // Every acknowledged write is on every running node.
        for (i, n) in cluster.nodes.iter().enumerate() {
            if !cluster.up(i) {
                continue;
            }
            let mut c = Conn::open(n.client).unwrap();
            for &(key, value) in &acked {
                let got = c.call(&["STALEGET", &format!("k{key}")]).unwrap();
                assert_eq!(
                    got,
                    Reply::Bulk(Some(value.to_string())),
                    "node {} lost acknowledged write k{key}={value}",
                    i + 1
                );
            }
        }

        // Final reads of the shared keys, after everything else: the history
        // must also explain them.
        let mut r = Recorder {
            id: 99,
            addrs: self.addrs,
            at: 0,
            conn: None,
            epoch: self.epoch,
        };
        let final_history = Mutex::new(Vec::new());
        for key in 0..SHARED_KEYS {
            while matches!(r.run(Op::Read { key }, &final_history), Outcome::Fail) {}
        }
        history.extend(final_history.into_inner().unwrap());
        if let Err(v) = check(&history) {
            panic!("{name}: {v}");
        }
    }
}

fn crash_under_load(name: &str, extra: &[&str]) {
    let seed = seed();
    eprintln!("{name}: seed {seed} (set KV_CRASH_SEED to replay the choice of victims)");
    let mut rng = Rng(seed);
    let mut cluster = Cluster::new(name, 3, extra);
    cluster.leader(Duration::from_secs(15));

    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.client).collect();
    let mut load = Load::start(seed, addrs);

    let mut kills = Vec::new();
    for round in 0..6 {
        thread::sleep(Duration::from_millis(1000 + rng.below(800)));
        let victim = if round % 2 == 0 {
            cluster.leader(Duration::from_secs(15))
        } else {
            rng.below(3) as usize
        };
        let was_leader = cluster.info(victim).is_some_and(|m| m["role"] == "leader");
        cluster.kill(victim);
        kills.push((victim + 1, was_leader));
        thread::sleep(Duration::from_millis(300 + rng.below(700)));
        cluster.start(victim);
    }
    thread::sleep(Duration::from_secs(1));
    load.stop();
    eprintln!("{name}: killed (node, was leader): {kills:?}");
    assert!(
        kills.iter().any(|&(_, l)| l),
        "the leader was never among the victims"
    );

    cluster.leader(Duration::from_secs(15));
    cluster.converge(Duration::from_secs(30));
    load.check(name, &cluster);
}

#[test]
#[ignore = "slow: builds the example, runs three processes and kills them; run with --ignored"]
fn acknowledged_writes_survive_kill_9_and_history_is_linearizable() {
    crash_under_load("index", &[]);
}

#[test]
#[ignore = "slow: builds the example, runs three processes and kills them; run with --ignored"]
fn reads_through_the_log_stay_linearizable_across_kill_9() {
    crash_under_load("logreads", &["--reads", "log"]);
}

/// Issue #10: a leader stopped for longer than its lease (SIGSTOP, a GC
/// pause, swapping) must not serve a lease read from its own state once it
/// runs again, after a new leader has accepted a newer write. The host ticks
/// by elapsed time, so the first thing the woken node hears is the two
/// seconds of ticks it missed, and its lease is over before it sees the GET.
#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn a_paused_leader_serves_no_stale_lease_read() {
    let mut cluster = Cluster::new("paused", 3, &["--reads", "lease"]);
    let mut outcomes = Vec::new();
    for round in 0..10 {
        let old_leader = cluster.leader(Duration::from_secs(15));
        let (old, new) = (format!("old{round}"), format!("new{round}"));
        let mut c = Conn::open(cluster.nodes[old_leader].client).unwrap();
        assert_eq!(
            c.call(&["SET", "x", &old]).unwrap(),
            Reply::Simple("OK".into())
        );
        cluster.pause(old_leader);
        let paused_at = Instant::now();
        let new_leader = cluster.leader(Duration::from_secs(15));
        set_until_ok(&cluster, new_leader, "x", &new);
        thread::sleep(Duration::from_secs(2).saturating_sub(paused_at.elapsed()));
        // The GET waits in the socket while the process is stopped; it is the
        // first thing the woken node's client thread reads.
        c.send(&["GET", "x"]).unwrap();
        cluster.resume(old_leader);
        let got = c.reply().unwrap();
        eprintln!(
            "round {round}: node {} paused {:.1} s, node {} wrote {new}; GET on the paused node: {got:?}",
            old_leader + 1,
            paused_at.elapsed().as_secs_f64(),
            new_leader + 1
        );
        outcomes.push((round, got));
        // The old leader rejoins as a follower before the next round.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !cluster
            .info(old_leader)
            .is_some_and(|m| m["role"] == "follower" && m["leader_id"] != "none")
        {
            assert!(
                Instant::now() < deadline,
                "node {} did not rejoin\n{}",
                old_leader + 1,
                cluster.logs()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
    let stale: Vec<_> = outcomes
        .iter()
        .filter(|(round, got)| *got == Reply::Bulk(Some(format!("old{round}"))))
        .collect();
    assert!(
        stale.is_empty(),
        "a paused leader served {} stale reads in {} rounds: {stale:?}",
        stale.len(),
        outcomes.len()
    );
}

/// `SET key value` on node `i` until it says OK (a new leader may still be
/// settling in).
fn set_until_ok(cluster: &Cluster, i: usize, key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = Conn::open(cluster.nodes[i].client).and_then(|mut c| c.call(&["SET", key, value]));
        match r {
            Ok(Reply::Simple(s)) if s == "OK" => return,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "SET {key} {value} on node {} never succeeded: {other:?}",
                    i + 1
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Writes `n` keys through the leader and returns once all nodes applied them.
fn write_keys(cluster: &Cluster, n: u64) {
    let leader = cluster.leader(Duration::from_secs(15));
    let mut c = Conn::open(cluster.nodes[leader].client).unwrap();
    for k in 0..n {
        let r = c
            .call(&["SET", &format!("key{k}"), &format!("value{k}")])
            .unwrap();
        assert_eq!(r, Reply::Simple("OK".into()));
    }
    cluster.converge(Duration::from_secs(20));
}

fn check_keys(cluster: &Cluster, n: u64) {
    let leader = cluster.leader(Duration::from_secs(15));
    let mut c = Conn::open(cluster.nodes[leader].client).unwrap();
    for k in 0..n {
        let r = c.call(&["GET", &format!("key{k}")]).unwrap();
        assert_eq!(r, Reply::Bulk(Some(format!("value{k}"))), "key{k}");
    }
}

#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn torn_wal_tail_is_cut_off_on_recovery() {
    let mut cluster = Cluster::new("torn", 3, &[]);
    write_keys(&cluster, 200);
    for i in 0..3 {
        cluster.kill(i);
    }
    // Node 2: its last record torn in half, as if the machine died mid-write.
    let seg = cluster.segments(1).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    // Node 3: the start of a record header that never got its body.
    let seg3 = cluster.segments(2).pop().unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&seg3)
        .unwrap()
        .write_all(&[0x40, 0, 0, 0, 0xde, 0xad])
        .unwrap();
    for i in 0..3 {
        cluster.start(i);
    }
    cluster.leader(Duration::from_secs(15));
    cluster.converge(Duration::from_secs(20));
    check_keys(&cluster, 200);
    for i in [1, 2] {
        let log = fs::read_to_string(cluster.log(i)).unwrap();
        assert!(
            log.contains("recovery cut a torn tail"),
            "node {} did not report the torn tail:\n{log}",
            i + 1
        );
    }
}

// ---- a follower's WAL damaged while it was down ------------------------------

/// What restarting the damaged follower must do.
enum Expect {
    /// Start at once and say `note` in its log.
    Starts { note: &'static str },
    /// Refuse, saying each of `says` and changing nothing; start when given
    /// `flag`, and leave recovery once caught up if `votes_again`.
    Refused {
        says: Vec<String>,
        flag: &'static str,
        votes_again: bool,
    },
}

/// Writes 200 keys, stops a follower (node 3 unless it leads), damages its
/// data directory with `damage`, writes 50 more keys and `x`, and restarts
/// it as `expect` says. Whichever way it starts, it must catch up from the
/// same leader without an election: its commit and applied index reach the
/// leader's, a linearizable GET on it returns the latest `x`, and every key
/// is in its state machine.
fn damaged_follower(name: &str, damage: impl FnOnce(&Cluster, usize) -> Expect) {
    let mut cluster = Cluster::new(name, 3, &[]);
    write_keys(&cluster, 200);
    let leader = cluster.leader(Duration::from_secs(15));
    let term = cluster.info(leader).unwrap()["term"].clone();
    let victim = if leader == 2 { 1 } else { 2 };
    cluster.kill(victim);
    let expect = damage(&cluster, victim);

    let mut c = Conn::open(cluster.nodes[leader].client).unwrap();
    for k in 200..250 {
        let r = c
            .call(&["SET", &format!("key{k}"), &format!("value{k}")])
            .unwrap();
        assert_eq!(r, Reply::Simple("OK".into()));
    }
    assert_eq!(
        c.call(&["SET", "x", "latest"]).unwrap(),
        Reply::Simple("OK".into())
    );

    match &expect {
        Expect::Starts { .. } => cluster.start(victim),
        Expect::Refused { says, flag, .. } => {
            let dir = cluster.data_dir(victim);
            let before = snapshot(&dir);
            let stderr = run_to_exit(cluster.command(victim), Duration::from_secs(20));
            for s in says {
                assert!(stderr.contains(s.as_str()), "no {s:?} in:\n{stderr}");
            }
            assert!(
                snapshot(&dir) == before,
                "the refused data directory was modified"
            );
            eprintln!("{name}: refused as expected:\n{stderr}");
            cluster.start_with(victim, &[flag]);
        }
    }

    // A node that kept part of its log stays out of elections until a new
    // leader commits an entry; one that joined empty needs only to catch up.
    // (A torn tail that the saved commit index covered is lost data too.)
    let votes_again = match expect {
        Expect::Starts { .. } => false,
        Expect::Refused { votes_again, .. } => votes_again,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let l = cluster.info(leader).unwrap();
        let v = cluster.info(victim);
        if let Some(v) = &v
            && v["commit_index"] == l["commit_index"]
            && v["applied_index"] == l["commit_index"]
            && (!votes_again || v["recovering"] == "0")
        {
            assert_eq!(l["role"], "leader", "the leader changed");
            assert_eq!(l["term"], term, "there was an election");
            eprintln!(
                "{name}: node {} caught up to {} (recovering: {})",
                victim + 1,
                l["commit_index"],
                v["recovering"]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {} did not catch up: {v:?} vs leader {l:?}\n{}",
            victim + 1,
            cluster.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let mut v = Conn::open(cluster.nodes[victim].client).unwrap();
    assert_eq!(
        v.call(&["GET", "x"]).unwrap(),
        Reply::Bulk(Some("latest".into())),
        "linearizable GET on the rejoined node"
    );
    for k in 0..250 {
        assert_eq!(
            v.call(&["STALEGET", &format!("key{k}")]).unwrap(),
            Reply::Bulk(Some(format!("value{k}"))),
            "key{k} on the rejoined node"
        );
    }
    if let Expect::Starts { note } = expect {
        let log = fs::read_to_string(cluster.log(victim)).unwrap();
        assert!(
            log.contains(note),
            "no {note:?} in node {}'s log:\n{log}",
            victim + 1
        );
    }
}

/// Runs a node that must refuse to start; returns what it said.
fn run_to_exit(mut cmd: Command, timeout: Duration) -> String {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("the node started instead of refusing:\n{err}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "the node exited 0:\n{err}");
    err
}

/// Every file under `dir` with its bytes; empty if `dir` does not exist.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Where each record of a segment starts, and the index it holds.
fn records(segment: &[u8]) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    let mut pos = 4096;
    while pos + 16 <= segment.len() {
        let len = u32::from_le_bytes(segment[pos..pos + 4].try_into().unwrap()) as usize;
        let index = u64::from_le_bytes(segment[pos + 8..pos + 16].try_into().unwrap());
        out.push((pos, index));
        pos += 8 + len;
    }
    out
}

#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn wal_with_a_flipped_byte_is_refused_naming_file_offset_and_record() {
    damaged_follower("flip", |cluster, v| {
        let seg = cluster.segments(v).pop().unwrap();
        let mut bytes = fs::read(&seg).unwrap();
        let recs = records(&bytes);
        let (pos, index) = recs[recs.len() / 2];
        let (next, _) = recs[recs.len() / 2 + 1];
        // The last data byte of a record in the middle: its CRC fails and
        // valid records follow, so this is no torn write.
        bytes[next - 1] ^= 0x01;
        fs::write(&seg, &bytes).unwrap();
        Expect::Refused {
            says: vec![
                format!("corrupt WAL: {} at byte {pos}", seg.display()),
                format!("the record for index {index} fails its checksum"),
                "refusing to start".into(),
                "--accept-data-loss".into(),
            ],
            flag: "--accept-data-loss",
            votes_again: false,
        }
    });
}

#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn wal_cut_by_7_bytes_is_a_torn_tail_and_the_node_catches_up() {
    damaged_follower("cut7", |cluster, v| {
        let seg = cluster.segments(v).pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        set_len(&seg, len - 7);
        Expect::Starts {
            note: "recovery cut a torn tail",
        }
    });
}

#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn wal_cut_to_half_is_refused_as_lost_data_until_accepted() {
    damaged_follower("half", |cluster, v| {
        let seg = cluster.segments(v).pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        set_len(&seg, len / 2);
        Expect::Refused {
            says: vec![
                format!("corrupt WAL: {}", seg.display()),
                "records that were durable are lost".into(),
                "--accept-data-loss".into(),
                "--rejoin".into(),
            ],
            flag: "--accept-data-loss",
            votes_again: false,
        }
    });
}

#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn wal_segment_zeroed_is_refused_as_lost_data_until_accepted() {
    damaged_follower("zeroed", |cluster, v| {
        let seg = cluster.segments(v).pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len() as usize;
        fs::write(&seg, vec![0u8; len]).unwrap();
        Expect::Refused {
            says: vec![
                format!(
                    "corrupt WAL: {} at byte 0: the segment header is zeros",
                    seg.display()
                ),
                "lost".into(),
                "--accept-data-loss".into(),
            ],
            flag: "--accept-data-loss",
            votes_again: false,
        }
    });
}

#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn wiped_data_dir_is_refused_until_rejoin_and_then_catches_up() {
    damaged_follower("wiped", |cluster, v| {
        fs::remove_dir_all(cluster.data_dir(v)).unwrap();
        Expect::Refused {
            says: vec![
                "holds no data".into(),
                "--bootstrap".into(),
                "--join-cluster".into(),
                "--rejoin".into(),
            ],
            flag: "--rejoin",
            votes_again: true,
        }
    });
}

fn set_len(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn garbage_from_clients_and_peers_does_not_crash_a_node() {
    let cluster = Cluster::new("garbage", 3, &[]);
    cluster.leader(Duration::from_secs(15));
    let target = &cluster.nodes[2];
    let mut rng = Rng(seed());
    let junk: Vec<Vec<u8>> = vec![
        b"*99999999\r\n".to_vec(),
        b"*1\r\n$2000000000\r\n".to_vec(),
        b"*2\r\n$3\r\nGET\r\n:1\r\n".to_vec(),
        b"*0\r\n*1\r\n$3\r\nFOO\r\n".to_vec(),
        (0..4096).map(|_| rng.next() as u8).collect(),
        b"SET\r\n".to_vec(),
    ];
    for j in &junk {
        for addr in [target.client, target.peer] {
            if let Ok(mut s) = TcpStream::connect(addr) {
                let _ = s.write_all(j);
                let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
                let mut sink = [0u8; 256];
                let _ = s.read(&mut sink);
            }
        }
    }
    // A well-formed hello followed by a frame that is not a message.
    if let Ok(mut s) = TcpStream::connect(target.peer) {
        let mut hello = b"ZKVPEER1".to_vec();
        hello.extend_from_slice(&1u64.to_le_bytes());
        hello.extend_from_slice(&3u64.to_le_bytes());
        hello.extend_from_slice(&5u32.to_le_bytes());
        hello.extend_from_slice(&[0xff; 5]);
        let _ = s.write_all(&hello);
        thread::sleep(Duration::from_millis(200));
    }
    let mut c = Conn::open(target.client).unwrap();
    assert_eq!(c.call(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    let info = cluster.info(2).unwrap();
    assert!(
        info["bad_requests"].parse::<u64>().unwrap() >= 3,
        "{info:?}"
    );
    assert!(
        info["peer_bad_handshakes"].parse::<u64>().unwrap() >= 1,
        "{info:?}"
    );
    assert!(
        info["peer_bad_frames"].parse::<u64>().unwrap() >= 1,
        "{info:?}"
    );
    write_keys(&cluster, 10);
    check_keys(&cluster, 10);
}

/// `TRANSFER <id>` hands leadership to that node and answers once zaft's
/// `Ready::transfer_ended` says it succeeded; the old leader then redirects
/// writes to the new one (it learnt of it from `Ready::soft_state`, not by
/// polling), and a follower redirects the TRANSFER itself.
#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn transfer_hands_leadership_over_and_the_old_leader_redirects() {
    let cluster = Cluster::new("transfer", 3, &[]);
    let old = cluster.leader(Duration::from_secs(15));
    let target = (old + 1) % 3;
    let follower = (old + 2) % 3;
    let mut f = Conn::open(cluster.nodes[follower].client).unwrap();
    let id = cluster.nodes[target].id.to_string();
    assert_eq!(
        f.call(&["TRANSFER", &id]).unwrap(),
        Reply::Error(format!("MOVED 0 {}", cluster.nodes[old].client))
    );
    let mut c = Conn::open(cluster.nodes[old].client).unwrap();
    assert_eq!(
        c.call(&["SET", "before", "1"]).unwrap(),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        c.call(&["TRANSFER", &id]).unwrap(),
        Reply::Simple("OK".into())
    );
    // The old leader heard the new one's vote request, and soon its
    // AppendEntries: it redirects writes there.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.call(&["SET", "after", "2"]).unwrap();
        if r == Reply::Error(format!("MOVED 0 {}", cluster.nodes[target].client)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no redirect to the new leader: {r:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(cluster.leader(Duration::from_secs(5)), target);
    let mut t = Conn::open(cluster.nodes[target].client).unwrap();
    assert_eq!(
        t.call(&["SET", "after", "2"]).unwrap(),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        t.call(&["GET", "before"]).unwrap(),
        Reply::Bulk(Some("1".into()))
    );
    assert_eq!(
        t.call(&["TRANSFER", "9"]).unwrap(),
        Reply::Error("ERR node 9 is not a member".into())
    );
}

/// `--log debug` prints zaft's election events (the example is built with
/// zaft's `tracing` feature) and kv_store's own (WAL recovery, peer links,
/// client connections) through one subscriber on stderr; a bad level is
/// refused before the node starts.
#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn log_debug_prints_zaft_election_events_and_kv_stores_own() {
    let cluster = Cluster::new("log", 3, &["--log", "debug"]);
    let leader = cluster.leader(Duration::from_secs(15));
    let mut c = Conn::open(cluster.nodes[leader].client).unwrap();
    assert_eq!(c.call(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    drop(c);
    thread::sleep(Duration::from_millis(300));
    let log = fs::read_to_string(cluster.log(leader)).unwrap();
    for want in [
        "zaft: event=\"election_won\"",
        "kind=\"vote\"",
        "role_changed",
        "WAL recovered",
        "peer link up",
        "client connected",
        "client disconnected",
        "DEBUG",
    ] {
        assert!(
            log.contains(want),
            "no {want:?} in the leader's log:\n{log}"
        );
    }

    let mut cmd = cluster.command(0);
    cmd.args(["--log", "loud"]);
    let err = run_to_exit(cmd, Duration::from_secs(10));
    assert!(
        err.contains("--log: want off, error, warn, info, debug or trace"),
        "{err}"
    );
}

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(s.into()))
}

fn int_reply(r: Reply) -> i64 {
    match r {
        Reply::Int(i) => i,
        other => panic!("not an integer: {other:?}"),
    }
}

/// The Redis commands a client library and redis-benchmark use, over RESP
/// against a real 3-node cluster; and a key with a TTL that all three nodes
/// show until it expires and none shows after, deleted on every node alike
/// by the write that follows.
#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn redis_commands_work_and_all_three_nodes_agree_on_an_expiry() {
    let cluster = Cluster::new("commands", 3, &[]);
    let leader = cluster.leader(Duration::from_secs(15));
    let mut c = Conn::open(cluster.nodes[leader].client).unwrap();
    let mut call = |args: &[&str]| c.call(args).unwrap();

    // Connection set-up as client libraries do it.
    let Reply::Array(hello) = call(&["HELLO", "2", "SETNAME", "lib"]) else {
        panic!("HELLO answers a map")
    };
    assert_eq!(hello[4..6], [bulk("proto"), Reply::Int(2)]);
    assert!(matches!(call(&["HELLO", "3"]), Reply::Error(e) if e.starts_with("NOPROTO")));
    assert_eq!(call(&["CLIENT", "GETNAME"]), bulk("lib"));
    assert_eq!(call(&["CLIENT", "SETNAME", "app"]), ok());
    assert_eq!(call(&["CLIENT", "GETNAME"]), bulk("app"));
    assert!(int_reply(call(&["CLIENT", "ID"])) > 0);
    assert_eq!(call(&["CLIENT", "SETINFO", "LIB-NAME", "test"]), ok());
    assert_eq!(call(&["SELECT", "0"]), ok());
    assert_eq!(
        call(&["SELECT", "1"]),
        Reply::Error("ERR DB index is out of range".into())
    );
    assert_eq!(
        call(&["CONFIG", "GET", "save"]),
        Reply::Array(vec![bulk("save"), bulk("")])
    );
    assert_eq!(
        call(&["CONFIG", "GET", "appendonly"]),
        Reply::Array(vec![bulk("appendonly"), bulk("yes")])
    );
    assert_eq!(
        call(&["ECHO"]),
        Reply::Error("ERR wrong number of arguments for 'echo' command".into())
    );

    // Keys.
    assert_eq!(call(&["MSET", "a", "1", "b", "2"]), ok());
    assert_eq!(
        call(&["MGET", "a", "b", "c"]),
        Reply::Array(vec![bulk("1"), bulk("2"), Reply::Bulk(None)])
    );
    assert_eq!(call(&["EXISTS", "a", "b", "c"]), Reply::Int(2));
    assert_eq!(call(&["SET", "n", "5", "NX"]), ok());
    assert_eq!(call(&["SET", "n", "6", "NX"]), Reply::Bulk(None));
    assert_eq!(call(&["SET", "n", "7", "XX", "GET"]), bulk("5"));
    assert_eq!(call(&["GET", "n"]), bulk("7"));
    assert_eq!(call(&["INCR", "n"]), Reply::Int(8));
    assert_eq!(call(&["EXPIRE", "a", "100"]), Reply::Int(1));
    assert_eq!(call(&["TTL", "a"]), Reply::Int(100));
    assert_eq!(call(&["EXPIRE", "nosuch", "5"]), Reply::Int(0));
    assert_eq!(call(&["TTL", "b"]), Reply::Int(-1));
    assert_eq!(call(&["DBSIZE"]), Reply::Int(3));

    // A key that expires 1.5 s after the leader stamped its SET.
    assert_eq!(call(&["SET", "gone", "x", "PX", "300"]), ok());
    let set_at = Instant::now();
    assert_eq!(call(&["SET", "t", "v", "PX", "1500"]), ok());
    for (i, n) in cluster.nodes.iter().enumerate() {
        let mut f = Conn::open(n.client).unwrap();
        assert_eq!(f.call(&["GET", "t"]).unwrap(), bulk("v"), "node {}", i + 1);
        let pttl = int_reply(f.call(&["PTTL", "t"]).unwrap());
        assert!(0 < pttl && pttl <= 1500, "node {}: PTTL {pttl}", i + 1);
        let ttl = int_reply(f.call(&["TTL", "t"]).unwrap());
        assert!((1..=2).contains(&ttl), "node {}: TTL {ttl}", i + 1);
        if i != leader {
            assert!(matches!(
                f.call(&["SET", "x", "1"]).unwrap(),
                Reply::Error(e) if e.starts_with("MOVED ")
            ));
        }
    }
    thread::sleep(Duration::from_millis(1600).saturating_sub(set_at.elapsed()));
    for (i, n) in cluster.nodes.iter().enumerate() {
        let mut f = Conn::open(n.client).unwrap();
        let node = i + 1;
        assert_eq!(
            f.call(&["GET", "t"]).unwrap(),
            Reply::Bulk(None),
            "node {node}"
        );
        assert_eq!(
            f.call(&["EXISTS", "t", "gone"]).unwrap(),
            Reply::Int(0),
            "node {node}"
        );
        assert_eq!(
            f.call(&["PTTL", "t"]).unwrap(),
            Reply::Int(-2),
            "node {node}"
        );
        assert_eq!(f.call(&["DBSIZE"]).unwrap(), Reply::Int(3), "node {node}");
    }
    // The next write's stamp is past both expiry times: applying it deletes
    // both keys on every node, and SET NX sees `t` as absent.
    assert_eq!(call(&["SET", "t", "again", "NX"]), ok());
    cluster.converge(Duration::from_secs(10));
    for i in 0..3 {
        let info = cluster.info(i).unwrap();
        assert_eq!(info["keys"], "4", "node {}: {info:?}", i + 1);
        assert_eq!(info["keys_with_ttl"], "1", "node {}: a's TTL", i + 1);
        let mut f = Conn::open(cluster.nodes[i].client).unwrap();
        assert_eq!(f.call(&["GET", "t"]).unwrap(), bulk("again"));
        assert_eq!(f.call(&["TTL", "t"]).unwrap(), Reply::Int(-1));
    }
}

// ---- peer and client authentication ---------------------------------------

/// The handshake of `examples/kv_store/auth.rs`, as a peer dialing node
/// `to` as node `from` would do it with `secret`: returns the stream if the
/// node answered its challenge, and the answer the node gave.
fn fake_peer_handshake(
    addr: SocketAddr,
    from: u64,
    to: u64,
    secret: &[u8],
) -> (TcpStream, Vec<u8>) {
    use hmac::{Hmac, Mac};
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hello = b"ZKVPEER2".to_vec();
    hello.extend_from_slice(&from.to_le_bytes());
    hello.extend_from_slice(&to.to_le_bytes());
    hello.extend_from_slice(&[0x5a; 32]);
    s.write_all(&hello).unwrap();
    let mut reply = [0u8; 64];
    s.read_exact(&mut reply).unwrap();
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    m.update(b"D->A");
    m.update(&reply[..32]);
    m.update(&from.to_le_bytes());
    m.update(&to.to_le_bytes());
    s.write_all(&m.finalize().into_bytes()).unwrap();
    (s, reply[32..].to_vec())
}

fn info_u64(cluster: &Cluster, i: usize, key: &str) -> u64 {
    cluster.info(i).unwrap()[key].parse().unwrap()
}

/// With `--cluster-secret`, peers authenticate each other with a
/// challenge-response: the cluster forms and replicates as usual; a peer
/// that answers the challenge with the wrong secret, or skips it with the
/// old unauthenticated hello, is refused and counted, and the real link it
/// claimed to be keeps working: it is neither replaced nor re-established.
#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn a_peer_without_the_cluster_secret_is_refused_and_the_real_link_stays() {
    let secret_file =
        std::env::temp_dir().join(format!("kv-crash-secret-file-{}", std::process::id()));
    fs::write(&secret_file, "a cluster secret of 32 bytes....\n").unwrap();
    let path = secret_file.to_str().unwrap().to_string();
    let cluster = Cluster::new("secret", 3, &["--cluster-secret", &path]);
    write_keys(&cluster, 20);
    // Every node has read it by now.
    fs::remove_file(&secret_file).unwrap();
    // Node 3 accepts node 1's and node 2's links; a fake node 1 dials it.
    let target = 2;
    let connects = info_u64(&cluster, target, "peer_connects");
    let received = info_u64(&cluster, target, "peer_frames_received");
    let (mut fake, _) = fake_peer_handshake(
        cluster.nodes[target].peer,
        1,
        3,
        b"not the cluster secret, 32 bytes",
    );
    // The node closes the connection instead of reading frames from it.
    let mut sink = [0u8; 16];
    assert!(matches!(fake.read(&mut sink), Ok(0) | Err(_)));
    // The unauthenticated hello of a node without a secret is refused too.
    let mut old = TcpStream::connect(cluster.nodes[target].peer).unwrap();
    old.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hello = b"ZKVPEER1".to_vec();
    hello.extend_from_slice(&1u64.to_le_bytes());
    hello.extend_from_slice(&3u64.to_le_bytes());
    old.write_all(&hello).unwrap();
    assert!(matches!(old.read(&mut sink), Ok(0) | Err(_)));

    let info = cluster.info(target).unwrap();
    assert_eq!(info["peer_auth"], "cluster-secret");
    assert!(
        info["peer_auth_failures"].parse::<u64>().unwrap() >= 2,
        "{info:?}"
    );
    assert_eq!(
        info["peer_connects"].parse::<u64>().unwrap(),
        connects,
        "the real link was replaced: {info:?}"
    );
    // The real links still carry the cluster's traffic.
    write_keys(&cluster, 40);
    assert!(info_u64(&cluster, target, "peer_frames_received") > received);
    check_keys(&cluster, 40);
    let log = fs::read_to_string(cluster.log(target)).unwrap();
    assert!(
        log.contains("peer connection refused: authentication failed"),
        "{log}"
    );
}

/// With `--requirepass`, a client must AUTH before anything else: commands
/// before it get Redis's `-NOAUTH`, a wrong password `-WRONGPASS`, and
/// `HELLO 2 AUTH default <password>` authenticates as client libraries do.
#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn clients_must_auth_with_requirepass() {
    let cluster = Cluster::new("auth", 3, &["--requirepass", "s3cret pass"]);
    let leader = cluster.leader(Duration::from_secs(15));
    let mut c = Conn::open(cluster.nodes[leader].client).unwrap();
    let noauth = Reply::Error("NOAUTH Authentication required.".into());
    assert_eq!(c.call(&["PING"]).unwrap(), noauth);
    assert_eq!(c.call(&["SET", "k", "v"]).unwrap(), noauth);
    assert_eq!(c.call(&["GET", "k"]).unwrap(), noauth);
    assert!(matches!(c.call(&["HELLO", "2"]).unwrap(), Reply::Error(e) if e.starts_with("NOAUTH")));
    let wrong =
        Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into());
    assert_eq!(c.call(&["AUTH", "guess"]).unwrap(), wrong);
    assert_eq!(c.call(&["AUTH", "admin", "s3cret pass"]).unwrap(), wrong);
    assert_eq!(c.call(&["PING"]).unwrap(), noauth);
    assert_eq!(c.call(&["AUTH", "s3cret pass"]).unwrap(), ok());
    assert_eq!(c.call(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    assert_eq!(c.call(&["SET", "k", "v"]).unwrap(), ok());
    assert_eq!(c.call(&["GET", "k"]).unwrap(), bulk("v"));
    // A new connection is not authenticated; HELLO with AUTH does it.
    let mut d = Conn::open(cluster.nodes[(leader + 1) % 3].client).unwrap();
    assert_eq!(d.call(&["GET", "k"]).unwrap(), noauth);
    assert!(matches!(
        d.call(&["HELLO", "2", "AUTH", "default", "s3cret pass"])
            .unwrap(),
        Reply::Array(_)
    ));
    assert_eq!(d.call(&["GET", "k"]).unwrap(), bulk("v"));
    let info = cluster.info(leader).unwrap();
    assert_eq!(info["requirepass"], "yes");
    assert_eq!(info["client_auth_failures"], "2", "{info:?}");
}

// ---- membership changes ------------------------------------------------------

/// Sends `args` (a `CLUSTER` command) to the leader, following `MOVED` and
/// waiting out elections, `TRYAGAIN` and nodes that are down, until a node
/// answers for good: `+OK`, an `-ERR`, or an array; returns that answer.
fn admin(cluster: &Cluster, args: &[&str]) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut at = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "{args:?} got no answer in 30 s\n{}",
            cluster.logs()
        );
        let i = at % cluster.nodes.len();
        if !cluster.up(i) {
            at += 1;
            continue;
        }
        let r = Conn::open_waiting(cluster.nodes[i].client, Duration::from_secs(20))
            .and_then(|mut c| c.call(args));
        match r {
            Ok(Reply::Error(e)) if e.starts_with("MOVED ") => {
                let to: Option<SocketAddr> = e.rsplit(' ').next().and_then(|a| a.parse().ok());
                at = to
                    .and_then(|a| cluster.nodes.iter().position(|n| n.client == a))
                    .unwrap_or(at + 1);
            }
            Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN") || e.starts_with("TIMEOUT") => {
                if e.starts_with("TRYAGAIN no leader") {
                    at += 1;
                }
                thread::sleep(Duration::from_millis(50));
            }
            Ok(r) => return r,
            Err(_) => {
                at += 1;
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Runs a membership change until it is done: `+OK`, or the refusal that
/// says an earlier attempt, cut short by a crash, committed after all.
/// Returns whether it had.
fn finish(cluster: &Cluster, args: &[&str], done_already: &str) -> bool {
    match admin(cluster, args) {
        Reply::Simple(s) if s == "OK" => false,
        Reply::Error(e) if e.contains(done_already) => true,
        other => panic!("{args:?}: {other:?}\n{}", cluster.logs()),
    }
}

/// Waits until node `i` answers PING.
fn wait_up(cluster: &Cluster, i: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Conn::open(cluster.nodes[i].client)
        .and_then(|mut c| c.call(&["PING"]))
        .is_ok_and(|r| r == Reply::Simple("PONG".into()))
    {
        assert!(
            Instant::now() < deadline,
            "node {} did not start\n{}",
            i + 1,
            cluster.logs()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn add_learner_args(cluster: &Cluster, i: usize) -> Vec<String> {
    let n = &cluster.nodes[i];
    vec![
        "CLUSTER".into(),
        "ADDLEARNER".into(),
        n.id.to_string(),
        n.peer.to_string(),
        n.client.to_string(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Sends `args` to the leader and `kill -9`s `victim` (the leader if
/// `None`) a few ms later, before or after the change reaches the log;
/// restarts it after a while. Returns who was killed.
fn change_and_kill(
    cluster: &mut Cluster,
    rng: &mut Rng,
    args: &[&str],
    victim: Option<usize>,
) -> usize {
    let leader = cluster.leader(Duration::from_secs(15));
    let victim = victim.unwrap_or(leader);
    let mut c = Conn::open(cluster.nodes[leader].client).unwrap();
    c.send(args).unwrap();
    thread::sleep(Duration::from_millis(rng.below(20)));
    cluster.kill(victim);
    thread::sleep(Duration::from_millis(300 + rng.below(500)));
    cluster.start(victim);
    victim
}

fn voters(cluster: &Cluster, i: usize) -> Vec<u64> {
    let info = cluster.info(i).expect("the node answers INFO");
    let mut v: Vec<u64> = info["voters"]
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    v.sort();
    v
}

/// The cluster grows from three voters to five and loses one, under the
/// load of `crash_under_load`, with `kill -9`s in the middle of each
/// change: node 4 killed while it catches up as a learner (and restarted
/// from its data directory, with no voters: its log says what it is), the
/// leader killed right after it was asked to add node 5 and again to
/// remove a founding member, node 5 killed as it is promoted. Each change
/// is then finished (a retry finds it done or does it), the removed node is
/// stopped, and no acknowledged write is lost, the history is linearizable,
/// every remaining node agrees on the voters, and every one cut the removed
/// node off.
#[test]
#[ignore = "slow: builds the example, runs five processes and kills them; run with --ignored"]
fn membership_changes_survive_kill_9_of_the_leader_and_of_joining_nodes_under_load() {
    let name = "membership";
    let seed = seed();
    eprintln!("{name}: seed {seed} (set KV_CRASH_SEED to replay the timing of the kills)");
    let mut rng = Rng(seed);
    let mut cluster = Cluster::new(name, 3, &[]);
    cluster.leader(Duration::from_secs(15));
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.client).collect();
    let mut load = Load::start(seed, addrs);
    let mut kills = Vec::new();
    // Which interrupted changes had committed before their crash.
    let mut survived = Vec::new();
    thread::sleep(Duration::from_millis(800));

    // Node 4 killed while it catches up as a learner.
    let n4 = cluster.add_node();
    cluster.start_with(n4, &["--join-cluster"]);
    wait_up(&cluster, n4);
    assert!(!finish(
        &cluster,
        &strs(&add_learner_args(&cluster, n4)),
        "as it is"
    ));
    thread::sleep(Duration::from_millis(rng.below(60)));
    cluster.kill(n4);
    kills.push(("node 4, a learner catching up", n4 + 1));
    thread::sleep(Duration::from_millis(300 + rng.below(500)));
    cluster.start(n4);
    assert!(!finish(&cluster, &["CLUSTER", "PROMOTE", "4"], "as it is"));

    // The leader killed as it adds node 5.
    let n5 = cluster.add_node();
    cluster.start_with(n5, &["--join-cluster"]);
    wait_up(&cluster, n5);
    let add5 = add_learner_args(&cluster, n5);
    let k = change_and_kill(&mut cluster, &mut rng, &strs(&add5), None);
    kills.push(("the leader, adding node 5", k + 1));
    survived.push(("add 5", finish(&cluster, &strs(&add5), "as it is")));

    // Node 5 killed as it is promoted.
    let k = change_and_kill(
        &mut cluster,
        &mut rng,
        &["CLUSTER", "PROMOTE", "5"],
        Some(n5),
    );
    kills.push(("node 5, being promoted", k + 1));
    survived.push((
        "promote 5",
        finish(&cluster, &["CLUSTER", "PROMOTE", "5"], "as it is"),
    ));

    // The leader killed as it removes a founding member.
    let leader = cluster.leader(Duration::from_secs(15));
    let gone = (0..3).find(|&i| i != leader).unwrap();
    let gone_id = (gone + 1).to_string();
    let k = change_and_kill(
        &mut cluster,
        &mut rng,
        &["CLUSTER", "REMOVE", &gone_id],
        Some(leader),
    );
    kills.push(("the leader, removing a member", k + 1));
    survived.push((
        "remove",
        finish(
            &cluster,
            &["CLUSTER", "REMOVE", &gone_id],
            "is not a member",
        ),
    ));
    cluster.kill(gone);

    // One more, anywhere.
    let running: Vec<usize> = (0..cluster.nodes.len())
        .filter(|&i| cluster.up(i))
        .collect();
    let k = running[rng.below(running.len() as u64) as usize];
    cluster.kill(k);
    kills.push(("any node", k + 1));
    thread::sleep(Duration::from_millis(300 + rng.below(500)));
    cluster.start(k);
    thread::sleep(Duration::from_secs(1));
    load.stop();
    eprintln!(
        "{name}: killed: {kills:?}; removed node {}; interrupted changes that had committed: \
         {survived:?}",
        gone + 1
    );

    cluster.leader(Duration::from_secs(15));
    cluster.converge(Duration::from_secs(30));
    let mut want: Vec<u64> = (1..=5).filter(|&id| id != gone as u64 + 1).collect();
    want.sort();
    for i in (0..cluster.nodes.len()).filter(|&i| cluster.up(i)) {
        assert_eq!(voters(&cluster, i), want, "node {}'s voters", i + 1);
        let log = fs::read_to_string(cluster.log(i)).unwrap();
        assert!(
            log.contains("node removed") && log.contains(&format!("removed={}", gone + 1)),
            "node {} did not cut node {} off:\n{log}",
            i + 1,
            gone + 1
        );
    }
    load.check(name, &cluster);
}

/// `CLUSTER ADDLEARNER` refuses, saying why: on a follower (`MOVED` to the
/// leader), a voter, a bad address, id 0, a node already a learner, the
/// wrong arity. A node that joined with `--join-cluster` and was added
/// learns the members from the log, and every member learns its addresses
/// the same way.
#[test]
#[ignore = "slow: builds the example and runs four processes; run with --ignored"]
fn cluster_addlearner_refusals_say_why_and_a_learner_learns_the_members_from_the_log() {
    let mut cluster = Cluster::new("addlearner", 3, &[]);
    let leader = cluster.leader(Duration::from_secs(15));
    let follower = (leader + 1) % 3;
    let mut f = Conn::open(cluster.nodes[follower].client).unwrap();
    let n4 = cluster.add_node();
    let add4 = add_learner_args(&cluster, n4);
    assert_eq!(
        f.call(&strs(&add4)).unwrap(),
        Reply::Error(format!("MOVED 0 {}", cluster.nodes[leader].client))
    );
    let mut c = Conn::open(cluster.nodes[leader].client).unwrap();
    let f_id = (follower + 1).to_string();
    for (args, want) in [
        (
            vec!["CLUSTER", "ADDLEARNER", &f_id, "127.0.0.1:1", "127.0.0.1:2"],
            format!("ERR node {f_id} is a voter; CLUSTER ADDLEARNER adds a node that is not"),
        ),
        (
            vec!["CLUSTER", "ADDLEARNER", "4", "nowhere", "127.0.0.1:2"],
            "ERR invalid address 'nowhere': want IP:PORT".into(),
        ),
        (
            vec!["CLUSTER", "ADDLEARNER", "0", "127.0.0.1:1", "127.0.0.1:2"],
            "ERR node id 0 is reserved".into(),
        ),
        (
            vec!["CLUSTER", "ADDLEARNER", "4"],
            "ERR wrong number of arguments for 'cluster|addlearner' command".into(),
        ),
    ] {
        assert_eq!(c.call(&args).unwrap(), Reply::Error(want), "{args:?}");
    }

    cluster.start_with(n4, &["--join-cluster"]);
    wait_up(&cluster, n4);
    assert_eq!(c.call(&strs(&add4)).unwrap(), ok());
    assert_eq!(
        c.call(&strs(&add4)).unwrap(),
        Reply::Error("ERR the membership change leaves the configuration as it is".into())
    );
    assert_eq!(c.call(&["SET", "k", "v"]).unwrap(), ok());
    cluster.converge(Duration::from_secs(20));
    let info = cluster.info(n4).unwrap();
    assert_eq!(info["membership"], "learner", "{info:?}");
    let mut l = Conn::open(cluster.nodes[n4].client).unwrap();
    assert_eq!(l.call(&["STALEGET", "k"]).unwrap(), bulk("v"));
    // A follower knows node 4's addresses only from the entry's context.
    let want = format!(
        "id=4 role=learner peer={} client={}",
        cluster.nodes[n4].peer, cluster.nodes[n4].client
    );
    let Reply::Array(lines) = f.call(&["CLUSTER", "MEMBERS"]).unwrap() else {
        panic!("CLUSTER MEMBERS answers an array");
    };
    assert!(lines.contains(&bulk(&want)), "{lines:?}");
    assert_eq!(lines.len(), 4, "{lines:?}");
}

/// `CLUSTER PROMOTE` refuses a node that is not a member (promoting it
/// would add a voter with an empty log) and a voter, and waits for a
/// learner to catch up: one that is not running is refused after 5 s with
/// its progress; once it runs, the same command makes it a voter.
/// `CLUSTER MEMBERS` shows the roles and, on the leader, the progress.
#[test]
#[ignore = "slow: builds the example and runs four processes; run with --ignored"]
fn cluster_promote_refuses_an_unknown_node_and_waits_for_the_learner_to_catch_up() {
    let mut cluster = Cluster::new("promote", 3, &[]);
    let leader = cluster.leader(Duration::from_secs(15));
    let mut c = Conn::open_waiting(cluster.nodes[leader].client, Duration::from_secs(20)).unwrap();
    assert_eq!(
        c.call(&["CLUSTER", "PROMOTE", "9"]).unwrap(),
        Reply::Error("ERR node 9 is not a member; add it with CLUSTER ADDLEARNER first".into())
    );
    let voter = ((leader + 1) % 3 + 1).to_string();
    assert_eq!(
        c.call(&["CLUSTER", "PROMOTE", &voter]).unwrap(),
        Reply::Error("ERR the membership change leaves the configuration as it is".into())
    );
    for k in 0..50 {
        assert_eq!(c.call(&["SET", &format!("key{k}"), "v"]).unwrap(), ok());
    }

    // Added, but not running: it cannot catch up.
    let n4 = cluster.add_node();
    assert_eq!(
        c.call(&strs(&add_learner_args(&cluster, n4))).unwrap(),
        ok()
    );
    let Reply::Array(lines) = c.call(&["CLUSTER", "MEMBERS"]).unwrap() else {
        panic!("CLUSTER MEMBERS answers an array");
    };
    let line = |id: usize| {
        lines
            .iter()
            .find_map(|l| match l {
                Reply::Bulk(Some(s)) if s.starts_with(&format!("id={id} ")) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no member {id} in {lines:?}"))
    };
    assert!(line(4).contains("role=learner"), "{}", line(4));
    assert!(
        line(4).contains("match=0 ") && line(4).contains("state=probe"),
        "{}",
        line(4)
    );
    assert!(
        line(leader + 1).contains("role=voter") && line(leader + 1).contains("leader=yes"),
        "{}",
        line(leader + 1)
    );
    let t0 = Instant::now();
    let r = c.call(&["CLUSTER", "PROMOTE", "4"]).unwrap();
    let Reply::Error(e) = &r else {
        panic!("promoted a learner that never ran: {r:?}")
    };
    assert!(
        e.starts_with("TRYAGAIN node 4 has not caught up in 5 s (its match index 0"),
        "{e}"
    );
    assert!(t0.elapsed() >= Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(cluster.info(leader).unwrap()["learners"], "4");

    // Running, it catches up and the same command promotes it.
    cluster.start_with(n4, &["--join-cluster"]);
    assert_eq!(c.call(&["CLUSTER", "PROMOTE", "4"]).unwrap(), ok());
    cluster.converge(Duration::from_secs(20));
    assert_eq!(cluster.info(n4).unwrap()["membership"], "voter");
    assert_eq!(voters(&cluster, n4), [1, 2, 3, 4]);
    let Reply::Array(lines) = c.call(&["CLUSTER", "MEMBERS"]).unwrap() else {
        panic!("CLUSTER MEMBERS answers an array");
    };
    assert!(
        lines.iter().any(|l| matches!(l, Reply::Bulk(Some(s))
            if s.starts_with("id=4 role=voter") && s.contains("state=replicate"))),
        "{lines:?}"
    );
}

/// `CLUSTER REMOVE` refuses a node that is not a member and the last voter;
/// the leader removes the others one by one (each removal committed by the
/// configuration it leads to) and then serves alone.
#[test]
#[ignore = "slow: builds the example and runs three processes; run with --ignored"]
fn cluster_remove_refuses_an_unknown_node_and_the_last_voter() {
    let mut cluster = Cluster::new("remove", 3, &[]);
    let leader = cluster.leader(Duration::from_secs(15));
    let follower = (leader + 1) % 3;
    let mut f = Conn::open(cluster.nodes[follower].client).unwrap();
    assert_eq!(
        f.call(&["CLUSTER", "REMOVE", "9"]).unwrap(),
        Reply::Error(format!("MOVED 0 {}", cluster.nodes[leader].client))
    );
    let mut c = Conn::open(cluster.nodes[leader].client).unwrap();
    assert_eq!(
        c.call(&["CLUSTER", "REMOVE", "9"]).unwrap(),
        Reply::Error("ERR node 9 is not a member".into())
    );
    for i in [(leader + 1) % 3, (leader + 2) % 3] {
        let id = (i + 1).to_string();
        assert_eq!(c.call(&["CLUSTER", "REMOVE", &id]).unwrap(), ok(), "{id}");
        cluster.kill(i);
    }
    let me = (leader + 1).to_string();
    assert_eq!(
        c.call(&["CLUSTER", "REMOVE", &me]).unwrap(),
        Reply::Error("ERR the change would leave no voter".into())
    );
    assert_eq!(voters(&cluster, leader), [leader as u64 + 1]);
    assert_eq!(c.call(&["SET", "alone", "1"]).unwrap(), ok());
    assert_eq!(c.call(&["GET", "alone"]).unwrap(), bulk("1"));
}
