//! One bench cell: a tool copies a source into a fresh Maildir, is measured, judged, re-run
//! unchanged and judged again; and the multi-GB mbox read.
//!
//! Why `sync` before each measured run: generating the corpus (and the previous tool's copy)
//! leaves up to gigabytes of dirty pages; without a sync the kernel writes them back while the
//! next tool runs, and both tools fsync, so one tool would pay for another's writes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mailferry_benches::figures::RunFigures;
use mailferry_benches::text::{exit_code, one_line};
use tokio::runtime::Runtime;

use crate::diff::compare;
use crate::measure::{Measured, run_measured};
use crate::readback::read_maildir;
use crate::report::{BigRun, LocalRun};
use crate::snapshot::Snapshot;
use crate::tools::Invocation;

/// What one cell runs.
pub struct Case {
    /// `mailferry` or `mbsync`.
    pub tool: &'static str,
    /// `Maildir → Maildir` or `mbox → Maildir`.
    pub path: &'static str,
    /// The copy command (run twice).
    pub copy: Invocation,
    /// mailferry's `verify --read-back`, run after the first copy.
    pub verify: Option<Invocation>,
    /// The target Maildir the copy writes.
    pub target: PathBuf,
    /// Where the copy keeps its state and report (`report.json` for mailferry).
    pub work: PathBuf,
}

fn run(inv: &Invocation, log: &Path) -> Result<Measured> {
    run_measured(&inv.program, &inv.args, &[], log)
}

/// Runs `case` against `source` (the source's contents) and judges it.
pub fn run_case(rt: &Runtime, case: &Case, source: &Snapshot, logs: &Path) -> Result<LocalRun> {
    let label = format!(
        "{}-{}",
        case.tool,
        if case.path.starts_with("mbox") {
            "mbox"
        } else {
            "maildir"
        }
    );
    let log = |attempt: &str| logs.join(format!("{label}-{attempt}.log"));

    mailferry_benches::host::sync_file_systems();
    let first = run(&case.copy, &log("first"))?;
    let mut notes: Vec<String> = first.failure_note("first run").into_iter().collect();
    if case.tool == "mailferry" {
        notes.extend(crate::compare_tools::mailferry_report_notes(
            &case.work,
            source.messages(),
        ));
    }
    let after_first = compare(source, &read_maildir(rt, &case.target)?);
    let mut verify_failed = None;
    if let Some(verify) = &case.verify {
        let v = run(verify, &log("verify"))?;
        if !v.succeeded() {
            verify_failed = Some(format!(
                "`verify --read-back` exit {}",
                exit_code(v.exit_code)
            ));
            notes.push(format!("verify: {}", one_line(&v.log_tail(3))));
        }
    }

    mailferry_benches::host::sync_file_systems();
    let rerun = run(&case.copy, &log("rerun"))?;
    notes.extend(rerun.failure_note("re-run"));
    if case.tool == "mailferry" {
        // Expecting nothing copied: anything copied on an unchanged pair is worth a note.
        notes.extend(crate::compare_tools::mailferry_rerun_note(&case.work));
    }
    let after_rerun = compare(source, &read_maildir(rt, &case.target)?);

    let mut verdict = after_first.summary();
    if after_rerun != after_first {
        verdict = format!("{verdict}; after re-run: {}", after_rerun.summary());
    }
    if let Some(why) = &verify_failed {
        verdict = if verdict == "yes" {
            format!("no: {why}")
        } else {
            format!("{verdict}; {why}")
        };
    }
    Ok(LocalRun {
        tool: case.tool.into(),
        path: case.path.into(),
        figures: RunFigures {
            correct: after_first.correct() && after_rerun.correct() && verify_failed.is_none(),
            verdict,
            notes,
            ..first.figures(source.messages(), source.bytes(), Some(&rerun))
        },
    })
}

