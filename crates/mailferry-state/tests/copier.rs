//! The real thing: the copier with `SqliteState` as its state, from one `MemoryStore` to
//! another, on a generated corpus with quirks (byte-identical duplicates, reused Message-IDs,
//! no Message-ID, bare LF) plus the real-world messages in `shared/corpora`. Each run reopens the
//! state file, as a new process would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mailferry_core::bytes::Bytes;
use mailferry_core::normalise::canonicalise;
use mailferry_core::{
    BoxFuture, BoxStream, Capabilities, Checkpoint, Checksum, Copier, CopyOptions, ErrorKind,
    Flags, Folder, FolderPath, FolderScope, Hooked, Item, ItemMeta, ItemStatus, MemoryStore,
    Report, Result, Source, SpecialUse, StateStore, Target,
};
use mailferry_state::SqliteState;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::faulty::{Call, Faults};

fn corpora_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora")
}

/// Every message file under `dir` (the `.json` files are expected parses, not messages).
fn message_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            message_files(&path, out);
        } else if !name.starts_with('.') && !name.ends_with(".json") && name != "SOURCES.md" {
            out.push(path);
        }
    }
}

/// The source: a generated corpus in three folders, plus the real corpus in its own folder.
fn source_store() -> MemoryStore {
    let store = MemoryStore::new();
    store.create_folder(&FolderPath::new(["Sent"]), Some(SpecialUse::Sent));
    let folders = vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2020"]),
        FolderPath::new(["Sent"]),
    ];
    let spec = CorpusSpec::new(240, SizeMix::small())
        .with_quirks()
        .in_folders(folders);
    for m in spec.generate() {
        store.insert(&m.folder, m.body, m.flags, Some(m.internal_date));
    }

    let dir = corpora_dir();
    if !dir.is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the real-world corpus is missing at {}",
            dir.display()
        );
        eprintln!(
            "note: {} is missing; using the generated corpus only",
            dir.display()
        );
        return store;
    }
    let mut files = Vec::new();
    message_files(&dir, &mut files);
    files.sort();
    let real = FolderPath::new(["Real", "corpus"]);
    for file in &files {
        let body = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        store.insert(&real, Bytes::from(body), Flags::default(), None);
    }
    assert!(files.len() > 500, "only {} corpus files", files.len());
    store
}

/// Per folder, the sorted checksums of the canonical bytes: equal maps mean every message
/// arrived exactly once, byte for byte.
fn contents(store: &MemoryStore) -> BTreeMap<FolderPath, Vec<Checksum>> {
    store
        .folder_paths()
        .into_iter()
        .map(|path| {
            let mut sums: Vec<Checksum> = store
                .messages(&path)
                .into_values()
                .map(|m| Checksum::of(&canonicalise(m.body).0))
                .collect();
            sums.sort();
            (path, sums)
        })
        .collect()
}

fn total(store: &MemoryStore) -> u64 {
    contents(store).values().map(|v| v.len() as u64).sum()
}

fn options() -> CopyOptions {
    CopyOptions {
        migration: "ann@old.example → ann@new.example".into(),
        batch_items: 16,
        ..CopyOptions::default()
    }
}

async fn copy(
    source: &MemoryStore,
    target: Arc<dyn Target>,
    state_file: &Path,
    options: CopyOptions,
) -> Result<Report> {
    let state = Arc::new(SqliteState::open(state_file)?);
    let copier = Copier::new(Arc::new(source.clone()), target, state, options);
    let jobs = copier.identity_plan().await?;
    copier.run(jobs).await
}

/// A source that cannot list "after a checkpoint", so every item is listed and the copier must
/// look each one up in the state.
struct ListsEverything(MemoryStore);

