//! Behaviour tests of the copier with in-memory backends and wrappers that misbehave on cue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;

use super::*;
use crate::backend::{AppendOutcome, BoxStream, Capabilities, Checkpoint, ExistingItem};
use crate::flags::Flags;
use crate::folder::Folder;
use crate::item::{CanonicalItem, Item, ItemMeta};
use crate::layers::{Hooked, TargetHook};
use crate::memory::MemoryStore;
use crate::state::{FolderScope, ItemRecord, ItemStatus, MemoryState};
use crate::{BoxFuture, Checksum};

fn msg(i: usize, len: usize) -> Bytes {
    let mut v = format!("Message-ID: <{i}@test>\nSubject: {i}\n\n").into_bytes();
    v.resize(v.len() + len, b'x');
    v.push(b'\n');
    Bytes::from(v)
}

fn source_with(n: usize, len: usize) -> MemoryStore {
    let s = MemoryStore::new();
    for i in 0..n {
        s.insert(&FolderPath::inbox(), msg(i, len), Flags::default(), None);
    }
    s
}

async fn run(
    source: Arc<dyn Source>,
    target: Arc<dyn Target>,
    state: Arc<dyn StateStore>,
    options: CopyOptions,
) -> Result<Report> {
    let copier = Copier::new(source, target, state, options);
    let plan = copier.identity_plan().await?;
    copier.run(plan).await
}

/// Delegates to a memory store (as a target, through [`Hooked`]); counts calls and misbehaves
/// on cue.
#[derive(Clone, Default)]
struct Wrapped {
    store: MemoryStore,
    list_calls: Arc<AtomicUsize>,
    /// Bytes fetched and not yet appended, and the maximum seen.
    in_flight: Arc<AtomicU64>,
    max_in_flight: Arc<AtomicU64>,
    /// Store the next batch, then fail it transiently (a cut connection after the server
    /// committed).
    fail_after_store: Arc<AtomicBool>,
    /// Fail every append fatally after storing (a crash after the target committed).
    crash_after_store: Arc<AtomicBool>,
    /// Store only the first half of the next batch, then fail it transiently (a connection cut
    /// in the middle of a MULTIAPPEND-less batch).
    store_half_then_fail: Arc<AtomicBool>,
}

impl Source for Wrapped {
    fn capabilities(&self) -> Capabilities {
        Source::capabilities(&self.store)
    }
    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        Source::list_folders(&self.store)
    }
    fn list_items<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        self.store.list_items(folder, after)
    }
    fn fetch<'a>(
        &'a self,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        let in_flight = Arc::clone(&self.in_flight);
        let max = Arc::clone(&self.max_in_flight);
        Box::pin(self.store.fetch(folder, items).map(move |r| {
            if let Ok(item) = &r {
                let now = in_flight.fetch_add(item.body.len() as u64, Ordering::SeqCst)
                    + item.body.len() as u64;
                max.fetch_max(now, Ordering::SeqCst);
            }
            r
        }))
    }
}

impl Wrapped {
    /// This wrapper as a target over its own store (fetch and append share the counters).
    fn target(&self) -> Arc<dyn Target> {
        Arc::new(Hooked::new(Arc::new(self.store.clone()), self.clone()))
    }
}

impl TargetHook for Wrapped {
    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            // Let the producer run ahead so the budget is actually exercised.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            if batch.len() > 1 && self.store_half_then_fail.swap(false, Ordering::SeqCst) {
                inner.append(folder, &batch[..batch.len() / 2]).await?;
                return Err(Error::transient(
                    "connection reset in the middle of a batch",
                ));
            }
            let out = inner.append(folder, batch).await?;
            let raw: u64 = batch.iter().map(|i| i.meta.size).sum();
            self.in_flight.fetch_sub(raw, Ordering::SeqCst);
            if self.fail_after_store.swap(false, Ordering::SeqCst) {
                return Err(Error::transient(
                    "connection reset after the server stored the batch",
                ));
            }
            if self.crash_after_store.load(Ordering::SeqCst) {
                return Err(Error::fatal("simulated crash"));
            }
            Ok(out)
        })
    }
}

