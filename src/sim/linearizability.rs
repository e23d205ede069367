//! A linearizability checker for histories of a key-value register store.
//!
//! A history is what the clients saw: for each operation, when it was invoked,
//! when its answer arrived, and what the answer was. [`check`] decides whether
//! there is one total order of the operations that (1) respects real time — an
//! operation that completed before another was invoked comes first — and (2)
//! makes every read return the value of the latest write before it on its key.
//! Each key is an independent register (initially absent), so the history is
//! split per key and each key is searched on its own: a history is
//! linearizable exactly when each key's sub-history is.
//!
//! The search is the Wing–Gong–Lowe algorithm with memoisation: walk the
//! operations in order of invocation, try to linearize each pending one,
//! backtrack when an operation's completion is reached before it was placed,
//! and never revisit a (set of placed operations, register value) pair already
//! explored. It is exponential in the worst case, so each key gets a budget of
//! search steps; a key whose budget runs out is reported as undecided, not as a
//! violation.
//!
//! Outcomes that are not a plain success are handled as follows:
//!
//! - [`Outcome::Fail`]: the operation definitely had no effect. It is left
//!   out of the search.
//! - [`Outcome::Unknown`]: the client gave up (a timeout, a crash). A write
//!   may have taken effect at any moment after its invocation, or never; it is
//!   searched as an operation that may be placed anywhere after `invoke`, or
//!   left out. An unknown read constrains nothing and is left out.
//!
//! Times are plain numbers in any unit, as long as all events use the same
//! one. An operation `a` precedes `b` only if `a.complete < b.invoke`: equal
//! times count as concurrent.
//!
//! The module has no dependency on the rest of the simulator, so it can check
//! a history recorded against a real server just as well:
//!
//! ```
//! use zaft::sim::linearizability::{check, Event, Op, Outcome};
//!
//! let history = [
//!     Event { client: 1, op: Op::Write { key: 7, value: 1 }, invoke: 0, complete: 10, outcome: Outcome::Ok(None) },
//!     // A read that starts after the write completed must see it.
//!     Event { client: 2, op: Op::Read { key: 7 }, invoke: 20, complete: 30, outcome: Outcome::Ok(None) },
//! ];
//! let violation = check(&history).unwrap_err();
//! assert_eq!(violation.key, 7);
//! println!("{violation}");
//! ```

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::BuildHasherDefault;

/// One operation on the store.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Op {
    /// Set `key` to `value`.
    Write {
        /// The key written.
        key: u64,
        /// The value written.
        value: u64,
    },
    /// Read `key`.
    Read {
        /// The key read.
        key: u64,
    },
}

impl Op {
    /// The key the operation touches.
    pub fn key(&self) -> u64 {
        match *self {
            Op::Write { key, .. } | Op::Read { key } => key,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Write { key, value } => write!(f, "write({key}, {value})"),
            Op::Read { key } => write!(f, "read({key})"),
        }
    }
}

/// What the client learnt about an operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Outcome {
    /// It took effect. For a read, the value seen (`None`: the key was
    /// absent); for a write, `Ok(None)` (a value given for a write is ignored).
    Ok(Option<u64>),
    /// It definitely did not take effect (for example, the server refused it
    /// before doing anything).
    Fail,
    /// It may or may not have taken effect (the client timed out or the
    /// server crashed before answering).
    Unknown,
}

/// One operation of a history, from invocation to answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Event {
    /// Who issued the operation (only used in reports).
    pub client: u64,
    /// The operation.
    pub op: Op,
    /// When the client sent it.
    pub invoke: u64,
    /// When the client got the answer. Ignored for [`Outcome::Unknown`]; a
    /// value below `invoke` is read as `invoke`.
    pub complete: u64,
    /// The answer.
    pub outcome: Outcome,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} {} ", self.client, self.op)?;
        match self.outcome {
            Outcome::Ok(v) => {
                if let Op::Read { .. } = self.op {
                    match v {
                        Some(v) => write!(f, "-> {v} ")?,
                        None => write!(f, "-> absent ")?,
                    }
                } else {
                    write!(f, "ok ")?;
                }
                write!(f, "[{}, {}]", self.invoke, self.complete.max(self.invoke))
            }
            Outcome::Fail => write!(f, "failed [{}, {}]", self.invoke, self.complete),
            Outcome::Unknown => write!(f, "unknown [{}, ..)", self.invoke),
        }
    }
}

