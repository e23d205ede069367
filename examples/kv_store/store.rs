//! The replicated state machine: a map from bytes to bytes with optional
//! expiry times, and the commands that go through the log to change or
//! read it.
//!
//! A command is encoded into the entry's payload by the leader and decoded by
//! every node when the entry commits. Decoding never trusts the bytes: an entry
//! that does not decode is answered with an error and changes nothing, on every
//! node alike, so the replicas stay identical.
//!
//! # Time and expiry
//!
//! Every replica must apply the same entry the same way, so applying never
//! reads a clock. Instead the leader stamps each entry with its wall clock
//! (ms since the Unix epoch) when it proposes it, and the state machine
//! keeps a *replicated clock*: the largest stamp applied so far. It never
//! goes backwards, even when a new leader's clock is behind the old one's,
//! so a key that expired stays expired. Applying an entry judges expiry by
//! that clock alone:
//!
//! - a relative TTL (`EX`, `PX`, `EXPIRE`) is logged as it was given and
//!   turned into an absolute time at apply, from the replicated clock;
//!   an absolute one (`EXAT`, `PXAT`) is logged as is;
//! - `SET ... NX`, `INCR`, `DEL` and the rest see a key as absent once the
//!   replicated clock has reached its expiry time;
//! - expired keys are deleted at apply time, in the order of their expiry
//!   times, when the replicated clock passes them: deterministic, since the
//!   clock is part of the log. No local timer ever changes the state.
//!
//! A read served from the local copy (`GET` by ReadIndex or lease,
//! `STALEGET`, `TTL`) compares expiry times with the later of the serving
//! node's wall clock and the replicated clock. Two nodes whose clocks differ
//! by S ms may therefore disagree about a key for up to S ms around its
//! expiry time: the one whose clock is behind still shows it, the one ahead
//! no longer does. Within that window reads on different nodes are not
//! linearizable with respect to expiry (every write still is). Keep the
//! nodes' clocks synchronised (NTP); on one machine S is zero.

use std::collections::{BTreeSet, HashMap};

use crate::resp::Reply;

/// When a key expires, as a command gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// No expiry (a plain `SET` clears the key's TTL).
    Clear,
    /// Keep the key's current expiry (`SET ... KEEPTTL`).
    Keep,
    /// This many ms after the replicated clock at apply time (may be
    /// negative: `EXPIRE key -1` deletes the key).
    AfterMs(i64),
    /// At this time, in ms since the Unix epoch.
    AtMs(u64),
}

/// `SET`'s condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    Always,
    /// `NX`: only if the key does not exist.
    IfAbsent,
    /// `XX`: only if it exists.
    IfPresent,
}

/// A read: of the local copy, or through the log (`--reads log`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    Get {
        key: Vec<u8>,
    },
    MGet {
        keys: Vec<Vec<u8>>,
    },
    Exists {
        keys: Vec<Vec<u8>>,
    },
    /// `TTL` (seconds) or `PTTL` (ms).
    Ttl {
        key: Vec<u8>,
        ms: bool,
    },
    DbSize,
}

/// A command that goes through the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
        cond: Cond,
        /// `GET`: answer with the old value.
        get: bool,
        ttl: Ttl,
    },
    MSet {
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Del {
        keys: Vec<Vec<u8>>,
    },
    /// Read-modify-write, atomic because it happens at apply time.
    Incr {
        key: Vec<u8>,
        by: i64,
    },
    /// `EXPIRE`/`PEXPIRE`: `ttl` is `AfterMs` or `AtMs`.
    Expire {
        key: Vec<u8>,
        ttl: Ttl,
    },
    /// A linearizable read: answered when it applies, so it sees every write
    /// committed before it.
    Read(Query),
}

/// What a log entry carries: the leader's clock when it proposed the
/// command, and the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// ms since the Unix epoch on the leader; `None` in entries written
    /// before commands were stamped.
    pub at_ms: Option<u64>,
    pub cmd: Command,
}

// Tags. 1-4 are the unstamped commands of earlier versions, still decoded
// (a WAL may hold them); everything is written stamped now.
const SET_PLAIN: u8 = 1;
const DEL: u8 = 2;
const INCR: u8 = 3;
const GET: u8 = 4;
const SET: u8 = 5;
const MSET: u8 = 6;
const EXPIRE: u8 = 7;
const QUERY: u8 = 8;
/// Followed by the stamp (u64) and one of the tags above.
const STAMPED: u8 = 0x80;

