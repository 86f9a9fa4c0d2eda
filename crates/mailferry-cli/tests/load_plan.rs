//! Load test of `mailferry plan` with the real command: 20 mailboxes (20 users on one source
//! Dovecot with `'/'`, 20 on one target Dovecot with `'.'`, 100–200 generated messages with
//! quirks each) run with `--jobs 8`. The plan must finish (a hang of more than five minutes is
//! killed and fails the test: no deadlock), exit 0, report 20 mailboxes all "ok", leave every
//! target mailbox equal to its source (read back per user and compared per folder as multisets
//! of canonical checksum, flags and internal date), and copy nothing when run again. The
//! process's peak resident memory is measured and bounded.
//!
//! Design decisions, and why:
//! - **Peak memory is read from `/proc/<pid>/status` (`VmHWM`)** while the command runs, rather
//!   than through `/usr/bin/time`, so the test needs no extra tool and the pid it watches is the
//!   one it can kill on a hang. `VmHWM` is a high-water mark, so polling misses at most what the
//!   process allocates in its last few milliseconds (writing the report).
//! - **Half the mailboxes take their passwords from files, half from per-mailbox environment
//!   variables**, the two ways a plan names secrets without putting them in the plan.
//! - **Users get different corpora** (seed = user number, 100–200 messages), so a mix-up
//!   between mailboxes (a state file or session shared by two jobs) shows as a difference.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailferry::imap::{Auth, ImapConfig, ImapStore, Secret, Security};
use mailferry_core::futures_util::{StreamExt, stream};
use mailferry_core::{FolderPath, MemoryState, MemoryStore};
use mailferry_testkit::conformance::copy_all;
use mailferry_testkit::contents::{Contents, contents_of};
use mailferry_testkit::corpus::{CorpusSpec, GeneratedMessage, SizeMix};
use mailferry_testkit::{Dovecot, DovecotOptions, require_dovecot};
use serde_json::Value;

const MAILBOXES: usize = 20;
const JOBS: usize = 8;
/// A plan that runs longer than this is taken to hang.
const PLAN_TIMEOUT: Duration = Duration::from_secs(300);
/// Peak resident memory allowed for the whole plan.
const MAX_RSS_BYTES: u64 = 400 << 20;

fn user(n: usize) -> String {
    format!("user{n:02}")
}

fn password(side: &str, n: usize) -> String {
    format!("{side}-load-pw-{n:02}")
}

fn server(delimiter: char, side: &str) -> Dovecot {
    Dovecot::start(DovecotOptions {
        delimiter,
        users: (1..=MAILBOXES)
            .map(|n| (user(n), password(side, n)))
            .collect(),
        extra_config: String::new(),
    })
    .expect("start Dovecot")
}

/// User `n`'s mail: its own seed and size, quirks included.
fn corpus(n: usize) -> Vec<GeneratedMessage> {
    let mut spec = CorpusSpec::new(100 + (n * 37) % 101, SizeMix::small())
        .with_quirks()
        .in_folders(vec![
            FolderPath::inbox(),
            FolderPath::new(["Archive", "2024"]),
            FolderPath::new(["Ünïcødé"]),
        ]);
    spec.seed = n as u64;
    spec.messages()
}

fn expected(messages: &[GeneratedMessage]) -> Contents {
    let store = MemoryStore::new();
    for m in messages {
        store.insert(
            &m.folder,
            m.body.clone(),
            m.flags.clone(),
            Some(m.internal_date),
        );
    }
    contents_of(&store)
}

/// Everything user `n` holds on `d`, read back over IMAP (STARTTLS) into memory.
async fn read_back(d: &Dovecot, side: &str, n: usize) -> Contents {
    let config = ImapConfig::new(
        d.host(),
        d.imap_port(),
        Security::StartTls,
        Auth::Login {
            user: user(n),
            password: Secret::new(password(side, n)),
        },
    )
    .with_ca_file(d.ca_pem_path());
    let store = Arc::new(ImapStore::connect(config).await.expect("connect"));
    let copy = MemoryStore::new();
    let report = copy_all(store, Arc::new(copy.clone()), Arc::new(MemoryState::new())).await;
    assert_eq!(
        report.totals.failed,
        0,
        "reading back {} on the {side}: {report:#?}",
        user(n)
    );
    contents_of(&copy)
}

