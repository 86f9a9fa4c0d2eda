//! The backend conformance suite: scenarios every backend must pass, run through the real
//! copier. A backend under test is both a [`Target`] (the fixture is copied into it) and a
//! [`Source`] (it is copied back out into memory), and what comes back must equal the fixture:
//! the folder tree, every message's canonical checksum (byte-identical duplicates included),
//! flags and keywords, internal dates, special-use roles.
//!
//! It is the contract of the backend traits: every method of [`Source`] and [`Target`] is
//! exercised (listing, fetching, appending, `existing`, `read_back`, `set_flags`, `delete`), and
//! so are the error-kind rules the engine relies on (a missing folder is never fatal; a
//! transient fault is recovered without a duplicate). Copies run with the engine's layers on
//! (retry included), as every real run does.
//!
//! Instantiate it per backend with [`conformance_tests!`](crate::conformance_tests):
//!
//! ```text
//! mailferry_testkit::conformance_tests!(async { my_backend_in_a_tempdir() });
//! ```

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use mailferry_core::layers::{LayerOptions, LayerStack, Metrics, RetryPolicy};
use mailferry_core::normalise::canonicalise;
use mailferry_core::{
    Checksum, Copier, CopyOptions, ErrorKind, Flags, FolderJob, FolderPath, Hooked, HookedSource,
    InternalDate, MemoryState, MemoryStore, Report, Source, SpecialUse, Target,
};

use crate::faulty::{Call, Faults};

/// A backend under test: one store seen as source and as target, plus whatever keeps it alive
/// (a temp dir, a server).
pub struct Backend {
    /// The store as a source.
    pub source: Arc<dyn Source>,
    /// The same store as a target.
    pub target: Arc<dyn Target>,
    /// Dropped at the end of the test.
    pub guard: Box<dyn Any + Send>,
}

/// Size of the large message in the fixture.
pub const BIG_MESSAGE_BYTES: usize = 20 << 20;

fn date(n: i64) -> Option<InternalDate> {
    Some(InternalDate {
        timestamp: 1_700_000_000 + n * 86_400,
        offset_minutes: 60,
    })
}

fn flags(tokens: &[&str]) -> Flags {
    Flags::from_imap(tokens.iter().copied())
}

/// The folders of the fixture, in creation order.
pub fn fixture_folders() -> Vec<(FolderPath, Option<SpecialUse>)> {
    vec![
        (FolderPath::inbox(), None),
        (FolderPath::new(["Archive", "2020"]), None),
        (FolderPath::new(["Ünïcødé", "Sub folder"]), None),
        (FolderPath::new(["Sent"]), Some(SpecialUse::Sent)),
        (FolderPath::new(["Empty"]), None),
        (FolderPath::new(["Big"]), None),
    ]
}

fn big_message() -> Bytes {
    let mut m = b"Message-ID: <big@conformance.test>\r\nSubject: a 20 MB message\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    let line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
    while m.len() + line.len() <= BIG_MESSAGE_BYTES {
        m.extend_from_slice(line);
    }
    Bytes::from(m)
}

