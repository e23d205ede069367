//! A small RESP client that follows `-MOVED` to the leader, for the demo and
//! the load generator.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::resp::{self, Reply};

pub struct Client {
    /// The nodes' client addresses; `MOVED` may point at any of them, or at
    /// one that joined since.
    addrs: Vec<SocketAddr>,
    current: usize,
    conn: Option<(BufReader<TcpStream>, TcpStream)>,
    buf: Vec<u8>,
    pub timeout: Duration,
}

/// How a call ended when it did not get a reply it could use.
#[derive(Debug)]
pub enum CallError {
    /// No reply: the command may or may not have taken effect.
    Unknown(String),
    /// The cluster said no (for writes: it did not happen).
    Refused(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unknown(s) => write!(f, "outcome unknown: {s}"),
            CallError::Refused(s) => write!(f, "refused: {s}"),
        }
    }
}

impl Client {
    pub fn new(addrs: Vec<SocketAddr>) -> Client {
        Client {
            addrs,
            current: 0,
            conn: None,
            buf: Vec::new(),
            timeout: Duration::from_secs(15),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[self.current]
    }

    /// Sends one command to the current node and reads its reply.
    pub fn call_once(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        self.connect()?;
        let (r, w) = self.conn.as_mut().expect("connected");
        self.buf.clear();
        resp::encode_command(args, &mut self.buf);
        let res = w.write_all(&self.buf).and_then(|_| {
            resp::read_reply(r).map_err(|e| match e {
                resp::RespError::Io(e) => e,
                other => io::Error::other(other.to_string()),
            })
        });
        if res.is_err() {
            self.conn = None;
        }
        res
    }

    fn connect(&mut self) -> io::Result<()> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(self.timeout))?;
            self.conn = Some((BufReader::new(s.try_clone()?), s));
        }
        Ok(())
    }

    /// Moves to `addr` (a leader that joined after this client was made is
    /// new to it: remember it), or to the next node.
    fn switch_to(&mut self, addr: Option<SocketAddr>) {
        self.conn = None;
        self.current = match addr {
            Some(a) => self.addrs.iter().position(|&x| x == a).unwrap_or_else(|| {
                self.addrs.push(a);
                self.addrs.len() - 1
            }),
            None => (self.current + 1) % self.addrs.len(),
        };
    }

    /// Calls until a node answers for the cluster: follows `MOVED`, waits out
    /// elections (`TRYAGAIN` before the command was accepted), and moves on
    /// from nodes that are down. A lost connection after sending is an
    /// unknown outcome: with `retry_unknown` the command is sent again (fine
    /// for SET and GET, not for INCR).
    pub fn call(&mut self, args: &[&[u8]], retry_unknown: bool) -> Result<Reply, CallError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if Instant::now() > deadline {
                return Err(CallError::Unknown(
                    "gave up: no answer from the cluster".into(),
                ));
            }
            if self.connect().is_err() {
                // Nothing was sent: try the next node.
                std::thread::sleep(Duration::from_millis(20));
                self.switch_to(None);
                continue;
            }
            match self.call_once(args) {
                Ok(Reply::Error(e)) if e.starts_with("MOVED ") => {
                    let addr = e.rsplit(' ').next().and_then(|a| a.parse().ok());
                    self.switch_to(addr);
                }
                Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN no leader") => {
                    std::thread::sleep(Duration::from_millis(50));
                    self.switch_to(None);
                }
                Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN") && retry_unknown => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN") => {
                    return Err(CallError::Refused(e));
                }
                Ok(Reply::Error(e)) if e.starts_with("TIMEOUT") && !retry_unknown => {
                    return Err(CallError::Unknown(e));
                }
                Ok(Reply::Error(e)) if e.starts_with("TIMEOUT") => {}
                Ok(r) => return Ok(r),
                Err(e) => {
                    // The command was sent: it may have been applied.
                    if !retry_unknown {
                        return Err(CallError::Unknown(e.to_string()));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    self.switch_to(None);
                }
            }
        }
    }
}
