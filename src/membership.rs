//! Membership changes (thesis chapter 4): the configuration state, the
//! changes a host may propose, and the pure rules that validate a change and
//! compute the configuration it leads to.
//!
//! The safety argument for when a configuration takes effect is on
//! [`MembershipChange`], where users read it too.

use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::DecodeError;
use crate::types::{Index, NodeId};

/// What the cluster is made of: who votes, who only learns.
///
/// Outside a joint configuration only `voters` and `learners` are used.
/// While joint, a decision needs a majority of `voters` *and* a majority of
/// `voters_outgoing`; `learners_next` holds voters being demoted to learners,
/// which become learners when the joint configuration is left.
///
/// Invariants (checked on every configuration a node takes in, whether
/// proposed here or received from a leader): no id twice in a set, no
/// `NodeId(0)`, no voter (incoming or outgoing) among `learners`,
/// `learners_next` only while joint and only among `voters_outgoing` (never
/// among `voters`), `auto_leave` only while joint, and at least one voter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfState {
    /// The voters (of the incoming configuration, while joint).
    pub voters: Vec<NodeId>,
    /// The voters of the outgoing configuration while joint; empty otherwise.
    pub voters_outgoing: Vec<NodeId>,
    /// Members that receive the log but never vote or count towards a quorum.
    pub learners: Vec<NodeId>,
    /// Outgoing voters that become learners when the joint configuration is
    /// left.
    pub learners_next: Vec<NodeId>,
    /// Whether the leader leaves the joint configuration on its own once it
    /// commits. If not, the host leaves it with
    /// [`crate::Input::LeaveJoint`].
    pub auto_leave: bool,
}

impl ConfState {
    /// A simple configuration of `voters` and no learners.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> ConfState {
        ConfState {
            voters: voters.into_iter().collect(),
            ..ConfState::default()
        }
    }

    /// Whether a joint configuration is in force.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Whether `id` votes (in the incoming or the outgoing configuration).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// Whether `id` is a learner (or will be one when the joint
    /// configuration is left).
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id) || self.learners_next.contains(&id)
    }

    /// Whether `id` is a member: a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Every member once: voters, outgoing voters that are not incoming
    /// voters, learners.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters
            .iter()
            .copied()
            .chain(
                self.voters_outgoing
                    .iter()
                    .copied()
                    .filter(|id| !self.voters.contains(id)),
            )
            .chain(self.learners.iter().copied())
    }

    /// Checks the invariants listed on the type.
    pub(crate) fn check(&self) -> Result<(), MembershipError> {
        let sets = [
            &self.voters,
            &self.voters_outgoing,
            &self.learners,
            &self.learners_next,
        ];
        for set in sets {
            for (i, id) in set.iter().enumerate() {
                if *id == NodeId(0) {
                    return Err(MembershipError::ZeroId);
                }
                if set[..i].contains(id) {
                    return Err(MembershipError::DuplicateNode(*id));
                }
            }
        }
        if self.voters.is_empty() {
            return Err(MembershipError::NoVoters);
        }
        if let Some(&id) = self.learners.iter().find(|&&id| self.is_voter(id)) {
            return Err(MembershipError::VoterAndLearner(id));
        }
        let next_ok = self
            .learners_next
            .iter()
            .all(|id| self.voters_outgoing.contains(id) && !self.voters.contains(id));
        if !next_ok || (!self.is_joint() && self.auto_leave) {
            return Err(MembershipError::Inconsistent);
        }
        Ok(())
    }
}

/// One change of a [`MembershipChange`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum ConfChange {
    /// Adds a voter, or promotes a learner to voter.
    AddVoter(NodeId),
    /// Adds a learner, or demotes a voter to learner.
    AddLearner(NodeId),
    /// Removes a voter or a learner.
    RemoveNode(NodeId),
}

impl ConfChange {
    /// The node the change is about.
    pub fn node(&self) -> NodeId {
        match *self {
            ConfChange::AddVoter(id) | ConfChange::AddLearner(id) | ConfChange::RemoveNode(id) => {
                id
            }
        }
    }
}