/// The fixture: every awkward case in a memory store.
pub fn fixture() -> MemoryStore {
    let store = MemoryStore::new();
    for (path, special_use) in fixture_folders() {
        store.create_folder(&path, special_use);
    }
    let inbox = FolderPath::inbox();
    let plain = Bytes::from_static(
        b"Message-ID: <one@conformance.test>\r\nFrom: Ann <ann@example.org>\r\nSubject: plain\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\nHello.\r\n",
    );
    store.insert(
        &inbox,
        plain.clone(),
        flags(&["\\Seen", "\\Flagged", "$Forwarded", "Project-X"]),
        date(0),
    );
    store.insert(
        &inbox,
        Bytes::from_static(b"Message-ID: <lf@conformance.test>\nSubject: bare LF line endings\n\nline one\nline two\n"),
        flags(&["\\Answered"]),
        date(1),
    );
    store.insert(
        &inbox,
        Bytes::from_static(
            b"From: nobody@example.org\r\nSubject: no message id\r\n\r\nNo Message-ID here.\r\n",
        ),
        flags(&["\\Draft"]),
        date(2),
    );
    // A byte-identical duplicate: both copies must arrive.
    store.insert(&inbox, plain, flags(&["\\Seen"]), date(3));
    store.insert(
        &inbox,
        Bytes::from_static(b"Message-ID: <empty@conformance.test>\r\nSubject: empty body\r\n\r\n"),
        Flags::default(),
        date(4),
    );
    store.insert(
        &inbox,
        Bytes::from_static(b"Message-ID: <one@conformance.test>\r\nSubject: reused Message-ID, other body\r\n\r\nDifferent.\r\n"),
        flags(&["\\Seen", "\\Deleted"]),
        date(5),
    );
    store.insert(
        &inbox,
        Bytes::from_static("Message-ID: <8bit@conformance.test>\r\nSubject: Grüße aus Köln\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nÄpfel und Bären.\r\n".as_bytes()),
        flags(&["\\Seen"]),
        date(6),
    );
    for i in 0..3 {
        store.insert(
            &FolderPath::new(["Archive", "2020"]),
            Bytes::from(format!("Message-ID: <archive{i}@conformance.test>\r\nSubject: archived {i}\r\n\r\nOld mail {i}.\r\n")),
            flags(&["\\Seen"]),
            date(10 + i),
        );
    }
    for i in 0..2 {
        store.insert(
            &FolderPath::new(["Ünïcødé", "Sub folder"]),
            Bytes::from(format!("Message-ID: <uni{i}@conformance.test>\r\nSubject: unicode folder {i}\r\n\r\nBody {i}.\r\n")),
            Flags::default(),
            date(20 + i),
        );
    }
    store.insert(
        &FolderPath::new(["Sent"]),
        Bytes::from_static(
            b"Message-ID: <sent@conformance.test>\r\nSubject: sent mail\r\n\r\nI sent this.\r\n",
        ),
        flags(&["\\Seen"]),
        date(30),
    );
    store.insert(
        &FolderPath::new(["Big"]),
        big_message(),
        Flags::default(),
        date(40),
    );
    store
}

/// The engine's layers as a run puts them on, with a short retry schedule.
fn layers() -> LayerStack {
    let options = LayerOptions {
        retry: RetryPolicy {
            attempts: 5,
            first_delay_ms: 5,
            max_delay_ms: 50,
        },
        ..LayerOptions::default()
    };
    LayerStack::new(options, Arc::new(Metrics::new()))
}

/// Copies every folder of `source` to `target` with default options and the given state,
/// through the engine's layers.
pub async fn copy_all(
    source: Arc<dyn Source>,
    target: Arc<dyn Target>,
    state: Arc<MemoryState>,
) -> Report {
    let layers = layers();
    let options = CopyOptions {
        backoff: std::time::Duration::from_millis(5),
        ..CopyOptions::default()
    };
    let copier = Copier::new(layers.source(source), layers.target(target), state, options);
    let jobs: Vec<FolderJob> = copier.identity_plan().await.expect("list source folders");
    copier.run(jobs).await.expect("copy")
}

/// What is compared per message: checksum, flags (keywords only where supported), date.
type Fingerprint = (Checksum, Vec<String>, Option<i64>);

fn contents(
    store: &MemoryStore,
    folder: &FolderPath,
    keywords: bool,
    dates: bool,
) -> Vec<Fingerprint> {
    let mut v: Vec<Fingerprint> = store
        .messages(folder)
        .into_values()
        .map(|m| {
            let (canonical, _) = canonicalise(m.body);
            let mut f = m.flags;
            if !keywords {
                f.keywords.clear();
            }
            (
                Checksum::of(&canonical),
                f.imap_tokens().into_iter().map(str::to_string).collect(),
                m.internal_date.filter(|_| dates).map(|d| d.timestamp),
            )
        })
        .collect();
    v.sort();
    v
}

