//! A dead run's append committed late, made certain instead of waited for: `mailferry copy`
//! between two real Dovecots is SIGKILLed while the target's `imap` process serving its session
//! is frozen (SIGSTOP) holding a whole MULTIAPPEND in its socket; the next run resolves its
//! pending items and finishes; only then is the frozen process let go (SIGCONT), and it commits
//! the dead run's batch — a second copy of messages the state already records as done. However
//! long the pause, the copy must end exact: a later run (even one with nothing new to copy)
//! removes the surplus copies, never a message the source holds, and never collapses the
//! source's own byte-identical duplicates.
//!
//! Design decisions, and why:
//! - **Every step waits on a condition, never on the clock**: the first batch is answered (the
//!   client logged `MULTIAPPEND answered`: freezing a session before its commit released
//!   Dovecot's locks would block every later session), the second batch is in the frozen server's socket
//!   (the client logged `MULTIAPPEND sent` at debug level, after its flush), the killed client
//!   is reaped, the resumed run exited, the frozen process is gone after SIGCONT (Dovecot's
//!   `service_count = 1`: one process per session, ending with it). Deadlines only turn a hang
//!   into a failure with a message.
//! - **The window to freeze the server is made by pacing, not found by luck**: 150 messages go
//!   in batches of 128 and 22; at `--max-msgs-per-sec 10` the second batch waits 12.8 s in the
//!   rate layer after the first was sent, and the session sits idle meanwhile.
//!   `--connections 1` keeps it on the one session that is frozen (a fresh session would be
//!   served by a fresh, running process).
//! - The late commit is asserted to have landed (the Maildir holds 150 + 22 files after
//!   SIGCONT): the test proves what it claims only if the scenario really happened.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailferry::imap::{Auth, ImapConfig, ImapStore, Secret, Security};
use mailferry_core::{FolderPath, MemoryState, MemoryStore};
use mailferry_testkit::conformance::copy_all;
use mailferry_testkit::contents::{Contents, contents_of};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::process::{is_alive, send_signal};
use mailferry_testkit::{Dovecot, DovecotOptions, require_dovecot};

const SOURCE_PASSWORD: &str = "source-late-pw";
const TARGET_PASSWORD: &str = "target-late-pw";
const MESSAGES: u64 = 150;
/// The copier's batch size for a folder this small (`CopyOptions::batch_items`).
const FIRST_BATCH: u64 = 128;
/// What the debug log says once a MULTIAPPEND is wholly written to the socket.
const SENT: &str = "MULTIAPPEND sent";
/// What it says once the server answered one (its commit is over, its locks released).
const ANSWERED: &str = "MULTIAPPEND answered";
/// Longer than any step takes; reaching it is a hang, reported as such.
const HANG: Duration = Duration::from_secs(120);

fn server(delimiter: char, password: &str) -> Dovecot {
    Dovecot::start(DovecotOptions {
        delimiter,
        users: vec![("alice".into(), password.into())],
        extra_config: String::new(),
    })
    .expect("start Dovecot")
}

fn url(d: &Dovecot) -> String {
    format!("imap://alice@{}:{}", d.host(), d.imap_port())
}

