//! The HTML report in a real browser: a 20-mailbox `mailferry plan` (19 generated Maildir
//! sources, one mailbox whose source does not exist) is rendered with `mailferry report --html`,
//! loaded in Debian's headless Chromium, and the figures are looked for in the DOM the browser
//! built: the totals, a mailbox name, the failed mailbox's reason, and a folder name full of
//! HTML metacharacters shown as text (not parsed as markup); the plan writes an audit manifest
//! per mailbox (`--manifest-dir`), each listed with its digest. A screenshot is taken too; with
//! `MAILFERRY_SCREENSHOT_OUT=PATH` it is kept there (that is how the README's picture is made).
//!
//! Design decisions, and why:
//! - **The browser's DOM, not the HTML file**, is what is checked: it proves the page parses as
//!   intended (an unescaped `<` in a folder name would turn into an element and vanish from the
//!   text), and that nothing on it needs the network (Chromium runs with networking components
//!   off, and the page's Content-Security-Policy forbids every fetch).
//! - **Local stores** (Maildir sources written by the library from a generated corpus): the
//!   report's rendering is under test, not IMAP, and the 20-mailbox plan runs in seconds.
//! - **Chromium missing**: with `CI=true` the test fails with the install command; elsewhere it
//!   prints a note and returns, as the Dovecot tests do.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mailferry::maildir::{Layout, Maildir, MaildirOptions};
use mailferry_core::{FolderPath, MemoryState, MemoryStore};
use mailferry_testkit::conformance::copy_all;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use serde_json::Value;

const MAILBOXES: usize = 20;
/// Loading a small local page takes about a second; this much means the browser hangs.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);
/// A folder name a server could send: every HTML metacharacter, and non-ASCII.
const TRICKY_FOLDER: &str = "R&D <Été> \"2024\"";

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn require_chromium() -> Option<PathBuf> {
    if let Some(c) = chromium() {
        return Some(c);
    }
    let msg = "chromium not found: run scripts/install-test-deps.sh (Debian package chromium)";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("note: skipping the browser test: {msg}");
    None
}

/// Writes user `n`'s generated mail (its own seed and size) as a Maildir at `dir`.
fn write_source(dir: &Path, n: usize) -> u64 {
    let mut spec = CorpusSpec::new(20 + n * 7, SizeMix::small()).in_folders(vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2024"]),
        FolderPath::new([TRICKY_FOLDER]),
    ]);
    spec.seed = n as u64;
    let memory = MemoryStore::new();
    let messages = spec.messages();
    for m in &messages {
        memory.insert(
            &m.folder,
            m.body.clone(),
            m.flags.clone(),
            Some(m.internal_date),
        );
    }
    let options = MaildirOptions {
        layout: Some(Layout::Fs),
        ..MaildirOptions::default()
    };
    let target = Maildir::create(dir, options).expect("create a source Maildir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let report = runtime.block_on(copy_all(
        Arc::new(memory),
        Arc::new(target),
        Arc::new(MemoryState::new()),
    ));
    assert_eq!(report.totals.copied, messages.len() as u64);
    messages.len() as u64
}

fn mailferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(args)
        .output()
        .expect("run mailferry")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Text as Chromium serialises it in element content.
fn dom_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\u{a0}', "&nbsp;")
}

/// Runs headless Chromium on `page`; a browser that has not finished within
/// [`BROWSER_TIMEOUT`] is killed and fails the test, rather than hanging it.
fn browser(chromium: &Path, profile: &Path, extra: &[String], page: &Path) -> Output {
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            // Containers often have a small /dev/shm; the page is small, /tmp is enough.
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chromium");
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = done_tx.send(());
        out
    });
    if done_rx.recv_timeout(BROWSER_TIMEOUT).is_err() {
        // By pid: the waiting thread owns the `Child`. Its wait has not returned, so the
        // process has not been reaped and the pid is still its own.
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("chromium did not finish within {BROWSER_TIMEOUT:?}");
    }
    waiter
        .join()
        .expect("the waiting thread")
        .expect("chromium's output")
}

/// The text of the element with this id, as serialised in the DOM.
fn element_text<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let start = dom.find(&format!("id=\"{id}\">"))? + id.len() + 6;
    let end = dom[start..].find('<')?;
    Some(&dom[start..start + end])
}

