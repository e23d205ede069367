//! A host's disk: a durable part and a volatile write buffer. A Ready's
//! entries and hard state go to the buffer; an fsync (which takes virtual
//! time) makes the buffer as it was when the fsync started durable, together
//! with a snapshot of the state machine and its applied index.
//!
//! Storage may also lie (the `amnesia` fault): a crash can lose part of what
//! was durable, see [`Durable::lose`].

use crate::message::{Entry, HardState};
use crate::sim::kv::Kv;
use crate::types::{Index, Term};

/// One write a Ready asked for.
#[derive(Clone, Debug)]
pub(crate) enum Write {
    /// Truncate the log at `at`, then append `entries` (contiguous from `at`).
    Log { at: Index, entries: Vec<Entry> },
    /// Replace the hard state.
    Hard(HardState),
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub(crate) struct Durable {
    pub hard_state: HardState,
    pub entries: Vec<Entry>,
    /// The state machine as of the last completed fsync.
    pub kv: Kv,
}

/// What a lying disk lost in a crash.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Loss {
    /// The log from this index on.
    Suffix(Index),
    /// The whole log; the hard state survived.
    Log,
    /// Everything: log, hard state and state machine.
    Wipe,
}

/// Truncates `log` at `at` and appends `entries`.
pub(crate) fn write_log(log: &mut Vec<Entry>, at: Index, entries: &[Entry]) {
    log.truncate(at.0.saturating_sub(1) as usize);
    log.extend_from_slice(entries);
}

impl Durable {
    /// Loses data, as a lying disk does. The state machine's snapshot goes
    /// too (it may hold entries the log no longer has): the node replays
    /// its log from the start.
    pub fn lose(&mut self, loss: Loss) {
        match loss {
            Loss::Suffix(from) => self.entries.truncate(from.0.saturating_sub(1) as usize),
            Loss::Log => self.entries.clear(),
            Loss::Wipe => {
                self.entries.clear();
                self.hard_state = HardState::default();
            }
        }
        self.kv = Kv::default();
    }

    /// The term a restart from this disk comes back in: the hard state's,
    /// or a later one that a durable entry proves.
    pub fn term(&self) -> Term {
        let last = self.entries.last().map_or(Term(0), |e| e.term);
        self.hard_state.term.max(last)
    }

    /// Makes one write durable. Returns a description of a broken disk
    /// invariant (a term going back, a vote changed within a term).
    pub fn apply(&mut self, w: &Write) -> Result<(), String> {
        match w {
            Write::Log { at, entries } => {
                if at.0 as usize > self.entries.len() + 1 {
                    return Err(format!(
                        "a write at {at} leaves a gap after durable entry {}",
                        self.entries.len()
                    ));
                }
                write_log(&mut self.entries, *at, entries);
            }
            Write::Hard(hs) => {
                let old = self.hard_state;
                if hs.term < old.term {
                    return Err(format!(
                        "the durable term goes back from {} to {}",
                        old.term, hs.term
                    ));
                }
                if hs.term == old.term && old.vote.is_some() && hs.vote != old.vote {
                    return Err(format!(
                        "the durable vote of term {} changes from {:?} to {:?}",
                        hs.term, old.vote, hs.vote
                    ));
                }
                self.hard_state = *hs;
            }
        }
        Ok(())
    }
}

/// An fsync in progress: it covers the first `ops` buffered writes and the
/// state machine as it was when it started.
#[derive(Debug)]
pub(crate) struct SyncJob {
    pub ops: usize,
    pub kv: Kv,
    pub epoch: u64,
}