/// How a [`MembershipChange`] moves from the old configuration to the new.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
#[non_exhaustive]
pub enum Transition {
    /// A simple change if at most one voter is added or removed, otherwise
    /// a joint configuration that the leader leaves on its own.
    #[default]
    Auto,
    /// Always a joint configuration, left by the leader on its own once it
    /// commits.
    Joint,
    /// Always a joint configuration, left only when the host proposes
    /// [`crate::Input::LeaveJoint`].
    JointExplicit,
}

/// A membership change a host proposes ([`crate::Input::ChangeMembership`]).
///
/// # When a configuration takes effect
///
/// A configuration is carried by a log entry of kind
/// [`crate::EntryKind::Membership`] and takes effect on every node as soon as
/// the entry is in its log, committed or not (thesis §4.1); if a new leader
/// overwrites the entry, the node goes back to the configuration before it.
/// The safety argument, which the protocol code relies on:
///
/// - **One change at a time.** A leader proposes a change only when the last
///   configuration in its log is committed, so at any moment the nodes of
///   the cluster use at most two configurations, `C` and the next one `C'`,
///   and every decision (an election, a commit) is taken with one of them.
/// - **`C` and `C'` always share a voter of every quorum.** A *simple* change
///   adds or removes at most one voter, and any majority of `C` meets any
///   majority of `C'`. A larger change goes through a *joint* configuration
///   `C_old,new` in which every decision needs a majority of `C_old` and a
///   majority of `C_new`: it meets `C_old`'s majorities, and once it is
///   committed the next step (`C_new` alone) meets its majorities too.
/// - **A leader commits an entry of its own term before proposing a change.**
///   Without this rule the one-at-a-time argument fails across leader
///   changes: a leader of `C` can hold an uncommitted `C'` from an old term,
///   be replaced by a leader that never saw it and proposes `C''`, and `C'`
///   and `C''` need not overlap (the bug found in the single-server algorithm
///   in 2015). Once an entry of the leader's term `T` is committed, a
///   majority of `C` holds a log ending in term `T`, newer than any log that
///   carries the stale `C'` (appended in an older term): no node using `C'`
///   can win an election any more, since every majority of `C'` meets that
///   majority of `C`, and so `C'` is dead before `C''` comes into force.
/// - **The configuration that is in force decides, not the one committed.**
///   Taking effect on append means a leader stops counting a removed voter
///   the moment it appends the removal, and a new voter counts from then on:
///   the entry itself is committed by the new configuration.
///
/// A leader that is not a voter of the configuration in force (it proposed
/// its own removal) keeps leading, replicating and committing without
/// counting itself, until that configuration commits; then it steps down
/// ([`crate::Config::step_down_on_removal`]).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct MembershipChange {
    /// The changes, applied together.
    pub changes: Vec<ConfChange>,
    /// Simple or joint.
    pub transition: Transition,
    /// Opaque bytes for the hosts (for instance the new node's address),
    /// carried in the log entry.
    pub context: Bytes,
}

impl MembershipChange {
    /// The changes `changes`, simple if possible ([`Transition::Auto`]).
    pub fn new(changes: impl IntoIterator<Item = ConfChange>) -> MembershipChange {
        MembershipChange {
            changes: changes.into_iter().collect(),
            ..MembershipChange::default()
        }
    }

    /// Adds voter `id` (or promotes learner `id`).
    pub fn add_voter(id: NodeId) -> MembershipChange {
        MembershipChange::new([ConfChange::AddVoter(id)])
    }

    /// Adds learner `id` (or demotes voter `id`).
    pub fn add_learner(id: NodeId) -> MembershipChange {
        MembershipChange::new([ConfChange::AddLearner(id)])
    }

    /// Removes node `id`.
    pub fn remove(id: NodeId) -> MembershipChange {
        MembershipChange::new([ConfChange::RemoveNode(id)])
    }

    /// The same change with transition `t`.
    pub fn with_transition(mut self, t: Transition) -> MembershipChange {
        self.transition = t;
        self
    }

    /// The same change with `context` for the hosts.
    pub fn with_context(mut self, context: Bytes) -> MembershipChange {
        self.context = context;
        self
    }
}

