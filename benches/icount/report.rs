//! The gate's verdict: callgrind's totals per path against the committed baseline.
//!
//! The baseline stores the workload (items, bytes) next to each count. A count is only
//! comparable with one taken over the same workload, so a changed workload is an error asking
//! for `--update`, never a silent pass. Getting faster never fails the gate, but a path more than
//! the threshold below its baseline is pointed out: updating the baseline then keeps the gain
//! from being eaten by later regressions unnoticed.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::PATHS;
use crate::workloads::Workload;

/// One path's committed figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    instructions: u64,
    items: u64,
    bytes: u64,
}

/// `baseline.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Baseline {
    /// How the counts were taken, for whoever reads the file.
    comment: String,
    /// valgrind and rustc versions: counts move a little with either.
    toolchain: String,
    paths: BTreeMap<String, Entry>,
}

/// The `Ir` total of a callgrind output file, after checking that the measured function was
/// seen at all (a renamed or inlined function would otherwise count zero and pass).
fn callgrind_total(file: &Path, path: &str) -> anyhow::Result<u64> {
    let text = fs::read_to_string(file)
        .with_context(|| format!("cannot read callgrind output {}", file.display()))?;
    let function = format!("icount_measure_{path}");
    if !text.contains(&function) {
        bail!(
            "callgrind never entered {function} (renamed, or inlined?) in {}",
            file.display()
        );
    }
    let total = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .with_context(|| format!("no totals line in {}", file.display()))?;
    let total: u64 = total
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("unreadable totals line in {}", file.display()))?;
    if total == 0 {
        bail!("callgrind counted 0 instructions in {function}");
    }
    Ok(total)
}

