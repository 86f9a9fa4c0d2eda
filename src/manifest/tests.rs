use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mailferry_core::bytes::Bytes;
use mailferry_core::{
    AppendOutcome, BoxFuture, CanonicalItem, Checksum, Copier, CopyOptions, Error, Flags,
    FolderPath, FolderScope, FolderStatus, Hooked, InternalDate, ItemRecord, ItemStatus,
    MemoryState, MemoryStore, Result, SourceKey, StateStore, Target, TargetHook, TargetKey,
};

use super::*;
use mailferry_core::Suspect;

/// Stores the first batch but answers it with a transient error: the acknowledgement lost on
/// the way, so the copier finds the items in the target by resolution, not by the append's
/// outcome.
struct LostFirstAck {
    calls: AtomicUsize,
}

impl TargetHook for LostFirstAck {
    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            let stored = inner.append(folder, batch).await?;
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(Error::transient("connection reset after the append"));
            }
            Ok(stored)
        })
    }
}

/// A state store that, whenever an item is recorded done, checks that its line is already in
/// the manifest file: the order that makes the manifest complete whenever the process dies.
struct LineBeforeDone {
    inner: MemoryState,
    manifest: std::path::PathBuf,
    violations: Mutex<Vec<String>>,
    /// Fail the first record with a done item, as a process killed after the manifest line
    /// and before the state's commit.
    fail_first_done: std::sync::atomic::AtomicBool,
}

impl StateStore for LineBeforeDone {
    fn checkpoint<'a>(
        &'a self,
        scope: &'a FolderScope,
    ) -> BoxFuture<'a, Result<Option<FolderStatus>>> {
        self.inner.checkpoint(scope)
    }
    fn set_checkpoint<'a>(
        &'a self,
        scope: &'a FolderScope,
        status: &'a FolderStatus,
    ) -> BoxFuture<'a, Result<()>> {
        self.inner.set_checkpoint(scope, status)
    }
    fn lookup<'a>(
        &'a self,
        scope: &'a FolderScope,
        keys: &'a [SourceKey],
    ) -> BoxFuture<'a, Result<HashMap<SourceKey, ItemRecord>>> {
        self.inner.lookup(scope, keys)
    }
    fn record<'a>(
        &'a self,
        scope: &'a FolderScope,
        records: &'a [ItemRecord],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let listed: Vec<String> = read(&self.manifest)?
                .entries
                .into_iter()
                .map(|e| e.source_key)
                .collect();
            for r in records.iter().filter(|r| r.status == ItemStatus::Done) {
                if !listed.contains(&r.key.to_string())
                    && let Ok(mut v) = self.violations.lock()
                {
                    v.push(r.key.to_string());
                }
            }
            if records.iter().any(|r| r.status == ItemStatus::Done)
                && self.fail_first_done.swap(false, Ordering::SeqCst)
            {
                return Err(Error::fatal("killed before the state committed"));
            }
            self.inner.record(scope, records).await
        })
    }
    fn records<'a>(
        &'a self,
        scope: &'a FolderScope,
        status: Option<ItemStatus>,
    ) -> BoxFuture<'a, Result<Vec<ItemRecord>>> {
        self.inner.records(scope, status)
    }
    fn validities<'a>(&'a self, scope: &'a FolderScope) -> BoxFuture<'a, Result<Vec<u64>>> {
        self.inner.validities(scope)
    }

    fn suspects<'a>(&'a self, scope: &'a FolderScope) -> BoxFuture<'a, Result<Vec<Suspect>>> {
        self.inner.suspects(scope)
    }

    fn add_suspects<'a>(
        &'a self,
        scope: &'a FolderScope,
        suspects: &'a [Suspect],
    ) -> BoxFuture<'a, Result<()>> {
        self.inner.add_suspects(scope, suspects)
    }

    fn remove_suspects<'a>(
        &'a self,
        scope: &'a FolderScope,
        ids: &'a [u64],
    ) -> BoxFuture<'a, Result<()>> {
        self.inner.remove_suspects(scope, ids)
    }
}

fn source(n: usize) -> MemoryStore {
    let store = MemoryStore::new();
    for i in 0..n {
        let folder = if i % 3 == 0 {
            FolderPath::new(["Archive"])
        } else {
            FolderPath::inbox()
        };
        let body = format!("Message-ID: <m{i}@test>\nSubject: {i}\n\nbody {i}\n");
        let flags = Flags {
            seen: i % 2 == 0,
            ..Flags::default()
        };
        store.insert(
            &folder,
            Bytes::from(body),
            flags,
            Some(InternalDate::from_timestamp(1_700_000_000 + i as i64)),
        );
    }
    store
}

