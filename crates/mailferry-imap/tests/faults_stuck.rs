//! A server that stops answering mid-command — the connection stays open, no byte comes back —
//! is only noticed by the read timeout. These tests stall the proxies in front of both servers
//! mid-copy with `read_timeout` at 2 s and check that the stuck sessions are abandoned, the copy
//! completes on new connections (or once the stall is lifted), and everything arrives once.
//! Without the timeout the stalled copies would hang forever, so finishing within the bound is
//! the proof that it fired.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mailferry_core::normalise::canonicalise;
use mailferry_core::{
    Checksum, Copier, CopyOptions, FolderPath, MemoryState, MemoryStore, Progress, Report, Source,
    StateStore, Target,
};
use mailferry_imap::{Auth, ImapConfig, ImapStore, Security};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::{Dovecot, Proxy, ProxyOptions};

const MESSAGES: usize = 600;
const READ_TIMEOUT: Duration = Duration::from_secs(2);

fn via(d: &Dovecot, port: u16) -> ImapConfig {
    let (user, password) = d.login();
    let mut config = ImapConfig::new(
        d.host(),
        port,
        Security::Plaintext,
        Auth::Login {
            user: user.to_string(),
            password: password.into(),
        },
    );
    config.read_timeout = READ_TIMEOUT;
    config.connect_timeout = READ_TIMEOUT;
    config
}

