//! Logging to stderr with tracing: text or JSON, `-v`/`-q`, `RUST_LOG` wins when set. Records
//! of the `log` crate (used by some dependencies) are not captured, so nothing a dependency
//! logs about a session — such as a LOGIN line — can reach the output.

use tracing_subscriber::EnvFilter;

use crate::args::LogFormat;

pub fn init(verbose: u8, quiet: bool, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("mailferry={level},mailferry_core={level},mailferry_imap={level},mailferry_maildir={level},mailferry_mbox={level},mailferry_state={level},mailferry_cli={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}
