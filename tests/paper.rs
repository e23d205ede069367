//! One test per rule of the Raft paper, §5.1–§5.4 ("In Search of an
//! Understandable Consensus Algorithm", Ongaro and Ousterhout, 2014), plus the
//! paper's Figure 7 and Figure 8 scenarios. Each test cites the section whose
//! rule it checks.
//!
//! The harness (`tests/common`) also checks Election Safety, one vote per
//! term and State Machine Safety on every Ready of every test.

mod common;

use common::*;
use zaft::{Index, LogId, Role, Term};

// ---- §5.1 Raft basics: terms ---------------------------------------------

/// §5.1: "If a candidate or leader discovers that its term is out of date,
/// it immediately reverts to follower state." Here a leader cut off from the
/// cluster comes back after a new election.
#[test]
fn leader_that_sees_a_higher_term_reverts_to_follower() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(1);
    c.elect(2);
    assert_eq!(c.term(2), 2);
    assert!(c.node(1).is_leader(), "isolated, it cannot know yet");

    c.heal();
    c.tick(2); // a heartbeat of term 2 reaches node 1
    c.stabilize();
    assert_eq!(c.role(1), Role::Follower);
    assert_eq!(c.term(1), 2);
    assert_eq!(c.node(1).leader(), Some(nid(2)));
}

/// §5.1: a candidate that sees a higher term also reverts to follower (and
/// adopts the term).
#[test]
fn candidate_that_sees_a_higher_term_reverts_to_follower() {
    let mut c = Cluster::new(3);
    c.campaign(1);
    c.drop_all();
    assert_eq!(c.role(1), Role::Candidate);
    assert_eq!(c.term(1), 1);

    c.deliver(request_vote(3, 1, 5, LogId::ZERO));
    assert_eq!(c.role(1), Role::Follower);
    assert_eq!(c.term(1), 5);
}

/// §5.1: "If one server's current term is smaller than the other's, then it
/// updates its current term to the larger value", whatever the message.
#[test]
fn follower_adopts_a_higher_term_from_any_message() {
    let mut c = Cluster::new(3);
    c.deliver(msg(
        2,
        1,
        7,
        zaft::Body::RequestVoteResponse { granted: false },
    ));
    assert_eq!(c.term(1), 7);
    assert_eq!(c.role(1), Role::Follower);
    assert_eq!(c.node(1).status().vote, None, "a new term starts unvoted");
}

/// §5.1: "If a server receives a request with a stale term number, it
/// rejects the request": no append, no vote, and the answer carries the
/// newer term so the sender learns it is behind.
#[test]
fn request_with_a_stale_term_is_rejected() {
    let mut c = Cluster::build(3, |_| {}, |_| restored(3, log_of(&[1])));
    c.deliver(append(1, 2, 2, lid(1, 1), vec![ent(2, 2)], 0));
    c.deliver(request_vote(3, 2, 2, lid(2, 9)));
    assert_eq!(c.log_terms(2), vec![1], "a stale append must not be stored");
    assert_eq!(c.term(2), 3);

    let answers = c.take_where(|m| m.from == nid(2));
    assert_eq!(answers.len(), 2);
    for a in &answers {
        assert_eq!(
            a.term,
            Term(3),
            "the answer tells the sender the newer term"
        );
        assert!(!is_vote_grant(a) && append_ack(a).is_none(), "{a:?}");
    }
}

/// §5.1: a deposed leader learns the new term from the answers to its own
/// stale requests, and steps down.
#[test]
fn deposed_leader_steps_down_on_the_answer_to_its_stale_append() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(1);
    c.elect(2);
    c.heal();

    c.propose(1, "from the past");
    c.stabilize();
    assert_eq!(c.role(1), Role::Follower);
    assert_eq!(c.term(1), 2);
    assert!(c.leaders.get(&Term(2)) == Some(&nid(2)));
}

// ---- §5.2 Leader election --------------------------------------------------

