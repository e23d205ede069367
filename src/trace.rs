//! The one way the protocol emits a `trace_events` event.
//!
//! `emit!(LEVEL, EVENT, self, field = value, ...)` stands for one
//! `tracing::event!` with target `"zaft"`, the event's name as both the
//! callsite name and the `event` field, and the node's id and term as
//! `node` and `term` (`emit!(LEVEL, EVENT, self, term: t, ...)` reports the
//! term `t` instead: the term a node is about to enter). Without the
//! `tracing` feature it expands to nothing: no field is evaluated and no
//! branch is left in the hot path. With it, an event whose level no
//! subscriber wants costs a load and a compare, and the rest is out of
//! line. A value computed only for an event therefore belongs inside the
//! `emit!`, and a condition that only decides whether to emit belongs
//! inside `traced!`, which skips it as cheaply when no subscriber listens.

/// Emits the event named `$event` (a constant of `crate::trace_events`) at
/// `tracing::Level::$level` on behalf of the `Raft` `$raft`.
macro_rules! emit {
    ($level:ident, $event:ident, $raft:expr, term: $term:expr $(, $($field:tt)+)?) => {
        #[cfg(feature = "tracing")]
        {
            use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
            let level = tracing::Level::$level;
            // The check `tracing::event!` starts with; the rest, out of line.
            if level <= STATIC_MAX_LEVEL && level <= LevelFilter::current() {
                crate::trace::cold(|| {
                    tracing::event!(
                        name: crate::trace_events::$event,
                        target: crate::trace_events::TARGET,
                        tracing::Level::$level,
                        event = crate::trace_events::$event,
                        node = $raft.id.0,
                        term = $term
                        $(, $($field)+)?
                    );
                });
            }
        }
    };
    ($level:ident, $event:ident, $raft:expr $(, $($field:tt)+)?) => {
        $crate::trace::emit!($level, $event, $raft, term: $raft.term.0 $(, $($field)+)?)
    };
}
pub(crate) use emit;

/// Runs `f`, out of line and marked cold: the code that builds an event's
/// fields and finds its subscriber stays out of the protocol's functions,
/// which keep their size and their inlining. With no subscriber (or none
/// that wants the level) an event costs one load and a compare.
#[cfg(feature = "tracing")]
#[cold]
#[inline(never)]
pub(crate) fn cold(f: impl FnOnce()) {
    f()
}

/// Code that exists only with the `tracing` feature, and runs only while
/// a subscriber wants some level: the conditions that decide whether to
/// `emit!`.
macro_rules! traced {
    ($($code:tt)*) => {
        #[cfg(feature = "tracing")]
        {
            use tracing::level_filters::LevelFilter;
            if LevelFilter::current() != LevelFilter::OFF {
                $($code)*
            }
        }
    };
}
pub(crate) use traced;
