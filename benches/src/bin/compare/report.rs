//! The results: one [`RunResult`] per tool × corpus × latency, rendered as the markdown table
//! in `benches/results/<name>.md`, ratio lines, and the JSON the chart script reads.
//!
//! Rates are over the source's message count and canonical bytes (the same numbers for every
//! tool), so a tool that skipped mail does not look faster per message it did copy. MB is
//! 10^6 bytes everywhere. Unknown figures (no `/usr/bin/time`) print as "n/a", never as 0.

use std::fmt::Write as _;

use serde::Serialize;

use crate::tools::ToolKind;

/// One tool run on one corpus at one latency.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The tool.
    pub tool: ToolKind,
    /// Its version line.
    pub tool_version: String,
    /// `typical` or `heavy`.
    pub corpus: String,
    /// Messages in the source.
    pub messages: u64,
    /// Canonical bytes in the source.
    pub bytes: u64,
    /// Added round-trip time, ms.
    pub latency_ms: u64,
    /// Wall time of the first run, seconds.
    pub wall_secs: f64,
    /// User + system CPU seconds of the tool's processes.
    pub cpu_secs: Option<f64>,
    /// Peak resident set, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Exit code of the first run.
    pub exit_code: Option<i32>,
    /// Whether the target equals the source (after the first run and after the re-run).
    pub correct: bool,
    /// "yes" or "no: reasons".
    pub verdict: String,
    /// Wall time of the no-change re-run, seconds.
    pub rerun_secs: Option<f64>,
    /// Exit code of the re-run.
    pub rerun_exit_code: Option<i32>,
    /// Anything else worth a line (tool's own counts, failures).
    pub notes: Vec<String>,
}

impl RunResult {
    /// Messages per second.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.wall_secs.max(1e-9)
    }

    /// MB (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.wall_secs.max(1e-9)
    }
}

/// How the run was set up, for the report's header.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// When (UTC).
    pub date: String,
    /// CPU model and count.
    pub machine: String,
    /// The `--scale` factor.
    pub scale: f64,
    /// Tool versions, and tools that were skipped with why.
    pub tools: Vec<String>,
    /// The exact harness command line.
    pub command: String,
    /// `servers`, `big-folder` or `transfers`.
    pub scenario: String,
}

/// A figure with `digits` decimals, or `n/a` when unknown.
pub fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |x| format!("{x:.digits$}"))
}

/// Formats a rate with sensible precision.
pub fn rate(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The markdown table.
pub fn table(results: &[RunResult]) -> String {
    let mut out = String::from(
        "| tool | corpus | latency | msgs/s | MB/s | CPU s | peak RSS MB | correct | re-run s |\n\
         |---|---|---:|---:|---:|---:|---:|---|---:|\n",
    );
    for r in results {
        let mut correct = r.verdict.replace('|', "\\|");
        if r.exit_code != Some(0) {
            correct = format!("{correct} (exit {})", opt_code(r.exit_code));
        }
        let rerun = match (r.rerun_secs, r.rerun_exit_code) {
            (Some(s), Some(0)) => format!("{s:.2}"),
            (Some(s), code) => format!("{s:.2} (exit {})", opt_code(code)),
            (None, _) => "n/a".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} ({} msgs, {:.0} MB) | {} ms | {} | {} | {} | {} | {} | {} |",
            r.tool,
            r.corpus,
            r.messages,
            r.bytes as f64 / 1e6,
            r.latency_ms,
            rate(r.msgs_per_sec()),
            rate(r.mb_per_sec()),
            opt(r.cpu_secs, 2),
            opt(r.peak_rss_bytes.map(|b| b as f64 / 1e6), 0),
            correct,
            rerun,
        );
    }
    out
}

/// An exit code, or `signal` when the process was killed.
pub fn opt_code(code: Option<i32>) -> String {
    code.map_or_else(|| "signal".into(), |c| c.to_string())
}

/// Ratio lines: mailferry vs each peer per corpus × latency (rate and CPU), and mailferry at
/// each latency vs 0 ms.
pub fn ratios(results: &[RunResult]) -> Vec<String> {
    let mut lines = Vec::new();
    let mine = |corpus: &str, latency: u64| {
        results.iter().find(|r| {
            r.tool == ToolKind::Mailferry && r.corpus == corpus && r.latency_ms == latency
        })
    };
    for peer in results.iter().filter(|r| r.tool != ToolKind::Mailferry) {
        let Some(m) = mine(&peer.corpus, peer.latency_ms) else {
            continue;
        };
        let cpu = match (m.cpu_secs, peer.cpu_secs) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}× the CPU", a / b),
            _ => "CPU n/a".into(),
        };
        lines.push(format!(
            "mailferry vs {} ({}, {} ms): {:.2}× the msgs/s, {}",
            peer.tool,
            peer.corpus,
            peer.latency_ms,
            m.msgs_per_sec() / peer.msgs_per_sec().max(1e-9),
            cpu
        ));
    }
    for m in results
        .iter()
        .filter(|r| r.tool == ToolKind::Mailferry && r.latency_ms > 0)
    {
        if let Some(zero) = mine(&m.corpus, 0) {
            lines.push(format!(
                "mailferry {} ms vs 0 ms ({}): {:.2}× the msgs/s",
                m.latency_ms,
                m.corpus,
                m.msgs_per_sec() / zero.msgs_per_sec().max(1e-9)
            ));
        }
    }
    lines
}