/// §5.2: "If a follower receives no communication over a period of time
/// called the election timeout, then it ... begins an election": it
/// increments its term, votes for itself and asks every other server.
#[test]
fn follower_without_a_leader_campaigns_after_its_election_timeout() {
    let mut c = Cluster::new(3);
    let mut ticks = 0;
    while c.role(1) == Role::Follower {
        c.tick(1);
        ticks += 1;
        assert!(ticks <= 20, "no election after the maximum timeout");
    }
    assert!(
        ticks >= 10,
        "campaigned after {ticks} ticks, below the minimum"
    );
    assert_eq!(c.role(1), Role::Candidate);
    assert_eq!(c.term(1), 1);
    assert_eq!(c.node(1).status().vote, Some(nid(1)));
    let asked: Vec<_> = c.net.iter().filter(|m| is_vote_request(m)).collect();
    assert_eq!(asked.len(), 2);
    for m in asked {
        assert_eq!(m.term, Term(1));
        assert!(
            matches!(m.body, zaft::Body::RequestVote { last_log, .. } if last_log == LogId::ZERO)
        );
    }
}

/// §5.2: "Raft uses randomized election timeouts ... chosen randomly from a
/// fixed interval". Different seeds give different timeouts, all in range.
#[test]
fn election_timeouts_are_randomized_within_the_configured_range() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let mut c = Cluster::with_config(3, |cfg| {
            cfg.seed = seed;
            cfg.election_timeout_ticks_min = 10;
            cfg.election_timeout_ticks_max = 30;
        });
        let mut ticks = 0;
        while c.role(1) == Role::Follower {
            c.tick(1);
            ticks += 1;
        }
        assert!((10..=30).contains(&ticks), "timeout of {ticks} ticks");
        seen.insert(ticks);
    }
    assert!(seen.len() >= 8, "timeouts barely vary: {seen:?}");
}

/// §5.2: "election timeouts are chosen randomly ... so that in most cases
/// only a single server will time out". Nodes configured alike (the same
/// seed, as `Config::new` gives them) must still draw independent timeouts:
/// two nodes whose timers happen to fire together once must not keep firing
/// together, election after election, which would split every vote.
#[test]
fn nodes_with_the_same_seed_do_not_time_out_in_lockstep() {
    for seed in [0, 1, 9600] {
        let mut c = Cluster::with_config(5, |cfg| cfg.seed = seed);
        for id in 1..=5 {
            c.isolate(id);
        }
        // Node 1 campaigns once alone; from then on nodes 1 and 2 tick together.
        while c.role(1) == Role::Follower {
            c.tick(1);
        }
        let mut together = 0;
        let mut elections = 0;
        for _ in 0..300 {
            let (t1, t2) = (c.term(1), c.term(2));
            c.tick(1);
            c.tick(2);
            c.drop_all();
            let (fired1, fired2) = (c.term(1) > t1, c.term(2) > t2);
            elections += u32::from(fired1);
            together += u32::from(fired1 && fired2);
        }
        assert!(elections >= 10);
        assert!(
            together * 3 < elections,
            "seed {seed}: {together} of {elections} timeouts fired together"
        );
    }
}

/// §5.2: with randomized timeouts, "in most cases only a single server will
/// time out; it wins the election". Over many seeds every cluster elects one
/// leader, and every node follows it.
#[test]
fn randomized_timeouts_elect_exactly_one_leader() {
    for n in [3, 5] {
        for seed in 0..40 {
            let mut c = Cluster::with_config(n, |cfg| cfg.seed = seed);
            let leader = c.run_until_leader(200);
            c.tick_and_stabilize(3);
            c.assert_one_leader_per_term();
            let term = c.node(leader).term();
            for id in 1..=n {
                assert_eq!(c.node(id).term(), term, "seed {seed}");
                assert_eq!(c.node(id).leader(), Some(nid(leader)), "seed {seed}");
            }
            assert!(term.get() <= 3, "seed {seed}: {term:?} elections needed");
        }
    }
}

/// §5.2: "The third possible outcome is that a candidate neither wins nor
/// loses the election ... each candidate will time out and start a new
/// election". A split vote in term 1 is resolved by a later term.
#[test]
fn split_vote_is_resolved_by_a_later_election() {
    let mut c = Cluster::new(4);
    c.campaign(1);
    c.campaign(2);
    // Node 3 hears node 1 first, node 4 hears node 2 first: 2 votes each of 4.
    c.deliver_where(|m| m.from == nid(1) && m.to == nid(3));
    c.deliver_where(|m| m.from == nid(2) && m.to == nid(4));
    c.stabilize();
    assert!(c.leader().is_none(), "nobody can have three votes of four");
    assert!(!c.leaders.contains_key(&Term(1)));

    let leader = c.run_until_leader(100);
    assert!(c.term(leader) >= 2);
}

