//! One node: the event loop that owns the `zaft::Node`, and the client side.
//!
//! This is the part to copy. Threads feed one bounded channel of [`Event`]s —
//! peer readers, client connections, the peer writers' reports — and a
//! single loop owns the node, the WAL and the state machine:
//!
//! ```text
//! loop {
//!     wait for an event or the next tick; drain what else is queued (bounded)
//!     before every step: Input::Ticks(every tick the monotonic clock says is due)
//!     step each one; handle each Ready:
//!         WAL append (buffered) + hard state noted, messages sent, committed applied,
//!         soft_state (role or leader changed): redirect, fail unconfirmed reads
//!     client writes of the whole batch go in as one ProposeBatch
//!     if any Ready since the last advance said must_sync():
//!         one fdatasync (+ the hard-state file if term or vote changed)
//!     advance(last Ready id); handle the follow-up Ready the same way
//! }
//! ```
//!
//! So one fsync covers every proposal from every client that arrived while
//! the previous one ran: group commit falls out of the loop's shape.
//!
//! The loop never polls the node for its role or leader: it learns them from
//! [`Ready::soft_state`], reported only when one of them changes, and
//! redirects clients with what it learnt. Nor does it work out by itself
//! which writes need an fsync: [`Ready::must_sync`] says so (entries, or a
//! new term or vote); a hard state that only moves the commit index is a
//! restart hint, saved lazily.
//!
//! Membership lives in the log. The address book starts from `--cluster`
//! and grows from the context of every membership entry that reaches the
//! log (`ID=PEER_ADDR/CLIENT_ADDR`, written by `CLUSTER ADDLEARNER`), so a
//! leader can reach a learner the moment it appends the entry that adds it,
//! and every node, a restarted or newly joined one too, learns the members
//! from the log alone. A node is cut off (its link dropped, its connections
//! refused) once a committed entry removed it and no configuration in force
//! names it: a removal that is still uncommitted may yet be overwritten.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, info, warn};
use zaft::{
    ConfChange, ConfState, Config, Entry, EntryKind, Error as RaftError, HardState, Index, Input,
    LogId, MembershipChange, MembershipEntry, MembershipError, Message, Node, NodeId,
    ProgressState, Ready, Restored, Role, SoftState, TransferOutcome,
};

use crate::auth::{ClusterSecret, Password};
use crate::cluster;
use crate::commands::{self, Parsed, Session};
use crate::datadir;
use crate::peer::PeerNet;
use crate::resp::{self, Reply, RespError};
use crate::store::{Command, Logged, Query, Store};
use crate::wal::{self, Wal};

/// How long one tick is.
pub const TICK: Duration = Duration::from_millis(10);
/// Events queued for the loop before senders wait.
const EVENT_QUEUE: usize = 8192;
/// Events handled between two fsyncs at most.
const MAX_EVENTS_PER_ROUND: usize = 4096;
/// Bytes of client commands in one ProposeBatch at most.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// A client waiting longer than this gets "outcome unknown".
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CLIENTS: usize = 1024;
/// WAL segments roll over at this size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// The commit index is only a restart hint: save it at most this often when
/// nothing else forces a hard-state write.
const COMMIT_SAVE_INTERVAL: Duration = Duration::from_secs(1);
/// An fsync slower than this is logged (a warning): every client of the
/// round waited for it.
const SLOW_FSYNC: Duration = Duration::from_millis(50);
/// A learner is promoted only once its match index is within this many
/// entries of the leader's commit index (and the leader streams to it): a
/// voter far behind would hold up every commit it is needed for.
const PROMOTE_MAX_LAG: u64 = 64;
/// How long `CLUSTER PROMOTE` waits for the learner to catch up.
const PROMOTE_WAIT: Duration = Duration::from_secs(5);

/// One member of the cluster and its addresses, as `--cluster` or a
/// membership entry's context gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub peer_addr: SocketAddr,
    pub client_addr: SocketAddr,
}

/// How GET is made linearizable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// `Input::ReadIndex`: the leader confirms it still leads with one
    /// heartbeat round, then the read is served from the local state machine
    /// once it has applied up to the read index. Works on followers too (they
    /// ask the leader for the index). No log entry, no fsync.
    Index,
    /// Like `Index`, but the leader skips the heartbeat round while its lease
    /// holds (needs bounded clock drift between nodes).
    Lease,
    /// The read is proposed like a write and answered when it applies: one
    /// log entry and one fsync per batch of reads. The simplest to trust.
    Log,
}

/// Everything one node process needs.
pub struct NodeOptions {
    pub id: NodeId,
    /// The members this node knows of at start (`--cluster`): itself, and
    /// the nodes it can reach. Founding voters of a cluster set up now with
    /// `--bootstrap`; the log adds and removes members from there.
    pub members: Vec<Member>,
    pub data_dir: PathBuf,
    pub read_mode: ReadMode,
    pub start: datadir::Start,
    pub accept_data_loss: bool,
    /// Authenticates peer links (`auth.rs`); `None`: the peer port is open
    /// to anyone who can reach it.
    pub cluster_secret: Option<ClusterSecret>,
    /// What clients must `AUTH` with, if anything.
    pub password: Password,
}

/// Something for the event loop.
pub enum Event {
    Peer(Message),
    /// A peer writer lost its connection or dropped messages.
    Unreachable(NodeId),
    /// A peer with a lower id connected and passed the handshake.
    PeerConn(NodeId, TcpStream),
    Client(Request, mpsc::Sender<Reply>),
}

/// What a client asked the loop for.
pub enum Request {
    /// Through the log: answered when it commits and applies.
    Log(Command),
    /// A linearizable read (GET, MGET, EXISTS, TTL, ...), served as
    /// `--reads` says.
    Read(Query),
    /// From the local state machine, possibly stale (STALEGET).
    Stale(Query),
    Info,
    /// Hand leadership to this node (leader only); answered when the
    /// transfer ends.
    Transfer(NodeId),
    /// A membership change (leader only); answered when it commits.
    Admin(Admin),
    /// `CLUSTER MEMBERS`: the configuration in force here.
    Members,
}

/// The membership changes a client may ask for (`CLUSTER ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admin {
    /// Adds a learner; its addresses go into the entry's context.
    AddLearner(Member),
    /// Makes a learner a voter, once it has caught up.
    Promote(NodeId),
    /// Removes a voter or a learner.
    Remove(NodeId),
}

struct Waiter {
    reply: mpsc::Sender<Reply>,
    since: Instant,
}

