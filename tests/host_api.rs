//! What a host reads off the Ready and the node without polling or
//! allocating: role and leader changes, must-sync, cheap getters, and the
//! operator inputs StepDown, ForgetLeader and AbortTransfer with the end of
//! each leadership transfer reported.
//!
//! The test harness also checks `Ready::must_sync` against its rule on every
//! Ready of every harness test.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use zaft::{
    Busy, Config, Error, Index, Input, Node, Restored, Role, SoftState, TransferEnded,
    TransferOutcome,
};

/// Counts this thread's allocations (tests run on several threads).
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

fn ss(role: Role, leader: Option<u64>) -> SoftState {
    SoftState {
        role,
        leader: leader.map(nid),
    }
}

// ---- role and leader changes --------------------------------------------------

/// Each change of role or known leader is reported once, in the Ready
/// where it happens; nothing is reported when nothing changed.
#[test]
fn role_and_leader_changes_are_reported_once() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "x");
    c.tick_and_stabilize(3);
    assert_eq!(
        c.host(1).soft_states,
        [ss(Role::Candidate, None), ss(Role::Leader, Some(1))]
    );
    assert_eq!(c.host(2).soft_states, [ss(Role::Follower, Some(1))]);
    c.step(1, Input::TransferLeader(nid(2)));
    c.stabilize();
    c.tick_and_stabilize(2);
    assert_eq!(
        c.host(1).soft_states[2..],
        [ss(Role::Follower, None), ss(Role::Follower, Some(2))]
    );
    assert_eq!(
        c.host(2).soft_states[1..],
        [ss(Role::Candidate, None), ss(Role::Leader, Some(2))]
    );
}

// ---- must_sync ------------------------------------------------------------------

/// A Ready with entries or a new term or vote must be durable before
/// `advance`; one that only moves the commit index need not.
#[test]
fn must_sync_only_for_entries_or_a_new_term_or_vote() {
    let mut n = Node::new(
        Config::new(nid(2), [nid(1), nid(2), nid(3)]),
        Restored::default(),
    )
    .unwrap();
    let r = n
        .step(Input::Message(append(
            1,
            2,
            1,
            lid(0, 0),
            vec![ent(1, 1)],
            0,
        )))
        .unwrap();
    assert!(r.must_sync(), "a new term and an entry");
    let _ = n.advance(r.id()).unwrap();
    let r = n.step(Input::Message(heartbeat(1, 2, 1, 1))).unwrap();
    assert_eq!(r.hard_state().map(|h| h.commit), Some(Index(1)));
    assert!(!r.must_sync(), "only the commit index moved");
    let r2 = n
        .step(Input::Message(request_vote(3, 2, 2, lid(1, 1))))
        .unwrap();
    assert!(r2.must_sync(), "a new term and a vote");
}

// ---- getters ----------------------------------------------------------------------

/// A host can read term, commit, applied, last index, leader and each
/// follower's progress on every loop without allocating.
#[test]
fn getters_do_not_allocate() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "x");
    c.tick_and_stabilize(2);
    let n = c.node(1);
    let before = allocations();
    let mut sum = 0;
    for _ in 0..100 {
        sum += n.term().get() + n.commit().get() + n.applied().get();
        sum += n.last_log().index.get() + n.persisted().get();
        sum += n.leader().map_or(0, |l| l.get()) + n.dropped().total();
        sum += u64::from(n.is_recovering()) + n.vote().map_or(0, |v| v.get());
        for p in n.progress() {
            sum += p.match_index.get() + p.next_index.get();
        }
    }
    assert_eq!(allocations(), before, "a getter allocated");
    assert!(sum > 0);
    let s = n.status();
    assert_eq!(
        (s.term, s.commit, s.applied, s.last_log, s.persisted),
        (
            n.term(),
            n.commit(),
            n.applied(),
            n.last_log(),
            n.persisted()
        )
    );
    assert_eq!(s.progress, n.progress().collect::<Vec<_>>());
    assert_eq!(s.progress.len(), 2);
}

// ---- StepDown and ForgetLeader -------------------------------------------------------

/// A leader that steps down becomes a follower in the same term at once,
/// fails the reads it holds, and the others elect a successor.
#[test]
fn step_down_gives_up_leadership_at_once() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.step(1, Input::ReadIndex(4));
    c.step(1, Input::StepDown);
    assert_eq!(c.role(1), Role::Follower);
    assert_eq!(c.term(1), 1);
    assert_eq!(
        c.host(1).soft_states.last(),
        Some(&ss(Role::Follower, None))
    );
    assert_eq!(c.host(1).reads.last().map(|r| r.index), Some(None));
    assert_eq!(
        c.try_step(2, Input::StepDown),
        Err(Error::NotLeader {
            leader: Some(nid(1))
        })
    );
    c.run_until_leader(60);
}

