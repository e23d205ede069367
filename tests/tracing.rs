//! The `tracing` feature: elections, leader stickiness and a CheckQuorum
//! step-down emit the events `zaft::trace_events` documents, with the
//! documented fields.
//!
//! A tiny subscriber, installed once for the whole binary, records every
//! event with the thread that emitted it; each test reads back its own.
#![cfg(feature = "tracing")]

mod common;

use std::collections::BTreeMap;
use std::sync::{Mutex, Once};
use std::thread::{self, ThreadId};

use common::{Cluster, lid, nid, request_vote};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use zaft::trace_events::{self as ev, EVENTS, TARGET};
use zaft::{Input, Role};

#[derive(Clone, Debug, PartialEq)]
enum Value {
    U64(u64),
    Str(String),
    Other(String),
}

/// One event as a subscriber sees it.
#[derive(Clone, Debug)]
struct Recorded {
    level: Level,
    target: String,
    name: &'static str,
    fields: BTreeMap<&'static str, Value>,
}

impl Recorded {
    fn event(&self) -> &str {
        match self.fields.get("event") {
            Some(Value::Str(s)) => s,
            other => panic!("no event field: {other:?} in {self:?}"),
        }
    }

    fn u64(&self, field: &str) -> u64 {
        match self.fields.get(field) {
            Some(Value::U64(v)) => *v,
            other => panic!("{field} is not a u64: {other:?} in {self:?}"),
        }
    }

    /// A `str` field, or a `Debug` one (the variant names of `Role` and
    /// `DropReason`).
    fn text(&self, field: &str) -> &str {
        match self.fields.get(field) {
            Some(Value::Str(s) | Value::Other(s)) => s,
            other => panic!("{field} is not text: {other:?} in {self:?}"),
        }
    }

    fn node(&self) -> u64 {
        self.u64("node")
    }
}

static RECORDED: Mutex<Vec<(ThreadId, Recorded)>> = Mutex::new(Vec::new());

struct Capture;

impl Visit for Recorded {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name(), Value::U64(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields
            .insert(field.name(), Value::Str(value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields
            .insert(field.name(), Value::Other(format!("{value:?}")));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut r = Recorded {
            level: *meta.level(),
            target: meta.target().to_owned(),
            name: meta.name(),
            fields: BTreeMap::new(),
        };
        event.record(&mut r);
        RECORDED.lock().unwrap().push((thread::current().id(), r));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Runs `f` and returns the events it emitted, each checked against the
/// documentation.
fn events_of(f: impl FnOnce()) -> Vec<Recorded> {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(Capture).expect("no other subscriber");
    });
    let me = thread::current().id();
    RECORDED.lock().unwrap().retain(|(t, _)| *t != me);
    f();
    let mine: Vec<Recorded> = RECORDED
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t == me)
        .map(|(_, r)| r.clone())
        .collect();
    for r in &mine {
        assert_documented(r);
    }
    mine
}

/// The target, the name and the fields are the ones `trace_events` lists.
fn assert_documented(r: &Recorded) {
    assert_eq!(r.target, TARGET);
    assert_eq!(r.name, r.event(), "the callsite is named after the event");
    let Some((_, fields)) = EVENTS.iter().find(|(name, _)| *name == r.event()) else {
        panic!("undocumented event {r:?}");
    };
    r.node();
    r.u64("term");
    for f in r.fields.keys() {
        assert!(
            ["event", "node", "term"].contains(f) || fields.contains(f),
            "undocumented field {f} in {r:?}"
        );
    }
}

/// The events of node `id`, by name, in order.
fn names(events: &[Recorded], id: u64) -> Vec<&str> {
    events
        .iter()
        .filter(|r| r.node() == id)
        .map(Recorded::event)
        .collect()
}

fn find<'a>(events: &'a [Recorded], id: u64, name: &str) -> &'a Recorded {
    events
        .iter()
        .find(|r| r.node() == id && r.event() == name)
        .unwrap_or_else(|| panic!("node {id} emitted no {name}: {events:#?}"))
}

fn check_quorum(c: &mut zaft::Config) {
    c.check_quorum = true;
}