/// Fixture → backend → memory: everything arrives exactly once, unchanged.
pub async fn round_trip(backend: &Backend) {
    let fixture = fixture();
    let report = copy_all(
        Arc::new(fixture.clone()),
        Arc::clone(&backend.target),
        Arc::new(MemoryState::new()),
    )
    .await;
    assert_eq!(
        report.totals.failed, 0,
        "fixture → backend failed: {report:#?}"
    );
    assert_eq!(
        report.totals.copied, 14,
        "fixture → backend: {:?}",
        report.totals
    );

    let back = MemoryStore::new();
    let report = copy_all(
        Arc::clone(&backend.source),
        Arc::new(back.clone()),
        Arc::new(MemoryState::new()),
    )
    .await;
    assert_eq!(
        report.totals.failed, 0,
        "backend → memory failed: {report:#?}"
    );
    let caps = backend.source.capabilities();
    for (path, _) in fixture_folders() {
        assert!(
            back.folder_paths().contains(&path),
            "folder {path} did not come back; got {:?}",
            back.folder_paths()
        );
        assert_eq!(
            contents(&back, &path, caps.keywords, caps.internal_date),
            contents(&fixture, &path, caps.keywords, caps.internal_date),
            "contents of {path} differ after the round trip"
        );
    }
    // Extra folders may only be parents of fixture folders, and empty.
    for path in back.folder_paths() {
        let expected = fixture_folders()
            .iter()
            .any(|(p, _)| *p == path || p.segments().starts_with(path.segments()));
        assert!(
            expected || back.messages(&path).is_empty(),
            "unexpected non-empty folder {path}"
        );
    }
    if caps.special_use {
        let folders = backend.source.list_folders().await.expect("list folders");
        let sent = folders
            .iter()
            .find(|f| f.special_use == Some(SpecialUse::Sent))
            .unwrap_or_else(|| panic!("no \\Sent folder in {folders:#?}"));
        assert_eq!(sent.path.name(), Some("Sent"));
    }
}

/// A second copy with the same state copies nothing; a new message is the only thing copied.
pub async fn incremental(backend: &Backend) {
    let fixture = fixture();
    let state = Arc::new(MemoryState::new());
    let first = copy_all(
        Arc::new(fixture.clone()),
        Arc::clone(&backend.target),
        Arc::clone(&state),
    )
    .await;
    assert_eq!(first.totals.copied, 14);
    let second = copy_all(
        Arc::new(fixture.clone()),
        Arc::clone(&backend.target),
        Arc::clone(&state),
    )
    .await;
    assert_eq!(
        second.totals.copied, 0,
        "re-run copied again: {:?}",
        second.totals
    );
    assert_eq!(second.totals.failed, 0);
    fixture.insert(
        &FolderPath::inbox(),
        Bytes::from_static(b"Message-ID: <new@conformance.test>\r\nSubject: new\r\n\r\nnew\r\n"),
        Flags::default(),
        date(50),
    );
    let third = copy_all(Arc::new(fixture), Arc::clone(&backend.target), state).await;
    assert_eq!(third.totals.copied, 1, "{:?}", third.totals);
    let listed = backend.target.existing(&FolderPath::inbox()).count().await;
    assert_eq!(
        listed, 8,
        "INBOX should hold the 7 fixture messages and the new one"
    );
}

/// First contact with a target that already holds the mail (another tool copied it, or the
/// state was lost): nothing is copied twice, and existing items are reported as such.
pub async fn dedupe_on_first_contact(backend: &Backend) {
    let fixture = fixture();
    copy_all(
        Arc::new(fixture.clone()),
        Arc::clone(&backend.target),
        Arc::new(MemoryState::new()),
    )
    .await;
    let again = copy_all(
        Arc::new(fixture),
        Arc::clone(&backend.target),
        Arc::new(MemoryState::new()),
    )
    .await;
    assert_eq!(
        again.totals.copied, 0,
        "copied again with a lost state: {:?}",
        again.totals
    );
    assert_eq!(again.totals.skipped_existing, 14);
}