async fn copy(
    source: &MemoryStore,
    target: Arc<dyn Target>,
    state: Arc<dyn StateStore>,
    recorder: &Arc<Recorder>,
) -> mailferry_core::Report {
    let copier = Copier::new(
        Arc::new(source.clone()),
        recorder.wrap_target(target),
        recorder.wrap_state(state),
        CopyOptions {
            backoff: std::time::Duration::from_millis(5),
            ..CopyOptions::default()
        },
    );
    let jobs = copier.identity_plan().await.expect("plan");
    copier.run(jobs).await.expect("copy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_copied_item_is_listed_before_it_is_recorded_done_and_only_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.jsonl.gz");
    let src = source(40);
    let stored = MemoryStore::new();
    let target = Arc::new(Hooked::new(
        Arc::new(stored.clone()),
        LostFirstAck {
            calls: AtomicUsize::new(0),
        },
    ));
    let state = Arc::new(LineBeforeDone {
        inner: MemoryState::new(),
        manifest: path.clone(),
        violations: Mutex::new(Vec::new()),
        fail_first_done: std::sync::atomic::AtomicBool::new(false),
    });
    let recorder = Recorder::create(&path, "test", []).expect("manifest");
    let report = copy(&src, target.clone(), state.clone(), &recorder).await;
    let summary = recorder.finish().expect("finish");
    assert_eq!(report.totals.copied, 40);
    assert_eq!(summary.entries, 40, "one line per copied item");
    assert!(
        state.violations.lock().expect("lock").is_empty(),
        "recorded done before listed: {:?}",
        state.violations.lock().expect("lock")
    );
    let contents = read(&path).expect("read");
    assert!(!contents.torn);
    assert_eq!(contents.headers.len(), 1);
    for e in &contents.entries {
        let key: u64 = e.target_key.parse().expect("a memory store key");
        let message = stored
            .messages(&e.target_folder)
            .remove(&key)
            .expect("listed key in the target");
        assert_eq!(Checksum::of(&message.body), e.checksum);
        assert_eq!(e.size, message.body.len() as u64);
    }
    assert!(check(&stored, &path).await.expect("check").is_match());

    // A re-run copies nothing and adds a member with no entries.
    let recorder = Recorder::create(&path, "test", []).expect("manifest");
    let again = copy(&src, target, state, &recorder).await;
    let summary = recorder.finish().expect("finish");
    assert_eq!((again.totals.copied, summary.entries), (0, 0));
    assert_eq!(summary.total_entries, 40);
    assert_eq!(read(&path).expect("read").headers.len(), 2);
}

fn entry(n: u32) -> Entry {
    Entry {
        folder: FolderPath::inbox(),
        source_key: n.to_string(),
        target_folder: FolderPath::inbox(),
        target_key: n.to_string(),
        size: 10,
        checksum: Checksum::of(&n.to_be_bytes()),
        flags: Some(vec!["\\Seen".into()]),
        internal_date: Some("17-Jul-1996 02:44:25 -0700".into()),
        message_id: None,
        recovered: false,
    }
}

#[test]
fn a_torn_member_of_a_killed_run_is_kept_up_to_its_last_batch_and_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.jsonl.gz");
    let header = Header {
        mailferry_manifest: FORMAT_VERSION,
        migration: "a -> b".into(),
        started_unix: None,
    };
    let mut writer = Writer::open(&path, &header).expect("open");
    writer.append(&[entry(1), entry(2)]).expect("append");
    writer.append(&[entry(3)]).expect("append");
    // What a kill -9 leaves: the flushed batches, no gzip trailer.
    let torn = dir.path().join("torn.jsonl.gz");
    std::fs::copy(&path, &torn).expect("copy");
    drop(writer);

    let contents = read(&torn).expect("read");
    assert!(contents.torn);
    assert_eq!(contents.entries, vec![entry(1), entry(2), entry(3)]);

    let mut writer = Writer::open(&torn, &header).expect("reopen");
    writer.append(&[entry(4)]).expect("append");
    let summary = writer.finish().expect("finish");
    assert_eq!((summary.entries, summary.total_entries), (1, 4));
    let contents = read(&torn).expect("read");
    assert!(!contents.torn);
    assert_eq!(contents.headers.len(), 2);
    assert_eq!(contents.entries.len(), 4);
    // And any gzip reader reads it whole.
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&torn).expect("open"))
        .read_to_string(&mut text)
        .expect("a valid gzip stream");
    assert_eq!(text.lines().count(), 6);
    assert_eq!(summary.blake3, digest(&torn).expect("digest"));
}

#[test]
fn a_line_that_is_not_a_manifest_line_is_named_by_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).expect("create"),
        flate2::Compression::default(),
    );
    std::io::Write::write_all(
        &mut gz,
        b"{\"mailferry_manifest\":1,\"migration\":\"x\",\"started_unix\":null}\nnot json\n",
    )
    .expect("write");
    gz.finish().expect("finish");
    let err = read(&path).expect_err("a bad line");
    assert!(err.to_string().contains("line 2"), "{err}");
}

/// Stores the first batch and then fails fatally: the run stops with that batch stored but
/// still pending in the state, as when the process is killed between the acknowledgement and
/// the state's record (the moment where the manifest has no line for the batch yet).
struct DiesAfterFirstAppend {
    calls: AtomicUsize,
}

