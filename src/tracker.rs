//! [`Membership`]: who the members of the cluster are and whose majorities
//! decide, this node included as an ordinary member.
//!
//! Every per-member table of the protocol (a leader's replication progress,
//! a candidate's votes) is laid out in [`Membership::ids`] order and looked
//! up by `NodeId` through [`Membership::position`]; every quorum question
//! goes through [`Membership::quorum`]. Nothing here knows roles or
//! messages, and nothing anywhere adds "plus myself" by hand: the local
//! node's progress is what its host has made durable, its vote counts once
//! durable, like anyone's.

use alloc::vec::Vec;

use crate::quorum::Quorum;
use crate::types::NodeId;

/// The members: the voters and, while a joint configuration is in force,
/// the outgoing voters (empty otherwise).
///
/// Invariant: no id twice within a set; `ids()` lists each member once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Membership {
    voters: Vec<NodeId>,
    outgoing: Vec<NodeId>,
}

impl Membership {
    /// A single (non-joint) configuration of `voters`.
    pub fn new(voters: Vec<NodeId>) -> Membership {
        Membership {
            voters,
            outgoing: Vec::new(),
        }
    }

    /// The voters whose majorities decide.
    #[inline]
    pub fn quorum(&self) -> Quorum<'_> {
        Quorum {
            incoming: &self.voters,
            outgoing: &self.outgoing,
        }
    }

    /// How many voters there are (of the incoming configuration).
    #[cfg_attr(not(any(test, feature = "tracing")), allow(dead_code))]
    pub fn voter_count(&self) -> usize {
        self.voters.len()
    }

    /// Whether `id` votes in either configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    /// Every member once: the voters, then outgoing voters not among them.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().copied().chain(
            self.outgoing
                .iter()
                .copied()
                .filter(|id| !self.voters.contains(id)),
        )
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.ids().count()
    }

    /// The place of `id` in `ids()` order, if it is a member.
    #[inline]
    pub fn position(&self, id: NodeId) -> Option<usize> {
        if let Some(p) = self.voters.iter().position(|&v| v == id) {
            return Some(p);
        }
        self.ids().position(|m| m == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn members_are_listed_once_and_found_by_id() {
        let mut m = Membership::new(vec![NodeId(1), NodeId(2), NodeId(3)]);
        m.outgoing = vec![NodeId(3), NodeId(4)];
        let ids: Vec<NodeId> = m.ids().collect();
        assert_eq!(ids, [1, 2, 3, 4].map(NodeId));
        assert_eq!(m.len(), 4);
        assert_eq!(m.position(NodeId(4)), Some(3));
        assert_eq!(m.position(NodeId(3)), Some(2));
        assert_eq!(m.position(NodeId(5)), None);
        assert!(m.is_voter(NodeId(4)) && !m.is_voter(NodeId(5)));
        assert_eq!(m.voter_count(), 3);
    }
}