fn measured(dir: &Path, path: &str) -> anyhow::Result<Entry> {
    let json = dir.join(format!("{path}.json"));
    let workload: Workload = serde_json::from_str(
        &fs::read_to_string(&json).with_context(|| format!("cannot read {}", json.display()))?,
    )
    .with_context(|| format!("{} is not a workload", json.display()))?;
    Ok(Entry {
        instructions: callgrind_total(&dir.join(format!("{path}.callgrind")), path)?,
        items: workload.items,
        bytes: workload.bytes,
    })
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints the table; with `update` writes the baseline, otherwise compares. `Ok(false)` when a
/// path is more than `threshold` percent above its baseline.
pub fn report(dir: &Path, baseline: &Path, update: bool, threshold: f64) -> anyhow::Result<bool> {
    let toolchain = std::env::var("ICOUNT_TOOLCHAIN").unwrap_or_default();
    let mut now = BTreeMap::new();
    for path in PATHS {
        now.insert(path.to_string(), measured(dir, path)?);
    }
    let old: Option<Baseline> = match fs::read_to_string(baseline) {
        Ok(text) => Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a baseline", baseline.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && update => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", baseline.display())),
    };

    println!(
        "{:<8} {:>15} {:>10} {:>9} {:>15} {:>8}",
        "path", "instructions", "per item", "per KB", "baseline", "delta"
    );
    let mut pass = true;
    let mut notes = Vec::new();
    for path in PATHS {
        let m = &now[path];
        let per_item = m.instructions / m.items.max(1);
        let per_kb = m.instructions as f64 / (m.bytes as f64 / 1024.0).max(1.0);
        let base = old.as_ref().and_then(|b| b.paths.get(path));
        let (base_text, delta_text) = match base {
            Some(b) if b.items == m.items && b.bytes == m.bytes => {
                let delta = (m.instructions as f64 / b.instructions as f64 - 1.0) * 100.0;
                if delta > threshold && !update {
                    pass = false;
                    notes.push(format!(
                        "{path}: {delta:+.2}% is over the {threshold}% limit: find the cause with \
                         callgrind_annotate {}",
                        dir.join(format!("{path}.callgrind")).display()
                    ));
                } else if delta < -threshold && !update {
                    notes.push(format!(
                        "{path}: {delta:+.2}% below the baseline: record the gain with --update"
                    ));
                }
                (thousands(b.instructions), format!("{delta:+.2}%"))
            }
            Some(b) => {
                if !update {
                    pass = false;
                    notes.push(format!(
                        "{path}: the workload changed ({} items / {} bytes, baseline {} / {}): \
                         counts are not comparable; run with --update",
                        m.items, m.bytes, b.items, b.bytes
                    ));
                }
                (thousands(b.instructions), "n/a".into())
            }
            None => {
                if !update {
                    pass = false;
                    notes.push(format!("{path}: not in the baseline; run with --update"));
                }
                ("-".into(), "n/a".into())
            }
        };
        println!(
            "{path:<8} {:>15} {:>10} {per_kb:>9.0} {base_text:>15} {delta_text:>8}",
            thousands(m.instructions),
            thousands(per_item),
        );
    }
    if let Some(old) = &old
        && !toolchain.is_empty()
        && old.toolchain != toolchain
    {
        notes.push(format!(
            "the baseline was recorded with {:?}, this run used {toolchain:?}: small shifts are \
             expected",
            old.toolchain
        ));
    }
    for note in &notes {
        println!("note: {note}");
    }
    if update {
        let new = Baseline {
            comment: "Instruction counts (callgrind Ir) of benches/icount's measured functions; \
                      regenerate with `bash benches/icount/run.sh --update`"
                .into(),
            toolchain,
            paths: now,
        };
        let json = serde_json::to_string_pretty(&new)?;
        fs::write(baseline, json + "\n")
            .with_context(|| format!("cannot write {}", baseline.display()))?;
        println!("baseline written to {}", baseline.display());
        return Ok(true);
    }
    println!(
        "{}",
        if pass {
            format!("icount: PASS (limit +{threshold}%)")
        } else {
            format!("icount: FAIL (limit +{threshold}%)")
        }
    );
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory as `run.sh` leaves it: every path with `instructions` over `items`.
    fn outputs(instructions: u64, items: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for path in PATHS {
            let workload = format!("{{\"items\":{items},\"bytes\":{}}}", items * 1000);
            fs::write(dir.path().join(format!("{path}.json")), workload).expect("json");
            let callgrind = format!(
                "events: Ir\nfn=(1) icount::workloads::icount_measure_{path}\n0 {instructions}\n\
                 summary: {instructions}\ntotals: {instructions}\n"
            );
            fs::write(dir.path().join(format!("{path}.callgrind")), callgrind).expect("out");
        }
        dir
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn callgrind_output_without_the_measured_function_is_an_error() {
        let dir = outputs(1_000, 10);
        let file = dir.path().join("copier.callgrind");
        assert_eq!(callgrind_total(&file, "copier").expect("total"), 1_000);
        fs::write(&file, "events: Ir\nfn=(1) main\ntotals: 5\n").expect("write");
        let err = callgrind_total(&file, "copier").expect_err("never entered");
        assert!(err.to_string().contains("icount_measure_copier"), "{err}");
        fs::write(
            &file,
            "events: Ir\nfn=(1) icount_measure_copier\ntotals: 0\n",
        )
        .expect("w");
        assert!(
            callgrind_total(&file, "copier").is_err(),
            "zero is not a count"
        );
    }

    #[test]
    fn fails_only_above_the_threshold_and_update_writes_a_passing_baseline() {
        let baseline_dir = tempfile::tempdir().expect("temp dir");
        let baseline = baseline_dir.path().join("baseline.json");
        let first = outputs(1_000_000, 10);
        assert!(report(first.path(), &baseline, true, 5.0).expect("update"));
        assert!(report(first.path(), &baseline, false, 5.0).expect("same counts"));
        let slower = outputs(1_040_000, 10);
        assert!(report(slower.path(), &baseline, false, 5.0).expect("+4%"));
        let slowest = outputs(1_060_000, 10);
        assert!(!report(slowest.path(), &baseline, false, 5.0).expect("+6%"));
        let faster = outputs(500_000, 10);
        assert!(report(faster.path(), &baseline, false, 5.0).expect("-50%"));
    }

    #[test]
    fn a_changed_workload_fails_until_the_baseline_is_updated() {
        let baseline_dir = tempfile::tempdir().expect("temp dir");
        let baseline = baseline_dir.path().join("baseline.json");
        assert!(report(outputs(1_000, 10).path(), &baseline, true, 5.0).expect("update"));
        let other = outputs(1_000, 11);
        assert!(!report(other.path(), &baseline, false, 5.0).expect("compare"));
        assert!(report(other.path(), &baseline, true, 5.0).expect("update"));
        assert!(report(other.path(), &baseline, false, 5.0).expect("compare"));
    }

    #[test]
    fn a_missing_baseline_is_an_error_unless_updating() {
        let dir = tempfile::tempdir().expect("temp dir");
        let baseline = dir.path().join("none.json");
        assert!(report(outputs(1_000, 10).path(), &baseline, false, 5.0).is_err());
    }
}
