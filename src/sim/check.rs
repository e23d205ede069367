//! The safety checkers: what must hold after every event of a run.
//!
//! The properties of Figure 3 of the Raft paper, checked against what the
//! hosts observe (their logs, the entries handed to them to apply, each node's
//! status), never against the node's internals:
//!
//! - Election Safety: at most one leader per term.
//! - Log Matching: two logs holding an entry with the same index and term hold
//!   the same entries up to it. Checked by chaining a hash over each log: every
//!   entry ever written anywhere with a given `(index, term)` must carry the
//!   same chained hash.
//! - Leader Completeness: a leader's log holds every entry committed in an
//!   earlier term. An observer only learns that an entry is committed, not in
//!   which term the commit happened (an entry of term 3 may be committed by
//!   the leader of term 7, and the leader of term 5 may rightly lack it), so
//!   the check applies to the leader of the highest term seen so far, which
//!   must hold every entry committed before it: when it is elected, and when
//!   an entry is first seen committed.
//! - State Machine Safety: no two nodes apply different entries at one index.
//!
//! Plus the host contract (monotonic term, commit and applied index; each
//! committed entry handed out once, in order, and only once durable; no
//! message of a term the node's disk does not hold), durability of
//! acknowledged writes, CheckQuorum's promise that a leader cut off from a
//! majority of its configuration steps down ([`LeaderWatch`]), and
//! commitment by the right majorities: an entry first seen committed is
//! durable on a majority of the voters of a configuration in use (of both
//! halves of a joint one). Election Safety is per term across
//! configurations: one leader per term, whatever configuration elected it.
//!
//! This module owns the global record ([`Safety`]) and the checks that
//! compare the hosts against it and against each other: after every event
//! that touched a node ([`Cluster::check_node`]), and at the end of a run.
//! The host loop (`host/`) runs the checks of the host contract that a
//! Ready must pass as the host carries it out; the checks never change what
//! the run does, only whether it fails.

use std::collections::BTreeMap;
use std::fmt;

use super::cluster::Cluster;
use super::host::Seen;
use super::trace::Rec;
use crate::message::{Entry, Message};
use crate::node::Node;
use crate::status::Role;
use crate::types::{Index, LogId, NodeId, Term};

/// Which check a failed run broke.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Check {
    /// Two leaders in one term.
    ElectionSafety,
    /// Two logs agree on an entry but not on what comes before it.
    LogMatching,
    /// A leader lacks an entry committed in an earlier term.
    LeaderCompleteness,
    /// Two nodes applied different entries at the same index.
    StateMachineSafety,
    /// A node's term, commit or applied index went backwards, or a committed
    /// entry was handed out twice or out of order (across restarts too).
    Monotonic,
    /// A write acknowledged to a client was lost.
    Durability,
    /// The node broke its contract with the host: its log and what it asked
    /// the host to persist disagree, or it handed out an entry before it was
    /// durable, or it changed a durable vote.
    ReadyContract,
    /// The clients' history is not linearizable.
    Linearizability,
    /// On a healed network, no leader was elected, no write committed, or the
    /// nodes did not converge within the bound.
    Liveness,
    /// `step`, `advance` or `Node::new` returned an error the host did not
    /// cause.
    NodeError,
    /// The node panicked (one of its own invariant assertions fired).
    NodePanic,
    /// A message did not come out of the wire codec as it went in.
    Codec,
    /// A CheckQuorum leader went on leading although it had not heard from
    /// a majority for longer than its window (see `Cluster::check_step_down`).
    CheckQuorum,
    /// A node sent a message of a term its disk did not hold yet (pre-vote
    /// requests and granted pre-votes, whose term is only proposed, aside).
    DurableTerm,
    /// An entry was committed without being durable on a majority of the
    /// voters (of each half, while joint) of any configuration a node used.
    Commitment,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 15] = [
        Check::ElectionSafety,
        Check::LogMatching,
        Check::LeaderCompleteness,
        Check::StateMachineSafety,
        Check::Monotonic,
        Check::Durability,
        Check::ReadyContract,
        Check::Linearizability,
        Check::Liveness,
        Check::NodeError,
        Check::NodePanic,
        Check::Codec,
        Check::CheckQuorum,
        Check::DurableTerm,
        Check::Commitment,
    ];
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::ElectionSafety => "Election Safety",
            Check::LogMatching => "Log Matching",
            Check::LeaderCompleteness => "Leader Completeness",
            Check::StateMachineSafety => "State Machine Safety",
            Check::Monotonic => "Monotonic term/commit/applied",
            Check::Durability => "Durability of acknowledged writes",
            Check::ReadyContract => "Ready contract",
            Check::Linearizability => "Linearizability",
            Check::Liveness => "Liveness",
            Check::NodeError => "Node error",
            Check::NodePanic => "Node panic",
            Check::Codec => "Wire codec round trip",
            Check::CheckQuorum => "CheckQuorum step-down",
            Check::DurableTerm => "Durable term before sending",
            Check::Commitment => "Commitment by a majority of the configuration",
        })
    }
}

