//! The replicated state machine of the simulated hosts: a map of `u64` keys to
//! `u64` values with client sessions, and the encoding of its commands.
//!
//! Sessions make retries safe (§8 of the Raft paper): each command carries its
//! client and a sequence number; a command whose number the client already
//! used is not applied again but answered from the session, so a retried
//! request that commits twice takes effect once.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::linearizability::Op;
use crate::types::Index;

/// A client command as it travels through the log.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Command {
    pub client: u64,
    pub seq: u64,
    pub op: Op,
}

const LEN: usize = 33;

impl Command {
    pub fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(LEN);
        let (tag, key, value) = match self.op {
            Op::Read { key } => (0u8, key, 0),
            Op::Write { key, value } => (1u8, key, value),
        };
        b.push(tag);
        for v in [self.client, self.seq, key, value] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        Bytes::from(b)
    }

    pub fn decode(data: &[u8]) -> Option<Command> {
        if data.len() != LEN {
            return None;
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&data[1 + 8 * i..9 + 8 * i]);
            u64::from_le_bytes(w)
        };
        let (client, seq, key, value) = (word(0), word(1), word(2), word(3));
        let op = match data[0] {
            0 => Op::Read { key },
            1 => Op::Write { key, value },
            _ => return None,
        };
        Some(Command { client, seq, op })
    }
}

/// What applying a command did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Applied {
    /// Executed now; for a read, the value seen.
    Fresh(Option<u64>),
    /// Already executed: the answer of the first execution.
    Duplicate(Option<u64>),
    /// Older than the client's latest command: ignored (nobody waits for it).
    Stale,
}

/// The state machine: the map, the sessions and how far the log has been
/// applied. Cloned as a whole when the host persists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Kv {
    pub applied: Index,
    data: BTreeMap<u64, u64>,
    /// Per client: its latest sequence number and that command's answer.
    sessions: BTreeMap<u64, (u64, Option<u64>)>,
}

impl Kv {
    /// The value of `key`, for a read served outside the log.
    pub fn get(&self, key: u64) -> Option<u64> {
        self.data.get(&key).copied()
    }

    pub fn apply(&mut self, c: &Command) -> Applied {
        if let Some(&(seq, answer)) = self.sessions.get(&c.client) {
            if c.seq == seq {
                return Applied::Duplicate(answer);
            }
            if c.seq < seq {
                return Applied::Stale;
            }
        }
        let answer = match c.op {
            Op::Read { key } => self.data.get(&key).copied(),
            Op::Write { key, value } => {
                self.data.insert(key, value);
                None
            }
        };
        self.sessions.insert(c.client, (c.seq, answer));
        Applied::Fresh(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        for op in [Op::Read { key: 3 }, Op::Write { key: 9, value: 7 }] {
            let c = Command {
                client: 2,
                seq: 5,
                op,
            };
            assert_eq!(Command::decode(&c.encode()), Some(c));
        }
        assert_eq!(Command::decode(b"junk"), None);
    }

    #[test]
    fn a_retried_command_takes_effect_once() {
        let mut kv = Kv::default();
        let w = |seq, value| Command {
            client: 1,
            seq,
            op: Op::Write { key: 1, value },
        };
        let read = Command {
            client: 2,
            seq: 1,
            op: Op::Read { key: 1 },
        };
        assert_eq!(kv.apply(&w(1, 10)), Applied::Fresh(None));
        assert_eq!(kv.apply(&read), Applied::Fresh(Some(10)));
        assert_eq!(kv.apply(&w(2, 20)), Applied::Fresh(None));
        assert_eq!(kv.apply(&w(1, 10)), Applied::Stale);
        assert_eq!(kv.apply(&read), Applied::Duplicate(Some(10)));
        assert_eq!(kv.data.get(&1), Some(&20));
    }
}
