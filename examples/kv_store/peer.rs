//! The peer network: one TCP connection per pair of nodes, carrying
//! length-prefixed postcard frames (`len: u32 LE | zaft::Codec bytes`) both
//! ways.
//!
//! The node with the lower id dials; the other accepts. Each peer has a writer
//! thread that owns the connection and a bounded queue the event loop feeds
//! without ever blocking: when the queue is full the message is dropped,
//! counted, and the node is told the peer is unreachable (Raft resends what
//! matters). A reader thread per connection decodes frames and passes them to
//! the event loop. A frame that is too large or does not decode closes the
//! connection and is counted; it never reaches the node.
//!
//! The set of peers changes at run time, and the event loop alone owns it:
//! it adds a peer when it learns the peer's address (from `--cluster` or a
//! membership entry's context) and removes one a committed configuration
//! removed. An accepted connection whose handshake checks out is handed to
//! the event loop ([`Event::PeerConn`]), which gives it to that peer's
//! writer, creating the link if the peer is new to it (a node that joins
//! hears first from members it has never been told of), or shuts it if the
//! peer was removed: messages to and from a removed node stop.
//!
//! With a cluster secret, a link starts with the challenge-response
//! handshake of `auth.rs`, and the accepting side hands a connection to its
//! writer (replacing the link it had) only once the dialer has proved it
//! holds the secret. The handshake authenticates the start of a link, not
//! each frame: it keeps out peers without the secret, not an attacker who
//! can take over an established TCP connection (use a VPN or TLS tunnel on
//! a network where that is a risk).

use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread;
use std::time::Duration;

use tracing::{debug, info, warn};
use zaft::{Codec, Message, NodeId};

use crate::auth::{self, ClusterSecret, Direction, MAC_BYTES, NONCE_BYTES};
use crate::server::Event;

/// The largest frame accepted or sent.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// Messages queued for one peer before new ones are dropped.
pub const PEER_QUEUE_MSGS: usize = 4096;
/// Bytes written to a socket per flush at most.
const WRITE_BATCH_BYTES: usize = 1 << 20;
/// The hello of a link without a cluster secret.
const HELLO_MAGIC: &[u8; 8] = b"ZKVPEER1";
/// The hello of an authenticated link: a nonce follows the ids.
const AUTH_HELLO_MAGIC: &[u8; 8] = b"ZKVPEER2";
/// How long a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(1000);
/// Connections still in their handshake, at most.
const MAX_HANDSHAKES: usize = 16;
/// Peers with a link at once, at most: inbound connections from nodes this
/// one was never told of create links too, and must not exhaust threads.
const MAX_PEERS: usize = 64;

/// Counters shown by INFO.
#[derive(Default)]
pub struct NetStats {
    pub queue_overflows: AtomicU64,
    pub dropped_disconnected: AtomicU64,
    pub bad_frames: AtomicU64,
    pub bad_handshakes: AtomicU64,
    /// Handshakes that failed the cluster secret's challenge (either side),
    /// or that skipped it.
    pub auth_failures: AtomicU64,
    pub connects: AtomicU64,
    pub frames_sent: AtomicU64,
    pub frames_received: AtomicU64,
    /// Messages for a peer with no link (its address not known yet).
    pub dropped_no_link: AtomicU64,
    /// Connections and messages from removed nodes, dropped.
    pub dropped_removed: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Link {
    queue: SyncSender<Message>,
    /// For the accepting side: new inbound connections for the writer.
    conns: SyncSender<TcpStream>,
    /// The address the writer dials; `None` on the accepting side.
    dial_to: Option<SocketAddr>,
}

/// The event loop's handle on the network: the one owner of the set of
/// peers.
pub struct PeerNet {
    me: NodeId,
    links: HashMap<NodeId, Link>,
    /// Nodes a committed configuration removed: no link, and their
    /// connections are refused, until a configuration adds them again.
    removed: HashSet<NodeId>,
    events: SyncSender<Event>,
    secret: Option<Arc<ClusterSecret>>,
    codec: Codec,
    pub stats: Arc<NetStats>,
}

impl PeerNet {
    /// Starts the listener; peers come with [`PeerNet::add_peer`] and
    /// inbound connections.
    pub fn start(
        me: NodeId,
        listener: TcpListener,
        secret: Option<ClusterSecret>,
        events: SyncSender<Event>,
    ) -> PeerNet {
        let secret = secret.map(Arc::new);
        let stats = Arc::new(NetStats::default());
        let codec = Codec::new(MAX_FRAME_BYTES);
        let (st, ev, sec) = (stats.clone(), events.clone(), secret.clone());
        thread::Builder::new()
            .name("peer-listener".into())
            .spawn(move || accept_loop(me, listener, sec, ev, st, codec))
            .expect("spawn peer listener");
        PeerNet {
            me,
            links: HashMap::new(),
            removed: HashSet::new(),
            events,
            secret,
            codec,
            stats,
        }
    }

