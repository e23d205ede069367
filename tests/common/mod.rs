//! An in-process cluster of zaft nodes, each with a model of its host, so that
//! a test reads as a story: `campaign(1)`, `propose(1, "x")`, `stabilize()`,
//! `crash(2)`, `restart(2)`.
//!
//! Each host has a durable store (log, hard state, applied index) and a
//! volatile write buffer holding what Readies wrote but the host has not yet
//! synced. A crash throws the buffer away (or keeps a prefix of it: a torn
//! write) and a restart rebuilds the node from the store through `Restored`.
//!
//! A host is either *auto* (after every input it syncs and advances until the
//! node is quiet, the run loop of the crate docs) or *held* (it writes each
//! Ready to its buffer and sends its messages, but syncs and advances only
//! when the test says so: `sync`, `advance`, `advance_some` for an older
//! Ready, `settle`).
//!
//! The harness checks the safety properties on every Ready, whatever the test
//! does: one vote per node per term, one leader per term, no message that
//! promises what its sender's disk does not hold, a commit index durable on
//! a majority, committed entries handed to each state machine in order,
//! exactly once and only once durable, and never two different entries
//! committed at one index anywhere in the cluster.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use zaft::{
    AppendResponse, Body, Config, Entry, EntryKind, Error, HardState, Index, Input, LogId, Message,
    Node, NodeId, Proposed, Ready, ReadyId, Restored, Role, Term,
};

// ---- small constructors ------------------------------------------------

/// `NodeId(n)`.
pub fn nid(n: u64) -> NodeId {
    NodeId(n)
}

/// `LogId` of `term@index`.
pub fn lid(term: u64, index: u64) -> LogId {
    LogId::new(Term(term), Index(index))
}

/// A normal entry whose payload names its place, e.g. `"3@7"`.
pub fn ent(term: u64, index: u64) -> Entry {
    Entry {
        term: Term(term),
        index: Index(index),
        kind: EntryKind::Normal,
        data: Bytes::from(format!("{term}@{index}")),
    }
}

/// A log from index 1 with the given terms.
pub fn log_of(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &t)| ent(t, i as u64 + 1))
        .collect()
}

/// The terms of a log, in index order.
pub fn terms_of(log: &[Entry]) -> Vec<u64> {
    log.iter().map(|e| e.term.get()).collect()
}

/// What a node restores from: `entries`, with `term` and no vote.
pub fn restored(term: u64, entries: Vec<Entry>) -> Restored {
    Restored {
        hard_state: HardState {
            term: Term(term),
            vote: None,
            commit: Index(0),
        },
        entries,
        applied: Index(0),
        lost_data: false,
        conf_state: None,
    }
}

pub fn msg(from: u64, to: u64, term: u64, body: Body) -> Message {
    Message {
        from: nid(from),
        to: nid(to),
        term: Term(term),
        body,
    }
}

pub fn request_vote(from: u64, to: u64, term: u64, last_log: LogId) -> Message {
    msg(
        from,
        to,
        term,
        Body::RequestVote {
            last_log,
            transfer: false,
        },
    )
}

pub fn append(
    from: u64,
    to: u64,
    term: u64,
    prev: LogId,
    entries: Vec<Entry>,
    commit: u64,
) -> Message {
    msg(
        from,
        to,
        term,
        Body::AppendEntries {
            prev,
            entries: entries.into(),
            commit: Index(commit),
        },
    )
}

pub fn heartbeat(from: u64, to: u64, term: u64, commit: u64) -> Message {
    msg(
        from,
        to,
        term,
        Body::Heartbeat {
            commit: Index(commit),
            round: 0,
        },
    )
}

// ---- message classifiers -------------------------------------------------

pub fn is_vote_request(m: &Message) -> bool {
    matches!(m.body, Body::RequestVote { .. })
}

/// `Some(granted)` if `m` answers a vote request.
pub fn vote_answer(m: &Message) -> Option<bool> {
    match m.body {
        Body::RequestVoteResponse { granted } => Some(granted),
        _ => None,
    }
}

pub fn is_vote_grant(m: &Message) -> bool {
    vote_answer(m) == Some(true)
}

pub fn is_append(m: &Message) -> bool {
    matches!(m.body, Body::AppendEntries { .. })
}

pub fn is_heartbeat(m: &Message) -> bool {
    matches!(m.body, Body::Heartbeat { .. })
}

