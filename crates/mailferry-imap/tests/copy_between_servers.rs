//! End to end: a generated corpus (quirks included: LF-only messages, duplicates, no
//! Message-ID, 8-bit headers, keywords, a few 5–15 MB messages) over nested and non-ASCII
//! folders in a Dovecot with `'/'` is copied to a Dovecot with `'.'`. Both servers are then read
//! back (into memory stores, through the same backend) and compared per folder as multisets of
//! (canonical checksum, flags and keywords, internal date), and against the generated corpus
//! itself: every message arrives exactly once per copy in the source, unchanged.
//!
//! The same corpus also goes Dovecot → Cyrus → Dovecot: Cyrus (default configuration, folders
//! under `INBOX.`) must hold every message exactly once, byte-identical except for the one change
//! it is known to make (8-bit header bytes become `X`), and the second Dovecot must hold exactly
//! what Cyrus holds.

mod common;

use std::sync::Arc;
use std::time::Instant;

use mailferry_core::{
    Copier, CopyOptions, FolderPath, MemoryState, MemoryStore, Report, Source, Target,
};
use mailferry_testkit::contents::contents_of;
use mailferry_testkit::corpus::{CorpusSpec, GeneratedMessage, SizeMix};
use mailferry_testkit::server::munge_8bit_headers;
use mailferry_testkit::{ImapServer, ServerKind};

async fn copy(source: Arc<dyn Source>, target: Arc<dyn Target>) -> Report {
    let copier = Copier::new(
        source,
        target,
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    );
    let plan = copier.identity_plan().await.expect("plan");
    copier.run(plan).await.expect("copy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_a_corpus_between_dovecots_with_different_delimiters_faithfully() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let folders = vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2019"]),
        FolderPath::new(["Archive", "2020", "Q1"]),
        FolderPath::new(["Ünïcødé", "Sub folder"]),
        FolderPath::new(["Sent"]),
        FolderPath::new(["Projets & Idées"]),
    ];
    let spec = CorpusSpec::new(1_000, SizeMix::realistic())
        .with_quirks()
        .in_folders(folders);
    let generated = spec.messages();
    let expected_bytes: usize = generated.iter().map(|m| m.body.len()).sum();
    let huge = generated
        .iter()
        .filter(|m| m.body.len() > 5_000_000)
        .count();
    assert!(huge >= 2, "the corpus has a few 5–15 MB messages ({huge})");
    let expected = MemoryStore::new();
    for m in &generated {
        expected.insert(
            &m.folder,
            m.body.clone(),
            m.flags.clone(),
            Some(m.internal_date),
        );
    }

    let src_server = common::dovecot('/', "");
    src_server
        .fill(src_server.login().0, generated)
        .expect("fill the source");
    let dst_server = common::dovecot('.', "");
    let source = Arc::new(common::store(&src_server).await);
    let target = Arc::new(common::store(&dst_server).await);

    let started = Instant::now();
    let report = copy(source.clone(), target.clone()).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(report.totals.failed, 0, "{report:#?}");
    assert_eq!(report.totals.copied, 1_000, "{:?}", report.totals);
    eprintln!(
        "IMAP→IMAP copy: 1000 messages, {:.1} MB in {secs:.2} s = {:.0} msgs/s, {:.1} MB/s",
        expected_bytes as f64 / 1e6,
        1_000.0 / secs,
        expected_bytes as f64 / 1e6 / secs
    );

    let source_back = MemoryStore::new();
    let r = copy(source.clone(), Arc::new(source_back.clone())).await;
    assert_eq!(r.totals.failed, 0, "{r:#?}");
    let target_back = MemoryStore::new();
    let r = copy(target.clone(), Arc::new(target_back.clone())).await;
    assert_eq!(r.totals.failed, 0, "{r:#?}");

    let want = contents_of(&expected);
    let from_source = contents_of(&source_back);
    let from_target = contents_of(&target_back);
    assert_eq!(
        from_source.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the source holds the generated folders"
    );
    for (path, messages) in &want {
        assert_eq!(
            from_source.get(path),
            Some(messages),
            "source {path} differs from the corpus"
        );
        assert_eq!(
            from_target.get(path),
            Some(messages),
            "target {path} differs from the source"
        );
    }
    assert_eq!(
        from_target.len(),
        want.len(),
        "no extra non-empty folders in the target"
    );

    let tree = |folders: Vec<mailferry_core::Folder>| {
        let mut paths: Vec<FolderPath> = folders.into_iter().map(|f| f.path).collect();
        paths.sort();
        paths
    };
    let src_tree = tree(
        Source::list_folders(&*source)
            .await
            .expect("source folders"),
    );
    let dst_tree = tree(
        Source::list_folders(&*target)
            .await
            .expect("target folders"),
    );
    assert_eq!(src_tree, dst_tree, "folder trees differ");
}

