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

#[derive(Clone, Debug)]
pub(crate) struct Client {
    seq: u64,
    current: Option<Current>,
    target: usize,
    /// The liveness probe: one write, retried quickly, no deadline.
    probe: bool,
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
}

impl Workload {
    pub fn new(clients: usize) -> Workload {
        Workload {
            clients: (0..clients)
                .map(|_| Client {
                    seq: 0,
                    current: None,
                    target: 0,
                    probe: false,
                })
                .collect(),
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
    fn election_max_us(&self) -> u64 {
        u64::from(self.plan.config.election_timeout_ticks_max) * TICK_US
    }

    /// Adds the liveness probe client and starts its write.
    pub(crate) fn start_probe(&mut self) {
        let c = self.work.clients.len();
        self.work.clients.push(Client {
            seq: 0,
            current: None,
            target: 0,
            probe: true,
        });
        self.client_issue(c);
    }

    pub(crate) fn client_issue(&mut self, c: usize) {
        let client = &self.work.clients[c];
        if client.current.is_some() || (!self.work.issuing && !client.probe) {
            return;
        }
        let probe = client.probe;
        let key = self.client_rng.range(1, self.plan.keys);
        let op = if probe || self.client_rng.coin() {
            let value = self.work.next_value;
            self.work.next_value += 1;
            Op::Write { key, value }
        } else {
            Op::Read { key }
        };
        let nodes = self.hosts.len() as u64;
        let target = self.client_rng.below(nodes) as usize;
        let client = &mut self.work.clients[c];
        client.seq += 1;
        let seq = client.seq;
        if client.target >= self.hosts.len() || probe {
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
        let timeout = if self.work.clients[c].probe {
            5 * TICK_US
        } else {
            self.election_max_us().max(10 * TICK_US)
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
                let probe = client.probe;
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
                if probe {
                    self.work.probe_done_at.get_or_insert(self.now);
                } else {
                    let think = self.now + self.client_rng.range(0, 3 * TICK_US);
                    self.schedule(think, Ev::ClientIssue(c));
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
            // The latest attempt went silent: move on.
            let n_hosts = self.hosts.len() as u64;
            let t = self.client_rng.below(n_hosts) as usize;
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
        let next = self.now + self.client_rng.range(0, 3 * TICK_US);
        self.schedule(next, Ev::ClientIssue(c));
    }
}
