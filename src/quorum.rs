//! Majority math: the commit index of a set of match indexes and the outcome
//! of a vote tally.
//!
//! Pure functions over plain numbers: no roles, no messages. Checked against a
//! deliberately naive reference by property tests below.

use alloc::vec::Vec;

use crate::types::Index;

/// The size of a majority of `voters` voters.
#[inline]
pub(crate) fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The highest index that a majority of voters hold, given each voter's match
/// index (in any order).
pub(crate) fn committed_index(matches: impl Iterator<Item = Index>) -> Index {
    quorum_value(matches)
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
        assert_eq!(committed_index([5, 1, 3].map(Index).into_iter()), Index(3));
        assert_eq!(
            committed_index([5, 5, 0, 0].map(Index).into_iter()),
            Index(0)
        );
        assert_eq!(committed_index([7].map(Index).into_iter()), Index(7));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn committed_index_matches_naive(m in proptest::collection::vec(0u64..20, 1..20)) {
            let got = committed_index(m.iter().copied().map(Index));
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

    #[test]
    fn majority_sizes() {
        let got: Vec<usize> = (1..=7).map(majority).collect();
        assert_eq!(got, [1, 2, 2, 3, 3, 4, 4]);
    }
}
