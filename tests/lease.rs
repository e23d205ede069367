//! Lease reads stay linearizable (thesis §6.4): the three ways a lease once
//! outlived its promise, each as a regression test named after it, and the
//! rules that close every path by which a new leader could be elected while
//! an old lease is alive.
//!
//! A lease holds `election_timeout_ticks_min - lease_drift_margin_ticks`
//! ticks from the sending of a heartbeat round a majority answered. It is
//! safe because each follower that answered keeps refusing votes for a full
//! minimum election timeout of its own ticks after it heard the leader
//! (CheckQuorum's stickiness). Anything that lets such a follower vote
//! sooner, or lets the leader's clock fall behind real time, breaks it.

mod common;

use common::*;
use zaft::{Body, Busy, Config, DropReason, Error, Index, Input, Node, ReadState, Restored, Role};

fn lease(c: &mut Config) {
    c.check_quorum = true;
    c.lease_reads = true;
}

fn reads(c: &Cluster, id: u64) -> Vec<ReadState> {
    c.host(id).reads.clone()
}

/// The highest commit index any running node knows.
fn max_commit(c: &Cluster) -> Index {
    c.running()
        .into_iter()
        .map(|id| c.node(id).status().commit)
        .max()
        .unwrap_or(Index(0))
}

/// A three-node cluster with leases, node 1 leading with "x" committed and
/// a heartbeat round answered.
fn leased(tweak: impl Fn(&mut Config)) -> Cluster {
    let mut c = Cluster::with_config(3, |cfg| {
        lease(cfg);
        tweak(cfg);
    });
    c.elect(1);
    c.propose(1, "x");
    c.stabilize();
    c.tick_and_stabilize(1);
    c
}

// ---- the three reproductions -------------------------------------------------

/// Reproduction 1, "a follower restarts": node 1 leads, node 3 is cut off from
/// it, node 2 alone confirms node 1's round (so node 1's lease holds), then
/// node 2 reboots and comes back knowing no leader. It must not vote for node
/// 3 before a full election timeout has passed since it started: it may have
/// promised node 1 (and here it did).
#[test]
fn repro1_a_restarted_follower_does_not_vote_while_the_lease_it_confirmed_may_hold() {
    let mut c = leased(|_| {});
    c.cut(1, 3);
    c.tick(1);
    c.stabilize(); // a round answered by node 2 only
    c.reboot(2);
    let dropped = c.node(2).status().dropped.get(DropReason::LeaderAlive);
    // Node 3 hears nothing from node 1 and campaigns, again and again.
    for _ in 0..25 {
        c.tick(3);
        c.stabilize();
    }
    assert_ne!(
        c.role(3),
        Role::Leader,
        "node 2 voted during its first timeout"
    );
    assert!(c.node(2).status().dropped.get(DropReason::LeaderAlive) > dropped);
    c.step(1, Input::ReadIndex(7));
    let r = reads(&c, 1);
    assert_eq!(r.len(), 1, "node 1's lease still holds");
    assert!(r[0].index.unwrap() >= max_commit(&c), "a stale lease read");

    // Node 2's own timeout runs out only as node 1's lease does (same
    // clock rate): isolated, node 1 steps down and the others elect.
    c.isolate(1);
    c.tick_and_stabilize(45);
    assert_ne!(c.role(1), Role::Leader, "CheckQuorum steps it down");
    assert!(matches!(c.leader(), Some(2) | Some(3)));
}

/// Reproduction 2, "a host-forced campaign": with PreVote, node 3 (cut off
/// from node 1) times out into pre-candidacy; node 1 confirms a round with
/// node 2; node 2's host asks for an election. Refused: node 2 still hears
/// node 1, whose lease counts on it.
#[test]
fn repro2_a_forced_campaign_is_refused_while_the_leader_is_heard() {
    let mut c = leased(|cfg| cfg.pre_vote = true);
    c.cut(1, 3);
    for _ in 0..25 {
        c.tick(3);
        c.stabilize();
    }
    assert_eq!(c.role(3), Role::PreCandidate);
    c.tick(1);
    c.stabilize(); // node 2 confirms a round
    let err = c.try_step(2, Input::Campaign).unwrap_err();
    assert_eq!(
        err,
        Error::Busy(Busy::LeaderAlive {
            leader: Some(nid(1))
        })
    );
    c.stabilize();
    assert_eq!(c.leader(), Some(1));
    c.step(1, Input::ReadIndex(1));
    let r = reads(&c, 1);
    assert_eq!(r.len(), 1);
    assert!(r[0].index.unwrap() >= max_commit(&c));

    // Moving leadership on purpose goes through the leader, which gives up
    // its lease before the target may campaign.
    c.heal();
    c.step(1, Input::TransferLeader(nid(2)));
    c.stabilize();
    assert_eq!(c.leader(), Some(2));
}