/// Per folder, the sorted canonical checksums.
fn checksums(store: &MemoryStore) -> BTreeMap<FolderPath, Vec<Checksum>> {
    store
        .folder_paths()
        .into_iter()
        .map(|path| {
            let mut v: Vec<Checksum> = store
                .messages(&path)
                .into_values()
                .map(|m| Checksum::of(&canonicalise(m.body).0))
                .collect();
            v.sort();
            (path, v)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// Two servers behind proxies, the source filled; returns what the target must end up with.
struct Setup {
    src: Dovecot,
    dst: Dovecot,
    src_proxy: Arc<Proxy>,
    dst_proxy: Arc<Proxy>,
    expected: BTreeMap<FolderPath, Vec<Checksum>>,
}

async fn setup() -> Setup {
    let generated = CorpusSpec::new(MESSAGES, SizeMix::small())
        .with_quirks()
        .in_folders(vec![
            FolderPath::inbox(),
            FolderPath::new(["Archive"]),
            FolderPath::new(["Sent"]),
        ])
        .messages();
    let expected = MemoryStore::new();
    for m in &generated {
        expected.insert(&m.folder, m.body.clone(), m.flags.clone(), None);
    }
    let src = common::dovecot('.', "");
    src.fill(src.login().0, generated).expect("fill");
    let dst = common::dovecot('.', "");
    let proxy = |d: &Dovecot| {
        let upstream = format!("{}:{}", d.host(), d.imap_port())
            .parse()
            .expect("address");
        Proxy::start(upstream, ProxyOptions::default())
    };
    Setup {
        src_proxy: Arc::new(proxy(&src).await.expect("proxy")),
        dst_proxy: Arc::new(proxy(&dst).await.expect("proxy")),
        expected: checksums(&expected),
        src,
        dst,
    }
}

impl Setup {
    async fn stores(&self) -> (Arc<dyn Source>, Arc<dyn Target>) {
        let source = ImapStore::connect(via(&self.src, self.src_proxy.addr().port()))
            .await
            .expect("connect source");
        let target = ImapStore::connect(via(&self.dst, self.dst_proxy.addr().port()))
            .await
            .expect("connect target");
        (Arc::new(source), Arc::new(target))
    }

    /// Reads the target back directly and compares it with the corpus.
    async fn assert_target_complete(&self) {
        let direct: Arc<dyn Source> = Arc::new(
            ImapStore::connect(via(&self.dst, self.dst.imap_port()))
                .await
                .expect("connect for read-back"),
        );
        let back = MemoryStore::new();
        let copier = Copier::new(
            direct,
            Arc::new(back.clone()),
            Arc::new(MemoryState::new()),
            CopyOptions::default(),
        );
        let report = copier
            .run(copier.identity_plan().await.expect("plan"))
            .await
            .expect("read back");
        assert!(report.is_success(), "{report:#?}");
        assert!(
            checksums(&back) == self.expected,
            "the target differs from the corpus (lost, duplicated or changed messages)"
        );
    }
}

/// Runs one copy pass, calling `at_progress` once `trigger` messages are copied.
async fn copy_pass(
    source: Arc<dyn Source>,
    target: Arc<dyn Target>,
    state: Arc<dyn StateStore>,
    trigger: u64,
    at_progress: impl FnOnce() + Send + 'static,
) -> Report {
    let copier = Copier::new(source, target, state, CopyOptions::default());
    let mut events = copier.progress();
    let watcher = tokio::spawn(async move {
        let mut copied = 0;
        let mut at_progress = Some(at_progress);
        while let Ok(event) = events.recv().await {
            if let Progress::Items { delta, .. } = event {
                copied += delta.copied;
                if copied >= trigger
                    && let Some(f) = at_progress.take()
                {
                    f();
                }
            }
        }
    });
    let plan = copier.identity_plan().await.expect("plan");
    let report = copier.run(plan).await.expect("no fatal error");
    watcher.abort();
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_sessions_are_abandoned_after_the_read_timeout_and_the_copy_completes() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let s = setup().await;
    let (source, target) = s.stores().await;
    let stalled_at = Arc::new(std::sync::Mutex::new(None));
    let connections_at_stall = Arc::new(AtomicU64::new(0));
    let (src_proxy, dst_proxy) = (s.src_proxy.clone(), s.dst_proxy.clone());
    let stall = {
        let (a, b) = (src_proxy.clone(), dst_proxy.clone());
        let (stalled_at, connections) = (stalled_at.clone(), connections_at_stall.clone());
        move || {
            // Every open session on both sides goes silent mid-copy, for good.
            a.stall_open_connections();
            b.stall_open_connections();
            connections.store(a.connections() + b.connections(), Ordering::SeqCst);
            if let Ok(mut at) = stalled_at.lock() {
                *at = Some(Instant::now());
            }
        }
    };
    let state = Arc::new(MemoryState::new());
    let run = copy_pass(source, target, state, 150, stall);
    let report = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the copy finished: the read timeout replaced the stalled sessions");
    let stalled_at = stalled_at
        .lock()
        .ok()
        .and_then(|at| *at)
        .expect("the stall happened mid-copy");
    let after_stall = stalled_at.elapsed();
    let new_connections = src_proxy.connections() + dst_proxy.connections()
        - connections_at_stall.load(Ordering::SeqCst);
    eprintln!(
        "stalled every open session after 150 messages; the copy finished {after_stall:.1?} \
         later on {new_connections} new connections ({:?})",
        report.totals
    );
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(report.totals.copied, MESSAGES as u64);
    assert!(
        after_stall >= READ_TIMEOUT,
        "finished {after_stall:?} after the stall: nothing waited for the timeout"
    );
    // The side still busy when the stall hit must reconnect; the other may already be done.
    assert!(new_connections >= 1, "a stalled side reconnected");
    s.assert_target_complete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_stops_answering_for_a_while_is_waited_out() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    const STALL: Duration = Duration::from_secs(6);
    let s = setup().await;
    let (source, target) = s.stores().await;
    let stall = {
        let proxy = s.dst_proxy.clone();
        move || {
            // Nothing from the target reaches any session, old or new, for six seconds.
            proxy.set_stalled(true);
            tokio::spawn(async move {
                tokio::time::sleep(STALL).await;
                proxy.set_stalled(false);
            });
        }
    };
    let state: Arc<MemoryState> = Arc::new(MemoryState::new());
    let started = Instant::now();
    let mut reports =
        vec![copy_pass(source.clone(), target.clone(), state.clone(), 150, stall).await];
    // A stall longer than the retries leaves a batch pending; the next pass resolves it.
    while !reports.last().is_some_and(Report::is_success) && reports.len() < 3 {
        reports.push(
            copy_pass(
                source.clone(),
                target.clone(),
                state.clone(),
                u64::MAX,
                || {},
            )
            .await,
        );
    }
    let elapsed = started.elapsed();
    let copied: u64 = reports.iter().map(|r| r.totals.copied).sum();
    eprintln!(
        "target stalled for {STALL:?} after 150 messages: {} passes, {elapsed:.1?} in all, \
         {copied} copied",
        reports.len()
    );
    assert!(
        reports.last().is_some_and(Report::is_success),
        "{reports:#?}"
    );
    assert_eq!(copied, MESSAGES as u64, "each message copied once");
    assert!(
        elapsed >= STALL,
        "the copy cannot finish while the target is silent"
    );
    assert!(
        elapsed < STALL + Duration::from_secs(80),
        "{elapsed:?}: the stall was not detected promptly"
    );
    s.assert_target_complete().await;
}