/// The payload of an entry of kind [`crate::EntryKind::Membership`]: the
/// change that was proposed and the configuration it leads to. A host that
/// applies such an entry decodes it with [`MembershipEntry::decode`] (to
/// learn, say, a new node's address from the context); the node itself has
/// already taken the configuration in when the entry reached its log.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MembershipEntry {
    /// The change proposed; `None` for leaving a joint configuration.
    pub change: Option<MembershipChange>,
    /// The configuration in force from this entry on.
    pub conf: ConfState,
}

/// The version byte in front of an encoded [`MembershipEntry`].
const ENTRY_FORMAT: u8 = 1;

/// The tags of [`ConfChange`] and [`Transition`] on the wire. Never
/// renumber; append only.
mod tag {
    pub const ADD_VOTER: u8 = 0;
    pub const ADD_LEARNER: u8 = 1;
    pub const REMOVE_NODE: u8 = 2;
    pub const AUTO: u8 = 0;
    pub const JOINT: u8 = 1;
    pub const JOINT_EXPLICIT: u8 = 2;
}

impl Serialize for ConfChange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = match self {
            ConfChange::AddVoter(_) => tag::ADD_VOTER,
            ConfChange::AddLearner(_) => tag::ADD_LEARNER,
            ConfChange::RemoveNode(_) => tag::REMOVE_NODE,
        };
        (t, self.node()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for ConfChange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ConfChange, D::Error> {
        let (t, id): (u8, NodeId) = Deserialize::deserialize(d)?;
        match t {
            tag::ADD_VOTER => Ok(ConfChange::AddVoter(id)),
            tag::ADD_LEARNER => Ok(ConfChange::AddLearner(id)),
            tag::REMOVE_NODE => Ok(ConfChange::RemoveNode(id)),
            _ => Err(de::Error::custom("unknown membership change tag")),
        }
    }
}

impl Serialize for Transition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = match self {
            Transition::Auto => tag::AUTO,
            Transition::Joint => tag::JOINT,
            Transition::JointExplicit => tag::JOINT_EXPLICIT,
        };
        t.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Transition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Transition, D::Error> {
        match u8::deserialize(d)? {
            tag::AUTO => Ok(Transition::Auto),
            tag::JOINT => Ok(Transition::Joint),
            tag::JOINT_EXPLICIT => Ok(Transition::JointExplicit),
            _ => Err(de::Error::custom("unknown transition tag")),
        }
    }
}

impl Serialize for MembershipChange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.changes, self.transition, &self.context[..]).serialize(s)
    }
}

impl<'de> Deserialize<'de> for MembershipChange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MembershipChange, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MembershipChange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a membership change")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<MembershipChange, A::Error> {
                let missing = || de::Error::custom("membership change too short");
                let changes: Vec<ConfChange> = a.next_element()?.ok_or_else(missing)?;
                let transition: Transition = a.next_element()?.ok_or_else(missing)?;
                let context: &[u8] = a.next_element()?.ok_or_else(missing)?;
                Ok(MembershipChange {
                    changes,
                    transition,
                    context: Bytes::copy_from_slice(context),
                })
            }
        }
        d.deserialize_tuple(3, V)
    }
}

impl MembershipEntry {
    /// The entry's bytes: a format version, then the change and the
    /// configuration.
    pub fn encode(&self) -> Bytes {
        let mut out = alloc::vec![ENTRY_FORMAT];
        let body = postcard::to_allocvec(&(&self.change, &self.conf))
            .expect("encoding into a vector cannot fail");
        out.extend_from_slice(&body);
        Bytes::from(out)
    }

    /// Decodes an entry's data. Refuses a format this build does not know,
    /// trailing bytes, and a configuration that breaks the invariants of
    /// [`ConfState`].
    pub fn decode(data: &[u8]) -> Result<MembershipEntry, DecodeError> {
        let (&version, body) = data.split_first().ok_or(DecodeError::Truncated)?;
        if version != ENTRY_FORMAT {
            return Err(DecodeError::Version {
                found: version,
                supported: ENTRY_FORMAT,
            });
        }
        let ((change, conf), rest): ((Option<MembershipChange>, ConfState), &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| match e {
                postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated,
                _ => DecodeError::Malformed,
            })?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes { extra: rest.len() });
        }
        conf.check().map_err(|_| DecodeError::Malformed)?;
        Ok(MembershipEntry { change, conf })
    }
}

