//! Membership changes (thesis chapter 4): learners, single-server changes,
//! joint consensus, removal and joining, one test per rule.
//!
//! A configuration is in force on a node as soon as its entry is in the
//! node's log (thesis §4.1); the argument is in the crate docs and in
//! `src/membership.rs`. The harness checks the usual safety properties on
//! every Ready (one leader per term, one vote per node per term, a commit
//! index durable on a majority of the configuration, ...).

mod common;

use common::*;
use zaft::{
    Body, Busy, ConfChange, ConfState, EntryKind, Error, Index, Input, MembershipChange,
    MembershipEntry, MembershipError, Misuse, Role, Transition,
};

fn change(c: &mut Cluster, id: u64, ch: MembershipChange) -> Result<(), Error> {
    c.try_step(id, Input::ChangeMembership(ch))
}

fn conf(voters: &[u64], learners: &[u64]) -> ConfState {
    ConfState {
        voters: voters.iter().map(|&v| nid(v)).collect(),
        learners: learners.iter().map(|&v| nid(v)).collect(),
        ..ConfState::default()
    }
}

fn membership_err(r: Result<(), Error>) -> MembershipError {
    match r {
        Err(Error::Membership(m)) => m,
        other => panic!("expected a membership error, got {other:?}"),
    }
}

/// Three voters, node 1 leading with its term's entry committed.
fn three() -> Cluster {
    let mut c = Cluster::new(3);
    c.elect(1);
    c
}

/// `three()` and two new nodes, 4 and 5, started to join.
fn three_and_two_new() -> (Cluster, u64, u64) {
    let mut c = three();
    let (a, b) = (c.add_node(|_| {}), c.add_node(|_| {}));
    (c, a, b)
}

/// One joint change: voters `a` and `b` added, `removed` removed.
fn swap(a: u64, b: u64, removed: &[u64]) -> MembershipChange {
    let mut changes = vec![ConfChange::AddVoter(nid(a)), ConfChange::AddVoter(nid(b))];
    changes.extend(removed.iter().map(|&r| ConfChange::RemoveNode(nid(r))));
    MembershipChange::new(changes)
}

// ---- learners ------------------------------------------------------------

/// §4.2.1: a learner (a non-voting member) receives the log but is never
/// counted towards a commit, and never campaigns.
#[test]
fn a_learner_receives_the_log_but_never_counts_or_campaigns() {
    let mut c = three();
    let l = c.add_node(|_| {});
    change(&mut c, 1, MembershipChange::add_learner(nid(l))).unwrap();
    c.stabilize();
    assert_eq!(c.node(1).conf_state(), &conf(&[1, 2, 3], &[4]));
    assert_eq!(
        c.node(l).conf_state(),
        c.node(1).conf_state(),
        "the joining node learnt its configuration from the log"
    );
    c.propose(1, "x");
    c.stabilize();
    assert!(c.has_applied(l, "x"), "the learner holds the log");

    // Only the learner answers: nothing commits.
    c.cut(1, 2);
    c.cut(1, 3);
    let p = c.propose(1, "y");
    c.stabilize();
    assert!(
        c.node(1).commit() < p.last,
        "a learner counted towards a commit"
    );
    assert_eq!(
        c.node(l).last_log().index,
        p.last,
        "though it holds the entry"
    );

    // Cut off from everyone, the learner never campaigns.
    c.isolate(l);
    let sent = c.count_sent(|m| m.from == nid(l));
    for _ in 0..100 {
        c.tick(l);
    }
    c.stabilize();
    assert_eq!(c.role(l), Role::Follower);
    assert_eq!(
        c.count_sent(|m| m.from == nid(l)),
        sent,
        "a learner asked for votes"
    );
    assert_eq!(
        membership_err(c.try_step(l, Input::Campaign)),
        MembershipError::NotAVoter
    );
}

