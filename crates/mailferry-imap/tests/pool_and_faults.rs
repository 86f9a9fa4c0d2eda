//! The pool under pressure: one session per store must not deadlock the copier (which keeps a
//! listing open while it fetches and appends), and connections cut mid-transfer are retried on
//! fresh sessions without losing or duplicating anything, from Dovecot and from Cyrus.

mod common;

use std::sync::Arc;
use std::time::Duration;

use mailferry_core::{Copier, CopyOptions, FolderPath, MemoryState, MemoryStore, Source, Target};
use mailferry_imap::ImapStore;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::server::munge_8bit_headers;
use mailferry_testkit::{Proxy, ProxyOptions, ServerKind};

async fn copy(source: Arc<dyn Source>, target: Arc<dyn Target>) -> mailferry_core::Report {
    let copier = Copier::new(
        source,
        target,
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    );
    let plan = copier.identity_plan().await.expect("plan");
    tokio::time::timeout(Duration::from_secs(180), copier.run(plan))
        .await
        .expect("the copy finished (no deadlock)")
        .expect("copy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_per_store_copies_without_deadlock() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let a = common::dovecot('.', "");
    let b = common::dovecot('/', "");
    let src = Arc::new(
        ImapStore::connect(common::config(&a).with_max_connections(1))
            .await
            .expect("connect a"),
    );
    let dst = Arc::new(
        ImapStore::connect(common::config(&b).with_max_connections(1))
            .await
            .expect("connect b"),
    );
    let fixture = mailferry_testkit::conformance::fixture();
    let first = copy(Arc::new(fixture), src.clone()).await;
    assert_eq!((first.totals.copied, first.totals.failed), (14, 0));
    let second = copy(src, dst.clone()).await;
    assert_eq!(
        (second.totals.copied, second.totals.failed),
        (14, 0),
        "{second:#?}"
    );
    let back = MemoryStore::new();
    let third = copy(dst, Arc::new(back.clone())).await;
    assert_eq!(third.totals.copied, 14);
    assert_eq!(back.messages(&FolderPath::inbox()).len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_mid_fetch_are_retried_without_loss_or_duplicates() {
    cut_mid_fetch(ServerKind::Dovecot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_cyrus_cut_mid_fetch_are_retried_without_loss_or_duplicates() {
    cut_mid_fetch(ServerKind::Cyrus).await;
}

/// A source behind a proxy that cuts every connection after 250 KB: the copy completes through
/// new sessions, with every message exactly once (as the server stores it).
async fn cut_mid_fetch(kind: ServerKind) {
    if !kind.available() {
        return;
    }
    let d = kind.start('.').expect("start the server");
    let d = &*d;
    let spec = CorpusSpec::new(300, SizeMix::small()).with_quirks();
    let generated = spec.messages();
    d.fill(d.login().0, generated.clone()).expect("fill");
    let upstream = format!("{}:{}", d.host(), d.imaps_port())
        .parse()
        .expect("address");
    let proxy = Proxy::start(upstream, ProxyOptions::default())
        .await
        .expect("proxy");
    let mut config = common::config(d);
    config.port = proxy.addr().port();
    let source = Arc::new(ImapStore::connect(config).await.expect("connect"));
    // Every new connection dies after 250 KB; the pooled one dies now.
    proxy.set_cut_after_bytes(Some(250_000));
    proxy.cut_all();

    let back = MemoryStore::new();
    let report = copy(source, Arc::new(back.clone())).await;
    assert_eq!(report.totals.failed, 0, "{report:#?}");
    assert_eq!(report.totals.copied, 300, "{:?}", report.totals);
    assert!(
        proxy.cuts() >= 2,
        "the proxy cut {} connections",
        proxy.cuts()
    );
    let mut got: Vec<_> = back
        .messages(&FolderPath::inbox())
        .into_values()
        .map(|m| mailferry_core::normalise::canonicalise(m.body).0)
        .collect();
    let mut want: Vec<_> = generated
        .into_iter()
        .map(|m| {
            let body = if d.rewrites_8bit_headers() {
                munge_8bit_headers(&m.body).into()
            } else {
                m.body
            };
            mailferry_core::normalise::canonicalise(body).0
        })
        .collect();
    got.sort();
    want.sort();
    assert!(
        got == want,
        "the messages that arrived differ from the corpus"
    );
}
