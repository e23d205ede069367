//! [`Config`]: the static settings of one node, and their validation.

use alloc::vec::Vec;

use crate::error::ConfigError;
use crate::types::NodeId;

/// The settings of one node. Build it with [`Config::new`], adjust the public
/// fields, and [`Node::new`](crate::Node::new) validates it.
///
/// All durations are in ticks: the host decides how long a tick is. With a
/// 10 ms tick the defaults give a 10 ms heartbeat and a 100–200 ms election
/// timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id. Never `NodeId(0)`.
    pub id: NodeId,
    /// The founding voters of a brand-new cluster, this node included: the
    /// configuration the node assumes while neither
    /// [`crate::Restored::conf_state`] nor a membership entry of its log says
    /// otherwise. Give every founding member the same list. Leave it empty
    /// on a node that joins a running cluster (or restarts after it joined):
    /// such a node learns its configuration from the leader's log and does
    /// not campaign before it is a voter of it. See the crate docs,
    /// "Membership changes".
    pub voters: Vec<NodeId>,
    /// The shortest election timeout. A follower that hears nothing from a
    /// leader for a random number of ticks in
    /// `[election_timeout_ticks_min, election_timeout_ticks_max]` starts an
    /// election (§5.2).
    pub election_timeout_ticks_min: u32,
    /// The longest election timeout. The spread between min and max is what
    /// keeps split votes rare (§9.3: a spread of 2x is plenty).
    pub election_timeout_ticks_max: u32,
    /// How often a leader sends heartbeats. Must be below the minimum election
    /// timeout, usually by a factor of ten.
    pub heartbeat_interval_ticks: u32,
    /// The seed of the node's election-jitter PRNG. A run is a pure function of
    /// the config and the inputs; give each node a different seed (the node mixes
    /// in its id, so equal seeds still give different timeouts).
    pub seed: u64,
    /// The most entry bytes one AppendEntries carries (at least one entry is
    /// always sent, whatever its size).
    pub max_entries_bytes_per_msg: u64,
    /// The most AppendEntries a leader keeps in flight to one follower while
    /// streaming to it.
    pub max_inflight_msgs: u32,
    /// The most entry bytes a leader keeps in flight to one follower while
    /// streaming to it (at least one message is always allowed).
    pub max_inflight_bytes: u64,
    /// The most bytes of uncommitted entries a leader accepts. Past it,
    /// proposals are refused with [`crate::Busy::UncommittedBytes`] until
    /// commitment catches up: backpressure instead of unbounded memory.
    pub max_uncommitted_bytes: u64,
    /// The most committed-entry bytes one Ready hands out (at least one entry
    /// is always handed out); the rest follow in later Readies.
    pub max_committed_bytes_per_ready: u64,
    /// The most read-index requests a node keeps waiting at once.
    pub max_pending_reads: u32,
    /// PreVote (thesis §9.6): before bumping its term a node asks whether it
    /// could win, so a node that was partitioned away cannot depose a healthy
    /// leader when it returns. A node also refuses pre-votes while it hears
    /// from a leader.
    pub pre_vote: bool,
    /// CheckQuorum: a leader that has not heard from a majority within an
    /// election timeout steps down, and followers that hear from a leader
    /// ignore vote requests (leader stickiness) unless they come from a
    /// leadership transfer. A node that restarted counts as hearing a leader
    /// for its first minimum election timeout, and `Input::Campaign` is
    /// refused while a leader is heard (see `lease_reads`).
    pub check_quorum: bool,
    /// Lease reads: the leader answers read-index requests without a
    /// heartbeat round while its lease holds. Needs `check_quorum`, on every
    /// node of the cluster.
    ///
    /// The lease lasts `election_timeout_ticks_min - lease_drift_margin_ticks`
    /// ticks from the *sending* of the latest heartbeat round a majority
    /// answered (thesis §6.4). Its safety rests on one promise: a node that
    /// answered that heartbeat helps elect no one else for
    /// `election_timeout_ticks_min` of its own ticks after it heard it. Every
    /// path to a new leader keeps it:
    ///
    /// - *Vote requests and pre-votes* are ignored while the node heard a
    ///   leader within the minimum election timeout (leader stickiness).
    /// - *A restart* forgets when the leader was last heard, so a node that
    ///   restarts in a term it had answered messages in (restored term above
    ///   0: no message of a term leaves before the term is durable) counts
    ///   as hearing a leader for its first minimum election timeout.
    /// - *Its own election*: the timeout is at least the minimum since the
    ///   leader was last heard, and [`crate::Input::Campaign`] is refused
    ///   with [`crate::Busy::LeaderAlive`] while a leader is heard or the
    ///   node has just restarted.
    /// - *Leadership transfer*: the target's election ignores stickiness, so
    ///   the leader gives up its lease for the rest of its term when it
    ///   sends `TimeoutNow`, including when the transfer is later aborted or
    ///   times out (the message may still arrive).
    /// - *CheckQuorum step-down*: a leader that steps down has no lease, and
    ///   its followers' promises stand as before.
    /// - *A node that lost data* ([`crate::Restored::lost_data`]) takes no
    ///   part in elections until it has caught up.
    ///
    /// And on time: the lease is counted in the leader's ticks, so it is
    /// safe as long as no node's ticks run faster than the leader's by more
    /// than the margin over the lease, and the host delivers every tick that
    /// passed: after a stall, with [`crate::Input::Ticks`], before it steps
    /// anything else.
    pub lease_reads: bool,
    /// The allowance of lease reads for clocks and ticks, in ticks: at
    /// least 1. A follower's promise is kept for `election_timeout_ticks_min`
    /// of its ticks after it heard the leader, but its first tick may come
    /// at once, so only `min - 1` tick lengths of real time are sure; the
    /// rest of the margin covers how much faster than the leader's any
    /// node's ticks may run over a lease.
    pub lease_drift_margin_ticks: u32,
    /// Whether a leader that is not a voter of the configuration in force
    /// (it proposed its own removal or demotion) steps down once that
    /// configuration commits. On by default; when off it goes on leading a
    /// cluster it is not part of until it loses leadership otherwise.
    pub step_down_on_removal: bool,
    /// Whether a follower forwards proposals to the leader it knows. When
    /// off, a follower answers [`crate::Error::NotLeader`] with the leader
    /// hint. Forwarded proposals have no `(term, index)` at the follower:
    /// identify them by content (e.g. a request id in the payload).
    pub forward_proposals: bool,
}