/// The match index of a successful append answer.
pub fn append_ack(m: &Message) -> Option<Index> {
    match m.body {
        Body::AppendEntriesResponse(AppendResponse::Success { match_index }) => Some(match_index),
        _ => None,
    }
}

pub fn is_append_reject(m: &Message) -> bool {
    matches!(
        m.body,
        Body::AppendEntriesResponse(AppendResponse::Reject { .. })
    )
}

/// The entries an AppendEntries carries (empty for any other message).
pub fn append_entries(m: &Message) -> &[Entry] {
    match &m.body {
        Body::AppendEntries { entries, .. } => entries,
        _ => &[],
    }
}

// ---- the host model ----------------------------------------------------

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Store {
    pub entries: Vec<Entry>,
    pub hard_state: HardState,
    pub applied: Index,
}

/// One write a Ready asked for, not yet synced.
#[derive(Clone, Debug)]
enum Write {
    /// Truncate at the first entry's index, then append.
    Entries(Vec<Entry>),
    HardState(HardState),
    /// The state machine's progress: it has applied up to here.
    Applied(Index),
}

fn write_entries(log: &mut Vec<Entry>, entries: &[Entry]) {
    if let Some(first) = entries.first() {
        log.truncate(first.index.get() as usize - 1);
        log.extend_from_slice(entries);
    }
}

impl Store {
    fn apply(&mut self, w: &Write) {
        match w {
            Write::Entries(es) => write_entries(&mut self.entries, es),
            Write::HardState(hs) => self.hard_state = *hs,
            Write::Applied(i) => self.applied = *i,
        }
    }
}

/// One node and its host.
pub struct Host {
    pub config: Config,
    node: Option<Node>,
    /// What the disk holds for sure.
    pub store: Store,
    /// Written but not yet synced, oldest first, with the Ready that asked.
    unsynced: Vec<(ReadyId, Write)>,
    /// The log as written (store plus unsynced writes): what a read of the
    /// log file would show right now.
    pub log: Vec<Entry>,
    /// Every committed entry handed to the state machine, in order, noops
    /// included. After a crash only the durably applied prefix remains.
    pub applied: Vec<Entry>,
    /// The non-empty Readies written and not yet acknowledged, oldest first.
    unadvanced: Vec<ReadyId>,
    /// Held: sync and advance only when the test says so.
    pub held: bool,
    /// Every `Ready::proposed` seen, and every `Ready::lost` id.
    pub proposed: Vec<Proposed>,
    pub lost: Vec<LogId>,
    /// Every `Ready::read_states` answer, in order.
    pub reads: Vec<zaft::ReadState>,
    /// Every `Ready::soft_state` and `Ready::transfer_ended`, in order.
    pub soft_states: Vec<zaft::SoftState>,
    pub transfers: Vec<zaft::TransferEnded>,
    /// Every `Ready::conf_state`, in order.
    pub confs: Vec<zaft::ConfState>,
    /// The term and vote last handed out (or restored), for checking
    /// `Ready::must_sync`.
    emitted_vote: (Term, Option<NodeId>),
    /// Readies handed out since the last restart, and how many crashes.
    pub readies: u64,
    pub crashes: u64,
}

impl Host {
    /// A host whose disk holds `r`, running its node.
    fn start(config: Config, r: Restored) -> Host {
        let id = config.id;
        let store = Store {
            entries: r.entries.clone(),
            hard_state: r.hard_state,
            applied: r.applied,
        };
        let applied = r.entries[..r.applied.get() as usize].to_vec();
        let node = Node::new(config.clone(), r)
            .unwrap_or_else(|e| panic!("node {id:?} refused its restored state: {e}"));
        let emitted_vote = (node.term(), node.vote());
        Host {
            config,
            node: Some(node),
            log: store.entries.clone(),
            store,
            unsynced: Vec::new(),
            applied,
            unadvanced: Vec::new(),
            held: false,
            proposed: Vec::new(),
            lost: Vec::new(),
            reads: Vec::new(),
            soft_states: Vec::new(),
            transfers: Vec::new(),
            confs: Vec::new(),
            emitted_vote,
            readies: 0,
            crashes: 0,
        }
    }

    pub fn is_up(&self) -> bool {
        self.node.is_some()
    }

