//! A process killed in the middle of an mbox append leaves part of a batch in the file: the
//! mbox writer cuts a failed batch back, but a dead process cuts nothing. SIGKILLing the real
//! command lands there only by luck (a batch is one or two `write` calls), so these tests put
//! the store in exactly that state: a target wrapper lets the batch reach the file, tears the
//! file at a chosen point inside it, leaves the append journal a dead writer leaves
//! ([`mailferry_mbox::journal`]), and fails the run as fatal — the items stay *pending* in the
//! state, as after a kill. The next run with the same state must leave the target equal to
//! the source: no fragment of the torn message, no duplicate of what did land, nothing lost.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mailferry_core::{
    AppendOutcome, BoxFuture, CanonicalItem, Copier, CopyOptions, Error, FolderPath, Hooked,
    MemoryState, MemoryStore, Result, Target, TargetHook, VerifyOptions, verify,
};
use mailferry_mbox::{Mbox, MboxOptions};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};

use crate::support::{describe_difference, files_under, multisets, snapshot};

/// Lets batches through to the mbox store under `root`; the `die_at`-th batch reaches the file,
/// which is then cut to `before + fraction × (after − before)` bytes, and the run is failed as
/// fatal.
struct TearsOneBatch {
    root: PathBuf,
    die_at: usize,
    fraction: f64,
    gzip: bool,
    batches: AtomicUsize,
}

/// The one file under `root` that holds `folder`'s messages (the largest; the tests use one
/// folder).
fn mbox_file(root: &Path) -> Option<PathBuf> {
    files_under(root)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
}

impl TargetHook for TearsOneBatch {
    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            let n = self.batches.fetch_add(1, Ordering::SeqCst);
            let file = mbox_file(&self.root);
            let before = file
                .as_deref()
                .and_then(|f| std::fs::metadata(f).ok())
                .map_or(0, |m| m.len());
            let outcomes = inner.append(folder, batch).await?;
            if n != self.die_at {
                return Ok(outcomes);
            }
            let file = mbox_file(&self.root).expect("the batch created a file");
            let after = std::fs::metadata(&file).expect("stat").len();
            let cut = before + ((after - before) as f64 * self.fraction) as u64;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .and_then(|f| f.set_len(cut))
                .expect("tear the file");
            // What the dead writer leaves besides the torn batch: its journal.
            let planned = (!self.gzip).then_some(after);
            mailferry_mbox::journal::begin(&file, before, planned).expect("journal");
            Err(Error::fatal(format!(
                "simulated crash: {} torn at {cut} of {after} bytes",
                file.display()
            )))
        })
    }
}

fn source() -> MemoryStore {
    let store = MemoryStore::new();
    for m in CorpusSpec::new(300, SizeMix::small())
        .with_quirks()
        .generate()
    {
        store.insert(&FolderPath::inbox(), m.body, m.flags, Some(m.internal_date));
    }
    store
}

fn options() -> CopyOptions {
    // One writer and small batches: the torn batch is the third of several, deterministically.
    CopyOptions {
        writers_per_folder: 1,
        batch_items: 16,
        ..CopyOptions::default()
    }
}

async fn tear_then_resume(gzip: bool, fraction: f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("mbox");
    let mbox_options = MboxOptions {
        gzip,
        ..MboxOptions::default()
    };
    let source = Arc::new(source());
    let state = Arc::new(MemoryState::new());
    let tearing = Arc::new(Hooked::new(
        Arc::new(Mbox::with_options(&root, mbox_options.clone()).expect("open")),
        TearsOneBatch {
            root: root.clone(),
            die_at: 2,
            fraction,
            gzip,
            batches: AtomicUsize::new(0),
        },
    ));
    let copier = Copier::new(source.clone(), tearing, state.clone(), options());
    let jobs = copier.identity_plan().await.expect("plan");
    let crashed = copier.run(jobs.clone()).await;
    assert!(crashed.is_err(), "the simulated crash must stop the run");

    let target = Arc::new(Mbox::with_options(&root, mbox_options).expect("reopen"));
    let copier = Copier::new(source.clone(), target.clone(), state.clone(), options());
    let report = copier.run(jobs.clone()).await.expect("resume");
    assert_eq!(report.totals.failed, 0, "{report:#?}");

    let want = multisets(&snapshot(&*source).await);
    let got = multisets(&snapshot(&*target).await);
    assert!(
        want == got,
        "gzip {gzip}, torn at {fraction}: the target differs from the source after resuming:\n{}",
        describe_difference(&want, &got)
    );
    let verification = verify(
        &*source,
        &*target,
        &*state,
        &jobs,
        &VerifyOptions {
            migration: CopyOptions::default().migration,
            read_back: true,
            compare_flags: true,
            compare_keywords: true,
            compare_dates: true,
        },
    )
    .await
    .expect("verify");
    assert!(
        verification.is_match(),
        "gzip {gzip}, torn at {fraction}: {verification:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbox_append_torn_by_a_crash_resumes_without_fragments_or_duplicates() {
    // Just after the batch's first bytes, mid-batch, and one byte short of its end.
    for fraction in [0.001, 0.5, 0.9999] {
        tear_then_resume(false, fraction).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_mbox_append_torn_by_a_crash_resumes_without_fragments_or_duplicates() {
    for fraction in [0.1, 0.9] {
        tear_then_resume(true, fraction).await;
    }
}
