//! Nodes whose disk lost data: a follower whose log went backwards is
//! noticed and caught up by the leader it already has, and a node that may
//! have acknowledged entries it no longer holds takes no part in elections
//! until a leader of a newer term has brought it up to date.

mod common;

use common::*;
use zaft::{
    Body, Busy, Config, Error, HardState, Index, Input, Node, ReadState, RestoreError, Restored,
    Role, Term,
};

/// A three-node cluster, node 1 leading, with `n` entries after the no-op
/// committed everywhere.
fn with_entries(n: usize) -> Cluster {
    let mut c = Cluster::new(3);
    c.elect(1);
    for i in 0..n {
        c.propose(1, format!("e{i}"));
    }
    c.stabilize();
    c.tick_and_stabilize(1);
    c
}

fn last_index(c: &Cluster, id: u64) -> Index {
    c.node(id).status().last_log.index
}

/// Node 1 keeps leading in term 1, and node 3's log and state machine
/// become the leader's again within a few heartbeats.
fn assert_caught_up_without_leader_change(c: &mut Cluster) {
    c.tick_and_stabilize(3);
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.term(1), 1, "no leader change was needed");
    assert_eq!(last_index(c, 3), last_index(c, 1));
    assert_eq!(c.node(3).status().commit, c.node(1).status().commit);
    assert_eq!(c.host(3).applied_data(), c.host(1).applied_data());
}

// ---- a follower whose log went backwards catches up ---------------------------

/// The leader's heartbeat tells the follower a commit index beyond its
/// log; the follower answers `Behind`, and the leader forgets what it
/// believed and probes. A disk that lost the tail of the log and the commit
/// index with it cannot tell the node anything: only the leader notices.
#[test]
fn a_leader_notices_a_follower_whose_log_went_backwards() {
    let mut c = with_entries(10);
    c.restart_damaged(
        3,
        |s| {
            s.entries.truncate(4);
            s.hard_state.commit = Index(4);
        },
        false,
    );
    assert!(!c.node(3).status().recovering, "nothing tells it");
    let behind = c.count_sent(|m| {
        matches!(
            m.body,
            Body::AppendEntriesResponse(zaft::AppendResponse::Behind { .. })
        )
    });
    c.tick_and_stabilize(1);
    let now = c.count_sent(|m| {
        matches!(
            m.body,
            Body::AppendEntriesResponse(zaft::AppendResponse::Behind { .. })
        )
    });
    assert!(now > behind, "the follower said its log ends early");
    assert_caught_up_without_leader_change(&mut c);
}

/// A follower restarted with a truncated log (below its own durable commit
/// index) catches up from the same leader and knows it lost data.
#[test]
fn a_follower_restarted_with_a_truncated_log_catches_up_from_the_same_leader() {
    let mut c = with_entries(10);
    c.restart_damaged(3, |s| s.entries.truncate(4), false);
    assert!(
        c.node(3).status().recovering,
        "its hard state says commit 11"
    );
    assert_caught_up_without_leader_change(&mut c);
}

/// A follower restarted with its hard state but no entries.
#[test]
fn a_follower_restarted_with_its_hard_state_but_no_entries_catches_up() {
    let mut c = with_entries(10);
    c.restart_damaged(3, |s| s.entries.clear(), false);
    assert!(c.node(3).status().recovering);
    assert_caught_up_without_leader_change(&mut c);
}

/// A wiped follower (empty log, no hard state) whose host says so.
#[test]
fn a_wiped_follower_rejoins_when_its_host_says_it_lost_data() {
    let mut c = with_entries(10);
    c.restart_damaged(3, |s| *s = Store::default(), true);
    assert!(c.node(3).status().recovering);
    assert_caught_up_without_leader_change(&mut c);
}

// ---- amnesia does not vote ------------------------------------------------------

/// Node 1 leads and commits "x" with node 3 while node 2 is cut off from
/// it.
fn x_committed_by_nodes_1_and_3() -> Cluster {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.cut(1, 2);
    c.propose(1, "x");
    c.stabilize();
    c.tick_and_stabilize(1);
    c
}

/// Node 3 helped commit "x" with node 1, then lost it. Node 1 goes down; node
/// 2, which never got "x", campaigns. Node 3's vote would elect it and "x"
/// would be lost; node 3 refuses until a leader of a newer term has brought
/// it up to date, so the cluster waits for node 1.
#[test]
fn an_amnesiac_vote_cannot_elect_a_leader_without_a_committed_entry() {
    let mut c = x_committed_by_nodes_1_and_3();
    assert!(c.has_applied(1, "x") && !c.has_applied(2, "x"));
    c.restart_damaged(3, |s| s.entries.truncate(1), false);
    assert!(c.node(3).status().recovering);
    c.crash(1);
    c.heal();
    c.tick_and_stabilize(60);
    assert_eq!(c.leader(), None, "an amnesiac vote elected a leader");
    assert_eq!(
        c.try_step(3, Input::Campaign),
        Err(Error::Busy(Busy::CatchingUp))
    );
    c.restart(1);
    c.run_until_leader(100);
    c.tick_and_stabilize(5);
    for id in 1..=3 {
        assert!(c.has_applied(id, "x"), "node {id} lacks x");
    }
    assert!(
        !c.node(3).status().recovering,
        "a newer term's commit ends it"
    );
}