    /// The node; panics if it is crashed.
    pub fn node(&self) -> &Node {
        self.node
            .as_ref()
            .unwrap_or_else(|| panic!("node {:?} is crashed", self.config.id))
    }

    /// Whether the buffer holds writes not yet synced.
    pub fn has_unsynced(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// Whether a non-empty Ready waits for `advance`.
    pub fn has_unadvanced(&self) -> bool {
        !self.unadvanced.is_empty()
    }

    /// How many non-empty Readies wait for `advance`.
    pub fn unadvanced(&self) -> usize {
        self.unadvanced.len()
    }

    /// The payloads of the normal entries applied, in order.
    pub fn applied_data(&self) -> Vec<Bytes> {
        self.applied
            .iter()
            .filter(|e| e.kind == EntryKind::Normal)
            .map(|e| e.data.clone())
            .collect()
    }

    pub fn applied_index(&self) -> Index {
        Index(self.applied.len() as u64)
    }

    /// Makes the writes of every Ready up to `upto` durable (all if `None`).
    fn sync(&mut self, upto: Option<ReadyId>) {
        let n = self
            .unsynced
            .iter()
            .take_while(|(rid, _)| upto.is_none_or(|u| *rid <= u))
            .count();
        for (_, w) in self.unsynced.drain(..n) {
            self.store.apply(&w);
        }
    }
}

/// A directed link `from -> to`.
type Link = (NodeId, NodeId);

/// A cluster of nodes `1..=n` on a simulated network.
pub struct Cluster {
    hosts: Vec<Host>,
    /// Messages sent and not yet delivered, oldest first.
    pub net: Vec<Message>,
    /// Every message ever sent, in order.
    pub sent: Vec<Message>,
    /// Links whose messages are lost.
    cut: BTreeSet<Link>,
    /// Every vote grant sent, by (voter, term).
    votes: BTreeMap<(NodeId, Term), NodeId>,
    /// Every node seen as leader, by term.
    pub leaders: BTreeMap<Term, NodeId>,
    /// Every entry handed to any state machine, by index.
    pub committed: BTreeMap<Index, Entry>,
    /// Messages dropped by cut links or crashed recipients.
    pub lost_in_net: u64,
    /// Per node, the highest commit index already checked to be durable on
    /// a majority.
    checked_commit: Vec<Index>,
    /// A disk lost data (`restart_damaged`): a committed entry may be on
    /// fewer than a majority of disks until the cluster repairs it.
    data_lost: bool,
}

impl Cluster {
    /// `n` fresh nodes with default settings and seed 0.
    pub fn new(n: u64) -> Cluster {
        Cluster::build(n, |_| {}, |_| Restored::default())
    }

    /// `n` fresh nodes; `tweak` adjusts each config.
    pub fn with_config(n: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        Cluster::build(n, tweak, |_| Restored::default())
    }

    /// `n` nodes whose configs `tweak` adjusts, each restarted from what
    /// `restore` says its disk holds.
    pub fn build(
        n: u64,
        tweak: impl Fn(&mut Config),
        restore: impl Fn(NodeId) -> Restored,
    ) -> Cluster {
        let voters: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let hosts = voters
            .iter()
            .map(|&id| {
                let mut config = Config::new(id, voters.iter().copied());
                tweak(&mut config);
                Host::start(config, restore(id))
            })
            .collect();
        let mut c = Cluster {
            hosts,
            net: Vec::new(),
            sent: Vec::new(),
            cut: BTreeSet::new(),
            votes: BTreeMap::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            lost_in_net: 0,
            checked_commit: vec![Index(0); n as usize],
            data_lost: false,
        };
        for i in 0..c.hosts.len() {
            let applied = c.hosts[i].applied.clone();
            for e in applied {
                c.record_committed(&e);
            }
        }
        c
    }

    /// Starts a brand-new node with the next id, which joins the running
    /// cluster: it knows no voters and learns its configuration from the
    /// leader's log. Returns its id.
    pub fn add_node(&mut self, tweak: impl Fn(&mut Config)) -> u64 {
        let id = self.hosts.len() as u64 + 1;
        let mut config = Config::new(nid(id), []);
        tweak(&mut config);
        self.hosts.push(Host::start(config, Restored::default()));
        self.checked_commit.push(Index(0));
        id
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.hosts.iter().map(|h| h.config.id).collect()
    }

