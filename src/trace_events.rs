//! The events the `tracing` feature emits, and their fields.
//!
//! zaft has no logger: with the `tracing` feature it emits
//! [`tracing`](https://docs.rs/tracing) events at the decisions an operator
//! asks about, and the host's subscriber decides what to keep (for example
//! `tracing_subscriber::fmt` with `RUST_LOG=zaft=info`). Without the feature
//! the events are not compiled at all.
//!
//! Every event has the target [`TARGET`] (`"zaft"`), is named by its
//! `event` field (the same string is the callsite's
//! [`name`](https://docs.rs/tracing/latest/tracing/struct.Metadata.html#method.name)),
//! and carries these fields:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `event` | str | one of the names below |
//! | `node` | u64 | the id of the node that emits it |
//! | `term` | u64 | its current term (for `term_changed` and `role_changed`: the term it enters) |
//!
//! Node ids, terms and log indexes are `u64`s. `role`, `from_role`, a
//! dropped message's `reason` and a transfer's `outcome` are recorded with
//! `Debug`: the variant name of [`Role`](crate::Role),
//! [`DropReason`](crate::DropReason) or
//! [`TransferOutcome`](crate::TransferOutcome) (`"Leader"`,
//! `"LeaderAlive"`, `"TimedOut"`). Every other `reason` or `kind` is one of the
//! `snake_case` strings listed. A field written `leader?` is left out when
//! there is none. Names and fields are stable: a field may be added, none
//! removed or renamed, within a major version.
//!
//! # Elections and roles
//!
//! | event | level | fields | when |
//! |---|---|---|---|
//! | [`election_started`](ELECTION_STARTED) | INFO | `kind`, `reason`, `election_term`, `last_log_index`, `last_log_term` | a (pre-)vote round starts. `kind`: `"pre_vote"` or `"vote"`; `reason`: `"timeout"` (no leader heard within the election timeout), `"campaign"` (the host asked: `Input::Campaign`), `"transfer"` (the leader handed over with TimeoutNow), `"pre_vote_won"` (the vote that follows a won pre-vote); `election_term`: the term asked for; `last_log_*`: the durable log the request claims |
//! | [`election_won`](ELECTION_WON) | INFO | `kind`, `granted`, `rejected`, `voters` | a majority granted: a won pre-vote is followed by `election_started` with `kind = "vote"`, a won vote by `role_changed` to `Leader`. `granted` includes the node's own vote |
//! | [`election_lost`](ELECTION_LOST) | INFO | `kind`, `reason`, `granted`, `rejected`, `new_term`, `leader?` | a (pre-)candidate gives up. `reason`: `"rejected"` (a majority refused), `"newer_term"` (a message of the newer term `new_term` arrived), `"leader_elected"` (the leader of its term, `leader`, was heard). `granted` and `rejected`: the answers counted so far. A candidate whose timeout fires again emits `election_started` instead |
//! | [`vote_ignored`](VOTE_IGNORED) | INFO | `from`, `kind`, `candidate_term`, `leader?` | leader stickiness: a (pre-)vote request of a newer term is dropped, unanswered, because this node hears a leader (with `check_quorum`, or any pre-vote). `message_dropped` with `LeaderAlive` follows |
//! | [`campaign_refused`](CAMPAIGN_REFUSED) | INFO | `reason`, `leader?` | `Input::Campaign` was refused: `"leader_alive"` (CheckQuorum: the leader is heard), `"recovering"` (the node lost data) or `"not_a_voter"` (a learner, a removed node, or one that has not joined yet) |
//! | [`term_changed`](TERM_CHANGED) | INFO | `from_term` | the node enters a newer term (`term`): it campaigns, or heard of the term |
//! | [`role_changed`](ROLE_CHANGED) | INFO | `role`, `from_role`, `leader?` | the node's role changes (`term` is the term of the new role; `leader` when it becomes a follower of a known leader) |
//! | [`check_quorum_step_down`](CHECK_QUORUM_STEP_DOWN) | WARN | `active`, `voters` | a leader heard from only `active` of `voters` voters (itself included) within an election timeout and steps down; `role_changed` follows |
//!
//! # Replication
//!
//! | event | level | fields | when |
//! |---|---|---|---|
//! | [`message_dropped`](MESSAGE_DROPPED) | DEBUG | `reason` | a message was dropped instead of acted on; `reason` is the [`DropReason`](crate::DropReason), as counted in `Status::dropped` |
//! | [`replication_paused`](REPLICATION_PAUSED) | DEBUG | `peer`, `reason`, `next_index`, `match_index`, `inflight_msgs` | the AppendEntries just sent to `peer` filled its flow-control window, so the leader sends it no more entries until it answers. `reason`: `"probe_outstanding"` (the follower is probed one message at a time), `"inflight_msgs"` or `"inflight_bytes"` (the streaming window, `max_inflight_msgs` or `max_inflight_bytes`, is full) |
//! | [`proposal_refused`](PROPOSAL_REFUSED) | DEBUG | `reason`, `entries`, and by reason `leader?`, `to`, `held_bytes`, `limit_bytes` | a proposal of `entries` commands (from the host, or forwarded by a follower) was refused. `reason`: `"not_leader"` (with the known `leader`, if any), `"leadership_transfer"` (to `to`), `"uncommitted_bytes"` (`held_bytes` of `limit_bytes` are uncommitted), `"empty"` (a forwarded proposal without commands) |
//! | [`follower_behind`](FOLLOWER_BEHIND) | WARN | `peer`, `last_index`, `last_term`, `acked_index` | the leader learns that `peer`'s log went backwards (`AppendResponse::Behind`): it had acknowledged up to `acked_index` and now ends at `last_term@last_index`; the leader probes it from there |
//! | [`log_behind_leader`](LOG_BEHIND_LEADER) | WARN | `leader`, `commit`, `last_index`, `last_term` | a follower's log ends below the commit index its leader says it holds (lost writes, a wiped disk): it answers `AppendResponse::Behind` |
//!
//! # Leadership transfer
//!
//! | event | level | fields | when |
//! |---|---|---|---|
//! | [`transfer_started`](TRANSFER_STARTED) | INFO | `to`, `match_index`, `last_index` | the leader starts handing leadership to `to`, whose log matches up to `match_index` of its `last_index` |
//! | [`transfer_timeout_now_sent`](TRANSFER_TIMEOUT_NOW_SENT) | INFO | `to` | `to` has caught up and is told to campaign at once (TimeoutNow); its `election_started` has `reason = "transfer"` |
//! | [`transfer_ended`](TRANSFER_ENDED) | INFO | `to`, `outcome` | the transfer to `to` is over, as [`Ready::transfer_ended`](crate::Ready::transfer_ended) reports it; `outcome` is the [`TransferOutcome`](crate::TransferOutcome) (`"Succeeded"`, `"TimedOut"`, `"Aborted"`, `"LeadershipLost"`) |
//!
//! # Membership
//!
//! | event | level | fields | when |
//! |---|---|---|---|
//! | [`membership_changed`](MEMBERSHIP_CHANGED) | INFO | `index`, `voters`, `voters_outgoing`, `learners`, `removed` | the configuration in force changed: the entry at `index` reached the log (or a truncation went back to the one at `index`). Counts of voters, outgoing voters (non-zero while joint) and learners; `removed` is true when this node is not a voter of it |
//!
//! # Lost data
//!
//! | event | level | fields | when |
//! |---|---|---|---|
//! | [`recovery_started`](RECOVERY_STARTED) | WARN | `last_index`, `commit` | the node was restored with data lost (`Restored::lost_data`, or a log ending below the commit index): it stays out of elections until it has caught up |
//! | [`recovery_ended`](RECOVERY_ENDED) | INFO | `commit`, `restored_term` | the node durably holds an entry committed in a term newer than `restored_term`: it votes and campaigns again |

