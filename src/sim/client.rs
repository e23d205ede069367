//! The client workload: clients that read and write keys of the replicated
//! store, retry through leader changes, give up after a deadline, and record
//! what they saw as a history for the linearizability checker.
//!
//! A client has one operation outstanding at a time. It sends an attempt to
//! the node it believes leads; a refusal with a leader hint redirects it, a
//! refusal without one, a lost proposal or a silent node (attempt timeout)
//! sends it to another node. Every attempt of one operation carries the same
//! `(client, seq)`, so the state machine applies it at most once. At the
//! deadline the client gives up: the outcome is `Fail` only if every attempt
//! is known to have had no effect (refused, or proposed and reported lost),
//! and `Unknown` otherwise.
//!
//! Two more clients join a run with lease attacks or stalls, idle until an
//! attack (or a stall of the leader's host) wakes them: a reader that reads,
//! back to back, at the leader the attack cut off (whatever it answers, it
//! asks there again, and it gives up a read that goes unanswered for two
//! ticks to invoke a new one), and a writer that writes through every other
//! node, retrying fast and never following a hint to the cut-off node. A stale lease read is then a read at the old
//! leader that misses a write the writer got acknowledged before the read
//! began, which the linearizability check rejects.

use super::cluster::{Cluster, Ev};
use super::host::Request;
use super::kv::Command;
use super::linearizability::{Event, Op, Outcome};
use super::options::TICK_US;
use super::trace::Rec;
use crate::types::{LogId, NodeId};

/// A host's answer to one attempt.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reply {
    /// Proposed, or forwarded to the leader.
    Accepted,
    /// Not proposed; maybe a hint where the leader is.
    Refused(Option<NodeId>),
    /// Proposed, then overwritten: it will never commit.
    Lost,
    /// Applied; the answer, and the entry that carried it (`LogId::ZERO`
    /// for a read served through `ReadIndex`).
    Done { answer: Option<u64>, at: LogId },
}

/// What a client knows of one attempt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    Sent,
    Refused,
    Proposed,
    Lost,
}

#[derive(Clone, Debug)]
struct Current {
    seq: u64,
    op: Op,
    invoke: u64,
    attempts: Vec<Fate>,
    /// Waiting out a pause before the next attempt.
    paused: bool,
}

/// What a client does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Reads and writes at whichever node it believes leads.
    Normal,
    /// The liveness probe: one write, retried quickly, no deadline.
    Probe,
    /// Until `until`, reads back to back at node `node` only.
    Reader { node: usize, until: u64 },
    /// Until `until`, writes back to back through any node but `avoid`.
    Writer { avoid: usize, until: u64 },
}

#[derive(Clone, Debug)]
pub(crate) struct Client {
    seq: u64,
    current: Option<Current>,
    target: usize,
    kind: Kind,
}

impl Client {
    fn new(kind: Kind) -> Client {
        Client {
            seq: 0,
            current: None,
            target: 0,
            kind,
        }
    }
}

/// Every client and the history they recorded.
#[derive(Debug)]
pub(crate) struct Workload {
    pub clients: Vec<Client>,
    pub history: Vec<Event>,
    next_value: u64,
    /// Whether clients start new operations.
    pub issuing: bool,
    /// When the liveness probe's write was acknowledged.
    pub probe_done_at: Option<u64>,
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
    /// The lease attack's reader and writer, if the run has attacks.
    burst: Option<(usize, usize)>,
    /// The key the attack's writer wrote last: what its reader reads.
    burst_key: Option<u64>,
}

impl Workload {
    /// `clients` ordinary clients, and with `burst` the idle reader and
    /// writer of lease attacks.
    pub fn new(clients: usize, burst: bool) -> Workload {
        let mut all: Vec<Client> = (0..clients).map(|_| Client::new(Kind::Normal)).collect();
        let burst = burst.then(|| {
            all.push(Client::new(Kind::Reader { node: 0, until: 0 }));
            all.push(Client::new(Kind::Writer { avoid: 0, until: 0 }));
            (clients, clients + 1)
        });
        Workload {
            clients: all,
            burst,
            burst_key: None,
            history: Vec::new(),
            next_value: 1,
            issuing: true,
            probe_done_at: None,
            ok: 0,
            failed: 0,
            unknown: 0,
        }
    }

