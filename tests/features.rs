//! The production features beyond the paper's §5: PreVote, CheckQuorum,
//! read index and lease reads, leadership transfer, flow control, proposal
//! forwarding and batching. Each test names the behaviour a user relies on.

mod common;

use bytes::Bytes;
use common::*;
use zaft::{Body, Busy, Config, DropReason, Error, Input, Misuse, ReadState, Role};

fn prevote(c: &mut Config) {
    c.pre_vote = true;
}

fn check_quorum(c: &mut Config) {
    c.check_quorum = true;
}

fn reads(c: &Cluster, id: u64) -> Vec<ReadState> {
    c.host(id).reads.clone()
}

fn heartbeats_sent(c: &Cluster, from: u64) -> usize {
    c.count_sent(|m| m.from == nid(from) && is_heartbeat(m))
}

// ---- PreVote (thesis §9.6) -------------------------------------------------

/// §9.6: a pre-candidate asks before it bumps its term, so nothing durable
/// changes until it knows it could win.
#[test]
fn prevote_campaign_changes_neither_term_nor_vote() {
    let mut c = Cluster::with_config(3, prevote);
    c.campaign(1);
    assert_eq!(c.role(1), Role::PreCandidate);
    assert_eq!(c.term(1), 0);
    assert_eq!(c.node(1).status().vote, None);
    let pre_votes: Vec<_> = c
        .net
        .iter()
        .filter(|m| matches!(m.body, Body::PreVote { .. }))
        .collect();
    assert_eq!(pre_votes.len(), 2);
    assert!(pre_votes.iter().all(|m| m.term.get() == 1), "proposed term");
    c.stabilize();
    assert_eq!(c.role(1), Role::Leader);
    assert_eq!(c.term(1), 1, "one real election after the pre-vote");
}

/// §9.6: a node partitioned away keeps failing its pre-votes, so its term
/// stays put, and when it returns the healthy leader keeps leading.
#[test]
fn prevote_partitioned_node_rejoins_without_deposing_the_leader() {
    let mut c = Cluster::with_config(3, prevote);
    c.elect(1);
    c.propose(1, "before");
    c.stabilize();
    let term = c.term(1);
    c.isolate(3);
    c.tick_and_stabilize(100);
    assert_eq!(c.term(3), term, "pre-votes that fail never bump the term");
    assert_ne!(c.role(3), Role::Leader);
    c.heal();
    c.tick_and_stabilize(50);
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.term(1), term, "the leader was not deposed");
    c.propose(1, "after");
    c.tick_and_stabilize(2);
    assert!(c.has_applied(3, "after"), "the rejoined node follows again");
}

/// The same story without PreVote: the returning node's inflated term
/// forces a new election. This is what PreVote prevents.
#[test]
fn without_prevote_a_rejoining_node_forces_an_election() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let term = c.term(1);
    c.isolate(3);
    c.tick_and_stabilize(100);
    assert!(
        c.term(3) > term + 2,
        "isolated candidate keeps bumping its term"
    );
    c.heal();
    c.tick_and_stabilize(50);
    assert!(c.term(1) > term, "the old leader had to step down");
}

/// §9.6: a node that hears from a leader refuses pre-votes.
#[test]
fn prevote_is_refused_while_a_leader_is_heard() {
    let mut c = Cluster::with_config(3, prevote);
    c.elect(1);
    let before = c.node(2).status().dropped.get(DropReason::LeaderAlive);
    let last_log = c.node(3).status().last_log;
    let term = c.term(3) + 1;
    c.inject(msg(3, 2, term, Body::PreVote { last_log }));
    c.stabilize();
    let after = c.node(2).status().dropped.get(DropReason::LeaderAlive);
    assert_eq!(after, before + 1);
    assert_eq!(c.term(2), term - 1);
}

// ---- CheckQuorum -------------------------------------------------------------

/// A leader that has not heard from a majority within an election timeout
/// steps down, so a partitioned leader stops taking proposals.
#[test]
fn check_quorum_leader_cut_off_from_majority_steps_down() {
    let mut c = Cluster::with_config(3, check_quorum);
    c.elect(1);
    c.isolate(1);
    for _ in 0..25 {
        c.tick(1);
        c.stabilize();
    }
    assert_eq!(c.role(1), Role::Follower);
    assert!(matches!(
        c.try_step(1, Input::Propose(Bytes::from_static(b"x"))),
        Err(Error::NotLeader { .. })
    ));
}