impl Source for ListsEverything {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ordered_ids: false,
            ..Source::capabilities(&self.0)
        }
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        Source::list_folders(&self.0)
    }

    fn list_items<'a>(
        &'a self,
        folder: &'a FolderPath,
        _after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        self.0.list_items(folder, None)
    }

    fn fetch<'a>(
        &'a self,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        self.0.fetch(folder, items)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_copies_nothing_and_counts_everything_as_already_copied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state_file = dir.path().join("state.db");
    let source = source_store();
    let target = MemoryStore::new();
    let n = total(&source);

    let first = copy(&source, Arc::new(target.clone()), &state_file, options())
        .await
        .expect("first run");
    assert_eq!(first.totals.copied, n, "{:?}", first.totals);
    assert!(first.is_success(), "{first:#?}");

    let second = copy(&source, Arc::new(target.clone()), &state_file, options())
        .await
        .expect("second run");
    assert_eq!(second.totals.copied, 0);
    assert_eq!(second.totals.already_copied, n);
    assert!(second.folders.iter().all(|f| f.unchanged));

    // Without folder checkpoints and listing from the start, every item is looked up in the
    // state instead.
    let state = Arc::new(SqliteState::open(&state_file).expect("reopen"));
    let copier = Copier::new(
        Arc::new(ListsEverything(source.clone())),
        Arc::new(target.clone()),
        state,
        CopyOptions {
            ignore_checkpoints: true,
            dedupe_existing: false,
            ..options()
        },
    );
    let jobs = copier.identity_plan().await.expect("plan");
    let third = copier.run(jobs).await.expect("third run");
    assert_eq!(third.totals.copied, 0);
    assert_eq!(third.totals.already_copied, n);
    assert_eq!(third.totals.seen, n);
    assert_eq!(contents(&target), contents(&source));
}

/// Where the simulated crash happens, relative to the append of the crashing batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// The batch is stored, then the process "dies" before recording it done.
    AfterAppend,
    /// The process "dies" after recording the batch pending, before the append.
    BeforeAppend,
}

/// Lets three batches through to the target, then "crashes" on every later append: after
/// storing the batch or before, as `crash` says.
fn crashing(crash: Crash) -> Faults {
    match crash {
        Crash::AfterAppend => {
            Faults::new().after_landing(Call::Append, 3, usize::MAX, ErrorKind::Fatal)
        }
        Crash::BeforeAppend => Faults::new().fail(Call::Append, 3, usize::MAX, ErrorKind::Fatal),
    }
}

/// Crashes a first run after three good batches, checks the state holds pending items, then
/// resumes with a healthy target. Dedupe against the target is off on resume, so only the
/// pending records in the state file can prevent duplicates.
async fn resume_after(crash: Crash) {
    let dir = tempfile::tempdir().expect("temp dir");
    let state_file = dir.path().join("state.db");
    let source = source_store();
    let target = MemoryStore::new();
    let crashing = Hooked::new(Arc::new(target.clone()), crashing(crash));
    let one_folder_at_a_time = CopyOptions {
        folder_concurrency: 1,
        writers_per_folder: 1,
        ..options()
    };
    let err = copy(
        &source,
        Arc::new(crashing),
        &state_file,
        one_folder_at_a_time,
    )
    .await
    .expect_err("the first run crashes");
    assert!(err.to_string().contains("injected fault"), "{err}");

    let state = SqliteState::open(&state_file).expect("open state");
    let (mut pending, mut done) = (0, 0);
    for folder in Source::list_folders(&source).await.expect("folders") {
        let scope = FolderScope {
            migration: options().migration,
            folder: folder.path.clone(),
            validity: folder.status.validity,
        };
        let count = |status| {
            let (state, scope) = (&state, &scope);
            async move {
                let records = state.records(scope, Some(status)).await.expect("records");
                records.len() as u64
            }
        };
        pending += count(ItemStatus::Pending).await;
        done += count(ItemStatus::Done).await;
    }
    // The batcher flushes partial batches, so the crashed batch has between 1 and 16 items.
    assert!((1..=16).contains(&pending), "{pending} pending");
    assert!(done > 0, "three batches went through before the crash");
    let stored_before_resume = total(&target);
    let in_target_but_pending = match crash {
        Crash::AfterAppend => pending,
        Crash::BeforeAppend => 0,
    };
    assert_eq!(stored_before_resume, done + in_target_but_pending);
    drop(state);

    let resumed = copy(
        &source,
        Arc::new(target.clone()),
        &state_file,
        CopyOptions {
            dedupe_existing: false,
            ..options()
        },
    )
    .await
    .expect("the resumed run");
    assert!(resumed.is_success(), "{resumed:#?}");
    let n = total(&source);
    assert_eq!(resumed.totals.copied + resumed.totals.already_copied, n);
    assert_eq!(resumed.totals.already_copied, stored_before_resume);
    assert_eq!(total(&target), n, "nothing lost, nothing twice");
    assert_eq!(contents(&target), contents(&source));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_a_crash_after_the_append_without_duplicates() {
    resume_after(Crash::AfterAppend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_a_crash_before_the_append_without_losses() {
    resume_after(Crash::BeforeAppend).await;
}
