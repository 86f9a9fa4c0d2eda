//! The `big-folder` scenario: one folder (INBOX) of small messages copied IMAP → IMAP at two
//! sizes in the same run — 5,000 and 200,000 messages at scale 1.0 — by every selected tool,
//! each into a fresh target Dovecot. Issue 8 asks that the 200,000-message folder copy at
//! ≥ 90 % of the per-message rate of the 5,000-message one, with the same peak memory.
//!
//! Design decisions, and why:
//! - **The servers scenario's cell, unchanged** ([`run::run_tool`]): same proxy, same fresh
//!   target, same `/usr/bin/time` figures, same verification and re-run; only the corpus
//!   differs. So the big-folder figures are directly comparable with the side-by-side table.
//! - **Small messages only** (`SizeMix::small()`, 0.5–8 KB, quirks on): the question is what a
//!   tool does *per message* as a folder grows (UID sets, state look-ups, listing, memory per
//!   known message), not bandwidth; small bodies keep the byte cost from hiding that.
//! - **Both sizes in one run, and the peers too**: the machine is shared and absolute rates are
//!   noisy, so the verdict is the ratio big/small of the *same* tool in the *same* run; the
//!   peers (mbsync, doveadm) show whether a drop is the servers' doing (theirs drops as well)
//!   or the tool's.
//! - **Targets**: rate ratio ≥ 0.90; peak RSS "the same", read as ≤ 1.10× or at most
//!   [`RSS_SLACK_BYTES`] more (a few MB of allocator noise on a 15 MB process is not growth).
//! - The harness reads both 200,000-message servers back to verify; that costs the harness
//!   memory (fingerprints, see `snapshot.rs`), never the tool's measured figures.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use mailferry_benches::figures::RunFigures;
use mailferry_benches::text::{self, opt};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};

use crate::report::{self, RunInfo, RunResult};
use crate::run::{self, Corpus};
use crate::scenario::{ratio, short_count, times};
use crate::tools::ToolKind;
use crate::{Outcome, Setup};

/// Messages of the small and the big folder at scale 1.0.
const SMALL_COUNT: f64 = 5_000.0;
const BIG_COUNT: f64 = 200_000.0;
/// The big folder is at least this many times the small one, so a tiny `--scale` still
/// compares two clearly different sizes.
const MIN_FACTOR: usize = 10;
/// Rate target: the big folder at this fraction of the small folder's msgs/s, or better.
pub const RATE_TARGET: f64 = 0.90;
/// Memory target: the big folder's peak RSS at most this factor of the small one's …
pub const RSS_FACTOR: f64 = 1.10;
/// … or at most this many bytes more.
pub const RSS_SLACK_BYTES: u64 = 5_000_000;

/// The small and the big folder's message counts at `scale` (floors: the servers scenario's
/// minimum for the small one, [`MIN_FACTOR`] × the small one for the big one).
pub fn sizes(scale: f64) -> (usize, usize) {
    let small = ((SMALL_COUNT * scale).round() as usize).max(run::MIN_COUNT);
    let big = ((BIG_COUNT * scale).round() as usize).max(small * MIN_FACTOR);
    (small, big)
}

/// One INBOX of `count` small messages with the generator's quirks.
pub fn corpus(count: usize) -> Corpus {
    Corpus {
        name: format!("inbox-{count}"),
        spec: CorpusSpec::new(count, SizeMix::small()).with_quirks(),
    }
}

/// Whether the big run's peak RSS counts as "the same" as the small run's.
pub fn rss_same(small: u64, big: u64) -> bool {
    big as f64 <= small as f64 * RSS_FACTOR || big.saturating_sub(small) <= RSS_SLACK_BYTES
}

/// One tool at one latency, small folder against big folder.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeComparison {
    /// The tool.
    pub tool: ToolKind,
    /// Added round trip, ms.
    pub latency_ms: u64,
    /// Messages in the small and the big folder.
    pub counts: (u64, u64),
    /// Big msgs/s over small msgs/s.
    pub rate_ratio: Option<f64>,
    /// Big peak RSS over small peak RSS.
    pub rss_ratio: Option<f64>,
    /// Whether the peak RSS counts as the same ([`rss_same`]); `None` when unknown.
    pub rss_same: Option<bool>,
}

impl SizeComparison {
    /// Whether the rate target is met (`None`: unknown).
    pub fn rate_met(&self) -> Option<bool> {
        self.rate_ratio.map(|r| r >= RATE_TARGET)
    }

    /// The report line: `mailferry (0 ms): 200k vs 5k: 0.97× the msgs/s, 1.01× the peak RSS`.
    pub fn line(&self) -> String {
        let verdict = |met: Option<bool>| match met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "unknown",
        };
        format!(
            "{} ({} ms): {} vs {}: {} the msgs/s, {} the peak RSS (rate target ≥ {RATE_TARGET:.2}: \
             {}; memory target ≤ {RSS_FACTOR:.2}× or +{} MB: {})",
            self.tool,
            self.latency_ms,
            short_count(self.counts.1),
            short_count(self.counts.0),
            times(self.rate_ratio),
            times(self.rss_ratio),
            verdict(self.rate_met()),
            RSS_SLACK_BYTES / 1_000_000,
            verdict(self.rss_same),
        )
    }
}