/// With a majority answering, CheckQuorum never removes a healthy leader.
#[test]
fn check_quorum_leader_with_majority_stays() {
    let mut c = Cluster::with_config(3, check_quorum);
    c.elect(1);
    c.isolate(3);
    c.tick_and_stabilize(100);
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.term(1), 1);
}

/// Leader stickiness: a follower that hears from its leader ignores a vote
/// request from a higher term instead of adopting that term.
#[test]
fn check_quorum_follower_ignores_vote_requests_while_leader_is_alive() {
    let mut c = Cluster::with_config(3, check_quorum);
    c.elect(1);
    let last_log = c.node(3).status().last_log;
    c.inject(request_vote(3, 2, 5, last_log));
    c.stabilize();
    assert_eq!(c.term(2), 1, "the request's term was not adopted");
    assert_eq!(c.node(2).status().dropped.get(DropReason::LeaderAlive), 1);
    assert_eq!(c.leader(), Some(1));
}

// ---- Read index and leases (thesis §6.4) ----------------------------------------

/// A read on the leader is answered only after a heartbeat round started
/// after the read is acknowledged by a majority.
#[test]
fn read_index_waits_for_a_majority_heartbeat_round() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "x");
    c.stabilize();
    let commit = c.node(1).status().commit;
    let hb = heartbeats_sent(&c, 1);
    c.step(1, Input::ReadIndex(7));
    assert!(reads(&c, 1).is_empty(), "not before the round is answered");
    assert_eq!(
        heartbeats_sent(&c, 1),
        hb + 2,
        "one round to both followers"
    );
    c.deliver_to(2);
    c.deliver_to(1);
    assert_eq!(
        reads(&c, 1),
        [ReadState {
            ctx: 7,
            index: Some(commit)
        }],
        "one follower plus the leader is a majority of three"
    );
}

/// §8 / thesis §6.4: a new leader does not know what its predecessor
/// committed until it commits an entry of its own term.
#[test]
fn new_leader_serves_reads_only_after_committing_its_own_term() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "x");
    c.stabilize();
    c.campaign(2);
    // Votes travel, but the new leader's first AppendEntries do not.
    c.deliver_where(|m| !is_append(m));
    c.deliver_where(|m| !is_append(m));
    assert_eq!(c.role(2), Role::Leader);
    c.step(2, Input::ReadIndex(1));
    c.deliver_where(|m| !is_append(m));
    c.deliver_where(|m| !is_append(m));
    assert!(reads(&c, 2).is_empty(), "no reads before the no-op commits");
    c.stabilize();
    c.tick_and_stabilize(1);
    let r = reads(&c, 2);
    assert_eq!(r.len(), 1);
    let noop = c.node(2).status().last_log.index;
    assert!(
        r[0].index.unwrap() >= noop,
        "the read index covers the no-op"
    );
}

/// Reads on a follower are forwarded; the follower gets the leader's index.
#[test]
fn follower_read_is_forwarded_to_the_leader() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "x");
    c.stabilize();
    let commit = c.node(1).status().commit;
    c.step(3, Input::ReadIndex(42));
    c.stabilize();
    assert_eq!(
        reads(&c, 3),
        [ReadState {
            ctx: 42,
            index: Some(commit)
        }]
    );
}

/// A leader cut off from the majority, which meanwhile elected a new leader
/// and committed a write, never answers a read with its stale index; the
/// read fails once it learns it was deposed.
#[test]
fn deposed_leader_cannot_serve_a_stale_read() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "old");
    c.stabilize();
    c.partition(&[&[1], &[2, 3]]);
    c.elect(2);
    c.propose(2, "new");
    c.stabilize();
    assert!(c.has_applied(3, "new"));
    assert_eq!(c.role(1), Role::Leader, "1 does not know yet");
    c.step(1, Input::ReadIndex(9));
    c.tick_and_stabilize(5);
    assert!(reads(&c, 1).is_empty(), "no majority answers 1's rounds");
    c.heal();
    c.tick_and_stabilize(3);
    assert_ne!(c.role(1), Role::Leader);
    assert_eq!(
        reads(&c, 1),
        [ReadState {
            ctx: 9,
            index: None
        }]
    );
}

fn lease(c: &mut Config) {
    c.check_quorum = true;
    c.lease_reads = true;
}

