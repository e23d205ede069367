//! The data directory as a whole: whose it is, whether it was ever set up,
//! which configuration its log starts from, and whether its node is still
//! catching up after losing data.
//!
//! A node must tell a brand-new cluster from one it is rejoining. An empty
//! data directory looks the same in both cases, but starting it as a fresh
//! member of a running cluster would let it vote with an empty log, after it
//! may have acknowledged entries a leader counted towards a commit. So an
//! empty directory starts only when the operator says which case it is:
//! `--bootstrap` (the first start of a new cluster), `--join-cluster` (a
//! node new to a running cluster: it starts with no voters and votes only
//! once the log makes it a voter), or `--rejoin` (this node lost its data
//! and rejoins under its old id: it restores with `lost_data`, so it neither
//! votes nor campaigns until it has caught up from the current leader).
//!
//! The `node` file records that the directory was initialised, for which
//! node id, the *founding voters* (the configuration the log starts from:
//! the `--cluster` ids of a bootstrapped or rejoined node, none for a node
//! that joined; membership entries in the log change it from there), and
//! whether the node is *recovering*: set before any lost data is given up
//! (an accepted [`Damage`](crate::wal::Damage), a `--rejoin`) or as soon as
//! zaft finds a log that ends below its commit index, and cleared only once
//! zaft says the node has caught up. A node that crashes while recovering
//! restarts recovering, whatever its log looks like then. Keeping the
//! founding voters here means a restart never takes them from a `--cluster`
//! list that has since grown.
//!
//! Nothing here changes the directory before it has decided to start.

use std::fs;
use std::io;
use std::path::Path;

use zaft::NodeId;

use crate::crc32c::crc32c;
use crate::wal::{self, Recovered, Wal};

/// The first format: no founding voters recorded (they come from
/// `--cluster`, as before membership changes existed).
const NODE_MAGIC_V1: &[u8; 8] = b"ZKVNODE1";
/// magic + id + flags + crc.
const NODE_FILE_V1_BYTES: usize = 8 + 8 + 4 + 4;
/// magic + id + flags + count + `count` ids + crc.
const NODE_MAGIC: &[u8; 8] = b"ZKVNODE2";
const NODE_FILE_HEADER_BYTES: usize = 8 + 8 + 4 + 4;
/// The most founding voters a `node` file lists.
const MAX_FOUNDERS: usize = 1024;
const RECOVERING: u32 = 1;
/// The founding voters are recorded (not a file converted from the first
/// format).
const FOUNDERS_KNOWN: u32 = 2;

/// How the operator asked the node to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// From the data directory, which must have been initialised.
    Restart,
    /// The first start of a brand-new cluster: initialise an empty directory
    /// with the `--cluster` ids as the founding voters.
    Bootstrap,
    /// The first start of a node new to a running cluster: initialise an
    /// empty directory with no founding voters; the node learns its
    /// configuration from the leader's log once it is added. On an
    /// initialised directory it changes nothing.
    JoinCluster,
    /// Rejoin a running cluster after this node lost its data: initialise an
    /// empty directory as a node that lost data, with the `--cluster` ids as
    /// the founding voters. On an initialised directory it changes nothing.
    Rejoin,
}

/// What the node starts from.
pub struct Opened {
    pub wal: Wal,
    pub recovered: Recovered,
    /// This node lost data it may have acknowledged: `Restored::lost_data`.
    pub lost_data: bool,
    /// `Config::voters`: the configuration the log starts from.
    pub founders: Vec<NodeId>,
}

/// What the `node` file says.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NodeFile {
    id: NodeId,
    recovering: bool,
    /// `None` in a file of the first format.
    founders: Option<Vec<NodeId>>,
}