/// A learner is promoted with `AddVoter` once caught up; from then on it
/// counts, so commitment needs it or another voter.
#[test]
fn a_promoted_learner_counts_towards_commitment() {
    let mut c = three();
    let l = c.add_node(|_| {});
    change(&mut c, 1, MembershipChange::add_learner(nid(l))).unwrap();
    c.stabilize();
    let caught_up = c.node(1).progress().find(|p| p.id == nid(l)).unwrap();
    assert_eq!(caught_up.match_index, c.node(1).last_log().index);
    change(&mut c, 1, MembershipChange::add_voter(nid(l))).unwrap();
    c.stabilize();
    for id in 1..=4 {
        assert_eq!(c.node(id).conf_state(), &conf(&[1, 2, 3, 4], &[]));
    }
    // Three of four are needed now: the leader and the new voter are not
    // enough, the leader, node 2 and the new voter are.
    c.cut(1, 2);
    c.cut(1, 3);
    let p = c.propose(1, "x");
    c.stabilize();
    assert!(c.node(1).commit() < p.last);
    c.heal();
    c.cut(1, 3);
    c.tick_and_stabilize(1);
    assert!(c.node(1).commit() >= p.last, "1, 2 and 4 are a majority");
}

/// Leadership transfer to a learner is refused: it could not win.
#[test]
fn leadership_cannot_be_transferred_to_a_learner() {
    let mut c = three();
    let l = c.add_node(|_| {});
    change(&mut c, 1, MembershipChange::add_learner(nid(l))).unwrap();
    c.stabilize();
    assert_eq!(
        c.try_step(1, Input::TransferLeader(nid(l))),
        Err(Error::Misuse(Misuse::TransferToNonVoter(nid(l))))
    );
}

// ---- single-server changes -------------------------------------------------

/// §4.1: a new configuration is in force as soon as its entry is in the
/// leader's log. Adding a fourth voter makes three the majority, for the
/// very entry that adds it.
#[test]
fn a_new_voter_counts_from_the_moment_its_entry_is_appended() {
    let mut c = three();
    let n = c.add_node(|_| {});
    c.isolate(n);
    c.cut(1, 3);
    change(&mut c, 1, MembershipChange::add_voter(nid(n))).unwrap();
    let at = c.host(1).proposed.last().unwrap().last;
    c.stabilize();
    assert_eq!(c.node(2).conf_state(), &conf(&[1, 2, 3, 4], &[]));
    assert!(
        c.node(1).commit() < at,
        "two of four voters committed the entry that added the fourth"
    );
    c.heal();
    c.tick_and_stabilize(1);
    assert!(c.node(1).commit() >= at);
    assert_eq!(
        c.node(n).conf_state(),
        &conf(&[1, 2, 3, 4], &[]),
        "the new voter caught up from an empty log"
    );
}

/// Every refusal of a change has its own typed error, and a refused change
/// leaves the node as it was.
#[test]
fn invalid_changes_are_refused_with_a_typed_error() {
    let mut c = three();
    let m = |c: &mut Cluster, ch| membership_err(change(c, 1, ch));
    assert_eq!(
        m(&mut c, MembershipChange::remove(nid(9))),
        MembershipError::UnknownNode(nid(9))
    );
    assert_eq!(
        m(&mut c, MembershipChange::add_voter(nid(0))),
        MembershipError::ZeroId
    );
    assert_eq!(
        m(&mut c, MembershipChange::new([])),
        MembershipError::EmptyChange
    );
    assert_eq!(
        m(&mut c, MembershipChange::add_voter(nid(2))),
        MembershipError::NoChange
    );
    assert_eq!(
        m(
            &mut c,
            MembershipChange::new([ConfChange::AddVoter(nid(5)), ConfChange::AddLearner(nid(5))])
        ),
        MembershipError::DuplicateNode(nid(5))
    );
    assert_eq!(
        membership_err(c.try_step(1, Input::LeaveJoint)),
        MembershipError::NotJoint
    );
    assert_eq!(
        change(&mut c, 2, MembershipChange::add_learner(nid(4))),
        Err(Error::NotLeader {
            leader: Some(nid(1))
        })
    );
    let before = c.node(1).last_log();
    // One change at a time: the second waits for the first to commit.
    c.isolate(1);
    change(&mut c, 1, MembershipChange::add_learner(nid(4))).unwrap();
    let at = c.node(1).last_log().index;
    assert_eq!(
        m(&mut c, MembershipChange::add_learner(nid(5))),
        MembershipError::ChangePending { index: at }
    );
    assert_eq!(at, before.index.next(), "refused changes appended nothing");
    // While a transfer runs.
    let mut c = three();
    c.isolate(2);
    c.step(1, Input::TransferLeader(nid(2)));
    assert_eq!(
        change(&mut c, 1, MembershipChange::add_learner(nid(4))),
        Err(Error::Busy(Busy::LeadershipTransfer { to: nid(2) }))
    );
    // The last voter cannot go.
    let mut c = Cluster::new(1);
    c.elect(1);
    assert_eq!(
        membership_err(change(&mut c, 1, MembershipChange::remove(nid(1)))),
        MembershipError::NoVoters
    );
}