/// Counters for INFO.
#[derive(Default)]
struct Counters {
    proposals: u64,
    batches: u64,
    redirects: u64,
    reads: u64,
    reads_retry: u64,
    lost: u64,
    timeouts: u64,
    hard_state_saves: u64,
    bad_entries: u64,
    reads_failed_on_leader_change: u64,
    peer_msgs_from_removed: u64,
}

struct Host {
    node: Node,
    wal: Wal,
    opts: NodeOptions,
    store: Store,
    net: PeerNet,
    /// Every node's addresses this one knows: `--cluster`, then the
    /// contexts of the membership entries in its log.
    book: BTreeMap<NodeId, Member>,
    /// Nodes a committed entry removed that a configuration in force still
    /// names (a joint configuration's outgoing voters): cut off once none
    /// does.
    removing: BTreeSet<NodeId>,
    /// `CLUSTER PROMOTE`s waiting for their learner to catch up.
    promotions: Vec<(NodeId, Waiter)>,
    waiting: HashMap<LogId, Waiter>,
    /// Read-index requests sent to the node, by ctx.
    reads: HashMap<u64, (Query, Waiter)>,
    next_read_ctx: u64,
    /// Confirmed reads waiting for the state machine to reach their index.
    reads_to_serve: BTreeMap<u64, Vec<(Query, Waiter)>>,
    /// The last log index applied to `store`.
    applied: u64,
    /// When the last tick delivered to the node was due: ticks follow the
    /// monotonic clock, not the loop's iterations.
    last_tick: Instant,
    /// The hard state last saved, and the latest one a Ready asked for.
    hs_saved: HardState,
    hs_latest: HardState,
    hs_saved_at: Instant,
    /// The `node` file says this node is recovering from lost data, and zaft
    /// has not yet said it caught up.
    recovering: bool,
    /// The role and leader the last `Ready::soft_state` reported: what
    /// clients are redirected by. Never polled from the node.
    soft: SoftState,
    /// Leadership transfers asked for by clients, answered when
    /// `Ready::transfer_ended` reports the end of the transfer to their node.
    transfers: Vec<(NodeId, Waiter)>,
    /// A Ready handed out since the last `advance` said `must_sync`: the
    /// WAL's appends (and a new term or vote) must be durable first.
    must_sync: bool,
    /// The last Ready handed out, and whether one not yet acknowledged asked
    /// for anything.
    last_ready: Option<zaft::ReadyId>,
    unacked_work: bool,
    /// Peers to report unreachable after the current step.
    unreachable: Vec<NodeId>,
    counters: Counters,
    clients: Arc<AtomicUsize>,
    bad_requests: Arc<AtomicU64>,
    /// Wrong passwords given to AUTH or HELLO.
    auth_failures: Arc<AtomicU64>,
}

/// A failure the node cannot continue after (an fsync error, a broken
/// contract): the process exits and restarts from its WAL.
type Fatal = String;

pub fn run(opts: NodeOptions) -> Result<(), Fatal> {
    let me = opts
        .members
        .iter()
        .find(|m| m.id == opts.id)
        .cloned()
        .ok_or_else(|| format!("node {} is not in --cluster", opts.id))?;
    let cluster_ids: Vec<NodeId> = opts.members.iter().map(|m| m.id).collect();
    let datadir::Opened {
        wal,
        recovered: rec,
        lost_data,
        founders,
    } = datadir::open(
        &opts.data_dir,
        opts.id,
        opts.start,
        &cluster_ids,
        opts.accept_data_loss,
        SEGMENT_BYTES,
    )?;
    if let Some(t) = &rec.torn_tail {
        warn!(
            node = opts.id.get(),
            file = %t.path.display(),
            offset = t.offset,
            bytes = t.bytes_dropped,
            "recovery cut a torn tail: {} bytes at byte {} of {} (a write that never \
             completed, so never acknowledged)",
            t.bytes_dropped,
            t.offset,
            t.path.display()
        );
    }
    if let Some(d) = &rec.accepted_loss {
        warn!(
            node = opts.id.get(),
            file = %d.path.display(),
            offset = d.offset,
            intact_to = d.intact_to,
            "--accept-data-loss: {d}. Kept the log up to index {}; the damaged files are kept \
             as *.damaged",
            d.intact_to
        );
    }
    if lost_data {
        warn!(
            node = opts.id.get(),
            "this node lost data: it will not vote or campaign until it has caught up from \
             the leader"
        );
    }
    info!(
        node = opts.id.get(),
        entries = rec.entries.len(),
        last_index = rec.entries.last().map_or(0, |e| e.index.get()),
        term = rec.hard_state.term.get(),
        vote = ?rec.hard_state.vote.map(NodeId::get),
        commit = rec.hard_state.commit.get(),
        "WAL recovered"
    );

    // The founding voters the data directory recorded (none on a node that
    // joined a running cluster): the log's membership entries do the rest.
    let mut config = Config::new(opts.id, founders);
    config.heartbeat_interval_ticks = 5;
    config.election_timeout_ticks_min = 30;
    config.election_timeout_ticks_max = 60;
    // A follower answers writes with MOVED instead of forwarding them: a
    // forwarded proposal has no (term, index) here to wait on.
    config.forward_proposals = false;
    config.pre_vote = true;
    config.check_quorum = true;
    config.lease_reads = opts.read_mode == ReadMode::Lease;
    config.seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    // Addresses: --cluster's, then what the log's membership entries say,
    // in log order, committed or not (an address is only a hint).
    let mut book: BTreeMap<NodeId, Member> =
        opts.members.iter().map(|m| (m.id, m.clone())).collect();
    for e in &rec.entries {
        if let Some(m) = membership_entry(e) {
            learn_addresses(&mut book, opts.id, &m);
        }
    }
    // The state machine lives in memory, so a restart replays the whole log:
    // nothing is applied yet.
    let rec_commit = rec.hard_state.commit;
    let restored = Restored {
        hard_state: rec.hard_state,
        entries: rec.entries,
        applied: Index(0),
        lost_data,
        conf_state: None,
    };
    let node = Node::new(config, restored).map_err(|e| format!("cannot start: {e}"))?;
    let recovering = node.status().recovering;
    if recovering && !lost_data {
        // The log ends below the commit index: zaft treats the node as one
        // that lost data, and so must the next restart.
        warn!(
            node = opts.id.get(),
            commit = rec_commit.get(),
            "the log ends below the commit index: this node lost data; it will not vote or \
             campaign until it has caught up from the leader"
        );
        datadir::set_recovering(&opts.data_dir, opts.id, true)?;
    }
    if !node.conf_state().contains(opts.id) {
        info!(
            node = opts.id.get(),
            "not a member yet: this node waits to be added. On the leader: CLUSTER ADDLEARNER \
             {} {} {}, then CLUSTER PROMOTE {}",
            opts.id,
            me.peer_addr,
            me.client_addr,
            opts.id
        );
    }

    let peer_listener = TcpListener::bind(me.peer_addr)
        .map_err(|e| format!("bind peer address {}: {e}", me.peer_addr))?;
    let client_listener = TcpListener::bind(me.client_addr)
        .map_err(|e| format!("bind client address {}: {e}", me.client_addr))?;

    let (tx, rx) = mpsc::sync_channel::<Event>(EVENT_QUEUE);
    let mut net = PeerNet::start(
        opts.id,
        peer_listener,
        opts.cluster_secret.clone(),
        tx.clone(),
    );
    for m in book.values() {
        net.add_peer(m.id, m.peer_addr);
    }
    let clients = Arc::new(AtomicUsize::new(0));
    let bad_requests = Arc::new(AtomicU64::new(0));
    let auth_failures = Arc::new(AtomicU64::new(0));
    {
        let (clients, bad, auth_failures) =
            (clients.clone(), bad_requests.clone(), auth_failures.clone());
        let password = opts.password.clone();
        thread::Builder::new()
            .name("client-listener".into())
            .spawn(move || {
                client_accept_loop(client_listener, tx, password, clients, bad, auth_failures)
            })
            .map_err(|e| e.to_string())?;
    }
    info!(
        node = opts.id.get(),
        clients = %me.client_addr,
        peers = %me.peer_addr,
        read_mode = ?opts.read_mode,
        "serving"
    );

    let hs = rec.hard_state;
    let mut host = Host {
        node,
        wal,
        opts,
        store: Store::default(),
        net,
        book,
        removing: BTreeSet::new(),
        promotions: Vec::new(),
        waiting: HashMap::new(),
        reads: HashMap::new(),
        next_read_ctx: 1,
        reads_to_serve: BTreeMap::new(),
        applied: 0,
        last_tick: Instant::now(),
        recovering,
        // What a node starts as; the first Ready that differs reports it.
        soft: SoftState {
            role: Role::Follower,
            leader: None,
        },
        transfers: Vec::new(),
        hs_saved: hs,
        hs_latest: hs,
        hs_saved_at: Instant::now(),
        must_sync: false,
        last_ready: None,
        unacked_work: false,
        unreachable: Vec::new(),
        counters: Counters::default(),
        clients,
        bad_requests,
        auth_failures,
    };
    host.event_loop(rx)
}

