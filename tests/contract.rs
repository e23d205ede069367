//! The five rules of the `step → Ready → advance` contract (DESIGN.md, "The
//! run loop"), each checked by tests that fail if the rule is broken.
//!
//! Most tests drive one `Node` by hand, so that which Ready carries what is
//! visible; the others use the cluster harness, which also checks rules 1 and
//! 5 on every Ready it handles.

mod common;

use common::*;
use zaft::{
    Config, Entry, EntryKind, Error, HardState, Index, Input, LogId, Message, Misuse, Node, Ready,
    ReadyId, Restored, Role, Term,
};

fn node(id: u64, voters: u64) -> Node {
    node_with(id, voters, |_| {})
}

fn node_with(id: u64, voters: u64, tweak: impl Fn(&mut Config)) -> Node {
    let mut cfg = Config::new(nid(id), (1..=voters).map(nid));
    tweak(&mut cfg);
    Node::new(cfg, Restored::default()).unwrap()
}

fn deliver(n: &mut Node, m: Message) -> Ready {
    n.step(Input::Message(m)).unwrap()
}

fn grants(r: &Ready) -> Vec<(u64, u64)> {
    r.messages()
        .iter()
        .filter(|m| is_vote_grant(m))
        .map(|m| (m.to.get(), m.term.get()))
        .collect()
}

fn acks(r: &Ready) -> Vec<u64> {
    r.messages()
        .iter()
        .filter_map(append_ack)
        .map(Index::get)
        .collect()
}

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.index.get()).collect()
}

// ---- rule 1: messages in a Ready are safe to send at once ------------------

/// Rule 1: a vote grant promises that the vote is on disk, so it is not in the
/// Ready of the step that granted it (which asks to persist the vote) but in
/// the one `advance` returns.
#[test]
fn vote_grant_is_held_until_the_vote_is_durable() {
    let mut n = node(1, 3);
    let r = deliver(&mut n, request_vote(2, 1, 1, LogId::ZERO));
    assert_eq!(
        r.hard_state().map(|h| (h.term, h.vote)),
        Some((Term(1), Some(nid(2))))
    );
    assert_eq!(grants(&r), [], "granted before the vote is durable");

    let tick = n.step(Input::Tick).unwrap();
    assert_eq!(grants(&tick), [], "released by a step, not by advance");

    let f = n.advance(r.id()).unwrap();
    assert_eq!(grants(&f), [(2, 1)]);
}

/// Rule 1: an append acknowledgement promises that the entries are on disk,
/// so it comes out of the `advance` that acknowledges their write.
#[test]
fn append_ack_is_held_until_the_entries_are_durable() {
    let mut n = node(1, 3);
    let r = deliver(&mut n, append(2, 1, 1, LogId::ZERO, log_of(&[1, 1]), 0));
    assert_eq!(indexes(r.entries()), [1, 2]);
    assert_eq!(acks(&r), Vec::<u64>::new(), "acknowledged before durable");
    let f = n.advance(r.id()).unwrap();
    assert_eq!(acks(&f), [2]);
}

/// Rule 1: `advance(id)` releases what Readies up to `id` held, and nothing
/// that a later, not yet durable Ready holds.
#[test]
fn advance_releases_only_what_the_acknowledged_readies_held() {
    let mut n = node(1, 3);
    let r1 = deliver(&mut n, append(2, 1, 1, LogId::ZERO, vec![ent(1, 1)], 0));
    let r2 = deliver(&mut n, append(2, 1, 1, lid(1, 1), vec![ent(1, 2)], 0));
    let f1 = n.advance(r1.id()).unwrap();
    assert_eq!(acks(&f1), [1]);
    let f2 = n.advance(r2.id()).unwrap();
    assert_eq!(acks(&f2), [2]);
}

/// Rule 1: no message of a term leaves before that term is durable at its
/// sender. A node that crashed before its fsync would come back in the
/// older term and could contradict what it said: a candidate's vote
/// requests, or a follower's first answer in a new term, wait for the
/// `advance` that makes the term durable.
#[test]
fn no_message_leaves_before_its_term_is_durable() {
    let mut n = node(1, 3);
    let r = n.step(Input::Campaign).unwrap();
    assert!(r.messages().is_empty(), "term 1 is not durable yet");
    assert_eq!(r.hard_state().map(|h| h.term), Some(Term(1)));
    let f = n.advance(r.id()).unwrap();
    let asked: Vec<u64> = f
        .messages()
        .iter()
        .filter(|m| is_vote_request(m))
        .map(|m| m.to.get())
        .collect();
    assert_eq!(asked, [2, 3]);

    let mut f = node(2, 3);
    let r = deliver(&mut f, heartbeat(1, 2, 4, 0));
    assert!(r.messages().is_empty(), "the answer waits for term 4");
    let after = f.advance(r.id()).unwrap();
    assert_eq!(after.messages().len(), 1);
    assert_eq!(after.messages()[0].term, Term(4));
}