    pub fn size(&self) -> usize {
        self.hosts.len()
    }

    pub fn host(&self, id: u64) -> &Host {
        &self.hosts[id as usize - 1]
    }

    fn host_mut(&mut self, id: u64) -> &mut Host {
        &mut self.hosts[id as usize - 1]
    }

    /// The node; panics if it is crashed.
    pub fn node(&self, id: u64) -> &Node {
        self.host(id).node()
    }

    pub fn role(&self, id: u64) -> Role {
        self.node(id).role()
    }

    pub fn term(&self, id: u64) -> u64 {
        self.node(id).term().get()
    }

    /// The terms of node `id`'s log as written.
    pub fn log_terms(&self, id: u64) -> Vec<u64> {
        terms_of(&self.host(id).log)
    }

    /// The running leader with the highest term, if any.
    pub fn leader(&self) -> Option<u64> {
        self.hosts
            .iter()
            .filter_map(|h| h.node.as_ref())
            .filter(|n| n.is_leader())
            .max_by_key(|n| n.term())
            .map(|n| n.id().get())
    }

    /// The newest-term leader among the running nodes other than `id`;
    /// panics if there is none.
    pub fn leader_other_than(&self, id: u64) -> u64 {
        self.hosts
            .iter()
            .filter_map(|h| h.node.as_ref())
            .filter(|n| n.is_leader() && n.id() != nid(id))
            .max_by_key(|n| n.term())
            .map(|n| n.id().get())
            .unwrap_or_else(|| panic!("no leader other than {id}"))
    }

    // ---- inputs --------------------------------------------------------

    /// Steps node `id` and handles the Ready as its host would.
    pub fn try_step(&mut self, id: u64, input: Input) -> Result<(), Error> {
        let node = self.hosts[id as usize - 1]
            .node
            .as_mut()
            .unwrap_or_else(|| panic!("stepping crashed node {id}"));
        let ready = node.step(input)?;
        self.handle(id, ready);
        if !self.host(id).held {
            self.settle(id);
        }
        Ok(())
    }

    pub fn step(&mut self, id: u64, input: Input) {
        self.try_step(id, input)
            .unwrap_or_else(|e| panic!("node {id}: {e}"));
    }

    pub fn tick(&mut self, id: u64) {
        self.step(id, Input::Tick);
    }

    /// One tick on every running node.
    pub fn tick_all(&mut self) {
        for id in self.running() {
            self.tick(id);
        }
    }

    pub fn campaign(&mut self, id: u64) {
        self.step(id, Input::Campaign);
    }

    /// Node `id` campaigns, everything is delivered, and it must have won.
    pub fn elect(&mut self, id: u64) {
        self.campaign(id);
        self.stabilize();
        assert!(
            self.node(id).is_leader(),
            "node {id} did not win: {:?}",
            self.node(id).status()
        );
    }

    /// Proposes `data` at node `id`, which must accept it.
    pub fn propose(&mut self, id: u64, data: impl Into<Bytes>) -> Proposed {
        self.try_propose(id, data)
            .unwrap_or_else(|e| panic!("node {id} refused a proposal: {e}"))
    }

    /// Proposes `data` at node `id`; its `(term, index)` on success.
    pub fn try_propose(&mut self, id: u64, data: impl Into<Bytes>) -> Result<Proposed, Error> {
        let before = self.host(id).proposed.len();
        self.try_step(id, Input::Propose(data.into()))?;
        let h = self.host(id);
        assert_eq!(h.proposed.len(), before + 1, "no Ready::proposed");
        Ok(h.proposed[before])
    }

    /// The ids of the running nodes.
    pub fn running(&self) -> Vec<u64> {
        self.hosts
            .iter()
            .filter(|h| h.is_up())
            .map(|h| h.config.id.get())
            .collect()
    }

    // ---- the host side -------------------------------------------------

