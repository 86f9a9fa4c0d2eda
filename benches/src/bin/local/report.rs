//! The results of the local-store bench as markdown: one row per tool × path, the
//! mailferry/mbsync ratio for Maildir → Maildir, the multi-GB mbox memory figures, and notes.
//!
//! As in the IMAP comparison, rates are over the source's message count and canonical (CRLF)
//! bytes, the same numbers for every tool, so a tool that skipped mail does not look faster;
//! MB is 10^6 bytes; a figure that could not be measured prints as "n/a", never as 0.

use std::fmt::Write as _;

use mailferry_benches::figures::RunFigures;
use mailferry_benches::text::{self, exit_code, opt, rate};

/// One tool copying one source kind into a fresh Maildir.
#[derive(Debug, Clone)]
pub struct LocalRun {
    /// `mailferry` or `mbsync`.
    pub tool: String,
    /// `Maildir → Maildir` or `mbox → Maildir`.
    pub path: String,
    /// What the run measured and how it was judged (every case here is re-run).
    pub figures: RunFigures,
}

/// Reading one multi-GB mbox into a Maildir: peak memory against file size.
#[derive(Debug, Clone)]
pub struct BigRun {
    /// Size of the mbox file on disk, bytes.
    pub file_bytes: u64,
    /// Messages in it.
    pub messages: u64,
    /// Wall time, seconds.
    pub wall_secs: f64,
    /// CPU seconds.
    pub cpu_secs: Option<f64>,
    /// Peak resident set, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// "yes" or "no: reasons" (report counts and `verify --read-back`).
    pub verdict: String,
}

/// How the run was set up, for the header.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// When (UTC).
    pub date: String,
    /// CPU model and cores.
    pub machine: String,
    /// `/proc/loadavg` when the run started: other work on the machine skews the figures.
    pub load: String,
    /// The `--scale` factor.
    pub scale: f64,
    /// Tool versions, or why a tool was skipped.
    pub tools: Vec<String>,
    /// The harness's command line.
    pub command: String,
}

/// The main table.
pub fn table(runs: &[LocalRun]) -> String {
    let mut out = String::from(
        "| tool | path | msgs/s | MB/s | CPU s | peak RSS MB | correct | re-run s |\n\
         |---|---|---:|---:|---:|---:|---|---:|\n",
    );
    for r in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            r.tool,
            r.figures.source_cell(&r.path),
            r.figures.cells()
        );
    }
    out
}

/// mailferry against each other tool on the same path: rate, CPU and re-run ratios.
pub fn ratios(runs: &[LocalRun]) -> Vec<String> {
    let rerun_secs = |r: &LocalRun| r.figures.rerun_secs.unwrap_or_default();
    let mut lines = Vec::new();
    for peer in runs.iter().filter(|r| r.tool != "mailferry") {
        let Some(mine) = runs
            .iter()
            .find(|r| r.tool == "mailferry" && r.path == peer.path)
        else {
            continue;
        };
        lines.push(format!(
            "mailferry / {} ({}): {:.2}× the msgs/s, {}, {:.2}× the re-run time",
            peer.tool,
            peer.path,
            mine.figures.rate_vs(&peer.figures),
            mine.figures.cpu_vs(&peer.figures),
            rerun_secs(mine) / rerun_secs(peer).max(1e-9),
        ));
    }
    lines
}

/// The multi-GB mbox section.
pub fn big_section(big: &BigRun) -> String {
    let rss = big.peak_rss_bytes.map(|b| b as f64);
    let ratio = rss.map(|r| format!("{:.1} %", 100.0 * r / big.file_bytes.max(1) as f64));
    let mut verdict = big.verdict.replace('|', "\\|");
    if big.exit_code != Some(0) {
        verdict = format!("{verdict} (exit {})", exit_code(big.exit_code));
    }
    let mut out = String::from(
        "| mbox file | msgs | wall s | MB/s | CPU s | peak RSS MB | RSS / file size | correct |\n\
         |---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let _ = writeln!(
        out,
        "| {:.2} GB | {} | {:.1} | {} | {} | {} | {} | {} |",
        big.file_bytes as f64 / 1e9,
        big.messages,
        big.wall_secs,
        rate(big.file_bytes as f64 / 1e6 / big.wall_secs.max(1e-9)),
        opt(big.cpu_secs, 1),
        opt(rss.map(|b| b / 1e6), 0),
        ratio.unwrap_or_else(|| "n/a".into()),
        verdict,
    );
    out
}

