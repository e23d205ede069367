//! Newtypes for the numbers Raft talks about.
//!
//! A node id, a term and a log index are all `u64` on the wire, and mixing
//! them up is a classic source of bugs. Each gets its own type here; nothing
//! in the public API takes a bare `u64` where one of these is meant.

use core::fmt;
use serde::{Deserialize, Serialize};

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The zero value.
            pub const ZERO: $name = $name(0);

            /// The raw number.
            #[inline]
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<u64> for $name {
            #[inline]
            fn from(v: u64) -> Self {
                $name(v)
            }
        }
    };
}

newtype!(
    /// The identity of a node in a cluster. `NodeId(0)` is reserved and never valid.
    NodeId,
    "n"
);
newtype!(
    /// A Raft term: a logical clock that increases with every election (§5.1).
    Term,
    "t"
);
newtype!(
    /// A position in the replicated log. Index 0 is the empty position before the
    /// first entry; the first real entry has index 1.
    Index,
    "i"
);

impl Term {
    /// The next term.
    #[inline]
    pub const fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl Index {
    /// The index after this one.
    #[inline]
    pub const fn next(self) -> Index {
        Index(self.0 + 1)
    }

    /// The index before this one, saturating at zero.
    #[inline]
    pub const fn prev(self) -> Index {
        Index(self.0.saturating_sub(1))
    }
}

/// The identity of one log entry: the term in which a leader created it and its
/// index. By the Log Matching property (§5.3) two logs that hold the same
/// `LogId` are identical up to and including it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct LogId {
    /// The term of the entry.
    pub term: Term,
    /// The index of the entry.
    pub index: Index,
}

impl LogId {
    /// The id of the empty position before the first entry.
    pub const ZERO: LogId = LogId {
        term: Term(0),
        index: Index(0),
    };

    /// Builds a `LogId`.
    #[inline]
    pub const fn new(term: Term, index: Index) -> LogId {
        LogId { term, index }
    }

    /// Whether a log whose last entry is `self` is at least as up to date as
    /// one whose last entry is `other` (§5.4.1): the later last term wins, and
    /// with equal terms the longer log wins.
    #[inline]
    pub fn is_up_to_date_with(&self, other: &LogId) -> bool {
        self.term > other.term || (self.term == other.term && self.index >= other.index)
    }
}

impl fmt::Debug for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.term.0, self.index.0)
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_date_compares_last_term_first_then_length() {
        let a = LogId::new(Term(3), Index(5));
        assert!(a.is_up_to_date_with(&LogId::new(Term(2), Index(100))));
        assert!(!LogId::new(Term(2), Index(100)).is_up_to_date_with(&a));
        assert!(a.is_up_to_date_with(&LogId::new(Term(3), Index(5))));
        assert!(!a.is_up_to_date_with(&LogId::new(Term(3), Index(6))));
    }
}
