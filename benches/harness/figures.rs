//! The figures of one measured tool run — rate, CPU, memory, exit codes, verdict, re-run —
//! that every row of every harness report carries, and the table cells that print them.
//!
//! Rates are over the source's message count and canonical bytes (the same numbers for every
//! tool), so a tool that skipped mail does not look faster per message it did copy. The row
//! types of the harnesses add what names the row (tool, corpus, latency, path) and flatten
//! these figures into their JSON (`#[serde(flatten)]`), so the JSON keeps one flat object per
//! row.

use serde::Serialize;

use crate::text::{exit_code, opt, rate};

/// What one tool run copying one source measured, and how it was judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFigures {
    /// Messages in the source.
    pub messages: u64,
    /// Canonical bytes in the source.
    pub bytes: u64,
    /// Wall time of the first run, seconds.
    pub wall_secs: f64,
    /// User + system CPU seconds of the tool's processes in the first run.
    pub cpu_secs: Option<f64>,
    /// Peak resident set of the first run, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Exit code of the first run (`None`: killed by a signal).
    pub exit_code: Option<i32>,
    /// Whether the result equals the source (after the first run and after the re-run).
    pub correct: bool,
    /// "yes" or "no: reasons".
    pub verdict: String,
    /// Wall time of the no-change re-run, seconds (`None`: not incremental, not re-run).
    pub rerun_secs: Option<f64>,
    /// Exit code of the re-run (`Some(0)` when there was none to run).
    pub rerun_exit_code: Option<i32>,
    /// Anything else worth a line (the tool's own counts, failures).
    pub notes: Vec<String>,
}

impl RunFigures {
    /// Messages per second of the first run.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.wall_secs.max(1e-9)
    }

    /// MB (10^6 bytes) per second of the first run.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.wall_secs.max(1e-9)
    }

    /// Whether the tool exited 0 (first run and re-run) and copied faithfully.
    pub fn ok(&self) -> bool {
        self.correct && self.exit_code == Some(0) && self.rerun_exit_code == Some(0)
    }

    /// This run's msgs/s over `peer`'s.
    pub fn rate_vs(&self, peer: &RunFigures) -> f64 {
        self.msgs_per_sec() / peer.msgs_per_sec().max(1e-9)
    }

    /// This run's CPU seconds over `peer`'s (`0.25× the CPU`), or `CPU n/a`.
    pub fn cpu_vs(&self, peer: &RunFigures) -> String {
        match (self.cpu_secs, peer.cpu_secs) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}× the CPU", a / b),
            _ => "CPU n/a".into(),
        }
    }

    /// The cell naming the source of a table row: `typical (1000 msgs, 45 MB)`.
    pub fn source_cell(&self, name: &str) -> String {
        format!(
            "{name} ({} msgs, {:.0} MB)",
            self.messages,
            self.bytes as f64 / 1e6
        )
    }

    /// The cells every harness table ends its rows with, without the outer pipes:
    /// `msgs/s | MB/s | CPU s | peak RSS MB | correct | re-run s`. "correct" carries the exit
    /// code of a failed first run, "re-run s" that of a failed re-run.
    pub fn cells(&self) -> String {
        let mut correct = self.verdict.replace('|', "\\|");
        if self.exit_code != Some(0) {
            correct = format!("{correct} (exit {})", exit_code(self.exit_code));
        }
        let rerun = match (self.rerun_secs, self.rerun_exit_code) {
            (Some(s), Some(0)) => format!("{s:.2}"),
            (Some(s), code) => format!("{s:.2} (exit {})", exit_code(code)),
            (None, _) => "n/a".into(),
        };
        format!(
            "{} | {} | {} | {} | {correct} | {rerun}",
            rate(self.msgs_per_sec()),
            rate(self.mb_per_sec()),
            opt(self.cpu_secs, 2),
            opt(self.peak_rss_bytes.map(|b| b as f64 / 1e6), 0),
        )
    }

    /// A clean run for the harnesses' unit tests to start from: `messages` and `bytes` copied
    /// in `wall_secs` with `cpu_secs` of CPU and a 30 MB peak RSS, exit 0, verified ("yes"),
    /// re-run in 0.5 s with exit 0, no notes.
    pub fn sample(messages: u64, bytes: u64, wall_secs: f64, cpu_secs: f64) -> RunFigures {
        RunFigures {
            messages,
            bytes,
            wall_secs,
            cpu_secs: Some(cpu_secs),
            peak_rss_bytes: Some(30_000_000),
            exit_code: Some(0),
            correct: true,
            verdict: "yes".into(),
            rerun_secs: Some(0.5),
            rerun_exit_code: Some(0),
            notes: Vec::new(),
        }
    }
}
