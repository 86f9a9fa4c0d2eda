//! The results of the local-store bench as markdown: one row per tool × path, the
//! mailferry/mbsync ratio for Maildir → Maildir, the multi-GB mbox memory figures, and notes.
//!
//! As in the IMAP comparison, rates are over the source's message count and canonical (CRLF)
//! bytes, the same numbers for every tool, so a tool that skipped mail does not look faster;
//! MB is 10^6 bytes; a figure that could not be measured prints as "n/a", never as 0.

use std::fmt::Write as _;

/// One tool copying one source kind into a fresh Maildir.
#[derive(Debug, Clone)]
pub struct LocalRun {
    /// `mailferry` or `mbsync`.
    pub tool: String,
    /// `Maildir → Maildir` or `mbox → Maildir`.
    pub path: String,
    /// Messages in the source.
    pub messages: u64,
    /// Canonical bytes in the source.
    pub bytes: u64,
    /// Wall time of the first run, seconds.
    pub wall_secs: f64,
    /// User + system CPU seconds of the first run.
    pub cpu_secs: Option<f64>,
    /// Peak resident set of the first run, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Exit code of the first run (None: killed by a signal).
    pub exit_code: Option<i32>,
    /// Whether the target equals the source, after the first run and after the re-run.
    pub correct: bool,
    /// "yes" or "no: reasons".
    pub verdict: String,
    /// Wall time of the no-change re-run, seconds.
    pub rerun_secs: f64,
    /// Exit code of the re-run.
    pub rerun_exit_code: Option<i32>,
    /// Anything else worth a line.
    pub notes: Vec<String>,
}

impl LocalRun {
    /// Messages per second of the first run.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.wall_secs.max(1e-9)
    }

    /// MB (10^6 bytes) per second of the first run.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.wall_secs.max(1e-9)
    }

    /// Whether the tool ran cleanly both times and copied faithfully.
    pub fn ok(&self) -> bool {
        self.correct && self.exit_code == Some(0) && self.rerun_exit_code == Some(0)
    }
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

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |x| format!("{x:.digits$}"))
}

fn rate(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn code(c: Option<i32>) -> String {
    c.map_or_else(|| "signal".into(), |c| c.to_string())
}

/// The main table.
pub fn table(runs: &[LocalRun]) -> String {
    let mut out = String::from(
        "| tool | path | msgs/s | MB/s | CPU s | peak RSS MB | correct | re-run s |\n\
         |---|---|---:|---:|---:|---:|---|---:|\n",
    );
    for r in runs {
        let mut correct = r.verdict.replace('|', "\\|");
        if r.exit_code != Some(0) {
            correct = format!("{correct} (exit {})", code(r.exit_code));
        }
        let mut rerun = format!("{:.2}", r.rerun_secs);
        if r.rerun_exit_code != Some(0) {
            rerun = format!("{rerun} (exit {})", code(r.rerun_exit_code));
        }
        let _ = writeln!(
            out,
            "| {} | {} ({} msgs, {:.0} MB) | {} | {} | {} | {} | {} | {} |",
            r.tool,
            r.path,
            r.messages,
            r.bytes as f64 / 1e6,
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

/// mailferry against each other tool on the same path: rate, CPU and re-run ratios.
pub fn ratios(runs: &[LocalRun]) -> Vec<String> {
    let mut lines = Vec::new();
    for peer in runs.iter().filter(|r| r.tool != "mailferry") {
        let Some(mine) = runs
            .iter()
            .find(|r| r.tool == "mailferry" && r.path == peer.path)
        else {
            continue;
        };
        let cpu = match (mine.cpu_secs, peer.cpu_secs) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}× the CPU", a / b),
            _ => "CPU n/a".into(),
        };
        lines.push(format!(
            "mailferry / {} ({}): {:.2}× the msgs/s, {cpu}, {:.2}× the re-run time",
            peer.tool,
            peer.path,
            mine.msgs_per_sec() / peer.msgs_per_sec().max(1e-9),
            mine.rerun_secs / peer.rerun_secs.max(1e-9),
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
        verdict = format!("{verdict} (exit {})", code(big.exit_code));
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
        for line in ratios {
            let _ = writeln!(out, "- {line}");
        }
    }
    let notes: Vec<String> = runs
        .iter()
        .filter(|r| !r.notes.is_empty())
        .map(|r| format!("- {} {}: {}", r.tool, r.path, r.notes.join("; ")))
        .collect();
    if !notes.is_empty() {
        out.push_str("\nNotes:\n");
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
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
            messages: 1000,
            bytes: 45_000_000,
            wall_secs,
            cpu_secs: Some(cpu),
            peak_rss_bytes: Some(30_000_000),
            exit_code: Some(0),
            correct: true,
            verdict: "yes".into(),
            rerun_secs: 0.5,
            rerun_exit_code: Some(0),
            notes: vec![],
        }
    }

    #[test]
    fn rows_carry_rates_verdicts_and_failed_exits() {
        let mut peer = run("mbsync", 10.0, 4.0);
        peer.verdict = "no: 3 keywords lost | x".into();
        peer.cpu_secs = None;
        peer.rerun_exit_code = Some(1);
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
        peer.rerun_secs = 2.0;
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
