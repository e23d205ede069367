//! An in-process zaft cluster driven by the run loop of the crate docs, shared
//! by the benches (`#[path]`-included) and by the raft-rs comparison.
//!
//! Storage is a [`RunLog`] per host that really keeps every entry (truncate
//! at the first index of a Ready, then append) plus the last hard state; the
//! network is one FIFO queue for the whole cluster; the state machine counts
//! what it applies. Every Ready is handled in the documented order (persist,
//! send, apply) and acknowledged with `advance`, and so is every follow-up
//! Ready until one comes back empty.
#![allow(dead_code)] // each bench uses its own subset

use std::collections::VecDeque;

use bytes::Bytes;
use zaft::{Config, Entries, Entry, EntryKind, HardState, Input, Message, Node, NodeId, Ready};

/// An in-memory durable log that keeps the runs the node hands out as they
/// are: storing a Ready's entries copies none of them. With `copying`
/// (`ZAFT_BENCH_COPYING_HOST=1`), it clones every entry into a vector of its
/// own instead, as a host with a `Vec<Entry>` log would.
#[derive(Default)]
pub struct RunLog {
    runs: Vec<Entries>,
    len: usize,
    copying: bool,
    copies: Vec<Entry>,
}

impl RunLog {
    fn new() -> RunLog {
        RunLog {
            copying: std::env::var_os("ZAFT_BENCH_COPYING_HOST").is_some_and(|v| v == "1"),
            ..RunLog::default()
        }
    }

    /// Truncates the log at the run's first index, then appends the run.
    pub fn write(&mut self, run: Entries) {
        let Some(first) = run.first().map(|e| e.index.get()) else {
            return;
        };
        if self.copying {
            self.copies.truncate(first as usize - 1);
            self.copies.extend_from_slice(&run);
            self.len = self.copies.len();
            return;
        }
        while let Some(last) = self.runs.last_mut() {
            let last_first = last[0].index.get();
            if last_first >= first {
                self.len -= last.len();
                self.runs.pop();
            } else {
                let keep = (first - last_first) as usize;
                if keep < last.len() {
                    self.len -= last.len() - keep;
                    *last = last.slice(..keep);
                }
                break;
            }
        }
        self.len += run.len();
        self.runs.push(run);
    }

    /// The number of entries held.
    pub fn len(&self) -> usize {
        self.len
    }
}

/// One node and a model of its host.
pub struct Host {
    /// The node.
    pub node: Node,
    /// The durable log, from index 1.
    pub log: RunLog,
    /// The last hard state saved.
    pub hard_state: HardState,
    /// The index of the last entry applied (noops included).
    pub applied_index: u64,
    /// Normal entries applied.
    pub applied_entries: u64,
    /// Payload bytes applied (so the apply loop reads the data).
    pub applied_bytes: u64,
    /// Whether handled Readies go back to the node (`Node::recycle`); off
    /// with `ZAFT_BENCH_NO_RECYCLE=1`.
    recycle: bool,
}

impl Host {
    fn new(node: Node) -> Host {
        Host {
            node,
            log: RunLog::new(),
            hard_state: HardState::default(),
            applied_index: 0,
            applied_entries: 0,
            applied_bytes: 0,
            recycle: std::env::var_os("ZAFT_BENCH_NO_RECYCLE").is_none_or(|v| v != "1"),
        }
    }

    /// Handles a Ready as the crate docs say, then the follow-ups `advance`
    /// returns, until one is empty. The host keeps each Ready's entries as
    /// the shared run it is handed, drains its messages and recycles it.
    pub fn handle(&mut self, mut ready: Ready, net: &mut VecDeque<Message>) {
        loop {
            self.log.write(ready.take_entries());
            if let Some(hs) = ready.hard_state() {
                self.hard_state = *hs;
            }
            net.extend(ready.drain_messages());
            for e in ready.committed() {
                self.applied_index = e.index.get();
                if e.kind == EntryKind::Normal {
                    self.applied_entries += 1;
                    self.applied_bytes += e.data.len() as u64;
                }
            }
            // (a real host fsyncs here)
            let id = ready.id();
            if self.recycle {
                self.node.recycle(ready);
            }
            ready = self.node.advance(id).expect("advance");
            if ready.is_empty() {
                break;
            }
        }
    }
}