/// With a lease, a read is answered at once, without a heartbeat round.
#[test]
fn lease_read_is_answered_without_a_round() {
    let mut c = Cluster::with_config(3, lease);
    c.elect(1);
    c.tick_and_stabilize(1); // a heartbeat round answered: the lease starts
    let hb = heartbeats_sent(&c, 1);
    c.step(1, Input::ReadIndex(5));
    assert_eq!(reads(&c, 1).len(), 1);
    assert_eq!(heartbeats_sent(&c, 1), hb, "no round was needed");
}

/// The lease runs out when no majority answers, and reads fall back to
/// rounds (which cannot complete while cut off).
#[test]
fn lease_expires_when_the_leader_is_cut_off() {
    let mut c = Cluster::with_config(3, lease);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.isolate(1);
    // The lease is election_timeout_ticks_min - margin = 8 ticks long.
    for _ in 0..8 {
        c.tick(1);
        c.stabilize();
    }
    c.step(1, Input::ReadIndex(5));
    assert!(reads(&c, 1).is_empty(), "expired lease: needs a round");
}

/// A leader that told a follower to campaign (leadership transfer) may be
/// deposed at any moment by an election that ignores stickiness: from then on
/// it confirms every read with a round.
#[test]
fn lease_is_forfeited_once_a_transfer_sends_timeout_now() {
    let mut c = Cluster::with_config(3, lease);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.step(1, Input::TransferLeader(nid(2)));
    // The TimeoutNow is still in flight.
    let hb = heartbeats_sent(&c, 1);
    c.step(1, Input::ReadIndex(5));
    assert!(reads(&c, 1).is_empty(), "no lease read after TimeoutNow");
    assert_eq!(heartbeats_sent(&c, 1), hb + 2);
}

/// Reads arriving while a round is in flight share the next round instead
/// of each starting one.
#[test]
fn reads_coalesce_into_heartbeat_rounds() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let hb = heartbeats_sent(&c, 1);
    for ctx in 0..10 {
        c.step(1, Input::ReadIndex(ctx));
    }
    assert_eq!(
        heartbeats_sent(&c, 1),
        hb + 2,
        "one round for the first read"
    );
    c.stabilize();
    assert_eq!(
        heartbeats_sent(&c, 1),
        hb + 4,
        "one more round for the other nine"
    );
    let got: Vec<u64> = reads(&c, 1).iter().map(|r| r.ctx).collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

/// One node is its own majority: reads are answered at once.
#[test]
fn single_node_read_is_answered_at_once() {
    let mut c = Cluster::new(1);
    c.elect(1);
    c.step(1, Input::ReadIndex(3));
    assert_eq!(reads(&c, 1).len(), 1);
}

/// The queue of waiting reads is bounded; past it reads get a typed error.
#[test]
fn pending_reads_are_bounded() {
    let mut c = Cluster::with_config(3, |c| c.max_pending_reads = 2);
    c.elect(1);
    c.isolate(1);
    c.step(1, Input::ReadIndex(1));
    c.step(1, Input::ReadIndex(2));
    assert_eq!(
        c.try_step(1, Input::ReadIndex(3)),
        Err(Error::Busy(Busy::PendingReads { limit: 2 }))
    );
}

// ---- Leadership transfer (thesis §3.10) -----------------------------------------

/// The leader hands over to an up-to-date follower, which wins at once.
#[test]
fn transfer_leader_to_an_up_to_date_follower() {
    let mut c = Cluster::with_config(3, check_quorum);
    c.elect(1);
    c.propose(1, "x");
    c.stabilize();
    c.step(1, Input::TransferLeader(nid(2)));
    c.stabilize();
    assert_eq!(c.leader(), Some(2), "stickiness does not block a transfer");
    assert_eq!(c.term(2), 2);
    c.propose(2, "y");
    c.stabilize();
    assert!(c.has_applied(1, "y"));
}

/// A lagging target is first brought up to date, then told to campaign.
#[test]
fn transfer_catches_the_target_up_first() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.cut(1, 3);
    for i in 0..5 {
        c.propose(1, format!("w{i}"));
    }
    c.stabilize();
    c.heal();
    c.step(1, Input::TransferLeader(nid(3)));
    c.tick_and_stabilize(3);
    assert_eq!(c.leader(), Some(3));
    assert!(c.has_applied(3, "w4"), "the new leader has every entry");
}