    /// Whether no client has an operation outstanding.
    pub fn idle(&self) -> bool {
        self.clients.iter().all(|c| c.current.is_none())
    }

    /// Records every outstanding operation as unknown (the run is over).
    pub fn close(&mut self) {
        for (i, c) in self.clients.iter_mut().enumerate() {
            if let Some(cur) = c.current.take() {
                self.unknown += 1;
                self.history.push(Event {
                    client: i as u64 + 1,
                    op: cur.op,
                    invoke: cur.invoke,
                    complete: cur.invoke,
                    outcome: Outcome::Unknown,
                });
            }
        }
    }
}

impl Cluster {
    /// Sends a host's answer to a client (reliable, with a small latency).
    pub(crate) fn reply(&mut self, client: usize, seq: u64, attempt: u32, reply: Reply) {
        let at = self.now + self.client_rng.range(50, 300);
        self.schedule(
            at,
            Ev::ClientReply {
                client,
                seq,
                attempt,
                reply,
            },
        );
    }

    /// Sends a client's request to a host.
    pub(crate) fn send_request(&mut self, node: usize, req: Request) {
        let at = self.now + self.client_rng.range(50, 300);
        self.schedule(at, Ev::ClientArrive { node, req });
    }

    fn election_max_us(&self) -> u64 {
        u64::from(self.plan.config.election_timeout_ticks_max) * TICK_US
    }

    /// Adds the liveness probe client and starts its write.
    pub(crate) fn start_probe(&mut self) {
        let c = self.work.clients.len();
        self.work.clients.push(Client::new(Kind::Probe));
        self.client_issue(c);
    }

    /// Wakes the lease attack's clients: until `until`, one reads at node
    /// `cut_off` and the other writes through the rest.
    pub(crate) fn start_lease_burst(&mut self, cut_off: usize, until: u64) {
        let Some((reader, writer)) = self.work.burst else {
            return;
        };
        self.work.clients[reader].kind = Kind::Reader {
            node: cut_off,
            until,
        };
        self.work.clients[writer].kind = Kind::Writer {
            avoid: cut_off,
            until,
        };
        self.client_issue(reader);
        self.client_issue(writer);
    }

    /// A random node other than `avoid` and, if possible, other than `not`.
    fn node_except(&mut self, avoid: usize, not: usize) -> usize {
        let n = self.hosts.len();
        let choices: Vec<usize> = (0..n).filter(|&i| i != avoid && i != not).collect();
        match self.client_rng.pick(&choices) {
            Some(&i) => i,
            None => (0..n).find(|&i| i != avoid).unwrap_or(0),
        }
    }

    pub(crate) fn client_issue(&mut self, c: usize) {
        let client = &self.work.clients[c];
        let kind = client.kind;
        let active = match kind {
            Kind::Normal => self.work.issuing,
            Kind::Probe => true,
            Kind::Reader { until, .. } | Kind::Writer { until, .. } => {
                self.work.issuing && self.now < until
            }
        };
        if client.current.is_some() || !active {
            return;
        }
        let probe = kind == Kind::Probe;
        let mut key = self.client_rng.range(1, self.plan.keys);
        let write = match kind {
            Kind::Normal => self.client_rng.coin(),
            Kind::Probe | Kind::Writer { .. } => true,
            Kind::Reader { .. } => false,
        };
        let op = if write {
            let value = self.work.next_value;
            self.work.next_value += 1;
            if let Kind::Writer { .. } = kind {
                self.work.burst_key = Some(key);
            }
            Op::Write { key, value }
        } else {
            if let (Kind::Reader { .. }, Some(k)) = (kind, self.work.burst_key) {
                key = k;
            }
            Op::Read { key }
        };
        let nodes = self.hosts.len() as u64;
        let target = match kind {
            Kind::Reader { node, .. } => node,
            Kind::Writer { avoid, .. } => {
                let current = self.work.clients[c].target;
                if current == avoid {
                    self.node_except(avoid, avoid)
                } else {
                    current
                }
            }
            _ => self.client_rng.below(nodes) as usize,
        };
        let client = &mut self.work.clients[c];
        client.seq += 1;
        let seq = client.seq;
        if client.target >= self.hosts.len() || kind != Kind::Normal {
            client.target = target;
        }
        client.current = Some(Current {
            seq,
            op,
            invoke: self.now,
            attempts: Vec::new(),
            paused: false,
        });
        self.trace.push(
            self.now,
            Rec::Invoke {
                client: c as u64 + 1,
                seq,
                op,
            },
        );
        if !probe {
            // Long enough to ride out a few elections.
            let deadline = self.now + (4 * self.election_max_us()).max(60 * TICK_US);
            self.schedule(deadline, Ev::ClientDeadline { client: c, seq });
        }
        self.send_attempt(c);
    }

