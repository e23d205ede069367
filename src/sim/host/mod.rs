//! The host model: one node's disk, state machine and bookkeeping, following
//! the run loop of the crate docs.
//!
//! The disk (`disk.rs`) has a durable part and a volatile write buffer. A
//! crash is a power cut: the buffer is lost (or, with torn writes, a prefix
//! of it survives) and so is the state machine; a restart rebuilds both from
//! the durable part.
//!
//! This module holds the host's state; `run_loop.rs` drives it: the Ready
//! loop, the crash points in the middle of it, fsyncs and restarts.
//! `requests.rs` takes the clients' requests to the node.

mod disk;
mod requests;
mod run_loop;

use std::collections::BTreeMap;

use bytes::Bytes;

pub(crate) use disk::{Durable, Loss, SyncJob, Write};

use super::kv::Kv;
use crate::message::Entry;
use crate::node::Node;
use crate::status::Role;
use crate::types::{Index, NodeId, Term};

/// Where in the host loop an armed crash strikes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CrashPoint {
    /// After a Ready's writes went to the buffer, before its messages are sent.
    AfterPersist,
    /// After the messages are sent, before the committed entries are applied.
    AfterSend,
    /// After applying, before the writes are synced.
    AfterApply,
    /// After an fsync completed, before `advance` is called.
    BeforeAdvance,
}

impl CrashPoint {
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterPersist => "after persist, before send",
            CrashPoint::AfterSend => "after send, before apply",
            CrashPoint::AfterApply => "after apply, before fsync",
            CrashPoint::BeforeAdvance => "after fsync, before advance",
        }
    }
}

/// A client request as it reaches a host.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub client: usize,
    pub seq: u64,
    pub attempt: u32,
    pub cmd: Bytes,
}

/// What the checks last saw of a node (reset at every restart).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen {
    pub role: Option<Role>,
    pub term: Term,
    pub commit: Index,
    pub applied: Index,
}

/// One simulated server.
pub(crate) struct Host {
    pub id: NodeId,
    /// `None` while crashed.
    pub node: Option<Node>,
    pub incarnation: u64,
    pub tick_us: u64,
    pub durable: Durable,
    /// Writes not yet durable, tagged with the id of the Ready that asked.
    pub buffer: Vec<(u64, Write)>,
    pub sync: Option<SyncJob>,
    /// Bumped at every crash, so that an fsync of a past life completes to nothing.
    pub epoch: u64,
    /// The volatile state machine.
    pub kv: Kv,
    /// The log as this host has been told to write it (durable + buffered),
    /// and the chained hash of each prefix.
    pub view: Vec<Entry>,
    pub hashes: Vec<u64>,
    /// The last Ready handed to this host, and the last acknowledged.
    pub last_ready: u64,
    pub acked: u64,
    /// Some non-empty Ready above `acked` waits for an fsync.
    pub dirty: bool,
    pub armed: Option<CrashPoint>,
    /// Proposals accepted here, by the `(index, term)` the node gave them:
    /// client, seq, attempt.
    pub proposals: BTreeMap<(Index, Term), (usize, u64, u32)>,
    /// Requests accepted here whose result this host owes the client.
    pub waiting: BTreeMap<(usize, u64), u32>,
    /// Read-index requests sent by this host, by context: client, seq,
    /// attempt, key.
    pub reads: BTreeMap<u64, (usize, u64, u32, u64)>,
    /// Confirmed reads waiting for the state machine to reach their index.
    pub confirmed_reads: Vec<(Index, usize, u64, u32, u64)>,
    /// Requests waiting to be proposed as one batch.
    pub inbox: Vec<Request>,
    pub flush_scheduled: bool,
    pub seen: Seen,
    /// Ticks given to the node in this life (its own clock, as the
    /// CheckQuorum check counts it).
    pub ticks: u64,
    /// While the node leads with CheckQuorum: what it has heard, when.
    pub watch: Option<super::check::LeaderWatch>,
    /// The disk lost data in the last crash: the next restart says so.
    pub lost_data: bool,
    /// The node lost data and has not caught up since (down, or up and
    /// `Status::recovering`).
    pub amnesiac: bool,
    /// The term the node restored at its last restart as an amnesiac: it
    /// recovers with an entry committed in a newer term.
    pub lost_term: Term,
    /// Events left before the next full invariant check of the node.
    pub invariant_countdown: u64,
    /// A spare node: it starts knowing no configuration (empty
    /// `Config::voters`) and waits to be added.
    pub spare: bool,
    /// Has been a member of some configuration (a spare once added).
    pub was_member: bool,
    /// Has been seen a member of a committed configuration: only then is
    /// its removal, once committed, final (an addition never committed may
    /// still come back from another node's log).
    pub committed_member: bool,
    /// Removed from the cluster and shut down for good: never restarted.
    pub decommissioned: bool,
    /// The configurations the node reported (`Ready::conf_state`), newest
    /// last, the last few only: what the commitment check may count.
    pub confs: Vec<crate::membership::ConfState>,
}

impl Host {
    pub fn new(id: NodeId, tick_us: u64) -> Host {
        Host {
            id,
            node: None,
            incarnation: 0,
            tick_us,
            durable: Durable::default(),
            buffer: Vec::new(),
            sync: None,
            epoch: 0,
            kv: Kv::default(),
            view: Vec::new(),
            hashes: Vec::new(),
            last_ready: 0,
            acked: 0,
            dirty: false,
            armed: None,
            proposals: BTreeMap::new(),
            waiting: BTreeMap::new(),
            reads: BTreeMap::new(),
            confirmed_reads: Vec::new(),
            inbox: Vec::new(),
            flush_scheduled: false,
            seen: Seen {
                role: None,
                term: Term(0),
                commit: Index(0),
                applied: Index(0),
            },
            ticks: 0,
            watch: None,
            lost_data: false,
            amnesiac: false,
            lost_term: Term(0),
            invariant_countdown: 0,
            spare: false,
            was_member: false,
            committed_member: false,
            decommissioned: false,
            confs: Vec::new(),
        }
    }

    pub fn is_up(&self) -> bool {
        self.node.is_some()
    }

    /// Forgets everything volatile (a power cut). `keep` of the buffered
    /// writes survive and, if the next one is a log write and `partial` is
    /// `Some(n)`, its truncation and first `n` entries too (a torn write).
    /// Returns how many writes survived (wholly or partly) and how many not.
    pub fn power_cut(
        &mut self,
        keep: usize,
        partial: Option<usize>,
    ) -> Result<(usize, usize), String> {
        let total = self.buffer.len();
        let keep = keep.min(total);
        let buffer = std::mem::take(&mut self.buffer);
        let mut kept = 0;
        for (i, (_, w)) in buffer.iter().enumerate() {
            if i < keep {
                self.durable.apply(w)?;
                kept += 1;
            } else {
                if let (Write::Log { at, entries }, Some(n)) = (w, partial) {
                    let n = n.min(entries.len());
                    self.durable.apply(&Write::Log {
                        at: *at,
                        entries: entries[..n].to_vec(),
                    })?;
                    kept += 1;
                }
                break;
            }
        }
        self.node = None;
        self.sync = None;
        self.epoch += 1;
        self.kv = Kv::default();
        self.view.clear();
        self.hashes.clear();
        self.last_ready = 0;
        self.acked = 0;
        self.dirty = false;
        self.armed = None;
        self.proposals.clear();
        self.waiting.clear();
        self.reads.clear();
        self.confirmed_reads.clear();
        self.inbox.clear();
        self.flush_scheduled = false;
        self.ticks = 0;
        self.watch = None;
        Ok((kept, total - kept))
    }
}