/// Node 1 leads with a lease; its process stops (it sends and hears
/// nothing) for 30 ticks while the others elect a new leader and commit
/// "y"; then its links work again, before its host has delivered anything.
fn paused_leader_while_the_others_commit() -> Cluster {
    let mut c = leased(|_| {});
    c.isolate(1);
    for _ in 0..30 {
        c.tick(2);
        c.tick(3);
        c.stabilize();
    }
    let new = c.leader_other_than(1);
    c.propose(new, "y");
    c.stabilize();
    c.heal();
    c
}

/// Reproduction 3, "the leader's process is paused": the others elect a new
/// leader and commit "y" while node 1 is stopped. Its host then delivers the
/// ticks it missed, as the docs require, before the read: no lease is left.
#[test]
fn repro3_a_paused_leader_that_catches_up_its_ticks_serves_no_stale_lease_read() {
    let mut c = paused_leader_while_the_others_commit();
    c.step(1, Input::Ticks(30));
    // Two CheckQuorum rounds without a majority: it is no longer leader.
    assert_eq!(
        c.try_step(1, Input::ReadIndex(3)),
        Err(Error::NotLeader { leader: None })
    );
    for r in reads(&c, 1) {
        assert!(r.index.is_none_or(|i| i >= max_commit(&c)), "stale: {r:?}");
    }
    c.stabilize();
    for r in reads(&c, 1) {
        assert!(r.index.is_none_or(|i| i >= max_commit(&c)), "stale: {r:?}");
    }
}

/// Why the docs insist: a host that delivers one tick after a stall instead
/// of the ticks that passed lets the lease outlive real time, and the old
/// leader answers from a lease that no longer protects it.
#[test]
fn a_host_that_skips_missed_ticks_gets_a_stale_lease_read() {
    let mut c = paused_leader_while_the_others_commit();
    c.tick(1); // the host's mistake: one tick for the whole pause
    c.step(1, Input::ReadIndex(3));
    let r = reads(&c, 1);
    assert_eq!(r.len(), 1);
    assert!(r[0].index.unwrap() < max_commit(&c), "the hazard is real");
}

// ---- time ----------------------------------------------------------------------

/// `Ticks(n)` is `n` ticks in one step: a follower times out and campaigns,
/// an isolated CheckQuorum leader steps down, zero ticks change nothing.
#[test]
fn ticks_n_moves_time_like_n_ticks() {
    let mut n = Node::new(
        Config::new(nid(1), [nid(1), nid(2), nid(3)]),
        Restored::default(),
    )
    .unwrap();
    let r = n.step(Input::Ticks(0)).unwrap();
    assert!(r.is_empty());
    let r = n.step(Input::Ticks(20)).unwrap();
    assert_eq!(n.role(), Role::Candidate, "the timeout is at most 20 ticks");
    let _ = n.advance(r.id()).unwrap();

    let mut c = leased(|_| {});
    c.isolate(1);
    c.step(1, Input::Ticks(5));
    assert_eq!(c.role(1), Role::Leader);
    c.step(1, Input::Ticks(16));
    assert_eq!(c.role(1), Role::Follower, "two CheckQuorum rounds passed");
    // A stall far longer than any timeout costs a bounded amount of work.
    c.step(2, Input::Ticks(u32::MAX));
    assert!(c.net.len() < 200, "{} messages", c.net.len());
}

/// The lease is counted from the round's start: after a long run, a leader
/// cut off for a lease's length answers reads only with a round.
#[test]
fn lease_ends_a_lease_length_after_its_round_started_however_long_the_leader_ran() {
    let mut c = leased(|_| {});
    c.tick_and_stabilize(200);
    c.isolate(1);
    for _ in 0..8 {
        c.tick(1);
    }
    c.step(1, Input::ReadIndex(5));
    assert!(reads(&c, 1).is_empty(), "an expired lease served a read");
}

