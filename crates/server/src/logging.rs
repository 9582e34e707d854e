//! Log output: `MARQUEE_LOG` (a `tracing` filter, default `info`) and
//! `--log-format text|json` (`MARQUEE_LOG_FORMAT`), written to stderr.
//!
//! Text is coloured only when stderr is a terminal and `NO_COLOR` is unset
//! (<https://no-color.org>), so a file or a pipe never receives ANSI escapes.
//! JSON is one object per line (`timestamp`, `level`, `target`, `fields`).
//!
//! What is logged: each HTTP request at `debug` (target `marquee::http`:
//! method, route, status, latency, key id — never the key; see
//! [`crate::api`]), each failed webhook attempt at `info` (endpoint, host,
//! status, error kind and reason), state changes (an endpoint disabled or
//! enabled, a key revoked) at `info`.

use std::io::IsTerminal;

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Colour only on a terminal, and never with `NO_COLOR` set to anything
/// non-empty.
pub fn use_colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber (once, at start).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MARQUEE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let colour = use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            );
            builder.with_ansi(colour).init();
        }
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }
}