/// §5.2: "Each server will vote for at most one candidate in a given term,
/// on a first-come-first-served basis." Asking again gets the same answer.
#[test]
fn node_grants_at_most_one_vote_per_term() {
    let mut c = Cluster::new(3);
    c.deliver(request_vote(2, 1, 1, LogId::ZERO));
    c.deliver(request_vote(3, 1, 1, LogId::ZERO));
    c.deliver(request_vote(2, 1, 1, LogId::ZERO));
    let answers: Vec<_> = c
        .take_where(|m| m.from == nid(1))
        .into_iter()
        .map(|m| (m.to.get(), vote_answer(&m).unwrap()))
        .collect();
    assert_eq!(answers, vec![(2, true), (3, false), (2, true)]);
}

/// §5.2 with Figure 2 ("persistent state ... votedFor"): the vote survives a
/// restart, so a node cannot vote twice in a term by crashing in between.
#[test]
fn vote_survives_a_restart() {
    let mut c = Cluster::new(3);
    c.deliver(request_vote(2, 1, 1, LogId::ZERO));
    c.reboot(1);
    c.deliver(request_vote(3, 1, 1, LogId::ZERO));
    let answers: Vec<_> = c
        .take_where(|m| m.from == nid(1))
        .iter()
        .map(|m| (m.to.get(), vote_answer(m).unwrap()))
        .collect();
    assert_eq!(answers, vec![(2, true), (3, false)]);
}

/// §5.2: "A candidate wins an election if it receives votes from a majority
/// ... it then sends heartbeat messages to all of the other servers to
/// establish its authority."
#[test]
fn candidate_with_a_majority_of_votes_becomes_leader_and_asserts_itself() {
    let mut c = Cluster::new(5);
    c.isolate(4);
    c.isolate(5);
    c.campaign(1);
    c.stabilize();
    assert!(c.node(1).is_leader(), "3 of 5 votes are a majority");
    for id in 2..=3 {
        assert_eq!(c.node(id).leader(), Some(nid(1)));
    }
    let to: std::collections::BTreeSet<u64> = c
        .sent
        .iter()
        .filter(|m| m.from == nid(1) && is_append(m))
        .map(|m| m.to.get())
        .collect();
    assert_eq!(to, [2, 3, 4, 5].into(), "the new leader contacts everyone");
}

/// §5.2: "If the AppendEntries RPC is from another server claiming to be
/// leader ... [whose] term is at least as large as the candidate's current
/// term, then the candidate ... returns to follower state."
#[test]
fn candidate_steps_down_when_a_leader_of_its_term_appears() {
    let mut c = Cluster::new(3);
    c.campaign(1);
    c.drop_all(); // node 1's requests are lost
    c.campaign(2);
    c.deliver_where(|m| m.from == nid(2) && m.to == nid(3));
    c.deliver_to(2);
    assert!(c.node(2).is_leader());
    assert_eq!(c.role(1), Role::Candidate);
    assert_eq!(c.term(1), c.term(2), "both in term 1");

    c.stabilize();
    assert_eq!(c.role(1), Role::Follower);
    assert_eq!(c.term(1), 1);
    assert_eq!(c.node(1).leader(), Some(nid(2)));
}

/// §5.2: "If the term in the RPC is smaller than the candidate's current
/// term, then the candidate rejects the RPC and continues in candidate state."
#[test]
fn candidate_rejects_an_append_from_an_older_term() {
    let mut c = Cluster::build(3, |_| {}, |_| restored(1, Vec::new()));
    c.campaign(1);
    c.drop_all();
    assert_eq!(c.term(1), 2);
    c.deliver(append(2, 1, 1, LogId::ZERO, vec![ent(1, 1)], 0));
    assert_eq!(c.role(1), Role::Candidate);
    assert!(c.host(1).log.is_empty());
}

/// §5.2: a candidate that a majority refuses gives up and waits for the next
/// leader or timeout.
#[test]
fn candidate_refused_by_a_majority_returns_to_follower() {
    let mut c = Cluster::build(
        3,
        |_| {},
        |id| {
            if id == nid(1) {
                restored(1, log_of(&[1]))
            } else {
                restored(1, log_of(&[1, 1]))
            }
        },
    );
    c.campaign(1);
    c.stabilize();
    assert_eq!(c.role(1), Role::Follower);
    assert_eq!(c.term(1), 2);
}

// ---- §5.3 Log replication ----------------------------------------------------

