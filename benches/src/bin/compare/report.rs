//! The results: one [`RunResult`] per tool × corpus × latency, rendered as the markdown table
//! in `benches/results/<name>.md`, ratio lines, and the JSON the chart script reads.
//!
//! Rates are over the source's message count and canonical bytes (the same numbers for every
//! tool), so a tool that skipped mail does not look faster per message it did copy. MB is
//! 10^6 bytes everywhere. Unknown figures (no `/usr/bin/time`) print as "n/a", never as 0.

use std::fmt;

use mailferry_benches::figures::RunFigures;
use mailferry_benches::text;
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
    /// Added round-trip time, ms.
    pub latency_ms: u64,
    /// What the run measured and how it was judged (flat in the JSON).
    #[serde(flatten)]
    pub figures: RunFigures,
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

impl RunInfo {
    /// The top of a scenario's report: the `# title`, when, where and how it ran, `about`
    /// (what the scenario does, ending in a blank line) and the tools.
    pub fn header(&self, title: &str, about: &str) -> String {
        format!(
            "# {title}\n\n{} · {} · scale {} · `{}`\n\n{about}Tools: {}\n\n",
            self.date,
            self.machine,
            self.scale,
            self.command,
            self.tools.join("; ")
        )
    }
}

/// The header of a table of runs (this scenario's and the transfers').
pub const TABLE_HEAD: &str = concat!(
    "| tool | corpus | latency | msgs/s | MB/s | CPU s | peak RSS MB | correct | re-run s |\n",
    "|---|---|---:|---:|---:|---:|---:|---|---:|\n",
);

/// One row of a table of runs: `tool` on `corpus` at `latency_ms`.
pub fn table_row(
    tool: &dyn fmt::Display,
    corpus: &str,
    latency_ms: u64,
    figures: &RunFigures,
) -> String {
    format!(
        "| {tool} | {} | {latency_ms} ms | {} |\n",
        figures.source_cell(corpus),
        figures.cells()
    )
}

/// The markdown table.
pub fn table(results: &[RunResult]) -> String {
    let mut out = String::from(TABLE_HEAD);
    for r in results {
        out.push_str(&table_row(&r.tool, &r.corpus, r.latency_ms, &r.figures));
    }
    out
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
        lines.push(format!(
            "mailferry vs {} ({}, {} ms): {:.2}× the msgs/s, {}",
            peer.tool,
            peer.corpus,
            peer.latency_ms,
            m.figures.rate_vs(&peer.figures),
            m.figures.cpu_vs(&peer.figures)
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
                m.figures.rate_vs(&zero.figures)
            ));
        }
    }
    lines
}

/// The whole markdown report.
pub fn markdown(info: &RunInfo, results: &[RunResult]) -> String {
    let mut out = info.header(
        "mailferry side by side",
        "All tools copy the same generated corpus from one Dovecot 2.3 to a fresh Dovecot per \
         run, over **plaintext IMAP on 127.0.0.1 (TLS is off for all tools)**, both servers \
         behind the same latency proxy. `doveadm` reads the source over IMAP (imapc) but writes \
         the target's Maildir directly. Rates count every source message and canonical byte; \
         CPU and peak RSS are the tool's own processes (`/usr/bin/time`), not the servers'. \
         \"correct\" compares both servers read back per folder (checksums of the canonical \
         bytes, flags + keywords, internal dates), after the first run and after the re-run.\n\n",
    );
    out.push_str(&table(results));
    let ratios = ratios(results);
    if !ratios.is_empty() {
        out.push('\n');
        out.push_str(&text::bullets(&ratios));
    }
    out.push_str(&notes(results));
    out
}

/// The "Notes:" section (tool counts, failures, server errors), empty when there are none.
pub fn notes(results: &[RunResult]) -> String {
    let notes: Vec<String> = results
        .iter()
        .filter(|r| !r.figures.notes.is_empty())
        .map(|r| {
            format!(
                "{} {} {} ms: {}",
                r.tool,
                r.corpus,
                r.latency_ms,
                r.figures.notes.join("; ")
            )
        })
        .collect();
    text::notes_section(&notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(tool: ToolKind, latency_ms: u64, wall_secs: f64, cpu: f64) -> RunResult {
        RunResult {
            tool,
            tool_version: "v".into(),
            corpus: "typical".into(),
            latency_ms,
            figures: RunFigures::sample(1000, 45_000_000, wall_secs, cpu),
        }
    }

    #[test]
    fn table_rows_carry_rates_and_verdicts() {
        let mut peer = result(ToolKind::Mbsync, 20, 10.0, 4.0);
        peer.figures.verdict = "no: 3 keywords lost | x".into();
        peer.figures.correct = false;
        peer.figures.cpu_secs = None;
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
        r.figures.exit_code = Some(75);
        r.figures.rerun_exit_code = None;
        let t = table(&[r]);
        assert!(t.contains("yes (exit 75) | 0.50 (exit signal) |"), "{t}");
    }

    #[test]
    fn json_rows_stay_flat() {
        let mut r = result(ToolKind::Mailferry, 0, 2.0, 1.0);
        r.figures.cpu_secs = None;
        let json = serde_json::to_value(&r).expect("json");
        let keys: Vec<&str> = json
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "bytes",
                "corpus",
                "correct",
                "cpu_secs",
                "exit_code",
                "latency_ms",
                "messages",
                "notes",
                "peak_rss_bytes",
                "rerun_exit_code",
                "rerun_secs",
                "tool",
                "tool_version",
                "verdict",
                "wall_secs",
            ]
        );
        assert_eq!(json["tool"], "mailferry");
        assert_eq!(json["messages"], 1000);
        assert!(json["cpu_secs"].is_null(), "{json}");
    }
}