/// Pairs every tool's small-folder run with its big-folder run at the same latency. A run
/// that failed (non-zero exit) has no rate to compare.
pub fn compare_sizes(results: &[RunResult], small: &str, big: &str) -> Vec<SizeComparison> {
    let mut out = Vec::new();
    for s in results.iter().filter(|r| r.corpus == small) {
        let Some(b) = results
            .iter()
            .find(|r| r.corpus == big && r.tool == s.tool && r.latency_ms == s.latency_ms)
        else {
            continue;
        };
        let (tool, latency_ms) = (s.tool, s.latency_ms);
        let (s, b) = (&s.figures, &b.figures);
        let rate = |r: &RunFigures| (r.exit_code == Some(0)).then(|| r.msgs_per_sec());
        let rss = |r: &RunFigures| r.peak_rss_bytes.map(|b| b as f64);
        out.push(SizeComparison {
            tool,
            latency_ms,
            counts: (s.messages, b.messages),
            rate_ratio: ratio(rate(b), rate(s)),
            rss_ratio: ratio(rss(b), rss(s)),
            rss_same: s
                .peak_rss_bytes
                .zip(b.peak_rss_bytes)
                .map(|(s, b)| rss_same(s, b)),
        });
    }
    out
}

/// The per-tool summary table: both sizes side by side.
fn summary_table(results: &[RunResult], small: &str, big: &str) -> String {
    let (mut s_label, mut b_label) = (small.to_string(), big.to_string());
    if let Some(r) = results.iter().find(|r| r.corpus == small) {
        s_label = short_count(r.figures.messages);
    }
    if let Some(r) = results.iter().find(|r| r.corpus == big) {
        b_label = short_count(r.figures.messages);
    }
    let mut out = format!(
        "| tool | latency | msgs/s {s_label} | msgs/s {b_label} | {b_label}/{s_label} rate | \
         peak RSS MB {s_label} | peak RSS MB {b_label} | {b_label}/{s_label} RSS | \
         CPU s {s_label} / {b_label} | correct {s_label} / {b_label} | re-run s {s_label} / {b_label} |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n"
    );
    let mb = |r: &RunFigures| opt(r.peak_rss_bytes.map(|b| b as f64 / 1e6), 0);
    let cpu = |r: &RunFigures| opt(r.cpu_secs, 2);
    let rerun = |r: &RunFigures| opt(r.rerun_secs, 2);
    let rate = |r: &RunFigures| {
        if r.exit_code == Some(0) {
            text::rate(r.msgs_per_sec())
        } else {
            format!("failed (exit {})", text::exit_code(r.exit_code))
        }
    };
    for c in compare_sizes(results, small, big) {
        let find = |corpus: &str| {
            results
                .iter()
                .find(|r| r.corpus == corpus && r.tool == c.tool && r.latency_ms == c.latency_ms)
        };
        let (Some(s), Some(b)) = (find(small), find(big)) else {
            continue;
        };
        let (s, b) = (&s.figures, &b.figures);
        let yes = |r: &RunFigures| if r.correct { "yes" } else { "no" };
        let _ = writeln!(
            out,
            "| {} | {} ms | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} / {} |",
            c.tool,
            c.latency_ms,
            rate(s),
            rate(b),
            times(c.rate_ratio),
            mb(s),
            mb(b),
            times(c.rss_ratio),
            cpu(s),
            cpu(b),
            yes(s),
            yes(b),
            rerun(s),
            rerun(b),
        );
    }
    out
}

/// The whole markdown report of the scenario.
pub fn markdown(info: &RunInfo, results: &[RunResult], small: &str, big: &str) -> String {
    let mut out = info.header(
        "mailferry: one big folder",
        "One folder (INBOX) of small messages (`SizeMix::small()`, 0.5–8 KB, quirks on) copied \
         IMAP → IMAP by each tool into a fresh Dovecot 2.3, at two sizes in the same run, over \
         **plaintext IMAP on 127.0.0.1 (TLS off for all tools)** through the latency proxy. \
         Target (issue 8): the big folder at ≥ 0.90× the small folder's msgs/s, with the same \
         peak RSS (read as ≤ 1.10× or within 5 MB). CPU and peak RSS are the tool's own \
         processes (`/usr/bin/time`); \"correct\" reads both servers back and compares them \
         per folder, after the first run and after the re-run.\n\n",
    );
    out.push_str(&summary_table(results, small, big));
    let comparisons: Vec<String> = compare_sizes(results, small, big)
        .iter()
        .map(SizeComparison::line)
        .collect();
    if !comparisons.is_empty() {
        out.push('\n');
        out.push_str(&text::bullets(&comparisons));
    }
    out.push_str("\nAll runs:\n\n");
    out.push_str(&report::table(results));
    out.push_str(&report::notes(results));
    out
}