/// While a transfer runs the leader refuses proposals; after an election
/// timeout without success it gives up and takes them again.
#[test]
fn transfer_refuses_proposals_then_aborts_after_a_timeout() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.propose(1, "x"); // 3 falls behind, so the transfer must wait
    c.stabilize();
    c.step(1, Input::TransferLeader(nid(3)));
    assert_eq!(c.node(1).transferring_to(), Some(nid(3)));
    assert_eq!(
        c.try_propose(1, "y").unwrap_err(),
        Error::Busy(Busy::LeadershipTransfer { to: nid(3) })
    );
    for _ in 0..10 {
        c.tick(1);
        c.stabilize();
    }
    assert_eq!(c.node(1).transferring_to(), None);
    c.propose(1, "z");
}

/// Transfer to a node outside the cluster is the caller's error.
#[test]
fn transfer_to_an_unknown_node_is_an_error() {
    let mut c = Cluster::new(3);
    c.elect(1);
    assert_eq!(
        c.try_step(1, Input::TransferLeader(nid(9))),
        Err(Error::Misuse(Misuse::TransferToNonVoter(nid(9))))
    );
}

// ---- Flow control ---------------------------------------------------------------

/// Opens the streaming window to follower 2: a few acknowledged appends
/// (streaming starts with one message in flight and doubles per
/// acknowledgement).
fn open_window(c: &mut Cluster) {
    for i in 0..10 {
        c.propose(1, format!("warm{i}"));
        c.stabilize();
    }
}

/// Streaming to a follower stops at the inflight window until it answers.
#[test]
fn inflight_window_bounds_unacknowledged_appends() {
    let mut c = Cluster::with_config(3, |c| c.max_inflight_msgs = 2);
    c.elect(1);
    open_window(&mut c);
    let before = c.count_sent(|m| m.to == nid(2) && is_append(m));
    for i in 0..10 {
        c.propose(1, format!("p{i}"));
        // Follower 2 receives nothing, so nothing is acknowledged.
        c.drop_where(|m| m.to == nid(2));
    }
    let sent = c.count_sent(|m| m.to == nid(2) && is_append(m)) - before;
    assert_eq!(sent, 2, "the window holds two messages");
}

/// Each time streaming restarts after a probe, the window is half what it
/// was: answers to an earlier stream, reordered or duplicated, that flip a
/// follower between probing and streaming set off ever smaller bursts (the
/// message storm the simulator found with a new member catching up over a
/// reordering network, a full window per flip).
#[test]
fn streaming_restarts_with_half_the_window_after_a_probe() {
    // One entry per message, four in flight at most: the window was halved
    // once when streaming first started (to 2) and is halved again by the
    // probe below (to 1); without halving, the probe's answer would send
    // four messages at once.
    let mut c = Cluster::with_config(3, |c| {
        c.max_entries_bytes_per_msg = 1;
        c.max_inflight_msgs = 4;
    });
    c.elect(1);
    c.isolate(2);
    for i in 0..10 {
        c.propose(1, format!("p{i}"));
    }
    c.stabilize();
    c.heal();
    c.drop_all();
    // A heartbeat answer makes the leader send what it thinks comes next;
    // node 2 rejects it, the leader probes, and the probe's answer starts a
    // new stream.
    c.tick(1);
    c.drop_where(|m| m.to == nid(3));
    c.deliver_where(|m| m.to == nid(2));
    c.deliver_where(|m| m.from == nid(2));
    c.deliver_where(|m| m.to == nid(2) && is_append(m));
    c.deliver_where(|m| m.from == nid(2));
    assert_eq!(
        c.net.iter().filter(|m| m.to == nid(2)).count(),
        1,
        "one probe"
    );
    c.deliver_where(|m| m.to == nid(2) && is_append(m));
    let before = c.count_sent(|m| m.to == nid(2) && is_append(m));
    c.deliver_where(|m| m.from == nid(2));
    let burst = c.count_sent(|m| m.to == nid(2) && is_append(m)) - before;
    assert_eq!(
        burst, 1,
        "one message after the probe's answer, not a window"
    );
}

