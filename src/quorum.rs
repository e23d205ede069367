//! Majority math: the commit index of a set of match indexes and the outcome
//! of a vote tally, for one set of voters or jointly for two (joint
//! consensus, §6 of the Raft paper: a decision needs a majority of each).
//!
//! Pure functions over plain values: no roles, no messages. Every quorum
//! question of the protocol (commitment, elections, CheckQuorum, read
//! confirmation) goes through [`Quorum`], and the local node is asked like
//! any other voter. Checked against deliberately naive references by
//! property tests below.

use alloc::vec::Vec;

use crate::types::NodeId;

/// The voters whose majorities decide: `incoming`, and while a joint
/// configuration is in force also `outgoing` (empty otherwise). A decision
/// needs a majority of each non-empty set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Quorum<'a> {
    pub incoming: &'a [NodeId],
    pub outgoing: &'a [NodeId],
}

impl Quorum<'_> {
    /// The largest value a quorum has reached, given each voter's value:
    /// the commit index of match indexes, the confirmed round of acked
    /// rounds, whether a quorum is active. Jointly, the smaller of the two
    /// majorities' values. `T::default()` without voters.
    pub fn value<T: Copy + Ord + Default>(&self, of: impl Fn(NodeId) -> T) -> T {
        let a = quorum_value(self.incoming.iter().map(|&id| of(id)));
        if self.outgoing.is_empty() {
            return a;
        }
        let b = quorum_value(self.outgoing.iter().map(|&id| of(id)));
        a.min(b)
    }

    /// The outcome of an election, given each voter's answer so far.
    pub fn vote(&self, answer: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        let tally = |set: &[NodeId]| {
            let granted = set.iter().filter(|&&id| answer(id) == Some(true)).count();
            let rejected = set.iter().filter(|&&id| answer(id) == Some(false)).count();
            vote_result(set.len(), granted, rejected)
        };
        let a = tally(self.incoming);
        if self.outgoing.is_empty() {
            return a;
        }
        match (a, tally(self.outgoing)) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

/// The size of a majority of `voters` voters.
#[inline]
pub(crate) fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The largest value that at least a majority of voters have reached, given
/// one value per voter (in any order); the default for no voters.
pub(crate) fn quorum_value<T: Copy + Ord + Default>(values: impl Iterator<Item = T>) -> T {
    // On the path of every acknowledgement, and clusters are small: a plain
    // array and an insertion sort, a vector only beyond `INLINE` voters.
    const INLINE: usize = 9;
    let mut buf = [T::default(); INLINE];
    let mut n = 0;
    let mut spilled: Vec<T> = Vec::new();
    for v in values {
        if n < INLINE {
            let mut i = n;
            while i > 0 && buf[i - 1] > v {
                buf[i] = buf[i - 1];
                i -= 1;
            }
            buf[i] = v;
            n += 1;
        } else {
            if spilled.is_empty() {
                spilled.extend_from_slice(&buf);
            }
            spilled.push(v);
        }
    }
    let m: &[T] = if spilled.is_empty() {
        &buf[..n]
    } else {
        spilled.sort_unstable();
        &spilled
    };
    if m.is_empty() {
        return T::default();
    }
    // The q-th largest value: at least q voters hold it.
    m[m.len() - majority(m.len())]
}

/// The outcome of an election so far.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum VoteResult {
    /// A majority granted.
    Won,
    /// A majority refused: the election cannot be won.
    Lost,
    /// Neither yet.
    Pending,
}