/// §5.3: the leader appends a command to its log, replicates it, and once it
/// is committed every server applies it, in log order.
#[test]
fn proposals_are_replicated_and_applied_by_all_in_order() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for cmd in ["a", "b", "c"] {
        c.propose(1, cmd);
    }
    c.stabilize();
    c.tick_and_stabilize(1);
    for id in 1..=3 {
        assert_eq!(c.host(id).applied_data(), ["a", "b", "c"]);
    }
    c.assert_logs_equal();
}

/// §5.3: "If a follower does not find an entry in its log with the same index
/// and term [as prevLogIndex/prevLogTerm], then it refuses the new entries."
#[test]
fn follower_rejects_append_with_mismatched_prev() {
    let mut c = Cluster::build(3, |_| {}, |_| restored(2, log_of(&[1, 1])));
    // Same index, other term.
    c.deliver(append(1, 2, 2, lid(2, 2), vec![ent(2, 3)], 0));
    // Beyond the follower's log.
    c.deliver(append(1, 2, 2, lid(2, 5), vec![ent(2, 6)], 0));
    let answers = c.take_where(|m| m.from == nid(2));
    assert_eq!(answers.len(), 2);
    assert!(answers.iter().all(is_append_reject), "{answers:?}");
    assert_eq!(c.log_terms(2), vec![1, 1]);
}

/// §5.3: when the consistency check passes the follower stores the entries
/// and acknowledges the last of them.
#[test]
fn follower_accepts_append_whose_prev_matches() {
    let mut c = Cluster::build(3, |_| {}, |_| restored(2, log_of(&[1, 1])));
    c.deliver(append(1, 2, 2, lid(1, 2), vec![ent(2, 3), ent(2, 4)], 0));
    assert_eq!(c.log_terms(2), vec![1, 1, 2, 2]);
    let acks: Vec<_> = c.net.iter().filter_map(append_ack).collect();
    assert_eq!(acks, vec![Index(4)]);
}

/// §5.3: "If an existing entry conflicts with a new one (same index but
/// different terms), delete the existing entry and all that follow it."
#[test]
fn follower_truncates_a_conflicting_suffix_and_takes_the_leaders_entries() {
    let mut c = Cluster::build(3, |_| {}, |_| restored(2, log_of(&[1, 1, 2, 2])));
    c.deliver(append(1, 2, 3, lid(1, 2), vec![ent(3, 3)], 0));
    assert_eq!(c.log_terms(2), vec![1, 1, 3]);
    assert_eq!(c.host(2).log[2], ent(3, 3));
}

/// §5.3: only a real conflict truncates. A stale or duplicated AppendEntries
/// whose entries the follower already holds leaves the longer log alone
/// (truncating would lose entries the leader may already count as stored).
#[test]
fn follower_keeps_its_log_on_a_stale_or_duplicate_append() {
    let mut c = Cluster::build(3, |_| {}, |_| restored(1, Vec::new()));
    let full = append(1, 2, 1, LogId::ZERO, log_of(&[1, 1, 1]), 0);
    let short = append(1, 2, 1, LogId::ZERO, log_of(&[1]), 0);
    c.deliver(full.clone());
    c.deliver(short); // reordered: the older, shorter one arrives last
    assert_eq!(c.node(2).status().last_log, lid(1, 3));
    assert_eq!(c.log_terms(2), vec![1, 1, 1]);
    c.deliver(full); // duplicated
    assert_eq!(c.log_terms(2), vec![1, 1, 1]);
    let acks: Vec<_> = c.net.iter().filter_map(append_ack).collect();
    assert_eq!(acks, vec![Index(3), Index(1), Index(3)]);
}

/// §5.3 (Figure 2, AppendEntries rule 5): "If leaderCommit > commitIndex,
/// set commitIndex = min(leaderCommit, index of last new entry)". Entries
/// past those the leader just verified may be stale ones from an older term:
/// the follower must not commit them, whatever the leader's commit index.
#[test]
fn follower_commits_only_entries_the_leader_has_verified() {
    let mut c = Cluster::build(
        3,
        |_| {},
        |id| restored(2, log_of(if id == nid(2) { &[1, 1, 2] } else { &[1, 1] })),
    );
    // The leader of term 3 has committed its own entry at index 3; it probes
    // node 2 with an empty append after index 2.
    c.deliver(append(1, 2, 3, lid(1, 2), Vec::new(), 3));
    assert_eq!(c.node(2).status().commit, Index(2));
    assert_eq!(c.host(2).applied_index(), Index(2), "applied a stale entry");
    assert_eq!(
        c.net.iter().filter_map(append_ack).collect::<Vec<_>>(),
        [Index(2)]
    );
}

