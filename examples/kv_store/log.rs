//! `--log LEVEL`: one `tracing` subscriber for kv_store's own events and
//! zaft's, printed to stderr.
//!
//! zaft emits its events (elections, role and term changes, dropped
//! messages, ...: `zaft::trace_events`) only when built with its `tracing`
//! feature, so `cargo run --example kv_store` works without it and logs
//! kv_store's events alone; `--features tracing` adds zaft's, under the
//! target `zaft`. kv_store's events have targets under `kv_store`:
//! connections opened and closed, what WAL recovery found and cut, slow
//! fsyncs.

use tracing::level_filters::LevelFilter;

/// The level a node logs at without `--log`.
pub const DEFAULT: &str = "info";

/// Whether zaft's own events reach the subscriber (its `tracing` feature).
pub const ZAFT_EVENTS: bool = cfg!(feature = "tracing");

/// `off`, `error`, `warn`, `info`, `debug` or `trace`.
pub fn parse_level(s: &str) -> Result<LevelFilter, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "off" => LevelFilter::OFF,
        "error" => LevelFilter::ERROR,
        "warn" => LevelFilter::WARN,
        "info" => LevelFilter::INFO,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        _ => {
            return Err(format!(
                "--log: want off, error, warn, info, debug or trace, not {s:?}"
            ));
        }
    })
}

/// Installs the subscriber: every event at `level` or above, one line each
/// on stderr, with its time, level, target and fields.
pub fn init(level: LevelFilter) {
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
    if !ZAFT_EVENTS && level >= LevelFilter::INFO {
        tracing::info!(
            "zaft was built without its `tracing` feature: only kv_store's own events are \
             logged (build with --features tracing for elections, role changes, ...)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_parse_and_others_are_refused() {
        assert_eq!(parse_level("off").unwrap(), LevelFilter::OFF);
        assert_eq!(parse_level("DEBUG").unwrap(), LevelFilter::DEBUG);
        assert_eq!(parse_level(DEFAULT).unwrap(), LevelFilter::INFO);
        let err = parse_level("loud").unwrap_err();
        assert!(
            err.contains("off, error, warn, info, debug or trace"),
            "{err}"
        );
    }
}