/// Opens `dir` for node `id`, or says why it must not start. `cluster` is
/// the ids `--cluster` lists: the founding voters of a directory set up
/// now by `--bootstrap` or `--rejoin`, or of one set up by a version that
/// did not record them.
pub fn open(
    dir: &Path,
    id: NodeId,
    start: Start,
    cluster: &[NodeId],
    accept_data_loss: bool,
    segment_bytes: u64,
) -> Result<Opened, String> {
    let shown = dir.display();
    let node = load(dir)?;
    let scan = Wal::scan(dir, node.is_some()).map_err(|e| match e {
        wal::WalError::HardState { .. } => format!(
            "{e}; refusing to start. The term and vote in it are what keep this node from \
             voting twice: wipe {shown} and restart with --rejoin to rejoin from the leader"
        ),
        e => e.to_string(),
    })?;
    let Some(node) = node else {
        if !scan.is_blank() {
            return Err(format!(
                "{shown} holds a log or a hard state but no `node` file: it was not set up by \
                 this version of kv_store, or the file was lost. Refusing to start. Wipe it and \
                 restart with --rejoin to rejoin from the leader"
            ));
        }
        let (lost, founders) = match start {
            Start::Restart => {
                return Err(format!(
                    "{shown} holds no data. If this is the first start of a brand-new cluster, \
                     start every node with --bootstrap. If this node is new to a running \
                     cluster, start it with --join-cluster and add it with CLUSTER ADDLEARNER \
                     on the leader. If this node was a member of a running cluster and lost its \
                     data (a wiped or replaced disk), start it with --rejoin: it catches up from \
                     the current leader and does not vote until it has (or, safer, give it a \
                     new id with --join-cluster and remove the old one). Refusing to start"
                ));
            }
            Start::Bootstrap => (false, cluster.to_vec()),
            Start::JoinCluster => (false, Vec::new()),
            Start::Rejoin => (true, cluster.to_vec()),
        };
        fs::create_dir_all(dir).map_err(|e| format!("{shown}: {e}"))?;
        // The log first: a crash before the `node` file leaves a blank
        // directory, which the same command line initialises again.
        let (wal, recovered) = scan.open(segment_bytes).map_err(|e| e.to_string())?;
        save(
            dir,
            &NodeFile {
                id,
                recovering: lost,
                founders: Some(founders.clone()),
            },
        )?;
        return Ok(Opened {
            wal,
            recovered,
            lost_data: lost,
            founders,
        });
    };
    if node.id != id {
        return Err(format!(
            "{shown} belongs to node {}, not node {id}; refusing to start",
            node.id
        ));
    }
    if start == Start::Bootstrap {
        return Err(format!(
            "{shown} already holds node {id}'s data; --bootstrap is only for the first start \
             of a brand-new cluster. Restart without it"
        ));
    }
    if let Some(d) = scan.damage() {
        if !accept_data_loss {
            return Err(format!(
                "{d}; refusing to start, and nothing was changed. Either restart with \
                 --accept-data-loss: the node keeps the log up to index {}, moves the damaged \
                 files aside as *.damaged, catches up from the leader and stays out of \
                 elections until it is safe to vote again; or wipe {shown} and restart with \
                 --rejoin",
                d.intact_to
            ));
        }
        if !node.recovering {
            save(
                dir,
                &NodeFile {
                    recovering: true,
                    ..node.clone()
                },
            )?;
        }
    }
    let (wal, recovered) = scan.open(segment_bytes).map_err(|e| e.to_string())?;
    Ok(Opened {
        lost_data: node.recovering || recovered.accepted_loss.is_some(),
        founders: node.founders.unwrap_or_else(|| cluster.to_vec()),
        wal,
        recovered,
    })
}

/// Records whether node `id` is recovering from lost data: set when zaft
/// found out by itself (a log that ends below the commit index), cleared
/// once it has caught up. The rest of the file stays as it is.
pub fn set_recovering(dir: &Path, id: NodeId, recovering: bool) -> Result<(), String> {
    let founders = load(dir)?.and_then(|n| n.founders);
    save(
        dir,
        &NodeFile {
            id,
            recovering,
            founders,
        },
    )
}

fn save(dir: &Path, n: &NodeFile) -> Result<(), String> {
    let founders = n.founders.as_deref().unwrap_or_default();
    let mut b = Vec::with_capacity(NODE_FILE_HEADER_BYTES + 8 * founders.len() + 4);
    b.extend_from_slice(NODE_MAGIC);
    b.extend_from_slice(&n.id.get().to_le_bytes());
    let mut flags = if n.recovering { RECOVERING } else { 0 };
    if n.founders.is_some() {
        flags |= FOUNDERS_KNOWN;
    }
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&(founders.len() as u32).to_le_bytes());
    for f in founders {
        b.extend_from_slice(&f.get().to_le_bytes());
    }
    let crc = crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    wal::replace_file(dir, "node", &b).map_err(|e| e.to_string())
}

fn load(dir: &Path) -> Result<Option<NodeFile>, String> {
    let path = dir.join("node");
    let b = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    parse(&b).map(Some).ok_or_else(|| {
        format!(
            "{} is damaged (wrong size, magic or checksum); refusing to start. Wipe {} and \
             restart with --rejoin to rejoin from the leader",
            path.display(),
            dir.display()
        )
    })
}