/// The single-server-change hazard (found in 2015): a new leader must not
/// propose a change before an entry of its own term commits, or its log may
/// lack a committed configuration and the two need not overlap.
#[test]
fn a_leader_proposes_no_change_before_an_entry_of_its_term_commits() {
    let mut c = Cluster::new(3);
    c.campaign(1);
    c.deliver_where(is_vote_request);
    c.deliver_where(|m| vote_answer(m).is_some());
    assert!(c.node(1).is_leader());
    assert_eq!(
        membership_err(change(&mut c, 1, MembershipChange::add_learner(nid(4)))),
        MembershipError::TermNotCommitted
    );
    c.stabilize();
    change(&mut c, 1, MembershipChange::add_learner(nid(4))).unwrap();
}

// ---- joint consensus ---------------------------------------------------------

/// §4.3: during a joint configuration, commitment needs a majority of the
/// old voters and a majority of the new; once the joint entry commits the
/// leader leaves it on its own (`Transition::Auto` with two voters changed).
#[test]
fn a_joint_configuration_needs_both_majorities_and_is_left_on_its_own() {
    let (mut c, a, b) = three_and_two_new();
    c.isolate(a);
    c.isolate(b);
    change(&mut c, 1, swap(a, b, &[2, 3])).unwrap();
    let joint_at = c.node(1).last_log().index;
    c.stabilize();
    let joint = c.node(1).conf_state().clone();
    assert!(joint.is_joint() && joint.auto_leave);
    assert_eq!(joint.voters, [1, 4, 5].map(nid));
    assert_eq!(joint.voters_outgoing, [1, 2, 3].map(nid));
    assert_eq!(c.node(2).conf_state(), &joint);
    assert!(
        c.node(1).commit() < joint_at,
        "all of the old voters hold it, none of the new but the leader"
    );
    c.heal();
    c.tick_and_stabilize(2);
    assert!(c.node(1).commit() > joint_at);
    let last = c.node(1).last_log().index;
    let entries = &c.host(1).log;
    let leave = MembershipEntry::decode(&entries[last.get() as usize - 1].data).unwrap();
    assert_eq!(
        leave.change, None,
        "the leader left the joint configuration"
    );
    assert_eq!(c.node(1).conf_state(), &conf(&[1, 4, 5], &[]));
    assert_eq!(c.node(1).commit(), last);
    // The Ready reported each configuration as it came into force.
    assert_eq!(c.host(1).confs, [joint, conf(&[1, 4, 5], &[])]);
}

/// With `JointExplicit` the joint configuration stays until the host
/// leaves it; while joint, an election needs both majorities too, and a
/// leader that only the outgoing configuration counts steps down once the
/// configuration without it commits.
#[test]
fn an_explicit_joint_configuration_is_left_when_asked_and_elections_need_both_majorities() {
    let (mut c, a, b) = three_and_two_new();
    let ch = swap(a, b, &[2, 3]).with_transition(Transition::JointExplicit);
    change(&mut c, 1, ch).unwrap();
    c.stabilize();
    c.tick_and_stabilize(3);
    for id in 1..=5 {
        assert!(c.node(id).conf_state().is_joint(), "node {id}");
    }
    assert_eq!(
        membership_err(change(&mut c, 1, MembershipChange::add_learner(nid(9)))),
        MembershipError::AlreadyJoint
    );

    // Node 1 fails; nodes 2 and 3 (a majority of the old voters) cannot
    // elect one of them without the new voters.
    c.crash(1);
    c.partition(&[&[2, 3], &[4, 5]]);
    c.campaign(2);
    c.stabilize();
    assert_ne!(
        c.role(2),
        Role::Leader,
        "won without a majority of the new voters"
    );
    c.heal();
    c.elect(2);

    // Node 2 leads, though only the outgoing configuration counts it. It
    // leaves the joint configuration, and steps down once that commits.
    c.step(2, Input::LeaveJoint);
    c.stabilize();
    assert_eq!(c.node(2).conf_state(), &conf(&[1, 4, 5], &[]));
    assert_ne!(c.role(2), Role::Leader, "a removed leader goes on leading");
    assert!(c.node(2).commit() >= c.node(2).last_log().index);
}

