//! Crash tests with the real command: `mailferry copy` is SIGKILLed at random moments (seeded,
//! printed; `MAILFERRY_CRASH_SEED` replays a run) while it copies 2,000 generated messages, and
//! resumed each time; a final run then completes. What the target holds must equal the source
//! exactly — per folder, the multiset of (canonical checksum, flags, date) — and
//! `mailferry verify --read-back` must agree.
//!
//! Kills are triggered by progress (bytes that reached the target), so that each killed run
//! writes something but not everything whatever the machine's speed. A kill only counts when
//! the target grew and is not complete. Should a run finish before its kill (a slow start, a
//! loaded machine, a store that writes in few large batches), that kill sequence is checked for
//! equality on the spot, and the test starts over with an empty target and smaller steps; the
//! kills it landed still count. Every kill sequence is checked, the last one by a final run.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailferry_core::{FolderPath, MemoryStore, Source, Target};
use mailferry_maildir::{Maildir, MaildirOptions};
use mailferry_mbox::Mbox;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};

use crate::support::{
    Rng, count, describe_difference, files_under, maildir_message_files, mailferry, mailferry_bin,
    mbox_separators, multisets, snapshot,
};

/// The folders the generated messages are spread over (a non-ASCII one included).
fn folders() -> Vec<FolderPath> {
    vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2020"]),
        FolderPath::new(["Ünïcødé", "Sub folder"]),
        FolderPath::new(["Sent"]),
    ]
}

fn generated(count: usize, sizes: SizeMix) -> MemoryStore {
    let spec = CorpusSpec::new(count, sizes)
        .with_quirks()
        .in_folders(folders());
    let store = MemoryStore::new();
    for m in spec.generate() {
        store.insert(&m.folder, m.body, m.flags, Some(m.internal_date));
    }
    store
}

/// Which store the command writes to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Maildir,
    Mbox,
}

impl Kind {
    fn url(self, path: &Path) -> String {
        match self {
            Kind::Maildir => format!("maildir:{}", path.display()),
            Kind::Mbox => format!("mbox:{}", path.display()),
        }
    }

    fn open(self, path: &Path) -> Arc<dyn Source> {
        match self {
            Kind::Maildir => {
                Arc::new(Maildir::open(path, MaildirOptions::default()).expect("open"))
            }
            Kind::Mbox => Arc::new(Mbox::open(path).expect("open")),
        }
    }

    /// Messages in the store, counted from its files without the library.
    fn stored(self, path: &Path) -> usize {
        match self {
            Kind::Maildir => maildir_message_files(path),
            Kind::Mbox => mbox_separators(path),
        }
    }
}

/// A source store of `kind` at `path`, filled with the generated messages via the library.
fn make_source(
    rt: &tokio::runtime::Runtime,
    kind: Kind,
    path: &Path,
    messages: MemoryStore,
) -> usize {
    let target: Arc<dyn Target> = match kind {
        Kind::Maildir => {
            Arc::new(Maildir::create(path, MaildirOptions::default()).expect("create"))
        }
        Kind::Mbox => Arc::new(Mbox::open(path).expect("open")),
    };
    let count: usize = messages
        .folder_paths()
        .iter()
        .map(|f| messages.messages(f).len())
        .sum();
    let report = rt.block_on(crate::support::copy(Arc::new(messages), target));
    assert_eq!(report.totals.copied as usize, count, "{:?}", report.totals);
    count
}

struct Scenario {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    source: PathBuf,
    source_kind: Kind,
    target_kind: Kind,
    total: usize,
}

impl Scenario {
    fn new(source_kind: Kind, target_kind: Kind, messages: MemoryStore) -> Self {
        // Built before anything is timed.
        mailferry_bin();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("source");
        let total = make_source(&rt, source_kind, &source, messages);
        Scenario {
            rt,
            dir,
            source,
            source_kind,
            target_kind,
            total,
        }
    }