    fn send_attempt(&mut self, c: usize) {
        let timeout = match self.work.clients[c].kind {
            Kind::Probe => 5 * TICK_US,
            Kind::Reader { .. } | Kind::Writer { .. } => 2 * TICK_US,
            Kind::Normal => self.election_max_us().max(10 * TICK_US),
        };
        let client = &mut self.work.clients[c];
        let Some(cur) = client.current.as_mut() else {
            return;
        };
        let attempt = cur.attempts.len() as u32;
        cur.attempts.push(Fate::Sent);
        cur.paused = false;
        let (seq, op) = (cur.seq, cur.op);
        let node = client.target;
        let cmd = Command {
            client: c as u64,
            seq,
            op,
        }
        .encode();
        self.send_request(
            node,
            Request {
                client: c,
                seq,
                attempt,
                cmd,
            },
        );
        let at = self.now + timeout;
        self.schedule(
            at,
            Ev::ClientTimeout {
                client: c,
                seq,
                attempt,
            },
        );
    }

    /// Points the client at another node and tries again after a pause.
    fn retry_elsewhere(&mut self, c: usize, hint: Option<NodeId>) {
        let n = self.hosts.len();
        let client = &self.work.clients[c];
        let (current, kind) = (client.target, client.kind);
        let aimed = match kind {
            Kind::Reader { node, .. } => Some(node),
            Kind::Writer { avoid, .. } => Some(match hint {
                Some(l) if l.0 >= 1 && (l.0 as usize) <= n && l.0 as usize - 1 != avoid => {
                    l.0 as usize - 1
                }
                _ => self.node_except(avoid, current),
            }),
            Kind::Normal | Kind::Probe => None,
        };
        if let Some(next) = aimed {
            // The attack's clients retry at once, or after a short pause.
            self.work.clients[c].target = next;
            let pause = self.client_rng.range(0, TICK_US / 2);
            return self.pause_then_retry(c, pause);
        }
        let client = &self.work.clients[c];
        let next = match hint {
            Some(l) if l.0 >= 1 && (l.0 as usize) <= n && l.0 as usize - 1 != client.target => {
                l.0 as usize - 1
            }
            _ if n > 1 => {
                let other = self.client_rng.below(n as u64 - 1) as usize;
                if other >= client.target {
                    other + 1
                } else {
                    other
                }
            }
            _ => 0,
        };
        self.work.clients[c].target = next;
        let pause = if hint.is_some() {
            0
        } else {
            self.client_rng.range(TICK_US / 2, 2 * TICK_US)
        };
        self.pause_then_retry(c, pause);
    }

    fn pause_then_retry(&mut self, c: usize, pause: u64) {
        if pause == 0 {
            self.send_attempt(c);
        } else {
            // A fresh attempt after the pause, via the attempt timeout path.
            let Some(cur) = self.work.clients[c].current.as_mut() else {
                return;
            };
            cur.paused = true;
            let (seq, attempt) = (cur.seq, cur.attempts.len() as u32);
            let at = self.now + pause;
            self.schedule(
                at,
                Ev::ClientTimeout {
                    client: c,
                    seq,
                    attempt,
                },
            );
        }
    }

