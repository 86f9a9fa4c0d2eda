//! The summary table printed at the end of a run, and the failures with their reasons.

use std::fmt::Write as _;

use mailferry::core::{Report, Verification};

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// The per-folder table and totals of a copy.
pub fn copy_table(report: &Report) -> String {
    let mut out = String::new();
    let mut rows: Vec<(String, &mailferry::core::Counts)> = report
        .folders
        .iter()
        .map(|f| {
            let mut name = f.source.to_string();
            if f.target != f.source {
                name = format!("{name} → {}", f.target);
            }
            if f.unchanged {
                name.push_str(" (unchanged)");
            }
            (name, &f.counts)
        })
        .collect();
    rows.push(("total".into(), &report.totals));
    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 60);
    let _ = writeln!(
        out,
        "{:<width$}  {:>7} {:>7} {:>8} {:>8} {:>8} {:>6} {:>9}",
        "folder", "seen", "copied", "already", "existing", "filtered", "failed", "MB"
    );
    for (name, c) in rows {
        let _ = writeln!(
            out,
            "{:<width$}  {:>7} {:>7} {:>8} {:>8} {:>8} {:>6} {:>9}",
            name,
            c.seen,
            c.copied,
            c.already_copied,
            c.skipped_existing,
            c.filtered,
            c.failed,
            mb(c.bytes)
        );
    }
    let _ = writeln!(
        out,
        "{} items copied in {:.1} s ({:.0} items/s, {:.1} MB/s)",
        report.totals.copied,
        report.duration_secs,
        report.items_per_sec,
        report.bytes_per_sec / 1e6
    );
    let mut shown = 0;
    for f in &report.folders {
        if let Some(e) = &f.error {
            let _ = writeln!(out, "folder {} failed: {e}", f.source);
        }
        for issue in &f.failures {
            if shown < 20 {
                let _ = writeln!(out, "failed: {} #{}: {}", f.source, issue.key, issue.reason);
            }
            shown += 1;
        }
    }
    if shown > 20 {
        let _ = writeln!(out, "… and {} more failures (see --report)", shown - 20);
    }
    out
}

/// The verification table.
pub fn verify_table(v: &Verification) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<30} {:>7} {:>7} {:>7} {:>6} {:>7} {:>9} {:>6} {:>6}",
        "folder", "source", "target", "missing", "extra", "changed", "rewritten", "flags", "dates"
    );
    for f in &v.folders {
        let _ = writeln!(
            out,
            "{:<30} {:>7} {:>7} {:>7} {:>6} {:>7} {:>9} {:>6} {:>6}",
            f.source.to_string(),
            f.source_count,
            f.target_count,
            f.missing.len(),
            f.extra.len(),
            f.changed.len(),
            f.rewritten_by_target.len(),
            f.flags.len(),
            f.dates.len()
        );
    }
    let _ = writeln!(
        out,
        "{}",
        if v.is_match() {
            "source and target match"
        } else {
            "source and target DIFFER"
        }
    );
    let compared: u64 = v.folders.iter().map(|f| f.bytes_compared).sum();
    if compared == 0 {
        // Plain verify compares listings only; say what that leaves out.
        let _ = writeln!(
            out,
            "compared: presence, sizes, flags and dates; NOT the message bytes (a target that \
             rewrites bytes without changing sizes, such as Cyrus with 8-bit headers, passes \
             this check): run with --read-back to compare every message's bytes"
        );
    } else {
        let _ = writeln!(
            out,
            "compared: the bytes of {compared} messages read back from both sides"
        );
    }
    out
}
