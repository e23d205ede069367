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
    /// Every voting member of the cluster, this node included.
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
        }
    }

    /// Checks every field; the error says how to fix the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == NodeId(0) {
            return Err(ConfigError::ZeroId);
        }
        if self.voters.is_empty() || self.voters.contains(&NodeId(0)) {
            return Err(ConfigError::BadVoters);
        }
        for (i, v) in self.voters.iter().enumerate() {
            if self.voters[..i].contains(v) {
                return Err(ConfigError::BadVoters);
            }
        }
        if !self.voters.contains(&self.id) {
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
        if self.max_inflight_msgs == 0 {
            return Err(ConfigError::ZeroLimit("max_inflight_msgs"));
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
    }
}
