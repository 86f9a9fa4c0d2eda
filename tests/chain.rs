//! Copy chains through local backends (memory → mbox → Maildir → mbox → memory, …) with an
//! accounting check at every hop: each message either arrives with its bytes (wire form),
//! flags and date intact, or is reported failed with a reason. Per hop: the report's counts add
//! up (`seen = copied + failed`), every failure names a key the source listed, and what the
//! target holds equals what the source held minus the reported failures — so a silent drop, a
//! silent change or a duplicate fails the test.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use mailferry_core::{FolderPath, MemoryStore, Source, Target};
use mailferry_maildir::{Layout, Maildir, MaildirOptions};
use mailferry_mbox::Mbox;

use crate::support::{Msg, Snapshot, copy, count, describe_difference, multisets, snapshot};

/// A local store kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// In memory.
    Memory,
    /// A directory of mbox files.
    Mbox,
    /// Maildir++.
    Maildir,
    /// Maildir, `LAYOUT=fs`.
    MaildirFs,
}

/// A fresh, empty store of `kind` at `path` (ignored for memory).
pub fn open(kind: Kind, path: &Path) -> (Arc<dyn Source>, Arc<dyn Target>) {
    fn both<T: Source + Target + 'static>(t: T) -> (Arc<dyn Source>, Arc<dyn Target>) {
        let t = Arc::new(t);
        (t.clone(), t)
    }
    let maildir = |layout| {
        let options = MaildirOptions {
            layout: Some(layout),
            ..MaildirOptions::default()
        };
        both(Maildir::create(path, options).expect("create Maildir"))
    };
    match kind {
        Kind::Memory => both(MemoryStore::new()),
        Kind::Mbox => both(Mbox::open(path).expect("open mbox")),
        Kind::Maildir => maildir(Layout::MaildirPlusPlus),
        Kind::MaildirFs => maildir(Layout::Fs),
    }
}

/// One reported failure.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Which hop (`Mbox -> Maildir`).
    pub hop: String,
    /// The source folder.
    pub folder: FolderPath,
    /// What failed and why.
    pub reason: String,
    /// The message, as the hop's source held it.
    pub message: Msg,
}

/// What a chain did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Messages at the start.
    pub start: usize,
    /// Messages at the end.
    pub end: usize,
    /// Every message reported failed, hop by hop (directly, or by its folder's error).
    pub failures: Vec<Failure>,
    /// Folders that failed as a whole, hop by hop, with the reason.
    pub folder_errors: Vec<String>,
}

/// Whether folders must keep their names, or only the messages must survive (hostile folder
/// names may be stored under an escaped or on-disk name and read back so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Per folder.
    PerFolder,
    /// All folders together.
    AllFolders,
}

fn flatten(m: &BTreeMap<FolderPath, Vec<Msg>>) -> BTreeMap<FolderPath, Vec<Msg>> {
    let mut all: Vec<Msg> = m.values().flatten().cloned().collect();
    all.sort();
    BTreeMap::from([(FolderPath::new(["*"]), all)])
}