/// Node 1 asked to campaign: it enters term 1, starts a vote, wins it and
/// says it leads; its peers report the new term.
#[test]
fn an_election_reports_started_won_and_the_new_role() {
    let mut c = Cluster::new(3);
    let events = events_of(|| c.elect(1));
    // (Then the leader's first appends pause its probing followers, and the
    // vote that came after the majority is dropped as stale.)
    assert_eq!(
        names(&events, 1)[..5],
        [
            ev::TERM_CHANGED,
            ev::ELECTION_STARTED,
            ev::ROLE_CHANGED,
            ev::ELECTION_WON,
            ev::ROLE_CHANGED,
        ]
    );
    let started = find(&events, 1, ev::ELECTION_STARTED);
    assert_eq!(started.level, Level::INFO);
    assert_eq!(started.text("kind"), "vote");
    assert_eq!(started.text("reason"), "campaign");
    assert_eq!(started.u64("term"), 1);
    assert_eq!(started.u64("election_term"), 1);
    assert_eq!(started.u64("last_log_index"), 0);
    assert_eq!(started.u64("last_log_term"), 0);

    let won = find(&events, 1, ev::ELECTION_WON);
    assert_eq!(won.level, Level::INFO);
    assert_eq!(won.text("kind"), "vote");
    assert_eq!(won.u64("term"), 1);
    assert_eq!(won.u64("voters"), 3);
    assert!(won.u64("granted") >= 2, "{won:?}");

    let roles: Vec<_> = events
        .iter()
        .filter(|r| r.node() == 1 && r.event() == ev::ROLE_CHANGED)
        .map(|r| (r.text("from_role"), r.text("role"), r.u64("term")))
        .collect();
    assert_eq!(
        roles,
        [("Follower", "Candidate", 1), ("Candidate", "Leader", 1)]
    );
    for peer in [2, 3] {
        let t = find(&events, peer, ev::TERM_CHANGED);
        assert_eq!((t.u64("from_term"), t.u64("term")), (0, 1));
    }
}

/// With PreVote, an election timeout starts a pre-vote round; winning it
/// starts the real election, whose reason says so.
#[test]
fn a_timeout_with_pre_vote_reports_both_rounds() {
    let mut c = Cluster::with_config(3, |cfg| cfg.pre_vote = true);
    let events = events_of(|| {
        for _ in 0..30 {
            c.tick(1);
            c.stabilize();
        }
    });
    assert_eq!(c.role(1), Role::Leader);
    let rounds: Vec<_> = events
        .iter()
        .filter(|r| r.node() == 1)
        .filter(|r| r.event() == ev::ELECTION_STARTED || r.event() == ev::ELECTION_WON)
        .map(|r| (r.event(), r.text("kind"), r.u64("term")))
        .collect();
    assert_eq!(
        rounds,
        [
            (ev::ELECTION_STARTED, "pre_vote", 0),
            (ev::ELECTION_WON, "pre_vote", 0),
            (ev::ELECTION_STARTED, "vote", 1),
            (ev::ELECTION_WON, "vote", 1),
        ]
    );
    let starts: Vec<_> = events
        .iter()
        .filter(|r| r.node() == 1 && r.event() == ev::ELECTION_STARTED)
        .map(|r| (r.text("reason"), r.u64("election_term")))
        .collect();
    assert_eq!(starts, [("timeout", 1), ("pre_vote_won", 1)]);
}

/// A leader cut off from every follower steps down after an election
/// timeout, says why, and becomes a follower.
#[test]
fn a_check_quorum_step_down_is_reported() {
    let mut c = Cluster::with_config(3, check_quorum);
    c.elect(1);
    c.isolate(1);
    let events = events_of(|| {
        for _ in 0..25 {
            c.tick(1);
            c.stabilize();
        }
    });
    assert_eq!(c.role(1), Role::Follower);
    let down = find(&events, 1, ev::CHECK_QUORUM_STEP_DOWN);
    assert_eq!(down.level, Level::WARN);
    assert_eq!(down.u64("term"), 1);
    assert_eq!(down.u64("active"), 1);
    assert_eq!(down.u64("voters"), 3);
    let after: Vec<_> = names(&events, 1)
        .into_iter()
        .skip_while(|n| *n != ev::CHECK_QUORUM_STEP_DOWN)
        .take(2)
        .collect();
    assert_eq!(after, [ev::CHECK_QUORUM_STEP_DOWN, ev::ROLE_CHANGED]);
    let role = find(&events, 1, ev::ROLE_CHANGED);
    assert_eq!(
        (role.text("from_role"), role.text("role")),
        ("Leader", "Follower")
    );
    assert_eq!(role.u64("term"), 1);
}

