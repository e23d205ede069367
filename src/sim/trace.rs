//! The trace: a ring of the last events of a run, formatted only when a
//! failure is reported.
//!
//! Records are small and cheap to make (no formatting, no allocation for the
//! common message kinds), because one is made for most events of every run.

use std::collections::VecDeque;
use std::fmt;

use super::linearizability::Op;
use super::options::TICK_US;
use crate::message::{AppendResponse, Body, Message};
use crate::status::Role;
use crate::types::{Index, LogId, Term};

/// A message, summarised.
#[derive(Clone, Debug)]
pub(crate) struct MsgSum {
    from: u64,
    to: u64,
    term: u64,
    what: What,
}

#[derive(Clone, Debug)]
enum What {
    Vote(LogId),
    VoteResp(bool),
    Append {
        prev: LogId,
        n: usize,
        last: Index,
        commit: Index,
    },
    AppendOk(Index),
    AppendReject(Index, LogId),
    AppendBehind(LogId),
    Heartbeat(Index),
    HeartbeatResp,
    Other(String),
}

impl MsgSum {
    pub fn of(m: &Message) -> MsgSum {
        let what = match &m.body {
            Body::RequestVote { last_log, .. } => What::Vote(*last_log),
            Body::RequestVoteResponse { granted, .. } => What::VoteResp(*granted),
            Body::AppendEntries {
                prev,
                entries,
                commit,
                ..
            } => What::Append {
                prev: *prev,
                n: entries.len(),
                last: entries.last().map_or(prev.index, |e| e.index),
                commit: *commit,
            },
            Body::AppendEntriesResponse(AppendResponse::Success { match_index }) => {
                What::AppendOk(*match_index)
            }
            Body::AppendEntriesResponse(AppendResponse::Reject { rejected, hint }) => {
                What::AppendReject(*rejected, *hint)
            }
            Body::AppendEntriesResponse(AppendResponse::Behind { last }) => {
                What::AppendBehind(*last)
            }
            Body::Heartbeat { commit, .. } => What::Heartbeat(*commit),
            Body::HeartbeatResponse { .. } => What::HeartbeatResp,
            #[allow(unreachable_patterns)]
            other => {
                let mut s = format!("{other:?}");
                s.truncate(80);
                What::Other(s)
            }
        };
        MsgSum {
            from: m.from.0,
            to: m.to.0,
            term: m.term.0,
            what,
        }
    }
}

impl fmt::Display for MsgSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}->n{} t{} ", self.from, self.to, self.term)?;
        match &self.what {
            What::Vote(l) => write!(f, "RequestVote last={l}"),
            What::VoteResp(g) => write!(f, "VoteResponse granted={g}"),
            What::Append {
                prev,
                n,
                last,
                commit,
            } => {
                if *n == 0 {
                    write!(f, "Append prev={prev} (empty) commit={commit}")
                } else {
                    write!(
                        f,
                        "Append prev={prev} {n} entries ..={last} commit={commit}"
                    )
                }
            }
            What::AppendOk(m) => write!(f, "AppendOk match={m}"),
            What::AppendReject(r, h) => write!(f, "AppendReject at={r} hint={h}"),
            What::AppendBehind(l) => write!(f, "AppendBehind last={l}"),
            What::Heartbeat(c) => write!(f, "Heartbeat commit={c}"),
            What::HeartbeatResp => write!(f, "HeartbeatResponse"),
            What::Other(s) => f.write_str(s),
        }
    }
}

/// One traced event.
#[derive(Clone, Debug)]
pub(crate) enum Rec {
    Deliver(MsgSum),
    Drop(MsgSum, &'static str),
    Duplicate(MsgSum),
    Role {
        node: u64,
        role: Role,
        term: Term,
        last: LogId,
        commit: Index,
    },
    Crash {
        node: u64,
        point: &'static str,
        kept: usize,
        lost: usize,
    },
    Restart {
        node: u64,
        term: Term,
        last: LogId,
        applied: Index,
    },
    Synced {
        node: u64,
        ops: usize,
        advanced: u64,
    },
    Partition(String),
    Heal,
    Invoke {
        client: u64,
        seq: u64,
        op: Op,
    },
    Attempt {
        client: u64,
        seq: u64,
        node: u64,
        answer: &'static str,
    },
    Done {
        client: u64,
        seq: u64,
        at: LogId,
        answer: Option<u64>,
    },
    GiveUp {
        client: u64,
        seq: u64,
        outcome: &'static str,
    },
    Applied {
        node: u64,
        first: Index,
        last: Index,
    },
    Note(String),
}

impl fmt::Display for Rec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rec::Deliver(m) => write!(f, "deliver  {m}"),
            Rec::Drop(m, why) => write!(f, "drop     {m} ({why})"),
            Rec::Duplicate(m) => write!(f, "dup      {m}"),
            Rec::Role {
                node,
                role,
                term,
                last,
                commit,
            } => write!(
                f,
                "n{node} is {role:?} in t{term} (last {last}, commit {commit})"
            ),
            Rec::Crash {
                node,
                point,
                kept,
                lost,
            } => write!(
                f,
                "CRASH    n{node} {point}: {kept} unsynced writes kept, {lost} lost"
            ),
            Rec::Restart {
                node,
                term,
                last,
                applied,
            } => write!(
                f,
                "restart  n{node} from disk: term {term}, last {last}, applied {applied}"
            ),
            Rec::Synced {
                node,
                ops,
                advanced,
            } => {
                if *advanced > 0 {
                    write!(
                        f,
                        "fsync    n{node}: {ops} writes durable, advance(ready#{advanced})"
                    )
                } else {
                    write!(f, "fsync    n{node}: {ops} writes durable")
                }
            }
            Rec::Partition(p) => write!(f, "PARTITION {p}"),
            Rec::Heal => write!(f, "HEAL     network healed, faults off"),
            Rec::Invoke { client, seq, op } => write!(f, "client {client} #{seq} invokes {op}"),
            Rec::Attempt {
                client,
                seq,
                node,
                answer,
            } => write!(f, "client {client} #{seq} at n{node}: {answer}"),
            Rec::Done {
                client,
                seq,
                at,
                answer,
            } => write!(f, "client {client} #{seq} ok at {at}, answer {answer:?}"),
            Rec::GiveUp {
                client,
                seq,
                outcome,
            } => write!(f, "client {client} #{seq} gives up: {outcome}"),
            Rec::Applied { node, first, last } => {
                write!(f, "n{node} applies {first}..={last}")
            }
            Rec::Note(s) => f.write_str(s),
        }
    }
}

/// The last `cap` records, with their virtual time.
#[derive(Debug)]
pub(crate) struct Trace {
    ring: VecDeque<(u64, Rec)>,
    cap: usize,
}

impl Trace {
    pub fn new(cap: usize) -> Trace {
        Trace {
            ring: VecDeque::with_capacity(cap.min(4096)),
            cap,
        }
    }

    #[inline]
    pub fn push(&mut self, at_us: u64, rec: Rec) {
        if self.cap == 0 {
            return;
        }
        if self.ring.len() == self.cap {
            self.ring.pop_front();
        }
        self.ring.push_back((at_us, rec));
    }

    pub fn lines(&self) -> Vec<String> {
        self.ring
            .iter()
            .map(|(at, rec)| format!("{} {rec}", fmt_time(*at)))
            .collect()
    }
}

/// A virtual time as ticks with three decimals.
pub(crate) fn fmt_time(us: u64) -> String {
    format!("t={:>6}.{:03}", us / TICK_US, us % TICK_US)
}
