use serde_json::json;

use super::model::{self, Input, Page};
use super::render;

fn mailbox(source: &str, outcome: &str, copied: u64, failed: u64, start: f64) -> serde_json::Value {
    let failures: Vec<_> = (0..failed)
        .map(|n| {
            json!({"key": format!("{}", 100 + n), "reason": format!("message {} is {} MB, over the limit", 100 + n, 30 + n), "kind": "item"})
        })
        .collect();
    json!({
        "command": "copy", "source": source, "target": format!("maildir:/out/{source}"),
        "outcome": outcome, "exit_code": if failed > 0 { 1 } else { 0 }, "error": null,
        "excluded_folders": [["Trash", "excluded by --exclude"]], "conflicts": [],
        "copy": {
            "folders": [{
                "source": ["INBOX"], "target": ["INBOX"],
                "counts": {"seen": copied + failed, "copied": copied, "already_copied": 0,
                           "skipped_existing": 0, "filtered": 0, "failed": failed, "bytes": copied * 1000},
                "failures": failures, "filtered": [], "normalisation": {"bare_lf": 0, "bare_cr": 0},
                "unchanged": false, "error": null, "duration_secs": 2.0, "started_unix": start
            }],
            "totals": {"seen": copied + failed, "copied": copied, "already_copied": 0,
                       "skipped_existing": 0, "filtered": 0, "failed": failed, "bytes": copied * 1000},
            "duration_secs": 2.0, "items_per_sec": 1.0, "bytes_per_sec": 1.0, "cancelled": false
        },
        "sync": null, "verification": null
    })
}

fn plan() -> serde_json::Value {
    json!({
        "mailboxes": [
            mailbox("mbox:alice.mbox", "ok", 120, 0, 1000.0),
            mailbox("mbox:<script>alert(1)</script>", "items_failed", 10, 2, 1001.0),
            {"command": "copy", "source": "imaps://bob@old", "target": "imaps://bob@new",
             "outcome": "error", "exit_code": 3, "error": "imaps://bob@old: authentication failed",
             "excluded_folders": [], "conflicts": [], "copy": null, "sync": null, "verification": null,
             "throttled": [{"provider": "gmail", "events": 3, "backoff_secs": 12.5}]}
        ],
        "totals": {}, "failed_mailboxes": 2, "duration_secs": 4.0, "items_per_sec": 32.5
    })
}

fn page() -> Page {
    Page {
        inputs: vec![Input::from_json("plan.json".into(), &plan()).expect("a plan")],
        unreadable: Vec::new(),
    }
}

#[test]
fn totals_add_up_over_mailboxes_and_failures_group_by_cause() {
    let p = page();
    let t = p.totals();
    assert_eq!((t.copied, t.failed, t.bytes), (130, 2, 130_000));
    let groups = model::group(&model::incidents(&p));
    // The two oversized messages differ only in key and size: one cause.
    let item = groups
        .iter()
        .find(|g| g.kind == "item")
        .expect("item group");
    assert_eq!(item.count, 2);
    assert_eq!(item.cause, "message … is # MB, over the limit");
    assert!(
        groups
            .iter()
            .any(|g| g.kind == "mailbox: connection" && g.cause.contains("authentication failed"))
    );
}

#[test]
fn strings_from_reports_are_escaped() {
    let html = render::page(&page());
    assert!(
        !html.contains("<script>"),
        "a folder or endpoint name became markup"
    );
    assert!(html.contains("mbox:&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_eq!(
        render::esc("a\"b'<&>\u{1}"),
        "a&quot;b&#39;&lt;&amp;&gt;\u{fffd}"
    );
}

#[test]
fn page_shows_totals_throttling_and_reasons_without_external_resources() {
    let html = render::page(&page());
    assert!(html.contains(r#"id="total-copied">130<"#));
    assert!(html.contains(r#"id="total-mailboxes-failed">2<"#));
    assert!(html.contains("authentication failed"));
    assert!(html.contains("gmail") && html.contains("backoff_secs") && html.contains("12.5"));
    assert!(html.contains("<svg"));
    for external in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(external), "found {external}");
    }
}

#[test]
fn timeline_spreads_each_folder_over_its_time() {
    let (start, step, rates) = model::timeline(&page(), 3).expect("a timeline");
    assert_eq!(start, 1000.0);
    assert!((step - 1.0).abs() < 1e-9);
    // alice: 120 over [1000, 1002); the other: 10 over [1001, 1003).
    let expect = [60.0, 65.0, 5.0];
    for (r, e) in rates.iter().zip(expect) {
        assert!((r - e).abs() < 1e-6, "{rates:?}");
    }
}

#[test]
fn single_pair_reports_and_non_reports() {
    let single = Input::from_json("r.json".into(), &mailbox("mbox:a", "ok", 5, 0, 1.0))
        .expect("a copy report");
    assert_eq!((single.kind.as_str(), single.mailboxes.len()), ("copy", 1));
    let err = Input::from_json("x.json".into(), &json!({"hello": 1})).expect_err("not a report");
    assert!(err.contains("not a mailferry report"));
    // A report of an older version (no started_unix) still renders, without a timeline.
    let mut old = mailbox("mbox:a", "ok", 5, 0, 1.0);
    old["copy"]["folders"][0]
        .as_object_mut()
        .expect("folder")
        .remove("started_unix");
    let p = Page {
        inputs: vec![Input::from_json("old.json".into(), &old).expect("old report")],
        unreadable: Vec::new(),
    };
    assert!(model::timeline(&p, 10).is_none());
    assert!(render::page(&p).contains("predate per-folder start times"));
}

#[test]
fn manifests_and_manifest_verifications_are_shown() {
    let mut copied = mailbox("mbox:a", "ok", 5, 0, 1.0);
    copied["manifest"] = json!({"path": "/audit/a.jsonl.gz", "entries": 5, "total_entries": 5,
                                "blake3": "ab".repeat(32)});
    let checked = json!({
        "command": "verify", "target": "maildir:/out/a", "outcome": "differ", "exit_code": 1,
        "error": null,
        "manifest_check": {"manifest": "/audit/a.jsonl.gz", "blake3": "cd", "runs": 1,
            "entries": 5, "folders": 1, "torn": false,
            "differences": [{"folder": ["INBOX"], "target_key": "17.M1", "source": "INBOX 3",
                             "detail": "not in the target"}]}
    });
    let p = Page {
        inputs: vec![
            Input::from_json("copy.json".into(), &copied).expect("copy"),
            Input::from_json("verify.json".into(), &checked).expect("verify"),
        ],
        unreadable: Vec::new(),
    };
    let html = render::page(&p);
    assert!(html.contains("audit manifest <code>/audit/a.jsonl.gz</code>: 5 messages"));
    assert!(html.contains(&"ab".repeat(32)));
    assert!(html.contains("verify --manifest: 1 difference, e.g. INBOX 17.M1: not in the target"));
    let groups = model::group(&model::incidents(&p));
    assert_eq!(groups[0].kind, "verify: manifest");
}