/// The target of every event: `"zaft"`.
pub const TARGET: &str = "zaft";

/// `"election_started"`: a pre-vote or vote round starts.
pub const ELECTION_STARTED: &str = "election_started";
/// `"election_won"`: a majority granted a pre-vote or vote round.
pub const ELECTION_WON: &str = "election_won";
/// `"election_lost"`: a pre-candidate or candidate gives up.
pub const ELECTION_LOST: &str = "election_lost";
/// `"vote_ignored"`: a vote request dropped by leader stickiness.
pub const VOTE_IGNORED: &str = "vote_ignored";
/// `"campaign_refused"`: `Input::Campaign` refused.
pub const CAMPAIGN_REFUSED: &str = "campaign_refused";
/// `"term_changed"`: the node enters a newer term.
pub const TERM_CHANGED: &str = "term_changed";
/// `"role_changed"`: the node's role changes.
pub const ROLE_CHANGED: &str = "role_changed";
/// `"check_quorum_step_down"`: a leader cut off from a majority steps down.
pub const CHECK_QUORUM_STEP_DOWN: &str = "check_quorum_step_down";
/// `"message_dropped"`: a message dropped, with its `DropReason`.
pub const MESSAGE_DROPPED: &str = "message_dropped";
/// `"replication_paused"`: a follower's flow-control window is full.
pub const REPLICATION_PAUSED: &str = "replication_paused";
/// `"proposal_refused"`: a proposal refused, with the reason.
pub const PROPOSAL_REFUSED: &str = "proposal_refused";
/// `"follower_behind"`: a follower's log went backwards (leader side).
pub const FOLLOWER_BEHIND: &str = "follower_behind";
/// `"log_behind_leader"`: this follower's log went backwards.
pub const LOG_BEHIND_LEADER: &str = "log_behind_leader";
/// `"transfer_started"`: a leadership transfer starts.
pub const TRANSFER_STARTED: &str = "transfer_started";
/// `"transfer_timeout_now_sent"`: the transfer target is told to campaign.
pub const TRANSFER_TIMEOUT_NOW_SENT: &str = "transfer_timeout_now_sent";
/// `"transfer_ended"`: a leadership transfer is over, with its outcome.
pub const TRANSFER_ENDED: &str = "transfer_ended";
/// `"membership_changed"`: the configuration in force changed.
pub const MEMBERSHIP_CHANGED: &str = "membership_changed";
/// `"recovery_started"`: the node lost data and stays out of elections.
pub const RECOVERY_STARTED: &str = "recovery_started";
/// `"recovery_ended"`: the node has caught up after losing data.
pub const RECOVERY_ENDED: &str = "recovery_ended";