/// The window is also bounded in bytes.
#[test]
fn inflight_window_bounds_bytes() {
    let mut c = Cluster::with_config(3, |c| c.max_inflight_bytes = 2000);
    c.elect(1);
    open_window(&mut c);
    let before = c.count_sent(|m| m.to == nid(2) && is_append(m));
    for _ in 0..10 {
        c.propose(1, vec![0u8; 1000]);
        c.drop_where(|m| m.to == nid(2));
    }
    let sent = c.count_sent(|m| m.to == nid(2) && is_append(m)) - before;
    assert_eq!(sent, 2, "two 1 KB messages fill a 2000-byte window");
}

/// Past the uncommitted-bytes budget a leader refuses proposals with a
/// typed error, and accepts them again once commitment catches up.
#[test]
fn uncommitted_budget_applies_backpressure() {
    let mut c = Cluster::with_config(3, |c| c.max_uncommitted_bytes = 1000);
    c.elect(1);
    c.partition(&[&[1], &[2, 3]]);
    let mut accepted = 0;
    let err = loop {
        match c.try_propose(1, vec![0u8; 100]) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "no backpressure");
    };
    assert!(matches!(
        err,
        Error::Busy(Busy::UncommittedBytes { limit: 1000, .. })
    ));
    assert_eq!(accepted, 8, "eight 124-byte entries fit in 1000 bytes");
    c.heal();
    c.tick_and_stabilize(2);
    c.propose(1, vec![0u8; 100]);
}

/// A Ready hands out at most `max_committed_bytes_per_ready` of committed
/// entries; the rest follow in later Readies, in order.
#[test]
fn committed_entries_are_split_across_readies() {
    let mut c = Cluster::with_config(3, |c| c.max_committed_bytes_per_ready = 300);
    c.elect(1);
    let batch: Vec<Bytes> = (0..10).map(|_| Bytes::from(vec![1u8; 100])).collect();
    c.step(1, Input::ProposeBatch(batch));
    c.stabilize();
    c.tick_and_stabilize(1);
    assert_eq!(c.host(2).applied_data().len(), 10);
    assert!(c.host(2).readies > 4, "the batch took several Readies");
}

/// An AppendEntries carries at most `max_entries_bytes_per_msg` of entries.
#[test]
fn appends_are_split_by_max_message_size() {
    let mut c = Cluster::with_config(3, |c| c.max_entries_bytes_per_msg = 500);
    c.elect(1);
    let batch: Vec<Bytes> = (0..10).map(|_| Bytes::from(vec![1u8; 200])).collect();
    c.step(1, Input::ProposeBatch(batch));
    c.stabilize();
    let biggest = c
        .sent
        .iter()
        .filter(|m| is_append(m))
        .map(|m| append_entries(m).len())
        .max();
    assert_eq!(
        biggest,
        Some(2),
        "two 224-byte entries per 500-byte message"
    );
    assert_eq!(c.host(3).applied_data().len(), 10);
}

// ---- Forwarding and batching ----------------------------------------------------------

/// A follower forwards proposals to the leader it knows.
#[test]
fn follower_forwards_proposals_to_the_leader() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.step(2, Input::Propose(Bytes::from_static(b"via 2")));
    c.stabilize();
    c.tick_and_stabilize(1);
    for id in 1..=3 {
        assert!(c.has_applied(id, "via 2"), "node {id}");
    }
}

/// With forwarding off a follower answers with who leads.
#[test]
fn without_forwarding_a_follower_names_the_leader() {
    let mut c = Cluster::with_config(3, |c| c.forward_proposals = false);
    c.elect(1);
    assert_eq!(
        c.try_step(2, Input::Propose(Bytes::from_static(b"x"))),
        Err(Error::NotLeader {
            leader: Some(nid(1))
        })
    );
}

/// Many proposals in one step become one AppendEntries per follower.
#[test]
fn a_proposal_batch_is_one_append_per_follower() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let before = c.count_sent(|m| m.from == nid(1) && is_append(m));
    let batch: Vec<Bytes> = (0..100).map(|i| Bytes::from(format!("b{i}"))).collect();
    c.step(1, Input::ProposeBatch(batch));
    let after = c.count_sent(|m| m.from == nid(1) && is_append(m));
    assert_eq!(after - before, 2);
    let p = *c.host(1).proposed.last().unwrap();
    assert_eq!(p.last.get() - p.first.get(), 99);
}

