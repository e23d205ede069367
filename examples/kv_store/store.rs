//! The replicated state machine: a map from bytes to bytes, and the commands
//! that go through the log to change or read it.
//!
//! A command is encoded into the entry's payload by the leader and decoded by
//! every node when the entry commits. Decoding never trusts the bytes: an entry
//! that does not decode is answered with an error and changes nothing, on every
//! node alike, so the replicas stay identical.

use std::collections::HashMap;

use crate::resp::Reply;

/// A command that goes through the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Del {
        keys: Vec<Vec<u8>>,
    },
    /// Read-modify-write, atomic because it happens at apply time.
    Incr {
        key: Vec<u8>,
        by: i64,
    },
    /// A linearizable read: answered when it applies, so it sees every write
    /// committed before it.
    Get {
        key: Vec<u8>,
    },
}

const SET: u8 = 1;
const DEL: u8 = 2;
const INCR: u8 = 3;
const GET: u8 = 4;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
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

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        Some(self.take(n)?.to_vec())
    }
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Command::Set { key, value } => {
                out.push(SET);
                put_bytes(&mut out, key);
                put_bytes(&mut out, value);
            }
            Command::Del { keys } => {
                out.push(DEL);
                out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
                for k in keys {
                    put_bytes(&mut out, k);
                }
            }
            Command::Incr { key, by } => {
                out.push(INCR);
                put_bytes(&mut out, key);
                out.extend_from_slice(&by.to_le_bytes());
            }
            Command::Get { key } => {
                out.push(GET);
                put_bytes(&mut out, key);
            }
        }
        out
    }

    pub fn decode(b: &[u8]) -> Option<Command> {
        let (&tag, rest) = b.split_first()?;
        let mut c = Cursor(rest);
        let cmd = match tag {
            SET => Command::Set {
                key: c.bytes()?,
                value: c.bytes()?,
            },
            DEL => {
                let n = c.u32()? as usize;
                // Each key takes at least four bytes: a bound before allocating.
                if n > c.0.len() / 4 {
                    return None;
                }
                let mut keys = Vec::with_capacity(n);
                for _ in 0..n {
                    keys.push(c.bytes()?);
                }
                Command::Del { keys }
            }
            INCR => Command::Incr {
                key: c.bytes()?,
                by: i64::from_le_bytes(c.take(8)?.try_into().ok()?),
            },
            GET => Command::Get { key: c.bytes()? },
            _ => return None,
        };
        c.0.is_empty().then_some(cmd)
    }
}

/// The key-value map every replica holds.
#[derive(Default)]
pub struct Store {
    map: HashMap<Vec<u8>, Vec<u8>>,
}

impl Store {
    /// Applies one committed command and returns the client's answer.
    pub fn apply(&mut self, cmd: Command) -> Reply {
        match cmd {
            Command::Set { key, value } => {
                self.map.insert(key, value);
                Reply::ok()
            }
            Command::Del { keys } => {
                let n = keys
                    .iter()
                    .filter(|k| self.map.remove(k.as_slice()).is_some())
                    .count();
                Reply::Int(n as i64)
            }
            Command::Incr { key, by } => {
                let current = match self.map.get(&key) {
                    None => 0,
                    Some(v) => match std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                    {
                        Some(n) => n,
                        None => return Reply::err("ERR value is not an integer or out of range"),
                    },
                };
                let Some(next) = current.checked_add(by) else {
                    return Reply::err("ERR increment or decrement would overflow");
                };
                self.map.insert(key, next.to_string().into_bytes());
                Reply::Int(next)
            }
            Command::Get { key } => self.get(&key),
        }
    }

    /// Reads the local copy, committed or not yet applied elsewhere: what a
    /// stale read sees.
    pub fn get(&self, key: &[u8]) -> Reply {
        Reply::Bulk(self.map.get(key).cloned())
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_garbage_is_refused() {
        let cmds = [
            Command::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            },
            Command::Del {
                keys: vec![b"a".to_vec(), b"b".to_vec()],
            },
            Command::Incr {
                key: b"n".to_vec(),
                by: -2,
            },
            Command::Get { key: b"".to_vec() },
        ];
        for c in cmds {
            let b = c.encode();
            assert_eq!(Command::decode(&b), Some(c));
            for cut in 0..b.len() {
                assert_eq!(Command::decode(&b[..cut]), None);
            }
        }
        assert_eq!(Command::decode(&[DEL, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(Command::decode(&[9]), None);
    }

    #[test]
    fn incr_is_read_modify_write_and_refuses_non_numbers() {
        let mut s = Store::default();
        let incr = |by| Command::Incr {
            key: b"n".to_vec(),
            by,
        };
        assert_eq!(s.apply(incr(1)), Reply::Int(1));
        assert_eq!(s.apply(incr(41)), Reply::Int(42));
        s.apply(Command::Set {
            key: b"n".to_vec(),
            value: b"x".to_vec(),
        });
        assert!(matches!(s.apply(incr(1)), Reply::Error(_)));
    }
}