/// `n` nodes with ids `1..=n`, a FIFO network, and node 1 as the leader.
pub struct Cluster {
    /// Host `i` runs `NodeId(i + 1)`.
    pub hosts: Vec<Host>,
    /// Messages in flight, oldest first.
    pub net: VecDeque<Message>,
    /// Messages delivered so far.
    pub delivered: u64,
}

impl Cluster {
    /// A cluster of `n` nodes with the default config (so: 1 MiB per
    /// AppendEntries, 256 in flight) in which node 1 has been elected and
    /// every node has applied the leader's noop. No ticks are needed after
    /// that: the steady state is driven by proposals and messages alone.
    pub fn new(n: u64) -> Cluster {
        Self::with_config(n, |_| {})
    }

    /// Like [`Cluster::new`], with `tweak` applied to every node's config.
    pub fn with_config(n: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let hosts = ids
            .iter()
            .map(|&id| {
                let mut cfg = Config::new(id, ids.iter().copied());
                cfg.seed = 0x5eed ^ id.get();
                tweak(&mut cfg);
                Host::new(Node::new(cfg, Default::default()).expect("config"))
            })
            .collect();
        let mut c = Cluster {
            hosts,
            net: VecDeque::new(),
            delivered: 0,
        };
        let ready = c.hosts[0].node.step(Input::Campaign).expect("campaign");
        c.hosts[0].handle(ready, &mut c.net);
        c.deliver();
        assert!(c.hosts[0].node.is_leader(), "node 1 won the election");
        let noop = c.hosts[0].log.len() as u64;
        c.settle(noop);
        c
    }

    /// Delivers messages until the network is quiet.
    pub fn deliver(&mut self) {
        while let Some(m) = self.net.pop_front() {
            self.delivered += 1;
            let h = &mut self.hosts[m.to.get() as usize - 1];
            let ready = h.node.step(Input::Message(m)).expect("step");
            h.handle(ready, &mut self.net);
        }
    }

    /// Delivers messages (and, should the cluster ever go quiet before every
    /// node applied `index`, ticks the leader for a heartbeat) until every
    /// node applied up to `index`.
    pub fn settle(&mut self, index: u64) {
        for _ in 0..1000 {
            self.deliver();
            if self.hosts.iter().all(|h| h.applied_index >= index) {
                return;
            }
            let ready = self.hosts[0].node.step(Input::Tick).expect("tick");
            self.hosts[0].handle(ready, &mut self.net);
        }
        panic!("the cluster did not apply index {index}");
    }

    /// One round: the leader proposes `payloads` (one `Propose`, or one
    /// `ProposeBatch` for more than one) and the cluster runs until every
    /// node applied them. Returns the number of entries committed.
    pub fn round(&mut self, mut payloads: Vec<Bytes>) -> u64 {
        let n = payloads.len() as u64;
        let input = if payloads.len() == 1 {
            Input::Propose(payloads.pop().expect("one payload"))
        } else {
            Input::ProposeBatch(payloads)
        };
        let ready = self.hosts[0].node.step(input).expect("propose");
        let last = ready.proposed().expect("proposed").last.get();
        self.hosts[0].handle(ready, &mut self.net);
        self.settle(last);
        n
    }

    /// Entries in the leader's durable log.
    pub fn log_len(&self) -> usize {
        self.hosts[0].log.len()
    }
}

/// `n` fresh payloads of `size` bytes, each its own allocation (as if decoded
/// from a client request): `Bytes::from(vec)`.
pub fn payloads(n: usize, size: usize, seed: u8) -> Vec<Bytes> {
    (0..n)
        .map(|i| Bytes::from(vec![seed.wrapping_add(i as u8); size]))
        .collect()
}