const Q_GET: u8 = 1;
const Q_MGET: u8 = 2;
const Q_EXISTS: u8 = 3;
const Q_TTL: u8 = 4;
const Q_PTTL: u8 = 5;
const Q_DBSIZE: u8 = 6;

const COND_ALWAYS: u8 = 0;
const COND_NX: u8 = 1;
const COND_XX: u8 = 2;
const SET_GET_FLAG: u8 = 4;

const TTL_CLEAR: u8 = 0;
const TTL_KEEP: u8 = 1;
const TTL_AFTER: u8 = 2;
const TTL_AT: u8 = 3;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_list(out: &mut Vec<u8>, keys: &[Vec<u8>]) {
    out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    for k in keys {
        put_bytes(out, k);
    }
}

fn put_ttl(out: &mut Vec<u8>, ttl: Ttl) {
    match ttl {
        Ttl::Clear => out.push(TTL_CLEAR),
        Ttl::Keep => out.push(TTL_KEEP),
        Ttl::AfterMs(ms) => {
            out.push(TTL_AFTER);
            out.extend_from_slice(&ms.to_le_bytes());
        }
        Ttl::AtMs(t) => {
            out.push(TTL_AT);
            out.extend_from_slice(&t.to_le_bytes());
        }
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        Some(self.take(n)?.to_vec())
    }

    /// A count of items that take at least `min_bytes` each: bounded by what
    /// is left before anything is allocated.
    fn count(&mut self, min_bytes: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n <= self.0.len() / min_bytes).then_some(n)
    }

    fn list(&mut self) -> Option<Vec<Vec<u8>>> {
        let n = self.count(4)?;
        (0..n).map(|_| self.bytes()).collect()
    }

    fn ttl(&mut self) -> Option<Ttl> {
        Some(match self.u8()? {
            TTL_CLEAR => Ttl::Clear,
            TTL_KEEP => Ttl::Keep,
            TTL_AFTER => Ttl::AfterMs(self.u64()? as i64),
            TTL_AT => Ttl::AtMs(self.u64()?),
            _ => return None,
        })
    }
}