fn checksums(store: &MemoryStore) -> Vec<Checksum> {
    let mut v: Vec<Checksum> = store
        .messages(&FolderPath::inbox())
        .into_values()
        .map(|m| Checksum::of(&crate::normalise::canonicalise(m.body).0))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_everything_canonicalised_and_counts_add_up() {
    let source = source_with(300, 2_000);
    let target = MemoryStore::new();
    let report = run(
        Arc::new(source.clone()),
        Arc::new(target.clone()),
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    )
    .await
    .expect("run");
    assert_eq!(report.totals.seen, 300);
    assert_eq!(report.totals.copied, 300);
    assert_eq!(report.folders[0].normalisation.bare_lf, 300 * 4);
    assert_eq!(checksums(&target), checksums(&source));
    assert!(report.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_item_is_reported_and_the_rest_is_copied() {
    let source = source_with(50, 100);
    source.insert(
        &FolderPath::inbox(),
        Bytes::from_static(b"Subject: bad\n\nREJECT ME\n"),
        Flags::default(),
        None,
    );
    let target = MemoryStore::new();
    target.reject_items_containing(b"REJECT ME");
    let state = Arc::new(MemoryState::new());
    let report = run(
        Arc::new(source.clone()),
        Arc::new(target.clone()),
        state.clone(),
        CopyOptions::default(),
    )
    .await
    .expect("run");
    assert_eq!(report.totals.copied, 50);
    assert_eq!(report.totals.failed, 1);
    let failure = &report.folders[0].failures[0];
    assert_eq!(failure.key, "51");
    assert!(failure.reason.contains("reject"), "{failure:?}");
    assert!(!report.is_success());
    // A failed folder gets no checkpoint: the next pass retries the failed item only.
    let again = run(
        Arc::new(source),
        Arc::new(target.clone()),
        state,
        CopyOptions::default(),
    )
    .await
    .expect("rerun");
    assert_eq!(
        (
            again.totals.copied,
            again.totals.failed,
            again.totals.already_copied
        ),
        (0, 1, 50)
    );
    assert_eq!(target.messages(&FolderPath::inbox()).len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_holds_the_source_back_to_the_budget() {
    let shared = Wrapped {
        store: source_with(200, 100_000),
        ..Wrapped::default()
    };
    // One wrapper as both ends shares the in-flight counter: fetch adds, append subtracts.
    let target = Wrapped {
        store: MemoryStore::new(),
        ..shared.clone()
    };
    let options = CopyOptions {
        byte_budget: 1 << 20,
        batch_items: 4,
        ..CopyOptions::default()
    };
    let report = run(
        Arc::new(shared.clone()),
        target.target(),
        Arc::new(MemoryState::new()),
        options,
    )
    .await
    .expect("run");
    assert_eq!(report.totals.copied, 200);
    let max = shared.max_in_flight.load(Ordering::SeqCst);
    // The budget plus the one item read before its share is taken.
    assert!(
        max <= (1 << 20) + 100_100,
        "{max} bytes were in flight with a 1 MiB budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_larger_than_the_budget_is_admitted_alone() {
    let source = source_with(3, 3 << 20);
    let target = MemoryStore::new();
    let options = CopyOptions {
        byte_budget: 1 << 20,
        ..CopyOptions::default()
    };
    let report = run(
        Arc::new(source),
        Arc::new(target),
        Arc::new(MemoryState::new()),
        options,
    )
    .await
    .expect("run");
    assert_eq!(report.totals.copied, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_folder_is_skipped_without_listing() {
    let source = Wrapped {
        store: source_with(20, 10),
        ..Wrapped::default()
    };
    let state = Arc::new(MemoryState::new());
    let target = MemoryStore::new();
    run(
        Arc::new(source.clone()),
        Arc::new(target.clone()),
        state.clone(),
        CopyOptions::default(),
    )
    .await
    .expect("first");
    assert_eq!(source.list_calls.load(Ordering::SeqCst), 1);
    let report = run(
        Arc::new(source.clone()),
        Arc::new(target.clone()),
        state.clone(),
        CopyOptions::default(),
    )
    .await
    .expect("second");
    assert_eq!(
        source.list_calls.load(Ordering::SeqCst),
        1,
        "an unchanged folder was listed"
    );
    assert!(report.folders[0].unchanged);
    assert_eq!(report.totals.already_copied, 20);
    // A new message changes the status: only it is listed (after the checkpoint) and copied.
    source
        .store
        .insert(&FolderPath::inbox(), msg(99, 10), Flags::default(), None);
    let report = run(
        Arc::new(source.clone()),
        Arc::new(target.clone()),
        state,
        CopyOptions::default(),
    )
    .await
    .expect("third");
    assert_eq!((report.totals.seen, report.totals.copied), (1, 1));
    assert_eq!(target.messages(&FolderPath::inbox()).len(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_after_the_server_stored_it_is_not_duplicated() {
    let source = source_with(40, 100);
    let target = Wrapped::default();
    target.fail_after_store.store(true, Ordering::SeqCst);
    let options = CopyOptions {
        backoff: std::time::Duration::from_millis(1),
        ..CopyOptions::default()
    };
    let report = run(
        Arc::new(source.clone()),
        target.target(),
        Arc::new(MemoryState::new()),
        options,
    )
    .await
    .expect("run");
    assert_eq!(report.totals.copied, 40);
    assert_eq!(checksums(&target.store), checksums(&source));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_items_left_by_a_crash_are_resolved_not_rewritten() {
    let source = source_with(30, 100);
    let target = Wrapped::default();
    target.crash_after_store.store(true, Ordering::SeqCst);
    let state = Arc::new(MemoryState::new());
    let err = run(
        Arc::new(source.clone()),
        target.target(),
        state.clone(),
        CopyOptions::default(),
    )
    .await
    .expect_err("the crash is fatal");
    assert!(err.to_string().contains("simulated crash"));
    let stored = target.store.messages(&FolderPath::inbox()).len();
    assert!(stored > 0);
    target.crash_after_store.store(false, Ordering::SeqCst);
    let report = run(
        Arc::new(source.clone()),
        target.target(),
        state,
        CopyOptions::default(),
    )
    .await
    .expect("resume");
    assert_eq!(report.totals.copied as usize, 30 - stored);
    assert_eq!(checksums(&target.store), checksums(&source));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_contact_skips_existing_mail_but_mirrors_source_duplicates() {
    let source = MemoryStore::new();
    let dup = msg(1, 10);
    source.insert(&FolderPath::inbox(), dup.clone(), Flags::default(), None);
    source.insert(&FolderPath::inbox(), dup.clone(), Flags::default(), None);
    source.insert(&FolderPath::inbox(), msg(2, 10), Flags::default(), None);
    let target = MemoryStore::new();
    // Another tool copied one of the two identical messages before.
    target.insert(
        &FolderPath::inbox(),
        crate::normalise::canonicalise(dup).0,
        Flags::default(),
        None,
    );
    let report = run(
        Arc::new(source.clone()),
        Arc::new(target.clone()),
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    )
    .await
    .expect("run");
    assert_eq!(
        (report.totals.copied, report.totals.skipped_existing),
        (2, 1)
    );
    assert_eq!(checksums(&target), checksums(&source));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_leave_items_out_with_a_reason() {
    let source = MemoryStore::new();
    let old = InternalDate::from_timestamp(1_000_000_000);
    let new = InternalDate::from_timestamp(1_700_000_000);
    source.insert(
        &FolderPath::inbox(),
        msg(1, 10),
        Flags::default(),
        Some(old),
    );
    source.insert(
        &FolderPath::inbox(),
        msg(2, 10),
        Flags::default(),
        Some(new),
    );
    source.insert(
        &FolderPath::inbox(),
        msg(3, 5_000),
        Flags::default(),
        Some(new),
    );
    let options = CopyOptions {
        filter: ItemFilter {
            since: Some(InternalDate::from_timestamp(1_500_000_000)),
            max_size: Some(1_000),
            ..ItemFilter::default()
        },
        ..CopyOptions::default()
    };
    let target = MemoryStore::new();
    let report = run(
        Arc::new(source),
        Arc::new(target.clone()),
        Arc::new(MemoryState::new()),
        options,
    )
    .await
    .expect("run");
    assert_eq!((report.totals.copied, report.totals.filtered), (1, 2));
    let reasons: Vec<&str> = report.folders[0]
        .filtered
        .iter()
        .map(|i| i.reason.as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("too large") && r.contains("1000")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("--since")), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_run_and_keeps_what_was_written() {
    let source = Wrapped {
        store: source_with(2_000, 1_000),
        ..Wrapped::default()
    };
    let target = Wrapped::default();
    let state = Arc::new(MemoryState::new());
    let options = CopyOptions {
        batch_items: 8,
        writers_per_folder: 1,
        ..CopyOptions::default()
    };
    let copier = Copier::new(
        Arc::new(source.clone()),
        target.target(),
        state.clone(),
        options,
    );
    let mut progress = copier.progress();
    let cancel = copier.cancel_token();
    tokio::spawn(async move {
        while let Ok(event) = progress.recv().await {
            if matches!(event, Progress::Items { delta, .. } if delta.copied > 0) {
                cancel.cancel();
            }
        }
    });
    let plan = copier.identity_plan().await.expect("plan");
    let report = copier.run(plan).await.expect("run");
    assert!(report.cancelled);
    let stored = target.store.messages(&FolderPath::inbox()).len() as u64;
    assert!(stored < 2_000, "cancel did not stop the copy");
    assert_eq!(report.totals.copied, stored);
    let scope = FolderScope {
        migration: "default".into(),
        folder: FolderPath::inbox(),
        validity: 1,
    };
    let done: Vec<ItemRecord> = state
        .records(&scope, Some(ItemStatus::Done))
        .await
        .expect("records");
    assert_eq!(
        done.len() as u64,
        stored,
        "every stored item is recorded done"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renumbered_source_folder_is_matched_by_checksum_not_copied_again() {
    let source = source_with(25, 100);
    // Two byte-identical messages: each must keep its own target copy after renumbering.
    source.insert(&FolderPath::inbox(), msg(7, 100), Flags::default(), None);
    let target = MemoryStore::new();
    let state = Arc::new(MemoryState::new());
    let options = CopyOptions {
        dedupe_existing: false,
        ..CopyOptions::default()
    };
    run(
        Arc::new(source.clone()),
        Arc::new(target.clone()),
        state.clone(),
        options.clone(),
    )
    .await
    .expect("first");
    source.renumber(&FolderPath::inbox());
    let report = run(
        Arc::new(source.clone()),
        Arc::new(target.clone()),
        state,
        options,
    )
    .await
    .expect("after renumbering");
    assert_eq!(
        (report.totals.copied, report.totals.already_copied),
        (0, 26),
        "{:?}",
        report.totals
    );
    assert_eq!(checksums(&target), checksums(&source));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_halfway_records_every_item_done_with_its_own_target_key() {
    let source = source_with(40, 100);
    let target = Wrapped::default();
    target.store_half_then_fail.store(true, Ordering::SeqCst);
    let state = Arc::new(MemoryState::new());
    let options = CopyOptions {
        backoff: std::time::Duration::from_millis(1),
        ..CopyOptions::default()
    };
    let report = run(
        Arc::new(source.clone()),
        target.target(),
        state.clone(),
        options,
    )
    .await
    .expect("run");
    assert_eq!((report.totals.copied, report.totals.failed), (40, 0));
    assert_eq!(checksums(&target.store), checksums(&source));
    // The half found in the target after the cut and the half appended on retry are both
    // recorded done, each with the key of its own copy and its own checksum and fingerprint.
    let scope = FolderScope {
        migration: "default".into(),
        folder: FolderPath::inbox(),
        validity: Source::list_folders(&source).await.expect("folders")[0]
            .status
            .validity,
    };
    let records = state.records(&scope, None).await.expect("records");
    assert_eq!(records.len(), 40);
    let stored = target.store.messages(&FolderPath::inbox());
    let mut keys = std::collections::HashSet::new();
    for r in &records {
        assert_eq!(r.status, ItemStatus::Done, "{r:?}");
        let key = r.target_key.as_ref().expect("a target key");
        assert!(keys.insert(key.clone()), "target key {key} recorded twice");
        let uid: u64 = key.0.parse().expect("a memory store uid");
        let body = &stored[&uid].body;
        assert_eq!(r.checksum, Some(Checksum::of(body)), "{r:?}");
        let facts = crate::headers::HeaderFacts::parse(body).expect("headers");
        assert_eq!(r.fingerprint, facts.fingerprint());
    }
}

/// Makes a target's appends and listings misbehave on cue, by call number.
#[derive(Default)]
struct Scripted {
    appends: std::sync::Mutex<u32>,
    listings: std::sync::Mutex<u32>,
    /// Append number that stores its batch, then reports a transient error.
    lost_ok_on_append: u32,
    /// Listing number that fails transiently.
    failing_listing: u32,
    /// Source key whose first append is cut before anything is sent.
    cut_first_append_of: Option<&'static str>,
    /// Source key whose acknowledgement is slow (another writer runs meanwhile).
    slow_ack_of: Option<&'static str>,
    cut_done: AtomicBool,
}

impl TargetHook for Scripted {
    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        f: &'a FolderPath,
        b: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            let key = b[0].meta.key.0.clone();
            if self.cut_first_append_of == Some(key.as_str())
                && !self.cut_done.swap(true, Ordering::SeqCst)
            {
                // Let the other writer's append land first.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                return Err(Error::transient("cut before anything was sent"));
            }
            let out = inner.append(f, b).await;
            if self.slow_ack_of == Some(key.as_str()) {
                tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            }
            let n = {
                let mut n = self.appends.lock().expect("lock");
                *n += 1;
                *n
            };
            if n == self.lost_ok_on_append {
                return Err(Error::transient("stored, but the OK was lost"));
            }
            out
        })
    }
    fn existing<'a>(
        &'a self,
        inner: &'a dyn Target,
        f: &'a FolderPath,
    ) -> BoxStream<'a, Result<ExistingItem>> {
        let n = {
            let mut n = self.listings.lock().expect("lock");
            *n += 1;
            *n
        };
        if n == self.failing_listing {
            return Box::pin(futures_util::stream::iter([Err(Error::transient(
                "cut while listing",
            ))]));
        }
        inner.existing(f)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncertain_append_is_never_repeated_blindly_when_resolution_fails() {
    let source = MemoryStore::new();
    source.insert(
        &FolderPath::inbox(),
        Bytes::from_static(b"Message-ID: <a@b>\r\n\r\nonce\r\n"),
        Flags::default(),
        None,
    );
    let inner = MemoryStore::new();
    // Listing 1 is first contact; listing 2, the resolution after the lost OK, fails.
    let target = Hooked::new(
        Arc::new(inner.clone()),
        Scripted {
            lost_ok_on_append: 1,
            failing_listing: 2,
            ..Scripted::default()
        },
    );
    let options = CopyOptions {
        backoff: std::time::Duration::from_millis(5),
        ..CopyOptions::default()
    };
    let report = run(
        Arc::new(source),
        Arc::new(target),
        Arc::new(MemoryState::new()),
        options,
    )
    .await
    .expect("run");
    assert_eq!(
        inner.messages(&FolderPath::inbox()).len(),
        1,
        "stored once: {:?}",
        report.totals
    );
    assert_eq!(report.totals.copied, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_claim_each_others_duplicate() {
    let source = MemoryStore::new();
    for _ in 0..2 {
        source.insert(
            &FolderPath::inbox(),
            Bytes::from_static(b"Message-ID: <a@b>\r\n\r\nsame\r\n"),
            Flags::default(),
            None,
        );
    }
    let inner = MemoryStore::new();
    // Writer A stores item 1 and acknowledges slowly; writer B's first append of item 2 is
    // cut, and its resolution must not take A's copy for its own.
    let target = Hooked::new(
        Arc::new(inner.clone()),
        Scripted {
            cut_first_append_of: Some("2"),
            slow_ack_of: Some("1"),
            ..Scripted::default()
        },
    );
    let options = CopyOptions {
        batch_items: 1,
        writers_per_folder: 2,
        backoff: std::time::Duration::from_millis(20),
        ..CopyOptions::default()
    };
    let report = run(
        Arc::new(source),
        Arc::new(target),
        Arc::new(MemoryState::new()),
        options,
    )
    .await
    .expect("run");
    assert_eq!(
        inner.messages(&FolderPath::inbox()).len(),
        2,
        "both copies of the duplicate arrive: {:?}",
        report.totals
    );
}

#[test]
fn big_folders_get_bigger_batches_within_the_bounds() {
    let options = CopyOptions::default();
    assert_eq!(
        options.batch_items_for(0),
        128,
        "an unknown count keeps the base"
    );
    assert_eq!(options.batch_items_for(5_000), 128);
    assert_eq!(options.batch_items_for(200_000), 781);
    assert_eq!(options.batch_items_for(10_000_000), 1024);
    let fixed = CopyOptions {
        batch_items: 16,
        batch_items_max: 16,
        ..CopyOptions::default()
    };
    assert_eq!(fixed.batch_items_for(10_000_000), 16);
    let small_max = CopyOptions {
        batch_items: 64,
        batch_items_max: 8,
        ..CopyOptions::default()
    };
    assert_eq!(
        small_max.batch_items_for(1_000_000),
        64,
        "the base wins over a smaller max"
    );
}

/// A batch holding the budget does not linger while the producer waits for that budget: with
/// a budget of one item and a 30 s linger, lingering would cost 30 s per item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_goes_at_once_when_the_producer_waits_for_its_budget() {
    let source = source_with(4, 100_000);
    let target = MemoryStore::new();
    let options = CopyOptions {
        byte_budget: 150_000,
        batch_linger: std::time::Duration::from_secs(30),
        ..CopyOptions::default()
    };
    let copy = run(
        Arc::new(source),
        Arc::new(target.clone()),
        Arc::new(MemoryState::new()),
        options,
    );
    let report = tokio::time::timeout(std::time::Duration::from_secs(15), copy)
        .await
        .expect("the copy waited out the linger with the producer starved")
        .expect("run");
    assert_eq!(report.totals.copied, 4);
    assert_eq!(target.messages(&FolderPath::inbox()).len(), 4);
}