/// Without CheckQuorum a follower forgets its leader on request and then
/// supports a candidate at once.
#[test]
fn forget_leader_lets_a_follower_vote_without_waiting() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.step(2, Input::ForgetLeader);
    assert_eq!(c.node(2).leader(), None);
    assert_eq!(
        c.host(2).soft_states.last(),
        Some(&ss(Role::Follower, None))
    );
    c.crash(1);
    c.step(3, Input::ForgetLeader);
    c.campaign(3);
    c.stabilize();
    assert_eq!(c.leader(), Some(3));
}

/// With CheckQuorum a follower's support is a promise a lease relies on:
/// forgetting the leader is refused.
#[test]
fn forget_leader_is_refused_while_leases_rely_on_the_follower() {
    let mut c = Cluster::with_config(3, |cfg| {
        cfg.check_quorum = true;
        cfg.lease_reads = true;
    });
    c.elect(1);
    c.tick_and_stabilize(1);
    assert_eq!(
        c.try_step(2, Input::ForgetLeader),
        Err(Error::Busy(Busy::LeaderAlive {
            leader: Some(nid(1))
        }))
    );
    assert_eq!(c.node(2).leader(), Some(nid(1)));
    c.step(1, Input::ForgetLeader); // a leader has no leader to forget
    assert!(c.node(1).is_leader());
}

// ---- transfers -----------------------------------------------------------------------

fn ended(c: &Cluster, id: u64) -> Vec<TransferEnded> {
    c.host(id).transfers.clone()
}

fn outcome(to: u64, outcome: TransferOutcome) -> TransferEnded {
    TransferEnded {
        to: nid(to),
        outcome,
    }
}

#[test]
fn a_transfer_that_hands_over_reports_success() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.step(1, Input::TransferLeader(nid(3)));
    c.stabilize();
    assert_eq!(c.leader(), Some(3));
    assert_eq!(ended(&c, 1), [outcome(3, TransferOutcome::Succeeded)]);
}

#[test]
fn an_aborted_transfer_reports_it_and_takes_proposals_again() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.cut(1, 3);
    c.step(1, Input::TransferLeader(nid(3)));
    assert!(matches!(
        c.try_propose(1, "x"),
        Err(Error::Busy(Busy::LeadershipTransfer { .. }))
    ));
    c.step(1, Input::AbortTransfer);
    assert_eq!(ended(&c, 1), [outcome(3, TransferOutcome::Aborted)]);
    assert_eq!(c.node(1).transferring_to(), None);
    c.propose(1, "x");
    // Transferring to oneself aborts too.
    c.step(1, Input::TransferLeader(nid(2)));
    c.step(1, Input::TransferLeader(nid(1)));
    assert_eq!(ended(&c, 1)[1], outcome(2, TransferOutcome::Aborted));
    c.step(1, Input::AbortTransfer); // nothing to abort
    assert_eq!(ended(&c, 1).len(), 2);
    assert_eq!(
        c.try_step(2, Input::AbortTransfer),
        Err(Error::NotLeader {
            leader: Some(nid(1))
        })
    );
}

#[test]
fn a_transfer_that_does_not_finish_in_an_election_timeout_times_out() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.cut(1, 3);
    c.step(1, Input::TransferLeader(nid(3)));
    c.tick_and_stabilize(10);
    assert_eq!(ended(&c, 1), [outcome(3, TransferOutcome::TimedOut)]);
    assert!(c.node(1).is_leader());
}

#[test]
fn a_transfer_cut_short_by_losing_leadership_says_so() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.cut(1, 3);
    c.step(1, Input::TransferLeader(nid(3)));
    c.step(1, Input::StepDown);
    assert_eq!(ended(&c, 1), [outcome(3, TransferOutcome::LeadershipLost)]);
}

/// A granted pre-vote answer carries the term its sender only proposed: a
/// leader that gets a stale one does not step down, and its transfer goes
/// on.
#[test]
fn a_stale_pre_vote_answer_does_not_end_a_transfer() {
    let mut c = Cluster::with_config(3, |cfg| cfg.pre_vote = true);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.cut(1, 3);
    c.step(1, Input::TransferLeader(nid(3)));
    c.inject(msg(2, 1, 5, zaft::Body::PreVoteResponse { granted: true }));
    c.deliver_to(1);
    assert!(c.node(1).is_leader());
    assert!(ended(&c, 1).is_empty());
    assert_eq!(c.node(1).transferring_to(), Some(nid(3)));
}

/// `Node::tick` returns `None` for a tick that changes nothing the host
/// must see, and uses no Ready id, even when the tick did act: a node that
/// is not a voter (here one waiting to join) lets its election timer run
/// out again and again without campaigning.
#[test]
fn a_tick_that_acts_but_changes_nothing_visible_returns_none() {
    let mut n = Node::new(Config::new(nid(4), []), Restored::default()).unwrap();
    for _ in 0..100 {
        assert!(n.tick().is_none(), "an invisible tick handed out a Ready");
    }
    let r = n.step(Input::Tick).unwrap();
    assert!(r.is_empty());
    assert_eq!(r.id().get(), 1, "no Ready id was used before");
}