/// Both instances' CAs in one PEM bundle, as `--ca-file` takes.
fn ca_bundle(dir: &Path, servers: &[&Dovecot]) -> PathBuf {
    let mut pem = String::new();
    for s in servers {
        pem.push_str(&std::fs::read_to_string(s.ca_pem_path()).expect("read CA"));
    }
    let path = dir.join("ca.pem");
    std::fs::write(&path, pem).expect("write CA bundle");
    path
}

/// The plan file, plus the environment variables its env-based mailboxes read.
fn write_plan(dir: &Path, source: &Dovecot, target: &Dovecot) -> (PathBuf, Vec<(String, String)>) {
    let secrets = dir.join("secrets");
    std::fs::create_dir(&secrets).expect("create the secrets dir");
    let mut toml = String::new();
    let mut env = Vec::new();
    for n in 1..=MAILBOXES {
        let u = user(n);
        let _ = writeln!(
            toml,
            "[[mailbox]]\nsource = \"imap://{u}@{}:{}\"\ntarget = \"imap://{u}@{}:{}\"",
            source.host(),
            source.imap_port(),
            target.host(),
            target.imap_port()
        );
        if n <= MAILBOXES / 2 {
            for side in ["source", "target"] {
                std::fs::write(secrets.join(format!("{u}-{side}")), password(side, n))
                    .expect("write a password file");
                // Relative to the plan's directory, as the plan format documents.
                let _ = writeln!(toml, "{side}_password_file = \"secrets/{u}-{side}\"");
            }
        } else {
            for side in ["source", "target"] {
                let var = format!("LOAD_{}_PW_{n:02}", side.to_uppercase());
                let _ = writeln!(toml, "{side}_password_env = \"{var}\"");
                env.push((var, password(side, n)));
            }
        }
        toml.push('\n');
    }
    let path = dir.join("plan.toml");
    std::fs::write(&path, toml).expect("write the plan");
    (path, env)
}

/// `VmHWM` of a running process, in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One plan run: exit status, parsed report, peak RSS and duration.
struct PlanRun {
    status: ExitStatus,
    report: Value,
    peak_rss: u64,
    secs: f64,
    log: String,
}

fn run_plan(dir: &Path, plan: &Path, ca: &Path, env: &[(String, String)], name: &str) -> PlanRun {
    let report = dir.join(format!("{name}.json"));
    let log_path = dir.join(format!("{name}.log"));
    let log = File::create(&log_path).expect("create the plan's log");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .arg("plan")
        .arg(plan)
        .args(["--jobs", &JOBS.to_string()])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--report")
        .arg(&report)
        .arg("--ca-file")
        .arg(ca)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("MAILFERRY_SOURCE_PASSWORD")
        .env_remove("MAILFERRY_TARGET_PASSWORD")
        .env("XDG_DATA_HOME", dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .spawn()
        .expect("spawn mailferry plan");
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll mailferry plan") {
            break status;
        }
        peak = peak.max(peak_rss(child.id()).unwrap_or(0));
        if started.elapsed() > PLAN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`mailferry plan` still ran after {PLAN_TIMEOUT:?} (a deadlock?); it was \
                 killed. Output:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let secs = started.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let bytes =
        std::fs::read(&report).unwrap_or_else(|e| panic!("no plan report ({e}); output:\n{log}"));
    let report = serde_json::from_slice(&bytes).expect("the plan report is JSON");
    PlanRun {
        status,
        report,
        peak_rss: peak,
        secs,
        log,
    }
}