/// A broken check, before the run wraps it with its seed and trace.
#[derive(Clone, Debug)]
pub(crate) struct Fail {
    pub check: Check,
    pub message: String,
}

pub(crate) fn fail<T>(check: Check, message: String) -> Result<T, Fail> {
    Err(Fail { check, message })
}

/// FNV-1a over the payload.
pub(crate) fn data_hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// The hash of a log up to and including `e`, given the hash up to the entry
/// before it.
pub(crate) fn chain(prev: u64, e: &Entry) -> u64 {
    let mut h = prev ^ e.term.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ e.index.0)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
        .rotate_left(29);
    h ^= data_hash(&e.data) ^ ((e.kind as u8 as u64) << 7);
    h.wrapping_mul(0x94D0_49BB_1331_11EB)
}

/// The global record the checks compare against.
#[derive(Debug, Default)]
pub(crate) struct Safety {
    /// The leader of each term, as first observed.
    leaders: BTreeMap<Term, NodeId>,
    /// `(index, term)` → chained hash, and the node that wrote it first.
    entries: BTreeMap<(u64, u64), (u64, NodeId)>,
    /// By index - 1: the entry first handed out as committed there, its
    /// payload hash, and the node that applied it first.
    committed: Vec<Option<(LogId, u64, NodeId)>>,
    /// Writes acknowledged to clients, at the entry that carried them.
    pub acked: Vec<LogId>,
}

impl Safety {
    /// Election Safety: `node` is leader in `term`.
    pub fn leader(&mut self, term: Term, node: NodeId) -> Result<(), Fail> {
        match self.leaders.get(&term) {
            Some(&other) if other != node => fail(
                Check::ElectionSafety,
                format!("two leaders in term {term}: n{other} and n{node}"),
            ),
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(term, node);
                Ok(())
            }
        }
    }

    /// The highest term that had a leader.
    pub fn newest_leader_term(&self) -> Option<Term> {
        self.leaders.keys().next_back().copied()
    }

    /// The number of distinct terms that had a leader.
    pub fn terms_with_leader(&self) -> usize {
        self.leaders.len()
    }

    /// Log Matching: `node` now holds `e`, with chained hash `h`.
    pub fn written(&mut self, node: NodeId, e: &Entry, h: u64) -> Result<(), Fail> {
        match self.entries.get(&(e.index.0, e.term.0)) {
            Some(&(seen, first)) if seen != h => fail(
                Check::LogMatching,
                format!(
                    "n{node} now holds entry {} but n{first} held it earlier with a different log up to it",
                    e.id()
                ),
            ),
            Some(_) => Ok(()),
            None => {
                self.entries.insert((e.index.0, e.term.0), (h, node));
                Ok(())
            }
        }
    }

    /// State Machine Safety: `node` applies `e`. Returns whether this is the
    /// first time any node applies this index.
    pub fn applied(&mut self, node: NodeId, e: &Entry) -> Result<bool, Fail> {
        let i = (e.index.0 - 1) as usize;
        if self.committed.len() <= i {
            self.committed.resize(i + 1, None);
        }
        let h = data_hash(&e.data);
        match self.committed[i] {
            Some((id, dh, first)) if id != e.id() || dh != h => fail(
                Check::StateMachineSafety,
                format!(
                    "n{node} applies {} but n{first} applied {id} at index {}",
                    e.id(),
                    e.index
                ),
            ),
            Some(_) => Ok(false),
            None => {
                self.committed[i] = Some((e.id(), h, node));
                Ok(true)
            }
        }
    }

    /// Entries seen committed, by index - 1.
    pub fn committed(&self) -> impl Iterator<Item = LogId> + '_ {
        self.committed.iter().flatten().map(|c| c.0)
    }
}