    /// Does what a Ready asks, except syncing and advancing: writes to the
    /// buffer, sends, applies.
    fn handle(&mut self, id: u64, mut ready: Ready) {
        let h = &mut self.hosts[id as usize - 1];
        h.readies += 1;
        let rid = ready.id();
        if !ready.is_empty() {
            h.unadvanced.push(rid);
        }
        // Ready::must_sync: new entries, or a new term or vote.
        let vote_changed = ready
            .hard_state()
            .is_some_and(|hs| (hs.term, hs.vote) != h.emitted_vote);
        assert_eq!(
            ready.must_sync(),
            !ready.entries().is_empty() || vote_changed,
            "node {id}: must_sync wrong for {ready:?}"
        );
        if let Some(hs) = ready.hard_state() {
            h.emitted_vote = (hs.term, hs.vote);
        }
        h.soft_states.extend(ready.soft_state());
        h.transfers.extend(ready.transfer_ended());
        h.confs.extend(ready.conf_state().cloned());
        let entries = ready.take_entries();
        if !entries.is_empty() {
            write_entries(&mut h.log, &entries);
            h.unsynced.push((rid, Write::Entries(entries.to_vec())));
        }
        if let Some(hs) = ready.hard_state() {
            h.unsynced.push((rid, Write::HardState(*hs)));
        }
        if let Some(p) = ready.proposed() {
            h.proposed.push(p);
        }
        h.lost.extend_from_slice(ready.lost());
        h.reads.extend_from_slice(ready.read_states());
        let committed = ready.take_committed();
        for e in &committed {
            let h = &mut self.hosts[id as usize - 1];
            assert_eq!(
                e.index.get(),
                h.applied.len() as u64 + 1,
                "node {id} was handed {:?} after applying {} entries: not in order, or twice",
                e.id(),
                h.applied.len()
            );
            assert!(
                h.store.entries.get(e.index.get() as usize - 1) == Some(e),
                "node {id} was handed committed {:?} before it was durable in its own log",
                e.id()
            );
            h.applied.push(e.clone());
            self.record_committed(e);
        }
        if !committed.is_empty() {
            let h = &mut self.hosts[id as usize - 1];
            let applied = h.applied_index();
            h.unsynced.push((rid, Write::Applied(applied)));
        }
        for m in ready.take_messages() {
            assert_eq!(m.from, nid(id), "node {id} sent a message as {:?}", m.from);
            self.check_safe_to_send(id, &m);
            if is_vote_grant(&m) {
                let prev = *self.votes.entry((m.from, m.term)).or_insert(m.to);
                assert_eq!(
                    prev, m.to,
                    "node {id} granted its vote in term {:?} to both {prev:?} and {:?}",
                    m.term, m.to
                );
            }
            self.sent.push(m.clone());
            self.net.push(m);
        }
        self.check_leader(id);
        self.check_commit_durable(id);
    }

    /// What "committed" means (§5.3): an entry a node knows to be committed
    /// is durable on a majority of the cluster's disks. Checked at the commit
    /// index; Log Matching covers the entries before it.
    fn check_commit_durable(&mut self, id: u64) {
        let h = &self.hosts[id as usize - 1];
        let Some(node) = h.node.as_ref() else {
            return;
        };
        let commit = node.status().commit;
        if commit <= self.checked_commit[id as usize - 1] || self.data_lost {
            return;
        }
        let at = commit.get() as usize - 1;
        let entry = h.log[at].id();
        let holds = |o: &NodeId| {
            self.hosts[o.get() as usize - 1]
                .store
                .entries
                .get(at)
                .map(Entry::id)
                == Some(entry)
        };
        // A majority of the configuration in force, of both halves while
        // joint (the node's configuration may be newer than the one that
        // committed the entry: a majority of all nodes also does).
        let conf = node.conf_state();
        let majority_of = |set: &[NodeId]| set.iter().filter(|o| holds(o)).count() > set.len() / 2;
        let all: Vec<NodeId> = self.ids();
        assert!(
            majority_of(&all)
                || (majority_of(&conf.voters)
                    && (conf.voters_outgoing.is_empty() || majority_of(&conf.voters_outgoing))),
            "node {id} knows {entry:?} as committed, but no majority of disks holds it"
        );
        self.checked_commit[id as usize - 1] = commit;
    }