/// The whole report.
pub fn markdown(info: &RunInfo, runs: &[LocalRun], big: Option<&BigRun>) -> String {
    let mut out = String::from("# mailferry on local stores\n\n");
    let _ = writeln!(
        out,
        "{} · {} · load average at start {} · scale {} · `{}`\n",
        info.date, info.machine, info.load, info.scale, info.command
    );
    out.push_str(
        "Each tool copies the same generated corpus (typical mix, quirks on, six folders incl. \
         `Projekte/Übersicht`) into a fresh Maildir++ on the same file system; the source was \
         just written, so it is in the page cache for every tool alike, and the file system is \
         synced before each run. Both tools keep their default durability (fsync). Rates count \
         every source message and canonical byte; CPU and peak RSS are the tool's own process \
         tree (`/usr/bin/time`). \"correct\" reads source and target back with mailferry's \
         Maildir reader and compares per folder (checksums of the canonical bytes, flags + \
         keywords, internal dates) after the first run and after the re-run; for mailferry \
         `mailferry verify --read-back` must also exit 0. \"re-run s\" is the same command \
         again on the unchanged pair.\n\n",
    );
    let _ = writeln!(out, "Tools: {}\n", info.tools.join("; "));
    out.push_str(&table(runs));
    let ratios = ratios(runs);
    if !ratios.is_empty() {
        out.push('\n');
        out.push_str(&text::bullets(&ratios));
    }
    let notes: Vec<String> = runs
        .iter()
        .filter(|r| !r.figures.notes.is_empty())
        .map(|r| format!("{} {}: {}", r.tool, r.path, r.figures.notes.join("; ")))
        .collect();
    out.push_str(&text::notes_section(&notes));
    out.push_str("\n## Reading a multi-GB mbox\n\n");
    match big {
        Some(big) => {
            out.push_str(
                "`mailferry copy mbox:BIG.mbox maildir:OUT` on one generated mbox file \
                 (`SizeMix::realistic()`: 10 % of messages with 0.1–2 MB attachments, 1 % of \
                 5–15 MB), default memory budget (64 MB).\n\n",
            );
            out.push_str(&big_section(big));
        }
        None => out.push_str("Not run this time (`bash benches/local.sh --big`).\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tool: &str, wall_secs: f64, cpu: f64) -> LocalRun {
        LocalRun {
            tool: tool.into(),
            path: "Maildir → Maildir".into(),
            figures: RunFigures::sample(1000, 45_000_000, wall_secs, cpu),
        }
    }

    #[test]
    fn rows_carry_rates_verdicts_and_failed_exits() {
        let mut peer = run("mbsync", 10.0, 4.0);
        peer.figures.verdict = "no: 3 keywords lost | x".into();
        peer.figures.cpu_secs = None;
        peer.figures.rerun_exit_code = Some(1);
        let t = table(&[run("mailferry", 2.0, 1.0), peer]);
        assert!(
            t.contains(
                "| mailferry | Maildir → Maildir (1000 msgs, 45 MB) | 500 | 22.5 | 1.00 | 30 | yes | 0.50 |"
            ),
            "{t}"
        );
        assert!(
            t.contains("| 100 | 4.5 | n/a | 30 | no: 3 keywords lost \\| x | 0.50 (exit 1) |"),
            "{t}"
        );
    }

    #[test]
    fn the_ratio_compares_mailferry_with_mbsync_on_the_same_path_only() {
        let mut other_path = run("mailferry", 1.0, 1.0);
        other_path.path = "mbox → Maildir".into();
        let mut peer = run("mbsync", 10.0, 4.0);
        peer.figures.rerun_secs = Some(2.0);
        let lines = ratios(&[other_path, run("mailferry", 2.0, 1.0), peer]);
        assert_eq!(
            lines,
            [
                "mailferry / mbsync (Maildir → Maildir): 5.00× the msgs/s, 0.25× the CPU, 0.25× the re-run time"
            ]
        );
    }

    #[test]
    fn big_mbox_row_relates_peak_memory_to_file_size() {
        let big = BigRun {
            file_bytes: 2_000_000_000,
            messages: 9000,
            wall_secs: 20.0,
            cpu_secs: Some(15.0),
            peak_rss_bytes: Some(100_000_000),
            exit_code: Some(0),
            verdict: "yes".into(),
        };
        let s = big_section(&big);
        assert!(
            s.contains("| 2.00 GB | 9000 | 20.0 | 100 | 15.0 | 100 | 5.0 % | yes |"),
            "{s}"
        );
        let md = markdown(
            &RunInfo {
                date: "d".into(),
                machine: "m".into(),
                load: "0.5".into(),
                scale: 1.0,
                tools: vec!["t".into()],
                command: "c".into(),
            },
            &[],
            None,
        );
        assert!(md.contains("Not run this time"), "{md}");
    }
}