/// What one leader has heard, counted in its own ticks, for the CheckQuorum
/// check: a leader that has not heard from a majority for longer than its
/// window must have stepped down.
///
/// The leader runs its CheckQuorum round every `election_timeout_ticks_min`
/// of its ticks: it steps down if fewer than a majority (itself included)
/// were heard since the previous round. A peer last heard at tick count `h`
/// (a message delivered after the leader's `h`-th tick) counts in the rounds
/// up to the first one after `h`; the next round, at most
/// `2 * election_timeout_ticks_min` ticks after `h`, finds it silent. So
/// once the leader's tick count exceeds `h_q + 2 * min`, where `h_q` is the
/// latest tick count by which a majority had last been heard, it must have
/// stepped down. No further slack is needed: ticks reach the leader one by
/// one (`Input::Ticks(n)` after a stall runs the rounds it covers), and the
/// check runs after each tick input. A leadership transfer restarts the
/// leader's round timer (the transfer gets one election timeout), so the
/// window counts from the later of `h_q` and the transfer.
#[derive(Clone, Debug)]
pub(crate) struct LeaderWatch {
    pub term: crate::types::Term,
    /// Per node (by index; the leader's own slot unused): the leader's tick
    /// count when it last received a message of its term from that node.
    pub heard: Vec<u64>,
    /// The tick count at which the leader's round timer last restarted
    /// (leadership won, or a transfer started).
    pub since: u64,
}

impl LeaderWatch {
    pub fn new(term: crate::types::Term, nodes: usize, now_ticks: u64) -> LeaderWatch {
        // A new leader counts every peer as heard (its first round passes).
        LeaderWatch {
            term,
            heard: vec![now_ticks; nodes],
            since: now_ticks,
        }
    }

    /// The latest tick count by which a majority (the leader itself
    /// included) had been heard: the (majority - 1)-th most recent peer.
    #[cfg(test)]
    pub fn quorum_heard(&self, me: usize) -> u64 {
        let all: Vec<usize> = (0..self.heard.len()).collect();
        self.quorum_heard_in(me, &[&all])
    }

    /// The same for the voter sets of a configuration (by node index): a
    /// majority of each non-empty set, the leader counted in a set only if
    /// it belongs to it (a leader being removed counts only others).
    pub fn quorum_heard_in(&self, me: usize, sets: &[&[usize]]) -> u64 {
        let mut at = u64::MAX;
        for set in sets.iter().filter(|s| !s.is_empty()) {
            let need = set.len() / 2 + 1 - usize::from(set.contains(&me));
            if need == 0 {
                continue;
            }
            let mut peers: Vec<u64> = set
                .iter()
                .filter(|&&i| i != me)
                .map(|&i| self.heard.get(i).copied().unwrap_or(0))
                .collect();
            peers.sort_unstable_by(|a, b| b.cmp(a));
            at = at.min(peers.get(need - 1).copied().unwrap_or(0));
        }
        if at == u64::MAX {
            return at;
        }
        at.max(self.since)
    }
}

// ---- the checks of a run ------------------------------------------------------