/// Every event with its own fields (beyond `event`, `node` and `term`), in
/// the order of the tables above: for a subscriber or a test that checks
/// what it receives against what is documented.
pub const EVENTS: &[(&str, &[&str])] = &[
    (
        ELECTION_STARTED,
        &[
            "kind",
            "reason",
            "election_term",
            "last_log_index",
            "last_log_term",
        ],
    ),
    (ELECTION_WON, &["kind", "granted", "rejected", "voters"]),
    (
        ELECTION_LOST,
        &[
            "kind", "reason", "granted", "rejected", "new_term", "leader",
        ],
    ),
    (VOTE_IGNORED, &["from", "kind", "candidate_term", "leader"]),
    (CAMPAIGN_REFUSED, &["reason", "leader"]),
    (TERM_CHANGED, &["from_term"]),
    (ROLE_CHANGED, &["role", "from_role", "leader"]),
    (CHECK_QUORUM_STEP_DOWN, &["active", "voters"]),
    (MESSAGE_DROPPED, &["reason"]),
    (
        REPLICATION_PAUSED,
        &[
            "peer",
            "reason",
            "next_index",
            "match_index",
            "inflight_msgs",
        ],
    ),
    (
        PROPOSAL_REFUSED,
        &[
            "reason",
            "entries",
            "leader",
            "to",
            "held_bytes",
            "limit_bytes",
        ],
    ),
    (
        FOLLOWER_BEHIND,
        &["peer", "last_index", "last_term", "acked_index"],
    ),
    (
        LOG_BEHIND_LEADER,
        &["leader", "commit", "last_index", "last_term"],
    ),
    (TRANSFER_STARTED, &["to", "match_index", "last_index"]),
    (TRANSFER_TIMEOUT_NOW_SENT, &["to"]),
    (TRANSFER_ENDED, &["to", "outcome"]),
    (
        MEMBERSHIP_CHANGED,
        &["index", "voters", "voters_outgoing", "learners", "removed"],
    ),
    (RECOVERY_STARTED, &["last_index", "commit"]),
    (RECOVERY_ENDED, &["commit", "restored_term"]),
];