/// Files under `dir` whose name carries mbsync's `,U=` UID field: mbsync renames the far
/// (source) side's files to record the UIDs it assigns, so a "read-only" pull writes there.
pub fn files_with_uid_field(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            n += files_with_uid_field(&path);
        } else if entry.file_name().to_string_lossy().contains(",U=") {
            n += 1;
        }
    }
    n
}

/// The multi-GB mbox read: `copy` (mbox file → Maildir) measured once, then judged by its
/// report (every message copied, none failed) and by `verify` (`--read-back`).
pub fn run_big(
    copy: &Invocation,
    verify: &Invocation,
    work: &Path,
    file_bytes: u64,
    messages: u64,
    logs: &Path,
) -> Result<BigRun> {
    mailferry_benches::host::sync_file_systems();
    let first = run(copy, &logs.join("big-copy.log")).context("running the big mbox copy")?;
    let mut problems = crate::compare_tools::mailferry_report_notes(work, messages);
    let v = run(verify, &logs.join("big-verify.log"))?;
    if !v.succeeded() {
        problems.push(format!(
            "`verify --read-back` exit {}: {}",
            exit_code(v.exit_code),
            one_line(&v.log_tail(2))
        ));
    }
    Ok(BigRun {
        file_bytes,
        messages,
        wall_secs: first.wall.as_secs_f64(),
        cpu_secs: first.cpu_secs,
        peak_rss_bytes: first.peak_rss_bytes,
        exit_code: first.exit_code,
        verdict: if problems.is_empty() {
            "yes".into()
        } else {
            format!("no: {}", problems.join("; "))
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mbsync_copy_is_measured_and_its_lost_keywords_and_x_tuid_are_named() {
        let Some(mbsync) = crate::tools::find_mbsync() else {
            eprintln!("mbsync not installed (scripts/install-test-deps.sh); nothing to run");
            return;
        };
        let rt = mailferry_benches::host::runtime().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = crate::corpus::spec(0.004);
        let src = dir.path().join("src");
        let written = crate::corpus::write_sources(&rt, &spec, &src, &dir.path().join("mbox"))
            .expect("write sources");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("mkdir");
        let case = Case {
            tool: "mbsync",
            path: "Maildir → Maildir",
            copy: crate::tools::mbsync(&mbsync, &src, &work.join("dst"), &work).expect("rc"),
            verify: None,
            target: work.join("dst"),
            work: work.clone(),
        };
        let r = run_case(&rt, &case, &written.snapshot, &work)
            .expect("run")
            .figures;
        assert_eq!(
            (r.exit_code, r.rerun_exit_code),
            (Some(0), Some(0)),
            "{r:?}"
        );
        assert_eq!(r.messages, spec.count as u64);
        assert!(
            r.wall_secs > 0.0 && r.rerun_secs.is_some_and(|s| s > 0.0),
            "{r:?}"
        );
        // isync 1.4 keeps no Maildir keywords and marks what it stores with X-TUID.
        assert!(!r.correct, "{r:?}");
        assert!(r.verdict.contains("keywords lost"), "{}", r.verdict);
        assert!(r.verdict.contains("x-tuid header added"), "{}", r.verdict);
        assert_eq!(files_with_uid_field(&src), spec.count as u64);
    }

    #[test]
    fn counts_only_files_named_with_a_uid_field_at_any_depth() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cur = dir.path().join(".Archive.2020/cur");
        std::fs::create_dir_all(&cur).expect("mkdir");
        std::fs::write(cur.join("1.M1P1.h,U=7:2,S"), "x").expect("write");
        std::fs::write(cur.join("2.M2P1.h,S=10:2,S"), "x").expect("write");
        std::fs::write(dir.path().join("3.h,U=1:2,"), "x").expect("write");
        assert_eq!(files_with_uid_field(dir.path()), 2);
        assert_eq!(files_with_uid_field(&dir.path().join("missing")), 0);
    }
}