impl Config {
    /// A configuration with the usual defaults: election timeout 10–20 ticks,
    /// heartbeat every tick, 1 MiB per message, 256 messages in flight.
    pub fn new(id: NodeId, voters: impl IntoIterator<Item = NodeId>) -> Config {
        Config {
            id,
            voters: voters.into_iter().collect(),
            election_timeout_ticks_min: 10,
            election_timeout_ticks_max: 20,
            heartbeat_interval_ticks: 1,
            seed: 0,
            max_entries_bytes_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            max_inflight_bytes: 32 << 20,
            max_uncommitted_bytes: 64 << 20,
            max_committed_bytes_per_ready: 32 << 20,
            max_pending_reads: 4096,
            pre_vote: false,
            check_quorum: false,
            lease_reads: false,
            lease_drift_margin_ticks: 2,
            forward_proposals: true,
            step_down_on_removal: true,
        }
    }

    /// Checks every field; the error says how to fix the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == NodeId(0) {
            return Err(ConfigError::ZeroId);
        }
        if self.voters.contains(&NodeId(0)) {
            return Err(ConfigError::BadVoters);
        }
        for (i, v) in self.voters.iter().enumerate() {
            if self.voters[..i].contains(v) {
                return Err(ConfigError::BadVoters);
            }
        }
        if !self.voters.is_empty() && !self.voters.contains(&self.id) {
            return Err(ConfigError::SelfNotVoter);
        }
        if self.election_timeout_ticks_min < 2
            || self.election_timeout_ticks_max < self.election_timeout_ticks_min
        {
            return Err(ConfigError::BadElectionTimeout);
        }
        if self.heartbeat_interval_ticks == 0
            || self.heartbeat_interval_ticks >= self.election_timeout_ticks_min
        {
            return Err(ConfigError::HeartbeatTooLong);
        }
        if self.max_entries_bytes_per_msg == 0 {
            return Err(ConfigError::ZeroLimit("max_entries_bytes_per_msg"));
        }
        let limits = [
            ("max_inflight_msgs", u64::from(self.max_inflight_msgs)),
            ("max_inflight_bytes", self.max_inflight_bytes),
            ("max_uncommitted_bytes", self.max_uncommitted_bytes),
            (
                "max_committed_bytes_per_ready",
                self.max_committed_bytes_per_ready,
            ),
            ("max_pending_reads", u64::from(self.max_pending_reads)),
        ];
        for (name, v) in limits {
            if v == 0 {
                return Err(ConfigError::ZeroLimit(name));
            }
        }
        if self.lease_reads && !self.check_quorum {
            return Err(ConfigError::LeaseWithoutCheckQuorum);
        }
        if self.lease_reads && self.lease_drift_margin_ticks == 0 {
            return Err(ConfigError::LeaseMarginTooShort);
        }
        if self.lease_reads && self.lease_drift_margin_ticks >= self.election_timeout_ticks_min {
            return Err(ConfigError::LeaseMarginTooLong);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn ok() -> Config {
        Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)])
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ok().validate(), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut c = ok();
        c.id = NodeId(0);
        assert_eq!(c.validate(), Err(ConfigError::ZeroId));
        let mut c = ok();
        c.voters.push(NodeId(2));
        assert_eq!(c.validate(), Err(ConfigError::BadVoters));
        let mut c = ok();
        c.voters = vec![NodeId(2)];
        assert_eq!(c.validate(), Err(ConfigError::SelfNotVoter));
        // A joining node knows no voters yet.
        c.voters = vec![];
        assert_eq!(c.validate(), Ok(()));
        let mut c = ok();
        c.heartbeat_interval_ticks = 10;
        assert_eq!(c.validate(), Err(ConfigError::HeartbeatTooLong));
        let mut c = ok();
        c.election_timeout_ticks_max = 5;
        assert_eq!(c.validate(), Err(ConfigError::BadElectionTimeout));
        let mut c = ok();
        c.max_inflight_msgs = 0;
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZeroLimit("max_inflight_msgs"))
        );
        let mut c = ok();
        c.max_uncommitted_bytes = 0;
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZeroLimit("max_uncommitted_bytes"))
        );
        let mut c = ok();
        c.lease_reads = true;
        assert_eq!(c.validate(), Err(ConfigError::LeaseWithoutCheckQuorum));
        c.check_quorum = true;
        assert_eq!(c.validate(), Ok(()));
        c.lease_drift_margin_ticks = 10;
        assert_eq!(c.validate(), Err(ConfigError::LeaseMarginTooLong));
        c.lease_drift_margin_ticks = 0;
        assert_eq!(c.validate(), Err(ConfigError::LeaseMarginTooShort));
        c.lease_drift_margin_ticks = 1;
        assert_eq!(c.validate(), Ok(()));
    }
}