    /// Rule 1 of the Ready contract: a message that promises something about
    /// the sender's disk is only handed out once the disk holds it. A vote
    /// grant needs the vote durable; an append acknowledgement needs the
    /// entries durable, unless the sender has since durably moved to a later
    /// term (then the acknowledgement is merely stale, like a slow message).
    fn check_safe_to_send(&self, id: u64, m: &Message) {
        let store = &self.host(id).store;
        let hs = store.hard_state;
        // No message of a term leaves before the term is durable (a
        // pre-vote proposes a term it does not hold).
        let proposes = matches!(
            m.body,
            Body::PreVote { .. } | Body::PreVoteResponse { granted: true }
        );
        let durable_term = hs
            .term
            .max(store.entries.last().map_or(Term(0), |e| e.term));
        assert!(
            proposes || m.term <= durable_term,
            "node {id} sent {:?} in {:?} before that term was durable (disk: {hs:?})",
            m.body,
            m.term
        );
        if is_vote_grant(m) {
            assert!(
                hs.term > m.term || (hs.term == m.term && hs.vote == Some(m.to)),
                "node {id} sent a vote for {:?} in {:?} before it was durable (disk: {hs:?})",
                m.to,
                m.term
            );
        }
        if let Some(match_index) = append_ack(m) {
            assert!(
                store.entries.len() as u64 >= match_index.get() || hs.term > m.term,
                "node {id} acknowledged entries up to {match_index:?} with only {} on disk",
                store.entries.len()
            );
        }
    }

    fn record_committed(&mut self, e: &Entry) {
        let prev = self.committed.entry(e.index).or_insert_with(|| e.clone());
        assert_eq!(
            prev, e,
            "two different entries committed at index {:?}",
            e.index
        );
    }

    fn check_leader(&mut self, id: u64) {
        if let Some(n) = self.hosts[id as usize - 1].node.as_ref()
            && n.is_leader()
        {
            let prev = *self.leaders.entry(n.term()).or_insert(n.id());
            assert_eq!(
                prev,
                n.id(),
                "two leaders in term {:?}: {prev:?} and {:?}",
                n.term(),
                n.id()
            );
        }
    }

    /// Makes every write of node `id` durable (an fsync), without advancing.
    pub fn sync(&mut self, id: u64) {
        self.host_mut(id).sync(None);
    }

    /// Syncs node `id`, acknowledges its newest Ready, and handles the
    /// follow-up (without syncing or advancing that one). Returns whether
    /// there was anything to acknowledge.
    pub fn advance(&mut self, id: u64) -> bool {
        match self.host(id).unadvanced.len() {
            0 => false,
            n => self.advance_some(id, n),
        }
    }

    /// Makes durable the writes of node `id`'s oldest `n` unacknowledged
    /// Readies (and of the empty ones among them) but not of later ones,
    /// acknowledges the `n`-th, and handles the follow-up. Returns whether
    /// there was anything to acknowledge.
    pub fn advance_some(&mut self, id: u64, n: usize) -> bool {
        let h = self.host_mut(id);
        if n == 0 || n > h.unadvanced.len() {
            return false;
        }
        let rid = h.unadvanced[n - 1];
        h.unadvanced.drain(..n);
        h.sync(Some(rid));
        let node = h.node.as_mut().expect("advancing a crashed node");
        let ready = node
            .advance(rid)
            .unwrap_or_else(|e| panic!("node {id}: advance({rid:?}): {e}"));
        self.handle(id, ready);
        true
    }

    /// Syncs and advances node `id` until it has nothing more to persist.
    pub fn settle(&mut self, id: u64) {
        let mut rounds = 0;
        while self.advance(id) {
            rounds += 1;
            assert!(rounds < 1000, "node {id} never settles");
        }
        self.sync(id);
    }

    /// From now on node `id`'s host writes Readies but syncs and advances
    /// only when told (`sync`, `advance`, `settle`).
    pub fn hold(&mut self, id: u64) {
        self.host_mut(id).held = true;
    }

    /// Back to the normal run loop: settles node `id` now and after every input.
    pub fn release(&mut self, id: u64) {
        self.host_mut(id).held = false;
        self.settle(id);
    }

    // ---- crashes ---------------------------------------------------------

    /// Node `id` stops; its unsynced writes are lost.
    pub fn crash(&mut self, id: u64) {
        self.crash_keeping(id, 0, None);
    }

