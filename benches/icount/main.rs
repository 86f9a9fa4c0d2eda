//! `icount`: the instruction-count regression gate's workload program and its report.
//!
//! Wall-clock benches are useless as a gate on a shared 2-core machine (a neighbour's build moves
//! them by 30%); instruction counts under callgrind repeat to a fraction of a percent. So this
//! program runs fixed workloads (`icount run PATH`) for `run.sh` to execute under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=…icount_measure_PATH`, and
//! compares what callgrind counted with the committed baseline (`icount report`). It is an
//! example of the benches package rather than a bin because it needs rayon, a dev-dependency.
//!
//! `bash benches/icount/run.sh [--update]` is the way to run it.

mod report;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The measured paths, in table order.
pub const PATHS: [&str; 3] = ["prepare", "copier", "imap"];

#[derive(Parser)]
#[command(about = "instruction-count gate: workloads for callgrind and the baseline report")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one path's workload and prints what it processed (JSON) on stdout.
    Run {
        /// prepare | copier | imap
        path: String,
    },
    /// Reads `DIR/PATH.json` (from `run`) and `DIR/PATH.callgrind` for every path, prints the
    /// table and compares with the baseline.
    Report {
        /// Where `run.sh` left the outputs.
        #[arg(long)]
        dir: PathBuf,
        /// The committed baseline.
        #[arg(long)]
        baseline: PathBuf,
        /// Rewrite the baseline with these counts instead of comparing.
        #[arg(long)]
        update: bool,
        /// Percent above the baseline that fails the gate.
        #[arg(long, default_value_t = 5.0)]
        threshold: f64,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run { path } => {
            let workload = match path.as_str() {
                "prepare" => workloads::prepare(),
                "copier" => workloads::copier(),
                "imap" => workloads::imap(),
                other => {
                    eprintln!("icount: unknown path {other:?} (expected one of {PATHS:?})");
                    return ExitCode::from(2);
                }
            };
            match serde_json::to_string(&workload) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("icount: cannot write the workload: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Report {
            dir,
            baseline,
            update,
            threshold,
        } => match report::report(&dir, &baseline, update, threshold) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("icount: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