/// Runs `start` through `hops` (each a fresh store under `dir`), checking every hop.
pub async fn run(start: MemoryStore, hops: &[Kind], dir: &Path, compare: Compare) -> Outcome {
    let mut source: Arc<dyn Source> = Arc::new(start);
    let mut from = Kind::Memory;
    let mut outcome = Outcome::default();
    for (i, &kind) in hops.iter().enumerate() {
        let hop = format!("{from:?} -> {kind:?}");
        let path = dir.join(format!("{i}-{kind:?}"));
        let (next_source, target) = open(kind, &path);
        let before: Snapshot = snapshot(&*source).await;
        if i == 0 {
            outcome.start = count(&before);
        }
        let started = std::time::Instant::now();
        let report = copy(source.clone(), target).await;
        let copy_secs = started.elapsed().as_secs_f64();
        let t = report.totals;
        assert_eq!(
            t.already_copied + t.skipped_existing + t.filtered,
            0,
            "{hop}: {t:?}"
        );
        assert_eq!(
            t.seen,
            t.copied + t.failed,
            "{hop}: counts must add up: {t:?}"
        );
        for f in &report.folders {
            let held = before.get(&f.source).map_or(0, |m| m.len()) as u64;
            // A folder that failed as a whole (it could not be created) saw less; its error is
            // its report.
            if f.error.is_none() {
                assert_eq!(
                    f.counts.seen, held,
                    "{hop}: every message of {} seen",
                    f.source
                );
            } else {
                assert!(f.counts.seen <= held, "{hop}: {}: {:?}", f.source, f.counts);
            }
        }
        let listed: Vec<&FolderPath> = report.folders.iter().map(|f| &f.source).collect();
        for (folder, messages) in &before {
            assert!(
                messages.is_empty() || listed.contains(&folder),
                "{hop}: folder {folder} is not in the report"
            );
        }
        let mut expected = before.clone();
        let mut errored_folders = Vec::new();
        for f in &report.folders {
            if let Some(e) = &f.error {
                errored_folders.push(f.source.clone());
                outcome
                    .folder_errors
                    .push(format!("{hop}: {}: {e}", f.source));
            }
            for issue in &f.failures {
                assert!(
                    !issue.reason.trim().is_empty(),
                    "{hop}: a failure without a reason"
                );
                let message = expected
                    .get_mut(&f.source)
                    .and_then(|m| m.remove(&issue.key))
                    .unwrap_or_else(|| {
                        panic!(
                            "{hop}: failure {issue:?} names no message the source listed in {}",
                            f.source
                        )
                    });
                outcome.failures.push(Failure {
                    hop: hop.clone(),
                    folder: f.source.clone(),
                    reason: issue.reason.clone(),
                    message,
                });
            }
        }
        let started = std::time::Instant::now();
        let after = snapshot(&*next_source).await;
        if std::env::var_os("MAILFERRY_CHAIN_TIMES").is_some() {
            println!(
                "{hop}: copy {copy_secs:.1} s, read back {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        let (mut want, mut got) = (multisets(&expected), multisets(&after));
        // A folder that failed as a whole may hold part of its messages: what it holds must
        // be some of the source's, and the rest counts as reported by the folder error.
        for folder in &errored_folders {
            let held = got.remove(folder).unwrap_or_default();
            let all = want.remove(folder).unwrap_or_default();
            assert!(
                held.iter().all(|m| all.contains(m)),
                "{hop}: {folder} failed, and holds messages its source does not"
            );
            for m in all.iter().filter(|m| !held.contains(m)) {
                outcome.failures.push(Failure {
                    hop: hop.clone(),
                    folder: folder.clone(),
                    reason: "not copied: its folder failed".into(),
                    message: m.clone(),
                });
            }
        }
        if compare == Compare::AllFolders {
            (want, got) = (flatten(&want), flatten(&got));
        }
        assert!(
            want == got,
            "{hop}: the target differs from the source minus its reported failures:\n{}",
            describe_difference(&want, &got)
        );
        source = next_source;
        from = kind;
        outcome.end = count(&after);
    }
    outcome
}

/// Prints what failed, grouped by hop and reason (the first few of each).
pub fn print_failures(label: &str, outcome: &Outcome) {
    println!(
        "{label}: {} messages in, {} out, {} reported failed ({} folders failed)",
        outcome.start,
        outcome.end,
        outcome.failures.len(),
        outcome.folder_errors.len()
    );
    for e in outcome.folder_errors.iter().take(2) {
        println!("  e.g. {}", short(e));
    }
    let mut by_reason: BTreeMap<(String, String), (usize, &Failure)> = BTreeMap::new();
    for f in &outcome.failures {
        // Reasons name keys and paths; the text after the last ": " is the cause.
        let cause = f
            .reason
            .rsplit(": ")
            .next()
            .unwrap_or(&f.reason)
            .to_string();
        by_reason.entry((f.hop.clone(), cause)).or_insert((0, f)).0 += 1;
    }
    for ((hop, cause), (n, example)) in by_reason {
        println!(
            "  {hop}: {n} × {cause} (e.g. in {}, checksum {})",
            short(&example.folder.to_string()),
            example.message.checksum
        );
    }
}

/// At most 160 characters of `text`, for readable output.
fn short(text: &str) -> String {
    let mut out: String = text.chars().take(160).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}