impl Command {
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Command::Set {
                key,
                value,
                cond,
                get,
                ttl,
            } => {
                out.push(SET);
                let cond = match cond {
                    Cond::Always => COND_ALWAYS,
                    Cond::IfAbsent => COND_NX,
                    Cond::IfPresent => COND_XX,
                };
                out.push(cond | if *get { SET_GET_FLAG } else { 0 });
                put_ttl(out, *ttl);
                put_bytes(out, key);
                put_bytes(out, value);
            }
            Command::MSet { pairs } => {
                out.push(MSET);
                out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
                for (k, v) in pairs {
                    put_bytes(out, k);
                    put_bytes(out, v);
                }
            }
            Command::Del { keys } => {
                out.push(DEL);
                put_list(out, keys);
            }
            Command::Incr { key, by } => {
                out.push(INCR);
                put_bytes(out, key);
                out.extend_from_slice(&by.to_le_bytes());
            }
            Command::Expire { key, ttl } => {
                out.push(EXPIRE);
                put_ttl(out, *ttl);
                put_bytes(out, key);
            }
            Command::Read(q) => {
                out.push(QUERY);
                match q {
                    Query::Get { key } => {
                        out.push(Q_GET);
                        put_bytes(out, key);
                    }
                    Query::MGet { keys } => {
                        out.push(Q_MGET);
                        put_list(out, keys);
                    }
                    Query::Exists { keys } => {
                        out.push(Q_EXISTS);
                        put_list(out, keys);
                    }
                    Query::Ttl { key, ms } => {
                        out.push(if *ms { Q_PTTL } else { Q_TTL });
                        put_bytes(out, key);
                    }
                    Query::DbSize => out.push(Q_DBSIZE),
                }
            }
        }
    }

    fn decode_from(c: &mut Cursor<'_>) -> Option<Command> {
        Some(match c.u8()? {
            SET_PLAIN => Command::Set {
                key: c.bytes()?,
                value: c.bytes()?,
                cond: Cond::Always,
                get: false,
                ttl: Ttl::Clear,
            },
            SET => {
                let flags = c.u8()?;
                let cond = match flags & !SET_GET_FLAG {
                    COND_ALWAYS => Cond::Always,
                    COND_NX => Cond::IfAbsent,
                    COND_XX => Cond::IfPresent,
                    _ => return None,
                };
                let ttl = c.ttl()?;
                Command::Set {
                    ttl,
                    key: c.bytes()?,
                    value: c.bytes()?,
                    cond,
                    get: flags & SET_GET_FLAG != 0,
                }
            }
            MSET => {
                let n = c.count(8)?;
                let pairs = (0..n)
                    .map(|_| Some((c.bytes()?, c.bytes()?)))
                    .collect::<Option<_>>()?;
                Command::MSet { pairs }
            }
            DEL => Command::Del { keys: c.list()? },
            INCR => Command::Incr {
                key: c.bytes()?,
                by: c.u64()? as i64,
            },
            EXPIRE => {
                let ttl = c.ttl()?;
                if matches!(ttl, Ttl::Clear | Ttl::Keep) {
                    return None;
                }
                Command::Expire {
                    ttl,
                    key: c.bytes()?,
                }
            }
            GET => Command::Read(Query::Get { key: c.bytes()? }),
            QUERY => Command::Read(match c.u8()? {
                Q_GET => Query::Get { key: c.bytes()? },
                Q_MGET => Query::MGet { keys: c.list()? },
                Q_EXISTS => Query::Exists { keys: c.list()? },
                Q_TTL => Query::Ttl {
                    key: c.bytes()?,
                    ms: false,
                },
                Q_PTTL => Query::Ttl {
                    key: c.bytes()?,
                    ms: true,
                },
                Q_DBSIZE => Query::DbSize,
                _ => return None,
            }),
            _ => return None,
        })
    }
}

impl Logged {
    /// The entry's payload: the stamp, then the command.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(t) = self.at_ms {
            out.push(STAMPED);
            out.extend_from_slice(&t.to_le_bytes());
        }
        self.cmd.encode_into(&mut out);
        out
    }

    pub fn decode(b: &[u8]) -> Option<Logged> {
        let mut c = Cursor(b);
        let at_ms = if b.first() == Some(&STAMPED) {
            c.take(1)?;
            Some(c.u64()?)
        } else {
            None
        };
        let cmd = Command::decode_from(&mut c)?;
        c.0.is_empty().then_some(Logged { at_ms, cmd })
    }
}

struct Value {
    data: Vec<u8>,
    expires_at_ms: Option<u64>,
}

impl Value {
    fn live_at(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|t| t > now_ms)
    }
}

/// Expired keys deleted per applied entry at most: the work an entry does
/// stays bounded, and the same on every replica.
const EXPIRED_DELETED_PER_APPLY: usize = 64;

/// The key-value map every replica holds.
#[derive(Default)]
pub struct Store {
    map: HashMap<Vec<u8>, Value>,
    /// Every key with an expiry time, by that time. Invariant: `(t, k)` is
    /// here iff `map[k].expires_at_ms == Some(t)`.
    expiries: BTreeSet<(u64, Vec<u8>)>,
    /// The replicated clock: the largest stamp applied. Never decreases.
    clock_ms: u64,
}