// ---- removal -------------------------------------------------------------

/// §4.2.2: a leader that removes itself manages the cluster without
/// counting itself until the removal commits, then steps down; it never
/// campaigns again, and the others elect a leader among themselves.
#[test]
fn a_removed_leader_commits_without_itself_then_steps_down() {
    let mut c = three();
    // Node 1's own disk is slow: the removal still commits, on 2 and 3.
    c.hold(1);
    change(&mut c, 1, MembershipChange::remove(nid(1))).unwrap();
    let at = c.host(1).proposed.last().unwrap().last;
    assert!(c.node(1).is_leader());
    c.stabilize();
    assert!(
        c.node(1).commit() >= at,
        "committed without the leader's disk"
    );
    assert_eq!(c.role(1), Role::Follower, "stepped down once it committed");
    c.release(1);
    c.stabilize();
    let asked = c.count_sent(|m| m.from == nid(1) && is_vote_request(m));
    let new = c.run_until_leader(200);
    assert!(new == 2 || new == 3);
    for _ in 0..100 {
        c.tick(1);
    }
    c.stabilize();
    assert_eq!(
        c.count_sent(|m| m.from == nid(1) && is_vote_request(m)),
        asked,
        "a removed node campaigned"
    );
}

/// §4.2.3: a removed server that never learns of its removal keeps timing
/// out; with PreVote and CheckQuorum it cannot disturb the cluster.
#[test]
fn a_removed_server_that_keeps_timing_out_does_not_disrupt_the_cluster() {
    let mut c = Cluster::with_config(3, |cfg| {
        cfg.pre_vote = true;
        cfg.check_quorum = true;
    });
    c.elect(1);
    c.isolate(3);
    change(&mut c, 1, MembershipChange::remove(nid(3))).unwrap();
    c.stabilize();
    c.tick_and_stabilize(1);
    assert_eq!(c.node(1).conf_state(), &conf(&[1, 2], &[]));
    assert_eq!(
        c.node(3).conf_state(),
        &conf(&[1, 2, 3], &[]),
        "3 never heard"
    );
    c.heal();
    let term = c.term(1);
    for _ in 0..300 {
        c.tick_and_stabilize(1);
    }
    assert!(
        c.count_sent(|m| m.from == nid(3) && matches!(m.body, Body::PreVote { .. })) > 0,
        "node 3 kept timing out"
    );
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.term(1), term, "the removed server disturbed the cluster");
}

/// The same without PreVote and CheckQuorum: the removed server's vote
/// requests depose the leader again and again (why §4.2.3 needs them).
#[test]
fn without_prevote_a_removed_server_deposes_leaders() {
    let mut c = three();
    c.isolate(3);
    change(&mut c, 1, MembershipChange::remove(nid(3))).unwrap();
    c.stabilize();
    c.tick_and_stabilize(1);
    c.heal();
    let term = c.term(1);
    for _ in 0..300 {
        c.tick_and_stabilize(1);
    }
    assert!(c.term(1) > term + 1, "node 3's elections raised the term");
}

// ---- joining -------------------------------------------------------------