#[test]
fn a_twenty_mailbox_plan_report_renders_its_figures_in_a_real_browser() {
    let Some(chromium) = require_chromium() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut plan = String::from("source,target\n");
    let mut generated = 0;
    for n in 1..MAILBOXES {
        let src = root.join("src").join(format!("user{n:02}"));
        generated += write_source(&src, n);
        plan.push_str(&format!(
            "maildir:{},maildir:{}\n",
            src.display(),
            root.join("dst").join(format!("user{n:02}")).display()
        ));
    }
    // The twentieth mailbox's export is missing: the plan reports it and goes on.
    let gone = root.join("src").join("user20-export-missing.mbox");
    plan.push_str(&format!(
        "mbox:{},maildir:{}\n",
        gone.display(),
        root.join("dst/user20").display()
    ));
    let plan_path = root.join("plan.csv");
    std::fs::write(&plan_path, plan).expect("write the plan");
    let report_path = root.join("plan-report.json");
    let out = mailferry(&[
        "plan",
        &plan_path.display().to_string(),
        "--jobs",
        "4",
        "--state-dir",
        &root.join("state").display().to_string(),
        "--report",
        &report_path.display().to_string(),
        "--manifest-dir",
        &root.join("manifests").display().to_string(),
        "-q",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one mailbox fails: {}",
        text(&out)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report_path).expect("report")).expect("JSON");
    let mailboxes = report["mailboxes"].as_array().expect("mailboxes");
    assert_eq!(mailboxes.len(), MAILBOXES);
    assert_eq!(report["totals"]["copied"], generated);
    let failed: Vec<&Value> = mailboxes
        .iter()
        .filter(|m| m["outcome"] == "error")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let reason = failed[0]["error"].as_str().expect("a reason").to_string();
    // Each mailbox that ran has its audit manifest, one line per copied message.
    for m in mailboxes.iter().filter(|m| m["outcome"] == "ok") {
        assert_eq!(
            m["manifest"]["entries"], m["copy"]["totals"]["copied"],
            "{m}"
        );
        let path = m["manifest"]["path"].as_str().expect("a manifest path");
        assert!(
            Path::new(path).starts_with(root.join("manifests")),
            "{path}"
        );
        let digest = blake3::hash(&std::fs::read(path).expect("the manifest"));
        assert_eq!(m["manifest"]["blake3"], digest.to_hex().as_str());
    }
    assert!(reason.contains("user20-export-missing.mbox"), "{reason}");

    let html_path = root.join("report.html");
    let out = mailferry(&[
        "report",
        &report_path.display().to_string(),
        "--html",
        &html_path.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let profile = root.join("chromium-profile");
    let out = browser(&chromium, &profile, &["--dump-dom".to_string()], &html_path);
    assert!(out.status.success(), "chromium: {}", text(&out));
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let total = |id: &str| element_text(&dom, id).map(|t| t.replace(',', ""));
    assert_eq!(total("total-copied"), Some(generated.to_string()), "{dom}");
    assert_eq!(total("total-mailboxes").as_deref(), Some("20"));
    assert_eq!(total("total-mailboxes-failed").as_deref(), Some("1"));
    assert_eq!(total("total-failed").as_deref(), Some("0"));
    assert!(dom.contains("user07"), "a mailbox name is on the page");
    assert!(
        dom.contains(&dom_text(&reason)),
        "the failed mailbox's reason {reason:?} is on the page"
    );
    assert!(
        dom.contains(&dom_text(TRICKY_FOLDER)),
        "the folder name {TRICKY_FOLDER:?} is shown as text"
    );
    assert!(!dom.contains("<script"), "no script on the page");
    assert_eq!(
        dom.matches("audit manifest").count(),
        MAILBOXES - 1,
        "each mailbox that ran shows its manifest"
    );
    // Both charts are there: one bar per mailbox, and the throughput area.
    assert_eq!(dom.matches("class=\"bar ").count(), MAILBOXES);
    assert!(dom.contains("aria-label=\"throughput over time\""));

    let shot = root.join("report.png");
    let out = browser(
        &chromium,
        &profile,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1100,1700".to_string(),
            "--hide-scrollbars".to_string(),
        ],
        &html_path,
    );
    assert!(out.status.success(), "chromium: {}", text(&out));
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    if let Some(keep) = std::env::var_os("MAILFERRY_SCREENSHOT_OUT") {
        std::fs::copy(&shot, &keep).expect("keep the screenshot");
        std::fs::copy(&html_path, Path::new(&keep).with_extension("html")).expect("keep");
    }
}
