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

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread;
use std::time::Duration;

use tracing::{debug, info, warn};
use zaft::{Codec, Message, NodeId};

use crate::server::Event;

/// The largest frame accepted or sent.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// Messages queued for one peer before new ones are dropped.
pub const PEER_QUEUE_MSGS: usize = 4096;
/// Bytes written to a socket per flush at most.
const WRITE_BATCH_BYTES: usize = 1 << 20;
const HELLO_MAGIC: &[u8; 8] = b"ZKVPEER1";
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(1000);
/// Connections still in their handshake, at most.
const MAX_HANDSHAKES: usize = 16;

/// Counters shown by INFO.
#[derive(Default)]
pub struct NetStats {
    pub queue_overflows: AtomicU64,
    pub dropped_disconnected: AtomicU64,
    pub bad_frames: AtomicU64,
    pub bad_handshakes: AtomicU64,
    pub connects: AtomicU64,
    pub frames_sent: AtomicU64,
    pub frames_received: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Link {
    queue: SyncSender<Message>,
    /// For the accepting side: new inbound connections for the writer.
    conns: SyncSender<TcpStream>,
}

/// The event loop's handle on the network.
pub struct PeerNet {
    links: HashMap<NodeId, Link>,
    pub stats: Arc<NetStats>,
}

impl PeerNet {
    /// Starts the writer threads and the listener.
    pub fn start(
        me: NodeId,
        listener: TcpListener,
        peers: &[(NodeId, SocketAddr)],
        events: SyncSender<Event>,
    ) -> PeerNet {
        let stats = Arc::new(NetStats::default());
        let codec = Codec::new(MAX_FRAME_BYTES);
        let mut links = HashMap::new();
        for &(id, addr) in peers {
            let (queue, rx) = mpsc::sync_channel(PEER_QUEUE_MSGS);
            let (conns, conn_rx) = mpsc::sync_channel(4);
            let w = Writer {
                me,
                peer: id,
                addr,
                dialer: me < id,
                rx,
                conn_rx,
                events: events.clone(),
                stats: stats.clone(),
                codec,
            };
            thread::Builder::new()
                .name(format!("peer-writer-{id}"))
                .spawn(move || w.run())
                .expect("spawn peer writer");
            links.insert(id, Link { queue, conns });
        }
        let accept_links: HashMap<NodeId, SyncSender<TcpStream>> =
            links.iter().map(|(&id, l)| (id, l.conns.clone())).collect();
        let st = stats.clone();
        thread::Builder::new()
            .name("peer-listener".into())
            .spawn(move || accept_loop(me, listener, accept_links, events, st, codec))
            .expect("spawn peer listener");
        PeerNet { links, stats }
    }

    /// Queues `m` for its recipient without blocking. Returns the peer to
    /// report unreachable if its queue overflowed.
    pub fn send(&self, m: Message) -> Option<NodeId> {
        let to = m.to;
        let link = self.links.get(&to)?;
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
    addr: SocketAddr,
    dialer: bool,
    rx: Receiver<Message>,
    conn_rx: Receiver<TcpStream>,
    events: SyncSender<Event>,
    stats: Arc<NetStats>,
    codec: Codec,
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
                None if self.dialer => match self.dial() {
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
                dialed = self.dialer,
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
                Pumped::Shutdown => return,
            }
        }
    }

    fn dial(&self) -> Result<TcpStream, ()> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).map_err(
            |e| debug!(peer = self.peer.get(), addr = %self.addr, error = %e, "dial failed"),
        )?;
        let _ = s.set_nodelay(true);
        s.write_all(&hello(self.me, self.peer)).map_err(|_| ())?;
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
            if !self.dialer
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
    links: HashMap<NodeId, SyncSender<TcpStream>>,
    events: SyncSender<Event>,
    stats: Arc<NetStats>,
    codec: Codec,
) {
    let handshakes = Arc::new(AtomicUsize::new(0));
    let links = Arc::new(links);
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
        let (links, events, stats, hs) = (
            links.clone(),
            events.clone(),
            stats.clone(),
            handshakes.clone(),
        );
        let spawned = thread::Builder::new()
            .name("peer-inbound".into())
            .spawn(move || {
                let peer = handshake(me, &mut s, &links);
                hs.fetch_sub(1, Ordering::AcqRel);
                let Some((peer, link)) = peer else {
                    bump(&stats.bad_handshakes);
                    warn!(addr = %remote, "peer connection refused: bad handshake");
                    return;
                };
                let Ok(w) = s.try_clone() else { return };
                if link.try_send(w).is_err() {
                    return;
                }
                read_loop(s, peer, events, stats, codec);
            });
        if spawned.is_err() {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Reads and checks the dialer's hello: a known peer with a lower id, talking
/// to this node.
fn handshake(
    me: NodeId,
    s: &mut TcpStream,
    links: &HashMap<NodeId, SyncSender<TcpStream>>,
) -> Option<(NodeId, SyncSender<TcpStream>)> {
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut b = [0u8; 24];
    s.read_exact(&mut b).ok()?;
    s.set_read_timeout(None).ok()?;
    if &b[..8] != HELLO_MAGIC {
        return None;
    }
    let from = NodeId(u64::from_le_bytes(b[8..16].try_into().ok()?));
    let to = NodeId(u64::from_le_bytes(b[16..].try_into().ok()?));
    if to != me || from >= me {
        return None;
    }
    let _ = s.set_nodelay(true);
    Some((from, links.get(&from)?.clone()))
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