impl Cluster {
    /// The per-node checks, after every event that touched node `n`.
    pub(crate) fn check_node(&mut self, n: usize) -> Result<(), Fail> {
        let host = &self.hosts[n];
        let Some(node) = &host.node else {
            return Ok(());
        };
        let st = node.status();
        let seen = host.seen;
        let id = host.id;
        for (what, now, before) in [
            ("term", st.term.0, seen.term.0),
            ("commit index", st.commit.0, seen.commit.0),
            ("applied index", st.applied.0, seen.applied.0),
        ] {
            if now < before {
                return fail(
                    Check::Monotonic,
                    format!("n{id}: {what} went back from {before} to {now}"),
                );
            }
        }
        let view_last = host.view.last().map_or(LogId::ZERO, Entry::id);
        if st.last_log != view_last {
            return fail(
                Check::ReadyContract,
                format!(
                    "n{id}: the node's log ends at {} but its Readies told the host to write a log ending at {view_last}",
                    st.last_log
                ),
            );
        }
        if st.persisted.0 > 0 {
            let i = st.persisted.0 as usize - 1;
            let on_disk = host.durable.entries.get(i).map(Entry::id);
            if on_disk != host.view.get(i).map(Entry::id) {
                return fail(
                    Check::ReadyContract,
                    format!(
                        "n{id}: the node counts its log durable up to {} but the disk holds {on_disk:?} there",
                        st.persisted
                    ),
                );
            }
        }
        let is_leader = st.role == Role::Leader;
        let new_role = seen.role != Some(st.role) || (is_leader && seen.term != st.term);
        // Debug builds of the node run the same check after every input.
        let invariants = !cfg!(debug_assertions) && (new_role || host.invariant_countdown == 0);
        let log_len = host.view.len() as u64;
        if invariants {
            check_invariants(node)?;
        }
        let host = &mut self.hosts[n];
        host.invariant_countdown = if invariants {
            log_len / INVARIANT_ENTRIES_PER_EVENT
        } else {
            host.invariant_countdown.saturating_sub(1)
        };
        if host.amnesiac && !st.recovering {
            host.amnesiac = false;
            host.lost_data = false;
            self.trace.push(
                self.now,
                Rec::Note(format!("n{id} has caught up after losing data")),
            );
        }
        if !is_leader {
            self.hosts[n].watch = None;
        } else if new_role && self.plan.config.check_quorum {
            let nodes = self.hosts.len();
            let host = &mut self.hosts[n];
            host.watch = Some(LeaderWatch::new(st.term, nodes, host.ticks));
        }
        if is_leader {
            self.safety.leader(st.term, id)?;
            if new_role && self.safety.newest_leader_term() == Some(st.term) {
                self.check_leader_complete(n, st.term)?;
                if self.healed_at.is_some() && self.leader_after_heal.is_none() {
                    self.leader_after_heal = Some(self.now);
                }
            }
        }
        if new_role {
            self.trace.push(
                self.now,
                Rec::Role {
                    node: id.0,
                    role: st.role,
                    term: st.term,
                    last: st.last_log,
                    commit: st.commit,
                },
            );
        }
        self.hosts[n].seen = Seen {
            role: Some(st.role),
            term: st.term,
            commit: st.commit,
            applied: st.applied,
        };
        Ok(())
    }

    /// CheckQuorum's promise, after node `n` was given ticks: a leader that
    /// has not heard from a majority for longer than its window has stepped
    /// down (see [`LeaderWatch`] for the window).
    pub(crate) fn check_step_down(&self, n: usize) -> Result<(), Fail> {
        let host = &self.hosts[n];
        let (Some(node), Some(w)) = (&host.node, &host.watch) else {
            return Ok(());
        };
        if node.role() != Role::Leader || node.term() != w.term {
            return Ok(());
        }
        // The voters of the configuration in force at the leader.
        let conf = node.conf_state();
        let idx =
            |ids: &[NodeId]| -> Vec<usize> { ids.iter().map(|id| id.0 as usize - 1).collect() };
        let (incoming, outgoing) = (idx(&conf.voters), idx(&conf.voters_outgoing));
        let heard = w.quorum_heard_in(n, &[&incoming, &outgoing]);
        let window = 2 * u64::from(self.plan.config.election_timeout_ticks_min);
        if host.ticks > heard.saturating_add(window) {
            return fail(
                Check::CheckQuorum,
                format!(
                    "n{}, leader of term {}, last heard from a majority at its tick {heard} and \
                     still leads at its tick {}, beyond its CheckQuorum window of {window} ticks",
                    n + 1,
                    w.term,
                    host.ticks
                ),
            );
        }
        Ok(())
    }

    /// The full invariant check of every up node (at the end of a run).
    pub(crate) fn check_all_invariants(&self) -> Result<(), Fail> {
        for h in &self.hosts {
            if let Some(node) = &h.node {
                check_invariants(node)?;
            }
        }
        Ok(())
    }

