//! The network between the hosts: links that deliver each message after a
//! latency drawn for it (first in, first out per link unless the plan lets
//! messages overtake each other) and, while faults are on, lose, duplicate
//! or hold some back; and partitions, which are link state: a blocked link
//! drops everything that reaches its end. Which links a partition blocks,
//! and when, is decided in `faults.rs`; every random choice here comes from
//! the network's own generator.

use super::check::Fail;
use super::cluster::{Cluster, Ev};
use super::options::TICK_US;
use super::rng::Rng;
use super::trace::{MsgSum, Rec};
use crate::input::Input;
use crate::message::Message;

/// The links between the hosts, and the partition that blocks some of them.
pub(crate) struct Network {
    /// `blocked[from][to]`: the link drops everything.
    blocked: Vec<Vec<bool>>,
    /// Per link, the latest delivery time scheduled (for FIFO links).
    link_last: Vec<Vec<u64>>,
    /// Bumped at every partition: a heal scheduled for an earlier one
    /// finds it over.
    epoch: u64,
    partitioned: bool,
    rng: Rng,
}

impl Network {
    /// `n` hosts, every link open.
    pub fn new(n: usize, rng: Rng) -> Network {
        Network {
            blocked: vec![vec![false; n]; n],
            link_last: vec![vec![0; n]; n],
            epoch: 0,
            partitioned: false,
            rng,
        }
    }

    /// Whether the link from `from` to `to` drops everything.
    pub fn is_blocked(&self, from: usize, to: usize) -> bool {
        self.blocked[from][to]
    }

    /// Whether a partition is in force.
    pub fn partitioned(&self) -> bool {
        self.partitioned
    }

    /// The number of the latest partition.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Blocks every link between two sides (`side[i]`: the side of host
    /// `i`) both ways, and opens every other.
    pub fn split(&mut self, side: &[bool]) {
        for (a, row) in self.blocked.iter_mut().enumerate() {
            for (b, link) in row.iter_mut().enumerate() {
                *link = side[a] != side[b];
            }
        }
    }

    /// Blocks the link from `from` to `to`.
    pub fn cut(&mut self, from: usize, to: usize) {
        self.blocked[from][to] = true;
    }

    /// Blocks every link to and from host `x`.
    pub fn isolate(&mut self, x: usize) {
        for o in 0..self.blocked.len() {
            self.blocked[x][o] = o != x;
            self.blocked[o][x] = o != x;
        }
    }

    /// Marks the links blocked since the last heal as a partition; returns
    /// its number, for the heal that ends it.
    pub fn start_partition(&mut self) -> u64 {
        self.partitioned = true;
        self.epoch += 1;
        self.epoch
    }

    /// Opens every link.
    pub fn heal(&mut self) {
        for row in &mut self.blocked {
            row.iter_mut().for_each(|b| *b = false);
        }
        self.partitioned = false;
    }
}

impl Cluster {
    pub(crate) fn send(&mut self, n: usize, m: Message) {
        self.stats.messages += 1;
        let Some(to) = self.index_of(m.to) else {
            return;
        };
        if self.faults_on {
            if self.net.is_blocked(n, to)
                && self.plan.report_unreachable
                && self.net.rng.chance(200)
            {
                let at = self.now + self.net.rng.range(100, 2 * TICK_US);
                self.stats.faults.unreachable_reports += 1;
                self.schedule(
                    at,
                    Ev::Unreachable {
                        node: n,
                        peer: m.to,
                    },
                );
            }
            if self.net.rng.chance(self.plan.loss_per_mille) {
                self.stats.faults.lost += 1;
                self.trace.push(self.now, Rec::Drop(MsgSum::of(&m), "lost"));
                return;
            }
            if self.net.rng.chance(self.plan.dup_per_mille) {
                self.stats.faults.duplicated += 1;
                self.trace.push(self.now, Rec::Duplicate(MsgSum::of(&m)));
                let at = self.delivery_time(n, to);
                self.schedule(at, Ev::Deliver(m.clone()));
            }
        }
        let at = self.delivery_time(n, to);
        self.schedule(at, Ev::Deliver(m));
    }

    fn delivery_time(&mut self, from: usize, to: usize) -> u64 {
        let (lo, hi) = self.plan.latency_us;
        let mut delay = self.net.rng.range(lo, hi);
        if self.faults_on && self.net.rng.chance(self.plan.spike_per_mille) {
            self.stats.faults.delayed += 1;
            delay += self
                .net
                .rng
                .range(self.plan.spike_us.0, self.plan.spike_us.1);
        }
        let mut at = self.now + delay;
        if self.plan.fifo {
            at = at.max(self.net.link_last[from][to]);
            self.net.link_last[from][to] = at;
        }
        at
    }

    pub(crate) fn deliver(&mut self, m: Message) -> Result<Option<usize>, Fail> {
        let (Some(from), Some(to)) = (self.index_of(m.from), self.index_of(m.to)) else {
            return Ok(None);
        };
        if !self.hosts[to].is_up() {
            self.trace
                .push(self.now, Rec::Drop(MsgSum::of(&m), "node down"));
            return Ok(None);
        }
        if self.net.is_blocked(from, to) {
            self.stats.faults.partitioned += 1;
            self.trace
                .push(self.now, Rec::Drop(MsgSum::of(&m), "partition"));
            return Ok(None);
        }
        self.trace.push(self.now, Rec::Deliver(MsgSum::of(&m)));
        let term = m.term;
        self.step_node(to, Input::Message(m))?;
        let host = &mut self.hosts[to];
        if let Some(w) = host.watch.as_mut()
            && w.term == term
        {
            w.heard[from] = host.ticks;
        }
        Ok(Some(to))
    }

    pub(crate) fn heal_partition(&mut self) {
        self.net.heal();
        self.trace
            .push(self.now, Rec::Note("partition healed".into()));
    }
}