/// Waits until `done` holds; panics naming `what` after [`HANG`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !done() {
        assert!(Instant::now() < deadline, "waited {HANG:?} for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Messages in the target's INBOX Maildir (committed ones: `cur/` and `new/`).
fn files_in(maildir: &Path) -> u64 {
    ["cur", "new"]
        .iter()
        .filter_map(|d| std::fs::read_dir(maildir.join(d)).ok())
        .map(|d| d.count() as u64)
        .sum()
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

struct Pair<'a> {
    source: &'a Dovecot,
    target: &'a Dovecot,
    dir: &'a Path,
    ca: PathBuf,
}

impl Pair<'_> {
    fn command(&self, subcommand: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailferry"));
        cmd.arg(subcommand)
            .arg(url(self.source))
            .arg(url(self.target))
            .arg("--ca-file")
            .arg(&self.ca)
            .arg("--state")
            .arg(self.dir.join("state.sqlite"))
            .args(["--connections", "1"])
            .args(extra)
            .env("MAILFERRY_SOURCE_PASSWORD", SOURCE_PASSWORD)
            .env("MAILFERRY_TARGET_PASSWORD", TARGET_PASSWORD)
            .env("XDG_DATA_HOME", self.dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    fn spawn(&self, subcommand: &str, log: &Path, extra: &[&str]) -> Child {
        let out = File::create(log).expect("create the run's log");
        self.command(subcommand, extra)
            .stdout(out.try_clone().expect("clone log handle"))
            .stderr(out)
            .spawn()
            .expect("spawn mailferry")
    }

    /// Runs to the end; returns the exit status and the log.
    fn run(&self, subcommand: &str, name: &str, extra: &[&str]) -> (ExitStatus, String) {
        let log = self.dir.join(format!("{name}.log"));
        let mut child = self.spawn(subcommand, &log, extra);
        let deadline = Instant::now() + HANG;
        loop {
            if let Some(status) = child.try_wait().expect("poll mailferry") {
                return (status, log_text(&log));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mailferry {subcommand} ({name}) hung for {HANG:?}:\n{}",
                    log_text(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

async fn read_back(d: &Dovecot, password: &str) -> Contents {
    let config = ImapConfig::new(
        d.host(),
        d.imap_port(),
        Security::StartTls,
        Auth::Login {
            user: "alice".into(),
            password: Secret::new(password),
        },
    )
    .with_ca_file(d.ca_pem_path());
    let store = Arc::new(ImapStore::connect(config).await.expect("connect"));
    let copy = MemoryStore::new();
    let report = copy_all(store, Arc::new(copy.clone()), Arc::new(MemoryState::new())).await;
    assert_eq!(report.totals.failed, 0, "read-back failed: {report:#?}");
    contents_of(&copy)
}

#[test]
fn an_append_committed_after_the_next_run_resolved_it_ends_exact() {
    if !require_dovecot() {
        return;
    }
    let messages = CorpusSpec::new(MESSAGES as usize, SizeMix::small())
        .with_quirks()
        .in_folders(vec![FolderPath::inbox()])
        .messages();
    let duplicates = messages
        .iter()
        .enumerate()
        .filter(|(i, m)| messages[..*i].iter().any(|o| o.body == m.body))
        .count();
    assert!(
        duplicates >= 1,
        "the corpus must hold byte-identical duplicates"
    );
    let source = server('/', SOURCE_PASSWORD);
    source.fill("alice", messages).expect("fill the source");
    let target = server('.', TARGET_PASSWORD);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pem = std::fs::read_to_string(source.ca_pem_path()).expect("read CA");
    pem.push_str(&std::fs::read_to_string(target.ca_pem_path()).expect("read CA"));
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).expect("write CA bundle");
    let pair = Pair {
        source: &source,
        target: &target,
        dir: dir.path(),
        ca,
    };
    let maildir = target.maildir("alice");

    // Run 1: the first batch commits; the session is frozen while the paced second batch
    // waits; the second batch is written into the frozen server's socket; then kill -9.
    let log1 = dir.path().join("run-1.log");
    let mut run1 = pair.spawn("copy", &log1, &["-vv", "--max-msgs-per-sec", "10"]);
    // Answered, not just visible in the Maildir: a session frozen before its commit has
    // released Dovecot's index and uidlist locks would block every later session.
    wait_until("the first batch to be answered", || {
        log_text(&log1).contains(ANSWERED)
    });
    assert_eq!(
        files_in(&maildir),
        FIRST_BATCH,
        "the first batch is committed"
    );
    assert_eq!(
        log_text(&log1).matches(SENT).count(),
        1,
        "the second batch left before the session could be frozen:\n{}",
        log_text(&log1)
    );
    let frozen = target.imap_pids();
    // One session with --connections 1 (an earlier one may still be exiting: frozen too,
    // harmlessly, and let go with the rest).
    assert!(!frozen.is_empty(), "the target session's imap process");
    for pid in &frozen {
        assert!(send_signal(*pid, "STOP"), "SIGSTOP imap process {pid}");
    }
    wait_until(
        "the second batch to be written to the frozen session",
        || log_text(&log1).matches(SENT).count() == 2,
    );
    run1.kill().expect("SIGKILL mailferry");
    run1.wait().expect("reap mailferry");
    assert_eq!(
        files_in(&maildir),
        FIRST_BATCH,
        "the frozen batch is not committed"
    );

    // Run 2 resolves the 22 pending items: not in the target (their commit is frozen), so
    // they are appended again.
    let (status, log) = pair.run("copy", "run-2", &["-v"]);
    assert!(status.success(), "run 2 failed ({status}):\n{log}");
    assert_eq!(files_in(&maildir), MESSAGES, "run 2 completed the copy");

    // The frozen session goes on and commits the dead run's batch: a late second copy.
    for pid in &frozen {
        send_signal(*pid, "CONT");
    }
    wait_until("the frozen imap process to end", || {
        frozen.iter().all(|pid| !is_alive(*pid))
    });
    let late = files_in(&maildir) - MESSAGES;
    assert_eq!(
        late,
        MESSAGES - FIRST_BATCH,
        "the frozen batch was committed late (the scenario this test is about)"
    );

    // Nothing new in the source: run 3 must still notice and remove the surplus copies.
    let report = dir.path().join("run-3.json");
    let report_arg = report.display().to_string();
    let (status, log) = pair.run("copy", "run-3", &["-v", "--report", &report_arg]);
    assert_eq!(status.code(), Some(0), "run 3 failed:\n{log}");
    assert_eq!(
        files_in(&maildir),
        MESSAGES,
        "the late copies are still in the target after run 3:\n{log}"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let want = rt.block_on(read_back(&source, SOURCE_PASSWORD));
    let got = rt.block_on(read_back(&target, TARGET_PASSWORD));
    assert_eq!(want, got, "the target holds exactly what the source holds");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("read the report"))
            .expect("the report is JSON");
    assert_eq!(json["outcome"], "ok", "{json}");
    let removed: u64 = json["copy"]["folders"]
        .as_array()
        .expect("per-folder reports")
        .iter()
        .filter_map(|f| f["surplus_removed"].as_u64())
        .sum();
    assert_eq!(
        removed, late,
        "the report counts the removed copies: {json}"
    );

    let (status, log) = pair.run("verify", "verify", &["--read-back"]);
    assert_eq!(status.code(), Some(0), "verify --read-back:\n{log}");
    assert_eq!(
        target.log_errors(),
        Vec::<String>::new(),
        "the target logged errors"
    );
}
