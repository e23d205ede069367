//! What a leader knows of each follower's log, and how fast it may send.
//!
//! Pure bookkeeping: no messages, no roles. The leader asks "may I send?"
//! ([`Progress::is_paused`]), tells it what it sent ([`Progress::sent`]) and
//! what came back ([`Progress::maybe_update`], [`Progress::maybe_decr_to`]).

use alloc::collections::VecDeque;

use crate::status::ProgressState;
use crate::types::{Index, NodeId};

/// Replication progress of one follower.
///
/// Invariant: `match_index < next_index`.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    pub id: NodeId,
    pub match_index: Index,
    pub next_index: Index,
    pub state: ProgressState,
    /// Probe state: one AppendEntries is out; wait for its answer or a heartbeat.
    pub probe_sent: bool,
    /// Replicate state: the last index and entry bytes of each AppendEntries
    /// in flight, oldest first.
    inflight: VecDeque<(Index, u64)>,
    inflight_bytes: u64,
    max_inflight: usize,
    max_inflight_bytes: u64,
    /// Replicate state: how many messages may be in flight now. Halved
    /// each time streaming restarts after a probe, doubled with every
    /// acknowledgement that moves the match, between 1 and `max_inflight`:
    /// answers to messages of an earlier stream (reordered, duplicated) that
    /// flip the follower between probe and replicate set off ever smaller
    /// windows instead of a full one each, while a follower that streams
    /// well keeps (or regains) the whole window.
    window: usize,
    /// Heard from since the last CheckQuorum round.
    pub recent_active: bool,
    /// The latest heartbeat round the follower answered.
    pub acked_round: u64,
}

