//! Deliberate protocol bugs, for proving that the simulator finds them.
//!
//! The enum exists with the `sim` feature, so that the simulator's options
//! can name a bug; the protocol code can commit one only in a build with
//! `RUSTFLAGS="--cfg zaft_bugs"` (the bug hunts of `tests/bugs.rs`), where
//! `Node::inject_bug` switches it on. Every other build, `--all-features`
//! included, has no injected bug in its protocol code.

/// A classic Raft bug a node built with `--cfg zaft_bugs` can be told to
/// commit, each one a classic Raft mistake.
///
/// Without that cfg, a run that asks for one is refused (see
/// [`Options::bug`](crate::sim::Options::bug)).
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
    /// The leader's lease lasts `election_timeout_ticks_max` ticks instead of
    /// the minimum: followers may vote again before it ends.
    LeaseFromMaxTimeout,
    /// The leader's lease ignores the clock-drift margin.
    LeaseWithoutDriftMargin,
    /// A restarted node grants votes at once instead of waiting an election
    /// timeout: it forgets that it may have promised a leasing leader.
    VoteRightAfterRestart,
    /// A CheckQuorum leader cut off from a majority never steps down.
    CheckQuorumNeverStepsDown,
    /// A term adopted from a higher-term message without a vote is never put
    /// in the Ready's hard state, and messages are not held for it.
    TermNotPersisted,
    /// A node that lost data votes at once instead of first catching up.
    AmnesiacVotes,
    /// While a joint configuration is in force, decisions count only the
    /// incoming voters' majority.
    JointCountsOnlyIncoming,
    /// A new leader proposes a membership change before an entry of its own
    /// term has committed (the 2015 single-server-change bug).
    ChangeBeforeTermCommit,
    /// A leader proposes a membership change while the previous one is
    /// still uncommitted: two single-server changes at once.
    TwoChangesAtOnce,
}

impl Bug {
    /// Every bug.
    pub const ALL: [Bug; 16] = [
        Bug::VoteNotPersisted,
        Bug::CommitEarlierTermByCount,
        Bug::TruncateOnStaleAppend,
        Bug::VoteForOlderLog,
        Bug::ApplyTwiceAfterRestart,
        Bug::LeaderIgnoresHigherTerm,
        Bug::CommitBeyondVerified,
        Bug::LeaseFromMaxTimeout,
        Bug::LeaseWithoutDriftMargin,
        Bug::VoteRightAfterRestart,
        Bug::CheckQuorumNeverStepsDown,
        Bug::TermNotPersisted,
        Bug::AmnesiacVotes,
        Bug::JointCountsOnlyIncoming,
        Bug::ChangeBeforeTermCommit,
        Bug::TwoChangesAtOnce,
    ];
}