/// A `node` file's contents, of either format; `None` if damaged.
fn parse(b: &[u8]) -> Option<NodeFile> {
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    if b.len() < NODE_FILE_V1_BYTES {
        return None;
    }
    let crc_at = b.len() - 4;
    if u32_at(crc_at) != crc32c(&b[..crc_at]) {
        return None;
    }
    let id = NodeId(u64_at(8));
    let flags = u32_at(16);
    let recovering = flags & RECOVERING != 0;
    match &b[..8] {
        m if m == NODE_MAGIC_V1 && b.len() == NODE_FILE_V1_BYTES => Some(NodeFile {
            id,
            recovering,
            founders: None,
        }),
        m if m == NODE_MAGIC => {
            let count = u32_at(20) as usize;
            if count > MAX_FOUNDERS || b.len() != NODE_FILE_HEADER_BYTES + 8 * count + 4 {
                return None;
            }
            let ids = (0..count)
                .map(|i| NodeId(u64_at(NODE_FILE_HEADER_BYTES + 8 * i)))
                .collect();
            Some(NodeFile {
                id,
                recovering,
                founders: (flags & FOUNDERS_KNOWN != 0).then_some(ids),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("kvdir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    const SEG: u64 = 1 << 20;
    const C: &[NodeId] = &[NodeId(1), NodeId(2), NodeId(3)];

    fn open_as(dir: &Path, id: u64, start: Start) -> Result<Opened, String> {
        open(dir, NodeId(id), start, C, false, SEG)
    }

    #[test]
    fn an_empty_directory_starts_only_with_bootstrap_join_cluster_or_rejoin() {
        let dir = tmp("empty");
        let err = open_as(&dir, 1, Start::Restart).err().unwrap();
        for flag in ["--bootstrap", "--join-cluster", "--rejoin"] {
            assert!(err.contains(flag), "{flag} not in {err}");
        }
        assert!(!dir.exists(), "refusing created the directory");

        let o = open_as(&dir, 1, Start::Bootstrap).unwrap();
        assert!(!o.lost_data);
        assert_eq!(o.founders, C);
        drop(o);
        // Initialised: a plain restart works, --bootstrap is refused,
        // --rejoin and --join-cluster change nothing, another id is refused.
        assert!(!open_as(&dir, 1, Start::Restart).unwrap().lost_data);
        let err = open_as(&dir, 1, Start::Bootstrap).err().unwrap();
        assert!(err.contains("already holds"), "{err}");
        assert!(!open_as(&dir, 1, Start::Rejoin).unwrap().lost_data);
        assert_eq!(open_as(&dir, 1, Start::JoinCluster).unwrap().founders, C);
        let err = open_as(&dir, 2, Start::Restart).err().unwrap();
        assert!(err.contains("belongs to node 1"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rejoined_node_stays_recovering_across_restarts_until_caught_up() {
        let dir = tmp("rejoin");
        assert!(open_as(&dir, 3, Start::Rejoin).unwrap().lost_data);
        assert!(open_as(&dir, 3, Start::Restart).unwrap().lost_data);
        set_recovering(&dir, NodeId(3), false).unwrap();
        let o = open_as(&dir, 3, Start::Restart).unwrap();
        assert!(!o.lost_data);
        assert_eq!(o.founders, C, "clearing the flag kept the founders");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A node that joined a running cluster restarts with no founding
    /// voters, whatever `--cluster` says by then: its log holds its
    /// configuration. A founding member keeps its founders the same way.
    #[test]
    fn founding_voters_are_the_ones_recorded_not_a_grown_cluster_list() {
        let grown = [NodeId(1), NodeId(2), NodeId(3), NodeId(4)];
        let dir = tmp("joined");
        let o = open(&dir, NodeId(4), Start::JoinCluster, &grown, false, SEG).unwrap();
        assert!(!o.lost_data, "a new member lost nothing");
        assert!(o.founders.is_empty());
        drop(o);
        let o = open(&dir, NodeId(4), Start::Restart, &grown, false, SEG).unwrap();
        assert!(o.founders.is_empty());
        fs::remove_dir_all(&dir).unwrap();

        let dir = tmp("founder");
        drop(open_as(&dir, 2, Start::Bootstrap).unwrap());
        let o = open(&dir, NodeId(2), Start::Restart, &grown, false, SEG).unwrap();
        assert_eq!(o.founders, C);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A directory set up before founders were recorded takes them from
    /// `--cluster`, as it always did; clearing its recovering flag keeps
    /// that so.
    #[test]
    fn a_node_file_of_the_first_format_still_opens() {
        let dir = tmp("v1");
        drop(open_as(&dir, 1, Start::Bootstrap).unwrap());
        let mut b = Vec::new();
        b.extend_from_slice(NODE_MAGIC_V1);
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&RECOVERING.to_le_bytes());
        let crc = crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        fs::write(dir.join("node"), &b).unwrap();
        let o = open_as(&dir, 1, Start::Restart).unwrap();
        assert!(o.lost_data);
        assert_eq!(o.founders, C);
        drop(o);
        set_recovering(&dir, NodeId(1), false).unwrap();
        assert_eq!(
            load(&dir).unwrap().unwrap(),
            NodeFile {
                id: NodeId(1),
                recovering: false,
                founders: None
            }
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_node_file_is_refused() {
        let good = {
            let dir = tmp("nodefile");
            drop(open_as(&dir, 1, Start::Bootstrap).unwrap());
            let b = fs::read(dir.join("node")).unwrap();
            fs::remove_dir_all(&dir).unwrap();
            b
        };
        assert!(parse(&good).is_some());
        for cut in 0..good.len() {
            assert!(parse(&good[..cut]).is_none(), "cut to {cut}");
        }
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x10;
            assert!(parse(&b).is_none(), "byte {i} flipped");
        }
    }
}