/// The whole markdown report.
pub fn markdown(info: &RunInfo, results: &[RunResult]) -> String {
    let mut out = String::from("# mailferry side by side\n\n");
    let _ = writeln!(
        out,
        "{} · {} · scale {} · `{}`\n",
        info.date, info.machine, info.scale, info.command
    );
    out.push_str(
        "All tools copy the same generated corpus from one Dovecot 2.3 to a fresh Dovecot per \
         run, over **plaintext IMAP on 127.0.0.1 (TLS is off for all tools)**, both servers \
         behind the same latency proxy. `doveadm` reads the source over IMAP (imapc) but writes \
         the target's Maildir directly. Rates count every source message and canonical byte; \
         CPU and peak RSS are the tool's own processes (`/usr/bin/time`), not the servers'. \
         \"correct\" compares both servers read back per folder (checksums of the canonical \
         bytes, flags + keywords, internal dates), after the first run and after the re-run.\n\n",
    );
    out.push_str("Tools: ");
    out.push_str(&info.tools.join("; "));
    out.push_str("\n\n");
    out.push_str(&table(results));
    let ratios = ratios(results);
    if !ratios.is_empty() {
        out.push('\n');
        for line in ratios {
            let _ = writeln!(out, "- {line}");
        }
    }
    out.push_str(&notes(results));
    out
}

/// The "Notes:" section (tool counts, failures, server errors), empty when there are none.
pub fn notes(results: &[RunResult]) -> String {
    let notes: Vec<String> = results
        .iter()
        .filter(|r| !r.notes.is_empty())
        .map(|r| {
            format!(
                "- {} {} {} ms: {}",
                r.tool,
                r.corpus,
                r.latency_ms,
                r.notes.join("; ")
            )
        })
        .collect();
    if notes.is_empty() {
        return String::new();
    }
    format!("\nNotes:\n{}\n", notes.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(tool: ToolKind, latency_ms: u64, wall_secs: f64, cpu: f64) -> RunResult {
        RunResult {
            tool,
            tool_version: "v".into(),
            corpus: "typical".into(),
            messages: 1000,
            bytes: 45_000_000,
            latency_ms,
            wall_secs,
            cpu_secs: Some(cpu),
            peak_rss_bytes: Some(30_000_000),
            exit_code: Some(0),
            correct: true,
            verdict: "yes".into(),
            rerun_secs: Some(0.5),
            rerun_exit_code: Some(0),
            notes: vec![],
        }
    }

    #[test]
    fn table_rows_carry_rates_and_verdicts() {
        let mut peer = result(ToolKind::Mbsync, 20, 10.0, 4.0);
        peer.verdict = "no: 3 keywords lost | x".into();
        peer.correct = false;
        peer.cpu_secs = None;
        let t = table(&[result(ToolKind::Mailferry, 0, 2.0, 1.0), peer]);
        assert!(
            t.contains("| mailferry | typical (1000 msgs, 45 MB) | 0 ms | 500 | 22.5 | 1.00 | 30 | yes | 0.50 |"),
            "{t}"
        );
        assert!(
            t.contains("| 100 | 4.5 | n/a | 30 | no: 3 keywords lost \\| x | 0.50 |"),
            "{t}"
        );
    }

    #[test]
    fn ratios_compare_like_with_like() {
        let r = ratios(&[
            result(ToolKind::Mailferry, 0, 2.0, 1.0),
            result(ToolKind::Mbsync, 0, 10.0, 4.0),
            result(ToolKind::Mailferry, 20, 4.0, 1.0),
            result(ToolKind::Mbsync, 20, 40.0, 4.0),
        ]);
        assert_eq!(
            r,
            [
                "mailferry vs mbsync (typical, 0 ms): 5.00× the msgs/s, 0.25× the CPU",
                "mailferry vs mbsync (typical, 20 ms): 10.00× the msgs/s, 0.25× the CPU",
                "mailferry 20 ms vs 0 ms (typical): 0.50× the msgs/s",
            ]
        );
    }

    #[test]
    fn a_failed_run_shows_its_exit_code() {
        let mut r = result(ToolKind::Doveadm, 0, 1.0, 1.0);
        r.exit_code = Some(75);
        r.rerun_exit_code = None;
        let t = table(&[r]);
        assert!(t.contains("yes (exit 75) | 0.50 (exit signal) |"), "{t}");
    }
}
