//! The `mailferry` command: a thin layer over the library. Parses endpoints and options,
//! resolves secrets (never from argv), runs the copier with progress, prints a summary, writes
//! the JSON report, and maps outcomes to exit codes:
//! 0 all done · 1 finished but some items failed · 2 usage or configuration error ·
//! 3 connection or authentication failure.

mod args;
mod html;
mod logging;
mod manifest_cmd;
mod metrics_http;
mod pair;
mod plan;
mod plan_view;
mod progress;
mod rewrites;
mod secrets;
mod summary;
mod wire_trace;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// Exit codes: the command line's contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Exit {
    /// Everything done.
    Ok = 0,
    /// Finished, but some items failed (listed in the summary and report).
    ItemsFailed = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// Connection or authentication failure.
    Connection = 3,
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) exit: Exit,
    pub(crate) error: anyhow::Error,
}

impl Failure {
    pub(crate) fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit: Exit::Usage,
            error: error.into(),
        }
    }
    pub(crate) fn connection(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit: Exit::Connection,
            error: error.into(),
        }
    }
}

/// Tunes glibc's allocator for a long copy, before any thread exists. Measured on a typical
/// 5,000-message IMAP copy: peak RSS 63 → 54 MB at the same speed.
/// - A fixed mmap threshold of 256 KiB: message buffers above it go straight back to the
///   system when freed. glibc otherwise raises the threshold to the largest block it freed, so
///   after the first large message every buffer comes from the heap and its memory stays
///   fragmented there.
/// - Two arenas instead of eight per core: tokio and rayon threads allocate and free message
///   buffers across threads, and each extra arena keeps its own free memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; it is called first thing in `main`,
    // before any other thread is started, and its result (0 on failure) needs no handling:
    // the defaults then stay.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { Exit::Usage as u8 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    logging::init(cli.verbose, cli.quiet, cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mailferry: cannot start the runtime: {e}");
            return ExitCode::from(Exit::Usage as u8);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Copy(a) => {
                pair::run(mailferry::mailbox::Mode::Copy, a, cli.quiet, cli.log_format).await
            }
            Command::Sync(a) => {
                pair::run(mailferry::mailbox::Mode::Sync, a, cli.quiet, cli.log_format).await
            }
            Command::Verify(a) => manifest_cmd::verify(a, cli.quiet).await,
            Command::Folders(a) => pair::folders(a).await,
            Command::Plan(a) => plan::run(a, cli.quiet, cli.log_format).await,
            Command::Report(a) => html::run(a),
        }
    });
    match outcome {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(f) => {
            eprintln!("mailferry: error: {:#}", f.error);
            ExitCode::from(f.exit as u8)
        }
    }
}