impl Store {
    /// Applies one committed entry and returns the client's answer. Reads
    /// no clock: the entry's stamp is the only time it knows.
    pub fn apply(&mut self, entry: Logged) -> Reply {
        if let Some(t) = entry.at_ms {
            self.clock_ms = self.clock_ms.max(t);
        }
        self.delete_expired();
        let now = self.clock_ms;
        match entry.cmd {
            Command::Set {
                key,
                value,
                cond,
                get,
                ttl,
            } => {
                let old = self.live(&key, now);
                let holds = match cond {
                    Cond::Always => true,
                    Cond::IfAbsent => old.is_none(),
                    Cond::IfPresent => old.is_some(),
                };
                let answer = if get {
                    Reply::Bulk(old.map(|v| v.data.clone()))
                } else if holds {
                    Reply::ok()
                } else {
                    Reply::Bulk(None)
                };
                if holds {
                    let expires = match ttl {
                        Ttl::Clear => None,
                        Ttl::Keep => old.and_then(|v| v.expires_at_ms),
                        t => Some(self.resolve(t)),
                    };
                    self.put(key, value, expires);
                }
                answer
            }
            Command::MSet { pairs } => {
                for (k, v) in pairs {
                    self.put(k, v, None);
                }
                Reply::ok()
            }
            Command::Del { keys } => {
                let n = keys.iter().filter(|k| self.remove(k, now)).count();
                Reply::Int(n as i64)
            }
            Command::Incr { key, by } => {
                let (current, expires) = match self.live(&key, now) {
                    None => (0, None),
                    Some(v) => match std::str::from_utf8(&v.data)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                    {
                        Some(n) => (n, v.expires_at_ms),
                        None => return Reply::err("ERR value is not an integer or out of range"),
                    },
                };
                let Some(next) = current.checked_add(by) else {
                    return Reply::err("ERR increment or decrement would overflow");
                };
                self.put(key, next.to_string().into_bytes(), expires);
                Reply::Int(next)
            }
            Command::Expire { key, ttl } => {
                let Some(v) = self.live(&key, now) else {
                    return Reply::Int(0);
                };
                let data = v.data.clone();
                let at = self.resolve(ttl);
                if at <= now {
                    self.remove(&key, now);
                } else {
                    self.put(key, data, Some(at));
                }
                Reply::Int(1)
            }
            Command::Read(q) => self.query(&q, now),
        }
    }

    /// Answers a read from the local copy as of `now_ms`: the replicated
    /// clock for a read through the log, or
    /// [`Store::read_clock`]`(wall clock)` for one served locally.
    pub fn query(&self, q: &Query, now_ms: u64) -> Reply {
        let get = |k: &[u8]| Reply::Bulk(self.live(k, now_ms).map(|v| v.data.clone()));
        match q {
            Query::Get { key } => get(key),
            Query::MGet { keys } => Reply::Array(keys.iter().map(|k| get(k)).collect()),
            Query::Exists { keys } => Reply::Int(
                keys.iter()
                    .filter(|k| self.live(k, now_ms).is_some())
                    .count() as i64,
            ),
            Query::Ttl { key, ms } => Reply::Int(match self.live(key, now_ms) {
                None => -2,
                Some(Value {
                    expires_at_ms: None,
                    ..
                }) => -1,
                Some(Value {
                    expires_at_ms: Some(t),
                    ..
                }) => {
                    let left = t - now_ms;
                    // Redis rounds TTL to the nearest second.
                    (if *ms { left } else { (left + 500) / 1000 }) as i64
                }
            }),
            Query::DbSize => {
                let expired = self.expiries.range(..(now_ms + 1, Vec::new())).count();
                Reply::Int((self.map.len() - expired) as i64)
            }
        }
    }

    /// The time a locally served read judges expiry by: the serving node's
    /// wall clock, but never before the replicated clock, so a read never
    /// shows a key that an applied write already treated as expired.
    pub fn read_clock(&self, wall_ms: u64) -> u64 {
        wall_ms.max(self.clock_ms)
    }

    /// Keys held, expired ones not yet deleted included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Keys with an expiry time.
    pub fn volatile(&self) -> usize {
        self.expiries.len()
    }

    fn live(&self, key: &[u8], now_ms: u64) -> Option<&Value> {
        self.map.get(key).filter(|v| v.live_at(now_ms))
    }

    fn resolve(&self, ttl: Ttl) -> u64 {
        match ttl {
            Ttl::AfterMs(ms) => self.clock_ms.saturating_add_signed(ms),
            Ttl::AtMs(t) => t,
            Ttl::Clear | Ttl::Keep => unreachable!("resolved by the caller"),
        }
    }

    fn put(&mut self, key: Vec<u8>, data: Vec<u8>, expires_at_ms: Option<u64>) {
        let old = self.map.get(&key).and_then(|v| v.expires_at_ms);
        if let Some(t) = old
            && old != expires_at_ms
        {
            self.expiries.remove(&(t, key.clone()));
        }
        if let Some(t) = expires_at_ms {
            self.expiries.insert((t, key.clone()));
        }
        self.map.insert(
            key,
            Value {
                data,
                expires_at_ms,
            },
        );
    }