/// Why a membership change was refused.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum MembershipError {
    /// The configuration at `index` is not committed yet: one change at a
    /// time. Retry once it commits.
    ChangePending {
        /// The index of the uncommitted configuration.
        index: Index,
    },
    /// The leader has not committed an entry of its own term yet, so its
    /// log may lack a committed configuration. Retry shortly.
    TermNotCommitted,
    /// A joint configuration is in force: leave it first.
    AlreadyJoint,
    /// `LeaveJoint` was asked outside a joint configuration.
    NotJoint,
    /// The change lists no change.
    EmptyChange,
    /// The change leaves the configuration as it is.
    NoChange,
    /// The change names this node twice, or a configuration lists it twice.
    DuplicateNode(NodeId),
    /// A removal names a node that is not a member.
    UnknownNode(NodeId),
    /// The change names `NodeId(0)`, which is reserved.
    ZeroId,
    /// The change would leave no voter.
    NoVoters,
    /// A configuration would make this node both voter and learner.
    VoterAndLearner(NodeId),
    /// A configuration breaks an invariant of [`ConfState`].
    Inconsistent,
    /// This node is not a voter of the configuration in force, so it cannot
    /// campaign.
    NotAVoter,
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipError::ChangePending { index } => write!(
                f,
                "the membership change at index {} is not committed yet; retry once it commits",
                index.0
            ),
            MembershipError::TermNotCommitted => {
                f.write_str("the leader has not committed an entry of its term yet; retry shortly")
            }
            MembershipError::AlreadyJoint => {
                f.write_str("a joint configuration is in force; leave it first (LeaveJoint)")
            }
            MembershipError::NotJoint => f.write_str("no joint configuration to leave"),
            MembershipError::EmptyChange => f.write_str("the membership change lists no change"),
            MembershipError::NoChange => {
                f.write_str("the membership change leaves the configuration as it is")
            }
            MembershipError::DuplicateNode(id) => {
                write!(f, "node {} is named twice", id.0)
            }
            MembershipError::UnknownNode(id) => write!(f, "node {} is not a member", id.0),
            MembershipError::ZeroId => f.write_str("node id 0 is reserved"),
            MembershipError::NoVoters => f.write_str("the change would leave no voter"),
            MembershipError::VoterAndLearner(id) => {
                write!(f, "node {} would be both voter and learner", id.0)
            }
            MembershipError::Inconsistent => {
                f.write_str("the configuration breaks an invariant of ConfState")
            }
            MembershipError::NotAVoter => {
                f.write_str("this node is not a voter of the configuration in force")
            }
        }
    }
}