/// The same story with the rule switched off (bug hunt builds only, see
/// `tests/bugs.rs`): node 3's vote elects node 2, which overwrites "x" — the
/// unsafe vote the rule prevents, caught by the harness's State Machine
/// Safety check.
#[cfg(zaft_bugs)]
#[test]
#[should_panic(expected = "two different entries committed at index")]
fn without_the_rule_an_amnesiac_vote_loses_a_committed_entry() {
    let mut c = x_committed_by_nodes_1_and_3();
    c.restart_damaged(3, |s| s.entries.truncate(1), false);
    c.inject_bug(3, zaft::sim::Bug::AmnesiacVotes);
    c.crash(1);
    c.heal();
    c.run_until_leader(100);
    c.propose(2, "y");
    c.tick_and_stabilize(5);
}

/// Within the term it restored, nothing proves the node holds every entry
/// its lost acknowledgements helped commit: recovery ends with a newer
/// term's commit, for instance after a leadership transfer.
#[test]
fn recovery_ends_only_with_a_commit_of_a_newer_term() {
    let mut c = with_entries(3);
    c.restart_damaged(3, |s| s.entries.truncate(2), false);
    c.tick_and_stabilize(5);
    assert_eq!(last_index(&c, 3), last_index(&c, 1));
    assert!(c.node(3).status().recovering, "same term: not yet");
    c.step(1, Input::TransferLeader(nid(2)));
    c.stabilize();
    assert_eq!(c.leader(), Some(2), "node 1's vote suffices with node 2's");
    c.tick_and_stabilize(2);
    assert!(!c.node(3).status().recovering);
    assert_eq!(c.node(3).status().commit, c.node(2).status().commit);
}

/// A recovering node refuses pre-votes and votes, and drops a TimeoutNow.
#[test]
fn a_recovering_node_takes_no_part_in_elections() {
    let mut c = Cluster::with_config(3, |cfg| cfg.pre_vote = true);
    c.elect(1);
    c.propose(1, "x");
    c.stabilize();
    c.tick_and_stabilize(1);
    c.restart_damaged(3, |s| s.entries.truncate(1), false);
    let term = c.term(3);
    let last = c.node(1).status().last_log;
    c.inject(msg(2, 3, term + 1, Body::PreVote { last_log: last }));
    c.inject(request_vote(2, 3, term + 1, last));
    c.inject(msg(1, 3, term, Body::TimeoutNow));
    c.deliver_to(3);
    let answers: Vec<_> = c
        .net
        .iter()
        .filter(|m| m.from == nid(3))
        .map(|m| m.body.clone())
        .collect();
    assert!(answers.contains(&Body::PreVoteResponse { granted: false }));
    assert!(answers.contains(&Body::RequestVoteResponse { granted: false }));
    assert_eq!(c.role(3), Role::Follower, "TimeoutNow made it campaign");
    // Its election timeout passes without a campaign.
    c.isolate(3);
    for _ in 0..50 {
        c.tick(3);
    }
    assert_eq!(c.role(3), Role::Follower);
}

/// A recovering node may have forgotten a newer term (a wiped disk): it
/// answers heartbeats without confirming the leader's read round.
#[test]
fn a_recovering_node_confirms_no_read_round() {
    let mut c = with_entries(2);
    c.restart_damaged(3, |s| s.entries.truncate(1), true);
    c.tick_and_stabilize(3);
    c.isolate(2);
    c.step(1, Input::ReadIndex(9));
    c.tick_and_stabilize(3);
    assert!(
        c.host(1).reads.is_empty(),
        "a read confirmed by the leader and a node that lost data"
    );
    c.heal();
    c.tick_and_stabilize(2);
    assert!(matches!(
        c.host(1).reads[..],
        [ReadState {
            ctx: 9,
            index: Some(_)
        }]
    ));
}

/// A lone voter that lost data has no one to catch up from.
#[test]
fn a_lone_node_that_lost_data_is_refused_at_restore() {
    let cfg = Config::new(nid(1), [nid(1)]);
    let r = Restored {
        hard_state: HardState {
            term: Term(2),
            vote: Some(nid(1)),
            commit: Index(5),
        },
        entries: log_of(&[1, 1]),
        applied: Index(0),
        lost_data: false,
        conf_state: None,
    };
    assert_eq!(
        Node::new(cfg, r).unwrap_err(),
        Error::Restore(RestoreError::LostDataWithoutPeers)
    );
}