/// A node that joins starts with an empty log and no configuration: it does
/// not campaign before it has learnt one in which it votes.
#[test]
fn a_joining_node_does_not_campaign_before_it_learns_a_configuration() {
    let mut c = three();
    let j = c.add_node(|_| {});
    assert_eq!(c.node(j).conf_state(), &ConfState::default());
    for _ in 0..200 {
        c.tick(j);
    }
    c.stabilize();
    assert_eq!(c.count_sent(|m| m.from == nid(j)), 0, "it spoke unasked");
    assert_eq!(c.term(j), 0);
    assert_eq!(
        membership_err(c.try_step(j, Input::Campaign)),
        MembershipError::NotAVoter
    );
    change(&mut c, 1, MembershipChange::add_voter(nid(j))).unwrap();
    c.stabilize();
    c.tick_and_stabilize(1);
    assert!(c.node(j).conf_state().is_voter(nid(j)));
    // Now a voter, it can win an election.
    c.elect(j);
}

// ---- configurations and the log ------------------------------------------------

/// On append, a configuration is in force; when a new leader overwrites the
/// entry, the node goes back to the configuration before it (and the Ready
/// says so).
#[test]
fn an_overwritten_configuration_entry_is_rolled_back() {
    let mut c = Cluster::new(5);
    c.elect(1);
    change(&mut c, 1, MembershipChange::add_learner(nid(6))).unwrap();
    // The entry reaches node 2 only.
    c.deliver_where(|m| m.to == nid(2) && is_append(m));
    let with_learner = conf(&[1, 2, 3, 4, 5], &[6]);
    assert_eq!(c.node(2).conf_state(), &with_learner);
    c.drop_all();
    c.crash(1);
    c.isolate(2);
    c.elect(3);
    c.heal();
    c.tick_and_stabilize(2);
    let before = conf(&[1, 2, 3, 4, 5], &[]);
    assert_eq!(
        c.node(2).conf_state(),
        &before,
        "the overwritten entry still rules"
    );
    assert_eq!(c.host(2).confs, [with_learner, before]);
}

/// A restarted node recomputes the configuration from the membership
/// entries of its log, a node that joined included (its config lists no
/// voters).
#[test]
fn a_restart_recomputes_the_configuration_from_the_log() {
    let mut c = three();
    let l = c.add_node(|_| {});
    change(&mut c, 1, MembershipChange::add_learner(nid(l))).unwrap();
    c.stabilize();
    change(&mut c, 1, MembershipChange::add_voter(nid(l))).unwrap();
    c.stabilize();
    change(&mut c, 1, MembershipChange::remove(nid(3))).unwrap();
    c.stabilize();
    c.tick_and_stabilize(1);
    let want = conf(&[1, 2, 4], &[]);
    for id in [2, l] {
        assert_eq!(c.node(id).conf_state(), &want);
        c.reboot(id);
        assert_eq!(c.node(id).conf_state(), &want, "node {id} after restart");
    }
    let kinds = c
        .host(2)
        .log
        .iter()
        .filter(|e| e.kind == EntryKind::Membership);
    assert_eq!(kinds.count(), 3);
    assert_eq!(c.node(2).status().conf_state, want);
}

/// A lease rests on a majority of the configuration that confirmed its
/// round: after a change, no read is served from a round confirmed before
/// it.
#[test]
fn a_configuration_change_ends_the_lease_until_a_new_round() {
    let mut c = Cluster::with_config(3, |cfg| {
        cfg.check_quorum = true;
        cfg.lease_reads = true;
    });
    c.elect(1);
    c.propose(1, "x");
    c.stabilize();
    c.tick_and_stabilize(1);
    c.step(1, Input::ReadIndex(1));
    assert_eq!(c.host(1).reads.len(), 1, "the lease serves at once");
    c.isolate(2);
    c.isolate(3);
    change(&mut c, 1, MembershipChange::add_learner(nid(4))).unwrap();
    c.step(1, Input::ReadIndex(2));
    assert_eq!(
        c.host(1).reads.len(),
        1,
        "served from a lease of the old configuration"
    );
    c.heal();
    c.tick_and_stabilize(1);
    assert_eq!(c.host(1).reads.len(), 2, "a new round confirms it");
    assert_eq!(
        c.host(1).reads[1].index,
        Some(Index(2)),
        "the commit index when asked"
    );
}

// ---- input from the network ----------------------------------------------------