/// Rule 1, the other half: what needs no durability is not delayed. A
/// refusal in a durable term and a leader's appends (a leader may send
/// entries before its own copy is durable, thesis §10.2.1) are in the
/// Ready of the step itself.
#[test]
fn messages_that_need_no_durability_are_in_the_steps_own_ready() {
    let mut n = node(1, 3);
    let r = n.step(Input::Campaign).unwrap();
    let _ = n.advance(r.id()).unwrap();

    let refusal = deliver(&mut n, request_vote(3, 1, 1, LogId::ZERO));
    assert_eq!(refusal.messages().len(), 1);
    assert_eq!(vote_answer(&refusal.messages()[0]), Some(false));

    let mut f = node(2, 3);
    let first = deliver(&mut f, heartbeat(1, 2, 1, 0));
    let _ = f.advance(first.id()).unwrap(); // term 1 is durable
    let reject = deliver(&mut f, append(1, 2, 1, lid(1, 5), vec![ent(1, 6)], 0));
    assert!(reject.messages().iter().any(is_append_reject));

    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(1);
    c.hold(1);
    c.propose(1, "x");
    let carrying_x = c
        .net
        .iter()
        .filter(|m| append_entries(m).iter().any(|e| e.data == "x"))
        .count();
    assert_eq!(
        carrying_x, 2,
        "entries go out with the Ready that persists them"
    );
    assert!(c.host(1).store.entries.iter().all(|e| e.data != "x"));
}

/// Rule 1 across a whole election and replication in which no host ever
/// syncs before the test says so: the harness checks every message against
/// the sender's disk when it is handed out.
#[test]
fn held_hosts_never_hand_out_a_promise_their_disk_does_not_keep() {
    let mut c = Cluster::new(3);
    for id in 1..=3 {
        c.hold(id);
    }
    c.campaign(1);
    c.stabilize();
    assert_eq!(
        c.count_sent(is_vote_request),
        0,
        "term 1 is not durable yet"
    );
    c.settle(1);
    c.stabilize();
    assert_eq!(c.count_sent(is_vote_request), 2);
    assert_eq!(c.count_sent(is_vote_grant), 0, "no vote is durable yet");
    assert_eq!(c.role(1), Role::Candidate);
    c.settle(2);
    c.stabilize();
    assert_eq!(c.count_sent(is_vote_grant), 1);
    assert!(c.node(1).is_leader());
    c.propose(1, "x");
    c.stabilize();
    assert_eq!(c.count_sent(|m| append_ack(m).is_some()), 0);
    for _ in 0..4 {
        for id in 1..=3 {
            c.settle(id);
        }
        c.stabilize();
    }
    assert!(c.has_applied(1, "x"));
    assert!(c.count_sent(|m| append_ack(m).is_some()) >= 2);
}

// ---- rule 2: the node counts itself only after persistence -----------------

/// Rule 2: a one-node cluster elects itself and commits on `advance`, never
/// on `step`.
#[test]
fn single_node_commits_on_advance_not_on_step() {
    let mut n = node(1, 1);
    let r = n.step(Input::Campaign).unwrap();
    assert_eq!(n.role(), Role::Candidate, "own vote not durable yet");
    let f = n.advance(r.id()).unwrap();
    assert!(n.is_leader());
    let noop = f.entries().to_vec();
    assert_eq!(noop.len(), 1);
    assert_eq!(noop[0].kind, EntryKind::Noop);
    assert!(f.committed().is_empty(), "committed before durable");
    let f = n.advance(f.id()).unwrap();
    assert_eq!(f.committed(), noop);
    let _ = n.advance(f.id()).unwrap();

    let p = n.step(Input::Propose("x".into())).unwrap();
    assert_eq!(indexes(p.entries()), [2]);
    assert!(p.committed().is_empty());
    assert_eq!(n.status().commit, Index(1));
    let f = n.advance(p.id()).unwrap();
    assert_eq!(n.status().commit, Index(2));
    assert_eq!(f.committed(), p.entries());
}