impl Host {
    fn event_loop(&mut self, rx: mpsc::Receiver<Event>) -> Result<(), Fatal> {
        let mut next_sweep = Instant::now() + Duration::from_secs(1);
        let mut batch: Vec<(Bytes, mpsc::Sender<Reply>)> = Vec::new();
        let mut batch_bytes = 0;
        loop {
            let next_tick = self.last_tick + TICK;
            let now = Instant::now();
            let first = if now < next_tick {
                match rx.recv_timeout(next_tick - now) {
                    Ok(ev) => Some(ev),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
            } else {
                None
            };
            self.tick_to_now()?;
            let mut events = first
                .into_iter()
                .chain(std::iter::from_fn(|| rx.try_recv().ok()));
            let mut handled = 0;
            for ev in events.by_ref() {
                // Time first: the process may have stopped since the last
                // event, and this one may have arrived after the stall.
                self.tick_to_now()?;
                match ev {
                    Event::Peer(m) if self.net.is_removed(m.from) => {
                        self.counters.peer_msgs_from_removed += 1;
                    }
                    Event::Peer(m) => self.step(Input::Message(m))?,
                    Event::Unreachable(p) => self.step(Input::ReportUnreachable(p))?,
                    Event::PeerConn(from, s) => self.net.inbound(from, s),
                    Event::Client(Request::Read(q), reply)
                        if self.opts.read_mode != ReadMode::Log =>
                    {
                        self.read(q, reply)?;
                    }
                    Event::Client(Request::Read(q), reply) => {
                        let data = stamp(Command::Read(q));
                        batch_bytes += data.len();
                        batch.push((data, reply));
                    }
                    Event::Client(Request::Log(cmd), reply) => {
                        let data = stamp(cmd);
                        batch_bytes += data.len();
                        batch.push((data, reply));
                        if batch_bytes >= MAX_BATCH_BYTES {
                            self.propose(&mut batch)?;
                            batch_bytes = 0;
                        }
                    }
                    Event::Client(Request::Stale(q), reply) => {
                        let _ = reply.send(self.query(&q));
                    }
                    Event::Client(Request::Info, reply) => {
                        let _ = reply.send(Reply::Bulk(Some(self.info().into_bytes())));
                    }
                    Event::Client(Request::Transfer(to), reply) => self.transfer(to, reply)?,
                    Event::Client(Request::Admin(a), reply) => self.admin(a, reply)?,
                    Event::Client(Request::Members, reply) => {
                        let _ = reply.send(self.members());
                    }
                }
                handled += 1;
                if handled >= MAX_EVENTS_PER_ROUND {
                    break;
                }
            }
            drop(events);
            if !batch.is_empty() {
                self.propose(&mut batch)?;
                batch_bytes = 0;
            }
            let now = Instant::now();
            if now >= next_sweep {
                self.sweep_timeouts(now);
                next_sweep = now + Duration::from_secs(1);
            }
            self.check_promotions()?;
            self.sync_and_advance()?;
            if self.recovering && !self.node.is_recovering() {
                datadir::set_recovering(&self.opts.data_dir, self.opts.id, false)?;
                self.recovering = false;
                info!(
                    node = self.opts.id.get(),
                    "caught up after lost data; voting again"
                );
            }
        }
    }

    /// Delivers every whole tick that has passed since the last one, in one
    /// `Input::Ticks`. Called before anything else is stepped: after a stall
    /// (a stopped process, swapping, a slow disk) the node must learn how
    /// much time went by before it sees what arrived meanwhile, or a
    /// leader's lease would outlive the real time it was granted for.
    fn tick_to_now(&mut self) -> Result<(), Fatal> {
        let elapsed = self.last_tick.elapsed();
        if elapsed < TICK {
            return Ok(());
        }
        let n = u32::try_from(elapsed.as_nanos() / TICK.as_nanos()).unwrap_or(u32::MAX);
        // Keep the remainder, so ticks follow the clock and do not drift.
        self.last_tick += TICK * n;
        let input = if n == 1 { Input::Tick } else { Input::Ticks(n) };
        self.step(input)
    }

    fn step(&mut self, input: Input) -> Result<(), Fatal> {
        let ready = self
            .node
            .step(input)
            .map_err(|e| format!("node refused an input: {e}"))?;
        self.handle(ready)?;
        self.report_unreachable()
    }

    fn report_unreachable(&mut self) -> Result<(), Fatal> {
        while let Some(p) = self.unreachable.pop() {
            let ready = self
                .node
                .step(Input::ReportUnreachable(p))
                .map_err(|e| format!("node refused an input: {e}"))?;
            self.handle(ready)?;
        }
        Ok(())
    }

    /// Proposes every queued client command as one batch, or redirects them
    /// all if this node is not the leader.
    fn propose(&mut self, batch: &mut Vec<(Bytes, mpsc::Sender<Reply>)>) -> Result<(), Fatal> {
        self.tick_to_now()?;
        if self.soft.role != Role::Leader {
            let r = self.redirect(self.soft.leader);
            for (_, reply) in batch.drain(..) {
                self.counters.redirects += 1;
                let _ = reply.send(r.clone());
            }
            return Ok(());
        }
        let data: Vec<Bytes> = batch.iter().map(|(d, _)| d.clone()).collect();
        let n = data.len() as u64;
        match self.node.step(Input::ProposeBatch(data)) {
            Ok(ready) => {
                let now = Instant::now();
                if let Some(p) = ready.proposed() {
                    for (id, (_, reply)) in p.ids().zip(batch.drain(..)) {
                        self.waiting.insert(id, Waiter { reply, since: now });
                    }
                }
                self.counters.proposals += n;
                self.counters.batches += 1;
                // Anything the node did not number (it always numbers all of
                // them) would otherwise wait forever.
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Reply::err("ERR proposal not accepted"));
                }
                self.handle(ready)?;
                self.report_unreachable()
            }
            // The soft state already said who leads; this only guards
            // against a role the host has not been told of yet.
            Err(RaftError::NotLeader { leader }) => {
                let r = self.redirect(leader);
                for (_, reply) in batch.drain(..) {
                    self.counters.redirects += 1;
                    let _ = reply.send(r.clone());
                }
                Ok(())
            }
            Err(RaftError::Busy(b)) => {
                let r = Reply::err(format!("TRYAGAIN busy: {b}; nothing was written"));
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(r.clone());
                }
                Ok(())
            }
            Err(e) => Err(format!("node refused a proposal: {e}")),
        }
    }

    /// A linearizable read through `Input::ReadIndex`. A follower forwards
    /// the request to the leader and serves the read itself once confirmed.
    fn read(&mut self, key: Query, reply: mpsc::Sender<Reply>) -> Result<(), Fatal> {
        if self.soft.leader.is_none() {
            let _ = reply.send(self.redirect(None));
            return Ok(());
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        self.counters.reads += 1;
        match self.node.step(Input::ReadIndex(ctx)) {
            Ok(ready) => {
                let since = Instant::now();
                self.reads.insert(ctx, (key, Waiter { reply, since }));
                self.handle(ready)?;
                self.report_unreachable()
            }
            Err(RaftError::NotLeader { leader }) => {
                let _ = reply.send(self.redirect(leader));
                Ok(())
            }
            Err(RaftError::Busy(b)) => {
                let _ = reply.send(Reply::err(format!("TRYAGAIN busy: {b}")));
                Ok(())
            }
            Err(e) => Err(format!("node refused a read: {e}")),
        }
    }

    /// Starts handing leadership to `to`; the client is answered when
    /// `Ready::transfer_ended` reports how the transfer ended.
    fn transfer(&mut self, to: NodeId, reply: mpsc::Sender<Reply>) -> Result<(), Fatal> {
        if self.soft.role != Role::Leader {
            let _ = reply.send(self.redirect(self.soft.leader));
            return Ok(());
        }
        if to == self.opts.id {
            let _ = reply.send(Reply::ok());
            return Ok(());
        }
        if !self.node.conf_state().contains(to) {
            let _ = reply.send(Reply::err(format!("ERR node {to} is not a member")));
            return Ok(());
        }
        if self.transfers.iter().any(|(t, _)| *t != to) {
            let _ = reply.send(Reply::err(
                "TRYAGAIN another leadership transfer is in progress",
            ));
            return Ok(());
        }
        match self.node.step(Input::TransferLeader(to)) {
            Ok(ready) => {
                let since = Instant::now();
                self.transfers.push((to, Waiter { reply, since }));
                self.handle(ready)?;
                self.report_unreachable()
            }
            Err(RaftError::NotLeader { leader }) => {
                let _ = reply.send(self.redirect(leader));
                Ok(())
            }
            Err(e) => {
                let _ = reply.send(Reply::err(format!("ERR {e}")));
                Ok(())
            }
        }
    }

    /// `CLUSTER ADDLEARNER | PROMOTE | REMOVE` (leader only): proposes the
    /// change and answers once it commits. A promotion waits (up to
    /// [`PROMOTE_WAIT`]) until the learner has caught up.
    fn admin(&mut self, a: Admin, reply: mpsc::Sender<Reply>) -> Result<(), Fatal> {
        if self.soft.role != Role::Leader {
            let _ = reply.send(self.redirect(self.soft.leader));
            return Ok(());
        }
        let conf = self.node.conf_state();
        let change = match a {
            Admin::AddLearner(m) => {
                if conf.is_voter(m.id) {
                    // add_learner would demote it: not what this command is for.
                    let _ = reply.send(Reply::err(format!(
                        "ERR node {} is a voter; CLUSTER ADDLEARNER adds a node that is not",
                        m.id
                    )));
                    return Ok(());
                }
                MembershipChange::add_learner(m.id)
                    .with_context(Bytes::from(cluster::format_cluster(&[m])))
            }
            Admin::Promote(id) => {
                if !conf.contains(id) {
                    // add_voter would add it straight away, with no catching up.
                    let _ = reply.send(not_a_learner(id));
                    return Ok(());
                }
                if conf.is_learner(id) && self.lag(id).is_some() {
                    let since = Instant::now();
                    self.promotions.push((id, Waiter { reply, since }));
                    return Ok(());
                }
                MembershipChange::add_voter(id)
            }
            Admin::Remove(id) => MembershipChange::remove(id),
        };
        self.change_membership(change, reply)
    }

    /// Proposes `change`; the client is answered when its entry commits
    /// (`+OK`) or is lost, or at once if the node refuses it.
    fn change_membership(
        &mut self,
        change: MembershipChange,
        reply: mpsc::Sender<Reply>,
    ) -> Result<(), Fatal> {
        match self.node.step(Input::ChangeMembership(change)) {
            Ok(ready) => {
                if let Some(p) = ready.proposed() {
                    let since = Instant::now();
                    for id in p.ids() {
                        let reply = reply.clone();
                        self.waiting.insert(id, Waiter { reply, since });
                    }
                }
                self.handle(ready)?;
                self.report_unreachable()
            }
            Err(RaftError::NotLeader { leader }) => {
                let _ = reply.send(self.redirect(leader));
                Ok(())
            }
            // Refusals that pass by themselves: the client retries.
            Err(RaftError::Membership(
                e @ (MembershipError::ChangePending { .. } | MembershipError::TermNotCommitted),
            )) => {
                let _ = reply.send(Reply::err(format!("TRYAGAIN {e}")));
                Ok(())
            }
            Err(RaftError::Membership(e)) => {
                let _ = reply.send(Reply::err(format!("ERR {e}")));
                Ok(())
            }
            Err(RaftError::Busy(b)) => {
                let _ = reply.send(Reply::err(format!("TRYAGAIN busy: {b}")));
                Ok(())
            }
            Err(e) => {
                let _ = reply.send(Reply::err(format!("ERR {e}")));
                Ok(())
            }
        }
    }

    /// How far learner `id` is behind, while it is too far to promote:
    /// its match index and the commit index. `None` once it has caught up.
    fn lag(&self, id: NodeId) -> Option<(Index, Index)> {
        let commit = self.node.commit();
        let p = self.node.progress().find(|p| p.id == id);
        match p {
            Some(p)
                if p.state == ProgressState::Replicate
                    && p.match_index.get() + PROMOTE_MAX_LAG >= commit.get() =>
            {
                None
            }
            Some(p) => Some((p.match_index, commit)),
            None => Some((Index(0), commit)),
        }
    }

    /// Proposes the promotions whose learner has caught up; gives up on the
    /// ones that waited too long.
    fn check_promotions(&mut self) -> Result<(), Fatal> {
        if self.promotions.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        for (id, w) in std::mem::take(&mut self.promotions) {
            if self.soft.role != Role::Leader {
                let _ = w.reply.send(self.redirect(self.soft.leader));
            } else if !self.node.conf_state().is_learner(id) {
                // Removed, or promoted by another client, meanwhile.
                if self.node.conf_state().contains(id) {
                    self.change_membership(MembershipChange::add_voter(id), w.reply)?;
                } else {
                    let _ = w.reply.send(not_a_learner(id));
                }
            } else if let Some((matched, commit)) = self.lag(id) {
                if now.duration_since(w.since) < PROMOTE_WAIT {
                    self.promotions.push((id, w));
                } else {
                    let _ = w.reply.send(Reply::err(format!(
                        "TRYAGAIN node {id} has not caught up in {} s (its match index {matched}, \
                         the commit index {commit}); is it running? Retry once it has",
                        PROMOTE_WAIT.as_secs()
                    )));
                }
            } else {
                self.change_membership(MembershipChange::add_voter(id), w.reply)?;
            }
        }
        Ok(())
    }

    /// `CLUSTER MEMBERS`: one line per member of the configuration in force
    /// here, with its role and addresses; on the leader, with its progress.
    fn members(&self) -> Reply {
        let conf = self.node.conf_state();
        let leading = self.soft.role == Role::Leader;
        let lines = conf.members().map(|id| {
            let mut line = format!("id={id} role={}", role_in(conf, id));
            match self.book.get(&id) {
                Some(m) => line += &format!(" peer={} client={}", m.peer_addr, m.client_addr),
                None => line += " peer=? client=?",
            }
            if self.soft.leader == Some(id) {
                line += " leader=yes";
            }
            if leading && id == self.opts.id {
                line += &format!(" match={}", self.node.persisted());
            } else if let Some(p) = self.node.progress().find(|p| p.id == id) {
                let state = match p.state {
                    ProgressState::Probe => "probe".to_string(),
                    ProgressState::Replicate => "replicate".to_string(),
                    other => format!("{other:?}").to_ascii_lowercase(),
                };
                line += &format!(
                    " match={} next={} state={state}",
                    p.match_index, p.next_index
                );
            }
            Reply::Bulk(Some(line.into_bytes()))
        });
        Reply::Array(lines.collect())
    }

    /// A committed membership entry: learn the addresses it names, and cut
    /// off the nodes it removed once no configuration in force names them.
    fn apply_membership(&mut self, e: &Entry) {
        let Some(m) = membership_entry(e) else {
            self.counters.bad_entries += 1;
            return;
        };
        self.learn(&m);
        for c in m.change.iter().flat_map(|ch| &ch.changes) {
            match *c {
                ConfChange::RemoveNode(id) => {
                    self.removing.insert(id);
                }
                ConfChange::AddVoter(id) | ConfChange::AddLearner(id) => {
                    self.removing.remove(&id);
                }
                _ => {}
            }
        }
        let conf = self.node.conf_state().clone();
        let me = self.opts.id;
        for id in std::mem::take(&mut self.removing) {
            if conf.contains(id) {
                self.removing.insert(id);
            } else if id == me {
                warn!(
                    node = me.get(),
                    index = e.index.get(),
                    "this node was removed from the cluster: it takes no part any more; stop it"
                );
            } else {
                info!(
                    node = me.get(),
                    removed = id.get(),
                    index = e.index.get(),
                    "node removed"
                );
                self.net.remove_peer(id);
                self.book.remove(&id);
            }
        }
    }

    /// A membership entry reached the log (or committed): the addresses its
    /// context carries go into the book and the network.
    fn learn(&mut self, m: &MembershipEntry) {
        let before = self.book.clone();
        learn_addresses(&mut self.book, self.opts.id, m);
        for (id, member) in &self.book {
            if before.get(id) != Some(member) {
                info!(
                    node = self.opts.id.get(),
                    peer = id.get(),
                    peer_addr = %member.peer_addr,
                    client_addr = %member.client_addr,
                    "learnt a member's addresses from the log"
                );
                self.net.add_peer(*id, member.peer_addr);
            }
        }
    }

    /// The role or the leader changed. Writes this node accepted as leader
    /// keep waiting: they may still commit under the next leader, and
    /// `Ready::committed` or `Ready::lost` will say. Reads not yet confirmed
    /// are failed at once: a read has no effect, and its confirmation may
    /// have gone down with the old leader.
    fn on_soft_state(&mut self, ss: SoftState) {
        let leader_changed = ss.leader != self.soft.leader;
        self.soft = ss;
        if !leader_changed {
            return;
        }
        for (_, (_, w)) in self.reads.drain() {
            self.counters.reads_failed_on_leader_change += 1;
            let _ = w.reply.send(Reply::err(
                "TRYAGAIN the leader changed before the read was confirmed; retry",
            ));
        }
    }

    /// Answers the clients waiting for the transfer to `to` that just ended.
    fn on_transfer_ended(&mut self, to: NodeId, outcome: TransferOutcome) {
        let reply = match outcome {
            TransferOutcome::Succeeded => Reply::ok(),
            TransferOutcome::TimedOut => {
                Reply::err(format!("TRYAGAIN node {to} did not take over in time"))
            }
            TransferOutcome::Aborted => Reply::err("ERR the transfer was aborted"),
            TransferOutcome::LeadershipLost => {
                Reply::err("TRYAGAIN this node lost leadership before the transfer ended")
            }
            other => Reply::err(format!("ERR the transfer ended: {other:?}")),
        };
        self.transfers.retain(|(t, w)| {
            if *t == to {
                let _ = w.reply.send(reply.clone());
            }
            *t != to
        });
    }

    /// Answers a read from the local state machine. Expiry is judged by this
    /// node's wall clock, never before the replicated clock (`store.rs`).
    fn query(&self, q: &Query) -> Reply {
        self.store.query(q, self.store.read_clock(wall_clock_ms()))
    }

    /// Answers the confirmed reads the state machine has caught up with.
    fn serve_reads(&mut self) {
        while let Some(entry) = self.reads_to_serve.first_entry() {
            if *entry.key() > self.applied {
                break;
            }
            for (key, w) in entry.remove() {
                let _ = w.reply.send(self.query(&key));
            }
        }
    }

    /// The answer to a request that only the leader can serve. The format is
    /// Redis Cluster's, so `redis-cli -c` follows it to the leader.
    fn redirect(&self, leader: Option<NodeId>) -> Reply {
        match leader.and_then(|l| self.book.get(&l)) {
            Some(m) => Reply::err(format!("MOVED 0 {}", m.client_addr)),
            None => Reply::err("TRYAGAIN no leader known (election in progress); retry shortly"),
        }
    }

    /// Does what one Ready asks, except the fsync and the advance.
    fn handle(&mut self, mut ready: Ready) -> Result<(), Fatal> {
        if !ready.is_empty() {
            self.unacked_work = true;
        }
        self.last_ready = Some(ready.id());
        if !ready.entries().is_empty() {
            self.wal
                .append(ready.entries())
                .map_err(|e| format!("WAL append failed: {e}"))?;
            // Before the messages: the leader reaches a new learner with
            // the very append that adds it.
            for e in ready.entries() {
                if let Some(m) = membership_entry(e) {
                    self.learn(&m);
                }
            }
        }
        if let Some(c) = ready.conf_state() {
            info!(
                node = self.opts.id.get(),
                voters = ?ids(&c.voters),
                voters_outgoing = ?ids(&c.voters_outgoing),
                learners = ?ids(&c.learners),
                role = role_in(c, self.opts.id),
                "configuration in force"
            );
        }
        if let Some(hs) = ready.hard_state() {
            self.hs_latest = *hs;
        }
        self.must_sync |= ready.must_sync();
        if let Some(t) = ready.transfer_ended() {
            self.on_transfer_ended(t.to, t.outcome);
        }
        for m in ready.take_messages() {
            if let Some(p) = self.net.send(m)
                && !self.unreachable.contains(&p)
            {
                self.unreachable.push(p);
            }
        }
        for e in ready.committed() {
            self.applied = self.applied.max(e.index.get());
            let reply = match e.kind {
                EntryKind::Normal => match Logged::decode(&e.data) {
                    Some(cmd) => Some(self.store.apply(cmd)),
                    None => {
                        self.counters.bad_entries += 1;
                        Some(Reply::err("ERR undecodable log entry"))
                    }
                },
                EntryKind::Membership => {
                    self.apply_membership(e);
                    Some(Reply::ok())
                }
                _ => None,
            };
            if let Some(w) = self.waiting.remove(&e.id()) {
                let _ = w
                    .reply
                    .send(reply.unwrap_or_else(|| Reply::err("ERR not a command")));
            }
        }
        for rs in ready.read_states() {
            let Some((key, w)) = self.reads.remove(&rs.ctx) else {
                continue;
            };
            match rs.index {
                Some(i) => self
                    .reads_to_serve
                    .entry(i.get())
                    .or_default()
                    .push((key, w)),
                None => {
                    self.counters.reads_retry += 1;
                    let _ = w.reply.send(Reply::err(
                        "TRYAGAIN the read could not be confirmed (leadership changed); retry",
                    ));
                }
            }
        }
        // After the read states: a read confirmed in this same Ready stands.
        if let Some(ss) = ready.soft_state() {
            self.on_soft_state(ss);
        }
        self.serve_reads();
        for id in ready.lost() {
            if let Some(w) = self.waiting.remove(id) {
                self.counters.lost += 1;
                let _ = w.reply.send(Reply::err(
                    "TRYAGAIN the proposal was overwritten by a new leader and did not happen; retry",
                ));
            }
        }
        Ok(())
    }

    /// One fsync for everything handled since the last one, then `advance`.
    fn sync_and_advance(&mut self) -> Result<(), Fatal> {
        while self.unacked_work {
            // Ticks due by now go into the Ready this fsync covers.
            self.tick_to_now()?;
            let Some(last) = self.last_ready else { break };
            // must_sync covers two files: the WAL (a no-op unless it holds
            // appends) and the hard state, whose term or vote is what a
            // Ready that carried no entries asked to make durable.
            let vote_changed = self.hs_latest.term != self.hs_saved.term
                || self.hs_latest.vote != self.hs_saved.vote;
            if self.must_sync {
                let t0 = Instant::now();
                self.wal
                    .sync()
                    .map_err(|e| format!("WAL fsync failed: {e}"))?;
                slow_fsync("wal", t0.elapsed(), self.waiting.len());
            }
            if (self.must_sync && vote_changed)
                || (self.hs_latest != self.hs_saved
                    && self.hs_saved_at.elapsed() >= COMMIT_SAVE_INTERVAL)
            {
                let t0 = Instant::now();
                wal::save_hard_state(&self.opts.data_dir, &self.hs_latest)
                    .map_err(|e| format!("saving the hard state failed: {e}"))?;
                slow_fsync("hard_state", t0.elapsed(), self.waiting.len());
                self.hs_saved = self.hs_latest;
                self.hs_saved_at = Instant::now();
                self.counters.hard_state_saves += 1;
            }
            self.must_sync = false;
            self.unacked_work = false;
            let ready = self
                .node
                .advance(last)
                .map_err(|e| format!("advance refused: {e}"))?;
            self.handle(ready)?;
            self.report_unreachable()?;
        }
        Ok(())
    }

    fn sweep_timeouts(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for (id, w) in &self.waiting {
            if now.duration_since(w.since) >= REQUEST_TIMEOUT {
                expired.push(*id);
            }
        }
        for id in expired {
            if let Some(w) = self.waiting.remove(&id) {
                self.counters.timeouts += 1;
                let _ = w.reply.send(Reply::err(
                    "TIMEOUT no outcome yet (the write may still happen); check before retrying",
                ));
            }
        }
        // zaft ends every transfer within an election timeout; this only
        // guards against a waiter it was never told about.
        self.transfers.retain(|(_, w)| {
            let expired = now.duration_since(w.since) >= REQUEST_TIMEOUT;
            if expired {
                let _ = w
                    .reply
                    .send(Reply::err("TIMEOUT the transfer did not end in time"));
            }
            !expired
        });
        // A read has no effect: one that waits too long is simply refused.
        let stale: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, (_, w))| now.duration_since(w.since) >= REQUEST_TIMEOUT)
            .map(|(&ctx, _)| ctx)
            .collect();
        for ctx in stale {
            if let Some((_, w)) = self.reads.remove(&ctx) {
                self.counters.timeouts += 1;
                let _ = w.reply.send(Reply::err(
                    "TRYAGAIN the read was not confirmed in time; retry",
                ));
            }
        }
        // Confirmed reads whose index this node has not reached (it may be
        // cut off from the leader) give up the same way.
        for waiters in self.reads_to_serve.values_mut() {
            waiters.retain(|(_, w)| {
                let expired = now.duration_since(w.since) >= REQUEST_TIMEOUT;
                if expired {
                    let _ = w.reply.send(Reply::err(
                        "TRYAGAIN this node did not catch up with the read index in time; retry",
                    ));
                }
                !expired
            });
        }
        self.reads_to_serve.retain(|_, w| !w.is_empty());
    }

    fn info(&self) -> String {
        let s = self.node.status();
        let role = match self.soft.role {
            Role::Leader => "leader".to_string(),
            Role::Candidate => "candidate".to_string(),
            Role::Follower => "follower".to_string(),
            other => format!("{other:?}").to_ascii_lowercase(),
        };
        let addr_of = |id: NodeId| {
            self.book
                .get(&id)
                .map_or(String::new(), |m| m.client_addr.to_string())
        };
        let n = &self.net.stats;
        let ld = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counters;
        let mut out = String::new();
        let mut line = |k: &str, v: String| {
            out.push_str(k);
            out.push(':');
            out.push_str(&v);
            out.push_str("\r\n");
        };
        line("# Server", String::new());
        line("redis_version", commands::REDIS_VERSION.to_string());
        line("# Raft", String::new());
        line("node_id", s.id.to_string());
        line("role", role);
        line("term", s.term.to_string());
        line(
            "leader_id",
            self.soft.leader.map_or("none".into(), |l| l.to_string()),
        );
        line(
            "leader_addr",
            self.soft.leader.map_or(String::new(), addr_of),
        );
        line("commit_index", s.commit.to_string());
        line("applied_index", s.applied.to_string());
        line("last_log_index", s.last_log.index.to_string());
        line("persisted_index", s.persisted.to_string());
        line("recovering", u8::from(s.recovering).to_string());
        line("dropped_messages", s.dropped.total().to_string());
        line("# Membership", String::new());
        let list = |v: &[NodeId]| {
            v.iter()
                .map(NodeId::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        line("membership", role_in(&s.conf_state, s.id).to_string());
        line("voters", list(&s.conf_state.voters));
        line("voters_outgoing", list(&s.conf_state.voters_outgoing));
        line("learners", list(&s.conf_state.learners));
        line("promotions_pending", self.promotions.len().to_string());
        line("# Storage", String::new());
        line("wal_last_index", self.wal.last_index().to_string());
        line("wal_fsyncs", self.wal.syncs.to_string());
        line("hard_state_saves", c.hard_state_saves.to_string());
        line("keys", self.store.len().to_string());
        line("keys_with_ttl", self.store.volatile().to_string());
        line("# Clients", String::new());
        line(
            "connected_clients",
            self.clients.load(Ordering::Relaxed).to_string(),
        );
        line("pending_requests", self.waiting.len().to_string());
        line("proposals", c.proposals.to_string());
        line("proposal_batches", c.batches.to_string());
        line("redirects", c.redirects.to_string());
        line(
            "read_mode",
            format!("{:?}", self.opts.read_mode).to_ascii_lowercase(),
        );
        line("reads", c.reads.to_string());
        line("reads_refused", c.reads_retry.to_string());
        line(
            "reads_failed_on_leader_change",
            c.reads_failed_on_leader_change.to_string(),
        );
        line("transfers_pending", self.transfers.len().to_string());
        line(
            "reads_pending",
            (self.reads.len() + self.reads_to_serve.values().map(Vec::len).sum::<usize>())
                .to_string(),
        );
        line("lost_proposals", c.lost.to_string());
        line("timed_out_requests", c.timeouts.to_string());
        line("bad_requests", ld(&self.bad_requests).to_string());
        line("client_auth_failures", ld(&self.auth_failures).to_string());
        line(
            "requirepass",
            if self.opts.password.required() {
                "yes"
            } else {
                "no"
            }
            .to_string(),
        );
        line("bad_entries", c.bad_entries.to_string());
        line("# Network", String::new());
        line("peer_connects", ld(&n.connects).to_string());
        line("peer_frames_sent", ld(&n.frames_sent).to_string());
        line("peer_frames_received", ld(&n.frames_received).to_string());
        line("peer_queue_overflows", ld(&n.queue_overflows).to_string());
        line(
            "peer_dropped_disconnected",
            ld(&n.dropped_disconnected).to_string(),
        );
        line("peer_bad_frames", ld(&n.bad_frames).to_string());
        line("peer_bad_handshakes", ld(&n.bad_handshakes).to_string());
        line("peer_auth_failures", ld(&n.auth_failures).to_string());
        line("peer_dropped_no_link", ld(&n.dropped_no_link).to_string());
        line(
            "peer_dropped_removed",
            (ld(&n.dropped_removed) + c.peer_msgs_from_removed).to_string(),
        );
        line(
            "peer_auth",
            if self.opts.cluster_secret.is_some() {
                "cluster-secret"
            } else {
                "none"
            }
            .to_string(),
        );
        out
    }
}

/// The payload of a membership entry; `None` for any other entry (or one
/// that does not decode, which the node would have refused).
fn membership_entry(e: &Entry) -> Option<MembershipEntry> {
    if e.kind != EntryKind::Membership {
        return None;
    }
    MembershipEntry::decode(&e.data).ok()
}

/// Puts the addresses `m`'s context carries (`ID=PEER_ADDR/CLIENT_ADDR`,
/// as `--cluster` writes them) into `book`; this node's own stay as its
/// command line says.
fn learn_addresses(book: &mut BTreeMap<NodeId, Member>, me: NodeId, m: &MembershipEntry) {
    let Some(ch) = &m.change else { return };
    let Ok(text) = std::str::from_utf8(&ch.context) else {
        return;
    };
    for member in cluster::parse_cluster(text).unwrap_or_default() {
        if member.id != me {
            book.insert(member.id, member);
        }
    }
}

/// What `id` is in `conf`, as `CLUSTER MEMBERS` and `INFO` say it.
fn role_in(conf: &ConfState, id: NodeId) -> &'static str {
    if conf.voters.contains(&id) {
        "voter"
    } else if conf.voters_outgoing.contains(&id) {
        "outgoing"
    } else if conf.learners.contains(&id) {
        "learner"
    } else {
        "none"
    }
}