    fn paths(&self, round: usize) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join(format!("target-{round}")),
            self.dir.path().join(format!("state-{round}.sqlite")),
        )
    }

    fn copy_command(&self, target: &Path, state: &Path) -> std::process::Command {
        let mut cmd = mailferry();
        cmd.arg("-q")
            .arg("copy")
            .arg(self.source_kind.url(&self.source))
            .arg(self.target_kind.url(target))
            .arg("--state")
            .arg(state)
            .args(["--jobs", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    fn spawn(&self, target: &Path, state: &Path) -> Child {
        self.copy_command(target, state)
            .spawn()
            .expect("spawn mailferry copy")
    }

    /// Runs a copy to the end; returns its exit code and stderr.
    fn run_to_end(&self, target: &Path, state: &Path) -> (Option<i32>, String) {
        let out = self
            .copy_command(target, state)
            .output()
            .expect("run mailferry copy");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The target equals the source, message for message, and `verify --read-back` agrees.
    fn assert_equal(&self, target: &Path, state: &Path) {
        let want = self
            .rt
            .block_on(snapshot(&*self.source_kind.open(&self.source)));
        let got = self.rt.block_on(snapshot(&*self.target_kind.open(target)));
        assert_eq!(count(&want), self.total);
        let (want, got) = (multisets(&want), multisets(&got));
        assert!(
            want == got,
            "the target differs from the source:\n{}",
            describe_difference(&want, &got)
        );
        let verify = mailferry()
            .arg("verify")
            .arg(self.source_kind.url(&self.source))
            .arg(self.target_kind.url(target))
            .arg("--state")
            .arg(state)
            .arg("--read-back")
            .output()
            .expect("run mailferry verify");
        assert_eq!(
            verify.status.code(),
            Some(0),
            "verify --read-back: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}

fn seed() -> u64 {
    std::env::var("MAILFERRY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Bytes of all files under `dir` (messages, plus small bookkeeping files).
fn stored_bytes(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Kills `mailferry copy` at random moments until `wanted` kills landed mid-copy, resuming
/// each time, then completes the copy and checks the target against the source.
///
/// A moment is drawn in two seeded steps: a random share of the source's bytes that must have
/// reached the target since the run started, then a random 0–25 ms more, so kills land in
/// message writes, fsyncs, renames and state commits alike. Triggering on progress instead of
/// on a fixed delay keeps the kills mid-copy on a fast machine and on a loaded one.
// Every child is reaped: `try_wait` returning a status reaps it, and the other path waits.
#[allow(clippy::zombie_processes)]
fn kill_and_resume(s: &Scenario, wanted: usize) -> usize {
    let started = Instant::now();
    let seed = seed();
    println!(
        "crash test {:?} -> {:?}: seed {seed} (MAILFERRY_CRASH_SEED={seed} replays it)",
        s.source_kind, s.target_kind
    );
    let mut rng = Rng::new(seed);
    let source_bytes = stored_bytes(&s.source);
    // Each killed run should copy about 1/(wanted + 4) of the source, so that `wanted` kills
    // fit before the copy completes.
    let mut share = source_bytes / (wanted as u64 + 4);
    let mut round = 1;
    let (mut target, mut state) = s.paths(round);
    // `kills`: mid-copy kills in all rounds; `in_round`: those of the round under way.
    let (mut kills, mut in_round, mut early, mut idle_kills, mut attempts, mut total_kills) =
        (0, 0, 0, 0, 0, 0);
    let mut torn = 0;
    while kills < wanted {
        attempts += 1;
        assert!(
            attempts <= wanted * 6,
            "could not land {wanted} kills mid-copy in {attempts} attempts (seed {seed})"
        );
        let before = s.target_kind.stored(&target);
        let bytes_before = stored_bytes(&target);
        let threshold = bytes_before + rng.between(share / 3, share * 5 / 3);
        let extra = Duration::from_millis(rng.between(0, 25));
        let run_started = Instant::now();
        let mut child = s.spawn(&target, &state);
        let mut finished = None;
        while finished.is_none() && stored_bytes(&target) < threshold {
            finished = child.try_wait().expect("poll child");
            std::thread::sleep(Duration::from_millis(1));
        }
        if finished.is_none() {
            std::thread::sleep(extra);
            finished = child.try_wait().expect("poll child");
        }
        let at = run_started.elapsed();
        if finished.is_none() {
            // The run may still end on its own between the last poll and the signal: then it
            // exits normally and counts as finished before its kill.
            let _ = child.kill();
            let status = child.wait().expect("reap child");
            if status.code().is_some() {
                finished = Some(status);
            }
        }
        if let Some(status) = finished {
            // Finished before the kill: check this sequence now, then start over, faster.
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            assert_eq!(status.code(), Some(0), "run before a kill failed: {err}");
            s.assert_equal(&target, &state);
            early += 1;
            println!(
                "round {round}: the copy finished before its kill, after {in_round} kills (checked); starting over with smaller steps"
            );
            share /= 2;
            round += 1;
            (target, state) = s.paths(round);
            in_round = 0;
            continue;
        }
        total_kills += 1;
        let after = s.target_kind.stored(&target);
        // A dead mbox writer's journal: this kill tore a batch.
        let journals = files_under(&target)
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".mailferry-append"))
            .count();
        torn += journals;
        if after > before && after < s.total {
            kills += 1;
            in_round += 1;
        } else {
            idle_kills += 1;
        }
        println!(
            "kill {total_kills} after {at:?}: {before} -> {after} of {} messages stored",
            s.total
        );
    }
    let t = Instant::now();
    let (code, stderr) = s.run_to_end(&target, &state);
    assert_eq!(code, Some(0), "final run: {stderr}");
    let last = t.elapsed();
    s.assert_equal(&target, &state);
    println!(
        "{:?} -> {:?}: {total_kills} SIGKILLs ({kills} mid-copy, {in_round} in the last round, {idle_kills} without progress, {early} rounds finished early, {torn} tore an mbox batch); final run {last:?}; {:.1} s in all",
        s.source_kind,
        s.target_kind,
        started.elapsed().as_secs_f64()
    );
    torn
}

#[test]
fn maildir_target_survives_kill_9_without_loss_or_duplicates() {
    let scenario = Scenario::new(Kind::Mbox, Kind::Maildir, generated(2000, SizeMix::small()));
    kill_and_resume(&scenario, 10);
}

#[test]
fn mbox_target_survives_kill_9_without_loss_or_duplicates() {
    let scenario = Scenario::new(Kind::Maildir, Kind::Mbox, generated(2000, SizeMix::small()));
    kill_and_resume(&scenario, 4);
}

/// Messages of a few MB are written with one `write` call each, which a SIGKILL cuts short:
/// kills land inside a batch and leave it torn, which the next run must take back.
#[test]
fn mbox_target_survives_kill_9_inside_large_message_writes() {
    let sizes = SizeMix {
        attachment_fraction: 0.25,
        attachment: (2_000_000, 4_000_000),
        ..SizeMix::small()
    };
    let scenario = Scenario::new(Kind::Maildir, Kind::Mbox, generated(60, sizes));
    let torn = kill_and_resume(&scenario, 4);
    println!("{torn} kills tore an mbox batch");
}
