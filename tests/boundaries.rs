//! Rules at their edges: each test pins one comparison or one bookkeeping
//! step that an outside mutation run found unguarded (a `<` that could be
//! `<=`, an input that could be ignored) and names the rule it protects.

mod common;

use common::*;
use zaft::{Body, Config, DropReason, Index, Input, Node, ProgressState, Restored, Role, Term};

fn node_with(id: u64, tweak: impl Fn(&mut Config)) -> Node {
    let mut cfg = Config::new(nid(id), [nid(1), nid(2), nid(3)]);
    tweak(&mut cfg);
    Node::new(cfg, Restored::default()).unwrap()
}

fn step(n: &mut Node, input: Input) {
    let r = n.step(input).unwrap();
    let _ = n.advance(r.id()).unwrap();
}

fn drops(n: &Node, why: DropReason) -> u64 {
    n.status().dropped.get(why)
}

// ---- leader stickiness (thesis §4.2.3, §9.6) ----------------------------------

/// A follower that heard its leader keeps ignoring vote requests for
/// exactly the minimum election timeout: at `min - 1` ticks it still does,
/// at `min` it no longer does.
#[test]
fn stickiness_lasts_exactly_the_minimum_election_timeout() {
    let mut n = node_with(2, |c| {
        c.check_quorum = true;
        c.election_timeout_ticks_max = 1000;
        c.seed = 3;
    });
    step(&mut n, Input::Message(heartbeat(1, 2, 1, 0)));
    for _ in 0..9 {
        step(&mut n, Input::Tick);
    }
    let before = drops(&n, DropReason::LeaderAlive);
    step(&mut n, Input::Message(request_vote(3, 2, 2, lid(1, 0))));
    assert_eq!(drops(&n, DropReason::LeaderAlive), before + 1, "9 ticks in");
    step(&mut n, Input::Tick);
    assert_eq!(n.role(), Role::Follower, "the timeout is drawn above 10");
    let r = n
        .step(Input::Message(request_vote(3, 2, 2, lid(1, 0))))
        .unwrap();
    assert_eq!(
        drops(&n, DropReason::LeaderAlive),
        before + 1,
        "10 ticks in"
    );
    let f = n.advance(r.id()).unwrap();
    assert!(f.messages().iter().any(is_vote_grant));
}

/// §9.6: a pre-vote proposes a term above the voter's; one for the voter's
/// own term is refused however up to date the log.
#[test]
fn a_pre_vote_for_the_voters_own_term_is_refused() {
    let mut n = node_with(2, |c| c.pre_vote = true);
    step(&mut n, Input::Message(request_vote(3, 2, 2, lid(0, 0))));
    assert_eq!(n.term(), Term(2));
    let r = n
        .step(Input::Message(msg(
            1,
            2,
            2,
            Body::PreVote {
                last_log: lid(2, 9),
            },
        )))
        .unwrap();
    assert_eq!(
        r.messages()
            .iter()
            .map(|m| m.body.clone())
            .collect::<Vec<_>>(),
        [Body::PreVoteResponse { granted: false }]
    );
    let r = n
        .step(Input::Message(msg(
            1,
            2,
            3,
            Body::PreVote {
                last_log: lid(2, 9),
            },
        )))
        .unwrap();
    assert_eq!(
        r.messages()[0].body,
        Body::PreVoteResponse { granted: true },
        "the next term is granted"
    );
}

// ---- AppendEntries well-formedness (§5.3) ------------------------------------------

/// Entries must follow `prev` contiguously, with terms that never decrease
/// and never exceed the sender's term, and `prev` itself cannot be of a
/// later term than the sender's. Anything else is dropped as malformed and
/// leaves the log alone.
#[test]
fn malformed_appends_are_dropped_whole() {
    let cases = [
        (
            "prev beyond the sender's term",
            2,
            lid(3, 0),
            vec![ent(2, 1)],
        ),
        (
            "an entry beyond the sender's term",
            2,
            lid(0, 0),
            vec![ent(3, 1)],
        ),
        (
            "entry terms decrease",
            3,
            lid(0, 0),
            vec![ent(2, 1), ent(1, 2)],
        ),
        ("an entry older than prev", 3, lid(2, 1), vec![ent(1, 2)]),
        ("a gap after prev", 2, lid(0, 0), vec![ent(2, 2)]),
    ];
    for (what, term, prev, entries) in cases {
        let mut n = node_with(2, |_| {});
        let r = n
            .step(Input::Message(append(1, 2, term, prev, entries, 0)))
            .unwrap();
        assert_eq!(drops(&n, DropReason::Malformed), 1, "{what}");
        assert_eq!(n.last_log().index, Index(0), "{what}: the log changed");
        assert!(r.entries().is_empty(), "{what}");
    }
    // The well-formed neighbour of each is accepted.
    let mut n = node_with(2, |_| {});
    step(
        &mut n,
        Input::Message(append(1, 2, 3, lid(0, 0), vec![ent(2, 1), ent(3, 2)], 0)),
    );
    assert_eq!(drops(&n, DropReason::Malformed), 0);
    assert_eq!(n.last_log(), lid(3, 2));
}