/// §5.3: "A log entry is committed once the leader that created the entry
/// has replicated it on a majority of the servers."
#[test]
fn entry_commits_once_a_majority_stores_it() {
    let mut c = Cluster::new(5);
    c.elect(1);
    let p = c.propose(1, "x");
    let index = p.last;

    c.deliver_where(|m| m.to == nid(2));
    c.deliver_to(1);
    assert!(c.node(1).status().commit < index, "2 of 5 is no majority");
    assert!(!c.has_applied(1, "x"));

    c.deliver_where(|m| m.to == nid(3));
    c.deliver_to(1);
    assert_eq!(c.node(1).status().commit, index, "3 of 5 is");
    assert!(c.has_applied(1, "x"));
}

/// §5.3: "The leader keeps track of the highest index it knows to be
/// committed, and it includes that index in future AppendEntries RPCs
/// (including heartbeats)": followers learn it and apply.
#[test]
fn followers_learn_the_commit_index_from_the_leader() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let p = c.propose(1, "x");
    c.stabilize();
    assert!(c.has_applied(1, "x"));
    c.tick(1);
    c.stabilize();
    for id in 2..=3 {
        assert_eq!(c.node(id).status().commit, p.last);
        assert!(c.has_applied(id, "x"));
    }
}

/// §5.3 (Leader Append-Only): a leader never overwrites or deletes entries in
/// its own log; an append claiming the same term is refused.
#[test]
fn leader_never_overwrites_its_own_log() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let before = c.host(1).log.clone();
    c.deliver(append(2, 1, 1, LogId::ZERO, vec![ent(1, 1), ent(1, 2)], 0));
    assert!(c.node(1).is_leader());
    assert_eq!(c.host(1).log, before);
}

/// Builds a three-node cluster in which node 1 holds `leader_log` and node 3
/// the same, node 2 holds `follower_log`, all at term `term`; node 1 is then
/// elected and everything is delivered. Returns the cluster and how many
/// AppendEntries node 2 rejected.
fn repair(term: u64, leader_log: &[u64], follower_log: &[u64]) -> (Cluster, usize) {
    let (l, f) = (log_of(leader_log), log_of(follower_log));
    let mut c = Cluster::build(
        3,
        |_| {},
        |id| restored(term, if id == nid(2) { f.clone() } else { l.clone() }),
    );
    c.elect(1);
    c.tick_and_stabilize(1);
    let rejections = c.count_sent(|m| m.from == nid(2) && is_append_reject(m));
    (c, rejections)
}

/// §5.3, fast backtracking ("the follower can include the term of the
/// conflicting entry and the first index it stores for that term"): the
/// leader finds the match point in a number of round trips bounded by the
/// number of divergent terms, not of divergent entries.
#[test]
fn backtracking_takes_one_round_trip_per_divergent_term_not_per_entry() {
    let k = 100;
    let run = |first: u64, second: u64, third: u64| -> Vec<u64> {
        let mut t = vec![1];
        for term in [first, second, third] {
            t.extend(std::iter::repeat_n(term, k));
        }
        t
    };
    // Both logs share [1, 2 x 100] and then diverge for 200 entries, over two
    // terms on the follower's side.
    let leader = run(2, 4, 6);
    let follower = run(2, 3, 5);
    let (c, rejections) = repair(6, &leader, &follower);
    assert!(
        (1..=2).contains(&rejections),
        "{rejections} rejections for 2 divergent terms"
    );
    assert_eq!(c.host(2).log, c.host(1).log);

    // A follower far behind in a term the leader has never seen.
    let (c, rejections) = repair(6, &run(5, 5, 5), &run(2, 3, 4));
    assert!(
        rejections <= 3,
        "{rejections} rejections for 3 divergent terms"
    );
    assert_eq!(c.host(2).log, c.host(1).log);
}

/// Figure 7 of the paper: the leader of term 8 holds 1,1,1,4,4,5,5,6,6,6.
const FIGURE_7_LEADER: [u64; 10] = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];