/// Rule 2: a candidate in a three-node cluster holding one peer's vote has a
/// majority only once its own vote is durable.
#[test]
fn candidate_with_one_peer_vote_leads_only_once_its_own_vote_is_durable() {
    let mut n = node(1, 3);
    let _campaign = n.step(Input::Campaign).unwrap();
    let vote = deliver(
        &mut n,
        msg(2, 1, 1, zaft::Body::RequestVoteResponse { granted: true }),
    );
    assert_eq!(n.role(), Role::Candidate);
    let _ = n.advance(vote.id()).unwrap();
    assert!(n.is_leader());
}

/// Rule 2: a leader's own entry counts towards a majority only once durable,
/// so one follower's acknowledgement is not enough in a cluster of three.
#[test]
fn leader_counts_its_own_entries_only_once_durable() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.hold(1);
    let p = c.propose(1, "x");
    c.stabilize();
    assert!(
        c.count_sent(|m| m.from == nid(2) && append_ack(m) == Some(p.last)) > 0,
        "node 2 acknowledged"
    );
    assert!(
        c.node(1).status().commit < p.last,
        "counted itself too early"
    );
    c.settle(1);
    assert_eq!(c.node(1).status().commit, p.last);
    assert!(c.has_applied(1, "x"));
}

// ---- rule 3: advance is cumulative; misuse is an error ------------------------

/// Rule 3: step many times, persist once, acknowledge the last id.
#[test]
fn one_advance_acknowledges_many_readies() {
    let mut n = node(1, 3);
    let mut last = None;
    for i in 1..=5 {
        let prev = if i == 1 { LogId::ZERO } else { lid(1, i - 1) };
        let r = deliver(&mut n, append(2, 1, 1, prev, vec![ent(1, i)], 0));
        assert_eq!(acks(&r), Vec::<u64>::new());
        last = Some(r.id());
    }
    assert_eq!(n.status().persisted, Index(0));
    let f = n.advance(last.unwrap()).unwrap();
    assert_eq!(n.status().persisted, Index(5));
    assert_eq!(acks(&f).last(), Some(&5));
}

/// Rule 3 with a partial sync: the host made Readies 1 and 2 durable but not
/// yet 3, and acknowledges 2. Ready 2 truncated entries of Ready 1 on disk;
/// Ready 3 (not durable) wrote them back in memory. The disk holds only the
/// first entry as the node's log has it, so the node must not count more as
/// persisted: no acknowledgement beyond it, nothing applied beyond it.
#[test]
fn acknowledging_an_older_ready_counts_only_what_the_disk_holds() {
    let mut n = node(1, 5);
    // Leader 2 of term 1 sends 1@1..1@3.
    let r1 = deliver(&mut n, append(2, 1, 1, LogId::ZERO, log_of(&[1, 1, 1]), 0));
    // Leader 3 of term 2 overwrites index 2 with 2@2.
    let r2 = deliver(&mut n, append(3, 1, 2, lid(1, 1), vec![ent(2, 2)], 0));
    assert_eq!(indexes(r2.entries()), [2]);
    // Leader 4 of term 3, elected without node 1, holds 1@2 and 1@3 again.
    let r3 = deliver(
        &mut n,
        append(4, 1, 3, lid(1, 1), vec![ent(1, 2), ent(1, 3), ent(3, 4)], 0),
    );
    assert_eq!(indexes(r3.entries()), [2, 3, 4]);
    // Disk: r1 then r2 = [1@1, 2@2]. The node's log: [1@1, 1@2, 1@3, 3@4].
    let f = n.advance(r2.id()).unwrap();
    assert_eq!(
        n.status().persisted,
        Index(1),
        "counted entries the disk does not hold as persisted"
    );
    // What Readies 1 and 2 held is released (each true of the disk when it
    // was written); nothing for leader 4, whose entries are not durable.
    assert_eq!(acks(&f), [3, 2]);
    assert!(f.messages().iter().all(|m| m.to != nid(4)));

    // Leader 4 has committed 3@4 with others and sends 1@2 and 1@3 again
    // (one message's worth). That must not be acknowledged yet, and the
    // commit index must not hand out entries that are not durable.
    let dup = deliver(
        &mut n,
        append(4, 1, 3, lid(1, 1), vec![ent(1, 2), ent(1, 3)], 4),
    );
    assert_eq!(
        acks(&dup),
        Vec::<u64>::new(),
        "acknowledged a non-durable log"
    );
    assert!(
        indexes(dup.committed()).iter().all(|&i| i <= 1),
        "handed out {:?} before it was durable",
        indexes(dup.committed())
    );
    // Once Ready 3 is durable too, everything is.
    let f = n.advance(dup.id()).unwrap();
    assert_eq!(n.status().persisted, Index(4));
    assert_eq!(acks(&f), [4, 3]);
    assert_eq!(indexes(f.committed()), [2, 3]);
    let _ = r1;
}

