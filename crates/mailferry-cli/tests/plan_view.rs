//! The plan's view off a terminal: `mailferry plan` over four Maildir mailboxes (three
//! generated, one whose source is missing), once with `--log-format json` — one
//! `mailbox_started` per mailbox that runs, one `mailbox_finished` per mailbox with its outcome,
//! and final `plan_progress` totals equal to the `--report` — and once with text logs, where
//! stderr (a pipe, not a terminal) gets one line per mailbox and a final totals line, and no
//! terminal control sequence.
//!
//! The live terminal screen itself is captured with tmux for the README
//! (`docs/plan-live-view.txt`); what it draws comes from the same figures checked here.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod support;

fn plan(root: &Path, name: &str, extra: &[&str]) -> (Output, Value) {
    let report = root.join(format!("{name}-report.json"));
    let mut args = vec![
        "plan".to_string(),
        root.join("plan.csv").display().to_string(),
        "--jobs".into(),
        "2".into(),
        "--state-dir".into(),
        root.join(format!("{name}-state")).display().to_string(),
        "--report".into(),
        report.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(&args)
        .output()
        .expect("run mailferry plan");
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("the report")).expect("report JSON");
    (out, report)
}

fn write_plan(root: &Path, dst: &str) {
    let mut csv = String::from("source,target\n");
    for n in 1..=3 {
        csv.push_str(&format!(
            "maildir:{},maildir:{}\n",
            root.join(format!("src/user{n}")).display(),
            root.join(format!("{dst}/user{n}")).display()
        ));
    }
    csv.push_str(&format!(
        "maildir:{},maildir:{}\n",
        root.join("src/missing").display(),
        root.join(format!("{dst}/missing")).display()
    ));
    std::fs::write(root.join("plan.csv"), csv).expect("write the plan");
}

#[test]
fn a_plan_off_a_terminal_logs_json_events_or_quiet_lines_that_match_its_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut generated = Vec::new();
    for n in 1..=3 {
        generated.push(support::write_maildir(
            &root.join(format!("src/user{n}")),
            40 * n,
            n as u64,
        ));
    }
    let all: u64 = generated.iter().sum();

    write_plan(root, "dst-json");
    let (out, report) = plan(root, "json", &["--log-format", "json"]);
    assert_eq!(out.status.code(), Some(1), "one mailbox failed");
    let events: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a JSON line: {l}: {e}")))
        .collect();
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["event"] == kind).collect() };
    let started = of("mailbox_started");
    assert_eq!(started.len(), 3, "{events:?}");
    let mut sizes: Vec<u64> = started
        .iter()
        .map(|e| e["messages"].as_u64().expect("messages"))
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, generated);
    let finished = of("mailbox_finished");
    assert_eq!(finished.len(), 4);
    let failed: Vec<_> = finished
        .iter()
        .filter(|e| e["outcome"] == "error")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["index"], 3, "the plan's row numbers the mailbox");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("missing")
    );
    let copied: u64 = finished
        .iter()
        .map(|e| e["copied"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(copied, all);
    let last = of("plan_progress")
        .last()
        .copied()
        .cloned()
        .expect("final totals");
    assert_eq!(last["mailboxes"]["done"], 3);
    assert_eq!(last["mailboxes"]["failed"], 1);
    assert_eq!(last["mailboxes"]["running"], 0);
    assert_eq!(last["mailboxes"]["waiting"], 0);
    assert_eq!(last["copied"], report["totals"]["copied"]);
    assert_eq!(last["bytes"], report["totals"]["bytes"]);
    assert_eq!(report["totals"]["copied"], all);

    write_plan(root, "dst-text");
    let (out, report) = plan(root, "text", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\u{1b}'),
        "no terminal control off a terminal: {stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.contains(": ok (")).count(),
        3,
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.contains(": FAILED: ")).count(),
        1
    );
    let totals = stderr.lines().last().unwrap_or_default();
    assert!(
        totals.starts_with("plan: 3 done, 0 running, 1 failed, 0 waiting;"),
        "{stderr}"
    );
    assert!(totals.contains(&format!("({all} copied)")), "{totals}");
    assert_eq!(report["totals"]["copied"], all);
}