impl Progress {
    pub fn new(
        id: NodeId,
        next_index: Index,
        max_inflight: usize,
        max_inflight_bytes: u64,
    ) -> Progress {
        Progress {
            id,
            match_index: Index(0),
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            max_inflight,
            max_inflight_bytes,
            window: max_inflight.max(1),
            recent_active: true,
            acked_round: 0,
        }
    }

    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Whether the leader must wait before sending more entries.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => {
                self.inflight.len() >= self.window || self.inflight_bytes >= self.max_inflight_bytes
            }
        }
    }

    /// Why the leader must wait (the `reason` of the `replication_paused`
    /// event), or `None` if it need not.
    #[cfg(feature = "tracing")]
    pub fn pause_reason(&self) -> Option<&'static str> {
        match self.state {
            ProgressState::Probe if self.probe_sent => Some("probe_outstanding"),
            ProgressState::Replicate if self.inflight.len() >= self.window => Some("inflight_msgs"),
            ProgressState::Replicate if self.inflight_bytes >= self.max_inflight_bytes => {
                Some("inflight_bytes")
            }
            _ => None,
        }
    }

    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.next_index = self.match_index.next();
        self.clear_inflight();
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.probe_sent = false;
        self.next_index = self.match_index.next();
        self.clear_inflight();
        self.window = (self.window / 2).max(1);
    }

    /// The follower's log went backwards and now ends at `last`: nothing it
    /// acknowledged before can be trusted, so probe it from there.
    pub fn forget_match(&mut self, last: Index) {
        self.match_index = Index(0);
        self.become_probe();
        self.next_index = last.next();
    }

    fn clear_inflight(&mut self) {
        self.inflight.clear();
        self.inflight_bytes = 0;
    }

    fn free_first(&mut self) {
        if let Some((_, b)) = self.inflight.pop_front() {
            self.inflight_bytes -= b;
        }
    }

    /// Records an AppendEntries whose last entry is `last` (or which carried
    /// no entries, when `last` is `None`), carrying `bytes` of entries.
    pub fn sent(&mut self, last: Option<Index>, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if let Some(last) = last {
                    self.next_index = last.next();
                    self.inflight.push_back((last, bytes));
                    self.inflight_bytes += bytes;
                }
            }
            ProgressState::Probe => self.probe_sent = true,
        }
    }

    /// A success up to `n`. Returns whether it told the leader anything new.
    pub fn maybe_update(&mut self, n: Index) -> bool {
        let updated = n > self.match_index;
        if updated {
            self.match_index = n;
            self.probe_sent = false;
            if self.state == ProgressState::Replicate {
                self.window = (self.window * 2).min(self.max_inflight);
            }
        }
        if self.next_index <= n {
            self.next_index = n.next();
        }
        while self.inflight.front().is_some_and(|&(i, _)| i <= n) {
            self.free_first();
        }
        updated
    }

    /// A rejection of the AppendEntries whose `prev.index` was `rejected`;
    /// `hint` is the highest index at which the logs may match. Returns false
    /// when the rejection is stale (answers an older request).
    pub fn maybe_decr_to(&mut self, rejected: Index, hint: Index) -> bool {
        match self.state {
            ProgressState::Replicate => {
                if rejected <= self.match_index {
                    return false;
                }
                // A message was lost or reordered: restart from what is known.
                self.become_probe();
                true
            }
            ProgressState::Probe => {
                if rejected != self.next_index.prev() {
                    return false;
                }
                let to = rejected.min(hint);
                if to < self.match_index {
                    // The answer to the outstanding probe says the follower
                    // may match only below what it acknowledged: it lost
                    // acknowledged entries. Probing on from the match would
                    // ask the same question forever.
                    self.forget_match(to);
                    return true;
                }
                self.next_index = to.next().max(self.match_index.next());
                self.probe_sent = false;
                true
            }
        }
    }

    /// A heartbeat answer: the follower is alive, so a lost probe or a full
    /// window must not stall it forever.
    pub fn on_heartbeat_response(&mut self) {
        self.probe_sent = false;
        if self.is_paused() {
            self.free_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_at_a_time() {
        let mut p = Progress::new(NodeId(2), Index(5), 4, u64::MAX);
        assert!(!p.is_paused());
        p.sent(Some(Index(7)), 10);
        assert!(p.is_paused());
        assert_eq!(
            p.next_index,
            Index(5),
            "probe does not move next optimistically"
        );
        p.on_heartbeat_response();
        assert!(!p.is_paused());
    }

    #[test]
    fn replicate_window_is_bounded_and_freed_by_acks() {
        let mut p = Progress::new(NodeId(2), Index(1), 2, u64::MAX);
        p.become_replicate();
        p.sent(Some(Index(3)), 10);
        p.sent(Some(Index(6)), 10);
        assert!(p.is_paused());
        assert_eq!(p.next_index, Index(7));
        assert!(p.maybe_update(Index(3)));
        assert!(!p.is_paused());
        assert_eq!(p.inflight(), 1);
    }

    #[test]
    fn replicate_window_is_bounded_in_bytes() {
        let mut p = Progress::new(NodeId(2), Index(1), 100, 1000);
        p.become_replicate();
        p.window = 100; // opened by earlier acknowledgements
        p.sent(Some(Index(1)), 600);
        assert!(!p.is_paused());
        p.sent(Some(Index(2)), 600);
        assert!(p.is_paused(), "1200 bytes in flight, limit 1000");
        p.maybe_update(Index(1));
        assert!(!p.is_paused());
    }

    #[test]
    fn a_follower_whose_log_went_backwards_is_probed_from_its_end() {
        let mut p = Progress::new(NodeId(2), Index(1), 4, u64::MAX);
        p.maybe_update(Index(40));
        p.become_replicate();
        p.sent(Some(Index(50)), 10);
        p.forget_match(Index(7));
        assert_eq!(p.match_index, Index(0), "nothing acknowledged is trusted");
        assert_eq!(p.state, ProgressState::Probe);
        assert_eq!(p.next_index, Index(8));
        assert_eq!(p.inflight(), 0);
        assert!(!p.is_paused());
    }

    #[test]
    fn a_probe_answered_below_the_match_forgets_the_match() {
        let mut p = Progress::new(NodeId(2), Index(1), 4, u64::MAX);
        p.maybe_update(Index(9));
        p.become_probe();
        assert_eq!(p.next_index, Index(10));
        p.sent(Some(Index(12)), 10);
        // The follower no longer holds 9: its log may match only up to 4.
        assert!(p.maybe_decr_to(Index(9), Index(4)));
        assert_eq!(p.match_index, Index(0));
        assert_eq!(p.next_index, Index(5));
        assert!(!p.is_paused(), "the next probe goes out at once");
    }

    /// The window halves each time streaming restarts after a probe and
    /// doubles with every acknowledgement that moves the match, between one
    /// message and the limit.
    #[test]
    fn the_window_halves_on_each_restart_and_doubles_with_each_acknowledgement() {
        let mut p = Progress::new(NodeId(2), Index(1), 8, u64::MAX);
        p.become_replicate();
        assert_eq!(p.window, 4, "half the limit after the first probe");
        for _ in 0..3 {
            p.become_probe();
            p.become_replicate();
        }
        assert_eq!(p.window, 1, "flapping shrinks it to one");
        p.become_probe();
        p.become_replicate();
        assert_eq!(p.window, 1, "never below one");
        p.sent(Some(Index(1)), 1);
        assert!(p.is_paused(), "one message in flight");
        assert!(p.maybe_update(Index(1)));
        p.sent(Some(Index(2)), 1);
        p.sent(Some(Index(3)), 1);
        assert!(p.is_paused(), "two after one acknowledgement");
        assert!(p.maybe_update(Index(3)));
        assert!(p.maybe_update(Index(4)) || p.window == 4);
        assert!(
            !p.maybe_update(Index(4)),
            "a duplicate answer opens nothing"
        );
        for i in 5..=20 {
            p.maybe_update(Index(i));
        }
        assert_eq!(p.window, 8, "never beyond the limit");
    }

    #[test]
    fn a_full_window_is_emptied_by_a_state_change() {
        let mut p = Progress::new(NodeId(2), Index(1), 2, 100);
        p.become_replicate();
        p.window = 2;
        p.sent(Some(Index(1)), 60);
        p.sent(Some(Index(2)), 60);
        assert!(p.is_paused());
        p.become_probe();
        p.become_replicate();
        p.window = 2;
        assert_eq!(p.inflight(), 0);
        assert!(!p.is_paused(), "no message nor byte left counted");
        p.sent(Some(Index(1)), 60);
        assert!(!p.is_paused(), "60 bytes of 100 after the reset");
    }

    #[test]
    fn a_heartbeat_answer_frees_one_slot_of_a_full_window() {
        let mut p = Progress::new(NodeId(2), Index(1), 2, u64::MAX);
        p.become_replicate();
        p.window = 2;
        p.sent(Some(Index(1)), 10);
        p.sent(Some(Index(2)), 10);
        assert!(p.is_paused());
        p.on_heartbeat_response();
        assert_eq!(p.inflight(), 1, "the oldest is presumed lost");
        assert!(!p.is_paused());
        p.on_heartbeat_response();
        assert_eq!(p.inflight(), 1, "only a full window is freed");
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(NodeId(2), Index(10), 4, u64::MAX);
        assert!(
            !p.maybe_decr_to(Index(5), Index(3)),
            "not the outstanding probe"
        );
        assert!(p.maybe_decr_to(Index(9), Index(4)));
        assert_eq!(p.next_index, Index(5));
        p.maybe_update(Index(6));
        p.become_replicate();
        assert!(!p.maybe_decr_to(Index(6), Index(0)), "below match: stale");
        assert!(p.maybe_decr_to(Index(8), Index(0)));
        assert_eq!(p.state, ProgressState::Probe);
        assert_eq!(p.next_index, Index(7));
    }
}