/// A Ready id that `other` handed out but `n` never did.
fn foreign_id(n: &Node) -> ReadyId {
    let mut other = node(3, 3);
    let mut r = other.step(Input::Tick).unwrap();
    while r.id().get() <= n.status().last_log.index.get() + 100 {
        r = other.step(Input::Tick).unwrap();
    }
    r.id()
}

/// Rule 3: acknowledging an id never handed out is `Error::Misuse`, and the
/// node carries on as if the call had not been made.
#[test]
fn advance_of_an_unknown_id_is_misuse_and_changes_nothing() {
    let mut n = node(1, 3);
    let r = deliver(&mut n, append(2, 1, 1, LogId::ZERO, vec![ent(1, 1)], 0));
    let before = n.status();
    let err = n.advance(foreign_id(&n)).unwrap_err();
    assert!(
        matches!(err, Error::Misuse(Misuse::AdvanceUnknown { .. })),
        "{err:?}"
    );
    assert!(!err.to_string().is_empty());
    assert_eq!(n.status(), before);
    assert_eq!(
        acks(&n.advance(r.id()).unwrap()),
        [1],
        "still held, still released"
    );
}

/// Rule 3: acknowledging the same id twice, or an older one, or id zero, is
/// `Error::Misuse` and changes nothing: nothing is released twice.
#[test]
fn advance_backwards_is_misuse_and_changes_nothing() {
    let mut n = node(1, 3);
    let r1 = deliver(&mut n, append(2, 1, 1, LogId::ZERO, vec![ent(1, 1)], 0));
    let r2 = deliver(&mut n, append(2, 1, 1, lid(1, 1), vec![ent(1, 2)], 0));
    assert_eq!(acks(&n.advance(r2.id()).unwrap()), [1, 2]);
    let before = n.status();
    for id in [r2.id(), r1.id(), ReadyId::default()] {
        let err = n.advance(id).unwrap_err();
        assert!(
            matches!(err, Error::Misuse(Misuse::AdvanceBackwards { .. })),
            "{id:?}: {err:?}"
        );
        assert_eq!(n.status(), before);
    }
    let r3 = n.step(Input::Tick).unwrap();
    assert_eq!(r3.id().get(), r2.id().get() + 2, "errors use no id");
    let f = n.advance(r3.id()).unwrap();
    assert_eq!(acks(&f), Vec::<u64>::new(), "released twice");
}

/// Rule 3 (with `Error`'s contract): a refused `step` changes nothing and
/// uses no Ready id.
#[test]
fn refused_step_changes_nothing_and_uses_no_id() {
    let mut n = node_with(1, 3, |c| c.forward_proposals = false);
    let r = n.step(Input::Tick).unwrap();
    let before = n.status();
    let err = n.step(Input::Propose("x".into())).unwrap_err();
    assert_eq!(err, Error::NotLeader { leader: None });
    let err = n.step(Input::ProposeBatch(Vec::new())).unwrap_err();
    assert_eq!(err, Error::Misuse(Misuse::EmptyProposal));
    assert_eq!(n.status(), before);
    assert_eq!(n.step(Input::Tick).unwrap().id().get(), r.id().get() + 1);
}

// ---- rule 4: every proposal gets an outcome -------------------------------------

/// Rule 4: a proposal's `(term, index)` is in `Ready::proposed`, and the entry
/// that commits with exactly that id carries the proposal.
#[test]
fn committed_proposal_shows_up_in_committed_with_its_log_id() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let p = c.propose(1, "x");
    assert_eq!(p.first, p.last);
    c.step(
        1,
        Input::ProposeBatch(vec!["a".into(), "b".into(), "c".into()]),
    );
    let batch = *c.host(1).proposed.last().unwrap();
    assert_eq!(batch.first, p.last.next());
    assert_eq!(batch.ids().count(), 3);
    c.stabilize();
    let applied = &c.host(1).applied;
    let find = |id: LogId| {
        applied
            .iter()
            .find(|e| e.id() == id)
            .map(|e| e.data.clone())
    };
    assert_eq!(find(p.ids().next().unwrap()).as_deref(), Some(&b"x"[..]));
    let got: Vec<_> = batch.ids().map(|id| find(id).unwrap()).collect();
    assert_eq!(got, ["a", "b", "c"]);
    assert!(c.host(1).lost.is_empty());
    assert_eq!(c.node(1).pending_proposals(), 0);
}