/// A membership entry that does not decode (or breaks the invariants of a
/// configuration) is refused with the whole AppendEntries, counted, and
/// changes nothing; answers from a node that is not a member are dropped.
#[test]
fn a_bad_membership_entry_or_an_answer_from_a_stranger_is_dropped_and_counted() {
    let mut c = three();
    let last = c.node(2).last_log();
    let bad_conf = MembershipEntry {
        change: None,
        conf: conf(&[2, 2], &[]),
    }
    .encode();
    for data in [bytes::Bytes::from_static(&[1, 7, 7]), bad_conf] {
        let e = zaft::Entry {
            term: last.term,
            index: last.index.next(),
            kind: EntryKind::Membership,
            data,
        };
        let before = c.node(2).dropped().get(zaft::DropReason::Malformed);
        c.deliver(append(1, 2, last.term.get(), last, vec![e], 0));
        assert_eq!(
            c.node(2).dropped().get(zaft::DropReason::Malformed),
            before + 1
        );
        assert_eq!(c.node(2).last_log(), last);
        assert_eq!(c.node(2).conf_state(), &conf(&[1, 2, 3], &[]));
    }
    let before = c.node(1).dropped().get(zaft::DropReason::UnknownSender);
    c.deliver(msg(
        9,
        1,
        c.term(1),
        Body::AppendEntriesResponse(zaft::AppendResponse::Success {
            match_index: Index(1),
        }),
    ));
    assert_eq!(
        c.node(1).dropped().get(zaft::DropReason::UnknownSender),
        before + 1
    );
}

// ---- restarts ----------------------------------------------------------------

/// A restored vote for a node that is no longer a member is kept, not
/// refused: the node voted before the removal.
#[test]
fn a_restored_vote_for_a_removed_node_restores() {
    let mut r = restored(3, vec![]);
    r.hard_state.vote = Some(nid(9));
    let n = zaft::Node::new(zaft::Config::new(nid(1), [1, 2, 3].map(nid)), r).unwrap();
    assert_eq!(n.vote(), Some(nid(9)));
}

/// Every node crashes in the middle of a joint change (the joint entry on
/// some disks, not committed): all restore, the joint configuration is in
/// force where its entry survived, and the cluster finishes the change.
#[test]
fn a_restart_in_the_middle_of_a_joint_change_restores_and_finishes_it() {
    let (mut c, a, b) = three_and_two_new();
    c.isolate(a);
    c.isolate(b);
    change(&mut c, 1, swap(a, b, &[3])).unwrap();
    c.deliver_where(|m| m.to == nid(2) && is_append(m));
    c.drop_all();
    assert!(c.node(2).conf_state().is_joint());
    for id in 1..=5 {
        c.reboot(id);
    }
    c.heal();
    for id in [1, 2] {
        let joint = c.node(id).conf_state();
        assert!(
            joint.is_joint(),
            "node {id} restored the joint configuration"
        );
        assert_eq!(joint.voters, [1, 2, 4, 5].map(nid));
    }
    assert_eq!(c.node(3).conf_state(), &conf(&[1, 2, 3], &[]));
    // Node 3 never saw the change. Nodes 1 and 2 hold a longer log and
    // refuse it their votes; one of them wins (with a majority of both
    // halves) and finishes the change.
    let leader = c.run_until_leader(300);
    assert!(
        leader == 1 || leader == 2,
        "node {leader} led without the joint entry"
    );
    c.tick_and_stabilize(3);
    for id in [1, 2, 4, 5] {
        assert_eq!(
            c.node(id).conf_state(),
            &conf(&[1, 2, 4, 5], &[]),
            "node {id}"
        );
    }
    c.propose(leader, "after");
    c.stabilize();
    for id in [1, 2, 4, 5] {
        assert!(c.has_applied(id, "after"), "node {id}");
    }
}