/// §5.3, Figure 7: whatever a follower's log looks like, the new leader makes
/// it identical to its own: missing entries are sent, extraneous ones
/// deleted. Every follower log below is one of the paper's (a)–(f).
fn figure_7(follower: &[u64]) {
    let (c, rejections) = repair(7, &FIGURE_7_LEADER, follower);
    assert_eq!(c.term(1), 8);
    let mut expected = FIGURE_7_LEADER.to_vec();
    expected.push(8); // the new leader's entry of its own term
    assert_eq!(c.log_terms(1), expected);
    assert_eq!(c.host(2).log, c.host(1).log, "follower repaired");
    assert!(rejections <= 1, "{rejections} rejections");
    for id in 1..=3 {
        assert_eq!(c.node(id).status().commit, Index(11));
    }
    c.assert_applied_equal();
}

/// §5.3, Figure 7 (a): the follower is missing the last entry.
#[test]
fn figure_7a_follower_missing_an_entry_is_caught_up() {
    figure_7(&[1, 1, 1, 4, 4, 5, 5, 6, 6]);
}

/// §5.3, Figure 7 (b): the follower is missing most of the log.
#[test]
fn figure_7b_follower_missing_many_entries_is_caught_up() {
    figure_7(&[1, 1, 1, 4]);
}

/// §5.3, Figure 7 (c): the follower has an extra uncommitted entry of term 6.
#[test]
fn figure_7c_follower_with_an_extra_entry_has_it_replaced() {
    figure_7(&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]);
}

/// §5.3, Figure 7 (d): the follower has extra entries of term 7.
#[test]
fn figure_7d_follower_with_extra_entries_of_a_later_term_has_them_removed() {
    figure_7(&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]);
}

/// §5.3, Figure 7 (e): the follower is missing entries and has extra ones of
/// term 4.
#[test]
fn figure_7e_follower_missing_and_extra_entries_is_repaired() {
    figure_7(&[1, 1, 1, 4, 4, 4, 4]);
}

/// §5.3, Figure 7 (f): the follower was leader of terms 2 and 3 and holds
/// entries nobody else has.
#[test]
fn figure_7f_follower_with_entries_of_terms_2_and_3_is_repaired() {
    figure_7(&[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]);
}

// ---- §5.4.1 Election restriction ---------------------------------------------

/// A node at `term` holding `log` is asked for its vote in `term + 1` by a
/// candidate whose last entry is `candidate_last`; returns the answer.
fn vote_for(log: &[u64], candidate_last: LogId) -> bool {
    let term = log.last().copied().unwrap_or(0);
    let mut c = Cluster::build(3, |_| {}, |_| restored(term, log_of(log)));
    c.deliver(request_vote(2, 1, term + 1, candidate_last));
    let answers = c.take_where(|m| m.from == nid(1));
    assert_eq!(answers.len(), 1);
    vote_answer(&answers[0]).unwrap()
}

/// §5.4.1: "If the logs have last entries with different terms, then the log
/// with the later term is more up-to-date": an older last term is refused,
/// however long the candidate's log.
#[test]
fn vote_refused_to_a_candidate_whose_last_term_is_older() {
    assert!(!vote_for(&[1, 2], lid(1, 50)));
}

/// §5.4.1: "If the logs end with the same term, then whichever log is longer
/// is more up-to-date."
#[test]
fn vote_refused_to_a_candidate_with_the_same_last_term_and_a_shorter_log() {
    assert!(!vote_for(&[1, 1, 1], lid(1, 2)));
    assert!(vote_for(&[1, 1, 1], lid(1, 3)), "equal logs are up to date");
}

/// §5.4.1: a later last term wins even with a shorter log.
#[test]
fn vote_granted_to_a_candidate_with_a_later_last_term_and_a_shorter_log() {
    assert!(vote_for(&[1, 1, 1], lid(2, 2)));
}

/// §5.4.1: "Raft uses the voting process to prevent a candidate from winning
/// an election unless its log contains all committed entries."
#[test]
fn node_missing_a_committed_entry_cannot_be_elected() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.propose(1, "x");
    c.stabilize();
    assert!(c.has_applied(1, "x"), "committed by nodes 1 and 2");

    c.heal();
    c.isolate(1);
    for _ in 0..5 {
        c.campaign(3);
        c.stabilize();
        assert!(!c.node(3).is_leader(), "node 3 lacks a committed entry");
    }
    c.elect(2);
    c.tick_and_stabilize(1);
    assert!(c.has_applied(2, "x") && c.has_applied(3, "x"));
}