/// Every mailbox of the plan report is listed once and "ok"; returns the copied total.
fn assert_all_ok(run: &PlanRun, source: &Dovecot) -> u64 {
    assert_eq!(run.status.code(), Some(0), "{}", run.log);
    let mailboxes = run.report["mailboxes"].as_array().expect("mailboxes");
    assert_eq!(mailboxes.len(), MAILBOXES, "{}", run.report);
    for m in mailboxes {
        assert_eq!(m["outcome"], "ok", "{m}");
        assert_eq!(m["copy"]["totals"]["failed"], 0, "{m}");
    }
    let mut listed: Vec<&str> = mailboxes
        .iter()
        .filter_map(|m| m["source"].as_str())
        .collect();
    listed.sort_unstable();
    let want: Vec<String> = (1..=MAILBOXES)
        .map(|n| {
            format!(
                "imap://{}@{}:{}",
                user(n),
                source.host(),
                source.imap_port()
            )
        })
        .collect();
    assert_eq!(listed, want, "each mailbox reported once");
    assert_eq!(run.report["failed_mailboxes"], 0);
    run.report["totals"]["copied"]
        .as_u64()
        .expect("totals.copied")
}

#[test]
fn a_plan_of_twenty_mailboxes_completes_verified_bounded_and_idempotent() {
    if !require_dovecot() {
        return;
    }
    let started = Instant::now();
    let source = server('/', "source");
    let target = server('.', "target");
    let mut want = Vec::new();
    for n in 1..=MAILBOXES {
        let messages = corpus(n);
        want.push(expected(&messages));
        source.fill(&user(n), messages).expect("fill a source user");
    }
    let total: u64 = want
        .iter()
        .flat_map(|c| c.values())
        .map(|v| v.len() as u64)
        .sum();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_bundle(dir.path(), &[&source, &target]);
    let (plan, env) = write_plan(dir.path(), &source, &target);

    let first = run_plan(dir.path(), &plan, &ca, &env, "first");
    let copied = assert_all_ok(&first, &source);
    assert_eq!(copied, total, "{}", first.report["totals"]);
    let state_files = std::fs::read_dir(dir.path().join("state"))
        .expect("the state dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "sqlite"))
        .count();
    assert_eq!(state_files, MAILBOXES, "one state file per mailbox");
    eprintln!(
        "plan: {MAILBOXES} mailboxes, {total} messages, --jobs {JOBS}: {:.1} s ({:.0} msgs/s), \
         peak RSS {:.1} MB",
        first.secs,
        total as f64 / first.secs,
        first.peak_rss as f64 / 1e6
    );
    assert!(
        first.peak_rss > 0,
        "the peak RSS could not be read from /proc"
    );
    assert!(
        first.peak_rss < MAX_RSS_BYTES,
        "peak RSS {} bytes is over the {MAX_RSS_BYTES}-byte bound",
        first.peak_rss
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (source, target) = (&source, &target);
    let compared: Vec<(usize, Contents, Contents)> = rt.block_on(
        stream::iter(1..=MAILBOXES)
            .map(|n| async move {
                let s = read_back(source, "source", n).await;
                let t = read_back(target, "target", n).await;
                (n, s, t)
            })
            .buffer_unordered(4)
            .collect(),
    );
    assert_eq!(compared.len(), MAILBOXES);
    for (n, from_source, from_target) in compared {
        assert_eq!(
            from_source,
            want[n - 1],
            "{}: the source differs from its corpus",
            user(n)
        );
        for (path, messages) in &from_source {
            let theirs = from_target.get(path).map_or(0, Vec::len);
            assert_eq!(
                from_target.get(path),
                Some(messages),
                "{}: target folder {path} holds {theirs} messages, the source {} (or their \
                 checksums, flags or dates differ)",
                user(n),
                messages.len()
            );
        }
        assert_eq!(
            from_target.len(),
            from_source.len(),
            "{}: extra folders in the target",
            user(n)
        );
    }

    let again = run_plan(dir.path(), &plan, &ca, &env, "again");
    assert_eq!(
        assert_all_ok(&again, source),
        0,
        "a re-run copied again: {}",
        again.report["totals"]
    );
    eprintln!(
        "re-run: {:.1} s, peak RSS {:.1} MB; whole test {:.1} s",
        again.secs,
        again.peak_rss as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(target.log_errors(), Vec::<String>::new());
}