/// Rule 4: a proposal that a new leader overwrites is reported in
/// `Ready::lost`, so its client does not wait forever.
#[test]
fn proposal_overwritten_after_a_leader_change_is_reported_lost() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(1);
    let doomed = c.propose(1, "doomed");
    assert_eq!(doomed.ids().collect::<Vec<_>>(), [lid(1, 2)]);
    c.elect(2);
    c.propose(2, "winner");
    c.stabilize();

    c.heal();
    c.tick_and_stabilize(2);
    assert_eq!(c.role(1), Role::Follower);
    assert_eq!(c.host(1).lost, [lid(1, 2)]);
    assert_eq!(c.node(1).pending_proposals(), 0);
    for id in 1..=3 {
        assert!(!c.has_applied(id, "doomed"), "node {id}");
        assert!(c.has_applied(id, "winner"), "node {id}");
    }
}

// ---- rule 5: committed entries in order, exactly once ---------------------------

/// Rule 5: whatever the batching (small Readies, advances at odd moments),
/// committed entries come in index order, each once.
#[test]
fn committed_entries_come_in_order_exactly_once() {
    let mut n = node_with(1, 1, |c| c.max_committed_bytes_per_ready = 1);
    let mut handed = Vec::new();
    let mut unacked = Vec::new();
    let mut step = |n: &mut Node, input: Option<Input>, unacked: &mut Vec<ReadyId>| {
        let r = match input {
            Some(i) => n.step(i).unwrap(),
            None => match unacked.pop() {
                Some(id) => {
                    unacked.clear();
                    n.advance(id).unwrap()
                }
                None => return,
            },
        };
        handed.extend(indexes(r.committed()));
        unacked.push(r.id());
    };
    step(&mut n, Some(Input::Campaign), &mut unacked);
    for i in 0..100u64 {
        let input = match i % 7 {
            0 | 3 => Some(Input::Propose(format!("{i}").into())),
            1 => Some(Input::ProposeBatch(vec!["p".into(), "q".into()])),
            2 => Some(Input::Tick),
            _ => None,
        };
        if input.is_some() && !n.is_leader() {
            step(&mut n, None, &mut unacked);
            continue;
        }
        step(&mut n, input, &mut unacked);
    }
    for _ in 0..200 {
        step(&mut n, None, &mut unacked);
    }
    let last = n.status().last_log.index.get();
    assert!(last > 40);
    assert_eq!(handed, (1..=last).collect::<Vec<_>>());
}

/// Rule 5 across a restart: entries at or below the restored `applied` are
/// never handed out again; committed ones above it are, once.
#[test]
fn restart_hands_out_only_committed_entries_above_applied() {
    let restored = |applied: u64| Restored {
        hard_state: HardState {
            term: Term(1),
            vote: None,
            commit: Index(5),
        },
        entries: log_of(&[1, 1, 1, 1, 1, 1]),
        applied: Index(applied),
        lost_data: false,
        conf_state: None,
    };
    let cfg = Config::new(nid(1), [nid(1), nid(2), nid(3)]);
    let mut n = Node::new(cfg.clone(), restored(3)).unwrap();
    let r = n.step(Input::Tick).unwrap();
    assert_eq!(indexes(r.committed()), [4, 5]);
    let f = n.advance(r.id()).unwrap();
    assert!(f.committed().is_empty());
    assert_eq!(n.status().applied, Index(5));
    for _ in 0..3 {
        let r = n.step(Input::Tick).unwrap();
        assert!(r.committed().is_empty(), "handed out twice");
    }

    let mut n = Node::new(cfg, restored(5)).unwrap();
    let r = n.step(Input::Tick).unwrap();
    assert!(r.committed().is_empty(), "handed out again after restart");
}

/// Rule 5 with a crash: an entry handed to the state machine but not durably
/// applied comes again after the restart, once; the harness checks the order.
#[test]
fn entry_applied_but_not_durably_comes_again_once_after_a_crash() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "a");
    c.propose(1, "b");
    c.tick_and_stabilize(1);
    c.propose(1, "c");
    c.deliver_to(2);
    c.deliver_to(3);
    c.hold(2); // node 2 holds c durably but learns that it committed only now
    c.stabilize();
    assert_eq!(c.host(2).applied_data(), ["a", "b", "c"]);
    assert!(c.host(2).store.applied < c.host(2).applied_index());

    c.crash(2);
    assert_eq!(c.host(2).applied_data(), ["a", "b"]);
    c.restart(2);
    c.release(2);
    c.tick_and_stabilize(1);
    assert_eq!(c.host(2).applied_data(), ["a", "b", "c"]);
    c.assert_applied_equal();
}