// ---- §5.4.2 Committing entries from previous terms -----------------------------

/// §5.4.2, Figure 8, steps (a)–(d): an entry of an earlier term stored on a
/// majority is still not committed, and a later leader may overwrite it. The
/// leader of term 4 must not count replicas of the term-2 entry.
#[test]
fn figure_8_entry_of_an_earlier_term_on_a_majority_is_not_committed() {
    let mut c = figure_8_up_to_c();

    // (d) S1 crashes; S5 is elected with votes from S2, S3 and S4 (its last
    // term, 3, beats their 2) and overwrites index 2 everywhere.
    c.crash(1);
    c.drop_where(|m| m.from == nid(1));
    c.restart(5);
    c.campaign(5); // term 4: everyone voted for S1 there
    c.stabilize();
    assert!(!c.node(5).is_leader());
    c.campaign(5);
    c.stabilize();
    assert!(c.node(5).is_leader());
    assert_eq!(c.term(5), 5);
    c.tick_and_stabilize(1);
    for id in 2..=5 {
        assert_eq!(c.log_terms(id), vec![1, 3, 5], "node {id}");
    }
    assert_eq!(
        c.committed[&Index(2)].term,
        Term(3),
        "2@2 was never applied"
    );
}

/// §5.4.2, Figure 8, step (e): once the leader of term 4 has an entry of its
/// own term on a majority, that entry and the earlier ones are committed, and
/// S5 can no longer be elected.
#[test]
fn figure_8_entry_of_the_current_term_on_a_majority_commits_earlier_ones() {
    let mut c = figure_8_up_to_c();
    c.deliver_where(|m| m.to == nid(3) || m.to == nid(4));
    c.deliver_to(1);
    assert_eq!(c.node(1).status().commit, Index(3));
    assert_eq!(c.committed[&Index(2)].term, Term(2));

    c.crash(1);
    c.drop_where(|m| m.from == nid(1));
    c.restart(5);
    for _ in 0..3 {
        c.campaign(5);
        c.stabilize();
        assert!(!c.node(5).is_leader(), "S5 lacks committed entries");
    }
    c.elect(3);
    c.tick_and_stabilize(1);
    for id in 2..=5 {
        assert_eq!(&c.log_terms(id)[..3], &[1, 2, 4], "node {id}");
    }
}

/// Figure 8 (a)–(c), five servers, one entry per AppendEntries so that each
/// step of the figure is a message. Returns with S1 leader of term 4 holding
/// 1,2,4; S2, S3 and S4 holding 1,2 (S1 knows of S3 and S4); S5 crashed
/// holding 1,3; and S1's term-4 entry in flight to S3 and S4.
fn figure_8_up_to_c() -> Cluster {
    let mut c = Cluster::build(
        5,
        |cfg| cfg.max_entries_bytes_per_msg = 1,
        |_| {
            let mut r = restored(1, log_of(&[1]));
            r.hard_state.commit = Index(1);
            r
        },
    );
    // (a) S1 is leader of term 2 and replicates index 2 to S2 only.
    c.campaign(1);
    c.deliver_where(is_vote_request);
    c.deliver_to(1);
    assert!(c.node(1).is_leader() && c.term(1) == 2);
    c.deliver_where(|m| is_append(m) && m.to == nid(2));
    c.drop_all();
    assert_eq!(c.log_terms(1), vec![1, 2]);
    assert_eq!(c.log_terms(2), vec![1, 2]);

    // (b) S1 crashes; S5 is elected in term 3 by S3, S4 and itself, and
    // appends index 2 of term 3, which reaches nobody.
    c.crash(1);
    c.campaign(5);
    c.deliver_where(is_vote_request);
    c.deliver_to(5);
    assert!(c.node(5).is_leader() && c.term(5) == 3);
    c.drop_all();
    assert_eq!(c.log_terms(5), vec![1, 3]);

    // (c) S5 crashes; S1 restarts and is elected in term 4 (in term 3 S3
    // and S4 had voted for S5 already).
    c.crash(5);
    c.restart(1);
    c.campaign(1);
    c.stabilize();
    assert!(!c.node(1).is_leader());
    c.campaign(1);
    c.deliver_where(is_vote_request);
    c.deliver_to(1);
    assert!(c.node(1).is_leader() && c.term(1) == 4);
    assert_eq!(c.log_terms(1), vec![1, 2, 4]);
    // S1 replicates index 2 to S3 and S4: their first probe is rejected,
    // the second carries 2@2 alone.
    c.drop_where(|m| m.to == nid(2) || m.to == nid(5));
    c.deliver_where(|m| m.to == nid(3) || m.to == nid(4));
    c.deliver_to(1);
    c.deliver_where(|m| m.to == nid(3) || m.to == nid(4));
    c.deliver_to(1);
    for id in 2..=4 {
        assert_eq!(c.log_terms(id), vec![1, 2], "node {id}");
    }
    // Index 2 is on four servers and S1 knows of three: a majority, but of
    // an earlier term.
    assert_eq!(
        c.node(1).status().commit,
        Index(1),
        "the leader of term 4 committed a term-2 entry by counting replicas"
    );
    assert!(
        c.net
            .iter()
            .all(|m| append_entries(m).iter().map(|e| e.id()).eq([lid(4, 3)]))
    );
    assert_eq!(c.net.len(), 2);
    c
}

