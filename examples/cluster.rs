//! Three zaft nodes in one process: an election, replication, and a leader
//! failover, narrated as they happen.
//!
//! Each node has a host that follows the run loop of the crate docs with an
//! in-memory "disk" (a Vec of entries and a saved hard state) and a shared
//! in-memory network. Time passes in ticks; the network delivers messages
//! between ticks.
//!
//! Run it with `cargo run --example cluster`.

use std::collections::VecDeque;

use zaft::{
    Config, Entry, EntryKind, HardState, Input, Message, Node, NodeId, Ready, Restored, Role,
};

/// What a host keeps on its disk.
#[derive(Default, Clone)]
struct Disk {
    log: Vec<Entry>,
    hard_state: HardState,
}

struct Host {
    id: NodeId,
    node: Node,
    disk: Disk,
    applied: Vec<String>,
    up: bool,
}

impl Host {
    fn new(id: NodeId, voters: &[NodeId]) -> Host {
        let mut config = Config::new(id, voters.iter().copied());
        config.seed = 42;
        config.pre_vote = true;
        config.check_quorum = true;
        let node = Node::new(config, Restored::default()).expect("valid config");
        Host {
            id,
            node,
            disk: Disk::default(),
            applied: Vec::new(),
            up: true,
        }
    }

    /// The run loop for one Ready and its follow-ups.
    fn handle(&mut self, mut ready: Ready, net: &mut VecDeque<Message>) {
        loop {
            if let Some(first) = ready.entries().first() {
                self.disk.log.truncate(first.index.get() as usize - 1);
                self.disk.log.extend_from_slice(ready.entries());
            }
            if let Some(hs) = ready.hard_state() {
                self.disk.hard_state = *hs;
            }
            if let Some(ss) = ready.soft_state() {
                // Role and leader changes come in the Ready: no polling.
                match (ss.role, ss.leader) {
                    (Role::Leader, _) => {
                        println!("node {} is leader of term {}", self.id, self.node.term())
                    }
                    (_, Some(l)) => println!("  node {} follows node {l}", self.id),
                    _ => {}
                }
            }
            net.extend(ready.take_messages());
            for e in ready.committed() {
                if e.kind == EntryKind::Normal {
                    let cmd = String::from_utf8_lossy(&e.data).into_owned();
                    println!("  node {} applies {:?} at index {}", self.id, cmd, e.index);
                    self.applied.push(cmd);
                }
            }
            for lost in ready.lost() {
                println!("  node {}: proposal {lost} was lost", self.id);
            }
            // Our disk is memory: every write is durable at once. A real
            // host fsyncs here when `ready.must_sync()`, and may skip the
            // fsync (saving the commit index lazily) when it is false.
            ready = self
                .node
                .advance(ready.id())
                .expect("ids come from the node");
            if ready.is_empty() {
                break;
            }
        }
    }

    fn step(&mut self, input: Input, net: &mut VecDeque<Message>) {
        match self.node.step(input) {
            Ok(ready) => self.handle(ready, net),
            Err(e) => println!("  node {}: {e}", self.id),
        }
    }
}

struct Cluster {
    hosts: Vec<Host>,
    net: VecDeque<Message>,
}

impl Cluster {
    fn host(&mut self, id: NodeId) -> &mut Host {
        &mut self.hosts[id.get() as usize - 1]
    }

    /// One tick on every live node, then deliver messages until quiet.
    fn tick(&mut self) {
        for h in self.hosts.iter_mut().filter(|h| h.up) {
            h.step(Input::Tick, &mut self.net);
        }
        while let Some(m) = self.net.pop_front() {
            let (from, to) = (m.from, m.to);
            let host = self.host(to);
            if host.up && self.hosts[from.get() as usize - 1].up {
                let host = &mut self.hosts[to.get() as usize - 1];
                host.step(Input::Message(m), &mut self.net);
            }
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.hosts
            .iter()
            .find(|h| h.up && h.node.role() == Role::Leader)
            .map(|h| h.id)
    }

    fn run_until_leader(&mut self) -> NodeId {
        for _ in 0..1000 {
            self.tick();
            if let Some(l) = self.leader() {
                return l;
            }
        }
        panic!("no leader elected within 1000 ticks");
    }

    fn propose(&mut self, cmd: &str) {
        let leader = self.leader().expect("a leader");
        println!("client proposes {cmd:?} to node {leader}");
        let net = &mut self.net;
        let host = &mut self.hosts[leader.get() as usize - 1];
        match host.node.step(Input::Propose(cmd.to_owned().into())) {
            Ok(ready) => {
                if let Some(p) = ready.proposed() {
                    println!("  accepted at term {} index {}", p.term, p.first);
                }
                host.handle(ready, net);
            }
            Err(e) => println!("  refused: {e}"),
        }
        self.tick();
    }
}

fn main() {
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    let mut cluster = Cluster {
        hosts: voters.iter().map(|&id| Host::new(id, &voters)).collect(),
        net: VecDeque::new(),
    };

    println!("== election: three followers, randomized timeouts");
    let first = cluster.run_until_leader();

    println!("== replication");
    cluster.propose("x=1");
    cluster.propose("y=2");

    println!("== failover: node {first} crashes");
    cluster.host(first).up = false;
    let second = cluster.run_until_leader();
    assert_ne!(first, second);
    cluster.propose("z=3");

    println!("== node {first} restarts from its disk and catches up");
    let disk = cluster.host(first).disk.clone();
    let applied = cluster.host(first).applied.len();
    let mut config = Config::new(first, voters);
    config.seed = 7;
    config.pre_vote = true;
    config.check_quorum = true;
    let restored = Restored {
        hard_state: disk.hard_state,
        entries: disk.log,
        // The applied commands live in memory, lost with the crash: replay.
        applied: zaft::Index(0),
        lost_data: false,
        conf_state: None,
    };
    let host = cluster.host(first);
    host.node = Node::new(config, restored).expect("restorable");
    host.applied.clear();
    host.up = true;
    println!("  (it had applied {applied} commands before the crash)");
    for _ in 0..30 {
        cluster.tick();
    }

    println!("== every node applied the same commands");
    for h in &cluster.hosts {
        println!("  node {}: {:?}", h.id, h.applied);
        assert_eq!(h.applied, ["x=1", "y=2", "z=3"]);
    }
    assert_eq!(
        cluster.leader(),
        Some(second),
        "the old leader did not disrupt"
    );
}