/// A follower adopts a leader's commit index up to its own last entry, and
/// never lowers the one it has.
#[test]
fn a_follower_adopts_a_commit_index_up_to_its_log_and_never_back() {
    let mut n = node_with(2, |_| {});
    step(
        &mut n,
        Input::Message(append(1, 2, 1, lid(0, 0), vec![ent(1, 1), ent(1, 2)], 0)),
    );
    step(&mut n, Input::Message(heartbeat(1, 2, 1, 2)));
    assert_eq!(n.commit(), Index(2), "exactly the last entry");
    step(&mut n, Input::Message(heartbeat(1, 2, 1, 1)));
    assert_eq!(n.commit(), Index(2), "an older heartbeat lowers nothing");
}

// ---- the leader's bookkeeping ---------------------------------------------------------

/// The host reports a peer unreachable: a leader stops streaming to it and
/// probes instead; on a follower it changes nothing.
#[test]
fn an_unreachable_peer_is_probed_instead_of_streamed_to() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "x");
    c.stabilize();
    let state = |c: &Cluster| {
        c.node(1)
            .progress()
            .find(|p| p.id == nid(2))
            .map(|p| p.state)
    };
    assert_eq!(state(&c), Some(ProgressState::Replicate));
    c.step(1, Input::ReportUnreachable(nid(2)));
    assert_eq!(state(&c), Some(ProgressState::Probe));
    c.step(2, Input::ReportUnreachable(nid(1)));
    assert_eq!(c.role(2), Role::Follower);
}

/// Every accepted proposal is pending until its outcome is handed out.
#[test]
fn pending_proposals_count_until_the_outcome_is_known() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.hold(1);
    for d in ["a", "b", "c"] {
        c.propose(1, d);
    }
    assert_eq!(c.node(1).pending_proposals(), 3);
    c.release(1);
    c.stabilize();
    c.tick_and_stabilize(1);
    assert_eq!(c.node(1).pending_proposals(), 0);
}

/// Outcomes in index order even when a leader, re-elected after losing
/// proposals, accepts a new one at an index below older pending ones: each
/// old one is reported lost once its index commits with another entry, the
/// new one is not, and none stays pending.
#[test]
fn a_reelected_leader_settles_old_and_new_proposals_in_index_order() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.isolate(1);
    let old: Vec<_> = (0..5).map(|i| c.propose(1, format!("old{i}"))).collect();
    c.stabilize();
    c.elect(2);
    c.tick_and_stabilize(1);
    c.heal();
    c.tick_and_stabilize(2);
    assert_eq!(c.role(1), Role::Follower);
    c.step(2, Input::TransferLeader(nid(1)));
    c.stabilize();
    assert!(c.node(1).is_leader());
    let new = c.propose(1, "new");
    assert!(
        new.first < old.last().unwrap().first,
        "the new proposal sits below old pending ones"
    );
    c.stabilize();
    c.tick_and_stabilize(2);
    // Old proposals above the highest committed index still wait: a later
    // entry may yet commit there.
    assert_eq!(c.node(1).pending_proposals(), 2);
    c.propose(1, "more1");
    c.propose(1, "more2");
    c.stabilize();
    c.tick_and_stabilize(2);
    let lost = &c.host(1).lost;
    for p in &old {
        assert!(lost.contains(&lid(p.term.get(), p.first.get())), "{p:?}");
    }
    assert!(!lost.contains(&lid(new.term.get(), new.first.get())));
    assert!(c.has_applied(1, "new"));
    assert_eq!(c.node(1).pending_proposals(), 0);
}