    /// Node `id` stops after `writes` of its unsynced writes reached the
    /// disk, plus, with `Some(k)`, the truncation and the first `k` entries
    /// of the next one if it is a log write: a torn write.
    pub fn crash_keeping(&mut self, id: u64, writes: usize, entries: Option<usize>) {
        let h = self.host_mut(id);
        assert!(h.node.is_some(), "node {id} is already crashed");
        h.node = None;
        h.crashes += 1;
        let unsynced = std::mem::take(&mut h.unsynced);
        for (_, w) in unsynced.iter().take(writes) {
            h.store.apply(w);
        }
        if let (Some(entries), Some((_, Write::Entries(es)))) = (entries, unsynced.get(writes)) {
            let kept = es.len().min(entries);
            if kept > 0 {
                write_entries(&mut h.store.entries, &es[..kept]);
            } else if let Some(first) = es.first() {
                // The truncation reached the disk, the appends did not.
                h.store.entries.truncate(first.index.get() as usize - 1);
            }
        }
        h.unadvanced.clear();
        h.log = h.store.entries.clone();
        let applied = h.store.applied.get() as usize;
        h.applied.truncate(applied);
    }

    /// How many writes node `id` has not yet synced.
    pub fn unsynced_writes(&self, id: u64) -> usize {
        self.host(id).unsynced.len()
    }

    /// Restarts node `id` from its disk.
    pub fn restart(&mut self, id: u64) {
        self.restart_with(id, false);
    }

    /// Node `id` crashes and its disk loses data: `damage` edits what
    /// survived (truncates the log, wipes it). The state machine is rebuilt
    /// from the log (applied 0). It restarts telling the node `lost_data`.
    pub fn restart_damaged(&mut self, id: u64, damage: impl FnOnce(&mut Store), lost_data: bool) {
        if self.host(id).is_up() {
            self.crash(id);
        }
        self.data_lost = true;
        let h = self.host_mut(id);
        damage(&mut h.store);
        h.store.applied = Index(0);
        h.applied.clear();
        h.log = h.store.entries.clone();
        self.restart_with(id, lost_data);
    }

    fn restart_with(&mut self, id: u64, lost_data: bool) {
        let h = self.host_mut(id);
        assert!(h.node.is_none(), "node {id} is running");
        let r = Restored {
            hard_state: h.store.hard_state,
            entries: h.store.entries.clone(),
            applied: h.store.applied,
            lost_data,
            conf_state: None,
        };
        let node = Node::new(h.config.clone(), r)
            .unwrap_or_else(|e| panic!("node {id} cannot restart from its own disk: {e}"));
        h.emitted_vote = (node.term(), node.vote());
        h.node = Some(node);
        h.readies = 0;
        self.check_leader(id);
    }

    /// Makes node `id` commit `bug` from now on (bug hunt builds only:
    /// `--cfg zaft_bugs`).
    #[cfg(zaft_bugs)]
    pub fn inject_bug(&mut self, id: u64, bug: zaft::sim::Bug) {
        self.host_mut(id)
            .node
            .as_mut()
            .unwrap_or_else(|| panic!("node {id} is crashed"))
            .inject_bug(bug);
    }

    /// Crash and restart at once.
    pub fn reboot(&mut self, id: u64) {
        self.crash(id);
        self.restart(id);
    }

    // ---- the network -----------------------------------------------------

    /// Delivers one message (dropped if its link is cut or its recipient is down).
    pub fn deliver(&mut self, m: Message) {
        let to = m.to.get();
        let down = to == 0
            || to as usize > self.hosts.len()
            || !self.host(to).is_up()
            || self.cut.contains(&(m.from, m.to));
        if down {
            self.lost_in_net += 1;
            return;
        }
        self.step(to, Input::Message(m));
    }

    /// Delivers everything in flight now (not what that causes). Returns how
    /// many messages were taken off the network.
    pub fn deliver_all(&mut self) -> usize {
        let batch = std::mem::take(&mut self.net);
        let n = batch.len();
        for m in batch {
            self.deliver(m);
        }
        n
    }

    /// Delivers the messages in flight that match `pred`; keeps the others.
    pub fn deliver_where(&mut self, pred: impl Fn(&Message) -> bool) -> usize {
        let batch = self.take_where(pred);
        let n = batch.len();
        for m in batch {
            self.deliver(m);
        }
        n
    }

    /// Delivers the messages in flight to node `to`.
    pub fn deliver_to(&mut self, to: u64) -> usize {
        self.deliver_where(|m| m.to == nid(to))
    }

    /// Takes the messages in flight that match `pred` off the network.
    pub fn take_where(&mut self, pred: impl Fn(&Message) -> bool) -> Vec<Message> {
        let (taken, kept) = std::mem::take(&mut self.net).into_iter().partition(pred);
        self.net = kept;
        taken
    }