/// The configuration `change` leads to from `cur`, or why it cannot be made.
pub(crate) fn apply_change(
    cur: &ConfState,
    change: &MembershipChange,
) -> Result<ConfState, MembershipError> {
    if cur.is_joint() {
        return Err(MembershipError::AlreadyJoint);
    }
    if change.changes.is_empty() {
        return Err(MembershipError::EmptyChange);
    }
    for (i, c) in change.changes.iter().enumerate() {
        if c.node() == NodeId(0) {
            return Err(MembershipError::ZeroId);
        }
        if change.changes[..i].iter().any(|d| d.node() == c.node()) {
            return Err(MembershipError::DuplicateNode(c.node()));
        }
    }
    let mut voters = cur.voters.clone();
    let mut learners = cur.learners.clone();
    for c in &change.changes {
        let id = c.node();
        match *c {
            ConfChange::AddVoter(_) => {
                learners.retain(|&l| l != id);
                if !voters.contains(&id) {
                    voters.push(id);
                }
            }
            ConfChange::AddLearner(_) => {
                voters.retain(|&v| v != id);
                if !learners.contains(&id) {
                    learners.push(id);
                }
            }
            ConfChange::RemoveNode(_) => {
                if !cur.contains(id) {
                    return Err(MembershipError::UnknownNode(id));
                }
                voters.retain(|&v| v != id);
                learners.retain(|&l| l != id);
            }
        }
    }
    if voters.is_empty() {
        return Err(MembershipError::NoVoters);
    }
    let same_set =
        |a: &[NodeId], b: &[NodeId]| a.len() == b.len() && a.iter().all(|x| b.contains(x));
    if same_set(&voters, &cur.voters) && same_set(&learners, &cur.learners) {
        return Err(MembershipError::NoChange);
    }
    let voters_changed = voters.iter().filter(|v| !cur.voters.contains(v)).count()
        + cur.voters.iter().filter(|v| !voters.contains(v)).count();
    let joint = match change.transition {
        Transition::Auto => voters_changed > 1,
        Transition::Joint | Transition::JointExplicit => true,
    };
    let next = if joint {
        // Demoted voters stay voters of the outgoing configuration and
        // become learners when it is left.
        let (learners_next, learners): (Vec<NodeId>, Vec<NodeId>) =
            learners.into_iter().partition(|l| cur.voters.contains(l));
        ConfState {
            voters,
            voters_outgoing: cur.voters.clone(),
            learners,
            learners_next,
            auto_leave: change.transition != Transition::JointExplicit,
        }
    } else {
        ConfState {
            voters,
            learners,
            ..ConfState::default()
        }
    };
    next.check()?;
    Ok(next)
}

/// The configuration after leaving the joint configuration `cur`.
pub(crate) fn leave_joint(cur: &ConfState) -> Result<ConfState, MembershipError> {
    if !cur.is_joint() {
        return Err(MembershipError::NotJoint);
    }
    let mut learners = cur.learners.clone();
    learners.extend(cur.learners_next.iter().copied());
    let next = ConfState {
        voters: cur.voters.clone(),
        learners,
        ..ConfState::default()
    };
    next.check()?;
    Ok(next)
}

/// The configurations of a node's log: the one in force at the start of
/// the log (or at the commit index) and every one carried by a later entry,
/// so that a truncation can go back to the one before.
///
/// Invariant: non-empty, indexes strictly increasing; the first is
/// committed.
#[derive(Clone, Debug)]
pub(crate) struct ConfLog {
    confs: Vec<(Index, ConfState)>,
}

impl ConfLog {
    /// `base` in force from `index` (the start of the log, or a snapshot).
    pub fn new(index: Index, base: ConfState) -> ConfLog {
        ConfLog {
            confs: alloc::vec![(index, base)],
        }
    }

    /// The configuration in force: the last in the log.
    #[inline]
    pub fn current(&self) -> &ConfState {
        &self.confs[self.confs.len() - 1].1
    }

    /// The index of the entry that carried the configuration in force.
    #[inline]
    pub fn current_index(&self) -> Index {
        self.confs[self.confs.len() - 1].0
    }

    /// A configuration carried by the entry at `index`, the last in the log.
    pub fn push(&mut self, index: Index, conf: ConfState) {
        debug_assert!(index > self.current_index());
        self.confs.push((index, conf));
    }

    /// The log lost every entry at `from` and beyond. Returns whether the
    /// configuration in force changed. Never goes below the first
    /// (committed) configuration.
    pub fn truncate(&mut self, from: Index) -> bool {
        let before = self.confs.len();
        while self.confs.len() > 1 && self.confs[self.confs.len() - 1].0 >= from {
            self.confs.pop();
        }
        self.confs.len() != before
    }

    /// Whether `id` votes in the last configuration at or below
    /// `committed`, or in any after it.
    pub fn votes_since(&self, id: NodeId, committed: Index) -> bool {
        let from = self
            .confs
            .partition_point(|(i, _)| *i <= committed)
            .saturating_sub(1);
        self.confs[from..].iter().any(|(_, c)| c.is_voter(id))
    }