    /// Leader Completeness for a new leader of the highest term so far: it
    /// holds every entry seen committed.
    fn check_leader_complete(&self, n: usize, term: Term) -> Result<(), Fail> {
        let view = &self.hosts[n].view;
        for c in self.safety.committed() {
            let has = view.get(c.index.0 as usize - 1).map(Entry::id);
            if has != Some(c) {
                return fail(
                    Check::LeaderCompleteness,
                    format!(
                        "n{} became leader of term {term} without committed entry {c} (its log holds {has:?} there)",
                        n + 1
                    ),
                );
            }
        }
        Ok(())
    }

    /// Leader Completeness for an entry seen committed for the first time:
    /// the leader of the highest term so far holds it.
    pub(crate) fn check_leaders_hold(&self, e: &Entry) -> Result<(), Fail> {
        let newest = self.safety.newest_leader_term();
        for h in &self.hosts {
            if h.is_up() && h.seen.role == Some(Role::Leader) && Some(h.seen.term) == newest {
                let has = h.view.get(e.index.0 as usize - 1).map(Entry::id);
                if has != Some(e.id()) {
                    return fail(
                        Check::LeaderCompleteness,
                        format!(
                            "entry {} is committed but n{}, leader of term {}, holds {has:?} there",
                            e.id(),
                            h.id,
                            h.seen.term
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// Commitment by the right majorities, for an entry seen committed for
    /// the first time: it is durable on a majority of the voters of a
    /// configuration in force at some node now or recently (of both halves
    /// of a joint one). Not with lying storage, which may take an entry off
    /// a majority's disks.
    pub(crate) fn check_commit_quorum(&self, e: &Entry) -> Result<(), Fail> {
        if self.plan.amnesia_per_mille > 0 {
            return Ok(());
        }
        let at = e.index.0 as usize - 1;
        let durable_on = |id: &NodeId| {
            self.hosts
                .get(id.0 as usize - 1)
                .and_then(|h| h.durable.entries.get(at))
                .map(Entry::id)
                == Some(e.id())
        };
        let majority = |set: &[NodeId]| {
            set.is_empty() || set.iter().filter(|id| durable_on(id)).count() > set.len() / 2
        };
        let holds = |c: &crate::membership::ConfState| {
            !c.voters.is_empty() && majority(&c.voters) && majority(&c.voters_outgoing)
        };
        for h in &self.hosts {
            if h.node.as_ref().is_some_and(|n| holds(n.conf_state())) || h.confs.iter().any(holds) {
                return Ok(());
            }
        }
        fail(
            Check::Commitment,
            format!(
                "entry {} is committed but no configuration in use has a majority that holds it; nodes:{}",
                e.id(),
                self.describe_nodes()
            ),
        )
    }

    /// Durability: every acknowledged write is in the log of every node that
    /// has applied past it, and in the leader's.
    pub(crate) fn check_durability(&self) -> Result<(), Fail> {
        let leader = self.leader().map(|(id, _)| id);
        for at in &self.safety.acked {
            for h in &self.hosts {
                let must = h.kv.applied >= at.index || Some(h.id) == leader;
                let has = h.view.get(at.index.0 as usize - 1).map(Entry::id);
                if h.is_up() && must && has != Some(*at) {
                    return fail(
                        Check::Durability,
                        format!(
                            "the write acknowledged at {at} is gone from n{} (which holds {has:?} there)",
                            h.id
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// Liveness of recovery, once every node has applied up to `target`: a
    /// node that lost data leaves recovery once it durably holds an entry
    /// committed in a term newer than the one it restored, so if the entry
    /// at `target` is of such a term, it must have. Returns how many nodes
    /// are still recovering because no newer term has committed anything
    /// (the leader of the term they restored still leads).
    pub(crate) fn check_recovered(&self, target: Index) -> Result<usize, Fail> {
        let mut waiting = 0;
        for h in self.hosts.iter().filter(|h| h.amnesiac) {
            let term = h.view.get(target.0 as usize - 1).map(|e| e.term);
            if term.is_some_and(|t| t > h.lost_term) {
                return fail(
                    Check::Liveness,
                    format!(
                        "n{} lost data in term {} and has applied {target} of term {}, \
                         committed in a newer term, but it is still recovering; nodes:{}",
                        h.id,
                        h.lost_term,
                        term.unwrap_or_default(),
                        self.describe_nodes()
                    ),
                );
            }
            waiting += 1;
        }
        Ok(waiting)
    }

    /// A line per node, for liveness failures.
    pub(crate) fn describe_nodes(&self) -> String {
        let mut out = String::new();
        for h in &self.hosts {
            match &h.node {
                None => out.push_str(&format!("\n  n{}: down", h.id)),
                Some(node) => {
                    let st = node.status();
                    out.push_str(&format!(
                        "\n  n{}: {:?} t{} leader {:?} last {} commit {} applied {} durable {}{}",
                        h.id,
                        st.role,
                        st.term,
                        st.leader,
                        st.last_log,
                        st.commit,
                        h.kv.applied,
                        h.durable.entries.len(),
                        if st.recovering {
                            " (recovering from lost data)"
                        } else {
                            ""
                        }
                    ));
                    if self.plan.membership_every_ticks > 0 {
                        let c = node.conf_state();
                        let ids = |v: &[NodeId]| {
                            v.iter()
                                .map(|i| i.0.to_string())
                                .collect::<Vec<_>>()
                                .join(",")
                        };
                        out.push_str(&format!(
                            " voters [{}]{}{} at {}",
                            ids(&c.voters),
                            if c.is_joint() {
                                format!(" outgoing [{}]", ids(&c.voters_outgoing))
                            } else {
                                String::new()
                            },
                            if c.learners.is_empty() {
                                String::new()
                            } else {
                                format!(" learners [{}]", ids(&c.learners))
                            },
                            node.conf_index()
                        ));
                    }
                }
            }
        }
        out
    }
}

/// The full invariant check of a node ([`Node::assert_invariants`]) is
/// O(log length). In release builds (the soaks) it runs at every role
/// change, and otherwise once per this many log entries' worth of events at
/// the node (every event while the log is shorter), so that it costs about
/// as much per event as a short log's check whatever the log's length.
/// Debug builds of the node run it after every input already.
const INVARIANT_ENTRIES_PER_EVENT: u64 = 8;

/// Runs [`Node::assert_invariants`], reporting a broken invariant as a node
/// panic that names the node.
fn check_invariants(node: &Node) -> Result<(), Fail> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        node.assert_invariants();
    }));
    match outcome {
        Ok(()) => Ok(()),
        Err(panic) => {
            let what = super::panic_message(panic.as_ref());
            fail(
                Check::NodePanic,
                format!("n{}: invariant broken: {what}", node.id()),
            )
        }
    }
}

/// `m` encoded and decoded again with the default codec, as a host on a
/// real network sends it. The simulator's payloads are small, so every
/// message the node's size limits let through must encode.
pub(crate) fn over_the_wire(m: Message) -> Result<Message, Fail> {
    let codec = crate::Codec::default();
    let bytes = match codec.encode(&m) {
        Ok(b) => b,
        Err(e) => return fail(Check::Codec, format!("{m:?} does not encode: {e}")),
    };
    match codec.decode(&bytes) {
        Ok(back) if back == m => Ok(back),
        Ok(back) => fail(
            Check::Codec,
            format!("{m:?} came out of the codec as {back:?}"),
        ),
        Err(e) => fail(Check::Codec, format!("{m:?} does not decode: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Term;

    #[test]
    fn a_leader_hears_a_majority_as_of_its_majority_th_freshest_peer() {
        // Five nodes, the leader is node 0: it needs two peers.
        let mut w = LeaderWatch::new(Term(3), 5, 10);
        w.heard = vec![0, 40, 25, 31, 12];
        assert_eq!(w.quorum_heard(0), 31);
        w.since = 35;
        assert_eq!(w.quorum_heard(0), 35, "a transfer restarts the window");
        // Three nodes: one peer is enough.
        let w = LeaderWatch {
            term: Term(1),
            heard: vec![7, 3, 9],
            since: 0,
        };
        assert_eq!(w.quorum_heard(2), 7);
        // A single node answers to nobody.
        assert_eq!(LeaderWatch::new(Term(1), 1, 4).quorum_heard(0), u64::MAX);
    }
}