/// `existing` lists canonical sizes and fingerprints; `read_back` returns the same bytes.
pub async fn existing_and_read_back_agree(backend: &Backend) {
    let fixture = fixture();
    copy_all(
        Arc::new(fixture.clone()),
        Arc::clone(&backend.target),
        Arc::new(MemoryState::new()),
    )
    .await;
    let inbox = FolderPath::inbox();
    let existing: Vec<_> = backend
        .target
        .existing(&inbox)
        .map(|r| r.expect("existing"))
        .collect()
        .await;
    assert_eq!(existing.len(), 7);
    let mut expected: BTreeMap<u64, usize> = BTreeMap::new();
    for m in fixture.messages(&inbox).values() {
        *expected
            .entry(canonicalise(m.body.clone()).0.len() as u64)
            .or_default() += 1;
    }
    let mut sizes: BTreeMap<u64, usize> = BTreeMap::new();
    for e in &existing {
        *sizes.entry(e.size).or_default() += 1;
    }
    assert_eq!(sizes, expected, "existing() must report canonical sizes");
    assert!(
        existing
            .iter()
            .filter(|e| e.fingerprint.as_deref() == Some("id:one@conformance.test"))
            .count()
            == 3,
        "Message-IDs are listed as fingerprints: {existing:#?}"
    );
    let keys = existing.iter().map(|e| e.key.clone()).collect();
    let mut back: Vec<Checksum> = backend
        .target
        .read_back(&inbox, keys)
        .map(|r| Checksum::of(&canonicalise(r.expect("read back").1.body).0))
        .collect()
        .await;
    back.sort();
    let mut want: Vec<Checksum> = fixture
        .messages(&inbox)
        .into_values()
        .map(|m| Checksum::of(&canonicalise(m.body).0))
        .collect();
    want.sort();
    assert_eq!(back, want);
}

/// `set_flags` replaces flags where the backend says it can, and refuses (fatal) where it says
/// it cannot; `delete` likewise. Both act on exactly the keys given.
pub async fn flags_and_delete(backend: &Backend) {
    let fixture = fixture();
    copy_all(
        Arc::new(fixture),
        Arc::clone(&backend.target),
        Arc::new(MemoryState::new()),
    )
    .await;
    let inbox = FolderPath::inbox();
    let listed = |target: Arc<dyn Target>| async move {
        let mut v: Vec<_> = target
            .existing(&FolderPath::inbox())
            .map(|r| r.expect("existing"))
            .collect()
            .await;
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    };
    let before = listed(Arc::clone(&backend.target)).await;
    assert_eq!(before.len(), 7);
    let caps = backend.target.capabilities();
    let chosen = before[0].key.clone();
    let flagged = Flags::from_imap(["\\Flagged", "\\Answered"]);
    let set = backend
        .target
        .set_flags(&inbox, vec![(chosen.clone(), flagged.clone())])
        .await;
    if caps.set_flags {
        set.expect("set_flags on a backend that can");
        let after = listed(Arc::clone(&backend.target)).await;
        // A backend may rename an item when its flags change (Maildir): find it by position of
        // the untouched ones.
        let changed: Vec<_> = after.iter().filter(|e| e.flags == flagged).collect();
        assert_eq!(
            changed.len(),
            1,
            "exactly the chosen item changed: {after:#?}"
        );
        assert_eq!(after.len(), 7);
    } else {
        let e = set.expect_err("set_flags on a backend that cannot");
        assert_eq!(e.kind(), ErrorKind::Fatal, "{e}");
    }
    let keys_now = listed(Arc::clone(&backend.target)).await;
    let gone = keys_now[keys_now.len() - 1].key.clone();
    let deleted = backend.target.delete(&inbox, vec![gone.clone()]).await;
    if caps.delete {
        deleted.expect("delete on a backend that can");
        let after = listed(Arc::clone(&backend.target)).await;
        assert_eq!(after.len(), 6, "one item deleted");
        assert!(after.iter().all(|e| e.key != gone));
    } else {
        let e = deleted.expect_err("delete on a backend that cannot");
        assert_eq!(e.kind(), ErrorKind::Fatal, "{e}");
    }
}