/// A new commit index reaches caught-up followers in a one-way `Commit`:
/// a committed proposal costs six messages in a cluster of three (an append
/// and its ack per follower, then one notice each), and every node applies.
#[test]
fn commit_notices_are_one_way() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    let before = c.sent.len();
    c.propose(1, "x");
    c.stabilize();
    let sent: Vec<_> = c.sent[before..].iter().map(|m| &m.body).collect();
    let notices = sent
        .iter()
        .filter(|b| matches!(b, Body::Commit { .. }))
        .count();
    assert_eq!(notices, 2, "{sent:?}");
    assert_eq!(sent.len(), 6, "{sent:?}");
    for id in 1..=3 {
        assert!(c.has_applied(id, "x"), "node {id}");
    }
}

/// A commit notice never claims more than the follower is known to hold: a
/// follower whose last entries are still in flight hears of the commit only
/// when it acknowledges them.
#[test]
fn commit_notice_waits_for_the_followers_ack() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.propose(1, "x");
    // Follower 2 acknowledges; follower 3's copy is still in flight.
    c.deliver_to(2);
    c.deliver_to(1);
    let to_3: Vec<_> = c
        .net
        .iter()
        .filter(|m| m.to == nid(3) && matches!(m.body, Body::Commit { .. }))
        .collect();
    assert!(to_3.is_empty(), "{to_3:?}");
    c.stabilize();
    assert!(c.has_applied(3, "x"));
}

/// Recycling a handled Ready only lends its memory back: a cluster whose
/// hosts recycle every Ready hands out exactly what one whose hosts do not
/// hands out, part for part (entries, hard state, messages, committed
/// entries, proposals, lost proposals, read states).
#[test]
fn recycled_readies_change_nothing_but_buffers() {
    use std::collections::VecDeque;
    use zaft::{Node, Ready, Restored};
    fn run(recycle: bool) -> Vec<String> {
        let ids = [nid(1), nid(2), nid(3)];
        let mut nodes: Vec<Node> = ids
            .iter()
            .map(|&id| Node::new(Config::new(id, ids), Restored::default()).unwrap())
            .collect();
        let mut seen = Vec::new();
        let mut net = VecDeque::new();
        let mut handle = |node: &mut Node, mut ready: Ready, net: &mut VecDeque<_>| loop {
            seen.push(format!(
                "{} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                node.id(),
                ready.entries(),
                ready.hard_state(),
                ready.messages(),
                ready.committed(),
                ready.proposed(),
                ready.lost(),
                ready.read_states()
            ));
            // Every other Ready, leave the messages in it: recycling must
            // drop what the host did not take.
            if seen.len() % 2 == 0 {
                net.extend(ready.drain_messages());
            } else {
                net.extend(ready.messages().iter().cloned());
            }
            assert!(seen.len() < 10_000, "advance never comes back empty");
            let id = ready.id();
            if recycle {
                node.recycle(ready);
            }
            ready = node.advance(id).unwrap();
            if ready.is_empty() {
                break;
            }
        };
        let r = nodes[0].step(Input::Campaign).unwrap();
        handle(&mut nodes[0], r, &mut net);
        while !nodes[0].is_leader() {
            let m = net.pop_front().expect("the election goes on");
            let n = m.to.get() as usize - 1;
            let r = nodes[n].step(Input::Message(m)).unwrap();
            handle(&mut nodes[n], r, &mut net);
        }
        for i in 0..30u8 {
            let input = match i % 3 {
                0 => Input::Propose(Bytes::from(vec![i; 3])),
                1 => Input::ReadIndex(i as u64),
                _ => Input::ProposeBatch(vec![Bytes::from(vec![i; 2]); 2]),
            };
            let r = nodes[0].step(input).unwrap();
            handle(&mut nodes[0], r, &mut net);
            // Deliver a few messages each time, so Readies overlap.
            for _ in 0..4 {
                if let Some(m) = net.pop_front() {
                    let n = m.to.get() as usize - 1;
                    let r = nodes[n].step(Input::Message(m)).unwrap();
                    handle(&mut nodes[n], r, &mut net);
                }
            }
        }
        while let Some(m) = net.pop_front() {
            let n = m.to.get() as usize - 1;
            let r = nodes[n].step(Input::Message(m)).unwrap();
            handle(&mut nodes[n], r, &mut net);
        }
        seen
    }
    let plain = run(false);
    let applied = plain.iter().filter(|s| s.contains("data: b\"")).count();
    assert!(applied > 0 && plain.iter().any(|s| s.contains("ReadState")));
    assert_eq!(run(true), plain);
}