    /// Drops the messages in flight that match `pred`. Returns how many.
    pub fn drop_where(&mut self, pred: impl Fn(&Message) -> bool) -> usize {
        self.take_where(pred).len()
    }

    /// Drops everything in flight.
    pub fn drop_all(&mut self) -> usize {
        self.drop_where(|_| true)
    }

    /// Puts a message on the network, as if sent.
    pub fn inject(&mut self, m: Message) {
        self.net.push(m);
    }

    /// Sends every message in flight twice.
    pub fn duplicate_all(&mut self) {
        let copy = self.net.clone();
        self.net.extend(copy);
    }

    /// Reverses the order of the messages in flight.
    pub fn reverse_net(&mut self) {
        self.net.reverse();
    }

    /// Messages between `a` and `b` are lost, both ways.
    pub fn cut(&mut self, a: u64, b: u64) {
        self.cut.insert((nid(a), nid(b)));
        self.cut.insert((nid(b), nid(a)));
    }

    /// Node `id` can talk to no one.
    pub fn isolate(&mut self, id: u64) {
        for other in self.ids() {
            if other != nid(id) {
                self.cut(id, other.get());
            }
        }
    }

    /// Splits the cluster: nodes in different groups cannot talk.
    pub fn partition(&mut self, groups: &[&[u64]]) {
        for (i, g) in groups.iter().enumerate() {
            for h in &groups[i + 1..] {
                for &a in *g {
                    for &b in *h {
                        self.cut(a, b);
                    }
                }
            }
        }
    }

    /// Every link works again.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Delivers messages until none is in flight (held hosts keep theirs).
    pub fn stabilize(&mut self) {
        let mut rounds = 0;
        while self.deliver_all() > 0 {
            rounds += 1;
            assert!(rounds < 10_000, "the cluster never goes quiet");
        }
    }

    /// Ticks every running node `n` times, stabilizing after each tick.
    pub fn tick_and_stabilize(&mut self, n: usize) {
        for _ in 0..n {
            self.tick_all();
            self.stabilize();
        }
    }

    /// Ticks and delivers until some node leads; returns it.
    pub fn run_until_leader(&mut self, max_ticks: usize) -> u64 {
        for _ in 0..max_ticks {
            self.tick_all();
            self.stabilize();
            if let Some(l) = self.leader() {
                return l;
            }
        }
        panic!("no leader after {max_ticks} ticks");
    }

    /// How many messages matching `pred` have been sent so far.
    pub fn count_sent(&self, pred: impl Fn(&Message) -> bool) -> usize {
        self.sent.iter().filter(|m| pred(m)).count()
    }

    // ---- assertions --------------------------------------------------------

    /// Every running node has applied the same entries.
    pub fn assert_applied_equal(&self) {
        let up: Vec<&Host> = self.hosts.iter().filter(|h| h.is_up()).collect();
        for h in &up[1..] {
            assert_eq!(
                h.applied, up[0].applied,
                "nodes {:?} and {:?} applied different entries",
                h.config.id, up[0].config.id
            );
        }
    }

    /// Every running node's log is the same as written.
    pub fn assert_logs_equal(&self) {
        let up: Vec<&Host> = self.hosts.iter().filter(|h| h.is_up()).collect();
        for h in &up[1..] {
            assert_eq!(
                terms_of(&h.log),
                terms_of(&up[0].log),
                "nodes {:?} and {:?} hold different logs",
                h.config.id,
                up[0].config.id
            );
            assert_eq!(h.log, up[0].log);
        }
    }

    /// No more than one leader per term among the running nodes right now
    /// (the history is checked on every Ready anyway).
    pub fn assert_one_leader_per_term(&self) {
        let mut seen = BTreeMap::new();
        for n in self.hosts.iter().filter_map(|h| h.node.as_ref()) {
            if n.is_leader() {
                let prev = seen.insert(n.term(), n.id());
                assert!(prev.is_none(), "two leaders in term {:?}", n.term());
            }
        }
    }

    /// Whether node `id` has applied the entry with payload `data`.
    pub fn has_applied(&self, id: u64, data: &str) -> bool {
        self.host(id).applied_data().iter().any(|d| d == data)
    }
}