    /// Makes sure there is a link to `id`: this node dials a peer with a
    /// higher id, at `addr` (a new address replaces the link); a peer with
    /// a lower id dials this node. Adding a removed node takes it back.
    pub fn add_peer(&mut self, id: NodeId, addr: SocketAddr) {
        if id == self.me {
            return;
        }
        self.removed.remove(&id);
        let dial_to = (self.me < id).then_some(addr);
        if self.links.get(&id).is_some_and(|l| l.dial_to == dial_to) {
            return;
        }
        // Dropping the old link's queue ends its writer.
        self.links.remove(&id);
        self.spawn_link(id, dial_to);
    }

    /// A committed configuration removed `id`: its link goes (the writer
    /// ends and closes the connection), and its connections are refused.
    pub fn remove_peer(&mut self, id: NodeId) {
        if id == self.me {
            return;
        }
        self.links.remove(&id);
        self.removed.insert(id);
    }

    pub fn is_removed(&self, id: NodeId) -> bool {
        self.removed.contains(&id)
    }

    /// An inbound connection from `from` (a lower id) whose handshake
    /// checked out: its writer takes it, on a link created now if `from`
    /// is new to this node.
    pub fn inbound(&mut self, from: NodeId, stream: TcpStream) {
        if self.removed.contains(&from) {
            bump(&self.stats.dropped_removed);
            debug!(peer = from.get(), "connection from a removed node refused");
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        if !self.links.contains_key(&from) {
            if self.links.len() >= MAX_PEERS {
                bump(&self.stats.bad_handshakes);
                warn!(
                    peer = from.get(),
                    max = MAX_PEERS,
                    "peer connection refused: too many peers"
                );
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            info!(
                peer = from.get(),
                "a node this one was not told of connected"
            );
            self.spawn_link(from, None);
        }
        let link = &self.links[&from];
        if let Err(e) = link.conns.try_send(stream) {
            let (TrySendError::Full(s) | TrySendError::Disconnected(s)) = e;
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn spawn_link(&mut self, id: NodeId, dial_to: Option<SocketAddr>) {
        let (queue, rx) = mpsc::sync_channel(PEER_QUEUE_MSGS);
        let (conns, conn_rx) = mpsc::sync_channel(4);
        let w = Writer {
            me: self.me,
            peer: id,
            dial_to,
            rx,
            conn_rx,
            events: self.events.clone(),
            stats: self.stats.clone(),
            codec: self.codec,
            secret: self.secret.clone(),
        };
        thread::Builder::new()
            .name(format!("peer-writer-{id}"))
            .spawn(move || w.run())
            .expect("spawn peer writer");
        self.links.insert(
            id,
            Link {
                queue,
                conns,
                dial_to,
            },
        );
    }

    /// Queues `m` for its recipient without blocking. Returns the peer to
    /// report unreachable if its queue overflowed or it has no link.
    pub fn send(&self, m: Message) -> Option<NodeId> {
        let to = m.to;
        let Some(link) = self.links.get(&to) else {
            bump(&self.stats.dropped_no_link);
            return Some(to);
        };
        match link.queue.try_send(m) {
            Ok(()) => None,
            Err(TrySendError::Full(_)) => {
                bump(&self.stats.queue_overflows);
                Some(to)
            }
            Err(TrySendError::Disconnected(_)) => {
                bump(&self.stats.dropped_disconnected);
                None
            }
        }
    }
}

fn hello(me: NodeId, to: NodeId) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(HELLO_MAGIC);
    b[8..16].copy_from_slice(&me.get().to_le_bytes());
    b[16..].copy_from_slice(&to.get().to_le_bytes());
    b
}

struct Writer {
    me: NodeId,
    peer: NodeId,
    /// The address to dial; `None` on the accepting side.
    dial_to: Option<SocketAddr>,
    rx: Receiver<Message>,
    conn_rx: Receiver<TcpStream>,
    events: SyncSender<Event>,
    stats: Arc<NetStats>,
    codec: Codec,
    secret: Option<Arc<ClusterSecret>>,
}

enum Pumped {
    /// The connection failed: get another.
    Broken,
    /// The accepting side got a newer connection from the peer.
    Replaced(TcpStream),
    /// The event loop is gone.
    Shutdown,
}

impl Writer {
    fn run(self) {
        let mut backoff = BACKOFF_MIN;
        let mut next: Option<TcpStream> = None;
        loop {
            let stream = match next.take() {
                Some(s) => s,
                None if self.dial_to.is_some() => match self.dial() {
                    Ok(s) => s,
                    Err(()) => {
                        if !self.discard_for(backoff) {
                            return;
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                },
                None => match self.conn_rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(s) => s,
                    Err(RecvTimeoutError::Timeout) => {
                        if !self.discard_for(Duration::ZERO) {
                            return;
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            };
            backoff = BACKOFF_MIN;
            bump(&self.stats.connects);
            let remote = stream
                .peer_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string());
            info!(
                peer = self.peer.get(),
                addr = %remote,
                dialed = self.dial_to.is_some(),
                "peer link up"
            );
            match self.pump(&stream) {
                Pumped::Broken => {
                    info!(peer = self.peer.get(), addr = %remote, "peer link down");
                    let _ = stream.shutdown(Shutdown::Both);
                    let _ = self.events.try_send(Event::Unreachable(self.peer));
                }
                Pumped::Replaced(s) => {
                    info!(
                        peer = self.peer.get(),
                        addr = %remote,
                        "peer link replaced by a newer connection from the peer"
                    );
                    let _ = stream.shutdown(Shutdown::Both);
                    next = Some(s);
                }
                Pumped::Shutdown => {
                    // The link is gone (the peer was removed, or the loop
                    // ended): the reader must stop too.
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }

    fn dial(&self) -> Result<TcpStream, ()> {
        let addr = self.dial_to.ok_or(())?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            .map_err(|e| debug!(peer = self.peer.get(), %addr, error = %e, "dial failed"))?;
        let _ = s.set_nodelay(true);
        match &self.secret {
            None => s.write_all(&hello(self.me, self.peer)).map_err(|_| ())?,
            Some(k) => self.authenticate(&mut s, k)?,
        }
        let r = s.try_clone().map_err(|_| ())?;
        let (events, stats, codec, peer) = (
            self.events.clone(),
            self.stats.clone(),
            self.codec,
            self.peer,
        );
        thread::Builder::new()
            .name(format!("peer-reader-{peer}"))
            .spawn(move || read_loop(r, peer, events, stats, codec))
            .map_err(|_| ())?;
        Ok(s)
    }

    /// The dialer's side of the handshake: its hello and nonce, the
    /// acceptor's answer checked, its own answer.
    fn authenticate(&self, s: &mut TcpStream, k: &ClusterSecret) -> Result<(), ()> {
        let n_d = auth::nonce().map_err(|_| ())?;
        let mut hello = [0u8; 24 + NONCE_BYTES];
        hello[..8].copy_from_slice(AUTH_HELLO_MAGIC);
        hello[8..16].copy_from_slice(&self.me.get().to_le_bytes());
        hello[16..24].copy_from_slice(&self.peer.get().to_le_bytes());
        hello[24..].copy_from_slice(&n_d);
        s.write_all(&hello).map_err(|_| ())?;
        s.set_read_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(|_| ())?;
        let mut reply = [0u8; NONCE_BYTES + MAC_BYTES];
        s.read_exact(&mut reply).map_err(|e| {
            debug!(peer = self.peer.get(), error = %e, "no answer to the cluster-secret challenge");
        })?;
        s.set_read_timeout(None).map_err(|_| ())?;
        let (n_a, mac_a) = reply.split_at(NONCE_BYTES);
        if !k.check(Direction::AcceptorToDialer, &n_d, self.me, self.peer, mac_a) {
            bump(&self.stats.auth_failures);
            warn!(
                peer = self.peer.get(),
                addr = ?self.dial_to,
                "peer authentication failed: the node at this address does not hold the \
                 cluster secret"
            );
            return Err(());
        }
        let mac_d = k.answer(Direction::DialerToAcceptor, n_a, self.me, self.peer);
        s.write_all(&mac_d).map_err(|_| ())
    }

    /// Drops what is queued while there is no connection (Raft resends), for
    /// at least `wait`. False once the event loop is gone.
    fn discard_for(&self, wait: Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        let mut dropped = false;
        loop {
            match self.rx.try_recv() {
                Ok(_) => {
                    bump(&self.stats.dropped_disconnected);
                    dropped = true;
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
        if dropped {
            let _ = self.events.try_send(Event::Unreachable(self.peer));
        }
        true
    }

    fn pump(&self, stream: &TcpStream) -> Pumped {
        let Ok(clone) = stream.try_clone() else {
            return Pumped::Broken;
        };
        let mut w = BufWriter::with_capacity(64 << 10, clone);
        let mut frame = Vec::new();
        loop {
            if self.dial_to.is_none()
                && let Ok(s) = self.conn_rx.try_recv()
            {
                return Pumped::Replaced(s);
            }
            let first = match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Pumped::Shutdown,
            };
            let mut batch_bytes = 0;
            let mut m = Some(first);
            while let Some(msg) = m.take() {
                frame.clear();
                frame.extend_from_slice(&[0; 4]);
                if self.codec.encode_into(&msg, &mut frame).is_err() {
                    // Too large for the wire; Raft will resend in smaller pieces
                    // only if configured so: count it as a drop.
                    bump(&self.stats.bad_frames);
                } else {
                    let len = (frame.len() - 4) as u32;
                    frame[..4].copy_from_slice(&len.to_le_bytes());
                    if w.write_all(&frame).is_err() {
                        return Pumped::Broken;
                    }
                    bump(&self.stats.frames_sent);
                    batch_bytes += frame.len();
                }
                if batch_bytes < WRITE_BATCH_BYTES {
                    m = self.rx.try_recv().ok();
                }
            }
            if w.flush().is_err() {
                return Pumped::Broken;
            }
        }
    }
}

fn accept_loop(
    me: NodeId,
    listener: TcpListener,
    secret: Option<Arc<ClusterSecret>>,
    events: SyncSender<Event>,
    stats: Arc<NetStats>,
    codec: Codec,
) {
    let handshakes = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(mut s) = conn else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let remote = s.peer_addr().map_or_else(|_| "?".into(), |a| a.to_string());
        if handshakes.fetch_add(1, Ordering::AcqRel) >= MAX_HANDSHAKES {
            handshakes.fetch_sub(1, Ordering::AcqRel);
            bump(&stats.bad_handshakes);
            warn!(addr = %remote, "peer connection refused: too many handshakes in progress");
            continue;
        }
        let (events, stats, hs, secret) = (
            events.clone(),
            stats.clone(),
            handshakes.clone(),
            secret.clone(),
        );
        let spawned = thread::Builder::new()
            .name("peer-inbound".into())
            .spawn(move || {
                let peer = handshake(me, &mut s, secret.as_deref());
                hs.fetch_sub(1, Ordering::AcqRel);
                let peer = match peer {
                    Ok(p) => p,
                    Err(Refused::Malformed(why)) => {
                        bump(&stats.bad_handshakes);
                        warn!(addr = %remote, why, "peer connection refused: bad handshake");
                        return;
                    }
                    Err(Refused::Auth(why)) => {
                        bump(&stats.bad_handshakes);
                        bump(&stats.auth_failures);
                        warn!(addr = %remote, why, "peer connection refused: authentication failed");
                        return;
                    }
                };
                let Ok(w) = s.try_clone() else { return };
                // The event loop decides whether the link stands; if not,
                // it shuts the connection and this reader ends.
                if events.send(Event::PeerConn(peer, w)).is_err() {
                    return;
                }
                read_loop(s, peer, events, stats, codec);
            });
        if spawned.is_err() {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Why an inbound peer connection was refused.
enum Refused {
    /// Not a hello this node understands, or ids that do not fit.
    Malformed(&'static str),
    /// The cluster secret's challenge failed, or was skipped.
    Auth(&'static str),
}

/// Reads and checks the dialer's hello: a peer with a lower id, talking to
/// this node; with a cluster secret, one that proves it holds it. Whether
/// that peer may have a link is the event loop's to say
/// ([`PeerNet::inbound`]): it may be a member this node has not learnt of.
fn handshake(
    me: NodeId,
    s: &mut TcpStream,
    secret: Option<&ClusterSecret>,
) -> Result<NodeId, Refused> {
    use Refused::{Auth, Malformed};
    let io = |_| Malformed("read or write failed");
    s.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io)?;
    let mut b = [0u8; 24];
    s.read_exact(&mut b).map_err(io)?;
    let from = NodeId(u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")));
    let to = NodeId(u64::from_le_bytes(b[16..].try_into().expect("8 bytes")));
    let magic = &b[..8];
    match secret {
        None if magic == HELLO_MAGIC => {}
        None if magic == AUTH_HELLO_MAGIC => {
            return Err(Malformed(
                "the peer uses a cluster secret and this node has none",
            ));
        }
        Some(_) if magic == HELLO_MAGIC => {
            return Err(Auth(
                "an unauthenticated hello, and this node requires the cluster secret",
            ));
        }
        Some(_) if magic == AUTH_HELLO_MAGIC => {}
        _ => return Err(Malformed("not a kv_store peer hello")),
    }
    if to != me || from >= me {
        return Err(Malformed("the hello names the wrong pair of nodes"));
    }
    if let Some(k) = secret {
        let mut n_d = [0u8; NONCE_BYTES];
        s.read_exact(&mut n_d).map_err(io)?;
        let n_a = auth::nonce().map_err(io)?;
        let mut reply = [0u8; NONCE_BYTES + MAC_BYTES];
        reply[..NONCE_BYTES].copy_from_slice(&n_a);
        reply[NONCE_BYTES..].copy_from_slice(&k.answer(
            Direction::AcceptorToDialer,
            &n_d,
            from,
            me,
        ));
        s.write_all(&reply).map_err(io)?;
        let mut mac_d = [0u8; MAC_BYTES];
        s.read_exact(&mut mac_d)
            .map_err(|_| Auth("no answer to this node's challenge"))?;
        if !k.check(Direction::DialerToAcceptor, &n_a, from, me, &mac_d) {
            return Err(Auth("a wrong answer to this node's challenge"));
        }
    }
    s.set_read_timeout(None).map_err(io)?;
    let _ = s.set_nodelay(true);
    Ok(from)
}

fn read_loop(
    s: TcpStream,
    peer: NodeId,
    events: SyncSender<Event>,
    stats: Arc<NetStats>,
    codec: Codec,
) {
    let Ok(rs) = s.try_clone() else { return };
    let mut r = std::io::BufReader::with_capacity(64 << 10, rs);
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if r.read_exact(&mut len).is_err() {
            break;
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME_BYTES {
            bump(&stats.bad_frames);
            warn!(
                peer = peer.get(),
                len, "peer frame too large: closing the link"
            );
            break;
        }
        buf.resize(len, 0);
        if r.read_exact(&mut buf).is_err() {
            break;
        }
        let m = match codec.decode(&buf) {
            Ok(m) if m.from == peer => m,
            Ok(m) => {
                bump(&stats.bad_frames);
                warn!(
                    peer = peer.get(),
                    from = m.from.get(),
                    "peer frame from another node: closing the link"
                );
                break;
            }
            Err(e) => {
                bump(&stats.bad_frames);
                warn!(peer = peer.get(), error = %e, "undecodable peer frame: closing the link");
                break;
            }
        };
        bump(&stats.frames_received);
        if events.send(Event::Peer(m)).is_err() {
            break;
        }
    }
    // Wake the writer so it reconnects instead of writing into a dead socket.
    let _ = s.shutdown(Shutdown::Both);
}