/// Runs the scenario: for each size, one filled source, then every tool at every latency.
pub fn run(setup: &Setup, info: &RunInfo) -> Result<Outcome> {
    let (small, big) = sizes(setup.scale);
    let corpora = [corpus(small), corpus(big)];
    let mut results = Vec::new();
    let mut expected = 0;
    for corpus in &corpora {
        println!(
            "== one folder of {} small messages; filling the source Dovecot…",
            corpus.spec.count
        );
        let source = run::start_source(&setup.rt, corpus)?;
        println!(
            "   source holds {} messages, {:.0} MB",
            source.snapshot.messages(),
            source.snapshot.bytes() as f64 / 1e6,
        );
        for &latency in &setup.latencies {
            let rtt = Duration::from_millis(latency);
            let source_proxy = run::proxy(&setup.rt, source.dovecot.imap_port(), rtt)?;
            for tool in &setup.installed {
                expected += usize::from(tool.kind == ToolKind::Mailferry);
                results.extend(crate::run_cell(
                    setup,
                    tool,
                    corpus,
                    &source,
                    &source_proxy,
                    rtt,
                ));
            }
        }
    }
    let markdown = markdown(info, &results, &corpora[0].name, &corpora[1].name);
    let comparisons: Vec<String> = compare_sizes(&results, &corpora[0].name, &corpora[1].name)
        .iter()
        .map(SizeComparison::line)
        .collect();
    let json = serde_json::json!({
        "info": info,
        "sizes": [small, big],
        "comparisons": comparisons,
        "results": results,
    });
    Ok(Outcome {
        markdown,
        json,
        mailferry_ok: crate::mailferry_ok(&results, expected),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(corpus: &str, messages: u64, wall: f64, rss: u64) -> RunResult {
        let mut figures = RunFigures::sample(messages, messages * 4_000, wall, 1.0);
        figures.peak_rss_bytes = Some(rss);
        RunResult {
            tool: ToolKind::Mailferry,
            tool_version: "v".into(),
            corpus: corpus.into(),
            latency_ms: 0,
            figures,
        }
    }

    #[test]
    fn sizes_scale_with_floors_that_keep_the_folders_apart() {
        assert_eq!(sizes(1.0), (5_000, 200_000));
        assert_eq!(sizes(0.5), (2_500, 100_000));
        assert_eq!(sizes(0.005), (25, 1_000));
        assert_eq!(sizes(0.0001), (run::MIN_COUNT, run::MIN_COUNT * MIN_FACTOR));
        let c = corpus(5_000);
        assert_eq!(c.name, "inbox-5000");
        assert!(c.spec.quirks);
        assert_eq!(c.spec.folders, [mailferry_core::FolderPath::inbox()]);
    }

    #[test]
    fn rss_is_the_same_within_ten_percent_or_five_mb() {
        assert!(rss_same(20_000_000, 24_900_000));
        assert!(rss_same(100_000_000, 110_000_000));
        assert!(!rss_same(100_000_000, 111_000_000));
        assert!(!rss_same(20_000_000, 25_100_000));
        assert!(rss_same(30_000_000, 10_000_000));
    }

    #[test]
    fn big_and_small_runs_of_a_tool_are_paired_and_judged() {
        let results = [
            result("inbox-5000", 5_000, 5.0, 20_000_000),
            result("inbox-200000", 200_000, 250.0, 21_000_000),
        ];
        let c = compare_sizes(&results, "inbox-5000", "inbox-200000");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].rate_ratio, Some(0.8));
        assert_eq!(c[0].rate_met(), Some(false));
        assert_eq!(c[0].rss_same, Some(true));
        assert_eq!(
            c[0].line(),
            "mailferry (0 ms): 200k vs 5k: 0.80× the msgs/s, 1.05× the peak RSS (rate target \
             ≥ 0.90: missed; memory target ≤ 1.10× or +5 MB: met)"
        );
        let table = summary_table(&results, "inbox-5000", "inbox-200000");
        assert!(
            table.contains("| mailferry | 0 ms | 1000 | 800 | 0.80× | 20 | 21 | 1.05× |"),
            "{table}"
        );
    }

    #[test]
    fn a_failed_big_run_has_no_rate_ratio() {
        let mut big = result("inbox-200000", 200_000, 10.0, 21_000_000);
        big.figures.exit_code = Some(1);
        big.figures.peak_rss_bytes = None;
        let results = [result("inbox-5000", 5_000, 5.0, 20_000_000), big];
        let c = compare_sizes(&results, "inbox-5000", "inbox-200000");
        assert_eq!(c[0].rate_ratio, None);
        assert_eq!(c[0].rss_same, None);
        assert!(c[0].line().contains("n/a the msgs/s"), "{}", c[0].line());
        let table = summary_table(&results, "inbox-5000", "inbox-200000");
        assert!(table.contains("failed (exit 1)"), "{table}");
    }
}