/// §6.4, thesis: the lease is `election_timeout_ticks_min` minus the drift
/// margin, and no longer: seven ticks after the round it holds, eight ticks
/// after it has ended.
#[test]
fn lease_lasts_the_minimum_election_timeout_less_the_drift_margin() {
    let mut c = leased(|_| {});
    c.isolate(1);
    for _ in 0..7 {
        c.tick(1);
    }
    c.step(1, Input::ReadIndex(1));
    assert_eq!(reads(&c, 1).len(), 1, "seven ticks in: still leased");
    c.tick(1);
    c.step(1, Input::ReadIndex(2));
    assert_eq!(reads(&c, 1).len(), 1, "eight ticks in: expired");
}

// ---- the other paths to a new leader --------------------------------------------

/// A transfer that is aborted (by transferring to oneself) does not give the
/// lease back: the TimeoutNow may still reach its target, whose election
/// ignores stickiness.
#[test]
fn an_aborted_transfer_keeps_the_lease_forfeited() {
    let mut c = leased(|_| {});
    c.step(1, Input::TransferLeader(nid(2)));
    let timeout_now: Vec<_> = c.take_where(|m| matches!(m.body, Body::TimeoutNow));
    assert_eq!(timeout_now.len(), 1);
    c.step(1, Input::TransferLeader(nid(1)));
    c.tick_and_stabilize(1);
    c.step(1, Input::ReadIndex(4));
    assert!(
        reads(&c, 1).is_empty(),
        "a lease read after TimeoutNow left"
    );
}

/// A node that restarted campaigns only once an election timeout has
/// passed since its start, unless told to by a transfer.
#[test]
fn a_restarted_node_is_refused_a_forced_campaign_during_its_first_timeout() {
    let mut c = leased(|_| {});
    c.reboot(3);
    assert_eq!(
        c.try_step(3, Input::Campaign),
        Err(Error::Busy(Busy::LeaderAlive { leader: None }))
    );
    c.isolate(3);
    for _ in 0..10 {
        c.tick(3);
    }
    c.step(3, Input::Campaign);
    assert_eq!(c.role(3), Role::Candidate);
}

/// A node that never held a term promised nobody anything: a brand-new
/// cluster elects at once.
#[test]
fn a_brand_new_node_may_campaign_at_once() {
    let mut c = Cluster::with_config(3, lease);
    c.elect(2);
}

// ---- what the lease and read rules count on -----------------------------------

/// Rule 2 in a later term: a candidate's own vote counts only when this
/// term's vote is durable, not because an earlier term's vote for itself is.
#[test]
fn a_candidate_counts_only_its_durable_vote_of_this_term() {
    let mut n = Node::new(
        Config::new(nid(1), [nid(1), nid(2), nid(3)]),
        Restored::default(),
    )
    .unwrap();
    let r = n.step(Input::Campaign).unwrap();
    let _ = n.advance(r.id()).unwrap(); // voted for itself in term 1, durably
    let r = n.step(Input::Campaign).unwrap(); // term 2, not durable yet
    assert_eq!(n.term().get(), 2);
    let grant = msg(2, 1, 2, Body::RequestVoteResponse { granted: true });
    let r2 = n.step(Input::Message(grant)).unwrap();
    assert_eq!(
        n.role(),
        Role::Candidate,
        "counted term 1's vote as term 2's"
    );
    let _ = n.advance(r.id()).unwrap();
    let _ = n.advance(r2.id()).unwrap();
    assert!(n.is_leader());
}

/// Thesis §6.4: a read waits for a round started after it arrived. A read
/// that arrives while a round is in flight is not confirmed by that round.
#[test]
fn a_read_is_not_confirmed_by_a_round_that_started_before_it() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.step(1, Input::ReadIndex(1)); // starts a round
    c.step(1, Input::ReadIndex(2)); // waits for the next one
    c.deliver_to(2);
    c.deliver_where(|m| m.to == nid(1) && !matches!(m.body, Body::HeartbeatResponse { .. }));
    let first_round: Vec<_> =
        c.take_where(|m| m.to == nid(1) && matches!(m.body, Body::HeartbeatResponse { .. }));
    for m in first_round {
        c.deliver(m);
    }
    let ctxs: Vec<u64> = reads(&c, 1).iter().map(|r| r.ctx).collect();
    assert_eq!(ctxs, [1], "read 2 confirmed by a round older than itself");
    c.stabilize();
    let ctxs: Vec<u64> = reads(&c, 1).iter().map(|r| r.ctx).collect();
    assert_eq!(ctxs, [1, 2]);
}