/// A folder that does not exist is never fatal: `existing` lists nothing, `list_items` lists
/// nothing or says so with an item error.
pub async fn missing_folder_is_not_fatal(backend: &Backend) {
    let missing = FolderPath::new(["No such folder"]);
    let existing: Vec<_> = backend.target.existing(&missing).collect().await;
    assert!(
        existing.iter().all(|r| r.is_ok()) && existing.is_empty(),
        "existing() of a missing folder: {existing:?}"
    );
    let listed: Vec<_> = backend.source.list_items(&missing, None).collect().await;
    for r in &listed {
        match r {
            Ok(meta) => panic!("a missing folder listed {meta:?}"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Item, "{e}"),
        }
    }
}

/// Transient faults are recovered: listings that fail at first are retried by the retry layer,
/// and an append whose answer was lost after it landed is resolved by the copier, not repeated:
/// everything arrives exactly once.
pub async fn transient_faults_are_recovered(backend: &Backend) {
    let fixture = fixture();
    let target_faults = Arc::new(
        Faults::new()
            .fail(Call::ListFolders, 0, 2, ErrorKind::Transient)
            .fail(Call::Existing, 0, 1, ErrorKind::Transient)
            .after_landing(Call::Append, 1, 1, ErrorKind::Transient),
    );
    let target: Arc<dyn Target> = Arc::new(Hooked::new(
        Arc::clone(&backend.target),
        Arc::clone(&target_faults),
    ));
    let report = copy_all(
        Arc::new(fixture.clone()),
        target,
        Arc::new(MemoryState::new()),
    )
    .await;
    assert_eq!(report.totals.failed, 0, "{report:#?}");
    assert_eq!(report.totals.copied, 14, "{:?}", report.totals);
    assert_eq!(target_faults.failures(Call::Append), 1, "the fault was hit");

    let source_faults = Arc::new(
        Faults::new()
            .fail(Call::ListFolders, 0, 1, ErrorKind::Transient)
            .fail(Call::ListItems, 0, 1, ErrorKind::Transient),
    );
    let source: Arc<dyn Source> = Arc::new(HookedSource::new(
        Arc::clone(&backend.source),
        Arc::clone(&source_faults),
    ));
    let back = MemoryStore::new();
    let report = copy_all(source, Arc::new(back.clone()), Arc::new(MemoryState::new())).await;
    assert_eq!(report.totals.failed, 0, "{report:#?}");
    assert_eq!(source_faults.failures(Call::ListItems), 1);
    let caps = backend.source.capabilities();
    for (path, _) in fixture_folders() {
        assert_eq!(
            contents(&back, &path, caps.keywords, caps.internal_date),
            contents(&fixture, &path, caps.keywords, caps.internal_date),
            "{path}: every message exactly once after the faults"
        );
    }
}

/// Instantiates the conformance suite for a backend. The argument is an expression of type
/// `impl Future<Output = Backend>` that makes a fresh, empty backend.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_round_trip_keeps_bytes_flags_dates_and_tree() {
            let backend = $make.await;
            $crate::conformance::round_trip(&backend).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_rerun_copies_only_what_is_new() {
            let backend = $make.await;
            $crate::conformance::incremental(&backend).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_first_contact_skips_what_the_target_holds() {
            let backend = $make.await;
            $crate::conformance::dedupe_on_first_contact(&backend).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_existing_and_read_back_agree() {
            let backend = $make.await;
            $crate::conformance::existing_and_read_back_agree(&backend).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_set_flags_and_delete_act_on_exactly_the_keys_given() {
            let backend = $make.await;
            $crate::conformance::flags_and_delete(&backend).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_a_missing_folder_is_not_fatal() {
            let backend = $make.await;
            $crate::conformance::missing_folder_is_not_fatal(&backend).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_transient_faults_are_recovered_exactly_once() {
            let backend = $make.await;
            $crate::conformance::transient_faults_are_recovered(&backend).await;
        }
    };
}