/// Tallies `granted` and `rejected` votes among `voters` voters.
pub(crate) fn vote_result(voters: usize, granted: usize, rejected: usize) -> VoteResult {
    let q = majority(voters);
    if granted >= q {
        VoteResult::Won
    } else if voters - rejected < q {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Index;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// The definition, as slowly as possible: the largest candidate value that
    /// at least a majority of voters have reached.
    fn naive_committed(m: &[u64]) -> u64 {
        let q = m.len() / 2 + 1;
        let mut best = 0;
        for &cand in m {
            if m.iter().filter(|&&x| x >= cand).count() >= q && cand > best {
                best = cand;
            }
        }
        best
    }

    fn naive_vote(voters: usize, granted: usize, rejected: usize) -> VoteResult {
        let pending = voters - granted - rejected;
        if granted * 2 > voters {
            VoteResult::Won
        } else if (granted + pending) * 2 <= voters {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    #[test]
    fn three_voters_commit_the_median() {
        assert_eq!(quorum_value([5, 1, 3].map(Index).into_iter()), Index(3));
        assert_eq!(quorum_value([5, 5, 0, 0].map(Index).into_iter()), Index(0));
        assert_eq!(quorum_value([7].map(Index).into_iter()), Index(7));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn committed_index_matches_naive(m in proptest::collection::vec(0u64..20, 1..20)) {
            let got = quorum_value(m.iter().copied().map(Index));
            prop_assert_eq!(got.0, naive_committed(&m));
        }

        #[test]
        fn vote_result_matches_naive(
            (voters, g, r) in (1usize..10).prop_flat_map(|n| (Just(n), 0..=n))
                .prop_flat_map(|(n, g)| (Just(n), Just(g), 0..=n - g))
        ) {
            prop_assert_eq!(vote_result(voters, g, r), naive_vote(voters, g, r));
        }
    }

    /// Joint consensus by the definition: the largest candidate that a
    /// majority of each non-empty set has reached.
    fn naive_joint(inc: &[u64], out: &[u64]) -> u64 {
        let ok = |set: &[u64], c: u64| {
            set.is_empty() || set.iter().filter(|&&x| x >= c).count() * 2 > set.len()
        };
        inc.iter()
            .chain(out)
            .copied()
            .filter(|&c| ok(inc, c) && ok(out, c))
            .max()
            .unwrap_or(0)
    }

    fn naive_joint_vote(inc: &[Option<bool>], out: &[Option<bool>]) -> VoteResult {
        let one = |set: &[Option<bool>]| {
            let g = set.iter().filter(|v| **v == Some(true)).count();
            let r = set.iter().filter(|v| **v == Some(false)).count();
            naive_vote(set.len(), g, r)
        };
        let (a, b) = (
            one(inc),
            if out.is_empty() {
                VoteResult::Won
            } else {
                one(out)
            },
        );
        if a == VoteResult::Lost || b == VoteResult::Lost {
            VoteResult::Lost
        } else if a == VoteResult::Won && b == VoteResult::Won {
            VoteResult::Won
        } else {
            VoteResult::Pending
        }
    }

    /// Voter ids 1..=n for the incoming set and, overlapping it by
    /// `shared`, the outgoing set (empty when `out` is 0).
    fn sets(inc: usize, out: usize, shared: usize) -> (Vec<NodeId>, Vec<NodeId>) {
        let incoming: Vec<NodeId> = (1..=inc as u64).map(NodeId).collect();
        let shared = shared.min(inc).min(out);
        let start = inc as u64 - shared as u64 + 1;
        let outgoing = (start..start + out as u64).map(NodeId).collect();
        (incoming, outgoing)
    }

    #[test]
    fn a_joint_decision_needs_both_majorities() {
        // {1,2,3} and {3,4,5}: 1, 2 and 3 alone are a majority of the first
        // only.
        let (inc, out) = sets(3, 3, 1);
        let q = Quorum {
            incoming: &inc,
            outgoing: &out,
        };
        let m = |id: NodeId| Index(if id.0 <= 3 { 9 } else { 2 });
        assert_eq!(q.value(m), Index(2));
        let yes_from_old = |id: NodeId| Some(id.0 <= 3);
        assert_eq!(q.vote(yes_from_old), VoteResult::Lost);
        let single = Quorum {
            incoming: &inc,
            outgoing: &[],
        };
        assert_eq!(single.value(m), Index(9));
        assert_eq!(single.vote(yes_from_old), VoteResult::Won);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn joint_value_matches_naive(
            (inc, out, shared) in (1usize..8, 0usize..8, 0usize..8),
            vals in proptest::collection::vec(0u64..12, 16),
        ) {
            let (i, o) = sets(inc, out, shared);
            let q = Quorum { incoming: &i, outgoing: &o };
            let of = |id: NodeId| Index(vals[id.0 as usize]);
            let iv: Vec<u64> = i.iter().map(|&id| of(id).0).collect();
            let ov: Vec<u64> = o.iter().map(|&id| of(id).0).collect();
            prop_assert_eq!(q.value(of).0, naive_joint(&iv, &ov));
        }

        #[test]
        fn joint_vote_matches_naive(
            (inc, out, shared) in (1usize..8, 0usize..8, 0usize..8),
            answers in proptest::collection::vec(proptest::option::of(any::<bool>()), 16),
        ) {
            let (i, o) = sets(inc, out, shared);
            let q = Quorum { incoming: &i, outgoing: &o };
            let of = |id: NodeId| answers[id.0 as usize];
            let ia: Vec<_> = i.iter().map(|&id| of(id)).collect();
            let oa: Vec<_> = o.iter().map(|&id| of(id)).collect();
            prop_assert_eq!(q.vote(of), naive_joint_vote(&ia, &oa));
        }
    }

    #[test]
    fn majority_sizes() {
        let got: Vec<usize> = (1..=7).map(majority).collect();
        assert_eq!(got, [1, 2, 2, 3, 3, 4, 4]);
    }
}