    pub(crate) fn client_reply(&mut self, c: usize, seq: u64, attempt: u32, reply: Reply) {
        let Some(cur) = self.work.clients[c].current.as_mut() else {
            return;
        };
        if cur.seq != seq {
            return;
        }
        let latest = attempt as usize + 1 == cur.attempts.len();
        let fate = &mut cur.attempts[attempt as usize];
        match reply {
            Reply::Accepted => {
                if *fate == Fate::Sent {
                    *fate = Fate::Proposed;
                }
            }
            Reply::Refused(hint) => {
                *fate = Fate::Refused;
                if latest {
                    self.retry_elsewhere(c, hint);
                }
            }
            Reply::Lost => {
                *fate = Fate::Lost;
                if latest {
                    self.retry_elsewhere(c, None);
                }
            }
            Reply::Done { answer, at } => {
                let op = cur.op;
                let invoke = cur.invoke;
                let client = &mut self.work.clients[c];
                client.current = None;
                let kind = client.kind;
                self.work.ok += 1;
                self.work.history.push(Event {
                    client: c as u64 + 1,
                    op,
                    invoke,
                    complete: self.now,
                    outcome: Outcome::Ok(if let Op::Read { .. } = op {
                        answer
                    } else {
                        None
                    }),
                });
                if let Op::Write { .. } = op {
                    self.safety.acked.push(at);
                }
                self.trace.push(
                    self.now,
                    Rec::Done {
                        client: c as u64 + 1,
                        seq,
                        at,
                        answer,
                    },
                );
                match kind {
                    Kind::Probe => {
                        self.work.probe_done_at.get_or_insert(self.now);
                    }
                    Kind::Normal => {
                        let think = self.now + self.client_rng.range(0, 3 * TICK_US);
                        self.schedule(think, Ev::ClientIssue(c));
                    }
                    Kind::Reader { .. } | Kind::Writer { .. } => {
                        let think = self.now + self.client_rng.range(0, TICK_US / 4);
                        self.schedule(think, Ev::ClientIssue(c));
                    }
                }
            }
        }
    }

    /// An attempt got no final answer in time (or a pause ended): try the
    /// next node, if this attempt is still the latest.
    pub(crate) fn client_timeout(&mut self, c: usize, seq: u64, attempt: u32) {
        let Some(cur) = self.work.clients[c].current.as_ref() else {
            return;
        };
        if cur.seq != seq {
            return;
        }
        let n = cur.attempts.len() as u32;
        if cur.paused {
            if attempt == n {
                // The pause before a retry is over.
                self.send_attempt(c);
            }
        } else if attempt + 1 == n {
            // The latest attempt went silent: move on. The attack's reader
            // gives the read up instead (an unknown read constrains
            // nothing) and asks again with a new one: only a read invoked
            // after a write was acknowledged can show that it was missed.
            let client = &self.work.clients[c];
            if let Kind::Reader { .. } = client.kind {
                return self.client_deadline(c, seq);
            }
            let t = match client.kind {
                Kind::Reader { node, .. } => node,
                Kind::Writer { avoid, .. } => self.node_except(avoid, client.target),
                Kind::Normal | Kind::Probe => {
                    self.client_rng.below(self.hosts.len() as u64) as usize
                }
            };
            self.work.clients[c].target = t;
            self.send_attempt(c);
        }
    }

    pub(crate) fn client_deadline(&mut self, c: usize, seq: u64) {
        let client = &mut self.work.clients[c];
        let Some(cur) = client.current.as_ref() else {
            return;
        };
        if cur.seq != seq {
            return;
        }
        let no_effect = cur
            .attempts
            .iter()
            .all(|f| matches!(f, Fate::Refused | Fate::Lost));
        let outcome = if no_effect {
            self.work.failed += 1;
            Outcome::Fail
        } else {
            self.work.unknown += 1;
            Outcome::Unknown
        };
        self.work.history.push(Event {
            client: c as u64 + 1,
            op: cur.op,
            invoke: cur.invoke,
            complete: self.now,
            outcome,
        });
        client.current = None;
        self.trace.push(
            self.now,
            Rec::GiveUp {
                client: c as u64 + 1,
                seq,
                outcome: if no_effect {
                    "failed (no attempt took effect)"
                } else {
                    "unknown"
                },
            },
        );
        let think = match client.kind {
            Kind::Reader { .. } | Kind::Writer { .. } => TICK_US / 4,
            Kind::Normal | Kind::Probe => 3 * TICK_US,
        };
        let next = self.now + self.client_rng.range(0, think);
        self.schedule(next, Ev::ClientIssue(c));
    }
}