    /// Removes `key`; true if it was live at `now_ms`.
    fn remove(&mut self, key: &[u8], now_ms: u64) -> bool {
        match self.map.remove(key) {
            None => false,
            Some(v) => {
                if let Some(t) = v.expires_at_ms {
                    self.expiries.remove(&(t, key.to_vec()));
                }
                v.live_at(now_ms)
            }
        }
    }

    fn delete_expired(&mut self) {
        for _ in 0..EXPIRED_DELETED_PER_APPLY {
            match self.expiries.first() {
                Some((t, _)) if *t <= self.clock_ms => {
                    let (_, key) = self.expiries.pop_first().expect("not empty");
                    self.map.remove(&key);
                }
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn at(t: u64, cmd: Command) -> Logged {
        Logged {
            at_ms: Some(t),
            cmd,
        }
    }

    fn set(key: &str, value: &str, cond: Cond, get: bool, ttl: Ttl) -> Command {
        Command::Set {
            key: k(key),
            value: k(value),
            cond,
            get,
            ttl,
        }
    }

    fn plain_set(key: &str, value: &str) -> Command {
        set(key, value, Cond::Always, false, Ttl::Clear)
    }

    fn get(key: &str) -> Command {
        Command::Read(Query::Get { key: k(key) })
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Some(k(s)))
    }

    #[test]
    fn commands_round_trip_and_garbage_is_refused() {
        let cmds = [
            plain_set("k", "v"),
            set("k", "v", Cond::IfAbsent, true, Ttl::AfterMs(-5)),
            set("k", "v", Cond::IfPresent, false, Ttl::AtMs(1 << 40)),
            set("k", "", Cond::Always, true, Ttl::Keep),
            Command::MSet {
                pairs: vec![(k("a"), k("1")), (k("b"), k(""))],
            },
            Command::Del {
                keys: vec![k("a"), k("b")],
            },
            Command::Incr {
                key: k("n"),
                by: -2,
            },
            Command::Expire {
                key: k("n"),
                ttl: Ttl::AfterMs(1000),
            },
            get(""),
            Command::Read(Query::MGet {
                keys: vec![k("a"), k("b")],
            }),
            Command::Read(Query::Exists { keys: vec![k("a")] }),
            Command::Read(Query::Ttl {
                key: k("a"),
                ms: true,
            }),
            Command::Read(Query::Ttl {
                key: k("a"),
                ms: false,
            }),
            Command::Read(Query::DbSize),
        ];
        for cmd in cmds {
            for at_ms in [None, Some(1_700_000_000_000)] {
                let l = Logged {
                    at_ms,
                    cmd: cmd.clone(),
                };
                let b = l.encode();
                assert_eq!(Logged::decode(&b), Some(l), "{b:?}");
                for cut in 0..b.len() {
                    assert_eq!(Logged::decode(&b[..cut]), None, "{cmd:?} cut at {cut}");
                }
                let mut longer = b.clone();
                longer.push(0);
                assert_eq!(Logged::decode(&longer), None);
            }
        }
        assert_eq!(Logged::decode(&[DEL, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(Logged::decode(&[MSET, 0xFF, 0xFF, 0xFF, 0x0F]), None);
        assert_eq!(Logged::decode(&[9]), None);
        assert_eq!(Logged::decode(&[EXPIRE, TTL_KEEP, 0, 0, 0, 0]), None);
    }

    #[test]
    fn entries_of_the_unstamped_format_still_decode() {
        // SET k v and GET k as earlier versions wrote them into the WAL.
        let old_set = [
            &[SET_PLAIN][..],
            &1u32.to_le_bytes(),
            b"k",
            &1u32.to_le_bytes(),
            b"v",
        ]
        .concat();
        assert_eq!(
            Logged::decode(&old_set),
            Some(Logged {
                at_ms: None,
                cmd: plain_set("k", "v")
            })
        );
        let old_get = [&[GET][..], &1u32.to_le_bytes(), b"k"].concat();
        assert_eq!(Logged::decode(&old_get).map(|l| l.cmd), Some(get("k")));
    }

    #[test]
    fn incr_is_read_modify_write_and_refuses_non_numbers() {
        let mut s = Store::default();
        let incr = |by| at(1, Command::Incr { key: k("n"), by });
        assert_eq!(s.apply(incr(1)), Reply::Int(1));
        assert_eq!(s.apply(incr(41)), Reply::Int(42));
        s.apply(at(1, plain_set("n", "x")));
        assert!(matches!(s.apply(incr(1)), Reply::Error(_)));
        s.apply(at(1, plain_set("n", &i64::MAX.to_string())));
        assert_eq!(
            s.apply(incr(1)),
            Reply::err("ERR increment or decrement would overflow")
        );
    }

    #[test]
    fn set_nx_xx_and_get_follow_redis() {
        let mut s = Store::default();
        let t = 1000;
        assert_eq!(
            s.apply(at(t, set("k", "a", Cond::IfPresent, false, Ttl::Clear))),
            Reply::Bulk(None),
            "XX on a missing key"
        );
        assert_eq!(
            s.apply(at(t, set("k", "a", Cond::IfAbsent, false, Ttl::Clear))),
            Reply::ok()
        );
        assert_eq!(
            s.apply(at(t, set("k", "b", Cond::IfAbsent, false, Ttl::Clear))),
            Reply::Bulk(None),
            "NX on a present key"
        );
        assert_eq!(
            s.apply(at(t, set("k", "c", Cond::IfAbsent, true, Ttl::Clear))),
            bulk("a"),
            "NX GET answers the old value and sets nothing"
        );
        assert_eq!(
            s.apply(at(t, set("k", "d", Cond::IfPresent, true, Ttl::Clear))),
            bulk("a")
        );
        assert_eq!(s.apply(at(t, get("k"))), bulk("d"));
        assert_eq!(
            s.apply(at(t, set("new", "x", Cond::Always, true, Ttl::Clear))),
            Reply::Bulk(None)
        );
        assert_eq!(
            s.apply(at(
                t,
                Command::MSet {
                    pairs: vec![(k("a"), k("1")), (k("b"), k("2"))]
                }
            )),
            Reply::ok()
        );
        assert_eq!(
            s.query(
                &Query::MGet {
                    keys: vec![k("a"), k("nope"), k("b")]
                },
                t
            ),
            Reply::Array(vec![bulk("1"), Reply::Bulk(None), bulk("2")])
        );
        assert_eq!(
            s.query(
                &Query::Exists {
                    keys: vec![k("a"), k("a"), k("nope")]
                },
                t
            ),
            Reply::Int(2),
            "EXISTS counts a repeated key each time"
        );
        assert_eq!(s.query(&Query::DbSize, t), Reply::Int(4));
    }

    #[test]
    fn ttls_resolve_against_the_replicated_clock_at_apply() {
        let mut s = Store::default();
        s.apply(at(
            10_000,
            set("k", "v", Cond::Always, false, Ttl::AfterMs(1500)),
        ));
        let pttl = |s: &Store, now| {
            s.query(
                &Query::Ttl {
                    key: k("k"),
                    ms: true,
                },
                now,
            )
        };
        let ttl = |s: &Store, now| {
            s.query(
                &Query::Ttl {
                    key: k("k"),
                    ms: false,
                },
                now,
            )
        };
        assert_eq!(pttl(&s, 10_000), Reply::Int(1500));
        assert_eq!(ttl(&s, 10_000), Reply::Int(2), "1.5 s rounds to 2");
        assert_eq!(ttl(&s, 10_600), Reply::Int(1));
        assert_eq!(s.query(&Query::Get { key: k("k") }, 11_499), bulk("v"));
        assert_eq!(
            s.query(&Query::Get { key: k("k") }, 11_500),
            Reply::Bulk(None)
        );
        assert_eq!(pttl(&s, 11_500), Reply::Int(-2));
        assert_eq!(
            s.query(
                &Query::Ttl {
                    key: k("nope"),
                    ms: false
                },
                0
            ),
            Reply::Int(-2)
        );
        // INCR keeps the TTL, KEEPTTL keeps it, a plain SET clears it.
        s.apply(at(10_100, plain_set("n", "1")));
        s.apply(at(
            10_100,
            Command::Expire {
                key: k("n"),
                ttl: Ttl::AfterMs(900),
            },
        ));
        s.apply(at(10_200, Command::Incr { key: k("n"), by: 1 }));
        let n_ttl = |s: &Store| {
            s.query(
                &Query::Ttl {
                    key: k("n"),
                    ms: true,
                },
                10_200,
            )
        };
        assert_eq!(n_ttl(&s), Reply::Int(800));
        s.apply(at(10_200, set("n", "5", Cond::Always, false, Ttl::Keep)));
        assert_eq!(n_ttl(&s), Reply::Int(800));
        s.apply(at(10_200, plain_set("n", "6")));
        assert_eq!(n_ttl(&s), Reply::Int(-1));
        // EXPIRE on a missing key does nothing; a TTL already past deletes.
        assert_eq!(
            s.apply(at(
                10_200,
                Command::Expire {
                    key: k("x"),
                    ttl: Ttl::AfterMs(5)
                }
            )),
            Reply::Int(0)
        );
        assert_eq!(
            s.apply(at(
                10_200,
                Command::Expire {
                    key: k("n"),
                    ttl: Ttl::AfterMs(-1)
                }
            )),
            Reply::Int(1)
        );
        assert_eq!(
            s.query(&Query::Get { key: k("n") }, 10_200),
            Reply::Bulk(None)
        );
        assert_eq!(s.volatile(), 1, "only k's expiry is left");
    }

    /// A new leader whose clock is behind the old one's must not bring an
    /// expired key back: the replicated clock never goes backwards.
    #[test]
    fn an_expired_key_stays_expired_under_a_leader_with_a_slower_clock() {
        let mut s = Store::default();
        s.apply(at(
            1_000,
            set("k", "v", Cond::Always, false, Ttl::AtMs(1_500)),
        ));
        s.apply(at(1_600, plain_set("other", "x")));
        // The next leader's clock reads 1,200.
        assert_eq!(s.apply(at(1_200, get("k"))), Reply::Bulk(None));
        assert_eq!(
            s.apply(at(
                1_200,
                set("k", "new", Cond::IfAbsent, false, Ttl::AfterMs(100))
            )),
            Reply::ok(),
            "NX sees the expired key as absent"
        );
        // The TTL counts from the replicated clock (1,600), not the stamp.
        assert_eq!(
            s.query(
                &Query::Ttl {
                    key: k("k"),
                    ms: true
                },
                s.read_clock(1_200)
            ),
            Reply::Int(100)
        );
        assert_eq!(s.read_clock(0), 1_600);
        assert_eq!(s.read_clock(2_000), 2_000);
    }

    /// Replicas that apply the same entries hold the same keys, expired ones
    /// included, whatever their own clocks say: deletion happens at apply,
    /// driven by the stamps.
    #[test]
    fn expired_keys_are_deleted_at_apply_the_same_way_on_every_replica() {
        let entries: Vec<Logged> = (0..200u64)
            .map(|i| {
                at(
                    1_000 + i * 10,
                    set(
                        &format!("k{i}"),
                        "v",
                        Cond::Always,
                        false,
                        Ttl::AfterMs(50 + (i as i64 % 7) * 10),
                    ),
                )
            })
            .chain([at(10_000, plain_set("last", "x"))])
            .collect();
        let mut replicas: Vec<Store> = (0..3).map(|_| Store::default()).collect();
        for r in &mut replicas {
            for e in &entries {
                r.apply(e.clone());
            }
        }
        let keys: Vec<Vec<Vec<u8>>> = replicas
            .iter()
            .map(|r| {
                let mut v: Vec<_> = r.map.keys().cloned().collect();
                v.sort();
                v
            })
            .collect();
        assert!(keys.iter().all(|k| *k == keys[0]));
        // Each entry deletes what its stamp expired, within the bound.
        assert!(replicas[0].len() < 200 / 2, "{}", replicas[0].len());
        assert_eq!(replicas[0].query(&Query::DbSize, 10_000), Reply::Int(1));
        for r in &replicas {
            assert_eq!(
                r.expiries.len(),
                r.map.values().filter(|v| v.expires_at_ms.is_some()).count()
            );
        }
    }
}
