//! Deliberate protocol bugs, for proving that the simulator finds them.
//!
//! Compiled only with the `sim` feature. A node runs correctly unless
//! [`crate::Node::inject_bug`] is called; each bug is one classic Raft mistake.

/// A classic Raft bug the node can be told to commit.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum Bug {
    /// A vote is sent (and a candidate counts its own) before it is durable.
    VoteNotPersisted,
    /// The leader commits an entry of an earlier term by counting replicas
    /// (the Figure 8 mistake).
    CommitEarlierTermByCount,
    /// A follower truncates its log after the entries of a stale, shorter
    /// AppendEntries even when nothing conflicts.
    TruncateOnStaleAppend,
    /// A vote is granted without the up-to-date check.
    VoteForOlderLog,
    /// On restart, the restored applied index is ignored and entries are
    /// applied again.
    ApplyTwiceAfterRestart,
    /// A leader ignores messages from higher terms instead of stepping down.
    LeaderIgnoresHigherTerm,
    /// A follower adopts the leader's commit index even beyond the entries it
    /// has verified.
    CommitBeyondVerified,
}

impl Bug {
    /// Every bug.
    pub const ALL: [Bug; 7] = [
        Bug::VoteNotPersisted,
        Bug::CommitEarlierTermByCount,
        Bug::TruncateOnStaleAppend,
        Bug::VoteForOlderLog,
        Bug::ApplyTwiceAfterRestart,
        Bug::LeaderIgnoresHigherTerm,
        Bug::CommitBeyondVerified,
    ];
}