fn ids(v: &[NodeId]) -> Vec<u64> {
    v.iter().map(|id| id.get()).collect()
}

fn not_a_learner(id: NodeId) -> Reply {
    Reply::err(format!(
        "ERR node {id} is not a member; add it with CLUSTER ADDLEARNER first"
    ))
}

/// ms since the Unix epoch by this machine's clock.
fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A client command as the leader proposes it: stamped with its clock, by
/// which every replica judges expiry when it applies the entry.
fn stamp(cmd: Command) -> Bytes {
    Bytes::from(
        Logged {
            at_ms: Some(wall_clock_ms()),
            cmd,
        }
        .encode(),
    )
}

/// Logs an fsync (`what`: the WAL's, or the hard-state file's write, fsync,
/// rename and directory fsync) that took longer than [`SLOW_FSYNC`].
fn slow_fsync(what: &'static str, took: Duration, pending_writes: usize) {
    if took >= SLOW_FSYNC {
        warn!(
            file = what,
            duration_ms = took.as_secs_f64() * 1e3,
            pending_writes,
            "slow fsync"
        );
    }
}

fn client_accept_loop(
    listener: TcpListener,
    events: SyncSender<Event>,
    password: Password,
    clients: Arc<AtomicUsize>,
    bad: Arc<AtomicU64>,
    auth_failures: Arc<AtomicU64>,
) {
    let mut next_id = 0u64;
    for conn in listener.incoming() {
        let Ok(mut s) = conn else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let peer = s.peer_addr().map_or_else(|_| "?".into(), |a| a.to_string());
        if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::AcqRel);
            warn!(client = %peer, max = MAX_CLIENTS, "client refused: too many connections");
            let _ = s.write_all(b"-ERR max number of clients reached\r\n");
            continue;
        }
        next_id += 1;
        let session = Session {
            id: next_id,
            addr: peer.clone(),
            authed: !password.required(),
            password: password.clone(),
            ..Session::default()
        };
        debug!(client = %peer, id = next_id, "client connected");
        let (events, clients2, bad, auth_failures) = (
            events.clone(),
            clients.clone(),
            bad.clone(),
            auth_failures.clone(),
        );
        let spawned = thread::Builder::new().name("client".into()).spawn(move || {
            let why = serve_client(s, session, events, &bad, &auth_failures);
            let open = clients2.fetch_sub(1, Ordering::AcqRel) - 1;
            debug!(client = %peer, reason = why, open, "client disconnected");
        });
        if spawned.is_err() {
            clients.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Serves one client connection until it ends; returns why it ended.
fn serve_client(
    s: TcpStream,
    mut session: Session,
    events: SyncSender<Event>,
    bad: &AtomicU64,
    auth_failures: &AtomicU64,
) -> &'static str {
    let _ = s.set_nodelay(true);
    let Ok(w) = s.try_clone() else {
        return "socket error";
    };
    let mut r = BufReader::with_capacity(64 << 10, s);
    let mut w = BufWriter::with_capacity(64 << 10, w);
    let (tx, rx) = mpsc::channel();
    let mut out = Vec::new();
    loop {
        let args = match resp::read_command(&mut r) {
            Ok(Some(a)) => a,
            Ok(None) => return "closed by the client",
            Err(RespError::Io(_)) => return "read error",
            Err(e @ RespError::Protocol(_)) => {
                bad.fetch_add(1, Ordering::Relaxed);
                out.clear();
                Reply::err(format!("ERR {e}")).write_to(&mut out);
                let _ = w.write_all(&out);
                let _ = w.flush();
                return "protocol error";
            }
        };
        let reply = match commands::parse(&args, &mut session) {
            Parsed::Local(reply) => reply,
            Parsed::Quit => {
                let _ = w.write_all(b"+OK\r\n");
                let _ = w.flush();
                return "QUIT";
            }
            Parsed::Bad(reply) => {
                bad.fetch_add(1, Ordering::Relaxed);
                reply
            }
            Parsed::AuthFailed(reply) => {
                auth_failures.fetch_add(1, Ordering::Relaxed);
                warn!(client = %session.addr, "client AUTH failed: wrong password");
                reply
            }
            Parsed::Loop(req) => {
                if events.send(Event::Client(req, tx.clone())).is_err() {
                    return "server stopping";
                }
                match rx.recv() {
                    Ok(r) => r,
                    Err(_) => return "server stopping",
                }
            }
        };
        out.clear();
        reply.write_to(&mut out);
        // Flush once the pipelined commands already received are answered.
        if w.write_all(&out).is_err() || (r.buffer().is_empty() && w.flush().is_err()) {
            return "write error";
        }
    }
}