/// A leader that removed itself may be deposed before the removal reaches
/// the new voters. Its log, the longest, is the one that must win for the
/// removal to commit, so until the removal commits it still stands for
/// election (counted by the majorities of the configuration in force), and
/// the cluster does not deadlock. (Found by the simulator: a two-voter
/// cluster where the remaining voter needed the removed one's vote and the
/// removed one would not campaign.)
#[test]
fn a_leader_deposed_before_its_removal_commits_campaigns_to_finish_it() {
    let mut c = Cluster::with_config(2, |cfg| cfg.check_quorum = true);
    c.elect(1);
    c.isolate(2);
    change(&mut c, 1, MembershipChange::remove(nid(1))).unwrap();
    assert_eq!(c.node(1).conf_state(), &conf(&[2], &[]));
    for _ in 0..100 {
        c.tick(1);
    }
    assert_ne!(c.role(1), Role::Leader, "CheckQuorum deposed it");
    c.heal();
    c.drop_all();
    let leader = c.run_until_leader(400);
    assert_eq!(leader, 2);
    assert_eq!(c.node(2).conf_state(), &conf(&[2], &[]));
    assert!(
        c.node(2).commit() >= c.node(2).conf_index(),
        "the removal committed"
    );
}

// ---- the hazards the rules prevent (bug hunt builds only) ----------------------

/// Without "one change at a time" (bug hunt builds only, see
/// `tests/bugs.rs`): a leader appends two single-server changes before the
/// first commits, {1,2,3} -> {1,2,3,4} -> {1,2,3,4,5}. The second's
/// majority {1,4,5} shares no node with the first's majority {2,3}: both
/// commit different entries at one index, which the harness's State Machine
/// Safety check catches.
#[cfg(zaft_bugs)]
#[test]
#[should_panic(expected = "two different entries committed")]
fn without_one_change_at_a_time_two_majorities_commit_different_entries() {
    let (mut c, a, b) = three_and_two_new();
    c.inject_bug(1, zaft::sim::Bug::TwoChangesAtOnce);
    c.partition(&[&[1, a, b], &[2, 3]]);
    change(&mut c, 1, MembershipChange::add_voter(nid(a))).unwrap();
    change(&mut c, 1, MembershipChange::add_voter(nid(b))).unwrap();
    c.propose(1, "x");
    c.stabilize();
    c.tick_and_stabilize(1);
    assert!(c.has_applied(1, "x"), "{{1, 4, 5}} committed it");
    // The other side still uses {1, 2, 3}, where {2, 3} is a majority.
    c.campaign(2);
    c.stabilize();
    c.propose(2, "y");
    c.stabilize();
}

/// Without "commit an entry of your term first" (bug hunt builds only):
/// the scenario of the 2015 single-server-change bug. Voters {1,2,3,4};
/// leader 1 appends "add 5" and only 5 gets it. Node 2 is elected by
/// {2,3,4} and at once proposes "remove 1", committed by {2,3} of
/// {2,3,4}, before its own term's first entry reached 4. Node 1 comes back
/// with {1,...,5} and is elected by {1,4,5} (4's log is older than 1's):
/// two majorities that do not overlap commit different entries.
#[cfg(zaft_bugs)]
#[test]
#[should_panic(expected = "two different entries committed")]
fn without_committing_its_term_first_a_new_leader_splits_the_cluster() {
    let mut c = Cluster::new(4);
    c.elect(1);
    let five = c.add_node(|_| {});
    for id in 1..=4 {
        c.inject_bug(id, zaft::sim::Bug::ChangeBeforeTermCommit);
    }
    c.partition(&[&[1, five], &[2, 3, 4]]);
    change(&mut c, 1, MembershipChange::add_voter(nid(five))).unwrap();
    c.stabilize();
    c.campaign(2);
    c.deliver_where(is_vote_request);
    c.deliver_where(|m| vote_answer(m).is_some());
    assert!(c.node(2).is_leader());
    // Node 2's first entry (and all that follows) never reaches 4.
    c.partition(&[&[1, five], &[2, 3], &[4]]);
    change(&mut c, 2, MembershipChange::remove(nid(1))).unwrap();
    c.stabilize();
    c.propose(2, "y");
    c.stabilize();
    assert!(c.has_applied(2, "y"), "{{2, 3}} committed it");
    // Node 1 restarts (it still led term 1, alone), next to 4 and 5.
    c.reboot(1);
    c.heal();
    c.partition(&[&[1, 4, five], &[2, 3]]);
    // Node 4 voted in term 2 already: node 1 wins term 3.
    c.campaign(1);
    c.stabilize();
    c.campaign(1);
    c.stabilize();
    assert!(c.node(1).is_leader(), "{:?}", c.node(1).status());
    c.propose(1, "x");
    c.stabilize();
}