fn corpus_folders() -> Vec<FolderPath> {
    vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2019"]),
        FolderPath::new(["Archive", "2020", "Q1"]),
        FolderPath::new(["Ünïcødé", "Sub folder"]),
        FolderPath::new(["Sent"]),
        FolderPath::new(["Projets & Idées"]),
    ]
}

/// What a server stores for `generated`: the messages themselves, or with 8-bit header bytes
/// rewritten where the server does that.
fn as_stored(generated: &[GeneratedMessage], server: &dyn ImapServer) -> MemoryStore {
    let store = MemoryStore::new();
    for m in generated {
        let body = if server.rewrites_8bit_headers() {
            munge_8bit_headers(&m.body).into()
        } else {
            m.body.clone()
        };
        store.insert(&m.folder, body, m.flags.clone(), Some(m.internal_date));
    }
    store
}

/// Reads a server back into memory through the backend.
async fn read_back(server: &dyn ImapServer) -> MemoryStore {
    let back = MemoryStore::new();
    let r = copy(
        Arc::new(common::store(server).await),
        Arc::new(back.clone()),
    )
    .await;
    assert_eq!(
        r.totals.failed,
        0,
        "reading back {:?}: {r:#?}",
        server.kind()
    );
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_a_corpus_dovecot_to_cyrus_to_dovecot_with_only_the_rewrite_cyrus_makes() {
    if !ServerKind::Dovecot.available() || !ServerKind::Cyrus.available() {
        return;
    }
    let generated = CorpusSpec::new(600, SizeMix::realistic())
        .with_quirks()
        .in_folders(corpus_folders())
        .messages();
    let rewritten = generated
        .iter()
        .filter(|m| munge_8bit_headers(&m.body) != m.body.as_ref())
        .count();
    assert!(rewritten > 0, "the corpus has messages with 8-bit headers");

    let first = ServerKind::Dovecot.start('/').expect("start dovecot");
    first
        .fill(first.login().0, generated.clone())
        .expect("fill the source");
    let cyrus = ServerKind::Cyrus.start('.').expect("start cyrus");
    let last = ServerKind::Dovecot.start('.').expect("start dovecot");

    for (from, to) in [(&first, &cyrus), (&cyrus, &last)] {
        let report = copy(
            Arc::new(common::store(&**from).await),
            Arc::new(common::store(&**to).await),
        )
        .await;
        assert_eq!(
            report.totals.failed,
            0,
            "{:?} → {:?}: {report:#?}",
            from.kind(),
            to.kind()
        );
        assert_eq!(report.totals.copied, 600, "{:?}", report.totals);
    }

    let want_cyrus = contents_of(&as_stored(&generated, &*cyrus));
    let in_cyrus = contents_of(&read_back(&*cyrus).await);
    let in_last = contents_of(&read_back(&*last).await);
    assert_eq!(
        in_cyrus.keys().collect::<Vec<_>>(),
        want_cyrus.keys().collect::<Vec<_>>(),
        "Cyrus holds the generated folders"
    );
    for (path, messages) in &want_cyrus {
        assert_eq!(
            in_cyrus.get(path),
            Some(messages),
            "Cyrus {path} differs from the corpus beyond the 8-bit header rewrite"
        );
    }
    assert_eq!(in_last, in_cyrus, "Dovecot after Cyrus differs from Cyrus");
    eprintln!(
        "Dovecot → Cyrus → Dovecot: 600 messages, {rewritten} with 8-bit headers rewritten by \
         Cyrus, all others byte-identical"
    );
}
