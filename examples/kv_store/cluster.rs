//! Running a cluster of node processes on loopback, for the demo and the
//! benchmark: free ports, child processes (founding members and nodes that
//! join later), logs, clean-up.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zaft::NodeId;

use crate::client::Client;
use crate::resp::Reply;
use crate::server::Member;

/// `1=127.0.0.1:7101/127.0.0.1:6381,2=...`: id, peer address, client address.
pub fn format_cluster(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}/{}", m.id, m.peer_addr, m.client_addr))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn parse_cluster(s: &str) -> Result<Vec<Member>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let err = || format!("bad member {part:?}: want ID=PEER_ADDR/CLIENT_ADDR");
        let (id, addrs) = part.split_once('=').ok_or_else(err)?;
        let (peer, client) = addrs.split_once('/').ok_or_else(err)?;
        out.push(Member {
            id: NodeId(id.parse().map_err(|_| err())?),
            peer_addr: peer.parse().map_err(|_| err())?,
            client_addr: client.parse().map_err(|_| err())?,
        });
    }
    if out.is_empty() {
        return Err("--cluster lists no members".into());
    }
    Ok(out)
}

/// Addresses on loopback that were free a moment ago (the OS picked them).
pub fn free_addrs(n: usize) -> io::Result<Vec<SocketAddr>> {
    let ls = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    ls.iter().map(TcpListener::local_addr).collect()
}

/// Parses INFO's `key:value` lines.
pub fn parse_info(r: &Reply) -> HashMap<String, String> {
    let Reply::Bulk(Some(b)) = r else {
        return HashMap::new();
    };
    String::from_utf8_lossy(b)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

pub struct Cluster {
    pub dir: PathBuf,
    /// Every node ever started, in order of id (node `i` has id `i + 1`),
    /// removed ones included: restarts list them all in `--cluster`, which
    /// only tells a node addresses.
    pub members: Vec<Member>,
    children: Vec<Option<Child>>,
    exe: PathBuf,
}

impl Cluster {
    /// Starts `n` node processes of this same binary under `dir`: a new
    /// cluster, so each starts with `--bootstrap`.
    pub fn start(n: usize, dir: PathBuf) -> io::Result<Cluster> {
        fs::create_dir_all(&dir)?;
        let addrs = free_addrs(2 * n)?;
        let members = (0..n)
            .map(|i| Member {
                id: NodeId(i as u64 + 1),
                peer_addr: addrs[2 * i],
                client_addr: addrs[2 * i + 1],
            })
            .collect();
        let mut c = Cluster {
            dir,
            members,
            children: (0..n).map(|_| None).collect(),
            exe: std::env::current_exe()?,
        };
        for i in 0..n {
            c.spawn(i, &["--bootstrap"])?;
        }
        Ok(c)
    }

    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.client_addr).collect()
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{}.log", i + 1))
    }

    /// Starts a node new to the running cluster (`--join-cluster`, an empty
    /// data directory), with the next id and free ports; returns its index.
    /// It waits until the leader adds it (`CLUSTER ADDLEARNER`).
    pub fn add_node(&mut self) -> io::Result<usize> {
        let addrs = free_addrs(2)?;
        let i = self.members.len();
        self.members.push(Member {
            id: NodeId(i as u64 + 1),
            peer_addr: addrs[0],
            client_addr: addrs[1],
        });
        self.children.push(None);
        self.spawn(i, &["--join-cluster"])?;
        Ok(i)
    }

    pub fn running(&self, i: usize) -> bool {
        self.children[i].is_some()
    }

    /// Starts node `i`; `flags` go after the usual ones.
    fn spawn(&mut self, i: usize, flags: &[&str]) -> io::Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))?;
        let child = Command::new(&self.exe)
            .arg("node")
            .arg("--id")
            .arg(self.members[i].id.to_string())
            .arg("--data")
            .arg(self.dir.join(format!("node{}", i + 1)))
            .arg("--cluster")
            .arg(format_cluster(&self.members))
            .arg("--exit-with-parent")
            .args(flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills node `i` if it runs and starts it again from its data directory.
    pub fn restart(&mut self, i: usize) -> io::Result<()> {
        self.kill(i);
        self.spawn(i, &[])
    }

    /// INFO from node `i`, if it answers.
    pub fn info(&self, i: usize) -> Option<HashMap<String, String>> {
        let mut c = Client::new(vec![self.members[i].client_addr]);
        c.timeout = Duration::from_secs(2);
        c.call_once(&[b"INFO"]).ok().map(|r| parse_info(&r))
    }

    /// The index of the node that says it leads, once a running majority agrees.
    pub fn wait_leader(&self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            for i in 0..self.members.len() {
                if self.children[i].is_none() {
                    continue;
                }
                if let Some(info) = self.info(i)
                    && info.get("role").map(String::as_str) == Some("leader")
                {
                    return Some(i);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits until every running node has applied at least `index`.
    pub fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let all = (0..self.members.len())
                .filter(|&i| self.children[i].is_some())
                .all(|i| {
                    self.info(i)
                        .and_then(|m| m.get("applied_index")?.parse::<u64>().ok())
                        .is_some_and(|a| a >= index)
                });
            if all {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn tail_log(&self, i: usize, lines: usize) -> String {
        tail(&self.log_path(i), lines)
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let s = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> io::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