/// §5.4.2 and §8: a new leader commits an entry of its own term at the start
/// of its term, which commits the earlier entries it holds without waiting
/// for a client request.
#[test]
fn new_leaders_entry_of_its_term_lets_earlier_entries_commit() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "x");
    c.deliver_where(|m| m.to == nid(2)); // stored by node 2...
    c.drop_all(); // ...but the leader never hears it
    assert!(!c.has_applied(1, "x"));
    c.crash(1);

    c.elect(2);
    c.tick_and_stabilize(1);
    for id in 2..=3 {
        assert!(c.has_applied(id, "x"), "node {id}");
        assert_eq!(c.log_terms(id), vec![1, 1, 2]);
    }
}

// ---- heartbeats (§5.2) ------------------------------------------------------------

/// §5.2: "Leaders send periodic heartbeats ... to all followers", here every
/// `heartbeat_interval_ticks`.
#[test]
fn leader_sends_heartbeats_every_interval() {
    let mut c = Cluster::with_config(3, |cfg| cfg.heartbeat_interval_ticks = 3);
    c.elect(1);
    let beats = |c: &Cluster| c.count_sent(|m| m.from == nid(1) && is_heartbeat(m));
    for round in 1..=3 {
        c.tick(1);
        c.tick(1);
        assert_eq!(beats(&c), 2 * (round - 1));
        c.tick(1);
        assert_eq!(beats(&c), 2 * round, "one heartbeat per follower");
        c.stabilize();
    }
}

/// §5.2: "A server remains in follower state as long as it receives valid
/// RPCs from a leader", so a healthy cluster never holds another election.
#[test]
fn heartbeats_keep_followers_from_campaigning() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick_and_stabilize(200);
    assert_eq!(c.leader(), Some(1));
    for id in 1..=3 {
        assert_eq!(c.term(id), 1);
    }
    assert_eq!(c.count_sent(is_vote_request), 2, "only the first election");
}

/// §5.2: when the leader fails, the followers' timeouts fire and a new
/// leader is elected in a later term.
#[test]
fn followers_elect_a_new_leader_when_the_leader_fails() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.crash(1);
    let leader = c.run_until_leader(100);
    assert_ne!(leader, 1);
    assert!(c.term(leader) >= 2);
}

// ---- a one-node cluster ---------------------------------------------------------

/// §5.2 for a cluster of one: the node's own vote is a majority, but only
/// once it is durable.
#[test]
fn single_node_elects_itself_once_its_vote_is_durable() {
    let mut c = Cluster::new(1);
    c.hold(1);
    c.campaign(1);
    assert_eq!(c.role(1), Role::Candidate);
    c.settle(1);
    assert!(c.node(1).is_leader());
    assert_eq!(c.term(1), 1);
}

/// §5.3 for a cluster of one: a proposal commits when the node's own copy is
/// durable, that is on `advance`, not on the `step` that proposed it.
#[test]
fn single_node_commits_a_proposal_on_advance_not_on_step() {
    let mut c = Cluster::new(1);
    c.elect(1);
    c.hold(1);
    let p = c.propose(1, "x");
    assert!(c.node(1).status().commit < p.last);
    assert!(c.host(1).applied_data().is_empty());
    c.advance(1);
    assert_eq!(c.node(1).status().commit, p.last);
    c.settle(1);
    assert_eq!(c.host(1).applied_data(), ["x"]);
}
