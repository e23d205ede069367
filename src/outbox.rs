//! [`Outbox`]: every message a node wants sent, with the durability it
//! waits for, from the moment it is created until a Ready hands it out.
//!
//! The protocol files a message here as safe now, or as waiting for the
//! host to make the Ready under construction durable (a vote grant, an
//! append acknowledgement, anything in a term not yet durable). The node
//! numbers Readies here, so a waiting message is tagged with its Ready's id
//! when it is created, and `advance` releases by id. It decides nothing
//! about *what* needs durability; it only keeps the promise once made.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::message::Message;
use crate::ready::ReadyId;

#[derive(Debug)]
pub(crate) struct Outbox {
    /// Safe to send: handed out with the next Ready.
    now: Vec<Message>,
    /// Each waits for the host to acknowledge the Ready of its id, oldest
    /// first. One queue for all Readies: no allocation per Ready in steady
    /// state.
    waiting: VecDeque<(ReadyId, Message)>,
    /// The id the next Ready will carry.
    next_id: u64,
    /// The highest id the host has acknowledged.
    acknowledged: u64,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox {
            now: Vec::new(),
            waiting: VecDeque::new(),
            next_id: 1,
            acknowledged: 0,
        }
    }

    /// Files a message that is safe to send at once.
    #[inline]
    pub fn send(&mut self, m: Message) {
        self.now.push(m);
    }

    /// Files a message that may leave only once the writes of the Ready
    /// under construction are durable.
    #[inline]
    pub fn send_when_durable(&mut self, m: Message) {
        self.waiting.push_back((ReadyId(self.next_id), m));
    }

    /// Whether nothing waits to be handed out now, or created during this
    /// step to wait for durability.
    #[inline]
    pub fn is_quiet(&self) -> bool {
        self.now.is_empty()
            && self
                .waiting
                .back()
                .is_none_or(|(id, _)| id.0 < self.next_id)
    }

    /// Whether anything is filed at all.
    pub fn is_empty(&self) -> bool {
        self.now.is_empty() && self.waiting.is_empty()
    }

    /// Numbers the Ready under construction and hands out, by swapping, the
    /// messages that are safe now (`into` must be empty; its buffer is kept
    /// for the next Ready).
    #[inline]
    pub fn seal(&mut self, into: &mut Vec<Message>) -> ReadyId {
        debug_assert!(into.is_empty());
        core::mem::swap(into, &mut self.now);
        self.next_ready()
    }

    /// Numbers a Ready that carries no message.
    #[inline]
    pub fn next_ready(&mut self) -> ReadyId {
        let id = ReadyId(self.next_id);
        self.next_id += 1;
        id
    }

    /// The id of the last Ready handed out.
    pub fn last_issued(&self) -> u64 {
        self.next_id - 1
    }

    /// The highest id acknowledged.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged
    }

    /// The host acknowledged every Ready up to `id`: what waited for them
    /// is safe now. The caller checked that `id` is new and was issued.
    pub fn acknowledge(&mut self, id: ReadyId) {
        debug_assert!(id.0 > self.acknowledged && id.0 < self.next_id);
        self.acknowledged = id.0;
        while self.waiting.front().is_some_and(|(rid, _)| *rid <= id) {
            if let Some((_, m)) = self.waiting.pop_front() {
                self.now.push(m);
            }
        }
    }

    /// Whether the buffers hold heap memory.
    pub fn holds_memory(&self) -> bool {
        self.now.capacity() > 0 || self.waiting.capacity() > 0
    }

    /// Frees the buffers if nothing is filed.
    pub fn release_idle_buffers(&mut self) -> bool {
        if !self.is_empty() {
            return false;
        }
        self.now = Vec::new();
        self.waiting = VecDeque::new();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Body;
    use crate::types::{NodeId, Term};

    fn m(n: u64) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(n),
            term: Term(1),
            body: Body::TimeoutNow,
        }
    }

    fn to(ms: &[Message]) -> Vec<u64> {
        ms.iter().map(|m| m.to.get()).collect()
    }

    #[test]
    fn a_waiting_message_leaves_with_the_acknowledgement_of_its_ready() {
        let mut o = Outbox::new();
        o.send(m(2));
        o.send_when_durable(m(3));
        assert!(!o.is_quiet());
        let mut out = Vec::new();
        let r1 = o.seal(&mut out);
        assert_eq!(to(&out), [2]);
        assert!(o.is_quiet(), "what waits for ready 1 is already filed");
        o.send_when_durable(m(4));
        let mut out2 = Vec::new();
        let r2 = o.seal(&mut out2);
        assert!(out2.is_empty());
        o.acknowledge(r1);
        let mut out3 = Vec::new();
        let _ = o.seal(&mut out3);
        assert_eq!(to(&out3), [3], "only what waited for ready 1");
        o.acknowledge(r2);
        let mut out4 = Vec::new();
        let _ = o.seal(&mut out4);
        assert_eq!(to(&out4), [4]);
        assert!(o.is_empty());
        assert!(o.release_idle_buffers());
        assert!(!o.holds_memory());
    }
}