/// The search steps each key gets from [`check`].
pub const DEFAULT_BUDGET_PER_KEY: u64 = 2_000_000;

/// What a successful [`check_with_budget`] looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Keys checked.
    pub keys: usize,
    /// Operations that took part in the search (failed operations and
    /// unknown reads are left out).
    pub ops: usize,
    /// Keys whose search ran out of budget: neither proven linearizable nor
    /// refuted. Empty when the whole history is proven linearizable.
    pub undecided_keys: Vec<u64>,
    /// Search steps used, over all keys.
    pub steps: u64,
}

/// Proof that a history is not linearizable: one key whose operations cannot
/// be ordered. Its `Display` names the key, the longest order found and the
/// operation that could not be placed after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key whose sub-history is not linearizable.
    pub key: u64,
    /// The operations of that key that took part in the search, sorted by
    /// invocation.
    pub ops: Vec<Event>,
    /// The longest sequence of `ops` (by position) that the search could
    /// linearize.
    pub longest: Vec<usize>,
    /// An operation (by position in `ops`) that had completed but could not be
    /// placed after `longest`.
    pub stuck: Option<usize>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "history not linearizable on key {}: no order of its {} operations respects real time and register semantics",
            self.key,
            self.ops.len()
        )?;
        const SHOW: usize = 12;
        let skip = self.longest.len().saturating_sub(SHOW);
        writeln!(
            f,
            "  longest linearizable order found ({} ops{}):",
            self.longest.len(),
            if skip > 0 { ", last ones shown" } else { "" }
        )?;
        for &i in &self.longest[skip..] {
            writeln!(f, "    #{i} {}", self.ops[i])?;
        }
        if let Some(i) = self.stuck {
            writeln!(f, "  then cannot place: #{i} {}", self.ops[i])?;
        }
        const ALL: usize = 40;
        if self.ops.len() <= ALL {
            writeln!(f, "  all operations on key {}:", self.key)?;
            for (i, e) in self.ops.iter().enumerate() {
                writeln!(f, "    #{i} {e}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// Checks `history` for linearizability with [`DEFAULT_BUDGET_PER_KEY`]
/// search steps per key.
///
/// Returns `Ok` when no violation was found: every key is either proven
/// linearizable or ran out of budget (use [`check_with_budget`] to learn which).
pub fn check(history: &[Event]) -> Result<(), Violation> {
    check_with_budget(history, DEFAULT_BUDGET_PER_KEY).map(|_| ())
}

/// Checks `history` for linearizability, giving each key at most
/// `budget_per_key` search steps. The report lists the keys left undecided.
pub fn check_with_budget(history: &[Event], budget_per_key: u64) -> Result<Report, Violation> {
    let mut by_key: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
    for e in history {
        // Failed operations had no effect, and an unknown read constrains
        // nothing.
        let keep = !matches!(
            (e.outcome, e.op),
            (Outcome::Fail, _) | (Outcome::Unknown, Op::Read { .. })
        );
        if keep {
            let mut e = *e;
            e.complete = e.complete.max(e.invoke);
            by_key.entry(e.op.key()).or_default().push(e);
        }
    }
    let mut report = Report {
        keys: by_key.len(),
        ..Report::default()
    };
    for (key, mut ops) in by_key {
        ops.sort_by_key(|e| (e.invoke, e.complete, e.client));
        report.ops += ops.len();
        let mut search = Search::new(&ops);
        let verdict = search.run(budget_per_key);
        report.steps += search.steps;
        match verdict {
            Verdict::Linearizable => {}
            Verdict::Undecided => report.undecided_keys.push(key),
            Verdict::Violated => {
                return Err(Violation {
                    key,
                    longest: search.longest,
                    stuck: search.stuck,
                    ops,
                });
            }
        }
    }
    Ok(report)
}

enum Verdict {
    Linearizable,
    Violated,
    Undecided,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// The register value: `None` while the key is absent.
type State = Option<u64>;

/// One key's search. Entries of a doubly linked list (index 0 is the head)
/// stand for invocations and completions in time order; placing an operation
/// unlinks both of its entries, and backtracking links them back in reverse
/// order (the order of removals is last-in first-out, so the links are exact).
struct Search<'a> {
    ops: &'a [Event],
    prev: Vec<usize>,
    next: Vec<usize>,
    /// For each list entry: the operation and whether it is an invocation.
    entry_op: Vec<usize>,
    entry_is_call: Vec<bool>,
    call_entry: Vec<usize>,
    /// The completion entry of each operation; `NIL` for unknown writes.
    return_entry: Vec<usize>,
    steps: u64,
    longest: Vec<usize>,
    stuck: Option<usize>,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [Event]) -> Search<'a> {
        // (time, completions after invocations at equal times, op, is_return)
        let mut points: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, e) in ops.iter().enumerate() {
            points.push((e.invoke, 0, i));
            if !matches!(e.outcome, Outcome::Unknown) {
                points.push((e.complete, 1, i));
            }
        }
        points.sort_unstable();
        let m = points.len() + 1;
        let mut s = Search {
            ops,
            prev: (0..m).map(|i| i.wrapping_sub(1)).collect(),
            next: (0..m)
                .map(|i| if i + 1 < m { i + 1 } else { NIL })
                .collect(),
            entry_op: vec![NIL; m],
            entry_is_call: vec![false; m],
            call_entry: vec![NIL; ops.len()],
            return_entry: vec![NIL; ops.len()],
            steps: 0,
            longest: Vec::new(),
            stuck: None,
        };
        for (k, &(_, kind, op)) in points.iter().enumerate() {
            let entry = k + 1;
            s.entry_op[entry] = op;
            s.entry_is_call[entry] = kind == 0;
            if kind == 0 {
                s.call_entry[op] = entry;
            } else {
                s.return_entry[op] = entry;
            }
        }
        s
    }

    fn unlink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        if n != NIL {
            self.prev[n] = x;
        }
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_entry[op]);
        if self.return_entry[op] != NIL {
            self.unlink(self.return_entry[op]);
        }
    }

    fn unlift(&mut self, op: usize) {
        if self.return_entry[op] != NIL {
            self.relink(self.return_entry[op]);
        }
        self.relink(self.call_entry[op]);
    }

    /// The register step: whether `op` may come next in state `s`, and the
    /// state after it.
    fn apply(&self, s: State, op: usize) -> Option<State> {
        let e = &self.ops[op];
        match (e.op, e.outcome) {
            (Op::Write { value, .. }, _) => Some(Some(value)),
            (Op::Read { .. }, Outcome::Ok(seen)) => (seen == s).then_some(s),
            // Unknown and failed reads were filtered out before the search.
            (Op::Read { .. }, _) => Some(s),
        }
    }

    fn run(&mut self, budget: u64) -> Verdict {
        let n = self.ops.len();
        let mut remaining = self.return_entry.iter().filter(|&&r| r != NIL).count();
        let mut placed = vec![0u64; n.div_ceil(64)];
        let mut seen: HashSet<(Vec<u64>, State), BuildHasherDefault<DefaultHasher>> =
            HashSet::default();
        let mut stack: Vec<(usize, State)> = Vec::new();
        let mut state: State = None;
        let mut cur = self.next[HEAD];
        loop {
            if remaining == 0 {
                return Verdict::Linearizable;
            }
            if self.steps >= budget {
                return Verdict::Undecided;
            }
            self.steps += 1;
            if cur != NIL && self.entry_is_call[cur] {
                let op = self.entry_op[cur];
                if let Some(next_state) = self.apply(state, op) {
                    placed[op / 64] |= 1 << (op % 64);
                    if seen.insert((placed.clone(), next_state)) {
                        stack.push((op, state));
                        state = next_state;
                        self.lift(op);
                        if self.return_entry[op] != NIL {
                            remaining -= 1;
                        }
                        if stack.len() > self.longest.len() {
                            self.longest = stack.iter().map(|&(o, _)| o).collect();
                            self.stuck = None;
                        }
                        cur = self.next[HEAD];
                        continue;
                    }
                    placed[op / 64] &= !(1 << (op % 64));
                }
                cur = self.next[cur];
            } else {
                // A completion reached before its operation was placed (or,
                // defensively, the end of the list): undo the last choice.
                if cur != NIL && self.stuck.is_none() && stack.len() == self.longest.len() {
                    self.stuck = Some(self.entry_op[cur]);
                }
                let Some((op, before)) = stack.pop() else {
                    return Verdict::Violated;
                };
                state = before;
                placed[op / 64] &= !(1 << (op % 64));
                self.unlift(op);
                if self.return_entry[op] != NIL {
                    remaining += 1;
                }
                cur = self.next[self.call_entry[op]];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Rng;

    fn w(client: u64, key: u64, value: u64, invoke: u64, complete: u64) -> Event {
        Event {
            client,
            op: Op::Write { key, value },
            invoke,
            complete,
            outcome: Outcome::Ok(None),
        }
    }

    fn r(client: u64, key: u64, seen: Option<u64>, invoke: u64, complete: u64) -> Event {
        Event {
            client,
            op: Op::Read { key },
            invoke,
            complete,
            outcome: Outcome::Ok(seen),
        }
    }

    fn with(mut e: Event, outcome: Outcome) -> Event {
        e.outcome = outcome;
        e
    }

    #[test]
    fn an_empty_history_is_linearizable() {
        assert_eq!(check(&[]), Ok(()));
    }

    #[test]
    fn a_sequential_history_that_reads_its_writes_is_linearizable() {
        let h = [
            r(1, 1, None, 0, 1),
            w(1, 1, 5, 2, 3),
            r(2, 1, Some(5), 4, 5),
            w(2, 1, 6, 6, 7),
            r(1, 1, Some(6), 8, 9),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_a_violation() {
        let h = [w(1, 3, 1, 0, 10), r(2, 3, None, 20, 30)];
        let v = check(&h).unwrap_err();
        assert_eq!(v.key, 3);
        let text = v.to_string();
        assert!(text.contains("key 3"), "{text}");
        assert!(text.contains("read(3) -> absent"), "{text}");
    }

    #[test]
    fn a_lost_acknowledged_write_is_a_violation() {
        // Write 2 was acknowledged after write 1, yet a later read sees 1.
        let h = [
            w(1, 4, 1, 0, 10),
            w(1, 4, 2, 20, 30),
            r(2, 4, Some(1), 40, 50),
        ];
        let v = check(&h).unwrap_err();
        assert_eq!(v.key, 4);
        assert_eq!(v.stuck.map(|i| v.ops[i].op), Some(Op::Read { key: 4 }));
    }

    #[test]
    fn reads_concurrent_with_a_write_may_see_either_value_but_not_go_back() {
        let writer = w(1, 1, 9, 0, 100);
        let ok = [writer, r(2, 1, None, 10, 20), r(2, 1, Some(9), 30, 40)];
        assert_eq!(check(&ok), Ok(()));
        let back = [
            writer,
            r(2, 1, Some(9), 10, 20),
            r(3, 1, None, 30, 40), // after a read saw 9, absent is impossible
        ];
        assert!(check(&back).is_err());
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_happened() {
        let lost = with(w(1, 1, 5, 0, 0), Outcome::Unknown);
        assert_eq!(check(&[lost, r(2, 1, Some(5), 10, 20)]), Ok(()));
        assert_eq!(check(&[lost, r(2, 1, None, 10, 20)]), Ok(()));
        // ... but not before it was invoked.
        let late = with(w(1, 1, 5, 10, 0), Outcome::Unknown);
        assert!(check(&[r(2, 1, Some(5), 0, 5), late]).is_err());
    }

    #[test]
    fn a_failed_write_must_never_be_seen() {
        let failed = with(w(1, 1, 5, 0, 10), Outcome::Fail);
        assert_eq!(check(&[failed, r(2, 1, None, 20, 30)]), Ok(()));
        assert!(check(&[failed, r(2, 1, Some(5), 20, 30)]).is_err());
    }

    #[test]
    fn a_value_nobody_wrote_is_a_violation() {
        assert!(check(&[r(1, 1, Some(42), 0, 1)]).is_err());
    }

    #[test]
    fn equal_times_count_as_concurrent() {
        assert_eq!(check(&[w(1, 1, 1, 0, 10), r(2, 1, None, 10, 20)]), Ok(()));
        assert!(check(&[w(1, 1, 1, 0, 10), r(2, 1, None, 11, 20)]).is_err());
    }

    #[test]
    fn keys_are_checked_independently_and_the_bad_one_is_named() {
        let h = [
            w(1, 1, 1, 0, 10),
            w(2, 2, 2, 0, 10),
            r(1, 1, Some(1), 20, 30),
            r(2, 2, None, 20, 30),
        ];
        let v = check(&h).unwrap_err();
        assert_eq!(v.key, 2);
        assert_eq!(v.ops.len(), 2);
    }

    #[test]
    fn a_search_out_of_budget_is_undecided_not_violated() {
        // Ten writes of unknown fate, then reads that see 1, then 2, then 1
        // again: impossible, but only after trying many subsets of writes.
        let h: Vec<Event> = (0..10)
            .map(|i| with(w(i, 1, i, 0, 0), Outcome::Unknown))
            .chain([
                r(100, 1, Some(1), 1, 2),
                r(100, 1, Some(2), 3, 4),
                r(100, 1, Some(1), 5, 6),
            ])
            .collect();
        let report = check_with_budget(&h, 3).unwrap();
        assert_eq!(report.undecided_keys, vec![1]);
        assert!(check(&h).is_err(), "with a real budget the reads conflict");
    }

    /// The obviously correct checker: try every subset of the unknown writes
    /// and every order of the chosen operations.
    fn naive(history: &[Event]) -> bool {
        let ops: Vec<Event> = history
            .iter()
            .copied()
            .filter(|e| {
                !matches!(e.outcome, Outcome::Fail)
                    && !matches!((e.outcome, e.op), (Outcome::Unknown, Op::Read { .. }))
            })
            .collect();
        let optional: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].outcome == Outcome::Unknown)
            .collect();
        for mask in 0..(1u32 << optional.len()) {
            let chosen: Vec<usize> = (0..ops.len())
                .filter(|i| match optional.iter().position(|o| o == i) {
                    Some(k) => mask & (1 << k) != 0,
                    None => true,
                })
                .collect();
            if permutations_fit(&ops, &chosen, &mut Vec::new()) {
                return true;
            }
        }
        false
    }

    fn permutations_fit(ops: &[Event], left: &[usize], order: &mut Vec<usize>) -> bool {
        if left.is_empty() {
            let mut regs: BTreeMap<u64, u64> = BTreeMap::new();
            for &i in order.iter() {
                match (ops[i].op, ops[i].outcome) {
                    (Op::Write { key, value }, _) => {
                        regs.insert(key, value);
                    }
                    (Op::Read { key }, Outcome::Ok(seen)) if regs.get(&key).copied() != seen => {
                        return false;
                    }
                    _ => {}
                }
            }
            // Real time: nothing placed later may have completed before an
            // earlier one was invoked.
            for (a, &i) in order.iter().enumerate() {
                for &j in &order[a + 1..] {
                    let j_done = ops[j].outcome != Outcome::Unknown;
                    if j_done && ops[j].complete < ops[i].invoke {
                        return false;
                    }
                }
            }
            return true;
        }
        for k in 0..left.len() {
            let mut rest = left.to_vec();
            let i = rest.remove(k);
            order.push(i);
            let fits = permutations_fit(ops, &rest, order);
            order.pop();
            if fits {
                return true;
            }
        }
        false
    }

    #[test]
    fn agrees_with_the_naive_checker_on_small_random_histories() {
        let mut rng = Rng::new(2024);
        let mut violations = 0;
        for _ in 0..3000 {
            let n = rng.range(1, 6) as usize;
            let h: Vec<Event> = (0..n)
                .map(|i| {
                    let invoke = rng.below(20);
                    let complete = invoke + rng.below(15);
                    let key = rng.range(1, 2);
                    let op = if rng.coin() {
                        Op::Write {
                            key,
                            value: rng.range(1, 3),
                        }
                    } else {
                        Op::Read { key }
                    };
                    let outcome = match rng.below(10) {
                        0 => Outcome::Fail,
                        1 | 2 => Outcome::Unknown,
                        _ => match op {
                            Op::Read { .. } => Outcome::Ok(
                                [None, Some(1), Some(2), Some(3)][rng.below(4) as usize],
                            ),
                            Op::Write { .. } => Outcome::Ok(None),
                        },
                    };
                    Event {
                        client: i as u64,
                        op,
                        invoke,
                        complete,
                        outcome,
                    }
                })
                .collect();
            let expected = naive(&h);
            assert_eq!(check(&h).is_ok(), expected, "history {h:#?}");
            violations += usize::from(!expected);
        }
        assert!(
            violations > 100,
            "the generator must produce violations too"
        );
    }
}
