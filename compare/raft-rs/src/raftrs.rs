//! The same in-process cluster as `benches/support/cluster.rs`, run on
//! raft-rs 0.7: in-memory storage (raft-rs's `MemStorage`, which keeps every
//! entry), one FIFO network queue, and each Ready handled in the order the
//! raft-rs docs give: send `messages`, (apply a snapshot: none here), apply
//! `committed_entries`, append `entries`, save the hard state, send
//! `persisted_messages`, `advance`, then handle the `LightReady` (commit
//! index, messages, committed entries) and `advance_apply`.

use std::collections::VecDeque;

use bytes::Bytes;
use raft::eraftpb::{Entry, EntryType, Message, MessageType};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};

/// One raft-rs node and a model of its host.
pub struct Host {
    pub node: RawNode<MemStorage>,
    pub applied_index: u64,
    pub applied_entries: u64,
    pub applied_bytes: u64,
}

impl Host {
    fn apply(&mut self, entries: Vec<Entry>) {
        for e in entries {
            self.applied_index = e.index;
            if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                self.applied_entries += 1;
                self.applied_bytes += e.data.len() as u64;
            }
        }
    }

    /// Handles every Ready the node has, as the raft-rs docs describe.
    pub fn handle(&mut self, net: &mut VecDeque<Message>) {
        while self.node.has_ready() {
            let mut rd = self.node.ready();
            net.extend(rd.take_messages());
            assert!(rd.snapshot().is_empty(), "no snapshots in this workload");
            self.apply(rd.take_committed_entries());
            if !rd.entries().is_empty() {
                self.node
                    .mut_store()
                    .wl()
                    .append(rd.entries())
                    .expect("append");
            }
            if let Some(hs) = rd.hs() {
                self.node.mut_store().wl().set_hardstate(hs.clone());
            }
            net.extend(rd.take_persisted_messages());
            // (a real host fsyncs before advance)
            let mut light = self.node.advance(rd);
            if let Some(commit) = light.commit_index() {
                self.node.mut_store().wl().mut_hard_state().commit = commit;
            }
            net.extend(light.take_messages());
            self.apply(light.take_committed_entries());
            self.node.advance_apply();
        }
    }
}

/// `n` raft-rs nodes with ids `1..=n`, a FIFO network, node 1 the leader.
pub struct Cluster {
    pub hosts: Vec<Host>,
    pub net: VecDeque<Message>,
}

/// The settings that match zaft's defaults: heartbeat every tick, election
/// timeout 10–20 ticks, 1 MiB per append, 256 appends in flight, 64 MiB of
/// uncommitted entries, 32 MiB of committed entries per Ready.
pub fn config(id: u64) -> Config {
    Config {
        id,
        election_tick: 10,
        heartbeat_tick: 1,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        max_uncommitted_size: 64 << 20,
        max_committed_size_per_ready: 32 << 20,
        ..Config::default()
    }
}

impl Cluster {
    pub fn new(n: u64) -> Cluster {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let voters: Vec<u64> = (1..=n).collect();
        let hosts = voters
            .iter()
            .map(|&id| {
                let store = MemStorage::new_with_conf_state((voters.clone(), vec![]));
                Host {
                    node: RawNode::new(&config(id), store, &logger).expect("config"),
                    applied_index: 0,
                    applied_entries: 0,
                    applied_bytes: 0,
                }
            })
            .collect();
        let mut c = Cluster {
            hosts,
            net: VecDeque::new(),
        };
        c.hosts[0].node.campaign().expect("campaign");
        c.hosts[0].handle(&mut c.net);
        c.deliver();
        assert_eq!(c.hosts[0].node.raft.state, StateRole::Leader);
        let noop = c.hosts[0].node.raft.raft_log.last_index();
        c.settle(noop);
        c
    }

    pub fn deliver(&mut self) {
        while let Some(m) = self.net.pop_front() {
            let h = &mut self.hosts[m.to as usize - 1];
            h.node.step(m).expect("step");
            h.handle(&mut self.net);
        }
    }

    pub fn settle(&mut self, index: u64) {
        for _ in 0..1000 {
            self.deliver();
            if self.hosts.iter().all(|h| h.applied_index >= index) {
                return;
            }
            self.hosts[0].node.tick();
            self.hosts[0].handle(&mut self.net);
        }
        panic!("the cluster did not apply index {index}");
    }

    /// One round: one proposal (`propose`) or a batch (one `MsgPropose`
    /// carrying all the entries, raft-rs's way to propose many at once), then
    /// run until every node applied them.
    pub fn round(&mut self, payloads: Vec<Bytes>) -> u64 {
        let n = payloads.len() as u64;
        let leader = &mut self.hosts[0];
        if payloads.len() == 1 {
            let data = payloads.into_iter().next().expect("one");
            let e = Entry {
                data,
                ..Default::default()
            };
            let mut m = Message::default();
            m.set_msg_type(MessageType::MsgPropose);
            m.from = 1;
            m.set_entries(vec![e].into());
            leader.node.step(m).expect("propose");
        } else {
            let entries: Vec<Entry> = payloads
                .into_iter()
                .map(|data| Entry {
                    data,
                    ..Default::default()
                })
                .collect();
            let mut m = Message::default();
            m.set_msg_type(MessageType::MsgPropose);
            m.from = 1;
            m.set_entries(entries.into());
            leader.node.step(m).expect("propose");
        }
        let last = leader.node.raft.raft_log.last_index();
        leader.handle(&mut self.net);
        self.settle(last);
        n
    }
}