/// Leader stickiness: a follower that hears its leader ignores a vote
/// request of a newer term, says so, and counts the drop.
#[test]
fn a_vote_ignored_for_a_live_leader_is_reported_with_the_drop() {
    let mut c = Cluster::with_config(3, check_quorum);
    c.elect(1);
    let events = events_of(|| c.deliver(request_vote(3, 2, 5, lid(1, 1))));
    assert_eq!(names(&events, 2), [ev::VOTE_IGNORED, ev::MESSAGE_DROPPED]);
    let ignored = find(&events, 2, ev::VOTE_IGNORED);
    assert_eq!(ignored.u64("term"), 1);
    assert_eq!(ignored.u64("from"), 3);
    assert_eq!(ignored.text("kind"), "vote");
    assert_eq!(ignored.u64("candidate_term"), 5);
    assert_eq!(ignored.u64("leader"), 1);
    let dropped = find(&events, 2, ev::MESSAGE_DROPPED);
    assert_eq!(dropped.level, Level::DEBUG);
    assert_eq!(dropped.text("reason"), "LeaderAlive");
}

/// A leadership transfer reports each step: started, TimeoutNow sent, the
/// target's election (reason `transfer`) and the outcome.
#[test]
fn a_leadership_transfer_reports_each_step() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let events = events_of(|| {
        c.step(1, Input::TransferLeader(nid(2)));
        c.stabilize();
    });
    assert_eq!(c.leader(), Some(2));
    let transfer: Vec<_> = names(&events, 1)
        .into_iter()
        .filter(|n| n.starts_with("transfer_"))
        .collect();
    assert_eq!(
        transfer,
        [
            ev::TRANSFER_STARTED,
            ev::TRANSFER_TIMEOUT_NOW_SENT,
            ev::TRANSFER_ENDED
        ]
    );
    let started = find(&events, 1, ev::TRANSFER_STARTED);
    assert_eq!(started.u64("to"), 2);
    assert_eq!(started.u64("match_index"), started.u64("last_index"));
    assert_eq!(find(&events, 1, ev::TRANSFER_TIMEOUT_NOW_SENT).u64("to"), 2);
    let election = find(&events, 2, ev::ELECTION_STARTED);
    assert_eq!(election.text("reason"), "transfer");
    assert_eq!(election.u64("election_term"), 2);
    let ended = find(&events, 1, ev::TRANSFER_ENDED);
    assert_eq!((ended.u64("to"), ended.text("outcome")), (2, "Succeeded"));
    assert_eq!(
        ended.u64("term"),
        1,
        "reported before the new term is taken"
    );
}

/// A transfer the host aborts ends with the outcome `Aborted`.
#[test]
fn an_aborted_transfer_reports_its_outcome() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.propose(1, "x");
    c.stabilize();
    let events = events_of(|| {
        c.step(1, Input::TransferLeader(nid(3)));
        c.step(1, Input::AbortTransfer);
    });
    let ended = find(&events, 1, ev::TRANSFER_ENDED);
    assert_eq!((ended.u64("to"), ended.text("outcome")), (3, "Aborted"));
    assert!(
        !names(&events, 1).contains(&ev::TRANSFER_TIMEOUT_NOW_SENT),
        "the isolated target is behind: it is never told to campaign"
    );
}

/// A membership change is reported where it comes into force: at the
/// leader when it appends the entry, at a follower when the entry arrives.
#[test]
fn a_membership_change_reports_the_configuration_in_force() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let events = events_of(|| {
        c.step(
            1,
            Input::ChangeMembership(zaft::MembershipChange::remove(nid(3))),
        );
        c.stabilize();
    });
    for id in [1, 2] {
        let e = find(&events, id, ev::MEMBERSHIP_CHANGED);
        assert_eq!(e.level, Level::INFO);
        assert_eq!(e.u64("index"), 2);
        assert_eq!((e.u64("voters"), e.u64("voters_outgoing")), (2, 0));
        assert_eq!(e.u64("learners"), 0);
        assert_eq!(e.text("removed"), "false");
    }
    let third = events
        .iter()
        .filter(|r| r.node() == 3 && r.event() == ev::MEMBERSHIP_CHANGED)
        .count();
    assert_eq!(third, 0, "the leader stopped sending to the removed node");
}
