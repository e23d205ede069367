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

use crate::membership::ConfState;
use crate::quorum::Quorum;
use crate::types::NodeId;

/// The members of the configuration in force: the voters, the outgoing
/// voters while a joint configuration is in force (empty otherwise), and
/// every member once in table order (voters, outgoing voters, learners).
///
/// Invariant: no id twice within a set; `members` lists each member once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Membership {
    voters: Vec<NodeId>,
    outgoing: Vec<NodeId>,
    members: Vec<NodeId>,
}

impl Membership {
    /// The members of `conf`.
    pub fn new(conf: &ConfState) -> Membership {
        Membership {
            voters: conf.voters.clone(),
            outgoing: conf.voters_outgoing.clone(),
            members: conf.members().collect(),
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
    #[inline]
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    /// Every member once, in table order.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().copied()
    }

    /// How many members there are.
    #[inline]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The place of `id` in table order, if it is a member.
    #[inline]
    pub fn position(&self, id: NodeId) -> Option<usize> {
        self.members.iter().position(|&m| m == id)
    }

    /// Forgets the outgoing voters (an injected bug: a joint configuration
    /// decided by its incoming half alone).
    #[cfg(zaft_bugs)]
    pub fn forget_outgoing(&mut self) {
        self.outgoing.clear();
    }

    /// The member at place `i` of table order.
    #[inline]
    pub fn at(&self, i: usize) -> NodeId {
        self.members[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn members_are_listed_once_and_found_by_id() {
        let m = Membership::new(&ConfState {
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
            voters_outgoing: vec![NodeId(3), NodeId(4)],
            learners: vec![NodeId(6)],
            learners_next: vec![NodeId(4)],
            auto_leave: true,
        });
        let ids: Vec<NodeId> = m.ids().collect();
        assert_eq!(ids, [1, 2, 3, 4, 6].map(NodeId));
        assert_eq!(m.len(), 5);
        assert_eq!(m.position(NodeId(4)), Some(3));
        assert_eq!(m.position(NodeId(3)), Some(2));
        assert_eq!(m.position(NodeId(6)), Some(4));
        assert_eq!(m.position(NodeId(5)), None);
        assert_eq!(m.at(4), NodeId(6));
        assert!(m.is_voter(NodeId(4)) && !m.is_voter(NodeId(5)) && !m.is_voter(NodeId(6)));
        assert_eq!(m.voter_count(), 3);
    }
}