    /// Forgets the configurations that no truncation can go back to: all
    /// but the last at or below `committed`.
    pub fn compact(&mut self, committed: Index) {
        let keep_from = self.confs.partition_point(|(i, _)| *i <= committed);
        if keep_from > 1 {
            self.confs.drain(..keep_from - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().map(|&i| NodeId(i)).collect()
    }

    fn conf(voters: &[u64], learners: &[u64]) -> ConfState {
        ConfState {
            voters: ids(voters),
            learners: ids(learners),
            ..ConfState::default()
        }
    }

    #[test]
    fn a_single_voter_change_is_simple() {
        let c = conf(&[1, 2, 3], &[]);
        let n = apply_change(&c, &MembershipChange::add_voter(NodeId(4))).unwrap();
        assert_eq!(n, conf(&[1, 2, 3, 4], &[]));
        let n = apply_change(&c, &MembershipChange::remove(NodeId(2))).unwrap();
        assert_eq!(n, conf(&[1, 3], &[]));
        let n = apply_change(&c, &MembershipChange::add_learner(NodeId(5))).unwrap();
        assert_eq!(n, conf(&[1, 2, 3], &[5]));
    }

    #[test]
    fn two_voter_changes_go_through_a_joint_configuration() {
        let c = conf(&[1, 2, 3], &[]);
        let ch = MembershipChange::new([
            ConfChange::AddVoter(NodeId(4)),
            ConfChange::RemoveNode(NodeId(1)),
        ]);
        let n = apply_change(&c, &ch).unwrap();
        assert_eq!(n.voters, ids(&[2, 3, 4]));
        assert_eq!(n.voters_outgoing, ids(&[1, 2, 3]));
        assert!(n.auto_leave);
        let left = leave_joint(&n).unwrap();
        assert_eq!(left, conf(&[2, 3, 4], &[]));
    }

    #[test]
    fn a_demoted_voter_becomes_a_learner_when_the_joint_configuration_is_left() {
        let c = conf(&[1, 2, 3], &[]);
        let ch =
            MembershipChange::add_learner(NodeId(3)).with_transition(Transition::JointExplicit);
        let n = apply_change(&c, &ch).unwrap();
        assert_eq!(n.learners_next, ids(&[3]));
        assert!(n.learners.is_empty());
        assert!(!n.auto_leave);
        assert!(n.is_voter(NodeId(3)), "still an outgoing voter");
        assert_eq!(leave_joint(&n).unwrap(), conf(&[1, 2], &[3]));
    }

    #[test]
    fn invalid_changes_are_refused_with_their_reason() {
        let c = conf(&[1, 2, 3], &[4]);
        let err = |ch: MembershipChange| apply_change(&c, &ch).unwrap_err();
        assert_eq!(err(MembershipChange::new([])), MembershipError::EmptyChange);
        assert_eq!(
            err(MembershipChange::remove(NodeId(9))),
            MembershipError::UnknownNode(NodeId(9))
        );
        assert_eq!(
            err(MembershipChange::add_voter(NodeId(0))),
            MembershipError::ZeroId
        );
        assert_eq!(
            err(MembershipChange::add_voter(NodeId(2))),
            MembershipError::NoChange
        );
        assert_eq!(
            err(MembershipChange::new([
                ConfChange::AddVoter(NodeId(5)),
                ConfChange::RemoveNode(NodeId(5))
            ])),
            MembershipError::DuplicateNode(NodeId(5))
        );
        let one = conf(&[1], &[]);
        assert_eq!(
            apply_change(&one, &MembershipChange::remove(NodeId(1))).unwrap_err(),
            MembershipError::NoVoters
        );
        let joint = apply_change(
            &c,
            &MembershipChange::add_voter(NodeId(4)).with_transition(Transition::Joint),
        )
        .unwrap();
        assert_eq!(
            apply_change(&joint, &MembershipChange::add_voter(NodeId(7))).unwrap_err(),
            MembershipError::AlreadyJoint
        );
        assert_eq!(leave_joint(&c).unwrap_err(), MembershipError::NotJoint);
    }

    #[test]
    fn removing_a_learner_keeps_the_others() {
        let c = conf(&[1, 2, 3], &[4, 5]);
        let n = apply_change(&c, &MembershipChange::remove(NodeId(4))).unwrap();
        assert_eq!(n, conf(&[1, 2, 3], &[5]));
    }

    #[test]
    fn membership_predicates_name_each_role() {
        let c = ConfState {
            voters: ids(&[1, 2]),
            voters_outgoing: ids(&[1, 3]),
            learners: ids(&[4]),
            learners_next: ids(&[3]),
            auto_leave: false,
        };
        assert!(c.is_joint());
        assert!(c.is_voter(NodeId(3)) && !c.is_voter(NodeId(4)));
        assert!(c.is_learner(NodeId(4)), "a learner");
        assert!(
            c.is_learner(NodeId(3)),
            "a learner once the joint config is left"
        );
        assert!(!c.is_learner(NodeId(1)) && !c.is_learner(NodeId(9)));
        assert!(c.contains(NodeId(4)) && c.contains(NodeId(3)) && !c.contains(NodeId(9)));
        let members: Vec<NodeId> = c.members().collect();
        assert_eq!(members, ids(&[1, 2, 3, 4]));
    }

    #[test]
    fn promoting_a_learner_makes_it_a_voter_only() {
        let c = conf(&[1, 2, 3], &[4]);
        let n = apply_change(&c, &MembershipChange::add_voter(NodeId(4))).unwrap();
        assert_eq!(n, conf(&[1, 2, 3, 4], &[]));
    }

    #[test]
    fn conf_state_invariants_are_checked() {
        assert_eq!(conf(&[], &[]).check(), Err(MembershipError::NoVoters));
        assert_eq!(
            conf(&[1, 1], &[]).check(),
            Err(MembershipError::DuplicateNode(NodeId(1)))
        );
        assert_eq!(
            conf(&[1, 2], &[2]).check(),
            Err(MembershipError::VoterAndLearner(NodeId(2)))
        );
        assert_eq!(conf(&[0], &[]).check(), Err(MembershipError::ZeroId));
        let mut c = conf(&[1, 2], &[]);
        c.auto_leave = true;
        assert_eq!(c.check(), Err(MembershipError::Inconsistent));
        let mut c = conf(&[1, 2], &[]);
        c.learners_next = ids(&[3]);
        assert_eq!(c.check(), Err(MembershipError::Inconsistent));
    }

    #[test]
    fn an_entry_round_trips_and_bad_bytes_are_refused() {
        let e = MembershipEntry {
            change: Some(
                MembershipChange::add_voter(NodeId(4))
                    .with_context(Bytes::from_static(b"10.0.0.4:7000")),
            ),
            conf: conf(&[1, 2, 3, 4], &[]),
        };
        let bytes = e.encode();
        assert_eq!(MembershipEntry::decode(&bytes).unwrap(), e);
        assert_eq!(MembershipEntry::decode(&[]), Err(DecodeError::Truncated));
        assert!(matches!(
            MembershipEntry::decode(&[9, 0]),
            Err(DecodeError::Version { found: 9, .. })
        ));
        let mut long = bytes.to_vec();
        long.push(0);
        assert_eq!(
            MembershipEntry::decode(&long),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
        let bad = MembershipEntry {
            change: None,
            conf: conf(&[1, 1], &[]),
        }
        .encode();
        assert_eq!(MembershipEntry::decode(&bad), Err(DecodeError::Malformed));
        for cut in 0..bytes.len() {
            assert!(MembershipEntry::decode(&bytes[..cut]).is_err());
        }
    }

    /// The bytes of one entry, pinned: a changed encoding breaks logs already
    /// on disk.
    #[test]
    fn the_entry_encoding_is_stable() {
        let e = MembershipEntry {
            change: Some(
                MembershipChange::new([
                    ConfChange::AddVoter(NodeId(4)),
                    ConfChange::RemoveNode(NodeId(1)),
                ])
                .with_transition(Transition::JointExplicit)
                .with_context(Bytes::from_static(b"x")),
            ),
            conf: ConfState {
                voters: ids(&[2, 3, 4]),
                voters_outgoing: ids(&[1, 2, 3]),
                learners: ids(&[5]),
                learners_next: vec![],
                auto_leave: false,
            },
        };
        assert_eq!(
            &e.encode()[..],
            &[
                1, 1, 2, 0, 4, 2, 1, 2, 1, b'x', 3, 2, 3, 4, 3, 1, 2, 3, 1, 5, 0, 0
            ][..]
        );
    }

    #[test]
    fn the_conf_log_goes_back_on_truncation() {
        let mut l = ConfLog::new(Index(0), conf(&[1, 2, 3], &[]));
        l.push(Index(5), conf(&[1, 2, 3, 4], &[]));
        l.push(Index(9), conf(&[1, 2, 3], &[]));
        assert!(!l.truncate(Index(10)));
        assert!(l.truncate(Index(9)));
        assert_eq!(l.current_index(), Index(5));
        l.compact(Index(6));
        assert_eq!(l.confs.len(), 1);
        assert!(!l.truncate(Index(1)), "the committed configuration stays");
        assert_eq!(l.current(), &conf(&[1, 2, 3, 4], &[]));
        let mut l = ConfLog::new(Index(0), conf(&[1, 2, 3], &[]));
        l.push(Index(5), conf(&[2, 3], &[]));
        assert!(
            l.votes_since(NodeId(1), Index(4)),
            "its removal is not committed"
        );
        assert!(
            !l.votes_since(NodeId(1), Index(5)),
            "its removal is committed"
        );
        assert!(l.votes_since(NodeId(2), Index(5)));
        assert!(!l.votes_since(NodeId(9), Index(0)));
    }

    /// A naive reference: does every majority of `a` meet every majority of
    /// `b`? (Brute force over subsets.)
    fn majorities_meet(a: &[NodeId], b: &[NodeId]) -> bool {
        let subsets = |s: &[NodeId]| -> Vec<Vec<NodeId>> {
            (0u32..1 << s.len())
                .filter(|m| m.count_ones() as usize > s.len() / 2)
                .map(|m| {
                    (0..s.len())
                        .filter(|i| m & (1 << i) != 0)
                        .map(|i| s[i])
                        .collect()
                })
                .collect()
        };
        let (sa, sb) = (subsets(a), subsets(b));
        sa.iter()
            .all(|x| sb.iter().all(|y| x.iter().any(|n| y.contains(n))))
    }

    fn change_strategy() -> impl Strategy<Value = ConfChange> {
        (0u8..3, 1u64..8).prop_map(|(k, id)| match k {
            0 => ConfChange::AddVoter(NodeId(id)),
            1 => ConfChange::AddLearner(NodeId(id)),
            _ => ConfChange::RemoveNode(NodeId(id)),
        })
    }

    proptest! {
        /// Whatever is proposed, an accepted change keeps the invariants, a
        /// simple change keeps every majority of the old configuration
        /// meeting every majority of the new, and a joint one keeps the old
        /// voters as its outgoing half (so each step meets the one before).
        #[test]
        fn accepted_changes_keep_quorums_overlapping(
            voters in proptest::collection::btree_set(1u64..8, 1..6),
            changes in proptest::collection::vec(change_strategy(), 1..4),
            t in 0u8..3,
        ) {
            let cur = ConfState::new(voters.iter().map(|&v| NodeId(v)));
            let transition = [Transition::Auto, Transition::Joint, Transition::JointExplicit][t as usize];
            let ch = MembershipChange::new(changes).with_transition(transition);
            if let Ok(next) = apply_change(&cur, &ch) {
                prop_assert!(next.check().is_ok());
                if next.is_joint() {
                    prop_assert_eq!(&next.voters_outgoing, &cur.voters);
                    let left = leave_joint(&next).unwrap();
                    prop_assert_eq!(&left.voters, &next.voters);
                } else {
                    prop_assert!(majorities_meet(&cur.voters, &next.voters));
                }
                let e = MembershipEntry { change: Some(ch.clone()), conf: next.clone() };
                prop_assert_eq!(MembershipEntry::decode(&e.encode()).unwrap(), e);
            }
        }
    }
}