impl TargetHook for DiesAfterFirstAppend {
    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            let stored = inner.append(folder, batch).await?;
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(Error::fatal("killed after the target stored the batch"));
            }
            Ok(stored)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_an_interrupted_run_stored_unlisted_are_listed_by_the_next_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.jsonl.gz");
    let src = source(30);
    let stored = MemoryStore::new();
    let state = Arc::new(MemoryState::new());
    let identity = || {
        [FolderPath::inbox(), FolderPath::new(["Archive"])]
            .into_iter()
            .map(|f| (f.clone(), f))
    };
    let recorder = Recorder::create(&path, "test", identity()).expect("manifest");
    let dying = Arc::new(Hooked::new(
        Arc::new(stored.clone()),
        DiesAfterFirstAppend {
            calls: AtomicUsize::new(0),
        },
    ));
    let copier = Copier::new(
        Arc::new(src.clone()),
        recorder.wrap_target(dying),
        recorder.wrap_state(state.clone()),
        CopyOptions::default(),
    );
    let jobs = copier.identity_plan().await.expect("plan");
    assert!(copier.run(jobs).await.is_err(), "the first run dies");
    let first = recorder.finish().expect("finish");
    let in_target = |f: &FolderPath| stored.messages(f).len() as u64;
    let held = in_target(&FolderPath::inbox()) + in_target(&FolderPath::new(["Archive"]));
    assert!(held > first.entries, "some stored items are unlisted");

    let recorder = Recorder::create(&path, "test", identity()).expect("manifest");
    let report = copy(&src, Arc::new(stored.clone()), state, &recorder).await;
    let second = recorder.finish().expect("finish");
    let contents = read(&path).expect("read");
    assert_eq!(
        stored.messages(&FolderPath::inbox()).len()
            + stored.messages(&FolderPath::new(["Archive"])).len(),
        30,
        "{report:?}"
    );
    assert_eq!(
        contents.entries.len(),
        30,
        "every stored message listed once"
    );
    let mut keys: Vec<(FolderPath, String)> = contents
        .entries
        .iter()
        .map(|e| (e.target_folder.clone(), e.target_key.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 30, "no message listed twice");
    let recovered = contents.entries.iter().filter(|e| e.recovered).count() as u64;
    assert_eq!(recovered, held - first.entries);
    assert_eq!(second.entries, report.totals.copied + recovered);
    assert!(check(&stored, &path).await.expect("check").is_match());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_written_just_before_a_kill_is_not_repeated_when_the_item_is_recovered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.jsonl.gz");
    let src = source(30);
    let stored = MemoryStore::new();
    let state = Arc::new(LineBeforeDone {
        inner: MemoryState::new(),
        manifest: path.clone(),
        violations: Mutex::new(Vec::new()),
        fail_first_done: std::sync::atomic::AtomicBool::new(true),
    });
    let identity = || {
        [FolderPath::inbox(), FolderPath::new(["Archive"])]
            .into_iter()
            .map(|f| (f.clone(), f))
    };
    let recorder = Recorder::create(&path, "test", identity()).expect("manifest");
    let copier = Copier::new(
        Arc::new(src.clone()),
        recorder.wrap_target(Arc::new(stored.clone())),
        recorder.wrap_state(state.clone()),
        CopyOptions::default(),
    );
    let jobs = copier.identity_plan().await.expect("plan");
    assert!(copier.run(jobs).await.is_err(), "the first run dies");
    recorder.finish().expect("finish");

    let recorder = Recorder::create(&path, "test", identity()).expect("manifest");
    copy(&src, Arc::new(stored.clone()), state, &recorder).await;
    recorder.finish().expect("finish");
    let contents = read(&path).expect("read");
    let mut keys: Vec<(FolderPath, String)> = contents
        .entries
        .iter()
        .map(|e| (e.target_folder.clone(), e.target_key.clone()))
        .collect();
    keys.sort();
    let listed = keys.len();
    keys.dedup();
    assert_eq!(
        (listed, keys.len()),
        (30, 30),
        "each stored message listed once"
    );
    assert!(check(&stored, &path).await.expect("check").is_match());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checking_in_small_passes_finds_the_same_differences() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.jsonl.gz");
    let src = source(40);
    let stored = MemoryStore::new();
    let recorder = Recorder::create(&path, "test", []).expect("manifest");
    copy(
        &src,
        Arc::new(stored.clone()),
        Arc::new(MemoryState::new()),
        &recorder,
    )
    .await;
    recorder.finish().expect("finish");
    // One message gone from each folder.
    for folder in [FolderPath::inbox(), FolderPath::new(["Archive"])] {
        let first = *stored.messages(&folder).keys().next().expect("a message");
        stored
            .delete(&folder, vec![TargetKey::from(first.to_string().as_str())])
            .await
            .expect("delete");
    }
    let whole = check(&stored, &path).await.expect("check");
    assert_eq!((whole.entries, whole.folders), (40, 2));
    assert_eq!(whole.differences.len(), 2, "{:?}", whole.differences);
    // Passes of one message each: every folder still in one pass of its own.
    for per_pass in [1, 5, 1_000] {
        let passes = check::check_in_passes(&stored, &path, per_pass)
            .await
            .expect("check");
        assert_eq!(passes, whole, "{per_pass} entries per pass");
    }
}
