//! The data directory as a whole: whose it is, whether it was ever set up,
//! and whether its node is still catching up after losing data.
//!
//! A node must tell a brand-new cluster from one it is rejoining. An empty
//! data directory looks the same in both cases, but starting it as a fresh
//! member of a running cluster would let it vote with an empty log, after it
//! may have acknowledged entries a leader counted towards a commit. So an
//! empty directory starts only when the operator says which case it is:
//! `--bootstrap` (the first start of a new cluster) or `--join` (this node
//! lost its data and rejoins: it restores with `lost_data`, so it neither
//! votes nor campaigns until it has caught up from the current leader).
//!
//! The `node` file records that the directory was initialised, for which
//! node id, and whether the node is *recovering*: set before any lost data
//! is given up (an accepted [`Damage`](crate::wal::Damage), a `--join`) or
//! as soon as zaft finds a log that ends below its commit index, and
//! cleared only once zaft says the node has caught up. A node that crashes
//! while recovering restarts recovering, whatever its log looks like then.
//!
//! Nothing here changes the directory before it has decided to start.

use std::fs;
use std::io;
use std::path::Path;

use zaft::NodeId;

use crate::crc32c::crc32c;
use crate::wal::{self, Recovered, Wal};

const NODE_MAGIC: &[u8; 8] = b"ZKVNODE1";
/// magic + id + flags + crc.
const NODE_FILE_BYTES: usize = 8 + 8 + 4 + 4;
const RECOVERING: u32 = 1;

/// How the operator asked the node to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// From the data directory, which must have been initialised.
    Restart,
    /// The first start of a brand-new cluster: initialise an empty directory.
    Bootstrap,
    /// Rejoin a running cluster after this node lost its data: initialise an
    /// empty directory as a node that lost data. On an initialised directory
    /// it changes nothing.
    Join,
}

/// What the node starts from.
pub struct Opened {
    pub wal: Wal,
    pub recovered: Recovered,
    /// This node lost data it may have acknowledged: `Restored::lost_data`.
    pub lost_data: bool,
}

/// What the `node` file says.
struct NodeFile {
    id: NodeId,
    recovering: bool,
}

/// Opens `dir` for node `id`, or says why it must not start.
pub fn open(
    dir: &Path,
    id: NodeId,
    start: Start,
    accept_data_loss: bool,
    segment_bytes: u64,
) -> Result<Opened, String> {
    let shown = dir.display();
    let node = load(dir)?;
    let scan = Wal::scan(dir, node.is_some()).map_err(|e| match e {
        wal::WalError::HardState { .. } => format!(
            "{e}; refusing to start. The term and vote in it are what keep this node from \
             voting twice: wipe {shown} and restart with --join to rejoin from the leader"
        ),
        e => e.to_string(),
    })?;
    let Some(node) = node else {
        if !scan.is_blank() {
            return Err(format!(
                "{shown} holds a log or a hard state but no `node` file: it was not set up by \
                 this version of kv_store, or the file was lost. Refusing to start. Wipe it and \
                 restart with --join to rejoin from the leader"
            ));
        }
        let join = match start {
            Start::Restart => {
                return Err(format!(
                    "{shown} holds no data. If this is the first start of a brand-new cluster, \
                     start every node with --bootstrap. If this node was a member of a running \
                     cluster and lost its data (a wiped or replaced disk), start it with --join: \
                     it catches up from the current leader and does not vote until it has. \
                     Refusing to start"
                ));
            }
            Start::Bootstrap => false,
            Start::Join => true,
        };
        fs::create_dir_all(dir).map_err(|e| format!("{shown}: {e}"))?;
        // The log first: a crash before the `node` file leaves a blank
        // directory, which the same command line initialises again.
        let (wal, recovered) = scan.open(segment_bytes).map_err(|e| e.to_string())?;
        save(dir, id, join)?;
        return Ok(Opened {
            wal,
            recovered,
            lost_data: join,
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
                 --join",
                d.intact_to
            ));
        }
        if !node.recovering {
            save(dir, id, true)?;
        }
    }
    let (wal, recovered) = scan.open(segment_bytes).map_err(|e| e.to_string())?;
    Ok(Opened {
        lost_data: node.recovering || recovered.accepted_loss.is_some(),
        wal,
        recovered,
    })
}

/// Records whether node `id` is recovering from lost data: set when zaft
/// found out by itself (a log that ends below the commit index), cleared
/// once it has caught up.
pub fn set_recovering(dir: &Path, id: NodeId, recovering: bool) -> Result<(), String> {
    save(dir, id, recovering)
}

fn save(dir: &Path, id: NodeId, recovering: bool) -> Result<(), String> {
    let mut b = Vec::with_capacity(NODE_FILE_BYTES);
    b.extend_from_slice(NODE_MAGIC);
    b.extend_from_slice(&id.get().to_le_bytes());
    b.extend_from_slice(&(if recovering { RECOVERING } else { 0 }).to_le_bytes());
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
    let crc_ok = b.len() == NODE_FILE_BYTES
        && &b[..8] == NODE_MAGIC
        && u32::from_le_bytes(b[20..24].try_into().expect("4 bytes")) == crc32c(&b[..20]);
    if !crc_ok {
        return Err(format!(
            "{} is damaged (wrong size, magic or checksum); refusing to start. Wipe {} and \
             restart with --join to rejoin from the leader",
            path.display(),
            dir.display()
        ));
    }
    let flags = u32::from_le_bytes(b[16..20].try_into().expect("4 bytes"));
    Ok(Some(NodeFile {
        id: NodeId(u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"))),
        recovering: flags & RECOVERING != 0,
    }))
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

    #[test]
    fn an_empty_directory_starts_only_with_bootstrap_or_join() {
        let dir = tmp("empty");
        let err = open(&dir, NodeId(1), Start::Restart, false, SEG)
            .err()
            .unwrap();
        assert!(
            err.contains("--bootstrap") && err.contains("--join"),
            "{err}"
        );
        assert!(!dir.exists(), "refusing created the directory");

        let o = open(&dir, NodeId(1), Start::Bootstrap, false, SEG).unwrap();
        assert!(!o.lost_data);
        drop(o);
        // Initialised: a plain restart works, --bootstrap is refused, --join
        // changes nothing, another id is refused.
        assert!(
            !open(&dir, NodeId(1), Start::Restart, false, SEG)
                .unwrap()
                .lost_data
        );
        let err = open(&dir, NodeId(1), Start::Bootstrap, false, SEG)
            .err()
            .unwrap();
        assert!(err.contains("already holds"), "{err}");
        assert!(
            !open(&dir, NodeId(1), Start::Join, false, SEG)
                .unwrap()
                .lost_data
        );
        let err = open(&dir, NodeId(2), Start::Restart, false, SEG)
            .err()
            .unwrap();
        assert!(err.contains("belongs to node 1"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_joined_node_stays_recovering_across_restarts_until_caught_up() {
        let dir = tmp("join");
        assert!(
            open(&dir, NodeId(3), Start::Join, false, SEG)
                .unwrap()
                .lost_data
        );
        assert!(
            open(&dir, NodeId(3), Start::Restart, false, SEG)
                .unwrap()
                .lost_data
        );
        set_recovering(&dir, NodeId(3), false).unwrap();
        assert!(
            !open(&dir, NodeId(3), Start::Restart, false, SEG)
                .unwrap()
                .lost_data
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
